//! What the sync keeps of one path: a file (content hash, size, executable bit) or a symbolic
//! link (its target). Directories are not entries: they exist because paths under them do.
//! Paths are relative, `/`-separated, UTF-8, without `.`, `..`, empty or `.git` components.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};

/// The SHA-256 of a file's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> ContentHash {
        ContentHash(Sha256::digest(bytes).into())
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<ContentHash> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
        }
        Some(ContentHash(out))
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex()[..12])
    }
}

/// Incremental hashing of a file read in parts.
#[derive(Default)]
pub struct Hasher(Sha256);

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hasher")
    }
}

impl Hasher {
    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The hash of everything added.
    pub fn finish(self) -> ContentHash {
        ContentHash(self.0.finalize().into())
    }
}

/// One path's state on one side.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entry {
    /// A regular file.
    File {
        /// Its content hash.
        hash: ContentHash,
        /// Its size in bytes.
        size: u64,
        /// Whether its owner-executable bit is set.
        exec: bool,
    },
    /// A symbolic link, synced as a link (never followed).
    Link {
        /// Its target, verbatim.
        target: String,
    },
}

impl Entry {
    /// A short description for messages (`file 1a2b3c4d5e6f (12 bytes)`, `link -> x`).
    pub fn describe(&self) -> String {
        match self {
            Entry::File { hash, size, exec } => format!(
                "{}file {hash:?} ({size} bytes)",
                if *exec { "executable " } else { "" }
            ),
            Entry::Link { target } => format!("link -> {target}"),
        }
    }
}

impl Entry {
    /// A one-line text form for storage: `f <hash> <size> <0|1>` or `l <target>`.
    pub fn to_text(&self) -> String {
        match self {
            Entry::File { hash, size, exec } => {
                format!("f {} {size} {}", hash.to_hex(), u8::from(*exec))
            }
            Entry::Link { target } => format!("l {target}"),
        }
    }

    /// Parses [`Entry::to_text`].
    pub fn from_text(s: &str) -> Option<Entry> {
        if let Some(t) = s.strip_prefix("l ") {
            return Some(Entry::Link {
                target: t.to_owned(),
            });
        }
        let mut it = s.strip_prefix("f ")?.split(' ');
        let hash = ContentHash::from_hex(it.next()?)?;
        let size = it.next()?.parse().ok()?;
        let exec = it.next()? == "1";
        Some(Entry::File { hash, size, exec })
    }
}

/// Every path of one side with its entry.
pub type Tree = BTreeMap<String, Entry>;

/// Why a path is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPath(pub String);

impl fmt::Display for BadPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadPath {}

/// Checks that `path` is a relative path the sync may touch: no absolute path, no `.`, `..` or
/// empty component, no NUL, and nothing inside a `.git` directory (each side's own).
pub fn check_path(path: &str) -> Result<(), BadPath> {
    if path.is_empty() || path.starts_with('/') || path.contains('\0') || path.contains('\\') {
        return Err(BadPath(format!("{path:?} is not a relative path")));
    }
    for c in path.split('/') {
        match c {
            "" | "." | ".." => {
                return Err(BadPath(format!("{path:?} has a {c:?} component")));
            }
            ".git" => return Err(BadPath(format!("{path:?} is inside .git"))),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let h = ContentHash::of(b"hello");
        assert_eq!(ContentHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(ContentHash::from_hex("zz"), None);
    }

    #[test]
    fn paths_outside_the_tree_or_in_git_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "./a",
            "a//b",
            ".git/config",
            "x/.git/HEAD",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        for good in ["a", "a/b.txt", ".gitignore", "dir/.github/x", "..a"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
    }
}
