//! B3: live fan-out.
use super::{Row, Scale};
use std::path::Path;
pub fn run(_dir: &Path, _scale: Scale) -> anyhow::Result<Vec<Row>> {
    Ok(Vec::new())
}
