//! What each plugin's `init` receives as config: its top-level `[<backend>]` table from
//! config.toml, checked against the schema the plugin declares in its details.
//!
//! The schema is only known once the library is open, so the check runs at load time (first
//! use); a bad table makes that plugin `failed` with the file:line:column message.

use std::collections::BTreeMap;
use std::sync::Arc;

use clauderon_plugin_api::PluginDetails;

use crate::config::{BackendSchema, Config};

/// Where the host finds the config JSON handed to a plugin's `init`.
pub trait PluginConfigSource: Send + Sync {
    /// The config for `plugin` given what it declares; `Err` is a message a user can act on
    /// (for config.toml: `file:line:column: key: what is wrong`).
    fn config_for(
        &self,
        plugin: &str,
        details: &PluginDetails,
    ) -> Result<serde_json::Value, String>;
}

/// Fixed tables per plugin name, handed over unchecked (tests, benches, the default setup).
impl PluginConfigSource for BTreeMap<String, serde_json::Value> {
    fn config_for(
        &self,
        plugin: &str,
        _details: &PluginDetails,
    ) -> Result<serde_json::Value, String> {
        Ok(self
            .get(plugin)
            .cloned()
            .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new())))
    }
}

/// Backend tables from a loaded [`Config`], validated with [`Config::backend_config`]: defaults
/// filled in, secret keys removed, unknown keys and wrong types refused with their location.
#[derive(Debug, Clone)]
pub struct ConfigTables {
    config: Arc<Config>,
}

impl ConfigTables {
    /// Tables from `config`.
    pub fn new(config: Arc<Config>) -> Self {
        Self { config }
    }
}

impl PluginConfigSource for ConfigTables {
    fn config_for(
        &self,
        plugin: &str,
        details: &PluginDetails,
    ) -> Result<serde_json::Value, String> {
        let schema = schema_from_details(details).map_err(|e| e.to_string())?;
        self.config
            .backend_config(plugin, &schema)
            .map_err(|e| e.to_string())
    }
}

/// The host's view of a plugin's declared config keys and secrets.
///
/// The SDK renders every default as a string and allows types beyond the host's list; this maps
/// them: `duration`, `url` and `path` are strings (`"30m"`), other unknown types accept any
/// value, a default is parsed as its declared type (`"8"` for an integer key is 8), and a key
/// that is also a secret's `config_key` is treated as that secret.
pub fn schema_from_details(
    details: &PluginDetails,
) -> Result<BackendSchema, crate::config::SchemaError> {
    // A key that holds a secret's literal is handled as that secret (removed from what the
    // plugin receives), so it is not listed twice.
    let is_secret_key = |name: &str| {
        details
            .secrets
            .iter()
            .any(|s| s.config_key.as_deref() == Some(name))
    };
    let keys: Vec<serde_json::Value> = details
        .config_keys
        .iter()
        .filter(|k| !is_secret_key(&k.name))
        .map(|k| {
            let ty = match k.ty.as_str() {
                t @ ("string" | "integer" | "float" | "boolean" | "array" | "table" | "any") => t,
                "duration" | "url" | "path" => "string",
                _ => "any",
            };
            let mut v = serde_json::json!({
                "name": k.name,
                "type": ty,
                "description": k.description,
            });
            if let Some(d) = &k.default {
                v["default"] = typed_default(ty, d);
            }
            v
        })
        .collect();
    let secrets = serde_json::to_value(&details.secrets).unwrap_or_default();
    let json = serde_json::json!({"config_keys": keys, "secrets": secrets});
    BackendSchema::from_details(&json.to_string())
}

/// A default rendered as a string, read as the key's type (left a string when it does not
/// parse, so the schema check reports the plugin's mistake).
fn typed_default(ty: &str, d: &str) -> serde_json::Value {
    let parsed = match ty {
        "string" => None,
        "integer" => d.trim().parse::<i64>().ok().map(serde_json::Value::from),
        "float" => d.trim().parse::<f64>().ok().map(serde_json::Value::from),
        "boolean" => d.trim().parse::<bool>().ok().map(serde_json::Value::from),
        _ => serde_json::from_str(d).ok(),
    };
    parsed.unwrap_or_else(|| serde_json::Value::String(d.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details() -> PluginDetails {
        // The wire form a plugin sends as `details_json`.
        serde_json::from_value(serde_json::json!({
            "config_keys": [
                {"name": "api_url", "type": "string", "description": "API", "default": "https://x"},
                {"name": "timeout", "type": "duration", "description": "idle", "default": "30m"},
                {"name": "cpus", "type": "integer", "description": "n", "default": "2"},
            ],
            "secrets": [
                {"name": "x_key", "env": "X_KEY", "config_key": "api_key", "description": "key"},
            ],
        }))
        .unwrap()
    }

    fn config(text: &str) -> Config {
        Config::parse(
            std::path::Path::new("/h/config.toml"),
            text.into(),
            std::path::Path::new("/h"),
        )
        .unwrap()
    }

    #[test]
    fn maps_sdk_types_and_defaults() {
        let s = schema_from_details(&details()).unwrap();
        assert_eq!(s.key("timeout").unwrap().default, Some("30m".into()));
        assert_eq!(s.key("cpus").unwrap().default, Some(2.into()));
        assert_eq!(s.secret_for_key("api_key").unwrap().name, "x_key");
    }

    #[test]
    fn tables_are_validated_with_locations_and_secrets_removed() {
        let src = ConfigTables::new(Arc::new(config("[x]\napi_key = \"sekrit\"\ncpus = 4\n")));
        let v = src.config_for("x", &details()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"api_url":"https://x","timeout":"30m","cpus":4})
        );
        let bad = ConfigTables::new(Arc::new(config("[x]\ncpus = \"many\"\n")));
        let e = bad.config_for("x", &details()).unwrap_err();
        assert!(e.starts_with("/h/config.toml:2:8: `x.cpus`"), "{e}");
        let unknown = ConfigTables::new(Arc::new(config("[x]\ncpu = 1\n")));
        let e = unknown.config_for("x", &details()).unwrap_err();
        assert!(e.contains("unknown key `cpu`"), "{e}");
        assert!(!e.contains("sekrit"));
    }
}
