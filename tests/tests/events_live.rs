//! Multi-device events through a real relay over loopback TCP: every event
//! kind reaches the other device naming its source; an offline device gets
//! everything in causal order; connection events.

mod support;

use support::*;
use tandem_engine::event::*;
use tandem_engine::model::*;
use tandem_engine::op::*;
use tandem_engine::*;
use tandem_online::{OnlineDevice, StopReason};
use tandem_relay::secret::Secret;
use tandem_relay::{OverflowPolicy, StoreLocation};
use tandem_tests::every_op::every_op_with_kind;
use tandem_transport::ErrorCode;

fn g(id: &str) -> GroupId {
    GroupId::new(id).unwrap()
}

fn users(ids: &[&str]) -> Vec<UserId> {
    ids.iter().map(|u| user(u)).collect()
}

fn m(id: &str) -> MessageId {
    MessageId::new(id).unwrap()
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
    let b = online(
        engine_at(&dir.path().join("b.db"), "alice", 2, "b", Platform::Linux),
        relay.addr,
        relay.token(&account("alice")),
        true,
    );
    wait_status(&b, "b connected", |s| s.is_connected()).await;
    let a = online(
        engine_at(&dir.path().join("a.db"), "alice", 1, "a", Platform::Ios),
        relay.addr,
        relay.token(&account("alice")),
        true,
    );
    wait_status(&a, "a connected", |s| s.is_connected()).await;
    let table = every_op_with_kind();
    for (op, _) in &table {
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
    for (event, (op, kind)) in ops.iter().zip(&table) {
        let json = event.to_json_value();
        assert_eq!(
            (
                json["category"].as_str().unwrap(),
                json["op"].as_str().unwrap()
            ),
            kind.event,
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
    let a = online(
        engine_at(&dir.path().join("a.db"), "alice", 1, "a", Platform::Ios),
        relay.addr,
        relay.token(&account("alice")),
        true,
    );
    let b = online(
        engine_at(&dir.path().join("b.db"), "alice", 2, "b", Platform::Macos),
        relay.addr,
        relay.token(&account("alice")),
        true,
    );
    let c = online(
        engine_at(&dir.path().join("c.db"), "alice", 3, "c", Platform::Web),
        relay.addr,
        relay.token(&account("alice")),
        false,
    );
    wait_status(&a, "a", |s| s.is_connected()).await;
    wait_status(&b, "b", |s| s.is_connected()).await;
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
    let a = online(
        engine_at(&dir.path().join("a.db"), "alice", 1, "a", Platform::Ios),
        relay.addr,
        relay.token(&account("alice")),
        true,
    );
    let b = online(
        engine_at(&dir.path().join("b.db"), "alice", 2, "b", Platform::Macos),
        relay.addr,
        relay.token(&account("alice")),
        true,
    );
    wait_status(&a, "a", |s| s.is_connected()).await;
    wait_status(&b, "b", |s| s.is_connected()).await;
    let c = online(
        engine_at(&dir.path().join("c.db"), "alice", 3, "c", Platform::Web),
        relay.addr,
        relay.token(&account("alice")),
        true,
    );
    let refused = wait_status(&c, "c refused", |s| s.stopped.is_some()).await;
    assert!(
        matches!(
            refused.stopped,
            Some(StopReason::Refused {
                code: ErrorCode::TooManyDevices,
                ..
            })
        ),
        "{refused:?}"
    );
    let c_events = c.read(|e| e.events_after(0, 10).unwrap()).await.unwrap();
    match &c_events[0].kind {
        EventKind::Connection(ConnectionEvent::TooManyDevicesOnline { devices }) => {
            // The list names the two online devices, to kick one.
            let online: Vec<_> = devices.iter().filter(|d| d.online).collect();
            assert_eq!(online.len(), 2, "{devices:?}");
        }
        other => panic!("{other:?}"),
    }

    a.kick_device(DeviceId([2; 16])).await.unwrap();
    wait_status(&b, "b kicked", |s| s.kicked_by() == Some(DeviceId([1; 16]))).await;
    let kicked = b.read(|e| e.events_after(0, 100).unwrap()).await.unwrap();
    let kicked = kicked
        .iter()
        .find(|e| {
            matches!(
                &e.kind,
                EventKind::Connection(ConnectionEvent::KickedByDevice { name, platform, .. })
                    if name == "a" && platform == "ios"
            )
        })
        .expect("a kicked event, naming the kicking device");
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
