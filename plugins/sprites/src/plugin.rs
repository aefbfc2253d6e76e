//! The host glue: `clauderon-sprites` as the clauderon plugin `sprites`. It describes itself
//! (config keys, the `sprites_api_key` secret, its capabilities, its workspace directory and
//! default idle time), validates its config at init and hands the operations to
//! [`crate::backend::SpritesBackend`].

use std::time::Duration;

use clauderon_plugin_sdk::{
    Capabilities, ConfigKeyBuilder, DetailsBuilder, HostContext, Plugin, PluginDetails,
    PluginError, SecretDeclBuilder,
};

use crate::backend::Settings;
pub use crate::backend::SpritesBackend;

/// How long a sprite may sit idle before it hibernates when the user sets nothing.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30 * 60);

/// The `sprites` plugin.
#[derive(Debug)]
pub struct SpritesPlugin;

fn string_key(config: &serde_json::Value, key: &str) -> Result<Option<String>, PluginError> {
    match config.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(PluginError::invalid_request(format!(
            "[sprites] {key} must be a string, found {}",
            match other {
                serde_json::Value::Bool(_) => "a boolean",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Array(_) => "an array",
                _ => "a table",
            }
        ))),
    }
}

fn int_key(
    config: &serde_json::Value,
    key: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, PluginError> {
    match config.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        // A declared default arrives as its string rendering.
        Some(v @ (serde_json::Value::Number(_) | serde_json::Value::String(_))) => {
            let n = match v {
                serde_json::Value::String(s) => s.trim().parse::<u64>().ok(),
                other => other.as_u64(),
            };
            match n {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(PluginError::invalid_request(format!(
                    "[sprites] {key} must be a whole number from {min} to {max}, found {v}"
                ))),
            }
        }
        Some(_) => Err(PluginError::invalid_request(format!(
            "[sprites] {key} must be a whole number from {min} to {max}"
        ))),
    }
}

impl Plugin for SpritesPlugin {
    const NAME: &'static str = "sprites";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Sprites (sprites.dev): persistent Linux VMs that hibernate when idle";
    const CAPABILITIES: Capabilities = Capabilities::LIFECYCLE
        .union(Capabilities::HIBERNATE)
        .union(Capabilities::EXEC)
        .union(Capabilities::ATTACH)
        .union(Capabilities::REMOTE_CLONE)
        .union(Capabilities::CHECKPOINT)
        .union(Capabilities::CHECK_AUTH)
        .union(Capabilities::LIST)
        .union(Capabilities::TUNNEL)
        .union(Capabilities::CACHE)
        .union(Capabilities::SYNC_STREAM);

    type Backend = SpritesBackend;

    fn details() -> PluginDetails {
        DetailsBuilder::new()
            .config_key(
                ConfigKeyBuilder::new("api_url", "string", "Base URL of the Sprites API")
                    .with_default(crate::client::DEFAULT_BASE_URL),
            )
            .config_key(ConfigKeyBuilder::new(
                "api_key",
                "string",
                "Sprites API token (prefer the sprites_api_key secret)",
            ))
            .config_key(
                ConfigKeyBuilder::new(
                    "hibernate_wait_seconds",
                    "integer",
                    "How long `hibernate` waits for the sprite to go to sleep",
                )
                .with_default("45"),
            )
            .config_key(
                ConfigKeyBuilder::new(
                    "reconnect_attempts",
                    "integer",
                    "Reconnect attempts when an attach socket drops",
                )
                .with_default("5"),
            )
            .config_key(ConfigKeyBuilder::new(
                "relay_path",
                "string",
                "A statically linked clauderon-relay binary to upload into sprites for tunnels \
                 instead of the one built into the plugin",
            ))
            .config_key(ConfigKeyBuilder::new(
                "clone_depth",
                "integer",
                "History depth of the clone from the origin inside each sprite \
                 (unset: the full history; a bundle always carries it all)",
            ))
            .config_key(
                ConfigKeyBuilder::new(
                    clauderon_plugin_sdk::labels::config_keys::SYNC,
                    "boolean",
                    "Give every session a local worktree kept in two-way sync with its sprite \
                     (`clauderon create --sync/--no-sync` decides per session)",
                )
                .with_default("false"),
            )
            .config_key(ConfigKeyBuilder::new(
                clauderon_plugin_sdk::labels::config_keys::SYNC_IGNORE,
                "array",
                "Extra gitignore-style patterns the two-way sync leaves on each side",
            ))
            .secret(
                SecretDeclBuilder::new(
                    "sprites_api_key",
                    "Sprites API token (sprites.dev account settings)",
                )
                .with_env("SPRITES_API_KEY")
                .with_config_key("api_key"),
            )
            .workspace(crate::backend::DEFAULT_WORKSPACE)
            .default_idle(DEFAULT_IDLE)
            .build()
    }

    fn init(host: HostContext, config: serde_json::Value) -> Result<SpritesBackend, PluginError> {
        let api_url = string_key(&config, "api_url")?
            .unwrap_or_else(|| crate::client::DEFAULT_BASE_URL.into());
        if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
            return Err(PluginError::invalid_request(format!(
                "[sprites] api_url `{api_url}` must start with http:// or https://"
            )));
        }
        string_key(&config, "api_key")?;
        let hibernate_wait = int_key(&config, "hibernate_wait_seconds", 0, 3600)?.unwrap_or(45);
        let reconnect_attempts = int_key(&config, "reconnect_attempts", 0, 100)?.unwrap_or(5);
        let clone_depth = int_key(&config, "clone_depth", 1, 1_000_000)?
            .map(|d| u32::try_from(d).unwrap_or(u32::MAX));
        let relay_path = match string_key(&config, "relay_path")? {
            Some(p) if p.trim().is_empty() => None,
            Some(p) if !std::path::Path::new(&p).is_absolute() => {
                return Err(PluginError::invalid_request(format!(
                    "[sprites] relay_path `{p}` must be an absolute path to the clauderon-relay binary"
                )));
            }
            Some(p) => Some(std::path::PathBuf::from(p)),
            None => None,
        };
        Ok(SpritesBackend::new(
            Settings {
                api_url,
                hibernate_wait: Duration::from_secs(hibernate_wait),
                stop_grace: Duration::from_secs(5),
                reconnect_attempts: u32::try_from(reconnect_attempts).unwrap_or(5),
                relay_path,
                clone_depth,
            },
            host,
        ))
    }
}

#[cfg(feature = "export")]
clauderon_plugin_sdk::export_plugin!(SpritesPlugin);
