//! A local HTTPS upstream with its own test CA, standing in for api.anthropic.com, github.com
//! and friends (the proxy reaches it through `[upstreams."<host>"]` overrides). It records
//! every request it receives, so a test can check what the "real" service saw.
//!
//! Routes: `/echo` answers with every request header in the body and the credential headers
//! in `x-echo-*` response headers (the reflection attack); `/bytes?n=N` answers N bytes;
//! `/gzip` answers with `content-encoding: gzip`; anything else reads the body and answers
//! `ok <body length>`.
//!
//! Started with [`Upstream::start_model_api`] it also answers like the model APIs the real agent
//! CLIs call (see [`model_api`]): Anthropic's `/v1/messages` (streamed with server-sent events
//! when asked) and Claude Code's start-up endpoints, OpenAI's `/v1/responses` (streamed), each
//! 401 without a credential or with a clauderon placeholder instead of one, like the real API.
//!
//! Also used by `host/benches/proxy.rs` (through `#[path]`), so it uses only crates that the
//! host crate depends on too.

#![allow(dead_code, clippy::unwrap_used)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// The method.
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Every header, in order, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body bytes that arrived (all of them when `body_complete`).
    pub body: Bytes,
    /// Whether the body arrived whole (false when the sender cut it off).
    pub body_complete: bool,
}

impl SeenRequest {
    /// Every value of header `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    /// The single value of header `name` (panics if it appears more than once).
    pub fn one(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(all.len() <= 1, "header {name} sent {} times", all.len());
        all.first().copied()
    }
}

#[derive(Default)]
struct State {
    seen: Mutex<Vec<SeenRequest>>,
    recorded: tokio::sync::Notify,
    accepted: AtomicUsize,
    model_api: bool,
}

/// The text every model reply of the fake model API carries.
pub const MODEL_REPLY: &str = "Hello from the fake upstream.";

/// The answer of the fake model APIs to a request for `path`, if it is one of theirs.
fn model_api(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Option<Response<Full<Bytes>>> {
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    // A real credential: present, and not a clauderon placeholder (the proxy replaces those).
    let credential = header("x-api-key")
        .or_else(|| header("authorization").and_then(|v| v.strip_prefix("Bearer ")))
        .filter(|v| !v.is_empty() && !v.contains("clauderon-placeholder"));
    let json = |status: u16, v: serde_json::Value| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(v.to_string())))
            .expect("response")
    };
    let unauthorized = || {
        json(
            401,
            serde_json::json!({"type": "error", "error": {"type": "authentication_error",
                "message": "invalid x-api-key"}}),
        )
    };
    let sse = |events: Vec<(String, serde_json::Value)>| {
        let text: String = events
            .into_iter()
            .map(|(e, d)| format!("event: {e}\ndata: {d}\n\n"))
            .collect();
        Response::builder()
            .status(200)
            .header("content-type", "text/event-stream")
            .body(Full::new(Bytes::from(text)))
            .expect("response")
    };
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    Some(match (method, path) {
        // Claude Code's connectivity check (before onboarding) and sign-in host.
        ("GET", "/api/hello") | ("GET", "/v1/oauth/hello") => {
            json(200, serde_json::json!({"message": "hello"}))
        }
        ("POST", p) if p.starts_with("/api/event_logging/") => json(200, serde_json::json!({})),
        ("POST", "/v1/messages/count_tokens") if credential.is_some() => {
            json(200, serde_json::json!({"input_tokens": 10}))
        }
        ("POST", "/v1/messages") if credential.is_some() => {
            let message = serde_json::json!({"id": "msg_fake", "type": "message",
                "role": "assistant", "model": "claude-fake", "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 10, "output_tokens": 1}});
            if request["stream"] == true {
                sse(vec![
                    (
                        "message_start".into(),
                        serde_json::json!({"type": "message_start", "message": message}),
                    ),
                    (
                        "content_block_start".into(),
                        serde_json::json!({"type": "content_block_start", "index": 0,
                        "content_block": {"type": "text", "text": ""}}),
                    ),
                    (
                        "content_block_delta".into(),
                        serde_json::json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": MODEL_REPLY}}),
                    ),
                    (
                        "content_block_stop".into(),
                        serde_json::json!({"type": "content_block_stop", "index": 0}),
                    ),
                    (
                        "message_delta".into(),
                        serde_json::json!({"type": "message_delta",
                        "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                        "usage": {"output_tokens": 5}}),
                    ),
                    (
                        "message_stop".into(),
                        serde_json::json!({"type": "message_stop"}),
                    ),
                ])
            } else {
                let mut m = message;
                m["content"] = serde_json::json!([{"type": "text", "text": MODEL_REPLY}]);
                m["stop_reason"] = "end_turn".into();
                json(200, m)
            }
        }
        ("POST", "/v1/responses") if credential.is_some() => {
            let item = serde_json::json!({"id": "msg_1", "type": "message", "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": MODEL_REPLY, "annotations": []}]});
            let events = [
                serde_json::json!({"type": "response.created", "response": {"id": "resp_1",
                    "object": "response", "status": "in_progress", "output": []}}),
                serde_json::json!({"type": "response.output_item.added", "output_index": 0,
                    "item": {"id": "msg_1", "type": "message", "role": "assistant",
                    "status": "in_progress", "content": []}}),
                serde_json::json!({"type": "response.output_text.delta", "item_id": "msg_1",
                    "output_index": 0, "content_index": 0, "delta": MODEL_REPLY}),
                serde_json::json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
                serde_json::json!({"type": "response.completed", "response": {"id": "resp_1",
                    "object": "response", "status": "completed", "output": [],
                    "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}}}),
            ];
            sse(events
                .into_iter()
                .map(|e| (e["type"].as_str().unwrap_or_default().to_owned(), e))
                .collect())
        }
        ("POST", "/v1/messages" | "/v1/messages/count_tokens" | "/v1/responses") => unauthorized(),
        // Everything else of the agents' services (settings, plugins, model catalog, release
        // notes): nothing here.
        (_, p)
            if p.starts_with("/api/")
                || p.starts_with("/v1/")
                || p.starts_with("/model-catalog/")
                || p.starts_with("/claude-code-releases/")
                || p.starts_with("/anthropics/") =>
        {
            json(
                404,
                serde_json::json!({"type": "error", "error": {"type": "not_found_error", "message": "not found"}}),
            )
        }
        _ => return None,
    })
}

/// A running upstream; stopped on drop.
pub struct Upstream {
    addr: SocketAddr,
    ca_pem: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn test_ca() -> (rcgen::Issuer<'static, rcgen::KeyPair>, String) {
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "clauderon test upstream CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("CA cert");
    (rcgen::Issuer::new(params, key), cert.pem())
}

/// `n` bytes of `a`, sliced from one shared buffer (so a benchmark measures the proxy, not
/// the upstream filling 10 MB per request).
fn payload(n: usize) -> Bytes {
    static BUF: Mutex<Option<Bytes>> = Mutex::new(None);
    let mut b = BUF.lock().unwrap();
    match b.as_ref() {
        Some(have) if have.len() >= n => have.slice(..n),
        _ => {
            let fresh = Bytes::from(vec![b'a'; n]);
            *b = Some(fresh.clone());
            fresh
        }
    }
}

async fn respond(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    // Frame by frame, so a body cut off midway still shows what arrived.
    let mut incoming = req.into_body();
    let mut received = Vec::new();
    let mut body_complete = true;
    while let Some(frame) = incoming.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    received.extend_from_slice(d);
                }
            }
            Err(_) => {
                body_complete = false;
                break;
            }
        }
    }
    let body = Bytes::from(received);
    state.seen.lock().unwrap().push(SeenRequest {
        method: method.clone(),
        target,
        headers: headers.clone(),
        body: body.clone(),
        body_complete,
    });
    state.recorded.notify_waiters();
    if state.model_api
        && let Some(r) = model_api(&method, &path, &headers, &body)
    {
        return Ok(r);
    }
    let mut resp = Response::builder().status(200);
    let bytes: Bytes = match path.as_str() {
        "/echo" => {
            for (n, v) in &headers {
                if n == "authorization" || n == "x-api-key" {
                    resp = resp.header(format!("x-echo-{n}"), v.as_str());
                }
            }
            headers
                .iter()
                .map(|(n, v)| format!("{n}: {v}\n"))
                .collect::<String>()
                .into()
        }
        "/bytes" => {
            let n: usize = query
                .strip_prefix("n=")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            payload(n)
        }
        "/gzip" => {
            resp = resp.header("content-encoding", "gzip");
            Bytes::from_static(b"\x1f\x8bnot really gzip")
        }
        _ => format!("ok {}", body.len()).into(),
    };
    Ok(resp.body(Full::new(bytes)).expect("response"))
}

impl Upstream {
    /// Starts an HTTPS upstream on 127.0.0.1:0 whose certificate names every host in `names`,
    /// signed by a fresh test CA.
    pub async fn start(names: &[&str]) -> Upstream {
        Self::start_tls(names, false).await
    }

    /// Like [`Upstream::start`], answering like the model APIs too (see [`model_api`]).
    pub async fn start_model_api(names: &[&str]) -> Upstream {
        Self::start_tls(names, true).await
    }

    async fn start_tls(names: &[&str], model_api: bool) -> Upstream {
        let (issuer, ca_pem) = test_ca();
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        let cert = params.signed_by(&key, &issuer).expect("leaf cert");
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server config");
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self::serve(
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg))),
            ca_pem,
            model_api,
        )
        .await
    }

    /// Starts a plain-HTTP upstream on 127.0.0.1:0.
    pub async fn start_plain() -> Upstream {
        Self::serve(None, String::new(), false).await
    }

    async fn serve(
        tls: Option<tokio_rustls::TlsAcceptor>,
        ca_pem: String,
        model_api: bool,
    ) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State {
            model_api,
            ..State::default()
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                st.accepted.fetch_add(1, Ordering::SeqCst);
                let _ = tcp.set_nodelay(true);
                let st = st.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| respond(st.clone(), req));
                    let builder = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
                        }
                    }
                });
            }
        });
        Upstream {
            addr,
            ca_pem,
            state,
            task,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// Its test CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
    /// Writes `<home>/proxy.toml` sending each of `hosts` here (`[upstreams."<host>"]` with
    /// this upstream's test CA, written beside it), with `extra` first.
    pub fn write_overrides(&self, home: &std::path::Path, hosts: &[&str], extra: &str) {
        let ca_file = home.join("upstream-ca.pem");
        std::fs::write(&ca_file, &self.ca_pem).expect("write the upstream CA");
        let mut toml = format!("{extra}\n");
        for h in hosts {
            toml.push_str(&format!(
                "[upstreams.\"{h}\"]\naddress = \"{}\"\nca_file = \"{}\"\n",
                self.addr,
                ca_file.display()
            ));
        }
        std::fs::write(home.join("proxy.toml"), toml).expect("write proxy.toml");
    }
    /// Every request received so far.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.state.seen.lock().unwrap().clone()
    }
    /// Waits (at most 10 s) until `n` requests have been received, and returns them all.
    pub async fn wait_for_requests(&self, n: usize) -> Vec<SeenRequest> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let recorded = self.state.recorded.notified();
            let seen = self.requests();
            if seen.len() >= n {
                return seen;
            }
            if tokio::time::timeout_at(deadline, recorded).await.is_err() {
                return self.requests();
            }
        }
    }
    /// How many TCP connections it accepted.
    pub fn connections(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }
}
