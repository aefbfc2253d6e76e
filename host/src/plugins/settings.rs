//! A stopgap reader of the plugin-related parts of `$CLAUDERON_HOME/config.toml`
//! (`default_backend`, `[plugins.<name>]`), behind one function until the config module
//! replaces it. It does no validation beyond types.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The plugin settings from config.toml.
#[derive(Debug, Clone, Default)]
pub struct PluginSettings {
    /// `default_backend`.
    pub default_backend: Option<String>,
    /// `[plugins.<name>] path`, resolved against the config file's directory.
    pub paths: BTreeMap<String, PathBuf>,
    /// `[plugins.<name>]` tables without `path`, as JSON (handed to the plugin's init).
    pub config: BTreeMap<String, serde_json::Value>,
}

/// Reads the plugin settings from `<home>/config.toml` (missing file: defaults).
pub fn load(home: &Path) -> Result<PluginSettings, String> {
    let file = home.join("config.toml");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PluginSettings::default()),
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    };
    let doc: toml::Table = toml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut out = PluginSettings::default();
    if let Some(v) = doc.get("default_backend") {
        out.default_backend = Some(
            v.as_str()
                .ok_or_else(|| format!("{}: default_backend must be a string", file.display()))?
                .to_owned(),
        );
    }
    if let Some(plugins) = doc.get("plugins") {
        let plugins = plugins
            .as_table()
            .ok_or_else(|| format!("{}: [plugins] must be a table", file.display()))?;
        for (name, table) in plugins {
            let mut table = table
                .as_table()
                .ok_or_else(|| format!("{}: [plugins.{name}] must be a table", file.display()))?
                .clone();
            if let Some(path) = table.remove("path") {
                let path = path.as_str().ok_or_else(|| {
                    format!("{}: [plugins.{name}] path must be a string", file.display())
                })?;
                out.paths.insert(name.clone(), home.join(path));
            }
            let json = serde_json::to_value(&table)
                .map_err(|e| format!("{}: [plugins.{name}]: {e}", file.display()))?;
            out.config.insert(name.clone(), json);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_default_backend_paths_and_tables() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join("config.toml"),
            "default_backend = \"sprites\"\n[plugins.sprites]\npath = \"p/x.so\"\napi_url = \"http://127.0.0.1:1\"\n",
        )
        .unwrap();
        let s = load(home.path()).unwrap();
        assert_eq!(s.default_backend.as_deref(), Some("sprites"));
        assert_eq!(s.paths["sprites"], home.path().join("p/x.so"));
        assert_eq!(s.config["sprites"]["api_url"], "http://127.0.0.1:1");
        assert!(s.config["sprites"].get("path").is_none());
    }

    #[test]
    fn missing_file_is_defaults_and_bad_type_is_an_error() {
        let home = tempfile::tempdir().unwrap();
        assert!(load(home.path()).unwrap().default_backend.is_none());
        std::fs::write(home.path().join("config.toml"), "default_backend = 3\n").unwrap();
        assert!(load(home.path()).unwrap_err().contains("must be a string"));
    }
}
