//! The SDK for clauderon backend plugins: implement [`Plugin`] and [`Backend`] with plain async
//! Rust, then call [`export_plugin!`] once in a `cdylib` crate. The guide is
//! `plugin-sdk/README.md`.
//!
//! A plugin depends on this crate only. It re-exports the contract it needs from
//! `clauderon-plugin-api` (the operations and payloads in [`ops`], the frame codec in
//! [`stream`], the shared [`labels`], errors and details); authors never see FFI types. The
//! SDK has its own semver; the plugin API version a plugin declares is [`API_VERSION`], the
//! version of the `clauderon-plugin-api` this SDK is built on.

mod adapter;
mod backend;
mod context;
mod details;
#[doc(hidden)]
pub mod entry;
mod log;
mod plugin;
mod runtime;

pub use backend::Backend;
pub use clauderon_plugin_api::export::Extension;
pub use clauderon_plugin_api::{
    API_VERSION, Capabilities, ConfigKey, ErrorKind, PluginDetails, PluginError, SecretDecl,
    labels, ops, stream,
};
pub use context::{CallContext, HostContext, Secret};
pub use details::{ConfigKeyBuilder, DetailsBuilder, SecretDeclBuilder};
pub use plugin::Plugin;

/// The version of this SDK (its own semver, independent of [`API_VERSION`]).
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Re-exports the export macro needs; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use clauderon_plugin_api as api;
}

/// Exports `$plugin` (a type implementing [`Plugin`]) from this `cdylib`: the declaration
/// symbol and the root module the host loads. Call it exactly once per library, at the crate
/// root.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        $crate::__private::api::export_entry!($crate::entry::Exported<$plugin>);
    };
}
