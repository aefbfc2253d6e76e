//! `clauderon daemon [start|stop|status]`: the bare command runs the daemon in the
//! foreground; the subcommands manage one running in the background.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::api::{ApiClient, Autostart, read_daemon_info};
use super::{Context, daemon_proc, output};

/// How long `daemon stop` waits for the daemon to exit after SIGTERM.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// `clauderon daemon [ACTION]`
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// What to do (none: run the daemon in the foreground).
    #[command(subcommand)]
    action: Option<DaemonAction>,
}

/// `clauderon daemon start|stop|status`
#[derive(Debug, Subcommand)]
pub enum DaemonAction {
    /// Start the daemon in the background (output appended to logs/daemon.log).
    Start,
    /// Stop the background daemon (SIGTERM, then wait for it to exit).
    Stop,
    /// Say whether the daemon runs, with its pid and address.
    Status,
}

impl DaemonArgs {
    /// Whether no action was given: the daemon runs in this process.
    pub fn is_foreground(&self) -> bool {
        self.action.is_none()
    }

    /// Runs the command.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        match self.action {
            None => foreground(ctx).await,
            Some(DaemonAction::Start) => start(ctx).await,
            Some(DaemonAction::Stop) => stop(ctx).await,
            Some(DaemonAction::Status) => status(ctx).await,
        }
    }
}

/// The daemon in the foreground: the server is the daemon module's.
async fn foreground(ctx: &Context) -> anyhow::Result<ExitCode> {
    crate::daemon::run(ctx.app(), ctx.backend.clone()).await
}

async fn start(ctx: &Context) -> anyhow::Result<ExitCode> {
    let already = ApiClient::connect(ctx, Autostart::No).await.ok();
    let (api, started) = match already {
        Some(api) => (api, false),
        None => (ApiClient::connect(ctx, Autostart::Yes).await?, true),
    };
    let health = api.health().await?;
    if ctx.json {
        output::print_json(&serde_json::json!({
            "started": started, "pid": health.pid, "addr": api.addr().to_string(),
            "version": health.version,
        }))?;
    } else if started {
        println!(
            "daemon started (pid {}, http://{}); log: {}",
            health.pid,
            api.addr(),
            daemon_proc::log_file(ctx.home()).display()
        );
    } else {
        println!(
            "daemon already running (pid {}, http://{})",
            health.pid,
            api.addr()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn stop(ctx: &Context) -> anyhow::Result<ExitCode> {
    let Some(info) = read_daemon_info(ctx) else {
        say(ctx, false, "no daemon is running")?;
        return Ok(ExitCode::SUCCESS);
    };
    match ApiClient::connect(ctx, Autostart::No).await {
        Ok(api) => {
            // Signal the pid the daemon itself reports, not merely what a file says.
            let pid = api.health().await?.pid;
            if !daemon_proc::terminate(pid, STOP_WAIT).await? {
                anyhow::bail!(
                    "the daemon (pid {pid}) did not exit within {}s of SIGTERM; see {}",
                    STOP_WAIT.as_secs(),
                    daemon_proc::log_file(ctx.home()).display()
                );
            }
            say(ctx, false, &format!("daemon stopped (pid {pid})"))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(_) if !daemon_proc::alive(info.pid) => {
            let _ = std::fs::remove_file(ctx.home().daemon_file());
            say(
                ctx,
                false,
                &format!(
                    "no daemon is running (removed a stale {} naming pid {})",
                    ctx.home().daemon_file().display(),
                    info.pid
                ),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => anyhow::bail!(
            "{} names pid {} at {}, which is alive but does not answer ({e:#}); if it is a stuck \
             clauderon daemon, stop it with `kill {}`",
            ctx.home().daemon_file().display(),
            info.pid,
            info.addr,
            info.pid
        ),
    }
}

fn say(ctx: &Context, running: bool, text: &str) -> anyhow::Result<()> {
    if ctx.json {
        output::print_json(&serde_json::json!({ "running": running, "message": text }))
    } else {
        println!("{text}");
        Ok(())
    }
}

async fn status(ctx: &Context) -> anyhow::Result<ExitCode> {
    match ApiClient::connect(ctx, Autostart::No).await {
        Ok(api) => {
            let h = api.health().await?;
            if ctx.json {
                output::print_json(&serde_json::json!({
                    "running": true, "pid": h.pid, "addr": api.addr().to_string(),
                    "version": h.version, "installation": h.installation,
                }))?;
            } else {
                println!(
                    "daemon running: pid {}, http://{}, version {}, installation {}",
                    h.pid,
                    api.addr(),
                    h.version,
                    h.installation
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if ctx.json {
                output::print_json(&serde_json::json!({
                    "running": false, "message": format!("{e:#}"),
                }))?;
            } else {
                println!("daemon not running: {e:#}");
            }
            Ok(ExitCode::from(super::EXIT_FAILURE))
        }
    }
}
