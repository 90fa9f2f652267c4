//! `tandem events --follow` prints an event as it arrives and stops on
//! Ctrl-C, as a child process, bounded in time.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any step may take before the test fails.
const STEP: Duration = Duration::from_secs(30);

/// A child process killed when dropped, so a failing test leaves none.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tandem(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .output()
        .expect("the tandem binary runs");
    assert!(
        output.status.success(),
        "tandem {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The child's stdout, line by line, on a channel (a reader thread).
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn start_relay(dir: &Path) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["relay", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.join("relay.db"))
        .arg("--secret-file")
        .arg(dir.join("relay.secret"))
        .args(["--log", "warn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the relay starts");
    let lines = lines_of(&mut child);
    let relay = Running(child);
    let line = lines
        .recv_timeout(STEP)
        .expect("the relay says where it listens");
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (relay, addr)
}

#[test]
fn events_follow_prints_an_event_as_it_arrives_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let (_relay, addr) = start_relay(dir.path());
    let secret = dir.path().join("relay.secret");
    let token = tandem(&[
        "token",
        "--secret-file",
        secret.to_str().unwrap(),
        "--account",
        "alice",
    ]);
    let token = token.trim();
    let a = dir.path().join("a.db");
    let b = dir.path().join("b.db");
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let net = ["--relay", addr.as_str(), "--token", token];
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
        .args(["--data", b])
        .args(net)
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
    let mut sync = vec!["--data", a];
    sync.extend(net);
    sync.push("sync");
    tandem(&sync);
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
