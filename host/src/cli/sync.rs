//! `clauderon sync NAME [--stop|--start|--once|--confirm-deletions|--restore]`,
//! `clauderon sync NAME resolve PATH --take local|sprite` and
//! `clauderon sync NAME history --take local|sprite`: a thin client of
//! `GET|POST /api/sessions/{ref}/sync` and its `resolve` and `history` routes (DESIGN §15).

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::api::{ApiClient, Autostart, encode};
use super::{Context, output};
use crate::api::{SyncAction, SyncView};

/// `clauderon sync ...`
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The session's name or a unique prefix of its id.
    name: String,
    /// Stop syncing (the worktree stays; nothing moves either way).
    #[arg(long, group = "act")]
    stop: bool,
    /// Start syncing again.
    #[arg(long, group = "act")]
    start: bool,
    /// One full reconcile now, then exit.
    #[arg(long, group = "act")]
    once: bool,
    /// Propagate a mass deletion the sync paused on.
    #[arg(long, group = "act")]
    confirm_deletions: bool,
    /// Reconcile as a new epoch: files missing on one side come back from the other.
    #[arg(long, group = "act")]
    restore: bool,
    #[command(subcommand)]
    command: Option<SyncCommand>,
}

/// `clauderon sync NAME resolve ...`
#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Resolve a conflict: the version taken wins on both sides.
    Resolve {
        /// The path, relative to the worktree.
        path: String,
        /// `local` or `sprite`.
        #[arg(long, value_name = "SIDE")]
        take: String,
    },
    /// Diverged history: the other side's branch follows this side's commits (a mixed
    /// reset; nothing is merged, the commits given up stay in the reflog).
    History {
        /// `local` or `sprite`.
        #[arg(long, value_name = "SIDE")]
        take: String,
    },
}

impl SyncArgs {
    /// Runs the command.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let api = ApiClient::connect(ctx, Autostart::Yes).await?;
        let route = format!("/api/sessions/{}/sync", encode(&self.name));
        let action = [
            (self.stop, SyncAction::Stop),
            (self.start, SyncAction::Start),
            (self.once, SyncAction::Once),
            (self.confirm_deletions, SyncAction::ConfirmDeletions),
            (self.restore, SyncAction::Restore),
        ]
        .into_iter()
        .find_map(|(on, a)| on.then_some(a));
        let view: SyncView = match (self.command, action) {
            (Some(SyncCommand::Resolve { path, take }), _) => {
                api.post(
                    &format!("{route}/resolve"),
                    &serde_json::json!({ "path": path, "take": take }),
                )
                .await?
            }
            (Some(SyncCommand::History { take }), _) => {
                api.post(
                    &format!("{route}/history"),
                    &serde_json::json!({ "take": take }),
                )
                .await?
            }
            (None, Some(a)) => {
                api.post(&route, &serde_json::json!({ "action": a }))
                    .await?
            }
            (None, None) => api.get(&route).await?,
        };
        if ctx.json {
            output::print_json(&view)?;
        } else {
            print!("{}", render(&self.name, &view));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The text form of a sync's state.
pub fn render(name: &str, v: &SyncView) -> String {
    let mut s = format!("sync of {name}: {}", v.state);
    if let Some(r) = &v.reason {
        s.push_str(&format!(" ({r})"));
    }
    s.push('\n');
    s.push_str(&format!("  worktree    {}\n", v.worktree));
    s.push_str(&format!(
        "  synced      {} path(s); pending local {}\n",
        v.synced, v.pending_local
    ));
    s.push_str(&format!(
        "  last sync   {} ({} cycle(s) since the daemon started it)\n",
        v.last_sync.as_deref().unwrap_or("never"),
        v.cycles
    ));
    let head = v
        .agreed_head
        .as_deref()
        .map(|h| &h[..h.len().min(12)])
        .unwrap_or("none");
    match v.history.as_str() {
        "diverged" | "off" => s.push_str(&format!(
            "  history     {} ({})\n",
            v.history.replace('_', " "),
            v.history_reason.as_deref().unwrap_or("no reason given")
        )),
        _ => s.push_str(&format!("  history     in step at {head}\n")),
    }
    if let Some(e) = &v.last_error {
        s.push_str(&format!("  last error  {e}\n"));
    }
    if !v.conflicts.is_empty() {
        s.push_str(&format!(
            "  conflicts   {} (both versions in {}):\n",
            v.conflicts.len(),
            v.conflict_store
        ));
        for c in &v.conflicts {
            s.push_str(&format!(
                "    {}: local {}, sprite {}\n",
                c.path, c.local, c.sprite
            ));
        }
        s.push_str(&format!(
            "  resolve with `clauderon sync {name} resolve PATH --take local|sprite`\n"
        ));
    }
    s
}
