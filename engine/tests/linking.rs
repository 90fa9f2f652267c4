//! The account key and linking a new device, through the engine: the
//! first device makes the key, a new device shows a code, a linked device
//! grants, the new device accepts, and every way to get it wrong is
//! refused with nothing stored.

mod common;

use common::*;
use tandem_engine::limits::LINK_SESSION_TTL_MS;
use tandem_engine::op::{DeviceOp, Op};
use tandem_engine::seal::{LinkCode, LinkError};
use tandem_engine::*;

/// Device 1 with the account key, device 2 new.
fn first_and_new() -> (Device, Device) {
    let mut first = Device::memory(1);
    first.engine.create_account_key(first.now_ms).unwrap();
    (first, Device::memory(2))
}

fn public_key(device: &Device) -> DevicePublicKey {
    device.engine.device().public_key
}

fn fingerprint(device: &Device) -> KeyFingerprint {
    match device.engine.link_state(device.now_ms).unwrap() {
        LinkState::Linked { fingerprint, .. } => fingerprint,
        other => panic!("not linked: {other:?}"),
    }
}

#[test]
fn a_new_device_linked_by_the_first_holds_the_same_key() {
    let (first, mut new) = first_and_new();
    assert_eq!(
        new.engine.link_state(new.now_ms).unwrap(),
        LinkState::Unlinked {
            code_expires_at_ms: None
        }
    );
    let shown = new.engine.show_link_code(new.now_ms).unwrap();
    assert_eq!(shown.code.len(), LINK_CODE_TEXT_CHARS);
    assert_eq!(LINK_CODE_TEXT_CHARS, 181);
    assert!(shown
        .code
        .chars()
        .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)));
    assert_eq!(
        new.engine.link_state(new.now_ms).unwrap(),
        LinkState::Unlinked {
            code_expires_at_ms: Some(new.now_ms + LINK_SESSION_TTL_MS)
        }
    );

    let mut first = first;
    let grant = first.engine.grant_link(&shown.code, first.now_ms).unwrap();
    let printed = new
        .engine
        .accept_link_grant(&grant, &public_key(&first), new.now_ms)
        .unwrap();
    assert_eq!(printed, fingerprint(&first));
    assert_eq!(fingerprint(&new), fingerprint(&first));
    match new.engine.link_state(new.now_ms).unwrap() {
        LinkState::Linked {
            generation, source, ..
        } => {
            assert_eq!(generation, 0);
            assert_eq!(source, KeySource::Linked);
        }
        other => panic!("not linked: {other:?}"),
    }

    // A linked device links the next one: the key passes on unchanged.
    let mut third = Device::memory(3);
    let code = third.engine.show_link_code(third.now_ms).unwrap().code;
    let grant = new.engine.grant_link(&code, new.now_ms).unwrap();
    third
        .engine
        .accept_link_grant(&grant, &public_key(&new), third.now_ms)
        .unwrap();
    assert_eq!(fingerprint(&third), fingerprint(&first));
}

#[test]
fn two_first_devices_make_different_keys() {
    let mut a = Device::memory(1);
    let mut b = Device::memory(2);
    let fa = a.engine.create_account_key(a.now_ms).unwrap();
    let fb = b.engine.create_account_key(b.now_ms).unwrap();
    assert_ne!(fa, fb);
    assert!(matches!(
        a.engine.create_account_key(a.now_ms),
        Err(LinkingError::AlreadyLinked { generation: 0 })
    ));
    assert_eq!(fingerprint(&a), fa);
}

#[test]
fn a_code_typed_in_lower_case_and_groups_is_read() {
    let (mut first, mut new) = first_and_new();
    let code = new.engine.show_link_code(new.now_ms).unwrap().code;
    let typed: String = code
        .to_ascii_lowercase()
        .as_bytes()
        .chunks(5)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" \n");
    let grant = first.engine.grant_link(&typed, first.now_ms).unwrap();
    new.engine
        .accept_link_grant(&grant, &public_key(&first), new.now_ms)
        .unwrap();
    assert_eq!(fingerprint(&new), fingerprint(&first));
}

#[test]
fn malformed_codes_are_refused() {
    let (mut first, mut new) = first_and_new();
    let code = new.engine.show_link_code(new.now_ms).unwrap().code;
    let mut bad = vec![
        String::new(),
        code[..LINK_CODE_TEXT_CHARS - 1].to_owned(),
        format!("{code}A"),
        // Not base32 (0, 1, 8, 9 are not in its alphabet).
        format!("0{}", &code[1..]),
        // The last character carries unused bits that must be zero.
        format!("{}7", &code[..LINK_CODE_TEXT_CHARS - 1]),
    ];
    // Another version byte.
    let mut bytes = data_encoding_decode(&code);
    bytes[0] = 2;
    bad.push(data_encoding_encode(&bytes));
    for text in bad {
        assert!(
            matches!(
                first.engine.grant_link(&text, first.now_ms),
                Err(LinkingError::BadCode(_))
            ),
            "{text:?} was not refused"
        );
    }
    // A device cannot grant to its own code, nor grant without a key.
    let mut unlinked = Device::memory(3);
    let own = unlinked
        .engine
        .show_link_code(unlinked.now_ms)
        .unwrap()
        .code;
    assert!(matches!(
        unlinked.engine.grant_link(&own, unlinked.now_ms),
        Err(LinkingError::OwnCode)
    ));
    assert!(matches!(
        unlinked.engine.grant_link(&code, unlinked.now_ms),
        Err(LinkingError::NotLinked)
    ));
}

#[test]
fn a_grant_for_another_code_a_substituted_key_or_a_wrong_signer_is_refused() {
    let (mut first, mut new) = first_and_new();
    let shown = new.engine.show_link_code(new.now_ms).unwrap().code;

    // Sealed to another device's code (the relay substituting its own).
    let mut other = Device::memory(3);
    let other_code = other.engine.show_link_code(other.now_ms).unwrap().code;
    let to_other = first.engine.grant_link(&other_code, first.now_ms).unwrap();
    assert!(matches!(
        new.engine
            .accept_link_grant(&to_other, &public_key(&first), new.now_ms),
        Err(LinkingError::Grant(LinkError::BadGrant))
    ));

    // The right device and PSK but another KEM key (a code altered on the
    // way): the grant is sealed to a key whose secret nobody here has. It
    // comes from a second linked device, whose roster does not list the
    // new device yet (the first one lists it with its true keys below).
    let mut bytes = data_encoding_decode(&shown);
    bytes[49..81].copy_from_slice(&data_encoding_decode(&other_code)[49..81]);
    let altered = data_encoding_encode(&bytes);
    let mut second = Device::memory(5);
    let second_code = second.engine.show_link_code(second.now_ms).unwrap().code;
    let to_second = first.engine.grant_link(&second_code, first.now_ms).unwrap();
    second
        .engine
        .accept_link_grant(&to_second, &public_key(&first), second.now_ms)
        .unwrap();
    let substituted = second.engine.grant_link(&altered, second.now_ms).unwrap();
    assert!(matches!(
        new.engine
            .accept_link_grant(&substituted, &public_key(&second), new.now_ms),
        Err(LinkingError::Grant(LinkError::BadGrant))
    ));

    // The right grant checked against another device's key.
    let grant = first.engine.grant_link(&shown, first.now_ms).unwrap();
    // A granter that lists the device with its true keys refuses the
    // altered code.
    assert!(matches!(
        first.engine.grant_link(&altered, first.now_ms),
        Err(LinkingError::RosterConflict { .. })
    ));
    assert!(matches!(
        new.engine
            .accept_link_grant(&grant, &public_key(&other), new.now_ms),
        Err(LinkingError::Grant(LinkError::BadSignature))
    ));

    // Every single-bit flip is refused.
    for bit in [0, 8 * 17, 8 * 40, 8 * (grant.len() - 1)] {
        let mut flipped = grant.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert!(new
            .engine
            .accept_link_grant(&flipped, &public_key(&first), new.now_ms)
            .is_err());
    }
    // Not a grant at all.
    for junk in [&[][..], &[1u8; 10][..], &vec![1u8; 5_000][..]] {
        assert!(matches!(
            new.engine
                .accept_link_grant(junk, &public_key(&first), new.now_ms),
            Err(LinkingError::Grant(LinkError::Malformed))
        ));
    }

    // Nothing was stored by the refusals: the code still works.
    assert!(matches!(
        new.engine.link_state(new.now_ms).unwrap(),
        LinkState::Unlinked {
            code_expires_at_ms: Some(_)
        }
    ));
    new.engine
        .accept_link_grant(&grant, &public_key(&first), new.now_ms)
        .unwrap();
    assert_eq!(fingerprint(&new), fingerprint(&first));
}

#[test]
fn a_grant_from_another_account_is_refused() {
    let (_, mut new) = first_and_new();
    let code = new.engine.show_link_code(new.now_ms).unwrap().code;
    let mut stranger = Device::memory_of(9, "mallory");
    stranger.engine.create_account_key(stranger.now_ms).unwrap();
    let grant = stranger.engine.grant_link(&code, stranger.now_ms).unwrap();
    assert!(matches!(
        new.engine
            .accept_link_grant(&grant, &public_key(&stranger), new.now_ms),
        Err(LinkingError::Grant(LinkError::BadGrant))
    ));
}

#[test]
fn a_replayed_grant_is_refused() {
    let (mut first, mut new) = first_and_new();
    let code = new.engine.show_link_code(new.now_ms).unwrap().code;
    let grant = first.engine.grant_link(&code, first.now_ms).unwrap();
    new.engine
        .accept_link_grant(&grant, &public_key(&first), new.now_ms)
        .unwrap();
    assert!(matches!(
        new.engine
            .accept_link_grant(&grant, &public_key(&first), new.now_ms),
        Err(LinkingError::AlreadyLinked { generation: 0 })
    ));
    assert!(matches!(
        new.engine.show_link_code(new.now_ms),
        Err(LinkingError::AlreadyLinked { .. })
    ));

    // A store that lost its session (a fresh store under the same device
    // id) has nothing to open a grant with.
    let mut other = Device::memory(3);
    let code = other.engine.show_link_code(other.now_ms).unwrap().code;
    let grant = first.engine.grant_link(&code, first.now_ms).unwrap();
    let mut reset = Device::memory(3);
    assert!(matches!(
        reset
            .engine
            .accept_link_grant(&grant, &public_key(&first), reset.now_ms),
        Err(LinkingError::NoLinkCode)
    ));
}

#[test]
fn a_code_expires_and_a_new_one_replaces_it() {
    let (mut first, mut new) = first_and_new();
    let shown = new.engine.show_link_code(new.now_ms).unwrap();
    // The same code while it is live.
    let again = new.engine.show_link_code(shown.expires_at_ms - 1).unwrap();
    assert_eq!(again.code, shown.code);
    let grant = first.engine.grant_link(&shown.code, first.now_ms).unwrap();
    // At its expiry it accepts nothing, and nothing is stored.
    assert!(matches!(
        new.engine
            .accept_link_grant(&grant, &public_key(&first), shown.expires_at_ms),
        Err(LinkingError::CodeExpired { expired_at_ms }) if expired_at_ms == shown.expires_at_ms
    ));
    assert_eq!(
        new.engine.link_state(shown.expires_at_ms).unwrap(),
        LinkState::Unlinked {
            code_expires_at_ms: None
        }
    );
    // A new code is another session: the old grant does not open with it.
    let fresh = new.engine.show_link_code(shown.expires_at_ms).unwrap();
    assert_ne!(fresh.code, shown.code);
    assert!(matches!(
        new.engine
            .accept_link_grant(&grant, &public_key(&first), shown.expires_at_ms),
        Err(LinkingError::Grant(LinkError::BadGrant))
    ));
    let grant = first.engine.grant_link(&fresh.code, first.now_ms).unwrap();
    new.engine
        .accept_link_grant(&grant, &public_key(&first), shown.expires_at_ms)
        .unwrap();
    // A clock at the edge of its type neither overflows nor panics.
    let mut late = Device::memory(4);
    let shown = late.engine.show_link_code(i64::MAX - 1).unwrap();
    assert_eq!(shown.expires_at_ms, i64::MAX);
}

#[test]
fn the_code_and_the_key_survive_a_restart() {
    let (mut first, first_path) = file_device(1);
    first.engine.create_account_key(first.now_ms).unwrap();
    let printed = fingerprint(&first);

    let (mut new, new_path) = file_device(2);
    let shown = new.engine.show_link_code(new.now_ms).unwrap();
    new.reopen(&new_path);
    // The same code after the restart (and no entropy drawn for it).
    assert_eq!(new.engine.show_link_code(new.now_ms).unwrap(), shown);
    let grant = first.engine.grant_link(&shown.code, first.now_ms).unwrap();
    new.engine
        .accept_link_grant(&grant, &public_key(&first), new.now_ms)
        .unwrap();
    first.reopen(&first_path);
    new.reopen(&new_path);
    assert_eq!(fingerprint(&first), printed);
    assert_eq!(fingerprint(&new), printed);
}

fn data_encoding_decode(code: &str) -> Vec<u8> {
    data_encoding::BASE32_NOPAD.decode(code.as_bytes()).unwrap()
}

fn data_encoding_encode(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(bytes)
}

/// The keys a code shows.
fn code_keys(code: &str) -> LinkCode {
    LinkCode::from_bytes(&data_encoding_decode(code)).unwrap()
}

fn roster_entry(device: &Device, id: DeviceId) -> Option<RosterEntry> {
    device
        .engine
        .roster()
        .unwrap()
        .into_iter()
        .find(|entry| entry.device == id)
}

fn outbox_len(device: &Device) -> usize {
    device.engine.outbox(usize::MAX >> 1).unwrap().len()
}

#[test]
fn the_first_device_and_every_granted_device_are_in_the_roster_everywhere() {
    let (mut first, mut new) = first_and_new();
    let first_id = first.engine.device().device_id;
    let new_id = new.engine.device().device_id;
    // The first device listed itself, with its signing and KEM keys.
    let own = roster_entry(&first, first_id).expect("the first device lists itself");
    assert_eq!(own.sign_pk, public_key(&first));
    assert_eq!(Some(own.kem_pk), first.engine.kem_public_key().unwrap());
    assert_eq!(own.linked_by, first_id);
    assert_eq!(new.engine.kem_public_key().unwrap(), None);

    // Granting lists the new device with the keys its code shows.
    let code = new.engine.show_link_code(new.now_ms).unwrap().code;
    let shown = code_keys(&code);
    first.now_ms += 1;
    let grant = first.engine.grant_link(&code, first.now_ms).unwrap();
    let listed = roster_entry(&first, new_id).expect("the granted device is listed");
    assert_eq!(
        (listed.sign_pk, listed.kem_pk, listed.linked_by),
        (shown.sign_pk, shown.kem_pk, first_id)
    );
    assert_eq!(listed.linked_at_ms, first.now_ms);
    // The new device keeps the code's KEM key as its own, and the roster
    // the grant carries before it merged anything.
    new.engine
        .accept_link_grant(&grant, &public_key(&first), new.now_ms)
        .unwrap();
    assert_eq!(new.engine.kem_public_key().unwrap(), Some(shown.kem_pk));
    assert_eq!(new.engine.roster().unwrap(), first.engine.roster().unwrap());

    // Both Link operations reach the new device as events, and its roster
    // is the first device's.
    let head = new.engine.events_head().unwrap();
    send(&first, &mut new);
    let heard: Vec<_> = new
        .engine
        .events_after(head, 10)
        .unwrap()
        .into_iter()
        .map(|e| (e.source_device, e.superseded, e.kind))
        .collect();
    let linked = |id: DeviceId, sign: DevicePublicKey, kem: [u8; 32]| {
        EventKind::Device(event::DeviceEvent::Linked {
            device: id.to_hex(),
            sign_pk: sign.to_hex(),
            kem_pk: kem.iter().map(|b| format!("{b:02x}")).collect(),
        })
    };
    assert_eq!(
        heard,
        vec![
            (first_id, false, linked(first_id, own.sign_pk, own.kem_pk)),
            (first_id, false, linked(new_id, shown.sign_pk, shown.kem_pk)),
        ]
    );
    assert_eq!(new.engine.roster().unwrap(), first.engine.roster().unwrap());
    assert_eq!(new.engine.roster().unwrap().len(), 2);
    assert_eq!(new.state().roster, first.state().roster);
}

#[test]
fn a_device_linked_by_a_linked_device_knows_the_first_device_s_keys_from_the_grant() {
    // The first device's self-Link is signed by it alone, and the second
    // device does not seal it again: the third learns the first's keys
    // from the roster the second's grant carries.
    let (mut first, mut second) = first_and_new();
    let code = second.engine.show_link_code(second.now_ms).unwrap().code;
    let grant = first.engine.grant_link(&code, first.now_ms).unwrap();
    second
        .engine
        .accept_link_grant(&grant, &public_key(&first), second.now_ms)
        .unwrap();
    let mut third = Device::memory(3);
    let code = third.engine.show_link_code(third.now_ms).unwrap().code;
    let grant = second.engine.grant_link(&code, second.now_ms).unwrap();
    third
        .engine
        .accept_link_grant(&grant, &public_key(&second), third.now_ms)
        .unwrap();
    let first_id = first.engine.device().device_id;
    let known = roster_entry(&third, first_id).expect("the third device lists the first");
    assert_eq!(known, roster_entry(&first, first_id).unwrap());
    assert_eq!(
        third.engine.roster().unwrap(),
        second.engine.roster().unwrap()
    );
    assert_eq!(third.engine.roster().unwrap().len(), 3);

    // Merging the Links later changes nothing: the entries are the ones
    // those operations make, so every device keeps the same register.
    let before = third.engine.roster().unwrap();
    send(&first, &mut third);
    send(&second, &mut third);
    assert_eq!(third.engine.roster().unwrap(), before);
    send(&second, &mut first);
    assert_eq!(first.engine.roster().unwrap(), before);
}

#[test]
fn granting_the_same_code_again_records_nothing_more() {
    let (mut first, mut new) = first_and_new();
    let code = new.engine.show_link_code(new.now_ms).unwrap().code;
    let before = outbox_len(&first);
    first.engine.grant_link(&code, first.now_ms).unwrap();
    assert_eq!(outbox_len(&first), before + 1, "one Link recorded");
    first.now_ms += 5;
    let again = first.engine.grant_link(&code, first.now_ms).unwrap();
    assert_eq!(
        outbox_len(&first),
        before + 1,
        "the second grant records none"
    );
    // The second grant still opens: the code is the same.
    new.engine
        .accept_link_grant(&again, &public_key(&first), new.now_ms)
        .unwrap();
}

#[test]
fn a_code_whose_device_the_roster_holds_with_other_keys_is_refused() {
    let (mut first, mut new) = first_and_new();
    let new_id = new.engine.device().device_id;
    // An earlier Link listed the new device's id with other keys.
    first.op(Op::Device(DeviceOp::Link {
        device: new_id,
        sign_pk: DevicePublicKey([9; 32]),
        kem_pk: [9; 32],
    }));
    let code = new.engine.show_link_code(new.now_ms).unwrap().code;
    let before = outbox_len(&first);
    let roster = first.engine.roster().unwrap();
    assert!(matches!(
        first.engine.grant_link(&code, first.now_ms + 1),
        Err(LinkingError::RosterConflict { device }) if device == new_id
    ));
    assert_eq!(outbox_len(&first), before, "nothing recorded");
    assert_eq!(first.engine.roster().unwrap(), roster, "roster unchanged");
}

#[test]
fn concurrent_links_of_one_device_keep_the_earlier_on_both_devices() {
    let state = both_orders(|| {
        let mut a = Device::memory(1);
        let mut b = Device::memory(2);
        let link = |keys: u8| {
            Op::Device(DeviceOp::Link {
                device: DeviceId([7; 16]),
                sign_pk: DevicePublicKey([keys; 32]),
                kem_pk: [keys; 32],
            })
        };
        b.now_ms += 10;
        a.op(link(0xaa));
        b.op(link(0xbb));
        (a, b)
    });
    assert_eq!(state.roster.len(), 1);
    assert_eq!(state.roster[0].sign_pk, DevicePublicKey([0xaa; 32]));
    assert_eq!(state.roster[0].linked_by, DeviceId([1; 16]));

    // The device whose Link lost hears the winner's as current, and its own
    // is heard on the other side as superseded.
    let mut a = Device::memory(1);
    let mut b = Device::memory(2);
    b.now_ms += 10;
    a.op(Op::Device(DeviceOp::Link {
        device: DeviceId([7; 16]),
        sign_pk: DevicePublicKey([0xaa; 32]),
        kem_pk: [0xaa; 32],
    }));
    b.op(Op::Device(DeviceOp::Link {
        device: DeviceId([7; 16]),
        sign_pk: DevicePublicKey([0xbb; 32]),
        kem_pk: [0xbb; 32],
    }));
    send(&a, &mut b);
    send(&b, &mut a);
    let superseded = |d: &Device| d.engine.events_after(0, 10).unwrap()[0].superseded;
    assert!(!superseded(&b), "b hears a's earlier Link, which holds");
    assert!(superseded(&a), "a hears b's later Link, which lost");
}

#[test]
fn a_device_that_shows_a_code_and_then_makes_the_key_keeps_the_codes_kem_key() {
    let mut device = Device::memory(4);
    let code = device.engine.show_link_code(device.now_ms).unwrap().code;
    device.engine.create_account_key(device.now_ms).unwrap();
    let kem = code_keys(&code).kem_pk;
    assert_eq!(device.engine.kem_public_key().unwrap(), Some(kem));
    let id = device.engine.device().device_id;
    assert_eq!(roster_entry(&device, id).unwrap().kem_pk, kem);
    // The session is spent.
    assert_eq!(
        device.engine.link_state(device.now_ms).unwrap(),
        LinkState::Linked {
            generation: 0,
            source: KeySource::Created,
            fingerprint: match device.engine.link_state(device.now_ms).unwrap() {
                LinkState::Linked { fingerprint, .. } => fingerprint,
                other => panic!("{other:?}"),
            },
        }
    );
    assert!(matches!(
        device.engine.show_link_code(device.now_ms),
        Err(LinkingError::AlreadyLinked { generation: 0 })
    ));
}
