//! The CLI's client of the daemon's REST API (DESIGN §9; the types are [`crate::api`]): finding
//! the daemon (`daemon.json`, else `[server] listen`), starting it in the background when nothing
//! answers, requests, the SSE event stream, and the API's `{"error":{...}}` answers as clear
//! errors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::Context;
use super::daemon_proc;
use crate::api::{ApiEvent, DaemonInfo, EventPage, Health, files};

/// How long the CLI waits for a daemon it started to answer `GET /api/health`.
pub const AUTOSTART_WAIT: Duration = Duration::from_secs(10);

/// Errors talking to the daemon. Messages say what failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The daemon answered with an API error.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The API's error code (`not_found`, `conflict`, ...).
        code: String,
        /// The API's message.
        message: String,
        /// The request field a 400 is about (`options.cpu_limit`), when the answer names one.
        field: Option<String>,
    },
    /// The daemon refused the token.
    #[error(
        "the daemon at {addr} refused the API token in {file}: {message}; if the daemon was \
         started with another CLAUDERON_HOME, stop it (`clauderon daemon stop`) and try again"
    )]
    Unauthorized {
        /// The daemon's address.
        addr: SocketAddr,
        /// The token file.
        file: String,
        /// The daemon's message.
        message: String,
    },
    /// No daemon answers and autostart was not allowed or failed.
    #[error("{0}")]
    NotRunning(String),
    /// The connection failed mid-request.
    #[error("cannot reach the daemon at {addr}: {reason}")]
    Transport {
        /// The daemon's address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The daemon sent something this CLI does not understand.
    #[error("unexpected answer from the daemon ({0}); is the daemon the same version as this CLI?")]
    Protocol(String),
}

impl ApiError {
    /// The HTTP status of an API error, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The request field an API error names (`repo`, `options.cpu_limit`), if it names one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ApiError::Api { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// The API's error code (`name_taken`, `not_found`, ...), if this is an API error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A connected client of one daemon.
#[derive(Debug, Clone)]
pub struct ApiClient {
    addr: SocketAddr,
    token: Arc<str>,
    token_file: String,
    http: reqwest::Client,
}

/// Whether [`ApiClient::connect`] may start a daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Autostart {
    /// Start `clauderon daemon` in the background when none answers.
    Yes,
    /// Only connect to a running daemon.
    No,
}

fn http_client() -> Result<reqwest::Client, ApiError> {
    // The API is plain HTTP on loopback; reqwest still wants a TLS setup, and the workspace
    // builds rustls without a default provider, so hand it ring with no trusted roots.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ApiError::Protocol(format!("TLS setup: {e}")))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| ApiError::Protocol(format!("HTTP client setup: {e}")))
}

/// Reads `daemon.json` if it exists and parses.
pub fn read_daemon_info(ctx: &Context) -> Option<DaemonInfo> {
    files::read_info(ctx.home()).ok().flatten()
}

impl ApiClient {
    /// Connects to the running daemon, or (with [`Autostart::Yes`]) starts one in the
    /// background and waits up to [`AUTOSTART_WAIT`] for it to answer.
    pub async fn connect(ctx: &Context, autostart: Autostart) -> anyhow::Result<ApiClient> {
        let http = http_client()?;
        if let Some(c) = Self::probe(ctx, &http).await? {
            return Ok(c);
        }
        if autostart == Autostart::No {
            return Err(ApiError::NotRunning(
                "no clauderon daemon is running; start one with `clauderon daemon start`".into(),
            )
            .into());
        }
        // One CLI at a time starts the daemon; the others wait on the lock and then find it.
        let _lock = daemon_proc::StartLock::acquire(ctx.home()).await?;
        if let Some(c) = Self::probe(ctx, &http).await? {
            return Ok(c);
        }
        let mut child = daemon_proc::spawn_background(ctx)?;
        let deadline = tokio::time::Instant::now() + AUTOSTART_WAIT;
        loop {
            if let Some(c) = Self::probe(ctx, &http).await? {
                return Ok(c);
            }
            if let Some(status) = child.try_wait().ok().flatten() {
                return Err(ApiError::NotRunning(format!(
                    "the daemon started in the background exited ({status}) before answering; \
                     see {}{}",
                    daemon_proc::log_file(ctx.home()).display(),
                    daemon_proc::log_tail(ctx.home())
                ))
                .into());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ApiError::NotRunning(format!(
                    "the daemon started in the background (pid {}) did not answer within {}s; \
                     see {}{}",
                    child.id(),
                    AUTOSTART_WAIT.as_secs(),
                    daemon_proc::log_file(ctx.home()).display(),
                    daemon_proc::log_tail(ctx.home())
                ))
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A client of the daemon that answers at `daemon.json`'s address (else `[server]
    /// listen`), or `None` when nothing answers there.
    async fn probe(ctx: &Context, http: &reqwest::Client) -> anyhow::Result<Option<ApiClient>> {
        let addr = match read_daemon_info(ctx) {
            Some(info) => info.addr,
            None => {
                let listen = ctx.config()?.server.listen;
                if listen.port() == 0 {
                    return Ok(None);
                }
                listen
            }
        };
        let Some(token) = files::read_token(ctx.home())? else {
            return Ok(None);
        };
        let client = ApiClient {
            addr,
            token: token.into(),
            token_file: ctx.home().api_token_file().display().to_string(),
            http: http.clone(),
        };
        match client.health().await {
            Ok(_) => Ok(Some(client)),
            Err(ApiError::Transport { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The daemon's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bearer token (for the attach WebSocket).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `http://addr` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET /api/health`, bounded to 2 s.
    pub async fn health(&self) -> Result<Health, ApiError> {
        let req = self
            .http
            .get(self.url("/api/health"))
            .timeout(Duration::from_secs(2));
        self.send(req).await
    }

    /// `GET path` decoded as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.send(self.http.get(self.url(path))).await
    }

    /// `POST path` with a JSON body, decoded as `T`.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, ApiError> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    /// `DELETE path` decoded as `T`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.send(self.http.delete(self.url(path))).await
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, ApiError> {
        let resp = self.execute(req).await?;
        let bytes = resp.bytes().await.map_err(|e| self.transport(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Protocol(e.to_string()))
    }

    /// Sends a request and turns a non-2xx answer into an [`ApiError`].
    async fn execute(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ApiError> {
        let resp = req
            .bearer_auth(&*self.token)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        let parsed: Option<serde_json::Value> = serde_json::from_str(&body).ok();
        let err = parsed.as_ref().and_then(|v| v.get("error"));
        let message = err
            .and_then(|e| e.get("message").or(Some(e)))
            .and_then(|m| m.as_str())
            .map_or_else(
                || {
                    let b = body.trim();
                    if b.is_empty() {
                        format!("the daemon answered {status}")
                    } else {
                        format!(
                            "the daemon answered {status}: {}",
                            b.chars().take(300).collect::<String>()
                        )
                    }
                },
                str::to_owned,
            );
        let code = err
            .and_then(|e| e.get("code"))
            .and_then(|c| c.as_str())
            .unwrap_or_default()
            .to_owned();
        let field = err
            .and_then(|e| e.get("field"))
            .and_then(|f| f.as_str())
            .map(str::to_owned);
        if status.as_u16() == 401 {
            return Err(ApiError::Unauthorized {
                addr: self.addr,
                file: self.token_file.clone(),
                message,
            });
        }
        Err(ApiError::Api {
            status: status.as_u16(),
            code,
            message,
            field,
        })
    }

    fn transport(&self, e: &reqwest::Error) -> ApiError {
        let mut reason = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            reason = format!("{reason}: {s}");
            src = s.source();
        }
        ApiError::Transport {
            addr: self.addr,
            reason,
        }
    }

    /// Follows a session's events after `after` (SSE): history first, then live events.
    pub async fn follow_events(&self, session: &str, after: u64) -> Result<EventStream, ApiError> {
        self.event_stream(session, &format!("after={after}")).await
    }

    /// Follows the events a session records from now on (SSE), skipping its history.
    pub async fn follow_new_events(&self, session: &str) -> Result<EventStream, ApiError> {
        self.event_stream(session, "since_now=true").await
    }

    /// Follows every session's live events except agent output (`GET /api/web/events`): first
    /// a `ready` frame once subscribed, `resync` when this client fell behind (DESIGN §13).
    pub async fn follow_all_events(&self) -> Result<EventStream, ApiError> {
        self.sse("/api/web/events").await
    }

    /// Opens the session's SSE event stream with `query` (plus `follow=true`).
    async fn event_stream(&self, session: &str, query: &str) -> Result<EventStream, ApiError> {
        let path = format!(
            "/api/sessions/{}/events?{query}&follow=true",
            encode(session)
        );
        self.sse(&path).await
    }

    /// Opens the SSE stream at `path`.
    async fn sse(&self, path: &str) -> Result<EventStream, ApiError> {
        let resp = self
            .execute(
                self.http
                    .get(self.url(path))
                    .header("accept", "text/event-stream"),
            )
            .await?;
        Ok(EventStream {
            resp,
            buf: Vec::new(),
            data: String::new(),
            name: String::new(),
            addr: self.addr,
        })
    }

    /// Every event of a session after `after`, page by page, without following.
    pub async fn events(&self, session: &str, mut after: u64) -> Result<Vec<ApiEvent>, ApiError> {
        let mut all = Vec::new();
        // Each page advances `after`, and a page that does not is the end; bounded either way.
        for _ in 0..100_000 {
            let page: EventPage = self
                .get(&format!(
                    "/api/sessions/{}/events?after={after}",
                    encode(session)
                ))
                .await?;
            let last = page.events.last().map(|e| e.seq);
            all.extend(page.events);
            match last {
                Some(seq) if seq > after => after = seq,
                _ => break,
            }
        }
        Ok(all)
    }
}

/// Percent-encodes a path segment (names and id prefixes are plain, but be safe).
pub fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A server-sent event stream of [`ApiEvent`]s.
#[derive(Debug)]
pub struct EventStream {
    resp: reqwest::Response,
    buf: Vec<u8>,
    data: String,
    name: String,
    addr: SocketAddr,
}

/// One frame of an event stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A session's event.
    Event(ApiEvent),
    /// A marker without a session event (`ready`, `resync` on `GET /api/web/events`).
    Marker(String),
}

impl EventStream {
    /// The next event, or `None` when the daemon ended the stream (markers are skipped).
    pub async fn next(&mut self) -> Result<Option<ApiEvent>, ApiError> {
        loop {
            match self.next_frame().await? {
                Some(Frame::Event(ev)) => return Ok(Some(ev)),
                Some(Frame::Marker(_)) => {}
                None => return Ok(None),
            }
        }
    }

    /// The next frame, or `None` when the daemon ended the stream.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, ApiError> {
        loop {
            while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\n', '\r']);
                if line.is_empty() {
                    if self.data.is_empty() {
                        continue;
                    }
                    let data = std::mem::take(&mut self.data);
                    let name = std::mem::take(&mut self.name);
                    if matches!(name.as_str(), "ready" | "resync") {
                        return Ok(Some(Frame::Marker(name)));
                    }
                    return serde_json::from_str(&data)
                        .map(|e| Some(Frame::Event(e)))
                        .map_err(|e| ApiError::Protocol(format!("event data: {e}")));
                }
                if let Some(d) = line.strip_prefix("data:") {
                    if !self.data.is_empty() {
                        self.data.push('\n');
                    }
                    self.data.push_str(d.strip_prefix(' ').unwrap_or(d));
                } else if let Some(n) = line.strip_prefix("event:") {
                    self.name = n.trim().to_owned();
                }
                // `id:`, `retry:` and comments carry nothing the data lacks.
            }
            match self.resp.chunk().await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(ApiError::Transport {
                        addr: self.addr,
                        reason: e.to_string(),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_path_segments() {
        assert_eq!(encode("my-fix"), "my-fix");
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }
}
