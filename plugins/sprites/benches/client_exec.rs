//! The client's exec overhead: `clauderon_sprites::client` against a bare tokio-tungstenite loop,
//! both driving the same `sprites-emulator` in the same run.
//!
//! - round trip: `true` over the non-TTY exec WebSocket (connect, exit frame, close), N times;
//! - throughput: 100 MB of stdout (`head -c 100000000 /dev/zero`) counted as it streams.
//!
//! `cargo bench -p clauderon-sprites --bench client_exec` (`CLIENT_BENCH_ITERS` changes N). The
//! emulator is built for the same profile when it is missing. Run without `--bench` (as `cargo
//! test --benches` does) it is a quick smoke run: 3 round trips, 10 MB.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clauderon_sprites::client::{CreateSprite, SpritesClient, Token};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const TOKEN: &str = "bench-token";

type BoxError = Box<dyn std::error::Error>;

fn main() -> Result<(), BoxError> {
    let full = std::env::args().any(|a| a == "--bench");
    let iters: u32 = std::env::var("CLIENT_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 50 } else { 3 });
    let bytes: u64 = if full { 100_000_000 } else { 10_000_000 };
    let exe = emulator_binary()?;
    let data = std::env::temp_dir().join(format!("client-bench-{}", std::process::id()));
    let mut emu = Command::new(&exe)
        .args(["--listen", "127.0.0.1:0", "--token", TOKEN, "--data"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(emu.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let addr = line.trim().to_owned();
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(run(&addr, iters, bytes));
    let _ = emu.kill();
    let _ = emu.wait();
    let _ = std::fs::remove_dir_all(&data);
    result
}

/// `target/<profile>/sprites-emulator`, built if missing.
fn emulator_binary() -> Result<PathBuf, BoxError> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("bench binary is not in target/<profile>/deps")?
        .to_path_buf();
    let bin = profile_dir.join(format!("sprites-emulator{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo.args(["build", "-p", "sprites-emulator", "--quiet"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        if !cargo.status()?.success() {
            return Err("building sprites-emulator failed".into());
        }
    }
    Ok(bin)
}

async fn run(addr: &str, iters: u32, bytes: u64) -> Result<(), BoxError> {
    let client = SpritesClient::builder()
        .base_url(format!("http://{addr}"))
        .token(Token::new(TOKEN))
        .build()?;
    client.create(&CreateSprite::new("bench")).await?;
    let sprite = client.sprite("bench");
    // Warm up both paths (wake, first process start).
    sprite.command("true").status().await?;
    raw_exec(addr, "cmd=true&path=true&stdin=false").await?;

    let mut raw_rt = Duration::ZERO;
    let mut client_rt = Duration::ZERO;
    // Alternate which goes first, so neither always follows the other's teardown.
    for i in 0..iters {
        for raw_turn in [i % 2 == 0, i % 2 != 0] {
            let t = Instant::now();
            if raw_turn {
                let (_, code) = raw_exec(addr, "cmd=true&path=true&stdin=false").await?;
                assert_eq!(code, 0);
                raw_rt += t.elapsed();
            } else {
                assert_eq!(sprite.command("true").status().await?, 0);
                client_rt += t.elapsed();
            }
        }
    }
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / f64::from(iters.max(1));
    println!(
        "exec round trip (`true`, {iters} runs): client {:.2} ms, bare tungstenite {:.2} ms, ratio {:.2}x",
        per(client_rt),
        per(raw_rt),
        per(client_rt) / per(raw_rt)
    );

    let q = format!("cmd=head&cmd=-c&cmd={bytes}&cmd=/dev/zero&path=head&stdin=false");
    let t = Instant::now();
    let (raw_bytes, _) = raw_exec(addr, &q).await?;
    let raw_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut child = sprite
        .command("head")
        .args(["-c", &bytes.to_string(), "/dev/zero"])
        .spawn()
        .await?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut client_bytes = 0u64;
    while let Some(chunk) = stdout.recv().await {
        client_bytes += chunk.len() as u64;
    }
    child.wait().await?;
    let client_s = t.elapsed().as_secs_f64();
    assert_eq!(raw_bytes, bytes);
    assert_eq!(client_bytes, bytes);
    let mbs = |s: f64| bytes as f64 / 1e6 / s;
    println!(
        "{} MB stdout: client {:.0} MB/s, bare tungstenite {:.0} MB/s, ratio {:.2}x",
        bytes / 1_000_000,
        mbs(client_s),
        mbs(raw_s),
        mbs(client_s) / mbs(raw_s)
    );
    Ok(())
}

/// The baseline: one non-TTY exec read with a bare tokio-tungstenite loop.
async fn raw_exec(addr: &str, query: &str) -> Result<(u64, u8), BoxError> {
    let mut req = format!("ws://{addr}/v1/sprites/bench/exec?{query}").into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse()?);
    // Nagle off, as the client does: otherwise the baseline pays ~40 ms ACK delays.
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true).await?;
    ws.send(Message::binary(vec![4u8])).await?;
    let mut bytes = 0u64;
    while let Some(msg) = ws.next().await {
        if let Message::Binary(b) = msg? {
            match b.first() {
                Some(1) => bytes += b.len() as u64 - 1,
                Some(3) => {
                    let _ = ws.close(None).await;
                    return Ok((bytes, b.get(1).copied().unwrap_or(255)));
                }
                _ => {}
            }
        }
    }
    Err("the socket closed without an exit frame".into())
}
