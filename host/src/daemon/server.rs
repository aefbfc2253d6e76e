//! `clauderon daemon` in the foreground: take the home's lock, load config, plugins and the
//! store, start the credential proxy (`[proxy] listen`), reconcile, bind `[server] listen`,
//! write `daemon.json`, serve until SIGINT/SIGTERM, then detach every agent (they keep
//! running), stop the proxy and remove `daemon.json`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::App;
use crate::installation::InstallationId;
use crate::store::Store;

use super::api::{self, AppState};
use super::bus::Recorder;
use super::engine::idle::{IDLE_ENV, parse_idle};
use super::engine::proxy_link::SessionProxy;
use super::engine::{Backends, Engine};
use super::files::{self, DaemonLock};
use super::guard::GuardConfig;
use crate::api::DaemonInfo;

/// How long open streams get to finish once a stop signal arrived.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Runs the daemon in the foreground until SIGINT or SIGTERM; `backend`: the default backend
/// chosen on the command line, if any.
pub async fn run(ctx: &App, backend: Option<String>) -> anyhow::Result<ExitCode> {
    let home = ctx.home().clone();
    home.ensure()?;
    let _lock = DaemonLock::acquire(&home)?;
    let config = ctx.config()?.clone();
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    let registry = ctx.registry()?;
    let default_backend = backend.or_else(|| config.default_backend().map(str::to_owned));
    let backends = Backends::load(registry, default_backend);
    for r in backends.reports() {
        match &r.reason {
            None => tracing::info!(plugin = %r.name, "backend plugin loaded"),
            Some(why) => tracing::warn!(plugin = %r.name, "backend plugin not usable: {why}"),
        }
    }
    // `GET /api/credentials` lists every secret a loaded plugin declares.
    let mut resolver = ctx.secrets()?;
    for (name, client) in backends.loaded() {
        if let Ok(schema) = crate::plugins::schema_from_details(&client.info().details) {
            resolver.declare(name, &schema);
        }
    }
    let token = files::load_or_create_token(&home)?;
    let store = Store::open(&home.db_file()).await?;
    let default_idle = match std::env::var(IDLE_ENV) {
        Ok(v) => parse_idle(&v).map_err(|e| anyhow::anyhow!("{IDLE_ENV}: {e}"))?,
        Err(_) => None,
    };
    let clock = match std::env::var(crate::cache::gc::CLOCK_ENV) {
        Ok(v) => {
            crate::cache::Clock::shifted(humantime::parse_duration(v.trim()).map_err(|e| {
                anyhow::anyhow!(
                    "{}: `{v}` is not a duration: {e}",
                    crate::cache::gc::CLOCK_ENV
                )
            })?)
        }
        Err(_) => crate::cache::Clock::default(),
    };
    let installation = InstallationId::load_or_create(&home)?;
    let engine = Engine::new(
        Recorder::new(store, config.sessions.retention),
        backends,
        config.clone(),
        default_idle,
        installation,
        clock,
    )
    .await?;
    // The credential proxy runs for the daemon's life; sessions get their access from it.
    let proxy = SessionProxy::start(&home, config.proxy.listen, resolver.clone())
        .await
        .with_context(|| {
            format!(
                "cannot start the credential proxy (check [proxy] listen in {} and {})",
                home.config_file().display(),
                home.proxy_file().display()
            )
        })?;
    let proxy_addr = proxy.addr();
    tracing::info!(%proxy_addr, "credential proxy listening");
    engine.listen_agent_reports(proxy.proxy().agent_reports());
    engine.set_proxy(proxy);
    engine.restore_proxy_sessions().await;

    let listen = config.server.listen;
    let listener = TcpListener::bind(listen).await.with_context(|| {
        format!(
            "cannot listen on {listen}: is another daemon running? Change [server] listen in {}",
            home.config_file().display()
        )
    })?;
    let addr: SocketAddr = listener.local_addr()?;
    engine.reconcile().await?;
    engine.spawn_cache_collector();

    let (stop_tx, stop_rx) = watch::channel(false);
    spawn_forget_deleted_events(engine.recorder().clone(), stop_rx.clone());
    let state = AppState {
        engine: Arc::clone(&engine),
        resolver: Arc::new(resolver),
        shutdown: stop_rx.clone(),
    };
    let app = api::router(
        state,
        GuardConfig {
            token: Arc::from(token.as_str()),
            port: addr.port(),
        },
    );
    files::write_info(
        &home,
        &DaemonInfo {
            pid: std::process::id(),
            addr,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            proxy_addr: Some(proxy_addr),
        },
    )?;
    tracing::info!(%addr, "clauderon daemon listening");

    let mut signal_rx = stop_rx.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = signal_rx.wait_for(|s| *s).await;
    });
    let server = tokio::spawn(async move { server.await });
    let signal = stop_signal().await;
    tracing::info!("received {signal}; stopping");
    let _ = stop_tx.send(true);
    let mut server = server;
    if tokio::time::timeout(STOP_GRACE, &mut server).await.is_err() {
        server.abort();
    }
    engine.shutdown().await;
    if let Some(p) = engine.credential_proxy() {
        p.stop().await;
    }
    files::remove_info(&home);
    tracing::info!("clauderon daemon stopped");
    Ok(ExitCode::SUCCESS)
}

async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without signal handlers only Ctrl-C through tokio is left.
        let _ = tokio::signal::ctrl_c().await;
        return "Ctrl-C";
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// How often the daemon drops the events of sessions deleted longer ago than the retention
/// time (also once at start).
const FORGET_DELETED_EVERY: Duration = Duration::from_secs(3600);

/// Drops long-deleted sessions' events at start and every [`FORGET_DELETED_EVERY`] until the
/// daemon stops.
fn spawn_forget_deleted_events(recorder: Recorder, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FORGET_DELETED_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let r = *recorder.retention();
            let now = time::OffsetDateTime::now_utc();
            match recorder
                .store()
                .run(move |db| db.forget_deleted_events(&r, now))
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "dropped the events of long-deleted sessions"),
                Err(e) => tracing::warn!("dropping the events of deleted sessions: {e}"),
            }
        }
    });
}
