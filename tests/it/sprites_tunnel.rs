//! The Sprites tunnel: `clauderon-relay` inside an emulator sprite carrying connections back to a
//! TCP server on the host, through the real plugin library and loader.
//!
//! The relay binary is also run directly (as the sandbox would) for the behaviour that needs no
//! sprite: the 503 when the host is gone, and the refusal of a taken port.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clauderon::plugins::{FrameKind, PluginClient, ops};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::artifacts::artifacts;
use crate::support::elf;
use crate::support::emulator::Emulator;
use crate::support::files::files_containing;
use crate::support::sprites_plugin::{self, Rig, Uploads, call, create_request};

/// The plugin against its own emulator; `extra` adds `[sprites]` keys.
fn rig(args: &[&str], extra: Value) -> Rig {
    let mut config = json!({"reconnect_attempts": 3});
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    Rig::start(args, config)
}

async fn create(plugin: &PluginClient, name: &str) -> ops::Instance {
    let (r, _): (Result<ops::InstanceResponse, _>, _) =
        call(plugin, ops::CREATE, &create_request(name)).await;
    r.unwrap().instance
}

/// Runs `bash -c script` in the sprite through the plugin's `exec`: (stdout, stderr, exit code).
async fn sh(plugin: &PluginClient, inst: &ops::Instance, script: &str) -> (String, String, i32) {
    sprites_plugin::exec(
        plugin,
        inst,
        &["bash", "-c", script],
        Duration::from_secs(180),
    )
    .await
}

/// A small HTTP/1.1 server on the host: `POST` echoes the body, `GET /big` answers 20 MB,
/// anything else answers "hello from the host". Counts the requests it served.
struct HostServer {
    addr: String,
    served: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HostServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn host_server() -> HostServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let served = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&served);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 64 * 1024];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                let mut body = buf[head_end..].to_vec();
                while body.len() < len {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => body.extend_from_slice(&chunk[..n]),
                    }
                }
                let answer = if head.starts_with("post ") {
                    body
                } else if head.starts_with("get /big ") {
                    vec![b'x'; 20_000_000]
                } else {
                    b"hello from the host".to_vec()
                };
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Served-By: host\r\nConnection: close\r\n\r\n",
                    answer.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.write_all(&answer).await;
                let _ = s.shutdown().await;
                count.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    HostServer { addr, served, task }
}

/// A port that is free on the host loopback (nothing listens after this returns).
fn dead_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

async fn open(
    plugin: &PluginClient,
    inst: &ops::Instance,
    port: u16,
    host_addr: &str,
) -> (ops::OpenTunnelResponse, Vec<Value>) {
    let (r, events) = call(
        plugin,
        ops::OPEN_TUNNEL,
        &ops::OpenTunnelRequest {
            instance: inst.clone(),
            remote_port: port,
            host_addr: host_addr.into(),
        },
    )
    .await;
    (r.unwrap(), events)
}

fn progress_text(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["stage"] == "tunnel")
        .map(|e| e["message"].as_str().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" | ")
}

const PORT: u16 = 3128;

/// The big tunnel exchange with the relay uploaded under one [`Uploads`] variant.
async fn concurrent_large_bodies(uploads: Uploads) {
    let rig = rig(uploads.args(), json!({}));
    uploads.arm(&rig.emu).await;
    let p = &*rig.plugin;
    assert!(p.capabilities().names().contains(&"tunnel"));
    let inst = create(p, "tunnel big").await;
    let server = host_server().await;

    // Without a tunnel nothing listens inside the sprite (its network has only its own lo).
    let (out, _, code) = sh(
        p,
        &inst,
        &format!("curl -sS -m 5 --noproxy '*' http://127.0.0.1:{PORT}/ 2>&1; echo rc=$?"),
    )
    .await;
    assert_eq!(code, 0);
    assert!(out.contains("rc=7"), "{out}");

    let (t, events) = open(p, &inst, PORT, &server.addr).await;
    assert!(t.tunnel_id.starts_with("tunnel-"), "{}", t.tunnel_id);
    assert!(
        progress_text(&events).contains("uploaded the tunnel relay")
            && progress_text(&events).contains(uploads.transport()),
        "{events:?}"
    );
    // The relay is installed once, executable, with its checksum beside it.
    let (out, _, _) = sh(
        p,
        &inst,
        "stat -c %a /.sprite/bin/clauderon-relay; cat /.sprite/bin/clauderon-relay.sha256",
    )
    .await;
    assert!(out.starts_with("755\n"), "{out}");
    let local = std::fs::read(artifacts().relay()).unwrap();
    let (sum, _, _) = sh(p, &inst, "sha256sum /.sprite/bin/clauderon-relay").await;
    let host_sum = String::from_utf8(
        Command::new("sha256sum")
            .arg(artifacts().relay())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        sum.split_whitespace().next(),
        host_sum.split_whitespace().next()
    );
    assert!(out.contains(host_sum.split_whitespace().next().unwrap()));
    assert!(!local.is_empty());

    // A small request gets the host server's answer.
    let (out, err, code) = sh(
        p,
        &inst,
        &format!("curl -sS -m 30 --noproxy '*' -i http://127.0.0.1:{PORT}/hello"),
    )
    .await;
    assert_eq!(code, 0, "{out} {err}");
    assert!(
        out.contains("X-Served-By: host") && out.ends_with("hello from the host"),
        "{out}"
    );

    // Four connections at once, each sending 6 MB and getting the same 6 MB back.
    let script = format!(
        r#"set -u
head -c 6000000 /dev/urandom > /tmp/in
pids=""
for i in 1 2 3 4; do
  curl -sS -m 150 --noproxy '*' -H 'Expect:' -H 'Content-Type: application/octet-stream' \
    --data-binary @/tmp/in -o /tmp/out$i http://127.0.0.1:{PORT}/echo &
  pids="$pids $!"
done
n=0
for pid in $pids; do wait $pid || echo "curl failed: $?"; done
for i in 1 2 3 4; do
  if cmp -s /tmp/in /tmp/out$i; then n=$((n+1)); else echo "body $i differs: $(stat -c %s /tmp/out$i 2>&1)"; fi
done
echo "intact=$n""#
    );
    let t0 = Instant::now();
    let (out, err, code) = sh(p, &inst, &script).await;
    eprintln!("4 x 6 MB both ways through the tunnel: {:?}", t0.elapsed());
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("intact=4"), "{out} {err}");
    assert!(server.served.load(Ordering::SeqCst) >= 5);

    // Opening again (as after a wake) replaces the tunnel and skips the upload.
    let (t2, events) = open(p, &inst, PORT, &server.addr).await;
    assert_ne!(t2.tunnel_id, t.tunnel_id);
    assert!(!progress_text(&events).contains("uploaded"), "{events:?}");
    let (out, _, _) = sh(
        p,
        &inst,
        &format!("curl -sS -m 30 --noproxy '*' http://127.0.0.1:{PORT}/again"),
    )
    .await;
    assert_eq!(out, "hello from the host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tunnel_carries_concurrent_large_bodies_from_the_sprite_to_the_host() {
    concurrent_large_bodies(Uploads::Spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tunnel_works_under_the_observed_fs_write_limits() {
    concurrent_large_bodies(Uploads::Observed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tunnel_relay_arrives_through_the_fs_write_fallback_under_the_observed_limits() {
    concurrent_large_bodies(Uploads::ObservedFallback).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_host_the_agent_gets_a_fast_503_and_close_tunnel_ends_the_relay() {
    let rig = rig(&[], json!({}));
    let p = &*rig.plugin;
    let inst = create(p, "tunnel down").await;

    // The host address does not answer: each request is told so at once.
    let (t, _) = open(p, &inst, PORT, &dead_addr()).await;
    let (out, err, code) = sh(
        p,
        &inst,
        &format!(
            "s=$(date +%s%N); curl -sS -m 20 --noproxy '*' -i http://127.0.0.1:{PORT}/ ; echo; echo rc=$? ms=$(( ($(date +%s%N)-s)/1000000 ))"
        ),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("HTTP/1.1 503"), "{out}");
    assert!(out.contains("clauderon host unreachable"), "{out}");
    let ms: u64 = out.rsplit("ms=").next().unwrap().trim().parse().unwrap();
    assert!(ms < 5000, "took {ms} ms: {out}");

    // After close_tunnel the relay is gone: the port refuses at once.
    let (r, _) = call::<_, ops::InstanceResponse>(
        p,
        ops::CLOSE_TUNNEL,
        &ops::CloseTunnelRequest {
            instance: inst.clone(),
            tunnel_id: t.tunnel_id.clone(),
        },
    )
    .await;
    r.unwrap();
    let (out, _, _) = sh(
        p,
        &inst,
        &format!("curl -sS -m 10 --noproxy '*' http://127.0.0.1:{PORT}/ 2>&1; echo rc=$?"),
    )
    .await;
    assert!(out.contains("rc=7"), "connection refused expected: {out}");
    // A tunnel id that was never issued is an error that says so.
    let (r, _) = call::<_, ops::InstanceResponse>(
        p,
        ops::CLOSE_TUNNEL,
        &ops::CloseTunnelRequest {
            instance: inst.clone(),
            tunnel_id: "bogus".into(),
        },
    )
    .await;
    let e = r.unwrap_err();
    assert!(e.message.contains("bogus"), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tunnel_opens_again_after_hibernate_and_wake() {
    let t0 = Instant::now();
    let rig = rig(
        &["--idle-to-warm", "500ms", "--warm-to-cold", "1s"],
        json!({}),
    );
    eprintln!("[{:?}] rig", t0.elapsed());
    let p = &*rig.plugin;
    let inst = create(p, "tunnel wake").await;
    eprintln!("[{:?}] created", t0.elapsed());
    let server = host_server().await;
    open(p, &inst, PORT, &server.addr).await;
    eprintln!("[{:?}] opened", t0.elapsed());
    let get = format!(
        "curl -sS -m 30 --noproxy '*' http://127.0.0.1:{PORT}/ 2>&1; rc=$?; echo; echo rc=$rc"
    );
    let (out, _, _) = sh(p, &inst, &get).await;
    assert!(out.starts_with("hello from the host"), "{out}");

    eprintln!("[{:?}] hibernate", t0.elapsed());
    let (h, _) = call::<_, ops::InstanceResponse>(
        p,
        ops::HIBERNATE,
        &ops::InstanceRequest {
            instance: inst.clone(),
        },
    )
    .await;
    let inst = h.unwrap().instance;
    let st = rig.emu.state(&inst.id).await;
    assert_ne!(st["state"], "running", "{st}");
    eprintln!("[{:?}] wake", t0.elapsed());
    let (w, _) = call::<_, ops::InstanceResponse>(
        p,
        ops::WAKE,
        &ops::InstanceRequest {
            instance: inst.clone(),
        },
    )
    .await;
    let inst = w.unwrap().instance;
    // Hibernation ended the relay: nothing listens until the tunnel is opened again.
    let (out, _, _) = sh(p, &inst, &get).await;
    assert!(out.contains("rc=7"), "{out}");
    eprintln!("[{:?}] open again", t0.elapsed());
    open(p, &inst, PORT, &server.addr).await;
    let (out, _, _) = sh(p, &inst, &get).await;
    assert!(out.starts_with("hello from the host"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_all_network_policy_leaves_the_tunnel_working() {
    // The credential proxy reaches a sprite through the relay on its loopback and the exec
    // stream, never through the sprite's egress: a policy that denies everything must not matter.
    let rig = rig(&[], json!({}));
    let p = &*rig.plugin;
    let inst = create(p, "tunnel deny").await;
    let deny_all = json!({"rules": [{"domain": "*", "action": "deny"}]});
    let path = format!("/v1/sprites/{}/policy/network", inst.id);
    assert_eq!(rig.emu.post_json(&path, &deny_all).await, 204);
    let server = host_server().await;
    open(p, &inst, PORT, &server.addr).await;
    let (out, err, code) = sh(
        p,
        &inst,
        &format!("curl -sS -m 30 --noproxy '*' http://127.0.0.1:{PORT}/through"),
    )
    .await;
    assert_eq!((out.as_str(), code), ("hello from the host", 0), "{err}");
    // The policy itself holds for everything else.
    let (out, _, _) = sh(p, &inst, "curl -sS -m 10 http://example.com/").await;
    assert!(
        out.contains("blocked by the sprite's network policy: example.com is denied"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_relay_binary_is_an_error_naming_where_it_looked() {
    let rig = rig(&[], json!({"relay_path": "/nonexistent/clauderon-relay"}));
    let p = &*rig.plugin;
    let inst = create(p, "tunnel norelay").await;
    let (r, _) = call::<_, ops::OpenTunnelResponse>(
        p,
        ops::OPEN_TUNNEL,
        &ops::OpenTunnelRequest {
            instance: inst.clone(),
            remote_port: PORT,
            host_addr: "127.0.0.1:9".into(),
        },
    )
    .await;
    let e = r.unwrap_err();
    assert!(
        e.message.contains("/nonexistent/clauderon-relay") && e.message.contains("relay_path"),
        "{e:?}"
    );
    // A bad host address is refused before anything is uploaded.
    let (r, _) = call::<_, ops::OpenTunnelResponse>(
        p,
        ops::OPEN_TUNNEL,
        &ops::OpenTunnelRequest {
            instance: inst,
            remote_port: PORT,
            host_addr: "not an address".into(),
        },
    )
    .await;
    assert!(r.unwrap_err().message.contains("host_addr"));
}

#[test]
fn the_relay_the_plugin_uploads_is_static_and_at_most_1_mib() {
    let path = artifacts().relay();
    let bytes = std::fs::read(&path).unwrap();
    let note = clauderon_sprites::tunnel::embedded::build_note();
    let linkage = elf::linkage(&bytes);
    // No loader and no shared library: it starts on any Linux, whatever its C library.
    assert_eq!(linkage, elf::Linkage::default(), "{note}");
    assert!(
        bytes.len() <= 1024 * 1024,
        "the relay is {} bytes, over 1 MiB ({note}; a musl build is ~0.5 MB: \
         `rustup target add x86_64-unknown-linux-musl`)",
        bytes.len()
    );
    // It runs on its own: a clean environment and no library search path.
    let out = Command::new(&path)
        .arg("--version")
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("clauderon-relay "));
    // The check itself tells a dynamic executable apart (this test binary is one).
    let me = elf::linkage(&std::fs::read(std::env::current_exe().unwrap()).unwrap());
    assert!(me.interpreter.is_some() && me.needed > 0, "{me:?}");
}

/// Reads the relay's READY frame from its stdout (kind 7, conn 0).
fn read_ready(out: &mut impl Read) -> String {
    let mut h = [0u8; 9];
    out.read_exact(&mut h).unwrap();
    assert_eq!(h[0], 7, "the first frame is READY");
    let len = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) as usize;
    let mut p = vec![0u8; len];
    out.read_exact(&mut p).unwrap();
    String::from_utf8(p).unwrap()
}

fn http_get(addr: &str) -> (String, Duration) {
    let t0 = Instant::now();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    (resp, t0.elapsed())
}

#[test]
fn the_relay_answers_503_when_its_host_is_gone_or_silent_and_refuses_a_taken_port() {
    let relay = artifacts().relay();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    // A host that is attached but silent (no PING): after the host timeout, 503.
    let mut child = Command::new(&relay)
        .args(["--listen", &addr, "--host-timeout-ms", "300"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    assert!(read_ready(&mut out).contains(&addr));
    std::thread::sleep(Duration::from_millis(600));
    let (resp, took) = http_get(&addr);
    assert!(
        resp.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{resp}"
    );
    assert!(resp.ends_with("clauderon host unreachable"), "{resp}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // A second relay on the same port exits with a clear message.
    let second = Command::new(&relay)
        .args(["--listen", &addr])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(3));
    let msg = String::from_utf8_lossy(&second.stderr);
    assert!(
        msg.contains(&addr) && msg.contains("already in use"),
        "{msg}"
    );

    // The host hangs up (stdin EOF): every connection gets the 503 at once.
    drop(child.stdin.take());
    let (resp, took) = http_get(&addr);
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let _ = child.kill();
    let _ = child.wait();

    // Bad arguments are usage errors.
    let bad = Command::new(&relay)
        .args(["--listen", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("127.0.0.1:3128"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_relay_socket_is_recovered_by_restarting_the_relay() {
    let rig = rig(&[], json!({}));
    let p = &*rig.plugin;
    let inst = create(p, "tunnel drop").await;
    let server = host_server().await;
    // The relay's exec socket vanishes after 200 kB of its output (once).
    rig.emu
        .add_fault(
            json!({"kind": "drop_ws", "method": "GET", "path": "/v1/sprites/*/exec",
            "query": "*cmd=--listen*", "times": 1, "after_bytes": 200_000}),
        )
        .await;
    open(p, &inst, PORT, &server.addr).await;
    let script = format!(
        r#"head -c 1000000 /dev/urandom > /tmp/in
ok=0
for i in $(seq 1 40); do
  if curl -sS -m 20 --noproxy '*' -H 'Expect:' --data-binary @/tmp/in -o /tmp/out \
       http://127.0.0.1:{PORT}/echo && cmp -s /tmp/in /tmp/out; then ok=1; echo "ok after $i"; break; fi
  sleep 0.5
done
echo ok=$ok"#
    );
    let (out, err, _) = sh(p, &inst, &script).await;
    assert!(out.contains("ok=1"), "{out} {err}");
    assert!(
        !out.contains("ok after 1\n"),
        "the first upload should have hit the dropped socket: {out}"
    );
    // The old relay was ended: one relay session remains.
    let sessions = rig
        .emu
        .get_json(&format!("/v1/sprites/{}/exec", inst.id))
        .await;
    let relays = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["command"]
                .as_str()
                .unwrap_or_default()
                .contains("clauderon-relay")
                && s["is_active"] != false
        })
        .count();
    assert_eq!(relays, 1, "{sessions}");
}

/// The real key of the end-to-end test: the daemon has it, nothing in the sprite may.
const REAL_KEY: &str = "sk-ant-api03-TUNNEL-real-key-do-not-leak-9876543210";

/// The agent inside the sprite: one request with the placeholder through `HTTPS_PROXY` (the
/// relay), then it waits on its terminal so its process (and environment) stays inspectable.
const TUNNEL_AGENT: &str = r#"curl -sS --max-time 30 --cacert "$SSL_CERT_FILE" -o "$HOME/resp.txt" -w "agent-request:%{http_code}/%{http_connect}" -H "x-api-key: $ANTHROPIC_API_KEY" -H "content-type: application/json" --data "{}" https://api.anthropic.com/v1/messages 2>"$HOME/curl.err"; echo; echo agent-waiting; exec cat"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sprites_session_reaches_the_upstream_with_the_real_key_through_the_tunnel() {
    use crate::support::daemon::TestDaemon;
    use crate::support::home::TempHome;
    use crate::support::upstream::Upstream;

    let emu = Emulator::start();
    let upstream = Upstream::start(&["api.anthropic.com"]).await;
    let home = TempHome::new();
    home.write_secret("sprites_api_key", emu.token(), 0o600);
    home.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         [agent]\npreset = \"custom\"\ncommand = [\"sh\", \"-c\", '''{TUNNEL_AGENT}''']\n\
         prompt_args = [\"{{prompt}}\"]\n\
         [sprites]\napi_url = \"{}\"\nhibernate_wait_seconds = 20\n",
        emu.base_url()
    ));
    upstream.write_overrides(home.path(), &["api.anthropic.com"], "");
    let d = TestDaemon::start_with(&home, |c| {
        c.env("ANTHROPIC_API_KEY", REAL_KEY)
            .env_remove("GITHUB_TOKEN")
            .env_remove("GH_TOKEN")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy");
    });
    let repo = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let st = Command::new("git")
            .arg("-C")
            .arg(repo.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["commit", "-q", "--allow-empty", "-m", "first"]);

    let run = home.run(&[
        "create",
        "--backend",
        "sprites",
        "--repo",
        repo.path().to_str().unwrap(),
        "--prompt",
        "go",
        "--name",
        "tun",
    ]);
    assert_eq!(
        run.code,
        Some(0),
        "stdout:\n{}\nstderr:\n{}\n{}",
        run.stdout,
        run.stderr,
        d.log()
    );

    // The agent's request arrives at the upstream with the real key (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(90);
    while upstream.requests().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no request reached the upstream\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].target, "/v1/messages");
    assert_eq!(seen[0].one("x-api-key"), Some(REAL_KEY));
    assert_eq!(seen[0].one("proxy-authorization"), None);
    let deadline = Instant::now() + Duration::from_secs(30);
    let log = loop {
        let run = home.run(&["logs", "tun"]);
        // (Not "agent-waiting": the log's `[agent] starting` line quotes the command.)
        if run.stdout.contains("agent-request:200/200") || Instant::now() > deadline {
            break run.stdout;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(log.contains("agent-request:200/200"), "{log}\n{}", d.log());

    // Inside the sprite: the agent holds only a placeholder and the proxy address of the relay;
    // no process there (agent, relay, shell) has the real key in its environment or arguments.
    let procs = crate::support::emulator::processes_in_sprites(&emu);
    assert!(
        procs
            .iter()
            .any(|(_, env, _)| env.contains("ANTHROPIC_API_KEY=clauderon-placeholder-")),
        "the agent's process was not found in the sprite"
    );
    assert!(
        procs
            .iter()
            .any(|(_, _, cmd)| cmd.contains("clauderon-relay")),
        "the relay runs in the same sprite: {:?}",
        procs.iter().map(|p| &p.2).collect::<Vec<_>>()
    );
    let agent_env = &procs
        .iter()
        .find(|(_, env, _)| env.contains("ANTHROPIC_API_KEY=clauderon-placeholder-"))
        .unwrap()
        .1;
    assert!(
        agent_env
            .lines()
            .any(|l| l.starts_with("HTTPS_PROXY=http://") && l.ends_with("@127.0.0.1:18080")),
        "{agent_env}"
    );
    for (pid, env, cmd) in &procs {
        assert!(
            !env.contains(REAL_KEY) && !cmd.contains(REAL_KEY),
            "process {pid} in the sprite holds the real key"
        );
    }
    // The sprite's files (its whole disk in the emulator's data directory) never hold it, though
    // they hold what the agent wrote and the trust bundle.
    assert!(
        !files_containing(emu.data_dir(), "BEGIN CERTIFICATE").is_empty(),
        "the trust bundle is in the sprite's files"
    );
    assert_eq!(
        files_containing(emu.data_dir(), REAL_KEY),
        Vec::<std::path::PathBuf>::new()
    );

    // The tunnel comes back after a wake and after a checkpoint restore: each time the agent is
    // started again (its process ended) and its request reaches the upstream with the real key.
    let wait_for_requests = async |n: usize, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(90);
        while upstream.requests().len() < n {
            assert!(
                Instant::now() < deadline,
                "no request reached the upstream after {what}\n{}",
                d.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let seen = upstream.requests();
        assert_eq!(seen.len(), n, "{seen:?}");
        assert_eq!(seen[n - 1].one("x-api-key"), Some(REAL_KEY), "after {what}");
    };
    let run = home.run(&["hibernate", "tun"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let run = home.run(&["wake", "tun"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    wait_for_requests(2, "the wake").await;
    let run = home.run(&["checkpoint", "create", "tun", "before"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let cps = home.run(&["checkpoint", "list", "tun", "--json"]).json();
    let cp = cps.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = home.run(&["checkpoint", "restore", "tun", &cp]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stderr, d.log());
    wait_for_requests(3, "the restore").await;
    // After the wake and the restore (the agent started again, the bundle written again) the
    // sprite's processes and files still never hold the real key.
    let procs = crate::support::emulator::processes_in_sprites(&emu);
    assert!(
        procs
            .iter()
            .any(|(_, env, _)| env.contains("ANTHROPIC_API_KEY=clauderon-placeholder-")),
        "the restarted agent's process was not found in the sprite"
    );
    for (pid, env, cmd) in &procs {
        assert!(
            !env.contains(REAL_KEY) && !cmd.contains(REAL_KEY),
            "process {pid} in the sprite holds the real key after the restore"
        );
    }
    assert_eq!(
        files_containing(emu.data_dir(), REAL_KEY),
        Vec::<std::path::PathBuf>::new()
    );

    let run = home.run(&["delete", "tun", "--yes"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_left_by_an_earlier_daemon_is_replaced() {
    let rig = rig(&[], json!({}));
    let p = &*rig.plugin;
    let inst = create(p, "tunnel stale").await;
    let server = host_server().await;
    // A first tunnel installs the relay; then a relay this plugin does not know about (as an
    // earlier daemon would leave it) takes the port in a session of its own.
    let (t, _) = open(p, &inst, PORT, &server.addr).await;
    call::<_, ops::InstanceResponse>(
        p,
        ops::CLOSE_TUNNEL,
        &ops::CloseTunnelRequest {
            instance: inst.clone(),
            tunnel_id: t.tunnel_id,
        },
    )
    .await
    .0
    .unwrap();
    let (_started, stale) = p
        .exec(&ops::ExecRequest {
            instance: inst.clone(),
            command: vec![
                "/.sprite/bin/clauderon-relay".into(),
                "--listen".into(),
                format!("127.0.0.1:{PORT}"),
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    let (mut stale_r, _stale_w) = stale.split();
    // It listens once it sent READY (frame kind 7) on its stdout.
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let f = stale_r
                .read_frame()
                .await
                .unwrap()
                .expect("the stale relay runs");
            if f.kind == FrameKind::Stdout && f.payload.first() == Some(&7) {
                return;
            }
        }
    })
    .await
    .unwrap();

    // Opening the tunnel ends the stale relay and starts its own.
    open(p, &inst, PORT, &server.addr).await;
    let (out, _, _) = sh(
        p,
        &inst,
        &format!("curl -sS -m 30 --noproxy '*' http://127.0.0.1:{PORT}/"),
    )
    .await;
    assert_eq!(out, "hello from the host");
    // The stale relay's exec stream ended (it was killed).
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stale_r.read_frame().await {
                Ok(Some(f)) if matches!(f.kind, FrameKind::Exit | FrameKind::Error) => return,
                Ok(Some(_)) => {}
                _ => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stale relay was not ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_does_not_stall_another_connection() {
    let rig = rig(&[], json!({}));
    let p = &*rig.plugin;
    let inst = create(p, "tunnel slow").await;
    let server = host_server().await;
    open(p, &inst, PORT, &server.addr).await;
    // One client reads a 20 MB answer at 50 kB/s; meanwhile another sends and gets back 6 MB.
    let script = format!(
        r#"head -c 6000000 /dev/urandom > /tmp/in
curl -sS --noproxy '*' --limit-rate 50k -m 120 -o /tmp/slow http://127.0.0.1:{PORT}/big &
slow=$!
for i in $(seq 1 100); do [ -s /tmp/slow ] && break; sleep 0.1; done
s=$(date +%s%N)
curl -sS -m 60 --noproxy '*' -H 'Expect:' --data-binary @/tmp/in -o /tmp/out http://127.0.0.1:{PORT}/echo
cmp -s /tmp/in /tmp/out && echo fast-intact
echo fast_ms=$(( ($(date +%s%N)-s)/1000000 ))
echo slow_bytes=$(stat -c %s /tmp/slow)
kill $slow"#
    );
    let (out, err, _) = sh(p, &inst, &script).await;
    assert!(out.contains("fast-intact"), "{out} {err}");
    let num = |key: &str| -> u64 {
        out.split(key)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {out}"))
    };
    assert!(num("fast_ms=") < 20_000, "{out}");
    // The slow one was still going (it had received only part of its answer).
    let slow = num("slow_bytes=");
    assert!(slow > 0 && slow < 20_000_000, "{out}");
}
