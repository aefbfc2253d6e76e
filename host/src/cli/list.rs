//! `clauderon list`: every session as a table (`--json`: the sessions as a JSON array).

use std::process::ExitCode;

use clap::Args;

use super::api::{ApiClient, Autostart, Session};
use super::{Context, output};

/// `clauderon list [--all]`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Include deleted sessions.
    #[arg(long)]
    all: bool,
}

#[derive(serde::Deserialize)]
struct Sessions {
    sessions: Vec<serde_json::Value>,
}

impl ListArgs {
    /// Runs `list`.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let api = ApiClient::connect(ctx, Autostart::Yes).await?;
        let path = if self.all {
            "/api/sessions?all=true"
        } else {
            "/api/sessions"
        };
        let list: Sessions = api.get(path).await?;
        if ctx.json {
            output::print_json(&list.sessions)?;
            return Ok(ExitCode::SUCCESS);
        }
        if list.sessions.is_empty() {
            println!("no sessions; create one with `clauderon create --repo PATH --prompt TEXT`");
            return Ok(ExitCode::SUCCESS);
        }
        let sessions: Vec<Session> = list
            .sessions
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<_, _>>()?;
        print!(
            "{}",
            output::sessions_table(&sessions, time::OffsetDateTime::now_utc())
        );
        Ok(ExitCode::SUCCESS)
    }
}
