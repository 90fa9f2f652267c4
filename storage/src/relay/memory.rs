//! The in-memory relay store: for tests, simulations and a relay started
//! without a data path. It holds nothing across restarts.

use std::collections::{BTreeMap, HashMap};

use super::{
    check_envelopes, check_publish, chunk_hash, expiry_after, is_active, is_expired,
    missing_chunks, plan_append, plan_login, publish_condition, published_row, retained_floor,
    AccountStatus, AppendFacts, AppendOutcome, AppendPlan, Appended, ChunkHash, ContentKey,
    DeviceKey, DeviceRow, EnrollmentRow, EnvelopeIn, EpochRow, LogRead, LogRow, Login, LoginFacts,
    LoginOutcome, LoginPlan, Page, PayloadKey, PayloadRow, Publish, PublishOutcome, PutPayload,
    RelayStore, Retained, Retention, Revocation, RevokeOutcome, SnapshotKey, StagedChunk,
    TailStats, TokenId, TokenUse,
};
use crate::values::u64_to_sql;
use crate::StoreError;

#[derive(Debug)]
struct Account {
    status: AccountStatus,
    devices: BTreeMap<DeviceKey, DeviceRow>,
    /// Used login tokens: who used each, and until when it must be kept.
    used_tokens: HashMap<TokenId, (DeviceKey, u64)>,
    /// `log[i]` has seq `log_floor_seq + i + 1`: retention deletes a
    /// prefix.
    log: Vec<LogRow>,
    /// When each entry of `log` was appended (0 for plaintext deltas, as
    /// the SQL stores default them).
    appended_at_ms: Vec<u64>,
    /// The highest deleted seq (0: none).
    log_floor_seq: u64,
    by_content: HashMap<ContentKey, u64>,
    /// Per recipient, oldest first.
    payloads: HashMap<DeviceKey, Vec<PayloadRow>>,
    /// The current epoch (0: none published) and its base.
    epoch: u64,
    epoch_base_seq: u64,
    /// Bytes of the log after the base.
    tail_bytes: u64,
    /// Published epochs by number.
    epochs: BTreeMap<u64, EpochRow>,
    /// Each origin's chain head: position and content id.
    chains: HashMap<DeviceKey, (u64, ContentKey)>,
    /// Staged and committed snapshot chunks.
    chunks: HashMap<(SnapshotKey, u32), Chunk>,
}

#[derive(Debug)]
struct Chunk {
    hash: ChunkHash,
    bytes: Vec<u8>,
    committed: bool,
    staged_at_ms: u64,
}

impl Default for Account {
    fn default() -> Self {
        Account {
            status: AccountStatus::Active,
            devices: BTreeMap::new(),
            used_tokens: HashMap::new(),
            log: Vec::new(),
            appended_at_ms: Vec::new(),
            log_floor_seq: 0,
            by_content: HashMap::new(),
            payloads: HashMap::new(),
            epoch: 0,
            epoch_base_seq: 0,
            tail_bytes: 0,
            epochs: BTreeMap::new(),
            chains: HashMap::new(),
            chunks: HashMap::new(),
        }
    }
}

impl Account {
    fn head_seq(&self) -> u64 {
        self.log_floor_seq + self.log.len() as u64
    }

    fn current_epoch(&self) -> Option<EpochRow> {
        self.epochs.get(&self.epoch).cloned()
    }
}

/// The same limits the SQL backends check before writing.
fn check_revocation(revocation: &Revocation) -> Result<(), StoreError> {
    u64_to_sql("revoked_at_ms", revocation.at_ms).map(|_| ())
}

/// A [`RelayStore`] in process memory.
#[derive(Debug, Default)]
pub struct MemoryRelayStore {
    accounts: HashMap<String, Account>,
}

impl MemoryRelayStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl RelayStore for MemoryRelayStore {
    fn login(&mut self, login: &Login<'_>) -> Result<LoginOutcome, StoreError> {
        // The same limits as the SQL backends, checked before anything moves.
        u64_to_sql("now_ms", login.now_ms)?;
        let expires_at_ms = expiry_after(login)?;
        if let Some(token) = &login.token {
            u64_to_sql("expires_at_ms", token.expires_at_ms)?;
        }
        let account = self.accounts.entry(login.account.to_owned()).or_default();
        let facts = LoginFacts {
            status: account.status,
            device: account.devices.get(&login.device),
            token_used_by: login
                .token
                .and_then(|t| account.used_tokens.get(&t.id).map(|(user, _)| *user)),
            devices_registered: account.devices.len() as u64,
        };
        let writes = match plan_login(login, &facts) {
            LoginPlan::Write(writes) => writes,
            LoginPlan::Refuse(refused) => return Ok(refused),
        };
        let head = account.head_seq();
        let row = account
            .devices
            .entry(login.device)
            .or_insert_with(|| DeviceRow {
                device: login.device,
                name: String::new(),
                platform: String::new(),
                first_login_ms: login.now_ms,
                last_seen_ms: login.now_ms,
                cursor: 0,
                enrollment: None,
            });
        match writes.enroll_with {
            Some(token) => {
                account
                    .used_tokens
                    .insert(token.id, (login.device, token.expires_at_ms));
                row.enrollment = Some(EnrollmentRow {
                    public_key: login.public_key,
                    token_id: token.id,
                    enrolled_at_ms: login.now_ms,
                    expires_at_ms,
                    revoked: None,
                });
            }
            None => {
                let enrollment = row
                    .enrollment
                    .as_mut()
                    .expect("a renewal has an enrollment");
                enrollment.expires_at_ms = enrollment.expires_at_ms.max(expires_at_ms);
            }
        }
        row.name = login.name.to_owned();
        row.platform = login.platform.to_owned();
        row.last_seen_ms = login.now_ms;
        row.cursor = row.cursor.max(login.resume_cursor.min(head));
        Ok(LoginOutcome::Accepted {
            device: row.clone(),
            first_login: writes.new_device,
            enrolled_now: writes.enroll_with.is_some(),
        })
    }

    fn devices(&mut self, account: &str) -> Result<Vec<DeviceRow>, StoreError> {
        Ok(self
            .accounts
            .get(account)
            .map(|a| a.devices.values().cloned().collect())
            .unwrap_or_default())
    }

    fn touch(
        &mut self,
        account: &str,
        device: DeviceKey,
        last_seen_ms: u64,
    ) -> Result<(), StoreError> {
        u64_to_sql("last_seen_ms", last_seen_ms)?;
        if let Some(row) = self
            .accounts
            .get_mut(account)
            .and_then(|a| a.devices.get_mut(&device))
        {
            row.last_seen_ms = last_seen_ms;
        }
        Ok(())
    }

    fn revoke(
        &mut self,
        account: &str,
        device: DeviceKey,
        revocation: &Revocation,
    ) -> Result<RevokeOutcome, StoreError> {
        check_revocation(revocation)?;
        let Some(row) = self
            .accounts
            .get_mut(account)
            .and_then(|a| a.devices.get_mut(&device))
        else {
            return Ok(RevokeOutcome::NotFound);
        };
        Ok(match &mut row.enrollment {
            None => RevokeOutcome::NotEnrolled,
            Some(e) if e.revoked.is_some() => RevokeOutcome::AlreadyRevoked,
            Some(e) => {
                e.revoked = Some(revocation.clone());
                RevokeOutcome::Revoked
            }
        })
    }

    fn revoke_all(
        &mut self,
        account: &str,
        except: Option<DeviceKey>,
        revocation: &Revocation,
    ) -> Result<Vec<DeviceKey>, StoreError> {
        check_revocation(revocation)?;
        let Some(account) = self.accounts.get_mut(account) else {
            return Ok(Vec::new());
        };
        let mut revoked = Vec::new();
        for (device, row) in &mut account.devices {
            if Some(*device) == except {
                continue;
            }
            if let Some(e) = &mut row.enrollment {
                if e.revoked.is_none() {
                    e.revoked = Some(revocation.clone());
                    revoked.push(*device);
                }
            }
        }
        Ok(revoked)
    }

    fn renew_enrollment(
        &mut self,
        account: &str,
        device: DeviceKey,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        u64_to_sql("expires_at_ms", expires_at_ms)?;
        let Some(e) = self
            .accounts
            .get_mut(account)
            .and_then(|a| a.devices.get_mut(&device))
            .and_then(|row| row.enrollment.as_mut())
        else {
            return Ok(false);
        };
        if !e.is_active(now_ms) {
            return Ok(false);
        }
        e.expires_at_ms = e.expires_at_ms.max(expires_at_ms);
        Ok(true)
    }

    fn use_token(
        &mut self,
        account: &str,
        token: &TokenUse,
        device: DeviceKey,
    ) -> Result<bool, StoreError> {
        u64_to_sql("expires_at_ms", token.expires_at_ms)?;
        let account = self.accounts.entry(account.to_owned()).or_default();
        if account.used_tokens.contains_key(&token.id) {
            return Ok(false);
        }
        account
            .used_tokens
            .insert(token.id, (device, token.expires_at_ms));
        Ok(true)
    }

    fn purge_used_tokens(&mut self, now_ms: u64) -> Result<u64, StoreError> {
        let mut purged = 0;
        for account in self.accounts.values_mut() {
            let before = account.used_tokens.len();
            account
                .used_tokens
                .retain(|_, (_, expires_at_ms)| *expires_at_ms > now_ms);
            purged += (before - account.used_tokens.len()) as u64;
        }
        Ok(purged)
    }

    fn account_status(&mut self, account: &str) -> Result<AccountStatus, StoreError> {
        Ok(self
            .accounts
            .get(account)
            .map_or(AccountStatus::Active, |a| a.status))
    }

    fn set_banned(&mut self, account: &str, banned: bool) -> Result<AccountStatus, StoreError> {
        let account = self.accounts.entry(account.to_owned()).or_default();
        if account.status != AccountStatus::Removed {
            account.status = if banned {
                AccountStatus::Banned
            } else {
                AccountStatus::Active
            };
        }
        Ok(account.status)
    }

    fn remove_account(&mut self, account: &str) -> Result<u64, StoreError> {
        let slot = self.accounts.entry(account.to_owned()).or_default();
        let devices = slot.devices.len() as u64;
        *slot = Account {
            status: AccountStatus::Removed,
            ..Account::default()
        };
        Ok(devices)
    }

    fn append(
        &mut self,
        account: &str,
        origin: DeviceKey,
        deltas: &[(ContentKey, &[u8])],
    ) -> Result<Vec<Appended>, StoreError> {
        let account = self.accounts.entry(account.to_owned()).or_default();
        // The SQLite backend refuses an unregistered origin through its
        // foreign key; refuse here too so both behave alike.
        if !account.devices.contains_key(&origin) {
            return Err(StoreError::Corrupt(format!(
                "append from an unregistered device {origin:02x?}"
            )));
        }
        let mut out = Vec::with_capacity(deltas.len());
        for (content_id, bytes) in deltas {
            if let Some(&seq) = account.by_content.get(content_id) {
                out.push(Appended {
                    content_id: *content_id,
                    seq,
                    new: false,
                });
                continue;
            }
            let seq = account.head_seq() + 1;
            account.tail_bytes += bytes.len() as u64;
            account.appended_at_ms.push(0);
            account.log.push(LogRow {
                seq,
                origin,
                content_id: *content_id,
                bytes: bytes.to_vec(),
            });
            account.by_content.insert(*content_id, seq);
            out.push(Appended {
                content_id: *content_id,
                seq,
                new: true,
            });
        }
        Ok(out)
    }

    fn read_log(
        &mut self,
        account: &str,
        after_seq: u64,
        count_max: usize,
        bytes_max: usize,
    ) -> Result<Page, StoreError> {
        let Some(account) = self.accounts.get(account) else {
            return Ok(Page::default());
        };
        // Rows after the cursor; below the floor, from the oldest kept.
        let start = usize::try_from(after_seq.saturating_sub(account.log_floor_seq))
            .unwrap_or(usize::MAX)
            .min(account.log.len());
        let mut page = Page::default();
        let mut bytes = 0usize;
        for row in account.log[start..].iter().take(count_max) {
            if !page.rows.is_empty() && bytes + row.bytes.len() > bytes_max {
                break;
            }
            bytes += row.bytes.len();
            page.rows.push(row.clone());
        }
        let last = page.rows.last().map_or(after_seq, |r| r.seq);
        page.more = last < account.head_seq();
        Ok(page)
    }

    fn head_seq(&mut self, account: &str) -> Result<u64, StoreError> {
        Ok(self.accounts.get(account).map_or(0, Account::head_seq))
    }

    fn append_envelopes(
        &mut self,
        account: &str,
        origin: DeviceKey,
        envelopes: &[EnvelopeIn<'_>],
        now_ms: u64,
    ) -> Result<AppendOutcome, StoreError> {
        check_envelopes(envelopes, now_ms)?;
        let account = self.accounts.entry(account.to_owned()).or_default();
        if !account.devices.contains_key(&origin) {
            return Err(StoreError::Corrupt(format!(
                "append from an unregistered device {origin:02x?}"
            )));
        }
        let known: HashMap<ContentKey, u64> = envelopes
            .iter()
            .filter_map(|e| Some((e.content_id, *account.by_content.get(&e.content_id)?)))
            .collect();
        let facts = AppendFacts {
            epoch: account.epoch,
            head_seq: account.head_seq(),
            chain: account.chains.get(&origin).copied().unwrap_or((0, [0; 32])),
            known: &known,
        };
        let writes = match plan_append(envelopes, &facts) {
            AppendPlan::Write(writes) => writes,
            AppendPlan::StaleEpoch { index } => {
                return Ok(AppendOutcome::StaleEpoch {
                    index,
                    current: account.current_epoch(),
                })
            }
            AppendPlan::ChainConflict {
                index,
                head_pos,
                head,
            } => {
                return Ok(AppendOutcome::ChainConflict {
                    index,
                    head_pos,
                    head,
                })
            }
        };
        for &(index, seq) in &writes.new {
            let e = &envelopes[index];
            debug_assert_eq!(seq, account.head_seq() + 1);
            account.appended_at_ms.push(now_ms);
            account.log.push(LogRow {
                seq,
                origin,
                content_id: e.content_id,
                bytes: e.bytes.to_vec(),
            });
            account.by_content.insert(e.content_id, seq);
        }
        account.tail_bytes += writes.bytes;
        if let Some(chain) = writes.chain {
            account.chains.insert(origin, chain);
        }
        Ok(AppendOutcome::Appended(writes.out))
    }

    fn epoch(&mut self, account: &str) -> Result<Option<EpochRow>, StoreError> {
        Ok(self.accounts.get(account).and_then(Account::current_epoch))
    }

    fn stage_chunk(
        &mut self,
        account: &str,
        chunk: &StagedChunk<'_>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        u64_to_sql("staged_at_ms", now_ms)?;
        let account = self.accounts.entry(account.to_owned()).or_default();
        let slot = account
            .chunks
            .entry((chunk.snapshot_id, chunk.index))
            .or_insert_with(|| Chunk {
                hash: [0; 32],
                bytes: Vec::new(),
                committed: false,
                staged_at_ms: now_ms,
            });
        if !slot.committed {
            slot.hash = chunk_hash(chunk.bytes);
            slot.bytes = chunk.bytes.to_vec();
            slot.staged_at_ms = now_ms;
        }
        Ok(())
    }

    fn publish_epoch(
        &mut self,
        account: &str,
        publish: &Publish<'_>,
        now_ms: u64,
    ) -> Result<PublishOutcome, StoreError> {
        check_publish(publish, now_ms)?;
        let account = self.accounts.entry(account.to_owned()).or_default();
        let head_seq = account.head_seq();
        if !publish_condition(account.epoch, head_seq, publish) {
            return Ok(PublishOutcome::Conflict {
                current: account.current_epoch(),
                head_seq,
            });
        }
        let staged: HashMap<u32, ChunkHash> = account
            .chunks
            .iter()
            .filter(|((id, _), _)| *id == publish.snapshot_id)
            .map(|((_, index), c)| (*index, c.hash))
            .collect();
        let missing = missing_chunks(publish, &staged);
        if !missing.is_empty() {
            return Ok(PublishOutcome::Incomplete { missing });
        }
        for index in 0..publish.chunk_hashes.len() as u32 {
            if let Some(c) = account.chunks.get_mut(&(publish.snapshot_id, index)) {
                c.committed = true;
            }
        }
        let row = published_row(publish, now_ms);
        account.epoch = row.epoch;
        account.epoch_base_seq = row.base_seq;
        account.tail_bytes = 0;
        account.epochs.insert(row.epoch, row.clone());
        Ok(PublishOutcome::Published(row))
    }

    fn snapshot_chunk(
        &mut self,
        account: &str,
        epoch: u64,
        index: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(account) = self.accounts.get(account) else {
            return Ok(None);
        };
        let Some(row) = account.epochs.get(&epoch) else {
            return Ok(None);
        };
        Ok(account
            .chunks
            .get(&(row.snapshot_id, index))
            .filter(|c| c.committed)
            .map(|c| c.bytes.clone()))
    }

    fn tail_stats(&mut self, account: &str) -> Result<TailStats, StoreError> {
        let Some(account) = self.accounts.get(account) else {
            return Ok(TailStats::default());
        };
        let head_seq = account.head_seq();
        Ok(TailStats {
            head_seq,
            epoch: account.epoch,
            base_seq: account.epoch_base_seq,
            entries: head_seq - account.epoch_base_seq,
            bytes: account.tail_bytes,
            floor_seq: account.log_floor_seq,
        })
    }

    fn read_log_from(
        &mut self,
        account: &str,
        after_seq: u64,
        count_max: usize,
        bytes_max: usize,
    ) -> Result<LogRead, StoreError> {
        let floor = self.accounts.get(account).map_or(0, |a| a.log_floor_seq);
        if after_seq < floor {
            return Ok(LogRead::Truncated { floor });
        }
        Ok(LogRead::Page(
            self.read_log(account, after_seq, count_max, bytes_max)?,
        ))
    }

    fn retain(
        &mut self,
        account: &str,
        retention: &Retention,
        now_ms: u64,
    ) -> Result<Retained, StoreError> {
        u64_to_sql("now_ms", now_ms)?;
        let Some(a) = self.accounts.get_mut(account) else {
            return Ok(Retained::default());
        };
        let stats = TailStats {
            head_seq: a.head_seq(),
            epoch: a.epoch,
            base_seq: a.epoch_base_seq,
            entries: 0,
            bytes: 0,
            floor_seq: a.log_floor_seq,
        };
        let min_active_cursor = a
            .devices
            .values()
            .filter(|d| is_active(d.last_seen_ms, retention, now_ms))
            .map(|d| d.cursor)
            .min();
        let first_recent_seq = a
            .appended_at_ms
            .iter()
            .position(|&at| !is_expired(at, retention.log_retention_ms, now_ms))
            .map(|i| a.log_floor_seq + i as u64 + 1);
        let floor = retained_floor(&stats, min_active_cursor, first_recent_seq);
        let dropped = (floor - a.log_floor_seq) as usize;
        for row in a.log.drain(..dropped) {
            a.by_content.remove(&row.content_id);
        }
        a.appended_at_ms.drain(..dropped);
        a.log_floor_seq = floor;
        let old_snapshots: Vec<SnapshotKey> = a
            .epochs
            .values()
            .filter(|row| row.epoch.saturating_add(1) < a.epoch)
            .map(|row| row.snapshot_id)
            .collect();
        let before = a.chunks.len();
        a.chunks
            .retain(|(id, _), c| !c.committed || !old_snapshots.contains(id));
        let snapshot_chunks = (before - a.chunks.len()) as u64;
        let before = a.chunks.len();
        a.chunks.retain(|_, c| {
            c.committed || !is_expired(c.staged_at_ms, retention.staged_ttl_ms, now_ms)
        });
        Ok(Retained {
            log_entries: dropped as u64,
            floor_seq: floor,
            snapshot_chunks,
            staged_chunks: (before - a.chunks.len()) as u64,
        })
    }

    fn set_cursor(
        &mut self,
        account: &str,
        device: DeviceKey,
        cursor: u64,
    ) -> Result<Option<u64>, StoreError> {
        let Some(account) = self.accounts.get_mut(account) else {
            return Ok(None);
        };
        let head = account.head_seq();
        let Some(row) = account.devices.get_mut(&device) else {
            return Ok(None);
        };
        row.cursor = row.cursor.max(cursor.min(head));
        Ok(Some(row.cursor))
    }

    fn put_payload(
        &mut self,
        account: &str,
        recipient: DeviceKey,
        payload: &PayloadRow,
        pending_max: usize,
    ) -> Result<PutPayload, StoreError> {
        u64_to_sql("sent_ms", payload.sent_ms)?;
        let Some(account) = self.accounts.get_mut(account) else {
            return Ok(PutPayload::UnknownRecipient);
        };
        if !account.devices.contains_key(&recipient) {
            return Ok(PutPayload::UnknownRecipient);
        }
        let queue = account.payloads.entry(recipient).or_default();
        if queue.iter().any(|p| p.id == payload.id) {
            return Ok(PutPayload::AlreadyStored);
        }
        if queue.len() >= pending_max {
            return Ok(PutPayload::QueueFull);
        }
        queue.push(payload.clone());
        Ok(PutPayload::Stored)
    }

    fn payloads(
        &mut self,
        account: &str,
        recipient: DeviceKey,
    ) -> Result<Vec<PayloadRow>, StoreError> {
        Ok(self
            .accounts
            .get(account)
            .and_then(|a| a.payloads.get(&recipient))
            .cloned()
            .unwrap_or_default())
    }

    fn ack_payload(
        &mut self,
        account: &str,
        recipient: DeviceKey,
        id: PayloadKey,
    ) -> Result<bool, StoreError> {
        let Some(queue) = self
            .accounts
            .get_mut(account)
            .and_then(|a| a.payloads.get_mut(&recipient))
        else {
            return Ok(false);
        };
        let before = queue.len();
        queue.retain(|p| p.id != id);
        Ok(queue.len() < before)
    }
}
