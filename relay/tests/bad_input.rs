//! Hostile and broken input over real TCP: each case gets an `Error` frame
//! where the relay can still send one and a closed connection, while the
//! relay keeps serving everyone else and loses nothing it accepted.

mod common;

use common::*;
use tandem_transport::codec::{self, FrameDecoder};
use tandem_transport::frame::{Hello, ProtocolVersion};
use tandem_transport::limits::{DELTAS_PER_PUSH_MAX, FRAME_BYTES_MAX};
use tandem_transport::{ContentId, ErrorCode, Frame, SessionEvent, WireDelta};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn hello(relay: &LoopbackRelay, account_name: &str, n: u8) -> Hello {
    raw_hello(relay, account_name, n)
}

fn enc(frame: &Frame) -> Vec<u8> {
    codec::encode(frame).unwrap()
}

/// Writes `bytes` (then, if `half_close`, ends the write side) and returns
/// every frame the relay sent until it closed the connection.
async fn exchange(relay: &LoopbackRelay, bytes: &[u8], half_close: bool) -> Vec<Frame> {
    let mut stream = TcpStream::connect(relay.addr).await.unwrap();
    // The relay may close before taking all of a large write; that is fine.
    let _ = stream.write_all(bytes).await;
    if half_close {
        stream.shutdown().await.unwrap();
    }
    let mut received = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut received))
        .await
        .expect("the relay closes the connection")
        .expect("a clean close, not a reset");
    let mut decoder = FrameDecoder::new();
    decoder.feed(&received);
    std::iter::from_fn(|| decoder.next_frame().unwrap()).collect()
}

fn error_code(frames: &[Frame]) -> ErrorCode {
    match frames.last() {
        Some(Frame::Error { code, .. }) => *code,
        other => panic!("expected an Error frame last, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_input_is_refused_and_the_relay_keeps_serving() {
    let relay = start(config(tandem_relay::StoreLocation::Memory)).await;
    let mut good = login(&relay, "alice", 1).await;
    let accepted = vec![WireDelta::new(b"accepted".to_vec())];
    good.session().push(accepted.clone()).unwrap();
    expect(&mut good, |e| {
        matches!(e, SessionEvent::PushAcked(_)).then_some(())
    })
    .await;

    // Garbage inside a well-formed length prefix.
    let frames = exchange(&relay, &[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff], false).await;
    assert_eq!(error_code(&frames), ErrorCode::Malformed);
    // Text where a length prefix should be: "GET " announces ~1.2 GB.
    let frames = exchange(&relay, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false).await;
    assert_eq!(error_code(&frames), ErrorCode::FrameTooLarge);
    // A prefix just above the limit, refused before any body is sent.
    let frames = exchange(&relay, &((FRAME_BYTES_MAX + 1) as u32).to_be_bytes(), false).await;
    assert_eq!(error_code(&frames), ErrorCode::FrameTooLarge);
    // A truncated frame, then the device hangs up: nothing to answer.
    let whole = enc(&Frame::Hello(hello(&relay, "alice", 5)));
    assert!(exchange(&relay, &whole[..whole.len() / 2], true)
        .await
        .is_empty());
    // A frame before Hello.
    let frames = exchange(&relay, &enc(&Frame::Ping { nonce: 1 }), false).await;
    assert_eq!(error_code(&frames), ErrorCode::FrameBeforeHello);
    // An unknown major version.
    let mut h = hello(&relay, "alice", 5);
    h.version = ProtocolVersion { major: 9, minor: 0 };
    let frames = exchange(&relay, &enc(&Frame::Hello(h)), false).await;
    assert_eq!(error_code(&frames), ErrorCode::UnsupportedVersion);
    // Something other than the Proof after the Hello.
    let mut raw = Raw::connect(&relay).await;
    raw.hello(&hello(&relay, "alice", 5)).await;
    raw.send(&Frame::ListDevices).await;
    assert_eq!(error_code(&raw.rest().await), ErrorCode::FrameBeforeHello);
    // A proof that is not a valid key and signature at all.
    let mut raw = Raw::connect(&relay).await;
    raw.hello(&hello(&relay, "alice", 5)).await;
    raw.send(&Frame::Proof {
        public_key: tandem_transport::DevicePublicKey([0xff; 32]),
        signature: tandem_transport::auth::ProofSignature([0; 64]),
    })
    .await;
    match raw.rest().await.last() {
        Some(Frame::Refused(r)) => assert_eq!(r.code, ErrorCode::BadProof),
        other => panic!("{other:?}"),
    }

    // After a login: a push whose content id is not its bytes' hash.
    let tampered = {
        let mut bytes = enc(&Frame::Push {
            deltas: vec![WireDelta::new(b"evil".to_vec())],
        });
        let at = bytes
            .windows(32)
            .position(|w| w == ContentId::of(b"evil").0)
            .unwrap();
        bytes[at] ^= 0x55;
        bytes
    };
    let mut raw = Raw::login(&relay, "alice", 5).await;
    raw.send_bytes(&tampered).await;
    assert_eq!(error_code(&raw.rest().await), ErrorCode::ContentIdMismatch);
    // A push above the count limit, a frame only the relay may send, a
    // second Hello or Proof, an operator's request from a device.
    let too_many: Vec<WireDelta> = (0..=DELTAS_PER_PUSH_MAX)
        .map(|i| WireDelta::new(i.to_be_bytes().to_vec()))
        .collect();
    let key5 = key(5);
    for (bad, code) in [
        (Frame::Push { deltas: too_many }, ErrorCode::TooManyDeltas),
        (Frame::PullNeeded, ErrorCode::UnexpectedFrame),
        (
            Frame::Hello(hello(&relay, "alice", 5)),
            ErrorCode::DuplicateHello,
        ),
        (
            Frame::Proof {
                public_key: key5.public_key(),
                signature: tandem_transport::auth::ProofSignature([0; 64]),
            },
            ErrorCode::DuplicateHello,
        ),
        (
            Frame::Admin(tandem_transport::frame::AdminRequest::Ban {
                account: account("alice"),
            }),
            ErrorCode::NotAllowed,
        ),
    ] {
        let mut raw = Raw::login(&relay, "alice", 5).await;
        raw.send(&bad).await;
        assert_eq!(error_code(&raw.rest().await), code, "{}", bad.kind());
    }

    // The good device was never disturbed, and the log holds exactly what
    // was accepted.
    good.session().pull(0, 100).unwrap();
    let page = expect(&mut good, |e| match e {
        SessionEvent::Deltas { deltas, .. } => Some(deltas.clone()),
        _ => None,
    })
    .await;
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].content_id, accepted[0].content_id());
    relay.stop().await.expect("the relay stops");
}
