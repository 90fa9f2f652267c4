//! The PostgreSQL relay store: the same [`RelayStore`] as SQLite, on a
//! database that several relay nodes can share.
//!
//! Calls block on the network. Like the SQLite store, the relay runs it on a
//! thread of its own and never calls it from its async reactor. The
//! synchronous `postgres` client fits that thread and the trait (both
//! synchronous, with group commit) without a runtime of the relay's own.
//!
//! # What guarantees what
//!
//! - **Isolation: READ COMMITTED plus explicit row locks.** Each statement
//!   reads a fresh snapshot, so a statement that follows a lock sees every
//!   transaction committed before the lock was granted. Conflicts become
//!   waits, not aborts: SERIALIZABLE would abort whole transactions, and a
//!   transaction here is a whole group of many devices' requests.
//! - **One total order per account.** An append first locks the account's
//!   row (`SELECT ... FOR NO KEY UPDATE`, in a statement of its own), then
//!   reads which content ids the log holds, inserts the new deltas at
//!   `head_seq + 1..` and writes the new head. The lock is held to the end
//!   of the transaction (the group), so no other append to that account, on
//!   any connection, can interleave: seqs are dense and each content id is
//!   stored once (`UNIQUE (account, content_id)` backs that up).
//! - **The device limit and single-use tokens** hold across connections: a
//!   login locks the account's row too, so counting the devices, checking
//!   the token and enrolling cannot interleave with another login (two
//!   nodes presenting one token: one enrolls, the other is refused). A
//!   revoke, a ban and a removal take the same lock, so each orders wholly
//!   before or wholly after a login.
//! - **The payload limit** holds across connections: putting a payload
//!   locks the recipient's device row first.
//! - `NO KEY UPDATE` rather than `UPDATE`: the rows are locked only against
//!   each other's writers, not against the foreign-key checks of inserts
//!   that reference them (those take `KEY SHARE`).
//! - **Group commit:** `begin_group` opens one transaction; each operation
//!   in it runs after a savepoint, and a failed operation rolls back to it,
//!   so the group keeps every other operation. Two groups on two nodes
//!   that lock two accounts in opposite orders would deadlock: PostgreSQL
//!   finds it only after `deadlock_timeout` (1 s), with both nodes' core
//!   threads stalled meanwhile, and fails one operation. So the relay
//!   first calls `lock_accounts` with every account the group will lock,
//!   which locks them in one statement in sorted order, the same on every
//!   node: groups then wait for each other in one direction only. New
//!   accounts of the group's authorized logins are created before it, by
//!   `create_accounts` (one sorted statement, committed at once), so no
//!   group holds a new account's row uncommitted. What is left (a login
//!   whose token the relay could not check beforehand, rows other than
//!   accounts') is still found and broken by PostgreSQL.
//! - **Retries:** an operation that fails on a serialization failure, a
//!   unique conflict or (outside a group) a deadlock runs again, up to
//!   [`OPERATION_ATTEMPTS_MAX`] times. Inside a group a deadlock is not
//!   retried: the group still holds the locks the other side waits for.
//! - **Lost connections** are errors, never panics. The connection is
//!   dropped and the next operation (or group) connects again, so the store
//!   survives a database restart. A group whose connection was lost is lost
//!   whole ([`StoreError::GroupLost`]); the relay acknowledged nothing of
//!   it, and devices push again. A connection lost during `COMMIT` leaves
//!   its outcome unknown; every write is idempotent (content ids, upserts,
//!   maximum cursors), so the retry is safe either way.
//! - **Telling other nodes:** an operation that changes what another node's
//!   devices must hear (new deltas, a login or a revocation, a stored
//!   payload, a ban or a removal) notes its account; the notes of a group go
//!   out as one `NOTIFY` on [`CHANGE_CHANNEL`] (more only past
//!   [`NOTIFY_PAYLOAD_BYTES_MAX`]) inside the group's transaction, so
//!   PostgreSQL delivers them exactly when the group commits, and never for
//!   a group that failed. Other nodes listen through a
//!   [`PostgresChangeFeed`] and read the store to learn what is new; the
//!   notification is only a hint, so a node that lost its listening
//!   connection re-reads everything when it connects again.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use postgres::error::{Severity, SqlState};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, Config, NoTls, Row, Statement};

use super::{
    check_envelopes, check_publish, chunk_hash, expiry_after, missing_chunks, plan_append,
    plan_login, publish_condition, published_row, retained_floor, AccountStatus, AppendFacts,
    AppendOutcome, AppendPlan, Appended, ChangeFeed, ChangeKinds, Changes, ChunkHash, ContentKey,
    DeviceKey, DeviceRow, EnvelopeIn, EpochRow, LogRead, LogRow, Login, LoginFacts, LoginOutcome,
    LoginPlan, Page, PayloadKey, PayloadRow, Publish, PublishOutcome, PutPayload, RelayStore,
    Retained, Retention, Revocation, RevokeOutcome, SessionRow, StagedChunk, StoredDevice,
    TailStats, TokenUse,
};
use crate::values::{bound, bound_usize, key, u64_from_sql, u64_to_sql};
use crate::{OpenError, StoreError};

/// The schema's migrations, numbered from 1, applied in order at open in one
/// transaction. Version 1 creates the `schema_version` table itself.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("migrations/postgres/0001_init.sql")),
    (2, include_str!("migrations/postgres/0002_enrollments.sql")),
    (3, include_str!("migrations/postgres/0003_nodes.sql")),
    (4, include_str!("migrations/postgres/0004_epochs.sql")),
];

/// The channel on which relay nodes tell each other what they changed.
pub const CHANGE_CHANNEL: &str = "tandem_relay_changes";

/// What the change feed's connection adds to the store's application name
/// (`tandem-relay` unless the URL names one).
pub const FEED_APPLICATION_NAME_SUFFIX: &str = "-feed";

/// The longest notification payload: PostgreSQL refuses one of 8000 bytes
/// or more. A group's notes that do not fit go out as several.
pub const NOTIFY_PAYLOAD_BYTES_MAX: usize = 7_999;

/// How long the change feed's connection may stay silent before the feed
/// checks it with a query: a connection that died without a word (a
/// network partition) must not look like a quiet one for long.
pub(crate) const FEED_PING_INTERVAL_MS: u64 = 5_000;

/// How long data the change feed sent may stay unacknowledged by the
/// database's host before the connection counts as dead (TCP_USER_TIMEOUT,
/// Linux), unless the URL sets it.
pub(crate) const FEED_TCP_USER_TIMEOUT_MS: u64 = 10_000;

/// Notifications one [`ChangeFeed::wait`] takes at most, so that one report
/// stays bounded under a flood.
pub(crate) const FEED_NOTIFICATIONS_PER_WAIT_MAX: usize = 1_024;

/// How long connecting may take when the URL sets no `connect_timeout`: a
/// relay must learn that the database is unreachable, not hang.
pub(crate) const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 5_000;

/// How many times one operation runs when it fails on a conflict with a
/// concurrent transaction (see the module docs).
pub(crate) const OPERATION_ATTEMPTS_MAX: u32 = 3;

/// The advisory lock that makes concurrent opens (several nodes starting at
/// once) migrate one after another: "tandem\0\x01" as an integer.
const MIGRATION_LOCK_KEY: i64 = 0x7461_6e64_656d_0001;

/// Renews node `$1`'s lease to `$2` (never shortens it).
const RENEW_LEASE: &str = "INSERT INTO relay_nodes (node, lease_until_ms) VALUES ($1, $2) \
     ON CONFLICT (node) DO UPDATE \
     SET lease_until_ms = GREATEST(relay_nodes.lease_until_ms, excluded.lease_until_ms)";

/// A [`RelayStore`] in a PostgreSQL database. Several stores (relay nodes)
/// may share one database; see the module docs for what that guarantees.
pub struct PostgresRelayStore {
    config: Config,
    /// `None` after a lost connection, until the next operation connects.
    conn: Option<Conn>,
    group: Group,
    /// This instance's node id, drawn from the database at open: its
    /// notifications carry it.
    node: i64,
}

impl std::fmt::Debug for PostgresRelayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password; show none of it.
        f.debug_struct("PostgresRelayStore")
            .field("connected", &self.conn.is_some())
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// Where the store is with respect to `begin_group` / `commit_group`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    /// No group: each operation is a transaction of its own.
    Outside,
    /// Inside the group's transaction, with a savepoint `op` after the last
    /// operation that wrote.
    Open,
    /// The group's connection was lost: every operation fails until
    /// `commit_group`.
    Lost,
}

/// How an operation uses the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Reads only, and needs no transaction to be consistent.
    Read,
    /// Writes with one statement, atomic by itself.
    WriteOne,
    /// Several statements that must happen together.
    WriteMany,
}

impl PostgresRelayStore {
    /// Connects to the database at `url` (`postgresql://user:password@host:port/db`,
    /// or libpq's `key=value` form) and migrates it to the current schema in
    /// one transaction. A database from a newer build is refused with
    /// [`OpenError::SchemaTooNew`]. TLS is not supported yet: use a
    /// connection the network already protects (loopback, a private link).
    pub fn open(url: &str) -> Result<Self, OpenError> {
        let mut config = Config::from_str(url).map_err(OpenError::Postgres)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS_DEFAULT));
        }
        if config.get_application_name().is_none() {
            config.application_name("tandem-relay");
        }
        let mut conn = Conn::open(&config, 0).map_err(OpenError::Postgres)?;
        migrate(&mut conn.client)?;
        let node: i64 = conn
            .client
            .query_one("SELECT nextval('relay_node_ids')", &[])
            .and_then(|r| r.try_get(0))
            .map_err(OpenError::Postgres)?;
        conn.node = node;
        Ok(PostgresRelayStore {
            config,
            conn: Some(conn),
            group: Group::Outside,
            node,
        })
    }

    /// This store instance's node id (unique among every instance ever
    /// opened on the database).
    pub fn node_id(&self) -> i64 {
        self.node
    }

    /// The open connection, connecting first if the last one was lost.
    fn connect(&mut self) -> Result<&mut Conn, StoreError> {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.conn = None;
        }
        match &mut self.conn {
            Some(conn) => Ok(conn),
            slot @ None => Ok(slot.insert(Conn::open(&self.config, self.node)?)),
        }
    }

    /// Runs one operation: in the group's transaction after its savepoint,
    /// or in a transaction of its own (`WriteMany`) or autocommit. Retries
    /// conflicts; drops a broken connection.
    fn run<T>(
        &mut self,
        shape: Shape,
        mut body: impl FnMut(&mut Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self.group {
            Group::Lost => Err(StoreError::GroupLost),
            Group::Open => self.run_in_group(shape, &mut body),
            Group::Outside => self.run_alone(shape, &mut body),
        }
    }

    fn run_in_group<T>(
        &mut self,
        shape: Shape,
        body: &mut impl FnMut(&mut Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut attempt = 1;
        loop {
            let Some(conn) = self.conn.as_mut() else {
                self.group = Group::Lost;
                return Err(StoreError::GroupLost);
            };
            let error = match body(conn) {
                Ok(value) => {
                    conn.keep_notes();
                    // Move the savepoint past this operation, so a later
                    // failure rolls back to here and keeps it. A read
                    // changed nothing: the older savepoint still fits.
                    if shape != Shape::Read {
                        if let Err(error) = conn
                            .client
                            .batch_execute("RELEASE SAVEPOINT op; SAVEPOINT op")
                        {
                            self.lose_group();
                            return Err(error.into());
                        }
                    }
                    return Ok(value);
                }
                Err(error) => error,
            };
            conn.op_notes.clear();
            if breaks_connection(&error, &conn.client) {
                self.lose_group();
                return Err(error);
            }
            // Undo this operation's statements; the group's earlier
            // operations stay, and the transaction is usable again.
            if let Err(rollback) = conn.client.batch_execute("ROLLBACK TO SAVEPOINT op") {
                self.lose_group();
                return Err(rollback.into());
            }
            if attempt < OPERATION_ATTEMPTS_MAX && retryable(&error, true) {
                attempt += 1;
                continue;
            }
            return Err(error);
        }
    }

    fn run_alone<T>(
        &mut self,
        shape: Shape,
        body: &mut impl FnMut(&mut Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut attempt = 1;
        loop {
            let conn = self.connect()?;
            let (result, broken) = if shape == Shape::WriteMany {
                in_transaction(conn, body)
            } else {
                let result = body(conn);
                debug_assert!(conn.op_notes.is_empty(), "notes outside a transaction");
                conn.op_notes.clear();
                let broken = result
                    .as_ref()
                    .err()
                    .is_some_and(|e| breaks_connection(e, &conn.client));
                (result, broken)
            };
            let error = match result {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if broken {
                // Reconnect on the next operation, not now: the error
                // reaches the caller, who decides whether to retry.
                self.conn = None;
                return Err(error);
            }
            if attempt < OPERATION_ATTEMPTS_MAX && retryable(&error, false) {
                attempt += 1;
                continue;
            }
            return Err(error);
        }
    }

    /// The group's transaction is gone with its connection. Dropping the
    /// client closes the connection, and PostgreSQL rolls back whatever was
    /// left open.
    fn lose_group(&mut self) {
        self.conn = None;
        self.group = Group::Lost;
    }
}

/// Runs `body` between `BEGIN` and `COMMIT`, rolling back on its error.
/// Returns the result and whether the connection must be dropped.
fn in_transaction<T>(
    conn: &mut Conn,
    body: &mut impl FnMut(&mut Conn) -> Result<T, StoreError>,
) -> (Result<T, StoreError>, bool) {
    if let Err(error) = conn.client.batch_execute("BEGIN") {
        // Whatever state the session is in, it is not one to build on.
        return (Err(error.into()), true);
    }
    match body(conn) {
        Ok(value) => {
            // The operation's notes go out with its commit.
            conn.keep_notes();
            if let Err(error) = conn.notify_notes() {
                let _ = conn.client.batch_execute("ROLLBACK");
                return (Err(error), true);
            }
            match conn.client.batch_execute("COMMIT") {
                Ok(()) => (Ok(value), false),
                Err(error) => (Err(error.into()), true),
            }
        }
        Err(error) => {
            conn.op_notes.clear();
            let broken = breaks_connection(&error, &conn.client)
                || conn.client.batch_execute("ROLLBACK").is_err();
            (Err(error), broken)
        }
    }
}

/// Whether `error` leaves the connection unusable: closed, a failure below
/// SQL (IO, protocol), or a FATAL error (the server ends the session, as
/// on a restart or `pg_terminate_backend`).
fn breaks_connection(error: &StoreError, client: &Client) -> bool {
    if client.is_closed() {
        return true;
    }
    match error {
        StoreError::Postgres(error) => match error.as_db_error() {
            None => true,
            Some(db) => matches!(
                db.parsed_severity(),
                Some(Severity::Fatal | Severity::Panic)
            ),
        },
        _ => false,
    }
}

/// Whether running the operation again can succeed: it lost a race with a
/// concurrent transaction.
fn retryable(error: &StoreError, in_group: bool) -> bool {
    let StoreError::Postgres(error) = error else {
        return false;
    };
    let Some(code) = error.code() else {
        return false;
    };
    if *code == SqlState::T_R_DEADLOCK_DETECTED {
        return !in_group;
    }
    *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::UNIQUE_VIOLATION
}

/// Brings the database up to the last migration, in one transaction, under
/// an advisory lock so that nodes starting together migrate once.
fn migrate(client: &mut Client) -> Result<(), OpenError> {
    debug_assert!(MIGRATIONS
        .iter()
        .enumerate()
        .all(|(i, (version, _))| *version as usize == i + 1));
    let known = MIGRATIONS.len() as u32;
    let mut tx = client.transaction().map_err(OpenError::Postgres)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .map_err(OpenError::Postgres)?;
    let has_table: bool = tx
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .and_then(|r| r.try_get(0))
        .map_err(OpenError::Postgres)?;
    let found: u32 = if has_table {
        let version: i32 = tx
            .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
            .and_then(|r| r.try_get(0))
            .map_err(OpenError::Postgres)?;
        // The column's CHECK keeps it positive; a negative one cannot be
        // read back, so treat it as nothing applied, which fails loudly on
        // the first migration's CREATE TABLE.
        u32::try_from(version).unwrap_or(0)
    } else {
        0
    };
    if found > known {
        return Err(OpenError::SchemaTooNew { found, known });
    }
    for &(version, sql) in &MIGRATIONS[found as usize..] {
        let step = i32::try_from(version).unwrap_or(i32::MAX);
        tx.batch_execute(sql)
            .and_then(|()| tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&step]))
            .map_err(|source| OpenError::PostgresMigration { version, source })?;
    }
    tx.commit().map_err(OpenError::Postgres)
}

/// A connection and the statements prepared on it.
struct Conn {
    client: Client,
    /// Prepared once per connection: preparing costs a round trip.
    statements: HashMap<&'static str, Statement>,
    /// The store's node id, which its notifications carry.
    node: i64,
    /// What the running operation changed, for other nodes; kept
    /// ([`Conn::keep_notes`]) when it succeeds, dropped when it fails.
    op_notes: Vec<(String, ChangeKinds)>,
    /// The kept notes of the open transaction, sent before its commit.
    notes: BTreeMap<String, ChangeKinds>,
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl Conn {
    /// Connects and sets the session up. Generic plans: every statement
    /// here is a key look-up whose best plan does not depend on its
    /// parameters, and PostgreSQL would otherwise re-plan the ones with an
    /// array parameter on every execution (a custom plan looks cheaper):
    /// half of an append's time in a first measurement.
    fn open(config: &Config, node: i64) -> Result<Conn, postgres::Error> {
        let mut client = config.connect(NoTls)?;
        client.batch_execute("SET plan_cache_mode = force_generic_plan")?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
            node,
            op_notes: Vec::new(),
            notes: BTreeMap::new(),
        })
    }

    /// Notes that the running operation changed `kinds` of `account`.
    fn note(&mut self, account: &str, kinds: ChangeKinds) {
        self.op_notes.push((account.to_owned(), kinds));
    }

    /// The running operation succeeded: its notes join the transaction's.
    fn keep_notes(&mut self) {
        for (account, kinds) in self.op_notes.drain(..) {
            let entry = self.notes.entry(account).or_default();
            *entry = entry.union(kinds);
        }
    }

    /// Sends the transaction's notes as notifications, which PostgreSQL
    /// delivers when (and only if) the transaction commits.
    fn notify_notes(&mut self) -> Result<(), StoreError> {
        if self.notes.is_empty() {
            return Ok(());
        }
        let notes = std::mem::take(&mut self.notes);
        for payload in encode_changes(self.node, wall_clock_ms(), &notes) {
            self.execute("SELECT pg_notify($1, $2)", &[&CHANGE_CHANNEL, &payload])?;
        }
        Ok(())
    }

    fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    fn query(&mut self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
        let statement = self.statement(sql)?;
        Ok(self.client.query(&statement, params)?)
    }

    fn query_one(&mut self, sql: &'static str, params: Params<'_>) -> Result<Row, StoreError> {
        let statement = self.statement(sql)?;
        Ok(self.client.query_one(&statement, params)?)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Option<Row>, StoreError> {
        let statement = self.statement(sql)?;
        Ok(self.client.query_opt(&statement, params)?)
    }

    fn execute(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64, StoreError> {
        let statement = self.statement(sql)?;
        Ok(self.client.execute(&statement, params)?)
    }

    /// Locks the account's row against other writers until the end of the
    /// transaction and returns its head; `None` for an unknown account.
    fn lock_account(&mut self, account: &str) -> Result<Option<u64>, StoreError> {
        let row = self.query_opt(
            "SELECT head_seq FROM accounts WHERE account = $1 FOR NO KEY UPDATE",
            &[&account],
        )?;
        row.map(|r| u64_from_sql("head_seq", r.try_get(0)?))
            .transpose()
    }

    /// [`Conn::lock_account`], creating the account first if needed.
    fn lock_or_create_account(&mut self, account: &str) -> Result<u64, StoreError> {
        if let Some(head) = self.lock_account(account)? {
            return Ok(head);
        }
        // A concurrent creator makes this wait for its commit, then do
        // nothing; either way the row exists for the lock that follows.
        self.execute(
            "INSERT INTO accounts (account) VALUES ($1) ON CONFLICT (account) DO NOTHING",
            &[&account],
        )?;
        self.lock_account(account)?
            .ok_or_else(|| StoreError::Corrupt(format!("account {account:?} vanished")))
    }

    fn head_seq(&mut self, account: &str) -> Result<u64, StoreError> {
        let row = self.query_opt(
            "SELECT head_seq FROM accounts WHERE account = $1",
            &[&account],
        )?;
        match row {
            Some(r) => u64_from_sql("head_seq", r.try_get(0)?),
            None => Ok(0),
        }
    }

    /// The account's head, epoch, base, tail bytes and floor, in one
    /// statement (one snapshot); zeros for an unknown account.
    fn epoch_state(&mut self, account: &str) -> Result<TailStats, StoreError> {
        let row = self.query_opt(
            "SELECT head_seq, epoch, epoch_base_seq, tail_bytes, log_floor_seq
             FROM accounts WHERE account = $1",
            &[&account],
        )?;
        let Some(r) = row else {
            return Ok(TailStats::default());
        };
        let head_seq = u64_from_sql("head_seq", r.try_get(0)?)?;
        let base_seq = u64_from_sql("epoch_base_seq", r.try_get(2)?)?;
        Ok(TailStats {
            head_seq,
            epoch: u64_from_sql("epoch", r.try_get(1)?)?,
            base_seq,
            entries: head_seq.checked_sub(base_seq).ok_or_else(|| {
                StoreError::Corrupt(format!("epoch base {base_seq} above the head {head_seq}"))
            })?,
            bytes: u64_from_sql("tail_bytes", r.try_get(3)?)?,
            floor_seq: u64_from_sql("log_floor_seq", r.try_get(4)?)?,
        })
    }

    /// The account's current epoch row, if one was published.
    fn current_epoch(&mut self, account: &str) -> Result<Option<EpochRow>, StoreError> {
        let row = self.query_opt(
            "SELECT e.epoch, e.generation, e.base_seq, e.snapshot_id, e.manifest, e.chunks,
                    e.published_by, e.published_at_ms
             FROM epochs e JOIN accounts a ON a.account = e.account AND a.epoch = e.epoch
             WHERE e.account = $1",
            &[&account],
        )?;
        row.map(|r| epoch_from_row(&r)).transpose()
    }
}

/// `now - keep`, as the bound a stored time is compared with: a time after
/// it is younger than `keep`. At least -1, so that every stored time (never
/// negative) is after it when `keep` reaches back before 1970.
fn threshold(now: i64, keep_ms: u64) -> i64 {
    let t = i128::from(now) - i128::from(keep_ms);
    i64::try_from(t.max(-1)).unwrap_or(-1)
}

fn u32_from_sql(what: &str, value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} is {value}")))
}

fn epoch_from_row(r: &Row) -> Result<EpochRow, StoreError> {
    Ok(EpochRow {
        epoch: u64_from_sql("epoch", r.try_get(0)?)?,
        generation: u32_from_sql("generation", r.try_get(1)?)?,
        base_seq: u64_from_sql("base_seq", r.try_get(2)?)?,
        snapshot_id: key(r.try_get(3)?, "snapshot_id")?,
        manifest: r.try_get(4)?,
        chunks: u32_from_sql("chunks", r.try_get(5)?)?,
        published_by: key(r.try_get(6)?, "published_by")?,
        published_at_ms: u64_from_sql("published_at_ms", r.try_get(7)?)?,
    })
}

const DELTAS: ChangeKinds = ChangeKinds {
    deltas: true,
    devices: false,
    payloads: false,
    status: false,
};
const DEVICES: ChangeKinds = ChangeKinds {
    deltas: false,
    devices: true,
    payloads: false,
    status: false,
};
const PAYLOADS: ChangeKinds = ChangeKinds {
    deltas: false,
    devices: false,
    payloads: true,
    status: false,
};
const STATUS: ChangeKinds = ChangeKinds {
    deltas: false,
    devices: false,
    payloads: false,
    status: true,
};

/// A device's row with its enrollment: the columns [`device_from_row`]
/// reads, in its order.
const DEVICE_SELECT_ONE: &str = "SELECT d.device, d.name, d.platform, d.first_login_ms, \
     d.last_seen_ms, d.cursor, e.public_key, e.token_id, e.enrolled_at_ms, e.expires_at_ms, \
     e.revoked_kind, e.revoked_by, e.revoked_by_name, e.revoked_by_platform, e.revoked_at_ms \
     FROM devices d LEFT JOIN enrollments e ON e.account = d.account AND e.device = d.device \
     WHERE d.account = $1 AND d.device = $2";

/// [`DEVICE_SELECT_ONE`] for every device of an account.
const DEVICE_SELECT_ALL: &str = "SELECT d.device, d.name, d.platform, d.first_login_ms, \
     d.last_seen_ms, d.cursor, e.public_key, e.token_id, e.enrolled_at_ms, e.expires_at_ms, \
     e.revoked_kind, e.revoked_by, e.revoked_by_name, e.revoked_by_platform, e.revoked_at_ms \
     FROM devices d LEFT JOIN enrollments e ON e.account = d.account AND e.device = d.device \
     WHERE d.account = $1 ORDER BY d.device";

fn device_from_row(r: &Row) -> Result<DeviceRow, StoreError> {
    StoredDevice {
        device: r.try_get(0)?,
        name: r.try_get(1)?,
        platform: r.try_get(2)?,
        first_login_ms: r.try_get(3)?,
        last_seen_ms: r.try_get(4)?,
        cursor: r.try_get(5)?,
        public_key: r.try_get(6)?,
        token_id: r.try_get(7)?,
        enrolled_at_ms: r.try_get(8)?,
        expires_at_ms: r.try_get(9)?,
        revoked_kind: r.try_get(10)?,
        revoked_by: r.try_get(11)?,
        revoked_by_name: r.try_get(12)?,
        revoked_by_platform: r.try_get(13)?,
        revoked_at_ms: r.try_get(14)?,
    }
    .decode()
}

impl Conn {
    fn device_row(
        &mut self,
        account: &str,
        device: DeviceKey,
    ) -> Result<Option<DeviceRow>, StoreError> {
        let device: &[u8] = &device;
        self.query_opt(DEVICE_SELECT_ONE, &[&account, &device])?
            .map(|r| device_from_row(&r))
            .transpose()
    }

    fn account_status(&mut self, account: &str) -> Result<AccountStatus, StoreError> {
        let row = self.query_opt(
            "SELECT status FROM accounts WHERE account = $1",
            &[&account],
        )?;
        match row {
            None => Ok(AccountStatus::Active),
            Some(r) => AccountStatus::parse(&r.try_get::<_, String>(0)?),
        }
    }
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

impl RelayStore for PostgresRelayStore {
    fn change_feed(&mut self) -> Option<Box<dyn ChangeFeed>> {
        // Named apart from the store's connections, so an operator (or a
        // test) can tell the listening connection in `pg_stat_activity`.
        let mut config = self.config.clone();
        let name = format!(
            "{}{FEED_APPLICATION_NAME_SUFFIX}",
            config.get_application_name().unwrap_or("tandem-relay")
        );
        config.application_name(&name);
        // A connection that died without a word (a partition) fails the
        // feed's check query within this, instead of blocking it for as
        // long as the kernel would retransmit.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_millis(FEED_TCP_USER_TIMEOUT_MS));
        }
        Some(Box::new(PostgresChangeFeed {
            config,
            node: self.node,
            client: None,
            checked_at: Instant::now(),
            lags_ms: Vec::new(),
        }))
    }

    fn open_session(
        &mut self,
        account: &str,
        session: &SessionRow,
        lease_until_ms: u64,
    ) -> Result<(), StoreError> {
        let lease = u64_to_sql("lease_until_ms", lease_until_ms)?;
        let conn = u64_to_sql("conn", session.conn)?;
        let active = u64_to_sql("last_active_ms", session.last_active_ms)?;
        let enrolled = u64_to_sql("enrolled_at_ms", session.enrolled_at_ms)?;
        let device: &[u8] = &session.device;
        let node = self.node;
        self.run(Shape::WriteMany, |c| {
            c.execute(RENEW_LEASE, &[&node, &lease])?;
            c.execute(
                "INSERT INTO sessions
                    (account, device, node, conn, platform, last_active_ms, enrolled_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (account, device) DO UPDATE SET
                    node = excluded.node, conn = excluded.conn, platform = excluded.platform,
                    last_active_ms = excluded.last_active_ms,
                    enrolled_at_ms = excluded.enrolled_at_ms",
                &[
                    &account,
                    &device,
                    &node,
                    &conn,
                    &session.platform,
                    &active,
                    &enrolled,
                ],
            )?;
            Ok(())
        })
    }

    fn close_session(
        &mut self,
        account: &str,
        device: DeviceKey,
        conn: u64,
    ) -> Result<(), StoreError> {
        let conn = bound(conn);
        let device: &[u8] = &device;
        let node = self.node;
        self.run(Shape::WriteOne, |c| {
            c.execute(
                "DELETE FROM sessions
                 WHERE account = $1 AND device = $2 AND node = $3 AND conn = $4",
                &[&account, &device, &node, &conn],
            )?;
            Ok(())
        })
    }

    fn end_session(&mut self, account: &str, device: DeviceKey) -> Result<(), StoreError> {
        let device: &[u8] = &device;
        self.run(Shape::WriteOne, |c| {
            c.execute(
                "DELETE FROM sessions WHERE account = $1 AND device = $2",
                &[&account, &device],
            )?;
            Ok(())
        })
    }

    fn sessions_elsewhere(
        &mut self,
        account: &str,
        now_ms: u64,
    ) -> Result<Vec<SessionRow>, StoreError> {
        let now = bound(now_ms);
        let node = self.node;
        self.run(Shape::Read, |c| {
            let rows = c.query(
                "SELECT s.device, s.conn, s.platform, s.last_active_ms, s.enrolled_at_ms
                 FROM sessions s
                 JOIN relay_nodes n ON n.node = s.node
                 JOIN enrollments e ON e.account = s.account AND e.device = s.device
                 WHERE s.account = $1 AND s.node <> $2 AND n.lease_until_ms > $3
                   AND e.revoked_kind IS NULL
                 ORDER BY s.device",
                &[&account, &node, &now],
            )?;
            rows.iter()
                .map(|r| {
                    Ok(SessionRow {
                        device: key(r.try_get(0)?, "session device")?,
                        conn: u64_from_sql("conn", r.try_get(1)?)?,
                        platform: r.try_get(2)?,
                        last_active_ms: u64_from_sql("last_active_ms", r.try_get(3)?)?,
                        enrolled_at_ms: u64_from_sql("enrolled_at_ms", r.try_get(4)?)?,
                    })
                })
                .collect()
        })
    }

    fn renew_node_lease(&mut self, lease_until_ms: u64) -> Result<(), StoreError> {
        let lease = u64_to_sql("lease_until_ms", lease_until_ms)?;
        let node = self.node;
        self.run(Shape::WriteOne, |c| {
            c.execute(RENEW_LEASE, &[&node, &lease])?;
            Ok(())
        })
    }

    fn begin_group(&mut self) -> Result<(), StoreError> {
        debug_assert_eq!(self.group, Group::Outside, "groups do not nest");
        let conn = self.connect()?;
        conn.notes.clear();
        if let Err(error) = conn.client.batch_execute("BEGIN; SAVEPOINT op") {
            self.conn = None;
            return Err(error.into());
        }
        self.group = Group::Open;
        Ok(())
    }

    fn lock_accounts(&mut self, accounts: &[&str]) -> Result<(), StoreError> {
        if self.group != Group::Open || accounts.is_empty() {
            return Ok(());
        }
        // Locked in the sort order of the column's collation (the lock
        // node sits above the sort), the same on every node of the
        // database. A write, not a read: the savepoint must move past it
        // so a later operation's rollback keeps the locks.
        self.run(Shape::WriteOne, |c| {
            c.query(
                "SELECT 1 FROM accounts WHERE account = ANY($1) \
                 ORDER BY account FOR NO KEY UPDATE",
                &[&accounts],
            )?;
            Ok(())
        })
    }

    fn create_accounts(&mut self, accounts: &[&str]) -> Result<(), StoreError> {
        if self.group != Group::Outside || accounts.is_empty() {
            return Ok(());
        }
        // One statement, in sorted order, committed at once: it waits at
        // most for another node's same statement, never inside a group.
        self.run(Shape::WriteOne, |c| {
            c.execute(
                "INSERT INTO accounts (account) \
                 SELECT a FROM unnest($1::text[]) AS a ORDER BY a \
                 ON CONFLICT (account) DO NOTHING",
                &[&accounts],
            )?;
            Ok(())
        })
    }

    fn commit_group(&mut self) -> Result<(), StoreError> {
        match std::mem::replace(&mut self.group, Group::Outside) {
            Group::Outside => Ok(()),
            Group::Lost => Err(StoreError::GroupLost),
            Group::Open => {
                let Some(conn) = self.conn.as_mut() else {
                    return Err(StoreError::GroupLost);
                };
                // One notification for the whole group (more only when its
                // accounts do not fit in one), delivered by its commit.
                if let Err(error) = conn.notify_notes() {
                    self.conn = None;
                    return Err(error);
                }
                if let Err(error) = conn.client.batch_execute("COMMIT") {
                    // PostgreSQL ended the transaction either way; the
                    // connection may be gone too. Start afresh.
                    self.conn = None;
                    return Err(error.into());
                }
                Ok(())
            }
        }
    }

    fn login(&mut self, login: &Login<'_>) -> Result<LoginOutcome, StoreError> {
        let now = u64_to_sql("now_ms", login.now_ms)?;
        let expires = u64_to_sql("expires_at_ms", expiry_after(login)?)?;
        let token_expires = login
            .token
            .map(|t| u64_to_sql("expires_at_ms", t.expires_at_ms))
            .transpose()?;
        let device: &[u8] = &login.device;
        let public_key: &[u8] = &login.public_key;
        self.run(Shape::WriteMany, |c| {
            // The account's lock makes the whole decision one step across
            // every connection: the device limit, single-use tokens, and
            // ordering against revokes, bans and removals.
            let head = c.lock_or_create_account(login.account)?;
            let existing = c.device_row(login.account, login.device)?;
            let token_used_by = match &login.token {
                None => None,
                Some(token) => {
                    let id: &[u8] = &token.id;
                    c.query_opt(
                        "SELECT device FROM used_tokens WHERE account = $1 AND token_id = $2",
                        &[&login.account, &id],
                    )?
                    .map(|r| key(r.try_get(0)?, "used_tokens.device"))
                    .transpose()?
                }
            };
            let registered = c.query_one(
                "SELECT count(*) FROM devices WHERE account = $1",
                &[&login.account],
            )?;
            let facts = LoginFacts {
                status: c.account_status(login.account)?,
                device: existing.as_ref(),
                token_used_by,
                devices_registered: u64_from_sql("device count", registered.try_get(0)?)?,
            };
            let writes = match plan_login(login, &facts) {
                LoginPlan::Write(writes) => writes,
                LoginPlan::Refuse(refused) => return Ok(refused),
            };
            let resume = u64_to_sql("cursor", login.resume_cursor.min(head))?;
            c.execute(
                "INSERT INTO devices
                    (account, device, name, platform, first_login_ms, last_seen_ms, cursor)
                 VALUES ($1, $2, $3, $4, $5, $5, $6)
                 ON CONFLICT (account, device) DO UPDATE SET
                    name = excluded.name,
                    platform = excluded.platform,
                    last_seen_ms = excluded.last_seen_ms,
                    cursor = GREATEST(devices.cursor, excluded.cursor)",
                &[
                    &login.account,
                    &device,
                    &login.name,
                    &login.platform,
                    &now,
                    &resume,
                ],
            )?;
            match writes.enroll_with {
                Some(token) => {
                    let id: &[u8] = &token.id;
                    c.execute(
                        "INSERT INTO used_tokens (account, token_id, device, expires_at_ms)
                         VALUES ($1, $2, $3, $4)",
                        &[&login.account, &id, &device, &token_expires],
                    )?;
                    c.execute(
                        "INSERT INTO enrollments
                            (account, device, public_key, token_id, enrolled_at_ms, expires_at_ms)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (account, device) DO UPDATE SET
                            token_id = excluded.token_id,
                            enrolled_at_ms = excluded.enrolled_at_ms,
                            expires_at_ms = excluded.expires_at_ms,
                            revoked_kind = NULL, revoked_by = NULL, revoked_by_name = NULL,
                            revoked_by_platform = NULL, revoked_at_ms = NULL",
                        &[&login.account, &device, &public_key, &id, &now, &expires],
                    )?;
                }
                None => {
                    c.execute(
                        "UPDATE enrollments SET expires_at_ms = GREATEST(expires_at_ms, $3)
                         WHERE account = $1 AND device = $2",
                        &[&login.account, &device, &expires],
                    )?;
                }
            }
            let row = c
                .device_row(login.account, login.device)?
                .ok_or_else(|| StoreError::Corrupt("a device vanished while logging in".into()))?;
            c.note(login.account, DEVICES);
            Ok(LoginOutcome::Accepted {
                device: row,
                first_login: writes.new_device,
                enrolled_now: writes.enroll_with.is_some(),
            })
        })
    }

    fn devices(&mut self, account: &str) -> Result<Vec<DeviceRow>, StoreError> {
        self.run(Shape::Read, |c| {
            let rows = c.query(DEVICE_SELECT_ALL, &[&account])?;
            rows.iter().map(device_from_row).collect()
        })
    }

    fn touch(
        &mut self,
        account: &str,
        device: DeviceKey,
        last_seen_ms: u64,
    ) -> Result<(), StoreError> {
        let last_seen = u64_to_sql("last_seen_ms", last_seen_ms)?;
        let device: &[u8] = &device;
        self.run(Shape::WriteOne, |c| {
            c.execute(
                "UPDATE devices SET last_seen_ms = $3 WHERE account = $1 AND device = $2",
                &[&account, &device, &last_seen],
            )?;
            Ok(())
        })
    }

    fn revoke(
        &mut self,
        account: &str,
        device: DeviceKey,
        revocation: &Revocation,
    ) -> Result<RevokeOutcome, StoreError> {
        let p = revocation_params(revocation)?;
        let key_bytes: &[u8] = &device;
        self.run(Shape::WriteMany, |c| {
            // The account's lock orders this against logins, which
            // (re-)enroll.
            if c.lock_account(account)?.is_none() {
                return Ok(RevokeOutcome::NotFound);
            }
            let changed = c.execute(
                "UPDATE enrollments SET revoked_kind = $3, revoked_by = $4, revoked_by_name = $5,
                    revoked_by_platform = $6, revoked_at_ms = $7
                 WHERE account = $1 AND device = $2 AND revoked_kind IS NULL",
                &[
                    &account,
                    &key_bytes,
                    &p.kind,
                    &p.by,
                    &p.by_name,
                    &p.by_platform,
                    &p.at,
                ],
            )?;
            if changed > 0 {
                c.note(account, DEVICES);
                return Ok(RevokeOutcome::Revoked);
            }
            Ok(match c.device_row(account, device)? {
                None => RevokeOutcome::NotFound,
                Some(row) if row.enrollment.is_none() => RevokeOutcome::NotEnrolled,
                Some(_) => RevokeOutcome::AlreadyRevoked,
            })
        })
    }

    fn revoke_all(
        &mut self,
        account: &str,
        except: Option<DeviceKey>,
        revocation: &Revocation,
    ) -> Result<Vec<DeviceKey>, StoreError> {
        let p = revocation_params(revocation)?;
        let except: Option<Vec<u8>> = except.map(|d| d.to_vec());
        self.run(Shape::WriteMany, |c| {
            if c.lock_account(account)?.is_none() {
                return Ok(Vec::new());
            }
            let rows = c.query(
                "UPDATE enrollments SET revoked_kind = $3, revoked_by = $4, revoked_by_name = $5,
                    revoked_by_platform = $6, revoked_at_ms = $7
                 WHERE account = $1 AND revoked_kind IS NULL
                   AND ($2::BYTEA IS NULL OR device <> $2::BYTEA)
                 RETURNING device",
                &[
                    &account,
                    &except,
                    &p.kind,
                    &p.by,
                    &p.by_name,
                    &p.by_platform,
                    &p.at,
                ],
            )?;
            let mut revoked = rows
                .iter()
                .map(|r| key(r.try_get(0)?, "device id"))
                .collect::<Result<Vec<DeviceKey>, StoreError>>()?;
            revoked.sort();
            if !revoked.is_empty() {
                c.note(account, DEVICES);
            }
            Ok(revoked)
        })
    }

    fn renew_enrollment(
        &mut self,
        account: &str,
        device: DeviceKey,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let expires = u64_to_sql("expires_at_ms", expires_at_ms)?;
        let now = bound(now_ms);
        let device: &[u8] = &device;
        self.run(Shape::WriteOne, |c| {
            let changed = c.execute(
                "UPDATE enrollments SET expires_at_ms = GREATEST(expires_at_ms, $3)
                 WHERE account = $1 AND device = $2 AND revoked_kind IS NULL
                   AND expires_at_ms > $4",
                &[&account, &device, &expires, &now],
            )?;
            Ok(changed > 0)
        })
    }

    fn use_token(
        &mut self,
        account: &str,
        token: &TokenUse,
        device: DeviceKey,
    ) -> Result<bool, StoreError> {
        let expires = u64_to_sql("expires_at_ms", token.expires_at_ms)?;
        let (id, device): (&[u8], &[u8]) = (&token.id, &device);
        self.run(Shape::WriteMany, |c| {
            // Under the account's lock, like a login's use of a token.
            c.lock_or_create_account(account)?;
            let inserted = c.execute(
                "INSERT INTO used_tokens (account, token_id, device, expires_at_ms)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&account, &id, &device, &expires],
            )?;
            Ok(inserted > 0)
        })
    }

    fn purge_used_tokens(&mut self, now_ms: u64) -> Result<u64, StoreError> {
        let now = bound(now_ms);
        self.run(Shape::WriteOne, |c| {
            c.execute("DELETE FROM used_tokens WHERE expires_at_ms <= $1", &[&now])
        })
    }

    fn account_status(&mut self, account: &str) -> Result<AccountStatus, StoreError> {
        self.run(Shape::Read, |c| c.account_status(account))
    }

    fn set_banned(&mut self, account: &str, banned: bool) -> Result<AccountStatus, StoreError> {
        let status = if banned {
            AccountStatus::Banned
        } else {
            AccountStatus::Active
        }
        .as_str();
        self.run(Shape::WriteMany, |c| {
            c.lock_or_create_account(account)?;
            let changed = c.execute(
                "UPDATE accounts SET status = $2 WHERE account = $1 AND status NOT IN ('removed', $2)",
                &[&account, &status],
            )?;
            if changed > 0 {
                c.note(account, STATUS);
            }
            c.account_status(account)
        })
    }

    fn remove_account(&mut self, account: &str) -> Result<u64, StoreError> {
        self.run(Shape::WriteMany, |c| {
            c.lock_or_create_account(account)?;
            let devices = c.query_one(
                "SELECT count(*) FROM devices WHERE account = $1",
                &[&account],
            )?;
            let devices = u64_from_sql("device count", devices.try_get(0)?)?;
            c.execute("DELETE FROM sessions WHERE account = $1", &[&account])?;
            c.execute("DELETE FROM chains WHERE account = $1", &[&account])?;
            c.execute(
                "DELETE FROM snapshot_chunks WHERE account = $1",
                &[&account],
            )?;
            c.execute("DELETE FROM epochs WHERE account = $1", &[&account])?;
            c.execute("DELETE FROM payloads WHERE account = $1", &[&account])?;
            c.execute("DELETE FROM log WHERE account = $1", &[&account])?;
            c.execute("DELETE FROM used_tokens WHERE account = $1", &[&account])?;
            c.execute("DELETE FROM enrollments WHERE account = $1", &[&account])?;
            c.execute("DELETE FROM devices WHERE account = $1", &[&account])?;
            c.execute(
                "UPDATE accounts SET status = 'removed', head_seq = 0, epoch = 0, generation = 0,
                    epoch_base_seq = 0, log_floor_seq = 0, tail_bytes = 0
                 WHERE account = $1",
                &[&account],
            )?;
            c.note(account, STATUS);
            Ok(devices)
        })
    }

    fn append(
        &mut self,
        account: &str,
        origin: DeviceKey,
        deltas: &[(ContentKey, &[u8])],
    ) -> Result<Vec<Appended>, StoreError> {
        if deltas.is_empty() {
            return Ok(Vec::new());
        }
        let origin: &[u8] = &origin;
        self.run(Shape::WriteMany, |c| {
            // The lock comes first and alone: the statements after it read
            // fresh snapshots, which hold every append committed before it.
            let mut head = c.lock_or_create_account(account)?;
            let ids: Vec<&[u8]> = deltas.iter().map(|(id, _)| &id[..]).collect();
            let mut seqs: HashMap<ContentKey, u64> = HashMap::new();
            for r in c.query(
                "SELECT content_id, seq FROM log WHERE account = $1 AND content_id = ANY ($2)",
                &[&account, &ids],
            )? {
                seqs.insert(
                    key(r.try_get(0)?, "content id")?,
                    u64_from_sql("seq", r.try_get(1)?)?,
                );
            }
            let mut out = Vec::with_capacity(deltas.len());
            let (mut new_seqs, mut new_ids, mut new_bytes) = (Vec::new(), Vec::new(), Vec::new());
            for (content_id, bytes) in deltas {
                if let Some(&seq) = seqs.get(content_id) {
                    out.push(Appended {
                        content_id: *content_id,
                        seq,
                        new: false,
                    });
                    continue;
                }
                head += 1;
                new_seqs.push(u64_to_sql("seq", head)?);
                new_ids.push(&content_id[..]);
                new_bytes.push(*bytes);
                // A repeat later in this batch keeps this seq.
                seqs.insert(*content_id, head);
                out.push(Appended {
                    content_id: *content_id,
                    seq: head,
                    new: true,
                });
            }
            if !new_seqs.is_empty() {
                let head = u64_to_sql("seq", head)?;
                let added = new_bytes.iter().map(|b| b.len() as u64).sum::<u64>();
                let added = u64_to_sql("tail_bytes", added)?;
                c.execute(
                    "WITH added AS (
                        INSERT INTO log (account, seq, content_id, origin, bytes)
                        SELECT $1, seq, content_id, $2, bytes
                        FROM unnest($3::BIGINT[], $4::BYTEA[], $5::BYTEA[])
                            AS t (seq, content_id, bytes)
                     )
                     UPDATE accounts SET head_seq = $6, tail_bytes = tail_bytes + $7
                     WHERE account = $1",
                    &[
                        &account, &origin, &new_seqs, &new_ids, &new_bytes, &head, &added,
                    ],
                )?;
                c.note(account, DELTAS);
            }
            Ok(out)
        })
    }

    fn read_log(
        &mut self,
        account: &str,
        after_seq: u64,
        count_max: usize,
        bytes_max: usize,
    ) -> Result<Page, StoreError> {
        let (after, limit, budget) = (
            bound(after_seq),
            bound_usize(count_max),
            bound_usize(bytes_max),
        );
        self.run(Shape::Read, |c| {
            // The byte budget is applied in SQL, so a page of large deltas
            // never crosses the network in full only to be cut here. Rows
            // are a prefix: the running sum only grows.
            let rows = c.query(
                "SELECT seq, origin, content_id, bytes FROM (
                    SELECT seq, origin, content_id, bytes,
                           row_number() OVER (ORDER BY seq) AS n,
                           sum(octet_length(bytes)) OVER (ORDER BY seq) AS running
                    FROM (SELECT seq, origin, content_id, bytes FROM log
                          WHERE account = $1 AND seq > $2 ORDER BY seq LIMIT $3) AS window_rows
                 ) AS page
                 WHERE n = 1 OR running <= $4
                 ORDER BY seq",
                &[&account, &after, &limit, &budget],
            )?;
            let mut page = Page::default();
            for r in &rows {
                page.rows.push(LogRow {
                    seq: u64_from_sql("seq", r.try_get(0)?)?,
                    origin: key(r.try_get(1)?, "origin")?,
                    content_id: key(r.try_get(2)?, "content id")?,
                    bytes: r.try_get(3)?,
                });
            }
            // The head is read after the rows, in a newer snapshot: it is
            // at least the head the rows saw, so `more` is never false while
            // the rows stopped short of the log's end.
            let head = c.head_seq(account)?;
            let last = page.rows.last().map_or(after_seq, |r| r.seq);
            page.more = last < head;
            Ok(page)
        })
    }

    fn head_seq(&mut self, account: &str) -> Result<u64, StoreError> {
        self.run(Shape::Read, |c| c.head_seq(account))
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
        let now = u64_to_sql("appended_at_ms", now_ms)?;
        let origin: &[u8] = &origin;
        self.run(Shape::WriteMany, |c| {
            // The lock comes first and alone, as in `append`: every
            // statement after it reads a snapshot that holds every append
            // and publish committed before it.
            c.lock_or_create_account(account)?;
            let state = c.epoch_state(account)?;
            let ids: Vec<&[u8]> = envelopes.iter().map(|e| &e.content_id[..]).collect();
            let mut known: HashMap<ContentKey, u64> = HashMap::new();
            for r in c.query(
                "SELECT content_id, seq FROM log WHERE account = $1 AND content_id = ANY ($2)",
                &[&account, &ids],
            )? {
                known.insert(
                    key(r.try_get(0)?, "content id")?,
                    u64_from_sql("seq", r.try_get(1)?)?,
                );
            }
            let chain = match c.query_opt(
                "SELECT chain_pos, head FROM chains WHERE account = $1 AND device = $2",
                &[&account, &origin],
            )? {
                None => (0, [0; 32]),
                Some(r) => (
                    u64_from_sql("chain_pos", r.try_get(0)?)?,
                    key(r.try_get(1)?, "chain head")?,
                ),
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
                        current: c.current_epoch(account)?,
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
            if let Some((pos, head)) = writes.chain {
                let mut seqs = Vec::with_capacity(writes.new.len());
                let mut new_ids: Vec<&[u8]> = Vec::with_capacity(writes.new.len());
                let mut bytes: Vec<&[u8]> = Vec::with_capacity(writes.new.len());
                let mut epochs = Vec::with_capacity(writes.new.len());
                for &(index, seq) in &writes.new {
                    let e = &envelopes[index];
                    seqs.push(u64_to_sql("seq", seq)?);
                    new_ids.push(&e.content_id[..]);
                    bytes.push(e.bytes);
                    epochs.push(u64_to_sql("epoch", e.epoch)?);
                }
                let head_seq = u64_to_sql("seq", writes.head_seq)?;
                let added = u64_to_sql("tail_bytes", writes.bytes)?;
                let pos = u64_to_sql("chain_pos", pos)?;
                let head: &[u8] = &head;
                c.execute(
                    "WITH added AS (
                        INSERT INTO log (account, seq, content_id, origin, bytes, epoch,
                                         appended_at_ms)
                        SELECT $1, seq, content_id, $2, bytes, epoch, $7
                        FROM unnest($3::BIGINT[], $4::BYTEA[], $5::BYTEA[], $6::BIGINT[])
                            AS t (seq, content_id, bytes, epoch)
                     ), chain AS (
                        INSERT INTO chains (account, device, chain_pos, head)
                        VALUES ($1, $2, $10, $11)
                        ON CONFLICT (account, device) DO UPDATE SET
                            chain_pos = excluded.chain_pos, head = excluded.head
                     )
                     UPDATE accounts SET head_seq = $8, tail_bytes = tail_bytes + $9
                     WHERE account = $1",
                    &[
                        &account, &origin, &seqs, &new_ids, &bytes, &epochs, &now, &head_seq,
                        &added, &pos, &head,
                    ],
                )?;
                c.note(account, DELTAS);
            }
            Ok(AppendOutcome::Appended(writes.out))
        })
    }

    fn epoch(&mut self, account: &str) -> Result<Option<EpochRow>, StoreError> {
        self.run(Shape::Read, |c| c.current_epoch(account))
    }

    fn stage_chunk(
        &mut self,
        account: &str,
        chunk: &StagedChunk<'_>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let now = u64_to_sql("staged_at_ms", now_ms)?;
        let hash = chunk_hash(chunk.bytes);
        let (id, hash): (&[u8], &[u8]) = (&chunk.snapshot_id, &hash);
        let index = i64::from(chunk.index);
        self.run(Shape::WriteMany, |c| {
            c.execute(
                "INSERT INTO accounts (account) VALUES ($1) ON CONFLICT (account) DO NOTHING",
                &[&account],
            )?;
            c.execute(
                "INSERT INTO snapshot_chunks (account, snapshot_id, idx, hash, bytes, staged_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (account, snapshot_id, idx) DO UPDATE SET
                    hash = excluded.hash, bytes = excluded.bytes,
                    staged_at_ms = excluded.staged_at_ms
                 WHERE NOT snapshot_chunks.committed",
                &[&account, &id, &index, &hash, &chunk.bytes, &now],
            )?;
            Ok(())
        })
    }

    fn publish_epoch(
        &mut self,
        account: &str,
        publish: &Publish<'_>,
        now_ms: u64,
    ) -> Result<PublishOutcome, StoreError> {
        check_publish(publish, now_ms)?;
        let row = published_row(publish, now_ms);
        let epoch = u64_to_sql("epoch", row.epoch)?;
        let base = u64_to_sql("base_seq", row.base_seq)?;
        let at = u64_to_sql("published_at_ms", row.published_at_ms)?;
        let (generation, chunks) = (i64::from(row.generation), i64::from(row.chunks));
        let (id, by): (&[u8], &[u8]) = (&row.snapshot_id, &row.published_by);
        self.run(Shape::WriteMany, |c| {
            // The same lock as appends, first and alone: the condition is
            // read under it, on every node.
            c.lock_or_create_account(account)?;
            let state = c.epoch_state(account)?;
            if !publish_condition(state.epoch, state.head_seq, publish) {
                return Ok(PublishOutcome::Conflict {
                    current: c.current_epoch(account)?,
                    head_seq: state.head_seq,
                });
            }
            let mut staged: HashMap<u32, ChunkHash> = HashMap::new();
            for r in c.query(
                "SELECT idx, hash FROM snapshot_chunks
                 WHERE account = $1 AND snapshot_id = $2 AND idx < $3",
                &[&account, &id, &chunks],
            )? {
                staged.insert(
                    u32_from_sql("idx", r.try_get(0)?)?,
                    key(r.try_get(1)?, "chunk hash")?,
                );
            }
            let missing = missing_chunks(publish, &staged);
            if !missing.is_empty() {
                return Ok(PublishOutcome::Incomplete { missing });
            }
            c.execute(
                "WITH committed AS (
                    UPDATE snapshot_chunks SET committed = TRUE
                    WHERE account = $1 AND snapshot_id = $5 AND idx < $7
                 ), published AS (
                    INSERT INTO epochs (account, epoch, generation, base_seq, snapshot_id,
                                        manifest, chunks, published_by, published_at_ms)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 )
                 UPDATE accounts SET epoch = $2, generation = $3, epoch_base_seq = $4,
                    tail_bytes = 0
                 WHERE account = $1",
                &[
                    &account,
                    &epoch,
                    &generation,
                    &base,
                    &id,
                    &publish.manifest,
                    &chunks,
                    &by,
                    &at,
                ],
            )?;
            Ok(PublishOutcome::Published(row.clone()))
        })
    }

    fn snapshot_chunk(
        &mut self,
        account: &str,
        epoch: u64,
        index: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let (epoch, index) = (bound(epoch), i64::from(index));
        self.run(Shape::Read, |c| {
            let row = c.query_opt(
                "SELECT c.bytes FROM epochs e JOIN snapshot_chunks c
                    ON c.account = e.account AND c.snapshot_id = e.snapshot_id
                 WHERE e.account = $1 AND e.epoch = $2 AND c.idx = $3 AND c.committed",
                &[&account, &epoch, &index],
            )?;
            row.map(|r| r.try_get(0).map_err(StoreError::from))
                .transpose()
        })
    }

    fn tail_stats(&mut self, account: &str) -> Result<TailStats, StoreError> {
        self.run(Shape::Read, |c| c.epoch_state(account))
    }

    fn read_log_from(
        &mut self,
        account: &str,
        after_seq: u64,
        count_max: usize,
        bytes_max: usize,
    ) -> Result<LogRead, StoreError> {
        let (after, limit, budget) = (
            bound(after_seq),
            bound_usize(count_max),
            bound_usize(bytes_max),
        );
        self.run(Shape::Read, |c| {
            // One statement, so one snapshot: the floor, the head and the
            // rows agree even while a retain deletes. The page is only
            // joined in when the cursor is at or above the floor.
            let rows = c.query(
                "SELECT a.log_floor_seq, a.head_seq, p.seq, p.origin, p.content_id, p.bytes
                 FROM accounts a LEFT JOIN LATERAL (
                    SELECT seq, origin, content_id, bytes FROM (
                        SELECT seq, origin, content_id, bytes,
                               row_number() OVER (ORDER BY seq) AS n,
                               sum(octet_length(bytes)) OVER (ORDER BY seq) AS running
                        FROM (SELECT seq, origin, content_id, bytes FROM log
                              WHERE account = $1 AND seq > $2 ORDER BY seq LIMIT $3)
                            AS window_rows
                    ) AS page
                    WHERE n = 1 OR running <= $4
                 ) AS p ON a.log_floor_seq <= $2
                 WHERE a.account = $1
                 ORDER BY p.seq",
                &[&account, &after, &limit, &budget],
            )?;
            let Some(first) = rows.first() else {
                return Ok(LogRead::Page(Page::default()));
            };
            let floor = u64_from_sql("log_floor_seq", first.try_get(0)?)?;
            let head = u64_from_sql("head_seq", first.try_get(1)?)?;
            if after_seq < floor {
                return Ok(LogRead::Truncated { floor });
            }
            let mut page = Page::default();
            for r in &rows {
                let Some(seq) = r.try_get::<_, Option<i64>>(2)? else {
                    continue;
                };
                page.rows.push(LogRow {
                    seq: u64_from_sql("seq", seq)?,
                    origin: key(r.try_get(3)?, "origin")?,
                    content_id: key(r.try_get(4)?, "content id")?,
                    bytes: r.try_get(5)?,
                });
            }
            let last = page.rows.last().map_or(after_seq, |r| r.seq);
            page.more = last < head;
            Ok(LogRead::Page(page))
        })
    }

    fn retain(
        &mut self,
        account: &str,
        retention: &Retention,
        now_ms: u64,
    ) -> Result<Retained, StoreError> {
        let now = u64_to_sql("now_ms", now_ms)?;
        let active_after = threshold(now, retention.log_retention_ms);
        let staged_before = threshold(now, retention.staged_ttl_ms);
        self.run(Shape::WriteMany, |c| {
            // The account's lock first, as appends and publishes take it.
            if c.lock_account(account)?.is_none() {
                return Ok(Retained::default());
            }
            let stats = c.epoch_state(account)?;
            let row = c.query_one(
                "SELECT (SELECT min(cursor) FROM devices
                         WHERE account = $1 AND last_seen_ms > $2),
                        (SELECT min(seq) FROM log WHERE account = $1 AND appended_at_ms > $2)",
                &[&account, &active_after],
            )?;
            let min_active_cursor: Option<i64> = row.try_get(0)?;
            let first_recent_seq: Option<i64> = row.try_get(1)?;
            let floor = retained_floor(
                &stats,
                min_active_cursor
                    .map(|v| u64_from_sql("cursor", v))
                    .transpose()?,
                first_recent_seq
                    .map(|v| u64_from_sql("seq", v))
                    .transpose()?,
            );
            let mut retained = Retained {
                floor_seq: floor,
                ..Retained::default()
            };
            if floor > stats.floor_seq {
                let floor = u64_to_sql("log_floor_seq", floor)?;
                retained.log_entries = c.execute(
                    "DELETE FROM log WHERE account = $1 AND seq <= $2",
                    &[&account, &floor],
                )?;
                c.execute(
                    "UPDATE accounts SET log_floor_seq = $2 WHERE account = $1",
                    &[&account, &floor],
                )?;
            }
            let epoch = u64_to_sql("epoch", stats.epoch)?;
            retained.snapshot_chunks = c.execute(
                "DELETE FROM snapshot_chunks WHERE account = $1 AND committed
                    AND snapshot_id IN (SELECT snapshot_id FROM epochs
                                        WHERE account = $1 AND epoch + 1 < $2)",
                &[&account, &epoch],
            )?;
            retained.staged_chunks = c.execute(
                "DELETE FROM snapshot_chunks WHERE account = $1 AND NOT committed
                    AND staged_at_ms <= $2",
                &[&account, &staged_before],
            )?;
            Ok(retained)
        })
    }

    fn set_cursor(
        &mut self,
        account: &str,
        device: DeviceKey,
        cursor: u64,
    ) -> Result<Option<u64>, StoreError> {
        let cursor = bound(cursor);
        let device: &[u8] = &device;
        self.run(Shape::WriteOne, |c| {
            let row = c.query_opt(
                "UPDATE devices AS d
                 SET cursor = GREATEST(d.cursor, LEAST($3, a.head_seq))
                 FROM accounts AS a
                 WHERE a.account = d.account AND d.account = $1 AND d.device = $2
                 RETURNING d.cursor",
                &[&account, &device, &cursor],
            )?;
            row.map(|r| u64_from_sql("cursor", r.try_get(0)?))
                .transpose()
        })
    }

    fn put_payload(
        &mut self,
        account: &str,
        recipient: DeviceKey,
        payload: &PayloadRow,
        pending_max: usize,
    ) -> Result<PutPayload, StoreError> {
        let sent_ms = u64_to_sql("sent_ms", payload.sent_ms)?;
        let recipient: &[u8] = &recipient;
        let (id, sender): (&[u8], &[u8]) = (&payload.id, &payload.sender);
        self.run(Shape::WriteMany, |c| {
            // The recipient's lock makes counting and inserting one step
            // across every connection (the queue limit).
            let known = c.query_opt(
                "SELECT 1 FROM devices WHERE account = $1 AND device = $2 FOR NO KEY UPDATE",
                &[&account, &recipient],
            )?;
            if known.is_none() {
                return Ok(PutPayload::UnknownRecipient);
            }
            let state = c.query_one(
                "SELECT
                    EXISTS (SELECT 1 FROM payloads
                            WHERE account = $1 AND recipient = $2 AND id = $3),
                    (SELECT count(*) FROM payloads WHERE account = $1 AND recipient = $2)",
                &[&account, &recipient, &id],
            )?;
            if state.try_get::<_, bool>(0)? {
                return Ok(PutPayload::AlreadyStored);
            }
            if u64_from_sql("payload count", state.try_get(1)?)? >= pending_max as u64 {
                return Ok(PutPayload::QueueFull);
            }
            c.execute(
                "INSERT INTO payloads (account, recipient, id, sender, bytes, sent_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&account, &recipient, &id, &sender, &payload.bytes, &sent_ms],
            )?;
            c.note(account, PAYLOADS);
            Ok(PutPayload::Stored)
        })
    }

    fn payloads(
        &mut self,
        account: &str,
        recipient: DeviceKey,
    ) -> Result<Vec<PayloadRow>, StoreError> {
        let recipient: &[u8] = &recipient;
        self.run(Shape::Read, |c| {
            let rows = c.query(
                "SELECT id, sender, bytes, sent_ms FROM payloads
                 WHERE account = $1 AND recipient = $2 ORDER BY pos",
                &[&account, &recipient],
            )?;
            rows.iter()
                .map(|r| {
                    Ok(PayloadRow {
                        id: key(r.try_get(0)?, "payload id")?,
                        sender: key(r.try_get(1)?, "sender")?,
                        bytes: r.try_get(2)?,
                        sent_ms: u64_from_sql("sent_ms", r.try_get(3)?)?,
                    })
                })
                .collect()
        })
    }

    fn ack_payload(
        &mut self,
        account: &str,
        recipient: DeviceKey,
        id: PayloadKey,
    ) -> Result<bool, StoreError> {
        let (recipient, id): (&[u8], &[u8]) = (&recipient, &id);
        self.run(Shape::WriteOne, |c| {
            let removed = c.execute(
                "DELETE FROM payloads WHERE account = $1 AND recipient = $2 AND id = $3",
                &[&account, &recipient, &id],
            )?;
            Ok(removed > 0)
        })
    }
}

/// The first word of every notification payload: the format's version.
const NOTICE_TAG: &str = "tandem1";
/// The line that stands for every account.
const NOTICE_EVERYTHING: &str = "*";

/// The wall clock in ms since the Unix epoch (0 before it).
fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The notification payloads for `notes`: each `tandem1 <node> <sent ms>`
/// and then one line `<kinds> <account>` per account (`d` deltas, `v`
/// devices, `p` payloads, `s` status), split so that none passes
/// [`NOTIFY_PAYLOAD_BYTES_MAX`]. An account that cannot be written on a
/// line (a newline in it, or too long for a payload) makes the payload say
/// `*`, every account: a receiver then reads more, never less. The time is
/// the sender's clock just before its commit, for the receiver's lag
/// metric only.
fn encode_changes(
    node: i64,
    sent_at_ms: u64,
    notes: &BTreeMap<String, ChangeKinds>,
) -> Vec<String> {
    let header = format!("{NOTICE_TAG} {node} {sent_at_ms}\n");
    let everything = || vec![format!("{header}{NOTICE_EVERYTHING}\n")];
    let mut payloads = Vec::new();
    let mut current = header.clone();
    for (account, kinds) in notes {
        let mut line = String::with_capacity(account.len() + 6);
        for (set, letter) in [
            (kinds.deltas, 'd'),
            (kinds.devices, 'v'),
            (kinds.payloads, 'p'),
            (kinds.status, 's'),
        ] {
            if set {
                line.push(letter);
            }
        }
        if line.is_empty() {
            continue;
        }
        if account.is_empty() || account.contains(['\n', '\0']) {
            return everything();
        }
        line.push(' ');
        line.push_str(account);
        line.push('\n');
        if header.len() + line.len() > NOTIFY_PAYLOAD_BYTES_MAX {
            return everything();
        }
        if current.len() + line.len() > NOTIFY_PAYLOAD_BYTES_MAX {
            payloads.push(std::mem::replace(&mut current, header.clone()));
        }
        current.push_str(&line);
    }
    if current.len() > header.len() {
        payloads.push(current);
    }
    payloads
}

/// What one notification said.
#[derive(Debug, PartialEq, Eq)]
enum Notice {
    /// Node `node` changed these accounts.
    Accounts(i64, Vec<(String, ChangeKinds)>),
    /// Node `node` changed accounts it could not name.
    Everything(i64),
    /// Not a payload this build writes (a newer node, or garbage): the
    /// receiver must assume anything changed.
    Unreadable,
}

/// A payload's header line: the sending node, and its clock at the send
/// when the header has one (older nodes wrote only the node).
fn decode_header(header: &str) -> Option<(i64, Option<u64>)> {
    let rest = header.strip_prefix(NOTICE_TAG)?.strip_prefix(' ')?;
    match rest.split_once(' ') {
        None => Some((rest.parse().ok()?, None)),
        Some((node, sent)) => Some((node.parse().ok()?, Some(sent.parse().ok()?))),
    }
}

fn decode_changes(payload: &str) -> Notice {
    let mut lines = payload.lines();
    let Some((node, _sent)) = lines.next().and_then(decode_header) else {
        return Notice::Unreadable;
    };
    let mut accounts = Vec::new();
    for line in lines {
        if line == NOTICE_EVERYTHING {
            return Notice::Everything(node);
        }
        let Some((letters, account)) = line.split_once(' ') else {
            return Notice::Unreadable;
        };
        let mut kinds = ChangeKinds::default();
        for letter in letters.chars() {
            match letter {
                'd' => kinds.deltas = true,
                'v' => kinds.devices = true,
                'p' => kinds.payloads = true,
                's' => kinds.status = true,
                _ => return Notice::Unreadable,
            }
        }
        if kinds.is_empty() || account.is_empty() {
            return Notice::Unreadable;
        }
        accounts.push((account.to_owned(), kinds));
    }
    Notice::Accounts(node, accounts)
}

/// The [`ChangeFeed`] of a [`PostgresRelayStore`]: a connection of its own
/// that `LISTEN`s on [`CHANGE_CHANNEL`] and reports what other nodes
/// committed, skipping the notifications of its own store.
///
/// Its connection is opened by the first [`ChangeFeed::wait`] (on the
/// thread that runs the feed) and again after it is lost; each time, the
/// report is [`Changes::Everything`], since notifications sent while no
/// connection listened are gone. A connection that stays silent is checked
/// every [`FEED_PING_INTERVAL_MS`].
pub struct PostgresChangeFeed {
    config: Config,
    node: i64,
    client: Option<Client>,
    checked_at: Instant,
    /// Lags of the notifications read since the last
    /// [`ChangeFeed::take_lags_ms`], at most [`FEED_LAGS_KEPT_MAX`].
    lags_ms: Vec<u64>,
}

/// Lags a feed keeps for [`ChangeFeed::take_lags_ms`] between two calls;
/// later ones are not recorded (the metric is a sample, not an account).
pub const FEED_LAGS_KEPT_MAX: usize = 4_096;

impl std::fmt::Debug for PostgresChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresChangeFeed")
            .field("node", &self.node)
            .field("connected", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

impl PostgresChangeFeed {
    fn listen(&mut self) -> Result<(), StoreError> {
        let mut client = self.config.connect(NoTls)?;
        // The channel is a constant identifier, not input.
        client.batch_execute(&format!("LISTEN {CHANGE_CHANNEL}"))?;
        self.client = Some(client);
        self.checked_at = Instant::now();
        Ok(())
    }

    /// Folds one payload into `accounts`; true when it stands for every
    /// account.
    fn take(&mut self, payload: &str, accounts: &mut BTreeMap<String, ChangeKinds>) -> bool {
        if let Some((node, Some(sent_at_ms))) = payload.lines().next().and_then(decode_header) {
            if node != self.node && self.lags_ms.len() < FEED_LAGS_KEPT_MAX {
                self.lags_ms
                    .push(wall_clock_ms().saturating_sub(sent_at_ms));
            }
        }
        match decode_changes(payload) {
            Notice::Accounts(node, _) | Notice::Everything(node) if node == self.node => false,
            Notice::Accounts(_, changed) => {
                for (account, kinds) in changed {
                    let entry = accounts.entry(account).or_default();
                    *entry = entry.union(kinds);
                }
                false
            }
            Notice::Everything(_) | Notice::Unreadable => true,
        }
    }
}

impl ChangeFeed for PostgresChangeFeed {
    fn wait(&mut self, timeout: Duration) -> Result<Option<Changes>, StoreError> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.client = None;
            self.listen()?;
            return Ok(Some(Changes::Everything));
        }
        let Some(client) = self.client.as_mut() else {
            return Err(StoreError::ChangeFeedLost);
        };
        let mut payloads = Vec::new();
        let mut failed = None;
        {
            let mut notifications = client.notifications();
            match notifications.timeout_iter(timeout).next() {
                Ok(Some(n)) => payloads.push(n.payload().to_owned()),
                Ok(None) => {}
                Err(error) => failed = Some(error),
            }
            // Then whatever else is here already, without waiting.
            let mut rest = notifications.iter();
            while failed.is_none()
                && !payloads.is_empty()
                && payloads.len() < FEED_NOTIFICATIONS_PER_WAIT_MAX
            {
                match rest.next() {
                    Ok(Some(n)) => payloads.push(n.payload().to_owned()),
                    Ok(None) => break,
                    Err(error) => failed = Some(error),
                }
            }
        }
        if let Some(error) = failed {
            self.client = None;
            return Err(error.into());
        }
        if client.is_closed() {
            self.client = None;
            return Err(StoreError::ChangeFeedLost);
        }
        if payloads.is_empty() {
            if self.checked_at.elapsed() >= Duration::from_millis(FEED_PING_INTERVAL_MS) {
                self.checked_at = Instant::now();
                if let Err(error) = client.simple_query("SELECT 1") {
                    self.client = None;
                    return Err(error.into());
                }
            }
            return Ok(None);
        }
        self.checked_at = Instant::now();
        let mut accounts = BTreeMap::new();
        let mut everything = false;
        for payload in &payloads {
            everything |= self.take(payload, &mut accounts);
        }
        Ok(if everything {
            Some(Changes::Everything)
        } else if accounts.is_empty() {
            None
        } else {
            Some(Changes::Accounts(accounts.into_iter().collect()))
        })
    }

    fn take_lags_ms(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.lags_ms)
    }
}

#[cfg(test)]
mod notice_tests {
    use super::*;

    fn kinds(letters: &str) -> ChangeKinds {
        ChangeKinds {
            deltas: letters.contains('d'),
            devices: letters.contains('v'),
            payloads: letters.contains('p'),
            status: letters.contains('s'),
        }
    }

    #[test]
    fn notes_round_trip_and_split_below_the_payload_limit() {
        let mut notes = BTreeMap::new();
        notes.insert("alice".to_owned(), kinds("dv"));
        notes.insert("bob".to_owned(), kinds("ps"));
        notes.insert("carol".to_owned(), ChangeKinds::default());
        let payloads = encode_changes(7, 1_700_000_000_123, &notes);
        assert_eq!(
            payloads,
            vec!["tandem1 7 1700000000123\ndv alice\nps bob\n".to_owned()]
        );
        assert_eq!(
            decode_changes(&payloads[0]),
            Notice::Accounts(
                7,
                vec![("alice".into(), kinds("dv")), ("bob".into(), kinds("ps"))]
            )
        );
        // Enough accounts to need several payloads: each at most the
        // limit, together every account once.
        let many: BTreeMap<String, ChangeKinds> = (0..2_000)
            .map(|i| (format!("account-{i:05}"), kinds("d")))
            .collect();
        let payloads = encode_changes(-1, u64::MAX, &many);
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|p| p.len() <= NOTIFY_PAYLOAD_BYTES_MAX));
        let mut back = Vec::new();
        for payload in &payloads {
            match decode_changes(payload) {
                Notice::Accounts(-1, accounts) => back.extend(accounts),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, many.into_iter().collect::<Vec<_>>());
        assert!(encode_changes(1, 0, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn an_account_that_cannot_be_named_stands_for_every_account() {
        for account in [
            "two\nlines".to_owned(),
            "x".repeat(NOTIFY_PAYLOAD_BYTES_MAX),
        ] {
            let notes = BTreeMap::from([(account, kinds("d"))]);
            let payloads = encode_changes(3, 9, &notes);
            assert_eq!(payloads, vec!["tandem1 3 9\n*\n".to_owned()]);
            assert_eq!(decode_changes(&payloads[0]), Notice::Everything(3));
        }
        // Just fits, and one byte more does not.
        let fits = NOTIFY_PAYLOAD_BYTES_MAX - "tandem1 3 9\nd \n".len();
        for (len, named) in [(fits, true), (fits + 1, false)] {
            let notes = BTreeMap::from([("y".repeat(len), kinds("d"))]);
            let payload = &encode_changes(3, 9, &notes)[0];
            assert!(payload.len() <= NOTIFY_PAYLOAD_BYTES_MAX);
            assert_eq!(
                matches!(decode_changes(payload), Notice::Accounts(..)),
                named
            );
        }
    }

    #[test]
    fn unreadable_payloads_are_reported_as_such_never_a_panic() {
        for payload in [
            "",
            "tandem1",
            "tandem1 x\nd alice\n",
            "tandem2 1\nd alice\n",
            "tandem1 1\nq alice\n",
            "tandem1 1\nd\n",
            "tandem1 1\n alice\n",
            "tandem1 1\nd \n",
            "tandem1 99999999999999999999\nd a\n",
            "tandem1 1 x\nd a\n",
            "tandem1 1 -3\nd a\n",
            "tandem1 1 18446744073709551616\nd a\n",
            "tandem1 1 2 3\nd a\n",
        ] {
            assert_eq!(decode_changes(payload), Notice::Unreadable, "{payload:?}");
        }
        assert_eq!(
            decode_changes("tandem1 -5\n"),
            Notice::Accounts(-5, Vec::new())
        );
    }

    #[test]
    fn a_header_carries_the_send_time_or_not() {
        assert_eq!(decode_header("tandem1 4"), Some((4, None)));
        assert_eq!(decode_header("tandem1 4 0"), Some((4, Some(0))));
        assert_eq!(
            decode_header("tandem1 -1 18446744073709551615"),
            Some((-1, Some(u64::MAX)))
        );
        for bad in [
            "tandem1",
            "tandem1 ",
            "tandem1 4 ",
            "tandem1 4 1.5",
            "tandem14 1",
        ] {
            assert_eq!(decode_header(bad), None, "{bad:?}");
        }
    }
}
