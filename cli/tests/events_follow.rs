//! `tandem events --follow` prints an event as it arrives and stops on
//! Ctrl-C, as a child process, bounded in time.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn events_follow_prints_an_event_as_it_arrives_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let (_relay, addr) = start_relay(dir.path());
    let secret = dir.path().join("relay.secret");
    // One single-use login token per device.
    let secret = secret.to_str().unwrap();
    let (token_a, token_b) = (login_token(secret, "alice"), login_token(secret, "alice"));
    let a = dir.path().join("a.db");
    let b = dir.path().join("b.db");
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    tandem(&[
        "--data",
        a,
        "--account",
        "alice",
        "--name",
        "phone",
        "state",
    ]);
    tandem(&[
        "--data",
        b,
        "--account",
        "alice",
        "--name",
        "laptop",
        "state",
    ]);

    let mut follow = Command::new(env!("CARGO_BIN_EXE_tandem"));
    follow
        .args(["--data", b, "--relay", addr.as_str(), "--token", &token_b])
        .args(["events", "--json", "--follow"]);
    let mut child = follow
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("events --follow starts");
    let lines = lines_of(&mut child);
    let mut child = Running(child);

    // The phone pins a conversation and syncs; the follower prints it.
    tandem(&["--data", a, "pin", "u:bob"]);
    tandem(&[
        "--data",
        a,
        "--relay",
        addr.as_str(),
        "--token",
        &token_a,
        "sync",
    ]);
    let deadline = Instant::now() + STEP;
    let pinned = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("the pin is printed within the step");
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if event["op"] == "pinned" {
            break event;
        }
    };
    assert_eq!(pinned["category"], "conversation");
    assert_eq!(pinned["conversation"], "u:bob");

    // Ctrl-C stops it cleanly (exit 0), within the step.
    let pid = child.0.id().to_string();
    let status = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + STEP;
    let exit = loop {
        if let Some(exit) = child.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "events --follow did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    // It acknowledged what it printed.
    let again = tandem(&["--data", b, "events", "--json"]);
    assert!(!again.contains("\"pinned\""), "{again}");
}
