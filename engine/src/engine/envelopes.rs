//! The sealed envelope as the unit on the wire, the delta as the unit in
//! the store (docs/design-epochs-e2ee.md §13 item 2).
//!
//! - A device that holds the account key seals its outbox before it
//!   pushes ([`Engine::seal_outbox`]): runs of its own deltas, at most
//!   [`OPS_PER_ENVELOPE_MAX`] operations and [`SEAL_BYTES_BUDGET`] bytes of
//!   deltas each, become envelopes of its chain, in one durable
//!   transaction, so an envelope that may have been pushed is never sealed
//!   again with other bytes. The relay acknowledges the envelope by its
//!   content id, which sets the position of each of its deltas.
//! - A relay page's envelopes are opened before the merge
//!   ([`Opener`]): the origin's key comes from the roster (and from the
//!   Links of envelopes opened earlier in the same page), the key from the
//!   epoch the header names; each operation becomes the format-1 delta its
//!   origin stored (the same bytes, so the same content id), and enters
//!   the merge like any delta.
//! - A device without the key, or one that does not know the origin yet,
//!   cannot open an envelope: the merge takes the rest of the page and the
//!   relay cursor stops before it ([`NeedsKey`]); it is never skipped.
//!
//! A device that holds no key pushes format-1 deltas as before (design
//! §13 item 3, mixed accounts until epoch 1).

use std::collections::HashMap;
use std::fmt;

use tandem_storage::device::{DeltaRow, EnvelopeRow, OwnEnvelope};
use tandem_storage::StoreError;
use tandem_transport::envelope::{Envelope, SnapshotId, ENVELOPE_FORMAT};
use tandem_transport::{ContentId, DeviceId, DevicePublicKey};
use zeroize::Zeroize;

use super::Engine;
use crate::delta::{Delta, DeltaError, EncodedDelta, DELTA_FORMAT};
use crate::limits::OPS_PER_ENVELOPE_MAX;
use crate::op::{DeviceOp, Op};
use crate::seal::{
    open, seal, BodyError, BodyV1, Changes, EnvelopeKey, GenerationRoot, OriginSigner, SealError,
    SealHeader,
};

/// Bytes of deltas sealed into one envelope at most (a delta larger than
/// this goes alone): a quarter of the envelope limit, so that even an
/// incompressible run fits with the body's framing.
pub const SEAL_BYTES_BUDGET: usize = tandem_transport::limits::ENVELOPE_BYTES_MAX / 4;

/// Own deltas read per sealing round; [`Engine::seal_outbox`] goes on until
/// none is left.
const UNSEALED_PER_ROUND: usize = 4 * OPS_PER_ENVELOPE_MAX;

/// Why an envelope cannot be opened yet. It is not skipped: the relay
/// cursor stops before it until this device can open it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NeedsKey {
    /// This device holds no account key: link it (design §5.1).
    NotLinked,
    /// It holds no key of the envelope's epoch.
    UnknownEpoch {
        /// The epoch the envelope names.
        epoch: u64,
    },
    /// The roster does not list the envelope's origin (yet).
    UnknownOrigin {
        /// The sealing device.
        origin: DeviceId,
    },
}

impl fmt::Display for NeedsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NeedsKey::NotLinked => f.write_str(
                "a sealed envelope, and this device holds no account key: link it to open it",
            ),
            NeedsKey::UnknownEpoch { epoch } => {
                write!(
                    f,
                    "a sealed envelope of epoch {epoch}, whose key this device does not hold"
                )
            }
            NeedsKey::UnknownOrigin { origin } => write!(
                f,
                "a sealed envelope of device {origin}, which this device's roster does not list"
            ),
        }
    }
}

/// Why [`Engine::seal_outbox`] sealed nothing. Nothing was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealOutboxError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored own delta no longer decodes: the store is corrupt.
    #[error("an own delta in the store does not decode: {0}")]
    StoredDelta(#[source] DeltaError),
    /// The run could not be sealed: a single delta too large for an
    /// envelope, or a body the seal refuses.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The run is not one run of this device's operations (a defect).
    #[error(transparent)]
    Body(#[from] BodyError),
}

impl Engine {
    /// Seals this device's own deltas that no envelope seals yet, when it
    /// holds the account key: each run becomes the next envelope of its
    /// chain, in one durable transaction. Returns how many envelopes it
    /// sealed; 0 when it holds no key (its deltas are pushed as they are)
    /// or nothing waits. [`crate::sync::Syncer::push`] calls it before
    /// every push.
    pub fn seal_outbox(&mut self, now_ms: i64) -> Result<usize, SealOutboxError> {
        // A device without the key reads nothing more: this runs before
        // every push.
        let Some((epoch, key)) = self.newest_envelope_key()? else {
            return Ok(0);
        };
        let mut sealed = 0;
        loop {
            let unsealed = self.store.unsealed_outbox_after(0, UNSEALED_PER_ROUND)?;
            if unsealed.is_empty() {
                return Ok(sealed);
            }
            sealed += self.seal_round(unsealed, epoch, &key, now_ms)?;
        }
    }

    fn seal_round(
        &mut self,
        unsealed: Vec<DeltaRow>,
        epoch: u64,
        key: &EnvelopeKey,
        now_ms: i64,
    ) -> Result<usize, SealOutboxError> {
        let me = self.device.device_id;
        let signer = OriginSigner::new(&self.key);
        let (mut chain_pos, mut prev) = match self.store.own_chain_head()? {
            Some(head) => (head.chain_pos, ContentId(head.content_id)),
            None => (0, ContentId([0; 32])),
        };
        let runs = runs(&unsealed);
        let tx = self.store.transaction()?;
        for run in &runs {
            let deltas = run
                .iter()
                .map(|row| {
                    Delta::decode(&row.bytes, &self.device.account)
                        .map(|(delta, _)| delta)
                        .map_err(SealOutboxError::StoredDelta)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let body = BodyV1::from_deltas(deltas, now_ms)?;
            chain_pos += 1;
            let header = SealHeader {
                epoch,
                origin: me,
                chain_pos,
                prev,
            };
            let bytes = seal(
                key,
                &self.device.account,
                header,
                &body,
                &signer,
                self.entropy.as_mut(),
            )?;
            let id = ContentId::of(&bytes);
            let last = run.last().expect("a run is never empty");
            tx.insert_envelope(&EnvelopeRow {
                content_id: id.0,
                origin: me.0,
                chain_pos,
                prev: prev.0,
                epoch,
                own: Some(OwnEnvelope {
                    bytes,
                    through_local_seq: last.local_seq,
                }),
                relay_seq: None,
            })?;
            for row in *run {
                tx.set_delta_envelope(&row.content_id, &id.0)?;
            }
            prev = id;
        }
        tx.commit()?;
        Ok(runs.len())
    }

    /// The envelope key of the newest key generation this device holds,
    /// with its epoch; `None` when it holds none.
    fn newest_envelope_key(&self) -> Result<Option<(u64, EnvelopeKey)>, StoreError> {
        let Some(mut row) = self.store.account_keys()?.pop() else {
            return Ok(None);
        };
        let root = GenerationRoot::from_bytes(row.root);
        row.root.zeroize();
        let key = root
            .epoch_key(row.epoch, &SnapshotId(row.snapshot_id))
            .envelope_key();
        Ok(Some((row.epoch, key)))
    }

    /// What opens this batch's envelopes: the keys this device holds and
    /// the roster, read once per batch.
    pub(super) fn opener(&self) -> Result<Opener, StoreError> {
        let mut keys = Vec::new();
        for mut row in self.store.account_keys()? {
            let root = GenerationRoot::from_bytes(row.root);
            row.root.zeroize();
            let key = root
                .epoch_key(row.epoch, &SnapshotId(row.snapshot_id))
                .envelope_key();
            keys.push((row.epoch, key));
        }
        let mut origins: HashMap<DeviceId, DevicePublicKey> = self
            .store
            .roster()?
            .into_iter()
            .map(|row| (DeviceId(row.device), DevicePublicKey(row.sign_pk)))
            .collect();
        // A Link opened from an envelope names its device from then on,
        // also while its document change waits for changes it depends on:
        // those may be in the linked device's own envelopes, which only
        // the Link opens. (One that came in the clear names nobody.)
        for row in self.store.pending_deltas()? {
            if row.envelope.is_none() {
                continue;
            }
            let Ok((delta, _)) = Delta::decode(&row.bytes, &self.device.account) else {
                continue;
            };
            if let Op::Device(DeviceOp::Link {
                device, sign_pk, ..
            }) = delta.op
            {
                origins.entry(device).or_insert(sign_pk);
            }
        }
        Ok(Opener { keys, origins })
    }

    /// Whether an envelope of `origin` at `chain_pos` is stored: the same
    /// one (`Ok(true)`), none (`Ok(false)`), or another one, a fork.
    pub(super) fn envelope_known(
        &self,
        origin: DeviceId,
        chain_pos: u64,
        content_id: ContentId,
    ) -> Result<Result<bool, DeltaError>, StoreError> {
        Ok(match self.store.envelope_at(&origin.0, chain_pos)? {
            None => Ok(false),
            Some(id) if id == content_id.0 => Ok(true),
            Some(_) => Err(DeltaError::ChainFork { origin, chain_pos }),
        })
    }
}

/// Splits own unsealed deltas (by store position) into runs to seal: each
/// of consecutive operation numbers, at most [`OPS_PER_ENVELOPE_MAX`]
/// operations and [`SEAL_BYTES_BUDGET`] bytes (a larger delta alone). A
/// number missing in between (a delta the relay acknowledged alone)
/// starts a new run.
fn runs(rows: &[DeltaRow]) -> Vec<&[DeltaRow]> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, row) in rows.iter().enumerate() {
        let continues = i > start
            && row.origin_seq == rows[i - 1].origin_seq + 1
            && i - start < OPS_PER_ENVELOPE_MAX
            && bytes + row.bytes.len() <= SEAL_BYTES_BUDGET;
        if i > start && !continues {
            runs.push(&rows[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += row.bytes.len();
    }
    if start < rows.len() {
        runs.push(&rows[start..]);
    }
    runs
}

/// Whether `bytes` are a sealed envelope (format 2) rather than a delta:
/// both begin with their format number.
pub(super) fn is_envelope(bytes: &[u8]) -> bool {
    matches!(
        postcard::take_from_bytes::<u16>(bytes),
        Ok((format, _)) if format == ENVELOPE_FORMAT
    )
}

/// The keys a batch's envelopes are opened with.
pub(super) struct Opener {
    /// The envelope key of each epoch this device holds a key of.
    keys: Vec<(u64, EnvelopeKey)>,
    /// Signing keys by device: the roster, the Links of waiting deltas
    /// that were opened from envelopes, and those this batch opened.
    origins: HashMap<DeviceId, DevicePublicKey>,
}

/// An opened envelope: where it stands in its origin's chain, and its
/// operations as the deltas their origin stored.
pub(super) struct OpenedEnvelope {
    pub(super) content_id: ContentId,
    pub(super) origin: DeviceId,
    pub(super) chain_pos: u64,
    pub(super) prev: ContentId,
    pub(super) epoch: u64,
    pub(super) deltas: Vec<(Delta, Option<automerge::Change>, EncodedDelta)>,
}

/// Why an envelope of a batch was not opened.
pub(super) enum NotOpened {
    /// Not now: the cursor waits before it.
    Later(NeedsKey),
    /// Never: the entry is refused.
    Refused(DeltaError),
}

impl Opener {
    /// Opens one envelope of this device's account. An origin's Links are
    /// trusted for the envelopes after it in the batch.
    pub(super) fn open(
        &mut self,
        bytes: &[u8],
        account: &tandem_transport::AccountId,
    ) -> Result<OpenedEnvelope, NotOpened> {
        let header = Envelope::decode(bytes)
            .map_err(|e| NotOpened::Refused(DeltaError::Envelope(Box::new(e.into()))))?
            .header;
        if self.keys.is_empty() {
            return Err(NotOpened::Later(NeedsKey::NotLinked));
        }
        let Some((_, key)) = self.keys.iter().find(|(epoch, _)| *epoch == header.epoch) else {
            return Err(NotOpened::Later(NeedsKey::UnknownEpoch {
                epoch: header.epoch,
            }));
        };
        let Some(origin_key) = self.origins.get(&header.origin) else {
            return Err(NotOpened::Later(NeedsKey::UnknownOrigin {
                origin: header.origin,
            }));
        };
        let opened = open(bytes, account, key, origin_key)
            .map_err(|e| NotOpened::Refused(DeltaError::Envelope(Box::new(e))))?;
        let origin = header.origin;
        let first = opened.body.first_origin_seq;
        let Changes::Raw(raw) = opened.body.changes;
        let mut raw: Vec<Option<Vec<u8>>> = raw.into_iter().map(Some).collect();
        let mut decoded: Vec<Option<automerge::Change>> =
            opened.changes.into_iter().map(Some).collect();
        let mut deltas = Vec::with_capacity(opened.body.ops.len());
        for (i, entry) in opened.body.ops.into_iter().enumerate() {
            if let Op::Device(DeviceOp::Link {
                device, sign_pk, ..
            }) = &entry.op
            {
                // The roster's entry, if it has one, stays what it is:
                // the earliest Link holds (checking a Link against it is
                // the roster's step 3).
                self.origins.entry(*device).or_insert(*sign_pk);
            }
            // The body's checks passed, so every index names one change
            // of each list, once; a miss is refused all the same.
            let (change, decoded_change) = match entry.change {
                Some(index) => {
                    let index = index as usize;
                    let pair = raw
                        .get_mut(index)
                        .and_then(Option::take)
                        .zip(decoded.get_mut(index).and_then(Option::take));
                    let Some((change, decoded_change)) = pair else {
                        return Err(NotOpened::Refused(DeltaError::Malformed(format!(
                            "operation {i} names change {index} twice or past the end"
                        ))));
                    };
                    (Some(change), Some(decoded_change))
                }
                None => (None, None),
            };
            let delta = Delta {
                format: DELTA_FORMAT,
                account: account.clone(),
                origin,
                origin_seq: first + i as u64,
                made_at_ms: entry.made_at_ms,
                op: entry.op,
                change,
                read_markers: entry.read_markers,
            };
            let encoded = delta.encode();
            deltas.push((delta, decoded_change, encoded));
        }
        Ok(OpenedEnvelope {
            content_id: ContentId::of(bytes),
            origin,
            chain_pos: header.chain_pos,
            prev: header.prev,
            epoch: header.epoch,
            deltas,
        })
    }
}

impl OpenedEnvelope {
    /// The row it is stored as: where it stands in its origin's chain.
    pub(super) fn row(&self, relay_seq: Option<u64>) -> EnvelopeRow {
        EnvelopeRow {
            content_id: self.content_id.0,
            origin: self.origin.0,
            chain_pos: self.chain_pos,
            prev: self.prev.0,
            epoch: self.epoch,
            own: None,
            relay_seq,
        }
    }
}
