//! History sync (DESIGN §15, "History"): after the files, the commits. The sandbox's new
//! commits come into the local repository as an incremental bundle and the local branch
//! follows with a mixed reset (HEAD and index only), so local `git status` shows exactly what
//! is still uncommitted; local commits move the sandbox's branch the same way, only while its
//! HEAD is still where this side saw it (compare-and-swap). When both sides committed, history
//! sync pauses as "history diverged" (files keep syncing) until the user takes one side; it
//! never merges. No commit is lost: the sandbox's are kept locally under a ref, and each
//! side's reflog keeps what its branch pointed at.

use std::future::Future;
use std::path::{Path, PathBuf};

use clauderon_sync::ApplyError;
use clauderon_sync::history::{self as git, Bundled};

use super::cycle::EndpointError;
use super::plan::Side;

/// The sandbox's side of history sync (the wire's `Bundle` and `Advance`).
pub trait HistoryRemote: Send {
    /// A bundle of the sandbox's checked-out history without the commits of `have` it holds.
    fn bundle(
        &mut self,
        have: Vec<String>,
    ) -> impl Future<Output = Result<Result<Bundled, String>, EndpointError>> + Send;
    /// Moves the sandbox's branch from `from` to `to` (objects in `bundle`) if it is still at
    /// `from`, with a mixed reset.
    fn advance(
        &mut self,
        from: String,
        to: String,
        bundle: Vec<u8>,
    ) -> impl Future<Output = Result<Result<(), ApplyError>, EndpointError>> + Send;
}

/// What a step knows: the local worktree, its branch, the heads the cycle's scans saw.
#[derive(Debug, Clone)]
pub struct HistoryInput {
    /// The local worktree.
    pub worktree: PathBuf,
    /// The branch the worktree must be on for history to sync.
    pub branch: String,
    /// The local ref the sandbox's head is kept under (`refs/clauderon/sprite/NAME`).
    pub keep_ref: String,
    /// The commit both sides last agreed on.
    pub agreed: Option<String>,
    /// The local checked-out commit.
    pub local: Option<String>,
    /// The sandbox's checked-out commit.
    pub remote: Option<String>,
    /// The user's decision for diverged history: the side whose branch the other follows.
    pub take: Option<Side>,
}

/// Where history stands after a step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HistoryState {
    /// Both sides at the same commit (or nothing to compare yet).
    #[default]
    InStep,
    /// Both sides committed: paused until the user takes one side.
    Diverged,
    /// Not synced now (the worktree is on another branch, a side has no commit, git failed).
    Off,
}

impl HistoryState {
    /// The name the API shows.
    pub fn name(&self) -> &'static str {
        match self {
            HistoryState::InStep => "in_step",
            HistoryState::Diverged => "diverged",
            HistoryState::Off => "off",
        }
    }

    /// The state of a stored name (unknown names read as in step).
    pub fn from_name(s: &str) -> HistoryState {
        match s {
            "diverged" => HistoryState::Diverged,
            "off" => HistoryState::Off,
            _ => HistoryState::InStep,
        }
    }
}

/// What a step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryReport {
    /// Where history stands.
    pub state: HistoryState,
    /// Why, when it is not in step.
    pub reason: Option<String>,
    /// The commit both sides agree on now, when they do.
    pub agreed: Option<String>,
    /// The local branch followed the sandbox's.
    pub to_local: bool,
    /// The sandbox's branch followed the local one.
    pub to_remote: bool,
    /// A side moved while the step ran: the next cycle tries again.
    pub raced: bool,
}

impl HistoryReport {
    fn off(reason: String) -> HistoryReport {
        HistoryReport {
            state: HistoryState::Off,
            reason: Some(reason),
            ..HistoryReport::default()
        }
    }
}

/// Runs blocking git work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("git stopped: {e}"))
}

fn short(c: &str) -> &str {
    &c[..c.len().min(12)]
}

/// Whether the worktree has `branch` checked out.
fn on_branch(worktree: &Path, branch: &str) -> bool {
    std::process::Command::new("git")
        .arg("-C")
        .arg(worktree)
        .args(["symbolic-ref", "-q", "HEAD"])
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == format!("refs/heads/{branch}"))
}

/// Which way a step moves a branch.
enum Move {
    ToLocal,
    ToRemote,
    Diverged,
}

/// One step of history sync.
pub async fn step<R: HistoryRemote>(
    input: HistoryInput,
    remote: &mut R,
) -> Result<HistoryReport, EndpointError> {
    let (Some(l), Some(r)) = (input.local.clone(), input.remote.clone()) else {
        return Ok(HistoryReport {
            agreed: input.agreed.clone(),
            ..HistoryReport::default()
        });
    };
    let wt = input.worktree.clone();
    let branch = input.branch.clone();
    let on = blocking(move || on_branch(&wt, &branch))
        .await
        .unwrap_or(false);
    if !on {
        return Ok(HistoryReport::off(format!(
            "the local worktree is not on {}; commits are not synced until it is",
            input.branch
        )));
    }
    if l == r {
        return Ok(HistoryReport {
            agreed: Some(l),
            ..HistoryReport::default()
        });
    }
    // The sandbox's commits, when this side lacks them.
    let wt = input.worktree.clone();
    let rr = r.clone();
    let have_r = blocking(move || !git::present(&wt, &[rr]).is_empty())
        .await
        .unwrap_or(false);
    if !have_r {
        let have: Vec<String> = [Some(l.clone()), input.agreed.clone()]
            .into_iter()
            .flatten()
            .collect();
        let got = match remote.bundle(have).await? {
            Ok(b) => b,
            Err(e) => return Ok(HistoryReport::off(format!("the sandbox's git: {e}"))),
        };
        if got.head.as_deref() != Some(r.as_str()) {
            return Ok(HistoryReport {
                raced: true,
                agreed: input.agreed.clone(),
                ..HistoryReport::default()
            });
        }
        let (wt, keep) = (input.worktree.clone(), input.keep_ref.clone());
        let stored = blocking(move || git::receive(&wt, &got.bytes, "HEAD", &keep))
            .await
            .and_then(|r| r);
        if let Err(e) = stored {
            return Ok(HistoryReport::off(format!(
                "cannot store the sandbox's commits locally: {e}"
            )));
        }
    } else {
        // Kept under the ref too, so a diverged sandbox's commits are easy to find.
        let (wt, keep, rr) = (input.worktree.clone(), input.keep_ref.clone(), r.clone());
        let _ = blocking(move || {
            std::process::Command::new("git")
                .arg("-C")
                .arg(&wt)
                .args(["update-ref", &keep, &rr])
                .status()
        })
        .await;
    }
    let (wt, a, b) = (input.worktree.clone(), l.clone(), r.clone());
    let (l_in_r, r_in_l) =
        blocking(move || (git::is_ancestor(&wt, &a, &b), git::is_ancestor(&wt, &b, &a)))
            .await
            .unwrap_or((false, false));
    let agreed = input.agreed.as_deref();
    let way = match input.take {
        Some(Side::Remote) => Move::ToLocal,
        Some(Side::Local) => Move::ToRemote,
        None if l_in_r => Move::ToLocal,
        None if r_in_l => Move::ToRemote,
        // Only one side moved (it rewrote its history): the other has nothing of its own.
        None if agreed == Some(l.as_str()) => Move::ToLocal,
        None if agreed == Some(r.as_str()) => Move::ToRemote,
        None => Move::Diverged,
    };
    match way {
        Move::ToLocal => {
            let (wt, keep, from, to) = (
                input.worktree.clone(),
                input.keep_ref.clone(),
                l.clone(),
                r.clone(),
            );
            let done = blocking(move || git::advance(&wt, &from, &to, &[], &keep))
                .await
                .map_err(ApplyError::Io)
                .and_then(|r| r);
            Ok(moved(done, r, input.agreed, Side::Local))
        }
        Move::ToRemote => {
            let (wt, have) = (
                input.worktree.clone(),
                [Some(r.clone()), input.agreed.clone()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>(),
            );
            let bundle = match blocking(move || git::bundle(&wt, &have))
                .await
                .and_then(|r| r)
            {
                Ok(b) if b.head.as_deref() == Some(l.as_str()) => b.bytes,
                Ok(_) => {
                    return Ok(HistoryReport {
                        raced: true,
                        agreed: input.agreed,
                        ..HistoryReport::default()
                    });
                }
                Err(e) => {
                    return Ok(HistoryReport::off(format!(
                        "cannot bundle the local commits: {e}"
                    )));
                }
            };
            let done = remote.advance(r, l.clone(), bundle).await?;
            Ok(moved(done, l, input.agreed, Side::Remote))
        }
        Move::Diverged => Ok(HistoryReport {
            state: HistoryState::Diverged,
            reason: Some(format!(
                "history diverged: the local branch {} is at {} and the sprite's at {}, each with \
                 commits the other lacks (the sprite's are in the local repository as {}); files \
                 keep syncing. Take one side with `clauderon sync NAME history --take \
                 local|sprite` (never merged automatically)",
                input.branch,
                short(&l),
                short(&r),
                input.keep_ref
            )),
            agreed: input.agreed,
            ..HistoryReport::default()
        }),
    }
}

/// The report of a branch move on `side` to `to`.
fn moved(
    done: Result<(), ApplyError>,
    to: String,
    agreed: Option<String>,
    side: Side,
) -> HistoryReport {
    match done {
        Ok(()) => HistoryReport {
            agreed: Some(to),
            to_local: side == Side::Local,
            to_remote: side == Side::Remote,
            ..HistoryReport::default()
        },
        Err(ApplyError::Changed(_)) => HistoryReport {
            raced: true,
            agreed,
            ..HistoryReport::default()
        },
        Err(e) => HistoryReport {
            agreed,
            ..HistoryReport::off(format!(
                "cannot move the {} branch: {e}",
                match side {
                    Side::Local => "local",
                    Side::Remote => "sprite's",
                }
            ))
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The sandbox side as a second real repository served by the same library calls the
    /// helper makes.
    struct Repo(PathBuf);

    impl HistoryRemote for Repo {
        async fn bundle(
            &mut self,
            have: Vec<String>,
        ) -> Result<Result<Bundled, String>, EndpointError> {
            Ok(git::bundle(&self.0, &have))
        }
        async fn advance(
            &mut self,
            from: String,
            to: String,
            bundle: Vec<u8>,
        ) -> Result<Result<(), ApplyError>, EndpointError> {
            Ok(git::advance(
                &self.0,
                &from,
                &to,
                &bundle,
                "refs/clauderon/host",
            ))
        }
    }

    fn g(dir: &Path, args: &[&str]) -> String {
        let o = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }

    fn commit(dir: &Path, file: &str, text: &str) -> String {
        std::fs::write(dir.join(file), text).unwrap();
        g(dir, &["add", file]);
        g(dir, &["commit", "-qm", file]);
        g(dir, &["rev-parse", "HEAD"])
    }

    fn input(local: &Path, remote: &Path, agreed: &str, take: Option<Side>) -> HistoryInput {
        HistoryInput {
            worktree: local.to_path_buf(),
            branch: "s".into(),
            keep_ref: "refs/clauderon/sprite/s".into(),
            agreed: Some(agreed.to_owned()),
            local: git::head(local),
            remote: git::head(remote),
            take,
        }
    }

    #[tokio::test]
    async fn follows_either_side_and_pauses_when_both_committed() {
        let local = tempfile::tempdir().unwrap();
        g(local.path(), &["init", "-q", "-b", "s"]);
        let base = commit(local.path(), "a", "1\n");
        let sprite = tempfile::tempdir().unwrap();
        g(
            sprite.path(),
            &[
                "clone",
                "-q",
                "-b",
                "s",
                local.path().to_str().unwrap(),
                ".",
            ],
        );
        let mut remote = Repo(sprite.path().to_path_buf());

        // The sprite commits: the local branch follows, its file stays as it was (synced
        // separately), so the index shows what is still uncommitted.
        let c1 = commit(sprite.path(), "b", "agent\n");
        let r = step(input(local.path(), sprite.path(), &base, None), &mut remote)
            .await
            .unwrap();
        assert!(
            r.to_local && r.agreed.as_deref() == Some(c1.as_str()),
            "{r:?}"
        );
        assert_eq!(git::head(local.path()).unwrap(), c1);
        assert_eq!(g(local.path(), &["status", "--porcelain"]), "D b");

        // A local commit fast-forwards the sprite.
        std::fs::write(local.path().join("b"), "agent\n").unwrap();
        let c2 = commit(local.path(), "c", "mine\n");
        let r = step(input(local.path(), sprite.path(), &c1, None), &mut remote)
            .await
            .unwrap();
        assert!(r.to_remote, "{r:?}");
        assert_eq!(git::head(sprite.path()).unwrap(), c2);

        // Both commit: diverged, nothing moves; taking the sprite's side moves the local one.
        let mine = commit(local.path(), "d", "mine\n");
        let theirs = commit(sprite.path(), "e", "agent\n");
        let r = step(input(local.path(), sprite.path(), &c2, None), &mut remote)
            .await
            .unwrap();
        assert_eq!(r.state, HistoryState::Diverged, "{r:?}");
        assert!(r.reason.unwrap().contains("history diverged"));
        assert_eq!(git::head(local.path()).unwrap(), mine);
        assert_eq!(git::head(sprite.path()).unwrap(), theirs);
        assert_eq!(
            g(local.path(), &["rev-parse", "refs/clauderon/sprite/s"]),
            theirs
        );
        let r = step(
            input(local.path(), sprite.path(), &c2, Some(Side::Remote)),
            &mut remote,
        )
        .await
        .unwrap();
        assert!(r.to_local && r.state == HistoryState::InStep, "{r:?}");
        assert_eq!(git::head(local.path()).unwrap(), theirs);

        // Off another branch, nothing moves.
        g(local.path(), &["checkout", "-q", "-b", "other"]);
        commit(local.path(), "f", "x\n");
        let r = step(
            input(local.path(), sprite.path(), &theirs, None),
            &mut remote,
        )
        .await
        .unwrap();
        assert_eq!(r.state, HistoryState::Off, "{r:?}");
        assert_eq!(git::head(sprite.path()).unwrap(), theirs);
    }
}
