//! The merge rules as algebra: applying batches of deltas commutes, is
//! idempotent and associative, whatever operations made them, including
//! batches that arrive before the changes they depend on.

mod prop_common;

use proptest::collection::vec;
use proptest::prelude::*;
use tandem_engine::delta::EncodedDelta;
use tandem_engine::{Engine, OpError};
use tandem_tests::choice::{Choices, List, Rng};
use tandem_tests::fuzz_targets::{assert_converged, exchange_all, export_all, memory_engine};
use tandem_tests::gen::Gen;

fn config() -> ProptestConfig {
    prop_common::config(
        48,
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/prop_merge.txt"
        ),
    )
}

/// One operation per inner vector: the numbers are the generator's choices.
fn ops() -> impl Strategy<Value = Vec<Vec<u32>>> {
    vec(vec(any::<u32>(), 1..12), 0..10)
}

/// Performs one operation per choice list; refusals are fine.
fn perform(engine: &mut Engine, gen: &mut Gen, clock: &mut i64, ops: &[Vec<u32>]) {
    for choices in ops {
        let op = gen.op(&mut List::new(choices));
        *clock += 1_000;
        match engine.perform(*clock, op.clone()) {
            Ok(performed) => gen.performed(&op, performed.message_id.as_ref()),
            Err(
                OpError::Refused(_)
                | OpError::UnknownMessage(_)
                | OpError::WrongConversation { .. },
            ) => {}
            Err(e) => panic!("{op:?} failed: {e}"),
        }
    }
}

/// A shared start made on device 1, then concurrent operations on devices
/// 1, 2 and 3. Returns the devices and three batches: the start with device
/// 1's operations, device 2's operations, device 3's operations.
fn scenario(
    base: &[Vec<u32>],
    concurrent: [&[Vec<u32>]; 3],
) -> (Vec<Engine>, [Vec<EncodedDelta>; 3]) {
    let mut gen = Gen::new(1_000);
    let mut devices: Vec<Engine> = (1..=3).map(memory_engine).collect();
    let mut clocks = [1_000i64, 1_500, 1_700];
    perform(&mut devices[0], &mut gen, &mut clocks[0], base);
    let start = export_all(&devices[0]);
    for device in &mut devices[1..] {
        device.apply_remote(&start).expect("the start merges");
    }
    for (i, ops) in concurrent.iter().enumerate() {
        perform(&mut devices[i], &mut gen, &mut clocks[i], ops);
    }
    let own = |i: usize, devices: &[Engine]| -> Vec<EncodedDelta> {
        let all = export_all(&devices[i]);
        if i == 0 {
            all
        } else {
            all.into_iter().filter(|d| !start.contains(d)).collect()
        }
    };
    let batches = [own(0, &devices), own(1, &devices), own(2, &devices)];
    (devices, batches)
}

fn apply_all(batches: &[Vec<EncodedDelta>]) -> Engine {
    let mut engine = memory_engine(9);
    for batch in batches {
        engine.apply_remote(batch).expect("valid deltas merge");
    }
    engine
}

fn shuffled(batch: &[EncodedDelta], seed: u64) -> Vec<EncodedDelta> {
    let mut out = batch.to_vec();
    Rng::new(seed).shuffle(&mut out);
    out
}

proptest! {
    #![proptest_config(config())]

    /// Any order of the three batches, each itself shuffled, gives the
    /// same document and state, which is also what the devices reach by
    /// exchanging everything.
    #[test]
    fn applying_batches_commutes(
        base in ops(), a in ops(), b in ops(), c in ops(),
        order in Just([0usize, 1, 2]).prop_shuffle(),
        seed in any::<u64>(),
    ) {
        let (mut devices, batches) = scenario(&base, [&a, &b, &c]);
        let forward = apply_all(&batches);
        let permuted: Vec<Vec<EncodedDelta>> = order
            .iter()
            .enumerate()
            .map(|(i, &k)| shuffled(&batches[k], seed ^ i as u64))
            .collect();
        let other = apply_all(&permuted);
        exchange_all(&mut devices);
        devices.push(forward);
        devices.push(other);
        assert_converged(&devices);
    }

    /// Applying a batch twice, or a batch with every delta twice, is the
    /// same as applying it once.
    #[test]
    fn applying_a_batch_is_idempotent(base in ops(), a in ops(), b in ops()) {
        let (_, batches) = scenario(&base, [&a, &b, &[]]);
        let all: Vec<EncodedDelta> = batches.concat();
        let mut once = memory_engine(9);
        once.apply_remote(&all).expect("merges");
        let heads = once.doc_heads().unwrap();
        let state = once.state().expect("state");
        let again = once.apply_remote(&all).expect("merges again");
        prop_assert_eq!(again.new, 0);
        prop_assert_eq!(again.events, 0);
        prop_assert_eq!(once.doc_heads().unwrap(), heads.clone());
        prop_assert_eq!(once.state().expect("state"), state.clone());
        let doubled: Vec<EncodedDelta> = all.iter().chain(&all).cloned().collect();
        let twice = apply_all(&[doubled]);
        prop_assert_eq!(twice.doc_heads().unwrap(), heads);
        prop_assert_eq!(twice.state().expect("state"), state);
    }

    /// (A + B) then C is A then (B + C).
    #[test]
    fn applying_batches_is_associative(base in ops(), a in ops(), b in ops(), c in ops()) {
        let (_, [x, y, z]) = scenario(&base, [&a, &b, &c]);
        let left = apply_all(&[[x.clone(), y.clone()].concat(), z.clone()]);
        let right = apply_all(&[x, [y, z].concat()]);
        assert_converged(&[left, right]);
    }
}
