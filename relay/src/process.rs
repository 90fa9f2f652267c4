//! A relay as a whole process: the runtime and the serve loop that
//! `tandem relay` runs, shared with `tandem-bench` so that the relay it
//! measures is the product's.

use std::future::Future;
use std::net::SocketAddr;

use crate::{Relay, RelayConfig, RelayError};

/// Why [`run`] stopped other than by its shutdown signal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The tokio runtime could not be started.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The relay could not start, or stopped unexpectedly.
    #[error(transparent)]
    Relay(#[from] RelayError),
}

/// Where a started relay listens (the ports chosen for port 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listening {
    /// The TCP listener.
    pub tcp: SocketAddr,
    /// The WebSocket listener, when configured.
    pub websocket: Option<SocketAddr>,
    /// The metrics and health listener, when configured.
    pub metrics: Option<SocketAddr>,
}

/// Serves `config` on a multi-threaded tokio runtime (one worker per core)
/// until `shutdown` completes, blocking the calling thread. `listening` is
/// called with the bound addresses before the first connection is
/// accepted.
pub fn run<S>(
    config: RelayConfig,
    listening: impl FnOnce(Listening),
    shutdown: S,
) -> Result<(), RunError>
where
    S: Future<Output = ()>,
{
    let runtime = tokio::runtime::Runtime::new().map_err(RunError::Runtime)?;
    runtime.block_on(async {
        let relay = Relay::bind(config).await.map_err(RelayError::from)?;
        listening(Listening {
            tcp: relay.local_addr(),
            websocket: relay.local_ws_addr(),
            metrics: relay.local_metrics_addr(),
        });
        relay.serve(shutdown).await.map_err(RelayError::from)?;
        Ok(())
    })
}
