//! `clauderon-relay --listen 127.0.0.1:PORT [--host-timeout-ms N]`: runs inside a sandbox,
//! accepts TCP connections there and carries each one to the host over this process's own
//! stdin/stdout (the exec session), in the frames of [`clauderon_relay`]. When the host side is
//! gone (stdin ended, or nothing heard for the host timeout) every connection is answered
//! `HTTP/1.1 503` "clauderon host unreachable" and closed, so a client fails fast.
//!
//! Threads: one accepts, one reads stdin, one writes stdout, one watches the host's liveness,
//! and two per connection (socket → host, host → socket).
//!
//! `clauderon-relay serve-cache ...` is the other job the same static binary does inside
//! sprites: serving a cache sprite's entries to capability holders ([`cache_serve`]).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use clauderon_relay::{
    CLOSE, DATA, EXIT_ADDR_IN_USE, EXIT_USAGE, MAX_PAYLOAD, PING, PONG, READY, WINDOW,
    WINDOW_BYTES, encode, read_frame, unreachable_response, window,
};

/// How long a refused or aborted connection's remaining request bytes are read and discarded
/// (so closing does not reset the connection before the client read the 503).
const DRAIN: Duration = Duration::from_secs(2);

const USAGE: &str = "usage: clauderon-relay --listen 127.0.0.1:PORT [--host-timeout-ms N]\n\
    \x20      clauderon-relay sync --root DIR [--exclude PATTERN]... [--no-watch] [--stamps FILE]\n\
    Listens on PORT and carries each connection to the clauderon host over stdin/stdout;\n\
    `sync` serves DIR as the sandbox side of clauderon's two-way sync over stdin/stdout.\n\
    Started by the clauderon Sprites plugin; not meant to be run by hand.";

/// The second mode, `sync --root DIR [--exclude PATTERN]... [--no-watch] [--stamps FILE]`:
/// serves DIR with `clauderon_sync::serve` (scan, read, compare-and-swap writes, inotify) over
/// stdin/stdout, keeping its hash cache in FILE between runs.
fn sync_mode(args: &[String]) -> ExitCode {
    let mut root = None;
    let mut exclude = Vec::new();
    let mut watch = true;
    let mut stamps = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.clone().next()) {
            ("--root", Some(v)) => {
                root = Some(std::path::PathBuf::from(v));
                it.next();
            }
            ("--exclude", Some(v)) => {
                exclude.push(v.clone());
                it.next();
            }
            ("--stamps", Some(v)) => {
                stamps = Some(std::path::PathBuf::from(v));
                it.next();
            }
            ("--no-watch", _) => watch = false,
            (other, _) => {
                eprintln!("clauderon-relay sync: unexpected argument {other:?}\n{USAGE}");
                return ExitCode::from(EXIT_USAGE as u8);
            }
        }
    }
    let Some(root) = root.filter(|r| r.is_absolute()) else {
        eprintln!("clauderon-relay sync: --root needs an absolute directory\n{USAGE}");
        return ExitCode::from(EXIT_USAGE as u8);
    };
    clauderon_sync::serve::widen_stdio_pipes();
    match clauderon_sync::serve::serve(
        root,
        &exclude,
        watch,
        stamps,
        std::io::stdin(),
        std::io::stdout(),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clauderon-relay sync: {e}");
            ExitCode::from(1)
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Args {
    listen: SocketAddr,
    host_timeout: Duration,
}

fn parse_args(args: &[String]) -> Result<Option<Args>, String> {
    let mut listen = None;
    let mut host_timeout = Duration::from_secs(5);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--help" | "-h" => return Ok(None),
            "--version" | "-V" => {
                println!("clauderon-relay {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            "--listen" => {
                let v = it
                    .next()
                    .ok_or("--listen needs an address such as 127.0.0.1:3128")?;
                listen = Some(v.parse::<SocketAddr>().map_err(|_| {
                    format!("--listen {v:?} is not an IP address and port such as 127.0.0.1:3128")
                })?);
            }
            "--host-timeout-ms" => {
                let v = it.next().ok_or("--host-timeout-ms needs a number")?;
                let ms = v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (100..=3_600_000).contains(n))
                    .ok_or_else(|| {
                        format!("--host-timeout-ms {v:?} must be a number from 100 to 3600000")
                    })?;
                host_timeout = Duration::from_millis(ms);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let listen = listen.ok_or("--listen is required")?;
    Ok(Some(Args {
        listen,
        host_timeout,
    }))
}

mod cache_serve;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve-cache") {
        return cache_serve::main(&args[1..]);
    }
    if args.first().is_some_and(|a| a == "sync") {
        return sync_mode(&args[1..]);
    }
    let args = match parse_args(&args) {
        Ok(Some(a)) => a,
        Ok(None) => {
            if !args.iter().any(|a| a == "--version" || a == "-V") {
                eprintln!("{USAGE}");
            }
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("clauderon-relay: {e}\n{USAGE}");
            return ExitCode::from(EXIT_USAGE as u8);
        }
    };
    let listener = match TcpListener::bind(args.listen) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            eprintln!(
                "clauderon-relay: {} is already in use (another clauderon-relay or another \
                 program listens there); stop it or choose another port",
                args.listen
            );
            return ExitCode::from(EXIT_ADDR_IN_USE as u8);
        }
        Err(e) => {
            eprintln!("clauderon-relay: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(1);
        }
    };
    let (out_tx, out_rx) = mpsc::channel();
    let relay = Arc::new(Relay {
        out: out_tx,
        conns: Mutex::new(HashMap::new()),
        host: Mutex::new(Host {
            alive: true,
            ended: false,
            last_heard: Instant::now(),
        }),
        next_id: AtomicU32::new(1),
        host_timeout: args.host_timeout,
    });
    {
        let r = Arc::clone(&relay);
        std::thread::spawn(move || write_stdout(&r, out_rx));
    }
    {
        let r = Arc::clone(&relay);
        std::thread::spawn(move || read_stdin(&r));
    }
    {
        let r = Arc::clone(&relay);
        std::thread::spawn(move || watch_host(&r));
    }
    relay.send(encode(
        READY,
        0,
        format!(
            "clauderon-relay {} listening on {}",
            env!("CARGO_PKG_VERSION"),
            args.listen
        )
        .as_bytes(),
    ));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                eprintln!("clauderon-relay: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let r = Arc::clone(&relay);
        std::thread::spawn(move || {
            if r.host_alive() {
                serve(&r, stream);
            } else {
                refuse(stream);
            }
        });
    }
    ExitCode::from(1)
}

struct Host {
    alive: bool,
    ended: bool,
    last_heard: Instant,
}

struct Relay {
    out: Sender<Vec<u8>>,
    conns: Mutex<HashMap<u32, Arc<Conn>>>,
    host: Mutex<Host>,
    next_id: AtomicU32,
    host_timeout: Duration,
}

impl Relay {
    fn send(&self, frame: Vec<u8>) {
        let _ = self.out.send(frame);
    }

    fn host_alive(&self) -> bool {
        lock(&self.host).alive
    }

    /// Something arrived from the host.
    fn heard(&self) {
        let mut h = lock(&self.host);
        h.last_heard = Instant::now();
        if !h.ended {
            h.alive = true;
        }
    }

    /// The host is gone: every connection is aborted (503 where nothing was answered yet).
    fn host_gone(&self, ended: bool, why: &str) {
        {
            let mut h = lock(&self.host);
            if ended {
                h.ended = true;
            }
            if !h.alive && !ended {
                return;
            }
            h.alive = false;
        }
        eprintln!("clauderon-relay: {why}; answering connections with 503");
        let conns: Vec<Arc<Conn>> = lock(&self.conns).values().cloned().collect();
        for c in conns {
            c.abort(self, why, true);
        }
    }
}

enum ToSock {
    Data(Vec<u8>),
    Eof,
    Abort,
}

struct Credit {
    bytes: u64,
    dead: bool,
}

/// One accepted connection.
struct Conn {
    id: u32,
    stream: TcpStream,
    credit: Mutex<Credit>,
    cv: Condvar,
    to_sock: Sender<ToSock>,
    answered: AtomicBool,
    halves_done: AtomicU8,
}

impl Conn {
    /// Waits for send credit; 0 when the connection was aborted.
    fn wait_credit(&self) -> usize {
        let mut g = lock(&self.credit);
        loop {
            if g.dead {
                return 0;
            }
            if g.bytes > 0 {
                return usize::try_from(g.bytes)
                    .unwrap_or(MAX_PAYLOAD)
                    .min(MAX_PAYLOAD);
            }
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn take_credit(&self, n: usize) {
        let mut g = lock(&self.credit);
        g.bytes = g.bytes.saturating_sub(n as u64);
    }

    fn add_credit(&self, n: u32) {
        lock(&self.credit).bytes += u64::from(n);
        self.cv.notify_all();
    }

    fn is_dead(&self) -> bool {
        lock(&self.credit).dead
    }

    /// Ends the connection: the socket writer answers 503 if nothing was answered yet.
    fn abort(&self, relay: &Relay, why: &str, tell_host: bool) {
        {
            let mut g = lock(&self.credit);
            if g.dead {
                return;
            }
            g.dead = true;
        }
        self.cv.notify_all();
        let _ = self.to_sock.send(ToSock::Abort);
        if tell_host {
            relay.send(encode(CLOSE, self.id, why.as_bytes()));
        }
    }

    /// One of the two threads is done; the last one removes the connection.
    fn half_done(&self, relay: &Relay) {
        if self.halves_done.fetch_add(1, Ordering::SeqCst) == 1 {
            lock(&relay.conns).remove(&self.id);
        }
    }
}

fn serve(relay: &Arc<Relay>, stream: TcpStream) {
    let id = relay.next_id.fetch_add(1, Ordering::SeqCst);
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let Ok(write_half) = stream.try_clone() else {
        refuse(stream);
        return;
    };
    let (tx, rx) = mpsc::channel();
    let conn = Arc::new(Conn {
        id,
        stream,
        credit: Mutex::new(Credit {
            bytes: u64::from(WINDOW_BYTES),
            dead: false,
        }),
        cv: Condvar::new(),
        to_sock: tx,
        answered: AtomicBool::new(false),
        halves_done: AtomicU8::new(0),
    });
    lock(&relay.conns).insert(id, Arc::clone(&conn));
    relay.send(encode(clauderon_relay::OPEN, id, peer.as_bytes()));
    {
        let (r, c) = (Arc::clone(relay), Arc::clone(&conn));
        std::thread::spawn(move || socket_writer(&r, &c, write_half, rx));
    }
    // The host may have gone between the accept and the insert.
    if !relay.host_alive() {
        conn.abort(relay, "host unreachable", true);
    }
    socket_reader(relay, &conn);
}

/// Socket → host: DATA within the window, CLOSE at EOF.
fn socket_reader(relay: &Relay, conn: &Conn) {
    let mut buf = vec![0u8; MAX_PAYLOAD];
    let mut s = &conn.stream;
    loop {
        let allowed = conn.wait_credit();
        if allowed == 0 {
            break;
        }
        match s.read(&mut buf[..allowed]) {
            Ok(0) => {
                if !conn.is_dead() {
                    relay.send(encode(CLOSE, conn.id, b""));
                }
                conn.half_done(relay);
                return;
            }
            Ok(n) => {
                if conn.is_dead() {
                    break;
                }
                conn.take_credit(n);
                relay.send(encode(DATA, conn.id, &buf[..n]));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                conn.abort(relay, &format!("read from the client failed: {e}"), true);
                break;
            }
        }
    }
    // Aborted: discard what the client still sends, briefly, so the close is not a reset.
    drain(&conn.stream);
    let _ = conn.stream.shutdown(Shutdown::Both);
    conn.half_done(relay);
}

/// Host → socket: writes DATA and grants the host credit for it; EOF and abort.
fn socket_writer(relay: &Relay, conn: &Conn, mut s: TcpStream, rx: Receiver<ToSock>) {
    while let Ok(msg) = rx.recv() {
        match msg {
            ToSock::Data(b) => {
                if conn.is_dead() {
                    continue;
                }
                if let Err(e) = s.write_all(&b) {
                    conn.abort(relay, &format!("write to the client failed: {e}"), true);
                    let _ = s.shutdown(Shutdown::Both);
                    break;
                }
                conn.answered.store(true, Ordering::SeqCst);
                relay.send(window(conn.id, u32::try_from(b.len()).unwrap_or(0)));
            }
            ToSock::Eof => {
                let _ = s.shutdown(Shutdown::Write);
                break;
            }
            ToSock::Abort => {
                if !conn.answered.swap(true, Ordering::SeqCst) {
                    let _ = s.write_all(unreachable_response().as_bytes());
                }
                let _ = s.shutdown(Shutdown::Write);
                break;
            }
        }
    }
    conn.half_done(relay);
}

/// Answers a connection the host cannot serve with 503 and closes it.
fn refuse(mut s: TcpStream) {
    let _ = s.write_all(unreachable_response().as_bytes());
    let _ = s.shutdown(Shutdown::Write);
    drain(&s);
}

fn drain(s: &TcpStream) {
    let deadline = Instant::now() + DRAIN;
    let mut buf = [0u8; 16 * 1024];
    let mut r = s;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match r.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// The host's frames from stdin.
fn read_stdin(relay: &Relay) {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    loop {
        let frame = match read_frame(&mut input) {
            Ok(Some(f)) => f,
            Ok(None) => {
                relay.host_gone(true, "the host closed the tunnel (stdin ended)");
                return;
            }
            Err(e) => {
                relay.host_gone(true, &format!("the host stream failed: {e}"));
                return;
            }
        };
        relay.heard();
        let conn = || lock(&relay.conns).get(&frame.conn).cloned();
        match frame.kind {
            DATA => {
                if let Some(c) = conn() {
                    let _ = c.to_sock.send(ToSock::Data(frame.payload));
                }
            }
            CLOSE => {
                if let Some(c) = conn() {
                    if frame.payload.is_empty() {
                        let _ = c.to_sock.send(ToSock::Eof);
                    } else {
                        c.abort(relay, "", false);
                    }
                }
            }
            WINDOW => {
                if let (Some(c), Some(n)) = (conn(), frame.credit()) {
                    c.add_credit(n);
                }
            }
            PING => relay.send(encode(PONG, 0, &frame.payload)),
            _ => {}
        }
    }
}

/// Frames to stdout, batched, flushed when the queue is empty.
fn write_stdout(relay: &Relay, rx: Receiver<Vec<u8>>) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut broken = false;
    while let Ok(first) = rx.recv() {
        if broken {
            continue;
        }
        let mut result = out.write_all(&first);
        while result.is_ok() {
            match rx.try_recv() {
                Ok(f) => result = out.write_all(&f),
                Err(_) => break,
            }
        }
        if result.and_then(|()| out.flush()).is_err() {
            broken = true;
            relay.host_gone(true, "the host stopped reading (stdout closed)");
        }
    }
}

/// Declares the host gone when it has been silent (no frame, not even its 1 s PING) too long.
fn watch_host(relay: &Relay) {
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let silent = {
            let h = lock(&relay.host);
            h.alive && h.last_heard.elapsed() > relay.host_timeout
        };
        if silent {
            relay.host_gone(
                false,
                &format!(
                    "nothing heard from the host for {} ms",
                    relay.host_timeout.as_millis()
                ),
            );
        }
    }
}
