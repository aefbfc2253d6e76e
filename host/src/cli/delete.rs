//! `clauderon delete NAME [--yes]`: destroys the session's sandbox after a confirmation, with a
//! warning first when the session branch has commits that exist only in the sandbox.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::Args;

use super::api::{ApiClient, Autostart, encode};
use super::{Context, UsageError, output};
use crate::api::render::unpushed_warning;
use crate::api::{SessionView as Session, SyncView, Unpushed};
use crate::session::Status;

/// `clauderon delete NAME`
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The session's name or a unique prefix of its id.
    name: String,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
}

impl DeleteArgs {
    /// Runs `delete`.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let interactive = std::io::stdin().is_terminal();
        // Off a terminal without --yes the answer is a refusal; the daemon is only asked (never
        // started) so the refusal can name unpushed commits.
        let refuse = !self.yes && !interactive;
        let refusal = |warned: bool| {
            UsageError::err(format!(
                "refusing to delete `{}` without confirmation: stdin is not a terminal; pass \
                 --yes to delete without asking{}",
                self.name,
                if warned {
                    " (and lose the unpushed commits above)"
                } else {
                    ""
                }
            ))
        };
        let path = format!("/api/sessions/{}", encode(&self.name));
        let (api, session) = if refuse {
            let Ok(api) = ApiClient::connect(ctx, Autostart::No).await else {
                return Err(refusal(false));
            };
            let Ok(session) = api.get::<Session>(&path).await else {
                return Err(refusal(false));
            };
            (api, session)
        } else {
            let api = ApiClient::connect(ctx, Autostart::Yes).await?;
            let session: Session = api.get(&path).await?;
            (api, session)
        };
        // Only a sandbox that exists can hold unpushed work.
        let warning = if matches!(session.status, Status::Running | Status::Hibernated) {
            match api
                .get::<Unpushed>(&format!(
                    "/api/sessions/{}/unpushed",
                    encode(&session.id.to_string())
                ))
                .await
            {
                Ok(u) => {
                    if !u.checked {
                        eprintln!(
                            "note: could not check {} for unpushed commits: {}",
                            session.name,
                            u.reason.as_deref().unwrap_or("no reason given")
                        );
                    }
                    unpushed_warning(session.name.as_str(), session.branch.as_deref(), &u)
                }
                Err(e) => {
                    eprintln!(
                        "note: could not check {} for unpushed commits: {e}",
                        session.name
                    );
                    None
                }
            }
        } else {
            None
        };
        if let Some(w) = &warning {
            eprintln!("{w}");
        }
        if refuse {
            return Err(refusal(warning.is_some()));
        }
        if !self.yes {
            eprint!(
                "Delete session {} ({}, backend {}, status {})? Its sandbox and everything in \
                 it that is not pushed is destroyed. [y/N] ",
                session.name, session.repository, session.backend, session.status
            );
            std::io::stderr().flush()?;
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                eprintln!("not deleted");
                return Ok(ExitCode::from(super::EXIT_FAILURE));
            }
        }
        // A synced session's conflict store outlives it (it may hold the only copy of a
        // version): where it is, to say so afterwards.
        let conflict_store = api
            .get::<SyncView>(&format!(
                "/api/sessions/{}/sync",
                encode(&session.id.to_string())
            ))
            .await
            .ok()
            .map(|s| std::path::PathBuf::from(s.conflict_store));
        // Delete by id: the name could be reused between the question and the answer.
        let v: serde_json::Value = api
            .delete(&format!(
                "/api/sessions/{}",
                encode(&session.id.to_string())
            ))
            .await?;
        if ctx.json {
            output::print_json(&v)?;
        } else {
            println!("deleted {}", session.name);
        }
        if let Some(store) = conflict_store.filter(|p| p.exists()) {
            eprintln!(
                "note: the sync's conflict store stays at {}: it may hold the only copy of a \
                 version; remove it when you no longer need it",
                store.display()
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
