//! Why each flow of the engine can fail, one error enum per flow.
//!
//! Opening a device, a local operation, a merge, loading the document.

use tandem_storage::StoreError;
use tandem_transport::limits::DEVICE_NAME_BYTES_MAX;
use tandem_transport::AccountId;

use crate::delta::DeltaError;
use crate::doc::DocError;
use crate::limits::DELTAS_PER_BATCH_MAX;
use crate::model::*;
use crate::op::InvalidOp;
use crate::rules::Refused;

/// Why a device could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The store could not be opened: SQLite refused the file, a migration
    /// failed, or the file was written by a newer Tandem.
    #[error(transparent)]
    Store(#[from] tandem_storage::OpenError),
    /// The store opened, but reading the device's identity or state from it
    /// failed.
    #[error("reading the store: {0}")]
    Read(#[from] StoreError),
    /// The file belongs to another account.
    #[error("this device store belongs to account {found:?}, not {expected}")]
    AccountMismatch {
        /// The account named in the [`Config`](crate::Config).
        expected: AccountId,
        /// The account the store was created for.
        found: String,
    },
    /// The device name breaks its limit.
    #[error("the device name is {0} bytes, over the limit of {DEVICE_NAME_BYTES_MAX}")]
    DeviceNameTooLong(usize),
    /// The stored identity or document cannot be read back.
    #[error("the stored state is corrupt: {0}")]
    Corrupt(String),
}

/// Why a local operation was not performed. In every case nothing was
/// written and the device's state is as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    /// The operation breaks a size or count limit.
    #[error("invalid operation: {0}")]
    Invalid(#[from] InvalidOp),
    /// The current state does not allow it (unknown contact, group…).
    #[error("refused: {0}")]
    Refused(#[from] Refused),
    /// The operation names a message this device does not have.
    #[error("unknown message {0}")]
    UnknownMessage(MessageId),
    /// The message belongs to another conversation than the one named.
    #[error("message {message} is not in conversation {conversation}")]
    WrongConversation {
        /// The message the operation named.
        message: MessageId,
        /// The conversation the operation named, which the message is not in.
        conversation: ConversationId,
    },
    /// automerge failed to make the change; a defect rather than a state the
    /// app can fix.
    #[error("document: {0}")]
    Doc(#[from] DocError),
    /// The store failed (disk full, I/O error…); the in-memory document was
    /// reloaded from it.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Why a batch of remote deltas was not merged. In every case nothing of the
/// batch was written and the device's state is as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// More deltas than [`DELTAS_PER_BATCH_MAX`] in one batch.
    #[error("a batch of {0} deltas is over the limit of {DELTAS_PER_BATCH_MAX}")]
    BatchTooLarge(usize),
    /// One delta of an [`Engine::apply_remote`](crate::Engine::apply_remote)
    /// batch is bad; the whole batch is refused.
    #[error("delta {index} of the batch: {error}")]
    Delta {
        /// The bad delta's position in the batch as given, from 0.
        index: usize,
        /// Why the delta was refused.
        #[source]
        error: DeltaError,
    },
    /// One entry of an [`Engine::apply_relay`](crate::Engine::apply_relay)
    /// page is not a delta this build can merge; the whole page is refused.
    /// It is named by its relay log position, not by its place in the page,
    /// because entries at or before the cursor are dropped before decoding.
    #[error("relay log entry {seq}: {error}")]
    RelayEntry {
        /// The bad entry's position in the relay log.
        seq: u64,
        /// Why the delta was refused.
        #[source]
        error: DeltaError,
    },
    /// A relay page does not continue the log after the cursor: the caller
    /// must pull from the cursor instead.
    #[error("the relay log continues at {expected}, the page has {found}")]
    Gap {
        /// The relay log position this device needs next: its cursor plus one.
        expected: u64,
        /// The first position after the cursor that the page has.
        found: u64,
    },
    /// automerge refused a change (for example a sequence number reused with
    /// different content).
    #[error("document: {0}")]
    Doc(#[from] DocError),
    /// The store failed (disk full, I/O error…); the in-memory document was
    /// reloaded from it.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Why the document could not be (re)loaded from the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The stored snapshot or changes do not load as the account document.
    #[error("document: {0}")]
    Doc(#[from] DocError),
    /// Reading the document's chunks from the store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl From<LoadError> for OpError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Doc(d) => OpError::Doc(d),
            LoadError::Store(s) => OpError::Store(s),
        }
    }
}

impl From<LoadError> for ApplyError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Doc(d) => ApplyError::Doc(d),
            LoadError::Store(s) => ApplyError::Store(s),
        }
    }
}
