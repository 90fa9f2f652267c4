//! A scenario that fails reports its error in its own row; the others
//! still run and report; the exit status says that one failed.

use std::process::Command;

fn bench(dir: &std::path::Path, only: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tandem-bench"))
        .args([
            "--quick", "--json", "--scale", "0.05", "--only", only, "--dir",
        ])
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn a_failing_scenario_gets_its_row_and_the_others_still_report() {
    let dir = tempfile::tempdir().unwrap();
    let built = bench(dir.path(), "B4");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    // Break the cached cold-start account: B4 must now fail, B5 not.
    let mut broken = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("b4-account-") && name.ends_with(".db") {
            std::fs::write(&path, b"not a SQLite file").unwrap();
            broken += 1;
        } else if name.starts_with("b4-account-") && !name.ends_with(".done") {
            std::fs::remove_file(&path).unwrap();
        }
    }
    assert_eq!(broken, 1, "one cached account to break");

    let output = bench(dir.path(), "B4,B5");
    assert_eq!(
        output.status.code(),
        Some(1),
        "the exit status says one failed"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("1 of the scenarios failed: B4"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let b4: Vec<_> = rows.iter().filter(|r| r["id"] == "B4").collect();
    assert_eq!(b4.len(), 1, "{report}");
    assert!(b4[0]["tandem"].is_null(), "{report}");
    let error = b4[0]["error"].as_str().unwrap();
    assert!(error.contains("the cached account"), "{error}");
    let b5: Vec<_> = rows.iter().filter(|r| r["id"] == "B5").collect();
    assert_eq!(b5.len(), 4, "{report}");
    for row in b5 {
        assert!(row["error"].is_null(), "{row}");
        assert!(row["tandem"].as_f64().is_some_and(f64::is_finite), "{row}");
    }
}
