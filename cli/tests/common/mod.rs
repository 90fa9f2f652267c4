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
/// A single-use login token for `account`, made with the relay's secret
/// file `secret`.
pub fn login_token(secret: &str, account: &str) -> String {
    tandem(&["token", "--secret-file", secret, "--account", account])
        .trim()
        .to_owned()
}

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
    let data = dir.join("relay.db");
    let mut args = vec![std::ffi::OsStr::new("--data"), data.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let (relay, mut said) = spawn_relay(dir, &args, &["listening on "]);
    (relay, said.remove(0))
}

/// `tandem relay` with a WebSocket listener too (`--listen-ws` on a free
/// loopback port): the process, its TCP address and its `ws://` address.
pub fn start_relay_ws(dir: &Path) -> (Running, String, String) {
    let data = dir.join("relay.db");
    let args = [
        "--listen-ws".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
    ];
    let (relay, mut said) = spawn_relay(
        dir,
        &args,
        &["listening on ", "listening for WebSocket on "],
    );
    let ws = said.remove(1);
    (relay, said.remove(0), ws)
}

/// `tandem relay --postgres url` on a free loopback port, with the secret
/// file in `dir` (every node of one database shares it) and `extra` flags:
/// the process and the address it listens on. Start the nodes of one
/// directory one after the other: the first creates the secret.
pub fn start_node(dir: &Path, url: &str, extra: &[&str]) -> (Running, String) {
    let mut args = vec![
        std::ffi::OsStr::new("--postgres"),
        std::ffi::OsStr::new(url),
    ];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let (relay, mut said) = spawn_relay(dir, &args, &["listening on "]);
    (relay, said.remove(0))
}

/// `tandem relay --listen 127.0.0.1:0` with its secret file in `dir`,
/// logging warnings only, and `args`; then, for each of `prefixes`, the
/// next line it prints, which must start with it: what follows it (an
/// address) is returned, in order.
fn spawn_relay(dir: &Path, args: &[&std::ffi::OsStr], prefixes: &[&str]) -> (Running, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["relay", "--listen", "127.0.0.1:0"])
        .arg("--secret-file")
        .arg(dir.join("relay.secret"))
        .args(["--log", "warn"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the relay starts");
    let lines = lines_of(&mut child);
    let relay = Running(child);
    let said = prefixes
        .iter()
        .map(|prefix| {
            let line = lines
                .recv_timeout(STEP)
                .expect("the relay says where it listens");
            line.trim()
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("expected {prefix:?}, got {line:?}"))
                .to_owned()
        })
        .collect();
    (relay, said)
}
