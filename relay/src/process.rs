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

/// Serves `config` on a multi-threaded tokio runtime (one worker per core)
/// until `shutdown` completes, blocking the calling thread. `listening` is
/// called with the bound address (the port chosen for port 0) before the
/// first connection is accepted.
pub fn run<S>(
    config: RelayConfig,
    listening: impl FnOnce(SocketAddr),
    shutdown: S,
) -> Result<(), RunError>
where
    S: Future<Output = ()>,
{
    let runtime = tokio::runtime::Runtime::new().map_err(RunError::Runtime)?;
    runtime.block_on(async {
        let relay = Relay::bind(config).await.map_err(RelayError::from)?;
        listening(relay.local_addr());
        relay.serve(shutdown).await.map_err(RelayError::from)?;
        Ok(())
    })
}
