//! Named limits on everything a local operation or a remote delta carries.
//!
//! Each is tested just below, at and just above in `tests`.

/// Bytes in any id (user, group, thread, message, mark).
pub const ID_BYTES_MAX: usize = 128;

/// Bytes in a message body.
pub const MESSAGE_BODY_BYTES_MAX: usize = 64 * 1024;

/// Bytes in a short free-text field: names, remarks, reasons, greetings,
/// descriptions, announcements, attribute values.
pub const TEXT_BYTES_MAX: usize = 4 * 1024;

/// Users named by one operation (invite, kick, mute…).
pub const USERS_PER_OP_MAX: usize = 500;

/// Messages named by one delete-for-me.
pub const MESSAGES_PER_OP_MAX: usize = 500;

/// Attributes set by one member-attributes operation.
pub const ATTRIBUTES_PER_OP_MAX: usize = 64;

/// Read markers one delta sets: clearing all unread sets one per
/// conversation with unread messages.
pub const READ_MARKERS_PER_DELTA_MAX: usize = 10_000;

/// Bytes in one encoded delta. A delta is one user operation, so this is far
/// above what a valid one needs; anything larger is refused unread.
pub const DELTA_BYTES_MAX: usize = 1024 * 1024;

/// Operations in one sealed envelope (design D1): the batch a device seals
/// before a push.
pub const OPS_PER_ENVELOPE_MAX: usize = 1024;

/// Bytes of an envelope body's payload (the postcard body, after inflating
/// a DEFLATE one). Inflation stops and refuses the envelope as soon as it
/// would pass this, so a small envelope cannot make a device allocate
/// more.
pub const ENVELOPE_PLAINTEXT_BYTES_MAX: usize = 4 * 1024 * 1024;

/// A sealed body's payload of at least this many bytes is DEFLATE'd
/// before it is encrypted; a smaller one is sealed as it is.
pub const ENVELOPE_DEFLATE_FROM_BYTES: usize = 1024;

/// Entries in an envelope body's view of the other devices' chains: one per
/// device of the roster, so at most the devices one account can have.
pub const VIEW_ENTRIES_PER_ENVELOPE_MAX: usize = tandem_transport::limits::DEVICES_PER_ACCOUNT_MAX;

/// Bytes in one sealed envelope, header, ciphertext and signature: the
/// transport's bound, the same as [`DELTA_BYTES_MAX`].
pub use tandem_transport::limits::ENVELOPE_BYTES_MAX;

/// The plaintext of an envelope is padded with zeros to a multiple of
/// this many bytes.
pub use tandem_transport::envelope::ENVELOPE_PAD_BYTES;

/// Deltas in one `apply_remote` batch: one batch is one SQLite transaction.
pub const DELTAS_PER_BATCH_MAX: usize = 10_000;

/// Document changes kept as separate chunks before they are folded into a
/// snapshot, bounding both load time and the chunk table.
pub const DOC_CHANGES_PER_SNAPSHOT: i64 = 1_000;

/// The highest operation number (`origin_seq`) a device gives or accepts:
/// both devices keep it as a SQLite integer. A delta above it is refused
/// when decoded ([`DeltaError::OriginSeqOutOfRange`](crate::delta::DeltaError::OriginSeqOutOfRange)).
pub const ORIGIN_SEQ_MAX: u64 = i64::MAX as u64;

/// The highest relay log position (a seq, the cursor, the head): the
/// transport refuses a frame above it, and both stores keep positions as
/// SQLite integers.
pub use tandem_transport::limits::RELAY_SEQ_MAX;

/// How long before its enrollment expires a device journals a
/// `CredentialsExpiring` event: three days, time to come online once (which
/// renews it) or to log in again.
pub const CREDENTIALS_EXPIRING_WARNING_MS: i64 = 3 * 24 * 3600 * 1000;

/// Relay addresses a device keeps.
pub const RELAYS_MAX: usize = 16;

/// Bytes in one relay address (`host:port` or `ws://host:port/path`): the
/// transport's bound on what it parses, so every address a device keeps
/// is one it can parse.
pub use tandem_transport::address::RELAY_ADDRESS_BYTES_MAX;

/// How long a link code a new device shows accepts a grant: 10 minutes.
pub const LINK_SESSION_TTL_MS: i64 = 10 * 60 * 1000;
