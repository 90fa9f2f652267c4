//! B4's full-size account (not the quick one) builds from an empty bench
//! folder. At full proportions the device that makes the document history
//! gets only the last messages of the history, which the quick size never
//! exercises; a fresh machine's full run once stopped there with "unknown
//! message".

use std::process::Command;

#[test]
fn the_full_size_b4_account_builds_from_an_empty_dir() {
    let dir = tempfile::tempdir().unwrap();
    // Full proportions at a hundredth of the size: 10,000 messages in 100
    // conversations, the last 2,000 of them read-marker targets.
    let output = Command::new(env!("CARGO_BIN_EXE_tandem-bench"))
        .args(["--only", "B4", "--json", "--scale", "0.01", "--dir"])
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
    assert_eq!(rows.len(), 2, "{report}");
    for row in rows {
        assert_eq!(row["id"], "B4", "{row}");
        let tandem = row["tandem"].as_f64().unwrap();
        assert!(tandem.is_finite() && tandem > 0.0, "{row}");
        assert!(row["ratio"].as_f64().is_some(), "{row}");
    }
    let label = rows[0]["note"].as_str().unwrap();
    assert!(
        label.starts_with("10000 messages, 100 conversations"),
        "{label}"
    );
}
