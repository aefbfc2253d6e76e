//! The event recorder: every event is appended to the store and then published on a live
//! broadcast bus, both under one lock, so subscribers see events in `seq` order and an event
//! stream can read history after subscribing without a gap or a duplicate (it skips
//! `seq <= last sent`).

use std::sync::Arc;

use tokio::sync::{Mutex, broadcast};

use crate::session::{Event, SessionId};
use crate::store::{EventRecord, NewSession, SessionRecord, StatusChange, Store, StoreError};

/// How many events a slow subscriber may fall behind before it re-reads from the store.
const BUS_CAPACITY: usize = 4096;

/// Appends events durably and publishes them live.
#[derive(Debug, Clone)]
pub struct Recorder {
    store: Store,
    bus: broadcast::Sender<Arc<EventRecord>>,
    order: Arc<Mutex<()>>,
}

impl Recorder {
    /// A recorder over `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            bus: broadcast::channel(BUS_CAPACITY).0,
            order: Arc::new(Mutex::new(())),
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
        let rec = self
            .store
            .run(move |db| {
                let seq = db.append_event(id, &kind, &data)?;
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
