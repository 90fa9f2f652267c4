//! B6: relay capacity.
//!
//! `accounts` accounts of four devices each, every device connected at once
//! over loopback TCP. Per account one device pushes an opaque delta (200 to
//! 400 bytes, its send time inside) at a fixed pace and waits for the ack
//! before the next; the other three receive it live. Throughput is the
//! deliveries received inside the window, per second; latency runs from
//! the push to each receipt.
//!
//! The relay runs in a child process of this binary (`tandem-bench relay`),
//! served by `tandem_relay::process::run` with the config `tandem relay`
//! builds (SQLite store, WAL, `synchronous=FULL`: a delta is on disk before
//! its ack), so the relay measured is the product's and the RSS read from
//! `/proc/<pid>/status` is the relay's alone. The devices are raw
//! transport sessions in this process, not engines: 10,000 device stores
//! would measure the disk, not the relay.
//!
//! The baseline, right after in the same run: `redis-server` as a child
//! (`appendonly yes`, `appendfsync always`, no snapshots, so an XADD reply
//! also means "on disk"), the same fan-out shape: per account one
//! connection XADDs each delta to the account's stream and waits for the
//! reply, three connections each loop on `XREAD BLOCK`. Same payloads, pace
//! and window. The clients are the `redis` crate's sync API as a user would
//! write them: a blocking connection per thread (a blocked `XREAD` holds
//! its thread), `TCP_NODELAY` on. When `redis-server` is not on PATH the
//! baseline is reported as not installed.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use redis::IntoConnectionInfo;
use tandem_relay::{RelayConfig, StoreLocation};
use tandem_transport::client::ClientConfig;
use tandem_transport::driver::{tcp, Connection};
use tandem_transport::WireDelta;
use tandem_transport::{AccountId, DeviceId, DeviceKey, Platform, SessionEvent};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::report::{Outcome, Row};
use crate::stats::Samples;
use crate::workload::{remove_db, Rng};
use crate::Scale;

const SCENARIO: &str = "relay capacity, accounts × 4 devices";
pub(crate) const DEVICES_PER_ACCOUNT: usize = 4;
/// Below this `--scale` B6 does not run: a handful of connections says
/// nothing about capacity, and the test suite's tiny scale must stay fast.
pub(crate) const SCALE_MIN: f64 = 0.25;
/// Deltas each account's pusher sends per second.
pub(crate) const PUSHES_PER_ACCOUNT_PER_S: f64 = 12.0;
/// Connection attempts in flight at once (the waves).
const CONNECTS_IN_FLIGHT_MAX: usize = 200;
/// Tries per connection before it counts as not reached.
const CONNECT_ATTEMPTS: usize = 3;
/// How long one connection (TCP plus login, every attempt) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting every device may take in all; connections not
/// made by then count as not reached.
const CONNECT_PHASE_MAX: Duration = Duration::from_secs(60);
/// How long a push (or an XADD) may wait for its ack.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to start listening.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(10);
/// From the last connection to the first push.
const START_DELAY: Duration = Duration::from_millis(500);
/// After the window, how long receivers keep reading stragglers.
const DRAIN: Duration = Duration::from_secs(2);
pub(crate) const PAYLOAD_BYTES_MIN: usize = 200;
pub(crate) const PAYLOAD_BYTES_MAX: usize = 400;
/// `XREAD` arguments: entries per reply and how long one call blocks.
const REDIS_READ_COUNT: usize = 256;
const REDIS_BLOCK_MS: u64 = 500;
/// The stack of each Redis client thread (one per connection): it holds a
/// connection and a parsed reply, and 10,000 threads at the default 2 MiB
/// would reserve 20 GiB of address space.
const REDIS_CLIENT_STACK_BYTES: usize = 256 * 1024;

pub fn run(dir: &Path, scale: Scale) -> anyhow::Result<Outcome> {
    if scale.factor < SCALE_MIN {
        return Ok(Outcome::NotRun(format!(
            "skipped at --scale {}: a capacity figure needs at least --scale {SCALE_MIN} \
             (quick: 50 accounts × 4 devices)",
            scale.factor
        )));
    }
    let plan = Plan {
        accounts: scale.n(2_500, 50, 1),
        window: if scale.quick {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(10)
        },
        origin: Instant::now(),
    };
    let redis_installed = redis_installed();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut tandem = runtime.block_on(tandem_run(dir, plan))?;
    drop(runtime);
    let redis = match redis_installed {
        true => Some(redis_run(dir, plan)?),
        false => None,
    };
    Ok(Outcome::Rows(rows(plan, &mut tandem, redis)))
}

/// Whether `redis-server` is on PATH.
pub(crate) fn redis_installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn rows(plan: Plan, tandem: &mut Figures, mut redis: Option<Figures>) -> Vec<Row> {
    let window_s = plan.window.as_secs_f64();
    let throughput = |f: &Figures| f.rate(plan);
    let have_redis = redis.is_some();
    let baseline = |what: &str| match have_redis {
        true => format!("Redis Streams {what}"),
        false => "Redis Streams: redis-server not installed".into(),
    };
    let tandem_rate = throughput(tandem);
    let redis_rate = redis.as_ref().map(throughput);
    let ratio = redis_rate.filter(|r| *r > 0.0).map(|r| tandem_rate / r);
    let offered = plan.accounts as f64 * PUSHES_PER_ACCOUNT_PER_S * 3.0;
    let side = |name: &str, f: &Figures| f.summary(name);
    let mut note = format!(
        "{} accounts × 4 devices, 1 pusher at {PUSHES_PER_ACCOUNT_PER_S}/s (waits for each ack) + 3 \
         receivers per account, {PAYLOAD_BYTES_MIN}–{PAYLOAD_BYTES_MAX} B deltas, {window_s:.0} s window, \
         {offered:.0} deliveries/s offered. Relay: child `tandem-bench relay` (the config and runtime of `tandem relay`), SQLite WAL synchronous=FULL. \
         Redis: appendonly yes, appendfsync always, no RDB, driven by the redis crate's sync API (a \
         thread per connection, TCP_NODELAY). Clients live in the bench process and share the cores \
         with the server. {}",
        plan.accounts,
        side("Tandem", tandem)
    );
    match &redis {
        Some(r) => note.push_str(&format!("; {}", side("Redis", r))),
        None => note.push_str("; redis-server not installed, no baseline"),
    }
    let throughput_row = Row {
        id: "B6".into(),
        scenario: SCENARIO.into(),
        metric: "deliveries/s sustained".into(),
        tandem: Some(tandem_rate),
        baseline: baseline("(XADD + XREAD BLOCK)"),
        baseline_value: redis_rate,
        ratio,
        target: "≥ 1×".into(),
        met: ratio.map(|r| r >= 1.0),
        note,
        error: None,
    };
    let p99_note = format!(
        "p50 {:.2} ms Tandem{}",
        tandem.samples.percentile_ms(50.0),
        redis.as_mut().map_or(String::new(), |r| format!(
            ", {:.2} ms Redis",
            r.samples.percentile_ms(50.0)
        ))
    );
    let p99_row = Row::compare(
        "B6",
        SCENARIO,
        "p99 ms push → receipt",
        tandem.samples.percentile_ms(99.0),
        &baseline("p99"),
        redis.as_mut().map(|r| r.samples.percentile_ms(99.0)),
        None,
        p99_note,
    );
    let rss_note = format!(
        "VmHWM of the server process; VmRSS after the window {:.0} MiB Tandem{}",
        tandem.rss_end_mib,
        redis.as_ref().map_or(String::new(), |r| format!(
            ", {:.0} MiB Redis",
            r.rss_end_mib
        ))
    );
    let rss_row = Row::compare(
        "B6",
        SCENARIO,
        "server peak RSS MiB",
        tandem.rss_peak_mib,
        &baseline("peak RSS"),
        redis.as_ref().map(|r| r.rss_peak_mib),
        None,
        rss_note,
    );
    vec![throughput_row, p99_row, rss_row]
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub accounts: usize,
    pub window: Duration,
    /// The clock every send time is measured from.
    pub origin: Instant,
}

impl Plan {
    fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / PUSHES_PER_ACCOUNT_PER_S)
    }

    /// When account `a` pushes its `i`-th delta: accounts are spread evenly
    /// over one interval so the load is smooth.
    fn push_at(&self, start: Instant, a: usize, i: u32) -> Instant {
        let phase = self.interval().mul_f64(a as f64 / self.accounts as f64);
        start + phase + self.interval() * i
    }
}

/// What one side measured.
#[derive(Debug, Default)]
pub(crate) struct Figures {
    pub wanted: usize,
    pub connected: usize,
    pub connect_s: f64,
    pub pushed: usize,
    /// Pushed deltas times the receivers of their account that connected.
    pub expected: usize,
    pub delivered: usize,
    pub delivered_in_window: usize,
    pub pull_needed: usize,
    pub samples: Samples,
    pub rss_peak_mib: f64,
    pub rss_end_mib: f64,
    /// CPU seconds the server side (relay nodes, and a database server
    /// when there is one; redis-server) used inside the window.
    pub server_cpu_s: f64,
}

impl Figures {
    /// Deliveries received inside the window, per second of it.
    pub fn rate(&self, plan: Plan) -> f64 {
        self.delivered_in_window as f64 / plan.window.as_secs_f64()
    }

    /// The server side's CPU ms per delivery inside the window.
    pub fn cpu_ms_per_delivery(&self) -> f64 {
        match self.delivered_in_window {
            0 => 0.0,
            n => self.server_cpu_s * 1e3 / n as f64,
        }
    }

    /// One line for a row's note: how far the run got.
    pub fn summary(&self, name: &str) -> String {
        format!(
            "{name}: {}/{} connected in {:.1} s, {} pushed, {} of {} deliveries ({} in the window), \
             {} PullNeeded, server CPU {:.2} ms/delivery",
            self.connected,
            self.wanted,
            self.connect_s,
            self.pushed,
            self.delivered,
            self.expected,
            self.delivered_in_window,
            self.pull_needed,
            self.cpu_ms_per_delivery()
        )
    }
}

/// What one receiver saw.
#[derive(Debug, Default)]
struct Tally {
    latencies: Vec<Duration>,
    in_window: usize,
    pull_needed: usize,
}

impl Tally {
    fn record(&mut self, bytes: &[u8], origin: Instant, start: Instant, end: Instant) {
        let at = Instant::now();
        let Some(sent_ns) = bytes.get(..8) else {
            return;
        };
        let sent_ns = u64::from_le_bytes(sent_ns.try_into().expect("8 bytes"));
        let sent = origin + Duration::from_nanos(sent_ns);
        self.latencies.push(at.saturating_duration_since(sent));
        if at >= start && at <= end {
            self.in_window += 1;
        }
    }
}

/// One delta: send time (ns since `origin`), account, index, then filler.
fn payload(rng: &mut Rng, origin: Instant, account: usize, index: u32) -> Vec<u8> {
    let len = rng.range(PAYLOAD_BYTES_MIN, PAYLOAD_BYTES_MAX);
    let mut bytes = Vec::with_capacity(len + 8);
    bytes.extend_from_slice(&(origin.elapsed().as_nanos() as u64).to_le_bytes());
    bytes.extend_from_slice(&(account as u32).to_le_bytes());
    bytes.extend_from_slice(&index.to_le_bytes());
    while bytes.len() < len {
        bytes.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// A child process killed (and reaped) when dropped, whatever happened.
struct ChildGuard(Child);

impl ChildGuard {
    /// (VmHWM, VmRSS) of the child in MiB; 0 where /proc is missing.
    fn rss_mib(&self) -> (f64, f64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .map_or(0.0, |kib| kib / 1024.0)
        };
        (field("VmHWM"), field("VmRSS"))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `connect` for every slot, at most [`CONNECTS_IN_FLIGHT_MAX`] at
/// once, each bounded by [`CONNECT_TIMEOUT`] and all by
/// [`CONNECT_PHASE_MAX`]; a failed slot is `None`.
async fn connect_all<C, F, Fut>(slots: usize, connect: F) -> Vec<Option<C>>
where
    C: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Option<C>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(CONNECTS_IN_FLIGHT_MAX));
    let phase_deadline = tokio::time::Instant::now() + CONNECT_PHASE_MAX;
    let mut tasks = Vec::with_capacity(slots);
    for slot in 0..slots {
        let attempt = connect(slot);
        let permits = permits.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = tokio::time::timeout_at(phase_deadline, permits.acquire_owned())
                .await
                .ok()?
                .ok()?;
            let deadline = phase_deadline.min(tokio::time::Instant::now() + CONNECT_TIMEOUT);
            tokio::time::timeout_at(deadline, attempt)
                .await
                .ok()
                .flatten()
        }));
    }
    let mut out = Vec::with_capacity(slots);
    for task in tasks {
        out.push(task.await.ok().flatten());
    }
    out
}

/// What one account's clients did: how many deltas its pusher had
/// acknowledged, and what each receiver that connected saw.
type AccountResult = (usize, Vec<Tally>);

/// Sums every account's counts and tallies (the same for both servers)
/// into `figures`.
fn add_up(figures: &mut Figures, accounts: Vec<AccountResult>) {
    for (pushed, tallies) in accounts {
        figures.pushed += pushed;
        figures.expected += pushed * tallies.len();
        for tally in tallies {
            figures.delivered += tally.latencies.len();
            figures.delivered_in_window += tally.in_window;
            figures.pull_needed += tally.pull_needed;
            for latency in tally.latencies {
                figures.samples.push(latency);
            }
        }
    }
}

/// Where one relay node of a run keeps its state.
#[derive(Debug, Clone)]
pub(crate) enum NodeStore {
    /// A SQLite file of its own.
    Sqlite(PathBuf),
    /// A PostgreSQL database, shared by every node given the same URL.
    Postgres(String),
}

/// A relay child of this binary, its address, and its CPU clock.
struct Node {
    child: ChildGuard,
    addr: SocketAddr,
}

/// Starts a relay child on `store` and waits for its address.
async fn start_node(
    store: &NodeStore,
    secret_file: &Path,
    log: std::fs::File,
    connections_max: usize,
) -> anyhow::Result<Node> {
    let exe = std::env::current_exe().context("finding the tandem-bench binary")?;
    let mut command = Command::new(exe);
    command.arg("relay");
    match store {
        NodeStore::Sqlite(path) => command.arg("--data").arg(path),
        NodeStore::Postgres(url) => command.arg("--postgres").arg(url),
    };
    let mut child = ChildGuard(
        command
            .arg("--secret-file")
            .arg(secret_file)
            .args(["--max-devices", &DEVICES_PER_ACCOUNT.to_string()])
            .args(["--max-connections", &connections_max.to_string()])
            // Held open by the guard: the relay stops when it closes, so
            // it cannot outlive a bench that died.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("starting the relay process")?,
    );
    let stdout = child.0.stdout.take().context("the relay's stdout")?;
    let line = tokio::time::timeout(
        SERVER_START_TIMEOUT,
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .map(|_| line)
        }),
    )
    .await
    .context("the relay did not start in time")???;
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .with_context(|| format!("unexpected relay output {line:?}"))?
        .parse()?;
    Ok(Node { child, addr })
}

/// CPU seconds (user and system) a process has used, from
/// `/proc/<pid>/stat` (in USER_HZ, 100 a second on Linux); 0 when it
/// cannot be read.
pub(crate) fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command, which is in parentheses and may hold
    // spaces: state is field 3, utime 14, stime 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A one-device-per-slot run against one relay on SQLite: B6's load.
async fn tandem_run(dir: &Path, plan: Plan) -> anyhow::Result<Figures> {
    let db = dir.join("b6-relay.db");
    remove_db(&db);
    let figures = tandem_run_on(dir, plan, &[NodeStore::Sqlite(db.clone())], &|| 0.0).await;
    remove_db(&db);
    figures
}

/// B6's load against one relay node per store in `stores`: device `d` of
/// account `a` connects to node `(a + d) % nodes`, so with several nodes
/// each account's devices are spread over them and every delivery that
/// crosses nodes goes through the shared store. `extra_cpu_s` is read at
/// the window's start and end and adds the CPU of what else serves the
/// load (a database server).
pub(crate) async fn tandem_run_on(
    dir: &Path,
    plan: Plan,
    stores: &[NodeStore],
    extra_cpu_s: &(dyn Fn() -> f64 + Sync),
) -> anyhow::Result<Figures> {
    anyhow::ensure!(!stores.is_empty(), "a run needs a relay node");
    let wanted = plan.accounts * DEVICES_PER_ACCOUNT;
    let secret_file = dir.join("b6-relay.secret");
    let _ = std::fs::remove_file(&secret_file);
    let secret = tandem_relay::secret::load_or_create(&secret_file)?;
    let mut nodes = Vec::with_capacity(stores.len());
    for (i, store) in stores.iter().enumerate() {
        let log = std::fs::File::create(dir.join(format!("b6-relay-{i}.log")))?;
        nodes.push(start_node(store, &secret_file, log, wanted + 100).await?);
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();

    // One single-use login token per device: each enrolls its own key.
    let tokens: Vec<(AccountId, String)> = (0..wanted)
        .map(|slot| {
            let account = AccountId::new(format!("b6-{}", slot / DEVICES_PER_ACCOUNT))
                .expect("a valid account");
            let token = tandem_relay::harness::login_token(
                &secret,
                &account,
                tandem_relay::token::Purpose::Login,
                3_600,
            );
            (account, token)
        })
        .collect();
    let connecting = Instant::now();
    let conns = connect_all(wanted, |slot| {
        let (account, token) = tokens[slot].clone();
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&(slot as u64).to_le_bytes());
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&(slot as u64).to_le_bytes());
        let config = ClientConfig::new(
            account,
            DeviceId(id),
            format!("b6 device {}", slot % DEVICES_PER_ACCOUNT),
            Platform::Linux,
            DeviceKey::from_seed(&seed),
        )
        .with_login_token(token);
        let (a, d) = (slot / DEVICES_PER_ACCOUNT, slot % DEVICES_PER_ACCOUNT);
        let addr = addrs[(a + d) % addrs.len()];
        async move {
            for _ in 0..CONNECT_ATTEMPTS {
                let Ok(mut conn) = tcp::connect(addr, config.clone()).await else {
                    continue;
                };
                loop {
                    match conn.next_event().await {
                        Ok(Some(SessionEvent::Connected(_))) => return Some(conn),
                        Ok(Some(SessionEvent::Closed(_)) | None) | Err(_) => break,
                        Ok(Some(_)) => {}
                    }
                }
            }
            None
        }
    })
    .await;
    let mut figures = Figures {
        wanted,
        connected: conns.iter().filter(|c| c.is_some()).count(),
        connect_s: connecting.elapsed().as_secs_f64(),
        ..Figures::default()
    };

    let start = Instant::now() + START_DELAY;
    let end = start + plan.window;
    let stop = end + DRAIN;
    let mut conns = conns.into_iter();
    let mut accounts = Vec::with_capacity(plan.accounts);
    for a in 0..plan.accounts {
        let pusher = conns
            .next()
            .flatten()
            .map(|conn| tokio::spawn(tandem_pusher(conn, plan, a, start, end, stop)));
        let receivers: Vec<_> = (1..DEVICES_PER_ACCOUNT)
            .filter_map(|_| conns.next().flatten())
            .map(|conn| tokio::spawn(tandem_receiver(conn, plan.origin, start, end, stop)))
            .collect();
        accounts.push((pusher, receivers));
    }
    // The servers' CPU over the window: read at its start and its end.
    let server_cpu_s = || nodes.iter().map(|n| cpu_s(n.child.0.id())).sum::<f64>() + extra_cpu_s();
    tokio::time::sleep_until(start.into()).await;
    let cpu_at_start = server_cpu_s();
    tokio::time::sleep_until(end.into()).await;
    figures.server_cpu_s = server_cpu_s() - cpu_at_start;
    let mut results = Vec::with_capacity(accounts.len());
    for (pusher, receivers) in accounts {
        let pushed = match pusher {
            Some(p) => p.await.unwrap_or(0),
            None => 0,
        };
        let mut tallies = Vec::with_capacity(receivers.len());
        for r in receivers {
            tallies.push(r.await.unwrap_or_default());
        }
        results.push((pushed, tallies));
    }
    add_up(&mut figures, results);
    // The nodes' peaks summed: what the relay tier holds in memory.
    for node in &nodes {
        let (peak, end) = node.child.rss_mib();
        figures.rss_peak_mib += peak;
        figures.rss_end_mib += end;
    }
    drop(nodes);
    let _ = std::fs::remove_file(&secret_file);
    Ok(figures)
}

/// The relay process B6 measures: what `tandem relay --listen 127.0.0.1:0
/// --log warn` takes, less what B6 does not vary.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("store").required(true).args(["data", "postgres"])))]
pub struct RelayArgs {
    /// The relay's SQLite file.
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// A PostgreSQL database instead (B9's nodes share one).
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// The token secret (as `tandem relay --secret-file`).
    #[arg(long, value_name = "FILE")]
    secret_file: PathBuf,
    /// Devices of one account online at once.
    #[arg(long)]
    max_devices: usize,
    /// Connections served at once.
    #[arg(long)]
    max_connections: usize,
}

/// The body of the relay process: the config `tandem relay` builds from
/// the same flags, served by the same `process::run`, with the same log
/// subscriber at `warn`; prints `listening on ADDR` like it, and stops when
/// standard input closes.
pub fn relay_child(args: RelayArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .init();
    let secret = tandem_relay::secret::load_or_create(&args.secret_file)
        .with_context(|| format!("secret file {}", args.secret_file.display()))?;
    let store = match (args.data, args.postgres) {
        (Some(path), _) => StoreLocation::Sqlite(path),
        (None, Some(url)) => StoreLocation::Postgres(url),
        (None, None) => anyhow::bail!("a relay needs --data or --postgres"),
    };
    let mut config = RelayConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), store, secret);
    config.devices_online_max = args.max_devices;
    config.connections_max = args.max_connections;
    // Every client of the load comes from 127.0.0.1, as a fleet of phones
    // never would: the per-address cap on logins in progress (there to
    // stop one host from taking every handshake slot) would refuse the
    // bench's own waves and turn them into retries. The relay-wide cap
    // (handshakes_max) still holds.
    config.handshakes_per_address_max = config.handshakes_max;
    tandem_relay::process::run(
        config,
        |addrs| println!("listening on {}", addrs.tcp),
        async {
            let _ = tokio::task::spawn_blocking(|| {
                std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())
            })
            .await;
        },
    )?;
    Ok(())
}

/// Pushes one delta per interval inside the window, each after the last
/// one's ack; returns how many were acknowledged. Holds the connection
/// until `stop` so no logout disturbs the receivers.
async fn tandem_pusher(
    mut conn: Connection<TcpStream>,
    plan: Plan,
    a: usize,
    start: Instant,
    end: Instant,
    stop: Instant,
) -> usize {
    let mut rng = Rng::new(0xB6_0000 + a as u64);
    let mut pushed = 0;
    for i in 0u32.. {
        let at = plan.push_at(start, a, i);
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        let delta = WireDelta::new(payload(&mut rng, plan.origin, a, i));
        if conn.session().push(vec![delta]).is_err() {
            break;
        }
        let acked = tokio::time::timeout(REPLY_TIMEOUT, async {
            loop {
                match conn.next_event().await {
                    Ok(Some(SessionEvent::PushAcked(_))) => return true,
                    Ok(Some(SessionEvent::Closed(_)) | None) | Err(_) => return false,
                    Ok(Some(_)) => {}
                }
            }
        })
        .await;
        if acked != Ok(true) {
            break;
        }
        pushed += 1;
    }
    tokio::time::sleep_until(stop.into()).await;
    pushed
}

/// Reads live deltas until `stop`.
async fn tandem_receiver(
    mut conn: Connection<TcpStream>,
    origin: Instant,
    start: Instant,
    end: Instant,
    stop: Instant,
) -> Tally {
    let mut tally = Tally::default();
    while let Ok(event) = tokio::time::timeout_at(stop.into(), conn.next_event()).await {
        match event {
            Ok(Some(SessionEvent::Live(delta))) => tally.record(&delta.bytes, origin, start, end),
            Ok(Some(SessionEvent::PullNeeded)) => tally.pull_needed += 1,
            Ok(Some(SessionEvent::Closed(_)) | None) | Err(_) => break,
            Ok(Some(_)) => {}
        }
    }
    tally
}

pub(crate) fn redis_run(dir: &Path, plan: Plan) -> anyhow::Result<Figures> {
    let wanted = plan.accounts * DEVICES_PER_ACCOUNT;
    // `--port 0` is not valid for redis-server: take a free port from the
    // kernel and hand it over.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let data = dir.join("b6-redis");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data)?;
    // redis-server changes into --dir before it opens --logfile, so a
    // relative bench folder must become absolute.
    let data = std::fs::canonicalize(&data)?;
    let server = ChildGuard(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args(["--maxclients", &(wanted + 100).to_string()])
            .args(["--protected-mode", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&data)
            .arg("--logfile")
            .arg(data.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server")?,
    );
    let info = format!("redis://127.0.0.1:{port}/")
        .into_connection_info()?
        .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
    let client = redis::Client::open(info)?;
    let deadline = Instant::now() + SERVER_START_TIMEOUT;
    loop {
        let pong = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn));
        if pong.is_ok_and(|p| p == "PONG") {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let connecting = Instant::now();
    let conns = connect_all_blocking(wanted, |budget| {
        let deadline = Instant::now() + budget;
        for _ in 0..CONNECT_ATTEMPTS {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if let Ok(conn) = client.get_connection_with_timeout(left) {
                return Some(conn);
            }
        }
        None
    });
    let mut figures = Figures {
        wanted,
        connected: conns.iter().filter(|c| c.is_some()).count(),
        connect_s: connecting.elapsed().as_secs_f64(),
        ..Figures::default()
    };

    // Every client thread is started first and waits at the gate, so that
    // starting 10,000 threads does not eat into the window.
    let gate: Gate = Arc::new((Mutex::new(None), Condvar::new()));
    let mut conns = conns.into_iter();
    let mut accounts = Vec::with_capacity(plan.accounts);
    let mut spawned = Ok(());
    for a in 0..plan.accounts {
        let key = format!("b6:{a}");
        let writer = conns.next().flatten().and_then(|conn| {
            let (gate, key) = (gate.clone(), key.clone());
            spawn_client(&mut spawned, move || {
                let window = wait_at(&gate);
                redis_writer(conn, &key, plan, a, window)
            })
        });
        let readers: Vec<_> = (1..DEVICES_PER_ACCOUNT)
            .filter_map(|_| conns.next().flatten())
            .filter_map(|conn| {
                let (gate, key) = (gate.clone(), key.clone());
                spawn_client(&mut spawned, move || {
                    let window = wait_at(&gate);
                    redis_reader(conn, &key, plan.origin, window)
                })
            })
            .collect();
        accounts.push((writer, readers));
    }
    let start = Instant::now() + START_DELAY;
    let end = match spawned {
        Ok(()) => start + plan.window,
        // Let the threads that did start end at once, then report.
        Err(_) => start,
    };
    let window = Window {
        start,
        end,
        stop: end + DRAIN,
    };
    *gate.0.lock().expect("not poisoned") = Some(window);
    gate.1.notify_all();
    std::thread::sleep(start.saturating_duration_since(Instant::now()));
    let cpu_at_start = cpu_s(server.0.id());
    std::thread::sleep(end.saturating_duration_since(Instant::now()));
    figures.server_cpu_s = cpu_s(server.0.id()) - cpu_at_start;
    let mut results = Vec::with_capacity(accounts.len());
    for (writer, readers) in accounts {
        let pushed = writer.map_or(0, |w| w.join().unwrap_or(0));
        let tallies = readers
            .into_iter()
            .map(|r| r.join().unwrap_or_default())
            .collect();
        results.push((pushed, tallies));
    }
    spawned.context("starting the Redis client threads")?;
    add_up(&mut figures, results);
    (figures.rss_peak_mib, figures.rss_end_mib) = server.rss_mib();
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
    Ok(figures)
}

/// When the load runs: pushes inside `start..end`, receivers read until
/// `stop`.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
    stop: Instant,
}

/// Where client threads wait until the window is known.
type Gate = Arc<(Mutex<Option<Window>>, Condvar)>;

fn wait_at(gate: &Gate) -> Window {
    let (window, opened) = &**gate;
    let window = opened
        .wait_while(window.lock().expect("not poisoned"), |w| w.is_none())
        .expect("not poisoned");
    window.expect("the gate opens with a window")
}

/// Starts one client thread; after the first failure (the process is out
/// of threads) it starts no more and keeps that error in `spawned`.
fn spawn_client<T: Send + 'static>(
    spawned: &mut std::io::Result<()>,
    body: impl FnOnce() -> T + Send + 'static,
) -> Option<std::thread::JoinHandle<T>> {
    if spawned.is_err() {
        return None;
    }
    match std::thread::Builder::new()
        .stack_size(REDIS_CLIENT_STACK_BYTES)
        .spawn(body)
    {
        Ok(handle) => Some(handle),
        Err(e) => {
            *spawned = Err(e);
            None
        }
    }
}

/// Makes a connection for every slot on [`CONNECTS_IN_FLIGHT_MAX`]
/// threads, each slot within [`CONNECT_TIMEOUT`] (the budget `connect` is
/// given) and all within [`CONNECT_PHASE_MAX`]; a failed slot is `None`.
fn connect_all_blocking<C: Send>(
    slots: usize,
    connect: impl Fn(Duration) -> Option<C> + Sync,
) -> Vec<Option<C>> {
    let phase_deadline = Instant::now() + CONNECT_PHASE_MAX;
    let next = AtomicUsize::new(0);
    let out: Vec<Mutex<Option<C>>> = (0..slots).map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..CONNECTS_IN_FLIGHT_MAX.min(slots) {
            scope.spawn(|| loop {
                let slot = next.fetch_add(1, Ordering::Relaxed);
                if slot >= slots {
                    return;
                }
                let left = phase_deadline.saturating_duration_since(Instant::now());
                if !left.is_zero() {
                    *out[slot].lock().expect("not poisoned") = connect(left.min(CONNECT_TIMEOUT));
                }
            });
        }
    });
    out.into_iter()
        .map(|slot| slot.into_inner().expect("not poisoned"))
        .collect()
}

/// XADDs one delta per interval inside the window, each after the last
/// one's reply; returns how many were stored.
fn redis_writer(
    mut conn: redis::Connection,
    key: &str,
    plan: Plan,
    a: usize,
    window: Window,
) -> usize {
    if conn.set_read_timeout(Some(REPLY_TIMEOUT)).is_err() {
        return 0;
    }
    let mut rng = Rng::new(0xB6_0000 + a as u64);
    let mut pushed = 0;
    for i in 0u32.. {
        let at = plan.push_at(window.start, a, i);
        if at >= window.end {
            break;
        }
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        let bytes = payload(&mut rng, plan.origin, a, i);
        let reply = redis::cmd("XADD")
            .arg(key)
            .arg("*")
            .arg("d")
            .arg(&bytes)
            .query::<redis::Value>(&mut conn);
        if !matches!(reply, Ok(redis::Value::BulkString(_))) {
            break;
        }
        pushed += 1;
    }
    pushed
}

/// Loops on `XREAD BLOCK` from the stream's start until `stop`.
fn redis_reader(mut conn: redis::Connection, key: &str, origin: Instant, window: Window) -> Tally {
    let mut tally = Tally::default();
    if conn
        .set_read_timeout(Some(REPLY_TIMEOUT + Duration::from_millis(REDIS_BLOCK_MS)))
        .is_err()
    {
        return tally;
    }
    let mut last_id = b"0-0".to_vec();
    while Instant::now() < window.stop {
        let reply = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(REDIS_READ_COUNT)
            .arg("BLOCK")
            .arg(REDIS_BLOCK_MS)
            .arg("STREAMS")
            .arg(key)
            .arg(&last_id)
            .query::<redis::Value>(&mut conn);
        // [[key, [[id, [field, value]], …]]], or nil when the block timed
        // out.
        let streams = match reply {
            Ok(redis::Value::Array(streams)) => streams,
            Ok(_) => continue,
            Err(_) => break,
        };
        for stream in streams {
            let redis::Value::Array(mut parts) = stream else {
                continue;
            };
            let Some(redis::Value::Array(entries)) = parts.pop() else {
                continue;
            };
            for entry in entries {
                let redis::Value::Array(entry) = entry else {
                    continue;
                };
                let mut entry = entry.into_iter();
                let (Some(redis::Value::BulkString(id)), Some(redis::Value::Array(fields))) =
                    (entry.next(), entry.next())
                else {
                    continue;
                };
                if let Some(redis::Value::BulkString(bytes)) = fields.get(1) {
                    tally.record(bytes, origin, window.start, window.end);
                }
                last_id = id;
            }
        }
    }
    tally
}
