//! The device thread: connect (with a timeout), log in, sync, back off and
//! reconnect (to the next relay address, round robin), serving the app's
//! commands at every step.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tandem_engine::sync::{SyncError, SyncEvent, Syncer, REQUEST_TIMEOUT_MS};
use tandem_engine::Engine;
use tandem_transport::driver::{self, ConnectError, Connection, RelayLink};
use tandem_transport::frame::{DeviceInfo, PayloadId};
use tandem_transport::{ClientSession, CloseReason, CommandError, RelayAddress, SessionEvent};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::command::{Command, Reply};
use crate::config::{
    parse_relays, OnlineConfig, RelaysError, Rotation, CLOSE_TIMEOUT_MS,
    CREDENTIALS_CHECK_INTERVAL_MS,
};
use crate::error::DeviceError;
use crate::status::{LastError, Link, LinkError, RefusedEntry, Status, StopReason};

/// The engine and everything the device thread owns.
pub(crate) struct Actor {
    engine: Engine,
    config: OnlineConfig,
    /// `config.relays`, parsed once: which link, and where, for each.
    relays: Result<Vec<RelayAddress>, RelaysError>,
    /// Which address to try next, and how long to wait first.
    rotation: Rotation,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<SyncEvent>,
    status: watch::Sender<Status>,
    journal_head: watch::Sender<i64>,
    /// The login token to present until a login succeeds.
    login_token: Option<String>,
}

/// How one connection, or one attempt at one, ended.
enum Ended {
    /// Lost or refused for now: try again after a backoff.
    Retry {
        /// Why.
        error: LinkError,
        /// The connection got as far as logging in: the backoff starts
        /// over.
        logged_in: bool,
    },
    /// Retrying cannot help: stay offline.
    Stop(StopReason),
    /// The app asked for it.
    Requested(Requested),
}

/// What the app asked for that ends a connection.
enum Requested {
    /// Go offline.
    Offline,
    /// Connect again at once (a new login token to present).
    Reconnect,
    /// Stop the thread; hand the engine back (`None` when every handle was
    /// dropped).
    Shutdown(Option<oneshot::Sender<Engine>>),
}

/// Why serving commands offline stopped.
enum Offline {
    /// The backoff wait passed: try to connect again.
    Elapsed,
    /// The app asked to go online or offline (a relogin goes online).
    SetOnline(bool),
    /// The app asked to shut down (or dropped every handle).
    Shutdown(Option<oneshot::Sender<Engine>>),
}

/// What one connection has learnt so far about how it ends.
#[derive(Default)]
struct Ending {
    /// The app asked to go offline or shut down.
    requested: Option<Requested>,
    /// The relay said a retry cannot help (a kick, a final refusal).
    stop: Option<StopReason>,
    /// The first failure: why a retry is needed.
    error: Option<LinkError>,
    /// The relay accepted the login.
    logged_in: bool,
    /// `devices()` calls waiting for the relay's list.
    pending_devices: Vec<Reply<Vec<DeviceInfo>>>,
}

impl Actor {
    pub(crate) fn new(
        engine: Engine,
        config: OnlineConfig,
        commands: mpsc::Receiver<Command>,
        events: broadcast::Sender<SyncEvent>,
        status: watch::Sender<Status>,
        journal_head: watch::Sender<i64>,
    ) -> Actor {
        Actor {
            login_token: config.login_token.clone(),
            relays: parse_relays(&config.relays),
            rotation: Rotation::new(config.relays.len().max(1)),
            engine,
            config,
            commands,
            events,
            status,
            journal_head,
        }
    }

    /// The thread's whole life: connections while online, commands always.
    pub(crate) async fn run(mut self) {
        let mut online = self.config.start_online;
        loop {
            self.check_credentials();
            let mut wait = None;
            if online {
                let ended = self.connection().await;
                self.status.send_modify(|s| {
                    s.link = Link::Offline;
                    s.relay = None;
                    s.in_step = false;
                });
                match ended {
                    Ended::Requested(Requested::Shutdown(reply)) => return self.hand_back(reply),
                    Ended::Requested(Requested::Offline) => online = false,
                    Ended::Requested(Requested::Reconnect) => {
                        self.rotation.restart();
                        continue;
                    }
                    Ended::Stop(reason) => {
                        online = false;
                        self.status.send_modify(|s| {
                            s.stopped = Some(reason);
                            if let Some(e) = &mut s.last_error {
                                e.retry_in_ms = None;
                            }
                        });
                    }
                    Ended::Retry { error, logged_in } => {
                        if logged_in {
                            self.rotation.logged_in();
                        }
                        let relay = self.current_relay();
                        let random = self.random_u64();
                        let delay_ms = self.rotation.failed(&self.config.backoff, random);
                        let last = LastError {
                            relay,
                            error,
                            attempt: self.rotation.failures(),
                            at: SystemTime::now(),
                            retry_in_ms: Some(delay_ms),
                        };
                        self.status.send_modify(|s| s.last_error = Some(last));
                        wait = Some(Duration::from_millis(delay_ms));
                    }
                }
            }
            match self.serve_offline(wait).await {
                Offline::Elapsed => {}
                Offline::SetOnline(on) => {
                    online = on;
                    self.rotation.restart();
                    self.status.send_modify(|s| {
                        if on {
                            // The app asks to try again, whatever stopped it.
                            s.stopped = None;
                        } else if let Some(e) = &mut s.last_error {
                            e.retry_in_ms = None;
                        }
                    });
                }
                Offline::Shutdown(reply) => return self.hand_back(reply),
            }
        }
    }

    fn hand_back(self, reply: Option<oneshot::Sender<Engine>>) {
        if let Some(reply) = reply {
            // The app may have stopped waiting; the engine closes then.
            let _ = reply.send(self.engine);
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
                    Some(Command::Relogin(token)) => {
                        self.login_token = Some(token);
                        return Offline::SetOnline(true);
                    }
                    Some(command) => self.offline_command(command),
                },
            }
        }
    }

    /// A command while not logged in (offline, or connecting). The caller
    /// handles `SetOnline` and `Shutdown`.
    fn offline_command(&mut self, command: Command) {
        match command {
            Command::Perform(op, reply) => {
                let _ = reply.send(self.engine.perform(now_ms(), op).map_err(Into::into));
            }
            Command::Read(job) => job(&self.engine),
            Command::Write(job) | Command::Keys(job) => job(&mut self.engine),
            Command::Devices(reply) => {
                let _ = reply.send(Err(DeviceError::NotConnected));
            }
            Command::Kick(_, reply)
            | Command::KickAllOthers(reply)
            | Command::KickAll(reply)
            | Command::Logout(reply) => {
                let _ = reply.send(Err(DeviceError::NotConnected));
            }
            Command::SendToDevice(_, _, reply) => {
                let _ = reply.send(Err(DeviceError::NotConnected));
            }
            Command::SetOnline(_) | Command::Shutdown(_) | Command::Relogin(_) => {
                unreachable!("the caller handles SetOnline, Shutdown and Relogin")
            }
        }
    }

    /// One connection: connect within the timeout (serving commands
    /// meanwhile), then the session until it ends.
    async fn connection(&mut self) -> Ended {
        let relay = match &self.relays {
            Ok(relays) => relays[self.rotation.current()].clone(),
            Err(e) => return Ended::Stop(StopReason::Address(e.clone())),
        };
        let relay_text = self.current_relay();
        let client = match self.engine.session_config(self.login_token.clone()) {
            Ok(client) => client,
            Err(e) => return Ended::Stop(StopReason::Store(Arc::new(e))),
        };
        self.status.send_modify(|s| {
            s.link = Link::Connecting;
            s.relay = Some(relay_text);
        });
        let timeout_ms = self.config.connect_timeout_ms;
        let connect = tokio::time::timeout(
            Duration::from_millis(timeout_ms),
            driver::connect(&relay, client),
        );
        tokio::pin!(connect);
        let connection = loop {
            tokio::select! {
                connected = &mut connect => match connected {
                    Ok(Ok(connection)) => break connection,
                    Ok(Err(ConnectError::Config(e))) => return Ended::Stop(StopReason::Config(e)),
                    Ok(Err(ConnectError::Io(e))) => {
                        return Ended::Retry { error: LinkError::connect(&e), logged_in: false }
                    }
                    Ok(Err(ConnectError::Handshake { status, reason })) => {
                        let error = LinkError::Handshake { status, message: reason };
                        return Ended::Retry { error, logged_in: false };
                    }
                    Ok(Err(e)) => {
                        let e = std::io::Error::other(e.to_string());
                        return Ended::Retry { error: LinkError::connect(&e), logged_in: false };
                    }
                    Err(_elapsed) => {
                        return Ended::Retry {
                            error: LinkError::ConnectTimedOut { after_ms: timeout_ms },
                            logged_in: false,
                        }
                    }
                },
                command = self.commands.recv() => match command {
                    None => return Ended::Requested(Requested::Shutdown(None)),
                    Some(Command::Shutdown(reply)) => {
                        return Ended::Requested(Requested::Shutdown(Some(reply)))
                    }
                    Some(Command::SetOnline(false)) => return Ended::Requested(Requested::Offline),
                    Some(Command::SetOnline(true)) => {}
                    Some(Command::Relogin(token)) => {
                        self.login_token = Some(token);
                        return Ended::Requested(Requested::Reconnect);
                    }
                    Some(command) => self.offline_command(command),
                },
            }
        };
        self.status.send_modify(|s| s.link = Link::LoggingIn);
        self.session(connection).await
    }

    /// A connected session, from `Hello` to close.
    async fn session(&mut self, mut conn: Connection<RelayLink>) -> Ended {
        let mut syncer = Syncer::new();
        let mut ending = Ending::default();
        let mut close_by: Option<Instant> = None;
        let mut check_at = Instant::now() + Duration::from_millis(CREDENTIALS_CHECK_INTERVAL_MS);
        loop {
            self.publish(&syncer);
            if close_by.is_none() && (ending.requested.is_some() || conn.session().is_closed()) {
                // Frames already queued (a last Ack) still go out, for a
                // bounded time.
                conn.session().close();
                close_by = Some(Instant::now() + Duration::from_millis(CLOSE_TIMEOUT_MS));
            }
            let closing = close_by.is_some();
            let request_wait_ms = syncer
                .poll_timeout()
                .map(|at| at.saturating_sub(now_ms()).max(0) as u64)
                .unwrap_or(REQUEST_TIMEOUT_MS as u64 / 2);
            tokio::select! {
                // Cancel-safe: a command or a timer winning the race loses
                // no byte read and no byte of a half-written frame.
                event = conn.next_event() => match event {
                    Ok(Some(event)) => self.session_event(&mut conn, &mut syncer, &mut ending, event),
                    Ok(None) => break,
                    Err(e) => {
                        ending.error.get_or_insert(LinkError::io(&e));
                    }
                },
                _ = tokio::time::sleep(Duration::from_millis(request_wait_ms)), if !closing => {
                    let result = syncer.handle_timeout(&mut self.engine, conn.session(), now_ms());
                    if let Err(e) = result {
                        sync_failed(conn.session(), &mut ending, e);
                    }
                }
                command = self.commands.recv(), if !closing => match command {
                    None => ending.requested = Some(Requested::Shutdown(None)),
                    Some(command) => self.online_command(command, &mut conn, &mut syncer, &mut ending),
                },
                _ = tokio::time::sleep_until(check_at), if !closing => {
                    self.check_credentials();
                    check_at = Instant::now() + Duration::from_millis(CREDENTIALS_CHECK_INTERVAL_MS);
                }
                _ = tokio::time::sleep_until(close_by.unwrap_or_else(Instant::now)), if closing => break,
            }
        }
        for reply in ending.pending_devices.drain(..) {
            let _ = reply.send(Err(DeviceError::NotConnected));
        }
        self.publish_journal_head();
        if let Some(requested) = ending.requested {
            return Ended::Requested(requested);
        }
        if let Some(stop) = ending.stop {
            return Ended::Stop(stop);
        }
        Ended::Retry {
            error: ending
                .error
                .unwrap_or(LinkError::Closed(CloseReason::TransportClosed)),
            logged_in: ending.logged_in,
        }
    }

    /// One event from the session. A run of live deltas that arrived
    /// together merges as one batch (one transaction).
    fn session_event(
        &mut self,
        conn: &mut Connection<RelayLink>,
        syncer: &mut Syncer,
        ending: &mut Ending,
        event: SessionEvent,
    ) {
        let event = match event {
            SessionEvent::Live(first) => {
                let mut batch = vec![first];
                let mut after = None;
                while let Some(next) = conn.poll_event() {
                    match next {
                        SessionEvent::Live(delta) => batch.push(delta),
                        other => {
                            after = Some(other);
                            break;
                        }
                    }
                }
                let result = syncer.handle_live(&mut self.engine, conn.session(), batch);
                self.outputs(conn.session(), ending, result);
                match after {
                    Some(event) => event,
                    None => return,
                }
            }
            other => other,
        };
        let result = syncer.handle(&mut self.engine, conn.session(), event, now_ms());
        self.outputs(conn.session(), ending, result);
    }

    /// Hands what the syncer produced to the app, or handles its failure.
    fn outputs(
        &mut self,
        session: &mut ClientSession,
        ending: &mut Ending,
        result: Result<Vec<SyncEvent>, SyncError>,
    ) {
        match result {
            Ok(events) => {
                for event in events {
                    self.dispatch(ending, event);
                }
            }
            Err(error) => sync_failed(session, ending, error),
        }
    }

    /// Hands a sync event to the app, noting what it means for how the
    /// connection ends.
    fn dispatch(&mut self, ending: &mut Ending, event: SyncEvent) {
        match &event {
            SyncEvent::Connected { .. } => {
                ending.logged_in = true;
                // Enrolled: from now on the key alone logs the device in.
                self.login_token = None;
                self.status.send_modify(|s| {
                    s.link = Link::Connected;
                    s.stopped = None;
                    s.last_error = None;
                });
            }
            SyncEvent::Devices(devices) => {
                for reply in ending.pending_devices.drain(..) {
                    let _ = reply.send(Ok(devices.clone()));
                }
            }
            SyncEvent::Managing { devices } => {
                // A login token of the "manage" purpose: used up; the
                // connection lists and kicks, nothing syncs.
                ending.logged_in = true;
                self.login_token = None;
                for reply in ending.pending_devices.drain(..) {
                    let _ = reply.send(Ok(devices.clone()));
                }
            }
            SyncEvent::Kicked(reason) => {
                ending
                    .stop
                    .get_or_insert(StopReason::Kicked(reason.clone()));
            }
            SyncEvent::Refused(refusal) => match StopReason::from_refusal(refusal) {
                Some(stop) => {
                    ending.stop.get_or_insert(stop);
                }
                None => {
                    ending.error.get_or_insert(LinkError::Relay {
                        code: refusal.code,
                        text: refusal.text.clone(),
                    });
                }
            },
            SyncEvent::RelayError { code, text } => {
                if let Some(stop) = StopReason::from_relay_error(*code, text) {
                    ending.stop.get_or_insert(stop);
                } else if code.is_fatal() {
                    ending.error.get_or_insert(LinkError::Relay {
                        code: *code,
                        text: text.clone(),
                    });
                } else {
                    // About one request; the connection lives on.
                    let last = LastError {
                        relay: self.current_relay(),
                        error: LinkError::Relay {
                            code: *code,
                            text: text.clone(),
                        },
                        attempt: 0,
                        at: SystemTime::now(),
                        retry_in_ms: None,
                    };
                    self.status.send_modify(|s| s.last_error = Some(last));
                }
            }
            SyncEvent::NeedsKey(entry) => {
                let entry = entry.clone();
                self.status.send_modify(|s| s.waiting_for_key = Some(entry));
            }
            SyncEvent::EntryRefused { seq, tamper, error } => {
                let entry = RefusedEntry {
                    seq: *seq,
                    tamper: *tamper,
                    error: error.clone(),
                };
                self.status.send_modify(|s| s.refused_entry = Some(entry));
            }
            SyncEvent::Merged(applied) => {
                let cursor = applied.relay_cursor;
                // The entries a merge past them no longer waits at.
                let passed = |seq: Option<u64>| seq.is_some_and(|seq| cursor >= seq);
                self.status.send_if_modified(|s| {
                    let wait = passed(s.waiting_for_key.as_ref().map(|e| e.seq));
                    let refusal = passed(s.refused_entry.as_ref().map(|e| e.seq));
                    if wait {
                        s.waiting_for_key = None;
                    }
                    if refusal {
                        s.refused_entry = None;
                    }
                    wait || refusal
                });
            }
            SyncEvent::Closed(reason) => match reason {
                // Already accounted for: the app's request or a sync
                // failure (Local), the kick, the relay's error event.
                CloseReason::Local
                | CloseReason::Kicked(_)
                | CloseReason::Refused { .. }
                | CloseReason::RelayError { .. } => {}
                other => {
                    ending.error.get_or_insert(LinkError::Closed(other.clone()));
                }
            },
            _ => {}
        }
        // No subscriber is fine: the journal keeps what matters.
        let _ = self.events.send(event);
    }

    /// A command while a session runs.
    fn online_command(
        &mut self,
        command: Command,
        conn: &mut Connection<RelayLink>,
        syncer: &mut Syncer,
        ending: &mut Ending,
    ) {
        let session = conn.session();
        match command {
            Command::Perform(op, reply) => {
                let now = now_ms();
                let result = self.engine.perform(now, op).map_err(DeviceError::from);
                if result.is_ok() {
                    if let Err(e) = syncer.push(&mut self.engine, session, now) {
                        sync_failed(session, ending, e);
                    }
                }
                let _ = reply.send(result);
            }
            Command::Read(job) => job(&self.engine),
            Command::Write(job) => job(&mut self.engine),
            Command::Keys(job) => {
                job(&mut self.engine);
                let now = now_ms();
                if let Err(e) = syncer
                    .keys_changed(&self.engine, session)
                    .and_then(|()| syncer.push(&mut self.engine, session, now))
                {
                    sync_failed(session, ending, e);
                }
            }
            // Before the login these queue behind `Hello`.
            Command::Devices(reply) => match session.list_devices() {
                Ok(()) => ending.pending_devices.push(reply),
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
            Command::KickAll(reply) => {
                let _ = reply.send(session.kick_all().map_err(Into::into));
            }
            Command::Logout(reply) => {
                let _ = reply.send(session.logout().map_err(Into::into));
            }
            Command::Relogin(token) => {
                self.login_token = Some(token);
                self.status.send_modify(|s| s.stopped = None);
                ending.requested = Some(Requested::Reconnect);
            }
            Command::SendToDevice(to, bytes, reply) => {
                let id = self.next_payload_id();
                let _ = reply.send(
                    session
                        .send_to_device(to, id, bytes)
                        .map(|()| id)
                        .map_err(Into::into),
                );
            }
            Command::SetOnline(true) => {}
            Command::SetOnline(false) => ending.requested = Some(Requested::Offline),
            Command::Shutdown(reply) => ending.requested = Some(Requested::Shutdown(Some(reply))),
        }
    }

    /// The address the rotation is at, as configured (trimmed).
    fn current_relay(&self) -> String {
        self.config
            .relays
            .get(self.rotation.current())
            .map_or_else(String::new, |relay| relay.trim().to_owned())
    }

    /// A payload id: 128 bits from the engine's entropy.
    fn next_payload_id(&mut self) -> PayloadId {
        let mut id = [0u8; 16];
        self.engine.fill_random(&mut id);
        PayloadId(id)
    }

    /// Randomness for the backoff's jitter, from the engine's entropy.
    fn random_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.engine.fill_random(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    /// Journals `CredentialsExpiring` once if the enrollment expires soon,
    /// by this thread's clock (the engine reads none).
    fn check_credentials(&mut self) {
        match self.engine.check_credentials(now_ms()) {
            Ok(Some(_)) => self.publish_journal_head(),
            Ok(None) => {}
            // The store failed; the next check (or the next write) tells.
            Err(_) => {}
        }
    }

    /// Tells watchers whether the device is in step, and wakes event
    /// streams when the journal grew.
    fn publish(&self, syncer: &Syncer) {
        let in_step = syncer.is_in_step(&self.engine).unwrap_or(false);
        self.status.send_if_modified(|s| {
            let changed = s.in_step != in_step;
            s.in_step = in_step;
            changed
        });
        self.publish_journal_head();
    }

    fn publish_journal_head(&self) {
        if let Ok(head) = self.engine.events_head() {
            self.journal_head.send_if_modified(|h| {
                let grew = head > *h;
                *h = head.max(*h);
                grew
            });
        }
    }
}

/// The store failed or the session refused a command: start over on a
/// fresh connection rather than guess what was half done. A command refused
/// because the session already closed says nothing new: the session's own
/// `Closed` event says why.
fn sync_failed(session: &mut ClientSession, ending: &mut Ending, error: SyncError) {
    if !matches!(error, SyncError::Session(CommandError::Closed)) {
        ending.error.get_or_insert(LinkError::Sync(Arc::new(error)));
    }
    session.close();
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
