//! Behaviour of the codec and both session state machines, with no IO.

use tandem_transport::auth::{self, ChallengeNonce, DeviceKey};
use tandem_transport::client::{CloseReason, ConfigError, PING_TIMEOUT_MS_DEFAULT};
use tandem_transport::codec::{self, FrameDecoder, FrameError};
use tandem_transport::frame::{
    DeviceRef, Enrollment, EnrollmentState, Hello, OfflineReason, ProtocolVersion, Refusal, Welcome,
};
use tandem_transport::limits::*;
use tandem_transport::mem::MemLink;
use tandem_transport::server::{Request, Role, ServerSession};
use tandem_transport::{
    AccountId, ClientConfig, ClientSession, CommandError, ContentId, DeviceId, DeviceInfo,
    ErrorCode, Frame, LogDelta, PayloadId, Platform, SessionEvent, SessionState, WireDelta,
    PROTOCOL_VERSION,
};

fn key() -> DeviceKey {
    DeviceKey::from_seed(&[4; 32])
}

fn config() -> ClientConfig {
    ClientConfig::new(
        AccountId::new("alice").unwrap(),
        DeviceId([1; 16]),
        "phone",
        Platform::Ios,
        key(),
    )
}

fn hello() -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        account: AccountId::new("alice").unwrap(),
        device: DeviceId([1; 16]),
        device_name: "phone".into(),
        platform: Platform::Ios,
        login_token: None,
        resume_cursor: 0,
    }
}

fn info() -> DeviceInfo {
    DeviceInfo {
        id: DeviceId([1; 16]),
        name: "phone".into(),
        platform: Platform::Ios,
        first_login_ms: 1,
        last_seen_ms: 2,
        online: true,
        enrollment: EnrollmentState::Active { expires_at_ms: 9 },
    }
}

fn welcome() -> Frame {
    Frame::Welcome(Welcome {
        version: PROTOCOL_VERSION,
        device: info(),
        devices: vec![info()],
        head_seq: 0,
        enrollment: Enrollment {
            token_id: [0; 16],
            enrolled_at_ms: 1,
            expires_at_ms: 9,
        },
    })
}

fn challenge(n: u8) -> Frame {
    Frame::Challenge {
        nonce: ChallengeNonce([n; 32]),
    }
}

fn laptop() -> DeviceRef {
    DeviceRef {
        id: DeviceId([2; 16]),
        name: "laptop".into(),
        platform: Platform::Macos,
    }
}

fn proof() -> Frame {
    let key = key();
    Frame::Proof {
        public_key: key.public_key(),
        signature: key.prove(&hello(), &ChallengeNonce([1; 32])),
    }
}

fn enc(frame: &Frame) -> Vec<u8> {
    codec::encode(frame).unwrap()
}

fn events(session: &mut ClientSession) -> Vec<SessionEvent> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

fn transmitted(session: &mut ClientSession) -> Vec<Frame> {
    std::iter::from_fn(|| session.poll_transmit())
        .map(|bytes| codec::decode(&mut bytes.clone()).unwrap().unwrap())
        .collect()
}

/// A client session that has finished its handshake.
fn connected() -> ClientSession {
    let mut session = ClientSession::new(config(), 0).unwrap();
    transmitted(&mut session);
    session.handle_bytes(&enc(&challenge(1)), 1);
    assert!(matches!(
        transmitted(&mut session)[..],
        [Frame::Proof { .. }]
    ));
    session.handle_bytes(&enc(&welcome()), 1);
    assert!(matches!(
        events(&mut session)[..],
        [SessionEvent::Connected(_)]
    ));
    session
}

/// A server session that has accepted a device's login.
fn logged_in() -> ServerSession {
    logged_in_as(Role::Device)
}

fn logged_in_as(role: Role) -> ServerSession {
    let mut server = ServerSession::new();
    server.handle_bytes(&enc(&Frame::Hello(hello())));
    assert!(matches!(server.poll_request(), Some(Ok(Request::Hello(_)))));
    server.handle_bytes(&enc(&proof()));
    assert!(matches!(
        server.poll_request(),
        Some(Ok(Request::Proof { .. }))
    ));
    server.accept_login(role);
    server
}

fn server_result(server: &mut ServerSession, frame: &Frame) -> Result<Request, ErrorCode> {
    server.handle_bytes(&enc(frame));
    server
        .poll_request()
        .expect("a whole frame was fed")
        .map_err(|e| e.code)
}

/// A payload frame whose encoded body is exactly `body_bytes` long.
fn frame_with_body(body_bytes: usize) -> Frame {
    let make = |n: usize| Frame::DeliverPayload {
        from: DeviceId([0; 16]),
        id: PayloadId([0; 16]),
        bytes: vec![7; n],
    };
    let mut n = body_bytes - 64;
    for _ in 0..8 {
        let got = codec::encode(&make(n))
            .map(|b| b.len())
            .unwrap_or_else(|e| match e {
                codec::EncodeError::TooLarge { body_bytes } => body_bytes + FRAME_PREFIX_BYTES,
                other => panic!("{other}"),
            })
            - FRAME_PREFIX_BYTES;
        if got == body_bytes {
            return make(n);
        }
        n = n + body_bytes - got;
    }
    panic!("no payload size gives a body of {body_bytes} bytes");
}

// ---------------------------------------------------------------- codec

#[test]
fn decode_waits_for_whole_frames_and_keeps_the_rest() {
    let a = enc(&Frame::Ping { nonce: 1 });
    let b = enc(&Frame::Pong { nonce: 2 });
    let mut all = [a.clone(), b.clone()].concat();
    // Every strict prefix of the first frame is "not yet".
    for cut in 0..a.len() {
        let mut partial = all[..cut].to_vec();
        assert_eq!(codec::decode(&mut partial), Ok(None));
        assert_eq!(partial.len(), cut, "partial input is left alone");
    }
    assert_eq!(codec::decode(&mut all), Ok(Some(Frame::Ping { nonce: 1 })));
    assert_eq!(all, b);
    assert_eq!(codec::decode(&mut all), Ok(Some(Frame::Pong { nonce: 2 })));
    assert!(all.is_empty());
}

#[test]
fn frame_size_limit_below_at_above() {
    for (body, fits) in [
        (FRAME_BYTES_MAX - 1, true),
        (FRAME_BYTES_MAX, true),
        (FRAME_BYTES_MAX + 1, false),
    ] {
        let frame = frame_with_body(body);
        match codec::encode(&frame) {
            Ok(bytes) => {
                assert!(fits, "{body} encoded");
                assert_eq!(bytes.len(), body + FRAME_PREFIX_BYTES);
                let mut buffer = bytes;
                assert_eq!(codec::decode(&mut buffer), Ok(Some(frame)));
            }
            Err(codec::EncodeError::TooLarge { body_bytes }) => {
                assert!(!fits, "{body} refused");
                assert_eq!(body_bytes, body);
            }
            Err(other) => panic!("{other}"),
        }
    }
}

#[test]
fn an_oversize_prefix_is_refused_before_any_body_arrives() {
    for (announced, refused) in [
        (FRAME_BYTES_MAX - 1, false),
        (FRAME_BYTES_MAX, false),
        (FRAME_BYTES_MAX + 1, true),
    ] {
        let mut buffer = (announced as u32).to_be_bytes().to_vec();
        let got = codec::decode(&mut buffer);
        if refused {
            assert_eq!(
                got,
                Err(FrameError::TooLarge {
                    body_bytes: announced
                })
            );
        } else {
            assert_eq!(got, Ok(None), "waits for the body");
        }
    }
    let mut buffer = u32::MAX.to_be_bytes().to_vec();
    assert!(matches!(
        codec::decode(&mut buffer),
        Err(FrameError::TooLarge { .. })
    ));
}

#[test]
fn garbage_and_trailing_bytes_are_malformed() {
    // An unknown variant index.
    let mut garbage = vec![0, 0, 0, 3, 0xff, 0xff, 0x7f];
    assert!(matches!(
        codec::decode(&mut garbage),
        Err(FrameError::Malformed { .. })
    ));
    // A Ping with a byte too many in its body.
    let mut ping = enc(&Frame::Ping { nonce: 1 });
    ping[3] += 1;
    ping.push(0);
    assert!(matches!(
        codec::decode(&mut ping),
        Err(FrameError::Malformed { .. })
    ));
    // A body cut short inside the frame's announced length.
    let mut short = vec![0, 0, 0, 1, 0x14];
    assert!(matches!(
        codec::decode(&mut short),
        Err(FrameError::Malformed { .. })
    ));
}

#[test]
fn frame_decoder_takes_bytes_one_at_a_time() {
    let frames = [Frame::Ping { nonce: 1 }, Frame::PullNeeded, welcome()];
    let bytes: Vec<u8> = frames.iter().flat_map(enc).collect();
    let mut decoder = FrameDecoder::new();
    let mut got = Vec::new();
    for byte in bytes {
        decoder.feed(&[byte]);
        while let Some(frame) = decoder.next_frame().unwrap() {
            got.push(frame);
        }
    }
    assert_eq!(got, frames);
    assert_eq!(decoder.buffered_bytes(), 0);
}

// ---------------------------------------------------------------- server session

#[test]
fn server_refuses_frames_before_hello() {
    let mut server = ServerSession::new();
    assert_eq!(
        server_result(&mut server, &Frame::ListDevices),
        Err(ErrorCode::FrameBeforeHello)
    );
    assert!(server.is_closed());
    server.handle_bytes(&enc(&Frame::Hello(hello())));
    assert!(
        server.poll_request().is_none(),
        "a closed session yields nothing"
    );
}

#[test]
fn server_refuses_another_major_version_with_a_clear_error() {
    let mut server = ServerSession::new();
    let mut h = hello();
    h.version = ProtocolVersion {
        major: PROTOCOL_VERSION.major + 1,
        minor: 0,
    };
    server.handle_bytes(&enc(&Frame::Hello(h)));
    let err = server.poll_request().unwrap().unwrap_err();
    assert_eq!(err.code, ErrorCode::UnsupportedVersion);
    assert!(
        err.text.contains("protocol 2.0, the client 3.0"),
        "{}",
        err.text
    );
    // The same for an operator's tool.
    let mut server = ServerSession::new();
    let old = Frame::AdminHello {
        version: ProtocolVersion { major: 1, minor: 9 },
    };
    assert_eq!(
        server_result(&mut server, &old),
        Err(ErrorCode::UnsupportedVersion)
    );
    // A newer minor is fine.
    let mut h = hello();
    h.version.minor += 5;
    let mut server = ServerSession::new();
    assert!(matches!(
        server_result(&mut server, &Frame::Hello(h)),
        Ok(Request::Hello(_))
    ));
}

#[test]
fn server_holds_requests_until_the_login_is_accepted() {
    let mut server = ServerSession::new();
    server.handle_bytes(
        &[
            enc(&Frame::Hello(hello())),
            enc(&proof()),
            enc(&Frame::ListDevices),
        ]
        .concat(),
    );
    assert!(matches!(server.poll_request(), Some(Ok(Request::Hello(_)))));
    assert!(matches!(
        server.poll_request(),
        Some(Ok(Request::Proof { .. }))
    ));
    assert!(server.poll_request().is_none(), "held until accepted");
    assert!(!server.is_logged_in());
    server.accept_login(Role::Device);
    assert_eq!(server.role(), Some(Role::Device));
    assert_eq!(server.poll_request(), Some(Ok(Request::ListDevices)));
    for again in [Frame::Hello(hello()), proof()] {
        let mut server = logged_in();
        assert_eq!(
            server_result(&mut server, &again),
            Err(ErrorCode::DuplicateHello)
        );
    }
}

#[test]
fn server_wants_the_proof_right_after_the_hello() {
    let mut server = ServerSession::new();
    server.handle_bytes(&enc(&Frame::Hello(hello())));
    assert!(matches!(server.poll_request(), Some(Ok(Request::Hello(_)))));
    assert_eq!(
        server_result(&mut server, &Frame::ListDevices),
        Err(ErrorCode::FrameBeforeHello)
    );
    assert!(server.is_closed());
    // An operator's tool answers with an AdminProof, not a Proof.
    let mut server = ServerSession::new();
    let admin = Frame::AdminHello {
        version: PROTOCOL_VERSION,
    };
    assert_eq!(server_result(&mut server, &admin), Ok(Request::AdminHello));
    assert_eq!(
        server_result(&mut server, &proof()),
        Err(ErrorCode::FrameBeforeHello)
    );
    let mut server = ServerSession::new();
    server_result(&mut server, &admin).unwrap();
    assert_eq!(
        server_result(&mut server, &Frame::AdminProof { mac: [1; 32] }),
        Ok(Request::AdminProof { mac: [1; 32] })
    );
    assert!(server.poll_request().is_none());
    // An error report is fine at any point.
    let mut server = ServerSession::new();
    server_result(&mut server, &Frame::Hello(hello())).unwrap();
    assert!(matches!(
        server_result(&mut server, &Frame::error(ErrorCode::Malformed, "x")),
        Ok(Request::PeerError { .. })
    ));
}

#[test]
fn each_role_may_ask_only_for_its_own_requests() {
    use tandem_transport::frame::AdminRequest;
    let admin = Frame::Admin(AdminRequest::Ban {
        account: AccountId::new("alice").unwrap(),
    });
    let push = Frame::Push { deltas: vec![] };
    let cases = [
        (Role::Device, Frame::ListDevices, true),
        (Role::Device, Frame::Logout, true),
        (Role::Device, Frame::KickAll, true),
        (Role::Device, admin.clone(), false),
        (Role::Manager, Frame::ListDevices, true),
        (
            Role::Manager,
            Frame::Kick {
                device: DeviceId([2; 16]),
            },
            true,
        ),
        (Role::Manager, Frame::KickAllOthers, true),
        (Role::Manager, Frame::KickAll, true),
        (Role::Manager, Frame::Ping { nonce: 1 }, true),
        (Role::Manager, push.clone(), false),
        (Role::Manager, Frame::Logout, false),
        (
            Role::Manager,
            Frame::Pull {
                after_seq: 0,
                count_max: 1,
            },
            false,
        ),
        (Role::Manager, admin.clone(), false),
        (Role::Admin, admin, true),
        (Role::Admin, Frame::Ping { nonce: 1 }, true),
        (Role::Admin, Frame::ListDevices, false),
        (Role::Admin, push, false),
    ];
    for (role, frame, ok) in cases {
        let got = server_result(&mut logged_in_as(role), &frame);
        match (ok, got) {
            (true, Ok(_)) => {}
            (false, Err(ErrorCode::NotAllowed)) => {}
            (_, got) => panic!("{role:?} sending {}: {got:?}", frame.kind()),
        }
    }
}

#[test]
fn server_hello_field_limits_below_at_above() {
    for (len, ok) in [
        (DEVICE_NAME_BYTES_MAX - 1, true),
        (DEVICE_NAME_BYTES_MAX, true),
        (DEVICE_NAME_BYTES_MAX + 1, false),
    ] {
        let mut h = hello();
        h.device_name = "n".repeat(len);
        let got = server_result(&mut ServerSession::new(), &Frame::Hello(h));
        assert_eq!(got.is_ok(), ok, "name of {len}: {got:?}");
    }
    for (len, ok) in [
        (PLATFORM_NAME_BYTES_MAX - 1, true),
        (PLATFORM_NAME_BYTES_MAX, true),
        (PLATFORM_NAME_BYTES_MAX + 1, false),
    ] {
        let mut h = hello();
        h.platform = Platform::Custom("p".repeat(len));
        let got = server_result(&mut ServerSession::new(), &Frame::Hello(h));
        assert_eq!(got.is_ok(), ok, "platform of {len}: {got:?}");
    }
    for (len, ok) in [
        (0, true), // none
        (TOKEN_BYTES_MAX - 1, true),
        (TOKEN_BYTES_MAX, true),
        (TOKEN_BYTES_MAX + 1, false),
    ] {
        let mut h = hello();
        h.login_token = Some("t".repeat(len));
        let got = server_result(&mut ServerSession::new(), &Frame::Hello(h));
        assert_eq!(got.is_ok(), ok, "token of {len}: {got:?}");
    }
}

#[test]
fn server_push_count_limit_below_at_above() {
    for (count, ok) in [
        (DELTAS_PER_PUSH_MAX - 1, true),
        (DELTAS_PER_PUSH_MAX, true),
        (DELTAS_PER_PUSH_MAX + 1, false),
    ] {
        let deltas = (0..count)
            .map(|i| WireDelta::new((i as u32).to_be_bytes().to_vec()))
            .collect();
        let got = server_result(&mut logged_in(), &Frame::Push { deltas });
        match got {
            Ok(Request::Push(d)) => assert!(ok && d.len() == count),
            Err(code) => assert!(!ok && code == ErrorCode::TooManyDeltas),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn server_delta_size_limit_below_at_above() {
    for (len, ok) in [
        (DELTA_BYTES_MAX - 1, true),
        (DELTA_BYTES_MAX, true),
        (DELTA_BYTES_MAX + 1, false),
    ] {
        let push = Frame::Push {
            deltas: vec![WireDelta::new(vec![1; len])],
        };
        let got = server_result(&mut logged_in(), &push);
        assert_eq!(got.is_ok(), ok, "{len}");
        if !ok {
            assert_eq!(got, Err(ErrorCode::DeltaTooLarge));
        }
    }
}

#[test]
fn server_refuses_a_content_id_that_is_not_the_hash_of_the_bytes() {
    // Build a Push by hand whose first delta claims another delta's id.
    let good = WireDelta::new(b"real".to_vec());
    let mut bytes = enc(&Frame::Push { deltas: vec![good] });
    let id_at = bytes
        .windows(32)
        .position(|w| w == ContentId::of(b"real").0)
        .unwrap();
    bytes[id_at] ^= 1;
    let mut server = logged_in();
    server.handle_bytes(&bytes);
    let err = server.poll_request().unwrap().unwrap_err();
    assert_eq!(err.code, ErrorCode::ContentIdMismatch);
    assert_eq!(
        err.frame(),
        Frame::error(ErrorCode::ContentIdMismatch, err.text.clone())
    );
}

#[test]
fn server_payload_size_limit_below_at_above() {
    for (len, ok) in [
        (PAYLOAD_BYTES_MAX - 1, true),
        (PAYLOAD_BYTES_MAX, true),
        (PAYLOAD_BYTES_MAX + 1, false),
    ] {
        let frame = Frame::SendToDevice {
            to: DeviceId([2; 16]),
            id: PayloadId([3; 16]),
            bytes: vec![0; len],
        };
        let got = server_result(&mut logged_in(), &frame);
        assert_eq!(got.is_ok(), ok, "{len}");
        if !ok {
            assert_eq!(got, Err(ErrorCode::PayloadTooLarge));
        }
    }
}

#[test]
fn server_clamps_pull_page_size() {
    for (asked, got) in [
        (0, 1),
        (DELTAS_PER_PAGE_MAX as u32 - 1, DELTAS_PER_PAGE_MAX - 1),
        (DELTAS_PER_PAGE_MAX as u32, DELTAS_PER_PAGE_MAX),
        (DELTAS_PER_PAGE_MAX as u32 + 1, DELTAS_PER_PAGE_MAX),
        (u32::MAX, DELTAS_PER_PAGE_MAX),
    ] {
        let request = server_result(
            &mut logged_in(),
            &Frame::Pull {
                after_seq: 9,
                count_max: asked,
            },
        );
        assert_eq!(
            request,
            Ok(Request::Pull {
                after_seq: 9,
                count_max: got
            })
        );
    }
}

#[test]
fn server_refuses_relay_frames_and_garbage_from_a_client() {
    for frame in [welcome(), Frame::PullNeeded, Frame::DeviceListChanged] {
        assert_eq!(
            server_result(&mut logged_in(), &frame),
            Err(ErrorCode::UnexpectedFrame)
        );
    }
    let mut server = logged_in();
    server.handle_bytes(&[0, 0, 0, 2, 0xee, 0xee]);
    assert_eq!(
        server.poll_request().unwrap().unwrap_err().code,
        ErrorCode::Malformed
    );
    let mut server = logged_in();
    server.handle_bytes(&((FRAME_BYTES_MAX + 1) as u32).to_be_bytes());
    assert_eq!(
        server.poll_request().unwrap().unwrap_err().code,
        ErrorCode::FrameTooLarge
    );
}

// ---------------------------------------------------------------- client session

#[test]
fn client_sends_hello_then_the_proof_then_pipelined_commands() {
    let mut session = ClientSession::new(config().with_login_token("lt2.x"), 0).unwrap();
    session.list_devices().unwrap();
    session.push(vec![WireDelta::new(b"x".to_vec())]).unwrap();
    let frames = transmitted(&mut session);
    let [Frame::Hello(hello)] = &frames[..] else {
        panic!("only the Hello before the challenge: {frames:?}")
    };
    assert_eq!(hello.device_name, "phone");
    assert_eq!(hello.login_token.as_deref(), Some("lt2.x"));
    session.handle_bytes(&enc(&challenge(7)), 1);
    let frames = transmitted(&mut session);
    let Frame::Proof {
        public_key,
        signature,
    } = &frames[0]
    else {
        panic!("{frames:?}")
    };
    assert_eq!(*public_key, key().public_key());
    assert_eq!(
        auth::verify_login_proof(hello, public_key, &ChallengeNonce([7; 32]), signature),
        Ok(())
    );
    assert_eq!(frames[1], Frame::ListDevices);
    assert!(matches!(frames[2], Frame::Push { .. }));
    assert_eq!(session.state(), SessionState::Handshaking);
    // Commands after the proof go straight out.
    session.ack(0).unwrap();
    assert_eq!(transmitted(&mut session), vec![Frame::Ack { cursor: 0 }]);
    // A second challenge breaks the protocol.
    session.handle_bytes(&enc(&challenge(8)), 2);
    assert!(matches!(
        events(&mut session)[..],
        [SessionEvent::Closed(CloseReason::ProtocolViolation { .. })]
    ));
}

#[test]
fn a_management_session_lists_and_kicks_only() {
    let mut session = ClientSession::new(config().with_login_token("lt2.manage"), 0).unwrap();
    transmitted(&mut session);
    session.handle_bytes(&enc(&challenge(1)), 1);
    transmitted(&mut session);
    session.handle_bytes(
        &enc(&Frame::Managing {
            devices: vec![info()],
        }),
        2,
    );
    assert_eq!(
        events(&mut session),
        vec![SessionEvent::Managing(vec![info()])]
    );
    assert_eq!(session.state(), SessionState::Connected);
    session.list_devices().unwrap();
    session.kick(DeviceId([2; 16])).unwrap();
    session.kick_all_others().unwrap();
    session.kick_all().unwrap();
    assert_eq!(transmitted(&mut session).len(), 4);
    assert_eq!(session.push(vec![]), Err(CommandError::NotAllowed));
    assert_eq!(session.pull(0, 1), Err(CommandError::NotAllowed));
    assert_eq!(session.logout(), Err(CommandError::NotAllowed));
    assert!(session.poll_transmit().is_none());
}

#[test]
fn a_refusal_closes_the_session_with_its_reason_and_devices() {
    let reason = OfflineReason::KickedByDevice { by: laptop() };
    let mut session = ClientSession::new(config(), 0).unwrap();
    transmitted(&mut session);
    session.handle_bytes(&enc(&challenge(1)), 1);
    transmitted(&mut session);
    session.push(vec![]).unwrap();
    let refusal = Refusal {
        code: ErrorCode::CredentialsRevoked,
        text: "kicked".into(),
        reason: Some(reason.clone()),
        devices: vec![info()],
    };
    session.handle_bytes(&enc(&Frame::Refused(refusal.clone())), 2);
    assert_eq!(
        events(&mut session),
        vec![
            SessionEvent::Refused(refusal),
            SessionEvent::Closed(CloseReason::Refused {
                code: ErrorCode::CredentialsRevoked,
                reason: Some(reason)
            })
        ]
    );
    assert!(session.poll_transmit().is_none(), "nothing more goes out");
    // A Welcome before the proof, or a Refused before the challenge, breaks
    // the protocol.
    for early in [welcome(), Frame::Managing { devices: vec![] }] {
        let mut session = ClientSession::new(config(), 0).unwrap();
        transmitted(&mut session);
        session.handle_bytes(&enc(&early), 1);
        assert!(matches!(
            events(&mut session)[..],
            [SessionEvent::Closed(CloseReason::ProtocolViolation { .. })]
        ));
    }
}

#[test]
fn client_config_limits_below_at_above() {
    for (len, ok) in [
        (DEVICE_NAME_BYTES_MAX - 1, true),
        (DEVICE_NAME_BYTES_MAX, true),
        (DEVICE_NAME_BYTES_MAX + 1, false),
    ] {
        let mut c = config();
        c.device_name = "n".repeat(len);
        let got = ClientSession::new(c, 0);
        assert_eq!(got.is_ok(), ok);
        if !ok {
            assert_eq!(
                got.unwrap_err(),
                ConfigError::DeviceNameTooLong { bytes: len }
            );
        }
    }
    for (len, ok) in [
        (0, false),
        (1, true),
        (TOKEN_BYTES_MAX - 1, true),
        (TOKEN_BYTES_MAX, true),
        (TOKEN_BYTES_MAX + 1, false),
    ] {
        let c = config().with_login_token("t".repeat(len));
        assert_eq!(ClientSession::new(c, 0).is_ok(), ok, "token of {len}");
    }
    assert!(ClientSession::new(config(), 0).is_ok(), "no token at all");
}

#[test]
fn client_command_limits_below_at_above() {
    let mut session = connected();
    for (count, ok) in [
        (DELTAS_PER_PUSH_MAX - 1, true),
        (DELTAS_PER_PUSH_MAX, true),
        (DELTAS_PER_PUSH_MAX + 1, false),
    ] {
        let deltas = (0..count)
            .map(|i| WireDelta::new((i as u32).to_be_bytes().to_vec()))
            .collect();
        let got = session.push(deltas);
        assert_eq!(got.is_ok(), ok);
        if !ok {
            assert_eq!(got, Err(CommandError::TooManyDeltas { count }));
        }
    }
    for (len, ok) in [
        (DELTA_BYTES_MAX - 1, true),
        (DELTA_BYTES_MAX, true),
        (DELTA_BYTES_MAX + 1, false),
    ] {
        assert_eq!(
            session.push(vec![WireDelta::new(vec![0; len])]).is_ok(),
            ok,
            "{len}"
        );
    }
    // Three maximal deltas fit one frame; five do not.
    let max = |n: u8| WireDelta::new(vec![n; DELTA_BYTES_MAX]);
    assert!(session.push((0..3).map(max).collect()).is_ok());
    assert!(matches!(
        session.push((0..5).map(max).collect()),
        Err(CommandError::FrameTooLarge(_))
    ));
    for (len, ok) in [
        (PAYLOAD_BYTES_MAX - 1, true),
        (PAYLOAD_BYTES_MAX, true),
        (PAYLOAD_BYTES_MAX + 1, false),
    ] {
        let got = session.send_to_device(DeviceId([2; 16]), PayloadId([0; 16]), vec![0; len]);
        assert_eq!(got.is_ok(), ok, "{len}");
    }
}

#[test]
fn client_turns_relay_frames_into_events() {
    let mut session = connected();
    let live = {
        let bytes = b"d".to_vec();
        LogDelta {
            seq: 4,
            origin: DeviceId([2; 16]),
            content_id: ContentId::of(&bytes),
            bytes,
        }
    };
    let input = [
        Frame::Live(live.clone()),
        Frame::PullNeeded,
        Frame::DeviceListChanged,
        Frame::Deltas {
            deltas: vec![live.clone()],
            more: false,
        },
        Frame::error(ErrorCode::NotFound, "no such device"),
        Frame::DeliverPayload {
            from: DeviceId([2; 16]),
            id: PayloadId([5; 16]),
            bytes: b"p".into(),
        },
    ];
    let bytes: Vec<u8> = input.iter().flat_map(enc).collect();
    session.handle_bytes(&bytes, 10);
    assert_eq!(
        events(&mut session),
        vec![
            SessionEvent::Live(live.clone()),
            SessionEvent::PullNeeded,
            SessionEvent::DeviceListChanged,
            SessionEvent::Deltas {
                deltas: vec![live],
                more: false
            },
            SessionEvent::Error {
                code: ErrorCode::NotFound,
                text: "no such device".into()
            },
            SessionEvent::DevicePayload {
                from: DeviceId([2; 16]),
                id: PayloadId([5; 16]),
                bytes: b"p".into()
            },
        ]
    );
    assert_eq!(
        session.state(),
        SessionState::Connected,
        "NotFound is not fatal"
    );
    session.handle_bytes(&enc(&Frame::Ping { nonce: 77 }), 11);
    assert_eq!(transmitted(&mut session), vec![Frame::Pong { nonce: 77 }]);
}

#[test]
fn kicked_and_fatal_errors_close_the_session() {
    let mut session = connected();
    session.ack(3).unwrap();
    let reason = OfflineReason::Displaced { by: laptop() };
    session.handle_bytes(
        &enc(&Frame::Kicked {
            reason: reason.clone(),
        }),
        5,
    );
    assert_eq!(
        events(&mut session),
        vec![
            SessionEvent::Kicked(reason.clone()),
            SessionEvent::Closed(CloseReason::Kicked(reason))
        ]
    );
    assert!(
        session.poll_transmit().is_none(),
        "nothing more goes to a relay that kicked us"
    );
    assert_eq!(session.push(vec![]), Err(CommandError::Closed));

    let mut session = ClientSession::new(config(), 0).unwrap();
    session.handle_bytes(
        &enc(&Frame::error(ErrorCode::TooManyConnections, "busy")),
        1,
    );
    let got = events(&mut session);
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[1],
        SessionEvent::Closed(CloseReason::RelayError {
            code: ErrorCode::TooManyConnections
        })
    );
    // Renewals are told to the app.
    let mut session = connected();
    session.handle_bytes(&enc(&Frame::CredentialsRenewed { expires_at_ms: 77 }), 2);
    assert_eq!(
        events(&mut session),
        vec![SessionEvent::CredentialsRenewed { expires_at_ms: 77 }]
    );
}

#[test]
fn a_misbehaving_relay_gets_an_error_frame_and_a_closed_session() {
    // Garbage.
    let mut session = connected();
    session.handle_bytes(&[0, 0, 0, 1, 0xff], 3);
    assert!(matches!(
        events(&mut session)[..],
        [SessionEvent::Closed(CloseReason::ProtocolViolation { .. })]
    ));
    assert!(matches!(
        transmitted(&mut session)[..],
        [Frame::Error {
            code: ErrorCode::Malformed,
            ..
        }]
    ));
    // A frame before Welcome.
    let mut session = ClientSession::new(config(), 0).unwrap();
    transmitted(&mut session);
    session.handle_bytes(&enc(&Frame::PullNeeded), 1);
    assert!(session.is_closed());
    assert!(matches!(
        transmitted(&mut session)[..],
        [Frame::Error {
            code: ErrorCode::UnexpectedFrame,
            ..
        }]
    ));
    // A live delta whose bytes do not match its id.
    let mut session = connected();
    let bad = LogDelta {
        seq: 1,
        origin: DeviceId([2; 16]),
        content_id: ContentId([0; 32]),
        bytes: vec![1],
    };
    session.handle_bytes(&enc(&Frame::Live(bad)), 3);
    assert!(matches!(
        transmitted(&mut session)[..],
        [Frame::Error {
            code: ErrorCode::ContentIdMismatch,
            ..
        }]
    ));
    // A page above the page limit.
    let mut session = connected();
    let page: Vec<LogDelta> = (1..=DELTAS_PER_PAGE_MAX as u64 + 1)
        .map(|seq| LogDelta {
            seq,
            origin: DeviceId([2; 16]),
            content_id: ContentId::of(&[]),
            bytes: vec![],
        })
        .collect();
    session.handle_bytes(
        &enc(&Frame::Deltas {
            deltas: page.clone(),
            more: false,
        }),
        3,
    );
    assert!(session.is_closed());
    let mut session = connected();
    session.handle_bytes(
        &enc(&Frame::Deltas {
            deltas: page[..DELTAS_PER_PAGE_MAX].to_vec(),
            more: false,
        }),
        3,
    );
    assert!(!session.is_closed());
}

#[test]
fn ping_timing_is_driven_by_the_time_passed_in() {
    let mut session = connected(); // last frame at 1 ms
    let interval = session.config().ping_interval_ms;
    assert_eq!(session.poll_timeout(), Some(1 + interval));
    session.handle_timeout(interval);
    assert!(
        transmitted(&mut session).is_empty(),
        "not idle long enough yet"
    );
    session.handle_timeout(1 + interval);
    let sent = transmitted(&mut session);
    let [Frame::Ping { nonce }] = sent[..] else {
        panic!("{sent:?}")
    };
    assert_eq!(
        session.poll_timeout(),
        Some(1 + interval + PING_TIMEOUT_MS_DEFAULT)
    );
    session.handle_bytes(&enc(&Frame::Pong { nonce }), 1 + interval + 30);
    assert_eq!(
        events(&mut session),
        vec![SessionEvent::Pong { nonce, rtt_ms: 30 }]
    );

    // An unanswered ping closes the session at the timeout, not before.
    let start = 1 + interval + 30;
    let nonce = session.ping(start).unwrap();
    transmitted(&mut session);
    session.handle_timeout(start + PING_TIMEOUT_MS_DEFAULT - 1);
    assert!(!session.is_closed());
    session.handle_bytes(&enc(&Frame::Pong { nonce: nonce + 1 }), start + 1);
    assert!(
        events(&mut session).is_empty(),
        "a stale pong answers nothing"
    );
    session.handle_timeout(start + PING_TIMEOUT_MS_DEFAULT);
    assert_eq!(
        events(&mut session),
        vec![SessionEvent::Closed(CloseReason::Timeout)]
    );
    assert_eq!(session.poll_timeout(), None);
}

#[test]
fn an_unanswered_handshake_times_out() {
    let mut session = ClientSession::new(config(), 100).unwrap();
    assert_eq!(session.poll_timeout(), Some(100 + PING_TIMEOUT_MS_DEFAULT));
    session.handle_timeout(100 + PING_TIMEOUT_MS_DEFAULT - 1);
    assert!(!session.is_closed());
    session.handle_timeout(100 + PING_TIMEOUT_MS_DEFAULT);
    assert_eq!(
        events(&mut session),
        vec![SessionEvent::Closed(CloseReason::Timeout)]
    );
}

#[test]
fn mem_link_carries_a_session_to_a_server_session_deterministically() {
    let mut link = MemLink::new();
    let mut client = ClientSession::new(config(), 0).unwrap();
    let mut server = ServerSession::new();
    client.push(vec![WireDelta::new(b"a".to_vec())]).unwrap();
    assert_eq!(link.send_from_client(&mut client), 1, "the push waits");
    while let Some(bytes) = link.take_for_relay() {
        server.handle_bytes(&bytes);
    }
    assert!(matches!(server.poll_request(), Some(Ok(Request::Hello(_)))));
    link.send_to_client(enc(&challenge(3)));
    assert_eq!(link.deliver_to_client(&mut client, 1), 1);
    assert_eq!(
        link.send_from_client(&mut client),
        2,
        "the proof, then the push"
    );
    while let Some(bytes) = link.take_for_relay() {
        server.handle_bytes(&bytes);
    }
    assert!(matches!(
        server.poll_request(),
        Some(Ok(Request::Proof { .. }))
    ));
    server.accept_login(Role::Device);
    let Some(Ok(Request::Push(deltas))) = server.poll_request() else {
        panic!()
    };
    link.send_to_client(enc(&welcome()));
    let entries = vec![tandem_transport::PushAckEntry {
        content_id: deltas[0].content_id(),
        seq: 1,
    }];
    link.send_to_client(enc(&Frame::PushAck {
        entries: entries.clone(),
    }));
    assert_eq!(link.deliver_to_client(&mut client, 5), 2);
    let got = events(&mut client);
    assert!(matches!(got[0], SessionEvent::Connected(_)));
    assert_eq!(got[1], SessionEvent::PushAcked(entries));
    link.sever();
    link.deliver_to_client(&mut client, 6);
    assert_eq!(
        events(&mut client),
        vec![SessionEvent::Closed(CloseReason::TransportClosed)]
    );
}

/// Log positions just below, at and just above [`RELAY_SEQ_MAX`]
/// (2^63 - 1), and the largest u64.
const SEQS: [(u64, bool); 4] = [
    (RELAY_SEQ_MAX - 1, true),
    (RELAY_SEQ_MAX, true),
    (RELAY_SEQ_MAX + 1, false),
    (u64::MAX, false),
];

#[test]
fn client_refuses_relay_frames_with_a_log_position_above_the_limit() {
    let log_delta = |seq| LogDelta {
        seq,
        origin: DeviceId([2; 16]),
        content_id: ContentId::of(b"d"),
        bytes: b"d".to_vec(),
    };
    for (seq, ok) in SEQS {
        let frames = [
            Frame::Live(log_delta(seq)),
            Frame::Deltas {
                deltas: vec![log_delta(seq)],
                more: false,
            },
            Frame::PushAck {
                entries: vec![tandem_transport::PushAckEntry {
                    content_id: ContentId::of(b"d"),
                    seq,
                }],
            },
        ];
        for frame in frames {
            let mut session = connected();
            session.handle_bytes(&enc(&frame), 3);
            assert_eq!(!session.is_closed(), ok, "seq {seq}: {}", frame.kind());
            if !ok {
                assert!(matches!(
                    transmitted(&mut session)[..],
                    [Frame::Error {
                        code: ErrorCode::Malformed,
                        ..
                    }]
                ));
            }
        }
        // The head in the Welcome.
        let mut session = ClientSession::new(config(), 0).unwrap();
        session.handle_bytes(&enc(&challenge(1)), 1);
        transmitted(&mut session);
        let Frame::Welcome(mut welcome) = welcome() else {
            unreachable!()
        };
        welcome.head_seq = seq;
        session.handle_bytes(&enc(&Frame::Welcome(welcome)), 1);
        assert_eq!(!session.is_closed(), ok, "head seq {seq}");
    }
    // A push acknowledged at position 0 is no position either.
    let mut session = connected();
    session.handle_bytes(
        &enc(&Frame::PushAck {
            entries: vec![tandem_transport::PushAckEntry {
                content_id: ContentId::of(b"d"),
                seq: 0,
            }],
        }),
        3,
    );
    assert!(session.is_closed());
}

#[test]
fn server_refuses_client_frames_with_a_log_position_above_the_limit() {
    for (seq, ok) in SEQS {
        let mut server = ServerSession::new();
        let result = server_result(
            &mut server,
            &Frame::Hello(Hello {
                resume_cursor: seq,
                ..hello()
            }),
        );
        assert_eq!(result.is_ok(), ok, "resume cursor {seq}: {result:?}");
        if !ok {
            assert_eq!(result.unwrap_err(), ErrorCode::Malformed);
        }
        let pull = Frame::Pull {
            after_seq: seq,
            count_max: 1,
        };
        let ack = Frame::Ack { cursor: seq };
        for frame in [pull, ack] {
            let result = server_result(&mut logged_in(), &frame);
            assert_eq!(result.is_ok(), ok, "{} {seq}: {result:?}", frame.kind());
            if !ok {
                assert_eq!(result.unwrap_err(), ErrorCode::Malformed);
            }
        }
    }
}

#[test]
fn client_never_sends_a_log_position_above_the_limit() {
    for (seq, ok) in SEQS {
        let mut config = config();
        config.resume_cursor = seq;
        let made = ClientSession::new(config, 0);
        assert_eq!(made.is_ok(), ok, "resume cursor {seq}");
        if !ok {
            assert!(matches!(
                made.unwrap_err(),
                ConfigError::ResumeCursorTooLarge { cursor } if cursor == seq
            ));
        }
        let mut session = connected();
        assert_eq!(session.pull(seq, 10).is_ok(), ok, "pull after {seq}");
        assert_eq!(session.ack(seq).is_ok(), ok, "ack {seq}");
        if !ok {
            assert_eq!(session.ack(seq), Err(CommandError::SeqTooLarge { seq }));
        }
    }
}

// ---------------------------------------------------------------- message mode

#[test]
fn message_mode_takes_one_frame_per_message_and_the_limit_below_at_above() {
    // Message bodies are frames without their prefix.
    let ping = enc(&Frame::Ping { nonce: 1 });
    assert_eq!(codec::message_body(&ping), &ping[FRAME_PREFIX_BYTES..]);
    for (body_bytes, fits) in [
        (FRAME_BYTES_MAX - 1, true),
        (FRAME_BYTES_MAX, true),
        (FRAME_BYTES_MAX + 1, false),
    ] {
        let mut decoder = FrameDecoder::new();
        decoder.feed_message(codec::message_body(&ping));
        decoder.feed_message(&vec![0xff; body_bytes]);
        // The frame before the big message comes out first, whatever follows.
        assert_eq!(decoder.next_frame(), Ok(Some(Frame::Ping { nonce: 1 })));
        let got = decoder.next_frame();
        if fits {
            assert!(
                matches!(got, Err(FrameError::Malformed { .. })),
                "{body_bytes}: {got:?}"
            );
        } else {
            assert_eq!(got, Err(FrameError::TooLarge { body_bytes }));
        }
        // Failed for good, and nothing of the body was kept.
        assert_eq!(decoder.buffered_bytes(), 0);
        decoder.feed_message(codec::message_body(&ping));
        assert!(decoder.next_frame().is_err());
    }
    // A message is exactly one frame: two frames in one message, or a
    // frame cut short, are malformed.
    let two = [codec::message_body(&ping), codec::message_body(&ping)].concat();
    let welcome = enc(&welcome());
    let cut = &codec::message_body(&welcome)[..10];
    for body in [&two[..], cut, &[][..]] {
        let mut decoder = FrameDecoder::new();
        decoder.feed_message(body);
        assert!(
            matches!(decoder.next_frame(), Err(FrameError::Malformed { .. })),
            "{body:?}"
        );
    }
}

#[test]
fn both_sessions_take_messages_and_refuse_bad_ones_like_bad_bytes() {
    // The device side.
    let mut session = connected();
    session.handle_message(codec::message_body(&enc(&Frame::PullNeeded)), 3);
    assert_eq!(events(&mut session), vec![SessionEvent::PullNeeded]);
    session.handle_message(&[0xff], 4);
    assert!(session.is_closed());
    assert!(matches!(
        transmitted(&mut session)[..],
        [Frame::Error {
            code: ErrorCode::Malformed,
            ..
        }]
    ));
    let mut session = connected();
    session.handle_refused_input(FrameError::TooLarge {
        body_bytes: FRAME_BYTES_MAX + 1,
    });
    assert!(matches!(
        events(&mut session)[..],
        [SessionEvent::Closed(CloseReason::ProtocolViolation { .. })]
    ));
    assert!(matches!(
        transmitted(&mut session)[..],
        [Frame::Error {
            code: ErrorCode::FrameTooLarge,
            ..
        }]
    ));
    // The relay side.
    let mut server = ServerSession::new();
    server.handle_message(codec::message_body(&enc(&Frame::Hello(hello()))));
    assert!(matches!(server.poll_request(), Some(Ok(Request::Hello(_)))));
    server.handle_message(&vec![0; FRAME_BYTES_MAX + 1]);
    assert_eq!(
        server.poll_request().map(|r| r.map_err(|e| e.code)),
        Some(Err(ErrorCode::FrameTooLarge))
    );
    assert!(server.is_closed());
}
