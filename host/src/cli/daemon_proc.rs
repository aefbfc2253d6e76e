//! Starting the daemon in the background (detached, output appended to `logs/daemon.log`),
//! the lock that keeps two CLIs from starting two daemons, and stopping it by pid.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use super::Context;
use crate::home::{FileLock, Home};

/// `logs/daemon.log`.
pub fn log_file(home: &Home) -> PathBuf {
    home.logs_dir().join("daemon.log")
}

/// The last lines of `logs/daemon.log`, formatted to append to an error (empty if none).
pub fn log_tail(home: &Home) -> String {
    let Ok(text) = std::fs::read_to_string(log_file(home)) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(8)..];
    if tail.is_empty() {
        return String::new();
    }
    format!("; its last log lines:\n  {}", tail.join("\n  "))
}

/// Spawns `clauderon daemon` detached from this terminal: a new session (setsid), stdin from
/// /dev/null, stdout and stderr appended to `logs/daemon.log`.
pub fn spawn_background(ctx: &Context) -> anyhow::Result<Child> {
    let home = ctx.home();
    home.ensure()?;
    let exe = std::env::current_exe().context("cannot find the clauderon executable")?;
    let path = log_file(home);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let err = log
        .try_clone()
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut cmd = Command::new(&exe);
    cmd.arg("daemon")
        .env("CLAUDERON_HOME", home.root())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
        .with_context(|| format!("cannot start {} daemon", exe.display()))
}

/// The exclusive lock on `autostart.lock` (not the daemon's own `daemon.lock`) held while one
/// CLI starts the daemon.
#[derive(Debug)]
pub struct StartLock {
    _lock: FileLock,
}

impl StartLock {
    /// Waits (bounded, 15 s) for the lock.
    pub async fn acquire(home: &Home) -> anyhow::Result<StartLock> {
        home.ensure()?;
        let path = home.root().join("autostart.lock");
        for _ in 0..300 {
            if let Some(lock) = FileLock::try_acquire(&path)
                .with_context(|| format!("cannot lock {}", path.display()))?
            {
                return Ok(StartLock { _lock: lock });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!(
            "another clauderon is starting the daemon and has held {} for 15 s; try again",
            path.display()
        )
    }
}

/// Whether process `pid` exists and has not exited (a zombie waiting for its parent to reap
/// it counts as exited).
pub fn alive(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(p, 0) };
    let exists = rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    // Linux: the state is the first field after the parenthesised command name.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => true,
    }
}

/// Sends SIGTERM to `pid` and waits (bounded by `wait`) for it to exit. Returns whether it did.
pub async fn terminate(pid: u32, wait: Duration) -> anyhow::Result<bool> {
    let p = libc::pid_t::try_from(pid).context("pid out of range")?;
    // SAFETY: plain kill(2) on a pid the daemon wrote and just confirmed over the API.
    if unsafe { libc::kill(p, libc::SIGTERM) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(true);
        }
        return Err(e).with_context(|| format!("cannot signal the daemon (pid {pid})"));
    }
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        if !alive(pid) {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(!alive(pid))
}
