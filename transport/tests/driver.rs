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
