//! `clauderon hibernate NAME`: returns once the session is hibernated.

use std::process::ExitCode;

use clap::Args;

use super::Context;
use super::progress::session_action;
use crate::api::SessionAnswer;

/// `clauderon hibernate NAME`
#[derive(Debug, Args)]
pub struct HibernateArgs {
    /// The session's name or a unique prefix of its id.
    name: String,
}

impl HibernateArgs {
    /// Runs `hibernate`: returns once the session is hibernated.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let answer: Option<SessionAnswer> = session_action(
            ctx,
            &self.name,
            "hibernate",
            "hibernating",
            serde_json::json!({}),
        )
        .await?;
        if let Some(h) = answer {
            println!(
                "{} is {}; wake it with `clauderon wake {}` (attach wakes it too)",
                h.session.name, h.session.status, h.session.name
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
