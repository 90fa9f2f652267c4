//! Tandem's relay: authenticates devices, keeps each account's delta log,
//! fans new deltas out to the account's other online devices, holds
//! device-addressed payloads, enforces device limits and kicks.
//!
//! - [`config::RelayConfig`] and [`server::serve`] (or [`server::Relay`]
//!   for a bound port first) start a TCP relay.
//! - [`secret::load_or_create`] and [`token::issue_login`] /
//!   [`token::verify_login`] manage credentials; [`admin`] is the
//!   operator's proof and client.
//! - [`core::RelayCore`] is the decision logic with no IO but its store;
//!   the tokio shell in [`server`] only carries bytes and time to it.
//! - [`hook::OfflinePushHook`] is where push notifications would go.
//! - [`metrics`] counts what the relay does and serves it over HTTP
//!   ([`RelayConfig::metrics_addr`]): Prometheus text and a health check.
//! - [`process::run`] is the relay as a whole process (`tandem relay`).
//! - [`harness::LoopbackRelay`] (feature `harness`) is a relay on a
//!   loopback port for tests and benchmarks.
//!
//! Architecture invariant: a connection's account is fixed by its
//! authenticated login (`Hello` and a `Proof` that verifies), and every
//! store call is keyed by that account, so a device can never read or write
//! another account's log.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod config;
pub mod core;
#[cfg(feature = "harness")]
pub mod harness;
pub mod hook;
pub mod metrics;
pub mod process;
pub mod secret;
pub mod server;
pub mod token;

pub use config::{OfflinePushPolicy, OverflowPolicy, RelayConfig, StoreLocation};
pub use server::{serve, Relay, RelayError};
