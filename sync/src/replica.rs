//! One side of the sync on disk: a root directory scanned with git's ignores, read and changed
//! only by compare-and-swap (a change is applied only when the path still holds what the caller
//! saw), each write staged under a temporary name in the same directory and renamed into place,
//! so a reader never sees half a file. Symbolic links are never followed: a path whose parent
//! is a link is refused, so nothing is ever written outside the root.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::entry::{ContentHash, Entry, Hasher, Tree, check_path};
use crate::ignore::Patterns;
use crate::lock;

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

/// How creating a new file by linking an unnamed one ended.
enum Linked {
    /// The file is in place.
    Done,
    /// It was not done, for this reason.
    Failed(ApplyError),
    /// Not done: write it the staged way.
    Fallback,
}

/// A root directory as one side of the sync.
#[derive(Debug)]
pub struct Replica {
    root: PathBuf,
    extra: Patterns,
    /// Hashes of files by path, valid while their stamp is unchanged (a rescan of an unchanged
    /// tree reads no file).
    cache: Mutex<HashMap<String, (Stamp, ContentHash)>>,
    /// Directories (relative) seen to be real directories since the last scan or removal, so
    /// a batch of writes into one directory checks its parents once. Cleared whenever this
    /// replica removes something or writes a link, and by every scan.
    known_dirs: Mutex<HashSet<String>>,
    /// Whether new files can be created unnamed and linked into place (`O_TMPFILE`): one of
    /// `TMPFILE_*`.
    tmpfile: AtomicU8,
    /// Where the hash cache is kept between processes, if anywhere.
    stamps_file: Option<PathBuf>,
    /// Bumped by every change to the cache; `saved_gen` is its value when last saved.
    cache_gen: AtomicU64,
    saved_gen: AtomicU64,
    /// When the cache was last saved.
    saved_at: Mutex<Option<std::time::Instant>>,
}

/// The first line of a stamps file.
const STAMPS_MAGIC: &[u8] = b"clauderon-sync stamps 1\n";

/// Fewer writes in a row than this are applied on the calling thread.
const PARALLEL_MIN: usize = 16;

const TMPFILE_UNKNOWN: u8 = 0;
const TMPFILE_YES: u8 = 1;
const TMPFILE_NO: u8 = 2;

thread_local! {
    /// The buffer a thread hashes files through (one per thread, not one per file: a fresh
    /// 256 KiB buffer is a mapping and page faults every time).
    static READ_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 256 * 1024]);
}

/// The process's umask, read once (from `/proc`, which never changes it; `None` when unknown).
fn umask() -> Option<u32> {
    static UMASK: OnceLock<Option<u32>> = OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("Umask:"))?;
        u32::from_str_radix(line.trim_start_matches("Umask:").trim(), 8).ok()
    })
}

fn mode_of(exec: bool) -> u32 {
    if exec { 0o755 } else { 0o644 }
}

/// Whether a file created with `mode` needs a `chmod` (the umask clears some of its bits).
fn needs_chmod(mode: u32) -> bool {
    umask().is_none_or(|m| m & mode != 0)
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
            cache: Mutex::new(HashMap::new()),
            known_dirs: Mutex::new(HashSet::new()),
            tmpfile: AtomicU8::new(TMPFILE_UNKNOWN),
            stamps_file: None,
            cache_gen: AtomicU64::new(0),
            saved_gen: AtomicU64::new(0),
            saved_at: Mutex::new(None),
        }
    }

    /// Keeps the hash cache in `file` between processes (a helper reopened after a quiet
    /// spell, a restarted daemon): loaded now (a missing or damaged file is an empty cache),
    /// written by [`Replica::save_stamps`]. A file is trusted only while its size, times and
    /// inode are those recorded, as within one process.
    pub fn with_stamps_file(mut self, file: PathBuf) -> Replica {
        if let Ok(bytes) = fs::read(&file)
            && let Some(map) = decode_stamps(&bytes)
        {
            *lock(&self.cache) = map;
        }
        self.stamps_file = Some(file);
        self
    }

    /// Writes the hash cache to its stamps file when it changed and the last write is at
    /// least `every` old (staged and renamed, so a reader never sees half of it).
    pub fn save_stamps(&self, every: std::time::Duration) -> io::Result<()> {
        let Some(file) = &self.stamps_file else {
            return Ok(());
        };
        let gen_now = self.cache_gen.load(Ordering::Relaxed);
        if gen_now == self.saved_gen.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut at = lock(&self.saved_at);
        if at.is_some_and(|t| t.elapsed() < every) {
            return Ok(());
        }
        let bytes = encode_stamps(&lock(&self.cache));
        if let Some(dir) = file.parent() {
            fs::create_dir_all(dir)?;
        }
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, file))?;
        self.saved_gen.store(gen_now, Ordering::Relaxed);
        *at = Some(std::time::Instant::now());
        Ok(())
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
        lock(&self.known_dirs).clear();
        let mut entries = Tree::new();
        let mut seen = HashMap::with_capacity(lock(&self.cache).len());
        let paths: Vec<String> = self
            .candidates()?
            .into_iter()
            .filter(|p| !self.skipped(p))
            .collect();
        let found = self.entries_at(&paths);
        for (path, found) in paths.into_iter().zip(found) {
            match found {
                Ok(Some(e)) => {
                    if let Some(c) = lock(&self.cache).remove(&path) {
                        seen.insert(path.clone(), c);
                    }
                    entries.insert(path, e);
                }
                Ok(None) => {}
                // Vanished or unreadable between listing and reading: the next scan sees it.
                Err(_) => {}
            }
        }
        let mut cache = lock(&self.cache);
        // What is left was not seen: gone from the tree.
        if !cache.is_empty() {
            self.cache_gen.fetch_add(1, Ordering::Relaxed);
        }
        *cache = seen;
        drop(cache);
        Ok(Scan {
            root_present,
            entries,
            head: self.head(),
        })
    }

    /// [`Replica::entry_at`] of each path, in order. Many paths are looked at over a few
    /// threads: a first scan hashes every byte of the tree, which one core cannot keep up
    /// with.
    fn entries_at(&self, paths: &[String]) -> Vec<io::Result<Option<Entry>>> {
        const CHUNK: usize = 64;
        let threads = worker_threads();
        if threads == 1 || paths.len() < 4 * CHUNK {
            return paths.iter().map(|p| self.entry_at(p)).collect();
        }
        let chunks: Vec<&[String]> = paths.chunks(CHUNK).collect();
        in_parallel(&chunks, threads, |chunk| {
            chunk.iter().map(|p| self.entry_at(p)).collect::<Vec<_>>()
        })
        .into_iter()
        .zip(&chunks)
        .flat_map(|(done, chunk)| {
            done.unwrap_or_else(|| {
                let stopped = || Err(io::Error::other("a scan thread stopped"));
                chunk.iter().map(|_| stopped()).collect()
            })
        })
        .collect()
    }

    /// The entry at `path` now (`None`: nothing there, or a directory or special file). Files
    /// are hashed unless their stamp matches the cache.
    pub fn entry_at(&self, path: &str) -> io::Result<Option<Entry>> {
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
        let cached = lock(&self.cache).get(path).copied();
        if let Some((s, h)) = cached
            && s == stamp
        {
            return Ok(Some(Entry::File {
                hash: h,
                size: stamp.size,
                exec,
            }));
        }
        let mut f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&full)?;
        let mut hasher = Hasher::default();
        let mut size = 0u64;
        READ_BUF.with_borrow_mut(|buf| {
            loop {
                let n = f.read(buf)?;
                if n == 0 {
                    return Ok::<_, io::Error>(());
                }
                size += n as u64;
                hasher.update(&buf[..n]);
            }
        })?;
        let hash = hasher.finish();
        // A file that changed while it was read is hashed again on the next scan.
        let after = Stamp::of(&f.metadata()?);
        if after == stamp {
            lock(&self.cache).insert(path.to_owned(), (stamp, hash));
            self.cache_gen.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Some(Entry::File { hash, size, exec }))
    }

    /// What is at each of `paths` outside a scan (see [`Probe`]). Git's answer on ignores is
    /// computed while the paths are looked at.
    pub fn probe(&self, paths: &[String]) -> Vec<Probe> {
        let asked = self.ask_check_ignore(paths);
        let exists: Vec<bool> = paths
            .iter()
            .map(|p| {
                check_path(p).is_ok()
                    && self.parents_are_dirs(p).is_ok()
                    && fs::symlink_metadata(self.root.join(p)).is_ok_and(|m| !m.is_dir())
            })
            .collect();
        let ignored = asked.map(ignored_of).unwrap_or_default();
        paths
            .iter()
            .zip(exists)
            .map(|(p, exists)| Probe {
                exists,
                ignored: self.skipped(p) || ignored.contains(p.as_str()),
            })
            .collect()
    }

    /// Starts `git check-ignore` on `paths` (which, like `ls-files`, never calls a tracked
    /// file ignored); [`ignored_of`] collects its answer. `None`: nothing to ask, or no git.
    fn ask_check_ignore(&self, paths: &[String]) -> Option<std::process::Child> {
        if paths.is_empty() {
            return None;
        }
        let mut child = self
            .git()
            .args(["check-ignore", "-z", "--stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
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
        Some(child)
    }

    /// Checks every directory above `path` inside the root: each must be a real directory (or
    /// not exist yet), never a link. A directory found real is remembered (see `known_dirs`).
    fn parents_are_dirs(&self, path: &str) -> Result<(), ApplyError> {
        let Some((parent, _)) = path.rsplit_once('/') else {
            return Ok(());
        };
        if lock(&self.known_dirs).contains(parent) {
            return Ok(());
        }
        let mut cur = self.root.clone();
        let mut rel = String::new();
        for c in parent.split('/') {
            cur.push(c);
            if !rel.is_empty() {
                rel.push('/');
            }
            rel.push_str(c);
            if lock(&self.known_dirs).contains(&rel) {
                continue;
            }
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.is_dir() => {
                    lock(&self.known_dirs).insert(rel.clone());
                }
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

    fn expect(&self, path: &str, expected: Option<&Entry>) -> Result<(), ApplyError> {
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
    pub fn read(&self, path: &str, expected: &Entry) -> Result<Vec<u8>, ApplyError> {
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
                let before = f.metadata().ok().map(|m| Stamp::of(&m));
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes)
                    .map_err(|e| ApplyError::Io(io_msg("cannot read", &full, &e)))?;
                // Unchanged since it was hashed (the same stamp before and after the read, as
                // a scan trusts): no need to hash it again.
                let after = f.metadata().ok().map(|m| Stamp::of(&m));
                let known = before.is_some()
                    && before == after
                    && lock(&self.cache)
                        .get(path)
                        .is_some_and(|(s, h)| Some(*s) == before && h == hash)
                    && bytes.len() as u64 == before.map_or(0, |s| s.size);
                if !known && ContentHash::of(&bytes) != *hash {
                    return Err(ApplyError::Changed(format!(
                        "{path} changed since its scan"
                    )));
                }
                Ok(bytes)
            }
        }
    }

    /// Puts `entry` (with `content` for a file) at `path` if the path still holds `expected`
    /// (`None`: nothing, or an empty directory). A new file is created unnamed and linked into
    /// place (a link fails if anything appeared there meanwhile); anything else is staged
    /// under a temporary name and renamed into place. Either way no reader sees half a file.
    pub fn write(
        &self,
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
        let dir = full
            .parent()
            .ok_or_else(|| ApplyError::Refused(format!("{path} has no parent")))?
            .to_path_buf();
        if let (None, Entry::File { hash, exec, .. }) = (expected, entry) {
            match self.link_new_file(path, &full, &dir, *hash, *exec, content) {
                Linked::Done => return Ok(()),
                Linked::Failed(e) => return Err(e),
                // Something is there (an empty directory, a special file) or the filesystem
                // cannot: the staged path below decides.
                Linked::Fallback => {}
            }
        }
        self.expect(path, expected)?;
        fs::create_dir_all(&dir)
            .map_err(|e| ApplyError::Io(io_msg("cannot create the directory", &dir, &e)))?;
        // An empty directory where the file goes (a type change) is removed first; a directory
        // with anything in it is someone's data.
        if expected.is_none() && fs::symlink_metadata(&full).is_ok_and(|m| m.is_dir()) {
            lock(&self.known_dirs).clear();
            if fs::remove_dir(&full).is_err() {
                return Err(ApplyError::Changed(format!(
                    "{path} is a directory with content where a file goes"
                )));
            }
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
                    .mode(mode_of(*exec))
                    .open(&tmp)?;
                f.write_all(content)?;
                if needs_chmod(mode_of(*exec)) {
                    f.set_permissions(fs::Permissions::from_mode(mode_of(*exec)))?;
                }
                Ok::<_, io::Error>(())
            })(),
            Entry::Link { target } => {
                // Directories remembered below this path are no longer reachable as such.
                lock(&self.known_dirs).clear();
                std::os::unix::fs::symlink(target, &tmp)
            }
        };
        if let Err(e) = staged.and_then(|()| fs::rename(&tmp, &full)) {
            let _ = fs::remove_file(&tmp);
            return Err(ApplyError::Io(io_msg("cannot write", &full, &e)));
        }
        if let (Entry::File { hash, .. }, Ok(m)) = (entry, fs::symlink_metadata(&full)) {
            lock(&self.cache).insert(path.to_owned(), (Stamp::of(&m), *hash));
            self.cache_gen.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Creates a new file at `full` where nothing should be: an unnamed file in `dir`
    /// (`O_TMPFILE`) filled and then linked to its name, which fails if the name is taken.
    fn link_new_file(
        &self,
        path: &str,
        full: &Path,
        dir: &Path,
        hash: ContentHash,
        exec: bool,
        content: &[u8],
    ) -> Linked {
        if self.tmpfile.load(Ordering::Relaxed) == TMPFILE_NO {
            return Linked::Fallback;
        }
        let mode = mode_of(exec);
        let open = |dir: &Path| {
            fs::OpenOptions::new()
                .write(true)
                .mode(mode)
                .custom_flags(libc::O_TMPFILE)
                .open(dir)
        };
        let mut f = match open(dir) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Err(e) = fs::create_dir_all(dir) {
                    return Linked::Failed(ApplyError::Io(io_msg(
                        "cannot create the directory",
                        dir,
                        &e,
                    )));
                }
                match open(dir) {
                    Ok(f) => f,
                    Err(_) => return self.no_tmpfile(),
                }
            }
            Err(_) => return self.no_tmpfile(),
        };
        let filled = f.write_all(content).and_then(|()| {
            if needs_chmod(mode) {
                f.set_permissions(fs::Permissions::from_mode(mode))
            } else {
                Ok(())
            }
        });
        if let Err(e) = filled {
            return Linked::Failed(ApplyError::Io(io_msg("cannot write", full, &e)));
        }
        let (Ok(from), Ok(to)) = (
            std::ffi::CString::new(format!("/proc/self/fd/{}", f.as_raw_fd())),
            std::ffi::CString::new(full.as_os_str().as_bytes()),
        ) else {
            return Linked::Fallback;
        };
        // SAFETY: both are valid NUL-terminated paths; `f` stays open across the call.
        let rc = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EEXIST) => match fs::symlink_metadata(full) {
                    // A file or link appeared since the caller saw nothing.
                    Ok(m) if m.is_file() || m.file_type().is_symlink() => {
                        Linked::Failed(ApplyError::Changed(format!(
                            "{path} holds {} where nothing was expected",
                            self.entry_at(path)
                                .ok()
                                .flatten()
                                .map_or("something".into(), |e| e.describe())
                        )))
                    }
                    _ => Linked::Fallback,
                },
                Some(libc::ENOENT | libc::EPERM | libc::EACCES | libc::EXDEV) => self.no_tmpfile(),
                _ => Linked::Failed(ApplyError::Io(io_msg("cannot write", full, &e))),
            };
        }
        self.tmpfile.store(TMPFILE_YES, Ordering::Relaxed);
        if let Ok(m) = f.metadata() {
            lock(&self.cache).insert(path.to_owned(), (Stamp::of(&m), hash));
            self.cache_gen.fetch_add(1, Ordering::Relaxed);
        }
        Linked::Done
    }

    /// Notes that unnamed files do not work here (an old kernel, a filesystem without them, no
    /// `/proc`): every later write is staged and renamed.
    fn no_tmpfile(&self) -> Linked {
        let _ = self.tmpfile.compare_exchange(
            TMPFILE_UNKNOWN,
            TMPFILE_NO,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        Linked::Fallback
    }

    /// Applies one change (a compare-and-swap write or delete).
    pub fn apply(&self, change: &Change) -> Result<(), ApplyError> {
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

    /// Applies `changes` in order, one result each. A run of writes is spread over a few
    /// threads (creating files is mostly the kernel's work, which one thread cannot keep
    /// busy); a batch never holds two changes to one path, and deletions run one at a time.
    pub fn apply_all(&self, changes: &[Change]) -> Vec<Result<(), ApplyError>> {
        let mut out = Vec::with_capacity(changes.len());
        let mut i = 0;
        while i < changes.len() {
            let run = changes[i..]
                .iter()
                .take_while(|c| matches!(c, Change::Write { .. }))
                .count();
            if run < PARALLEL_MIN {
                out.push(self.apply(&changes[i]));
                i += 1;
                continue;
            }
            out.extend(self.apply_parallel(&changes[i..i + run]));
            i += run;
        }
        out
    }

    fn apply_parallel(&self, changes: &[Change]) -> Vec<Result<(), ApplyError>> {
        let threads = worker_threads();
        in_parallel(changes, threads, |c| self.apply(c))
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ApplyError::Io("a write thread stopped".into()))))
            .collect()
    }

    /// Removes `path` if it still holds `expected`, then every directory above it left empty.
    pub fn delete(&self, path: &str, expected: &Entry) -> Result<(), ApplyError> {
        let full = self.checked(path)?;
        self.expect(path, Some(expected))?;
        fs::remove_file(&full).map_err(|e| ApplyError::Io(io_msg("cannot remove", &full, &e)))?;
        lock(&self.cache).remove(path);
        self.cache_gen.fetch_add(1, Ordering::Relaxed);
        lock(&self.known_dirs).clear();
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

/// How many threads a scan or a write group spreads over: the cores, at most 4.
fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, 4)
}

/// `f` of every item over `threads` threads, in order (`None` where a thread stopped first).
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<Option<R>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(k) else { break };
                    *lock(&results[k]) = Some(f(item));
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
        .collect()
}

fn encode_stamps(cache: &HashMap<String, (Stamp, ContentHash)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(STAMPS_MAGIC.len() + cache.len() * 120);
    out.extend_from_slice(STAMPS_MAGIC);
    for (path, (s, h)) in cache {
        out.extend_from_slice(&(path.len() as u32).to_be_bytes());
        out.extend_from_slice(path.as_bytes());
        for v in [s.size, s.ino] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        for v in [s.mtime, s.mtime_ns, s.ctime, s.ctime_ns] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&h.0);
    }
    out
}

fn decode_stamps(bytes: &[u8]) -> Option<HashMap<String, (Stamp, ContentHash)>> {
    let mut rest = bytes.strip_prefix(STAMPS_MAGIC)?;
    let mut take = |n: usize| -> Option<&[u8]> {
        if rest.len() < n {
            return None;
        }
        let (a, b) = rest.split_at(n);
        rest = b;
        Some(a)
    };
    let mut map = HashMap::new();
    while let Some(len) = take(4) {
        let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
        let path = std::str::from_utf8(take(len)?).ok()?.to_owned();
        let u = |b: &[u8]| b.try_into().ok().map(u64::from_be_bytes);
        let i = |b: &[u8]| b.try_into().ok().map(i64::from_be_bytes);
        let size = u(take(8)?)?;
        let ino = u(take(8)?)?;
        let mtime = i(take(8)?)?;
        let mtime_ns = i(take(8)?)?;
        let ctime = i(take(8)?)?;
        let ctime_ns = i(take(8)?)?;
        let hash = ContentHash(take(32)?.try_into().ok()?);
        map.insert(
            path,
            (
                Stamp {
                    size,
                    mtime,
                    mtime_ns,
                    ctime,
                    ctime_ns,
                    ino,
                },
                hash,
            ),
        );
    }
    Some(map)
}

/// The paths a `git check-ignore` started by [`Replica::ask_check_ignore`] called ignored
/// (none if it failed).
fn ignored_of(child: std::process::Child) -> BTreeSet<String> {
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
    fn a_new_file_never_replaces_one_that_appeared_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let r = Replica::new(dir.path(), &[]);
        // Someone else's file appears after the caller saw nothing there.
        fs::create_dir_all(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d/a.txt"), b"theirs").unwrap();
        let ours = file(b"ours", false);
        assert!(matches!(
            r.write("d/a.txt", None, &ours, b"ours"),
            Err(ApplyError::Changed(_))
        ));
        assert_eq!(fs::read(dir.path().join("d/a.txt")).unwrap(), b"theirs");
        // An empty directory where the file goes still gives way (a type change).
        fs::create_dir(dir.path().join("d/b")).unwrap();
        r.write("d/b", None, &ours, b"ours").unwrap();
        assert_eq!(fs::read(dir.path().join("d/b")).unwrap(), b"ours");
    }

    #[test]
    fn a_batch_of_writes_is_applied_in_parallel_with_one_result_each_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let r = Replica::new(dir.path(), &[]);
        fs::create_dir_all(dir.path().join("d7")).unwrap();
        fs::write(dir.path().join("d7/f57"), b"already here").unwrap();
        let changes: Vec<Change> = (0..200)
            .map(|i| {
                let content = format!("file {i}").into_bytes();
                Change::Write {
                    path: format!("d{}/f{i}", i % 10),
                    expected: None,
                    entry: file(&content, i % 3 == 0),
                    content,
                }
            })
            .collect();
        let results = r.apply_all(&changes);
        assert_eq!(results.len(), 200);
        for (i, res) in results.iter().enumerate() {
            if i == 57 {
                assert!(matches!(res, Err(ApplyError::Changed(_))), "{res:?}");
            } else {
                assert_eq!(res, &Ok(()), "write {i}");
            }
        }
        let scan = Replica::new(dir.path(), &[]).scan().unwrap();
        assert_eq!(scan.entries.len(), 200);
        assert_eq!(
            fs::read(dir.path().join("d3/f123")).unwrap(),
            b"file 123".to_vec()
        );
        let mode = fs::metadata(dir.path().join("d0/f30"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        // No staged file is left behind.
        for d in fs::read_dir(dir.path()).unwrap() {
            for f in fs::read_dir(d.unwrap().path()).unwrap() {
                let name = f.unwrap().file_name().into_string().unwrap();
                assert!(!name.starts_with(STAGING_PREFIX), "{name}");
            }
        }
    }

    #[test]
    fn a_large_tree_is_scanned_over_threads_with_every_entry_right() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..700 {
            let d = dir.path().join(format!("d{}", i % 7));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join(format!("f{i}")), format!("content {i}")).unwrap();
        }
        std::os::unix::fs::symlink("d0/f0", dir.path().join("link")).unwrap();
        let mut r = Replica::new(dir.path(), &[]);
        let entries = r.scan().unwrap().entries;
        assert_eq!(entries.len(), 701);
        for i in [0, 1, 350, 699] {
            let p = format!("d{}/f{i}", i % 7);
            assert_eq!(
                entries.get(&p),
                Some(&file(format!("content {i}").as_bytes(), false)),
                "{p}"
            );
        }
        assert_eq!(
            entries.get("link"),
            Some(&Entry::Link {
                target: "d0/f0".into()
            })
        );
        // Scanned again, from the hash cache: the same.
        assert_eq!(r.scan().unwrap().entries, entries);
    }

    #[test]
    fn the_hash_cache_outlives_the_process_but_only_for_unchanged_files() {
        let dir = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let stamps = state.path().join("s/stamps");
        fs::write(dir.path().join("a.txt"), b"one").unwrap();
        let mut r = Replica::new(dir.path(), &[]).with_stamps_file(stamps.clone());
        assert_eq!(
            r.scan().unwrap().entries.get("a.txt"),
            Some(&file(b"one", false))
        );
        r.save_stamps(std::time::Duration::ZERO).unwrap();
        // A later process trusts the file's recorded hash while its stamp holds: shown here
        // by a planted hash that only the cache can know.
        let mut bytes = fs::read(&stamps).unwrap();
        let n = bytes.len();
        bytes[n - 32..].copy_from_slice(&[9u8; 32]);
        fs::write(&stamps, &bytes).unwrap();
        let mut again = Replica::new(dir.path(), &[]).with_stamps_file(stamps.clone());
        let planted = Entry::File {
            hash: ContentHash([9u8; 32]),
            size: 3,
            exec: false,
        };
        assert_eq!(again.scan().unwrap().entries.get("a.txt"), Some(&planted));
        // Any change to the file (its ctime moves) makes it hashed again.
        fs::write(dir.path().join("a.txt"), b"two").unwrap();
        let mut third = Replica::new(dir.path(), &[]).with_stamps_file(stamps.clone());
        assert_eq!(
            third.scan().unwrap().entries.get("a.txt"),
            Some(&file(b"two", false))
        );
        // A damaged file is an empty cache, not an error.
        fs::write(&stamps, b"clauderon-sync stamps 1\n\x00\x00").unwrap();
        let mut fourth = Replica::new(dir.path(), &[]).with_stamps_file(stamps);
        assert_eq!(
            fourth.scan().unwrap().entries.get("a.txt"),
            Some(&file(b"two", false))
        );
    }

    #[test]
    fn nothing_goes_through_a_link_or_into_git() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        let r = Replica::new(dir.path(), &[]);
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
