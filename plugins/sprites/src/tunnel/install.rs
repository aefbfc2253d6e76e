//! Putting the relay into the sprite: `/.sprite/bin/clauderon-relay` (mode 0755) through the fs
//! API, skipped when the checksum file beside it already names the same SHA-256. The binary is
//! written under a temporary name and renamed into place, so a relay still running from the old
//! file is not disturbed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use clauderon_plugin_sdk::{ErrorKind, PluginError};
use sha2::{Digest, Sha256};

use crate::backend::errors::ctx as err_ctx;
use crate::client::{SpriteHandle, WriteOptions};

/// Where the relay lives inside every sprite.
pub const REMOTE_PATH: &str = "/.sprite/bin/clauderon-relay";
/// The checksum written beside it.
const REMOTE_SUM: &str = "/.sprite/bin/clauderon-relay.sha256";

/// The relay binary read from the host, with its checksum.
#[derive(Clone)]
pub struct LocalRelay {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its bytes.
    pub bytes: Bytes,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
}

impl std::fmt::Debug for LocalRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRelay")
            .field("path", &self.path)
            .field("len", &self.bytes.len())
            .field("sha256", &self.sha256)
            .finish()
    }
}

type CacheKey = (PathBuf, u64, Option<SystemTime>);

/// Reads (and hashes) the relay at `path`; the result is reused while the file is unchanged.
pub fn load(path: &Path) -> Result<Arc<LocalRelay>, PluginError> {
    static CACHE: Mutex<Option<(CacheKey, Arc<LocalRelay>)>> = Mutex::new(None);
    let io_err = |e: std::io::Error| {
        PluginError::new(
            ErrorKind::Internal,
            format!("cannot read the tunnel relay {}: {e}", path.display()),
        )
    };
    let meta = std::fs::metadata(path).map_err(io_err)?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    if let Ok(g) = CACHE.lock()
        && let Some((k, r)) = g.as_ref()
        && *k == key
    {
        return Ok(Arc::clone(r));
    }
    let bytes = std::fs::read(path).map_err(io_err)?;
    if !bytes.starts_with(b"\x7fELF") {
        return Err(PluginError::invalid_request(format!(
            "{} is not a Linux executable (no ELF header); point `relay_path` at the \
             clauderon-relay binary built by `cargo build -p clauderon-relay`",
            path.display()
        )));
    }
    let sha256 = hex(&Sha256::digest(&bytes));
    let relay = Arc::new(LocalRelay {
        path: path.to_path_buf(),
        bytes: Bytes::from(bytes),
        sha256,
    });
    if let Ok(mut g) = CACHE.lock() {
        *g = Some((key, Arc::clone(&relay)));
    }
    Ok(relay)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

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

/// Uploads the relay unless the same one is there; true when it was uploaded.
pub async fn install(sprite: &SpriteHandle, relay: &LocalRelay) -> Result<bool, PluginError> {
    if present(sprite, relay).await {
        return Ok(false);
    }
    let tmp = format!("/.sprite/bin/.clauderon-relay.{}.tmp", &relay.sha256[..12]);
    let opts = WriteOptions {
        mode: Some(0o755),
        mkdir_parents: true,
    };
    sprite
        .write_file(&tmp, relay.bytes.clone(), &opts)
        .await
        .map_err(err_ctx(&format!(
            "uploading the tunnel relay to {tmp} in sprite {}",
            sprite.name()
        )))?;
    sprite
        .rename(&tmp, REMOTE_PATH)
        .await
        .map_err(err_ctx(&format!(
            "moving the tunnel relay to {REMOTE_PATH}"
        )))?;
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
    Ok(true)
}
