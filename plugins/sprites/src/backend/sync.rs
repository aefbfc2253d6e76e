//! `sync_stream`: the sprite side of the host's two-way sync. The relay binary (the same one
//! the tunnel uploads, installed only when missing) runs in its second mode,
//! `clauderon-relay sync --root DIR`, as a non-TTY exec whose stdin and stdout carry the
//! `clauderon-sync` wire protocol; the stream pumps them like any `exec`. The exec keeps the
//! default `max_run_after_disconnect` (10 s for non-TTY), so a helper whose host went away ends
//! by itself and never keeps the sprite awake; the host closes the stream after a quiet spell
//! and opens a new one on the next change.

use clauderon_plugin_sdk::stream::FrameStream;
use clauderon_plugin_sdk::{CallContext, PluginError, ops};

use super::SpritesBackend;
use super::agent::pump_exec;
use super::errors::ctx as err_ctx;
use super::state::SpriteState;
use crate::tunnel::{install, locate};

/// Where the helper keeps its hash cache for `root` between runs (beside the relay, outside
/// any workspace): a reopened stream does not hash the whole tree again.
fn stamps_file(root: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(root.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("/.sprite/clauderon/sync-{hex}.stamps")
}

/// Starts the helper on `req.root` and pumps its stdin/stdout through `stream`.
pub async fn sync_stream(
    b: &SpritesBackend,
    ctx: &CallContext,
    req: ops::SyncStreamRequest,
    stream: FrameStream,
) -> Result<ops::StreamStarted, PluginError> {
    if !req.root.starts_with('/') {
        return Err(PluginError::invalid_request(format!(
            "sync_stream needs an absolute root inside the sprite, not {:?}",
            req.root
        )));
    }
    let state = SpriteState::of(&req.instance)?;
    let local = locate::find_relay(b.settings().relay_path.as_deref())?;
    let sprite = b.sprite(&state).await?;
    let report = |msg: &str, f: f64| ctx.progress("sync", msg, Some(f));
    if install::install(&sprite, &local, &report).await?.is_some() {
        ctx.progress("sync", "installed the sync helper (clauderon-relay)", None);
    }
    let mut args = vec!["sync".to_owned(), "--root".to_owned(), req.root.clone()];
    for p in &req.exclude {
        args.push("--exclude".into());
        args.push(p.clone());
    }
    if !req.watch {
        args.push("--no-watch".into());
    }
    args.push("--stamps".into());
    args.push(stamps_file(&req.root));
    let child = sprite
        .command(install::REMOTE_PATH)
        .args(args)
        .stdin(true)
        .spawn()
        .await
        .map_err(err_ctx(&format!(
            "starting the sync helper on {} in sprite {}",
            req.root, state.sprite
        )))?;
    tokio::spawn(pump_exec(child, stream));
    Ok(ops::StreamStarted {
        instance: Some(state.instance()),
        session: None,
    })
}
