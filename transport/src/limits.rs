//! Every bound the protocol puts on what one peer may send the other.
//!
//! Each limit is checked where bytes enter (the codec for frame size, the
//! session validators for everything inside a frame) and is tested just below,
//! at, and just above its value. A peer that exceeds one gets a typed error,
//! never a crash and never an unbounded allocation.

/// Bytes in one frame body, not counting its 4-byte length prefix.
///
/// A length prefix above this is refused before any of the body is buffered,
/// so a peer cannot make the other side allocate more than this per
/// connection.
pub const FRAME_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Bytes of the length prefix in front of every frame body (u32, big-endian).
pub const FRAME_PREFIX_BYTES: usize = 4;

/// Bytes in one delta. Chosen so that a single delta always fits in a frame
/// with room to spare for the envelope (`Live`, `Deltas`).
pub const DELTA_BYTES_MAX: usize = 1024 * 1024;

/// Deltas in one `Push` frame.
pub const DELTAS_PER_PUSH_MAX: usize = 256;

/// Deltas in one `Deltas` page sent by the relay, and the largest `count_max`
/// a `Pull` may ask for (a larger request is clamped, not refused).
pub const DELTAS_PER_PAGE_MAX: usize = 1024;

/// Delta bytes the relay puts in one `Deltas` page, summed over the page.
///
/// A page stops early when the next delta would pass this, but always holds
/// at least one delta, so a page is never empty while the log has more and
/// always fits in [`FRAME_BYTES_MAX`].
pub const PAGE_BYTES_MAX: usize = 2 * 1024 * 1024;

/// Bytes in one device-addressed payload.
pub const PAYLOAD_BYTES_MAX: usize = 64 * 1024;

/// Bytes (UTF-8) in a device's display name.
pub const DEVICE_NAME_BYTES_MAX: usize = 64;

/// Bytes (UTF-8) in a custom platform name.
pub const PLATFORM_NAME_BYTES_MAX: usize = 32;

/// Bytes in an authentication token.
pub const TOKEN_BYTES_MAX: usize = 256;

/// Bytes (UTF-8) in the free text of an `Error` or `Kicked` frame.
pub const TEXT_BYTES_MAX: usize = 1024;

/// Devices listed in one `Devices` or `Welcome` frame: the most devices one
/// account can have registered at the relay.
pub const DEVICES_PER_ACCOUNT_MAX: usize = 256;

/// The highest relay log position a frame may carry: a delta's `seq`, a
/// `head_seq`, a cursor, a pull's `after_seq`. Both the relay's and the
/// devices' stores keep positions as SQLite integers (`i64`), so a larger
/// one could not be stored; both sessions refuse a frame with one as
/// malformed.
pub const RELAY_SEQ_MAX: u64 = i64::MAX as u64;

/// Bytes in one sealed envelope (format 2), header, ciphertext and
/// signature together: the same bound as [`DELTA_BYTES_MAX`], which the
/// envelope replaces, so that one always fits in a frame.
pub const ENVELOPE_BYTES_MAX: usize = DELTA_BYTES_MAX;

/// Bytes in one snapshot chunk's ciphertext: a snapshot travels and is
/// stored in chunks of at most this.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

/// Bytes in one epoch snapshot, summed over its chunks.
pub const SNAPSHOT_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Chunks in one snapshot: [`SNAPSHOT_BYTES_MAX`] in chunks of
/// [`SNAPSHOT_CHUNK_BYTES`]. A manifest naming more is refused before its
/// hashes are read.
pub const SNAPSHOT_CHUNKS_MAX: usize = SNAPSHOT_BYTES_MAX / SNAPSHOT_CHUNK_BYTES;

/// Bytes in one encoded snapshot manifest: its fixed fields at their
/// longest plus [`SNAPSHOT_CHUNKS_MAX`] hashes fit well below this.
pub const MANIFEST_BYTES_MAX: usize = 16 * 1024;
