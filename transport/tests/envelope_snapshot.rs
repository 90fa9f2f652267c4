//! Snapshot of the clear formats of format 2: one envelope and one snapshot
//! manifest, encoded, compared byte for byte with
//! `tests/snapshots/envelope.txt`, and decoded back.
//!
//! A failure here means the bytes devices seal and the relay stores
//! changed. If that was meant (a new format number), regenerate the file
//! with `TANDEM_UPDATE_SNAPSHOTS=1 cargo test -p tandem-transport --test
//! envelope_snapshot` and review the diff.

use tandem_transport::envelope::{
    envelope_content_id, Envelope, EnvelopeHeader, EnvelopeKind, Manifest, SnapshotId,
    ENVELOPE_CIPHERTEXT_BYTES_MIN,
};
use tandem_transport::frame::ContentId;
use tandem_transport::DeviceId;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_envelope_and_the_manifest_encode_to_their_snapshot_and_back() {
    let ciphertext: Vec<u8> = (0..ENVELOPE_CIPHERTEXT_BYTES_MIN as u8).collect();
    let mut signature = [0; 64];
    for (i, b) in signature.iter_mut().enumerate() {
        *b = 0xc0 ^ i as u8;
    }
    let envelope = Envelope {
        header: EnvelopeHeader {
            kind: EnvelopeKind::Ops,
            epoch: 3,
            origin: DeviceId([0x11; 16]),
            chain_pos: 300,
            prev: ContentId([0x22; 32]),
            nonce: [0x33; 24],
        },
        ciphertext: &ciphertext,
        signature,
    };
    let manifest = Manifest {
        epoch: 3,
        generation: 1,
        base_seq: 1_000_000,
        previous_snapshot_id: Some(SnapshotId([0x44; 32])),
        publisher: DeviceId([0x11; 16]),
        published_at_ms: 1_700_000_000_000,
        chunk_hashes: vec![[0x55; 32], [0x66; 32]],
        signature,
    };
    let envelope_bytes = envelope.encode().unwrap();
    let manifest_bytes = manifest.encode().unwrap();
    assert_eq!(Envelope::decode(&envelope_bytes).unwrap(), envelope);
    assert_eq!(Manifest::decode(&manifest_bytes).unwrap(), manifest);
    let lines = format!(
        "envelope {}\nenvelope_content_id {}\nmanifest {}\nsnapshot_id {}\n",
        hex(&envelope_bytes),
        hex(&envelope_content_id(&envelope_bytes).0),
        hex(&manifest_bytes),
        hex(&manifest.snapshot_id().unwrap().0),
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/envelope.txt");
    if std::env::var_os("TANDEM_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(path, &lines).unwrap();
    }
    let expected = std::fs::read_to_string(path).expect("snapshot file; see module docs");
    for (got, want) in lines.lines().zip(expected.lines()) {
        assert_eq!(got, want, "format 2 changed");
    }
    assert_eq!(lines.lines().count(), expected.lines().count());
}
