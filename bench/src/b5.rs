//! B5: local operation latency, durable.
//!
//! A device with a SQLite file (WAL, `synchronous = FULL`, as shipped)
//! performs send, mark read, pin/unpin and contact add in turn; each call
//! is timed from `Engine::perform` to its return, when the operation is
//! committed. The floor, timed in the same loop so both see the same noise:
//! one autocommit insert of a message-sized row into a WAL SQLite file with
//! the same durability.

use std::path::Path;
use std::time::Instant;

use tandem_engine::op::*;
use tandem_engine::StorePath;

use crate::report::Row;
use crate::stats::Samples;
use crate::workload::*;
use crate::Scale;

const SCENARIO: &str = "local op latency, durable";

pub fn run(dir: &Path, scale: Scale) -> anyhow::Result<Vec<Row>> {
    let rounds = scale.n(400, 100, 10);
    let conversations = 50;
    let path = dir.join("b5-device.db");
    remove_db(&path);
    let mut engine = open_engine(StorePath::File(path.clone()), 5)?;
    let mut rng = Rng::new(5);
    let mut at = now_ms();
    // Every conversation starts with one incoming message.
    for c in 0..conversations {
        at += 1;
        engine.perform(
            at,
            incoming(format!("seed{c}"), &conversation(c), at, &mut rng),
        )?;
    }

    let floor_path = dir.join("b5-floor.db");
    remove_db(&floor_path);
    let floor = rusqlite::Connection::open(&floor_path)?;
    floor.pragma_update(None, "journal_mode", "WAL")?;
    floor.pragma_update(None, "synchronous", "FULL")?;
    floor.execute_batch(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation TEXT NOT NULL, body TEXT NOT NULL) STRICT",
    )?;
    let mut insert = floor.prepare("INSERT INTO messages (conversation, body) VALUES (?1, ?2)")?;

    let mut send = Samples::default();
    let mut mark = Samples::default();
    let mut pin = Samples::default();
    let mut contact = Samples::default();
    let mut floor_samples = Samples::default();
    let timed = |samples: &mut Samples, at: i64, op: Op, engine: &mut tandem_engine::Engine| {
        let started = Instant::now();
        let performed = engine.perform(at, op);
        samples.push(started.elapsed());
        performed
    };
    for i in 0..rounds {
        let c = conversation(i % conversations);
        at += 1;
        let sent = timed(
            &mut send,
            at,
            Op::Message(MessageOp::Send {
                conversation: c.clone(),
                body: body(&mut rng),
            }),
            &mut engine,
        )?;
        at += 1;
        timed(
            &mut mark,
            at,
            Op::Conversation(ConversationOp::MarkRead {
                conversation: c.clone(),
                message: sent.message_id.expect("a send names its message"),
            }),
            &mut engine,
        )?;
        at += 1;
        let op = if (i / conversations) % 2 == 0 {
            ConversationOp::Pin { conversation: c }
        } else {
            ConversationOp::Unpin { conversation: c }
        };
        timed(&mut pin, at, Op::Conversation(op), &mut engine)?;
        at += 1;
        timed(
            &mut contact,
            at,
            Op::Contact(ContactOp::Add {
                user: user(i),
                greeting: "hi, it's alice".into(),
            }),
            &mut engine,
        )?;
        for _ in 0..4 {
            let text = body(&mut rng);
            let started = Instant::now();
            insert.execute(rusqlite::params![
                format!("u:user{}", i % conversations),
                text
            ])?;
            floor_samples.push(started.elapsed());
        }
    }
    drop(insert);
    drop(floor);
    drop(engine);
    remove_db(&path);
    remove_db(&floor_path);

    let floor_p50 = floor_samples.percentile_ms(50.0);
    let floor_p99 = floor_samples.percentile_ms(99.0);
    let mut rows = Vec::new();
    for (name, samples) in [
        ("send", &mut send),
        ("mark read", &mut mark),
        ("pin/unpin", &mut pin),
        ("contact add", &mut contact),
    ] {
        let n = samples.len();
        rows.push(Row::compare(
            "B5",
            &format!("{SCENARIO}: {name}"),
            "p50 ms",
            samples.percentile_ms(50.0),
            "autocommit insert, WAL",
            Some(floor_p50),
            Some(3.0),
            format!(
                "{n} ops; p99 {:.3} ms vs floor p99 {floor_p99:.3} ms",
                samples.percentile_ms(99.0)
            ),
        ));
    }
    Ok(rows)
}
