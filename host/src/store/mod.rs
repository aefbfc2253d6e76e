//! The SQLite session store: migrations, sessions, events, checkpoints, agent records, the
//! build-cache index. Every
//! SQL statement of the host is in this module.
//!
//! [`Db`] is the synchronous store over one connection (WAL, `synchronous=FULL`, every write
//! in a transaction, so whatever a call acknowledged survives a crash). [`Store`] is the async
//! handle the daemon uses: it runs each call on tokio's blocking pool behind one mutex, so the
//! daemon is the single writer.

mod agents;
mod caches;
mod db;
mod handle;
mod listing;
mod migrations;
mod records;
mod retention;
mod sync;

pub use agents::AgentRecord;
pub use caches::{CacheEntryRecord, CacheStoreRecord};
pub use db::Db;
pub use handle::Store;
pub use listing::{ListCursor, ListPage, SessionSummaryRecord};
pub use migrations::SCHEMA_VERSION;
pub use records::{
    CheckpointRecord, EventRecord, NewCheckpoint, NewSession, SessionRecord, StatusChange,
};
pub use retention::Retention;
pub use sync::SyncRecord;

use crate::session::TransitionError;
use std::path::PathBuf;

/// Errors from the session store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or prepared.
    #[error("cannot open the session store {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The database was written by a newer clauderon.
    #[error(
        "the session store {path} has schema version {found}, newer than this clauderon knows \
         ({known}); upgrade clauderon, or move the file aside to start afresh"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// Another live session already has this name.
    #[error("a session named `{0}` already exists; choose another --name or delete that session")]
    NameTaken(String),
    /// A session id already exists (only possible with caller-chosen ids).
    #[error("a session with id {0} already exists")]
    IdTaken(String),
    /// No session matches a name or id prefix.
    #[error("no session named `{0}` or with an id starting with it; `clauderon list` shows them")]
    NotFound(String),
    /// An id prefix matches more than one session.
    #[error(
        "`{query}` matches {} sessions ({}); give more of the id or the name",
        matches.len(),
        matches.join(", ")
    )]
    Ambiguous {
        /// What was asked for.
        query: String,
        /// `name (id)` of each match (at most 10).
        matches: Vec<String>,
    },
    /// The status change is not allowed from the session's current status.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// A stored row could not be read back (a bug or a hand-edited database).
    #[error(
        "session store row for {id} is unreadable ({what}); the database may have been edited by hand"
    )]
    Corrupt {
        /// Which row.
        id: String,
        /// What was wrong.
        what: String,
    },
    /// Any other SQLite failure.
    #[error("session store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The blocking task running a store call died (a panic inside the store).
    #[error("session store task failed: {0}")]
    Task(String),
}

#[cfg(test)]
mod tests;
