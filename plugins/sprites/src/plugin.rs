//! The host glue: `clauderon-sprites` as the clauderon plugin `sprites`. It describes itself
//! (config keys, the `sprites_api_key` secret) and validates its config at init; the backend
//! operations arrive with the Sprites client.

use clauderon_plugin_api::{
    Backend, Capabilities, ConfigKey, HostContext, Plugin, PluginDetails, PluginError, SecretDecl,
};

/// The default Sprites API endpoint.
pub const DEFAULT_API_URL: &str = "https://api.sprites.dev";

/// The `sprites` plugin.
#[derive(Debug)]
pub struct SpritesPlugin;

/// The Sprites backend created by `init`.
#[derive(Debug)]
pub struct SpritesBackend {
    /// The API base URL.
    pub api_url: String,
    /// Idle time before a sprite hibernates, as configured (`hibernation_timeout`).
    pub hibernation_timeout: Option<String>,
    #[allow(dead_code)]
    host: HostContext,
}

impl Backend for SpritesBackend {}

fn string_key(config: &serde_json::Value, key: &str) -> Result<Option<String>, PluginError> {
    match config.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(PluginError::invalid_request(format!(
            "[plugins.sprites] {key} must be a string, found {}",
            match other {
                serde_json::Value::Bool(_) => "a boolean",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Array(_) => "an array",
                _ => "a table",
            }
        ))),
    }
}

impl Plugin for SpritesPlugin {
    const NAME: &'static str = "sprites";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Sprites (sprites.dev): persistent Linux VMs that hibernate when idle";
    const CAPABILITIES: Capabilities = Capabilities::empty();

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
                "[plugins.sprites] api_url `{api_url}` must start with http:// or https://"
            )));
        }
        string_key(&config, "api_key")?;
        let hibernation_timeout = string_key(&config, "hibernation_timeout")?;
        Ok(SpritesBackend {
            api_url,
            hibernation_timeout,
            host,
        })
    }
}

#[cfg(feature = "export")]
clauderon_plugin_api::export_plugin!(SpritesPlugin);
