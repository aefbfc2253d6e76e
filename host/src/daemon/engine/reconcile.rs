//! Reconcile on daemon start (before serving): every non-deleted session is compared with
//! what its backend reports, interrupted operations are finished, and running sessions get
//! their agent task and idle timer back.

use std::sync::Arc;

use crate::plugins::ErrorKind;
use crate::plugins::ops::{InstanceRequest, InstanceStatus};
use crate::session::{Event, Observed, Status};
use crate::store::SessionRecord;

use super::super::error::EngineError;
use super::Engine;

/// The reason recorded when the backend no longer knows a session's sandbox.
pub const GONE_REASON: &str = "the sandbox no longer exists";

/// The reason recorded when the daemon restarted while a `--print` run had not ended.
pub const PRINT_RESTART_REASON: &str = "the daemon restarted during this --print run, so the \
     agent's remaining output and exit code are unknown; the sandbox is kept (`clauderon logs` \
     shows the output recorded before the restart; run it again, or delete the session)";

impl Engine {
    /// Reconciles every non-deleted session; failures are logged per session, never fatal.
    pub async fn reconcile(self: &Arc<Self>) -> Result<(), EngineError> {
        let sessions = self.store().list(false).await?;
        for rec in sessions {
            let id = rec.id;
            if let Err(e) = self.reconcile_one(rec).await {
                tracing::warn!(session = %id, error = %e, "reconcile failed");
            }
        }
        Ok(())
    }

    async fn reconcile_one(self: &Arc<Self>, rec: SessionRecord) -> Result<(), EngineError> {
        let id = rec.id;
        let client = match self.backends().get(&rec.backend) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(session = %id, "cannot reconcile: {e}");
                return Ok(());
            }
        };
        match rec.status {
            Status::Creating => {
                self.progress(
                    id,
                    "create",
                    "the daemon restarted during create; starting over",
                )
                .await;
                self.spawn_create(rec, None);
                return Ok(());
            }
            Status::Deleting => {
                let engine = Arc::clone(self);
                tokio::spawn(async move {
                    let rt = engine.runtime(id);
                    let _op = rt.op_lock.lock().await;
                    if let Err(e) = engine.finish_delete(id).await {
                        tracing::warn!(session = %id, error = %e, "finishing a delete failed");
                    }
                });
                return Ok(());
            }
            _ => {}
        }
        let Some(instance) = Engine::instance_of(&rec) else {
            if rec.status != Status::Failed {
                self.fail(id, "the session has no sandbox").await;
            }
            return Ok(());
        };
        let observed = match client.status(&InstanceRequest { instance }).await {
            Ok(r) => {
                self.save_instance(id, &r.instance).await?;
                match r.status {
                    InstanceStatus::Gone => Some(Observed::Missing),
                    InstanceStatus::Hibernated | InstanceStatus::Stopped => {
                        Some(Observed::Hibernated)
                    }
                    InstanceStatus::Running => Some(Observed::Running),
                    InstanceStatus::Creating | InstanceStatus::Unknown => None,
                }
            }
            Err(e) if e.kind == ErrorKind::NotFound => Some(Observed::Missing),
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "backend status failed; keeping the stored status");
                None
            }
        };
        // A failed session stays failed unless the sandbox is really gone (then the reason
        // says so); observations move every other status.
        let to = match observed {
            Some(Observed::Missing) => {
                self.set_status(
                    id,
                    Event::Observed(Observed::Missing),
                    Some(GONE_REASON.into()),
                )
                .await?
            }
            Some(o) if rec.status != Status::Failed => {
                self.set_status(id, Event::Observed(o), None).await?
            }
            _ => rec.status,
        };
        if to == Status::Running {
            self.proxy_reconnect(id, false).await;
            let rec = self.store().get(id).await?;
            let row = self.store().agent(id).await?;
            self.arm_idle_timer(id, &rec);
            if let Ok(Some(_)) = self.store().sync_record(id).await {
                self.sync_spawn(id);
            }
            if rec.options.print {
                if row.exit_code.is_none() {
                    // A --print run's output stream cannot be re-joined: end it clearly (the CLI
                    // following it exits 1 with this reason) rather than leave it running with
                    // an exit code that will never come.
                    self.disarm_idle_timer(id);
                    self.fail(id, PRINT_RESTART_REASON).await;
                }
                return Ok(());
            }
            if row.exit_code.is_none() {
                let engine = Arc::clone(self);
                tokio::spawn(async move {
                    if let Err(e) = engine.ensure_agent(id).await {
                        tracing::warn!(session = %id, error = %e, "cannot re-attach the agent");
                    }
                });
            }
        }
        Ok(())
    }
}
