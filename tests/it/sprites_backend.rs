//! The Sprites backend through the real plugin library and loader, against the emulator.
//!
//! Every test loads `libclauderon_sprites` with `PluginRegistry` (the host's loader), points it at
//! its own `sprites-emulator` (`api_url` config; the token through the host's secret lookup) and
//! drives the operations the daemon uses: create, clone (origin and bundle), the agent's TTY
//! session (attach, detach, re-attach, reconnect), exec, hibernate, wake, checkpoints, delete, and
//! the faults (429 on create, slow wake, dropped attach socket, failed create).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clauderon::plugins::{
    ErrorKind, Frame, FrameKind, FrameReader, FrameStream, FrameWriter, PluginClient,
    PluginRegistry, ops,
};
use serde_json::{Value, json};

use crate::support::emulator::Emulator;
use crate::support::git::git;
use crate::support::sprites_plugin::{
    self, Rig, Uploads, call, create_request, session_id, visible_dir,
};

const WORKSPACE: &str = "/home/sprite/workspace";

/// The plugin against its own emulator, with the reconnect attempts these tests count on.
fn rig(args: &[&str]) -> Rig {
    Rig::start(args, json!({"reconnect_attempts": 5}))
}

fn plugin_for(emu: &Emulator, token: &str) -> (PluginRegistry, Arc<PluginClient>) {
    sprites_plugin::load(emu, token, json!({"reconnect_attempts": 5}))
}

fn messages(events: &[Value], stage: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "progress" && e["stage"] == stage)
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn create(plugin: &PluginClient, name: &str) -> (ops::Instance, Vec<Value>) {
    let req = ops::CreateRequest {
        cpu_limit: Some(1.5),
        memory_limit_mib: Some(512),
        ..create_request(name)
    };
    let (r, events): (Result<ops::InstanceResponse, _>, _) = call(plugin, ops::CREATE, &req).await;
    (r.unwrap().instance, events)
}

async fn status(plugin: &PluginClient, inst: &ops::Instance) -> ops::InstanceStatus {
    plugin
        .status(&ops::InstanceRequest {
            instance: inst.clone(),
        })
        .await
        .unwrap()
        .status
}

/// Runs a non-TTY command through the plugin's `exec` stream: (stdout, stderr, exit code).
async fn exec(plugin: &PluginClient, inst: &ops::Instance, argv: &[&str]) -> (String, String, i32) {
    sprites_plugin::exec(plugin, inst, argv, Duration::from_secs(60)).await
}

/// Output and events read from an attach stream until `needle` shows up in the output.
struct Seen {
    out: String,
    events: Vec<Value>,
}

async fn read_until(r: &mut FrameReader, needle: &str) -> Seen {
    let mut seen = Seen {
        out: String::new(),
        events: Vec::new(),
    };
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let Some(f) = r.read_frame().await.unwrap() else {
                return false;
            };
            match f.kind {
                FrameKind::Stdout => {
                    seen.out.push_str(&String::from_utf8_lossy(&f.payload));
                    if seen.out.contains(needle) {
                        return true;
                    }
                }
                FrameKind::Event => seen
                    .events
                    .push(serde_json::from_slice(&f.payload).unwrap()),
                FrameKind::Exit | FrameKind::Error => return false,
                _ => {}
            }
        }
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "never saw {needle:?}; output so far: {:?}; events: {:?}",
        seen.out,
        seen.events
    );
    seen
}

async fn detach(mut r: FrameReader, mut w: FrameWriter) {
    w.write_frame(&Frame::new(FrameKind::Detach, Vec::new()))
        .await
        .unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        let mut kinds = Vec::new();
        while let Some(f) = r.read_frame().await.unwrap() {
            kinds.push((f.kind, String::from_utf8_lossy(&f.payload).into_owned()));
        }
        kinds
    })
    .await
    .expect("the plugin closes the stream after a detach");
    assert!(
        rest.iter()
            .any(|(k, p)| *k == FrameKind::Event && p.contains("detached")),
        "{rest:?}"
    );
}

async fn start_agent(
    plugin: &PluginClient,
    inst: &ops::Instance,
    args: &[&str],
) -> (ops::StreamStarted, FrameStream) {
    let mut command = vec![demo_agent()];
    command.extend(args.iter().map(|s| (*s).to_owned()));
    plugin
        .attach(&ops::AttachRequest {
            instance: inst.clone(),
            session: None,
            command,
            cols: 100,
            rows: 30,
            cwd: Some(WORKSPACE.into()),
            ..Default::default()
        })
        .await
        .unwrap()
}

/// The demo agent at a path the sprites see (the host installs it for a config that names it;
/// these tests drive the plugin directly).
fn demo_agent() -> String {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let dir = crate::support::sprites_plugin::visible_dir();
        let to = dir.join("clauderon-demo-agent");
        std::fs::copy(
            crate::support::artifacts::workspace_root()
                .join("examples/demo-agent/clauderon-demo-agent"),
            &to,
        )
        .unwrap();
        to.to_string_lossy().into_owned()
    })
    .clone()
}

/// A local repository with one commit on `main`, and (when `origin_dir` is given) a bare origin
/// there holding that commit.
fn repo(origin_dir: Option<&Path>) -> (tempfile::TempDir, String) {
    let local = tempfile::tempdir().unwrap();
    git(local.path(), &["init", "-q"]);
    std::fs::write(local.path().join("README.md"), "original\n").unwrap();
    git(local.path(), &["add", "."]);
    git(local.path(), &["commit", "-q", "-m", "first"]);
    if let Some(origin) = origin_dir {
        git(
            Path::new("/"),
            &["init", "-q", "--bare", origin.to_str().unwrap()],
        );
        git(
            local.path(),
            &["remote", "add", "origin", origin.to_str().unwrap()],
        );
        git(local.path(), &["push", "-q", "origin", "main"]);
        git(local.path(), &["fetch", "-q", "origin"]);
    }
    let head = git(local.path(), &["rev-parse", "HEAD"]);
    (local, head)
}

fn clone_req(
    inst: &ops::Instance,
    url: &str,
    local: &Path,
    base: &str,
    dest: &str,
) -> ops::CloneRepoRequest {
    ops::CloneRepoRequest {
        instance: inst.clone(),
        url: url.into(),
        branch: Some("clauderon/demo".into()),
        dest: dest.into(),
        local_path: Some(local.display().to_string()),
        base_commit: Some(base.into()),
        base_branch: Some("main".into()),
        depth: None,
    }
}

async fn clone(
    plugin: &PluginClient,
    req: &ops::CloneRepoRequest,
) -> (ops::CloneRepoResponse, Vec<Value>) {
    let (r, events) = call(plugin, ops::CLONE_REPO, req).await;
    (r.unwrap(), events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sprite_is_created_labelled_cloned_from_its_origin_and_runs_commands() {
    let t0 = Instant::now();
    let rig = rig(&["--idle-to-warm", "500ms", "--warm-to-cold", "1s"]);
    let p = &*rig.plugin;
    let caps = p.capabilities().names();
    for c in [
        "lifecycle",
        "hibernate",
        "exec",
        "attach",
        "remote_clone",
        "checkpoint",
        "check_auth",
        "list",
        "tunnel",
    ] {
        assert!(caps.contains(&c), "{c} in {caps:?}");
    }
    p.check_auth(&ops::CheckAuthRequest::default())
        .await
        .unwrap();

    eprintln!("[{:?}] Create", t0.elapsed());
    // Create: one labelled sprite named after the session.
    let (inst, events) = create(p, "My Demo").await;
    assert!(inst.id.starts_with("my-demo-"), "{}", inst.id);
    assert!(!messages(&events, "create").is_empty(), "{events:?}");
    let sprite = rig.emu.sprite(&inst.id).await.expect("the sprite exists");
    let labels: Vec<&str> = sprite["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(labels.contains(&"clauderon=1"), "{labels:?}");
    assert!(
        labels.contains(
            &format!(
                "clauderon.session={}",
                inst.state["session_id"].as_str().unwrap()
            )
            .as_str()
        ),
        "{labels:?}"
    );
    assert_eq!(inst.state["v"], 1);
    assert_eq!(inst.state["cpu_limit"], 1.5);
    assert_eq!(inst.state["memory_limit_mib"], 512);
    let listed = p
        .list_instances(&ops::ListInstancesRequest::default())
        .await
        .unwrap();
    assert!(
        listed.instances.iter().any(|i| i.instance.id == inst.id),
        "{listed:?}"
    );

    eprintln!("[{:?}] Clone from an origin", t0.elapsed());
    // Clone from an origin the sprite can reach, which has the base commit.
    let visible = visible_dir();
    let origin = visible.join("origin.git");
    let (local, head) = repo(Some(&origin));
    let mut req = clone_req(
        &inst,
        origin.to_str().unwrap(),
        local.path(),
        &head,
        WORKSPACE,
    );
    req.depth = Some(1);
    let (resp, events) = clone(p, &req).await;
    assert_eq!(resp.commit.as_deref(), Some(head.as_str()));
    assert_eq!(
        resp.instance.state["clone"]["method"], "remote",
        "{:?}",
        resp.instance.state
    );
    assert!(!messages(&events, "clone").is_empty());
    let inst = resp.instance;
    let (branch, _, code) = exec(
        p,
        &inst,
        &["git", "-C", WORKSPACE, "rev-parse", "--abbrev-ref", "HEAD"],
    )
    .await;
    assert_eq!((branch.trim(), code), ("clauderon/demo", 0));
    let (shallow, _, _) = exec(
        p,
        &inst,
        &[
            "git",
            "-C",
            WORKSPACE,
            "rev-parse",
            "--is-shallow-repository",
        ],
    )
    .await;
    assert_eq!(shallow.trim(), "true", "depth 1 was honoured");

    eprintln!("[{:?}] Exec", t0.elapsed());
    // Exec: output, stderr and the exit code come back.
    let (out, err, code) = exec(p, &inst, &["sh", "-c", "echo out; echo err >&2; exit 3"]).await;
    assert_eq!((out.as_str(), err.as_str(), code), ("out\n", "err\n", 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_lives_through_attach_checkpoint_hibernate_wake_and_delete() {
    let t0 = Instant::now();
    let rig = rig(&["--idle-to-warm", "500ms", "--warm-to-cold", "1s"]);
    let p = &*rig.plugin;
    let (inst, _) = create(p, "My Demo").await;
    let visible = visible_dir();
    let origin = visible.join("origin.git");
    let (local, head) = repo(Some(&origin));
    let req = clone_req(
        &inst,
        origin.to_str().unwrap(),
        local.path(),
        &head,
        WORKSPACE,
    );
    let (resp, _) = clone(p, &req).await;
    let inst = resp.instance;

    eprintln!("[{:?}] The agent in a detached", t0.elapsed());
    // The agent in a detached TTY session: output, input, detach.
    let (started, stream) = start_agent(p, &inst, &["--model", "m1", "hello there"]).await;
    let agent = started.session.clone().expect("the agent's session id");
    let inst = started.instance.unwrap();
    assert_eq!(inst.state["agent_session"], agent.as_str());
    let (mut r, mut w) = stream.split();
    let seen = read_until(&mut r, "type a line").await;
    assert!(seen.out.contains("model=m1"), "{}", seen.out);
    assert!(seen.out.contains("committed"), "{}", seen.out);
    w.write_frame(&Frame::resize(120, 40)).await.unwrap();
    w.write_frame(&Frame::new(FrameKind::Stdin, b"ping\r".to_vec()))
        .await
        .unwrap();
    read_until(&mut r, "you said: ping").await;
    detach(r, w).await;
    let (log, _, _) = exec(
        p,
        &inst,
        &["git", "-C", WORKSPACE, "log", "--format=%s", "-1"],
    )
    .await;
    assert_eq!(log.trim(), "demo agent: hello there");

    eprintln!("[{:?}] Re-attach", t0.elapsed());
    // Re-attach: the recent output is replayed and the agent still answers.
    let (again, stream) = p
        .attach(&ops::AttachRequest {
            instance: inst.clone(),
            session: Some(agent.clone()),
            cols: 80,
            rows: 24,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(again.session.as_deref(), Some(agent.as_str()));
    let (mut r, mut w) = stream.split();
    read_until(&mut r, "you said: ping").await;
    w.write_frame(&Frame::new(FrameKind::Stdin, b"again\r".to_vec()))
        .await
        .unwrap();
    read_until(&mut r, "you said: again").await;
    drop((r, w)); // closing without Detach also leaves the agent running

    eprintln!("[{:?}] Checkpoint, change files", t0.elapsed());
    // Checkpoint, change files, restore: the files roll back.
    let (ck, _) = call::<_, ops::CheckpointCreateResponse>(
        p,
        ops::CHECKPOINT_CREATE,
        &ops::CheckpointCreateRequest {
            instance: inst.clone(),
            comment: Some("before".into()),
        },
    )
    .await;
    let ck = ck.unwrap().checkpoint;
    let listed = p
        .checkpoint_list(&ops::InstanceRequest {
            instance: inst.clone(),
        })
        .await
        .unwrap();
    assert!(
        listed
            .checkpoints
            .iter()
            .any(|c| c.id == ck.id && c.comment.as_deref() == Some("before")),
        "{listed:?}"
    );
    let (_, _, code) = exec(
        p,
        &inst,
        &[
            "sh",
            "-c",
            &format!("echo changed > {WORKSPACE}/README.md && touch {WORKSPACE}/new.txt"),
        ],
    )
    .await;
    assert_eq!(code, 0);
    let (restored, events) = call::<_, ops::InstanceResponse>(
        p,
        ops::CHECKPOINT_RESTORE,
        &ops::CheckpointRestoreRequest {
            instance: inst.clone(),
            checkpoint_id: ck.id.clone(),
        },
    )
    .await;
    let inst = restored.unwrap().instance;
    assert!(!messages(&events, "restore").is_empty(), "{events:?}");
    let (readme, _, _) = exec(p, &inst, &["cat", &format!("{WORKSPACE}/README.md")]).await;
    assert_eq!(readme, "original\n");
    let (_, _, code) = exec(p, &inst, &["test", "-e", &format!("{WORKSPACE}/new.txt")]).await;
    assert_eq!(code, 1, "new.txt is gone after the restore");
    let err = p
        .checkpoint_restore(&ops::CheckpointRestoreRequest {
            instance: inst.clone(),
            checkpoint_id: "v999".into(),
        })
        .await
        .unwrap_err();
    assert_ne!(err.kind, ErrorKind::Unsupported, "{err:?}");

    eprintln!("[{:?}] A fresh agent, then hibernate", t0.elapsed());
    // A fresh agent, then hibernate: it is stopped and the sprite goes to sleep.
    let (started, stream) = start_agent(p, &inst, &["--continue"]).await;
    let agent = started.session.clone().unwrap();
    let inst = started.instance.unwrap();
    let (mut r, w) = stream.split();
    read_until(&mut r, "type a line").await;
    drop(w);
    let (h, events) = call::<_, ops::InstanceResponse>(
        p,
        ops::HIBERNATE,
        &ops::InstanceRequest {
            instance: inst.clone(),
        },
    )
    .await;
    let inst = h.unwrap().instance;
    let hib = messages(&events, "hibernate");
    assert!(
        hib.iter().any(|m| m.contains("stopping the agent")),
        "{hib:?}"
    );
    assert_eq!(status(p, &inst).await, ops::InstanceStatus::Hibernated);
    let emu_state = rig.emu.state(&inst.id).await;
    assert_ne!(emu_state["state"], "running", "{emu_state}");

    eprintln!("[{:?}] The agent's session is gone", t0.elapsed());
    // The agent's session is gone: re-attach says NotFound (the host restarts it with resume).
    let err = p
        .attach(&ops::AttachRequest {
            instance: inst.clone(),
            session: Some(agent),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err:?}");

    eprintln!("[{:?}] Wake.", t0.elapsed());
    // Wake.
    let (woke, events) = call::<_, ops::InstanceResponse>(
        p,
        ops::WAKE,
        &ops::InstanceRequest {
            instance: inst.clone(),
        },
    )
    .await;
    let inst = woke.unwrap().instance;
    assert!(inst.state["last_wake_ms"].is_u64(), "{}", inst.state);
    assert!(!messages(&events, "wake").is_empty());
    assert_eq!(status(p, &inst).await, ops::InstanceStatus::Running);

    eprintln!("[{:?}] Delete", t0.elapsed());
    // Delete: the sprite is gone from the emulator.
    p.delete(&ops::InstanceRequest {
        instance: inst.clone(),
    })
    .await
    .unwrap();
    assert!(rig.emu.sprite(&inst.id).await.is_none());
    assert_eq!(status(p, &inst).await, ops::InstanceStatus::Gone);
    let _ = std::fs::remove_dir_all(visible);
}

/// The bundle clones of one [`Uploads`] variant.
async fn bundle_clones(uploads: Uploads) {
    let rig = rig(uploads.args());
    uploads.arm(&rig.emu).await;
    let p = &*rig.plugin;
    let (inst, _) = create(p, "bundle").await;

    // 1. An origin the sprite cannot reach (under /tmp, hidden from the sprite) that does have
    //    the commit: the clone inside the sprite fails, the bundle path runs, origin is set.
    let unreachable = tempfile::tempdir().unwrap();
    let origin = unreachable.path().join("origin.git");
    let (local, head) = repo(Some(&origin));
    let req = clone_req(
        &inst,
        origin.to_str().unwrap(),
        local.path(),
        &head,
        "/home/sprite/a",
    );
    let (resp, events) = clone(p, &req).await;
    let state = &resp.instance.state["clone"];
    assert_eq!(state["method"], "bundle", "{state}");
    assert!(
        state["reason"]
            .as_str()
            .unwrap()
            .contains("inside the sprite failed"),
        "{state}"
    );
    assert!(
        messages(&events, "clone")
            .iter()
            .any(|m| m.contains("uploading the bundle")),
        "{events:?}"
    );
    assert_eq!(resp.commit.as_deref(), Some(head.as_str()));
    let (url, _, _) = exec(
        p,
        &inst,
        &["git", "-C", "/home/sprite/a", "remote", "get-url", "origin"],
    )
    .await;
    assert_eq!(url.trim(), origin.to_str().unwrap());

    // 2. A reachable origin that lacks a local commit: the host sees it and ships a bundle.
    let visible = visible_dir();
    let origin = visible.join("origin.git");
    let (local, _) = repo(Some(&origin));
    std::fs::write(local.path().join("local.txt"), "only here\n").unwrap();
    git(local.path(), &["add", "."]);
    git(local.path(), &["commit", "-q", "-m", "local only"]);
    let head = git(local.path(), &["rev-parse", "HEAD"]);
    let req = clone_req(
        &inst,
        origin.to_str().unwrap(),
        local.path(),
        &head,
        "/home/sprite/b",
    );
    let (resp, _) = clone(p, &req).await;
    let state = &resp.instance.state["clone"];
    assert_eq!(state["method"], "bundle", "{state}");
    assert!(
        state["reason"]
            .as_str()
            .unwrap()
            .contains("lacks local commits"),
        "{state}"
    );
    let (txt, _, _) = exec(p, &inst, &["cat", "/home/sprite/b/local.txt"]).await;
    assert_eq!(txt, "only here\n");
    let (branch, _, _) = exec(
        p,
        &inst,
        &["git", "-C", "/home/sprite/b", "branch", "--show-current"],
    )
    .await;
    assert_eq!(branch.trim(), "clauderon/demo");

    // 3. A local-only repository (no origin at all) with 2.5 MB of incompressible data: the
    //    bundle goes up in three verified parts; no origin remote afterwards.
    let (local, _) = repo(None);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let blob: Vec<u8> = (0..2_500_000)
        .map(|_| {
            // xorshift: nothing for zlib to squeeze, so the bundle stays over 2 MB.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(local.path().join("blob.bin"), &blob).unwrap();
    git(local.path(), &["add", "."]);
    git(local.path(), &["commit", "-q", "-m", "big"]);
    let head = git(local.path(), &["rev-parse", "HEAD"]);
    let req = clone_req(&inst, "", local.path(), &head, "/home/sprite/c");
    let (resp, events) = clone(p, &req).await;
    assert_eq!(resp.instance.state["clone"]["method"], "bundle");
    assert_eq!(resp.commit.as_deref(), Some(head.as_str()));
    // ~2.5 MB: parts of 1 MB, or of 750 kB once base64 (1 MB of text each).
    let parts = if uploads == Uploads::ObservedFallback {
        4
    } else {
        3
    };
    let uploaded = messages(&events, "clone");
    assert!(
        uploaded
            .iter()
            .any(|m| m.contains(&format!("({parts} part(s) ")) && m.contains(uploads.transport())),
        "{uploaded:?}"
    );
    let (sum, _, _) = exec(
        p,
        &inst,
        &["git", "-C", "/home/sprite/c", "hash-object", "blob.bin"],
    )
    .await;
    assert_eq!(sum.trim(), git(local.path(), &["hash-object", "blob.bin"]));
    let (remotes, _, code) = exec(p, &inst, &["git", "-C", "/home/sprite/c", "remote"]).await;
    assert_eq!((remotes.trim(), code), ("", 0));
    let _ = std::fs::remove_dir_all(visible);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_ship_a_bundle_when_the_origin_cannot_serve_the_base_commit() {
    bundle_clones(Uploads::Spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_clones_under_the_observed_fs_write_limits() {
    bundle_clones(Uploads::Observed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_clones_through_the_fs_write_fallback_under_the_observed_limits() {
    bundle_clones(Uploads::ObservedFallback).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limits_go_through_the_resources_policy_and_cpu_limits_warn() {
    let rig = rig(&[]);
    let p = &*rig.plugin;
    // cpu 1.5, memory 512 MiB.
    let (inst, events) = create(p, "limits").await;
    let warnings: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "warning")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        warnings.len() == 1
            && warnings[0].contains("--cpu-limit 1.5 is not applied")
            && warnings[0].contains("sizes a sprite's CPUs itself"),
        "{events:?}"
    );
    // Memory: the resources policy, enforced on the sprite's processes; no legacy config.
    assert_eq!(
        rig.emu
            .get_json(&format!("/v1/sprites/{}/policy/resources", inst.id))
            .await,
        json!({"memory": {"limit_mb": 512, "autoscale": true}})
    );
    let sprite = rig.emu.sprite(&inst.id).await.unwrap();
    assert!(sprite.get("config").is_none(), "{sprite}");
    let (kib, _, code) = exec(p, &inst, &["sh", "-c", "ulimit -d"]).await;
    assert_eq!((kib.trim(), code), ("524288", 0));

    // No limits asked: no warning, no policy, no limit.
    let (r, events): (Result<ops::InstanceResponse, _>, _) =
        call(p, ops::CREATE, &create_request("free")).await;
    let free = r.unwrap().instance;
    assert!(!events.iter().any(|e| e["type"] == "warning"), "{events:?}");
    assert_eq!(
        rig.emu
            .get_json(&format!("/v1/sprites/{}/policy/resources", free.id))
            .await,
        json!({})
    );
    let (kib, _, _) = exec(p, &free, &["sh", "-c", "ulimit -d"]).await;
    assert_eq!(kib.trim(), "unlimited");

    // A limit the service refuses fails the create, names the flag, and leaves no sprite.
    rig.emu
        .add_fault(json!({"kind": "error", "status": 400, "method": "POST",
            "path": "/v1/sprites/*/policy/resources", "times": 1,
            "body": {"error": "invalid resources policy"}}))
        .await;
    let (r, _): (Result<ops::InstanceResponse, _>, _) = call(
        p,
        ops::CREATE,
        &ops::CreateRequest {
            memory_limit_mib: Some(64),
            ..create_request("refused")
        },
    )
    .await;
    let e = r.unwrap_err();
    assert!(
        e.message.contains("--memory-limit") && e.message.contains("invalid resources policy"),
        "{e:?}"
    );
    let names: Vec<Value> = rig
        .emu
        .sprites()
        .await
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("refused-")),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_create_waits_and_says_so() {
    let rig = rig(&[]);
    rig.emu
        .add_fault(json!({"kind": "rate_limit", "method": "POST", "path": "/v1/sprites", "times": 1, "retry_after": 1}))
        .await;
    let started = Instant::now();
    let (inst, events) = create(&rig.plugin, "limited").await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited out Retry-After"
    );
    let create_msgs = messages(&events, "create");
    assert!(
        create_msgs.iter().any(|m| m.contains("rate limited")),
        "{events:?}"
    );
    assert!(rig.emu.sprite(&inst.id).await.is_some());

    // Creating the same session again (a retried create) adopts its own sprite.
    let again = ops::CreateRequest {
        session_id: inst.state["session_id"].as_str().unwrap().to_owned(),
        name: "limited".into(),
        ..Default::default()
    };
    let (r, _): (Result<ops::InstanceResponse, _>, _) =
        call(&rig.plugin, ops::CREATE, &again).await;
    assert_eq!(r.unwrap().instance.id, inst.id);
    // Another session whose sprite name comes out the same (same 8-character id prefix) is
    // refused, and the existing sprite is not touched.
    let mut other = again;
    other.session_id = format!("{}-other", other.session_id);
    let (r, _): (Result<ops::InstanceResponse, _>, _) =
        call(&rig.plugin, ops::CREATE, &other).await;
    assert_eq!(r.unwrap_err().kind, ErrorKind::Conflict);
    assert!(
        rig.emu.sprite(&inst.id).await.is_some(),
        "the existing sprite is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_create_leaves_no_sprite_behind() {
    let rig = rig(&[]);
    // The sprite is made, then preparing it fails: the plugin must delete it again.
    rig.emu
        .add_fault(json!({"kind": "error", "status": 403, "method": "PUT", "path": "/v1/sprites/*/fs/*", "body": {"error": "injected"}}))
        .await;
    let req = ops::CreateRequest {
        session_id: session_id(),
        name: "doomed".into(),
        ..Default::default()
    };
    let (r, _): (Result<ops::InstanceResponse, _>, _) = call(&rig.plugin, ops::CREATE, &req).await;
    let err = r.unwrap_err();
    assert!(err.message.contains("session marker"), "{err:?}");
    let list = rig.emu.get_json("/v1/sprites").await;
    assert_eq!(list["sprites"].as_array().unwrap().len(), 0, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_wake_reports_progress() {
    let rig = rig(&[]);
    let p = &*rig.plugin;
    let (inst, _) = create(p, "sleepy").await;
    rig.emu.force_state(&inst.id, "cold").await;
    assert_eq!(status(p, &inst).await, ops::InstanceStatus::Hibernated);
    // Hibernating a sprite that already sleeps does not wake it.
    p.hibernate(&ops::InstanceRequest {
        instance: inst.clone(),
    })
    .await
    .unwrap();
    assert_eq!(rig.emu.state(&inst.id).await["state"], "cold");
    rig.emu
        .add_fault(json!({"kind": "slow_wake", "path": format!("/v1/sprites/{}", inst.id), "ms": 2500, "times": 1}))
        .await;
    let (r, events) = call::<_, ops::InstanceResponse>(
        p,
        ops::WAKE,
        &ops::InstanceRequest {
            instance: inst.clone(),
        },
    )
    .await;
    let inst = r.unwrap().instance;
    let wake = messages(&events, "wake");
    assert!(wake.iter().any(|m| m.contains("still waking")), "{wake:?}");
    assert!(
        inst.state["last_wake_ms"].as_u64().unwrap() >= 2400,
        "{}",
        inst.state
    );
    assert_eq!(status(p, &inst).await, ops::InstanceStatus::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_attach_socket_reconnects_without_killing_the_agent() {
    let rig = rig(&[]);
    let p = &*rig.plugin;
    let (inst, _) = create(p, "flaky").await;
    let (local, head) = repo(None);
    clone(p, &clone_req(&inst, "", local.path(), &head, WORKSPACE)).await;
    rig.emu
        .add_fault(json!({"kind": "drop_ws", "path": format!("/v1/sprites/{}/exec*", inst.id), "after_bytes": 40, "times": 1}))
        .await;
    let (_started, stream) = start_agent(p, &inst, &["hi"]).await;
    let (mut r, mut w) = stream.split();
    let seen = read_until(&mut r, "type a line").await;
    assert!(
        seen.events.iter().any(|e| e["type"] == "reconnecting"),
        "{:?}",
        seen.events
    );
    assert!(seen.events.iter().any(|e| e["type"] == "reconnected"));
    assert_eq!(
        seen.out.matches("demo-agent: model=").count(),
        1,
        "the replay after the reconnect is not shown twice: {:?}",
        seen.out
    );
    w.write_frame(&Frame::new(FrameKind::Stdin, b"still there?\r".to_vec()))
        .await
        .unwrap();
    read_until(&mut r, "you said: still there?").await;
    detach(r, w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_unauthenticated() {
    let emu = Emulator::start();
    let (_reg, p) = plugin_for(&emu, "not-the-token");
    let err = p
        .check_auth(&ops::CheckAuthRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthenticated, "{err:?}");
    assert!(!err.message.contains("not-the-token"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_and_signal_frames_reach_the_agents_terminal() {
    let rig = rig(&[]);
    let p = &*rig.plugin;
    let (inst, _) = create(p, "tty").await;
    // A stand-in agent that prints its terminal size on each line it reads, and says when it
    // gets SIGINT.
    let script = "trap 'echo got-int; exit 7' INT; echo ready; \
                  while read l; do echo \"size $(stty size)\"; done";
    let (_started, stream) = p
        .attach(&ops::AttachRequest {
            instance: inst.clone(),
            session: None,
            command: vec!["sh".into(), "-c".into(), script.into()],
            cols: 100,
            rows: 30,
            ..Default::default()
        })
        .await
        .unwrap();
    let (mut r, mut w) = stream.split();
    read_until(&mut r, "ready").await;
    w.write_frame(&Frame::new(FrameKind::Stdin, b"a\r".to_vec()))
        .await
        .unwrap();
    read_until(&mut r, "size 30 100").await;
    w.write_frame(&Frame::resize(120, 40)).await.unwrap();
    w.write_frame(&Frame::new(FrameKind::Stdin, b"b\r".to_vec()))
        .await
        .unwrap();
    read_until(&mut r, "size 40 120").await;
    w.write_frame(&Frame::new(FrameKind::Signal, b"INT".to_vec()))
        .await
        .unwrap();
    read_until(&mut r, "got-int").await;
}
