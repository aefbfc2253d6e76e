//! The contract between the clauderon host and its backend plugins.
//!
//! Plugin authors use the SDK re-exported at the crate root: implement [`Plugin`] and
//! [`Backend`], then call [`export_plugin!`] once in a `cdylib` crate. The guide is
//! `plugin-api/README.md`. The host uses [`ffi`] and [`declaration`] to load plugins, and both
//! sides share the payload types in [`ops`] and the stream framing in [`stream`].

pub mod declaration;
pub mod error;
pub mod ffi;
pub mod ops;
pub mod sdk;
pub mod stream;

pub use error::{ErrorKind, PluginError};
pub use ops::Capabilities;
pub use sdk::{
    Backend, CallContext, ConfigKey, Extension, HostContext, Plugin, PluginDetails, Secret,
    SecretDecl,
};

/// The plugin-api version this crate is (its own semver, independent of the host's version).
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The ABI epoch: bumped only if the frozen declaration symbol itself ever had to change.
pub const ABI_EPOCH: u32 = 1;

/// Re-exports the export macro needs; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use abi_stable;
}
