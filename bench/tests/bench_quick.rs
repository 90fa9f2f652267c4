//! `tandem-bench --quick` runs end to end and prints a complete table.
//!
//! Benchmarks are not tests: nothing here looks at a time. This only proves
//! the bench works, at a tiny scale so the suite stays fast; the README's
//! numbers come from the full workload in a release build.

use std::process::Command;

#[test]
fn quick_bench_prints_every_scenario_with_its_baselines() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tandem-bench"))
        .args(["--quick", "--json", "--scale", "0.05", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    for (id, count) in [
        ("B1a", 1),
        ("B1b", 1),
        ("B2", 1),
        ("B3", 4),
        ("B4", 2),
        ("B5", 4),
    ] {
        assert_eq!(
            ids.iter().filter(|i| **i == id).count(),
            count,
            "rows for {id} in {ids:?}"
        );
    }
    for row in rows {
        assert!(row["error"].is_null(), "{row}");
        let tandem = row["tandem"].as_f64().unwrap();
        assert!(tandem.is_finite() && tandem >= 0.0, "{row}");
        let baseline = row["baseline_value"].as_f64().unwrap();
        assert!(baseline.is_finite() && baseline > 0.0, "{row}");
        assert!(row["ratio"].as_f64().is_some(), "{row}");
        assert!(!row["target"].as_str().unwrap().is_empty(), "{row}");
    }
    // B6 and B9 either ran or say why not (too small a scale, no
    // redis-server or PostgreSQL).
    for id in ["B6", "B9"] {
        let rows = ids.iter().filter(|i| i.starts_with(id)).count();
        let reasons = report["not_run"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n.as_str().unwrap().starts_with(id))
            .count();
        assert!(rows > 0 || reasons == 1, "{id}: {report}");
    }
    // The cold-start account was cached in the bench folder.
    let cached = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().ends_with(".done"));
    assert!(cached, "no cached cold-start account");
}
