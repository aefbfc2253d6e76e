//! `POST /api/reconcile` (`clauderon reconcile [--delete]`): the selected backend's sandboxes
//! labelled as clauderon's (`clauderon=1`) that no live session owns (left by a crash or a lost
//! store), listed, and destroyed on request. The daemon does it, so the CLI stays a thin client.
//!
//! Only this installation's sandboxes are candidates: several homes may share one provider
//! account. A sandbox is this installation's when its `clauderon.installation` label is this
//! home's id, or, lacking the label (made before installation ids), when its session is one this
//! home's store knows. Every other one is reported as foreign and never deleted.

use std::collections::{BTreeMap, HashSet};

use crate::api::{ForeignSandbox, Orphan, ReconcileReport};
use crate::plugins::{labels, ops};
use crate::session::Status;

use super::super::error::EngineError;
use super::Engine;

impl Engine {
    /// The orphans of backend `backend` (default: `default_backend`); `delete` destroys them.
    pub async fn reconcile_orphans(
        &self,
        backend: Option<&str>,
        delete: bool,
    ) -> Result<ReconcileReport, EngineError> {
        let client = self.backends().select(backend)?;
        if !client.supports(ops::LIST_INSTANCES) {
            return Err(EngineError::BadRequest(format!(
                "backend `{}` cannot list its sandboxes, so there is nothing to reconcile",
                client.name()
            )));
        }
        let sessions = self.store().list(true).await?;
        let known: HashSet<String> = sessions.iter().map(|s| s.id.to_string()).collect();
        let live: Vec<_> = sessions
            .iter()
            .filter(|s| s.status != Status::Deleted)
            .collect();
        let ids: HashSet<String> = live.iter().map(|s| s.id.to_string()).collect();
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
            .map_err(|e| EngineError::backend(client.name(), ops::LIST_INSTANCES, e))?;
        let mut orphans = Vec::new();
        let mut foreign = Vec::new();
        for i in listed.instances {
            // A cache store (a cache sprite) belongs to no session: never an orphan.
            if i.labels.contains_key(labels::CACHE) {
                continue;
            }
            let owner = i.labels.get(labels::SESSION).cloned().unwrap_or_default();
            let installation = i.labels.get(labels::INSTALLATION).cloned();
            let ours = match &installation {
                Some(x) => x == self.installation().as_str(),
                None => known.contains(&owner),
            };
            if !ours {
                foreign.push(ForeignSandbox {
                    instance: i.instance.id,
                    name: i.name,
                    session: owner,
                    installation,
                    status: i.status,
                });
                continue;
            }
            if ids.contains(&owner) || instances.contains(i.instance.id.as_str()) {
                continue;
            }
            let mut outcome = if delete { "deleted" } else { "orphaned" }.to_owned();
            if delete
                && let Err(e) = client
                    .delete(&ops::InstanceRequest {
                        instance: i.instance.clone(),
                    })
                    .await
            {
                outcome = format!("delete failed: {e}");
            }
            orphans.push(Orphan {
                instance: i.instance.id,
                name: i.name,
                session: owner,
                status: i.status,
                outcome,
            });
        }
        Ok(ReconcileReport {
            backend: client.name().to_owned(),
            orphans,
            foreign,
        })
    }
}
