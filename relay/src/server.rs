//! The relay's async shell: accept connections, move frames between them
//! and the core, and shut down gracefully.
//!
//! Two listeners, one admission: the TCP listener (frames with a length
//! prefix) and, when configured ([`RelayConfig::listen_ws_addr`]), the
//! WebSocket listener (one binary message per frame). Each connection is
//! a [`FrameReader`] and a [`FrameWriter`]; everything after the accept
//! (handshake slots and deadline, the queue, the idle timeout, the close)
//! is one generic `run_connection` for both. A WebSocket's HTTP upgrade
//! happens inside its handshake slot and deadline.
//!
//! Threads and queues:
//!
//! - The core and its (blocking) store run on one thread of their own, fed
//!   by a bounded channel of [`CORE_QUEUE_DEPTH`] commands. The async
//!   reactor never waits on SQLite.
//! - Each connection has a reader task (socket → [`ServerSession`] → core →
//!   replies) and a writer task (outgoing queue → socket). Replies to a
//!   device's own requests wait for room in its queue, which slows only that
//!   device. Frames caused by *other* devices (live deltas, payloads, device
//!   list changes) are offered without waiting: when the queue is full a
//!   live delta is dropped and the device gets one `PullNeeded` instead, so
//!   a slow device never stalls the relay or anyone else.
//! - Admission: the accept loop never waits. A connection that has not
//!   logged in holds a handshake slot, of which there are
//!   [`RelayConfig::handshakes_max`] in all and
//!   [`RelayConfig::handshakes_per_address_max`] per IP address, for at most
//!   [`RelayConfig::handshake_deadline_ms`]; past a cap it is refused at
//!   once with `TooManyConnections`. Logging in moves it to one of
//!   [`RelayConfig::connections_max`] logged-in slots. So connections that
//!   never log in can never keep logged-in devices out, and every refusal is
//!   counted ([`Relay::counters`]).
//! - The core reads the wall clock only here, in the shell, and passes it
//!   in; its challenges come from the operating system's random source.
//! - Across nodes: when the store is shared with other relay nodes (it has
//!   a [`ChangeFeed`]), a plain thread of its own waits on the feed and
//!   queues what it reports for the core thread like any command; the core
//!   reads what is new and the notices go out with the next group's.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tandem_storage::relay::{
    ChangeFeed, Changes, MemoryRelayStore, PostgresRelayStore, RelayStore, SqliteRelayStore,
};
use tandem_transport::codec::FrameError;
use tandem_transport::driver::ws::{self, Incoming};
use tandem_transport::{
    codec, ErrorCode, Frame, OsEntropy, ProtocolError, Request, Role, ServerSession,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::config::{RelayConfig, StoreLocation};
use crate::core::{ConnId, CoreConfig, Notice, Outcome, RelayCore};
use crate::hook::{LogOfflinePush, OfflinePushHook};
use crate::metrics::{self, Counters, CountersSnapshot, Gauges};

/// Commands waiting for the core thread.
pub const CORE_QUEUE_DEPTH: usize = 1024;
/// How long the change feed's thread waits for a report before it checks
/// whether the relay is stopping: the bound on a stop's wait for it.
pub const CHANGE_FEED_WAIT_MS: u64 = 250;
/// How long the change feed's thread waits after an error (the database
/// is down) before connecting again.
pub const CHANGE_FEED_RETRY_MS: u64 = 1_000;
/// Bytes read from a socket per read call.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// How long a closing connection keeps reading (and discarding) what the
/// device still sends, so that closing with unread input does not reset the
/// connection before the device reads our final `Error` frame.
pub const CLOSE_LINGER_MS: u64 = 1_000;

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("cannot open the relay store: {0}")]
    OpenStore(#[from] tandem_storage::OpenError),
    /// The core thread could not be started.
    #[error("cannot start the store thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Why a running relay stopped other than by its shutdown signal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The core thread ended unexpectedly (it panicked).
    #[error("the relay's store thread stopped")]
    CoreStopped,
}

/// A bound relay, ready to serve.
pub struct Relay {
    listener: TcpListener,
    /// The WebSocket listener, when configured.
    ws_listener: Option<TcpListener>,
    /// The metrics and health listener, when configured.
    metrics_listener: Option<TcpListener>,
    config: RelayConfig,
    store: Box<dyn RelayStore>,
    hook: Box<dyn OfflinePushHook>,
    counters: Arc<Counters>,
}

/// A handle on a relay's counters, readable while it serves.
#[derive(Debug, Clone)]
pub struct CountersHandle(Arc<Counters>);

impl CountersHandle {
    /// The counters' values now.
    pub fn snapshot(&self) -> CountersSnapshot {
        self.0.snapshot()
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Binds and serves `config` until `shutdown` completes.
pub async fn serve(
    config: RelayConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RelayError> {
    Relay::bind(config).await?.serve(shutdown).await?;
    Ok(())
}

/// Either way [`serve`] can fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// It could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// It stopped unexpectedly.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

impl Relay {
    /// Opens the store and binds the listen address. Port 0 picks a free
    /// port; see [`Relay::local_addr`].
    pub async fn bind(config: RelayConfig) -> Result<Relay, StartError> {
        let store: Box<dyn RelayStore> = match &config.store {
            StoreLocation::Memory => Box::new(MemoryRelayStore::new()),
            StoreLocation::Sqlite(path) => {
                let path = path.clone();
                // Opening migrates the file: blocking work, off the reactor.
                let opened = tokio::task::spawn_blocking(move || SqliteRelayStore::open(&path))
                    .await
                    .map_err(|e| StartError::Thread(std::io::Error::other(e)))?;
                Box::new(opened?)
            }
            StoreLocation::Postgres(url) => {
                let url = url.clone();
                // Connecting and migrating block on the network. The sync
                // `postgres` client runs a runtime of its own, which tokio
                // refuses inside one of its threads (spawn_blocking's too):
                // a plain thread, like the core's.
                let (tx, rx) = tokio::sync::oneshot::channel();
                std::thread::Builder::new()
                    .name("relay-store-open".into())
                    .spawn(move || {
                        let _ = tx.send(PostgresRelayStore::open(&url));
                    })
                    .map_err(StartError::Thread)?;
                let opened = rx.await.map_err(|_| {
                    StartError::Thread(std::io::Error::other("the store-opening thread panicked"))
                })?;
                Box::new(opened?)
            }
        };
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })
        };
        let listener = bind(config.listen_addr).await?;
        let ws_listener = match config.listen_ws_addr {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let metrics_listener = match config.metrics_addr {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Relay {
            listener,
            ws_listener,
            metrics_listener,
            config,
            store,
            hook: Box::new(LogOfflinePush),
            counters: Arc::new(Counters::default()),
        })
    }

    /// What the relay has refused and accepted so far; the handle stays
    /// readable while (and after) it serves.
    pub fn counters(&self) -> CountersHandle {
        CountersHandle(self.counters.clone())
    }

    /// Replaces the default (logging) offline-push hook.
    pub fn with_offline_push_hook(mut self, hook: Box<dyn OfflinePushHook>) -> Self {
        self.hook = hook;
        self
    }

    /// The address the relay listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The address the relay's WebSocket listener listens on, when it has
    /// one ([`RelayConfig::listen_ws_addr`]).
    pub fn local_ws_addr(&self) -> Option<SocketAddr> {
        self.ws_listener.as_ref().map(|listener| {
            listener
                .local_addr()
                .expect("a bound listener has an address")
        })
    }

    /// The address of the metrics and health listener, when it has one
    /// ([`RelayConfig::metrics_addr`]).
    pub fn local_metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|listener| {
            listener
                .local_addr()
                .expect("a bound listener has an address")
        })
    }

    /// Serves until `shutdown` completes, then tells every connection, waits
    /// for them to close, and stops the store thread (after its last
    /// commit).
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let Relay {
            listener,
            ws_listener,
            metrics_listener,
            config,
            mut store,
            hook,
            counters,
        } = self;
        let feed = store.change_feed();
        let mut core = RelayCore::new(
            store,
            CoreConfig::from_relay(&config),
            hook,
            Box::new(OsEntropy),
        )
        .with_counters(counters.clone());
        if feed.is_some() {
            core = core.with_cross_node();
        }
        let gauges = Arc::new(Gauges::starting());
        let (core_tx, core_rx) = mpsc::channel(CORE_QUEUE_DEPTH);
        let core_gauges = gauges.clone();
        let core_thread = std::thread::Builder::new()
            .name("tandem-relay-core".into())
            .spawn(move || run_core(core, core_rx, core_gauges))
            .map_err(|_| ServeError::CoreStopped)?;
        let feed_stop = Arc::new(AtomicBool::new(false));
        let feed_thread = match feed {
            None => None,
            Some(feed) => {
                let (core_tx, stop) = (core_tx.clone(), feed_stop.clone());
                let (counters, gauges) = (counters.clone(), gauges.clone());
                let thread = std::thread::Builder::new()
                    .name("tandem-relay-feed".into())
                    .spawn(move || run_feed(feed, core_tx, &stop, &counters, &gauges))
                    .map_err(|_| ServeError::CoreStopped)?;
                Some(thread)
            }
        };
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let admission = Arc::new(Admission {
            handshakes: Arc::new(Semaphore::new(config.handshakes_max)),
            per_address: Mutex::new(HashMap::new()),
            per_address_max: config.handshakes_per_address_max,
            logged_in: Arc::new(Semaphore::new(config.connections_max)),
            counters: counters.clone(),
            last_warned_ms: AtomicU64::new(0),
        });
        let metrics_task = metrics_listener.map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "relay serving metrics");
            }
            let sources = metrics::Sources {
                counters,
                gauges,
                caps: metrics::ConnectionCaps {
                    handshakes: admission.handshakes.clone(),
                    handshakes_max: config.handshakes_max,
                    logged_in: admission.logged_in.clone(),
                    logged_in_max: config.connections_max,
                },
            };
            tokio::spawn(metrics::serve(listener, sources, shutdown_rx.clone()))
        });
        let mut connections = JoinSet::new();
        let mut next_conn: ConnId = 1;
        tracing::info!(addr = %listener.local_addr().ok().map(|a| a.to_string()).unwrap_or_default(), "relay serving");
        if let Some(ws) = &ws_listener {
            tracing::info!(addr = %ws.local_addr().ok().map(|a| a.to_string()).unwrap_or_default(), "relay serving WebSocket");
        }

        tokio::pin!(shutdown);
        loop {
            // Reap finished connections so the set does not grow forever.
            while connections.try_join_next().is_some() {}
            let (kind, accepted) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => (LinkKind::Tcp, accepted),
                accepted = accept_on(ws_listener.as_ref()) => (LinkKind::WebSocket, accepted),
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Usually out of file descriptors: back off, keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let slot = match admission.handshake_slot(peer.ip()) {
                Ok(slot) => slot,
                Err(why) => {
                    admission.refuse(&stream, kind, peer, why);
                    continue;
                }
            };
            let conn = next_conn;
            next_conn += 1;
            tracing::debug!(conn, %peer, ?kind, "connection accepted");
            let _ = stream.set_nodelay(true);
            let served = Served {
                conn,
                peer,
                core_tx: core_tx.clone(),
                limits: ConnLimits {
                    queue_frames_max: config.queue_frames_max,
                    idle_timeout: Duration::from_millis(config.idle_timeout_ms),
                },
                // The deadline counts from the accept: a WebSocket's
                // upgrade spends from it too.
                deadline: Instant::now() + Duration::from_millis(config.handshake_deadline_ms),
                shutdown: shutdown_rx.clone(),
                slot,
                admission: admission.clone(),
            };
            connections.spawn(async move {
                match kind {
                    LinkKind::Tcp => {
                        let (read, write) = stream.into_split();
                        let reader = TcpReader {
                            read,
                            buffer: vec![0; READ_CHUNK_BYTES],
                        };
                        run_connection(served, reader, TcpWriter(write)).await;
                    }
                    LinkKind::WebSocket => serve_websocket(served, stream).await,
                }
            });
        }

        tracing::info!(connections = connections.len(), "relay shutting down");
        let _ = shutdown_tx.send(true);
        while connections.join_next().await.is_some() {}
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
        // The feed's thread holds a sender too: the core thread ends after
        // it does.
        feed_stop.store(true, Ordering::Release);
        drop(core_tx);
        let joined = tokio::task::spawn_blocking(move || {
            if let Some(feed) = feed_thread {
                let _ = feed.join();
            }
            core_thread.join()
        })
        .await;
        match joined {
            Ok(Ok(())) => {
                tracing::info!("relay stopped");
                Ok(())
            }
            _ => Err(ServeError::CoreStopped),
        }
    }
}

/// The caps on connections, and the counters of what they refused.
struct Admission {
    /// Connections that have not logged in yet.
    handshakes: Arc<Semaphore>,
    /// Handshakes in progress per source address.
    per_address: Mutex<HashMap<IpAddr, usize>>,
    per_address_max: usize,
    /// Logged-in connections.
    logged_in: Arc<Semaphore>,
    counters: Arc<Counters>,
    /// When a refusal was last logged at warn level, in ms since the epoch:
    /// a flood logs once a second, not once a connection.
    last_warned_ms: AtomicU64,
}

/// Why a connection was refused before it could say anything.
#[derive(Debug, Clone, Copy)]
enum Busy {
    /// Every handshake slot of the relay is taken.
    Handshakes,
    /// Every handshake slot of this address is taken.
    Address,
}

/// A connection's place while it logs in: given back when it logs in or
/// closes.
struct HandshakeSlot {
    _permit: OwnedSemaphorePermit,
    address: IpAddr,
    admission: Arc<Admission>,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut per_address = self
            .admission
            .per_address
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = per_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                per_address.remove(&self.address);
            }
        }
    }
}

impl Admission {
    fn handshake_slot(self: &Arc<Self>, address: IpAddr) -> Result<HandshakeSlot, Busy> {
        let permit = self
            .handshakes
            .clone()
            .try_acquire_owned()
            .map_err(|_| Busy::Handshakes)?;
        let mut per_address = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
        let count = per_address.entry(address).or_insert(0);
        if *count >= self.per_address_max {
            return Err(Busy::Address);
        }
        *count += 1;
        Ok(HandshakeSlot {
            _permit: permit,
            address,
            admission: self.clone(),
        })
    }

    /// Tells a refused connection why, without waiting (a fresh socket's
    /// buffer takes the few bytes), counts it, and drops it. A TCP device
    /// reads a `TooManyConnections` frame; a WebSocket one, which has not
    /// upgraded yet, an HTTP 503 with the same words.
    fn refuse(&self, stream: &TcpStream, kind: LinkKind, peer: SocketAddr, why: Busy) {
        let (counter, text) = match why {
            Busy::Handshakes => (
                &self.counters.handshakes_refused_busy,
                "the relay has as many logins in progress as it allows; retry later",
            ),
            Busy::Address => (
                &self.counters.handshakes_refused_per_address,
                "this address has as many logins in progress as the relay allows; retry later",
            ),
        };
        Counters::add(counter);
        self.log_refusal(peer, text);
        let bytes = match kind {
            LinkKind::Tcp => codec::encode(&Frame::error(ErrorCode::TooManyConnections, text)).ok(),
            LinkKind::WebSocket => Some(
                format!(
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                )
                .into_bytes(),
            ),
        };
        if let Some(bytes) = bytes {
            let _ = stream.try_write(&bytes);
        }
    }

    fn log_refusal(&self, peer: SocketAddr, text: &str) {
        let now = now_ms();
        let last = self.last_warned_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1_000
            && self
                .last_warned_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let counts = self.counters.snapshot();
            tracing::warn!(
                %peer, reason = text,
                refused_busy = counts.handshakes_refused_busy,
                refused_per_address = counts.handshakes_refused_per_address,
                timed_out = counts.handshakes_timed_out,
                refused_full = counts.connections_refused_full,
                "refusing connections"
            );
        } else {
            tracing::debug!(%peer, reason = text, "connection refused");
        }
    }
}

/// What the core thread is asked to do.
enum ToCore {
    /// A connection opened; here is how to reach it.
    Open { conn: ConnId, link: ConnLink },
    /// A validated request; the outcome goes back through `reply`.
    Request {
        conn: ConnId,
        request: Request,
        reply: oneshot::Sender<Outcome>,
    },
    /// A connection closed.
    Closed { conn: ConnId },
    /// Other relay nodes changed the shared store.
    Changed(Changes),
    /// Time passed (the node's lease may be due).
    Tick,
}

/// How the core thread reaches a connection without waiting on it.
struct ConnLink {
    queue: mpsc::Sender<Frame>,
    flags: Arc<ConnFlags>,
}

/// Signals to a connection's writer that must not be lost when its queue is
/// full. Each is set, then the writer is woken.
#[derive(Default)]
struct ConnFlags {
    pull_needed: AtomicBool,
    devices_changed: AtomicBool,
    /// The last frame to write before closing (`Kicked`), or `Some(None)` to
    /// close without a word.
    close: Mutex<Option<Option<Frame>>>,
    wake_writer: Notify,
    /// The writer has finished; the reader should stop too.
    writer_done: Notify,
    writer_finished: AtomicBool,
}

impl ConnFlags {
    fn set_close(&self, last: Option<Frame>) {
        let mut close = self.close.lock().unwrap_or_else(|p| p.into_inner());
        if close.is_none() {
            *close = Some(last);
        }
        drop(close);
        self.wake_writer.notify_one();
    }

    fn take_close(&self) -> Option<Option<Frame>> {
        self.close.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Commands the core thread takes into one group commit, at most.
pub const CORE_GROUP_MAX: usize = 256;

/// The core thread, until every sender is gone. Commands already waiting are
/// handled together in one store group, so their writes share one sync to
/// disk (group commit); replies and notices go out only after the group is
/// durable, so an acknowledgement is never a promise the disk has not kept.
fn run_core(mut core: RelayCore, mut rx: mpsc::Receiver<ToCore>, gauges: Arc<Gauges>) {
    /// Marks the core stopped however the thread ends, a panic included.
    struct Running(Arc<Gauges>);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.core_running.store(false, Ordering::Relaxed);
        }
    }
    let _running = Running(gauges.clone());
    let counters = core.counters();
    let mut links: HashMap<ConnId, ConnLink> = HashMap::new();
    while let Some(first) = rx.blocking_recv() {
        let mut commands = vec![first];
        while commands.len() < CORE_GROUP_MAX {
            match rx.try_recv() {
                Ok(command) => commands.push(command),
                Err(_) => break,
            }
        }
        // Across nodes: new accounts committed first, then, inside the
        // group, every account it locks taken in one sorted order, so two
        // nodes' groups never deadlock over them.
        let accounts = core.group_accounts(
            commands.iter().filter_map(|c| match c {
                ToCore::Request { conn, request, .. } => Some((*conn, request)),
                _ => None,
            }),
            now_ms(),
        );
        core.create_accounts(&accounts.create);
        // Without a group each operation commits on its own, which is
        // correct, only slower.
        let grouped = match core.begin_group() {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "could not start a group commit");
                gauges.store_ok.store(false, Ordering::Relaxed);
                false
            }
        };
        let group_began = std::time::Instant::now();
        if grouped {
            core.lock_accounts(&accounts.lock);
        }
        core.tick(now_ms());
        // Each request's outcome, in order, to dispatch once durable; and
        // the notices of other nodes' changes (`None`: no reply), which
        // wrote nothing and so go out even if the group fails.
        let mut handled = Vec::new();
        for command in commands {
            match command {
                ToCore::Open { conn, link } => {
                    links.insert(conn, link);
                }
                ToCore::Closed { conn } => {
                    links.remove(&conn);
                    core.disconnected(conn, now_ms());
                }
                ToCore::Request {
                    conn,
                    request,
                    reply,
                } => {
                    let outcome = core.handle(conn, request, now_ms());
                    handled.push((conn, Some(reply), outcome));
                }
                ToCore::Changed(changes) => {
                    handled.push((0, None, core.changed(changes, now_ms())));
                }
                ToCore::Tick => {}
            }
        }
        gauges
            .devices_online
            .store(core.online_count() as u64, Ordering::Relaxed);
        if grouped {
            let committed = core.commit_group();
            counters.store_commit.observe(group_began.elapsed());
            gauges.store_ok.store(committed.is_ok(), Ordering::Relaxed);
            if let Err(error) = committed {
                Counters::add(&counters.store_commits_failed);
                // Nothing of the group is durable: nothing of it may be
                // acknowledged or fanned out. Devices retry.
                for (_, reply, outcome) in handled {
                    match reply {
                        Some(reply) => {
                            let _ = reply.send(Outcome::store_failed(&error, true));
                        }
                        None => dispatch_notices(&links, outcome.notices, &counters),
                    }
                }
                continue;
            }
        }
        for (conn, reply, mut outcome) in handled {
            let Some(reply) = reply else {
                dispatch_notices(&links, outcome.notices, &counters);
                continue;
            };
            // A device must see its Welcome before anything another device
            // causes; so the Welcome goes into the new connection's queue
            // here, ahead of the notices of every later request. The queue
            // is fresh (nothing targets a connection before it logs in),
            // so there is room.
            if outcome.accepted == Some(Role::Device)
                && matches!(outcome.replies.first(), Some(Frame::Welcome(_)))
            {
                if let Some(link) = links.get(&conn) {
                    let welcome = outcome.replies.remove(0);
                    if let Err(error) = link.queue.try_send(welcome) {
                        outcome.replies.insert(0, error.into_inner());
                    }
                }
            }
            dispatch_notices(&links, std::mem::take(&mut outcome.notices), &counters);
            // The reader may be gone already; then nobody needs the reply.
            let _ = reply.send(outcome);
        }
    }
}

fn dispatch_notices(
    links: &HashMap<ConnId, ConnLink>,
    notices: Vec<(ConnId, Notice)>,
    counters: &Counters,
) {
    for (target, notice) in notices {
        if let Some(link) = links.get(&target) {
            deliver(target, link, notice, counters);
        }
    }
}

/// The change feed's thread: waits on the feed (blocking, so never on a
/// tokio thread) and queues each report for the core thread, until `stop`.
/// After an error it waits [`CHANGE_FEED_RETRY_MS`] and connects again,
/// which reports [`Changes::Everything`]: the core re-reads every account
/// it serves, so nothing missed meanwhile stays missed.
fn run_feed(
    mut feed: Box<dyn ChangeFeed>,
    core_tx: mpsc::Sender<ToCore>,
    stop: &AtomicBool,
    counters: &Counters,
    gauges: &Gauges,
) {
    let wait = Duration::from_millis(CHANGE_FEED_WAIT_MS);
    let mut failing = false;
    // The core renews the node's lease when it runs; an idle core is woken
    // for it.
    let tick_every = Duration::from_millis(crate::core::NODE_LEASE_RENEW_INTERVAL_MS / 2);
    let mut ticked = std::time::Instant::now();
    while !stop.load(Ordering::Acquire) {
        if ticked.elapsed() >= tick_every {
            ticked = std::time::Instant::now();
            if core_tx.blocking_send(ToCore::Tick).is_err() {
                return;
            }
        }
        let waited = feed.wait(wait);
        for lag_ms in feed.take_lags_ms() {
            counters
                .notification_lag
                .observe(Duration::from_millis(lag_ms));
        }
        match waited {
            Ok(None) => gauges.set_feed_connected(true),
            Ok(Some(changes)) => {
                gauges.set_feed_connected(true);
                if failing {
                    tracing::info!("change feed connected again");
                    failing = false;
                }
                if core_tx.blocking_send(ToCore::Changed(changes)).is_err() {
                    return;
                }
            }
            Err(error) => {
                gauges.set_feed_connected(false);
                if !failing {
                    tracing::warn!(%error, "change feed failed; other nodes' changes wait");
                    failing = true;
                }
                // In small steps, so that a stop is not held up.
                for _ in 0..CHANGE_FEED_RETRY_MS / CHANGE_FEED_WAIT_MS {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    std::thread::sleep(wait);
                }
            }
        }
    }
}

/// Offers a notice to a connection without ever waiting.
fn deliver(conn: ConnId, link: &ConnLink, notice: Notice, counters: &Counters) {
    let frame = match notice {
        Notice::Kicked { reason } => return link.flags.set_close(Some(Frame::Kicked { reason })),
        Notice::Superseded => return link.flags.set_close(None),
        Notice::Live(delta) => Frame::Live(delta),
        Notice::Payload { from, id, bytes } => Frame::DeliverPayload { from, id, bytes },
        Notice::DeviceListChanged => Frame::DeviceListChanged,
        Notice::PullNeeded => {
            if !link.flags.pull_needed.swap(true, Ordering::AcqRel) {
                Counters::add(&counters.pulls_forced);
                link.flags.wake_writer.notify_one();
            }
            return;
        }
    };
    let queued = match &frame {
        Frame::Live(_) => Some(&counters.live_queued),
        Frame::DeliverPayload { .. } => Some(&counters.payloads_delivered_live),
        _ => None,
    };
    match link.queue.try_send(frame) {
        Ok(()) => {
            if let Some(counter) = queued {
                Counters::add(counter);
            }
        }
        Err(mpsc::error::TrySendError::Full(frame)) => {
            let (flag, pull) = match frame {
                Frame::Live(_) => {
                    Counters::add(&counters.live_dropped);
                    (&link.flags.pull_needed, true)
                }
                Frame::DeviceListChanged => (&link.flags.devices_changed, false),
                // Stays stored; delivered on the device's next connection.
                _ => return,
            };
            if !flag.swap(true, Ordering::AcqRel) {
                if pull {
                    Counters::add(&counters.pulls_forced);
                }
                tracing::debug!(conn, "queue full; frame replaced by a flag");
                link.flags.wake_writer.notify_one();
            }
        }
        // The connection is closing: nobody to count it for.
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkKind {
    /// Frames with a length prefix.
    Tcp,
    /// One binary WebSocket message per frame.
    WebSocket,
}

/// The next connection on `listener`; never, without one.
async fn accept_on(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// The per-connection limits from the config.
#[derive(Debug, Clone, Copy)]
struct ConnLimits {
    queue_frames_max: usize,
    idle_timeout: Duration,
}

/// An accepted connection, whatever its link: what serving it needs.
struct Served {
    conn: ConnId,
    peer: SocketAddr,
    core_tx: mpsc::Sender<ToCore>,
    limits: ConnLimits,
    /// When the login must be done by (the upgrade included).
    deadline: Instant,
    shutdown: watch::Receiver<bool>,
    slot: HandshakeSlot,
    admission: Arc<Admission>,
}

/// What one read of a connection brought.
enum Read {
    /// Input (handed to the session) or traffic of the link's own.
    Input,
    /// The device closed the connection, or it failed.
    Ended,
    /// Input that can never be a frame; the device is told and the
    /// connection closed.
    Refused(FrameError),
}

/// The reading half of a connection, whatever carries its frames.
trait FrameReader: Send + 'static {
    /// Waits for input and hands it to `session`.
    fn read_into(&mut self, session: &mut ServerSession) -> impl Future<Output = Read> + Send;
    /// Waits for input and drops it; `false` once the connection ended.
    fn discard(&mut self) -> impl Future<Output = bool> + Send;
}

/// The writing half of a connection.
trait FrameWriter: Send + 'static {
    /// Writes one frame.
    fn write(&mut self, frame: &Frame) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Ends the connection from this side.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// Frames with a length prefix on a TCP stream.
struct TcpReader {
    read: OwnedReadHalf,
    buffer: Vec<u8>,
}

impl FrameReader for TcpReader {
    async fn read_into(&mut self, session: &mut ServerSession) -> Read {
        match self.read.read(&mut self.buffer).await {
            Ok(0) | Err(_) => Read::Ended,
            Ok(n) => {
                session.handle_bytes(&self.buffer[..n]);
                Read::Input
            }
        }
    }

    async fn discard(&mut self) -> bool {
        matches!(self.read.read(&mut self.buffer).await, Ok(n) if n > 0)
    }
}

struct TcpWriter(OwnedWriteHalf);

impl FrameWriter for TcpWriter {
    async fn write(&mut self, frame: &Frame) -> std::io::Result<()> {
        match encode(frame) {
            Some(bytes) => self.0.write_all(&bytes).await,
            None => Ok(()),
        }
    }

    async fn close(&mut self) {
        let _ = self.0.shutdown().await;
    }
}

/// One binary WebSocket message per frame.
struct WsReader(SplitStream<WebSocketStream<TcpStream>>);

impl FrameReader for WsReader {
    async fn read_into(&mut self, session: &mut ServerSession) -> Read {
        match ws::incoming(self.0.next().await) {
            Incoming::Frame(body) => {
                session.handle_message(&body);
                Read::Input
            }
            // WebSocket's own ping or pong is traffic too.
            Incoming::Ignored => Read::Input,
            Incoming::Refused(error) => Read::Refused(error),
            // Closed, failed, or anything a newer transport adds.
            _ => Read::Ended,
        }
    }

    async fn discard(&mut self) -> bool {
        !matches!(
            ws::incoming(self.0.next().await),
            Incoming::Ended | Incoming::Failed(_)
        )
    }
}

struct WsWriter(SplitSink<WebSocketStream<TcpStream>, Message>);

impl FrameWriter for WsWriter {
    async fn write(&mut self, frame: &Frame) -> std::io::Result<()> {
        match encode(frame) {
            Some(bytes) => self
                .0
                .send(ws::message(&bytes))
                .await
                .map_err(std::io::Error::other),
            None => Ok(()),
        }
    }

    async fn close(&mut self) {
        let _ = self.0.close().await;
    }
}

/// A frame as the codec encodes it; `None` (logged) for one above the
/// limit, which the core never builds.
fn encode(frame: &Frame) -> Option<Vec<u8>> {
    match codec::encode(frame) {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            tracing::error!(%error, kind = frame.kind(), "relay built an oversize frame");
            None
        }
    }
}

/// A connection on the WebSocket listener: the HTTP upgrade within the
/// handshake deadline, then the same connection as on TCP.
async fn serve_websocket(served: Served, stream: TcpStream) {
    let mut shutdown = served.shutdown.clone();
    let upgraded = tokio::select! {
        upgraded = tokio::time::timeout_at(served.deadline, ws::accept(stream)) => upgraded,
        _ = shutdown.changed() => return,
    };
    match upgraded {
        Ok(Ok(websocket)) => {
            let (sink, stream) = websocket.split();
            run_connection(served, WsReader(stream), WsWriter(sink)).await;
        }
        Ok(Err(error)) => {
            tracing::debug!(conn = served.conn, %error, "WebSocket upgrade failed");
        }
        Err(_elapsed) => {
            Counters::add(&served.admission.counters.handshakes_timed_out);
            served.admission.log_refusal(
                served.peer,
                "no WebSocket upgrade within the handshake deadline",
            );
        }
    }
}

async fn run_connection<R: FrameReader, W: FrameWriter>(served: Served, mut reader: R, writer: W) {
    let Served {
        conn,
        peer,
        core_tx,
        limits,
        deadline,
        mut shutdown,
        slot,
        admission,
    } = served;
    // Until the login is accepted this connection holds a handshake slot;
    // from the proof on, a logged-in slot too (given back if refused).
    let mut slot = Some(slot);
    let mut logged_in: Option<OwnedSemaphorePermit> = None;
    let deadline = tokio::time::sleep_until(deadline);
    tokio::pin!(deadline);
    let (queue_tx, queue_rx) = mpsc::channel(limits.queue_frames_max.max(1));
    let flags = Arc::new(ConnFlags::default());
    let link = ConnLink {
        queue: queue_tx.clone(),
        flags: flags.clone(),
    };
    if core_tx.send(ToCore::Open { conn, link }).await.is_err() {
        return;
    }
    let writer = tokio::spawn(run_writer(conn, writer, queue_rx, flags.clone()));
    let mut session = ServerSession::new();
    let mut shutting_down = false;
    'read: loop {
        tokio::select! {
            read = tokio::time::timeout(limits.idle_timeout, reader.read_into(&mut session)) => match read {
                Ok(Read::Input) => {}
                Ok(Read::Ended) => break 'read,
                Ok(Read::Refused(error)) => {
                    let error = ProtocolError::from(error);
                    tracing::info!(conn, %error, "refusing a device's input");
                    let _ = queue_tx.send(error.frame()).await;
                    break 'read;
                }
                Err(_) => {
                    tracing::info!(conn, "closing an idle connection");
                    break 'read;
                }
            },
            _ = flags.writer_done.notified() => break 'read,
            _ = &mut deadline, if slot.is_some() => {
                Counters::add(&admission.counters.handshakes_timed_out);
                admission.log_refusal(peer, "no login within the handshake deadline");
                let _ = queue_tx
                    .send(Frame::error(
                        ErrorCode::HandshakeTimeout,
                        "no login within the relay's deadline",
                    ))
                    .await;
                break 'read;
            }
            _ = shutdown.changed() => {
                shutting_down = true;
                let _ = queue_tx.send(Frame::error(ErrorCode::ShuttingDown, "the relay is shutting down")).await;
                break 'read;
            }
        };
        while let Some(request) = session.poll_request() {
            let request = match request {
                Ok(request) => request,
                Err(error) => {
                    tracing::info!(conn, %error, "refusing a device's input");
                    let _ = queue_tx.send(error.frame()).await;
                    break 'read;
                }
            };
            if matches!(request, Request::Proof { .. } | Request::AdminProof { .. }) {
                match admission.logged_in.clone().try_acquire_owned() {
                    Ok(permit) => logged_in = Some(permit),
                    Err(_) => {
                        Counters::add(&admission.counters.connections_refused_full);
                        admission.log_refusal(peer, "the relay serves as many logins as it allows");
                        let _ = queue_tx
                            .send(Frame::error(
                                ErrorCode::TooManyConnections,
                                "the relay serves as many devices as it allows; retry later",
                            ))
                            .await;
                        break 'read;
                    }
                }
            }
            let (reply_tx, reply_rx) = oneshot::channel();
            let command = ToCore::Request {
                conn,
                request,
                reply: reply_tx,
            };
            if core_tx.send(command).await.is_err() {
                break 'read;
            }
            let Ok(outcome) = reply_rx.await else {
                break 'read;
            };
            if let Some(role) = outcome.accepted {
                session.accept_login(role);
                slot = None;
            } else if outcome.close {
                logged_in = None;
            }
            for frame in outcome.replies {
                if queue_tx.send(frame).await.is_err() {
                    break 'read;
                }
            }
            if outcome.close {
                break 'read;
            }
        }
    }
    // The core drops its handle to our queue when it hears we closed; once
    // ours is gone too the writer drains what is queued and stops.
    let _ = core_tx.send(ToCore::Closed { conn }).await;
    drop(queue_tx);
    let _ = writer.await;
    drop((slot, logged_in));
    // Read and discard what the device still sends, for a bounded time, so
    // unread input does not turn our close into a reset that could destroy
    // the final frame before the device reads it (on a WebSocket this also
    // takes the device's answer to our Close). Not when the whole relay is
    // stopping: then nobody is sending, and shutdown should be quick.
    if shutting_down {
        tracing::debug!(conn, "connection closed for shutdown");
        return;
    }
    let linger = tokio::time::timeout(Duration::from_millis(CLOSE_LINGER_MS), async {
        while reader.discard().await {}
    });
    tokio::select! {
        _ = linger => {}
        _ = shutdown.changed() => {}
    }
    tracing::debug!(conn, "connection closed");
}

async fn run_writer<W: FrameWriter>(
    conn: ConnId,
    mut write: W,
    mut queue: mpsc::Receiver<Frame>,
    flags: Arc<ConnFlags>,
) {
    let result: std::io::Result<()> = async {
        loop {
            if let Some(last) = flags.take_close() {
                if let Some(frame) = last {
                    write.write(&frame).await?;
                }
                return Ok(());
            }
            if flags.pull_needed.swap(false, Ordering::AcqRel) {
                write.write(&Frame::PullNeeded).await?;
                continue;
            }
            if flags.devices_changed.swap(false, Ordering::AcqRel) {
                write.write(&Frame::DeviceListChanged).await?;
                continue;
            }
            tokio::select! {
                biased;
                _ = flags.wake_writer.notified() => {}
                frame = queue.recv() => match frame {
                    Some(frame) => write.write(&frame).await?,
                    None => return Ok(()),
                },
            }
        }
    }
    .await;
    if let Err(error) = result {
        tracing::debug!(conn, %error, "write failed");
    }
    write.close().await;
    flags.writer_finished.store(true, Ordering::Release);
    flags.writer_done.notify_one();
}
