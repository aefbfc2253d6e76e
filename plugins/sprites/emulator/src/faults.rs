//! Fault injection: rules given by `--fault JSON` or `POST /_emulator/faults`.
//!
//! A rule is `{"kind": K, "method"?: "POST", "path"?: "/v1/sprites/*/exec", "query"?: "*cmd=x*",
//! "times"?: n, ...}`; `path` is a glob where `*` matches any run of characters (default: every
//! path), `query` a glob over the raw query string (default: any query, none included), `times`
//! bounds how often it fires (default: every time). Kinds and their fields:
//!
//! - `rate_limit`: 429 with the rate-limit JSON and headers; `retry_after` (s, default 1), `limit`
//!   (10), `window_seconds` (60), `code` (`sprite_creation_rate_limited`).
//! - `error`: `status` (default 500) with `body` (JSON value or string; default
//!   `{"error":"injected fault"}`). Requests to sprite URLs are matched too, with the full URL
//!   as the path (`https://<name>-emul.sprites.app/<path>`).
//! - `drop_ws`: exec, attach and proxy sockets drop the TCP connection (no close frame, no exit
//!   frame) after `after_bytes` bytes of output (default 0: at the first output).
//! - `latency`: sleep `ms` before answering.
//! - `slow_wake`: add `ms` to the next wake of a sprite (the path is matched against
//!   `/v1/sprites/{name}`).

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer 429.
    RateLimit,
    /// Answer an error status.
    Error,
    /// Drop a WebSocket mid-stream.
    DropWs,
    /// Delay the answer.
    Latency,
    /// Delay a wake.
    SlowWake,
}

/// One fault rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    /// What it does.
    pub kind: FaultKind,
    /// HTTP method to match (any when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path glob to match (any when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Glob over the raw query string (any when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// How many more times it fires (unbounded when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// `rate_limit`: seconds in `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// `rate_limit`: the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// `rate_limit`: the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<u64>,
    /// `rate_limit`: the error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// `error`: the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `error`: the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// `drop_ws`: output bytes to let through first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_bytes: Option<u64>,
    /// `latency`, `slow_wake`: milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
}

/// Parses one fault object or an array of them.
pub fn parse_faults(json: &str) -> Result<Vec<Fault>, serde_json::Error> {
    let v: Value = serde_json::from_str(json)?;
    from_value(v)
}

/// Converts a JSON value (object or array) into fault rules.
pub fn from_value(v: Value) -> Result<Vec<Fault>, serde_json::Error> {
    match v {
        Value::Array(items) => items.into_iter().map(serde_json::from_value).collect(),
        other => Ok(vec![serde_json::from_value(other)?]),
    }
}

/// `*`-glob match.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// The live set of fault rules.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<Fault>>,
}

impl Faults {
    /// A set holding `rules`.
    pub fn new(rules: Vec<Fault>) -> Self {
        Faults {
            rules: Mutex::new(rules),
        }
    }

    /// Adds rules.
    pub fn add(&self, mut rules: Vec<Fault>) {
        if let Ok(mut g) = self.rules.lock() {
            g.append(&mut rules);
        }
    }

    /// Removes every rule.
    pub fn clear(&self) {
        if let Ok(mut g) = self.rules.lock() {
            g.clear();
        }
    }

    /// The current rules.
    pub fn list(&self) -> Vec<Fault> {
        self.rules.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Takes (consuming one use of) every rule of `kind` matching the request (`query`: its raw
    /// query string, empty when none).
    pub fn take(&self, kind: &FaultKind, method: &str, path: &str, query: &str) -> Vec<Fault> {
        let Ok(mut g) = self.rules.lock() else {
            return Vec::new();
        };
        let mut hits = Vec::new();
        for rule in g.iter_mut() {
            if &rule.kind != kind || rule.times == Some(0) {
                continue;
            }
            if rule
                .method
                .as_deref()
                .is_some_and(|m| !m.eq_ignore_ascii_case(method))
            {
                continue;
            }
            if rule.path.as_deref().is_some_and(|p| !glob(p, path)) {
                continue;
            }
            if rule.query.as_deref().is_some_and(|q| !glob(q, query)) {
                continue;
            }
            if let Some(t) = rule.times.as_mut() {
                *t -= 1;
            }
            hits.push(rule.clone());
        }
        g.retain(|r| r.times != Some(0));
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches() {
        assert!(glob("/v1/sprites", "/v1/sprites"));
        assert!(!glob("/v1/sprites", "/v1/sprites/a"));
        assert!(glob("/v1/sprites/*/exec*", "/v1/sprites/a/exec/3"));
        assert!(glob("*", "/x"));
        assert!(!glob("/v1/*/fs", "/v1/a/exec"));
    }

    #[test]
    fn times_bound_the_rule() {
        let f = Faults::new(parse_faults(r#"{"kind":"error","times":1}"#).unwrap());
        assert_eq!(f.take(&FaultKind::Error, "GET", "/a", "").len(), 1);
        assert!(f.take(&FaultKind::Error, "GET", "/a", "").is_empty());
        assert!(f.list().is_empty());
    }

    #[test]
    fn a_query_glob_narrows_the_rule() {
        let f = Faults::new(parse_faults(r#"{"kind":"error","query":"*cmd=up*"}"#).unwrap());
        assert!(f.take(&FaultKind::Error, "GET", "/a", "cmd=sh").is_empty());
        assert!(f.take(&FaultKind::Error, "GET", "/a", "").is_empty());
        assert_eq!(
            f.take(&FaultKind::Error, "GET", "/a", "x=1&cmd=up").len(),
            1
        );
    }
}
