//! The registry of discovered plugins: lazy loading (once per plugin per process), selection
//! of the backend, and the status report behind `clauderon plugins list`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::RResult;
use clauderon_plugin_api::ErrorKind;
use clauderon_plugin_api::ffi::FfiHostServices_TO;
use clauderon_plugin_api::panic::panic_reason;
use serde::Serialize;

use super::backend_config::PluginConfigSource;
use super::client::PluginClient;
use super::discovery::{Candidate, DiscoveryOptions, DiscoverySource, discover};
use super::fault::{self, FaultLog, PluginFault};
use super::host_services::{EventRouter, HostServices, ResolverSecrets, SecretLookup};
use super::loader::{self, LoadError, PluginInfo};

/// A plugin's load status in a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginStatus {
    /// Opened, verified and initialized.
    Loaded,
    /// Not a clauderon plugin for this host (another major, a foreign library, bad layout).
    Incompatible,
    /// Could not be opened or its init failed or panicked.
    Failed,
    /// Loaded, but one of its calls panicked since (see [`PluginReport::fault`]). Only
    /// informational: the panic was caught, the plugin's runtime survives and later calls are
    /// made as usual.
    Faulted,
}

impl PluginStatus {
    /// Whether the plugin can be called (`loaded` or `faulted`).
    pub fn is_usable(self) -> bool {
        matches!(self, PluginStatus::Loaded | PluginStatus::Faulted)
    }
}

impl std::fmt::Display for PluginStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            PluginStatus::Loaded => "loaded",
            PluginStatus::Incompatible => "incompatible",
            PluginStatus::Failed => "failed",
            PluginStatus::Faulted => "faulted",
        })
    }
}

/// One line of `clauderon plugins list`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginReport {
    /// The plugin name.
    pub name: String,
    /// The library path.
    pub path: PathBuf,
    /// Where it was found.
    pub source: DiscoverySource,
    /// loaded / incompatible / failed / faulted.
    pub status: PluginStatus,
    /// Why it is not loaded (or, when faulted, its last panic and the count).
    pub reason: Option<String>,
    /// The plugin's own version, when it could be read.
    pub version: Option<String>,
    /// The plugin-api version it was built against, when it could be read.
    pub api_version: Option<String>,
    /// Its description, when it could be read.
    pub description: Option<String>,
    /// Capability names.
    pub capabilities: Vec<String>,
    /// Declared config keys and secrets, when they could be read.
    pub details: Option<clauderon_plugin_api::PluginDetails>,
    /// The panics caught from it in this process (init or calls), if any.
    pub fault: Option<PluginFault>,
}

impl PluginReport {
    /// This report with the panics caught since it was made: a `loaded` plugin with a fault
    /// record becomes `faulted`, its reason the last panic and the count (informational: the
    /// plugin still serves calls). Other statuses keep their reason.
    pub fn with_fault(mut self, fault: Option<PluginFault>) -> Self {
        if let Some(f) = fault {
            if self.status == PluginStatus::Loaded {
                self.status = PluginStatus::Faulted;
                self.reason = Some(f.reason());
            }
            self.fault = Some(f);
        }
        self
    }
}

/// Errors finding or loading a plugin.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No candidate has that name.
    #[error(
        "no plugin named `{name}` was found (available: {available}); put {file} in \
         $CLAUDERON_HOME/plugins, add its directory to CLAUDERON_PLUGIN_PATH, or set \
         [plugins.{name}] path in config.toml"
    )]
    Unknown {
        /// The requested name.
        name: String,
        /// Names that were found.
        available: String,
        /// The file name it would have.
        file: String,
    },
    /// Neither `--backend` nor `default_backend` is set.
    #[error(
        "no backend selected: pass --backend NAME (or set CLAUDERON_BACKEND), or set \
         default_backend in config.toml (available: {available})"
    )]
    NoneSelected {
        /// Names that were found.
        available: String,
    },
    /// The plugin was found but could not be loaded.
    #[error(transparent)]
    Load(Arc<LoadError>),
}

/// What the host gives every plugin it initializes.
#[derive(Clone)]
pub struct HostSetup {
    /// Where secret values come from.
    pub secrets: Arc<dyn SecretLookup>,
    /// Each plugin's config (its `[<backend>]` table, checked against its declared schema
    /// when the plugin loads).
    pub plugin_config: Arc<dyn PluginConfigSource>,
}

impl Default for HostSetup {
    /// Secrets through the resolver over `$CLAUDERON_HOME` without config literals, and an
    /// empty config table for every plugin.
    fn default() -> Self {
        let home = crate::home::Home::from_env()
            .unwrap_or_else(|_| crate::home::Home::new("/nonexistent-clauderon-home"));
        let config = crate::config::Config::parse(&home.config_file(), String::new(), home.root())
            .expect("an empty config text always parses");
        let secrets: Arc<dyn SecretLookup> =
            Arc::new(ResolverSecrets::new(crate::secrets::SecretResolver::new(
                home,
                &config,
                &crate::config::ProxyConfig::default(),
            )));
        HostSetup {
            secrets,
            plugin_config: Arc::new(BTreeMap::<String, serde_json::Value>::new()),
        }
    }
}

impl std::fmt::Debug for HostSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSetup").finish_non_exhaustive()
    }
}

struct Failure {
    error: Arc<LoadError>,
    info: Option<Box<PluginInfo>>,
    api_version: Option<String>,
    fault: Option<PluginFault>,
}

type Slot = Arc<OnceLock<Result<Arc<PluginClient>, Box<Failure>>>>;

/// The plugins this process can use. Loading is lazy and happens at most once per plugin.
pub struct PluginRegistry {
    candidates: Vec<Candidate>,
    setup: HostSetup,
    slots: Mutex<HashMap<String, Slot>>,
}

impl std::fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRegistry")
            .field("candidates", &self.candidates)
            .finish_non_exhaustive()
    }
}

impl PluginRegistry {
    /// Discovers candidates (without loading any).
    pub fn discover(opts: &DiscoveryOptions, setup: HostSetup) -> PluginRegistry {
        PluginRegistry::from_candidates(discover(opts), setup)
    }

    /// A registry over explicit candidates.
    pub fn from_candidates(candidates: Vec<Candidate>, setup: HostSetup) -> PluginRegistry {
        PluginRegistry {
            candidates,
            setup,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The discovered candidates, sorted by name.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    fn available(&self) -> String {
        if self.candidates.is_empty() {
            "none".to_owned()
        } else {
            self.candidates
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    /// The loaded plugin `name`, loading it on first use.
    pub fn get(&self, name: &str) -> Result<Arc<PluginClient>, RegistryError> {
        let candidate = self
            .candidates
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| RegistryError::Unknown {
                name: name.to_owned(),
                available: self.available(),
                file: super::plugin_file_name(name),
            })?;
        match self.slot(candidate).get_or_init(|| self.load(candidate)) {
            Ok(c) => Ok(Arc::clone(c)),
            Err(f) => Err(RegistryError::Load(Arc::clone(&f.error))),
        }
    }

    /// The backend to use: `--backend` first, then `default_backend`.
    pub fn select(
        &self,
        backend: Option<&str>,
        default_backend: Option<&str>,
    ) -> Result<Arc<PluginClient>, RegistryError> {
        match backend.or(default_backend) {
            Some(name) => self.get(name),
            None => Err(RegistryError::NoneSelected {
                available: self.available(),
            }),
        }
    }

    /// Loads every candidate and reports its status.
    pub fn report_all(&self) -> Vec<PluginReport> {
        self.candidates.iter().map(|c| self.report(c)).collect()
    }

    /// Loads one candidate (once) and reports its status.
    pub fn report(&self, candidate: &Candidate) -> PluginReport {
        let slot = self.slot(candidate);
        let outcome = slot.get_or_init(|| self.load(candidate));
        let mut report = PluginReport {
            name: candidate.name.clone(),
            path: candidate.path.clone(),
            source: candidate.source,
            status: PluginStatus::Loaded,
            reason: None,
            version: None,
            api_version: None,
            description: None,
            capabilities: Vec::new(),
            details: None,
            fault: None,
        };
        let (info, fault) = match outcome {
            Ok(client) => (Some(&client.info), client.fault()),
            Err(f) => {
                report.status = f.error.status();
                report.reason = Some(f.error.to_string());
                report.api_version.clone_from(&f.api_version);
                (f.info.as_deref(), f.fault.clone())
            }
        };
        if let Some(info) = info {
            report.version = Some(info.version.clone());
            report.api_version = Some(info.api_version.clone());
            report.description = Some(info.description.clone());
            report.capabilities = info
                .capabilities
                .names()
                .into_iter()
                .map(str::to_owned)
                .collect();
            report.details = Some(info.details.clone());
        }
        report.with_fault(fault)
    }

    /// The report for `name`, if such a candidate exists.
    pub fn report_named(&self, name: &str) -> Option<PluginReport> {
        self.candidates
            .iter()
            .find(|c| c.name == name)
            .map(|c| self.report(c))
    }

    /// Stops the runtime of every loaded plugin (graceful exit), waiting at most `deadline`
    /// for each. Calls made afterwards fail as cancelled.
    pub fn shutdown_all(&self, deadline: std::time::Duration) {
        let slots: Vec<Slot> = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for slot in slots {
            if let Some(Ok(client)) = slot.get() {
                client.shutdown(deadline);
            }
        }
    }

    fn slot(&self, candidate: &Candidate) -> Slot {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(slots.entry(candidate.name.clone()).or_default())
    }

    fn load(&self, candidate: &Candidate) -> Result<Arc<PluginClient>, Box<Failure>> {
        let opened = loader::open(&candidate.path).map_err(|b| {
            let (e, api_version) = *b;
            Box::new(Failure {
                error: Arc::new(e),
                info: None,
                api_version,
                fault: None,
            })
        })?;
        let info = opened.info;
        let fail = |error: LoadError, info: &PluginInfo| {
            Box::new(Failure {
                fault: match &error {
                    LoadError::InitPanicked { message, .. } => Some(fault::single("init", message)),
                    _ => None,
                },
                error: Arc::new(error),
                api_version: Some(info.api_version.clone()),
                info: Some(Box::new(info.clone())),
            })
        };
        if info.name != candidate.name {
            return Err(fail(
                LoadError::NameMismatch {
                    path: candidate.path.clone(),
                    expected: candidate.name.clone(),
                    actual: info.name.clone(),
                    file: super::plugin_file_name(&info.name),
                },
                &info,
            ));
        }
        let events = EventRouter::default();
        let services = HostServices {
            plugin: info.name.clone(),
            declared: info.details.secrets.clone(),
            secrets: Arc::clone(&self.setup.secrets),
            events: events.clone(),
        };
        let config = match self
            .setup
            .plugin_config
            .config_for(&info.name, &info.details)
        {
            Ok(c) => c,
            Err(message) => {
                return Err(fail(
                    LoadError::Config {
                        name: info.name.clone(),
                        message,
                    },
                    &info,
                ));
            }
        };
        let services = FfiHostServices_TO::from_value(services, TD_Opaque);
        let backend = match (opened.module.init())(services, config.to_string().into()) {
            RResult::ROk(b) => b,
            RResult::RErr(e) => {
                let e: clauderon_plugin_api::PluginError = e.into();
                let error = if e.kind == ErrorKind::Panicked {
                    LoadError::InitPanicked {
                        name: info.name.clone(),
                        message: panic_reason("init", &e.message).to_owned(),
                    }
                } else {
                    LoadError::Init {
                        name: info.name.clone(),
                        error: e,
                    }
                };
                return Err(fail(error, &info));
            }
        };
        Ok(Arc::new(PluginClient {
            info,
            path: candidate.path.clone(),
            source: candidate.source,
            module: opened.module,
            backend: Arc::new(backend),
            events,
            faults: FaultLog::default(),
        }))
    }
}
