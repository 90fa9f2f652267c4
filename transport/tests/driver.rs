//! The tokio driver over an in-process duplex pipe, against a tiny relay
//! stand-in built on `ServerSession` and the codec, on both kinds of link:
//! a byte stream (frames with their length prefix, as on TCP) and a
//! WebSocket (one binary message per frame). Every test body is written
//! once and run on both (`on_both_links!`); what only a WebSocket can send
//! (text, fragments) has tests of its own.
//!
//! The relay end reads and writes the pipe's raw bytes. For a WebSocket it
//! does the upgrade with the transport's `ws::accept`, then reads and
//! writes RFC 6455 frames itself (`Unframer`, `ws_frame`), so a test can
//! send what no well-behaved peer would: a header announcing more than the
//! limit with no body behind it, a text message, fragments, one byte at a
//! time.

use std::time::Duration;

use tandem_transport::auth::{verify_login_proof, ChallengeNonce, DeviceKey};
use tandem_transport::client::CloseReason;
use tandem_transport::codec::{self, FrameDecoder};
use tandem_transport::driver::ws::{self, WebSocket};
use tandem_transport::driver::{Connection, Link};
use tandem_transport::frame::{Enrollment, EnrollmentState, Welcome};
use tandem_transport::limits::FRAME_BYTES_MAX;
use tandem_transport::server::{Request, Role, ServerSession};
use tandem_transport::{
    AccountId, ClientConfig, ClientSession, DeviceId, DeviceInfo, ErrorCode, Frame, Platform,
    PushAckEntry, RelayAddress, SessionEvent, WireDelta, PROTOCOL_VERSION,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// How the pipe carries frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Length-prefixed frames on a byte stream, as on TCP.
    Stream,
    /// One frame per binary WebSocket message.
    WebSocket,
}

/// The relay's end of the pipe: raw bytes, framed by hand for its kind.
struct RelayEnd {
    kind: Kind,
    pipe: DuplexStream,
    unframer: Unframer,
    decoder: FrameDecoder,
    /// Frames decoded and not yet read.
    pending: std::collections::VecDeque<Frame>,
}

impl RelayEnd {
    /// Every whole frame that arrived with `bytes`.
    fn take(&mut self, bytes: &[u8]) -> Vec<Frame> {
        match self.kind {
            Kind::Stream => self.decoder.feed(bytes),
            Kind::WebSocket => {
                for body in self.unframer.feed(bytes) {
                    self.decoder.feed_message(&body);
                }
            }
        }
        std::iter::from_fn(|| self.decoder.next_frame().unwrap()).collect()
    }

    /// The next frame from the device; `None` when the pipe ends.
    async fn read(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Some(frame);
            }
            // A WebSocket device closes with a Close frame and waits for
            // the relay to end the TCP connection.
            if self.unframer.closed {
                return None;
            }
            let mut chunk = [0u8; 4096];
            let n = self.pipe.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            let frames = self.take(&chunk[..n]);
            self.pending.extend(frames);
        }
    }

    /// A frame as this kind carries it.
    fn encode(&self, frame: &Frame) -> Vec<u8> {
        let encoded = codec::encode(frame).unwrap();
        match self.kind {
            Kind::Stream => encoded,
            Kind::WebSocket => ws_frame(true, OPCODE_BINARY, codec::message_body(&encoded)),
        }
    }

    async fn write(&mut self, frame: &Frame) {
        let bytes = self.encode(frame);
        self.pipe.write_all(&bytes).await.unwrap();
    }

    /// What announces a body of `body_bytes` in this kind, without the body.
    fn header_for(&self, body_bytes: usize) -> Vec<u8> {
        match self.kind {
            Kind::Stream => (body_bytes as u32).to_be_bytes().to_vec(),
            Kind::WebSocket => ws_header(true, OPCODE_BINARY, body_bytes),
        }
    }
}

const OPCODE_CONTINUATION: u8 = 0x0;
const OPCODE_TEXT: u8 = 0x1;
const OPCODE_BINARY: u8 = 0x2;
const OPCODE_CLOSE: u8 = 0x8;

/// An unmasked (server-to-client) WebSocket frame header (RFC 6455 §5.2).
fn ws_header(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    if len < 126 {
        out.push(len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out
}

/// An unmasked WebSocket frame: header and payload.
fn ws_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = ws_header(fin, opcode, payload.len());
    out.extend_from_slice(payload);
    out
}

/// Reassembles the device's (masked) WebSocket frames into messages.
#[derive(Default)]
struct Unframer {
    buffer: Vec<u8>,
    message: Vec<u8>,
    /// The device sent its Close frame: nothing follows.
    closed: bool,
}

impl Unframer {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.buffer.extend_from_slice(bytes);
        let mut messages = Vec::new();
        while let Some((fin, opcode, payload, used)) = self.frame() {
            self.buffer.drain(..used);
            match opcode {
                OPCODE_BINARY | OPCODE_CONTINUATION => self.message.extend(payload),
                OPCODE_CLOSE => {
                    self.closed = true;
                    continue;
                }
                // Ping, pong: not Tandem's.
                _ => continue,
            }
            if fin {
                messages.push(std::mem::take(&mut self.message));
            }
        }
        messages
    }

    /// The frame at the front of the buffer, if whole.
    fn frame(&self) -> Option<(bool, u8, Vec<u8>, usize)> {
        let b = &self.buffer;
        if b.len() < 2 {
            return None;
        }
        let (fin, opcode, masked) = (b[0] & 0x80 != 0, b[0] & 0x0f, b[1] & 0x80 != 0);
        assert!(masked, "a client masks every frame");
        let (len, mut at) = match b[1] & 0x7f {
            126 => (
                u16::from_be_bytes(b.get(2..4)?.try_into().unwrap()) as usize,
                4,
            ),
            127 => (
                u64::from_be_bytes(b.get(2..10)?.try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        let mask: [u8; 4] = b.get(at..at + 4)?.try_into().unwrap();
        at += 4;
        let payload = b.get(at..at + len)?;
        let unmasked = payload
            .iter()
            .enumerate()
            .map(|(i, byte)| byte ^ mask[i % 4])
            .collect();
        Some((fin, opcode, unmasked, at + len))
    }
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

/// A byte-stream connection over a pipe of `pipe_bytes`.
fn stream_pair(session: ClientSession, pipe_bytes: usize) -> (Connection<DuplexStream>, RelayEnd) {
    let (client_end, relay_end) = tokio::io::duplex(pipe_bytes);
    (
        Connection::new(client_end, session),
        relay_end_of(Kind::Stream, relay_end),
    )
}

/// A WebSocket connection over a pipe of `pipe_bytes`: the upgrade done
/// with the transport's own handshake and accept.
async fn ws_pair(
    session: ClientSession,
    pipe_bytes: usize,
) -> (Connection<WebSocket<DuplexStream>>, RelayEnd) {
    let (client_end, relay_end) = tokio::io::duplex(pipe_bytes);
    let address = RelayAddress::parse("ws://relay.test/tandem").unwrap();
    let (client, relay) = tokio::join!(ws::handshake(&address, client_end), ws::accept(relay_end));
    (
        Connection::new(client.unwrap(), session),
        relay_end_of(Kind::WebSocket, relay.unwrap().into_inner()),
    )
}

fn relay_end_of(kind: Kind, pipe: DuplexStream) -> RelayEnd {
    RelayEnd {
        kind,
        pipe,
        unframer: Unframer::default(),
        decoder: FrameDecoder::new(),
        pending: Default::default(),
    }
}

/// Runs `$body(connection, relay_end).await` once on each kind of link,
/// as two tests in a module named `$name`; the session comes from
/// `$session` and the pipe holds `$pipe` bytes.
macro_rules! on_both_links {
    ($(#[$attr:meta])* $name:ident, $session:expr, $pipe:expr, $body:ident) => {
        mod $name {
            use super::*;

            $(#[$attr])*
            async fn stream() {
                let (conn, relay) = stream_pair($session, $pipe);
                $body(conn, relay).await;
            }

            $(#[$attr])*
            async fn websocket() {
                let (conn, relay) = ws_pair($session, $pipe).await;
                $body(conn, relay).await;
            }
        }
    };
}

fn welcome(head_seq: u64) -> Welcome {
    let info = DeviceInfo {
        id: DeviceId([1; 16]),
        name: "laptop".into(),
        platform: Platform::Linux,
        first_login_ms: 0,
        last_seen_ms: 0,
        online: true,
        enrollment: EnrollmentState::Active { expires_at_ms: 9 },
    };
    Welcome {
        version: PROTOCOL_VERSION,
        device: info.clone(),
        devices: vec![info],
        head_seq,
        enrollment: Enrollment {
            token_id: [0; 16],
            enrolled_at_ms: 0,
            expires_at_ms: 9,
        },
    }
}

/// Answers Hello with a Challenge, a Proof that verifies with a Welcome,
/// each Push with its PushAck, then closes after the first Ack.
async fn stand_in_relay(mut relay: RelayEnd) {
    let mut server = ServerSession::new();
    let mut seq = 0;
    let nonce = ChallengeNonce([3; 32]);
    let mut hello = None;
    while let Some(frame) = relay.read().await {
        match server.validate(frame).unwrap() {
            Request::Hello(h) => {
                hello = Some(h);
                relay.write(&Frame::Challenge { nonce }).await;
            }
            Request::Proof {
                public_key,
                signature,
            } => {
                let hello = hello.take().expect("the Hello came first");
                verify_login_proof(&hello, &public_key, &nonce, &signature).unwrap();
                server.accept_login(Role::Device);
                relay.write(&Frame::Welcome(welcome(0))).await;
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
                relay.write(&Frame::PushAck { entries }).await;
            }
            Request::Ack { .. } => return,
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn next<L: Link>(conn: &mut Connection<L>) -> Option<SessionEvent> {
    tokio::time::timeout(Duration::from_secs(5), conn.next_event())
        .await
        .unwrap()
        .unwrap()
}

on_both_links!(
    #[tokio::test]
    runs_a_session,
    ClientSession::new(alice_config(), 0).unwrap(),
    1024,
    runs_a_session_body
);

async fn runs_a_session_body<L: Link>(mut conn: Connection<L>, relay: RelayEnd) {
    let relay = tokio::spawn(stand_in_relay(relay));
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

// A pipe far smaller than the frames: every write stops part way.
on_both_links!(
    #[tokio::test(start_paused = true)]
    next_event_cancelled_mid_write_loses_and_duplicates_nothing,
    challenged(),
    64,
    cancelled_mid_write_body
);

/// `next_event` raced against a timer (as the online shell races it against
/// commands) is dropped again and again while a frame is half written; a
/// command queued between two drops goes out after that frame. The relay
/// end must read every frame exactly once, whole, in order.
async fn cancelled_mid_write_body<L: Link>(mut conn: Connection<L>, mut relay: RelayEnd) {
    let deltas: Vec<WireDelta> = (0..3u8).map(|i| WireDelta::new(vec![i; 4000])).collect();
    conn.session().push(deltas.clone()).unwrap();

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
            tokio::time::timeout(Duration::from_millis(1), relay.pipe.read(&mut chunk)).await
        else {
            // Nothing more was written.
            break;
        };
        let n = read.unwrap();
        let before = received.len();
        received.extend(relay.take(&chunk[..n]));
        if received.len() == before {
            drops_mid_frame += 1;
        }
    }
    assert_eq!(
        relay.decoder.buffered_bytes(),
        0,
        "no partial frame is left"
    );
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

on_both_links!(
    #[tokio::test(start_paused = true)]
    next_event_cancelled_mid_read_loses_nothing,
    challenged(),
    64 * 1024,
    cancelled_mid_read_body
);

/// A `next_event` dropped while a frame from the relay trickles in byte by
/// byte loses none of it: the session sees the whole `Welcome` once.
async fn cancelled_mid_read_body<L: Link>(mut conn: Connection<L>, mut relay: RelayEnd) {
    let welcome = welcome(7);
    let bytes = relay.encode(&Frame::Welcome(welcome.clone()));
    for (i, byte) in bytes.iter().enumerate() {
        relay.pipe.write_all(&[*byte]).await.unwrap();
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

/// Runs the connection until its session closes, taking what the relay
/// end receives meanwhile; the close reason and those frames.
async fn run_to_close<L: Link>(
    conn: &mut Connection<L>,
    relay: &mut RelayEnd,
) -> (CloseReason, Vec<Frame>) {
    let mut received = Vec::new();
    let reason = loop {
        match next(conn).await {
            Some(SessionEvent::Closed(reason)) => break reason,
            Some(_) => {}
            None => panic!("ended without a Closed event"),
        }
    };
    // The session's last frames go out before the link is shut down.
    assert_eq!(next(conn).await, None);
    while let Some(frame) = relay.read().await {
        received.push(frame);
    }
    (reason, received)
}

/// The `Error` frame the relay end got after the handshake frames.
fn error_code(received: &[Frame]) -> ErrorCode {
    match received.last() {
        Some(Frame::Error { code, .. }) => *code,
        other => panic!("no Error frame last: {other:?}"),
    }
}

on_both_links!(
    #[tokio::test]
    input_above_the_frame_limit_is_refused_on_its_header_alone,
    challenged(),
    64 * 1024,
    above_limit_body
);

/// A length one byte above the limit is refused as soon as it is
/// announced, with nothing of the body sent: the driver cannot have waited
/// for (or buffered) any of it. The relay hears why.
async fn above_limit_body<L: Link>(mut conn: Connection<L>, mut relay: RelayEnd) {
    let header = relay.header_for(FRAME_BYTES_MAX + 1);
    relay.pipe.write_all(&header).await.unwrap();
    let (reason, received) = run_to_close(&mut conn, &mut relay).await;
    assert!(
        matches!(&reason, CloseReason::ProtocolViolation { reason } if reason.contains("above the limit")),
        "{reason:?}"
    );
    assert_eq!(error_code(&received), ErrorCode::FrameTooLarge);
}

on_both_links!(
    #[tokio::test]
    input_at_the_frame_limit_is_read_whole,
    challenged(),
    64 * 1024,
    at_limit_body
);

on_both_links!(
    #[tokio::test]
    input_just_below_the_frame_limit_is_read_whole,
    challenged(),
    64 * 1024,
    below_limit_body
);

async fn at_limit_body<L: Link>(conn: Connection<L>, relay: RelayEnd) {
    read_whole(conn, relay, FRAME_BYTES_MAX).await;
}

async fn below_limit_body<L: Link>(conn: Connection<L>, relay: RelayEnd) {
    read_whole(conn, relay, FRAME_BYTES_MAX - 1).await;
}

/// A body of `body_bytes` (within the limit) is read whole: it is garbage,
/// so the session refuses it as malformed, not as too large.
async fn read_whole<L: Link>(mut conn: Connection<L>, mut relay: RelayEnd, body_bytes: usize) {
    let mut bytes = relay.header_for(body_bytes);
    // 0xff is no frame's first byte: malformed, once read whole.
    bytes.resize(bytes.len() + body_bytes, 0xff);
    let mut pipe = relay.pipe;
    let writer = tokio::spawn(async move {
        pipe.write_all(&bytes).await.unwrap();
        pipe
    });
    let reason = close_reason(&mut conn).await;
    assert!(
        matches!(&reason, CloseReason::ProtocolViolation { reason } if reason.contains("malformed")),
        "{body_bytes}: {reason:?}"
    );
    assert_eq!(next(&mut conn).await, None);
    relay.pipe = writer.await.unwrap();
    let mut received = Vec::new();
    while let Some(frame) = relay.read().await {
        received.push(frame);
    }
    assert_eq!(error_code(&received), ErrorCode::Malformed);
}

async fn close_reason<L: Link>(conn: &mut Connection<L>) -> CloseReason {
    loop {
        match next(conn).await {
            Some(SessionEvent::Closed(reason)) => return reason,
            Some(_) => {}
            None => panic!("ended without a Closed event"),
        }
    }
}

#[tokio::test]
async fn a_text_message_is_refused_as_malformed() {
    let (mut conn, mut relay) = ws_pair(challenged(), 64 * 1024).await;
    relay
        .pipe
        .write_all(&ws_frame(true, OPCODE_TEXT, b"{\"hello\":1}"))
        .await
        .unwrap();
    let (reason, received) = run_to_close(&mut conn, &mut relay).await;
    assert!(
        matches!(&reason, CloseReason::ProtocolViolation { reason } if reason.contains("text message")),
        "{reason:?}"
    );
    assert_eq!(error_code(&received), ErrorCode::Malformed);
}

/// Fragments that add up to more than the limit are refused when the
/// fragment that passes it arrives, however small each one is.
#[tokio::test]
async fn fragments_past_the_frame_limit_are_refused() {
    let (mut conn, mut relay) = ws_pair(challenged(), 64 * 1024).await;
    let fragment = FRAME_BYTES_MAX / 2;
    let mut bytes = ws_frame(false, OPCODE_BINARY, &vec![0xff; fragment]);
    bytes.extend(ws_frame(false, OPCODE_CONTINUATION, &vec![0xff; fragment]));
    bytes.extend(ws_frame(true, OPCODE_CONTINUATION, &[0xff]));
    let mut pipe = relay.pipe;
    let writer = tokio::spawn(async move {
        let _ = pipe.write_all(&bytes).await;
        pipe
    });
    let reason = close_reason(&mut conn).await;
    assert!(
        matches!(&reason, CloseReason::ProtocolViolation { reason } if reason.contains(&format!("frame of {} bytes is above the limit", FRAME_BYTES_MAX + 1))),
        "{reason:?}"
    );
    assert_eq!(next(&mut conn).await, None);
    relay.pipe = writer.await.unwrap();
    let mut received = Vec::new();
    while let Some(frame) = relay.read().await {
        received.push(frame);
    }
    assert_eq!(error_code(&received), ErrorCode::FrameTooLarge);
}

/// Fragments of one message within the limit are one frame.
#[tokio::test]
async fn a_fragmented_message_within_the_limit_is_one_frame() {
    let (mut conn, mut relay) = ws_pair(challenged(), 64 * 1024).await;
    // The frame's body, split in three fragments.
    let encoded = codec::encode(&Frame::Welcome(welcome(3))).unwrap();
    let payload = codec::message_body(&encoded);
    let (a, rest) = payload.split_at(5);
    let (b, c) = rest.split_at(7);
    let mut bytes = ws_frame(false, OPCODE_BINARY, a);
    bytes.extend(ws_frame(false, OPCODE_CONTINUATION, b));
    bytes.extend(ws_frame(true, OPCODE_CONTINUATION, c));
    relay.pipe.write_all(&bytes).await.unwrap();
    assert_eq!(
        next(&mut conn).await,
        Some(SessionEvent::Connected(welcome(3)))
    );
}
