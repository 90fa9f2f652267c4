//! The product rules added to the merge rules of DESIGN.md §3: pending
//! group invitations and applications, message pins, do-not-disturb,
//! timed mutes, group read receipts, chat rooms, attribute removal, group
//! disabling and the contact `ext`. Each is a two- or three-device test
//! that exchanges deltas in both orders.

mod common;

use common::*;
use tandem_engine::delta::{Delta, EncodedDelta, DELTA_FORMAT};
use tandem_engine::event::*;
use tandem_engine::op::*;
use tandem_engine::*;

/// A and B in step, both knowing group g1 (owner: the account; members
/// bob and carol).
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

fn members(row: &GroupRow) -> Vec<&str> {
    row.members.iter().map(|m| m.user_id.as_str()).collect()
}

fn last_event(device: &Device) -> Event {
    device.engine.pending_events(1_000).unwrap().pop().unwrap()
}

// ---- Pending invitations and applications ----

#[test]
fn an_invitee_is_not_a_member_until_they_accept() {
    let (mut a, mut b) = with_group();
    a.op(Op::Group(GroupOp::Invite {
        group: group("g1"),
        users: vec![user("dave"), user("bob")],
    }));
    send(&a, &mut b);
    let g1 = b.engine.group(&group("g1")).unwrap().unwrap();
    assert_eq!(members(&g1), [ACCOUNT, "bob", "carol"]);
    assert_eq!(g1.invited, ["dave"], "bob is a member already");
    let invited = last_event(&b);
    assert!(matches!(
        invited.kind,
        EventKind::Group(GroupEvent::Invited { .. })
    ));
    assert!(!invited.superseded);

    // Concurrently: B hears dave accepted, A hears he declined. Accepting
    // adds a member; declining takes back the invitation; a member is never
    // shown as invited.
    let state = both_orders(|| {
        let (mut a, mut b) = with_group();
        a.op(Op::Group(GroupOp::Invite {
            group: group("g1"),
            users: vec![user("dave")],
        }));
        send(&a, &mut b);
        b.op(Op::Group(GroupOp::InviteeAccepted {
            group: group("g1"),
            user: user("dave"),
        }));
        a.op(Op::Group(GroupOp::InviteeDeclined {
            group: group("g1"),
            user: user("dave"),
            reason: "busy".into(),
        }));
        (a, b)
    });
    let g1 = &state.groups[0];
    assert_eq!(members(g1), [ACCOUNT, "bob", "carol", "dave"]);
    assert!(g1.invited.is_empty());

    // A kick takes back a pending invitation too.
    let state = both_orders(|| {
        let (mut a, b) = with_group();
        a.op(Op::Group(GroupOp::Invite {
            group: group("g1"),
            users: vec![user("erin")],
        }));
        a.op(Op::Group(GroupOp::Kick {
            group: group("g1"),
            users: vec![user("erin")],
        }));
        (a, b)
    });
    assert!(state.groups[0].invited.is_empty());
}

#[test]
fn an_invitation_to_this_account_is_pending_and_accepting_wins_over_a_concurrent_decline() {
    let state = both_orders(|| {
        let mut a = Device::memory(1);
        let mut b = Device::memory(2);
        a.op(Op::Group(GroupOp::ReceiveInvitation {
            group: group("g9"),
            inviter: user("bob"),
        }));
        send(&a, &mut b);
        let pending = b.state().groups;
        assert_eq!(pending[0].state, GroupStanding::Invited);
        assert!(pending[0].members.is_empty(), "not a member yet");
        let heard = last_event(&b);
        assert!(matches!(
            heard.kind,
            EventKind::Group(GroupEvent::InvitationReceived { .. })
        ));
        a.op(Op::Group(GroupOp::DeclineInvitation {
            group: group("g9"),
            inviter: user("bob"),
            reason: String::new(),
        }));
        b.op(Op::Group(GroupOp::AcceptInvitation {
            group: group("g9"),
            inviter: user("bob"),
        }));
        (a, b)
    });
    let g9 = &state.groups[0];
    assert_eq!(g9.state, GroupStanding::Member);
    assert_eq!(members(g9), [ACCOUNT, "bob"]);

    // Declining alone drops the invitation everywhere; declining a group
    // that is not an invitation changes nothing.
    let (mut a, mut b) = (Device::memory(1), Device::memory(2));
    a.op(Op::Group(GroupOp::ReceiveInvitation {
        group: group("g9"),
        inviter: user("bob"),
    }));
    send(&a, &mut b);
    b.op(Op::Group(GroupOp::DeclineInvitation {
        group: group("g9"),
        inviter: user("bob"),
        reason: "no".into(),
    }));
    send(&b, &mut a);
    assert!(a.state().groups.is_empty());
    let moot = a.op(Op::Group(GroupOp::DeclineInvitation {
        group: group("g9"),
        inviter: user("bob"),
        reason: String::new(),
    }));
    assert_eq!(moot.recorded, None);
    // An invitation to a group this account is in is refused.
    a.op(Op::Group(GroupOp::Join { group: group("g8") }));
    assert!(matches!(
        a.try_op(Op::Group(GroupOp::ReceiveInvitation {
            group: group("g8"),
            inviter: user("bob"),
        })),
        Err(OpError::Refused(Refused::GroupExists(_)))
    ));
}

#[test]
fn an_application_waits_for_an_answer_and_accepting_wins_over_declining() {
    let state = both_orders(|| {
        let (mut a, mut b) = with_group();
        a.op(Op::Group(GroupOp::ReceiveApplication {
            group: group("g1"),
            user: user("erin"),
            reason: "hi".into(),
        }));
        send(&a, &mut b);
        assert_eq!(b.state().groups[0].applicants, ["erin"]);
        a.op(Op::Group(GroupOp::DeclineApplication {
            group: group("g1"),
            user: user("erin"),
            reason: "full".into(),
        }));
        b.op(Op::Group(GroupOp::AcceptApplication {
            group: group("g1"),
            user: user("erin"),
        }));
        (a, b)
    });
    let g1 = &state.groups[0];
    assert!(members(g1).contains(&"erin"));
    assert!(g1.applicants.is_empty());
}

/// The changes `device` has made and merged, as a fresh automerge
/// document acting as `actor`: what an earlier build would edit.
fn document_of(path: &std::path::Path, actor: [u8; 16]) -> automerge::Automerge {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT bytes FROM doc_chunks ORDER BY kind = 'change', id")
        .unwrap();
    let chunks: Vec<Vec<u8>> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut doc = automerge::Automerge::new();
    for chunk in chunks {
        doc.load_incremental(&chunk).unwrap();
    }
    doc.with_actor(automerge::ActorId::from(actor))
}

#[test]
fn an_invite_made_by_an_earlier_build_still_makes_members_at_once() {
    use automerge::transaction::Transactable;
    use automerge::ReadDoc;
    let (mut a, path) = file_device(1);
    a.op(Op::Group(GroupOp::Create {
        group: group("g1"),
        name: "Team".into(),
        members: vec![user("bob")],
    }));
    let mut b = Device::memory(2);
    send(&a, &mut b);
    // An earlier build's Invite: the same operation, whose document change
    // put the invitee straight into the members.
    let old_device = [9u8; 16];
    let mut doc = document_of(&path, old_device);
    let (_, groups) = doc.get(automerge::ROOT, "groups").unwrap().unwrap();
    let (_, g1) = doc.get(&groups, "g1").unwrap().unwrap();
    let (_, member_map) = doc.get(&g1, "members").unwrap().unwrap();
    let mut tx = doc.transaction();
    tx.put(&member_map, "dave", 5_000i64).unwrap();
    let (hash, _) = tx.commit();
    let change = doc.get_change_by_hash(&hash.unwrap()).unwrap();
    let delta = Delta {
        format: DELTA_FORMAT,
        account: AccountId::new(ACCOUNT).unwrap(),
        origin: DeviceId(old_device),
        origin_seq: 1,
        made_at_ms: 5_000,
        op: Op::Group(GroupOp::Invite {
            group: group("g1"),
            users: vec![user("dave")],
        }),
        change: Some(change.raw_bytes().to_vec()),
        read_markers: Vec::new(),
    };
    let old: EncodedDelta = delta.encode();
    for device in [&mut a, &mut b] {
        device
            .engine
            .apply_remote(std::slice::from_ref(&old))
            .unwrap();
        let g1 = device.engine.group(&group("g1")).unwrap().unwrap();
        assert_eq!(members(&g1), [ACCOUNT, "bob", "dave"]);
        assert!(g1.invited.is_empty());
        let heard = last_event(device);
        assert!(matches!(
            heard.kind,
            EventKind::Group(GroupEvent::Invited { .. })
        ));
        assert!(!heard.superseded, "a member counts as invited");
    }
    assert_converged(&[a, b]);
}

// ---- Message pins ----

/// A and B in step, both knowing messages m1 < m2 from bob.
fn with_messages() -> (Device, Device) {
    let mut a = Device::memory(1);
    let mut b = Device::memory(2);
    a.op(incoming("m1", "u:bob", "bob", 100));
    a.op(incoming("m2", "u:bob", "bob", 101));
    send(&a, &mut b);
    (a, b)
}

fn pins(device: &Device, conversation: &str) -> Vec<String> {
    device
        .engine
        .pinned_messages(&conv(conversation))
        .unwrap()
        .into_iter()
        .map(|p| p.message)
        .collect()
}

#[test]
fn message_pins_are_registers_synced_with_events() {
    let (mut a, mut b) = with_messages();
    a.op(Op::Conversation(ConversationOp::PinMessage {
        conversation: conv("u:bob"),
        message: msg("m1"),
    }));
    send(&a, &mut b);
    assert_eq!(pins(&b, "u:bob"), ["m1"]);
    let pinned = b.engine.pinned_messages(&conv("u:bob")).unwrap();
    assert_eq!(
        pinned[0].pinned_at_ms, a.now_ms,
        "when, by the pinning device"
    );
    assert!(matches!(
        last_event(&b).kind,
        EventKind::Conversation(ConversationEvent::MessagePinned { .. })
    ));
    // Pinning again keeps the first pin and changes nothing.
    let again = b.op(Op::Conversation(ConversationOp::PinMessage {
        conversation: conv("u:bob"),
        message: msg("m1"),
    }));
    assert_eq!(again.recorded, None);

    // Concurrently: A unpins m1 and pins it again; B unpins m1 and pins
    // m2. Both orders agree: concurrent writes to one message's pin
    // resolve the same everywhere.
    let state = both_orders(|| {
        let (mut a, mut b) = with_messages();
        a.op(Op::Conversation(ConversationOp::PinMessage {
            conversation: conv("u:bob"),
            message: msg("m1"),
        }));
        send(&a, &mut b);
        a.op(Op::Conversation(ConversationOp::UnpinMessage {
            conversation: conv("u:bob"),
            message: msg("m1"),
        }));
        a.op(Op::Conversation(ConversationOp::PinMessage {
            conversation: conv("u:bob"),
            message: msg("m1"),
        }));
        b.op(Op::Conversation(ConversationOp::UnpinMessage {
            conversation: conv("u:bob"),
            message: msg("m1"),
        }));
        b.op(Op::Conversation(ConversationOp::PinMessage {
            conversation: conv("u:bob"),
            message: msg("m2"),
        }));
        (a, b)
    });
    let pinned: Vec<_> = state
        .pinned_messages
        .iter()
        .map(|(_, p)| p.message.as_str())
        .collect();
    assert!(pinned.contains(&"m2"), "nobody touched m2's pin but B");

    // A pin names a message of that conversation, known here.
    let (mut a, _) = with_messages();
    assert!(matches!(
        a.try_op(Op::Conversation(ConversationOp::PinMessage {
            conversation: conv("u:carol"),
            message: msg("m1"),
        })),
        Err(OpError::WrongConversation { .. })
    ));
    assert!(matches!(
        a.try_op(Op::Conversation(ConversationOp::PinMessage {
            conversation: conv("u:bob"),
            message: msg("m9"),
        })),
        Err(OpError::UnknownMessage(_))
    ));
    // Unpinning what is not pinned changes nothing.
    let moot = a.op(Op::Conversation(ConversationOp::UnpinMessage {
        conversation: conv("u:bob"),
        message: msg("m2"),
    }));
    assert_eq!(moot.recorded, None);
}

// ---- Do-not-disturb modes and timed mutes ----

#[test]
fn a_do_not_disturb_mode_is_one_register_answered_for_the_time_the_app_passes() {
    let mentions_until = DoNotDisturb {
        remind: RemindType::MentionsOnly,
        quiet: Some(QuietTime::Until { until_ms: 50_000 }),
    };
    let nights = DoNotDisturb {
        remind: RemindType::All,
        quiet: Some(QuietTime::Daily {
            start_minute: 22 * 60,
            end_minute: 7 * 60,
            utc_offset_minutes: 0,
        }),
    };
    let state = both_orders(|| {
        let (mut a, mut b) = with_messages();
        a.op(Op::Conversation(ConversationOp::SetDoNotDisturbMode {
            conversation: conv("u:bob"),
            mode: mentions_until,
        }));
        b.op(Op::Conversation(ConversationOp::SetDoNotDisturbMode {
            conversation: conv("u:bob"),
            mode: nights,
        }));
        (a, b)
    });
    // One of the two modes, whole: never a mix of both.
    let mode = state.conversations[0].settings.do_not_disturb;
    assert!(mode == mentions_until || mode == nights, "{mode:?}");

    let (mut a, mut b) = with_messages();
    a.op(Op::Conversation(ConversationOp::SetDoNotDisturbMode {
        conversation: conv("u:bob"),
        mode: mentions_until,
    }));
    send(&a, &mut b);
    let bob = conv("u:bob");
    for device in [&a, &b] {
        let at = |now| device.engine.remind_type_at(&bob, now).unwrap();
        assert_eq!(at(49_999), RemindType::None, "quiet until 50 s");
        assert_eq!(at(50_000), RemindType::MentionsOnly, "then mentions only");
        assert!(device.engine.do_not_disturb_in_force(&bob, 60_000).unwrap());
    }
    let heard = last_event(&b);
    assert_eq!(
        heard.kind,
        EventKind::Conversation(ConversationEvent::DoNotDisturbModeChanged {
            conversation: bob.clone(),
            remind: RemindType::MentionsOnly,
            quiet: Some(QuietTime::Until { until_ms: 50_000 }),
        }),
        "the event says what it changed to"
    );
    // The same mode again changes nothing; off lets everything through.
    let again = a.op(Op::Conversation(ConversationOp::SetDoNotDisturbMode {
        conversation: bob.clone(),
        mode: mentions_until,
    }));
    assert_eq!(again.recorded, None);
    b.op(Op::Conversation(ConversationOp::SetDoNotDisturbMode {
        conversation: bob.clone(),
        mode: DoNotDisturb::OFF,
    }));
    send(&b, &mut a);
    assert!(!a.engine.do_not_disturb_in_force(&bob, 0).unwrap());
    // The classic switch and the modes are one setting.
    a.op(Op::Conversation(ConversationOp::SetDoNotDisturb {
        conversation: bob.clone(),
        enabled: true,
    }));
    assert_eq!(a.engine.do_not_disturb(&bob).unwrap(), DoNotDisturb::SILENT);
    // A quiet time no device accepts is refused before anything is written.
    assert!(matches!(
        a.try_op(Op::Conversation(ConversationOp::SetDoNotDisturbMode {
            conversation: bob,
            mode: DoNotDisturb {
                remind: RemindType::All,
                quiet: Some(QuietTime::Daily {
                    start_minute: 60,
                    end_minute: 60,
                    utc_offset_minutes: 0,
                }),
            },
        })),
        Err(OpError::Invalid(InvalidOp::BadQuietTime { .. }))
    ));
    send(&a, &mut b);
    assert_converged(&[a, b]);
}

#[test]
fn a_timed_mute_ends_by_itself() {
    let state = both_orders(|| {
        let (mut a, mut b) = with_group();
        a.op(Op::Group(GroupOp::Mute {
            group: group("g1"),
            users: vec![user("bob")],
            until_ms: 5_000,
        }));
        b.op(Op::Group(GroupOp::Mute {
            group: group("g1"),
            users: vec![user("carol")],
            until_ms: 7_000,
        }));
        (a, b)
    });
    let g1 = &state.groups[0];
    let muted_at = |now| -> Vec<&str> {
        g1.members
            .iter()
            .filter(|m| m.is_muted_at(now))
            .map(|m| m.user_id.as_str())
            .collect()
    };
    assert_eq!(muted_at(4_999), ["bob", "carol"]);
    assert_eq!(muted_at(5_000), ["carol"], "bob's mute ended at 5 s");
    assert_eq!(muted_at(7_000), Vec::<&str>::new());
    let (mut a, _) = with_group();
    a.op(Op::Group(GroupOp::Mute {
        group: group("g1"),
        users: vec![user("bob")],
        until_ms: 5_000,
    }));
    let muted = |now| a.engine.muted_members(&group("g1"), now).unwrap().len();
    assert_eq!((muted(4_999), muted(5_000), muted(5_001)), (1, 0, 0));
    assert!(a
        .engine
        .muted_members(&group("nope"), 0)
        .unwrap()
        .is_empty());
}

// ---- Chat rooms ----

#[test]
fn a_chat_room_syncs_its_messages_and_read_state() {
    let room = "r:lobby";
    let state = both_orders(|| {
        let mut a = Device::memory(1);
        let mut b = Device::memory(2);
        a.op(incoming("r1", room, "zoe", 100));
        a.op(incoming("r2", room, "yan", 101));
        b.op(incoming("r2", room, "yan", 101));
        b.op(incoming("r3", room, "zoe", 102));
        a.op(Op::Conversation(ConversationOp::MarkRead {
            conversation: conv(room),
            message: msg("r2"),
        }));
        b.op(Op::Message(MessageOp::Send {
            conversation: conv(room),
            body: "hi room".into(),
        }));
        (a, b)
    });
    let lobby = state.conversations.iter().find(|c| c.id == room).unwrap();
    assert_eq!(lobby.settings.read_message, "r2");
    assert_eq!(
        lobby.unread, 1,
        "r3, after the marker; the own message is not unread"
    );
    assert_eq!(
        state
            .messages
            .iter()
            .filter(|m| m.conversation == room)
            .count(),
        4
    );
}

// ---- Member attributes removed; groups disabled and enabled ----

#[test]
fn removing_an_attribute_and_setting_it_concurrently_resolve_the_same_everywhere() {
    let state = both_orders(|| {
        let (mut a, mut b) = with_group();
        a.op(Op::Group(GroupOp::SetMemberAttributes {
            group: group("g1"),
            user: user("bob"),
            attributes: vec![("nick".into(), "B".into()), ("role".into(), "dj".into())],
        }));
        send(&a, &mut b);
        a.op(Op::Group(GroupOp::RemoveMemberAttributes {
            group: group("g1"),
            user: user("bob"),
            keys: vec!["nick".into(), "role".into()],
        }));
        b.op(Op::Group(GroupOp::SetMemberAttributes {
            group: group("g1"),
            user: user("bob"),
            attributes: vec![("nick".into(), "Bobby".into())],
        }));
        (a, b)
    });
    let attrs: Vec<_> = state.groups[0]
        .attributes
        .iter()
        .map(|a| (a.key.as_str(), a.value.as_str()))
        .collect();
    // The concurrent set survives the remove (add-wins); the key only A
    // touched is gone.
    assert_eq!(attrs, [("nick", "Bobby")]);

    let (mut a, mut b) = with_group();
    let moot = a.op(Op::Group(GroupOp::RemoveMemberAttributes {
        group: group("g1"),
        user: user("bob"),
        keys: vec!["nick".into()],
    }));
    assert_eq!(moot.recorded, None, "nothing to remove");
    a.op(Op::Group(GroupOp::SetMemberAttributes {
        group: group("g1"),
        user: user("bob"),
        attributes: vec![("nick".into(), "B".into())],
    }));
    a.op(Op::Group(GroupOp::RemoveMemberAttributes {
        group: group("g1"),
        user: user("bob"),
        keys: vec!["nick".into()],
    }));
    send(&a, &mut b);
    assert!(b.state().groups[0].attributes.is_empty());
    let heard = last_event(&b);
    assert!(matches!(
        heard.kind,
        EventKind::Group(GroupEvent::MemberAttributesRemoved { .. })
    ));
    assert!(!heard.superseded);
}

#[test]
fn a_group_disabled_and_enabled_by_the_service_is_a_register_with_events() {
    let state = both_orders(|| {
        let (mut a, mut b) = with_group();
        a.op(Op::Group(GroupOp::Disable { group: group("g1") }));
        send(&a, &mut b);
        a.op(Op::Group(GroupOp::Enable { group: group("g1") }));
        a.op(Op::Group(GroupOp::Disable { group: group("g1") }));
        b.op(Op::Group(GroupOp::Enable { group: group("g1") }));
        (a, b)
    });
    assert_eq!(state.groups.len(), 1, "kept, whatever its flag");

    let (mut a, mut b) = with_group();
    a.op(Op::Group(GroupOp::Disable { group: group("g1") }));
    send(&a, &mut b);
    assert!(b.state().groups[0].disabled);
    let heard = last_event(&b);
    assert_eq!(
        heard.kind,
        EventKind::Group(GroupEvent::Disabled { group: group("g1") })
    );
    assert_eq!(heard.to_json_value()["op"], "disabled");
    b.op(Op::Group(GroupOp::Enable { group: group("g1") }));
    send(&b, &mut a);
    assert!(!a.state().groups[0].disabled);
    assert_eq!(
        a.engine
            .pending_events(10)
            .unwrap()
            .pop()
            .unwrap()
            .to_json_value()["op"],
        "enabled"
    );
    let moot = a.op(Op::Group(GroupOp::Enable { group: group("g1") }));
    assert_eq!(moot.recorded, None);
}

// ---- Group read receipts ----

#[test]
fn group_read_receipts_only_rise_and_merge_in_any_order() {
    let state = both_orders(|| {
        let mut a = Device::memory(1);
        let mut b = Device::memory(2);
        for (i, id) in ["g1m1", "g1m2", "g1m3"].iter().enumerate() {
            a.op(incoming(id, "g:g1", "bob", 100 + i as i64));
        }
        send(&a, &mut b);
        // Carol's receipts arrive on A for m3 and on B for m1; dave's on B.
        a.op(Op::Message(MessageOp::GroupRead {
            message: msg("g1m3"),
            member: user("carol"),
        }));
        b.op(Op::Message(MessageOp::GroupRead {
            message: msg("g1m1"),
            member: user("carol"),
        }));
        b.op(Op::Message(MessageOp::GroupRead {
            message: msg("g1m2"),
            member: user("dave"),
        }));
        (a, b)
    });
    assert_eq!(state.group_acks.len(), 3);
    let (mut a, mut b) = (Device::memory(1), Device::memory(2));
    for (i, id) in ["g1m1", "g1m2", "g1m3"].iter().enumerate() {
        a.op(incoming(id, "g:g1", "bob", 100 + i as i64));
    }
    a.op(Op::Message(MessageOp::GroupRead {
        message: msg("g1m3"),
        member: user("carol"),
    }));
    send(&a, &mut b);
    b.op(Op::Message(MessageOp::GroupRead {
        message: msg("g1m2"),
        member: user("dave"),
    }));
    // An older receipt of carol's does not lower her mark.
    b.op(Op::Message(MessageOp::GroupRead {
        message: msg("g1m1"),
        member: user("carol"),
    }));
    send(&b, &mut a);
    for device in [&a, &b] {
        let read = |m: &str| device.engine.group_read_by(&msg(m)).unwrap();
        assert_eq!(read("g1m1"), ["carol", "dave"]);
        assert_eq!(read("g1m2"), ["carol", "dave"]);
        assert_eq!(read("g1m3"), ["carol"]);
    }
    let heard = last_event(&a);
    assert_eq!(heard.to_json_value()["op"], "group_read");
    // The same receipt again changes nothing.
    let again = a.op(Op::Message(MessageOp::GroupRead {
        message: msg("g1m2"),
        member: user("dave"),
    }));
    assert_eq!(again.recorded, None);
    assert!(matches!(
        a.try_op(Op::Message(MessageOp::GroupRead {
            message: msg("g1m9"),
            member: user("dave"),
        })),
        Err(OpError::UnknownMessage(_))
    ));
    assert_converged(&[a, b]);
}

// ---- The contact ext ----

#[test]
fn a_contact_operations_ext_reaches_the_other_devices_event_and_survives_a_restart() {
    let (mut b, path) = file_device(2);
    let state = both_orders(|| {
        let mut a = Device::memory(1);
        let mut b = Device::memory(2);
        a.op(Op::Contact(
            ContactOp::Accept { user: user("bob") }.with_ext("met at the conference"),
        ));
        b.op(Op::Contact(
            ContactOp::Block { user: user("bob") }.with_ext("spam?"),
        ));
        (a, b)
    });
    // An ext changes nothing in how the operations merge.
    assert_eq!(state.contacts[0].status, ContactStatus::Friend);
    assert_eq!(state.blocklist[0].user_id, "bob");

    let mut a = Device::memory(1);
    a.op(Op::Contact(
        ContactOp::Accept { user: user("bob") }.with_ext("met at the conference"),
    ));
    a.op(Op::Contact(ContactOp::Block { user: user("eve") }));
    send(&a, &mut b);
    b.reopen(&path);
    let events = b.engine.events_after(0, 10).unwrap();
    assert_eq!(events[0].ext.as_deref(), Some("met at the conference"));
    assert_eq!(
        events[0].kind,
        EventKind::Contact(ContactEvent::Accepted { user: user("bob") })
    );
    assert_eq!(events[1].ext, None);

    // The ext's limit, below, at and above; an ext inside an ext is refused.
    for (len, ok) in [
        (limits::TEXT_BYTES_MAX - 1, true),
        (limits::TEXT_BYTES_MAX, true),
        (limits::TEXT_BYTES_MAX + 1, false),
    ] {
        let op = Op::Contact(ContactOp::Block { user: user("eve") }.with_ext("e".repeat(len)));
        assert_eq!(op.validate().is_ok(), ok, "{len}");
    }
    let nested = Op::Contact(
        ContactOp::Block { user: user("eve") }
            .with_ext("a")
            .with_ext("b"),
    );
    assert!(matches!(nested.validate(), Err(InvalidOp::NestedExt)));
}
