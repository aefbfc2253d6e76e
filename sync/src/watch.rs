//! Watching a replica's directories with inotify (Linux): one watch per directory that holds a
//! synced path (so `node_modules/` and `target/` cost nothing), plus a new directory as soon as
//! it appears, and `.git` for commits. Every event only says "something changed": the host then
//! scans, and a scan of an unchanged tree reads no file. No timer, no polling: an idle tree
//! costs nothing. The sandbox's helper and the host's worktree both watch this way.

use std::collections::{BTreeSet, HashMap};
use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::lock;

/// A set of inotify watches.
#[derive(Debug, Clone)]
pub struct Watcher {
    fd: Arc<Fd>,
    dirs: Arc<Mutex<HashMap<i32, PathBuf>>>,
    /// An eventfd that ends [`Watcher::run`] (see [`Watcher::stop`]).
    stop: Arc<Fd>,
}

/// Stops its watcher's [`Watcher::run`] when dropped.
#[derive(Debug)]
pub struct StopOnDrop(Watcher);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[derive(Debug)]
struct Fd(i32);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe {
            libc::close(self.0);
        }
    }
}

const MASK: u32 = libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MODIFY
    | libc::IN_CLOSE_WRITE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_ATTRIB
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR;

/// How long the watcher lets a burst of events gather after a read that returned some.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(10);

impl Watcher {
    /// A new inotify instance.
    pub fn new() -> io::Result<Watcher> {
        // SAFETY: a plain syscall.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = Fd(fd);
        // SAFETY: a plain syscall.
        let stop = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if stop < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Watcher {
            fd: Arc::new(fd),
            dirs: Arc::new(Mutex::new(HashMap::new())),
            stop: Arc::new(Fd(stop)),
        })
    }

    /// Makes [`Watcher::run`] return (on any clone of this watcher).
    pub fn stop(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 valid bytes to our eventfd.
        unsafe {
            libc::write(self.stop.0, (&raw const one).cast(), 8);
        }
    }

    /// A guard that stops this watcher's `run` when it goes out of scope.
    pub fn stop_on_drop(&self) -> StopOnDrop {
        StopOnDrop(self.clone())
    }

    fn add(&self, dir: &Path) -> io::Result<()> {
        let c = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))?;
        // SAFETY: `c` is a valid C string for the call's duration.
        let wd = unsafe { libc::inotify_add_watch(self.fd.0, c.as_ptr(), MASK) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        lock(&self.dirs).insert(wd, dir.to_path_buf());
        Ok(())
    }

    /// Watches `dirs` (the caller adds any extra, e.g. `.git` and its refs): new ones are
    /// added, and ones no longer wanted removed, except a directory that still holds no file at any depth (made
    /// by `mkdir` and not filled yet): a file written into it later must still be seen. So
    /// only directories of ignored content (`node_modules/`, `target/`) stop being watched.
    /// Directories that vanished are skipped.
    pub fn set_dirs(&self, dirs: &BTreeSet<PathBuf>) {
        let current: Vec<(i32, PathBuf)> = lock(&self.dirs)
            .iter()
            .map(|(w, p)| (*w, p.clone()))
            .collect();
        for (wd, p) in current {
            if !dirs.contains(&p) && !holds_no_file(&p) {
                // SAFETY: a plain syscall on our descriptor.
                unsafe {
                    libc::inotify_rm_watch(self.fd.0, wd);
                }
                lock(&self.dirs).remove(&wd);
            }
        }
        let have: BTreeSet<PathBuf> = lock(&self.dirs).values().cloned().collect();
        for d in dirs.difference(&have) {
            let _ = self.add(d);
        }
    }

    /// Blocks until events arrive; calls `on_change` once per batch. A directory created under
    /// a watched one is watched at once (with what is already inside it), so files written
    /// into it right away are not missed. Returns when the descriptor fails or on
    /// [`Watcher::stop`].
    pub fn run(&self, on_change: impl FnMut()) -> io::Error {
        self.run_filtered(|_, _| true, on_change)
    }

    /// [`Watcher::run`], where an event counts as a change only if `counts(dir, name)` says so
    /// (the watched directory and the entry's name in it; a lost event queue always counts).
    pub fn run_filtered(
        &self,
        mut counts: impl FnMut(&Path, &OsStr) -> bool,
        mut on_change: impl FnMut(),
    ) -> io::Error {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: self.fd.0,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.stop.0,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: two valid pollfds; waits without a timeout.
            if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return e;
            }
            if fds[1].revents != 0 {
                return io::Error::other("the watcher was stopped");
            }
            if fds[0].revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
                return io::Error::other("the inotify descriptor failed");
            }
            // SAFETY: `buf` is valid for writes of its length.
            let n = unsafe { libc::read(self.fd.0, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return e;
            }
            if self.handle(&buf[..n as usize], &mut counts) {
                on_change();
            }
            // Events come in bursts (a sync writing thousands of files, a build, a checkout):
            // the rest of a burst is read a moment later in a few large reads, not one wake-up
            // per file. The first event of a quiet tree is still seen at once. A directory
            // made meanwhile is watched that much later, which the scan that the change
            // announced covers: it lists what is there.
            if self.wait_for_stop(COALESCE) {
                return io::Error::other("the watcher was stopped");
            }
        }
    }

    /// Waits `how_long` unless [`Watcher::stop`] is called first (then `true`).
    fn wait_for_stop(&self, how_long: std::time::Duration) -> bool {
        let mut fds = [libc::pollfd {
            fd: self.stop.0,
            events: libc::POLLIN,
            revents: 0,
        }];
        let ms = how_long.as_millis().try_into().unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
        n > 0 && fds[0].revents != 0
    }

    /// Follows one read's worth of events: new directories are watched, removed ones
    /// forgotten. Whether any of them is a change that `counts` (a watch we removed ourselves
    /// says `IN_IGNORED` and nothing else: not one).
    fn handle(&self, buf: &[u8], counts: &mut impl FnMut(&Path, &OsStr) -> bool) -> bool {
        let mut changed = false;
        let n = buf.len();
        let mut off = 0;
        let header = std::mem::size_of::<libc::inotify_event>();
        while off + header <= n {
            // SAFETY: the kernel wrote a whole event header at `off`; read unaligned.
            let ev: libc::inotify_event =
                unsafe { std::ptr::read_unaligned(buf[off..].as_ptr().cast()) };
            let name_len = ev.len as usize;
            let name = &buf[off + header..(off + header + name_len).min(n)];
            let name = OsStr::from_bytes(name.split(|b| *b == 0).next().unwrap_or(&[]));
            let is_change = ev.mask & !libc::IN_IGNORED != 0;
            let new_dir = ev.mask & libc::IN_ISDIR != 0
                && ev.mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0
                && name != ".git";
            // The watched directory is looked up only while it matters: until one event of the
            // batch counted, and for a new directory (a large batch is thousands of events).
            if (is_change && !changed) || new_dir {
                let dir = lock(&self.dirs).get(&ev.wd).cloned();
                if is_change && !changed {
                    changed = match &dir {
                        Some(d) => counts(d, name),
                        // The queue overflowed, or a watch just removed: count it, to be safe.
                        None => true,
                    };
                }
                if new_dir && let Some(parent) = dir {
                    self.add_tree(&parent.join(name));
                }
            }
            if ev.mask & libc::IN_IGNORED != 0 {
                lock(&self.dirs).remove(&ev.wd);
            }
            off += header + name_len;
        }
        changed
    }

    fn add_tree(&self, dir: &Path) {
        if self.add(dir).is_err() {
            return;
        }
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) && e.file_name() != ".git" {
                    self.add_tree(&e.path());
                }
            }
        }
    }
}

/// Whether `dir` exists and holds only directories, at any depth (stops at the first file).
pub fn holds_no_file(dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    for e in rd {
        let Ok(e) = e else { return false };
        match e.file_type() {
            Ok(t) if t.is_dir() => {
                if !holds_no_file(&e.path()) {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A new temporary directory (kept alive by the first value), its path, and a watcher on it.
    fn watching_a_tempdir() -> (tempfile::TempDir, PathBuf, Watcher) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let w = Watcher::new().unwrap();
        w.set_dirs(&[root.clone()].into_iter().collect());
        (dir, root, w)
    }

    #[test]
    fn reports_changes_in_watched_and_new_directories() {
        let (_dir, root, w) = watching_a_tempdir();
        let rx = notices(&w);
        std::fs::write(root.join("a"), b"1").unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        std::fs::create_dir(root.join("d")).unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        // The new directory is watched: drain, then a write inside it is reported.
        drain(&rx);
        std::fs::write(root.join("d/b"), b"2").unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
    }

    /// Runs `w` on a thread; its change notices arrive on the returned channel.
    fn notices(w: &Watcher) -> mpsc::Receiver<()> {
        let (tx, rx) = mpsc::channel();
        let w2 = w.clone();
        std::thread::spawn(move || {
            w2.run(move || {
                let _ = tx.send(());
            })
        });
        rx
    }

    fn drain(rx: &mpsc::Receiver<()>) {
        std::thread::sleep(Duration::from_millis(100));
        while rx.try_recv().is_ok() {}
    }

    #[test]
    fn a_directory_not_filled_yet_stays_watched_and_one_of_ignored_content_does_not() {
        let (_dir, root, w) = watching_a_tempdir();
        let rx = notices(&w);
        std::fs::create_dir_all(root.join("new/deeper")).unwrap();
        std::fs::create_dir(root.join("deps")).unwrap();
        std::fs::write(root.join("deps/lib.js"), b"ignored").unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        drain(&rx);
        // A scan found no synced path below either directory.
        w.set_dirs(&[root.clone()].into_iter().collect());
        let watched: BTreeSet<PathBuf> = lock(&w.dirs).values().cloned().collect();
        assert!(watched.contains(&root.join("new")), "{watched:?}");
        assert!(watched.contains(&root.join("new/deeper")), "{watched:?}");
        assert!(!watched.contains(&root.join("deps")), "{watched:?}");
        // A file written later into the empty directory is reported; one among ignored
        // content is not.
        std::fs::write(root.join("deps/more.js"), b"ignored").unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        std::fs::write(root.join("new/deeper/a.rs"), b"fn main() {}").unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn a_filter_decides_what_counts_and_stop_ends_the_run() {
        let (_dir, root, w) = watching_a_tempdir();
        let (tx, rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let w2 = w.clone();
        std::thread::spawn(move || {
            let e = w2.run_filtered(
                |_, name| name != "index",
                move || {
                    let _ = tx.send(());
                },
            );
            let _ = done_tx.send(e.to_string());
        });
        std::fs::write(root.join("index"), b"git's own").unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        std::fs::write(root.join("HEAD"), b"moved").unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let guard = w.stop_on_drop();
        drop(guard);
        let why = done_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(why.contains("stopped"), "{why}");
    }
}
