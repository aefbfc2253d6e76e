//! The host glue: `clauderon-sprites` as the clauderon plugin `sprites`. It describes itself
//! (config keys, the `sprites_api_key` secret, its capabilities), validates its config at init
//! and hands the operations to [`crate::backend::SpritesBackend`].

use std::time::Duration;

use clauderon_plugin_api::{
    Capabilities, ConfigKey, HostContext, Plugin, PluginDetails, PluginError, SecretDecl,
};

use crate::backend::Settings;
pub use crate::backend::SpritesBackend;

/// The default Sprites API endpoint.
pub const DEFAULT_API_URL: &str = "https://api.sprites.dev";

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
        .union(Capabilities::TUNNEL);

    type Backend = SpritesBackend;

    fn details() -> PluginDetails {
        PluginDetails {
            config_keys: vec![
                ConfigKey {
                    name: "api_url".into(),
                    ty: "string".into(),
                    description: "Base URL of the Sprites API".into(),
                    default: Some(DEFAULT_API_URL.into()),
                },
                ConfigKey {
                    name: "api_key".into(),
                    ty: "string".into(),
                    description: "Sprites API token (prefer the sprites_api_key secret)".into(),
                    default: None,
                },
                ConfigKey {
                    name: "hibernation_timeout".into(),
                    ty: "duration".into(),
                    description: "Idle time before a sprite hibernates".into(),
                    default: Some("30m".into()),
                },
                ConfigKey {
                    name: "workspace".into(),
                    ty: "string".into(),
                    description: "Where the repository is cloned inside each sprite".into(),
                    default: Some(crate::backend::DEFAULT_WORKSPACE.into()),
                },
                ConfigKey {
                    name: "hibernate_wait_seconds".into(),
                    ty: "integer".into(),
                    description: "How long `hibernate` waits for the sprite to go to sleep".into(),
                    default: Some("45".into()),
                },
                ConfigKey {
                    name: "reconnect_attempts".into(),
                    ty: "integer".into(),
                    description: "Reconnect attempts when an attach socket drops".into(),
                    default: Some("5".into()),
                },
                ConfigKey {
                    name: "relay_path".into(),
                    ty: "string".into(),
                    description: "A statically linked clauderon-relay binary to upload into \
                                  sprites for tunnels instead of the one built into the plugin"
                        .into(),
                    default: None,
                },
                ConfigKey {
                    name: "clone_depth".into(),
                    ty: "integer".into(),
                    description: "History depth of the clone from the origin inside each sprite \
                                  (unset: the full history; a bundle always carries it all)"
                        .into(),
                    default: None,
                },
            ],
            secrets: vec![SecretDecl {
                name: "sprites_api_key".into(),
                env: Some("SPRITES_API_KEY".into()),
                config_key: Some("api_key".into()),
                description: "Sprites API token (sprites.dev account settings)".into(),
            }],
        }
    }

    fn init(host: HostContext, config: serde_json::Value) -> Result<SpritesBackend, PluginError> {
        let api_url = string_key(&config, "api_url")?.unwrap_or_else(|| DEFAULT_API_URL.into());
        if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
            return Err(PluginError::invalid_request(format!(
                "[sprites] api_url `{api_url}` must start with http:// or https://"
            )));
        }
        string_key(&config, "api_key")?;
        let hibernation_timeout = string_key(&config, "hibernation_timeout")?;
        if let Some(w) = string_key(&config, "workspace")?
            && !w.starts_with('/')
        {
            return Err(PluginError::invalid_request(format!(
                "[sprites] workspace `{w}` must be an absolute path inside the sprite"
            )));
        }
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
                hibernation_timeout,
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
clauderon_plugin_api::export_plugin!(SpritesPlugin);
