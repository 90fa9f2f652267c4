//! What the bindings' tests share: the built library, generating bindings with the workspace's uniffi-bindgen, bounded child processes.

#![allow(dead_code)] // Each test binary uses a part.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The longest a generator, compiler or test program may run.
pub const CHILD_S_MAX: u64 = 600;

/// The crate's folder (`ffi/`).
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test relay binary, built by cargo for this test.
pub fn test_relay() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tandem-ffi-test-relay"))
}

/// The cdylib cargo built with this test: `deps/` beside the crate's
/// binaries (`cargo test` builds it there and, unlike `cargo build`, does
/// not copy it up a folder, where an older build's may lie).
pub fn library() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_uniffi-bindgen"));
    let dir = bin.parent().expect("the binaries' folder");
    let name = if cfg!(target_os = "macos") {
        "libtandem_ffi.dylib"
    } else {
        "libtandem_ffi.so"
    };
    for candidate in [dir.join("deps").join(name), dir.join(name)] {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "the library {name} is not in {} (cargo builds it with the tests: crate-type cdylib)",
        dir.display()
    );
}

/// Generates the bindings for `language` into `out` with the workspace's
/// uniffi-bindgen, as ffi/scripts/generate-bindings.sh does.
pub fn generate(language: &str, out: &Path) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_uniffi-bindgen"));
    command
        .args(["generate", "--library"])
        .arg(library())
        .args(["--language", language, "--no-format", "--out-dir"])
        .arg(out)
        .current_dir(crate_dir());
    let scratch = out.parent().expect("the output folder is in a folder");
    run(
        &mut command,
        &format!("uniffi-bindgen for {language}"),
        scratch,
    );
}

/// What a child printed.
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to its end, at most [`CHILD_S_MAX`] seconds (then kills
/// it); panics, with everything it printed, unless it exits with 0. Its
/// output goes to files in `scratch`.
pub fn run(command: &mut Command, what: &str, scratch: &Path) -> Output {
    let stdout_path = scratch.join(format!("{}.stdout", what.replace(' ', "_")));
    let stderr_path = scratch.join(format!("{}.stderr", what.replace(' ', "_")));
    let stdout = std::fs::File::create(&stdout_path).expect("an output file");
    let stderr = std::fs::File::create(&stderr_path).expect("an output file");
    let started = Instant::now();
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {command:?}: {e}"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(CHILD_S_MAX) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = Output {
        stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
    };
    let took = started.elapsed().as_secs_f64();
    match status {
        Some(status) if status.success() => {
            println!("{what}: done in {took:.1} s");
            output
        }
        Some(status) => panic!(
            "{what} failed ({status}) after {took:.1} s\n--- stdout\n{}\n--- stderr\n{}",
            output.stdout, output.stderr
        ),
        None => panic!(
            "{what} did not finish within {CHILD_S_MAX} s; killed\n--- stdout\n{}\n--- stderr\n{}",
            output.stdout, output.stderr
        ),
    }
}

/// The test relay binary, running: its address and fresh login tokens per
/// account (each single use).
/// Dropping it closes its stdin, which stops it.
pub struct TestRelay {
    child: std::process::Child,
    pub addr: String,
    pub tokens: std::collections::BTreeMap<String, Vec<String>>,
}

impl TestRelay {
    /// Starts the test relay for `accounts` and reads its address line.
    pub fn start(accounts: &[&str]) -> TestRelay {
        use std::io::BufRead;
        let mut child = Command::new(test_relay())
            .args(accounts)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("starting the test relay");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("the relay's stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading the test relay's address");
        let started: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the test relay printed {line:?}, not its address: {e}"));
        let addr = started["relay"]
            .as_str()
            .expect("the relay's address")
            .to_owned();
        let tokens = accounts
            .iter()
            .map(|a| {
                let tokens = started["tokens"][*a]
                    .as_array()
                    .expect("login tokens per account")
                    .iter()
                    .map(|t| t.as_str().expect("a login token").to_owned())
                    .collect();
                ((*a).to_owned(), tokens)
            })
            .collect();
        TestRelay {
            child,
            addr,
            tokens,
        }
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
