//! The demo runs end to end and its final table shows three identical
//! devices.

use std::process::Command;

#[test]
fn the_demo_converges_and_prints_an_identical_state_table() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["demo", "--dir"])
        .arg(dir.path())
        .output()
        .expect("the tandem binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");

    // Every step ran and events were heard across devices.
    for step in [
        "== Messages arrive and are sent",
        "== The tablet comes online and catches up",
        "== The laptop kicks the tablet",
        "catch-up:",
        "[laptop] heard from phone : conversation pinned conversation=g:family",
        "[tablet] heard from laptop: group created",
        "[tablet] heard from laptop: connection kicked_by_device",
        "== The kick holds",
        "the tablet tries again with its key: refused by the relay (credentials_revoked)",
        "a new device with the tablet's login token: refused by the relay (login_token_used)",
        "the new device pulled 0 deltas",
        "the tablet logs in again with a new login token: in step",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }

    // The table: a header with the three devices, then rows whose three
    // values are the same.
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("== Final state"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    let header: Vec<&str> = table[0].split_whitespace().collect();
    assert_eq!(header, ["phone", "laptop", "tablet"]);
    let mut checked = 0;
    for row in &table[1..] {
        let label_end = 24;
        let values = &row[label_end..];
        let width = (values.len() + 1) / 3;
        let cells: Vec<&str> = (0..3)
            .map(|i| values[i * width..((i + 1) * width).min(values.len())].trim())
            .collect();
        assert!(
            cells[0] == cells[1] && cells[1] == cells[2],
            "row differs: {row}"
        );
        checked += 1;
    }
    assert_eq!(checked, 9, "{table:#?}");
    let messages_row = table
        .iter()
        .find(|r| r.contains("messages in the log"))
        .unwrap();
    assert!(messages_row.contains("25"), "{messages_row}");
    assert!(stdout.contains("identical: yes"));
}
