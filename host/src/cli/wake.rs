//! `clauderon wake NAME` and `clauderon hibernate NAME`.

use std::process::ExitCode;

use clap::Args;

use super::api::{ApiClient, Autostart, EventStream, Session, encode};
use super::create::Progress;
use super::{Context, output};

/// Shows each progress event of `stream` on the spinner until the stream ends.
async fn show_progress(mut stream: EventStream, progress: Progress) {
    while let Ok(Some(ev)) = stream.next().await {
        let s = |k: &str| {
            ev.data
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        match ev.kind.as_str() {
            "progress" => progress.set(&format!("[{}] {}", s("stage"), s("message"))),
            "status" => progress.set(&format!("status {}", s("to"))),
            _ => {}
        }
    }
}

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

/// POSTs `body` to `path` for session `name`. On a terminal the request's progress events (a
/// slow wake says so every second) drive a spinner starting with `what` while it runs;
/// `--json` and pipes stay quiet.
pub(super) async fn post_showing_progress(
    api: &ApiClient,
    ctx: &Context,
    name: &str,
    what: &str,
    path: &str,
    body: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let progress = Progress::new(ctx.json, name);
    let follower = if progress.is_shown() {
        progress.set(what);
        api.follow_new_events(name)
            .await
            .ok()
            .map(|stream| tokio::spawn(show_progress(stream, progress.clone())))
    } else {
        None
    };
    let answer = api.post::<serde_json::Value>(path, &body).await;
    if let Some(task) = follower {
        task.abort();
    }
    progress.finish();
    Ok(answer?)
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
