//! Finding the `clauderon-relay` binary on the host: the `relay_path` config key, else beside the
//! plugin library, else beside the running executable, else in `$CLAUDERON_HOME/plugins`.

use std::path::{Path, PathBuf};

use clauderon_plugin_sdk::{ErrorKind, PluginError};

/// The relay's file name.
pub const RELAY_FILE: &str = "clauderon-relay";

/// The directory of the shared library this code was loaded from (Linux: `/proc/self/maps`).
fn own_library_dir() -> Option<PathBuf> {
    let here = own_library_dir as *const () as usize;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        let range = parts.next()?;
        let (lo, hi) = range.split_once('-')?;
        let lo = usize::from_str_radix(lo, 16).ok()?;
        let hi = usize::from_str_radix(hi, 16).ok()?;
        if !(lo..hi).contains(&here) {
            return None;
        }
        let path = parts.nth(4)?;
        path.starts_with('/')
            .then(|| Path::new(path).parent().map(Path::to_path_buf))
            .flatten()
    })
}

/// `$CLAUDERON_HOME`, else `~/.clauderon` (as the host defines it).
fn clauderon_home() -> Option<PathBuf> {
    match std::env::var_os("CLAUDERON_HOME") {
        Some(h) if !h.is_empty() => Some(PathBuf::from(h)),
        _ => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".clauderon")),
    }
}

/// The places looked at, in order (the configured path first when there is one).
pub fn candidates(configured: Option<&Path>) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = configured {
        v.push(p.to_path_buf());
        return v;
    }
    if let Some(d) = own_library_dir() {
        v.push(d.join(RELAY_FILE));
    }
    if let Some(d) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        v.push(d.join(RELAY_FILE));
    }
    if let Some(h) = clauderon_home() {
        v.push(h.join("plugins").join(RELAY_FILE));
    }
    v.dedup();
    v
}

/// The relay binary to upload, or an error naming every place looked at.
pub fn find_relay(configured: Option<&Path>) -> Result<PathBuf, PluginError> {
    let looked = candidates(configured);
    if let Some(p) = looked.iter().find(|p| p.is_file()) {
        return Ok(p.clone());
    }
    let list = looked
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let hint = if configured.is_some() {
        "fix `relay_path` in the [sprites] table (or remove it to use the default places)"
    } else {
        "build it with `cargo build -p clauderon-relay` (it lands next to the plugin), copy it \
         into one of those places, or set `relay_path` in the [sprites] table"
    };
    Err(PluginError::new(
        ErrorKind::NotFound,
        format!("the tunnel relay `{RELAY_FILE}` was not found; looked at: {list}; {hint}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_configured_relay_names_the_path_and_the_key() {
        let e = find_relay(Some(Path::new("/nonexistent/relay"))).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(e.message.contains("/nonexistent/relay"), "{}", e.message);
        assert!(e.message.contains("relay_path"), "{}", e.message);
    }

    #[test]
    fn the_default_places_include_the_executable_directory_and_home() {
        let c = candidates(None);
        let exe_dir = std::env::current_exe().unwrap();
        let exe_dir = exe_dir.parent().unwrap();
        assert!(c.contains(&exe_dir.join(RELAY_FILE)), "{c:?}");
        assert!(
            c.iter()
                .any(|p| p.ends_with(Path::new("plugins").join(RELAY_FILE))),
            "{c:?}"
        );
        // The test binary is an executable, not a library: its own mapping is found too.
        assert!(own_library_dir().is_some());
    }
}
