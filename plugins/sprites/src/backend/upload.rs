//! Putting a file into a sprite in a way the real service accepts: in parts of at most
//! [`PART`] bytes, each verified by size and SHA-256 inside the sprite, then joined, verified
//! whole, given its mode and renamed into place (so a reader never sees half a file).
//!
//! Two transports. The primary streams each part through the stdin of a non-TTY exec: binary
//! safe, with no size limit ever observed, and the same exec checks the part, so a part costs one
//! round trip. `fs/write` is the fallback when the exec route is refused (400 or 413) or a part
//! arrives damaged: the spec allows 16 MiB per write, but the real service was seen (Jan 2026,
//! sprites-docs #116) refusing binary bodies with 400 and bodies near 1 MB with 413. So the
//! fallback sends raw parts; after a 400 it sends the rest base64-encoded (text, decoded in the
//! sprite), and after a 413 it halves the part size (down to [`MIN_PART`]).

use base64::Engine as _;
use bytes::Bytes;
use clauderon_plugin_sdk::{ErrorKind, PluginError};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::errors::plugin_error;
use crate::client::{Error, SpriteHandle, WriteOptions};
use crate::tunnel::locate::hex;

/// The largest part sent in one exec or one `fs/write` (1 MB, under both the observed ~1 MB
/// cap and 1 MiB).
pub const PART: usize = 1_000_000;
/// The smallest part the fs fallback shrinks to after 413 answers.
pub const MIN_PART: usize = 64 * 1024;
/// `$0` of the exec that receives a part (it names the command in the session list, and lets
/// the emulator's fault rules single these execs out).
pub const PART_NAME: &str = "clauderon-upload-part";
/// The exit code the sprite-side scripts use for "a part or the file did not verify".
const MISMATCH: i32 = 4;

/// Receives one part into `$1` from stdin and checks its size (`$2`) and SHA-256 (`$3`).
const RECEIVE_SCRIPT: &str = r#"set -e
p=$1 size=$2 sum=$3
mkdir -p "$(dirname "$p")"
cat > "$p"
got=$(wc -c < "$p" | tr -d ' ')
if [ "$got" != "$size" ]; then echo "$p: received $got bytes, sent $size" >&2; exit 4; fi
got=$(sha256sum "$p" | cut -d ' ' -f 1)
if [ "$got" != "$sum" ]; then echo "$p: SHA-256 $got, sent $sum" >&2; exit 4; fi
"#;

/// Joins the parts (`PATH SIZE SHA256 raw|base64` after the five fixed arguments), checking
/// each and then the whole file, sets its mode and moves it to `$1`.
const ASSEMBLE_SCRIPT: &str = r#"set -e
dest=$1 tmp=$2 size=$3 sum=$4 mode=$5
shift 5
check() {
  got=$(wc -c < "$1" | tr -d ' ')
  if [ "$got" != "$2" ]; then echo "$1: has $got bytes, expected $2" >&2; exit 4; fi
  got=$(sha256sum "$1" | cut -d ' ' -f 1)
  if [ "$got" != "$3" ]; then echo "$1: SHA-256 $got, expected $3" >&2; exit 4; fi
}
mkdir -p "$(dirname "$dest")"
: > "$tmp"
parts=""
while [ "$#" -ge 4 ]; do
  p=$1 psize=$2 psum=$3 enc=$4
  shift 4
  if [ "$enc" = base64 ]; then base64 -d < "$p" > "$p.raw"; rm -f "$p"; p="$p.raw"; fi
  check "$p" "$psize" "$psum"
  cat "$p" >> "$tmp"
  parts="$parts $p"
done
check "$tmp" "$size" "$sum"
chmod "$mode" "$tmp"
mv -f "$tmp" "$dest"
for p in $parts; do rm -f "$p"; done
"#;

/// How a file went into the sprite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Parts streamed through exec stdin.
    ExecStdin,
    /// Parts written with `fs/write` as they are.
    FsWrite,
    /// Parts written with `fs/write`, some base64-encoded after the service refused binary.
    FsWriteBase64,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::ExecStdin => "exec stdin",
            Transport::FsWrite => "fs/write",
            Transport::FsWriteBase64 => "fs/write (base64)",
        })
    }
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// The transport that carried it.
    pub transport: Transport,
    /// How many parts it took.
    pub parts: usize,
    /// Why the primary transport was not used, when it was not.
    pub fallback: Option<String>,
}

/// One verified piece of the file, as the assemble script checks it.
struct Part {
    path: String,
    size: usize,
    sha256: String,
    base64: bool,
}

/// Why the exec route gave up in a way the fs route may fix.
enum ExecOutcome {
    Done(Vec<Part>),
    Refused(String),
}

/// Uploads `data` to `dest` (absolute) with permission bits `mode`; `progress` hears a message
/// and the fraction done for every part.
pub async fn upload(
    sprite: &SpriteHandle,
    dest: &str,
    data: &Bytes,
    mode: u32,
    progress: &(dyn Fn(&str, f64) + Send + Sync),
) -> Result<Uploaded, PluginError> {
    if !dest.starts_with('/') || dest.ends_with('/') {
        return Err(PluginError::invalid_request(format!(
            "upload destination {dest:?} must be an absolute file path"
        )));
    }
    let sum = hex(&Sha256::digest(data));
    let stage = format!("{dest}.upload-{}", &sum[..12]);
    let (parts, transport, fallback) = match via_exec(sprite, &stage, data, progress).await? {
        ExecOutcome::Done(parts) => (parts, Transport::ExecStdin, None),
        ExecOutcome::Refused(why) => {
            progress(
                &format!("exec upload refused ({why}); writing {dest} through fs/write instead"),
                0.0,
            );
            let (parts, b64) = via_fs(sprite, &stage, data, progress).await?;
            let t = if b64 {
                Transport::FsWriteBase64
            } else {
                Transport::FsWrite
            };
            (parts, t, Some(why))
        }
    };
    assemble(sprite, dest, &stage, data.len(), &sum, mode, &parts).await?;
    Ok(Uploaded {
        transport,
        parts: parts.len(),
        fallback,
    })
}

/// The pieces of `data` of at most `size` bytes (one empty piece for an empty file: none).
fn pieces(data: &Bytes, size: usize) -> impl Iterator<Item = (usize, Bytes)> + '_ {
    (0..data.len())
        .step_by(size.max(1))
        .map(move |at| (at, data.slice(at..(at + size).min(data.len()))))
}

/// Whether the service refused the request in a way another transport may not hit.
fn refused(e: &Error) -> Option<String> {
    match e.status() {
        Some(s @ (400 | 413)) => Some(format!("HTTP {s}: {e}")),
        _ => None,
    }
}

async fn via_exec(
    sprite: &SpriteHandle,
    stage: &str,
    data: &Bytes,
    progress: &(dyn Fn(&str, f64) + Send + Sync),
) -> Result<ExecOutcome, PluginError> {
    let n = data.len().div_ceil(PART);
    let mut parts = Vec::with_capacity(n);
    for (i, (at, piece)) in pieces(data, PART).enumerate() {
        let path = format!("{stage}.{i}");
        let sum = hex(&Sha256::digest(&piece));
        let cmd = sprite.command("sh").stdin(true).args([
            "-c",
            RECEIVE_SCRIPT,
            PART_NAME,
            &path,
            &piece.len().to_string(),
            &sum,
        ]);
        let mut child = match cmd.spawn().await {
            Ok(c) => c,
            Err(e) => match refused(&e) {
                Some(why) => return Ok(ExecOutcome::Refused(why)),
                None => return Err(plugin_error("starting an upload in the sprite", &e)),
            },
        };
        if let Some(mut stdin) = child.stdin.take() {
            // A failed write shows up as the exec's own failure below.
            let _ = stdin.write_all(&piece).await;
            let _ = stdin.shutdown().await;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| plugin_error("uploading a part into the sprite", &e))?;
        match out.exit_code {
            0 => {}
            MISMATCH => {
                return Ok(ExecOutcome::Refused(format!(
                    "a part arrived damaged: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            code => return Err(script_failed("receiving a part", code, &out.stderr)),
        }
        progress(
            &format!(
                "uploaded part {} of {n} ({} bytes) through exec stdin",
                i + 1,
                piece.len()
            ),
            (at + piece.len()) as f64 / data.len().max(1) as f64,
        );
        parts.push(Part {
            path,
            size: piece.len(),
            sha256: sum,
            base64: false,
        });
    }
    Ok(ExecOutcome::Done(parts))
}

/// Writes the parts with `fs/write`; true when some went base64-encoded.
async fn via_fs(
    sprite: &SpriteHandle,
    stage: &str,
    data: &Bytes,
    progress: &(dyn Fn(&str, f64) + Send + Sync),
) -> Result<(Vec<Part>, bool), PluginError> {
    let opts = WriteOptions {
        mode: Some(0o600),
        mkdir_parents: true,
    };
    let mut parts = Vec::new();
    let (mut at, mut limit, mut base64) = (0usize, PART, false);
    while at < data.len() {
        // Base64 turns 3 bytes into 4: the encoded body stays within the limit.
        let raw = if base64 { limit / 4 * 3 } else { limit };
        let piece = data.slice(at..(at + raw).min(data.len()));
        let path = format!("{stage}.{}", parts.len());
        let body = if base64 {
            Bytes::from(base64::engine::general_purpose::STANDARD.encode(&piece))
        } else {
            piece.clone()
        };
        match sprite.write_file(&path, body, &opts).await {
            Ok(_) => {}
            Err(e) if e.status() == Some(400) && !base64 => {
                progress(
                    "fs/write refused a binary part (400): sending base64 text",
                    0.0,
                );
                base64 = true;
                continue;
            }
            Err(e) if e.status() == Some(413) && limit / 2 >= MIN_PART => {
                limit /= 2;
                progress(
                    &format!(
                        "fs/write refused {} bytes (413): parts of {limit} bytes now",
                        piece.len()
                    ),
                    0.0,
                );
                continue;
            }
            Err(e) => return Err(plugin_error(&format!("writing {path} into the sprite"), &e)),
        }
        at += piece.len();
        progress(
            &format!(
                "uploaded part {} ({} bytes) through {}",
                parts.len() + 1,
                piece.len(),
                if base64 {
                    "fs/write (base64)"
                } else {
                    "fs/write"
                }
            ),
            at as f64 / data.len() as f64,
        );
        parts.push(Part {
            path,
            size: piece.len(),
            sha256: hex(&Sha256::digest(&piece)),
            base64,
        });
    }
    Ok((parts, base64))
}

async fn assemble(
    sprite: &SpriteHandle,
    dest: &str,
    stage: &str,
    size: usize,
    sum: &str,
    mode: u32,
    parts: &[Part],
) -> Result<(), PluginError> {
    let mut args = vec![
        "-c".to_owned(),
        ASSEMBLE_SCRIPT.to_owned(),
        "clauderon-upload-join".to_owned(),
        dest.to_owned(),
        format!("{stage}.tmp"),
        size.to_string(),
        sum.to_owned(),
        format!("{:04o}", mode & 0o7777),
    ];
    for p in parts {
        // A base64 part holds the encoded text under its name; size and hash are of the bytes.
        let enc = if p.base64 { "base64" } else { "raw" };
        args.extend([
            p.path.clone(),
            p.size.to_string(),
            p.sha256.clone(),
            enc.to_owned(),
        ]);
    }
    let out = sprite
        .command("sh")
        .args(args)
        .output()
        .await
        .map_err(|e| plugin_error(&format!("joining the parts of {dest} in the sprite"), &e))?;
    if out.success() {
        Ok(())
    } else {
        Err(script_failed(
            &format!("joining the parts of {dest}"),
            out.exit_code,
            &out.stderr,
        ))
    }
}

fn script_failed(what: &str, code: i32, stderr: &[u8]) -> PluginError {
    let text = String::from_utf8_lossy(stderr);
    let detail = text.trim();
    let kind = if code == MISMATCH {
        ErrorKind::Internal
    } else {
        ErrorKind::Unavailable
    };
    PluginError::new(
        kind,
        format!(
            "{what} in the sprite failed (exit {code}){}{detail}",
            if detail.is_empty() { "" } else { ": " }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_data_in_order() {
        let data = Bytes::from((0..10u8).collect::<Vec<_>>());
        let got: Vec<(usize, Vec<u8>)> = pieces(&data, 4).map(|(a, b)| (a, b.to_vec())).collect();
        assert_eq!(
            got,
            vec![
                (0, vec![0, 1, 2, 3]),
                (4, vec![4, 5, 6, 7]),
                (8, vec![8, 9])
            ]
        );
        assert_eq!(pieces(&Bytes::new(), 4).count(), 0);
    }
}
