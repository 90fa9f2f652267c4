//! Snapshot of the wire format: one fixed example of every frame, encoded,
//! compared byte for byte with `tests/snapshots/frames.txt`.
//!
//! A failure here means the bytes on the wire changed. If that was meant
//! (a new variant at the end, a new major version), regenerate the file with
//! `TANDEM_UPDATE_SNAPSHOTS=1 cargo test -p tandem-transport --test snapshots`
//! and review the diff; otherwise the change breaks every deployed peer.

use serde::{Deserialize, Serialize};
use tandem_transport::auth::{ChallengeNonce, DeviceKey, ProofSignature};
use tandem_transport::codec;
use tandem_transport::frame::{
    AdminReply, AdminRequest, ContentId, DeviceInfo, DeviceRef, Enrollment, EnrollmentState,
    ErrorCode, Frame, Hello, LogDelta, OfflineReason, PayloadId, ProtocolVersion, PushAckEntry,
    Refusal, Welcome, WireDelta, PROTOCOL_VERSION,
};
use tandem_transport::{AccountId, DeviceId, Platform, ServerSession};

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
        enrollment: match n % 4 {
            0 => EnrollmentState::NotEnrolled,
            1 => EnrollmentState::Active {
                expires_at_ms: 1_702_592_000_000,
            },
            2 => EnrollmentState::Expired {
                at_ms: 1_702_592_000_000,
            },
            _ => EnrollmentState::Revoked {
                reason: OfflineReason::KickedByDevice { by: dev_ref(1) },
                at_ms: 1_700_000_001_000,
            },
        },
    }
}

fn dev_ref(n: u8) -> DeviceRef {
    DeviceRef {
        id: device(n),
        name: format!("dev{n}"),
        platform: Platform::Web,
    }
}

fn alice() -> AccountId {
    AccountId::new("alice").unwrap()
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
            account: alice(),
            device: device(1),
            device_name: "phone".into(),
            platform: Platform::Android,
            login_token: Some("lt2.login.1.ab".into()),
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
            enrollment: Enrollment {
                token_id: [5; 16],
                enrolled_at_ms: 1_700_000_000_000,
                expires_at_ms: 1_702_592_000_000,
            },
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
            devices: vec![info(3, Platform::Linux), info(4, Platform::Macos)],
        },
        Frame::Kick { device: device(2) },
        Frame::KickAllOthers,
        Frame::Kicked {
            reason: OfflineReason::Displaced { by: dev_ref(3) },
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
        Frame::Challenge {
            nonce: ChallengeNonce([0xc0; 32]),
        },
        Frame::Proof {
            public_key: DeviceKey::from_seed(&[1; 32]).public_key(),
            signature: ProofSignature([0x5a; 64]),
        },
        Frame::Refused(Refusal {
            code: ErrorCode::CredentialsRevoked,
            text: "kicked".into(),
            reason: Some(OfflineReason::KickedByDevice { by: dev_ref(2) }),
            devices: vec![info(1, Platform::Ios)],
        }),
        Frame::KickAll,
        Frame::Logout,
        Frame::Managing {
            devices: vec![info(2, Platform::Windows)],
        },
        Frame::CredentialsRenewed {
            expires_at_ms: 1_702_592_000_000,
        },
        Frame::AdminHello {
            version: PROTOCOL_VERSION,
        },
        Frame::AdminProof { mac: [0xad; 32] },
        Frame::AdminReady,
        Frame::Admin(AdminRequest::Kick {
            account: alice(),
            device: device(2),
        }),
        Frame::AdminReply(AdminReply::Done {
            devices_revoked: 2,
            connections_closed: 1,
        }),
    ]
}

/// Every reason, request and reply variant encodes and decodes (their
/// encodings are in the frames above only by example).
#[test]
fn every_reason_and_admin_variant_round_trips() {
    let reasons = [
        OfflineReason::KickedByDevice { by: dev_ref(1) },
        OfflineReason::Displaced { by: dev_ref(2) },
        OfflineReason::LoggedOut,
        OfflineReason::RevokedByOperator,
        OfflineReason::AllCredentialsRevoked,
        OfflineReason::AccountRemoved,
        OfflineReason::AccountBanned,
    ];
    let mut frames: Vec<Frame> = reasons
        .iter()
        .map(|reason| Frame::Kicked {
            reason: reason.clone(),
        })
        .collect();
    for request in [
        AdminRequest::Devices { account: alice() },
        AdminRequest::Kick {
            account: alice(),
            device: device(1),
        },
        AdminRequest::RevokeAll { account: alice() },
        AdminRequest::Ban { account: alice() },
        AdminRequest::Unban { account: alice() },
        AdminRequest::Remove { account: alice() },
    ] {
        frames.push(Frame::Admin(request));
    }
    frames.push(Frame::AdminReply(AdminReply::Devices {
        devices: (0..4).map(|n| info(n, Platform::Web)).collect(),
    }));
    for frame in frames {
        let bytes = codec::encode(&frame).unwrap();
        let mut buffer = bytes.clone();
        assert_eq!(codec::decode(&mut buffer).unwrap(), Some(frame));
    }
    let names: std::collections::BTreeSet<_> = reasons.iter().map(|r| r.as_str()).collect();
    assert_eq!(names.len(), reasons.len(), "every reason has its own name");
}

/// Protocol 1's `Hello`, as its peers decode it: the layout that must never
/// change (see the frame module's docs).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct HelloV1 {
    version: ProtocolVersion,
    account: AccountId,
    device: DeviceId,
    device_name: String,
    platform: Platform,
    token: String,
    resume_cursor: u64,
}

/// The first two variants of protocol 1's frame enum.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
enum FrameV1 {
    Hello(HelloV1),
    Error { code: ErrorCode, text: String },
}

/// What a peer of protocol 1 sent as its Hello (the snapshot line of that
/// protocol, verbatim).
const HELLO_V1: &str =
    "0000002900010005616c696365010101010101010101010101010101010570686f6e65000776312e312e616207";

#[test]
fn peers_of_protocol_1_and_2_read_each_others_hello_and_answer_unsupported_version() {
    // A protocol-1 relay decodes our Hello whole (postcard refuses trailing
    // bytes, so this is exactly its decoder) and reads version 2.
    let ours = examples().remove(0);
    let bytes = codec::encode(&ours).unwrap();
    let old: FrameV1 = postcard::from_bytes(&bytes[4..]).expect("protocol 1 reads it");
    let FrameV1::Hello(old) = old else {
        panic!("{old:?}")
    };
    assert_eq!(old.version, PROTOCOL_VERSION);
    assert_eq!(old.token, "lt2.login.1.ab");
    // Its answer, an Error frame, is one we read.
    let answer = postcard::to_stdvec(&FrameV1::Error {
        code: ErrorCode::UnsupportedVersion,
        text: "the relay speaks protocol 1.0".into(),
    })
    .unwrap();
    assert_eq!(
        postcard::from_bytes::<Frame>(&answer).unwrap(),
        Frame::error(
            ErrorCode::UnsupportedVersion,
            "the relay speaks protocol 1.0"
        )
    );
    // A protocol-1 device's Hello: our relay reads it and refuses its
    // version, with a readable Error.
    let v1 = (0..HELLO_V1.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&HELLO_V1[i..i + 2], 16).unwrap())
        .collect::<Vec<u8>>();
    let mut server = ServerSession::new();
    server.handle_bytes(&v1);
    match server.poll_request() {
        Some(Err(e)) => {
            assert_eq!(e.code, ErrorCode::UnsupportedVersion, "{e}");
            let reply = codec::encode(&e.frame()).unwrap();
            let old: FrameV1 = postcard::from_bytes(&reply[4..]).expect("protocol 1 reads it");
            assert!(matches!(
                old,
                FrameV1::Error {
                    code: ErrorCode::UnsupportedVersion,
                    ..
                }
            ));
        }
        other => panic!("{other:?}"),
    }
    // No login token is an empty string on the wire: still protocol 1's
    // layout.
    let Frame::Hello(mut hello) = ours else {
        unreachable!()
    };
    hello.login_token = None;
    let bytes = codec::encode(&Frame::Hello(hello.clone())).unwrap();
    let FrameV1::Hello(old) = postcard::from_bytes(&bytes[4..]).unwrap() else {
        panic!()
    };
    assert_eq!(old.token, "");
    let mut buffer = bytes;
    assert_eq!(
        codec::decode(&mut buffer).unwrap(),
        Some(Frame::Hello(hello))
    );
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
        34,
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
    assert_eq!(u16::from(ErrorCode::LoginTokenUsed), 20);
    assert_eq!(u16::from(ErrorCode::CredentialsExpired), 30);
    assert_eq!(ErrorCode::from(31), ErrorCode::Unknown(31));
}
