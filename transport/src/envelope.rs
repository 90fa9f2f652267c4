//! The clear parts of format 2: the sealed **envelope** a device pushes
//! (docs/design-epochs-e2ee.md §1.1) and the **manifest** of an epoch
//! snapshot (§2.1), with codecs the relay runs without the engine.
//!
//! Both are postcard layouts, written and read here by hand rather than
//! through serde, for three reasons: every malformed input gets a typed
//! error naming the field, not postcard's one message; a varint is only
//! accepted in its shortest form, so one value has exactly one encoding
//! and the content id (the blake3 hash of the whole envelope) cannot be
//! changed by re-encoding a field; and an envelope is read without copying
//! its ciphertext. A test checks that the bytes are exactly what postcard's
//! serde encoding of the same fields gives.
//!
//! The relay reads the header (format, kind, epoch, origin, chain position,
//! previous content id) and treats the nonce, the ciphertext and the
//! signature as opaque bytes: it never verifies signatures (the lead's
//! answer to Q8) and cannot decrypt. What it checks is structure: the
//! format, the kind, the chain's shape (position from 1, no previous id at
//! 1, one after it), the ciphertext's length (padded plaintext plus tag)
//! and the size limit.
//!
//! Envelope layout, in this order:
//!
//! | field | encoding |
//! |---|---|
//! | `format` | varint u16, = [`ENVELOPE_FORMAT`] |
//! | `kind` | u8: 1 ops, 2 payload |
//! | `epoch` | varint u64 |
//! | `origin` | 16 bytes |
//! | `chain_pos` | varint u64, from 1 |
//! | `prev` | 32 bytes; zeros at position 1, never zeros after |
//! | `nonce` | 24 bytes |
//! | `ciphertext` | varint length, then the bytes |
//! | `signature` | 64 bytes |

use crate::frame::{ContentId, CONTENT_ID_BYTES};
use crate::ids::{DeviceId, DEVICE_ID_BYTES};
use crate::limits::{ENVELOPE_BYTES_MAX, MANIFEST_BYTES_MAX, SNAPSHOT_CHUNKS_MAX};

/// The envelope format this crate reads and writes. Format 1 is today's
/// plaintext delta.
pub const ENVELOPE_FORMAT: u16 = 2;

/// The snapshot manifest format this crate reads and writes.
pub const MANIFEST_FORMAT: u16 = 1;

/// Bytes in an envelope's nonce (XChaCha20-Poly1305).
pub const ENVELOPE_NONCE_BYTES: usize = 24;

/// Bytes in an ed25519 signature.
pub const SIGNATURE_BYTES: usize = 64;

/// The plaintext inside an envelope is padded with zeros to a multiple of
/// this many bytes.
pub const ENVELOPE_PAD_BYTES: usize = 64;

/// Bytes of the AEAD tag after the encrypted plaintext.
pub const ENVELOPE_TAG_BYTES: usize = 16;

/// The shortest ciphertext: one padded block (the plaintext holds at least
/// its encoding byte) and the tag.
pub const ENVELOPE_CIPHERTEXT_BYTES_MIN: usize = ENVELOPE_PAD_BYTES + ENVELOPE_TAG_BYTES;

/// Bytes in a [`SnapshotId`] and in each chunk hash of a manifest.
pub const SNAPSHOT_ID_BYTES: usize = 32;

/// What an envelope carries, in the clear so that the relay can keep a
/// payload envelope out of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EnvelopeKind {
    /// Operations of the origin device: appended to the account's log.
    Ops,
    /// A device-addressed payload (sent with `SendToDevice`), never logged.
    Payload,
}

impl EnvelopeKind {
    /// The byte on the wire.
    pub fn to_byte(self) -> u8 {
        match self {
            EnvelopeKind::Ops => 1,
            EnvelopeKind::Payload => 2,
        }
    }

    /// The kind a wire byte names, if it names one.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(EnvelopeKind::Ops),
            2 => Some(EnvelopeKind::Payload),
            _ => None,
        }
    }
}

/// An envelope's clear header: everything before its ciphertext. The
/// format is not a field: a decoded header is always [`ENVELOPE_FORMAT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeHeader {
    /// What it carries.
    pub kind: EnvelopeKind,
    /// The epoch it was sealed in; the relay refuses one of another epoch.
    pub epoch: u64,
    /// The device that sealed it; the relay requires the pushing device.
    pub origin: DeviceId,
    /// Its position in the origin's chain, from 1, continuous across
    /// epochs.
    pub chain_pos: u64,
    /// The content id of the origin's envelope at `chain_pos - 1`; zeros at
    /// position 1.
    pub prev: ContentId,
    /// The AEAD nonce, random.
    pub nonce: [u8; ENVELOPE_NONCE_BYTES],
}

/// A sealed envelope, read from (or to be written as) bytes. The
/// ciphertext is borrowed: decoding copies none of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The clear header.
    pub header: EnvelopeHeader,
    /// The encrypted, padded body and its tag: opaque here.
    pub ciphertext: &'a [u8],
    /// The origin's ed25519 signature: opaque here (the relay never checks
    /// it; devices do, against the roster).
    pub signature: [u8; SIGNATURE_BYTES],
}

/// Why bytes are not an envelope, or an envelope cannot be encoded. Every
/// case is a refusal of the whole envelope; none is a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Above [`ENVELOPE_BYTES_MAX`]; refused before anything is read.
    #[error("envelope of {bytes} bytes is above the limit of {ENVELOPE_BYTES_MAX}")]
    TooLarge {
        /// Its length.
        bytes: usize,
    },
    /// The bytes end inside `field`.
    #[error("envelope truncated in its {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes are left after the signature.
    #[error("{bytes} bytes after the envelope's signature")]
    TrailingBytes {
        /// How many.
        bytes: usize,
    },
    /// The format is not [`ENVELOPE_FORMAT`] (1 is a plaintext delta).
    #[error("envelope format {format} is not the format {ENVELOPE_FORMAT} this build reads")]
    UnsupportedFormat {
        /// The format found.
        format: u16,
    },
    /// The kind byte names no kind.
    #[error("envelope kind {kind} is unknown")]
    UnknownKind {
        /// The byte found.
        kind: u8,
    },
    /// A varint is longer than its type allows or its value does not fit.
    #[error("the envelope's {field} does not fit its type")]
    Overflow {
        /// The field.
        field: &'static str,
    },
    /// A varint is not in its shortest form.
    #[error("the envelope's {field} is not in its shortest encoding")]
    NonCanonical {
        /// The field.
        field: &'static str,
    },
    /// `chain_pos` is 0: chains start at 1.
    #[error("chain position 0: chains start at 1")]
    ChainPosZero,
    /// The first envelope of a chain names a previous one.
    #[error("chain position 1 with a previous content id")]
    FirstWithPrev,
    /// An envelope after the first names no previous one.
    #[error("chain position {chain_pos} without a previous content id")]
    MissingPrev {
        /// Its position.
        chain_pos: u64,
    },
    /// The ciphertext cannot be a padded plaintext plus its tag: shorter
    /// than [`ENVELOPE_CIPHERTEXT_BYTES_MIN`], or its length minus the tag
    /// is not a multiple of [`ENVELOPE_PAD_BYTES`].
    #[error("ciphertext of {bytes} bytes is not padded plaintext plus a tag")]
    CiphertextLength {
        /// Its length.
        bytes: usize,
    },
}

impl Envelope<'_> {
    /// Reads an envelope. Checks, in this order: the size limit, the
    /// format (so a newer or older one is reported as such, before
    /// anything else is read), then every field in order, the chain's
    /// shape, the ciphertext's length, and that nothing follows the
    /// signature.
    pub fn decode(bytes: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
        if bytes.len() > ENVELOPE_BYTES_MAX {
            return Err(EnvelopeError::TooLarge { bytes: bytes.len() });
        }
        let mut r = Reader::new(bytes);
        let format = r.varint("format", U16)? as u16;
        if format != ENVELOPE_FORMAT {
            return Err(EnvelopeError::UnsupportedFormat { format });
        }
        let kind = r.byte("kind")?;
        let kind = EnvelopeKind::from_byte(kind).ok_or(EnvelopeError::UnknownKind { kind })?;
        let epoch = r.varint("epoch", U64)?;
        let origin = DeviceId(r.array::<DEVICE_ID_BYTES>("origin")?);
        let chain_pos = r.varint("chain_pos", U64)?;
        let prev = ContentId(r.array::<CONTENT_ID_BYTES>("prev")?);
        let nonce = r.array::<ENVELOPE_NONCE_BYTES>("nonce")?;
        let ciphertext = r.bytes("ciphertext")?;
        let signature = r.array::<SIGNATURE_BYTES>("signature")?;
        r.finish()?;
        let envelope = Envelope {
            header: EnvelopeHeader {
                kind,
                epoch,
                origin,
                chain_pos,
                prev,
                nonce,
            },
            ciphertext,
            signature,
        };
        envelope.check()?;
        Ok(envelope)
    }

    /// The envelope's bytes. Refuses what [`Envelope::decode`] would
    /// refuse, so an envelope this crate writes is always one it reads.
    pub fn encode(&self) -> Result<Vec<u8>, EnvelopeError> {
        self.check()?;
        let h = &self.header;
        let mut out = Vec::with_capacity(160 + self.ciphertext.len());
        put_varint(&mut out, u64::from(ENVELOPE_FORMAT));
        out.push(h.kind.to_byte());
        put_varint(&mut out, h.epoch);
        out.extend_from_slice(&h.origin.0);
        put_varint(&mut out, h.chain_pos);
        out.extend_from_slice(&h.prev.0);
        out.extend_from_slice(&h.nonce);
        put_varint(&mut out, self.ciphertext.len() as u64);
        out.extend_from_slice(self.ciphertext);
        out.extend_from_slice(&self.signature);
        if out.len() > ENVELOPE_BYTES_MAX {
            return Err(EnvelopeError::TooLarge { bytes: out.len() });
        }
        Ok(out)
    }

    /// The chain's shape and the ciphertext's length.
    fn check(&self) -> Result<(), EnvelopeError> {
        let h = &self.header;
        let no_prev = h.prev.0 == [0; CONTENT_ID_BYTES];
        match h.chain_pos {
            0 => return Err(EnvelopeError::ChainPosZero),
            1 if !no_prev => return Err(EnvelopeError::FirstWithPrev),
            pos if pos > 1 && no_prev => return Err(EnvelopeError::MissingPrev { chain_pos: pos }),
            _ => {}
        }
        let len = self.ciphertext.len();
        if len < ENVELOPE_CIPHERTEXT_BYTES_MIN
            || !(len - ENVELOPE_TAG_BYTES).is_multiple_of(ENVELOPE_PAD_BYTES)
        {
            return Err(EnvelopeError::CiphertextLength { bytes: len });
        }
        Ok(())
    }
}

/// An envelope's content id: the blake3 hash of all its bytes. Signatures
/// are deterministic (ed25519), so a sealed envelope keeps its id across
/// resends.
pub fn envelope_content_id(bytes: &[u8]) -> ContentId {
    ContentId::of(bytes)
}

/// A snapshot's id: the blake3 hash of its manifest without the signature.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotId(pub [u8; SNAPSHOT_ID_BYTES]);

impl std::fmt::Debug for SnapshotId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SnapshotId(")?;
        for byte in &self.0[..8] {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "…)")
    }
}

/// The clear manifest of an epoch snapshot: what the relay needs to check
/// the staged chunks (their count and hashes) and to describe the epoch,
/// signed by the publisher (the relay does not check the signature).
///
/// Layout: `format` (varint u16, = [`MANIFEST_FORMAT`]), `epoch` (varint
/// u64, from 1), `generation` (varint u32), `base_seq` (varint u64),
/// `previous_snapshot_id` (postcard option: 0, or 1 and 32 bytes; none
/// exactly at epoch 1), `publisher` (16 bytes), `published_at_ms` (varint
/// u64), `chunk_hashes` (varint count, 1 to [`SNAPSHOT_CHUNKS_MAX`], then
/// 32 bytes each), `signature` (64 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The epoch it opens.
    pub epoch: u64,
    /// The key generation the epoch's keys derive from.
    pub generation: u32,
    /// The log position B the epoch's snapshot holds everything up to.
    pub base_seq: u64,
    /// The snapshot of the epoch before; `None` exactly for epoch 1 (the
    /// claim of an account).
    pub previous_snapshot_id: Option<SnapshotId>,
    /// The device that built and publishes it.
    pub publisher: DeviceId,
    /// The publisher's clock when it built it, ms since the Unix epoch.
    pub published_at_ms: u64,
    /// The blake3 hash of each chunk's ciphertext, in chunk order.
    pub chunk_hashes: Vec<[u8; SNAPSHOT_ID_BYTES]>,
    /// The publisher's signature.
    pub signature: [u8; SIGNATURE_BYTES],
}

/// Why bytes are not a manifest, or a manifest cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Above [`MANIFEST_BYTES_MAX`]; refused before anything is read.
    #[error("manifest of {bytes} bytes is above the limit of {MANIFEST_BYTES_MAX}")]
    TooLarge {
        /// Its length.
        bytes: usize,
    },
    /// The bytes end inside `field`.
    #[error("manifest truncated in its {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes are left after the signature.
    #[error("{bytes} bytes after the manifest's signature")]
    TrailingBytes {
        /// How many.
        bytes: usize,
    },
    /// The format is not [`MANIFEST_FORMAT`].
    #[error("manifest format {format} is not the format {MANIFEST_FORMAT} this build reads")]
    UnsupportedFormat {
        /// The format found.
        format: u16,
    },
    /// A varint is longer than its type allows or its value does not fit.
    #[error("the manifest's {field} does not fit its type")]
    Overflow {
        /// The field.
        field: &'static str,
    },
    /// A varint is not in its shortest form.
    #[error("the manifest's {field} is not in its shortest encoding")]
    NonCanonical {
        /// The field.
        field: &'static str,
    },
    /// The option tag of `previous_snapshot_id` is neither 0 nor 1.
    #[error("previous snapshot tag {tag} is neither 0 nor 1")]
    OptionTag {
        /// The byte found.
        tag: u8,
    },
    /// Epoch 0 has no snapshot: it is an account never claimed.
    #[error("a manifest for epoch 0")]
    EpochZero,
    /// Epoch 1 names a previous snapshot, or a later epoch names none.
    #[error("epoch {epoch} with{} a previous snapshot", if *.epoch == 1 { "" } else { "out" })]
    PreviousSnapshot {
        /// The epoch.
        epoch: u64,
    },
    /// No chunk hashes, or more than [`SNAPSHOT_CHUNKS_MAX`] (refused
    /// before any is read).
    #[error("{chunks} chunks: a snapshot has 1 to {SNAPSHOT_CHUNKS_MAX}")]
    ChunkCount {
        /// How many it names.
        chunks: u64,
    },
}

impl Manifest {
    /// Reads a manifest, checking the size limit, the format first, every
    /// field in order, the previous snapshot against the epoch, the chunk
    /// count before the hashes, and that nothing follows the signature.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() > MANIFEST_BYTES_MAX {
            return Err(ManifestError::TooLarge { bytes: bytes.len() });
        }
        let mut r = Reader::new(bytes);
        let format = r.varint("format", U16)? as u16;
        if format != MANIFEST_FORMAT {
            return Err(ManifestError::UnsupportedFormat { format });
        }
        let epoch = r.varint("epoch", U64)?;
        let generation = r.varint("generation", U32)? as u32;
        let base_seq = r.varint("base_seq", U64)?;
        let previous_snapshot_id = match r.byte("previous_snapshot_id")? {
            0 => None,
            1 => Some(SnapshotId(r.array("previous_snapshot_id")?)),
            tag => return Err(ManifestError::OptionTag { tag }),
        };
        let publisher = DeviceId(r.array("publisher")?);
        let published_at_ms = r.varint("published_at_ms", U64)?;
        let chunks = r.varint("chunk_hashes", U64)?;
        if chunks == 0 || chunks > SNAPSHOT_CHUNKS_MAX as u64 {
            return Err(ManifestError::ChunkCount { chunks });
        }
        let mut chunk_hashes = Vec::with_capacity(chunks as usize);
        for _ in 0..chunks {
            chunk_hashes.push(r.array("chunk_hashes")?);
        }
        let signature = r.array("signature")?;
        r.finish()?;
        let manifest = Manifest {
            epoch,
            generation,
            base_seq,
            previous_snapshot_id,
            publisher,
            published_at_ms,
            chunk_hashes,
            signature,
        };
        manifest.check()?;
        Ok(manifest)
    }

    /// The manifest's bytes. Refuses what [`Manifest::decode`] would refuse.
    pub fn encode(&self) -> Result<Vec<u8>, ManifestError> {
        let mut out = self.unsigned_bytes()?;
        out.extend_from_slice(&self.signature);
        if out.len() > MANIFEST_BYTES_MAX {
            return Err(ManifestError::TooLarge { bytes: out.len() });
        }
        Ok(out)
    }

    /// The snapshot's id: blake3 of the encoded manifest without its
    /// signature (what the publisher signs, after a domain and the
    /// account).
    pub fn snapshot_id(&self) -> Result<SnapshotId, ManifestError> {
        Ok(SnapshotId(
            *blake3::hash(&self.unsigned_bytes()?).as_bytes(),
        ))
    }

    /// The number of chunks: at least 1, at most [`SNAPSHOT_CHUNKS_MAX`]
    /// in a checked manifest.
    pub fn chunks(&self) -> u32 {
        // At most SNAPSHOT_CHUNKS_MAX in a checked manifest; saturating
        // keeps an unchecked one from wrapping.
        u32::try_from(self.chunk_hashes.len()).unwrap_or(u32::MAX)
    }

    /// Every field up to the signature, checked.
    fn unsigned_bytes(&self) -> Result<Vec<u8>, ManifestError> {
        self.check()?;
        let mut out = Vec::with_capacity(128 + self.chunk_hashes.len() * SNAPSHOT_ID_BYTES);
        put_varint(&mut out, u64::from(MANIFEST_FORMAT));
        put_varint(&mut out, self.epoch);
        put_varint(&mut out, u64::from(self.generation));
        put_varint(&mut out, self.base_seq);
        match &self.previous_snapshot_id {
            None => out.push(0),
            Some(id) => {
                out.push(1);
                out.extend_from_slice(&id.0);
            }
        }
        out.extend_from_slice(&self.publisher.0);
        put_varint(&mut out, self.published_at_ms);
        put_varint(&mut out, self.chunk_hashes.len() as u64);
        for hash in &self.chunk_hashes {
            out.extend_from_slice(hash);
        }
        Ok(out)
    }

    fn check(&self) -> Result<(), ManifestError> {
        if self.epoch == 0 {
            return Err(ManifestError::EpochZero);
        }
        if (self.epoch == 1) != self.previous_snapshot_id.is_none() {
            return Err(ManifestError::PreviousSnapshot { epoch: self.epoch });
        }
        let chunks = self.chunk_hashes.len();
        if chunks == 0 || chunks > SNAPSHOT_CHUNKS_MAX {
            return Err(ManifestError::ChunkCount {
                chunks: chunks as u64,
            });
        }
        Ok(())
    }
}

/// A varint's type: its longest encoding and its largest value.
#[derive(Clone, Copy)]
struct VarintType {
    bytes_max: usize,
    value_max: u64,
}

const U16: VarintType = VarintType {
    bytes_max: 3,
    value_max: u16::MAX as u64,
};
const U32: VarintType = VarintType {
    bytes_max: 5,
    value_max: u32::MAX as u64,
};
const U64: VarintType = VarintType {
    bytes_max: 10,
    value_max: u64::MAX,
};

/// What went wrong reading the wire, before it is named as an envelope's
/// or a manifest's error.
#[derive(Debug)]
enum Wire {
    Truncated(&'static str),
    Overflow(&'static str),
    NonCanonical(&'static str),
    Trailing(usize),
    /// A length prefix that cannot fit in what is left.
    LengthPastEnd(&'static str),
}

impl From<Wire> for EnvelopeError {
    fn from(wire: Wire) -> Self {
        match wire {
            Wire::Truncated(field) | Wire::LengthPastEnd(field) => {
                EnvelopeError::Truncated { field }
            }
            Wire::Overflow(field) => EnvelopeError::Overflow { field },
            Wire::NonCanonical(field) => EnvelopeError::NonCanonical { field },
            Wire::Trailing(bytes) => EnvelopeError::TrailingBytes { bytes },
        }
    }
}

impl From<Wire> for ManifestError {
    fn from(wire: Wire) -> Self {
        match wire {
            Wire::Truncated(field) | Wire::LengthPastEnd(field) => {
                ManifestError::Truncated { field }
            }
            Wire::Overflow(field) => ManifestError::Overflow { field },
            Wire::NonCanonical(field) => ManifestError::NonCanonical { field },
            Wire::Trailing(bytes) => ManifestError::TrailingBytes { bytes },
        }
    }
}

/// Reads postcard's primitives off a buffer, never past its end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    fn byte(&mut self, field: &'static str) -> Result<u8, Wire> {
        let (&first, rest) = self.rest.split_first().ok_or(Wire::Truncated(field))?;
        self.rest = rest;
        Ok(first)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], Wire> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(Wire::Truncated(field))?;
        self.rest = rest;
        Ok(*head)
    }

    /// An unsigned LEB128 varint (postcard's), in its shortest form only.
    fn varint(&mut self, field: &'static str, ty: VarintType) -> Result<u64, Wire> {
        let mut value: u128 = 0;
        for i in 0..ty.bytes_max {
            let byte = self.byte(field)?;
            value |= u128::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                if byte == 0 && i > 0 {
                    return Err(Wire::NonCanonical(field));
                }
                return u64::try_from(value)
                    .ok()
                    .filter(|v| *v <= ty.value_max)
                    .ok_or(Wire::Overflow(field));
            }
        }
        Err(Wire::Overflow(field))
    }

    /// A length-prefixed byte string, borrowed.
    fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], Wire> {
        let len = self.varint(field, U64)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= self.rest.len())
            .ok_or(Wire::LengthPastEnd(field))?;
        let (head, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(head)
    }

    fn finish(self) -> Result<(), Wire> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(Wire::Trailing(n)),
        }
    }
}

/// Appends `value` as an unsigned LEB128 varint in its shortest form.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests;
