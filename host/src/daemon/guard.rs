//! Request guards every request passes (API, web pages, assets, sockets): a loopback `Host`, no
//! foreign `Origin`, and a credential: the bearer token, or the web UI's session cookie.
//!
//! The token stops other local users and processes; the `Host` check stops DNS rebinding (a page
//! on `evil.example` that resolves to 127.0.0.1 still sends `Host: evil.example`); the `Origin`
//! check stops a browser page on another site from driving the API with a simple request. The
//! cookie (`web::auth`) is only taken from the browser's own pages: `Sec-Fetch-Site` must be
//! `same-origin` or `none` when the browser sends it, because `SameSite` treats every port of
//! localhost as the same site.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use super::web::{self, AuthedBy, WebAuth};

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
    /// The session cookie came with a request another page made (`Sec-Fetch-Site`).
    CrossSite(String),
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
            Refusal::ForeignHost(_) | Refusal::ForeignOrigin(_) | Refusal::CrossSite(_) => {
                StatusCode::FORBIDDEN
            }
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
            Refusal::CrossSite(site) => format!(
                "refused a {site} request with the web UI's cookie: only the web UI's own pages \
                 may use it"
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
            Refusal::ForeignOrigin(_) | Refusal::CrossSite(_) => "foreign_origin",
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

/// Checks one request's headers for the bearer token; `Ok` when it may be served.
pub fn check(cfg: &GuardConfig, headers: &HeaderMap) -> Result<(), Refusal> {
    check_addressing(cfg, headers)?;
    if bearer(cfg, headers)? {
        Ok(())
    } else {
        Err(Refusal::Unauthorized)
    }
}

/// The `Host` and `Origin` checks every request passes, signed in or not.
fn check_addressing(cfg: &GuardConfig, headers: &HeaderMap) -> Result<(), Refusal> {
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
    Ok(())
}

/// `Ok(true)` for the right bearer token, `Ok(false)` without an `Authorization` header; a
/// header with anything else is refused (never passed on to the cookie).
fn bearer(cfg: &GuardConfig, headers: &HeaderMap) -> Result<bool, Refusal> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(false);
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(t) if constant_time_eq(t.as_bytes(), cfg.token.as_bytes()) => Ok(true),
        _ => Err(Refusal::Unauthorized),
    }
}

/// Checks a request for the bearer token or, from the web UI's own pages, its session cookie.
pub fn authenticate(
    cfg: &GuardConfig,
    web: &WebAuth,
    headers: &HeaderMap,
) -> Result<AuthedBy, Refusal> {
    check_addressing(cfg, headers)?;
    if bearer(cfg, headers)? {
        return Ok(AuthedBy::Bearer);
    }
    if !web.has_session(headers) {
        return Err(Refusal::Unauthorized);
    }
    match headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or("<not text>"))
    {
        None | Some("same-origin" | "none") => Ok(AuthedBy::Cookie),
        Some(other) => Err(Refusal::CrossSite(other.to_owned())),
    }
}

/// The guard's state: what requests are compared against and who is signed in.
#[derive(Debug, Clone)]
pub struct Guard {
    cfg: GuardConfig,
    web: WebAuth,
}

impl Guard {
    /// A guard over `cfg` that also admits the browser sessions of `web`.
    pub fn new(cfg: GuardConfig, web: WebAuth) -> Self {
        Self { cfg, web }
    }
}

/// axum middleware applying [`authenticate`] to every request. The login exchange
/// ([`web::LOGIN_PATH`]) passes with the addressing checks alone, as its token is the
/// credential; an unauthenticated page, asset or socket gets the login page, `/api/*` the JSON
/// 401.
pub async fn middleware(State(g): State<Guard>, mut req: Request<Body>, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let result = if path == web::LOGIN_PATH {
        check_addressing(&g.cfg, req.headers()).map(|()| None)
    } else {
        authenticate(&g.cfg, &g.web, req.headers()).map(Some)
    };
    match result {
        Ok(by) => {
            if let Some(by) = by {
                req.extensions_mut().insert(by);
            }
            next.run(req).await
        }
        Err(refusal) => {
            tracing::warn!(reason = ?refusal_kind(&refusal), path = %path, "refused API request");
            match refusal {
                Refusal::Unauthorized if !web::is_api_path(&path) => web::login_page(None),
                Refusal::CrossSite(_) if !web::is_api_path(&path) => web::continue_page(&path),
                other => other.into_response(),
            }
        }
    }
}

fn refusal_kind(r: &Refusal) -> &'static str {
    match r {
        Refusal::Unauthorized => "unauthorized",
        Refusal::ForeignHost(_) => "foreign host",
        Refusal::ForeignOrigin(_) => "foreign origin",
        Refusal::CrossSite(_) => "cross-site cookie",
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
    fn the_cookie_admits_only_the_own_pages() {
        let web = WebAuth::new();
        let token = web.mint_login_token();
        let cookie = web.redeem(&token).unwrap();
        let jar = format!("{}={cookie}", web::COOKIE_NAME);
        for site in [None, Some("same-origin"), Some("none")] {
            let mut h = headers(&[("host", "127.0.0.1:3030"), ("cookie", &jar)]);
            if let Some(s) = site {
                h.insert("sec-fetch-site", s.parse().unwrap());
            }
            assert_eq!(
                authenticate(&cfg(), &web, &h),
                Ok(AuthedBy::Cookie),
                "{site:?}"
            );
        }
        for site in ["same-site", "cross-site"] {
            let h = headers(&[
                ("host", "127.0.0.1:3030"),
                ("cookie", &jar),
                ("sec-fetch-site", site),
            ]);
            assert!(matches!(
                authenticate(&cfg(), &web, &h),
                Err(Refusal::CrossSite(_))
            ));
        }
        // The addressing checks still apply, and a wrong bearer is not rescued by the cookie.
        let h = headers(&[
            ("host", "127.0.0.1:3030"),
            ("cookie", &jar),
            ("origin", "http://localhost:8080"),
        ]);
        assert!(matches!(
            authenticate(&cfg(), &web, &h),
            Err(Refusal::ForeignOrigin(_))
        ));
        let h = headers(&[
            ("host", "127.0.0.1:3030"),
            ("cookie", &jar),
            ("authorization", "Bearer nope"),
        ]);
        assert_eq!(authenticate(&cfg(), &web, &h), Err(Refusal::Unauthorized));
        let h = headers(&[("host", "127.0.0.1:3030"), ("authorization", "Bearer tok")]);
        assert_eq!(authenticate(&cfg(), &web, &h), Ok(AuthedBy::Bearer));
        let h = headers(&[
            ("host", "127.0.0.1:3030"),
            ("cookie", "clauderon_session=x"),
        ]);
        assert_eq!(authenticate(&cfg(), &web, &h), Err(Refusal::Unauthorized));
    }

    #[test]
    fn refusal_message_never_echoes_the_token() {
        let msg = Refusal::Unauthorized.message();
        assert!(!msg.contains("tok\""));
        assert!(format!("{:?}", cfg()).contains("[redacted]"));
    }
}
