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
    assert!(error.contains("credentials_revoked"), "{error}");
    assert_eq!(error.lines().count(), 1, "{error}");
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
    // A missing kind is named as such, with the three forms, not as a
    // length problem.
    let error = tandem_fails(&["--data", db, "pin", "bob"]);
    assert_eq!(error.lines().count(), 1, "{error}");
    for form in ["u:<user>", "g:<group>", "t:<thread>"] {
        assert!(error.contains(form), "{error}");
    }
    assert!(!error.contains("bytes"), "{error}");
    let error = tandem_fails(&["--data", db, "sync"]);
    assert!(error.contains("--relay"), "{error}");
    let error = tandem_fails(&["--data", db, "--account", "mallory", "state"]);
    assert!(error.contains("belongs to account"), "{error}");
}

/// A relay that refuses connections, as a new user meets it: `sync` says at
/// once on stderr what failed and that it retries, then gives up after
/// `--timeout-s` with one line and a non-zero exit.
#[test]
fn sync_against_a_relay_that_refuses_says_so_at_once_and_gives_up_in_time() {
    use std::io::Read;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    // A loopback port nobody listens on: bound to learn a free one, closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let relay = format!("127.0.0.1:{port}");
    let timeout_s = 4;
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("--data")
        .arg(&db)
        .args(["--account", "alice", "--relay", &relay, "--token", "t"])
        .args(["sync", "--timeout-s", &timeout_s.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tandem binary runs");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    let first_after = started.elapsed();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    let took = started.elapsed();

    // At once: well before the command gives up.
    assert!(
        first_after < Duration::from_secs(timeout_s),
        "the first report came after {first_after:?}: {first:?}"
    );
    for part in [relay.as_str(), "refused", "retrying in", "--timeout-s"] {
        assert!(first.contains(part), "{part:?} missing from {first:?}");
    }
    // Then one line when it gives up, and a failure exit.
    assert!(!status.success());
    let last = rest.lines().last().unwrap_or(&first);
    for part in [
        relay.as_str(),
        &format!("after {timeout_s}s"),
        "failed attempts",
        "refused",
    ] {
        assert!(last.contains(part), "{part:?} missing from {last:?}");
    }
    // The same failure is told once, not once per retry.
    assert_eq!(rest.lines().count(), 1, "{first}{rest}");
    assert!(
        took >= Duration::from_secs(timeout_s) && took < Duration::from_secs(timeout_s + 10),
        "gave up after {took:?}"
    );
}
