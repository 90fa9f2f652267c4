//! B6: relay capacity.
use super::{Row, Scale};
use std::path::Path;
pub enum Outcome {
    // Filled in when B6 is built.
    #[allow(dead_code)]
    Rows(Vec<Row>),
    NotRun(String),
}
pub fn run(_dir: &Path, _scale: Scale) -> anyhow::Result<Outcome> {
    Ok(Outcome::NotRun(
        "not built yet (Tandem relay vs Redis Streams, 2,500 accounts × 4 devices)".into(),
    ))
}
