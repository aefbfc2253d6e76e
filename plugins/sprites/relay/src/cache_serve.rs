//! `clauderon-relay serve-cache --root DIR [--listen 0.0.0.0:8080] [--idle-secs 60]`: runs in a
//! cache sprite and serves its entries over the sprite's URL, so a session sprite can fetch an
//! archive directly (the direct path of a restore), or send one (of a save), without the org's
//! token.
//!
//! Every request needs `Authorization: Bearer TOKEN` where `DIR/caps/TOKEN` exists (written by
//! the plugin through the org's exec API just before): one line `NAME EXPIRY [MAX]` (Unix
//! seconds; MAX bytes for an upload). A capability opens one thing, once: it is removed before
//! any byte moves, and refused after its expiry.
//!
//! - `GET /entries/KEY` (capability `KEY`) answers `DIR/entries/KEY/archive.tgz`.
//! - `PUT /incoming/KEY.NONCE` (capability `put:KEY.NONCE`) writes the body (by length or
//!   chunked) to `DIR/incoming/KEY.NONCE/archive.tgz` and answers `SIZE SHA256`; the plugin
//!   then commits it as a relayed save is committed. A body over MAX is refused (413) and
//!   nothing is kept.
//!
//! The server exits once nothing has connected for `--idle-secs` and no transfer runs; a
//! second server finding the port taken exits 3 (the first serves every capability).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use clauderon_relay::{EXIT_ADDR_IN_USE, EXIT_USAGE};
use clauderon_sync::entry::Hasher;

const USAGE: &str = "usage: clauderon-relay serve-cache --root DIR [--listen 0.0.0.0:8080] \
    [--idle-secs 60]\n\
    Serves DIR/entries/KEY/archive.tgz to holders of a capability in DIR/caps.\n\
    Started by the clauderon Sprites plugin; not meant to be run by hand.";

/// Longest request head read.
const MAX_HEAD: usize = 16 * 1024;

struct Args {
    root: PathBuf,
    listen: SocketAddr,
    idle: Duration,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut root = None;
    let mut listen = SocketAddr::from(([0, 0, 0, 0], 8080));
    let mut idle = Duration::from_secs(60);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--root" => root = Some(PathBuf::from(value()?)),
            "--listen" => {
                let v = value()?;
                listen = v.parse().map_err(|_| {
                    format!("--listen {v:?} is not an address such as 0.0.0.0:8080")
                })?;
            }
            "--idle-secs" => {
                let v = value()?;
                let n: u64 = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=86_400).contains(n))
                    .ok_or_else(|| format!("--idle-secs {v:?} must be 1 to 86400"))?;
                idle = Duration::from_secs(n);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        root: root.ok_or("--root is required")?,
        listen,
        idle,
    })
}

/// Entry point of `serve-cache` (its arguments after the subcommand).
pub fn main(args: &[String]) -> ExitCode {
    let args = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("clauderon-relay serve-cache: {e}\n{USAGE}");
            return ExitCode::from(EXIT_USAGE as u8);
        }
    };
    let listener = match TcpListener::bind(args.listen) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            eprintln!(
                "clauderon-relay serve-cache: {} is in use (a server runs already)",
                args.listen
            );
            return ExitCode::from(EXIT_ADDR_IN_USE as u8);
        }
        Err(e) => {
            eprintln!(
                "clauderon-relay serve-cache: cannot listen on {}: {e}",
                args.listen
            );
            return ExitCode::from(1);
        }
    };
    if listener.set_nonblocking(true).is_err() {
        return ExitCode::from(1);
    }
    println!("serving {} on {}", args.root.display(), args.listen);
    let _ = std::io::stdout().flush();
    let busy = Arc::new(AtomicUsize::new(0));
    let mut last = Instant::now();
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                last = Instant::now();
                let (root, busy) = (args.root.clone(), Arc::clone(&busy));
                busy.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let _ = conn.set_nonblocking(false);
                    handle(conn, &root);
                    busy.fetch_sub(1, Ordering::SeqCst);
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if busy.load(Ordering::SeqCst) > 0 {
                    last = Instant::now();
                } else if last.elapsed() >= args.idle {
                    return ExitCode::SUCCESS;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn respond(conn: &mut TcpStream, status: &str, text: &str) {
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{text}",
        text.len()
    );
}

/// An entry key: `[A-Za-z0-9._-]`, not starting with a dot.
fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 200
        && !k.starts_with('.')
        && k.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// A capability token: 32 to 128 lowercase hex digits.
fn valid_token(t: &str) -> bool {
    (32..=128).contains(&t.len())
        && t.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// Takes the capability `token` for `key` (removing it): `Err` says why it does not open it;
/// `Ok` has the byte limit it names, if any.
fn take_capability(root: &Path, token: &str, key: &str) -> Result<Option<u64>, &'static str> {
    if !valid_token(token) {
        return Err("malformed capability");
    }
    let file = root.join("caps").join(token);
    let text = std::fs::read_to_string(&file).map_err(|_| "unknown or used capability")?;
    std::fs::remove_file(&file).map_err(|_| "unknown or used capability")?;
    let mut parts = text.split_whitespace();
    let (Some(cap_key), Some(expiry)) = (parts.next(), parts.next()) else {
        return Err("malformed capability");
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(u64::MAX);
    if expiry.parse::<u64>().map_or(true, |e| e < now) {
        return Err("expired capability");
    }
    if cap_key != key {
        return Err("the capability is for another entry");
    }
    match parts.next() {
        None => Ok(None),
        Some(max) => max.parse().map(Some).map_err(|_| "malformed capability"),
    }
}

/// Why an upload's body was not taken.
#[derive(Debug, PartialEq)]
enum BodyError {
    /// More than the capability allows.
    TooLarge,
    /// Not valid HTTP framing, or the connection ended early.
    Broken(String),
}

/// Reads an upload's body (`length` bytes, or chunked when `None`) into `out`, at most `max`
/// bytes; returns its size and SHA-256.
fn read_body(
    input: &mut impl BufRead,
    length: Option<u64>,
    max: u64,
    out: &mut impl Write,
) -> Result<(u64, String), BodyError> {
    let broken = |e: std::io::Error| BodyError::Broken(e.to_string());
    let mut hasher = Hasher::default();
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    let mut copy = |input: &mut dyn Read, mut left: u64| -> Result<(), BodyError> {
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = input.read(&mut buf[..want]).map_err(broken)?;
            if n == 0 {
                return Err(BodyError::Broken("the body ended early".into()));
            }
            size += n as u64;
            if size > max {
                return Err(BodyError::TooLarge);
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(broken)?;
            left -= n as u64;
        }
        Ok(())
    };
    match length {
        Some(len) if len > max => return Err(BodyError::TooLarge),
        Some(len) => copy(input, len)?,
        None => loop {
            let mut line = String::new();
            input.read_line(&mut line).map_err(broken)?;
            let hex = line.trim().split(';').next().unwrap_or("");
            let n = u64::from_str_radix(hex, 16)
                .map_err(|_| BodyError::Broken(format!("bad chunk size {:?}", line.trim())))?;
            if n == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut t = String::new();
                    if input.read_line(&mut t).map_err(broken)? == 0 || t.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            copy(input, n)?;
            let mut crlf = String::new();
            input.read_line(&mut crlf).map_err(broken)?;
            if !crlf.trim().is_empty() {
                return Err(BodyError::Broken("a chunk overran its size".into()));
            }
        },
    }
    out.flush().map_err(broken)?;
    Ok((size, hasher.finish().to_hex()))
}

/// `PUT /incoming/NAME`: the body into `DIR/incoming/NAME/archive.tgz`.
fn receive(
    conn: &mut TcpStream,
    input: &mut impl BufRead,
    root: &Path,
    name: &str,
    length: Option<u64>,
    max: u64,
) {
    let dir = root.join("incoming").join(name);
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::File::create(dir.join("archive.tgz")))
        .map(std::io::BufWriter::new);
    let mut file = match written {
        Ok(f) => f,
        Err(e) => return respond(conn, "500 Internal Server Error", &format!("{e}\n")),
    };
    match read_body(input, length, max, &mut file) {
        Ok((size, sum)) => respond(conn, "200 OK", &format!("{size} {sum}\n")),
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_dir_all(&dir);
            match e {
                BodyError::TooLarge => respond(
                    conn,
                    "413 Content Too Large",
                    &format!("the archive is larger than the cache's limit of {max} bytes\n"),
                ),
                BodyError::Broken(why) => respond(conn, "400 Bad Request", &format!("{why}\n")),
            }
            linger(conn, input);
        }
    }
}

/// After an early answer: reads (and drops) what the client still sends until it stops, for
/// a bounded time, so that closing with unread bytes does not reset the connection before the
/// client has read the answer (curl stops sending once it sees it).
fn linger(conn: &mut TcpStream, input: &mut impl Read) {
    let _ = conn.flush();
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let until = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 64 * 1024];
    while Instant::now() < until {
        match input.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn handle(mut conn: TcpStream, root: &Path) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(15)));
    let Ok(reader) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reader.take(MAX_HEAD as u64));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (mut token, mut length, mut chunked) = (None, None, false);
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => return,
            Ok(_) if h == "\r\n" || h == "\n" => break,
            Ok(_) => {
                let Some((k, v)) = h.split_once(':') else {
                    continue;
                };
                let (k, v) = (k.trim(), v.trim());
                if k.eq_ignore_ascii_case("authorization") {
                    token = v.strip_prefix("Bearer ").map(|t| t.trim().to_owned());
                } else if k.eq_ignore_ascii_case("content-length") {
                    length = v.parse::<u64>().ok();
                } else if k.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = v.eq_ignore_ascii_case("chunked");
                } else if k.eq_ignore_ascii_case("expect") && v.eq_ignore_ascii_case("100-continue")
                {
                    // Answered once the capability is checked (below).
                }
            }
        }
    }
    if method == "PUT" {
        let Some(name) = path.strip_prefix("/incoming/").filter(|k| valid_key(k)) else {
            return respond(&mut conn, "404 Not Found", "PUT /incoming/KEY.NONCE\n");
        };
        let Some(token) = token else {
            return respond(&mut conn, "401 Unauthorized", "a capability is needed\n");
        };
        let max = match take_capability(root, &token, &format!("put:{name}")) {
            Ok(Some(max)) => max,
            Ok(None) => return respond(&mut conn, "403 Forbidden", "not an upload capability\n"),
            Err(why) => return respond(&mut conn, "403 Forbidden", &format!("{why}\n")),
        };
        if !chunked && length.is_none() {
            return respond(
                &mut conn,
                "411 Length Required",
                "a length or chunks are needed\n",
            );
        }
        // The body is not bounded by the head's limit; bytes already buffered come first.
        let _ = conn.set_read_timeout(Some(Duration::from_secs(120)));
        let _ = conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        let buffered = reader.buffer().to_vec();
        let rest = reader.into_inner().into_inner();
        let mut body = BufReader::with_capacity(256 * 1024, buffered.as_slice().chain(rest));
        let length = if chunked { None } else { length };
        return receive(&mut conn, &mut body, root, name, length, max);
    }
    if method != "GET" {
        return respond(&mut conn, "405 Method Not Allowed", "GET or PUT only\n");
    }
    let Some(key) = path.strip_prefix("/entries/").filter(|k| valid_key(k)) else {
        return respond(&mut conn, "404 Not Found", "GET /entries/KEY\n");
    };
    let Some(token) = token else {
        return respond(&mut conn, "401 Unauthorized", "a capability is needed\n");
    };
    if let Err(why) = take_capability(root, &token, key) {
        return respond(&mut conn, "403 Forbidden", &format!("{why}\n"));
    }
    let archive = root.join("entries").join(key).join("archive.tgz");
    let Ok(mut file) = std::fs::File::open(&archive) else {
        return respond(&mut conn, "404 Not Found", "no such entry\n");
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nContent-Length: {len}\r\n\
         Connection: close\r\n\r\n"
    );
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    let _ = std::io::copy(&mut file, &mut conn);
    let _ = conn.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_open_one_entry_once_until_they_expire() {
        let dir = std::env::temp_dir().join(format!("cache-serve-test-{}", std::process::id()));
        let caps = dir.join("caps");
        std::fs::create_dir_all(&caps).unwrap();
        let token = "0123456789abcdef0123456789abcdef";
        std::fs::write(caps.join(token), "npm-1 99999999999\n").unwrap();
        assert_eq!(
            take_capability(&dir, token, "npm-2"),
            Err("the capability is for another entry")
        );
        std::fs::write(caps.join(token), "npm-1 99999999999\n").unwrap();
        assert_eq!(take_capability(&dir, token, "npm-1"), Ok(None));
        std::fs::write(caps.join(token), "put:npm-1.ab 99999999999 100\n").unwrap();
        assert_eq!(take_capability(&dir, token, "put:npm-1.ab"), Ok(Some(100)));
        std::fs::write(caps.join(token), "npm-1 99999999999\n").unwrap();
        assert_eq!(take_capability(&dir, token, "npm-1"), Ok(None));
        assert_eq!(
            take_capability(&dir, token, "npm-1"),
            Err("unknown or used capability")
        );
        std::fs::write(caps.join(token), "npm-1 1\n").unwrap();
        assert_eq!(
            take_capability(&dir, token, "npm-1"),
            Err("expired capability")
        );
        assert_eq!(
            take_capability(&dir, "../x", "npm-1"),
            Err("malformed capability")
        );
        assert!(valid_key("cargo-1.x_y") && !valid_key(".x") && !valid_key("a/b"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// One request to [`handle`] over loopback; the whole answer.
    fn ask(root: &Path, request: &[u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let root = root.to_owned();
        let served = std::thread::spawn(move || handle(server, &root));
        client.write_all(request).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).unwrap();
        served.join().unwrap();
        answer
    }

    #[test]
    fn uploads_need_an_upload_capability_a_length_and_fit_the_cap() {
        let dir = std::env::temp_dir().join(format!("cache-put-test-{}", std::process::id()));
        let caps = dir.join("caps");
        std::fs::create_dir_all(&caps).unwrap();
        let token = "0123456789abcdef0123456789abcdef";
        let put = |len: Option<usize>, body: &str| {
            let length = len
                .map(|n| format!("Content-Length: {n}\r\n"))
                .unwrap_or_default();
            format!(
                "PUT /incoming/npm-1.ab HTTP/1.1\r\nAuthorization: Bearer {token}\r\n{length}\r\n{body}"
            )
        };
        let no_cap = "PUT /incoming/npm-1.ab HTTP/1.1\r\nContent-Length: 1\r\n\r\nx";
        assert!(ask(&dir, no_cap.as_bytes()).starts_with("HTTP/1.1 401"));
        // A capability naming no byte limit opens no upload.
        std::fs::write(caps.join(token), "put:npm-1.ab 99999999999\n").unwrap();
        let a = ask(&dir, put(Some(5), "hello").as_bytes());
        assert!(
            a.starts_with("HTTP/1.1 403") && a.contains("not an upload"),
            "{a}"
        );
        std::fs::write(caps.join(token), "put:npm-1.ab 99999999999 100\n").unwrap();
        assert!(ask(&dir, put(None, "hello").as_bytes()).contains("411 Length Required"));
        // Over the cap: 413, nothing kept.
        std::fs::write(caps.join(token), "put:npm-1.ab 99999999999 4\n").unwrap();
        let a = ask(&dir, put(Some(5), "hello").as_bytes());
        assert!(a.contains("413 Content Too Large"), "{a}");
        assert!(!dir.join("incoming/npm-1.ab").exists());
        // Within it: stored, and the size and SHA-256 answered.
        std::fs::write(caps.join(token), "put:npm-1.ab 99999999999 100\n").unwrap();
        let a = ask(&dir, put(Some(5), "hello").as_bytes());
        assert!(
            a.ends_with("5 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n"),
            "{a}"
        );
        let stored = std::fs::read(dir.join("incoming/npm-1.ab/archive.tgz")).unwrap();
        assert_eq!(stored, b"hello");
        // The capability was used up.
        assert!(ask(&dir, put(Some(5), "hello").as_bytes()).contains("unknown or used"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_upload_is_read_by_length_or_in_chunks_and_bounded() {
        let sum = |b: &[u8]| {
            let mut h = Hasher::default();
            h.update(b);
            h.finish().to_hex()
        };
        let mut out = Vec::new();
        let got = read_body(&mut &b"hello world"[..], Some(11), 100, &mut out).unwrap();
        assert_eq!(
            (got, out.as_slice()),
            ((11, sum(b"hello world")), &b"hello world"[..])
        );

        let chunked = b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nTrailer: 1\r\n\r\n";
        let mut out = Vec::new();
        let got = read_body(&mut &chunked[..], None, 100, &mut out).unwrap();
        assert_eq!(
            (got, out.as_slice()),
            ((11, sum(b"hello world")), &b"hello world"[..])
        );

        let mut out = Vec::new();
        assert_eq!(
            read_body(&mut &chunked[..], None, 10, &mut out),
            Err(BodyError::TooLarge)
        );
        assert_eq!(
            read_body(&mut &b"abc"[..], Some(11), 10, &mut Vec::new()),
            Err(BodyError::TooLarge)
        );
        assert!(matches!(
            read_body(&mut &b"abc"[..], Some(5), 10, &mut Vec::new()),
            Err(BodyError::Broken(_))
        ));
        assert!(matches!(
            read_body(
                &mut &b"3\r\nabcdef\r\n0\r\n\r\n"[..],
                None,
                100,
                &mut Vec::new()
            ),
            Err(BodyError::Broken(_))
        ));
        assert!(matches!(
            read_body(&mut &b"zz\r\n"[..], None, 100, &mut Vec::new()),
            Err(BodyError::Broken(_))
        ));
    }
}
