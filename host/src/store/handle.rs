//! The async handle the daemon uses: store calls on tokio's blocking pool, one at a time.

use super::records::{
    CheckpointRecord, EventRecord, NewCheckpoint, NewSession, SessionRecord, StatusChange,
};
use super::{Db, StoreError};
use crate::session::{Event, SessionId, SessionName};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A cloneable async handle to the one [`Db`] of the process.
#[derive(Debug, Clone)]
pub struct Store {
    db: Arc<Mutex<Db>>,
}

impl Store {
    /// Opens the store at `path` (on the blocking pool: opening may run migrations).
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        let db = tokio::task::spawn_blocking(move || Db::open(&path))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))??;
        Ok(Self::from_db(db))
    }

    /// Wraps an already open [`Db`].
    pub fn from_db(db: Db) -> Self {
        Self {
            db: Arc::new(Mutex::new(db)),
        }
    }

    /// Runs `f` with exclusive access to the database on the blocking pool. Every method below
    /// is one `run`; callers compose several steps atomically with their own closure.
    pub async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Db) -> Result<R, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            // A panic inside a call rolls its transaction back (rusqlite rolls back on drop),
            // so the connection behind a poisoned lock is still consistent.
            let mut guard = db.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// See [`Db::agent`].
    pub async fn agent(&self, id: SessionId) -> Result<super::AgentRecord, StoreError> {
        self.run(move |db| db.agent(id)).await
    }
    /// See [`Db::agents`].
    pub async fn agents(
        &self,
    ) -> Result<std::collections::HashMap<SessionId, super::AgentRecord>, StoreError> {
        self.run(|db| db.agents()).await
    }
    /// See [`Db::put_agent`].
    pub async fn put_agent(
        &self,
        id: SessionId,
        rec: super::AgentRecord,
    ) -> Result<(), StoreError> {
        self.run(move |db| db.put_agent(id, &rec)).await
    }
    /// Reads, changes and writes a session's agent record in one step; returns it as written.
    pub async fn update_agent(
        &self,
        id: SessionId,
        f: impl FnOnce(&mut super::AgentRecord) + Send + 'static,
    ) -> Result<super::AgentRecord, StoreError> {
        self.run(move |db| {
            let mut rec = db.agent(id)?;
            f(&mut rec);
            db.put_agent(id, &rec)?;
            Ok(rec)
        })
        .await
    }
    /// See [`Db::sync_record`].
    pub async fn sync_record(
        &self,
        id: SessionId,
    ) -> Result<Option<super::SyncRecord>, StoreError> {
        self.run(move |db| db.sync_record(id)).await
    }
    /// See [`Db::put_sync_record`].
    pub async fn put_sync_record(
        &self,
        id: SessionId,
        rec: super::SyncRecord,
    ) -> Result<(), StoreError> {
        self.run(move |db| db.put_sync_record(id, &rec)).await
    }
    /// See [`Db::sync_state`].
    pub async fn sync_state(&self, id: SessionId) -> Result<crate::sync::SyncState, StoreError> {
        self.run(move |db| db.sync_state(id)).await
    }
    /// See [`Db::sync_conflicts`] and [`Db::sync_path_count`]: what `sync NAME` shows, without
    /// loading the ancestor.
    pub async fn sync_summary(
        &self,
        id: SessionId,
    ) -> Result<
        (
            usize,
            std::collections::BTreeMap<String, crate::sync::Conflict>,
        ),
        StoreError,
    > {
        self.run(move |db| Ok((db.sync_path_count(id)?, db.sync_conflicts(id)?)))
            .await
    }
    /// See [`Db::put_sync_state`].
    pub async fn put_sync_state(
        &self,
        id: SessionId,
        state: crate::sync::SyncState,
    ) -> Result<(), StoreError> {
        self.run(move |db| db.put_sync_state(id, &state)).await
    }
    /// See [`Db::put_sync_state_since`].
    pub async fn put_sync_state_since(
        &self,
        id: SessionId,
        old: crate::sync::SyncState,
        state: crate::sync::SyncState,
    ) -> Result<(), StoreError> {
        self.run(move |db| db.put_sync_state_since(id, &old, &state))
            .await
    }
    /// See [`Db::remove_sync`].
    pub async fn remove_sync(&self, id: SessionId) -> Result<(), StoreError> {
        self.run(move |db| db.remove_sync(id)).await
    }
    /// See [`Db::insert_session`].
    pub async fn insert_session(&self, new: NewSession) -> Result<SessionRecord, StoreError> {
        self.run(move |db| db.insert_session(&new)).await
    }
    /// See [`Db::unique_name`].
    pub async fn unique_name(&self, base: SessionName) -> Result<SessionName, StoreError> {
        self.run(move |db| db.unique_name(&base)).await
    }
    /// See [`Db::get`].
    pub async fn get(&self, id: SessionId) -> Result<SessionRecord, StoreError> {
        self.run(move |db| db.get(id)).await
    }
    /// See [`Db::find`].
    pub async fn find(&self, query: &str) -> Result<SessionRecord, StoreError> {
        let q = query.to_string();
        self.run(move |db| db.find(&q)).await
    }
    /// See [`Db::list`].
    pub async fn list(&self, include_deleted: bool) -> Result<Vec<SessionRecord>, StoreError> {
        self.run(move |db| db.list(include_deleted)).await
    }
    /// See [`Db::list_summaries`].
    pub async fn list_summaries(
        &self,
        page: super::ListPage,
    ) -> Result<(Vec<super::SessionSummaryRecord>, Option<super::ListCursor>), StoreError> {
        self.run(move |db| db.list_summaries(&page)).await
    }
    /// See [`Db::list_page`].
    pub async fn list_page(
        &self,
        page: super::ListPage,
    ) -> Result<(Vec<SessionRecord>, Option<super::ListCursor>), StoreError> {
        self.run(move |db| db.list_page(&page)).await
    }
    /// See [`Db::apply_event`].
    pub async fn apply_event(
        &self,
        id: SessionId,
        event: Event,
        reason: Option<String>,
    ) -> Result<StatusChange, StoreError> {
        self.run(move |db| db.apply_event(id, event, reason.as_deref()))
            .await
    }
    /// See [`Db::set_instance`].
    pub async fn set_instance(
        &self,
        id: SessionId,
        instance_id: Option<String>,
        state: Option<serde_json::Value>,
    ) -> Result<(), StoreError> {
        self.run(move |db| db.set_instance(id, instance_id.as_deref(), state.as_ref()))
            .await
    }
    /// See [`Db::remove_session`].
    pub async fn remove_session(&self, id: SessionId) -> Result<(), StoreError> {
        self.run(move |db| db.remove_session(id)).await
    }
    /// See [`Db::append_event`].
    pub async fn append_event(
        &self,
        id: SessionId,
        kind: &str,
        data: serde_json::Value,
    ) -> Result<i64, StoreError> {
        let kind = kind.to_string();
        self.run(move |db| db.append_event(id, &kind, &data)).await
    }
    /// See [`Db::last_event_seq`].
    pub async fn last_event_seq(&self, id: SessionId) -> Result<i64, StoreError> {
        self.run(move |db| db.last_event_seq(id)).await
    }
    /// See [`Db::events_since`].
    pub async fn events_since(
        &self,
        id: SessionId,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.run(move |db| db.events_since(id, after_seq, limit))
            .await
    }
    /// See [`Db::recent_events`].
    pub async fn recent_events(
        &self,
        id: SessionId,
        limit: usize,
        with_output: bool,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.run(move |db| db.recent_events(id, limit, with_output))
            .await
    }
    /// See [`Db::all_events_since`].
    pub async fn all_events_since(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.run(move |db| db.all_events_since(after_seq, limit))
            .await
    }
    /// See [`Db::set_branch`].
    pub async fn set_branch(
        &self,
        id: SessionId,
        branch: Option<String>,
    ) -> Result<(), StoreError> {
        self.run(move |db| db.set_branch(id, branch.as_deref()))
            .await
    }
    /// See [`Db::add_checkpoint`].
    pub async fn add_checkpoint(&self, c: NewCheckpoint) -> Result<CheckpointRecord, StoreError> {
        self.run(move |db| db.add_checkpoint(&c)).await
    }
    /// See [`Db::checkpoints`].
    pub async fn checkpoints(&self, id: SessionId) -> Result<Vec<CheckpointRecord>, StoreError> {
        self.run(move |db| db.checkpoints(id)).await
    }
}
