//! Reopening, interrupted transactions and document compaction.

mod common;

use common::*;
use tandem_engine::limits::DOC_CHANGES_PER_SNAPSHOT;
use tandem_engine::op::*;
use tandem_engine::*;

/// Installs a trigger that makes every insert into `table` fail, standing in
/// for a crash or a full disk between two steps of one transaction.
fn fail_inserts_into(path: &std::path::Path, table: &str) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "CREATE TRIGGER injected_failure BEFORE INSERT ON {table} \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
    ))
    .unwrap();
    conn
}

fn heal(conn: &rusqlite::Connection) {
    conn.execute_batch("DROP TRIGGER injected_failure").unwrap();
}

fn some_history(device: &mut Device) {
    device.op(incoming("m1", "u:bob", "bob", 100));
    device.op(Op::Message(MessageOp::Send {
        conversation: conv("u:bob"),
        body: "hello".into(),
    }));
    device.op(Op::Conversation(ConversationOp::Pin {
        conversation: conv("u:bob"),
    }));
    device.op(Op::Contact(ContactOp::Accept { user: user("bob") }));
    device.op(Op::Group(GroupOp::Create {
        group: group("g1"),
        name: "Team".into(),
        members: vec![user("bob")],
    }));
}

#[test]
fn reopening_returns_the_same_device_and_state() {
    let (mut device, path) = file_device(1);
    some_history(&mut device);
    let before = (
        device.state(),
        device.engine.doc_heads().unwrap(),
        device.engine.device().clone(),
    );
    device.reopen(&path);
    assert_eq!(
        before,
        (
            device.state(),
            device.engine.doc_heads().unwrap(),
            device.engine.device().clone()
        )
    );
    // Numbering goes on where it stopped.
    let next = device.op(Op::Conversation(ConversationOp::Unpin {
        conversation: conv("u:bob"),
    }));
    assert_eq!(next.recorded.unwrap().origin_seq, 6);
}

#[test]
fn a_store_of_another_account_is_refused() {
    let (device, path) = file_device(1);
    drop(device.engine);
    let config = Config {
        account: AccountId::new("mallory").unwrap(),
        ..file_config(&path)
    };
    match Engine::open(
        config,
        0,
        Box::new(tandem_engine::SeededEntropy::starting_with(&[9; 16], 9)),
    ) {
        Err(OpenError::AccountMismatch { found, .. }) => assert_eq!(found, ACCOUNT),
        other => panic!("expected AccountMismatch, got {other:?}"),
    }
}

#[test]
fn an_interrupted_local_operation_leaves_no_partial_state() {
    let (mut device, path) = file_device(1);
    some_history(&mut device);
    let before = (device.state(), device.engine.doc_heads().unwrap());
    // The outbox insert is the last step: the document change, the message
    // row and the projections were already written inside the transaction.
    let conn = fail_inserts_into(&path, "deltas");
    for op in [
        Op::Message(MessageOp::Send {
            conversation: conv("g:g1"),
            body: "lost?".into(),
        }),
        Op::Group(GroupOp::UpdateInfo {
            group: group("g1"),
            update: GroupInfoUpdate {
                name: Some("Renamed".into()),
                ..Default::default()
            },
        }),
    ] {
        let error = device.try_op(op).unwrap_err();
        assert!(matches!(error, OpError::Store(_)), "{error}");
        assert_eq!(before, (device.state(), device.engine.doc_heads().unwrap()));
    }
    heal(&conn);
    let next = device.op(Op::Group(GroupOp::MuteAll { group: group("g1") }));
    assert_eq!(
        next.recorded.unwrap().origin_seq,
        6,
        "the failed operations used no number"
    );
    let after = (device.state(), device.engine.doc_heads().unwrap());
    device.reopen(&path);
    assert_eq!(after, (device.state(), device.engine.doc_heads().unwrap()));
}

#[test]
fn an_interrupted_merge_leaves_no_partial_state() {
    let mut source = Device::memory(2);
    some_history(&mut source);
    let (mut device, path) = file_device(1);
    let before = (device.state(), device.engine.doc_heads().unwrap());
    // Journaling the events is the last step of a merge.
    let conn = fail_inserts_into(&path, "events");
    let error = device
        .engine
        .apply_remote(&source.all_deltas())
        .unwrap_err();
    assert!(matches!(error, ApplyError::Store(_)), "{error}");
    assert_eq!(before, (device.state(), device.engine.doc_heads().unwrap()));
    device.reopen(&path);
    assert_eq!(before, (device.state(), device.engine.doc_heads().unwrap()));
    heal(&conn);
    let applied = send(&source, &mut device);
    assert_eq!(applied.new, 5);
    assert_converged(&[source, device]);
}

#[test]
fn a_refused_operation_writes_nothing() {
    let mut device = Device::memory(1);
    let before = device.state();
    for (op, expected) in [
        (
            Op::Contact(ContactOp::SetRemark {
                user: user("nobody"),
                remark: "x".into(),
            }),
            "nobody is not a contact",
        ),
        (
            Op::Group(GroupOp::Kick {
                group: group("nope"),
                users: vec![user("bob")],
            }),
            "group nope is not known",
        ),
        (
            Op::Message(MessageOp::Recall {
                message: msg("ghost"),
            }),
            "unknown message ghost",
        ),
    ] {
        let error = device.try_op(op).unwrap_err().to_string();
        assert!(error.contains(expected), "{error}");
    }
    assert_eq!(before, device.state());
    assert!(device.all_deltas().is_empty(), "nothing in the outbox");
}

#[test]
fn the_document_is_compacted_into_a_snapshot_and_reloads() {
    let (mut device, path) = file_device(1);
    device.op(incoming("m1", "u:bob", "bob", 100));
    // Pin and unpin alternate: every operation is one document change.
    for i in 0..DOC_CHANGES_PER_SNAPSHOT + 5 {
        let conversation = conv("u:bob");
        device.op(Op::Conversation(if i % 2 == 0 {
            ConversationOp::Pin { conversation }
        } else {
            ConversationOp::Unpin { conversation }
        }));
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let chunks: Vec<(String, i64)> = conn
        .prepare("SELECT kind, count(*) FROM doc_chunks GROUP BY kind ORDER BY kind")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        chunks,
        [("change".to_owned(), 5), ("snapshot".to_owned(), 1)]
    );
    let before = (device.state(), device.engine.doc_heads().unwrap());
    device.reopen(&path);
    assert_eq!(before, (device.state(), device.engine.doc_heads().unwrap()));
    // A fresh device merging the whole history agrees.
    let mut other = Device::memory(2);
    send(&device, &mut other);
    assert_converged(&[device, other]);
}

#[test]
fn relaxed_merges_merge_and_reopen_like_durable_ones_and_are_not_stored() {
    let mut a = Device::memory(1);
    some_history(&mut a);
    let log = a.all_deltas();
    let page: Vec<RelayDelta> = log
        .iter()
        .enumerate()
        .map(|(i, d)| RelayDelta {
            seq: i as u64 + 1,
            delta: d.clone(),
        })
        .collect();
    let (mut b, path) = file_device(2);
    assert_eq!(b.engine.durability(), Durability::Full, "the default");
    b.engine.set_durability(Durability::RelaxedMerges);
    assert_eq!(b.engine.durability(), Durability::RelaxedMerges);
    b.engine.apply_relay(&page[..2]).unwrap();
    // A local operation between relaxed merges, then the rest.
    b.op(Op::Conversation(ConversationOp::Pin {
        conversation: conv("u:carol"),
    }));
    b.engine.apply_relay(&page[2..]).unwrap();
    let before = (b.state(), b.engine.relay_cursor().unwrap());
    assert_eq!(before.1, log.len() as u64);
    // An orderly close loses nothing in either setting; the setting itself
    // is per open.
    b.reopen(&path);
    assert_eq!((b.state(), b.engine.relay_cursor().unwrap()), before);
    assert_eq!(b.engine.durability(), Durability::Full);
}
