//! A run of live deltas that arrives together merges as one batch (one
//! transaction), not one commit per delta: a stand-in relay on loopback
//! sends 200 live deltas in one write.

use std::net::SocketAddr;
use std::time::Duration;

use tandem_engine::model::{IncomingMessage, MessageId, UserId};
use tandem_engine::op::{MessageOp, Op};
use tandem_engine::{AccountId, Config, DeviceId, Engine, ExportCursor, Platform, StorePath};
use tandem_online::{OnlineConfig, OnlineDevice, SyncEvent};
use tandem_transport::codec::{self, FrameDecoder};
use tandem_transport::driver::{read_frame, write_frame};
use tandem_transport::frame::Welcome;
use tandem_transport::{ContentId, DeviceInfo, Frame, LogDelta, PROTOCOL_VERSION};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(20);
const DELTAS: usize = 200;

fn engine(dir: &std::path::Path, name: &str, id: u8) -> Engine {
    let config = Config {
        store: StorePath::File(dir.join(format!("{name}.db"))),
        account: AccountId::new("alice").unwrap(),
        device_name: name.into(),
        platform: Platform::Linux,
    };
    Engine::open(
        config,
        0,
        Box::new(tandem_engine::SeededEntropy::starting_with(
            &[id; 16],
            id.into(),
        )),
    )
    .unwrap()
}

/// Logs the device in with an empty log, sends every delta as a `Live`
/// frame in one write, and returns the cursor of the device's last `Ack`
/// once it acknowledges them all.
async fn stand_in_relay(listener: TcpListener, live: Vec<LogDelta>) -> u64 {
    let (mut stream, _) = listener.accept().await.unwrap();
    let mut decoder = FrameDecoder::new();
    let Some(Frame::Hello(hello)) = read_frame(&mut stream, &mut decoder).await.unwrap() else {
        panic!("Hello first");
    };
    let nonce = tandem_transport::auth::ChallengeNonce([5; 32]);
    write_frame(&mut stream, &Frame::Challenge { nonce })
        .await
        .unwrap();
    let Some(Frame::Proof { .. }) = read_frame(&mut stream, &mut decoder).await.unwrap() else {
        panic!("the Proof next");
    };
    let info = DeviceInfo {
        id: hello.device,
        name: hello.device_name,
        platform: hello.platform,
        first_login_ms: 0,
        last_seen_ms: 0,
        online: true,
        enrollment: tandem_transport::EnrollmentState::Active { expires_at_ms: 1 },
    };
    let welcome = Welcome {
        version: PROTOCOL_VERSION,
        device: info.clone(),
        devices: vec![info],
        head_seq: 0,
        enrollment: tandem_transport::Enrollment {
            token_id: [0; 16],
            enrolled_at_ms: 0,
            expires_at_ms: 1,
        },
    };
    write_frame(&mut stream, &Frame::Welcome(welcome))
        .await
        .unwrap();
    let mut burst = Vec::new();
    for delta in live {
        burst.extend(codec::encode(&Frame::Live(delta)).unwrap());
    }
    stream.write_all(&burst).await.unwrap();
    loop {
        match read_frame(&mut stream, &mut decoder).await.unwrap() {
            Some(Frame::Ack { cursor }) if cursor == DELTAS as u64 => return cursor,
            Some(_) => {}
            None => panic!("the device closed before acknowledging everything"),
        }
    }
}

#[tokio::test]
async fn live_deltas_that_arrive_together_merge_as_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    // Another device's operations, as the relay's log would hold them.
    let mut other = engine(dir.path(), "other", 2);
    for i in 0..DELTAS {
        let op = Op::Message(MessageOp::Ingest {
            message: IncomingMessage {
                id: MessageId::new(format!("m{i}")).unwrap(),
                conversation: "u:bob".parse().unwrap(),
                sender: UserId::new("bob").unwrap(),
                sent_at_ms: i as i64,
                body: format!("message {i}"),
            },
        });
        other.perform(i as i64, op).unwrap();
    }
    let exported = other
        .export(ExportCursor::default(), DELTAS)
        .unwrap()
        .deltas;
    assert_eq!(exported.len(), DELTAS);
    let live = exported
        .into_iter()
        .zip(1..)
        .map(|(delta, seq)| LogDelta {
            seq,
            origin: DeviceId([2; 16]),
            content_id: ContentId::of(&delta.0),
            bytes: delta.0,
        })
        .collect();

    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let relay = tokio::spawn(stand_in_relay(listener, live));
    let device = OnlineDevice::spawn(
        engine(dir.path(), "me", 1),
        OnlineConfig {
            start_online: false,
            ..OnlineConfig::new(addr.to_string())
        },
    )
    .unwrap();
    let mut sync_events = device.subscribe();
    device.set_online(true).await.unwrap();

    let mut batches = Vec::new();
    let mut merged = 0;
    while merged < DELTAS {
        let event = tokio::time::timeout(WAIT, sync_events.recv())
            .await
            .expect("the deltas merge in time")
            .unwrap();
        if let SyncEvent::Merged(applied) = event {
            merged += applied.new;
            batches.push(applied.new);
        }
    }
    assert_eq!(merged, DELTAS);
    // One read takes many frames; one commit per delta would be 200.
    assert!(
        batches.len() <= 20,
        "{} batches: {batches:?}",
        batches.len()
    );
    let acked = tokio::time::timeout(WAIT, relay).await.unwrap().unwrap();
    assert_eq!(acked, DELTAS as u64);
    let messages = device
        .read(|e| e.state().unwrap().messages.len())
        .await
        .unwrap();
    assert_eq!(messages, DELTAS);
    tokio::time::timeout(WAIT, device.shutdown())
        .await
        .unwrap()
        .unwrap();
}
