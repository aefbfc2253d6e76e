//! The backend plugins the daemon can use, loaded once at start through the CLI context's
//! registry (so tasks can hold them for the daemon's life), and the `plugins list` report.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::plugins::{PluginClient, PluginRegistry, PluginReport};

use super::super::error::EngineError;

/// The loaded plugins by name, the failed ones with why, and the report of all.
#[derive(Debug, Clone, Default)]
pub struct Backends {
    loaded: BTreeMap<String, Arc<PluginClient>>,
    failed: BTreeMap<String, String>,
    reports: Vec<PluginReport>,
    default_backend: Option<String>,
}

impl Backends {
    /// Loads every candidate of `registry` (a plugin that fails is reported, never fatal).
    pub fn load(registry: &PluginRegistry, default_backend: Option<String>) -> Self {
        let reports = registry.report_all();
        let mut loaded = BTreeMap::new();
        let mut failed = BTreeMap::new();
        for r in &reports {
            if r.status.is_usable() {
                match registry.get(&r.name) {
                    Ok(c) => {
                        loaded.insert(r.name.clone(), c);
                    }
                    Err(e) => {
                        failed.insert(r.name.clone(), e.to_string());
                    }
                }
            } else {
                failed.insert(
                    r.name.clone(),
                    r.reason.clone().unwrap_or_else(|| r.status.to_string()),
                );
            }
        }
        Self {
            loaded,
            failed,
            reports,
            default_backend,
        }
    }

    /// The same report as `clauderon plugins list --json`.
    pub fn reports(&self) -> &[PluginReport] {
        &self.reports
    }

    /// Every loaded plugin.
    pub fn loaded(&self) -> impl Iterator<Item = (&str, &Arc<PluginClient>)> {
        self.loaded.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The backend a request names, else `default_backend`; the error says what exists.
    pub fn select(&self, name: Option<&str>) -> Result<Arc<PluginClient>, EngineError> {
        match name.or(self.default_backend.as_deref()) {
            Some(n) => self.get(n).map_err(|e| match e {
                EngineError::Unavailable(m) => EngineError::BadRequest(m),
                other => other,
            }),
            None => Err(EngineError::BadRequest(format!(
                "no backend selected: give \"backend\" (available: {}) or set default_backend \
                 in config.toml",
                self.available()
            ))),
        }
    }

    /// The loaded plugin `name`.
    pub fn get(&self, name: &str) -> Result<Arc<PluginClient>, EngineError> {
        if let Some(c) = self.loaded.get(name) {
            return Ok(Arc::clone(c));
        }
        Err(EngineError::Unavailable(match self.failed.get(name) {
            Some(why) => format!("backend plugin `{name}` could not be loaded: {why}"),
            None => format!(
                "no backend plugin named `{name}` (available: {}); `clauderon plugins list` \
                 shows what was found",
                self.available()
            ),
        }))
    }

    fn available(&self) -> String {
        if self.loaded.is_empty() {
            "none".to_owned()
        } else {
            self.loaded.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    }
}
