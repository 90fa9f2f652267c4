//! Snapshot of the wire format: one fixed example of every frame, encoded,
//! compared byte for byte with `tests/snapshots/frames.txt`.
//!
//! A failure here means the bytes on the wire changed. If that was meant
//! (a new variant at the end, a new major version), regenerate the file with
//! `TANDEM_UPDATE_SNAPSHOTS=1 cargo test -p tandem-transport --test snapshots`
//! and review the diff; otherwise the change breaks every deployed peer.

use tandem_transport::codec;
use tandem_transport::frame::{
    ContentId, DeviceInfo, ErrorCode, Frame, Hello, LogDelta, PayloadId, PushAckEntry, Welcome,
    WireDelta, PROTOCOL_VERSION,
};
use tandem_transport::{AccountId, DeviceId, Platform};

fn device(n: u8) -> DeviceId {
    DeviceId([n; 16])
}

fn info(n: u8, platform: Platform) -> DeviceInfo {
    DeviceInfo {
        id: device(n),
        name: format!("dev{n}"),
        platform,
        first_login_ms: 1_700_000_000_000,
        last_seen_ms: 1_700_000_000_500,
        online: n % 2 == 1,
    }
}

fn log_delta(seq: u64) -> LogDelta {
    let bytes = vec![seq as u8; 3];
    LogDelta {
        seq,
        origin: device(1),
        content_id: ContentId::of(&bytes),
        bytes,
    }
}

/// One example of every variant, in variant order.
fn examples() -> Vec<Frame> {
    vec![
        Frame::Hello(Hello {
            version: PROTOCOL_VERSION,
            account: AccountId::new("alice").unwrap(),
            device: device(1),
            device_name: "phone".into(),
            platform: Platform::Android,
            token: "v1.1.ab".into(),
            resume_cursor: 7,
        }),
        Frame::Error {
            code: ErrorCode::TooManyDevices,
            text: "four online".into(),
        },
        Frame::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            device: info(1, Platform::Ios),
            devices: vec![
                info(1, Platform::Ios),
                info(2, Platform::Custom("tv".into())),
            ],
            head_seq: 300,
        }),
        Frame::Push {
            deltas: vec![
                WireDelta::new(b"one".to_vec()),
                WireDelta::new(b"two".to_vec()),
            ],
        },
        Frame::PushAck {
            entries: vec![PushAckEntry {
                content_id: ContentId::of(b"one"),
                seq: 1,
            }],
        },
        Frame::Pull {
            after_seq: 128,
            count_max: 256,
        },
        Frame::Deltas {
            deltas: vec![log_delta(1), log_delta(2)],
            more: true,
        },
        Frame::Live(log_delta(3)),
        Frame::PullNeeded,
        Frame::Ack { cursor: 65_536 },
        Frame::ListDevices,
        Frame::Devices {
            devices: vec![info(3, Platform::Linux)],
        },
        Frame::Kick { device: device(2) },
        Frame::KickAllOthers,
        Frame::Kicked {
            by: device(1),
            reason: "too many devices".into(),
        },
        Frame::SendToDevice {
            to: device(2),
            id: PayloadId([9; 16]),
            bytes: b"hi".to_vec(),
        },
        Frame::PayloadStored {
            id: PayloadId([9; 16]),
        },
        Frame::DeliverPayload {
            from: device(1),
            id: PayloadId([9; 16]),
            bytes: b"hi".to_vec(),
        },
        Frame::PayloadAck {
            id: PayloadId([9; 16]),
        },
        Frame::DeviceListChanged,
        Frame::Ping { nonce: u64::MAX },
        Frame::Pong { nonce: 0 },
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn every_frame_encodes_to_its_snapshot_and_back() {
    let mut lines = String::new();
    let mut kinds = Vec::new();
    for frame in examples() {
        let bytes = codec::encode(&frame).unwrap();
        let mut buffer = bytes.clone();
        assert_eq!(codec::decode(&mut buffer).unwrap(), Some(frame.clone()));
        assert!(buffer.is_empty());
        lines.push_str(&format!("{} {}\n", frame.kind(), hex(&bytes)));
        kinds.push(frame.kind());
    }
    // The examples cover every variant once: a new variant must get one.
    let mut unique = kinds.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), kinds.len());
    assert_eq!(
        kinds.len(),
        22,
        "add an example (and a snapshot line) for the new frame"
    );

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/frames.txt");
    if std::env::var_os("TANDEM_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(path, &lines).unwrap();
    }
    let expected = std::fs::read_to_string(path).expect("snapshot file; see module docs");
    for (got, want) in lines.lines().zip(expected.lines()) {
        assert_eq!(got, want, "wire format changed");
    }
    assert_eq!(lines.lines().count(), expected.lines().count());
}

#[test]
fn error_codes_have_fixed_numbers() {
    // The numbers are the wire format of ErrorCode; spot-check both ends.
    assert_eq!(u16::from(ErrorCode::UnsupportedVersion), 1);
    assert_eq!(u16::from(ErrorCode::ShuttingDown), 19);
    assert_eq!(ErrorCode::from(20), ErrorCode::Unknown(20));
}
