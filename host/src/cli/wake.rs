//! `clauderon wake NAME`: returns once the session runs, saying how long waking took.

use std::process::ExitCode;

use clap::Args;

use super::api::{ApiClient, Autostart, encode};
use super::progress::post_showing_progress;
use super::{Context, output};
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
        let api = ApiClient::connect(ctx, Autostart::Yes).await?;
        let v = post_showing_progress(
            &api,
            ctx,
            &self.name,
            "waking",
            &format!("/api/sessions/{}/wake", encode(&self.name)),
            serde_json::json!({}),
        )
        .await?;
        if ctx.json {
            output::print_json(&v)?;
        } else {
            let w: Woken = serde_json::from_value(v)?;
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
