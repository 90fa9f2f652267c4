//! All of Tandem's SQL.

pub mod relay;
