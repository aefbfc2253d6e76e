//! `clauderon-relay serve-cache --root DIR [--listen 0.0.0.0:8080] [--idle-secs 60]`: runs in a
//! cache sprite and serves its entries over the sprite's URL, so a session sprite can fetch an
//! archive directly (the direct path of a restore) without the org's token.
//!
//! Every request needs `Authorization: Bearer TOKEN` where `DIR/caps/TOKEN` exists (written by
//! the plugin through the org's exec API just before): one line `KEY EXPIRY` (Unix seconds). A
//! capability opens one entry, once: it is removed before the archive is sent, and refused
//! after its expiry. `GET /entries/KEY` answers `DIR/entries/KEY/archive.tgz`. The server exits
//! once nothing has connected for `--idle-secs` and no transfer runs; a second server finding
//! the port taken exits 3 (the first serves every capability).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use clauderon_relay::{EXIT_ADDR_IN_USE, EXIT_USAGE};

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

/// Takes the capability `token` for `key` (removing it): `Err` says why it does not open it.
fn take_capability(root: &Path, token: &str, key: &str) -> Result<(), &'static str> {
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
    Ok(())
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
    let mut token = None;
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => return,
            Ok(_) if h == "\r\n" || h == "\n" => break,
            Ok(_) => {
                if let Some((k, v)) = h.split_once(':')
                    && k.trim().eq_ignore_ascii_case("authorization")
                {
                    token = v
                        .trim()
                        .strip_prefix("Bearer ")
                        .map(|t| t.trim().to_owned());
                }
            }
        }
    }
    if method != "GET" {
        return respond(&mut conn, "405 Method Not Allowed", "GET only\n");
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
        assert_eq!(take_capability(&dir, token, "npm-1"), Ok(()));
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
}
