//! `tandem-bench`: Tandem against the physical floor and against what a
//! user would use instead, each scenario with its baselines in the same
//! run, so the ratios hold on a noisy machine.
//!
//! Every scenario returns [`report::Row`]s: one per (figure, baseline) pair. The
//! table (or `--json`) is printed at the end. No scenario asserts on time:
//! a missed target is reported, never a failure.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod b1;
mod b3;
mod b4;
mod b5;
mod b6;
mod progress;
mod report;
mod resp;
mod stats;
mod workload;

use progress::progress_line;
use report::Report;

/// Scenarios in the order they run.
const ALL: &[&str] = &["B1", "B2", "B3", "B4", "B5", "B6"];

/// Benchmark Tandem against the floor and its peers, side by side.
#[derive(Debug, Parser)]
#[command(name = "tandem-bench", version, about)]
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
        None => run(cli.run),
    };
    if let Err(error) = result {
        eprintln!("tandem-bench: {error:#}");
        std::process::exit(1);
    }
}

fn run(args: RunArgs) -> anyhow::Result<()> {
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
    let want = |id: &str| wanted.iter().any(|w| w == id);
    if want("B1") || want("B2") {
        progress_line(&format!("B1/B2: catch-up ({})", size_label(scale)));
        let all = b1::run(&args.dir, scale)?;
        rows.extend(all.into_iter().filter(|r| want(&r.id[..2])));
    }
    if want("B3") {
        progress_line("B3: live fan-out");
        rows.extend(b3::run(&args.dir, scale)?);
    }
    if want("B4") {
        progress_line("B4: cold start");
        rows.extend(b4::run(&args.dir, scale)?);
    }
    if want("B5") {
        progress_line("B5: local operation latency");
        rows.extend(b5::run(&args.dir, scale)?);
    }
    if want("B6") {
        progress_line("B6: relay capacity");
        match b6::run(&args.dir, scale)? {
            b6::Outcome::Rows(r) => rows.extend(r),
            b6::Outcome::NotRun(why) => not_run.push(format!("B6: {why}")),
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
    Ok(())
}

fn size_label(scale: Scale) -> String {
    match (scale.quick, scale.factor) {
        (false, 1.0) => "full".into(),
        (true, 1.0) => "quick".into(),
        (q, f) => format!("{} × {f}", if q { "quick" } else { "full" }),
    }
}
