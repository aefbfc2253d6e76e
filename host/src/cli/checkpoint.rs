//! `clauderon checkpoint create NAME "comment" | list NAME | restore NAME ID`.

use std::process::ExitCode;

use clap::Subcommand;

use super::api::{ApiClient, Autostart, encode};
use super::{Context, output};
use crate::api::{CheckpointList, CheckpointView as Checkpoint, Restored};

/// `clauderon checkpoint ...`
#[derive(Debug, Subcommand)]
pub enum CheckpointCommand {
    /// Save the sandbox's state now.
    Create {
        /// The session's name or a unique prefix of its id.
        name: String,
        /// What this checkpoint is.
        comment: String,
    },
    /// List a session's checkpoints.
    List {
        /// The session's name or a unique prefix of its id.
        name: String,
    },
    /// Roll the sandbox back to a checkpoint (the current state is saved first).
    Restore {
        /// The session's name or a unique prefix of its id.
        name: String,
        /// The checkpoint id.
        id: String,
    },
}

impl CheckpointCommand {
    /// Runs the subcommand.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let api = ApiClient::connect(ctx, Autostart::Yes).await?;
        match self {
            CheckpointCommand::Create { name, comment } => {
                let v: serde_json::Value = api
                    .post(
                        &format!("/api/sessions/{}/checkpoints", encode(&name)),
                        &serde_json::json!({ "comment": comment }),
                    )
                    .await?;
                if ctx.json {
                    output::print_json(&v)?;
                } else {
                    let c: Checkpoint = serde_json::from_value(v)?;
                    println!(
                        "checkpoint {} of {name}{}",
                        c.id,
                        c.git_head
                            .map(|h| format!(" (git HEAD {h})"))
                            .unwrap_or_default()
                    );
                }
            }
            CheckpointCommand::List { name } => {
                let list: CheckpointList = api
                    .get(&format!("/api/sessions/{}/checkpoints", encode(&name)))
                    .await?;
                if ctx.json {
                    output::print_json(&list.checkpoints)?;
                } else if list.checkpoints.is_empty() {
                    println!(
                        "no checkpoints; make one with `clauderon checkpoint create {name} \"comment\"`"
                    );
                } else {
                    print!("{}", table(&list.checkpoints));
                }
            }
            CheckpointCommand::Restore { name, id } => {
                let v: serde_json::Value = api
                    .post(
                        &format!(
                            "/api/sessions/{}/checkpoints/{}/restore",
                            encode(&name),
                            encode(&id)
                        ),
                        &serde_json::json!({}),
                    )
                    .await?;
                if ctx.json {
                    output::print_json(&v)?;
                } else {
                    let r: Restored = serde_json::from_value(v)?;
                    println!("restored {} to checkpoint {id}", r.session.name);
                    let s = r.safety_checkpoint;
                    println!(
                        "the state before was saved as checkpoint {}; undo with `clauderon \
                         checkpoint restore {} {}`",
                        s.id, r.session.name, s.id
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn table(cps: &[Checkpoint]) -> String {
    let mut rows = vec![[
        "ID".to_owned(),
        "CREATED".to_owned(),
        "GIT HEAD".to_owned(),
        "COMMENT".to_owned(),
    ]];
    for c in cps {
        rows.push([
            c.id.clone(),
            c.created_at.clone(),
            c.git_head
                .as_deref()
                .map_or_else(|| "-".to_owned(), |h| h.chars().take(12).collect()),
            c.comment.clone(),
        ]);
    }
    let w: Vec<usize> = (0..3)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            format!(
                "{:<w0$}  {:<w1$}  {:<w2$}  {}\n",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2]
            )
        })
        .collect()
}
