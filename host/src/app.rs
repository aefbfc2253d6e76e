//! The application's shared context, below both the CLI and the daemon: the home directory, the
//! loaded config, the secret resolver and the plugin registry, each made on first use (so a
//! command that needs none of them, such as `completions`, never reads a file).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::config::{Config, ProxyConfig};
use crate::home::Home;
use crate::plugins::{ConfigTables, DiscoveryOptions, HostSetup, PluginRegistry, ResolverSecrets};
use crate::secrets::SecretResolver;

/// The home, config, secrets and plugins of one process (a CLI command or the daemon).
#[derive(Debug)]
pub struct App {
    home: Home,
    config: OnceLock<Arc<Config>>,
    secrets: OnceLock<ResolverSecrets>,
    registry: OnceLock<PluginRegistry>,
}

impl App {
    /// The application over `CLAUDERON_HOME` (default `~/.clauderon`). Nothing is read yet.
    pub fn from_env() -> anyhow::Result<App> {
        Ok(App::with_home(Home::from_env()?))
    }

    /// The application over an explicit home.
    pub fn with_home(home: Home) -> App {
        App {
            home,
            config: OnceLock::new(),
            secrets: OnceLock::new(),
            registry: OnceLock::new(),
        }
    }

    /// The clauderon home.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// `config.toml`, loaded once; a bad file is an error naming file, line, column and key.
    pub fn config(&self) -> anyhow::Result<&Config> {
        Ok(self.config_arc()?.as_ref())
    }

    fn config_arc(&self) -> anyhow::Result<&Arc<Config>> {
        if let Some(c) = self.config.get() {
            return Ok(c);
        }
        let c = Arc::new(Config::load(&self.home)?);
        Ok(self.config.get_or_init(|| c))
    }

    fn shared_secrets(&self) -> anyhow::Result<&ResolverSecrets> {
        if let Some(s) = self.secrets.get() {
            return Ok(s);
        }
        let config = self.config()?;
        let proxy = ProxyConfig::load(&self.home)?;
        let s = ResolverSecrets::new(SecretResolver::new(self.home.clone(), config, &proxy));
        Ok(self.secrets.get_or_init(|| s))
    }

    /// The secret resolver (environment, `secrets/`, 1Password from proxy.toml, config
    /// literals), with the secrets of every plugin loaded so far declared.
    pub fn secrets(&self) -> anyhow::Result<SecretResolver> {
        Ok(self.shared_secrets()?.resolver())
    }

    /// The plugin registry (discovered once; plugins load lazily). Config paths come from
    /// `[plugins.<name>] path`; each plugin gets its `[<name>]` table, validated against its
    /// schema when it loads, and its declared secrets through the resolver.
    pub fn registry(&self) -> anyhow::Result<&PluginRegistry> {
        if let Some(r) = self.registry.get() {
            return Ok(r);
        }
        let config = Arc::clone(self.config_arc()?);
        let paths: BTreeMap<String, PathBuf> = config
            .plugins()
            .iter()
            .map(|(name, p)| (name.clone(), p.path.clone()))
            .collect();
        let opts = DiscoveryOptions::from_env(self.home.root(), paths);
        let setup = HostSetup {
            secrets: Arc::new(self.shared_secrets()?.clone()),
            plugin_config: Arc::new(ConfigTables::new(config)),
        };
        Ok(self
            .registry
            .get_or_init(|| PluginRegistry::discover(&opts, setup)))
    }

    /// Stops loaded plugins' runtimes before the process exits.
    pub fn shutdown(&self) {
        if let Some(r) = self.registry.get() {
            r.shutdown_all(std::time::Duration::from_secs(2));
        }
    }
}
