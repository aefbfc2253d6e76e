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
        } else {
            print!("{}", report_text(&report, self.delete));
        }
        Ok(if report.failures() == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

/// The human report: orphans with what was done, then the sandboxes left alone because they
/// belong to another installation.
fn report_text(report: &ReconcileReport, deleting: bool) -> String {
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    let mut out = String::new();
    if report.orphans.is_empty() {
        out.push_str(&format!("no orphaned sandboxes on `{}`\n", report.backend));
    } else {
        for o in &report.orphans {
            out.push_str(&format!(
                "{}  session {}  {}\n",
                o.instance,
                dash(&o.session),
                o.outcome
            ));
        }
        if !deleting {
            out.push_str("delete them with `clauderon reconcile --delete`\n");
        }
    }
    if !report.foreign.is_empty() {
        out.push_str(&format!(
            "left alone: {} sandbox(es) on `{}` that are not this installation's (another \
             clauderon home on the same account, or made before installation ids); reconcile them \
             from their own home:\n",
            report.foreign.len(),
            report.backend
        ));
        for f in &report.foreign {
            let owner = match &f.installation {
                Some(id) => format!("installation {id}"),
                None => "no installation label".to_owned(),
            };
            out.push_str(&format!(
                "  {}  session {}  {owner}\n",
                f.instance,
                dash(&f.session)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ForeignSandbox, Orphan};
    use crate::plugins::ops::InstanceStatus;

    #[test]
    fn orphans_and_foreign_sandboxes_read_apart() {
        let report = ReconcileReport {
            backend: "sprites".into(),
            orphans: vec![Orphan {
                instance: "orphan-1".into(),
                name: None,
                session: "0000".into(),
                status: InstanceStatus::Running,
                outcome: "orphaned".into(),
            }],
            foreign: vec![
                ForeignSandbox {
                    instance: "theirs-1".into(),
                    name: None,
                    session: "1111".into(),
                    installation: Some("ab".repeat(16)),
                    status: InstanceStatus::Running,
                },
                ForeignSandbox {
                    instance: "old-1".into(),
                    name: None,
                    session: String::new(),
                    installation: None,
                    status: InstanceStatus::Hibernated,
                },
            ],
        };
        insta::assert_snapshot!(report_text(&report, false), @r"
        orphan-1  session 0000  orphaned
        delete them with `clauderon reconcile --delete`
        left alone: 2 sandbox(es) on `sprites` that are not this installation's (another clauderon home on the same account, or made before installation ids); reconcile them from their own home:
          theirs-1  session 1111  installation abababababababababababababababab
          old-1  session -  no installation label
        ");
    }
}
