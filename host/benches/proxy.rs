//! `cargo bench -p clauderon --bench proxy`: the credential proxy on loopback, side by side in
//! one run with two baselines: **direct** (the client talks TLS to the upstream itself) and
//! **mitmproxy** (`mitmdump` from PyPI, with a one-line addon injecting the same header, so
//! both proxies do the same work). Workloads: small GETs (8 concurrent keep-alive clients) and
//! 10 MB response bodies (one at a time; ours scrubs them for secrets as they stream).
//!
//! mitmproxy is taken from PATH, else from `target/mitmproxy-venv` (created with
//! `python3 -m venv target/mitmproxy-venv && target/mitmproxy-venv/bin/pip install mitmproxy`);
//! when neither exists the bench says the baseline is missing and still prints direct vs ours.
//! Without `--bench` (as under `cargo test --benches`) it runs a short smoke pass.

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

struct Load {
    small: usize,
    concurrency: usize,
    big: usize,
}

struct Measured {
    rps: f64,
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
        .timeout(Duration::from_secs(60))
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

async fn small(c: &reqwest::Client, url: &str, load: &Load) -> Measured {
    // Warm the connections first.
    for _ in 0..load.concurrency {
        let r = c
            .get(url)
            .header("x-api-key", "placeholder")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "warm-up through {url}");
        r.bytes().await.unwrap();
    }
    let per = load.small / load.concurrency;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..load.concurrency {
        let c = c.clone();
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for _ in 0..per {
                let t = Instant::now();
                let r = c
                    .get(&url)
                    .header("x-api-key", "placeholder")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let wall = started.elapsed();
    all.sort();
    Measured {
        rps: all.len() as f64 / wall.as_secs_f64(),
        p50: pct(&all, 0.5),
        p99: pct(&all, 0.99),
    }
}

async fn big(c: &reqwest::Client, url: &str, load: &Load) -> Measured {
    let mut lat = Vec::new();
    let started = Instant::now();
    for _ in 0..load.big {
        let t = Instant::now();
        let r = c.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let b = r.bytes().await.unwrap();
        assert_eq!(b.len(), BIG);
        lat.push(t.elapsed());
    }
    let wall = started.elapsed();
    lat.sort();
    Measured {
        rps: lat.len() as f64 / wall.as_secs_f64(),
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
}

impl Drop for Mitm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_mitm(bin: &Path, dir: &Path, upstream_ca: &Path) -> Option<Mitm> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
        l.local_addr().ok()?.port()
    };
    let addon = dir.join("inject.py");
    std::fs::write(
        &addon,
        format!("def request(flow):\n    flow.request.headers[\"x-api-key\"] = \"{KEY}\"\n"),
    )
    .ok()?;
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

fn row(name: &str, m: &Measured, unit: &str) {
    println!(
        "  {name:<10} {:>10.1} {unit:<6} p50 {:>8.2} ms   p99 {:>8.2} ms",
        m.rps,
        m.p50.as_secs_f64() * 1e3,
        m.p99.as_secs_f64() * 1e3
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let load = if full {
        Load {
            small: 4000,
            concurrency: 8,
            big: 20,
        }
    } else {
        Load {
            small: 160,
            concurrency: 8,
            big: 2,
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(load));
}

async fn run(load: Load) {
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
    let proxy = CredentialProxy::start(
        &home,
        Policy::load(&home).unwrap(),
        resolver,
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let cred = proxy.register_session(SessionId::new());
    let port = up.addr().port();

    let direct = client(std::slice::from_ref(&up_ca), None, Some(up.addr()));
    let direct_base = format!("https://api.anthropic.com:{port}");
    let ours = client(
        &[proxy.ca().cert_der().clone()],
        Some(&cred.proxy_url(&proxy.addr().to_string())),
        None,
    );
    let ours_base = "https://api.anthropic.com".to_string();

    let mitm = match find_mitmdump() {
        Some(bin) => {
            let m = start_mitm(&bin, dir.path(), &up_ca_file).await;
            if m.is_none() {
                println!(
                    "mitmproxy baseline missing: {} did not start",
                    bin.display()
                );
            }
            m
        }
        None => {
            println!(
                "mitmproxy baseline missing: no mitmdump on PATH or in target/mitmproxy-venv \
                 (python3 -m venv target/mitmproxy-venv && target/mitmproxy-venv/bin/pip install mitmproxy)"
            );
            None
        }
    };
    let mitm_client = mitm.as_ref().map(|m| {
        client(
            std::slice::from_ref(&m.ca),
            Some(&format!("http://127.0.0.1:{}", m.port)),
            None,
        )
    });
    // mitmproxy resolves names itself, so it reaches the upstream by address (the upstream's
    // certificate names 127.0.0.1 too).
    let mitm_base = format!("https://127.0.0.1:{port}");

    println!(
        "proxy bench: {} small GETs ({} concurrent), {} x 10 MB bodies, loopback, 2 worker threads{}",
        load.small,
        load.concurrency,
        load.big,
        if mitm.is_some() {
            ""
        } else {
            " (no mitmproxy)"
        }
    );
    println!("small requests:");
    let d = small(&direct, &format!("{direct_base}/v1/models"), &load).await;
    row("direct", &d, "req/s");
    let o = small(&ours, &format!("{ours_base}/v1/models"), &load).await;
    row("clauderon", &o, "req/s");
    let m = match &mitm_client {
        Some(c) => {
            let m = small(c, &format!("{mitm_base}/v1/models"), &load).await;
            row("mitmproxy", &m, "req/s");
            Some(m)
        }
        None => None,
    };
    println!(
        "  clauderon adds p50 {:.2} ms, p99 {:.2} ms over direct",
        (o.p50.as_secs_f64() - d.p50.as_secs_f64()) * 1e3,
        (o.p99.as_secs_f64() - d.p99.as_secs_f64()) * 1e3
    );
    if let Some(m) = &m {
        println!(
            "  ratio clauderon/mitmproxy throughput: {:.1}x",
            o.rps / m.rps
        );
    }

    println!("10 MB bodies:");
    let q = format!("/bytes?n={BIG}");
    let d = big(&direct, &format!("{direct_base}{q}"), &load).await;
    row("direct", &d, "bod/s");
    let o = big(&ours, &format!("{ours_base}{q}"), &load).await;
    row("clauderon", &o, "bod/s");
    if let Some(c) = &mitm_client {
        let m = big(c, &format!("{mitm_base}{q}"), &load).await;
        row("mitmproxy", &m, "bod/s");
        println!(
            "  ratio clauderon/mitmproxy throughput: {:.1}x",
            o.rps / m.rps
        );
    }
    println!(
        "  clauderon/direct throughput: {:.2}x ({:.0} MB/s through clauderon)",
        o.rps / d.rps,
        o.rps * 10.0
    );
    let seen = up.requests();
    assert!(
        seen.iter()
            .filter(|s| s.one("x-api-key") == Some(KEY))
            .count()
            >= load.small,
        "the proxies injected the key"
    );
}
