//! The command-line interface: one module per subcommand, each a thin client of the daemon's
//! API (DESIGN §9) or, for `config`, `plugins` and `completions`, of the local host library.
//! Every command is `async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode>`.

pub mod api;
mod attach;
mod cache;
mod checkpoint;
mod completions;
mod config;
mod context;
mod create;
pub mod daemon;
pub mod daemon_proc;
mod delete;
mod hibernate;
mod list;
mod logs;
mod output;
pub mod plugins;
mod progress;
pub mod proxy;
mod pull;
mod reconcile;
mod restart;
mod status;
mod sync;
pub mod tui;
mod wake;
mod web;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use context::Context;

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for a failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for a usage error.
pub const EXIT_USAGE: u8 = 2;

/// A usage error: bad input the user can fix (exit code 2). Commands return it inside
/// `anyhow::Error`; `main` finds it with `downcast_ref`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl UsageError {
    /// An `anyhow::Error` holding a usage error.
    pub fn err(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(UsageError(message.into()))
    }
}

/// The exit code for an error returned by a command: 2 for usage errors (including the
/// daemon's 400 answers: bad input, such as an ambiguous id prefix), else 1.
pub fn exit_code_for(e: &anyhow::Error) -> u8 {
    let usage = |c: &(dyn std::error::Error + 'static)| {
        c.downcast_ref::<UsageError>().is_some()
            || matches!(
                c.downcast_ref::<api::ApiError>(),
                Some(api::ApiError::Api { status: 400, .. })
            )
    };
    if e.chain().any(usage) {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    }
}

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
    /// Create a session: a sandbox with the repository cloned and the agent started.
    Create(create::CreateArgs),
    /// List sessions.
    #[command(alias = "ls")]
    List(list::ListArgs),
    /// Show one session.
    Status(status::StatusArgs),
    /// Attach the terminal to a session's agent (detach with Ctrl-]).
    Attach(attach::AttachArgs),
    /// Wake a hibernated session.
    Wake(wake::WakeArgs),
    /// Start a session's agent again (its conversation continues; --fresh for a new one).
    Restart(restart::RestartArgs),
    /// List (and with --delete destroy) sandboxes labelled as ours that no session owns.
    Reconcile(reconcile::ReconcileArgs),
    /// Hibernate a session now.
    Hibernate(hibernate::HibernateArgs),
    /// Delete a session and destroy its sandbox.
    #[command(alias = "rm")]
    Delete(delete::DeleteArgs),
    /// Show a session's events and agent output.
    Logs(logs::LogsArgs),
    /// Build caches that outlive sessions: save, list, clear, collect.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Create, list and restore checkpoints of a session's sandbox.
    #[command(subcommand)]
    Checkpoint(checkpoint::CheckpointCommand),
    /// A session's two-way sync (created with --sync): state, stop/start, once, resolve.
    Sync(sync::SyncArgs),
    /// Fetch the session branch's commits from the sandbox into the local repository.
    Pull(pull::PullArgs),
    /// Show the configuration, file paths and credentials.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Inspect backend plugins.
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// Run the daemon in the foreground, or start, stop or query it in the background.
    Daemon(daemon::DaemonArgs),
    /// Print a shell completion script.
    Completions(completions::CompletionsArgs),
    /// The credential proxy: audit logs and rules.
    #[command(subcommand)]
    Proxy(proxy::ProxyCommand),
    /// Open the web UI: prints a one-time sign-in link and opens it in a browser.
    Web(web::WebArgs),
    /// Watch and manage the sessions in a terminal UI: a live table, create, attach, wake,
    /// hibernate, checkpoints and delete (`?` lists the keys).
    Tui(tui::TuiArgs),
}

impl Command {
    /// Whether this is the bare `clauderon daemon` (the daemon in the foreground).
    pub fn is_foreground_daemon(&self) -> bool {
        matches!(self, Command::Daemon(a) if a.is_foreground())
    }
}

impl Cli {
    /// Runs the parsed command.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let ctx = Context::new(self.json, self.backend)?;
        let result = match self.command {
            Command::Create(a) => a.run(&ctx).await,
            Command::List(a) => a.run(&ctx).await,
            Command::Status(a) => a.run(&ctx).await,
            Command::Attach(a) => a.run(&ctx).await,
            Command::Wake(a) => a.run(&ctx).await,
            Command::Restart(a) => a.run(&ctx).await,
            Command::Reconcile(a) => a.run(&ctx).await,
            Command::Hibernate(a) => a.run(&ctx).await,
            Command::Delete(a) => a.run(&ctx).await,
            Command::Logs(a) => a.run(&ctx).await,
            Command::Cache(c) => c.run(&ctx).await,
            Command::Checkpoint(c) => c.run(&ctx).await,
            Command::Sync(a) => a.run(&ctx).await,
            Command::Pull(a) => a.run(&ctx).await,
            Command::Config(c) => c.run(&ctx).await,
            Command::Plugins(cmd) => cmd.run(&ctx).await,
            Command::Daemon(a) => a.run(&ctx).await,
            Command::Completions(a) => a.run(),
            Command::Proxy(cmd) => cmd.run(&ctx).await,
            Command::Web(a) => a.run(&ctx).await,
            Command::Tui(a) => a.run(&ctx).await,
        };
        ctx.shutdown();
        result
    }
}
