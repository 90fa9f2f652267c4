//! The device engine: one account on one device.

use std::cell::OnceCell;
use std::collections::{btree_map, BTreeMap, BTreeSet};
use std::path::PathBuf;

use tandem_storage::device::DeviceTx;
use tandem_storage::device::{
    BlockedRow, ContactRow, ConversationFlags, ConversationRow, DeltaRow, DeviceStore, DocChunk,
    EventRow, FlagsUpdate, GroupRow, Identity, Location, MessageRecord, MessageView, MetaKey,
    Receipt, ThreadRow,
};
use tandem_storage::StoreError;
use tandem_transport::{AccountId, ContentId, DeviceId, Platform};

use crate::delta::{Delta, DeltaError, EncodedDelta, ReadMarker, DELTA_FORMAT};
use crate::doc::{AccountDoc, DocError, Edit, EditFailure, Refused};
use crate::event::*;
use crate::limits::{DELTAS_PER_BATCH_MAX, DOC_CHANGES_PER_SNAPSHOT};
use crate::model::*;
use crate::op::*;
use tandem_transport::limits::DEVICE_NAME_BYTES_MAX;

/// Where the device store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorePath {
    /// A SQLite file, created on first open.
    File(PathBuf),
    /// In memory only: for tests and simulations; nothing survives a drop.
    Memory,
}

/// How to open a device.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the device store lives: a file for an app, memory for tests and
    /// simulations.
    pub store: StorePath,
    /// The account (user) this device belongs to.
    pub account: AccountId,
    /// Shown in the device list. Used when the device is first created.
    pub device_name: String,
    /// Used when the device is first created.
    pub platform: Platform,
}

/// Who this device is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// The account (user) the device belongs to.
    pub account: AccountId,
    /// The device's random 128-bit id, drawn once when the device was created
    /// and kept in its store.
    pub device_id: DeviceId,
    /// The name shown in the account's device list, fixed when the device was
    /// created.
    pub name: String,
    /// The device's platform, fixed when the device was created.
    pub platform: Platform,
    /// When the device was created: the `now_ms` of the first [`Engine::open`].
    pub created_at_ms: i64,
}

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
        /// The account named in the [`Config`].
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
    /// One delta of the batch is bad; the whole batch is refused.
    #[error("delta {index} of the batch: {error}")]
    Delta {
        /// The bad delta's position in the batch, from 0.
        index: usize,
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

/// One entry of the relay's log: its position and the delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayDelta {
    /// The entry's position in the account's relay log, from 1.
    pub seq: u64,
    /// The delta's bytes, as the relay stores them.
    pub delta: EncodedDelta,
}

/// A batch being merged: new deltas, known ones with their relay position,
/// and the relay cursor to store with it.
struct Batch<'a> {
    incoming: Vec<Incoming<'a>>,
    known: Vec<(ContentId, u64)>,
    cursor: Option<u64>,
}

struct Incoming<'a> {
    delta: Delta,
    change: Option<automerge::Change>,
    encoded: &'a EncodedDelta,
    relay_seq: Option<u64>,
}

/// A delta that may merge in this batch.
struct Candidate {
    delta: Delta,
    /// Its document change's hash and dependencies, if it has a change.
    hash: Option<automerge::ChangeHash>,
    deps: Vec<automerge::ChangeHash>,
    content_id: ContentId,
    /// New in this batch (else it waited from an earlier one).
    is_new: bool,
    /// Whether the same device's previous operation merged before this
    /// batch.
    previous_merged: bool,
}

impl Candidate {
    fn new(
        delta: Delta,
        change: Option<&automerge::Change>,
        content_id: ContentId,
        is_new: bool,
    ) -> Candidate {
        Candidate {
            hash: change.map(|c| c.hash()),
            deps: change.map(|c| c.deps().to_vec()).unwrap_or_default(),
            delta,
            content_id,
            is_new,
            previous_merged: false,
        }
    }
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

/// What a performed operation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Performed {
    /// The content id of the delta that records it.
    pub content_id: ContentId,
    /// The operation's number on this device.
    pub origin_seq: u64,
    /// The new message's id, for a send.
    pub message_id: Option<MessageId>,
}

/// What merging a batch did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// Deltas new to this device.
    pub new: usize,
    /// Deltas already known (sent twice, or this device's own).
    pub duplicate: usize,
    /// Deltas stored but waiting for a change they depend on.
    pub waiting: usize,
    /// Deltas merged now that had been waiting.
    pub unblocked: usize,
    /// Multi-device events journaled by this merge.
    pub events: usize,
    /// What the merge changed.
    pub changed: Changed,
}

/// A position in this device's delta log, for [`Engine::export`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ExportCursor(pub i64);

/// A page of exported deltas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The page's deltas, oldest first; empty when this device holds nothing
    /// after the cursor.
    pub deltas: Vec<EncodedDelta>,
    /// Pass this to the next call to continue after this page.
    pub next: ExportCursor,
}

/// What an event is stored as in the journal; the sequence number, source
/// device and time are columns of their own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct StoredEvent {
    kind: EventKind,
    superseded: bool,
}

/// How events reach the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventDelivery {
    /// The app acknowledges with [`Engine::ack_events`]; until then
    /// [`Engine::next_event`] returns the same event again, also after a
    /// restart.
    #[default]
    Manual,
    /// [`Engine::next_event`] acknowledges each event as it returns it.
    AutoAck,
}

/// What a merge changed, for a UI to refresh exactly that.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changed {
    /// Conversation keys (`u:bob`, `g:team`…).
    pub conversations: Vec<String>,
    /// User ids whose contact entry changed (added, accepted, removed, remark).
    pub contacts: Vec<String>,
    /// User ids that went on or off the blocklist.
    pub blocklist: Vec<String>,
    /// Ids of groups whose row changed, including groups that are gone.
    pub groups: Vec<String>,
    /// Ids of threads whose row changed, including threads that are gone.
    pub threads: Vec<String>,
}

/// The whole projected state of the account on this device, in a stable
/// order: what two converged devices agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    /// Every conversation the account has settings or messages in, deleted ones
    /// included, by key.
    pub conversations: Vec<ConversationRow>,
    /// The raw message log, deleted and recalled messages included.
    pub messages: Vec<MessageView>,
    /// Every contact, pending or accepted, by user id.
    pub contacts: Vec<ContactRow>,
    /// Every blocked user, by user id.
    pub blocklist: Vec<BlockedRow>,
    /// Every group this account knows (as a member or applicant), by id.
    pub groups: Vec<GroupRow>,
    /// Every thread this account takes part in, by id.
    pub threads: Vec<ThreadRow>,
}

/// What an operation touched, to be projected again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Entity {
    Conversation(String),
    Contact(String),
    Blocked(String),
    Group(String),
    Thread(String),
}

/// One account on one device: the account document, the message log and
/// the projections, in one SQLite store.
///
/// # Driving it
///
/// The engine does no IO besides its own store, reads no clock and draws no
/// randomness: the caller passes `now_ms` to every call that records time
/// and a device id generator to [`Engine::open`]. That is what lets a
/// simulation drive many devices deterministically.
///
/// - [`Engine::perform`] records a local operation: the document change,
///   message rows, projections and the outbox entry commit in one
///   transaction.
/// - [`Engine::export`] pages through the deltas this device holds; another
///   device of the account merges them with [`Engine::apply_remote`], in one
///   transaction per batch. Merging is idempotent and order-independent
///   within causal limits: a delta whose document change depends on one not
///   seen yet is stored and merged when the dependency arrives.
/// - Queries ([`Engine::conversations`], [`Engine::messages`],
///   [`Engine::contacts`]…) read the projections, never the document.
///
/// Every error leaves the store and the in-memory document exactly as they
/// were before the call.
pub struct Engine {
    store: DeviceStore,
    /// Loaded on first use; emptied after a failed write so the next use
    /// reloads what the store holds.
    doc: OnceCell<AccountDoc>,
    device: DeviceIdentity,
    next_origin_seq: u64,
    delivery: EventDelivery,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens a device, creating it on first open: then `new_device_id` is
    /// called once for its random 128-bit id, which is persisted.
    pub fn open(
        config: Config,
        now_ms: i64,
        new_device_id: impl FnOnce() -> DeviceId,
    ) -> Result<Engine, OpenError> {
        let location = match &config.store {
            StorePath::File(path) => Location::File(path),
            StorePath::Memory => Location::Memory,
        };
        let mut store = DeviceStore::open(location)?;
        let identity = match store.identity()? {
            Some(identity) => identity,
            None => {
                if config.device_name.len() > DEVICE_NAME_BYTES_MAX {
                    return Err(OpenError::DeviceNameTooLong(config.device_name.len()));
                }
                let identity = Identity {
                    account: config.account.as_str().to_owned(),
                    device_id: new_device_id().0,
                    device_name: config.device_name.clone(),
                    platform: config.platform.as_str().to_owned(),
                    created_at_ms: now_ms,
                };
                let tx = store.transaction()?;
                tx.insert_identity(&identity)?;
                tx.append_doc_change(&AccountDoc::genesis())?;
                tx.set_meta(MetaKey::NextOriginSeq, 1)?;
                tx.commit()?;
                identity
            }
        };
        if identity.account != config.account.as_str() {
            return Err(OpenError::AccountMismatch {
                expected: config.account,
                found: identity.account,
            });
        }
        let device = DeviceIdentity {
            account: config.account,
            device_id: DeviceId(identity.device_id),
            name: identity.device_name,
            platform: identity
                .platform
                .parse()
                .unwrap_or_else(|e: std::convert::Infallible| match e {}),
            created_at_ms: identity.created_at_ms,
        };
        let next_origin_seq = store
            .meta(MetaKey::NextOriginSeq)?
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| OpenError::Corrupt("next_origin_seq is missing or negative".into()))?;
        // The document loads on first use (a local operation or a merge):
        // queries are served from the projections, so opening stays fast
        // however long the history.
        Ok(Engine {
            store,
            doc: OnceCell::new(),
            device,
            next_origin_seq,
            delivery: EventDelivery::default(),
        })
    }

    /// This device's identity.
    pub fn device(&self) -> &DeviceIdentity {
        &self.device
    }

    /// Performs one local operation at `now_ms` and records it for the other
    /// devices.
    pub fn perform(&mut self, now_ms: i64, op: Op) -> Result<Performed, OpError> {
        op.validate()?;
        let read_markers = self.resolve(&op)?;
        let me = self.device.account.as_str().to_owned();
        let edit = self
            .doc_mut()?
            .edit(&op, &me, now_ms)
            .map_err(|e| match e {
                EditFailure::Refused(r) => OpError::Refused(r),
                EditFailure::Doc(d) => OpError::Doc(d),
            })?;
        let origin_seq = self.next_origin_seq;
        let delta = Delta {
            format: DELTA_FORMAT,
            account: self.device.account.clone(),
            origin: self.device.device_id,
            origin_seq,
            made_at_ms: now_ms,
            op,
            change: match edit {
                Edit::Unchanged => None,
                Edit::Changed(bytes) => Some(bytes),
            },
            read_markers,
        };
        let encoded = delta.encode();
        let content_id = encoded.content_id();
        let result = self.commit_local(&delta, &encoded);
        if let Err(error) = result {
            // The document already holds the change; the store does not.
            // Reload so the two agree again.
            self.reload_doc();
            return Err(error);
        }
        self.next_origin_seq += 1;
        let message_id = match &delta.op {
            Op::Message(MessageOp::Send { .. }) => Some(sent_message_id(&delta)),
            _ => None,
        };
        Ok(Performed {
            content_id,
            origin_seq,
            message_id,
        })
    }

    fn commit_local(&mut self, delta: &Delta, encoded: &EncodedDelta) -> Result<(), OpError> {
        let account = self.device.account.as_str();
        let snapshot = self.snapshot_if_due(delta.change.is_some())?;
        let doc = loaded(&self.doc, &self.store, &self.device)?;
        let tx = self.store.transaction()?;
        let mut touched = BTreeSet::new();
        if let Some(change) = &delta.change {
            store_doc_change(&tx, change, snapshot.as_deref())?;
        }
        message_effects(&tx, delta, account, &mut touched)?;
        marker_effects(&tx, delta, &mut touched)?;
        touched.extend(touched_by(&delta.op));
        tx.insert_delta(&delta_row(delta, encoded, true))?;
        tx.set_meta(MetaKey::NextOriginSeq, delta.origin_seq as i64 + 1)?;
        project(&tx, doc, account, &touched)?;
        tx.commit()?;
        Ok(())
    }

    /// A snapshot of the document when enough changes piled up since the
    /// last one (counting the one about to be written).
    fn snapshot_if_due(&self, adding_change: bool) -> Result<Option<Vec<u8>>, LoadError> {
        let since = self
            .store
            .meta(MetaKey::DocChangesSinceSnapshot)?
            .unwrap_or(0);
        if adding_change && since + 1 >= DOC_CHANGES_PER_SNAPSHOT {
            Ok(Some(self.doc()?.save()))
        } else {
            Ok(None)
        }
    }

    /// The document, loaded from the store on first use.
    fn doc(&self) -> Result<&AccountDoc, LoadError> {
        loaded(&self.doc, &self.store, &self.device)
    }

    fn doc_mut(&mut self) -> Result<&mut AccountDoc, LoadError> {
        loaded(&self.doc, &self.store, &self.device)?;
        Ok(self.doc.get_mut().expect("loaded just now"))
    }

    /// Looks up what the operation needs from the message log, and checks
    /// that the messages it names exist.
    fn resolve(&self, op: &Op) -> Result<Vec<ReadMarker>, OpError> {
        let mut markers = Vec::new();
        let mut marker = |key: String, at_ms: i64, id: String| -> Result<(), OpError> {
            markers.push(ReadMarker {
                conversation: key.parse().map_err(|e| {
                    StoreError::Corrupt(format!("stored conversation id {key:?}: {e}"))
                })?,
                at_ms,
                message: MessageId::new(id.clone())
                    .map_err(|e| StoreError::Corrupt(format!("stored message id {id:?}: {e}")))?,
            });
            Ok(())
        };
        match op {
            Op::Message(MessageOp::Recall { message })
            | Op::Message(MessageOp::Receipt { message, .. }) => {
                self.known_message(message)?;
            }
            Op::Message(MessageOp::DeleteForMe { messages }) => {
                for message in messages {
                    self.known_message(message)?;
                }
            }
            Op::Conversation(ConversationOp::MarkRead {
                conversation,
                message,
            }) => {
                let view = self.known_message(message)?;
                if view.conversation != conversation.key() {
                    return Err(OpError::WrongConversation {
                        message: message.clone(),
                        conversation: conversation.clone(),
                    });
                }
                marker(view.conversation, view.sent_at_ms, view.id)?;
            }
            Op::Conversation(ConversationOp::ClearUnread { conversation }) => {
                let key = conversation.key();
                if let Some((at, id)) = self.store.latest_message(&key)? {
                    marker(key, at, id)?;
                }
            }
            Op::Conversation(ConversationOp::ClearAllUnread) => {
                for key in self.store.unread_conversations()? {
                    if let Some((at, id)) = self.store.latest_message(&key)? {
                        marker(key, at, id)?;
                    }
                }
            }
            _ => {}
        }
        Ok(markers)
    }

    fn known_message(&self, id: &MessageId) -> Result<MessageView, OpError> {
        self.store
            .message(id.as_str())?
            .ok_or_else(|| OpError::UnknownMessage(id.clone()))
    }

    /// Up to `limit` deltas this device holds (its own and those it merged),
    /// after `after`, oldest first. Another device of the account merges
    /// them with [`Engine::apply_remote`].
    pub fn export(&self, after: ExportCursor, limit: usize) -> Result<Export, StoreError> {
        let rows = self.store.deltas_after(after.0, limit)?;
        let next = rows.last().map_or(after, |r| ExportCursor(r.local_seq));
        Ok(Export {
            deltas: rows.into_iter().map(|r| EncodedDelta(r.bytes)).collect(),
            next,
        })
    }

    /// Merges a batch of deltas from other devices of the account, in one
    /// transaction: all of it or, on any error, none of it.
    pub fn apply_remote(&mut self, batch: &[EncodedDelta]) -> Result<Applied, ApplyError> {
        let entries: Vec<_> = batch.iter().map(|d| (None, d)).collect();
        self.apply_batch(entries, None)
    }

    /// Merges a page of the relay's log, in one transaction with the new
    /// relay cursor. The page must continue the log right after
    /// [`Engine::relay_cursor`]; entries at or before the cursor (a page
    /// fetched twice) are skipped. This device's own deltas coming back
    /// leave the outbox here too, even if their push acknowledgement was
    /// lost.
    pub fn apply_relay(&mut self, page: &[RelayDelta]) -> Result<Applied, ApplyError> {
        if page.len() > DELTAS_PER_BATCH_MAX {
            return Err(ApplyError::BatchTooLarge(page.len()));
        }
        let cursor = self.relay_cursor()?;
        let mut expected = cursor + 1;
        let mut entries = Vec::with_capacity(page.len());
        for entry in page.iter().filter(|e| e.seq > cursor) {
            if entry.seq != expected {
                return Err(ApplyError::Gap {
                    expected,
                    found: entry.seq,
                });
            }
            expected += 1;
            entries.push((Some(entry.seq), &entry.delta));
        }
        if entries.is_empty() {
            return Ok(Applied::default());
        }
        self.apply_batch(entries, Some(expected - 1))
    }

    /// Moves the relay cursor past entry `seq`, which cannot be merged (see
    /// [`crate::sync::SyncEvent::Skipped`]). Only the entry right after the
    /// cursor can be skipped.
    pub fn skip_relay_entry(&mut self, seq: u64) -> Result<(), ApplyError> {
        let expected = self.relay_cursor()? + 1;
        if seq != expected {
            return Err(ApplyError::Gap {
                expected,
                found: seq,
            });
        }
        let tx = self.store.transaction()?;
        tx.set_meta(MetaKey::RelayCursor, seq as i64)?;
        tx.commit()?;
        Ok(())
    }

    /// The relay log position this device has merged everything up to.
    pub fn relay_cursor(&self) -> Result<u64, StoreError> {
        Ok(self
            .store
            .meta(MetaKey::RelayCursor)?
            .map_or(0, |c| c.max(0) as u64))
    }

    /// Up to `limit` of this device's own deltas that no relay has accepted
    /// yet, oldest first: what to push.
    pub fn outbox(&self, limit: usize) -> Result<Vec<EncodedDelta>, StoreError> {
        Ok(self
            .store
            .outbox(limit)?
            .into_iter()
            .map(|row| EncodedDelta(row.bytes))
            .collect())
    }

    /// Records that the relay accepted these deltas at these log positions,
    /// taking them out of the outbox. Unknown content ids are ignored.
    ///
    /// Positions that continue the relay cursor move it too: the device
    /// holds those deltas already (they are its own), so it need not pull
    /// them back.
    pub fn acknowledge(&mut self, accepted: &[(ContentId, u64)]) -> Result<(), StoreError> {
        let mut cursor = self.relay_cursor()?;
        let mut known = Vec::with_capacity(accepted.len());
        let tx = self.store.transaction()?;
        for (content_id, seq) in accepted {
            if tx.set_relay_seq(&content_id.0, *seq as i64)? {
                known.push(*seq);
            }
        }
        known.sort_unstable();
        for seq in known {
            if seq == cursor + 1 {
                cursor = seq;
            }
        }
        tx.set_meta(MetaKey::RelayCursor, cursor as i64)?;
        tx.commit()
    }

    fn apply_batch(
        &mut self,
        entries: Vec<(Option<u64>, &EncodedDelta)>,
        cursor: Option<u64>,
    ) -> Result<Applied, ApplyError> {
        if entries.len() > DELTAS_PER_BATCH_MAX {
            return Err(ApplyError::BatchTooLarge(entries.len()));
        }
        // Decode and validate everything before touching anything.
        let mut batch = Batch {
            incoming: Vec::with_capacity(entries.len()),
            known: Vec::new(),
            cursor,
        };
        let mut seen = BTreeSet::new();
        let mut applied = Applied::default();
        for (index, (relay_seq, encoded)) in entries.into_iter().enumerate() {
            let (delta, change) = Delta::decode(&encoded.0, &self.device.account)
                .map_err(|error| ApplyError::Delta { index, error })?;
            let content_id = encoded.content_id();
            if !seen.insert(content_id) || self.store.has_delta(&content_id.0)? {
                applied.duplicate += 1;
                if let Some(seq) = relay_seq {
                    batch.known.push((content_id, seq));
                }
                continue;
            }
            batch.incoming.push(Incoming {
                delta,
                change,
                encoded,
                relay_seq,
            });
        }
        if batch.incoming.is_empty() && batch.known.is_empty() && batch.cursor.is_none() {
            return Ok(applied);
        }
        let waiting = self.store.pending_deltas()?;
        if let Err(error) = self.merge(batch, waiting, &mut applied) {
            // The document may hold changes the store does not.
            self.reload_doc();
            return Err(error);
        }
        Ok(applied)
    }

    fn merge(
        &mut self,
        batch: Batch<'_>,
        waiting: Vec<DeltaRow>,
        applied: &mut Applied,
    ) -> Result<(), ApplyError> {
        let account = self.device.account.clone();
        let me = self.device.device_id;
        loaded(&self.doc, &self.store, &self.device)?;
        let doc = self.doc.get_mut().expect("loaded just now");
        let changes_before = self
            .store
            .meta(MetaKey::DocChangesSinceSnapshot)?
            .unwrap_or(0);
        // Deltas stored earlier that are still waiting, in the order they
        // were stored, then this batch's new ones, in batch order.
        let mut candidates: Vec<Candidate> = waiting
            .into_iter()
            .filter_map(|row| {
                let (delta, change) = Delta::decode(&row.bytes, &account).ok()?;
                Some(Candidate::new(
                    delta,
                    change.as_ref(),
                    ContentId(row.content_id),
                    false,
                ))
            })
            .collect();
        let tx = self.store.transaction()?;
        let mut touched = BTreeSet::new();
        // Merged deltas in merge (causal) order, journaled once the whole
        // batch is merged so "superseded" reflects the batch's outcome.
        let mut merged_now: Vec<(Delta, ContentId)> = Vec::new();
        let mut new_changes = 0i64;
        for (content_id, seq) in &batch.known {
            tx.set_relay_seq(&content_id.0, *seq as i64)?;
        }
        // All of the batch's changes go to automerge in one call; changes
        // whose dependencies are still missing wait inside it.
        let mut changes = Vec::new();
        for incoming in &batch.incoming {
            if let Some(change) = &incoming.change {
                tx.append_doc_change(change.raw_bytes())?;
                changes.push(change.clone());
            }
        }
        new_changes += changes.len() as i64;
        doc.apply_changes(changes)?;
        for Incoming {
            delta,
            change,
            encoded,
            relay_seq,
        } in batch.incoming
        {
            applied.new += 1;
            let mut row = delta_row(&delta, encoded, false);
            row.relay_seq = relay_seq.map(|s| s as i64);
            tx.insert_delta(&row)?;
            candidates.push(Candidate::new(
                delta,
                change.as_ref(),
                encoded.content_id(),
                true,
            ));
        }
        // A delta merges once the same device's previous operation has
        // merged and its document change (if any) is in the document, after
        // every change it depends on that is merged in this pass. That keeps
        // effects and events in causal order even when deltas arrive out of
        // order. Candidates are taken in arrival order, which from a relay
        // is already causal, so one pass usually releases them all.
        for candidate in &mut candidates {
            let (origin, seq) = (candidate.delta.origin, candidate.delta.origin_seq);
            candidate.previous_merged =
                seq == 1 || tx.delta_applied(&origin.0, seq as i64 - 1)? == Some(true);
        }
        let mut merged_keys: BTreeSet<(DeviceId, u64)> = BTreeSet::new();
        let mut pending_hashes: BTreeSet<automerge::ChangeHash> =
            candidates.iter().filter_map(|c| c.hash).collect();
        loop {
            let mut progress = false;
            let mut i = 0;
            while i < candidates.len() {
                let c = &candidates[i];
                let previous = c.previous_merged
                    || merged_keys.contains(&(c.delta.origin, c.delta.origin_seq - 1));
                let change_ready = c.hash.is_none_or(|h| {
                    doc.has_change(&h) && !c.deps.iter().any(|d| pending_hashes.contains(d))
                });
                if !(previous && change_ready) {
                    i += 1;
                    continue;
                }
                let c = candidates.remove(i);
                if let Some(hash) = &c.hash {
                    pending_hashes.remove(hash);
                }
                tx.mark_delta_applied(&c.content_id.0)?;
                if !c.is_new {
                    applied.unblocked += 1;
                }
                message_effects(&tx, &c.delta, account.as_str(), &mut touched)?;
                marker_effects(&tx, &c.delta, &mut touched)?;
                touched.extend(touched_by(&c.delta.op));
                merged_keys.insert((c.delta.origin, c.delta.origin_seq));
                merged_now.push((c.delta, c.content_id));
                progress = true;
            }
            if !progress {
                break;
            }
        }
        applied.waiting = candidates.iter().filter(|c| c.is_new).count();
        let since = changes_before + new_changes;
        if since >= DOC_CHANGES_PER_SNAPSHOT {
            tx.replace_doc_with_snapshot(&doc.save())?;
            tx.set_meta(MetaKey::DocChangesSinceSnapshot, 0)?;
        } else {
            tx.set_meta(MetaKey::DocChangesSinceSnapshot, since)?;
        }
        if let Some(cursor) = batch.cursor {
            tx.set_meta(MetaKey::RelayCursor, cursor as i64)?;
        }
        let flags = project(&tx, doc, account.as_str(), &touched)?;
        // The read markers the batch's events compare against.
        let mut markers = BTreeMap::new();
        for (delta, _) in &merged_now {
            if let Op::Conversation(ConversationOp::MarkRead { conversation, .. }) = &delta.op {
                if let btree_map::Entry::Vacant(slot) = markers.entry(conversation.key()) {
                    let marker = tx.read_marker(slot.key())?;
                    slot.insert(marker);
                }
            }
        }
        let lookup = Lookup {
            doc,
            flags: &flags,
            read_markers: &markers,
        };
        for (delta, content_id) in &merged_now {
            if delta.origin == me {
                continue;
            }
            let kind = event_kind(delta);
            let superseded = superseded(&lookup, &kind);
            let seq = tx.append_event(&EventRow {
                seq: 0,
                content_id: content_id.0,
                origin: delta.origin.0,
                made_at_ms: delta.made_at_ms,
                body: encode_event(&StoredEvent { kind, superseded }),
            })?;
            applied.events += usize::from(seq.is_some());
        }
        tx.commit()?;
        applied.changed = changed(&touched);
        Ok(())
    }

    /// Reloads the document from the store after a failed write, so memory
    /// and disk agree again.
    fn reload_doc(&mut self) {
        self.doc = OnceCell::new();
    }

    /// Journaled events after position `after`, oldest first, whether
    /// acknowledged or not.
    pub fn events_after(&self, after: i64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let rows = self.store.events_after(after, limit)?;
        rows.into_iter()
            .map(|row| {
                let stored: StoredEvent = postcard::from_bytes(&row.body).map_err(|e| {
                    StoreError::Corrupt(format!("journaled event {}: {e}", row.seq))
                })?;
                Ok(Event {
                    seq: row.seq,
                    source_device: DeviceId(row.origin),
                    made_at_ms: row.made_at_ms,
                    superseded: stored.superseded,
                    kind: stored.kind,
                })
            })
            .collect()
    }

    /// Up to `limit` events the app has not acknowledged, oldest first.
    pub fn pending_events(&self, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.events_after(self.events_acked()?, limit)
    }

    /// The oldest event the app has not acknowledged. With
    /// [`EventDelivery::AutoAck`] it is acknowledged as it is returned.
    pub fn next_event(&mut self) -> Result<Option<Event>, StoreError> {
        let event = self.pending_events(1)?.pop();
        if let (Some(event), EventDelivery::AutoAck) = (&event, self.delivery) {
            self.ack_events(event.seq)?;
        }
        Ok(event)
    }

    /// Acknowledges every event up to and including `seq`: they are not
    /// delivered again, also after a restart. Acknowledging backwards does
    /// nothing; acknowledging past the newest event acknowledges up to it
    /// (never events that do not exist yet).
    pub fn ack_events(&mut self, seq: i64) -> Result<(), StoreError> {
        let seq = seq.min(self.store.events_head()?);
        if seq <= self.events_acked()? {
            return Ok(());
        }
        let tx = self.store.transaction()?;
        tx.set_meta(MetaKey::EventsAcked, seq)?;
        tx.commit()
    }

    /// The newest journaled event's sequence number (0 for none).
    pub fn events_head(&self) -> Result<i64, StoreError> {
        self.store.events_head()
    }

    /// The highest acknowledged event sequence number (0 for none).
    pub fn events_acked(&self) -> Result<i64, StoreError> {
        Ok(self.store.meta(MetaKey::EventsAcked)?.unwrap_or(0))
    }

    /// Chooses how [`Engine::next_event`] acknowledges.
    pub fn set_event_delivery(&mut self, delivery: EventDelivery) {
        self.delivery = delivery;
    }

    /// Journals a payload another device sent to this one, once per sender
    /// and payload id: returns the new event's sequence number, or `None`
    /// when it was journaled already (the relay delivered it again because
    /// its acknowledgement was lost).
    pub fn record_payload(
        &mut self,
        now_ms: i64,
        from: DeviceId,
        id: [u8; 16],
        bytes: &[u8],
    ) -> Result<Option<i64>, StoreError> {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"tandem payload");
        hasher.update(&from.0);
        hasher.update(&id);
        let kind = EventKind::Message(MessageEvent::PayloadReceived {
            id: hex(&id),
            payload: hex(bytes),
        });
        self.journal(now_ms, from, ContentId(*hasher.finalize().as_bytes()), kind)
    }

    /// Journals something the relay told this device about its connection
    /// (kicked, refused, a new device of the account…). `source` is the
    /// device that caused it, or this device.
    pub fn record_connection_event(
        &mut self,
        now_ms: i64,
        source: DeviceId,
        event: ConnectionEvent,
    ) -> Result<Option<i64>, StoreError> {
        let kind = EventKind::Connection(event);
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"tandem connection event");
        hasher.update(&source.0);
        hasher.update(&now_ms.to_le_bytes());
        hasher.update(&encode_event(&StoredEvent {
            kind: kind.clone(),
            superseded: false,
        }));
        self.journal(
            now_ms,
            source,
            ContentId(*hasher.finalize().as_bytes()),
            kind,
        )
    }

    fn journal(
        &mut self,
        now_ms: i64,
        source: DeviceId,
        content_id: ContentId,
        kind: EventKind,
    ) -> Result<Option<i64>, StoreError> {
        let tx = self.store.transaction()?;
        let seq = tx.append_event(&EventRow {
            seq: 0,
            content_id: content_id.0,
            origin: source.0,
            made_at_ms: now_ms,
            body: encode_event(&StoredEvent {
                kind,
                superseded: false,
            }),
        })?;
        tx.commit()?;
        Ok(seq)
    }

    // ---- Queries: served from the projections. ----

    /// A page of the conversation list: pinned first, then by last activity.
    pub fn conversations(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<ConversationRow>, StoreError> {
        self.store.conversation_list(offset, limit)
    }

    /// One conversation, listed or not.
    pub fn conversation(&self, id: &ConversationId) -> Result<Option<ConversationRow>, StoreError> {
        self.store.conversation(&id.key())
    }

    /// A page of a conversation's messages, newest first, before the
    /// `(sent_at_ms, id)` position `before` when given.
    pub fn messages(
        &self,
        conversation: &ConversationId,
        before: Option<(i64, &MessageId)>,
        limit: usize,
    ) -> Result<Vec<MessageView>, StoreError> {
        self.store.messages(
            &conversation.key(),
            before.map(|(at, id)| (at, id.as_str())),
            limit,
        )
    }

    /// One message, unless unknown or deleted for this account.
    pub fn message(&self, id: &MessageId) -> Result<Option<MessageView>, StoreError> {
        self.store.message(id.as_str())
    }

    /// Every contact, pending (`requested`) or accepted (`friend`), by user
    /// id.
    pub fn contacts(&self) -> Result<Vec<ContactRow>, StoreError> {
        self.store.contacts()
    }

    /// Every blocked user, by user id.
    pub fn blocklist(&self) -> Result<Vec<BlockedRow>, StoreError> {
        self.store.blocklist()
    }

    /// Every group this account knows, as a member or an applicant (the
    /// row's `state`), by id.
    pub fn groups(&self) -> Result<Vec<GroupRow>, StoreError> {
        self.store.groups()
    }

    /// One group, or `None` if this account does not know it (never joined,
    /// left, or dissolved).
    pub fn group(&self, id: &GroupId) -> Result<Option<GroupRow>, StoreError> {
        self.store.group(id.as_str())
    }

    /// Every thread this account takes part in, by id.
    pub fn threads(&self) -> Result<Vec<ThreadRow>, StoreError> {
        self.store.threads()
    }

    /// Everything the app can see, in a stable order.
    pub fn state(&self) -> Result<AccountState, StoreError> {
        Ok(AccountState {
            conversations: self.store.all_conversations()?,
            messages: self.store.message_log()?,
            contacts: self.store.contacts()?,
            blocklist: self.store.blocklist()?,
            groups: self.store.groups()?,
            threads: self.store.threads()?,
        })
    }

    /// The account document's heads, sorted, as hex: equal on two devices
    /// exactly when their documents hold the same changes. Loads the
    /// document if no operation or merge has yet.
    pub fn doc_heads(&self) -> Result<Vec<String>, LoadError> {
        Ok(self.doc()?.heads().iter().map(|h| h.to_string()).collect())
    }
}

/// The id of a message sent by `delta`: unique per device and operation.
pub(crate) fn sent_message_id(delta: &Delta) -> MessageId {
    MessageId::new(format!("{}.{}", delta.origin.to_hex(), delta.origin_seq))
        .expect("a hex device id and a number make a valid id")
}

fn delta_row(delta: &Delta, encoded: &EncodedDelta, applied: bool) -> DeltaRow {
    DeltaRow {
        local_seq: 0,
        content_id: encoded.content_id().0,
        origin: delta.origin.0,
        origin_seq: delta.origin_seq as i64,
        made_at_ms: delta.made_at_ms,
        bytes: encoded.0.clone(),
        relay_seq: None,
        applied,
    }
}

/// The document in `cell`, loading it from the store first if needed.
fn loaded<'a>(
    cell: &'a OnceCell<AccountDoc>,
    store: &DeviceStore,
    device: &DeviceIdentity,
) -> Result<&'a AccountDoc, LoadError> {
    if let Some(doc) = cell.get() {
        return Ok(doc);
    }
    let doc = load_doc(store, device)?;
    Ok(cell.get_or_init(|| doc))
}

fn load_doc(store: &DeviceStore, device: &DeviceIdentity) -> Result<AccountDoc, LoadError> {
    let chunks = store.doc_chunks()?;
    let mut snapshot = None;
    let mut changes: Vec<&[u8]> = Vec::new();
    for chunk in &chunks {
        match chunk {
            DocChunk::Snapshot(bytes) => snapshot = Some(bytes.as_slice()),
            DocChunk::Change(bytes) => changes.push(bytes),
        }
    }
    // Changes that waited for a dependency are not in a snapshot; their
    // deltas still hold them.
    let pending = store.pending_deltas()?;
    let pending_changes: Vec<Vec<u8>> = pending
        .iter()
        .filter_map(|row| Delta::decode(&row.bytes, &device.account).ok()?.0.change)
        .collect();
    changes.extend(pending_changes.iter().map(Vec::as_slice));
    Ok(AccountDoc::load(snapshot, changes, device.device_id)?)
}

fn store_doc_change(
    tx: &DeviceTx<'_>,
    change: &[u8],
    snapshot: Option<&[u8]>,
) -> Result<(), StoreError> {
    match snapshot {
        Some(snapshot) => {
            tx.replace_doc_with_snapshot(snapshot)?;
            tx.set_meta(MetaKey::DocChangesSinceSnapshot, 0)
        }
        None => {
            tx.append_doc_change(change)?;
            let since = tx.meta(MetaKey::DocChangesSinceSnapshot)?.unwrap_or(0);
            tx.set_meta(MetaKey::DocChangesSinceSnapshot, since + 1)
        }
    }
}

fn encode_event(event: &StoredEvent) -> Vec<u8> {
    postcard::to_stdvec(event).expect("an event always encodes")
}

/// Writes an operation's effects on the message log. They merge
/// monotonically (grow-only set, flags that only turn on, receipts that only
/// rise), so order and repetition do not matter.
fn message_effects(
    tx: &DeviceTx<'_>,
    delta: &Delta,
    account: &str,
    touched: &mut BTreeSet<Entity>,
) -> Result<(), StoreError> {
    let Op::Message(op) = &delta.op else {
        return Ok(());
    };
    let mut flag = |id: &MessageId, update: FlagsUpdate| -> Result<(), StoreError> {
        tx.merge_message_flags(id.as_str(), update)?;
        if let Some(conversation) = tx.message_conversation(id.as_str())? {
            touched.insert(Entity::Conversation(conversation));
        }
        Ok(())
    };
    match op {
        MessageOp::Send { conversation, body } => {
            tx.insert_message(&MessageRecord {
                id: sent_message_id(delta).into(),
                conversation: conversation.key(),
                sender: account.to_owned(),
                sent_at_ms: delta.made_at_ms,
                body: body.clone(),
            })?;
            touched.insert(Entity::Conversation(conversation.key()));
        }
        MessageOp::Ingest { message } => {
            tx.insert_message(&MessageRecord {
                id: message.id.as_str().to_owned(),
                conversation: message.conversation.key(),
                sender: message.sender.as_str().to_owned(),
                sent_at_ms: message.sent_at_ms,
                body: message.body.clone(),
            })?;
            touched.insert(Entity::Conversation(message.conversation.key()));
        }
        MessageOp::Recall { message } => flag(
            message,
            FlagsUpdate {
                recalled: true,
                ..Default::default()
            },
        )?,
        MessageOp::DeleteForMe { messages } => {
            for message in messages {
                flag(
                    message,
                    FlagsUpdate {
                        deleted: true,
                        ..Default::default()
                    },
                )?;
            }
        }
        MessageOp::Receipt { message, receipt } => flag(
            message,
            FlagsUpdate {
                receipt: Receipt::from(*receipt),
                ..Default::default()
            },
        )?,
    }
    Ok(())
}

/// The document entities an operation touches.
fn touched_by(op: &Op) -> Vec<Entity> {
    let conversation = |c: &ConversationId| vec![Entity::Conversation(c.key())];
    match op {
        Op::Message(_) => Vec::new(),
        Op::Conversation(op) => match op {
            ConversationOp::MarkRead {
                conversation: c, ..
            }
            | ConversationOp::ClearUnread { conversation: c }
            | ConversationOp::Pin { conversation: c }
            | ConversationOp::Unpin { conversation: c }
            | ConversationOp::Delete { conversation: c }
            | ConversationOp::AddMark {
                conversation: c, ..
            }
            | ConversationOp::RemoveMark {
                conversation: c, ..
            }
            | ConversationOp::SetDoNotDisturb {
                conversation: c, ..
            } => conversation(c),
            // The conversations it touches are its read markers'.
            ConversationOp::ClearAllUnread => Vec::new(),
        },
        Op::Contact(op) => match op {
            ContactOp::Block { user } | ContactOp::Unblock { user } => {
                vec![Entity::Blocked(user.as_str().to_owned())]
            }
            ContactOp::Add { user, .. }
            | ContactOp::Accept { user }
            | ContactOp::Decline { user }
            | ContactOp::Remove { user }
            | ContactOp::SetRemark { user, .. }
            | ContactOp::ReceiveRequest { user, .. } => {
                vec![Entity::Contact(user.as_str().to_owned())]
            }
        },
        Op::Group(op) => vec![Entity::Group(group_of(op).as_str().to_owned())],
        Op::Thread(op) => vec![Entity::Thread(thread_of(op).as_str().to_owned())],
    }
}

pub(crate) fn group_of(op: &GroupOp) -> &GroupId {
    match op {
        GroupOp::Create { group, .. }
        | GroupOp::Destroy { group }
        | GroupOp::Join { group }
        | GroupOp::Leave { group }
        | GroupOp::Apply { group, .. }
        | GroupOp::AcceptApplication { group, .. }
        | GroupOp::DeclineApplication { group, .. }
        | GroupOp::Invite { group, .. }
        | GroupOp::AcceptInvitation { group, .. }
        | GroupOp::DeclineInvitation { group, .. }
        | GroupOp::Kick { group, .. }
        | GroupOp::Ban { group, .. }
        | GroupOp::Allow { group, .. }
        | GroupOp::BlockMessages { group }
        | GroupOp::UnblockMessages { group }
        | GroupOp::TransferOwner { group, .. }
        | GroupOp::AddAdmin { group, .. }
        | GroupOp::RemoveAdmin { group, .. }
        | GroupOp::Mute { group, .. }
        | GroupOp::Unmute { group, .. }
        | GroupOp::AddAllowList { group, .. }
        | GroupOp::RemoveAllowList { group, .. }
        | GroupOp::MuteAll { group }
        | GroupOp::UnmuteAll { group }
        | GroupOp::UpdateInfo { group, .. }
        | GroupOp::SetMemberAttributes { group, .. } => group,
    }
}

pub(crate) fn thread_of(op: &ThreadOp) -> &ThreadId {
    match op {
        ThreadOp::Create { thread, .. }
        | ThreadOp::Destroy { thread }
        | ThreadOp::Join { thread, .. }
        | ThreadOp::Leave { thread }
        | ThreadOp::Update { thread, .. }
        | ThreadOp::Kick { thread, .. } => thread,
    }
}

/// What the touched entities are, for the app to refresh.
fn changed(touched: &BTreeSet<Entity>) -> Changed {
    let mut out = Changed::default();
    for entity in touched {
        match entity {
            Entity::Conversation(key) => out.conversations.push(key.clone()),
            Entity::Contact(user) => out.contacts.push(user.clone()),
            Entity::Blocked(user) => out.blocklist.push(user.clone()),
            Entity::Group(group) => out.groups.push(group.clone()),
            Entity::Thread(thread) => out.threads.push(thread.clone()),
        }
    }
    out
}

/// Projects the touched entities from the document into their rows, and
/// returns the conversation flags it read, so the events of the same batch
/// need not read the document again.
fn project(
    tx: &DeviceTx<'_>,
    doc: &AccountDoc,
    account: &str,
    touched: &BTreeSet<Entity>,
) -> Result<BTreeMap<String, ConversationFlags>, StoreError> {
    let mut flags = BTreeMap::new();
    for entity in touched {
        match entity {
            Entity::Conversation(key) => {
                let read = doc.conversation_flags(key);
                tx.put_conversation_flags(key, &read, account)?;
                flags.insert(key.clone(), read);
            }
            Entity::Contact(user) => tx.put_contact(user, doc.contact(user).as_ref())?,
            Entity::Blocked(user) => tx.put_blocked(user, doc.blocked(user).as_ref())?,
            Entity::Group(group) => tx.put_group(group, doc.group(group).as_ref())?,
            Entity::Thread(thread) => tx.put_thread(thread, doc.thread(thread).as_ref())?,
        }
    }
    Ok(flags)
}

/// Raises the read markers a delta carries and, for a deleted
/// conversation, its clear point (the delta's time). Both are maximum
/// registers, so order and repetition do not matter.
fn marker_effects(
    tx: &DeviceTx<'_>,
    delta: &Delta,
    touched: &mut BTreeSet<Entity>,
) -> Result<(), StoreError> {
    for marker in &delta.read_markers {
        let key = marker.conversation.key();
        tx.raise_read_marker(&key, marker.at_ms, marker.message.as_str())?;
        touched.insert(Entity::Conversation(key));
    }
    if let Op::Conversation(ConversationOp::Delete { conversation }) = &delta.op {
        let key = conversation.key();
        tx.raise_cleared(&key, delta.made_at_ms)?;
        touched.insert(Entity::Conversation(key));
    }
    Ok(())
}
