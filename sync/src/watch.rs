//! Watching a replica's directories with inotify (Linux): one watch per directory that holds a
//! synced path (so `node_modules/` and `target/` cost nothing), plus a new directory as soon as
//! it appears, and `.git` for commits. Every event only says "something changed": the host then
//! scans, and a scan of an unchanged tree reads no file. No timer, no polling: an idle tree
//! costs nothing.

use std::collections::{BTreeSet, HashMap};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// A set of inotify watches.
#[derive(Debug, Clone)]
pub struct Watcher {
    fd: Arc<Fd>,
    dirs: Arc<Mutex<HashMap<i32, PathBuf>>>,
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Watcher {
    /// A new inotify instance.
    pub fn new() -> io::Result<Watcher> {
        // SAFETY: a plain syscall.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Watcher {
            fd: Arc::new(Fd(fd)),
            dirs: Arc::new(Mutex::new(HashMap::new())),
        })
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

    /// Watches exactly `dirs` (plus `extra`, e.g. `.git` and its refs): new ones are added,
    /// ones no longer wanted removed. Directories that vanished are skipped.
    pub fn set_dirs(&self, dirs: &BTreeSet<PathBuf>) {
        let current: Vec<(i32, PathBuf)> = lock(&self.dirs)
            .iter()
            .map(|(w, p)| (*w, p.clone()))
            .collect();
        for (wd, p) in current {
            if !dirs.contains(&p) {
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
    /// into it right away are not missed. Returns when the descriptor fails.
    pub fn run(&self, mut on_change: impl FnMut()) -> io::Error {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: `buf` is valid for writes of its length.
            let n = unsafe { libc::read(self.fd.0, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return e;
            }
            let n = n as usize;
            let mut off = 0;
            let header = std::mem::size_of::<libc::inotify_event>();
            while off + header <= n {
                // SAFETY: the kernel wrote a whole event header at `off`; read unaligned.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf[off..].as_ptr().cast()) };
                let name_len = ev.len as usize;
                let name = &buf[off + header..(off + header + name_len).min(n)];
                let name = name.split(|b| *b == 0).next().unwrap_or(&[]);
                if ev.mask & libc::IN_ISDIR != 0
                    && ev.mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0
                {
                    let parent = lock(&self.dirs).get(&ev.wd).cloned();
                    if let Some(parent) = parent {
                        let name = std::ffi::OsStr::from_bytes(name);
                        if name != ".git" {
                            self.add_tree(&parent.join(name));
                        }
                    }
                }
                if ev.mask & libc::IN_IGNORED != 0 {
                    lock(&self.dirs).remove(&ev.wd);
                }
                off += header + name_len;
            }
            on_change();
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn reports_changes_in_watched_and_new_directories() {
        let dir = tempfile::tempdir().unwrap();
        let w = Watcher::new().unwrap();
        w.set_dirs(&[dir.path().to_path_buf()].into_iter().collect());
        let (tx, rx) = mpsc::channel();
        let w2 = w.clone();
        std::thread::spawn(move || {
            w2.run(move || {
                let _ = tx.send(());
            })
        });
        std::fs::write(dir.path().join("a"), b"1").unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        // The new directory is watched: drain, then a write inside it is reported.
        std::thread::sleep(Duration::from_millis(50));
        while rx.try_recv().is_ok() {}
        std::fs::write(dir.path().join("d/b"), b"2").unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
    }
}
