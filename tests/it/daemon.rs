//! The daemon through the real binary over real HTTP/WebSocket on loopback: files, the guard,
//! bad input, the plugins and credentials routes, and (with the local-process fixture backend)
//! the whole session engine.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::artifacts::artifacts;
use crate::support::daemon::TestDaemon;
use crate::support::home::TempHome;

/// A git repository with one commit (the `repo` of a create request).
fn git_repo() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("clauderon-repo-")
        .tempdir()
        .unwrap();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["commit", "-q", "--allow-empty", "-m", "first"][..],
    ] {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir.path())
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }
    dir
}

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
            "\"prompt\" is empty",
        ),
        (
            json!({"repo": repo_s, "prompt": "p", "name": "Bad Name"}),
            "session name",
        ),
        (
            json!({"repo": repo_s, "prompt": "p", "options": {"memory_limit": "lots"}}),
            "--memory-limit",
        ),
        (
            json!({"repo": repo_s, "prompt": "p", "options": {"hibernation_timeout": "3m"}}),
            "--hibernation-timeout",
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
