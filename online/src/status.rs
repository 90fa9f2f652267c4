//! The connection state as the app watches it: [`Status`], where the link
//! is, why it last failed ([`LastError`]) and why it stopped for good
//! ([`StopReason`]), all typed.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tandem_engine::delta::Tamper;
use tandem_engine::sync::SyncError;
use tandem_engine::{BlockedEntry, StoreError};
use tandem_transport::client::ConfigError;
use tandem_transport::{CloseReason, DeviceId, DeviceInfo, ErrorCode, OfflineReason, Refusal};

use crate::config::RelaysError;

/// The connection state, to read or to wait on (see
/// [`OnlineDevice::status`](crate::OnlineDevice::status)).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Status {
    /// Where the link to the relay is.
    pub link: Link,
    /// The relay address the current connection uses, or the one it is
    /// trying, as configured (one of
    /// [`OnlineConfig::relays`](crate::OnlineConfig::relays)); `None`
    /// while offline.
    pub relay: Option<String>,
    /// Everything pushed and everything at the relay merged, on the
    /// current connection.
    pub in_step: bool,
    /// Set when the device stopped connecting because retrying cannot
    /// help; it stays offline until
    /// [`OnlineDevice::set_online`](crate::OnlineDevice::set_online)`(true)`
    /// asks it to try again. Cleared by that, and by a login.
    pub stopped: Option<StopReason>,
    /// The last failure of a connection attempt or of a connection, and
    /// when the device tries again. Cleared by a login.
    pub last_error: Option<LastError>,
    /// The relay log entry this device cannot open yet (a sealed envelope,
    /// and it holds no account key, or does not know its origin): it
    /// merged everything before it and waits there; link the device.
    /// Cleared once a merge passes it.
    pub waiting_for_key: Option<BlockedEntry>,
    /// The relay log entry this device refused
    /// ([`SyncEvent::EntryRefused`](tandem_engine::sync::SyncEvent::EntryRefused)):
    /// a sealed envelope tampered with, or an entry it cannot read. It
    /// merged everything before it, waits there and fetches it again
    /// later. Cleared once a merge passes it.
    pub refused_entry: Option<RefusedEntry>,
}

/// A relay log entry refused, as [`Status::refused_entry`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedEntry {
    /// Its position in the relay's log.
    pub seq: u64,
    /// How it was tampered with, when it was.
    pub tamper: Option<Tamper>,
    /// Why it was refused, in words.
    pub error: String,
}

impl Status {
    /// Whether a connection to the relay is logged in now.
    pub fn is_connected(&self) -> bool {
        self.link == Link::Connected
    }

    /// The device that kicked (or displaced) this one, if that is why it
    /// stopped.
    pub fn kicked_by(&self) -> Option<DeviceId> {
        match &self.stopped {
            Some(StopReason::Kicked(reason)) => reason.by().map(|by| by.id),
            _ => None,
        }
    }

    /// Whether the device stopped because its credentials no longer log it
    /// in (kicked, displaced, logged out, revoked, expired, not enrolled):
    /// [`OnlineDevice::relogin`](crate::OnlineDevice::relogin) with a new
    /// login token is what helps.
    pub fn needs_login(&self) -> bool {
        self.stopped.as_ref().is_some_and(StopReason::needs_login)
    }
}

/// Where the link to the relay is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Link {
    /// No connection: the app asked for none, the device stopped, or it
    /// waits to retry ([`LastError::retry_in_ms`]).
    #[default]
    Offline,
    /// Resolving the relay's address and opening a TCP connection (and,
    /// for a `ws://` relay, the WebSocket upgrade).
    Connecting,
    /// Connected; `Hello` sent, the relay's answer not yet in.
    LoggingIn,
    /// Logged in: syncing, or in step.
    Connected,
}

/// Why the device stopped connecting: a retry with the same credentials
/// and config cannot help.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StopReason {
    /// This device was forced offline: kicked by a device (which one),
    /// displaced by the device limit (by whom), logged out, revoked by the
    /// operator, every credential revoked, the account banned or removed.
    /// All but a ban revoke its enrollment.
    Kicked(OfflineReason),
    /// The relay refused the login with a code a retry cannot fix: a used,
    /// expired, forged or retired login token, a revoked or expired
    /// enrollment (`reason` says why it was revoked), another key, too
    /// many devices (`devices` lists them), a banned or removed account,
    /// another protocol version.
    Refused {
        /// The relay's code.
        code: ErrorCode,
        /// The relay's explanation, in words.
        text: String,
        /// Why the enrollment was revoked, for
        /// [`ErrorCode::CredentialsRevoked`].
        reason: Option<OfflineReason>,
        /// The account's devices, for [`ErrorCode::TooManyDevices`].
        devices: Vec<DeviceInfo>,
    },
    /// This device cannot start a session: its name, platform or token
    /// breaks a wire limit.
    Config(ConfigError),
    /// The device's own store failed before a connection could start (its
    /// relay cursor could not be read).
    Store(Arc<StoreError>),
    /// [`OnlineConfig::relays`](crate::OnlineConfig::relays) is not a list
    /// of relay addresses this build can reach: empty, too long, or an
    /// address (named, with its place) that is not `host:port` or
    /// `ws://host[:port][/path]`, or is `wss://` (TLS is not built).
    Address(RelaysError),
}

impl StopReason {
    /// Whether this stop means the device's credentials no longer log it
    /// in (kicked, displaced, logged out, revoked, expired, not enrolled, a
    /// used or expired login token): a new login token is what helps.
    pub fn needs_login(&self) -> bool {
        match self {
            StopReason::Kicked(reason) => !matches!(reason, OfflineReason::AccountBanned),
            StopReason::Refused { code, .. } => matches!(
                code,
                ErrorCode::CredentialsRevoked
                    | ErrorCode::CredentialsExpired
                    | ErrorCode::NotEnrolled
                    | ErrorCode::LoginTokenUsed
                    | ErrorCode::TokenExpired
                    | ErrorCode::Unauthorized
                    | ErrorCode::AccountTokenRetired
            ),
            _ => false,
        }
    }

    /// The stop a refused login means, unless a retry can help (the relay
    /// was busy).
    pub fn from_refusal(refusal: &Refusal) -> Option<StopReason> {
        (!refusal.code.retry_can_help()).then(|| StopReason::Refused {
            code: refusal.code,
            text: refusal.text.clone(),
            reason: refusal.reason.clone(),
            devices: refusal.devices.clone(),
        })
    }

    /// The stop a relay error means, if it means one: refusals that
    /// reconnecting with the same credentials cannot fix. Anything else
    /// (the relay shutting down, busy, a store hiccup) is retried with
    /// backoff.
    pub fn from_relay_error(code: ErrorCode, text: &str) -> Option<StopReason> {
        let final_ = matches!(
            code,
            ErrorCode::UnsupportedVersion
                | ErrorCode::Unauthorized
                | ErrorCode::TokenExpired
                | ErrorCode::CredentialsRevoked
                | ErrorCode::TooManyDevices
                | ErrorCode::LoginTokenUsed
                | ErrorCode::NotEnrolled
                | ErrorCode::KeyMismatch
                | ErrorCode::BadProof
                | ErrorCode::AccountBanned
                | ErrorCode::AccountRemoved
                | ErrorCode::AccountTokenRetired
                | ErrorCode::CredentialsExpired
        );
        final_.then(|| StopReason::Refused {
            code,
            text: text.to_owned(),
            reason: None,
            devices: Vec::new(),
        })
    }

    /// A stable snake_case name: the offline reason's or the refusal's
    /// code, `config`, `store` or `address`.
    pub fn as_str(&self) -> &'static str {
        match self {
            StopReason::Kicked(reason) => reason.as_str(),
            StopReason::Refused { code, .. } => code.as_str(),
            StopReason::Config(_) => "config",
            StopReason::Store(_) => "store",
            StopReason::Address(_) => "address",
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Kicked(reason) => write!(f, "{reason}"),
            StopReason::Refused { code, text, .. } => {
                write!(f, "refused by the relay ({code}): {text}")
            }
            StopReason::Config(error) => write!(f, "cannot start a session: {error}"),
            StopReason::Store(error) => write!(f, "the device's store failed: {error}"),
            StopReason::Address(error) => write!(f, "cannot reach the relay: {error}"),
        }
    }
}

/// The last failure of a connection attempt or a connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LastError {
    /// The relay address the attempt used, as configured.
    pub relay: String,
    /// What failed.
    pub error: LinkError,
    /// Failed attempts in a row, this one included (1 for the first);
    /// a login starts the count over.
    pub attempt: u32,
    /// When it failed, by the system clock.
    pub at: SystemTime,
    /// How long after `at` the device tries again; `None` when it does not
    /// (it stopped, went offline, or the connection lives on).
    pub retry_in_ms: Option<u64>,
}

impl LastError {
    /// When the device tries again, by the system clock, if it does (and
    /// the time is representable).
    pub fn retry_at(&self) -> Option<SystemTime> {
        self.retry_in_ms
            .and_then(|ms| self.at.checked_add(Duration::from_millis(ms)))
    }
}

impl fmt::Display for LastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.relay, self.error)
    }
}

/// What failed on the way to the relay, or on a connection to it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The TCP connection could not be made (refused, unreachable, the
    /// name did not resolve).
    #[error("cannot connect: {message}")]
    Connect {
        /// The operating system's kind of error.
        kind: io::ErrorKind,
        /// The operating system's words.
        message: String,
    },
    /// The TCP connection was made but the WebSocket upgrade failed (a
    /// `ws://` relay address): the server is not a relay's WebSocket
    /// listener, or refused the upgrade (a busy relay answers HTTP 503).
    #[error("the WebSocket upgrade failed: {message}")]
    Handshake {
        /// The HTTP status the server answered, if it answered one.
        status: Option<u16>,
        /// What went wrong, in words.
        message: String,
    },
    /// The connection attempt got no answer within
    /// [`OnlineConfig::connect_timeout_ms`](crate::OnlineConfig::connect_timeout_ms).
    #[error("no answer within {after_ms} ms")]
    ConnectTimedOut {
        /// The timeout that passed.
        after_ms: u64,
    },
    /// The relay refused something with an error code. Fatal codes end the
    /// connection (and a retry follows); others (a kick of an unknown
    /// device) leave it open.
    #[error("the relay refused ({code}): {text}")]
    Relay {
        /// The relay's code.
        code: ErrorCode,
        /// The relay's explanation, in words.
        text: String,
    },
    /// Reading from or writing to the connection failed.
    #[error("the connection failed: {message}")]
    Io {
        /// The operating system's kind of error.
        kind: io::ErrorKind,
        /// The operating system's words.
        message: String,
    },
    /// The session ended: the relay closed the connection, stopped
    /// answering pings, or broke the protocol.
    #[error("{}", closed_text(.0))]
    Closed(CloseReason),
    /// Syncing failed on this device (its store, or a page it could not
    /// merge); the connection is started over.
    #[error("syncing failed: {0}")]
    Sync(Arc<SyncError>),
}

impl LinkError {
    pub(crate) fn connect(error: &io::Error) -> LinkError {
        LinkError::Connect {
            kind: error.kind(),
            message: error.to_string(),
        }
    }

    pub(crate) fn io(error: &io::Error) -> LinkError {
        LinkError::Io {
            kind: error.kind(),
            message: error.to_string(),
        }
    }
}

fn closed_text(reason: &CloseReason) -> String {
    match reason {
        CloseReason::RelayError { code } => format!("the relay closed the connection ({code})"),
        CloseReason::Kicked(reason) => reason.to_string(),
        CloseReason::Refused { code, .. } => format!("the relay refused the login ({code})"),
        CloseReason::ProtocolViolation { reason } => {
            format!("the relay broke the protocol: {reason}")
        }
        CloseReason::Timeout => "the relay stopped answering".into(),
        CloseReason::TransportClosed => "the relay closed the connection".into(),
        CloseReason::Local => "closed by this device".into(),
        other => format!("the session ended: {other:?}"),
    }
}
