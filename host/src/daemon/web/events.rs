//! `GET /api/web/events`: one SSE stream of every session's live events (without agent
//! `output`), so a list of many sessions needs one connection rather than one per session.
//!
//! It carries no history: it starts with a `ready` event once it is subscribed, after which the
//! page reads `GET /api/sessions`, so nothing between the two is missed. A subscriber that falls
//! behind the bus gets `resync` and reads the list again.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::{broadcast, mpsc};

use crate::daemon::api::AppState;

/// The route.
pub async fn all_events(State(st): State<AppState>) -> Response {
    let mut live = st.engine.recorder().subscribe();
    let mut shutdown = st.shutdown.clone();
    let (tx, rx) = mpsc::channel::<SseEvent>(256);
    tokio::spawn(async move {
        let marker = |name: &str| SseEvent::default().event(name).data("{}");
        if tx.send(marker("ready")).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                r = live.recv() => {
                    let next = match r {
                        // Terminal bytes are for the session page; the list has no use for them.
                        Ok(e) if e.kind == "output" => continue,
                        Ok(e) => match serde_json::to_string(&*e) {
                            Ok(data) => SseEvent::default().event(e.kind.clone()).data(data),
                            Err(_) => continue,
                        },
                        Err(broadcast::error::RecvError::Lagged(_)) => marker("resync"),
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    if tx.send(next).await.is_err() {
                        return;
                    }
                }
                _ = tx.closed() => return,
                _ = shutdown.changed() => return,
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
