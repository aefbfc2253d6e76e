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

/// What a session list shows of a session (`GET /api/sessions?view=summary`): enough for a
/// table or a list page, without the prompt, options or the agent's ids.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SessionSummary {
    /// Stable id.
    pub id: SessionId,
    /// Unique name.
    pub name: SessionName,
    /// The backend plugin.
    pub backend: String,
    /// The repository on the host.
    pub repository: String,
    /// The session branch.
    #[serde(default)]
    pub branch: Option<String>,
    /// Current status.
    pub status: Status,
    /// Why it failed, while failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status_reason: Option<String>,
    /// What the agent is doing; null when no agent process is expected.
    #[serde(default)]
    pub agent: Option<AgentState>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339 (for a hibernated session: when it went to sleep).
    pub updated_at: String,
}

impl From<&SessionView> for SessionSummary {
    /// What a list shows of a session read in full (a client that re-reads one session).
    fn from(s: &SessionView) -> Self {
        SessionSummary {
            id: s.id,
            name: s.name.clone(),
            backend: s.backend.clone(),
            repository: s.repository.clone(),
            branch: s.branch.clone(),
            status: s.status,
            status_reason: s.status_reason.clone(),
            agent: s.agent,
            created_at: s.created_at.clone(),
            updated_at: s.updated_at.clone(),
        }
    }
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
    /// The entry this one is a layer over (absent: a whole archive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
}

/// A session's two-way sync as the API shows it (`GET /api/sessions/{ref}/sync`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncView {
    /// `watching`, `idle` (stream closed after a quiet spell), `paused` (hibernated, or why),
    /// `stopped`, `conflicts`.
    pub state: String,
    /// Why it is paused, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The local worktree.
    pub worktree: String,
    /// Local changes waiting for the sandbox (counted while it cannot be reached).
    pub pending_local: usize,
    /// Paths synced (the last agreed state).
    pub synced: usize,
    /// Held conflicts.
    pub conflicts: Vec<SyncConflictView>,
    /// Where the conflicting versions are stored.
    pub conflict_store: String,
    /// When a cycle last finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<String>,
    /// The commit both sides last agreed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreed_head: Option<String>,
    /// Where the commits stand: `in_step`, `diverged` (both sides committed; files keep
    /// syncing until one side is taken), `off` (e.g. the worktree is on another branch).
    #[serde(default)]
    pub history: String,
    /// Why history is not in step, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_reason: Option<String>,
    /// The last cycle's error, if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Reconcile cycles completed since the daemon started this sync: a burst of edits costs
    /// a few, an unchanged tree none.
    #[serde(default)]
    pub cycles: u64,
}

/// One held conflict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncConflictView {
    /// The path.
    pub path: String,
    /// The local version (`file <hash> (N bytes)`, `link -> T`).
    pub local: String,
    /// The sandbox's version.
    pub sprite: String,
}
