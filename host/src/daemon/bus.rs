//! The event recorder: every event is appended to the store and then published on a live
//! broadcast bus, both under one lock, so subscribers see events in `seq` order and an event
//! stream can read history after subscribing without a gap or a duplicate (it skips
//! `seq <= last sent`).
//!
//! The recorder also keeps each session's log within its [`Retention`]: after every
//! [`TRIM_EVERY_EVENTS`] events or [`TRIM_EVERY_BYTES`] of data a session appended, its oldest
//! events beyond the limits are dropped, in the same store call.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Mutex, broadcast};

use crate::session::{Event, SessionId};
use crate::store::{
    EventRecord, NewSession, Retention, SessionRecord, StatusChange, Store, StoreError,
};

/// How many events a slow subscriber may fall behind before it re-reads from the store.
const BUS_CAPACITY: usize = 4096;

/// A session's log is trimmed after this many appended events...
pub const TRIM_EVERY_EVENTS: u32 = 256;

/// ...or this many bytes of event data, whichever comes first.
pub const TRIM_EVERY_BYTES: u64 = 4 * 1024 * 1024;

/// Appends events durably and publishes them live.
#[derive(Debug, Clone)]
pub struct Recorder {
    store: Store,
    bus: broadcast::Sender<Arc<EventRecord>>,
    order: Arc<Mutex<()>>,
    retention: Retention,
    /// Events and bytes each session appended since its log was last trimmed.
    since_trim: Arc<std::sync::Mutex<HashMap<SessionId, (u32, u64)>>>,
}

impl Recorder {
    /// A recorder over `store` keeping each session's log within `retention`.
    pub fn new(store: Store, retention: Retention) -> Self {
        Self {
            store,
            bus: broadcast::channel(BUS_CAPACITY).0,
            order: Arc::new(Mutex::new(())),
            retention,
            since_trim: Arc::default(),
        }
    }

    /// How much of each log is kept.
    pub fn retention(&self) -> &Retention {
        &self.retention
    }

    /// Counts an append of `bytes`; true when the session's log is due for trimming.
    fn due_for_trim(&self, id: SessionId, bytes: u64) -> bool {
        let mut map = self
            .since_trim
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = map.entry(id).or_default();
        entry.0 += 1;
        entry.1 += bytes;
        if entry.0 >= TRIM_EVERY_EVENTS || entry.1 >= TRIM_EVERY_BYTES {
            map.remove(&id);
            true
        } else {
            false
        }
    }

    /// The store behind it.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A live receiver of every event appended from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventRecord>> {
        self.bus.subscribe()
    }

    fn publish(&self, events: Vec<EventRecord>) {
        for e in events {
            // No subscriber is fine.
            let _ = self.bus.send(Arc::new(e));
        }
    }

    /// Appends an event of `kind` to a session's log and publishes it; returns its `seq`.
    pub async fn append(
        &self,
        id: SessionId,
        kind: &str,
        data: serde_json::Value,
    ) -> Result<i64, StoreError> {
        let _order = self.order.lock().await;
        let kind = kind.to_owned();
        let trim = self
            .due_for_trim(id, data.to_string().len() as u64)
            .then_some(self.retention);
        let rec = self
            .store
            .run(move |db| {
                let seq = db.append_event(id, &kind, &data)?;
                if let Some(r) = trim {
                    db.trim_events(id, &r)?;
                }
                db.events_since(id, seq - 1, 1)
            })
            .await?;
        let seq = rec.first().map_or(0, |e| e.seq);
        self.publish(rec);
        Ok(seq)
    }

    /// Moves a session through the state machine and publishes the `status` event it wrote.
    pub async fn status(
        &self,
        id: SessionId,
        event: Event,
        reason: Option<String>,
    ) -> Result<StatusChange, StoreError> {
        let _order = self.order.lock().await;
        let (change, recs) = self
            .store
            .run(move |db| {
                let change = db.apply_event(id, event, reason.as_deref())?;
                let recs = match change.seq {
                    Some(seq) => db.events_since(id, seq - 1, 1)?,
                    None => Vec::new(),
                };
                Ok((change, recs))
            })
            .await?;
        self.publish(recs);
        Ok(change)
    }

    /// Inserts a new session and publishes its first `status` event.
    pub async fn insert(&self, new: NewSession) -> Result<SessionRecord, StoreError> {
        let _order = self.order.lock().await;
        let id = new.id;
        let (rec, events) = self
            .store
            .run(move |db| {
                let rec = db.insert_session(&new)?;
                let events = db.events_since(id, 0, 16)?;
                Ok((rec, events))
            })
            .await?;
        self.publish(events);
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{SessionName, SessionOptions, Status};

    fn new_session(id: SessionId) -> NewSession {
        NewSession {
            id,
            name: SessionName::new("bus").unwrap(),
            backend: "b".into(),
            repository: "/r".into(),
            branch: None,
            prompt: "p".into(),
            options: SessionOptions::default(),
        }
    }

    #[tokio::test]
    async fn every_write_is_published_in_seq_order_with_what_the_store_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).await.unwrap();
        let rec = Recorder::new(store.clone(), Retention::default());
        let mut rx = rec.subscribe();
        let id = SessionId::new();
        rec.insert(new_session(id)).await.unwrap();
        // Concurrent appends still come out of the bus in seq order.
        let mut tasks = Vec::new();
        for i in 0..20 {
            let r = rec.clone();
            tasks.push(tokio::spawn(async move {
                r.append(id, "log", serde_json::json!({"i": i}))
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let change = rec.status(id, Event::Created, None).await.unwrap();
        assert_eq!(change.to, Status::Running);
        let stored = store.events_since(id, 0, 100).await.unwrap();
        assert_eq!(stored.len(), 22);
        let mut live = Vec::new();
        while let Ok(e) = rx.try_recv() {
            live.push((*e).clone());
        }
        assert_eq!(live, stored, "the bus carries exactly the log, in order");
        // A status change that changes nothing publishes nothing.
        rec.status(id, Event::Observed(crate::session::Observed::Running), None)
            .await
            .unwrap();
        assert!(rx.try_recv().is_err());
    }
}
