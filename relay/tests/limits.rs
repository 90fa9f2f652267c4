//! The relay's limits: per-connection queue depth (slow consumers), the
//! caps on connections (logged in, and still logging in, in all and per
//! address, with a deadline), online devices per account and per platform
//! under each overflow policy, and registered devices per account.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tandem_relay::core::{ConnId, CoreConfig, Notice, Outcome, RelayCore};
use tandem_relay::hook::LogOfflinePush;
use tandem_relay::secret::Secret;
use tandem_relay::token::{self, Purpose};
use tandem_relay::{OfflinePushPolicy, OverflowPolicy, StoreLocation};
use tandem_storage::relay::MemoryRelayStore;
use tandem_transport::codec::FrameDecoder;
use tandem_transport::driver::Connection;
use tandem_transport::frame::Hello;
use tandem_transport::limits::DEVICES_PER_ACCOUNT_MAX;
use tandem_transport::{
    ClientSession, DeviceId, DeviceRef, ErrorCode, Frame, OfflineReason, Platform, Request,
    SeededEntropy, SessionEvent, WireDelta, PROTOCOL_VERSION,
};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_device_is_told_to_pull_while_the_others_keep_receiving() {
    let mut config = config(StoreLocation::Memory);
    config.queue_frames_max = 4;
    let relay = start(config).await;
    let mut pusher = login(&relay, "alice", 1).await;
    let mut fast = login(&relay, "alice", 2).await;
    // The slow device has a small receive buffer and reads nothing while the
    // deltas flow, so the relay's socket buffer and then its queue fill.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let stream = socket.connect(relay.addr).await.unwrap();
    let token = relay.token(&account("alice"));
    let session = ClientSession::new(client_config("alice", 3, token), 0).unwrap();
    let mut slow = Connection::new(stream, session);
    assert!(matches!(next(&mut slow).await, SessionEvent::Connected(_)));

    // 32 MiB in all: well past the kernel's buffers (4 MiB here) plus four
    // queued frames.
    let delta_bytes = 256 * 1024;
    let count = 128u64;
    for chunk in 0..(count / 4) {
        let batch = (0..4)
            .map(|i| WireDelta::new(vec![(chunk * 4 + i) as u8; delta_bytes]))
            .collect();
        pusher.session().push(batch).unwrap();
        expect(&mut pusher, |e| {
            matches!(e, SessionEvent::PushAcked(_)).then_some(())
        })
        .await;
        // The fast device keeps up, batch by batch.
        for i in 0..4 {
            let seq = expect(&mut fast, |e| match e {
                SessionEvent::Live(d) => Some(d.seq),
                _ => None,
            })
            .await;
            assert_eq!(seq, chunk * 4 + i + 1);
        }
    }

    // Now the slow device reads: some live deltas, then PullNeeded.
    let mut highest_live = 0;
    loop {
        match next(&mut slow).await {
            SessionEvent::Live(d) => {
                assert!(d.seq > highest_live, "live deltas stay in order");
                highest_live = d.seq;
            }
            SessionEvent::PullNeeded => break,
            SessionEvent::DeviceListChanged => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(highest_live < count, "some live deltas were dropped");
    slow.session().pull(highest_live, 256).unwrap();
    let mut caught_up = highest_live;
    while caught_up < count {
        match next(&mut slow).await {
            SessionEvent::Deltas { deltas, more } => {
                caught_up = deltas.last().map_or(caught_up, |d| d.seq);
                if more {
                    slow.session().pull(caught_up, 256).unwrap();
                }
            }
            SessionEvent::Live(_) | SessionEvent::PullNeeded => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(caught_up, count, "pulling recovered everything");
    relay.stop().await.expect("the relay stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_past_the_connection_cap_are_refused_until_one_closes() {
    let mut config = config(StoreLocation::Memory);
    config.connections_max = 2;
    let relay = start(config).await;
    let first = login(&relay, "alice", 1).await; // below the cap
    let mut second = login(&relay, "alice", 2).await; // at the cap
                                                      // Above the cap: refused at once, with a code that says "retry".
    let token = relay.token(&account("alice"));
    let code = refused(&relay, client_config("alice", 3, token.clone())).await;
    assert_eq!(code, ErrorCode::TooManyConnections);
    assert!(code.retry_can_help());
    assert_eq!(relay.counters.snapshot().connections_refused_full, 1);
    // Served connections go on working meanwhile.
    round_trip(&mut second).await;
    drop(first);
    // The relay learns of the close asynchronously: retry, bounded. The
    // refused attempt never reached the store, so its token is unused.
    let mut admitted = false;
    for _ in 0..100 {
        let mut conn = open(&relay, client_config("alice", 3, token.clone())).await;
        match next(&mut conn).await {
            SessionEvent::Connected(_) => {
                admitted = true;
                break;
            }
            SessionEvent::Error {
                code: ErrorCode::TooManyConnections,
                ..
            } => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("{other:?}"),
        }
    }
    assert!(admitted, "admitted after a connection closed");
    relay.stop().await.expect("the relay stops");
}

/// A TCP connection from `source` (any 127.0.0.0/8 address is loopback)
/// that never sends a byte.
async fn idle_from(source: [u8; 4], relay: &LoopbackRelay) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("a loopback source address");
    socket.connect(relay.addr).await.unwrap()
}

/// What the relay sends a connection before closing it, within the wait.
async fn last_words(mut stream: TcpStream) -> Vec<Frame> {
    let mut received = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut received))
        .await
        .expect("the relay closes the connection")
        .expect("a clean close");
    let mut decoder = FrameDecoder::new();
    decoder.feed(&received);
    std::iter::from_fn(|| decoder.next_frame().unwrap()).collect()
}

fn error_code(frames: &[Frame]) -> ErrorCode {
    match frames.last() {
        Some(Frame::Error { code, .. }) => *code,
        other => panic!("expected an Error frame, got {other:?}"),
    }
}

/// Issue 11's reproduction, scaled down: more idle connections that never
/// log in than the relay serves logged-in connections (1,100 against 1,024
/// by default; 12 against 8 here) are held open, and devices still log in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_that_never_log_in_cannot_keep_devices_out() {
    let mut config = config(StoreLocation::Memory);
    config.connections_max = 8;
    config.devices_online_max = 8;
    config.handshakes_max = 16;
    config.handshakes_per_address_max = 12;
    config.handshake_deadline_ms = 60_000;
    let relay = start(config).await;
    let attacker = [127, 0, 0, 2];
    let mut held = Vec::new();
    for _ in 0..12 {
        held.push(idle_from(attacker, &relay).await);
    }
    // Past its address's cap, the attacker is refused at once.
    for _ in 0..3 {
        let stream = idle_from(attacker, &relay).await;
        assert_eq!(
            error_code(&last_words(stream).await),
            ErrorCode::TooManyConnections
        );
    }
    // Devices from another address log in while the idle ones are held,
    // up to the logged-in cap.
    let mut devices = Vec::new();
    for n in 1..=4 {
        devices.push(login(&relay, "alice", n).await);
    }
    for device in &mut devices {
        round_trip(device).await;
    }
    let counts = relay.counters.snapshot();
    assert_eq!(counts.handshakes_refused_per_address, 3);
    assert_eq!(counts.logins_accepted, 4);
    assert_eq!(held.len(), 12, "still open");
    // Past the relay-wide handshake cap, anyone is refused at once: 12
    // held plus 4 from a third address fill the 16 slots.
    let mut more = Vec::new();
    for _ in 0..4 {
        more.push(idle_from([127, 0, 0, 3], &relay).await);
    }
    let stream = idle_from([127, 0, 0, 4], &relay).await;
    assert_eq!(
        error_code(&last_words(stream).await),
        ErrorCode::TooManyConnections
    );
    assert_eq!(relay.counters.snapshot().handshakes_refused_busy, 1);
    // Closing idle ones gives their slots back.
    drop(more);
    drop(held);
    let mut admitted = None;
    for _ in 0..100 {
        let mut conn = open(
            &relay,
            client_config("alice", 5, relay.token(&account("alice"))),
        )
        .await;
        match next(&mut conn).await {
            SessionEvent::Connected(_) => {
                admitted = Some(conn);
                break;
            }
            SessionEvent::Error { code, .. } if code.retry_can_help() => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(admitted.is_some());
    relay.stop().await.expect("the relay stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_does_not_log_in_in_time_is_closed() {
    let mut config = config(StoreLocation::Memory);
    config.handshake_deadline_ms = 300;
    config.handshakes_per_address_max = 2;
    let relay = start(config).await;
    let started = tokio::time::Instant::now();
    let idle = idle_from([127, 0, 0, 5], &relay).await;
    let second = idle_from([127, 0, 0, 5], &relay).await;
    assert_eq!(
        error_code(&last_words(idle).await),
        ErrorCode::HandshakeTimeout
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        error_code(&last_words(second).await),
        ErrorCode::HandshakeTimeout
    );
    assert_eq!(relay.counters.snapshot().handshakes_timed_out, 2);
    // Their slots are back: the address can connect again.
    let third = idle_from([127, 0, 0, 5], &relay).await;
    assert_eq!(
        error_code(&last_words(third).await),
        ErrorCode::HandshakeTimeout
    );
    // A device that logged in is not held to the deadline.
    let mut device = login(&relay, "alice", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    round_trip(&mut device).await;
    relay.stop().await.expect("the relay stops");
}

// ---- The device limits, on the core itself (no IO, many devices). ----

const SECRET: [u8; 32] = [1; 32];

/// A core with a memory store and these limits.
fn core(
    devices_online_max: usize,
    per_platform: Option<usize>,
    overflow_policy: OverflowPolicy,
) -> RelayCore {
    let config = CoreConfig {
        secret: Secret::from_bytes(SECRET),
        devices_online_max,
        devices_online_per_platform_max: per_platform,
        overflow_policy,
        offline_push_policy: OfflinePushPolicy::EachOfflineDevice,
        payloads_pending_max: 4,
        enrollment_ttl_ms: 86_400_000,
        enrollment_renew_interval_ms: 3_600_000,
    };
    RelayCore::new(
        Box::new(MemoryRelayStore::new()),
        config,
        Box::new(LogOfflinePush),
        Box::new(SeededEntropy::new(1)),
    )
}

fn id(n: u16) -> DeviceId {
    let mut id = [0u8; 16];
    id[..2].copy_from_slice(&n.to_be_bytes());
    DeviceId(id)
}

fn login_token(n: u16) -> String {
    let mut token_id = [0u8; 16];
    token_id[..2].copy_from_slice(&n.to_be_bytes());
    token::issue_login(
        &Secret::from_bytes(SECRET),
        &account("alice"),
        Purpose::Login,
        u64::MAX,
        token_id,
    )
}

/// Device `n` of alice on `platform` logs in on connection `conn` (Hello,
/// then the Proof over the challenge) at `now_ms`, with a token of its own.
fn core_login(
    relay: &mut RelayCore,
    conn: ConnId,
    n: u16,
    platform: Platform,
    now_ms: u64,
) -> Outcome {
    let hello = Hello {
        version: PROTOCOL_VERSION,
        account: account("alice"),
        device: id(n),
        device_name: format!("d{n}"),
        platform,
        login_token: Some(login_token(n)),
        resume_cursor: 0,
    };
    let challenge = relay.handle(conn, Request::Hello(hello.clone()), now_ms);
    let [Frame::Challenge { nonce }] = challenge.replies[..] else {
        panic!("{challenge:?}")
    };
    let key = tandem_transport::DeviceKey::from_seed(&[n as u8; 32]);
    let signature = key.prove(&hello, &nonce);
    relay.handle(
        conn,
        Request::Proof {
            public_key: key.public_key(),
            signature,
        },
        now_ms,
    )
}

fn refusal_code(outcome: &Outcome) -> Option<ErrorCode> {
    match outcome.replies.first() {
        Some(Frame::Welcome(_)) => None,
        Some(Frame::Refused(r)) => Some(r.code),
        Some(Frame::Error { code, .. }) => Some(*code),
        other => panic!("{other:?}"),
    }
}

/// The devices an outcome displaced, with who displaced them.
fn displaced(outcome: &Outcome) -> Vec<(ConnId, DeviceId)> {
    outcome
        .notices
        .iter()
        .filter_map(|(conn, notice)| match notice {
            Notice::Kicked {
                reason: OfflineReason::Displaced { by },
            } => Some((*conn, by.id)),
            _ => None,
        })
        .collect()
}

#[test]
fn online_devices_per_account_below_at_above() {
    let max = 3;
    let mut relay = core(max, None, OverflowPolicy::RefuseNew);
    for n in 0..max as u16 {
        let outcome = core_login(&mut relay, n.into(), n, Platform::Web, 1);
        assert_eq!(refusal_code(&outcome), None);
    }
    let over = core_login(&mut relay, 99, 99, Platform::Web, 1);
    assert_eq!(refusal_code(&over), Some(ErrorCode::TooManyDevices));
    assert!(over.close);
    // The refusal lists the devices, so that one can be kicked from outside.
    let Some(Frame::Refused(refusal)) = over.replies.first() else {
        unreachable!()
    };
    assert_eq!(refusal.devices.iter().filter(|d| d.online).count(), max);
    // One leaves; the newcomer fits again (enrolled by its refused attempt:
    // its token, presented again, is an ordinary login).
    relay.disconnected(0, 2);
    assert_eq!(
        refusal_code(&core_login(&mut relay, 100, 99, Platform::Web, 3)),
        None
    );
    assert_eq!(relay.online_count(), max);
}

#[test]
fn online_devices_per_platform_below_at_above_under_every_policy() {
    for policy in [
        OverflowPolicy::RefuseNew,
        OverflowPolicy::KickLongestIdle,
        OverflowPolicy::ReplaceSamePlatform,
    ] {
        let mut relay = core(4, Some(2), policy);
        // Below and at the platform limit: two phones on ios, one on web.
        assert_eq!(
            refusal_code(&core_login(&mut relay, 1, 1, Platform::Ios, 10)),
            None
        );
        assert_eq!(
            refusal_code(&core_login(&mut relay, 2, 2, Platform::Ios, 20)),
            None
        );
        assert_eq!(
            refusal_code(&core_login(&mut relay, 3, 3, Platform::Web, 30)),
            None
        );
        // The earliest login (device 1) is now the most recently active.
        relay.handle(1, Request::Ping { nonce: 1 }, 40);
        // Above it: a third ios device.
        let over = core_login(&mut relay, 4, 4, Platform::Ios, 50);
        match policy {
            OverflowPolicy::RefuseNew => {
                assert_eq!(
                    refusal_code(&over),
                    Some(ErrorCode::TooManyDevices),
                    "{policy:?}"
                );
                assert!(displaced(&over).is_empty());
                assert_eq!(relay.online_count(), 3);
            }
            OverflowPolicy::KickLongestIdle => {
                assert_eq!(refusal_code(&over), None);
                assert_eq!(displaced(&over), vec![(2, id(4))], "the idlest ios device");
            }
            _ => {
                assert_eq!(refusal_code(&over), None);
                assert_eq!(displaced(&over), vec![(1, id(4))], "the earliest ios login");
            }
        }
        // Another platform is not limited by ios.
        assert_eq!(
            refusal_code(&core_login(&mut relay, 5, 5, Platform::Web, 60)),
            None,
            "{policy:?}"
        );
    }
}

#[test]
fn the_account_limit_under_each_policy_names_the_newcomer() {
    let newcomer = |n: u16, platform: Platform| DeviceRef {
        id: id(n),
        name: format!("d{n}"),
        platform,
    };
    for policy in [
        OverflowPolicy::KickLongestIdle,
        OverflowPolicy::ReplaceSamePlatform,
    ] {
        let mut relay = core(3, None, policy);
        core_login(&mut relay, 1, 1, Platform::Web, 10);
        core_login(&mut relay, 2, 2, Platform::Ios, 20);
        core_login(&mut relay, 3, 3, Platform::Web, 30);
        relay.handle(1, Request::Ping { nonce: 1 }, 35);
        // A fourth web device: the idlest (2, ios) or the earliest web
        // login (1).
        let over = core_login(&mut relay, 4, 4, Platform::Web, 40);
        let expected = match policy {
            OverflowPolicy::KickLongestIdle => 2,
            _ => 1,
        };
        assert_eq!(displaced(&over), vec![(expected, id(4))], "{policy:?}");
        let Some((_, Notice::Kicked { reason })) =
            over.notices.iter().find(|(c, _)| *c == expected)
        else {
            unreachable!()
        };
        assert_eq!(
            reason,
            &OfflineReason::Displaced {
                by: newcomer(4, Platform::Web)
            }
        );
        // A device of a platform nobody is on: replace-same-platform falls
        // back to the earliest login of any platform.
        let over = core_login(&mut relay, 5, 5, Platform::Macos, 50);
        assert_eq!(displaced(&over).len(), 1, "{policy:?}");
        assert_eq!(relay.online_count(), 3);
        // A displaced device's token does not log it in again.
        let again = core_login(&mut relay, 6, expected as u16, Platform::Web, 60);
        assert_eq!(refusal_code(&again), Some(ErrorCode::LoginTokenUsed));
    }
}

#[test]
fn registered_devices_per_account_below_at_above() {
    // Each device logs in and out again, so only the registration limit
    // applies.
    let mut relay = core(1, None, OverflowPolicy::RefuseNew);
    for n in 0..DEVICES_PER_ACCOUNT_MAX as u16 {
        let outcome = core_login(&mut relay, n.into(), n, Platform::Web, 1);
        assert_eq!(refusal_code(&outcome), None, "device {n}");
        relay.disconnected(n.into(), 1);
    }
    let over = core_login(&mut relay, 9999, 9999, Platform::Web, 1);
    assert_eq!(refusal_code(&over), Some(ErrorCode::TooManyDevices));
    // A registered device still logs in at the limit.
    assert_eq!(
        refusal_code(&core_login(&mut relay, 10_000, 7, Platform::Web, 1)),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_and_frees_its_online_slot() {
    let mut config = config(StoreLocation::Memory);
    config.idle_timeout_ms = 100;
    config.devices_online_max = 1;
    let relay = start(config).await;
    // This session never pings (ping_interval_ms = 0) and sends nothing.
    let mut silent = login(&relay, "alice", 1).await;
    let closed = expect(&mut silent, |e| match e {
        SessionEvent::Closed(reason) => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(closed, tandem_transport::CloseReason::TransportClosed);
    // Its slot is free: another device of the account gets in.
    let mut other = login(&relay, "alice", 2).await;
    round_trip(&mut other).await;
    relay.stop().await.expect("the relay stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_refused_for_the_limit_frees_a_slot_from_outside() {
    let mut config = config(StoreLocation::Memory);
    config.devices_online_max = 2;
    let relay = start(config).await;
    let mut a = login(&relay, "alice", 1).await;
    let mut b = login(&relay, "alice", 2).await;
    let refusal = refusal(
        &relay,
        client_config("alice", 3, relay.token(&account("alice"))),
    )
    .await;
    assert_eq!(refusal.code, ErrorCode::TooManyDevices);
    let online: Vec<_> = refusal
        .devices
        .iter()
        .filter(|d| d.online)
        .map(|d| d.id)
        .collect();
    assert_eq!(online, vec![device(1), device(2)]);
    // With a login token of the "manage" purpose, the refused device lists
    // and kicks without being admitted (it is not counted online).
    let manage = relay.manage_token(&account("alice"));
    let mut manager = open(&relay, client_config("alice", 3, manage.clone())).await;
    let SessionEvent::Managing(devices) = next(&mut manager).await else {
        panic!("a management connection")
    };
    assert_eq!(devices.len(), 3);
    assert!(matches!(
        manager.session().push(vec![]),
        Err(tandem_transport::CommandError::NotAllowed)
    ));
    manager.session().kick(device(1)).unwrap();
    manager.flush().await.unwrap();
    expect(&mut manager, |e| {
        matches!(e, SessionEvent::DeviceListChanged).then_some(())
    })
    .await;
    let reason = expect(&mut a, |e| match e {
        SessionEvent::Kicked(reason) => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        reason,
        OfflineReason::KickedByDevice {
            by: DeviceRef {
                id: device(3),
                name: "dev3".into(),
                platform: Platform::Linux
            }
        }
    );
    drop(manager);
    // The manage token was used up.
    assert_eq!(
        refused(&relay, client_config("alice", 3, manage)).await,
        ErrorCode::LoginTokenUsed
    );
    // The refused device was logged in by its refused attempt: its key
    // alone now gets it in (retry: the relay learns of the kick's close
    // asynchronously).
    let mut c = None;
    for _ in 0..100 {
        let mut conn = open(&relay, device_config("alice", 3)).await;
        match next(&mut conn).await {
            SessionEvent::Connected(_) => {
                c = Some(conn);
                break;
            }
            SessionEvent::Refused(r) if r.code == ErrorCode::TooManyDevices => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => panic!("{other:?}"),
        }
    }
    round_trip(c.as_mut().expect("admitted")).await;
    round_trip(&mut b).await;
    assert_eq!(relay.counters.snapshot().manage_accepted, 1);
    relay.stop().await.expect("the relay stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_device_hears_its_enrollment_renewed_and_an_offline_one_expires() {
    let mut config = config(StoreLocation::Memory);
    config.enrollment_ttl_ms = 1_000;
    config.enrollment_renew_interval_ms = 0;
    let relay = start(config).await;
    let mut a = login(&relay, "alice", 1).await;
    let before = tandem_relay::harness::now_ms();
    round_trip(&mut a).await;
    let expires = expect(&mut a, |e| match e {
        SessionEvent::CredentialsRenewed { expires_at_ms } => Some(*expires_at_ms),
        _ => None,
    })
    .await;
    assert!(expires >= before + 1_000, "{expires} {before}");
    drop(a);
    // Offline past its expiry, the key is refused; a login token enrolls
    // it again.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(
        refused(&relay, device_config("alice", 1)).await,
        ErrorCode::CredentialsExpired
    );
    drop(login(&relay, "alice", 1).await);
    relay.stop().await.expect("the relay stops");
}
