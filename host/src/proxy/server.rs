//! The proxy server: HTTP/1.1 with CONNECT, TLS interception, injection, scrubbing, audit.

use super::ProxyError;
use super::agent_reports::{self, AGENT_REPORT_HOST, AgentReport};
use super::audit::{AuditEntry, AuditLog};
use super::ca::CertificateAuthority;
use super::rules::{Policy, Rule};
use super::sandbox::{SandboxOptions, SandboxSetup};
use super::scrub::{ScrubBody, Scrubber};
use super::sessions::{PLACEHOLDER_PREFIX, ProxyCredential, Sessions};
use super::stream::{Coalesce, SOCKET_READ_BUFFER};
use super::tripwire::ScanBody;
use crate::home::Home;
use crate::secrets::{Secret, SecretResolver};
use crate::session::SessionId;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Either, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BoxError>;
/// Decides about a placeholder token found in a request body (`Some(reason)` refuses it).
type Judge = Box<dyn FnMut(&[u8]) -> Option<String> + Send>;
/// A request body on its way upstream: as received, or scanned for placeholders.
type UpBody = Either<Incoming, ScanBody<Incoming, Judge>>;

/// How long a TLS handshake (either side) or an upstream connect may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the request head of a new proxy connection may take.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a resolved secret is reused before it is resolved again.
const SECRET_TTL: Duration = Duration::from_secs(600);
/// The most client connections served at once.
const MAX_CONNECTIONS: usize = 4096;
/// How much of a scanned request body is read (and scanned) before the request goes
/// upstream, so a small body carrying a misplaced placeholder is refused before the upstream
/// sees anything. Larger bodies stream on, scanned, and are cut off at a misplaced placeholder.
const BODY_PREFETCH: usize = 256 * 1024;

/// Hop-by-hop headers, never forwarded in either direction.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

struct SecretCache {
    values: HashMap<String, (Instant, Secret)>,
    scrubber: Arc<Scrubber>,
}

struct Inner {
    placeholder_finder: memchr::memmem::Finder<'static>,
    ca: CertificateAuthority,
    policy: Policy,
    sessions: Sessions,
    audit: AuditLog,
    resolver: SecretResolver,
    secrets: Mutex<SecretCache>,
    default_tls: Arc<rustls::ClientConfig>,
    override_tls: HashMap<String, Arc<rustls::ClientConfig>>,
    /// Where agent reports go (see `agent_reports`), once the daemon listens.
    reports: Mutex<Option<tokio::sync::mpsc::Sender<AgentReport>>>,
}

/// The running credential proxy. Dropping it stops accepting connections.
pub struct CredentialProxy {
    inner: Arc<Inner>,
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for CredentialProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialProxy")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for CredentialProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn client_tls(
    extra: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, ProxyError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for c in extra {
        roots
            .add(c.clone())
            .map_err(|e| ProxyError::Tls(format!("an upstream ca_file certificate: {e}")))?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(super::stream::crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProxyError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn body_text(status: StatusCode, msg: &str) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(format!("clauderon proxy: {msg}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The length of the placeholder token at the start of `bytes`.
fn placeholder_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'-')
        .count()
}

/// Why a host is refused, with the line that would admit it.
fn outside_policy(host: &str) -> String {
    format!(
        "{host} is outside the proxy policy; to allow it, add `allow = [\"{host}\"]` to \
         proxy.toml in the clauderon home (or add \"{host}\" to its existing `allow` list) and \
         restart the daemon"
    )
}

fn proxy_auth_required() -> Response<ProxyBody> {
    let mut r = body_text(
        StatusCode::PROXY_AUTHENTICATION_REQUIRED,
        "missing, wrong or revoked session proxy credential (the session's HTTPS_PROXY carries it)",
    );
    r.headers_mut().insert(
        header::PROXY_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"clauderon\""),
    );
    r
}

fn strip_hop_by_hop(h: &mut HeaderMap) {
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
}

fn host_of_header(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let auth: http::uri::Authority = s.parse().ok()?;
    Some(auth.host().trim_matches(['[', ']']).to_ascii_lowercase())
}

/// What the audit log needs to know about a request besides its outcome.
struct Seen<'a> {
    session: SessionId,
    host: &'a str,
    method: &'a str,
    path: &'a str,
    started: Instant,
}

/// Per-tunnel state: one upstream connection, reused across the tunnel's requests.
struct Tunnel {
    session: SessionId,
    host: String,
    port: u16,
    upstream: tokio::sync::Mutex<Option<SendRequest<UpBody>>>,
}

impl Inner {
    fn record(&self, r: &Seen<'_>, status: StatusCode, injected: bool, violation: Option<String>) {
        if let Some(v) = &violation {
            tracing::warn!(session = %r.session, host = r.host, method = r.method, path = r.path, violation = %v, "credential proxy blocked a request");
        }
        self.audit.record(
            r.session,
            AuditEntry {
                at: now_rfc3339(),
                host: r.host.to_string(),
                method: r.method.to_string(),
                path: r.path.to_string(),
                status: status.as_u16(),
                duration_ms: r.started.elapsed().as_secs_f64() * 1000.0,
                injected,
                violation,
            },
        );
    }

    /// The secret `name`, from the cache or the resolver. Failures are logged by name only.
    async fn secret(&self, name: &str) -> Option<Secret> {
        if let Ok(c) = self.secrets.lock()
            && let Some((at, s)) = c.values.get(name)
            && at.elapsed() < SECRET_TTL
        {
            return Some(s.clone());
        }
        let resolved = match self.resolver.resolve(name).await {
            Ok(Some(r)) => r.secret,
            Ok(None) => {
                tracing::debug!(
                    secret = name,
                    "no value for the rule's secret; nothing injected"
                );
                return None;
            }
            Err(e) => {
                tracing::warn!(secret = name, error = %e, "cannot resolve the rule's secret");
                return None;
            }
        };
        if let Ok(mut c) = self.secrets.lock() {
            c.values
                .insert(name.to_string(), (Instant::now(), resolved.clone()));
            c.scrubber = Arc::new(Scrubber::new(c.values.values().map(|(_, s)| s.expose())));
        }
        Some(resolved)
    }

    fn scrubber(&self) -> Arc<Scrubber> {
        self.secrets
            .lock()
            .map(|c| c.scrubber.clone())
            .unwrap_or_else(|_| Arc::new(Scrubber::new([])))
    }

    /// The rule whose credential a request to `host` gets, and that credential (`None` when
    /// no source has it): of the host's rules, the one whose placeholder the request carries
    /// (the agent chose it), else the first whose secret has a value, else the first.
    async fn credential_for<'a>(
        &'a self,
        session: SessionId,
        host: &'a str,
        headers: &HeaderMap,
    ) -> Option<(&'a Rule, Option<Secret>)> {
        let first = self.policy.rule_for(host)?;
        let presented = self.presented_secret(session, headers);
        if let Some(r) = presented.and_then(|s| self.policy.rules_for(host).find(|r| r.secret == s))
        {
            return Some((r, self.secret(&r.secret).await));
        }
        for r in self.policy.rules_for(host) {
            if let Some(v) = self.secret(&r.secret).await {
                return Some((r, Some(v)));
            }
        }
        Some((first, None))
    }

    /// The secret whose placeholder (of this session) a header carries, if any.
    fn presented_secret(&self, session: SessionId, headers: &HeaderMap) -> Option<String> {
        headers.values().find_map(|v| {
            let bytes = v.as_bytes();
            let at = self.placeholder_finder.find(bytes)?;
            let len = placeholder_len(&bytes[at..]);
            let token = std::str::from_utf8(&bytes[at..at + len]).ok()?;
            match self.sessions.owner_of(token) {
                Some((owner, secret)) if owner == session => Some(secret),
                _ => None,
            }
        })
    }

    /// Why `token` (a `clauderon-placeholder-…` token) must not go to `host` in a request of
    /// `session`: another session's, an unknown one, or one whose secret's rule does not match
    /// `host`. `None` when it is this session's placeholder for `host`'s rule.
    fn judge_token(&self, session: SessionId, host: &str, token: &[u8]) -> Option<String> {
        let token = std::str::from_utf8(token).unwrap_or_default();
        match self.sessions.owner_of(token) {
            Some((owner, _)) if owner != session => Some(format!(
                "a placeholder of another session was sent to {host}"
            )),
            Some((_, secret)) if !self.policy.secret_serves(&secret, host) => Some(format!(
                "the placeholder for `{secret}` was sent to {host}, which is not a host of its rule"
            )),
            Some(_) => None,
            None => Some(format!(
                "an unknown or revoked clauderon placeholder was sent to {host}"
            )),
        }
    }

    /// Why a request must be blocked because its target or a header carries a placeholder
    /// that does not belong on `host` (see [`Inner::judge_token`]), if it does.
    fn tripwire<B>(&self, session: SessionId, host: &str, req: &Request<B>) -> Option<String> {
        let finder = &self.placeholder_finder;
        let check = |bytes: &[u8]| -> Option<String> {
            for at in finder.find_iter(bytes) {
                let len = placeholder_len(&bytes[at..]);
                if let Some(why) = self.judge_token(session, host, &bytes[at..at + len]) {
                    return Some(why);
                }
            }
            None
        };
        if let Some(pq) = req.uri().path_and_query()
            && let Some(v) = check(pq.as_str().as_bytes())
        {
            return Some(v);
        }
        for v in req.headers().values() {
            let bytes = v.as_bytes();
            if let Some(why) = check(bytes) {
                return Some(why);
            }
            // Basic credentials hide the placeholder in base64.
            if let Some(b64) = bytes
                .strip_prefix(b"Basic ")
                .or_else(|| bytes.strip_prefix(b"basic "))
                && let Ok(decoded) =
                    base64::engine::general_purpose::STANDARD.decode(b64.trim_ascii())
                && let Some(why) = check(&decoded)
            {
                return Some(why);
            }
        }
        None
    }

    async fn connect_tls(&self, host: &str, port: u16) -> Result<SendRequest<UpBody>, String> {
        let (addr, cfg) = match self.policy.upstreams.get(host) {
            Some(o) => (
                o.address.clone(),
                self.override_tls
                    .get(host)
                    .cloned()
                    .unwrap_or_else(|| self.default_tls.clone()),
            ),
            None => (format!("{host}:{port}"), self.default_tls.clone()),
        };
        let tcp = timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(&addr))
            .await
            .map_err(|_| format!("connecting to {host} timed out"))?
            .map_err(|e| format!("cannot connect to {host}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| format!("{host} is not a valid TLS server name"))?;
        let tcp = tokio::io::BufReader::with_capacity(SOCKET_READ_BUFFER, tcp);
        let tls = timeout(
            HANDSHAKE_TIMEOUT,
            tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
        )
        .await
        .map_err(|_| format!("TLS to {host} timed out; no credential was sent"))?
        .map_err(|e| format!("TLS to {host} failed, so no credential was sent: {e}"))?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(Coalesce::new(tls)))
                .await
                .map_err(|e| format!("HTTP to {host} failed: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

impl Tunnel {
    async fn send(
        &self,
        inner: &Inner,
        req: Request<UpBody>,
    ) -> Result<Response<Incoming>, String> {
        let mut guard = self.upstream.lock().await;
        let usable = match guard.as_mut() {
            Some(s) if !s.is_closed() => s.ready().await.is_ok(),
            _ => false,
        };
        if !usable {
            *guard = Some(inner.connect_tls(&self.host, self.port).await?);
        }
        let sender = guard
            .as_mut()
            .ok_or_else(|| "no upstream connection".to_string())?;
        sender
            .send_request(req)
            .await
            .map_err(|e| format!("upstream {} failed: {e}", self.host))
    }
}

fn finish_response(
    inner: &Inner,
    resp: Response<Incoming>,
    injected: bool,
) -> Result<Response<ProxyBody>, String> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let scrubber = inner.scrubber();
    if !scrubber.is_empty() {
        for v in parts.headers.values_mut() {
            if scrubber.contains(v.as_bytes()) {
                let mut bytes = v.as_bytes().to_vec();
                scrubber.scrub(&mut bytes);
                *v = HeaderValue::from_bytes(&bytes)
                    .unwrap_or_else(|_| HeaderValue::from_static("[redacted]"));
            }
        }
    }
    if injected
        && !scrubber.is_empty()
        && parts
            .headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|e| !e.as_bytes().eq_ignore_ascii_case(b"identity"))
    {
        // The body could echo the credential in a form the scrubber cannot see.
        return Err(
            "the upstream compressed a response to a request that carried a credential; \
             clauderon cannot scrub it, so it is withheld"
                .into(),
        );
    }
    let body = ScrubBody::new(body, scrubber)
        .map_err(|e| Box::new(e) as BoxError)
        .boxed();
    Ok(Response::from_parts(parts, body))
}

/// A request body ready to go upstream. Bodies to a host without a credential rule are
/// scanned for placeholders (see [`BODY_PREFETCH`]); bodies to rule hosts are not, since a
/// conversation sent to an LLM API may quote the agent's environment, and those hosts are
/// already trusted with the real credential. The judge records a refusal in the audit log
/// itself, so a body cut off after the response head is recorded too.
async fn prepare_body(
    inner: &Arc<Inner>,
    seen: &Seen<'_>,
    req: Request<Incoming>,
) -> Result<(Request<UpBody>, Option<Arc<AtomicBool>>), Response<ProxyBody>> {
    if inner.policy.rule_for(seen.host).is_some() || http_body::Body::is_end_stream(req.body()) {
        return Ok((req.map(Either::Left), None));
    }
    let tripped = Arc::new(AtomicBool::new(false));
    let judge: Judge = {
        let inner = inner.clone();
        let tripped = tripped.clone();
        let (session, started) = (seen.session, seen.started);
        let (host, method, path) = (
            seen.host.to_string(),
            seen.method.to_string(),
            seen.path.to_string(),
        );
        Box::new(move |token: &[u8]| {
            let why = inner.judge_token(session, &host, token)?;
            let why = format!("{why} in the request body");
            tripped.store(true, Ordering::SeqCst);
            let seen = Seen {
                session,
                host: &host,
                method: &method,
                path: &path,
                started,
            };
            inner.record(&seen, StatusCode::FORBIDDEN, false, Some(why.clone()));
            Some(why)
        })
    };
    let (parts, body) = req.into_parts();
    let mut body = ScanBody::new(body, judge);
    match body.prefetch(BODY_PREFETCH).await {
        Ok(None) => Ok((
            Request::from_parts(parts, Either::Right(body)),
            Some(tripped),
        )),
        Ok(Some(why)) => Err(body_text(StatusCode::FORBIDDEN, &why)),
        Err(e) => Err(body_text(
            StatusCode::BAD_REQUEST,
            &format!("reading the request body failed: {e}"),
        )),
    }
}

/// Whether a scanned body was cut off at a misplaced placeholder (already recorded).
fn was_tripped(t: &Option<Arc<AtomicBool>>) -> bool {
    t.as_ref().is_some_and(|t| t.load(Ordering::SeqCst))
}

/// The answer for a body cut off at a misplaced placeholder.
fn tripped_response(host: &str) -> Response<ProxyBody> {
    body_text(
        StatusCode::FORBIDDEN,
        &format!(
            "the request body carried a clauderon placeholder that does not belong on {host}; \
             the request was cut off before it"
        ),
    )
}

async fn intercepted(
    inner: Arc<Inner>,
    t: Arc<Tunnel>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let host = t.host.as_str();
    let seen = Seen {
        session: t.session,
        host,
        method: &method,
        path: &path,
        started,
    };
    let rec = |status: StatusCode, injected: bool, violation: Option<String>| {
        inner.record(&seen, status, injected, violation);
    };
    if !inner.sessions.is_live(t.session) {
        rec(
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            false,
            Some("the session's proxy credential was revoked".into()),
        );
        return Ok(proxy_auth_required());
    }
    if let Some(h) = req.headers().get(header::HOST)
        && host_of_header(h).as_deref() != Some(host)
    {
        let why = format!("the Host header does not name the tunnel's host {host}");
        rec(StatusCode::MISDIRECTED_REQUEST, false, Some(why.clone()));
        return Ok(body_text(StatusCode::MISDIRECTED_REQUEST, &why));
    }
    if let Some(why) = inner.tripwire(t.session, host, &req) {
        rec(StatusCode::FORBIDDEN, false, Some(why.clone()));
        return Ok(body_text(StatusCode::FORBIDDEN, &why));
    }
    let (mut req, tripped) = match prepare_body(&inner, &seen, req).await {
        Ok(r) => r,
        Err(refused) => return Ok(refused),
    };
    strip_hop_by_hop(req.headers_mut());
    let mut injected = false;
    if let Some((rule, secret)) = inner.credential_for(t.session, host, req.headers()).await {
        for r in inner.policy.rules_for(host) {
            for h in r.strip_headers() {
                req.headers_mut().remove(h);
            }
        }
        if let Some(secret) = secret {
            let (name, value) = rule.header_for(secret.expose());
            match HeaderValue::from_str(&value) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    req.headers_mut().insert(name, v);
                    // An echoed credential must come back in a form the scrubber can see.
                    req.headers_mut().insert(
                        header::ACCEPT_ENCODING,
                        HeaderValue::from_static("identity"),
                    );
                    injected = true;
                }
                Err(_) => tracing::warn!(
                    secret = %rule.secret,
                    "the secret is not a valid header value (control characters?); nothing injected"
                ),
            }
        }
    }
    let resp = match t.send(&inner, req).await {
        _ if was_tripped(&tripped) => return Ok(tripped_response(host)),
        Ok(r) => r,
        Err(e) => {
            rec(StatusCode::BAD_GATEWAY, false, None);
            return Ok(body_text(StatusCode::BAD_GATEWAY, &e));
        }
    };
    let status = resp.status();
    match finish_response(&inner, resp, injected) {
        Ok(r) => {
            rec(status, injected, None);
            Ok(r)
        }
        Err(e) => {
            rec(StatusCode::BAD_GATEWAY, injected, Some(e.clone()));
            Ok(body_text(StatusCode::BAD_GATEWAY, &e))
        }
    }
}

async fn tunnel(
    inner: Arc<Inner>,
    session: SessionId,
    host: String,
    port: u16,
    upgraded: hyper::upgrade::Upgraded,
) {
    let started = Instant::now();
    let acceptor = tokio_rustls::LazyConfigAcceptor::new(
        rustls::server::Acceptor::default(),
        tokio::io::BufReader::with_capacity(SOCKET_READ_BUFFER, TokioIo::new(upgraded)),
    );
    // A refused tunnel is recorded as a violation of the CONNECT; nothing is relayed.
    let refuse = |why: &str| {
        let seen = Seen {
            session,
            host: &host,
            method: "CONNECT",
            path: "",
            started,
        };
        inner.record(&seen, StatusCode::FORBIDDEN, false, Some(why.to_owned()));
    };
    let start = match timeout(HANDSHAKE_TIMEOUT, acceptor).await {
        Ok(Ok(s)) => s,
        _ => {
            refuse("the tunnel did not start with TLS; other protocols are not tunnelled");
            return;
        }
    };
    if let Some(sni) = start.client_hello().server_name()
        && !sni.eq_ignore_ascii_case(&host)
    {
        refuse("the TLS server name differs from the CONNECT host");
        return;
    }
    let cfg = match inner.ca.server_config(&host) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(host = %host, error = %e, "cannot make a leaf certificate");
            return;
        }
    };
    let tls = match timeout(HANDSHAKE_TIMEOUT, start.into_stream(cfg)).await {
        Ok(Ok(t)) => t,
        _ => return,
    };
    let t = Arc::new(Tunnel {
        session,
        host,
        port,
        upstream: tokio::sync::Mutex::new(None),
    });
    let svc = service_fn(move |req| intercepted(inner.clone(), t.clone(), req));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(Coalesce::new(tls)), svc)
        .await;
}

async fn plain_http(
    inner: Arc<Inner>,
    session: SessionId,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let Some(auth) = req.uri().authority().cloned() else {
        return body_text(
            StatusCode::BAD_REQUEST,
            "an absolute http:// URL needs a host",
        );
    };
    let host = auth.host().trim_matches(['[', ']']).to_ascii_lowercase();
    let port = auth.port_u16().unwrap_or(80);
    if host == AGENT_REPORT_HOST {
        let sink = inner.reports.lock().ok().and_then(|r| r.clone());
        return agent_reports::receive(session, req, sink).await.map(|b| {
            Full::new(Bytes::from(b))
                .map_err(|never| match never {})
                .boxed()
        });
    }
    let seen = Seen {
        session,
        host: &host,
        method: &method,
        path: &path,
        started,
    };
    let rec = |status: StatusCode, violation: Option<String>| {
        inner.record(&seen, status, false, violation);
    };
    if !inner.policy.allows(&host) {
        let why = outside_policy(&host);
        rec(StatusCode::FORBIDDEN, Some(why.clone()));
        return body_text(StatusCode::FORBIDDEN, &why);
    }
    if let Some(why) = inner.tripwire(session, &host, &req) {
        rec(StatusCode::FORBIDDEN, Some(why.clone()));
        return body_text(StatusCode::FORBIDDEN, &why);
    }
    let (mut req, tripped) = match prepare_body(&inner, &seen, req).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    // Never inject on cleartext: the request goes as the sandbox sent it, minus hop-by-hop.
    strip_hop_by_hop(req.headers_mut());
    let pq = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    match pq.parse() {
        Ok(u) => *req.uri_mut() = u,
        Err(_) => return body_text(StatusCode::BAD_REQUEST, "bad request target"),
    }
    if !req.headers().contains_key(header::HOST)
        && let Ok(v) = HeaderValue::from_str(auth.as_str())
    {
        req.headers_mut().insert(header::HOST, v);
    }
    let result = async {
        let tcp = timeout(HANDSHAKE_TIMEOUT, TcpStream::connect((host.as_str(), port)))
            .await
            .map_err(|_| format!("connecting to {host} timed out"))?
            .map_err(|e| format!("cannot connect to {host}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("HTTP to {host} failed: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        sender
            .send_request(req)
            .await
            .map_err(|e| format!("upstream {host} failed: {e}"))
    }
    .await;
    if was_tripped(&tripped) {
        return tripped_response(&host);
    }
    match result.and_then(|r| {
        let status = r.status();
        finish_response(&inner, r, false).map(|r| (status, r))
    }) {
        Ok((status, r)) => {
            rec(status, None);
            r
        }
        Err(e) => {
            rec(StatusCode::BAD_GATEWAY, None);
            body_text(StatusCode::BAD_GATEWAY, &e)
        }
    }
}

async fn outer(
    inner: Arc<Inner>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let Some(session) = inner
        .sessions
        .authenticate(req.headers().get(header::PROXY_AUTHORIZATION))
    else {
        return Ok(proxy_auth_required());
    };
    if req.method() != Method::CONNECT {
        if req.uri().scheme_str() == Some("http") {
            return Ok(plain_http(inner, session, req).await);
        }
        return Ok(body_text(
            StatusCode::BAD_REQUEST,
            "this is an HTTP proxy: send CONNECT host:443 for HTTPS, or an absolute http:// URL",
        ));
    }
    let Some(auth) = req.uri().authority().cloned() else {
        return Ok(body_text(
            StatusCode::BAD_REQUEST,
            "CONNECT needs host:port",
        ));
    };
    let host = auth.host().trim_matches(['[', ']']).to_ascii_lowercase();
    let port = auth.port_u16().unwrap_or(443);
    if !inner.policy.allows(&host) || port != 443 {
        let why = if port != 443 {
            format!("CONNECT to {host}:{port} refused: only port 443 is carried")
        } else {
            format!("CONNECT to {host} refused: {}", outside_policy(&host))
        };
        inner.record(
            &Seen {
                session,
                host: &host,
                method: "CONNECT",
                path: "",
                started,
            },
            StatusCode::FORBIDDEN,
            false,
            Some(why.clone()),
        );
        return Ok(body_text(StatusCode::FORBIDDEN, &why));
    }
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(up) => tunnel(inner, session, host, port, up).await,
            Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
        }
    });
    Ok(Response::new(
        Empty::new().map_err(|never| match never {}).boxed(),
    ))
}

impl CredentialProxy {
    /// Starts the proxy on `listen` (use `127.0.0.1:0` for any free port) with the
    /// installation's CA from `home`, `policy`'s rules and secrets from `resolver`.
    ///
    /// `listen` must be a loopback address: the proxy turns a session's credential into real
    /// keys, so it is refused anywhere else (a [`ProxyError::Bind`] saying so) unless started
    /// with [`CredentialProxy::start_exposed`].
    pub async fn start(
        home: &Home,
        policy: Policy,
        resolver: SecretResolver,
        listen: SocketAddr,
    ) -> Result<Self, ProxyError> {
        if !listen.ip().to_canonical().is_loopback() {
            return Err(ProxyError::Bind {
                addr: listen,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "refusing a non-loopback address: anyone who can reach the proxy could try \
                     session credentials against real keys. Listen on 127.0.0.1 (or ::1), or \
                     force it with CredentialProxy::start_exposed on a network you trust",
                ),
            });
        }
        Self::start_exposed(home, policy, resolver, listen).await
    }

    /// Like [`CredentialProxy::start`], but also on a non-loopback `listen` address. Only for
    /// a network where every host that can reach the address is trusted.
    pub async fn start_exposed(
        home: &Home,
        policy: Policy,
        resolver: SecretResolver,
        listen: SocketAddr,
    ) -> Result<Self, ProxyError> {
        let ca = CertificateAuthority::load_or_create(home)?;
        let audit = AuditLog::start(home)?;
        let mut override_tls = HashMap::new();
        for (host, o) in &policy.upstreams {
            override_tls.insert(host.clone(), client_tls(&o.extra_roots)?);
        }
        let inner = Arc::new(Inner {
            placeholder_finder: memchr::memmem::Finder::new(PLACEHOLDER_PREFIX.as_bytes())
                .into_owned(),
            ca,
            policy,
            sessions: Sessions::default(),
            audit,
            resolver,
            secrets: Mutex::new(SecretCache {
                values: HashMap::new(),
                scrubber: Arc::new(Scrubber::new([])),
            }),
            default_tls: client_tls(&[])?,
            override_tls,
            reports: Mutex::new(None),
        });
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ProxyError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ProxyError::Bind {
            addr: listen,
            source,
        })?;
        let accept_inner = inner.clone();
        let accept = tokio::spawn(async move {
            let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
            loop {
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    return;
                };
                let (stream, _) = match listener.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "credential proxy accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let inner = accept_inner.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| outer(inner.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                    drop(permit);
                });
            }
        });
        Ok(Self {
            inner,
            addr,
            accept,
        })
    }

    /// Where the proxy listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The installation's CA.
    pub fn ca(&self) -> &CertificateAuthority {
        &self.inner.ca
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// Registers a session (again): a fresh proxy credential and fresh placeholders. The
    /// daemon calls this when it creates or re-attaches a session.
    pub fn register_session(&self, id: SessionId) -> ProxyCredential {
        self.inner.sessions.register(id, &self.inner.policy)
    }

    /// Registers a session with a credential and placeholders it was given earlier (see
    /// [`super::persist`]): after a daemon restart the running agent's environment still works.
    pub fn restore_session(
        &self,
        id: SessionId,
        password: crate::secrets::Secret,
        placeholders: &std::collections::BTreeMap<String, String>,
    ) -> ProxyCredential {
        self.inner
            .sessions
            .restore(id, password, placeholders, &self.inner.policy)
    }

    /// Revokes a session's credential: its next request, on any connection, gets 407. The
    /// daemon calls this when it deletes the session. Returns whether it was registered.
    pub fn revoke_session(&self, id: SessionId) -> bool {
        self.inner.sessions.revoke(id)
    }

    /// The rule secrets that have a value now (resolved like an injection would, cached).
    pub async fn available_secrets(&self) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        for name in self.inner.policy.secret_names() {
            if self.inner.secret(&name).await.is_some() {
                out.insert(name);
            }
        }
        out
    }

    /// Where agent reports (see [`AGENT_REPORT_HOST`]) go from now on; replaces an earlier
    /// receiver. Reports arriving while there is none are answered 503.
    pub fn agent_reports(&self) -> tokio::sync::mpsc::Receiver<AgentReport> {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        if let Ok(mut r) = self.inner.reports.lock() {
            *r = Some(tx);
        }
        rx
    }

    /// `id`'s placeholders (secret name → placeholder).
    pub fn placeholders(
        &self,
        id: SessionId,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        self.inner.sessions.placeholders(id)
    }

    /// What the sandbox of session `id` needs: its environment (placeholders, proxy
    /// variables with the session's credential, trust-bundle paths) and the bundle itself.
    pub fn sandbox_env(
        &self,
        id: SessionId,
        opts: &SandboxOptions,
    ) -> Result<SandboxSetup, ProxyError> {
        let password = self
            .inner
            .sessions
            .password(id)
            .ok_or_else(|| ProxyError::UnknownSession(id.to_string()))?;
        let placeholders = self.placeholders(id).unwrap_or_default();
        let credential = ProxyCredential {
            username: id.to_string(),
            password,
        };
        Ok(super::sandbox::build(
            &self.inner.policy,
            &placeholders,
            &credential,
            &self.inner.ca,
            opts,
        ))
    }

    /// Stops accepting connections (the daemon's clean stop; dropping does the same).
    pub fn stop(&self) {
        self.accept.abort();
    }

    /// Waits until every audit entry recorded so far is on disk.
    pub async fn flush_audit(&self) {
        self.inner.audit.flush().await;
    }
}
