//! `clauderon completions bash|zsh|fish`: a completion script on stdout.

use std::process::ExitCode;

use clap::{Args, CommandFactory as _, ValueEnum};

/// The shells supported.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    /// bash
    Bash,
    /// zsh
    Zsh,
    /// fish
    Fish,
}

/// `clauderon completions SHELL`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    shell: Shell,
}

impl CompletionsArgs {
    /// Prints the script.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let shell = match self.shell {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        };
        let mut cmd = super::Cli::command();
        clap_complete::generate(shell, &mut cmd, "clauderon", &mut std::io::stdout());
        Ok(ExitCode::SUCCESS)
    }
}
