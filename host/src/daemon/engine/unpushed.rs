//! Unpushed work before a delete: counts the commits on the session branch inside the sandbox
//! that exist nowhere else, by running `git` through the plugin's `exec` op in the workspace.
//! A commit counts when it is neither on a remote-tracking branch, nor on the branch's
//! upstream, nor an ancestor of the commit the branch was made at (the oldest entry of the
//! branch's reflog: the base the host shipped, which the host's repository has).

use crate::api::Unpushed;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::plugins::ops::{self, ExecRequest};
use crate::plugins::{Capabilities, Frame, FrameKind};
use crate::session::{SessionId, Status};

use super::super::error::EngineError;
use super::Engine;

/// How long the check may take (a hibernated sandbox is woken by it).
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);
/// Output of the check kept at most (it prints three short lines).
const MAX_OUTPUT: usize = 64 * 1024;

/// The check, run with `sh -c SCRIPT sh BRANCH` in the workspace. Prints `missing` when the
/// branch does not exist, else `count N` and `against TEXT`.
const SCRIPT: &str = r#"b=$1
git rev-parse -q --verify "refs/heads/$b^{commit}" >/dev/null 2>&1 || { echo missing; exit 0; }
not="--remotes"
against="any remote branch"
if up=$(git rev-parse -q --verify "$b@{upstream}" 2>/dev/null); then
  not="$not $up"; against="its upstream $(git rev-parse --abbrev-ref "$b@{upstream}")"
fi
base=$(git reflog show --format=%H "refs/heads/$b" 2>/dev/null | tail -n 1)
if [ -n "$base" ]; then not="$not $base"; against="$against or the base commit $(git rev-parse --short "$base")"; fi
n=$(git rev-list --count "refs/heads/$b" --not $not) || exit 1
echo "count $n"
echo "against $against"
"#;

/// Parses the script's output; `None` when it is not what the script prints.
fn parse(out: &str) -> Option<(Option<u64>, Option<String>)> {
    if out.trim() == "missing" {
        return Some((None, None));
    }
    let mut count = None;
    let mut against = None;
    for line in out.lines() {
        if let Some(n) = line.strip_prefix("count ") {
            count = Some(n.trim().parse().ok()?);
        } else if let Some(a) = line.strip_prefix("against ") {
            against = Some(a.trim().to_owned());
        }
    }
    Some((Some(count?), against))
}

impl Engine {
    /// Counts the session branch's commits that exist only in the sandbox. Never fails for a
    /// sandbox that cannot be asked: the answer says `checked: false` and why.
    pub async fn unpushed(self: &Arc<Self>, id: SessionId) -> Result<Unpushed, EngineError> {
        let rec = self.store().get(id).await?;
        let branch = rec.branch.clone();
        let Some(name) = branch.clone() else {
            return Ok(Unpushed::unchecked(branch, "the session has no branch"));
        };
        if !matches!(rec.status, Status::Running | Status::Hibernated) {
            return Ok(Unpushed::unchecked(
                branch,
                format!("the session is {}", rec.status),
            ));
        }
        let Some(instance) = Engine::instance_of(&rec) else {
            return Ok(Unpushed::unchecked(branch, "the session has no sandbox"));
        };
        let client = self.backends().get(&rec.backend)?;
        if !client.capabilities().contains(Capabilities::EXEC) {
            return Ok(Unpushed::unchecked(
                branch,
                format!("backend `{}` cannot run commands", client.name()),
            ));
        }
        let cwd = self
            .store()
            .agent(id)
            .await?
            .workspace
            .unwrap_or_else(|| self.workspace_for(&rec.backend));
        let req = ExecRequest {
            instance,
            command: vec![
                "sh".into(),
                "-c".into(),
                SCRIPT.into(),
                "sh".into(),
                name.clone(),
            ],
            env: BTreeMap::new(),
            cwd: Some(cwd),
            tty: false,
        };
        let run = async {
            let (_, stream) = client
                .exec(&req)
                .await
                .map_err(|e| EngineError::backend(client.name(), ops::EXEC, e))?;
            let (mut r, mut w) = stream.split();
            let _ = w
                .write_frame(&Frame::new(FrameKind::StdinEof, Vec::new()))
                .await;
            let (mut out, mut err) = (Vec::new(), Vec::new());
            loop {
                let frame = r.read_frame().await.map_err(|e| {
                    EngineError::Internal(format!("reading the git check's output: {e}"))
                })?;
                let Some(f) = frame else {
                    return Err(EngineError::Internal(
                        "the git check ended without an exit code".into(),
                    ));
                };
                match f.kind {
                    FrameKind::Stdout if out.len() < MAX_OUTPUT => {
                        out.extend_from_slice(&f.payload)
                    }
                    FrameKind::Stderr if err.len() < MAX_OUTPUT => {
                        err.extend_from_slice(&f.payload)
                    }
                    FrameKind::Exit => return Ok((f.exit_code(), out, err)),
                    FrameKind::Error => {
                        return Err(EngineError::Internal(format!(
                            "the git check failed: {}",
                            String::from_utf8_lossy(&f.payload)
                        )));
                    }
                    _ => {}
                }
            }
        };
        let (code, out, err) = match tokio::time::timeout(CHECK_TIMEOUT, run).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Ok(Unpushed::unchecked(branch, e.to_string())),
            Err(_) => {
                return Ok(Unpushed::unchecked(
                    branch,
                    format!(
                        "the git check did not finish within {}s",
                        CHECK_TIMEOUT.as_secs()
                    ),
                ));
            }
        };
        let out = String::from_utf8_lossy(&out);
        if code != Some(0) {
            let first = String::from_utf8_lossy(&err)
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect::<String>();
            return Ok(Unpushed::unchecked(
                branch,
                format!(
                    "git in the workspace failed (exit {}): {first}",
                    code.map_or_else(|| "unknown".to_owned(), |c| c.to_string())
                ),
            ));
        }
        match parse(&out) {
            Some((Some(count), against)) => Ok(Unpushed {
                branch,
                checked: true,
                count,
                against,
                reason: None,
            }),
            Some((None, _)) => Ok(Unpushed::unchecked(
                branch,
                format!("the branch {name} does not exist in the workspace"),
            )),
            None => Ok(Unpushed::unchecked(
                branch,
                "the git check printed something unexpected",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_scripts_output() {
        assert_eq!(
            parse("count 2\nagainst any remote branch\n"),
            Some((Some(2), Some("any remote branch".into())))
        );
        assert_eq!(parse("missing\n"), Some((None, None)));
        assert_eq!(parse("count x\n"), None);
        assert_eq!(parse("hello\n"), None);
    }

    #[test]
    fn the_script_counts_commits_beyond_the_base_and_the_remotes() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let check = |branch: &str| {
            let out = std::process::Command::new("sh")
                .current_dir(dir.path())
                .args(["-c", SCRIPT, "sh", branch])
                .output()
                .unwrap();
            assert!(out.status.success());
            parse(&String::from_utf8_lossy(&out.stdout)).unwrap()
        };
        git(&["init", "-q", "-b", "main"]);
        git(&["commit", "-q", "--allow-empty", "-m", "base"]);
        git(&["checkout", "-q", "-b", "clauderon/s"]);
        assert_eq!(check("clauderon/s").0, Some(0));
        git(&["commit", "-q", "--allow-empty", "-m", "one"]);
        git(&["commit", "-q", "--allow-empty", "-m", "two"]);
        let (n, against) = check("clauderon/s");
        assert_eq!(n, Some(2));
        assert!(against.unwrap().contains("base commit"));
        // Pushed: a remote-tracking ref at the tip means nothing is unpushed.
        let tip = git(&["rev-parse", "HEAD"]);
        git(&["update-ref", "refs/remotes/origin/clauderon/s", tip.trim()]);
        assert_eq!(check("clauderon/s").0, Some(0));
        assert_eq!(check("nope"), (None, None));
    }
}
