//! The daemon's files in `$CLAUDERON_HOME`: `api-token` (made on first start), `daemon.json`
//! (where a running daemon listens) and `daemon.lock` (one daemon per home).

use std::fs::OpenOptions;
use std::io::Read as _;
use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;

use crate::home::{Home, HomeError, write_private_file};

/// Errors reading or writing the daemon's files.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// Writing a file failed.
    #[error(transparent)]
    Write(#[from] HomeError),
    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The token file exists but does not hold a token.
    #[error(
        "{path} does not hold an API token; delete it and restart the daemon to make a new one"
    )]
    BadToken {
        /// The file.
        path: PathBuf,
    },
    /// `daemon.json` is not what a daemon writes.
    #[error("{path} is not a daemon description ({reason}); delete it if no daemon is running")]
    BadInfo {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another daemon holds the lock on this home.
    #[error(
        "another clauderon daemon is already running for {home}{pid}; stop it first \
         (`clauderon daemon stop`) or use another CLAUDERON_HOME"
    )]
    Locked {
        /// The home directory.
        home: PathBuf,
        /// ` (pid N)` when `daemon.json` names one.
        pid: String,
    },
}

/// `daemon.json`: written once the listener is bound, removed on a clean stop.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DaemonInfo {
    /// The daemon's process id.
    pub pid: u32,
    /// The bound address (`127.0.0.1:PORT`).
    pub addr: SocketAddr,
    /// The clauderon version of the daemon.
    pub version: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Where its credential proxy listens (`127.0.0.1:PORT`), when it runs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_addr: Option<SocketAddr>,
}

impl DaemonInfo {
    /// The API's base URL (`http://127.0.0.1:PORT`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Reads `daemon.json`; `Ok(None)` when it does not exist.
pub fn read_info(home: &Home) -> Result<Option<DaemonInfo>, FilesError> {
    let path = home.daemon_file();
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| FilesError::BadInfo {
                path,
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FilesError::Read { path, source }),
    }
}

/// Writes `daemon.json` (0600, atomically).
pub fn write_info(home: &Home, info: &DaemonInfo) -> Result<(), FilesError> {
    let json = serde_json::to_vec_pretty(info).map_err(|e| FilesError::BadInfo {
        path: home.daemon_file(),
        reason: e.to_string(),
    })?;
    write_private_file(&home.daemon_file(), &json)?;
    Ok(())
}

/// Removes `daemon.json` if it still describes this process.
pub fn remove_info(home: &Home) {
    if let Ok(Some(info)) = read_info(home)
        && info.pid == std::process::id()
    {
        let _ = std::fs::remove_file(home.daemon_file());
    }
}

/// Reads the API token (what the CLI presents); `Ok(None)` when no daemon made one yet.
pub fn read_token(home: &Home) -> Result<Option<String>, FilesError> {
    let path = home.api_token_file();
    match std::fs::read_to_string(&path) {
        Ok(t) => {
            let t = t.trim().to_owned();
            if t.len() < 32 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(FilesError::BadToken { path });
            }
            Ok(Some(t))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FilesError::Read { path, source }),
    }
}

/// The API token, made (32 random bytes, hex, 0600) when the file does not exist yet.
pub fn load_or_create_token(home: &Home) -> Result<String, FilesError> {
    if let Some(t) = read_token(home)? {
        return Ok(t);
    }
    let path = home.api_token_file();
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|source| FilesError::Read {
            path: PathBuf::from("/dev/urandom"),
            source,
        })?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private_file(&path, format!("{token}\n").as_bytes())?;
    Ok(token)
}

/// An exclusive `flock` on `daemon.lock`, held for the daemon's life (released by the kernel
/// even when the process is killed).
#[derive(Debug)]
pub struct DaemonLock {
    _file: std::fs::File,
}

impl DaemonLock {
    /// Takes the lock, or says which daemon holds it.
    pub fn acquire(home: &Home) -> Result<Self, FilesError> {
        let path = home.root().join("daemon.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| FilesError::Read {
                path: path.clone(),
                source,
            })?;
        // SAFETY: flock on an fd we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let pid = read_info(home)
                .ok()
                .flatten()
                .map(|i| format!(" (pid {})", i.pid))
                .unwrap_or_default();
            return Err(FilesError::Locked {
                home: home.root().to_path_buf(),
                pid,
            });
        }
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn token_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let t1 = load_or_create_token(&home).unwrap();
        assert_eq!(t1.len(), 64);
        let mode = std::fs::metadata(home.api_token_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create_token(&home).unwrap(), t1);
        std::fs::write(home.api_token_file(), "short").unwrap();
        assert!(matches!(
            load_or_create_token(&home),
            Err(FilesError::BadToken { .. })
        ));
    }

    #[test]
    fn info_round_trips_and_is_removed_only_by_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        assert_eq!(read_info(&home).unwrap(), None);
        let mut info = DaemonInfo {
            pid: std::process::id(),
            addr: "127.0.0.1:4000".parse().unwrap(),
            version: "0.1.0".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            proxy_addr: Some("127.0.0.1:4001".parse().unwrap()),
        };
        write_info(&home, &info).unwrap();
        assert_eq!(read_info(&home).unwrap(), Some(info.clone()));
        assert_eq!(info.base_url(), "http://127.0.0.1:4000");
        info.pid += 1;
        write_info(&home, &info).unwrap();
        remove_info(&home);
        assert!(home.daemon_file().exists(), "another pid's file is kept");
        info.pid = std::process::id();
        write_info(&home, &info).unwrap();
        remove_info(&home);
        assert!(!home.daemon_file().exists());
    }

    #[test]
    fn second_lock_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let _a = DaemonLock::acquire(&home).unwrap();
        let e = DaemonLock::acquire(&home).unwrap_err();
        assert!(e.to_string().contains("already running"), "{e}");
    }
}
