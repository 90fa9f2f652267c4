//! What the CLI's process tests share: running `tandem`, a relay process
//! that is stopped when dropped, and a child's stdout line by line.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long any one step (a relay starting, a line arriving) may take
/// before the test fails.
pub const STEP: Duration = Duration::from_secs(30);

/// A child process killed when dropped, so a test that failed halfway
/// leaves none behind.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `tandem args`, which must succeed; its stdout.
pub fn tandem(args: &[&str]) -> String {
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

/// Runs `tandem args`, which must fail; its stderr.
pub fn tandem_fails(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .output()
        .expect("the tandem binary runs");
    assert!(!output.status.success(), "tandem {args:?} should fail");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The child's stdout, line by line, on a channel (a reader thread).
pub fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("the child's stdout is piped");
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

/// `tandem relay` on a free loopback port with its files in `dir`; the
/// process and the address it listens on.
pub fn start_relay(dir: &Path) -> (Running, String) {
    start_relay_with(dir, &[])
}

/// [`start_relay`] with `extra` flags.
pub fn start_relay_with(dir: &Path, extra: &[&str]) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["relay", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.join("relay.db"))
        .arg("--secret-file")
        .arg(dir.join("relay.secret"))
        .args(["--log", "warn"])
        .args(extra)
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
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (relay, addr)
}

/// `tandem relay` with a WebSocket listener too (`--listen-ws` on a free
/// loopback port): the process, its TCP address and its `ws://` address.
pub fn start_relay_ws(dir: &Path) -> (Running, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args([
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--listen-ws",
            "127.0.0.1:0",
            "--data",
        ])
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
    let line = || {
        lines
            .recv_timeout(STEP)
            .expect("the relay says where it listens")
    };
    let first = line();
    let tcp = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let second = line();
    let ws = second
        .trim()
        .strip_prefix("listening for WebSocket on ")
        .unwrap_or_else(|| panic!("unexpected second line {second:?}"))
        .to_owned();
    (relay, tcp, ws)
}

/// `tandem relay --postgres url` on a free loopback port, with the secret
/// file in `dir` (every node of one database shares it) and `extra` flags:
/// the process and the address it listens on. Start the nodes of one
/// directory one after the other: the first creates the secret.
pub fn start_node(dir: &Path, url: &str, extra: &[&str]) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["relay", "--listen", "127.0.0.1:0", "--postgres", url])
        .arg("--secret-file")
        .arg(dir.join("relay.secret"))
        .args(["--log", "warn"])
        .args(extra)
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
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (relay, addr)
}
