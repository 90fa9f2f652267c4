//! Every operation kind, performed on one device, reaches another device,
//! is journaled there under the origin device, and leaves both in step.

mod common;

use common::*;
use tandem_engine::*;

fn category(op: &tandem_engine::op::Op) -> &'static str {
    use tandem_engine::op::Op;
    match op {
        Op::Message(_) => "message",
        Op::Conversation(_) => "conversation",
        Op::Contact(_) => "contact",
        Op::Group(_) => "group",
        Op::Thread(_) => "thread",
        _ => unreachable!("every_op makes only these"),
    }
}

#[test]
fn every_operation_reaches_the_other_device() {
    let mut a = Device::memory(1);
    let mut b = Device::memory(2);
    let mut journal_seq = 0;
    for op in every_op() {
        a.op(op.clone());
        send(&a, &mut b);
        let heard = b.engine.events_after(journal_seq, 10).unwrap();
        assert_eq!(heard.len(), 1, "{op:?}");
        assert_eq!(heard[0].kind.category(), category(&op));
        assert!(!heard[0].superseded, "{op:?}");
        assert_eq!(heard[0].source_device, DeviceId([1; 16]));
        assert_eq!(heard[0].made_at_ms, a.now_ms);
        journal_seq = heard[0].seq;
        assert_eq!(a.state(), b.state(), "after {op:?}");
    }
    assert!(
        a.engine.events_after(0, 10).unwrap().is_empty(),
        "local operations are not journaled"
    );
    assert_converged(&[a, b]);
}

#[test]
fn the_end_state_of_every_operation() {
    let mut a = Device::memory(1);
    for op in every_op() {
        a.op(op);
    }
    let state = a.state();
    let contacts: Vec<_> = state
        .contacts
        .iter()
        .map(|c| (c.user_id.as_str(), c.status.as_str(), c.remark.as_str()))
        .collect();
    assert_eq!(contacts, [("bob", "friend", "Bobby")]);
    let blocked: Vec<_> = state.blocklist.iter().map(|b| b.user_id.as_str()).collect();
    assert_eq!(blocked, ["mallory"]);
    let groups: Vec<_> = state
        .groups
        .iter()
        .map(|g| (g.id.as_str(), g.state.as_str()))
        .collect();
    assert_eq!(groups, [("g1", "member"), ("g4", "member")]);
    let g1 = &state.groups[0];
    assert_eq!(
        (
            g1.name.as_str(),
            g1.description.as_str(),
            g1.announcement.as_str()
        ),
        ("Core team", "The core", "Ship it")
    );
    assert_eq!(g1.owner, "bob");
    assert!(!g1.mute_all && !g1.messages_blocked);
    assert!(g1.banned.is_empty() && g1.allowed.is_empty());
    let members: Vec<_> = g1
        .members
        .iter()
        .map(|m| (m.user_id.as_str(), m.role.as_str()))
        .collect();
    assert_eq!(
        members,
        [(ACCOUNT, "member"), ("bob", "owner"), ("carol", "member")]
    );
    assert_eq!(g1.attributes.len(), 1);
    assert!(state.threads.is_empty());
    let bob = state
        .conversations
        .iter()
        .find(|c| c.id == "u:bob")
        .unwrap();
    assert!(bob.settings.do_not_disturb && !bob.settings.pinned && bob.settings.marks.is_empty());
    assert_eq!(bob.unread, 0);
    let carol = state
        .conversations
        .iter()
        .find(|c| c.id == "u:carol")
        .unwrap();
    assert!(!carol.listed, "deleted");
    let m2 = state.messages.iter().find(|m| m.id == "m2").unwrap();
    assert!(m2.recalled);
    let m3 = state.messages.iter().find(|m| m.id == "m3").unwrap();
    assert!(m3.deleted);
}
