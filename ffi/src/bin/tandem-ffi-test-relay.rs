//! A relay on a free loopback port for the bindings' test suites: prints its address and tokens, stops when told.
//!
//! ```text
//! tandem-ffi-test-relay [ACCOUNT…]        (default: alice)
//! ```
//!
//! It listens on 127.0.0.1 on a port the system picks, keeps its state in
//! memory, and prints one line of JSON on stdout once it accepts
//! connections:
//!
//! ```text
//! {"relay":"127.0.0.1:40123","tokens":{"alice":["lt2.…", …16 login tokens]}}
//! ```
//!
//! It serves until its standard input ends (the test closed it, or the
//! test process died) or [`LIFETIME_S_MAX`] seconds have passed, whichever
//! comes first, then stops the relay within the harness's bound. For a
//! relay of your own, use `tandem relay` (see the README).

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::Context;
use tandem_relay::harness::{loopback, LoopbackRelay};
use tandem_relay::secret::Secret;
use tandem_relay::StoreLocation;
use tandem_transport::AccountId;

/// The longest the relay serves, in seconds: a test that forgets to stop
/// it does not leave it running.
const LIFETIME_S_MAX: u64 = 600;

/// Login tokens printed per account: one per device a suite opens (each is
/// single use).
const TOKENS_PER_ACCOUNT: usize = 16;

fn main() -> anyhow::Result<()> {
    let accounts: Vec<String> = std::env::args().skip(1).collect();
    let accounts = if accounts.is_empty() {
        vec!["alice".to_owned()]
    } else {
        accounts
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let secret = Secret::generate().context("drawing the relay's secret")?;
        let relay = LoopbackRelay::start(loopback(StoreLocation::Memory, secret, 0))
            .await
            .context("starting the relay")?;
        let mut tokens = Vec::new();
        for account in &accounts {
            let id = AccountId::new(account.clone())
                .with_context(|| format!("{account:?} is not an account id"))?;
            // Account ids and tokens are printable without escapes except
            // for quotes and backslashes, which JSON escapes.
            let fresh: Vec<String> = (0..TOKENS_PER_ACCOUNT)
                .map(|_| format!("\"{}\"", relay.token(&id)))
                .collect();
            tokens.push(format!("{}:[{}]", json_string(account), fresh.join(",")));
        }
        let line = format!(
            "{{\"relay\":\"{}\",\"tokens\":{{{}}}}}",
            relay.addr,
            tokens.join(",")
        );
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}").context("writing the address")?;
        stdout.flush().context("writing the address")?;
        drop(stdout);

        let (ended, stdin_ended) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::stdin().lock().read_to_end(&mut sink);
            let _ = ended.send(());
        });
        tokio::select! {
            _ = stdin_ended => {}
            () = tokio::time::sleep(Duration::from_secs(LIFETIME_S_MAX)) => {
                eprintln!("tandem-ffi-test-relay: stopping after {LIFETIME_S_MAX} s");
            }
        }
        relay.stop().await.context("stopping the relay")
    })
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
