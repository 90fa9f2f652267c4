//! The results table: one [`Row`] per (figure, baseline) pair, or per
//! scenario that failed, printed as text or JSON at the end of a run.

use serde::Serialize;

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: String,
    pub scenario: String,
    /// What is measured, with its unit.
    pub metric: String,
    /// Tandem's figure; `None` when the scenario failed.
    pub tandem: Option<f64>,
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
    /// Why the scenario failed; its other fields are then empty.
    pub error: Option<String>,
}

/// What a scenario gives back.
pub enum Outcome {
    /// Its figures.
    Rows(Vec<Row>),
    /// It could not be measured here, and why (no redis-server, say).
    NotRun(String),
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
            tandem: Some(tandem),
            baseline: baseline.into(),
            baseline_value,
            ratio,
            target: max_ratio.map_or_else(|| "report".into(), |m| format!("≤ {m}×")),
            met: max_ratio.and_then(|m| ratio.map(|r| r <= m)),
            note: note.into(),
            error: None,
        }
    }

    /// The row of scenario `id` that failed with `error`.
    pub fn failed(id: &str, scenario: &str, error: String) -> Row {
        Row {
            id: id.into(),
            scenario: scenario.into(),
            metric: String::new(),
            tandem: None,
            baseline: String::new(),
            baseline_value: None,
            ratio: None,
            target: String::new(),
            met: None,
            note: String::new(),
            error: Some(error),
        }
    }
}

#[derive(Serialize)]
pub struct Report<'a> {
    pub machine: String,
    pub quick: bool,
    pub scale: f64,
    pub elapsed_s: f64,
    pub rows: &'a [Row],
    pub not_run: Vec<String>,
}

pub fn machine() -> String {
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

pub fn print_table(report: &Report<'_>) {
    println!(
        "tandem-bench ({}{}) on {}",
        if report.quick { "quick" } else { "full" },
        if report.scale == 1.0 {
            String::new()
        } else {
            format!(", scale {}", report.scale)
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
                r.tandem.map_or("FAILED".into(), fmt_num),
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
    for r in report.rows {
        if let Some(error) = &r.error {
            println!("  {} FAILED: {error}", r.id);
        }
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
