//! Merging pages of a relay's log: the cursor, gaps, replays, and the
//! outbox draining when a device's own deltas come back.

mod common;

use common::*;
use tandem_engine::op::*;
use tandem_engine::*;

/// A stand-in relay log: position i+1 holds `log[i]`.
fn page(log: &[delta::EncodedDelta], from_seq: u64, count: usize) -> Vec<RelayDelta> {
    log.iter()
        .enumerate()
        .skip(from_seq as usize - 1)
        .take(count)
        .map(|(i, d)| RelayDelta {
            seq: i as u64 + 1,
            delta: d.clone(),
        })
        .collect()
}

#[test]
fn pages_advance_the_cursor_and_own_deltas_leave_the_outbox() {
    let (mut a, path) = file_device(1);
    let mut b = Device::memory(2);
    a.op(incoming("m1", "u:bob", "bob", 1));
    b.op(incoming("m2", "u:bob", "bob", 2));
    a.op(Op::Conversation(ConversationOp::Pin {
        conversation: conv("u:bob"),
    }));
    // The relay accepted a1, b1, a2 in that order; A's push acks were lost.
    let mut log = a.all_deltas();
    log.insert(1, b.all_deltas().remove(0));
    assert_eq!(a.engine.outbox(10).unwrap().len(), 2);

    assert_eq!(a.engine.relay_cursor().unwrap(), 0);
    let first = a.engine.apply_relay(&page(&log, 1, 2)).unwrap();
    assert_eq!((first.new, first.duplicate), (1, 1));
    assert_eq!(a.engine.relay_cursor().unwrap(), 2);
    assert_eq!(
        a.engine.outbox(10).unwrap().len(),
        1,
        "a1 came back: acknowledged"
    );

    // A page fetched twice, overlapping the cursor, skips what it had.
    let again = a.engine.apply_relay(&page(&log, 1, 3)).unwrap();
    assert_eq!((again.new, again.duplicate), (0, 1));
    assert_eq!(a.engine.relay_cursor().unwrap(), 3);
    assert!(a.engine.outbox(10).unwrap().is_empty());

    a.reopen(&path);
    assert_eq!(
        a.engine.relay_cursor().unwrap(),
        3,
        "the cursor survives a restart"
    );
    assert_eq!(a.state().messages.len(), 2);
}

#[test]
fn a_gap_is_refused_and_changes_nothing() {
    let mut a = Device::memory(1);
    let mut b = Device::memory(2);
    b.op(incoming("m1", "u:bob", "bob", 1));
    b.op(incoming("m2", "u:bob", "bob", 2));
    let log = b.all_deltas();
    let before = a.state();
    match a.engine.apply_relay(&page(&log, 2, 1)) {
        Err(ApplyError::Gap {
            expected: 1,
            found: 2,
        }) => {}
        other => panic!("expected a gap, got {other:?}"),
    }
    assert_eq!(a.engine.relay_cursor().unwrap(), 0);
    assert_eq!(before, a.state());
}

#[test]
fn acknowledged_pushes_leave_the_outbox() {
    let mut a = Device::memory(1);
    let first = a.op(incoming("m1", "u:bob", "bob", 1));
    a.op(incoming("m2", "u:bob", "bob", 2));
    a.engine
        .acknowledge(&[(first.content_id, 7), (ContentId([9; 32]), 8)])
        .unwrap();
    let outbox = a.engine.outbox(10).unwrap();
    assert_eq!(outbox.len(), 1);
    assert_ne!(outbox[0].content_id(), first.content_id);
}

#[test]
fn acknowledged_positions_that_continue_the_cursor_move_it() {
    let mut a = Device::memory(1);
    let first = a.op(incoming("m1", "u:bob", "bob", 1));
    let second = a.op(incoming("m2", "u:bob", "bob", 2));
    let third = a.op(incoming("m3", "u:bob", "bob", 3));
    // Another device's delta is at 5: the relay logged these at 1, 2 and 4.
    a.engine
        .acknowledge(&[
            (second.content_id, 2),
            (first.content_id, 1),
            (third.content_id, 4),
        ])
        .unwrap();
    assert_eq!(a.engine.relay_cursor().unwrap(), 2, "3 is someone else's");
    assert!(a.engine.outbox(10).unwrap().is_empty());
    // An acknowledgement that does not continue the cursor leaves it.
    let fourth = a.op(incoming("m4", "u:bob", "bob", 4));
    a.engine.acknowledge(&[(fourth.content_id, 9)]).unwrap();
    assert_eq!(a.engine.relay_cursor().unwrap(), 2);
}
