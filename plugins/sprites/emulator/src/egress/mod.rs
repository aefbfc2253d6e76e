//! Egress: how a sprite reaches the outside, under its network policy.
//!
//! A sprite's network namespace has only `lo`, so nothing leaves it directly. While a sprite is
//! awake, the emulator runs an HTTP proxy for it whose listening socket is made *inside* the
//! sprite's namespace (`127.0.0.1:<--egress-port>`, default 3129) and whose outgoing connections
//! are made from the emulator's own network; every exec gets `HTTP(S)_PROXY` pointing at it in
//! its default environment. Each destination is checked against the sprite's `policy/network`
//! ([`rules`]) when the connection is made, and open connections whose host a later policy
//! denies are dropped (the service documents both). Private addresses are never reachable
//! (loopback, RFC 1918, link-local, CGNAT, ...), except names the operator maps with
//! `--egress-host NAME=IP`; raw IP destinations need an unrestricted policy or an allowed name
//! that resolved to them.
//!
//! What stays different from the service: it filters at DNS (a denied name is answered
//! REFUSED), here at the proxy (403 with the reason); programs that ignore the proxy variables
//! have no network at all here. Connections the credential proxy makes reach a sprite through
//! the tunnel relay on the sprite's own loopback and the exec stream, never through here.

pub mod forward;
pub mod rules;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use forward::HostMap;
use rules::Rules;

/// The most remembered addresses that allowed names resolved to (per sprite).
const MAX_RESOLVED: usize = 4096;

/// A sprite's egress state: its compiled policy (watched by open connections) and the addresses
/// its allowed names resolved to.
#[derive(Debug)]
pub struct SpriteEgress {
    rules: watch::Sender<Arc<Rules>>,
    resolved: Mutex<HashSet<IpAddr>>,
}

impl SpriteEgress {
    /// State for a sprite whose stored policy is `policy`.
    pub fn new(policy: &serde_json::Value) -> SpriteEgress {
        SpriteEgress {
            rules: watch::Sender::new(Arc::new(Rules::compile(policy))),
            resolved: Mutex::new(HashSet::new()),
        }
    }

    /// Applies a new stored policy: new connections follow it, open ones it denies are dropped.
    pub fn set_policy(&self, policy: &serde_json::Value) {
        self.rules.send_replace(Arc::new(Rules::compile(policy)));
    }

    /// A receiver of the current rules and their changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Rules>> {
        self.rules.subscribe()
    }

    /// Whether an allowed name resolved to `ip`.
    pub fn was_resolved(&self, ip: IpAddr) -> bool {
        self.resolved.lock().is_ok_and(|g| g.contains(&ip))
    }

    /// Remembers addresses an allowed name resolved to.
    pub fn remember_resolved(&self, ips: impl Iterator<Item = IpAddr>) {
        if let Ok(mut g) = self.resolved.lock() {
            if g.len() > MAX_RESOLVED {
                g.clear();
            }
            g.extend(ips);
        }
    }
}

/// How egress is set up for every sprite (from the flags).
#[derive(Debug, Clone)]
pub struct EgressConfig {
    /// The proxy's port on each sprite's loopback; 0 turns egress off.
    pub port: u16,
    /// `--egress-host` mappings.
    pub hosts: Arc<HostMap>,
}

impl EgressConfig {
    /// The variables every exec's default environment gets (none when egress is off).
    pub fn env(&self) -> Vec<(String, String)> {
        if self.port == 0 {
            return Vec::new();
        }
        let url = format!("http://127.0.0.1:{}", self.port);
        let mut v: Vec<(String, String)> =
            ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"]
                .iter()
                .map(|k| ((*k).to_owned(), url.clone()))
                .collect();
        for k in ["NO_PROXY", "no_proxy"] {
            v.push((k.to_owned(), "localhost,127.0.0.1,::1".to_owned()));
        }
        v
    }
}

/// The proxy of one awake sprite; dropping it stops accepting (open connections finish).
#[derive(Debug)]
pub struct Running {
    task: tokio::task::AbortHandle,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the egress proxy inside the network namespace of the sprite whose init is
/// `init_pid`; `None` when egress is off.
pub async fn start(
    cfg: &EgressConfig,
    eg: Arc<SpriteEgress>,
    init_pid: i32,
    helper_pid: Option<i32>,
    urls: tokio::sync::mpsc::UnboundedSender<crate::sprite_url::UrlConn>,
) -> Result<Option<Running>, String> {
    if cfg.port == 0 {
        return Ok(None);
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], cfg.port));
    let std_listener = tokio::task::spawn_blocking(move || {
        crate::sandbox::listen_in_netns(init_pid, helper_pid, addr)
    })
    .await
    .map_err(|e| format!("egress listener task: {e}"))?
    .map_err(|e| format!("cannot listen on {addr} inside the sprite: {e}"))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| format!("egress listener: {e}"))?;
    let listener = tokio::net::TcpListener::from_std(std_listener)
        .map_err(|e| format!("egress listener: {e}"))?;
    let hosts = Arc::clone(&cfg.hosts);
    let task = tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                // Out of descriptors or the like: do not spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let _ = client.set_nodelay(true);
            tokio::spawn(forward::serve(
                client,
                Arc::clone(&eg),
                Arc::clone(&hosts),
                urls.clone(),
            ));
        }
    });
    Ok(Some(Running {
        task: task.abort_handle(),
    }))
}
