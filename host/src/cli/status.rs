//! `clauderon status NAME`: one session in detail.

use std::process::ExitCode;

use clap::Args;

use super::api::{ApiClient, Autostart, encode};
use super::{Context, output};
use crate::api::SessionView;

/// `clauderon status NAME`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The session's name or a unique prefix of its id.
    name: String,
}

impl StatusArgs {
    /// Runs `status`.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let api = ApiClient::connect(ctx, Autostart::Yes).await?;
        let v: serde_json::Value = api
            .get(&format!("/api/sessions/{}", encode(&self.name)))
            .await?;
        if ctx.json {
            output::print_json(&v)?;
        } else {
            let s: SessionView = serde_json::from_value(v)?;
            print!(
                "{}",
                output::session_details(&s, time::OffsetDateTime::now_utc())
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
