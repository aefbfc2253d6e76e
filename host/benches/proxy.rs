//! `cargo bench -p clauderon --bench proxy`: the credential proxy on loopback, side by side in
//! one run with two baselines: **direct** (the client talks TLS to the upstream itself) and
//! **mitmproxy** (`mitmdump` from PyPI, with an addon doing the same work as ours: inject the
//! header, and scrub the key out of responses while streaming them).
//!
//! Workloads, each measured for a fixed time per contender, the contenders interleaved in
//! rounds (median of rounds reported, so background load hits them alike):
//! - small GETs, 8 concurrent keep-alive clients: throughput (and p50/p99 under that load);
//! - small GETs, one at a time: p50/p99 latency without queueing (the "added p99" target);
//! - 10 MB response bodies, one at a time (ours scrubs them for secrets as they stream).
//!
//! Fairness: the client and the upstream run on their own 2-thread runtime, identical for
//! every contender; our proxy runs on a separate 1-thread runtime, as mitmproxy runs on one
//! event-loop thread. Knobs: `PROXY_BENCH_ROUNDS` (default 3), `PROXY_BENCH_SECS` per
//! measurement (default 2).
//!
//! mitmproxy is taken from `target/mitmproxy-venv` (created with
//! `python3 -m venv target/mitmproxy-venv && target/mitmproxy-venv/bin/pip install mitmproxy`),
//! else from PATH; when neither exists the bench says the baseline is missing and still prints
//! direct vs ours. Without `--bench` (as under `cargo test --benches`) it runs a short smoke
//! pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tests/it/support/upstream.rs"]
mod upstream;

use clauderon::config::{Config, ProxyConfig};
use clauderon::home::Home;
use clauderon::proxy::{CredentialProxy, Policy};
use clauderon::secrets::SecretResolver;
use clauderon::session::SessionId;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use upstream::Upstream;

const KEY: &str = "sk-ant-api03-bench-key-0123456789abcdef";
const BIG: usize = 10 * 1024 * 1024;
/// Warm-up requests per client before each small-GET measurement.
const WARM: usize = 20;

struct Load {
    rounds: usize,
    secs: f64,
    concurrency: usize,
}

#[derive(Clone, Copy)]
struct Measured {
    /// Requests measured (after the warm-up ones).
    n: usize,
    rate: f64,
    p50: Duration,
    p99: Duration,
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// The median of each figure across rounds.
fn med(ms: &[Measured]) -> Measured {
    let d = |f: fn(&Measured) -> Duration| {
        Duration::from_secs_f64(median(ms.iter().map(|m| f(m).as_secs_f64()).collect()))
    };
    Measured {
        n: ms.iter().map(|m| m.n).sum(),
        rate: median(ms.iter().map(|m| m.rate).collect()),
        p50: d(|m| m.p50),
        p99: d(|m| m.p99),
    }
}

fn client(
    roots: &[rustls::pki_types::CertificateDer<'static>],
    proxy: Option<&str>,
    resolve: Option<std::net::SocketAddr>,
) -> reqwest::Client {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut b = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(64);
    b = match proxy {
        Some(p) => b.proxy(reqwest::Proxy::all(p).unwrap()),
        None => b.no_proxy(),
    };
    if let Some(addr) = resolve {
        b = b.resolve("api.anthropic.com", addr);
    }
    b.build().unwrap()
}

async fn one_small(c: &reqwest::Client, url: &str) {
    let r = c
        .get(url)
        .header("x-api-key", "placeholder")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "through {url}");
    r.bytes().await.unwrap();
}

/// `concurrency` clients sending small GETs back to back for `secs`.
async fn small(c: &reqwest::Client, url: &str, concurrency: usize, secs: f64) -> Measured {
    // Warm: a connection per client, and the code paths.
    let warm: Vec<_> = (0..concurrency)
        .map(|_| {
            let (c, url) = (c.clone(), url.to_string());
            tokio::spawn(async move {
                for _ in 0..WARM {
                    one_small(&c, &url).await;
                }
            })
        })
        .collect();
    for w in warm {
        w.await.unwrap();
    }
    let started = Instant::now();
    let stop = started + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (c, url) = (c.clone(), url.to_string());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                // At least a few per client even when the contender is slow.
                while Instant::now() < stop || lat.len() < 3 {
                    let t = Instant::now();
                    one_small(&c, &url).await;
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let wall = started.elapsed();
    all.sort();
    Measured {
        n: all.len(),
        rate: all.len() as f64 / wall.as_secs_f64(),
        p50: pct(&all, 0.5),
        p99: pct(&all, 0.99),
    }
}

/// 10 MB bodies one at a time for `secs` (at least 3); the rate is in MB/s.
async fn big(c: &reqwest::Client, url: &str, secs: f64) -> Measured {
    let get = || async {
        let mut r = c.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        // Counted as it streams: the client keeps no copy (the same for every contender).
        let mut n = 0;
        while let Some(chunk) = r.chunk().await.unwrap() {
            n += chunk.len();
        }
        assert_eq!(n, BIG);
    };
    get().await;
    let mut lat = Vec::new();
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < secs || lat.len() < 3 {
        let t = Instant::now();
        get().await;
        lat.push(t.elapsed());
    }
    let wall = started.elapsed();
    lat.sort();
    Measured {
        n: lat.len(),
        rate: lat.len() as f64 * (BIG as f64 / 1e6) / wall.as_secs_f64(),
        p50: pct(&lat, 0.5),
        p99: pct(&lat, 0.99),
    }
}

fn find_mitmdump() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/mitmproxy-venv/bin/mitmdump");
    if venv.is_file() {
        return Some(venv);
    }
    let ok = Command::new("mitmdump")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| PathBuf::from("mitmdump"))
}

struct Mitm {
    child: Child,
    port: u16,
    ca: rustls::pki_types::CertificateDer<'static>,
    version: String,
}

impl Drop for Mitm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The addon: the same work as ours, inject the header and scrub the key from responses.
/// `stream`: scrub chunks as they stream (`flow.response.stream`); else mitmproxy's default,
/// whole bodies buffered, scrubbed in the `response` hook.
fn mitm_addon(stream: bool) -> String {
    let scrub = if stream {
        "def scrub(chunk):\n    return chunk.replace(KEY, STARS)\n\
         def responseheaders(flow):\n    flow.response.stream = scrub\n"
    } else {
        "def response(flow):\n    c = flow.response.raw_content\n    \
         if c and KEY in c:\n        flow.response.raw_content = c.replace(KEY, STARS)\n"
    };
    format!(
        "KEY = b\"{KEY}\"\n\
         STARS = b\"*\" * len(KEY)\n\
         def request(flow):\n    flow.request.headers[\"x-api-key\"] = KEY.decode()\n\
         {scrub}"
    )
}

async fn start_mitm(bin: &Path, dir: &Path, upstream_ca: &Path, stream: bool) -> Option<Mitm> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
        l.local_addr().ok()?.port()
    };
    let version = Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_default();
    let addon = dir.join(if stream { "stream.py" } else { "buffer.py" });
    std::fs::write(&addon, mitm_addon(stream)).ok()?;
    // One CA for both instances, so one client trust works.
    let confdir = dir.join("mitm-conf");
    let child = Command::new(bin)
        .args([
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            &port.to_string(),
            "-q",
        ])
        .arg("--set")
        .arg(format!("confdir={}", confdir.display()))
        .arg("--set")
        .arg(format!(
            "ssl_verify_upstream_trusted_ca={}",
            upstream_ca.display()
        ))
        .arg("--set")
        .arg("http2=false")
        .arg("-s")
        .arg(&addon)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut m = Mitm {
        child,
        port,
        ca: rustls::pki_types::CertificateDer::from(Vec::new()),
        version,
    };
    // mitmdump has no readiness signal with -q: wait (bounded) until it accepts and its CA
    // certificate exists.
    let ca_file = confdir.join("mitmproxy-ca-cert.pem");
    for _ in 0..600 {
        if let Ok(Some(_)) = m.child.try_wait() {
            return None;
        }
        if ca_file.is_file()
            && tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        {
            let pem = std::fs::read_to_string(&ca_file).ok()?;
            m.ca = clauderon::proxy::ca::pem_to_der(&pem)?;
            return Some(m);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// CPU time used so far by our proxy's threads (its runtime and its audit writer), from
/// /proc: a figure that background load disturbs less than wall-clock throughput.
fn proxy_cpu() -> Duration {
    let tick = 100.0; // USER_HZ on Linux
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !matches!(comm.trim(), "bench-proxy" | "clauderon-audit") {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: state is 3rd, utime 14th, stime 15th.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 12 {
            total += f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
        }
    }
    Duration::from_secs_f64(total as f64 / tick)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn row(name: &str, m: &Measured, unit: &str) {
    println!(
        "  {name:<10} {:>10.1} {unit:<6} p50 {:>8.2} ms   p99 {:>8.2} ms",
        m.rate,
        ms(m.p50),
        ms(m.p99)
    );
}

fn env_num(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let load = if full {
        Load {
            rounds: env_num("PROXY_BENCH_ROUNDS", 3.0).max(1.0) as usize,
            secs: env_num("PROXY_BENCH_SECS", 2.0).max(0.1),
            concurrency: 8,
        }
    } else {
        Load {
            rounds: 1,
            secs: 0.2,
            concurrency: 8,
        }
    };
    // The client and the upstream: the same for every contender.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .unwrap();
    // Our proxy: one worker thread, as mitmproxy has one event loop.
    let proxy_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-proxy")
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(load, proxy_rt.handle().clone()));
}

/// Which workloads a contender runs.
const SMALL: u8 = 1;
const SEQ: u8 = 2;
const BIG_BODIES: u8 = 4;

struct Contender {
    name: &'static str,
    runs: u8,
    /// Proxy CPU per request (small, 8 concurrent) and per 10 MB body, ours only.
    cpu_small: Vec<f64>,
    cpu_big: Vec<f64>,
    client: reqwest::Client,
    base: String,
    small: Vec<Measured>,
    seq: Vec<Measured>,
    big: Vec<Measured>,
}

async fn run(load: Load, proxy_rt: tokio::runtime::Handle) {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path().join("home"));
    home.ensure().unwrap();
    let up = Upstream::start(&["api.anthropic.com", "127.0.0.1"]).await;
    let up_ca_file = dir.path().join("upstream-ca.pem");
    std::fs::write(&up_ca_file, up.ca_pem()).unwrap();
    let up_ca = clauderon::proxy::ca::pem_to_der(up.ca_pem()).unwrap();
    std::fs::write(
        home.proxy_file(),
        format!(
            "[upstreams.\"api.anthropic.com\"]\naddress = \"{}\"\nca_file = \"{}\"\n",
            up.addr(),
            up_ca_file.display()
        ),
    )
    .unwrap();
    let env = [("ANTHROPIC_API_KEY".to_string(), KEY.to_string())].into();
    let resolver = SecretResolver::new(
        home.clone(),
        &Config::load(&home).unwrap(),
        &ProxyConfig::load(&home).unwrap(),
    )
    .with_env(env);
    let policy = Policy::load(&home).unwrap();
    let proxy_home = home.clone();
    let proxy = proxy_rt
        .spawn(async move {
            CredentialProxy::start(
                &proxy_home,
                policy,
                resolver,
                "127.0.0.1:0".parse().unwrap(),
            )
            .await
        })
        .await
        .unwrap()
        .unwrap();
    let cred = proxy.register_session(SessionId::new());
    let port = up.addr().port();

    let mut contenders = vec![
        Contender {
            name: "direct",
            runs: SMALL | SEQ | BIG_BODIES,
            client: client(std::slice::from_ref(&up_ca), None, Some(up.addr())),
            base: format!("https://api.anthropic.com:{port}"),
            small: vec![],
            seq: vec![],
            big: vec![],
            cpu_small: vec![],
            cpu_big: vec![],
        },
        Contender {
            name: "clauderon",
            runs: SMALL | SEQ | BIG_BODIES,
            client: client(
                &[proxy.ca().cert_der().clone()],
                Some(&cred.proxy_url(&proxy.addr().to_string())),
                None,
            ),
            base: "https://api.anthropic.com".to_string(),
            small: vec![],
            seq: vec![],
            big: vec![],
            cpu_small: vec![],
            cpu_big: vec![],
        },
    ];

    let skip_mitm = std::env::var("PROXY_BENCH_ONLY").is_ok_and(|o| !o.contains("mitm"));
    let bin = if skip_mitm { None } else { find_mitmdump() };
    if bin.is_none() && !skip_mitm {
        println!(
            "mitmproxy baseline missing: no mitmdump in target/mitmproxy-venv or on PATH \
             (python3 -m venv target/mitmproxy-venv && target/mitmproxy-venv/bin/pip install mitmproxy)"
        );
    }
    let mut mitms = Vec::new();
    for (name, stream, runs) in [
        ("mitmproxy", false, SMALL | SEQ | BIG_BODIES),
        ("mitm-strm", true, BIG_BODIES),
    ] {
        let Some(bin) = &bin else { break };
        let Some(m) = start_mitm(bin, dir.path(), &up_ca_file, stream).await else {
            println!(
                "mitmproxy baseline missing: {} did not start",
                bin.display()
            );
            break;
        };
        // mitmproxy resolves names itself, so it reaches the upstream by address (the
        // upstream's certificate names 127.0.0.1 too).
        contenders.push(Contender {
            name,
            runs,
            client: client(
                std::slice::from_ref(&m.ca),
                Some(&format!("http://127.0.0.1:{}", m.port)),
                None,
            ),
            base: format!("https://127.0.0.1:{port}"),
            small: vec![],
            seq: vec![],
            big: vec![],
            cpu_small: vec![],
            cpu_big: vec![],
        });
        mitms.push(m);
    }
    // For profiling: PROXY_BENCH_ONLY=clauderon,big keeps only those contenders (when any is
    // named) and workloads (small, seq, big; when any is named).
    if let Ok(only) = std::env::var("PROXY_BENCH_ONLY") {
        let only: Vec<&str> = only.split(',').collect();
        if contenders.iter().any(|c| only.contains(&c.name)) {
            contenders.retain(|c| only.contains(&c.name));
        }
        let mask = [("small", SMALL), ("seq", SEQ), ("big", BIG_BODIES)]
            .iter()
            .filter(|(n, _)| only.contains(n))
            .fold(0, |m, (_, b)| m | b);
        if mask != 0 {
            for c in &mut contenders {
                c.runs &= mask;
            }
        }
    }
    let mitm = mitms.first();

    println!(
        "proxy bench: {} round(s) of {:.1} s per measurement, loopback; client+upstream on 2 \
         threads, our proxy on 1{}",
        load.rounds,
        load.secs,
        match &mitm {
            Some(m) => format!("; {}", m.version),
            None => " (no mitmproxy)".into(),
        }
    );
    let q = format!("/bytes?n={BIG}");
    for round in 0..load.rounds {
        for c in &mut contenders {
            let url = format!("{}/v1/models", c.base);
            if c.runs & SMALL != 0 {
                let cpu = proxy_cpu();
                let m = small(&c.client, &url, load.concurrency, load.secs).await;
                // The warm-up requests count too.
                let n = m.n + load.concurrency * WARM;
                c.cpu_small.push(ms(proxy_cpu() - cpu) / n as f64);
                c.small.push(m);
            }
            if c.runs & SEQ != 0 {
                c.seq.push(small(&c.client, &url, 1, load.secs).await);
            }
            if c.runs & BIG_BODIES != 0 {
                let cpu = proxy_cpu();
                let m = big(&c.client, &format!("{}{q}", c.base), load.secs).await;
                // The warm-up body counts too.
                c.cpu_big.push(ms(proxy_cpu() - cpu) / (m.n + 1) as f64);
                c.big.push(m);
            }
        }
        let line: Vec<String> = contenders
            .iter()
            .map(|c| {
                let mut parts = vec![c.name.to_string()];
                if let Some(m) = c.small.get(round) {
                    parts.push(format!("{:.0} req/s", m.rate));
                }
                if let Some(m) = c.seq.get(round) {
                    parts.push(format!("seq p99 {:.2} ms", ms(m.p99)));
                }
                if let Some(m) = c.big.get(round) {
                    parts.push(format!("{:.0} MB/s", m.rate));
                }
                parts.join(" ")
            })
            .collect();
        println!("round {}: {}", round + 1, line.join(" | "));
    }

    let get = |name: &str| contenders.iter().find(|c| c.name == name);
    let summary = |title: &str, unit: &str, pick: fn(&Contender) -> &Vec<Measured>| {
        println!("{title} (median of rounds):");
        for c in &contenders {
            if !pick(c).is_empty() {
                row(c.name, &med(pick(c)), unit);
            }
        }
    };
    summary(
        &format!("small GETs, {} concurrent", load.concurrency),
        "req/s",
        |c| &c.small,
    );
    summary("small GETs, one at a time", "req/s", |c| &c.seq);
    summary("10 MB bodies, one at a time", "MB/s", |c| &c.big);

    if let Some(o) = get("clauderon") {
        println!(
            "clauderon proxy CPU (its threads, from /proc): {:.3} ms per small GET, {:.1} ms per \
             10 MB body",
            median(o.cpu_small.clone()),
            median(o.cpu_big.clone())
        );
    }
    let (Some(d), Some(o)) = (get("direct"), get("clauderon")) else {
        return;
    };
    if d.small.is_empty() || o.small.is_empty() || d.seq.is_empty() || d.big.is_empty() {
        return;
    }
    let (ds, os, dq, oq) = (med(&d.small), med(&o.small), med(&d.seq), med(&o.seq));
    let (db, ob) = (med(&d.big), med(&o.big));
    println!(
        "clauderon adds over direct: one at a time p50 {:+.2} ms, p99 {:+.2} ms (target < 2 ms \
         p99); at {} concurrent p50 {:+.2} ms, p99 {:+.2} ms",
        ms(oq.p50) - ms(dq.p50),
        ms(oq.p99) - ms(dq.p99),
        load.concurrency,
        ms(os.p50) - ms(ds.p50),
        ms(os.p99) - ms(ds.p99),
    );
    println!(
        "clauderon/direct: small GETs {:.2}x, 10 MB bodies {:.2}x",
        os.rate / ds.rate,
        ob.rate / db.rate
    );
    if let Some(m) = get("mitmproxy") {
        println!(
            "ratio clauderon/mitmproxy throughput (target >= 10x): small GETs {:.1}x, 10 MB \
             bodies {:.1}x",
            os.rate / med(&m.small).rate,
            ob.rate / med(&m.big).rate
        );
    }
    if let Some(m) = get("mitm-strm") {
        println!(
            "ratio clauderon/mitmproxy streaming its bodies: 10 MB bodies {:.1}x",
            ob.rate / med(&m.big).rate
        );
    }
    let seen = up.requests();
    assert!(
        seen.iter().any(|s| s.one("x-api-key") == Some(KEY)),
        "the proxies injected the key"
    );
    drop(proxy);
}
