//! `clauderon wake NAME` and `clauderon hibernate NAME`.

use std::process::ExitCode;

use clap::Args;

use super::api::{ApiClient, Autostart, Session, encode};
use super::{Context, output};

/// `clauderon wake NAME`
#[derive(Debug, Args)]
pub struct WakeArgs {
    /// The session's name or a unique prefix of its id.
    name: String,
}

#[derive(serde::Deserialize, serde::Serialize)]
struct Woken {
    session: Session,
    #[serde(default)]
    elapsed_ms: u64,
}

impl WakeArgs {
    /// Runs `wake`: returns once the session runs, and says how long waking took.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let api = ApiClient::connect(ctx, Autostart::Yes).await?;
        let v: serde_json::Value = api
            .post(
                &format!("/api/sessions/{}/wake", encode(&self.name)),
                &serde_json::json!({}),
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

/// `clauderon hibernate NAME`
#[derive(Debug, Args)]
pub struct HibernateArgs {
    /// The session's name or a unique prefix of its id.
    name: String,
}

#[derive(serde::Deserialize)]
struct Hibernated {
    session: Session,
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
            let h: Hibernated = serde_json::from_value(v)?;
            println!(
                "{} is {}; wake it with `clauderon wake {}` (attach wakes it too)",
                h.session.name, h.session.status, h.session.name
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
