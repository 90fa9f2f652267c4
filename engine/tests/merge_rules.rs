//! Every merge rule of DESIGN.md §3, as two- and three-device tests that
//! exchange deltas in both orders.

mod common;

use common::*;
use tandem_engine::model::*;
use tandem_engine::op::*;
use tandem_engine::*;

/// A and B, already in step, both knowing messages m1 < m2 < m3 from bob.
fn two_with_messages() -> (Device, Device) {
    let mut a = Device::memory(1);
    let mut b = Device::memory(2);
    for (i, id) in ["m1", "m2", "m3"].iter().enumerate() {
        a.op(incoming(id, "u:bob", "bob", 100 + i as i64));
    }
    send(&a, &mut b);
    (a, b)
}

#[test]
fn message_sent_on_one_device_appears_on_the_other() {
    let mut a = Device::memory(1);
    let mut b = Device::memory(2);
    let sent = a.op(Op::Message(MessageOp::Send {
        conversation: conv("u:bob"),
        body: "hi bob".into(),
    }));
    send(&a, &mut b);
    let id = sent.message_id.unwrap();
    let on_b = b.engine.message(&id).unwrap().unwrap();
    assert_eq!(on_b.body, "hi bob");
    assert_eq!(on_b.sender, ACCOUNT);
    let list = b.engine.conversations(0, 10).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].last_message.as_deref(), Some(id.as_str()));
    assert_eq!(list[0].unread, 0, "own messages are not unread");
    assert_converged(&[a, b]);
}

#[test]
fn the_same_incoming_message_on_two_devices_is_stored_once() {
    let state = both_orders(|| {
        let mut a = Device::memory(1);
        let mut b = Device::memory(2);
        a.op(incoming("m1", "u:bob", "bob", 100));
        b.op(incoming("m1", "u:bob", "bob", 100));
        (a, b)
    });
    assert_eq!(state.messages.len(), 1);
    assert_eq!(state.conversations[0].unread, 1);
}

#[test]
fn recall_wins_over_anything_concurrent() {
    let state = both_orders(|| {
        let (mut a, mut b) = two_with_messages();
        a.op(Op::Message(MessageOp::Recall { message: msg("m2") }));
        b.op(Op::Message(MessageOp::Receipt {
            message: msg("m2"),
            receipt: PeerReceipt::Read,
        }));
        (a, b)
    });
    let m2 = state.messages.iter().find(|m| m.id == "m2").unwrap();
    assert!(m2.recalled);
    assert_eq!(m2.body, "");
    assert_eq!(m2.receipt, Receipt::Read);
}

#[test]
fn a_recall_that_overtakes_its_message_still_applies() {
    let mut a = Device::memory(1);
    let mut b = Device::memory(2);
    let mut c = Device::memory(3);
    a.op(incoming("m1", "u:bob", "bob", 100));
    send(&a, &mut b);
    b.op(Op::Message(MessageOp::Recall { message: msg("m1") }));
    // C hears the recall (from B's log, without A's ingest) first.
    let b_own: Vec<_> = b.all_deltas().into_iter().skip(1).collect();
    c.engine.apply_remote(&b_own).unwrap();
    send(&a, &mut c);
    assert!(c.state().messages[0].recalled);
    let mut devices = [a, b, c];
    sync_all(&mut devices);
    assert_converged(&devices);
}

#[test]
fn peer_receipts_only_move_forward() {
    let state = both_orders(|| {
        let (mut a, mut b) = two_with_messages();
        a.op(Op::Message(MessageOp::Receipt {
            message: msg("m1"),
            receipt: PeerReceipt::Read,
        }));
        b.op(Op::Message(MessageOp::Receipt {
            message: msg("m1"),
            receipt: PeerReceipt::Delivered,
        }));
        (a, b)
    });
    assert_eq!(state.messages[0].receipt, Receipt::Read);
}

#[test]
fn the_read_marker_is_the_maximum_over_devices_and_never_moves_back() {
    let state = both_orders(|| {
        let (mut a, mut b) = two_with_messages();
        a.op(Op::Conversation(ConversationOp::MarkRead {
            conversation: conv("u:bob"),
            message: msg("m3"),
        }));
        b.op(Op::Conversation(ConversationOp::MarkRead {
            conversation: conv("u:bob"),
            message: msg("m1"),
        }));
        (a, b)
    });
    let bob = &state.conversations[0];
    assert_eq!(
        (bob.settings.read_at_ms, bob.settings.read_message.as_str()),
        (102, "m3")
    );
    assert_eq!(bob.unread, 0);

    // After merging, an older marker from a lagging device changes nothing.
    let (mut a, mut b) = two_with_messages();
    a.op(Op::Conversation(ConversationOp::MarkRead {
        conversation: conv("u:bob"),
        message: msg("m3"),
    }));
    send(&a, &mut b);
    b.op(Op::Conversation(ConversationOp::MarkRead {
        conversation: conv("u:bob"),
        message: msg("m2"),
    }));
    send(&b, &mut a);
    for device in [&a, &b] {
        let bob = device.engine.conversation(&conv("u:bob")).unwrap().unwrap();
        assert_eq!(bob.settings.read_message, "m3");
    }
}

#[test]
fn unread_counts_only_others_messages_after_the_marker() {
    let (mut a, mut b) = two_with_messages();
    a.op(Op::Message(MessageOp::Send {
        conversation: conv("u:bob"),
        body: "mine".into(),
    }));
    a.op(Op::Conversation(ConversationOp::MarkRead {
        conversation: conv("u:bob"),
        message: msg("m1"),
    }));
    send(&a, &mut b);
    let bob = b.engine.conversation(&conv("u:bob")).unwrap().unwrap();
    assert_eq!(bob.unread, 2, "m2 and m3; the own message is not unread");
    b.op(incoming("m4", "g:team", "carol", 50));
    b.op(Op::Conversation(ConversationOp::ClearAllUnread));
    send(&b, &mut a);
    for device in [&a, &b] {
        assert!(device.state().conversations.iter().all(|c| c.unread == 0));
    }
    assert_converged(&[a, b]);
}

#[test]
fn concurrent_pin_and_unpin_resolve_the_same_everywhere() {
    let state = both_orders(|| {
        let (mut a, mut b) = two_with_messages();
        a.op(Op::Conversation(ConversationOp::Pin {
            conversation: conv("u:bob"),
        }));
        send(&a, &mut b);
        // A unpins and pins again while B, concurrently, unpins.
        a.op(Op::Conversation(ConversationOp::Unpin {
            conversation: conv("u:bob"),
        }));
        a.op(Op::Conversation(ConversationOp::Pin {
            conversation: conv("u:bob"),
        }));
        b.op(Op::Conversation(ConversationOp::Unpin {
            conversation: conv("u:bob"),
        }));
        (a, b)
    });
    // Either may win; both_orders already checked every device agrees.
    assert_eq!(state.conversations.len(), 1);
}

#[test]
fn registers_marks_and_do_not_disturb_converge() {
    let state = both_orders(|| {
        let (mut a, mut b) = two_with_messages();
        a.op(Op::Conversation(ConversationOp::AddMark {
            conversation: conv("u:bob"),
            mark: "work".into(),
        }));
        b.op(Op::Conversation(ConversationOp::AddMark {
            conversation: conv("u:bob"),
            mark: "family".into(),
        }));
        b.op(Op::Conversation(ConversationOp::SetDoNotDisturb {
            conversation: conv("u:bob"),
            enabled: true,
        }));
        (a, b)
    });
    let settings = &state.conversations[0].settings;
    assert_eq!(settings.marks, ["family", "work"]);
    assert!(settings.do_not_disturb.is_set());
}

#[test]
fn a_contact_removed_on_one_device_and_re_added_on_another_stays() {
    let state = both_orders(|| {
        let mut a = Device::memory(1);
        let mut b = Device::memory(2);
        a.op(Op::Contact(ContactOp::Accept { user: user("bob") }));
        send(&a, &mut b);
        a.op(Op::Contact(ContactOp::Remove { user: user("bob") }));
        b.op(Op::Contact(ContactOp::Remove { user: user("bob") }));
        b.op(Op::Contact(ContactOp::Add {
            user: user("bob"),
            greeting: "again?".into(),
        }));
        (a, b)
    });
    assert_eq!(state.contacts.len(), 1, "add wins");
    assert_eq!(state.contacts[0].status, ContactStatus::Requested);
}

#[test]
fn a_remark_inside_a_removed_contact_does_not_resurrect_it() {
    let state = both_orders(|| {
        let mut a = Device::memory(1);
        let mut b = Device::memory(2);
        a.op(Op::Contact(ContactOp::Accept { user: user("bob") }));
        send(&a, &mut b);
        a.op(Op::Contact(ContactOp::Remove { user: user("bob") }));
        b.op(Op::Contact(ContactOp::SetRemark {
            user: user("bob"),
            remark: "Bobby".into(),
        }));
        (a, b)
    });
    assert!(state.contacts.is_empty());
}

#[test]
fn the_blocklist_is_add_wins() {
    let state = both_orders(|| {
        let mut a = Device::memory(1);
        let mut b = Device::memory(2);
        a.op(Op::Contact(ContactOp::Block { user: user("eve") }));
        send(&a, &mut b);
        a.op(Op::Contact(ContactOp::Unblock { user: user("eve") }));
        b.op(Op::Contact(ContactOp::Unblock { user: user("eve") }));
        b.op(Op::Contact(ContactOp::Block { user: user("eve") }));
        (a, b)
    });
    assert_eq!(state.blocklist.len(), 1);
}

fn with_group() -> (Device, Device) {
    let mut a = Device::memory(1);
    let mut b = Device::memory(2);
    a.op(Op::Group(GroupOp::Create {
        group: group("g1"),
        name: "Team".into(),
        members: vec![user("bob"), user("carol")],
    }));
    send(&a, &mut b);
    (a, b)
}

#[test]
fn an_edit_inside_a_removed_group_does_not_resurrect_it() {
    let state = both_orders(|| {
        let (mut a, mut b) = with_group();
        a.op(Op::Group(GroupOp::Destroy { group: group("g1") }));
        b.op(Op::Group(GroupOp::UpdateInfo {
            group: group("g1"),
            update: GroupInfoUpdate {
                name: Some("Renamed".into()),
                ..Default::default()
            },
        }));
        b.op(Op::Group(GroupOp::MuteAll { group: group("g1") }));
        (a, b)
    });
    assert!(state.groups.is_empty());
}

#[test]
fn group_membership_is_add_wins() {
    let state = both_orders(|| {
        let (mut a, mut b) = with_group();
        a.op(Op::Group(GroupOp::Kick {
            group: group("g1"),
            users: vec![user("carol")],
        }));
        b.op(Op::Group(GroupOp::Kick {
            group: group("g1"),
            users: vec![user("carol")],
        }));
        // Back in (an invitation she accepted): a re-add.
        b.op(Op::Group(GroupOp::InviteeAccepted {
            group: group("g1"),
            user: user("carol"),
        }));
        (a, b)
    });
    let members: Vec<_> = state.groups[0]
        .members
        .iter()
        .map(|m| m.user_id.as_str())
        .collect();
    assert_eq!(members, [ACCOUNT, "bob", "carol"]);
}

#[test]
fn group_admins_mutes_and_info_converge() {
    let state = both_orders(|| {
        let (mut a, mut b) = with_group();
        a.op(Op::Group(GroupOp::AddAdmin {
            group: group("g1"),
            user: user("bob"),
        }));
        a.op(Op::Group(GroupOp::Mute {
            group: group("g1"),
            users: vec![user("carol")],
            until_ms: 9_999,
        }));
        b.op(Op::Group(GroupOp::UpdateInfo {
            group: group("g1"),
            update: GroupInfoUpdate {
                announcement: Some("hello".into()),
                ..Default::default()
            },
        }));
        b.op(Op::Group(GroupOp::SetMemberAttributes {
            group: group("g1"),
            user: user("bob"),
            attributes: vec![("nick".into(), "B".into())],
        }));
        (a, b)
    });
    let g = &state.groups[0];
    assert_eq!(g.name, "Team");
    assert_eq!(g.announcement, "hello");
    let roles: Vec<_> = g
        .members
        .iter()
        .map(|m| (m.user_id.as_str(), m.role, m.muted_until_ms))
        .collect();
    assert_eq!(
        roles,
        [
            (ACCOUNT, MemberRole::Owner, 0),
            ("bob", MemberRole::Admin, 0),
            ("carol", MemberRole::Member, 9_999)
        ]
    );
    assert_eq!(g.attributes.len(), 1);
}

#[test]
fn deleting_a_conversation_keeps_a_newer_concurrent_message() {
    let state = both_orders(|| {
        let (mut a, mut b) = two_with_messages();
        a.now_ms = 200;
        a.op(Op::Conversation(ConversationOp::Delete {
            conversation: conv("u:bob"),
        }));
        b.op(incoming("m9", "u:bob", "bob", 300));
        (a, b)
    });
    let bob = &state.conversations[0];
    assert!(bob.listed, "the newer message keeps the conversation");
    assert_eq!(bob.last_message.as_deref(), Some("m9"));
    assert_eq!(bob.unread, 1, "only the message after the delete");

    let state = both_orders(|| {
        let (mut a, b) = two_with_messages();
        a.now_ms = 200;
        a.op(Op::Conversation(ConversationOp::Delete {
            conversation: conv("u:bob"),
        }));
        (a, b)
    });
    assert!(
        !state.conversations[0].listed,
        "no newer message: gone from the list"
    );
}

#[test]
fn a_change_that_overtakes_its_dependency_waits_for_it() {
    // A creates a group, B (having merged it) renames it. C hears B first.
    let (a, mut b) = with_group();
    let mut c = Device::memory(3);
    b.op(Op::Group(GroupOp::UpdateInfo {
        group: group("g1"),
        update: GroupInfoUpdate {
            name: Some("Renamed".into()),
            ..Default::default()
        },
    }));
    let rename: Vec<_> = b.all_deltas().into_iter().skip(1).collect();
    let applied = c.engine.apply_remote(&rename).unwrap();
    assert_eq!(applied.waiting, 1);
    assert!(c.state().groups.is_empty());
    assert!(
        c.engine.events_after(0, 10).unwrap().is_empty(),
        "no event before it merges"
    );
    let applied = send(&a, &mut c);
    assert_eq!(applied.unblocked, 1);
    assert_eq!(c.state().groups[0].name, "Renamed");
    let ops: Vec<_> = c
        .engine
        .events_after(0, 10)
        .unwrap()
        .into_iter()
        .map(|m| m.source_device)
        .collect();
    assert_eq!(
        ops,
        [DeviceId([1; 16]), DeviceId([2; 16])],
        "events in causal order"
    );
    let mut devices = [a, b, c];
    sync_all(&mut devices);
    assert_converged(&devices);
}

#[test]
fn applying_a_batch_twice_changes_nothing() {
    let (mut a, mut b) = with_group();
    a.op(incoming("m1", "u:bob", "bob", 100));
    let first = send(&a, &mut b);
    assert_eq!(first.new, 1);
    let before = (
        b.state(),
        b.engine.doc_heads().unwrap(),
        b.engine.events_after(0, 100).unwrap(),
    );
    let again = send(&a, &mut b);
    assert_eq!(again.new, 0);
    assert_eq!(again.duplicate, 2);
    assert_eq!(
        before,
        (
            b.state(),
            b.engine.doc_heads().unwrap(),
            b.engine.events_after(0, 100).unwrap()
        )
    );
    // A device's own deltas coming back are duplicates too.
    let echo = send(&b, &mut a);
    assert_eq!(echo.new, 0);
}

#[test]
fn three_devices_with_mixed_operations_converge_in_any_order() {
    let mut devices: Vec<Device> = (1..=3).map(Device::memory).collect();
    devices[0].op(incoming("m1", "u:bob", "bob", 10));
    devices[0].op(Op::Contact(ContactOp::Accept { user: user("bob") }));
    devices[1].op(incoming("m1", "u:bob", "bob", 10));
    devices[1].op(Op::Group(GroupOp::Create {
        group: group("g1"),
        name: "G".into(),
        members: vec![],
    }));
    devices[2].op(Op::Conversation(ConversationOp::Pin {
        conversation: conv("g:g1"),
    }));
    devices[2].op(Op::Message(MessageOp::Send {
        conversation: conv("g:g1"),
        body: "first!".into(),
    }));
    sync_all(&mut devices);
    assert_converged(&devices);
    let state = devices[0].state();
    assert_eq!(state.messages.len(), 2);
    assert_eq!(state.conversations[0].id, "g:g1");
    assert!(state.conversations[0].settings.pinned);
    // Each device heard every operation made elsewhere.
    for (i, device) in devices.iter().enumerate() {
        let heard = device.engine.events_after(0, 100).unwrap().len();
        let elsewhere = 6 - 2;
        assert_eq!(heard, elsewhere, "device {i}");
    }
}

#[test]
fn an_incoming_contact_request_is_pending_everywhere_until_one_device_answers() {
    let mut a = Device::memory(1);
    let mut b = Device::memory(2);
    a.op(Op::Contact(ContactOp::ReceiveRequest {
        user: user("carol"),
        greeting: "it's carol".into(),
    }));
    send(&a, &mut b);
    let pending = b.state().contacts;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].status, ContactStatus::Pending);
    b.op(Op::Contact(ContactOp::Decline {
        user: user("carol"),
    }));
    send(&b, &mut a);
    assert!(a.state().contacts.is_empty(), "declined on b, gone on a");
    // A request from a friend is refused.
    a.op(Op::Contact(ContactOp::Accept { user: user("dave") }));
    assert!(matches!(
        a.try_op(Op::Contact(ContactOp::ReceiveRequest {
            user: user("dave"),
            greeting: String::new(),
        })),
        Err(OpError::Refused(Refused::AlreadyContact(_)))
    ));
    send(&a, &mut b);
    assert_converged(&[a, b]);
}
