//! The tokio driver over an in-process duplex pipe, against a tiny relay
//! stand-in built on `ServerSession` and the frame helpers.

use std::time::Duration;

use tandem_transport::auth::{verify_login_proof, ChallengeNonce, DeviceKey};
use tandem_transport::codec::FrameDecoder;
use tandem_transport::driver::{read_frame, write_frame, Connection};
use tandem_transport::frame::{Enrollment, EnrollmentState, Welcome};
use tandem_transport::server::{Request, Role, ServerSession};
use tandem_transport::{
    AccountId, ClientConfig, ClientSession, CloseReason, DeviceId, DeviceInfo, Frame, Platform,
    PushAckEntry, SessionEvent, WireDelta, PROTOCOL_VERSION,
};
use tokio::io::DuplexStream;

/// Answers Hello with a Challenge, a Proof that verifies with a Welcome,
/// each Push with its PushAck, then closes after the first Ack.
async fn stand_in_relay(mut stream: DuplexStream) {
    let mut decoder = FrameDecoder::new();
    let mut server = ServerSession::new();
    let mut seq = 0;
    let nonce = ChallengeNonce([3; 32]);
    let mut hello = None;
    while let Ok(Some(frame)) = read_frame(&mut stream, &mut decoder).await {
        match server.validate(frame).unwrap() {
            Request::Hello(h) => {
                hello = Some(h);
                write_frame(&mut stream, &Frame::Challenge { nonce })
                    .await
                    .unwrap();
            }
            Request::Proof {
                public_key,
                signature,
            } => {
                let hello = hello.take().expect("the Hello came first");
                verify_login_proof(&hello, &public_key, &nonce, &signature).unwrap();
                server.accept_login(Role::Device);
                let info = DeviceInfo {
                    id: hello.device,
                    name: hello.device_name,
                    platform: hello.platform,
                    first_login_ms: 0,
                    last_seen_ms: 0,
                    online: true,
                    enrollment: EnrollmentState::Active { expires_at_ms: 1 },
                };
                let welcome = Welcome {
                    version: PROTOCOL_VERSION,
                    device: info.clone(),
                    devices: vec![info],
                    head_seq: 0,
                    enrollment: Enrollment {
                        token_id: [0; 16],
                        enrolled_at_ms: 0,
                        expires_at_ms: 1,
                    },
                };
                write_frame(&mut stream, &Frame::Welcome(welcome))
                    .await
                    .unwrap();
            }
            Request::Push(deltas) => {
                let entries = deltas
                    .iter()
                    .map(|d| {
                        seq += 1;
                        PushAckEntry {
                            content_id: d.content_id(),
                            seq,
                        }
                    })
                    .collect();
                write_frame(&mut stream, &Frame::PushAck { entries })
                    .await
                    .unwrap();
            }
            Request::Ack { .. } => return,
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn next(conn: &mut Connection<DuplexStream>) -> Option<SessionEvent> {
    tokio::time::timeout(Duration::from_secs(5), conn.next_event())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn connection_runs_a_session_over_a_duplex_pipe() {
    let (client_end, relay_end) = tokio::io::duplex(1024);
    let relay = tokio::spawn(stand_in_relay(relay_end));
    let config = ClientConfig::new(
        AccountId::new("alice").unwrap(),
        DeviceId([1; 16]),
        "laptop",
        Platform::Linux,
        DeviceKey::from_seed(&[1; 32]),
    );
    let mut conn = Connection::new(client_end, ClientSession::new(config, 0).unwrap());
    assert!(matches!(
        next(&mut conn).await,
        Some(SessionEvent::Connected(_))
    ));
    // Bigger than the pipe's buffer, so writes and reads must interleave.
    let deltas: Vec<WireDelta> = (0..3u8).map(|i| WireDelta::new(vec![i; 4000])).collect();
    conn.session().push(deltas.clone()).unwrap();
    let Some(SessionEvent::PushAcked(entries)) = next(&mut conn).await else {
        panic!()
    };
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(entries[2].content_id, deltas[2].content_id());
    conn.session().ack(3).unwrap();
    assert_eq!(
        next(&mut conn).await,
        Some(SessionEvent::Closed(CloseReason::TransportClosed))
    );
    assert_eq!(next(&mut conn).await, None);
    relay.await.unwrap();
}

fn alice_config() -> ClientConfig {
    ClientConfig::new(
        AccountId::new("alice").unwrap(),
        DeviceId([1; 16]),
        "laptop",
        Platform::Linux,
        DeviceKey::from_seed(&[1; 32]),
    )
}

/// A session past the relay's challenge: its proof is queued, and what it
/// queues from now on goes straight out.
fn challenged() -> ClientSession {
    let mut session = ClientSession::new(alice_config(), 0).unwrap();
    session.handle_frame(
        Frame::Challenge {
            nonce: ChallengeNonce([3; 32]),
        },
        0,
    );
    session
}

/// Takes every whole frame off `decoder`.
fn frames(decoder: &mut FrameDecoder) -> Vec<Frame> {
    std::iter::from_fn(|| decoder.next_frame().unwrap()).collect()
}

/// `next_event` raced against a timer (as the online shell races it against
/// commands) is dropped again and again while a frame is half written; a
/// command queued between two drops goes out after that frame. The relay
/// end must read every frame exactly once, whole, in order.
#[tokio::test(start_paused = true)]
async fn next_event_cancelled_mid_write_loses_and_duplicates_nothing() {
    use tokio::io::AsyncReadExt;

    // A pipe far smaller than the frames: every write stops part way.
    let (client_end, mut relay_end) = tokio::io::duplex(64);
    let mut conn = Connection::new(client_end, challenged());
    let deltas: Vec<WireDelta> = (0..3u8).map(|i| WireDelta::new(vec![i; 4000])).collect();
    conn.session().push(deltas.clone()).unwrap();

    let mut decoder = FrameDecoder::new();
    let mut received = Vec::new();
    let mut drops_mid_frame = 0;
    let mut acked = false;
    for round in 0.. {
        assert!(round < 10_000, "the frames never arrived: {received:?}");
        let waited = tokio::time::timeout(Duration::from_millis(1), conn.next_event()).await;
        assert!(waited.is_err(), "the relay end said nothing: {waited:?}");
        if !acked && round == 20 {
            // Queued while the push is half written.
            conn.session().ack(5).unwrap();
            acked = true;
        }
        let mut chunk = [0u8; 50];
        let Ok(read) =
            tokio::time::timeout(Duration::from_millis(1), relay_end.read(&mut chunk)).await
        else {
            // Nothing more was written.
            break;
        };
        let n = read.unwrap();
        decoder.feed(&chunk[..n]);
        received.extend(frames(&mut decoder));
        if decoder.buffered_bytes() > 0 {
            drops_mid_frame += 1;
        }
    }
    assert_eq!(decoder.buffered_bytes(), 0, "no partial frame is left");
    assert_eq!(received.len(), 4, "{received:?}");
    assert!(matches!(&received[0], Frame::Hello(h) if h.device == DeviceId([1; 16])));
    assert!(matches!(&received[1], Frame::Proof { .. }));
    assert_eq!(received[2], Frame::Push { deltas });
    assert_eq!(received[3], Frame::Ack { cursor: 5 });
    // And the test did what it says: ~12 KB through a 64-byte pipe.
    assert!(
        drops_mid_frame > 100,
        "next_event was dropped mid-frame only {drops_mid_frame} times"
    );
}

/// A `next_event` dropped while a frame from the relay trickles in byte by
/// byte loses none of it: the session sees the whole `Welcome` once.
#[tokio::test(start_paused = true)]
async fn next_event_cancelled_mid_read_loses_nothing() {
    use tokio::io::AsyncWriteExt;

    let (client_end, mut relay_end) = tokio::io::duplex(64 * 1024);
    let mut conn = Connection::new(client_end, challenged());
    let info = DeviceInfo {
        id: DeviceId([1; 16]),
        name: "laptop".into(),
        platform: Platform::Linux,
        first_login_ms: 0,
        last_seen_ms: 0,
        online: true,
        enrollment: EnrollmentState::Active { expires_at_ms: 9 },
    };
    let welcome = Welcome {
        version: PROTOCOL_VERSION,
        device: info.clone(),
        devices: vec![info],
        head_seq: 7,
        enrollment: Enrollment {
            token_id: [0; 16],
            enrolled_at_ms: 0,
            expires_at_ms: 9,
        },
    };
    let bytes = tandem_transport::codec::encode(&Frame::Welcome(welcome.clone())).unwrap();
    for (i, byte) in bytes.iter().enumerate() {
        relay_end.write_all(&[*byte]).await.unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(1), conn.next_event()).await;
        if i + 1 < bytes.len() {
            assert!(waited.is_err(), "an event before the frame was whole");
        } else {
            assert_eq!(
                waited.unwrap().unwrap(),
                Some(SessionEvent::Connected(welcome.clone()))
            );
        }
    }
}
