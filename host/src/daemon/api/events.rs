//! `GET /api/sessions/{ref}/events`: a JSON page, or with `follow=true` an SSE stream of the
//! history after `after` then live events, with no gap and no duplicate (the live bus is
//! subscribed before history is read; events with `seq <= last sent` are skipped).

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::{broadcast, mpsc, watch};

use crate::daemon::error::EngineError;
use crate::session::{SessionId, Status};
use crate::store::{EventRecord, Store};

use super::{AppState, bad_query};

const PAGE: usize = 500;
/// The most events one JSON page returns.
const MAX_LIMIT: usize = 10_000;

/// `?after=SEQ&follow=true&limit=N&since_now=true`, or `?tail=N&output=false`.
#[derive(Debug, serde::Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    after: i64,
    /// Skip the history: only events recorded from now on (for a command that follows its own
    /// request's progress, such as `clauderon wake`).
    #[serde(default)]
    since_now: bool,
    #[serde(default)]
    follow: bool,
    #[serde(default)]
    limit: Option<usize>,
    /// The newest N events instead of those after `after` (a detail pane's recent events).
    #[serde(default)]
    tail: Option<usize>,
    /// With `tail`: `false` leaves agent `output` events out.
    #[serde(default)]
    output: Option<bool>,
}

/// The route.
pub async fn events(
    State(st): State<AppState>,
    Path(session): Path<String>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return bad_query(e),
    };
    // Subscribe before anything is read, so nothing appended from now on can be missed.
    let live = st.engine.recorder().subscribe();
    let rec = match st.engine.find(&session).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let store = st.engine.store().clone();
    let after = if q.since_now {
        match store.last_event_seq(rec.id).await {
            Ok(last) => last.max(q.after),
            Err(e) => return EngineError::from(e).into_response(),
        }
    } else {
        q.after
    };
    if let Some(n) = q.tail.filter(|_| !q.follow) {
        let limit = n.clamp(1, MAX_LIMIT);
        return page(
            store
                .recent_events(rec.id, limit, q.output.unwrap_or(true))
                .await,
        );
    }
    if !q.follow {
        let limit = q.limit.unwrap_or(1000).clamp(1, MAX_LIMIT);
        return page(store.events_since(rec.id, after, limit).await);
    }
    let (tx, rx) = mpsc::channel::<SseEvent>(256);
    tokio::spawn(follow(store, rec.id, after, live, tx, st.shutdown.clone()));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// A JSON page of events.
fn page(events: Result<Vec<EventRecord>, crate::store::StoreError>) -> Response {
    match events {
        Ok(ev) => Json(crate::api::EventPage {
            events: ev.iter().map(super::convert::api_event).collect(),
        })
        .into_response(),
        Err(e) => EngineError::from(e).into_response(),
    }
}

fn sse(e: &EventRecord) -> SseEvent {
    let data = serde_json::to_string(&super::convert::api_event(e)).unwrap_or_default();
    SseEvent::default()
        .id(e.seq.to_string())
        .event(e.kind.clone())
        .data(data)
}

fn is_deleted(e: &EventRecord) -> bool {
    e.kind == "status" && e.data.get("to").and_then(|v| v.as_str()) == Some("deleted")
}

/// Sends every stored event after `*last`; `Ok(true)` when the session's deletion was sent.
async fn drain(
    store: &Store,
    id: SessionId,
    last: &mut i64,
    tx: &mpsc::Sender<SseEvent>,
) -> Result<bool, ()> {
    loop {
        let page = store.events_since(id, *last, PAGE).await.map_err(|_| ())?;
        let n = page.len();
        for e in page {
            *last = e.seq;
            tx.send(sse(&e)).await.map_err(|_| ())?;
            if is_deleted(&e) {
                return Ok(true);
            }
        }
        if n < PAGE {
            return Ok(false);
        }
    }
}

async fn follow(
    store: Store,
    id: SessionId,
    after: i64,
    mut live: broadcast::Receiver<Arc<EventRecord>>,
    tx: mpsc::Sender<SseEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last = after;
    match drain(&store, id, &mut last, &tx).await {
        Ok(false) => {}
        _ => return,
    }
    // A session deleted before `after` has nothing more to say.
    if matches!(store.get(id).await, Ok(r) if r.status == Status::Deleted) {
        let _ = drain(&store, id, &mut last, &tx).await;
        return;
    }
    loop {
        tokio::select! {
            r = live.recv() => match r {
                Ok(e) => {
                    if e.session_id != id || e.seq <= last {
                        continue;
                    }
                    last = e.seq;
                    if tx.send(sse(&e)).await.is_err() || is_deleted(&e) {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Fell behind the bus: the store has everything, in order.
                    match drain(&store, id, &mut last, &tx).await {
                        Ok(false) => {}
                        _ => return,
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tx.closed() => return,
            _ = shutdown.changed() => return,
        }
    }
}
