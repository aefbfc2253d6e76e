//! The plugin side of the boundary in plain Rust: what a plugin library hands to the ABI
//! ([`PluginEntry`], [`BackendObject`], [`Extension`]) and what it gets from the host
//! ([`HostServices`]). This module turns them into the abi_stable root module and trait
//! objects of [`crate::ffi`], so the SDK builds plugins without naming a single FFI type.
//!
//! Every `extern "C"` function here catches panics: an unwind must never cross the boundary.

mod backend;
mod host;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RStr, RString};

pub use backend::{BackendObject, BoxedCall, StreamOpened};
pub use host::HostServices;

use crate::details::PluginDetails;
use crate::error::PluginError;
use crate::ffi::{
    FfiBackend_TO, FfiBackendBox, FfiExtension, FfiHostServicesBox, FfiPluginError, FfiPluginInfo,
    PluginModule, PluginModule_Ref,
};
use crate::ops::Capabilities;
use crate::panic::panicked;

/// What a plugin says about itself before `init` (the root module's `info`).
#[derive(Debug, Clone)]
pub struct Description {
    /// The plugin's name (the `<name>` in `libclauderon_<name>.so`).
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// One line about the plugin.
    pub description: String,
    /// The operations it implements.
    pub capabilities: Capabilities,
    /// Its config keys, secrets and backend facts.
    pub details: PluginDetails,
}

/// An extension vtable a plugin offers under a `(name, major)`: a `'static` `#[repr(C)]` value
/// whose type both sides agree on for that name and major.
#[derive(Debug, Clone, Copy)]
pub struct Extension(*const ());

impl Extension {
    /// Offers `vtable` as an extension.
    pub fn new<T: Sync + 'static>(vtable: &'static T) -> Extension {
        Extension(std::ptr::from_ref(vtable).cast())
    }
}

/// A plugin library, as the ABI sees it. The SDK implements this for every `Plugin`; each
/// method backs one field of the root module.
pub trait PluginEntry: 'static {
    /// Name, version, description, capabilities and details.
    fn describe() -> Description;

    /// Creates the backend from the host's services and the plugin's config table (JSON text,
    /// empty when the host sent none).
    fn init(host: HostServices, config_json: &str) -> Result<Box<dyn BackendObject>, PluginError>;

    /// The extension registered under `(name, major)`, if any.
    fn extension(name: &str, major: u32) -> Option<Extension>;

    /// Stops the plugin's runtime, waiting at most `deadline`.
    fn shutdown(deadline: Duration);
}

/// Builds the root module for `E` (called once by abi_stable when the host loads the library).
#[doc(hidden)]
pub fn root_module<E: PluginEntry>() -> PluginModule_Ref {
    PluginModule {
        abi_epoch: crate::ABI_EPOCH,
        api_version: RStr::from_str(crate::API_VERSION),
        info: info::<E>,
        init: init::<E>,
        extension: extension::<E>,
        shutdown: shutdown::<E>,
    }
    .leak_into_prefix()
}

extern "C" fn info<E: PluginEntry>() -> FfiPluginInfo {
    let d = catch_unwind(E::describe).unwrap_or_else(|_| Description {
        // An empty name makes the host refuse the library with a name mismatch.
        name: String::new(),
        version: String::new(),
        description: "the plugin panicked while describing itself".to_owned(),
        capabilities: Capabilities::empty(),
        details: PluginDetails::default(),
    });
    let details = serde_json::to_string(&d.details).unwrap_or_else(|_| "{}".to_owned());
    FfiPluginInfo {
        name: d.name.into(),
        version: d.version.into(),
        description: d.description.into(),
        capabilities: d.capabilities.0,
        details_json: details.into(),
    }
}

extern "C" fn init<E: PluginEntry>(
    services: FfiHostServicesBox,
    config: RString,
) -> RResult<FfiBackendBox, FfiPluginError> {
    let result = catch_unwind(AssertUnwindSafe(|| {
        E::init(HostServices::new(services), config.as_str())
    }));
    match result {
        Ok(Ok(backend)) => RResult::ROk(FfiBackend_TO::from_value(
            backend::Exported(backend),
            TD_Opaque,
        )),
        Ok(Err(e)) => RResult::RErr(e.into()),
        Err(payload) => RResult::RErr(panicked("init", payload.as_ref()).into()),
    }
}

extern "C" fn extension<E: PluginEntry>(name: RStr<'_>, major: u32) -> ROption<FfiExtension> {
    match catch_unwind(|| E::extension(name.as_str(), major)) {
        Ok(Some(ext)) => ROption::RSome(ext.0),
        _ => ROption::RNone,
    }
}

extern "C" fn shutdown<E: PluginEntry>(deadline_ms: u64) {
    let _ = catch_unwind(|| E::shutdown(Duration::from_millis(deadline_ms)));
}

/// Exports `$entry` (a type implementing [`PluginEntry`]) from this `cdylib`: the frozen
/// declaration symbol and abi_stable's root-module header. The SDK's `export_plugin!` calls
/// it; call it exactly once per library, at the crate root.
#[doc(hidden)]
#[macro_export]
macro_rules! export_entry {
    ($entry:ty) => {
        /// The frozen declaration the host reads before anything else.
        #[unsafe(no_mangle)]
        pub static CLAUDERON_PLUGIN_DECLARATION: $crate::declaration::PluginDeclaration =
            $crate::declaration::PluginDeclaration::CURRENT;

        /// abi_stable's root-module header (the symbol `#[export_root_module]` would emit).
        #[unsafe(no_mangle)]
        #[allow(non_upper_case_globals)]
        pub static _1as_0lib_1header_0root_bmodule_bloader:
            $crate::__private::abi_stable::library::LibHeader = {
            extern "C" fn __clauderon_erased_root_module()
            -> $crate::__private::abi_stable::library::RootModuleResult {
                $crate::__private::abi_stable::library::__call_root_module_loader(
                    $crate::export::root_module::<$entry>,
                )
            }
            // SAFETY: the constructor returns the module type the header is built for.
            unsafe {
                $crate::__private::abi_stable::library::LibHeader::from_constructor::<
                    $crate::ffi::PluginModule_Ref,
                >(
                    __clauderon_erased_root_module,
                    $crate::__private::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}
