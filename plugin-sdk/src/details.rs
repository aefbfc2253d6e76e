//! Builders for what a plugin declares in [`crate::Plugin::details`]: config keys, secrets and
//! the facts about its sandboxes the host needs. The declared types belong to the contract and
//! may gain optional fields in a minor release; building them here keeps plugin code compiling
//! when they do.

use std::time::Duration;

use clauderon_plugin_api::{ConfigKey, PluginDetails, SecretDecl};

/// Builds a [`ConfigKey`]: a key of the plugin's own `[<name>]` table in config.toml. Pass it
/// to [`DetailsBuilder::config_key`] (or turn it into the key with `.into()`).
#[derive(Debug, Clone)]
pub struct ConfigKeyBuilder(ConfigKey);

impl ConfigKeyBuilder {
    /// A key `name` of type `ty` (`string`, `integer`, `boolean`, `duration`, `url`, `path`),
    /// with what it does. The host checks the user's value against the type.
    pub fn new(
        name: impl Into<String>,
        ty: impl Into<String>,
        description: impl Into<String>,
    ) -> ConfigKeyBuilder {
        let mut key = ConfigKey::default();
        key.name = name.into();
        key.ty = ty.into();
        key.description = description.into();
        ConfigKeyBuilder(key)
    }

    /// Its default, rendered as a string (`"30m"`, `"45"`); `init` receives it when the user
    /// sets nothing.
    pub fn with_default(mut self, value: impl Into<String>) -> ConfigKeyBuilder {
        self.0.default = Some(value.into());
        self
    }
}

impl From<ConfigKeyBuilder> for ConfigKey {
    fn from(b: ConfigKeyBuilder) -> ConfigKey {
        b.0
    }
}

/// Builds a [`SecretDecl`]: a secret the plugin may ask the host for. Pass it to
/// [`DetailsBuilder::secret`] (or turn it into the declaration with `.into()`).
#[derive(Debug, Clone)]
pub struct SecretDeclBuilder(SecretDecl);

impl SecretDeclBuilder {
    /// A secret `name` (`sprites_api_key`) with what it is for.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> SecretDeclBuilder {
        let mut secret = SecretDecl::default();
        secret.name = name.into();
        secret.description = description.into();
        SecretDeclBuilder(secret)
    }

    /// An environment variable that may hold it (default: the upper-cased name).
    pub fn with_env(mut self, var: impl Into<String>) -> SecretDeclBuilder {
        self.0.env = Some(var.into());
        self
    }

    /// A key of the plugin's config table that may hold it.
    pub fn with_config_key(mut self, key: impl Into<String>) -> SecretDeclBuilder {
        self.0.config_key = Some(key.into());
        self
    }
}

impl From<SecretDeclBuilder> for SecretDecl {
    fn from(b: SecretDeclBuilder) -> SecretDecl {
        b.0
    }
}

/// Builds the [`PluginDetails`] a plugin returns from [`crate::Plugin::details`].
#[derive(Debug, Clone, Default)]
pub struct DetailsBuilder(PluginDetails);

impl DetailsBuilder {
    /// Nothing declared yet.
    pub fn new() -> DetailsBuilder {
        DetailsBuilder::default()
    }

    /// Declares a config key (shown by `clauderon plugins info`, checked by the host).
    pub fn config_key(mut self, key: impl Into<ConfigKey>) -> DetailsBuilder {
        self.0.config_keys.push(key.into());
        self
    }

    /// Declares a secret; the host hands the plugin only secrets it declared.
    pub fn secret(mut self, secret: impl Into<SecretDecl>) -> DetailsBuilder {
        self.0.secrets.push(secret.into());
        self
    }

    /// The absolute directory inside each sandbox where the repository is cloned and the
    /// agent runs (hosts speaking plugin API 1.1 or later read it).
    pub fn workspace(mut self, dir: impl Into<String>) -> DetailsBuilder {
        self.0.workspace = Some(dir.into());
        self
    }

    /// How long a session may sit idle before it hibernates when the user sets nothing (whole
    /// seconds; meaningful with the `HIBERNATE` capability; hosts speaking plugin API 1.1 or
    /// later read it).
    pub fn default_idle(mut self, idle: Duration) -> DetailsBuilder {
        self.0.default_idle_seconds = Some(idle.as_secs());
        self
    }

    /// The details.
    pub fn build(self) -> PluginDetails {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_wire_form_the_host_reads() {
        let d = DetailsBuilder::new()
            .config_key(
                ConfigKeyBuilder::new("api_url", "url", "Base URL").with_default("http://x"),
            )
            .config_key(ConfigKeyBuilder::new("depth", "integer", "Clone depth"))
            .secret(
                SecretDeclBuilder::new("token", "API token")
                    .with_env("TOKEN")
                    .with_config_key("api_key"),
            )
            .workspace("/home/u/workspace")
            .default_idle(Duration::from_secs(30 * 60))
            .build();
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            serde_json::json!({
                "config_keys": [
                    {"name": "api_url", "type": "url", "description": "Base URL", "default": "http://x"},
                    {"name": "depth", "type": "integer", "description": "Clone depth"},
                ],
                "secrets": [
                    {"name": "token", "env": "TOKEN", "config_key": "api_key", "description": "API token"},
                ],
                "workspace": "/home/u/workspace",
                "default_idle_seconds": 1800,
            })
        );
    }
}
