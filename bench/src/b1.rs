//! B1 (catch-up) and B2 (bytes on the wire for it).
//!
//! A source device performs the workload offline and pushes it to a relay
//! (SQLite store) over loopback TCP. A fresh device that was offline then
//! connects; the clock runs from its connect until it reports in step: every
//! delta persisted, projected and journaled in its SQLite file. B2 repeats
//! the catch-up through a counting TCP proxy.
//!
//! Both run twice: with deltas in the clear (devices that hold no account
//! key: rows B1a, B1b, B2) and sealed (the source makes the account key and
//! links each fresh device before it connects, so the relay holds and sends
//! envelopes: rows B1a sealed, B1b sealed, B2 sealed). Same operations,
//! same baselines.
//!
//! Baselines, same process, same operations:
//! (a) automerge's own sync protocol between two in-memory documents, one
//!     automerge change per operation, every sync message encoded and
//!     decoded as it would be on a wire; no persistence;
//! (b) the SQLite floor: the rows the catch-up persists (messages, read
//!     markers, state rows) inserted in one transaction into a WAL file
//!     with the device store's durability (`synchronous = FULL`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use automerge::sync::{Message, State, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{Automerge, ObjId, ObjType, ROOT};
use tandem_engine::op::*;
use tandem_engine::{Engine, ExportCursor, StorePath};
use tandem_relay::StoreLocation;
use tokio::net::{TcpListener, TcpStream};

use crate::report::Row;
use crate::stats::{median, ms};
use crate::workload::*;
use crate::Scale;

const SCENARIO: &str = "catch-up after offline";

pub fn run(dir: &Path, scale: Scale) -> anyhow::Result<Vec<Row>> {
    let messages = scale.n(7_000, 1_400, 14);
    let markers = scale.n(2_000, 400, 4);
    let other = scale.n(1_000, 200, 2);
    let reps = if scale.quick { 1 } else { 3 };
    let ops = catch_up_ops(1, messages, markers, other);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let clear = runtime.block_on(tandem_runs(dir, &ops, reps, messages, false))?;
    let sealed = runtime.block_on(tandem_runs(dir, &ops, reps, messages, true))?;
    let total = clear.total;

    // (a) automerge's sync protocol over the same operations.
    let doc = automerge_doc(&ops)?;
    let mut automerge_ms = Vec::new();
    let mut automerge_bytes = 0;
    for _ in 0..reps {
        let (elapsed, bytes) = automerge_sync(&doc)?;
        automerge_ms.push(elapsed);
        automerge_bytes = bytes;
    }
    // (b) the SQLite floor.
    let mut sqlite_ms = Vec::new();
    for rep in 0..reps {
        sqlite_ms.push(sqlite_floor(dir, rep, &ops)?);
    }

    let tandem = median(clear.ms);
    let tandem_sealed = median(sealed.ms);
    let automerge = median(automerge_ms);
    let floor = median(sqlite_ms);
    let label =
        format!("{total} deltas: {messages} messages, {markers} read markers, {other} other");
    Ok(vec![
        Row::compare(
            "B1a",
            SCENARIO,
            "ms to in step",
            tandem,
            "automerge sync (in memory)",
            Some(automerge),
            Some(1.0),
            label.clone(),
        ),
        Row::compare(
            "B1b",
            SCENARIO,
            "ms to in step",
            tandem,
            "SQLite rows, 1 transaction",
            Some(floor),
            Some(5.0),
            "",
        ),
        Row::compare(
            "B2",
            "bytes on the wire for B1",
            "bytes (both ways)",
            clear.wire_bytes as f64,
            "automerge sync bytes",
            Some(automerge_bytes as f64),
            Some(2.0),
            "",
        ),
        Row::compare(
            "B1a sealed",
            "catch-up after offline, sealed envelopes",
            "ms to in step",
            tandem_sealed,
            "automerge sync (in memory)",
            Some(automerge),
            Some(1.0),
            format!("{} envelopes", sealed.entries),
        ),
        Row::compare(
            "B1b sealed",
            "catch-up after offline, sealed envelopes",
            "ms to in step",
            tandem_sealed,
            "SQLite rows, 1 transaction",
            Some(floor),
            Some(5.0),
            "",
        ),
        Row::compare(
            "B2 sealed",
            "bytes on the wire for B1, sealed",
            "bytes (both ways)",
            sealed.wire_bytes as f64,
            "automerge sync bytes",
            Some(automerge_bytes as f64),
            Some(2.0),
            "",
        ),
    ])
}

/// What the Tandem side of B1 and B2 measured in one mode.
struct TandemRuns {
    /// Each catch-up's ms to in step.
    ms: Vec<f64>,
    /// Bytes both ways of one more catch-up through the counting proxy.
    wire_bytes: u64,
    /// Deltas the source recorded.
    total: usize,
    /// Entries of the relay log: deltas, or envelopes when sealed.
    entries: u64,
}

/// The source pushes the workload to a fresh relay, then `reps` fresh
/// devices catch up from it, and one more through the counting proxy;
/// `sealed` makes the source hold the account key and links each fresh
/// device to it first.
async fn tandem_runs(
    dir: &Path,
    ops: &[Op],
    reps: usize,
    messages: usize,
    sealed: bool,
) -> anyhow::Result<TandemRuns> {
    let relay_db = dir.join("b1-relay.db");
    remove_db(&relay_db);
    let result = async {
        let relay = start_relay(StoreLocation::Sqlite(relay_db.clone())).await?;
        // The source performs everything offline, then pushes it.
        let mut source = open_engine(StorePath::Memory, 1)?;
        let mut at = now_ms();
        // Operations that change nothing (a pin of what is pinned) are not
        // recorded: the deltas to catch up are the recorded ones (and the
        // source's own roster entry, when it makes the key).
        let mut total = 0;
        if sealed {
            source.create_account_key(at)?;
            total += 1;
        }
        for (i, op) in ops.iter().enumerate() {
            at += 1;
            let performed = source
                .perform(at, op.clone())
                .with_context(|| format!("workload operation {i}: {op:?}"))?;
            total += usize::from(performed.recorded.is_some());
        }
        let source = online(source, relay.addr.to_string(), relay.token(&account()))?;
        wait_status(&source, "the source pushed everything", |s| s.in_step).await?;
        let mut source = source.shutdown().await?;
        let entries = source.relay_cursor()?;

        let mut ms = Vec::new();
        for rep in 0..=reps {
            let path = dir.join(format!("b1-device-{rep}.db"));
            remove_db(&path);
            let mut engine = open_engine(StorePath::File(path.clone()), 2)?;
            if sealed {
                link(&mut source, &mut engine)?;
            }
            // The last catch-up goes through a proxy that counts bytes.
            let (addr, counted) = if rep < reps {
                (relay.addr.to_string(), None)
            } else {
                let counted = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
                let proxy = start_counting_proxy(relay.addr, counted.clone()).await?;
                (proxy.to_string(), Some(counted))
            };
            let elapsed = catch_up(engine, addr, &relay.token(&account()), total, messages).await?;
            remove_db(&path);
            match counted {
                None => ms.push(elapsed),
                Some(counted) => {
                    let bytes =
                        counted[0].load(Ordering::Relaxed) + counted[1].load(Ordering::Relaxed);
                    relay.stop().await?;
                    return anyhow::Ok(TandemRuns {
                        ms,
                        wire_bytes: bytes,
                        total,
                        entries,
                    });
                }
            }
        }
        unreachable!("the last repetition returns")
    }
    .await;
    remove_db(&relay_db);
    result
}

/// Links `new` to the account key `source` holds, as a user would with a
/// link code.
fn link(source: &mut Engine, new: &mut Engine) -> anyhow::Result<()> {
    let at = now_ms();
    let code = new.show_link_code(at)?.code;
    let grant = source.grant_link(&code, at)?;
    let source_key = source.device().public_key;
    new.accept_link_grant(&grant, &source_key, at)?;
    Ok(())
}

/// A fresh device catching up from the relay at `addr`; returns the
/// milliseconds from connect to in step, after checking it holds everything.
async fn catch_up(
    engine: Engine,
    addr: String,
    token: &str,
    total: usize,
    messages: usize,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let device = online(engine, addr, token.to_owned())?;
    wait_status(&device, "the catching-up device in step", |s| s.in_step).await?;
    let elapsed = ms(started.elapsed());
    let engine = device.shutdown().await?;
    check_caught_up(&engine, total, messages)?;
    Ok(elapsed)
}

fn check_caught_up(engine: &Engine, total: usize, messages: usize) -> anyhow::Result<()> {
    let held = engine
        .export(ExportCursor::default(), total + 1)?
        .deltas
        .len();
    anyhow::ensure!(held == total, "caught up {held} deltas of {total}");
    let stored = engine.state()?.messages.len();
    anyhow::ensure!(stored == messages, "stored {stored} messages of {messages}");
    Ok(())
}

/// A TCP proxy to `to` that adds the bytes it carries each way to `counted`.
async fn start_counting_proxy(
    to: std::net::SocketAddr,
    counted: Arc<[AtomicU64; 2]>,
) -> anyhow::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(to).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = counted.clone();
                let upstream = tokio::spawn(async move {
                    let n = tokio::io::copy(&mut cr, &mut sw).await.unwrap_or(0);
                    up[0].fetch_add(n, Ordering::Relaxed);
                });
                let n = tokio::io::copy(&mut sr, &mut cw).await.unwrap_or(0);
                counted[1].fetch_add(n, Ordering::Relaxed);
                let _ = upstream.await;
            });
        }
    });
    Ok(addr)
}

/// What a pure-automerge IM app would keep: every operation as one change
/// to one document, messages included (bodies as plain strings, the
/// cheapest representation automerge has).
fn automerge_doc(ops: &[Op]) -> anyhow::Result<Automerge> {
    let mut doc = Automerge::new();
    doc.set_actor(automerge::ActorId::from([1u8; 16].as_slice()));
    let mut roots: HashMap<&'static str, ObjId> = HashMap::new();
    {
        let mut tx = doc.transaction();
        for name in [
            "messages", "read", "contacts", "blocked", "groups", "pinned", "marks", "dnd",
        ] {
            roots.insert(name, tx.put_object(ROOT, name, ObjType::Map)?);
        }
        tx.commit();
    }
    let mut objects: HashMap<String, ObjId> = HashMap::new();
    let mut at = 1_700_000_000_000i64;
    let mut seq = 0u64;
    for op in ops {
        at += 1;
        seq += 1;
        let mut tx = doc.transaction();
        match op {
            Op::Message(MessageOp::Ingest { message }) => {
                let m = tx.put_object(&roots["messages"], message.id.as_str(), ObjType::Map)?;
                tx.put(&m, "conversation", message.conversation.key())?;
                tx.put(&m, "sender", message.sender.as_str())?;
                tx.put(&m, "sent_at", message.sent_at_ms)?;
                tx.put(&m, "body", message.body.as_str())?;
            }
            Op::Message(MessageOp::Send { conversation, body }) => {
                let m = tx.put_object(&roots["messages"], format!("own.{seq}"), ObjType::Map)?;
                tx.put(&m, "conversation", conversation.key())?;
                tx.put(&m, "sender", ACCOUNT)?;
                tx.put(&m, "sent_at", at)?;
                tx.put(&m, "body", body.as_str())?;
            }
            Op::Conversation(ConversationOp::MarkRead {
                conversation,
                message,
            }) => {
                tx.put(
                    &roots["read"],
                    conversation.key(),
                    format!("{at}\u{1f}{}", message.as_str()),
                )?;
            }
            Op::Conversation(ConversationOp::Pin { conversation }) => {
                tx.put(&roots["pinned"], conversation.key(), true)?;
            }
            Op::Conversation(ConversationOp::Unpin { conversation }) => {
                tx.put(&roots["pinned"], conversation.key(), false)?;
            }
            Op::Conversation(ConversationOp::AddMark { conversation, mark }) => {
                tx.put(
                    &roots["marks"],
                    format!("{}\u{1f}{mark}", conversation.key()),
                    true,
                )?;
            }
            Op::Conversation(ConversationOp::SetDoNotDisturb {
                conversation,
                enabled,
            }) => {
                tx.put(&roots["dnd"], conversation.key(), *enabled)?;
            }
            Op::Contact(ContactOp::Accept { user }) => {
                let c = tx.put_object(&roots["contacts"], user.as_str(), ObjType::Map)?;
                tx.put(&c, "status", "accepted")?;
                tx.put(&c, "remark", "")?;
                tx.put(&c, "since", at)?;
                objects.insert(format!("contact:{}", user.as_str()), c);
            }
            Op::Contact(ContactOp::SetRemark { user, remark }) => {
                let c = &objects[&format!("contact:{}", user.as_str())];
                tx.put(c, "remark", remark.as_str())?;
            }
            Op::Contact(ContactOp::Block { user }) => {
                tx.put(&roots["blocked"], user.as_str(), at)?;
            }
            Op::Group(GroupOp::Create {
                group,
                name,
                members,
            }) => {
                let g = tx.put_object(&roots["groups"], group.as_str(), ObjType::Map)?;
                tx.put(&g, "name", name.as_str())?;
                tx.put(&g, "owner", ACCOUNT)?;
                let m = tx.put_object(&g, "members", ObjType::Map)?;
                for member in members {
                    tx.put(&m, member.as_str(), "member")?;
                }
                objects.insert(format!("group:{}", group.as_str()), g);
                objects.insert(format!("members:{}", group.as_str()), m);
            }
            Op::Group(GroupOp::Invite { group, users }) => {
                let m = &objects[&format!("members:{}", group.as_str())];
                for member in users {
                    tx.put(m, member.as_str(), "member")?;
                }
            }
            Op::Group(GroupOp::UpdateInfo { group, update }) => {
                let g = &objects[&format!("group:{}", group.as_str())];
                if let Some(name) = &update.name {
                    tx.put(g, "name", name.as_str())?;
                }
                if let Some(text) = &update.announcement {
                    tx.put(g, "announcement", text.as_str())?;
                }
            }
            other => anyhow::bail!("the automerge baseline has no mapping for {other:?}"),
        }
        tx.commit();
    }
    // An operation that writes what is already there (a read marker set
    // twice to the same message) makes no automerge change.
    let changes = doc.get_changes(&[]).len();
    anyhow::ensure!(
        changes > ops.len() * 9 / 10 && changes <= ops.len() + 1,
        "about one automerge change per operation: {changes} changes for {} operations",
        ops.len()
    );
    Ok(doc)
}

/// Syncs `doc` into a fresh in-memory document with automerge's protocol;
/// returns (milliseconds, bytes both ways). Every message is encoded and
/// decoded, as it would be on a wire.
fn automerge_sync(doc: &Automerge) -> anyhow::Result<(f64, usize)> {
    let total = doc.get_changes(&[]).len();
    let mut source = doc.clone();
    let started = Instant::now();
    let mut peer = Automerge::new();
    let (mut ours, mut theirs) = (State::new(), State::new());
    let mut bytes = 0;
    for _round in 0..100 {
        let mut quiet = true;
        if let Some(message) = source.generate_sync_message(&mut ours) {
            let encoded = message.encode();
            bytes += encoded.len();
            peer.receive_sync_message(&mut theirs, Message::decode(&encoded)?)?;
            quiet = false;
        }
        if let Some(message) = peer.generate_sync_message(&mut theirs) {
            let encoded = message.encode();
            bytes += encoded.len();
            source.receive_sync_message(&mut ours, Message::decode(&encoded)?)?;
            quiet = false;
        }
        if quiet {
            break;
        }
    }
    let elapsed = ms(started.elapsed());
    let got = peer.get_changes(&[]).len();
    anyhow::ensure!(got == total, "automerge synced {got} of {total} changes");
    Ok((elapsed, bytes))
}

/// The rows B1 persists, inserted in one transaction into a fresh WAL file.
fn sqlite_floor(dir: &Path, rep: usize, ops: &[Op]) -> anyhow::Result<f64> {
    let path = dir.join(format!("b1-floor-{rep}.db"));
    remove_db(&path);
    let mut conn = rusqlite::Connection::open(&path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE messages (id TEXT PRIMARY KEY, conversation TEXT NOT NULL, \
           sender TEXT NOT NULL, sent_at_ms INTEGER NOT NULL, body TEXT NOT NULL) STRICT;
         CREATE INDEX messages_by_conversation ON messages (conversation, sent_at_ms, id);
         CREATE TABLE read_markers (conversation TEXT PRIMARY KEY, message TEXT NOT NULL) STRICT;
         CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;",
    )?;
    let started = Instant::now();
    let tx = conn.transaction()?;
    {
        let mut message = tx.prepare(
            "INSERT INTO messages (id, conversation, sender, sent_at_ms, body) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut marker = tx.prepare(
            "INSERT INTO read_markers (conversation, message) VALUES (?1, ?2) \
             ON CONFLICT (conversation) DO UPDATE SET message = excluded.message",
        )?;
        let mut state = tx.prepare(
            "INSERT INTO state (key, value) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )?;
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Message(MessageOp::Ingest { message: m }) => {
                    message.execute(rusqlite::params![
                        m.id.as_str(),
                        m.conversation.key(),
                        m.sender.as_str(),
                        m.sent_at_ms,
                        m.body
                    ])?;
                }
                Op::Message(MessageOp::Send { conversation, body }) => {
                    message.execute(rusqlite::params![
                        format!("own.{i}"),
                        conversation.key(),
                        ACCOUNT,
                        i as i64,
                        body
                    ])?;
                }
                Op::Conversation(ConversationOp::MarkRead {
                    conversation,
                    message: m,
                }) => {
                    marker.execute([conversation.key(), m.as_str().to_owned()])?;
                }
                other => {
                    state.execute([format!("{i}"), format!("{other:?}")])?;
                }
            }
        }
    }
    tx.commit()?;
    let elapsed = ms(started.elapsed());
    drop(conn);
    remove_db(&path);
    Ok(elapsed)
}
