//! Two device processes and a relay process, driven through the CLI only,
//! end with the same `state --json`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

struct RelayProcess(Child);

impl Drop for RelayProcess {
    fn drop(&mut self) {
        // The relay runs until stopped; a test that failed halfway must not
        // leave it behind.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tandem(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .output()
        .expect("the tandem binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "tandem {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn tandem_fails(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .output()
        .expect("the tandem binary runs");
    assert!(!output.status.success(), "tandem {args:?} should fail");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn start_relay(dir: &Path) -> (RelayProcess, String) {
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
    let stdout = child.stdout.take().unwrap();
    let relay = RelayProcess(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (relay, addr)
}

#[test]
fn two_device_processes_converge_through_a_relay_process() {
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
    let a = a.to_str().unwrap();
    let b = b.to_str().unwrap();
    let net = ["--relay", addr.as_str(), "--token", token];

    tandem(&[
        "--data",
        a,
        "--account",
        "alice",
        "--name",
        "phone",
        "--platform",
        "ios",
        "ingest",
        "u:bob",
        "bob",
        "m1",
        "hello alice",
        "--at-ms",
        "1000",
    ]);
    let sent = tandem(&["--data", a, "send", "u:bob", "hi bob"]);
    assert!(sent.starts_with("ok: message "), "{sent}");
    tandem(&["--data", a, "pin", "u:bob"]);
    tandem(&["--data", a, "contact", "accept", "bob"]);
    tandem(&["--data", a, "group", "create", "g1", "Team", "bob", "carol"]);
    tandem(&[
        "--data",
        b,
        "--account",
        "alice",
        "--name",
        "laptop",
        "contact",
        "block",
        "eve",
    ]);
    tandem(&["--data", b, "group", "join", "g2"]);

    for device in [a, b, a] {
        let mut args = vec!["--data", device];
        args.extend(net);
        args.push("sync");
        tandem(&args);
    }
    // B changes things that A made, then both sync again.
    tandem(&[
        "--data",
        b,
        "group",
        "update",
        "g1",
        "--announcement",
        "hello",
    ]);
    tandem(&["--data", b, "read", "u:bob", "m1"]);
    for device in [b, a] {
        let mut args = vec!["--data", device];
        args.extend(net);
        args.push("sync");
        tandem(&args);
    }

    let state_a = tandem(&["--data", a, "state", "--json"]);
    let state_b = tandem(&["--data", b, "state", "--json"]);
    assert_eq!(state_a, state_b);
    let state: serde_json::Value = serde_json::from_str(&state_a).unwrap();
    assert_eq!(state["messages"].as_array().unwrap().len(), 2);
    assert_eq!(state["groups"][0]["announcement"], "hello");
    assert_eq!(state["blocklist"][0]["user"], "eve");
    assert_eq!(state["conversations"][0]["read_message"], "m1");

    // A heard what B did, as events; printing acknowledges them.
    let events = tandem(&["--data", a, "events", "--json"]);
    let ops: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<_> = ops
        .iter()
        .filter(|e| e["category"] != "connection")
        .map(|e| e["op"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["blocked", "joined", "info_updated", "read"]);
    assert_eq!(
        tandem(&["--data", a, "events", "--json"]).lines().count(),
        0,
        "acknowledged"
    );

    // The device list, then a kick: the kicked device cannot sync with the
    // old token any more.
    let mut args = vec!["--data", a];
    args.extend(net);
    args.push("devices");
    let devices = tandem(&args);
    assert_eq!(devices.lines().count(), 2, "{devices}");
    let b_id = devices
        .lines()
        .find(|l| l.contains("laptop"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let mut args = vec!["--data", a];
    args.extend(net);
    args.extend(["kick", b_id.as_str()]);
    tandem(&args);
    let mut args = vec!["--data", b];
    args.extend(net);
    args.push("sync");
    let error = tandem_fails(&args);
    assert!(error.contains("CredentialsRevoked"), "{error}");
}

#[test]
fn errors_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    let db = db.to_str().unwrap();
    let error = tandem_fails(&["--data", db, "send", "u:bob", "hi"]);
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(error.contains("pass --account"), "{error}");
    tandem(&["--data", db, "--account", "alice", "pin", "u:bob"]);
    let error = tandem_fails(&["--data", db, "contact", "remark", "nobody", "x"]);
    assert!(error.contains("nobody is not a contact"), "{error}");
    let error = tandem_fails(&["--data", db, "send", "bob", "hi"]);
    assert!(error.contains("conversation id"), "{error}");
    let error = tandem_fails(&["--data", db, "sync"]);
    assert!(error.contains("--relay"), "{error}");
    let error = tandem_fails(&["--data", db, "--account", "mallory", "state"]);
    assert!(error.contains("belongs to account"), "{error}");
}
