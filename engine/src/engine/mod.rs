//! The device engine, `Engine`: one account on one device, one flow per file.
//!
//! - `open.rs`: opening a device (creating it on first open).
//! - `credentials.rs`: the device's credentials: its relay addresses, its
//!   enrollment as the relay confirmed it, the session config its key
//!   signs, the expiry warning.
//! - `perform.rs`: the local flow, [`Engine::perform`].
//! - `merge.rs`: the remote flow, [`Engine::apply_remote`] and the causal
//!   release of a batch's deltas.
//! - `exchange.rs`: what crosses to other devices and the relay: export
//!   pages, the outbox, the relay cursor and acknowledgements.
//! - `journal.rs`: the multi-device events journal.
//! - `linking.rs`: the account key this device holds, linking a new
//!   device and the roster (not used for sealing yet).
//! - `queries.rs`: reads of the projections.
//! - `errors.rs`: why each flow can fail.
//!
//! This file holds what every flow shares: the `Engine` itself, the
//! document it loads on first use, and the one snapshot policy.

use std::cell::OnceCell;

use tandem_storage::device::{DeltaRow, DeviceStore, DeviceTx, DocChunk, MetaKey};
use tandem_storage::StoreError;
use tandem_transport::{DeviceKey, Entropy};

use crate::delta::{Delta, EncodedDelta};
use crate::doc::AccountDoc;
use crate::limits::DOC_CHANGES_PER_SNAPSHOT;

mod credentials;
mod envelopes;
mod errors;
mod exchange;
mod journal;
mod linking;
mod merge;
mod open;
mod perform;
mod project;
mod queries;

pub use credentials::{Credentials, CredentialsError, DeviceEnrollment};
pub use envelopes::{NeedsKey, SealOutboxError, SEAL_BYTES_BUDGET};
pub use errors::{ApplyError, LoadError, OpError, OpenError};
pub use exchange::{Export, ExportCursor, OutboxPosition, RelayDelta};
pub use journal::EventDelivery;
pub use linking::{
    KeyFingerprint, LinkState, LinkingError, RosterEntry, ShownCode, GENESIS_SNAPSHOT_ID,
    LINK_CODE_TEXT_CHARS,
};
pub use merge::{Applied, BlockedEntry};
pub use open::{Config, DeviceIdentity, Durability, StorePath};
pub use perform::{Performed, Recorded};
pub use project::Changed;
pub use queries::AccountState;

/// One account on one device: the account document, the message log and
/// the projections, in one SQLite store.
///
/// # Driving it
///
/// The engine does no IO besides its own store, reads no clock and draws no
/// randomness of its own: the caller passes `now_ms` to every call that
/// records time and an [`Entropy`] to [`Engine::open`]. That is what lets a
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
/// - With a relay, [`Engine::outbox`] is what to push,
///   [`Engine::acknowledge`] records where the relay put it, and
///   [`Engine::apply_relay`] merges a page of the relay's log together with
///   the new relay cursor. Each of them returns where the cursor ended.
/// - Queries ([`Engine::conversations`], [`Engine::messages`],
///   [`Engine::contacts`]…) read the projections, never the document.
/// - Multi-device events wait in a journal until the app acknowledges them
///   ([`Engine::next_event`], [`Engine::ack_events`]).
///
/// Every error leaves the store and the in-memory document exactly as they
/// were before the call.
pub struct Engine {
    store: DeviceStore,
    /// Loaded on first use; emptied after a failed write so the next use
    /// reloads what the store holds.
    doc: OnceCell<AccountDoc>,
    device: DeviceIdentity,
    /// The device's signing key: it signs the login proof.
    key: DeviceKey,
    /// The engine's one source of randomness.
    entropy: Box<dyn Entropy>,
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
    /// The document, loaded from the store on first use.
    fn doc(&self) -> Result<&AccountDoc, LoadError> {
        loaded(&self.doc, &self.store, &self.device)
    }

    fn doc_mut(&mut self) -> Result<&mut AccountDoc, LoadError> {
        loaded(&self.doc, &self.store, &self.device)?;
        Ok(self.doc.get_mut().expect("loaded just now"))
    }

    /// Forgets the in-memory document after a failed write, so the next use
    /// reloads what the store holds and memory and disk agree again.
    fn reload_doc(&mut self) {
        self.doc = OnceCell::new();
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

/// The snapshot policy, the same for local operations and merges: `added`
/// document changes were just appended to the chunk table in `tx` (and are
/// in `doc`); once [`DOC_CHANGES_PER_SNAPSHOT`] have piled up since the
/// last snapshot, every chunk is replaced by one snapshot of `doc`, which
/// bounds both load time and the chunk table.
fn count_doc_changes(tx: &DeviceTx<'_>, doc: &AccountDoc, added: i64) -> Result<(), StoreError> {
    debug_assert!(added >= 0);
    if added == 0 {
        return Ok(());
    }
    let since = tx.meta(MetaKey::DocChangesSinceSnapshot)?.unwrap_or(0) + added;
    if since >= DOC_CHANGES_PER_SNAPSHOT {
        tx.replace_doc_with_snapshot(&doc.save())?;
        tx.set_meta(MetaKey::DocChangesSinceSnapshot, 0)
    } else {
        tx.set_meta(MetaKey::DocChangesSinceSnapshot, since)
    }
}

/// The row a delta is stored as.
fn delta_row(delta: &Delta, encoded: &EncodedDelta, applied: bool) -> DeltaRow {
    DeltaRow {
        local_seq: 0,
        content_id: encoded.content_id().0,
        origin: delta.origin.0,
        origin_seq: delta.origin_seq,
        made_at_ms: delta.made_at_ms,
        bytes: encoded.0.clone(),
        relay_seq: None,
        applied,
        envelope: None,
    }
}
