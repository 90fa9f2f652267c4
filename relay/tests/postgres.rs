//! Relay nodes on one PostgreSQL database, over real TCP: one log per
//! account whichever node a device reaches, idempotence across nodes,
//! nothing acknowledged lost when every node stops, and what one node does
//! reaching devices on the other at once (live deltas, kicks, payloads),
//! also after the listening connection was lost.
//!
//! Each test has a fresh database of its own (`pg_test`); without
//! `TANDEM_TEST_POSTGRES_URL` a throwaway PostgreSQL is started, and none to
//! be had fails the test with the reason.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use tandem_relay::{OfflinePushPolicy, OverflowPolicy, StoreLocation};
use tandem_storage::pg_test::TestDb;
use tandem_storage::relay::FEED_APPLICATION_NAME_SUFFIX;
use tandem_transport::limits::DELTAS_PER_PAGE_MAX;
use tandem_transport::{ErrorCode, LogDelta, OfflineReason, PayloadId, SessionEvent, WireDelta};

fn deltas(tag: u8, count: usize) -> Vec<WireDelta> {
    (0..count)
        .map(|i| WireDelta::new(format!("delta {tag}/{i}").into_bytes()))
        .collect()
}

async fn node(url: &str) -> LoopbackRelay {
    start(config(StoreLocation::Postgres(url.to_owned()))).await
}

/// Runs `test` on a tokio runtime with the URL of a fresh database. The
/// database is made and dropped outside the runtime: the sync `postgres`
/// client the harness uses runs a runtime of its own, which tokio refuses
/// inside one.
fn with_database<F: std::future::Future<Output = ()>>(test: impl FnOnce(String) -> F) {
    with_test_db(|db| test(db.url().to_owned()));
}

async fn push_acked(conn: &mut Conn, batch: Vec<WireDelta>) -> Vec<u64> {
    conn.session().push(batch).unwrap();
    expect(conn, |e| match e {
        SessionEvent::PushAcked(entries) => Some(entries.iter().map(|e| e.seq).collect()),
        _ => None,
    })
    .await
}

async fn pull_all(conn: &mut Conn) -> Vec<LogDelta> {
    let mut all: Vec<LogDelta> = Vec::new();
    loop {
        let after = all.last().map_or(0, |d| d.seq);
        conn.session()
            .pull(after, DELTAS_PER_PAGE_MAX as u32)
            .unwrap();
        let (page, more) = expect(conn, |e| match e {
            SessionEvent::Deltas { deltas, more } => Some((deltas.clone(), *more)),
            _ => None,
        })
        .await;
        all.extend(page);
        if !more {
            return all;
        }
    }
}

#[test]
fn two_nodes_on_one_database_serve_one_log_per_account() {
    with_database(|db| async move { two_nodes_serve_one_log(&db).await });
}

async fn two_nodes_serve_one_log(db: &str) {
    let (one, two) = (node(db).await, node(db).await);
    let mut phone = login(&one, "alice", 1).await;
    let laptop_token = two.token(&account("alice"));
    let mut laptop = login_with(&two, client_config("alice", 2, laptop_token.clone())).await;

    let first = deltas(1, 10);
    assert_eq!(
        push_acked(&mut phone, first.clone()).await,
        (1..=10).collect::<Vec<_>>()
    );
    // The laptop, on the other node, reads what the phone pushed...
    let got = pull_all(&mut laptop).await;
    assert_eq!(got.len(), 10);
    assert!(got
        .iter()
        .zip(&first)
        .all(|(g, s)| g.content_id == s.content_id() && g.origin == device(1)));
    // ...and its own pushes continue the same sequence.
    assert_eq!(
        push_acked(&mut laptop, deltas(2, 5)).await,
        (11..=15).collect::<Vec<_>>()
    );
    // A delta already in the log, pushed again through the other node, keeps
    // its place; a new one comes next.
    let mut again = first[..2].to_vec();
    again.extend(deltas(3, 1));
    assert_eq!(push_acked(&mut phone, again).await, vec![1, 2, 16]);
    // Another account on the same database has a log of its own.
    let mut bob = login(&two, "bob", 1).await;
    assert_eq!(push_acked(&mut bob, deltas(4, 2)).await, vec![1, 2]);

    // A kick through one node holds on the other: the kicked laptop cannot
    // log in again there, with its key or with the token it used.
    phone.session().kick(device(2)).unwrap();
    expect(&mut phone, |e| {
        matches!(e, SessionEvent::DeviceListChanged).then_some(())
    })
    .await;
    drop(laptop);
    assert_eq!(
        refused(&two, device_config("alice", 2)).await,
        ErrorCode::CredentialsRevoked
    );
    let used = client_config("alice", 2, laptop_token);
    assert_eq!(refused(&two, used).await, ErrorCode::LoginTokenUsed);

    one.stop().await.expect("node one stops");
    two.stop().await.expect("node two stops");
    // A node started later on the same database has everything.
    let three = node(db).await;
    let mut tablet = login(&three, "alice", 3).await;
    let all = pull_all(&mut tablet).await;
    assert_eq!(
        all.iter().map(|d| d.seq).collect::<Vec<_>>(),
        (1..=16).collect::<Vec<_>>()
    );
    three.stop().await.expect("node three stops");
}

#[test]
fn pushes_through_two_nodes_at_once_get_distinct_dense_seqs() {
    with_database(|db| async move { concurrent_pushes(&db).await });
}

async fn concurrent_pushes(db: &str) {
    const BATCHES: u8 = 10;
    const PER_BATCH: usize = 5;
    let (one, two) = (node(db).await, node(db).await);
    let mut phone = login(&one, "alice", 1).await;
    let mut laptop = login(&two, "alice", 2).await;
    let pushes = |mut conn: Conn, tag: u8| async move {
        let mut seqs = Vec::new();
        for batch in 0..BATCHES {
            seqs.extend(push_acked(&mut conn, deltas(tag * 100 + batch, PER_BATCH)).await);
        }
        (conn, seqs)
    };
    let (a, b) = tokio::join!(pushes(phone, 1), pushes(laptop, 2));
    let (phone_back, mut seqs) = a;
    (phone, laptop) = (phone_back, b.0);
    seqs.extend(b.1);
    seqs.sort_unstable();
    let total = 2 * usize::from(BATCHES) * PER_BATCH;
    assert_eq!(seqs, (1..=total as u64).collect::<Vec<_>>());
    // Both nodes read the same log.
    let (from_one, from_two) = (pull_all(&mut phone).await, pull_all(&mut laptop).await);
    assert_eq!(from_one.len(), total);
    assert_eq!(from_one, from_two);
    one.stop().await.expect("node one stops");
    two.stop().await.expect("node two stops");
}

/// The next event that is not a device-list notice (which logins on either
/// node cause at any time), within the wait.
async fn next_not_list(conn: &mut Conn) -> SessionEvent {
    loop {
        match next(conn).await {
            SessionEvent::DeviceListChanged => continue,
            other => return other,
        }
    }
}

/// A delta pushed through one node reaches a device online on the other at
/// once, live (not at its next pull), each exactly once and in order; the
/// lag from the pusher's acknowledgement to the other node's delivery is
/// printed (not asserted on).
#[test]
fn a_delta_pushed_through_one_node_reaches_the_other_live() {
    with_database(|db| async move { live_across_nodes(&db).await });
}

async fn live_across_nodes(db: &str) {
    const DELIVERIES: u64 = 300;
    // A queue that holds every delivery: however the machine schedules the
    // laptop's reading, no live delta is dropped for a full queue (which
    // would be right, and tell the laptop to pull instead).
    let mut roomy = config(StoreLocation::Postgres(db.to_owned()));
    roomy.queue_frames_max = 2 * DELIVERIES as usize;
    let (one, two) = (node(db).await, start(roomy).await);
    let mut phone = login(&one, "alice", 1).await;
    let laptop = login(&two, "alice", 2).await;
    // The laptop listens on its own task, stamping each live delta.
    let listener = tokio::spawn(async move {
        let mut laptop = laptop;
        let mut got: Vec<(LogDelta, Instant)> = Vec::new();
        while (got.len() as u64) < DELIVERIES {
            match next_not_list(&mut laptop).await {
                SessionEvent::Live(delta) => got.push((delta, Instant::now())),
                other => panic!("expected a live delta, got {other:?}"),
            }
        }
        (laptop, got)
    });
    let mut acked = Vec::new();
    let mut sent = Vec::new();
    for i in 0..DELIVERIES {
        let delta = WireDelta::new(format!("live {i}").into_bytes());
        sent.push(delta.content_id());
        let seqs = push_acked(&mut phone, vec![delta]).await;
        assert_eq!(seqs, vec![i + 1]);
        acked.push(Instant::now());
    }
    let (mut laptop, got) = listener.await.expect("the laptop's task");
    assert_eq!(
        got.iter().map(|(d, _)| d.seq).collect::<Vec<_>>(),
        (1..=DELIVERIES).collect::<Vec<_>>(),
        "every delta live, once, in order"
    );
    assert!(got
        .iter()
        .zip(&sent)
        .all(|((d, _), id)| d.content_id == *id && d.origin == device(1)));
    // Nothing more is on its way: a round trip brings no further delta.
    round_trip(&mut laptop).await;
    let mut lags: Vec<Duration> = got
        .iter()
        .zip(&acked)
        .map(|((_, at), acked_at)| at.saturating_duration_since(*acked_at))
        .collect();
    lags.sort();
    eprintln!(
        "cross-node live lag over {DELIVERIES} deliveries (push acknowledged on node one → \
         live on node two): p50 {:?}, p90 {:?}, max {:?}",
        lags[lags.len() / 2],
        lags[lags.len() * 9 / 10],
        lags[lags.len() - 1]
    );
    // And the other way round, to a device on the node that pushed before.
    push_acked(&mut laptop, deltas(9, 1)).await;
    match next_not_list(&mut phone).await {
        SessionEvent::Live(delta) => {
            assert_eq!((delta.seq, delta.origin), (DELIVERIES + 1, device(2)))
        }
        other => panic!("expected a live delta, got {other:?}"),
    }
    one.stop().await.expect("node one stops");
    two.stop().await.expect("node two stops");
}

/// A kick through one node closes the kicked device's open session on the
/// other at once, telling it who kicked it.
#[test]
fn a_kick_through_one_node_closes_the_session_on_the_other() {
    with_database(|db| async move { kick_across_nodes(&db).await });
}

async fn kick_across_nodes(db: &str) {
    let (one, two) = (node(db).await, node(db).await);
    let mut phone = login(&one, "alice", 1).await;
    let mut laptop = login(&two, "alice", 2).await;
    let mut tablet = login(&two, "alice", 3).await;
    phone.session().kick(device(2)).unwrap();
    // Once the phone's round trip is back, node one has handled the kick.
    round_trip(&mut phone).await;
    match next_not_list(&mut laptop).await {
        SessionEvent::Kicked(OfflineReason::KickedByDevice { by }) => {
            assert_eq!(by.id, device(1));
            assert_eq!(by.name, "dev1");
        }
        other => panic!("expected the kick, got {other:?}"),
    }
    assert!(matches!(next(&mut laptop).await, SessionEvent::Closed(_)));
    // The tablet, on the same node, stays, and hears that the list changed.
    expect(&mut tablet, |e| {
        matches!(e, SessionEvent::DeviceListChanged).then_some(())
    })
    .await;
    round_trip(&mut tablet).await;
    // Kicking all others through node two closes the phone on node one.
    tablet.session().kick_all_others().unwrap();
    round_trip(&mut tablet).await;
    match next_not_list(&mut phone).await {
        SessionEvent::Kicked(OfflineReason::KickedByDevice { by }) => {
            assert_eq!(by.id, device(3))
        }
        other => panic!("expected the kick, got {other:?}"),
    }
    one.stop().await.expect("node one stops");
    two.stop().await.expect("node two stops");
}

/// A payload sent through one node to a device online on the other is
/// delivered live, exactly once.
#[test]
fn a_payload_through_one_node_is_delivered_once_on_the_other() {
    with_database(|db| async move { payload_across_nodes(&db).await });
}

async fn payload_across_nodes(db: &str) {
    let (one, two) = (node(db).await, node(db).await);
    let mut phone = login(&one, "alice", 1).await;
    let mut laptop = login(&two, "alice", 2).await;
    for n in 1..=3u8 {
        let id = PayloadId([n; 16]);
        phone
            .session()
            .send_to_device(device(2), id, format!("note {n}").into_bytes())
            .unwrap();
        expect(&mut phone, |e| {
            matches!(e, SessionEvent::PayloadStored { id: got } if *got == id).then_some(())
        })
        .await;
        match next_not_list(&mut laptop).await {
            SessionEvent::DevicePayload {
                from,
                id: got,
                bytes,
            } => {
                assert_eq!((from, got), (device(1), id));
                assert_eq!(bytes, format!("note {n}").into_bytes());
            }
            other => panic!("expected the payload, got {other:?}"),
        }
        // Acknowledged or not, it is not delivered on this connection again.
        if n != 2 {
            laptop.session().ack_payload(id).unwrap();
        }
    }
    // A delta pushed after the payloads arrives after anything they caused:
    // nothing came twice before it.
    push_acked(&mut phone, deltas(5, 1)).await;
    match next_not_list(&mut laptop).await {
        SessionEvent::Live(delta) => assert_eq!(delta.seq, 1),
        other => panic!("expected the live delta and nothing else, got {other:?}"),
    }
    // The one not acknowledged is delivered again on the next connection.
    drop(laptop);
    let mut laptop = login_with(&two, device_config("alice", 2)).await;
    match next_not_list(&mut laptop).await {
        SessionEvent::DevicePayload { id, .. } => assert_eq!(id, PayloadId([2; 16])),
        other => panic!("expected the unacknowledged payload, got {other:?}"),
    }
    one.stop().await.expect("node one stops");
    two.stop().await.expect("node two stops");
}

/// A node whose listening connection was lost catches up by reading: a
/// delta pushed through the other node while it could not hear still
/// reaches its device live once it listens again.
#[test]
fn a_node_that_missed_notifications_catches_up_by_reading() {
    with_test_db(|db| async move { catch_up_after_lost_listener(db).await });
}

/// Ends the connections of the database's change feeds.
async fn end_feed_connections(db: &Arc<TestDb>) -> u64 {
    on_admin(db, |db| {
        let rows = db
            .admin()
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND application_name LIKE '%' || $2",
                &[&db.name(), &FEED_APPLICATION_NAME_SUFFIX],
            )
            .expect("ending the feeds' connections");
        rows.len() as u64
    })
    .await
}

async fn catch_up_after_lost_listener(db: Arc<TestDb>) {
    let (one, two) = (node(db.url()).await, node(db.url()).await);
    let mut phone = login(&one, "alice", 1).await;
    let mut laptop = login(&two, "alice", 2).await;
    // Both nodes listen (each has a feed connection), then lose it.
    let deadline = Instant::now() + WAIT;
    let mut ended = 0;
    while ended < 2 {
        assert!(Instant::now() < deadline, "two feed connections to end");
        ended += end_feed_connections(&db).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Pushed while node two may not be listening: its notification is
    // lost, and node two learns of the delta by reading when it connects
    // again.
    push_acked(&mut phone, deltas(6, 3)).await;
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        match next_not_list(&mut laptop).await {
            SessionEvent::Live(delta) => seqs.push(delta.seq),
            other => panic!("expected live deltas, got {other:?}"),
        }
    }
    assert_eq!(seqs, vec![1, 2, 3]);
    one.stop().await.expect("node one stops");
    two.stop().await.expect("node two stops");
}

/// Eight devices of one account logging in at once, four through each
/// node, under a limit of four online: exactly four get in, whichever node
/// they reached; the others are refused for the limit.
#[test]
fn the_online_limit_holds_across_nodes_for_logins_at_once() {
    with_database(|db| async move { limit_across_nodes(&db).await });
}

async fn limit_across_nodes(db: &str) {
    const LIMIT: usize = 4;
    let on = |db: &str| {
        let mut config = config(StoreLocation::Postgres(db.to_owned()));
        config.devices_online_max = LIMIT;
        config
    };
    let (one, two) = (start(on(db)).await, start(on(db)).await);
    let mut attempts = Vec::new();
    for n in 1..=8u8 {
        let relay = if n % 2 == 0 { &two } else { &one };
        let config = client_config("alice", n, relay.token(&account("alice")));
        let address = relay.tcp_address();
        attempts.push(async move {
            let conn = tandem_transport::driver::connect(&address, config)
                .await
                .unwrap();
            (n, conn)
        });
    }
    // Every connection is open before any handshake is driven: the logins
    // race on both nodes.
    let conns = futures_join_all(attempts).await;
    let outcomes = futures_join_all(conns.into_iter().map(|(n, mut conn)| async move {
        let event = next(&mut conn).await;
        (n, conn, event)
    }))
    .await;
    let mut online = Vec::new();
    let mut refused_for_limit = Vec::new();
    for (n, conn, event) in outcomes {
        match event {
            SessionEvent::Connected(_) => online.push(conn),
            SessionEvent::Refused(r) if r.code == ErrorCode::TooManyDevices => {
                refused_for_limit.push(n)
            }
            other => panic!("expected a login or a refusal for the limit, got {other:?}"),
        }
    }
    assert_eq!(
        (online.len(), refused_for_limit.len()),
        (LIMIT, 8 - LIMIT),
        "the limit counts both nodes' devices"
    );
    // Each online device's list shows the four online, whichever node.
    let conn = &mut online[0];
    conn.session().list_devices().unwrap();
    let devices = expect(conn, |e| match e {
        SessionEvent::Devices(devices) => Some(devices.clone()),
        _ => None,
    })
    .await;
    assert_eq!(devices.iter().filter(|d| d.online).count(), LIMIT);
    // One goes offline: a place is free for a refused one (enrolled by its
    // attempt, so its key alone logs it in), on either node, once the
    // node that served it has seen the connection end.
    drop(online.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "a place frees up");
        let mut retried = false;
        for &n in &refused_for_limit {
            let relay = if n % 2 == 0 { &two } else { &one };
            let mut conn = open(relay, device_config("alice", n)).await;
            match next(&mut conn).await {
                SessionEvent::Connected(_) => {
                    online.push(conn);
                    retried = true;
                    break;
                }
                SessionEvent::Refused(r) if matches!(r.code, ErrorCode::TooManyDevices) => {}
                SessionEvent::Error { .. } | SessionEvent::Closed(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        if retried {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(online.len(), LIMIT);
    drop(online);
    one.stop().await.expect("node one stops");
    two.stop().await.expect("node two stops");
}

/// Waits for every future, concurrently (the tests' own `join_all`).
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.expect("a task"));
    }
    out
}

/// Under "kick the longest idle", a login on one node past the limit
/// displaces the longest idle device even when it is online on the other
/// node: that session closes at once, saying who displaced it.
#[test]
fn a_login_on_one_node_displaces_a_device_on_the_other() {
    with_database(|db| async move { displacement_across_nodes(&db).await });
}

async fn displacement_across_nodes(db: &str) {
    let on = |db: &str| {
        let mut config = config(StoreLocation::Postgres(db.to_owned()));
        config.devices_online_max = 2;
        config.overflow_policy = OverflowPolicy::KickLongestIdle;
        config
    };
    let (one, two) = (start(on(db)).await, start(on(db)).await);
    // The laptop, on node two, is online longest without a word.
    let mut laptop = login(&two, "alice", 2).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut phone = login(&one, "alice", 1).await;
    round_trip(&mut phone).await;
    let _tablet = login(&one, "alice", 3).await;
    match next_not_list(&mut laptop).await {
        SessionEvent::Kicked(OfflineReason::Displaced { by }) => assert_eq!(by.id, device(3)),
        other => panic!("expected the displacement, got {other:?}"),
    }
    // The phone stays.
    round_trip(&mut phone).await;
    one.stop().await.expect("node one stops");
    two.stop().await.expect("node two stops");
}

/// An operator's ban through one node closes the account's sessions on the
/// other, and so does a removal; a device that logs in again through the
/// other node closes its older session on the first, without a word.
#[test]
fn bans_removals_and_logins_elsewhere_close_sessions_on_the_other_node() {
    with_database(|db| async move { operator_across_nodes(&db).await });
}

async fn operator_across_nodes(db: &str) {
    use tandem_transport::frame::{AdminReply, AdminRequest};
    let (one, two) = (node(db).await, node(db).await);
    let mut admin = one.admin().await.expect("an operator's connection");
    // A device logs in again through the other node: its older session
    // closes, unkicked.
    let mut phone = login(&two, "alice", 1).await;
    let mut phone_again = login_with(&one, device_config("alice", 1)).await;
    match next_not_list(&mut phone).await {
        SessionEvent::Closed(_) => {}
        other => panic!("expected the older session to close, got {other:?}"),
    }
    round_trip(&mut phone_again).await;
    // A ban through node one closes alice's session on node two.
    let mut laptop = login(&two, "alice", 2).await;
    let banned = admin
        .request(AdminRequest::Ban {
            account: account("alice"),
        })
        .await
        .expect("the ban");
    assert!(matches!(banned, AdminReply::Done { .. }));
    match next_not_list(&mut laptop).await {
        SessionEvent::Kicked(reason) => assert_eq!(reason, OfflineReason::AccountBanned),
        other => panic!("expected the ban, got {other:?}"),
    }
    // A removal through node one closes bob's session on node two.
    let mut bob = login(&two, "bob", 1).await;
    admin
        .request(AdminRequest::Remove {
            account: account("bob"),
        })
        .await
        .expect("the removal");
    match next_not_list(&mut bob).await {
        SessionEvent::Kicked(reason) => assert_eq!(reason, OfflineReason::AccountRemoved),
        other => panic!("expected the removal, got {other:?}"),
    }
    drop(admin);
    one.stop().await.expect("node one stops");
    two.stop().await.expect("node two stops");
}

/// A node's offline-push hook hears only of devices online on no node: a
/// device online on the other node is online, under either policy.
#[test]
fn the_offline_push_hook_counts_a_device_on_the_other_node_as_online() {
    with_database(|db| async move { offline_hook_across_nodes(&db).await });
}

async fn offline_hook_across_nodes(db: &str) {
    use OfflinePushPolicy::*;
    // Device 1 pushes on node one; device 2 is online on node two; device
    // 3 logged in once on node two and is offline.
    for (tag, policy, expected) in [
        (1, EachOfflineDevice, vec![device(3)]),
        (2, WhenAllOthersOffline, vec![]),
    ] {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let mut first = config(StoreLocation::Postgres(db.to_owned()));
        first.offline_push_policy = policy;
        let hook = RecordingHook(heard.clone());
        let one = start_with(first, move |r| r.with_offline_push_hook(Box::new(hook))).await;
        let two = node(db).await;
        drop(login(&two, "alice", 3).await);
        let laptop = login(&two, "alice", 2).await;
        let mut phone = login(&one, "alice", 1).await;
        // Wait (bounded) until node one sees device 3 offline and device 2
        // online, across nodes.
        let deadline = Instant::now() + WAIT;
        loop {
            phone.session().list_devices().unwrap();
            let list = expect(&mut phone, |e| match e {
                SessionEvent::Devices(list) => Some(list.clone()),
                _ => None,
            })
            .await;
            let online = |n: u8| list.iter().any(|d| d.id == device(n) && d.online);
            if online(2) && !online(3) {
                break;
            }
            assert!(Instant::now() < deadline, "device states: {list:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        push_acked(&mut phone, deltas(tag, 1)).await;
        let heard: Vec<_> = heard.lock().unwrap().iter().map(|(d, _, _)| *d).collect();
        assert_eq!(heard, expected, "under {policy:?}");
        drop((phone, laptop));
        one.stop().await.expect("node one stops");
        two.stop().await.expect("node two stops");
    }
}
