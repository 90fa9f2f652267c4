//! Relay nodes on one PostgreSQL database, over real TCP: one log per
//! account whichever node a device reaches, idempotence across nodes, and
//! nothing acknowledged lost when every node stops.
//!
//! Each test has a fresh database of its own (`pg_test`); without
//! `TANDEM_TEST_POSTGRES_URL` a throwaway PostgreSQL is started, and none to
//! be had fails the test with the reason.

mod common;

use common::*;
use tandem_relay::StoreLocation;
use tandem_storage::pg_test::TestDb;
use tandem_transport::limits::DELTAS_PER_PAGE_MAX;
use tandem_transport::{ErrorCode, LogDelta, SessionEvent, WireDelta};

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
    let db = TestDb::create();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(test(db.url().to_owned()));
    drop(runtime);
    drop(db);
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
    // log in again there with the token it used.
    phone.session().kick(device(2)).unwrap();
    expect(&mut phone, |e| {
        matches!(e, SessionEvent::DeviceListChanged).then_some(())
    })
    .await;
    drop(laptop);
    let used = client_config("alice", 2, laptop_token);
    assert_eq!(refused(&two, used).await, ErrorCode::CredentialsRevoked);

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
