//! The JSON shapes of the API (DESIGN §9): `Session` and checkpoints.

use crate::session::{SessionId, SessionName, SessionOptions, Status};
use crate::store::{CheckpointRecord, SessionRecord};

use super::engine::agents::AgentRow;

/// A session as the API shows it (no plugin instance state).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SessionView {
    /// Stable id.
    pub id: SessionId,
    /// Unique name.
    pub name: SessionName,
    /// The backend plugin.
    pub backend: String,
    /// The repository on the host.
    pub repository: String,
    /// The session branch.
    pub branch: Option<String>,
    /// The initial prompt.
    pub prompt: String,
    /// The create options.
    pub options: SessionOptions,
    /// Current status.
    pub status: Status,
    /// Why it failed, while failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status_reason: Option<String>,
    /// The backend's sandbox id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub instance_id: Option<String>,
    /// The plugin's detachable session id of the agent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub agent_session: Option<String>,
    /// The agent's exit code once it exited (`--print`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub agent_exit_code: Option<i32>,
    /// What the agent is doing (`{"state": "working"}`, `{"state": "exited", "code": 1}`);
    /// null when no agent process is expected (hibernated, deleted).
    #[serde(default)]
    pub agent: Option<crate::agent::AgentState>,
    /// The agent's own conversation id, which resuming hands back to it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub agent_conversation: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl SessionView {
    /// The view of a stored session and its agent row.
    pub fn new(rec: SessionRecord, agent: Option<&AgentRow>) -> Self {
        Self {
            id: rec.id,
            name: rec.name,
            backend: rec.backend,
            repository: rec.repository,
            branch: rec.branch,
            prompt: rec.prompt,
            options: rec.options,
            status: rec.status,
            status_reason: rec.failure_reason,
            instance_id: rec.instance_id,
            agent_session: agent.and_then(|a| a.agent_session.clone()),
            agent_exit_code: agent.and_then(|a| a.exit_code),
            agent: agent.and_then(|a| a.state),
            agent_conversation: agent.and_then(|a| a.conversation.clone()),
            created_at: rfc3339(rec.created_at),
            updated_at: rfc3339(rec.updated_at),
        }
    }
}

/// A checkpoint as the API shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CheckpointView {
    /// Checkpoint id.
    pub id: String,
    /// The comment.
    pub comment: String,
    /// RFC 3339.
    pub created_at: String,
    /// The workspace's git HEAD when it was taken.
    pub git_head: Option<String>,
}

impl From<CheckpointRecord> for CheckpointView {
    fn from(c: CheckpointRecord) -> Self {
        Self {
            id: c.id,
            comment: c.comment,
            created_at: rfc3339(c.created_at),
            git_head: c.git_head,
        }
    }
}
