//! A side's git history, as the sync carries it (DESIGN §15, "History"): commits travel as
//! incremental `git bundle`s, never as files (each side's `.git` is its own), and a side's
//! branch moves only by compare-and-swap (`git update-ref HEAD new old`) followed by a mixed
//! reset (the index is set to the new commit's tree; the work tree is not touched), so `git
//! status` on that side shows exactly what is still uncommitted. Both the sandbox's helper and
//! the host's worktree use these functions.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::replica::ApplyError;

/// A bundle of a side's checked-out history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bundled {
    /// The commit checked out (`None`: not a git work tree, or no commit yet).
    pub head: Option<String>,
    /// A `git bundle` of `HEAD` without what the asker has; empty when the asker has it all.
    pub bytes: Vec<u8>,
}

/// Git in `root`, with the environment of an outer git (hooks, tests) removed.
fn git(root: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C")
        .arg(root)
        .args(["-c", "safe.directory=*"])
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_OBJECT_DIRECTORY")
        .stdin(Stdio::null());
    c
}

fn run(c: &mut Command, what: &str) -> Result<Output, String> {
    c.output()
        .map_err(|e| format!("{what}: cannot run git: {e}"))
}

fn ok_stdout(o: Output, what: &str) -> Result<String, String> {
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

/// Whether `s` is a full object name (a commit id as `rev-parse` prints it).
pub fn is_oid(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The commit checked out at `root`.
pub fn head(root: &Path) -> Option<String> {
    let o = run(
        git(root).args(["rev-parse", "-q", "--verify", "HEAD"]),
        "HEAD",
    )
    .ok()?;
    let s = ok_stdout(o, "HEAD").ok()?;
    is_oid(&s).then_some(s)
}

/// The commits of `oids` that `root`'s repository holds.
pub fn present(root: &Path, oids: &[String]) -> Vec<String> {
    let wanted: Vec<&String> = oids.iter().filter(|o| is_oid(o)).collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let child = git(root)
        .args(["cat-file", "--batch-check=%(objectname) %(objecttype)"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return Vec::new();
    };
    if let Some(mut stdin) = child.stdin.take() {
        for o in &wanted {
            let _ = writeln!(stdin, "{o}");
        }
    }
    let Ok(out) = child.wait_with_output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(" commit"))
        .map(str::to_owned)
        .collect()
}

/// Whether `a` is an ancestor of (or equal to) `b` in `root`'s repository.
pub fn is_ancestor(root: &Path, a: &str, b: &str) -> bool {
    git(root)
        .args(["merge-base", "--is-ancestor", a, b])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The git directory of `root` (for a worktree, its own one inside the main repository).
pub fn git_dir(root: &Path) -> Result<PathBuf, String> {
    let o = run(
        git(root).args(["rev-parse", "--absolute-git-dir"]),
        "git dir",
    )?;
    ok_stdout(o, "git dir").map(PathBuf::from)
}

/// A scratch file in `root`'s git directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(root: &Path, what: &str) -> Result<Scratch, String> {
        let dir = git_dir(root)?;
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Scratch(dir.join(format!(
            "clauderon-{what}-{}-{n}.bundle",
            std::process::id()
        ))))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A bundle of `root`'s `HEAD` without the commits of `have` that the repository holds (so
/// the asker may name commits this side never saw).
pub fn bundle(root: &Path, have: &[String]) -> Result<Bundled, String> {
    let Some(head) = head(root) else {
        return Ok(Bundled::default());
    };
    let basis = present(root, have);
    let mut count = git(root);
    count.args(["rev-list", "--count", "HEAD"]);
    for b in &basis {
        count.arg(format!("^{b}"));
    }
    let n = ok_stdout(run(&mut count, "counting commits")?, "counting commits")?;
    if n == "0" {
        return Ok(Bundled {
            head: Some(head),
            bytes: Vec::new(),
        });
    }
    let file = Scratch::new(root, "out")?;
    let mut c = git(root);
    c.args(["bundle", "create", "-q"]).arg(&file.0).arg("HEAD");
    for b in &basis {
        c.arg(format!("^{b}"));
    }
    ok_stdout(run(&mut c, "git bundle create")?, "git bundle create")?;
    let bytes = std::fs::read(&file.0).map_err(|e| format!("reading the bundle: {e}"))?;
    Ok(Bundled {
        head: Some(head),
        bytes,
    })
}

/// Stores a bundle's objects in `root`'s repository and points `keep` (a full ref name, e.g.
/// `refs/clauderon/sprite/NAME`) at its ref `src` (as the bundle names it, e.g. `HEAD`), so
/// they are not collected as garbage. An empty bundle stores nothing.
pub fn receive(root: &Path, bytes: &[u8], src: &str, keep: &str) -> Result<(), String> {
    if bytes.is_empty() {
        return Ok(());
    }
    let file = Scratch::new(root, "in")?;
    std::fs::write(&file.0, bytes).map_err(|e| format!("writing the bundle: {e}"))?;
    let mut c = git(root);
    c.args(["fetch", "-q", "--no-tags", "--no-write-fetch-head"])
        .arg(&file.0)
        .arg(format!("+{src}:{keep}"));
    ok_stdout(run(&mut c, "git fetch (bundle)")?, "git fetch (bundle)").map(|_| ())
}

/// Moves `root`'s checked-out branch from `from` to `to` (objects from `bundle`, when not
/// empty) if it still points at `from`, then resets the index to `to` (a mixed reset: the work
/// tree is untouched). `keep` names the ref the bundle's head is stored under.
pub fn advance(
    root: &Path,
    from: &str,
    to: &str,
    bundle: &[u8],
    keep: &str,
) -> Result<(), ApplyError> {
    if !is_oid(from) || !is_oid(to) {
        return Err(ApplyError::Refused(format!(
            "not commit ids: {from:?} -> {to:?}"
        )));
    }
    receive(root, bundle, "HEAD", keep).map_err(ApplyError::Io)?;
    if present(root, &[to.to_owned()]).is_empty() {
        return Err(ApplyError::Io(format!(
            "commit {to} is not in the repository"
        )));
    }
    let o = run(
        git(root).args([
            "update-ref",
            "-m",
            "clauderon sync: follow the other side",
            "HEAD",
            to,
            from,
        ]),
        "update-ref",
    )
    .map_err(ApplyError::Io)?;
    if !o.status.success() {
        let now = head(root).unwrap_or_default();
        if now != from {
            return Err(ApplyError::Changed(format!(
                "HEAD is {now}, not {from} any more"
            )));
        }
        return Err(ApplyError::Io(format!(
            "update-ref: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    // The mixed reset: the index takes the new commit's tree (files stay as they are), then
    // its stat data is refreshed so the next `git status` does not rehash every file.
    let o = run(git(root).args(["read-tree", to]), "read-tree").map_err(ApplyError::Io)?;
    ok_stdout(o, "read-tree").map_err(ApplyError::Io)?;
    let _ = git(root)
        .args(["update-index", "-q", "--refresh"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn g(dir: &Path, args: &[&str]) -> String {
        let o = git(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }

    fn repo() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        g(d.path(), &["init", "-q", "-b", "main"]);
        std::fs::write(d.path().join("a"), "1\n").unwrap();
        g(d.path(), &["add", "a"]);
        g(d.path(), &["commit", "-qm", "one"]);
        d
    }

    #[test]
    fn a_bundle_carries_new_commits_and_advance_is_a_mixed_reset_by_cas() {
        let a = repo();
        let b = tempfile::tempdir().unwrap();
        g(b.path(), &["clone", "-q", a.path().to_str().unwrap(), "."]);
        let base = head(a.path()).unwrap();
        // Nothing new: an empty bundle.
        let none = bundle(a.path(), std::slice::from_ref(&base)).unwrap();
        assert_eq!(none.head.as_deref(), Some(base.as_str()));
        assert!(none.bytes.is_empty());
        // A commit on A travels to B; B follows with its files untouched.
        std::fs::write(a.path().join("a"), "2\n").unwrap();
        g(a.path(), &["commit", "-qam", "two"]);
        let new = head(a.path()).unwrap();
        let got = bundle(a.path(), &[base.clone(), "f".repeat(40)]).unwrap();
        assert!(!got.bytes.is_empty());
        std::fs::write(b.path().join("a"), "2\n").unwrap();
        // A stale `from` changes nothing.
        let stale = advance(b.path(), &new, &new, &got.bytes, "refs/x/y");
        assert!(matches!(stale, Err(ApplyError::Changed(_))), "{stale:?}");
        advance(b.path(), &base, &new, &got.bytes, "refs/x/y").unwrap();
        assert_eq!(head(b.path()).unwrap(), new);
        assert_eq!(g(b.path(), &["status", "--porcelain"]), "");
        assert!(is_ancestor(b.path(), &base, &new));
        assert!(!is_ancestor(b.path(), &new, &base));
        assert_eq!(present(b.path(), &[new.clone(), "0".repeat(40)]), vec![new]);
    }
}
