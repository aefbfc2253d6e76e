//! The HTML pages (the app's shell, the login page, not found), the login exchange and the
//! login-token route `clauderon web` calls. Every page carries a strict Content-Security-Policy.

use axum::Json;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, body::Body};

use crate::daemon::error::error_response;

use super::assets;
use super::auth::{self, AuthedBy, LOGIN_TOKEN_TTL, WebAuth};

const INDEX: &str = include_str!("templates/index.html");
const LOGIN: &str = include_str!("templates/login.html");
const NOT_FOUND: &str = include_str!("templates/not-found.html");
const CONTINUE: &str = include_str!("templates/continue.html");

/// The policy of every page: scripts and styles only from this daemon, no inline script or
/// style; the one exception is `<style>` elements stamped with this page's nonce, which only
/// our script gives to xterm.js's runtime styles (its renderer creates them; DESIGN §13).
fn csp(nonce: Option<&str>) -> String {
    let style = match nonce {
        Some(n) => format!("'self' 'nonce-{n}'"),
        None => "'self'".to_owned(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src {style}; img-src 'self'; \
         font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// An HTML answer with the page headers: CSP, never cached as is, never framed, no referrer.
fn html(status: StatusCode, body: String, nonce: Option<&str>, cache: &'static str) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&csp(nonce)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    security_headers(h);
    resp
}

/// Headers every web answer carries.
pub(super) fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// The app's shell for `/`, `/new`, `/caches` and `/s/{session}`; the script decides what to
/// show.
pub async fn index() -> Response {
    let nonce = crate::proxy::ca::random_hex(16);
    let body = INDEX
        .replace("{{ASSETS}}", &assets::base())
        .replace("{{NONCE}}", &nonce);
    html(StatusCode::OK, body, Some(&nonce), "no-cache")
}

/// The page for a request without a credential: how to sign in, and nothing else. `notice`
/// says why an attempt failed.
pub fn login_page(notice: Option<&str>) -> Response {
    let notice = notice
        .map(|n| format!("<p><strong>{}</strong></p>", escape(n)))
        .unwrap_or_default();
    html(
        StatusCode::UNAUTHORIZED,
        LOGIN.replace("{{NOTICE}}", &notice),
        None,
        "no-store",
    )
}

/// The page for a signed-in browser that followed a link from another local site (another
/// port of localhost is the same site): the cookie is not taken from such a request, but a
/// click on this page's link is the UI's own navigation.
pub fn continue_page(path: &str) -> Response {
    html(
        StatusCode::FORBIDDEN,
        CONTINUE.replace("{{PATH}}", &escape(path)),
        None,
        "no-store",
    )
}

/// The page for a path the web UI does not have.
pub fn not_found_page() -> Response {
    html(
        StatusCode::NOT_FOUND,
        NOT_FOUND.to_owned(),
        None,
        "no-cache",
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `?token=...`.
#[derive(Debug, serde::Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    token: Option<String>,
}

/// `GET /login?token=T`: a fresh, unused token becomes the session cookie and a 303 to `/`, so
/// the token leaves the address bar and the history entry; anything else gets the login page.
pub async fn login(
    Extension(web): Extension<WebAuth>,
    q: Result<Query<LoginQuery>, QueryRejection>,
) -> Response {
    let Some(token) = q.ok().and_then(|Query(q)| q.token) else {
        return login_page(None);
    };
    let cookie = Some(token)
        .as_deref()
        .and_then(|t| web.redeem(t))
        .and_then(|c| auth::set_cookie(&c));
    let Some(cookie) = cookie else {
        return login_page(Some(
            "This sign-in link has expired or was already used: each link works once, within \
             5 minutes. Run `clauderon web` for a new one.",
        ));
    };
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let h = resp.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_static("/"));
    h.insert(header::SET_COOKIE, cookie);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    security_headers(h);
    resp
}

/// `POST /api/web/login-token` (API token only): `{"token","path","expires_in_seconds"}`, a
/// one-time sign-in link for `clauderon web`.
pub async fn login_token(
    Extension(web): Extension<WebAuth>,
    by: Option<Extension<AuthedBy>>,
) -> Response {
    if by.map(|Extension(b)| b) != Some(AuthedBy::Bearer) {
        return error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            "sign-in links are made for the API token only: run `clauderon web`",
        );
    }
    let token = web.mint_login_token();
    Json(serde_json::json!({
        "path": format!("/login?token={token}"),
        "token": token,
        "expires_in_seconds": LOGIN_TOKEN_TTL.as_secs(),
    }))
    .into_response()
}

/// `POST /api/web/logout`: ends this browser's session and removes its cookie.
pub async fn logout(Extension(web): Extension<WebAuth>, headers: HeaderMap) -> Response {
    web.end_session(&headers);
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, auth::clear_cookie());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_no_inline_code() {
        let p = csp(Some("abc"));
        assert!(p.contains("script-src 'self';"), "{p}");
        assert!(p.contains("style-src 'self' 'nonce-abc';"), "{p}");
        assert!(p.contains("connect-src 'self'"), "{p}");
        assert!(!p.contains("unsafe"), "{p}");
    }

    #[test]
    fn notices_are_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&"),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
    }
}
