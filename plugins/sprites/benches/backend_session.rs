//! The Sprites backend through the host's plugin loader against the emulator, next to the same
//! Sprites API calls made directly with `clauderon_sprites::client`, in one run:
//!
//! - create to agent running: `create` (POST sprite, the fs write that prepares it), the demo
//!   agent written with one fs write (on both sides the same direct client call: the host
//!   installs it for a config that names it), then `attach` with the demo agent until it
//!   prints its prompt line;
//! - wake: a cold sprite woken by `wake` (GET sprite, then the exec-session list that wakes it).
//!
//! The ratio is (host + plugin) / direct client: the overhead of the plugin boundary, the JSON
//! payloads and the stream framing over the emulator's own time.
//!
//! `cargo bench -p clauderon-sprites --bench backend_session` (`BACKEND_BENCH_ITERS` changes N).
//! Run without `--bench` it is a quick smoke run (2 iterations).

/// The demo agent (`examples/demo-agent`), which this bench writes into its sprites itself,
/// as the host does for a config that names it in `[agent] files`.
const DEMO_AGENT: &str = include_str!("../../../examples/demo-agent/clauderon-demo-agent");
/// Where the bench puts it.
const DEMO_AGENT_PATH: &str = "/home/sprite/.clauderon/bin/clauderon-demo-agent";

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use clauderon::plugins::{FrameKind, PluginClient, ops};
use clauderon_sprites::client::{CreateSprite, SpritesClient, Token, WriteOptions};
use common::{BoxError, TOKEN};

const READY: &str = "type a line";

fn main() -> Result<(), BoxError> {
    let full = std::env::args().any(|a| a == "--bench");
    let iters: u32 = std::env::var("BACKEND_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 10 } else { 2 });
    let dir = common::profile_dir()?;
    let plugin_lib = common::plugin_library(&dir)?;
    let emu = common::Emu::start(&dir, &[])?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(run(&emu.base, &plugin_lib, iters))
}

async fn run(base: &str, lib: &Path, iters: u32) -> Result<(), BoxError> {
    let plugin = common::load_plugin(lib, base)?;
    let client = SpritesClient::builder()
        .base_url(base)
        .token(Token::new(TOKEN))
        .build()?;
    // reqwest is built without a default crypto provider; plain HTTP still needs one set.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();

    let (mut p_create, mut c_create, mut p_wake, mut c_wake) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    for i in 0..iters {
        // Alternate which side goes first so neither always meets a warmer emulator.
        for side in if i % 2 == 0 { [0, 1] } else { [1, 0] } {
            let name = format!("bench-{i}-{side}");
            if side == 0 {
                let (inst, took) = plugin_create_to_agent(&plugin, &client, &name).await?;
                p_create += took;
                force_cold(&http, base, &inst.id).await?;
                let t = Instant::now();
                plugin
                    .wake(&ops::InstanceRequest {
                        instance: inst.clone(),
                    })
                    .await?;
                p_wake += t.elapsed();
                plugin
                    .delete(&ops::InstanceRequest { instance: inst })
                    .await?;
            } else {
                c_create += client_create_to_agent(&client, &name).await?;
                force_cold(&http, base, &name).await?;
                let t = Instant::now();
                client.find(&name).await?;
                client.sprite(name.as_str()).sessions().await?;
                c_wake += t.elapsed();
                client.delete(&name).await?;
            }
        }
    }
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / f64::from(iters.max(1));
    println!(
        "create to agent running ({iters} runs): host+plugin {:.1} ms, direct client {:.1} ms, ratio {:.2}x",
        per(p_create),
        per(c_create),
        p_create.as_secs_f64() / c_create.as_secs_f64().max(1e-9)
    );
    println!(
        "wake from cold ({iters} runs): host+plugin {:.1} ms, direct client {:.1} ms, ratio {:.2}x",
        per(p_wake),
        per(c_wake),
        p_wake.as_secs_f64() / c_wake.as_secs_f64().max(1e-9)
    );
    Ok(())
}

async fn force_cold(http: &reqwest::Client, base: &str, name: &str) -> Result<(), BoxError> {
    let r = http
        .post(format!("{base}/_emulator/sprites/{name}/state"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"state": "cold"}))
        .send()
        .await?;
    if !r.status().is_success() {
        return Err(format!("forcing {name} cold: {}", r.status()).into());
    }
    Ok(())
}

async fn plugin_create_to_agent(
    plugin: &PluginClient,
    client: &SpritesClient,
    name: &str,
) -> Result<(ops::Instance, Duration), BoxError> {
    let t = Instant::now();
    let created = plugin
        .create(&ops::CreateRequest {
            session_id: format!("{name}-0000"),
            name: name.into(),
            ..Default::default()
        })
        .await?;
    write_demo_agent(client, &created.instance.id).await?;
    let (started, stream) = plugin
        .attach(&ops::AttachRequest {
            instance: created.instance,
            command: vec![DEMO_AGENT_PATH.into(), "--plan".into(), "bench".into()],
            cols: 80,
            rows: 24,
            ..Default::default()
        })
        .await?;
    let (mut r, _w) = stream.split();
    let mut out = String::new();
    while !out.contains(READY) {
        let f = tokio::time::timeout(Duration::from_secs(30), r.read_frame())
            .await??
            .ok_or("the agent stream ended before the agent was ready")?;
        if f.kind == FrameKind::Stdout {
            out.push_str(&String::from_utf8_lossy(&f.payload));
        }
    }
    let took = t.elapsed();
    let instance = started.instance.ok_or("attach returned no instance")?;
    Ok((instance, took))
}

async fn write_demo_agent(client: &SpritesClient, sprite: &str) -> Result<(), BoxError> {
    let exe = WriteOptions {
        mode: Some(0o755),
        mkdir_parents: true,
    };
    client
        .sprite(sprite)
        .write_file(DEMO_AGENT_PATH, DEMO_AGENT.as_bytes().to_vec(), &exe)
        .await?;
    Ok(())
}

async fn client_create_to_agent(client: &SpritesClient, name: &str) -> Result<Duration, BoxError> {
    let t = Instant::now();
    let mut req = CreateSprite::new(name);
    req.labels = vec![
        "clauderon=1".into(),
        format!("clauderon.session={name}-0000"),
    ];
    client.create(&req).await?;
    let sprite = client.sprite(name);
    let opts = WriteOptions {
        mode: Some(0o644),
        mkdir_parents: true,
    };
    sprite
        .write_file(
            "/home/sprite/.clauderon/session.json",
            b"{}".to_vec(),
            &opts,
        )
        .await?;
    write_demo_agent(client, name).await?;
    let mut child = sprite
        .command(DEMO_AGENT_PATH)
        .args(["--plan", "bench"])
        .tty(80, 24)
        .spawn()
        .await?;
    child.session_info(Duration::from_secs(15)).await;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut out = String::new();
    while !out.contains(READY) {
        let b = tokio::time::timeout(Duration::from_secs(30), stdout.recv())
            .await?
            .ok_or("the agent ended before it was ready")?;
        out.push_str(&String::from_utf8_lossy(&b));
    }
    let took = t.elapsed();
    child.detach();
    Ok(took)
}
