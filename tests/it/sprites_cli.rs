//! The Sprites backend end to end: the real `clauderon` binary and daemon, the real Sprites
//! plugin found beside the executable, the demo agent, and the emulator over loopback.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::Value;

use crate::support::attached::Attached;
use crate::support::daemon::TestDaemon;
use crate::support::emulator::Emulator;
use crate::support::home::{Run, TempHome};

fn assert_exit(run: &Run, code: i32) {
    assert_eq!(
        run.code,
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
}

/// A home whose default backend is `sprites` pointed at `emu`, with the demo agent configured and
/// the emulator's token stored as the `sprites_api_key` secret file.
fn sprites_home(emu: &Emulator) -> TempHome {
    let home = TempHome::new();
    let secrets = home.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700)).unwrap();
    let key = secrets.join("sprites_api_key");
    std::fs::write(&key, emu.token()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    home.write_config(&format!(
        "default_backend = \"sprites\"\n[server]\nlisten = \"127.0.0.1:0\"\n\
         [agent]\npreset = \"custom\"\n\
         command = [\"/home/sprite/.clauderon/bin/clauderon-demo-agent\"]\n\
         prompt_args = [\"{{prompt}}\"]\nmodel_args = [\"--model\", \"{{model}}\"]\n\
         plan_args = [\"--plan\"]\nprint_args = [\"--print\"]\nresume_args = [\"--resume\", \"{{resume}}\"]\n\
         [sprites]\napi_url = \"{}\"\nhibernate_wait_seconds = 20\n",
        emu.base_url()
    ));
    home
}

fn git_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let st = Command::new("git")
            .arg("-C")
            .arg(dir.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(dir.path().join("README.md"), "original\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "first"]);
    dir
}

async fn sprite_names(emu: &Emulator) -> Vec<String> {
    let list: Value = emu
        .http_client()
        .get(format!("{}/v1/sprites", emu.base_url()))
        .bearer_auth(emu.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["sprites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
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
    let run = home.run(&["checkpoint", "create", "demo", "first one"]);
    assert_exit(&run, 0);
    let cps = home.run(&["checkpoint", "list", "demo", "--json"]).json();
    let cp = cps
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["comment"] == "first one")
        .unwrap_or_else(|| panic!("{cps:#}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = home.run(&["checkpoint", "restore", "demo", &cp]);
    assert_exit(&run, 0);

    // Reconcile: a sprite labelled as ours that no session owns is listed, then deleted; the
    // session's own sprite is left alone.
    let made = emu
        .http_client()
        .post(format!("{}/v1/sprites", emu.base_url()))
        .bearer_auth(emu.token())
        .json(&serde_json::json!({"name": "orphan-1", "labels": ["clauderon=1", "clauderon.session=00000000-dead"]}))
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
