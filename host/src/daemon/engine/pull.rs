//! `clauderon pull NAME [--branch B]` (DESIGN §15): the session branch's commits come from the
//! sandbox into the user's repository as a `git bundle` made in the sandbox and carried by the
//! plugin's `exec`, so it works whether the repository had a reachable remote or came over as
//! a bundle, and with or without `--sync`. The local branch (`clauderon/<name>`, or B) only
//! fast-forwards: a branch with commits the sandbox lacks is left alone and the answer says so.
//! In a synced session's own worktree the branch moves with a mixed reset (the files there are
//! already the synced ones).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::api::Pulled;
use crate::plugins::Capabilities;
use crate::session::{SessionId, Status};

use super::super::error::EngineError;
use super::Engine;
use super::sync::{git, session_branch};

/// How long making and carrying the bundle may take.
const PULL_TIMEOUT: Duration = Duration::from_secs(600);
/// Commits the host names as already held, at most (the sandbox leaves them out).
const MAX_HAVES: usize = 256;

/// Run as `sh -c SCRIPT sh WORKSPACE BRANCH HAVE...` in the sandbox: prints `HEAD N` (the
/// branch's commit and how many commits the host lacks) on the first line, then the bundle.
const SCRIPT: &str = r#"cd "$1" || exit 3
b=$2; shift 2
if [ -n "$b" ]; then ref="refs/heads/$b"; else ref=HEAD; fi
head=$(git rev-parse -q --verify "$ref^{commit}") || { echo "no branch ${b:-HEAD} in $PWD" >&2; exit 4; }
not=""
for h in "$@"; do git cat-file -e "$h^{commit}" 2>/dev/null && not="$not ^$h"; done
n=$(git rev-list --count "$head" $not) || exit 5
echo "$head $n $ref"
[ "$n" = 0 ] || exec git bundle create -q - "$ref" $not
"#;

/// Git objects ids of the local repository's branches, remote-tracking branches and our own
/// refs: the sandbox leaves out what they already hold.
async fn haves(repo: &Path) -> Vec<String> {
    let out = git(
        repo,
        &[
            "for-each-ref",
            "--format=%(objectname)",
            "refs/heads",
            "refs/remotes",
            "refs/clauderon",
        ],
    )
    .await
    .unwrap_or_default();
    let mut v: Vec<String> = Vec::new();
    for l in out.lines() {
        if clauderon_sync::history::is_oid(l) && !v.iter().any(|x| x == l) {
            v.push(l.to_owned());
        }
    }
    v.truncate(MAX_HAVES);
    v
}

/// The worktree that has `branch` checked out, if one does.
async fn checked_out_in(repo: &Path, branch: &str) -> Option<PathBuf> {
    let list = git(repo, &["worktree", "list", "--porcelain"]).await.ok()?;
    let mut at: Option<&str> = None;
    for l in list.lines() {
        if let Some(p) = l.strip_prefix("worktree ") {
            at = Some(p);
        } else if l.strip_prefix("branch ") == Some(&format!("refs/heads/{branch}")) {
            return at.map(PathBuf::from);
        }
    }
    None
}

impl Engine {
    /// Fetches the session branch's commits from the sandbox into the local repository as
    /// `branch` (default `clauderon/<name>`).
    pub async fn pull(
        self: &Arc<Self>,
        id: SessionId,
        branch: Option<String>,
    ) -> Result<Pulled, EngineError> {
        let rec = self.store().get(id).await?;
        if !matches!(rec.status, Status::Running | Status::Hibernated) {
            return Err(EngineError::Conflict(format!(
                "cannot pull: the session is {}",
                rec.status
            )));
        }
        let target = branch.unwrap_or_else(|| session_branch(&rec));
        let repo = PathBuf::from(&rec.repository);
        git(&repo, &["check-ref-format", "--branch", &target])
            .await
            .map_err(|_| EngineError::BadRequest(format!("`{target}` is not a branch name")))?;
        let instance = Engine::instance_of(&rec)
            .ok_or_else(|| EngineError::Conflict("the session has no sandbox".into()))?;
        let client = self.backends().get(&rec.backend)?;
        if !client.capabilities().contains(Capabilities::EXEC) {
            return Err(EngineError::Conflict(format!(
                "backend `{}` cannot run commands, so it cannot make a bundle",
                client.name()
            )));
        }
        let workspace = self
            .store()
            .agent(id)
            .await?
            .workspace
            .unwrap_or_else(|| self.workspace_for(&rec.backend));
        self.progress(
            id,
            "pull",
            format!("bundling the sandbox's commits for {target}"),
        )
        .await;
        let mut argv: Vec<String> = ["sh", "-c", SCRIPT, "sh"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        argv.push(workspace);
        argv.push(rec.branch.clone().unwrap_or_default());
        let mut have = haves(&repo).await;
        if let Ok(Some(s)) = self.store().sync_record(id).await
            && let Some(h) = s.agreed_head
            && !have.contains(&h)
        {
            have.push(h);
        }
        argv.extend(have);
        let ran = super::sandbox_exec::run(
            &client,
            &instance,
            argv,
            &[],
            PULL_TIMEOUT,
            "making the bundle",
        )
        .await?;
        if ran.code != 0 {
            return Err(EngineError::Conflict(format!(
                "git in the sandbox failed (exit {}): {}",
                ran.code,
                ran.stderr_brief()
            )));
        }
        let nl =
            ran.stdout.iter().position(|b| *b == b'\n').ok_or_else(|| {
                EngineError::Internal("the bundle script printed no header".into())
            })?;
        let header = String::from_utf8_lossy(&ran.stdout[..nl]).into_owned();
        let mut parts = header.split_whitespace();
        let (Some(head), Some(n), Some(sref)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(EngineError::Internal(format!(
                "the bundle script printed `{header}`"
            )));
        };
        if !clauderon_sync::history::is_oid(head) {
            return Err(EngineError::Internal(format!(
                "the bundle script printed `{header}`"
            )));
        }
        let commits: u64 = n.parse().unwrap_or(0);
        let bundle = &ran.stdout[nl + 1..];
        let keep = format!("refs/clauderon/sprite/{}", rec.name);
        if !bundle.is_empty() {
            self.progress(
                id,
                "pull",
                format!("fetching {commits} commit(s) ({} bytes)", bundle.len()),
            )
            .await;
            let (r, b, k, s) = (repo.clone(), bundle.to_vec(), keep.clone(), sref.to_owned());
            tokio::task::spawn_blocking(move || clauderon_sync::history::receive(&r, &b, &s, &k))
                .await
                .map_err(|e| EngineError::Internal(e.to_string()))?
                .map_err(EngineError::Internal)?;
        } else {
            // Nothing new: the commit is here already; keep it under our ref all the same.
            git(&repo, &["update-ref", &keep, head])
                .await
                .map_err(|e| EngineError::Conflict(format!("the sandbox's {head}: {e}")))?;
        }
        let updated = self
            .move_branch(rec.name.as_str(), &repo, &target, head)
            .await?;
        self.progress(id, "pull", format!("{target} is at {}", &head[..12]))
            .await;
        Ok(Pulled {
            branch: target,
            commit: head.to_owned(),
            commits,
            bytes: bundle.len() as u64,
            updated,
        })
    }

    /// Points `branch` at `head` when that is a fast-forward; `false` when it was there.
    async fn move_branch(
        &self,
        name: &str,
        repo: &Path,
        branch: &str,
        head: &str,
    ) -> Result<bool, EngineError> {
        let full = format!("refs/heads/{branch}");
        let cur = git(repo, &["rev-parse", "-q", "--verify", &full])
            .await
            .ok();
        if cur.as_deref() == Some(head) {
            return Ok(false);
        }
        if let Some(c) = &cur
            && git(repo, &["merge-base", "--is-ancestor", c, head])
                .await
                .is_err()
        {
            return Err(EngineError::Conflict(format!(
                "{branch} has commits the sandbox's branch lacks, so it cannot fast-forward to \
                 {}; the sandbox's commits are in refs/clauderon/sprite/{name}; pull into another \
                 branch with --branch",
                &head[..12]
            )));
        }
        match checked_out_in(repo, branch).await {
            Some(wt) if wt == self.sync_worktree_path(name) => {
                // The synced worktree: its files are the sandbox's already, so only HEAD and
                // the index move (history sync's own step).
                let (from, to, keep) = (
                    cur.clone().unwrap_or_default(),
                    head.to_owned(),
                    format!("refs/clauderon/sprite/{name}"),
                );
                tokio::task::spawn_blocking(move || {
                    clauderon_sync::history::advance(&wt, &from, &to, &[], &keep)
                })
                .await
                .map_err(|e| EngineError::Internal(e.to_string()))?
                .map_err(|e| EngineError::Conflict(format!("moving {branch}: {e}")))?;
            }
            Some(wt) => {
                return Err(EngineError::Conflict(format!(
                    "{branch} is checked out in {}; moving it there would leave its files behind; \
                     pull into another branch with --branch",
                    wt.display()
                )));
            }
            None => {
                let mut args = vec!["update-ref", "-m", "clauderon pull", &full, head];
                if let Some(c) = &cur {
                    args.push(c);
                }
                git(repo, &args)
                    .await
                    .map_err(|e| EngineError::Conflict(format!("moving {branch}: {e}")))?;
            }
        }
        Ok(true)
    }
}
