//! `restart`: the agent started again in its sandbox, by default continuing its conversation
//! (`resume_args`), or afresh with the session's prompt. A running agent is stopped first
//! (SIGTERM, then SIGKILL after a grace); a failed session whose sandbox exists (its agent
//! exited at start) comes back to `running`; a hibernated one is woken first.

use std::sync::Arc;
use std::time::Duration;

use crate::session::{Event, SessionId, Status};
use crate::store::SessionRecord;

use super::super::error::EngineError;
use super::{AgentInput, Engine};

/// How long a stopping agent gets after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl Engine {
    /// Restarts the agent of session `id` (`fresh`: a new conversation with the prompt).
    pub async fn restart(
        self: &Arc<Self>,
        id: SessionId,
        fresh: bool,
    ) -> Result<SessionRecord, EngineError> {
        let rec = self.store().get(id).await?;
        if rec.status == Status::Hibernated {
            self.wake(id).await?;
            if !fresh {
                // Waking resumed the agent already.
                return Ok(self.store().get(id).await?);
            }
        }
        let rt = self.runtime(id);
        let _op = rt.op_lock.lock().await;
        let rec = self.store().get(id).await?;
        if rec.options.print {
            return Err(EngineError::Conflict(
                "a --print session's agent ran once; create a new session to run it again".into(),
            ));
        }
        if !matches!(rec.status, Status::Running | Status::Failed) {
            return Err(EngineError::Conflict(format!(
                "cannot restart the agent: the session is {}",
                rec.status
            )));
        }
        if Engine::instance_of(&rec).is_none() {
            return Err(EngineError::Conflict(
                "the session has no sandbox; delete it and create a new one".into(),
            ));
        }
        let _starting = rt.agent_start.lock().await;
        self.stop_agent(id).await;
        let was_failed = rec.status == Status::Failed;
        if was_failed {
            // The sandbox may have gone to sleep meanwhile; a start of an awake one is a no-op.
            self.start_sandbox(&rec).await?;
        }
        let started = if fresh {
            self.progress(id, "agent", "restarting the agent afresh")
                .await;
            match self.start_agent(&rec, None).await {
                Ok(a) => self.confirm_start(id, &a).await,
                Err(e) => Err(e),
            }
        } else {
            self.progress(id, "agent", "restarting the agent").await;
            self.resume_agent(&rec, true).await.map(|_| ())
        };
        if let Err(e) = started {
            if !was_failed {
                self.fail(id, &e.to_string()).await;
            } else {
                self.emit(
                    id,
                    crate::api::SessionEvent::Error {
                        message: e.to_string(),
                    },
                )
                .await;
            }
            return Err(e);
        }
        if was_failed {
            self.set_status(id, Event::Restarted, None).await?;
            self.arm_idle_timer(id, &rec);
        }
        Ok(self.store().get(id).await?)
    }

    /// Stops the agent's process if one runs (re-attaching to it first when no task holds its
    /// stream), and waits for it to end.
    async fn stop_agent(self: &Arc<Self>, id: SessionId) {
        let rt = self.runtime(id);
        let agent = match rt.agent() {
            Some(a) => Some(a),
            None => {
                let rec = self.store().get(id).await.ok();
                let row = self.store().agent(id).await.ok();
                match (rec, row) {
                    (Some(rec), Some(row))
                        if rec.status == Status::Running && row.exit_code.is_none() =>
                    {
                        match row.agent_session.as_deref() {
                            Some(sess) => self.attach_to(&rec, sess).await.ok().flatten(),
                            None => None,
                        }
                    }
                    _ => None,
                }
            }
        };
        let Some(agent) = agent else { return };
        for signal in ["TERM", "KILL"] {
            if agent.is_done() {
                return;
            }
            let _ = agent.send(AgentInput::Signal(signal.into())).await;
            if agent.wait_done(STOP_GRACE).await {
                return;
            }
        }
        agent.detach().await;
    }
}
