//! Sealing and opening: every refusal typed, every limit below, at and
//! above, the associated data and the signature each binding what they
//! claim to.

use std::collections::HashSet;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, ReadDoc, ROOT};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::Signer;
use tandem_transport::envelope::{SnapshotId, ENVELOPE_CIPHERTEXT_BYTES_MIN};
use tandem_transport::{OsEntropy, SeededEntropy};

use super::body::{deflate, inflate_into};
use super::*;
use crate::delta::{Delta, DeltaError, ReadMarker, DELTA_FORMAT};
use crate::limits::{
    ENVELOPE_BYTES_MAX, ENVELOPE_PAD_BYTES, ENVELOPE_PLAINTEXT_BYTES_MAX, OPS_PER_ENVELOPE_MAX,
    ORIGIN_SEQ_MAX, READ_MARKERS_PER_DELTA_MAX,
};
use crate::model::{ConversationId, MessageId};
use crate::op::{InvalidOp, MessageOp, Op};

const ORIGIN: DeviceId = DeviceId([4; 16]);

fn account() -> AccountId {
    AccountId::new("alice").expect("valid")
}

fn other_account() -> AccountId {
    AccountId::new("alicf").expect("valid")
}

fn key() -> EnvelopeKey {
    GenerationRoot::from_bytes([1; 32])
        .epoch_key(1, &SnapshotId([2; 32]))
        .envelope_key()
}

fn device_key() -> DeviceKey {
    DeviceKey::from_seed(&[3; 32])
}

fn signer() -> OriginSigner {
    OriginSigner::new(&device_key())
}

fn public() -> DevicePublicKey {
    device_key().public_key()
}

fn header() -> SealHeader {
    SealHeader {
        epoch: 1,
        origin: ORIGIN,
        chain_pos: 1,
        prev: ContentId([0; 32]),
    }
}

fn conversation() -> ConversationId {
    "u:bob".parse().expect("valid")
}

fn send(text: &str) -> OpEntry {
    OpEntry {
        made_at_ms: 1_000,
        op: Op::Message(MessageOp::Send {
            conversation: conversation(),
            body: text.to_owned(),
        }),
        read_markers: Vec::new(),
        change: None,
    }
}

fn body(ops: Vec<OpEntry>) -> BodyV1 {
    BodyV1 {
        sealed_at_ms: 2_000,
        first_origin_seq: if ops.is_empty() { 0 } else { 1 },
        ops,
        changes: Changes::Raw(Vec::new()),
        view: vec![ViewEntry {
            roster_index: 0,
            chain_pos: 3,
            head8: [5; 8],
        }],
    }
}

fn sends(n: usize) -> BodyV1 {
    body((0..n).map(|i| send(&format!("message {i}"))).collect())
}

/// An automerge change made by `actor`.
fn change_by(actor: [u8; 16], value: i64) -> Vec<u8> {
    let mut doc = Automerge::new().with_actor(ActorId::from(actor));
    let mut tx = doc.transaction();
    tx.put(ROOT, "k", value).expect("put");
    let (hash, _) = tx.commit_with(CommitOptions::default().with_time(0));
    doc.get_change_by_hash(&hash.expect("a change"))
        .expect("the change")
        .raw_bytes()
        .to_vec()
}

fn seal_ok(body: &BodyV1) -> Vec<u8> {
    seal(
        &key(),
        &account(),
        header(),
        body,
        &signer(),
        &mut SeededEntropy::new(1),
    )
    .expect("seals")
}

fn open_ok(bytes: &[u8]) -> Opened {
    open(bytes, &account(), &key(), &public()).expect("opens")
}

/// Seals any plaintext (bypassing the body's checks) with a valid nonce,
/// tag and signature: what a buggy or malicious but rostered origin could
/// send.
fn seal_raw(plaintext: &[u8], kind: EnvelopeKind, account: &AccountId) -> Vec<u8> {
    let clear = EnvelopeHeader {
        kind,
        epoch: 1,
        origin: ORIGIN,
        chain_pos: 1,
        prev: ContentId([0; 32]),
        nonce: [9; 24],
    };
    let mut buffer = plaintext.to_vec();
    let tag = XChaCha20Poly1305::new(key().bytes().into())
        .encrypt_in_place_detached(
            XNonce::from_slice(&clear.nonce),
            &envelope_aad(account, &clear),
            &mut buffer,
        )
        .expect("encrypts");
    buffer.extend_from_slice(&tag);
    let bytes = Envelope {
        header: clear,
        ciphertext: &buffer,
        signature: [0; 64],
    }
    .encode()
    .expect("encodes");
    resign(bytes, account)
}

/// Replaces the signature with the origin's over the bytes as they are.
fn resign(mut bytes: Vec<u8>, account: &AccountId) -> Vec<u8> {
    let unsigned = bytes.len() - 64;
    let signature = signer()
        .0
        .sign(&signature_message(account, &bytes[..unsigned]));
    bytes[unsigned..].copy_from_slice(&signature.to_bytes());
    bytes
}

/// A padded postcard plaintext of `body`, unchecked.
fn plaintext_of(body: &BodyV1) -> Vec<u8> {
    let mut plaintext = vec![0u8];
    plaintext.extend(postcard::to_stdvec(body).expect("encodes"));
    let padded = plaintext.len().div_ceil(64) * 64;
    plaintext.resize(padded, 0);
    plaintext
}

fn open_error(bytes: &[u8]) -> OpenError {
    open(bytes, &account(), &key(), &public()).expect_err("refused")
}

// ---- Round trips ----

#[test]
fn a_sealed_body_opens_to_itself() {
    for n in [0, 1, 2, 100, OPS_PER_ENVELOPE_MAX] {
        let body = sends(n);
        let bytes = seal_ok(&body);
        let opened = open_ok(&bytes);
        assert_eq!(opened.body, body, "{n} ops");
        assert_eq!(opened.header.origin, ORIGIN);
        assert_eq!(opened.header.kind, EnvelopeKind::Ops);
        assert!(opened.changes.is_empty());
    }
}

#[test]
fn large_bodies_are_deflated_small_ones_not() {
    let small = sends(1).to_plaintext().expect("encodes");
    assert_eq!(small[0], 0, "a small body is postcard as it is");
    let large = sends(100).to_plaintext().expect("encodes");
    assert_eq!(large[0], 1, "a body of 1 KiB or more is deflated");
    assert_eq!(large.len() % ENVELOPE_PAD_BYTES, 0);
    assert_eq!(BodyV1::from_plaintext(&large).expect("reads"), sends(100));
}

#[test]
fn changes_travel_and_are_decoded_in_order() {
    let mut b = sends(3);
    b.ops[0].change = Some(0);
    b.ops[2].change = Some(1);
    b.changes = Changes::Raw(vec![change_by(ORIGIN.0, 1), change_by(ORIGIN.0, 2)]);
    let opened = open_ok(&seal_ok(&b));
    assert_eq!(opened.changes.len(), 2);
    let Changes::Raw(raw) = &b.changes;
    assert_eq!(opened.changes[0].raw_bytes(), &raw[0][..]);
    assert_eq!(opened.changes[1].raw_bytes(), &raw[1][..]);
}

#[test]
fn opening_is_deterministic_and_a_resend_is_the_same_bytes() {
    let bytes = seal_ok(&sends(3));
    assert_eq!(open_ok(&bytes).body, open_ok(&bytes).body);
    // The same entropy gives the same envelope: sealing takes every random
    // byte from it.
    assert_eq!(seal_ok(&sends(3)), bytes);
    let other = seal(
        &key(),
        &account(),
        header(),
        &sends(3),
        &signer(),
        &mut SeededEntropy::new(2),
    )
    .expect("seals");
    assert_ne!(other, bytes, "another nonce, another envelope");
}

/// The bytes of one envelope sealed with a seeded entropy source: a change
/// to the key schedule, the AAD, the signature message, the body's layout
/// or its padding changes them.
#[test]
fn snapshot_of_one_sealed_envelope() {
    let mut b = sends(2);
    b.ops[1].read_markers.push(ReadMarker {
        conversation: conversation(),
        at_ms: 1_500,
        message: MessageId::new("m1").expect("valid"),
    });
    let bytes = seal(
        &key(),
        &account(),
        SealHeader {
            epoch: 7,
            origin: ORIGIN,
            chain_pos: 2,
            prev: ContentId([6; 32]),
        },
        &b,
        &signer(),
        &mut SeededEntropy::new(42),
    )
    .expect("seals");
    assert_eq!(bytes.len(), 286);
    assert_eq!(
        blake3::hash(&bytes).to_hex().as_str(),
        "45f5c01269c76b76b01a6a4c2aeda2b9b6491164b565d5dce40e9cce95da3e00",
        "the sealed envelope's bytes changed"
    );
}

// ---- Nonces ----

#[test]
fn nonces_never_repeat_across_100_000_seals() {
    let checkpoint = body(Vec::new());
    let mut seen = HashSet::new();
    let signer = signer();
    let key = key();
    let mut entropy = OsEntropy;
    for _ in 0..100_000 {
        let bytes = seal(
            &key,
            &account(),
            header(),
            &checkpoint,
            &signer,
            &mut entropy,
        )
        .expect("seals");
        let nonce = Envelope::decode(&bytes).expect("decodes").header.nonce;
        assert!(seen.insert(nonce), "a nonce repeated");
    }
}

#[test]
fn nonces_are_the_seeded_sequence() {
    let checkpoint = body(Vec::new());
    let mut entropy = SeededEntropy::new(77);
    let mut expected = SeededEntropy::new(77);
    for _ in 0..1_000 {
        let bytes = seal(
            &key(),
            &account(),
            header(),
            &checkpoint,
            &signer(),
            &mut entropy,
        )
        .expect("seals");
        let mut nonce = [0u8; 24];
        expected.fill(&mut nonce);
        assert_eq!(
            Envelope::decode(&bytes).expect("decodes").header.nonce,
            nonce
        );
    }
}

#[test]
fn a_refused_body_draws_no_nonce() {
    let mut entropy = SeededEntropy::new(5);
    let mut misnumbered = sends(1);
    misnumbered.first_origin_seq = 0;
    seal(
        &key(),
        &account(),
        header(),
        &misnumbered,
        &signer(),
        &mut entropy,
    )
    .expect_err("refused");
    let bad_header = SealHeader {
        chain_pos: 0,
        ..header()
    };
    let error = seal(
        &key(),
        &account(),
        bad_header,
        &sends(1),
        &signer(),
        &mut entropy,
    )
    .expect_err("refused");
    assert!(matches!(
        error,
        SealError::Envelope(EnvelopeError::ChainPosZero)
    ));
    let mut fresh = SeededEntropy::new(5);
    let (mut a, mut b) = ([0u8; 24], [0u8; 24]);
    entropy.fill(&mut a);
    fresh.fill(&mut b);
    assert_eq!(a, b, "nothing was drawn");
}

// ---- What the AAD and the signature bind ----

#[test]
fn another_account_is_refused() {
    let bytes = seal_ok(&sends(1));
    // The signature covers the account: refused before decrypting.
    assert!(matches!(
        open(&bytes, &other_account(), &key(), &public()),
        Err(OpenError::BadSignature)
    ));
    // Signed for the other account (the origin's own mistake, or a
    // signature check bypassed), the AEAD still refuses it: the account is
    // in the associated data.
    let resigned = resign(bytes, &other_account());
    assert!(matches!(
        open(&resigned, &other_account(), &key(), &public()),
        Err(OpenError::Aead)
    ));
}

#[test]
fn every_header_field_is_bound_by_the_aad() {
    let bytes = seal_ok(&sends(1));
    let envelope = Envelope::decode(&bytes).expect("decodes");
    let original = envelope.header;
    let mut changed = Vec::new();
    changed.push(EnvelopeHeader {
        epoch: 2,
        ..original
    });
    changed.push(EnvelopeHeader {
        origin: DeviceId([5; 16]),
        ..original
    });
    changed.push(EnvelopeHeader {
        chain_pos: 2,
        prev: ContentId([8; 32]),
        ..original
    });
    let mut nonce = original.nonce;
    nonce[23] ^= 1;
    changed.push(EnvelopeHeader { nonce, ..original });
    changed.push(EnvelopeHeader {
        kind: EnvelopeKind::Payload,
        ..original
    });
    for header in changed {
        let moved = Envelope { header, ..envelope }.encode().expect("encodes");
        // Unsigned again, the signature refuses it.
        let error = open_error(&moved);
        assert!(
            matches!(error, OpenError::BadSignature | OpenError::WrongKind(_)),
            "{header:?}: {error:?}"
        );
        // Signed again by the origin, the AEAD refuses it.
        let resigned = resign(moved, &account());
        let error = open_error(&resigned);
        match header.kind {
            EnvelopeKind::Payload => assert!(matches!(error, OpenError::WrongKind(_))),
            _ => assert!(matches!(error, OpenError::Aead), "{header:?}: {error:?}"),
        }
    }
}

#[test]
fn the_aad_is_the_domain_the_account_and_the_encoded_header() {
    let bytes = seal_ok(&sends(1));
    let envelope = Envelope::decode(&bytes).expect("decodes");
    let aad = envelope_aad(&account(), &envelope.header);
    let mut expected = b"tandem envelope aad v2\0".to_vec();
    expected.extend_from_slice(&5u64.to_be_bytes());
    expected.extend_from_slice(b"alice");
    // The header is exactly the envelope's bytes before the ciphertext's
    // length.
    let header_len = 1 + 1 + 1 + 16 + 1 + 32 + 24;
    expected.extend_from_slice(&bytes[..header_len]);
    assert_eq!(aad, expected);
    let message = signature_message(&account(), &bytes[..bytes.len() - 64]);
    assert!(message.starts_with(b"tandem envelope sig v2\0\0\0\0\0\0\0\0\x05alice"));
    assert!(message.ends_with(envelope.ciphertext));
}

#[test]
fn another_key_or_origin_key_is_refused() {
    let bytes = seal_ok(&sends(1));
    let wrong_key = GenerationRoot::from_bytes([1; 32])
        .epoch_key(1, &SnapshotId([3; 32]))
        .envelope_key();
    assert!(matches!(
        open(&bytes, &account(), &wrong_key, &public()),
        Err(OpenError::Aead)
    ));
    let stranger = DeviceKey::from_seed(&[8; 32]).public_key();
    assert!(matches!(
        open(&bytes, &account(), &key(), &stranger),
        Err(OpenError::BadSignature)
    ));
    // Not a point on the curve, and the identity (a weak key).
    let not_a_point = (2u8..=255)
        .map(|y| {
            let mut bytes = [0u8; 32];
            bytes[0] = y;
            bytes
        })
        .find(|bytes| ed25519_dalek::VerifyingKey::from_bytes(bytes).is_err())
        .expect("most y have no point");
    let mut identity = [0u8; 32];
    identity[0] = 1;
    for bad in [not_a_point, identity] {
        assert!(matches!(
            open(&bytes, &account(), &key(), &DevicePublicKey(bad)),
            Err(OpenError::BadOriginKey)
        ));
    }
}

#[test]
fn every_single_bit_flip_is_refused() {
    for b in [sends(1), sends(40)] {
        let bytes = seal_ok(&b);
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                open(&flipped, &account(), &key(), &public()).is_err(),
                "bit {bit} flipped was accepted"
            );
        }
    }
}

#[test]
fn trailing_and_truncated_bytes_are_refused() {
    let mut bytes = seal_ok(&sends(1));
    bytes.push(0);
    assert!(matches!(
        open_error(&bytes),
        OpenError::Envelope(EnvelopeError::TrailingBytes { bytes: 1 })
    ));
    bytes.truncate(bytes.len() - 2);
    assert!(matches!(
        open_error(&bytes),
        OpenError::Envelope(EnvelopeError::Truncated { .. })
    ));
}

#[test]
fn a_payload_envelope_is_not_an_ops_envelope() {
    let bytes = seal_raw(&plaintext_of(&sends(1)), EnvelopeKind::Payload, &account());
    assert!(matches!(
        open_error(&bytes),
        OpenError::WrongKind(EnvelopeKind::Payload)
    ));
}

// ---- Plaintext: padding, encoding, DEFLATE ----

#[test]
fn non_zero_padding_is_refused() {
    let mut plaintext = plaintext_of(&sends(1));
    let last = plaintext.len() - 1;
    plaintext[last] = 1;
    assert!(matches!(
        open_error(&seal_raw(&plaintext, EnvelopeKind::Ops, &account())),
        OpenError::Body(BodyError::NonZeroPadding)
    ));
    // The same in a deflated body.
    let large = sends(100).to_plaintext().expect("encodes");
    assert_eq!(large[0], 1);
    let mut bad = large.clone();
    let last = bad.len() - 1;
    bad[last] = 0x80;
    assert!(matches!(
        BodyV1::from_plaintext(&bad),
        Err(BodyError::NonZeroPadding)
    ));
}

#[test]
fn padding_longer_than_a_block_is_refused() {
    let mut plaintext = plaintext_of(&sends(1));
    BodyV1::from_plaintext(&plaintext).expect("one block of padding at most is fine");
    plaintext.extend_from_slice(&[0; ENVELOPE_PAD_BYTES]);
    assert!(matches!(
        open_error(&seal_raw(&plaintext, EnvelopeKind::Ops, &account())),
        OpenError::Body(BodyError::TrailingBytes { .. })
    ));
    let unpadded = &plaintext_of(&sends(1))[..63];
    assert!(matches!(
        BodyV1::from_plaintext(unpadded),
        Err(BodyError::Unpadded { len: 63 })
    ));
}

#[test]
fn an_unknown_encoding_is_refused() {
    let mut plaintext = plaintext_of(&sends(1));
    plaintext[0] = 2;
    assert!(matches!(
        open_error(&seal_raw(&plaintext, EnvelopeKind::Ops, &account())),
        OpenError::Body(BodyError::UnknownEncoding(2))
    ));
}

#[test]
fn a_corrupt_or_truncated_deflate_stream_is_refused() {
    let payload = postcard::to_stdvec(&sends(100)).expect("encodes");
    let mut stream = Vec::new();
    deflate(&payload, &mut stream).expect("deflates");
    let mut truncated = vec![1u8];
    truncated.extend_from_slice(&stream[..stream.len() / 2]);
    truncated.resize(truncated.len().div_ceil(64) * 64, 0);
    let error = BodyV1::from_plaintext(&truncated).expect_err("refused");
    assert!(
        matches!(
            error,
            BodyError::TruncatedDeflate | BodyError::Inflate(_) | BodyError::Malformed(_)
        ),
        "{error:?}"
    );
    let mut corrupt = vec![1u8, 0xff, 0xff, 0xff];
    corrupt.resize(64, 0);
    assert!(matches!(
        BodyV1::from_plaintext(&corrupt),
        Err(BodyError::Inflate(_))
    ));
}

#[test]
fn a_deflate_bomb_is_refused_while_inflating() {
    // 16 MiB of zeros deflate (level 1) to about 160 KiB.
    let zeros = vec![0u8; 16 * 1024 * 1024];
    let mut stream = Vec::new();
    deflate(&zeros, &mut stream).expect("deflates");
    drop(zeros);
    assert!(stream.len() < 512 * 1024, "{}", stream.len());
    let mut out = Vec::new();
    assert!(matches!(
        inflate_into(&stream, &mut out),
        Err(BodyError::PlaintextTooLarge)
    ));
    assert!(
        out.capacity() <= ENVELOPE_PLAINTEXT_BYTES_MAX + 1,
        "inflation held {} bytes",
        out.capacity()
    );
    // Sealed and signed by the origin, it is refused the same way.
    let mut plaintext = vec![1u8];
    plaintext.extend_from_slice(&stream);
    plaintext.resize(plaintext.len().div_ceil(64) * 64, 0);
    assert!(matches!(
        open_error(&seal_raw(&plaintext, EnvelopeKind::Ops, &account())),
        OpenError::Body(BodyError::PlaintextTooLarge)
    ));
}

/// A body whose postcard payload is exactly `len` bytes (at least a few
/// KiB): read markers in ops of at most the limit, and a last op whose
/// markers are tuned to the byte. Only the last op is re-encoded while
/// tuning: postcard's bytes are the concatenation of the fields', so the
/// rest keeps its size.
fn body_of_payload_len(len: usize) -> BodyV1 {
    let size = |value: &dyn Fn() -> Vec<u8>| value().len();
    let marker = |id_len: usize| ReadMarker {
        conversation: conversation(),
        at_ms: 1,
        message: MessageId::new("m".repeat(id_len)).expect("valid"),
    };
    let marker_bytes = postcard::to_stdvec(&marker(100)).expect("encodes").len();
    let mut b = sends(1);
    let bulk = len.saturating_sub(4096) / marker_bytes;
    for i in 0..bulk {
        if i > 0 && i % READ_MARKERS_PER_DELTA_MAX == 0 {
            b.ops.push(send("more"));
        }
        b.ops
            .last_mut()
            .expect("an op")
            .read_markers
            .push(marker(100));
    }
    b.ops.push(send("last"));
    let encoded = |x: &OpEntry| postcard::to_stdvec(x).expect("encodes");
    let prefix = size(&|| postcard::to_stdvec(&b).expect("encodes"))
        - encoded(b.ops.last().expect("an op")).len();
    let mut last = b.ops.pop().expect("an op");
    while prefix + encoded(&last).len() + 2 * marker_bytes < len {
        last.read_markers.push(marker(100));
    }
    for extra in 1..=3usize {
        for id_len in 1..=120 {
            let mut candidate = last.clone();
            for _ in 0..extra {
                candidate.read_markers.push(marker(id_len));
            }
            if prefix + encoded(&candidate).len() == len {
                b.ops.push(candidate);
                assert_eq!(postcard::to_stdvec(&b).expect("encodes").len(), len);
                return b;
            }
        }
    }
    panic!("no body of payload {len} bytes");
}

#[test]
fn plaintext_bytes_below_at_and_above_the_limit() {
    for len in [
        ENVELOPE_PLAINTEXT_BYTES_MAX - 1,
        ENVELOPE_PLAINTEXT_BYTES_MAX,
    ] {
        let b = body_of_payload_len(len);
        let bytes = seal_ok(&b);
        assert_eq!(open_ok(&bytes).body, b, "{len}");
    }
    let above = body_of_payload_len(ENVELOPE_PLAINTEXT_BYTES_MAX + 1);
    assert!(matches!(
        seal(
            &key(),
            &account(),
            header(),
            &above,
            &signer(),
            &mut SeededEntropy::new(1)
        ),
        Err(SealError::Body(BodyError::PlaintextTooLarge))
    ));
    // Sealed anyway by a faulty origin: refused while inflating.
    let payload = postcard::to_stdvec(&above).expect("encodes");
    let mut plaintext = vec![1u8];
    deflate(&payload, &mut plaintext).expect("deflates");
    plaintext.resize(plaintext.len().div_ceil(64) * 64, 0);
    assert!(matches!(
        open_error(&seal_raw(&plaintext, EnvelopeKind::Ops, &account())),
        OpenError::Body(BodyError::PlaintextTooLarge)
    ));
}

/// Read markers whose message ids are random letters: DEFLATE saves only
/// a little on them.
fn incompressible(markers: usize, seed: u64) -> BodyV1 {
    let mut entropy = SeededEntropy::new(seed);
    let mut b = sends(1);
    for i in 0..markers {
        if i > 0 && i % READ_MARKERS_PER_DELTA_MAX == 0 {
            b.ops.push(send("more"));
        }
        let mut raw = [0u8; 120];
        entropy.fill(&mut raw);
        let id: String = raw.iter().map(|b| (b'a' + b % 26) as char).collect();
        b.ops
            .last_mut()
            .expect("an op")
            .read_markers
            .push(ReadMarker {
                conversation: conversation(),
                at_ms: 1,
                message: MessageId::new(id).expect("valid"),
            });
    }
    b
}

#[test]
fn envelope_bytes_below_and_above_the_limit() {
    // The largest envelope: a plaintext of this many blocks fits, one more
    // does not (the envelope is header + length + plaintext + tag +
    // signature; the limit itself falls between two block counts).
    let fixed = 76 + 3 + 16 + 64;
    let blocks = (ENVELOPE_BYTES_MAX - fixed) / ENVELOPE_PAD_BYTES;
    let fits = blocks * ENVELOPE_PAD_BYTES;
    let b = body_of_payload_len(fits - 1 - 10);
    let mut plaintext = plaintext_of(&b);
    assert_eq!(plaintext.len(), fits);
    let bytes = seal_raw(&plaintext, EnvelopeKind::Ops, &account());
    assert!(bytes.len() <= ENVELOPE_BYTES_MAX);
    assert!(bytes.len() + ENVELOPE_PAD_BYTES > ENVELOPE_BYTES_MAX);
    assert_eq!(open_ok(&bytes).body, b);
    plaintext.extend_from_slice(&[0; ENVELOPE_PAD_BYTES]);
    let Err(EnvelopeError::TooLarge { .. }) = Envelope {
        header: Envelope::decode(&bytes).expect("decodes").header,
        ciphertext: &vec![0; plaintext.len() + 16],
        signature: [0; 64],
    }
    .encode() else {
        panic!("one block more is over the limit")
    };
    let mut over = bytes.clone();
    over.extend_from_slice(&[0; ENVELOPE_PAD_BYTES]);
    assert!(matches!(
        open_error(&over),
        OpenError::Envelope(EnvelopeError::TooLarge { .. })
    ));
    // A body that seals to more than the limit is refused by seal.
    let big = incompressible(20_000, 3);
    assert!(matches!(
        seal(
            &key(),
            &account(),
            header(),
            &big,
            &signer(),
            &mut SeededEntropy::new(1)
        ),
        Err(SealError::Envelope(EnvelopeError::TooLarge { .. }))
    ));
}

// ---- The body's rules ----

/// Seals `body` without its checks and opens it: the body error.
fn refused_body(body: &BodyV1) -> BodyError {
    match open_error(&seal_raw(
        &plaintext_of(body),
        EnvelopeKind::Ops,
        &account(),
    )) {
        OpenError::Body(error) => error,
        other => panic!("not a body error: {other:?}"),
    }
}

#[test]
fn ops_count_below_at_and_above_the_limit() {
    for n in [OPS_PER_ENVELOPE_MAX - 1, OPS_PER_ENVELOPE_MAX] {
        assert_eq!(open_ok(&seal_ok(&sends(n))).body.ops.len(), n);
    }
    let above = sends(OPS_PER_ENVELOPE_MAX + 1);
    assert!(matches!(
        refused_body(&above),
        BodyError::TooManyOps { len } if len == OPS_PER_ENVELOPE_MAX + 1
    ));
    assert!(matches!(
        seal(
            &key(),
            &account(),
            header(),
            &above,
            &signer(),
            &mut SeededEntropy::new(1)
        ),
        Err(SealError::Body(BodyError::TooManyOps { .. }))
    ));
}

#[test]
fn view_entries_below_at_and_above_the_limit() {
    let entry = ViewEntry {
        roster_index: 1,
        chain_pos: u64::MAX,
        head8: [1; 8],
    };
    let max = crate::limits::VIEW_ENTRIES_PER_ENVELOPE_MAX;
    for n in [max - 1, max] {
        let mut b = sends(1);
        b.view = vec![entry; n];
        assert_eq!(open_ok(&seal_ok(&b)).body, b);
    }
    let mut b = sends(1);
    b.view = vec![entry; max + 1];
    assert!(matches!(
        refused_body(&b),
        BodyError::TooManyViewEntries { .. }
    ));
}

#[test]
fn time_and_number_edges() {
    for at in [i64::MIN, -1, 0, i64::MAX] {
        let mut b = sends(2);
        b.sealed_at_ms = at;
        b.ops[0].made_at_ms = at;
        assert_eq!(open_ok(&seal_ok(&b)).body, b, "{at}");
    }
    // The last number a device gives, as the first of one op.
    let mut b = sends(1);
    b.first_origin_seq = ORIGIN_SEQ_MAX;
    assert_eq!(open_ok(&seal_ok(&b)).body.origin_seq(0), ORIGIN_SEQ_MAX);
    // Two ops from it: the second is past it.
    let mut b = sends(2);
    b.first_origin_seq = ORIGIN_SEQ_MAX;
    assert!(matches!(
        refused_body(&b),
        BodyError::OriginSeqOutOfRange { .. }
    ));
    // first + len overflowing u64: a typed refusal, not a panic.
    for first in [u64::MAX - 1, u64::MAX] {
        let mut b = sends(3);
        b.first_origin_seq = first;
        assert!(matches!(
            refused_body(&b),
            BodyError::OriginSeqOutOfRange { .. }
        ));
        assert!(b.check(ORIGIN).is_err());
    }
    // 0 with ops, anything but 0 without.
    let mut b = sends(1);
    b.first_origin_seq = 0;
    assert!(matches!(
        refused_body(&b),
        BodyError::OriginSeqOutOfRange { first: 0, ops: 1 }
    ));
    let mut b = body(Vec::new());
    b.first_origin_seq = 1;
    assert!(matches!(
        refused_body(&b),
        BodyError::OriginSeqOutOfRange { first: 1, ops: 0 }
    ));
}

#[test]
fn an_invalid_op_is_refused_as_a_delta_would_be() {
    let long = "x".repeat(crate::limits::MESSAGE_BODY_BYTES_MAX + 1);
    let b = body(vec![send("fine"), send(&long)]);
    let BodyError::Op {
        index: 1,
        source: DeltaError::InvalidOp(InvalidOp::TextTooLong { .. }),
    } = refused_body(&b)
    else {
        panic!("not the op's limit");
    };
    // The same op in a delta is refused with the same error.
    let delta = Delta {
        format: DELTA_FORMAT,
        account: account(),
        origin: ORIGIN,
        origin_seq: 1,
        made_at_ms: 1,
        op: b.ops[1].op.clone(),
        change: None,
        read_markers: Vec::new(),
    };
    assert!(matches!(
        Delta::decode(&delta.encode().0, &account()),
        Err(DeltaError::InvalidOp(InvalidOp::TextTooLong { .. }))
    ));
}

#[test]
fn read_markers_below_at_and_above_the_limit() {
    let marker = ReadMarker {
        conversation: conversation(),
        at_ms: 1,
        message: MessageId::new("m").expect("valid"),
    };
    for n in [READ_MARKERS_PER_DELTA_MAX - 1, READ_MARKERS_PER_DELTA_MAX] {
        let mut b = sends(1);
        b.ops[0].read_markers = vec![marker.clone(); n];
        assert_eq!(open_ok(&seal_ok(&b)).body.ops[0].read_markers.len(), n);
    }
    let mut b = sends(2);
    b.ops[1].read_markers = vec![marker; READ_MARKERS_PER_DELTA_MAX + 1];
    assert!(matches!(
        refused_body(&b),
        BodyError::Op {
            index: 1,
            source: DeltaError::InvalidOp(InvalidOp::TooMany { .. })
        }
    ));
}

#[test]
fn a_change_by_another_actor_is_refused() {
    let mut b = sends(1);
    b.ops[0].change = Some(0);
    b.changes = Changes::Raw(vec![change_by([9; 16], 1)]);
    assert!(matches!(
        refused_body(&b),
        BodyError::Op {
            index: 0,
            source: DeltaError::ForgedOrigin { .. }
        }
    ));
    b.changes = Changes::Raw(vec![vec![1, 2, 3]]);
    assert!(matches!(
        refused_body(&b),
        BodyError::Op {
            index: 0,
            source: DeltaError::MalformedChange(_)
        }
    ));
}

#[test]
fn change_indices_must_name_each_change_once_in_order() {
    let changes = Changes::Raw(vec![change_by(ORIGIN.0, 1), change_by(ORIGIN.0, 2)]);
    let with = |indices: [Option<u32>; 3], changes: &Changes| {
        let mut b = sends(3);
        for (op, index) in b.ops.iter_mut().zip(indices) {
            op.change = index;
        }
        b.changes = changes.clone();
        b
    };
    let ok = with([Some(0), None, Some(1)], &changes);
    assert_eq!(open_ok(&seal_ok(&ok)).changes.len(), 2);
    for indices in [
        [Some(1), None, Some(0)],
        [Some(0), Some(0), None],
        [Some(0), Some(1), Some(2)],
    ] {
        assert!(
            matches!(
                refused_body(&with(indices, &changes)),
                BodyError::ChangeIndex { .. }
            ),
            "{indices:?}"
        );
    }
    assert!(matches!(
        refused_body(&with([Some(0), None, None], &changes)),
        BodyError::UnnamedChanges { unnamed: 1 }
    ));
}

#[test]
fn a_body_that_does_not_decode_is_refused() {
    // sealed_at_ms's varint never ends within its ten bytes.
    let mut plaintext = vec![0u8];
    plaintext.extend_from_slice(&[0xff; 20]);
    plaintext.resize(64, 0);
    assert!(matches!(
        open_error(&seal_raw(&plaintext, EnvelopeKind::Ops, &account())),
        OpenError::Body(BodyError::Malformed(_))
    ));
    // The minimum ciphertext is one block and a tag.
    assert_eq!(ENVELOPE_CIPHERTEXT_BYTES_MIN, 80);
}

#[test]
fn a_body_is_made_only_from_one_device_s_consecutive_deltas() {
    let delta = |origin: DeviceId, origin_seq: u64, change: Option<Vec<u8>>| Delta {
        format: DELTA_FORMAT,
        account: account(),
        origin,
        origin_seq,
        made_at_ms: origin_seq as i64,
        op: send("hi").op,
        change,
        read_markers: Vec::new(),
    };
    let change = change_by(ORIGIN.0, 1);
    let b = BodyV1::from_deltas(
        [
            delta(ORIGIN, 7, None),
            delta(ORIGIN, 8, Some(change.clone())),
        ],
        42,
    )
    .expect("a run");
    assert_eq!(
        (b.first_origin_seq, b.sealed_at_ms, b.ops.len()),
        (7, 42, 2)
    );
    assert_eq!((b.ops[0].change, b.ops[1].change), (None, Some(0)));
    assert_eq!(b.changes, Changes::Raw(vec![change]));
    let empty = BodyV1::from_deltas([], 0).expect("a checkpoint");
    assert_eq!((empty.first_origin_seq, empty.ops.len()), (0, 0));
    let other = DeviceId([9; 16]);
    for (run, bad) in [
        (vec![delta(ORIGIN, 7, None), delta(ORIGIN, 9, None)], 1),
        (vec![delta(ORIGIN, 7, None), delta(ORIGIN, 7, None)], 1),
        (vec![delta(ORIGIN, 7, None), delta(other, 8, None)], 1),
        (
            vec![delta(ORIGIN, u64::MAX, None), delta(ORIGIN, 0, None)],
            1,
        ),
    ] {
        assert!(matches!(
            BodyV1::from_deltas(run, 0),
            Err(BodyError::NotOneRun { index }) if index == bad
        ));
    }
}
