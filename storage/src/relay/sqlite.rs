//! The SQLite relay store: one file, WAL, foreign keys on, one transaction
//! per logical operation.
//!
//! Calls block on disk IO. The relay runs this store on a thread of its own
//! behind a bounded channel and never calls it from its async reactor.

use std::path::Path;

use rusqlite::{
    params, Connection, OptionalExtension, Savepoint, Transaction, TransactionBehavior,
};

use super::{
    Appended, ContentKey, DeviceKey, DeviceRow, LogRow, Login, LoginOutcome, Page, PayloadKey,
    PayloadRow, PutPayload, RelayStore,
};
use crate::migrate::{self, Migration};
use crate::values::{bound, bound_usize, key, u64_from_sql, u64_to_sql};
use crate::{OpenError, StoreError};

/// The relay schema's migrations, numbered from 1, applied in order at open.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    sql: include_str!("migrations/sqlite/0001_init.sql"),
}];

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

fn device_row(
    conn: &Connection,
    account: &str,
    device: DeviceKey,
) -> Result<DeviceRow, StoreError> {
    let (name, platform, first, last, cursor): (String, String, i64, i64, i64) = conn.query_row(
        "SELECT name, platform, first_login_ms, last_seen_ms, cursor
         FROM devices WHERE account = ?1 AND device = ?2",
        params![account, device],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    Ok(DeviceRow {
        device,
        name,
        platform,
        first_login_ms: u64_from_sql("first_login_ms", first)?,
        last_seen_ms: u64_from_sql("last_seen_ms", last)?,
        cursor: u64_from_sql("cursor", cursor)?,
    })
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
        let tx = self.write()?;
        let revoked: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM revoked
             WHERE account = ?1 AND device = ?2 AND token_hash = ?3)",
            params![login.account, login.device, login.token_hash],
            |r| r.get(0),
        )?;
        if revoked {
            return Ok(LoginOutcome::Revoked);
        }
        tx.execute(
            "INSERT OR IGNORE INTO accounts (account) VALUES (?1)",
            [login.account],
        )?;
        let head = head_seq(&tx, login.account)?;
        let known: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM devices WHERE account = ?1 AND device = ?2)",
            params![login.account, login.device],
            |r| r.get(0),
        )?;
        if !known {
            let count: i64 = tx.query_row(
                "SELECT count(*) FROM devices WHERE account = ?1",
                [login.account],
                |r| r.get(0),
            )?;
            if u64_from_sql("device count", count)? >= login.devices_max as u64 {
                return Ok(LoginOutcome::TooManyDevices);
            }
        }
        let resume = u64_to_sql("cursor", login.resume_cursor.min(head))?;
        tx.execute(
            "INSERT INTO devices
                (account, device, name, platform, first_login_ms, last_seen_ms, token_hash, cursor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)
             ON CONFLICT (account, device) DO UPDATE SET
                name = excluded.name,
                platform = excluded.platform,
                last_seen_ms = excluded.last_seen_ms,
                token_hash = excluded.token_hash,
                cursor = max(cursor, excluded.cursor)",
            params![
                login.account,
                login.device,
                login.name,
                login.platform,
                now,
                login.token_hash,
                resume
            ],
        )?;
        let device = device_row(&tx, login.account, login.device)?;
        tx.commit()?;
        Ok(LoginOutcome::Accepted {
            device,
            first_login: !known,
        })
    }

    fn devices(&mut self, account: &str) -> Result<Vec<DeviceRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT device, name, platform, first_login_ms, last_seen_ms, cursor
             FROM devices WHERE account = ?1 ORDER BY device",
        )?;
        let mut rows = stmt.query([account])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(DeviceRow {
                device: key(r.get(0)?, "device id")?,
                name: r.get(1)?,
                platform: r.get(2)?,
                first_login_ms: u64_from_sql("first_login_ms", r.get(3)?)?,
                last_seen_ms: u64_from_sql("last_seen_ms", r.get(4)?)?,
                cursor: u64_from_sql("cursor", r.get(5)?)?,
            });
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

    fn revoke(&mut self, account: &str, device: DeviceKey) -> Result<bool, StoreError> {
        let changed = self.conn.execute(
            "INSERT OR IGNORE INTO revoked (account, device, token_hash)
             SELECT account, device, token_hash FROM devices
             WHERE account = ?1 AND device = ?2",
            params![account, device],
        )?;
        if changed > 0 {
            return Ok(true);
        }
        // Nothing inserted: either no such device, or already revoked.
        let known: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM devices WHERE account = ?1 AND device = ?2)",
            params![account, device],
            |r| r.get(0),
        )?;
        Ok(known)
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
        tx.execute(
            "UPDATE accounts SET head_seq = ?2 WHERE account = ?1",
            params![account, u64_to_sql("seq", head)?],
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
        let mut page = Page::default();
        {
            let mut stmt = tx.prepare_cached(
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
        }
        tx.commit()?;
        let last = page.rows.last().map_or(after_seq, |r| r.seq);
        page.more = last < head;
        Ok(page)
    }

    fn head_seq(&mut self, account: &str) -> Result<u64, StoreError> {
        head_seq(&self.conn, account)
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
