//! `clauderon wake NAME`: returns once the session runs, saying how long waking took.

use std::process::ExitCode;

use clap::Args;

use super::Context;
use super::progress::session_action;
use crate::api::Woken;

/// `clauderon wake NAME`
#[derive(Debug, Args)]
pub struct WakeArgs {
    /// The session's name or a unique prefix of its id.
    name: String,
}

impl WakeArgs {
    /// Runs `wake`: returns once the session runs, and says how long waking took.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let answer: Option<Woken> =
            session_action(ctx, &self.name, "wake", "waking", serde_json::json!({})).await?;
        if let Some(w) = answer {
            println!(
                "{} is {} (woke in {:.1}s)",
                w.session.name,
                w.session.status,
                w.elapsed_ms as f64 / 1000.0
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
