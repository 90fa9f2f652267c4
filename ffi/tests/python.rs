//! The Python bindings' unittest suite (ffi/tests/python), run against freshly generated bindings and the built library.

mod common;

use std::process::Command;

/// Lays out the package `tandem` in a temporary folder as
/// ffi/scripts/generate-bindings.sh does (the hand-written `__init__.py`,
/// the generated module, the library) and runs `python3 -m unittest` on
/// the suite, which starts the test relay itself. Any failing, erroring or
/// skipped Python test fails this test, as does a missing `python3`.
#[test]
fn python_suite_passes() {
    let scratch = tempfile::tempdir().expect("a temporary folder");
    let bindings = scratch.path().join("python");
    let package = bindings.join("tandem");
    std::fs::create_dir_all(&package).expect("the package's folder");
    common::generate("python", &package);
    let library = common::library();
    std::fs::copy(
        &library,
        package.join(library.file_name().expect("a file name")),
    )
    .expect("copying the library beside the bindings");
    std::fs::copy(
        common::crate_dir().join("python/tandem/__init__.py"),
        package.join("__init__.py"),
    )
    .expect("copying the package's __init__.py beside the bindings");

    let suite = common::crate_dir().join("tests").join("python");
    let output = common::run(
        Command::new("python3")
            .args(["-m", "unittest", "discover", "-v", "-s"])
            .arg(&suite)
            .env("PYTHONPATH", &bindings)
            .env("TANDEM_FFI_TEST_RELAY", common::test_relay())
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        "the Python suite",
        scratch.path(),
    );
    // unittest prints its summary on stderr; a run of no tests exits 5
    // (Python 3.12+) or 0 (older): check the count too.
    println!("{}", output.stderr);
    let ran = output
        .stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("Ran ")?
                .split(' ')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .expect("unittest's summary line");
    assert!(ran >= 13, "only {ran} Python tests ran:\n{}", output.stderr);
    assert!(
        !output.stderr.contains("skipped"),
        "a Python test was skipped:\n{}",
        output.stderr
    );
}
