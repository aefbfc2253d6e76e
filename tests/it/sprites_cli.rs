//! The Sprites backend end to end: the real `clauderon` binary and daemon, the real Sprites
//! plugin found beside the executable, the demo agent, and the emulator over loopback.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::Value;

use crate::support::attached::Attached;
use crate::support::daemon::TestDaemon;
use crate::support::emulator::Emulator;
use crate::support::git::{git, git_repo};
use crate::support::home::{TempHome, assert_exit};
use crate::support::sprites_plugin::visible_dir;

/// A home whose default backend is `sprites` pointed at `emu`, with the demo agent configured and
/// the emulator's token stored as the `sprites_api_key` secret file.
pub(crate) fn sprites_home(emu: &Emulator) -> TempHome {
    let home = TempHome::new();
    home.write_secret("sprites_api_key", emu.token(), 0o600);
    home.write_config(&format!(
        "default_backend = \"sprites\"\n[server]\nlisten = \"127.0.0.1:0\"\n{}\
         [sprites]\napi_url = \"{}\"\nhibernate_wait_seconds = 20\n",
        crate::support::demo_agent_toml(),
        emu.base_url()
    ));
    home
}

/// Pushes `repo`'s main into a new bare `origin.git` under `dir` (a directory the sprite can
/// read) and makes it `repo`'s origin: a clone in the sprite can then come from the origin.
fn add_visible_origin(repo: &Path, dir: &Path) {
    let origin = dir.join("origin.git");
    let origin = origin.to_str().unwrap();
    git(Path::new("/"), &["init", "-q", "--bare", origin]);
    git(repo, &["remote", "add", "origin", origin]);
    git(repo, &["push", "-q", "origin", "main"]);
    git(repo, &["fetch", "-q", "origin"]);
}

/// `clauderon create --plan-mode` of session `name` on `repo` (which has a visible origin);
/// asserts it succeeded and cloned from the origin, and returns the session's log.
fn create_from_origin_in_plan_mode(
    home: &TempHome,
    d: &TestDaemon,
    repo: &Path,
    name: &str,
) -> String {
    let run = home.run(&[
        "create",
        "--repo",
        repo.to_str().unwrap(),
        "--prompt",
        "hi",
        "--name",
        name,
        "--plan-mode",
    ]);
    assert_exit(&run, 0);
    let log = logs(home, name);
    assert!(
        log.contains("[clone] cloned from the origin"),
        "{log}\n{}",
        d.log()
    );
    log
}

async fn sprite_names(emu: &Emulator) -> Vec<String> {
    let sprites = emu.sprites().await;
    sprites
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The installation id the home's daemon made.
fn installation_id(home: &TempHome) -> String {
    std::fs::read_to_string(home.path().join("installation-id"))
        .unwrap()
        .trim()
        .to_owned()
}

fn logs(home: &TempHome, name: &str) -> String {
    let run = home.run(&["logs", name]);
    assert_exit(&run, 0);
    run.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sprites_session_through_the_cli_and_daemon() {
    let emu = Emulator::start_args(&["--idle-to-warm", "500ms", "--warm-to-cold", "1s"]);
    let home = sprites_home(&emu);
    let d = TestDaemon::start(&home);
    let repo = git_repo();
    let repo_s = repo.path().to_str().unwrap();

    // Create: a sprite, the repository (it has no origin: shipped as a bundle), the demo agent.
    let run = home.run(&[
        "create", "--repo", repo_s, "--prompt", "hello", "--name", "demo", "--model", "m1",
    ]);
    assert_exit(&run, 0);
    assert!(
        run.stdout
            .contains("session demo is running (backend sprites)"),
        "{}\n{}",
        run.stdout,
        d.log()
    );
    let sprites = sprite_names(&emu).await;
    assert_eq!(sprites.len(), 1, "{sprites:?}");
    assert!(sprites[0].starts_with("demo-"), "{sprites:?}");
    // No idle time configured anywhere: the plugin's declared default (30m) applies.
    assert!(
        d.log()
            .contains("the session hibernates after 30m without activity"),
        "{}",
        d.log()
    );
    let log = logs(&home, "demo");
    for needle in ["[clone] ", "demo-agent: prompt: hello", "model=m1"] {
        assert!(log.contains(needle), "{needle}:\n{log}");
    }

    // Attach: the agent answers; Ctrl-] detaches and leaves it running.
    let mut a = Attached::start(&home, "demo");
    a.send(b"ping\n");
    a.expect("you said: ping");
    a.send(&[0x1d]);
    let (code, err) = a.finish();
    assert_eq!(code, Some(0), "{err}");

    // Hibernate: Hibernated in clauderon, asleep in the emulator.
    let run = home.run(&["hibernate", "demo"]);
    assert_exit(&run, 0);
    let st = home.run(&["status", "demo", "--json"]).json();
    assert_eq!(st["status"], "hibernated", "{st:#}");
    let emu_state = emu.state(&sprites[0]).await;
    assert_ne!(emu_state["state"], "running", "{emu_state}");

    // Wake, then attach: the agent's process was stopped, so it is started again resuming.
    let run = home.run(&["wake", "demo"]);
    assert_exit(&run, 0);
    assert!(
        run.stdout.contains("demo is running (woke in "),
        "{}",
        run.stdout
    );
    let mut a = Attached::start(&home, "demo");
    a.send(b"back\n");
    a.expect("you said: back");
    a.send(&[0x1d]);
    let (code, err) = a.finish();
    assert_eq!(code, Some(0), "{err}");
    let log = logs(&home, "demo");
    assert!(
        log.contains("demo-agent: resuming the previous conversation"),
        "{log}"
    );

    // Checkpoints through the CLI.
    let cp = home.create_checkpoint("demo", "first one");
    let run = home.run(&["checkpoint", "restore", "demo", &cp]);
    assert_exit(&run, 0);

    // Reconcile: a sprite labelled as ours that no session owns is listed, then deleted; the
    // session's own sprite is left alone.
    let made = emu
        .http_client()
        .post(format!("{}/v1/sprites", emu.base_url()))
        .bearer_auth(emu.token())
        .json(&serde_json::json!({"name": "orphan-1", "labels": [
            "clauderon=1",
            "clauderon.session=00000000-dead",
            format!("clauderon.installation={}", installation_id(&home)),
        ]}))
        .send()
        .await
        .unwrap();
    assert!(made.status().is_success());
    let run = home.run(&["reconcile", "--json"]);
    assert_exit(&run, 0);
    let orphans = run.json()["orphans"].clone();
    assert_eq!(orphans.as_array().unwrap().len(), 1, "{orphans:#}");
    assert_eq!(orphans[0]["instance"], "orphan-1");
    let run = home.run(&["reconcile", "--delete"]);
    assert_exit(&run, 0);
    assert!(
        run.stdout.contains("orphan-1") && run.stdout.contains("deleted"),
        "{}",
        run.stdout
    );
    assert_eq!(sprite_names(&emu).await, sprites);

    // Delete: the sprite is gone from the emulator.
    let run = home.run(&["delete", "demo", "--yes"]);
    assert_exit(&run, 0);
    assert!(sprite_names(&emu).await.is_empty());

    // --print: the demo agent runs to completion and its output is streamed.
    let run = home.run(&[
        "create", "--repo", repo_s, "--prompt", "print me", "--name", "p1", "--print",
    ]);
    assert_exit(&run, 0);
    assert!(
        run.stdout.contains("demo-agent: prompt: print me"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("demo-agent: done"), "{}", run.stdout);
}

/// The sprite of a session (found by the emulator's list: one sprite whose name starts with
/// `<name>-`).
async fn sprite_of(emu: &Emulator, name: &str) -> String {
    let prefix = format!("{name}-");
    let mine: Vec<String> = sprite_names(emu)
        .await
        .into_iter()
        .filter(|s| s.starts_with(&prefix))
        .collect();
    assert_eq!(mine.len(), 1, "one sprite for {name}: {mine:?}");
    mine[0].clone()
}

/// Makes `n` commits on the checked-out branch of the sprite's workspace, through the
/// emulator's exec.
async fn commit_in_sprite(emu: &Emulator, sprite: &str, n: usize) {
    for i in 0..n {
        let msg = format!("work done in the sandbox {i}");
        let (out, code) = emu
            .exec_http(
                sprite,
                &[
                    "git",
                    "-C",
                    "/home/sprite/workspace",
                    "-c",
                    "user.name=agent",
                    "-c",
                    "user.email=agent@example.invalid",
                    "commit",
                    "-q",
                    "--allow-empty",
                    "-m",
                    &msg,
                ],
            )
            .await;
        assert_eq!(code, 0, "git commit in {sprite}: {out}");
    }
}

/// The `progress` events of a session, through the daemon's JSON events page.
async fn progress_events(d: &TestDaemon, name: &str) -> Vec<Value> {
    let (code, page) = d.get(&format!("/api/sessions/{name}/events")).await;
    assert_eq!(code, 200, "{page}");
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "progress")
        .map(|e| e["data"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sprites_plugin_progress_reaches_logs_and_events() {
    let emu = Emulator::start_args(&["--idle-to-warm", "500ms", "--warm-to-cold", "1s"]);
    let home = sprites_home(&emu);
    let d = TestDaemon::start(&home);
    let repo = git_repo();
    let repo_s = repo.path().to_str().unwrap();

    // A 429 on the sprite create: the create waits as Retry-After says, and says so.
    emu.add_fault(
        serde_json::json!({"kind": "rate_limit", "method": "POST", "path": "/v1/sprites",
        "times": 1, "retry_after": 2}),
    )
    .await;
    let started = std::time::Instant::now();
    // Plan mode: the demo agent commits nothing, so the only unpushed commits are the test's.
    let run = home.run(&[
        "create",
        "--repo",
        repo_s,
        "--prompt",
        "hi",
        "--name",
        "rl",
        "--plan-mode",
    ]);
    assert_exit(&run, 0);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "the create waited out Retry-After: {:?}",
        started.elapsed()
    );
    let log = logs(&home, "rl");
    assert!(
        log.contains("[create] waiting 2s (rate limited)"),
        "{log}\n{}",
        d.log()
    );
    // The clone says how it was made: this repository has no origin, so a bundle.
    assert!(
        log.contains("[clone] shipping a git bundle from the host (the repository has no origin)"),
        "{log}"
    );
    assert!(log.contains("[clone] cloned from the bundle"), "{log}");
    let events = progress_events(&d, "rl").await;
    let wait = events
        .iter()
        .find(|e| e["stage"] == "create" && e["wait_seconds"].is_number())
        .unwrap_or_else(|| panic!("a rate-limit wait event: {events:#?}"));
    assert_eq!(wait["wait_seconds"].as_f64(), Some(2.0), "{wait}");

    // A slow wake shows progress while it takes.
    let run = home.run(&["hibernate", "rl"]);
    assert_exit(&run, 0);
    let sprite = sprite_of(&emu, "rl").await;
    emu.force_state(&sprite, "cold").await;
    emu.add_fault(
        serde_json::json!({"kind": "slow_wake", "path": format!("/v1/sprites/{sprite}"),
        "ms": 2500, "times": 1}),
    )
    .await;
    // The agent started again after the wake loses its socket once: the plugin's reconnect
    // events show as agent progress. The wake first re-opens the credential proxy's tunnel (an
    // exec socket that recovers from a drop by itself) and reads the agent's files in the
    // sandbox (an exec whose ~90 bytes of output stay under the limit), so the fault is armed
    // for those three execs; the agent's first lines pass 100 bytes.
    emu.add_fault(
        serde_json::json!({"kind": "drop_ws", "path": format!("/v1/sprites/{sprite}/exec*"),
        "after_bytes": 100, "times": 3}),
    )
    .await;
    // On a terminal, `wake` shows the wake's own progress live (and none of the history).
    let exe = crate::support::artifacts::artifacts().clauderon();
    let mut t = Attached::on_a_tty(&home, &format!("{} wake rl", exe.display()));
    t.expect(&format!("[wake] still waking sprite {sprite} ("));
    t.expect("rl is running (woke in ");
    assert!(!t.seen.contains("rate limited"), "{}", t.seen);
    let (code, err) = t.finish();
    assert_eq!(code, Some(0), "{err}");
    let log = logs(&home, "rl");
    assert!(
        log.contains(&format!("[wake] waking sprite {sprite} (cold)")),
        "{log}"
    );
    assert!(
        log.contains(&format!("[wake] still waking sprite {sprite} (")),
        "{log}"
    );
    assert!(
        log.contains(&format!("[wake] sprite {sprite} is awake after ")),
        "{log}"
    );

    // The socket drops at the agent's next output (after 40 bytes went through): an answer.
    let mut a = Attached::start(&home, "rl");
    a.send(b"ping\n");
    a.expect("you said: ping");
    a.send(&[0x1d]);
    let (code, err) = a.finish();
    assert_eq!(code, Some(0), "{err}");
    // The event is recorded by the daemon's agent task, maybe just after the answer: bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let log = logs(&home, "rl");
        if log.contains("[agent] reconnected") {
            assert!(
                log.contains("[agent] reconnecting (attempt: 1, reason: "),
                "{log}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reconnect shown within 60 s:\n{log}\n{}",
            d.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // A commit made in the sandbox beyond the base commit: delete warns about it.
    commit_in_sprite(&emu, &sprite, 1).await;
    let run = home.run(&["delete", "rl", "--yes"]);
    assert_exit(&run, 0);
    assert!(
        run.stderr
            .contains("warning: 1 unpushed commit on branch clauderon/rl of session rl"),
        "{}",
        run.stderr
    );
    assert!(sprite_names(&emu).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sprites_delete_warns_about_unpushed_commits() {
    let emu = Emulator::start();
    let home = sprites_home(&emu);
    let d = TestDaemon::start(&home);
    // An origin the sprite can reach (read-only), which has the base commit: a remote clone.
    let visible = visible_dir();
    let repo = git_repo();
    add_visible_origin(repo.path(), &visible);

    // Plan mode: the demo agent commits nothing.
    create_from_origin_in_plan_mode(&home, &d, repo.path(), "up");
    let sprite = sprite_of(&emu, "up").await;

    // Nothing unpushed: no warning; without --yes on a non-terminal, a refusal naming --yes.
    let (code, u) = d.get("/api/sessions/up/unpushed").await;
    assert_eq!(code, 200, "{u}");
    assert_eq!(
        (u["checked"].as_bool(), u["count"].as_u64()),
        (Some(true), Some(0)),
        "{u}"
    );
    let run = home.run(&["delete", "up"]);
    assert_exit(&run, 2);
    assert!(run.stderr.contains("pass --yes"), "{}", run.stderr);
    assert!(!run.stderr.contains("unpushed"), "{}", run.stderr);

    // Two commits in the sandbox that the origin lacks: the refusal warns about them first.
    commit_in_sprite(&emu, &sprite, 2).await;
    let (code, u) = d.get("/api/sessions/up/unpushed").await;
    assert_eq!(code, 200, "{u}");
    assert_eq!(u["branch"], "clauderon/up", "{u}");
    assert_eq!(
        (u["checked"].as_bool(), u["count"].as_u64()),
        (Some(true), Some(2)),
        "{u}"
    );
    let run = home.run(&["delete", "up"]);
    assert_exit(&run, 2);
    assert!(
        run.stderr
            .contains("warning: 2 unpushed commits on branch clauderon/up of session up"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("pass --yes"), "{}", run.stderr);
    assert_eq!(
        sprite_names(&emu).await,
        vec![sprite.clone()],
        "not deleted"
    );

    // With --yes: the warning, then the delete.
    let run = home.run(&["delete", "up", "--yes"]);
    assert_exit(&run, 0);
    assert!(run.stderr.contains("2 unpushed commits"), "{}", run.stderr);
    assert!(sprite_names(&emu).await.is_empty());
    let _ = std::fs::remove_dir_all(&visible);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sprites_print_gives_the_agent_stdin_eof() {
    let emu = Emulator::start();
    let home = sprites_home(&emu);
    // An agent that reads stdin to its end before answering, like `claude -p`.
    let config = std::fs::read_to_string(home.path().join("config.toml")).unwrap();
    let agent_start = config.find("[agent]").unwrap();
    let agent_end = config.find("[sprites]").unwrap();
    let agent = "[agent]\npreset = \"custom\"\n\
        command = [\"sh\", \"-c\", \"cat >/dev/null; echo \\\"stdin closed; prompt: $1\\\"; exit 7\"]\n\
        prompt_args = [\"{prompt}\"]\nprint_args = [\"--print\"]\n";
    home.write_config(&format!(
        "{}{agent}{}",
        &config[..agent_start],
        &config[agent_end..]
    ));
    let _d = TestDaemon::start(&home);
    let repo = git_repo();
    let run = home.run_timeout(
        &[
            "create",
            "--repo",
            repo.path().to_str().unwrap(),
            "--prompt",
            "summarise",
            "--name",
            "eof",
            "--print",
        ],
        std::time::Duration::from_secs(120),
    );
    assert_exit(&run, 7);
    assert!(
        run.stdout.contains("stdin closed; prompt: summarise"),
        "{}",
        run.stdout
    );
}

/// Appends `[sessions] hibernation_timeout = T` to the home's config.
pub(crate) fn set_hibernation_timeout(home: &TempHome, t: &str) {
    let config = std::fs::read_to_string(home.path().join("config.toml")).unwrap();
    home.write_config(&format!(
        "{config}\n[sessions]\nhibernation_timeout = \"{t}\"\n"
    ));
}

/// Appends `lines` to the `[sprites]` table (the last table `sprites_home` writes).
pub(crate) fn add_sprites_config(home: &TempHome, lines: &str) {
    let config = std::fs::read_to_string(home.path().join("config.toml")).unwrap();
    assert!(config.contains("[sprites]"), "{config}");
    home.write_config(&format!("{config}{lines}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sprites_idle_sessions_hibernate_and_attach_wakes_them() {
    let emu = Emulator::start_args(&["--idle-to-warm", "500ms", "--warm-to-cold", "1s"]);
    let home = sprites_home(&emu);
    // The configured idle time (the flag allows 5m at least; config any duration).
    set_hibernation_timeout(&home, "3s");
    let d = TestDaemon::start(&home);
    let repo = git_repo();
    let repo_s = repo.path().to_str().unwrap();

    // The memory limit goes into the sprite's resources policy (the emulator enforces it on
    // what runs in it); the CPU limit is not applied on Sprites, and create says so.
    let run = home.run(&[
        "create",
        "--repo",
        repo_s,
        "--prompt",
        "nap",
        "--name",
        "idle",
        "--cpu-limit",
        "2",
        "--memory-limit",
        "512M",
    ]);
    assert_exit(&run, 0);
    let sprite = sprite_of(&emu, "idle").await;
    let entry = emu.sprite(&sprite).await.expect("the session's sprite");
    assert!(entry.get("config").is_none(), "{entry:#}");
    let policy = emu
        .get_json(&format!("/v1/sprites/{sprite}/policy/resources"))
        .await;
    assert_eq!(policy["memory"]["limit_mb"], 512, "{policy}");
    let log = logs(&home, "idle");
    assert!(
        log.contains(
            "[create] --cpu-limit 2 is not applied: sprites.dev sizes a sprite's CPUs itself"
        ),
        "{log}"
    );
    // The agent's start is shown as the plugin reports it (the stream op has an event sink).
    assert!(
        log.contains("[agent] starting `/home/sprite/.clauderon/bin/clauderon-demo-agent"),
        "{log}"
    );

    // `never` keeps a session awake whatever the backend's default.
    let run = home.run(&[
        "create",
        "--repo",
        repo_s,
        "--prompt",
        "stay",
        "--name",
        "awake",
        "--hibernation-timeout",
        "never",
    ]);
    assert_exit(&run, 0);
    // Detaching (Ctrl-]) leaves the agent running: attaching again finds the same agent.
    let mut a = Attached::start(&home, "awake");
    a.send(b"one\n");
    a.expect("you said: one");
    a.send(&[0x1d]);
    let (code, err) = a.finish();
    assert_eq!(code, Some(0), "{err}");
    let mut a = Attached::start(&home, "awake");
    a.send(b"two\n");
    a.expect("you said: two");
    a.send(&[0x1d]);
    let (code, err) = a.finish();
    assert_eq!(code, Some(0), "{err}");
    let log = logs(&home, "awake");
    assert!(!log.contains("starting it again with resume"), "{log}");
    assert_eq!(log.matches("demo-agent: prompt: stay").count(), 1, "{log}");

    // Nobody attached and no output: the idle session hibernates by itself; its agent is
    // stopped and its sprite goes to sleep.
    let limit = std::time::Duration::from_secs(90);
    d.wait_status("idle", "hibernated", limit).await;
    let log = logs(&home, "idle");
    for needle in [
        "[hibernate] hibernating (idle timeout)",
        "[hibernate] stopping the agent (",
    ] {
        assert!(log.contains(needle), "{needle}:\n{log}");
    }
    let st = home.run(&["status", "idle", "--json"]).json();
    assert_eq!(st["status"], "hibernated", "{st:#}");
    assert_ne!(emu.state(&sprite).await["state"], "running");
    assert_eq!(
        d.get("/api/sessions/awake").await.1["status"],
        "running",
        "a `never` session stays awake"
    );

    // Attaching wakes it and starts the agent again, resuming its conversation. The restarted
    // agent's first lines come before the attach subscribes: the daemon replays its recent
    // output, so the attach shows them.
    let mut a = Attached::start(&home, "idle");
    a.expect("demo-agent: resuming the previous conversation");
    a.send(b"back\n");
    a.expect("you said: back");
    let log = logs(&home, "idle");
    assert!(
        log.contains("demo-agent: resuming the previous conversation"),
        "{log}"
    );
    assert!(
        log.contains("[agent] the agent's process is gone; starting it again"),
        "{log}"
    );
    assert!(
        log.contains(&format!("[wake] waking sprite {sprite}")),
        "{log}"
    );
    // Ctrl-C is a byte for the agent's terminal: the agent gets SIGINT and exits.
    a.send(&[0x03]);
    let (code, err) = a.finish();
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("exited with code 130"), "{err}");
    let (limits, code) = emu.exec_http(&sprite, &["sh", "-c", "ulimit -d"]).await;
    assert_eq!((limits.trim(), code), ("524288", 0), "RLIMIT_DATA in KiB");

    // The wake route reports how long waking took.
    let (code, h) = d
        .post("/api/sessions/awake/hibernate", &serde_json::json!({}))
        .await;
    assert_eq!(code, 200, "{h}");
    let (code, w) = d
        .post("/api/sessions/awake/wake", &serde_json::json!({}))
        .await;
    assert_eq!(code, 200, "{w}");
    assert_eq!(w["session"]["status"], "running", "{w}");
    assert!(w["elapsed_ms"].is_u64(), "{w}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sprites_clone_depth_checkpoint_restore_and_failed_creates() {
    let emu = Emulator::start();
    let home = sprites_home(&emu);
    add_sprites_config(&home, "clone_depth = 1\n");
    let d = TestDaemon::start(&home);
    // An origin the sprite can reach (read-only) with two commits: a remote clone, one deep.
    let visible = visible_dir();
    let repo = git_repo();
    std::fs::write(repo.path().join("second.txt"), "two\n").unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "second"]);
    add_visible_origin(repo.path(), &visible);

    // Plan mode: the demo agent commits nothing, so HEAD stays the base commit.
    let log = create_from_origin_in_plan_mode(&home, &d, repo.path(), "cp");
    let repo_s = repo.path().to_str().unwrap();
    assert!(log.contains("plan=yes"), "the [agent] plan_args: {log}");
    let sprite = sprite_of(&emu, "cp").await;
    let ws = "/home/sprite/workspace";
    let (count, code) = emu
        .exec_http(&sprite, &["git", "-C", ws, "rev-list", "--count", "HEAD"])
        .await;
    assert_eq!(
        (count.trim(), code),
        ("1", 0),
        "clone_depth = 1 was honoured"
    );
    let (head, _) = emu
        .exec_http(&sprite, &["git", "-C", ws, "rev-parse", "HEAD"])
        .await;
    let head = head.trim().to_owned();

    // A checkpoint records the workspace's git HEAD; a restore rolls the files back, after an
    // automatic safety checkpoint, and starts the agent again.
    let made = home
        .run(&["checkpoint", "create", "cp", "clean", "--json"])
        .json();
    assert_eq!(made["git_head"], head.as_str(), "{made:#}");
    let cp = made["id"].as_str().unwrap().to_owned();
    let (_, code) = emu
        .exec_http(
            &sprite,
            &[
                "sh",
                "-c",
                &format!("echo changed > {ws}/README.md && echo new > {ws}/new.txt"),
            ],
        )
        .await;
    assert_eq!(code, 0);
    let restored = home
        .run(&["checkpoint", "restore", "cp", &cp, "--json"])
        .json();
    assert_eq!(restored["session"]["status"], "running", "{restored:#}");
    let safety = restored["safety_checkpoint"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{restored:#}"))
        .to_owned();
    let (readme, code) = emu
        .exec_http(&sprite, &["cat", &format!("{ws}/README.md")])
        .await;
    assert_eq!((readme.as_str(), code), ("original\n", 0));
    let (_, code) = emu
        .exec_http(&sprite, &["test", "-e", &format!("{ws}/new.txt")])
        .await;
    assert_eq!(code, 1, "new.txt is gone after the restore");
    let cps = home.run(&["checkpoint", "list", "cp", "--json"]).json();
    let auto = cps
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == safety.as_str())
        .unwrap_or_else(|| panic!("{cps:#}"));
    assert!(
        auto["comment"]
            .as_str()
            .unwrap()
            .starts_with("automatic safety checkpoint before restoring"),
        "{auto}"
    );
    assert_eq!(auto["git_head"], head.as_str(), "{auto}");
    let log = logs(&home, "cp");
    assert!(log.contains("[agent] restarting the agent"), "{log}");
    assert!(
        log.contains("demo-agent: resuming the previous conversation"),
        "{log}"
    );
    // The safety checkpoint undoes the restore: the changed files come back.
    let run = home.run(&["checkpoint", "restore", "cp", &safety]);
    assert_exit(&run, 0);
    let (readme, _) = emu
        .exec_http(&sprite, &["cat", &format!("{ws}/README.md")])
        .await;
    assert_eq!(readme, "changed\n");
    let _ = std::fs::remove_dir_all(&visible);

    // A create whose sprite cannot be prepared: the plugin removes the sprite, the session is
    // failed with the reason.
    emu.add_fault(
        serde_json::json!({"kind": "error", "status": 403, "method": "PUT",
        "path": "/v1/sprites/*/fs/*", "body": {"error": "injected"}, "times": 1}),
    )
    .await;
    let run = home.run(&[
        "create", "--repo", repo_s, "--prompt", "p", "--name", "doomed",
    ]);
    assert_exit(&run, 1);
    assert!(
        run.stderr.contains("session doomed failed: ") && run.stderr.contains("session marker"),
        "{}",
        run.stderr
    );
    assert_eq!(
        sprite_names(&emu).await,
        vec![sprite.clone()],
        "no sprite left"
    );
    let st = home.run(&["status", "doomed", "--json"]).json();
    assert_eq!(st["status"], "failed", "{st:#}");

    // A create that fails after its sprite exists (every command in it is refused, so the
    // clone fails): the host deletes the sprite, the session is failed with the reason.
    emu.add_fault(
        serde_json::json!({"kind": "error", "status": 500, "method": "GET",
        "path": "/v1/sprites/doomed2-*/exec", "body": {"error": "exec refused"}}),
    )
    .await;
    let run = home.run(&[
        "create", "--repo", repo_s, "--prompt", "p", "--name", "doomed2",
    ]);
    assert_exit(&run, 1);
    assert!(
        run.stderr.contains("session doomed2 failed: ") && run.stderr.contains("exec refused"),
        "{}",
        run.stderr
    );
    assert_eq!(sprite_names(&emu).await, vec![sprite], "no sprite left");
    let st = home.run(&["status", "doomed2", "--json"]).json();
    assert_eq!(st["status"], "failed", "{st:#}");
    assert!(
        st["status_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("exec refused"),
        "{st:#}"
    );
}

/// Two homes on one account (one emulator): each labels its sprites with its own installation
/// id, and `reconcile --delete` in one home deletes its own orphans only, listing the other
/// home's live sprites (and an unlabelled one it cannot place) as left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_homes_on_one_account_reconcile_only_their_own_sandboxes() {
    let emu = Emulator::start();
    let (laptop, desktop) = (sprites_home(&emu), sprites_home(&emu));
    let _dl = TestDaemon::start(&laptop);
    let _dd = TestDaemon::start(&desktop);
    let repo = git_repo();
    let repo_s = repo.path().to_str().unwrap();
    for (home, name) in [(&laptop, "on-laptop"), (&desktop, "on-desktop")] {
        let run = home.run(&["create", "--repo", repo_s, "--prompt", "hi", "--name", name]);
        assert_exit(&run, 0);
    }
    let (l_id, d_id) = (installation_id(&laptop), installation_id(&desktop));
    assert_ne!(l_id, d_id);
    let health = laptop.run(&["daemon", "status", "--json"]);
    assert!(health.stdout.contains(&l_id), "{}", health.stdout);
    for s in emu.sprites().await {
        let labels: Vec<&str> = s["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        let mine = if s["name"].as_str().unwrap().starts_with("on-laptop") {
            &l_id
        } else {
            &d_id
        };
        assert!(
            labels.contains(&format!("clauderon.installation={mine}").as_str()),
            "{s}"
        );
    }
    // An orphan of the laptop's, and a sprite from before installation ids whose session
    // neither home knows.
    for (name, installation) in [("laptop-orphan", Some(&l_id)), ("unlabelled", None)] {
        let mut labels = vec![
            "clauderon=1".to_owned(),
            "clauderon.session=00000000-dead".to_owned(),
        ];
        labels.extend(installation.map(|i| format!("clauderon.installation={i}")));
        let code = emu
            .post_json(
                "/v1/sprites",
                &serde_json::json!({"name": name, "labels": labels}),
            )
            .await;
        assert_eq!(code, 201);
    }

    let run = laptop.run(&["reconcile", "--delete", "--json"]);
    assert_exit(&run, 0);
    let report = run.json();
    let orphans: Vec<&str> = report["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["instance"].as_str().unwrap())
        .collect();
    assert_eq!(orphans, ["laptop-orphan"], "{report:#}");
    assert_eq!(report["orphans"][0]["outcome"], "deleted");
    let foreign = report["foreign"].as_array().unwrap();
    assert_eq!(foreign.len(), 2, "{report:#}");
    let theirs = foreign
        .iter()
        .find(|f| f["installation"] == d_id.as_str())
        .unwrap_or_else(|| panic!("{report:#}"));
    assert!(
        theirs["instance"]
            .as_str()
            .unwrap()
            .starts_with("on-desktop")
    );
    assert!(
        foreign
            .iter()
            .any(|f| f["instance"] == "unlabelled" && f["installation"].is_null())
    );

    // The desktop's session and the unlabelled sprite are still there; the human report says
    // why they were left alone.
    let names = sprite_names(&emu).await;
    assert!(
        names.iter().any(|n| n.starts_with("on-desktop")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "unlabelled"), "{names:?}");
    assert!(!names.iter().any(|n| n == "laptop-orphan"), "{names:?}");
    let st = desktop.run(&["status", "on-desktop", "--json"]).json();
    assert_eq!(st["status"], "running", "{st:#}");
    let run = laptop.run(&["reconcile"]);
    assert_exit(&run, 0);
    assert!(
        run.stdout.contains("no orphaned sandboxes")
            && run.stdout.contains("not this installation's")
            && run.stdout.contains(&format!("installation {d_id}")),
        "{}",
        run.stdout
    );

    // From the desktop, the laptop's live sprite is the foreign one.
    let report = desktop.run(&["reconcile", "--json"]).json();
    assert!(
        report["orphans"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    assert!(
        report["foreign"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["installation"] == l_id.as_str()),
        "{report:#}"
    );
}
