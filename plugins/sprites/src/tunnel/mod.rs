//! Tunnels (`open_tunnel`/`close_tunnel`): a port inside the sprite carried back to a host
//! address. Sprites' own TCP proxy only connects host→sprite, so the plugin uploads
//! `clauderon-relay` ([`install`]), runs it in a detachable exec session listening on
//! `127.0.0.1:<remote_port>` ([`relay::start`]) and pumps its multiplexed connections to
//! `host_addr` in a task of the plugin's runtime ([`relay::pump`]). A socket lost without an exit
//! is recovered by restarting the relay (bounded by `reconnect_attempts`); a relay that exits
//! (killed, the sprite hibernated or was restored) ends the tunnel until `open_tunnel` is called
//! again.

pub mod embedded;
pub mod install;
pub mod locate;
pub mod relay;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clauderon_plugin_sdk::ops;
use clauderon_plugin_sdk::{CallContext, ErrorKind, PluginError};

use crate::backend::SpritesBackend;
use crate::backend::errors::plugin_error;
use crate::backend::progress;
use crate::backend::state::SpriteState;
use crate::client::SpriteHandle;
use relay::{PumpEnd, StartError};

/// A running tunnel, as the registry keeps it.
struct Entry {
    sprite: SpriteHandle,
    port: u16,
    session: Arc<Mutex<Option<String>>>,
    stopped: Arc<AtomicBool>,
    task: tokio::task::AbortHandle,
}

type Registry = Mutex<HashMap<String, Entry>>;

fn registry() -> &'static Registry {
    static TUNNELS: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    TUNNELS.get_or_init(|| Mutex::new(HashMap::new()))
}

fn take_entries(pred: impl Fn(&str, &Entry) -> bool) -> Vec<Entry> {
    let Ok(mut g) = registry().lock() else {
        return Vec::new();
    };
    let ids: Vec<String> = g
        .iter()
        .filter(|(id, e)| pred(id, e))
        .map(|(id, _)| id.clone())
        .collect();
    ids.into_iter().filter_map(|id| g.remove(&id)).collect()
}

/// Stops a tunnel: no reconnects, the pump task ends, the relay's session is killed.
async fn stop(e: Entry) {
    e.stopped.store(true, Ordering::SeqCst);
    e.task.abort();
    let session = e.session.lock().ok().and_then(|mut g| g.take());
    match session {
        Some(id) => {
            let _ = e
                .sprite
                .kill_session(&id, "SIGTERM", Duration::from_secs(2))
                .await;
        }
        // The server named no session id: find the relay by its command line.
        None => {
            kill_stale(&e.sprite, e.port).await;
        }
    }
}

/// Kills relay sessions listening on `port` that this plugin does not know (left by an earlier
/// daemon): they hold the port a new relay needs.
async fn kill_stale(sprite: &SpriteHandle, port: u16) -> usize {
    let Ok(sessions) = sprite.sessions().await else {
        return 0;
    };
    let mut n = 0;
    for s in sessions {
        let cmd = s.command.unwrap_or_default();
        let ours = cmd.contains(locate::RELAY_FILE)
            && (cmd.contains(&format!(":{port}")) || !cmd.contains("--listen"));
        if ours
            && sprite
                .kill_session(&s.id, "SIGTERM", Duration::from_secs(2))
                .await
                .is_ok()
        {
            n += 1;
        }
    }
    n
}

/// Starts the relay; when its port is taken by a stale relay, ends that one and tries once more.
async fn start_relay(sprite: &SpriteHandle, port: u16) -> Result<relay::RelayProcess, PluginError> {
    let what = format!(
        "starting the tunnel relay on 127.0.0.1:{port} in sprite {}",
        sprite.name()
    );
    let first = relay::start(sprite, port).await;
    let result = match first {
        Err(StartError::PortTaken(_)) if kill_stale(sprite, port).await > 0 => {
            relay::start(sprite, port).await
        }
        other => other,
    };
    result.map_err(|e| match e {
        StartError::Client(c) => plugin_error(&what, &c),
        StartError::PortTaken(m) => PluginError::new(
            ErrorKind::Conflict,
            format!("{what}: port {port} is taken inside the sprite: {m}"),
        ),
        StartError::Failed(m) => PluginError::new(ErrorKind::Unavailable, format!("{what}: {m}")),
    })
}

/// Keeps a tunnel alive: pumps, and after a lost socket restarts the relay (bounded attempts).
async fn supervise(
    sprite: SpriteHandle,
    port: u16,
    host_addr: String,
    first: relay::RelayProcess,
    session: Arc<Mutex<Option<String>>>,
    stopped: Arc<AtomicBool>,
    attempts: u32,
) {
    let mut proc = first;
    let mut failures = 0u32;
    loop {
        let began = Instant::now();
        let end = relay::pump(proc, host_addr.clone()).await;
        if stopped.load(Ordering::SeqCst) {
            return;
        }
        let why = match end {
            PumpEnd::Exited(code) => {
                tracing::info!(
                    "tunnel relay in sprite {} exited ({code}); the tunnel is closed until it is opened again",
                    sprite.name()
                );
                return;
            }
            PumpEnd::Lost(why) => why,
        };
        if began.elapsed() > Duration::from_secs(60) {
            failures = 0;
        }
        proc = loop {
            if failures >= attempts {
                tracing::warn!(
                    "tunnel to sprite {} lost ({why}); gave up after {attempts} attempts",
                    sprite.name()
                );
                return;
            }
            failures += 1;
            let backoff = Duration::from_millis(250 * (1u64 << failures.min(4)));
            tracing::info!(
                "tunnel to sprite {} lost ({why}); restarting the relay (attempt {failures} of {attempts})",
                sprite.name()
            );
            tokio::time::sleep(backoff).await;
            if stopped.load(Ordering::SeqCst) {
                return;
            }
            // The old relay keeps the port while it runs: end it first.
            let old = session.lock().ok().and_then(|mut g| g.take());
            if let Some(id) = old {
                let _ = sprite
                    .kill_session(&id, "SIGTERM", Duration::from_secs(2))
                    .await;
            }
            match start_relay(&sprite, port).await {
                Ok(p) => {
                    if let Ok(mut g) = session.lock() {
                        g.clone_from(&p.session);
                    }
                    break p;
                }
                Err(e) => tracing::warn!("{}", e.message),
            }
        };
    }
}

fn check_request(req: &ops::OpenTunnelRequest) -> Result<(), PluginError> {
    if req.remote_port == 0 {
        return Err(PluginError::invalid_request(
            "remote_port must be a port from 1 to 65535 (the port the agent's proxy address uses)",
        ));
    }
    if req.host_addr.parse::<SocketAddr>().is_err() {
        return Err(PluginError::invalid_request(format!(
            "host_addr {:?} must be an IP address and port such as 127.0.0.1:8080",
            req.host_addr
        )));
    }
    Ok(())
}

async fn open(
    b: &SpritesBackend,
    ctx: &CallContext,
    req: ops::OpenTunnelRequest,
) -> Result<ops::OpenTunnelResponse, PluginError> {
    check_request(&req)?;
    let state = SpriteState::of(&req.instance)?;
    let local = locate::find_relay(b.settings().relay_path.as_deref())?;
    let sprite = b.sprite(&state).await?;
    let port = req.remote_port;
    // One tunnel per sprite and port: opening again (after a wake or restore) replaces it.
    let (name, api) = (
        sprite.name().to_owned(),
        sprite.client().base_url().to_owned(),
    );
    for old in take_entries(|_, e| {
        e.sprite.name() == name && e.sprite.client().base_url() == api && e.port == port
    }) {
        stop(old).await;
    }
    ctx.progress("tunnel", "installing the tunnel relay", Some(0.1));
    let report = |msg: &str, f: f64| ctx.progress("tunnel", msg, Some(0.1 + 0.4 * f));
    if let Some(done) = install::install(&sprite, &local, &report).await? {
        ctx.progress(
            "tunnel",
            &format!(
                "uploaded the tunnel relay ({} bytes, {} part(s) through {}) to {}",
                local.bytes.len(),
                done.parts,
                done.transport,
                install::REMOTE_PATH
            ),
            Some(0.5),
        );
    }
    ctx.progress(
        "tunnel",
        &format!(
            "starting the relay on 127.0.0.1:{port} (to {})",
            req.host_addr
        ),
        Some(0.6),
    );
    let proc = start_relay(&sprite, port).await?;
    static N: AtomicU64 = AtomicU64::new(1);
    let tunnel_id = format!("tunnel-{port}-{}", N.fetch_add(1, Ordering::SeqCst));
    let session = Arc::new(Mutex::new(proc.session.clone()));
    let stopped = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn({
        let (sprite, session, stopped) = (sprite.clone(), session.clone(), stopped.clone());
        let attempts = b.settings().reconnect_attempts;
        let host_addr = req.host_addr.clone();
        let id = tunnel_id.clone();
        async move {
            supervise(sprite, port, host_addr, proc, session, stopped, attempts).await;
            // Ended on its own: forget it (a `stop` already removed it otherwise).
            take_entries(|tid, _| tid == id);
        }
    });
    if let Ok(mut g) = registry().lock() {
        g.insert(
            tunnel_id.clone(),
            Entry {
                sprite,
                port,
                session,
                stopped,
                task: task.abort_handle(),
            },
        );
    }
    ctx.progress("tunnel", "tunnel open", Some(1.0));
    Ok(ops::OpenTunnelResponse {
        instance: state.instance(),
        tunnel_id,
    })
}

async fn close(
    b: &SpritesBackend,
    req: ops::CloseTunnelRequest,
) -> Result<ops::InstanceResponse, PluginError> {
    let state = SpriteState::of(&req.instance)?;
    let found = take_entries(|id, _| id == req.tunnel_id);
    if found.is_empty() {
        // Not ours (e.g. opened before a daemon restart): end a relay on that port if one runs.
        let port = req
            .tunnel_id
            .strip_prefix("tunnel-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(|| {
                PluginError::new(
                    ErrorKind::NotFound,
                    format!(
                        "no tunnel {:?}; use the tunnel_id open_tunnel returned",
                        req.tunnel_id
                    ),
                )
            })?;
        let sprite = b.sprite(&state).await?;
        kill_stale(&sprite, port).await;
    }
    for e in found {
        stop(e).await;
    }
    Ok(ops::InstanceResponse {
        instance: state.instance(),
    })
}

/// `open_tunnel`: relay `127.0.0.1:<remote_port>` inside the sprite to `host_addr`.
pub async fn open_tunnel(
    backend: &SpritesBackend,
    ctx: CallContext,
    req: ops::OpenTunnelRequest,
) -> Result<ops::OpenTunnelResponse, PluginError> {
    progress::with_sink(&ctx, "tunnel", open(backend, &ctx, req)).await
}

/// `close_tunnel`: stop the pump and kill the relay's exec session.
pub async fn close_tunnel(
    backend: &SpritesBackend,
    ctx: CallContext,
    req: ops::CloseTunnelRequest,
) -> Result<ops::InstanceResponse, PluginError> {
    progress::with_sink(&ctx, "tunnel", close(backend, req)).await
}
