//! The agent's state as its hooks report it (DESIGN §12). Reports arrive through the
//! credential proxy ([`crate::proxy::agent_reports`]), already tagged with the session whose
//! credential sent them; each may move the state (`working`, `waiting`, `idle`), carries the
//! agent's conversation id (what resuming hands back), and counts as the sign of life a start
//! waits for. Every change is an `agent_state` event.

use std::sync::Arc;

use crate::agent::{AgentState, read_hook};
use crate::api::{AgentStateEvent, SessionEvent};
use crate::proxy::AgentReport;
use crate::session::{SessionId, Status};

use super::Engine;

impl Engine {
    /// Takes agent reports from `reports` until it closes (the daemon's lifetime).
    pub fn listen_agent_reports(
        self: &Arc<Self>,
        mut reports: tokio::sync::mpsc::Receiver<AgentReport>,
    ) {
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            while let Some(r) = reports.recv().await {
                engine.agent_report(r).await;
            }
        });
    }

    /// Applies one report.
    async fn agent_report(&self, r: AgentReport) {
        let id = r.session;
        let live = matches!(
            self.store().get(id).await,
            Ok(rec) if matches!(rec.status, Status::Creating | Status::Running | Status::Waking | Status::Failed)
        );
        if !live {
            tracing::debug!(session = %id, "agent report for a session that is not running; ignored");
            return;
        }
        let hook = read_hook(&r.body);
        tracing::debug!(session = %id, event = %hook.event, "agent report");
        let before = match self.store().agent(id).await {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "cannot read the agent's row");
                return;
            }
        };
        // A report after the exit (a late hook of an agent that is gone) changes nothing.
        let exited = before.state.is_some_and(|s| s.exit_code().is_some());
        let state = hook.state.filter(|_| !exited);
        let conversation = hook.conversation.clone();
        let changed_state = state.is_some() && state != before.state;
        let changed_conv = conversation.is_some() && conversation != before.conversation;
        if changed_state || changed_conv {
            let written = self
                .store()
                .update_agent(id, move |row| {
                    if let Some(s) = state {
                        row.state = Some(s);
                    }
                    if let Some(c) = conversation {
                        row.conversation = Some(c);
                    }
                })
                .await;
            if let Err(e) = written {
                tracing::warn!(session = %id, error = %e, "cannot record the agent's state");
            }
        }
        if changed_state {
            self.emit_agent_state(id, state).await;
        }
        if hook.event != "SessionEnd" {
            self.runtime(id).count_report();
        }
    }

    /// Records an `agent_state` event (`None`: no agent process, e.g. after hibernating).
    pub(super) async fn emit_agent_state(&self, id: SessionId, state: Option<AgentState>) {
        self.emit(id, SessionEvent::AgentState(AgentStateEvent(state)))
            .await;
    }

    /// Forgets the agent's state (its process is gone: hibernated, deleted, restored).
    pub(super) async fn clear_agent_state(&self, id: SessionId) {
        match self.store().update_agent(id, |row| row.state = None).await {
            Ok(_) => self.emit_agent_state(id, None).await,
            Err(e) => tracing::warn!(session = %id, error = %e, "cannot clear the agent's state"),
        }
    }
}
