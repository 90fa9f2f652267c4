//! What a relay counts, and the HTTP endpoint that shows it
//! (`--metrics ADDR`): `GET /metrics` in Prometheus' text format 0.0.4,
//! `GET /health` for a load balancer or an orchestrator's probe.
//!
//! The counters are atomics the connection tasks and the core thread bump
//! without locks (only login refusals, rare, take a mutex to find their
//! reason's slot). The text is written here rather than by a metrics crate:
//! the format is a few lines per family, and the relay has a fixed set of
//! families, so a registry would add a dependency and buy nothing.
//! Requests are parsed with `httparse` (already built for the WebSocket
//! upgrade).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// The bounds of every latency histogram, in seconds: from half a
/// millisecond (a group commit on a fast disk) to ten seconds (a database
/// that is failing over).
pub const LATENCY_BUCKETS_S: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Scrapes served at once; more wait for a place. A scraper is an
/// operator's tool, but the port may be reachable by others.
pub const SCRAPES_AT_ONCE_MAX: usize = 8;
/// Bytes of one request (line and headers) read at most: a GET is far
/// smaller.
pub const REQUEST_BYTES_MAX: usize = 8 * 1024;
/// How long a scrape may take to send its request.
pub const REQUEST_TIMEOUT_MS: u64 = 5_000;

/// A latency histogram with the buckets of [`LATENCY_BUCKETS_S`],
/// observable from any thread.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at or below each bound (not cumulative; summed when
    /// written).
    buckets: [AtomicU64; LATENCY_BUCKETS_S.len()],
    /// Observations above the last bound.
    over: AtomicU64,
    /// The sum of every observation, in microseconds.
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        match LATENCY_BUCKETS_S.iter().position(|&bound| seconds <= bound) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// How many observations there were.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (bound, bucket) in LATENCY_BUCKETS_S.iter().zip(&self.buckets) {
            cumulative = cumulative.saturating_add(bucket.load(Ordering::Relaxed));
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        // Read last, so the count is never below a bucket read before it.
        let count = self.count.load(Ordering::Relaxed);
        let total = count.max(cumulative.saturating_add(self.over.load(Ordering::Relaxed)));
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
    }
}

/// What a relay has counted since it started. Shared by the connection
/// tasks, the core thread and the change feed's thread.
#[derive(Debug, Default)]
pub struct Counters {
    /// Logins accepted (devices online).
    pub logins_accepted: AtomicU64,
    /// Management connections accepted.
    pub manage_accepted: AtomicU64,
    /// Logins refused by the core, whatever the reason.
    pub logins_refused: AtomicU64,
    /// Devices forced offline (kicked, displaced, revoked, banned…).
    pub devices_forced_offline: AtomicU64,
    /// Connections refused before logging in because the relay-wide cap of
    /// connections in their handshake was reached.
    pub handshakes_refused_busy: AtomicU64,
    /// Connections refused before logging in because their address had as
    /// many handshakes in progress as allowed.
    pub handshakes_refused_per_address: AtomicU64,
    /// Connections closed because they did not log in within the deadline.
    pub handshakes_timed_out: AtomicU64,
    /// Logins refused because the cap of logged-in connections was
    /// reached.
    pub connections_refused_full: AtomicU64,
    /// Push requests handled.
    pub pushes: AtomicU64,
    /// Deltas a push stored for the first time.
    pub deltas_appended: AtomicU64,
    /// Deltas a push carried that the log held already (resends).
    pub deltas_resent: AtomicU64,
    /// Pull requests answered.
    pub pulls: AtomicU64,
    /// Deltas sent in answers to pulls.
    pub deltas_served: AtomicU64,
    /// Live deltas queued to a device's connection.
    pub live_queued: AtomicU64,
    /// Live deltas dropped because the connection's queue was full (the
    /// device is told to pull instead).
    pub live_dropped: AtomicU64,
    /// `PullNeeded` notices: a device told to pull because live delivery
    /// could not carry everything (a full queue, or a node far behind on
    /// another node's deltas).
    pub pulls_forced: AtomicU64,
    /// Device-addressed payloads stored.
    pub payloads_stored: AtomicU64,
    /// Payloads handed to an online recipient's connection at once.
    pub payloads_delivered_live: AtomicU64,
    /// Group commits that failed (nothing of the group was acknowledged).
    pub store_commits_failed: AtomicU64,
    /// How long each group commit took.
    pub store_commit: Histogram,
    /// Cross-node notification lag: from another node's commit (its clock)
    /// to this node's feed reading the notification (this node's clock).
    pub notification_lag: Histogram,
    /// Login refusals by their error code's name.
    refused_by_reason: Mutex<BTreeMap<&'static str, u64>>,
}

/// The counters' values at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)] // The fields are [`Counters`]'.
pub struct CountersSnapshot {
    pub logins_accepted: u64,
    pub manage_accepted: u64,
    pub logins_refused: u64,
    pub devices_forced_offline: u64,
    pub handshakes_refused_busy: u64,
    pub handshakes_refused_per_address: u64,
    pub handshakes_timed_out: u64,
    pub connections_refused_full: u64,
    pub pushes: u64,
    pub deltas_appended: u64,
    pub deltas_resent: u64,
    pub pulls: u64,
    pub deltas_served: u64,
    pub live_queued: u64,
    pub live_dropped: u64,
    pub pulls_forced: u64,
    pub payloads_stored: u64,
    pub payloads_delivered_live: u64,
    pub store_commits_failed: u64,
}

impl Counters {
    /// The values now.
    pub fn snapshot(&self) -> CountersSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            logins_accepted: get(&self.logins_accepted),
            manage_accepted: get(&self.manage_accepted),
            logins_refused: get(&self.logins_refused),
            devices_forced_offline: get(&self.devices_forced_offline),
            handshakes_refused_busy: get(&self.handshakes_refused_busy),
            handshakes_refused_per_address: get(&self.handshakes_refused_per_address),
            handshakes_timed_out: get(&self.handshakes_timed_out),
            connections_refused_full: get(&self.connections_refused_full),
            pushes: get(&self.pushes),
            deltas_appended: get(&self.deltas_appended),
            deltas_resent: get(&self.deltas_resent),
            pulls: get(&self.pulls),
            deltas_served: get(&self.deltas_served),
            live_queued: get(&self.live_queued),
            live_dropped: get(&self.live_dropped),
            pulls_forced: get(&self.pulls_forced),
            payloads_stored: get(&self.payloads_stored),
            payloads_delivered_live: get(&self.payloads_delivered_live),
            store_commits_failed: get(&self.store_commits_failed),
        }
    }

    /// Login refusals so far, by the refusal's code name
    /// (`too_many_devices`).
    pub fn refused_by_reason(&self) -> BTreeMap<&'static str, u64> {
        self.refused_by_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_n(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Counts a login refused with `reason` (an error code's name).
    pub(crate) fn refused(&self, reason: &'static str) {
        Counters::add(&self.logins_refused);
        *self
            .refused_by_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_insert(0) += 1;
    }
}

/// What the relay is doing now, as opposed to what it counted: read at each
/// scrape.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Devices online on this node (as the core last reported, after its
    /// latest group).
    pub devices_online: AtomicU64,
    /// The core thread is running (false once it stopped or panicked).
    pub core_running: AtomicBool,
    /// The latest group commit succeeded (true until one fails).
    pub store_ok: AtomicBool,
    /// Whether the change feed is connected; `None` before the relay knows
    /// (and always for a store without one).
    feed: Mutex<Option<bool>>,
}

impl Gauges {
    /// Gauges of a relay that is starting: core running, store fine.
    pub fn starting() -> Gauges {
        Gauges {
            core_running: AtomicBool::new(true),
            store_ok: AtomicBool::new(true),
            ..Gauges::default()
        }
    }

    /// Records whether the change feed is connected.
    pub fn set_feed_connected(&self, connected: bool) {
        *self.feed.lock().unwrap_or_else(|p| p.into_inner()) = Some(connected);
    }

    fn feed_connected(&self) -> Option<bool> {
        *self.feed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why the relay is not healthy, one reason per line; empty when it is.
    pub fn unhealthy(&self) -> Vec<&'static str> {
        let mut why = Vec::new();
        if !self.core_running.load(Ordering::Relaxed) {
            why.push("the core thread stopped");
        }
        if !self.store_ok.load(Ordering::Relaxed) {
            why.push("the latest store commit failed");
        }
        if self.feed_connected() == Some(false) {
            why.push("the change feed (other nodes' changes) is disconnected");
        }
        why
    }
}

/// Connection counts the scrape reads from the relay's admission caps.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionCaps {
    /// Connections that have not logged in yet.
    pub handshakes: Arc<Semaphore>,
    pub handshakes_max: usize,
    /// Logged-in connections.
    pub logged_in: Arc<Semaphore>,
    pub logged_in_max: usize,
}

/// Everything one scrape shows.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    pub counters: Arc<Counters>,
    pub gauges: Arc<Gauges>,
    pub caps: ConnectionCaps,
}

/// The text of `GET /metrics`.
pub(crate) fn render(sources: &Sources) -> String {
    let mut out = String::with_capacity(4096);
    let c = sources.counters.snapshot();
    let counter = |out: &mut String, name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    let caps = &sources.caps;
    let taken = |sem: &Semaphore, max: usize| {
        u64::try_from(max.saturating_sub(sem.available_permits())).unwrap_or(u64::MAX)
    };
    let _ = writeln!(
        out,
        "# HELP tandem_relay_connections Open connections, by whether they have logged in.\n\
         # TYPE tandem_relay_connections gauge\n\
         tandem_relay_connections{{state=\"handshake\"}} {}\n\
         tandem_relay_connections{{state=\"logged_in\"}} {}",
        taken(&caps.handshakes, caps.handshakes_max),
        taken(&caps.logged_in, caps.logged_in_max),
    );
    gauge(
        &mut out,
        "tandem_relay_devices_online",
        "Devices online on this node.",
        sources.gauges.devices_online.load(Ordering::Relaxed),
    );
    let _ = writeln!(
        out,
        "# HELP tandem_relay_logins_total Logins accepted, by role.\n\
         # TYPE tandem_relay_logins_total counter\n\
         tandem_relay_logins_total{{role=\"device\"}} {}\n\
         tandem_relay_logins_total{{role=\"manager\"}} {}",
        c.logins_accepted, c.manage_accepted,
    );
    let _ = writeln!(
        out,
        "# HELP tandem_relay_refusals_total Connections and logins refused, by reason \
         (an error code's name for a login; the cap that was full before one).\n\
         # TYPE tandem_relay_refusals_total counter"
    );
    for (reason, value) in [
        ("handshakes_busy", c.handshakes_refused_busy),
        ("handshakes_per_address", c.handshakes_refused_per_address),
        ("handshake_timeout", c.handshakes_timed_out),
        ("connections_full", c.connections_refused_full),
    ] {
        let _ = writeln!(
            out,
            "tandem_relay_refusals_total{{reason=\"{reason}\"}} {value}"
        );
    }
    for (reason, value) in sources.counters.refused_by_reason() {
        // Code names are snake_case constants: nothing to escape.
        let _ = writeln!(
            out,
            "tandem_relay_refusals_total{{reason=\"{reason}\"}} {value}"
        );
    }
    for (name, help, value) in [
        (
            "tandem_relay_devices_forced_offline_total",
            "Devices forced offline: kicked, displaced, revoked, banned.",
            c.devices_forced_offline,
        ),
        (
            "tandem_relay_pushes_total",
            "Push requests handled.",
            c.pushes,
        ),
        (
            "tandem_relay_deltas_appended_total",
            "Deltas stored for the first time.",
            c.deltas_appended,
        ),
        (
            "tandem_relay_deltas_resent_total",
            "Pushed deltas the log held already.",
            c.deltas_resent,
        ),
        (
            "tandem_relay_pulls_total",
            "Pull requests answered.",
            c.pulls,
        ),
        (
            "tandem_relay_deltas_served_total",
            "Deltas sent in answers to pulls.",
            c.deltas_served,
        ),
        (
            "tandem_relay_live_deliveries_total",
            "Live deltas queued to a device.",
            c.live_queued,
        ),
        (
            "tandem_relay_live_dropped_total",
            "Live deltas dropped on a full queue (the device pulls instead).",
            c.live_dropped,
        ),
        (
            "tandem_relay_pulls_forced_total",
            "Devices told to pull because live delivery could not carry everything.",
            c.pulls_forced,
        ),
        (
            "tandem_relay_payloads_stored_total",
            "Device-addressed payloads stored.",
            c.payloads_stored,
        ),
        (
            "tandem_relay_payloads_delivered_live_total",
            "Payloads handed to an online recipient at once.",
            c.payloads_delivered_live,
        ),
        (
            "tandem_relay_store_commits_failed_total",
            "Group commits that failed.",
            c.store_commits_failed,
        ),
    ] {
        counter(&mut out, name, help, value);
    }
    sources.counters.store_commit.write(
        &mut out,
        "tandem_relay_store_commit_seconds",
        "How long each group commit of the store took.",
    );
    sources.counters.notification_lag.write(
        &mut out,
        "tandem_relay_notification_lag_seconds",
        "From another node's commit (its clock) to this node reading its notification.",
    );
    let healthy = sources.gauges.unhealthy().is_empty();
    gauge(
        &mut out,
        "tandem_relay_healthy",
        "1 when GET /health answers 200.",
        u64::from(healthy),
    );
    out
}

/// One HTTP response.
#[derive(Debug, PartialEq, Eq)]
struct Response {
    status: &'static str,
    content_type: &'static str,
    body: String,
    allow: bool,
}

impl Response {
    fn text(status: &'static str, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            allow: false,
        }
    }

    fn bytes(&self, head_only: bool) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if self.allow {
            head.push_str("Allow: GET, HEAD\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !head_only {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

/// What a parsed request asked for: the response, and whether it was a
/// HEAD (headers only).
fn respond(request: &[u8], sources: &Sources) -> Option<(Response, bool)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(request) {
        Ok(httparse::Status::Partial) => None,
        Err(_) => Some((Response::text("400 Bad Request", "bad request\n"), false)),
        Ok(httparse::Status::Complete(_)) => {
            let method = parsed.method.unwrap_or("");
            let head = method == "HEAD";
            if method != "GET" && !head {
                let mut response = Response::text("405 Method Not Allowed", "only GET and HEAD\n");
                response.allow = true;
                return Some((response, false));
            }
            // The query string, if any, is ignored.
            let path = parsed.path.unwrap_or("").split('?').next().unwrap_or("");
            let response = match path {
                "/metrics" => Response {
                    status: "200 OK",
                    content_type: "text/plain; version=0.0.4; charset=utf-8",
                    body: render(sources),
                    allow: false,
                },
                "/health" => {
                    let why = sources.gauges.unhealthy();
                    if why.is_empty() {
                        Response::text("200 OK", "ok\n")
                    } else {
                        Response::text("503 Service Unavailable", why.join("\n") + "\n")
                    }
                }
                _ => Response::text("404 Not Found", "try /metrics or /health\n"),
            };
            Some((response, head))
        }
    }
}

/// Reads one request from `stream` and answers it, within
/// [`REQUEST_TIMEOUT_MS`].
async fn serve_scrape(mut stream: TcpStream, sources: &Sources) {
    let mut request = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    let read = async {
        loop {
            let n = stream.read(&mut buffer).await.ok()?;
            if n == 0 {
                return None;
            }
            request.extend_from_slice(&buffer[..n]);
            if let Some(answer) = respond(&request, sources) {
                return Some(answer);
            }
            if request.len() >= REQUEST_BYTES_MAX {
                return Some((
                    Response::text("431 Request Header Fields Too Large", "request too large\n"),
                    false,
                ));
            }
        }
    };
    let Ok(Some((response, head_only))) =
        tokio::time::timeout(Duration::from_millis(REQUEST_TIMEOUT_MS), read).await
    else {
        return;
    };
    let bytes = response.bytes(head_only);
    let _ = tokio::time::timeout(Duration::from_millis(REQUEST_TIMEOUT_MS), async {
        let _ = stream.write_all(&bytes).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Serves scrapes on `listener` until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    sources: Sources,
    mut shutdown: watch::Receiver<bool>,
) {
    let places = Arc::new(Semaphore::new(SCRAPES_AT_ONCE_MAX));
    let sources = Arc::new(sources);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let (stream, _peer): (TcpStream, SocketAddr) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(%error, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(place) = places.clone().acquire_owned().await else {
            return;
        };
        let sources = sources.clone();
        tokio::spawn(async move {
            serve_scrape(stream, &sources).await;
            drop(place);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> Sources {
        Sources {
            counters: Arc::new(Counters::default()),
            gauges: Arc::new(Gauges::starting()),
            caps: ConnectionCaps {
                handshakes: Arc::new(Semaphore::new(4)),
                handshakes_max: 4,
                logged_in: Arc::new(Semaphore::new(8)),
                logged_in_max: 8,
            },
        }
    }

    #[test]
    fn a_histogram_puts_each_observation_in_its_bucket_cumulatively() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500)); // at the first bound
        h.observe(Duration::from_micros(501)); // just above it
        h.observe(Duration::from_secs(10)); // at the last bound
        h.observe(Duration::from_secs(11)); // above every bound
        h.observe(Duration::MAX); // the sum saturates, never wraps
        let mut out = String::new();
        h.write(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.001\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"5\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"10\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 5\n"), "{out}");
        assert!(out.contains("x_count 5\n"), "{out}");
        assert_eq!(h.count(), 5);
    }

    #[test]
    fn the_text_names_every_family_once_with_help_and_type() {
        let s = sources();
        s.counters.refused("too_many_devices");
        s.counters.refused("too_many_devices");
        s.counters.refused("bad_proof");
        Counters::add_n(&s.counters.deltas_appended, 7);
        let text = render(&s);
        assert!(text.contains("tandem_relay_refusals_total{reason=\"too_many_devices\"} 2\n"));
        assert!(text.contains("tandem_relay_refusals_total{reason=\"bad_proof\"} 1\n"));
        assert!(text.contains("tandem_relay_deltas_appended_total 7\n"));
        assert!(text.contains("tandem_relay_connections{state=\"handshake\"} 0\n"));
        assert!(text.contains("tandem_relay_healthy 1\n"));
        let mut families = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(families.insert(name.to_owned()), "{name} twice");
                assert!(
                    text.contains(&format!("# HELP {name} ")),
                    "{name} without HELP"
                );
            } else if !line.starts_with('#') {
                // `name{labels} value` or `name value`, the value a number.
                let (_, value) = line.rsplit_once(' ').expect(line);
                assert!(value.parse::<f64>().is_ok(), "{line}");
            }
        }
        assert!(families.len() >= 18, "{families:?}");
    }

    #[test]
    fn requests_are_answered_by_path_and_method() {
        let s = sources();
        let ask = |raw: &str| respond(raw.as_bytes(), &s);
        let (r, head) = ask("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!((r.status, head), ("200 OK", false));
        assert!(r.content_type.contains("version=0.0.4"));
        let (r, head) = ask("HEAD /health?probe=1 HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!((r.status, head), ("200 OK", true));
        assert!(!String::from_utf8(r.bytes(true)).unwrap().contains("ok\n"));
        assert_eq!(
            ask("GET / HTTP/1.1\r\n\r\n").unwrap().0.status,
            "404 Not Found"
        );
        let (r, _) = ask("POST /metrics HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(r.status, "405 Method Not Allowed");
        assert!(String::from_utf8(r.bytes(false))
            .unwrap()
            .contains("Allow: GET, HEAD"));
        assert_eq!(ask("GET /metr").map(|r| r.0), None, "partial: read more");
        assert_eq!(
            ask("\0\0\0 garbage\r\n\r\n").unwrap().0.status,
            "400 Bad Request"
        );
    }

    #[test]
    fn health_names_each_failure() {
        let s = sources();
        assert!(s.gauges.unhealthy().is_empty());
        s.gauges.set_feed_connected(true);
        assert!(s.gauges.unhealthy().is_empty());
        s.gauges.set_feed_connected(false);
        s.gauges.store_ok.store(false, Ordering::Relaxed);
        s.gauges.core_running.store(false, Ordering::Relaxed);
        assert_eq!(s.gauges.unhealthy().len(), 3);
        let (r, _) = respond(b"GET /health HTTP/1.1\r\n\r\n", &s).unwrap();
        assert_eq!(r.status, "503 Service Unavailable");
        assert!(r.body.contains("core thread stopped"), "{}", r.body);
        assert!(render(&s).contains("tandem_relay_healthy 0\n"));
    }
}
