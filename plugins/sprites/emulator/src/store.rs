//! On-disk layout and the persisted metadata of each sprite.
//!
//! ```text
//! DATA/sprites/<name>/sprite.json      metadata (this module)
//! DATA/sprites/<name>/root/            the sprite's disk: home/sprite, tmp, .sprite
//! DATA/sprites/<name>/checkpoints/vN/  copies of root/
//! DATA/sprites/<name>/mnt/             mount point of the sandbox's new root
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A checkpoint's metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointRecord {
    /// `v0`, `v1`, ...
    pub id: String,
    /// RFC 3339, whole seconds.
    pub create_time: String,
    /// Optional comment.
    #[serde(default)]
    pub comment: String,
    /// The checkpoint the sprite was based on when this one was taken.
    #[serde(default)]
    pub source_id: Option<String>,
}

/// A sprite's persisted metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpriteRecord {
    /// `sprite-<uuid>`.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// RFC 3339 with microseconds.
    pub created_at: String,
    /// RFC 3339 with microseconds.
    pub updated_at: String,
    /// Labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// `{"auth": ..., "private_access"?: ...}`.
    pub url_settings: Value,
    /// Last time seen running.
    #[serde(default)]
    pub last_running_at: Option<String>,
    /// Last time seen warm.
    #[serde(default)]
    pub last_warming_at: Option<String>,
    /// Network policy `{"rules":[...]}`.
    pub network_policy: Value,
    /// Checkpoints, oldest first.
    #[serde(default)]
    pub checkpoints: Vec<CheckpointRecord>,
    /// The checkpoint the current filesystem derives from.
    #[serde(default)]
    pub active_checkpoint: Option<String>,
    /// Next checkpoint number.
    #[serde(default)]
    pub next_checkpoint: u64,
    /// The legacy `config` (`ram_mb`, `cpus`, ...): the limits `limits` enforces.
    #[serde(default)]
    pub config: crate::limits::SpriteConfig,
    /// The resources policy (`policy/resources`): its memory limit replaces `config.ram_mb`.
    #[serde(default)]
    pub resources: crate::limits::ResourcesPolicy,
}

/// Paths of one sprite's storage.
#[derive(Debug, Clone)]
pub struct SpritePaths {
    /// `DATA/sprites/<name>`.
    pub dir: PathBuf,
}

impl SpritePaths {
    /// Paths for `name` under `data`.
    pub fn new(data: &Path, name: &str) -> Self {
        SpritePaths {
            dir: data.join("sprites").join(name),
        }
    }
    /// The metadata file.
    pub fn meta(&self) -> PathBuf {
        self.dir.join("sprite.json")
    }
    /// The sprite's disk.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }
    /// The checkpoint store.
    pub fn checkpoints(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }
    /// The sandbox's mount point.
    pub fn mnt(&self) -> PathBuf {
        self.dir.join("mnt")
    }
}

/// Writes `record` atomically.
pub fn save(paths: &SpritePaths, record: &SpriteRecord) -> std::io::Result<()> {
    let tmp = paths.dir.join("sprite.json.tmp");
    let data = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, paths.meta())
}

/// Loads every sprite found under `data`.
pub fn load_all(data: &Path) -> std::io::Result<Vec<SpriteRecord>> {
    let dir = data.join("sprites");
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let meta = entry.path().join("sprite.json");
        let Ok(bytes) = std::fs::read(&meta) else {
            continue;
        };
        match serde_json::from_slice::<SpriteRecord>(&bytes) {
            Ok(r) => out.push(r),
            Err(e) => tracing::warn!("skipping {}: {e}", meta.display()),
        }
    }
    Ok(out)
}

/// Creates the directories of a fresh sprite disk.
pub fn init_root(root: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root.join("home/sprite"))?;
    std::fs::create_dir_all(root.join(".sprite/policy"))?;
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))?;
    Ok(())
}
