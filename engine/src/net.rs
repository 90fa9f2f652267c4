//! The async shell: a device online.
//!
//! [`OnlineDevice::spawn`] moves an [`Engine`] onto its own thread (SQLite
//! is blocking, so it never runs on the app's async workers) with a small
//! tokio runtime that keeps one TCP connection to the relay, reconnecting
//! with capped exponential backoff and jitter, and stops reconnecting once
//! kicked. The app talks to it through a bounded command channel: every
//! method of [`OnlineDevice`] is async and cheap to call from any runtime.
//!
//! All protocol decisions are in [`crate::sync::Syncer`] and the transport's
//! `ClientSession`; this file only moves bytes, time and commands.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tandem_transport::frame::{DeviceInfo, ErrorCode, PayloadId};
use tandem_transport::{ClientConfig, ClientSession, DeviceId, SessionEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::engine::{Engine, OpError, Performed};
use crate::event::Event;
use crate::op::Op;
use crate::sync::{SyncError, SyncEvent, Syncer, REQUEST_TIMEOUT_MS};

/// Commands waiting for the device thread, at most.
pub const COMMAND_QUEUE_DEPTH: usize = 64;

/// Sync events buffered for each subscriber before it starts missing some.
pub const EVENT_QUEUE_DEPTH: usize = 1024;

/// How a device reaches its relay.
#[derive(Debug, Clone)]
pub struct OnlineConfig {
    /// `host:port` of the relay.
    pub relay: String,
    /// A token the relay accepts for the engine's account.
    pub token: String,
    /// Whether to connect at once; see [`OnlineDevice::set_online`].
    pub start_online: bool,
    /// How long to wait before each reconnect attempt.
    pub backoff: Backoff,
}

/// Capped exponential backoff with jitter, as pure arithmetic: the caller
/// passes the randomness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The longest first wait, in ms; the ceiling doubles with every failed
    /// attempt.
    pub initial_ms: u64,
    /// The most the ceiling grows to, in ms.
    pub max_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial_ms: 200,
            max_ms: 30_000,
        }
    }
}

impl Backoff {
    /// The wait before reconnect attempt `attempt` (0 for the first retry):
    /// `initial · 2^attempt`, capped at `max`, of which a random half is
    /// taken off ("equal jitter") so that devices that lost the relay
    /// together do not all come back at the same instant.
    pub fn delay_ms(&self, attempt: u32, random: u64) -> u64 {
        let ceiling = self
            .initial_ms
            .saturating_mul(1u64 << attempt.min(32))
            .min(self.max_ms);
        let half = ceiling / 2;
        half + random % (ceiling - half + 1)
    }
}

/// The connection state, as the app can watch it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// Whether a connection to the relay is logged in now.
    pub connected: bool,
    /// Everything pushed and everything at the relay merged.
    pub in_step: bool,
    /// Set once kicked; the device then stays offline.
    pub kicked: Option<(DeviceId, String)>,
    /// The last connection or sync error, in words.
    pub last_error: Option<String>,
}

/// Why a call to an [`OnlineDevice`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The device thread has stopped.
    #[error("the device has shut down")]
    ShutDown,
    /// The call needs the relay and the device is not connected.
    #[error("not connected to the relay")]
    NotConnected,
    /// The engine refused or failed the operation (or, for a query, its store
    /// failed).
    #[error(transparent)]
    Op(#[from] OpError),
    /// The connection refused the command because it closed meanwhile.
    #[error("session: {0}")]
    Session(#[from] tandem_transport::CommandError),
}

type Reply<T> = oneshot::Sender<Result<T, DeviceError>>;

enum Command {
    Perform(Op, Reply<Performed>),
    Read(Box<dyn FnOnce(&Engine) + Send>),
    Write(Box<dyn FnOnce(&mut Engine) + Send>),
    Devices(Reply<Vec<DeviceInfo>>),
    Kick(DeviceId, Reply<()>),
    KickAllOthers(Reply<()>),
    SendToDevice(DeviceId, Vec<u8>, Reply<PayloadId>),
    SetOnline(bool),
    Shutdown(oneshot::Sender<Engine>),
}

/// An engine on its own thread, online with a relay.
pub struct OnlineDevice {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<SyncEvent>,
    status: watch::Receiver<Status>,
    /// The newest journaled event's sequence number.
    journal_head: watch::Receiver<i64>,
    device_id: DeviceId,
}

/// The multi-device events of an [`OnlineDevice`], in order, starting with
/// the oldest the app has not acknowledged. Acknowledge with
/// [`OnlineDevice::ack_events`] once handled; events not acknowledged are
/// delivered again by the next stream (also after a restart).
pub struct EventStream {
    commands: mpsc::Sender<Command>,
    journal_head: watch::Receiver<i64>,
    /// The last event this stream handed out; `None` until the first read
    /// finds where the unacknowledged events start.
    cursor: Option<i64>,
    buffered: std::collections::VecDeque<Event>,
}

impl EventStream {
    /// Events read from the journal per round trip to the device thread.
    const BATCH: usize = 256;

    /// The next event, waiting for one if there is none yet. Fails only
    /// when the device has shut down.
    pub async fn next(&mut self) -> Result<Event, DeviceError> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                self.cursor = Some(event.seq);
                return Ok(event);
            }
            // Mark the head as seen before reading, so an event journaled
            // during the read wakes the wait below.
            self.journal_head.borrow_and_update();
            let cursor = self.cursor;
            let (tx, rx) = oneshot::channel();
            let job = Box::new(move |engine: &Engine| {
                let after = match cursor {
                    Some(c) => Ok(c),
                    None => engine.events_acked(),
                };
                let _ =
                    tx.send(after.and_then(|after| {
                        engine.events_after(after, Self::BATCH).map(|e| (after, e))
                    }));
            });
            self.commands
                .send(Command::Read(job))
                .await
                .map_err(|_| DeviceError::ShutDown)?;
            let (after, events) = rx
                .await
                .map_err(|_| DeviceError::ShutDown)?
                .map_err(|e| DeviceError::Op(OpError::Store(e)))?;
            self.cursor = Some(after);
            if events.is_empty() {
                self.journal_head
                    .changed()
                    .await
                    .map_err(|_| DeviceError::ShutDown)?;
            }
            self.buffered.extend(events);
        }
    }
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
        let actor = Actor {
            engine,
            config,
            commands: command_rx,
            events: events.clone(),
            status: status_tx,
            journal_head: journal_tx,
            pending_devices: Vec::new(),
            payload_counter: 0,
            logged_in: false,
        };
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

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, DeviceError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| DeviceError::ShutDown)?;
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
        self.commands
            .send(Command::Read(job))
            .await
            .map_err(|_| DeviceError::ShutDown)?;
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

    /// Goes offline (closing the connection) or back online.
    pub async fn set_online(&self, online: bool) -> Result<(), DeviceError> {
        self.commands
            .send(Command::SetOnline(online))
            .await
            .map_err(|_| DeviceError::ShutDown)
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
        EventStream {
            commands: self.commands.clone(),
            journal_head: self.journal_head.clone(),
            cursor: None,
            buffered: Default::default(),
        }
    }

    /// Acknowledges every event up to `seq`: never delivered again.
    pub async fn ack_events(&self, seq: i64) -> Result<(), DeviceError> {
        let (tx, rx) = oneshot::channel();
        let job = Box::new(move |engine: &mut Engine| {
            let _ = tx.send(engine.ack_events(seq));
        });
        self.commands
            .send(Command::Write(job))
            .await
            .map_err(|_| DeviceError::ShutDown)?;
        rx.await
            .map_err(|_| DeviceError::ShutDown)?
            .map_err(|e| DeviceError::Op(OpError::Store(e)))
    }

    /// The connection state, to read or to wait on.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Stops the device thread and hands the engine back.
    pub async fn shutdown(self) -> Result<Engine, DeviceError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Shutdown(tx))
            .await
            .map_err(|_| DeviceError::ShutDown)?;
        rx.await.map_err(|_| DeviceError::ShutDown)
    }
}

/// Refusals that reconnecting with the same credentials cannot fix: the
/// device stays offline and reports it. Anything else (the relay shutting
/// down, a store hiccup) is retried with backoff.
fn retry_cannot_help(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::UnsupportedVersion
            | ErrorCode::Unauthorized
            | ErrorCode::TokenExpired
            | ErrorCode::CredentialsRevoked
            | ErrorCode::TooManyDevices
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A little randomness for jitter and payload ids, from the clock and a
/// counter: unpredictability does not matter here, only spread.
fn spread(seed: &[u8], counter: u64) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(seed);
    hasher.update(&counter.to_le_bytes());
    hasher.update(&now_ms().to_le_bytes());
    let bytes = hasher.finalize();
    u64::from_le_bytes(bytes.as_bytes()[..8].try_into().expect("8 bytes"))
}

struct Actor {
    engine: Engine,
    config: OnlineConfig,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<SyncEvent>,
    status: watch::Sender<Status>,
    journal_head: watch::Sender<i64>,
    pending_devices: Vec<Reply<Vec<DeviceInfo>>>,
    payload_counter: u64,
    /// Set when a connection logs in; resets the backoff.
    logged_in: bool,
}

/// Why serving commands offline stopped.
enum Offline {
    /// The backoff wait passed: try to connect again.
    Elapsed,
    /// The app asked to go online or offline.
    SetOnline(bool),
    /// The app asked to shut down (or dropped every handle).
    Shutdown(Option<oneshot::Sender<Engine>>),
}

/// How a connection ended.
enum Ended {
    /// Lost or refused: try again after a backoff.
    Retry,
    /// Kicked, or a fatal refusal: stay offline.
    Stop,
    /// The app asked to go offline.
    Offline,
    /// The app asked to shut down.
    Shutdown(oneshot::Sender<Engine>),
}

impl Actor {
    async fn run(mut self) {
        let mut online = self.config.start_online;
        let mut attempt: u32 = 0;
        loop {
            let stopped = self.status.borrow().kicked.is_some();
            let wait = if !online || stopped {
                None
            } else {
                match self.connection().await {
                    Ended::Shutdown(reply) => {
                        let _ = reply.send(self.engine);
                        return;
                    }
                    Ended::Offline | Ended::Stop => {
                        online = false;
                        continue;
                    }
                    Ended::Retry => {
                        // A connection that got as far as logging in starts
                        // the backoff over.
                        if std::mem::take(&mut self.logged_in) {
                            attempt = 0;
                        }
                        let delay = self.config.backoff.delay_ms(
                            attempt,
                            spread(&self.engine.device().device_id.0, attempt.into()),
                        );
                        attempt = attempt.saturating_add(1);
                        Some(Duration::from_millis(delay))
                    }
                }
            };
            match self.serve_offline(wait).await {
                Offline::Elapsed => {}
                Offline::SetOnline(on) => {
                    online = on;
                    attempt = 0;
                }
                Offline::Shutdown(reply) => {
                    if let Some(reply) = reply {
                        let _ = reply.send(self.engine);
                    }
                    return;
                }
            }
        }
    }

    /// Serves commands without a connection until the app goes online or
    /// offline, shuts down, or `wait` (if any) has passed.
    async fn serve_offline(&mut self, wait: Option<Duration>) -> Offline {
        let sleep = tokio::time::sleep(wait.unwrap_or(Duration::ZERO));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep, if wait.is_some() => return Offline::Elapsed,
                command = self.commands.recv() => match command {
                    None => return Offline::Shutdown(None),
                    Some(Command::Shutdown(reply)) => return Offline::Shutdown(Some(reply)),
                    Some(Command::SetOnline(on)) => return Offline::SetOnline(on),
                    Some(command) => self.offline_command(command),
                },
            }
        }
    }

    /// A command while there is no connection.
    fn offline_command(&mut self, command: Command) {
        match command {
            Command::Perform(op, reply) => {
                let _ = reply.send(self.engine.perform(now_ms(), op).map_err(Into::into));
            }
            Command::Read(job) => job(&self.engine),
            Command::Write(job) => job(&mut self.engine),
            Command::Devices(reply) => {
                let _ = reply.send(Err(DeviceError::NotConnected));
            }
            Command::Kick(_, reply) | Command::KickAllOthers(reply) => {
                let _ = reply.send(Err(DeviceError::NotConnected));
            }
            Command::SendToDevice(_, _, reply) => {
                let _ = reply.send(Err(DeviceError::NotConnected));
            }
            Command::SetOnline(_) | Command::Shutdown(_) => {
                unreachable!("handled by the caller")
            }
        }
    }

    /// Wakes event streams when the journal grew.
    fn publish_journal_head(&self) {
        if let Ok(head) = self.engine.events_head() {
            self.journal_head.send_if_modified(|h| {
                let grew = head > *h;
                *h = head.max(*h);
                grew
            });
        }
    }

    fn set_status(&self, f: impl FnOnce(&mut Status)) {
        self.status.send_modify(f);
    }

    /// One connection, from connect to close.
    async fn connection(&mut self) -> Ended {
        let device = self.engine.device().clone();
        let cursor = match self.engine.relay_cursor() {
            Ok(c) => c,
            Err(e) => {
                self.set_status(|s| s.last_error = Some(e.to_string()));
                return Ended::Stop;
            }
        };
        let mut client_config = ClientConfig::new(
            device.account.clone(),
            device.device_id,
            device.name.clone(),
            device.platform.clone(),
            self.config.token.clone(),
        );
        client_config.resume_cursor = cursor;
        let mut session = match ClientSession::new(client_config, 0) {
            Ok(s) => s,
            Err(e) => {
                self.set_status(|s| s.last_error = Some(e.to_string()));
                return Ended::Stop;
            }
        };
        let stream = match TcpStream::connect(&self.config.relay).await {
            Ok(s) => s,
            Err(e) => {
                self.set_status(|s| {
                    s.last_error = Some(format!("connecting to {}: {e}", self.config.relay))
                });
                return Ended::Retry;
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        // Reads run on their own task so that a command arriving never
        // cancels a read or, worse, a half-written frame.
        let (bytes_tx, mut bytes_rx) = mpsc::channel::<Option<Vec<u8>>>(16);
        let read_task = tokio::spawn(async move {
            let mut buffer = vec![0u8; 16 * 1024];
            loop {
                match reader.read(&mut buffer).await {
                    Ok(0) | Err(_) => {
                        let _ = bytes_tx.send(None).await;
                        return;
                    }
                    Ok(n) => {
                        if bytes_tx.send(Some(buffer[..n].to_vec())).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let started = tokio::time::Instant::now();
        let clock = move || started.elapsed().as_millis() as u64;
        let mut syncer = Syncer::new();
        let mut ended: Option<Ended> = None;
        let mut closing = false;
        loop {
            // Drain until idle: events first (handling them queues frames),
            // then every queued frame, written whole.
            let mut live = Vec::new();
            loop {
                let event = session.poll_event();
                // A run of live deltas merges as one batch.
                if let Some(SessionEvent::Live(delta)) = event {
                    live.push(delta);
                    continue;
                }
                if !live.is_empty() {
                    let batch = std::mem::take(&mut live);
                    let result = syncer.handle_live(&mut self.engine, &mut session, batch);
                    self.outputs(&mut session, result, &mut ended);
                }
                let Some(event) = event else { break };
                let result = syncer.handle(&mut self.engine, &mut session, event, now_ms());
                self.outputs(&mut session, result, &mut ended);
            }
            while let Some(bytes) = session.poll_transmit() {
                if writer.write_all(&bytes).await.is_err() {
                    session.handle_transport_closed();
                }
            }
            let in_step = syncer.is_in_step(&self.engine).unwrap_or(false);
            self.set_status(|s| s.in_step = in_step);
            self.publish_journal_head();
            if session.is_closed() {
                // One more round hands over the events a failed write queued.
                if closing {
                    break;
                }
                closing = true;
                continue;
            }
            if matches!(ended, Some(Ended::Offline | Ended::Shutdown(_))) {
                session.close();
                continue;
            }
            let timeout = session.poll_timeout().map(|at| at.saturating_sub(clock()));
            let sleep = tokio::time::sleep(Duration::from_millis(timeout.unwrap_or(60_000)));
            let request_wait = syncer
                .poll_timeout()
                .map(|at| at.saturating_sub(now_ms()).max(0) as u64)
                .unwrap_or(REQUEST_TIMEOUT_MS as u64 / 2);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(request_wait)) => {
                    let result = syncer.handle_timeout(&self.engine, &mut session, now_ms());
                    self.outputs(&mut session, result.map(|()| Vec::new()), &mut ended);
                }
                bytes = bytes_rx.recv() => match bytes.flatten() {
                    Some(bytes) => session.handle_bytes(&bytes, clock()),
                    None => session.handle_transport_closed(),
                },
                _ = sleep, if timeout.is_some() => session.handle_timeout(clock()),
                command = self.commands.recv() => match command {
                    None => session.close(),
                    Some(command) => {
                        if let Some(e) = self.online_command(command, &mut session, &mut syncer) {
                            ended = Some(e);
                        }
                    }
                },
            }
        }
        let _ = writer.shutdown().await;
        read_task.abort();
        for reply in self.pending_devices.drain(..) {
            let _ = reply.send(Err(DeviceError::NotConnected));
        }
        let kicked = self.status.borrow().kicked.is_some();
        self.set_status(|s| {
            s.connected = false;
            s.in_step = false;
        });
        match ended {
            Some(e @ (Ended::Offline | Ended::Shutdown(_))) => e,
            _ if kicked => Ended::Stop,
            Some(e) => e,
            None => Ended::Retry,
        }
    }

    /// Hands what the syncer produced to the app, or handles its failure.
    fn outputs(
        &mut self,
        session: &mut ClientSession,
        result: Result<Vec<SyncEvent>, SyncError>,
        ended: &mut Option<Ended>,
    ) {
        match result {
            Ok(outputs) => {
                for output in outputs {
                    if let Some(e) = self.dispatch(output) {
                        ended.get_or_insert(e);
                    }
                }
            }
            Err(error) => self.sync_failed(session, error),
        }
    }

    fn sync_failed(&mut self, session: &mut ClientSession, error: SyncError) {
        self.set_status(|s| s.last_error = Some(error.to_string()));
        // The store failed or the session closed under us; start over on a
        // fresh connection rather than guess what was half done.
        session.close();
    }

    /// Hands a sync event to the app; returns how the connection must end,
    /// if it must.
    fn dispatch(&mut self, event: SyncEvent) -> Option<Ended> {
        let mut end = None;
        match &event {
            SyncEvent::Connected { .. } => {
                self.logged_in = true;
                self.set_status(|s| {
                    s.connected = true;
                    s.last_error = None;
                });
            }
            SyncEvent::Devices(devices) => {
                for reply in self.pending_devices.drain(..) {
                    let _ = reply.send(Ok(devices.clone()));
                }
            }
            SyncEvent::Kicked { by, reason } => {
                let kicked = (*by, reason.clone());
                self.set_status(|s| s.kicked = Some(kicked));
                end = Some(Ended::Stop);
            }
            SyncEvent::RelayError { code, text } => {
                let error = format!("{code:?}: {text}");
                self.set_status(|s| s.last_error = Some(error));
                if retry_cannot_help(*code) {
                    end = Some(Ended::Stop);
                }
            }
            _ => {}
        }
        // No subscriber is fine: the journal keeps what matters.
        let _ = self.events.send(event);
        end
    }

    /// A command while connected; returns how the connection must end, if
    /// it must.
    fn online_command(
        &mut self,
        command: Command,
        session: &mut ClientSession,
        syncer: &mut Syncer,
    ) -> Option<Ended> {
        match command {
            Command::Perform(op, reply) => {
                let result = self.engine.perform(now_ms(), op).map_err(DeviceError::from);
                if result.is_ok() {
                    if let Err(e) = syncer.push(&self.engine, session) {
                        self.sync_failed(session, e);
                    }
                }
                let _ = reply.send(result);
            }
            Command::Read(job) => job(&self.engine),
            Command::Write(job) => job(&mut self.engine),
            Command::Devices(reply) => match session.list_devices() {
                Ok(()) => self.pending_devices.push(reply),
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::Kick(device, reply) => {
                let _ = reply.send(session.kick(device).map_err(Into::into));
            }
            Command::KickAllOthers(reply) => {
                let _ = reply.send(session.kick_all_others().map_err(Into::into));
            }
            Command::SendToDevice(to, bytes, reply) => {
                self.payload_counter += 1;
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(
                    &spread(&self.engine.device().device_id.0, self.payload_counter).to_le_bytes(),
                );
                id[8..].copy_from_slice(&self.payload_counter.to_le_bytes());
                let id = PayloadId(id);
                let _ = reply.send(
                    session
                        .send_to_device(to, id, bytes)
                        .map(|()| id)
                        .map_err(Into::into),
                );
            }
            Command::SetOnline(true) => {}
            Command::SetOnline(false) => return Some(Ended::Offline),
            Command::Shutdown(reply) => return Some(Ended::Shutdown(reply)),
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters_within_bounds() {
        let backoff = Backoff {
            initial_ms: 100,
            max_ms: 1_000,
        };
        for attempt in 0..40 {
            let ceiling = (100u64 << attempt.min(20)).min(1_000);
            for random in [0, 1, 77, u64::MAX] {
                let delay = backoff.delay_ms(attempt, random);
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "{attempt} {random} {delay}"
                );
            }
        }
        assert_eq!(backoff.delay_ms(0, 0), 50);
        assert_eq!(backoff.delay_ms(10, 0), 500);
    }
}
