//! Why a call to an [`OnlineDevice`](crate::OnlineDevice) failed.

use tandem_engine::{LinkingError, OpError};

/// Why a call to an [`OnlineDevice`](crate::OnlineDevice) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The device thread has stopped.
    #[error("the device has shut down")]
    ShutDown,
    /// The call needs the relay and the device is not logged in (offline,
    /// connecting, or waiting to retry).
    #[error("not connected to the relay")]
    NotConnected,
    /// The engine refused or failed the operation (or, for a query, its store
    /// failed).
    #[error(transparent)]
    Op(#[from] OpError),
    /// The connection refused the command because it closed meanwhile.
    #[error("session: {0}")]
    Session(#[from] tandem_transport::CommandError),
    /// Linking refused or failed (nothing was stored).
    #[error(transparent)]
    Linking(#[from] LinkingError),
}
