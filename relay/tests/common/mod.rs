//! Helpers for relay tests over real TCP on 127.0.0.1.
//!
//! Every test relay listens for WebSocket too, and the sessions a test
//! opens use the link of the task's [`LINK`] (TCP when unset):
//! `on_both_links!(test_name);` above an `async fn test_name()` runs it
//! once over each, so one body covers both listeners.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_relay::harness;
pub use tandem_relay::harness::LoopbackRelay;
use tandem_relay::hook::{OfflineDelta, OfflinePushHook};
use tandem_relay::secret::Secret;
use tandem_relay::{Relay, RelayConfig, StoreLocation};
use tandem_storage::pg_test::TestDb;
use tandem_transport::driver::{Connection, Link, RelayLink};
use tandem_transport::{
    AccountId, ClientConfig, DeviceId, DeviceKey, ErrorCode, Platform, Refusal, SessionEvent,
};
use tokio::net::TcpStream;

/// Which of the relay's listeners a test's sessions use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// The TCP listener: frames with a length prefix.
    Tcp,
    /// The WebSocket listener: one binary message per frame.
    WebSocket,
}

tokio::task_local! {
    /// The link [`open`] uses in this task.
    pub static LINK: LinkKind;
}

/// Runs `async fn $name()` as two tests in a module of the same name,
/// `tcp` and `websocket`, each with [`LINK`] set for its sessions.
#[macro_export]
macro_rules! on_both_links {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tcp() {
                $crate::common::LINK
                    .scope($crate::common::LinkKind::Tcp, super::$name())
                    .await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn websocket() {
                $crate::common::LINK
                    .scope($crate::common::LinkKind::WebSocket, super::$name())
                    .await
            }
        }
    };
}

/// Every wait in these tests ends by itself after this long.
pub const WAIT: Duration = Duration::from_secs(10);

/// A relay on a loopback port (and a WebSocket listener on another) with
/// the tests' secret and default limits.
pub fn config(store: StoreLocation) -> RelayConfig {
    harness::loopback_with_ws(store, Secret::from_bytes([42; 32]))
}

pub async fn start(config: RelayConfig) -> LoopbackRelay {
    LoopbackRelay::start(config)
        .await
        .expect("the relay starts")
}

pub async fn start_with(config: RelayConfig, setup: impl FnOnce(Relay) -> Relay) -> LoopbackRelay {
    LoopbackRelay::start_with(config, setup)
        .await
        .expect("the relay starts")
}

pub fn account(name: &str) -> AccountId {
    AccountId::new(name).unwrap()
}

pub fn device(n: u8) -> DeviceId {
    DeviceId([n; 16])
}

/// Device `n`'s signing key.
pub fn key(n: u8) -> DeviceKey {
    DeviceKey::from_seed(&[n; 32])
}

/// Device `n` logging in with its key alone.
pub fn device_config(account_name: &str, n: u8) -> ClientConfig {
    let mut config = ClientConfig::new(
        account(account_name),
        device(n),
        format!("dev{n}"),
        Platform::Linux,
        key(n),
    );
    // Tests run far shorter than this; no pings interleave with assertions.
    config.ping_interval_ms = 0;
    config
}

/// Device `n` presenting a login token.
pub fn client_config(account_name: &str, n: u8, token: String) -> ClientConfig {
    device_config(account_name, n).with_login_token(token)
}

pub type Conn = Connection<RelayLink>;

/// Opens a session over the task's [`LINK`]; does not wait for the
/// handshake.
pub async fn open(relay: &LoopbackRelay, config: ClientConfig) -> Conn {
    let address = match LINK.try_with(|link| *link).unwrap_or(LinkKind::Tcp) {
        LinkKind::Tcp => relay.tcp_address(),
        LinkKind::WebSocket => relay
            .ws_address()
            .expect("the test relay listens for WebSocket"),
    };
    tandem_transport::driver::connect(&address, config)
        .await
        .unwrap()
}

/// Opens a session and waits until it is connected.
pub async fn login(relay: &LoopbackRelay, account_name: &str, n: u8) -> Conn {
    let token = relay.token(&account(account_name));
    login_with(relay, client_config(account_name, n, token)).await
}

pub async fn login_with(relay: &LoopbackRelay, config: ClientConfig) -> Conn {
    let mut conn = open(relay, config).await;
    match next(&mut conn).await {
        SessionEvent::Connected(_) => conn,
        other => panic!("expected Connected, got {other:?}"),
    }
}

/// The next event, within [`WAIT`].
pub async fn next<L: Link>(conn: &mut Connection<L>) -> SessionEvent {
    tokio::time::timeout(WAIT, conn.next_event())
        .await
        .expect("an event within the wait")
        .expect("no IO error")
        .expect("the session has not ended")
}

/// Skips events until `pick` returns something, within [`WAIT`] overall.
pub async fn expect<T, L: Link>(
    conn: &mut Connection<L>,
    mut pick: impl FnMut(&SessionEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline, conn.next_event())
            .await
            .expect("the expected event within the wait")
            .expect("no IO error")
            .expect("the session has not ended before the expected event");
        if let Some(found) = pick(&event) {
            return found;
        }
    }
}

/// Waits for a refused login (a `Refused` frame, or an `Error` before it
/// could be decided) followed by Closed, and returns its code.
pub async fn refused(relay: &LoopbackRelay, config: ClientConfig) -> ErrorCode {
    refusal(relay, config).await.code
}

/// [`refused`], with the whole refusal.
pub async fn refusal(relay: &LoopbackRelay, config: ClientConfig) -> Refusal {
    let mut conn = open(relay, config).await;
    let refusal = match next(&mut conn).await {
        SessionEvent::Refused(refusal) => refusal,
        SessionEvent::Error { code, text } => Refusal {
            code,
            text,
            reason: None,
            devices: Vec::new(),
        },
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(matches!(next(&mut conn).await, SessionEvent::Closed(_)));
    refusal
}

/// Pings and waits for the pong: proves the connection is alive and that
/// everything the relay sent before the pong has been read.
pub async fn round_trip<L: Link>(conn: &mut Connection<L>) {
    let now = conn.now_ms();
    let nonce = conn.session().ping(now).unwrap();
    expect(conn, |e| {
        matches!(e, SessionEvent::Pong { nonce: n, .. } if *n == nonce).then_some(())
    })
    .await;
}

/// A connection driven frame by frame, for tests that send what a
/// `ClientSession` never would.
pub struct Raw {
    pub stream: TcpStream,
    decoder: tandem_transport::codec::FrameDecoder,
}

impl Raw {
    pub async fn connect(relay: &LoopbackRelay) -> Raw {
        Raw {
            stream: TcpStream::connect(relay.addr).await.unwrap(),
            decoder: tandem_transport::codec::FrameDecoder::new(),
        }
    }

    pub async fn send(&mut self, frame: &tandem_transport::Frame) {
        tandem_transport::driver::write_frame(&mut self.stream, frame)
            .await
            .unwrap();
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        // The relay may close before taking all of a large write; fine.
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next frame, within [`WAIT`]; `None` once the relay closed.
    pub async fn receive(&mut self) -> Option<tandem_transport::Frame> {
        tokio::time::timeout(
            WAIT,
            tandem_transport::driver::read_frame(&mut self.stream, &mut self.decoder),
        )
        .await
        .expect("a frame within the wait")
        .expect("a well-formed frame")
    }

    /// Every frame until the relay closes.
    pub async fn rest(&mut self) -> Vec<tandem_transport::Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = self.receive().await {
            frames.push(frame);
        }
        frames
    }

    /// Sends `hello` and returns the relay's challenge.
    pub async fn hello(
        &mut self,
        hello: &tandem_transport::frame::Hello,
    ) -> tandem_transport::auth::ChallengeNonce {
        self.send(&tandem_transport::Frame::Hello(hello.clone()))
            .await;
        match self.receive().await {
            Some(tandem_transport::Frame::Challenge { nonce }) => nonce,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    /// Sends the proof `key` makes for `hello` and `nonce`.
    pub async fn prove(
        &mut self,
        key: &DeviceKey,
        hello: &tandem_transport::frame::Hello,
        nonce: &tandem_transport::auth::ChallengeNonce,
    ) {
        let proof = tandem_transport::Frame::Proof {
            public_key: key.public_key(),
            signature: key.prove(hello, nonce),
        };
        self.send(&proof).await;
    }

    /// Logs device `n` in (with a fresh login token) and returns the raw
    /// connection after its Welcome.
    pub async fn login(relay: &LoopbackRelay, account_name: &str, n: u8) -> Raw {
        let mut raw = Raw::connect(relay).await;
        let hello = raw_hello(relay, account_name, n);
        let nonce = raw.hello(&hello).await;
        raw.prove(&key(n), &hello, &nonce).await;
        match raw.receive().await {
            Some(tandem_transport::Frame::Welcome(_)) => raw,
            other => panic!("expected a Welcome, got {other:?}"),
        }
    }
}

/// Device `n`'s Hello with a fresh login token.
pub fn raw_hello(
    relay: &LoopbackRelay,
    account_name: &str,
    n: u8,
) -> tandem_transport::frame::Hello {
    tandem_transport::frame::Hello {
        version: tandem_transport::PROTOCOL_VERSION,
        account: account(account_name),
        device: device(n),
        device_name: format!("raw{n}"),
        platform: Platform::Web,
        login_token: Some(relay.token(&account(account_name))),
        resume_cursor: 0,
    }
}

/// An offline-push hook that records what it hears: (device, new deltas,
/// head seq) per call.
pub struct RecordingHook(pub Arc<Mutex<Vec<(DeviceId, usize, u64)>>>);

impl OfflinePushHook for RecordingHook {
    fn delta_for_offline_device(&mut self, event: &OfflineDelta<'_>) {
        self.0
            .lock()
            .unwrap()
            .push((event.device, event.deltas_new, event.head_seq));
    }
}

/// Runs `test` on a tokio runtime with a fresh PostgreSQL database of its
/// own (`pg_test`). The database is made and dropped outside the runtime:
/// the sync `postgres` client runs a runtime of its own, which tokio
/// refuses inside one.
pub fn with_test_db<F: std::future::Future<Output = ()>>(test: impl FnOnce(Arc<TestDb>) -> F) {
    let db = Arc::new(TestDb::create());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(test(db.clone()));
    drop(runtime);
    drop(db);
}

/// Runs `f` on a plain thread (the sync client `TestDb::admin` gives
/// runs a runtime of its own), for a test that acts on its database from
/// outside.
pub async fn on_admin<T: Send + 'static>(
    db: &Arc<TestDb>,
    f: impl FnOnce(&TestDb) -> T + Send + 'static,
) -> T {
    let db = db.clone();
    tokio::task::spawn_blocking(move || {
        std::thread::spawn(move || f(&db))
            .join()
            .expect("the thread")
    })
    .await
    .expect("the blocking task")
}
