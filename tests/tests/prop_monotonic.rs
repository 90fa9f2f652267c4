//! Read markers, clear points, message flags and receipts never move back
//! on any device, whatever is performed and merged in whatever order.

mod prop_common;

use proptest::collection::vec;
use proptest::prelude::*;
use tandem_engine::delta::EncodedDelta;
use tandem_engine::model::PeerReceipt;
use tandem_engine::op::{ConversationOp, MessageOp, Op};
use tandem_engine::{Engine, OpError, Receipt};
use tandem_tests::check::Watermarks;
use tandem_tests::choice::{Choices, List};
use tandem_tests::every_op;
use tandem_tests::fuzz_targets::{export_all, memory_engine};
use tandem_tests::gen::{op_of_kind, Gen};

fn config() -> ProptestConfig {
    prop_common::config(
        64,
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/prop_monotonic.txt"
        ),
    )
}

/// The operation kinds of the table that touch read state and the message
/// log.
const KINDS: [&str; 9] = [
    "MessageOp::Ingest",
    "MessageOp::Send",
    "ConversationOp::MarkRead",
    "ConversationOp::ClearUnread",
    "MessageOp::Receipt",
    "MessageOp::Recall",
    "MessageOp::DeleteForMe",
    "ConversationOp::ClearAllUnread",
    "ConversationOp::Delete",
];

#[derive(Debug, Clone)]
enum Step {
    /// Device `device` performs an operation of kind `KINDS[kind]`.
    Op {
        device: usize,
        kind: usize,
        choices: Vec<u32>,
    },
    /// Device `from` hands `to` some of its deltas, in some order.
    Exchange {
        from: usize,
        to: usize,
        pick: Vec<u32>,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..2usize, 0..KINDS.len(), vec(any::<u32>(), 1..8))
            .prop_map(|(device, kind, choices)| Step::Op { device, kind, choices }),
        1 => (0..2usize, vec(any::<u32>(), 0..24))
            .prop_map(|(from, pick)| Step::Exchange { from, to: 1 - from, pick }),
    ]
}

/// Checks the device against its watermarks, and that what an operation
/// asked for holds right after it.
fn observe(engine: &Engine, marks: &mut Watermarks) -> Result<(), TestCaseError> {
    let state = engine.state().expect("state");
    marks.observe(&state).map_err(TestCaseError::fail)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn nothing_a_user_saw_moves_back(steps in vec(step(), 1..40)) {
        let mut gen = Gen::new(1_000);
        let mut devices = [memory_engine(1), memory_engine(2)];
        let mut marks = [Watermarks::default(), Watermarks::default()];
        let mut clock = 1_000i64;
        for step in steps {
            match step {
                Step::Op { device, kind, choices } => {
                    let mut ch = List::new(&choices);
                    let op = op_of_kind(&mut ch, every_op::kind(KINDS[kind]), &gen.known, gen.time_base_ms);
                    clock += 700;
                    let engine = &mut devices[device];
                    match engine.perform(clock, op.clone()) {
                        Ok(performed) => {
                            gen.performed(&op, performed.message_id.as_ref());
                            check_effect(engine, &op)?;
                        }
                        Err(OpError::Refused(_) | OpError::UnknownMessage(_)
                            | OpError::WrongConversation { .. }) => {}
                        Err(e) => panic!("{op:?} failed: {e}"),
                    }
                    observe(&devices[device], &mut marks[device])?;
                }
                Step::Exchange { from, to, pick } => {
                    let all = export_all(&devices[from]);
                    let mut ch = List::new(&pick);
                    let mut batch: Vec<EncodedDelta> =
                        all.into_iter().filter(|_| ch.below(3) != 0).collect();
                    ch.shuffle(&mut batch);
                    devices[to].apply_remote(&batch).expect("merges");
                    observe(&devices[to], &mut marks[to])?;
                }
            }
        }
    }
}

/// What a just-performed operation must show at once on its own device.
fn check_effect(engine: &Engine, op: &Op) -> Result<(), TestCaseError> {
    match op {
        Op::Conversation(ConversationOp::MarkRead {
            conversation,
            message,
        }) => {
            let row = engine
                .conversation(conversation)
                .expect("query")
                .expect("a row");
            let m = engine.message(message).expect("query");
            if let Some(m) = m {
                prop_assert!(
                    (row.settings.read_at_ms, row.settings.read_message.as_str())
                        >= (m.sent_at_ms, m.id.as_str()),
                    "the marker is below the message just marked read"
                );
            }
        }
        Op::Message(MessageOp::Receipt { message, receipt }) => {
            if let Some(m) = engine.message(message).expect("query") {
                let want = match receipt {
                    PeerReceipt::Delivered => Receipt::Delivered,
                    PeerReceipt::Read => Receipt::Read,
                };
                prop_assert!(m.receipt >= want, "the receipt is below the one just set");
            }
        }
        _ => {}
    }
    Ok(())
}
