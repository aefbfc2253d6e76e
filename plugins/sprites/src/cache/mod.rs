//! Build caches on Sprites (`cache_save`, `cache_restore`, `cache_delete`; DESIGN §16).
//!
//! sprites.dev has no shared volumes, and a sprite's disk persists while the sprite exists
//! (billed as storage while it sleeps), so a project's caches live in the user's own Sprites
//! account: one long-lived cache sprite per project and scope ([`store`]). An entry is a
//! compressed tar (zstd, else gzip) of absolute paths with its size and SHA-256 ([`scripts`]). Bytes move between the
//! session sprite's and the cache sprite's exec streams through the plugin ([`transfer`]: the
//! host relays, stores nothing), or, for restores, directly between the two sprites over the
//! cache sprite's URL with a short-lived capability for one entry ([`direct`]), never with the
//! org token inside a session sprite.

pub mod direct;
pub mod scripts;
pub mod store;
pub mod transfer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clauderon_plugin_sdk::ops;
use clauderon_plugin_sdk::{CallContext, ErrorKind, PluginError};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::backend::SpritesBackend;
use crate::backend::errors::plugin_error;
use crate::backend::state::SpriteState;
use crate::client::{Output, SpriteHandle};
use crate::tunnel::locate::hex;
use store::{EntryMeta, ROOT, Store};
use transfer::{Stopped, Tick};

/// Where a restore unpacks before it moves paths into place (same disk as the workspace, so
/// the final moves are renames).
const STAGE_DIR: &str = "/home/sprite/.clauderon";

/// Where a session sprite keeps the snapshot of each set of cache paths (see
/// [`scripts::SNAPSHOT`]).
const SNAPSHOT_DIR: &str = "/home/sprite/.clauderon/cache-snapshots";

/// At most this many layers lie under an entry; the next save of its paths is whole again (a
/// restore unpacks every layer, so a long chain would cost more than it saves). The layers'
/// bytes are bounded too: [`EntryMeta::takes_a_layer`].
pub const MAX_LAYERS: u32 = 4;

/// The snapshot file of a set of cache paths in a session sprite.
fn snapshot_of(paths: &[String]) -> String {
    let id = hex(&Sha256::digest(paths.join("\n").as_bytes()));
    format!("{SNAPSHOT_DIR}/{}.snar", &id[..16])
}

/// The transport names the response carries.
pub const RELAY: &str = "relay";
/// The direct transport's name.
pub const DIRECT: &str = "direct";

/// A fresh hex nonce (names incoming saves and staging directories).
pub fn nonce() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let seed = format!(
        "{:?}-{}-{}",
        std::time::SystemTime::now(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    hex(&Sha256::digest(seed.as_bytes()))[..16].to_owned()
}

/// Removes a restore's staging directory in the session sprite (best effort: a leftover stage
/// is cleaned by the next restore).
pub(crate) async fn clean_stage(sprite: &SpriteHandle, stage: &str) {
    let _ = run(
        sprite,
        scripts::CLEAN,
        "clauderon-cache-clean",
        &[stage],
        None,
    )
    .await;
}

/// Runs `script` in `sprite` as `sh -c SCRIPT NAME ARGS...`, with `stdin` when given.
pub(crate) async fn run(
    sprite: &SpriteHandle,
    script: &str,
    name: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Result<Output, PluginError> {
    let mut argv = vec!["-c", script, name];
    argv.extend_from_slice(args);
    let cmd = sprite.command("sh").args(argv).stdin(stdin.is_some());
    let mut child = cmd
        .spawn()
        .await
        .map_err(|e| plugin_error(&format!("starting {name} in sprite {}", sprite.name()), &e))?;
    if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
        // A failed write shows as the command's own failure.
        let _ = w.write_all(data).await;
        let _ = w.shutdown().await;
    }
    child
        .wait_with_output()
        .await
        .map_err(|e| plugin_error(&format!("running {name} in sprite {}", sprite.name()), &e))
}

fn stderr_of(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = text
        .lines()
        .filter(|l| {
            !l.starts_with(scripts::COMPRESSION_LINE) && !l.starts_with(scripts::ARCHIVE_LINE)
        })
        .collect();
    said.join("\n").trim().chars().take(500).collect()
}

fn failed(what: &str, out: &Output) -> PluginError {
    PluginError::new(
        ErrorKind::Unavailable,
        format!("{what} failed (exit {}): {}", out.exit_code, stderr_of(out)),
    )
}

fn check_paths(paths: &[String]) -> Result<(), PluginError> {
    for p in paths {
        if !p.starts_with('/') || p.contains(['\n', '\0']) || p.split('/').any(|c| c == "..") {
            return Err(PluginError::invalid_request(format!(
                "cache path {p:?} must be absolute, without `..` or line breaks"
            )));
        }
    }
    Ok(())
}

/// Emits a progress event with the transfer's numbers.
fn report(ctx: &CallContext, what: &str, how: &str, t: Tick) {
    let fraction = t
        .total
        .filter(|n| *n > 0)
        .map(|n| t.bytes as f64 / n as f64);
    ctx.emit(serde_json::json!({
        "type": "progress",
        "stage": "cache",
        "message": format!("{what}: {} ({how})", transfer::describe(t)),
        "fraction": fraction,
        "bytes": t.bytes,
        "total_bytes": t.total,
        "bytes_per_second": t.rate.round(),
    }));
}

/// `cache_save`: packs the paths in the session sprite and streams them into the store's
/// cache sprite (made on first use) as entry `key`.
pub async fn save(
    b: &SpritesBackend,
    ctx: &CallContext,
    req: ops::CacheSaveRequest,
) -> Result<ops::CacheResponse, PluginError> {
    store::check_key(&req.key)?;
    check_paths(&req.paths)?;
    if req.paths.is_empty() {
        return Err(PluginError::invalid_request(
            "cache_save needs paths to save",
        ));
    }
    let session = SpriteState::of(&req.instance)?;
    let session_sprite = b.sprite(&session).await?;
    let store = store::ensure(
        b,
        ctx,
        req.store.as_ref(),
        req.store_key.as_deref(),
        &req.store_labels,
    )
    .await?;
    let miss = |reason: String, store: &Store| ops::CacheResponse {
        instance: req.instance.clone(),
        hit: false,
        store: Some(store.instance()),
        reason: Some(reason),
        ..ops::CacheResponse::default()
    };
    let nonce = nonce();
    let key = req.key.as_str();
    let snapshot = snapshot_of(&req.paths);
    let base = layer_base(&session_sprite, &store, &snapshot, key).await;
    ctx.progress(
        "cache",
        &format!(
            "saving {key} from sprite {} into cache sprite {}{}",
            session.sprite,
            store.state.sprite,
            base.as_ref()
                .map(|b| format!(", as a layer over {}", b.key))
                .unwrap_or_default()
        ),
        Some(0.0),
    );
    let mode = if base.is_some() { "layer" } else { "full" };
    let mut pack_args = vec![snapshot.as_str(), mode];
    pack_args.extend(req.paths.iter().map(String::as_str));
    let pushed = if req.direct {
        let pushed = direct::save(
            b,
            ctx,
            &store,
            &session_sprite,
            key,
            &nonce,
            &pack_args,
            req.max_bytes,
        )
        .await;
        pushed
            .map_err(|why| {
                ctx.progress(
                    "cache",
                    &format!("the direct path is not available ({why}); relaying through the host"),
                    None,
                );
            })
            .ok()
    } else {
        None
    };
    let (transport, moved, packed, received) = match pushed {
        Some(p) => (DIRECT, p.moved, p.packed, Output::default()),
        None => {
            let (moved, packed, received) = relay_save(
                ctx,
                &store,
                &session_sprite,
                key,
                &nonce,
                &pack_args,
                req.max_bytes,
            )
            .await?;
            (RELAY, moved, packed, received)
        }
    };
    let abandon = || async {
        let dir = format!("{ROOT}/incoming/{key}.{nonce}");
        let _ = run(
            &store.sprite,
            r#"rm -rf "$1""#,
            "clauderon-cache-abandon",
            &[&dir],
            None,
        )
        .await;
    };
    let moved = match moved {
        Ok(m) => m,
        Err(Stopped::TooLarge { max }) => {
            abandon().await;
            return Ok(miss(
                format!(
                    "the archive is larger than the cache's limit of {}",
                    transfer::human(max)
                ),
                &store,
            ));
        }
        Err(Stopped::ConsumerClosed { .. }) => {
            abandon().await;
            return Err(failed(
                "receiving the archive in the cache sprite",
                &received,
            ));
        }
    };
    match packed.exit_code {
        0 => {}
        scripts::NOTHING => {
            abandon().await;
            return Ok(miss(stderr_of(&packed), &store));
        }
        scripts::CHANGED => {
            abandon().await;
            return Ok(miss(
                "a cache path changed while it was packed (a build was running); not saved".into(),
                &store,
            ));
        }
        _ => {
            abandon().await;
            return Err(failed(
                "packing the cache paths in the session sprite",
                &packed,
            ));
        }
    }
    if !received.success() {
        abandon().await;
        return Err(failed(
            "receiving the archive in the cache sprite",
            &received,
        ));
    }
    let archive = Archive::of(&packed.stderr);
    let base = base.filter(|_| archive == Archive::Layer);
    let meta = EntryMeta {
        key: key.to_owned(),
        size: moved.bytes,
        sha256: moved.sha256.clone(),
        paths: req.paths.clone(),
        compression: compression_of(&packed.stderr).into(),
        created_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        base: base.as_ref().map(|b| b.key.clone()),
        base_sha256: base.as_ref().map(|b| b.sha256.clone()),
        depth: base.as_ref().map_or(0, |b| b.depth + 1),
        layers_size: base.as_ref().map_or(0, |b| b.layers_size + moved.bytes),
        whole_size: base.as_ref().map_or(moved.bytes, EntryMeta::whole),
    };
    let meta_json = serde_json::to_vec(&meta)
        .map_err(|e| PluginError::new(ErrorKind::Internal, format!("encoding meta.json: {e}")))?;
    let size = moved.bytes.to_string();
    let committed = run(
        &store.sprite,
        scripts::COMMIT,
        "clauderon-cache-commit",
        &[ROOT, key, &nonce, &size, &moved.sha256],
        Some(&meta_json),
    )
    .await?;
    if !committed.success() {
        return Err(failed("storing the entry in the cache sprite", &committed));
    }
    if archive != Archive::Plain {
        // The next save of these paths can be a layer over this entry; best effort (without
        // the snapshot it is whole).
        let promoted = run(
            &session_sprite,
            scripts::PROMOTE,
            "clauderon-cache-promote",
            &[&snapshot, key],
            None,
        )
        .await;
        if let Err(e) = promoted {
            tracing::debug!("keeping the snapshot of {key} failed: {e}");
        }
    }
    ctx.progress(
        "cache",
        &format!(
            "saved {key}: {} in {:.1}s ({}){}",
            transfer::human(moved.bytes),
            moved.elapsed.as_secs_f64(),
            if transport == DIRECT {
                "directly into the cache sprite"
            } else {
                "relay through the host"
            },
            meta.base
                .as_ref()
                .map(|b| format!(", a layer over {b}"))
                .unwrap_or_default()
        ),
        Some(1.0),
    );
    Ok(ops::CacheResponse {
        instance: req.instance,
        hit: true,
        bytes: moved.bytes,
        store: Some(store.instance()),
        transport: Some(transport.into()),
        reason: None,
        damaged: false,
        elapsed_ms: u64::try_from(moved.elapsed.as_millis()).unwrap_or(u64::MAX),
        base: meta.base,
        removed: Vec::new(),
    })
}

/// The relay path of a save: the session sprite's packer into the cache sprite's receiver,
/// through the host. Returns what moved, and how the packer and the receiver ended.
async fn relay_save(
    ctx: &CallContext,
    store: &Store,
    session_sprite: &SpriteHandle,
    key: &str,
    nonce: &str,
    pack_args: &[&str],
    max_bytes: Option<u64>,
) -> Result<(Result<transfer::Moved, Stopped>, Output, Output), PluginError> {
    let mut consumer = store
        .sprite
        .command("sh")
        .stdin(true)
        .args([
            "-c",
            scripts::RECEIVE,
            "clauderon-cache-receive",
            ROOT,
            key,
            nonce,
        ])
        .spawn()
        .await
        .map_err(|e| plugin_error("starting the receiver in the cache sprite", &e))?;
    let mut args = vec!["-c", scripts::PACK, "clauderon-cache-pack"];
    args.extend_from_slice(pack_args);
    let mut producer = session_sprite
        .command("sh")
        .args(args)
        .spawn()
        .await
        .map_err(|e| plugin_error("starting the packer in the session sprite", &e))?;
    let (Some(out), Some(inp)) = (producer.stdout.take(), consumer.stdin.take()) else {
        return Err(PluginError::new(
            ErrorKind::Internal,
            "the exec streams of a cache save have no stdin or stdout",
        ));
    };
    let control = producer.control();
    let what = format!("saving {key}");
    let tick = |t: Tick| report(ctx, &what, "relay through the host", t);
    let (moved, packed, received) = tokio::join!(
        async {
            let r = transfer::pump(out, inp, None, max_bytes, &tick).await;
            if r.is_err() {
                // Stop packing: nothing more of it is wanted.
                let _ = control.signal("KILL").await;
            }
            r
        },
        producer.wait_with_output(),
        consumer.wait_with_output(),
    );
    let packed = packed.map_err(|e| plugin_error("packing the cache paths", &e))?;
    let received = received.map_err(|e| plugin_error("receiving in the cache sprite", &e))?;
    Ok((moved, packed, received))
}

/// The entry a save of the paths whose snapshot is `snapshot` can be a layer over: the one
/// that snapshot describes (restored or saved in this sprite), if the store still has it, it
/// is not `key` itself, and it takes one more layer ([`EntryMeta::takes_a_layer`]).
async fn layer_base(
    session: &SpriteHandle,
    store: &Store,
    snapshot: &str,
    key: &str,
) -> Option<EntryMeta> {
    let said = run(
        session,
        scripts::SNAPSHOT_KEY,
        "clauderon-cache-snapshot-key",
        &[snapshot],
        None,
    )
    .await
    .ok()
    .filter(Output::success)?;
    let base = String::from_utf8_lossy(&said.stdout).trim().to_owned();
    if base.is_empty() || base == key || store::check_key(&base).is_err() {
        return None;
    }
    match entry_meta(store, &base).await {
        Ok(Lookup::Found(m)) if m.takes_a_layer() => Some(m),
        _ => None,
    }
}

/// What a store holds under a key.
enum Lookup {
    /// The entry's meta.
    Found(EntryMeta),
    /// No such entry.
    Missing,
    /// A `meta.json` that does not parse (why).
    Unreadable(String),
}

/// Reads entry `key`'s meta from the store.
async fn entry_meta(store: &Store, key: &str) -> Result<Lookup, PluginError> {
    let out = run(
        &store.sprite,
        scripts::META,
        "clauderon-cache-meta",
        &[ROOT, key],
        None,
    )
    .await?;
    match out.exit_code {
        0 => Ok(match serde_json::from_slice(&out.stdout) {
            Ok(m) => Lookup::Found(m),
            Err(e) => Lookup::Unreadable(e.to_string()),
        }),
        scripts::NOTHING => Ok(Lookup::Missing),
        _ => Err(failed("reading the entry's meta.json", &out)),
    }
}

/// How one restore attempt ended.
pub(crate) enum Attempt {
    /// Unpacked into the staging directory: `bytes` moved.
    Staged {
        /// The archive's size.
        bytes: u64,
    },
    /// The archive is damaged (why).
    Damaged(String),
    /// The entry vanished meanwhile.
    Missing,
    /// This sprite cannot unpack the entry (why: its decompressor is missing); not a damage.
    Unusable(String),
}

/// The kind of archive [`scripts::PACK`] made, as its stderr says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Archive {
    /// Only what changed since the snapshot (GNU tar's listed-incremental, level 1).
    Layer,
    /// Everything, with a new snapshot (level 0).
    Whole,
    /// Everything, no snapshot (the sprite's tar is not GNU tar).
    Plain,
}

impl Archive {
    fn of(stderr: &[u8]) -> Archive {
        let text = String::from_utf8_lossy(stderr);
        match text
            .lines()
            .find_map(|l| l.strip_prefix(scripts::ARCHIVE_LINE))
        {
            Some("layer") => Archive::Layer,
            Some("full") => Archive::Whole,
            _ => Archive::Plain,
        }
    }
}

/// The compression [`scripts::PACK`] named on its stderr (gzip when it said nothing).
fn compression_of(stderr: &[u8]) -> &'static str {
    let text = String::from_utf8_lossy(stderr);
    match text
        .lines()
        .find_map(|l| l.strip_prefix(scripts::COMPRESSION_LINE))
    {
        Some("zstd") => "zstd",
        _ => "gzip",
    }
}

/// `cache_restore`: fills the paths of the session sprite from entry `key`, directly from the
/// cache sprite when allowed and possible, else through the host; a damaged entry is removed
/// and reported (`damaged`), never placed.
pub async fn restore(
    b: &SpritesBackend,
    ctx: &CallContext,
    req: ops::CacheRestoreRequest,
) -> Result<ops::CacheResponse, PluginError> {
    store::check_key(&req.key)?;
    check_paths(&req.paths)?;
    let started = Instant::now();
    // A miss; `removed`: the entries the store no longer holds because of it (damaged, or
    // layers over a damaged or missing link), which also makes it a damaged miss.
    let miss =
        |reason: String, removed: Vec<String>, store: Option<ops::Instance>| ops::CacheResponse {
            instance: req.instance.clone(),
            hit: false,
            store,
            reason: Some(reason),
            damaged: !removed.is_empty(),
            removed,
            ..ops::CacheResponse::default()
        };
    let Some(kept) = &req.store else {
        return Ok(miss("no cache store".into(), Vec::new(), None));
    };
    let store = store::known(b, kept).await?;
    let session = SpriteState::of(&req.instance)?;
    let session_sprite = b.sprite(&session).await?;
    let key = req.key.as_str();
    // The entry, then each entry it is a layer over, down to a whole archive. A broken link
    // makes every layer read so far (each lies on it) useless: they are removed with it.
    let mut chain: Vec<EntryMeta> = Vec::new();
    let mut next = Some(key.to_owned());
    while let Some(k) = next.take() {
        if chain.len() > MAX_LAYERS as usize {
            let removed = forget(&store, keys_of(&chain, None)).await;
            return Ok(miss(
                format!("entry {key} lies on more than {MAX_LAYERS} layers; it was removed"),
                removed,
                Some(store.instance()),
            ));
        }
        match entry_meta(&store, &k).await? {
            Lookup::Found(m) => {
                let laid_on = chain.last().and_then(|l| l.base_sha256.as_deref());
                if laid_on.is_some_and(|sum| sum != m.sha256) {
                    // The base was saved again since: the layer lies on other content.
                    let removed = forget(&store, keys_of(&chain, None)).await;
                    return Ok(miss(
                        format!(
                            "entry {key} lies on {k} as it was saved before; {k} has been \
                             replaced since, so {} removed",
                            removed.join(", ") + if removed.len() > 1 { " were" } else { " was" }
                        ),
                        removed,
                        Some(store.instance()),
                    ));
                }
                next = m.base.clone();
                chain.push(m);
            }
            Lookup::Unreadable(e) => {
                let removed = forget(&store, keys_of(&chain, Some(&k))).await;
                return Ok(miss(
                    format!("entry {k} has an unreadable meta.json ({e}); it was removed"),
                    removed,
                    Some(store.instance()),
                ));
            }
            Lookup::Missing if k == key => {
                return Ok(miss(
                    format!("cache sprite {} has no entry {key}", store.state.sprite),
                    Vec::new(),
                    Some(store.instance()),
                ));
            }
            Lookup::Missing => {
                // A layer without what it lies on is of no use.
                let removed = forget(&store, keys_of(&chain, None)).await;
                return Ok(miss(
                    format!("entry {key} is a layer over {k}, which is gone; it was removed"),
                    removed,
                    Some(store.instance()),
                ));
            }
        }
    }
    chain.reverse();
    let meta = chain.last().cloned().unwrap_or_default();
    let stage = format!("{STAGE_DIR}/cache-restore-{}", nonce());
    let mut transport = if req.direct { DIRECT } else { RELAY };
    let (mut bytes, mut i) = (0, 0);
    while let Some(m) = chain.get(i) {
        let layer = i > 0;
        let mut attempt = None;
        if transport == DIRECT {
            match direct::restore(b, ctx, &store, &session_sprite, m, &stage, layer).await {
                Ok(a) => attempt = Some(a),
                Err(why) => {
                    transport = RELAY;
                    ctx.progress(
                        "cache",
                        &format!(
                            "the direct path is not available ({why}); relaying through the host"
                        ),
                        None,
                    );
                    if layer {
                        // A failed fetch leaves the stage in no known state: the chain
                        // starts again from its whole archive.
                        (bytes, i) = (0, 0);
                        continue;
                    }
                }
            }
        }
        i += 1;
        let attempt = match attempt {
            Some(a) => a,
            None => relay_restore(ctx, &store, &session_sprite, m, &stage, layer).await?,
        };
        let k = m.key.as_str();
        let (why, removed) = match attempt {
            Attempt::Staged { bytes: n } => {
                bytes += n;
                continue;
            }
            Attempt::Missing => (format!("entry {k} vanished during the restore"), Vec::new()),
            Attempt::Unusable(why) => (
                format!("entry {k} cannot be unpacked here: {why}"),
                Vec::new(),
            ),
            Attempt::Damaged(why) => {
                // The layers over a damaged entry go with it.
                let removed = forget(&store, keys_of(&chain[i - 1..], None)).await;
                (
                    format!("entry {k} is damaged ({why}); it was removed"),
                    removed,
                )
            }
        };
        clean_stage(&session_sprite, &stage).await;
        return Ok(miss(why, removed, Some(store.instance())));
    }
    let paths = if req.paths.is_empty() {
        meta.paths.clone()
    } else {
        req.paths.clone()
    };
    let mut place_args = vec![stage.as_str()];
    place_args.extend(paths.iter().map(String::as_str));
    let placed = run(
        &session_sprite,
        scripts::PLACE,
        "clauderon-cache-place",
        &place_args,
        None,
    )
    .await?;
    if !placed.success() {
        clean_stage(&session_sprite, &stage).await;
        return Err(failed("moving the restored paths into place", &placed));
    }
    // What was restored, as the base a later save of these paths can be a layer over; best
    // effort (without it that save is whole).
    let mut snap_args = vec![snapshot_of(&paths), key.to_owned()];
    snap_args.extend(paths.iter().cloned());
    let snap_args: Vec<&str> = snap_args.iter().map(String::as_str).collect();
    if let Err(e) = run(
        &session_sprite,
        scripts::SNAPSHOT,
        "clauderon-cache-snapshot",
        &snap_args,
        None,
    )
    .await
    {
        tracing::debug!("snapshotting the restored {key} failed: {e}");
    }
    let elapsed = started.elapsed();
    ctx.progress(
        "cache",
        &format!(
            "restored {key}: {} in {:.1}s ({}){}",
            transfer::human(bytes),
            elapsed.as_secs_f64(),
            if transport == DIRECT {
                "directly from the cache sprite"
            } else {
                "relay through the host"
            },
            if chain.len() > 1 {
                format!(", {} layers", chain.len())
            } else {
                String::new()
            }
        ),
        Some(1.0),
    );
    Ok(ops::CacheResponse {
        instance: req.instance,
        hit: true,
        bytes,
        store: Some(store.instance()),
        transport: Some(transport.into()),
        reason: None,
        damaged: false,
        elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        base: None,
        removed: Vec::new(),
    })
}

/// The relay path of a restore: the cache sprite's `cat` into the session sprite's unpacker.
async fn relay_restore(
    ctx: &CallContext,
    store: &Store,
    session: &SpriteHandle,
    meta: &EntryMeta,
    stage: &str,
    layer: bool,
) -> Result<Attempt, PluginError> {
    let key = meta.key.as_str();
    let mut consumer = session
        .command("sh")
        .stdin(true)
        .args([
            "-c",
            scripts::UNPACK,
            "clauderon-cache-unpack",
            stage,
            meta.decompressor(),
            if layer { "layer" } else { "base" },
        ])
        .spawn()
        .await
        .map_err(|e| plugin_error("starting the unpacker in the session sprite", &e))?;
    let mut producer = store
        .sprite
        .command("sh")
        .args(["-c", scripts::SEND, "clauderon-cache-send", ROOT, key])
        .spawn()
        .await
        .map_err(|e| plugin_error("starting the sender in the cache sprite", &e))?;
    let (Some(out), Some(inp)) = (producer.stdout.take(), consumer.stdin.take()) else {
        return Err(PluginError::new(
            ErrorKind::Internal,
            "the exec streams of a cache restore have no stdin or stdout",
        ));
    };
    let what = format!("restoring {key}");
    let tick = |t: Tick| report(ctx, &what, "relay through the host", t);
    let (moved, sent, unpacked) = tokio::join!(
        transfer::pump(out, inp, Some(meta.size), None, &tick),
        producer.wait_with_output(),
        consumer.wait_with_output(),
    );
    let sent = sent.map_err(|e| plugin_error("sending from the cache sprite", &e))?;
    let unpacked = unpacked.map_err(|e| plugin_error("unpacking in the session sprite", &e))?;
    if sent.exit_code == scripts::NOTHING {
        return Ok(Attempt::Missing);
    }
    if !sent.success() {
        return Err(failed("sending the archive from the cache sprite", &sent));
    }
    let moved = match moved {
        Ok(m) => m,
        Err(_) if unpacked.exit_code == scripts::DAMAGED => {
            return Ok(Attempt::Damaged(stderr_of(&unpacked)));
        }
        Err(_) if unpacked.exit_code == scripts::NO_DECOMPRESSOR => {
            return Ok(Attempt::Unusable(stderr_of(&unpacked)));
        }
        Err(_) => {
            return Err(failed(
                "unpacking the archive in the session sprite",
                &unpacked,
            ));
        }
    };
    if moved.bytes != meta.size || moved.sha256 != meta.sha256 {
        return Ok(Attempt::Damaged(format!(
            "{} bytes with SHA-256 {} arrived, the entry records {} bytes with {}",
            moved.bytes,
            &moved.sha256[..12],
            meta.size,
            meta.sha256.chars().take(12).collect::<String>()
        )));
    }
    match unpacked.exit_code {
        0 => Ok(Attempt::Staged { bytes: moved.bytes }),
        scripts::DAMAGED => Ok(Attempt::Damaged(stderr_of(&unpacked))),
        scripts::NO_DECOMPRESSOR => Ok(Attempt::Unusable(stderr_of(&unpacked))),
        _ => Err(failed(
            "unpacking the archive in the session sprite",
            &unpacked,
        )),
    }
}

/// The keys of `chain`'s entries, and `more`'s.
fn keys_of(chain: &[EntryMeta], more: Option<&str>) -> Vec<String> {
    chain
        .iter()
        .map(|m| m.key.clone())
        .chain(more.map(str::to_owned))
        .collect()
}

/// Removes entries `keys` from a store (a damaged one and the layers lying on it), in one
/// step, best effort; returns the keys, each once.
async fn forget(store: &Store, mut keys: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| seen.insert(k.clone()));
    let mut args = vec![ROOT];
    args.extend(keys.iter().map(String::as_str));
    if let Err(e) = run(
        &store.sprite,
        scripts::DELETE,
        "clauderon-cache-delete",
        &args,
        None,
    )
    .await
    {
        tracing::warn!(
            "could not remove the cache entries {}: {e}",
            keys.join(", ")
        );
    }
    keys
}

/// `cache_delete`: drops entries of a store, or (no keys) deletes its cache sprite.
pub async fn delete(
    b: &SpritesBackend,
    ctx: &CallContext,
    req: ops::CacheDeleteRequest,
) -> Result<ops::CacheDeleteResponse, PluginError> {
    for k in &req.keys {
        store::check_key(k)?;
    }
    let state = SpriteState::of(&req.store)?;
    let client = b.client().await?;
    if req.keys.is_empty() {
        ctx.progress(
            "cache",
            &format!("deleting cache sprite {}", state.sprite),
            None,
        );
        if let Err(e) = client.delete(&state.sprite).await {
            let gone = client
                .find(&state.sprite)
                .await
                .map_err(|e| plugin_error(&format!("looking up {}", state.sprite), &e))?
                .is_none();
            if !gone {
                return Err(plugin_error(
                    &format!("deleting cache sprite {}", state.sprite),
                    &e,
                ));
            }
        }
        return Ok(ops::CacheDeleteResponse {
            store: None,
            deleted: Vec::new(),
        });
    }
    if client
        .find(&state.sprite)
        .await
        .map_err(|e| plugin_error(&format!("looking up {}", state.sprite), &e))?
        .is_none()
    {
        return Ok(ops::CacheDeleteResponse {
            store: None,
            deleted: Vec::new(),
        });
    }
    let sprite = client.sprite(state.sprite.clone());
    let mut args = vec![ROOT];
    args.extend(req.keys.iter().map(String::as_str));
    let out = run(
        &sprite,
        scripts::DELETE,
        "clauderon-cache-delete",
        &args,
        None,
    )
    .await?;
    if !out.success() {
        return Err(failed("removing cache entries", &out));
    }
    let deleted = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    Ok(ops::CacheDeleteResponse {
        store: Some(state.instance()),
        deleted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packer_names_its_compression() {
        assert_eq!(compression_of(b"clauderon-compression: zstd\n"), "zstd");
        assert_eq!(compression_of(b"clauderon-compression: gzip\nx\n"), "gzip");
        assert_eq!(compression_of(b""), "gzip");
        assert_eq!(Archive::of(b"clauderon-archive: layer\n"), Archive::Layer);
        assert_eq!(Archive::of(b"clauderon-archive: full\n"), Archive::Whole);
        assert_eq!(Archive::of(b"x\n"), Archive::Plain);
        let out = Output {
            exit_code: 3,
            stdout: Vec::new(),
            stderr: b"clauderon-compression: zstd\nnone of the cache paths exists\n".to_vec(),
        };
        assert_eq!(stderr_of(&out), "none of the cache paths exists");
        assert!(check_paths(&["/a/b".into()]).is_ok());
        for bad in ["a/b", "/a/../b", "/a\nb"] {
            assert!(check_paths(&[bad.into()]).is_err(), "{bad:?}");
        }
    }
}
