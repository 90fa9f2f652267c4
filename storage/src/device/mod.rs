//! The device store: one SQLite file per account per device.
//!
//! It holds the device's identity, the account document's chunks, every delta
//! the device knows (its own outbox among them), the message log, the
//! projections the app queries, and the multi-device events journal.
//!
//! Reads go through [`DeviceStore`]; every write goes through a
//! [`DeviceTx`], so one logical operation is one SQLite transaction.
//!
//! Architecture invariant: this module knows nothing of automerge or of the
//! engine's operations. Document chunks, delta bytes and event bodies are
//! opaque blobs here; the engine gives them meaning.

mod rows;
mod tx;

#[cfg(test)]
mod conformance;

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

pub use rows::*;
pub use tx::DeviceTx;

use crate::migrate::{self, Migration};
use crate::values::key;
use crate::{u64_from_sql, OpenError, StoreError};

/// The device store's migrations, in order. The schema version is the
/// number of migrations applied.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../../migrations/device/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../../migrations/device/0002_out_of_range_positions.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../../migrations/device/0003_group_requests.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../../migrations/device/0004_conversation_settings.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../../migrations/device/0005_group_disabled.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../../migrations/device/0006_group_acks.sql"),
    },
    Migration {
        version: 7,
        sql: include_str!("../../migrations/device/0007_device_keys.sql"),
    },
    Migration {
        version: 8,
        sql: include_str!("../../migrations/device/0008_account_keys.sql"),
    },
    Migration {
        version: 9,
        sql: include_str!("../../migrations/device/0009_events_by_operation.sql"),
    },
    Migration {
        version: 10,
        sql: include_str!("../../migrations/device/0010_roster.sql"),
    },
    Migration {
        version: 11,
        sql: include_str!("../../migrations/device/0011_envelopes.sql"),
    },
];

/// The outbox: this device's deltas the relay has not acknowledged. Read
/// through the partial index of unacknowledged deltas, named so that
/// SQLite cannot pick the `(origin, origin_seq)` index instead: left to
/// itself it did, and every push then scanned and sorted every operation
/// the device ever made (B3: a tenth of the sender's time after 10,000
/// operations, growing with the account's age). A schema without the index
/// is an error, not a slow plan.
const OUTBOX: &str = "INDEXED BY deltas_outbox \
     WHERE relay_seq IS NULL AND origin = (SELECT device_id FROM identity)";

/// `group_users.list` for a group's members, its ban list and its allow
/// list.
const GROUP_LIST_MEMBER: &str = "member";
const GROUP_LIST_BANNED: &str = "banned";
const GROUP_LIST_ALLOWED: &str = "allowed";

/// `group_requests.kind` for users this account invited and for users who
/// applied to join.
const GROUP_REQUEST_INVITED: &str = "invited";
const GROUP_REQUEST_APPLICANT: &str = "applicant";

/// Where a device store lives.
#[derive(Debug, Clone, Copy)]
pub enum Location<'a> {
    /// A file on disk, created if missing.
    File(&'a Path),
    /// A private in-memory database, gone when the store is dropped.
    Memory,
}

/// An envelope's place in its origin's chain as a store keeps it: its
/// content id, and the previous envelope's id its header names.
pub type ChainLink = ([u8; 32], [u8; 32]);

/// A device's SQLite store.
pub struct DeviceStore {
    conn: Connection,
    /// Whether [`DeviceStore::merge_transaction`] commits without a disk
    /// sync (see [`DeviceStore::set_relaxed_merges`]).
    relaxed_merges: bool,
    /// Whether the connection is at `synchronous=FULL` now (it switches
    /// between transactions only when merges are relaxed).
    synced_commits: bool,
}

impl std::fmt::Debug for DeviceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceStore").finish_non_exhaustive()
    }
}

impl DeviceStore {
    /// Opens (or creates) the store and brings its schema up to date.
    ///
    /// A file whose schema is newer than this code knows is refused with
    /// [`OpenError::SchemaTooNew`], never downgraded.
    pub fn open(location: Location<'_>) -> Result<Self, OpenError> {
        let mut conn = match location {
            Location::File(path) => Connection::open(path),
            Location::Memory => Connection::open_in_memory(),
        }
        .map_err(OpenError::Sqlite)?;
        migrate::open_durable(&mut conn, MIGRATIONS)?;
        Ok(DeviceStore::on(conn))
    }

    /// The store on a connection that `open_durable` set up.
    fn on(conn: Connection) -> Self {
        DeviceStore {
            conn,
            relaxed_merges: false,
            synced_commits: true,
        }
    }

    /// Whether [`DeviceStore::merge_transaction`]s commit without a disk
    /// sync (`synchronous=NORMAL` for them; every other transaction stays
    /// `FULL`). In WAL mode such a commit survives the app's crash; a power
    /// cut or an OS crash can lose the merges since the last synced commit
    /// (whole transactions, never part of one: WAL frames are written in
    /// order, so a synced commit makes every commit before it durable too).
    /// Off at open.
    pub fn set_relaxed_merges(&mut self, relaxed: bool) {
        self.relaxed_merges = relaxed;
    }

    /// Whether merges commit without a disk sync.
    pub fn relaxed_merges(&self) -> bool {
        self.relaxed_merges
    }

    /// Sets `synchronous` to FULL or NORMAL if it is not so already.
    fn sync_commits(&mut self, synced: bool) -> Result<(), StoreError> {
        if self.synced_commits != synced {
            let value = if synced { "FULL" } else { "NORMAL" };
            self.conn.pragma_update(None, "synchronous", value)?;
            self.synced_commits = synced;
        }
        Ok(())
    }

    /// Starts a transaction that writes only what can be fetched again if
    /// a power cut loses it (remote deltas merged with the relay cursor
    /// that covers them): it commits without a disk sync when merges are
    /// relaxed, and like [`DeviceStore::transaction`] otherwise.
    pub fn merge_transaction(&mut self) -> Result<DeviceTx<'_>, StoreError> {
        self.sync_commits(!self.relaxed_merges)?;
        Ok(DeviceTx::new(self.conn.transaction()?))
    }

    /// Starts a transaction that commits without a disk sync whatever the
    /// setting, for what a power cut may lose without anything being lost:
    /// what the relay says again when asked (a push's acknowledgement: the
    /// delta stays in the outbox, is pushed again, and the relay, which
    /// stores it once by content id, answers with the same position). In
    /// WAL mode a later synced commit makes it durable too, so a power cut
    /// loses at most the unsynced commits after the last synced one.
    pub fn unsynced_transaction(&mut self) -> Result<DeviceTx<'_>, StoreError> {
        self.sync_commits(false)?;
        Ok(DeviceTx::new(self.conn.transaction()?))
    }

    /// The schema version this code writes.
    pub fn schema_version_known() -> u32 {
        MIGRATIONS.len() as u32
    }

    /// Starts the transaction that one logical operation writes through.
    pub fn transaction(&mut self) -> Result<DeviceTx<'_>, StoreError> {
        self.sync_commits(true)?;
        Ok(DeviceTx::new(self.conn.transaction()?))
    }

    /// The device's identity, or `None` for a store opened for the first time.
    pub fn identity(&self) -> Result<Option<Identity>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT account, device_id, device_name, platform, created_at_ms, signing_key \
                 FROM identity",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Option<Vec<u8>>>(5)?,
                    ))
                },
            )
            .optional()?;
        let Some((account, device_id, device_name, platform, created_at_ms, signing_key)) = row
        else {
            return Ok(None);
        };
        let device_id = device_id
            .try_into()
            .map_err(|_| StoreError::Corrupt("identity.device_id is not 16 bytes".into()))?;
        let signing_key = signing_key
            .map(|key| {
                key.try_into()
                    .map_err(|_| StoreError::Corrupt("identity.signing_key is not 32 bytes".into()))
            })
            .transpose()?;
        Ok(Some(Identity {
            account,
            device_id,
            device_name,
            platform,
            created_at_ms,
            signing_key,
        }))
    }

    /// The relay addresses and the enrollment the device last learned of.
    pub fn credentials(&self) -> Result<Credentials, StoreError> {
        let (relays, token_id, enrolled_at_ms, expires_at_ms, active) = self.conn.query_row(
            "SELECT relays, token_id, enrolled_at_ms, expires_at_ms, active FROM credentials",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<Vec<u8>>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, bool>(4)?,
                ))
            },
        )?;
        let enrollment = match token_id {
            None => None,
            Some(token_id) => Some(DeviceEnrollment {
                token_id: token_id.try_into().map_err(|_| {
                    StoreError::Corrupt("credentials.token_id is not 16 bytes".into())
                })?,
                enrolled_at_ms: u64_from_sql(
                    "credentials.enrolled_at_ms",
                    enrolled_at_ms.unwrap_or(-1),
                )?,
                expires_at_ms: u64_from_sql(
                    "credentials.expires_at_ms",
                    expires_at_ms.unwrap_or(-1),
                )?,
                active,
            }),
        };
        Ok(Credentials {
            relays: relays
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
            enrollment,
        })
    }

    /// The key generations of the account this device holds, oldest
    /// first; empty on a device that was never linked.
    pub fn account_keys(&self) -> Result<Vec<AccountKeyRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT generation, root, source, epoch, snapshot_id, granted_by, added_at_ms \
             FROM account_keys ORDER BY generation",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Vec<u8>>(4)?,
                r.get::<_, Option<Vec<u8>>>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })?;
        let mut keys = Vec::new();
        for row in rows {
            let (generation, root, source, epoch, snapshot_id, granted_by, added_at_ms) = row?;
            keys.push(AccountKeyRow {
                generation: u32::try_from(generation).map_err(|_| {
                    StoreError::Corrupt(format!("account_keys.generation {generation}"))
                })?,
                root: key(root, "account_keys.root")?,
                source: KeySource::parse(&source)?,
                epoch: u64_from_sql("account_keys.epoch", epoch)?,
                snapshot_id: key(snapshot_id, "account_keys.snapshot_id")?,
                granted_by: granted_by
                    .map(|id| key(id, "account_keys.granted_by"))
                    .transpose()?,
                added_at_ms,
            });
        }
        Ok(keys)
    }

    /// The link session this device keeps while it waits for a grant.
    pub fn link_session(&self) -> Result<Option<LinkSessionRow>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT kem_seed, psk, created_at_ms, expires_at_ms FROM link_session",
                [],
                |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(kem_seed, psk, created_at_ms, expires_at_ms)| {
            Ok(LinkSessionRow {
                kem_seed: key(kem_seed, "link_session.kem_seed")?,
                psk: key(psk, "link_session.psk")?,
                created_at_ms,
                expires_at_ms,
            })
        })
        .transpose()
    }

    /// The account's roster as this device knows it, by device id.
    pub fn roster(&self) -> Result<Vec<RosterRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {ROSTER_COLUMNS} FROM roster ORDER BY device"
        ))?;
        let mut rows = stmt.query([])?;
        let mut roster = Vec::new();
        while let Some(row) = rows.next()? {
            roster.push(RosterRow::read(row)?);
        }
        Ok(roster)
    }

    /// The seed of this device's own KEM key, if it has one.
    pub fn device_kem_seed(&self) -> Result<Option<[u8; 32]>, StoreError> {
        self.conn
            .query_row("SELECT kem_seed FROM device_kem", [], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .optional()?
            .map(|seed| key(seed, "device_kem.kem_seed"))
            .transpose()
    }

    /// A named counter, or `None` if it was never set.
    pub fn meta(&self, key: MetaKey) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [key.as_str()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// A named counter that is never negative (a cursor, an operation
    /// number); a negative stored value is [`StoreError::Corrupt`].
    pub fn meta_u64(&self, key: MetaKey) -> Result<Option<u64>, StoreError> {
        self.meta(key)?
            .map(|value| u64_from_sql(key.as_str(), value))
            .transpose()
    }

    /// The document's chunks in the order they must be loaded: the snapshot
    /// (if any) first, then changes in the order they were written.
    pub fn doc_chunks(&self) -> Result<Vec<DocChunk>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT kind, bytes FROM doc_chunks ORDER BY kind = 'change', id")?;
        let rows = stmt.query_map([], |r| {
            let kind: String = r.get(0)?;
            let bytes: Vec<u8> = r.get(1)?;
            Ok((kind, bytes))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, bytes) = row?;
            out.push(match kind.as_str() {
                "snapshot" => DocChunk::Snapshot(bytes),
                _ => DocChunk::Change(bytes),
            });
        }
        Ok(out)
    }

    /// Whether a delta with this content id is stored.
    pub fn has_delta(&self, content_id: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM deltas WHERE content_id = ?1")?
            .exists([&content_id[..]])?)
    }

    /// Whether the store holds a relay entry by this content id: a delta,
    /// or an envelope this device sealed or opened.
    pub fn has_entry(&self, content_id: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self.has_delta(content_id)?
            || self
                .conn
                .prepare_cached("SELECT 1 FROM envelopes WHERE content_id = ?1")?
                .exists([&content_id[..]])?)
    }

    /// Up to `limit` stored deltas (own and remote) after `local_seq`, oldest
    /// first.
    pub fn deltas_after(&self, local_seq: i64, limit: usize) -> Result<Vec<DeltaRow>, StoreError> {
        self.delta_rows(
            "WHERE local_seq > ?1 ORDER BY local_seq LIMIT ?2",
            params![local_seq, limit as i64],
        )
    }

    /// Up to `limit` of this device's own deltas that no relay has
    /// acknowledged yet, oldest first.
    pub fn outbox(&self, limit: usize) -> Result<Vec<DeltaRow>, StoreError> {
        self.delta_rows(
            &format!("{OUTBOX} ORDER BY local_seq LIMIT ?1"),
            params![limit as i64],
        )
    }

    /// Up to `limit` of this device's own deltas after store position
    /// `local_seq` that no relay has accepted and no envelope seals yet,
    /// oldest first: what the next seal takes, or what a device without
    /// the account key pushes as it is.
    pub fn unsealed_outbox_after(
        &self,
        local_seq: i64,
        limit: usize,
    ) -> Result<Vec<DeltaRow>, StoreError> {
        self.delta_rows(
            "INDEXED BY deltas_unsealed \
             WHERE relay_seq IS NULL AND envelope IS NULL \
             AND origin = (SELECT device_id FROM identity) AND local_seq > ?1 \
             ORDER BY local_seq LIMIT ?2",
            params![local_seq, limit as i64],
        )
    }

    /// Up to `limit` of this device's own envelopes that no relay has
    /// acknowledged, sealing deltas after store position `local_seq`,
    /// oldest first: what to push next.
    pub fn envelope_outbox_after(
        &self,
        local_seq: i64,
        limit: usize,
    ) -> Result<Vec<EnvelopeRow>, StoreError> {
        let sql = format!(
            "SELECT {ENVELOPE_COLUMNS} FROM envelopes INDEXED BY envelopes_outbox \
             WHERE own = 1 AND relay_seq IS NULL AND through_local_seq > ?1 \
             ORDER BY through_local_seq LIMIT ?2"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![local_seq, limit as i64])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(EnvelopeRow::read(row)?);
        }
        Ok(out)
    }

    /// The content id and the previous id its header names of the
    /// envelope at `chain_pos` of `origin`'s chain, if one is stored.
    pub fn chain_link_at(
        &self,
        origin: &[u8; 16],
        chain_pos: u64,
    ) -> Result<Option<ChainLink>, StoreError> {
        let Ok(chain_pos) = i64::try_from(chain_pos) else {
            // No store holds a position past i64::MAX.
            return Ok(None);
        };
        let ids: Option<(Vec<u8>, Vec<u8>)> = self
            .conn
            .prepare_cached(
                "SELECT content_id, prev FROM envelopes WHERE origin = ?1 AND chain_pos = ?2",
            )?
            .query_row(params![&origin[..], chain_pos], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        ids.map(|(id, prev)| {
            Ok((
                key(id, "envelopes.content_id")?,
                key(prev, "envelopes.prev")?,
            ))
        })
        .transpose()
    }

    /// The content id of the envelope at `chain_pos` of `origin`'s chain,
    /// if one is stored.
    pub fn envelope_at(
        &self,
        origin: &[u8; 16],
        chain_pos: u64,
    ) -> Result<Option<[u8; 32]>, StoreError> {
        Ok(self.chain_link_at(origin, chain_pos)?.map(|(id, _)| id))
    }

    /// This device's own envelope at the head of its chain, if it sealed
    /// any.
    pub fn own_chain_head(&self) -> Result<Option<EnvelopeRow>, StoreError> {
        let sql = format!(
            "SELECT {ENVELOPE_COLUMNS} FROM envelopes \
             WHERE origin = (SELECT device_id FROM identity) ORDER BY chain_pos DESC LIMIT 1"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([])?;
        match rows.next()? {
            Some(row) => Ok(Some(EnvelopeRow::read(row)?)),
            None => Ok(None),
        }
    }

    /// Deltas whose document change still waits for a change it depends on.
    pub fn pending_deltas(&self) -> Result<Vec<DeltaRow>, StoreError> {
        self.delta_rows("WHERE applied = 0 ORDER BY local_seq", params![])
    }

    fn delta_rows(
        &self,
        tail: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<DeltaRow>, StoreError> {
        let sql = format!(
            "SELECT local_seq, content_id, origin, origin_seq, made_at_ms, bytes, relay_seq, applied, \
             envelope FROM deltas {tail}"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params, |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Vec<u8>>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, bool>(7)?,
                r.get::<_, Option<Vec<u8>>>(8)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (
                local_seq,
                content_id,
                origin,
                origin_seq,
                made_at_ms,
                bytes,
                relay_seq,
                applied,
                envelope,
            ) = row?;
            out.push(DeltaRow {
                envelope: match envelope {
                    None => None,
                    Some(bytes) => Some(key(bytes, "deltas.envelope")?),
                },
                local_seq,
                content_id: content_id
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("deltas.content_id is not 32 bytes".into()))?,
                origin: origin
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("deltas.origin is not 16 bytes".into()))?,
                origin_seq: u64_from_sql("deltas.origin_seq", origin_seq)?,
                made_at_ms,
                bytes,
                relay_seq: relay_seq
                    .map(|seq| u64_from_sql("deltas.relay_seq", seq))
                    .transpose()?,
                applied,
            });
        }
        Ok(out)
    }

    /// One message as the app sees it, or `None` if it is unknown or deleted
    /// for this account.
    pub fn message(&self, id: &str) -> Result<Option<MessageView>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{MESSAGE_VIEW_SELECT} WHERE m.id = ?1 AND COALESCE(f.deleted, 0) = 0"
        ))?;
        Ok(stmt.query_row([id], message_view).optional()?)
    }

    /// A page of a conversation's visible messages, newest first, strictly
    /// before `before` (a `(sent_at_ms, id)` position) when given.
    pub fn messages(
        &self,
        conversation: &str,
        before: Option<(i64, &str)>,
        limit: usize,
    ) -> Result<Vec<MessageView>, StoreError> {
        let (before_ms, before_id) = before.unwrap_or((i64::MAX, ""));
        let mut stmt = self.conn.prepare_cached(&format!(
            "{MESSAGE_VIEW_SELECT} \
             WHERE m.conversation = ?1 AND COALESCE(f.deleted, 0) = 0 \
               AND m.sent_at_ms > COALESCE((SELECT cleared_up_to_ms FROM conversations WHERE id = ?1), 0) \
               AND (m.sent_at_ms < ?2 OR (m.sent_at_ms = ?2 AND ?3 != '' AND m.id < ?3)) \
             ORDER BY m.sent_at_ms DESC, m.id DESC LIMIT ?4"
        ))?;
        let rows = stmt.query_map(
            params![conversation, before_ms, before_id, limit as i64],
            message_view,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every message record in the log (including deleted and recalled ones),
    /// ordered by id: the raw log, for comparing devices.
    pub fn message_log(&self) -> Result<Vec<MessageView>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{MESSAGE_VIEW_SELECT} ORDER BY m.id"))?;
        let rows = stmt.query_map([], message_view)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest message of a conversation that is not deleted for this
    /// account, as a `(sent_at_ms, id)` position.
    pub fn latest_message(&self, conversation: &str) -> Result<Option<(i64, String)>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT m.sent_at_ms, m.id FROM messages m \
                 LEFT JOIN message_flags f ON f.id = m.id \
                 WHERE m.conversation = ?1 AND COALESCE(f.deleted, 0) = 0 \
                 ORDER BY m.sent_at_ms DESC, m.id DESC LIMIT 1",
            )?
            .query_row([conversation], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// Ids of the conversations that have unread messages.
    pub fn unread_conversations(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM conversations WHERE unread > 0 ORDER BY id")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One conversation's projection row, listed or not.
    pub fn conversation(&self, id: &str) -> Result<Option<ConversationRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{CONVERSATION_SELECT} WHERE c.id = ?1"))?;
        Ok(stmt.query_row([id], conversation_row).optional()?)
    }

    /// A page of the conversation list: pinned first, then by last activity,
    /// newest first.
    pub fn conversation_list(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<ConversationRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{CONVERSATION_SELECT} WHERE c.listed = 1 \
             ORDER BY c.pinned DESC, c.last_activity_ms DESC, c.id LIMIT ?1 OFFSET ?2"
        ))?;
        let rows = stmt.query_map(params![limit as i64, offset as i64], conversation_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every conversation row, listed or not, ordered by id.
    pub fn all_conversations(&self) -> Result<Vec<ConversationRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{CONVERSATION_SELECT} ORDER BY c.id"))?;
        let rows = stmt.query_map([], conversation_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Contacts, ordered by user id.
    pub fn contacts(&self) -> Result<Vec<ContactRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT user_id, status, remark, since_ms FROM contacts ORDER BY user_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (user_id, status, remark, since_ms) = row?;
            out.push(ContactRow {
                user_id,
                status: status.parse()?,
                remark,
                since_ms,
            });
        }
        Ok(out)
    }

    /// Blocked users, ordered by user id.
    pub fn blocklist(&self) -> Result<Vec<BlockedRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT user_id, since_ms FROM blocklist ORDER BY user_id")?;
        let rows = stmt.query_map([], |r| {
            Ok(BlockedRow {
                user_id: r.get(0)?,
                since_ms: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every group with its users and member attributes, ordered by id.
    pub fn groups(&self) -> Result<Vec<GroupRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM groups ORDER BY id")?;
        let ids: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.group(&id)?);
        }
        Ok(out)
    }

    /// One group with its users and member attributes.
    pub fn group(&self, id: &str) -> Result<Option<GroupRow>, StoreError> {
        let head = self
            .conn
            .prepare_cached(
                "SELECT state, name, description, announcement, owner, messages_blocked, mute_all, \
                 disabled FROM groups WHERE id = ?1",
            )?
            .query_row([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    GroupRow {
                        id: id.to_owned(),
                        state: GroupStanding::Member,
                        name: r.get(1)?,
                        description: r.get(2)?,
                        announcement: r.get(3)?,
                        owner: r.get(4)?,
                        messages_blocked: r.get(5)?,
                        mute_all: r.get(6)?,
                        disabled: r.get(7)?,
                        members: Vec::new(),
                        banned: Vec::new(),
                        allowed: Vec::new(),
                        invited: Vec::new(),
                        applicants: Vec::new(),
                        attributes: Vec::new(),
                    },
                ))
            })
            .optional()?;
        let Some((state, mut group)) = head else {
            return Ok(None);
        };
        group.state = state.parse()?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT list, user_id, role, muted_until_ms FROM group_users \
             WHERE group_id = ?1 ORDER BY list, user_id",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        for row in rows {
            let (list, user_id, role, muted_until_ms) = row?;
            match list.as_str() {
                GROUP_LIST_MEMBER => group.members.push(GroupMember {
                    user_id,
                    role: role.parse()?,
                    muted_until_ms,
                }),
                GROUP_LIST_BANNED => group.banned.push(user_id),
                GROUP_LIST_ALLOWED => group.allowed.push(user_id),
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "group_users.list {other:?} of group {id:?}"
                    )))
                }
            }
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT kind, user_id FROM group_requests WHERE group_id = ?1 ORDER BY kind, user_id",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (kind, user_id) = row?;
            match kind.as_str() {
                GROUP_REQUEST_INVITED => group.invited.push(user_id),
                GROUP_REQUEST_APPLICANT => group.applicants.push(user_id),
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "group_requests.kind {other:?} of group {id:?}"
                    )))
                }
            }
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT user_id, key, value FROM group_member_attributes \
             WHERE group_id = ?1 ORDER BY user_id, key",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok(MemberAttribute {
                user_id: r.get(0)?,
                key: r.get(1)?,
                value: r.get(2)?,
            })
        })?;
        group.attributes = rows.collect::<Result<_, _>>()?;
        Ok(Some(group))
    }

    /// The members who have read a message, by user id: those who
    /// acknowledged it or a later message of the same conversation (a
    /// member's read mark only rises). Empty for a message not known here.
    pub fn group_read_by(&self, message: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT a.member FROM messages m \
             JOIN messages later ON later.conversation = m.conversation \
               AND (later.sent_at_ms, later.id) >= (m.sent_at_ms, m.id) \
             JOIN group_acks a ON a.message = later.id \
             WHERE m.id = ?1 ORDER BY a.member",
        )?;
        let rows = stmt.query_map([message], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every group read receipt as `(message, member)`, in that order.
    pub fn group_acks(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT message, member FROM group_acks ORDER BY message, member")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The messages pinned in a conversation, by message id.
    pub fn pinned_messages(&self, conversation: &str) -> Result<Vec<PinnedMessage>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT message, pinned_at_ms FROM pinned_messages WHERE conversation = ?1 \
             ORDER BY message",
        )?;
        let rows = stmt.query_map([conversation], |r| {
            Ok(PinnedMessage {
                message: r.get(0)?,
                pinned_at_ms: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every pinned message as `(conversation, pin)`, by conversation and
    /// message id.
    pub fn all_pinned_messages(&self) -> Result<Vec<(String, PinnedMessage)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT conversation, message, pinned_at_ms FROM pinned_messages \
             ORDER BY conversation, message",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                PinnedMessage {
                    message: r.get(1)?,
                    pinned_at_ms: r.get(2)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every thread with its members, ordered by id.
    pub fn threads(&self) -> Result<Vec<ThreadRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, group_id, name FROM threads ORDER BY id")?;
        let heads: Vec<(String, String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let mut members_stmt = self.conn.prepare_cached(
            "SELECT user_id FROM thread_members WHERE thread_id = ?1 ORDER BY user_id",
        )?;
        let mut out = Vec::with_capacity(heads.len());
        for (id, group_id, name) in heads {
            let members = members_stmt
                .query_map([&id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            out.push(ThreadRow {
                id,
                group_id,
                name,
                members,
            });
        }
        Ok(out)
    }

    /// The newest journaled event's sequence number, 0 when there is none.
    pub fn events_head(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events")?
            .query_row([], |r| r.get(0))?)
    }

    /// Up to `limit` journaled events after `seq`, oldest first.
    pub fn events_after(&self, seq: i64, limit: usize) -> Result<Vec<EventRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, content_id, origin, origin_seq, made_at_ms, body FROM events \
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![seq, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Vec<u8>>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, content_id, origin, origin_seq, made_at_ms, body) = row?;
            out.push(EventRow {
                seq,
                content_id: content_id
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("events.content_id is not 32 bytes".into()))?,
                origin: origin
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("events.origin is not 16 bytes".into()))?,
                origin_seq: origin_seq
                    .map(|n| u64_from_sql("events.origin_seq", n))
                    .transpose()?,
                made_at_ms,
                body,
            });
        }
        Ok(out)
    }
}

const MESSAGE_VIEW_SELECT: &str = "SELECT m.id, m.conversation, m.sender, m.sent_at_ms, m.body, \
     COALESCE(f.recalled, 0), COALESCE(f.deleted, 0), COALESCE(f.receipt, 0) \
     FROM messages m LEFT JOIN message_flags f ON f.id = m.id";

fn message_view(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageView> {
    let recalled: bool = r.get(5)?;
    Ok(MessageView {
        id: r.get(0)?,
        conversation: r.get(1)?,
        sender: r.get(2)?,
        sent_at_ms: r.get(3)?,
        // A recalled message keeps its place in the log but never shows its
        // content again.
        body: if recalled { String::new() } else { r.get(4)? },
        recalled,
        deleted: r.get(6)?,
        receipt: Receipt::from_level(r.get(7)?),
    })
}

const CONVERSATION_SELECT: &str = "SELECT c.id, c.pinned, c.remind, c.marks, \
     c.cleared_up_to_ms, c.read_at_ms, c.read_message, c.last_message, c.last_activity_ms, \
     c.unread, c.listed, c.quiet_until_ms, c.quiet_start_minute, c.quiet_end_minute, \
     c.quiet_utc_offset_minutes FROM conversations c";

fn conversation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConversationRow> {
    let marks: String = r.get(3)?;
    let remind: String = r.get(2)?;
    let remind = remind.parse::<RemindType>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let quiet = match (
        r.get::<_, Option<i64>>(11)?,
        r.get::<_, Option<u16>>(12)?,
        r.get::<_, Option<u16>>(13)?,
        r.get::<_, Option<i16>>(14)?,
    ) {
        (Some(until_ms), ..) => Some(QuietTime::Until { until_ms }),
        (None, Some(start_minute), Some(end_minute), Some(utc_offset_minutes)) => {
            Some(QuietTime::Daily {
                start_minute,
                end_minute,
                utc_offset_minutes,
            })
        }
        _ => None,
    };
    Ok(ConversationRow {
        id: r.get(0)?,
        settings: ConversationSettings {
            pinned: r.get(1)?,
            do_not_disturb: DoNotDisturb { remind, quiet },
            marks: split_marks(&marks),
            cleared_up_to_ms: r.get(4)?,
            read_at_ms: r.get(5)?,
            read_message: r.get(6)?,
        },
        last_message: r.get(7)?,
        last_activity_ms: r.get(8)?,
        unread: r.get(9)?,
        listed: r.get(10)?,
    })
}

/// Marks are stored as one text column, joined by a separator no mark may
/// contain (see [`MARK_SEPARATOR`]).
fn split_marks(joined: &str) -> Vec<String> {
    if joined.is_empty() {
        Vec::new()
    } else {
        joined.split(MARK_SEPARATOR).map(str::to_owned).collect()
    }
}
