//! The credential proxy wired into the daemon, through the real binary, the real daemon and
//! the `local` backend (its sandbox is a directory on this machine, its processes run here):
//! an agent that is a small shell script around curl, configured only by the environment the
//! daemon gave it, reaches a local HTTPS upstream standing in for api.anthropic.com. The
//! upstream sees the real key; the sandbox's files, its processes' environments and the
//! agent's output never hold it; the audit log records the request; a daemon crash and
//! restart leaves the running agent's credential working; delete revokes it.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::artifacts::artifacts;
use crate::support::daemon::TestDaemon;
use crate::support::files::files_containing;
use crate::support::git::git_repo;
use crate::support::home::TempHome;
use crate::support::upstream::Upstream;

/// The real key: the daemon has it in its environment, nothing in the sandbox may.
const REAL_KEY: &str = "sk-ant-api03-WIRING-real-key-do-not-leak-0123456789";

/// Bounds every wait.
const WAIT: Duration = Duration::from_secs(60);

/// The agent: one request at start (its result goes to the terminal, so into the session's
/// output), then one per line written to the FIFO `$HOME/trigger`, answering on the FIFO
/// `$HOME/result`. It ignores SIGHUP and writes only to files after the first request, so it
/// survives the daemon (and its terminal) being killed. Started again with `resume` (after a
/// daemon restart the plugin forgot the terminal session) it only waits.
const AGENT_SCRIPT: &str = r#"trap '' HUP
if [ "$1" = resume ]; then echo agent-resumed; exec cat; fi
req() {
  curl -sS --max-time 20 --cacert "$SSL_CERT_FILE" -o "$HOME/resp-$1.txt" \
    -w "agent-request-$1:%{http_code}/%{http_connect}" \
    -H "x-api-key: $ANTHROPIC_API_KEY" -H 'content-type: application/json' \
    --data '{"model":"x"}' https://api.anthropic.com/v1/messages 2>"$HOME/curl-$1.err"
}
mkfifo "$HOME/trigger" "$HOME/result"
echo "$(req first)"
i=0
while [ $i -lt 20 ]; do
  i=$((i+1))
  read n < "$HOME/trigger" || break
  echo "$(req "$n")" > "$HOME/result"
done
"#;

fn local_fixture() -> PathBuf {
    let p = artifacts().cdylib("fixture_local_backend");
    assert!(p.exists(), "fixture {} was not built", p.display());
    p
}

/// A home with the local backend, the curl agent, and proxy.toml pointing api.anthropic.com
/// at `upstream` (trusting its test CA).
fn wired_home(upstream: &Upstream) -> TempHome {
    let home = TempHome::new();
    home.install_plugin("local", &local_fixture());
    let script = home.path().join("agent.sh");
    std::fs::write(&script, AGENT_SCRIPT).unwrap();
    home.write_config(&format!(
        "default_backend = \"local\"\n\
         [agent]\npreset = \"custom\"\ncommand = [\"sh\", \"{}\"]\n\
         prompt_args = [\"{{prompt}}\"]\nresume_args = [\"resume\", \"{{resume}}\"]\n\
         continue_args = [\"resume\", \"latest\"]\n\
         [local]\nroot = \"{}\"\nkill_grace_ms = 500\n",
        script.display(),
        home.path().join("sandboxes").display()
    ));
    upstream.write_overrides(home.path(), &["api.anthropic.com"], "");
    home
}

fn start_daemon(home: &TempHome) -> TestDaemon {
    TestDaemon::start_with(home, |c| {
        c.env("ANTHROPIC_API_KEY", REAL_KEY)
            .env_remove("GITHUB_TOKEN")
            .env_remove("GH_TOKEN")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy");
    })
}

fn daemon_json(home: &TempHome) -> Value {
    serde_json::from_str(&std::fs::read_to_string(home.path().join("daemon.json")).unwrap())
        .unwrap()
}

/// Every live process of the sandbox at `dir`: (pid, environ entries).
fn sandbox_processes(dir: &Path) -> Vec<(u32, Vec<String>)> {
    let marker = format!("CLAUDERON_LOCAL_SANDBOX={}", dir.display());
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let vars: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        if vars.contains(&marker) {
            out.push((pid, vars));
        }
    }
    out
}

fn env_of<'a>(vars: &'a [String], name: &str) -> Option<&'a str> {
    vars.iter()
        .find_map(|v| v.strip_prefix(name)?.strip_prefix('='))
}

/// Asks the still-running first agent for one more request through its FIFOs; returns its
/// result line. Blocking FIFO opens are the readiness signal; the whole exchange is bounded.
async fn trigger(sandbox_home: &Path, n: &str) -> String {
    let trigger = sandbox_home.join("trigger");
    let result = sandbox_home.join("result");
    let n = n.to_owned();
    let job = tokio::task::spawn_blocking(move || {
        let mut t = std::fs::OpenOptions::new()
            .write(true)
            .open(&trigger)
            .unwrap();
        writeln!(t, "{n}").unwrap();
        drop(t);
        let r = std::fs::File::open(&result).unwrap();
        let mut line = String::new();
        std::io::BufReader::new(r).read_line(&mut line).unwrap();
        line.trim().to_owned()
    });
    tokio::time::timeout(WAIT, job)
        .await
        .expect("the agent answered in time")
        .unwrap()
}

/// A raw CONNECT through the proxy at `addr` with the credential in `proxy_url`; returns the
/// status line.
async fn connect_with(addr: &str, proxy_url: &str) -> String {
    use base64::Engine as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let creds = proxy_url
        .strip_prefix("http://")
        .and_then(|r| r.rsplit_once('@'))
        .map(|(c, _)| c)
        .unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(creds);
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "CONNECT api.anthropic.com:443 HTTP/1.1\r\nHost: api.anthropic.com:443\r\n\
             Proxy-Authorization: Basic {auth}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_wiring_agent_uses_the_real_key_without_holding_it_across_restart_until_delete() {
    let upstream = Upstream::start(&["api.anthropic.com"]).await;
    let home = wired_home(&upstream);
    let d = start_daemon(&home);
    let info = daemon_json(&home);
    let proxy_addr = info["proxy_addr"]
        .as_str()
        .expect("daemon.json names the proxy");
    assert!(proxy_addr.starts_with("127.0.0.1:"), "{info}");

    let repo = git_repo();
    let (code, s) = d
        .post(
            "/api/sessions",
            &json!({"repo": repo.path(), "prompt": "go", "name": "wired"}),
        )
        .await;
    assert_eq!(code, 201, "{s}\n{}", d.log());
    let id = s["id"].as_str().unwrap().to_owned();
    d.wait_status("wired", "running", WAIT).await;

    // The agent's first request reached the upstream through the proxy, with the real key.
    let out = d.wait_output(&id, "agent-request-first:").await;
    assert!(
        out.contains("agent-request-first:200/200"),
        "{out}\n{}",
        d.log()
    );
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].target, "/v1/messages");
    assert_eq!(seen[0].one("x-api-key"), Some(REAL_KEY));
    assert_eq!(seen[0].one("proxy-authorization"), None);

    // The sandbox side: placeholders, the proxy with a credential, the trust variables.
    let sandbox = home.path().join("sandboxes").join("wired");
    let sandbox_home = sandbox.join("home");
    let procs = sandbox_processes(&sandbox);
    assert!(!procs.is_empty(), "no process of {}", sandbox.display());
    for (pid, vars) in &procs {
        assert!(
            !vars.iter().any(|v| v.contains(REAL_KEY)),
            "process {pid} of the sandbox holds the real key"
        );
    }
    let (_, agent_env) = procs
        .iter()
        .find(|(_, v)| env_of(v, "ANTHROPIC_API_KEY").is_some())
        .expect("the agent has ANTHROPIC_API_KEY");
    let placeholder = env_of(agent_env, "ANTHROPIC_API_KEY").unwrap();
    assert!(
        placeholder.starts_with("clauderon-placeholder-"),
        "{placeholder}"
    );
    assert!(env_of(agent_env, "GH_TOKEN").is_some());
    let https_proxy = env_of(agent_env, "HTTPS_PROXY").unwrap().to_owned();
    assert!(
        https_proxy.starts_with(&format!("http://{id}:"))
            && https_proxy.ends_with(&format!("@{proxy_addr}")),
        "HTTPS_PROXY {https_proxy} (proxy at {proxy_addr})"
    );
    assert_eq!(env_of(agent_env, "HTTP_PROXY"), Some(https_proxy.as_str()));
    assert!(env_of(agent_env, "NO_PROXY").unwrap().contains("127.0.0.1"));
    let bundle_path = env_of(agent_env, "SSL_CERT_FILE").unwrap().to_owned();
    assert_eq!(
        PathBuf::from(&bundle_path),
        sandbox_home.join(".clauderon/ca-bundle.pem"),
        "the bundle lives under the sandbox's $HOME"
    );
    for var in [
        "NODE_EXTRA_CA_CERTS",
        "REQUESTS_CA_BUNDLE",
        "GIT_SSL_CAINFO",
    ] {
        assert_eq!(env_of(agent_env, var), Some(bundle_path.as_str()), "{var}");
    }
    // The bundle: the system roots plus our CA, never our CA alone.
    let bundle = std::fs::read_to_string(&bundle_path).unwrap();
    let our_ca = std::fs::read_to_string(home.path().join("proxy/ca.pem")).unwrap();
    assert!(bundle.contains(our_ca.trim()), "our CA is in the bundle");
    assert!(
        bundle.matches("BEGIN CERTIFICATE").count() > 50,
        "the bundle holds the system roots too"
    );
    // Never into this machine's trust store (the local sandbox is this machine).
    assert!(!Path::new("/usr/local/share/ca-certificates/clauderon.crt").exists());

    // Nothing of the sandbox, the agent's output or the daemon's log holds the real key.
    assert_eq!(files_containing(&sandbox, REAL_KEY), Vec::<PathBuf>::new());
    assert!(!out.contains(REAL_KEY));
    assert!(!d.log().contains(REAL_KEY), "the daemon log holds the key");
    // The persisted session credential is private and holds no real secret.
    let cred_file = home
        .path()
        .join("proxy/sessions")
        .join(format!("{id}.json"));
    {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(&cred_file).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    assert!(
        !std::fs::read_to_string(&cred_file)
            .unwrap()
            .contains(REAL_KEY)
    );

    // `proxy audit` shows the request with injected=true (the audit writer is asynchronous:
    // bounded polling of the CLI).
    let deadline = Instant::now() + WAIT;
    let audit = loop {
        let run = home.run(&["proxy", "audit", "wired", "--json"]);
        assert_eq!(run.code, Some(0), "{run:?}");
        let v = run.json();
        if v.as_array().is_some_and(|a| !a.is_empty()) {
            assert!(!run.stdout.contains(REAL_KEY));
            break v;
        }
        assert!(Instant::now() < deadline, "no audit entry: {run:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let e = &audit[0];
    assert_eq!(e["host"], "api.anthropic.com", "{audit:#}");
    assert_eq!(e["method"], "POST");
    assert_eq!(e["path"], "/v1/messages");
    assert_eq!(e["status"], 200);
    assert_eq!(e["injected"], true);

    // A daemon crash and restart: the proxy comes back at the same address and the still-
    // running first agent's credential still works.
    let d = {
        let mut d = d;
        d.kill();
        start_daemon(&home)
    };
    assert_eq!(
        daemon_json(&home)["proxy_addr"].as_str(),
        Some(proxy_addr),
        "the proxy's address is kept across restarts"
    );
    let line = trigger(&sandbox_home, "second").await;
    assert_eq!(
        line,
        "agent-request-second:200/200",
        "curl: {}\n{}",
        std::fs::read_to_string(sandbox_home.join("curl-second.err")).unwrap_or_default(),
        d.log()
    );
    let seen = upstream.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].one("x-api-key"), Some(REAL_KEY));
    assert!(!d.log().contains(REAL_KEY));
    // The restarted daemon lost the plugin's terminal session and started the agent again
    // with resume: it got the same credential and placeholders as the first one.
    d.wait_output(&id, "agent-resumed").await;
    let procs = sandbox_processes(&sandbox);
    let agents: Vec<&Vec<String>> = procs
        .iter()
        .map(|(_, v)| v)
        .filter(|v| env_of(v, "ANTHROPIC_API_KEY").is_some())
        .collect();
    assert!(agents.len() >= 2, "both agents run: {}", agents.len());
    for v in agents {
        assert_eq!(env_of(v, "ANTHROPIC_API_KEY"), Some(placeholder));
        assert_eq!(env_of(v, "HTTPS_PROXY"), Some(https_proxy.as_str()));
        assert!(!v.iter().any(|x| x.contains(REAL_KEY)));
    }

    // Delete revokes the credential: the old HTTPS_PROXY credential gets 407.
    assert!(
        connect_with(proxy_addr, &https_proxy)
            .await
            .contains(" 200")
    );
    let run = home.run(&["delete", "wired", "--yes"]);
    assert_eq!(run.code, Some(0), "{run:?}\n{}", d.log());
    let status = connect_with(proxy_addr, &https_proxy).await;
    assert!(status.contains(" 407"), "{status}");
    assert!(!cred_file.exists(), "the persisted credential is removed");
}

#[test]
fn proxy_wiring_a_non_loopback_proxy_address_is_refused_with_the_fix() {
    let home = TempHome::new();
    home.write_config("[server]\nlisten = \"127.0.0.1:0\"\n[proxy]\nlisten = \"0.0.0.0:18080\"\n");
    let run = home.run(&["daemon"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("`proxy.listen`"), "{}", run.stderr);
    assert!(run.stderr.contains("loopback only"), "{}", run.stderr);
    assert!(!home.path().join("daemon.json").exists());
}

#[test]
fn proxy_wiring_config_credentials_shows_which_rules_have_a_secret() {
    let home = TempHome::new();
    std::fs::write(
        home.path().join("proxy.toml"),
        "[[rules]]\nhost = \"npm.example.com\"\nsecret = \"npm_token\"\nformat = \"bearer\"\n",
    )
    .unwrap();
    let setup = |c: &mut std::process::Command| {
        c.env("ANTHROPIC_API_KEY", REAL_KEY)
            .env_remove("GITHUB_TOKEN")
            .env_remove("GH_TOKEN")
            .env_remove("NPM_TOKEN");
    };
    let run = home.run_with(&["config", "credentials", "--json"], setup);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!run.stdout.contains(REAL_KEY), "{}", run.stdout);
    let rows = run.json();
    let row = |name: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {rows:#}"))
            .clone()
    };
    let anthropic = row("anthropic_api_key");
    assert_eq!(anthropic["source"]["kind"], "env", "{anthropic:#}");
    let rules = anthropic["proxy_rules"].as_array().unwrap();
    assert!(
        rules.iter().any(|r| r["host"] == "api.anthropic.com"
            && r["header"] == "x-api-key"
            && r["resolved"] == true),
        "{anthropic:#}"
    );
    let github = row("github_token");
    assert!(
        github["proxy_rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["host"] == "api.github.com" && r["resolved"] == false),
        "{github:#}"
    );
    // A secret only a user rule uses gets its own row.
    let npm = row("npm_token");
    assert_eq!(npm["proxy_rules"][0]["host"], "npm.example.com", "{npm:#}");
    assert_eq!(npm["proxy_rules"][0]["header"], "authorization");
    assert!(npm["source"].is_null());

    let run = home.run_with(&["config", "credentials"], setup);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!run.stdout.contains(REAL_KEY), "{}", run.stdout);
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("api.anthropic.com"))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    for part in [
        "x-api-key",
        "anthropic_api_key",
        "env ANTHROPIC_API_KEY",
        "yes",
    ] {
        assert!(line.contains(part), "{line}");
    }
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("npm.example.com"))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(line.contains("not set") && line.ends_with("no"), "{line}");
}
