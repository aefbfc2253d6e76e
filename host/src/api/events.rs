//! A session's events: [`ApiEvent`] as the API sends it (`GET .../events`, the SSE stream's
//! `data:`), and [`SessionEvent`], the same typed. The engine records only [`SessionEvent`]s;
//! clients read them with [`ApiEvent::event`] (an event kind this build does not know is `None`,
//! never an error).

use serde_json::{Map, Value};

use crate::agent::AgentState;
use crate::session::{SessionId, Status};

/// One event of a session's log.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ApiEvent {
    /// The session.
    pub session_id: SessionId,
    /// Global, increasing sequence number.
    pub seq: u64,
    /// The event's kind (`status`, `progress`, `output`, ...).
    pub kind: String,
    /// The kind's payload.
    pub data: Value,
    /// When (RFC 3339).
    pub at: String,
}

impl ApiEvent {
    /// The event, typed; `None` for a kind or shape this build does not know.
    pub fn event(&self) -> Option<SessionEvent> {
        SessionEvent::from_parts(&self.kind, &self.data)
    }
}

/// What happened to a session.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum SessionEvent {
    /// The status changed.
    Status(StatusEvent),
    /// Work in progress (create, clone, agent, wake, hibernate, checkpoint, restore, delete).
    Progress(ProgressEvent),
    /// The agent's terminal output.
    Output {
        /// The bytes, base64.
        b64: String,
    },
    /// The agent's process ended.
    AgentExited {
        /// Its exit code.
        code: i32,
    },
    /// The agent's state changed.
    AgentState(AgentStateEvent),
    /// A note for the user (a warning).
    Log {
        /// `info`, `warn`.
        level: String,
        /// The note.
        message: String,
    },
    /// Something failed.
    Error {
        /// What.
        message: String,
    },
    /// The two-way sync found a path changed differently on both sides (DESIGN §15): each side
    /// keeps its version, both are in the conflict store, the path is held until resolved.
    SyncConflict {
        /// The path, relative to the worktree.
        path: String,
        /// Where both versions were stored.
        stored: String,
    },
}

/// A status change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusEvent {
    /// The status before (absent for the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Status>,
    /// The status now.
    pub to: Status,
    /// Why (a failure's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Progress of an operation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProgressEvent {
    /// The stage (`create`, `clone`, `agent`, `wake`, `hibernate`, `checkpoint`, `restore`,
    /// `delete`, `cache`).
    pub stage: String,
    /// What is happening.
    pub message: String,
    /// How far, from 0 to 1, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
    /// How long a wait lasts (a rate limit), when waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<f64>,
    /// Bytes moved so far (a cache transfer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Bytes to move in all, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
    /// The transfer's rate, in bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<f64>,
}

impl ProgressEvent {
    /// A message for `stage`.
    pub fn new(stage: &str, message: impl Into<String>) -> Self {
        Self {
            stage: stage.to_owned(),
            message: message.into(),
            fraction: None,
            wait_seconds: None,
            bytes: None,
            total_bytes: None,
            bytes_per_second: None,
        }
    }
}

/// The agent's state (`None`: no agent process, e.g. after hibernating): `{"state": ...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentStateEvent(pub Option<AgentState>);

impl serde::Serialize for AgentStateEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(state) => state.serialize(s),
            None => {
                use serde::ser::SerializeMap as _;
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("state", &Value::Null)?;
                m.end()
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for AgentStateEvent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        if v.get("state").is_none_or(Value::is_null) {
            return Ok(Self(None));
        }
        AgentState::deserialize(v)
            .map(|s| Self(Some(s)))
            .map_err(serde::de::Error::custom)
    }
}

impl SessionEvent {
    /// The event's kind and payload, as the store and the API keep them.
    pub fn into_parts(self) -> (String, Value) {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut m)) => {
                let kind = match m.remove("kind") {
                    Some(Value::String(k)) => k,
                    _ => String::new(),
                };
                (kind, m.remove("data").unwrap_or(Value::Null))
            }
            _ => (String::new(), Value::Null),
        }
    }

    /// The event from its kind and payload; `None` when this build does not know them.
    pub fn from_parts(kind: &str, data: &Value) -> Option<Self> {
        let mut m = Map::new();
        m.insert("kind".into(), Value::String(kind.to_owned()));
        m.insert("data".into(), data.clone());
        serde_json::from_value(Value::Object(m)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_keep_their_wire_shape() {
        for (ev, kind, data) in [
            (
                SessionEvent::Status(StatusEvent {
                    from: Some(Status::Creating),
                    to: Status::Failed,
                    reason: Some("x".into()),
                }),
                "status",
                serde_json::json!({"from": "creating", "to": "failed", "reason": "x"}),
            ),
            (
                SessionEvent::Progress(ProgressEvent::new("clone", "cloning")),
                "progress",
                serde_json::json!({"stage": "clone", "message": "cloning"}),
            ),
            (
                SessionEvent::AgentState(AgentStateEvent(Some(AgentState::Exited { code: 3 }))),
                "agent_state",
                serde_json::json!({"state": "exited", "code": 3}),
            ),
            (
                SessionEvent::AgentState(AgentStateEvent(None)),
                "agent_state",
                serde_json::json!({"state": null}),
            ),
            (
                SessionEvent::AgentExited { code: 1 },
                "agent_exited",
                serde_json::json!({"code": 1}),
            ),
        ] {
            let (k, d) = ev.clone().into_parts();
            assert_eq!((k.as_str(), &d), (kind, &data));
            assert_eq!(SessionEvent::from_parts(kind, &data), Some(ev));
        }
        // A status event as the store writes it (with the state machine's `event`) still reads.
        let stored = serde_json::json!({"from": "running", "to": "hibernating",
            "event": {"event": "hibernate_requested"}});
        assert!(matches!(
            SessionEvent::from_parts("status", &stored),
            Some(SessionEvent::Status(StatusEvent {
                to: Status::Hibernating,
                ..
            }))
        ));
        assert_eq!(
            SessionEvent::from_parts("future_kind", &serde_json::json!({})),
            None
        );
    }
}
