//! Round trips of everything that crosses a wire: frames through the codec,
//! deltas through their encoding, and decoders that never panic on any
//! bytes.

mod prop_common;

use proptest::collection::vec;
use proptest::prelude::*;
use tandem_engine::delta::{Delta, DeltaError, EncodedDelta, DELTA_FORMAT};
use tandem_engine::op::{MessageOp, Op};
use tandem_engine::OpError;
use tandem_tests::choice::List;
use tandem_tests::fuzz_targets::{export_all, memory_engine};
use tandem_tests::gen::{incoming, Gen, ACCOUNT};
use tandem_transport::frame::{Hello, ProtocolVersion};
use tandem_transport::{
    codec, AccountId, ContentId, DeviceId, DeviceInfo, ErrorCode, Frame, LogDelta, PayloadId,
    Platform, PushAckEntry, Welcome,
};

fn config(default_cases: u32) -> ProptestConfig {
    prop_common::config(
        default_cases,
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/prop_wire.txt"
        ),
    )
}

fn account() -> AccountId {
    AccountId::new(ACCOUNT).expect("valid")
}

fn device_id() -> impl Strategy<Value = DeviceId> {
    any::<[u8; 16]>().prop_map(DeviceId)
}

fn platform() -> impl Strategy<Value = Platform> {
    prop_oneof![
        Just(Platform::Android),
        Just(Platform::Ios),
        Just(Platform::Web),
        Just(Platform::Windows),
        Just(Platform::Macos),
        Just(Platform::Linux),
        ".{0,40}".prop_map(Platform::Custom),
    ]
}

fn device_info() -> impl Strategy<Value = DeviceInfo> {
    (
        device_id(),
        ".{0,20}",
        platform(),
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(
            |(id, name, platform, first_login_ms, last_seen_ms, online)| DeviceInfo {
                id,
                name,
                platform,
                first_login_ms,
                last_seen_ms,
                online,
            },
        )
}

fn log_delta() -> impl Strategy<Value = LogDelta> {
    (any::<u64>(), device_id(), vec(any::<u8>(), 0..64)).prop_map(|(seq, origin, bytes)| LogDelta {
        seq,
        origin,
        content_id: ContentId::of(&bytes),
        bytes,
    })
}

/// Every frame kind with arbitrary contents; within the codec's size limit
/// but not necessarily within the session validators' limits, which are
/// not the codec's business.
fn frame() -> impl Strategy<Value = Frame> {
    let bytes = || vec(any::<u8>(), 0..64);
    prop_oneof![
        (
            any::<(u16, u16)>(),
            device_id(),
            ".{0,20}",
            platform(),
            ".{0,40}",
            any::<u64>()
        )
            .prop_map(
                |((major, minor), device, device_name, platform, token, resume_cursor)| {
                    Frame::Hello(Hello {
                        version: ProtocolVersion { major, minor },
                        account: account(),
                        device,
                        device_name,
                        platform,
                        token,
                        resume_cursor,
                    })
                }
            ),
        (any::<u16>(), ".{0,40}").prop_map(|(code, text)| Frame::Error {
            code: ErrorCode::from(code),
            text
        }),
        (device_info(), vec(device_info(), 0..4), any::<u64>()).prop_map(
            |(device, devices, head_seq)| Frame::Welcome(Welcome {
                version: tandem_transport::PROTOCOL_VERSION,
                device,
                devices,
                head_seq,
            })
        ),
        vec(bytes(), 0..4).prop_map(|deltas| Frame::Push {
            deltas: deltas
                .into_iter()
                .map(tandem_transport::WireDelta::new)
                .collect()
        }),
        vec((any::<[u8; 32]>(), any::<u64>()), 0..4).prop_map(|entries| Frame::PushAck {
            entries: entries
                .into_iter()
                .map(|(c, seq)| PushAckEntry {
                    content_id: ContentId(c),
                    seq
                })
                .collect()
        }),
        (any::<u64>(), any::<u32>()).prop_map(|(after_seq, count_max)| Frame::Pull {
            after_seq,
            count_max
        }),
        (vec(log_delta(), 0..4), any::<bool>())
            .prop_map(|(deltas, more)| Frame::Deltas { deltas, more }),
        log_delta().prop_map(Frame::Live),
        Just(Frame::PullNeeded),
        any::<u64>().prop_map(|cursor| Frame::Ack { cursor }),
        Just(Frame::ListDevices),
        vec(device_info(), 0..4).prop_map(|devices| Frame::Devices { devices }),
        device_id().prop_map(|device| Frame::Kick { device }),
        Just(Frame::KickAllOthers),
        (device_id(), ".{0,40}").prop_map(|(by, reason)| Frame::Kicked { by, reason }),
        (device_id(), any::<[u8; 16]>(), bytes()).prop_map(|(to, id, bytes)| {
            Frame::SendToDevice {
                to,
                id: PayloadId(id),
                bytes,
            }
        }),
        any::<[u8; 16]>().prop_map(|id| Frame::PayloadStored { id: PayloadId(id) }),
        (device_id(), any::<[u8; 16]>(), bytes()).prop_map(|(from, id, bytes)| {
            Frame::DeliverPayload {
                from,
                id: PayloadId(id),
                bytes,
            }
        }),
        any::<[u8; 16]>().prop_map(|id| Frame::PayloadAck { id: PayloadId(id) }),
        Just(Frame::DeviceListChanged),
        any::<u64>().prop_map(|nonce| Frame::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Frame::Pong { nonce }),
    ]
}

/// A delta without a document change, as a device makes it.
fn template() -> Delta {
    let mut engine = memory_engine(1);
    engine
        .perform(
            2_000,
            Op::Message(MessageOp::Ingest {
                message: incoming(0, 1_000),
            }),
        )
        .expect("an ingest");
    let encoded = export_all(&engine).pop().expect("one delta");
    Delta::decode(&encoded.0, &account()).expect("decodes").0
}

proptest! {
    #![proptest_config(config(256))]

    /// Encoding then decoding gives the frame back, in one piece or fed to
    /// the streaming decoder byte by byte.
    #[test]
    fn frames_round_trip(frames in vec(frame(), 1..4)) {
        let mut stream = Vec::new();
        for frame in &frames {
            let bytes = codec::encode(frame).expect("small frames encode");
            let mut one = bytes.clone();
            prop_assert_eq!(codec::decode(&mut one).expect("decodes"), Some(frame.clone()));
            prop_assert!(one.is_empty());
            stream.extend(bytes);
        }
        let mut decoder = codec::FrameDecoder::new();
        let mut decoded = Vec::new();
        for byte in &stream {
            decoder.feed(std::slice::from_ref(byte));
            while let Some(frame) = decoder.next_frame().expect("a valid stream") {
                decoded.push(frame);
            }
        }
        prop_assert_eq!(decoded, frames);
        prop_assert_eq!(decoder.buffered_bytes(), 0);
    }

    /// No bytes make a decoder panic.
    #[test]
    fn decoders_take_any_bytes(bytes in vec(any::<u8>(), 0..256)) {
        let mut buffer = bytes.clone();
        let _ = codec::decode(&mut buffer);
        let _ = codec::decode_body(&bytes);
        let _ = Delta::decode(&bytes, &account());
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// Deltas a device makes decode to the operation it performed and
    /// encode back to the very same bytes, so their content id is stable
    /// through any number of devices.
    #[test]
    fn deltas_round_trip(ops in vec(vec(any::<u32>(), 1..12), 1..12)) {
        let mut engine = memory_engine(1);
        let mut gen = Gen::new(1_000);
        let mut performed = Vec::new();
        for (i, choices) in ops.iter().enumerate() {
            let op = gen.op(&mut List::new(choices));
            match engine.perform(2_000 + i as i64, op.clone()) {
                Ok(p) => {
                    gen.performed(&op, p.message_id.as_ref());
                    if let Some(content_id) = p.content_id() {
                        performed.push((op, content_id));
                    }
                }
                Err(OpError::Refused(_) | OpError::UnknownMessage(_)
                    | OpError::WrongConversation { .. }) => {}
                Err(e) => panic!("{op:?} failed: {e}"),
            }
        }
        let deltas = export_all(&engine);
        prop_assert_eq!(deltas.len(), performed.len());
        for (encoded, (op, content_id)) in deltas.iter().zip(&performed) {
            prop_assert_eq!(encoded.content_id(), *content_id);
            let (delta, change) = Delta::decode(&encoded.0, &account()).expect("decodes");
            prop_assert_eq!(&delta.op, op);
            prop_assert_eq!(delta.format, DELTA_FORMAT);
            prop_assert_eq!(delta.origin, DeviceId([1; 16]));
            prop_assert_eq!(change.is_some(), delta.change.is_some());
            prop_assert_eq!(&delta.encode(), encoded);
        }
    }

    /// A delta built by hand (without a document change) round trips; one
    /// numbered above `ORIGIN_SEQ_MAX` is refused as such.
    #[test]
    fn delta_values_round_trip(
        choices in vec(any::<u32>(), 1..12),
        origin in device_id(),
        origin_seq in 1..u64::MAX,
        made_at_ms in any::<i64>(),
    ) {
        let op = Gen::new(1_000).op(&mut List::new(&choices));
        // Start from a real delta so every field has a valid value, then
        // vary what the test is about.
        let mut delta = template();
        delta.origin = origin;
        delta.origin_seq = origin_seq;
        delta.made_at_ms = made_at_ms;
        delta.op = op;
        delta.change = None;
        let encoded: EncodedDelta = delta.encode();
        if origin_seq > tandem_engine::limits::ORIGIN_SEQ_MAX {
            let refused = Delta::decode(&encoded.0, &account());
            prop_assert!(
                matches!(refused, Err(DeltaError::OriginSeqOutOfRange(s)) if s == origin_seq),
                "{:?}",
                refused
            );
            return Ok(());
        }
        let (decoded, change) = Delta::decode(&encoded.0, &account()).expect("decodes");
        prop_assert!(change.is_none());
        prop_assert_eq!(&decoded, &delta);
        prop_assert_eq!(decoded.encode(), encoded);
    }
}
