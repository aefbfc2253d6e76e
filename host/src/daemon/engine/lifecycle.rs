//! Hibernate, wake and delete: each runs under the session's operation lock, moves the status
//! through the state machine, calls the plugin, and marks the session failed (with the plugin
//! named) when the plugin fails.

use std::sync::Arc;
use std::time::Instant;

use crate::plugins::ops::{self, InstanceRequest};
use crate::plugins::{Capabilities, ErrorKind};
use crate::session::{Event, SessionId, Status};
use crate::store::SessionRecord;

use super::super::error::EngineError;
use super::cache_save::SaveTrigger;
use super::{AgentInput, Engine};

impl Engine {
    /// Hibernates a running session (`why`: who asked, for the log).
    pub async fn hibernate(
        self: &Arc<Self>,
        id: SessionId,
        why: &str,
    ) -> Result<SessionRecord, EngineError> {
        let rt = self.runtime(id);
        let _op = rt.op_lock.lock().await;
        let rec = self.store().get(id).await?;
        let client = self.backends().get(&rec.backend)?;
        if !client.capabilities().contains(Capabilities::HIBERNATE) {
            return Err(EngineError::Conflict(format!(
                "backend `{}` cannot hibernate sandboxes",
                client.name()
            )));
        }
        let instance = Engine::instance_of(&rec)
            .ok_or_else(|| EngineError::Conflict("the session has no sandbox".into()))?;
        self.set_status(id, Event::HibernateRequested, None).await?;
        self.disarm_idle_timer(id);
        // The sync pauses: its helper's stream must not keep the sandbox awake.
        self.sync_send(id, super::sync::SyncCmd::Pause);
        if let Some(a) = rt.agent() {
            a.detach().await;
        }
        self.save_caches_before(id, SaveTrigger::Hibernate).await;
        self.progress(id, "hibernate", format!("hibernating ({why})"))
            .await;
        let slept = self
            .plugin(id, &client, "hibernate", |c| async move {
                c.hibernate(&InstanceRequest { instance }).await
            })
            .await;
        match slept {
            Ok(r) => {
                self.save_instance(id, &r.instance).await?;
                self.set_status(id, Event::Hibernated, None).await?;
                self.clear_agent_state(id).await;
                Ok(self.store().get(id).await?)
            }
            Err(e) => {
                let err = EngineError::backend(client.name(), ops::HIBERNATE, e);
                self.fail(id, &err.to_string()).await;
                Err(err)
            }
        }
    }

    /// Wakes a hibernated (or failed) session and brings its agent back; returns the session
    /// and how long it took.
    pub async fn wake(
        self: &Arc<Self>,
        id: SessionId,
    ) -> Result<(SessionRecord, u128), EngineError> {
        let started = Instant::now();
        let rt = self.runtime(id);
        let _op = rt.op_lock.lock().await;
        let rec = self.store().get(id).await?;
        if rec.status == Status::Running {
            return Err(EngineError::Conflict(
                "cannot wake: the session is running already".into(),
            ));
        }
        self.backends().get(&rec.backend)?;
        if Engine::instance_of(&rec).is_none() {
            return Err(EngineError::Conflict(
                "the session's sandbox was never made; delete it and create a new one".into(),
            ));
        }
        self.set_status(id, Event::WakeRequested, None).await?;
        self.progress(id, "wake", "waking the sandbox").await;
        let woke = self.start_sandbox(&rec).await;
        let result = async {
            woke?;
            let rec = self.store().get(id).await?;
            let row = self.store().agent(id).await?;
            if !rec.options.print && row.exit_code.is_none() {
                self.progress(id, "agent", "re-attaching the agent").await;
                self.reattach(&rec, row.agent_session.as_deref()).await?;
            }
            self.set_status(id, Event::Woke, None).await?;
            Ok::<_, EngineError>(rec)
        }
        .await;
        match result {
            Ok(rec) => {
                self.arm_idle_timer(id, &rec);
                // Local edits queued while it slept go now.
                self.sync_send(id, super::sync::SyncCmd::Nudge);
                let rec = self.store().get(id).await?;
                Ok((rec, started.elapsed().as_millis()))
            }
            Err(e) => {
                self.fail(id, &e.to_string()).await;
                Err(e)
            }
        }
    }

    /// Wakes (or starts) a session's sandbox through the plugin, stores the instance the plugin
    /// returns and brings back the sandbox's way to the credential proxy.
    pub(super) async fn start_sandbox(
        self: &Arc<Self>,
        rec: &SessionRecord,
    ) -> Result<(), EngineError> {
        let id = rec.id;
        let client = self.backends().get(&rec.backend)?;
        let instance = Engine::instance_of(rec)
            .ok_or_else(|| EngineError::Conflict("the session has no sandbox".into()))?;
        let woke: ops::InstanceResponse = if client.capabilities().contains(Capabilities::HIBERNATE)
        {
            self.plugin(id, &client, "wake", |c| async move {
                c.wake(&InstanceRequest { instance }).await
            })
            .await
            .map_err(|e| EngineError::backend(client.name(), ops::WAKE, e))?
        } else {
            self.plugin(id, &client, "wake", |c| async move {
                c.start(&InstanceRequest { instance }).await
            })
            .await
            .map_err(|e| EngineError::backend(client.name(), ops::START, e))?
        };
        self.save_instance(id, &woke.instance).await?;
        self.proxy_reconnect(id, false).await;
        Ok(())
    }

    /// Deletes a session's sandbox and marks it deleted (any status but deleted).
    pub async fn delete(self: &Arc<Self>, id: SessionId) -> Result<SessionRecord, EngineError> {
        let rt = self.runtime(id);
        if let Some(t) = super::lock(&rt.create_task).take() {
            t.abort();
        }
        let _op = rt.op_lock.lock().await;
        // A plugin `create` still running for an aborted create flow stores its instance
        // first, so the sandbox it makes is deleted below rather than left behind.
        drop(rt.sandbox_call.lock().await);
        let rec = self.store().get(id).await?;
        if rec.status != Status::Deleting {
            self.set_status(id, Event::DeleteRequested, None).await?;
        }
        self.finish_delete(id).await
    }

    /// Plugin `delete` of a session's sandbox, its events recorded under `delete`.
    pub(super) async fn delete_sandbox(
        &self,
        id: SessionId,
        client: &Arc<crate::plugins::PluginClient>,
        instance: crate::plugins::ops::Instance,
    ) -> Result<crate::plugins::ops::Empty, crate::plugins::PluginError> {
        self.plugin(id, client, "delete", |c| async move {
            c.delete(&InstanceRequest { instance }).await
        })
        .await
    }

    /// The part of delete after `deleting` is recorded (also run by reconcile).
    pub(super) async fn finish_delete(
        self: &Arc<Self>,
        id: SessionId,
    ) -> Result<SessionRecord, EngineError> {
        let rt = self.runtime(id);
        self.disarm_idle_timer(id);
        if let Some(a) = rt.agent() {
            let _ = a.send(AgentInput::Signal("TERM".into())).await;
            a.detach().await;
        }
        let rec = self.store().get(id).await?;
        if rec.instance_id.is_some() {
            self.save_caches_before(id, SaveTrigger::Delete).await;
        }
        let rec = self.store().get(id).await?;
        if let Some(instance) = Engine::instance_of(&rec) {
            self.progress(id, "delete", "deleting the sandbox").await;
            let client = self.backends().get(&rec.backend)?;
            match self.delete_sandbox(id, &client, instance).await {
                Ok(_) => {}
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => {
                    let err = EngineError::backend(client.name(), ops::DELETE, e);
                    self.fail(id, &err.to_string()).await;
                    return Err(err);
                }
            }
        }
        self.proxy_forget(id);
        self.clear_agent_state(id).await;
        self.sync_remove(&rec).await;
        self.set_status(id, Event::Deleted, None).await?;
        // Nothing runs for a deleted session any more; its runtime goes with it.
        self.forget_runtime(id);
        Ok(self.store().get(id).await?)
    }
}
