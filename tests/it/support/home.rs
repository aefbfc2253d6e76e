//! A temporary `CLAUDERON_HOME` per test, and running the real `clauderon` binary against it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::artifacts::artifacts;

/// A temporary clauderon home (deleted on drop).
#[derive(Debug)]
pub struct TempHome {
    dir: tempfile::TempDir,
}

/// The result of one `clauderon` run.
#[derive(Debug)]
pub struct Run {
    /// The exit code (`None` if killed by a signal, which a test treats as a crash).
    pub code: Option<i32>,
    /// stdout as text.
    pub stdout: String,
    /// stderr as text.
    pub stderr: String,
}

impl Run {
    /// stdout parsed as JSON (panics with both streams on failure).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e})\nstdout:\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Asserts `run` exited with `code`, showing both streams when it did not.
pub fn assert_exit(run: &Run, code: i32) {
    assert_eq!(
        run.code,
        Some(code),
        "exit code (None = killed by a signal)\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl TempHome {
    /// A fresh, empty home with a `plugins/` directory.
    pub fn new() -> TempHome {
        let dir = tempfile::Builder::new()
            .prefix("clauderon-home-")
            .tempdir()
            .expect("create a temporary home");
        std::fs::create_dir(dir.path().join("plugins")).expect("create plugins/");
        TempHome { dir }
    }

    /// The home directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `<home>/plugins`.
    pub fn plugins_dir(&self) -> PathBuf {
        self.path().join("plugins")
    }

    /// Writes `<home>/config.toml`.
    pub fn write_config(&self, toml: &str) {
        std::fs::write(self.path().join("config.toml"), toml).expect("write config.toml");
    }

    /// Writes the secret file `<home>/secrets/<name>` with `mode` (the directory 0700).
    pub fn write_secret(&self, name: &str, value: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = self.path().join("secrets");
        std::fs::create_dir_all(&dir).expect("mkdir secrets");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let p = dir.join(name);
        std::fs::write(&p, value).expect("write the secret file");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// Copies a library into `<home>/plugins` as `libclauderon_<name>.so`; returns the new path.
    pub fn install_plugin(&self, name: &str, library: &Path) -> PathBuf {
        let dest = self
            .plugins_dir()
            .join(super::artifacts::dylib_file_name(&format!(
                "clauderon_{name}"
            )));
        std::fs::copy(library, &dest)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", library.display(), dest.display()));
        dest
    }

    /// A `clauderon` command with this home and a clean plugin environment.
    pub fn clauderon(&self) -> Command {
        self.clauderon_at(&artifacts().clauderon())
    }

    /// The `clauderon` binary at `program` (an installed copy) with this home and a clean
    /// plugin environment.
    pub fn clauderon_at(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("CLAUDERON_HOME", self.path())
            .env_remove("CLAUDERON_PLUGIN_PATH")
            .env_remove("CLAUDERON_BACKEND")
            .env_remove("CLAUDERON_LOG")
            .env_remove("SPRITES_API_KEY");
        cmd
    }

    /// Runs `clauderon args...` to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, |_| {})
    }

    /// `clauderon checkpoint create SESSION COMMENT` (which must succeed); the new
    /// checkpoint's id, found by its comment in `checkpoint list --json`.
    pub fn create_checkpoint(&self, session: &str, comment: &str) -> String {
        assert_exit(&self.run(&["checkpoint", "create", session, comment]), 0);
        let cps = self.run(&["checkpoint", "list", session, "--json"]).json();
        cps.as_array()
            .and_then(|a| a.iter().find(|c| c["comment"] == comment))
            .and_then(|c| c["id"].as_str())
            .unwrap_or_else(|| panic!("no checkpoint {comment:?} in {cps:#}"))
            .to_owned()
    }

    /// Runs `clauderon args...` with stdin closed, killing it when it has not finished within
    /// `limit` (then `code` is `None` and stderr says so).
    pub fn run_timeout(&self, args: &[&str], limit: std::time::Duration) -> Run {
        let mut child = self
            .clauderon()
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run clauderon");
        let deadline = std::time::Instant::now() + limit;
        // Bounded: at most `limit` of 50 ms polls, then the child is killed.
        while child.try_wait().expect("wait for clauderon").is_none() {
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let mut run: Run = child.wait_with_output().expect("clauderon output").into();
                run.code = None;
                run.stderr.push_str(&format!(
                    "\n[test] killed after {limit:?} without finishing"
                ));
                return run;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        child.wait_with_output().expect("clauderon output").into()
    }

    /// Runs `clauderon args...` after letting `setup` adjust the command (env, ...).
    pub fn run_with(&self, args: &[&str], setup: impl FnOnce(&mut Command)) -> Run {
        let mut cmd = self.clauderon();
        cmd.args(args);
        setup(&mut cmd);
        cmd.output().expect("run clauderon").into()
    }
}

impl Default for TempHome {
    fn default() -> Self {
        TempHome::new()
    }
}
