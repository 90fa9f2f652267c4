//! Two device processes and a relay process, driven through the CLI only,
//! end with the same `state --json`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;

#[test]
fn two_device_processes_converge_through_a_relay_process() {
    let dir = tempfile::tempdir().unwrap();
    let (_relay, addr) = start_relay(dir.path());
    let secret = dir.path().join("relay.secret");
    let secret = secret.to_str().unwrap();
    // One single-use login token per device, as an auth service hands out.
    let token_a = login_token(secret, "alice");
    let token_b = login_token(secret, "alice");
    let a = dir.path().join("a.db");
    let b = dir.path().join("b.db");
    let a = a.to_str().unwrap();
    let b = b.to_str().unwrap();

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

    // The first sync logs each device in; the file keeps the relay and the
    // enrollment, so the later ones pass neither. Passing the same token
    // again is harmless (scripts repeat their flags).
    tandem(&["--data", a, "--relay", &addr, "--token", &token_a, "sync"]);
    tandem(&["--data", b, "--relay", &addr, "--token", &token_b, "sync"]);
    tandem(&["--data", a, "sync"]);
    tandem(&["--data", a, "--relay", &addr, "--token", &token_a, "sync"]);
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
        tandem(&["--data", device, "sync"]);
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

    // The device list, then a kick that holds.
    let devices = tandem(&["--data", a, "devices"]);
    assert_eq!(devices.lines().count(), 2, "{devices}");
    let b_id = devices
        .lines()
        .find(|l| l.contains("laptop"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let listed: serde_json::Value =
        serde_json::from_str(&tandem(&["--data", a, "devices", "--json"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let a_id = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "phone")
        .unwrap()["device"]
        .as_str()
        .unwrap()
        .to_owned();
    // A kick of a device the account does not have, or of this device
    // itself, says so and fails: nothing was kicked.
    let unknown = tandem_fails(&["--data", a, "kick", "00112233445566778899aabbccddeeff"]);
    assert!(unknown.contains("has no device"), "{unknown}");
    let own = tandem_fails(&["--data", a, "kick", a_id.as_str()]);
    assert!(own.contains("is this device"), "{own}");
    tandem(&["--data", a, "kick", b_id.as_str()]);
    // The kicked device: refused with the typed reason, in text and JSON.
    let error = tandem_fails(&["--data", b, "sync"]);
    assert_eq!(error.lines().count(), 1, "{error}");
    for part in [
        "credentials_revoked",
        "kicked by device",
        "phone",
        "--token",
    ] {
        assert!(error.contains(part), "{part:?} missing from {error}");
    }
    let (stdout, _) = tandem_fails_out(&["--data", b, "sync", "--json"]);
    let refusal: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(refusal["error"], "credentials_revoked", "{refusal}");
    assert_eq!(refusal["reason"], "kicked_by_device", "{refusal}");
    assert_eq!(refusal["by"]["device"], a_id.as_str(), "{refusal}");
    assert_eq!(refusal["by"]["name"], "phone", "{refusal}");
    assert_eq!(refusal["by"]["platform"], "ios", "{refusal}");
    // Its old login token, again from the kicked device or from a copy of
    // it under a new device id: refused as used.
    let error = tandem_fails(&["--data", b, "--token", &token_b, "sync"]);
    assert!(error.contains("login_token_used"), "{error}");
    let stolen = dir.path().join("stolen.db");
    let stolen = stolen.to_str().unwrap();
    let error = tandem_fails(&[
        "--data",
        stolen,
        "--account",
        "alice",
        "--relay",
        &addr,
        "--token",
        &token_b,
        "sync",
    ]);
    assert!(error.contains("login_token_used"), "{error}");
    // A new login token logs the kicked device in again.
    tandem(&[
        "--data",
        b,
        "--token",
        &login_token(secret, "alice"),
        "sync",
    ]);

    // Logout: the relay forgets the device; it logs in again with a token.
    tandem(&["--data", b, "logout"]);
    let error = tandem_fails(&["--data", b, "sync"]);
    assert!(error.contains("logged out"), "{error}");
    tandem(&[
        "--data",
        b,
        "--token",
        &login_token(secret, "alice"),
        "sync",
    ]);

    // Kick every device, this one included: both must log in again.
    tandem(&["--data", b, "kick", "--all"]);
    for device in [a, b] {
        let error = tandem_fails(&["--data", device, "sync"]);
        assert!(error.contains("credentials_revoked"), "{error}");
        assert!(error.contains("laptop"), "kicked by the laptop: {error}");
    }
    let token = login_token(secret, "alice");
    tandem(&["--data", a, "--token", &token, "sync"]);
}

/// The operator's commands against a running relay: list, kick, revoke
/// every device, ban and unban, remove; each device is told why.
#[test]
fn operator_commands_reach_a_running_relay() {
    let dir = tempfile::tempdir().unwrap();
    let (_relay, addr) = start_relay(dir.path());
    let secret = dir.path().join("relay.secret");
    let secret = secret.to_str().unwrap();
    let a = dir.path().join("a.db");
    let a = a.to_str().unwrap();
    let b = dir.path().join("b.db");
    let b = b.to_str().unwrap();
    for (device, name) in [(a, "phone"), (b, "laptop")] {
        tandem(&[
            "--data",
            device,
            "--account",
            "alice",
            "--name",
            name,
            "--relay",
            &addr,
            "--token",
            &login_token(secret, "alice"),
            "sync",
        ]);
    }
    let admin = |args: &[&str]| {
        let mut all = vec![
            "admin",
            "--relay",
            &addr,
            "--secret-file",
            secret,
            "--account",
            "alice",
        ];
        all.extend(args);
        tandem(&all)
    };
    let listed: serde_json::Value = serde_json::from_str(&admin(&["--json", "devices"])).unwrap();
    let ids: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    let b_id = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "laptop")
        .unwrap()["device"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(admin(&["kick", &b_id]).starts_with("ok: 1 device(s) revoked"));
    let error = tandem_fails(&["--data", b, "sync"]);
    assert!(error.contains("revoked by the relay's operator"), "{error}");

    // Revoke-all: every device logs in again.
    admin(&["revoke-all"]);
    let error = tandem_fails(&["--data", a, "sync"]);
    assert!(error.contains("credentials_revoked"), "{error}");
    tandem(&[
        "--data",
        a,
        "--token",
        &login_token(secret, "alice"),
        "sync",
    ]);

    // A ban refuses the account until lifted; the key then logs in again.
    admin(&["ban"]);
    let (stdout, _) = tandem_fails_out(&["--data", a, "sync", "--json"]);
    let refusal: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(refusal["error"], "account_banned", "{refusal}");
    admin(&["unban"]);
    tandem(&["--data", a, "sync"]);

    // Removed: refused with its own code, even with a new token.
    admin(&["remove"]);
    let error = tandem_fails(&[
        "--data",
        a,
        "--token",
        &login_token(secret, "alice"),
        "sync",
    ]);
    assert!(error.contains("account_removed"), "{error}");

    // A wrong secret is refused.
    let wrong = dir.path().join("wrong.secret");
    tandem(&[
        "token",
        "--secret-file",
        wrong.to_str().unwrap(),
        "--account",
        "x",
    ]);
    let error = tandem_fails(&[
        "admin",
        "--relay",
        &addr,
        "--secret-file",
        wrong.to_str().unwrap(),
        "--account",
        "alice",
        "devices",
    ]);
    assert!(error.contains("bad_proof"), "{error}");
}

/// A device refused by the device limit lists the devices and kicks one
/// with a manage token, without being admitted; then it gets in.
#[test]
fn a_device_refused_for_the_limit_frees_a_slot_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (_relay, addr) = start_relay_with(dir.path(), &["--max-devices", "1"]);
    let secret = dir.path().join("relay.secret");
    let secret = secret.to_str().unwrap();
    let a = dir.path().join("a.db");
    let a = a.to_str().unwrap();
    let b = dir.path().join("b.db");
    let b = b.to_str().unwrap();
    // The phone stays online (events --follow) so it holds the one slot.
    tandem(&[
        "--data",
        a,
        "--account",
        "alice",
        "--name",
        "phone",
        "--relay",
        &addr,
        "--token",
        &login_token(secret, "alice"),
        "sync",
    ]);
    let mut phone = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["--data", a, "events", "--follow"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut refused = None;
    for _ in 0..50 {
        let output = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args([
                "--data",
                b,
                "--account",
                "alice",
                "--name",
                "laptop",
                "--relay",
                &addr,
            ])
            .args(["--token", &login_token(secret, "alice"), "sync", "--json"])
            .output()
            .unwrap();
        if !output.status.success() {
            refused = Some(String::from_utf8_lossy(&output.stdout).into_owned());
            break;
        }
        // The phone was not online yet: the laptop got in; log it out.
        tandem(&["--data", b, "logout"]);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let refused: serde_json::Value = serde_json::from_str(refused.unwrap().trim()).unwrap();
    assert_eq!(refused["error"], "too_many_devices", "{refused}");
    let phone_id = refused["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "phone")
        .unwrap()["device"]
        .as_str()
        .unwrap()
        .to_owned();
    let manage = || {
        tandem(&[
            "token",
            "--secret-file",
            secret,
            "--account",
            "alice",
            "--purpose",
            "manage",
        ])
        .trim()
        .to_owned()
    };
    let listed = tandem(&["--data", b, "--token", &manage(), "devices"]);
    assert!(listed.contains(&phone_id), "{listed}");
    tandem(&["--data", b, "--token", &manage(), "kick", &phone_id]);
    // The slot is free: the laptop's key (its refused login enrolled it)
    // now gets it in.
    tandem(&["--data", b, "sync"]);
    let _ = phone.kill();
    let _ = phone.wait();
}

fn tandem_fails_out(args: &[&str]) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .output()
        .expect("the tandem binary runs");
    assert!(!output.status.success(), "tandem {args:?} should fail");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
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

/// The relay's SQLite files (database and WAL), as bytes.
fn relay_files(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for name in ["relay.db", "relay.db-wal"] {
        if let Ok(file) = std::fs::read(dir.join(name)) {
            bytes.extend(file);
        }
    }
    bytes
}

#[test]
fn devices_linked_with_the_cli_sync_sealed_and_an_unlinked_one_is_told_to_link() {
    let dir = tempfile::tempdir().unwrap();
    let (_relay, addr) = start_relay(dir.path());
    let secret = dir.path().join("relay.secret");
    let secret = secret.to_str().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (a, b, c) = (path("a.db"), path("b.db"), path("c.db"));

    let made = tandem(&["--data", &a, "--account", "alice", "link", "create-key"]);
    assert!(
        made.starts_with("ok: account key made, fingerprint "),
        "{made}"
    );
    let code = tandem(&["--data", &b, "--account", "alice", "link", "show-code"]);
    let grant = tandem(&["--data", &a, "link", "grant", code.trim()]);
    let accepted = tandem(&["--data", &b, "link", "accept", grant.trim()]);
    assert_eq!(
        accepted.trim_start_matches("ok: linked, "),
        made.trim_start_matches("ok: account key made, "),
        "the same fingerprint"
    );
    let status = tandem(&["--data", &b, "link", "status"]);
    assert!(status.starts_with("linked: key generation 0"), "{status}");
    assert_eq!(status.matches("roster: ").count(), 2, "{status}");
    // A grant accepted twice, or text that is no grant, is refused.
    let again = tandem_fails(&["--data", &b, "link", "accept", grant.trim()]);
    assert!(again.contains("holds the account key already"), "{again}");
    let junk = tandem_fails(&["--data", &c, "--account", "alice", "link", "accept", "ABC"]);
    assert!(junk.contains("not a grant"), "{junk}");

    let secret_text = "a sealed hello from the phone";
    tandem(&["--data", &a, "send", "u:bob", secret_text]);
    tandem(&["--data", &b, "pin", "u:dora"]);
    for device in [&a, &b, &a] {
        let token = login_token(secret, "alice");
        tandem(&[
            "--data", device, "--relay", &addr, "--token", &token, "sync",
        ]);
    }
    let state_a = tandem(&["--data", &a, "state", "--json"]);
    assert_eq!(state_a, tandem(&["--data", &b, "state", "--json"]));
    assert!(state_a.contains(secret_text));

    // A device of the account that holds no key is told what to do, at
    // once rather than at the timeout.
    let token = login_token(secret, "alice");
    let told = tandem_fails(&[
        "--data",
        &c,
        "--relay",
        &addr,
        "--token",
        &token,
        "sync",
        "--timeout-s",
        "20",
    ]);
    assert!(told.contains("stopped before relay log entry 1"), "{told}");
    assert!(told.contains("holds no account key"), "{told}");
    assert!(told.contains("tandem link show-code"), "{told}");

    let stored = relay_files(dir.path());
    for text in [secret_text, "u:dora", "u:bob"] {
        assert!(
            !stored.windows(text.len()).any(|w| w == text.as_bytes()),
            "the relay's files hold {text:?}"
        );
    }
}
