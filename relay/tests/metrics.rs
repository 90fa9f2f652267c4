//! The metrics and health endpoint (`RelayConfig::metrics_addr`, `tandem
//! relay --metrics`), scraped over real HTTP while devices work: on one
//! SQLite node, and on two PostgreSQL nodes where the cross-node
//! notification lag and the change feed's health show.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tandem_relay::{RelayConfig, StoreLocation};
use tandem_storage::pg_test::TestDb;
use tandem_storage::relay::FEED_APPLICATION_NAME_SUFFIX;
use tandem_transport::{ErrorCode, SessionEvent, WireDelta};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a test waits for something that should happen at once.
const SETTLE: Duration = Duration::from_secs(10);

fn with_metrics(store: StoreLocation) -> RelayConfig {
    let mut config = config(store);
    config.metrics_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config
}

/// One HTTP request: the status line and the body.
async fn http(addr: SocketAddr, request: &str) -> (String, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.expect("read");
        response
    };
    let response = tokio::time::timeout(SETTLE, exchange)
        .await
        .expect("an answer in time");
    let text = String::from_utf8(response).expect("UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.lines().next().unwrap_or("").to_owned();
    (status, body.to_owned())
}

/// `GET /metrics`, parsed: every sample by its name and labels.
async fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let (status, body) = http(addr, "GET /metrics HTTP/1.1\r\nHost: relay\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let mut samples = BTreeMap::new();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').expect(line);
        let value: f64 = value.parse().expect(line);
        assert!(
            samples.insert(name.to_owned(), value).is_none(),
            "{name} twice"
        );
    }
    samples
}

fn sample(samples: &BTreeMap<String, f64>, name: &str) -> f64 {
    *samples
        .get(name)
        .unwrap_or_else(|| panic!("no sample {name} in {samples:#?}"))
}

/// Scrapes until `done` holds for the samples, at most [`SETTLE`].
async fn scrape_until(
    addr: SocketAddr,
    what: &str,
    done: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let samples = scrape(addr).await;
        if done(&samples) {
            return samples;
        }
        assert!(Instant::now() < deadline, "{what}: {samples:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn push_acked(conn: &mut Conn, batch: Vec<WireDelta>) {
    conn.session().push(batch).unwrap();
    expect(conn, |e| match e {
        SessionEvent::PushAcked(_) => Some(()),
        _ => None,
    })
    .await
}

async fn live(conn: &mut Conn, count: usize) {
    let mut got = 0;
    while got < count {
        expect(conn, |e| match e {
            SessionEvent::Live(_) => Some(()),
            _ => None,
        })
        .await;
        got += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_while_devices_work_counts_what_they_did() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(with_metrics(StoreLocation::Sqlite(dir.path().join("r.db")))).await;
    let addr = relay.metrics_addr.expect("a metrics listener");
    let before = scrape(addr).await;
    assert_eq!(sample(&before, "tandem_relay_pushes_total"), 0.0);
    assert_eq!(sample(&before, "tandem_relay_healthy"), 1.0);

    let mut phone = login(&relay, "alice", 1).await;
    let mut laptop = login(&relay, "alice", 2).await;
    // Scrapes go on while the devices work; each is whole, and what it
    // counts never goes back.
    let scraper = tokio::spawn(async move {
        let mut last = 0.0;
        let mut scrapes = 0;
        let deadline = Instant::now() + SETTLE;
        while last < 20.0 {
            assert!(Instant::now() < deadline, "the pushes to be counted");
            let now = sample(&scrape(addr).await, "tandem_relay_deltas_appended_total");
            assert!(now >= last, "a counter went back: {last} → {now}");
            last = now;
            scrapes += 1;
        }
        scrapes
    });
    for i in 0..10u32 {
        let batch = (0..2)
            .map(|j| WireDelta::new(format!("delta {i}/{j}").into_bytes()))
            .collect();
        push_acked(&mut phone, batch).await;
    }
    live(&mut laptop, 20).await;
    assert!(scraper.await.expect("the scraper") >= 1);
    // A resend of a stored delta, and a pull of the whole log.
    push_acked(&mut phone, vec![WireDelta::new(b"delta 0/0".to_vec())]).await;
    laptop.session().pull(0, 1_000).unwrap();
    let served = expect(&mut laptop, |e| match e {
        SessionEvent::Deltas { deltas, .. } => Some(deltas.len()),
        _ => None,
    })
    .await;
    assert_eq!(served, 20);
    // A device the relay has never seen, without a token: refused.
    assert_eq!(
        refused(&relay, device_config("alice", 3)).await,
        ErrorCode::NotEnrolled
    );

    let samples = scrape_until(addr, "the refused connection to close", |s| {
        s.get("tandem_relay_connections{state=\"logged_in\"}") == Some(&2.0)
            && s.get("tandem_relay_connections{state=\"handshake\"}") == Some(&0.0)
    })
    .await;
    for (name, want) in [
        ("tandem_relay_logins_total{role=\"device\"}", 2.0),
        ("tandem_relay_refusals_total{reason=\"not_enrolled\"}", 1.0),
        ("tandem_relay_pushes_total", 11.0),
        ("tandem_relay_deltas_appended_total", 20.0),
        ("tandem_relay_deltas_resent_total", 1.0),
        ("tandem_relay_pulls_total", 1.0),
        ("tandem_relay_deltas_served_total", 20.0),
        ("tandem_relay_live_deliveries_total", 20.0),
        ("tandem_relay_live_dropped_total", 0.0),
        ("tandem_relay_devices_online", 2.0),
        ("tandem_relay_connections{state=\"handshake\"}", 0.0),
        ("tandem_relay_store_commits_failed_total", 0.0),
        ("tandem_relay_healthy", 1.0),
        // One node on SQLite: no other node notifies it.
        ("tandem_relay_notification_lag_seconds_count", 0.0),
    ] {
        assert_eq!(sample(&samples, name), want, "{name}");
    }
    let commits = sample(&samples, "tandem_relay_store_commit_seconds_count");
    assert!(
        commits >= 11.0,
        "a group commit per push at least: {commits}"
    );
    assert_eq!(
        sample(
            &samples,
            "tandem_relay_store_commit_seconds_bucket{le=\"+Inf\"}"
        ),
        commits
    );

    let (status, body) = http(addr, "GET /health HTTP/1.1\r\n\r\n").await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "ok\n")
    );
    let (status, _) = http(addr, "GET /nothing HTTP/1.1\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _) = http(addr, "DELETE /metrics HTTP/1.1\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    let (status, _) = http(addr, "\x16\x03\x01 a TLS hello\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n", "y".repeat(9_000));
    let (status, _) = http(addr, &huge).await;
    assert_eq!(status, "HTTP/1.1 431 Request Header Fields Too Large");
    // The devices were served throughout.
    round_trip(&mut phone).await;
    relay.stop().await.expect("the relay stops");
}

/// Runs `sql` on the database's admin connection, `$db` replaced by the
/// database's name.
async fn admin(db: &Arc<TestDb>, sql: String) {
    on_admin(db, move |db| {
        db.admin()
            .execute(&sql.replace("$db", db.name()), &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    })
    .await
}

#[test]
fn two_nodes_show_the_notification_lag_and_a_lost_change_feed() {
    with_test_db(|db| async move {
        let url = db.url().to_owned();
        let one = start(with_metrics(StoreLocation::Postgres(url.clone()))).await;
        let two = start(with_metrics(StoreLocation::Postgres(url))).await;
        let (addr_one, addr_two) = (one.metrics_addr.unwrap(), two.metrics_addr.unwrap());
        let mut phone = login(&one, "alice", 1).await;
        let mut laptop = login(&two, "alice", 2).await;
        for i in 0..5u32 {
            push_acked(
                &mut phone,
                vec![WireDelta::new(format!("d{i}").into_bytes())],
            )
            .await;
        }
        live(&mut laptop, 5).await;
        let lag = "tandem_relay_notification_lag_seconds_count";
        let two_samples = scrape_until(addr_two, "node two to hear node one", |s| {
            s.get(lag).is_some_and(|&n| n >= 1.0)
        })
        .await;
        assert_eq!(
            sample(&two_samples, "tandem_relay_live_deliveries_total"),
            5.0
        );
        assert_eq!(sample(&two_samples, "tandem_relay_pushes_total"), 0.0);
        let one_samples = scrape(addr_one).await;
        assert_eq!(
            sample(&one_samples, "tandem_relay_deltas_appended_total"),
            5.0
        );
        assert_eq!(sample(&one_samples, "tandem_relay_healthy"), 1.0);

        // The database stops taking connections and node two's feed
        // connection is ended: node two cannot hear other nodes, and says
        // so; node one still serves (its store connection stays).
        admin(&db, "ALTER DATABASE \"$db\" ALLOW_CONNECTIONS false".into()).await;
        admin(
            &db,
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '$db' AND application_name LIKE '%{FEED_APPLICATION_NAME_SUFFIX}'"
            ),
        )
        .await;
        let deadline = Instant::now() + SETTLE;
        loop {
            let (status, body) = http(addr_two, "GET /health HTTP/1.1\r\n\r\n").await;
            if status == "HTTP/1.1 503 Service Unavailable" {
                assert!(body.contains("change feed"), "{body}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node two to report its feed lost"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(sample(&scrape(addr_two).await, "tandem_relay_healthy"), 0.0);
        // Connections allowed again: the feed connects, and health is back.
        admin(&db, "ALTER DATABASE \"$db\" ALLOW_CONNECTIONS true".into()).await;
        let deadline = Instant::now() + SETTLE;
        loop {
            let (status, _) = http(addr_two, "GET /health HTTP/1.1\r\n\r\n").await;
            if status == "HTTP/1.1 200 OK" {
                break;
            }
            assert!(Instant::now() < deadline, "node two to be healthy again");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        one.stop().await.expect("node one stops");
        two.stop().await.expect("node two stops");
    });
}
