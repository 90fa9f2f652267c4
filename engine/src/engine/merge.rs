//! The remote flow: merging other devices' deltas, in causal order.
//!
//! A batch merges in one transaction; each delta is released once what it
//! depends on has merged.

use std::borrow::Cow;
use std::collections::{BTreeSet, VecDeque};

use automerge::ChangeHash;
use tandem_storage::device::{ChainLink, DeltaRow, DeviceTx, EnvelopeRow};
use tandem_storage::StoreError;
use tandem_transport::envelope::Envelope;
use tandem_transport::{AccountId, DeviceId};

use super::envelopes::{is_envelope, NeedsKey, NotOpened, OpenedEnvelope, Opener};
use super::exchange::raise_relay_cursor;
use super::journal::journal_merged;
use super::project::{changed, project, Changed};
use super::{count_doc_changes, delta_row, loaded, ApplyError, Engine};
use crate::delta::{Delta, DeltaError, EncodedDelta};
use crate::doc::AccountDoc;
use crate::limits::DELTAS_PER_BATCH_MAX;
use crate::rules::{effects, Entity};
use crate::ContentId;

/// What merging a batch did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// Deltas new to this device.
    pub new: usize,
    /// Deltas already known (sent twice, or this device's own); a sealed
    /// envelope known already counts once.
    pub duplicate: usize,
    /// Deltas stored but waiting for a change they depend on.
    pub waiting: usize,
    /// Deltas merged now that had been waiting.
    pub unblocked: usize,
    /// Multi-device events journaled by this merge.
    pub events: usize,
    /// Where the relay cursor is after the merge: the relay log position
    /// this device has merged everything up to. [`Engine::apply_relay`]
    /// moves it to its page's last entry; [`Engine::apply_remote`] leaves
    /// it.
    pub relay_cursor: u64,
    /// What the merge changed.
    pub changed: Changed,
    /// The first relay entry this device cannot open yet: the relay
    /// cursor stopped before it, and everything else of the page merged.
    /// It is pulled again from there (never skipped).
    pub blocked: Option<BlockedEntry>,
}

/// A relay log entry this device cannot open yet (see [`NeedsKey`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedEntry {
    /// Its position in the relay log.
    pub seq: u64,
    /// What this device lacks.
    pub reason: NeedsKey,
}

/// A batch being merged, decoded and validated: new deltas, known ones with
/// their relay position, and the relay cursor to store with it.
struct Batch<'a> {
    incoming: Vec<Incoming<'a>>,
    known: Vec<(ContentId, u64)>,
    /// The envelopes opened, to store with their deltas.
    envelopes: Vec<EnvelopeRow>,
    cursor: Option<u64>,
    /// Content ids seen so far in the batch, deltas and envelopes.
    seen: BTreeSet<ContentId>,
    /// Opens the batch's envelopes; read from the store at the first one.
    opener: Option<Opener>,
    /// Origins with an envelope of the batch not opened yet: their later
    /// envelopes wait behind it, so that each chain opens in order.
    deferred: BTreeSet<DeviceId>,
    /// Deltas stored already (from a direct exchange, in the clear) that
    /// an opened envelope carries too, with that envelope: recorded as
    /// sealed, so that a Link among them names its device while it waits.
    sealed_again: Vec<(ContentId, ContentId)>,
}

/// A delta new to this device.
struct Incoming<'a> {
    delta: Delta,
    change: Option<automerge::Change>,
    /// As it came, or as its envelope's operation re-encodes it.
    encoded: Cow<'a, EncodedDelta>,
    relay_seq: Option<u64>,
    /// The envelope it was opened from.
    envelope: Option<ContentId>,
}

/// An entry of the batch whose envelope could not be opened yet.
struct Later<'a> {
    index: usize,
    relay_seq: Option<u64>,
    encoded: &'a EncodedDelta,
    reason: NeedsKey,
}

impl Engine {
    /// Merges a batch of deltas from other devices of the account, in one
    /// transaction: all of it or, on any error, none of it.
    pub fn apply_remote(&mut self, batch: &[EncodedDelta]) -> Result<Applied, ApplyError> {
        let entries: Vec<_> = batch.iter().map(|d| (None, d)).collect();
        self.apply_batch(entries, None)
    }

    /// Decodes and validates every entry before anything is touched, then
    /// merges the batch; on any error the in-memory document is reloaded.
    pub(super) fn apply_batch(
        &mut self,
        entries: Vec<(Option<u64>, &EncodedDelta)>,
        cursor: Option<u64>,
    ) -> Result<Applied, ApplyError> {
        if entries.len() > DELTAS_PER_BATCH_MAX {
            return Err(ApplyError::BatchTooLarge(entries.len()));
        }
        let mut batch = Batch {
            incoming: Vec::with_capacity(entries.len()),
            known: Vec::new(),
            envelopes: Vec::new(),
            cursor,
            seen: BTreeSet::new(),
            opener: None,
            deferred: BTreeSet::new(),
            sealed_again: Vec::new(),
        };
        let mut applied = Applied::default();
        let mut later = Vec::new();
        for (index, (relay_seq, encoded)) in entries.into_iter().enumerate() {
            if is_envelope(&encoded.0) {
                if let Some(reason) =
                    self.take_envelope(&mut batch, &mut applied, index, relay_seq, encoded)?
                {
                    later.push(Later {
                        index,
                        relay_seq,
                        encoded,
                        reason,
                    });
                }
                continue;
            }
            let (delta, change) = Delta::decode(&encoded.0, &self.device.account)
                .map_err(|error| entry_error(index, relay_seq, error))?;
            self.take_delta(
                &mut batch,
                &mut applied,
                delta,
                change,
                Cow::Borrowed(encoded),
                relay_seq,
                None,
            )?;
        }
        self.take_later(&mut batch, &mut applied, later)?;
        applied.relay_cursor = match batch.cursor {
            Some(cursor) => cursor,
            None => self.relay_cursor()?,
        };
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

    /// Takes one delta into the batch: new, or known (a repeat, or this
    /// device's own coming back with its relay position).
    #[allow(clippy::too_many_arguments)]
    fn take_delta<'a>(
        &self,
        batch: &mut Batch<'a>,
        applied: &mut Applied,
        delta: Delta,
        change: Option<automerge::Change>,
        encoded: Cow<'a, EncodedDelta>,
        relay_seq: Option<u64>,
        envelope: Option<ContentId>,
    ) -> Result<(), StoreError> {
        let content_id = encoded.content_id();
        let repeat = !batch.seen.insert(content_id);
        if repeat || self.store.has_delta(&content_id.0)? {
            if let (false, Some(envelope)) = (repeat, envelope) {
                batch.sealed_again.push((content_id, envelope));
            }
            applied.duplicate += 1;
            if let Some(seq) = relay_seq {
                batch.known.push((content_id, seq));
            }
            return Ok(());
        }
        batch.incoming.push(Incoming {
            delta,
            change,
            encoded,
            relay_seq,
            envelope,
        });
        Ok(())
    }

    /// Takes one sealed envelope into the batch: known already (this
    /// device's own coming back, or a repeat), opened into its deltas, or
    /// not openable yet (`Ok(Some(reason))`). A forged, altered or forked
    /// envelope refuses the batch, as a bad delta does.
    fn take_envelope<'a>(
        &self,
        batch: &mut Batch<'a>,
        applied: &mut Applied,
        index: usize,
        relay_seq: Option<u64>,
        encoded: &'a EncodedDelta,
    ) -> Result<Option<NeedsKey>, ApplyError> {
        let refuse = |error| entry_error(index, relay_seq, error);
        let content_id = encoded.content_id();
        let header = Envelope::decode(&encoded.0)
            .map_err(|e| refuse(DeltaError::Envelope(Box::new(e.into()))))?
            .header;
        let known = batch.seen.contains(&content_id)
            || self
                .envelope_known(header.origin, header.chain_pos, content_id)?
                .map_err(refuse)?;
        if known {
            applied.duplicate += 1;
            if let Some(seq) = relay_seq {
                batch.known.push((content_id, seq));
            }
            return Ok(None);
        }
        let origin = header.origin;
        if batch.deferred.contains(&origin) {
            return Ok(Some(NeedsKey::UnknownOrigin { origin }));
        }
        let opener = match &mut batch.opener {
            Some(opener) => opener,
            None => batch.opener.insert(self.opener()?),
        };
        let opened = match opener.open(&encoded.0, &self.device.account) {
            Ok(opened) => opened,
            Err(NotOpened::Later(reason)) => {
                batch.deferred.insert(origin);
                return Ok(Some(reason));
            }
            Err(NotOpened::Refused(error)) => return Err(refuse(error)),
        };
        self.chain_continues(batch, &opened)?.map_err(refuse)?;
        batch.seen.insert(content_id);
        batch.envelopes.push(opened.row(relay_seq));
        for (delta, change, delta_bytes) in opened.deltas {
            self.take_delta(
                batch,
                applied,
                delta,
                change,
                Cow::Owned(delta_bytes),
                relay_seq,
                Some(content_id),
            )?;
        }
        Ok(None)
    }

    /// Whether `opened` agrees with its neighbours in its origin's chain,
    /// where this device holds them (stored, or opened earlier in the
    /// batch): the one before it has the id its header names, and the one
    /// after it names it. A neighbour not held yet is no error: an
    /// unordered transport may deliver a chain out of order, and its
    /// operations wait for their predecessors anyway.
    fn chain_continues(
        &self,
        batch: &Batch<'_>,
        opened: &OpenedEnvelope,
    ) -> Result<Result<(), DeltaError>, StoreError> {
        let (origin, chain_pos) = (opened.origin, opened.chain_pos);
        let held = |pos: u64| -> Result<Option<ChainLink>, StoreError> {
            let in_batch = batch
                .envelopes
                .iter()
                .rev()
                .find(|row| row.origin == origin.0 && row.chain_pos == pos)
                .map(|row| (row.content_id, row.prev));
            match in_batch {
                Some(link) => Ok(Some(link)),
                None => self.store.chain_link_at(&origin.0, pos),
            }
        };
        if chain_pos > 1 {
            if let Some((before, _)) = held(chain_pos - 1)? {
                if before != opened.prev.0 {
                    return Ok(Err(DeltaError::ChainFork {
                        origin,
                        chain_pos: chain_pos - 1,
                    }));
                }
            }
        }
        if let Some((_, names)) = held(chain_pos.saturating_add(1))? {
            if names != opened.content_id.0 {
                return Ok(Err(DeltaError::ChainFork { origin, chain_pos }));
            }
        }
        Ok(Ok(()))
    }

    /// Opens the envelopes that could not be opened in order, now that the
    /// batch's other envelopes may have named their origins, as long as
    /// that opens more. What stays unopened stops the relay cursor before
    /// the first of it; in a batch not from the relay it refuses the
    /// batch.
    fn take_later<'a>(
        &self,
        batch: &mut Batch<'a>,
        applied: &mut Applied,
        mut later: Vec<Later<'a>>,
    ) -> Result<(), ApplyError> {
        loop {
            let before = later.len();
            batch.deferred.clear();
            let mut still = Vec::with_capacity(later.len());
            for entry in later {
                let (index, seq, encoded) = (entry.index, entry.relay_seq, entry.encoded);
                if let Some(reason) = self.take_envelope(batch, applied, index, seq, encoded)? {
                    still.push(Later { reason, ..entry });
                }
            }
            later = still;
            if later.is_empty() || later.len() == before {
                break;
            }
        }
        let Some(first) = later.into_iter().next() else {
            return Ok(());
        };
        match first.relay_seq {
            Some(seq) => {
                batch.cursor = Some(seq - 1);
                applied.blocked = Some(BlockedEntry {
                    seq,
                    reason: first.reason,
                });
                Ok(())
            }
            None => Err(ApplyError::Delta {
                index: first.index,
                error: DeltaError::NeedsKey(first.reason),
            }),
        }
    }

    /// The merge transaction, step by step.
    fn merge(
        &mut self,
        batch: Batch<'_>,
        waiting: Vec<DeltaRow>,
        applied: &mut Applied,
    ) -> Result<(), ApplyError> {
        loaded(&self.doc, &self.store, &self.device)?;
        let doc = self.doc.get_mut().expect("loaded just now");
        let tx = self.store.merge_transaction()?;
        let mut merge = Merge {
            tx,
            account: &self.device.account,
            touched: BTreeSet::new(),
            merged: Vec::new(),
        };
        for envelope in &batch.envelopes {
            merge.tx.insert_envelope(envelope)?;
        }
        for (delta, envelope) in &batch.sealed_again {
            merge.tx.set_delta_envelope(&delta.0, &envelope.0)?;
        }
        merge.record_relay_positions(&batch.known)?;
        let new_changes = merge.add_changes(doc, &batch.incoming)?;
        // Deltas stored earlier that are still waiting, in the order they
        // were stored, then this batch's new ones, in batch order.
        let mut candidates = merge.waiting_candidates(waiting);
        candidates.extend(merge.new_candidates(batch.incoming, applied));
        let mut release = Release::new(&merge.tx, candidates)?;
        while let Some(candidate) = release.next(doc) {
            merge.release(candidate, applied)?;
        }
        applied.waiting = release.new_still_waiting();
        merge.store_waiting(release.waiting)?;
        let Merge {
            tx,
            touched,
            merged,
            ..
        } = merge;
        count_doc_changes(&tx, doc, new_changes)?;
        if let Some(cursor) = batch.cursor {
            raise_relay_cursor(&tx, cursor)?;
        }
        let projected = project(&tx, doc, self.device.account.as_str(), &touched)?;
        applied.events = journal_merged(&tx, doc, &projected, &merged, self.device.device_id)?;
        tx.commit()?;
        applied.changed = changed(&touched);
        Ok(())
    }
}

/// The error of entry `index` of a batch (named by its relay position when
/// it has one).
fn entry_error(index: usize, relay_seq: Option<u64>, error: DeltaError) -> ApplyError {
    match relay_seq {
        Some(seq) => ApplyError::RelayEntry { seq, error },
        None => ApplyError::Delta { index, error },
    }
}

/// The merge transaction and what it has merged so far.
struct Merge<'a> {
    tx: DeviceTx<'a>,
    account: &'a AccountId,
    /// The entities the merged deltas touched, projected once at the end.
    touched: BTreeSet<Entity>,
    /// Merged deltas in merge (causal) order, journaled once the whole
    /// batch is merged so "superseded" reflects the batch's outcome.
    merged: Vec<(Delta, ContentId)>,
}

impl Merge<'_> {
    /// Known deltas from a relay page: their log position takes them out of
    /// the outbox (a device's own deltas coming back).
    fn record_relay_positions(&self, known: &[(ContentId, u64)]) -> Result<(), StoreError> {
        for (content_id, seq) in known {
            self.tx.set_relay_seq(&content_id.0, *seq)?;
        }
        Ok(())
    }

    /// All of the batch's changes go to automerge in one call; changes whose
    /// dependencies are still missing wait inside it. Returns how many were
    /// added to the chunk table.
    fn add_changes(
        &self,
        doc: &mut AccountDoc,
        incoming: &[Incoming<'_>],
    ) -> Result<i64, ApplyError> {
        let mut changes = Vec::new();
        for incoming in incoming {
            if let Some(change) = &incoming.change {
                self.tx.append_doc_change(change.raw_bytes())?;
                changes.push(change.clone());
            }
        }
        let added = changes.len() as i64;
        doc.apply_changes(changes)?;
        Ok(added)
    }

    /// The deltas stored earlier that still wait, as candidates. Their bytes
    /// were validated when they arrived.
    fn waiting_candidates(&self, waiting: Vec<DeltaRow>) -> Vec<Candidate> {
        waiting
            .into_iter()
            .filter_map(|row| {
                let (delta, change) = Delta::decode(&row.bytes, self.account).ok()?;
                Some(Candidate::new(
                    delta,
                    change.as_ref(),
                    ContentId(row.content_id),
                    false,
                ))
            })
            .collect()
    }

    /// Makes the batch's new deltas candidates. Their rows are written
    /// when they are released, or as waiting once the release is done:
    /// one statement per delta either way.
    fn new_candidates(&self, incoming: Vec<Incoming<'_>>, applied: &mut Applied) -> Vec<Candidate> {
        let mut candidates = Vec::with_capacity(incoming.len());
        for Incoming {
            delta,
            change,
            encoded,
            relay_seq,
            envelope,
        } in incoming
        {
            applied.new += 1;
            let mut row = delta_row(&delta, &encoded, false);
            row.relay_seq = relay_seq;
            row.envelope = envelope.map(|id| id.0);
            let mut candidate = Candidate::new(delta, change.as_ref(), encoded.content_id(), true);
            candidate.row = Some(row);
            candidates.push(candidate);
        }
        candidates
    }

    /// Stores the batch's new deltas that still wait, not merged.
    fn store_waiting(&self, waiting: VecDeque<Candidate>) -> Result<(), StoreError> {
        for row in waiting.into_iter().filter_map(|c| c.row) {
            self.tx.insert_delta(&row)?;
        }
        Ok(())
    }

    /// Merges one released delta: marks it applied and writes its effects.
    fn release(&mut self, mut c: Candidate, applied: &mut Applied) -> Result<(), StoreError> {
        match c.row.take() {
            Some(mut row) => {
                row.applied = true;
                self.tx.insert_delta(&row)?;
            }
            None => {
                self.tx.mark_delta_applied(&c.content_id.0)?;
                applied.unblocked += 1;
            }
        }
        effects(&self.tx, &c.delta, self.account.as_str(), &mut self.touched)?;
        self.merged.push((c.delta, c.content_id));
        Ok(())
    }
}

/// A delta that may merge in this batch.
struct Candidate {
    delta: Delta,
    /// Its document change's hash and dependencies, if it has a change.
    hash: Option<ChangeHash>,
    deps: Vec<ChangeHash>,
    content_id: ContentId,
    /// New in this batch (else it waited from an earlier one).
    is_new: bool,
    /// A new delta's row, written when it is released or left waiting.
    row: Option<DeltaRow>,
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
            row: None,
            previous_merged: false,
        }
    }
}

/// The causal release of a batch's candidates.
///
/// A delta is released once the same device's previous operation has
/// merged and its document change (if any) is in the document, after every
/// change it depends on that is released in this batch. That keeps effects
/// and events in causal order even when deltas arrive out of order.
/// Candidates are taken in arrival order, which from a relay is already
/// causal, so one pass usually releases them all; a candidate that becomes
/// ready because of a later one is released in the next pass. What is left
/// when a pass releases nothing waits for a later batch.
struct Release {
    /// Candidates not released yet, in arrival order. A deque: in the
    /// usual causal page the next one is at the front, and taking it from
    /// a `Vec` moved every later candidate (13% of a catch-up's merge
    /// time in B1's profile).
    waiting: VecDeque<Candidate>,
    /// `(origin, origin_seq)` of every delta released in this batch.
    released: BTreeSet<(DeviceId, u64)>,
    /// The change hashes of the candidates not released yet.
    unreleased_changes: BTreeSet<ChangeHash>,
    /// Where the current pass has got to, and whether it released anything.
    position: usize,
    progress: bool,
}

impl Release {
    /// Starts the release: learns, for every candidate, whether its device's
    /// previous operation merged before this batch.
    fn new(tx: &DeviceTx<'_>, mut candidates: Vec<Candidate>) -> Result<Release, StoreError> {
        for candidate in &mut candidates {
            let (origin, seq) = (candidate.delta.origin, candidate.delta.origin_seq);
            // Decoding refused 0, so `seq - 1` is a real operation number.
            debug_assert!(seq >= 1);
            candidate.previous_merged =
                seq == 1 || tx.delta_applied(&origin.0, seq - 1)? == Some(true);
        }
        Ok(Release {
            unreleased_changes: candidates.iter().filter_map(|c| c.hash).collect(),
            waiting: candidates.into(),
            released: BTreeSet::new(),
            position: 0,
            progress: false,
        })
    }

    /// Whether `c` may merge now.
    fn is_ready(&self, c: &Candidate, doc: &AccountDoc) -> bool {
        let previous = c.previous_merged
            || self
                .released
                .contains(&(c.delta.origin, c.delta.origin_seq - 1));
        let change_ready = c.hash.is_none_or(|h| {
            doc.has_change(&h) && !c.deps.iter().any(|d| self.unreleased_changes.contains(d))
        });
        previous && change_ready
    }

    /// The next candidate to merge, in causal order, or `None` when a whole
    /// pass released nothing.
    fn next(&mut self, doc: &AccountDoc) -> Option<Candidate> {
        loop {
            if self.position >= self.waiting.len() {
                if !self.progress {
                    return None;
                }
                self.position = 0;
                self.progress = false;
                continue;
            }
            if self.is_ready(&self.waiting[self.position], doc) {
                let c = self
                    .waiting
                    .remove(self.position)
                    .expect("the position is inside the deque");
                if let Some(hash) = &c.hash {
                    self.unreleased_changes.remove(hash);
                }
                self.released.insert((c.delta.origin, c.delta.origin_seq));
                self.progress = true;
                return Some(c);
            }
            self.position += 1;
        }
    }

    /// How many of this batch's new deltas still wait.
    fn new_still_waiting(&self) -> usize {
        self.waiting.iter().filter(|c| c.is_new).count()
    }
}
