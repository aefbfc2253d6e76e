//! What every command gets: the output mode, the selected backend, and the application's shared
//! context ([`crate::app::App`]: home, config, secrets, plugins), which it dereferences to.

use std::sync::Arc;

use crate::app::App;
use crate::plugins::PluginClient;

/// Shared state of one CLI invocation.
#[derive(Debug)]
pub struct Context {
    /// `--json`: machine-readable output.
    pub json: bool,
    /// `--backend` / `CLAUDERON_BACKEND`.
    pub backend: Option<String>,
    app: App,
}

impl std::ops::Deref for Context {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

impl Context {
    /// A context for the given global flags over `CLAUDERON_HOME`. Nothing is read yet.
    pub fn new(json: bool, backend: Option<String>) -> anyhow::Result<Context> {
        Ok(Context {
            json,
            backend,
            app: App::from_env()?,
        })
    }

    /// The application context.
    pub fn app(&self) -> &App {
        &self.app
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
