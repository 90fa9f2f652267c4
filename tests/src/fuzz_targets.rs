//! The bodies of the fuzz targets in `../fuzz`, one function per target.
//!
//! Each takes the fuzzer's bytes and panics only on a real defect: a
//! decoder that panics, a round trip that changes a value, a relay that
//! loses an acknowledged delta or sends a frame its own client refuses,
//! devices that do not converge. `tests/fuzz_replay.rs` runs every committed
//! corpus and crash file through these same functions.

use std::collections::{BTreeMap, BTreeSet};

use tandem_engine::delta::{Delta, EncodedDelta};
use tandem_engine::event::{EventKind, MessageEvent};
use tandem_engine::seal::{self, BodyV1, EnvelopeKey, GenerationRoot, OriginSigner, SealHeader};
use tandem_engine::ContentId;
use tandem_engine::{Engine, ExportCursor, OpError};
use tandem_relay::config::OverflowPolicy;
use tandem_relay::core::{ConnId, CoreConfig, Notice, RelayCore};
use tandem_relay::hook::LogOfflinePush;
use tandem_relay::secret::Secret;
use tandem_relay::token::{self, Purpose};
use tandem_storage::relay::MemoryRelayStore;
use tandem_transport::auth::ChallengeNonce;
use tandem_transport::codec::{self, FrameDecoder};
use tandem_transport::frame::{AdminReply, AdminRequest, Hello, ProtocolVersion};
use tandem_transport::{
    AccountId, ClientConfig, ClientSession, CloseReason, DeviceId, DeviceKey, ErrorCode, Frame,
    PayloadId, Platform, Request, Role, SeededEntropy, ServerSession, SessionEvent,
    PROTOCOL_VERSION,
};

use crate::choice::{Bytes, Choices};
use crate::gen::{Gen, ACCOUNT};

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The names of the targets, as `fuzz/fuzz_targets/<name>.rs` and the
/// corpus folders call them, with their bodies.
pub const TARGETS: [(&str, Target); 5] = [
    ("frame_decode", frame_decode),
    ("delta_decode", delta_decode),
    ("relay_session", relay_session),
    ("merge", merge),
    ("envelope_open", envelope_open),
];

fn account() -> AccountId {
    AccountId::new(ACCOUNT).expect("a valid account id")
}

/// An in-memory device of the test account with id `[n; 16]`.
pub fn memory_engine(n: u8) -> Engine {
    let config = tandem_engine::Config {
        store: tandem_engine::StorePath::Memory,
        account: account(),
        device_name: format!("device {n}"),
        platform: Platform::Linux,
    };
    Engine::open(
        config,
        1_000,
        Box::new(SeededEntropy::starting_with(&[n; 16], n.into())),
    )
    .expect("an in-memory device opens")
}

/// Every delta a device holds, oldest first.
pub fn export_all(engine: &Engine) -> Vec<EncodedDelta> {
    engine
        .export(ExportCursor::default(), usize::MAX >> 1)
        .expect("export")
        .deltas
}

// ---- frame_decode ----

/// Frame decoding: the whole-buffer and the streaming decoder agree on any
/// bytes, every decoded frame survives a re-encode, and both session state
/// machines take the bytes without panicking.
pub fn frame_decode(data: &[u8]) {
    let mut buffer = data.to_vec();
    let mut whole = Vec::new();
    while let Ok(Some(frame)) = codec::decode(&mut buffer) {
        whole.push(frame);
    }
    // The same bytes in chunks whose size depends on the input.
    let chunk = 1 + data.len() % 13;
    let mut decoder = FrameDecoder::new();
    let mut streamed = Vec::new();
    'feed: for piece in data.chunks(chunk) {
        decoder.feed(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => streamed.push(frame),
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    assert_eq!(whole, streamed, "the streaming decoder disagrees");
    for frame in &whole {
        let bytes = codec::encode(frame).expect("a decoded frame encodes within the limit");
        let mut again = bytes.clone();
        let decoded = codec::decode(&mut again).expect("re-encoded frame decodes");
        assert_eq!(decoded.as_ref(), Some(frame), "frame round trip");
        assert!(again.is_empty(), "one frame, no trailing bytes");
    }
    // The relay's session: accept any proof so later frames are validated
    // as a logged-in device's.
    let mut server = ServerSession::new();
    server.handle_bytes(data);
    while let Some(request) = server.poll_request() {
        match request {
            Ok(Request::Proof { .. } | Request::AdminProof { .. }) => {
                server.accept_login(Role::Device)
            }
            Ok(_) => {}
            Err(error) => {
                codec::encode(&error.frame()).expect("an error frame encodes");
            }
        }
    }
    // The device's session.
    let mut client = ClientSession::new(client_config(1, Some("t")), 0).expect("a valid config");
    client.handle_bytes(data, 1);
    while client.poll_event().is_some() {}
    while client.poll_transmit().is_some() {}
}

fn client_config(device: u8, token: Option<&str>) -> ClientConfig {
    let mut config = ClientConfig::new(
        account(),
        DeviceId([device; 16]),
        "fuzz",
        Platform::Linux,
        fuzz_key(device),
    );
    config.login_token = token.map(str::to_owned);
    config.ping_interval_ms = 0;
    config
}

// ---- delta_decode ----

/// Delta decoding: never panics; a delta that decodes re-encodes to the
/// same value; merging it into a device is all or nothing.
pub fn delta_decode(data: &[u8]) {
    let account = account();
    let Ok((delta, change)) = Delta::decode(data, &account) else {
        return;
    };
    let again = delta.encode();
    let (delta_again, change_again) =
        Delta::decode(&again.0, &account).expect("a re-encoded valid delta decodes");
    assert_eq!(delta, delta_again, "delta round trip");
    assert_eq!(
        change.map(|c| c.hash()),
        change_again.map(|c| c.hash()),
        "change round trip"
    );
    let mut engine = memory_engine(9);
    let before = engine.state().expect("state");
    let heads_before = engine.doc_heads().expect("the document loads");
    let encoded = EncodedDelta(data.to_vec());
    match engine.apply_remote(std::slice::from_ref(&encoded)) {
        Ok(_) => {
            engine.state().expect("state after a merge");
            let twice = engine
                .apply_remote(std::slice::from_ref(&encoded))
                .expect("merging a delta again");
            assert_eq!(twice.new, 0, "a delta merged twice is new twice");
        }
        Err(_) => {
            assert_eq!(
                engine.state().expect("state"),
                before,
                "a refused merge wrote"
            );
            assert_eq!(
                engine.doc_heads().expect("the document loads"),
                heads_before,
                "a refused merge changed the doc"
            );
        }
    }
}

// ---- envelope_open ----

/// The envelope key the `envelope_open` target and its seeds use.
pub fn seal_key() -> EnvelopeKey {
    GenerationRoot::from_bytes([1; 32])
        .epoch_key(1, &tandem_transport::envelope::SnapshotId([2; 32]))
        .envelope_key()
}

/// The signing key of device `[n; 16]` in the sealing tests: the same key
/// its fuzz sessions log in with.
pub fn seal_signer(n: u8) -> OriginSigner {
    OriginSigner::new(&fuzz_key(n))
}

/// The body of one envelope holding `deltas`, consecutive operations of one
/// device (as its outbox holds them), sealed at `sealed_at_ms`.
pub fn body_of(deltas: &[EncodedDelta], sealed_at_ms: i64) -> BodyV1 {
    let decoded = deltas.iter().map(|encoded| {
        Delta::decode(&encoded.0, &account())
            .expect("a device's own delta")
            .0
    });
    BodyV1::from_deltas(decoded, sealed_at_ms).expect("consecutive operations of one device")
}

/// `body` sealed by device `[origin; 16]` at chain position 1 of epoch 1,
/// with the nonce drawn from `seed`.
pub fn seal_body(body: &BodyV1, origin: u8, seed: u64) -> Vec<u8> {
    seal::seal(
        &seal_key(),
        &account(),
        SealHeader {
            epoch: 1,
            origin: DeviceId([origin; 16]),
            chain_pos: 1,
            prev: ContentId([0; 32]),
        },
        body,
        &seal_signer(origin),
        &mut SeededEntropy::new(seed),
    )
    .expect("a device's own operations seal")
}

/// Opening an envelope, and the plaintext decoder on its own (the fuzzer
/// cannot forge a signature or a tag, so the bytes are also read as a
/// plaintext): never a panic; a plaintext that decodes encodes and decodes
/// back to the same body; an envelope that opens is exactly what sealing
/// its body again with its nonce gives (so opening accepted nothing that
/// sealing would not write).
pub fn envelope_open(data: &[u8]) {
    let account = account();
    if let Ok(body) = BodyV1::from_plaintext(data) {
        let _ = body.check(DeviceId([1; 16]));
        if let Ok(plaintext) = body.to_plaintext() {
            let again = BodyV1::from_plaintext(&plaintext).expect("a written plaintext reads");
            assert_eq!(again, body, "plaintext round trip");
        }
    }
    let origin_key = fuzz_key(1).public_key();
    let Ok(opened) = seal::open(data, &account, &seal_key(), &origin_key) else {
        return;
    };
    let header = opened.header;
    let again = seal::seal(
        &seal_key(),
        &account,
        SealHeader {
            epoch: header.epoch,
            origin: header.origin,
            chain_pos: header.chain_pos,
            prev: header.prev,
        },
        &opened.body,
        &seal_signer(1),
        &mut SeededEntropy::starting_with(&header.nonce, 0),
    )
    .expect("an opened body seals again");
    assert_eq!(
        again, data,
        "sealing an opened body again gives other bytes"
    );
}

// ---- merge ----

/// The most steps one merge input runs.
pub const MERGE_STEPS_MAX: usize = 64;

/// Three devices perform arbitrary operations and exchange arbitrary
/// subsets of their deltas in arbitrary order, with duplicates. Once every
/// device has everything they must hold the same document and projections,
/// and each must have journaled every operation made elsewhere, once.
pub fn merge(data: &[u8]) {
    let mut ch = Bytes::new(data);
    let mut devices: Vec<Engine> = (1..=3).map(memory_engine).collect();
    let mut clocks = [1_000i64; 3];
    let mut gen = Gen::new(1_000);
    // Per device: content id -> (device, time) of each operation it made.
    let mut made: Vec<BTreeMap<ContentId, OpKey>> = vec![BTreeMap::new(); 3];
    for _ in 0..MERGE_STEPS_MAX {
        if ch.is_empty() {
            break;
        }
        let from = ch.index(3);
        match ch.below(4) {
            0 | 1 => {
                clocks[from] += ch.range(1, 2_000);
                let op = gen.op(&mut ch);
                match devices[from].perform(clocks[from], op.clone()) {
                    Ok(performed) => {
                        // An operation that changed nothing is not recorded:
                        // no device hears of it.
                        if let Some(content_id) = performed.content_id() {
                            made[from].insert(content_id, ([from as u8 + 1; 16], clocks[from]));
                        }
                        gen.performed(&op, performed.message_id.as_ref());
                    }
                    Err(
                        OpError::Refused(_)
                        | OpError::UnknownMessage(_)
                        | OpError::WrongConversation { .. },
                    ) => {}
                    Err(e) => panic!("{op:?} failed: {e}"),
                }
            }
            2 => {
                let to = (from + 1 + ch.index(2)) % 3;
                let mut batch: Vec<EncodedDelta> = export_all(&devices[from])
                    .into_iter()
                    .filter(|_| ch.chance(500))
                    .collect();
                if !batch.is_empty() && ch.chance(300) {
                    let copy = batch[ch.index(batch.len())].clone();
                    batch.push(copy);
                }
                ch.shuffle(&mut batch);
                devices[to]
                    .apply_remote(&batch)
                    .expect("valid deltas in any order merge");
            }
            _ => {
                let to = (from + 1 + ch.index(2)) % 3;
                let batch = export_all(&devices[from]);
                devices[to]
                    .apply_remote(&batch)
                    .expect("valid deltas merge");
            }
        }
    }
    exchange_all(&mut devices);
    assert_converged(&devices);
    for (d, device) in devices.iter().enumerate() {
        let held: BTreeSet<ContentId> = export_all(device)
            .iter()
            .map(EncodedDelta::content_id)
            .collect();
        for (e, ids) in made.iter().enumerate() {
            assert!(
                ids.keys().all(|id| held.contains(id)),
                "device {d} lacks deltas of device {e}"
            );
        }
        let events = op_events(device);
        let mut counted = BTreeMap::new();
        for key in &events {
            *counted.entry(*key).or_insert(0) += 1;
        }
        assert!(
            counted.values().all(|n| *n == 1),
            "device {d} journaled an operation twice"
        );
        let expected: BTreeSet<OpKey> = made
            .iter()
            .enumerate()
            .filter(|(e, _)| *e != d)
            .flat_map(|(_, ops)| ops.values().copied())
            .collect();
        let got: BTreeSet<OpKey> = counted.into_keys().collect();
        assert_eq!(
            got, expected,
            "device {d} must have one event per operation made elsewhere"
        );
    }
}

/// What names an operation in an event: its device and its time there.
/// Harnesses give each device strictly increasing operation times, so the
/// pair is unique.
pub type OpKey = ([u8; 16], i64);

/// The keys of a device's journaled events for operations of other
/// devices (not payloads or connection events), in journal order.
pub fn op_events(engine: &Engine) -> Vec<OpKey> {
    engine
        .events_after(0, usize::MAX >> 1)
        .expect("events")
        .into_iter()
        .filter(|event| {
            !matches!(
                event.kind,
                EventKind::Connection(_) | EventKind::Message(MessageEvent::PayloadReceived { .. })
            )
        })
        .map(|event| (event.source_device.0, event.made_at_ms))
        .collect()
}

/// Gives every device every delta every other device holds.
pub fn exchange_all(devices: &mut [Engine]) {
    for _ in 0..2 {
        for from in 0..devices.len() {
            let batch = export_all(&devices[from]);
            for (to, device) in devices.iter_mut().enumerate() {
                if to != from {
                    device.apply_remote(&batch).expect("valid deltas merge");
                }
            }
        }
    }
}

/// Every device holds the same document and the same projections.
pub fn assert_converged(devices: &[Engine]) {
    let heads = devices[0].doc_heads().expect("the document loads");
    let state = devices[0].state().expect("state");
    for (i, other) in devices.iter().enumerate().skip(1) {
        assert_eq!(
            heads,
            other.doc_heads().expect("the document loads"),
            "document heads of device {i}"
        );
        assert_eq!(state, other.state().expect("state"), "state of device {i}");
    }
}

// ---- relay_session ----

/// The most steps one relay input runs.
pub const RELAY_STEPS_MAX: usize = 128;
const RELAY_CONNS: usize = 3;
const RELAY_START_MS: u64 = 1_750_000_000_000;
/// The relay's secret in this target.
const RELAY_SECRET: [u8; 32] = [7; 32];

/// Device `n`'s signing key (99 is a thief's).
fn fuzz_key(n: u8) -> DeviceKey {
    DeviceKey::from_seed(&[n; 32])
}

struct Conn {
    id: ConnId,
    server: ServerSession,
    /// A device session fed everything the relay sends this connection:
    /// a frame it refuses is a relay bug.
    mirror: ClientSession,
    /// The Hello this connection sent last, and the challenge it got: what
    /// a proof signs.
    hello: Option<Hello>,
    nonce: Option<ChallengeNonce>,
    /// An operator's connection: the device mirror does not apply.
    admin: bool,
}

impl Conn {
    fn new(id: ConnId) -> Conn {
        Conn {
            id,
            server: ServerSession::new(),
            mirror: ClientSession::new(client_config(1, None), 0).expect("a valid config"),
            hello: None,
            nonce: None,
            admin: false,
        }
    }

    fn receive(&mut self, frame: &Frame, now_ms: u64) {
        let bytes = codec::encode(frame)
            .unwrap_or_else(|e| panic!("the relay built a frame it cannot send: {e}"));
        if let Frame::Challenge { nonce } = frame {
            self.nonce = Some(*nonce);
        }
        if self.admin {
            return;
        }
        self.mirror.handle_bytes(&bytes, now_ms);
        while self.mirror.poll_transmit().is_some() {}
        while let Some(event) = self.mirror.poll_event() {
            if let SessionEvent::Closed(CloseReason::ProtocolViolation { reason }) = event {
                panic!(
                    "the relay sent {} that a device refuses: {reason}",
                    frame.kind()
                );
            }
        }
    }
}

/// What the target remembers across steps: the tokens it has issued (so
/// that some are presented twice) and whether the account was removed.
struct RelayWorld {
    secret: Secret,
    tokens: Vec<String>,
    removed: bool,
}

/// The relay's core behind its server sessions, fed arbitrary bytes and
/// arbitrary (mostly well-formed) frames on three connections: logins with
/// good, used, expiring, forged and retired tokens, proofs over the right
/// and the wrong challenge and key, management and operator connections,
/// kicks, logouts, pushes, pulls, payloads. Nothing may panic, every frame
/// the relay sends must be one a device accepts, and at the end the log
/// must hold every acknowledged delta, once, in order.
pub fn relay_session(data: &[u8]) {
    let mut ch = Bytes::new(data);
    let secret = Secret::from_bytes(RELAY_SECRET);
    let mut now_ms = RELAY_START_MS;
    let policy = match ch.below(3) {
        0 => OverflowPolicy::RefuseNew,
        1 => OverflowPolicy::KickLongestIdle,
        _ => OverflowPolicy::ReplaceSamePlatform,
    };
    let config = CoreConfig {
        secret: secret.clone(),
        devices_online_max: 2,
        devices_online_per_platform_max: ch.chance(500).then_some(1),
        overflow_policy: policy,
        offline_push_policy: if ch.chance(500) {
            tandem_relay::OfflinePushPolicy::WhenAllOthersOffline
        } else {
            tandem_relay::OfflinePushPolicy::EachOfflineDevice
        },
        payloads_pending_max: 3,
        enrollment_ttl_ms: 1 + ch.below(20_000),
        enrollment_renew_interval_ms: ch.below(5_000),
    };
    let mut core = RelayCore::new(
        Box::new(MemoryRelayStore::new()),
        config,
        Box::new(LogOfflinePush),
        Box::new(SeededEntropy::new(ch.below(1 << 16))),
    );
    let mut world = RelayWorld {
        secret,
        tokens: Vec::new(),
        removed: false,
    };
    let mut next_id: ConnId = 1;
    let mut conns: Vec<Conn> = (0..RELAY_CONNS)
        .map(|_| {
            next_id += 1;
            Conn::new(next_id - 1)
        })
        .collect();
    let mut acked: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
    for _ in 0..RELAY_STEPS_MAX {
        if ch.is_empty() {
            break;
        }
        let c = ch.index(RELAY_CONNS);
        now_ms += ch.below(2_000);
        match ch.below(8) {
            0 => {
                let len = ch.below(48) as usize;
                let bytes: Vec<u8> = (0..len).map(|_| ch.below(256) as u8).collect();
                conns[c].server.handle_bytes(&bytes);
            }
            1 => {
                core.disconnected(conns[c].id, now_ms);
                conns[c] = Conn::new(next_id);
                next_id += 1;
            }
            _ => {
                let frame = client_frame(&mut ch, &mut world, &mut conns[c], now_ms);
                let Ok(bytes) = codec::encode(&frame) else {
                    continue;
                };
                let split = ch.index(bytes.len() + 1);
                conns[c].server.handle_bytes(&bytes[..split]);
                drive(
                    &mut core,
                    &mut conns,
                    c,
                    now_ms,
                    &mut next_id,
                    &mut acked,
                    &mut world,
                );
                conns[c].server.handle_bytes(&bytes[split..]);
            }
        }
        drive(
            &mut core,
            &mut conns,
            c,
            now_ms,
            &mut next_id,
            &mut acked,
            &mut world,
        );
    }
    // Read the whole log back as a fresh device, after lifting any ban.
    for conn in &conns {
        core.disconnected(conn.id, now_ms);
    }
    let operator = next_id;
    core.handle(operator, Request::AdminHello, now_ms);
    let outcome = core.handle(operator, Request::AdminHello, now_ms);
    let Some(Frame::Challenge { nonce }) = outcome.replies.first() else {
        panic!("expected a challenge, got {outcome:?}");
    };
    let mac = tandem_relay::admin::admin_proof(&world.secret, nonce);
    let outcome = core.handle(operator, Request::AdminProof { mac }, now_ms);
    assert_eq!(outcome.accepted, Some(Role::Admin), "{outcome:?}");
    core.handle(
        operator,
        Request::Admin(AdminRequest::Unban { account: account() }),
        now_ms,
    );
    let reader = next_id + 1;
    let hello = Hello {
        version: PROTOCOL_VERSION,
        account: account(),
        device: DeviceId([200; 16]),
        device_name: "reader".into(),
        platform: Platform::Linux,
        login_token: Some(issue(
            &world.secret,
            Purpose::Login,
            now_ms / 1000 + 86_400,
            [200; 16],
        )),
        resume_cursor: 0,
    };
    let outcome = core.handle(reader, Request::Hello(hello.clone()), now_ms);
    let Some(Frame::Challenge { nonce }) = outcome.replies.first() else {
        panic!("expected a challenge, got {outcome:?}");
    };
    let key = fuzz_key(200);
    let proof = Request::Proof {
        public_key: key.public_key(),
        signature: key.prove(&hello, nonce),
    };
    let outcome = core.handle(reader, proof, now_ms);
    if world.removed {
        // The account was removed: its log with it, for good.
        assert!(
            matches!(outcome.replies.first(), Some(Frame::Refused(r)) if r.code == ErrorCode::AccountRemoved),
            "{outcome:?}"
        );
        return;
    }
    assert_eq!(
        outcome.accepted,
        Some(Role::Device),
        "the reader logs in: {outcome:?}"
    );
    let head_seq = match &outcome.replies[0] {
        Frame::Welcome(welcome) => welcome.head_seq,
        other => panic!("expected Welcome, got {other:?}"),
    };
    let mut log = Vec::new();
    loop {
        let after_seq = log.len() as u64;
        let request = Request::Pull {
            after_seq,
            count_max: 7,
        };
        let outcome = core.handle(reader, request, now_ms);
        let Some(Frame::Deltas { deltas, more }) = outcome.replies.first() else {
            panic!("expected Deltas, got {outcome:?}");
        };
        for (i, delta) in deltas.iter().enumerate() {
            assert_eq!(delta.seq, after_seq + 1 + i as u64, "the log has a gap");
            assert_eq!(
                tandem_transport::ContentId::of(&delta.bytes),
                delta.content_id,
                "a stored delta's bytes changed"
            );
            log.push(delta.content_id.0);
        }
        if !more {
            break;
        }
        assert!(!deltas.is_empty(), "an empty page that says more");
    }
    assert_eq!(log.len() as u64, head_seq, "the head is the log's length");
    let distinct: BTreeSet<_> = log.iter().collect();
    assert_eq!(
        distinct.len(),
        log.len(),
        "a content id is in the log twice"
    );
    for (seq, content_id) in &acked {
        assert_eq!(
            log.get(*seq as usize - 1),
            Some(content_id),
            "acknowledged delta at {seq} is not in the log"
        );
    }
}

/// Feeds connection `c`'s pending requests to the core and carries out
/// what it decides, as the relay's server shell does.
fn drive(
    core: &mut RelayCore,
    conns: &mut [Conn],
    c: usize,
    now_ms: u64,
    next_id: &mut ConnId,
    acked: &mut BTreeMap<u64, [u8; 32]>,
    world: &mut RelayWorld,
) {
    loop {
        let request = match conns[c].server.poll_request() {
            None => return,
            Some(Ok(request)) => request,
            Some(Err(error)) => {
                conns[c].receive(&error.frame(), now_ms);
                close(core, conns, c, now_ms, next_id);
                return;
            }
        };
        match &request {
            Request::AdminHello => conns[c].admin = true,
            Request::Hello(hello) => conns[c].hello = Some(hello.clone()),
            _ => {}
        }
        let removal = matches!(request, Request::Admin(AdminRequest::Remove { .. }));
        let id = conns[c].id;
        let outcome = core.handle(id, request, now_ms);
        if let Some(role) = outcome.accepted {
            conns[c].server.accept_login(role);
        }
        for frame in &outcome.replies {
            match frame {
                Frame::PushAck { entries } => {
                    for entry in entries {
                        if let Some(earlier) = acked.insert(entry.seq, entry.content_id.0) {
                            assert_eq!(
                                earlier, entry.content_id.0,
                                "two deltas acknowledged at seq {}",
                                entry.seq
                            );
                        }
                    }
                }
                Frame::AdminReply(AdminReply::Done { .. }) if removal => {
                    // Everything of the account is gone, acknowledged or
                    // not: that is what removal means.
                    world.removed = true;
                    acked.clear();
                }
                _ => {}
            }
            conns[c].receive(frame, now_ms);
        }
        for (target, notice) in outcome.notices {
            let t = conns
                .iter()
                .position(|conn| conn.id == target)
                .unwrap_or_else(|| panic!("a notice for connection {target}, which is closed"));
            let frame = match notice {
                Notice::Live(delta) => Frame::Live(delta),
                Notice::Payload { from, id, bytes } => Frame::DeliverPayload { from, id, bytes },
                Notice::DeviceListChanged => Frame::DeviceListChanged,
                Notice::Kicked { reason } => {
                    conns[t].receive(&Frame::Kicked { reason }, now_ms);
                    close(core, conns, t, now_ms, next_id);
                    continue;
                }
                Notice::Superseded => {
                    close(core, conns, t, now_ms, next_id);
                    continue;
                }
                other => panic!("a notice this harness does not know: {other:?}"),
            };
            conns[t].receive(&frame, now_ms);
        }
        if outcome.close {
            close(core, conns, c, now_ms, next_id);
            return;
        }
    }
}

fn close(core: &mut RelayCore, conns: &mut [Conn], c: usize, now_ms: u64, next_id: &mut ConnId) {
    core.disconnected(conns[c].id, now_ms);
    conns[c] = Conn::new(*next_id);
    *next_id += 1;
}

/// Delta contents the relay session target pushes: few, so pushes repeat.
const DELTA_BODIES: [&[u8]; 4] = [b"one", b"two", b"three", b""];

fn issue(secret: &Secret, purpose: Purpose, expires_at_unix_s: u64, id: [u8; 16]) -> String {
    token::issue_login(secret, &account(), purpose, expires_at_unix_s, id)
}

/// A login token as a device might present one: fresh, used before,
/// about to expire, for management, forged, another account's, retired.
fn fuzz_token(b: &mut dyn FnMut(u64) -> u64, world: &mut RelayWorld, now_ms: u64) -> String {
    let now_s = now_ms / 1000;
    let id = [b(6) as u8; 16];
    match b(10) {
        0 if !world.tokens.is_empty() => {
            let i = b(world.tokens.len() as u64) as usize;
            world.tokens[i].clone()
        }
        // Expires within seconds: time moves on between steps.
        1 => issue(&world.secret, Purpose::Login, now_s + b(3), id),
        2 => issue(&world.secret, Purpose::Manage, now_s + 600, id),
        3 => issue(
            &Secret::from_bytes([8; 32]),
            Purpose::Login,
            now_s + 600,
            id,
        ),
        4 => token::issue_login(
            &world.secret,
            &AccountId::new("mallory").expect("valid"),
            Purpose::Login,
            now_s + 600,
            id,
        ),
        5 => format!("t1.{}.{}", now_s + 600, "ab".repeat(32)),
        6 => "lt2.garbage".into(),
        _ => {
            let token = issue(&world.secret, Purpose::Login, now_s + 600, id);
            world.tokens.push(token.clone());
            token
        }
    }
}

/// A frame a device (or an operator) might send, mostly well-formed,
/// sometimes not.
fn client_frame(
    ch: &mut impl Choices,
    world: &mut RelayWorld,
    conn: &mut Conn,
    now_ms: u64,
) -> Frame {
    let device = |b: &mut dyn FnMut(u64) -> u64| DeviceId([1 + b(4) as u8; 16]);
    let mut b = |n: u64| ch.below(n);
    match b(20) {
        0 | 1 => {
            let n = 1 + b(4) as u8;
            Frame::Hello(Hello {
                version: if b(10) == 0 {
                    ProtocolVersion { major: 1, minor: 0 }
                } else {
                    PROTOCOL_VERSION
                },
                account: if b(10) == 0 {
                    AccountId::new("mallory").expect("valid")
                } else {
                    account()
                },
                device: DeviceId([n; 16]),
                device_name: "fuzz".into(),
                platform: if b(2) == 0 {
                    Platform::Ios
                } else {
                    Platform::Web
                },
                login_token: (b(3) > 0).then(|| fuzz_token(&mut b, world, now_ms)),
                resume_cursor: b(8),
            })
        }
        2..=4 => match (&conn.hello, &conn.nonce) {
            (Some(hello), Some(nonce)) => {
                // Mostly the device's own key over this challenge; now and
                // then a thief's key, or another challenge.
                let key = if b(8) == 0 {
                    fuzz_key(99)
                } else {
                    fuzz_key(hello.device.0[0])
                };
                let nonce = if b(8) == 0 {
                    ChallengeNonce([b(256) as u8; 32])
                } else {
                    *nonce
                };
                Frame::Proof {
                    public_key: key.public_key(),
                    signature: key.prove(hello, &nonce),
                }
            }
            _ => Frame::Proof {
                public_key: fuzz_key(1).public_key(),
                signature: tandem_transport::auth::ProofSignature([b(256) as u8; 64]),
            },
        },
        5 | 6 => {
            let count = b(4) as usize;
            let deltas = (0..count)
                .map(|_| {
                    let body = DELTA_BODIES[b(DELTA_BODIES.len() as u64) as usize];
                    tandem_transport::WireDelta::new(body.to_vec())
                })
                .collect();
            Frame::Push { deltas }
        }
        7 => Frame::Pull {
            after_seq: b(10),
            count_max: b(5) as u32,
        },
        8 => Frame::Ack { cursor: b(20) },
        9 => Frame::ListDevices,
        10 => Frame::Kick {
            device: device(&mut b),
        },
        11 => match b(3) {
            0 => Frame::KickAllOthers,
            1 => Frame::KickAll,
            _ => Frame::Logout,
        },
        12 => Frame::SendToDevice {
            to: device(&mut b),
            id: PayloadId([b(4) as u8; 16]),
            bytes: vec![b(256) as u8; b(8) as usize],
        },
        13 => Frame::PayloadAck {
            id: PayloadId([b(4) as u8; 16]),
        },
        14 => Frame::Ping { nonce: b(100) },
        15 => Frame::AdminHello {
            version: PROTOCOL_VERSION,
        },
        16 => Frame::AdminProof {
            mac: match (&conn.nonce, b(4)) {
                (Some(nonce), 1..) => tandem_relay::admin::admin_proof(&world.secret, nonce),
                _ => [b(256) as u8; 32],
            },
        },
        17 => Frame::Admin(match b(7) {
            0 => AdminRequest::Devices { account: account() },
            1 => AdminRequest::Kick {
                account: account(),
                device: device(&mut b),
            },
            2 => AdminRequest::RevokeAll { account: account() },
            3 => AdminRequest::Ban { account: account() },
            4 => AdminRequest::Unban { account: account() },
            // Rare: it ends the account.
            5 if b(8) == 0 => AdminRequest::Remove { account: account() },
            _ => AdminRequest::Devices {
                account: AccountId::new("mallory").expect("valid"),
            },
        }),
        18 => Frame::Pong { nonce: b(100) },
        _ => match b(3) {
            0 => Frame::error(ErrorCode::Malformed, "bye"),
            1 => Frame::PullNeeded,
            _ => Frame::Ack { cursor: u64::MAX },
        },
    }
}

// ---- Seed corpora ----

/// The seed corpus of a target: small inputs that reach deep quickly.
/// `tests/fuzz_replay.rs` writes them to `fuzz/corpus/<target>/seed-*`
/// when run with `TANDEM_WRITE_SEEDS=1`, and replays them always.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "frame_decode" => frame_seeds(),
        "delta_decode" => delta_seeds(),
        "envelope_open" => envelope_seeds(),
        _ => {
            // Structured targets read choices from the bytes: random bytes
            // of a few lengths are good seeds.
            let mut rng = crate::choice::Rng::new(target.len() as u64);
            [8usize, 32, 64, 128, 256, 512, 1024, 2048]
                .iter()
                .map(|&len| (0..len).map(|_| rng.next_u64() as u8).collect())
                .collect()
        }
    }
}

fn frame_seeds() -> Vec<Vec<u8>> {
    let mut world = RelayWorld {
        secret: Secret::from_bytes(RELAY_SECRET),
        tokens: Vec::new(),
        removed: false,
    };
    let token = issue(
        &world.secret,
        Purpose::Login,
        RELAY_START_MS / 1000 + 86_400,
        [1; 16],
    );
    let mut rng = crate::choice::Rng::new(1);
    let mut out = Vec::new();
    let mut stream = Vec::new();
    let mut conn = Conn::new(1);
    conn.nonce = Some(ChallengeNonce([3; 32]));
    for _ in 0..40 {
        let frame = client_frame(&mut rng, &mut world, &mut conn, RELAY_START_MS);
        if let Frame::Hello(hello) = &frame {
            conn.hello = Some(hello.clone());
        }
        if let Ok(bytes) = codec::encode(&frame) {
            stream.extend_from_slice(&bytes);
            out.push(bytes);
        }
    }
    let welcome = Frame::Welcome(tandem_transport::Welcome {
        version: PROTOCOL_VERSION,
        device: tandem_transport::DeviceInfo {
            id: DeviceId([1; 16]),
            name: "phone".into(),
            platform: Platform::Ios,
            first_login_ms: 1,
            last_seen_ms: 2,
            online: true,
            enrollment: tandem_transport::EnrollmentState::Active { expires_at_ms: 9 },
        },
        devices: Vec::new(),
        head_seq: 3,
        enrollment: tandem_transport::Enrollment {
            token_id: [1; 16],
            enrolled_at_ms: 1,
            expires_at_ms: 9,
        },
    });
    let delta = tandem_transport::LogDelta {
        seq: 1,
        origin: DeviceId([2; 16]),
        content_id: tandem_transport::ContentId::of(b"one"),
        bytes: b"one".to_vec(),
    };
    // Log positions at the bound, just above it (2^63) and at u64::MAX,
    // in every field a peer sends one in.
    let max = tandem_transport::limits::RELAY_SEQ_MAX;
    let mut edges = Vec::new();
    for seq in [max, max + 1, u64::MAX] {
        let Frame::Welcome(mut high_head) = welcome.clone() else {
            unreachable!("built as a Welcome above")
        };
        high_head.head_seq = seq;
        let at = tandem_transport::LogDelta {
            seq,
            ..delta.clone()
        };
        edges.extend([
            Frame::Welcome(high_head),
            Frame::Live(at.clone()),
            Frame::Deltas {
                deltas: vec![at],
                more: true,
            },
            Frame::PushAck {
                entries: vec![tandem_transport::PushAckEntry {
                    content_id: delta.content_id,
                    seq,
                }],
            },
            Frame::Hello(Hello {
                version: PROTOCOL_VERSION,
                account: account(),
                device: DeviceId([1; 16]),
                device_name: "phone".into(),
                platform: Platform::Ios,
                login_token: Some(token.clone()),
                resume_cursor: seq,
            }),
            Frame::Pull {
                after_seq: seq,
                count_max: 8,
            },
            Frame::Ack { cursor: seq },
        ]);
    }
    let refused = Frame::Refused(tandem_transport::Refusal {
        code: ErrorCode::CredentialsRevoked,
        text: "kicked".into(),
        reason: Some(tandem_transport::OfflineReason::KickedByDevice {
            by: tandem_transport::DeviceRef {
                id: DeviceId([2; 16]),
                name: "laptop".into(),
                platform: Platform::Macos,
            },
        }),
        devices: Vec::new(),
    });
    for frame in [
        Frame::Challenge {
            nonce: ChallengeNonce([3; 32]),
        },
        welcome,
        refused,
        Frame::Kicked {
            reason: tandem_transport::OfflineReason::LoggedOut,
        },
        Frame::CredentialsRenewed { expires_at_ms: 99 },
        Frame::Deltas {
            deltas: vec![delta.clone()],
            more: false,
        },
        Frame::Live(delta),
        Frame::PullNeeded,
    ]
    .into_iter()
    .chain(edges)
    {
        let bytes = codec::encode(&frame).expect("encodes");
        stream.extend_from_slice(&bytes);
        out.push(bytes);
    }
    out.push(stream);
    out
}

/// Device 1 after every kind of operation, twice.
fn every_kind_engine() -> Engine {
    let mut engine = memory_engine(1);
    let mut gen = Gen::new(1_000);
    let mut rng = crate::choice::Rng::new(2);
    // Every kind of operation, twice, on one device: most succeed because
    // the kinds that create what others need come early enough.
    for round in 0..2 {
        for kind in 0..crate::every_op::KINDS.len() {
            let op = crate::gen::op_of_kind(&mut rng, kind, &gen.known, gen.time_base_ms);
            let now_ms = 2_000 + (round * 100 + kind) as i64;
            if let Ok(performed) = engine.perform(now_ms, op.clone()) {
                gen.performed(&op, performed.message_id.as_ref());
            }
        }
    }
    engine
}

fn delta_seeds() -> Vec<Vec<u8>> {
    let engine = every_kind_engine();
    // Every other one keeps the corpus small and still covers every kind.
    let deltas = export_all(&engine);
    let mut out: Vec<Vec<u8>> = deltas.iter().step_by(2).map(|d| d.0.clone()).collect();
    // Operation numbers at the bound, just above it (2^63) and at u64::MAX.
    let (template, _) = Delta::decode(&deltas[0].0, &account()).expect("its own delta decodes");
    for origin_seq in [
        tandem_engine::limits::ORIGIN_SEQ_MAX,
        tandem_engine::limits::ORIGIN_SEQ_MAX + 1,
        u64::MAX,
    ] {
        out.push(
            Delta {
                origin_seq,
                ..template.clone()
            }
            .encode()
            .0,
        );
    }
    out
}

/// Sealed envelopes of device 1's operations: one op, a few, every kind in
/// one deflated envelope, a checkpoint; then the plaintexts of two of them
/// for the plaintext decoder.
fn envelope_seeds() -> Vec<Vec<u8>> {
    let deltas = export_all(&every_kind_engine());
    let bodies = [
        body_of(&deltas[..1], 5_000),
        body_of(&deltas[1..4], i64::MAX),
        body_of(&deltas, -1),
        body_of(&[], 0),
    ];
    let mut out: Vec<Vec<u8>> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| seal_body(body, 1, i as u64))
        .collect();
    for body in &bodies[1..3] {
        out.push(body.to_plaintext().expect("a plaintext"));
    }
    out
}
