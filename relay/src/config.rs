//! How a relay is set up.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::secret::Secret;

/// Default for [`RelayConfig::devices_online_max`].
pub const DEVICES_ONLINE_MAX_DEFAULT: usize = 4;
/// Default for [`RelayConfig::queue_frames_max`].
pub const QUEUE_FRAMES_MAX_DEFAULT: usize = 256;
/// Default for [`RelayConfig::connections_max`].
pub const CONNECTIONS_MAX_DEFAULT: usize = 1024;
/// Default for [`RelayConfig::idle_timeout_ms`]: three of the client's
/// default ping intervals.
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 60_000;
/// Default for [`RelayConfig::payloads_pending_max`].
pub const PAYLOADS_PENDING_MAX_DEFAULT: usize = 1024;

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

/// What to do when a device logs in while its account already has
/// [`RelayConfig::devices_online_max`] devices online.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Refuse the newcomer with a `TooManyDevices` error.
    RefuseNew,
    /// Kick the online device that has been idle longest (reason "too many
    /// devices") and let the newcomer in. Its credentials are not revoked:
    /// it did nothing wrong, and may log in again later.
    KickLongestIdle,
}

/// Everything a relay needs to start.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The address to listen on; port 0 picks a free port.
    pub listen_addr: SocketAddr,
    /// Where the state lives.
    pub store: StoreLocation,
    /// The key tokens are verified with.
    pub secret: Secret,
    /// Devices of one account online at once.
    pub devices_online_max: usize,
    /// What happens past `devices_online_max`.
    pub overflow_policy: OverflowPolicy,
    /// Frames waiting to be written to one connection. When live deltas find
    /// the queue full they are dropped and the device is told to pull.
    pub queue_frames_max: usize,
    /// Connections served at once; more wait to be accepted.
    pub connections_max: usize,
    /// Payloads waiting for one recipient device.
    pub payloads_pending_max: usize,
    /// A connection that sends nothing (not even a ping) for this long is
    /// closed, so a vanished device does not hold an online slot forever.
    pub idle_timeout_ms: u64,
}

impl RelayConfig {
    /// A config with the default limits.
    pub fn new(listen_addr: SocketAddr, store: StoreLocation, secret: Secret) -> Self {
        RelayConfig {
            listen_addr,
            store,
            secret,
            devices_online_max: DEVICES_ONLINE_MAX_DEFAULT,
            overflow_policy: OverflowPolicy::RefuseNew,
            queue_frames_max: QUEUE_FRAMES_MAX_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            payloads_pending_max: PAYLOADS_PENDING_MAX_DEFAULT,
            idle_timeout_ms: IDLE_TIMEOUT_MS_DEFAULT,
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
