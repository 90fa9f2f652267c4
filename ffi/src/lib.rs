//! Tandem for Kotlin, Swift and Python: the engine and the online device through UniFFI.
//!
//! The bindings are generated from this crate (proc macros, no UDL) by the
//! `uniffi-bindgen` binary beside it; `ffi/scripts/generate-bindings.sh`
//! runs it for every language. The namespace is `tandem`: the Python
//! module `tandem`, the Kotlin package `tandem`, the Swift module `tandem`.
//!
//! - [`engine`]: `Engine`, one account on one device, offline and
//!   synchronous; `Config` opens it.
//! - [`online`]: `OnlineDevice`, an engine on its own thread connected to a
//!   relay; its calls are async.
//! - [`listener`]: `EventListener`, the trait the app implements to hear
//!   multi-device events, and `ListenerHandle`.
//! - [`op`], [`event`], [`model`], [`status`]: the operations, events,
//!   rows and connection state, mirroring the Rust API type for type.
//! - [`error`]: one typed error enum per Rust error enum.
//! - `ids.rs`: ids cross as strings and are validated here.
//!
//! Nothing here decides anything: every rule is the engine's, every
//! connection decision the online crate's. This crate converts at the
//! boundary (no automerge, SQLite or tokio type crosses it), reads the
//! clock and draws device ids, and runs listeners.

pub mod engine;
pub mod error;
pub mod event;
mod ids;
pub mod listener;
pub mod model;
pub mod online;
pub mod op;
pub mod status;

uniffi::setup_scaffolding!("tandem");

/// The engine's named limits, for apps that check input before calling.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Limits {
    /// Bytes of an id (user, group, thread, message, mark).
    pub id_bytes_max: u64,
    /// Bytes of a message body.
    pub message_body_bytes_max: u64,
    /// Bytes of a name, remark, reason or group info field.
    pub text_bytes_max: u64,
    /// Users named by one operation.
    pub users_per_op_max: u64,
    /// Messages named by one operation.
    pub messages_per_op_max: u64,
    /// Member attributes set by one operation.
    pub attributes_per_op_max: u64,
    /// Deltas merged in one `apply_remote`.
    pub deltas_per_batch_max: u64,
    /// Bytes of a device-addressed payload.
    pub payload_bytes_max: u64,
    /// Bytes of a device name.
    pub device_name_bytes_max: u64,
}

/// The engine's named limits.
#[uniffi::export]
pub fn limits() -> Limits {
    use tandem_engine::limits as l;
    use tandem_transport::limits as t;
    let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
    Limits {
        id_bytes_max: n(l::ID_BYTES_MAX),
        message_body_bytes_max: n(l::MESSAGE_BODY_BYTES_MAX),
        text_bytes_max: n(l::TEXT_BYTES_MAX),
        users_per_op_max: n(l::USERS_PER_OP_MAX),
        messages_per_op_max: n(l::MESSAGES_PER_OP_MAX),
        attributes_per_op_max: n(l::ATTRIBUTES_PER_OP_MAX),
        deltas_per_batch_max: n(l::DELTAS_PER_BATCH_MAX),
        payload_bytes_max: n(t::PAYLOAD_BYTES_MAX),
        device_name_bytes_max: n(t::DEVICE_NAME_BYTES_MAX),
    }
}
