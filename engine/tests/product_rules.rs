//! The product rules added to the merge rules of DESIGN.md §3: pending
//! group invitations and applications, message pins, do-not-disturb,
//! timed mutes, group read receipts, chat rooms, attribute removal, group
//! disabling and the contact `ext`. Each is a two- or three-device test
//! that exchanges deltas in both orders.

mod common;

use common::*;
use tandem_engine::delta::{Delta, EncodedDelta, DELTA_FORMAT};
use tandem_engine::event::*;
use tandem_engine::model::*;
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
        device.engine.apply_remote(&[old.clone()]).unwrap();
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
