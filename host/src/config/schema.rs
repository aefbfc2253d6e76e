//! The shape a backend plugin declares for its config table and its secrets, read from the
//! plugin's `details_json`:
//! `{"config_keys":[{"name","type","description","default"}],"secrets":[{"name","env","config_key","description"}]}`.

use std::fmt;

/// A plugin's declared config table and secrets.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSchema {
    /// Keys the plugin's table accepts.
    #[serde(default)]
    pub config_keys: Vec<ConfigKey>,
    /// Secrets the plugin may ask the host for.
    #[serde(default)]
    pub secrets: Vec<SecretDecl>,
}

/// One key of a backend table.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigKey {
    /// The key, e.g. `api_url`.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: KeyType,
    /// One line for `config show` and error messages.
    #[serde(default)]
    pub description: String,
    /// The value used when the table omits the key (JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
}

/// The types a backend key may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// A TOML string.
    String,
    /// A TOML integer.
    Integer,
    /// A TOML float (an integer is accepted too).
    Float,
    /// A TOML boolean.
    Boolean,
    /// A TOML array of anything.
    Array,
    /// A TOML table of anything.
    Table,
    /// Anything.
    Any,
}

impl KeyType {
    /// Whether a JSON value (converted from TOML) has this type.
    pub fn accepts(self, v: &serde_json::Value) -> bool {
        use serde_json::Value as V;
        match self {
            Self::String => v.is_string(),
            Self::Integer => v.is_i64() || v.is_u64(),
            Self::Float => v.is_number(),
            Self::Boolean => v.is_boolean(),
            Self::Array => matches!(v, V::Array(_)),
            Self::Table => matches!(v, V::Object(_)),
            Self::Any => true,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::String => "a string",
            Self::Integer => "an integer",
            Self::Float => "a number",
            Self::Boolean => "a boolean (true or false)",
            Self::Array => "an array",
            Self::Table => "a table",
            Self::Any => "any value",
        })
    }
}

/// A secret the plugin declares: its name, environment variable and the key of its table that
/// may hold a literal value.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretDecl {
    /// The secret's name, e.g. `sprites_api_key` (also its file name under `secrets/`).
    pub name: String,
    /// The environment variable that supplies it, e.g. `SPRITES_API_KEY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The key of the backend's table that may hold a literal, e.g. `api_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_key: Option<String>,
    /// One line for `config credentials`.
    #[serde(default)]
    pub description: String,
}

/// A plugin declared a schema the host cannot use.
#[derive(Debug, thiserror::Error)]
#[error(
    "plugin declares an invalid config schema in its details: {0}; this is a bug in the plugin"
)]
pub struct SchemaError(String);

impl BackendSchema {
    /// Reads the schema from a plugin's `details_json`. Other top-level fields of the details
    /// (plugin-specific information) are ignored; `config_keys` and `secrets` must match the
    /// shape exactly.
    pub fn from_details(details_json: &str) -> Result<Self, SchemaError> {
        if details_json.trim().is_empty() {
            return Ok(Self::default());
        }
        let v: serde_json::Value =
            serde_json::from_str(details_json).map_err(|e| SchemaError(e.to_string()))?;
        let obj = v
            .as_object()
            .ok_or_else(|| SchemaError("details_json is not a JSON object".into()))?;
        let pick = |k: &str| obj.get(k).cloned().unwrap_or(serde_json::Value::Null);
        let mut picked = serde_json::Map::new();
        for k in ["config_keys", "secrets"] {
            if !pick(k).is_null() {
                picked.insert(k.into(), pick(k));
            }
        }
        let schema: Self = serde_json::from_value(serde_json::Value::Object(picked))
            .map_err(|e| SchemaError(e.to_string()))?;
        for k in &schema.config_keys {
            if let Some(d) = &k.default
                && !k.kind.accepts(d)
            {
                return Err(SchemaError(format!(
                    "the default of `{}` is not {}",
                    k.name, k.kind
                )));
            }
        }
        for s in &schema.secrets {
            if !crate::secrets::valid_secret_name(&s.name) {
                return Err(SchemaError(format!(
                    "secret name `{}` is not lowercase letters, digits and `_`",
                    s.name
                )));
            }
        }
        Ok(schema)
    }

    /// The declared key called `name`.
    pub fn key(&self, name: &str) -> Option<&ConfigKey> {
        self.config_keys.iter().find(|k| k.name == name)
    }

    /// The secret whose literal may sit under table key `key`.
    pub fn secret_for_key(&self, key: &str) -> Option<&SecretDecl> {
        self.secrets
            .iter()
            .find(|s| s.config_key.as_deref() == Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_declared_shape() {
        let s = BackendSchema::from_details(
            r#"{"other": 1,
                "config_keys":[{"name":"api_url","type":"string","description":"API","default":"https://api.sprites.dev"},
                               {"name":"cpus","type":"integer","description":"n"}],
                "secrets":[{"name":"sprites_api_key","env":"SPRITES_API_KEY","config_key":"api_key","description":"token"}]}"#,
        )
        .unwrap();
        assert_eq!(s.config_keys.len(), 2);
        assert_eq!(s.key("cpus").unwrap().kind, KeyType::Integer);
        assert_eq!(s.secret_for_key("api_key").unwrap().name, "sprites_api_key");
        assert_eq!(
            BackendSchema::from_details("").unwrap(),
            BackendSchema::default()
        );
        assert_eq!(
            BackendSchema::from_details("{}").unwrap(),
            BackendSchema::default()
        );
    }

    #[test]
    fn rejects_a_wrong_shape() {
        for bad in [
            "[]",
            "{",
            r#"{"config_keys":[{"name":"a","type":"strin"}]}"#,
            r#"{"config_keys":[{"name":"a","type":"string","extra":1}]}"#,
            r#"{"config_keys":[{"name":"a","type":"integer","default":"x"}]}"#,
            r#"{"secrets":[{"name":"../x"}]}"#,
        ] {
            let e = BackendSchema::from_details(bad).unwrap_err();
            assert!(e.to_string().contains("bug in the plugin"), "{bad}: {e}");
        }
    }
}
