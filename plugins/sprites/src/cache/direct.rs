//! The direct path of a restore and of a save: the session sprite fetches the archive from
//! the cache sprite's own URL, or sends it there, so the bytes cross no link of the user's.
//!
//! A sprite's URL (`https://<name>-<org>.sprites.app`) reaches port 8080 inside it, for the
//! org's token (`url_settings.auth = "sprite"`) or for anyone (`"public"`). The org token must
//! never enter a session sprite, so the cache sprite's URL is made public and what listens
//! there checks a capability instead: the plugin (holding the org token) starts the cache
//! server (`clauderon-relay serve-cache`, the static relay the tunnel already uploads) and
//! writes a capability file into the cache sprite: 256 random bits naming one entry (or one
//! upload, with its byte limit), valid five minutes, used once. Only the capability goes into
//! the session sprite (through the exec's stdin, never its arguments). There `curl` fetches the
//! entry, hashes it on the way (the entry's SHA-256 must match) and unpacks it into the staging
//! directory; or, for a save, sends what the packer writes, and the server answers the size and
//! SHA-256 it stored, which the commit checks as it checks a relayed save. The server exits
//! after two idle minutes, so the public URL answers nothing between transfers.

use std::time::{Duration, SystemTime};

use clauderon_plugin_sdk::CallContext;
use tokio::io::AsyncWriteExt;

use super::store::{EntryMeta, ROOT, Store};
use super::transfer::{self, Tick};
use super::{Attempt, clean_stage, run, scripts};
use crate::backend::SpritesBackend;
use crate::client::{SpriteHandle, UpdateSprite, UrlSettings};
use crate::tunnel::{install, locate};

/// How long a capability stays valid.
const CAPABILITY_LIFE: Duration = Duration::from_secs(300);
/// How long the cache server lives without a connection.
const SERVER_IDLE_SECS: &str = "120";
/// How long the server may take to start listening.
const SERVER_START: Duration = Duration::from_secs(15);

/// Cache sprite, stdin = the capability: records it for entry `$2` until `$3` (Unix seconds);
/// capabilities older than an hour (never used) are removed.
const GRANT: &str = r#"set -eu
IFS= read -r t
umask 077
mkdir -p "$1/caps"
find "$1/caps" -type f -mmin +60 -exec rm -f {} + 2>/dev/null || true
printf '%s %s %s\n' "$2" "$3" "${4:-}" > "$1/caps/$t"
"#;

/// Session sprite, stdin = the capability: runs the packer `$2` with the arguments after it
/// (as [`scripts::PACK`] is run on the relay path) and sends what it writes to `$1`, the cache
/// sprite's upload URL. stdout: the server's `SIZE SHA256`; stderr: curl's progress meter, then
/// the packer's own lines. Exits as the packer does when it says there is nothing to save (3)
/// or a path changed (5); 9: the archive is over the cache's limit; 7: the URL could not be
/// reached or refused the upload (the caller relays instead).
const PUSH: &str = r#"set -u
IFS= read -r token || { echo "no capability on stdin" >&2; exit 2; }
url=$1 pack=$2
shift 2
command -v curl >/dev/null 2>&1 || { echo "curl is not installed in the sprite" >&2; exit 7; }
work=$(mktemp -d) || exit 2
trap 'rm -rf "$work"' EXIT
umask 077
printf 'header = "Authorization: Bearer %s"\n' "$token" > "$work/curlrc"
{ sh -c "$pack" clauderon-cache-pack "$@" 2> "$work/pack.err"; echo $? > "$work/pack.st"; } |
  curl -S --connect-timeout 20 --max-time 3600 -K "$work/curlrc" -H "Transfer-Encoding: chunked" \
    -T - -o "$work/out" -w '%{http_code}' "$url" > "$work/code"
c=$?
echo >&2
cat "$work/pack.err" >&2
p=$(cat "$work/pack.st" 2>/dev/null || echo 2)
code=$(cat "$work/code" 2>/dev/null)
case $p in 3|5) exit "$p";; esac
if [ "$code" = 413 ]; then cat "$work/out" >&2; exit 9; fi
if [ "$c" != 0 ] || [ "$code" != 200 ]; then
  echo "the upload failed (curl exit $c, HTTP ${code:-none}): $(cat "$work/out" 2>/dev/null)" >&2
  exit 7
fi
if [ "$p" != 0 ]; then exit "$p"; fi
cat "$work/out"
"#;

/// Exit code of [`PUSH`]: the archive is over the cache's limit.
const OVER_LIMIT: i32 = 9;

/// Session sprite, stdin = the capability: fetches `$1` into the staging directory `$2`,
/// checking the SHA-256 `$3` on the way and decompressing with `$4`; `$5` is `base` (a fresh
/// stage) or `layer` (applied over the stage, as [`scripts::UNPACK`] does). Exit 7: the URL
/// could not be fetched (the caller relays instead); 4: the bytes do not verify; 6: tar
/// failed; 8: no decompressor.
const FETCH: &str = r#"set -u
IFS= read -r token || { echo "no capability on stdin" >&2; exit 2; }
url=$1 stage=$2 sum=$3 comp=$4 mode=$5
command -v curl >/dev/null 2>&1 || { echo "curl is not installed in the sprite" >&2; exit 7; }
command -v "$comp" >/dev/null 2>&1 || { echo "$comp is not installed in the sprite" >&2; exit 8; }
rm -rf "$stage.status" "$stage.fifo" "$stage.sum"
if [ "$mode" != layer ]; then rm -rf "$stage"; fi
mkdir -p "$stage"
untar() {
  if [ "$mode" = layer ]; then tar --listed-incremental=/dev/null -xf - -C "$stage"; else tar -xf - -C "$stage"; fi
}
st="$stage.status" fifo="$stage.fifo"
mkfifo "$fifo"
(sha256sum < "$fifo" | cut -d ' ' -f 1 > "$stage.sum") &
{ curl -f -S --connect-timeout 20 --max-time 3600 -K - <<CURLCFG || echo "curl exit $?" > "$st"
url = "$url"
header = "Authorization: Bearer $token"
CURLCFG
} | tee "$fifo" | { "$comp" -dc || echo "$comp exit $?" >> "$st"; } | untar
tr=$?
wait
got=$(cat "$stage.sum" 2>/dev/null)
rm -f "$fifo" "$stage.sum"
if [ -s "$st" ] && grep -q '^curl' "$st"; then cat "$st" >&2; rm -rf "$stage" "$st"; exit 7; fi
if [ "$got" != "$sum" ]; then echo "SHA-256 $got arrived, the entry records $sum" >&2; rm -rf "$stage" "$st"; exit 4; fi
if [ -s "$st" ]; then cat "$st" >&2; rm -rf "$stage" "$st"; exit 4; fi
rm -f "$st"
if [ "$tr" != 0 ]; then rm -rf "$stage"; echo "tar could not unpack the archive (exit $tr)" >&2; exit 6; fi
"#;

/// Exit code of [`FETCH`]: the URL could not be fetched.
const UNREACHABLE: i32 = 7;

/// 32 random bytes as hex (a capability).
fn capability() -> Result<String, String> {
    let mut buf = [0u8; 32];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut buf)
        .map_err(|_| "the system has no random numbers".to_owned())?;
    Ok(locate::hex(&buf))
}

/// Bytes received so far, from one line of curl's progress meter (`% Total % Received ...`).
pub fn meter_bytes(line: &str) -> Option<u64> {
    meter_column(line, 3)
}

/// Bytes sent so far, from one line of curl's progress meter (its `Xferd` column).
pub fn meter_sent(line: &str) -> Option<u64> {
    meter_column(line, 5)
}

/// Column `i` of one line of curl's progress meter, as bytes.
fn meter_column(line: &str, i: usize) -> Option<u64> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 12 || f[0].parse::<u32>().is_err() {
        return None;
    }
    let v = f[i];
    let (num, mult) = match v.chars().last()? {
        'k' => (&v[..v.len() - 1], 1024.0),
        'M' => (&v[..v.len() - 1], 1024.0 * 1024.0),
        'G' => (&v[..v.len() - 1], 1024.0 * 1024.0 * 1024.0),
        c if c.is_ascii_digit() => (v, 1.0),
        _ => return None,
    };
    num.parse::<f64>().ok().map(|n| (n * mult) as u64)
}

/// Starts the cache server in the cache sprite unless one runs (it then serves every
/// capability); returns once it listens.
async fn ensure_server(store: &Store) -> Result<(), String> {
    let cmd = store
        .sprite
        .command(install::REMOTE_PATH)
        .args([
            "serve-cache",
            "--root",
            ROOT,
            "--listen",
            "0.0.0.0:8080",
            "--idle-secs",
            SERVER_IDLE_SECS,
        ])
        // It outlives this connection; it stops itself once idle.
        .max_run_after_disconnect(Duration::from_secs(3600));
    let mut child = cmd
        .spawn()
        .await
        .map_err(|e| format!("starting the cache server: {e}"))?;
    let mut out = child
        .stdout
        .take()
        .ok_or("the cache server has no stdout")?;
    match tokio::time::timeout(SERVER_START, out.recv()).await {
        Ok(Some(line)) if String::from_utf8_lossy(&line).starts_with("serving") => {
            // Leave it running.
            drop(out);
            drop(child);
            Ok(())
        }
        Ok(_) => match tokio::time::timeout(SERVER_START, child.wait()).await {
            Ok(Ok(c)) if c == clauderon_relay::EXIT_ADDR_IN_USE => Ok(()),
            Ok(Ok(c)) => Err(format!("the cache server exited with {c}")),
            Ok(Err(e)) => Err(format!("the cache server: {e}")),
            Err(_) => Err("the cache server did not start".into()),
        },
        Err(_) => Err("the cache server did not start listening".into()),
    }
}

/// The lines of a transfer's stderr that are not curl's progress meter.
fn meter_free_lines(stderr: &str) -> Vec<&str> {
    stderr
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty() && meter_bytes(l).is_none())
        .filter(|l| !l.starts_with("% Total") && !l.starts_with("Dload"))
        .collect()
}

/// [`meter_free_lines`] as one message.
fn without_meter(stderr: &str) -> String {
    meter_free_lines(stderr).join("; ")
}

/// Opens the cache sprite's URL for one transfer: the server running there, and a capability
/// for `name` (an entry's key, or `put:` and an upload's name) with `max` bytes for an upload.
/// Returns the URL and the capability.
async fn open(
    b: &SpritesBackend,
    store: &Store,
    grant_for: &str,
    max: Option<u64>,
) -> Result<(String, String), String> {
    let client = b.client().await.map_err(|e| e.message)?;
    let name = store.state.sprite.clone();
    let info = client
        .get(&name)
        .await
        .map_err(|e| format!("looking up the cache sprite's URL: {e}"))?;
    let url = info
        .url
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .ok_or("the cache sprite has no URL")?;
    let relay = locate::find_relay(b.settings().relay_path.as_deref()).map_err(|e| e.message)?;
    install::install(&store.sprite, &relay, &|_, _| {})
        .await
        .map_err(|e| e.message)?;
    if info.url_settings.as_ref().map(|s| s.auth.as_str()) != Some("public") {
        let public = UpdateSprite {
            url_settings: Some(UrlSettings {
                auth: "public".into(),
                private_access: None,
            }),
            ..UpdateSprite::default()
        };
        client
            .update(&name, &public)
            .await
            .map_err(|e| format!("opening the cache sprite's URL: {e}"))?;
    }
    ensure_server(store).await?;
    let token = capability()?;
    let expiry = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| (d + CAPABILITY_LIFE).as_secs())
        .unwrap_or(0)
        .to_string();
    let max = max.map(|m| m.to_string()).unwrap_or_default();
    let granted = run(
        &store.sprite,
        GRANT,
        "clauderon-cache-grant",
        &[ROOT, grant_for, &expiry, &max],
        Some(format!("{token}\n").as_bytes()),
    )
    .await
    .map_err(|e| e.message)?;
    if !granted.success() {
        return Err(format!(
            "granting a capability failed: {}",
            String::from_utf8_lossy(&granted.stderr).trim()
        ));
    }
    Ok((url.trim_end_matches('/').to_owned(), token))
}

/// Tries the direct path; `Err` says why it cannot be used (the caller relays instead).
pub(crate) async fn restore(
    b: &SpritesBackend,
    ctx: &CallContext,
    store: &Store,
    session: &SpriteHandle,
    meta: &EntryMeta,
    stage: &str,
    layer: bool,
) -> Result<Attempt, String> {
    let name = store.state.sprite.clone();
    let (url, token) = open(b, store, &meta.key, None).await?;
    let entry_url = format!("{url}/entries/{}", meta.key);
    ctx.progress(
        "cache",
        &format!(
            "restoring {} directly from cache sprite {name} ({})",
            meta.key,
            transfer::human(meta.size)
        ),
        Some(0.0),
    );
    let child = session
        .command("sh")
        .stdin(true)
        .args([
            "-c",
            FETCH,
            "clauderon-cache-fetch",
            &entry_url,
            stage,
            &meta.sha256,
            meta.decompressor(),
            if layer { "layer" } else { "base" },
        ])
        .spawn()
        .await
        .map_err(|e| format!("starting the fetch in the session sprite: {e}"))?;
    let started = std::time::Instant::now();
    let what = format!("restoring {}", meta.key);
    let how = "directly from the cache sprite";
    let tick = |bytes, rate| {
        let total = Some(meta.size);
        super::report(ctx, &what, how, Tick { bytes, total, rate });
    };
    let (stderr, out) = with_meter(child, &token, meter_bytes, tick)
        .await
        .map_err(|e| format!("fetching in the session sprite: {e}"))?;
    let said = without_meter(&stderr);
    if out.exit_code == UNREACHABLE {
        // The request never reached the server (or was refused before it): the capability is
        // still there, and of no further use.
        revoke(store, &token).await;
    }
    match out.exit_code {
        0 => {
            let rate = transfer::rate(meta.size, started.elapsed());
            let (bytes, total) = (meta.size, Some(meta.size));
            super::report(ctx, &what, how, Tick { bytes, total, rate });
            Ok(Attempt::Staged { bytes: meta.size })
        }
        scripts::DAMAGED => Ok(Attempt::Damaged(said)),
        scripts::NO_DECOMPRESSOR => Ok(Attempt::Unusable(said)),
        UNREACHABLE => Err(format!(
            "the session sprite cannot fetch the cache sprite's URL: {said}"
        )),
        c => {
            clean_stage(session, stage).await;
            Err(format!("the direct fetch failed (exit {c}): {said}"))
        }
    }
}

/// Hands capability `token` to `child` on its stdin, follows curl's progress meter on its
/// stderr (`column` reads the bytes moved from one meter line; `tick` gets them and the rate,
/// at most twice a second) and waits for it. Returns its stderr (the last 64 KiB at most) and
/// its output.
async fn with_meter(
    mut child: crate::client::Child,
    token: &str,
    column: fn(&str) -> Option<u64>,
    tick: impl Fn(u64, f64),
) -> Result<(String, crate::client::Output), String> {
    if let Some(mut w) = child.stdin.take() {
        let _ = w.write_all(format!("{token}\n").as_bytes()).await;
        let _ = w.shutdown().await;
    }
    let mut err_stream = child.stderr.take().ok_or("the command has no stderr")?;
    let started = std::time::Instant::now();
    let watch = async {
        let (mut text, mut last) = (String::new(), std::time::Instant::now());
        while let Some(chunk) = err_stream.recv().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(bytes) = text.rsplit(['\r', '\n']).find_map(column)
                && last.elapsed() >= Duration::from_millis(500)
            {
                last = std::time::Instant::now();
                tick(bytes, transfer::rate(bytes, started.elapsed()));
            }
            if text.len() > 64 * 1024 {
                text.drain(..text.len() - 4096);
            }
        }
        text
    };
    let (stderr, out) = tokio::join!(watch, child.wait_with_output());
    Ok((stderr, out.map_err(|e| e.to_string())?))
}

/// Removes capability `token` from the cache sprite (one its holder could not use); best
/// effort: unused, it expires anyway.
async fn revoke(store: &Store, token: &str) {
    let gone = run(
        &store.sprite,
        r#"rm -f "$1/caps/$2""#,
        "clauderon-cache-revoke",
        &[ROOT, token],
        None,
    )
    .await;
    if let Err(e) = gone {
        tracing::debug!("revoking an unused capability failed: {e}");
    }
}

/// How a direct save ended, for the caller to commit or not as it does a relayed one.
pub(crate) struct Pushed {
    /// What the cache sprite stored (size, SHA-256, time), or why it stored nothing.
    pub moved: Result<transfer::Moved, transfer::Stopped>,
    /// The packer's exit code and its own stderr lines (curl's meter left out).
    pub packed: crate::client::Output,
}

/// Tries the direct path of a save: the session sprite packs (`pack_args`: the packer's
/// arguments) and sends the archive to the cache sprite's URL as `incoming/KEY.NONCE`. `Err`
/// says why it cannot be used (the caller relays instead; nothing was stored).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn save(
    b: &SpritesBackend,
    ctx: &CallContext,
    store: &Store,
    session: &SpriteHandle,
    key: &str,
    nonce: &str,
    pack_args: &[&str],
    max: Option<u64>,
) -> Result<Pushed, String> {
    let upload = format!("{key}.{nonce}");
    let max = max.unwrap_or(u64::MAX);
    let (url, token) = open(b, store, &format!("put:{upload}"), Some(max)).await?;
    let upload_url = format!("{url}/incoming/{upload}");
    let mut args = vec![
        "-c",
        PUSH,
        "clauderon-cache-push",
        &upload_url,
        scripts::PACK,
    ];
    args.extend_from_slice(pack_args);
    let child = session
        .command("sh")
        .stdin(true)
        .args(args)
        .spawn()
        .await
        .map_err(|e| format!("starting the upload in the session sprite: {e}"))?;
    let started = std::time::Instant::now();
    let what = format!("saving {key}");
    let how = "directly into the cache sprite";
    let tick = |bytes, rate| {
        let total = None;
        super::report(ctx, &what, how, Tick { bytes, total, rate });
    };
    let (stderr, out) = with_meter(child, &token, meter_sent, tick)
        .await
        .map_err(|e| format!("sending from the session sprite: {e}"))?;
    let said = without_meter(&stderr);
    // The packer's lines, without the meter.
    let packed = |exit_code: i32| crate::client::Output {
        exit_code,
        stdout: Vec::new(),
        stderr: meter_free_lines(&stderr).join("\n").into_bytes(),
    };
    if out.exit_code == UNREACHABLE {
        revoke(store, &token).await;
    }
    match out.exit_code {
        0 => {
            let text = String::from_utf8_lossy(&out.stdout);
            let mut f = text.split_whitespace();
            let (Some(size), Some(sum)) = (f.next().and_then(|v| v.parse().ok()), f.next()) else {
                return Err(format!("the cache server answered {:?}", text.trim()));
            };
            let elapsed = started.elapsed();
            let rate = transfer::rate(size, elapsed);
            super::report(
                ctx,
                &what,
                how,
                Tick {
                    bytes: size,
                    total: Some(size),
                    rate,
                },
            );
            Ok(Pushed {
                moved: Ok(transfer::Moved {
                    bytes: size,
                    sha256: sum.to_owned(),
                    elapsed,
                }),
                packed: packed(0),
            })
        }
        OVER_LIMIT => Ok(Pushed {
            moved: Err(transfer::Stopped::TooLarge { max }),
            packed: packed(0),
        }),
        c @ (scripts::NOTHING | scripts::CHANGED) => Ok(Pushed {
            moved: Ok(transfer::Moved {
                bytes: 0,
                sha256: String::new(),
                elapsed: started.elapsed(),
            }),
            packed: packed(c),
        }),
        UNREACHABLE => Err(format!(
            "the session sprite cannot send to the cache sprite's URL: {said}"
        )),
        c => Err(format!("the direct upload failed (exit {c}): {said}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curls_meter_gives_the_bytes_received() {
        let l = " 45  190M   45 86.5M    0     0  85.1M      0  0:00:02  0:00:01  0:00:01 85.1M";
        assert_eq!(meter_bytes(l), Some((86.5 * 1024.0 * 1024.0) as u64));
        let l = "100  1234  100  1234    0     0   9000      0 --:--:-- --:--:-- --:--:--  9000";
        assert_eq!(meter_bytes(l), Some(1234));
        let l = "100 86.5M    0     0  100 86.5M      0  85.1M  0:00:01  0:00:01 --:--:-- 85.1M";
        assert_eq!(meter_sent(l), Some((86.5 * 1024.0 * 1024.0) as u64));
        assert_eq!(meter_bytes(l), Some(0));
        assert_eq!(
            meter_bytes("  % Total    % Received % Xferd  Average Speed"),
            None
        );
        assert_eq!(
            meter_bytes("curl: (22) The requested URL returned error: 403"),
            None
        );
        let err = "  % Total    % Received\r  0     0    0     0    0     0      0      0 --:--:-- --:--:-- --:--:--     0\ncurl: (22) error 403\n";
        assert_eq!(without_meter(err), "curl: (22) error 403");
        assert_eq!(capability().unwrap().len(), 64);
    }
}
