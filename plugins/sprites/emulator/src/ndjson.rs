//! Streaming `application/x-ndjson` answers: HTTP 200 goes out before the work finishes, so
//! failures arrive as in-stream events (as on the real service).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

/// Sends NDJSON events into a streaming response.
#[derive(Debug, Clone)]
pub struct Events(mpsc::Sender<Bytes>);

impl Events {
    /// Sends one event (ignored when the client went away).
    pub async fn send(&self, v: Value) {
        let mut line = v.to_string();
        line.push('\n');
        let _ = self.0.send(Bytes::from(line)).await;
    }
}

/// A streaming NDJSON response and the sender that feeds it.
pub fn stream() -> (Events, Response) {
    let (tx, rx) = mpsc::channel::<Bytes>(32);
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<Bytes, std::convert::Infallible>(b), rx))
    }));
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    (Events(tx), resp)
}
