//! Multi-device events through a real relay over loopback TCP: every event
//! kind reaches the other device naming its source; an offline device gets
//! everything in causal order; connection events.

mod support;

use support::*;
use tandem_engine::event::*;
use tandem_engine::model::*;
use tandem_engine::net::OnlineDevice;
use tandem_engine::op::*;
use tandem_engine::*;
use tandem_relay::secret::Secret;
use tandem_relay::{OverflowPolicy, StoreLocation};

fn g(id: &str) -> GroupId {
    GroupId::new(id).unwrap()
}

fn t(id: &str) -> ThreadId {
    ThreadId::new(id).unwrap()
}

fn users(ids: &[&str]) -> Vec<UserId> {
    ids.iter().map(|u| user(u)).collect()
}

fn m(id: &str) -> MessageId {
    MessageId::new(id).unwrap()
}

/// Every operation kind with the event (category, op) it must become.
fn every_op_and_event() -> Vec<(Op, &'static str, &'static str)> {
    use ContactOp as C;
    use ConversationOp as V;
    use GroupOp as G;
    use MessageOp as M;
    use ThreadOp as T;
    let bob = || conv("u:bob");
    vec![
        (incoming("m1", "u:bob", "bob", 100), "message", "received"),
        (incoming("m2", "u:bob", "bob", 101), "message", "received"),
        (incoming("m3", "u:bob", "bob", 102), "message", "received"),
        (
            Op::Message(M::Send {
                conversation: bob(),
                body: "hi".into(),
            }),
            "message",
            "sent",
        ),
        (
            Op::Message(M::Recall { message: m("m2") }),
            "message",
            "recalled",
        ),
        (
            Op::Message(M::DeleteForMe {
                messages: vec![m("m3")],
            }),
            "message",
            "deleted_for_me",
        ),
        (
            Op::Message(M::Receipt {
                message: m("m1"),
                receipt: PeerReceipt::Read,
            }),
            "message",
            "receipt_updated",
        ),
        (
            Op::Conversation(V::MarkRead {
                conversation: bob(),
                message: m("m1"),
            }),
            "conversation",
            "read",
        ),
        (
            Op::Conversation(V::ClearUnread {
                conversation: bob(),
            }),
            "conversation",
            "unread_cleared",
        ),
        (
            Op::Conversation(V::ClearAllUnread),
            "conversation",
            "all_unread_cleared",
        ),
        (
            Op::Conversation(V::Pin {
                conversation: bob(),
            }),
            "conversation",
            "pinned",
        ),
        (
            Op::Conversation(V::Unpin {
                conversation: bob(),
            }),
            "conversation",
            "unpinned",
        ),
        (
            Op::Conversation(V::AddMark {
                conversation: bob(),
                mark: "work".into(),
            }),
            "conversation",
            "mark_changed",
        ),
        (
            Op::Conversation(V::SetDoNotDisturb {
                conversation: bob(),
                enabled: true,
            }),
            "conversation",
            "do_not_disturb_changed",
        ),
        (
            Op::Conversation(V::Delete {
                conversation: bob(),
            }),
            "conversation",
            "deleted",
        ),
        (
            Op::Contact(C::Add {
                user: user("dave"),
                greeting: "hi".into(),
            }),
            "contact",
            "added",
        ),
        (
            Op::Contact(C::Decline { user: user("dave") }),
            "contact",
            "declined",
        ),
        (
            Op::Contact(C::ReceiveRequest {
                user: user("bob"),
                greeting: "hi".into(),
            }),
            "contact",
            "request_received",
        ),
        (
            Op::Contact(C::Accept { user: user("bob") }),
            "contact",
            "accepted",
        ),
        (
            Op::Contact(C::SetRemark {
                user: user("bob"),
                remark: "B".into(),
            }),
            "contact",
            "remark_changed",
        ),
        (
            Op::Contact(C::Remove { user: user("bob") }),
            "contact",
            "removed",
        ),
        (
            Op::Contact(C::Block { user: user("eve") }),
            "contact",
            "blocked",
        ),
        (
            Op::Contact(C::Unblock { user: user("eve") }),
            "contact",
            "unblocked",
        ),
        (
            Op::Group(G::Create {
                group: g("g1"),
                name: "T".into(),
                members: users(&["bob", "carol"]),
            }),
            "group",
            "created",
        ),
        (
            Op::Group(G::Invite {
                group: g("g1"),
                users: users(&["dave"]),
            }),
            "group",
            "invited",
        ),
        (
            Op::Group(G::AcceptApplication {
                group: g("g1"),
                user: user("erin"),
            }),
            "group",
            "application_accepted",
        ),
        (
            Op::Group(G::DeclineApplication {
                group: g("g1"),
                user: user("frank"),
                reason: String::new(),
            }),
            "group",
            "application_declined",
        ),
        (
            Op::Group(G::Kick {
                group: g("g1"),
                users: users(&["dave"]),
            }),
            "group",
            "members_kicked",
        ),
        (
            Op::Group(G::Ban {
                group: g("g1"),
                users: users(&["erin"]),
            }),
            "group",
            "members_banned",
        ),
        (
            Op::Group(G::Allow {
                group: g("g1"),
                users: users(&["erin"]),
            }),
            "group",
            "members_allowed",
        ),
        (
            Op::Group(G::BlockMessages { group: g("g1") }),
            "group",
            "messages_blocked",
        ),
        (
            Op::Group(G::UnblockMessages { group: g("g1") }),
            "group",
            "messages_unblocked",
        ),
        (
            Op::Group(G::AddAdmin {
                group: g("g1"),
                user: user("bob"),
            }),
            "group",
            "admin_added",
        ),
        (
            Op::Group(G::RemoveAdmin {
                group: g("g1"),
                user: user("bob"),
            }),
            "group",
            "admin_removed",
        ),
        (
            Op::Group(G::Mute {
                group: g("g1"),
                users: users(&["carol"]),
                until_ms: 9,
            }),
            "group",
            "members_muted",
        ),
        (
            Op::Group(G::Unmute {
                group: g("g1"),
                users: users(&["carol"]),
            }),
            "group",
            "members_unmuted",
        ),
        (
            Op::Group(G::AddAllowList {
                group: g("g1"),
                users: users(&["bob"]),
            }),
            "group",
            "allow_list_added",
        ),
        (
            Op::Group(G::RemoveAllowList {
                group: g("g1"),
                users: users(&["bob"]),
            }),
            "group",
            "allow_list_removed",
        ),
        (
            Op::Group(G::MuteAll { group: g("g1") }),
            "group",
            "all_muted",
        ),
        (
            Op::Group(G::UnmuteAll { group: g("g1") }),
            "group",
            "all_unmuted",
        ),
        (
            Op::Group(G::UpdateInfo {
                group: g("g1"),
                update: GroupInfoUpdate {
                    name: Some("N".into()),
                    ..Default::default()
                },
            }),
            "group",
            "info_updated",
        ),
        (
            Op::Group(G::SetMemberAttributes {
                group: g("g1"),
                user: user("bob"),
                attributes: vec![("k".into(), "v".into())],
            }),
            "group",
            "member_attributes_changed",
        ),
        (
            Op::Group(G::TransferOwner {
                group: g("g1"),
                new_owner: user("bob"),
            }),
            "group",
            "owner_transferred",
        ),
        (
            Op::Group(G::Apply {
                group: g("g2"),
                reason: "me".into(),
            }),
            "group",
            "applied",
        ),
        (Op::Group(G::Join { group: g("g3") }), "group", "joined"),
        (Op::Group(G::Leave { group: g("g3") }), "group", "left"),
        (
            Op::Group(G::AcceptInvitation {
                group: g("g4"),
                inviter: user("bob"),
            }),
            "group",
            "invitation_accepted",
        ),
        (
            Op::Group(G::DeclineInvitation {
                group: g("g5"),
                inviter: user("bob"),
                reason: String::new(),
            }),
            "group",
            "invitation_declined",
        ),
        (
            Op::Group(G::Destroy { group: g("g2") }),
            "group",
            "destroyed",
        ),
        (
            Op::Thread(T::Create {
                thread: t("t1"),
                group: g("g1"),
                name: "P".into(),
            }),
            "thread",
            "created",
        ),
        (
            Op::Thread(T::Update {
                thread: t("t1"),
                name: "Q".into(),
            }),
            "thread",
            "updated",
        ),
        (
            Op::Thread(T::Kick {
                thread: t("t1"),
                users: users(&["bob"]),
            }),
            "thread",
            "kicked",
        ),
        (
            Op::Thread(T::Join {
                thread: t("t2"),
                group: g("g1"),
            }),
            "thread",
            "joined",
        ),
        (Op::Thread(T::Leave { thread: t("t2") }), "thread", "left"),
        (
            Op::Thread(T::Destroy { thread: t("t1") }),
            "thread",
            "destroyed",
        ),
    ]
}

/// Reads `n` events from the stream, acknowledging them.
async fn take_events(device: &OnlineDevice, n: usize) -> Vec<Event> {
    let mut stream = device.events();
    let mut out = Vec::new();
    while out.len() < n {
        let event = tokio::time::timeout(WAIT, stream.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} events arrived: {out:?}", out.len()))
            .unwrap();
        out.push(event);
    }
    device.ack_events(out.last().unwrap().seq).await.unwrap();
    out
}

fn is_operation(event: &Event) -> bool {
    !matches!(event.kind, EventKind::Connection(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_kind_arrives_naming_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(StoreLocation::Memory, Secret::from_bytes([1; 32]), 0).await;
    let token = relay.token(&account("alice"));
    let b = online(
        engine_at(&dir.path().join("b.db"), "alice", 2, "b", Platform::Linux),
        relay.addr,
        token.clone(),
        true,
    );
    wait_status(&b, "b connected", |s| s.connected).await;
    let a = online(
        engine_at(&dir.path().join("a.db"), "alice", 1, "a", Platform::Ios),
        relay.addr,
        token,
        true,
    );
    wait_status(&a, "a connected", |s| s.connected).await;
    let table = every_op_and_event();
    for (op, _, _) in &table {
        a.perform(op.clone()).await.unwrap();
    }
    // B also hears A log in (a new device) and the device list change.
    let events = take_events(&b, table.len() + 2).await;
    let connection: Vec<_> = events
        .iter()
        .filter(|e| !is_operation(e))
        .map(|e| e.to_json_value()["op"].clone())
        .collect();
    assert!(
        connection.contains(&"logged_in_on_new_device".into()),
        "{connection:?}"
    );
    assert!(
        connection.contains(&"device_list_changed".into()),
        "{connection:?}"
    );
    let ops: Vec<_> = events.iter().filter(|e| is_operation(e)).collect();
    assert_eq!(ops.len(), table.len());
    for (event, (op, category, name)) in ops.iter().zip(&table) {
        let json = event.to_json_value();
        assert_eq!(
            (
                json["category"].as_str().unwrap(),
                json["op"].as_str().unwrap()
            ),
            (*category, *name),
            "{op:?}"
        );
        assert_eq!(event.source_device, DeviceId([1; 16]));
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    relay.stop().await.expect("the relay stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_device_gets_a_hundred_operations_in_causal_order() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(StoreLocation::Memory, Secret::from_bytes([2; 32]), 0).await;
    let token = relay.token(&account("alice"));
    let a = online(
        engine_at(&dir.path().join("a.db"), "alice", 1, "a", Platform::Ios),
        relay.addr,
        token.clone(),
        true,
    );
    let b = online(
        engine_at(&dir.path().join("b.db"), "alice", 2, "b", Platform::Macos),
        relay.addr,
        token.clone(),
        true,
    );
    let c = online(
        engine_at(&dir.path().join("c.db"), "alice", 3, "c", Platform::Web),
        relay.addr,
        token.clone(),
        false,
    );
    wait_status(&a, "a", |s| s.connected).await;
    wait_status(&b, "b", |s| s.connected).await;
    // 100 operations: A creates groups and messages, B (having merged
    // them) edits them, so B's operations causally depend on A's.
    let mut made = 0;
    for round in 0..10 {
        let group = g(&format!("g{round}"));
        a.perform(Op::Group(GroupOp::Create {
            group: group.clone(),
            name: format!("group {round}"),
            members: vec![],
        }))
        .await
        .unwrap();
        for i in 0..4 {
            a.perform(incoming(
                &format!("m{round}.{i}"),
                "u:bob",
                "bob",
                round * 10 + i,
            ))
            .await
            .unwrap();
        }
        made += 5;
        converge(&[&a, &b]).await;
        b.perform(Op::Group(GroupOp::UpdateInfo {
            group: group.clone(),
            update: GroupInfoUpdate {
                name: Some(format!("renamed {round}")),
                ..Default::default()
            },
        }))
        .await
        .unwrap();
        b.perform(Op::Group(GroupOp::Invite {
            group: group.clone(),
            users: users(&["carol"]),
        }))
        .await
        .unwrap();
        b.perform(Op::Conversation(ConversationOp::MarkRead {
            conversation: conv("u:bob"),
            message: m(&format!("m{round}.3")),
        }))
        .await
        .unwrap();
        b.perform(Op::Conversation(ConversationOp::AddMark {
            conversation: conv("u:bob"),
            mark: format!("r{round}"),
        }))
        .await
        .unwrap();
        b.perform(Op::Contact(ContactOp::Add {
            user: user(&format!("friend{round}")),
            greeting: String::new(),
        }))
        .await
        .unwrap();
        made += 5;
        converge(&[&a, &b]).await;
    }
    assert_eq!(made, 100);
    c.set_online(true).await.unwrap();
    wait_status(&c, "c in step", |s| s.in_step).await;
    let events: Vec<_> = c
        .read(|e| e.events_after(0, 1_000).unwrap())
        .await
        .unwrap()
        .into_iter()
        .filter(is_operation)
        .collect();
    assert_eq!(events.len(), 100);
    // Causal order: every rename comes after its group's creation, and
    // each device's own operations keep their order.
    for round in 0..10 {
        let position =
            |pred: &dyn Fn(&EventKind) -> bool| events.iter().position(|e| pred(&e.kind)).unwrap();
        let created = position(
            &|k| matches!(k, EventKind::Group(GroupEvent::Created { group, .. }) if group.as_str() == format!("g{round}")),
        );
        let renamed = position(
            &|k| matches!(k, EventKind::Group(GroupEvent::InfoUpdated { group, .. }) if group.as_str() == format!("g{round}")),
        );
        assert!(
            created < renamed,
            "round {round}: created at {created}, renamed at {renamed}"
        );
    }
    for source in [DeviceId([1; 16]), DeviceId([2; 16])] {
        let times: Vec<_> = events
            .iter()
            .filter(|e| e.source_device == source)
            .map(|e| e.made_at_ms)
            .collect();
        assert_eq!(times.len(), 50);
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "{source}: {times:?}"
        );
    }
    for d in [a, b, c] {
        d.shutdown().await.unwrap();
    }
    relay.stop().await.expect("the relay stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_events_kicked_and_too_many_devices() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay_with(StoreLocation::Memory, Secret::from_bytes([3; 32]), 0, |c| {
        c.devices_online_max = 2;
        c.overflow_policy = OverflowPolicy::RefuseNew;
    })
    .await;
    let token = relay.token(&account("alice"));
    let a = online(
        engine_at(&dir.path().join("a.db"), "alice", 1, "a", Platform::Ios),
        relay.addr,
        token.clone(),
        true,
    );
    let b = online(
        engine_at(&dir.path().join("b.db"), "alice", 2, "b", Platform::Macos),
        relay.addr,
        token.clone(),
        true,
    );
    wait_status(&a, "a", |s| s.connected).await;
    wait_status(&b, "b", |s| s.connected).await;
    let c = online(
        engine_at(&dir.path().join("c.db"), "alice", 3, "c", Platform::Web),
        relay.addr,
        token.clone(),
        true,
    );
    wait_status(&c, "c refused", |s| s.last_error.is_some()).await;
    let c_events = c.read(|e| e.events_after(0, 10).unwrap()).await.unwrap();
    assert!(
        matches!(
            c_events[0].kind,
            EventKind::Connection(ConnectionEvent::TooManyDevices { .. })
        ),
        "{c_events:?}"
    );

    a.kick_device(DeviceId([2; 16])).await.unwrap();
    wait_status(&b, "b kicked", |s| s.kicked.is_some()).await;
    let kicked = b.read(|e| e.events_after(0, 100).unwrap()).await.unwrap();
    let kicked = kicked
        .iter()
        .find(|e| {
            matches!(
                e.kind,
                EventKind::Connection(ConnectionEvent::Kicked { .. })
            )
        })
        .expect("a kicked event");
    assert_eq!(
        kicked.source_device,
        DeviceId([1; 16]),
        "names the kicking device"
    );
    for d in [a, b, c] {
        d.shutdown().await.unwrap();
    }
    relay.stop().await.expect("the relay stops");
}
