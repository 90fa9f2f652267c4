//! Deltas: the unit devices exchange, and their validated decoding.
//!
//! One delta is one user operation: the intent ([`Op`]), who made it and
//! when, and the automerge change it made to the account document (if any).
//!
//! The relay never looks inside a delta; it only stores the bytes under
//! their content id (blake3 of the bytes). That is what lets it stay simple
//! and, later, carry end-to-end encrypted deltas.

use serde::{Deserialize, Serialize};
use tandem_transport::{AccountId, ContentId, DeviceId};

use crate::limits::{DELTA_BYTES_MAX, ORIGIN_SEQ_MAX, READ_MARKERS_PER_DELTA_MAX};
use crate::model::{ConversationId, MessageId};
use crate::op::{InvalidOp, Op};

/// The delta format this build writes and reads.
pub const DELTA_FORMAT: u16 = 1;

/// One user operation as it travels between devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// Always [`DELTA_FORMAT`] when written by this build.
    pub format: u16,
    /// The account the delta belongs to; a device refuses deltas of any other
    /// account.
    pub account: AccountId,
    /// The device the operation was made on.
    pub origin: DeviceId,
    /// The operation's number on its device: 1, 2, 3… up to
    /// [`ORIGIN_SEQ_MAX`].
    pub origin_seq: u64,
    /// When the operation was made, by the origin device's clock.
    pub made_at_ms: i64,
    /// What the user did, so the device that merges the delta can name it in an
    /// event.
    pub op: Op,
    /// The automerge change the operation made, if it touched the document.
    pub change: Option<Vec<u8>>,
    /// The read markers the operation set (a mark-read, or clearing unread):
    /// resolved on the origin device, which knew the messages' times, and
    /// merged everywhere by `max`.
    pub read_markers: Vec<ReadMarker>,
}

/// A read marker: everything in `conversation` up to and including the
/// message `(at_ms, message)` is read. Markers are ordered by time, then id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadMarker {
    /// The conversation it applies to.
    pub conversation: ConversationId,
    /// The message's send time, in ms since the Unix epoch.
    pub at_ms: i64,
    /// The last read message.
    pub message: MessageId,
}

/// A delta's bytes as they are stored and sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EncodedDelta(pub Vec<u8>);

impl EncodedDelta {
    /// blake3 of the bytes: the id the relay stores the delta under.
    pub fn content_id(&self) -> ContentId {
        ContentId::of(&self.0)
    }
}

/// Why bytes from another device are not a delta this device can merge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeltaError {
    /// Larger than [`DELTA_BYTES_MAX`]; refused before decoding.
    #[error("a delta of {len} bytes is over the limit of {DELTA_BYTES_MAX}")]
    TooLarge {
        /// The delta's size, in bytes.
        len: usize,
    },
    /// The bytes do not decode as a delta.
    #[error("malformed delta: {0}")]
    Malformed(String),
    /// Written by a newer (or unknown) format.
    #[error("delta format {0} is not supported (this build reads {DELTA_FORMAT})")]
    UnsupportedFormat(u16),
    /// The delta belongs to another account.
    #[error("the delta belongs to account {found}, not {expected}")]
    ForeignAccount {
        /// This device's account.
        expected: AccountId,
        /// The account the delta names.
        found: AccountId,
    },
    /// The operation's number on its device is 0 or above
    /// [`ORIGIN_SEQ_MAX`]: no device gives it, and no store could keep it.
    #[error("origin_seq {0} is outside 1..={ORIGIN_SEQ_MAX}")]
    OriginSeqOutOfRange(u64),
    /// The operation breaks a limit.
    #[error("invalid operation: {0}")]
    InvalidOp(#[from] InvalidOp),
    /// The document change does not decode.
    #[error("malformed document change: {0}")]
    MalformedChange(String),
    /// A sealed envelope (format 2) that does not open: forged, altered,
    /// sealed under another key or account, or with a body this build
    /// refuses.
    #[error("sealed envelope refused: {0}")]
    Envelope(Box<crate::seal::OpenError>),
    /// A sealed envelope at a position of its origin's chain that holds
    /// another one already: the origin sealed two different envelopes
    /// there.
    #[error("a second envelope at chain position {chain_pos} of device {origin}")]
    ChainFork {
        /// The sealing device.
        origin: DeviceId,
        /// The position both claim.
        chain_pos: u64,
    },

    /// A sealed envelope this device cannot open yet, though it may later
    /// (see [`crate::engine::NeedsKey`]).
    #[error("{0}")]
    NeedsKey(crate::engine::NeedsKey),
    /// The document change was made by another device than the delta claims.
    #[error("the document change was made by another actor than the origin device {origin}")]
    ForgedOrigin {
        /// The device the delta claims it was made on.
        origin: DeviceId,
    },
}

/// How a relay entry that is a sealed envelope of this account was found
/// tampered with: what only the relay (or someone between it and this
/// device) can have done, since it holds neither the account key nor the
/// devices' signing keys. Nothing of such an entry merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tamper {
    /// The signature is not its origin's: forged, altered, or moved from
    /// another account.
    BadSignature,
    /// It does not decrypt under the account key with its header: altered,
    /// or sealed under another key.
    DoesNotDecrypt,
    /// It opened, and its body or kind is refused: a defect or a hostile
    /// linked device, not the relay.
    BadBody,
    /// Its origin's chain holds another envelope at its position, or
    /// another one before or after it than its header and theirs name.
    ChainFork,
}

impl DeltaError {
    /// Whether this refusal shows an envelope tampered with (as opposed to
    /// bytes this build cannot read, such as a newer format, which a
    /// device passes over).
    pub fn tamper(&self) -> Option<Tamper> {
        use crate::seal::OpenError;
        match self {
            DeltaError::Envelope(error) => match error.as_ref() {
                OpenError::BadSignature | OpenError::BadOriginKey => Some(Tamper::BadSignature),
                OpenError::Aead => Some(Tamper::DoesNotDecrypt),
                OpenError::Body(_) | OpenError::WrongKind(_) => Some(Tamper::BadBody),
                OpenError::Envelope(_) => None,
            },
            DeltaError::ChainFork { .. } => Some(Tamper::ChainFork),
            _ => None,
        }
    }
}

impl Delta {
    /// The id of the message this delta sends, for a
    /// [`MessageOp::Send`](crate::op::MessageOp::Send): the origin device in
    /// hex, a dot, and the operation's number there, so it is unique per
    /// device and operation and every device derives the same one.
    pub(crate) fn sent_message_id(&self) -> MessageId {
        MessageId::new(format!("{}.{}", self.origin.to_hex(), self.origin_seq))
            .expect("a hex device id and a number make a valid id")
    }

    /// Encodes the delta; deterministic, so the content id is too.
    pub fn encode(&self) -> EncodedDelta {
        EncodedDelta(postcard::to_stdvec(self).expect("a delta always encodes"))
    }

    /// Decodes and validates a delta for `account`. Validation covers the
    /// size, the format, the account, the operation's limits and the
    /// change's author; it never panics on any input.
    pub fn decode(
        bytes: &[u8],
        account: &AccountId,
    ) -> Result<(Delta, Option<automerge::Change>), DeltaError> {
        if bytes.len() > DELTA_BYTES_MAX {
            return Err(DeltaError::TooLarge { len: bytes.len() });
        }
        // The format number comes first so that a newer format is reported
        // as such rather than as garbage.
        let (format, _) = postcard::take_from_bytes::<u16>(bytes)
            .map_err(|e| DeltaError::Malformed(e.to_string()))?;
        if format != DELTA_FORMAT {
            return Err(DeltaError::UnsupportedFormat(format));
        }
        let (delta, rest) = postcard::take_from_bytes::<Delta>(bytes)
            .map_err(|e| DeltaError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(DeltaError::Malformed(format!(
                "{} trailing bytes",
                rest.len()
            )));
        }
        if &delta.account != account {
            return Err(DeltaError::ForeignAccount {
                expected: account.clone(),
                found: delta.account,
            });
        }
        if !(1..=ORIGIN_SEQ_MAX).contains(&delta.origin_seq) {
            return Err(DeltaError::OriginSeqOutOfRange(delta.origin_seq));
        }
        delta.op.validate()?;
        check_read_markers(&delta.read_markers)?;
        let change = match &delta.change {
            None => None,
            Some(raw) => Some(decode_change(raw, delta.origin)?),
        };
        Ok((delta, change))
    }
}

/// Checks the read markers one operation carries: at most
/// [`READ_MARKERS_PER_DELTA_MAX`]. Shared by deltas and sealed envelopes
/// (`crate::seal`), so both refuse exactly the same.
pub(crate) fn check_read_markers(markers: &[ReadMarker]) -> Result<(), DeltaError> {
    if markers.len() > READ_MARKERS_PER_DELTA_MAX {
        return Err(DeltaError::InvalidOp(InvalidOp::TooMany {
            field: "read markers",
            len: markers.len(),
            max: READ_MARKERS_PER_DELTA_MAX,
        }));
    }
    Ok(())
}

/// Decodes one operation's automerge change and checks that `origin` made
/// it. Shared by deltas and sealed envelopes (`crate::seal`).
pub(crate) fn decode_change(raw: &[u8], origin: DeviceId) -> Result<automerge::Change, DeltaError> {
    let change = automerge::Change::from_bytes(raw.to_vec())
        .map_err(|e| DeltaError::MalformedChange(e.to_string()))?;
    if change.actor_id().to_bytes() != origin.0 {
        return Err(DeltaError::ForgedOrigin { origin });
    }
    Ok(change)
}
