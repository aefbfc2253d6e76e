//! Routing the client's events (rate-limit waits, retries) to the call that caused them.
//!
//! The client has one event callback for its lifetime; each operation runs inside
//! [`with_sink`], which puts its `CallContext` and stage in a task-local the callback reads, so a
//! 429 wait during `create` shows up as a `create` progress event of that request.

use std::future::Future;

use clauderon_plugin_sdk::CallContext;

use crate::client::ClientEvent;

tokio::task_local! {
    static SINK: (CallContext, &'static str);
}

/// Runs `fut` with `ctx` receiving client events as progress of `stage`.
pub async fn with_sink<F: Future>(ctx: &CallContext, stage: &'static str, fut: F) -> F::Output {
    SINK.scope((ctx.clone(), stage), fut).await
}

/// The client's event callback: forwards to the current call, if any.
pub fn forward(event: &ClientEvent) {
    let _ = SINK.try_with(|(ctx, stage)| {
        let kind = match event {
            ClientEvent::RateLimitWait { .. } => "rate_limited",
            ClientEvent::Retrying { .. } => "retrying",
            ClientEvent::CreateRecovering { .. } => "create_recovering",
            ClientEvent::CreateAdopted { .. } => "create_adopted",
        };
        let wait = match event {
            ClientEvent::RateLimitWait { wait, .. } | ClientEvent::Retrying { wait, .. } => {
                Some(wait.as_secs_f64())
            }
            _ => None,
        };
        ctx.emit(serde_json::json!({
            "type": "progress",
            "stage": stage,
            "message": event.to_string(),
            "event": kind,
            "wait_seconds": wait,
        }));
    });
}
