//! What a plugin declares about itself beyond name and version, as the info's `details_json`:
//! its config keys, the secrets it may ask for, and facts about its sandboxes the host needs
//! (the workspace directory, the default idle time before hibernation).
//!
//! Every field added after 1.0 is optional and serde-defaulted, so details from older plugins
//! parse.
//! The types are `#[non_exhaustive]`: authors build them with the SDK's builders, so a field
//! added here never breaks a plugin's source.

use serde::{Deserialize, Serialize};

/// A configuration key the plugin reads from its own `[<name>]` table in config.toml (the
/// host's `[plugins.<name>]` table only says where to load the plugin from).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConfigKey {
    /// The key.
    pub name: String,
    /// Its type (`string`, `integer`, `boolean`, `duration`, `url`, `path`).
    #[serde(rename = "type")]
    pub ty: String,
    /// What it does.
    pub description: String,
    /// Its default, rendered as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// A secret the plugin may ask the host for. A plugin can only read secrets it declares.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SecretDecl {
    /// The secret's name (`sprites_api_key`).
    pub name: String,
    /// An environment variable that may hold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A key of the plugin's config table that may hold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_key: Option<String>,
    /// What it is for.
    pub description: String,
}

/// What a plugin declares beyond name and version. Serialized as the info's `details_json`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PluginDetails {
    /// Config keys.
    #[serde(default)]
    pub config_keys: Vec<ConfigKey>,
    /// Secrets.
    #[serde(default)]
    pub secrets: Vec<SecretDecl>,
    /// Since 1.1: the absolute directory inside each sandbox where the repository is cloned
    /// and the agent runs; `None` when the plugin does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Since 1.1: how long a session may sit idle before it hibernates when the user sets
    /// nothing, in seconds; `None` when the plugin does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_idle_seconds: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_ignored_and_missing_ones_default() {
        let d: PluginDetails = serde_json::from_str(
            r#"{"config_keys":[{"name":"k","type":"string","description":"d"}],
                "secrets":[{"name":"s","description":"t"}],"from_the_future":1}"#,
        )
        .unwrap();
        assert_eq!(d.config_keys[0].ty, "string");
        assert_eq!(d.secrets[0].env, None);
        assert_eq!((d.workspace, d.default_idle_seconds), (None, None));
    }

    #[test]
    fn backend_facts_round_trip_and_are_left_out_when_unset() {
        let d = PluginDetails {
            workspace: Some("/home/x/workspace".into()),
            default_idle_seconds: Some(1800),
            ..PluginDetails::default()
        };
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["workspace"], "/home/x/workspace");
        assert_eq!(json["default_idle_seconds"], 1800);
        let back: PluginDetails = serde_json::from_value(json).unwrap();
        assert_eq!(back, d);
        // What a 1.0 host parses: exactly the 1.0 fields when nothing new is declared.
        let empty = serde_json::to_value(PluginDetails::default()).unwrap();
        assert_eq!(empty, serde_json::json!({"config_keys": [], "secrets": []}));
    }
}
