//! The two-way sync end to end (issue 14, DESIGN §15): the real `clauderon` binary and daemon,
//! the Sprites plugin with its helper (`clauderon-relay sync`) in emulator sprites, the demo
//! agent, a local worktree under `$CLAUDERON_HOME/worktrees`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::daemon::TestDaemon;
use crate::support::emulator::Emulator;
use crate::support::git::git_repo;
use crate::support::home::{TempHome, assert_exit};

const WS: &str = "/home/sprite/workspace";

/// The Sprites test home with an extra ignore pattern for the sync.
fn sync_home(emu: &Emulator) -> TempHome {
    let home = crate::sprites_cli::sprites_home(emu);
    crate::sprites_cli::add_sprites_config(&home, "sync_ignore = [\"*.tmp\"]\n");
    home
}

async fn sprite_named(emu: &Emulator, name: &str) -> String {
    let list = emu.sprites().await;
    list.iter()
        .filter_map(|s| s["name"].as_str())
        .find(|n| n.starts_with(&format!("{name}-")))
        .unwrap()
        .to_owned()
}

/// Runs `sh -c script` in the sprite's workspace.
async fn sh(emu: &Emulator, sprite: &str, script: &str) -> (String, i32) {
    emu.exec_http(sprite, &["sh", "-c", &format!("cd {WS} && {script}")])
        .await
}

/// Polls `check` every 50 ms for up to 20 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Creates session `name` of `repo` (prompt `hi`) with `extra` flags.
fn create(home: &TempHome, repo: &Path, name: &str, extra: &[&str]) {
    let mut args = vec![
        "create",
        "--repo",
        repo.to_str().unwrap(),
        "--prompt",
        "hi",
        "--name",
        name,
    ];
    args.extend_from_slice(extra);
    assert_exit(&home.run(&args), 0);
}

/// Creates a synced session; its worktree.
fn create_synced(home: &TempHome, repo: &Path, name: &str) -> PathBuf {
    create(home, repo, name, &["--sync"]);
    home.path().join("worktrees").join(name)
}

fn sync_json(home: &TempHome, name: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--json", "sync", name];
    args.extend_from_slice(extra);
    let run = home.run(&args);
    assert_exit(&run, 0);
    run.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_cross_both_ways_and_ignored_and_git_paths_never_do() {
    let emu = Emulator::start();
    let home = sync_home(&emu);
    let d = TestDaemon::start(&home);
    let repo = git_repo();
    std::fs::write(repo.path().join(".gitignore"), "node_modules/\n").unwrap();
    crate::support::git::git(repo.path(), &["add", ".gitignore"]);
    crate::support::git::git(repo.path(), &["commit", "-qm", "ignore"]);
    let wt = create_synced(&home, repo.path(), "sy");
    let sprite = sprite_named(&emu, "sy").await;
    assert!(wt.join(".gitignore").is_file(), "the worktree was made");

    // A local edit appears in the sprite.
    std::fs::write(wt.join("local.txt"), "from the laptop\n").unwrap();
    eventually("local.txt in the sprite", || async {
        sh(&emu, &sprite, "cat local.txt").await.0 == "from the laptop\n"
    })
    .await;
    // An agent's commit-free edit appears locally (and an executable bit, and a link).
    sh(&emu, &sprite, "printf 'agent work\\n' > agent.txt && printf '#!/bin/sh\\n' > run.sh && chmod +x run.sh && ln -s agent.txt link").await;
    eventually("agent.txt locally", || async {
        std::fs::read_to_string(wt.join("agent.txt")).is_ok_and(|s| s == "agent work\n")
    })
    .await;
    eventually("run.sh and link locally", || async {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(wt.join("run.sh")).is_ok_and(|m| m.permissions().mode() & 0o100 != 0)
            && std::fs::read_link(wt.join("link")).is_ok_and(|t| t == Path::new("agent.txt"))
    })
    .await;

    // A directory the agent makes now and fills only after a reconcile has scanned it empty
    // is still watched: the file it gets later arrives.
    sh(&emu, &sprite, "mkdir -p later/deeper").await;
    let _ = sync_json(&home, "sy", &["--once"]);
    sh(&emu, &sprite, "printf 'filled\\n' > later/deeper/f.txt").await;
    eventually("later/deeper/f.txt locally", || async {
        std::fs::read_to_string(wt.join("later/deeper/f.txt")).is_ok_and(|s| s == "filled\n")
    })
    .await;

    // Ignored paths (git's and the extra pattern) and .git never cross.
    std::fs::create_dir_all(wt.join("node_modules/x")).unwrap();
    std::fs::write(wt.join("node_modules/x/big.js"), "local only").unwrap();
    std::fs::write(wt.join("scratch.tmp"), "local only").unwrap();
    sh(
        &emu,
        &sprite,
        "mkdir -p node_modules && echo sprite-only > node_modules/s.js && echo x > notes.tmp",
    )
    .await;
    std::fs::write(wt.join("marker.txt"), "after the ignored ones\n").unwrap();
    eventually("marker.txt in the sprite", || async {
        sh(&emu, &sprite, "cat marker.txt").await.0 == "after the ignored ones\n"
    })
    .await;
    let (out, _) = sh(
        &emu,
        &sprite,
        "ls node_modules; ls scratch.tmp 2>&1; git status --porcelain",
    )
    .await;
    assert!(
        !out.contains("x\n") && out.contains("No such file"),
        "{out}"
    );
    assert!(!wt.join("node_modules/s.js").exists());
    assert!(!wt.join("notes.tmp").exists());
    // Each side's git stays its own: the sprite's HEAD and index are untouched by the worktree's.
    let st = sync_json(&home, "sy", &[]);
    assert_eq!(st["conflicts"], Value::Array(vec![]), "{st:#}");
    assert!(st["synced"].as_u64().unwrap() >= 5, "{st:#}");

    // Writes where nothing is synced (an ignored directory, as a local build's or install's)
    // start no cycle: the last sync stays where it was.
    let _ = sync_json(&home, "sy", &["--once"]);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let quiet = sync_json(&home, "sy", &[])["last_sync"].clone();
    assert!(quiet.is_string(), "{quiet}");
    for i in 0..20 {
        std::fs::write(wt.join(format!("node_modules/x/gen{i}.js")), "built").unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(sync_json(&home, "sy", &[])["last_sync"], quiet);

    // Modify-vs-delete: the modification wins, the deleted side gets it back.
    let _ = sync_json(&home, "sy", &["--once"]);
    sh(&emu, &sprite, "rm local.txt").await;
    std::fs::write(wt.join("local.txt"), "edited locally meanwhile\n").unwrap();
    eventually("local.txt restored in the sprite", || async {
        sh(&emu, &sprite, "cat local.txt").await.0 == "edited locally meanwhile\n"
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(wt.join("local.txt")).unwrap(),
        "edited locally meanwhile\n"
    );

    // A simultaneous edit: both versions kept, a listed conflict, nothing lost.
    let _ = home.run(&["sync", "sy", "--stop"]);
    std::fs::write(wt.join("agent.txt"), "laptop version\n").unwrap();
    sh(&emu, &sprite, "printf 'sprite version\\n' > agent.txt").await;
    let _ = home.run(&["sync", "sy", "--start"]);
    let st = sync_json(&home, "sy", &["--once"]);
    let conflicts = st["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{st:#}");
    assert_eq!(conflicts[0]["path"], "agent.txt");
    assert_eq!(
        std::fs::read_to_string(wt.join("agent.txt")).unwrap(),
        "laptop version\n"
    );
    assert_eq!(
        sh(&emu, &sprite, "cat agent.txt").await.0,
        "sprite version\n"
    );
    let store = PathBuf::from(st["conflict_store"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(store.join("sprite/agent.txt")).unwrap(),
        "sprite version\n"
    );
    assert_eq!(
        std::fs::read_to_string(store.join("local/agent.txt")).unwrap(),
        "laptop version\n"
    );
    // Resolve: take the sprite's version everywhere.
    let run = home.run(&["sync", "sy", "resolve", "agent.txt", "--take", "sprite"]);
    assert_exit(&run, 0);
    eventually("the sprite's version locally", || async {
        std::fs::read_to_string(wt.join("agent.txt")).is_ok_and(|s| s == "sprite version\n")
    })
    .await;
    let st = sync_json(&home, "sy", &["--once"]);
    assert_eq!(st["conflicts"], Value::Array(vec![]), "{st:#}");
    let log = d.log();
    assert!(!log.contains("panicked"), "{log}");

    // The local side's hash cache is kept for a restarted daemon, beside the conflict store.
    let stamps = store.parent().unwrap().join("stamps");
    assert!(stamps.is_file(), "{}", stamps.display());

    // Delete removes the worktree and the hash cache; the conflict store stays, and delete
    // says where.
    let run = home.run(&["delete", "sy", "--yes"]);
    assert_exit(&run, 0);
    assert!(!wt.exists());
    assert!(!stamps.exists(), "{}", stamps.display());
    assert!(store.join("local/agent.txt").is_file());
    assert!(
        run.stderr
            .contains(&format!("conflict store stays at {}", store.display())),
        "{}",
        run.stderr
    );
}

/// The sprite's checked-out commit.
async fn sprite_head(emu: &Emulator, sprite: &str) -> String {
    sh(emu, sprite, "git rev-parse HEAD")
        .await
        .0
        .trim()
        .to_owned()
}

/// Commits `file` with `text` in the sprite (as the agent would).
async fn commit_in_sprite(emu: &Emulator, sprite: &str, file: &str, text: &str) -> String {
    let (out, code) = sh(
        emu,
        sprite,
        &format!(
            "printf '{text}\\n' > {file} && git add {file} && git -c user.name=agent \
             -c user.email=agent@example.invalid commit -qm 'agent: {file}' && git rev-parse HEAD"
        ),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    out.trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_follows_commits_both_ways_and_pauses_when_both_sides_committed() {
    use crate::support::git::git;
    let emu = Emulator::start();
    let home = sync_home(&emu);
    let _d = TestDaemon::start(&home);
    let repo = git_repo();
    let wt = create_synced(&home, repo.path(), "hs");
    let sprite = sprite_named(&emu, "hs").await;

    // The demo agent committed DEMO_AGENT.md in the sprite: the commit arrives locally, the
    // branch follows with a mixed reset, the file by the file sync; nothing is left uncommitted.
    let agent = sprite_head(&emu, &sprite).await;
    eventually("the agent's commit locally", || async {
        git(&wt, &["rev-parse", "HEAD"]) == agent
            && wt.join("DEMO_AGENT.md").is_file()
            && git(&wt, &["status", "--porcelain"]).is_empty()
    })
    .await;
    assert_eq!(
        git(&wt, &["rev-parse", "--abbrev-ref", "HEAD"]),
        "clauderon/hs"
    );
    assert!(git(repo.path(), &["log", "--oneline", "clauderon/hs"]).contains("demo agent"));

    // A local commit fast-forwards the sprite's branch; the sprite's index follows too.
    std::fs::write(wt.join("mine.txt"), "local work\n").unwrap();
    git(&wt, &["add", "mine.txt"]);
    git(&wt, &["commit", "-qm", "local: mine.txt"]);
    let mine = git(&wt, &["rev-parse", "HEAD"]);
    eventually("the local commit in the sprite", || async {
        sprite_head(&emu, &sprite).await == mine
            && sh(&emu, &sprite, "git status --porcelain")
                .await
                .0
                .is_empty()
    })
    .await;
    let st = sync_json(&home, "hs", &[]);
    assert_eq!(st["history"], "in_step", "{st:#}");
    assert_eq!(st["agreed_head"], mine.as_str(), "{st:#}");

    // Both sides commit while the sync is stopped: history diverged, files still sync.
    let _ = home.run(&["sync", "hs", "--stop"]);
    std::fs::write(wt.join("both-local.txt"), "l\n").unwrap();
    git(&wt, &["add", "both-local.txt"]);
    git(&wt, &["commit", "-qm", "local: both"]);
    let local_c = git(&wt, &["rev-parse", "HEAD"]);
    let sprite_c = commit_in_sprite(&emu, &sprite, "both-sprite.txt", "s").await;
    let _ = home.run(&["sync", "hs", "--start"]);
    let st = sync_json(&home, "hs", &["--once"]);
    assert_eq!(st["history"], "diverged", "{st:#}");
    assert!(
        st["history_reason"]
            .as_str()
            .unwrap()
            .contains("history diverged"),
        "{st:#}"
    );
    let text = home.run(&["sync", "hs"]);
    assert!(
        text.stdout.contains("history     diverged"),
        "{}",
        text.stdout
    );
    eventually("the files of both commits on both sides", || async {
        wt.join("both-sprite.txt").is_file()
            && sh(&emu, &sprite, "cat both-local.txt").await.0 == "l\n"
    })
    .await;
    assert_eq!(git(&wt, &["rev-parse", "HEAD"]), local_c);
    assert_eq!(sprite_head(&emu, &sprite).await, sprite_c);
    // The sprite's commits are in the local repository already.
    assert_eq!(
        git(repo.path(), &["rev-parse", "refs/clauderon/sprite/hs"]),
        sprite_c
    );

    // Take the sprite's side: the local branch follows it (nothing merged); the local
    // commit's file stays in the worktree, now uncommitted.
    let run = home.run(&["--json", "sync", "hs", "history", "--take", "sprite"]);
    assert_exit(&run, 0);
    assert_eq!(run.json()["history"], "in_step");
    assert_eq!(git(&wt, &["rev-parse", "HEAD"]), sprite_c);
    assert_eq!(git(&wt, &["status", "--porcelain"]), "?? both-local.txt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_brings_back_commits_of_a_bundle_cloned_sprite() {
    use crate::support::git::git;
    let emu = Emulator::start();
    let home = crate::sprites_cli::sprites_home(&emu);
    let _d = TestDaemon::start(&home);
    // No origin: the repository travels to the sprite as a bundle.
    let repo = git_repo();
    assert_eq!(git(repo.path(), &["remote"]), "");
    create(&home, repo.path(), "pl", &[]);
    let sprite = sprite_named(&emu, "pl").await;
    let c = commit_in_sprite(&emu, &sprite, "made-in-sprite.txt", "x").await;

    let run = home.run(&["pull", "pl"]);
    assert_exit(&run, 0);
    assert!(run.stdout.contains("clauderon/pl is at"), "{}", run.stdout);
    assert_eq!(git(repo.path(), &["rev-parse", "clauderon/pl"]), c);
    let log = git(repo.path(), &["log", "--format=%s", "clauderon/pl"]);
    assert!(log.contains("agent: made-in-sprite.txt"), "{log}");
    assert!(log.contains("demo agent"), "{log}");
    assert_eq!(
        git(repo.path(), &["show", "clauderon/pl:made-in-sprite.txt"]),
        "x"
    );
    // Again: nothing new; into another branch through the API's JSON.
    let run = home.run(&["pull", "pl"]);
    assert_exit(&run, 0);
    assert!(run.stdout.contains("already"), "{}", run.stdout);
    let run = home.run(&["--json", "pull", "pl", "--branch", "review/pl"]);
    assert_exit(&run, 0);
    let j = run.json();
    assert_eq!(
        (j["branch"].as_str(), j["commit"].as_str()),
        (Some("review/pl"), Some(c.as_str()))
    );
    // A local branch with commits of its own is not moved.
    git(repo.path(), &["checkout", "-q", "-b", "mine"]);
    git(
        repo.path(),
        &["commit", "-q", "--allow-empty", "-m", "mine"],
    );
    git(repo.path(), &["checkout", "-q", "main"]);
    let run = home.run(&["pull", "pl", "--branch", "mine"]);
    assert_exit(&run, 1);
    assert!(run.stderr.contains("cannot fast-forward"), "{}", run.stderr);

    // Delete's warning names pull.
    let run = home.run(&["delete", "pl", "--yes"]);
    assert_exit(&run, 0);
    assert!(run.stderr.contains("`clauderon pull pl`"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_made_while_hibernated_arrives_after_wake_and_sync_lets_the_sprite_sleep() {
    let emu = Emulator::start_args(&["--idle-to-warm", "500ms", "--warm-to-cold", "1s"]);
    let home = sync_home(&emu);
    crate::sprites_cli::set_hibernation_timeout(&home, "3s");
    // The default quiet spell (60 s): the helper's stream is open when the timeout comes.
    let d = TestDaemon::start(&home);
    let repo = git_repo();
    let wt = create_synced(&home, repo.path(), "hb");
    let sprite = sprite_named(&emu, "hb").await;
    std::fs::write(wt.join("before.txt"), "synced while awake\n").unwrap();
    eventually("before.txt in the sprite", || async {
        sh(&emu, &sprite, "cat before.txt").await.0 == "synced while awake\n"
    })
    .await;

    // The session hibernates at its timeout although the sync was busy, and the sprite sleeps.
    d.wait_status("hb", "hibernated", Duration::from_secs(60))
        .await;
    eventually("the sprite asleep", || async {
        emu.state(&sprite).await["state"] != "running"
    })
    .await;

    // An edit while it sleeps waits, shown as pending, and wakes nothing.
    std::fs::write(wt.join("while-asleep.txt"), "queued\n").unwrap();
    eventually("a pending local change", || async {
        let st = sync_json(&home, "hb", &[]);
        st["state"] == "paused" && st["pending_local"].as_u64() >= Some(1)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_ne!(
        emu.state(&sprite).await["state"],
        "running",
        "sync woke the sprite"
    );
    assert_eq!(d.get("/api/sessions/hb").await.1["status"], "hibernated");

    // Wake: the queued edit arrives.
    let run = home.run(&["wake", "hb"]);
    assert_exit(&run, 0);
    eventually("while-asleep.txt in the sprite", || async {
        sh(&emu, &sprite, "cat while-asleep.txt").await.0 == "queued\n"
    })
    .await;
    assert_eq!(sync_json(&home, "hb", &["--once"])["pending_local"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_restore_reconciles_as_a_new_epoch() {
    let emu = Emulator::start();
    let home = sync_home(&emu);
    let _d = TestDaemon::start(&home);
    let repo = git_repo();
    let wt = create_synced(&home, repo.path(), "rs");
    let sprite = sprite_named(&emu, "rs").await;
    std::fs::write(wt.join("a.txt"), "before the checkpoint\n").unwrap();
    eventually("a.txt in the sprite", || async {
        sh(&emu, &sprite, "cat a.txt").await.0 == "before the checkpoint\n"
    })
    .await;
    let _ = sync_json(&home, "rs", &["--once"]);
    let cp = home.create_checkpoint("rs", "cp");

    // After the checkpoint: a local file and a sprite file, both synced.
    std::fs::write(wt.join("b.txt"), "local, after\n").unwrap();
    sh(&emu, &sprite, "printf 'sprite, after\\n' > c.txt").await;
    eventually("b.txt and c.txt on both sides", || async {
        wt.join("c.txt").is_file() && sh(&emu, &sprite, "cat b.txt").await.0 == "local, after\n"
    })
    .await;
    let _ = sync_json(&home, "rs", &["--once"]);

    // The restore takes b.txt and c.txt away in the sprite: a new epoch brings them back
    // there, and deletes nothing locally.
    let run = home.run(&["checkpoint", "restore", "rs", &cp]);
    assert_exit(&run, 0);
    std::fs::write(wt.join("a.txt"), "edited after the restore\n").unwrap();
    eventually("b.txt, c.txt and the edit in the sprite", || async {
        sh(&emu, &sprite, "cat b.txt c.txt a.txt").await.0
            == "local, after\nsprite, after\nedited after the restore\n"
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(wt.join("c.txt")).unwrap(),
        "sprite, after\n"
    );
    assert!(wt.join("b.txt").is_file());
    let st = sync_json(&home, "rs", &["--once"]);
    assert_eq!(st["conflicts"], Value::Array(vec![]), "{st:#}");
}

/// Host pids of the sprite-side sync helpers.
fn helper_pids(emu: &Emulator) -> Vec<u32> {
    crate::support::emulator::processes_in_sprites(emu)
        .into_iter()
        .filter(|(_, _, cmd)| {
            let mut args = cmd.lines();
            args.next().is_some_and(|a| a.ends_with("clauderon-relay"))
                && args.next() == Some("sync")
        })
        .map(|(pid, _, _)| pid)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_helper_and_a_dropped_socket_resume_without_a_lost_or_duplicated_change() {
    let emu = Emulator::start();
    let home = sync_home(&emu);
    let d = TestDaemon::start_with(&home, |c| {
        c.env("CLAUDERON_SYNC_QUIET_MS", "1500");
    });
    let repo = git_repo();
    let wt = create_synced(&home, repo.path(), "kh");
    let sprite = sprite_named(&emu, "kh").await;
    let log = wt.join("log.txt");
    let append = |line: &str| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        writeln!(f, "{line}").unwrap();
    };
    append("1");
    eventually("log 1 in the sprite", || async {
        sh(&emu, &sprite, "cat log.txt").await.0 == "1\n"
    })
    .await;

    // Kill the helper (by its pid): the next edits each way still arrive, once.
    let pids = helper_pids(&emu);
    assert_eq!(pids.len(), 1, "{pids:?}");
    let st = std::process::Command::new("kill")
        .args(["-KILL", &pids[0].to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    append("2");
    sh(&emu, &sprite, "printf 'agent 2\\n' > agent.txt").await;
    eventually("log 2 in the sprite and agent.txt locally", || async {
        sh(&emu, &sprite, "cat log.txt").await.0 == "1\n2\n"
            && std::fs::read_to_string(wt.join("agent.txt")).is_ok_and(|s| s == "agent 2\n")
    })
    .await;

    // A dropped socket: the next helper's WebSocket is cut early in its first answer.
    eventually("the stream closed after its quiet spell", || async {
        sync_json(&home, "kh", &[])["state"] == "idle"
    })
    .await;
    // The helper saw its input end and exited at once (not after the exec's 10 s of
    // `max_run_after_disconnect`), leaving its hash cache for the next one.
    let closed = Instant::now();
    while !helper_pids(&emu).is_empty() {
        assert!(
            closed.elapsed() < Duration::from_secs(5),
            "the helper outlived its closed stream: {:?}",
            helper_pids(&emu)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (stamps, _) = sh(&emu, &sprite, "ls /.sprite/clauderon/").await;
    assert!(
        stamps
            .lines()
            .any(|l| l.starts_with("sync-") && l.ends_with(".stamps")),
        "{stamps}"
    );
    emu.add_fault(serde_json::json!({
        "kind": "drop_ws",
        "path": "/v1/sprites/*/exec",
        "query": "*cmd=sync*",
        "after_bytes": 64,
        "times": 1
    }))
    .await;
    append("3");
    sh(&emu, &sprite, "printf 'agent 3\\n' >> agent.txt").await;
    eventually("log 3 in the sprite and agent 3 locally", || async {
        sh(&emu, &sprite, "cat log.txt").await.0 == "1\n2\n3\n"
            && std::fs::read_to_string(wt.join("agent.txt"))
                .is_ok_and(|s| s == "agent 2\nagent 3\n")
    })
    .await;
    let st = sync_json(&home, "kh", &["--once"]);
    assert_eq!(st["conflicts"], Value::Array(vec![]), "{st:#}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "1\n2\n3\n");
    assert_eq!(sh(&emu, &sprite, "cat log.txt").await.0, "1\n2\n3\n");
    let dlog = d.log();
    assert!(dlog.contains("the sync stream was lost"), "{dlog}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_test_backend_syncs_too_so_the_host_side_is_backend_agnostic() {
    let home = crate::cli::local_home();
    let _d = TestDaemon::start(&home);
    let repo = git_repo();
    let wt = create_synced(&home, repo.path(), "lb");
    let ws = std::fs::read_dir(home.path().join("sandboxes"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("home/sprite/workspace"))
        .find(|p| p.is_dir())
        .unwrap();
    std::fs::write(wt.join("from-local.txt"), "l\n").unwrap();
    std::fs::write(ws.join("from-sandbox.txt"), "s\n").unwrap();
    eventually("each edit on the other side", || async {
        std::fs::read_to_string(ws.join("from-local.txt")).is_ok_and(|s| s == "l\n")
            && std::fs::read_to_string(wt.join("from-sandbox.txt")).is_ok_and(|s| s == "s\n")
    })
    .await;
    let st = sync_json(&home, "lb", &["--once"]);
    assert_eq!(st["conflicts"], Value::Array(vec![]), "{st:#}");
    assert_eq!(st["history"], "in_step", "{st:#}");

    // Nothing was ever in conflict: delete leaves nothing of the sync behind, and says nothing
    // of a conflict store.
    let session_dir = PathBuf::from(st["conflict_store"].as_str().unwrap())
        .parent()
        .unwrap()
        .to_path_buf();
    assert!(session_dir.is_dir(), "{}", session_dir.display());
    let run = home.run(&["delete", "lb", "--yes"]);
    assert_exit(&run, 0);
    assert!(!wt.exists());
    assert!(!session_dir.exists(), "{}", session_dir.display());
    assert!(!run.stderr.contains("conflict store"), "{}", run.stderr);
}

/// A large batch each way through one stream: 1,500 files the agent wrote (their content
/// fills the helper's stdout while the host's read requests fill its stdin) and 1,500 local
/// ones, agreed in one reconcile without the stream ever being lost. (The Sprites plugin's
/// exec pump once wrote stdin and read stdout on one loop, and the stream died of unanswered
/// pings under a large batch.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_each_way_crosses_on_one_stream() {
    let emu = Emulator::start();
    let home = sync_home(&emu);
    let d = TestDaemon::start(&home);
    let repo = git_repo();
    let wt = create_synced(&home, repo.path(), "lb");
    let sprite = sprite_named(&emu, "lb").await;
    eventually("the first sync", || async {
        sync_json(&home, "lb", &[])["synced"].as_u64().unwrap_or(0) > 0
    })
    .await;
    let before = sync_json(&home, "lb", &[])["synced"].as_u64().unwrap_or(0);
    sync_json(&home, "lb", &["--stop"]);
    let (_, code) = sh(
        &emu,
        &sprite,
        "mkdir -p many && i=0; while [ $i -lt 1500 ]; do \
         head -c 4096 /dev/urandom > many/s$i.bin; i=$((i+1)); done",
    )
    .await;
    assert_eq!(code, 0);
    std::fs::create_dir_all(wt.join("mine")).unwrap();
    for i in 0..1500 {
        std::fs::write(
            wt.join(format!("mine/l{i}.txt")),
            format!("{i}\n").repeat(500),
        )
        .unwrap();
    }
    sync_json(&home, "lb", &["--start"]);
    let st = sync_json(&home, "lb", &["--once"]);
    assert_eq!(
        st["synced"].as_u64().unwrap_or(0),
        before + 3000,
        "every file agreed in one reconcile: {st:#}"
    );
    let local = std::fs::read_dir(wt.join("many")).unwrap().count();
    assert_eq!(local, 1500);
    let (n, _) = sh(&emu, &sprite, "ls mine | wc -l").await;
    assert_eq!(n.trim(), "1500");
    let dlog = d.log();
    assert!(!dlog.contains("the sync stream was lost"), "{dlog}");
}

/// The sync's cycle count once it has stopped moving for 700 ms.
async fn settled_cycles(home: &TempHome, name: &str) -> u64 {
    let mut last = sync_json(home, name, &[])["cycles"].as_u64().unwrap();
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let now = sync_json(home, name, &[])["cycles"].as_u64().unwrap();
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the sync kept cycling ({last} cycles)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_edits_costs_a_few_cycles_and_a_quiet_tree_none() {
    let emu = Emulator::start();
    let home = sync_home(&emu);
    let _d = TestDaemon::start(&home);
    let repo = git_repo();
    let wt = create_synced(&home, repo.path(), "burst");
    let sprite = sprite_named(&emu, "burst").await;
    let before = settled_cycles(&home, "burst").await;
    let synced = sync_json(&home, "burst", &[])["synced"].as_u64().unwrap();

    // 300 files as fast as the disk takes them: events settle, then a few cycles carry all.
    std::fs::create_dir_all(wt.join("burst")).unwrap();
    for i in 0..300 {
        std::fs::write(wt.join(format!("burst/f{i}.txt")), format!("{i}\n")).unwrap();
    }
    eventually("the burst in the sprite", || async {
        sh(&emu, &sprite, "ls burst | wc -l").await.0.trim() == "300"
    })
    .await;
    eventually("the burst agreed", || async {
        sync_json(&home, "burst", &[])["synced"].as_u64().unwrap() >= synced + 300
    })
    .await;
    let after = settled_cycles(&home, "burst").await;
    println!("one burst of 300 files: {} cycle(s)", after - before);
    assert!(
        (1..=5).contains(&(after - before)),
        "{} cycles for one burst of 300 files",
        after - before
    );

    // An unchanged tree: no cycle at all (no periodic rescans).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sync_json(&home, "burst", &[])["cycles"].as_u64().unwrap(),
        after,
        "cycles while nothing changed"
    );
}
