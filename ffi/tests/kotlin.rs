//! The Kotlin bindings: the example and a test program compiled with kotlinc against freshly generated bindings, run on the JVM against the test relay.
//!
//! The Kotlin compiler (npm package kotlin-compiler, which brings
//! kotlinx-coroutines) and JNA (Debian's libjna-java) come from
//! ffi/scripts/install-kotlin.sh, which this test runs: it installs what is
//! missing and does nothing when both are there.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where JNA's jar is (Debian's libjna-java).
const JNA_JAR: &str = "/usr/share/java/jna.jar";

/// Runs the install script; returns the Kotlin compiler's folder.
fn kotlin_home(scratch: &Path) -> PathBuf {
    let script = common::crate_dir()
        .join("scripts")
        .join("install-kotlin.sh");
    let output = common::run(
        Command::new("bash").arg(&script),
        "install-kotlin.sh",
        scratch,
    );
    eprint!("{}", output.stderr);
    let home = PathBuf::from(output.stdout.trim());
    assert!(
        home.join("bin").join("kotlinc").is_file(),
        "install-kotlin.sh printed {:?}, which has no bin/kotlinc",
        output.stdout
    );
    home
}

#[test]
fn kotlin_program_passes() {
    let scratch = tempfile::tempdir().expect("a temporary folder");
    let home = kotlin_home(scratch.path());
    let coroutines = home.join("lib").join("kotlinx-coroutines-core-jvm.jar");
    let stdlib = home.join("lib").join("kotlin-stdlib.jar");
    let bindings = scratch.path().join("kotlin");
    common::generate("kotlin", &bindings);

    let jar = scratch.path().join("test.jar");
    let crate_dir = common::crate_dir();
    let classpath = |extra: &[&Path]| {
        let mut parts: Vec<PathBuf> = extra.iter().map(|p| p.to_path_buf()).collect();
        parts.push(JNA_JAR.into());
        parts.push(coroutines.clone());
        std::env::join_paths(parts).expect("a class path")
    };
    common::run(
        Command::new(home.join("bin").join("kotlinc"))
            .arg(bindings.join("tandem").join("tandem.kt"))
            .arg(
                crate_dir
                    .join("examples")
                    .join("kotlin")
                    .join("TwoDevices.kt"),
            )
            .arg(
                crate_dir
                    .join("tests")
                    .join("kotlin")
                    .join("BindingsTest.kt"),
            )
            .arg("-nowarn")
            .arg("-cp")
            .arg(classpath(&[]))
            .arg("-d")
            .arg(&jar),
        "kotlinc",
        scratch.path(),
    );

    let relay = common::TestRelay::start(&["alice", "carol", "dana"]);
    let library = common::library();
    let output = common::run(
        Command::new("java")
            .arg(format!(
                "-Djna.library.path={}",
                library.parent().expect("the library's folder").display()
            ))
            .arg("-cp")
            .arg(classpath(&[&jar, &stdlib]))
            .arg("tandem.test.BindingsTestKt")
            .env("TANDEM_RELAY", &relay.addr)
            .env("TANDEM_TOKENS", relay.tokens["alice"].join(" "))
            .env("TANDEM_TOKENS_CAROL", relay.tokens["carol"].join(" "))
            .env("TANDEM_TOKENS_DANA", relay.tokens["dana"].join(" ")),
        "the Kotlin program",
        scratch.path(),
    );
    drop(relay);
    println!("{}", output.stdout);
    assert!(
        output.stdout.contains("checks passed") && output.stdout.contains("linking: ok"),
        "the Kotlin program did not finish its checks:\n{}\n{}",
        output.stdout,
        output.stderr
    );
}
