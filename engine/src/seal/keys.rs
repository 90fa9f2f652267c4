//! The key schedule (docs/design-epochs-e2ee.md §1.3): one random
//! generation root per key generation, and everything else derived from it
//! with `blake3::derive_key`.
//!
//! | key | context | material |
//! |---|---|---|
//! | [`GenerationRoot`] `G_g` | — | 32 random bytes |
//! | [`EpochKey`] `K_e` | `"tandem epoch v2"` | `G_g ‖ u64le(e) ‖ snapshot_id(e)` |
//! | [`EnvelopeKey`] `k_env(e)` | `"tandem envelope v2"` | `K_e` |
//! | [`PayloadKey`] `k_pay(e)` | `"tandem payload v2"` | `K_e` |
//! | [`SnapshotKey`] `k_snap(e)` | `"tandem snapshot v2"` | `G_g ‖ u64le(e)` |
//! | [`HistoryKey`] `k_hist(e)` | `"tandem history v2"` | `K_e` |
//! | [`TagKey`] `k_tag(g)` | `"tandem history tag v2"` | `G_g` |
//!
//! Each key has its own type, so one cannot be passed where another is
//! meant (an envelope cannot be sealed under a snapshot key). None is
//! `Copy`; each is wiped from memory when dropped, and none prints its
//! bytes in `Debug`.

use std::fmt;

use tandem_transport::envelope::SnapshotId;
use tandem_transport::Entropy;
use zeroize::Zeroize;

/// Bytes in every key of the schedule.
pub const KEY_BYTES: usize = 32;

/// Bytes of a conversation's opaque history tag.
pub const TAG_BYTES: usize = 16;

const EPOCH_CONTEXT: &str = "tandem epoch v2";
const ENVELOPE_CONTEXT: &str = "tandem envelope v2";
const PAYLOAD_CONTEXT: &str = "tandem payload v2";
const SNAPSHOT_CONTEXT: &str = "tandem snapshot v2";
const HISTORY_CONTEXT: &str = "tandem history v2";
const TAG_CONTEXT: &str = "tandem history tag v2";
const FINGERPRINT_CONTEXT: &str = "tandem key fingerprint v2";

/// Declares a 32-byte key type: wiped on drop, redacted in `Debug`.
macro_rules! key_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name([u8; KEY_BYTES]);

        impl Drop for $name {
            fn drop(&mut self) {
                self.0.zeroize();
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(redacted)"))
            }
        }
    };
}

key_type!(
    /// A generation root `G_g`: 32 random bytes drawn when the account is
    /// claimed (generation 0) and at every rotation. Whoever holds it
    /// derives every key of its generation.
    GenerationRoot
);
key_type!(
    /// The key of one epoch `e` of a generation, bound to the epoch's
    /// snapshot id: devices on two different snapshots of the same epoch
    /// number derive different keys.
    EpochKey
);
key_type!(
    /// Seals log envelopes (operations and checkpoints) of one epoch.
    EnvelopeKey
);
key_type!(
    /// Seals device-addressed payloads of one epoch.
    PayloadKey
);
key_type!(
    /// Seals the chunks of one epoch's snapshot. Derived from the
    /// generation root and the epoch number, not from the epoch key: the
    /// snapshot id is a hash of the chunks' ciphertext.
    SnapshotKey
);
key_type!(
    /// Seals the history segments written at one epoch.
    HistoryKey
);
key_type!(
    /// Keys the opaque per-conversation tags of one generation's history
    /// segments.
    TagKey
);

impl GenerationRoot {
    /// A new root, 32 bytes drawn from `entropy`.
    pub fn generate(entropy: &mut dyn Entropy) -> GenerationRoot {
        let mut root = GenerationRoot([0; KEY_BYTES]);
        entropy.fill(&mut root.0);
        root
    }

    /// A root from its bytes: as kept in the device's store or received in
    /// a link grant.
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> GenerationRoot {
        GenerationRoot(bytes)
    }

    /// The root's bytes, to keep in the device's store or to seal into a
    /// link grant. The caller wipes its copy.
    pub fn to_bytes(&self) -> [u8; KEY_BYTES] {
        self.0
    }

    /// `K_e`: the key of `epoch`, whose snapshot is `snapshot`.
    pub fn epoch_key(&self, epoch: u64, snapshot: &SnapshotId) -> EpochKey {
        let mut material = [0u8; KEY_BYTES + 8 + 32];
        material[..KEY_BYTES].copy_from_slice(&self.0);
        material[KEY_BYTES..KEY_BYTES + 8].copy_from_slice(&epoch.to_le_bytes());
        material[KEY_BYTES + 8..].copy_from_slice(&snapshot.0);
        let key = EpochKey(blake3::derive_key(EPOCH_CONTEXT, &material));
        material.zeroize();
        key
    }

    /// `k_snap(e)`: the key of `epoch`'s snapshot chunks.
    pub fn snapshot_key(&self, epoch: u64) -> SnapshotKey {
        let mut material = [0u8; KEY_BYTES + 8];
        material[..KEY_BYTES].copy_from_slice(&self.0);
        material[KEY_BYTES..].copy_from_slice(&epoch.to_le_bytes());
        let key = SnapshotKey(blake3::derive_key(SNAPSHOT_CONTEXT, &material));
        material.zeroize();
        key
    }

    /// 16 bytes that name the root without revealing it (a blake3 key
    /// derivation under a context of its own): equal on two devices exactly
    /// when they hold the same root, for the user to compare.
    pub fn fingerprint(&self) -> [u8; 16] {
        let derived = blake3::derive_key(FINGERPRINT_CONTEXT, &self.0);
        let mut out = [0u8; 16];
        out.copy_from_slice(&derived[..16]);
        out
    }

    /// `k_tag(g)`: the key of this generation's conversation tags.
    pub fn tag_key(&self) -> TagKey {
        TagKey(blake3::derive_key(TAG_CONTEXT, &self.0))
    }
}

impl EpochKey {
    /// `k_env(e)`: the key of the epoch's log envelopes.
    pub fn envelope_key(&self) -> EnvelopeKey {
        EnvelopeKey(blake3::derive_key(ENVELOPE_CONTEXT, &self.0))
    }

    /// `k_pay(e)`: the key of the epoch's device-addressed payloads.
    pub fn payload_key(&self) -> PayloadKey {
        PayloadKey(blake3::derive_key(PAYLOAD_CONTEXT, &self.0))
    }

    /// `k_hist(e)`: the key of the history segments written at the epoch.
    pub fn history_key(&self) -> HistoryKey {
        HistoryKey(blake3::derive_key(HISTORY_CONTEXT, &self.0))
    }
}

impl EnvelopeKey {
    /// The key's bytes, for the cipher.
    pub(crate) fn bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }
}

impl TagKey {
    /// The opaque tag of a conversation: the first [`TAG_BYTES`] of the
    /// keyed blake3 hash of its key. The relay can group a conversation's
    /// segments by it but not tell which conversation it is.
    pub fn tag(&self, conversation_key: &[u8]) -> [u8; TAG_BYTES] {
        let hash = blake3::keyed_hash(&self.0, conversation_key);
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&hash.as_bytes()[..TAG_BYTES]);
        tag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> GenerationRoot {
        GenerationRoot::from_bytes([7; KEY_BYTES])
    }

    /// The schedule exactly as §1.3 writes it, recomputed here from its
    /// contexts and inputs in their order.
    #[test]
    fn schedule_is_the_design_s() {
        let g = [7u8; 32];
        let snapshot = SnapshotId([9; 32]);
        let mut m = g.to_vec();
        m.extend_from_slice(&5u64.to_le_bytes());
        m.extend_from_slice(&[9; 32]);
        let k_e = blake3::derive_key("tandem epoch v2", &m);
        let epoch = root().epoch_key(5, &snapshot);
        assert_eq!(epoch.0, k_e);
        assert_eq!(
            epoch.envelope_key().0,
            blake3::derive_key("tandem envelope v2", &k_e)
        );
        assert_eq!(
            epoch.payload_key().0,
            blake3::derive_key("tandem payload v2", &k_e)
        );
        assert_eq!(
            epoch.history_key().0,
            blake3::derive_key("tandem history v2", &k_e)
        );
        let mut m = g.to_vec();
        m.extend_from_slice(&5u64.to_le_bytes());
        assert_eq!(
            root().snapshot_key(5).0,
            blake3::derive_key("tandem snapshot v2", &m)
        );
        let k_tag = blake3::derive_key("tandem history tag v2", &g);
        assert_eq!(root().tag_key().0, k_tag);
        assert_eq!(
            root().tag_key().tag(b"c1")[..],
            blake3::keyed_hash(&k_tag, b"c1").as_bytes()[..16]
        );
    }

    /// Every input changes the key: the epoch number, the snapshot id, the
    /// root; and the purpose keys all differ.
    #[test]
    fn every_input_separates() {
        let a = SnapshotId([1; 32]);
        let b = SnapshotId([2; 32]);
        let base = root().epoch_key(1, &a).0;
        assert_ne!(base, root().epoch_key(2, &a).0);
        assert_ne!(base, root().epoch_key(1, &b).0);
        assert_ne!(base, GenerationRoot::from_bytes([8; 32]).epoch_key(1, &a).0);
        let k = root().epoch_key(1, &a);
        let purposes = [
            k.envelope_key().0,
            k.payload_key().0,
            k.history_key().0,
            root().snapshot_key(1).0,
            root().tag_key().0,
            base,
        ];
        for (i, x) in purposes.iter().enumerate() {
            for y in &purposes[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert_ne!(root().snapshot_key(1).0, root().snapshot_key(2).0);
    }

    #[test]
    fn debug_prints_no_key_bytes() {
        let root = GenerationRoot::from_bytes([0xab; 32]);
        let k = root.epoch_key(1, &SnapshotId([0; 32]));
        for text in [
            format!("{root:?}"),
            format!("{k:?}"),
            format!("{:?}", k.envelope_key()),
            format!("{:?}", root.tag_key()),
        ] {
            assert!(text.ends_with("(redacted)"), "{text}");
            assert!(!text.contains("ab") && !text.contains("171"), "{text}");
        }
    }

    #[test]
    fn generate_draws_from_the_entropy() {
        let mut a = tandem_transport::SeededEntropy::new(3);
        let mut b = tandem_transport::SeededEntropy::new(3);
        let mut expected = [0u8; 32];
        b.fill(&mut expected);
        assert_eq!(GenerationRoot::generate(&mut a).to_bytes(), expected);
        assert_ne!(
            GenerationRoot::generate(&mut a).to_bytes(),
            expected,
            "a second root is new bytes"
        );
    }
}
