//! `tandem-bench`: Tandem against the physical floor and against what a
//! user would use instead, each scenario with its baselines in the same
//! run, so the ratios hold on a noisy machine.
//!
//! Every scenario returns [`Row`]s: one per (figure, baseline) pair. The
//! table (or `--json`) is printed at the end. No scenario asserts on time:
//! a missed target is reported, never a failure. A scenario that fails
//! (an error or a panic) gets a row saying why, the others still run and
//! report, and the exit status is 1.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

mod b1;
mod b3;
mod b4;
mod b5;
mod b6;
mod b9;
mod progress;
mod report;
mod stats;
mod workload;

use progress::progress_line;
use report::{Outcome, Report, Row};

/// The ids `--only` takes.
const ALL: &[&str] = &["B1", "B2", "B3", "B4", "B5", "B6", "B9"];

/// One scenario: a run of one module, which may report several ids.
struct Scenario {
    /// The `--only` ids its rows belong to (B1 and B2 come from one run).
    ids: &'static [&'static str],
    /// What it measures, for the progress line and a failed row.
    title: &'static str,
    run: fn(&Path, Scale) -> anyhow::Result<Outcome>,
}

/// Scenarios in the order they run.
const SCENARIOS: &[Scenario] = &[
    Scenario {
        ids: &["B1", "B2"],
        title: "catch-up after offline, and its bytes on the wire",
        run: |dir, scale| b1::run(dir, scale).map(Outcome::Rows),
    },
    Scenario {
        ids: &["B3"],
        title: "live fan-out",
        run: |dir, scale| b3::run(dir, scale).map(Outcome::Rows),
    },
    Scenario {
        ids: &["B4"],
        title: "cold start, big account",
        run: |dir, scale| b4::run(dir, scale).map(Outcome::Rows),
    },
    Scenario {
        ids: &["B5"],
        title: "local operation latency",
        run: |dir, scale| b5::run(dir, scale).map(Outcome::Rows),
    },
    Scenario {
        ids: &["B6"],
        title: "relay capacity",
        run: b6::run,
    },
    Scenario {
        ids: &["B9"],
        title: "relay capacity on two nodes sharing PostgreSQL",
        run: b9::run,
    },
];

/// Benchmark Tandem against the floor and its peers, side by side.
///
/// Exit status: 0 when every scenario ran (a missed target is not a
/// failure), 1 when one failed (its row says why) or the run could not
/// start.
#[derive(Debug, Parser)]
#[command(name = "tandem-bench", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
    #[command(subcommand)]
    child: Option<Child>,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// A smaller version of every scenario that runs in under a minute.
    #[arg(long)]
    quick: bool,
    /// Print the table as JSON on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// The bench folder: scratch stores and the cached cold-start account.
    #[arg(long, value_name = "DIR", default_value = "target/tandem-bench")]
    dir: PathBuf,
    /// Run only these scenarios, e.g. `--only B1,B5`.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    only: Vec<String>,
    /// Multiplies every workload size (tests use a tiny scale; the README
    /// numbers come from the default, 1).
    #[arg(long, default_value_t = 1.0, hide = true)]
    scale: f64,
}

/// The processes a scenario starts of this same binary, so that what they
/// measure is alone in its process.
#[derive(Debug, Subcommand)]
enum Child {
    /// One cold start of B4, its figures printed as JSON.
    #[command(hide = true)]
    ColdStart(b4::ColdStartArgs),
    /// The relay B6 measures, served as `tandem relay` serves it, until
    /// its standard input closes.
    #[command(hide = true)]
    Relay(b6::RelayArgs),
}

/// How big the workloads are.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub quick: bool,
    pub factor: f64,
}

impl Scale {
    /// `full` in a full run, `quick` with `--quick`, times `--scale`, at
    /// least `min`.
    pub fn n(&self, full: usize, quick: usize, min: usize) -> usize {
        let base = if self.quick { quick } else { full };
        ((base as f64 * self.factor).round() as usize).max(min)
    }
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.child {
        Some(Child::ColdStart(args)) => b4::child(args),
        Some(Child::Relay(args)) => b6::relay_child(args),
        None => run(cli.run).and_then(|failed| match failed.as_slice() {
            [] => Ok(()),
            ids => Err(anyhow::anyhow!(
                "{} of the scenarios failed: {}",
                ids.len(),
                ids.join(", ")
            )),
        }),
    };
    if let Err(error) = result {
        eprintln!("tandem-bench: {error:#}");
        std::process::exit(1);
    }
}

/// Runs the scenarios asked for and prints the table; returns the ids of
/// those that failed.
fn run(args: RunArgs) -> anyhow::Result<Vec<String>> {
    let wanted: Vec<String> = if args.only.is_empty() {
        ALL.iter().map(|s| s.to_string()).collect()
    } else {
        args.only.iter().map(|s| s.trim().to_uppercase()).collect()
    };
    for id in &wanted {
        anyhow::ensure!(
            ALL.contains(&id.as_str()),
            "unknown scenario {id}; known: {}",
            ALL.join(",")
        );
    }
    anyhow::ensure!(
        args.scale > 0.0 && args.scale <= 1.0,
        "--scale must be in (0, 1]"
    );
    std::fs::create_dir_all(&args.dir)?;
    let scale = Scale {
        quick: args.quick,
        factor: args.scale,
    };
    let started = std::time::Instant::now();
    let mut rows = Vec::new();
    let mut not_run = Vec::new();
    let mut failed = Vec::new();
    let want = |id: &str| wanted.iter().any(|w| w == id);
    for scenario in SCENARIOS {
        let ids: Vec<&str> = scenario.ids.iter().copied().filter(|id| want(id)).collect();
        if ids.is_empty() {
            continue;
        }
        progress_line(&format!(
            "{}: {} ({})",
            ids.join("/"),
            scenario.title,
            size_label(scale)
        ));
        match run_one(scenario, &args.dir, scale) {
            Ok(Outcome::Rows(all)) => rows.extend(all.into_iter().filter(|r| want(&r.id[..2]))),
            Ok(Outcome::NotRun(why)) => not_run.push(format!("{}: {why}", ids.join("/"))),
            Err(error) => {
                progress_line(&format!("{} FAILED: {error}", ids.join("/")));
                for id in ids {
                    rows.push(Row::failed(id, scenario.title, error.clone()));
                    failed.push(id.to_owned());
                }
            }
        }
    }
    let report = Report {
        machine: report::machine(),
        quick: args.quick,
        scale: args.scale,
        elapsed_s: started.elapsed().as_secs_f64(),
        rows: &rows,
        not_run,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report::print_table(&report);
    }
    Ok(failed)
}

/// Runs one scenario; an error or a panic comes back as its message, so
/// the scenarios after it still run.
fn run_one(scenario: &Scenario, dir: &Path, scale: Scale) -> Result<Outcome, String> {
    match catch_unwind(AssertUnwindSafe(|| (scenario.run)(dir, scale))) {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(error)) => Err(format!("{error:#}")),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            Err(format!("panicked: {message}"))
        }
    }
}

fn size_label(scale: Scale) -> String {
    match (scale.quick, scale.factor) {
        (false, 1.0) => "full".into(),
        (true, 1.0) => "quick".into(),
        (q, f) => format!("{} × {f}", if q { "quick" } else { "full" }),
    }
}
