//! The SQLite relay store: one file, WAL, foreign keys on, one transaction
//! per logical operation.
//!
//! Calls block on disk IO. The relay runs this store on a thread of its own
//! behind a bounded channel and never calls it from its async reactor.

use std::path::Path;

use rusqlite::{
    params, Connection, OptionalExtension, Savepoint, Transaction, TransactionBehavior,
};

use std::collections::HashMap;

use super::{
    check_envelopes, check_publish, chunk_hash, expiry_after, missing_chunks, plan_append,
    plan_login, publish_condition, published_row, retained_floor, AccountStatus, AppendFacts,
    AppendOutcome, AppendPlan, Appended, ChunkHash, ContentKey, DeviceKey, DeviceRow, EnvelopeIn,
    EpochRow, LogRead, LogRow, Login, LoginFacts, LoginOutcome, LoginPlan, Page, PayloadKey,
    PayloadRow, Publish, PublishOutcome, PutPayload, RelayStore, Retained, Retention, Revocation,
    RevokeOutcome, StagedChunk, StoredDevice, TailStats, TokenUse,
};
use crate::migrate::{self, Migration};
use crate::values::{bound, bound_usize, key, u64_from_sql, u64_to_sql};
use crate::{OpenError, StoreError};

/// The relay schema's migrations, numbered from 1, applied in order at open.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("migrations/sqlite/0002_enrollments.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("migrations/sqlite/0003_epochs.sql"),
    },
];

/// A [`RelayStore`] in a SQLite file.
#[derive(Debug)]
pub struct SqliteRelayStore {
    conn: Connection,
    /// Inside a group (see `RelayStore::begin_group`).
    in_group: bool,
}

impl SqliteRelayStore {
    /// Opens (creating if needed) the store at `path` and migrates it to the
    /// current schema in one transaction. A file from a newer build is
    /// refused with [`OpenError::SchemaTooNew`].
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        Self::setup(Connection::open(path).map_err(OpenError::Sqlite)?)
    }

    /// A store in a private in-memory database, for tests.
    pub fn open_in_memory() -> Result<Self, OpenError> {
        Self::setup(Connection::open_in_memory().map_err(OpenError::Sqlite)?)
    }

    fn setup(mut conn: Connection) -> Result<Self, OpenError> {
        // FULL: each commit is durable before the relay acknowledges it to a
        // device; a PushAck is a promise.
        migrate::open_durable(&mut conn, MIGRATIONS)?;
        Ok(SqliteRelayStore {
            conn,
            in_group: false,
        })
    }

    fn write(&mut self) -> Result<Step<'_>, StoreError> {
        if self.in_group {
            // Inside a group a savepoint keeps the operation all-or-nothing
            // while the group's transaction holds the write lock already.
            return Ok(Step::Savepoint(self.conn.savepoint()?));
        }
        // IMMEDIATE takes the write lock up front, so a read-then-write
        // operation cannot fail halfway on a lock upgrade.
        Ok(Step::Transaction(self.conn.transaction_with_behavior(
            TransactionBehavior::Immediate,
        )?))
    }

    fn read(&mut self) -> Result<Step<'_>, StoreError> {
        if self.in_group {
            return Ok(Step::Savepoint(self.conn.savepoint()?));
        }
        Ok(Step::Transaction(self.conn.transaction()?))
    }
}

/// One operation's transaction: its own, or a savepoint inside a group.
enum Step<'a> {
    Transaction(Transaction<'a>),
    Savepoint(Savepoint<'a>),
}

impl Step<'_> {
    fn commit(self) -> rusqlite::Result<()> {
        match self {
            Step::Transaction(tx) => tx.commit(),
            Step::Savepoint(sp) => sp.commit(),
        }
    }
}

impl std::ops::Deref for Step<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Step::Transaction(tx) => tx,
            Step::Savepoint(sp) => sp,
        }
    }
}

fn head_seq(tx: &Connection, account: &str) -> Result<u64, StoreError> {
    let head: Option<i64> = tx
        .query_row(
            "SELECT head_seq FROM accounts WHERE account = ?1",
            [account],
            |r| r.get(0),
        )
        .optional()?;
    u64_from_sql("head_seq", head.unwrap_or(0))
}

/// A device's row with its enrollment: the columns [`device_from_row`]
/// reads, in its order.
const DEVICE_SELECT: &str = "SELECT d.device, d.name, d.platform, d.first_login_ms, \
     d.last_seen_ms, d.cursor, e.public_key, e.token_id, e.enrolled_at_ms, e.expires_at_ms, \
     e.revoked_kind, e.revoked_by, e.revoked_by_name, e.revoked_by_platform, e.revoked_at_ms \
     FROM devices d LEFT JOIN enrollments e ON e.account = d.account AND e.device = d.device";

fn device_from_row(r: &rusqlite::Row<'_>) -> Result<DeviceRow, StoreError> {
    StoredDevice {
        device: r.get(0)?,
        name: r.get(1)?,
        platform: r.get(2)?,
        first_login_ms: r.get(3)?,
        last_seen_ms: r.get(4)?,
        cursor: r.get(5)?,
        public_key: r.get(6)?,
        token_id: r.get(7)?,
        enrolled_at_ms: r.get(8)?,
        expires_at_ms: r.get(9)?,
        revoked_kind: r.get(10)?,
        revoked_by: r.get(11)?,
        revoked_by_name: r.get(12)?,
        revoked_by_platform: r.get(13)?,
        revoked_at_ms: r.get(14)?,
    }
    .decode()
}

fn device_row(
    conn: &Connection,
    account: &str,
    device: DeviceKey,
) -> Result<Option<DeviceRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "{DEVICE_SELECT} WHERE d.account = ?1 AND d.device = ?2"
    ))?;
    let mut rows = stmt.query(params![account, device])?;
    match rows.next()? {
        Some(r) => Ok(Some(device_from_row(r)?)),
        None => Ok(None),
    }
}

fn account_status(conn: &Connection, account: &str) -> Result<AccountStatus, StoreError> {
    let status: Option<String> = conn
        .query_row(
            "SELECT status FROM accounts WHERE account = ?1",
            [account],
            |r| r.get(0),
        )
        .optional()?;
    status.map_or(Ok(AccountStatus::Active), |s| AccountStatus::parse(&s))
}

/// The columns a revocation writes, checked.
struct RevocationParams<'a> {
    kind: &'static str,
    by: Option<Vec<u8>>,
    by_name: Option<&'a str>,
    by_platform: Option<&'a str>,
    at: i64,
}

fn revocation_params(revocation: &Revocation) -> Result<RevocationParams<'_>, StoreError> {
    let by = revocation.by.as_ref();
    Ok(RevocationParams {
        kind: revocation.kind.as_str(),
        by: by.map(|b| b.device.to_vec()),
        by_name: by.map(|b| b.name.as_str()),
        by_platform: by.map(|b| b.platform.as_str()),
        at: u64_to_sql("revoked_at_ms", revocation.at_ms)?,
    })
}

/// The columns of an epoch row that [`epoch_from_row`] reads, in its order.
const EPOCH_SELECT: &str = "SELECT e.epoch, e.generation, e.base_seq, e.snapshot_id, \
     e.manifest, e.chunks, e.published_by, e.published_at_ms FROM epochs e";

fn epoch_from_row(r: &rusqlite::Row<'_>) -> Result<EpochRow, StoreError> {
    Ok(EpochRow {
        epoch: u64_from_sql("epoch", r.get(0)?)?,
        generation: u32_from_sql("generation", r.get(1)?)?,
        base_seq: u64_from_sql("base_seq", r.get(2)?)?,
        snapshot_id: key(r.get(3)?, "snapshot_id")?,
        manifest: r.get(4)?,
        chunks: u32_from_sql("chunks", r.get(5)?)?,
        published_by: key(r.get(6)?, "published_by")?,
        published_at_ms: u64_from_sql("published_at_ms", r.get(7)?)?,
    })
}

fn u32_from_sql(what: &str, value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} is {value}")))
}

/// The account's current epoch row, if one was published.
fn current_epoch(conn: &Connection, account: &str) -> Result<Option<EpochRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "{EPOCH_SELECT} JOIN accounts a ON a.account = e.account AND a.epoch = e.epoch
         WHERE e.account = ?1"
    ))?;
    let mut rows = stmt.query([account])?;
    match rows.next()? {
        Some(r) => Ok(Some(epoch_from_row(r)?)),
        None => Ok(None),
    }
}

/// The account's epoch, head, base and tail bytes (zeros when unknown).
fn epoch_state(conn: &Connection, account: &str) -> Result<TailStats, StoreError> {
    let row: Option<(i64, i64, i64, i64, i64)> = conn
        .query_row(
            "SELECT head_seq, epoch, epoch_base_seq, tail_bytes, log_floor_seq
             FROM accounts WHERE account = ?1",
            [account],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((head, epoch, base, bytes, floor)) = row else {
        return Ok(TailStats::default());
    };
    let (head_seq, base_seq) = (
        u64_from_sql("head_seq", head)?,
        u64_from_sql("epoch_base_seq", base)?,
    );
    Ok(TailStats {
        head_seq,
        epoch: u64_from_sql("epoch", epoch)?,
        base_seq,
        entries: head_seq.checked_sub(base_seq).ok_or_else(|| {
            StoreError::Corrupt(format!("epoch base {base_seq} above the head {head_seq}"))
        })?,
        bytes: u64_from_sql("tail_bytes", bytes)?,
        floor_seq: u64_from_sql("log_floor_seq", floor)?,
    })
}

/// Up to `count_max` rows after `after_seq` within `bytes_max` (at least
/// one when there is one), and whether the log holds more before `head`.
fn read_page(
    conn: &Connection,
    account: &str,
    after_seq: u64,
    count_max: usize,
    bytes_max: usize,
    head: u64,
) -> Result<Page, StoreError> {
    let mut page = Page::default();
    let mut stmt = conn.prepare_cached(
        "SELECT seq, origin, content_id, length(bytes), bytes FROM log
         WHERE account = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let limit = bound_usize(count_max);
    let mut rows = stmt.query(params![account, bound(after_seq), limit])?;
    let mut bytes = 0usize;
    while let Some(r) = rows.next()? {
        let len = u64_from_sql("delta length", r.get(3)?)? as usize;
        if !page.rows.is_empty() && bytes + len > bytes_max {
            break;
        }
        bytes += len;
        page.rows.push(LogRow {
            seq: u64_from_sql("seq", r.get(0)?)?,
            origin: key(r.get(1)?, "origin")?,
            content_id: key(r.get(2)?, "content id")?,
            bytes: r.get(4)?,
        });
    }
    let last = page.rows.last().map_or(after_seq, |r| r.seq);
    page.more = last < head;
    Ok(page)
}

/// `now - keep`, as the bound a stored time is compared with: a time after
/// it is younger than `keep`. At least -1, so that every stored time (never
/// negative) is after it when `keep` reaches back before 1970.
fn threshold(now: i64, keep_ms: u64) -> i64 {
    let t = i128::from(now) - i128::from(keep_ms);
    i64::try_from(t.max(-1)).unwrap_or(-1)
}

impl RelayStore for SqliteRelayStore {
    fn begin_group(&mut self) -> Result<(), StoreError> {
        debug_assert!(!self.in_group, "groups do not nest");
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        self.in_group = true;
        Ok(())
    }

    fn commit_group(&mut self) -> Result<(), StoreError> {
        if !self.in_group {
            return Ok(());
        }
        self.in_group = false;
        if let Err(error) = self.conn.execute_batch("COMMIT") {
            // Leave no transaction open; the rollback's own failure (there
            // may be nothing left to roll back) changes nothing for the
            // caller, who learns that the group did not commit.
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(error.into());
        }
        Ok(())
    }

    fn login(&mut self, login: &Login<'_>) -> Result<LoginOutcome, StoreError> {
        let now = u64_to_sql("now_ms", login.now_ms)?;
        let expires = u64_to_sql("expires_at_ms", expiry_after(login)?)?;
        let token_expires = login
            .token
            .map(|t| u64_to_sql("expires_at_ms", t.expires_at_ms))
            .transpose()?;
        let tx = self.write()?;
        let existing = device_row(&tx, login.account, login.device)?;
        let token_used_by: Option<Vec<u8>> = match &login.token {
            None => None,
            Some(token) => tx
                .query_row(
                    "SELECT device FROM used_tokens WHERE account = ?1 AND token_id = ?2",
                    params![login.account, token.id],
                    |r| r.get(0),
                )
                .optional()?,
        };
        let devices_registered: i64 = tx.query_row(
            "SELECT count(*) FROM devices WHERE account = ?1",
            [login.account],
            |r| r.get(0),
        )?;
        let facts = LoginFacts {
            status: account_status(&tx, login.account)?,
            device: existing.as_ref(),
            token_used_by: token_used_by
                .map(|d| key(d, "used_tokens.device"))
                .transpose()?,
            devices_registered: u64_from_sql("device count", devices_registered)?,
        };
        let writes = match plan_login(login, &facts) {
            LoginPlan::Write(writes) => writes,
            LoginPlan::Refuse(refused) => return Ok(refused),
        };
        tx.execute(
            "INSERT OR IGNORE INTO accounts (account) VALUES (?1)",
            [login.account],
        )?;
        let head = head_seq(&tx, login.account)?;
        let resume = u64_to_sql("cursor", login.resume_cursor.min(head))?;
        tx.execute(
            "INSERT INTO devices
                (account, device, name, platform, first_login_ms, last_seen_ms, cursor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)
             ON CONFLICT (account, device) DO UPDATE SET
                name = excluded.name,
                platform = excluded.platform,
                last_seen_ms = excluded.last_seen_ms,
                cursor = max(cursor, excluded.cursor)",
            params![
                login.account,
                login.device,
                login.name,
                login.platform,
                now,
                resume
            ],
        )?;
        match writes.enroll_with {
            Some(token) => {
                tx.execute(
                    "INSERT INTO used_tokens (account, token_id, device, expires_at_ms)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![login.account, token.id, login.device, token_expires],
                )?;
                tx.execute(
                    "INSERT INTO enrollments
                        (account, device, public_key, token_id, enrolled_at_ms, expires_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (account, device) DO UPDATE SET
                        token_id = excluded.token_id,
                        enrolled_at_ms = excluded.enrolled_at_ms,
                        expires_at_ms = excluded.expires_at_ms,
                        revoked_kind = NULL, revoked_by = NULL, revoked_by_name = NULL,
                        revoked_by_platform = NULL, revoked_at_ms = NULL",
                    params![
                        login.account,
                        login.device,
                        login.public_key,
                        token.id,
                        now,
                        expires
                    ],
                )?;
            }
            None => {
                tx.execute(
                    "UPDATE enrollments SET expires_at_ms = max(expires_at_ms, ?3)
                     WHERE account = ?1 AND device = ?2",
                    params![login.account, login.device, expires],
                )?;
            }
        }
        let device = device_row(&tx, login.account, login.device)?
            .ok_or_else(|| StoreError::Corrupt("a device vanished while logging in".into()))?;
        tx.commit()?;
        Ok(LoginOutcome::Accepted {
            device,
            first_login: writes.new_device,
            enrolled_now: writes.enroll_with.is_some(),
        })
    }

    fn devices(&mut self, account: &str) -> Result<Vec<DeviceRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{DEVICE_SELECT} WHERE d.account = ?1 ORDER BY d.device"
        ))?;
        let mut rows = stmt.query([account])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(device_from_row(r)?);
        }
        Ok(out)
    }

    fn touch(
        &mut self,
        account: &str,
        device: DeviceKey,
        last_seen_ms: u64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE devices SET last_seen_ms = ?3 WHERE account = ?1 AND device = ?2",
            params![account, device, u64_to_sql("last_seen_ms", last_seen_ms)?],
        )?;
        Ok(())
    }

    fn revoke(
        &mut self,
        account: &str,
        device: DeviceKey,
        revocation: &Revocation,
    ) -> Result<RevokeOutcome, StoreError> {
        let p = revocation_params(revocation)?;
        let tx = self.write()?;
        let changed = tx.execute(
            "UPDATE enrollments SET revoked_kind = ?3, revoked_by = ?4, revoked_by_name = ?5,
                revoked_by_platform = ?6, revoked_at_ms = ?7
             WHERE account = ?1 AND device = ?2 AND revoked_kind IS NULL",
            params![
                account,
                device,
                p.kind,
                p.by,
                p.by_name,
                p.by_platform,
                p.at
            ],
        )?;
        let outcome = if changed > 0 {
            RevokeOutcome::Revoked
        } else {
            match device_row(&tx, account, device)? {
                None => RevokeOutcome::NotFound,
                Some(row) if row.enrollment.is_none() => RevokeOutcome::NotEnrolled,
                Some(_) => RevokeOutcome::AlreadyRevoked,
            }
        };
        tx.commit()?;
        Ok(outcome)
    }

    fn revoke_all(
        &mut self,
        account: &str,
        except: Option<DeviceKey>,
        revocation: &Revocation,
    ) -> Result<Vec<DeviceKey>, StoreError> {
        let p = revocation_params(revocation)?;
        let tx = self.write()?;
        let mut revoked = Vec::new();
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE enrollments SET revoked_kind = ?3, revoked_by = ?4, revoked_by_name = ?5,
                    revoked_by_platform = ?6, revoked_at_ms = ?7
                 WHERE account = ?1 AND revoked_kind IS NULL AND (?2 IS NULL OR device <> ?2)
                 RETURNING device",
            )?;
            let except = except.map(|d| d.to_vec());
            let mut rows = stmt.query(params![
                account,
                except,
                p.kind,
                p.by,
                p.by_name,
                p.by_platform,
                p.at
            ])?;
            while let Some(r) = rows.next()? {
                revoked.push(key(r.get(0)?, "device id")?);
            }
        }
        tx.commit()?;
        revoked.sort();
        Ok(revoked)
    }

    fn renew_enrollment(
        &mut self,
        account: &str,
        device: DeviceKey,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let changed = self.conn.execute(
            "UPDATE enrollments SET expires_at_ms = max(expires_at_ms, ?3)
             WHERE account = ?1 AND device = ?2 AND revoked_kind IS NULL AND expires_at_ms > ?4",
            params![
                account,
                device,
                u64_to_sql("expires_at_ms", expires_at_ms)?,
                bound(now_ms)
            ],
        )?;
        Ok(changed > 0)
    }

    fn use_token(
        &mut self,
        account: &str,
        token: &TokenUse,
        device: DeviceKey,
    ) -> Result<bool, StoreError> {
        let inserted = self.conn.execute(
            "INSERT OR IGNORE INTO used_tokens (account, token_id, device, expires_at_ms)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                account,
                token.id,
                device,
                u64_to_sql("expires_at_ms", token.expires_at_ms)?
            ],
        )?;
        Ok(inserted > 0)
    }

    fn purge_used_tokens(&mut self, now_ms: u64) -> Result<u64, StoreError> {
        let purged = self.conn.execute(
            "DELETE FROM used_tokens WHERE expires_at_ms <= ?1",
            [bound(now_ms)],
        )?;
        Ok(purged as u64)
    }

    fn account_status(&mut self, account: &str) -> Result<AccountStatus, StoreError> {
        account_status(&self.conn, account)
    }

    fn set_banned(&mut self, account: &str, banned: bool) -> Result<AccountStatus, StoreError> {
        let status = if banned {
            AccountStatus::Banned
        } else {
            AccountStatus::Active
        };
        let tx = self.write()?;
        tx.execute(
            "INSERT OR IGNORE INTO accounts (account) VALUES (?1)",
            [account],
        )?;
        tx.execute(
            "UPDATE accounts SET status = ?2 WHERE account = ?1 AND status <> 'removed'",
            params![account, status.as_str()],
        )?;
        let now = account_status(&tx, account)?;
        tx.commit()?;
        Ok(now)
    }

    fn remove_account(&mut self, account: &str) -> Result<u64, StoreError> {
        let tx = self.write()?;
        let devices: i64 = tx.query_row(
            "SELECT count(*) FROM devices WHERE account = ?1",
            [account],
            |r| r.get(0),
        )?;
        for table in [
            "chains",
            "snapshot_chunks",
            "epochs",
            "payloads",
            "log",
            "used_tokens",
            "enrollments",
            "devices",
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE account = ?1"),
                [account],
            )?;
        }
        tx.execute(
            "INSERT INTO accounts (account, status) VALUES (?1, 'removed')
             ON CONFLICT (account) DO UPDATE SET status = 'removed', head_seq = 0, epoch = 0,
                generation = 0, epoch_base_seq = 0, log_floor_seq = 0, tail_bytes = 0",
            [account],
        )?;
        tx.commit()?;
        u64_from_sql("device count", devices)
    }

    fn append(
        &mut self,
        account: &str,
        origin: DeviceKey,
        deltas: &[(ContentKey, &[u8])],
    ) -> Result<Vec<Appended>, StoreError> {
        let tx = self.write()?;
        tx.execute(
            "INSERT OR IGNORE INTO accounts (account) VALUES (?1)",
            [account],
        )?;
        let mut head = head_seq(&tx, account)?;
        let mut out = Vec::with_capacity(deltas.len());
        {
            let mut find =
                tx.prepare_cached("SELECT seq FROM log WHERE account = ?1 AND content_id = ?2")?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO log (account, seq, content_id, origin, bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (content_id, bytes) in deltas {
                let existing: Option<i64> = find
                    .query_row(params![account, content_id], |r| r.get(0))
                    .optional()?;
                if let Some(seq) = existing {
                    let seq = u64_from_sql("seq", seq)?;
                    out.push(Appended {
                        content_id: *content_id,
                        seq,
                        new: false,
                    });
                    continue;
                }
                head += 1;
                insert.execute(params![
                    account,
                    u64_to_sql("seq", head)?,
                    content_id,
                    origin,
                    bytes
                ])?;
                out.push(Appended {
                    content_id: *content_id,
                    seq: head,
                    new: true,
                });
            }
        }
        let added: u64 = deltas
            .iter()
            .zip(&out)
            .filter(|(_, a)| a.new)
            .map(|((_, bytes), _)| bytes.len() as u64)
            .sum();
        tx.execute(
            "UPDATE accounts SET head_seq = ?2, tail_bytes = tail_bytes + ?3 WHERE account = ?1",
            params![
                account,
                u64_to_sql("seq", head)?,
                u64_to_sql("tail_bytes", added)?
            ],
        )?;
        tx.commit()?;
        Ok(out)
    }

    fn read_log(
        &mut self,
        account: &str,
        after_seq: u64,
        count_max: usize,
        bytes_max: usize,
    ) -> Result<Page, StoreError> {
        // One read transaction, so the page and `more` see the same log.
        let tx = self.read()?;
        let head = head_seq(&tx, account)?;
        let page = read_page(&tx, account, after_seq, count_max, bytes_max, head)?;
        tx.commit()?;
        Ok(page)
    }

    fn read_log_from(
        &mut self,
        account: &str,
        after_seq: u64,
        count_max: usize,
        bytes_max: usize,
    ) -> Result<LogRead, StoreError> {
        // The floor and the rows in one read transaction: one snapshot.
        let tx = self.read()?;
        let state = epoch_state(&tx, account)?;
        let read = if after_seq < state.floor_seq {
            LogRead::Truncated {
                floor: state.floor_seq,
            }
        } else {
            LogRead::Page(read_page(
                &tx,
                account,
                after_seq,
                count_max,
                bytes_max,
                state.head_seq,
            )?)
        };
        tx.commit()?;
        Ok(read)
    }

    fn retain(
        &mut self,
        account: &str,
        retention: &Retention,
        now_ms: u64,
    ) -> Result<Retained, StoreError> {
        let now = u64_to_sql("now_ms", now_ms)?;
        let tx = self.write()?;
        let stats = epoch_state(&tx, account)?;
        let active_after = threshold(now, retention.log_retention_ms);
        let min_active_cursor: Option<i64> = tx.query_row(
            "SELECT min(cursor) FROM devices WHERE account = ?1 AND last_seen_ms > ?2",
            params![account, active_after],
            |r| r.get(0),
        )?;
        let first_recent_seq: Option<i64> = tx.query_row(
            "SELECT min(seq) FROM log WHERE account = ?1 AND appended_at_ms > ?2",
            params![account, active_after],
            |r| r.get(0),
        )?;
        let floor = retained_floor(
            &stats,
            min_active_cursor
                .map(|c| u64_from_sql("cursor", c))
                .transpose()?,
            first_recent_seq
                .map(|s| u64_from_sql("seq", s))
                .transpose()?,
        );
        let mut retained = Retained {
            floor_seq: floor,
            ..Retained::default()
        };
        if floor > stats.floor_seq {
            let floor = u64_to_sql("log_floor_seq", floor)?;
            retained.log_entries = tx.execute(
                "DELETE FROM log WHERE account = ?1 AND seq <= ?2",
                params![account, floor],
            )? as u64;
            tx.execute(
                "UPDATE accounts SET log_floor_seq = ?2 WHERE account = ?1",
                params![account, floor],
            )?;
        }
        retained.snapshot_chunks = tx.execute(
            "DELETE FROM snapshot_chunks WHERE account = ?1 AND committed = 1
                AND snapshot_id IN (SELECT snapshot_id FROM epochs
                                    WHERE account = ?1 AND epoch + 1 < ?2)",
            params![account, u64_to_sql("epoch", stats.epoch)?],
        )? as u64;
        retained.staged_chunks = tx.execute(
            "DELETE FROM snapshot_chunks WHERE account = ?1 AND committed = 0
                AND staged_at_ms <= ?2",
            params![account, threshold(now, retention.staged_ttl_ms)],
        )? as u64;
        tx.commit()?;
        Ok(retained)
    }

    fn head_seq(&mut self, account: &str) -> Result<u64, StoreError> {
        head_seq(&self.conn, account)
    }

    fn append_envelopes(
        &mut self,
        account: &str,
        origin: DeviceKey,
        envelopes: &[EnvelopeIn<'_>],
        now_ms: u64,
    ) -> Result<AppendOutcome, StoreError> {
        check_envelopes(envelopes, now_ms)?;
        if envelopes.is_empty() {
            return Ok(AppendOutcome::Appended(Vec::new()));
        }
        // The write lock first: the facts read below hold until the commit.
        let tx = self.write()?;
        tx.execute(
            "INSERT OR IGNORE INTO accounts (account) VALUES (?1)",
            [account],
        )?;
        let state = epoch_state(&tx, account)?;
        let mut known = HashMap::new();
        {
            let mut find =
                tx.prepare_cached("SELECT seq FROM log WHERE account = ?1 AND content_id = ?2")?;
            for e in envelopes {
                let seq: Option<i64> = find
                    .query_row(params![account, e.content_id], |r| r.get(0))
                    .optional()?;
                if let Some(seq) = seq {
                    known.insert(e.content_id, u64_from_sql("seq", seq)?);
                }
            }
        }
        let chain: Option<(i64, Vec<u8>)> = tx
            .query_row(
                "SELECT chain_pos, head FROM chains WHERE account = ?1 AND device = ?2",
                params![account, origin],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let chain = match chain {
            None => (0, [0; 32]),
            Some((pos, head)) => (u64_from_sql("chain_pos", pos)?, key(head, "chain head")?),
        };
        let facts = AppendFacts {
            epoch: state.epoch,
            head_seq: state.head_seq,
            chain,
            known: &known,
        };
        let writes = match plan_append(envelopes, &facts) {
            AppendPlan::Write(writes) => writes,
            AppendPlan::StaleEpoch { index } => {
                return Ok(AppendOutcome::StaleEpoch {
                    index,
                    current: current_epoch(&tx, account)?,
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
        let now = u64_to_sql("appended_at_ms", now_ms)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO log (account, seq, content_id, origin, bytes, epoch, appended_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for &(index, seq) in &writes.new {
                let e = &envelopes[index];
                insert.execute(params![
                    account,
                    u64_to_sql("seq", seq)?,
                    e.content_id,
                    origin,
                    e.bytes,
                    u64_to_sql("epoch", e.epoch)?,
                    now
                ])?;
            }
        }
        if let Some((pos, head)) = writes.chain {
            tx.execute(
                "INSERT INTO chains (account, device, chain_pos, head) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (account, device) DO UPDATE SET
                    chain_pos = excluded.chain_pos, head = excluded.head",
                params![account, origin, u64_to_sql("chain_pos", pos)?, head],
            )?;
        }
        tx.execute(
            "UPDATE accounts SET head_seq = ?2, tail_bytes = tail_bytes + ?3 WHERE account = ?1",
            params![
                account,
                u64_to_sql("seq", writes.head_seq)?,
                u64_to_sql("tail_bytes", writes.bytes)?
            ],
        )?;
        tx.commit()?;
        Ok(AppendOutcome::Appended(writes.out))
    }

    fn epoch(&mut self, account: &str) -> Result<Option<EpochRow>, StoreError> {
        current_epoch(&self.conn, account)
    }

    fn stage_chunk(
        &mut self,
        account: &str,
        chunk: &StagedChunk<'_>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let now = u64_to_sql("staged_at_ms", now_ms)?;
        let hash = chunk_hash(chunk.bytes);
        let tx = self.write()?;
        tx.execute(
            "INSERT OR IGNORE INTO accounts (account) VALUES (?1)",
            [account],
        )?;
        tx.execute(
            "INSERT INTO snapshot_chunks (account, snapshot_id, idx, hash, bytes, staged_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (account, snapshot_id, idx) DO UPDATE SET
                hash = excluded.hash, bytes = excluded.bytes, staged_at_ms = excluded.staged_at_ms
             WHERE committed = 0",
            params![
                account,
                chunk.snapshot_id,
                i64::from(chunk.index),
                hash,
                chunk.bytes,
                now
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn publish_epoch(
        &mut self,
        account: &str,
        publish: &Publish<'_>,
        now_ms: u64,
    ) -> Result<PublishOutcome, StoreError> {
        check_publish(publish, now_ms)?;
        let tx = self.write()?;
        tx.execute(
            "INSERT OR IGNORE INTO accounts (account) VALUES (?1)",
            [account],
        )?;
        let state = epoch_state(&tx, account)?;
        if !publish_condition(state.epoch, state.head_seq, publish) {
            return Ok(PublishOutcome::Conflict {
                current: current_epoch(&tx, account)?,
                head_seq: state.head_seq,
            });
        }
        let chunks = publish.chunk_hashes.len() as i64;
        let mut staged: HashMap<u32, ChunkHash> = HashMap::new();
        {
            let mut stmt = tx.prepare_cached(
                "SELECT idx, hash FROM snapshot_chunks
                 WHERE account = ?1 AND snapshot_id = ?2 AND idx < ?3",
            )?;
            let mut rows = stmt.query(params![account, publish.snapshot_id, chunks])?;
            while let Some(r) = rows.next()? {
                staged.insert(
                    u32_from_sql("idx", r.get(0)?)?,
                    key(r.get(1)?, "chunk hash")?,
                );
            }
        }
        let missing = missing_chunks(publish, &staged);
        if !missing.is_empty() {
            return Ok(PublishOutcome::Incomplete { missing });
        }
        let row = published_row(publish, now_ms);
        tx.execute(
            "UPDATE snapshot_chunks SET committed = 1
             WHERE account = ?1 AND snapshot_id = ?2 AND idx < ?3",
            params![account, publish.snapshot_id, chunks],
        )?;
        tx.execute(
            "INSERT INTO epochs (account, epoch, generation, base_seq, snapshot_id, manifest,
                                 chunks, published_by, published_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                account,
                u64_to_sql("epoch", row.epoch)?,
                i64::from(row.generation),
                u64_to_sql("base_seq", row.base_seq)?,
                row.snapshot_id,
                row.manifest,
                i64::from(row.chunks),
                row.published_by,
                u64_to_sql("published_at_ms", row.published_at_ms)?
            ],
        )?;
        tx.execute(
            "UPDATE accounts SET epoch = ?2, generation = ?3, epoch_base_seq = ?4, tail_bytes = 0
             WHERE account = ?1",
            params![
                account,
                u64_to_sql("epoch", row.epoch)?,
                i64::from(row.generation),
                u64_to_sql("base_seq", row.base_seq)?
            ],
        )?;
        tx.commit()?;
        Ok(PublishOutcome::Published(row))
    }

    fn snapshot_chunk(
        &mut self,
        account: &str,
        epoch: u64,
        index: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT c.bytes FROM epochs e JOIN snapshot_chunks c
                    ON c.account = e.account AND c.snapshot_id = e.snapshot_id
                 WHERE e.account = ?1 AND e.epoch = ?2 AND c.idx = ?3 AND c.committed = 1",
                params![account, bound(epoch), i64::from(index)],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn tail_stats(&mut self, account: &str) -> Result<TailStats, StoreError> {
        epoch_state(&self.conn, account)
    }

    fn set_cursor(
        &mut self,
        account: &str,
        device: DeviceKey,
        cursor: u64,
    ) -> Result<Option<u64>, StoreError> {
        let tx = self.write()?;
        let head = head_seq(&tx, account)?;
        let stored: Option<i64> = tx
            .query_row(
                "UPDATE devices SET cursor = max(cursor, ?3)
                 WHERE account = ?1 AND device = ?2 RETURNING cursor",
                params![account, device, bound(cursor.min(head))],
                |r| r.get(0),
            )
            .optional()?;
        tx.commit()?;
        stored.map(|c| u64_from_sql("cursor", c)).transpose()
    }

    fn put_payload(
        &mut self,
        account: &str,
        recipient: DeviceKey,
        payload: &PayloadRow,
        pending_max: usize,
    ) -> Result<PutPayload, StoreError> {
        let sent_ms = u64_to_sql("sent_ms", payload.sent_ms)?;
        let tx = self.write()?;
        let known: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM devices WHERE account = ?1 AND device = ?2)",
            params![account, recipient],
            |r| r.get(0),
        )?;
        if !known {
            return Ok(PutPayload::UnknownRecipient);
        }
        let exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM payloads
             WHERE account = ?1 AND recipient = ?2 AND id = ?3)",
            params![account, recipient, payload.id],
            |r| r.get(0),
        )?;
        if exists {
            return Ok(PutPayload::AlreadyStored);
        }
        let pending: i64 = tx.query_row(
            "SELECT count(*) FROM payloads WHERE account = ?1 AND recipient = ?2",
            params![account, recipient],
            |r| r.get(0),
        )?;
        if u64_from_sql("payload count", pending)? >= pending_max as u64 {
            return Ok(PutPayload::QueueFull);
        }
        tx.execute(
            "INSERT INTO payloads (account, recipient, id, sender, bytes, sent_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                account,
                recipient,
                payload.id,
                payload.sender,
                payload.bytes,
                sent_ms
            ],
        )?;
        tx.commit()?;
        Ok(PutPayload::Stored)
    }

    fn payloads(
        &mut self,
        account: &str,
        recipient: DeviceKey,
    ) -> Result<Vec<PayloadRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, sender, bytes, sent_ms FROM payloads
             WHERE account = ?1 AND recipient = ?2 ORDER BY rowid",
        )?;
        let mut rows = stmt.query(params![account, recipient])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(PayloadRow {
                id: key(r.get(0)?, "payload id")?,
                sender: key(r.get(1)?, "sender")?,
                bytes: r.get(2)?,
                sent_ms: u64_from_sql("sent_ms", r.get(3)?)?,
            });
        }
        Ok(out)
    }

    fn ack_payload(
        &mut self,
        account: &str,
        recipient: DeviceKey,
        id: PayloadKey,
    ) -> Result<bool, StoreError> {
        let removed = self.conn.execute(
            "DELETE FROM payloads WHERE account = ?1 AND recipient = ?2 AND id = ?3",
            params![account, recipient, id],
        )?;
        Ok(removed > 0)
    }
}
