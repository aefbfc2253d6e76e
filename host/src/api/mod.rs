//! The daemon's API contract (DESIGN §9): every request, response and event type of the REST
//! API, in one place. The daemon's handlers, the CLI, the TUI and the web UI all use these types
//! (or their JSON); none keeps a copy of its own. Nothing here does I/O but [`files`], which is
//! how a client finds the daemon (`daemon.json`, `api-token`).

pub mod events;
pub mod files;
pub mod render;
pub mod requests;
pub mod responses;
pub mod views;

pub use events::{AgentStateEvent, ApiEvent, ProgressEvent, SessionEvent, StatusEvent};
pub use files::DaemonInfo;
pub use requests::{
    CacheClearRequest, CreateSession, FieldError, PullRequest, ReconcileRequest, ResolveRequest,
    RestartRequest, SyncAction, SyncRequest, TakeHistoryRequest, ValidCreate,
};
pub use responses::{
    CacheCleared, CacheGcReport, CacheList, CacheSaveOutcome, CacheSaveReport, CheckpointList,
    ClearedCache, EventPage, ForeignSandbox, Health, Orphan, Pulled, ReconcileReport, Restored,
    SessionAnswer, SessionList, SessionSummaryList, Unpushed, Woken,
};
pub use views::{
    CacheEntryView, CacheView, CheckpointView, SessionSummary, SessionView, SyncConflictView,
    SyncView,
};
