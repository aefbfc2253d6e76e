//! The real Sprites plugin library loaded through the host's loader against a test's own
//! emulator, and the plugin calls the plugin-level tests share (`sprites_backend`,
//! `sprites_tunnel`).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use clauderon::plugins::{
    Candidate, DiscoverySource, FrameKind, HostSetup, PluginClient, PluginError, PluginRegistry,
    SecretDecl, SecretLookup, ops,
};
use serde_json::{Value, json};
use tokio::sync::mpsc::unbounded_channel;

use super::artifacts::artifacts;
use super::emulator::Emulator;

/// Hands the plugin a token as `sprites_api_key` (per test: tests run in parallel, each with its
/// own emulator, so a process-wide environment variable cannot carry it).
struct TokenLookup(String);

impl SecretLookup for TokenLookup {
    fn lookup(&self, _plugin: &str, secret: &SecretDecl) -> Result<Option<String>, String> {
        Ok((secret.name == "sprites_api_key").then(|| self.0.clone()))
    }
}

/// An emulator and the Sprites plugin pointed at it.
pub struct Rig {
    pub emu: Emulator,
    pub plugin: Arc<PluginClient>,
    _registry: PluginRegistry,
}

impl Rig {
    /// Starts an emulator with `args` and loads the plugin with its token and `config`.
    pub fn start(args: &[&str], config: Value) -> Rig {
        let emu = Emulator::start_args(args);
        let (registry, plugin) = load(&emu, emu.token(), config);
        Rig {
            emu,
            plugin,
            _registry: registry,
        }
    }
}

/// Loads the plugin for `emu` with `token`; its `[sprites]` table is `api_url`,
/// `hibernate_wait_seconds = 20` and the keys of `config` (which win).
pub fn load(emu: &Emulator, token: &str, config: Value) -> (PluginRegistry, Arc<PluginClient>) {
    let mut table = json!({"api_url": emu.base_url(), "hibernate_wait_seconds": 20});
    if let (Some(t), Some(extra)) = (table.as_object_mut(), config.as_object()) {
        t.extend(extra.clone());
    }
    let registry = PluginRegistry::from_candidates(
        vec![Candidate {
            name: "sprites".into(),
            path: artifacts().cdylib("clauderon_sprites"),
            source: DiscoverySource::PluginPath,
        }],
        HostSetup {
            secrets: Arc::new(TokenLookup(token.to_owned())),
            plugin_config: Arc::new(BTreeMap::from([("sprites".to_owned(), table)])),
        },
    );
    let plugin = registry.get("sprites").unwrap();
    (registry, plugin)
}

/// Which `fs/write` a plugin test runs against, to run the upload paths (the tunnel relay, git
/// bundles) under each: the tests that upload are parametrised over these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploads {
    /// The spec's `fs/write` (16 MiB of anything); uploads take their primary route.
    Spec,
    /// `--quirk fs-write-limits`: the real service as observed (400 for binary, 413 over 1 MB).
    Observed,
    /// As `Observed`, and every exec that would receive an upload part is refused with 413, so
    /// uploads take the `fs/write` fallback under those limits.
    ObservedFallback,
}

impl Uploads {
    /// The emulator flags for this variant.
    pub fn args(self) -> &'static [&'static str] {
        match self {
            Uploads::Spec => &[],
            Uploads::Observed | Uploads::ObservedFallback => &["--quirk", "fs-write-limits"],
        }
    }

    /// Adds this variant's fault rules to a running emulator.
    pub async fn arm(self, emu: &Emulator) {
        if self == Uploads::ObservedFallback {
            emu.add_fault(json!({
                "kind": "error", "status": 413, "method": "GET", "path": "/v1/sprites/*/exec",
                "query": format!("*cmd={}*", clauderon_sprites::backend::upload::PART_NAME),
            }))
            .await;
        }
    }

    /// The transport the upload progress must name.
    pub fn transport(self) -> &'static str {
        match self {
            Uploads::Spec | Uploads::Observed => "through exec stdin",
            Uploads::ObservedFallback => "through fs/write (base64)",
        }
    }
}

/// A session id unique in this test process.
pub fn session_id() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{:08x}-0000-4000-8000-{:012x}",
        nanos ^ std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A create request for a new session named `name`, labelled as clauderon's.
pub fn create_request(name: &str) -> ops::CreateRequest {
    let sid = session_id();
    ops::CreateRequest {
        labels: BTreeMap::from([
            ("clauderon".to_owned(), "1".to_owned()),
            ("clauderon.session".to_owned(), sid.clone()),
        ]),
        session_id: sid,
        name: name.into(),
        ..Default::default()
    }
}

/// Calls `op`, collecting the events the plugin emitted for it.
pub async fn call<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
    plugin: &PluginClient,
    op: &str,
    req: &Req,
) -> (Result<Resp, PluginError>, Vec<Value>) {
    let (tx, mut rx) = unbounded_channel();
    let r = plugin.call(op, req, Some(tx)).await;
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    (r, events)
}

/// Runs a non-TTY command through the plugin's `exec` stream, which must end within `limit`:
/// (stdout, stderr, exit code).
pub async fn exec(
    plugin: &PluginClient,
    inst: &ops::Instance,
    argv: &[&str],
    limit: Duration,
) -> (String, String, i32) {
    let (_started, stream) = plugin
        .exec(&ops::ExecRequest {
            instance: inst.clone(),
            command: argv.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (mut r, _w) = stream.split();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = tokio::time::timeout(limit, async {
        loop {
            let f = r.read_frame().await.unwrap().expect("an exit frame");
            match f.kind {
                FrameKind::Stdout => out.extend_from_slice(&f.payload),
                FrameKind::Stderr => err.extend_from_slice(&f.payload),
                FrameKind::Exit => return f.exit_code().unwrap(),
                FrameKind::Error => panic!("exec error: {}", String::from_utf8_lossy(&f.payload)),
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{argv:?} did not finish within {limit:?}"));
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
        code,
    )
}

/// A new directory the sprite can see (read-only): under the workspace's `target/`, which the
/// emulator's sandbox mounts read-only like every top-level host directory except /home, /tmp,
/// /run and /root. Temporary directories under /tmp are invisible to the sprite.
pub fn visible_dir() -> std::path::PathBuf {
    // A sprite has its own /tmp and /home/sprite, so a checkout under either is invisible inside
    // it: then use /var/tmp, which the sprite sees read-only like the rest of the host.
    let target = super::artifacts::workspace_root().join("target");
    let base = if target.starts_with("/tmp") || target.starts_with("/home/sprite") {
        std::path::PathBuf::from("/var/tmp").join("clauderon-sprites-it")
    } else {
        target.join("sprites-it")
    };
    let dir = base.join(session_id());
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
