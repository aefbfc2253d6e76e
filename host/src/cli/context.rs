//! What every command gets: output mode, the selected backend, the home directory, the loaded
//! config, the secret resolver and the plugin registry (each made on first use, so a command
//! that needs none of them, such as `completions`, never reads a file).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::config::{Config, ProxyConfig};
use crate::home::Home;
use crate::plugins::{
    ConfigTables, DiscoveryOptions, HostSetup, PluginClient, PluginRegistry, ResolverSecrets,
};
use crate::secrets::SecretResolver;

/// Shared state of one CLI invocation.
#[derive(Debug)]
pub struct Context {
    /// `--json`: machine-readable output.
    pub json: bool,
    /// `--backend` / `CLAUDERON_BACKEND`.
    pub backend: Option<String>,
    home: Home,
    config: OnceLock<Arc<Config>>,
    secrets: OnceLock<ResolverSecrets>,
    registry: OnceLock<PluginRegistry>,
}

impl Context {
    /// A context for the given global flags; resolves `CLAUDERON_HOME` (default
    /// `~/.clauderon`). Nothing is read yet.
    pub fn new(json: bool, backend: Option<String>) -> anyhow::Result<Context> {
        Ok(Context::with_home(json, backend, Home::from_env()?))
    }

    /// A context over an explicit home.
    pub fn with_home(json: bool, backend: Option<String>, home: Home) -> Context {
        Context {
            json,
            backend,
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

    /// The selected backend's name: `--backend`, else `default_backend`, if either is set.
    pub fn backend_name(&self) -> anyhow::Result<Option<String>> {
        Ok(match &self.backend {
            Some(b) => Some(b.clone()),
            None => self.config()?.default_backend().map(str::to_owned),
        })
    }

    /// The selected backend plugin (`--backend`, else `default_backend`), loaded.
    pub fn backend_client(&self) -> anyhow::Result<Arc<PluginClient>> {
        let default = self.config()?.default_backend().map(str::to_owned);
        Ok(self
            .registry()?
            .select(self.backend.as_deref(), default.as_deref())?)
    }
}
