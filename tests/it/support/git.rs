//! Git for the tests: one command runner with a test identity, and a small repository.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

/// Runs `git -C dir args` as a test identity (branch `main` by default); panics when it fails.
/// Returns its standard output, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A new repository on branch `main` with one commit (`first`) holding `README.md` ("original").
pub fn git_repo() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("clauderon-repo-")
        .tempdir()
        .unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(dir.path().join("README.md"), "original\n").unwrap();
    git(dir.path(), &["add", "."]);
    git(dir.path(), &["commit", "-q", "-m", "first"]);
    dir
}
