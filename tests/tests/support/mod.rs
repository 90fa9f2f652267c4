//! A relay on a loopback port and online devices of one account.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tandem_engine::model::*;
use tandem_engine::op::*;
use tandem_engine::*;
use tandem_online::{Backoff, OnlineConfig, OnlineDevice, Status};
use tandem_relay::secret::Secret;
use tandem_relay::{Relay, RelayConfig, StoreLocation};
use tokio::sync::oneshot;

/// How long any wait in these tests may take before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct TestRelay {
    pub addr: SocketAddr,
    pub secret: Secret,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestRelay {
    pub async fn start(store: StoreLocation, secret: Secret, port: u16) -> TestRelay {
        Self::start_with(store, secret, port, |_| {}).await
    }

    pub async fn start_with(
        store: StoreLocation,
        secret: Secret,
        port: u16,
        tweak: impl FnOnce(&mut RelayConfig),
    ) -> TestRelay {
        let mut config = RelayConfig::new(
            SocketAddr::from(([127, 0, 0, 1], port)),
            store,
            secret.clone(),
        );
        tweak(&mut config);
        let relay = Relay::bind(config).await.expect("relay binds");
        let addr = relay.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            relay
                .serve(async {
                    let _ = stopped.await;
                })
                .await
                .expect("relay serves");
        });
        TestRelay {
            addr,
            secret,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(WAIT, self.task.take().unwrap())
            .await
            .expect("relay stops in time")
            .unwrap();
    }

    pub fn token(&self, account: &str) -> String {
        self.token_valid_for(account, 3_600)
    }

    /// Tokens are deterministic: a fresh one needs another expiry.
    pub fn token_valid_for(&self, account: &str, seconds: u64) -> String {
        let expires = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + seconds;
        tandem_relay::token::issue(&self.secret, &AccountId::new(account).unwrap(), expires)
    }
}

pub fn engine_at(path: &Path, account: &str, n: u8, name: &str, platform: Platform) -> Engine {
    let config = Config {
        store: StorePath::File(path.to_owned()),
        account: AccountId::new(account).unwrap(),
        device_name: name.into(),
        platform,
    };
    Engine::open(config, 0, || DeviceId([n; 16])).unwrap()
}

pub fn online(
    engine: Engine,
    relay: SocketAddr,
    token: String,
    start_online: bool,
) -> OnlineDevice {
    OnlineDevice::spawn(
        engine,
        OnlineConfig {
            start_online,
            backoff: Backoff {
                initial_ms: 20,
                max_ms: 200,
            },
            ..OnlineConfig::new(relay.to_string(), token)
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
