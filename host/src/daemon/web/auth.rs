//! Signing in to the web UI: one-time login tokens (minted for `clauderon web` over the
//! bearer-authenticated API, valid 5 minutes, used once) exchanged for a session cookie.
//!
//! Only SHA-256 digests of tokens and cookies are kept, in memory: a daemon restart signs every
//! browser out (`clauderon web` signs in again), and nothing on disk can be replayed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use sha2::{Digest as _, Sha256};

/// How long a login token may wait to be used.
pub const LOGIN_TOKEN_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a browser stays signed in (the daemon's restart ends it sooner).
pub const SESSION_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// The session cookie's name.
pub const COOKIE_NAME: &str = "clauderon_session";
/// At most this many unexpired login tokens or sessions are kept; the oldest goes first.
const MAX_ENTRIES: usize = 256;

/// Which credential a request was admitted with (set by the guard as a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthedBy {
    /// `Authorization: Bearer` with the API token (the CLI, scripts).
    Bearer,
    /// The web UI's session cookie (a browser).
    Cookie,
}

type Digest = [u8; 32];

#[derive(Debug, Default)]
struct Inner {
    /// Login token digest → when it expires.
    login: HashMap<Digest, Instant>,
    /// Session cookie digest → when it expires.
    sessions: HashMap<Digest, Instant>,
}

/// The daemon's login tokens and browser sessions; cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct WebAuth {
    inner: Arc<Mutex<Inner>>,
}

fn digest(secret: &str) -> Digest {
    Sha256::digest(secret.as_bytes()).into()
}

/// Drops expired entries, then the soonest-expiring ones beyond [`MAX_ENTRIES`].
fn prune(map: &mut HashMap<Digest, Instant>, now: Instant) {
    map.retain(|_, exp| *exp > now);
    while map.len() >= MAX_ENTRIES {
        let Some(oldest) = map.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k) else {
            break;
        };
        map.remove(&oldest);
    }
}

impl WebAuth {
    /// An empty set: nobody is signed in.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves only maps of digests; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new one-time login token, valid for [`LOGIN_TOKEN_TTL`].
    pub fn mint_login_token(&self) -> String {
        let token = crate::proxy::ca::random_hex(32);
        let now = Instant::now();
        let mut inner = self.lock();
        prune(&mut inner.login, now);
        inner.login.insert(digest(&token), now + LOGIN_TOKEN_TTL);
        token
    }

    /// Uses up `token`: when it was minted here and has not expired, a new session cookie value
    /// (valid for [`SESSION_TTL`]); `None` otherwise. A token works once.
    pub fn redeem(&self, token: &str) -> Option<String> {
        let now = Instant::now();
        let mut inner = self.lock();
        let expires = inner.login.remove(&digest(token))?;
        if expires <= now {
            return None;
        }
        let cookie = crate::proxy::ca::random_hex(32);
        prune(&mut inner.sessions, now);
        inner.sessions.insert(digest(&cookie), now + SESSION_TTL);
        Some(cookie)
    }

    /// Whether `headers` carry a live session cookie.
    pub fn has_session(&self, headers: &HeaderMap) -> bool {
        let Some(value) = session_cookie(headers) else {
            return false;
        };
        let now = Instant::now();
        self.lock()
            .sessions
            .get(&digest(value))
            .is_some_and(|exp| *exp > now)
    }

    /// Ends the browser session `headers` carry, if any (sign out).
    pub fn end_session(&self, headers: &HeaderMap) {
        if let Some(value) = session_cookie(headers) {
            self.lock().sessions.remove(&digest(value));
        }
    }
}

/// The value of our cookie in the request's `Cookie` headers.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value for a new session: `HttpOnly` (no script reads it), `SameSite=Strict`
/// (no other site's page sends it), `Path=/`; no `Secure`, as the daemon speaks plain HTTP on
/// loopback.
pub fn set_cookie(value: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_TTL.as_secs()
    ))
    .ok()
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("clauderon_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, v.parse().unwrap());
        h
    }

    #[test]
    fn a_login_token_works_once_and_gives_a_session() {
        let auth = WebAuth::new();
        let t = auth.mint_login_token();
        assert_eq!(t.len(), 64);
        let cookie = auth.redeem(&t).expect("a fresh token redeems");
        assert!(auth.redeem(&t).is_none(), "a token works once");
        assert!(auth.redeem("nope").is_none());
        assert!(auth.has_session(&with_cookie(&format!("a=b; {COOKIE_NAME}={cookie}"))));
        assert!(!auth.has_session(&with_cookie(&format!("{COOKIE_NAME}=x{cookie}"))));
        assert!(!auth.has_session(&with_cookie(&format!("{COOKIE_NAME}="))));
        assert!(!auth.has_session(&HeaderMap::new()));
        auth.end_session(&with_cookie(&format!("{COOKIE_NAME}={cookie}")));
        assert!(!auth.has_session(&with_cookie(&format!("{COOKIE_NAME}={cookie}"))));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let auth = WebAuth::new();
        let t = auth.mint_login_token();
        let past = Instant::now()
            .checked_sub(Duration::from_secs(1))
            .expect("the clock is past one second");
        auth.lock().login.insert(digest(&t), past);
        assert!(auth.redeem(&t).is_none());
    }

    #[test]
    fn the_cookie_is_http_only_and_strict() {
        let v = set_cookie("abc").unwrap();
        let v = v.to_str().unwrap();
        assert!(v.starts_with("clauderon_session=abc; "), "{v}");
        for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(v.contains(part), "{v}");
        }
        assert!(!v.contains("Secure"), "{v}");
    }

    #[test]
    fn entries_are_bounded() {
        let auth = WebAuth::new();
        for _ in 0..(MAX_ENTRIES * 2) {
            auth.mint_login_token();
        }
        assert!(auth.lock().login.len() <= MAX_ENTRIES);
    }
}
