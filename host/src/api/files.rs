//! How a client finds the daemon: `daemon.json` (where a running daemon listens) and
//! `api-token` (what it presents), both in `$CLAUDERON_HOME`. The daemon writes them
//! (`daemon::files`); every client reads them here.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::home::{Home, HomeError};

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
