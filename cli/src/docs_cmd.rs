//! `tandem completions <shell>` and `tandem man`: shell completions and a
//! man page, generated from the command-line definition itself.

use std::io::Write;

use clap::Args;

/// Which shell to print completions for.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

/// Prints the completion script for `args.shell` to stdout.
pub fn completions(mut command: clap::Command, args: CompletionsArgs) -> anyhow::Result<()> {
    let name = command.get_name().to_owned();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut out);
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
