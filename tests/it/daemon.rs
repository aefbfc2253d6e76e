//! The daemon through the real binary over real HTTP/WebSocket on loopback: files, the guard,
//! bad input, the plugins and credentials routes, and (with the local-process fixture backend)
//! the whole session engine.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::artifacts::artifacts;
use crate::support::daemon::TestDaemon;
use crate::support::git::git_repo;
use crate::support::home::TempHome;

fn ok_fixture() -> PathBuf {
    let p = artifacts().cdylib("fixture_ok");
    assert!(p.exists(), "fixture {} was not built", p.display());
    p
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn daemon_makes_its_files_serves_health_and_cleans_up_on_sigterm() {
    let home = TempHome::new();
    let mut d = TestDaemon::start(&home);
    assert_eq!(mode(&home.path().join("api-token")), 0o600);
    assert_eq!(mode(&home.path().join("daemon.json")), 0o600);
    assert_eq!(d.token.len(), 64);
    let (code, health) = d.get("/api/health").await;
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["pid"], d.pid());
    assert!(health["version"].is_string());
    let status = d.stop();
    assert!(status.success(), "{status}\n{}", d.log());
    assert!(!home.path().join("daemon.json").exists());
    // The token is kept across restarts (the CLI keeps working).
    let token = d.token.clone();
    let d2 = TestDaemon::start(&home);
    assert_eq!(d2.token, token);
}

#[tokio::test]
async fn a_second_daemon_on_the_same_home_is_refused() {
    let home = TempHome::new();
    let d = TestDaemon::start(&home);
    let run = home.run(&["daemon"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains("another clauderon daemon is already running"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("pid {}", d.pid())),
        "{}",
        run.stderr
    );
    // The first one is unharmed.
    assert_eq!(d.get("/api/health").await.0, 200);
}

#[tokio::test]
async fn token_host_and_origin_are_checked_by_the_real_server() {
    let home = TempHome::new();
    let d = TestDaemon::start(&home);
    let anon = d.anonymous_client();
    let url = d.url("/api/sessions");

    let r = anon.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    let r = anon.get(&url).bearer_auth("0000").send().await.unwrap();
    assert_eq!(r.status(), 401);

    let r = d
        .client()
        .get(&url)
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "foreign_host", "{body}");

    let r = d
        .client()
        .get(&url)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let own = format!("http://127.0.0.1:{}", d.addr.port());
    let r = d
        .client()
        .get(&url)
        .header("origin", own)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The token never appears in a refusal.
    let r = anon.get(&url).bearer_auth("wrong").send().await.unwrap();
    let text = r.text().await.unwrap();
    assert!(!text.contains(&d.token));
    // The WebSocket route is guarded too.
    let err = tokio_tungstenite::connect_async(d.ws_url("/api/sessions/x/attach"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
}

#[tokio::test]
async fn bad_create_bodies_are_400_with_the_fix_and_create_nothing() {
    let home = TempHome::new();
    home.install_plugin("ok", &ok_fixture());
    let d = TestDaemon::start(&home);
    let repo = git_repo();
    let repo_s = repo.path().to_str().unwrap();
    let not_git = tempfile::tempdir().unwrap();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"repo": repo_s}), "missing field `prompt`"),
        (json!({"repo": "rel/path", "prompt": "p"}), "absolute path"),
        (
            json!({"repo": repo_s, "prompt": "  "}),
            "invalid value for prompt: the prompt is empty",
        ),
        (
            json!({"repo": repo_s, "prompt": "p", "name": "Bad Name"}),
            "session name",
        ),
        (
            json!({"repo": repo_s, "prompt": "p", "options": {"memory_limit": "lots"}}),
            "for options.memory_limit",
        ),
        (
            json!({"repo": repo_s, "prompt": "p", "options": {"hibernation_timeout": "3m"}}),
            "for options.hibernation_timeout",
        ),
        (
            json!({"repo": repo_s, "prompt": "p", "colour": "red"}),
            "unknown field `colour`",
        ),
        (
            json!({"repo": repo_s, "prompt": "p", "backend": "nope"}),
            "no backend plugin named `nope`",
        ),
        (
            json!({"repo": repo_s, "prompt": "p"}),
            "no backend selected",
        ),
        (
            json!({"repo": not_git.path(), "prompt": "p", "backend": "ok"}),
            "not a git repository",
        ),
        (
            json!({"repo": "/nonexistent/clauderon-test", "prompt": "p", "backend": "ok"}),
            "is not a directory",
        ),
        (
            json!({"repo": repo_s, "prompt": "p", "backend": "ok"}),
            "lacks remote_clone",
        ),
    ];
    for (body, want) in cases {
        let (code, resp) = d.post("/api/sessions", &body).await;
        assert_eq!(code, 400, "{body} -> {resp}");
        assert_eq!(resp["error"]["code"], "bad_request", "{resp}");
        let msg = resp["error"]["message"].as_str().unwrap();
        assert!(msg.contains(want), "{body}: `{msg}` lacks `{want}`");
        assert!(
            !msg.contains("--"),
            "the API speaks of fields, not flags: {msg}"
        );
    }
    // A field the request names wrongly is named in the answer, for a form to show it there.
    for (body, field) in [
        (json!({"repo": repo_s, "prompt": "  "}), "prompt"),
        (json!({"repo": "rel", "prompt": "p"}), "repo"),
        (
            json!({"repo": repo_s, "prompt": "p", "name": "Bad Name"}),
            "name",
        ),
    ] {
        let (_, resp) = d.post("/api/sessions", &body).await;
        assert_eq!(resp["error"]["field"], field, "{resp}");
    }
    let (code, resp) = d.post_raw("/api/sessions", "{not json").await;
    assert_eq!(code, 400, "{resp}");
    let (code, list) = d.get("/api/sessions?all=true").await;
    assert_eq!(code, 200);
    assert_eq!(list["sessions"], json!([]), "nothing was created");
}

#[tokio::test]
async fn unknown_sessions_routes_and_queries_are_json_errors() {
    let home = TempHome::new();
    let d = TestDaemon::start(&home);
    for path in [
        "/api/sessions/nope",
        "/api/sessions/nope/events",
        "/api/sessions/nope/checkpoints",
        "/api/nothing-here",
    ] {
        let (code, body) = d.get(path).await;
        assert_eq!(code, 404, "{path}: {body}");
        assert!(body["error"]["message"].is_string(), "{path}: {body}");
    }
    let (code, body) = d.post("/api/sessions/nope/wake", &json!({})).await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = d.get("/api/sessions?all=maybe").await;
    assert_eq!(code, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("query"));
    let (code, body) = d.delete("/api/health").await;
    assert_eq!(code, 405, "{body}");
}

#[tokio::test]
async fn plugins_and_credentials_routes_match_the_cli_and_never_show_values() {
    let home = TempHome::new();
    home.install_plugin("ok", &ok_fixture());
    let secret = "s3cr3t-value-never-shown-0123456789";
    let d = TestDaemon::start_with(&home, |c| {
        c.env("OK_FIXTURE_TOKEN", secret);
    });
    let (code, plugins) = d.get("/api/plugins").await;
    assert_eq!(code, 200);
    let cli = home.run(&["plugins", "list", "--json"]).json();
    assert_eq!(plugins, cli);
    let (code, creds) = d.get("/api/credentials").await;
    assert_eq!(code, 200, "{creds}");
    let text = creds.to_string();
    assert!(!text.contains(secret), "{text}");
    let ok = creds["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ok_token")
        .unwrap_or_else(|| panic!("ok_token missing: {creds:#}"));
    assert!(!ok["source"].is_null(), "the env source is named: {ok}");
    assert!(ok["preview"].is_string(), "{ok}");
    assert!(!d.log().contains(secret));
}

// ---------------------------------------------------------------------------------------------
// The session engine end to end, with the local-process fixture backend.
// ---------------------------------------------------------------------------------------------

use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

/// Bounds every wait on the daemon.
const WAIT: Duration = Duration::from_secs(30);

/// The agent the tests run: prints what it was started with, then echoes its terminal.
const AGENT: &str = r#"
[agent]
preset = "custom"
command = ["sh", "-c", "echo agent-started:$0:$1; exec cat"]
prompt_args = ["{prompt}"]
resume_args = ["resume", "{resume}"]
continue_args = ["resume", "latest"]
"#;

fn local_fixture() -> PathBuf {
    let p = artifacts().cdylib("fixture_local_backend");
    assert!(p.exists(), "fixture {} was not built", p.display());
    p
}

/// A home with the local backend installed as default, sandboxes under `<home>/sandboxes`,
/// `extra` appended to `[local]`, and `agent` as `[agent]`.
fn local_home(extra: &str, agent: &str) -> TempHome {
    let home = TempHome::new();
    home.install_plugin("local", &local_fixture());
    home.write_config(&format!(
        "default_backend = \"local\"\n{agent}\n[local]\nroot = \"{}\"\n{extra}\n",
        home.path().join("sandboxes").display()
    ));
    home
}

async fn create(d: &TestDaemon, repo: &Path, body: Value) -> Value {
    let mut body = body;
    body["repo"] = json!(repo);
    let (code, s) = d.post("/api/sessions", &body).await;
    assert_eq!(code, 201, "{s}\n{}", d.log());
    assert_eq!(s["status"], "creating");
    s
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn attach(d: &TestDaemon, id: &str) -> Ws {
    let mut req = d
        .ws_url(&format!("/api/sessions/{id}/attach?cols=100&rows=30"))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", d.token).parse().unwrap(),
    );
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("attach in time")
        .expect("attach");
    ws
}

/// Reads binary messages until their concatenation contains `needle`; panics on a control
/// message or the end of the socket.
async fn ws_read_until(ws: &mut Ws, needle: &str) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => out.extend_from_slice(&b),
                Some(Ok(Message::Text(t))) => panic!(
                    "control message {t} while waiting for {needle:?}; so far {:?}",
                    String::from_utf8_lossy(&out)
                ),
                Some(Ok(_)) => {}
                other => panic!(
                    "socket ended ({other:?}) waiting for {needle:?}; so far {:?}",
                    String::from_utf8_lossy(&out)
                ),
            }
            if String::from_utf8_lossy(&out).contains(needle) {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "timed out waiting for {needle:?}: {:?}",
            String::from_utf8_lossy(&out)
        )
    });
    String::from_utf8_lossy(&out).into_owned()
}

fn repo_head(repo: &Path) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn a_session_lives_through_create_attach_checkpoint_hibernate_wake_restore_and_delete() {
    let home = local_home("", AGENT);
    let d = TestDaemon::start(&home);
    let repo = git_repo();
    let s = create(&d, repo.path(), json!({"prompt": "fix-it", "name": "life"})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    assert_eq!(s["branch"], "clauderon/life");
    let s = d.wait_status("life", "running", WAIT).await;
    assert!(s["agent_session"].is_string(), "{s}");
    assert!(s["instance_id"].is_string(), "{s}");
    // The agent started with the prompt; its output is in the event log.
    d.wait_output(&id, "agent-started:fix-it:").await;
    let evs = d.events_after(&id, 0).await;
    let stages: Vec<&str> = evs
        .iter()
        .filter(|e| e["kind"] == "progress")
        .map(|e| e["data"]["stage"].as_str().unwrap())
        .collect();
    for stage in ["create", "clone", "agent"] {
        assert!(stages.contains(&stage), "{stages:?}");
    }
    let seqs: Vec<i64> = evs.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    // The repository really was cloned into the sandbox at the host's HEAD.
    let ws_dir = home
        .path()
        .join("sandboxes")
        .join("life")
        .join("home/sprite/workspace");
    assert!(ws_dir.join(".git").exists(), "{}", ws_dir.display());

    // Attach: input reaches the agent and its echo comes back.
    let mut ws = attach(&d, "life").await;
    ws.send(Message::Binary(b"hello-from-ws\n".to_vec().into()))
        .await
        .unwrap();
    ws_read_until(&mut ws, "hello-from-ws").await;
    ws.send(Message::Text(
        json!({"type": "resize", "cols": 90, "rows": 20})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    ws.close(None).await.unwrap();
    // Detaching left the agent running.
    assert_eq!(d.get("/api/sessions/life").await.1["status"], "running");

    // Checkpoint records the workspace's git HEAD.
    let (code, cp) = d
        .post(
            "/api/sessions/life/checkpoints",
            &json!({"comment": "before"}),
        )
        .await;
    assert_eq!(code, 201, "{cp}\n{}", d.log());
    assert_eq!(cp["git_head"], repo_head(repo.path()));
    assert_eq!(cp["comment"], "before");
    std::fs::write(ws_dir.join("after.txt"), "made after the checkpoint").unwrap();

    // Hibernate stops the agent; wake brings it back with resume.
    let (code, h) = d.post("/api/sessions/life/hibernate", &json!({})).await;
    assert_eq!(code, 200, "{h}\n{}", d.log());
    assert_eq!(h["session"]["status"], "hibernated");
    let (code, again) = d.post("/api/sessions/life/hibernate", &json!({})).await;
    assert_eq!(code, 409, "{again}");
    let (code, w) = d.post("/api/sessions/life/wake", &json!({})).await;
    assert_eq!(code, 200, "{w}\n{}", d.log());
    assert_eq!(w["session"]["status"], "running");
    assert!(w["elapsed_ms"].is_u64(), "{w}");
    d.wait_output(&id, "agent-started:resume:").await;

    // Restore: a safety checkpoint first, the files back as they were, the agent restarted.
    let (code, r) = d
        .post(
            &format!(
                "/api/sessions/life/checkpoints/{}/restore",
                cp["id"].as_str().unwrap()
            ),
            &json!({}),
        )
        .await;
    assert_eq!(code, 200, "{r}\n{}", d.log());
    assert!(
        r["safety_checkpoint"]["comment"]
            .as_str()
            .unwrap()
            .contains("safety"),
        "{r}"
    );
    assert_eq!(r["session"]["status"], "running");
    assert!(
        !ws_dir.join("after.txt").exists(),
        "restore brought back the old files"
    );
    let (_, cps) = d.get("/api/sessions/life/checkpoints").await;
    assert_eq!(cps["checkpoints"].as_array().unwrap().len(), 2, "{cps}");
    let (code, bad) = d
        .post("/api/sessions/life/checkpoints/nope/restore", &json!({}))
        .await;
    assert_eq!(code, 404, "{bad}");

    // Delete destroys the sandbox; the record stays, listed only with ?all=true.
    let (code, del) = d.delete("/api/sessions/life").await;
    assert_eq!(code, 200, "{del}\n{}", d.log());
    assert_eq!(del["status"], "deleted");
    assert!(!home.path().join("sandboxes").join("life").exists());
    assert_eq!(d.get("/api/sessions").await.1["sessions"], json!([]));
    assert_eq!(
        d.get("/api/sessions?all=true").await.1["sessions"][0]["id"],
        json!(id)
    );
}

/// Reads an SSE stream until the session is deleted; returns the events in order.
async fn follow_to_deletion(client: reqwest::Client, url: String) -> Vec<Value> {
    let resp = client.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(chunk) = body.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let mut id_line = None;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id_line = Some(v.trim().parse::<i64>().unwrap());
                    }
                    if let Some(v) = line.strip_prefix("data:") {
                        let e: Value = serde_json::from_str(v.trim()).unwrap();
                        assert_eq!(Some(e["seq"].as_i64().unwrap()), id_line);
                        out.push(e);
                    }
                }
            }
        }
    })
    .await
    .expect("the stream ends once the session is deleted");
    out
}

#[tokio::test]
async fn the_event_stream_gives_history_then_live_events_without_gap_or_duplicate() {
    let home = local_home("", AGENT);
    let d = TestDaemon::start(&home);
    let repo = git_repo();
    let s = create(&d, repo.path(), json!({"prompt": "stream"})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    // Follow from the start while the session is being created, written to and deleted.
    let follower = tokio::spawn(follow_to_deletion(
        d.client(),
        d.url(&format!("/api/sessions/{id}/events?after=0&follow=true")),
    ));
    d.wait_status(&id, "running", WAIT).await;
    let mut ws = attach(&d, &id).await;
    for i in 0..20 {
        ws.send(Message::Binary(format!("line-{i}\n").into_bytes().into()))
            .await
            .unwrap();
    }
    ws_read_until(&mut ws, "line-19").await;
    ws.close(None).await.unwrap();
    let (code, _) = d.delete(&format!("/api/sessions/{id}")).await;
    assert_eq!(code, 200);
    let streamed = follower.await.unwrap();
    let stored = d.events_after(&id, 0).await;
    let seqs = |v: &[Value]| {
        v.iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs(&streamed), seqs(&stored), "stream == log, in order");
    assert_eq!(streamed.last().unwrap()["data"]["to"], "deleted");
    // Resuming after a seq gives exactly the rest.
    let mid = stored[stored.len() / 2]["seq"].as_i64().unwrap();
    let rest = follow_to_deletion(
        d.client(),
        d.url(&format!(
            "/api/sessions/{id}/events?after={mid}&follow=true"
        )),
    )
    .await;
    assert_eq!(seqs(&rest), seqs(&stored[stored.len() / 2 + 1..]));
}

#[tokio::test]
async fn two_clients_attached_at_once_share_the_agent() {
    let home = local_home("", AGENT);
    let d = TestDaemon::start(&home);
    let repo = git_repo();
    let s = create(&d, repo.path(), json!({"prompt": "pair"})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    d.wait_status(&id, "running", WAIT).await;
    let mut a = attach(&d, &id).await;
    let mut b = attach(&d, &id).await;
    a.send(Message::Binary(b"from-a\n".to_vec().into()))
        .await
        .unwrap();
    ws_read_until(&mut a, "from-a").await;
    ws_read_until(&mut b, "from-a").await;
    b.send(Message::Binary(b"from-b\n".to_vec().into()))
        .await
        .unwrap();
    ws_read_until(&mut a, "from-b").await;
    ws_read_until(&mut b, "from-b").await;
    // A client attaching later is first shown the agent's recent output.
    let mut c = attach(&d, &id).await;
    let replay = ws_read_until(&mut c, "from-b").await;
    assert!(replay.contains("from-a"), "{replay}");
    // A bad control message is answered, not fatal.
    a.send(Message::Text("{\"type\":\"dance\"}".into()))
        .await
        .unwrap();
    let reply = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Ok(Message::Text(t))) = a.next().await {
                return t;
            }
        }
    })
    .await
    .unwrap();
    assert!(reply.contains("unknown control message"), "{reply}");
}

#[tokio::test]
async fn a_daemon_killed_mid_session_restarts_with_nothing_lost() {
    let home = local_home("", AGENT);
    let d = TestDaemon::start(&home);
    let repo = git_repo();
    let s = create(
        &d,
        repo.path(),
        json!({"prompt": "survive", "name": "survivor"}),
    )
    .await;
    let id = s["id"].as_str().unwrap().to_owned();
    d.wait_status(&id, "running", WAIT).await;
    d.wait_output(&id, "agent-started:survive:").await;
    let before = d.events_after(&id, 0).await;
    let d = d.crash_and_restart(&home);
    // Everything acknowledged before the kill is still there, in the same order.
    let after = d.events_after(&id, 0).await;
    assert!(after.len() >= before.len());
    assert_eq!(&after[..before.len()], &before[..]);
    let s = d.wait_status("survivor", "running", WAIT).await;
    assert_eq!(s["id"], json!(id));
    // The agent's session died with the old daemon: the new one started it again with resume,
    // and attaching works.
    d.wait_output(&id, "agent-started:resume:").await;
    let mut ws = attach(&d, "survivor").await;
    ws.send(Message::Binary(b"still-here\n".to_vec().into()))
        .await
        .unwrap();
    ws_read_until(&mut ws, "still-here").await;
}

#[tokio::test]
async fn an_idle_session_hibernates_and_attaching_wakes_it() {
    let home = local_home("", AGENT);
    let d = TestDaemon::start_with(&home, |c| {
        c.env("CLAUDERON_HIBERNATION_TIMEOUT", "1500ms");
    });
    let repo = git_repo();
    let s = create(&d, repo.path(), json!({"prompt": "sleepy"})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    d.wait_status(&id, "running", WAIT).await;
    d.wait_status(&id, "hibernated", WAIT).await;
    let evs = d.events_after(&id, 0).await;
    assert!(
        evs.iter()
            .any(|e| e["kind"] == "progress"
                && e["data"]["message"].as_str().unwrap().contains("idle")),
        "{evs:#?}"
    );
    // Attaching wakes it; while attached it does not hibernate.
    let mut ws = attach(&d, &id).await;
    ws.send(Message::Binary(b"awake\n".to_vec().into()))
        .await
        .unwrap();
    ws_read_until(&mut ws, "awake").await;
    assert_eq!(
        d.get(&format!("/api/sessions/{id}")).await.1["status"],
        "running"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        d.get(&format!("/api/sessions/{id}")).await.1["status"],
        "running",
        "an attached session stays awake"
    );
    ws.close(None).await.unwrap();
    d.wait_status(&id, "hibernated", WAIT).await;
}

#[tokio::test]
async fn print_mode_records_the_agents_exit_code() {
    let agent = r#"
[agent]
preset = "custom"
command = ["sh", "-c", "echo printed:$0; exit 3"]
prompt_args = ["{prompt}"]
print_args = []
"#;
    let home = local_home("", agent);
    let d = TestDaemon::start(&home);
    let repo = git_repo();
    let s = create(
        &d,
        repo.path(),
        json!({"prompt": "once", "options": {"print": true}}),
    )
    .await;
    let id = s["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + WAIT;
    let s = loop {
        let (_, s) = d.get(&format!("/api/sessions/{id}")).await;
        if s["agent_exit_code"].is_i64() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit code: {s}\n{}", d.log());
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(s["agent_exit_code"], 3);
    let evs = d.events_after(&id, 0).await;
    assert!(crate::support::daemon::output_text(&evs).contains("printed:once"));
    let exited: Vec<&Value> = evs.iter().filter(|e| e["kind"] == "agent_exited").collect();
    assert_eq!(exited.len(), 1);
    assert_eq!(exited[0]["data"]["code"], 3);
}

#[tokio::test]
async fn plugin_errors_and_panics_fail_the_session_not_the_daemon() {
    for (extra, want) in [
        ("fail_create = \"no capacity today\"", "no capacity today"),
        ("panic_on = \"clone_repo\"", "panicked"),
    ] {
        let home = local_home(extra, AGENT);
        let d = TestDaemon::start(&home);
        let repo = git_repo();
        let s = create(
            &d,
            repo.path(),
            json!({"prompt": "doomed", "name": "doomed"}),
        )
        .await;
        let id = s["id"].as_str().unwrap().to_owned();
        let s = d.wait_status(&id, "failed", WAIT).await;
        let reason = s["status_reason"].as_str().unwrap();
        assert!(reason.contains("backend `local`"), "{reason}");
        assert!(reason.contains(want), "{reason}");
        // Whatever was made is gone, and the daemon still serves.
        assert!(!home.path().join("sandboxes").join("doomed").exists());
        assert_eq!(d.get("/api/health").await.0, 200);
        let (code, del) = d.delete(&format!("/api/sessions/{id}")).await;
        assert_eq!(code, 200, "{del}");
    }
    // A plugin error on a route is a 502 naming the plugin.
    let home = local_home("panic_on = \"hibernate\"", AGENT);
    let d = TestDaemon::start(&home);
    let repo = git_repo();
    let s = create(&d, repo.path(), json!({"prompt": "p"})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    d.wait_status(&id, "running", WAIT).await;
    let (code, e) = d
        .post(&format!("/api/sessions/{id}/hibernate"), &json!({}))
        .await;
    assert_eq!(code, 502, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("`local`"),
        "{e}"
    );
    assert_eq!(
        d.get(&format!("/api/sessions/{id}")).await.1["status"],
        "failed"
    );
    assert_eq!(d.get("/api/health").await.0, 200);
}

#[tokio::test]
async fn a_delete_during_a_slow_create_leaves_no_sandbox_behind() {
    // The plugin makes the sandbox, then takes its time answering `create` (a slow provider).
    let home = local_home("slow_create_ms = 2000", AGENT);
    let d = TestDaemon::start(&home);
    let repo = git_repo();
    let s = create(&d, repo.path(), json!({"prompt": "p", "name": "hasty"})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let sandbox = home.path().join("sandboxes").join("hasty");
    // The plugin's own progress event says the sandbox exists and it is still answering.
    let deadline = Instant::now() + WAIT;
    while !d.events_after(&id, 0).await.iter().any(|e| {
        e["data"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("slow_create_ms")
    }) {
        assert!(Instant::now() < deadline, "no slow create:\n{}", d.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sandbox.exists(), "the plugin made {}", sandbox.display());
    let (code, del) = d.delete(&format!("/api/sessions/{id}")).await;
    assert_eq!(code, 200, "{del}\n{}", d.log());
    assert_eq!(del["status"], "deleted");
    assert!(
        !sandbox.exists(),
        "the sandbox made during the create was left behind:\n{}",
        d.log()
    );
}

#[tokio::test]
async fn a_restarted_daemon_reconciles_before_it_serves() {
    let home = local_home("", AGENT);
    let d = TestDaemon::start(&home);
    let repo = git_repo();
    let s = create(&d, repo.path(), json!({"prompt": "p", "name": "vanish"})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    d.wait_status(&id, "running", WAIT).await;
    let mut d = d;
    d.kill();
    // While no daemon runs, the backend loses the sandbox.
    std::fs::remove_dir_all(home.path().join("sandboxes").join("vanish")).unwrap();
    let d = TestDaemon::start(&home);
    // The very first answer of the new daemon already knows (no polling).
    let (code, s) = d.get(&format!("/api/sessions/{id}")).await;
    assert_eq!(code, 200, "{s}");
    assert_eq!(s["status"], "failed", "{s}\n{}", d.log());
    assert_eq!(s["status_reason"], "the sandbox no longer exists", "{s}");
}

#[tokio::test]
async fn a_plugin_panic_marks_it_faulted_in_the_daemons_plugin_list_and_it_keeps_working() {
    let home = local_home("panic_on = \"hibernate\"", AGENT);
    let d = TestDaemon::start(&home);
    let plugin = |list: &Value, name: &str| -> Value {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {list:#}"))
    };
    let (code, list) = d.get("/api/plugins").await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(plugin(&list, "local")["status"], "loaded", "{list:#}");
    assert_eq!(plugin(&list, "local")["fault"], Value::Null, "{list:#}");

    let repo = git_repo();
    let s = create(&d, repo.path(), json!({"prompt": "p"})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    d.wait_status(&id, "running", WAIT).await;
    let (code, e) = d
        .post(&format!("/api/sessions/{id}/hibernate"), &json!({}))
        .await;
    assert_eq!(code, 502, "{e}");

    let (_, list) = d.get("/api/plugins").await;
    let local = plugin(&list, "local");
    assert_eq!(local["status"], "faulted", "{local:#}");
    assert_eq!(local["fault"]["panics"], 1, "{local:#}");
    assert_eq!(local["fault"]["last_op"], "hibernate", "{local:#}");
    assert_eq!(
        local["fault"]["last_message"], "fixture panic_on = \"hibernate\"",
        "{local:#}"
    );
    assert!(
        local["reason"]
            .as_str()
            .unwrap()
            .starts_with("panicked in hibernate: fixture panic_on = \"hibernate\" (1 panic"),
        "{local:#}"
    );
    // A plugin that never panicked stays `loaded`.
    let sprites = plugin(&list, "sprites");
    assert_eq!(sprites["status"], "loaded", "{sprites:#}");
    assert_eq!(sprites["fault"], Value::Null, "{sprites:#}");

    // Faulted is informational: the same plugin serves a whole new session.
    let s2 = create(&d, repo.path(), json!({"prompt": "again"})).await;
    let id2 = s2["id"].as_str().unwrap().to_owned();
    d.wait_status(&id2, "running", WAIT).await;
    let (_, list) = d.get("/api/plugins").await;
    assert_eq!(plugin(&list, "local")["fault"]["panics"], 1, "{list:#}");
    assert_eq!(d.get("/api/health").await.0, 200);
}

/// An agent without hooks that dies within its first seconds fails the create with its last
/// output and keeps the sandbox; `restart` starts it again (failing again while the cause
/// stays), and a running agent's `restart --fresh` starts it anew with the prompt.
#[tokio::test]
async fn an_agent_that_exits_at_start_fails_the_create_and_restart_starts_it_again() {
    let agent = r#"
[agent]
preset = "custom"
command = ["sh", "-c", "if [ -f \"$HOME/fixed\" ]; then echo agent-up:$0; exec cat; fi; echo 'cannot start: no fixed file' >&2; exit 3"]
prompt_args = ["{prompt}"]
resume_args = ["resume", "{resume}"]
continue_args = ["resume", "latest"]
"#;
    let home = local_home("", agent);
    let d = TestDaemon::start(&home);
    let repo = git_repo();
    let s = create(&d, repo.path(), json!({"prompt": "go", "name": "dies"})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let failed = d.wait_status(&id, "failed", WAIT).await;
    let reason = failed["status_reason"].as_str().unwrap();
    assert!(
        reason.contains("the agent exited with code 3 before it started working"),
        "{reason}"
    );
    assert!(reason.contains("cannot start: no fixed file"), "{reason}");
    assert!(reason.contains("clauderon restart dies"), "{reason}");
    assert_eq!(failed["agent"], json!({"state": "exited", "code": 3}));
    assert!(
        failed["instance_id"].is_string(),
        "the sandbox stays: {failed:#}"
    );

    // Still broken: restart says why (502 agent_exited), the session stays failed.
    let (code, v) = d.post("/api/sessions/dies/restart", &json!({})).await;
    assert_eq!(code, 502, "{v}");
    assert_eq!(v["error"]["code"], "agent_exited");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot start: no fixed file"),
        "{v}"
    );
    // Fixed: restart brings it back (continuing its conversation) and the session runs.
    std::fs::write(home.path().join("sandboxes/dies/home/fixed"), "").unwrap();
    let (code, v) = d.post("/api/sessions/dies/restart", &json!({})).await;
    assert_eq!(code, 200, "{v}\n{}", d.log());
    assert_eq!(v["session"]["status"], "running");
    assert_eq!(v["session"]["agent"]["state"], "running");
    let out = d.wait_output(&id, "agent-up:resume").await;
    assert!(out.contains("agent-up:resume"), "{out}");
    // A fresh restart stops the running agent and starts one with the prompt.
    let (code, v) = d
        .post("/api/sessions/dies/restart", &json!({"fresh": true}))
        .await;
    assert_eq!(code, 200, "{v}");
    d.wait_output(&id, "agent-up:go").await;
    let (code, v) = d
        .post_raw("/api/sessions/dies/restart", "{\"fresh\": 1}")
        .await;
    assert_eq!(code, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("fresh"),
        "{v}"
    );
}

/// The size of the store on disk: the database file and its write-ahead log.
fn store_bytes(home: &TempHome) -> u64 {
    ["db.sqlite", "db.sqlite-wal"]
        .iter()
        .map(|f| std::fs::metadata(home.path().join(f)).map_or(0, |m| m.len()))
        .sum()
}

/// A chatty agent (three bursts of 8 MiB of output) under a small retention: the session's
/// log stays within its limits (plus at most one trimming interval) and the store file stops
/// growing after the first burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_stops_growing_under_a_chatty_agent() {
    let agent = r#"[agent]
preset = "custom"
command = ["sh", "-c", "i=0; while [ $i -lt 3 ]; do yes 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ | head -c 8388608; echo; echo BURST-$i-DONE; while [ ! -e GO_DIR/go-$i ]; do [ -d GO_DIR ] || exit 0; sleep 0.05; done; i=$((i+1)); done; exec cat"]
prompt_args = ["{prompt}"]
"#;
    let home = local_home("", agent);
    let mut cfg = std::fs::read_to_string(home.path().join("config.toml")).unwrap();
    cfg = cfg
        .replace(
            "default_backend = \"local\"\n",
            "default_backend = \"local\"\n[sessions]\nkeep_events = 200\nkeep_output = \"1MiB\"\n",
        )
        .replace("GO_DIR", home.path().to_str().unwrap());
    std::fs::write(home.path().join("config.toml"), cfg).unwrap();
    let d = TestDaemon::start(&home);
    let repo = git_repo();
    let s = create(&d, repo.path(), json!({"prompt": "talk", "name": "chatty"})).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let sid: clauderon::session::SessionId = id.parse().unwrap();
    let db = clauderon::store::Db::open(&home.path().join("db.sqlite")).unwrap();

    let mut sizes = Vec::new();
    for burst in 0..3 {
        d.wait_output(&id, &format!("BURST-{burst}-DONE")).await;
        let (events, output) = db.event_footprint(sid).unwrap();
        let max_events = 200 + u64::from(clauderon::daemon::bus::TRIM_EVERY_EVENTS);
        let max_output = (1 << 20) + clauderon::daemon::bus::TRIM_EVERY_BYTES + (128 << 10);
        assert!(events <= max_events, "burst {burst}: {events} events");
        assert!(
            output <= max_output,
            "burst {burst}: {output} bytes of output"
        );
        sizes.push(store_bytes(&home));
        std::fs::write(home.path().join(format!("go-{burst}")), "").unwrap();
    }
    // (The agent ends by itself once the home is gone: local sandboxes outlive the daemon.)
    // 24 MiB of output went through (32 MiB as stored base64); the store holds a bounded
    // window of it, and the third burst did not make the file grow past the second's.
    assert!(sizes[2] < 16 << 20, "{sizes:?}");
    assert!(sizes[2] <= sizes[1] + (1 << 20), "{sizes:?}");
}

/// `GET /api/sessions` pages (`limit`, `after` = the previous page's `next`) and its lean
/// `view=summary`, over sessions seeded into the store before the daemon starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_lists_page_and_summarize() {
    use clauderon::session::{Event, SessionId, SessionName, SessionOptions};
    let home = TempHome::new();
    let mut names = Vec::new();
    {
        let mut db = clauderon::store::Db::open(&home.path().join("db.sqlite")).unwrap();
        for i in 0..5 {
            let id = SessionId::new();
            let name = format!("paged-{i}");
            db.insert_session(&clauderon::store::NewSession {
                id,
                name: SessionName::new(&name).unwrap(),
                backend: "absent".into(),
                repository: "/src/repo".into(),
                branch: Some(format!("clauderon/{name}")),
                prompt: "a long prompt that a summary leaves out".into(),
                options: SessionOptions::default(),
            })
            .unwrap();
            db.apply_event(id, Event::Created, None).unwrap();
            if i == 2 {
                db.apply_event(id, Event::DeleteRequested, None).unwrap();
                db.apply_event(id, Event::Deleted, None).unwrap();
            } else {
                names.push(name);
            }
            // Distinct creation times keep the order obvious.
            std::thread::sleep(Duration::from_millis(3));
        }
    }
    let d = TestDaemon::start(&home);
    let pages = |query: &'static str| {
        let d = &d;
        async move {
            let mut seen = Vec::new();
            let mut after = String::new();
            for _ in 0..10 {
                let (code, v) = d
                    .get(&format!("/api/sessions?{query}&limit=2&after={after}"))
                    .await;
                assert_eq!(code, 200, "{v}");
                let rows = v["sessions"].as_array().unwrap();
                assert!(rows.len() <= 2);
                seen.extend(rows.iter().cloned());
                match v["next"].as_str() {
                    Some(n) => after = n.to_owned(),
                    None => return seen,
                }
            }
            panic!("more pages than sessions: {seen:?}");
        }
    };
    let summaries = pages("view=summary").await;
    let got: Vec<&str> = summaries
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(got, names);
    let s = &summaries[0];
    assert_eq!(s["status"], "running");
    assert_eq!(s["branch"], "clauderon/paged-0");
    assert!(
        s.get("prompt").is_none() && s.get("options").is_none(),
        "{s}"
    );
    assert!(
        s["created_at"].is_string() && s["updated_at"].is_string(),
        "{s}"
    );
    let full = pages("view=full").await;
    assert_eq!(full.len(), 4);
    assert_eq!(full[0]["prompt"], "a long prompt that a summary leaves out");
    assert_eq!(pages("view=summary&all=true").await.len(), 5);
    // Without `limit`, everything in one answer and no `next`.
    let (_, v) = d.get("/api/sessions?view=summary").await;
    assert_eq!(v["sessions"].as_array().unwrap().len(), 4);
    assert!(v.get("next").is_none(), "{v}");

    for (query, says) in [
        ("limit=0", "`limit` must be between 1 and"),
        ("after=nonsense", "`after` is `nonsense`, not a cursor"),
        ("view=everything", "invalid query string"),
    ] {
        let (code, v) = d.get(&format!("/api/sessions?{query}")).await;
        assert_eq!(code, 400, "{query}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(says), "{query}: {msg}");
    }
}
