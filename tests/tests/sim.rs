//! The deterministic simulation: 2 to 6 devices of one account and a relay
//! in one thread, one seeded RNG, a virtual clock, and every fault a phone
//! network has. See `sim/world.rs` for what runs and `README.md`
//! ("Simulation") for how to use it.
//!
//! - `SIM_SEED=<n>` replays seed n exactly.
//! - `SIM_SEEDS=<k>` runs k seeds (default [`SEEDS_DEFAULT`]) from
//!   `SIM_SEED_START=<s>` (default 1): seeds s..s+k, so that a sweep splits
//!   into ranges run side by side.
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
    let count: u64 = std::env::var("SIM_SEEDS")
        .map(|k| k.trim().parse().expect("SIM_SEEDS must be a number"))
        .unwrap_or(SEEDS_DEFAULT);
    let start: u64 = std::env::var("SIM_SEED_START")
        .map(|s| s.trim().parse().expect("SIM_SEED_START must be a number"))
        .unwrap_or(1);
    (start..start.saturating_add(count)).collect()
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
    let mut ran = 0;
    for seed in seeds() {
        let stats = run(seed);
        eprintln!(
            "seed {seed}: {} steps + {} to go quiet, {} ops ({} unchanged, {} refused), {} crashes, \
             {} relay restarts, {} partitions, {} cuts, {} mischief, {} direct exchanges, \
             {} connections, {} frames, {} events read, relay log {}, {} kicks, {} displaced, \
             {} relogins, {} logins refused, {:?}, {} linked late, {} waits for a key, \
             {} of the relay log sealed, {} tampered ({} refusals), {} s virtual",
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
            stats.kicks,
            stats.displaced,
            stats.relogins,
            stats.refused_logins,
            stats.sealing,
            stats.links,
            stats.key_waits,
            stats.sealed_entries,
            stats.tampered,
            stats.refusals,
            stats.virtual_ms / 1000,
        );
        ran += 1;
        total.steps += stats.steps;
        total.quiet_steps += stats.quiet_steps;
        total.ops += stats.ops;
        total.refused += stats.refused;
        total.crashes += stats.crashes;
        total.relay_restarts += stats.relay_restarts;
        total.partitions += stats.partitions;
        total.cuts += stats.cuts;
        total.mischief += stats.mischief;
        total.direct_exchanges += stats.direct_exchanges;
        total.connections += stats.connections;
        total.frames += stats.frames;
        total.events_read += stats.events_read;
        total.kicks += stats.kicks;
        total.displaced += stats.displaced;
        total.relogins += stats.relogins;
        total.refused_logins += stats.refused_logins;
        total.links += stats.links;
        total.key_waits += stats.key_waits;
        total.sealed_entries += stats.sealed_entries;
        total.tampered += stats.tampered;
        total.refusals += stats.refusals;
        total.relay_log += stats.relay_log;
        total.virtual_ms += stats.virtual_ms;
    }
    eprintln!(
        "all {ran} seeds: {} steps + {} to go quiet, {} ops ({} refused), {} crashes, \
         {} relay restarts, {} partitions, {} cuts, {} mischief, {} direct exchanges, \
         {} connections, {} frames, {} events read, {} kicks, {} displaced, {} relogins, \
         {} logins refused, {} linked late, {} waits for a key, {} of {} relay log entries \
         sealed, {} entries tampered with ({} refusals), {} s virtual",
        total.steps,
        total.quiet_steps,
        total.ops,
        total.refused,
        total.crashes,
        total.relay_restarts,
        total.partitions,
        total.cuts,
        total.mischief,
        total.direct_exchanges,
        total.connections,
        total.frames,
        total.events_read,
        total.kicks,
        total.displaced,
        total.relogins,
        total.refused_logins,
        total.links,
        total.key_waits,
        total.sealed_entries,
        total.relay_log,
        total.tampered,
        total.refusals,
        total.virtual_ms / 1000,
    );
}

/// Seeds that once failed, each for what it found. They replay that case
/// only while the harness draws the same way; the scripted test below
/// keeps the case itself.
const SEEDS_FOUND: &[u64] = &[
    // The quiet check counted a device as in step whose connection the
    // relay had already let go.
    4411,
    // A Link whose change waited for a change that only the linked
    // device's envelope carried, while that envelope waited for the Link
    // (engine/tests/sealed.rs keeps the case).
    261,
    // One origin's envelopes in the relay log out of chain order (a
    // duplicated PushAck over a hostile link), which a chain-gap refusal,
    // since dropped, took for withholding.
    46,
    // A Link a device held from a direct exchange, in the clear and
    // waiting, named its device only once marked as opened from an
    // envelope (engine/tests/sealed.rs keeps the case).
    4317,
];

#[test]
fn seeds_that_once_failed_pass() {
    for &seed in SEEDS_FOUND {
        run(seed);
    }
}

#[test]
fn a_device_whose_link_the_relay_let_go_is_not_quiet() {
    trace::clear();
    World::relay_lets_a_cut_link_go_first();
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
