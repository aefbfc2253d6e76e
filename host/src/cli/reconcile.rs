//! `clauderon reconcile [--delete]`: sandboxes the selected backend labels as clauderon's
//! (`clauderon=1`) that no live session owns (left behind by a crash or a lost store), listed,
//! and destroyed with `--delete`.

use std::collections::{BTreeMap, HashSet};
use std::process::ExitCode;

use clap::Args;

use super::api::{ApiClient, Autostart, Session};
use super::{Context, output};
use crate::plugins::{labels, ops};

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
        let client = ctx.backend_client()?;
        if !client.supports(ops::LIST_INSTANCES) {
            anyhow::bail!(
                "backend `{}` cannot list its sandboxes, so there is nothing to reconcile",
                client.name()
            );
        }
        let api = ApiClient::connect(ctx, Autostart::Yes).await?;
        let v: serde_json::Value = api.get("/api/sessions?all=true").await?;
        let sessions: Vec<Session> =
            serde_json::from_value(v.get("sessions").cloned().unwrap_or_default())?;
        let live: Vec<&Session> = sessions.iter().filter(|s| s.status != "deleted").collect();
        let ids: HashSet<&str> = live.iter().map(|s| s.id.as_str()).collect();
        let instances: HashSet<&str> = live
            .iter()
            .filter_map(|s| s.instance_id.as_deref())
            .collect();
        let listed = client
            .list_instances(&ops::ListInstancesRequest {
                labels: BTreeMap::from([(
                    labels::MARKER.to_owned(),
                    labels::MARKER_VALUE.to_owned(),
                )]),
            })
            .await
            .map_err(|e| anyhow::anyhow!("backend `{}`: {e}", client.name()))?;
        let orphans: Vec<ops::InstanceSummary> = listed
            .instances
            .into_iter()
            .filter(|i| {
                let owner = i.labels.get(labels::SESSION).map(String::as_str);
                !owner.is_some_and(|o| ids.contains(o))
                    && !instances.contains(i.instance.id.as_str())
            })
            .collect();
        let mut failed = 0;
        let mut rows = Vec::new();
        for o in &orphans {
            let owner = o.labels.get(labels::SESSION).cloned().unwrap_or_default();
            let mut outcome = if self.delete { "deleted" } else { "orphaned" }.to_owned();
            if self.delete
                && let Err(e) = client
                    .delete(&ops::InstanceRequest {
                        instance: o.instance.clone(),
                    })
                    .await
            {
                failed += 1;
                outcome = format!("delete failed: {e}");
            }
            rows.push(serde_json::json!({
                "instance": o.instance.id,
                "name": o.name,
                "session": owner,
                "status": o.status,
                "outcome": outcome,
            }));
        }
        if ctx.json {
            output::print_json(&serde_json::json!({"backend": client.name(), "orphans": rows}))?;
        } else if rows.is_empty() {
            println!("no orphaned sandboxes on `{}`", client.name());
        } else {
            for r in &rows {
                println!(
                    "{}  session {}  {}",
                    r["instance"].as_str().unwrap_or_default(),
                    r["session"]
                        .as_str()
                        .filter(|s| !s.is_empty())
                        .unwrap_or("-"),
                    r["outcome"].as_str().unwrap_or_default()
                );
            }
            if !self.delete {
                println!("delete them with `clauderon reconcile --delete`");
            }
        }
        Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}
