//! `cargo bench -p clauderon --bench daemon_api`: the daemon's API latency, each next to a
//! baseline measured in the same run.
//!
//! 1. `GET /api/sessions` with 10,000 sessions in the store, through the real `clauderon
//!    daemon` over loopback HTTP (what `clauderon list` waits for), against a raw rusqlite
//!    SELECT of the same rows in this process.
//! 2. Create to running through the daemon with the local-process fixture backend
//!    (`POST /api/sessions`, then the SSE event stream until `running`), against the same
//!    plugin calls (`create`, `clone_repo`, `attach`) made directly through the plugin
//!    registry in this process. The difference is the host's overhead (target: < 20 ms). The
//!    agent has no hooks, so `[agent] start_grace` (default 3 s: how long a hookless agent must
//!    stay alive to count as started) is set to 0 here: the wait is deliberate, not overhead.
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
                cpu_limit: Some(clauderon::session::parse_cpu_limit("2").expect("cpus")),
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
    let (mut api_t, mut raw_t, mut sum_t) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        assert_eq!(raw_select(&db), SESSIONS);
        raw_t.push(t.elapsed());
        let t = Instant::now();
        let (code, body) = http(&d, "GET", "/api/sessions", None);
        api_t.push(t.elapsed());
        assert_eq!(code, 200);
        std::hint::black_box(body);
        let t = Instant::now();
        let (code, body) = http(&d, "GET", "/api/sessions?view=summary", None);
        sum_t.push(t.elapsed());
        assert_eq!(code, 200);
        std::hint::black_box(body);
    }
    let (a, r, sm) = (median(api_t), median(raw_t), median(sum_t));
    println!(
        "daemon_api list: GET /api/sessions?view=summary (what `clauderon list` asks for): median {:.2} ms; ratio to the baseline = {:.2}x",
        ms(sm),
        sm.as_secs_f64() / r.as_secs_f64()
    );
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
    // The whole `clauderon list` command as a user runs it: process start, config, finding
    // the daemon through daemon.json, the GET, rendering the table.
    let mut cli_t = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_clauderon"))
            .arg("list")
            .env("CLAUDERON_HOME", home.path())
            .env_remove("CLAUDERON_PLUGIN_PATH")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .expect("run clauderon list");
        cli_t.push(t.elapsed());
        assert!(out.status.success(), "clauderon list failed");
        assert!(String::from_utf8_lossy(&out.stdout).lines().count() > SESSIONS);
    }
    let c = median(cli_t);
    println!(
        "daemon_api list: `clauderon list` (the whole command, {SESSIONS} rows): median {:.2} ms over 5 runs; ratio to the baseline = {:.2}x",
        ms(c),
        c.as_secs_f64() / r.as_secs_f64()
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
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use clauderon::config::Config;
    use clauderon::home::Home;
    use clauderon::plugins::{
        Candidate, ConfigTables, DiscoverySource, HostSetup, PluginRegistry, ops,
    };

    const RUNS: usize = 10;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "user.name=b", "-c", "user.email=b@example.com"])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The fixture library, built with cargo when missing.
    fn fixture(profile: &Path) -> Option<PathBuf> {
        let lib = profile.join(format!(
            "{}fixture_local_backend{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ));
        if !lib.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-q", "-p", "fixture-local-backend"]);
            if profile.ends_with("release") {
                cmd.arg("--release");
            }
            let _ = cmd.status();
        }
        lib.exists().then_some(lib)
    }

    /// Reads an SSE response until a `status` event moves to `running`.
    fn until_running(d: &Daemon, id: &str) {
        let mut s = TcpStream::connect(d.addr).expect("connect");
        write!(
            s,
            "GET /api/sessions/{id}/events?follow=true HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Authorization: Bearer {}\r\n\r\n",
            d.token
        )
        .expect("write");
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let mut r = BufReader::new(s);
        let mut line = String::new();
        loop {
            line.clear();
            let n = r.read_line(&mut line).expect("read the event stream");
            assert!(n > 0, "the event stream ended before running");
            if line.starts_with("data:") && line.contains("\"kind\":\"status\"") {
                assert!(!line.contains("\"to\":\"failed\""), "create failed: {line}");
                if line.contains("\"to\":\"running\"") {
                    return;
                }
            }
        }
    }

    pub fn run(profile: &Path) {
        let Some(lib) = fixture(profile) else {
            println!(
                "daemon_api create: skipped (build it with `cargo build -p fixture-local-backend`)"
            );
            return;
        };
        let home = tempfile::tempdir().expect("home");
        let sandboxes = home.path().join("sandboxes");
        std::fs::create_dir_all(home.path().join("plugins")).expect("plugins/");
        let installed = home.path().join("plugins").join(format!(
            "{}clauderon_local{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ));
        std::fs::copy(&lib, &installed).expect("install the fixture");
        std::fs::write(
            home.path().join("config.toml"),
            format!(
                "default_backend = \"local\"\n[server]\nlisten = \"127.0.0.1:0\"\n\
                 [agent]\npreset = \"custom\"\ncommand = [\"sh\", \"-c\", \"exec cat\"]\n\
                 prompt_args = [\"{{prompt}}\"]\nstart_grace = \"0s\"\n[local]\nroot = \"{}\"\n",
                sandboxes.display()
            ),
        )
        .expect("config");
        let repo = tempfile::tempdir().expect("repo");
        git(repo.path(), &["init", "-q", "-b", "main"]);
        std::fs::write(repo.path().join("README.md"), "bench\n").expect("write");
        git(repo.path(), &["add", "."]);
        git(repo.path(), &["commit", "-q", "-m", "one"]);
        let head = git(repo.path(), &["rev-parse", "HEAD"]);

        // The baseline: the same plugin calls, in this process, through the registry.
        let config = Config::load(&Home::new(home.path())).expect("config");
        let setup = HostSetup {
            plugin_config: Arc::new(ConfigTables::new(Arc::new(config))),
            ..HostSetup::default()
        };
        let direct_copy = home
            .path()
            .join("direct")
            .join(installed.file_name().expect("name"));
        std::fs::create_dir_all(direct_copy.parent().expect("dir")).expect("dir");
        std::fs::copy(&lib, &direct_copy).expect("copy");
        let registry = PluginRegistry::from_candidates(
            vec![Candidate {
                name: "local".into(),
                path: direct_copy,
                source: DiscoverySource::PluginPath,
            }],
            setup,
        );
        let client = registry.get("local").expect("load the fixture");
        let rt = tokio::runtime::Runtime::new().expect("runtime");

        let d = start_daemon(home.path());
        let (mut api_t, mut direct_t) = (Vec::new(), Vec::new());
        for i in 0..=RUNS {
            // Through the daemon: POST, then the event stream until running.
            let t = Instant::now();
            let body = serde_json::json!({
                "repo": repo.path(), "prompt": "bench", "name": format!("api-{i}"),
            })
            .to_string();
            let (code, resp) = http(&d, "POST", "/api/sessions", Some(&body));
            assert_eq!(code, 201, "{}", String::from_utf8_lossy(&resp));
            let v: serde_json::Value = serde_json::from_slice(&resp).expect("json");
            let id = v["id"].as_str().expect("id").to_owned();
            until_running(&d, &id);
            let api = t.elapsed();
            let (code, _) = http(&d, "DELETE", &format!("/api/sessions/{id}"), None);
            assert_eq!(code, 200);

            // Directly: create, clone_repo, attach (what the daemon asks of the plugin).
            let direct = rt.block_on(async {
                let t = Instant::now();
                let made = client
                    .create(&ops::CreateRequest {
                        session_id: SessionId::new().to_string(),
                        name: format!("direct-{i}"),
                        labels: BTreeMap::from([("clauderon".into(), "1".into())]),
                        ..Default::default()
                    })
                    .await
                    .expect("create");
                let cloned = client
                    .clone_repo(&ops::CloneRepoRequest {
                        instance: made.instance,
                        url: String::new(),
                        branch: Some(format!("clauderon/direct-{i}")),
                        dest: "/home/sprite/workspace".into(),
                        local_path: Some(repo.path().display().to_string()),
                        base_commit: Some(head.clone()),
                        base_branch: Some("main".into()),
                        depth: None,
                    })
                    .await
                    .expect("clone");
                let (_started, stream) = client
                    .attach(&ops::AttachRequest {
                        instance: cloned.instance.clone(),
                        session: None,
                        command: vec!["sh".into(), "-c".into(), "exec cat".into()],
                        cols: 120,
                        rows: 40,
                        cwd: Some("/home/sprite/workspace".into()),
                        env: BTreeMap::new(),
                    })
                    .await
                    .expect("attach");
                let elapsed = t.elapsed();
                drop(stream);
                client
                    .delete(&ops::InstanceRequest {
                        instance: cloned.instance,
                    })
                    .await
                    .expect("delete");
                elapsed
            });
            // The first round warms both paths (page cache, plugin load).
            if i > 0 {
                api_t.push(api);
                direct_t.push(direct);
            }
        }
        let (a, b) = (median(api_t), median(direct_t));
        println!(
            "daemon_api create: POST /api/sessions to `running` through the daemon: median {:.2} ms over {RUNS} runs",
            ms(a)
        );
        println!(
            "daemon_api create: baseline create + clone_repo + attach on the plugin directly: median {:.2} ms",
            ms(b)
        );
        println!(
            "daemon_api create: host overhead = {:.2} ms (target < 20 ms); ratio daemon/baseline = {:.2}x",
            ms(a.saturating_sub(b)),
            a.as_secs_f64() / b.as_secs_f64()
        );
        drop(d);
        registry.shutdown_all(Duration::from_secs(2));
    }
}
