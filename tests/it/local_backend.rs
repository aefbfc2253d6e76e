//! The `local` test backend (`tests/fixtures/local-backend`) loaded through the real loader:
//! real directories, a real `git clone`, real processes on a real PTY. It proves the host's
//! plugin path works with a backend that is not Sprites.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clauderon::plugins::{
    Candidate, DiscoverySource, ErrorKind, Frame, FrameKind, FrameReader, HostSetup, PluginClient,
    PluginRegistry, RegistryError, ops,
};

use crate::support::artifacts::{artifacts, dylib_file_name};
use crate::support::frames::{exec_with_stdin, read_to_exit};
use crate::support::git::git;

/// Bounds every wait on the plugin.
const WAIT: Duration = Duration::from_secs(20);

/// A registry holding its own copy of the fixture library (a separate copy per config: a
/// library is loaded once per path and never unloaded) configured with `config`.
fn local_registry(config: serde_json::Value) -> (PluginRegistry, tempfile::TempDir) {
    let lib = artifacts().cdylib("fixture_local_backend");
    assert!(lib.exists(), "fixture {} was not built", lib.display());
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(dylib_file_name("clauderon_local"));
    std::fs::copy(&lib, &copy).unwrap();
    let setup = HostSetup {
        plugin_config: std::sync::Arc::new(std::collections::BTreeMap::from([(
            "local".to_owned(),
            config,
        )])),
        ..HostSetup::default()
    };
    let reg = PluginRegistry::from_candidates(
        vec![Candidate {
            name: "local".to_owned(),
            path: copy,
            source: DiscoverySource::PluginPath,
        }],
        setup,
    );
    (reg, dir)
}

/// A repository with two commits; returns its HEAD.
fn make_repo(dir: &Path) -> String {
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README.md"), "first\n").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "one"]);
    std::fs::write(dir.join("README.md"), "second\n").unwrap();
    git(dir, &["commit", "-q", "-am", "two"]);
    git(dir, &["rev-parse", "HEAD"])
}

/// Reads frames until `out` (all stdout so far) contains `needle`; returns the output.
async fn read_until(r: &mut FrameReader, needle: &str) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, async {
        loop {
            let f = r.read_frame().await.unwrap().expect("stream ended early");
            match f.kind {
                FrameKind::Stdout | FrameKind::Stderr => out.extend_from_slice(&f.payload),
                other => panic!(
                    "unexpected {other:?} frame waiting for {needle:?}; output so far: {}",
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
            "timed out waiting for {needle:?}; got {:?}",
            String::from_utf8_lossy(&out)
        )
    });
    String::from_utf8_lossy(&out).into_owned()
}

fn alive(pid: i32) -> bool {
    // /proc/<pid>/stat's state: a zombie ('Z') is not alive.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|r| !r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn instance_req(i: &ops::Instance) -> ops::InstanceRequest {
    ops::InstanceRequest {
        instance: i.clone(),
    }
}

async fn attach(
    client: &PluginClient,
    req: ops::AttachRequest,
) -> Result<(ops::StreamStarted, clauderon::plugins::FrameStream), clauderon::plugins::PluginError>
{
    tokio::time::timeout(WAIT, client.attach(&req))
        .await
        .expect("attach timed out")
}

/// A loaded local backend over a fresh root and one created sandbox `demo` (session `s-1`)
/// with the repository of [`make_repo`] cloned into its workspace on `clauderon/demo`.
struct Sandbox {
    _root: tempfile::TempDir,
    _lib: tempfile::TempDir,
    _reg: PluginRegistry,
    client: Arc<PluginClient>,
    inst: ops::Instance,
    sdir: std::path::PathBuf,
    ws: std::path::PathBuf,
    _repo: tempfile::TempDir,
}

const WORKSPACE: &str = "/home/sprite/workspace";

async fn sandbox() -> Sandbox {
    let root = tempfile::tempdir().unwrap();
    let (reg, lib) = local_registry(serde_json::json!({
        "root": root.path().display().to_string(),
        "kill_grace_ms": 500,
    }));
    let client: Arc<PluginClient> = reg.get("local").unwrap();
    let inst = client
        .create(&ops::CreateRequest {
            session_id: "s-1".into(),
            name: "demo".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .instance;
    let repo = tempfile::tempdir().unwrap();
    let head = make_repo(repo.path());
    client
        .clone_repo(&ops::CloneRepoRequest {
            instance: inst.clone(),
            branch: Some("clauderon/demo".into()),
            dest: WORKSPACE.into(),
            local_path: Some(repo.path().display().to_string()),
            base_commit: Some(head),
            base_branch: Some("main".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let sdir = root.path().join("demo");
    let ws = sdir.join("home/sprite/workspace");
    Sandbox {
        _root: root,
        _lib: lib,
        _reg: reg,
        client,
        inst,
        sdir,
        ws,
        _repo: repo,
    }
}

#[tokio::test]
async fn local_backend_creates_lists_and_refuses_a_taken_name() {
    let root = tempfile::tempdir().unwrap();
    let (reg, _lib) = local_registry(serde_json::json!({
        "root": root.path().display().to_string(),
        "kill_grace_ms": 500,
    }));
    let client: Arc<PluginClient> = reg.get("local").unwrap();
    assert_eq!(client.name(), "local");
    let auth = client.check_auth(&ops::CheckAuthRequest {}).await.unwrap();
    assert!(
        auth.detail
            .unwrap()
            .contains(&root.path().display().to_string())
    );

    // create: a directory with home/ and the metadata.
    let labels: BTreeMap<String, String> = [
        ("clauderon".to_owned(), "1".to_owned()),
        ("clauderon.session".to_owned(), "s-1".to_owned()),
    ]
    .into();
    let created = client
        .create(&ops::CreateRequest {
            session_id: "s-1".into(),
            name: "demo".into(),
            labels: labels.clone(),
            memory_limit_mib: Some(512),
            cpu_limit: Some(1.5),
            ..Default::default()
        })
        .await
        .unwrap();
    let inst = created.instance;
    assert_eq!(inst.id, "demo");
    let sdir = root.path().join("demo");
    assert!(sdir.join("home").is_dir());
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sdir.join("sandbox.json")).unwrap()).unwrap();
    assert_eq!(meta["labels"]["clauderon.session"], "s-1");
    assert_eq!(meta["memory_limit_mib"], 512);
    assert_eq!(meta["cpu_limit"], 1.5);
    // Another session cannot take the name.
    let err = client
        .create(&ops::CreateRequest {
            session_id: "s-2".into(),
            name: "demo".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AlreadyExists, "{err:?}");
    let listed = client
        .list_instances(&ops::ListInstancesRequest {
            labels: labels.clone(),
        })
        .await
        .unwrap();
    assert_eq!(listed.instances.len(), 1);
    assert_eq!(listed.instances[0].status, ops::InstanceStatus::Running);
    let none = client
        .list_instances(&ops::ListInstancesRequest {
            labels: [("clauderon.session".to_owned(), "other".to_owned())].into(),
        })
        .await
        .unwrap();
    assert!(none.instances.is_empty());
}

#[tokio::test]
async fn local_backend_clones_with_progress_on_the_session_branch_and_by_depth() {
    let root = tempfile::tempdir().unwrap();
    let (reg, _lib) = local_registry(serde_json::json!({
        "root": root.path().display().to_string(),
    }));
    let client: Arc<PluginClient> = reg.get("local").unwrap();
    let inst = client
        .create(&ops::CreateRequest {
            session_id: "s-1".into(),
            name: "demo".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .instance;
    let sdir = root.path().join("demo");

    // clone_repo from a real repository, with progress events and the session branch.
    let repo = tempfile::tempdir().unwrap();
    let head = make_repo(repo.path());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let cloned: ops::CloneRepoResponse = client
        .call(
            ops::CLONE_REPO,
            &ops::CloneRepoRequest {
                instance: inst.clone(),
                url: "https://example.invalid/demo.git".into(),
                branch: Some("clauderon/demo".into()),
                dest: "/home/sprite/workspace".into(),
                local_path: Some(repo.path().display().to_string()),
                base_commit: Some(head.clone()),
                base_branch: Some("main".into()),
                depth: None,
            },
            Some(tx),
        )
        .await
        .unwrap();
    assert_eq!(cloned.commit.as_deref(), Some(head.as_str()));
    let ws = sdir.join("home/sprite/workspace");
    assert_eq!(
        std::fs::read_to_string(ws.join("README.md")).unwrap(),
        "second\n"
    );
    assert_eq!(
        git(&ws, &["rev-parse", "--abbrev-ref", "HEAD"]),
        "clauderon/demo"
    );
    assert_eq!(
        git(&ws, &["remote", "get-url", "origin"]),
        "https://example.invalid/demo.git"
    );
    let mut events = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        events.push(ev);
    }
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "progress" && e["stage"] == "clone"),
        "{events:?}"
    );

    // A shallow clone whose base commit is not the branch tip: fetched by hash, depth kept.
    let first = git(repo.path(), &["rev-parse", "HEAD~1"]);
    let shallow = client
        .clone_repo(&ops::CloneRepoRequest {
            instance: inst.clone(),
            url: String::new(),
            branch: Some("clauderon/old".into()),
            dest: "shallow".into(),
            local_path: Some(repo.path().display().to_string()),
            base_commit: Some(first.clone()),
            base_branch: Some("main".into()),
            depth: Some(1),
        })
        .await
        .unwrap();
    assert_eq!(shallow.commit.as_deref(), Some(first.as_str()));
    let sh = sdir.join("home/shallow");
    assert_eq!(
        std::fs::read_to_string(sh.join("README.md")).unwrap(),
        "first\n"
    );
    assert_eq!(git(&sh, &["rev-list", "--count", "HEAD"]), "1");
    // Cloning over a non-empty destination is refused.
    let err = client
        .clone_repo(&ops::CloneRepoRequest {
            instance: inst.clone(),
            dest: "shallow".into(),
            local_path: Some(repo.path().display().to_string()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict, "{err:?}");
}

#[tokio::test]
async fn local_backend_exec_and_attach_with_detach_and_replay() {
    let sb = sandbox().await;
    let (client, inst, ws) = (sb.client.clone(), sb.inst.clone(), sb.ws.clone());
    // exec without a TTY: stdin in, stdout/stderr and the exit code out.
    let req = ops::ExecRequest {
        instance: inst.clone(),
        command: vec![
            "sh".into(),
            "-c".into(),
            "cat; echo \"err $(pwd)\" >&2; exit 3".into(),
        ],
        cwd: Some("/home/sprite/workspace".into()),
        ..Default::default()
    };
    let (out, err, code) = exec_with_stdin(&client, &req, b"abc").await;
    assert_eq!((out.as_str(), code), ("abc", 3));
    assert_eq!(err.trim(), format!("err {}", ws.display()));

    // attach: a detachable PTY session, detach, re-attach with replay, exit.
    let (started, stream) = attach(
        &client,
        ops::AttachRequest {
            instance: inst.clone(),
            command: vec![
                "sh".into(),
                "-c".into(),
                "echo hi; [ -t 0 ] && echo tty; read x; echo got $x".into(),
            ],
            cols: 100,
            rows: 30,
            cwd: Some("/home/sprite/workspace".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let session = started.session.expect("a session id");
    let (mut r, mut w) = stream.split();
    read_until(&mut r, "tty").await;
    w.write_frame(&Frame::new(FrameKind::Detach, Vec::new()))
        .await
        .unwrap();
    let end = tokio::time::timeout(WAIT, r.read_frame()).await.unwrap();
    assert!(matches!(end, Ok(None)), "detach closes the stream: {end:?}");
    drop((r, w));

    let (again, stream) = attach(
        &client,
        ops::AttachRequest {
            instance: inst.clone(),
            session: Some(session.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(again.session.as_deref(), Some(session.as_str()));
    let (mut r, mut w) = stream.split();
    // The replay carries what was printed while detached.
    let replay = read_until(&mut r, "tty").await;
    assert!(replay.contains("hi"), "{replay:?}");
    w.write_frame(&Frame::new(FrameKind::Stdin, b"there\n".to_vec()))
        .await
        .unwrap();
    let (out, _, code) = read_to_exit(&mut r).await;
    assert!(out.contains("got there"), "{out:?}");
    assert_eq!(code, 0);
    let err = attach(
        &client,
        ops::AttachRequest {
            instance: inst.clone(),
            session: Some(session.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err:?}");
}

#[tokio::test]
async fn local_backend_hibernate_stops_every_process_and_wake_comes_back() {
    let sb = sandbox().await;
    let (client, inst, sdir) = (sb.client.clone(), sb.inst.clone(), sb.sdir.clone());
    // hibernate stops every process of the sandbox, background children included.
    let (started, stream) = attach(
        &client,
        ops::AttachRequest {
            instance: inst.clone(),
            command: vec![
                "sh".into(),
                "-c".into(),
                "echo $$ > fg.pid; sleep 600 & echo $! > bg.pid; echo ready; wait".into(),
            ],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let sleeper = started.session.unwrap();
    let (mut r, _w) = stream.split();
    read_until(&mut r, "ready").await;
    let home = sdir.join("home");
    let (fg, bg) = (
        read_pid(&home.join("fg.pid")),
        read_pid(&home.join("bg.pid")),
    );
    assert!(alive(fg) && alive(bg));
    let hib = client.hibernate(&instance_req(&inst)).await.unwrap();
    let (_, _, code) = read_to_exit(&mut r).await;
    assert_eq!(code, 128 + 15, "SIGTERM ended the session");
    assert!(!alive(fg) && !alive(bg), "hibernate left processes running");
    let st = client.status(&instance_req(&hib.instance)).await.unwrap();
    assert_eq!(st.status, ops::InstanceStatus::Hibernated);
    let err = client
        .exec(&ops::ExecRequest {
            instance: inst.clone(),
            command: vec!["true".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict, "{err:?}");
    client.wake(&instance_req(&inst)).await.unwrap();
    let err = attach(
        &client,
        ops::AttachRequest {
            instance: inst.clone(),
            session: Some(sleeper),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err:?}");
}

#[tokio::test]
async fn local_backend_checkpoints_roll_back_and_delete_removes_everything() {
    let sb = sandbox().await;
    let (client, inst, sdir, ws) = (
        sb.client.clone(),
        sb.inst.clone(),
        sb.sdir.clone(),
        sb.ws.clone(),
    );
    let home = sdir.join("home");
    // checkpoint create / list / restore rolls a file back.
    let note = ws.join("note.txt");
    std::fs::write(&note, "one").unwrap();
    let cp = client
        .checkpoint_create(&ops::CheckpointCreateRequest {
            instance: inst.clone(),
            comment: Some("before".into()),
        })
        .await
        .unwrap()
        .checkpoint;
    assert_eq!(cp.id, "v0");
    assert_eq!(cp.comment.as_deref(), Some("before"));
    assert!(cp.created_at.is_some());
    std::fs::write(&note, "two").unwrap();
    std::fs::write(ws.join("later.txt"), "x").unwrap();
    let list = client.checkpoint_list(&instance_req(&inst)).await.unwrap();
    assert_eq!(list.checkpoints, vec![cp.clone()]);
    let err = client
        .checkpoint_restore(&ops::CheckpointRestoreRequest {
            instance: inst.clone(),
            checkpoint_id: "v9".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    client
        .checkpoint_restore(&ops::CheckpointRestoreRequest {
            instance: inst.clone(),
            checkpoint_id: cp.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&note).unwrap(), "one");
    assert!(!ws.join("later.txt").exists());
    assert_eq!(
        git(&ws, &["rev-parse", "--abbrev-ref", "HEAD"]),
        "clauderon/demo"
    );

    // delete stops processes and removes the directory; the sandbox is then gone.
    let (_s, stream) = client
        .exec(&ops::ExecRequest {
            instance: inst.clone(),
            command: vec![
                "sh".into(),
                "-c".into(),
                "echo $$ > d.pid; echo up; sleep 600".into(),
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    let (mut r, _w) = stream.split();
    read_until(&mut r, "up").await;
    let pid = read_pid(&home.join("d.pid"));
    client.delete(&instance_req(&inst)).await.unwrap();
    assert!(!sdir.exists());
    assert!(!alive(pid));
    let st = client.status(&instance_req(&inst)).await.unwrap();
    assert_eq!(st.status, ops::InstanceStatus::Gone);
    // Deleting again is fine; waking a gone sandbox is not found.
    client.delete(&instance_req(&inst)).await.unwrap();
    let err = client.wake(&instance_req(&inst)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn local_backend_faults_are_errors_and_the_host_survives() {
    let root = tempfile::tempdir().unwrap();
    let (reg, _lib) = local_registry(serde_json::json!({
        "root": root.path().display().to_string(),
        "fail_create": "no capacity left (fixture)",
        "fail_auth": true,
        "panic_on": "status",
    }));
    let client = reg.get("local").unwrap();
    let err = client
        .create(&ops::CreateRequest {
            session_id: "s".into(),
            name: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.message, "no capacity left (fixture)");
    assert_eq!(
        std::fs::read_dir(root.path()).unwrap().count(),
        0,
        "made nothing"
    );
    let err = client
        .check_auth(&ops::CheckAuthRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthenticated);
    let inst = ops::Instance {
        id: "x".into(),
        state: serde_json::Value::Null,
    };
    let err = client.status(&instance_req(&inst)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Panicked, "{err:?}");
    assert!(err.message.contains("panic_on"), "{}", err.message);
    // Still usable after the panic.
    let list = client
        .list_instances(&ops::ListInstancesRequest::default())
        .await
        .unwrap();
    assert!(list.instances.is_empty());
}

#[test]
fn local_backend_without_root_refuses_to_initialize() {
    let (reg, _lib) = local_registry(serde_json::json!({}));
    match reg.get("local") {
        Err(RegistryError::Load(e)) => {
            let msg = e.to_string();
            assert!(
                msg.contains("required config key `root` is missing"),
                "{msg}"
            );
        }
        other => panic!("expected a load error, got {other:?}"),
    }
}

#[test]
fn local_backend_is_configured_from_config_toml_by_the_cli() {
    let home = crate::support::home::TempHome::new();
    home.install_plugin("local", &artifacts().cdylib("fixture_local_backend"));
    let root = home.path().join("sandboxes");
    home.write_config(&format!(
        "default_backend = \"local\"\n[local]\nroot = \"{}\"\n",
        root.display()
    ));
    let run = home.run(&["plugins", "check"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("local: credentials ok"), "{run:?}");
    assert!(root.is_dir(), "init creates the root");
    home.write_config(&format!(
        "default_backend = \"local\"\n[local]\nroot = \"{}\"\nfail_auth = true\n",
        root.display()
    ));
    let run = home.run(&["plugins", "check"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("fail_auth = true"), "{run:?}");
}
