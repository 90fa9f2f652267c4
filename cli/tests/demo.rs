//! The demo runs end to end: its offline conflicts end with the outcome
//! their rules decide, the same on every device, and its final table shows
//! three identical devices.

use std::process::Command;

#[test]
fn the_demo_converges_and_prints_an_identical_state_table() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["demo", "--json", "--dir"])
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
        "== Offline, the devices make changes that conflict",
        "== Back online: every device shows the same outcome",
        "catch-up started: from 0 to",
        "catch-up finished at",
        "catch-up:",
        // The pin that lost, and the edit of a removed contact, say so.
        "[laptop] heard from phone : conversation pinned conversation=u:carol (superseded",
        "[phone ] heard from tablet: contact remark_changed remark=Erin from work user=erin (superseded",
        "[laptop] heard from phone : conversation pinned conversation=g:family",
        "[tablet] heard from laptop: group created",
        "[tablet] heard from laptop: connection kicked_by_device",
        "== The kick holds",
        "the tablet tries again with its key: refused by the relay (credentials_revoked)",
        "a new device with the tablet's login token: refused by the relay (login_token_used)",
        "the new device pulled 0 deltas",
        "the tablet logs in again with a new login token: in step",
        // Linked first, so the relay kept nothing readable.
        "== The devices are linked: one account key, end to end",
        "tablet shows a link code (181 characters), phone grants it: fingerprint",
        "the roster lists 3 devices",
        "[laptop] heard from phone : device linked device=",
        "== What the relay kept",
        "holds none of the messages, ids or conversation names",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
    // The kick is heard once, not again when the tablet is refused.
    assert_eq!(
        stdout
            .matches("[tablet] heard from laptop: connection kicked_by_device")
            .count(),
        1,
        "{stdout}"
    );

    // The table: a header with the three devices, then rows whose three
    // values are the same.
    // The summary: each conflict's outcome, the same on every device, and
    // the one its rule decides. A change to a rule fails here.
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap()).expect("the JSON summary");
    assert_eq!(summary["identical"], true);
    let expected = [
        ("pin vs unpin of u:carol", "pinned=no", "register"),
        (
            "erin removed vs renamed",
            "erin=removed",
            "does not bring it back",
        ),
        (
            "u:bob deleted vs a new message",
            "listed=yes visible=srv-0-9 unread=1",
            "a newer message keeps the conversation",
        ),
    ];
    let conflicts = summary["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), expected.len());
    for (conflict, (name, outcome, rule)) in conflicts.iter().zip(expected) {
        assert_eq!(conflict["conflict"], name);
        assert!(
            conflict["rule"].as_str().unwrap().contains(rule),
            "{conflict}"
        );
        for device in ["phone", "laptop", "tablet"] {
            assert_eq!(
                conflict["outcome"][device], outcome,
                "{name} on the {device}"
            );
        }
    }

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
    assert_eq!(checked, 11, "{table:#?}");
    let messages_row = table
        .iter()
        .find(|r| r.contains("messages in the log"))
        .unwrap();
    assert!(messages_row.contains("26"), "{messages_row}");
    assert!(stdout.contains("identical: yes"));
}
