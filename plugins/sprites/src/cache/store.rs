//! Cache stores on Sprites: one long-lived cache sprite per project and scope, named after
//! the store's key and labelled `clauderon=1` + `clauderon.cache=<key>` (never
//! `clauderon.session`), so reconcile knows it is no session's sandbox. Inside it every entry
//! is a directory `entries/<key>/` holding `archive.tgz` and `meta.json`.

use clauderon_plugin_sdk::labels::CACHE;
use clauderon_plugin_sdk::ops::Instance;
use clauderon_plugin_sdk::{CallContext, ErrorKind, PluginError};
use serde::{Deserialize, Serialize};

use crate::backend::SpritesBackend;
use crate::backend::errors::{ctx as err_ctx, plugin_error};
use crate::backend::names;
use crate::backend::state::{STATE_VERSION, SpriteState};
use crate::client::{CreateSprite, SpriteHandle};

/// The directory of a cache sprite holding its entries, incoming saves and lock.
pub const ROOT: &str = "/home/sprite/clauderon-cache";

/// The prefix of every cache sprite's name.
pub const NAME_PREFIX: &str = "clauderon-cache-";

/// The longest entry key accepted.
const MAX_KEY: usize = 200;

/// What a cache sprite keeps beside an entry's archive (`meta.json`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EntryMeta {
    /// The entry's key.
    pub key: String,
    /// The archive's size in bytes.
    pub size: u64,
    /// The archive's SHA-256 (hex).
    pub sha256: String,
    /// The absolute paths the archive holds (relative to `/` inside it).
    #[serde(default)]
    pub paths: Vec<String>,
    /// How the archive is compressed (`zstd` or `gzip`; empty in no entry this plugin wrote).
    #[serde(default)]
    pub compression: String,
    /// When it was saved (RFC 3339).
    #[serde(default)]
    pub created_at: String,
    /// The entry this one is a layer over (its archive holds only what changed since that
    /// entry was restored or saved); `None`: a whole archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The SHA-256 of the base's archive when this layer was made: a base saved again since
    /// (the last complete save of a key wins) is not what this layer lies on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_sha256: Option<String>,
    /// How many layers lie under this entry's archive (0: a whole archive).
    #[serde(default)]
    pub depth: u32,
    /// The bytes of the layer archives from the chain's whole archive up to this entry, this
    /// one included (0: a whole archive, or an entry written before this was recorded).
    #[serde(default)]
    pub layers_size: u64,
    /// The size of the whole archive at the bottom of this entry's chain (0: not recorded;
    /// for a whole archive, its `size`).
    #[serde(default)]
    pub whole_size: u64,
}

impl EntryMeta {
    /// Whether a save can be a layer over this entry: fewer than [`super::MAX_LAYERS`] lie
    /// under it, and the layers so far hold less than half the bytes of the whole archive
    /// beneath them (past that, a restore of the chain would move far more than one whole
    /// archive of the same paths, so the next save is whole again).
    pub fn takes_a_layer(&self) -> bool {
        self.depth < super::MAX_LAYERS && self.layers_size.saturating_mul(2) < self.whole()
    }

    /// The size of the whole archive at the bottom of this entry's chain (its own size where
    /// that was not recorded).
    pub fn whole(&self) -> u64 {
        if self.whole_size > 0 {
            self.whole_size
        } else {
            self.size
        }
    }

    /// The program that decompresses the archive.
    pub fn decompressor(&self) -> &'static str {
        if self.compression == "zstd" {
            "zstd"
        } else {
            "gzip"
        }
    }
}

/// Whether `key` is a valid entry key: `[A-Za-z0-9._-]`, 1 to 200 characters, not starting
/// with a dot (it names a directory in the cache sprite).
pub fn check_key(key: &str) -> Result<(), PluginError> {
    let ok = !key.is_empty()
        && key.len() <= MAX_KEY
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(PluginError::invalid_request(format!(
            "cache key {key:?} must be 1 to {MAX_KEY} characters of A-Z, a-z, 0-9, `.`, `_`, `-`, \
             not starting with `.`"
        )))
    }
}

/// Whether `key` is a valid store key (`[a-z0-9-]`, 1 to 40 characters): it is part of the
/// cache sprite's name.
pub fn check_store_key(key: &str) -> Result<(), PluginError> {
    let ok = !key.is_empty()
        && key.len() <= 40
        && !key.starts_with('-')
        && !key.ends_with('-')
        && key
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(PluginError::invalid_request(format!(
            "cache store key {key:?} must be 1 to 40 characters of a-z, 0-9 and `-`"
        )))
    }
}

/// The name of the cache sprite of store `key`.
pub fn sprite_name(key: &str) -> String {
    format!("{NAME_PREFIX}{key}")
}

/// The directory of entry `key` in a cache sprite.
pub fn entry_dir(key: &str) -> String {
    format!("{ROOT}/entries/{key}")
}

/// A cache store as this plugin sees it: the sprite and the state the host keeps.
#[derive(Debug, Clone)]
pub struct Store {
    /// The cache sprite.
    pub sprite: SpriteHandle,
    /// Its instance state.
    pub state: SpriteState,
}

impl Store {
    /// The instance the host keeps for this store.
    pub fn instance(&self) -> Instance {
        self.state.instance()
    }
}

/// The store of an instance the host kept (not checked against the service).
pub async fn known(b: &SpritesBackend, store: &Instance) -> Result<Store, PluginError> {
    let state = SpriteState::of(store)?;
    let sprite = b.sprite(&state).await?;
    Ok(Store { sprite, state })
}

/// The store for a save: the one the host kept when its sprite still exists, else the cache
/// sprite of `store_key` (adopted when it carries our labels, created when there is none).
pub async fn ensure(
    b: &SpritesBackend,
    ctx: &CallContext,
    kept: Option<&Instance>,
    store_key: Option<&str>,
    extra: &std::collections::BTreeMap<String, String>,
) -> Result<Store, PluginError> {
    let client = b.client().await?;
    if let Some(inst) = kept {
        let state = SpriteState::of(inst)?;
        let found = client.find(&state.sprite).await.map_err(err_ctx(&format!(
            "looking up cache sprite {}",
            state.sprite
        )))?;
        if found.is_some() {
            return Ok(Store {
                sprite: client.sprite(state.sprite.clone()),
                state,
            });
        }
        ctx.progress(
            "cache",
            &format!("cache sprite {} is gone; making a new one", state.sprite),
            None,
        );
    }
    let key = store_key.ok_or_else(|| {
        PluginError::invalid_request("cache_save needs store_key when it names no existing store")
    })?;
    check_store_key(key)?;
    let name = sprite_name(key);
    let mut wanted = extra.clone();
    wanted.insert(CACHE.to_owned(), key.to_owned());
    let labels = names::labels(&wanted, "");
    let sprite = match client
        .find(&name)
        .await
        .map_err(err_ctx(&format!("looking up cache sprite {name}")))?
    {
        Some(s)
            if names::parse_labels(&s.labels)
                .get(CACHE)
                .map(String::as_str)
                == Some(key) =>
        {
            s
        }
        Some(_) => {
            return Err(PluginError::new(
                ErrorKind::Conflict,
                format!(
                    "a sprite named {name} exists but is not the cache sprite of store {key} \
                     (its labels differ); rename or delete it"
                ),
            ));
        }
        None => {
            ctx.progress("cache", &format!("creating cache sprite {name}"), None);
            let mut body = CreateSprite::new(name.clone());
            body.labels = labels.clone();
            match client.create(&body).await {
                Ok(s) => s,
                // Made meanwhile by another save of the same store: adopt it.
                Err(e) if e.is_conflict() => match client.find(&name).await {
                    Ok(Some(s)) => s,
                    _ => return Err(plugin_error(&format!("creating cache sprite {name}"), &e)),
                },
                Err(e) => return Err(plugin_error(&format!("creating cache sprite {name}"), &e)),
            }
        }
    };
    let state = SpriteState {
        v: STATE_VERSION,
        sprite: name.clone(),
        sprite_id: (!sprite.id.is_empty()).then(|| sprite.id.clone()),
        labels: sprite.labels.clone(),
        ..SpriteState::default()
    };
    Ok(Store {
        sprite: client.sprite(name),
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_takes_layers_until_its_depth_or_half_its_whole_bytes() {
        let whole = EntryMeta {
            size: 1000,
            whole_size: 1000,
            ..EntryMeta::default()
        };
        assert!(whole.takes_a_layer());
        let small = EntryMeta {
            size: 100,
            depth: 1,
            layers_size: 100,
            whole_size: 1000,
            ..EntryMeta::default()
        };
        assert!(small.takes_a_layer());
        // Layers holding half the whole's bytes: the next save is whole.
        let heavy = EntryMeta {
            layers_size: 500,
            ..small.clone()
        };
        assert!(!heavy.takes_a_layer());
        let deep = EntryMeta {
            depth: crate::cache::MAX_LAYERS,
            ..small.clone()
        };
        assert!(!deep.takes_a_layer());
        // Written before sizes were recorded: a whole archive's own size stands in.
        let old = EntryMeta {
            size: 1000,
            ..EntryMeta::default()
        };
        assert!(old.takes_a_layer());
    }

    #[test]
    fn keys_are_checked() {
        for ok in [
            "cargo-1a2b-x86_64-unknown-linux-gnu-9f8e",
            "npm-0",
            "A.b_c-d",
        ] {
            check_key(ok).unwrap();
        }
        for bad in ["", ".hidden", "a/b", "a b", "../x", &"k".repeat(201)] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        check_store_key("p-0123456789abcdef").unwrap();
        for bad in ["", "P-1", "-a", "a-", "a_b", &"a".repeat(41)] {
            assert!(check_store_key(bad).is_err(), "{bad:?}");
        }
        assert_eq!(sprite_name("p-1"), "clauderon-cache-p-1");
    }
}
