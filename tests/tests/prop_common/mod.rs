//! What the property tests share.

use proptest::test_runner::{Config, FileFailurePersistence};

/// A proptest config running `PROPTEST_CASES` cases when set (for long
/// runs), else `default_cases`, saving failures to `regressions` (committed,
/// and replayed first on every run).
pub fn config(default_cases: u32, regressions: &'static str) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
        ..Config::default()
    }
}
