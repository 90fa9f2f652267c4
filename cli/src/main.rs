//! `tandem`: run a relay, issue tokens, operate a relay, drive a device,
//! play the demo.

#![forbid(unsafe_code)]

use clap::{CommandFactory, Parser, Subcommand};

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
    /// Print a single-use login token for an account (what an app's auth
    /// service issues).
    Token(relay_cmd::TokenArgs),
    /// Operator commands against a running relay: list, kick, revoke,
    /// ban, unban, remove.
    Admin(relay_cmd::AdminArgs),
    /// Play the demo: an embedded relay and three devices of one account
    /// going offline, making changes and reconciling.
    Demo(demo::DemoArgs),
    #[command(flatten)]
    Device(device_cmd::DeviceCommand),
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
        // An operator command talks to one node: the first of --relay.
        Command::Admin(args) => relay_cmd::admin(
            args,
            cli.device.relay().and_then(|r| r.split(',').next()),
            cli.device.account(),
        ),
        Command::Demo(args) => demo::run(args),
        Command::Device(command) => device_cmd::run(cli.device, command),
        Command::Completions(args) => docs_cmd::completions(Cli::command(), args),
        Command::Man => docs_cmd::man(Cli::command()),
    };
    if let Err(error) = result {
        // One clear line, then a non-zero exit.
        eprintln!("tandem: {}", one_line(&error));
        std::process::exit(1);
    }
}

/// The error and its causes on one line, each cause once: many of the
/// library errors already say their source in their own message, so a cause
/// the line already holds is not repeated.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every command, argument and possible value under `command` that has
    /// no description, by its path.
    fn undocumented(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in command.get_arguments() {
            if arg.is_hide_set() || ["help", "version"].contains(&arg.get_id().as_str()) {
                continue;
            }
            let name = format!("{path} <{}>", arg.get_id());
            if arg.get_help().is_none() {
                missing.push(name.clone());
            }
            for value in arg.get_possible_values() {
                if !value.is_hide_set() && value.get_help().is_none() {
                    missing.push(format!("{name}={}", value.get_name()));
                }
            }
        }
        for sub in command.get_subcommands() {
            let sub_path = format!("{path} {}", sub.get_name());
            if sub.is_hide_set() {
                continue;
            }
            if sub.get_about().is_none() {
                missing.push(sub_path.clone());
            }
            undocumented(sub, &sub_path, missing);
        }
    }

    #[test]
    fn every_command_and_argument_has_help() {
        let mut cli = Cli::command();
        cli.build();
        let mut missing = Vec::new();
        undocumented(&cli, "tandem", &mut missing);
        assert!(missing.is_empty(), "no help for: {missing:#?}");
        // And every help page renders, nested ones included.
        fn render(command: &mut clap::Command, pages: &mut usize) {
            let page = command.render_long_help().to_string();
            assert!(!page.is_empty());
            *pages += 1;
            for sub in command.get_subcommands_mut() {
                render(sub, pages);
            }
        }
        let mut pages = 0;
        render(&mut cli, &mut pages);
        assert!(pages > 60, "only {pages} help pages");
    }

    #[test]
    fn an_error_line_says_each_cause_once() {
        // An error that says its source and also returns it, as many do.
        #[derive(Debug)]
        struct Open(std::io::Error);
        impl std::fmt::Display for Open {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "cannot open the store: {}", self.0)
            }
        }
        impl std::error::Error for Open {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = || std::io::Error::other("disk on fire");
        // A cause the message already holds is said once.
        let error = anyhow::Error::new(Open(io())).context("relay store");
        assert_eq!(
            one_line(&error),
            "relay store: cannot open the store: disk on fire"
        );
        // A cause it does not hold is added.
        let error = anyhow::Error::new(io()).context("secret file s");
        assert_eq!(one_line(&error), "secret file s: disk on fire");
    }

    #[test]
    fn relay_takes_host_port_or_ws_and_refuses_the_rest_clearly() {
        let parse = |relay: &str| {
            Cli::try_parse_from(["tandem", "--data", "d.db", "--relay", relay, "sync"])
        };
        for good in [
            "127.0.0.1:7700",
            "relay.example:1",
            "ws://127.0.0.1:7701",
            "ws://relay/tandem",
        ] {
            let cli = parse(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert_eq!(cli.device.relay(), Some(good));
        }
        // Several nodes, comma-separated, each trimmed.
        for (list, kept) in [
            (
                "127.0.0.1:7700,127.0.0.1:7701",
                "127.0.0.1:7700,127.0.0.1:7701",
            ),
            (" a:1 , ws://b/x", "a:1,ws://b/x"),
        ] {
            let cli = parse(list).unwrap_or_else(|e| panic!("{list}: {e}"));
            assert_eq!(cli.device.relay(), Some(kept));
        }
        for (bad, says) in [
            ("wss://relay:443", "not supported"),
            ("ftp://relay:21", "unknown scheme"),
            ("relay", "needs a port"),
            // One bad among good ones, and empty items, by place.
            ("a:1,relay,b:2", "relay address 2 of 3 (\"relay\")"),
            (
                "a:1,,b:2",
                "relay address 2 of 3 (\"\"): the relay address is empty",
            ),
            ("a:1,", "relay address 2 of 2"),
            ("", "relay address 1 of 1"),
        ] {
            let error = parse(bad).unwrap_err().to_string();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn timeout_s_is_bounded_at_1_and_a_day() {
        let parse = |timeout: &str| {
            Cli::try_parse_from(["tandem", "--data", "d.db", "sync", "--timeout-s", timeout])
        };
        for good in ["1", "30", "86400"] {
            assert!(parse(good).is_ok(), "{good}");
        }
        for bad in ["0", "86401", "-1", "18446744073709551616", "x"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
