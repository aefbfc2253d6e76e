//! The daemon's files in `$CLAUDERON_HOME`: `api-token` (made on first start), `daemon.json`
//! (where a running daemon listens) and `daemon.lock` (one daemon per home).

use std::io::Read as _;
use std::path::PathBuf;

use crate::api::files::{DaemonInfo, FilesError, read_info, read_token};
use crate::home::{FileLock, Home, write_private_file};

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

/// The exclusive lock on `daemon.lock`, held for the daemon's life (released by the kernel
/// even when the process is killed): one daemon per home.
#[derive(Debug)]
pub struct DaemonLock {
    _lock: FileLock,
}

impl DaemonLock {
    /// Takes the lock, or says which daemon holds it.
    pub fn acquire(home: &Home) -> Result<Self, FilesError> {
        let path = home.root().join("daemon.lock");
        match FileLock::try_acquire(&path) {
            Ok(Some(lock)) => Ok(Self { _lock: lock }),
            Ok(None) => {
                let pid = read_info(home)
                    .ok()
                    .flatten()
                    .map(|i| format!(" (pid {})", i.pid))
                    .unwrap_or_default();
                Err(FilesError::Locked {
                    home: home.root().to_path_buf(),
                    pid,
                })
            }
            Err(source) => Err(FilesError::Read { path, source }),
        }
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
