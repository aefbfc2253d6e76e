//! `clauderon reconcile [--delete]`: sandboxes the selected backend labels as clauderon's
//! (`clauderon=1`) that no live session owns (left behind by a crash or a lost store), listed,
//! and destroyed with `--delete`. The daemon does the work (`POST /api/reconcile`).

use std::process::ExitCode;

use clap::Args;

use super::api::{ApiClient, Autostart};
use super::{Context, output};
use crate::api::{ReconcileReport, ReconcileRequest};

/// `clauderon reconcile [--delete]`
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Destroy the orphaned sandboxes (without it they are only listed).
    #[arg(long)]
    delete: bool,
}

impl ReconcileArgs {
    /// Runs `reconcile`: exit 0 when every orphan was handled, 1 when a delete failed.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let api = ApiClient::connect(ctx, Autostart::Yes).await?;
        let req = ReconcileRequest {
            backend: ctx.backend.clone(),
            delete: self.delete,
        };
        let report: ReconcileReport = api
            .post("/api/reconcile", &serde_json::to_value(&req)?)
            .await?;
        if ctx.json {
            output::print_json(&report)?;
        } else if report.orphans.is_empty() {
            println!("no orphaned sandboxes on `{}`", report.backend);
        } else {
            for o in &report.orphans {
                println!(
                    "{}  session {}  {}",
                    o.instance,
                    if o.session.is_empty() {
                        "-"
                    } else {
                        &o.session
                    },
                    o.outcome
                );
            }
            if !self.delete {
                println!("delete them with `clauderon reconcile --delete`");
            }
        }
        Ok(if report.failures() == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}
