//! What a session's sandbox gets: placeholders instead of keys, the proxy variables carrying
//! the session's proxy credential, and a trust bundle (system roots plus our CA) with every
//! common variable pointing at it.

use super::ca::CertificateAuthority;
use super::rules::Policy;
use super::sessions::ProxyCredential;
use std::collections::BTreeMap;

/// Where the sandbox reaches the proxy and where the bundle will be written in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxOptions {
    /// `host:port` of the proxy as the sandbox sees it (a relay on the sandbox's loopback).
    pub proxy_addr: String,
    /// The path inside the sandbox where the plugin writes [`SandboxSetup::bundle_pem`].
    pub bundle_path: String,
    /// Hosts the agent reaches directly (`NO_PROXY`).
    pub no_proxy: Vec<String>,
    /// The secrets that have a value on the host now. Where several rules serve one host
    /// (an API key and a subscription token), only the first of them with a value gets its
    /// variables, so the agent takes the matching path ([`Policy::chosen_rules`]).
    pub available_secrets: std::collections::BTreeSet<String>,
}

impl SandboxOptions {
    /// Options with the usual loopback `NO_PROXY`.
    pub fn new(proxy_addr: impl Into<String>, bundle_path: impl Into<String>) -> Self {
        Self {
            proxy_addr: proxy_addr.into(),
            bundle_path: bundle_path.into(),
            no_proxy: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            available_secrets: std::collections::BTreeSet::new(),
        }
    }
}

/// The sandbox side of one session.
#[derive(Clone, PartialEq, Eq)]
pub struct SandboxSetup {
    /// Environment variables for the agent.
    pub env: BTreeMap<String, String>,
    /// The trust bundle (PEM): the Mozilla root set, then our CA.
    pub bundle_pem: Vec<u8>,
    /// Where the bundle goes inside the sandbox.
    pub bundle_path: String,
    /// Our CA alone (PEM), for sandboxes with a system store to install it into
    /// (`/usr/local/share/ca-certificates/clauderon.crt`).
    pub ca_pem: String,
}

impl std::fmt::Debug for SandboxSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The proxy variables carry the session's proxy password.
        f.debug_struct("SandboxSetup")
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("bundle_path", &self.bundle_path)
            .field("bundle_bytes", &self.bundle_pem.len())
            .finish()
    }
}

/// The trust variables set to the bundle path.
pub const TRUST_VARS: [&str; 6] = [
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "GIT_SSL_CAINFO",
    "CURL_CA_BUNDLE",
    "CARGO_HTTP_CAINFO",
];

pub(crate) fn build(
    policy: &Policy,
    placeholders: &BTreeMap<String, String>,
    credential: &ProxyCredential,
    ca: &CertificateAuthority,
    opts: &SandboxOptions,
) -> SandboxSetup {
    let mut env = BTreeMap::new();
    for rule in policy.chosen_rules(&opts.available_secrets) {
        if let Some(p) = placeholders.get(&rule.secret) {
            for var in &rule.env {
                env.entry(var.clone())
                    .or_insert_with(|| format!("{}{p}", rule.env_prefix));
            }
        }
    }
    let url = credential.proxy_url(&opts.proxy_addr);
    for var in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"] {
        env.insert(var.into(), url.clone());
    }
    let no_proxy = opts.no_proxy.join(",");
    env.insert("NO_PROXY".into(), no_proxy.clone());
    env.insert("no_proxy".into(), no_proxy);
    for var in TRUST_VARS {
        env.insert(var.into(), opts.bundle_path.clone());
    }
    SandboxSetup {
        env,
        bundle_pem: ca.trust_bundle_pem().into_bytes(),
        bundle_path: opts.bundle_path.clone(),
        ca_pem: ca.cert_pem().to_string(),
    }
}
