//! Multi-device events: one per operation made elsewhere, journaled with the
//! merge, delivered until acknowledged, marked when superseded. (Every
//! operation's event and the stable JSON form are tested with the table of
//! every operation, in `tests/tests/every_op.rs` of tandem-tests.)

mod common;

use common::*;
use tandem_engine::event::*;
use tandem_engine::op::*;
use tandem_engine::*;

#[test]
fn a_concurrent_operation_that_lost_is_marked_superseded() {
    let (mut a, mut b) = {
        let mut a = Device::memory(1);
        let mut b = Device::memory(2);
        a.op(incoming("m1", "u:bob", "bob", 1));
        a.op(Op::Conversation(ConversationOp::Pin {
            conversation: conv("u:bob"),
        }));
        send(&a, &mut b);
        b.engine.ack_events(i64::MAX).unwrap();
        (a, b)
    };
    // Concurrently, A unpins and pins again while B unpins (an unpin of
    // what is not pinned would change nothing and not be recorded).
    a.op(Op::Conversation(ConversationOp::Unpin {
        conversation: conv("u:bob"),
    }));
    a.op(Op::Conversation(ConversationOp::Pin {
        conversation: conv("u:bob"),
    }));
    b.op(Op::Conversation(ConversationOp::Unpin {
        conversation: conv("u:bob"),
    }));
    send(&a, &mut b);
    send(&b, &mut a);
    let pinned = a
        .engine
        .conversation(&conv("u:bob"))
        .unwrap()
        .unwrap()
        .settings
        .pinned;
    let pin_on_b = b.engine.pending_events(10).unwrap().pop().unwrap();
    assert!(matches!(
        pin_on_b.kind,
        EventKind::Conversation(ConversationEvent::Pinned { .. })
    ));
    let unpin_on_a = a.engine.pending_events(10).unwrap().pop().unwrap();
    assert!(matches!(
        unpin_on_a.kind,
        EventKind::Conversation(ConversationEvent::Unpinned { .. })
    ));
    assert_eq!(pin_on_b.superseded, !pinned);
    assert_eq!(unpin_on_a.superseded, pinned);
    assert_ne!(
        pin_on_b.superseded, unpin_on_a.superseded,
        "exactly one lost"
    );

    // A re-add concurrent with a remove: the remove lost.
    a.op(Op::Contact(ContactOp::Accept {
        user: user("carol"),
    }));
    send(&a, &mut b);
    b.engine.ack_events(i64::MAX).unwrap();
    a.op(Op::Contact(ContactOp::Remove {
        user: user("carol"),
    }));
    b.op(Op::Contact(ContactOp::Remove {
        user: user("carol"),
    }));
    b.op(Op::Contact(ContactOp::Add {
        user: user("carol"),
        greeting: String::new(),
    }));
    send(&a, &mut b);
    let removed = b.engine.pending_events(10).unwrap().pop().unwrap();
    assert!(matches!(
        removed.kind,
        EventKind::Contact(ContactEvent::Removed { .. })
    ));
    assert!(removed.superseded);
}

#[test]
fn events_survive_a_crash_until_acknowledged() {
    let mut a = Device::memory(1);
    for i in 1..=10 {
        a.op(incoming(&format!("m{i}"), "u:bob", "bob", i));
    }
    let (mut b, path) = file_device(2);
    send(&a, &mut b);
    // "Crash" right after the merge, before the app read anything.
    b.reopen(&path);
    let pending = b.engine.pending_events(100).unwrap();
    assert_eq!(pending.len(), 10);
    let first = b.engine.next_event().unwrap().unwrap();
    assert_eq!(first, pending[0]);
    assert_eq!(
        b.engine.next_event().unwrap().unwrap(),
        first,
        "manual: again until acknowledged"
    );
    b.engine.ack_events(pending[3].seq).unwrap();
    b.reopen(&path);
    assert_eq!(b.engine.next_event().unwrap().unwrap(), pending[4]);
    b.engine.ack_events(pending[1].seq).unwrap();
    assert_eq!(
        b.engine.next_event().unwrap().unwrap(),
        pending[4],
        "acknowledging backwards does nothing"
    );
    b.engine.set_event_delivery(EventDelivery::AutoAck);
    for expected in &pending[4..] {
        assert_eq!(&b.engine.next_event().unwrap().unwrap(), expected);
    }
    assert_eq!(b.engine.next_event().unwrap(), None);
    b.reopen(&path);
    assert!(
        b.engine.pending_events(100).unwrap().is_empty(),
        "never again once acknowledged"
    );
    // The same deltas again make no new events.
    let applied = send(&a, &mut b);
    assert_eq!(applied.events, 0);
    assert!(b.engine.pending_events(100).unwrap().is_empty());
}

#[test]
fn a_merge_reports_what_changed() {
    let mut a = Device::memory(1);
    let mut b = Device::memory(2);
    a.op(incoming("m1", "u:bob", "bob", 1));
    a.op(Op::Contact(ContactOp::Accept { user: user("bob") }));
    a.op(Op::Contact(ContactOp::Block { user: user("eve") }));
    a.op(Op::Group(GroupOp::Create {
        group: group("g1"),
        name: "G".into(),
        members: vec![],
    }));
    a.op(Op::Conversation(ConversationOp::Pin {
        conversation: conv("g:g1"),
    }));
    let applied = send(&a, &mut b);
    assert_eq!(applied.events, 5);
    assert_eq!(applied.changed.conversations, ["g:g1", "u:bob"]);
    assert_eq!(applied.changed.contacts, ["bob"]);
    assert_eq!(applied.changed.blocklist, ["eve"]);
    assert_eq!(applied.changed.groups, ["g1"]);
    assert!(applied.changed.threads.is_empty());
}

#[test]
fn out_of_order_deltas_wait_for_their_device_s_earlier_operations() {
    let mut a = Device::memory(1);
    let mut b = Device::memory(2);
    a.op(incoming("m1", "u:bob", "bob", 1));
    a.op(Op::Conversation(ConversationOp::Pin {
        conversation: conv("u:bob"),
    }));
    a.op(incoming("m2", "u:bob", "bob", 2));
    let deltas = a.all_deltas();
    // The second and third operations arrive first, in reverse order.
    let applied = b
        .engine
        .apply_remote(&[deltas[2].clone(), deltas[1].clone()])
        .unwrap();
    assert_eq!((applied.new, applied.waiting, applied.events), (2, 2, 0));
    assert!(
        b.state().messages.is_empty(),
        "m2 waits for a's first operation"
    );
    let applied = b.engine.apply_remote(&deltas[..1]).unwrap();
    assert_eq!((applied.new, applied.unblocked, applied.events), (1, 2, 3));
    let order: Vec<_> = b
        .engine
        .pending_events(10)
        .unwrap()
        .iter()
        .map(|e| e.to_json_value()["op"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(order, ["received", "pinned", "received"]);
    assert_converged(&[a, b]);
}
