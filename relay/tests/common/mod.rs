//! Helpers for relay tests over real TCP on 127.0.0.1.

#![allow(dead_code)]

use std::time::Duration;

use tandem_relay::harness;
pub use tandem_relay::harness::LoopbackRelay;
use tandem_relay::secret::Secret;
use tandem_relay::{Relay, RelayConfig, StoreLocation};
use tandem_transport::driver::{tcp, Connection};
use tandem_transport::{AccountId, ClientConfig, DeviceId, Platform, SessionEvent};
use tokio::net::TcpStream;

/// Every wait in these tests ends by itself after this long.
pub const WAIT: Duration = Duration::from_secs(10);

/// A relay on a loopback port with the tests' secret and default limits.
pub fn config(store: StoreLocation) -> RelayConfig {
    harness::loopback(store, Secret::from_bytes([42; 32]), 0)
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

pub fn client_config(account_name: &str, n: u8, token: String) -> ClientConfig {
    let mut config = ClientConfig::new(
        account(account_name),
        device(n),
        format!("dev{n}"),
        Platform::Linux,
        token,
    );
    // Tests run far shorter than this; no pings interleave with assertions.
    config.ping_interval_ms = 0;
    config
}

pub type Conn = Connection<TcpStream>;

/// Opens a session; does not wait for the handshake.
pub async fn open(relay: &LoopbackRelay, config: ClientConfig) -> Conn {
    tcp::connect(relay.addr, config).await.unwrap()
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
pub async fn next(conn: &mut Conn) -> SessionEvent {
    tokio::time::timeout(WAIT, conn.next_event())
        .await
        .expect("an event within the wait")
        .expect("no IO error")
        .expect("the session has not ended")
}

/// Skips events until `pick` returns something, within [`WAIT`] overall.
pub async fn expect<T>(conn: &mut Conn, mut pick: impl FnMut(&SessionEvent) -> Option<T>) -> T {
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

/// Waits for a refused login: an Error event followed by Closed.
pub async fn refused(relay: &LoopbackRelay, config: ClientConfig) -> tandem_transport::ErrorCode {
    let mut conn = open(relay, config).await;
    let code = match next(&mut conn).await {
        SessionEvent::Error { code, .. } => code,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(matches!(next(&mut conn).await, SessionEvent::Closed(_)));
    code
}

/// Pings and waits for the pong: proves the connection is alive and that
/// everything the relay sent before the pong has been read.
pub async fn round_trip(conn: &mut Conn) {
    let now = conn.now_ms();
    let nonce = conn.session().ping(now).unwrap();
    expect(conn, |e| {
        matches!(e, SessionEvent::Pong { nonce: n, .. } if *n == nonce).then_some(())
    })
    .await;
}
