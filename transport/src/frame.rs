//! The frames two peers exchange, and the values inside them.
//!
//! A frame travels as a 4-byte big-endian length followed by the postcard
//! encoding of [`Frame`] (see [`crate::codec`]). Postcard encodes an enum
//! variant by its index, so the order of [`Frame`]'s variants *is* the wire
//! format: new variants go at the end, existing ones never move. `Hello` and
//! `Error` are the first two variants and their layout is frozen across major
//! versions, so a peer of any version can read the other's `Hello` and answer
//! an unsupported one with a readable `Error`.
//!
//! Protocol 2 kept that promise: its `Hello` has protocol 1's layout byte
//! for byte (the field that carried the account token carries the optional
//! login token, an empty string for none), so a relay of protocol 1 reads a
//! protocol 2 `Hello` and answers `UnsupportedVersion`, and so does a relay
//! of protocol 2 for a device of protocol 1. What protocol 2 added to the
//! login (the device's public key and its signature) travels in the `Proof`
//! that answers the relay's `Challenge`. `transport/tests/snapshots.rs`
//! decodes both directions.
//!
//! The handshake:
//!
//! ```text
//! device                                   relay
//!   Hello {version, account, device, name,  ─▶
//!          platform, login token?, cursor}
//!                                          ◀─  Challenge {nonce}
//!   Proof {public key, signature}           ─▶   (signature over version,
//!                                                 account, device, key,
//!                                                 nonce, token: see auth.rs)
//!                                          ◀─  Welcome | Managing | Refused
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::auth::{ChallengeNonce, DevicePublicKey, ProofSignature};
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
pub const PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion { major: 2, minor: 0 };

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

/// A device named in a reason: who kicked, who displaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRef {
    /// The device's id.
    pub id: DeviceId,
    /// Its name at its latest login.
    pub name: String,
    /// Its platform at its latest login.
    pub platform: Platform,
}

/// Why a device was forced offline, or why its credentials no longer log
/// it in. Every reason but the account-wide ones (banned, removed) revokes
/// the device's enrollment: it logs in again only with a new login token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum OfflineReason {
    /// Another device of the account (or a device holding a login token for
    /// it, from outside) kicked this one.
    KickedByDevice {
        /// The device that asked for the kick.
        by: DeviceRef,
    },
    /// The device limit made room for a newer login.
    Displaced {
        /// The newcomer.
        by: DeviceRef,
    },
    /// This device logged out.
    LoggedOut,
    /// The relay's operator revoked this device.
    RevokedByOperator,
    /// Every credential of the account was revoked (a password change).
    AllCredentialsRevoked,
    /// The operator removed the account.
    AccountRemoved,
    /// The operator banned the account.
    AccountBanned,
}

impl OfflineReason {
    /// A stable snake_case name, for logs, the CLI and JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            OfflineReason::KickedByDevice { .. } => "kicked_by_device",
            OfflineReason::Displaced { .. } => "displaced_by_limit",
            OfflineReason::LoggedOut => "logged_out",
            OfflineReason::RevokedByOperator => "revoked_by_operator",
            OfflineReason::AllCredentialsRevoked => "all_credentials_revoked",
            OfflineReason::AccountRemoved => "account_removed",
            OfflineReason::AccountBanned => "account_banned",
        }
    }

    /// The device that caused it, when one did.
    pub fn by(&self) -> Option<&DeviceRef> {
        match self {
            OfflineReason::KickedByDevice { by } | OfflineReason::Displaced { by } => Some(by),
            _ => None,
        }
    }
}

impl fmt::Display for OfflineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OfflineReason::KickedByDevice { by } => write!(
                f,
                "kicked by device {} ({}, {})",
                by.id, by.name, by.platform
            ),
            OfflineReason::Displaced { by } => write!(
                f,
                "displaced by the device limit for device {} ({}, {})",
                by.id, by.name, by.platform
            ),
            OfflineReason::LoggedOut => f.write_str("logged out"),
            OfflineReason::RevokedByOperator => f.write_str("revoked by the relay's operator"),
            OfflineReason::AllCredentialsRevoked => {
                f.write_str("every credential of the account was revoked")
            }
            OfflineReason::AccountRemoved => f.write_str("the account was removed"),
            OfflineReason::AccountBanned => f.write_str("the account is banned"),
        }
    }
}

/// Where a device's enrollment stands, as the relay lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EnrollmentState {
    /// Never enrolled with a key: a device known from protocol 1. It logs
    /// in once more with a login token.
    NotEnrolled,
    /// Enrolled; its key logs it in until `expires_at_ms`, renewed while it
    /// is online.
    Active {
        /// When the enrollment expires, in ms since the Unix epoch.
        expires_at_ms: u64,
    },
    /// Enrolled, but not renewed in time: it logs in again with a login
    /// token.
    Expired {
        /// When it expired, in ms since the Unix epoch.
        at_ms: u64,
    },
    /// Revoked: it logs in again only with a new login token.
    Revoked {
        /// Why.
        reason: OfflineReason,
        /// When, in ms since the Unix epoch.
        at_ms: u64,
    },
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
    /// Where its credentials stand.
    pub enrollment: EnrollmentState,
}

impl DeviceInfo {
    /// The device as a reason names it.
    pub fn as_ref(&self) -> DeviceRef {
        DeviceRef {
            id: self.id,
            name: self.name.clone(),
            platform: self.platform.clone(),
        }
    }
}

/// The first frame a client sends.
///
/// Its layout is frozen (see the module docs): new login material goes in
/// [`Frame::Proof`], never here.
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
    /// A login token from the app's auth service: to enroll this device (or
    /// enroll it again after a kick), or, with the "manage" purpose, to list
    /// and kick the account's devices without being admitted. `None` for a
    /// device that is enrolled already. On the wire, an empty string.
    #[serde(with = "optional_text")]
    pub login_token: Option<String>,
    /// The highest seq the device has persisted; recorded as its cursor.
    pub resume_cursor: u64,
}

/// A device's enrollment, as the relay tells it at login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// The id of the login token the device enrolled with.
    pub token_id: [u8; 16],
    /// When it enrolled (with that token), in ms since the Unix epoch.
    pub enrolled_at_ms: u64,
    /// When the enrollment expires unless renewed, in ms since the Unix
    /// epoch. The relay renews it while the device is online.
    pub expires_at_ms: u64,
}

/// The relay's answer to an accepted login.
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
    /// The device's enrollment.
    pub enrollment: Enrollment,
}

/// Why the relay refused a login, in full: the last frame of the
/// connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The refusal, as a code to act on.
    pub code: ErrorCode,
    /// A human-readable explanation, at most
    /// [`crate::limits::TEXT_BYTES_MAX`] bytes.
    pub text: String,
    /// For [`ErrorCode::CredentialsRevoked`], why the enrollment was
    /// revoked (who kicked it, and so on).
    pub reason: Option<OfflineReason>,
    /// For [`ErrorCode::TooManyDevices`], the account's devices, so that
    /// one can be kicked from outside with a login token.
    pub devices: Vec<DeviceInfo>,
}

/// What an operator asks a running relay (after [`Frame::AdminHello`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AdminRequest {
    /// List the account's devices.
    Devices {
        /// The account.
        account: AccountId,
    },
    /// Revoke one device (reason: revoked by the operator).
    Kick {
        /// The account.
        account: AccountId,
        /// The device.
        device: DeviceId,
    },
    /// Revoke every device of the account (a password change).
    RevokeAll {
        /// The account.
        account: AccountId,
    },
    /// Refuse every login of the account until unbanned; online devices
    /// are disconnected. Enrollments are kept.
    Ban {
        /// The account.
        account: AccountId,
    },
    /// Lift a ban.
    Unban {
        /// The account.
        account: AccountId,
    },
    /// Delete the account's log, payloads and devices; its id stays
    /// refused.
    Remove {
        /// The account.
        account: AccountId,
    },
}

/// The relay's answer to an [`AdminRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AdminReply {
    /// The account's devices.
    Devices {
        /// Every device of the account.
        devices: Vec<DeviceInfo>,
    },
    /// Done.
    Done {
        /// Enrollments revoked (or devices removed) by the request.
        devices_revoked: u32,
        /// Connections told and closed.
        connections_closed: u32,
    },
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
    /// The login token is forged, malformed, made with another secret, or
    /// for another account.
    Unauthorized,
    /// The login token was genuine but has expired.
    TokenExpired,
    /// This device's enrollment was revoked (the [`Refusal`] says why); a
    /// new login token enrolls it again.
    CredentialsRevoked,
    /// The account already has as many devices online as the relay allows
    /// (or as many registered as it keeps), and the relay's policy is to
    /// refuse the newcomer. The [`Refusal`] lists the devices.
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
    /// The login token was used already: by another device, or by this one
    /// for an enrollment that was revoked since.
    LoginTokenUsed,
    /// The device has no enrollment (a new device, or one from protocol 1)
    /// and presented no login token.
    NotEnrolled,
    /// The device id is enrolled with another public key; an id can never
    /// be taken over by another key.
    KeyMismatch,
    /// The login proof does not verify: a signature over another
    /// challenge, or by another key.
    BadProof,
    /// The account is banned.
    AccountBanned,
    /// The account was removed.
    AccountRemoved,
    /// An account token of protocol 1 (`t1.…`): log in with a login token.
    AccountTokenRetired,
    /// The handshake was not finished within the relay's deadline.
    HandshakeTimeout,
    /// The relay serves as many connections (or logins in progress, from
    /// this address or in all) as it allows; retry later.
    TooManyConnections,
    /// A request this connection may not make (a management connection
    /// pushing, an admin request from a device).
    NotAllowed,
    /// The device's enrollment expired (it was not online for too long); a
    /// new login token enrolls it again.
    CredentialsExpired,
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

    /// Whether connecting again later, with the same credentials, can
    /// succeed: the relay was busy, restarting or slow. Every other fatal
    /// code needs something to change first (a new login token, a newer
    /// build, a freed device slot, an unban).
    pub fn retry_can_help(self) -> bool {
        matches!(
            self,
            ErrorCode::StoreUnavailable
                | ErrorCode::ShuttingDown
                | ErrorCode::HandshakeTimeout
                | ErrorCode::TooManyConnections
        )
    }

    /// A stable snake_case name, for logs, the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
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
            ErrorCode::LoginTokenUsed => "login_token_used",
            ErrorCode::NotEnrolled => "not_enrolled",
            ErrorCode::KeyMismatch => "key_mismatch",
            ErrorCode::BadProof => "bad_proof",
            ErrorCode::AccountBanned => "account_banned",
            ErrorCode::AccountRemoved => "account_removed",
            ErrorCode::AccountTokenRetired => "account_token_retired",
            ErrorCode::HandshakeTimeout => "handshake_timeout",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::NotAllowed => "not_allowed",
            ErrorCode::CredentialsExpired => "credentials_expired",
            ErrorCode::Unknown(_) => "unknown",
        }
    }
}

/// The code's stable snake_case name (`credentials_revoked`), or
/// `unknown_<n>` for a code this build does not know: for logs and messages,
/// never to be parsed.
impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::Unknown(n) => write!(f, "unknown_{n}"),
            other => f.write_str(other.as_str()),
        }
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
            20 => ErrorCode::LoginTokenUsed,
            21 => ErrorCode::NotEnrolled,
            22 => ErrorCode::KeyMismatch,
            23 => ErrorCode::BadProof,
            24 => ErrorCode::AccountBanned,
            25 => ErrorCode::AccountRemoved,
            26 => ErrorCode::AccountTokenRetired,
            27 => ErrorCode::HandshakeTimeout,
            28 => ErrorCode::TooManyConnections,
            29 => ErrorCode::NotAllowed,
            30 => ErrorCode::CredentialsExpired,
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
            ErrorCode::LoginTokenUsed => 20,
            ErrorCode::NotEnrolled => 21,
            ErrorCode::KeyMismatch => 22,
            ErrorCode::BadProof => 23,
            ErrorCode::AccountBanned => 24,
            ErrorCode::AccountRemoved => 25,
            ErrorCode::AccountTokenRetired => 26,
            ErrorCode::HandshakeTimeout => 27,
            ErrorCode::TooManyConnections => 28,
            ErrorCode::NotAllowed => 29,
            ErrorCode::CredentialsExpired => 30,
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
    /// Relay → client: the login was accepted; the device is online.
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
    /// revoke its enrollment.
    Kick {
        /// The device to kick.
        device: DeviceId,
    },
    /// Client → relay: kick every other device of the account.
    KickAllOthers,
    /// Relay → client: this device was forced offline; the connection
    /// closes after this.
    Kicked {
        /// Why, and who caused it.
        reason: OfflineReason,
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
    /// Relay → client, after `Hello` or `AdminHello`: prove who you are
    /// over these fresh random bytes.
    Challenge {
        /// Never the same twice.
        nonce: ChallengeNonce,
    },
    /// Client → relay: the device's public key and its signature of the
    /// login proof (see [`crate::auth`]).
    Proof {
        /// The key the device id is (or is to be) enrolled with.
        public_key: DevicePublicKey,
        /// The signature of [`crate::auth::login_proof_message`].
        signature: ProofSignature,
    },
    /// Relay → client: the login was refused, and why; the last frame of
    /// the connection.
    Refused(Refusal),
    /// Client → relay: kick every device of the account, this one included
    /// (the reference SDK's `kickAllDevices`).
    KickAll,
    /// Client → relay: log this device out: its enrollment is revoked and
    /// the connection closes.
    Logout,
    /// Relay → client: a login token with the "manage" purpose was
    /// accepted: this connection may list and kick the account's devices,
    /// but is not admitted (it is not online and gets no deltas).
    Managing {
        /// Every device of the account.
        devices: Vec<DeviceInfo>,
    },
    /// Relay → client: the device's enrollment was renewed while online.
    CredentialsRenewed {
        /// The new expiry, in ms since the Unix epoch.
        expires_at_ms: u64,
    },
    /// Operator → relay, first: an operator's connection (see
    /// `tandem admin`). Answered by a `Challenge`.
    AdminHello {
        /// The protocol version the operator's tool speaks.
        version: ProtocolVersion,
    },
    /// Operator → relay: the answer to the challenge, a MAC made with a key
    /// derived from the relay's secret.
    AdminProof {
        /// The MAC.
        mac: [u8; 32],
    },
    /// Relay → operator: the proof was accepted.
    AdminReady,
    /// Operator → relay: one request.
    Admin(AdminRequest),
    /// Relay → operator: its answer.
    AdminReply(AdminReply),
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
            Frame::Challenge { .. } => "Challenge",
            Frame::Proof { .. } => "Proof",
            Frame::Refused(_) => "Refused",
            Frame::KickAll => "KickAll",
            Frame::Logout => "Logout",
            Frame::Managing { .. } => "Managing",
            Frame::CredentialsRenewed { .. } => "CredentialsRenewed",
            Frame::AdminHello { .. } => "AdminHello",
            Frame::AdminProof { .. } => "AdminProof",
            Frame::AdminReady => "AdminReady",
            Frame::Admin(_) => "Admin",
            Frame::AdminReply(_) => "AdminReply",
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

/// An optional text as one string on the wire, empty for `None`: the form
/// that keeps [`Hello`]'s layout that of protocol 1 (see the module docs).
/// `Some("")` is therefore sent as `None`.
mod optional_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        text: &Option<String>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(text.as_deref().unwrap_or(""))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<String>, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok((!text.is_empty()).then_some(text))
    }
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
            // Every known code has a name of its own.
            if !matches!(code, ErrorCode::Unknown(_)) {
                assert_ne!(code.as_str(), "unknown", "{n}");
            }
        }
        assert_eq!(ErrorCode::from(999), ErrorCode::Unknown(999));
        assert_eq!(ErrorCode::from(31), ErrorCode::Unknown(31));
        assert_eq!(ErrorCode::from(30), ErrorCode::CredentialsExpired);
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
