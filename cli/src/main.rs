//! `tandem`: run a relay, issue tokens, drive a device, play the demo, run
//! the benchmarks.

#![forbid(unsafe_code)]

use clap::{CommandFactory, Parser, Subcommand};

mod bench;
mod demo;
mod device_cmd;
mod docs_cmd;
mod relay_cmd;

/// Tandem keeps one user's IM state in step across all their devices.
#[derive(Debug, Parser)]
#[command(name = "tandem", version, about)]
struct Cli {
    #[command(flatten)]
    device: device_cmd::DeviceArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a relay server until Ctrl-C.
    Relay(relay_cmd::RelayArgs),
    /// Print a token the relay accepts for an account.
    Token(relay_cmd::TokenArgs),
    /// Play the demo: an embedded relay and three devices of one account
    /// going offline, making changes and reconciling.
    Demo(demo::DemoArgs),
    #[command(flatten)]
    Device(device_cmd::DeviceCommand),
    /// Benchmark Tandem against the floor and its peers, side by side.
    Bench(bench::BenchArgs),
    /// Print shell completions: tandem completions bash > /etc/bash_completion.d/tandem
    Completions(docs_cmd::CompletionsArgs),
    /// Print the man page: tandem man > tandem.1
    Man,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Relay(args) => relay_cmd::relay(args),
        Command::Token(args) => relay_cmd::token(args),
        Command::Demo(args) => demo::run(args),
        Command::Device(command) => device_cmd::run(cli.device, command),
        Command::Bench(args) => bench::run(args),
        Command::Completions(args) => docs_cmd::completions(Cli::command(), args),
        Command::Man => docs_cmd::man(Cli::command()),
    };
    if let Err(error) = result {
        // One clear line, then a non-zero exit.
        eprintln!("tandem: {error:#}");
        std::process::exit(1);
    }
}
