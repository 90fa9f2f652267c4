//! B6: relay capacity.
use super::{Row, Scale};
use std::path::Path;
pub enum Outcome {
    Rows(Vec<Row>),
    NotRun(String),
}
pub fn run(_dir: &Path, _scale: Scale) -> anyhow::Result<Outcome> {
    Ok(Outcome::NotRun("not built yet".into()))
}
