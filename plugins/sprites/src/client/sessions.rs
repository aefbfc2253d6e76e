//! Exec sessions that outlive their connection: list, attach by id, kill (NDJSON events).

use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;

use super::error::{Error, Result};
use super::exec::Child;
use super::handle::SpriteHandle;
use super::lenient;
use super::ndjson::{StreamEvent, read_events};
use super::retry::Idempotency;
use super::transport::decode_json;

/// A running (or recently ended) exec session.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ExecSession {
    /// The session id (a number in some servers; kept as text).
    #[serde(deserialize_with = "lenient::string_or_number")]
    pub id: String,
    /// The command line.
    #[serde(default)]
    pub command: Option<String>,
    /// When it started (RFC 3339 or unix seconds).
    #[serde(default, deserialize_with = "lenient::opt_timestamp")]
    pub created: Option<OffsetDateTime>,
    /// Its working directory.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Whether it has a terminal.
    #[serde(default)]
    pub tty: Option<bool>,
    /// Whether a client is connected.
    #[serde(default)]
    pub is_active: Option<bool>,
    /// Recent output rate.
    #[serde(default)]
    pub bytes_per_second: Option<f64>,
    /// Last input/output time.
    #[serde(default, deserialize_with = "lenient::opt_timestamp")]
    pub last_activity: Option<OffsetDateTime>,
}

/// What a kill request reported.
#[derive(Debug, Clone, PartialEq)]
pub struct KillOutcome {
    /// The events in order (`signal`, `timeout`, `exited`, `killed`, `complete`).
    pub events: Vec<StreamEvent>,
    /// The exit code from the `complete` event, when given.
    pub exit_code: Option<i64>,
    /// The service answered 410: the session had already exited.
    pub already_exited: bool,
}

/// Decodes either documented list shape: a bare array or `{"sessions": [...], "count": n}`.
pub(crate) fn decode_sessions(v: serde_json::Value) -> Result<Vec<ExecSession>> {
    let list = match v {
        serde_json::Value::Array(_) => v,
        serde_json::Value::Object(mut m) => match m.remove("sessions") {
            None | Some(serde_json::Value::Null) => serde_json::Value::Array(Vec::new()),
            Some(s) => s,
        },
        other => {
            return Err(Error::Protocol(format!(
                "session list: expected an array or object, got {other}"
            )));
        }
    };
    serde_json::from_value(list).map_err(|e| Error::Protocol(format!("session list: {e}")))
}

impl SpriteHandle {
    /// Lists this sprite's exec sessions.
    pub async fn sessions(&self) -> Result<Vec<ExecSession>> {
        let op = self.op("GET", "exec");
        let resp = self
            .client
            .send(&op, Idempotency::Read, |http| http.get(self.url(&["exec"])))
            .await?;
        decode_sessions(decode_json(&op, resp).await?)
    }

    /// Re-attaches to a running session. The framing follows the server's `session_info`
    /// (buffered output sent before it is replayed); stdin is enabled.
    pub async fn attach(&self, session_id: &str) -> Result<Child> {
        if session_id.is_empty() {
            return Err(Error::InvalidInput("attach needs a session id".into()));
        }
        let url = self.ws_url(&["exec", session_id]);
        let op = self.op("GET", &format!("exec/{session_id} (WebSocket)"));
        Child::start(self, &op, &url, None, true).await
    }

    /// Ends a session: sends `signal` (e.g. `SIGTERM`), waits up to `grace`, then kills it.
    pub async fn kill_session(
        &self,
        session_id: &str,
        signal: &str,
        grace: Duration,
    ) -> Result<KillOutcome> {
        if session_id.is_empty() {
            return Err(Error::InvalidInput("kill needs a session id".into()));
        }
        let mut url = self.url(&["exec", session_id, "kill"]);
        url.query_pairs_mut()
            .append_pair("signal", signal)
            .append_pair("timeout", &format!("{}s", grace.as_secs()));
        let op = self.op("POST", &format!("exec/{session_id}/kill"));
        let timeout = self.client.inner.stream_timeout;
        let resp = match self
            .client
            .send_with_timeout(&op, Idempotency::Write, timeout, |http| {
                http.post(url.clone())
            })
            .await
        {
            Ok(r) => r,
            Err(Error::Api { status: 410, .. }) => {
                return Ok(KillOutcome {
                    events: Vec::new(),
                    exit_code: None,
                    already_exited: true,
                });
            }
            Err(e) => return Err(e),
        };
        let events = read_events(&op, timeout, resp, |_| {}).await?;
        let exit_code = events
            .iter()
            .rev()
            .find(|e| e.kind == "complete")
            .and_then(|e| e.exit_code);
        Ok(KillOutcome {
            events,
            exit_code,
            already_exited: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_session_list_shapes() {
        let a = decode_sessions(serde_json::json!([
            {"id": 1234, "command": "bash", "created": "2026-01-31T10:00:00Z", "workdir": "/home/sprite", "tty": true, "is_active": false, "bytes_per_second": 0.0, "last_activity": "2026-01-31T10:00:00Z"}
        ]))
        .unwrap();
        assert_eq!(a[0].id, "1234");
        let b =
            decode_sessions(serde_json::json!({"sessions":[{"id":"s1","tty":false}],"count":1}))
                .unwrap();
        assert_eq!(b[0].id, "s1");
        assert!(
            decode_sessions(serde_json::json!({"count":0}))
                .unwrap()
                .is_empty()
        );
        assert!(decode_sessions(serde_json::json!(3)).is_err());
    }
}
