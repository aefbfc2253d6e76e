//! Plugin events reach the user: a plugin call made for a session gets an event sink, and every
//! event the plugin emits during the call (rate-limit waits, slow-wake ticks, clone method and
//! progress, checkpoint progress) is recorded as that session's `progress` event, so
//! `clauderon logs`, the SSE stream and `clauderon create`'s progress line show it. Events on an
//! agent stream (`reconnecting`, `reconnected`, warnings) go the same way. Nothing here names a
//! backend: events are read by their documented shape (`{"type":"progress","stage","message",
//! "fraction"?,"wait_seconds"?,"bytes"?,"total_bytes"?,"bytes_per_second"?}`, or any
//! `{"type", ...}` object).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::api::{ProgressEvent, SessionEvent};

use crate::plugins::{EventedClient, PluginClient};
use crate::session::SessionId;

use super::Engine;

/// The progress stages of DESIGN §9; a plugin event naming another stage is recorded under the
/// stage of the op that caused it.
const STAGES: [&str; 9] = [
    "create",
    "clone",
    "agent",
    "wake",
    "hibernate",
    "checkpoint",
    "restore",
    "delete",
    "cache",
];

/// Longest plugin message recorded (longer ones are cut, with an ellipsis).
const MAX_MESSAGE: usize = 1000;

/// The `progress` event for one plugin event (`fallback_stage`: the op's stage); `None` for
/// events that carry nothing to show (a `detached` acknowledgement, a non-object).
pub fn progress_data(event: &Value, fallback_stage: &str) -> Option<ProgressEvent> {
    let obj = event.as_object()?;
    let kind = obj.get("type").and_then(Value::as_str).unwrap_or("event");
    if kind == "detached" {
        return None;
    }
    let stage = obj
        .get("stage")
        .and_then(Value::as_str)
        .filter(|s| STAGES.contains(s))
        .unwrap_or(fallback_stage);
    let message = match obj.get("message").and_then(Value::as_str) {
        Some(m) if !m.trim().is_empty() => m.to_owned(),
        _ => describe(kind, obj),
    };
    let mut p = ProgressEvent::new(stage, cut(&message));
    p.fraction = obj.get("fraction").and_then(Value::as_f64);
    p.wait_seconds = obj.get("wait_seconds").and_then(Value::as_f64);
    p.bytes = obj.get("bytes").and_then(Value::as_u64);
    p.total_bytes = obj.get("total_bytes").and_then(Value::as_u64);
    p.bytes_per_second = obj.get("bytes_per_second").and_then(Value::as_f64);
    Some(p)
}

/// A message for an event that has none: its type and its other scalar fields.
fn describe(kind: &str, obj: &Map<String, Value>) -> String {
    let mut parts: Vec<String> = obj
        .iter()
        .filter(|(k, v)| k.as_str() != "type" && !v.is_object() && !v.is_array())
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}: {s}"),
            other => format!("{k}: {other}"),
        })
        .collect();
    let kind = kind.replace('_', " ");
    if parts.is_empty() {
        kind
    } else {
        parts.sort();
        format!("{kind} ({})", parts.join(", "))
    }
}

fn cut(s: &str) -> String {
    if s.chars().count() <= MAX_MESSAGE {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX_MESSAGE).collect();
        out.push('…');
        out
    }
}

impl Engine {
    /// Calls the plugin for session `id` through `call`, which gets the plugin's typed client
    /// with an event sink: every event the plugin emits meanwhile is recorded as a `progress`
    /// event of the session under `stage` (unless it names one of its own), in order, all
    /// before this returns. For a stream op only the events of its opening are the call's;
    /// events later on the stream itself are the agent task's.
    pub(super) async fn plugin<T, Fut>(
        &self,
        id: SessionId,
        client: &Arc<PluginClient>,
        stage: &'static str,
        call: impl FnOnce(EventedClient) -> Fut,
    ) -> T
    where
        Fut: std::future::Future<Output = T>,
    {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
        let forward = async {
            // Ends when the call is over: the call drops the client and its sender.
            while let Some(ev) = rx.recv().await {
                self.plugin_event(id, &ev, stage).await;
            }
        };
        let (result, ()) = tokio::join!(call(client.with_events(tx)), forward);
        result
    }

    /// Records one plugin event as a `progress` event of session `id`.
    pub(super) async fn plugin_event(&self, id: SessionId, event: &Value, fallback_stage: &str) {
        let Some(p) = progress_data(event, fallback_stage) else {
            return;
        };
        tracing::info!(session = %id, stage = %p.stage, "{}", p.message);
        self.emit(id, SessionEvent::Progress(p)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_progress_event_keeps_its_stage_message_and_numbers() {
        let ev = json!({"type": "progress", "stage": "create", "message": "waiting 2s (rate limited)",
            "event": "rate_limited", "wait_seconds": 2.0, "fraction": null});
        let d = progress_data(&ev, "wake").unwrap();
        assert_eq!(
            serde_json::to_value(d).unwrap(),
            json!({"stage": "create", "message": "waiting 2s (rate limited)", "wait_seconds": 2.0})
        );
    }

    #[test]
    fn an_unknown_stage_falls_back_to_the_op() {
        let ev = json!({"type": "progress", "stage": "status", "message": "m"});
        assert_eq!(progress_data(&ev, "wake").unwrap().stage, "wake");
        let ev = json!({"type": "progress", "message": "m"});
        assert_eq!(progress_data(&ev, "clone").unwrap().stage, "clone");
    }

    #[test]
    fn stream_events_without_a_message_are_described() {
        let ev = json!({"type": "reconnecting", "attempt": 2, "reason": "socket closed"});
        let d = progress_data(&ev, "agent").unwrap();
        assert_eq!(
            d.message,
            "reconnecting (attempt: 2, reason: socket closed)"
        );
        let d = progress_data(&json!({"type": "reconnected"}), "agent").unwrap();
        assert_eq!(d.message, "reconnected");
        assert!(progress_data(&json!({"type": "detached"}), "agent").is_none());
        assert!(progress_data(&json!("text"), "agent").is_none());
    }

    #[test]
    fn long_messages_are_cut() {
        let ev = json!({"type": "progress", "message": "x".repeat(5000)});
        let m = progress_data(&ev, "create").unwrap().message;
        assert_eq!(m.chars().count(), MAX_MESSAGE + 1);
    }
}
