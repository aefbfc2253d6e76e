//! The credential-injecting proxy: the sandbox holds placeholders, the host holds the keys.
//!
//! A session's agent reaches the network through this HTTP proxy (`HTTPS_PROXY`), presenting
//! its per-session proxy credential. HTTPS goes through `CONNECT`, which is refused for hosts
//! outside the policy; allowed tunnels are TLS-terminated with a leaf certificate from the
//! installation's CA (anything that is not TLS is closed, never tunnelled blindly). Each
//! request is checked for misplaced placeholders (403 and a violation in the audit log), has
//! its rule's header stripped and set to the real secret, and goes upstream over TLS whose
//! certificate verified; responses have real secrets scrubbed. See DESIGN.md §10.

pub mod agent_reports;
pub mod audit;
pub mod ca;
pub mod credentials;
pub mod persist;
pub mod rules;
pub mod sandbox;
pub mod scrub;
mod server;
pub mod sessions;
mod stream;
mod tripwire;

pub use agent_reports::{AGENT_REPORT_HOST, AGENT_REPORT_PATH, AgentReport};
pub use audit::{AuditEntry, audit_file, read_audit};
pub use ca::CertificateAuthority;
pub use credentials::{RuleCredential, rule_credentials};
pub use rules::{CLAUDE_OAUTH_SECRET, Format, HostPattern, Policy, Rule, UpstreamOverride};
pub use sandbox::{SandboxOptions, SandboxSetup};
pub use server::CredentialProxy;
pub use sessions::ProxyCredential;

use std::path::{Path, PathBuf};

/// Errors from setting up or configuring the proxy. Messages name the file and the fix and
/// never hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The home could not be written.
    #[error("{0}")]
    Home(String),
    /// The CA key is readable by group or others.
    #[error(
        "the proxy CA key {path} is accessible by group or others (mode {mode:04o}); it must be \
         readable only by you. Fix: chmod 600 {path}"
    )]
    CaPermissions {
        /// The key file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// A CA file is malformed.
    #[error("{path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong and the fix.
        reason: String,
    },
    /// A session's persisted proxy state is unusable.
    #[error("{path}: {reason}")]
    SessionFile {
        /// The file.
        path: PathBuf,
        /// What is wrong and the fix.
        reason: String,
    },
    /// Certificate generation failed.
    #[error("cannot make a certificate: {0}")]
    Certificate(String),
    /// A TLS configuration could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// proxy.toml is malformed.
    #[error("{file}:{line}:{column}: {}{message}", if key.is_empty() { String::new() } else { format!("`{key}`: ") })]
    Config {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The dotted key, when known.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The session is not registered with the proxy.
    #[error("session {0} is not registered with the credential proxy")]
    UnknownSession(String),
    /// A bug: an invariant did not hold.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl ProxyError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn cert(e: rcgen::Error) -> Self {
        Self::Certificate(e.to_string())
    }
}
