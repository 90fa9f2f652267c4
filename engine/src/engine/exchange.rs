//! What crosses to other devices and the relay, and the relay cursor.
//!
//! Export pages, the outbox, relay log pages, acknowledgements, and the
//! relay cursor: where this device has merged the relay log up to.

use tandem_storage::device::{DeviceTx, MetaKey};
use tandem_storage::StoreError;

use super::{Applied, ApplyError, Engine};
use crate::delta::EncodedDelta;
use crate::limits::DELTAS_PER_BATCH_MAX;
use crate::ContentId;

/// One entry of the relay's log: its position and the delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayDelta {
    /// The entry's position in the account's relay log, from 1.
    pub seq: u64,
    /// The delta's bytes, as the relay stores them.
    pub delta: EncodedDelta,
}

/// A position in this device's delta log, for [`Engine::export`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ExportCursor(pub i64);

/// A position in this device's outbox, for [`Engine::outbox_after`]; the
/// default is before the first delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct OutboxPosition(pub i64);

/// A page of exported deltas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The page's deltas, oldest first; empty when this device holds nothing
    /// after the cursor.
    pub deltas: Vec<EncodedDelta>,
    /// Pass this to the next call to continue after this page.
    pub next: ExportCursor,
}

impl Engine {
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

    /// Merges a page of the relay's log, in one transaction with the new
    /// relay cursor. The page must continue the log right after
    /// [`Engine::relay_cursor`]; entries at or before the cursor (a page
    /// fetched twice) are skipped. This device's own deltas coming back
    /// leave the outbox here too, even if their push acknowledgement was
    /// lost. [`Applied::relay_cursor`] says where the cursor ended: the
    /// page's last entry.
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
            return Ok(Applied {
                relay_cursor: cursor,
                ..Applied::default()
            });
        }
        self.apply_batch(entries, Some(expected - 1))
    }

    /// Moves the relay cursor past entry `seq`, which cannot be merged (see
    /// [`crate::sync::SyncEvent::Skipped`]), and returns the new cursor:
    /// `seq`. Only the entry right after the cursor can be skipped.
    pub fn skip_relay_entry(&mut self, seq: u64) -> Result<u64, ApplyError> {
        let expected = self.relay_cursor()? + 1;
        if seq != expected {
            return Err(ApplyError::Gap {
                expected,
                found: seq,
            });
        }
        let tx = self.store.merge_transaction()?;
        raise_relay_cursor(&tx, seq)?;
        tx.commit()?;
        Ok(seq)
    }

    /// The relay log position this device has merged everything up to.
    pub fn relay_cursor(&self) -> Result<u64, StoreError> {
        Ok(self.store.meta_u64(MetaKey::RelayCursor)?.unwrap_or(0))
    }

    /// Whether this device holds the relay log entry `content_id`: a delta
    /// (in the clear, or opened from an envelope), or a sealed envelope it
    /// sealed or opened.
    pub fn holds(&self, content_id: &ContentId) -> Result<bool, StoreError> {
        self.store.has_entry(&content_id.0)
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

    /// What to push after outbox position `after`, oldest first, each with
    /// its position (pass the last one back to continue; start at the
    /// default): this device's sealed envelopes no relay has acknowledged
    /// (positioned by the last delta each seals), and its deltas that no
    /// envelope seals, as format-1 bytes: all of them on a device that
    /// holds no account key, none after [`Engine::seal_outbox`] on one
    /// that does. What a syncer with pushes still in flight pushes next.
    pub fn outbox_after(
        &self,
        after: OutboxPosition,
        limit: usize,
    ) -> Result<Vec<(OutboxPosition, Vec<u8>)>, StoreError> {
        let mut items: Vec<(OutboxPosition, Vec<u8>)> = self
            .store
            .envelope_outbox_after(after.0, limit)?
            .into_iter()
            .filter_map(|row| row.own)
            .map(|own| (OutboxPosition(own.through_local_seq), own.bytes))
            .collect();
        items.extend(
            self.store
                .unsealed_outbox_after(after.0, limit)?
                .into_iter()
                .map(|row| (OutboxPosition(row.local_seq), row.bytes)),
        );
        items.sort_by_key(|(position, _)| *position);
        items.truncate(limit);
        Ok(items)
    }

    /// Records that the relay accepted these deltas at these log positions,
    /// taking them out of the outbox. Unknown content ids are ignored.
    ///
    /// Positions that continue the relay cursor move it too: the device
    /// holds those deltas already (they are its own), so it need not pull
    /// them back. Returns where the cursor ended.
    ///
    /// The write is not synced to disk (whatever the [`Durability`]): a
    /// power cut that loses it loses nothing, since the deltas stay in the
    /// outbox and the relay acknowledges them again, at the same positions,
    /// when they are pushed again.
    ///
    /// [`Durability`]: crate::Durability
    pub fn acknowledge(&mut self, accepted: &[(ContentId, u64)]) -> Result<u64, StoreError> {
        let tx = self.store.unsynced_transaction()?;
        let mut cursor = tx.meta_u64(MetaKey::RelayCursor)?.unwrap_or(0);
        let mut known = Vec::with_capacity(accepted.len());
        for (content_id, seq) in accepted {
            if tx.set_relay_seq(&content_id.0, *seq)? {
                known.push(*seq);
            }
        }
        known.sort_unstable();
        for seq in known {
            if seq == cursor + 1 {
                cursor = seq;
            }
        }
        raise_relay_cursor(&tx, cursor)?;
        tx.commit()?;
        Ok(cursor)
    }
}

/// Moves the relay cursor to `to` inside `tx`. The cursor only rises (it
/// is where this device has merged everything up to): a store whose cursor
/// is past `to` was written by another engine meanwhile, and the write is
/// refused rather than moving it back.
pub(super) fn raise_relay_cursor(tx: &DeviceTx<'_>, to: u64) -> Result<(), StoreError> {
    let from = tx.meta_u64(MetaKey::RelayCursor)?.unwrap_or(0);
    if to < from {
        return Err(StoreError::Corrupt(format!(
            "the relay cursor would move back from {from} to {to}"
        )));
    }
    tx.set_meta_u64(MetaKey::RelayCursor, to)
}
