//! Plugin discovery, loading, version negotiation and the typed client for a loaded backend.
//!
//! [`PluginRegistry::discover`] finds candidate libraries (no loading); [`PluginRegistry::get`]
//! loads one lazily, once per process; [`PluginClient`] calls its operations.
//! [`PluginRegistry::report_all`] loads every candidate for `clauderon plugins list`.

mod backend_config;
mod client;
mod discovery;
mod fault;
mod host_services;
mod install;
mod loader;
mod registry;

pub use backend_config::{ConfigTables, PluginConfigSource, schema_from_details};
pub use clauderon_plugin_api::stream::{Frame, FrameKind, FrameReader, FrameStream, FrameWriter};
pub use clauderon_plugin_api::{Capabilities, ErrorKind, PluginError, SecretDecl};
pub use clauderon_plugin_api::{labels, ops};
pub use client::{EventedClient, PluginClient};
pub use discovery::{
    Candidate, DiscoveryOptions, DiscoverySource, discover, plugin_file_name, plugin_name_from_file,
};
pub use fault::{MAX_PANIC_MESSAGE_CHARS, PluginFault};
pub use host_services::{ResolverSecrets, SecretLookup};
pub use install::{InstallError, Installed, install};
pub use loader::{LoadError, PluginInfo};
pub use registry::{HostSetup, PluginRegistry, PluginReport, PluginStatus, RegistryError};
