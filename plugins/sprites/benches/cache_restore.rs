//! The overhead of restoring a build cache, against the raw bytes it moves, in one run:
//!
//! - baseline: a 500 MB file streamed from one emulator sprite's exec (`cat`) to another's
//!   through this process, the bytes relayed and nothing else, landing in a file on the
//!   destination's disk (`cat > FILE`: what any restore must at least do) and, for reference,
//!   in `/dev/null`;
//! - `cache_restore` of a 500 MB entry (random bytes, so gzip cannot shrink it) through the
//!   host's plugin loader and the Sprites plugin: the relay path (`direct: false`: meta read,
//!   the archive relayed and hashed, gunzip and tar into staging, the move into place) and the
//!   direct path (the session sprite fetches the cache sprite's URL with a capability);
//! - `cache_save` of the same 500 MB, for reference against the same raw stream: the relay path
//!   and the direct path (the session sprite sends to the cache sprite's URL).
//!
//! Target: the relay restore within 1.5x of the raw stream into a file. Each side runs `CACHE_BENCH_ROUNDS`
//! times (default 3), interleaved; medians are printed.
//!
//! `cargo build --release -p clauderon-sprites -p sprites-emulator && cargo bench -p
//! clauderon-sprites --bench cache_restore` (`CACHE_BENCH_MB` changes the size). Run without
//! `--bench` it is a quick smoke run (20 MB, one round).

mod common;

use std::time::{Duration, Instant};

use clauderon::plugins::{PluginClient, ops};
use clauderon_sprites::client::{SpritesClient, Token};
use common::{BoxError, TOKEN, median};
use tokio::io::AsyncWriteExt;

const BLOB_DIR: &str = "/home/sprite/bench-cache";

fn main() -> Result<(), BoxError> {
    let full = std::env::args().any(|a| a == "--bench");
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let mb = env("CACHE_BENCH_MB", if full { 500 } else { 20 });
    let rounds = env("CACHE_BENCH_ROUNDS", if full { 3 } else { 1 }).max(1);
    let dir = common::profile_dir()?;
    let lib = common::plugin_library(&dir)?;
    let emu = common::Emu::start(&dir, &[])?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(run(&emu.base, &lib, mb, rounds))
}

async fn session(plugin: &PluginClient, name: &str) -> Result<ops::Instance, BoxError> {
    Ok(plugin
        .create(&ops::CreateRequest {
            session_id: format!("{name}-0000"),
            name: name.into(),
            ..Default::default()
        })
        .await?
        .instance)
}

async fn sh(client: &SpritesClient, sprite: &str, script: &str) -> Result<(), BoxError> {
    let out = client
        .sprite(sprite)
        .command("sh")
        .args(["-c", script])
        .output()
        .await?;
    if !out.success() {
        return Err(format!(
            "`{script}` in {sprite}: exit {}: {}",
            out.exit_code,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

/// A baseline: `cat FILE` in `from` into `sink` in `to`, relayed by this process.
async fn raw_stream(
    client: &SpritesClient,
    from: &str,
    to: &str,
    sink: &str,
) -> Result<f64, BoxError> {
    let t = Instant::now();
    let mut consumer = client
        .sprite(to)
        .command("sh")
        .stdin(true)
        .args(["-c", sink])
        .spawn()
        .await?;
    let mut source = client
        .sprite(from)
        .command("cat")
        .arg(format!("{BLOB_DIR}/blob"))
        .spawn()
        .await?;
    let mut out = source.stdout.take().ok_or("no stdout")?;
    let mut inp = consumer.stdin.take().ok_or("no stdin")?;
    let pump = async {
        let mut n = 0u64;
        while let Some(b) = out.recv().await {
            n += b.len() as u64;
            inp.write_all(&b).await?;
        }
        inp.shutdown().await?;
        Ok::<_, std::io::Error>(n)
    };
    let (n, a, b) = tokio::join!(pump, source.wait(), consumer.wait());
    let (n, a, b) = (n?, a?, b?);
    if a != 0 || b != 0 {
        return Err(format!("the raw stream's commands exited {a} and {b}").into());
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "  raw exec-to-exec into `{sink}`: {n} bytes in {secs:.2}s ({:.1} MB/s)",
        n as f64 / secs / 1e6
    );
    Ok(secs)
}

async fn restore(
    plugin: &PluginClient,
    into: &ops::Instance,
    store: &ops::Instance,
    key: &str,
    direct: bool,
) -> Result<f64, BoxError> {
    let t = Instant::now();
    let r = plugin
        .cache_restore(&ops::CacheRestoreRequest {
            instance: into.clone(),
            key: key.into(),
            store: Some(store.clone()),
            paths: vec![BLOB_DIR.into()],
            direct,
        })
        .await?;
    let secs = t.elapsed().as_secs_f64();
    let want = if direct { "direct" } else { "relay" };
    if !r.hit || r.transport.as_deref() != Some(want) {
        return Err(format!("the {want} restore did not happen as asked: {r:?}").into());
    }
    println!(
        "  cache_restore ({want}): {} bytes in {secs:.2}s ({:.1} MB/s)",
        r.bytes,
        r.bytes as f64 / secs / 1e6
    );
    Ok(secs)
}

/// One timed `cache_save` of `key` (saved before: replaced whole) by the path asked for.
async fn save(
    plugin: &PluginClient,
    src: &ops::Instance,
    store: &ops::Instance,
    key: &str,
    direct: bool,
) -> Result<f64, BoxError> {
    let t = Instant::now();
    let r = plugin
        .cache_save(&ops::CacheSaveRequest {
            instance: src.clone(),
            key: key.into(),
            paths: vec![BLOB_DIR.into()],
            store: Some(store.clone()),
            store_key: Some("p-bench0000000000000".into()),
            store_labels: Default::default(),
            max_bytes: None,
            direct,
        })
        .await?;
    let secs = t.elapsed().as_secs_f64();
    let want = if direct { "direct" } else { "relay" };
    if !r.hit || r.transport.as_deref() != Some(want) {
        return Err(format!("the {want} save did not happen as asked: {r:?}").into());
    }
    println!(
        "  cache_save ({want}): {} bytes in {secs:.2}s ({:.1} MB/s)",
        r.bytes,
        r.bytes as f64 / secs / 1e6
    );
    Ok(secs)
}

async fn run(base: &str, lib: &std::path::Path, mb: u64, rounds: u64) -> Result<(), BoxError> {
    let plugin = common::load_plugin(lib, base)?;
    let client = SpritesClient::builder()
        .base_url(base)
        .token(Token::new(TOKEN))
        .build()?;
    let src = session(&plugin, "bench-src").await?;
    let dst = session(&plugin, "bench-dst").await?;
    println!("writing {mb} MB of random bytes in {}", src.id);
    sh(
        &client,
        &src.id,
        &format!(
            "mkdir -p {BLOB_DIR} && head -c {}000000 /dev/urandom > {BLOB_DIR}/blob",
            mb
        ),
    )
    .await?;
    let key = "bench-500";
    let t = Instant::now();
    let saved = plugin
        .cache_save(&ops::CacheSaveRequest {
            instance: src.clone(),
            key: key.into(),
            paths: vec![BLOB_DIR.into()],
            store: None,
            store_key: Some("p-bench0000000000000".into()),
            store_labels: Default::default(),
            max_bytes: None,
            direct: false,
        })
        .await?;
    let store = saved.store.clone().ok_or("the save made no store")?;
    println!(
        "cache_save: {} bytes archived in {:.2}s (relay)",
        saved.bytes,
        t.elapsed().as_secs_f64()
    );
    let (mut null, mut raw, mut relay, mut direct) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut save_relay, mut save_direct) = (Vec::new(), Vec::new());
    let to_file = format!("cat > {BLOB_DIR}.raw && rm -f {BLOB_DIR}.raw");
    for round in 0..rounds {
        println!("round {}:", round + 1);
        null.push(raw_stream(&client, &src.id, &dst.id, "cat > /dev/null").await?);
        raw.push(raw_stream(&client, &src.id, &dst.id, &to_file).await?);
        relay.push(restore(&plugin, &dst, &store, key, false).await?);
        direct.push(restore(&plugin, &dst, &store, key, true).await?);
        save_relay.push(save(&plugin, &src, &store, key, false).await?);
        save_direct.push(save(&plugin, &src, &store, key, true).await?);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (null, raw, relay, direct) = (median(null), median(raw), median(relay), median(direct));
    let (save_relay, save_direct) = (median(save_relay), median(save_direct));
    println!(
        "restore of a {mb} MB cache (median of {rounds}): raw exec-to-exec stream into a file \
         {raw:.2}s (into /dev/null {null:.2}s); relay restore {relay:.2}s: {:.2}x the raw \
         stream into a file (target <= 1.5x), {:.2}x into /dev/null; direct restore \
         {direct:.2}s: {:.2}x",
        relay / raw,
        relay / null,
        direct / raw
    );
    println!(
        "save of a {mb} MB cache (median of {rounds}): relay {save_relay:.2}s ({:.2}x the raw \
         stream), direct {save_direct:.2}s ({:.2}x)",
        save_relay / raw,
        save_direct / raw
    );
    for i in [&src, &dst, &store] {
        let _ = plugin
            .delete(&ops::InstanceRequest {
                instance: i.clone(),
            })
            .await;
    }
    Ok(())
}
