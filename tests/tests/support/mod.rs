//! A relay on a loopback port and online devices of one account.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tandem_engine::model::*;
use tandem_engine::op::*;
use tandem_engine::*;
use tandem_online::{Backoff, OnlineConfig, OnlineDevice, Status};
use tandem_relay::harness;
pub use tandem_relay::harness::LoopbackRelay;
use tandem_relay::secret::Secret;
use tandem_relay::{RelayConfig, StoreLocation};

/// How long any wait in these tests may take before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// Starts a relay on 127.0.0.1:`port` (0 picks a free port) with the
/// default limits.
pub async fn start_relay(store: StoreLocation, secret: Secret, port: u16) -> LoopbackRelay {
    start_relay_with(store, secret, port, |_| {}).await
}

/// Like [`start_relay`], with `tweak` adjusting the config first.
pub async fn start_relay_with(
    store: StoreLocation,
    secret: Secret,
    port: u16,
    tweak: impl FnOnce(&mut RelayConfig),
) -> LoopbackRelay {
    let mut config = harness::loopback(store, secret, port);
    tweak(&mut config);
    LoopbackRelay::start(config)
        .await
        .expect("the relay starts")
}

pub fn account(name: &str) -> AccountId {
    AccountId::new(name).unwrap()
}

pub fn engine_at(path: &Path, account: &str, n: u8, name: &str, platform: Platform) -> Engine {
    let config = Config {
        store: StorePath::File(path.to_owned()),
        account: AccountId::new(account).unwrap(),
        device_name: name.into(),
        platform,
    };
    Engine::open(
        config,
        0,
        Box::new(SeededEntropy::starting_with(&[n; 16], n.into())),
    )
    .unwrap()
}

/// An online device presenting `token` (a login token) until it logs in.
pub fn online(
    engine: Engine,
    relay: SocketAddr,
    token: String,
    start_online: bool,
) -> OnlineDevice {
    online_at(engine, &relay.to_string(), token, start_online)
}

/// [`online`] with the relay named as a user would (`host:port`, or
/// `ws://host:port` for its WebSocket listener).
pub fn online_at(engine: Engine, relay: &str, token: String, start_online: bool) -> OnlineDevice {
    OnlineDevice::spawn(
        engine,
        OnlineConfig {
            start_online,
            backoff: Backoff {
                initial_ms: 20,
                max_ms: 200,
            },
            ..OnlineConfig::new(relay).with_login_token(token)
        },
    )
    .unwrap()
}

/// Waits until `check` holds for the device's status.
pub async fn wait_status(
    device: &OnlineDevice,
    what: &str,
    check: impl Fn(&Status) -> bool,
) -> Status {
    let mut status = device.status();
    let result = tokio::time::timeout(WAIT, status.wait_for(|s| check(s))).await;
    match result {
        Ok(Ok(s)) => s.clone(),
        _ => panic!(
            "timed out waiting for {what}; status: {:?}",
            device.status().borrow()
        ),
    }
}

/// The document heads and the whole projected state of a device.
pub async fn snapshot(device: &OnlineDevice) -> (Vec<String>, AccountState) {
    device
        .read(|e| (e.doc_heads().unwrap(), e.state().unwrap()))
        .await
        .unwrap()
}

/// Waits until every device holds the same document and projections.
pub async fn converge(devices: &[&OnlineDevice]) -> AccountState {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut snapshots = Vec::new();
        for device in devices {
            snapshots.push(snapshot(device).await);
        }
        if snapshots.windows(2).all(|w| w[0] == w[1]) {
            return snapshots.pop().unwrap().1;
        }
        if tokio::time::Instant::now() > deadline {
            for (i, s) in snapshots.iter().enumerate() {
                eprintln!(
                    "device {i}: heads {:?}, {} messages",
                    s.0,
                    s.1.messages.len()
                );
            }
            panic!("devices did not converge in time");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn user(id: &str) -> UserId {
    UserId::new(id).unwrap()
}

pub fn conv(id: &str) -> ConversationId {
    id.parse().unwrap()
}

pub fn incoming(id: &str, conversation: &str, sender: &str, at: i64) -> Op {
    Op::Message(MessageOp::Ingest {
        message: IncomingMessage {
            id: MessageId::new(id).unwrap(),
            conversation: conv(conversation),
            sender: user(sender),
            sent_at_ms: at,
            body: format!("text of {id}"),
        },
    })
}
