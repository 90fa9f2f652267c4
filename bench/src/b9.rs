//! B9: relay capacity across nodes.
//!
//! B6's load (accounts × 4 devices, one pusher at 12/s and three live
//! receivers per account, 200–400 B opaque deltas) against three servers in
//! the same run:
//!
//! 1. two relay nodes (children of this binary, as `tandem relay
//!    --postgres` runs them) sharing one PostgreSQL database; device `d` of
//!    account `a` connects to node `(a + d) % 2`, so every account has
//!    devices on both nodes and half of its deliveries cross nodes through
//!    the database's notifications;
//! 2. one relay node on SQLite (B6's Tandem side);
//! 3. Redis Streams (B6's baseline: `appendfsync always`).
//!
//! The PostgreSQL is a throwaway cluster started for the run (or the server
//! named by `TANDEM_TEST_POSTGRES_URL`), with its defaults: `fsync` and
//! `synchronous_commit` on, so an acknowledgement is on disk on every side.
//! What the database spends: the CPU of the cluster's processes inside the
//! window (read from `/proc`, so only for a cluster on this machine), and
//! its commits and WAL bytes over the whole run (logins included).
//! Everything shares this machine's cores: on one machine a second node
//! cannot add capacity, so the figure says what spreading a load over nodes
//! costs, not what a second machine would gain.

use std::path::Path;
use std::time::{Duration, Instant};

use tandem_storage::pg_test::TestDb;

use crate::b6::{self, cpu_s, Figures, NodeStore, Plan};
use crate::report::{Outcome, Row};
use crate::Scale;

const SCENARIO: &str = "relay capacity on two nodes, accounts × 4 devices";

/// What the database did over a whole run, from its own statistics.
#[derive(Debug, Clone, Copy, Default)]
struct DbStats {
    commits: u64,
    wal_bytes: u64,
    /// Transactions PostgreSQL aborted to break a deadlock.
    deadlocks: u64,
}

/// The throwaway (or given) PostgreSQL of the run, and the process ids
/// that make its cluster, when it runs on this machine.
struct Database {
    db: TestDb,
    postmaster: Option<u32>,
}

impl Database {
    fn create() -> Result<Database, String> {
        let db = TestDb::try_create()?;
        // The sync client runs a runtime of its own; this runs before and
        // after the load's runtime, never inside it.
        let mut client = postgres::Client::connect(db.url(), postgres::NoTls)
            .map_err(|e| format!("cannot connect to the bench database: {e}"))?;
        let backend: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .map_err(|e| e.to_string())?
            .get(0);
        let postmaster = u32::try_from(backend).ok().and_then(parent_of);
        Ok(Database { db, postmaster })
    }

    /// CPU seconds of the cluster's processes (the postmaster and its
    /// children) that are alive now; 0 for a server elsewhere.
    fn cpu_s(&self) -> f64 {
        let Some(postmaster) = self.postmaster else {
            return 0.0;
        };
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return 0.0;
        };
        let mut total = cpu_s(postmaster);
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if parent_of(pid) == Some(postmaster) {
                total += cpu_s(pid);
            }
        }
        total
    }

    fn stats(&self) -> anyhow::Result<DbStats> {
        let mut client = postgres::Client::connect(self.db.url(), postgres::NoTls)?;
        let row = client.query_one(
            "SELECT xact_commit, deadlocks, (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint
             FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )?;
        let count = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
        Ok(DbStats {
            commits: count(0),
            deadlocks: count(1),
            wal_bytes: count(2),
        })
    }
}

/// The parent process id of `pid`, from `/proc/<pid>/stat` (field 4).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

pub fn run(dir: &Path, scale: Scale) -> anyhow::Result<Outcome> {
    if scale.factor < b6::SCALE_MIN {
        return Ok(Outcome::NotRun(format!(
            "skipped at --scale {}: a capacity figure needs at least --scale {} \
             (quick: 50 accounts × 4 devices)",
            scale.factor,
            b6::SCALE_MIN
        )));
    }
    let database = match Database::create() {
        Ok(database) => database,
        Err(why) => return Ok(Outcome::NotRun(why)),
    };
    let plan = Plan {
        accounts: scale.n(2_500, 50, 1),
        window: if scale.quick {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(10)
        },
        origin: Instant::now(),
    };
    let url = database.db.url().to_owned();
    let before = database.stats()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let two_nodes = vec![NodeStore::Postgres(url.clone()), NodeStore::Postgres(url)];
    let db_cpu = || database.cpu_s();
    let mut nodes = runtime.block_on(b6::tandem_run_on(dir, plan, &two_nodes, &db_cpu))?;
    let after = database.stats()?;
    let sqlite_file = dir.join("b9-relay.db");
    crate::workload::remove_db(&sqlite_file);
    let mut single = runtime.block_on(b6::tandem_run_on(
        dir,
        plan,
        &[NodeStore::Sqlite(sqlite_file.clone())],
        &|| 0.0,
    ))?;
    crate::workload::remove_db(&sqlite_file);
    drop(runtime);
    let redis = match b6::redis_installed() {
        true => Some(b6::redis_run(dir, plan)?),
        false => None,
    };
    let spent = DbStats {
        commits: after.commits.saturating_sub(before.commits),
        wal_bytes: after.wal_bytes.saturating_sub(before.wal_bytes),
        deadlocks: after.deadlocks.saturating_sub(before.deadlocks),
    };
    Ok(Outcome::Rows(rows(
        plan,
        &mut nodes,
        &mut single,
        redis,
        spent,
    )))
}

fn rows(
    plan: Plan,
    nodes: &mut Figures,
    single: &mut Figures,
    mut redis: Option<Figures>,
    spent: DbStats,
) -> Vec<Row> {
    let per_delivery = |total: u64| match nodes.delivered {
        0 => 0.0,
        n => total as f64 / n as f64,
    };
    let mut note = format!(
        "{} accounts × 4 devices as B6, device d of account a on node (a + d) % 2. Database: \
         {:.2} commits and {:.0} WAL bytes per delivery over the whole run (logins included), \
         {} deadlocks; \
         server CPU includes the PostgreSQL cluster's processes. Everything shares this \
         machine's cores. {}; {}",
        plan.accounts,
        per_delivery(spent.commits),
        per_delivery(spent.wal_bytes),
        spent.deadlocks,
        nodes.summary("2 nodes on PostgreSQL"),
        single.summary("1 node on SQLite"),
    );
    match &redis {
        Some(r) => note.push_str(&format!("; {}", r.summary("Redis"))),
        None => note.push_str("; redis-server not installed, no Redis baseline"),
    }
    let rate = nodes.rate(plan);
    let mut rows = vec![Row::compare(
        "B9",
        SCENARIO,
        "deliveries/s sustained, 2 nodes on PostgreSQL",
        rate,
        "1 node on SQLite, same load",
        Some(single.rate(plan)),
        None,
        note,
    )];
    rows.push(Row::compare(
        "B9",
        SCENARIO,
        "deliveries/s sustained, 2 nodes on PostgreSQL",
        rate,
        match redis {
            Some(_) => "Redis Streams (XADD + XREAD BLOCK)",
            None => "Redis Streams: redis-server not installed",
        },
        redis.as_ref().map(|r| r.rate(plan)),
        None,
        "higher is better; the B6 baseline, run again here",
    ));
    rows.push(Row::compare(
        "B9",
        SCENARIO,
        "p99 ms push → receipt, 2 nodes on PostgreSQL",
        nodes.samples.percentile_ms(99.0),
        "1 node on SQLite, same load",
        Some(single.samples.percentile_ms(99.0)),
        None,
        format!(
            "p50 {:.2} ms on 2 nodes, {:.2} ms on 1 node{}",
            nodes.samples.percentile_ms(50.0),
            single.samples.percentile_ms(50.0),
            redis.as_mut().map_or(String::new(), |r| format!(
                ", {:.2} ms Redis (p99 {:.2} ms)",
                r.samples.percentile_ms(50.0),
                r.samples.percentile_ms(99.0)
            ))
        ),
    ));
    rows.push(Row::compare(
        "B9",
        SCENARIO,
        "server CPU ms per delivery, 2 nodes + PostgreSQL",
        nodes.cpu_ms_per_delivery(),
        "1 node on SQLite",
        Some(single.cpu_ms_per_delivery()),
        None,
        format!(
            "{:.1} CPU s in the window on 2 nodes + PostgreSQL, {:.1} s on 1 node{}",
            nodes.server_cpu_s,
            single.server_cpu_s,
            redis.as_ref().map_or(String::new(), |r| format!(
                ", {:.1} s Redis ({:.3} ms per delivery)",
                r.server_cpu_s,
                r.cpu_ms_per_delivery()
            ))
        ),
    ));
    rows
}
