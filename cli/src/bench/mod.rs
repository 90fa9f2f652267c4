//! `tandem bench`: Tandem against the physical floor and against what a user
//! would use instead, each scenario with its baselines in the same run, so
//! the ratios hold on a noisy machine.
//!
//! Every scenario returns [`Row`]s: one per (figure, baseline) pair. The
//! table (or `--json`) is printed at the end. No scenario asserts on time:
//! a missed target is reported, never a failure.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

mod b1;
mod b3;
mod b4;
mod b5;
mod b6;
mod resp;
mod stats;
mod workload;

/// Scenarios in the order they run.
const ALL: &[&str] = &["B1", "B2", "B3", "B4", "B5", "B6"];

#[derive(Debug, Args)]
pub struct BenchArgs {
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
    /// Internal: run one cold start in this process and print its figures
    /// (used by B4 so that every open is a fresh process).
    #[arg(long, hide = true, value_name = "KIND")]
    child: Option<String>,
    /// Internal: the store the `--child` run opens.
    #[arg(long, hide = true, value_name = "FILE")]
    child_db: Option<PathBuf>,
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

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: String,
    pub scenario: String,
    /// What is measured, with its unit.
    pub metric: String,
    pub tandem: f64,
    pub baseline: String,
    /// The baseline's figure, `None` when it could not be measured here.
    pub baseline_value: Option<f64>,
    /// Tandem / baseline.
    pub ratio: Option<f64>,
    pub target: String,
    /// Whether the target holds; `None` when there is no ratio target or no
    /// baseline figure.
    pub met: Option<bool>,
    pub note: String,
}

impl Row {
    /// A row comparing Tandem to a baseline, where a lower figure is better
    /// and the target is `ratio <= max_ratio` (when there is one).
    #[allow(clippy::too_many_arguments)]
    pub fn compare(
        id: &str,
        scenario: &str,
        metric: &str,
        tandem: f64,
        baseline: &str,
        baseline_value: Option<f64>,
        max_ratio: Option<f64>,
        note: impl Into<String>,
    ) -> Row {
        let ratio = baseline_value.filter(|b| *b > 0.0).map(|b| tandem / b);
        Row {
            id: id.into(),
            scenario: scenario.into(),
            metric: metric.into(),
            tandem,
            baseline: baseline.into(),
            baseline_value,
            ratio,
            target: max_ratio.map_or_else(|| "report".into(), |m| format!("≤ {m}×")),
            met: max_ratio.and_then(|m| ratio.map(|r| r <= m)),
            note: note.into(),
        }
    }
}

#[derive(Serialize)]
struct Report<'a> {
    machine: String,
    quick: bool,
    scale: f64,
    elapsed_s: f64,
    rows: &'a [Row],
    not_run: Vec<String>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(kind) = &args.child {
        let db = args
            .child_db
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("--child needs --child-db"))?;
        return b4::child(kind, db);
    }
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
        machine: machine(),
        quick: args.quick,
        scale: args.scale,
        elapsed_s: started.elapsed().as_secs_f64(),
        rows: &rows,
        not_run,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
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

/// One status line on stderr, so stdout stays the table.
pub fn progress_line(text: &str) {
    eprintln!("tandem bench: {text}");
}

/// A progress bar on stderr, redrawn in place.
pub struct Progress {
    label: String,
    total: u64,
    done: u64,
    drawn_permille: u64,
    started: std::time::Instant,
}

impl Progress {
    pub fn new(label: &str, total: u64) -> Progress {
        let p = Progress {
            label: label.into(),
            total: total.max(1),
            done: 0,
            drawn_permille: u64::MAX,
            started: std::time::Instant::now(),
        };
        p.draw();
        p
    }

    pub fn add(&mut self, n: u64) {
        self.done = (self.done + n).min(self.total);
        let permille = self.done * 1000 / self.total;
        if permille != self.drawn_permille {
            self.drawn_permille = permille;
            self.draw();
        }
    }

    fn draw(&self) {
        use std::io::Write;
        const WIDTH: u64 = 30;
        let filled = self.done * WIDTH / self.total;
        let bar: String = (0..WIDTH)
            .map(|i| if i < filled { '#' } else { '-' })
            .collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r  {} [{bar}] {:5.1}% {}/{} {:.0}s ",
            self.label,
            self.done as f64 * 100.0 / self.total as f64,
            self.done,
            self.total,
            self.started.elapsed().as_secs_f64()
        );
        let _ = err.flush();
    }

    pub fn finish(self) {
        eprintln!();
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!(
        "{cpu}, {cores} cores, {mem_gib:.0} GiB, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn print_table(report: &Report<'_>) {
    println!(
        "Tandem bench ({}), {} on {}",
        if report.quick { "quick" } else { "full" },
        if report.scale == 1.0 {
            String::new()
        } else {
            format!("scale {}", report.scale)
        },
        report.machine
    );
    let header = [
        "id",
        "scenario",
        "metric",
        "tandem",
        "baseline",
        "baseline fig",
        "ratio",
        "target",
        "met",
    ];
    let lines: Vec<[String; 9]> = report
        .rows
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.scenario.clone(),
                r.metric.clone(),
                fmt_num(r.tandem),
                r.baseline.clone(),
                r.baseline_value.map_or("n/a".into(), fmt_num),
                r.ratio.map_or("n/a".into(), |x| format!("{x:.2}×")),
                r.target.clone(),
                match r.met {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let print = |cells: &[String]| {
        let mut out = String::from("|");
        for (cell, w) in cells.iter().zip(widths) {
            let pad = w - cell.chars().count();
            out.push_str(&format!(" {cell}{} |", " ".repeat(pad)));
        }
        println!("{out}");
    };
    print(&header.map(String::from));
    println!(
        "|{}",
        widths.map(|w| format!("{}|", "-".repeat(w + 2))).concat()
    );
    for line in &lines {
        print(line);
    }
    for r in report.rows.iter().filter(|r| !r.note.is_empty()) {
        println!("  {} {}: {}", r.id, r.metric, r.note);
    }
    for n in &report.not_run {
        println!("  not run: {n}");
    }
    println!("  total bench time {:.1} s", report.elapsed_s);
}

fn fmt_num(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// Milliseconds, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The peak resident set of this process so far, in MiB (Linux; 0 where
/// /proc is missing).
pub fn peak_rss_mib() -> f64 {
    proc_status_kib("VmHWM") / 1024.0
}

fn proc_status_kib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}
