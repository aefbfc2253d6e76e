//! `clauderon list`: every session as a table (`--json`: the sessions as a JSON array).

use std::process::ExitCode;

use clap::Args;

use super::api::{ApiClient, Autostart};
use super::{Context, output};
use crate::api::{SessionList, SessionSummaryList};

/// `clauderon list [--all]`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Include deleted sessions.
    #[arg(long)]
    all: bool,
}

impl ListArgs {
    /// Runs `list`.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let api = ApiClient::connect(ctx, Autostart::Yes).await?;
        let all = if self.all { "?all=true" } else { "?all=false" };
        if ctx.json {
            let list: SessionList = api.get(&format!("/api/sessions{all}")).await?;
            output::print_json(&list.sessions)?;
            return Ok(ExitCode::SUCCESS);
        }
        // The table needs only the summaries, which the daemon reads and sends for a fraction
        // of the full views' cost.
        let list: SessionSummaryList = api.get(&format!("/api/sessions{all}&view=summary")).await?;
        if list.sessions.is_empty() {
            println!("no sessions; create one with `clauderon create --repo PATH --prompt TEXT`");
            return Ok(ExitCode::SUCCESS);
        }
        print!(
            "{}",
            output::sessions_table(&list.sessions, time::OffsetDateTime::now_utc())
        );
        Ok(ExitCode::SUCCESS)
    }
}
