//! `clauderon pull NAME [--branch B]`: the session branch's commits from the sandbox into the
//! local repository (as `clauderon/<name>`, or B), through `POST /api/sessions/{ref}/pull`.

use std::process::ExitCode;

use clap::Args;

use super::Context;
use super::progress::session_action;
use crate::api::Pulled;

/// `clauderon pull NAME [--branch B]`
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The session's name or a unique prefix of its id.
    name: String,
    /// The local branch to fetch into (default `clauderon/<name>`); it only fast-forwards.
    #[arg(long, value_name = "B")]
    branch: Option<String>,
}

impl PullArgs {
    /// Runs `pull`.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let body = match &self.branch {
            Some(b) => serde_json::json!({ "branch": b }),
            None => serde_json::json!({}),
        };
        let answer: Option<Pulled> =
            session_action(ctx, &self.name, "pull", "pulling", body).await?;
        if let Some(p) = answer {
            let short = &p.commit[..p.commit.len().min(12)];
            if p.updated {
                println!(
                    "{} is at {short} ({} new commit(s) from {})",
                    p.branch, p.commits, self.name
                );
            } else {
                println!("{} is at {short} already", p.branch);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
