//! B4: cold start of a big account.
//!
//! The account (full size: 1,000,000 messages in 10,000 conversations,
//! 5,000 contacts, 500 groups of 50 members, 200,000 operations of document
//! history) is built once and cached in the bench folder. Each measurement
//! is a fresh process (`tandem-bench cold-start …`), so nothing stays warm in
//! the heap between runs; the OS page cache is warm for both sides alike.
//!
//! Tandem: `Engine::open` then the first page of 50 conversations. Floor:
//! opening the same SQLite file with rusqlite and running the same query.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use tandem_engine::delta::{Delta, DELTA_FORMAT};
use tandem_engine::model::*;
use tandem_engine::op::*;
use tandem_engine::{Applied, DeviceId, ExportCursor, StorePath};

use crate::progress::{bar, progress_line};
use crate::report::Row;
use crate::stats::{median, ms, peak_rss_mib};
use crate::workload::*;
use crate::Scale;

const SCENARIO: &str = "cold start, big account";
const PAGE: usize = 50;
const BATCH: usize = tandem_engine::limits::DELTAS_PER_BATCH_MAX;
/// The device that "received" the message history (its deltas' origin).
const IMPORTER: DeviceId = DeviceId([9; 16]);
/// The origin of the copy of the history's last messages that the device
/// making the document history gets. A device merges one origin's deltas
/// in order, each after the one before it, so that copy must be numbered
/// from 1 by an origin of its own: a tail of [`IMPORTER`]'s deltas would
/// wait forever for the head it was never given.
const MARKER_IMPORTER: DeviceId = DeviceId([8; 16]);
/// Read-marker targets each conversation has on the device that makes the
/// document history.
const MARKER_TARGETS: usize = 20;

#[derive(Debug, Clone, Copy)]
struct Size {
    messages: usize,
    conversations: usize,
    contacts: usize,
    groups: usize,
    members: usize,
    doc_ops: usize,
}

impl Size {
    fn of(scale: Scale) -> Size {
        Size {
            messages: scale.n(1_000_000, 20_000, 200),
            conversations: scale.n(10_000, 1_000, 12),
            contacts: scale.n(5_000, 500, 5),
            groups: scale.n(500, 50, 2),
            members: 50,
            doc_ops: scale.n(200_000, 20_000, 100),
        }
    }

    fn name(&self) -> String {
        format!(
            "b4-account-{}m-{}c-{}d",
            self.messages, self.conversations, self.doc_ops
        )
    }
}

pub fn run(dir: &Path, scale: Scale) -> anyhow::Result<Vec<Row>> {
    let size = Size::of(scale);
    let db = dir.join(format!("{}.db", size.name()));
    let done = dir.join(format!("{}.done", size.name()));
    if !done.exists() {
        build(dir, &db, size)?;
        std::fs::write(&done, format!("{size:?}\n"))?;
    }
    let reps = if scale.quick { 2 } else { 5 };
    let mut tandem_ms = Vec::new();
    let mut tandem_rss: f64 = 0.0;
    let mut floor_ms = Vec::new();
    let mut floor_rss: f64 = 0.0;
    // A cached account that no longer opens (a crash while it was moved
    // into place, a disk error) is reported, not silently rebuilt.
    let cached = || {
        format!(
            "the cached account {} (delete it and {} to build it again)",
            db.display(),
            done.display()
        )
    };
    for _ in 0..reps {
        let (t, rss) = spawn_child(ColdStartKind::Tandem, &db).with_context(cached)?;
        tandem_ms.push(t);
        tandem_rss = tandem_rss.max(rss);
        let (t, rss) = spawn_child(ColdStartKind::Floor, &db).with_context(cached)?;
        floor_ms.push(t);
        floor_rss = floor_rss.max(rss);
    }
    let label = format!(
        "{} messages, {} conversations, {} contacts, {} groups × {}, {} doc ops; median of {reps} fresh processes",
        size.messages, size.conversations, size.contacts, size.groups, size.members, size.doc_ops
    );
    Ok(vec![
        Row::compare(
            "B4",
            SCENARIO,
            "ms open → first 50 conversations",
            median(tandem_ms),
            "SQLite open + same query",
            Some(median(floor_ms)),
            Some(2.0),
            label,
        ),
        Row::compare(
            "B4",
            SCENARIO,
            "peak RSS MiB (whole process)",
            tandem_rss,
            "64 MiB budget",
            Some(64.0),
            Some(1.0),
            format!("the floor process peaks at {floor_rss:.1} MiB"),
        ),
    ])
}

/// Runs one cold start in a fresh process; returns (ms, peak RSS MiB).
fn spawn_child(kind: ColdStartKind, db: &Path) -> anyhow::Result<(f64, f64)> {
    let exe = std::env::current_exe().context("finding the tandem-bench binary")?;
    let output = Command::new(exe)
        .args(["cold-start", "--kind", kind.name(), "--db"])
        .arg(db)
        .output()
        .context("starting a cold-start process")?;
    anyhow::ensure!(
        output.status.success(),
        "the {} cold-start process failed: {}",
        kind.name(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let figures: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let rows = figures["rows"].as_u64().unwrap_or(0);
    anyhow::ensure!(
        rows == PAGE as u64,
        "{} cold start listed {rows} conversations",
        kind.name()
    );
    Ok((
        figures["ms"].as_f64().unwrap_or(f64::NAN),
        figures["rss_mib"].as_f64().unwrap_or(f64::NAN),
    ))
}

/// A cold-start process: which side, and the store it opens.
#[derive(Debug, clap::Args)]
pub struct ColdStartArgs {
    #[arg(long, value_enum)]
    kind: ColdStartKind,
    #[arg(long, value_name = "FILE")]
    db: PathBuf,
}

/// The side a cold-start process measures.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ColdStartKind {
    /// `Engine::open` and the first page of conversations.
    Tandem,
    /// rusqlite opening the same file and running the same query.
    Floor,
}

impl ColdStartKind {
    fn name(self) -> &'static str {
        match self {
            ColdStartKind::Tandem => "tandem",
            ColdStartKind::Floor => "floor",
        }
    }
}

/// The body of a cold-start process: open, first page, print figures.
pub fn child(args: ColdStartArgs) -> anyhow::Result<()> {
    let db = args.db.as_path();
    let started = Instant::now();
    let rows = match args.kind {
        ColdStartKind::Tandem => {
            let engine = open_engine(StorePath::File(db.to_owned()), 2)?;
            engine.conversations(0, PAGE)?.len()
        }
        ColdStartKind::Floor => {
            let conn = rusqlite::Connection::open(db)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            let mut stmt = conn.prepare(
                "SELECT c.id, c.pinned, c.remind, c.marks, c.cleared_up_to_ms, \
                 c.read_at_ms, c.read_message, c.last_message, c.last_activity_ms, c.unread, \
                 c.listed, c.quiet_until_ms, c.quiet_start_minute, c.quiet_end_minute, \
                 c.quiet_utc_offset_minutes FROM conversations c WHERE c.listed = 1 \
                 ORDER BY c.pinned DESC, c.last_activity_ms DESC, c.id LIMIT ?1 OFFSET ?2",
            )?;
            let rows = stmt.query_map([PAGE as i64, 0], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, bool>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, i64>(8)?,
                    r.get::<_, i64>(9)?,
                    r.get::<_, bool>(10)?,
                    r.get::<_, Option<i64>>(11)?,
                    r.get::<_, Option<i64>>(12)?,
                    r.get::<_, Option<i64>>(13)?,
                    r.get::<_, Option<i64>>(14)?,
                ))
            })?;
            rows.collect::<Result<Vec<_>, _>>()?.len()
        }
    };
    let elapsed = ms(started.elapsed());
    println!(
        "{}",
        serde_json::json!({ "ms": elapsed, "rss_mib": peak_rss_mib(), "rows": rows })
    );
    Ok(())
}

/// Builds the account into `db`: the message history arrives as deltas
/// from another device in batches of [`BATCH`]; the document history is
/// made by a second device performing real operations and merged the same
/// way.
fn build(dir: &Path, db: &Path, size: Size) -> anyhow::Result<()> {
    progress_line(&format!(
        "building the cold-start account once ({size:?}); cached in {}",
        dir.display()
    ));
    let tmp: PathBuf = db.with_extension("building");
    remove_db(&tmp);
    remove_db(db);
    let mut target = open_engine(StorePath::File(tmp.clone()), 2)?;
    let mut maker = open_engine(StorePath::Memory, 1)?;
    let account = account();
    let mut rng = Rng::new(4);
    let base_ms = 1_600_000_000_000i64;
    // The last messages of the history are also given to the device that
    // makes the document history, so its read markers name real messages.
    let marker_from = size
        .messages
        .saturating_sub(size.conversations * MARKER_TARGETS);
    let mut targets: Vec<Vec<MessageId>> = vec![Vec::new(); size.conversations];

    let progress = bar("messages", size.messages as u64);
    let mut batch = Vec::with_capacity(BATCH);
    let mut maker_batch = Vec::new();
    let mut maker_seq = 0u64;
    for k in 0..size.messages {
        // The first messages give every conversation at least one.
        let c = if k < size.conversations {
            k
        } else {
            rng.below(size.conversations)
        };
        let id = format!("m{k}");
        let sent_at = base_ms + k as i64 * 50;
        let mut delta = Delta {
            format: DELTA_FORMAT,
            account: account.clone(),
            origin: IMPORTER,
            origin_seq: k as u64 + 1,
            made_at_ms: sent_at,
            op: incoming(id.clone(), &conversation(c), sent_at, &mut rng),
            change: None,
            read_markers: Vec::new(),
        };
        batch.push(delta.encode());
        if k >= marker_from {
            targets[c].push(MessageId::new(id).expect("a valid id"));
            maker_seq += 1;
            delta.origin = MARKER_IMPORTER;
            delta.origin_seq = maker_seq;
            maker_batch.push(delta.encode());
        }
        if batch.len() == BATCH || k + 1 == size.messages {
            all_merged(target.apply_remote(&batch)?, "message history")?;
            progress.inc(batch.len() as u64);
            batch.clear();
        }
        if maker_batch.len() == BATCH || (k + 1 == size.messages && !maker_batch.is_empty()) {
            all_merged(maker.apply_remote(&maker_batch)?, "read-marker targets")?;
            maker_batch.clear();
        }
    }
    progress.finish();
    let after_messages = last_cursor(&maker)?;

    let progress = bar("doc ops", size.doc_ops as u64);
    let mut at = base_ms + size.messages as i64 * 50;
    let mut performed = 0usize;
    let mut perform = |op: Op| -> anyhow::Result<()> {
        at += 10;
        maker
            .perform(at, op)
            .context("an operation of the document history")?;
        performed += 1;
        progress.inc(1);
        Ok(())
    };
    for n in 1..=size.contacts {
        perform(Op::Contact(ContactOp::Accept { user: user(n) }))?;
    }
    for g in 0..size.groups {
        perform(Op::Group(GroupOp::Create {
            group: group(g),
            name: format!("group {g}"),
            members: (0..size.members)
                .map(|m| user((g * 7 + m * 13) % 20_000 + 1))
                .collect(),
        }))?;
    }
    let mut next_target = vec![0usize; size.conversations];
    let mut c = 0usize;
    let rest = size.doc_ops.saturating_sub(size.contacts + size.groups);
    for i in 0..rest {
        c = (c + 1 + rng.below(7)) % size.conversations;
        let conversation = conversation(c);
        let op = match rng.below(20) {
            0 => ConversationOp::Pin { conversation },
            1 => ConversationOp::Unpin { conversation },
            2 => ConversationOp::AddMark {
                conversation,
                mark: ["work", "family", "todo"][rng.below(3)].into(),
            },
            3 => ConversationOp::SetDoNotDisturb {
                conversation,
                enabled: i % 2 == 0,
            },
            _ => match targets[c].get(next_target[c]) {
                Some(message) => {
                    next_target[c] += 1;
                    ConversationOp::MarkRead {
                        conversation,
                        message: message.clone(),
                    }
                }
                // Out of new messages here: read markers only move forward,
                // so this conversation gets a different setting instead.
                None => ConversationOp::SetDoNotDisturb {
                    conversation,
                    enabled: i % 3 == 0,
                },
            },
        };
        perform(Op::Conversation(op))?;
    }
    progress.finish();

    let progress = bar("merge docs", performed as u64);
    let mut cursor = after_messages;
    loop {
        let page = maker.export(cursor, BATCH)?;
        if page.deltas.is_empty() {
            break;
        }
        cursor = page.next;
        all_merged(target.apply_remote(&page.deltas)?, "document history")?;
        progress.inc(page.deltas.len() as u64);
    }
    progress.finish();
    let listed = target.conversations(0, PAGE)?.len();
    anyhow::ensure!(
        listed == PAGE.min(size.conversations),
        "the account lists {listed} conversations"
    );
    drop(target);
    drop(maker);
    // The store checkpoints its WAL on close; move the file into place.
    std::fs::rename(&tmp, db)?;
    for suffix in ["-wal", "-shm"] {
        let mut p = tmp.as_os_str().to_owned();
        p.push(suffix);
        let mut q = db.as_os_str().to_owned();
        q.push(suffix);
        if Path::new(&p).exists() {
            std::fs::rename(p, q)?;
        }
    }
    Ok(())
}

/// Fails unless every delta of a batch merged: one left waiting would
/// leave the account short of what the size promises, and an operation
/// made on top of it would fail later, far from the cause.
fn all_merged(applied: Applied, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        applied.waiting == 0,
        "{} deltas of the {what} wait for deltas this account was never given",
        applied.waiting
    );
    Ok(())
}

/// The position after the last delta `engine` holds.
fn last_cursor(engine: &tandem_engine::Engine) -> anyhow::Result<ExportCursor> {
    let mut cursor = ExportCursor::default();
    loop {
        let page = engine.export(cursor, BATCH)?;
        if page.deltas.is_empty() {
            return Ok(cursor);
        }
        cursor = page.next;
    }
}
