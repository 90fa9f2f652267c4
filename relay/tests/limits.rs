//! The relay's limits: per-connection queue depth (slow consumers), the
//! connection cap, online devices and registered devices per account.

mod common;

use std::time::Duration;

use common::*;
use tandem_relay::core::{CoreConfig, RelayCore};
use tandem_relay::hook::LogOfflinePush;
use tandem_relay::{token, OverflowPolicy, StoreLocation};
use tandem_storage::relay::MemoryRelayStore;
use tandem_transport::driver::Connection;
use tandem_transport::frame::Hello;
use tandem_transport::limits::DEVICES_PER_ACCOUNT_MAX;
use tandem_transport::{
    ClientSession, ErrorCode, Frame, Platform, Request, SessionEvent, WireDelta, PROTOCOL_VERSION,
};
use tokio::net::TcpSocket;

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
async fn connections_past_the_cap_wait_until_one_closes() {
    let mut config = config(StoreLocation::Memory);
    config.connections_max = 2;
    let relay = start(config).await;
    let first = login(&relay, "alice", 1).await; // below the cap
    let mut second = login(&relay, "alice", 2).await; // at the cap
                                                      // Above the cap: the TCP connection is made, but not served yet.
    let token = relay.token(&account("alice"));
    let mut third = open(&relay, client_config("alice", 3, token)).await;
    let waiting = tokio::spawn(async move {
        let event = next(&mut third).await;
        (event, third)
    });
    // Served connections go on working meanwhile.
    round_trip(&mut second).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !waiting.is_finished(),
        "the third connection is not served while two are open"
    );
    drop(first);
    let (event, _third) = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert!(matches!(event, SessionEvent::Connected(_)), "{event:?}");
    relay.stop().await.expect("the relay stops");
}

/// A core with a memory store, for limits that need many devices.
fn core(devices_online_max: usize, overflow_policy: OverflowPolicy) -> RelayCore {
    let config = CoreConfig {
        secret: tandem_relay::secret::Secret::from_bytes([1; 32]),
        devices_online_max,
        overflow_policy,
        payloads_pending_max: 4,
    };
    RelayCore::new(
        Box::new(MemoryRelayStore::new()),
        config,
        Box::new(LogOfflinePush),
    )
}

fn hello_request(n: u16) -> Request {
    let secret = tandem_relay::secret::Secret::from_bytes([1; 32]);
    let mut id = [0u8; 16];
    id[..2].copy_from_slice(&n.to_be_bytes());
    Request::Hello(Hello {
        version: PROTOCOL_VERSION,
        account: account("alice"),
        device: tandem_transport::DeviceId(id),
        device_name: format!("d{n}"),
        platform: Platform::Web,
        token: token::issue(&secret, &account("alice"), u64::MAX),
        resume_cursor: 0,
    })
}

fn refusal(outcome: &tandem_relay::core::Outcome) -> Option<ErrorCode> {
    match outcome.replies.first() {
        Some(Frame::Welcome(_)) => None,
        Some(Frame::Error { code, .. }) => Some(*code),
        other => panic!("{other:?}"),
    }
}

#[test]
fn online_devices_per_account_below_at_above() {
    let max = 3;
    let mut relay = core(max, OverflowPolicy::RefuseNew);
    for n in 0..max as u16 {
        assert_eq!(refusal(&relay.handle(n.into(), hello_request(n), 1)), None);
    }
    let over = relay.handle(99, hello_request(99), 1);
    assert_eq!(refusal(&over), Some(ErrorCode::TooManyDevices));
    assert!(over.close);
    // One leaves; the newcomer fits again.
    relay.disconnected(0, 2);
    assert_eq!(refusal(&relay.handle(100, hello_request(99), 3)), None);
    assert_eq!(relay.online_count(), max);
}

#[test]
fn registered_devices_per_account_below_at_above() {
    // Each device logs in and out again, so only the registration limit
    // applies.
    let mut relay = core(1, OverflowPolicy::RefuseNew);
    for n in 0..DEVICES_PER_ACCOUNT_MAX as u16 {
        let outcome = relay.handle(n.into(), hello_request(n), 1);
        assert_eq!(refusal(&outcome), None, "device {n}");
        relay.disconnected(n.into(), 1);
    }
    let over = relay.handle(9999, hello_request(9999), 1);
    assert_eq!(refusal(&over), Some(ErrorCode::TooManyDevices));
    // A registered device still logs in at the limit.
    assert_eq!(refusal(&relay.handle(10_000, hello_request(7), 1)), None);
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
