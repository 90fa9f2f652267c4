//! The in-memory relay store: for tests, simulations and a relay started
//! without a data path. It holds nothing across restarts.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{
    Appended, ContentKey, DeviceKey, DeviceRow, LogRow, Login, LoginOutcome, Page, PayloadKey,
    PayloadRow, PutPayload, RelayStore, TokenHash,
};
use crate::values::u64_to_sql;
use crate::StoreError;

#[derive(Debug, Default)]
struct Account {
    devices: BTreeMap<DeviceKey, (DeviceRow, TokenHash)>,
    revoked: HashSet<(DeviceKey, TokenHash)>,
    /// `log[i]` has seq `i + 1`.
    log: Vec<LogRow>,
    by_content: HashMap<ContentKey, u64>,
    /// Per recipient, oldest first.
    payloads: HashMap<DeviceKey, Vec<PayloadRow>>,
}

impl Account {
    fn head_seq(&self) -> u64 {
        self.log.len() as u64
    }
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
        // The same limit as the SQL backends, checked before anything moves.
        u64_to_sql("now_ms", login.now_ms)?;
        let account = self.accounts.entry(login.account.to_owned()).or_default();
        if account.revoked.contains(&(login.device, login.token_hash)) {
            return Ok(LoginOutcome::Revoked);
        }
        let head = account.head_seq();
        let first_login = !account.devices.contains_key(&login.device);
        if first_login && account.devices.len() >= login.devices_max {
            return Ok(LoginOutcome::TooManyDevices);
        }
        let entry = account.devices.entry(login.device).or_insert_with(|| {
            let row = DeviceRow {
                device: login.device,
                name: String::new(),
                platform: String::new(),
                first_login_ms: login.now_ms,
                last_seen_ms: login.now_ms,
                cursor: 0,
            };
            (row, login.token_hash)
        });
        entry.0.name = login.name.to_owned();
        entry.0.platform = login.platform.to_owned();
        entry.0.last_seen_ms = login.now_ms;
        entry.0.cursor = entry.0.cursor.max(login.resume_cursor.min(head));
        entry.1 = login.token_hash;
        Ok(LoginOutcome::Accepted {
            device: entry.0.clone(),
            first_login,
        })
    }

    fn devices(&mut self, account: &str) -> Result<Vec<DeviceRow>, StoreError> {
        Ok(self
            .accounts
            .get(account)
            .map(|a| a.devices.values().map(|(row, _)| row.clone()).collect())
            .unwrap_or_default())
    }

    fn touch(
        &mut self,
        account: &str,
        device: DeviceKey,
        last_seen_ms: u64,
    ) -> Result<(), StoreError> {
        u64_to_sql("last_seen_ms", last_seen_ms)?;
        if let Some((row, _)) = self
            .accounts
            .get_mut(account)
            .and_then(|a| a.devices.get_mut(&device))
        {
            row.last_seen_ms = last_seen_ms;
        }
        Ok(())
    }

    fn revoke(&mut self, account: &str, device: DeviceKey) -> Result<bool, StoreError> {
        let Some(account) = self.accounts.get_mut(account) else {
            return Ok(false);
        };
        let Some((_, token_hash)) = account.devices.get(&device) else {
            return Ok(false);
        };
        account.revoked.insert((device, *token_hash));
        Ok(true)
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
        let start = usize::try_from(after_seq)
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
        let Some((row, _)) = account.devices.get_mut(&device) else {
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
