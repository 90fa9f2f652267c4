//! Sealed envelopes as the unit on the wire (design §13 item 2): a device
//! that holds the account key seals its outbox, pushes envelopes, and a
//! linked device opens them into the deltas their origin stored; a device
//! that cannot open one yet waits before it and never skips it.

mod common;

use common::*;
use tandem_engine::delta::{DeltaError, EncodedDelta};
use tandem_engine::model::*;
use tandem_engine::op::*;
use tandem_engine::*;
use tandem_transport::envelope::Envelope;
use tandem_transport::SessionEvent;

/// Links `new` to the account key `granter` holds.
fn link(granter: &mut Device, new: &mut Device) {
    let code = new.engine.show_link_code(new.now_ms).unwrap().code;
    let grant = granter.engine.grant_link(&code, granter.now_ms).unwrap();
    let granter_key = granter.engine.device().public_key;
    new.engine
        .accept_link_grant(&grant, &granter_key, new.now_ms)
        .unwrap();
}

/// Device 1 with the account key and device 2 linked to it.
fn linked_pair() -> (Device, Device) {
    let mut a = Device::memory(1);
    a.engine.create_account_key(a.now_ms).unwrap();
    let mut b = Device::memory(2);
    link(&mut a, &mut b);
    (a, b)
}

/// Seals `device`'s outbox and returns what it would push, in order.
fn pushed(device: &mut Device) -> Vec<Vec<u8>> {
    device.engine.seal_outbox(device.now_ms).unwrap();
    device
        .engine
        .outbox_after(OutboxPosition::default(), 1_000)
        .unwrap()
        .into_iter()
        .map(|(_, bytes)| bytes)
        .collect()
}

/// A relay log holding `entries` at positions 1, 2, …
fn log(entries: &[Vec<u8>]) -> Vec<RelayDelta> {
    entries
        .iter()
        .enumerate()
        .map(|(i, bytes)| RelayDelta {
            seq: i as u64 + 1,
            delta: EncodedDelta(bytes.clone()),
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn pin(conversation: &str) -> Op {
    Op::Conversation(ConversationOp::Pin {
        conversation: conv(conversation),
    })
}

fn secret(id: &str) -> Op {
    Op::Message(MessageOp::Ingest {
        message: IncomingMessage {
            id: msg(id),
            conversation: conv("u:bob"),
            sender: user("bob"),
            sent_at_ms: 5,
            body: format!("the secret of {id}"),
        },
    })
}

#[test]
fn a_linked_device_pushes_one_envelope_that_the_other_opens_and_the_relay_cannot_read() {
    let (mut a, mut b) = linked_pair();
    a.op(secret("m1"));
    a.op(Op::Conversation(ConversationOp::Pin {
        conversation: conv("u:bob"),
    }));
    let before = a.engine.outbox(100).unwrap();
    let items = pushed(&mut a);
    // The Link of B, A's own Link, the message and the pin: one run, one
    // envelope, and none of it readable on the wire.
    assert_eq!(items.len(), 1);
    assert_eq!(before.len(), 4);
    let envelope = Envelope::decode(&items[0]).expect("an envelope");
    assert_eq!(envelope.header.origin, a.engine.device().device_id);
    assert_eq!(envelope.header.chain_pos, 1);
    assert!(!contains(&items[0], b"the secret of m1"));
    assert!(!contains(&items[0], b"alice"));
    assert_eq!(
        a.engine.outbox(100).unwrap(),
        before,
        "sealing keeps the deltas in the outbox until the relay accepts"
    );
    assert_eq!(pushed(&mut a), items, "sealed once: pushed again unchanged");

    let merged = b.engine.apply_relay(&log(&items)).unwrap();
    assert_eq!(merged.new, 4);
    assert_eq!(merged.relay_cursor, 1);
    assert_eq!(merged.blocked, None);
    assert_eq!(b.state().messages, a.state().messages);
    assert_eq!(b.state().conversations, a.state().conversations);
    assert_eq!(b.engine.roster().unwrap(), a.engine.roster().unwrap());
    // The deltas B stored are the ones A stored: same bytes, same ids.
    assert_eq!(b.all_deltas(), a.all_deltas());

    // The relay's acknowledgement names the envelope: all four leave A's
    // outbox.
    let id = ContentId::of(&items[0]);
    assert_eq!(a.engine.acknowledge(&[(id, 1)]).unwrap(), 1);
    assert!(a.engine.outbox(100).unwrap().is_empty());
    assert!(pushed(&mut a).is_empty());

    // The next operations go in the next envelope of A's chain.
    a.op(secret("m2"));
    let next = pushed(&mut a);
    assert_eq!(next.len(), 1);
    let header = Envelope::decode(&next[0]).unwrap().header;
    assert_eq!((header.chain_pos, header.prev), (2, id));
    let merged = b
        .engine
        .apply_relay(&log(&[items[0].clone(), next[0].clone()]))
        .unwrap();
    assert_eq!((merged.new, merged.relay_cursor), (1, 2));
    assert_eq!(b.state().messages.len(), 2);
}

#[test]
fn own_envelopes_coming_back_leave_the_outbox_even_without_the_acknowledgement() {
    let (mut a, _) = linked_pair();
    a.op(secret("m1"));
    let items = pushed(&mut a);
    let merged = a.engine.apply_relay(&log(&items)).unwrap();
    assert_eq!((merged.new, merged.duplicate), (0, 1));
    assert_eq!(merged.relay_cursor, 1);
    assert!(a.engine.outbox(100).unwrap().is_empty());
    // And the page fetched twice changes nothing.
    let again = a.engine.apply_relay(&log(&items)).unwrap();
    assert_eq!(again.relay_cursor, 1);
}

#[test]
fn a_device_without_the_key_waits_before_an_envelope_and_opens_it_once_linked() {
    let (mut a, _) = linked_pair();
    a.op(secret("m1"));
    let sealed = pushed(&mut a);
    // A device of the account that holds no key yet, and another one that
    // pushes in the clear after the envelope.
    let mut c = Device::memory(3);
    let mut d = Device::memory(4);
    d.op(incoming("m9", "u:carol", "carol", 9));
    let clear = pushed(&mut d);
    assert_eq!(clear, vec![d.all_deltas()[0].0.clone()], "no key: format 1");
    let page = log(&[sealed[0].clone(), clear[0].clone()]);

    let merged = c.engine.apply_relay(&page).unwrap();
    assert_eq!(
        merged.blocked,
        Some(BlockedEntry {
            seq: 1,
            reason: NeedsKey::NotLinked
        })
    );
    assert_eq!(merged.relay_cursor, 0, "the cursor waits before it");
    assert_eq!(c.engine.relay_cursor().unwrap(), 0);
    assert_eq!(merged.new, 1, "the clear delta after it merged");
    assert_eq!(c.state().messages.len(), 1);

    // Once linked, the same page opens, and the delta merged already is
    // known.
    link(&mut a, &mut c);
    let merged = c.engine.apply_relay(&page).unwrap();
    assert_eq!(merged.blocked, None);
    assert_eq!(merged.relay_cursor, 2);
    assert_eq!(c.state().messages.len(), 2);

    // apply_remote, which has no cursor to wait at, refuses the batch.
    let mut e = Device::memory(5);
    match e.engine.apply_remote(&[EncodedDelta(sealed[0].clone())]) {
        Err(ApplyError::Delta {
            index: 0,
            error: DeltaError::NeedsKey(NeedsKey::NotLinked),
        }) => {}
        other => panic!("expected NeedsKey, got {other:?}"),
    }
}

#[test]
fn an_origin_named_by_a_later_envelope_of_the_page_opens_and_one_never_named_waits() {
    // C is linked by A; A then links D, whose first envelope reaches the
    // relay before the one of A that carries D's Link.
    let (mut a, mut c) = linked_pair();
    let mut e = Device::memory(5);
    link(&mut a, &mut e);
    let a_first = pushed(&mut a);
    let mut d = Device::memory(4);
    link(&mut a, &mut d);
    d.op(secret("from-d"));
    let d_first = pushed(&mut d);
    let a_second = pushed(&mut a);
    assert_eq!((a_second.len(), d_first.len()), (2, 1));
    let a_link = a_second[1].clone();

    // In one page: D's envelope waits for A's, then opens.
    let page = log(&[a_first[0].clone(), d_first[0].clone(), a_link.clone()]);
    let merged = c.engine.apply_relay(&page).unwrap();
    assert_eq!(merged.blocked, None);
    assert_eq!(merged.relay_cursor, 3);
    assert!(c
        .state()
        .messages
        .iter()
        .any(|m| m.body == "the secret of from-d"));

    // In a page without A's envelope, on a device linked before D: the
    // cursor waits before D's.
    let merged = e
        .engine
        .apply_relay(&log(&[a_first[0].clone(), d_first[0].clone()]))
        .unwrap();
    assert_eq!(
        merged.blocked,
        Some(BlockedEntry {
            seq: 2,
            reason: NeedsKey::UnknownOrigin {
                origin: d.engine.device().device_id
            }
        })
    );
    assert_eq!(merged.relay_cursor, 1);
}

/// A and C linked; B, not linked yet, hands A a change directly; A's next
/// change depends on it and A then links B. Returns A, C and the relay's
/// log: A's first envelope, A's envelope with its change and the Link, and
/// B's envelope with B's change.
fn link_behind_a_change() -> (Device, Device, [Vec<u8>; 3]) {
    let (mut a, c) = linked_pair();
    let a_first = pushed(&mut a);
    let mut b = Device::memory(3);
    b.op(pin("u:from-b"));
    send(&b, &mut a);
    a.op(pin("u:after-b"));
    link(&mut a, &mut b);
    let a_second = pushed(&mut a);
    let b_first = pushed(&mut b);
    assert_eq!((a_second.len(), b_first.len()), (2, 1));
    let entries = [a_first[0].clone(), a_second[1].clone(), b_first[0].clone()];
    (a, c, entries)
}

#[test]
fn a_link_whose_change_waits_still_names_its_device_in_later_pages() {
    // B, not linked yet, hands A a change directly; A's next change
    // depends on it, A's Link of B comes after that change, and B's
    // envelope (which carries B's change) opens only once B is named. C
    // reads A's envelope in one page and B's in the next.
    let (_a, mut c, entries) = link_behind_a_change();

    // A's change waits for B's, and A's Link waits for A's change.
    let merged = c.engine.apply_relay(&log(&entries)[..2]).unwrap();
    assert_eq!((merged.relay_cursor, merged.waiting), (2, 2));
    assert_eq!(c.engine.roster().unwrap().len(), 2);
    let merged = c.engine.apply_relay(&log(&entries)[2..]).unwrap();
    assert_eq!(merged.blocked, None);
    assert_eq!((merged.relay_cursor, merged.unblocked), (3, 2));
    let pinned: Vec<String> = c
        .state()
        .conversations
        .iter()
        .filter(|row| row.settings.pinned)
        .map(|row| row.id.to_string())
        .collect();
    assert_eq!(pinned.len(), 2, "{pinned:?}");
    assert_eq!(c.engine.roster().unwrap().len(), 3);
}

#[test]
fn a_link_first_had_in_the_clear_names_its_device_once_its_envelope_is_read() {
    // As above, but C holds A's operations (the Link among them) from a
    // direct exchange before the relay's copy of A's envelope reaches it.
    let (a, mut c, entries) = link_behind_a_change();
    let a_id = a.engine.device().device_id;
    let own: Vec<EncodedDelta> = a
        .all_deltas()
        .into_iter()
        .filter(|d| {
            delta::Delta::decode(&d.0, &AccountId::new(ACCOUNT).unwrap())
                .unwrap()
                .0
                .origin
                == a_id
        })
        .collect();
    c.engine.apply_remote(&own).unwrap();
    c.engine.apply_relay(&log(&entries)[..2]).unwrap();
    assert_eq!(c.engine.roster().unwrap().len(), 2, "the Link still waits");
    let merged = c.engine.apply_relay(&log(&entries)[2..]).unwrap();
    assert_eq!(merged.blocked, None);
    assert_eq!(merged.relay_cursor, 3);
    assert_eq!(c.engine.roster().unwrap().len(), 3);
}

#[test]
fn a_linked_device_refuses_a_tampered_entry_waits_before_it_and_reads_it_again() {
    let (mut a, mut b) = linked_pair();
    a.op(secret("m1"));
    let first = pushed(&mut a).remove(0);
    a.op(secret("m2"));
    let second = pushed(&mut a).remove(1);
    let mut altered = first.clone();
    let middle = altered.len() / 2;
    altered[middle] ^= 0x10;
    let (mut session, mut syncer) = session();

    let page = |one: &Vec<u8>| SessionEvent::Deltas {
        deltas: vec![log_entry(1, one.clone()), log_entry(2, second.clone())],
        more: false,
    };
    let heard = syncer
        .handle(&mut b.engine, &mut session, page(&altered), 0)
        .unwrap();
    let refused: Vec<_> = heard
        .iter()
        .filter_map(|e| match e {
            sync::SyncEvent::EntryRefused { seq, tamper, .. } => Some((*seq, *tamper)),
            sync::SyncEvent::Skipped { .. } => panic!("passed over: {heard:?}"),
            _ => None,
        })
        .collect();
    // The signature covers the ciphertext, and is checked first.
    assert_eq!(refused, [(1, Some(delta::Tamper::BadSignature))]);
    assert_eq!(
        b.engine.relay_cursor().unwrap(),
        0,
        "nothing after it merged"
    );
    assert!(b.state().messages.is_empty());
    assert!(!syncer.is_in_step(&b.engine).unwrap());

    // It waits: the honest entries arriving live meanwhile are not taken.
    let honest = || vec![log_entry(1, first.clone()), log_entry(2, second.clone())];
    syncer
        .handle_live(&mut b.engine, &mut session, honest())
        .unwrap();
    assert_eq!(b.engine.relay_cursor().unwrap(), 0);
    // Once the wait is over it reads from there again (a pull; here the
    // entries come live).
    syncer
        .handle_timeout(&mut b.engine, &mut session, 1_000)
        .unwrap();
    assert_eq!(
        syncer.poll_timeout(),
        Some(1_000 + sync::REQUEST_TIMEOUT_MS)
    );
    syncer
        .handle_timeout(
            &mut b.engine,
            &mut session,
            1_000 + sync::REQUEST_TIMEOUT_MS,
        )
        .unwrap();
    syncer
        .handle_live(&mut b.engine, &mut session, honest())
        .unwrap();
    assert_eq!(b.engine.relay_cursor().unwrap(), 2);
    assert_eq!(b.state().messages.len(), 2);
}

#[test]
fn an_altered_or_foreign_envelope_is_refused_by_name() {
    let (mut a, mut b) = linked_pair();
    a.op(secret("m1"));
    let sealed = pushed(&mut a).remove(0);
    for at in [40, sealed.len() / 2, sealed.len() - 1] {
        let mut altered = sealed.clone();
        altered[at] ^= 1;
        match b.engine.apply_relay(&log(&[altered])) {
            Err(ApplyError::RelayEntry {
                seq: 1,
                error: DeltaError::Envelope(_),
            }) => {}
            other => panic!("byte {at}: expected a refused envelope, got {other:?}"),
        }
    }
    assert_eq!(b.engine.relay_cursor().unwrap(), 0, "nothing written");
    // Another account's device with its own key: it does not open here.
    let mut stranger = Device::memory_of(7, "mallory");
    stranger.engine.create_account_key(stranger.now_ms).unwrap();
    stranger.op(secret("m1"));
    let foreign = pushed(&mut stranger);
    let merged = b.engine.apply_relay(&log(&foreign)).unwrap();
    assert_eq!(
        merged.blocked.map(|entry| entry.reason),
        Some(NeedsKey::UnknownOrigin {
            origin: stranger.engine.device().device_id
        }),
        "its origin is in no roster here: it waits, unread"
    );
    assert_eq!(merged.new, 0);
}

#[test]
fn a_second_envelope_at_the_same_chain_position_is_a_fork_and_refused() {
    // Two copies of one device (the same entropy: the same id, device key
    // and account key) each seal their own first envelope.
    let mut a = Device::memory(1);
    let mut twin = Device::memory(1);
    a.engine.create_account_key(a.now_ms).unwrap();
    twin.engine.create_account_key(twin.now_ms).unwrap();
    let mut b = Device::memory(2);
    link(&mut a, &mut b);
    a.op(secret("m1"));
    twin.op(secret("other"));
    let first = pushed(&mut a).remove(0);
    let forked = pushed(&mut twin).remove(0);
    assert_ne!(first, forked);
    b.engine
        .apply_relay(&log(std::slice::from_ref(&first)))
        .unwrap();
    match b.engine.apply_relay(&log(&[first, forked])) {
        Err(ApplyError::RelayEntry {
            seq: 2,
            error: DeltaError::ChainFork { chain_pos: 1, .. },
        }) => {}
        other => panic!("expected a fork, got {other:?}"),
    }
}

#[test]
fn an_envelope_whose_neighbour_names_another_is_a_fork_in_either_order() {
    // A copy of A's store (restored from a backup) seals on from the same
    // chain position as A: its envelopes 2 and 3 form another chain.
    let (mut a, path) = file_device(1);
    a.engine.create_account_key(a.now_ms).unwrap();
    let mut b = Device::memory(2);
    link(&mut a, &mut b);
    let first = pushed(&mut a).remove(0);
    let copy = path.with_extension("copy.db");
    // The database and its write-ahead log, as a file backup takes them.
    std::fs::copy(&path, &copy).unwrap();
    let wal = |p: &std::path::Path| std::path::PathBuf::from(format!("{}-wal", p.display()));
    if wal(&path).exists() {
        std::fs::copy(wal(&path), wal(&copy)).unwrap();
    }
    let mut twin = Device::memory(9);
    twin.engine = Engine::open(file_config(&copy), 1_000, entropy(9)).unwrap();
    assert_eq!(twin.engine.device().device_id, a.engine.device().device_id);
    a.op(secret("m2"));
    let two = pushed(&mut a).pop().unwrap();
    twin.op(secret("m2'"));
    twin.op(pin("u:other"));
    let twin_two = pushed(&mut twin).pop().unwrap();
    twin.op(secret("m3'"));
    let twin_three = pushed(&mut twin).pop().unwrap();
    assert_ne!(two, twin_two);
    let a_id = a.engine.device().device_id;
    let fork_at_two = |result: Result<Applied, ApplyError>, seq| match result {
        Err(ApplyError::RelayEntry {
            seq: at,
            error:
                DeltaError::ChainFork {
                    origin,
                    chain_pos: 2,
                },
        }) if at == seq && origin == a_id => {}
        other => panic!("expected a fork at 2 named at entry {seq}, got {other:?}"),
    };

    // Envelope 3 names another envelope 2 than the one held.
    let mut c = Device::memory(3);
    link(&mut a, &mut c);
    fork_at_two(
        c.engine
            .apply_relay(&log(&[first.clone(), two.clone(), twin_three.clone()])),
        3,
    );
    // Out of order: 3 first (2 not held yet), then 2, which 3 does not name.
    let mut d = Device::memory(4);
    link(&mut a, &mut d);
    fork_at_two(
        d.engine
            .apply_relay(&log(&[first.clone(), twin_three.clone(), two.clone()])),
        3,
    );
    // The twin's own chain is consistent.
    let mut e = Device::memory(5);
    link(&mut a, &mut e);
    let merged = e
        .engine
        .apply_relay(&log(&[first, twin_two, twin_three]))
        .unwrap();
    assert_eq!(merged.relay_cursor, 3);
}

#[test]
fn runs_split_at_the_operation_limit() {
    let (mut a, mut b) = linked_pair();
    for i in 0..limits::OPS_PER_ENVELOPE_MAX + 10 {
        a.op(Op::Contact(ContactOp::Add {
            user: user(&format!("u{i}")),
            greeting: String::new(),
        }));
    }
    let items = pushed(&mut a);
    assert_eq!(items.len(), 2, "1,024 operations and the rest");
    let merged = b.engine.apply_relay(&log(&items)).unwrap();
    assert_eq!(merged.new, limits::OPS_PER_ENVELOPE_MAX + 12);
    assert_eq!(b.state().contacts.len(), limits::OPS_PER_ENVELOPE_MAX + 10);
}
