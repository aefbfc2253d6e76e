//! Starting a `sprites-emulator` child process on loopback for a test.
//!
//! ```ignore
//! let emu = Emulator::start();                       // port 0, fresh data dir, random token
//! let emu = Emulator::start_args(&["--idle-to-warm", "200ms"]);
//! emu.base_url();  // http://127.0.0.1:PORT (the WebSocket URL is ws://127.0.0.1:PORT)
//! emu.add_fault(json!({"kind": "rate_limit", "path": "/v1/sprites", "times": 1})).await;
//! emu.force_state("name", "cold").await;
//! ```
//!
//! The process is killed on drop; the data directory is removed with the `Emulator`.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

/// A running emulator.
pub struct Emulator {
    child: Option<Child>,
    wrapper: Vec<String>,
    addr: String,
    token: String,
    data: tempfile::TempDir,
    args: Vec<String>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .field("data", &self.data.path())
            .finish_non_exhaustive()
    }
}

fn token() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "emu-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    )
}

impl Emulator {
    /// Starts an emulator with default flags.
    pub fn start() -> Emulator {
        Self::start_args(&[])
    }

    /// Starts an emulator with extra flags (after `--listen`, `--data`, `--token`).
    pub fn start_args(args: &[&str]) -> Emulator {
        let data = tempfile::Builder::new()
            .prefix("sprites-emu-")
            .tempdir()
            .expect("temporary data dir");
        let mut emu = Emulator {
            child: None,
            wrapper: Vec::new(),
            addr: String::new(),
            token: token(),
            data,
            args: args.iter().map(|s| (*s).to_owned()).collect(),
        };
        emu.spawn();
        emu
    }

    /// Starts the emulator as the unprivileged user `nobody` (65534) through `setpriv`, so it
    /// must isolate sprites with user namespaces; `None` when not root or `setpriv` is missing.
    pub fn start_unprivileged(args: &[&str]) -> Option<Emulator> {
        let root = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&root.stdout).trim() != "0" {
            return None;
        }
        Command::new("setpriv").arg("--version").output().ok()?;
        let data = tempfile::Builder::new()
            .prefix("sprites-emu-")
            .tempdir()
            .expect("temporary data dir");
        let st = Command::new("chown")
            .args(["65534:65534"])
            .arg(data.path())
            .status()
            .ok()?;
        assert!(st.success(), "chown the data dir to nobody");
        let mut emu = Emulator {
            child: None,
            wrapper: [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ]
            .map(str::to_owned)
            .to_vec(),
            addr: String::new(),
            token: token(),
            data,
            args: args.iter().map(|s| (*s).to_owned()).collect(),
        };
        emu.spawn();
        Some(emu)
    }

    fn spawn(&mut self) {
        let bin = super::artifacts::artifacts().emulator();
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let mut child = cmd
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(self.data.path())
            .args(["--token", &self.token])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("emulator stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = std::io::BufReader::new(stdout);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the emulator never blocks on a full pipe.
            let mut sink = String::new();
            while r.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("emulator printed its address within 60 s");
        let addr = line.trim().to_owned();
        assert!(
            addr.starts_with("127.0.0.1:"),
            "first stdout line of the emulator must be its address, got {line:?}"
        );
        self.addr = addr;
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://127.0.0.1:PORT`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The bearer token the emulator accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The data directory (sprites live in `sprites/<name>/`).
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// The emulator's process id (every sprite process descends from it), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops and starts the emulator on the same data directory (the port changes).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// A reqwest client (no timeouts beyond 120 s).
    pub fn http_client(&self) -> reqwest::Client {
        // reqwest is built without a default crypto provider; plain HTTP still needs one set.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("reqwest client")
    }

    /// Adds a fault rule (or an array of rules) through `POST /_emulator/faults`.
    pub async fn add_fault(&self, fault: Value) {
        let resp = self
            .http_client()
            .post(format!("{}/_emulator/faults", self.base_url()))
            .bearer_auth(&self.token)
            .json(&fault)
            .send()
            .await
            .expect("POST /_emulator/faults");
        assert!(
            resp.status().is_success(),
            "adding fault {fault} failed: {}",
            resp.text().await.unwrap_or_default()
        );
    }

    /// Forces a sprite into `running`, `warm` or `cold`; returns the admin state JSON.
    pub async fn force_state(&self, name: &str, state: &str) -> Value {
        let resp = self
            .http_client()
            .post(format!(
                "{}/_emulator/sprites/{name}/state",
                self.base_url()
            ))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({ "state": state }))
            .send()
            .await
            .expect("POST /_emulator/sprites/{name}/state");
        assert!(resp.status().is_success(), "force_state {name} {state}");
        resp.json().await.expect("state JSON")
    }

    /// Runs `argv` in sprite `name` through the plain-HTTP exec (`POST /v1/sprites/{name}/exec`,
    /// non-TTY); returns stdout and the exit code (the final `0x03` frame).
    pub async fn exec_http(&self, name: &str, argv: &[&str]) -> (String, i32) {
        let query: Vec<(&str, &str)> = argv.iter().map(|a| ("cmd", *a)).collect();
        let url = reqwest::Url::parse_with_params(
            &format!("{}/v1/sprites/{name}/exec", self.base_url()),
            &query,
        )
        .expect("exec URL");
        let resp = self
            .http_client()
            .post(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("POST /v1/sprites/{name}/exec");
        assert!(
            resp.status().is_success(),
            "exec {argv:?}: {}",
            resp.status()
        );
        let body = resp.bytes().await.expect("exec output").to_vec();
        // Frames are `[stream byte][payload]` split at chunk boundaries; the last is 0x03 + code.
        let code = match body.as_slice() {
            [.., 0x03, code] => i32::from(*code),
            _ => panic!("exec {argv:?}: no exit frame in {body:?}"),
        };
        let mut out = String::from_utf8_lossy(&body[..body.len() - 2]).into_owned();
        out.retain(|c| c != '\u{1}' && c != '\u{2}');
        (out, code)
    }

    /// `GET path` (e.g. `/_emulator/info`) as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.http_client()
            .get(format!("{}{path}", self.base_url()))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
    }

    /// `POST path` with a JSON body; the status.
    pub async fn post_json(&self, path: &str, body: &Value) -> u16 {
        self.http_client()
            .post(format!("{}{path}", self.base_url()))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
            .status()
            .as_u16()
    }

    /// Every sprite's JSON, from `GET /v1/sprites` (a list does not wake them).
    pub async fn sprites(&self) -> Vec<Value> {
        let list: Value = self
            .http_client()
            .get(format!("{}/v1/sprites?max_results=50", self.base_url()))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET /v1/sprites")
            .json()
            .await
            .expect("sprite list JSON");
        list["sprites"].as_array().expect("a sprites array").clone()
    }

    /// Sprite `name`'s JSON from the list (`None`: no such sprite).
    pub async fn sprite(&self, name: &str) -> Option<Value> {
        self.sprites().await.into_iter().find(|s| s["name"] == name)
    }

    /// Reads the admin state of a sprite (does not wake it).
    pub async fn state(&self, name: &str) -> Value {
        self.http_client()
            .get(format!(
                "{}/_emulator/sprites/{name}/state",
                self.base_url()
            ))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET state")
            .json()
            .await
            .expect("state JSON")
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every process inside the emulator's sprites: descendants of the emulator process that live
/// in another PID namespace than this test (the emulator runs each sprite's processes in a PID
/// namespace of their own). (pid, environ, cmdline), NULs as newlines.
pub fn processes_in_sprites(emu: &Emulator) -> Vec<(u32, String, String)> {
    let emu_pid = emu.pid().expect("the emulator runs");
    let read = |pid: u32, f: &str| {
        std::fs::read(format!("/proc/{pid}/{f}"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', "\n"))
            .unwrap_or_default()
    };
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'.
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let own_ns = std::fs::read_link("/proc/self/ns/pid").expect("this process's PID namespace");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let mut p = pid;
        let mut descends = false;
        for _ in 0..64 {
            match parent(p) {
                Some(pp) if pp == emu_pid => {
                    descends = true;
                    break;
                }
                Some(pp) if pp > 1 => p = pp,
                _ => break,
            }
        }
        let ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
        if descends && ns.is_some_and(|n| n != own_ns) {
            out.push((pid, read(pid, "environ"), read(pid, "cmdline")));
        }
    }
    out
}
