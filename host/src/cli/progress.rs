//! Showing long work on a terminal: a spinner whose line follows the session's events while a
//! request runs; nothing with `--json` or when stderr is not a terminal.

use std::io::IsTerminal as _;
use std::time::Duration;

use super::Context;
use super::api::{ApiClient, Autostart, EventStream, encode};
use crate::api::render;

/// A spinner on a terminal's stderr; nothing otherwise (`--json` or not a TTY).
#[derive(Clone)]
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    /// A spinner for session `name`, or nothing with `--json` or off a terminal.
    pub fn new(json: bool, name: &str) -> Progress {
        if json || !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_prefix(name.to_owned());
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {prefix}: {msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(100));
        bar.set_message("creating");
        Progress { bar: Some(bar) }
    }

    /// Whether anything is shown (a terminal, without `--json`).
    pub fn is_shown(&self) -> bool {
        self.bar.is_some()
    }

    /// Replaces the spinner's message.
    pub fn set(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_owned());
        }
    }

    /// Prints a line above the spinner.
    pub fn note(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.println(msg);
        }
    }

    /// Removes the spinner.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Shows each progress and status event of `stream` on the spinner until the stream ends.
async fn show_progress(mut stream: EventStream, progress: Progress) {
    while let Ok(Some(ev)) = stream.next().await {
        if let Some(event) = ev.event()
            && matches!(
                event,
                crate::api::SessionEvent::Progress(_) | crate::api::SessionEvent::Status(_)
            )
            && let Some(line) = render::line(&event)
        {
            progress.set(&line);
        }
    }
}

/// `POST /api/sessions/{name}/{action}` with `body`, on a terminal with a spinner (starting
/// with `what`) that follows the session's events while it runs. With `--json` the answer is
/// printed and `None` returned; otherwise it is returned decoded, for the command to say what
/// happened.
pub async fn session_action<T: serde::de::DeserializeOwned>(
    ctx: &Context,
    name: &str,
    action: &str,
    what: &str,
    body: serde_json::Value,
) -> anyhow::Result<Option<T>> {
    let api = ApiClient::connect(ctx, Autostart::Yes).await?;
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
    let path = format!("/api/sessions/{}/{action}", encode(name));
    let answer = api.post::<serde_json::Value>(&path, &body).await;
    if let Some(task) = follower {
        task.abort();
    }
    progress.finish();
    let v = answer?;
    if ctx.json {
        super::output::print_json(&v)?;
        return Ok(None);
    }
    Ok(Some(serde_json::from_value(v)?))
}
