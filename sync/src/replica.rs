//! One side of the sync on disk: a root directory scanned with git's ignores, read and changed
//! only by compare-and-swap (a change is applied only when the path still holds what the caller
//! saw), each write staged under a temporary name in the same directory and renamed into place,
//! so a reader never sees half a file. Symbolic links are never followed: a path whose parent
//! is a link is refused, so nothing is ever written outside the root.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::entry::{ContentHash, Entry, Hasher, Tree, check_path};
use crate::ignore::Patterns;

/// Names of staged files: never scanned, never synced.
pub const STAGING_PREFIX: &str = ".clauderon-sync-";

/// A change to one side: what the host's cycle asks a replica to do (locally, or over the
/// wire as `Write` / `Delete`).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Put `entry` (with `content`) at `path` where `expected` is.
    Write {
        /// The path.
        path: String,
        /// What is there now.
        expected: Option<Entry>,
        /// The new entry.
        entry: Entry,
        /// A file's bytes.
        content: Vec<u8>,
    },
    /// Remove `path`, which holds `expected`.
    Delete {
        /// The path.
        path: String,
        /// What is there now.
        expected: Entry,
    },
}

/// What a scan found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scan {
    /// Whether the root directory exists.
    pub root_present: bool,
    /// Every synced path with its entry.
    pub entries: Tree,
    /// The commit checked out at the root, when it is a git work tree with one.
    pub head: Option<String>,
}

/// A path's state outside a scan: whether something that is not a directory is there, and
/// whether git (or an extra pattern) ignores the path on this side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Probe {
    /// A file, link or other non-directory is at the path.
    pub exists: bool,
    /// The path is ignored here (it stays on this side).
    pub ignored: bool,
}

/// Why a read or a change was not done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// The path no longer holds what the caller expected (changed since its scan): nothing was
    /// done; the next cycle sees the new state.
    Changed(String),
    /// The path may not be touched (outside the root, through a link, inside `.git`).
    Refused(String),
    /// The filesystem failed.
    Io(String),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Changed(m) => write!(f, "changed meanwhile: {m}"),
            ApplyError::Refused(m) => write!(f, "refused: {m}"),
            ApplyError::Io(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for ApplyError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime: i64,
    mtime_ns: i64,
    ctime: i64,
    ctime_ns: i64,
    ino: u64,
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            size: m.len(),
            mtime: m.mtime(),
            mtime_ns: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_ns: m.ctime_nsec(),
            ino: m.ino(),
        }
    }
}

/// A root directory as one side of the sync.
#[derive(Debug)]
pub struct Replica {
    root: PathBuf,
    extra: Patterns,
    /// Hashes of files by path, valid while their stamp is unchanged (a rescan of an unchanged
    /// tree reads no file).
    cache: HashMap<String, (Stamp, ContentHash)>,
}

static STAGE_SEQ: AtomicU64 = AtomicU64::new(0);

fn io_msg(what: &str, path: &Path, e: &io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

impl Replica {
    /// A replica of `root` ignoring git's ignores plus `extra` patterns.
    pub fn new(root: impl Into<PathBuf>, extra: &[String]) -> Replica {
        Replica {
            root: root.into(),
            extra: Patterns::new(extra),
            cache: HashMap::new(),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn git(&self) -> Command {
        let mut c = Command::new("git");
        c.arg("-C")
            .arg(&self.root)
            .args(["-c", "safe.directory=*", "-c", "core.quotePath=false"])
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    /// The commit checked out at the root (`None`: not a git work tree, or no commit yet).
    pub fn head(&self) -> Option<String> {
        crate::history::head(&self.root)
    }

    /// The candidate paths: git's tracked and untracked-not-ignored files, or (outside a git
    /// work tree) every file below the root except `.git`.
    fn candidates(&self) -> io::Result<Vec<String>> {
        let out = self
            .git()
            .args(["ls-files", "-z", "-c", "-o", "--exclude-standard"])
            .output();
        let list = match out {
            Ok(o) if o.status.success() => o
                .stdout
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .filter_map(|s| std::str::from_utf8(s).ok().map(str::to_owned))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            _ => {
                let mut v = Vec::new();
                walk(&self.root, "", &mut v)?;
                v
            }
        };
        Ok(list)
    }

    fn skipped(&self, path: &str) -> bool {
        check_path(path).is_err()
            || path
                .rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with(STAGING_PREFIX))
            || self.extra.ignores(path)
    }

    /// Scans the whole root (files are hashed only when their stamp changed since last seen).
    pub fn scan(&mut self) -> io::Result<Scan> {
        let root_present = fs::symlink_metadata(&self.root).is_ok_and(|m| m.is_dir());
        if !root_present {
            return Ok(Scan::default());
        }
        let mut entries = Tree::new();
        let mut seen = HashMap::with_capacity(self.cache.len());
        for path in self.candidates()? {
            if self.skipped(&path) {
                continue;
            }
            match self.entry_at(&path) {
                Ok(Some(e)) => {
                    if let Some(c) = self.cache.remove(&path) {
                        seen.insert(path.clone(), c);
                    }
                    entries.insert(path, e);
                }
                Ok(None) => {}
                // Vanished or unreadable between listing and reading: the next scan sees it.
                Err(_) => {}
            }
        }
        self.cache = seen;
        Ok(Scan {
            root_present,
            entries,
            head: self.head(),
        })
    }

    /// The entry at `path` now (`None`: nothing there, or a directory or special file). Files
    /// are hashed unless their stamp matches the cache.
    pub fn entry_at(&mut self, path: &str) -> io::Result<Option<Entry>> {
        let full = self.root.join(path);
        let meta = match fs::symlink_metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(None),
            Err(e) => return Err(e),
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(&full)?;
            return Ok(target.to_str().map(|t| Entry::Link {
                target: t.to_owned(),
            }));
        }
        if !ft.is_file() {
            return Ok(None);
        }
        let stamp = Stamp::of(&meta);
        let exec = meta.permissions().mode() & 0o100 != 0;
        if let Some((s, h)) = self.cache.get(path)
            && *s == stamp
        {
            return Ok(Some(Entry::File {
                hash: *h,
                size: stamp.size,
                exec,
            }));
        }
        let mut f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&full)?;
        let mut hasher = Hasher::default();
        let mut buf = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buf[..n]);
        }
        let hash = hasher.finish();
        // A file that changed while it was read is hashed again on the next scan.
        let after = Stamp::of(&f.metadata()?);
        if after == stamp {
            self.cache.insert(path.to_owned(), (stamp, hash));
        }
        Ok(Some(Entry::File { hash, size, exec }))
    }

    /// What is at each of `paths` outside a scan (see [`Probe`]).
    pub fn probe(&self, paths: &[String]) -> Vec<Probe> {
        let ignored = self.git_ignored(paths);
        paths
            .iter()
            .map(|p| {
                let exists = check_path(p).is_ok()
                    && self.parents_are_dirs(p).is_ok()
                    && fs::symlink_metadata(self.root.join(p)).is_ok_and(|m| !m.is_dir());
                Probe {
                    exists,
                    ignored: self.skipped(p) || ignored.contains(p.as_str()),
                }
            })
            .collect()
    }

    /// The paths of `paths` git ignores here (`git check-ignore`, which, like `ls-files`, never
    /// calls a tracked file ignored).
    fn git_ignored(&self, paths: &[String]) -> BTreeSet<String> {
        if paths.is_empty() {
            return BTreeSet::new();
        }
        let child = self
            .git()
            .args(["check-ignore", "-z", "--stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            return BTreeSet::new();
        };
        if let Some(mut stdin) = child.stdin.take() {
            let input: Vec<u8> = paths
                .iter()
                .flat_map(|p| p.bytes().chain(std::iter::once(0)))
                .collect();
            // A writer thread: git answers while it reads, so a long list would deadlock.
            std::thread::spawn(move || {
                let _ = stdin.write_all(&input);
            });
        }
        let Ok(out) = child.wait_with_output() else {
            return BTreeSet::new();
        };
        out.stdout
            .split(|b| *b == 0)
            .filter_map(|s| std::str::from_utf8(s).ok())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Checks every directory above `path` inside the root: each must be a real directory (or
    /// not exist yet), never a link.
    fn parents_are_dirs(&self, path: &str) -> Result<(), ApplyError> {
        let mut cur = self.root.clone();
        let comps: Vec<&str> = path.split('/').collect();
        for c in &comps[..comps.len().saturating_sub(1)] {
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(ApplyError::Refused(format!(
                        "{} is a symbolic link; nothing is synced through it",
                        cur.display()
                    )));
                }
                Ok(_) => {
                    return Err(ApplyError::Changed(format!(
                        "{} is a file where {path} needs a directory",
                        cur.display()
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(ApplyError::Io(io_msg("cannot inspect", &cur, &e))),
            }
        }
        Ok(())
    }

    fn checked(&self, path: &str) -> Result<PathBuf, ApplyError> {
        check_path(path).map_err(|e| ApplyError::Refused(e.0))?;
        if path
            .rsplit('/')
            .next()
            .is_some_and(|n| n.starts_with(STAGING_PREFIX))
        {
            return Err(ApplyError::Refused(format!("{path} is a staging name")));
        }
        self.parents_are_dirs(path)?;
        Ok(self.root.join(path))
    }

    fn expect(&mut self, path: &str, expected: Option<&Entry>) -> Result<(), ApplyError> {
        let now = self
            .entry_at(path)
            .map_err(|e| ApplyError::Io(io_msg("cannot read", &self.root.join(path), &e)))?;
        if now.as_ref() == expected {
            Ok(())
        } else {
            Err(ApplyError::Changed(format!(
                "{path} holds {} where {} was expected",
                now.map_or("nothing".into(), |e| e.describe()),
                expected.map_or("nothing".into(), Entry::describe)
            )))
        }
    }

    /// The bytes of the file at `path` if it still is `expected` (a link's content is empty).
    pub fn read(&mut self, path: &str, expected: &Entry) -> Result<Vec<u8>, ApplyError> {
        let full = self.checked(path)?;
        match expected {
            Entry::Link { .. } => {
                self.expect(path, Some(expected))?;
                Ok(Vec::new())
            }
            Entry::File { hash, .. } => {
                let mut f = fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&full)
                    .map_err(|e| ApplyError::Changed(io_msg("cannot open", &full, &e)))?;
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes)
                    .map_err(|e| ApplyError::Io(io_msg("cannot read", &full, &e)))?;
                if ContentHash::of(&bytes) != *hash {
                    return Err(ApplyError::Changed(format!(
                        "{path} changed since its scan"
                    )));
                }
                Ok(bytes)
            }
        }
    }

    /// Puts `entry` (with `content` for a file) at `path` if the path still holds `expected`
    /// (`None`: nothing, or an empty directory). Staged and renamed into place.
    pub fn write(
        &mut self,
        path: &str,
        expected: Option<&Entry>,
        entry: &Entry,
        content: &[u8],
    ) -> Result<(), ApplyError> {
        let full = self.checked(path)?;
        if let Entry::File { hash, .. } = entry
            && ContentHash::of(content) != *hash
        {
            return Err(ApplyError::Refused(format!(
                "the content sent for {path} does not match its hash"
            )));
        }
        self.expect(path, expected)?;
        let dir = full
            .parent()
            .ok_or_else(|| ApplyError::Refused(format!("{path} has no parent")))?
            .to_path_buf();
        fs::create_dir_all(&dir)
            .map_err(|e| ApplyError::Io(io_msg("cannot create the directory", &dir, &e)))?;
        // An empty directory where the file goes (a type change) is removed first; a directory
        // with anything in it is someone's data.
        if expected.is_none()
            && fs::symlink_metadata(&full).is_ok_and(|m| m.is_dir())
            && fs::remove_dir(&full).is_err()
        {
            return Err(ApplyError::Changed(format!(
                "{path} is a directory with content where a file goes"
            )));
        }
        let tmp = dir.join(format!(
            "{STAGING_PREFIX}{}-{}.tmp",
            std::process::id(),
            STAGE_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let staged = match entry {
            Entry::File { exec, .. } => (|| {
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(if *exec { 0o755 } else { 0o644 })
                    .open(&tmp)?;
                f.write_all(content)?;
                // The umask may have cleared bits the entry says are set.
                f.set_permissions(fs::Permissions::from_mode(if *exec {
                    0o755
                } else {
                    0o644
                }))?;
                Ok::<_, io::Error>(())
            })(),
            Entry::Link { target } => std::os::unix::fs::symlink(target, &tmp),
        };
        if let Err(e) = staged.and_then(|()| fs::rename(&tmp, &full)) {
            let _ = fs::remove_file(&tmp);
            return Err(ApplyError::Io(io_msg("cannot write", &full, &e)));
        }
        if let (Entry::File { hash, .. }, Ok(m)) = (entry, fs::symlink_metadata(&full)) {
            self.cache.insert(path.to_owned(), (Stamp::of(&m), *hash));
        }
        Ok(())
    }

    /// Applies one change (a compare-and-swap write or delete).
    pub fn apply(&mut self, change: &Change) -> Result<(), ApplyError> {
        match change {
            Change::Write {
                path,
                expected,
                entry,
                content,
            } => self.write(path, expected.as_ref(), entry, content),
            Change::Delete { path, expected } => self.delete(path, expected),
        }
    }

    /// Removes `path` if it still holds `expected`, then every directory above it left empty.
    pub fn delete(&mut self, path: &str, expected: &Entry) -> Result<(), ApplyError> {
        let full = self.checked(path)?;
        self.expect(path, Some(expected))?;
        fs::remove_file(&full).map_err(|e| ApplyError::Io(io_msg("cannot remove", &full, &e)))?;
        self.cache.remove(path);
        let mut dir = full.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == self.root || !d.starts_with(&self.root) || fs::remove_dir(&d).is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        Ok(())
    }

    /// The directories worth watching: the root and every directory holding a synced path.
    pub fn dirs_of(&self, tree: &Tree) -> BTreeSet<PathBuf> {
        let mut dirs = BTreeSet::new();
        dirs.insert(self.root.clone());
        for p in tree.keys() {
            let mut acc = self.root.clone();
            let comps: Vec<&str> = p.split('/').collect();
            for c in &comps[..comps.len() - 1] {
                acc.push(c);
                dirs.insert(acc.clone());
            }
        }
        dirs
    }
}

/// Every file and link below `dir` (relative to the walk's root as `prefix`), skipping `.git`.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut names: Vec<(String, fs::FileType)> = Vec::new();
    for ent in rd {
        let ent = ent?;
        let Ok(name) = ent.file_name().into_string() else {
            continue;
        };
        if name == ".git" {
            continue;
        }
        names.push((name, ent.file_type()?));
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, ft) in names {
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if ft.is_dir() {
            walk(&dir.join(&name), &rel, out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content: &[u8], exec: bool) -> Entry {
        Entry::File {
            hash: ContentHash::of(content),
            size: content.len() as u64,
            exec,
        }
    }

    #[test]
    fn writes_reads_and_deletes_only_what_was_expected() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Replica::new(dir.path(), &["*.log".to_owned()]);
        let a = file(b"one", false);
        r.write("d/a.txt", None, &a, b"one").unwrap();
        r.write("x.log", None, &a, b"one").unwrap();
        let scan = r.scan().unwrap();
        assert_eq!(scan.entries.get("d/a.txt"), Some(&a));
        assert!(!scan.entries.contains_key("x.log"), "extra pattern");
        // A second write expecting nothing is refused: the path holds `a` now.
        let b = file(b"two", true);
        assert!(matches!(
            r.write("d/a.txt", None, &b, b"two"),
            Err(ApplyError::Changed(_))
        ));
        r.write("d/a.txt", Some(&a), &b, b"two").unwrap();
        assert_eq!(r.read("d/a.txt", &b).unwrap(), b"two");
        let mode = fs::metadata(dir.path().join("d/a.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        let l = Entry::Link {
            target: "../elsewhere".into(),
        };
        r.write("d/l", None, &l, b"").unwrap();
        assert_eq!(r.scan().unwrap().entries.get("d/l"), Some(&l));
        assert!(matches!(
            r.delete("d/a.txt", &a),
            Err(ApplyError::Changed(_))
        ));
        r.delete("d/a.txt", &b).unwrap();
        r.delete("d/l", &l).unwrap();
        assert!(!dir.path().join("d").exists(), "empty parents removed");
    }

    #[test]
    fn nothing_goes_through_a_link_or_into_git() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        let mut r = Replica::new(dir.path(), &[]);
        let a = file(b"x", false);
        assert!(matches!(
            r.write("out/evil", None, &a, b"x"),
            Err(ApplyError::Refused(_))
        ));
        assert!(matches!(
            r.write(".git/config", None, &a, b"x"),
            Err(ApplyError::Refused(_))
        ));
        assert!(matches!(
            r.write("../x", None, &a, b"x"),
            Err(ApplyError::Refused(_))
        ));
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
