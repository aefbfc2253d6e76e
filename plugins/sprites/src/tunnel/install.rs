//! Putting the relay into the sprite: `/.sprite/bin/clauderon-relay` (mode 0755) through
//! [`upload`] (verified parts, joined under a temporary name and renamed into place, so a relay
//! still running from the old file is not disturbed), skipped when the checksum file beside it
//! already names the same SHA-256 and the size matches.

use clauderon_plugin_sdk::PluginError;

use super::locate::LocalRelay;
use crate::backend::errors::ctx as err_ctx;
use crate::backend::upload::{self, Uploaded};
use crate::client::{SpriteHandle, WriteOptions};

/// Where the relay lives inside every sprite.
pub const REMOTE_PATH: &str = "/.sprite/bin/clauderon-relay";
/// The checksum written beside it.
const REMOTE_SUM: &str = "/.sprite/bin/clauderon-relay.sha256";

/// Whether the sprite already holds this relay (checksum file and size both match).
async fn present(sprite: &SpriteHandle, relay: &LocalRelay) -> bool {
    let Ok(sum) = sprite.read_file(REMOTE_SUM).await else {
        return false;
    };
    if String::from_utf8_lossy(&sum).trim() != relay.sha256 {
        return false;
    }
    matches!(sprite.stat(REMOTE_PATH).await, Ok(Some(e)) if e.size == relay.bytes.len() as u64)
}

/// Uploads the relay unless the same one is there; what the upload did, or `None` when the
/// sprite already had it.
pub async fn install(
    sprite: &SpriteHandle,
    relay: &LocalRelay,
    progress: &(dyn Fn(&str, f64) + Send + Sync),
) -> Result<Option<Uploaded>, PluginError> {
    if present(sprite, relay).await {
        return Ok(None);
    }
    let done = upload::upload(sprite, REMOTE_PATH, &relay.bytes, 0o755, progress)
        .await
        .map_err(|mut e| {
            e.message = format!(
                "uploading the tunnel relay to {REMOTE_PATH} in sprite {}: {}",
                sprite.name(),
                e.message
            );
            e
        })?;
    // A short text file: fs/write takes it under every observed limit.
    sprite
        .write_file(
            REMOTE_SUM,
            format!("{}\n", relay.sha256),
            &WriteOptions {
                mode: Some(0o644),
                mkdir_parents: true,
            },
        )
        .await
        .map_err(err_ctx(&format!("writing {REMOTE_SUM}")))?;
    Ok(Some(done))
}
