//! `clauderon delete NAME [--yes]`: destroys the session's sandbox after a confirmation.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::Args;

use super::api::{ApiClient, Autostart, Session, encode};
use super::{Context, UsageError, output};

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
        if !self.yes && !interactive {
            return Err(UsageError::err(format!(
                "refusing to delete `{}` without confirmation: stdin is not a terminal; pass \
                 --yes to delete without asking",
                self.name
            )));
        }
        let api = ApiClient::connect(ctx, Autostart::Yes).await?;
        let path = format!("/api/sessions/{}", encode(&self.name));
        let session: Session = api.get(&path).await?;
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
        // Delete by id: the name could be reused between the question and the answer.
        let v: serde_json::Value = api
            .delete(&format!("/api/sessions/{}", encode(&session.id)))
            .await?;
        if ctx.json {
            output::print_json(&v)?;
        } else {
            println!("deleted {}", session.name);
        }
        Ok(ExitCode::SUCCESS)
    }
}
