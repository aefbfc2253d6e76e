//! Exec through the emulator versus the same command run directly, in one run.
//!
//! - round trip: `true` over the non-TTY exec WebSocket (connect, exit frame, close), N times,
//!   against `std::process::Command::new("true").status()`;
//! - throughput: 100 MB of stdout (`head -c 100000000 /dev/zero`) streamed through the WebSocket
//!   framing, against reading the same command's stdout pipe directly.
//!
//! `cargo bench -p sprites-emulator --bench exec` (set `EXEC_BENCH_ITERS` to change N).

use std::io::{BufRead, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const TOKEN: &str = "bench-token";
const BYTES: u64 = 100_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iters: usize = std::env::var("EXEC_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let data = tempfile::tempdir()?;
    let mut emu = Command::new(env!("CARGO_BIN_EXE_sprites-emulator"))
        .args(["--listen", "127.0.0.1:0", "--token", TOKEN, "--data"])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(emu.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let addr = line.trim().to_owned();
    let result = run(&addr, iters);
    let _ = emu.kill();
    let _ = emu.wait();
    result
}

fn http(addr: &str, method: &str, path: &str, body: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(addr)?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn open(addr: &str, query: &str) -> Result<Ws, Box<dyn std::error::Error>> {
    let mut req = format!("ws://{addr}/v1/sprites/bench/exec?{query}").into_client_request()?;
    req.headers_mut()
        .insert("Authorization", format!("Bearer {TOKEN}").parse()?);
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(tokio_tungstenite::client_async(req, tcp).await?.0)
}

/// Runs one exec; returns (stdout bytes, exit code).
async fn exec(addr: &str, query: &str) -> Result<(u64, u8), Box<dyn std::error::Error>> {
    let mut ws = open(addr, query).await?;
    let mut bytes = 0u64;
    while let Some(msg) = ws.next().await {
        if let Message::Binary(b) = msg? {
            match b.first() {
                Some(1) => bytes += b.len() as u64 - 1,
                Some(3) => {
                    let code = b.get(1).copied().unwrap_or(255);
                    // Close at once on the exit frame (the server would linger ~5 s).
                    let _ = ws.close(None).await;
                    return Ok((bytes, code));
                }
                _ => {}
            }
        }
    }
    Err("socket closed without an exit frame".into())
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let mean = v.iter().sum::<Duration>() / v.len().max(1) as u32;
    (mean, v[v.len() / 2])
}

fn run(addr: &str, iters: usize) -> Result<(), Box<dyn std::error::Error>> {
    let created = http(addr, "POST", "/v1/sprites", r#"{"name":"bench"}"#)?;
    if !created.starts_with("HTTP/1.1 201") {
        return Err(format!("create failed: {created}").into());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let true_q = "cmd=true";
    // Warm up: the first exec starts the sprite's sandbox.
    rt.block_on(exec(addr, true_q))?;

    let mut emu_lat = Vec::with_capacity(iters);
    let mut direct_lat = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        let (_, code) = rt.block_on(exec(addr, true_q))?;
        emu_lat.push(t.elapsed());
        assert_eq!(code, 0);
        let t = Instant::now();
        let st = Command::new("true").status()?;
        direct_lat.push(t.elapsed());
        assert!(st.success());
    }
    let (emu_mean, emu_p50) = stats(emu_lat);
    let (dir_mean, dir_p50) = stats(direct_lat);
    println!("exec round trip (`true`, {iters} iterations)");
    println!("  emulator WS exec   mean {emu_mean:>10.2?}  p50 {emu_p50:>10.2?}");
    println!("  direct std::process mean {dir_mean:>10.2?}  p50 {dir_p50:>10.2?}  (baseline)");
    println!(
        "  ratio emulator/direct: {:.1}x (mean)",
        emu_mean.as_secs_f64() / dir_mean.as_secs_f64()
    );

    let head = format!("cmd=head&cmd=-c&cmd={BYTES}&cmd=/dev/zero");
    let t = Instant::now();
    let (got, code) = rt.block_on(exec(addr, &head))?;
    let emu_t = t.elapsed();
    assert_eq!((got, code), (BYTES, 0), "all bytes through the emulator");
    let t = Instant::now();
    let mut child = Command::new("head")
        .args(["-c", &BYTES.to_string(), "/dev/zero"])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut direct_got = 0u64;
    loop {
        let n = out.read(&mut buf)?;
        if n == 0 {
            break;
        }
        direct_got += n as u64;
    }
    child.wait()?;
    let direct_t = t.elapsed();
    assert_eq!(direct_got, BYTES);
    let mbps = |d: Duration| BYTES as f64 / 1e6 / d.as_secs_f64();
    println!("stdout throughput (100 MB)");
    println!(
        "  emulator WS exec    {:>8.1} MB/s  ({emu_t:.2?})",
        mbps(emu_t)
    );
    println!(
        "  direct pipe read    {:>8.1} MB/s  ({direct_t:.2?})  (baseline)",
        mbps(direct_t)
    );
    println!(
        "  ratio emulator/direct throughput: {:.2}x",
        mbps(emu_t) / mbps(direct_t)
    );
    Ok(())
}
