//! The rows the store reads and writes.

use crate::session::{Event, SessionId, SessionName, SessionOptions, Status};
use time::OffsetDateTime;

/// What a caller supplies to create a session row (status starts at `creating`).
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The session's id (callers usually pass `SessionId::new()`).
    pub id: SessionId,
    /// Its unique name.
    pub name: SessionName,
    /// The backend plugin's name.
    pub backend: String,
    /// The repository path or URL.
    pub repository: String,
    /// The branch the agent works on.
    pub branch: Option<String>,
    /// The agent's initial prompt.
    pub prompt: String,
    /// The validated create options.
    pub options: SessionOptions,
}

/// A stored session.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionRecord {
    /// Stable id.
    pub id: SessionId,
    /// Unique (among live sessions) name.
    pub name: SessionName,
    /// The backend plugin's name.
    pub backend: String,
    /// The repository path or URL.
    pub repository: String,
    /// The branch the agent works on.
    pub branch: Option<String>,
    /// The agent's initial prompt.
    pub prompt: String,
    /// The create options.
    pub options: SessionOptions,
    /// Current status.
    pub status: Status,
    /// The plugin's instance id, once the sandbox exists.
    pub instance_id: Option<String>,
    /// The plugin's opaque, versioned instance state, handed back on every call.
    pub instance_state: Option<serde_json::Value>,
    /// Why the session failed, while its status is `failed`.
    pub failure_reason: Option<String>,
    /// When the row was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the row last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One entry of a session's event log.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventRecord {
    /// Position in the log; increases with every append (across sessions).
    pub seq: i64,
    /// The session it belongs to.
    pub session_id: SessionId,
    /// When it was appended.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// A short kind, e.g. `status`, `log`, `progress`.
    pub kind: String,
    /// Kind-specific JSON.
    pub data: serde_json::Value,
}

/// The result of a status change: where the session was and where it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StatusChange {
    /// Status before.
    pub from: Status,
    /// Status after.
    pub to: Status,
    /// The event that moved it.
    pub event: Event,
    /// The `seq` of the `status` event appended in the same transaction; `None` when the
    /// status did not change (an observation confirming what the store knew writes nothing).
    pub seq: Option<i64>,
}

/// What a caller supplies to record a checkpoint.
#[derive(Debug, Clone)]
pub struct NewCheckpoint {
    /// The session.
    pub session_id: SessionId,
    /// The user's comment.
    pub comment: String,
    /// The git `HEAD` at checkpoint time.
    pub git_head: Option<String>,
    /// The backend's own checkpoint id, needed to restore.
    pub backend_ref: Option<String>,
}

/// A stored checkpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CheckpointRecord {
    /// Checkpoint id (a UUID).
    pub id: String,
    /// The session.
    pub session_id: SessionId,
    /// The user's comment.
    pub comment: String,
    /// The git `HEAD` at checkpoint time.
    pub git_head: Option<String>,
    /// The backend's own checkpoint id.
    pub backend_ref: Option<String>,
    /// When it was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}
