//! The multi-device events journal, kept until the app acknowledges it.
//!
//! What merges and the relay tell the app, one row per event, delivered
//! until acknowledged.

use std::collections::{btree_map, BTreeMap};

use tandem_storage::device::{DeviceTx, EventRow, MetaKey};
use tandem_storage::StoreError;
use tandem_transport::DeviceId;

use super::project::Projected;
use super::Engine;
use crate::delta::Delta;
use crate::doc::AccountDoc;
use crate::event::*;
use crate::op::*;
use crate::rules::Lookup;
use crate::ContentId;

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

/// What an event is stored as in the journal; the sequence number, source
/// device and time are columns of their own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct StoredEvent {
    kind: EventKind,
    superseded: bool,
}

/// A journal body: the stored event in postcard, then, only when the event
/// has an `ext`, the `ext` in postcard after it. Bodies written before
/// `ext` existed end after the stored event, so they read as `ext: None`.
fn encode_event(event: &StoredEvent, ext: Option<&str>) -> Vec<u8> {
    let mut body = postcard::to_stdvec(event).expect("an event always encodes");
    if let Some(ext) = ext {
        body.extend(postcard::to_stdvec(ext).expect("a string always encodes"));
    }
    body
}

fn decode_event(body: &[u8]) -> Result<(StoredEvent, Option<String>), postcard::Error> {
    let (stored, rest) = postcard::take_from_bytes::<StoredEvent>(body)?;
    if rest.is_empty() {
        return Ok((stored, None));
    }
    Ok((stored, Some(postcard::from_bytes::<String>(rest)?)))
}

impl Engine {
    /// Journaled events after position `after`, oldest first, whether
    /// acknowledged or not.
    pub fn events_after(&self, after: i64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let rows = self.store.events_after(after, limit)?;
        rows.into_iter()
            .map(|row| {
                let (stored, ext) = decode_event(&row.body).map_err(|e| {
                    StoreError::Corrupt(format!("journaled event {}: {e}", row.seq))
                })?;
                Ok(Event {
                    seq: row.seq,
                    source_device: DeviceId(row.origin),
                    made_at_ms: row.made_at_ms,
                    superseded: stored.superseded,
                    kind: stored.kind,
                    ext,
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
        hasher.update(&encode_event(
            &StoredEvent {
                kind: kind.clone(),
                superseded: false,
            },
            None,
        ));
        self.journal(
            now_ms,
            source,
            ContentId(*hasher.finalize().as_bytes()),
            kind,
        )
    }

    /// Journals `event` once whatever the time: its identity is the source
    /// and the event itself (a warning about one expiry, say), so asking
    /// again journals nothing. Returns the new event's sequence number, or
    /// `None` when it was journaled before.
    pub(crate) fn record_connection_event_once(
        &mut self,
        now_ms: i64,
        source: DeviceId,
        event: ConnectionEvent,
    ) -> Result<Option<i64>, StoreError> {
        let kind = EventKind::Connection(event);
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"tandem connection event once");
        hasher.update(&source.0);
        hasher.update(&encode_event(
            &StoredEvent {
                kind: kind.clone(),
                superseded: false,
            },
            None,
        ));
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
            origin_seq: None,
            made_at_ms: now_ms,
            body: encode_event(
                &StoredEvent {
                    kind,
                    superseded: false,
                },
                None,
            ),
        })?;
        tx.commit()?;
        Ok(seq)
    }
}

/// Journals, inside the merge transaction, one event per operation merged
/// from another device, in merge order. `doc` and `projected` are the
/// batch's outcome (the merged document, the rows just projected), so
/// "superseded" says whether a concurrent operation won. Returns how many
/// events are new (a delta merged before is not journaled again).
pub(super) fn journal_merged(
    tx: &DeviceTx<'_>,
    doc: &AccountDoc,
    projected: &Projected,
    merged: &[(Delta, ContentId)],
    me: DeviceId,
) -> Result<usize, StoreError> {
    // The read markers the batch's events compare against.
    let mut markers = BTreeMap::new();
    for (delta, _) in merged {
        if let Op::Conversation(ConversationOp::MarkRead { conversation, .. }) = &delta.op {
            if let btree_map::Entry::Vacant(slot) = markers.entry(conversation.key()) {
                let marker = tx.read_marker(slot.key())?;
                slot.insert(marker);
            }
        }
    }
    // The roster entries of the devices the batch's Link operations name.
    let mut roster = BTreeMap::new();
    for (delta, _) in merged {
        if let Op::Device(op) = &delta.op {
            let device = op.device().0;
            if let btree_map::Entry::Vacant(slot) = roster.entry(device) {
                if let Some(row) = tx.roster_entry(&device)? {
                    slot.insert(row);
                }
            }
        }
    }
    let lookup = Lookup {
        doc,
        flags: &projected.flags,
        groups: &projected.groups,
        read_markers: &markers,
        roster: &roster,
    };
    let mut journaled = 0;
    for (delta, content_id) in merged {
        if delta.origin == me {
            continue;
        }
        let kind = EventKind::of(delta);
        let superseded = kind.superseded(&lookup);
        let seq = tx.append_event(&EventRow {
            seq: 0,
            content_id: content_id.0,
            origin: delta.origin.0,
            origin_seq: Some(delta.origin_seq),
            made_at_ms: delta.made_at_ms,
            body: encode_event(&StoredEvent { kind, superseded }, delta.op.ext()),
        })?;
        journaled += usize::from(seq.is_some());
    }
    Ok(journaled)
}
