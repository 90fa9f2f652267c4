//! Shell completions and the man page come from the command-line
//! definition: every shell gets a script naming the commands.

use std::process::Command;

fn tandem(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .output()
        .expect("the tandem binary runs")
}

#[test]
fn completions_for_every_shell_name_the_commands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = tandem(&["completions", shell]);
        assert!(output.status.success(), "{shell}: {output:?}");
        let script = String::from_utf8(output.stdout).unwrap();
        assert!(script.len() > 1_000, "{shell}: {script}");
        for word in [
            "tandem",
            "demo",
            "dnd-mode",
            "pin-message",
            "receive-invitation",
        ] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
    }
    let refused = tandem(&["completions", "cmd.exe"]);
    assert!(!refused.status.success());
}

#[test]
fn the_man_page_is_roff_with_every_command() {
    let output = tandem(&["man"]);
    assert!(output.status.success(), "{output:?}");
    let page = String::from_utf8(output.stdout).unwrap();
    assert!(page.contains(".TH tandem 1"), "{page}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH SUBCOMMANDS"] {
        assert!(page.contains(section), "lacks {section}");
    }
    for command in ["relay", "demo", "completions", "events"] {
        assert!(page.contains(command), "lacks {command}");
    }
}
