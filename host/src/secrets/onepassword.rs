//! Reading a 1Password reference with `op read`, with a timeout and failures turned into
//! messages a user can act on.

use super::Secret;
use crate::config::OnePasswordConfig;
use std::collections::BTreeMap;
use std::process::Stdio;

/// The largest value accepted from `op` (a secret is small; anything bigger is a mistake).
const MAX_VALUE: usize = 64 * 1024;

/// Why `op read` gave no value. Messages never contain the value or `op`'s stdout.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// `op` is not installed or not on PATH.
    #[error(
        "secret `{secret}` is a 1Password reference, but the 1Password CLI `{program}` was not \
         found on PATH; install it (https://developer.1password.com/docs/cli) or supply the \
         secret another way"
    )]
    NotInstalled {
        /// The secret.
        secret: String,
        /// The program looked for.
        program: String,
    },
    /// `op` could not be started.
    #[error("secret `{secret}`: cannot run the 1Password CLI: {source}")]
    Spawn {
        /// The secret.
        secret: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `op` did not finish in time.
    #[error(
        "secret `{secret}`: `op read` did not answer within {secs}s (is 1Password locked or \
         waiting for approval?); unlock it and retry, or raise [onepassword] timeout_seconds in \
         proxy.toml"
    )]
    Timeout {
        /// The secret.
        secret: String,
        /// The timeout.
        secs: u64,
    },
    /// `op` is not signed in.
    #[error(
        "secret `{secret}`: the 1Password CLI is not signed in; run `op signin` (or set OP_SERVICE_ACCOUNT_TOKEN) and retry"
    )]
    NotSignedIn {
        /// The secret.
        secret: String,
    },
    /// The reference names a vault, item or field that does not exist.
    #[error(
        "secret `{secret}`: 1Password has nothing at {reference}: {detail}; fix the reference in proxy.toml [onepassword.credentials]"
    )]
    NotFound {
        /// The secret.
        secret: String,
        /// The reference.
        reference: String,
        /// `op`'s explanation.
        detail: String,
    },
    /// The account may not read the item.
    #[error("secret `{secret}`: 1Password refused access: {detail}")]
    Denied {
        /// The secret.
        secret: String,
        /// `op`'s explanation.
        detail: String,
    },
    /// Any other failure.
    #[error("secret `{secret}`: `op read` failed (exit status {code}): {detail}")]
    Failed {
        /// The secret.
        secret: String,
        /// Exit status (-1 if killed by a signal).
        code: i32,
        /// The first line of `op`'s stderr.
        detail: String,
    },
    /// `op` succeeded with an empty value (an empty field).
    #[error("secret `{secret}`: 1Password returned an empty value for {reference}")]
    Empty {
        /// The secret.
        secret: String,
        /// The reference.
        reference: String,
    },
    /// `op` returned more than 64 KiB.
    #[error("secret `{secret}`: 1Password returned more than 64 KiB; that is not a credential")]
    TooLarge {
        /// The secret.
        secret: String,
    },
}

/// Environment variables `op` needs; nothing else from our environment reaches it.
fn child_env(env: &BTreeMap<String, String>) -> impl Iterator<Item = (&String, &String)> {
    env.iter().filter(|(k, _)| {
        matches!(
            k.as_str(),
            "PATH" | "HOME" | "USER" | "LOGNAME" | "TMPDIR" | "XDG_RUNTIME_DIR" | "XDG_CONFIG_HOME"
        ) || k.starts_with("OP_")
    })
}

/// `op`'s stderr reduced to one bounded line without its `[ERROR] date time` prefix.
fn detail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let line = match line.strip_prefix("[ERROR]") {
        // `[ERROR] 2024/01/02 03:04:05 message`
        Some(rest) => rest
            .trim_start()
            .splitn(3, ' ')
            .nth(2)
            .unwrap_or(rest)
            .trim(),
        None => line,
    };
    let mut out: String = line.chars().take(300).collect();
    if out.is_empty() {
        out = "no error message".into();
    }
    out
}

/// Runs `op read --no-newline [--account A] <reference>` for secret `name` with the configured
/// timeout. `env` is the environment to take `PATH`, `HOME` and `OP_*` from.
pub(crate) async fn read(
    cfg: &OnePasswordConfig,
    env: &BTreeMap<String, String>,
    name: &str,
    reference: &str,
) -> Result<Secret, OpError> {
    let mut cmd = tokio::process::Command::new(&cfg.op_path);
    cmd.arg("read").arg("--no-newline");
    if let Some(a) = &cfg.account {
        cmd.arg("--account").arg(a);
    }
    cmd.arg(reference)
        .env_clear()
        .envs(child_env(env))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A timeout drops the future, which kills `op` rather than leaving it behind.
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            OpError::NotInstalled {
                secret: name.into(),
                program: cfg.op_path.display().to_string(),
            }
        } else {
            OpError::Spawn {
                secret: name.into(),
                source,
            }
        }
    })?;
    let out = tokio::time::timeout(cfg.timeout, child.wait_with_output())
        .await
        .map_err(|_| OpError::Timeout {
            secret: name.into(),
            secs: cfg.timeout.as_secs(),
        })?
        .map_err(|source| OpError::Spawn {
            secret: name.into(),
            source,
        })?;
    if !out.status.success() {
        let d = detail(&out.stderr);
        let lower = d.to_ascii_lowercase();
        let secret = name.to_string();
        return Err(
            if lower.contains("not currently signed in")
                || lower.contains("could not find session token")
                || lower.contains("op account add")
            {
                OpError::NotSignedIn { secret }
            } else if lower.contains("isn't an item")
                || lower.contains("isn't a vault")
                || lower.contains("does not have a field")
                || lower.contains("too many '/'")
            {
                OpError::NotFound {
                    secret,
                    reference: reference.into(),
                    detail: d,
                }
            } else if lower.contains("(403)")
                || lower.contains("(401)")
                || lower.contains("forbidden")
            {
                OpError::Denied { secret, detail: d }
            } else if lower.contains("authorization timeout") || lower.contains("timed out") {
                OpError::Timeout {
                    secret,
                    secs: cfg.timeout.as_secs(),
                }
            } else {
                OpError::Failed {
                    secret,
                    code: out.status.code().unwrap_or(-1),
                    detail: d,
                }
            },
        );
    }
    if out.stdout.len() > MAX_VALUE {
        return Err(OpError::TooLarge {
            secret: name.into(),
        });
    }
    let value = String::from_utf8(out.stdout).map_err(|_| OpError::Failed {
        secret: name.into(),
        code: 0,
        detail: "the value is not UTF-8".into(),
    })?;
    if value.is_empty() {
        return Err(OpError::Empty {
            secret: name.into(),
            reference: reference.into(),
        });
    }
    Ok(Secret::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_strips_prefix_and_bounds() {
        assert_eq!(
            detail(b"[ERROR] 2024/01/02 03:04:05 You are not currently signed in.\nmore"),
            "You are not currently signed in."
        );
        assert_eq!(detail(b""), "no error message");
        assert_eq!(detail("x".repeat(1000).as_bytes()).len(), 300);
    }
}
