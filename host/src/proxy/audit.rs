//! The audit log: one JSONL file per session, `$CLAUDERON_HOME/audit/<session-id>.jsonl`
//! (0600), one line per request with host, method, path (no query), status, duration and
//! whether a credential was injected. Never a header value, query or body.

use super::ProxyError;
use crate::home::Home;
use crate::session::SessionId;
use std::collections::HashMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{BufRead, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::mpsc;

/// One request as the audit log records it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// When the request arrived (RFC 3339, UTC).
    pub at: String,
    /// The upstream host.
    pub host: String,
    /// The method (`CONNECT` for refused tunnels).
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The status the sandbox got.
    pub status: u16,
    /// Milliseconds until the response head.
    pub duration_ms: f64,
    /// Whether a credential was injected.
    pub injected: bool,
    /// Why the request was refused as a policy violation, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation: Option<String>,
}

/// `$CLAUDERON_HOME/audit/`.
pub fn audit_dir(home: &Home) -> PathBuf {
    home.root().join("audit")
}

/// `$CLAUDERON_HOME/audit/<session-id>.jsonl`.
pub fn audit_file(home: &Home, id: SessionId) -> PathBuf {
    audit_dir(home).join(format!("{id}.jsonl"))
}

/// Reads a session's audit log (empty when it has none). A line that does not parse is
/// skipped (a crash can cut the last one short).
pub fn read_audit(home: &Home, id: SessionId) -> Result<Vec<AuditEntry>, ProxyError> {
    let path = audit_file(home, id);
    let f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ProxyError::io(&path, e)),
    };
    let mut out = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line.map_err(|e| ProxyError::io(&path, e))?;
        if let Ok(entry) = serde_json::from_str(&line) {
            out.push(entry);
        }
    }
    Ok(out)
}

enum Msg {
    Entry(SessionId, AuditEntry),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// A writer on its own thread, so request handling never waits on the disk.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
}

const MAX_OPEN: usize = 256;

impl AuditLog {
    /// Starts the writer for `home`'s audit directory (created 0700).
    pub fn start(home: &Home) -> Result<Self, ProxyError> {
        let dir = audit_dir(home);
        if !dir.is_dir() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| ProxyError::io(&dir, e))?;
        }
        let home = home.clone();
        let (tx, rx) = mpsc::channel::<Msg>();
        std::thread::Builder::new()
            .name("clauderon-audit".into())
            .spawn(move || writer(home, rx))
            .map_err(|e| ProxyError::io(&dir, e))?;
        Ok(Self { tx })
    }

    /// Records one entry.
    pub fn record(&self, id: SessionId, entry: AuditEntry) {
        let _ = self.tx.send(Msg::Entry(id, entry));
    }

    /// Waits until everything recorded so far is on disk.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

fn writer(home: Home, rx: mpsc::Receiver<Msg>) {
    let mut open: HashMap<SessionId, BufWriter<File>> = HashMap::new();
    // Ends when every sender is dropped.
    while let Ok(first) = rx.recv() {
        let mut waiters = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Entry(id, entry) => {
                    if !open.contains_key(&id) {
                        if open.len() >= MAX_OPEN {
                            for (_, mut w) in open.drain() {
                                let _ = w.flush();
                            }
                        }
                        let path = audit_file(&home, id);
                        match OpenOptions::new()
                            .append(true)
                            .create(true)
                            .mode(0o600)
                            .open(&path)
                        {
                            Ok(f) => {
                                open.insert(id, BufWriter::new(f));
                            }
                            Err(e) => {
                                tracing::warn!(path = %path.display(), error = %e, "cannot write the audit log");
                            }
                        }
                    }
                    if let Some(w) = open.get_mut(&id)
                        && let Ok(line) = serde_json::to_string(&entry)
                    {
                        let _ = writeln!(w, "{line}");
                    }
                }
                Msg::Flush(tx) => waiters.push(tx),
            }
            next = rx.try_recv().ok();
        }
        for w in open.values_mut() {
            let _ = w.flush();
        }
        for w in waiters {
            let _ = w.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn entries_land_in_a_private_file() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::new(tmp.path());
        let log = AuditLog::start(&home).unwrap();
        let id = SessionId::new();
        let e = AuditEntry {
            at: "2026-01-01T00:00:00Z".into(),
            host: "api.anthropic.com".into(),
            method: "POST".into(),
            path: "/v1/messages".into(),
            status: 200,
            duration_ms: 1.5,
            injected: true,
            violation: None,
        };
        log.record(id, e.clone());
        log.flush().await;
        assert_eq!(read_audit(&home, id).unwrap(), vec![e]);
        let mode = std::fs::metadata(audit_file(&home, id))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(read_audit(&home, SessionId::new()).unwrap().is_empty());
    }
}
