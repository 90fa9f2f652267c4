//! Devices of one account converge through a real relay over loopback TCP,
//! live and after being offline; kick and device list at the engine level.

mod support;

use std::time::Duration;
use support::*;
use tandem_engine::model::*;
use tandem_engine::op::*;
use tandem_engine::sync::SyncEvent;
use tandem_engine::*;
use tandem_online::StopReason;
use tandem_relay::secret::Secret;
use tandem_relay::StoreLocation;

use tandem_engine::event::ConnectionEvent;
use tandem_transport::{ErrorCode, OfflineReason};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_devices_converge_live_and_after_being_offline() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(StoreLocation::Memory, Secret::from_bytes([7; 32]), 0).await;
    let phone = online(
        engine_at(
            &dir.path().join("phone.db"),
            "alice",
            1,
            "phone",
            Platform::Ios,
        ),
        relay.addr,
        relay.token(&account("alice")),
        true,
    );
    let laptop = online(
        engine_at(
            &dir.path().join("laptop.db"),
            "alice",
            2,
            "laptop",
            Platform::Macos,
        ),
        relay.addr,
        relay.token(&account("alice")),
        true,
    );
    let tablet = online(
        engine_at(
            &dir.path().join("tablet.db"),
            "alice",
            3,
            "tablet",
            Platform::Android,
        ),
        relay.addr,
        relay.token(&account("alice")),
        false,
    );
    wait_status(&phone, "phone connected", |s| s.is_connected()).await;
    wait_status(&laptop, "laptop connected", |s| s.is_connected()).await;

    for i in 0..20 {
        phone
            .perform(incoming(&format!("m{i}"), "u:bob", "bob", 1_000 + i))
            .await
            .unwrap();
    }
    // The same message from the IM service on the laptop: recorded only if
    // the phone's copy has not reached the laptop yet (a message the device
    // has changes nothing).
    let m5_again = laptop
        .perform(incoming("m5", "u:bob", "bob", 1_005))
        .await
        .unwrap();
    let m5_again = usize::from(m5_again.recorded.is_some());
    phone
        .perform(Op::Contact(ContactOp::Accept { user: user("bob") }))
        .await
        .unwrap();
    laptop
        .perform(Op::Group(GroupOp::Create {
            group: GroupId::new("g1").unwrap(),
            name: "Team".into(),
            members: vec![user("bob"), user("carol")],
        }))
        .await
        .unwrap();
    let live = converge(&[&phone, &laptop]).await;
    assert_eq!(live.messages.len(), 20);
    assert_eq!(live.groups.len(), 1);

    // More changes on both while the tablet is offline, including a read
    // marker that depends on messages the tablet has never seen.
    laptop
        .perform(Op::Conversation(ConversationOp::MarkRead {
            conversation: conv("u:bob"),
            message: MessageId::new("m15").unwrap(),
        }))
        .await
        .unwrap();
    phone
        .perform(Op::Conversation(ConversationOp::Pin {
            conversation: conv("u:bob"),
        }))
        .await
        .unwrap();
    let sent = phone
        .perform(Op::Message(MessageOp::Send {
            conversation: conv("g:g1"),
            body: "hello team".into(),
        }))
        .await
        .unwrap();
    phone
        .perform(Op::Group(GroupOp::Kick {
            group: GroupId::new("g1").unwrap(),
            users: vec![user("carol")],
        }))
        .await
        .unwrap();
    converge(&[&phone, &laptop]).await;

    tablet.set_online(true).await.unwrap();
    wait_status(&tablet, "tablet in step", |s| s.in_step).await;
    let state = converge(&[&phone, &laptop, &tablet]).await;
    let bob = state
        .conversations
        .iter()
        .find(|c| c.id == "u:bob")
        .unwrap();
    assert!(bob.settings.pinned);
    assert_eq!(bob.settings.read_message, "m15");
    assert_eq!(bob.unread, 4);
    assert!(state
        .messages
        .iter()
        .any(|m| Some(m.id.as_str()) == sent.message_id.as_ref().map(|i| i.as_str())));
    assert_eq!(state.groups[0].members.len(), 2);
    // The tablet heard every operation made on the other two.
    // (Besides the two catch-up signals, connection events.)
    let heard = tablet
        .read(|e| {
            e.events_after(0, 1_000)
                .unwrap()
                .iter()
                .filter(|e| !matches!(e.kind, EventKind::Connection(_)))
                .count()
        })
        .await
        .unwrap();
    assert_eq!(heard, 20 + m5_again + 1 + 1 + 1 + 1 + 1 + 1);

    for device in [phone, laptop, tablet] {
        device.shutdown().await.unwrap();
    }
    relay.stop().await.expect("the relay stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_list_payloads_and_kicks() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(StoreLocation::Memory, Secret::from_bytes([8; 32]), 0).await;
    let a = online(
        engine_at(&dir.path().join("a.db"), "alice", 1, "a", Platform::Web),
        relay.addr,
        relay.token(&account("alice")),
        true,
    );
    let b = online(
        engine_at(&dir.path().join("b.db"), "alice", 2, "b", Platform::Linux),
        relay.addr,
        relay.token(&account("alice")),
        true,
    );
    let c = online(
        engine_at(&dir.path().join("c.db"), "alice", 3, "c", Platform::Windows),
        relay.addr,
        relay.token(&account("alice")),
        true,
    );
    for d in [&a, &b, &c] {
        wait_status(d, "connected", |s| s.is_connected()).await;
    }
    let devices = a.devices().await.unwrap();
    assert_eq!(devices.len(), 3);
    assert!(devices.iter().all(|d| d.online));
    let mut others = a.other_device_ids().await.unwrap();
    others.sort();
    assert_eq!(others, [DeviceId([2; 16]), DeviceId([3; 16])]);

    // A payload to one device arrives there once, and is journaled.
    let mut b_events = b.subscribe();
    a.send_to_device(DeviceId([2; 16]), b"hello b".to_vec())
        .await
        .unwrap();
    let payload = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(SyncEvent::Payload { from, bytes, .. }) = b_events.recv().await {
                return (from, bytes);
            }
        }
    })
    .await
    .expect("payload arrives");
    assert_eq!(payload, (DeviceId([1; 16]), b"hello b".to_vec()));
    let journaled = b.read(|e| e.events_after(0, 10).unwrap()).await.unwrap();
    let payloads: Vec<_> = journaled
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Message(tandem_engine::event::MessageEvent::PayloadReceived {
                payload,
                ..
            }) => Some((e.source_device, payload.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        payloads,
        [(DeviceId([1; 16]), "68656c6c6f2062")],
        "{journaled:?}"
    );

    // Kick one: it is told who did it and stays offline.
    a.kick_device(DeviceId([2; 16])).await.unwrap();
    let status = wait_status(&b, "b kicked", |s| {
        s.kicked_by().is_some() && !s.is_connected()
    })
    .await;
    assert_eq!(status.kicked_by(), Some(DeviceId([1; 16])));
    assert!(status.needs_login());
    assert!(matches!(
        &status.stopped,
        Some(StopReason::Kicked(OfflineReason::KickedByDevice { by })) if by.name == "a"
    ));
    // Its key alone no longer logs it in...
    b.set_online(true).await.unwrap();
    let refused = wait_status(&b, "b refused", |s| {
        matches!(s.stopped, Some(StopReason::Refused { .. }))
    })
    .await;
    assert!(
        matches!(
            &refused.stopped,
            Some(StopReason::Refused {
                code: ErrorCode::CredentialsRevoked,
                reason: Some(OfflineReason::KickedByDevice { .. }),
                ..
            })
        ),
        "{refused:?}"
    );
    // ... a new login token does, on the same running device.
    b.relogin(relay.token(&account("alice"))).await.unwrap();
    wait_status(&b, "b back", |s| s.is_connected()).await;

    // Kick all others.
    a.kick_all_other_devices().await.unwrap();
    for d in [&b, &c] {
        wait_status(d, "kicked", |s| s.kicked_by() == Some(DeviceId([1; 16]))).await;
    }
    let devices = a.devices().await.unwrap();
    assert_eq!(devices.iter().filter(|d| d.online).count(), 1);

    // Logging out: c logs in again, then logs itself out.
    c.relogin(relay.token(&account("alice"))).await.unwrap();
    wait_status(&c, "c back", |s| s.is_connected()).await;
    c.logout().await.unwrap();
    let status = wait_status(&c, "c logged out", |s| s.stopped.is_some()).await;
    assert!(matches!(
        status.stopped,
        Some(StopReason::Kicked(OfflineReason::LoggedOut))
    ));

    for d in [a, b, c] {
        d.shutdown().await.unwrap();
    }
    relay.stop().await.expect("the relay stops");
}

/// The online shell journals `CredentialsExpiring` once, by its clock,
/// when the enrollment the relay confirmed expires within the warning
/// time; the relay renews it while online.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_is_warned_before_its_credentials_expire_and_renewed_while_online() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay_with(StoreLocation::Memory, Secret::from_bytes([6; 32]), 0, |c| {
        // Shorter than the warning time: the first check warns.
        c.enrollment_ttl_ms = 86_400_000;
        c.enrollment_renew_interval_ms = 0;
    })
    .await;
    let a = online(
        engine_at(&dir.path().join("a.db"), "alice", 1, "a", Platform::Ios),
        relay.addr,
        relay.token(&account("alice")),
        true,
    );
    wait_status(&a, "a", |s| s.is_connected()).await;
    let before = a
        .read(|e| e.credentials().unwrap().enrollment.unwrap())
        .await
        .unwrap();
    assert!(before.active);
    // Any request renews (interval 0): the device records the new expiry.
    a.perform(incoming("m1", "u:bob", "bob", 1)).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = a
            .read(|e| e.credentials().unwrap().enrollment.unwrap())
            .await
            .unwrap();
        if now.expires_at_ms > before.expires_at_ms {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never renewed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Offline, the next check (the thread checks between connections)
    // warns, once.
    a.set_online(false).await.unwrap();
    a.set_online(true).await.unwrap();
    wait_status(&a, "a again", |s| s.is_connected()).await;
    let warnings = a
        .read(|e| {
            e.events_after(0, 100)
                .unwrap()
                .into_iter()
                .filter(|e| {
                    matches!(
                        e.kind,
                        EventKind::Connection(ConnectionEvent::CredentialsExpiring { .. })
                    )
                })
                .count()
        })
        .await
        .unwrap();
    assert!(warnings >= 1, "a warning was journaled");
    a.shutdown().await.unwrap();
    relay.stop().await.expect("the relay stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_across_a_relay_restart() {
    let dir = tempfile::tempdir().unwrap();
    let relay_db = dir.path().join("relay.db");
    let secret = Secret::from_bytes([9; 32]);
    let relay = start_relay(StoreLocation::Sqlite(relay_db.clone()), secret.clone(), 0).await;
    let addr = relay.addr;
    let a = online(
        engine_at(&dir.path().join("a.db"), "alice", 1, "a", Platform::Ios),
        addr,
        relay.token(&account("alice")),
        true,
    );
    for i in 0..10 {
        a.perform(incoming(&format!("m{i}"), "u:bob", "bob", i))
            .await
            .unwrap();
    }
    wait_status(&a, "a in step", |s| s.in_step).await;
    relay.stop().await.expect("the relay stops");
    // Offline: the operations queue in the outbox.
    for i in 10..20 {
        a.perform(incoming(&format!("m{i}"), "u:bob", "bob", i))
            .await
            .unwrap();
    }
    let relay = start_relay(StoreLocation::Sqlite(relay_db), secret, addr.port()).await;
    wait_status(&a, "a back in step", |s| s.in_step && s.is_connected()).await;
    let b = online(
        engine_at(&dir.path().join("b.db"), "alice", 2, "b", Platform::Ios),
        addr,
        relay.token(&account("alice")),
        true,
    );
    let state = converge(&[&a, &b]).await;
    assert_eq!(state.messages.len(), 20);
    for d in [a, b] {
        d.shutdown().await.unwrap();
    }
    relay.stop().await.expect("the relay stops");
}

/// A device that comes online behind the relay journals "catch-up
/// started", the events of what it merges, then "catch-up finished"; one
/// that is in step journals neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catching_up_is_announced_before_and_after_what_it_merges() {
    use tandem_engine::event::{ConnectionEvent, EventKind};
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay(StoreLocation::Memory, Secret::from_bytes([7; 32]), 0).await;
    let token = relay.token(&account("alice"));
    let at =
        |name: &str, n: u8| engine_at(&dir.path().join(name), "alice", n, name, Platform::Linux);
    let phone = online(at("phone.db", 1), relay.addr, token, true);
    let tablet = online(
        at("tablet.db", 2),
        relay.addr,
        relay.token(&account("alice")),
        false,
    );
    wait_status(&phone, "phone connected", |s| s.is_connected()).await;
    for i in 0..30 {
        phone
            .perform(incoming(&format!("m{i}"), "u:bob", "bob", 1_000 + i))
            .await
            .unwrap();
    }
    wait_status(&phone, "phone in step", |s| s.in_step).await;
    let mut signals = tablet.subscribe();
    tablet.set_online(true).await.unwrap();
    wait_status(&tablet, "tablet in step", |s| s.in_step).await;
    converge(&[&phone, &tablet]).await;
    let events = tablet
        .read(|e| e.events_after(0, 1_000).unwrap())
        .await
        .unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(kinds.len(), 32, "{kinds:?}");
    assert_eq!(
        kinds[0],
        EventKind::Connection(ConnectionEvent::CatchUpStarted {
            from_seq: 0,
            to_seq: 30
        })
    );
    assert!(kinds[1..31]
        .iter()
        .all(|k| matches!(k, EventKind::Message(_))));
    assert_eq!(
        kinds[31],
        EventKind::Connection(ConnectionEvent::CatchUpFinished { cursor: 30 })
    );
    // The async shell hands the same signals to subscribers.
    let mut seen = Vec::new();
    while let Ok(event) = signals.try_recv() {
        match event {
            SyncEvent::CatchUpStarted { .. } => seen.push("started"),
            SyncEvent::CatchUpFinished { .. } => seen.push("finished"),
            _ => {}
        }
    }
    assert_eq!(seen, ["started", "finished"]);
    // The phone was never behind: no signals there.
    let phone_events = phone
        .read(|e| e.events_after(0, 1_000).unwrap())
        .await
        .unwrap();
    assert!(
        !phone_events.iter().any(|e| matches!(
            e.kind,
            EventKind::Connection(
                ConnectionEvent::CatchUpStarted { .. } | ConnectionEvent::CatchUpFinished { .. }
            )
        )),
        "{phone_events:?}"
    );
    for device in [phone, tablet] {
        device.shutdown().await.unwrap();
    }
}

/// One relay, two listeners: the phone syncs over WebSocket, the laptop
/// over TCP, and they converge, live and after the phone was offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_on_websocket_and_one_on_tcp_converge_through_one_relay() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_relay_with(StoreLocation::Memory, Secret::from_bytes([9; 32]), 0, |c| {
        c.listen_ws_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let ws = relay.ws_address().expect("the relay listens for WebSocket");
    assert!(ws.to_string().starts_with("ws://127.0.0.1:"), "{ws}");
    let phone = online_at(
        engine_at(
            &dir.path().join("phone.db"),
            "alice",
            1,
            "phone",
            Platform::Ios,
        ),
        &ws.to_string(),
        relay.token(&account("alice")),
        true,
    );
    let laptop = online_at(
        engine_at(
            &dir.path().join("laptop.db"),
            "alice",
            2,
            "laptop",
            Platform::Linux,
        ),
        &relay.tcp_address().to_string(),
        relay.token(&account("alice")),
        true,
    );
    wait_status(&phone, "phone connected", |s| s.is_connected()).await;
    wait_status(&laptop, "laptop connected", |s| s.is_connected()).await;

    // Live, both ways.
    for i in 0..10 {
        phone
            .perform(incoming(&format!("p{i}"), "u:bob", "bob", 1_000 + i))
            .await
            .unwrap();
        laptop
            .perform(incoming(&format!("l{i}"), "u:carol", "carol", 2_000 + i))
            .await
            .unwrap();
    }
    laptop
        .perform(Op::Conversation(ConversationOp::Pin {
            conversation: conv("u:bob"),
        }))
        .await
        .unwrap();
    let state = converge(&[&phone, &laptop]).await;
    assert_eq!(state.messages.len(), 20);

    // The phone goes offline; the laptop goes on; the phone catches up
    // over WebSocket, and its offline changes reach the laptop over TCP.
    phone.set_online(false).await.unwrap();
    wait_status(&phone, "phone offline", |s| !s.is_connected()).await;
    for i in 10..30 {
        laptop
            .perform(incoming(&format!("l{i}"), "u:carol", "carol", 2_000 + i))
            .await
            .unwrap();
    }
    phone
        .perform(Op::Contact(ContactOp::Accept { user: user("bob") }))
        .await
        .unwrap();
    phone.set_online(true).await.unwrap();
    wait_status(&phone, "phone back", |s| s.is_connected()).await;
    let state = converge(&[&phone, &laptop]).await;
    assert_eq!(state.messages.len(), 40);
    assert!(
        state.contacts.iter().any(|c| c.user_id == "bob"),
        "{:?}",
        state.contacts
    );
    phone.shutdown().await.unwrap();
    laptop.shutdown().await.unwrap();
    relay.stop().await.expect("the relay stops");
}

/// Every file of the relay's SQLite store (the database, its WAL and
/// shared memory), read as bytes.
fn relay_files(db: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        if let Ok(file) = std::fs::read(&path) {
            bytes.extend(file);
        }
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_devices_sync_through_a_relay_whose_store_holds_none_of_their_text() {
    let dir = tempfile::tempdir().unwrap();
    // Linked by hand before they go online: the first makes the account
    // key, the second shows a code, the first grants, the second accepts.
    let mut phone = engine_at(&dir.path().join("p.db"), "alice", 1, "phone", Platform::Ios);
    let mut laptop = engine_at(
        &dir.path().join("l.db"),
        "alice",
        2,
        "laptop",
        Platform::Macos,
    );
    phone.create_account_key(1_000).unwrap();
    let code = laptop.show_link_code(1_000).unwrap().code;
    let grant = phone.grant_link(&code, 1_001).unwrap();
    let phone_key = phone.device().public_key;
    laptop.accept_link_grant(&grant, &phone_key, 1_002).unwrap();

    let relay_db = dir.path().join("relay.db");
    let relay = start_relay(
        StoreLocation::Sqlite(relay_db.clone()),
        Secret::from_bytes([9; 32]),
        0,
    )
    .await;
    let phone = online(phone, relay.addr, relay.token(&account("alice")), true);
    let laptop = online(laptop, relay.addr, relay.token(&account("alice")), true);
    wait_status(&phone, "phone connected", |s| s.is_connected()).await;
    wait_status(&laptop, "laptop connected", |s| s.is_connected()).await;

    let secret = "a secret the relay must not read";
    phone
        .perform(Op::Message(MessageOp::Ingest {
            message: IncomingMessage {
                id: MessageId::new("m1").unwrap(),
                conversation: "u:bob".parse().unwrap(),
                sender: UserId::new("bob").unwrap(),
                sent_at_ms: 5,
                body: secret.into(),
            },
        }))
        .await
        .unwrap();
    laptop
        .perform(Op::Conversation(ConversationOp::Pin {
            conversation: "u:carol-the-pinned".parse().unwrap(),
        }))
        .await
        .unwrap();
    let state = converge(&[&phone, &laptop]).await;
    assert!(state.messages.iter().any(|m| m.body == secret));
    assert!(state
        .conversations
        .iter()
        .any(|c| c.id == "u:carol-the-pinned"));

    // A device of the account that holds no key waits before the first
    // envelope, and the app sees why.
    let tablet = online(
        engine_at(
            &dir.path().join("t.db"),
            "alice",
            3,
            "tablet",
            Platform::Android,
        ),
        relay.addr,
        relay.token(&account("alice")),
        true,
    );
    let status = wait_status(&tablet, "the tablet waiting for a key", |s| {
        s.waiting_for_key.is_some()
    })
    .await;
    assert_eq!(
        status.waiting_for_key.map(|entry| entry.reason),
        Some(NeedsKey::NotLinked)
    );
    let (_, before) = snapshot(&tablet).await;
    assert!(before.messages.is_empty());

    // Linked while both run, it reads on from the envelope it waited at,
    // on the same connection.
    let code = tablet.show_link_code().await.unwrap().code;
    let grant = phone.grant_link(code).await.unwrap();
    tablet.accept_link_grant(grant, phone_key).await.unwrap();
    let state = converge(&[&phone, &laptop, &tablet]).await;
    assert!(state.messages.iter().any(|m| m.body == secret));
    assert_eq!(state.roster.len(), 3);
    assert_eq!(tablet.status().borrow().waiting_for_key, None);

    phone.shutdown().await.unwrap();
    laptop.shutdown().await.unwrap();
    tablet.shutdown().await.unwrap();
    relay.stop().await.unwrap();
    let stored = relay_files(&relay_db);
    assert!(!stored.is_empty());
    for text in [secret.as_bytes(), b"carol-the-pinned", b"u:bob"] {
        assert!(
            !stored.windows(text.len()).any(|w| w == text),
            "the relay's store holds {:?}",
            String::from_utf8_lossy(text)
        );
    }
}
