//! Test-only loopback servers for edge cases a faithful emulator does not produce on demand.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{ClientEvent, RetryPolicy, SpritesClient, Token};

/// The token fixtures expect.
pub const TOKEN: &str = "fixture-token";

/// Serves `router` on 127.0.0.1:0 and returns its base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{addr}")
}

/// A client for `base` with short backoffs, recording its events.
pub fn client(base: &str) -> (SpritesClient, Arc<std::sync::Mutex<Vec<ClientEvent>>>) {
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = events.clone();
    let c = SpritesClient::builder()
        .base_url(base)
        .token(Token::new(TOKEN))
        .connect_timeout(Duration::from_secs(5))
        .retry_policy(RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            max_rate_limit_wait: Duration::from_secs(5),
        })
        .on_event(move |e| sink.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    (c, events)
}

/// A shared request counter.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    /// Increments and returns the previous value.
    pub fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst)
    }

    /// The current value.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// True when the request carries the fixture bearer token.
pub fn authed(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"))
}
