//! Tandem's wire protocol.

pub mod ids;

pub use ids::{AccountId, DeviceId, Platform};
