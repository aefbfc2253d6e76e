//! `clauderon restart NAME [--fresh]`: start a session's agent again.

use std::process::ExitCode;

use clap::Args;

use super::Context;
use super::progress::session_action;
use crate::api::SessionAnswer;

/// `clauderon restart NAME [--fresh]`
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// The session's name or a unique prefix of its id.
    name: String,
    /// Start a new conversation with the session's prompt instead of resuming the last one.
    #[arg(long)]
    fresh: bool,
}

impl RestartArgs {
    /// Runs `restart`: returns once the agent started again (or says why it did not).
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let answer: Option<SessionAnswer> = session_action(
            ctx,
            &self.name,
            "restart",
            "restarting the agent",
            serde_json::json!({ "fresh": self.fresh }),
        )
        .await?;
        if let Some(r) = answer {
            let how = match (&r.session.agent_conversation, self.fresh) {
                (_, true) => "in a new conversation".to_owned(),
                (Some(c), false) => format!("resuming conversation {c}"),
                (None, false) => "continuing its latest conversation".to_owned(),
            };
            let state = r
                .session
                .agent
                .map_or_else(|| "started".to_owned(), |a| a.to_string());
            println!(
                "{}: the agent is {state} ({how}); attach with `clauderon attach {}`",
                r.session.name, r.session.name
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
