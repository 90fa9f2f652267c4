//! The connection state as the app watches it: [`Status`], where the link
//! is, why it last failed ([`LastError`]) and why it stopped for good
//! ([`StopReason`]), all typed.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tandem_engine::sync::SyncError;
use tandem_engine::StoreError;
use tandem_transport::client::ConfigError;
use tandem_transport::{CloseReason, DeviceId, ErrorCode};

/// The connection state, to read or to wait on (see
/// [`OnlineDevice::status`](crate::OnlineDevice::status)).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Status {
    /// Where the link to the relay is.
    pub link: Link,
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
}

impl Status {
    /// Whether a connection to the relay is logged in now.
    pub fn is_connected(&self) -> bool {
        self.link == Link::Connected
    }

    /// The device that kicked this one, if that is why it stopped.
    pub fn kicked_by(&self) -> Option<DeviceId> {
        match &self.stopped {
            Some(StopReason::Kicked { by, .. }) => Some(*by),
            _ => None,
        }
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
    /// Resolving the relay's address and opening a TCP connection.
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
    /// Another device of the account kicked this one (or the relay did, to
    /// make room for a newer login). Its credentials are revoked.
    Kicked {
        /// The device that kicked this one.
        by: DeviceId,
        /// The reason given, in words.
        reason: String,
    },
    /// The relay refused the login with a code a retry cannot fix: a bad,
    /// expired or revoked token, too many devices, another protocol
    /// version.
    Refused {
        /// The relay's code.
        code: ErrorCode,
        /// The relay's explanation, in words.
        text: String,
    },
    /// This device cannot start a session: its name, platform or token
    /// breaks a wire limit.
    Config(ConfigError),
    /// The device's own store failed before a connection could start (its
    /// relay cursor could not be read).
    Store(Arc<StoreError>),
}

impl StopReason {
    /// The stop a relay error means, if it means one: refusals that
    /// reconnecting with the same credentials cannot fix. Anything else
    /// (the relay shutting down, a store hiccup) is retried with backoff.
    pub fn from_relay_error(code: ErrorCode, text: &str) -> Option<StopReason> {
        let final_ = matches!(
            code,
            ErrorCode::UnsupportedVersion
                | ErrorCode::Unauthorized
                | ErrorCode::TokenExpired
                | ErrorCode::CredentialsRevoked
                | ErrorCode::TooManyDevices
        );
        final_.then(|| StopReason::Refused {
            code,
            text: text.to_owned(),
        })
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Kicked { by, reason } => write!(f, "kicked by device {by}: {reason}"),
            StopReason::Refused { code, text } => {
                write!(f, "refused by the relay ({code}): {text}")
            }
            StopReason::Config(error) => write!(f, "cannot start a session: {error}"),
            StopReason::Store(error) => write!(f, "the device's store failed: {error}"),
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
        CloseReason::Kicked => "kicked".into(),
        CloseReason::ProtocolViolation { reason } => {
            format!("the relay broke the protocol: {reason}")
        }
        CloseReason::Timeout => "the relay stopped answering".into(),
        CloseReason::TransportClosed => "the relay closed the connection".into(),
        CloseReason::Local => "closed by this device".into(),
        other => format!("the session ended: {other:?}"),
    }
}
