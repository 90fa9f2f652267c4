//! The handle the app holds: [`OnlineDevice`], an engine on its own thread.

use tandem_engine::op::Op;
use tandem_engine::sync::SyncEvent;
use tandem_engine::{
    DevicePublicKey, Engine, KeyFingerprint, LinkState, LinkingError, OpError, Performed, ShownCode,
};
use tandem_transport::frame::{DeviceInfo, PayloadId};
use tandem_transport::DeviceId;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::actor::Actor;
use crate::command::{Command, Reply};
use crate::config::OnlineConfig;
use crate::error::DeviceError;
use crate::events::EventStream;
use crate::status::Status;

/// Commands waiting for the device thread, at most.
pub const COMMAND_QUEUE_DEPTH: usize = 64;

/// Sync events buffered for each subscriber before it starts missing some.
pub const EVENT_QUEUE_DEPTH: usize = 1024;

/// An engine on its own thread, online with a relay.
///
/// Every method is answered whatever the connection is doing: local
/// operations and queries at once (a local operation is durable when
/// `perform` returns, and pushed once connected), relay requests
/// ([`devices`](Self::devices), kicks, payloads) with
/// [`DeviceError::NotConnected`] unless logged in. Dropping every handle
/// stops the thread; [`shutdown`](Self::shutdown) also hands the engine
/// back.
pub struct OnlineDevice {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<SyncEvent>,
    status: watch::Receiver<Status>,
    /// The newest journaled event's sequence number.
    journal_head: watch::Receiver<i64>,
    device_id: DeviceId,
}

impl OnlineDevice {
    /// Starts the device thread. It owns the engine until
    /// [`OnlineDevice::shutdown`] hands it back.
    pub fn spawn(engine: Engine, config: OnlineConfig) -> std::io::Result<OnlineDevice> {
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE_DEPTH);
        let (events, _) = broadcast::channel(EVENT_QUEUE_DEPTH);
        let (status_tx, status) = watch::channel(Status::default());
        let (journal_tx, journal_head) = watch::channel(engine.events_head().unwrap_or(0));
        let device_id = engine.device().device_id;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let actor = Actor::new(
            engine,
            config,
            command_rx,
            events.clone(),
            status_tx,
            journal_tx,
        );
        std::thread::Builder::new()
            .name(format!("tandem-device-{}", &device_id.to_hex()[..8]))
            .spawn(move || runtime.block_on(actor.run()))?;
        Ok(OnlineDevice {
            commands,
            events,
            status,
            journal_head,
            device_id,
        })
    }

    /// This device's id, known without a round trip to the device thread.
    pub fn device_id(&self) -> DeviceId {
        self.device_id
    }

    async fn send(&self, command: Command) -> Result<(), DeviceError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| DeviceError::ShutDown)
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, DeviceError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await?;
        rx.await.map_err(|_| DeviceError::ShutDown)?
    }

    /// Performs a local operation (online or not) and pushes it when
    /// connected.
    pub async fn perform(&self, op: Op) -> Result<Performed, DeviceError> {
        self.call(|reply| Command::Perform(op, reply)).await
    }

    /// Runs a read-only function on the engine (queries) and returns its
    /// result.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> T + Send + 'static,
    ) -> Result<T, DeviceError> {
        let (tx, rx) = oneshot::channel();
        let job = Box::new(move |engine: &Engine| {
            // The caller may have stopped waiting; nothing to do then.
            let _ = tx.send(f(engine));
        });
        self.send(Command::Read(job)).await?;
        rx.await.map_err(|_| DeviceError::ShutDown)
    }

    /// The account's devices as the relay knows them, fetched now.
    pub async fn devices(&self) -> Result<Vec<DeviceInfo>, DeviceError> {
        self.call(Command::Devices).await
    }

    /// The ids of the account's other devices.
    pub async fn other_device_ids(&self) -> Result<Vec<DeviceId>, DeviceError> {
        let me = self.device_id;
        Ok(self
            .devices()
            .await?
            .into_iter()
            .map(|d| d.id)
            .filter(|id| *id != me)
            .collect())
    }

    /// Sends a payload to another device of the account; the relay keeps
    /// it until that device has it, once.
    pub async fn send_to_device(
        &self,
        to: DeviceId,
        payload: Vec<u8>,
    ) -> Result<PayloadId, DeviceError> {
        self.call(|reply| Command::SendToDevice(to, payload, reply))
            .await
    }

    /// Forces another device of the account offline; its credentials stop
    /// working.
    pub async fn kick_device(&self, device: DeviceId) -> Result<(), DeviceError> {
        self.call(|reply| Command::Kick(device, reply)).await
    }

    /// Forces every other device of the account offline.
    pub async fn kick_all_other_devices(&self) -> Result<(), DeviceError> {
        self.call(Command::KickAllOthers).await
    }

    /// Kicks every device of the account, this one included (the reference
    /// SDK's `kickAllDevices`): every one of them logs in again only with a
    /// new login token. This device stops with
    /// [`StopReason::Kicked`](crate::StopReason::Kicked).
    pub async fn kick_all_devices(&self) -> Result<(), DeviceError> {
        self.call(Command::KickAll).await
    }

    /// Logs this device out: the relay revokes its enrollment and the
    /// device stops ([`StopReason::Kicked`](crate::StopReason::Kicked) with
    /// [`OfflineReason::LoggedOut`](tandem_transport::OfflineReason::LoggedOut));
    /// its data stays. [`OnlineDevice::relogin`] logs it in again.
    pub async fn logout(&self) -> Result<(), DeviceError> {
        self.call(Command::Logout).await
    }

    /// Logs in again with a new login token: after a kick, a logout, an
    /// expired enrollment, or to enroll a device that never was. The device
    /// goes online and connects at once (closing a connection it has),
    /// presenting the token until a login succeeds.
    pub async fn relogin(&self, login_token: impl Into<String>) -> Result<(), DeviceError> {
        self.send(Command::Relogin(login_token.into())).await
    }

    /// Goes offline (closing the connection) or back online. Going online
    /// also tries again after a stop ([`Status::stopped`]).
    pub async fn set_online(&self, online: bool) -> Result<(), DeviceError> {
        self.send(Command::SetOnline(online)).await
    }

    /// Sync events (connected, merged with what changed, in step,
    /// kicked…) from now on. Lossy for a subscriber that falls more than
    /// [`EVENT_QUEUE_DEPTH`] behind; the multi-device events themselves are
    /// in the journal, read with [`OnlineDevice::events`].
    pub fn subscribe(&self) -> broadcast::Receiver<SyncEvent> {
        self.events.subscribe()
    }

    /// The multi-device events, oldest unacknowledged first, as an async
    /// stream.
    pub fn events(&self) -> EventStream {
        EventStream::new(self.commands.clone(), self.journal_head.clone())
    }

    /// Acknowledges every event up to `seq`: never delivered again.
    pub async fn ack_events(&self, seq: i64) -> Result<(), DeviceError> {
        let (tx, rx) = oneshot::channel();
        let job = Box::new(move |engine: &mut Engine| {
            let _ = tx.send(engine.ack_events(seq));
        });
        self.send(Command::Write(job)).await?;
        rx.await
            .map_err(|_| DeviceError::ShutDown)?
            .map_err(|e| DeviceError::Op(OpError::Store(e)))
    }

    /// Runs a linking call on the device thread; then a connection that
    /// waited before an envelope it could not open reads from there again,
    /// and what the device made is sealed and pushed.
    async fn keys<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Engine, i64) -> Result<T, LinkingError> + Send + 'static,
    ) -> Result<T, DeviceError> {
        let (tx, rx) = oneshot::channel();
        let job = Box::new(move |engine: &mut Engine| {
            let _ = tx.send(f(engine, crate::actor::now_ms()));
        });
        self.send(Command::Keys(job)).await?;
        Ok(rx.await.map_err(|_| DeviceError::ShutDown)??)
    }

    /// Makes the account key on the account's first device (see
    /// [`Engine::create_account_key`]); from then on it seals what it
    /// pushes.
    pub async fn create_account_key(&self) -> Result<KeyFingerprint, DeviceError> {
        self.keys(|engine, now| engine.create_account_key(now))
            .await
    }

    /// On a new device: the link code to show a device that holds the key
    /// ([`Engine::show_link_code`]).
    pub async fn show_link_code(&self) -> Result<ShownCode, DeviceError> {
        self.keys(|engine, now| engine.show_link_code(now)).await
    }

    /// On a device that holds the key: the grant for the device that shows
    /// `code` ([`Engine::grant_link`]); its Link is pushed at once when
    /// connected.
    pub async fn grant_link(&self, code: String) -> Result<Vec<u8>, DeviceError> {
        self.keys(move |engine, now| engine.grant_link(&code, now))
            .await
    }

    /// On the new device: accepts `grant` from the device whose signing key
    /// is `granter_key` ([`Engine::accept_link_grant`]). A connection that
    /// waited before the first envelope it could not open reads on from
    /// there, without reconnecting.
    pub async fn accept_link_grant(
        &self,
        grant: Vec<u8>,
        granter_key: DevicePublicKey,
    ) -> Result<KeyFingerprint, DeviceError> {
        self.keys(move |engine, now| engine.accept_link_grant(&grant, &granter_key, now))
            .await
    }

    /// Whether this device holds the account key, shows a link code, or
    /// neither ([`Engine::link_state`]).
    pub async fn link_state(&self) -> Result<LinkState, DeviceError> {
        self.read(|engine| engine.link_state(crate::actor::now_ms()))
            .await?
            .map_err(|e| DeviceError::Op(OpError::Store(e)))
    }

    /// The connection state, to read or to wait on.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Stops the device thread and hands the engine back. An open
    /// connection is closed first (its last acknowledgement still goes
    /// out, for at most [`CLOSE_TIMEOUT_MS`](crate::config::CLOSE_TIMEOUT_MS)).
    pub async fn shutdown(self) -> Result<Engine, DeviceError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Shutdown(tx)).await?;
        rx.await.map_err(|_| DeviceError::ShutDown)
    }
}
