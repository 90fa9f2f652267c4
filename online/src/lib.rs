//! Tandem's async shell: an [`Engine`](tandem_engine::Engine) on its own
//! thread, online with a relay.
//!
//! [`OnlineDevice::spawn`] moves an engine onto a thread of its own (SQLite
//! is blocking, so it never runs on the app's async workers) with a small
//! tokio runtime that keeps one connection to the relay: it connects with a
//! timeout, logs in, syncs, reconnects (to the next of its relay addresses,
//! round robin) with capped exponential backoff and jitter, and stops when the relay says a retry cannot help. The app talks
//! to it through a bounded command channel: every method of
//! [`OnlineDevice`] is async and cheap to call from any runtime, and is
//! answered at once whether the device is connected, connecting or
//! offline. [`Status`] says where the connection is and, typed, why it
//! failed or stopped.
//!
//! All protocol decisions are in the engine's
//! [`Syncer`](tandem_engine::sync::Syncer) and the transport's
//! `ClientSession`; the bytes move through the transport's
//! [`Connection`](tandem_transport::driver::Connection) driver. This crate
//! only moves commands, time and events.
//!
//! - [`config`]: [`OnlineConfig`], [`Backoff`] and the [`Rotation`] over
//!   several relay addresses.
//! - [`device`]: [`OnlineDevice`], the handle the app holds.
//! - [`events`]: [`EventStream`], the multi-device events as a stream.
//! - [`status`]: [`Status`] and its typed reasons.
//! - [`error`]: why a call failed, [`DeviceError`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod actor;
mod command;
pub mod config;
pub mod device;
pub mod error;
pub mod events;
pub mod status;

pub use config::{
    parse_relays, split_relays, Backoff, OnlineConfig, RelaysError, Rotation, CLOSE_TIMEOUT_MS,
    CONNECT_TIMEOUT_MS_DEFAULT,
};
pub use device::{OnlineDevice, COMMAND_QUEUE_DEPTH, EVENT_QUEUE_DEPTH};
pub use error::DeviceError;
pub use events::EventStream;
pub use status::{LastError, Link, LinkError, RefusedEntry, Status, StopReason};
pub use tandem_engine::sync::SyncEvent;
