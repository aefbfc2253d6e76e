//! The credential proxy over real sockets on loopback: a reqwest client configured with the
//! proxy and trusting our CA stands in for the agent; a local HTTPS upstream with its own test
//! CA stands in for api.anthropic.com and github.com. Each checklist item (shared notes §2.5)
//! has a test here that fails without it.

#![allow(clippy::unwrap_used)]

use crate::support::home::TempHome;
use crate::support::upstream::Upstream;
use base64::Engine as _;
use clauderon::config::{Config, ProxyConfig};
use clauderon::home::Home;
use clauderon::proxy::{
    CredentialProxy, Policy, ProxyCredential, SandboxOptions, ca, read_audit, sessions,
};
use clauderon::secrets::SecretResolver;
use clauderon::session::SessionId;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ANTHROPIC_KEY: &str = "sk-ant-api03-REAL-anthropic-key-0123456789";
const GITHUB_TOKEN: &str = "ghp_REALgithubToken0123456789abcdef";
const OPENAI_KEY: &str = "sk-proj-REALopenaiKey0123456789";

/// Hosts the test upstream answers for (its certificate names them all).
const HOSTS: [&str; 5] = [
    "api.anthropic.com",
    "api.openai.com",
    "github.com",
    "api.github.com",
    "registry.npmjs.org",
];

struct Fixture {
    dir: TempHome,
    home: Home,
    upstream: Upstream,
    proxy: CredentialProxy,
}

fn resolver(home: &Home, env: &[(&str, &str)]) -> SecretResolver {
    let config = Config::load(home).unwrap();
    let proxy = ProxyConfig::load(home).unwrap();
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    SecretResolver::new(home.clone(), &config, &proxy).with_env(env)
}

impl Fixture {
    /// A proxy whose rule hosts all point at one local upstream, trusting its test CA.
    async fn new() -> Fixture {
        Self::with(
            true,
            "",
            &[
                ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
                ("GITHUB_TOKEN", GITHUB_TOKEN),
                ("OPENAI_API_KEY", OPENAI_KEY),
            ],
        )
        .await
    }

    async fn with(trust_upstream: bool, extra_toml: &str, env: &[(&str, &str)]) -> Fixture {
        let dir = TempHome::new();
        let home = Home::new(dir.path());
        home.ensure().unwrap();
        let upstream = Upstream::start(&HOSTS).await;
        let ca_file = dir.path().join("upstream-ca.pem");
        std::fs::write(&ca_file, upstream.ca_pem()).unwrap();
        let mut toml = format!("{extra_toml}\n");
        for h in HOSTS {
            toml.push_str(&format!(
                "[upstreams.\"{h}\"]\naddress = \"{}\"\n",
                upstream.addr()
            ));
            if trust_upstream {
                toml.push_str(&format!("ca_file = \"{}\"\n", ca_file.display()));
            }
        }
        std::fs::write(home.proxy_file(), toml).unwrap();
        let policy = Policy::load(&home).unwrap();
        let proxy = CredentialProxy::start(
            &home,
            policy,
            resolver(&home, env),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        Fixture {
            dir,
            home,
            upstream,
            proxy,
        }
    }

    /// The agent's HTTP client: our proxy with `cred`, trusting only our CA.
    fn client(&self, cred: &ProxyCredential) -> reqwest::Client {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.proxy.ca().cert_der().clone()).unwrap();
        client_with(roots, &cred.proxy_url(&self.proxy.addr().to_string()))
    }
}

fn client_with(roots: rustls::RootCertStore, proxy_url: &str) -> reqwest::Client {
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .proxy(reqwest::Proxy::all(proxy_url).unwrap())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Sends raw bytes to the proxy and returns what comes back until it closes or 2 s pass.
async fn raw(proxy: &CredentialProxy, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(2), s.read(&mut buf))
        .await
        .map_or(0, |r| r.unwrap_or(0));
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn connect_request(host: &str, cred: Option<&ProxyCredential>) -> String {
    let auth = cred
        .map(|c| format!("Proxy-Authorization: {}\r\n", c.header_value()))
        .unwrap_or_default();
    format!("CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n{auth}\r\n")
}

/// One CONNECT tunnel to `host` through the proxy, TLS inside it trusting our CA, and an
/// HTTP/1.1 connection over that: every request sent on the result uses this one tunnel.
async fn one_tunnel(
    proxy: &CredentialProxy,
    cred: &ProxyCredential,
    host: &str,
) -> hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>> {
    let mut s = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(connect_request(host, Some(cred)).as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 4096, "no end of the CONNECT answer");
        head.push(s.read_u8().await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(proxy.ca().cert_der().clone()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, s)
        .await
        .unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

fn get(host: &str, path: &str) -> hyper::Request<http_body_util::Full<bytes::Bytes>> {
    hyper::Request::builder()
        .uri(path)
        .header("host", host)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn proxy_injects_the_real_key_and_strips_what_the_sandbox_sent() {
    let f = Fixture::new().await;
    let id = SessionId::new();
    let cred = f.proxy.register_session(id);
    let ph = f.proxy.placeholders(id).unwrap();
    let client = f.client(&cred);

    // The agent sends its placeholder in both Anthropic headers.
    let r = client
        .post("https://api.anthropic.com/v1/messages")
        .header("x-api-key", &ph["anthropic_api_key"])
        .header(
            "authorization",
            format!("Bearer {}", ph["anthropic_api_key"]),
        )
        .body("{\"hello\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok 11");
    let git = client
        .get("https://github.com/org/repo.git/info/refs?service=git-upload-pack")
        .send()
        .await
        .unwrap();
    assert_eq!(git.status(), 200);
    let api = client
        .get("https://api.github.com/user")
        .header("authorization", format!("token {}", ph["github_token"]))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
    let openai = client
        .post("https://api.openai.com/v1/chat/completions")
        .header("authorization", format!("Bearer {}", ph["openai_api_key"]))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(openai.status(), 200);

    let seen = f.upstream.requests();
    assert_eq!(seen.len(), 4, "{seen:?}");
    let anthropic = &seen[0];
    assert_eq!(anthropic.target, "/v1/messages");
    assert_eq!(anthropic.one("x-api-key"), Some(ANTHROPIC_KEY));
    assert_eq!(
        anthropic.one("authorization"),
        None,
        "strip, then set only the one header"
    );
    assert_eq!(anthropic.one("proxy-authorization"), None);
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{GITHUB_TOKEN}"));
    assert_eq!(
        seen[1].one("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert_eq!(
        seen[2].one("authorization"),
        Some(format!("Bearer {GITHUB_TOKEN}").as_str())
    );
    assert_eq!(
        seen[3].one("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    for s in &seen {
        assert!(
            !s.headers
                .iter()
                .any(|(_, v)| v.contains(sessions::PLACEHOLDER_PREFIX)),
            "no placeholder reaches the upstream: {s:?}"
        );
    }
}

#[tokio::test]
async fn an_oauth_token_goes_as_bearer() {
    let f = Fixture::with(
        true,
        "",
        &[("ANTHROPIC_API_KEY", "sk-ant-oat01-REALoauthToken")],
    )
    .await;
    let cred = f.proxy.register_session(SessionId::new());
    let r = f
        .client(&cred)
        .get("https://api.anthropic.com/v1/models")
        .header("x-api-key", "whatever")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = f.upstream.requests();
    assert_eq!(
        seen[0].one("authorization"),
        Some("Bearer sk-ant-oat01-REALoauthToken")
    );
    assert_eq!(seen[0].one("x-api-key"), None);
}

#[tokio::test]
async fn proxy_credentials_are_per_session_and_revocable() {
    let f = Fixture::new().await;
    let a = SessionId::new();
    let cred = f.proxy.register_session(a);

    // No credential, a wrong password, an unknown session: 407 before anything else.
    let none = raw(&f.proxy, &connect_request("api.anthropic.com", None)).await;
    assert!(none.starts_with("HTTP/1.1 407"), "{none}");
    assert!(
        none.to_ascii_lowercase()
            .contains("proxy-authenticate: basic"),
        "{none}"
    );
    let wrong = ProxyCredential {
        username: cred.username.clone(),
        password: clauderon::secrets::Secret::new("not-the-password".into()),
    };
    let r = raw(
        &f.proxy,
        &connect_request("api.anthropic.com", Some(&wrong)),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 407"), "{r}");
    let other = ProxyCredential {
        username: SessionId::new().to_string(),
        password: cred.password.clone(),
    };
    let r = raw(
        &f.proxy,
        &connect_request("api.anthropic.com", Some(&other)),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 407"), "{r}");
    let ok = raw(&f.proxy, &connect_request("api.anthropic.com", Some(&cred))).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");

    // A tunnel opened before revocation is refused on its next request, on the same
    // connection (one CONNECT, one TLS session inside it).
    let mut tunnel = one_tunnel(&f.proxy, &cred, "api.anthropic.com").await;
    let r = tunnel
        .send_request(get("api.anthropic.com", "/v1/a"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    http_body_util::BodyExt::collect(r.into_body())
        .await
        .unwrap();
    assert!(f.proxy.revoke_session(a));
    let r = tunnel
        .send_request(get("api.anthropic.com", "/v1/b"))
        .await
        .expect("the open tunnel answers");
    assert_eq!(r.status(), 407);
    let r = raw(&f.proxy, &connect_request("api.anthropic.com", Some(&cred))).await;
    assert!(r.starts_with("HTTP/1.1 407"), "{r}");
    assert_eq!(
        f.upstream.requests().len(),
        1,
        "nothing after revocation reached upstream"
    );
}

#[tokio::test]
async fn connect_outside_policy_and_non_tls_tunnels_are_refused() {
    let f = Fixture::new().await;
    let id = SessionId::new();
    let cred = f.proxy.register_session(id);
    let r = raw(&f.proxy, &connect_request("evil.example", Some(&cred))).await;
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(r.contains("outside the proxy policy"), "{r}");
    let r = raw(
        &f.proxy,
        &format!(
            "CONNECT github.com:22 HTTP/1.1\r\nHost: github.com:22\r\nProxy-Authorization: {}\r\n\r\n",
            cred.header_value()
        ),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");

    // An allowed CONNECT that then speaks plain HTTP is closed, never tunnelled blindly.
    let mut s = tokio::net::TcpStream::connect(f.proxy.addr())
        .await
        .unwrap();
    s.write_all(connect_request("api.anthropic.com", Some(&cred)).as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    s.write_all(b"GET /v1/models HTTP/1.1\r\nHost: api.anthropic.com\r\n\r\n")
        .await
        .unwrap();
    let n = tokio::time::timeout(std::time::Duration::from_secs(20), s.read(&mut buf))
        .await
        .expect("the proxy closes the tunnel")
        .unwrap_or(0);
    assert!(
        !String::from_utf8_lossy(&buf[..n]).contains("HTTP/1.1 200"),
        "no answer from upstream"
    );
    assert_eq!(
        f.upstream.connections(),
        0,
        "the upstream was never contacted"
    );

    f.proxy.flush_audit().await;
    let audit = read_audit(&f.home, id).unwrap();
    let violations: Vec<_> = audit
        .iter()
        .filter_map(|e| e.violation.as_deref())
        .collect();
    assert_eq!(violations.len(), 3, "{audit:?}");
    // The refusal names the line that would admit the host.
    assert_eq!(audit[0].host, "evil.example");
    assert!(
        violations[0].contains(r#"add `allow = ["evil.example"]` to proxy.toml"#),
        "{violations:?}"
    );
    assert!(
        violations[2].contains("did not start with TLS"),
        "{violations:?}"
    );
}

#[tokio::test]
async fn a_tls_server_name_other_than_the_connect_host_is_refused() {
    let f = Fixture::new().await;
    let id = SessionId::new();
    let cred = f.proxy.register_session(id);
    // CONNECT to one allowed host, then a ClientHello naming another: closed, never answered.
    let mut s = tokio::net::TcpStream::connect(f.proxy.addr())
        .await
        .unwrap();
    s.write_all(connect_request("registry.npmjs.org", Some(&cred)).as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 4096, "no end of the CONNECT answer");
        head.push(s.read_u8().await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(f.proxy.ca().cert_der().clone()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("api.anthropic.com").unwrap();
    let tls = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, s),
    )
    .await
    .expect("the proxy answers the handshake at once");
    assert!(tls.is_err(), "the handshake with a different SNI completed");
    assert_eq!(
        f.upstream.connections(),
        0,
        "the upstream was never contacted"
    );
    f.proxy.flush_audit().await;
    let audit = read_audit(&f.home, id).unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(
        (
            audit[0].host.as_str(),
            audit[0].method.as_str(),
            audit[0].status
        ),
        ("registry.npmjs.org", "CONNECT", 403)
    );
    assert!(
        audit[0]
            .violation
            .as_deref()
            .unwrap()
            .contains("server name differs"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn proxy_and_connection_named_headers_sent_inside_a_tunnel_never_reach_the_upstream() {
    let f = Fixture::new().await;
    let id = SessionId::new();
    let cred = f.proxy.register_session(id);
    let mut tunnel = one_tunnel(&f.proxy, &cred, "api.anthropic.com").await;
    // A client that repeats its proxy credential on every request, inside the tunnel too.
    let mut req = get("api.anthropic.com", "/v1/models");
    let h = req.headers_mut();
    h.insert("proxy-authorization", cred.header_value().parse().unwrap());
    h.insert("connection", "x-hop".parse().unwrap());
    h.insert("x-hop", "hop-value".parse().unwrap());
    h.insert("x-kept", "kept".parse().unwrap());
    let r = tunnel.send_request(req).await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = f.upstream.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].one("proxy-authorization"), None, "{seen:?}");
    assert_eq!(seen[0].one("x-hop"), None, "{seen:?}");
    assert_eq!(seen[0].one("x-kept"), Some("kept"));
    assert_eq!(seen[0].one("x-api-key"), Some(ANTHROPIC_KEY));
    let all: String = seen[0]
        .headers
        .iter()
        .map(|(_, v)| v.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!all.contains(cred.password.expose()), "{all}");
}

#[tokio::test]
async fn nothing_is_injected_when_the_upstream_certificate_does_not_verify() {
    // The overrides point at the upstream, but its test CA is not trusted.
    let f = Fixture::with(false, "", &[("ANTHROPIC_API_KEY", ANTHROPIC_KEY)]).await;
    let cred = f.proxy.register_session(SessionId::new());
    let r = f
        .client(&cred)
        .get("https://api.anthropic.com/v1/models")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body = r.text().await.unwrap();
    assert!(body.contains("no credential was sent"), "{body}");
    assert!(f.upstream.requests().is_empty(), "the key never reached it");
}

#[tokio::test]
async fn a_placeholder_sent_to_the_wrong_host_is_blocked_and_recorded() {
    let f = Fixture::new().await;
    let a = SessionId::new();
    let b = SessionId::new();
    let cred_a = f.proxy.register_session(a);
    let cred_b = f.proxy.register_session(b);
    let ph_a = f.proxy.placeholders(a).unwrap();
    let client = f.client(&cred_a);

    // The Anthropic placeholder to the npm registry (allowed, but not its host).
    let r = client
        .get("https://registry.npmjs.org/-/whoami")
        .header(
            "authorization",
            format!("Bearer {}", ph_a["anthropic_api_key"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // In a query string, and the GitHub placeholder to Anthropic.
    let r = client
        .get(format!(
            "https://registry.npmjs.org/x?token={}",
            ph_a["github_token"]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client
        .get("https://api.anthropic.com/v1/models")
        .header("x-other", &ph_a["github_token"])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Hidden in Basic credentials.
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("user:{}", ph_a["github_token"]));
    let r = client
        .get("https://registry.npmjs.org/pkg")
        .header("authorization", format!("Basic {basic}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Session A's placeholder used by session B, even to its own host.
    let r = f
        .client(&cred_b)
        .get("https://api.anthropic.com/v1/models")
        .header("x-api-key", &ph_a["anthropic_api_key"])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The right placeholder to the right host passes (and is replaced).
    let r = client
        .get("https://api.anthropic.com/v1/models")
        .header("x-api-key", &ph_a["anthropic_api_key"])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        f.upstream.requests().len(),
        1,
        "blocked requests never left the host"
    );

    f.proxy.flush_audit().await;
    let audit = read_audit(&f.home, a).unwrap();
    let blocked: Vec<_> = audit.iter().filter(|e| e.violation.is_some()).collect();
    assert_eq!(blocked.len(), 4, "{audit:?}");
    assert!(blocked.iter().all(|e| e.status == 403));
    assert!(
        blocked[0]
            .violation
            .as_deref()
            .unwrap()
            .contains("anthropic_api_key")
    );
    assert_eq!(read_audit(&f.home, b).unwrap()[0].status, 403);
}

#[tokio::test]
async fn real_secrets_are_scrubbed_from_responses() {
    let f = Fixture::new().await;
    let cred = f.proxy.register_session(SessionId::new());
    let client = f.client(&cred);
    // The reflection attack: an endpoint that echoes request headers back.
    let r = client
        .get("https://api.anthropic.com/echo")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echoed = r
        .headers()
        .get("x-echo-x-api-key")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let body = r.text().await.unwrap();
    assert!(!body.contains(ANTHROPIC_KEY), "{body}");
    assert!(
        body.contains(&format!("x-api-key: {}", "*".repeat(ANTHROPIC_KEY.len()))),
        "{body}"
    );
    assert!(
        !echoed.contains(ANTHROPIC_KEY) && echoed.starts_with("****"),
        "{echoed}"
    );
    // The upstream did receive the key (the echo is real).
    assert_eq!(
        f.upstream.requests()[0].one("x-api-key"),
        Some(ANTHROPIC_KEY)
    );
    // A compressed answer to a request that carried a credential cannot be scrubbed: withheld.
    let r = client
        .get("https://api.anthropic.com/gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let seen = f.upstream.requests();
    assert_eq!(seen[1].one("accept-encoding"), Some("identity"));
    // Only then: the same answer to a request that carried no credential is passed on.
    let r = client
        .get("https://registry.npmjs.org/gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-encoding"], "gzip");
}

#[tokio::test]
async fn the_audit_log_records_requests_without_values() {
    let f = Fixture::new().await;
    let id = SessionId::new();
    let cred = f.proxy.register_session(id);
    let ph = f.proxy.placeholders(id).unwrap();
    let client = f.client(&cred);
    client
        .post("https://api.anthropic.com/v1/messages?beta=secretquery")
        .header("x-api-key", &ph["anthropic_api_key"])
        .body("x")
        .send()
        .await
        .unwrap();
    client
        .get("https://registry.npmjs.org/left-pad")
        .send()
        .await
        .unwrap();
    // Secret-looking values in the query, a header and the body; and a refused request whose
    // query carries a placeholder.
    let r = client
        .post(format!(
            "https://api.anthropic.com/v1/complete?key={ANTHROPIC_KEY}&access_token=ghp_LOOKALIKEquery"
        ))
        .header("x-custom", "sk-ant-HEADERlookalike")
        .body("body-SECRETlookalike")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .get(format!(
            "https://registry.npmjs.org/search?q={}",
            ph["github_token"]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    f.proxy.flush_audit().await;
    let audit = read_audit(&f.home, id).unwrap();
    assert_eq!(audit.len(), 4, "{audit:?}");
    assert_eq!(audit[2].path, "/v1/complete");
    assert_eq!((audit[3].path.as_str(), audit[3].status), ("/search", 403));
    assert!(audit[3].violation.is_some());
    assert_eq!(
        (
            audit[0].host.as_str(),
            audit[0].method.as_str(),
            audit[0].path.as_str()
        ),
        ("api.anthropic.com", "POST", "/v1/messages")
    );
    assert_eq!((audit[0].status, audit[0].injected), (200, true));
    assert!(audit[0].duration_ms > 0.0);
    assert_eq!(
        (audit[1].host.as_str(), audit[1].injected),
        ("registry.npmjs.org", false)
    );
    let file = clauderon::proxy::audit_file(&f.home, id);
    let text = std::fs::read_to_string(&file).unwrap();
    for never in [
        ANTHROPIC_KEY,
        ph["anthropic_api_key"].as_str(),
        ph["github_token"].as_str(),
        "secretquery",
        "LOOKALIKE",
        "lookalike",
        "key=",
        "?",
        cred.password.expose(),
    ] {
        assert!(!text.contains(never), "the audit log holds a value: {text}");
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[tokio::test]
async fn cleartext_http_is_never_injected() {
    let plain = Upstream::start_plain().await;
    let f = Fixture::with(
        true,
        "allow = [\"127.0.0.1\"]\n[[rules]]\nhost = \"127.0.0.1\"\nsecret = \"local_token\"\n",
        &[("LOCAL_TOKEN", "local-REAL-token-value")],
    )
    .await;
    let id = SessionId::new();
    let cred = f.proxy.register_session(id);
    let r = f
        .client(&cred)
        .get(format!("http://{}/x", plain.addr()))
        .header("authorization", "Bearer mine")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = plain.requests();
    assert_eq!(
        seen[0].one("authorization"),
        Some("Bearer mine"),
        "passed as sent, never injected"
    );
    assert_eq!(seen[0].one("proxy-authorization"), None);
    // And an HTTPS-only rule host over cleartext is refused when not allowed.
    let r = f
        .client(&cred)
        .get("http://evil.example/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn a_host_header_that_differs_from_the_tunnel_is_refused() {
    let f = Fixture::new().await;
    let cred = f.proxy.register_session(SessionId::new());
    let r = f
        .client(&cred)
        .get("https://api.anthropic.com/v1/models")
        .header("host", "registry.npmjs.org")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 421);
    assert!(f.upstream.requests().is_empty());
}

#[tokio::test]
async fn the_sandbox_env_holds_placeholders_the_proxy_and_a_full_trust_bundle() {
    let f = Fixture::new().await;
    let a = SessionId::new();
    let b = SessionId::new();
    f.proxy.register_session(a);
    f.proxy.register_session(b);
    let opts = SandboxOptions::new(
        f.proxy.addr().to_string(),
        "/home/agent/.clauderon/ca-bundle.pem",
    );
    let sa = f.proxy.sandbox_env(a, &opts).unwrap();
    let sb = f.proxy.sandbox_env(b, &opts).unwrap();
    assert!(f.proxy.sandbox_env(SessionId::new(), &opts).is_err());
    for var in [
        "ANTHROPIC_API_KEY",
        "GH_TOKEN",
        "GITHUB_TOKEN",
        "OPENAI_API_KEY",
    ] {
        let v = &sa.env[var];
        assert!(v.starts_with(sessions::PLACEHOLDER_PREFIX), "{var}={v}");
        assert_ne!(v, &sb.env[var], "placeholders are unique per session");
    }
    let all: String = sa.env.values().cloned().collect::<Vec<_>>().join("\n");
    assert!(!all.contains(ANTHROPIC_KEY) && !all.contains(GITHUB_TOKEN));
    assert!(sa.env["HTTPS_PROXY"].starts_with(&format!("http://{a}:")));
    assert_eq!(sa.env["NO_PROXY"], "localhost,127.0.0.1,::1");
    for var in [
        "NODE_EXTRA_CA_CERTS",
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
        "GIT_SSL_CAINFO",
    ] {
        assert_eq!(sa.env[var], "/home/agent/.clauderon/ca-bundle.pem");
    }
    let certs = ca::pem_certs(std::str::from_utf8(&sa.bundle_pem).unwrap());
    assert!(certs.len() > 100, "system roots, never our CA alone");
    assert!(certs.contains(f.proxy.ca().cert_der()));
    assert!(!String::from_utf8_lossy(&sa.bundle_pem).contains("PRIVATE KEY"));
    assert!(!format!("{sa:?}").contains(&sa.env["HTTPS_PROXY"]));

    // An agent configured only from that environment and bundle gets through, and the
    // upstream sees the real key in place of the placeholder.
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(certs);
    let client = client_with(roots, &sa.env["HTTPS_PROXY"]);
    let r = client
        .get("https://api.anthropic.com/v1/models")
        .header("x-api-key", &sa.env["ANTHROPIC_API_KEY"])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        f.upstream.requests()[0].one("x-api-key"),
        Some(ANTHROPIC_KEY)
    );
}

#[tokio::test]
async fn clauderon_proxy_audit_shows_a_sessions_log_by_name() {
    let f = Fixture::new().await;
    let id = SessionId::new();
    let mut db = clauderon::store::Db::open(&f.home.db_file()).unwrap();
    db.insert_session(&clauderon::store::NewSession {
        id,
        name: clauderon::session::SessionName::new("audit-me").unwrap(),
        backend: "sprites".into(),
        repository: "/src/repo".into(),
        branch: None,
        prompt: "p".into(),
        options: Default::default(),
    })
    .unwrap();
    drop(db);
    let cred = f.proxy.register_session(id);
    let client = f.client(&cred);
    client
        .get("https://api.anthropic.com/v1/models?key=querysecret")
        .send()
        .await
        .unwrap();
    client
        .get("https://registry.npmjs.org/-/ping")
        .header(
            "x",
            f.proxy.placeholders(id).unwrap()["github_token"].clone(),
        )
        .send()
        .await
        .unwrap();
    f.proxy.flush_audit().await;

    let run = f.dir.run(&["proxy", "audit", "audit-me"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("TIME"), "{}", run.stdout);
    assert!(
        lines[1].contains("GET")
            && lines[1].contains("api.anthropic.com")
            && lines[1].contains("200")
            && lines[1].contains("yes")
            && lines[1].ends_with("/v1/models"),
        "{}",
        run.stdout
    );
    assert!(
        lines[2].contains("403") && lines[2].contains("BLOCKED"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("querysecret") && !run.stdout.contains(ANTHROPIC_KEY));
    let json = f
        .dir
        .run(&["--json", "proxy", "audit", &id.to_string(), "--last", "1"])
        .json();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["status"], 403);
    let bad = f.dir.run(&["proxy", "audit", "no-such-session"]);
    assert_eq!(bad.code, Some(1));
    assert!(bad.stderr.contains("no-such-session"), "{}", bad.stderr);

    // `proxy rules` shows which rules have a secret, never the value.
    let rules = f.dir.run_with(&["--json", "proxy", "rules"], |c| {
        c.env("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
            .env_remove("GITHUB_TOKEN")
            .env_remove("GH_TOKEN")
            .env_remove("OPENAI_API_KEY");
    });
    assert_eq!(rules.code, Some(0), "{}", rules.stderr);
    assert!(!rules.stdout.contains(ANTHROPIC_KEY));
    let rows = rules.json();
    let anthropic = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["host"] == "api.anthropic.com")
        .unwrap();
    assert_eq!(anthropic["source"]["kind"], "env");
    assert_eq!(anthropic["preview"], "sk-a…6789");
    let github = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["host"] == "github.com")
        .unwrap();
    assert!(github["source"].is_null());
}

#[tokio::test]
async fn a_placeholder_in_a_request_body_to_the_wrong_host_is_blocked_and_recorded() {
    let plain = Upstream::start_plain().await;
    let f = Fixture::with(
        true,
        "allow = [\"127.0.0.1\"]\n",
        &[
            ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
            ("GITHUB_TOKEN", GITHUB_TOKEN),
        ],
    )
    .await;
    let id = SessionId::new();
    let cred = f.proxy.register_session(id);
    let ph = f.proxy.placeholders(id).unwrap();
    let client = f.client(&cred);

    // A small body to a host without a rule: refused before the upstream sees anything.
    let r = client
        .post("https://registry.npmjs.org/-/v1/login")
        .body(format!("{{\"token\":\"{}\"}}", ph["anthropic_api_key"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("request body"));
    assert!(f.upstream.requests().is_empty(), "nothing reached upstream");

    // A streamed body with the placeholder far past what is read ahead, split across chunks:
    // the upstream gets the start, then the request is cut off before the placeholder.
    let token = ph["github_token"].clone();
    let chunks = vec![
        bytes::Bytes::from(vec![b'x'; 300 * 1024]),
        bytes::Bytes::from(format!(" \"{}", &token[..15])),
        bytes::Bytes::from(format!("{}\" end", &token[15..])),
    ];
    let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    let r = client
        .post("https://registry.npmjs.org/upload")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The upstream notices the cut-off on its own time.
    let seen = f.upstream.wait_for_requests(1).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].target, "/upload");
    assert!(
        !seen[0].body_complete,
        "the upstream saw the request cut off"
    );
    let prefix = sessions::PLACEHOLDER_PREFIX.as_bytes();
    assert!(!seen[0].body.windows(prefix.len()).any(|w| w == prefix));

    // Over cleartext too.
    let r = client
        .post(format!("http://{}/form", plain.addr()))
        .body(format!("a=1&t={}", ph["anthropic_api_key"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(plain.requests().is_empty());

    // What passes: a large clean body to a host without a rule, whole; and any body to a
    // rule host (not scanned: a conversation may quote the agent's environment).
    let big = vec![b'y'; 1024 * 1024 + 7];
    let r = client
        .post("https://registry.npmjs.org/big")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), format!("ok {}", big.len()));
    let quoted = format!("{{\"tool_result\":\"GH_TOKEN={}\"}}", ph["github_token"]);
    let r = client
        .post("https://api.anthropic.com/v1/messages")
        .body(quoted.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = f.upstream.requests();
    assert_eq!(&seen[1].body[..], &big[..]);
    assert_eq!(&seen[2].body[..], quoted.as_bytes());

    f.proxy.flush_audit().await;
    let audit = read_audit(&f.home, id).unwrap();
    let blocked: Vec<_> = audit.iter().filter(|e| e.violation.is_some()).collect();
    assert_eq!(blocked.len(), 3, "{audit:?}");
    for e in &blocked {
        assert_eq!(e.status, 403);
        assert!(
            e.violation
                .as_deref()
                .unwrap()
                .contains("in the request body"),
            "{e:?}"
        );
    }
    assert_eq!(blocked[1].path, "/upload");
    let text = std::fs::read_to_string(clauderon::proxy::audit_file(&f.home, id)).unwrap();
    assert!(!text.contains(sessions::PLACEHOLDER_PREFIX), "{text}");
}

#[tokio::test]
async fn the_proxy_listens_only_on_loopback_unless_forced() {
    let dir = TempHome::new();
    let home = Home::new(dir.path());
    home.ensure().unwrap();
    let start = |addr: &str, forced: bool| {
        let home = home.clone();
        let addr: std::net::SocketAddr = addr.parse().unwrap();
        async move {
            let policy = Policy::load(&home).unwrap();
            let r = resolver(&home, &[]);
            if forced {
                CredentialProxy::start_exposed(&home, policy, r, addr).await
            } else {
                CredentialProxy::start(&home, policy, r, addr).await
            }
        }
    };
    for addr in [
        "0.0.0.0:0",
        "[::]:0",
        "192.0.2.10:3128",
        "[::ffff:10.0.0.1]:8080",
    ] {
        let err = start(addr, false).await.unwrap_err().to_string();
        assert!(
            err.contains(addr) && err.contains("non-loopback") && err.contains("start_exposed"),
            "{err}"
        );
    }
    // Forced, the address is tried (this one is not on this machine, so binding fails).
    let err = start("192.0.2.10:3128", true)
        .await
        .unwrap_err()
        .to_string();
    assert!(!err.contains("non-loopback"), "{err}");
    let p = start("127.0.0.1:0", false).await.unwrap();
    assert!(p.addr().ip().is_loopback());
    let p = start("[::ffff:127.0.0.1]:0", false).await;
    assert!(
        p.as_ref()
            .err()
            .is_none_or(|e| !e.to_string().contains("non-loopback")),
        "a v4-mapped loopback address is loopback"
    );
}

#[tokio::test]
async fn agent_reports_are_tagged_with_the_session_that_authenticated_them() {
    let f = Fixture::new().await;
    let a = SessionId::new();
    let b = SessionId::new();
    let cred_a = f.proxy.register_session(a);
    f.proxy.register_session(b);
    let mut reports = f.proxy.agent_reports();
    let url = format!(
        "http://{}{}",
        clauderon::proxy::AGENT_REPORT_HOST,
        clauderon::proxy::AGENT_REPORT_PATH
    );
    let body = format!(r#"{{"hook_event_name":"Stop","session":"{b}"}}"#);
    let post = |auth: Option<&ProxyCredential>| {
        let auth = auth
            .map(|c| format!("Proxy-Authorization: {}\r\n", c.header_value()))
            .unwrap_or_default();
        format!(
            "POST {url} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            clauderon::proxy::AGENT_REPORT_HOST,
            body.len()
        )
    };
    // Without the session's credential: refused like any request, nothing passed on.
    let r = raw(&f.proxy, &post(None)).await;
    assert!(r.starts_with("HTTP/1.1 407"), "{r}");
    assert!(reports.try_recv().is_err());
    // With A's credential: the report is A's, whatever its body claims.
    let r = raw(&f.proxy, &post(Some(&cred_a))).await;
    assert!(r.starts_with("HTTP/1.1 204"), "{r}");
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), reports.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.session, a);
    assert_eq!(got.body["hook_event_name"], "Stop");
    // The report never reaches any upstream, nor the audit log as a host.
    assert_eq!(f.upstream.connections(), 0);
}
