//! Relay nodes and their database failing under devices that know several
//! relays: two `tandem relay --postgres` processes on one throwaway
//! database, devices in this process (`tandem_online`) configured with
//! both addresses, all on loopback and bounded.
//!
//! - A node killed with SIGKILL in the middle of pushes: its devices move
//!   to the other node; every operation acknowledged before the kill is in
//!   the log and reaches every device; all converge.
//! - The database server restarted (crash-stopped, down a second, WAL
//!   replayed; a server of the test's own) while devices push: both relay
//!   processes stay up, reconnect, and nothing acknowledged is lost.
//! - A killed node's sessions count towards the online limit until its
//!   lease runs out, then stop counting.
//! - `tandem sync --relay DEAD,LIVE` gets in step through the live one.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use tandem_engine::model::{IncomingMessage, MessageId, UserId};
use tandem_engine::op::{MessageOp, Op};
use tandem_engine::{AccountId, Config, ContentId, Engine, OsEntropy, Platform, StorePath};
use tandem_online::{Backoff, Link, OnlineConfig, OnlineDevice, Status, StopReason, SyncEvent};
use tandem_storage::pg_test::{Cluster, TestDb};
use tandem_transport::ErrorCode;

/// How long any one wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(25);

/// Operations each pushing device performs.
const OPS: usize = 60;

/// How long the test sleeps between two operations of one device: long
/// enough that the pushes are spread over the fault, short enough for a
/// quick test.
const OP_GAP: Duration = Duration::from_millis(15);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn alice_token(dir: &std::path::Path) -> String {
    login_token(dir.join("relay.secret").to_str().unwrap(), "alice")
}

/// A device of alice's with a file in `dir`, logging in with a fresh
/// token, knowing `relays` in this order; quick retries, so a test does not
/// wait on the default backoff.
fn device(dir: &std::path::Path, name: &str, relays: &[&str]) -> OnlineDevice {
    let engine = Engine::open(
        Config {
            store: StorePath::File(dir.join(format!("{name}.db"))),
            account: AccountId::new("alice").unwrap(),
            device_name: name.into(),
            platform: Platform::Linux,
        },
        0,
        Box::new(OsEntropy),
    )
    .unwrap();
    let config = OnlineConfig {
        backoff: Backoff {
            initial_ms: 100,
            max_ms: 500,
        },
        connect_timeout_ms: 2_000,
        ..OnlineConfig::with_relays(relays.iter().copied()).with_login_token(alice_token(dir))
    };
    OnlineDevice::spawn(engine, config).unwrap()
}

async fn wait_status(device: &OnlineDevice, what: &str, check: impl Fn(&Status) -> bool) -> Status {
    let mut status = device.status();
    let reached = tokio::time::timeout(WAIT, status.wait_for(|s| check(s)))
        .await
        .ok()
        .and_then(Result::ok)
        .map(|s| s.clone());
    reached.unwrap_or_else(|| {
        panic!(
            "timed out waiting for {what}: {:?}",
            device.status().borrow()
        )
    })
}

async fn connected_to(device: &OnlineDevice, relay: &str) {
    wait_status(device, &format!("connected to {relay}"), |s| {
        s.link == Link::Connected && s.relay.as_deref() == Some(relay)
    })
    .await;
}

/// What one device performed: each message's id and its delta's content id.
type Performed = Arc<Mutex<Vec<(MessageId, ContentId)>>>;

/// Ingests `OPS` messages on `device`, `OP_GAP` apart, recording each.
async fn push_messages(device: Arc<OnlineDevice>, tag: &'static str, performed: Performed) {
    for i in 0..OPS {
        let id = MessageId::new(format!("{tag}-{i}")).unwrap();
        let op = Op::Message(MessageOp::Ingest {
            message: IncomingMessage {
                id: id.clone(),
                conversation: "u:bob".parse().unwrap(),
                sender: UserId::new("bob").unwrap(),
                sent_at_ms: i as i64 + 1,
                body: format!("{tag} {i}"),
            },
        });
        let done = device.perform(op).await.expect("a local operation");
        let content_id = done.content_id().expect("an ingest is recorded");
        performed.lock().unwrap().push((id, content_id));
        tokio::time::sleep(OP_GAP).await;
    }
}

/// The operations of `performed` the relay has acknowledged to `device`
/// by now: every one not in its outbox.
async fn acknowledged(device: &OnlineDevice, performed: &Performed) -> Vec<(MessageId, ContentId)> {
    let so_far = performed.lock().unwrap().clone();
    let unacked: BTreeSet<ContentId> = device
        .read(|engine| engine.outbox(100_000).unwrap())
        .await
        .unwrap()
        .iter()
        .map(|delta| ContentId::of(&delta.0))
        .collect();
    so_far
        .into_iter()
        .filter(|(_, content_id)| !unacked.contains(content_id))
        .collect()
}

/// Runs `f` on a connection to the test database, on a plain thread (the
/// synchronous client runs a runtime of its own).
fn sql<T: Send + 'static>(
    url: &str,
    f: impl FnOnce(&mut postgres::Client) -> T + Send + 'static,
) -> T {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        f(&mut client)
    })
    .join()
    .unwrap()
}

/// The account's log in the database: each entry's content id, in seq
/// order, after checking the seqs are dense from 1.
fn log_of(url: &str) -> Vec<ContentId> {
    let rows = sql(url, |c| {
        c.query(
            "SELECT seq, content_id FROM log WHERE account = 'alice' ORDER BY seq",
            &[],
        )
        .unwrap()
    });
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let seq: i64 = row.get(0);
            assert_eq!(seq, i as i64 + 1, "the log's seqs are dense");
            let bytes: Vec<u8> = row.get(1);
            ContentId(bytes.try_into().unwrap())
        })
        .collect()
}

/// Waits until every device holds every message in `ids`.
async fn converged(devices: &[&OnlineDevice], ids: &[MessageId]) {
    let deadline = Instant::now() + WAIT;
    for device in devices {
        loop {
            let ids = ids.to_vec();
            let missing = device
                .read(move |engine| {
                    ids.iter()
                        .filter(|id| engine.message(id).unwrap().is_none())
                        .count()
                })
                .await
                .unwrap();
            if missing == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{missing} messages never reached a device: {:?}",
                device.status().borrow()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Everything `performed` holds is in the log once, and every operation
/// acknowledged at the fault is among them.
fn nothing_lost(
    url: &str,
    performed: &[&Performed],
    acknowledged_at_fault: &[(MessageId, ContentId)],
) {
    let log = log_of(url);
    let in_log: BTreeSet<ContentId> = log.iter().copied().collect();
    assert_eq!(in_log.len(), log.len(), "each delta is in the log once");
    let all: Vec<ContentId> = performed
        .iter()
        .flat_map(|p| {
            p.lock()
                .unwrap()
                .iter()
                .map(|(_, c)| *c)
                .collect::<Vec<_>>()
        })
        .collect();
    for (id, content_id) in acknowledged_at_fault {
        assert!(
            in_log.contains(content_id),
            "{id} was acknowledged before the fault and is not in the log"
        );
    }
    for content_id in &all {
        assert!(
            in_log.contains(content_id),
            "an operation never reached the log"
        );
    }
    assert_eq!(
        log.len(),
        all.len(),
        "the log holds exactly what was performed"
    );
}

fn ids_of(performed: &[&Performed]) -> Vec<MessageId> {
    performed
        .iter()
        .flat_map(|p| {
            p.lock()
                .unwrap()
                .iter()
                .map(|(id, _)| id.clone())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Node A is killed with SIGKILL while phone and laptop, connected to it,
/// push; they move to node B and resume; tablet, on B throughout, gets
/// everything. Nothing acknowledged by A is lost.
#[test]
fn a_node_killed_mid_push_loses_nothing_acknowledged_and_its_devices_move() {
    let db = TestDb::create();
    let dir = tempfile::tempdir().unwrap();
    let (node_a, a) = start_node(dir.path(), db.url(), &[]);
    let (node_b, b) = start_node(dir.path(), db.url(), &[]);
    let mut node_a = Some(node_a);
    runtime().block_on(async {
        let phone = Arc::new(device(dir.path(), "phone", &[&a, &b]));
        let laptop = Arc::new(device(dir.path(), "laptop", &[&a, &b]));
        let tablet = device(dir.path(), "tablet", &[&b, &a]);
        connected_to(&phone, &a).await;
        connected_to(&laptop, &a).await;
        connected_to(&tablet, &b).await;

        let (phone_ops, laptop_ops) = (Performed::default(), Performed::default());
        let pushing = [
            tokio::spawn(push_messages(phone.clone(), "phone", phone_ops.clone())),
            tokio::spawn(push_messages(laptop.clone(), "laptop", laptop_ops.clone())),
        ];
        // A third of the way in, node A dies.
        let deadline = Instant::now() + WAIT;
        while phone_ops.lock().unwrap().len() < OPS / 3 {
            assert!(Instant::now() < deadline, "the pushes started");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(node_a.take()); // SIGKILL, then reaped.
        let mut at_kill = acknowledged(&phone, &phone_ops).await;
        at_kill.extend(acknowledged(&laptop, &laptop_ops).await);
        let performed_at_kill = phone_ops.lock().unwrap().len() + laptop_ops.lock().unwrap().len();
        assert!(
            !at_kill.is_empty(),
            "node A acknowledged pushes before it died"
        );

        connected_to(&phone, &b).await;
        connected_to(&laptop, &b).await;
        for task in pushing {
            tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
        }
        let ids = ids_of(&[&phone_ops, &laptop_ops]);
        converged(&[&phone, &laptop, &tablet], &ids).await;
        for device in [&*phone, &*laptop, &tablet] {
            wait_status(device, "in step", |s| s.in_step).await;
        }
        eprintln!(
            "failover: {} of {performed_at_kill} operations acknowledged when node A died",
            at_kill.len()
        );
        nothing_lost(db.url(), &[&phone_ops, &laptop_ops], &at_kill);
        // Node B served throughout, and still does.
        assert_eq!(tablet.status().borrow().relay.as_deref(), Some(b.as_str()));
        drop((phone, laptop, tablet));
    });
    drop(node_b);
}

/// The database server is restarted while devices on both nodes push: it
/// stops the way a crash stops it (every connection dropped, no shutdown
/// checkpoint), stays down for a second, and comes back with WAL replay.
/// The server is one of this test's own (the other tests share another),
/// so a real restart disturbs nobody. Both relay processes stay up,
/// reconnect their store and their feed, and nothing acknowledged is lost.
#[test]
fn a_database_restart_under_pushes_is_survived_by_both_nodes() {
    let cluster = Cluster::start().unwrap_or_else(|reason| panic!("{reason}"));
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    let (mut node_a, a) = start_node(dir.path(), &url, &[]);
    let (mut node_b, b) = start_node(dir.path(), &url, &[]);
    runtime().block_on(async {
        let phone = Arc::new(device(dir.path(), "phone", &[&a, &b]));
        let tablet = Arc::new(device(dir.path(), "tablet", &[&b, &a]));
        connected_to(&phone, &a).await;
        connected_to(&tablet, &b).await;

        let (phone_ops, tablet_ops) = (Performed::default(), Performed::default());
        let pushing = [
            tokio::spawn(push_messages(phone.clone(), "phone", phone_ops.clone())),
            tokio::spawn(push_messages(tablet.clone(), "tablet", tablet_ops.clone())),
        ];
        let deadline = Instant::now() + WAIT;
        while phone_ops.lock().unwrap().len() < OPS / 3 {
            assert!(Instant::now() < deadline, "the pushes started");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut at_restart = acknowledged(&phone, &phone_ops).await;
        at_restart.extend(acknowledged(&tablet, &tablet_ops).await);
        let performed_at_restart =
            phone_ops.lock().unwrap().len() + tablet_ops.lock().unwrap().len();
        on_the_side(|| cluster.restart(Duration::from_secs(1))).unwrap();
        assert!(
            !at_restart.is_empty(),
            "the nodes acknowledged pushes before the restart"
        );

        for task in pushing {
            tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
        }
        let ids = ids_of(&[&phone_ops, &tablet_ops]);
        converged(&[&phone, &tablet], &ids).await;
        for device in [&*phone, &*tablet] {
            wait_status(device, "in step", |s| s.in_step).await;
        }
        eprintln!(
            "database restart: {} of {performed_at_restart} operations acknowledged before it",
            at_restart.len()
        );
        nothing_lost(&url, &[&phone_ops, &tablet_ops], &at_restart);
        drop((phone, tablet));
    });
    // The relays recovered: neither process exited.
    for node in [&mut node_a, &mut node_b] {
        assert!(node.0.try_wait().unwrap().is_none(), "a relay exited");
    }
}

/// Runs `f` on a thread of its own and waits for it: the synchronous
/// PostgreSQL client, and a blocking `pg_ctl`, must not run on a runtime's
/// worker.
fn on_the_side<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(f).join().unwrap())
}

/// Four devices online on node A under a limit of four; A is killed with
/// SIGKILL. Its sessions still hold the four places until its lease runs
/// out: a fifth device is refused on node B at once, and let in once the
/// lease has expired.
#[test]
fn a_killed_nodes_sessions_stop_counting_when_its_lease_runs_out() {
    let db = TestDb::create();
    let dir = tempfile::tempdir().unwrap();
    let limit = ["--max-devices", "4"];
    let (node_a, a) = start_node(dir.path(), db.url(), &limit);
    let (node_b, b) = start_node(dir.path(), db.url(), &limit);
    let mut node_a = Some(node_a);
    runtime().block_on(async {
        // Only A: these devices must not take places on B.
        let mut four = Vec::new();
        for i in 0..4 {
            let device = device(dir.path(), &format!("d{i}"), &[&a]);
            connected_to(&device, &a).await;
            four.push(device);
        }
        drop(node_a.take()); // SIGKILL, then reaped.
        let killed_at = Instant::now();
        for device in &four {
            device.set_online(false).await.unwrap();
        }

        let fifth = device(dir.path(), "fifth", &[&b]);
        let refused = wait_status(&fifth, "refused", |s| s.stopped.is_some()).await;
        assert!(
            matches!(
                refused.stopped,
                Some(StopReason::Refused {
                    code: ErrorCode::TooManyDevices,
                    ..
                })
            ),
            "the killed node's sessions still count: {refused:?}"
        );
        let refused_after = killed_at.elapsed();

        // Then, with a fresh login token now and then, until the lease is
        // over (15 s at most after the kill; bounded here).
        let deadline = Instant::now() + WAIT;
        let mut events = fifth.subscribe();
        'admitted: loop {
            assert!(Instant::now() < deadline, "the lease never ran out");
            tokio::time::sleep(Duration::from_millis(500)).await;
            fifth.relogin(alice_token(dir.path())).await.unwrap();
            loop {
                let event = tokio::time::timeout(WAIT, events.recv())
                    .await
                    .expect("an answer to the login")
                    .unwrap();
                match event {
                    SyncEvent::Connected { .. } => break 'admitted,
                    SyncEvent::Refused(refusal) => {
                        assert_eq!(refusal.code, ErrorCode::TooManyDevices, "{refusal:?}");
                        break;
                    }
                    _ => {}
                }
            }
        }
        eprintln!(
            "lease: refused {:.1} s after the kill, admitted {:.1} s after it",
            refused_after.as_secs_f64(),
            killed_at.elapsed().as_secs_f64()
        );
        assert!(
            killed_at.elapsed() > refused_after,
            "admitted only after a refusal"
        );
        drop((four, fifth));
    });
    drop(node_b);
}

/// `tandem sync --relay DEAD,LIVE`: the first address refuses, the device
/// moves to the second at once and gets in step there; the failed attempt
/// is told on stderr, naming the dead address. The device keeps both.
#[test]
fn sync_with_a_dead_relay_first_gets_in_step_through_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let (_relay, live) = start_relay(dir.path());
    // A loopback port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let data = dir.path().join("phone.db");
    let relays = format!("{dead},{live}");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("--data")
        .arg(&data)
        .args(["--account", "alice", "--relay", &relays, "--token"])
        .arg(alice_token(dir.path()))
        .args(["sync", "--timeout-s", "20"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("relay {dead}: cannot connect")),
        "{stderr}"
    );
    // Kept: the next command needs no --relay, and knows both.
    let data = data.to_str().unwrap();
    tandem(&["--data", data, "pin", "u:bob"]);
    tandem(&["--data", data, "sync", "--timeout-s", "20"]);
}
