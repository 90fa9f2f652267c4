//! The no-change rule: an operation that changes nothing on the device
//! that performs it is not recorded, so no device hears of it.

mod common;

use common::*;
use tandem_engine::model::*;
use tandem_engine::op::*;

/// A device with messages m1 < m2 from bob, read up to m2, a friend bob,
/// a group g1 with member carol, and one other device in step with it.
fn settled() -> (Device, Device) {
    let mut a = Device::memory(1);
    let mut b = Device::memory(2);
    a.op(incoming("m1", "u:bob", "bob", 100));
    a.op(incoming("m2", "u:bob", "bob", 101));
    a.op(Op::Conversation(ConversationOp::MarkRead {
        conversation: conv("u:bob"),
        message: msg("m2"),
    }));
    a.op(Op::Message(MessageOp::Receipt {
        message: msg("m1"),
        receipt: PeerReceipt::Read,
    }));
    a.op(Op::Contact(ContactOp::Accept { user: user("bob") }));
    a.op(Op::Group(GroupOp::Create {
        group: group("g1"),
        name: "Team".into(),
        members: vec![user("carol")],
    }));
    send(&a, &mut b);
    (a, b)
}

#[test]
fn operations_that_change_nothing_are_not_recorded_and_nobody_hears_them() {
    let (mut a, mut b) = settled();
    let outbox = a.engine.outbox(100).unwrap().len();
    let heard = b.engine.events_after(0, 100).unwrap().len();
    let before = (a.state(), a.engine.doc_heads().unwrap());
    let unchanged = [
        Op::Conversation(ConversationOp::Unpin {
            conversation: conv("u:bob"),
        }),
        Op::Conversation(ConversationOp::RemoveMark {
            conversation: conv("u:bob"),
            mark: "work".into(),
        }),
        Op::Conversation(ConversationOp::SetDoNotDisturb {
            conversation: conv("u:bob"),
            enabled: false,
        }),
        // An older read mark, and clearing what is read.
        Op::Conversation(ConversationOp::MarkRead {
            conversation: conv("u:bob"),
            message: msg("m1"),
        }),
        Op::Conversation(ConversationOp::ClearUnread {
            conversation: conv("u:bob"),
        }),
        Op::Conversation(ConversationOp::ClearAllUnread),
        // Declining a friend, or someone with no entry.
        Op::Contact(ContactOp::Decline { user: user("bob") }),
        Op::Contact(ContactOp::Decline { user: user("zoe") }),
        // A receipt at or below the recorded one; a message known already.
        Op::Message(MessageOp::Receipt {
            message: msg("m1"),
            receipt: PeerReceipt::Delivered,
        }),
        incoming("m1", "u:bob", "bob", 100),
        // Group lists that already are as asked.
        Op::Group(GroupOp::Kick {
            group: group("g1"),
            users: vec![user("zoe")],
        }),
        Op::Group(GroupOp::UnmuteAll { group: group("g1") }),
        Op::Group(GroupOp::RemoveAdmin {
            group: group("g1"),
            user: user("carol"),
        }),
        Op::Group(GroupOp::Invite {
            group: group("g1"),
            users: vec![user("carol")],
        }),
    ];
    for op in unchanged {
        let performed = a.op(op.clone());
        assert_eq!(performed.recorded, None, "{op:?} was recorded");
        assert_eq!(performed.message_id, None);
    }
    assert_eq!(
        a.engine.outbox(100).unwrap().len(),
        outbox,
        "nothing to push"
    );
    assert_eq!(before, (a.state(), a.engine.doc_heads().unwrap()));
    send(&a, &mut b);
    assert_eq!(
        b.engine.events_after(0, 100).unwrap().len(),
        heard,
        "the other device heard nothing"
    );
    // The next operation that changes something takes the next number:
    // the unchanged ones used none.
    let next = a.op(Op::Conversation(ConversationOp::Pin {
        conversation: conv("u:bob"),
    }));
    assert_eq!(next.recorded.unwrap().origin_seq, 7);
    // Pinning what is pinned changes nothing again.
    let again = a.op(Op::Conversation(ConversationOp::Pin {
        conversation: conv("u:bob"),
    }));
    assert_eq!(again.recorded, None);
    send(&a, &mut b);
    assert_eq!(b.engine.events_after(0, 100).unwrap().len(), heard + 1);
    assert_converged(&[a, b]);
}

#[test]
fn an_operation_another_device_made_moot_is_still_recorded_where_it_changed_something() {
    // B has not heard that A unpinned: B's unpin changes B's state, so it
    // is recorded, and A hears it (its effect already shows there).
    let (mut a, mut b) = settled();
    a.op(Op::Conversation(ConversationOp::Pin {
        conversation: conv("u:bob"),
    }));
    send(&a, &mut b);
    a.op(Op::Conversation(ConversationOp::Unpin {
        conversation: conv("u:bob"),
    }));
    let on_b = b.op(Op::Conversation(ConversationOp::Unpin {
        conversation: conv("u:bob"),
    }));
    assert!(on_b.recorded.is_some());
    let heard = a.engine.events_head().unwrap();
    send(&b, &mut a);
    let events = a.engine.events_after(heard, 10).unwrap();
    assert_eq!(events.len(), 1);
    assert!(!events[0].superseded, "not pinned on A either");
    send(&a, &mut b);
    assert_converged(&[a, b]);
}
