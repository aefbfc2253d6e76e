//! Sprite URLs: `https://<name>-emul.sprites.app`, which the service routes to port 8080 of
//! the sprite (waking it), open to anyone with `url_settings.auth = "public"` and to the org's
//! token otherwise (sprites-api.md §2.10, §1 "Sprite URLs").
//!
//! Here they are reached from inside sprites, through the egress proxy: a `CONNECT` to such a
//! name on port 443 is answered by the emulator itself, which ends TLS with a certificate of
//! its own CA (made at start; every sprite trusts it, because its
//! `/etc/ssl/certs/ca-certificates.crt` is the host's bundle plus that CA), checks the URL's
//! auth on the request head, and splices the connection to the sprite's port 8080. Differences
//! from the service: only the first request of a connection is checked, and nothing answers
//! sprite URLs from outside the emulator's sprites.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::app::App;

/// What follows a sprite's name in its URL's host.
pub const HOST_SUFFIX: &str = "-emul.sprites.app";

/// The port a sprite URL reaches inside the sprite.
pub const SPRITE_PORT: u16 = 8080;

/// The host bundle sprites see, extended with the URL CA.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// The URL of sprite `name`.
pub fn url_of(name: &str) -> String {
    format!("https://{name}{HOST_SUFFIX}")
}

/// The sprite a host name belongs to (`None`: not a sprite URL).
pub fn sprite_of(host: &str) -> Option<&str> {
    host.strip_suffix(HOST_SUFFIX).filter(|n| !n.is_empty())
}

/// The CA of sprite URLs and the TLS configurations it issues, one per sprite host.
pub struct UrlTls {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
    configs: Mutex<HashMap<String, Arc<rustls::ServerConfig>>>,
}

impl std::fmt::Debug for UrlTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlTls")
    }
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, "sprites-emulator sprite URLs");
    p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    p
}

impl UrlTls {
    /// A fresh CA (valid for 10 years from an hour ago).
    pub fn new() -> Result<UrlTls, String> {
        let key = KeyPair::generate().map_err(|e| format!("CA key: {e}"))?;
        let mut params = ca_params();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(3650);
        let cert = params
            .self_signed(&key)
            .map_err(|e| format!("CA certificate: {e}"))?;
        Ok(UrlTls {
            ca_pem: cert.pem(),
            issuer: Issuer::new(ca_params(), key),
            configs: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes the bundle sprites get as their system bundle (`dir/ca-bundle.crt`: the host's
    /// bundle and the CA); `None` when the host has no bundle to extend.
    pub fn write_bundle(&self, dir: &Path) -> Option<PathBuf> {
        let system = std::fs::read_to_string(SYSTEM_BUNDLE).ok()?;
        std::fs::create_dir_all(dir).ok()?;
        let path = dir.join("ca-bundle.crt");
        std::fs::write(&path, format!("{system}\n{}", self.ca_pem)).ok()?;
        Some(path)
    }

    /// The TLS configuration for `host`, issued on first use.
    pub fn config(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, String> {
        if let Some(c) = self.configs.lock().ok().and_then(|m| m.get(host).cloned()) {
            return Ok(c);
        }
        let mut params = CertificateParams::new(vec![host.to_owned()])
            .map_err(|e| format!("certificate for {host}: {e}"))?;
        params.distinguished_name.push(DnType::CommonName, host);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(365);
        let key = KeyPair::generate().map_err(|e| format!("key for {host}: {e}"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| format!("certificate for {host}: {e}"))?;
        let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| format!("key for {host}: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS for {host}: {e}"))?
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key_der)
            .map_err(|e| format!("TLS for {host}: {e}"))?;
        let cfg = Arc::new(cfg);
        if let Ok(mut m) = self.configs.lock() {
            m.insert(host.to_owned(), Arc::clone(&cfg));
        }
        Ok(cfg)
    }
}

/// Reads a request head (through `\r\n\r\n`); the head and whatever followed it.
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn answer<S: AsyncWrite + Unpin>(s: &mut S, status: &str, text: &str) {
    let msg = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = s.write_all(msg.as_bytes()).await;
    let _ = s.shutdown().await;
}

/// Whether the request head `head` may use the URL of a sprite whose `url_settings` are
/// `settings` (public, or the org's token as a bearer).
fn admitted(settings: &serde_json::Value, head: &str, token: &str) -> bool {
    if settings.get("auth").and_then(|a| a.as_str()) == Some("public") {
        return true;
    }
    head.split("\r\n").skip(1).any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("authorization")
                && v.trim().strip_prefix("Bearer ").map(str::trim) == Some(token)
        })
    })
}

/// The answer of an `error` fault matching the request head (`GET /path?query HTTP/1.1`): the
/// rule's path glob is matched against the full URL, `https://<name>-emul.sprites.app/path`,
/// so it cannot be mistaken for an API path.
fn injected(app: &App, name: &str, head: &[u8]) -> Option<(String, String)> {
    let head = String::from_utf8_lossy(head);
    let mut words = head.lines().next()?.split_whitespace();
    let (method, target) = (words.next()?, words.next()?);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let url = format!("{}{path}", url_of(name));
    let fault = app
        .faults
        .take(&crate::faults::FaultKind::Error, method, &url, query)
        .into_iter()
        .next()?;
    let status = axum::http::StatusCode::from_u16(fault.status.unwrap_or(500))
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let text = match fault.body {
        Some(serde_json::Value::String(s)) => s,
        Some(v) => v.to_string(),
        None => "injected fault\n".to_owned(),
    };
    Some((status.to_string(), text))
}

/// Serves one decrypted connection to the URL of sprite `name`: the URL's auth, an injected
/// fault if one matches, a wake, then a splice to the sprite's port 8080.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(app: Arc<App>, mut client: S, name: &str) {
    let Some((head, rest)) = read_head(&mut client).await else {
        return;
    };
    let Some(sprite) = app.sprite(name) else {
        answer(&mut client, "404 Not Found", "no such sprite\n").await;
        return;
    };
    let settings = sprite.record().url_settings;
    if !admitted(&settings, &String::from_utf8_lossy(&head), &app.cfg.token) {
        answer(
            &mut client,
            "401 Unauthorized",
            "this sprite's URL needs the organization's token (url_settings.auth = sprite)\n",
        )
        .await;
        return;
    }
    if let Some((status, text)) = injected(&app, name, &head) {
        answer(&mut client, &status, &text).await;
        return;
    }
    let guard = crate::lifecycle::ActivityGuard::new(Arc::clone(&sprite));
    if app.wake(&sprite).await.is_err() {
        answer(&mut client, "502 Bad Gateway", "the sprite did not wake\n").await;
        return;
    }
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, SPRITE_PORT));
    let dialed = match app.holder_ids(&sprite).await {
        Some((pid, helper)) => {
            tokio::task::spawn_blocking(move || crate::sandbox::connect_in_netns(pid, helper, addr))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|r| r)
        }
        None => Err(std::io::Error::other("the sprite's sandbox is not running")),
    };
    let upstream = dialed.and_then(|s| {
        s.set_nonblocking(true)?;
        tokio::net::TcpStream::from_std(s)
    });
    let mut upstream = match upstream {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("nothing answers on port {SPRITE_PORT} in sprite {name}: {e}\n");
            answer(&mut client, "502 Bad Gateway", &msg).await;
            return;
        }
    };
    if upstream.write_all(&head).await.is_err() || upstream.write_all(&rest).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    drop(guard);
}

/// A connection a sprite's egress proxy accepted for a sprite URL (`CONNECT` answered, TLS
/// not yet begun).
#[derive(Debug)]
pub struct UrlConn {
    /// The sprite the URL names.
    pub sprite: String,
    /// The URL's host.
    pub host: String,
    /// The connection.
    pub client: tokio::net::TcpStream,
}

/// Serves the connections sprites' egress proxies hand over, for the app's life.
pub async fn run(app: Arc<App>) {
    let rx = app.url_conns_rx.lock().ok().and_then(|mut g| g.take());
    let Some(mut rx) = rx else {
        return;
    };
    while let Some(c) = rx.recv().await {
        tokio::spawn(serve_tls(Arc::clone(&app), c));
    }
}

/// Ends TLS on a `CONNECT`ed connection to a sprite's URL and serves it.
async fn serve_tls(app: Arc<App>, conn: UrlConn) {
    let UrlConn {
        sprite: name,
        host,
        client,
    } = conn;
    let host = host.as_str();
    let name = name.as_str();
    let cfg = match app.url_tls.config(host) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("sprite URL TLS: {e}");
            return;
        }
    };
    let tls = match tokio_rustls::TlsAcceptor::from(cfg).accept(client).await {
        Ok(s) => s,
        Err(e) => {
            tracing::info!("a TLS handshake for {host} failed: {e}");
            return;
        }
    };
    serve(app, tls, name).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_auth() {
        assert_eq!(url_of("cache-1"), "https://cache-1-emul.sprites.app");
        assert_eq!(sprite_of("cache-1-emul.sprites.app"), Some("cache-1"));
        assert_eq!(sprite_of("-emul.sprites.app"), None);
        assert_eq!(sprite_of("example.com"), None);
        let public = serde_json::json!({"auth": "public"});
        let private = serde_json::json!({"auth": "sprite"});
        assert!(admitted(&public, "GET / HTTP/1.1\r\n", "t"));
        assert!(!admitted(&private, "GET / HTTP/1.1\r\nHost: x\r\n", "t"));
        assert!(admitted(
            &private,
            "GET / HTTP/1.1\r\nauthorization: Bearer t\r\n",
            "t"
        ));
        assert!(!admitted(
            &private,
            "GET / HTTP/1.1\r\nAuthorization: Bearer u\r\n",
            "t"
        ));
    }

    #[test]
    fn the_ca_issues_per_host_configs() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = UrlTls::new().unwrap();
        assert!(tls.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let a = tls.config("a-emul.sprites.app").unwrap();
        let again = tls.config("a-emul.sprites.app").unwrap();
        assert!(Arc::ptr_eq(&a, &again));
    }
}
