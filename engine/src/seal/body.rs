//! What an envelope encrypts (docs/design-epochs-e2ee.md §1.2): the body
//! [`BodyV1`] and its plaintext framing.
//!
//! Plaintext = `encoding` (one byte: 0 postcard, 1 DEFLATE of postcard) ‖
//! payload ‖ zeros up to the next multiple of [`ENVELOPE_PAD_BYTES`]. A
//! payload of [`ENVELOPE_DEFLATE_FROM_BYTES`] or more is DEFLATE'd (raw
//! DEFLATE, level 1) when sealed; either encoding is read. The padding
//! must be zeros and shorter than one block. Inflating stops as soon as the
//! output would pass [`ENVELOPE_PLAINTEXT_BYTES_MAX`], so memory stays
//! bounded whatever the input.
//!
//! The body's checks reuse the delta's ([`Op::validate`], the read-marker
//! limit, the change decoding and its actor check), so an operation is
//! refused in an envelope exactly when it is refused in a delta.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use serde::{Deserialize, Serialize};
use tandem_transport::DeviceId;

use crate::delta::{check_read_markers, decode_change, DeltaError, ReadMarker};
use crate::limits::{
    ENVELOPE_DEFLATE_FROM_BYTES, ENVELOPE_PAD_BYTES, ENVELOPE_PLAINTEXT_BYTES_MAX,
    OPS_PER_ENVELOPE_MAX, ORIGIN_SEQ_MAX, VIEW_ENTRIES_PER_ENVELOPE_MAX,
};
use crate::op::Op;

/// The body's encoding byte: postcard as it is.
const ENCODING_POSTCARD: u8 = 0;
/// The body's encoding byte: raw DEFLATE of the postcard bytes.
const ENCODING_DEFLATE: u8 = 1;

/// The body of an ops envelope: 0 to [`OPS_PER_ENVELOPE_MAX`] operations of
/// its origin device, numbered from `first_origin_seq`, with their
/// automerge changes. An envelope with no operations is a checkpoint.
///
/// The account (bound as associated data), the origin (in the clear
/// header), each operation's number (`first_origin_seq` + its index) and
/// the format (the header's) are not repeated here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyV1 {
    /// When it was sealed, by the origin's clock (ms since the Unix epoch).
    pub sealed_at_ms: i64,
    /// The number of the first operation; the next are +1, +2…; 0 exactly
    /// when `ops` is empty.
    pub first_origin_seq: u64,
    /// The operations, in their order on the origin.
    pub ops: Vec<OpEntry>,
    /// The operations' automerge changes.
    pub changes: Changes,
    /// The origin's relay-confirmed view of the roster's chains (design
    /// §6.1; carried, not yet interpreted: the roster is step 3).
    pub view: Vec<ViewEntry>,
}

/// One operation in a body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpEntry {
    /// When it was made, by the origin's clock.
    pub made_at_ms: i64,
    /// What the user did.
    pub op: Op,
    /// The read markers it set.
    pub read_markers: Vec<ReadMarker>,
    /// Its document change, as an index into the body's changes. The
    /// operations that have one name the changes 0, 1, 2… in order, and
    /// every change is named by exactly one operation.
    pub change: Option<u32>,
}

/// The automerge changes of a body's operations.
///
/// Only raw change chunks exist. The design's `Bundle` (one
/// `Automerge::bundle` of the same changes, issue 16's measurement) would
/// take the next variant, 1; until then a body using it does not decode
/// ([`BodyError::Malformed`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Changes {
    /// Each change's bytes (`automerge::Change::raw_bytes`), in operation
    /// order.
    Raw(Vec<Vec<u8>>),
}

/// The origin's view of one roster device's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewEntry {
    /// The device's index in the roster.
    pub roster_index: u16,
    /// The highest chain position of it the relay confirmed to the origin.
    pub chain_pos: u64,
    /// The first 8 bytes of that envelope's content id.
    pub head8: [u8; 8],
}

/// Why a body (or its plaintext) is refused. Every case refuses the whole
/// envelope; none is a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The plaintext is not a whole number of padding blocks.
    #[error("plaintext of {len} bytes is not padded to {ENVELOPE_PAD_BYTES}")]
    Unpadded {
        /// Its length.
        len: usize,
    },
    /// The encoding byte names no encoding.
    #[error("body encoding {0} is unknown")]
    UnknownEncoding(u8),
    /// A padding byte is not zero.
    #[error("the body's padding is not all zeros")]
    NonZeroPadding,
    /// More bytes follow the payload than one padding block.
    #[error("{bytes} bytes after the body: more than padding")]
    TrailingBytes {
        /// How many.
        bytes: usize,
    },
    /// The DEFLATE stream is corrupt.
    #[error("the body does not inflate: {0}")]
    Inflate(String),
    /// The DEFLATE stream ends before its end marker.
    #[error("the body's DEFLATE stream is truncated")]
    TruncatedDeflate,
    /// The payload is, or inflates to, more than
    /// [`ENVELOPE_PLAINTEXT_BYTES_MAX`]; inflation stopped there.
    #[error("the body is over {ENVELOPE_PLAINTEXT_BYTES_MAX} bytes")]
    PlaintextTooLarge,
    /// The payload does not decode as a body.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// More than [`OPS_PER_ENVELOPE_MAX`] operations.
    #[error("{len} operations in one envelope, over the limit of {OPS_PER_ENVELOPE_MAX}")]
    TooManyOps {
        /// How many.
        len: usize,
    },
    /// More than [`VIEW_ENTRIES_PER_ENVELOPE_MAX`] view entries.
    #[error("{len} view entries, over the limit of {VIEW_ENTRIES_PER_ENVELOPE_MAX}")]
    TooManyViewEntries {
        /// How many.
        len: usize,
    },
    /// The operations' numbers are not all in 1..=[`ORIGIN_SEQ_MAX`] (this
    /// includes `first_origin_seq + ops.len() - 1` overflowing), or a body
    /// without operations has a first number other than 0.
    #[error("operations numbered from {first} ({ops} of them) are outside 1..={ORIGIN_SEQ_MAX}")]
    OriginSeqOutOfRange {
        /// `first_origin_seq`.
        first: u64,
        /// How many operations.
        ops: usize,
    },
    /// The deltas to seal are not consecutive operations of one device
    /// ([`BodyV1::from_deltas`]): the one at `index` has another origin or
    /// number than the run needs.
    #[error("delta {index} does not continue the run of one device's operations")]
    NotOneRun {
        /// Its index in the input.
        index: usize,
    },
    /// An operation breaks a delta's rule: a limit of the operation, the
    /// read-marker limit, a change that does not decode or that another
    /// actor than the origin made.
    #[error("operation {index}: {source}")]
    Op {
        /// Its index in the body.
        index: usize,
        /// What is wrong, as a delta would say it.
        source: DeltaError,
    },
    /// An operation names a change out of order (the operations with a
    /// change name 0, 1, 2… in order), or past the last one.
    #[error("operation {index} names change {change} out of order")]
    ChangeIndex {
        /// The operation's index.
        index: usize,
        /// The change it names.
        change: u32,
    },
    /// Changes no operation names.
    #[error("{unnamed} changes are named by no operation")]
    UnnamedChanges {
        /// How many.
        unnamed: usize,
    },
}

impl BodyV1 {
    /// The body of one envelope holding `deltas`: consecutive operations
    /// of one device, as its outbox holds them, sealed at `sealed_at_ms`.
    /// Each delta's fields move into its [`OpEntry`] and its change into
    /// the body's changes, in order. No deltas make a checkpoint (first
    /// number 0). Deltas of several devices, or with a gap or a repeat in
    /// their numbers, are [`BodyError::NotOneRun`].
    pub fn from_deltas(
        deltas: impl IntoIterator<Item = crate::delta::Delta>,
        sealed_at_ms: i64,
    ) -> Result<BodyV1, BodyError> {
        let mut ops = Vec::new();
        let mut changes = Vec::new();
        let mut run: Option<(DeviceId, u64)> = None;
        for (index, delta) in deltas.into_iter().enumerate() {
            let first = *run.get_or_insert((delta.origin, delta.origin_seq));
            let expected = first.1.checked_add(index as u64);
            if delta.origin != first.0 || Some(delta.origin_seq) != expected {
                return Err(BodyError::NotOneRun { index });
            }
            let change = delta.change.map(|raw| {
                changes.push(raw);
                changes.len() as u32 - 1
            });
            ops.push(OpEntry {
                made_at_ms: delta.made_at_ms,
                op: delta.op,
                read_markers: delta.read_markers,
                change,
            });
        }
        Ok(BodyV1 {
            sealed_at_ms,
            first_origin_seq: run.map_or(0, |(_, first)| first),
            ops,
            changes: Changes::Raw(changes),
            view: Vec::new(),
        })
    }

    /// The number of the operation at `index`, for a body that passed
    /// [`BodyV1::check`].
    pub fn origin_seq(&self, index: usize) -> u64 {
        self.first_origin_seq + index as u64
    }

    /// Checks every rule of a body sealed by `origin` and returns its
    /// decoded changes in order: the limits, the numbering, each
    /// operation's validation and read markers (the delta's checks), the
    /// change indices, and that `origin` made every change.
    pub fn check(&self, origin: DeviceId) -> Result<Vec<automerge::Change>, BodyError> {
        if self.ops.len() > OPS_PER_ENVELOPE_MAX {
            return Err(BodyError::TooManyOps {
                len: self.ops.len(),
            });
        }
        if self.view.len() > VIEW_ENTRIES_PER_ENVELOPE_MAX {
            return Err(BodyError::TooManyViewEntries {
                len: self.view.len(),
            });
        }
        let numbered = match self.ops.len() {
            0 => self.first_origin_seq == 0,
            n => {
                self.first_origin_seq >= 1
                    && self
                        .first_origin_seq
                        .checked_add(n as u64 - 1)
                        .is_some_and(|last| last <= ORIGIN_SEQ_MAX)
            }
        };
        if !numbered {
            return Err(BodyError::OriginSeqOutOfRange {
                first: self.first_origin_seq,
                ops: self.ops.len(),
            });
        }
        let Changes::Raw(raw) = &self.changes;
        let mut named = 0usize;
        for (index, entry) in self.ops.iter().enumerate() {
            let op_error = |source: DeltaError| BodyError::Op { index, source };
            entry
                .op
                .validate()
                .map_err(|e| op_error(DeltaError::InvalidOp(e)))?;
            check_read_markers(&entry.read_markers).map_err(op_error)?;
            if let Some(change) = entry.change {
                if change as usize != named || named >= raw.len() {
                    return Err(BodyError::ChangeIndex { index, change });
                }
                named += 1;
            }
        }
        if named != raw.len() {
            return Err(BodyError::UnnamedChanges {
                unnamed: raw.len() - named,
            });
        }
        let mut changes = Vec::with_capacity(raw.len());
        let mut next = 0;
        for (index, entry) in self.ops.iter().enumerate() {
            if entry.change.is_some() {
                let change = decode_change(&raw[next], origin)
                    .map_err(|source| BodyError::Op { index, source })?;
                changes.push(change);
                next += 1;
            }
        }
        Ok(changes)
    }

    /// The padded plaintext: the encoding byte, the postcard payload
    /// (DEFLATE'd from [`ENVELOPE_DEFLATE_FROM_BYTES`]), zeros to the next
    /// multiple of [`ENVELOPE_PAD_BYTES`]. Deterministic.
    pub fn to_plaintext(&self) -> Result<Vec<u8>, BodyError> {
        let payload = postcard::to_stdvec(self).map_err(|e| BodyError::Malformed(e.to_string()))?;
        if payload.len() > ENVELOPE_PLAINTEXT_BYTES_MAX {
            return Err(BodyError::PlaintextTooLarge);
        }
        let mut plaintext;
        if payload.len() >= ENVELOPE_DEFLATE_FROM_BYTES {
            plaintext = Vec::with_capacity(payload.len() / 2 + ENVELOPE_PAD_BYTES);
            plaintext.push(ENCODING_DEFLATE);
            deflate(&payload, &mut plaintext)?;
        } else {
            plaintext = Vec::with_capacity(payload.len() + ENVELOPE_PAD_BYTES);
            plaintext.push(ENCODING_POSTCARD);
            plaintext.extend_from_slice(&payload);
        }
        let padded = plaintext.len().div_ceil(ENVELOPE_PAD_BYTES) * ENVELOPE_PAD_BYTES;
        plaintext.resize(padded, 0);
        Ok(plaintext)
    }

    /// Reads a padded plaintext: the padding, the encoding, the payload
    /// (inflated within [`ENVELOPE_PLAINTEXT_BYTES_MAX`]) and that nothing
    /// but zero padding follows it. The body's rules are checked apart, by
    /// [`BodyV1::check`].
    pub fn from_plaintext(plaintext: &[u8]) -> Result<BodyV1, BodyError> {
        if plaintext.is_empty() || !plaintext.len().is_multiple_of(ENVELOPE_PAD_BYTES) {
            return Err(BodyError::Unpadded {
                len: plaintext.len(),
            });
        }
        let (encoding, rest) = (plaintext[0], &plaintext[1..]);
        match encoding {
            ENCODING_POSTCARD => {
                if rest.len() > ENVELOPE_PLAINTEXT_BYTES_MAX + ENVELOPE_PAD_BYTES {
                    return Err(BodyError::PlaintextTooLarge);
                }
                let (body, tail) = take_body(rest)?;
                check_padding(tail)?;
                Ok(body)
            }
            ENCODING_DEFLATE => {
                let mut payload = Vec::new();
                let tail = inflate_into(rest, &mut payload)?;
                check_padding(tail)?;
                let (body, inside) = take_body(&payload)?;
                if !inside.is_empty() {
                    return Err(BodyError::TrailingBytes {
                        bytes: inside.len(),
                    });
                }
                Ok(body)
            }
            other => Err(BodyError::UnknownEncoding(other)),
        }
    }
}

fn take_body(bytes: &[u8]) -> Result<(BodyV1, &[u8]), BodyError> {
    postcard::take_from_bytes::<BodyV1>(bytes).map_err(|e| BodyError::Malformed(e.to_string()))
}

/// What follows the payload: fewer than [`ENVELOPE_PAD_BYTES`] zeros.
fn check_padding(tail: &[u8]) -> Result<(), BodyError> {
    if tail.len() >= ENVELOPE_PAD_BYTES {
        return Err(BodyError::TrailingBytes { bytes: tail.len() });
    }
    if tail.iter().any(|&b| b != 0) {
        return Err(BodyError::NonZeroPadding);
    }
    Ok(())
}

/// Raw DEFLATE, level 1 (design §8: level 6 compresses a few points better
/// for six times the time).
pub(super) fn deflate(input: &[u8], out: &mut Vec<u8>) -> Result<(), BodyError> {
    let mut compress = Compress::new(Compression::fast(), false);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(256));
        }
        let consumed = compress.total_in() as usize;
        let status = compress
            .compress_vec(&input[consumed..], out, FlushCompress::Finish)
            .map_err(|e| BodyError::Inflate(e.to_string()))?;
        if status == Status::StreamEnd {
            return Ok(());
        }
    }
}

/// Inflates a raw DEFLATE stream at the start of `input` into `out`
/// (empty on entry), never growing `out` past
/// [`ENVELOPE_PLAINTEXT_BYTES_MAX`] + 1 bytes of capacity. Returns the
/// input after the stream's end.
pub(super) fn inflate_into<'a>(input: &'a [u8], out: &mut Vec<u8>) -> Result<&'a [u8], BodyError> {
    const LIMIT: usize = ENVELOPE_PLAINTEXT_BYTES_MAX + 1;
    let mut decompress = Decompress::new(false);
    out.clear();
    out.reserve_exact(input.len().saturating_mul(4).clamp(4096, LIMIT));
    loop {
        if out.len() == out.capacity() {
            let grown = (out.capacity() * 2).min(LIMIT);
            out.reserve_exact(grown - out.len());
        }
        let (in_before, out_before) = (decompress.total_in(), out.len());
        let status = decompress
            .decompress_vec(&input[in_before as usize..], out, FlushDecompress::None)
            .map_err(|e| BodyError::Inflate(e.to_string()))?;
        if out.len() > ENVELOPE_PLAINTEXT_BYTES_MAX {
            return Err(BodyError::PlaintextTooLarge);
        }
        if status == Status::StreamEnd {
            return Ok(&input[decompress.total_in() as usize..]);
        }
        let progressed = decompress.total_in() != in_before || out.len() != out_before;
        if !progressed {
            // Room to write and nothing it could read: the stream stops
            // before its end.
            return Err(BodyError::TruncatedDeflate);
        }
    }
}
