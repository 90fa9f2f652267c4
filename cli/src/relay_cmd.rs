//! `tandem relay`, `tandem token` and `tandem admin`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use tandem_relay::token::Purpose;
use tandem_relay::{OfflinePushPolicy, OverflowPolicy, RelayConfig, StoreLocation};
use tandem_transport::frame::{AdminReply, AdminRequest};
use tandem_transport::{AccountId, DeviceId, Entropy, OsEntropy};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("store").required(true).args(["data", "postgres", "postgres_file"])))]
pub struct RelayArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// Also listen for WebSocket connections on this address (port 0 picks
    /// a free port): devices reach it as ws://HOST:PORT (any path), one
    /// binary message per frame. Plain WebSocket only: for wss:// put a
    /// TLS-terminating proxy in front of it.
    #[arg(long, value_name = "ADDR")]
    listen_ws: Option<SocketAddr>,
    /// Serve Prometheus metrics (GET /metrics) and a health check (GET
    /// /health: 200, or 503 with the reasons) over HTTP on this address
    /// (port 0 picks a free port). For the operator's network: it names no
    /// account, but shows the relay's load.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// The relay's SQLite file, created if missing (one relay node).
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// A PostgreSQL database instead of --data, migrated at start; several
    /// relay nodes may serve one (postgresql://user:password@host:port/db,
    /// or libpq's key=value form). Prefer --postgres-file: a command line is
    /// visible to other users of the machine.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// A file holding the PostgreSQL URL (first line), so the password is
    /// not on the command line.
    #[arg(long, value_name = "FILE")]
    postgres_file: Option<PathBuf>,
    /// File holding the token secret; created (mode 0600) if missing.
    #[arg(long, value_name = "FILE")]
    secret_file: PathBuf,
    /// Devices of one account online at once.
    #[arg(long, default_value_t = tandem_relay::config::DEVICES_ONLINE_MAX_DEFAULT)]
    max_devices: usize,
    /// Devices of one account and one platform online at once (default:
    /// no per-platform limit).
    #[arg(long, value_name = "N")]
    max_devices_per_platform: Option<usize>,
    /// What to do with a login past --max-devices or
    /// --max-devices-per-platform.
    #[arg(long, value_enum, default_value_t = Overflow::Refuse)]
    overflow: Overflow,
    /// When the offline-push hook (logged, by default) hears of new deltas
    /// for an offline device; a kicked device never does.
    #[arg(long, value_enum, default_value_t = OfflinePush::EachOffline)]
    offline_push: OfflinePush,
    /// Connections served at once.
    #[arg(long, default_value_t = tandem_relay::config::CONNECTIONS_MAX_DEFAULT)]
    max_connections: usize,
    /// Log filter (tracing's env-filter syntax), e.g. `info` or `debug`.
    #[arg(long, default_value = "info")]
    log: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Overflow {
    /// Refuse the new login with a too-many-devices error and the device
    /// list (one can be kicked from outside with a manage token).
    Refuse,
    /// Displace the device that has been idle longest.
    KickIdle,
    /// The newest login replaces the earliest login on the same platform
    /// (the reference SDK's default).
    ReplaceSamePlatform,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OfflinePush {
    /// Every offline device, on every push, whoever else is online.
    EachOffline,
    /// The offline devices, only while no other device of the account is
    /// online (the user is away from every screen).
    AllOthersOffline,
}

/// What a login token is for.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum PurposeArg {
    /// Log a device in (enroll it, or enroll it again after a kick).
    Login,
    /// List and kick the account's devices without logging in (for a
    /// device refused by the device limit).
    Manage,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The relay's secret file (as given to `tandem relay`).
    #[arg(long, value_name = "FILE")]
    secret_file: PathBuf,
    /// The account the token is for.
    #[arg(long)]
    account: String,
    /// How long the token is valid, in seconds. It is single use either
    /// way.
    #[arg(long, default_value_t = tandem_relay::token::LOGIN_TOKEN_VALID_S_DEFAULT)]
    valid_for_s: u64,
    /// What the token is for.
    #[arg(long, value_enum, default_value_t = PurposeArg::Login)]
    purpose: PurposeArg,
}

/// `tandem admin`; the relay and the account are the global `--relay` and
/// `--account`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The relay's secret file (as given to `tandem relay`): it proves the
    /// operator.
    #[arg(long, value_name = "FILE")]
    secret_file: PathBuf,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    command: AdminCmd,
}

#[derive(Debug, Subcommand)]
enum AdminCmd {
    /// List the account's devices.
    Devices,
    /// Revoke one device: it is told at once and logs in again only with a
    /// new login token.
    Kick {
        /// The device's id, in hex.
        device: String,
    },
    /// Revoke every device of the account (a password change): each logs
    /// in again with a new login token.
    RevokeAll,
    /// Ban the account: its devices are disconnected and refused until
    /// `unban`.
    Ban,
    /// Lift a ban; the devices log in again with their keys.
    Unban,
    /// Remove the account: its devices, enrollments and log are gone.
    Remove,
}

/// The store the flags name (clap makes sure exactly one is given).
fn store_location(args: &RelayArgs) -> anyhow::Result<StoreLocation> {
    if let Some(path) = &args.data {
        return Ok(StoreLocation::Sqlite(path.clone()));
    }
    if let Some(url) = &args.postgres {
        return Ok(StoreLocation::Postgres(url.clone()));
    }
    let Some(file) = &args.postgres_file else {
        anyhow::bail!(
            "give the relay a store: --data FILE, --postgres URL or --postgres-file FILE"
        );
    };
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("PostgreSQL URL file {}", file.display()))?;
    match text.lines().map(str::trim).find(|line| !line.is_empty()) {
        Some(url) => Ok(StoreLocation::Postgres(url.to_owned())),
        None => anyhow::bail!(
            "PostgreSQL URL file {} is empty: write the URL on its first line",
            file.display()
        ),
    }
}

pub fn relay(args: RelayArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .init();
    let secret = tandem_relay::secret::load_or_create(&args.secret_file)
        .with_context(|| format!("secret file {}", args.secret_file.display()))?;
    let store = store_location(&args)?;
    let mut config = RelayConfig::new(args.listen, store, secret);
    config.listen_ws_addr = args.listen_ws;
    config.metrics_addr = args.metrics;
    config.devices_online_max = args.max_devices;
    config.devices_online_per_platform_max = args.max_devices_per_platform;
    config.connections_max = args.max_connections;
    config.offline_push_policy = match args.offline_push {
        OfflinePush::EachOffline => OfflinePushPolicy::EachOfflineDevice,
        OfflinePush::AllOthersOffline => OfflinePushPolicy::WhenAllOthersOffline,
    };
    config.overflow_policy = match args.overflow {
        Overflow::Refuse => OverflowPolicy::RefuseNew,
        Overflow::KickIdle => OverflowPolicy::KickLongestIdle,
        Overflow::ReplaceSamePlatform => OverflowPolicy::ReplaceSamePlatform,
    };
    tandem_relay::process::run(
        config,
        |addrs| {
            tracing::info!(addr = %addrs.tcp, "relay listening");
            // Printed on stdout so scripts can read the port chosen for :0.
            println!("listening on {}", addrs.tcp);
            if let Some(ws) = addrs.websocket {
                tracing::info!(addr = %ws, "relay listening for WebSocket");
                println!("listening for WebSocket on ws://{ws}");
            }
            if let Some(metrics) = addrs.metrics {
                tracing::info!(addr = %metrics, "relay listening for metrics");
                println!("serving metrics on http://{metrics}/metrics");
            }
        },
        async {
            // If the signal handler cannot be installed the relay runs
            // until killed, which is what a relay without Ctrl-C means.
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!("Ctrl-C: shutting down");
            } else {
                std::future::pending::<()>().await;
            }
        },
    )?;
    Ok(())
}

pub fn token(args: TokenArgs) -> anyhow::Result<()> {
    let account = AccountId::new(args.account)?;
    let secret = tandem_relay::secret::load_or_create(&args.secret_file)
        .with_context(|| format!("secret file {}", args.secret_file.display()))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let purpose = match args.purpose {
        PurposeArg::Login => Purpose::Login,
        PurposeArg::Manage => Purpose::Manage,
    };
    // The token's id is random: the relay refuses an id it saw used.
    let mut id = [0u8; tandem_relay::token::TOKEN_ID_BYTES];
    OsEntropy.fill(&mut id);
    let expires = now
        .checked_add(args.valid_for_s)
        .context("--valid-for-s is too large")?;
    println!(
        "{}",
        tandem_relay::token::issue_login(&secret, &account, purpose, expires, id)
    );
    Ok(())
}

pub fn admin(args: AdminArgs, relay: Option<&str>, account: Option<&str>) -> anyhow::Result<()> {
    let relay = relay.ok_or_else(|| anyhow::anyhow!("tandem admin needs --relay <host:port>"))?;
    if tandem_transport::RelayAddress::parse(relay).is_ok_and(|a| a.is_websocket()) {
        anyhow::bail!(
            "tandem admin talks to the relay's TCP listener (--listen), not its WebSocket one: give --relay <ip:port>"
        );
    }
    let relay: SocketAddr = relay
        .parse()
        .with_context(|| format!("--relay {relay} is not an ip:port"))?;
    let account = account.ok_or_else(|| anyhow::anyhow!("tandem admin needs --account"))?;
    let account = AccountId::new(account)?;
    // The secret must exist: an operator command never makes one.
    if !args.secret_file.exists() {
        anyhow::bail!(
            "secret file {} does not exist (pass the relay's --secret-file)",
            args.secret_file.display()
        );
    }
    let secret = tandem_relay::secret::load_or_create(&args.secret_file)
        .with_context(|| format!("secret file {}", args.secret_file.display()))?;
    let request = match args.command {
        AdminCmd::Devices => AdminRequest::Devices { account },
        AdminCmd::Kick { device } => AdminRequest::Kick {
            account,
            device: device.parse::<DeviceId>()?,
        },
        AdminCmd::RevokeAll => AdminRequest::RevokeAll { account },
        AdminCmd::Ban => AdminRequest::Ban { account },
        AdminCmd::Unban => AdminRequest::Unban { account },
        AdminCmd::Remove => AdminRequest::Remove { account },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reply = runtime.block_on(async {
        let mut client = tandem_relay::admin::AdminClient::connect(relay, &secret).await?;
        client.request(request).await
    })?;
    match reply {
        AdminReply::Devices { devices } => {
            if args.json {
                let list: Vec<_> = devices.iter().map(crate::device_cmd::device_json).collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for d in &devices {
                    println!("{}", crate::device_cmd::device_line(d));
                }
            }
        }
        AdminReply::Done {
            devices_revoked,
            connections_closed,
        } => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "devices_revoked": devices_revoked,
                        "connections_closed": connections_closed,
                    })
                );
            } else {
                println!(
                    "ok: {devices_revoked} device(s) revoked, {connections_closed} connection(s) closed"
                );
            }
        }
        other => anyhow::bail!("unexpected answer from the relay: {other:?}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// `tandem relay`'s flags alone.
    #[derive(Debug, Parser)]
    struct Relay {
        #[command(flatten)]
        args: RelayArgs,
    }

    fn parse(flags: &[&str]) -> Result<RelayArgs, clap::Error> {
        let mut argv = vec!["relay", "--secret-file", "s"];
        argv.extend(flags);
        Relay::try_parse_from(argv).map(|r| r.args)
    }

    #[test]
    fn the_relay_takes_exactly_one_store() {
        let sqlite = parse(&["--data", "r.db"]).unwrap();
        assert_eq!(
            store_location(&sqlite).unwrap(),
            StoreLocation::Sqlite("r.db".into())
        );
        let url = "postgresql://relay@db/tandem";
        let pg = parse(&["--postgres", url]).unwrap();
        assert_eq!(
            store_location(&pg).unwrap(),
            StoreLocation::Postgres(url.into())
        );
        assert!(parse(&[]).is_err(), "no store");
        assert!(parse(&["--data", "r.db", "--postgres", url]).is_err());
        assert!(parse(&["--postgres", url, "--postgres-file", "f"]).is_err());
    }

    #[test]
    fn the_metrics_listener_is_optional_and_an_address() {
        assert_eq!(parse(&["--data", "r.db"]).unwrap().metrics, None);
        let args = parse(&["--data", "r.db", "--metrics", "127.0.0.1:9100"]).unwrap();
        assert_eq!(args.metrics, Some("127.0.0.1:9100".parse().unwrap()));
        assert!(parse(&["--data", "r.db", "--metrics", "http://127.0.0.1:9100"]).is_err());
    }

    #[test]
    fn the_websocket_listener_is_optional_and_an_address() {
        assert_eq!(parse(&["--data", "r.db"]).unwrap().listen_ws, None);
        let args = parse(&["--data", "r.db", "--listen-ws", "127.0.0.1:7701"]).unwrap();
        assert_eq!(args.listen_ws, Some("127.0.0.1:7701".parse().unwrap()));
        assert!(parse(&["--data", "r.db", "--listen-ws", "ws://127.0.0.1:7701"]).is_err());
    }

    #[test]
    fn a_postgres_url_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pg-url");
        let from_file = |text: &str| {
            std::fs::write(&file, text).unwrap();
            store_location(&parse(&["--postgres-file", file.to_str().unwrap()]).unwrap())
        };
        assert_eq!(
            from_file("\n  postgresql://relay:pw@db/tandem  \nignored\n").unwrap(),
            StoreLocation::Postgres("postgresql://relay:pw@db/tandem".into())
        );
        let empty = from_file(" \n\n").unwrap_err().to_string();
        assert!(empty.contains("is empty"), "{empty}");
        std::fs::remove_file(&file).unwrap();
        let missing = from_file_missing(&file);
        assert!(missing.contains("PostgreSQL URL file"), "{missing}");
    }

    fn from_file_missing(file: &std::path::Path) -> String {
        let args = parse(&["--postgres-file", file.to_str().unwrap()]).unwrap();
        format!("{:#}", store_location(&args).unwrap_err())
    }
}
