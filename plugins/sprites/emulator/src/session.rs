//! Exec sessions: a real process (on a pipe trio or a PTY), its output fan-out to the attached
//! socket, a bounded replay buffer, and what happens when the socket goes away.

use std::collections::VecDeque;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use nix::sys::signal::Signal;
use time::OffsetDateTime;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use crate::lifecycle::ActivityGuard;
use crate::sandbox::{NsFds, child_setup};

/// Output of a session, in order; `Exit` is last.
#[derive(Debug, Clone)]
pub enum Out {
    /// Standard output (or the PTY's merged output).
    Stdout(Bytes),
    /// Standard error (non-TTY only).
    Stderr(Bytes),
    /// Exit code (0-255).
    Exit(i32),
}

/// Input to a session.
#[derive(Debug)]
pub enum In {
    /// Bytes for stdin or the terminal.
    Data(Bytes),
    /// End of stdin.
    Eof,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// argv (argv[0] included).
    pub argv: Vec<String>,
    /// Executable (default argv[0], else `bash`).
    pub path: Option<String>,
    /// Environment (replaces the default when given).
    pub env: Option<Vec<(String, String)>>,
    /// Working directory inside the sprite (default `/home/sprite`).
    pub dir: Option<String>,
    /// PTY or pipes.
    pub tty: bool,
    /// Whether stdin is connected.
    pub stdin: bool,
    /// Terminal columns.
    pub cols: u16,
    /// Terminal rows.
    pub rows: u16,
    /// How long it survives a disconnect (`None` = mode default; zero = forever).
    pub max_run_after_disconnect: Option<Duration>,
}

/// Where sprite paths live when there is no mount namespace.
#[derive(Debug, Clone)]
pub struct PathMap {
    /// The sprite's disk on the host.
    pub root: std::path::PathBuf,
}

impl PathMap {
    /// Maps a sprite path onto the host (only `/home/sprite`, `/tmp`, `/.sprite` move).
    pub fn map(&self, p: &str) -> String {
        for prefix in ["/home/sprite", "/tmp", "/.sprite"] {
            if p == prefix || p.starts_with(&format!("{prefix}/")) {
                return format!("{}{p}", self.root.display());
            }
        }
        p.to_owned()
    }
}

struct Inner {
    attached: Option<(u64, mpsc::Sender<Out>)>,
    ring: VecDeque<Out>,
    ring_bytes: usize,
    exit: Option<i32>,
    detach_gen: u64,
}

/// A running (or just finished) exec.
pub struct Session {
    /// Id (per sprite).
    pub id: u64,
    /// PTY mode.
    pub tty: bool,
    /// Command line for listings.
    pub command: String,
    /// Program name (argv[0]).
    pub program: String,
    /// Creation time.
    pub created: OffsetDateTime,
    /// Working directory (sprite path).
    pub workdir: String,
    /// Process group id (host pid of the first process).
    pub pgid: i32,
    size: Mutex<(u16, u16)>,
    stdin: mpsc::Sender<In>,
    master: Option<Arc<AsyncFd<OwnedFd>>>,
    inner: Mutex<Inner>,
    ring_cap: usize,
    disconnect: Duration,
    bytes: AtomicU64,
    last_activity: Mutex<OffsetDateTime>,
    exited: watch::Receiver<Option<i32>>,
    me: std::sync::Weak<Session>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("tty", &self.tty)
            .field("command", &self.command)
            .field("pgid", &self.pgid)
            .finish_non_exhaustive()
    }
}

/// Everything `spawn` needs besides the spec.
pub struct SpawnCtx {
    /// Session id.
    pub id: u64,
    /// Namespaces to enter (`None` without a sandbox).
    pub ns: Option<Arc<NsFds>>,
    /// Path mapping without a sandbox.
    pub map: Option<PathMap>,
    /// Replay buffer size.
    pub ring_cap: usize,
    /// Default survival of non-TTY sessions after disconnect.
    pub non_tty_disconnect: Duration,
    /// Keeps the sprite awake while the process runs.
    pub guard: ActivityGuard,
    /// Called once the exit has been published.
    pub on_exit: Box<dyn FnOnce() + Send>,
    /// The sprite's resource limits, applied in the child before exec.
    pub limits: crate::limits::ChildLimits,
    /// Added to the default environment (the egress proxy's variables).
    pub env_extra: Vec<(String, String)>,
}

/// The PATH of every exec's default environment (language runtimes go before it).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn default_env(tty: bool) -> Vec<(String, String)> {
    let mut env = vec![
        ("HOME".to_owned(), "/home/sprite".to_owned()),
        ("PATH".to_owned(), DEFAULT_PATH.to_owned()),
        ("USER".to_owned(), "sprite".to_owned()),
        ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ("SHELL".to_owned(), "/bin/bash".to_owned()),
    ];
    if tty {
        env.push(("TERM".to_owned(), "xterm-256color".to_owned()));
    }
    env
}

fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn set_winsize(fd: i32, cols: u16, rows: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ with a valid winsize on a PTY descriptor.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

impl Session {
    /// Starts the process and its pumps.
    pub fn spawn(spec: ExecSpec, ctx: SpawnCtx) -> Result<Arc<Session>, String> {
        let program_path = spec
            .path
            .clone()
            .filter(|p| !p.is_empty())
            .or_else(|| spec.argv.first().cloned())
            .unwrap_or_else(|| "bash".to_owned());
        let argv0 = spec
            .argv
            .first()
            .cloned()
            .unwrap_or_else(|| program_path.clone());
        let workdir = spec
            .dir
            .clone()
            .unwrap_or_else(|| "/home/sprite".to_owned());
        let mut env = spec.env.clone().unwrap_or_else(|| {
            let mut env = default_env(spec.tty);
            env.extend(ctx.env_extra.iter().cloned());
            env
        });
        let host_cwd = match &ctx.map {
            Some(m) => {
                for (k, v) in env.iter_mut() {
                    if k == "HOME" {
                        *v = m.map(v);
                    }
                }
                m.map(&workdir)
            }
            None => workdir.clone(),
        };
        let program = match &ctx.map {
            Some(m) if program_path.starts_with('/') => m.map(&program_path),
            _ => program_path.clone(),
        };
        let cwd = CString::new(host_cwd).map_err(|_| "dir contains a NUL byte".to_owned())?;
        let mut cmd = tokio::process::Command::new(&program);
        cmd.arg0(&argv0)
            .args(spec.argv.iter().skip(1))
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .kill_on_drop(false);
        let mut master_fd = None;
        if spec.tty {
            let ws = nix::pty::Winsize {
                ws_row: spec.rows,
                ws_col: spec.cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            let pty = nix::pty::openpty(Some(&ws), None).map_err(|e| format!("openpty: {e}"))?;
            let slave = pty.slave;
            let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| format!("dup pty: {e}"));
            cmd.stdin(std::process::Stdio::from(dup(&slave)?))
                .stdout(std::process::Stdio::from(dup(&slave)?))
                .stderr(std::process::Stdio::from(slave));
            set_nonblocking(&pty.master).map_err(|e| format!("pty: {e}"))?;
            master_fd = Some(pty.master);
        } else {
            cmd.stdin(if spec.stdin {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        }
        let ns = ctx.ns.clone();
        let limits = ctx.limits.clone();
        let tty = spec.tty;
        // SAFETY: child_setup only makes system calls (setns, chdir, setsid, fork, waitpid) on
        // data prepared before the fork.
        unsafe {
            cmd.pre_exec(move || child_setup(ns.as_deref(), &cwd, tty, &limits));
        }
        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!("executable not found: {program_path}")
            } else {
                format!("cannot start {program_path}: {e}")
            }
        })?;
        drop(cmd);
        let pgid = child.id().map(|p| p as i32).unwrap_or(0);
        let (stdin_tx, stdin_rx) = mpsc::channel::<In>(64);
        let (exit_tx, exit_rx) = watch::channel(None);
        let master = match master_fd {
            // SAFETY: the OwnedFd moves into the AsyncFd and stays open for its whole life.
            Some(fd) => Some(Arc::new(
                unsafe { AsyncFd::register(fd) }.map_err(|e| format!("pty registration: {e}"))?,
            )),
            None => None,
        };
        let command = if spec.argv.is_empty() {
            program_path.clone()
        } else {
            spec.argv.join(" ")
        };
        let disconnect = match spec.max_run_after_disconnect {
            Some(d) => d,
            None if spec.tty => Duration::ZERO,
            None => ctx.non_tty_disconnect,
        };
        let session = Arc::new_cyclic(|me| Session {
            id: ctx.id,
            tty: spec.tty,
            command,
            program: argv0,
            created: OffsetDateTime::now_utc(),
            workdir,
            pgid,
            size: Mutex::new((spec.cols, spec.rows)),
            stdin: stdin_tx,
            master: master.clone(),
            inner: Mutex::new(Inner {
                attached: None,
                ring: VecDeque::new(),
                ring_bytes: 0,
                exit: None,
                detach_gen: 0,
            }),
            ring_cap: ctx.ring_cap,
            disconnect,
            bytes: AtomicU64::new(0),
            last_activity: Mutex::new(OffsetDateTime::now_utc()),
            exited: exit_rx,
            me: me.clone(),
        });
        // Input pump.
        match &master {
            Some(m) => {
                tokio::spawn(stdin_to_pty(Arc::clone(m), stdin_rx));
            }
            None => {
                tokio::spawn(stdin_to_pipe(child.stdin.take(), stdin_rx));
            }
        }
        // Output pumps and exit.
        let s = Arc::clone(&session);
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let guard = ctx.guard;
        let on_exit = ctx.on_exit;
        tokio::spawn(async move {
            let readers: Vec<tokio::task::JoinHandle<()>> = match &master {
                Some(m) => vec![tokio::spawn(pty_to_out(Arc::clone(m), Arc::clone(&s)))],
                None => {
                    let mut v = Vec::new();
                    if let Some(o) = stdout {
                        v.push(tokio::spawn(pipe_to_out(o, Arc::clone(&s), false)));
                    }
                    if let Some(e) = stderr {
                        v.push(tokio::spawn(pipe_to_out(e, Arc::clone(&s), true)));
                    }
                    v
                }
            };
            let code = match child.wait().await {
                Ok(st) => {
                    use std::os::unix::process::ExitStatusExt;
                    st.code()
                        .or_else(|| st.signal().map(|sig| 128 + sig))
                        .unwrap_or(255)
                }
                Err(_) => 255,
            };
            // Drain what the program wrote; a background process keeping the pipe open must not
            // hold the exit back for long.
            for r in readers {
                let abort = r.abort_handle();
                if tokio::time::timeout(Duration::from_millis(500), r)
                    .await
                    .is_err()
                {
                    abort.abort();
                }
            }
            let code = code.clamp(0, 255);
            s.publish(Out::Exit(code)).await;
            let _ = exit_tx.send(Some(code));
            drop(guard);
            on_exit();
        });
        Ok(session)
    }

    async fn publish(&self, out: Out) {
        let tx = {
            let Ok(mut g) = self.inner.lock() else { return };
            let n = match &out {
                Out::Stdout(b) | Out::Stderr(b) => b.len(),
                Out::Exit(c) => {
                    g.exit = Some(*c);
                    0
                }
            };
            if n > 0 {
                self.bytes.fetch_add(n as u64, Ordering::Relaxed);
                if let Ok(mut t) = self.last_activity.lock() {
                    *t = OffsetDateTime::now_utc();
                }
                g.ring.push_back(out.clone());
                g.ring_bytes += n;
                // Keep exactly the newest `ring_cap` bytes (the oldest chunk may be cut).
                while g.ring_bytes > self.ring_cap {
                    let excess = g.ring_bytes - self.ring_cap;
                    match g.ring.front_mut() {
                        Some(Out::Stdout(b)) | Some(Out::Stderr(b)) if b.len() > excess => {
                            *b = b.slice(excess..);
                            g.ring_bytes -= excess;
                        }
                        Some(_) => {
                            if let Some(Out::Stdout(b)) | Some(Out::Stderr(b)) = g.ring.pop_front()
                            {
                                g.ring_bytes -= b.len();
                            }
                        }
                        None => break,
                    }
                }
            }
            g.attached.clone()
        };
        if let Some((conn, tx)) = tx
            && tx.send(out).await.is_err()
        {
            self.detach(conn);
        }
    }

    /// Attaches connection `conn`; returns its output receiver, the replay (when asked) and the
    /// exit code when the process has already ended. A previous attachment is replaced.
    pub fn attach(&self, conn: u64, replay: bool) -> (mpsc::Receiver<Out>, Vec<Out>, Option<i32>) {
        let (tx, rx) = mpsc::channel(64);
        let Ok(mut g) = self.inner.lock() else {
            return (rx, Vec::new(), Some(255));
        };
        let replayed = if replay {
            g.ring.iter().cloned().collect()
        } else {
            Vec::new()
        };
        g.attached = Some((conn, tx));
        g.detach_gen += 1;
        (rx, replayed, g.exit)
    }

    /// Detaches `conn`; starts the max-run-after-disconnect timer.
    pub fn detach(&self, conn: u64) {
        let gen_now = {
            let Ok(mut g) = self.inner.lock() else { return };
            if g.attached.as_ref().is_none_or(|(c, _)| *c != conn) {
                return;
            }
            g.attached = None;
            g.detach_gen += 1;
            g.detach_gen
        };
        if self.disconnect.is_zero() {
            return;
        }
        let Some(s) = self.me.upgrade() else { return };
        tokio::spawn(async move {
            tokio::time::sleep(s.disconnect).await;
            let still = s
                .inner
                .lock()
                .map(|g| g.attached.is_none() && g.detach_gen == gen_now && g.exit.is_none())
                .unwrap_or(false);
            if still {
                s.signal(Signal::SIGKILL);
            }
        });
    }

    /// Whether a connection is attached.
    pub fn is_attached(&self) -> bool {
        self.inner
            .lock()
            .map(|g| g.attached.is_some())
            .unwrap_or(false)
    }

    /// The exit code once known.
    pub fn exit_code(&self) -> Option<i32> {
        *self.exited.borrow()
    }

    /// Waits up to `limit` for the exit.
    pub async fn wait_exit(&self, limit: Duration) -> Option<i32> {
        let mut rx = self.exited.clone();
        let fut = async {
            loop {
                if let Some(c) = *rx.borrow_and_update() {
                    return Some(c);
                }
                if rx.changed().await.is_err() {
                    return *rx.borrow();
                }
            }
        };
        tokio::time::timeout(limit, fut).await.ok().flatten()
    }

    /// Sends a signal to the session's process group.
    pub fn signal(&self, sig: Signal) {
        if self.pgid > 0 {
            crate::app::App::killpg(self.pgid, sig);
        }
    }

    /// Queues input.
    pub async fn input(&self, msg: In) {
        let _ = self.stdin.send(msg).await;
    }

    /// Resizes the terminal (TTY only).
    pub fn resize(&self, cols: u16, rows: u16) {
        if let Some(m) = &self.master {
            set_winsize(m.get_ref().as_raw_fd(), cols, rows);
            if let Ok(mut s) = self.size.lock() {
                *s = (cols, rows);
            }
        }
    }

    /// Current terminal size.
    pub fn size(&self) -> (u16, u16) {
        self.size.lock().map(|g| *g).unwrap_or((80, 24))
    }

    /// Output bytes so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Last output time.
    pub fn last_activity(&self) -> OffsetDateTime {
        self.last_activity
            .lock()
            .map(|g| *g)
            .unwrap_or(self.created)
    }
}

async fn pipe_to_out<R: tokio::io::AsyncRead + Unpin>(mut r: R, s: Arc<Session>, err: bool) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        buf.reserve(64 * 1024);
        match r.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let chunk = buf.split().freeze();
                s.publish(if err {
                    Out::Stderr(chunk)
                } else {
                    Out::Stdout(chunk)
                })
                .await;
            }
        }
    }
}

async fn pty_to_out(m: Arc<AsyncFd<OwnedFd>>, s: Arc<Session>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let Ok(mut guard) = m.readable().await else {
            break;
        };
        let res = guard.try_io(|inner| {
            // SAFETY: reading into a buffer we own from a descriptor we own.
            let n = unsafe {
                libc::read(
                    inner.get_ref().as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match res {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => {
                s.publish(Out::Stdout(Bytes::copy_from_slice(&buf[..n])))
                    .await
            }
            // EIO: every slave descriptor is closed (the program and its children are gone).
            Ok(Err(_)) => break,
            Err(_would_block) => continue,
        }
    }
}

async fn stdin_to_pty(m: Arc<AsyncFd<OwnedFd>>, mut rx: mpsc::Receiver<In>) {
    while let Some(msg) = rx.recv().await {
        let data = match msg {
            In::Data(d) => d,
            // ^D: end of input at the start of a line for the terminal's reader.
            In::Eof => Bytes::from_static(&[4]),
        };
        let mut off = 0;
        while off < data.len() {
            let Ok(mut guard) = m.writable().await else {
                return;
            };
            let res = guard.try_io(|inner| {
                // SAFETY: writing from a buffer we own to a descriptor we own.
                let n = unsafe {
                    libc::write(
                        inner.get_ref().as_raw_fd(),
                        data[off..].as_ptr().cast(),
                        data.len() - off,
                    )
                };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match res {
                Ok(Ok(n)) => off += n,
                Ok(Err(_)) => return,
                Err(_would_block) => continue,
            }
        }
    }
}

async fn stdin_to_pipe(mut w: Option<tokio::process::ChildStdin>, mut rx: mpsc::Receiver<In>) {
    while let Some(msg) = rx.recv().await {
        match msg {
            In::Data(d) => {
                if let Some(p) = w.as_mut()
                    && p.write_all(&d).await.is_err()
                {
                    w = None;
                }
            }
            In::Eof => {
                if let Some(mut p) = w.take() {
                    let _ = p.shutdown().await;
                }
            }
        }
    }
}
