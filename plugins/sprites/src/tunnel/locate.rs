//! The `clauderon-relay` executable to upload, and its checksum: the file `relay_path` names when
//! it is set, else the static relay built into the plugin ([`super::embedded`]), else (a plugin
//! built where no static relay could be made) a static `clauderon-relay` file beside the plugin
//! library, beside the running executable, or in `$CLAUDERON_HOME/plugins`.
//!
//! Only statically linked relays are used: a dynamically linked one asks for the host's C
//! library loader and fails to start in a sprite whose C library is older than the host's.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use clauderon_plugin_sdk::{ErrorKind, PluginError};
use sha2::{Digest, Sha256};

/// The relay's file name.
pub const RELAY_FILE: &str = "clauderon-relay";

/// How to get a static relay, for error messages.
const BUILD_HINT: &str = "remove `relay_path` to use the relay built into the plugin, or build a \
     static one: `rustup target add x86_64-unknown-linux-musl && cargo build --release -p \
     clauderon-relay --target x86_64-unknown-linux-musl`";

/// The relay read on the host, with its checksum.
#[derive(Clone)]
pub struct LocalRelay {
    /// Where it came from (a path, or "built into the plugin").
    pub origin: String,
    /// Its bytes.
    pub bytes: Bytes,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
}

impl std::fmt::Debug for LocalRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRelay")
            .field("origin", &self.origin)
            .field("len", &self.bytes.len())
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|x| format!("{x:02x}")).collect()
}

impl LocalRelay {
    fn new(origin: String, bytes: Bytes) -> LocalRelay {
        let sha256 = hex(&Sha256::digest(&bytes));
        LocalRelay {
            origin,
            bytes,
            sha256,
        }
    }
}

/// Why an ELF file cannot be used as the relay, if it cannot: not an ELF executable, or
/// dynamically linked (it has a `PT_INTERP` program header naming a loader).
pub fn unusable_elf(bytes: &[u8]) -> Option<String> {
    const PT_INTERP: u32 = 3;
    if !bytes.starts_with(b"\x7fELF") {
        return Some("not a Linux executable (no ELF header)".into());
    }
    // ELF64, little-endian: the only kind the relay is built as.
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Some("not a 64-bit little-endian ELF file".into());
    }
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return Some("a truncated ELF header".into());
    };
    for i in 0..usize::from(phnum) {
        let at = usize::try_from(phoff)
            .ok()
            .and_then(|o| o.checked_add(i * usize::from(phentsize)));
        let Some(kind) = at
            .and_then(|o| bytes.get(o..o + 4))
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        else {
            return Some("a truncated ELF program header table".into());
        };
        if kind == PT_INTERP {
            return Some(
                "dynamically linked (it needs the host's C library loader, which a sprite with \
                 an older C library cannot satisfy)"
                    .into(),
            );
        }
    }
    None
}

type CacheKey = (PathBuf, u64, Option<SystemTime>);

/// Reads (and hashes) the relay file at `path`; the result is reused while the file is unchanged.
fn load(path: &Path) -> Result<Arc<LocalRelay>, String> {
    static CACHE: Mutex<Option<(CacheKey, Arc<LocalRelay>)>> = Mutex::new(None);
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    if let Ok(g) = CACHE.lock()
        && let Some((k, r)) = g.as_ref()
        && *k == key
    {
        return Ok(Arc::clone(r));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(why) = unusable_elf(&bytes) {
        return Err(format!("{}: {why}", path.display()));
    }
    let relay = Arc::new(LocalRelay::new(
        path.display().to_string(),
        Bytes::from(bytes),
    ));
    if let Ok(mut g) = CACHE.lock() {
        *g = Some((key, Arc::clone(&relay)));
    }
    Ok(relay)
}

/// The relay built into the plugin, if it has one.
pub fn embedded() -> Option<Arc<LocalRelay>> {
    static RELAY: std::sync::OnceLock<Option<Arc<LocalRelay>>> = std::sync::OnceLock::new();
    RELAY
        .get_or_init(|| {
            super::embedded::relay().map(|b| {
                Arc::new(LocalRelay::new(
                    format!("built into the plugin ({})", super::embedded::build_note()),
                    Bytes::from_static(b),
                ))
            })
        })
        .clone()
}

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

/// The files looked at when the plugin has no relay built in, in order.
pub fn file_candidates() -> Vec<PathBuf> {
    let mut v = Vec::new();
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

/// The relay to upload: `configured` (`relay_path`), else the built-in one, else the first
/// static relay file found; an error names the path or every place looked at, and why each
/// was not used.
pub fn find_relay(configured: Option<&Path>) -> Result<Arc<LocalRelay>, PluginError> {
    if let Some(path) = configured {
        return load(path).map_err(|why| {
            PluginError::new(
                ErrorKind::NotFound,
                format!(
                    "the tunnel relay configured in `relay_path` cannot be used: {why}; \
                     fix `relay_path` in the [sprites] table, or {BUILD_HINT}"
                ),
            )
        });
    }
    if let Some(relay) = embedded() {
        return Ok(relay);
    }
    let mut looked = Vec::new();
    for p in file_candidates() {
        if !p.is_file() {
            looked.push(format!("{} (missing)", p.display()));
            continue;
        }
        match load(&p) {
            Ok(r) => return Ok(r),
            Err(why) => looked.push(why),
        }
    }
    Err(PluginError::new(
        ErrorKind::NotFound,
        format!(
            "this plugin was built without a static tunnel relay ({}), and no usable \
             `{RELAY_FILE}` file was found; looked at: {}; {BUILD_HINT}, and copy it into one of \
             those places or set `relay_path` in the [sprites] table",
            super::embedded::build_note().lines().next().unwrap_or(""),
            looked.join(", ")
        ),
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
    fn a_dynamically_linked_relay_is_refused_and_the_built_in_one_is_static() {
        // This test binary itself is a dynamically linked executable.
        let me = std::env::current_exe().unwrap();
        let e = find_relay(Some(&me)).unwrap_err();
        assert!(e.message.contains("dynamically linked"), "{}", e.message);
        let built_in = embedded().expect("the build made a static relay");
        assert_eq!(unusable_elf(&built_in.bytes), None);
        assert!(built_in.origin.contains("static"), "{}", built_in.origin);
        assert_eq!(find_relay(None).unwrap().sha256, built_in.sha256);
        assert_eq!(
            unusable_elf(b"#!/bin/sh\n").as_deref(),
            Some("not a Linux executable (no ELF header)")
        );
    }

    #[test]
    fn the_file_places_include_the_executable_directory_and_home() {
        let c = file_candidates();
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
