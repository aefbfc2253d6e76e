//! Serving a replica over the wire protocol (the sandbox side of `sync_stream`): requests are
//! read from `input` and answered in order on `output`; a watcher thread sends `Changed` when
//! the tree moves (at most one between two scans, so a busy tree cannot flood the host).

use std::collections::BTreeSet;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};

use crate::history;
use crate::lock;
use crate::replica::{Change, Replica};

/// The most writes applied as one group.
const WRITE_GROUP: usize = 1024;

/// Bytes of decoded requests that may wait to be served (one larger request waits alone).
/// The host has at most one batch of changes (16 MiB of content) in flight, so this only
/// bounds a peer that does not wait for answers.
const READ_AHEAD_BYTES: usize = 64 << 20;

/// A request, or why the input could not be read.
type Incoming = io::Result<Request>;

/// Requests read and decoded from the input on a thread of their own, ahead of the one being
/// served; the channel ends with the input (or after an error).
struct ReadAhead {
    rx: mpsc::Receiver<(Incoming, usize)>,
    /// Bytes waiting in the channel, and the reader waiting for them to be taken.
    waiting: Arc<(Mutex<usize>, Condvar)>,
}

impl ReadAhead {
    fn start(input: impl Read + Send + 'static) -> ReadAhead {
        ReadAhead::with_budget(input, READ_AHEAD_BYTES)
    }

    /// [`ReadAhead::start`] with at most `budget` bytes waiting.
    fn with_budget(input: impl Read + Send + 'static, budget_bytes: usize) -> ReadAhead {
        let (tx, rx) = mpsc::channel::<(Incoming, usize)>();
        let waiting = Arc::new((Mutex::new(0usize), Condvar::new()));
        let budget = Arc::clone(&waiting);
        std::thread::spawn(move || {
            let mut input = BufReader::with_capacity(1 << 20, input);
            loop {
                let (next, n) = match read_message(&mut input) {
                    Ok(Some(m)) => (Request::decode(&m), m.len()),
                    Ok(None) => return,
                    Err(e) => (Err(e), 0),
                };
                let (count, taken) = &*budget;
                let mut used = lock(count);
                while *used > 0 && *used + n > budget_bytes {
                    used = taken
                        .wait(used)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                *used += n;
                drop(used);
                let failed = next.is_err();
                if tx.send((next, n)).is_err() || failed {
                    return;
                }
            }
        });
        ReadAhead { rx, waiting }
    }

    fn taken(&self, (incoming, n): (Incoming, usize)) -> Incoming {
        let (count, taken) = &*self.waiting;
        *lock(count) -= n;
        taken.notify_one();
        incoming
    }

    /// The next request, waiting for it (`Err`: the input ended).
    fn recv(&self) -> Result<Incoming, mpsc::RecvError> {
        self.rx.recv().map(|m| self.taken(m))
    }

    /// The next request if one is waiting.
    fn try_recv(&self) -> Option<Incoming> {
        self.rx.try_recv().ok().map(|m| self.taken(m))
    }
}

/// Whether a request (or a read error) is waiting to be served; one taken off the channel is
/// kept in `carried`.
fn waiting(requests: &ReadAhead, carried: &mut Option<Incoming>) -> bool {
    if carried.is_none() {
        *carried = requests.try_recv();
    }
    carried.is_some()
}

/// Where the sandbox keeps the objects of a bundle the host sent.
const KEEP_REF: &str = "refs/clauderon/host";
use crate::watch::Watcher;
use crate::wire::{Outcome, Reply, Request, VERSION, read_message};

/// The directories a replica's watcher covers: those holding synced paths, and `.git` with its
/// branch refs (a commit moves them).
fn watched_dirs(replica: &Replica, entries: &crate::entry::Tree) -> BTreeSet<PathBuf> {
    let mut dirs = replica.dirs_of(entries);
    let git = replica.root().join(".git");
    if git.is_dir() {
        dirs.insert(git.clone());
        add_dirs(&git.join("refs").join("heads"), &mut dirs);
    }
    dirs
}

fn add_dirs(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    out.insert(dir.to_path_buf());
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                add_dirs(&e.path(), out);
            }
        }
    }
}

/// Asks for larger pipe buffers on this process's stdin and stdout (1 MiB, the unprivileged
/// limit), when they are pipes: a large sync then crosses in reads and writes of up to a
/// mebibyte instead of 64 KiB, with a sixteenth of the wake-ups on both ends. Best effort.
pub fn widen_stdio_pipes() {
    for fd in [0, 1] {
        // SAFETY: plain fcntl calls on the standard descriptors; a non-pipe refuses them.
        unsafe {
            libc::fcntl(fd, libc::F_SETPIPE_SZ, 1 << 20);
        }
    }
}

/// How often at most a served replica writes its stamps file while it runs (it always does
/// when its input ends).
const STAMPS_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves `root` (with `extra` ignore patterns) until `input` ends. `watch: false` serves
/// without a watcher (the host then scans only when it asks); `stamps` keeps the hash cache
/// between runs (see [`Replica::with_stamps_file`]).
pub fn serve(
    root: PathBuf,
    extra: &[String],
    watch: bool,
    stamps: Option<PathBuf>,
    input: impl Read + Send + 'static,
    output: impl Write + Send + 'static,
) -> io::Result<()> {
    // Requests are read and decoded on a thread of their own, so a batch keeps arriving while
    // its first writes are applied. Replies are flushed only when no request is waiting: a
    // batch of writes is answered in a few large writes, not one per file. An empty message on
    // the reply channel is the flush.
    let requests = ReadAhead::start(input);
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let writer = std::thread::spawn(move || {
        let mut out = BufWriter::with_capacity(256 * 1024, output);
        while let Ok(msg) = rx.recv() {
            if msg.is_empty() {
                out.flush()?;
            } else {
                out.write_all(&msg)?;
            }
        }
        out.flush()?;
        Ok::<_, io::Error>(())
    });
    let mut replica = Replica::new(root.clone(), extra);
    if let Some(file) = stamps {
        replica = replica.with_stamps_file(file);
    }
    let _ = tx.send(
        Reply::Hello {
            version: VERSION,
            root: root.display().to_string(),
        }
        .encode(),
    );
    let _ = tx.send(Vec::new());
    let changed_sent = Arc::new(AtomicBool::new(false));
    let watcher = if watch { Watcher::new().ok() } else { None };
    if let Some(w) = &watcher {
        let (w, tx, sent) = (w.clone(), tx.clone(), Arc::clone(&changed_sent));
        std::thread::spawn(move || {
            w.run(move || {
                if !sent.swap(true, Ordering::SeqCst) {
                    let _ = tx.send(Reply::Changed.encode());
                    let _ = tx.send(Vec::new());
                }
            })
        });
    }
    let mut carried: Option<Incoming> = None;
    let result = loop {
        let req = match carried.take().map(Ok).unwrap_or_else(|| requests.recv()) {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => break Err(e),
            // The input ended.
            Err(_) => break Ok(()),
        };
        // Writes already waiting are applied together, over a few threads.
        if let Request::Write { .. } = req {
            let mut group = vec![req];
            while group.len() < WRITE_GROUP {
                match requests.try_recv() {
                    Some(Ok(r @ Request::Write { .. })) => group.push(r),
                    Some(other) => {
                        carried = Some(other);
                        break;
                    }
                    None => break,
                }
            }
            let (ids, changes): (Vec<u32>, Vec<Change>) =
                group.into_iter().filter_map(Request::into_change).unzip();
            let results = replica.apply_all(&changes);
            let mut gone = false;
            for (id, r) in ids.into_iter().zip(results) {
                let reply = Reply::Applied {
                    id,
                    outcome: r.into(),
                };
                gone |= tx.send(reply.encode()).is_err();
            }
            if gone || (!waiting(&requests, &mut carried) && tx.send(Vec::new()).is_err()) {
                break Ok(());
            }
            continue;
        }
        let reply = match req {
            Request::Scan { id } => {
                changed_sent.store(false, Ordering::SeqCst);
                match replica.scan() {
                    Ok(scan) => {
                        // Best effort: the cache only spares a later helper some hashing.
                        let _ = replica.save_stamps(STAMPS_EVERY);
                        if let Some(w) = &watcher {
                            w.set_dirs(&watched_dirs(&replica, &scan.entries));
                        }
                        Reply::Scanned {
                            id,
                            root_present: scan.root_present,
                            head: scan.head,
                            entries: scan.entries.into_iter().collect(),
                        }
                    }
                    Err(e) => Reply::Error {
                        id,
                        message: format!("cannot scan {}: {e}", root.display()),
                    },
                }
            }
            Request::Probe { id, paths } => Reply::Probed {
                id,
                probes: replica.probe(&paths),
            },
            Request::Read { id, path, expected } => {
                let (outcome, content) = match replica.read(&path, &expected) {
                    Ok(content) => (Outcome::Ok, content),
                    Err(e) => (Outcome::from(Err(e)), Vec::new()),
                };
                Reply::Content {
                    id,
                    outcome,
                    content,
                }
            }
            r @ (Request::Write { .. } | Request::Delete { .. }) => match r.into_change() {
                Some((id, change)) => Reply::Applied {
                    id,
                    outcome: replica.apply(&change).into(),
                },
                None => continue,
            },
            Request::Ping { id } => Reply::Pong { id },
            Request::Bundle { id, have } => match history::bundle(&root, &have) {
                Ok(b) => Reply::Bundled {
                    id,
                    outcome: Outcome::Ok,
                    head: b.head,
                    content: b.bytes,
                },
                Err(e) => Reply::Bundled {
                    id,
                    outcome: Outcome::Failed(e),
                    head: None,
                    content: Vec::new(),
                },
            },
            Request::Advance {
                id,
                from,
                to,
                bundle,
            } => Reply::Applied {
                id,
                outcome: history::advance(&root, &from, &to, &bundle, KEEP_REF).into(),
            },
        };
        if tx.send(reply.encode()).is_err() {
            break Ok(());
        }
        // Flush before a read that could wait: the host may be waiting for these replies.
        if !waiting(&requests, &mut carried) && tx.send(Vec::new()).is_err() {
            break Ok(());
        }
    };
    let _ = replica.save_stamps(std::time::Duration::ZERO);
    drop(tx);
    // The watcher thread holds a sender too; the writer ends when the process does.
    let _ = writer;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Decoder;

    /// An output the test reads back after `serve` returned.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn replies(out: &Shared) -> Vec<Reply> {
        // The writer thread may still be flushing when `serve` returns: it is done when it
        // has dropped its handle on the output.
        let t = std::time::Instant::now();
        while Arc::strong_count(&out.0) > 1 && t.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let mut d = Decoder::default();
        d.push(&out.0.lock().unwrap());
        let mut v = Vec::new();
        while let Some(m) = d.next_message().unwrap() {
            v.push(Reply::decode(&m).unwrap());
        }
        v
    }

    #[test]
    fn requests_read_ahead_wait_within_their_byte_budget() {
        let mut input = Vec::new();
        for id in 0..10 {
            Request::Probe {
                id,
                paths: vec!["p".repeat(40)],
            }
            .encode_onto(&mut input);
        }
        // Each message body is 53 bytes: two fit a budget of 120, a third waits.
        let ahead = ReadAhead::with_budget(io::Cursor::new(input), 120);
        let waiting = || *lock(&ahead.waiting.0);
        // Two are read at once; a third is not, however long it is given.
        let settled = || {
            let t = std::time::Instant::now();
            while waiting() < 106 && t.elapsed() < std::time::Duration::from_secs(5) {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            waiting()
        };
        assert_eq!(settled(), 106);
        assert!(matches!(ahead.recv(), Ok(Ok(Request::Probe { id: 0, .. }))));
        assert_eq!(settled(), 106);
        let ids: Vec<u32> = std::iter::from_fn(|| ahead.recv().ok())
            .map(|r| match r {
                Ok(Request::Probe { id, .. }) => id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, (1..10).collect::<Vec<_>>());
        assert_eq!(waiting(), 0);
    }

    #[test]
    fn requests_read_ahead_are_answered_in_order_and_bad_input_ends_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let hash = crate::ContentHash::of(b"hi");
        let mut input = Vec::new();
        for (id, name) in [(1, "a"), (2, "b")] {
            Request::Write {
                id,
                path: name.into(),
                expected: None,
                entry: crate::Entry::File {
                    hash,
                    size: 2,
                    exec: false,
                },
                content: b"hi".to_vec(),
            }
            .encode_onto(&mut input);
        }
        Request::Ping { id: 3 }.encode_onto(&mut input);
        let good = input.clone();
        // A message of an unknown kind.
        input.extend_from_slice(&[0, 0, 0, 1, 250]);
        let out = Shared::default();
        let root = dir.path().to_path_buf();
        let err = serve(
            root.clone(),
            &[],
            false,
            None,
            io::Cursor::new(input),
            out.clone(),
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        let got = replies(&out);
        assert!(matches!(got[0], Reply::Hello { .. }), "{got:?}");
        assert!(
            matches!(
                &got[1..],
                [
                    Reply::Applied {
                        id: 1,
                        outcome: Outcome::Ok
                    },
                    Reply::Applied {
                        id: 2,
                        outcome: Outcome::Ok
                    },
                    Reply::Pong { id: 3 },
                ]
            ),
            "{got:?}"
        );
        assert_eq!(std::fs::read(root.join("b")).unwrap(), b"hi");
        // The same requests and then the end of the input: a clean end.
        let dir = tempfile::tempdir().unwrap();
        let out = Shared::default();
        serve(
            dir.path().into(),
            &[],
            false,
            None,
            io::Cursor::new(good),
            out.clone(),
        )
        .unwrap();
        assert_eq!(replies(&out).len(), 4);
    }
}
