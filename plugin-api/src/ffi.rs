//! The FFI types that cross the library boundary: the root module, the backend and host-services
//! trait objects, and plain-data errors and info. Only [`crate::export`] (the plugin side) and the
//! host's loader use them; authors never see them.
//!
//! The root module is frozen for the whole 1.x major: operations are added as new op names over
//! JSON payloads, whole new vtables through `extension(name, major)`. The names of these types
//! and of this crate's package are part of the layout abi_stable checks: never rename them.

// abi_stable's derives generate `Foo_Ref`/`Foo_TO` names and impls inside consts.
#![allow(non_camel_case_types, non_local_definitions)]

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RStr, RString, RVec},
};
use async_ffi::FfiFuture;

use crate::error::{ErrorKind, PluginError};

/// A plugin error as plain `#[repr(C)]` data (no vtables pointing into the plugin).
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiPluginError {
    /// The [`ErrorKind`] wire code.
    pub kind: u32,
    /// The message.
    pub message: RString,
    /// Whether retrying may help.
    pub retryable: bool,
    /// The flattened cause chain.
    pub causes: RVec<RString>,
    /// Structured details as JSON text (empty when none).
    pub details_json: RString,
}

impl From<PluginError> for FfiPluginError {
    fn from(e: PluginError) -> Self {
        FfiPluginError {
            kind: e.kind.code(),
            message: e.message.into(),
            retryable: e.retryable,
            causes: e.causes.into_iter().map(RString::from).collect(),
            details_json: if e.details.is_null() {
                RString::new()
            } else {
                e.details.to_string().into()
            },
        }
    }
}

impl From<FfiPluginError> for PluginError {
    fn from(e: FfiPluginError) -> Self {
        PluginError {
            kind: ErrorKind::from_code(e.kind),
            message: e.message.into_string(),
            retryable: e.retryable,
            causes: e.causes.into_iter().map(RString::into_string).collect(),
            details: if e.details_json.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::from_str(&e.details_json).unwrap_or(serde_json::Value::Null)
            },
        }
    }
}

/// What a plugin says about itself.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiPluginInfo {
    /// The plugin's name (the `<name>` in `libclauderon_<name>.so`).
    pub name: RString,
    /// The plugin's own version.
    pub version: RString,
    /// One line about the plugin.
    pub description: RString,
    /// Capability bits (see [`crate::ops::Capabilities`]).
    pub capabilities: u64,
    /// JSON: `{"config_keys":[...],"secrets":[...]}` (see [`crate::PluginDetails`]).
    pub details_json: RString,
}

/// A stream handed from the plugin to the host: a socketpair end the host now owns, plus the
/// operation's JSON response.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct FfiStreamOpened {
    /// The file descriptor; ownership passes to the host.
    pub fd: i32,
    /// The JSON response of the op.
    pub response_json: RString,
}

/// Services the host hands to a plugin's `init`.
#[sabi_trait]
pub trait FfiHostServices: Send + Sync {
    /// The host's version.
    fn host_version(&self) -> RString;

    /// Looks up a secret the plugin declared; `RNone` when it is not set.
    fn secret(&self, name: RStr<'_>) -> FfiFuture<RResult<ROption<RString>, FfiPluginError>>;

    /// Emits a progress/event JSON object tagged with the call's request id.
    fn emit(&self, request_id: RStr<'_>, event_json: RStr<'_>);

    /// Forwards one log record (level 1=error .. 5=trace) into the host's tracing.
    fn log(&self, level: u8, target: RStr<'_>, message: RStr<'_>, fields_json: RStr<'_>);

    /// The most verbose level the host wants (0 = off, 1=error .. 5=trace).
    #[sabi(last_prefix_field)]
    fn max_log_level(&self) -> u8;
}

/// The host-services trait object as it crosses the boundary.
pub type FfiHostServicesBox = FfiHostServices_TO<'static, RBox<()>>;

/// A backend instance created by `init`: named operations over JSON payloads.
#[sabi_trait]
pub trait FfiBackend: Send + Sync {
    /// Runs operation `op` with a JSON request; resolves to the JSON response.
    fn call(
        &self,
        op: RStr<'_>,
        request_id: RStr<'_>,
        request_json: RString,
    ) -> FfiFuture<RResult<RString, FfiPluginError>>;

    /// Opens a streaming operation (exec, attach): resolves to a socketpair end and a response.
    #[sabi(last_prefix_field)]
    fn open_stream(
        &self,
        op: RStr<'_>,
        request_id: RStr<'_>,
        request_json: RString,
    ) -> FfiFuture<RResult<FfiStreamOpened, FfiPluginError>>;
}

/// The backend trait object as it crosses the boundary.
pub type FfiBackendBox = FfiBackend_TO<'static, RBox<()>>;

/// An extension vtable, type-erased; its type is fixed by the `(name, major)` it was asked for.
pub type FfiExtension = *const ();

/// The root module every plugin exports. Frozen for plugin-api 1.x.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModule_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// The ABI epoch the plugin was built with.
    pub abi_epoch: u32,
    /// The plugin-api version the plugin was built against.
    pub api_version: RStr<'static>,
    /// What the plugin says about itself.
    pub info: extern "C" fn() -> FfiPluginInfo,
    /// Creates the backend from host services and the plugin's config table (JSON).
    pub init: extern "C" fn(FfiHostServicesBox, RString) -> RResult<FfiBackendBox, FfiPluginError>,
    /// Looks up an extension vtable by name and major version.
    pub extension: extern "C" fn(RStr<'_>, u32) -> ROption<FfiExtension>,
    /// Shuts the plugin's runtime down, waiting at most this many milliseconds.
    #[sabi(last_prefix_field)]
    pub shutdown: extern "C" fn(u64),
}

impl RootModule for PluginModule_Ref {
    declare_root_module_statics! {PluginModule_Ref}
    const BASE_NAME: &'static str = "clauderon_plugin";
    const NAME: &'static str = "clauderon_plugin";
    // Pinned for the whole major: abi_stable's own check would refuse a 1.0 plugin on a 1.1
    // host. Our negotiation uses `api_version` and the declaration symbol instead.
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("1.0.0");
}

#[cfg(test)]
mod tests {
    #[test]
    fn export_symbol_name_matches_abi_stable() {
        // `export_plugin!` spells abi_stable's mangled root-module symbol by hand.
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }
}
