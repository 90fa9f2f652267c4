//! B3: live fan-out.
//!
//! Four devices of one account online with a relay (SQLite store) over
//! loopback TCP. One performs operations at a fixed rate (sends, read
//! markers, pins); the clock runs from the moment its `perform` returns (the
//! operation is committed locally) until each of the three others reports a
//! `Merged` sync event for the batch holding it (persisted, projected and
//! journaled there).
//!
//! The floor, right after in the same process: a trivial tokio forwarder
//! that relays the same delta bytes, length-prefixed, from one TCP
//! connection to three, at the same rate; the clock runs from the sender's
//! write to each receiver's read.
//!
//! Run twice: with the devices durable (the default, every commit synced)
//! and with merges relaxed (`Durability::RelaxedMerges`: a receiver's merge
//! is not synced). Beside them, the cost of one synced SQLite commit on
//! this disk, measured in the same run: the relay syncs once per group
//! before it fans anything out, so no setting of the devices takes the
//! path below it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tandem_engine::model::*;
use tandem_engine::op::*;
use tandem_engine::sync::SyncEvent;
use tandem_engine::{ContentId, Durability, ExportCursor, StorePath};
use tandem_relay::StoreLocation;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::report::Row;
use crate::stats::Samples;
use crate::workload::*;
use crate::Scale;

const SCENARIO: &str = "live fan-out, 4 devices";
const RECEIVERS: usize = 3;
type Arrivals = Arc<Mutex<Vec<(ContentId, Instant)>>>;

pub fn run(dir: &Path, scale: Scale) -> anyhow::Result<Vec<Row>> {
    let rate_per_s = 1_000usize;
    let ops = scale.n(10_000, 2_000, 50);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut rows = Vec::new();
        let mut sent = Vec::new();
        for durability in [Durability::Full, Durability::RelaxedMerges] {
            let (mut tandem, achieved, bytes) =
                tandem_fan_out(dir, ops, rate_per_s, durability).await?;
            sent = bytes;
            let arrived = tandem.len();
            rows.push((
                durability,
                tandem.percentile_ms(50.0),
                tandem.percentile_ms(99.0),
                achieved,
                arrived,
            ));
        }
        let mut floor = floor_fan_out(&sent, rate_per_s).await?;
        let mut commit = synced_commits(dir, 200)?;
        let (floor_p50, floor_p99) = (floor.percentile_ms(50.0), floor.percentile_ms(99.0));
        let commit_p50 = commit.percentile_ms(50.0);
        let mut out = Vec::new();
        for (durability, p50, p99, achieved, arrived) in rows {
            let setting = match durability {
                Durability::Full => "durable devices",
                _ => "devices with relaxed merges",
            };
            let note = format!(
                "{setting}: {ops} ops at {rate_per_s}/s asked, {achieved:.0}/s achieved; \
                 {arrived} of {} arrivals; floor p50 {floor_p50:.3} ms; one synced SQLite \
                 commit here p50 {commit_p50:.2} ms (the relay makes one per group before \
                 it fans out{})",
                ops * RECEIVERS,
                match durability {
                    Durability::Full => ", and each receiver one per merged batch",
                    _ => "",
                }
            );
            out.push(Row::compare(
                "B3",
                SCENARIO,
                &format!("p50 ms commit → event, {setting}"),
                p50,
                "tokio TCP forwarder p50",
                Some(floor_p50),
                None,
                "",
            ));
            out.push(Row::compare(
                "B3",
                SCENARIO,
                &format!("p99 ms commit → event, {setting}"),
                p99,
                "tokio TCP forwarder p99",
                Some(floor_p99),
                Some(10.0),
                note,
            ));
        }
        Ok(out)
    })
}

/// How long one synced SQLite commit takes on this machine's disk
/// (`synchronous=FULL`, WAL, one small row per transaction): the unit of
/// the durable path's cost, measured in the same run.
fn synced_commits(dir: &Path, count: usize) -> anyhow::Result<Samples> {
    let path = dir.join("b3-commit.db");
    remove_db(&path);
    let conn = rusqlite::Connection::open(&path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, bytes BLOB NOT NULL)")?;
    let mut samples = Samples::default();
    let row = vec![7u8; 300];
    for _ in 0..count {
        let at = Instant::now();
        conn.execute("INSERT INTO t (bytes) VALUES (?1)", [&row])?;
        samples.push(at.elapsed());
    }
    drop(conn);
    remove_db(&path);
    Ok(samples)
}

/// Returns the latencies, the achieved rate, and the delta bytes sent (for
/// the floor to carry).
async fn tandem_fan_out(
    dir: &Path,
    ops: usize,
    rate_per_s: usize,
    durability: Durability,
) -> anyhow::Result<(Samples, f64, Vec<Vec<u8>>)> {
    let relay_db = dir.join("b3-relay.db");
    remove_db(&relay_db);
    let relay = start_relay(StoreLocation::Sqlite(relay_db.clone())).await?;
    let mut devices = Vec::new();
    for n in 0..=RECEIVERS {
        let path = dir.join(format!("b3-device-{n}.db"));
        remove_db(&path);
        let mut engine = open_engine(StorePath::File(path), 10 + n as u8)?;
        engine.set_durability(durability);
        let device = online(engine, relay.addr.to_string(), relay.token(&account()))?;
        wait_status(&device, "a fan-out device in step", |s| s.in_step).await?;
        devices.push(device);
    }
    let devices: Vec<Arc<_>> = devices.into_iter().map(Arc::new).collect();
    let sender = devices[0].clone();

    // Each receiver notes when a Merged event arrives and which deltas the
    // batch held (read from its store right after).
    // How many deltas the receivers wait for: unknown until the sender is
    // done, since an operation that changes nothing is not sent.
    let (expected_tx, expected) = tokio::sync::watch::channel(usize::MAX);
    let mut watchers = Vec::new();
    let mut arrivals: Vec<Arrivals> = Vec::new();
    for device in &devices[1..] {
        let device = device.clone();
        let seen: Arrivals = Arc::new(Mutex::new(Vec::with_capacity(ops)));
        arrivals.push(seen.clone());
        let mut events = device.subscribe();
        let mut expected = expected.clone();
        watchers.push(tokio::spawn(async move {
            let mut cursor = device
                .read(last_export_cursor)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            let deadline = tokio::time::Instant::now() + WAIT;
            while seen.lock().expect("not poisoned").len() < *expected.borrow_and_update() {
                let event = tokio::select! {
                    event = tokio::time::timeout_at(deadline, events.recv()) => event,
                    // The count is known now: check it again.
                    changed = expected.changed() => match changed {
                        Ok(()) => continue,
                        Err(_) => break,
                    },
                };
                let at = Instant::now();
                match event {
                    Err(_) => break,
                    Ok(Ok(SyncEvent::Merged(_)))
                    | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                    Ok(Ok(_)) => continue,
                    Ok(Err(_)) => break,
                }
                let Ok((ids, next)) = device
                    .read(move |e| match e.export(cursor, usize::MAX >> 1) {
                        Ok(page) => (
                            page.deltas.iter().map(|d| d.content_id()).collect(),
                            page.next,
                        ),
                        Err(_) => (Vec::new(), cursor),
                    })
                    .await
                else {
                    break;
                };
                cursor = next;
                let mut seen = seen.lock().expect("not poisoned");
                seen.extend(ids.into_iter().map(|id: ContentId| (id, at)));
            }
        }));
    }

    let mut rng = Rng::new(3);
    let mut committed: HashMap<ContentId, Instant> = HashMap::with_capacity(ops);
    let interval = Duration::from_secs_f64(1.0 / rate_per_s as f64);
    let started = tokio::time::Instant::now();
    let mut last_sent: Option<(ConversationId, MessageId)> = None;
    for i in 0..ops {
        tokio::time::sleep_until(started + interval * i as u32).await;
        let c = conversation(i % 40);
        let op = match (i % 10, &last_sent) {
            (3 | 7, Some((conversation, message))) => Op::Conversation(ConversationOp::MarkRead {
                conversation: conversation.clone(),
                message: message.clone(),
            }),
            (9, _) if i % 20 == 9 => Op::Conversation(ConversationOp::Pin {
                conversation: c.clone(),
            }),
            (9, _) => Op::Conversation(ConversationOp::Unpin {
                conversation: c.clone(),
            }),
            _ => Op::Message(MessageOp::Send {
                conversation: c.clone(),
                body: body(&mut rng),
            }),
        };
        let performed = sender.perform(op).await?;
        // An unpin of what is not pinned changes nothing and is not sent.
        if let Some(content_id) = performed.content_id() {
            committed.insert(content_id, Instant::now());
        }
        if let Some(message) = performed.message_id {
            last_sent = Some((c, message));
        }
    }
    let achieved = ops as f64 / started.elapsed().as_secs_f64();
    let _ = expected_tx.send(committed.len());
    for watcher in watchers {
        let _ = watcher.await;
    }
    let mut samples = Samples::default();
    for seen in &arrivals {
        for (id, at) in seen.lock().expect("not poisoned").iter() {
            if let Some(commit) = committed.get(id) {
                samples.push(at.saturating_duration_since(*commit));
            }
        }
    }
    let sent = sender
        .read(|e| e.export(ExportCursor::default(), usize::MAX >> 1))
        .await??
        .deltas
        .into_iter()
        .map(|d| d.0)
        .collect();
    for device in devices {
        if let Ok(device) = Arc::try_unwrap(device) {
            let _ = device.shutdown().await;
        }
    }
    relay.stop().await?;
    for n in 0..=RECEIVERS {
        remove_db(&dir.join(format!("b3-device-{n}.db")));
    }
    remove_db(&relay_db);
    Ok((samples, achieved, sent))
}

fn last_export_cursor(engine: &tandem_engine::Engine) -> Option<ExportCursor> {
    engine
        .export(ExportCursor::default(), usize::MAX >> 1)
        .ok()
        .map(|p| p.next)
}

/// The network floor: the same bytes through a forwarder that does nothing
/// but copy frames from one connection to three.
async fn floor_fan_out(sent: &[Vec<u8>], rate_per_s: usize) -> anyhow::Result<Samples> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let forwarder = tokio::spawn(async move {
        let mut receivers = Vec::new();
        for _ in 0..RECEIVERS {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            receivers.push(stream);
        }
        let (mut source, _) = listener.accept().await?;
        source.set_nodelay(true)?;
        let mut frame = Vec::new();
        loop {
            let mut len = [0u8; 4];
            if source.read_exact(&mut len).await.is_err() {
                return anyhow::Ok(());
            }
            frame.resize(u32::from_be_bytes(len) as usize, 0);
            source.read_exact(&mut frame).await?;
            for r in &mut receivers {
                r.write_all(&len).await?;
                r.write_all(&frame).await?;
            }
        }
    });
    let count = sent.len();
    let mut readers = Vec::new();
    for _ in 0..RECEIVERS {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        readers.push(tokio::spawn(async move {
            let mut got = Vec::with_capacity(count);
            let mut frame = Vec::new();
            while got.len() < count {
                let mut len = [0u8; 4];
                if stream.read_exact(&mut len).await.is_err() {
                    break;
                }
                frame.resize(u32::from_be_bytes(len) as usize, 0);
                if stream.read_exact(&mut frame).await.is_err() {
                    break;
                }
                let at = Instant::now();
                let index = u32::from_be_bytes(frame[..4].try_into().expect("4 bytes"));
                got.push((index as usize, at));
            }
            got
        }));
    }
    // Let the forwarder take the receivers before the source connects.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut source = TcpStream::connect(addr).await?;
    source.set_nodelay(true)?;
    let interval = Duration::from_secs_f64(1.0 / rate_per_s as f64);
    let started = tokio::time::Instant::now();
    let mut sent_at = Vec::with_capacity(count);
    for (i, bytes) in sent.iter().enumerate() {
        tokio::time::sleep_until(started + interval * i as u32).await;
        let mut frame = Vec::with_capacity(bytes.len() + 8);
        frame.extend_from_slice(&((bytes.len() + 4) as u32).to_be_bytes());
        frame.extend_from_slice(&(i as u32).to_be_bytes());
        frame.extend_from_slice(bytes);
        source.write_all(&frame).await?;
        sent_at.push(Instant::now());
    }
    let mut samples = Samples::default();
    for reader in readers {
        for (index, at) in tokio::time::timeout(WAIT, reader).await?? {
            if let Some(sent) = sent_at.get(index) {
                samples.push(at.saturating_duration_since(*sent));
            }
        }
    }
    drop(source);
    let _ = tokio::time::timeout(WAIT, forwarder).await;
    Ok(samples)
}
