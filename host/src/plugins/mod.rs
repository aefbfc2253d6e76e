//! Plugin discovery, loading, version negotiation and the typed client for a loaded backend.
//!
//! [`PluginRegistry::discover`] finds candidate libraries (no loading); [`PluginRegistry::get`]
//! loads one lazily, once per process; [`PluginClient`] calls its operations.
//! [`PluginRegistry::report_all`] loads every candidate for `clauderon plugins list`.

mod client;
mod discovery;
mod host_services;
mod loader;
mod registry;
pub mod settings;

pub use clauderon_plugin_api::ops;
pub use clauderon_plugin_api::stream::{Frame, FrameKind, FrameReader, FrameStream, FrameWriter};
pub use clauderon_plugin_api::{Capabilities, ErrorKind, PluginError, SecretDecl};
pub use client::PluginClient;
pub use discovery::{
    Candidate, DiscoveryOptions, DiscoverySource, discover, plugin_file_name, plugin_name_from_file,
};
pub use host_services::{EnvSecretLookup, SecretLookup};
pub use loader::{LoadError, PluginInfo};
pub use registry::{HostSetup, PluginRegistry, PluginReport, PluginStatus, RegistryError};
