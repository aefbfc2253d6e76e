//! Uploads into a sprite (`clauderon_sprites::backend::upload`, which the tunnel relay and the
//! git bundles go through) against the emulator with the spec's `fs/write` and with the limits
//! the real service was observed to apply (`--quirk fs-write-limits`: 400 for binary, 413 above
//! 1 MB), on the primary route (exec stdin) and on the fallback (`fs/write` parts) that a
//! refused exec forces. Every case reads the file back and compares it byte for byte.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use clauderon_sprites::backend::upload::{self, PART_NAME, Transport, Uploaded};
use clauderon_sprites::client::{CreateSprite, SpriteHandle, SpritesClient, Token};
use serde_json::json;

use crate::support::emulator::Emulator;

/// Incompressible bytes (xorshift), binary in every sense.
fn noise(n: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    Bytes::from(v)
}

async fn sprite(emu: &Emulator, name: &str) -> SpriteHandle {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = SpritesClient::builder()
        .base_url(emu.base_url())
        .token(Token::new(emu.token()))
        .build()
        .unwrap();
    c.create(&CreateSprite::new(name)).await.unwrap();
    c.sprite(name)
}

/// Uploads `data` to `dest` with mode 0750 and checks what arrived: the same bytes, the mode,
/// and nothing left beside it.
async fn upload_and_check(s: &SpriteHandle, dest: &str, data: &Bytes) -> (Uploaded, Vec<String>) {
    let messages = std::sync::Mutex::new(Vec::new());
    let note = |m: &str, _f: f64| messages.lock().unwrap().push(m.to_owned());
    let done = upload::upload(s, dest, data, 0o750, &note).await.unwrap();
    assert_eq!(s.read_file(dest).await.unwrap(), *data, "content of {dest}");
    let entry = s.stat(dest).await.unwrap().unwrap();
    assert_eq!(entry.mode_bits(), Some(0o750), "{entry:?}");
    let parent = dest.rsplit_once('/').unwrap().0;
    let names: Vec<String> = s
        .list_dir(parent)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        names,
        [dest.rsplit('/').next().unwrap()],
        "staging files left"
    );
    (done, messages.into_inner().unwrap())
}

/// The primary route, with the spec's fs limits (`quirk` false) and the observed ones.
async fn through_exec_stdin(quirk: bool) {
    let emu = if quirk {
        Emulator::start_args(&["--quirk", "fs-write-limits"])
    } else {
        Emulator::start()
    };
    let s = sprite(&emu, "up").await;
    let data = noise(2_500_000, 7);
    let (done, messages) = upload_and_check(&s, "/home/sprite/up/a.bin", &data).await;
    assert_eq!(done.transport, Transport::ExecStdin, "{messages:?}");
    assert_eq!((done.parts, done.fallback), (3, None));
    // Replacing it works the same way; an empty file is a file too.
    upload_and_check(&s, "/home/sprite/up/a.bin", &noise(10, 3)).await;
    let (done, _) = upload_and_check(&s, "/home/sprite/empty/e", &Bytes::new()).await;
    assert_eq!(done.parts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_stream_through_exec_stdin_in_verified_parts() {
    through_exec_stdin(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_stream_through_exec_stdin_under_the_observed_fs_write_limits() {
    through_exec_stdin(true).await;
}

/// Refuses every exec that would receive an upload part (with `status`).
async fn refuse_part_execs(emu: &Emulator, status: u16) {
    emu.add_fault(json!({
        "kind": "error", "status": status, "method": "GET",
        "path": "/v1/sprites/*/exec", "query": format!("*cmd={PART_NAME}*"),
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_exec_falls_back_to_fs_write_parts() {
    let emu = Emulator::start();
    let s = sprite(&emu, "fb").await;
    refuse_part_execs(&emu, 413).await;
    // One 413 from fs/write too: the parts halve.
    emu.add_fault(json!({"kind": "error", "status": 413, "method": "PUT",
        "path": "/v1/sprites/*/fs/write", "times": 1}))
        .await;
    let data = noise(2_200_000, 11);
    let (done, messages) = upload_and_check(&s, "/home/sprite/fb/b.bin", &data).await;
    assert_eq!(done.transport, Transport::FsWrite, "{messages:?}");
    assert!(
        done.fallback.as_deref().unwrap().contains("413"),
        "{done:?}"
    );
    // 2.2 MB in parts of 500 kB after the 413.
    assert_eq!(done.parts, 5, "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("(413)")), "{messages:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_observed_limits_the_fallback_sends_base64_text() {
    let emu = Emulator::start_args(&["--quirk", "fs-write-limits"]);
    let s = sprite(&emu, "b64").await;
    refuse_part_execs(&emu, 400).await;
    let data = noise(1_600_000, 5);
    let (done, messages) = upload_and_check(&s, "/home/sprite/b64/c.bin", &data).await;
    assert_eq!(done.transport, Transport::FsWriteBase64, "{messages:?}");
    // The first binary part was refused (400), then 750 kB per part, 1 MB of base64 each.
    assert_eq!(done.parts, 3, "{messages:?}");
    assert!(
        messages.iter().any(|m| m.contains("refused a binary part")),
        "{messages:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_destination_is_refused_before_anything_is_sent() {
    let emu = Emulator::start();
    let s = sprite(&emu, "bad").await;
    for dest in ["relative/path", "/home/sprite/dir/"] {
        let e = upload::upload(&s, dest, &noise(5, 1), 0o644, &|_, _| {})
            .await
            .unwrap_err();
        assert!(e.message.contains("absolute file path"), "{e:?}");
    }
}
