//! `proxy.toml`, as far as secrets need it: `[onepassword]` with its `credentials` table
//! (secret name → `op://` reference). Other tables belong to the credential proxy, which
//! validates them itself.

use super::{ConfigError, source};
use crate::home::Home;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long `op read` may take by default (a locked app waiting for approval would hang).
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Default, serde::Deserialize)]
struct RawProxy {
    onepassword: Option<RawOnePassword>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOnePassword {
    #[serde(default)]
    credentials: BTreeMap<String, toml::Spanned<String>>,
    account: Option<String>,
    timeout_seconds: Option<toml::Spanned<u64>>,
    op_path: Option<PathBuf>,
}

/// `[onepassword]`: references and how to run `op`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnePasswordConfig {
    /// Secret name → `op://vault/item[/section]/field`.
    pub credentials: BTreeMap<String, String>,
    /// `--account` for `op`, if set.
    pub account: Option<String>,
    /// How long one `op read` may take.
    pub timeout: Duration,
    /// The `op` program (default: `op`, found on PATH).
    pub op_path: PathBuf,
}

impl Default for OnePasswordConfig {
    fn default() -> Self {
        Self {
            credentials: BTreeMap::new(),
            account: None,
            timeout: DEFAULT_OP_TIMEOUT,
            op_path: PathBuf::from("op"),
        }
    }
}

/// The loaded `proxy.toml` (defaults when the file does not exist).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `[onepassword]`.
    pub onepassword: OnePasswordConfig,
}

/// Whether `r` has the shape `op://vault/item[/section]/field` (non-empty segments).
pub fn valid_op_reference(r: &str) -> bool {
    let Some(rest) = r.strip_prefix("op://") else {
        return false;
    };
    let path = rest.split('?').next().unwrap_or_default();
    let segs: Vec<&str> = path.split('/').collect();
    (3..=4).contains(&segs.len()) && segs.iter().all(|s| !s.trim().is_empty())
}

impl ProxyConfig {
    /// Loads `proxy.toml` from `home`; a missing file means no 1Password references.
    pub fn load(home: &Home) -> Result<Self, ConfigError> {
        let file = home.proxy_file();
        match std::fs::read_to_string(&file) {
            Ok(text) => Self::parse(&file, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read { file, source }),
        }
    }

    /// Parses proxy config text as if read from `file`.
    pub fn parse(file: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawProxy = toml::from_str(text).map_err(|e| source::from_toml(file, text, &e))?;
        let Some(op) = raw.onepassword else {
            return Ok(Self::default());
        };
        let mut credentials = BTreeMap::new();
        for (name, r) in op.credentials {
            let key = format!("onepassword.credentials.{name}");
            if !crate::secrets::valid_secret_name(&name) {
                return Err(source::error_at_path(
                    file,
                    text,
                    &["onepassword", "credentials", &name],
                    true,
                    "a secret name is lowercase letters, digits and `_` (e.g. github_token)",
                ));
            }
            if !valid_op_reference(r.get_ref()) {
                // The value is not quoted back: it may be a pasted secret.
                return Err(source::error_at(
                    file,
                    text,
                    r.span().start,
                    Some(key),
                    "expected a 1Password reference op://<vault>/<item>[/<section>]/<field>",
                ));
            }
            credentials.insert(name, r.into_inner());
        }
        let timeout = match op.timeout_seconds {
            Some(t) if *t.get_ref() == 0 || *t.get_ref() > 600 => {
                return Err(source::error_at(
                    file,
                    text,
                    t.span().start,
                    Some("onepassword.timeout_seconds".into()),
                    "expected a number of seconds from 1 to 600",
                ));
            }
            Some(t) => Duration::from_secs(t.into_inner()),
            None => DEFAULT_OP_TIMEOUT,
        };
        Ok(Self {
            onepassword: OnePasswordConfig {
                credentials,
                account: op.account,
                timeout,
                op_path: op.op_path.unwrap_or_else(|| PathBuf::from("op")),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        ProxyConfig::parse(Path::new("/h/proxy.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn reads_references() {
        let p = ProxyConfig::parse(
            Path::new("/h/proxy.toml"),
            "[rules]\nanything = 1\n[onepassword]\naccount = \"me\"\ntimeout_seconds = 3\n\
             [onepassword.credentials]\ngithub_token = \"op://Private/GitHub/token\"\n\
             anthropic_api_key = \"op://V/Item/Sec/field?attribute=otp\"\n",
        )
        .unwrap();
        let op = p.onepassword;
        assert_eq!(op.credentials["github_token"], "op://Private/GitHub/token");
        assert_eq!(op.account.as_deref(), Some("me"));
        assert_eq!(op.timeout, Duration::from_secs(3));
        assert_eq!(op.op_path, PathBuf::from("op"));
    }

    #[test]
    fn errors_are_located_and_do_not_echo_values() {
        let e = err("[onepassword.credentials]\ngithub_token = \"ghp_secretvalue\"\n");
        assert_eq!(
            e,
            "/h/proxy.toml:2:16: `onepassword.credentials.github_token`: expected a 1Password \
             reference op://<vault>/<item>[/<section>]/<field>"
        );
        assert!(!e.contains("ghp_"));
        let e = err("[onepassword]\ntimeout = 5\n");
        assert!(
            e.starts_with("/h/proxy.toml:2:1: `onepassword.timeout`: unknown key `timeout`"),
            "{e}"
        );
        let e = err("[onepassword]\ntimeout_seconds = 0\n");
        assert!(
            e.starts_with("/h/proxy.toml:2:19: `onepassword.timeout_seconds`"),
            "{e}"
        );
        let e = err("[onepassword]\ntimeout_seconds = \"5\"\n");
        assert!(
            e.starts_with("/h/proxy.toml:2:19: `onepassword.timeout_seconds`: invalid type"),
            "{e}"
        );
        let e = err("[onepassword.credentials]\n\"Bad-Name\" = \"op://a/b/c\"\n");
        assert!(e.starts_with("/h/proxy.toml:2:1:"), "{e}");
        let e = err("[onepassword\n");
        assert!(e.starts_with("/h/proxy.toml:1:"), "{e}");
        for bad in ["op://a/b", "op://a//c", "op:/a/b/c", "op://a/b/c/d/e"] {
            assert!(!valid_op_reference(bad), "{bad}");
        }
    }
}
