//! What every command gets: output mode, the selected backend, the home directory, and the
//! plugin registry (discovered on first use).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;

use crate::plugins::{DiscoveryOptions, HostSetup, PluginClient, PluginRegistry, settings};

/// Shared state of one CLI invocation.
#[derive(Debug)]
pub struct Context {
    /// `--json`: machine-readable output.
    pub json: bool,
    /// `--backend` / `CLAUDERON_BACKEND`.
    pub backend: Option<String>,
    /// `$CLAUDERON_HOME` (default `~/.clauderon`).
    pub home: PathBuf,
    settings: OnceLock<settings::PluginSettings>,
    registry: OnceLock<PluginRegistry>,
}

impl Context {
    /// A context for the given global flags; resolves `CLAUDERON_HOME`.
    pub fn new(json: bool, backend: Option<String>) -> anyhow::Result<Context> {
        let home = match std::env::var_os("CLAUDERON_HOME") {
            Some(h) if !h.is_empty() => PathBuf::from(h),
            _ => std::env::home_dir()
                .context("cannot find the home directory; set CLAUDERON_HOME")?
                .join(".clauderon"),
        };
        Ok(Context {
            json,
            backend,
            home,
            settings: OnceLock::new(),
            registry: OnceLock::new(),
        })
    }

    /// The plugin settings from config.toml (read once).
    pub fn plugin_settings(&self) -> anyhow::Result<&settings::PluginSettings> {
        if let Some(s) = self.settings.get() {
            return Ok(s);
        }
        let s = settings::load(&self.home).map_err(anyhow::Error::msg)?;
        Ok(self.settings.get_or_init(|| s))
    }

    /// The plugin registry (discovered once; plugins load lazily).
    pub fn registry(&self) -> anyhow::Result<&PluginRegistry> {
        if let Some(r) = self.registry.get() {
            return Ok(r);
        }
        let s = self.plugin_settings()?;
        let opts = DiscoveryOptions::from_env(&self.home, s.paths.clone());
        let setup = HostSetup {
            plugin_config: s.config.clone(),
            ..HostSetup::default()
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

    /// The selected backend plugin (`--backend`, else `default_backend`), loaded.
    pub fn backend_client(&self) -> anyhow::Result<Arc<PluginClient>> {
        let s = self.plugin_settings()?;
        Ok(self
            .registry()?
            .select(self.backend.as_deref(), s.default_backend.as_deref())?)
    }
}
