//! Sending REST requests: auth header, deadlines, retries, and turning error answers into [`Error`].

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

use super::builder::SpritesClient;
use super::error::{Error, Result};
use super::events::ClientEvent;
use super::retry::{Idempotency, retryable_read_status};

/// The longest error body quoted in a message.
const MAX_ERROR_BODY: usize = 600;

impl SpritesClient {
    /// Sends the request `build` makes (called once per attempt) with auth and the ordinary
    /// deadline, retrying as [`super::retry`] allows. Returns a successful (< 400) response.
    pub(crate) async fn send(
        &self,
        op: &str,
        idem: Idempotency,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        self.send_with_timeout(op, idem, self.inner.request_timeout, build)
            .await
    }

    /// Like [`send`](Self::send) with an explicit whole-request deadline (streams use a long one).
    pub(crate) async fn send_with_timeout(
        &self,
        op: &str,
        idem: Idempotency,
        timeout: Duration,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let policy = &self.inner.retry;
        let mut failed = 0u32;
        loop {
            let req = build(&self.inner.http)
                .header(
                    reqwest::header::AUTHORIZATION,
                    self.inner.token.header_value(),
                )
                .timeout(timeout);
            let (err, refused) = match req.send().await {
                Ok(resp) if resp.status().as_u16() < 400 => return Ok(resp),
                Ok(resp) => (error_from_response(resp).await, false),
                Err(e) => map_reqwest(op, timeout, e),
            };
            failed += 1;
            let wait = match retry_delay(policy, idem, refused, &err, failed) {
                Some(w) => w,
                None => return Err(err),
            };
            self.announce(op, &err, wait, failed);
            tokio::time::sleep(wait).await;
        }
    }

    /// Reports a coming retry through the event callback.
    pub(crate) fn announce(&self, op: &str, err: &Error, wait: Duration, attempt: u32) {
        let event = if matches!(err, Error::RateLimited { .. }) {
            ClientEvent::RateLimitWait {
                operation: op.to_owned(),
                wait,
                attempt,
            }
        } else {
            ClientEvent::Retrying {
                operation: op.to_owned(),
                reason: err.to_string(),
                wait,
                attempt,
            }
        };
        self.emit(event);
    }

    /// Sends and decodes a JSON answer.
    pub(crate) async fn send_json<T: DeserializeOwned>(
        &self,
        op: &str,
        idem: Idempotency,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<T> {
        let resp = self.send(op, idem, build).await?;
        decode_json(op, resp).await
    }
}

/// How long to wait before retrying `err`, or `None` when it must not be retried.
/// `refused` means the request was never delivered.
pub(crate) fn retry_delay(
    policy: &super::retry::RetryPolicy,
    idem: Idempotency,
    refused: bool,
    err: &Error,
    failed: u32,
) -> Option<Duration> {
    if !policy.allows_another(failed) {
        return None;
    }
    match err {
        Error::RateLimited {
            retry_after, code, ..
        } => {
            // More sprites running will not change by waiting a few seconds.
            if code.as_deref() == Some("concurrent_sprite_limit_exceeded") {
                return None;
            }
            let wait = retry_after.unwrap_or_else(|| policy.backoff(failed));
            (wait <= policy.max_rate_limit_wait).then_some(wait)
        }
        _ if refused => Some(policy.backoff(failed)),
        Error::Transport(_) | Error::Timeout { .. } if idem == Idempotency::Read => {
            Some(policy.backoff(failed))
        }
        Error::Api { status, .. }
            if idem == Idempotency::Read && retryable_read_status(*status) =>
        {
            Some(policy.backoff(failed))
        }
        _ => None,
    }
}

/// Maps a reqwest failure; the flag is true when the connection was never established.
pub(crate) fn map_reqwest(op: &str, timeout: Duration, e: reqwest::Error) -> (Error, bool) {
    // The URL can carry exec arguments and environment values: leave it out.
    let e = e.without_url();
    let detail = error_chain(&e);
    if e.is_connect() {
        return (
            Error::Transport(format!("{op}: connection failed: {detail}")),
            true,
        );
    }
    if e.is_timeout() {
        return (
            Error::Timeout {
                what: op.to_owned(),
                after: timeout,
            },
            false,
        );
    }
    if e.is_decode() {
        return (Error::Protocol(format!("{op}: {detail}")), false);
    }
    (Error::Transport(format!("{op}: {detail}")), false)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    let mut depth = 0;
    while let Some(cause) = src {
        if depth >= 5 {
            break;
        }
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
        depth += 1;
    }
    s
}

/// Reads an error answer into an [`Error`].
pub(crate) async fn error_from_response(resp: reqwest::Response) -> Error {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap_or_default();
    error_from_parts(status, &headers, &body)
}

/// Builds the [`Error`] for a status, headers and body (JSON in any documented shape, or text).
pub(crate) fn error_from_parts(status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    let json: Option<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| match v {
                serde_json::Value::Object(m) => Some(m),
                _ => None,
            });
    let text_field = |m: &serde_json::Map<String, serde_json::Value>, k: &str| {
        m.get(k).and_then(|v| v.as_str()).map(str::to_owned)
    };
    let (mut message, code) = match &json {
        Some(m) => {
            let errors = m.get("errors").and_then(|v| v.as_array()).map(|a| {
                a.iter()
                    .map(|e| {
                        e.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| e.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            let msg = text_field(m, "message");
            let err = text_field(m, "error");
            let code = text_field(m, "code").or_else(|| msg.as_ref().and(err.clone()));
            let message = msg.or(err).or(errors).unwrap_or_else(|| truncate(body));
            (message, code)
        }
        None => (truncate(body), None),
    };
    if message.is_empty() {
        message = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("error")
            .to_owned();
    }
    if status == 429 {
        let header_num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let json_num = |k: &str| {
            json.as_ref()
                .and_then(|m| m.get(k))
                .and_then(|v| v.as_u64())
        };
        let retry_after = json_num("retry_after_seconds")
            .or_else(|| header_num("retry-after"))
            .map(Duration::from_secs);
        return Error::RateLimited {
            retry_after,
            limit: json_num("limit").or_else(|| header_num("x-ratelimit-limit")),
            window: json_num("window_seconds").map(Duration::from_secs),
            code,
            message,
        };
    }
    Error::Api {
        status,
        message,
        code,
    }
}

fn truncate(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.len() <= MAX_ERROR_BODY {
        return text.to_owned();
    }
    let mut end = MAX_ERROR_BODY;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// Decodes a JSON body, naming the operation in the error.
pub(crate) async fn decode_json<T: DeserializeOwned>(
    op: &str,
    resp: reqwest::Response,
) -> Result<T> {
    let body = resp
        .bytes()
        .await
        .map_err(|e| Error::Transport(format!("{op}: reading the answer failed: {e}")))?;
    serde_json::from_slice(&body).map_err(|e| {
        Error::Protocol(format!(
            "{op}: the answer is not the expected JSON ({e}): {}",
            truncate(&body)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn parses_every_error_shape() {
        let h = HeaderMap::new();
        let e = error_from_parts(404, &h, br#"{"error":"sprite not found"}"#);
        assert!(
            matches!(&e, Error::Api { status: 404, message, code: None } if message == "sprite not found")
        );
        let e = error_from_parts(400, &h, br#"{"errors":["invalid sprite name format","x"]}"#);
        assert!(
            matches!(&e, Error::Api { message, .. } if message == "invalid sprite name format; x")
        );
        let e = error_from_parts(
            404,
            &h,
            br#"{"error":"no such file","code":"ENOENT","path":"/x"}"#,
        );
        assert!(matches!(&e, Error::Api { code: Some(c), .. } if c == "ENOENT"));
        let e = error_from_parts(500, &h, b"Failed to get checkpoint: v9 not found\n");
        assert!(
            matches!(&e, Error::Api { status: 500, message, .. } if message == "Failed to get checkpoint: v9 not found")
        );
        let e = error_from_parts(502, &h, b"");
        assert!(e.to_string().contains("Bad Gateway"));
        let e = error_from_parts(401, &h, br#"{"error":"authentication failed"}"#);
        assert_eq!(
            e.to_string(),
            "Sprites API error 401: authentication failed; check the Sprites API token (create one at https://sprites.dev/account)"
        );
    }

    #[test]
    fn parses_rate_limits_preferring_json() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("9"));
        h.insert("x-ratelimit-limit", HeaderValue::from_static("10"));
        let body = br#"{"error":"sprite_creation_rate_limited","message":"slow down","limit":5,"window_seconds":60,"retry_after_seconds":3}"#;
        match error_from_parts(429, &h, body) {
            Error::RateLimited {
                retry_after,
                limit,
                window,
                code,
                message,
            } => {
                assert_eq!(retry_after, Some(Duration::from_secs(3)));
                assert_eq!(limit, Some(5));
                assert_eq!(window, Some(Duration::from_secs(60)));
                assert_eq!(code.as_deref(), Some("sprite_creation_rate_limited"));
                assert_eq!(message, "slow down");
            }
            other => panic!("{other:?}"),
        }
        match error_from_parts(429, &h, b"too many") {
            Error::RateLimited {
                retry_after, limit, ..
            } => {
                assert_eq!(retry_after, Some(Duration::from_secs(9)));
                assert_eq!(limit, Some(10));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_rules() {
        use super::super::retry::RetryPolicy;
        let p = RetryPolicy::default();
        let api = |s| Error::Api {
            status: s,
            message: String::new(),
            code: None,
        };
        assert!(retry_delay(&p, Idempotency::Read, false, &api(503), 1).is_some());
        assert!(retry_delay(&p, Idempotency::Read, false, &api(500), 1).is_none());
        assert!(retry_delay(&p, Idempotency::Write, false, &api(503), 1).is_none());
        let t = Error::Transport("reset".into());
        assert!(retry_delay(&p, Idempotency::Write, false, &t, 1).is_none());
        assert!(retry_delay(&p, Idempotency::Write, true, &t, 1).is_some());
        assert!(retry_delay(&p, Idempotency::Read, false, &t, 1).is_some());
        let rl = |secs, code: Option<&str>| Error::RateLimited {
            retry_after: Some(Duration::from_secs(secs)),
            limit: None,
            window: None,
            code: code.map(str::to_owned),
            message: String::new(),
        };
        assert_eq!(
            retry_delay(&p, Idempotency::Write, false, &rl(3, None), 1),
            Some(Duration::from_secs(3))
        );
        assert!(retry_delay(&p, Idempotency::Write, false, &rl(3600, None), 1).is_none());
        assert!(
            retry_delay(
                &p,
                Idempotency::Write,
                false,
                &rl(1, Some("concurrent_sprite_limit_exceeded")),
                1
            )
            .is_none()
        );
        assert!(retry_delay(&p, Idempotency::Read, true, &t, 4).is_none());
    }
}
