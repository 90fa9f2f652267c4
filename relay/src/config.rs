//! How a relay is set up.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::secret::Secret;

/// Default for [`RelayConfig::devices_online_max`].
pub const DEVICES_ONLINE_MAX_DEFAULT: usize = 4;
/// Default for [`RelayConfig::queue_frames_max`].
pub const QUEUE_FRAMES_MAX_DEFAULT: usize = 256;
/// Default for [`RelayConfig::connections_max`]: logged-in connections.
pub const CONNECTIONS_MAX_DEFAULT: usize = 1024;
/// Default for [`RelayConfig::handshakes_max`]: connections that have not
/// logged in yet, a cap of their own so they can never keep logged-in
/// devices out.
pub const HANDSHAKES_MAX_DEFAULT: usize = 256;
/// Default for [`RelayConfig::handshakes_per_address_max`].
pub const HANDSHAKES_PER_ADDRESS_MAX_DEFAULT: usize = 32;
/// Default for [`RelayConfig::handshake_deadline_ms`]: a device on a slow
/// phone network logs in well within it; an idle connection is gone after
/// it.
pub const HANDSHAKE_DEADLINE_MS_DEFAULT: u64 = 10_000;
/// Default for [`RelayConfig::idle_timeout_ms`]: three of the client's
/// default ping intervals.
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 60_000;
/// Default for [`RelayConfig::payloads_pending_max`].
pub const PAYLOADS_PENDING_MAX_DEFAULT: usize = 1024;
/// Default for [`RelayConfig::enrollment_ttl_ms`]: an enrollment lasts 30
/// days after the device's last login or renewal.
pub const ENROLLMENT_TTL_MS_DEFAULT: u64 = 30 * 24 * 3600 * 1000;
/// Default for [`RelayConfig::enrollment_renew_interval_ms`]: an online
/// device's enrollment is renewed once a day.
pub const ENROLLMENT_RENEW_INTERVAL_MS_DEFAULT: u64 = 24 * 3600 * 1000;

/// Where the relay keeps its state.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreLocation {
    /// In memory: lost when the process ends (tests, demos).
    Memory,
    /// A SQLite file, created if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL database, named by a URL
    /// (`postgresql://user:password@host:port/db`) or libpq's `key=value`
    /// form, migrated at start. Several relay nodes may serve one database;
    /// README's "Running several relay nodes" says what is shared and what
    /// is still per node.
    Postgres(String),
}

impl std::fmt::Debug for StoreLocation {
    // By hand, so a PostgreSQL password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Memory => f.write_str("Memory"),
            StoreLocation::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            StoreLocation::Postgres(_) => f.write_str("Postgres(<url hidden>)"),
        }
    }
}

/// What to do when a device logs in while its account already has as many
/// devices online as the limits allow (per account, or per platform).
///
/// Every device forced offline to make room is displaced for good: its
/// enrollment is revoked (reason: displaced by the newcomer, named), so it
/// logs in again only with a new login token. Were it allowed back with its
/// key, two devices over the limit would displace each other forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Refuse the newcomer with `TooManyDevices` and the device list, so
    /// that it can kick one from outside with a login token. The default:
    /// the user chooses which device goes, and nothing is forced offline
    /// behind anyone's back.
    RefuseNew,
    /// Displace the online device that has been idle longest (on the
    /// newcomer's platform first, when the platform limit is what is
    /// exceeded).
    KickLongestIdle,
    /// The newest login replaces the earliest login on the same platform
    /// (the reference SDK's default); when no device of that platform is
    /// online and the account limit is exceeded, the earliest login of any
    /// platform.
    ReplaceSamePlatform,
}

/// When the offline-push hook hears of new deltas. A device whose
/// enrollment is revoked (kicked, displaced, logged out) never does: it is
/// logged out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OfflinePushPolicy {
    /// Every offline device of the account, on every push that stores new
    /// deltas, whether or not another of its devices is online. The default:
    /// each device's own notification badge stays right.
    #[default]
    EachOfflineDevice,
    /// The offline devices, but only while none of the account's devices
    /// other than the pusher is online: the user is away from every screen
    /// (the reference SDK's "notify when all devices are offline").
    WhenAllOthersOffline,
}

/// Everything a relay needs to start.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The address to listen on; port 0 picks a free port.
    pub listen_addr: SocketAddr,
    /// The address of the WebSocket listener, if any (devices reach it as
    /// `ws://host:port`; one binary message per frame, any path); port 0
    /// picks a free port. It shares every limit with the TCP listener:
    /// the handshake slots and deadline (the HTTP upgrade included), the
    /// logged-in connections, the frame size.
    pub listen_ws_addr: Option<SocketAddr>,
    /// The address of the HTTP listener for `GET /metrics` (Prometheus text
    /// format) and `GET /health` (200 or 503 with the reasons), if any;
    /// port 0 picks a free port. Meant for the operator's network only: it
    /// names no account, but shows the relay's load.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the state lives.
    pub store: StoreLocation,
    /// The key login tokens and admin proofs are verified with.
    pub secret: Secret,
    /// Devices of one account online at once (at least 1).
    pub devices_online_max: usize,
    /// Devices of one account and one platform online at once; `None` for
    /// no per-platform limit.
    pub devices_online_per_platform_max: Option<usize>,
    /// What happens past the limits.
    pub overflow_policy: OverflowPolicy,
    /// When the offline-push hook hears of new deltas.
    pub offline_push_policy: OfflinePushPolicy,
    /// Frames waiting to be written to one connection. When live deltas find
    /// the queue full they are dropped and the device is told to pull.
    pub queue_frames_max: usize,
    /// Logged-in connections (devices, management and operator
    /// connections) served at once; a login past it is refused with
    /// `TooManyConnections`.
    pub connections_max: usize,
    /// Connections that have not logged in yet; more are refused at once
    /// with `TooManyConnections`.
    pub handshakes_max: usize,
    /// Connections that have not logged in yet, from one IP address.
    pub handshakes_per_address_max: usize,
    /// How long a connection may take to log in before it is closed with
    /// `HandshakeTimeout`.
    pub handshake_deadline_ms: u64,
    /// Payloads waiting for one recipient device.
    pub payloads_pending_max: usize,
    /// A logged-in connection that sends nothing (not even a ping) for this
    /// long is closed, so a vanished device does not hold an online slot
    /// forever.
    pub idle_timeout_ms: u64,
    /// How long an enrollment lasts after a login or renewal.
    pub enrollment_ttl_ms: u64,
    /// How often an online device's enrollment is renewed.
    pub enrollment_renew_interval_ms: u64,
}

impl RelayConfig {
    /// A config with the default limits, without a WebSocket listener.
    pub fn new(listen_addr: SocketAddr, store: StoreLocation, secret: Secret) -> Self {
        RelayConfig {
            listen_addr,
            listen_ws_addr: None,
            metrics_addr: None,
            store,
            secret,
            devices_online_max: DEVICES_ONLINE_MAX_DEFAULT,
            devices_online_per_platform_max: None,
            overflow_policy: OverflowPolicy::RefuseNew,
            offline_push_policy: OfflinePushPolicy::EachOfflineDevice,
            queue_frames_max: QUEUE_FRAMES_MAX_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            handshakes_max: HANDSHAKES_MAX_DEFAULT,
            handshakes_per_address_max: HANDSHAKES_PER_ADDRESS_MAX_DEFAULT,
            handshake_deadline_ms: HANDSHAKE_DEADLINE_MS_DEFAULT,
            payloads_pending_max: PAYLOADS_PENDING_MAX_DEFAULT,
            idle_timeout_ms: IDLE_TIMEOUT_MS_DEFAULT,
            enrollment_ttl_ms: ENROLLMENT_TTL_MS_DEFAULT,
            enrollment_renew_interval_ms: ENROLLMENT_RENEW_INTERVAL_MS_DEFAULT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_never_reaches_debug_output() {
        let location = StoreLocation::Postgres("postgresql://relay:hunter2@db:5432/tandem".into());
        let shown = format!("{location:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(shown, "Postgres(<url hidden>)");
        assert_eq!(
            format!("{:?}", StoreLocation::Sqlite("r.db".into())),
            "Sqlite(\"r.db\")"
        );
    }
}
