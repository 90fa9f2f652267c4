//! The account key and linking a new device, through the engine: the
//! first device makes the key, a new device shows a code, a linked device
//! grants, the new device accepts, and every way to get it wrong is
//! refused with nothing stored.

mod common;

use common::*;
use tandem_engine::limits::LINK_SESSION_TTL_MS;
use tandem_engine::seal::LinkError;
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
    // way): the grant is sealed to a key whose secret nobody here has.
    let mut bytes = data_encoding_decode(&shown);
    bytes[49..81].copy_from_slice(&data_encoding_decode(&other_code)[49..81]);
    let substituted = first
        .engine
        .grant_link(&data_encoding_encode(&bytes), first.now_ms)
        .unwrap();
    assert!(matches!(
        new.engine
            .accept_link_grant(&substituted, &public_key(&first), new.now_ms),
        Err(LinkingError::Grant(LinkError::BadGrant))
    ));

    // The right grant checked against another device's key.
    let grant = first.engine.grant_link(&shown, first.now_ms).unwrap();
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
