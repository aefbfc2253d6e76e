//! Serving a replica over the wire protocol (the sandbox side of `sync_stream`): requests are
//! read from `input` and answered in order on `output`; a watcher thread sends `Changed` when
//! the tree moves (at most one between two scans, so a busy tree cannot flood the host).

use std::collections::BTreeSet;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use crate::history;
use crate::replica::{Change, Replica};

/// Whether `buffered` starts with a whole message (its length prefix and body).
fn holds_a_message(buffered: &[u8]) -> bool {
    buffered.len() >= 4 && {
        let n = u32::from_be_bytes([buffered[0], buffered[1], buffered[2], buffered[3]]) as usize;
        buffered.len() >= 4 + n
    }
}

/// The most writes applied as one group.
const WRITE_GROUP: usize = 1024;

/// The next request (`None`: the input ended).
fn next_request(input: &mut impl Read) -> io::Result<Option<Request>> {
    match read_message(input)? {
        Some(m) => Request::decode(&m).map(Some),
        None => Ok(None),
    }
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
    input: impl Read,
    output: impl Write + Send + 'static,
) -> io::Result<()> {
    // Requests are read through a buffer, and replies are flushed only when no complete request
    // is waiting: a batch of writes is answered in a few large writes, not one per file. An
    // empty message on the channel is the flush.
    let mut input = BufReader::with_capacity(1 << 20, input);
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
    let mut carried: Option<Request> = None;
    let result = loop {
        let req = match carried.take() {
            Some(r) => r,
            None => match next_request(&mut input) {
                Ok(Some(r)) => r,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            },
        };
        // Writes already waiting in the buffer are applied together, over a few threads.
        if let Request::Write { .. } = req {
            let mut group = vec![req];
            while group.len() < WRITE_GROUP && holds_a_message(input.buffer()) {
                match next_request(&mut input) {
                    Ok(Some(r @ Request::Write { .. })) => group.push(r),
                    Ok(Some(other)) => {
                        carried = Some(other);
                        break;
                    }
                    Ok(None) => break,
                    Err(e) => return Err(e),
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
            if gone
                || (carried.is_none()
                    && !holds_a_message(input.buffer())
                    && tx.send(Vec::new()).is_err())
            {
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
        if carried.is_none() && !holds_a_message(input.buffer()) && tx.send(Vec::new()).is_err() {
            break Ok(());
        }
    };
    let _ = replica.save_stamps(std::time::Duration::ZERO);
    drop(tx);
    // The watcher thread holds a sender too; the writer ends when the process does.
    let _ = writer;
    result
}
