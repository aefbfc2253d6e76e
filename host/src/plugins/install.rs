//! `clauderon plugins install PATH`: a plugin library copied into `$CLAUDERON_HOME/plugins`
//! after it was opened and verified (a clauderon plugin, of this host's plugin API major).
//!
//! The copy is written under a temporary name in the same directory and renamed over the
//! installed file, so a daemon that has the old library mapped keeps running its (unchanged)
//! inode, and a reader never sees half a library.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::discovery::plugin_file_name;
use super::loader::{self, LoadError};

/// What `install` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Installed {
    /// The plugin's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The plugin API version it was built against.
    pub api_version: String,
    /// Where it now is.
    pub path: PathBuf,
    /// The version it replaced (`"unknown"` when the old file could not be opened), if any.
    pub replaced: Option<String>,
    /// Whether the same bytes were already installed (nothing was written).
    pub unchanged: bool,
}

/// Why a plugin was not installed. Nothing was changed in the plugins directory.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The path is not a readable regular file.
    #[error("{path}: {reason}; give the path of a plugin library (libclauderon_<name>.so)")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file is not a plugin this host can load.
    #[error("not installed: {0}")]
    Load(#[from] LoadError),
    /// A newer version is installed.
    #[error(
        "not installed: plugin `{name}` {installed} is installed at {path}, newer than {new}; \
         pass --force to replace it with the older version"
    )]
    Downgrade {
        /// The plugin.
        name: String,
        /// The installed version.
        installed: String,
        /// The version offered.
        new: String,
        /// The installed file.
        path: PathBuf,
    },
    /// Writing the copy failed.
    #[error("cannot install into {dir}: {source}")]
    Write {
        /// The plugins directory.
        dir: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// Verifies the library at `src` and copies it into `plugins_dir` as `libclauderon_<name>.so`
/// (its name is the one the plugin declares). An installed newer version is only replaced with
/// `force`.
pub fn install(src: &Path, plugins_dir: &Path, force: bool) -> Result<Installed, InstallError> {
    let not_a_file = |reason: String| InstallError::NotAFile {
        path: src.to_path_buf(),
        reason,
    };
    let meta = fs::metadata(src).map_err(|e| not_a_file(e.to_string()))?;
    if !meta.is_file() {
        return Err(not_a_file("not a regular file".to_owned()));
    }
    let info = loader::open(src).map_err(|e| InstallError::Load(e.0))?.info;
    let dest = plugins_dir.join(plugin_file_name(&info.name));
    let write_err = |source| InstallError::Write {
        dir: plugins_dir.to_path_buf(),
        source,
    };
    let mut replaced = None;
    if dest.exists() {
        if fs::read(&dest).ok() == Some(fs::read(src).map_err(|e| not_a_file(e.to_string()))?) {
            return Ok(Installed {
                name: info.name,
                version: info.version,
                api_version: info.api_version,
                path: dest,
                replaced: None,
                unchanged: true,
            });
        }
        let old = loader::open(&dest).ok().map(|o| o.info.version);
        if !force && is_downgrade(old.as_deref(), &info.version) {
            return Err(InstallError::Downgrade {
                name: info.name,
                installed: old.unwrap_or_default(),
                new: info.version,
                path: dest,
            });
        }
        replaced = Some(old.unwrap_or_else(|| "unknown".to_owned()));
    }
    fs::create_dir_all(plugins_dir).map_err(write_err)?;
    let tmp = plugins_dir.join(format!(
        ".{}.install-{}",
        plugin_file_name(&info.name),
        uuid::Uuid::new_v4().simple()
    ));
    let copied = (|| {
        fs::copy(src, &tmp)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
        fs::File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, &dest)?;
        fs::File::open(plugins_dir)?.sync_all()
    })();
    if copied.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    copied.map_err(write_err)?;
    Ok(Installed {
        name: info.name,
        version: info.version,
        api_version: info.api_version,
        path: dest,
        replaced,
        unchanged: false,
    })
}

/// Whether installing `new` over `installed` goes back a version (both must be semver; a
/// version that does not parse is never called a downgrade).
fn is_downgrade(installed: Option<&str>, new: &str) -> bool {
    match (
        installed.and_then(|v| semver::Version::parse(v).ok()),
        semver::Version::parse(new).ok(),
    ) {
        (Some(old), Some(new)) => new < old,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_older_version_over_a_newer_one_is_a_downgrade() {
        assert!(is_downgrade(Some("1.2.0"), "1.1.9"));
        assert!(is_downgrade(Some("1.0.0"), "1.0.0-rc.1"));
        assert!(!is_downgrade(Some("1.2.0"), "1.2.0"));
        assert!(!is_downgrade(Some("1.2.0"), "1.3.0"));
        assert!(!is_downgrade(None, "0.1.0"));
        assert!(!is_downgrade(Some("not semver"), "0.1.0"));
    }

    #[test]
    fn a_directory_or_a_missing_file_is_refused_with_what_to_give() {
        let dir = tempfile::tempdir().unwrap();
        let e = install(dir.path(), &dir.path().join("plugins"), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a regular file") && e.contains("libclauderon_<name>.so"),
            "{e}"
        );
        let e = install(
            &dir.path().join("nope.so"),
            &dir.path().join("plugins"),
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("nope.so"), "{e}");
        assert!(!dir.path().join("plugins").exists(), "nothing was made");
    }
}
