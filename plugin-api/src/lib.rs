//! The frozen contract between the clauderon host and its backend plugins.
//!
//! Plugin authors do not depend on this crate: they use `clauderon-plugin-sdk`, which re-exports
//! what they need. This crate is the ABI itself and what both sides must agree on:
//! - [`declaration`]: the frozen symbol the host reads before anything else;
//! - [`ffi`]: the root module and the backend and host-services objects (abi_stable types);
//! - [`export`]: the plugin side of those objects in plain Rust, which the SDK builds on;
//! - [`ops`]: operation names, capability bits and the versioned payloads, with the op table;
//! - [`details`]: what a plugin declares about itself (config keys, secrets, backend facts);
//! - [`error`], [`stream`] (the exec/attach frame codec) and [`labels`] (shared label keys);
//! - [`panic`] and [`task`]: the panic decoding and abort-on-drop guard both sides use.
//!
//! Its Cargo version is the plugin API version ([`API_VERSION`]). Its package name is part of
//! the ABI too: abi_stable records the defining package of every type that crosses the
//! boundary and refuses a library whose types come from another package, so this crate keeps
//! the name `clauderon-plugin-api` that plugins built against 1.0.0 carry.

pub mod declaration;
pub mod details;
pub mod error;
pub mod export;
pub mod ffi;
pub mod labels;
pub mod ops;
pub mod panic;
pub mod stream;
pub mod task;

pub use details::{ConfigKey, PluginDetails, SecretDecl};
pub use error::{ErrorKind, PluginError};
pub use ops::Capabilities;

/// The plugin API version this crate is (its own semver, independent of the host's and the
/// SDK's versions). The declaration symbol carries it; the host accepts the same major.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The ABI epoch: bumped only if the frozen declaration symbol itself ever had to change.
pub const ABI_EPOCH: u32 = 1;

/// Re-exports the export macro needs; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use abi_stable;
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_package_name_that_abi_stable_records_is_unchanged() {
        // abi_stable compares the defining package of each type across the boundary
        // (`AbiInstability::Package`); plugins built against 1.0.0 carry this name.
        assert_eq!(env!("CARGO_PKG_NAME"), "clauderon-plugin-api");
        let v = super::API_VERSION.split('.').next();
        assert_eq!(v, Some("1"), "the root module is frozen for major 1");
    }
}
