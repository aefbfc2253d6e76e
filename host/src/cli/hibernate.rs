//! `clauderon hibernate NAME`: returns once the session is hibernated.

use std::process::ExitCode;

use clap::Args;

use super::api::{ApiClient, Autostart, encode};
use super::{Context, output};
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
        let api = ApiClient::connect(ctx, Autostart::Yes).await?;
        let v: serde_json::Value = api
            .post(
                &format!("/api/sessions/{}/hibernate", encode(&self.name)),
                &serde_json::json!({}),
            )
            .await?;
        if ctx.json {
            output::print_json(&v)?;
        } else {
            let h: SessionAnswer = serde_json::from_value(v)?;
            println!(
                "{} is {}; wake it with `clauderon wake {}` (attach wakes it too)",
                h.session.name, h.session.status, h.session.name
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
