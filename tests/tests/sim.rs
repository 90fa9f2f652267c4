//! The deterministic simulation: 2 to 6 devices of one account and a relay
//! in one thread, one seeded RNG, a virtual clock, and every fault a phone
//! network has. See `sim/world.rs` for what runs and `README.md`
//! ("Simulation") for how to use it.
//!
//! - `SIM_SEED=<n>` replays seed n exactly.
//! - `SIM_SEEDS=<k>` runs seeds 1..=k (default [`SEEDS_DEFAULT`]).
//!
//! A failing seed prints itself, the replay command and the last steps.

#[path = "sim/check.rs"]
mod check;
#[path = "sim/trace.rs"]
mod trace;
#[path = "sim/world.rs"]
mod world;

use std::panic::{catch_unwind, AssertUnwindSafe};

use world::{Stats, World};

/// Seeds run by a plain `cargo test`: bounded so the whole file takes well
/// under a minute in a debug build on two cores.
const SEEDS_DEFAULT: u64 = 60;

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        return vec![seed.trim().parse().expect("SIM_SEED must be a number")];
    }
    let count = std::env::var("SIM_SEEDS")
        .map(|k| k.trim().parse().expect("SIM_SEEDS must be a number"))
        .unwrap_or(SEEDS_DEFAULT);
    (1..=count).collect()
}

/// Runs one seed; on failure prints how to replay it and re-raises.
fn run(seed: u64) -> Stats {
    trace::clear();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut world = World::new(seed);
        world.run();
        world.stats.clone()
    }));
    match result {
        Ok(stats) => stats,
        Err(panic) => {
            eprintln!(
                "\nsimulation seed {seed} FAILED; replay with:\n  \
                 SIM_SEED={seed} cargo test -p tandem-tests --test sim\n\
                 last steps:\n  {}\n",
                trace::dump()
            );
            std::panic::resume_unwind(panic)
        }
    }
}

#[test]
fn devices_converge_under_faults() {
    let mut total = Stats::default();
    for seed in seeds() {
        let stats = run(seed);
        eprintln!(
            "seed {seed}: {} steps + {} to go quiet, {} ops ({} unchanged, {} refused), {} crashes, \
             {} relay restarts, {} partitions, {} cuts, {} mischief, {} direct exchanges, \
             {} connections, {} frames, {} events read, relay log {}, {} s virtual",
            stats.steps,
            stats.quiet_steps,
            stats.ops,
            stats.unchanged,
            stats.refused,
            stats.crashes,
            stats.relay_restarts,
            stats.partitions,
            stats.cuts,
            stats.mischief,
            stats.direct_exchanges,
            stats.connections,
            stats.frames,
            stats.events_read,
            stats.relay_log,
            stats.virtual_ms / 1000,
        );
        total.steps += stats.steps + stats.quiet_steps;
        total.ops += stats.ops;
        total.crashes += stats.crashes;
        total.relay_restarts += stats.relay_restarts;
    }
    eprintln!(
        "all seeds: {} steps, {} ops, {} crashes, {} relay restarts",
        total.steps, total.ops, total.crashes, total.relay_restarts
    );
}

/// One seed, twice: the same run step for step, down to the final state.
#[test]
fn a_seed_replays_exactly() {
    let seed = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(7);
    let first = run(seed);
    let second = run(seed);
    assert_eq!(first, second);
}
