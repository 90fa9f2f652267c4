//! What only the relay's WebSocket listener can be sent: text messages,
//! a message header above the frame limit, a connection that never
//! upgrades, an upgrade while the handshake slots are taken. The protocol
//! itself runs over WebSocket in `tcp.rs` (`on_both_links!`).

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tandem_relay::StoreLocation;
use tandem_transport::codec;
use tandem_transport::driver::ws;
use tandem_transport::driver::ConnectError;
use tandem_transport::limits::FRAME_BYTES_MAX;
use tandem_transport::{ErrorCode, Frame, RelayAddress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A WebSocket to the relay's listener, upgraded, driven message by
/// message.
async fn upgraded(relay: &LoopbackRelay) -> WebSocketStream<TcpStream> {
    let address = relay.ws_address().expect("the test relay has a listener");
    let stream = TcpStream::connect(relay.ws_addr.unwrap()).await.unwrap();
    ws::handshake(&address, stream).await.unwrap().into_inner()
}

/// Every frame the relay sends until it closes, within [`WAIT`].
async fn frames_until_closed(socket: &mut WebSocketStream<TcpStream>) -> Vec<Frame> {
    let mut frames = Vec::new();
    loop {
        let item = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("the relay answers within the wait");
        match ws::incoming(item) {
            ws::Incoming::Frame(body) => frames.push(codec::decode_body(&body).unwrap()),
            ws::Incoming::Ignored => {}
            _ => return frames,
        }
    }
}

fn error_code(frames: &[Frame]) -> ErrorCode {
    match frames.last() {
        Some(Frame::Error { code, .. }) => *code,
        other => panic!("no Error frame last: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_message_gets_malformed_and_a_closed_connection() {
    let relay = start(config(StoreLocation::Memory)).await;
    let mut socket = upgraded(&relay).await;
    socket
        .send(Message::text("{\"hello\":true}"))
        .await
        .unwrap();
    assert_eq!(
        error_code(&frames_until_closed(&mut socket).await),
        ErrorCode::Malformed
    );
    // The relay serves on: a device logs in over WebSocket.
    LINK.scope(LinkKind::WebSocket, async {
        login(&relay, "alice", 1).await;
    })
    .await;
    relay.stop().await.expect("the relay stops");
}

/// A header announcing one byte more than the limit is refused on its own:
/// none of the body is sent, so the relay cannot have waited for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_above_the_frame_limit_is_refused_on_its_header() {
    let relay = start(config(StoreLocation::Memory)).await;
    let mut stream = upgraded(&relay).await.into_inner();
    // A masked binary frame's header (RFC 6455 §5.2): FIN and opcode 2,
    // the mask bit and a 64-bit length, the masking key.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(FRAME_BYTES_MAX as u64 + 1).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    stream.write_all(&header).await.unwrap();
    // The answer: one unmasked binary frame (an Error), then a close.
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("the relay closes within the wait");
    assert_eq!(answer.first(), Some(&0x82), "{answer:?}");
    let (len, at) = match answer[1] {
        126 => (u16::from_be_bytes([answer[2], answer[3]]) as usize, 4),
        n => (usize::from(n), 2),
    };
    let frame = codec::decode_body(&answer[at..at + len]).unwrap();
    assert!(
        matches!(
            frame,
            Frame::Error {
                code: ErrorCode::FrameTooLarge,
                ..
            }
        ),
        "{frame:?}"
    );
    relay.stop().await.expect("the relay stops");
}

/// The handshake slots are shared by both listeners: with the one slot of
/// this address taken by a TCP connection, a WebSocket upgrade is refused
/// at once with HTTP 503, and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_past_the_handshake_slots_is_refused_with_503() {
    let mut config = config(StoreLocation::Memory);
    config.handshakes_per_address_max = 1;
    let relay = start(config).await;
    let holder = TcpStream::connect(relay.addr).await.unwrap();
    // The relay has taken the slot once it answers a second TCP
    // connection with its refusal.
    let mut probe = Raw::connect(&relay).await;
    assert!(matches!(
        probe.receive().await,
        Some(Frame::Error {
            code: ErrorCode::TooManyConnections,
            ..
        })
    ));
    let address: RelayAddress = relay.ws_address().unwrap();
    let refused = tandem_transport::driver::connect(&address, device_config("alice", 1)).await;
    match refused {
        Err(ConnectError::Handshake { status, reason }) => {
            assert_eq!(status, Some(503), "{reason}");
            assert!(reason.contains("retry later"), "{reason}");
        }
        other => panic!("expected a refused upgrade, got {other:?}"),
    }
    assert_eq!(relay.counters.snapshot().handshakes_refused_per_address, 2);
    drop(holder);
    relay.stop().await.expect("the relay stops");
}

/// A connection to the WebSocket listener that never upgrades holds its
/// handshake slot only until the handshake deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_upgrades_is_closed_at_the_handshake_deadline() {
    let mut config = config(StoreLocation::Memory);
    config.handshake_deadline_ms = 300;
    let relay = start(config).await;
    let mut silent = TcpStream::connect(relay.ws_addr.unwrap()).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, silent.read_to_end(&mut rest))
        .await
        .expect("the relay closes within the wait")
        .unwrap();
    assert!(
        rest.is_empty(),
        "nothing is said before an upgrade: {rest:?}"
    );
    assert_eq!(relay.counters.snapshot().handshakes_timed_out, 1);
    // Half an upgrade (a request line and no end of headers) is no better.
    let mut half = TcpStream::connect(relay.ws_addr.unwrap()).await.unwrap();
    half.write_all(b"GET / HTTP/1.1\r\nHost: relay\r\n")
        .await
        .unwrap();
    let _ = tokio::time::timeout(WAIT, half.read_to_end(&mut rest))
        .await
        .expect("the relay closes within the wait");
    assert_eq!(relay.counters.snapshot().handshakes_timed_out, 2);
    relay.stop().await.expect("the relay stops");
}

/// Not a WebSocket request at all (a TCP device on the wrong port): the
/// upgrade fails and the connection closes; the relay serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tandem_frames_on_the_websocket_port_close_the_connection() {
    let relay = start(config(StoreLocation::Memory)).await;
    let mut wrong = TcpStream::connect(relay.ws_addr.unwrap()).await.unwrap();
    let hello = codec::encode(&Frame::Hello(raw_hello(&relay, "alice", 1))).unwrap();
    wrong.write_all(&hello).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), wrong.read_to_end(&mut rest))
        .await
        .expect("the relay closes within the wait");
    LINK.scope(LinkKind::WebSocket, async {
        login(&relay, "alice", 2).await;
    })
    .await;
    relay.stop().await.expect("the relay stops");
}
