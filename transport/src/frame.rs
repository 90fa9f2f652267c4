//! The frames two peers exchange, and the values inside them.
//!
//! A frame travels as a 4-byte big-endian length followed by the postcard
//! encoding of [`Frame`] (see [`crate::codec`]). Postcard encodes an enum
//! variant by its index, so the order of [`Frame`]'s variants *is* the wire
//! format: new variants go at the end, existing ones never move. `Hello` and
//! `Error` are the first two variants and their layout is frozen across major
//! versions, so a peer of any version can read the other's `Hello` and answer
//! an unsupported one with a readable `Error`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, DeviceId, Platform};

/// A protocol version. Peers with different majors refuse each other; a
/// different minor only adds frames or codes that the older side never sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolVersion {
    /// Incompatible changes bump this.
    pub major: u16,
    /// Compatible additions bump this.
    pub minor: u16,
}

/// The version this crate speaks.
pub const PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion { major: 1, minor: 0 };

/// Bytes in a [`ContentId`].
pub const CONTENT_ID_BYTES: usize = 32;

/// A delta's content id: the blake3 hash of its bytes. The relay stores a
/// delta once per account per content id, which makes `Push` idempotent.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ContentId(pub [u8; CONTENT_ID_BYTES]);

impl ContentId {
    /// The content id of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        ContentId(*blake3::hash(bytes).as_bytes())
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId(")?;
        for byte in &self.0[..8] {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "…)")
    }
}

/// Bytes in a [`PayloadId`].
pub const PAYLOAD_ID_BYTES: usize = 16;

/// The id of a device-addressed payload, chosen by the sender (128 random
/// bits). Resending a payload with the same id is idempotent, so a sender can
/// retry after a reconnect without the recipient getting it twice.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct PayloadId(pub [u8; PAYLOAD_ID_BYTES]);

/// An opaque delta as a device pushes it: its bytes and their content id.
///
/// Transport and relay never look inside the bytes. The fields are private so
/// that a `WireDelta` built in this process always has a matching content id; one
/// decoded from the wire is checked by the session validators instead.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireDelta {
    content_id: ContentId,
    #[serde(with = "wire_bytes")]
    bytes: Vec<u8>,
}

/// Why [`WireDelta::from_parts`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("content id {claimed:?} does not match the bytes, whose id is {actual:?}")]
pub struct ContentIdMismatch {
    /// The id that came with the bytes.
    pub claimed: ContentId,
    /// The id of the bytes.
    pub actual: ContentId,
}

impl WireDelta {
    /// Wraps `bytes`, computing their content id.
    pub fn new(bytes: Vec<u8>) -> Self {
        WireDelta {
            content_id: ContentId::of(&bytes),
            bytes,
        }
    }

    /// Rebuilds a delta from a stored id and bytes, checking that they match.
    pub fn from_parts(content_id: ContentId, bytes: Vec<u8>) -> Result<Self, ContentIdMismatch> {
        let actual = ContentId::of(&bytes);
        if actual != content_id {
            return Err(ContentIdMismatch {
                claimed: content_id,
                actual,
            });
        }
        Ok(WireDelta { content_id, bytes })
    }

    /// The delta's content id.
    pub fn content_id(&self) -> ContentId {
        self.content_id
    }

    /// The delta's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The delta's bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Whether the content id matches the bytes; false only for a delta
    /// decoded from the wire.
    pub fn is_consistent(&self) -> bool {
        ContentId::of(&self.bytes) == self.content_id
    }
}

impl fmt::Debug for WireDelta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireDelta")
            .field("content_id", &self.content_id)
            .field("bytes_len", &self.bytes.len())
            .finish()
    }
}

/// A delta as it sits in an account's log at the relay.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogDelta {
    /// Its position in the account's log; the first delta is 1.
    pub seq: u64,
    /// The device that pushed it first.
    pub origin: DeviceId,
    /// The blake3 hash of `bytes`.
    pub content_id: ContentId,
    /// The opaque bytes.
    #[serde(with = "wire_bytes")]
    pub bytes: Vec<u8>,
}

impl fmt::Debug for LogDelta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogDelta")
            .field("seq", &self.seq)
            .field("origin", &self.origin)
            .field("content_id", &self.content_id)
            .field("bytes_len", &self.bytes.len())
            .finish()
    }
}

/// One device of an account, as the relay knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The device's id.
    pub id: DeviceId,
    /// The name the device gave at its last login.
    pub name: String,
    /// The platform the device gave at its last login.
    pub platform: Platform,
    /// When the device first logged in, in ms since the Unix epoch.
    pub first_login_ms: u64,
    /// When the relay last heard from the device, in ms since the Unix epoch.
    pub last_seen_ms: u64,
    /// Whether the device has a connection to the relay right now.
    pub online: bool,
}

/// The first frame a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the client speaks.
    pub version: ProtocolVersion,
    /// The account the client logs into; every later frame on this connection
    /// is about this account's log and devices, and no frame can name
    /// another.
    pub account: AccountId,
    /// The device logging in.
    pub device: DeviceId,
    /// The device's display name.
    pub device_name: String,
    /// The device's platform.
    pub platform: Platform,
    /// The token proving the client may use `account`.
    pub token: String,
    /// The highest seq the device has persisted; recorded as its cursor.
    pub resume_cursor: u64,
}

/// The relay's answer to an accepted [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version the relay speaks.
    pub version: ProtocolVersion,
    /// The device that just logged in, as the relay recorded it.
    pub device: DeviceInfo,
    /// Every device of the account, this one included.
    pub devices: Vec<DeviceInfo>,
    /// The seq of the newest delta in the account's log (0 when empty). A
    /// client whose cursor is below this should pull.
    pub head_seq: u64,
}

/// One entry of a [`Frame::PushAck`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushAckEntry {
    /// The pushed delta's content id.
    pub content_id: ContentId,
    /// The seq the relay gave it: the existing seq when the account's log
    /// already held this content id.
    pub seq: u64,
}

/// Why a peer refused something, as carried by [`Frame::Error`].
///
/// Encoded as a u16 so a peer can read codes newer than itself: unknown
/// numbers decode as [`ErrorCode::Unknown`] instead of failing the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "u16", into = "u16")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The peer's major protocol version is not ours.
    UnsupportedVersion,
    /// A frame other than `Hello` came before the handshake finished.
    FrameBeforeHello,
    /// A second `Hello` came on a connection already logged in.
    DuplicateHello,
    /// The token is forged, malformed, or for another account.
    Unauthorized,
    /// The token was valid but has expired.
    TokenExpired,
    /// This device's credentials were revoked by a kick; a new token works.
    CredentialsRevoked,
    /// The account already has as many devices online (or registered) as the
    /// relay allows, and the relay's policy is to refuse the newcomer.
    TooManyDevices,
    /// Bytes that do not decode as a frame, or a frame with invalid fields.
    Malformed,
    /// A length prefix above [`crate::limits::FRAME_BYTES_MAX`].
    FrameTooLarge,
    /// More deltas in a `Push` than [`crate::limits::DELTAS_PER_PUSH_MAX`].
    TooManyDeltas,
    /// A delta above [`crate::limits::DELTA_BYTES_MAX`].
    DeltaTooLarge,
    /// A payload above [`crate::limits::PAYLOAD_BYTES_MAX`].
    PayloadTooLarge,
    /// A delta whose content id is not the blake3 hash of its bytes.
    ContentIdMismatch,
    /// A frame only the other side may send.
    UnexpectedFrame,
    /// The device named by a `Kick` or payload is not one of this account's.
    NotFound,
    /// A request that is well formed but makes no sense (kicking yourself).
    InvalidRequest,
    /// The recipient already has as many payloads waiting as the relay keeps.
    PayloadQueueFull,
    /// The relay's store failed; nothing from the request was kept.
    StoreUnavailable,
    /// The relay is shutting down.
    ShuttingDown,
    /// A code this build does not know, from a newer peer.
    Unknown(u16),
}

impl ErrorCode {
    /// Whether the sender closes the connection after this error. Only
    /// errors about one request (a kick of an unknown device, a full payload
    /// queue, a store hiccup) leave the connection open.
    pub fn is_fatal(self) -> bool {
        !matches!(
            self,
            ErrorCode::NotFound
                | ErrorCode::InvalidRequest
                | ErrorCode::PayloadQueueFull
                | ErrorCode::StoreUnavailable
        )
    }
}

/// The code's stable snake_case name (`credentials_revoked`), or
/// `unknown_<n>` for a code this build does not know: for logs and messages,
/// never to be parsed.
impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::FrameBeforeHello => "frame_before_hello",
            ErrorCode::DuplicateHello => "duplicate_hello",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::CredentialsRevoked => "credentials_revoked",
            ErrorCode::TooManyDevices => "too_many_devices",
            ErrorCode::Malformed => "malformed",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::TooManyDeltas => "too_many_deltas",
            ErrorCode::DeltaTooLarge => "delta_too_large",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::ContentIdMismatch => "content_id_mismatch",
            ErrorCode::UnexpectedFrame => "unexpected_frame",
            ErrorCode::NotFound => "not_found",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::PayloadQueueFull => "payload_queue_full",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Unknown(code) => return write!(f, "unknown_{code}"),
        };
        f.write_str(name)
    }
}

impl From<u16> for ErrorCode {
    fn from(value: u16) -> Self {
        match value {
            1 => ErrorCode::UnsupportedVersion,
            2 => ErrorCode::FrameBeforeHello,
            3 => ErrorCode::DuplicateHello,
            4 => ErrorCode::Unauthorized,
            5 => ErrorCode::TokenExpired,
            6 => ErrorCode::CredentialsRevoked,
            7 => ErrorCode::TooManyDevices,
            8 => ErrorCode::Malformed,
            9 => ErrorCode::FrameTooLarge,
            10 => ErrorCode::TooManyDeltas,
            11 => ErrorCode::DeltaTooLarge,
            12 => ErrorCode::PayloadTooLarge,
            13 => ErrorCode::ContentIdMismatch,
            14 => ErrorCode::UnexpectedFrame,
            15 => ErrorCode::NotFound,
            16 => ErrorCode::InvalidRequest,
            17 => ErrorCode::PayloadQueueFull,
            18 => ErrorCode::StoreUnavailable,
            19 => ErrorCode::ShuttingDown,
            other => ErrorCode::Unknown(other),
        }
    }
}

impl From<ErrorCode> for u16 {
    fn from(value: ErrorCode) -> Self {
        match value {
            ErrorCode::UnsupportedVersion => 1,
            ErrorCode::FrameBeforeHello => 2,
            ErrorCode::DuplicateHello => 3,
            ErrorCode::Unauthorized => 4,
            ErrorCode::TokenExpired => 5,
            ErrorCode::CredentialsRevoked => 6,
            ErrorCode::TooManyDevices => 7,
            ErrorCode::Malformed => 8,
            ErrorCode::FrameTooLarge => 9,
            ErrorCode::TooManyDeltas => 10,
            ErrorCode::DeltaTooLarge => 11,
            ErrorCode::PayloadTooLarge => 12,
            ErrorCode::ContentIdMismatch => 13,
            ErrorCode::UnexpectedFrame => 14,
            ErrorCode::NotFound => 15,
            ErrorCode::InvalidRequest => 16,
            ErrorCode::PayloadQueueFull => 17,
            ErrorCode::StoreUnavailable => 18,
            ErrorCode::ShuttingDown => 19,
            ErrorCode::Unknown(other) => other,
        }
    }
}

/// Everything that travels between a device and the relay.
///
/// "Client" below is the device, "relay" the server. Variant order is the
/// wire format; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// Client → relay, first: log in.
    Hello(Hello),
    /// Either way: a refusal. A fatal code ([`ErrorCode::is_fatal`]) is the
    /// last frame its sender writes on the connection.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// A human-readable explanation, at most
        /// [`crate::limits::TEXT_BYTES_MAX`] bytes.
        text: String,
    },
    /// Relay → client: the login was accepted.
    Welcome(Welcome),
    /// Client → relay: store these deltas in the account's log.
    Push {
        /// At most [`crate::limits::DELTAS_PER_PUSH_MAX`] deltas.
        deltas: Vec<WireDelta>,
    },
    /// Relay → client: the seq of each pushed delta, in push order.
    PushAck {
        /// One entry per delta of the `Push`.
        entries: Vec<PushAckEntry>,
    },
    /// Client → relay: send the log after `after_seq`.
    Pull {
        /// The highest seq the client already has.
        after_seq: u64,
        /// The most deltas wanted in the answer; clamped to
        /// [`crate::limits::DELTAS_PER_PAGE_MAX`].
        count_max: u32,
    },
    /// Relay → client: one page of the log, in seq order.
    Deltas {
        /// The page.
        deltas: Vec<LogDelta>,
        /// Whether the log holds more after the page's last seq.
        more: bool,
    },
    /// Relay → client: a delta another device just pushed.
    Live(LogDelta),
    /// Relay → client: live deltas were dropped because this connection fell
    /// behind; pull from your cursor to catch up.
    PullNeeded,
    /// Client → relay: everything up to `cursor` is persisted on the device.
    Ack {
        /// The highest seq persisted.
        cursor: u64,
    },
    /// Client → relay: send the account's devices.
    ListDevices,
    /// Relay → client: the account's devices.
    Devices {
        /// Every device of the account.
        devices: Vec<DeviceInfo>,
    },
    /// Client → relay: force one other device of the account offline and
    /// revoke its credentials.
    Kick {
        /// The device to kick.
        device: DeviceId,
    },
    /// Client → relay: kick every other device of the account.
    KickAllOthers,
    /// Relay → client: you were kicked; the connection closes after this.
    Kicked {
        /// The device that kicked you (the relay uses your own id when it
        /// kicked you to enforce the device limit).
        by: DeviceId,
        /// Why, in words.
        reason: String,
    },
    /// Client → relay: hold this payload for another device of the account
    /// until it acknowledges it.
    SendToDevice {
        /// The recipient.
        to: DeviceId,
        /// Chosen by the sender; see [`PayloadId`].
        id: PayloadId,
        /// At most [`crate::limits::PAYLOAD_BYTES_MAX`] bytes.
        #[serde(with = "wire_bytes")]
        bytes: Vec<u8>,
    },
    /// Relay → client: the relay holds the payload and will deliver it.
    PayloadStored {
        /// The payload's id.
        id: PayloadId,
    },
    /// Relay → client: a payload another device sent to this one.
    DeliverPayload {
        /// The sender.
        from: DeviceId,
        /// The payload's id.
        id: PayloadId,
        /// The payload.
        #[serde(with = "wire_bytes")]
        bytes: Vec<u8>,
    },
    /// Client → relay: the payload is handled; forget it.
    PayloadAck {
        /// The payload's id.
        id: PayloadId,
    },
    /// Relay → client: a device of the account logged in or was kicked.
    DeviceListChanged,
    /// Either way: are you there?
    Ping {
        /// Echoed back in the `Pong`.
        nonce: u64,
    },
    /// Either way: the answer to a `Ping`.
    Pong {
        /// The nonce of the `Ping`.
        nonce: u64,
    },
}

impl Frame {
    /// The frame's variant name, for logs and error texts.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello(_) => "Hello",
            Frame::Error { .. } => "Error",
            Frame::Welcome(_) => "Welcome",
            Frame::Push { .. } => "Push",
            Frame::PushAck { .. } => "PushAck",
            Frame::Pull { .. } => "Pull",
            Frame::Deltas { .. } => "Deltas",
            Frame::Live(_) => "Live",
            Frame::PullNeeded => "PullNeeded",
            Frame::Ack { .. } => "Ack",
            Frame::ListDevices => "ListDevices",
            Frame::Devices { .. } => "Devices",
            Frame::Kick { .. } => "Kick",
            Frame::KickAllOthers => "KickAllOthers",
            Frame::Kicked { .. } => "Kicked",
            Frame::SendToDevice { .. } => "SendToDevice",
            Frame::PayloadStored { .. } => "PayloadStored",
            Frame::DeliverPayload { .. } => "DeliverPayload",
            Frame::PayloadAck { .. } => "PayloadAck",
            Frame::DeviceListChanged => "DeviceListChanged",
            Frame::Ping { .. } => "Ping",
            Frame::Pong { .. } => "Pong",
        }
    }

    /// An `Error` frame, its text cut to the limit on a character boundary.
    pub fn error(code: ErrorCode, text: impl Into<String>) -> Frame {
        Frame::Error {
            code,
            text: truncate_text(text.into()),
        }
    }
}

/// Cuts `text` to at most [`crate::limits::TEXT_BYTES_MAX`] bytes without
/// splitting a character.
pub fn truncate_text(mut text: String) -> String {
    let max = crate::limits::TEXT_BYTES_MAX;
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Byte buffers on the wire: postcard writes a byte string exactly as it
/// writes a sequence of u8 (a varint length, then the bytes), so this changes
/// no byte of the format. It only makes serde copy the buffer in one go
/// instead of element by element, which matters for megabyte deltas.
mod wire_bytes {
    use serde::de::{Deserializer, Error, SeqAccess, Visitor};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            // Bounded by the frame size: a frame body is at most
            // FRAME_BYTES_MAX bytes, and each element takes at least one.
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(byte) = seq.next_element()? {
                out.push(byte);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_through_u16_and_unknown_numbers_survive() {
        for n in 0..=40u16 {
            let code = ErrorCode::from(n);
            assert_eq!(u16::from(code), n);
        }
        assert_eq!(ErrorCode::from(999), ErrorCode::Unknown(999));
    }

    #[test]
    fn delta_from_parts_checks_the_content_id() {
        let good = WireDelta::new(b"abc".to_vec());
        assert!(WireDelta::from_parts(good.content_id(), b"abc".to_vec()).is_ok());
        let err = WireDelta::from_parts(good.content_id(), b"abd".to_vec()).unwrap_err();
        assert_eq!(err.claimed, good.content_id());
        assert_eq!(err.actual, ContentId::of(b"abd"));
    }

    #[test]
    fn error_text_is_cut_on_a_char_boundary() {
        let max = crate::limits::TEXT_BYTES_MAX;
        assert_eq!(truncate_text("a".repeat(max - 1)).len(), max - 1);
        assert_eq!(truncate_text("a".repeat(max)).len(), max);
        assert_eq!(truncate_text("a".repeat(max + 1)).len(), max);
        // "é" is two bytes: an odd limit would split it.
        let cut = truncate_text("é".repeat(max));
        assert!(cut.len() <= max && cut.chars().all(|c| c == 'é'));
    }
}
