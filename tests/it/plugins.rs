//! Plugin loading through the real loader: the Sprites plugin and the bad-plugin fixtures.
//!
//! Fixtures under `tests/fixtures/` are workspace members built by `support::artifacts`; the
//! version fixtures (the ABI crate plugin-api at 2.0.0, an older 1.x root-module layout) are
//! built here from patched copies under `target/fixture-workspaces/` with
//! `cargo build --offline` into `target/fixture-target/`, and so is `tests/compat-1.0` (a plugin
//! built against the frozen plugin API 1.0.0 crate, which this host must keep loading). Tests
//! install libraries into a temporary home under `libclauderon_<name>` names and run the real
//! `clauderon` binary.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use clauderon::plugins::{
    Candidate, DiscoverySource, ErrorKind, Frame, FrameKind, HostSetup, PluginClient,
    PluginRegistry, PluginStatus, RegistryError, ops,
};

use crate::support::artifacts::{artifacts, dylib_file_name, fixture, workspace_root};
use crate::support::frames::exec_with_stdin;

/// The plugin API version this host speaks: the ABI crate's version.
const API: &str = clauderon_plugin_api::API_VERSION;
use crate::support::home::{TempHome, assert_exit};

fn report<'a>(list: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    list.as_array()
        .expect("plugins list --json is an array")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list:#}"))
}

#[test]
fn fresh_build_lists_sprites_as_loaded_with_api_version_and_capabilities() {
    let home = TempHome::new();
    let run = home.run(&["plugins", "list", "--json"]);
    assert_exit(&run, 0);
    let list = run.json();
    let sprites = report(&list, "sprites");
    assert_eq!(sprites["status"], "loaded", "{sprites:#}");
    assert_eq!(sprites["api_version"], API);
    assert_eq!(sprites["source"], "exe_dir");
    assert!(sprites["capabilities"].is_array());
    assert_eq!(sprites["reason"], serde_json::Value::Null);
    let secrets = &sprites["details"]["secrets"];
    assert_eq!(secrets[0]["name"], "sprites_api_key");
    assert_eq!(secrets[0]["env"], "SPRITES_API_KEY");
    assert_eq!(secrets[0]["config_key"], "api_key");
    let keys: Vec<&str> = sprites["details"]["config_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "api_url",
            "api_key",
            "hibernate_wait_seconds",
            "reconnect_attempts",
            "relay_path",
            "clone_depth",
            "sync",
            "sync_ignore"
        ]
    );
    let caps = sprites["capabilities"].as_array().unwrap();
    assert!(caps.iter().any(|c| c == "sync_stream"), "{caps:?}");
    assert_eq!(sprites["details"]["config_keys"][0]["type"], "string");
    // Backend facts the plugin declares (plugin API 1.1), so the host names no backend.
    assert_eq!(sprites["details"]["workspace"], "/home/sprite/workspace");
    assert_eq!(sprites["details"]["default_idle_seconds"], 30 * 60);
    // Fixture libraries sit beside the executable too, but are not named libclauderon_*.
    for entry in list.as_array().unwrap() {
        // The file name only: the checkout's own directory may contain "fixture".
        let path = Path::new(entry["path"].as_str().unwrap());
        let file = path.file_name().unwrap().to_string_lossy();
        assert!(!file.contains("fixture"), "{list:#}");
    }

    let text = home.run(&["plugins", "list"]);
    assert_exit(&text, 0);
    let line = text
        .stdout
        .lines()
        .find(|l| l.starts_with("sprites "))
        .expect("a sprites row");
    assert!(line.contains(" loaded "), "{line}");
    assert!(line.contains(API), "{line}");
}

#[test]
fn each_bad_fixture_gets_its_own_error_and_the_host_exits_normally() {
    let home = TempHome::new();
    let not_a_lib = home
        .plugins_dir()
        .join(dylib_file_name("clauderon_notalib"));
    std::fs::write(&not_a_lib, b"this is not an ELF file, just text\n").unwrap();
    home.install_plugin("plain", &fixture("fixture_plain_cdylib"));
    home.install_plugin("init_fails", &fixture("fixture_init_fails"));
    home.install_plugin("init_panics", &fixture("fixture_init_panics"));
    home.install_plugin("async_panic", &fixture("fixture_async_panic"));
    home.install_plugin("ok", &fixture("fixture_ok"));
    // A good library under the wrong name.
    home.install_plugin("misnamed", &fixture("fixture_ok"));

    let run = home.run(&["plugins", "list", "--json"]);
    assert_exit(&run, 0);
    let list = run.json();
    let expect = [
        ("notalib", "failed", "cannot open it as a shared library"),
        (
            "plain",
            "incompatible",
            "is not a clauderon plugin: it does not export CLAUDERON_PLUGIN_DECLARATION",
        ),
        (
            "init_fails",
            "failed",
            "plugin `init_fails` failed to initialize: required config key `token` is missing",
        ),
        (
            "init_panics",
            "failed",
            "plugin `init_panics` panicked during init: fixture init panic: boom",
        ),
        (
            "misnamed",
            "failed",
            "the plugin calls itself `ok`; rename the file to libclauderon_ok.so",
        ),
    ];
    let text = home.run(&["plugins", "list"]);
    assert_exit(&text, 0);
    for (name, status, reason) in expect {
        let r = report(&list, name);
        assert_eq!(r["status"], status, "{r:#}");
        let got = r["reason"].as_str().unwrap_or_default();
        assert!(got.contains(reason), "{name}: {got}");
        // The table shows the status, and the reason follows it under the plugin's name.
        let row = text
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} row:\n{}", text.stdout));
        assert!(row.contains(&format!(" {status} ")), "{row}");
        assert!(
            text.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{name}: ")) && l.contains(reason)),
            "{name}: reason missing from the table:\n{}",
            text.stdout
        );
    }
    // The dlopen reason carries the system's explanation, not just "dlopen failed".
    let notalib = report(&list, "notalib")["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(notalib.contains("dlopen failed: "), "{notalib}");
    for name in ["ok", "async_panic", "sprites"] {
        assert_eq!(report(&list, name)["status"], "loaded", "{name}");
    }
    assert_eq!(
        report(&list, "ok")["capabilities"],
        serde_json::json!(["lifecycle", "exec", "attach", "check_auth", "list"])
    );
    // The panic message went to the host's log, not to a raw stderr print.
    assert!(!run.stderr.contains("thread '"), "{}", run.stderr);

    // On use, each gives the same error and a failure exit code; still no crash.
    for (name, needle) in [
        ("notalib", "cannot open it as a shared library"),
        ("plain", "not a clauderon plugin"),
        ("init_fails", "failed to initialize"),
        ("init_panics", "panicked during init"),
    ] {
        let info = home.run(&["plugins", "info", name]);
        assert_exit(&info, 1);
        assert!(info.stdout.contains(needle), "{name}: {}", info.stdout);
        let check = home.run(&["--backend", name, "plugins", "check"]);
        assert_exit(&check, 1);
        assert!(check.stderr.contains(needle), "{name}: {}", check.stderr);
    }
}

#[test]
fn a_panic_inside_an_async_call_becomes_an_error() {
    let home = TempHome::new();
    home.install_plugin("async_panic", &fixture("fixture_async_panic"));
    let run = home.run(&["plugins", "check", "async_panic"]);
    assert_exit(&run, 1);
    assert!(
        run.stderr
            .contains("check_auth failed (panicked): the plugin panicked in `check_auth`: fixture async panic: kaboom"),
        "{}",
        run.stderr
    );
}

#[test]
fn ok_plugin_gets_config_secrets_and_forwards_logs() {
    let home = TempHome::new();
    home.install_plugin("ok", &fixture("fixture_ok"));
    home.write_config("default_backend = \"ok\"\n[ok]\ngreeting = \"hey\"\n");

    let missing = home.run(&["plugins", "check"]);
    assert_exit(&missing, 1);
    assert!(
        missing
            .stderr
            .contains("(unauthenticated): secret `ok_token` is not set"),
        "{}",
        missing.stderr
    );

    let run = home.run_with(&["plugins", "check", "--json"], |c| {
        c.env("OK_FIXTURE_TOKEN", "s3cr3t-value")
            .env("CLAUDERON_LOG", "info");
    });
    assert_exit(&run, 0);
    let resp = run.json();
    assert_eq!(resp["account"], "hey-user");
    assert_eq!(resp["detail"], "token of 12 bytes");
    assert!(
        run.stderr.contains("fixture check_auth called"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("plugin=\"ok\""), "{}", run.stderr);
    assert!(!run.stderr.contains("s3cr3t-value") && !run.stdout.contains("s3cr3t-value"));
}

#[test]
fn backend_selection_flag_env_and_unknown_names() {
    let home = TempHome::new();
    home.install_plugin("ok", &fixture("fixture_ok"));

    let none = home.run(&["plugins", "check"]);
    assert_exit(&none, 1);
    assert!(
        none.stderr
            .contains("no backend selected: pass --backend NAME"),
        "{}",
        none.stderr
    );
    assert!(
        none.stderr.contains("available: ok, ") && none.stderr.contains("sprites"),
        "{}",
        none.stderr
    );

    let unknown = home.run(&["--backend", "nope", "plugins", "check"]);
    assert_exit(&unknown, 1);
    assert!(
        unknown.stderr.contains("no plugin named `nope`"),
        "{}",
        unknown.stderr
    );
    assert!(
        unknown.stderr.contains("libclauderon_nope.so"),
        "{}",
        unknown.stderr
    );

    let env = home.run_with(&["plugins", "check"], |c| {
        c.env("CLAUDERON_BACKEND", "ok")
            .env("OK_FIXTURE_TOKEN", "x");
    });
    assert_exit(&env, 0);
    assert!(
        env.stdout.contains("ok: credentials ok (fixture-user)"),
        "{}",
        env.stdout
    );

    let usage = home.run(&["plugins", "frobnicate"]);
    assert_exit(&usage, 2);
}

#[test]
fn plugin_path_and_config_path_take_precedence_over_home() {
    let home = TempHome::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let in_path = elsewhere.path().join(dylib_file_name("clauderon_ok"));
    std::fs::copy(fixture("fixture_ok"), &in_path).unwrap();
    // The home copy of `ok` is broken; the CLAUDERON_PLUGIN_PATH one must win.
    std::fs::write(
        home.plugins_dir().join(dylib_file_name("clauderon_ok")),
        b"junk",
    )
    .unwrap();
    let run = home.run_with(&["plugins", "list", "--json"], |c| {
        c.env("CLAUDERON_PLUGIN_PATH", elsewhere.path());
    });
    assert_exit(&run, 0);
    let list = run.json();
    let ok = report(&list, "ok");
    assert_eq!(ok["status"], "loaded", "{ok:#}");
    assert_eq!(ok["source"], "plugin_path");

    // An explicit config path beats everything, whatever the file is called.
    let custom = elsewhere.path().join("custom-name.so");
    std::fs::copy(fixture("fixture_async_panic"), &custom).unwrap();
    home.write_config(&format!(
        "[plugins.async_panic]\npath = \"{}\"\n",
        custom.display()
    ));
    let run = home.run(&["plugins", "info", "async_panic", "--json"]);
    assert_exit(&run, 0);
    let info = run.json();
    assert_eq!(info["source"], "config");
    assert_eq!(info["path"], custom.display().to_string());
}

// ---- in-process: the host library loading the real fixture library -------------------------

fn registry_with(name: &str, lib: &Path) -> PluginRegistry {
    PluginRegistry::from_candidates(
        vec![Candidate {
            name: name.to_owned(),
            path: lib.to_path_buf(),
            source: DiscoverySource::PluginPath,
        }],
        HostSetup::default(),
    )
}

/// A registry of one plugin `name` loaded from a fresh copy of `lib` (kept: libraries are never
/// unloaded), so what a test does to it (panics, shutdown) stays with that copy.
fn registry_of_copy(name: &str, lib: &Path) -> PluginRegistry {
    let dir = tempfile::tempdir().unwrap().keep();
    let copy = dir.join(dylib_file_name(&format!("clauderon_{name}")));
    std::fs::copy(lib, &copy).unwrap();
    registry_with(name, &copy)
}

fn ok_registry() -> &'static PluginRegistry {
    // One copy of the library per test binary.
    static REG: OnceLock<PluginRegistry> = OnceLock::new();
    REG.get_or_init(|| registry_of_copy("ok", &fixture("fixture_ok")))
}

#[tokio::test]
async fn exec_stream_events_extension_and_undeclared_secret_in_process() {
    let reg = ok_registry();
    let client = reg.get("ok").unwrap();
    let again = reg.get("ok").unwrap();
    assert!(Arc::ptr_eq(&client, &again), "loaded once");
    // The backend facts it declares, typed.
    assert_eq!(client.workspace(), Some("/srv/ok-workspace"));
    assert_eq!(
        client.default_idle(),
        Some(std::time::Duration::from_secs(90))
    );

    // Progress events reach the caller of that request.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let req = ops::InstanceRequest {
        instance: ops::Instance {
            id: "i-1".into(),
            state: serde_json::json!({"v": 1}),
        },
    };
    let resp: ops::StatusResponse = client.call(ops::STATUS, &req, Some(tx)).await.unwrap();
    assert_eq!(resp.status, ops::InstanceStatus::Running);
    assert_eq!(resp.instance, req.instance);
    let ev = rx.try_recv().expect("a progress event");
    assert_eq!(ev["type"], "progress");
    assert_eq!(ev["stage"], "probe");

    // Exec over the socketpair: the plugin echoes stdin and ends with Exit.
    let (out, code) = echo_hi(&client, &req.instance).await;
    assert_eq!((out.as_str(), code), ("echo hi\nping", 7));

    // Attach: resize and detach travel host→plugin, output and events come back.
    let (_started, stream) = client
        .attach(&ops::AttachRequest {
            instance: req.instance.clone(),
            cols: 80,
            rows: 24,
            ..Default::default()
        })
        .await
        .unwrap();
    let (mut r, mut w) = stream.split();
    let first = r.read_frame().await.unwrap().unwrap();
    assert_eq!(first.payload, b"attached 80x24\n");
    w.write_frame(&Frame::resize(100, 40)).await.unwrap();
    let resized = r.read_frame().await.unwrap().unwrap();
    assert_eq!(
        (resized.kind, resized.payload.as_slice()),
        (FrameKind::Stdout, &b"resized 100x40\n"[..])
    );
    w.write_frame(&Frame::new(FrameKind::Detach, Vec::new()))
        .await
        .unwrap();
    let ev = r.read_frame().await.unwrap().unwrap();
    assert_eq!(ev.kind, FrameKind::Event);
    assert_eq!(
        String::from_utf8(ev.payload).unwrap(),
        r#"{"type":"detached"}"#
    );
    assert!(
        r.read_frame().await.unwrap().is_none(),
        "the plugin closed its end"
    );

    // Secrets the plugin did not declare are refused.
    let err = client
        .list_instances(&ops::ListInstancesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::PermissionDenied);
    assert!(err.message.contains("did not declare"), "{}", err.message);

    // Not in its capabilities: Unsupported, without reaching the plugin's code.
    let err = client.hibernate(&req).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unsupported);
    let err: clauderon::plugins::PluginError = client
        .call::<_, serde_json::Value>("teleport", &serde_json::json!({}), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unsupported);

    // The extension example: a `#[repr(C)]` vtable looked up by name and major.
    #[repr(C)]
    struct HelloV1 {
        answer: extern "C" fn() -> u32,
    }
    let ext = client.extension("hello", 1).expect("hello v1");
    // SAFETY: `hello` major 1 is `HelloV1` by the fixture's contract.
    let hello = unsafe { &*ext.cast::<HelloV1>() };
    assert_eq!((hello.answer)(), 42);
    assert!(client.extension("hello", 2).is_none());
}

/// Runs `echo hi` through `client`'s exec stream with `ping` on stdin; returns the stdout and
/// the exit code.
async fn echo_hi(client: &PluginClient, instance: &ops::Instance) -> (String, i32) {
    let req = ops::ExecRequest {
        instance: instance.clone(),
        command: vec!["echo".into(), "hi".into()],
        ..Default::default()
    };
    let (out, err, code) = exec_with_stdin(client, &req, b"ping").await;
    assert_eq!(err, "");
    (out, code)
}

#[tokio::test]
async fn progress_events_reach_only_the_call_that_emitted_them() {
    let client = ok_registry().get("ok").unwrap();
    let calls = (0..8).map(|i| {
        let client = Arc::clone(&client);
        async move {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let req = ops::InstanceRequest {
                instance: ops::Instance {
                    id: format!("concurrent-{i}"),
                    state: serde_json::json!({"v": 1}),
                },
            };
            let resp: ops::StatusResponse = client.call(ops::STATUS, &req, Some(tx)).await.unwrap();
            assert_eq!(resp.instance.id, format!("concurrent-{i}"));
            let mut got = Vec::new();
            while let Ok(ev) = rx.try_recv() {
                got.push(ev);
            }
            got
        }
    });
    for (i, got) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        // The fixture emits exactly one progress event per status call.
        assert_eq!(got.len(), 1, "call {i} got {got:?}");
        assert_eq!(got[0]["stage"], "probe");
    }
}

#[tokio::test]
async fn dropping_a_call_cancels_the_work_inside_the_plugin() {
    let client = ok_registry().get("ok").unwrap();
    let probe = ops::InstanceRequest {
        instance: ops::Instance {
            id: "probe".into(),
            state: serde_json::Value::Null,
        },
    };
    let before = client.status(&probe).await.unwrap().instance.state;
    // The host-version service answers the host crate's version.
    let manifest = std::fs::read_to_string(workspace_root().join("host/Cargo.toml")).unwrap();
    let host_version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap();
    assert_eq!(before["host_version"], host_version);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let call = client.call::<_, ops::InstanceResponse>(ops::START, &probe, Some(tx));
    tokio::select! {
        r = call => panic!("start never finishes on its own: {r:?}"),
        ev = rx.recv() => assert_eq!(ev.unwrap()["type"], "started"),
    }
    // The call future is dropped here; the abort travels to the plugin's task asynchronously,
    // with no signal to wait on, so poll the plugin's counter (bounded).
    let want = before["cancelled"].as_u64().unwrap() + 1;
    let mut cancelled = 0;
    for _ in 0..500 {
        let state = client.status(&probe).await.unwrap().instance.state;
        cancelled = state["cancelled"].as_u64().unwrap();
        if cancelled >= want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(cancelled, want, "the plugin-side task was not cancelled");
}

#[test]
fn loading_is_lazy_and_happens_once() {
    // Two candidates whose files do not exist yet: building the registry and using one plugin
    // must not open the other; once loaded, a plugin is never opened again.
    let dir = tempfile::tempdir().unwrap().keep();
    let panics = dir.join(dylib_file_name("clauderon_init_panics"));
    let late = dir.join(dylib_file_name("clauderon_async_panic"));
    let reg = PluginRegistry::from_candidates(
        vec![
            Candidate {
                name: "init_panics".to_owned(),
                path: panics.clone(),
                source: DiscoverySource::PluginPath,
            },
            Candidate {
                name: "async_panic".to_owned(),
                path: late.clone(),
                source: DiscoverySource::PluginPath,
            },
        ],
        HostSetup::default(),
    );
    std::fs::copy(fixture("fixture_async_panic"), &late).unwrap();
    let first = reg.get("async_panic").unwrap();
    // Had `get` (or the registry) opened init_panics, its missing file would be cached as a
    // failure; installing it now must still be seen on first use.
    std::fs::copy(fixture("fixture_init_panics"), &panics).unwrap();
    match reg.get("init_panics") {
        Err(RegistryError::Load(e)) => {
            assert!(e.to_string().contains("panicked during init"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // Loaded once: with the file gone (unlinked, never overwritten in place: it is mapped), the
    // plugin is still there for this process.
    std::fs::remove_file(&late).unwrap();
    let again = reg.get("async_panic").unwrap();
    assert!(Arc::ptr_eq(&first, &again), "loaded once");
    assert_eq!(
        reg.report_named("async_panic").unwrap().status,
        PluginStatus::Loaded
    );
}

#[tokio::test]
async fn shutdown_stops_the_plugins_runtime_and_later_calls_are_cancelled() {
    // A copy of its own: the runtime of this library is stopped for the rest of the process.
    let reg = registry_of_copy("ok", &fixture("fixture_ok"));
    let client = reg.get("ok").unwrap();
    let req = ops::InstanceRequest {
        instance: ops::Instance {
            id: "i-2".into(),
            state: serde_json::Value::Null,
        },
    };
    client.status(&req).await.unwrap();
    // Off the async runtime: shutdown blocks until the plugin's workers stopped (bounded).
    let reg = Arc::new(reg);
    let r = Arc::clone(&reg);
    tokio::task::spawn_blocking(move || r.shutdown_all(std::time::Duration::from_secs(5)))
        .await
        .unwrap();
    let err = client.status(&req).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Cancelled, "{err:?}");
    assert!(err.message.contains("shut down"), "{}", err.message);
}

#[test]
fn unknown_name_lists_what_exists() {
    let reg = registry_with("ok", Path::new("/nonexistent/libclauderon_ok.so"));
    match reg.get("other") {
        Err(RegistryError::Unknown { available, .. }) => assert_eq!(available, "ok"),
        other => panic!("{other:?}"),
    }
    let r = reg.report_named("ok").unwrap();
    assert_eq!(r.status, PluginStatus::Failed);
}

// ---- version fixtures built at test time ---------------------------------------------------

/// Writes `contents` to `path` only if it differs (keeps cargo's fingerprints stable).
fn write_if_changed(path: &Path, contents: &str) {
    if std::fs::read_to_string(path).ok().as_deref() == Some(contents) {
        return;
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

/// Copies `from` to `to` (patching each file), removing what `from` no longer has.
fn copy_tree(from: &Path, to: &Path, patch: &dyn Fn(&Path, String) -> String) {
    if let Ok(existing) = std::fs::read_dir(to) {
        for entry in existing {
            let dest = entry.unwrap().path();
            if !from.join(dest.file_name().unwrap()).exists() {
                if dest.is_dir() {
                    std::fs::remove_dir_all(&dest).unwrap();
                } else {
                    std::fs::remove_file(&dest).unwrap();
                }
            }
        }
    }
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let src = entry.path();
        let dest = to.join(entry.file_name());
        if src.is_dir() {
            copy_tree(&src, &dest, patch);
        } else {
            let text = std::fs::read_to_string(&src).unwrap();
            write_if_changed(&dest, &patch(&src, text));
        }
    }
}

fn replace_once(text: &str, from: &str, to: &str, what: &str) -> String {
    assert!(
        text.contains(from),
        "patch for {what} no longer applies: `{from}` not found"
    );
    text.replacen(from, to, 1)
}

/// Builds the ok fixture against the SDK over a patched copy of the ABI crate (plugin-api);
/// returns the library path.
fn build_variant(
    variant: &str,
    api_version: &str,
    patch_api: &dyn Fn(&Path, String) -> String,
) -> PathBuf {
    // Two tests may build the same variant at once: one would read the manifests and the lock
    // file the other is writing. One build at a time (they share cargo's lock anyway).
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let root = workspace_root();
    let ws = root.join("target/fixture-workspaces").join(variant);
    let root_manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let start = root_manifest.find("members = [").unwrap();
    let end = start + root_manifest[start..].find(']').unwrap() + 1;
    let mut manifest = format!(
        "{}members = [\"plugin-api\", \"plugin-sdk\", \"plugin\"]{}",
        &root_manifest[..start],
        &root_manifest[end..]
    );
    let current = clauderon_plugin_api::API_VERSION;
    manifest = replace_once(
        &manifest,
        &format!("clauderon-plugin-api = {{ path = \"plugin-api\", version = \"{current}\" }}"),
        &format!("clauderon-plugin-api = {{ path = \"plugin-api\", version = \"{api_version}\" }}"),
        "workspace manifest",
    );
    manifest = manifest
        .lines()
        .filter(|l| !l.starts_with("clauderon-sprites =") && !l.starts_with("clauderon ="))
        .collect::<Vec<_>>()
        .join("\n");
    write_if_changed(&ws.join("Cargo.toml"), &manifest);
    write_if_changed(
        &ws.join("Cargo.lock"),
        &std::fs::read_to_string(root.join("Cargo.lock")).unwrap(),
    );
    let api_manifest = std::fs::read_to_string(root.join("plugin-api/Cargo.toml")).unwrap();
    write_if_changed(
        &ws.join("plugin-api/Cargo.toml"),
        &replace_once(
            &api_manifest,
            &format!("version = \"{current}\""),
            &format!("version = \"{api_version}\""),
            "plugin-api manifest",
        ),
    );
    copy_tree(
        &root.join("plugin-api/src"),
        &ws.join("plugin-api/src"),
        patch_api,
    );
    write_if_changed(
        &ws.join("plugin-sdk/Cargo.toml"),
        &std::fs::read_to_string(root.join("plugin-sdk/Cargo.toml")).unwrap(),
    );
    for dir in ["src", "examples"] {
        copy_tree(
            &root.join("plugin-sdk").join(dir),
            &ws.join("plugin-sdk").join(dir),
            &|_, text| text,
        );
    }
    let lib = format!("fixture_{variant}");
    write_if_changed(
        &ws.join("plugin/Cargo.toml"),
        &format!(
            "[package]\nname = \"fixture-{variant}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
             [lib]\nname = \"{lib}\"\ncrate-type = [\"cdylib\"]\n\n[dependencies]\n\
             clauderon-plugin-sdk.workspace = true\nserde_json.workspace = true\n\
             tokio.workspace = true\ntracing.workspace = true\n"
        ),
    );
    write_if_changed(
        &ws.join("plugin/src/lib.rs"),
        &std::fs::read_to_string(root.join("tests/fixtures/ok/src/lib.rs")).unwrap(),
    );
    let target = root.join("target/fixture-target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = crate::support::artifacts::without_test_env(&mut Command::new(cargo))
        .current_dir(&ws)
        .args([
            "build",
            "--offline",
            "--quiet",
            "-p",
            &format!("fixture-{variant}"),
        ])
        .arg("--target-dir")
        .arg(&target)
        .env("FIXTURE_PLUGIN_NAME", variant)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building the {variant} fixture failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.join("debug").join(dylib_file_name(&lib))
}

#[test]
fn plugins_built_against_another_major_or_an_older_layout_are_refused_clearly() {
    let api2 = build_variant("api2", "2.0.0", &|_, text| text);
    let old = build_variant("old_layout", "1.0.0", &|path, text| {
        match path.file_name().and_then(|f| f.to_str()) {
            // The older layout: the root module ended at `extension` (no `shutdown` yet).
            Some("ffi.rs") => replace_once(
                &text,
                "    pub extension: extern \"C\" fn(RStr<'_>, u32) -> ROption<FfiExtension>,\n    \
                 /// Shuts the plugin's runtime down, waiting at most this many milliseconds.\n    \
                 #[sabi(last_prefix_field)]\n    pub shutdown: extern \"C\" fn(u64),\n",
                "    #[sabi(last_prefix_field)]\n    \
                 pub extension: extern \"C\" fn(RStr<'_>, u32) -> ROption<FfiExtension>,\n",
                "ffi.rs",
            ),
            Some("mod.rs") if path.ends_with("export/mod.rs") => replace_once(
                &text,
                "        shutdown: shutdown::<E>,\n",
                "",
                "export/mod.rs",
            ),
            _ => text,
        }
    });
    // Same major, newer minor: accepted.
    let minor = build_variant("api1_minor", "1.3.0", &|_, text| text);
    let home = TempHome::new();
    home.install_plugin("api2", &api2);
    home.install_plugin("old_layout", &old);
    home.install_plugin("api1_minor", &minor);
    let run = home.run(&["plugins", "list", "--json"]);
    assert_exit(&run, 0);
    let list = run.json();

    let r = report(&list, "api1_minor");
    assert_eq!(r["status"], "loaded", "{r:#}");
    assert_eq!(r["api_version"], "1.3.0");

    let r = report(&list, "api2");
    assert_eq!(r["status"], "incompatible", "{r:#}");
    assert_eq!(r["api_version"], "2.0.0");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("was built against clauderon-plugin-api 2.0.0, but this clauderon speaks clauderon-plugin-api {API}: rebuild the plugin with a clauderon-plugin-sdk on clauderon-plugin-api 1.x")),
        "{reason}"
    );

    // Pinned: abi_stable refuses a plugin whose root module has fewer prefix fields than the
    // host's (see shared notes §1.3), and we report it as a layout mismatch.
    let r = report(&list, "old_layout");
    assert_eq!(r["status"], "incompatible", "{r:#}");
    assert_eq!(r["api_version"], "1.0.0");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("declares clauderon-plugin-api 1.0.0, but its ABI layout does not match this host's clauderon-plugin-api {API}")),
        "{reason}"
    );
    assert!(
        reason.contains(&format!(
            "rebuild the plugin with a clauderon-plugin-sdk on clauderon-plugin-api {API}"
        )),
        "{reason}"
    );
    assert!(reason.contains("too many fields"), "{reason}");

    // On use, each gives the same error and a failure exit code.
    let use_it = home.run(&["plugins", "check", "api2"]);
    assert_exit(&use_it, 1);
    assert!(
        use_it
            .stderr
            .contains(&format!("was built against clauderon-plugin-api 2.0.0, but this clauderon speaks clauderon-plugin-api {API}")),
        "{}",
        use_it.stderr
    );
    let use_it = home.run(&["plugins", "check", "old_layout"]);
    assert_exit(&use_it, 1);
    assert!(
        use_it.stderr.contains("its ABI layout does not match"),
        "{}",
        use_it.stderr
    );
    for name in ["api2", "old_layout"] {
        let info = home.run(&["plugins", "info", name, "--json"]);
        assert_exit(&info, 1);
        assert_eq!(info.json()["status"], "incompatible", "{name}");
    }
}

/// The versions of `krate` in a Cargo.lock.
fn locked_versions(lock: &str, krate: &str) -> Vec<String> {
    lock.split("[[package]]")
        .filter(|block| block.lines().any(|l| l == format!("name = \"{krate}\"")))
        .filter_map(|block| {
            block
                .lines()
                .find_map(|l| l.strip_prefix("version = \""))
                .map(|v| v.trim_end_matches('"').to_owned())
        })
        .collect()
}

/// Builds `tests/compat-1.0` once per test binary: a plugin written against the frozen copy of
/// the plugin API 1.0.0 crate, in a workspace of its own (the frozen crate has the ABI crate's
/// package name), with the main Cargo.lock so it uses the host's dependency versions.
fn compat_1_0() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let root = workspace_root();
        let src = root.join("tests/compat-1.0");
        let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
        // The library and the host must share abi_stable's ABI: the pins of the frozen build are
        // the versions the host links.
        let manifest = std::fs::read_to_string(src.join("Cargo.toml")).unwrap();
        for krate in ["abi_stable", "async-ffi"] {
            let pinned = manifest
                .lines()
                .find(|l| l.starts_with(&format!("{krate} = ")))
                .and_then(|l| l.split("\"=").nth(1))
                .and_then(|v| v.split('"').next())
                .unwrap_or_else(|| panic!("tests/compat-1.0/Cargo.toml pins no {krate}"));
            assert_eq!(
                locked_versions(&lock, krate),
                [pinned],
                "the host links another {krate} than plugins built against plugin API 1.0.0"
            );
        }
        let ws = root.join("target/fixture-workspaces/compat-1.0");
        copy_tree(&src, &ws, &|_, text| text);
        write_if_changed(&ws.join("Cargo.lock"), &lock);
        let target = root.join("target/fixture-target");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let out = crate::support::artifacts::without_test_env(&mut Command::new(cargo))
            .current_dir(&ws)
            .args(["build", "--offline", "--quiet", "-p", "fixture-compat-1-0"])
            .arg("--target-dir")
            .arg(&target)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "building tests/compat-1.0 failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target
            .join("debug")
            .join(dylib_file_name("fixture_compat_1_0"))
    })
}

#[test]
fn a_plugin_built_against_plugin_api_1_0_0_loads_and_answers_through_the_cli() {
    // Meaningful because this host is a later 1.x: its root module, vtables and payloads are
    // the ones 1.0.0 froze, reached through another crate layout.
    assert!(API.starts_with("1.") && API != "1.0.0", "host speaks {API}");
    let home = TempHome::new();
    home.install_plugin("compat", compat_1_0());
    home.write_config("[compat]\ngreeting = \"hi\"\n");
    let run = home.run(&["plugins", "info", "compat", "--json"]);
    assert_exit(&run, 0);
    let info = run.json();
    assert_eq!(info["status"], "loaded", "{info:#}");
    assert_eq!(info["api_version"], "1.0.0");
    assert_eq!(
        info["capabilities"],
        serde_json::json!(["lifecycle", "exec", "check_auth"])
    );
    let details = &info["details"];
    assert_eq!(details["config_keys"][0]["name"], "greeting");
    assert_eq!(details["secrets"][0]["env"], "COMPAT_FIXTURE_TOKEN");
    // Details from before 1.1 carry no backend facts.
    assert_eq!(details.get("workspace"), None, "{details:#}");

    // A real async call: the host's secret service, a timer on the plugin's runtime, the
    // plugin's log forwarded into the host's log, the config table handed to init.
    let check = home.run_with(&["plugins", "check", "compat", "--json"], |c| {
        c.env("COMPAT_FIXTURE_TOKEN", "abc")
            .env("CLAUDERON_LOG", "info");
    });
    assert_exit(&check, 0);
    let answer = check.json();
    assert_eq!(answer["account"], "hi-1.0");
    // The secret's length and the host's version, as the plugin saw them.
    let detail = answer["detail"].as_str().unwrap_or_default();
    let host = detail.strip_prefix("token of 3 bytes, host ");
    assert!(host.is_some_and(|v| !v.is_empty()), "{answer:#}");
    assert!(
        check.stderr.contains("compat check_auth called")
            && check.stderr.contains("plugin=\"compat\""),
        "{}",
        check.stderr
    );
    let missing = home.run(&["plugins", "check", "compat"]);
    assert_exit(&missing, 1);
    assert!(
        missing
            .stderr
            .contains("(unauthenticated): secret `compat_token` is not set"),
        "{}",
        missing.stderr
    );
}

#[tokio::test]
async fn a_plugin_built_against_plugin_api_1_0_0_runs_calls_and_streams_in_process() {
    let reg = registry_of_copy("compat", compat_1_0());
    let client = reg.get("compat").unwrap();
    assert_eq!(client.info().api_version, "1.0.0");
    assert_eq!((client.workspace(), client.default_idle()), (None, None));

    // A call through the typed client, with the progress event it emits routed back.
    let req = ops::InstanceRequest {
        instance: ops::Instance {
            id: "c-1".into(),
            state: serde_json::Value::Null,
        },
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let resp: ops::StatusResponse = client.call(ops::STATUS, &req, Some(tx)).await.unwrap();
    assert_eq!(resp.status, ops::InstanceStatus::Running);
    assert_eq!(resp.instance.id, "c-1");
    assert_eq!(resp.instance.state["built_against"], "1.0.0");
    let ev = rx.try_recv().expect("a progress event");
    assert_eq!(
        (ev["type"].as_str(), ev["stage"].as_str()),
        (Some("progress"), Some("compat"))
    );

    // Errors keep their kind and causes; an op outside its capabilities is refused by its SDK.
    let err = client.start(&req).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict, "{err:?}");
    assert_eq!(err.message, "compat sandboxes never start");
    assert_eq!(err.causes, ["by design of the fixture"]);
    let err = client.hibernate(&req).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unsupported, "{err:?}");

    // A stream: the fd handed over and the 1.0 frame codec, both ways.
    let (out, code) = echo_hi(&client, &req.instance).await;
    assert_eq!((out.as_str(), code), ("echo hi: ping\n", 3));
}

#[test]
fn the_guide_example_builds_and_loads() {
    // The guide shows the example file itself (after its `//!` header), so what is built here is
    // what a reader copies.
    let root = workspace_root();
    let guide = std::fs::read_to_string(root.join("plugin-sdk/README.md")).unwrap();
    let example =
        std::fs::read_to_string(root.join("plugin-sdk/examples/clauderon_hello.rs")).unwrap();
    let body: String = example
        .lines()
        .skip_while(|l| l.starts_with("//!") || l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        guide.contains(&format!("```rust\n{body}```\n")),
        "plugin-sdk/README.md section 2 no longer shows examples/clauderon_hello.rs verbatim"
    );

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = crate::support::artifacts::without_test_env(&mut Command::new(cargo))
        .current_dir(workspace_root())
        .args([
            "build",
            "--quiet",
            "-p",
            "clauderon-plugin-sdk",
            "--example",
            "clauderon_hello",
        ])
        .status()
        .unwrap();
    assert!(status.success(), "building the guide example failed");
    let lib = artifacts()
        .dir
        .join("examples")
        .join(dylib_file_name("clauderon_hello"));
    let home = TempHome::new();
    home.install_plugin("hello", &lib);
    home.write_config("[hello]\ngreeting = \"hi there\"\n");
    let run = home.run(&["plugins", "info", "hello", "--json"]);
    assert_exit(&run, 0);
    let info = run.json();
    assert_eq!(info["status"], "loaded", "{info:#}");
    assert_eq!(
        info["capabilities"],
        serde_json::json!(["lifecycle", "check_auth"])
    );
    let check = home.run(&["plugins", "check", "hello"]);
    assert_exit(&check, 0);
    assert!(
        check.stdout.contains("hello: credentials ok (hi there)"),
        "{}",
        check.stdout
    );
}

#[test]
fn sprites_refuses_a_bad_config_with_a_clear_error() {
    let home = TempHome::new();
    // A wrong type is caught by the host against the schema the plugin declares, with the
    // file, line, column and key.
    home.write_config("[sprites]\napi_url = 5\n");
    let run = home.run(&["plugins", "list", "--json"]);
    assert_exit(&run, 0);
    let list = run.json();
    let sprites = report(&list, "sprites");
    assert_eq!(sprites["status"], "failed", "{sprites:#}");
    let reason = sprites["reason"].as_str().unwrap();
    assert!(
        reason.contains("its config table is invalid")
            && reason.contains("config.toml:2:11: `sprites.api_url`: expected a string"),
        "{sprites:#}"
    );

    // An unknown key too, naming the keys it accepts.
    home.write_config("[sprites]\napi_ur = \"http://x\"\n");
    let run = home.run(&["plugins", "info", "sprites"]);
    assert_exit(&run, 1);
    assert!(
        run.stdout
            .contains("config.toml:2:1: `sprites.api_ur`: unknown key `api_ur`")
            && run
                .stdout
                .contains("accepted keys: api_key, api_url, clone_depth, hibernate_wait_seconds, reconnect_attempts, relay_path"),
        "{}",
        run.stdout
    );

    // A value of the right type the plugin itself refuses.
    home.write_config("[sprites]\napi_url = \"ftp://x\"\n");
    let run = home.run(&["plugins", "info", "sprites"]);
    assert_exit(&run, 1);
    assert!(
        run.stdout.contains("must start with http:// or https://"),
        "{}",
        run.stdout
    );
}

/// Every `.rs` file and `Cargo.toml` under `dir` (build output skipped).
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") || name == "Cargo.toml" {
            out.push(path);
        }
    }
}

#[test]
fn only_the_abi_crate_and_the_host_loader_name_the_ffi_crates() {
    // The ABI crate (plugin-api/) is the one place that defines FFI types; the SDK, plugins,
    // fixtures and the rest of the host must not name them.
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in ["host", "plugin-sdk", "plugins", "tests", "examples"] {
        if root.join(dir).is_dir() {
            sources(&root.join(dir), &mut files);
        }
    }
    assert!(
        files.contains(&root.join("plugin-sdk/src/lib.rs")),
        "the scan must cover the SDK"
    );
    let allowed = |p: &Path| {
        p.starts_with(root.join("host/src/plugins"))
            || p == root.join("host/Cargo.toml")
            // The frozen plugin API 1.0.0 crate (ABI and SDK in one, as it shipped) and the
            // workspace that builds it.
            || p.starts_with(root.join("tests/compat-1.0"))
    };
    // Spelled in pieces so that this file does not name them itself.
    let crates = [["abi", "stable"].join("_"), ["async", "ffi"].join("_")];
    let mut offenders = Vec::new();
    for file in files.iter().filter(|p| !allowed(p)) {
        let manifest = file.ends_with("Cargo.toml");
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = if manifest {
                line.split('#').next().unwrap_or_default()
            } else {
                line.split("//").next().unwrap_or_default()
            };
            let names_one = crates.iter().any(|c| {
                if manifest {
                    code.trim_start().starts_with(&c.replace('_', "-"))
                        || code.trim_start().starts_with(c.as_str())
                } else {
                    code.contains(&format!("{c}::")) || code.contains(&format!("use {c}"))
                }
            });
            if names_one {
                offenders.push(format!("{}:{}: {line}", file.display(), n + 1));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "only plugin-api (the ABI crate) and host/src/plugins may name the FFI crates (the SDK \
         wraps them; authors use the SDK):\n{}",
        offenders.join("\n")
    );
}

#[tokio::test]
async fn a_panicking_call_marks_the_plugin_faulted_and_later_calls_still_run() {
    // Copies of their own: the panics recorded here must not leak into other tests' registries.
    let dir = tempfile::tempdir().unwrap().keep();
    let mut candidates = Vec::new();
    for (name, lib) in [
        ("async_panic", "fixture_async_panic"),
        ("init_panics", "fixture_init_panics"),
        ("ok", "fixture_ok"),
    ] {
        let path = dir.join(dylib_file_name(&format!("clauderon_{name}")));
        std::fs::copy(fixture(lib), &path).unwrap();
        candidates.push(Candidate {
            name: name.to_owned(),
            path,
            source: DiscoverySource::PluginPath,
        });
    }
    let reg = PluginRegistry::from_candidates(candidates, HostSetup::default());

    // A panic in init is recorded too (the plugin stays `failed`: it has no backend).
    let init = reg.report_named("init_panics").unwrap();
    assert_eq!(init.status, PluginStatus::Failed);
    let f = init.fault.expect("init panic recorded");
    assert_eq!((f.panics, f.last_op.as_str()), (1, "init"));
    assert_eq!(f.last_message, "fixture init panic: boom");

    let client = reg.get("async_panic").unwrap();
    let before = reg.report_named("async_panic").unwrap();
    assert_eq!(before.status, PluginStatus::Loaded);
    assert_eq!(before.fault, None);

    let err = client
        .check_auth(&ops::CheckAuthRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Panicked, "{err:?}");
    let r = reg.report_named("async_panic").unwrap();
    assert_eq!(r.status, PluginStatus::Faulted);
    let f = r.fault.clone().unwrap();
    assert_eq!(f.panics, 1);
    assert_eq!(f.last_op, "check_auth");
    assert_eq!(f.last_message, "fixture async panic: kaboom");
    assert_eq!(
        r.reason.as_deref(),
        Some(
            "panicked in check_auth: fixture async panic: kaboom (1 panic caught; calls keep working)"
        )
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["status"], "faulted", "{json:#}");
    assert_eq!(json["fault"]["last_op"], "check_auth", "{json:#}");
    assert_eq!(r.status.to_string(), "faulted");
    assert!(r.status.is_usable());

    // The plugin's runtime survived: it still answers (an op it lacks is refused by the
    // plugin itself, and check_auth runs again, panicking again: counted).
    let req = ops::InstanceRequest {
        instance: ops::Instance {
            id: "i-f".into(),
            state: serde_json::Value::Null,
        },
    };
    let unsupported = client.status(&req).await.unwrap_err();
    assert_eq!(unsupported.kind, ErrorKind::Unsupported, "{unsupported:?}");
    let again = client
        .check_auth(&ops::CheckAuthRequest::default())
        .await
        .unwrap_err();
    assert_eq!(again.kind, ErrorKind::Panicked, "{again:?}");
    let f = reg.report_named("async_panic").unwrap().fault.unwrap();
    assert_eq!(f.panics, 2);
    assert_eq!(client.fault(), Some(f));

    // A plugin that never panicked stays `loaded`, and its calls work.
    let ok = reg.get("ok").unwrap();
    ok.status(&req).await.unwrap();
    let ok_report = reg.report_named("ok").unwrap();
    assert_eq!(ok_report.status, PluginStatus::Loaded);
    assert_eq!(ok_report.fault, None);
    assert_eq!(ok_report.reason, None);
}

/// `clauderon plugins install`: a file that is not a plugin, or one of another major, is refused
/// with the loader's reason and nothing is copied; a plugin is installed under its own name; a
/// new build replaces the old one by rename, so a process holding the old file keeps its bytes;
/// the same bytes again change nothing.
#[test]
fn plugins_install_verifies_first_and_replaces_by_rename() {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;

    let home = TempHome::new();
    let plugins = home.path().join("plugins");
    let installed = |home: &TempHome| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(home.path().join("plugins"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let before = installed(&home);

    let plain = fixture("fixture_plain_cdylib");
    let run = home.run(&["plugins", "install", plain.to_str().unwrap()]);
    assert_exit(&run, 1);
    assert!(
        run.stderr.contains("not installed") && run.stderr.contains("is not a clauderon plugin"),
        "{}",
        run.stderr
    );
    let api2 = build_variant("api2", "2.0.0", &|_, text| text);
    let run = home.run(&["plugins", "install", api2.to_str().unwrap()]);
    assert_exit(&run, 1);
    assert!(
        run.stderr
            .contains("was built against clauderon-plugin-api 2.0.0, but this clauderon speaks"),
        "{}",
        run.stderr
    );
    assert_eq!(installed(&home), before, "nothing was copied");

    // Installed under the name the plugin declares, whatever the file is called.
    let renamed = home.path().join("my-download.so");
    std::fs::copy(fixture("fixture_ok"), &renamed).unwrap();
    let run = home.run(&["plugins", "install", renamed.to_str().unwrap(), "--json"]);
    assert_exit(&run, 0);
    let v = run.json();
    assert_eq!(v["name"], "ok", "{v:#}");
    assert_eq!(v["api_version"], API);
    let dest = plugins.join(dylib_file_name("clauderon_ok"));
    assert_eq!(v["path"], dest.to_str().unwrap());
    let list = home.run(&["plugins", "list", "--json"]).json();
    assert_eq!(
        crate::support::row_named(&list, "ok")["status"],
        "loaded",
        "{list:#}"
    );

    let run = home.run(&["plugins", "install", renamed.to_str().unwrap()]);
    assert_exit(&run, 0);
    assert!(
        run.stdout.contains("is already installed"),
        "{}",
        run.stdout
    );

    // Another build of `ok`: the old file, held open, keeps its bytes; the new one is a new inode.
    let mut held = std::fs::File::open(&dest).unwrap();
    let old_inode = std::fs::metadata(&dest).unwrap().ino();
    let old_bytes = std::fs::read(&dest).unwrap();
    let rebuilt = build_variant("ok", API, &|_, text| text);
    let run = home.run(&["plugins", "install", rebuilt.to_str().unwrap()]);
    assert_exit(&run, 0);
    assert!(
        run.stdout.contains("installed plugin `ok`") && run.stdout.contains("replacing 0.1.0"),
        "{}",
        run.stdout
    );
    assert_ne!(std::fs::metadata(&dest).unwrap().ino(), old_inode);
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(&rebuilt).unwrap()
    );
    let mut still = Vec::new();
    held.read_to_end(&mut still).unwrap();
    assert_eq!(still, old_bytes, "the old file was not written over");
    let leftovers: Vec<_> = installed(&home)
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
