//! How the API shows a session and a checkpoint.

use crate::agent::AgentState;
use crate::session::{SessionId, SessionName, SessionOptions, Status};

/// A session as the API shows it (no plugin instance state).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    pub agent: Option<AgentState>,
    /// The agent's own conversation id, which resuming hands back to it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub agent_conversation: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// A checkpoint as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// One build cache in `GET /api/caches`: a project's store in one scope and its entries.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CacheView {
    /// The cache's key (`p-…`: the project's, `s-…`: one session name's).
    pub key: String,
    /// The project (its origin, or its root commit).
    pub project: String,
    /// `project` or `session`.
    pub scope: crate::session::CacheScope,
    /// For scope `session`: the session name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The backend holding it.
    pub backend: String,
    /// The cache types it holds (`cargo`, `npm`, `./dir`).
    pub types: Vec<String>,
    /// The total size of its entries, in bytes.
    pub size: u64,
    /// When an entry was last saved or restored (RFC 3339).
    pub last_used: String,
    /// The backend's store (for Sprites, the cache sprite's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The store's state at the backend (`hibernated`, `running`, `gone`, `unknown`).
    pub state: String,
    /// Its entries, oldest first.
    pub entries: Vec<CacheEntryView>,
}

/// One entry of a build cache.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheEntryView {
    /// The entry's key.
    pub key: String,
    /// Its cache type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was saved (RFC 3339).
    pub created_at: String,
    /// When it was last saved or restored (RFC 3339).
    pub last_used: String,
}
