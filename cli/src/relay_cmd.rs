//! `tandem relay` and `tandem token`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{ArgGroup, Args, ValueEnum};
use tandem_relay::{OverflowPolicy, RelayConfig, StoreLocation};
use tandem_transport::AccountId;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("store").required(true).args(["data", "postgres", "postgres_file"])))]
pub struct RelayArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
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
    /// What to do with a login past --max-devices.
    #[arg(long, value_enum, default_value_t = Overflow::Refuse)]
    overflow: Overflow,
    /// Connections served at once.
    #[arg(long, default_value_t = tandem_relay::config::CONNECTIONS_MAX_DEFAULT)]
    max_connections: usize,
    /// Log filter (tracing's env-filter syntax), e.g. `info` or `debug`.
    #[arg(long, default_value = "info")]
    log: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Overflow {
    /// Refuse the new login with a too-many-devices error.
    Refuse,
    /// Kick the device that has been idle longest.
    KickIdle,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The relay's secret file (as given to `tandem relay`).
    #[arg(long, value_name = "FILE")]
    secret_file: PathBuf,
    /// The account the token is for.
    #[arg(long)]
    account: String,
    /// How long the token is valid, in seconds.
    #[arg(long, default_value_t = 30 * 24 * 3600)]
    valid_for_s: u64,
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
    config.devices_online_max = args.max_devices;
    config.connections_max = args.max_connections;
    config.overflow_policy = match args.overflow {
        Overflow::Refuse => OverflowPolicy::RefuseNew,
        Overflow::KickIdle => OverflowPolicy::KickLongestIdle,
    };
    tandem_relay::process::run(
        config,
        |addr| {
            tracing::info!(%addr, "relay listening");
            // Printed on stdout so scripts can read the port chosen for :0.
            println!("listening on {addr}");
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
    println!(
        "{}",
        tandem_relay::token::issue(&secret, &account, now + args.valid_for_s)
    );
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
