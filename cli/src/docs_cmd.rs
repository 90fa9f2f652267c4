//! `tandem completions <shell>` and `tandem man`: shell completions and a
//! man page, generated from the command-line definition itself.

use std::io::Write;

use clap::{Args, ValueEnum};

/// Which shell to print completions for.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    shell: ShellArg,
}

/// The shells clap_complete writes for, each with its help line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ShellArg {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
    /// Elvish.
    Elvish,
    /// PowerShell.
    Powershell,
}

impl From<ShellArg> for clap_complete::Shell {
    fn from(shell: ShellArg) -> Self {
        match shell {
            ShellArg::Bash => clap_complete::Shell::Bash,
            ShellArg::Zsh => clap_complete::Shell::Zsh,
            ShellArg::Fish => clap_complete::Shell::Fish,
            ShellArg::Elvish => clap_complete::Shell::Elvish,
            ShellArg::Powershell => clap_complete::Shell::PowerShell,
        }
    }
}

/// Prints the completion script for `args.shell` to stdout.
pub fn completions(mut command: clap::Command, args: CompletionsArgs) -> anyhow::Result<()> {
    let name = command.get_name().to_owned();
    let mut out = Vec::new();
    clap_complete::generate(
        clap_complete::Shell::from(args.shell),
        &mut command,
        name,
        &mut out,
    );
    std::io::stdout().write_all(&out)?;
    Ok(())
}

/// Prints the man page (roff) to stdout: `tandem man > tandem.1`.
pub fn man(command: clap::Command) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(command).render(&mut out)?;
    std::io::stdout().write_all(&out)?;
    Ok(())
}
