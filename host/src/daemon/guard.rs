//! Request guards every API call passes: the bearer token, a loopback `Host`, and no foreign
//! `Origin`.
//!
//! The token stops other local users and processes; the `Host` check stops DNS rebinding (a page
//! on `evil.example` that resolves to 127.0.0.1 still sends `Host: evil.example`); the `Origin`
//! check stops a browser page on another site from driving the API with a simple request.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// What the guard compares requests against.
#[derive(Clone)]
pub struct GuardConfig {
    /// The token from `api-token`; compared in constant time.
    pub token: Arc<str>,
    /// The port the daemon listens on, so `Origin: http://localhost:<port>` (our own page) passes.
    pub port: u16,
}

impl std::fmt::Debug for GuardConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardConfig")
            .field("token", &"[redacted]")
            .field("port", &self.port)
            .finish()
    }
}

/// Why a request was refused; the message tells the caller what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer` header, or the wrong token.
    Unauthorized,
    /// `Host` names something other than a loopback address.
    ForeignHost(String),
    /// `Origin` is a page that is not this daemon.
    ForeignOrigin(String),
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
            Refusal::ForeignHost(_) | Refusal::ForeignOrigin(_) => StatusCode::FORBIDDEN,
        }
    }

    fn message(&self) -> String {
        match self {
            Refusal::Unauthorized => "missing or wrong bearer token: send `Authorization: Bearer \
                 $(cat $CLAUDERON_HOME/api-token)`"
                .to_owned(),
            Refusal::ForeignHost(h) => format!(
                "refused Host {h:?}: the clauderon API only answers requests addressed to \
                 localhost, 127.0.0.1 or [::1]"
            ),
            Refusal::ForeignOrigin(o) => format!(
                "refused Origin {o:?}: the clauderon API does not accept cross-site requests"
            ),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        // The same shape as every other API error (DESIGN §9).
        let body = serde_json::json!({ "error": { "message": self.message(), "code": match &self {
            Refusal::Unauthorized => "unauthorized",
            Refusal::ForeignHost(_) => "foreign_host",
            Refusal::ForeignOrigin(_) => "foreign_origin",
        }}});
        let mut resp = (self.status(), axum::Json(body)).into_response();
        if self == Refusal::Unauthorized {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// Checks one request's headers; `Ok` when it may be served.
pub fn check(cfg: &GuardConfig, headers: &HeaderMap) -> Result<(), Refusal> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_loopback_host(host) {
        return Err(Refusal::ForeignHost(host.to_owned()));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("<not text>");
        if !is_own_origin(origin, cfg.port) {
            return Err(Refusal::ForeignOrigin(origin.to_owned()));
        }
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(t) if constant_time_eq(t.as_bytes(), cfg.token.as_bytes()) => Ok(()),
        _ => Err(Refusal::Unauthorized),
    }
}

/// axum middleware applying [`check`] to every request.
pub async fn middleware(
    State(cfg): State<GuardConfig>,
    req: Request<Body>,
    next: Next,
) -> Response {
    match check(&cfg, req.headers()) {
        Ok(()) => next.run(req).await,
        Err(refusal) => {
            tracing::warn!(reason = ?refusal_kind(&refusal), path = %req.uri().path(), "refused API request");
            refusal.into_response()
        }
    }
}

fn refusal_kind(r: &Refusal) -> &'static str {
    match r {
        Refusal::Unauthorized => "unauthorized",
        Refusal::ForeignHost(_) => "foreign host",
        Refusal::ForeignOrigin(_) => "foreign origin",
    }
}

/// True for `localhost`, `*.localhost`, `127.x.y.z` and `[::1]`, with or without a port.
pub fn is_loopback_host(host: &str) -> bool {
    let name = strip_port(host);
    if name.eq_ignore_ascii_case("localhost") || name.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    if name == "[::1]" {
        return true;
    }
    match name.parse::<std::net::Ipv4Addr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return match rest.find(']') {
            Some(end) => &host[..end + 2],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

/// True when `origin` is a page served by this daemon (a loopback host on our port).
fn is_own_origin(origin: &str, port: u16) -> bool {
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    let rest = rest.trim_end_matches('/');
    let Some((_, p)) = rest.rsplit_once(':') else {
        return false;
    };
    p.parse::<u16>().ok() == Some(port) && is_loopback_host(rest)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> GuardConfig {
        GuardConfig {
            token: Arc::from("tok"),
            port: 3030,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn accepts_loopback_with_token() {
        for host in [
            "localhost:3030",
            "127.0.0.1:3030",
            "[::1]:3030",
            "localhost",
        ] {
            let h = headers(&[("host", host), ("authorization", "Bearer tok")]);
            assert_eq!(check(&cfg(), &h), Ok(()), "{host}");
        }
    }

    #[test]
    fn refuses_rebinding_hosts() {
        for host in [
            "evil.example:3030",
            "127.0.0.1.evil.example",
            "",
            "10.0.0.1:3030",
        ] {
            let h = headers(&[("host", host), ("authorization", "Bearer tok")]);
            assert!(
                matches!(check(&cfg(), &h), Err(Refusal::ForeignHost(_))),
                "{host}"
            );
        }
    }

    #[test]
    fn refuses_foreign_origin_and_accepts_own() {
        let bad = headers(&[
            ("host", "localhost:3030"),
            ("origin", "https://evil.example"),
            ("authorization", "Bearer tok"),
        ]);
        assert!(matches!(
            check(&cfg(), &bad),
            Err(Refusal::ForeignOrigin(_))
        ));
        let null = headers(&[
            ("host", "localhost:3030"),
            ("origin", "null"),
            ("authorization", "Bearer tok"),
        ]);
        assert!(matches!(
            check(&cfg(), &null),
            Err(Refusal::ForeignOrigin(_))
        ));
        let other_port = headers(&[
            ("host", "localhost:3030"),
            ("origin", "http://localhost:8080"),
            ("authorization", "Bearer tok"),
        ]);
        assert!(check(&cfg(), &other_port).is_err());
        let own = headers(&[
            ("host", "localhost:3030"),
            ("origin", "http://127.0.0.1:3030"),
            ("authorization", "Bearer tok"),
        ]);
        assert_eq!(check(&cfg(), &own), Ok(()));
    }

    #[test]
    fn refuses_missing_or_wrong_token() {
        for auth in [None, Some("Bearer nope"), Some("tok"), Some("Basic dG9r")] {
            let mut h = headers(&[("host", "localhost")]);
            if let Some(a) = auth {
                h.insert("authorization", a.parse().unwrap());
            }
            assert_eq!(check(&cfg(), &h), Err(Refusal::Unauthorized), "{auth:?}");
        }
    }

    #[test]
    fn refusal_message_never_echoes_the_token() {
        let msg = Refusal::Unauthorized.message();
        assert!(!msg.contains("tok\""));
        assert!(format!("{:?}", cfg()).contains("[redacted]"));
    }
}
