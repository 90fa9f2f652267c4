//! Replays every committed fuzz input through the fuzz targets' bodies:
//! the seed corpus (`fuzz/corpus/<target>/`), the crash inputs the fuzzer
//! found (`fuzz/regressions/<target>/`), and whatever a local fuzzing run
//! left in `fuzz/artifacts/<target>/`. None may panic.
//!
//! `TANDEM_WRITE_SEEDS=1` first (re)writes the seed corpus from
//! `tandem_tests::fuzz_targets::seeds`.

use std::path::{Path, PathBuf};

use tandem_tests::choice::{Choices, Rng};
use tandem_tests::fuzz_targets::{seeds, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn every_committed_fuzz_input_replays_without_a_panic() {
    let write = std::env::var_os("TANDEM_WRITE_SEEDS").is_some();
    for (name, body) in TARGETS {
        let corpus = fuzz_dir().join("corpus").join(name);
        if write {
            std::fs::create_dir_all(&corpus).expect("corpus folder");
            for (i, seed) in seeds(name).iter().enumerate() {
                std::fs::write(corpus.join(format!("seed-{i:02}")), seed).expect("write seed");
            }
        }
        let committed = files(&corpus);
        assert!(
            !committed.is_empty(),
            "{name}: no seed corpus in {}",
            corpus.display()
        );
        let mut replayed = 0;
        for dir in ["corpus", "regressions", "artifacts"] {
            for file in files(&fuzz_dir().join(dir).join(name)) {
                // A running fuzzer may replace files in its corpus meanwhile.
                let Ok(data) = std::fs::read(&file) else {
                    continue;
                };
                // A panic names the file through this message.
                eprintln!("{name}: {}", file.display());
                body(&data);
                replayed += 1;
            }
        }
        eprintln!("{name}: {replayed} inputs replayed");
    }
}

/// A little fuzzing on every test run: random inputs through every target.
#[test]
fn random_inputs_through_every_target() {
    let mut rng = Rng::new(0x5eed);
    for (name, body) in TARGETS {
        let runs = if name == "merge" { 24 } else { 200 };
        for _ in 0..runs {
            let len = rng.range(0, 600) as usize;
            let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            body(&data);
        }
    }
}
