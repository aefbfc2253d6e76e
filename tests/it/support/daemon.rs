//! Starting the real `clauderon daemon` on loopback for a test.
//!
//! ```ignore
//! let home = TempHome::new();
//! let d = TestDaemon::start(&home);         // [server] listen = "127.0.0.1:0" is added
//! let (status, body) = d.get("/api/sessions").await;
//! d.kill();                                 // SIGKILL
//! let d = TestDaemon::start(&home);         // a new daemon on the same home
//! ```
//!
//! The process is killed on drop. Its output goes to `<home>/logs/test-daemon-N.log`, which
//! [`TestDaemon::log`] returns for assertion messages.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::home::TempHome;

/// How long a daemon may take to start (the first start may load every plugin).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running daemon.
#[derive(Debug)]
pub struct TestDaemon {
    child: Option<Child>,
    /// The bound address from `daemon.json`.
    pub addr: SocketAddr,
    /// The API token from `api-token`.
    pub token: String,
    home: PathBuf,
    log: PathBuf,
}

fn ensure_listen_port_zero(home: &TempHome) {
    let file = home.path().join("config.toml");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    if !text.contains("[server]") {
        let text = format!("{text}\n[server]\nlisten = \"127.0.0.1:0\"\n");
        std::fs::write(&file, text).expect("write config.toml");
    }
}

impl TestDaemon {
    /// Starts `clauderon daemon` on `home` (adding `[server] listen = "127.0.0.1:0"` when the
    /// config has no `[server]`) and waits until `GET /api/health` answers.
    pub fn start(home: &TempHome) -> TestDaemon {
        Self::start_with(home, |_| {})
    }

    /// Like [`TestDaemon::start`], letting `setup` adjust the command (env, ...).
    pub fn start_with(
        home: &TempHome,
        setup: impl FnOnce(&mut std::process::Command),
    ) -> TestDaemon {
        static N: AtomicU64 = AtomicU64::new(0);
        ensure_listen_port_zero(home);
        std::fs::create_dir_all(home.path().join("logs")).expect("create logs/");
        let log = home.path().join("logs").join(format!(
            "test-daemon-{}.log",
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let out = std::fs::File::create(&log).expect("create the daemon log");
        let err = out.try_clone().expect("clone the log handle");
        let mut cmd = home.clauderon();
        cmd.arg("daemon")
            .env("CLAUDERON_LOG", "info,clauderon=debug")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        setup(&mut cmd);
        let mut child = cmd.spawn().expect("spawn clauderon daemon");
        let pid = child.id();
        let deadline = Instant::now() + START_TIMEOUT;
        let info: Value = loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the daemon exited during start ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let text = std::fs::read_to_string(home.path().join("daemon.json")).unwrap_or_default();
            if let Ok(v) = serde_json::from_str::<Value>(&text)
                && v["pid"] == pid
            {
                break v;
            }
            assert!(
                Instant::now() < deadline,
                "no daemon.json from pid {pid} within {START_TIMEOUT:?}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let addr = info["addr"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("daemon.json has an addr");
        let token = std::fs::read_to_string(home.path().join("api-token"))
            .expect("api-token exists once the daemon runs")
            .trim()
            .to_owned();
        TestDaemon {
            child: Some(child),
            addr,
            token,
            home: home.path().to_path_buf(),
            log,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `ws://127.0.0.1:PORT{path}`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// The daemon's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// A reqwest client without the token (for guard tests).
    pub fn anonymous_client(&self) -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("reqwest client")
    }

    /// A reqwest client presenting the token.
    pub fn client(&self) -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", self.token).parse().expect("header"),
        );
        reqwest::Client::builder()
            .default_headers(headers)
            .timeout(Duration::from_secs(120))
            .build()
            .expect("reqwest client")
    }

    async fn json(resp: reqwest::Response) -> (u16, Value) {
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("response body");
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    /// `GET path` with the token: (status, JSON body).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        Self::json(self.client().get(self.url(path)).send().await.expect("GET")).await
    }

    /// `POST path` with a JSON body and the token.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        Self::json(
            self.client()
                .post(self.url(path))
                .json(body)
                .send()
                .await
                .expect("POST"),
        )
        .await
    }

    /// `POST path` with a raw body and the token.
    pub async fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        Self::json(
            self.client()
                .post(self.url(path))
                .header("content-type", "application/json")
                .body(body.to_owned())
                .send()
                .await
                .expect("POST"),
        )
        .await
    }

    /// `DELETE path` with the token.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        Self::json(
            self.client()
                .delete(self.url(path))
                .send()
                .await
                .expect("DELETE"),
        )
        .await
    }

    /// Polls `GET /api/sessions/{session}` until its status is `want` (bounded); returns it.
    /// Panics early, with the session and the daemon log, if it becomes `failed` instead.
    pub async fn wait_status(&self, session: &str, want: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let (code, s) = self.get(&format!("/api/sessions/{session}")).await;
            assert_eq!(code, 200, "{s}");
            if s["status"] == want {
                return s;
            }
            assert!(
                !(s["status"] == "failed" && want != "failed"),
                "session failed while waiting for {want}: {s:#}\n{}",
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "session not {want} within {limit:?}: {s:#}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit.
    pub fn stop(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("daemon is running");
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = child.try_wait().expect("wait for the daemon") {
                self.child = None;
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not stop on SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the daemon with SIGKILL (no cleanup runs) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGKILLs this daemon and starts a new one on the same home (a crash and a restart).
    pub fn crash_and_restart(mut self, home: &TempHome) -> TestDaemon {
        self.kill();
        TestDaemon::start(home)
    }

    /// The home directory it runs on.
    pub fn home(&self) -> &std::path::Path {
        &self.home
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The agent output (`output` events) of `events`, as text.
pub fn output_text(events: &[Value]) -> String {
    use base64::Engine as _;
    let mut out = Vec::new();
    for e in events.iter().filter(|e| e["kind"] == "output") {
        out.extend(
            base64::engine::general_purpose::STANDARD
                .decode(e["data"]["b64"].as_str().unwrap_or_default())
                .unwrap_or_default(),
        );
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl TestDaemon {
    /// The events of session `id` after `after` (one page of up to 10,000).
    pub async fn events_after(&self, id: &str, after: i64) -> Vec<Value> {
        let (code, v) = self
            .get(&format!(
                "/api/sessions/{id}/events?after={after}&limit=10000"
            ))
            .await;
        assert_eq!(code, 200, "{v}");
        v["events"].as_array().cloned().unwrap_or_default()
    }

    /// Polls session `id`'s event log (bounded, 60 s) until the agent's output contains
    /// `needle`; returns the output.
    pub async fn wait_output(&self, id: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = output_text(&self.events_after(id, 0).await);
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the agent output: {text:?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
