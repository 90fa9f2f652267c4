//! A relay on a loopback port for tests and benchmarks (feature `harness`):
//! started on the caller's tokio runtime, stopped within a bound, with
//! login tokens for any account.
//!
//! This is the one copy that `relay/tests`, the cross-crate tests and
//! `tandem-bench` share. It reports failures as [`HarnessError`] rather than
//! panicking, so a benchmark can report a failed scenario and go on; tests
//! `expect` them.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tandem_transport::{AccountId, Entropy, OsEntropy, RelayAddress};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::secret::Secret;
use crate::server::{CountersHandle, ServeError, StartError};
use crate::token::Purpose;
use crate::{Relay, RelayConfig, StoreLocation};

/// How long [`LoopbackRelay::stop`] waits for the relay to finish: telling
/// every connection, waiting for them to close, and the store's last
/// commit.
pub const STOP_WAIT_MAX: Duration = Duration::from_secs(10);

/// How long a token from [`LoopbackRelay::token`] is valid, in seconds:
/// longer than any test or benchmark runs.
pub const TOKEN_VALID_S: u64 = 3_600;

/// The wall clock in ms since the Unix epoch, as the relay reads it.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A fresh login token for `account`: a random id, valid for
/// `valid_for_s` from now.
pub fn login_token(
    secret: &Secret,
    account: &AccountId,
    purpose: Purpose,
    valid_for_s: u64,
) -> String {
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut id = [0u8; 16];
    OsEntropy.fill(&mut id);
    crate::token::issue_login(
        secret,
        account,
        purpose,
        now_s.saturating_add(valid_for_s),
        id,
    )
}

/// A config listening on `127.0.0.1:port` (0 picks a free port) with the
/// default limits, without a WebSocket listener.
pub fn loopback(store: StoreLocation, secret: Secret, port: u16) -> RelayConfig {
    RelayConfig::new(SocketAddr::from(([127, 0, 0, 1], port)), store, secret)
}

/// [`loopback`] on a free port, with a WebSocket listener on another free
/// loopback port too.
pub fn loopback_with_ws(store: StoreLocation, secret: Secret) -> RelayConfig {
    let mut config = loopback(store, secret, 0);
    config.listen_ws_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config
}

/// Why the harness could not start or stop a relay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// The relay could not start (address in use, store unreadable).
    #[error(transparent)]
    Start(#[from] StartError),
    /// The relay stopped with an error of its own.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The relay's task panicked or was cancelled.
    #[error("the relay task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The relay did not finish within [`STOP_WAIT_MAX`] of being told to.
    #[error("the relay did not stop within {STOP_WAIT_MAX:?}")]
    StopTimeout,
}

/// A relay served by a task on the current tokio runtime until
/// [`LoopbackRelay::stop`]. Dropping it without `stop` leaves the task to
/// end with its runtime.
#[derive(Debug)]
pub struct LoopbackRelay {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its WebSocket listener listens, when the config has one.
    pub ws_addr: Option<SocketAddr>,
    /// Where its metrics and health listener listens, when the config has
    /// one.
    pub metrics_addr: Option<SocketAddr>,
    /// The key its tokens are made with.
    pub secret: Secret,
    /// What it refused and accepted so far.
    pub counters: CountersHandle,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl LoopbackRelay {
    /// Binds `config` and starts serving it.
    pub async fn start(config: RelayConfig) -> Result<LoopbackRelay, HarnessError> {
        Self::start_with(config, |relay| relay).await
    }

    /// Binds `config`, lets `setup` adjust the bound relay (an offline-push
    /// hook, for example), and starts serving it.
    pub async fn start_with(
        config: RelayConfig,
        setup: impl FnOnce(Relay) -> Relay,
    ) -> Result<LoopbackRelay, HarnessError> {
        let secret = config.secret.clone();
        let relay = setup(Relay::bind(config).await?);
        let addr = relay.local_addr();
        let ws_addr = relay.local_ws_addr();
        let metrics_addr = relay.local_metrics_addr();
        let counters = relay.counters();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(relay.serve(async {
            // A dropped sender stops the relay too.
            let _ = stopped.await;
        }));
        Ok(LoopbackRelay {
            addr,
            ws_addr,
            metrics_addr,
            secret,
            counters,
            stop,
            task,
        })
    }

    /// The TCP listener as a device names it (`127.0.0.1:port`).
    pub fn tcp_address(&self) -> RelayAddress {
        RelayAddress::Tcp {
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
        }
    }

    /// The WebSocket listener as a device names it (`ws://127.0.0.1:port/`),
    /// when the config has one.
    pub fn ws_address(&self) -> Option<RelayAddress> {
        self.ws_addr.map(|addr| RelayAddress::WebSocket {
            host: addr.ip().to_string(),
            port: addr.port(),
            path: "/".into(),
        })
    }

    /// A fresh login token for `account`, valid for [`TOKEN_VALID_S`]:
    /// it enrolls one device.
    pub fn token(&self, account: &AccountId) -> String {
        self.token_valid_for(account, TOKEN_VALID_S)
    }

    /// A fresh login token for `account` that expires `valid_for_s` seconds
    /// from now.
    pub fn token_valid_for(&self, account: &AccountId, valid_for_s: u64) -> String {
        login_token(&self.secret, account, Purpose::Login, valid_for_s)
    }

    /// A fresh login token with the "manage" purpose: it lists and kicks
    /// the account's devices without being admitted.
    pub fn manage_token(&self, account: &AccountId) -> String {
        login_token(&self.secret, account, Purpose::Manage, TOKEN_VALID_S)
    }

    /// An operator's connection to this relay.
    pub async fn admin(&self) -> Result<crate::admin::AdminClient, crate::admin::AdminError> {
        crate::admin::AdminClient::connect(self.addr, &self.secret).await
    }

    /// Tells the relay to shut down and waits, at most [`STOP_WAIT_MAX`],
    /// until it has.
    pub async fn stop(self) -> Result<(), HarnessError> {
        // The relay may already have stopped by itself; its task says why.
        let _ = self.stop.send(());
        tokio::time::timeout(STOP_WAIT_MAX, self.task)
            .await
            .map_err(|_| HarnessError::StopTimeout)???;
        Ok(())
    }
}
