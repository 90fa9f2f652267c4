use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::*;

/// The envelope's fields as serde sees them: postcard's encoding of this is
/// the layout the hand-written codec must produce.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct PostcardEnvelope {
    format: u16,
    kind: u8,
    epoch: u64,
    origin: [u8; 16],
    chain_pos: u64,
    prev: [u8; 32],
    nonce: [u8; 24],
    ciphertext: Vec<u8>,
    signature: ([u8; 32], [u8; 32]),
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct PostcardManifest {
    format: u16,
    epoch: u64,
    generation: u32,
    base_seq: u64,
    previous_snapshot_id: Option<[u8; 32]>,
    publisher: [u8; 16],
    published_at_ms: u64,
    chunk_hashes: Vec<[u8; 32]>,
    signature: ([u8; 32], [u8; 32]),
}

fn signature(n: u8) -> [u8; SIGNATURE_BYTES] {
    let mut s = [n; SIGNATURE_BYTES];
    s[63] = n.wrapping_add(1);
    s
}

fn header(epoch: u64, chain_pos: u64) -> EnvelopeHeader {
    EnvelopeHeader {
        kind: EnvelopeKind::Ops,
        epoch,
        origin: DeviceId([7; 16]),
        chain_pos,
        prev: if chain_pos == 1 {
            ContentId([0; 32])
        } else {
            ContentId([9; 32])
        },
        nonce: [5; ENVELOPE_NONCE_BYTES],
    }
}

fn envelope(ciphertext: &[u8], epoch: u64, chain_pos: u64) -> Envelope<'_> {
    Envelope {
        header: header(epoch, chain_pos),
        ciphertext,
        signature: signature(3),
    }
}

fn mirror(e: &Envelope<'_>) -> PostcardEnvelope {
    let mut halves = ([0; 32], [0; 32]);
    halves.0.copy_from_slice(&e.signature[..32]);
    halves.1.copy_from_slice(&e.signature[32..]);
    PostcardEnvelope {
        format: ENVELOPE_FORMAT,
        kind: e.header.kind.to_byte(),
        epoch: e.header.epoch,
        origin: e.header.origin.0,
        chain_pos: e.header.chain_pos,
        prev: e.header.prev.0,
        nonce: e.header.nonce,
        ciphertext: e.ciphertext.to_vec(),
        signature: halves,
    }
}

/// Values at the edges of every varint's byte count and of u64.
const EDGES: [u64; 9] = [
    1,
    127,
    128,
    16_383,
    16_384,
    i64::MAX as u64 - 1,
    i64::MAX as u64,
    1 << 63,
    u64::MAX,
];

#[test]
fn the_layout_is_postcard_and_round_trips_at_the_edges() {
    let ct = vec![0xab; ENVELOPE_CIPHERTEXT_BYTES_MIN + ENVELOPE_PAD_BYTES];
    for epoch in std::iter::once(0).chain(EDGES) {
        for chain_pos in EDGES {
            for kind in [EnvelopeKind::Ops, EnvelopeKind::Payload] {
                let mut e = envelope(&ct, epoch, chain_pos);
                e.header.kind = kind;
                let bytes = e.encode().unwrap();
                assert_eq!(bytes, postcard::to_allocvec(&mirror(&e)).unwrap());
                assert_eq!(
                    postcard::from_bytes::<PostcardEnvelope>(&bytes).unwrap(),
                    mirror(&e)
                );
                assert_eq!(Envelope::decode(&bytes).unwrap(), e);
            }
        }
    }
}

#[test]
fn every_truncation_names_the_field_it_ends_in() {
    let ct = vec![1; ENVELOPE_CIPHERTEXT_BYTES_MIN];
    // Multi-byte varints, so that cuts fall inside them too.
    let e = envelope(&ct, 300, u64::MAX);
    let bytes = e.encode().unwrap();
    let mut fields = Vec::new();
    for len in 0..bytes.len() {
        match Envelope::decode(&bytes[..len]) {
            Err(EnvelopeError::Truncated { field }) => {
                if fields.last() != Some(&field) {
                    fields.push(field);
                }
            }
            other => panic!("a prefix of {len} bytes: {other:?}"),
        }
    }
    assert_eq!(
        fields,
        [
            "format",
            "kind",
            "epoch",
            "origin",
            "chain_pos",
            "prev",
            "nonce",
            "ciphertext",
            "signature"
        ]
    );
    assert_eq!(Envelope::decode(&bytes).unwrap(), e);
    for extra in [1, 2, 100] {
        let mut longer = bytes.clone();
        longer.extend(std::iter::repeat_n(0, extra));
        assert_eq!(
            Envelope::decode(&longer),
            Err(EnvelopeError::TrailingBytes { bytes: extra })
        );
    }
}

#[test]
fn another_format_is_named_before_anything_else_is_read() {
    for (prefix, format) in [
        (&[1][..], 1),
        (&[0][..], 0),
        (&[3][..], 3),
        (&[0xff, 0xff, 0x03][..], u16::MAX),
    ] {
        // Nothing valid follows: the format is reported first.
        assert_eq!(
            Envelope::decode(prefix),
            Err(EnvelopeError::UnsupportedFormat { format })
        );
    }
    assert_eq!(
        Envelope::decode(&[0x80, 0x80, 0x04]),
        Err(EnvelopeError::Overflow { field: "format" })
    );
    assert_eq!(
        Envelope::decode(&[0x82, 0x00]),
        Err(EnvelopeError::NonCanonical { field: "format" })
    );
}

#[test]
fn varints_are_refused_past_their_type_and_in_longer_forms() {
    let ct = vec![1; ENVELOPE_CIPHERTEXT_BYTES_MIN];
    let bytes = envelope(&ct, 0, 1).encode().unwrap();
    // The epoch is byte 2 (format 2, kind 1, epoch 0).
    assert_eq!(bytes[..3], [2, 1, 0]);
    let with_epoch = |epoch: &[u8]| {
        let mut b = bytes[..2].to_vec();
        b.extend_from_slice(epoch);
        b.extend_from_slice(&bytes[3..]);
        b
    };
    // u64::MAX in ten bytes is the longest value; one bit more overflows.
    let mut max = vec![0xff; 9];
    max.push(0x01);
    assert_eq!(
        Envelope::decode(&with_epoch(&max)).unwrap().header.epoch,
        u64::MAX
    );
    let mut above = vec![0xff; 9];
    above.push(0x02);
    let mut eleven = vec![0x80; 10];
    eleven.push(0x00);
    for epoch in [above, eleven] {
        assert_eq!(
            Envelope::decode(&with_epoch(&epoch)),
            Err(EnvelopeError::Overflow { field: "epoch" })
        );
    }
    for longer in [&[0x80, 0x00][..], &[0x81, 0x80, 0x00][..]] {
        assert_eq!(
            Envelope::decode(&with_epoch(longer)),
            Err(EnvelopeError::NonCanonical { field: "epoch" })
        );
    }
}

#[test]
fn kinds_chains_and_ciphertext_lengths_are_checked_both_ways() {
    let ct = vec![1; ENVELOPE_CIPHERTEXT_BYTES_MIN];
    let good = envelope(&ct, 4, 1).encode().unwrap();
    for kind in [0, 3, 0xff] {
        let mut b = good.clone();
        b[1] = kind;
        assert_eq!(
            Envelope::decode(&b),
            Err(EnvelopeError::UnknownKind { kind })
        );
    }
    let mut zero = envelope(&ct, 4, 1);
    zero.header.chain_pos = 0;
    let mut first_with_prev = envelope(&ct, 4, 1);
    first_with_prev.header.prev = ContentId([1; 32]);
    let mut second_without = envelope(&ct, 4, 2);
    second_without.header.prev = ContentId([0; 32]);
    for (bad, error) in [
        (zero, EnvelopeError::ChainPosZero),
        (first_with_prev, EnvelopeError::FirstWithPrev),
        (second_without, EnvelopeError::MissingPrev { chain_pos: 2 }),
    ] {
        assert_eq!(bad.encode(), Err(error.clone()));
        // The same fields written without the check: refused on reading.
        let bytes = postcard::to_allocvec(&mirror(&bad)).unwrap();
        assert_eq!(Envelope::decode(&bytes), Err(error));
    }
    let min = ENVELOPE_CIPHERTEXT_BYTES_MIN;
    for (len, ok) in [
        (0, false),
        (ENVELOPE_TAG_BYTES, false),
        (min - 1, false),
        (min, true),
        (min + 1, false),
        (min + ENVELOPE_PAD_BYTES - 1, false),
        (min + ENVELOPE_PAD_BYTES, true),
    ] {
        let ct = vec![2; len];
        let e = envelope(&ct, 4, 2);
        let bytes = postcard::to_allocvec(&mirror(&e)).unwrap();
        if ok {
            assert_eq!(Envelope::decode(&bytes).unwrap(), e);
        } else {
            let error = EnvelopeError::CiphertextLength { bytes: len };
            assert_eq!(Envelope::decode(&bytes), Err(error.clone()));
            assert_eq!(e.encode(), Err(error));
        }
    }
}

#[test]
fn the_size_limit_holds_below_at_and_above() {
    // The largest padded ciphertext whose envelope fits.
    let overhead = envelope(&[0; ENVELOPE_CIPHERTEXT_BYTES_MIN], 1, 1)
        .encode()
        .unwrap()
        .len()
        - ENVELOPE_CIPHERTEXT_BYTES_MIN;
    let blocks = (ENVELOPE_BYTES_MAX - overhead - 2 - ENVELOPE_TAG_BYTES) / ENVELOPE_PAD_BYTES;
    let fits = vec![0; blocks * ENVELOPE_PAD_BYTES + ENVELOPE_TAG_BYTES];
    let bytes = envelope(&fits, 1, 1).encode().unwrap();
    assert!(bytes.len() <= ENVELOPE_BYTES_MAX);
    assert!(bytes.len() + ENVELOPE_PAD_BYTES > ENVELOPE_BYTES_MAX);
    assert_eq!(
        Envelope::decode(&bytes).unwrap().ciphertext.len(),
        fits.len()
    );
    let over = vec![0; fits.len() + ENVELOPE_PAD_BYTES];
    assert!(matches!(
        envelope(&over, 1, 1).encode(),
        Err(EnvelopeError::TooLarge { .. })
    ));
    // At the limit the bytes are read (and found wanting); above it they
    // are refused unread.
    let mut at = vec![0xff; ENVELOPE_BYTES_MAX];
    assert_eq!(
        Envelope::decode(&at),
        Err(EnvelopeError::Overflow { field: "format" })
    );
    at.push(0);
    assert_eq!(
        Envelope::decode(&at),
        Err(EnvelopeError::TooLarge {
            bytes: ENVELOPE_BYTES_MAX + 1
        })
    );
}

#[test]
fn the_content_id_is_the_hash_of_every_byte() {
    let ct = vec![1; ENVELOPE_CIPHERTEXT_BYTES_MIN];
    let bytes = envelope(&ct, 1, 1).encode().unwrap();
    assert_eq!(
        envelope_content_id(&bytes).0,
        *blake3::hash(&bytes).as_bytes()
    );
    let mut other = envelope(&ct, 1, 1);
    other.signature[0] ^= 1;
    assert_ne!(
        envelope_content_id(&other.encode().unwrap()),
        envelope_content_id(&bytes)
    );
}

fn manifest(epoch: u64, chunks: usize) -> Manifest {
    Manifest {
        epoch,
        generation: 2,
        base_seq: 1_000,
        previous_snapshot_id: (epoch > 1).then_some(SnapshotId([6; 32])),
        publisher: DeviceId([7; 16]),
        published_at_ms: 1_700_000_000_000,
        chunk_hashes: (0..chunks).map(|i| [i as u8; 32]).collect(),
        signature: signature(8),
    }
}

fn manifest_mirror(m: &Manifest) -> PostcardManifest {
    let mut halves = ([0; 32], [0; 32]);
    halves.0.copy_from_slice(&m.signature[..32]);
    halves.1.copy_from_slice(&m.signature[32..]);
    PostcardManifest {
        format: MANIFEST_FORMAT,
        epoch: m.epoch,
        generation: m.generation,
        base_seq: m.base_seq,
        previous_snapshot_id: m.previous_snapshot_id.map(|id| id.0),
        publisher: m.publisher.0,
        published_at_ms: m.published_at_ms,
        chunk_hashes: m.chunk_hashes.clone(),
        signature: halves,
    }
}

#[test]
fn manifests_are_postcard_round_trip_and_name_their_snapshot() {
    for epoch in EDGES {
        for chunks in [1, 2, SNAPSHOT_CHUNKS_MAX] {
            for generation in [0, u32::MAX] {
                let mut m = manifest(epoch, chunks);
                m.generation = generation;
                m.base_seq = epoch;
                m.published_at_ms = u64::MAX - epoch;
                let bytes = m.encode().unwrap();
                assert!(bytes.len() <= MANIFEST_BYTES_MAX);
                assert_eq!(bytes, postcard::to_allocvec(&manifest_mirror(&m)).unwrap());
                assert_eq!(Manifest::decode(&bytes).unwrap(), m);
                assert_eq!(m.chunks() as usize, chunks);
                assert_eq!(
                    m.snapshot_id().unwrap().0,
                    *blake3::hash(&bytes[..bytes.len() - SIGNATURE_BYTES]).as_bytes(),
                    "the id leaves the signature out"
                );
            }
        }
    }
    let mut resigned = manifest(3, 2);
    resigned.signature = signature(9);
    assert_eq!(
        resigned.snapshot_id().unwrap(),
        manifest(3, 2).snapshot_id().unwrap()
    );
}

#[test]
fn every_manifest_truncation_names_its_field() {
    let m = manifest(2, 2);
    let bytes = m.encode().unwrap();
    let mut fields = Vec::new();
    for len in 0..bytes.len() {
        match Manifest::decode(&bytes[..len]) {
            Err(ManifestError::Truncated { field }) => {
                if fields.last() != Some(&field) {
                    fields.push(field);
                }
            }
            other => panic!("a prefix of {len} bytes: {other:?}"),
        }
    }
    assert_eq!(
        fields,
        [
            "format",
            "epoch",
            "generation",
            "base_seq",
            "previous_snapshot_id",
            "publisher",
            "published_at_ms",
            "chunk_hashes",
            "signature"
        ]
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        Manifest::decode(&longer),
        Err(ManifestError::TrailingBytes { bytes: 1 })
    );
}

#[test]
fn malformed_manifests_are_typed_errors() {
    let check = |m: PostcardManifest, error: ManifestError| {
        let bytes = postcard::to_allocvec(&m).unwrap();
        assert_eq!(Manifest::decode(&bytes), Err(error));
    };
    let good = || manifest_mirror(&manifest(2, 1));
    check(
        PostcardManifest {
            format: 2,
            ..good()
        },
        ManifestError::UnsupportedFormat { format: 2 },
    );
    check(
        PostcardManifest { epoch: 0, ..good() },
        ManifestError::EpochZero,
    );
    check(
        PostcardManifest { epoch: 1, ..good() },
        ManifestError::PreviousSnapshot { epoch: 1 },
    );
    check(
        PostcardManifest {
            previous_snapshot_id: None,
            ..good()
        },
        ManifestError::PreviousSnapshot { epoch: 2 },
    );
    check(
        PostcardManifest {
            chunk_hashes: Vec::new(),
            ..good()
        },
        ManifestError::ChunkCount { chunks: 0 },
    );
    check(
        PostcardManifest {
            chunk_hashes: vec![[1; 32]; SNAPSHOT_CHUNKS_MAX + 1],
            ..good()
        },
        ManifestError::ChunkCount {
            chunks: SNAPSHOT_CHUNKS_MAX as u64 + 1,
        },
    );
    // A huge count is refused before any hash is read (or allocated).
    let mut bytes = postcard::to_allocvec(&good()).unwrap();
    let at = bytes.len() - SIGNATURE_BYTES - 32 - 1;
    assert_eq!(bytes[at], 1, "the chunk count");
    bytes.truncate(at);
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert_eq!(
        Manifest::decode(&bytes),
        Err(ManifestError::ChunkCount {
            chunks: u64::from(u32::MAX)
        })
    );
    // The option tag of the previous snapshot: 0 or 1.
    let mut bytes = postcard::to_allocvec(&good()).unwrap();
    let tag = 1 + 1 + 1 + 2; // format, epoch 2, generation 2, base_seq 1000
    assert_eq!(bytes[tag], 1);
    bytes[tag] = 2;
    assert_eq!(
        Manifest::decode(&bytes),
        Err(ManifestError::OptionTag { tag: 2 })
    );
    // A generation past u32.
    let mut bytes = vec![1, 2, 0x80, 0x80, 0x80, 0x80, 0x10];
    bytes.extend_from_slice(&[0; 200]);
    assert_eq!(
        Manifest::decode(&bytes),
        Err(ManifestError::Overflow {
            field: "generation"
        })
    );
    assert_eq!(
        Manifest::decode(&[0; MANIFEST_BYTES_MAX + 1]),
        Err(ManifestError::TooLarge {
            bytes: MANIFEST_BYTES_MAX + 1
        })
    );
    // Encoding refuses the same.
    assert_eq!(manifest(0, 1).encode(), Err(ManifestError::EpochZero));
    assert_eq!(
        manifest(2, 0).snapshot_id(),
        Err(ManifestError::ChunkCount { chunks: 0 })
    );
}

fn arb_envelope() -> impl Strategy<Value = (EnvelopeHeader, Vec<u8>, Vec<u8>)> {
    (
        any::<bool>(),
        any::<u64>(),
        any::<[u8; 16]>(),
        1..=u64::MAX,
        any::<[u8; 32]>(),
        any::<[u8; 24]>(),
        0..16usize,
        proptest::collection::vec(any::<u8>(), SIGNATURE_BYTES),
    )
        .prop_map(
            |(ops, epoch, origin, chain_pos, prev, nonce, blocks, sig)| {
                let mut prev = prev;
                if chain_pos == 1 {
                    prev = [0; 32];
                } else if prev == [0; 32] {
                    prev[0] = 1;
                }
                let header = EnvelopeHeader {
                    kind: if ops {
                        EnvelopeKind::Ops
                    } else {
                        EnvelopeKind::Payload
                    },
                    epoch,
                    origin: DeviceId(origin),
                    chain_pos,
                    prev: ContentId(prev),
                    nonce,
                };
                let ct = vec![0x5a; ENVELOPE_CIPHERTEXT_BYTES_MIN + blocks * ENVELOPE_PAD_BYTES];
                (header, ct, sig)
            },
        )
}

proptest! {
    #[test]
    fn any_valid_envelope_round_trips((header, ct, sig) in arb_envelope()) {
        let e = Envelope { header, ciphertext: &ct, signature: sig.try_into().unwrap() };
        let bytes = e.encode().unwrap();
        prop_assert_eq!(Envelope::decode(&bytes).unwrap(), e);
    }

    #[test]
    fn any_bytes_decode_to_a_result_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Envelope::decode(&bytes);
        let _ = Manifest::decode(&bytes);
    }

    #[test]
    fn a_changed_byte_is_refused_or_reads_as_another_envelope(
        (header, ct, sig) in arb_envelope(),
        at in any::<prop::sample::Index>(),
        flip in 1..=255u8,
    ) {
        let e = Envelope { header, ciphertext: &ct, signature: sig.try_into().unwrap() };
        let mut bytes = e.encode().unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= flip;
        if let Ok(other) = Envelope::decode(&bytes) {
            prop_assert_ne!(other, e);
            // Canonical: what reads back writes the same bytes.
            prop_assert_eq!(other.encode().unwrap(), bytes);
        }
    }

    #[test]
    fn any_bytes_near_a_manifest_never_panic(
        chunks in 1..4usize,
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = manifest(2, chunks).encode().unwrap();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        if let Ok(m) = Manifest::decode(&bytes) {
            prop_assert_eq!(m.encode().unwrap(), bytes);
        }
    }
}
