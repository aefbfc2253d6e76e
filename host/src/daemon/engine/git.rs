//! What the create flow learns from the repository on the host with local `git`: the origin
//! URL, HEAD's commit and the branch HEAD is on.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// The repository facts `clone_repo` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoInfo {
    /// `git remote get-url origin`, empty when there is no origin.
    pub origin_url: String,
    /// HEAD's full commit hash.
    pub head: String,
    /// The branch HEAD is on, when it is on one.
    pub branch: Option<String>,
}

const GIT_TIMEOUT: Duration = Duration::from_secs(20);

async fn git(repo: &Path, args: &[&str]) -> Result<Option<String>, String> {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(repo)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(GIT_TIMEOUT, cmd.output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(format!("cannot run git: {e}; install git")),
        Err(_) => return Err(format!("`git {}` took longer than 20 s", args.join(" "))),
    };
    if !out.status.success() {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&out.stdout).trim().to_owned()))
}

/// Reads the facts from `repo`; an error says what is wrong with it.
pub async fn inspect(repo: &Path) -> Result<RepoInfo, String> {
    let head = git(repo, &["rev-parse", "--verify", "-q", "HEAD^{commit}"])
        .await?
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            format!(
                "{} is not a git repository with at least one commit; `git init` and commit \
                 first, or give another repository",
                repo.display()
            )
        })?;
    let (origin_url, branch) = tokio::join!(
        git(repo, &["remote", "get-url", "origin"]),
        git(repo, &["symbolic-ref", "--short", "-q", "HEAD"]),
    );
    let origin_url = origin_url?.unwrap_or_default();
    let branch = branch?.filter(|b| !b.is_empty());
    Ok(RepoInfo {
        origin_url,
        head,
        branch,
    })
}

/// The repository's root commit (the oldest when there are several), `None` when git cannot
/// say: what identifies a project without an origin.
pub async fn root_commit(repo: &Path) -> Option<String> {
    let out = git(repo, &["rev-list", "--max-parents=0", "HEAD"])
        .await
        .ok()??;
    out.lines()
        .last()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dir: &Path, args: &[&str]) {
        let ok = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(ok.status.success(), "{ok:?}");
    }

    #[tokio::test]
    async fn reads_head_branch_and_origin() {
        let dir = tempfile::tempdir().unwrap();
        let e = inspect(dir.path()).await.unwrap_err();
        assert!(e.contains("not a git repository"), "{e}");
        run(dir.path(), &["init", "-q", "-b", "main"]);
        run(dir.path(), &["commit", "-q", "--allow-empty", "-m", "one"]);
        let info = inspect(dir.path()).await.unwrap();
        assert_eq!(info.head.len(), 40);
        assert_eq!(info.branch.as_deref(), Some("main"));
        assert_eq!(info.origin_url, "");
        run(
            dir.path(),
            &["remote", "add", "origin", "https://example.com/r.git"],
        );
        assert_eq!(
            inspect(dir.path()).await.unwrap().origin_url,
            "https://example.com/r.git"
        );
    }
}
