//! Checkpoints: record the workspace's `git_head` (through plugin `exec`) with the plugin's
//! snapshot; restore takes an automatic safety checkpoint first, then restarts the agent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::plugins::ops::{self, CheckpointCreateRequest, CheckpointRestoreRequest, ExecRequest};
use crate::plugins::{Capabilities, FrameKind, PluginClient};
use crate::session::{SessionId, Status};
use crate::store::{CheckpointRecord, NewCheckpoint, SessionRecord};

use super::super::error::EngineError;
use super::{AgentInput, Engine};

const GIT_HEAD_TIMEOUT: Duration = Duration::from_secs(30);

impl Engine {
    /// Takes a checkpoint of a running session.
    pub async fn checkpoint(
        self: &Arc<Self>,
        id: SessionId,
        comment: String,
    ) -> Result<CheckpointRecord, EngineError> {
        let rt = self.runtime(id);
        let _op = rt.op_lock.lock().await;
        let rec = self.store().get(id).await?;
        self.checkpoint_locked(&rec, comment).await
    }

    async fn checkpoint_locked(
        self: &Arc<Self>,
        rec: &SessionRecord,
        comment: String,
    ) -> Result<CheckpointRecord, EngineError> {
        let client = self.checkpoint_client(rec)?;
        let instance = Engine::instance_of(rec)
            .ok_or_else(|| EngineError::Conflict("the session has no sandbox".into()))?;
        let git_head = self.git_head(&client, rec).await;
        self.progress(
            rec.id,
            "checkpoint",
            format!("taking a checkpoint: {comment}"),
        )
        .await;
        let req = CheckpointCreateRequest {
            instance,
            comment: Some(comment.clone()),
        };
        let made = self
            .plugin(rec.id, &client, "checkpoint", |c| async move {
                c.checkpoint_create(&req).await
            })
            .await
            .map_err(|e| EngineError::backend(client.name(), ops::CHECKPOINT_CREATE, e))?;
        self.save_instance(rec.id, &made.instance).await?;
        let cp = self
            .store()
            .add_checkpoint(NewCheckpoint {
                session_id: rec.id,
                comment,
                git_head,
                backend_ref: Some(made.checkpoint.id),
            })
            .await?;
        Ok(cp)
    }

    fn checkpoint_client(&self, rec: &SessionRecord) -> Result<Arc<PluginClient>, EngineError> {
        if rec.status != Status::Running {
            return Err(EngineError::Conflict(format!(
                "checkpoints need a running session; the session is {}{}",
                rec.status,
                if rec.status == Status::Hibernated {
                    " (wake it first)"
                } else {
                    ""
                }
            )));
        }
        let client = self.backends().get(&rec.backend)?;
        if !client.capabilities().contains(Capabilities::CHECKPOINT) {
            return Err(EngineError::Conflict(format!(
                "backend `{}` does not support checkpoints",
                client.name()
            )));
        }
        Ok(client)
    }

    /// `git rev-parse HEAD` in the workspace, through plugin `exec`; `None` when unknown.
    async fn git_head(&self, client: &PluginClient, rec: &SessionRecord) -> Option<String> {
        if !client.capabilities().contains(Capabilities::EXEC) {
            return None;
        }
        let cwd = self
            .store()
            .agent(rec.id)
            .await
            .ok()
            .and_then(|r| r.workspace)
            .unwrap_or_else(|| self.workspace_for(&rec.backend));
        let run = async {
            let (_, stream) = client
                .exec(&ExecRequest {
                    instance: Engine::instance_of(rec)?,
                    command: vec!["git".into(), "rev-parse".into(), "HEAD".into()],
                    env: BTreeMap::new(),
                    cwd: Some(cwd),
                    tty: false,
                })
                .await
                .ok()?;
            let (mut r, _w) = stream.split();
            let mut out = Vec::new();
            loop {
                let f = r.read_frame().await.ok()??;
                match f.kind {
                    FrameKind::Stdout => out.extend_from_slice(&f.payload),
                    FrameKind::Exit => {
                        return (f.exit_code() == Some(0))
                            .then(|| String::from_utf8_lossy(&out).trim().to_owned());
                    }
                    FrameKind::Error => return None,
                    _ => {}
                }
            }
        };
        let head = tokio::time::timeout(GIT_HEAD_TIMEOUT, run).await.ok()??;
        (head.len() >= 7 && head.chars().all(|c| c.is_ascii_hexdigit())).then_some(head)
    }

    /// Restores a checkpoint: a safety checkpoint first, then the plugin restore, then the
    /// agent started again (resuming its conversation). Returns the session and the safety
    /// checkpoint.
    pub async fn restore(
        self: &Arc<Self>,
        id: SessionId,
        checkpoint: &str,
    ) -> Result<(SessionRecord, CheckpointRecord), EngineError> {
        let rt = self.runtime(id);
        let _op = rt.op_lock.lock().await;
        let rec = self.store().get(id).await?;
        let target = self
            .store()
            .checkpoints(id)
            .await?
            .into_iter()
            .find(|c| c.id == checkpoint)
            .ok_or_else(|| {
                EngineError::NotFound(format!(
                    "session `{}` has no checkpoint `{}`; list them with GET \
                     /api/sessions/{}/checkpoints",
                    rec.name,
                    checkpoint.chars().take(64).collect::<String>(),
                    rec.name
                ))
            })?;
        let client = self.checkpoint_client(&rec)?;
        let backend_ref = target.backend_ref.clone().ok_or_else(|| {
            EngineError::Conflict("that checkpoint has no backend snapshot to restore".into())
        })?;
        let safety = self
            .checkpoint_locked(
                &rec,
                format!("automatic safety checkpoint before restoring {}", target.id),
            )
            .await?;
        if let Some(a) = rt.agent() {
            let _ = a.send(AgentInput::Signal("TERM".into())).await;
            a.detach().await;
        }
        self.progress(id, "restore", format!("restoring checkpoint {}", target.id))
            .await;
        let instance = Engine::instance_of(&self.store().get(id).await?)
            .ok_or_else(|| EngineError::Conflict("the session has no sandbox".into()))?;
        // The sandbox's files are about to go back in time: the sync holds (between two
        // cycles) before they do, so nothing missing there is taken for a deletion.
        self.sync_hold(id).await;
        let result = async {
            let req = CheckpointRestoreRequest {
                instance,
                checkpoint_id: backend_ref,
            };
            let restored = self
                .plugin(id, &client, "restore", |c| async move {
                    c.checkpoint_restore(&req).await
                })
                .await
                .map_err(|e| EngineError::backend(client.name(), ops::CHECKPOINT_RESTORE, e))?;
            self.save_instance(id, &restored.instance).await?;
            self.proxy_reconnect(id, true).await;
            let rec = self.store().get(id).await?;
            if !rec.options.print {
                self.progress(id, "agent", "restarting the agent").await;
                self.resume_agent(&rec, false).await?;
            }
            Ok::<_, EngineError>(())
        }
        .await;
        // A new epoch, whatever the restore did: files missing on one side come back from the
        // other, local edits made since survive.
        self.sync_send(id, super::sync::SyncCmd::NewEpoch);
        if let Err(e) = result {
            self.fail(id, &e.to_string()).await;
            return Err(e);
        }
        Ok((self.store().get(id).await?, safety))
    }
}
