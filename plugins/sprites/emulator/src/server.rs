//! Binding, announcing the address, and serving.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;

use crate::app::App;
use crate::cli::Config;

/// Runs the emulator until the process is killed.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr().context("local address")?;
    let app = Arc::new(App::new(cfg)?);
    tokio::spawn(crate::sprite_url::run(Arc::clone(&app)));
    if !app.sandboxed {
        eprintln!(
            "sprites-emulator: WARNING: sprites are NOT isolated ({}); processes run on the host \
             with /home/sprite, /tmp and /.sprite mapped into each sprite's directory",
            app.sandbox_note
        );
    }
    if !app.sandboxed {
        eprintln!(
            "sprites-emulator: WARNING: network policies are stored but NOT enforced: without \
             namespaces sprites use the host's network directly"
        );
    }
    if let crate::limits::CpuControl::Off(why) = app.limits.cpu() {
        eprintln!(
            "sprites-emulator: WARNING: sprite CPU limits (config.cpus) are NOT enforced here \
             ({why}); memory limits (config.ram_mb) are, as RLIMIT_DATA per process"
        );
    }
    app.spawn_ticker();
    // The first stdout line is the contract with whoever started us.
    let mut out = std::io::stdout().lock();
    writeln!(out, "{addr}").context("stdout")?;
    out.flush().context("stdout")?;
    drop(out);
    // Every socket without Nagle's delay, as the real service's (Go's default): small exec
    // frames (a reply after a request) otherwise wait for the peer's delayed ACK.
    use axum::serve::ListenerExt as _;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, crate::api::router(app))
        .await
        .context("server")
}
