//! A `clauderon attach` (or any command on a pseudo-terminal) driven from a test: stdin piped,
//! stdout read on a thread, bounded waits for expected output.

#![allow(clippy::unwrap_used)] // test support: a failure here is a test failure

use std::process::Command;

use super::home::TempHome;

/// `clauderon attach NAME` with piped stdio, read on a thread.
pub struct Attached {
    /// The running command.
    pub child: std::process::Child,
    /// Stdout chunks not yet moved into `seen`.
    pub out: std::sync::mpsc::Receiver<Vec<u8>>,
    /// Everything read from stdout so far.
    pub seen: String,
}

impl Attached {
    pub fn start(home: &TempHome, name: &str) -> Attached {
        let mut cmd = home.clauderon();
        cmd.args(["attach", name]);
        Attached::spawn(cmd)
    }

    /// `shell_command` run by `script` on a fresh pseudo-terminal (so stdin and stdout are a
    /// TTY), with this home.
    pub fn on_a_tty(home: &TempHome, shell_command: &str) -> Attached {
        let mut cmd = Command::new("script");
        cmd.args(["-qefc", shell_command, "/dev/null"])
            .env("CLAUDERON_HOME", home.path())
            .env_remove("CLAUDERON_PLUGIN_PATH")
            .env_remove("CLAUDERON_BACKEND");
        Attached::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Attached {
        use std::process::Stdio;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, out) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Attached {
            child,
            out,
            seen: String::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits (bounded) until stdout has shown `needle`.
    pub fn expect(&mut self, needle: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !self.seen.contains(needle) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.out.recv_timeout(left) {
                Ok(chunk) => self.seen.push_str(&String::from_utf8_lossy(&chunk)),
                Err(_) => panic!("no {needle:?} from attach; saw:\n{}", self.seen),
            }
        }
    }

    /// Waits (bounded) for the process to end; returns its exit code and stderr.
    pub fn finish(mut self) -> (Option<i32>, String) {
        use std::io::Read;
        drop(self.child.stdin.take());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("attach did not end; saw:\n{}", self.seen);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status.code(), err)
    }
}
