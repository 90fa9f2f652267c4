//! Connecting: a relay address that never answers times out and is retried;
//! commands are answered while a connect is in progress; a refused
//! connection is reported at once with the relay and the next retry. All on
//! loopback, bounded.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tandem_engine::op::{ConversationOp, Op};
use tandem_engine::{AccountId, Config, DeviceId, Engine, Platform, StorePath};
use tandem_online::{
    Backoff, DeviceError, Link, LinkError, OnlineConfig, OnlineDevice, RelaysError, Status,
    StopReason,
};
use tokio::net::{TcpSocket, TcpStream};

/// How long any wait in these tests may take before it fails.
const WAIT: Duration = Duration::from_secs(20);

/// A loopback address whose TCP handshakes never complete: a listener that
/// never accepts, with its backlog filled, so the kernel drops every new
/// SYN (as an address behind a firewall that drops packets does).
struct Blackhole {
    addr: SocketAddr,
    _listener: tokio::net::TcpListener,
    _fill: Vec<TcpStream>,
}

impl Blackhole {
    async fn new() -> Blackhole {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let listener = socket.listen(1).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fill = Vec::new();
        // Connect until one attempt hangs: the backlog is full from then on.
        for _ in 0..64 {
            match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => fill.push(stream),
                Ok(Err(e)) => panic!("the blackhole refused instead of hanging: {e}"),
                Err(_) => {
                    return Blackhole {
                        addr,
                        _listener: listener,
                        _fill: fill,
                    }
                }
            }
        }
        panic!("the listener's backlog never filled");
    }
}

fn engine_at(path: &Path) -> Engine {
    let config = Config {
        store: StorePath::File(path.to_owned()),
        account: AccountId::new("alice").unwrap(),
        device_name: "phone".into(),
        platform: Platform::Ios,
    };
    Engine::open(
        config,
        0,
        Box::new(tandem_engine::SeededEntropy::starting_with(&[1; 16], 1)),
    )
    .unwrap()
}

fn pin(conversation: &str) -> Op {
    Op::Conversation(ConversationOp::Pin {
        conversation: conversation.parse().unwrap(),
    })
}

async fn wait_status(device: &OnlineDevice, what: &str, check: impl Fn(&Status) -> bool) -> Status {
    let mut status = device.status();
    let reached = match tokio::time::timeout(WAIT, status.wait_for(|s| check(s))).await {
        Ok(Ok(s)) => Some(s.clone()),
        _ => None,
    };
    reached.unwrap_or_else(|| {
        panic!(
            "timed out waiting for {what}: {:?}",
            device.status().borrow()
        )
    })
}

/// Answers within the test's bound, or fails it.
async fn bounded<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} was not answered"))
}

#[tokio::test]
async fn a_connect_without_answer_times_out_and_is_retried() {
    let hole = Blackhole::new().await;
    let dir = tempfile::tempdir().unwrap();
    let device = OnlineDevice::spawn(
        engine_at(&dir.path().join("d.db")),
        OnlineConfig {
            connect_timeout_ms: 200,
            backoff: Backoff {
                initial_ms: 20,
                max_ms: 40,
            },
            ..OnlineConfig::new(hole.addr.to_string())
        },
    )
    .unwrap();
    let status = wait_status(&device, "a second timed-out attempt", |s| {
        s.last_error.as_ref().is_some_and(|e| e.attempt >= 2)
    })
    .await;
    let error = status.last_error.unwrap();
    assert!(
        matches!(error.error, LinkError::ConnectTimedOut { after_ms: 200 }),
        "{error:?}"
    );
    assert_eq!(error.relay, hole.addr.to_string());
    let retry_in_ms = error.retry_in_ms.expect("it retries");
    assert!((10..=40).contains(&retry_in_ms), "{retry_in_ms}");
    assert!(error.retry_at().unwrap() > error.at);
    assert!(status.stopped.is_none());
    bounded("shutdown", device.shutdown()).await.unwrap();
}

#[tokio::test]
async fn commands_are_answered_while_a_connect_is_in_progress() {
    let hole = Blackhole::new().await;
    let dir = tempfile::tempdir().unwrap();
    let device = OnlineDevice::spawn(
        engine_at(&dir.path().join("d.db")),
        OnlineConfig {
            // Far longer than the test may take: the attempt is in progress
            // for all of it.
            connect_timeout_ms: 600_000,
            ..OnlineConfig::new(hole.addr.to_string())
        },
    )
    .unwrap();
    wait_status(&device, "connecting", |s| s.link == Link::Connecting).await;

    let performed = bounded("perform", device.perform(pin("u:bob")))
        .await
        .unwrap();
    assert_eq!(performed.recorded.map(|r| r.origin_seq), Some(1));
    let pinned = bounded(
        "a query",
        device.read(|e| e.conversation(&"u:bob".parse().unwrap()).unwrap()),
    )
    .await
    .unwrap()
    .expect("the conversation is listed");
    assert!(pinned.settings.pinned);
    let outbox = bounded("a query", device.read(|e| e.outbox(10).unwrap().len()))
        .await
        .unwrap();
    assert_eq!(outbox, 1, "durable, waiting to be pushed");
    bounded("ack_events", device.ack_events(0)).await.unwrap();
    let devices = bounded("devices", device.devices()).await;
    assert!(
        matches!(devices, Err(DeviceError::NotConnected)),
        "{devices:?}"
    );
    let kick = bounded("kick", device.kick_device(DeviceId([2; 16]))).await;
    assert!(matches!(kick, Err(DeviceError::NotConnected)), "{kick:?}");

    // The connect was still in progress all along.
    let status = device.status().borrow().clone();
    assert_eq!(status.link, Link::Connecting, "{status:?}");
    assert!(status.last_error.is_none(), "{status:?}");

    // Going offline ends the attempt at once.
    device.set_online(false).await.unwrap();
    wait_status(&device, "offline", |s| s.link == Link::Offline).await;
    let engine = bounded("shutdown", device.shutdown()).await.unwrap();
    assert_eq!(engine.outbox(10).unwrap().len(), 1);
}

#[tokio::test]
async fn a_shutdown_is_answered_while_a_connect_is_in_progress() {
    let hole = Blackhole::new().await;
    let dir = tempfile::tempdir().unwrap();
    let device = OnlineDevice::spawn(
        engine_at(&dir.path().join("d.db")),
        OnlineConfig {
            connect_timeout_ms: 600_000,
            ..OnlineConfig::new(hole.addr.to_string())
        },
    )
    .unwrap();
    wait_status(&device, "connecting", |s| s.link == Link::Connecting).await;
    bounded("shutdown", device.shutdown()).await.unwrap();
}

#[tokio::test]
async fn a_refused_connection_names_the_relay_and_the_next_retry() {
    // A loopback port nobody listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let device = OnlineDevice::spawn(
        engine_at(&dir.path().join("d.db")),
        OnlineConfig {
            backoff: Backoff {
                initial_ms: 40,
                max_ms: 80,
            },
            ..OnlineConfig::new(addr.to_string())
        },
    )
    .unwrap();
    let status = wait_status(&device, "three refused attempts", |s| {
        s.last_error.as_ref().is_some_and(|e| e.attempt >= 3)
    })
    .await;
    let error = status.last_error.unwrap();
    assert!(
        matches!(
            error.error,
            LinkError::Connect {
                kind: std::io::ErrorKind::ConnectionRefused,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.relay, addr.to_string());
    // The third retry waits between half and all of 80 ms (the cap).
    let retry_in_ms = error.retry_in_ms.expect("it retries");
    assert!((40..=80).contains(&retry_in_ms), "{retry_in_ms}");
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("{addr}: cannot connect")),
        "{text}"
    );

    // Going offline keeps the error but says no retry is coming.
    device.set_online(false).await.unwrap();
    let status = wait_status(&device, "no retry", |s| {
        s.last_error
            .as_ref()
            .is_some_and(|e| e.retry_in_ms.is_none())
    })
    .await;
    assert_eq!(status.link, Link::Offline);
    assert!(status.stopped.is_none());
    bounded("shutdown", device.shutdown()).await.unwrap();
}

#[tokio::test]
async fn a_token_the_session_cannot_send_stops_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let device = OnlineDevice::spawn(
        engine_at(&dir.path().join("d.db")),
        // Empty: above no limit, below the minimum of one byte.
        OnlineConfig::new("127.0.0.1:9").with_login_token(""),
    )
    .unwrap();
    let status = wait_status(&device, "stopped", |s| s.stopped.is_some()).await;
    assert!(
        matches!(status.stopped, Some(StopReason::Config(_))),
        "{status:?}"
    );
    assert_eq!(status.link, Link::Offline);
    bounded("shutdown", device.shutdown()).await.unwrap();
}

/// A relay address this build cannot reach stops the device at once with
/// the address's own error (no attempt, no retry), and the device still
/// answers local operations.
#[tokio::test]
async fn a_relay_address_of_an_unknown_scheme_or_wss_stops_the_device() {
    use tandem_transport::AddressError;
    type Check = fn(&AddressError) -> bool;
    let cases: [(&str, Check); 4] = [
        ("wss://relay.example:443", |e| {
            *e == AddressError::TlsNotSupported
        }),
        (
            "http://relay.example:80",
            |e| matches!(e, AddressError::UnknownScheme { scheme } if scheme == "http"),
        ),
        ("relay.example", |e| matches!(e, AddressError::Port { .. })),
        ("", |e| *e == AddressError::Empty),
    ];
    for (relay, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let device = OnlineDevice::spawn(
            engine_at(&dir.path().join("d.db")),
            OnlineConfig::new(relay),
        )
        .unwrap();
        let status = wait_status(&device, "stopped", |s| s.stopped.is_some()).await;
        match &status.stopped {
            Some(StopReason::Address(RelaysError::Address {
                index: 0,
                count: 1,
                address,
                error,
            })) => {
                assert!(expected(error), "{relay:?}: {error:?}");
                assert_eq!(address, relay);
            }
            other => panic!("{relay:?}: {other:?}"),
        }
        assert_eq!(status.stopped.as_ref().unwrap().as_str(), "address");
        assert!(status.last_error.is_none(), "no attempt was made");
        bounded("a local operation", device.perform(pin("u:bob")))
            .await
            .unwrap();
        bounded("shutdown", device.shutdown()).await.unwrap();
    }
}

/// A `ws://` address whose server answers HTTP but not the upgrade (as a
/// web server on the wrong port would) is a failed attempt, retried, with
/// the server's status.
#[tokio::test]
async fn a_ws_address_that_refuses_the_upgrade_is_retried_with_its_status() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Answers every request with 404, a bounded number of times.
    let server = tokio::spawn(async move {
        for _ in 0..3 {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let _ = stream
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let relay = format!("ws://{addr}/tandem");
    let device = OnlineDevice::spawn(
        engine_at(&dir.path().join("d.db")),
        OnlineConfig {
            backoff: Backoff {
                initial_ms: 20,
                max_ms: 40,
            },
            ..OnlineConfig::new(relay.clone())
        },
    )
    .unwrap();
    let status = wait_status(&device, "two refused upgrades", |s| {
        s.last_error.as_ref().is_some_and(|e| e.attempt >= 2)
    })
    .await;
    let error = status.last_error.unwrap();
    assert!(
        matches!(
            error.error,
            LinkError::Handshake {
                status: Some(404),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.relay, relay);
    assert!(status.stopped.is_none(), "a retry may help");
    bounded("shutdown", device.shutdown()).await.unwrap();
    server.abort();
}

/// Two relay addresses nobody listens on: the device alternates between
/// them, tries the second at once after the first fails (a quick wait,
/// within half the backoff's first step), and backs off only after both
/// failed; the status names the address of each attempt.
#[tokio::test]
async fn several_relays_are_tried_in_turn_backing_off_after_a_full_round() {
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string()
    };
    let (one, two) = (free(), free());
    let dir = tempfile::tempdir().unwrap();
    let backoff = Backoff {
        initial_ms: 400,
        max_ms: 400,
    };
    let device = OnlineDevice::spawn(
        engine_at(&dir.path().join("d.db")),
        OnlineConfig {
            backoff,
            ..OnlineConfig::with_relays([format!(" {one}"), two.clone()])
        },
    )
    .unwrap();
    let mut status = device.status();
    // Failed attempts as seen (a quick retry may overwrite one before it
    // is read; the ones read must follow the rule).
    let mut seen: Vec<(u32, String, u64)> = Vec::new();
    while seen.last().is_none_or(|(attempt, ..)| *attempt < 6) {
        bounded("the next failed attempt", status.changed())
            .await
            .unwrap();
        let now = status.borrow_and_update().clone();
        if let Some(error) = now.last_error {
            if seen.last().map(|(attempt, ..)| *attempt) != Some(error.attempt) {
                seen.push((error.attempt, error.relay, error.retry_in_ms.unwrap()));
            }
        }
    }
    // Attempts 1 and 3 at the first address (trimmed), 2 and 4 at the
    // second; after the first of a round the wait is short, after the
    // second the backoff's.
    for (attempt, relay, retry_in_ms) in &seen {
        let (expected, range) = if attempt % 2 == 1 {
            (&one, 0..=200)
        } else {
            (&two, 200..=400)
        };
        assert_eq!(relay, expected, "{seen:?}");
        assert!(range.contains(retry_in_ms), "{seen:?}");
    }
    assert!(seen.iter().any(|s| s.0 % 2 == 1), "{seen:?}");
    assert!(seen.iter().any(|s| s.0 % 2 == 0), "{seen:?}");
    bounded("shutdown", device.shutdown()).await.unwrap();
}

/// Every address is parsed when the device starts: one bad address among
/// good ones stops it, named with its place, before any attempt.
#[tokio::test]
async fn one_bad_relay_among_good_ones_stops_the_device_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let device = OnlineDevice::spawn(
        engine_at(&dir.path().join("d.db")),
        OnlineConfig::with_relays(["127.0.0.1:9", "relay.example", "127.0.0.1:10"]),
    )
    .unwrap();
    let status = wait_status(&device, "stopped", |s| s.stopped.is_some()).await;
    match &status.stopped {
        Some(StopReason::Address(RelaysError::Address {
            index: 1,
            count: 3,
            address,
            ..
        })) => assert_eq!(address, "relay.example"),
        other => panic!("{other:?}"),
    }
    assert!(status.last_error.is_none(), "no attempt was made");
    assert!(status.relay.is_none());
    bounded("shutdown", device.shutdown()).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let device = OnlineDevice::spawn(
        engine_at(&dir.path().join("d.db")),
        OnlineConfig::with_relays(Vec::<String>::new()),
    )
    .unwrap();
    let status = wait_status(&device, "stopped", |s| s.stopped.is_some()).await;
    assert!(
        matches!(
            status.stopped,
            Some(StopReason::Address(RelaysError::Empty))
        ),
        "{status:?}"
    );
    bounded("shutdown", device.shutdown()).await.unwrap();
}
