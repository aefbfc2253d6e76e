//! `SpritesClient` and its builder: base URL, token, TLS, timeouts, retry policy, event callback.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use url::Url;

use super::error::{Error, Result};
use super::events::{ClientEvent, EventCallback};
use super::retry::RetryPolicy;
use super::token::Token;

/// The public Sprites API.
pub const DEFAULT_BASE_URL: &str = "https://api.sprites.dev";

/// A client of the Sprites API. Cheap to clone (shared connection pool).
#[derive(Clone)]
pub struct SpritesClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) base: Url,
    pub(crate) ws_base: Url,
    pub(crate) token: Token,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) stream_timeout: Duration,
    pub(crate) ping_interval: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) events: Option<EventCallback>,
}

impl std::fmt::Debug for SpritesClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpritesClient")
            .field("base_url", &self.inner.base.as_str())
            .field("token", &self.inner.token)
            .finish_non_exhaustive()
    }
}

impl SpritesClient {
    /// A builder with the defaults (public API, 60 s connect timeout, 15 s WebSocket pings).
    pub fn builder() -> SpritesClientBuilder {
        SpritesClientBuilder::default()
    }

    /// The REST base URL (no trailing slash).
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str().trim_end_matches('/')
    }

    /// The WebSocket base URL derived from the REST one (`http` -> `ws`, `https` -> `wss`).
    pub fn ws_url(&self) -> &str {
        self.inner.ws_base.as_str().trim_end_matches('/')
    }

    pub(crate) fn emit(&self, event: ClientEvent) {
        tracing::info!(target: "clauderon_sprites::client", "{event}");
        if let Some(cb) = &self.inner.events {
            cb(&event);
        }
    }

    /// `<base>/v1/<segments...>`, each segment percent-encoded.
    pub(crate) fn endpoint(&self, segments: &[&str]) -> Url {
        join(&self.inner.base, segments)
    }

    /// `<ws base>/v1/<segments...>`.
    pub(crate) fn ws_endpoint(&self, segments: &[&str]) -> Url {
        join(&self.inner.ws_base, segments)
    }
}

fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().push("v1").extend(segments);
    }
    url
}

/// Configures and builds a [`SpritesClient`].
pub struct SpritesClientBuilder {
    base_url: String,
    token: Option<Token>,
    connect_timeout: Duration,
    request_timeout: Duration,
    stream_timeout: Duration,
    ping_interval: Duration,
    retry: RetryPolicy,
    events: Option<EventCallback>,
    extra_roots: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for SpritesClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpritesClientBuilder")
            .field("base_url", &self.base_url)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Default for SpritesClientBuilder {
    fn default() -> Self {
        SpritesClientBuilder {
            base_url: DEFAULT_BASE_URL.to_owned(),
            token: None,
            connect_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(120),
            stream_timeout: Duration::from_secs(600),
            ping_interval: Duration::from_secs(15),
            retry: RetryPolicy::default(),
            events: None,
            extra_roots: Vec::new(),
        }
    }
}

impl SpritesClientBuilder {
    /// The REST base URL (default `https://api.sprites.dev`); the WebSocket URL is derived from it.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The bearer token (required).
    pub fn token(mut self, token: Token) -> Self {
        self.token = Some(token);
        self
    }

    /// Deadline for opening a connection or WebSocket (default 60 s: connecting wakes a cold
    /// sprite, which has taken more than 10 s in practice).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Deadline for a whole ordinary request, body included (default 120 s).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// Deadline for a streamed operation such as a checkpoint (default 600 s).
    pub fn stream_timeout(mut self, d: Duration) -> Self {
        self.stream_timeout = d;
        self
    }

    /// Interval of WebSocket keepalive pings (default 15 s); a socket silent for three intervals
    /// is declared dead.
    pub fn ping_interval(mut self, d: Duration) -> Self {
        self.ping_interval = d;
        self
    }

    /// The retry policy (default: 4 attempts, 250 ms doubling backoff, Retry-After up to 60 s).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// A callback that observes retries, rate-limit waits and create recovery.
    pub fn on_event(mut self, cb: impl Fn(&ClientEvent) + Send + Sync + 'static) -> Self {
        self.events = Some(Arc::new(cb));
        self
    }

    /// Trusts an extra root certificate (DER) besides the public web roots, e.g. a test CA.
    pub fn add_root_certificate(mut self, der: Vec<u8>) -> Self {
        self.extra_roots.push(CertificateDer::from(der));
        self
    }

    /// Builds the client; fails on a missing token or a base URL that is not http(s).
    pub fn build(self) -> Result<SpritesClient> {
        let token = self.token.ok_or_else(|| {
            Error::InvalidInput("no Sprites API token given; create one at https://sprites.dev/account and configure it".into())
        })?;
        if token.is_empty() {
            return Err(Error::InvalidInput(
                "the Sprites API token is empty; check the configured secret".into(),
            ));
        }
        let trimmed = self.base_url.trim().trim_end_matches('/');
        let base = Url::parse(trimmed).map_err(|e| {
            Error::InvalidInput(format!(
                "base URL {trimmed:?} is not a valid URL ({e}); expected e.g. {DEFAULT_BASE_URL}"
            ))
        })?;
        let ws_scheme = match base.scheme() {
            "http" => "ws",
            "https" => "wss",
            other => {
                return Err(Error::InvalidInput(format!(
                    "base URL {trimmed:?} has scheme {other:?}; use http:// or https://"
                )));
            }
        };
        if base.cannot_be_a_base() || base.host().is_none() {
            return Err(Error::InvalidInput(format!(
                "base URL {trimmed:?} has no host; expected e.g. {DEFAULT_BASE_URL}"
            )));
        }
        let mut ws_base = base.clone();
        ws_base.set_scheme(ws_scheme).map_err(|()| {
            Error::InvalidInput(format!("cannot derive a WebSocket URL from {trimmed:?}"))
        })?;

        let tls = tls_config(&self.extra_roots)?;
        let mut http_tls = tls.clone();
        http_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(http_tls)
            .connect_timeout(self.connect_timeout)
            .user_agent(concat!("clauderon-sprites/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Transport(format!("cannot build the HTTP client: {e}")))?;
        Ok(SpritesClient {
            inner: Arc::new(Inner {
                http,
                base,
                ws_base,
                token,
                tls: Arc::new(tls),
                connect_timeout: self.connect_timeout,
                request_timeout: self.request_timeout,
                stream_timeout: self.stream_timeout,
                ping_interval: self.ping_interval.max(Duration::from_millis(10)),
                retry: self.retry,
                events: self.events,
            }),
        })
    }
}

/// rustls with the ring provider, trusting the public web roots plus `extra`.
fn tls_config(extra: &[CertificateDer<'static>]) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra {
        roots.add(cert.clone()).map_err(|e| {
            Error::InvalidInput(format!("extra root certificate is not usable: {e}"))
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Transport(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_ws_url_and_encodes_segments() {
        let c = SpritesClient::builder()
            .base_url("http://127.0.0.1:8080/")
            .token(Token::new("t"))
            .build()
            .unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:8080");
        assert_eq!(c.ws_url(), "ws://127.0.0.1:8080");
        assert_eq!(
            c.endpoint(&["sprites", "a b/c"]).as_str(),
            "http://127.0.0.1:8080/v1/sprites/a%20b%2Fc"
        );
        let d = SpritesClient::builder()
            .token(Token::new("t"))
            .build()
            .unwrap();
        assert_eq!(d.ws_url(), "wss://api.sprites.dev");
        assert!(!format!("{d:?}").contains("Bearer"));
    }

    #[test]
    fn rejects_bad_configuration() {
        let e = SpritesClient::builder().build().unwrap_err();
        assert!(e.to_string().contains("token"));
        let e = SpritesClient::builder()
            .token(Token::new("t"))
            .base_url("ftp://x")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("http://"), "{e}");
        let e = SpritesClient::builder()
            .token(Token::new("  "))
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("empty"));
    }

    #[test]
    fn defaults_suit_a_cold_wake_and_the_documented_keepalive() {
        let c = SpritesClient::builder()
            .token(Token::new("t"))
            .build()
            .unwrap();
        assert_eq!(c.base_url(), DEFAULT_BASE_URL);
        // Connecting wakes a cold sprite, which has taken longer than 10 s (notes §2.2): >= 60 s.
        assert!(c.inner.connect_timeout >= Duration::from_secs(60));
        // The SDKs ping every 15 s and call a socket dead after 45 s of silence.
        assert_eq!(c.inner.ping_interval, Duration::from_secs(15));
        assert!(c.inner.request_timeout >= Duration::from_secs(60));
    }
}
