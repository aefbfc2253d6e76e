//! Opening a plugin library: the frozen declaration is read with `libloading` first (so another
//! major or a foreign library is refused with a clear message), then abi_stable checks the root
//! module's layout. Libraries are never unloaded.

use std::path::{Path, PathBuf};

use abi_stable::library::{LibraryError, lib_header_from_path};
use clauderon_plugin_api::declaration::{DECLARATION_SYMBOL, PluginDeclaration};
use clauderon_plugin_api::ffi::PluginModule_Ref;
use clauderon_plugin_api::{ABI_EPOCH, API_VERSION, Capabilities, PluginDetails, PluginError};
use serde::Serialize;

use super::registry::PluginStatus;

/// What a loaded plugin says about itself.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    /// The plugin's name.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// The plugin-api version it was built against.
    pub api_version: String,
    /// One line about it.
    pub description: String,
    /// Its capabilities.
    #[serde(skip)]
    pub capabilities: Capabilities,
    /// Its declared config keys, secrets and backend facts (`details_json`).
    pub details: PluginDetails,
}

/// Why a plugin could not be loaded. Every message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// dlopen failed: not a shared library, wrong architecture, missing file.
    #[error(
        "{path}: cannot open it as a shared library ({reason}); a plugin is a cdylib built for \
         this platform"
    )]
    Open {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// A shared library without our declaration symbol.
    #[error(
        "{path} is not a clauderon plugin: it does not export {DECLARATION_SYMBOL} (plugins call \
         clauderon_plugin_sdk::export_plugin!); remove it or rename it so it does not match \
         libclauderon_<name>"
    )]
    NotAPlugin {
        /// The file.
        path: PathBuf,
    },
    /// The declaration is malformed.
    #[error("{path} is not a clauderon plugin: its declaration is malformed ({reason})")]
    BadDeclaration {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Built against another plugin-api major (or ABI epoch).
    #[error(
        "{path} was built against clauderon-plugin-api {plugin}, but this clauderon speaks \
         clauderon-plugin-api {host}: rebuild the plugin with a clauderon-plugin-sdk on \
         clauderon-plugin-api {host_major}.x (or use a clauderon release that speaks {plugin})"
    )]
    ApiIncompatible {
        /// The file.
        path: PathBuf,
        /// The plugin's plugin-api version.
        plugin: String,
        /// The host's plugin-api version.
        host: String,
        /// The host's major.
        host_major: u64,
    },
    /// Same major declared, but abi_stable found a different root-module layout.
    #[error(
        "{path} declares clauderon-plugin-api {plugin}, but its ABI layout does not match this \
         host's clauderon-plugin-api {host} ({summary}); rebuild the plugin with a \
         clauderon-plugin-sdk on clauderon-plugin-api {host}"
    )]
    Layout {
        /// The file.
        path: PathBuf,
        /// The plugin's declared version.
        plugin: String,
        /// The host's version.
        host: String,
        /// The first line of abi_stable's report.
        summary: String,
    },
    /// Another abi_stable loading error.
    #[error("{path}: the plugin's root module could not be loaded: {reason}")]
    Abi {
        /// The file.
        path: PathBuf,
        /// abi_stable's message (shortened).
        reason: String,
    },
    /// What the plugin declares about itself (`details_json`) is malformed.
    #[error(
        "{path}: the plugin's declared details are invalid ({reason}); fix what the plugin \
         declares and rebuild it"
    )]
    BadDetails {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file name and the plugin's own name disagree.
    #[error(
        "{path} is named for plugin `{expected}` but the plugin calls itself `{actual}`; rename the \
         file to {file}"
    )]
    NameMismatch {
        /// The file.
        path: PathBuf,
        /// The name from the file or config.
        expected: String,
        /// The name the plugin reports.
        actual: String,
        /// The file name it should have.
        file: String,
    },
    /// The plugin's `init` returned an error.
    #[error("plugin `{name}` failed to initialize: {error}")]
    Init {
        /// The plugin.
        name: String,
        /// Its error.
        error: PluginError,
    },
    /// The plugin's config table does not match what it declares (checked before `init`).
    #[error("plugin `{name}` is not loaded because its config table is invalid: {message}")]
    Config {
        /// The plugin.
        name: String,
        /// Where and what (`config.toml:3:9: `sprites.api_url`: expected a string`).
        message: String,
    },
    /// The plugin's `init` panicked (caught by the SDK).
    #[error("plugin `{name}` panicked during init: {message}")]
    InitPanicked {
        /// The plugin.
        name: String,
        /// The panic message.
        message: String,
    },
}

impl LoadError {
    /// Whether this makes the plugin `incompatible` (versus `failed`).
    pub fn status(&self) -> PluginStatus {
        match self {
            LoadError::NotAPlugin { .. }
            | LoadError::BadDeclaration { .. }
            | LoadError::ApiIncompatible { .. }
            | LoadError::Layout { .. } => PluginStatus::Incompatible,
            _ => PluginStatus::Failed,
        }
    }
}

/// A library whose root module passed every check.
pub(crate) struct OpenedPlugin {
    pub(crate) module: PluginModule_Ref,
    pub(crate) info: PluginInfo,
}

/// The host's plugin-api major.
pub(crate) fn host_api_major() -> u64 {
    semver::Version::parse(API_VERSION).map_or(1, |v| v.major)
}

/// Reads the declaration with libloading. Returns the declared api version.
pub(crate) fn read_declaration(path: &Path) -> Result<String, LoadError> {
    // SAFETY: loading a library runs its initializers; we only open files named like plugins
    // from the configured search path, which is the documented trust boundary.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| {
        // libloading's Display is just "dlopen failed"; the dlerror text is the source.
        let reason = match std::error::Error::source(&e) {
            Some(src) => format!("{e}: {src}"),
            None => e.to_string(),
        };
        LoadError::Open {
            path: path.to_path_buf(),
            reason,
        }
    })?;
    let symbol = format!("{DECLARATION_SYMBOL}\0");
    // SAFETY: the symbol, when present, is the frozen `#[repr(C)]` declaration static.
    let decl: Option<PluginDeclaration> = unsafe {
        lib.get::<*const PluginDeclaration>(symbol.as_bytes())
            .ok()
            .map(|s| **s)
    };
    // Never unload: Rust cdylibs are not safe to unload (TLS destructors, runtimes).
    std::mem::forget(lib);
    let decl = decl.ok_or_else(|| LoadError::NotAPlugin {
        path: path.to_path_buf(),
    })?;
    if !decl.has_magic() {
        return Err(LoadError::BadDeclaration {
            path: path.to_path_buf(),
            reason: "wrong magic bytes".into(),
        });
    }
    let declared = decl
        .api_version()
        .ok_or_else(|| LoadError::BadDeclaration {
            path: path.to_path_buf(),
            reason: "the version is not UTF-8".into(),
        })?
        .to_owned();
    let incompatible = || LoadError::ApiIncompatible {
        path: path.to_path_buf(),
        plugin: declared.clone(),
        host: API_VERSION.to_owned(),
        host_major: host_api_major(),
    };
    let parsed = semver::Version::parse(&declared).map_err(|e| LoadError::BadDeclaration {
        path: path.to_path_buf(),
        reason: format!("version `{declared}` is not semver: {e}"),
    })?;
    if parsed.major != host_api_major() || decl.abi_epoch != ABI_EPOCH {
        return Err(incompatible());
    }
    Ok(declared)
}

/// Opens, verifies and describes a plugin library (no `init` yet).
/// On failure: the error and the declared plugin-api version, when it was read.
pub(crate) fn open(path: &Path) -> Result<OpenedPlugin, Box<(LoadError, Option<String>)>> {
    let declared = read_declaration(path).map_err(|e| {
        let declared = match &e {
            LoadError::ApiIncompatible { plugin, .. } => Some(plugin.clone()),
            _ => None,
        };
        Box::new((e, declared))
    })?;
    let with_decl = |e: LoadError| Box::new((e, Some(declared.clone())));
    // Not `PluginModule_Ref::load_from_file`: it caches one module per interface type, so a
    // second plugin would get the first one's module (abi_stable issue #92).
    let module = lib_header_from_path(path)
        .and_then(|h| h.init_root_module::<PluginModule_Ref>())
        .map_err(|e| with_decl(map_library_error(path, &declared, e)))?;
    // The module's own copy must agree with the declaration read above.
    if module.api_version().as_str() != declared || module.abi_epoch() != ABI_EPOCH {
        return Err(with_decl(LoadError::BadDeclaration {
            path: path.to_path_buf(),
            reason: format!(
                "the root module says plugin-api {} but the declaration says {declared}",
                module.api_version()
            ),
        }));
    }
    let raw = (module.info())();
    let details = parse_details(path, &raw.details_json).map_err(with_decl)?;
    Ok(OpenedPlugin {
        module,
        info: PluginInfo {
            name: raw.name.into_string(),
            version: raw.version.into_string(),
            api_version: declared,
            description: raw.description.into_string(),
            capabilities: Capabilities(raw.capabilities),
            details,
        },
    })
}

/// Parses and checks a plugin's `details_json`. Fields added after 1.0 are optional, so the
/// details of older plugins parse; a value of the wrong type or a relative workspace does not.
fn parse_details(path: &Path, json: &str) -> Result<PluginDetails, LoadError> {
    let bad = |reason: String| LoadError::BadDetails {
        path: path.to_path_buf(),
        reason,
    };
    let details: PluginDetails = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    if let Some(w) = &details.workspace
        && !w.starts_with('/')
    {
        return Err(bad(format!(
            "workspace `{w}` must be an absolute path inside the sandbox"
        )));
    }
    Ok(details)
}

fn map_library_error(path: &Path, declared: &str, e: LibraryError) -> LoadError {
    let text = e.to_string();
    tracing::debug!(path = %path.display(), "abi_stable refused the library: {text}");
    let summary = summarize(&text);
    match e {
        LibraryError::AbiInstability(_) => LoadError::Layout {
            path: path.to_path_buf(),
            plugin: declared.to_owned(),
            host: API_VERSION.to_owned(),
            summary,
        },
        _ => LoadError::Abi {
            path: path.to_path_buf(),
            reason: summary,
        },
    }
}

/// abi_stable's layout reports run to hundreds of lines; keep its `Error:` lines (for a
/// shorter root module: "incompatible type size; prefix-types have a different prefix; too
/// many fields"), or else the first line.
fn summarize(text: &str) -> String {
    let mut errors: Vec<&str> = Vec::new();
    for line in text.lines() {
        if let Some(e) = line.trim().strip_prefix("Error:") {
            let e = e.trim();
            if !e.is_empty() && !errors.contains(&e) && errors.len() < 5 {
                errors.push(e);
            }
        }
    }
    if errors.is_empty() {
        first_line(text)
    } else {
        errors.join("; ")
    }
}

fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("unknown error");
    let mut s: String = line.chars().take(200).collect();
    if s.len() < line.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_reports_are_summarized_by_their_error_lines() {
        let text = "\nCompared <this>:\n  lots\nError:incompatible type size\n  more\n\
                    Error:too many fields\nError:too many fields\n";
        assert_eq!(summarize(text), "incompatible type size; too many fields");
        assert_eq!(summarize("\n  just one line\nand more"), "just one line");
    }

    #[test]
    fn details_parse_with_or_without_the_1_1_fields_and_bad_ones_are_refused() {
        let p = Path::new("/p/libclauderon_x.so");
        let old = parse_details(p, r#"{"config_keys":[],"secrets":[]}"#).unwrap();
        assert_eq!((old.workspace, old.default_idle_seconds), (None, None));
        let new = parse_details(p, r#"{"workspace":"/w","default_idle_seconds":60}"#).unwrap();
        assert_eq!(
            (new.workspace.as_deref(), new.default_idle_seconds),
            (Some("/w"), Some(60))
        );
        for (json, needle) in [
            (r#"{"default_idle_seconds":"30m"}"#, "invalid type"),
            (
                r#"{"workspace":"ws"}"#,
                "workspace `ws` must be an absolute path",
            ),
            ("not json", "expected"),
        ] {
            let err = parse_details(p, json).unwrap_err();
            assert!(matches!(err, LoadError::BadDetails { .. }), "{err}");
            assert_eq!(err.status(), PluginStatus::Failed);
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn a_missing_file_is_an_open_error() {
        let err = read_declaration(Path::new("/nonexistent/libclauderon_x.so")).unwrap_err();
        assert!(matches!(err, LoadError::Open { .. }), "{err}");
        assert_eq!(err.status(), PluginStatus::Failed);
        assert!(err.to_string().contains("No such file"), "{err}");
    }
}
