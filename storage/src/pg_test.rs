//! A PostgreSQL for tests (feature `test-postgres`): one database of its
//! own per test, on the server named by `TANDEM_TEST_POSTGRES_URL` or on a
//! throwaway server this process starts and stops.
//!
//! ```text
//! let db = tandem_storage::pg_test::TestDb::create();   // fails the test if no PostgreSQL
//! let store = PostgresRelayStore::open(db.url())?;
//! ```
//!
//! - With [`URL_VAR`] set (CI's `.ci/run` sets it), every test database is
//!   created on that server, whose role must be allowed to
//!   `CREATE DATABASE`. The URL's own database is where that is done.
//! - Without it, the first test starts a PostgreSQL of its own: `initdb`
//!   and `pg_ctl` from `/usr/lib/postgresql/<version>/bin` (the highest
//!   version; 15 on the machine image) or from `PATH`, run as the
//!   `postgres` user when this process is root (initdb refuses root), in a
//!   temporary folder that user owns, listening on a free loopback port. A
//!   watchdog process stops it and removes the folder when this process
//!   ends, however it ends (also on a panic or a kill): it waits for the end
//!   of a pipe only this process holds.
//! - No PostgreSQL to be had is a failure with the reason, never a skip.
//!
//! Each [`TestDb`] is a fresh database (`CREATE DATABASE` with a unique
//! name), so tests run in parallel; it is dropped with the handle.
//!
//! A test that restarts the server ([`Cluster::restart`]) starts a
//! [`Cluster`] of its own, whatever [`URL_VAR`] says, so that the server
//! the other tests share is never stopped under them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable naming a server for the tests:
/// `postgresql://user[:password]@host:port/maintenance_db`.
pub const URL_VAR: &str = "TANDEM_TEST_POSTGRES_URL";

/// How long `pg_ctl` waits for the server to accept connections.
const START_TIMEOUT_S: u32 = 60;

/// Ports tried when a free port is taken between choosing and binding it.
const START_ATTEMPTS_MAX: u32 = 3;

/// A database of its own for one test. Dropping it drops the database.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDb {
    /// A fresh, empty database. Panics (failing the test) with the reason
    /// when no PostgreSQL can be had.
    pub fn create() -> TestDb {
        TestDb::try_create().unwrap_or_else(|reason| panic!("{reason}"))
    }

    /// [`TestDb::create`], with the reason as an error instead of a panic
    /// (for a benchmark, which reports a scenario it cannot run).
    pub fn try_create() -> Result<TestDb, String> {
        let server = server().map_err(|reason| {
            format!(
                "this needs PostgreSQL and has none: {reason}\n\
                 Set {URL_VAR} to a server whose role may CREATE DATABASE, \
                 or install PostgreSQL's server (initdb, pg_ctl) so one is started."
            )
        })?;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "tandem_test_{}_{}_{}",
            std::process::id(),
            server.started_ns,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let url = with_dbname(&server.admin_url, &name).map_err(|r| format!("{URL_VAR}: {r}"))?;
        let mut admin =
            postgres::Client::connect(&server.admin_url, postgres::NoTls).map_err(|e| {
                format!(
                    "cannot connect to PostgreSQL at {}: {}",
                    server.admin_url,
                    why(&e)
                )
            })?;
        // The name is ours: digits, lower-case letters and underscores.
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(|e| format!("cannot create the database {name}: {}", why(&e)))?;
        Ok(TestDb {
            name,
            url,
            admin_url: server.admin_url.clone(),
        })
    }

    /// The database's URL, for `PostgresRelayStore::open` or a relay's flag.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection to the server's maintenance database, for tests that
    /// act on this database from outside (end its connections, refuse new
    /// ones).
    pub fn admin(&self) -> postgres::Client {
        admin_client(&self.admin_url)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // FORCE ends connections a test left open. A failure leaves a
        // stray database on a server of the caller's, and is said so.
        let drop = postgres::Client::connect(&self.admin_url, postgres::NoTls).and_then(|mut c| {
            c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
        });
        if let Err(error) = drop {
            eprintln!("pg_test: could not drop {}: {}", self.name, why(&error));
        }
    }
}

fn admin_client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap_or_else(|e| {
        panic!(
            "cannot connect to the test PostgreSQL at {url}: {}",
            why(&e)
        )
    })
}

/// An error with its causes ("error connecting to server: Connection
/// refused"): the postgres crate's own message leaves the cause out.
fn why(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The server every test of this process uses.
struct Server {
    admin_url: String,
    /// Part of every database name, so that two runs on one server (one of
    /// them killed before it dropped its databases) never collide.
    started_ns: u128,
    /// The throwaway server, when this process started one; kept to the end
    /// of the process (its watchdog's pipe closes then).
    _cluster: Option<Cluster>,
}

fn server() -> Result<&'static Server, String> {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let started_ns = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() % 1_000_000_000_000);
            if let Ok(url) = std::env::var(URL_VAR) {
                postgres::Config::from_str(&url).map_err(|e| format!("{URL_VAR}={url}: {e}"))?;
                with_dbname(&url, "probe").map_err(|e| format!("{URL_VAR}: {e}"))?;
                return Ok(Server {
                    admin_url: url,
                    started_ns,
                    _cluster: None,
                });
            }
            let cluster = Cluster::start()?;
            Ok(Server {
                admin_url: cluster.url(),
                started_ns,
                _cluster: Some(cluster),
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// `url` with its database replaced by `db`. Only the URL form is accepted:
/// `postgres[ql]://authority[/db][?params]`.
fn with_dbname(url: &str, db: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
        .ok_or_else(|| format!("{url:?} is not a postgresql:// URL"))?;
    let scheme = &url[..url.len() - rest.len()];
    let (base, query) = match rest.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (rest, None),
    };
    let authority = base.split_once('/').map_or(base, |(a, _)| a);
    let mut out = format!("{scheme}{authority}/{db}");
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

/// A PostgreSQL server in a temporary folder, stopped by its watchdog when
/// this handle is dropped or this process ends. [`TestDb`] uses one shared
/// server; a test that must restart the server itself (what a relay does
/// when its database goes away and comes back) starts one of its own, so
/// the other tests' server is never touched.
pub struct Cluster {
    port: u16,
    as_root: bool,
    pg_ctl: PathBuf,
    data: PathBuf,
    log: PathBuf,
    /// The server options it was started with, for a restart.
    options: String,
    /// The watchdog; its stdin is the pipe whose end stops the server.
    _watchdog: Child,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("port", &self.port)
            .field("data", &self.data)
            .finish()
    }
}

impl Cluster {
    /// The URL of its `postgres` database (role `postgres`, no password):
    /// a database for a test, and the one to act on the server from.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server the way a crash does (`pg_ctl stop -m immediate`:
    /// every connection dropped at once, no shutdown checkpoint, WAL replay
    /// at the next start), keeps it down for `down`, and starts it again on
    /// the same port and folder. Clients see connections ended and refused,
    /// then a server with every committed transaction.
    pub fn restart(&self, down: std::time::Duration) -> Result<(), String> {
        run(as_owner(self.as_root, &self.pg_ctl)
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]))?;
        std::thread::sleep(down);
        self.pg_ctl_start()
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        run(as_owner(self.as_root, &self.pg_ctl)
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args([
                "-w",
                "-t",
                &START_TIMEOUT_S.to_string(),
                "-s",
                "-o",
                &self.options,
            ])
            .arg("start"))
        .map(drop)
        .map_err(|error| {
            let tail = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            format!("{error}; server log: {}", tail.join(" / "))
        })
    }

    /// A new server in a temporary folder, on a free loopback port.
    pub fn start() -> Result<Cluster, String> {
        let bin = find_bin_dir()?;
        let (initdb, pg_ctl) = (bin.join("initdb"), bin.join("pg_ctl"));
        let as_root = is_root();
        let tmp = if as_root {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = PathBuf::from(
            run(as_owner(as_root, Path::new("mktemp"))
                .arg("-d")
                .arg(tmp.join("tandem-pg.XXXXXX")))?
            .trim(),
        );
        let data = dir.join("data");
        // From here on the watchdog owns the folder's removal, whatever
        // happens next.
        let watchdog = spawn_watchdog(as_root, &pg_ctl, &data, &dir)?;
        run(as_owner(as_root, &initdb).arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "-N",
        ]))?;
        let mut cluster = Cluster {
            port: 0,
            as_root,
            pg_ctl,
            data,
            log: dir.join("server.log"),
            options: String::new(),
            _watchdog: watchdog,
        };
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS_MAX {
            cluster.port = free_port()?;
            // fsync off: a throwaway server for tests needs no durability
            // against a machine crash (a server crash loses nothing), and
            // the tests run faster.
            cluster.options = format!(
                "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off \
                 -c full_page_writes=off -c max_connections=200",
                cluster.port,
                dir.display()
            );
            match cluster.pg_ctl_start() {
                Ok(()) => return Ok(cluster),
                Err(error) => last_error = error,
            }
        }
        Err(format!("PostgreSQL did not start: {last_error}"))
    }
}

/// The folder holding `initdb` and `pg_ctl`: the highest version under
/// `/usr/lib/postgresql`, else `PATH`.
fn find_bin_dir() -> Result<PathBuf, String> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_both(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| has_both(dir))
        .ok_or_else(|| "no initdb and pg_ctl under /usr/lib/postgresql/*/bin or on PATH".into())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// `program` run as the `postgres` user when this process is root.
fn as_owner(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Runs a command to its end; its stdout, or why it failed.
fn run(command: &mut Command) -> Result<String, String> {
    let what = format!("{command:?}");
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A process that waits for its stdin to close (this process ending, in
/// whatever way), then stops the server and removes its folder. It runs as
/// this process's user and ignores the terminal's signals, so that Ctrl-C
/// on the tests still cleans up (`runuser` would pass the signal on).
fn spawn_watchdog(as_root: bool, pg_ctl: &Path, data: &Path, dir: &Path) -> Result<Child, String> {
    let script = r#"trap '' INT TERM HUP; cat >/dev/null; dir=$1; shift; "$@" >/dev/null 2>&1; rm -rf "$dir""#;
    let mut stop = as_owner(as_root, pg_ctl);
    stop.arg("-D")
        .arg(data)
        .args(["-m", "immediate", "-w", "stop"]);
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(dir)
        .arg(stop.get_program())
        .args(stop.get_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the PostgreSQL watchdog: {e}"))?;
    // Nothing is ever written to its stdin: only the pipe's end matters.
    Ok(child)
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_replaced_and_parameters_kept() {
        let cases = [
            ("postgresql://u@h:1/postgres", "postgresql://u@h:1/t"),
            ("postgres://u:p@h:1", "postgres://u:p@h:1/t"),
            (
                "postgresql://h/db?sslmode=disable",
                "postgresql://h/t?sslmode=disable",
            ),
            ("postgresql://h?x=1", "postgresql://h/t?x=1"),
        ];
        for (url, expected) in cases {
            assert_eq!(with_dbname(url, "t").unwrap(), expected);
        }
        assert!(with_dbname("host=h dbname=d", "t").is_err());
    }

    #[test]
    fn test_databases_are_separate_and_dropped() {
        let (one, two) = (TestDb::create(), TestDb::create());
        assert_ne!(one.name(), two.name());
        let mut c = postgres::Client::connect(one.url(), postgres::NoTls).unwrap();
        c.batch_execute("CREATE TABLE t (x INT)").unwrap();
        let mut c2 = postgres::Client::connect(two.url(), postgres::NoTls).unwrap();
        let tables: i64 = c2
            .query_one("SELECT count(*) FROM pg_tables WHERE tablename = 't'", &[])
            .unwrap()
            .get(0);
        assert_eq!(tables, 0);
        let name = one.name().to_owned();
        let mut admin = one.admin();
        drop(c);
        drop(one);
        let left: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname = $1",
                &[&name],
            )
            .unwrap()
            .get(0);
        assert_eq!(left, 0);
    }
}
