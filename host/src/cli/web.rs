//! `clauderon web`: a one-time sign-in link to the web UI (DESIGN §13), opened in a browser
//! when there is a display. The link works once, within 5 minutes; the daemon exchanges it for a
//! browser session cookie, so the API token never reaches the browser.

use std::process::{ExitCode, Stdio};
use std::time::Duration;

use clap::Args;

use super::api::{ApiClient, Autostart};
use super::{Context, output};

/// How long `xdg-open` may take to say whether it opened the link.
const OPEN_WAIT: Duration = Duration::from_secs(5);

/// `clauderon web [--no-open]`
#[derive(Debug, Args)]
pub struct WebArgs {
    /// Only print the link; do not open a browser.
    #[arg(long)]
    no_open: bool,
}

/// The answer of `POST /api/web/login-token`.
#[derive(Debug, serde::Deserialize)]
struct LoginToken {
    /// `/login?token=...`.
    path: String,
    /// How long the link works.
    expires_in_seconds: u64,
}

/// Whether a graphical session is there to open a browser in.
fn has_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// Opens `url` with `xdg-open`; `Err` says why it did not (never fatal).
async fn open_browser(url: &str) -> Result<(), String> {
    let child = tokio::process::Command::new("xdg-open")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("xdg-open is not installed".into());
        }
        Err(e) => return Err(format!("cannot run xdg-open: {e}")),
    };
    match tokio::time::timeout(OPEN_WAIT, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("xdg-open failed ({status})")),
        Ok(Err(e)) => Err(format!("xdg-open: {e}")),
        // Some openers stay until the browser exits: it was started.
        Err(_) => Ok(()),
    }
}

impl WebArgs {
    /// Runs `web`: prints the sign-in link and opens it when it can.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let api = ApiClient::connect(ctx, Autostart::Yes).await?;
        let t: LoginToken = api
            .post("/api/web/login-token", &serde_json::json!({}))
            .await?;
        let url = api.url(&t.path);
        let opened = if self.no_open {
            Err("--no-open".to_owned())
        } else if has_display() {
            open_browser(&url).await
        } else {
            Err("no display: neither DISPLAY nor WAYLAND_DISPLAY is set".to_owned())
        };
        if ctx.json {
            output::print_json(&serde_json::json!({
                "url": url,
                "expires_in_seconds": t.expires_in_seconds,
                "opened": opened.is_ok(),
            }))?;
            return Ok(ExitCode::SUCCESS);
        }
        let minutes = t.expires_in_seconds.div_ceil(60);
        println!(
            "The clauderon web UI; this sign-in link works once, within {minutes} minutes:\n\n  \
             {url}\n"
        );
        match opened {
            Ok(()) => println!("Opened it in your browser."),
            Err(why) => println!("Open it in a browser on this machine ({why})."),
        }
        Ok(ExitCode::SUCCESS)
    }
}
