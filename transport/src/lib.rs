//! Tandem's wire protocol: the frames a device and the relay exchange, the
//! codec that puts them on a byte stream, the sans-IO session state machines
//! of both ends, and drivers that carry a session's bytes.
//!
//! Deltas are opaque here: a delta is bytes plus their blake3 content id.
//! What is inside is the engine's business.
//!
//! - [`frame`]: the frame types; their postcard encoding is the wire format.
//! - [`codec`]: length-delimited framing with a size limit checked before
//!   buffering.
//! - [`client::ClientSession`]: the device side; no sockets, no clock.
//! - [`server::ServerSession`]: decoding and validation for the relay.
//! - [`driver`] (feature `tokio`): run a session over a tokio stream, TCP
//!   included. [`mem`]: a deterministic in-memory link.
//! - [`limits`]: every bound, named.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod codec;
#[cfg(feature = "tokio")]
pub mod driver;
pub mod frame;
pub mod ids;
pub mod limits;
pub mod mem;
pub mod server;

pub use client::{
    ClientConfig, ClientSession, CloseReason, CommandError, SessionEvent, SessionState,
};
pub use frame::{
    ContentId, DeviceInfo, ErrorCode, Frame, LogDelta, PayloadId, PushAckEntry, Welcome, WireDelta,
    PROTOCOL_VERSION,
};
pub use ids::{AccountId, DeviceId, Platform};
pub use server::{ProtocolError, Request, ServerSession};
