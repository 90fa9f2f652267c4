//! The connection as the app watches it: `Status`, its reasons, the relay's codes and device list.
//!
//! Mirrors `tandem_online::status` and the transport's `ErrorCode`,
//! `CloseReason` and `DeviceInfo`. Times cross as ms since the Unix epoch.
//! The non-exhaustive Rust enums map to enums with one extra `Unknown`
//! variant (a case added after this build of the bindings); the tests map
//! every case that exists today.

use std::time::UNIX_EPOCH;

use tandem_online as o;
use tandem_transport as t;

use crate::model::Platform;

/// The connection state.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Status {
    /// Where the link to the relay is.
    pub link: Link,
    /// The relay address the current connection uses or is trying (one of
    /// the configured ones); `None` while offline.
    pub relay: Option<String>,
    /// Everything pushed and everything at the relay merged, on the current
    /// connection.
    pub in_step: bool,
    /// Set when the device stopped connecting because retrying cannot help;
    /// `set_online(true)` tries again.
    pub stopped: Option<StopReason>,
    /// The last failure of a connection attempt or a connection, and when
    /// the device tries again. Cleared by a login.
    pub last_error: Option<LastError>,
    /// Set while the device waits at a relay log entry it cannot open yet
    /// (a sealed envelope: it holds no account key, or does not know the
    /// sealing device): which entry and why, in words.
    pub waiting_for_key: Option<String>,
    /// Set while the device waits at a relay log entry it refused: a
    /// sealed envelope tampered with on the way (`tampered` says how), or
    /// an entry it cannot read. Nothing of it merged; the device fetches
    /// it again later.
    pub refused_entry: Option<RefusedEntry>,
}

/// A relay log entry the device refused.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RefusedEntry {
    /// Its position in the relay's log.
    pub seq: u64,
    /// How it was tampered with: `bad_signature`, `does_not_decrypt`,
    /// `bad_body` or `chain_fork`; `None` for an entry this build cannot
    /// read.
    pub tampered: Option<String>,
    /// Why it was refused, in words.
    pub error: String,
}

impl From<&o::RefusedEntry> for RefusedEntry {
    fn from(value: &o::RefusedEntry) -> Self {
        use tandem_engine::delta::Tamper;
        RefusedEntry {
            seq: value.seq,
            tampered: value.tamper.map(|tamper| {
                match tamper {
                    Tamper::BadSignature => "bad_signature",
                    Tamper::DoesNotDecrypt => "does_not_decrypt",
                    Tamper::BadBody => "bad_body",
                    Tamper::ChainFork => "chain_fork",
                    _ => "unknown",
                }
                .to_owned()
            }),
            error: value.error.clone(),
        }
    }
}

impl From<&o::Status> for Status {
    fn from(value: &o::Status) -> Self {
        Status {
            link: value.link.into(),
            relay: value.relay.clone(),
            in_step: value.in_step,
            stopped: value.stopped.as_ref().map(StopReason::from),
            last_error: value.last_error.as_ref().map(LastError::from),
            waiting_for_key: value
                .waiting_for_key
                .as_ref()
                .map(|entry| format!("relay log entry {}: {}", entry.seq, entry.reason)),
            refused_entry: value.refused_entry.as_ref().map(RefusedEntry::from),
        }
    }
}

/// Where the link to the relay is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Link {
    /// No connection: none asked for, stopped, or waiting to retry.
    Offline,
    /// Resolving the relay's address and opening a TCP connection.
    Connecting,
    /// Connected; waiting for the relay to accept the login.
    LoggingIn,
    /// Logged in: syncing, or in step.
    Connected,
    /// A state this build of the bindings does not know.
    Unknown,
}

impl From<o::Link> for Link {
    fn from(value: o::Link) -> Self {
        match value {
            o::Link::Offline => Link::Offline,
            o::Link::Connecting => Link::Connecting,
            o::Link::LoggingIn => Link::LoggingIn,
            o::Link::Connected => Link::Connected,
            _ => Link::Unknown,
        }
    }
}

/// Why the device stopped connecting.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum StopReason {
    /// This device was forced offline, for `reason`. All reasons but a ban
    /// revoke its enrollment: `relogin` with a new login token.
    Kicked { reason: OfflineReason },
    /// The relay refused the login with a code a retry cannot fix; `reason`
    /// says why the enrollment was revoked (for `CredentialsRevoked`), and
    /// `devices` lists the account's devices (for `TooManyDevices`).
    Refused {
        code: ErrorCode,
        text: String,
        reason: Option<OfflineReason>,
        devices: Vec<DeviceInfo>,
    },
    /// This device cannot start a session: its name, platform or token
    /// breaks a wire limit.
    Config { details: String },
    /// The device's own store failed before a connection could start.
    Store { details: String },
    /// A relay address cannot be used (empty list, too many, another
    /// scheme, `wss://`); `details` names the address and its place.
    Address { details: String },
    /// A reason this build of the bindings does not know.
    Unknown { details: String },
}

impl From<&o::StopReason> for StopReason {
    fn from(value: &o::StopReason) -> Self {
        match value {
            o::StopReason::Kicked(reason) => StopReason::Kicked {
                reason: reason.into(),
            },
            o::StopReason::Refused {
                code,
                text,
                reason,
                devices,
            } => StopReason::Refused {
                code: (*code).into(),
                text: text.clone(),
                reason: reason.as_ref().map(Into::into),
                devices: devices.iter().map(Into::into).collect(),
            },
            o::StopReason::Config(error) => StopReason::Config {
                details: error.to_string(),
            },
            o::StopReason::Store(error) => StopReason::Store {
                details: error.to_string(),
            },
            o::StopReason::Address(error) => StopReason::Address {
                details: error.to_string(),
            },
            other => StopReason::Unknown {
                details: other.to_string(),
            },
        }
    }
}

/// The last failure of a connection attempt or a connection.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LastError {
    /// The relay address the attempt used.
    pub relay: String,
    /// What failed.
    pub error: LinkError,
    /// Failed attempts in a row, this one included.
    pub attempt: u32,
    /// When it failed, in ms since the Unix epoch (system clock).
    pub at_ms: i64,
    /// How long after `at_ms` the device tries again; `None` when it does not.
    pub retry_in_ms: Option<u64>,
    /// The whole failure in words.
    pub text: String,
}

impl From<&o::LastError> for LastError {
    fn from(value: &o::LastError) -> Self {
        let at_ms = value
            .at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        LastError {
            relay: value.relay.clone(),
            error: (&value.error).into(),
            attempt: value.attempt,
            at_ms,
            retry_in_ms: value.retry_in_ms,
            text: value.to_string(),
        }
    }
}

/// What failed on the way to the relay, or on a connection to it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum LinkError {
    /// The TCP connection could not be made; `kind` is the OS error kind.
    Connect { kind: String, details: String },
    /// The TCP connection was made but the WebSocket upgrade failed (a
    /// `ws://` address): not a relay's WebSocket listener, or a busy relay
    /// (HTTP 503). `status` is the HTTP status, if one was answered.
    Handshake {
        status: Option<u16>,
        details: String,
    },
    /// No answer within the connect timeout.
    ConnectTimedOut { after_ms: u64 },
    /// The relay refused something with an error code.
    Relay { code: ErrorCode, text: String },
    /// Reading from or writing to the connection failed.
    Io { kind: String, details: String },
    /// The session ended.
    Closed { reason: CloseReason },
    /// Syncing failed on this device; the connection is started over.
    Sync { details: String },
    /// A failure this build of the bindings does not know.
    Unknown { details: String },
}

impl From<&o::LinkError> for LinkError {
    fn from(value: &o::LinkError) -> Self {
        match value {
            o::LinkError::Connect { kind, message } => LinkError::Connect {
                kind: format!("{kind:?}"),
                details: message.clone(),
            },
            o::LinkError::Handshake { status, message } => LinkError::Handshake {
                status: *status,
                details: message.clone(),
            },
            o::LinkError::ConnectTimedOut { after_ms } => LinkError::ConnectTimedOut {
                after_ms: *after_ms,
            },
            o::LinkError::Relay { code, text } => LinkError::Relay {
                code: (*code).into(),
                text: text.clone(),
            },
            o::LinkError::Io { kind, message } => LinkError::Io {
                kind: format!("{kind:?}"),
                details: message.clone(),
            },
            o::LinkError::Closed(reason) => LinkError::Closed {
                reason: reason.into(),
            },
            o::LinkError::Sync(error) => LinkError::Sync {
                details: error.to_string(),
            },
            other => LinkError::Unknown {
                details: other.to_string(),
            },
        }
    }
}

/// Why a session closed.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum CloseReason {
    /// The relay sent a fatal error.
    RelayError { code: ErrorCode },
    /// This device was forced offline, for `reason`.
    Kicked { reason: OfflineReason },
    /// The relay broke the protocol.
    ProtocolViolation { reason: String },
    /// The handshake or a ping went unanswered.
    Timeout,
    /// The connection ended.
    TransportClosed,
    /// This device closed it.
    Local,
    /// A reason this build of the bindings does not know.
    Unknown { details: String },
}

impl From<&t::CloseReason> for CloseReason {
    fn from(value: &t::CloseReason) -> Self {
        match value {
            t::CloseReason::RelayError { code } => CloseReason::RelayError {
                code: (*code).into(),
            },
            t::CloseReason::Kicked(reason) => CloseReason::Kicked {
                reason: reason.into(),
            },
            t::CloseReason::ProtocolViolation { reason } => CloseReason::ProtocolViolation {
                reason: reason.clone(),
            },
            t::CloseReason::Timeout => CloseReason::Timeout,
            t::CloseReason::TransportClosed => CloseReason::TransportClosed,
            t::CloseReason::Local => CloseReason::Local,
            other => CloseReason::Unknown {
                details: format!("{other:?}"),
            },
        }
    }
}

/// The relay's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ErrorCode {
    UnsupportedVersion,
    FrameBeforeHello,
    DuplicateHello,
    /// The token is forged, malformed, or for another account.
    Unauthorized,
    TokenExpired,
    /// This device's credentials were revoked by a kick.
    CredentialsRevoked,
    TooManyDevices,
    Malformed,
    FrameTooLarge,
    TooManyDeltas,
    DeltaTooLarge,
    PayloadTooLarge,
    ContentIdMismatch,
    UnexpectedFrame,
    /// The device named by a kick or payload is not one of this account's.
    NotFound,
    InvalidRequest,
    PayloadQueueFull,
    StoreUnavailable,
    ShuttingDown,
    /// The login token was used already (by another device, or after the
    /// enrollment it made was revoked).
    LoginTokenUsed,
    /// The device is not enrolled: it logs in with a login token.
    NotEnrolled,
    /// The device id is enrolled with another key.
    KeyMismatch,
    /// The login proof does not verify.
    BadProof,
    AccountBanned,
    AccountRemoved,
    /// An account token of protocol 1: log in with a login token.
    AccountTokenRetired,
    HandshakeTimeout,
    TooManyConnections,
    /// Not allowed on this connection (a manage connection's limits).
    NotAllowed,
    /// The enrollment expired: log in again with a login token.
    CredentialsExpired,
    /// A code this build does not know, by number.
    Unknown {
        code: u16,
    },
}

impl From<t::ErrorCode> for ErrorCode {
    fn from(value: t::ErrorCode) -> Self {
        use t::ErrorCode as C;
        match value {
            C::UnsupportedVersion => ErrorCode::UnsupportedVersion,
            C::FrameBeforeHello => ErrorCode::FrameBeforeHello,
            C::DuplicateHello => ErrorCode::DuplicateHello,
            C::Unauthorized => ErrorCode::Unauthorized,
            C::TokenExpired => ErrorCode::TokenExpired,
            C::CredentialsRevoked => ErrorCode::CredentialsRevoked,
            C::TooManyDevices => ErrorCode::TooManyDevices,
            C::Malformed => ErrorCode::Malformed,
            C::FrameTooLarge => ErrorCode::FrameTooLarge,
            C::TooManyDeltas => ErrorCode::TooManyDeltas,
            C::DeltaTooLarge => ErrorCode::DeltaTooLarge,
            C::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            C::ContentIdMismatch => ErrorCode::ContentIdMismatch,
            C::UnexpectedFrame => ErrorCode::UnexpectedFrame,
            C::NotFound => ErrorCode::NotFound,
            C::InvalidRequest => ErrorCode::InvalidRequest,
            C::PayloadQueueFull => ErrorCode::PayloadQueueFull,
            C::StoreUnavailable => ErrorCode::StoreUnavailable,
            C::ShuttingDown => ErrorCode::ShuttingDown,
            C::LoginTokenUsed => ErrorCode::LoginTokenUsed,
            C::NotEnrolled => ErrorCode::NotEnrolled,
            C::KeyMismatch => ErrorCode::KeyMismatch,
            C::BadProof => ErrorCode::BadProof,
            C::AccountBanned => ErrorCode::AccountBanned,
            C::AccountRemoved => ErrorCode::AccountRemoved,
            C::AccountTokenRetired => ErrorCode::AccountTokenRetired,
            C::HandshakeTimeout => ErrorCode::HandshakeTimeout,
            C::TooManyConnections => ErrorCode::TooManyConnections,
            C::NotAllowed => ErrorCode::NotAllowed,
            C::CredentialsExpired => ErrorCode::CredentialsExpired,
            C::Unknown(code) => ErrorCode::Unknown { code },
            other => ErrorCode::Unknown { code: other.into() },
        }
    }
}

/// A device of the account as the relay lists it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DeviceInfo {
    /// 32 hex characters.
    pub id: String,
    /// The name the device gave at its last login.
    pub name: String,
    /// The platform the device gave at its last login.
    pub platform: Platform,
    /// When the device first logged in, in ms since the Unix epoch.
    pub first_login_ms: u64,
    /// When the relay last heard from the device.
    pub last_seen_ms: u64,
    /// Whether the device has a connection to the relay right now.
    pub online: bool,
    /// Where its credentials stand.
    pub enrollment: EnrollmentState,
}

/// A device as a reason names it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DeviceRef {
    /// 32 hex characters.
    pub id: String,
    /// Its name at its latest login.
    pub name: String,
    /// Its platform at its latest login.
    pub platform: Platform,
}

impl From<&t::DeviceRef> for DeviceRef {
    fn from(value: &t::DeviceRef) -> Self {
        DeviceRef {
            id: value.id.to_hex(),
            name: value.name.clone(),
            platform: (&value.platform).into(),
        }
    }
}

/// Why a device was forced offline, or why its credentials no longer log
/// it in. All but the account-wide ones (banned, removed) revoke the
/// device's enrollment.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum OfflineReason {
    /// Another device of the account (or one holding a manage token) kicked
    /// this one.
    KickedByDevice { by: DeviceRef },
    /// The device limit made room for a newer login.
    Displaced { by: DeviceRef },
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
    /// A reason this build of the bindings does not know.
    Unknown { details: String },
}

impl From<&t::OfflineReason> for OfflineReason {
    fn from(value: &t::OfflineReason) -> Self {
        use t::OfflineReason as R;
        match value {
            R::KickedByDevice { by } => OfflineReason::KickedByDevice { by: by.into() },
            R::Displaced { by } => OfflineReason::Displaced { by: by.into() },
            R::LoggedOut => OfflineReason::LoggedOut,
            R::RevokedByOperator => OfflineReason::RevokedByOperator,
            R::AllCredentialsRevoked => OfflineReason::AllCredentialsRevoked,
            R::AccountRemoved => OfflineReason::AccountRemoved,
            R::AccountBanned => OfflineReason::AccountBanned,
            other => OfflineReason::Unknown {
                details: other.to_string(),
            },
        }
    }
}

/// Where a device's credentials stand, as the relay lists it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum EnrollmentState {
    /// Never enrolled with a key (a device of protocol 1).
    NotEnrolled,
    /// Enrolled; its key logs it in until `expires_at_ms`.
    Active { expires_at_ms: u64 },
    /// Not renewed in time: it logs in again with a login token.
    Expired { at_ms: u64 },
    /// Revoked: it logs in again only with a new login token.
    Revoked { reason: OfflineReason, at_ms: u64 },
    /// A state this build of the bindings does not know.
    Unknown { details: String },
}

impl From<&t::EnrollmentState> for EnrollmentState {
    fn from(value: &t::EnrollmentState) -> Self {
        use t::EnrollmentState as S;
        match value {
            S::NotEnrolled => EnrollmentState::NotEnrolled,
            S::Active { expires_at_ms } => EnrollmentState::Active {
                expires_at_ms: *expires_at_ms,
            },
            S::Expired { at_ms } => EnrollmentState::Expired { at_ms: *at_ms },
            S::Revoked { reason, at_ms } => EnrollmentState::Revoked {
                reason: reason.into(),
                at_ms: *at_ms,
            },
            other => EnrollmentState::Unknown {
                details: format!("{other:?}"),
            },
        }
    }
}

impl From<&t::frame::DeviceInfo> for DeviceInfo {
    fn from(value: &t::frame::DeviceInfo) -> Self {
        DeviceInfo {
            id: value.id.to_hex(),
            name: value.name.clone(),
            platform: (&value.platform).into(),
            first_login_ms: value.first_login_ms,
            last_seen_ms: value.last_seen_ms,
            online: value.online,
            enrollment: (&value.enrollment).into(),
        }
    }
}

/// What `wait_status` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum StatusCondition {
    /// Logged in.
    Connected,
    /// Logged in, everything pushed and everything at the relay merged.
    InStep,
    /// Stopped for good (kicked, refused): see `Status::stopped`.
    Stopped,
    /// No connection (offline, stopped or waiting to retry).
    Offline,
}

impl StatusCondition {
    pub(crate) fn holds(self, status: &o::Status) -> bool {
        match self {
            StatusCondition::Connected => status.is_connected(),
            StatusCondition::InStep => status.is_connected() && status.in_step,
            StatusCondition::Stopped => status.stopped.is_some(),
            StatusCondition::Offline => status.link == o::Link::Offline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_stops_and_handshake_failures_have_their_variants() {
        let error = o::parse_relays(&["127.0.0.1:1", "ftp://x"]).unwrap_err();
        let stop = StopReason::from(&o::StopReason::Address(error.clone()));
        assert_eq!(
            stop,
            StopReason::Address {
                details: error.to_string()
            }
        );
        assert!(error.to_string().contains("2 of 2"), "{error}");
        let link = LinkError::from(&o::LinkError::Handshake {
            status: Some(503),
            message: "busy".into(),
        });
        assert_eq!(
            link,
            LinkError::Handshake {
                status: Some(503),
                details: "busy".into()
            }
        );
    }

    #[test]
    fn every_kind_of_tampering_has_its_name() {
        use tandem_engine::delta::Tamper;
        let named = |tamper| {
            RefusedEntry::from(&o::RefusedEntry {
                seq: u64::MAX,
                tamper,
                error: "refused".into(),
            })
        };
        let names: Vec<Option<String>> = [
            Some(Tamper::BadSignature),
            Some(Tamper::DoesNotDecrypt),
            Some(Tamper::BadBody),
            Some(Tamper::ChainFork),
            None,
        ]
        .into_iter()
        .map(|tamper| named(tamper).tampered)
        .collect();
        assert_eq!(
            names,
            [
                Some("bad_signature".to_owned()),
                Some("does_not_decrypt".to_owned()),
                Some("bad_body".to_owned()),
                Some("chain_fork".to_owned()),
                None
            ]
        );
        assert_eq!(named(None).seq, u64::MAX);
    }

    #[test]
    fn every_error_code_has_its_variant_and_unknown_ones_keep_their_number() {
        for number in 0..=u16::MAX {
            let code = t::ErrorCode::from(number);
            let ours = ErrorCode::from(code);
            match code {
                t::ErrorCode::Unknown(n) => {
                    assert_eq!(ours, ErrorCode::Unknown { code: n })
                }
                _ => assert!(!matches!(ours, ErrorCode::Unknown { .. }), "{code:?}"),
            }
        }
    }

    #[test]
    fn every_close_reason_and_link_has_its_variant() {
        for reason in [
            t::CloseReason::RelayError {
                code: t::ErrorCode::Unauthorized,
            },
            t::CloseReason::Kicked(t::OfflineReason::LoggedOut),
            t::CloseReason::ProtocolViolation { reason: "x".into() },
            t::CloseReason::Timeout,
            t::CloseReason::TransportClosed,
            t::CloseReason::Local,
        ] {
            assert!(!matches!(
                CloseReason::from(&reason),
                CloseReason::Unknown { .. }
            ));
        }
        for link in [
            o::Link::Offline,
            o::Link::Connecting,
            o::Link::LoggingIn,
            o::Link::Connected,
        ] {
            assert_ne!(Link::from(link), Link::Unknown);
        }
    }
}
