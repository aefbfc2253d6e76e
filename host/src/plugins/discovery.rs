//! Finding plugin libraries without loading them: explicit config paths, then
//! `CLAUDERON_PLUGIN_PATH`, then `$CLAUDERON_HOME/plugins`, then the executable's directory.
//! The first match per plugin name wins.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Where a candidate was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscoverySource {
    /// `[plugins.<name>] path = ...` in config.toml.
    Config,
    /// An entry of `CLAUDERON_PLUGIN_PATH`.
    PluginPath,
    /// `$CLAUDERON_HOME/plugins`.
    Home,
    /// The directory of the `clauderon` executable.
    ExeDir,
}

/// A plugin library found on disk, not yet loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The plugin name (from the config key or the `libclauderon_<name>.so` file name).
    pub name: String,
    /// The library path.
    pub path: PathBuf,
    /// Where it was found.
    pub source: DiscoverySource,
}

/// Where to look. Build it with [`DiscoveryOptions::from_env`] or by hand in tests.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryOptions {
    /// `[plugins.<name>] path` entries from config.toml.
    pub config_paths: BTreeMap<String, PathBuf>,
    /// The raw `CLAUDERON_PLUGIN_PATH` value (colon-separated files or directories).
    pub plugin_path: Option<OsString>,
    /// `$CLAUDERON_HOME/plugins`.
    pub home_plugins: Option<PathBuf>,
    /// The directory of the running executable.
    pub exe_dir: Option<PathBuf>,
}

impl DiscoveryOptions {
    /// The standard search locations for a `CLAUDERON_HOME` and config path entries.
    pub fn from_env(home: &Path, config_paths: BTreeMap<String, PathBuf>) -> DiscoveryOptions {
        DiscoveryOptions {
            config_paths,
            plugin_path: std::env::var_os("CLAUDERON_PLUGIN_PATH"),
            home_plugins: Some(home.join("plugins")),
            exe_dir: std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf)),
        }
    }
}

/// The platform file name of plugin `name` (`libclauderon_<name>.so` on Linux).
pub fn plugin_file_name(name: &str) -> String {
    format!(
        "{}clauderon_{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// The plugin name in a `libclauderon_<name>.so` file name.
pub fn plugin_name_from_file(file_name: &str) -> Option<&str> {
    let rest = file_name
        .strip_prefix(std::env::consts::DLL_PREFIX)?
        .strip_prefix("clauderon_")?
        .strip_suffix(std::env::consts::DLL_SUFFIX)?;
    (!rest.is_empty()).then_some(rest)
}

/// Lists candidates in search order, the first per name winning, sorted by name.
pub fn discover(opts: &DiscoveryOptions) -> Vec<Candidate> {
    let mut found: BTreeMap<String, Candidate> = BTreeMap::new();
    let mut add = |c: Candidate| {
        found.entry(c.name.clone()).or_insert(c);
    };
    for (name, path) in &opts.config_paths {
        add(Candidate {
            name: name.clone(),
            path: path.clone(),
            source: DiscoverySource::Config,
        });
    }
    if let Some(raw) = &opts.plugin_path {
        for entry in std::env::split_paths(raw) {
            if entry.as_os_str().is_empty() {
                continue;
            }
            if entry.is_dir() {
                scan_dir(&entry, DiscoverySource::PluginPath, &mut add);
            } else if let Some(name) = entry
                .file_name()
                .and_then(|f| f.to_str())
                .and_then(plugin_name_from_file)
            {
                add(Candidate {
                    name: name.to_owned(),
                    path: entry.clone(),
                    source: DiscoverySource::PluginPath,
                });
            } else {
                tracing::warn!(
                    "CLAUDERON_PLUGIN_PATH entry {} is neither a directory nor a {} file; ignored",
                    entry.display(),
                    plugin_file_name("<name>")
                );
            }
        }
    }
    if let Some(dir) = &opts.home_plugins {
        scan_dir(dir, DiscoverySource::Home, &mut add);
    }
    if let Some(dir) = &opts.exe_dir {
        scan_dir(dir, DiscoverySource::ExeDir, &mut add);
    }
    found.into_values().collect()
}

fn scan_dir(dir: &Path, source: DiscoverySource, add: &mut impl FnMut(Candidate)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut hits: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let file_name = e.file_name();
            let name = plugin_name_from_file(file_name.to_str()?)?.to_owned();
            Some((name, e.path()))
        })
        .collect();
    hits.sort();
    for (name, path) in hits {
        add(Candidate { name, path, source });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        assert_eq!(
            plugin_name_from_file(&plugin_file_name("sprites")),
            Some("sprites")
        );
        assert_eq!(plugin_name_from_file("libfixture_ok.so"), None);
        assert_eq!(plugin_name_from_file(&plugin_file_name("")), None);
    }

    #[test]
    fn first_match_wins_in_search_order() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            std::fs::write(d.join(plugin_file_name("x")), b"").unwrap();
        }
        std::fs::write(b.path().join(plugin_file_name("y")), b"").unwrap();
        std::fs::write(b.path().join("libother.so"), b"").unwrap();
        let opts = DiscoveryOptions {
            config_paths: BTreeMap::from([("z".to_owned(), PathBuf::from("/nowhere/z.so"))]),
            plugin_path: Some(a.path().as_os_str().to_owned()),
            home_plugins: Some(b.path().to_path_buf()),
            exe_dir: None,
        };
        let c = discover(&opts);
        let names: Vec<_> = c.iter().map(|c| (c.name.as_str(), c.source)).collect();
        assert_eq!(
            names,
            vec![
                ("x", DiscoverySource::PluginPath),
                ("y", DiscoverySource::Home),
                ("z", DiscoverySource::Config)
            ]
        );
        assert!(c[0].path.starts_with(a.path()));
    }

    #[test]
    fn home_beats_the_executables_directory() {
        let home = tempfile::tempdir().unwrap();
        let exe = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(plugin_file_name("x")), b"").unwrap();
        for n in ["x", "w"] {
            std::fs::write(exe.path().join(plugin_file_name(n)), b"").unwrap();
        }
        let opts = DiscoveryOptions {
            home_plugins: Some(home.path().to_path_buf()),
            exe_dir: Some(exe.path().to_path_buf()),
            ..DiscoveryOptions::default()
        };
        let c = discover(&opts);
        let names: Vec<_> = c.iter().map(|c| (c.name.as_str(), c.source)).collect();
        assert_eq!(
            names,
            vec![("w", DiscoverySource::ExeDir), ("x", DiscoverySource::Home)]
        );
        assert!(c[1].path.starts_with(home.path()));
        // The default home directory is `<CLAUDERON_HOME>/plugins`.
        let from_env = DiscoveryOptions::from_env(home.path(), BTreeMap::new());
        assert_eq!(from_env.home_plugins, Some(home.path().join("plugins")));
    }
}
