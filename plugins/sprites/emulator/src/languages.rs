//! The base image's language runtimes: sprites.dev's default image ships node/npm,
//! python/pip and rust/cargo on every sprite's PATH (under `/.sprite/languages`). The
//! emulator hides `/root`, where a developer machine keeps rustup's and pyenv's toolchains, so
//! `--language NAME=DIR` mounts a host toolchain directory read-only at
//! `/.sprite/languages/NAME` in every sprite and puts its `bin` first on the default PATH (its
//! `lib`, when it has one, on `LD_LIBRARY_PATH`: a relocated pyenv Python finds its
//! `libpython` there). Nothing is copied into a sprite's disk but the empty mount point.

use std::path::{Path, PathBuf};

/// Where the runtimes appear inside a sprite.
pub const MOUNT_ROOT: &str = "/.sprite/languages";

/// One host toolchain mounted into every sprite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Language {
    /// Its name: the directory under [`MOUNT_ROOT`].
    pub name: String,
    /// The host directory (absolute, canonical).
    pub dir: PathBuf,
}

impl Language {
    /// Parses `NAME=DIR` (`DIR` must be an existing directory).
    pub fn parse(spec: &str) -> Result<Language, String> {
        let (name, dir) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?}: expected NAME=DIR, e.g. rust=/root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu"))?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
        {
            return Err(format!(
                "{spec:?}: the name is lowercase letters, digits, `-` and `_`"
            ));
        }
        let dir = Path::new(dir.trim())
            .canonicalize()
            .map_err(|e| format!("{spec:?}: {e}"))?;
        if !dir.is_dir() {
            return Err(format!("{spec:?}: {} is not a directory", dir.display()));
        }
        Ok(Language {
            name: name.to_owned(),
            dir,
        })
    }

    /// The mount point inside a sprite.
    pub fn mount_point(&self) -> String {
        format!("{MOUNT_ROOT}/{}", self.name)
    }

    /// The helper's argument for this runtime (`NAME=DIR`).
    pub fn helper_arg(&self) -> String {
        format!("{}={}", self.name, self.dir.display())
    }
}

/// The default-environment variables the runtimes add: PATH with each runtime's `bin` before
/// `base_path`, and `LD_LIBRARY_PATH` with each `lib` that exists (none: not set).
pub fn env(langs: &[Language], base_path: &str) -> Vec<(String, String)> {
    if langs.is_empty() {
        return Vec::new();
    }
    let mut path: Vec<String> = langs
        .iter()
        .map(|l| format!("{}/bin", l.mount_point()))
        .collect();
    path.push(base_path.to_owned());
    let mut out = vec![("PATH".to_owned(), path.join(":"))];
    let libs: Vec<String> = langs
        .iter()
        .filter(|l| l.dir.join("lib").is_dir())
        .map(|l| format!("{}/lib", l.mount_point()))
        .collect();
    if !libs.is_empty() {
        out.push(("LD_LIBRARY_PATH".to_owned(), libs.join(":")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_env_lists_bin_dirs_first() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        let spec = format!("rust={}", dir.path().display());
        let l = Language::parse(&spec).unwrap();
        assert_eq!(l.mount_point(), "/.sprite/languages/rust");
        let env = env(&[l], "/usr/bin:/bin");
        assert_eq!(
            env,
            vec![
                (
                    "PATH".to_owned(),
                    "/.sprite/languages/rust/bin:/usr/bin:/bin".to_owned()
                ),
                (
                    "LD_LIBRARY_PATH".to_owned(),
                    "/.sprite/languages/rust/lib".to_owned()
                ),
            ]
        );
        for bad in ["rust", "Rust=/tmp", "=/tmp", "x=/no/such/dir"] {
            assert!(Language::parse(bad).is_err(), "{bad}");
        }
        assert!(super::env(&[], "/bin").is_empty());
    }
}
