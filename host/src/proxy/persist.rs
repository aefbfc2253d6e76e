//! What the daemon keeps about each session's proxy access across restarts, so a sandbox's
//! agent keeps working when the daemon is restarted under it: `proxy/sessions/<id>.json`
//! (0600, written atomically, refused when group/world accessible) holds the proxy password
//! and the placeholders the sandbox was given, where the sandbox reaches the proxy and where
//! its trust bundle lies. Never a real secret. `proxy/listen` remembers the port the proxy
//! last bound, so a sandbox that reaches it directly keeps its `HTTPS_PROXY` address.

use super::ProxyError;
use super::ca::proxy_dir;
use crate::home::{Home, write_private_file};
use crate::secrets::Secret;
use crate::session::SessionId;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::PathBuf;

/// One session's proxy state as handed to its sandbox.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionFile {
    /// The proxy password (the user name is the session id).
    pub password: Secret,
    /// Secret name → this session's placeholder.
    pub placeholders: BTreeMap<String, String>,
    /// `host:port` of the proxy as the sandbox reaches it (`HTTPS_PROXY`).
    pub proxy_addr: String,
    /// Where the trust bundle is inside the sandbox.
    pub bundle_path: String,
}

impl std::fmt::Debug for SessionFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionFile")
            .field("password", &self.password)
            .field(
                "placeholders",
                &self.placeholders.keys().collect::<Vec<_>>(),
            )
            .field("proxy_addr", &self.proxy_addr)
            .field("bundle_path", &self.bundle_path)
            .finish()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    password: String,
    placeholders: BTreeMap<String, String>,
    proxy_addr: String,
    bundle_path: String,
}

/// `proxy/sessions/`.
pub fn sessions_dir(home: &Home) -> PathBuf {
    proxy_dir(home).join("sessions")
}

/// `proxy/sessions/<id>.json`.
pub fn session_file(home: &Home, id: SessionId) -> PathBuf {
    sessions_dir(home).join(format!("{id}.json"))
}

fn ensure_dir(home: &Home) -> Result<PathBuf, ProxyError> {
    let dir = sessions_dir(home);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| ProxyError::io(&dir, e))?;
    Ok(dir)
}

/// Writes `id`'s state (0600, atomically).
pub fn save(home: &Home, id: SessionId, file: &SessionFile) -> Result<(), ProxyError> {
    ensure_dir(home)?;
    let raw = Raw {
        password: file.password.expose().to_owned(),
        placeholders: file.placeholders.clone(),
        proxy_addr: file.proxy_addr.clone(),
        bundle_path: file.bundle_path.clone(),
    };
    let json = serde_json::to_vec_pretty(&raw)
        .map_err(|_| ProxyError::Internal("a session file cannot be serialized"))?;
    write_private_file(&session_file(home, id), &json).map_err(|e| ProxyError::Home(e.to_string()))
}

/// Reads `id`'s state; `Ok(None)` when there is none. A file others can read is refused
/// (its password lets a process spend the real secrets through the proxy).
pub fn load(home: &Home, id: SessionId) -> Result<Option<SessionFile>, ProxyError> {
    let path = session_file(home, id);
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ProxyError::io(&path, e)),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ProxyError::SessionFile {
            reason: format!(
                "the session's proxy credential is accessible by group or others (mode \
                 {mode:04o}); fix: chmod 600 {}",
                path.display()
            ),
            path,
        });
    }
    let text = std::fs::read(&path).map_err(|e| ProxyError::io(&path, e))?;
    let raw: Raw = serde_json::from_slice(&text).map_err(|e| ProxyError::SessionFile {
        path: path.clone(),
        reason: format!(
            "not a session proxy file ({e}); delete it and recreate the session if its agent \
             cannot reach the network"
        ),
    })?;
    Ok(Some(SessionFile {
        password: Secret::new(raw.password),
        placeholders: raw.placeholders,
        proxy_addr: raw.proxy_addr,
        bundle_path: raw.bundle_path,
    }))
}

/// Removes `id`'s state (nothing to do when there is none).
pub fn remove(home: &Home, id: SessionId) -> Result<(), ProxyError> {
    let path = session_file(home, id);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ProxyError::io(&path, e)),
    }
}

/// The sessions that have a state file.
pub fn list(home: &Home) -> Vec<SessionId> {
    let Ok(entries) = std::fs::read_dir(sessions_dir(home)) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let name = e.ok()?.file_name();
            name.to_str()?.strip_suffix(".json")?.parse().ok()
        })
        .collect()
}

/// `proxy/listen`: the address the proxy last bound.
pub fn listen_file(home: &Home) -> PathBuf {
    proxy_dir(home).join("listen")
}

/// The address the proxy last bound, if it was recorded and is loopback.
pub fn last_listen(home: &Home) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(listen_file(home)).ok()?;
    let addr: SocketAddr = text.trim().parse().ok()?;
    (addr.ip().is_loopback() && addr.port() != 0).then_some(addr)
}

/// Records the address the proxy bound.
pub fn save_listen(home: &Home, addr: SocketAddr) -> Result<(), ProxyError> {
    let dir = proxy_dir(home);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| ProxyError::io(&dir, e))?;
    write_private_file(&listen_file(home), format!("{addr}\n").as_bytes())
        .map_err(|e| ProxyError::Home(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_file_round_trips_privately_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let id = SessionId::new();
        assert!(load(&home, id).unwrap().is_none());
        let f = SessionFile {
            password: Secret::new("pw-123".into()),
            placeholders: BTreeMap::from([("a".into(), "clauderon-placeholder-a-1".into())]),
            proxy_addr: "127.0.0.1:18080".into(),
            bundle_path: "/home/agent/.clauderon/ca-bundle.pem".into(),
        };
        save(&home, id, &f).unwrap();
        let path = session_file(&home, id);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(&home, id).unwrap(), Some(f.clone()));
        assert_eq!(list(&home), vec![id]);
        assert!(!format!("{f:?}").contains("pw-123"));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load(&home, id).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        assert!(!e.contains("pw-123"), "{e}");
        std::fs::write(&path, "{").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load(&home, id).is_err());

        remove(&home, id).unwrap();
        remove(&home, id).unwrap();
        assert!(list(&home).is_empty());
    }

    #[test]
    fn the_listen_address_is_remembered_when_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        assert_eq!(last_listen(&home), None);
        save_listen(&home, "127.0.0.1:4567".parse().unwrap()).unwrap();
        assert_eq!(last_listen(&home), Some("127.0.0.1:4567".parse().unwrap()));
        std::fs::write(listen_file(&home), "10.0.0.1:4567").unwrap();
        assert_eq!(last_listen(&home), None);
    }
}
