//! What the handles send the device thread: one [`Command`] per call.

use tandem_engine::op::Op;
use tandem_engine::{Engine, Performed};
use tandem_transport::frame::{DeviceInfo, PayloadId};
use tandem_transport::DeviceId;
use tokio::sync::oneshot;

use crate::error::DeviceError;

/// Where the device thread answers a command.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, DeviceError>>;

/// A call of an [`OnlineDevice`](crate::OnlineDevice) method, on its way to
/// the device thread.
pub(crate) enum Command {
    /// Perform a local operation, then push it when connected.
    Perform(Op, Reply<Performed>),
    /// Run a read-only function on the engine (it replies itself).
    Read(Box<dyn FnOnce(&Engine) + Send>),
    /// Run a function that writes through the engine (it replies itself).
    Write(Box<dyn FnOnce(&mut Engine) + Send>),
    /// Run a function that may change the keys the engine holds (linking):
    /// then a connection waiting before an envelope it could not open
    /// reads from there again, and what waits is sealed and pushed.
    Keys(Box<dyn FnOnce(&mut Engine) + Send>),
    /// Ask the relay for the account's devices.
    Devices(Reply<Vec<DeviceInfo>>),
    /// Kick one other device.
    Kick(DeviceId, Reply<()>),
    /// Kick every other device.
    KickAllOthers(Reply<()>),
    /// Kick every device, this one included.
    KickAll(Reply<()>),
    /// Log this device out.
    Logout(Reply<()>),
    /// Log in again with a new login token (after a kick or an expiry).
    Relogin(String),
    /// Send a payload to another device.
    SendToDevice(DeviceId, Vec<u8>, Reply<PayloadId>),
    /// Go online (`true`) or offline.
    SetOnline(bool),
    /// Stop the thread and hand the engine back.
    Shutdown(oneshot::Sender<Engine>),
}
