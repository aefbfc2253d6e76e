//! The command-line interface: one module per subcommand, each a thin client of the host.
//! Every command is `async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode>`.

mod context;
pub mod plugins;
pub mod proxy;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use context::Context;

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for a failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for a usage error.
pub const EXIT_USAGE: u8 = 2;

/// clauderon: run AI coding agents in isolated cloud sandboxes.
#[derive(Debug, Parser)]
#[command(name = "clauderon", version, about)]
pub struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// The backend plugin to use (overrides `default_backend`).
    #[arg(long, global = true, env = "CLAUDERON_BACKEND", value_name = "NAME")]
    pub backend: Option<String>,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. New ones are sibling modules added here.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect backend plugins.
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// The credential proxy: audit logs and rules.
    #[command(subcommand)]
    Proxy(proxy::ProxyCommand),
}

impl Cli {
    /// Runs the parsed command.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let ctx = Context::new(self.json, self.backend)?;
        let result = match self.command {
            Command::Plugins(cmd) => cmd.run(&ctx).await,
            Command::Proxy(cmd) => cmd.run(&ctx).await,
        };
        ctx.shutdown();
        result
    }
}
