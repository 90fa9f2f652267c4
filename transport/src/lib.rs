//! Tandem's wire protocol: the frames a device and the relay exchange, the
//! codec that puts them on a byte stream, the sans-IO session state machines
//! of both ends, and drivers that carry a session's bytes.
//!
//! Deltas are opaque here: a delta is bytes plus their blake3 content id.
//! What is inside is the engine's business.
//!
//! - [`frame`]: the frame types; their postcard encoding is the wire format.
//! - [`address`]: a relay's address as a device names it ([`RelayAddress`]:
//!   `host:port` for TCP, `ws://host:port/path` for WebSocket).
//! - [`auth`]: device keys and the login proof they sign.
//! - [`entropy`]: randomness as an input ([`Entropy`]), from the operating
//!   system or, for tests and simulations, from a seed.
//! - [`codec`]: length-delimited framing with a size limit checked before
//!   buffering.
//! - [`client::ClientSession`]: the device side; no sockets, no clock.
//! - [`server::ServerSession`]: decoding and validation for the relay.
//! - [`driver`] (feature `tokio`): run a session over a tokio stream, TCP
//!   included, or over a WebSocket (feature `websocket`). [`mem`]: a deterministic in-memory link.
//! - [`envelope`]: the clear header of a sealed envelope (format 2) and
//!   the manifest of an epoch snapshot, read without the engine.
//! - [`limits`]: every bound, named.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod address;
pub mod auth;
pub mod client;
pub mod codec;
#[cfg(feature = "tokio")]
pub mod driver;
pub mod entropy;
pub mod envelope;
pub mod frame;
pub mod ids;
pub mod limits;
pub mod mem;
pub mod server;

pub use address::{AddressError, RelayAddress};
pub use auth::{DeviceKey, DevicePublicKey};
pub use client::{
    ClientConfig, ClientSession, CloseReason, CommandError, SessionEvent, SessionState,
};
pub use entropy::{Entropy, OsEntropy, SeededEntropy};
pub use frame::{
    ContentId, DeviceInfo, DeviceRef, Enrollment, EnrollmentState, ErrorCode, Frame, LogDelta,
    OfflineReason, PayloadId, PushAckEntry, Refusal, Welcome, WireDelta, PROTOCOL_VERSION,
};
pub use ids::{AccountId, DeviceId, Platform};
pub use server::{ProtocolError, Request, Role, ServerSession};
