//! `tandem relay` and `tandem token`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, ValueEnum};
use tandem_relay::{OverflowPolicy, RelayConfig, StoreLocation};
use tandem_transport::AccountId;

#[derive(Debug, Args)]
pub struct RelayArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// The relay's SQLite file, created if missing.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
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

pub fn relay(args: RelayArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .init();
    let secret = tandem_relay::secret::load_or_create(&args.secret_file)
        .with_context(|| format!("secret file {}", args.secret_file.display()))?;
    let mut config = RelayConfig::new(args.listen, StoreLocation::Sqlite(args.data), secret);
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
