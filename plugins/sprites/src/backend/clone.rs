//! `clone_repo`: the repository is cloned inside the sprite on a new session branch, from the
//! origin when the sprite can reach it and it has the base commit, otherwise from a git bundle of
//! the local history made on the host and uploaded in verified parts ([`super::upload`]).

use std::path::{Path, PathBuf};

use clauderon_plugin_sdk::ops;
use clauderon_plugin_sdk::{CallContext, ErrorKind, PluginError};

use super::errors::ctx as err_ctx;
use super::state::{CloneRecord, SpriteState};
use super::upload;
use super::{DEFAULT_WORKSPACE, SpritesBackend};
use crate::client::{Output, SpriteHandle};

/// Clones from the origin inside the sprite; prints the checked-out commit last.
const REMOTE_SCRIPT: &str = r#"set -e
url=$1 dest=$2 branch=$3 base=$4 depth=$5 bbranch=$6
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
set --
if [ -n "$depth" ]; then set -- "$@" --depth "$depth"; fi
if [ -n "$bbranch" ]; then set -- "$@" --branch "$bbranch"; fi
src=$url
# git ignores --depth for a plain local path; the file:// form honours it.
case "$url" in /*) if [ -n "$depth" ]; then src="file://$url"; fi ;; esac
git clone -q --no-checkout "$@" "$src" "$dest"
cd "$dest"
if [ "$src" != "$url" ]; then git remote set-url origin "$url"; fi
if [ -z "$base" ]; then base=$(git rev-parse HEAD); fi
if ! git cat-file -e "$base^{commit}" 2>/dev/null; then
  echo "the origin does not have commit $base" >&2; exit 3
fi
if [ -n "$branch" ]; then git checkout -q -b "$branch" "$base"; else git checkout -q --detach "$base"; fi
git reset -q --hard
git rev-parse HEAD
"#;

/// Clones from an uploaded bundle; prints the commit last.
const BUNDLE_SCRIPT: &str = r#"set -e
b=$1 dest=$2 branch=$3 base=$4 url=$5
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
git clone -q --no-checkout "$b" "$dest"
rm -f "$b"
cd "$dest"
if [ -z "$base" ]; then base=$(git rev-parse HEAD); fi
if ! git cat-file -e "$base^{commit}" 2>/dev/null; then
  echo "the bundle does not contain commit $base" >&2; exit 3
fi
if [ -n "$branch" ]; then git checkout -q -b "$branch" "$base"; else git checkout -q --detach "$base"; fi
git reset -q --hard
if [ -n "$url" ]; then git remote set-url origin "$url"; else git remote remove origin; fi
git rev-parse HEAD
"#;

/// Runs `sh -c script` in the sprite with positional `args`.
pub(crate) async fn run_sh(
    sprite: &SpriteHandle,
    script: &str,
    args: &[&str],
) -> Result<Output, PluginError> {
    let mut argv = vec!["-c", script, "sh"];
    argv.extend_from_slice(args);
    sprite
        .command("sh")
        .args(argv)
        .output()
        .await
        .map_err(err_ctx("running a command in the sprite"))
}

fn last_line(bytes: &[u8]) -> Option<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
}

fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no error output")
        .to_owned()
}

/// `clone_repo`.
pub async fn clone_repo(
    b: &SpritesBackend,
    ctx: &CallContext,
    req: ops::CloneRepoRequest,
) -> Result<ops::CloneRepoResponse, PluginError> {
    let mut state = SpriteState::of(&req.instance)?;
    let sprite = b.sprite(&state).await?;
    let dest = if req.dest.trim().is_empty() {
        DEFAULT_WORKSPACE.to_owned()
    } else {
        req.dest.clone()
    };
    if !dest.starts_with('/') {
        return Err(PluginError::invalid_request(format!(
            "clone destination `{dest}` must be an absolute path inside the sprite"
        )));
    }
    let branch = req.branch.clone().unwrap_or_default();
    let base = req.base_commit.clone().unwrap_or_default();
    // The request's depth, else the configured `clone_depth`, else the full history.
    let depth_n = req.depth.or(b.settings().clone_depth);
    let depth = depth_n.map(|d| d.to_string()).unwrap_or_default();
    let base_branch = req.base_branch.clone().unwrap_or_default();

    let mut reason: Option<String> = None;
    if req.url.trim().is_empty() {
        reason = Some("the repository has no origin".into());
    } else if let (Some(local), false) = (&req.local_path, base.is_empty())
        && !origin_has(Path::new(local), &base).await
    {
        reason = Some(format!(
            "the origin lacks local commits (no remote branch contains {})",
            short(&base)
        ));
    }

    if reason.is_none() {
        ctx.progress(
            "clone",
            &format!("cloning {} inside the sprite", req.url),
            Some(0.1),
        );
        let out = run_sh(
            &sprite,
            REMOTE_SCRIPT,
            &[&req.url, &dest, &branch, &base, &depth, &base_branch],
        )
        .await?;
        if out.success() {
            let commit = last_line(&out.stdout);
            ctx.progress("clone", "cloned from the origin", Some(1.0));
            state.clone = Some(CloneRecord {
                method: "remote".into(),
                dest,
                branch: req.branch.clone(),
                commit: commit.clone(),
                reason: None,
            });
            return Ok(ops::CloneRepoResponse {
                instance: state.instance(),
                commit,
            });
        }
        reason = Some(format!(
            "cloning from the origin inside the sprite failed: {}",
            first_line(&out.stderr)
        ));
    }
    let reason = reason.unwrap_or_default();
    let Some(local) = req.local_path.clone() else {
        return Err(PluginError::new(
            ErrorKind::Unavailable,
            format!(
                "cannot clone the repository: {reason}, and no local path was given to ship a bundle from"
            ),
        ));
    };
    ctx.progress(
        "clone",
        &format!("shipping a git bundle from the host ({reason})"),
        Some(0.2),
    );
    if depth_n.is_some() {
        ctx.progress(
            "clone",
            "a bundle carries the full local history; the clone depth applies to origin clones only",
            None,
        );
    }
    let bundle = make_bundle(Path::new(&local), &state.sprite, req.base_branch.as_deref()).await?;
    let bytes = tokio::fs::read(&bundle).await;
    let _ = tokio::fs::remove_file(&bundle).await;
    let bytes = bytes.map_err(|e| {
        PluginError::internal(format!("cannot read the bundle made from {local}: {e}"))
    })?;
    let remote = "/home/sprite/.clauderon/repo.bundle";
    let bytes = bytes::Bytes::from(bytes);
    ctx.progress(
        "clone",
        &format!("uploading the bundle ({} bytes)", bytes.len()),
        Some(0.2),
    );
    let report = |msg: &str, f: f64| ctx.progress("clone", msg, Some(0.2 + 0.6 * f));
    let done = upload::upload(&sprite, remote, &bytes, 0o600, &report)
        .await
        .map_err(|mut e| {
            e.message = format!("uploading the git bundle into the sprite: {}", e.message);
            e
        })?;
    ctx.progress(
        "clone",
        &format!(
            "uploaded the bundle ({} part(s) through {})",
            done.parts, done.transport
        ),
        Some(0.8),
    );
    ctx.progress("clone", "cloning the bundle inside the sprite", Some(0.9));
    let out = run_sh(
        &sprite,
        BUNDLE_SCRIPT,
        &[remote, &dest, &branch, &base, req.url.trim()],
    )
    .await?;
    if !out.success() {
        return Err(PluginError::internal(format!(
            "cloning the bundle inside the sprite failed (exit {}): {}",
            out.exit_code,
            first_line(&out.stderr)
        )));
    }
    let commit = last_line(&out.stdout);
    ctx.progress("clone", "cloned from the bundle", Some(1.0));
    state.clone = Some(CloneRecord {
        method: "bundle".into(),
        dest,
        branch: req.branch.clone(),
        commit: commit.clone(),
        reason: Some(reason),
    });
    Ok(ops::CloneRepoResponse {
        instance: state.instance(),
        commit,
    })
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// Whether a remote-tracking branch of the local repository contains `commit` (i.e. the origin
/// had it when last fetched). An error counts as "no".
async fn origin_has(local: &Path, commit: &str) -> bool {
    let out = tokio::process::Command::new("git")
        .arg("-C")
        .arg(local)
        .args(["branch", "-r", "--contains", commit])
        .output()
        .await;
    matches!(out, Ok(o) if o.status.success() && !o.stdout.iter().all(u8::is_ascii_whitespace))
}

/// `git bundle create` of HEAD (and the base branch) of `local` into a temporary file.
async fn make_bundle(
    local: &Path,
    sprite: &str,
    base_branch: Option<&str>,
) -> Result<PathBuf, PluginError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let path = std::env::temp_dir().join(format!(
        "clauderon-{sprite}-{}-{nanos}.bundle",
        std::process::id()
    ));
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("-C")
        .arg(local)
        .args(["bundle", "create", "-q"])
        .arg(&path)
        .arg("HEAD");
    if let Some(b) = base_branch.filter(|b| !b.is_empty()) {
        cmd.arg(format!("refs/heads/{b}"));
    }
    let out = cmd.output().await.map_err(|e| {
        PluginError::internal(format!("cannot run git on the host to make a bundle: {e}"))
    })?;
    if !out.status.success() {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(PluginError::invalid_request(format!(
            "`git bundle create` in {} failed: {}",
            local.display(),
            first_line(&out.stderr)
        )));
    }
    Ok(path)
}
