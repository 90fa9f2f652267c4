//! Writes: one [`DeviceTx`] per logical operation.

use rusqlite::{params, OptionalExtension, Transaction};

use super::rows::*;
use super::{
    GROUP_LIST_ALLOWED, GROUP_LIST_BANNED, GROUP_LIST_MEMBER, GROUP_REQUEST_APPLICANT,
    GROUP_REQUEST_INVITED,
};
use crate::{u64_from_sql, u64_to_sql, StoreError};

/// The one transaction a logical operation writes through. Dropping it
/// without [`DeviceTx::commit`] rolls everything back.
pub struct DeviceTx<'a> {
    tx: Transaction<'a>,
}

impl<'a> DeviceTx<'a> {
    pub(super) fn new(tx: Transaction<'a>) -> Self {
        DeviceTx { tx }
    }

    /// Makes every write of this transaction durable at once.
    pub fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit()?)
    }

    /// Writes the device's identity; a store has exactly one.
    pub fn insert_identity(&self, identity: &Identity) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO identity \
             (id, account, device_id, device_name, platform, created_at_ms, signing_key) \
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                identity.account,
                &identity.device_id[..],
                identity.device_name,
                identity.platform,
                identity.created_at_ms,
                identity.signing_key.as_ref().map(|k| &k[..]),
            ],
        )?;
        Ok(())
    }

    /// Gives a device made by an older build its signing key. A key once
    /// set is never replaced: the relay binds the device id to it.
    pub fn set_signing_key(&self, seed: &[u8; 32]) -> Result<bool, StoreError> {
        let changed = self.tx.execute(
            "UPDATE identity SET signing_key = ?1 WHERE signing_key IS NULL",
            [&seed[..]],
        )?;
        Ok(changed > 0)
    }

    /// Replaces the relay addresses (one per entry, none may hold a line
    /// break: those are refused as [`StoreError::Corrupt`] input).
    pub fn set_relays(&self, relays: &[String]) -> Result<(), StoreError> {
        if let Some(bad) = relays
            .iter()
            .find(|r| r.is_empty() || r.contains(['\n', '\r']))
        {
            return Err(StoreError::Corrupt(format!(
                "a relay address may not be empty or hold a line break: {bad:?}"
            )));
        }
        self.tx
            .execute("UPDATE credentials SET relays = ?1", [relays.join("\n")])?;
        Ok(())
    }

    /// Records an enrollment the relay confirmed.
    pub fn record_enrollment(&self, enrollment: &DeviceEnrollment) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE credentials SET token_id = ?1, enrolled_at_ms = ?2, expires_at_ms = ?3, \
             active = ?4",
            params![
                &enrollment.token_id[..],
                u64_to_sql("enrolled_at_ms", enrollment.enrolled_at_ms)?,
                u64_to_sql("expires_at_ms", enrollment.expires_at_ms)?,
                enrollment.active
            ],
        )?;
        Ok(())
    }

    /// Stores a key generation; a generation this device holds already is
    /// kept as it is (returns false).
    pub fn insert_account_key(&self, key: &AccountKeyRow) -> Result<bool, StoreError> {
        let inserted = self.tx.execute(
            "INSERT INTO account_keys \
             (generation, root, source, epoch, snapshot_id, granted_by, added_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (generation) DO NOTHING",
            params![
                key.generation,
                &key.root[..],
                key.source.as_str(),
                u64_to_sql("account_keys.epoch", key.epoch)?,
                &key.snapshot_id[..],
                key.granted_by.as_ref().map(|id| &id[..]),
                key.added_at_ms,
            ],
        )?;
        Ok(inserted > 0)
    }

    /// Replaces the link session (a device shows one code at a time).
    pub fn put_link_session(&self, session: &LinkSessionRow) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO link_session (id, kem_seed, psk, created_at_ms, expires_at_ms) \
             VALUES (1, ?1, ?2, ?3, ?4) ON CONFLICT (id) DO UPDATE SET \
             kem_seed = excluded.kem_seed, psk = excluded.psk, \
             created_at_ms = excluded.created_at_ms, expires_at_ms = excluded.expires_at_ms",
            params![
                &session.kem_seed[..],
                &session.psk[..],
                session.created_at_ms,
                session.expires_at_ms
            ],
        )?;
        Ok(())
    }

    /// Deletes the link session; returns whether there was one.
    pub fn delete_link_session(&self) -> Result<bool, StoreError> {
        Ok(self.tx.execute("DELETE FROM link_session", [])? > 0)
    }

    /// Records a Link operation's roster entry: inserted when the device
    /// is new to the roster, replacing the entry only when this operation
    /// sorts first by `(linked_at_ms, linked_by, linked_seq)`, so every
    /// device ends with the same entry whatever order it merged them in.
    /// Returns whether the roster changed.
    pub fn link_roster_device(&self, row: &RosterRow) -> Result<bool, StoreError> {
        let changed = self
            .tx
            .prepare_cached(
                "INSERT INTO roster (device, sign_pk, kem_pk, linked_by, linked_seq, linked_at_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (device) DO UPDATE SET \
                 sign_pk = excluded.sign_pk, kem_pk = excluded.kem_pk, \
                 linked_by = excluded.linked_by, linked_seq = excluded.linked_seq, \
                 linked_at_ms = excluded.linked_at_ms \
                 WHERE (excluded.linked_at_ms, excluded.linked_by, excluded.linked_seq) \
                     < (roster.linked_at_ms, roster.linked_by, roster.linked_seq)",
            )?
            .execute(params![
                &row.device[..],
                &row.sign_pk[..],
                &row.kem_pk[..],
                &row.linked_by[..],
                u64_to_sql("roster.linked_seq", row.linked_seq)?,
                row.linked_at_ms,
            ])?;
        Ok(changed > 0)
    }

    /// One device's roster entry, read inside this transaction.
    pub fn roster_entry(&self, device: &[u8; 16]) -> Result<Option<RosterRow>, StoreError> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "SELECT {ROSTER_COLUMNS} FROM roster WHERE device = ?1"
        ))?;
        let mut rows = stmt.query([&device[..]])?;
        rows.next()?.map(RosterRow::read).transpose()
    }

    /// Stores the seed of this device's KEM key; returns false (and keeps
    /// the stored one) when it has one already.
    pub fn insert_device_kem(&self, seed: &[u8; 32], now_ms: i64) -> Result<bool, StoreError> {
        let inserted = self.tx.execute(
            "INSERT INTO device_kem (id, kem_seed, added_at_ms) VALUES (1, ?1, ?2) \
             ON CONFLICT (id) DO NOTHING",
            params![&seed[..], now_ms],
        )?;
        Ok(inserted > 0)
    }

    /// A named counter, read inside this transaction.
    pub fn meta(&self, key: MetaKey) -> Result<Option<i64>, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([key.as_str()], |r| r.get(0))
            .optional()?)
    }

    /// A named counter that is never negative, read inside this
    /// transaction; a negative stored value is [`StoreError::Corrupt`].
    pub fn meta_u64(&self, key: MetaKey) -> Result<Option<u64>, StoreError> {
        self.meta(key)?
            .map(|value| u64_from_sql(key.as_str(), value))
            .transpose()
    }

    /// Sets a named counter.
    pub fn set_meta(&self, key: MetaKey, value: i64) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key.as_str(), value])?;
        Ok(())
    }

    /// Sets a named counter that is never negative (a cursor, an operation
    /// number); above `i64::MAX` it is refused with
    /// [`StoreError::OutOfRange`].
    pub fn set_meta_u64(&self, key: MetaKey, value: u64) -> Result<(), StoreError> {
        self.set_meta(key, u64_to_sql(key.as_str(), value)?)
    }

    /// Appends one document change after the snapshot.
    pub fn append_doc_change(&self, bytes: &[u8]) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("INSERT INTO doc_chunks (kind, bytes) VALUES ('change', ?1)")?
            .execute([bytes])?;
        Ok(())
    }

    /// Replaces every stored chunk with one snapshot of the whole document.
    pub fn replace_doc_with_snapshot(&self, snapshot: &[u8]) -> Result<(), StoreError> {
        self.tx.execute("DELETE FROM doc_chunks", [])?;
        self.tx.execute(
            "INSERT INTO doc_chunks (kind, bytes) VALUES ('snapshot', ?1)",
            [snapshot],
        )?;
        Ok(())
    }

    /// Stores a delta once; returns false (and changes nothing) when a delta
    /// with the same content id is already stored.
    pub fn insert_delta(&self, delta: &DeltaRow) -> Result<bool, StoreError> {
        let origin_seq = u64_to_sql("origin_seq", delta.origin_seq)?;
        let relay_seq = delta
            .relay_seq
            .map(|seq| u64_to_sql("relay_seq", seq))
            .transpose()?;
        // A delta that travelled in the clear names no envelope: written
        // without the column, which stores before version 11 (as the
        // migration tests build them) do not have.
        let (column, value) = match delta.envelope {
            Some(_) => (", envelope", ", ?8"),
            None => ("", ""),
        };
        let sql = format!(
            "INSERT INTO deltas \
             (content_id, origin, origin_seq, made_at_ms, bytes, relay_seq, applied{column}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7{value}) ON CONFLICT (content_id) DO NOTHING"
        );
        let (content_id, origin) = (&delta.content_id[..], &delta.origin[..]);
        let envelope = delta.envelope.as_ref().map(|id| &id[..]);
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![
            &content_id,
            &origin,
            &origin_seq,
            &delta.made_at_ms,
            &delta.bytes,
            &relay_seq,
            &delta.applied,
        ];
        if let Some(envelope) = &envelope {
            values.push(envelope);
        }
        let inserted = self.tx.prepare_cached(&sql)?.execute(&values[..])?;
        Ok(inserted == 1)
    }

    /// Whether a delta with this content id is stored (including writes of
    /// this transaction).
    pub fn has_delta(&self, content_id: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM deltas WHERE content_id = ?1")?
            .exists([&content_id[..]])?)
    }

    /// Whether the delta a device numbered `origin_seq` is stored and
    /// merged (`Some(true)`), stored and waiting (`Some(false)`), or
    /// unknown (`None`).
    pub fn delta_applied(
        &self,
        origin: &[u8; 16],
        origin_seq: u64,
    ) -> Result<Option<bool>, StoreError> {
        let origin_seq = u64_to_sql("origin_seq", origin_seq)?;
        Ok(self
            .tx
            .prepare_cached("SELECT applied FROM deltas WHERE origin = ?1 AND origin_seq = ?2")?
            .query_row(params![&origin[..], origin_seq], |r| r.get(0))
            .optional()?)
    }

    /// Marks a waiting delta as merged.
    pub fn mark_delta_applied(&self, content_id: &[u8; 32]) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("UPDATE deltas SET applied = 1 WHERE content_id = ?1")?
            .execute([&content_id[..]])?;
        Ok(())
    }

    /// Records the relay log position of a stored delta, or of a stored
    /// envelope and every delta it carries (a relay accepted it). Returns
    /// false when neither is stored.
    pub fn set_relay_seq(&self, content_id: &[u8; 32], relay_seq: u64) -> Result<bool, StoreError> {
        let relay_seq = u64_to_sql("relay_seq", relay_seq)?;
        let updated = self
            .tx
            .prepare_cached("UPDATE deltas SET relay_seq = ?2 WHERE content_id = ?1")?
            .execute(params![&content_id[..], relay_seq])?;
        if updated == 1 {
            return Ok(true);
        }
        let envelope = self
            .tx
            .prepare_cached("UPDATE envelopes SET relay_seq = ?2 WHERE content_id = ?1")?
            .execute(params![&content_id[..], relay_seq])?;
        if envelope == 0 {
            return Ok(false);
        }
        self.tx
            .prepare_cached(
                "UPDATE deltas INDEXED BY deltas_by_envelope SET relay_seq = ?2 WHERE envelope = ?1",
            )?
            .execute(params![&content_id[..], relay_seq])?;
        Ok(true)
    }

    /// Stores an envelope once; returns false (and changes nothing) when
    /// one with the same content id, or another one at the same origin and
    /// chain position, is stored: callers that must tell a fork from a
    /// repeat ask [`DeviceTx::envelope_at`] first.
    pub fn insert_envelope(&self, envelope: &EnvelopeRow) -> Result<bool, StoreError> {
        let chain_pos = u64_to_sql("chain_pos", envelope.chain_pos)?;
        let epoch = u64_to_sql("epoch", envelope.epoch)?;
        let relay_seq = envelope
            .relay_seq
            .map(|seq| u64_to_sql("relay_seq", seq))
            .transpose()?;
        let (bytes, through) = match &envelope.own {
            Some(own) => (Some(&own.bytes[..]), Some(own.through_local_seq)),
            None => (None, None),
        };
        let inserted = self
            .tx
            .prepare_cached(
                "INSERT INTO envelopes \
                 (content_id, origin, chain_pos, prev, epoch, bytes, through_local_seq, relay_seq, own) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                &envelope.content_id[..],
                &envelope.origin[..],
                chain_pos,
                &envelope.prev[..],
                epoch,
                bytes,
                through,
                relay_seq,
                envelope.own.is_some(),
            ])?;
        Ok(inserted == 1)
    }

    /// Records that the stored delta `content_id` is sealed in `envelope`
    /// (or was opened from it), unless it names an envelope already.
    pub fn set_delta_envelope(
        &self,
        content_id: &[u8; 32],
        envelope: &[u8; 32],
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE deltas SET envelope = ?2 WHERE content_id = ?1 AND envelope IS NULL",
            )?
            .execute(params![&content_id[..], &envelope[..]])?;
        Ok(())
    }

    /// Adds a message to the log once; returns false when its id is known.
    pub fn insert_message(&self, message: &MessageRecord) -> Result<bool, StoreError> {
        let inserted = self
            .tx
            .prepare_cached(
                "INSERT INTO messages (id, conversation, sender, sent_at_ms, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![
                message.id,
                message.conversation,
                message.sender,
                message.sent_at_ms,
                message.body
            ])?;
        Ok(inserted == 1)
    }

    /// Merges a monotonic flag update into a message's flags: flags only turn
    /// on, the receipt only rises. The message itself need not be known yet.
    /// Returns whether any flag moved (an update at or below what is stored
    /// moves nothing; an update that sets nothing never does).
    pub fn merge_message_flags(&self, id: &str, update: FlagsUpdate) -> Result<bool, StoreError> {
        if update == FlagsUpdate::default() {
            return Ok(false);
        }
        let moved = self
            .tx
            .prepare_cached(
                "INSERT INTO message_flags (id, recalled, deleted, receipt) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (id) DO UPDATE SET \
                   recalled = max(recalled, excluded.recalled), \
                   deleted = max(deleted, excluded.deleted), \
                   receipt = max(receipt, excluded.receipt) \
                 WHERE excluded.recalled > recalled OR excluded.deleted > deleted \
                   OR excluded.receipt > receipt",
            )?
            .execute(params![id, update.recalled, update.deleted, update.receipt.level()])?;
        Ok(moved == 1)
    }

    /// Records that `member` read `message` (a group read receipt), once;
    /// returns false when it was recorded already. The message need not be
    /// known yet.
    pub fn add_group_ack(&self, message: &str, member: &str) -> Result<bool, StoreError> {
        let inserted = self
            .tx
            .prepare_cached(
                "INSERT INTO group_acks (message, member) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?
            .execute([message, member])?;
        Ok(inserted == 1)
    }

    /// The conversation a known message belongs to.
    pub fn message_conversation(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT conversation FROM messages WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?)
    }

    /// Writes the conversation settings that come from the account
    /// document (pin, do-not-disturb, marks, pinned messages), then
    /// refreshes the derived columns.
    pub fn put_conversation_flags(
        &self,
        id: &str,
        flags: &ConversationFlags,
        account: &str,
    ) -> Result<(), StoreError> {
        debug_assert!(flags.marks.windows(2).all(|w| w[0] < w[1]));
        debug_assert!(flags.marks.iter().all(|m| !m.contains(MARK_SEPARATOR)));
        let marks = flags.marks.join(&MARK_SEPARATOR.to_string());
        let dnd = &flags.do_not_disturb;
        let (until, start, end, offset) = match dnd.quiet {
            None => (None, None, None, None),
            Some(QuietTime::Until { until_ms }) => (Some(until_ms), None, None, None),
            Some(QuietTime::Daily {
                start_minute,
                end_minute,
                utc_offset_minutes,
            }) => (
                None,
                Some(start_minute),
                Some(end_minute),
                Some(utc_offset_minutes),
            ),
        };
        self.tx
            .prepare_cached(
                "INSERT INTO conversations (id, pinned, do_not_disturb, marks, remind, \
                   quiet_until_ms, quiet_start_minute, quiet_end_minute, quiet_utc_offset_minutes) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (id) DO UPDATE SET pinned = excluded.pinned, \
                   do_not_disturb = excluded.do_not_disturb, marks = excluded.marks, \
                   remind = excluded.remind, quiet_until_ms = excluded.quiet_until_ms, \
                   quiet_start_minute = excluded.quiet_start_minute, \
                   quiet_end_minute = excluded.quiet_end_minute, \
                   quiet_utc_offset_minutes = excluded.quiet_utc_offset_minutes",
            )?
            .execute(params![
                id,
                flags.pinned,
                dnd.is_set(),
                marks,
                dnd.remind.as_str(),
                until,
                start,
                end,
                offset
            ])?;
        self.tx
            .prepare_cached("DELETE FROM pinned_messages WHERE conversation = ?1")?
            .execute([id])?;
        let mut pins = self.tx.prepare_cached(
            "INSERT INTO pinned_messages (conversation, message, pinned_at_ms) VALUES (?1, ?2, ?3)",
        )?;
        for pin in &flags.pinned_messages {
            pins.execute(params![id, pin.message, pin.pinned_at_ms])?;
        }
        self.refresh_conversation(id, account)
    }

    /// Raises a conversation's read marker to `(at_ms, message)` if that is
    /// above it; a marker never moves back. Returns whether it moved. The
    /// caller refreshes the derived columns (once per batch).
    pub fn raise_read_marker(
        &self,
        id: &str,
        at_ms: i64,
        message: &str,
    ) -> Result<bool, StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO conversations (id) VALUES (?1) ON CONFLICT (id) DO NOTHING",
            )?
            .execute([id])?;
        let moved = self
            .tx
            .prepare_cached(
                "UPDATE conversations SET read_at_ms = ?2, read_message = ?3 \
                 WHERE id = ?1 AND (?2, ?3) > (read_at_ms, read_message)",
            )?
            .execute(params![id, at_ms, message])?;
        Ok(moved == 1)
    }

    /// Raises a conversation's clear point (deleted up to `up_to_ms`); it
    /// never moves back. Returns whether it moved. The caller refreshes the
    /// derived columns.
    pub fn raise_cleared(&self, id: &str, up_to_ms: i64) -> Result<bool, StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO conversations (id) VALUES (?1) ON CONFLICT (id) DO NOTHING",
            )?
            .execute([id])?;
        let moved = self
            .tx
            .prepare_cached(
                "UPDATE conversations SET cleared_up_to_ms = ?2 WHERE id = ?1 AND ?2 > cleared_up_to_ms",
            )?
            .execute(params![id, up_to_ms])?;
        Ok(moved == 1)
    }

    /// A conversation's read marker, `(0, "")` when it has none.
    pub fn read_marker(&self, id: &str) -> Result<(i64, String), StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT read_at_ms, read_message FROM conversations WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((0, String::new())))
    }

    /// Recomputes a conversation's last message, activity time, unread count
    /// and whether it is listed, from its settings and the message log.
    ///
    /// The unread count starts its index range at the later of the clear
    /// point (`sent > cleared` on integers) and the read marker (implied by
    /// the row-value comparison),
    /// so it reads only the messages after the marker, not the whole
    /// conversation: that was a quarter of catch-up time in `tandem bench`.
    /// `account` is this account's user id: its own messages are never unread.
    pub fn refresh_conversation(&self, id: &str, account: &str) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO conversations (id) VALUES (?1) ON CONFLICT (id) DO NOTHING",
            )?
            .execute([id])?;
        let last: Option<(String, i64)> = self
            .tx
            .prepare_cached(
                "SELECT m.id, m.sent_at_ms FROM messages m LEFT JOIN message_flags f ON f.id = m.id \
                 WHERE m.conversation = ?1 AND COALESCE(f.deleted, 0) = 0 \
                   AND m.sent_at_ms > (SELECT cleared_up_to_ms FROM conversations WHERE id = ?1) \
                 ORDER BY m.sent_at_ms DESC, m.id DESC LIMIT 1",
            )?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (last_id, last_ms) = match last {
            Some((id, ms)) => (Some(id), ms),
            None => (None, 0),
        };
        self.tx
            .prepare_cached(
                "UPDATE conversations AS c SET \
                   last_message = ?2, last_activity_ms = ?3, listed = (?2 IS NOT NULL OR c.pinned), \
                   unread = ( \
                     SELECT COUNT(*) FROM messages m LEFT JOIN message_flags f ON f.id = m.id \
                     WHERE m.conversation = c.id AND m.sender != ?4 \
                       AND m.sent_at_ms >= max(c.cleared_up_to_ms + 1, c.read_at_ms) \
                       AND COALESCE(f.deleted, 0) = 0 AND COALESCE(f.recalled, 0) = 0 \
                       AND (m.sent_at_ms, m.id) > (c.read_at_ms, c.read_message)) \
                 WHERE c.id = ?1",
            )?
            .execute(params![id, last_id, last_ms, account])?;
        Ok(())
    }

    /// Writes or (with `None`) removes a contact.
    pub fn put_contact(&self, user_id: &str, row: Option<&ContactRow>) -> Result<(), StoreError> {
        debug_assert!(row.is_none_or(|r| r.user_id == user_id));
        self.tx
            .prepare_cached("DELETE FROM contacts WHERE user_id = ?1")?
            .execute([user_id])?;
        if let Some(row) = row {
            self.tx
                .prepare_cached(
                    "INSERT INTO contacts (user_id, status, remark, since_ms) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    row.user_id,
                    row.status.as_str(),
                    row.remark,
                    row.since_ms
                ])?;
        }
        Ok(())
    }

    /// Writes or (with `None`) removes a blocklist entry.
    pub fn put_blocked(&self, user_id: &str, row: Option<&BlockedRow>) -> Result<(), StoreError> {
        debug_assert!(row.is_none_or(|r| r.user_id == user_id));
        self.tx
            .prepare_cached("DELETE FROM blocklist WHERE user_id = ?1")?
            .execute([user_id])?;
        if let Some(row) = row {
            self.tx
                .prepare_cached("INSERT INTO blocklist (user_id, since_ms) VALUES (?1, ?2)")?
                .execute(params![row.user_id, row.since_ms])?;
        }
        Ok(())
    }

    /// Replaces a group and everything attached to it, or (with `None`)
    /// removes it.
    pub fn put_group(&self, id: &str, row: Option<&GroupRow>) -> Result<(), StoreError> {
        debug_assert!(row.is_none_or(|r| r.id == id));
        // Users and attributes go with the group row (ON DELETE CASCADE).
        self.tx
            .prepare_cached("DELETE FROM groups WHERE id = ?1")?
            .execute([id])?;
        let Some(group) = row else {
            return Ok(());
        };
        self.tx
            .prepare_cached(
                "INSERT INTO groups (id, state, name, description, announcement, owner, messages_blocked, \
                 mute_all, disabled) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                group.id,
                group.state.as_str(),
                group.name,
                group.description,
                group.announcement,
                group.owner,
                group.messages_blocked,
                group.mute_all,
                group.disabled
            ])?;
        let mut users = self.tx.prepare_cached(
            "INSERT INTO group_users (group_id, list, user_id, role, muted_until_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for member in &group.members {
            users.execute(params![
                id,
                GROUP_LIST_MEMBER,
                member.user_id,
                member.role.as_str(),
                member.muted_until_ms
            ])?;
        }
        // Banned and allowed users have no role.
        for user in &group.banned {
            users.execute(params![id, GROUP_LIST_BANNED, user, "", 0])?;
        }
        for user in &group.allowed {
            users.execute(params![id, GROUP_LIST_ALLOWED, user, "", 0])?;
        }
        let mut requests = self.tx.prepare_cached(
            "INSERT INTO group_requests (group_id, kind, user_id) VALUES (?1, ?2, ?3)",
        )?;
        for user in &group.invited {
            requests.execute(params![id, GROUP_REQUEST_INVITED, user])?;
        }
        for user in &group.applicants {
            requests.execute(params![id, GROUP_REQUEST_APPLICANT, user])?;
        }
        let mut attrs = self.tx.prepare_cached(
            "INSERT INTO group_member_attributes (group_id, user_id, key, value) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for attr in &group.attributes {
            attrs.execute(params![id, attr.user_id, attr.key, attr.value])?;
        }
        Ok(())
    }

    /// Replaces a thread and its members, or (with `None`) removes it.
    pub fn put_thread(&self, id: &str, row: Option<&ThreadRow>) -> Result<(), StoreError> {
        debug_assert!(row.is_none_or(|r| r.id == id));
        self.tx
            .prepare_cached("DELETE FROM threads WHERE id = ?1")?
            .execute([id])?;
        let Some(thread) = row else {
            return Ok(());
        };
        self.tx
            .prepare_cached("INSERT INTO threads (id, group_id, name) VALUES (?1, ?2, ?3)")?
            .execute(params![thread.id, thread.group_id, thread.name])?;
        let mut members = self
            .tx
            .prepare_cached("INSERT INTO thread_members (thread_id, user_id) VALUES (?1, ?2)")?;
        for user in &thread.members {
            members.execute(params![id, user])?;
        }
        Ok(())
    }

    /// Appends an event to the journal and returns its sequence number, or
    /// `None` (and changes nothing) when it is journaled already: an event
    /// with the same content id, or of the same operation (`origin` and
    /// `origin_seq`).
    pub fn append_event(&self, event: &EventRow) -> Result<Option<i64>, StoreError> {
        let inserted = self
            .tx
            .prepare_cached(
                "INSERT INTO events (content_id, origin, origin_seq, made_at_ms, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                &event.content_id[..],
                &event.origin[..],
                event
                    .origin_seq
                    .map(|n| u64_to_sql("events.origin_seq", n))
                    .transpose()?,
                event.made_at_ms,
                event.body
            ])?;
        Ok((inserted == 1).then(|| self.tx.last_insert_rowid()))
    }
}
