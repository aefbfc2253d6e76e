//! Build caches that outlive sessions, measured on real builds (DESIGN §16), in one run:
//!
//! - cargo: a project with 26 registry dependencies (their crates downloaded from crates.io
//!   through the credential proxy), built inside an emulator sprite that has this machine's
//!   Rust mounted where sprites.dev's image keeps its languages. T_cold: the first build of a
//!   fresh project (a new root commit, so no cache can match), with `--build-cache cargo`;
//!   that session's caches are then saved (`cache save`, the save `delete` also makes; the
//!   session is deleted after the warm build). Then a *different* new sprite of the
//!   same project with `--build-cache cargo`: T_restore (from the probe to the restored entry),
//!   then one file of the project's own crate is touched and it builds again: T_warm.
//!   Saving = 1 − (T_restore + T_warm) / T_cold; target ≥ 0.80. In the first pair the
//!   project then gains a dependency: a session restores the whole entry by prefix, builds
//!   and saves a layer over it (only what changed), and another restores that layer with its
//!   base; bytes and times are printed beside the whole save's and restore's.
//! - npm: `npm ci` of a project with well over 300 packages (tarballs from the npm registry
//!   through the credential proxy), cold and after a restore of the npm cache; target ≥ 0.70.
//!   Printed beside it: `npm ci` of the same lockfile straight on this host, cold and then with
//!   the full npm cache and nothing to restore, the most any npm cache can save here.
//!
//! Proof printed per pair: the restored key is the one the cold session saved, the share of
//! cargo units cargo reports fresh (≥ 90%), the built program's output, registry requests the
//! proxy's audit log shows for each session, bytes and times of every phase. The median of
//! `CACHE_BENCH_PAIRS` pairs (default 3) is the result.
//!
//! `cargo build --release -p clauderon -p clauderon-sprites -p sprites-emulator && cargo bench
//! -p clauderon-sprites --bench cache_build` (`CACHE_BENCH_ONLY=cargo|npm`). It needs this
//! machine's network to reach crates.io and registry.npmjs.org (the lockfiles are made here
//! first), `rustc`, `npm` and `git`; behind an intercepting egress proxy, `SSL_CERT_FILE` (or
//! `CACHE_BENCH_CA_FILE`) names the CA bundle the credential proxy must also trust for the
//! registries. Run without `--bench` it is one pair.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{BoxError, git, median, run};
use serde_json::Value;

/// The agent: `$1` says which build to run and time, inside the workspace.
const AGENT: &str = r#"set -u
now() { date +%s.%N; }
case "$1" in
cargo-cold|cargo-warm)
  if [ "$1" = cargo-warm ]; then printf '\n// touched\n' >> src/main.rs; fi
  s=$(now)
  cargo build --locked --message-format=json > /tmp/bench-build.json 2> /tmp/bench-build.err
  rc=$?
  e=$(now)
  units=$(grep -c '"reason":"compiler-artifact"' /tmp/bench-build.json)
  fresh=$(grep '"reason":"compiler-artifact"' /tmp/bench-build.json | grep -c '"fresh":true')
  echo "BENCH build rc=$rc start=$s end=$e units=$units fresh=$fresh"
  [ "$rc" = 0 ] || tail -n 30 /tmp/bench-build.err
  echo "BENCH run $(./target/debug/cachebench 2>&1 | head -n 1)"
  ;;
npm-cold|npm-warm)
  # npm trusts only its `cafile` when one is set (a global npmrc may name the system bundle,
  # which lacks the credential proxy's CA): the sandbox's trust bundle then.
  if [ -n "${NODE_EXTRA_CA_CERTS:-}" ]; then export npm_config_cafile="$NODE_EXTRA_CA_CERTS"; fi
  s=$(now)
  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error > /tmp/bench-npm.out 2>&1
  rc=$?
  e=$(now)
  echo "BENCH build rc=$rc start=$s end=$e packages=$(find node_modules -name package.json -path '*node_modules/*' | wc -l)"
  [ "$rc" = 0 ] || tail -n 30 /tmp/bench-npm.out
  echo "BENCH run $(node -e 'console.log(require("lodash").chunk([1,2,3,4],2).length + " chunks")' 2>&1)"
  ;;
esac
"#;

/// The hosts the builds download from (through the credential proxy).
const REGISTRY_HOSTS: &[&str] = &[
    "index.crates.io",
    "static.crates.io",
    "crates.io",
    "registry.npmjs.org",
];

const CARGO_DEPS: &[&str] = &[
    "anyhow = \"1\"",
    "thiserror = \"2\"",
    "serde = { version = \"1\", features = [\"derive\"] }",
    "serde_json = \"1\"",
    "regex = \"1\"",
    "once_cell = \"1\"",
    "itoa = \"1\"",
    "memchr = \"2\"",
    "bitflags = \"2\"",
    "log = \"0.4\"",
    "smallvec = \"1\"",
    "either = \"1\"",
    "itertools = \"0.14\"",
    "hex = \"0.4\"",
    "base64 = \"0.22\"",
    "byteorder = \"1\"",
    "bytes = \"1\"",
    "cfg-if = \"1\"",
    "fnv = \"1\"",
    "indexmap = \"2\"",
    "semver = \"1\"",
    "unicode-width = \"0.2\"",
    "strsim = \"0.11\"",
    "humantime = \"2\"",
    "crc32fast = \"1\"",
    "rand = \"0.9\"",
];

const MAIN_RS: &str = r#"use serde::Serialize;

#[derive(Serialize)]
struct Report {
    matched: bool,
    roll: u8,
    checksum: u32,
}

fn main() {
    let re = regex::Regex::new(r"^cache-\d+$").expect("regex");
    let roll: u8 = rand::random::<u8>() % 6 + 1;
    let r = Report {
        matched: re.is_match("cache-42"),
        roll,
        checksum: crc32fast::hash(b"clauderon"),
    };
    println!("cachebench ok {}", serde_json::to_string(&r).expect("json"));
}
"#;

const NPM_DEPS: &str = r#"{
  "name": "cachebench",
  "version": "1.0.0",
  "private": true,
  "dependencies": {
    "jest": "29.7.0",
    "eslint": "8.57.0",
    "webpack": "5.94.0",
    "webpack-cli": "5.1.4",
    "typescript": "5.6.3",
    "express": "4.21.1",
    "lodash": "4.17.21",
    "axios": "1.7.7"
  }
}
"#;

/// The project's files, made once on this machine (its lockfile from the real registry).
fn template(kind: &str, dir: &Path) -> Result<String, BoxError> {
    std::fs::create_dir_all(dir)?;
    if kind == "cargo" {
        std::fs::write(
            dir.join("Cargo.toml"),
            format!(
                "[package]\nname = \"cachebench\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
                 [dependencies]\n{}\n",
                CARGO_DEPS.join("\n")
            ),
        )?;
        std::fs::create_dir_all(dir.join("src"))?;
        std::fs::write(dir.join("src/main.rs"), MAIN_RS)?;
        run(
            Command::new("cargo")
                .arg("generate-lockfile")
                .current_dir(dir),
            "cargo generate-lockfile",
        )?;
        let lock = std::fs::read_to_string(dir.join("Cargo.lock"))?;
        let crates = lock.matches("source = \"registry+").count();
        Ok(format!(
            "{} direct registry dependencies, {crates} registry crates in Cargo.lock",
            CARGO_DEPS.len()
        ))
    } else {
        std::fs::write(dir.join("package.json"), NPM_DEPS)?;
        run(
            Command::new("npm")
                .args([
                    "install",
                    "--package-lock-only",
                    "--ignore-scripts",
                    "--no-audit",
                    "--no-fund",
                    // npm's default, whatever this machine's npmrc says: without `resolved`
                    // URLs `npm ci` fetches every packument and tarball again, cache or not.
                    "--omit-lockfile-registry-resolved=false",
                ])
                .current_dir(dir),
            "npm install --package-lock-only",
        )?;
        let lock: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("package-lock.json"))?)?;
        let n = lock["packages"]
            .as_object()
            .map(|p| p.keys().filter(|k| k.starts_with("node_modules/")).count())
            .unwrap_or(0);
        let resolved = lock["packages"]
            .as_object()
            .map(|p| p.values().filter(|v| v["resolved"].is_string()).count())
            .unwrap_or(0);
        Ok(format!(
            "{n} packages in package-lock.json ({resolved} with a resolved URL)"
        ))
    }
}

/// A new repository holding the template (a fresh root commit: a project of its own).
fn fresh_repo(template: &Path, root: &Path, tag: &str) -> Result<PathBuf, BoxError> {
    let dir = root.join(tag);
    std::fs::create_dir_all(&dir)?;
    for e in std::fs::read_dir(template)? {
        let e = e?;
        let name = e.file_name();
        if name == "target" || name == "node_modules" {
            continue;
        }
        run(
            Command::new("cp")
                .arg("-r")
                .arg(e.path())
                .arg(dir.join(&name)),
            "cp",
        )?;
    }
    git(&dir, &["init", "-q", "-b", "main"])?;
    git(&dir, &["add", "."])?;
    git(
        &dir,
        &["commit", "-q", "-m", &format!("bench project {tag}")],
    )?;
    Ok(dir)
}

struct Bench {
    clauderon: PathBuf,
    home: PathBuf,
}

/// One build's numbers from the agent's `BENCH build` line.
#[derive(Debug, Default)]
struct Build {
    secs: f64,
    units: u64,
    fresh: u64,
    run: String,
    extra: String,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

impl Bench {
    fn cli(&self, args: &[&str]) -> Result<String, BoxError> {
        run(
            Command::new(&self.clauderon)
                .env("CLAUDERON_HOME", &self.home)
                .args(args)
                .stdin(Stdio::null()),
            &format!("clauderon {}", args.join(" ")),
        )
    }

    /// Creates session `name` with `--print` running agent action `what`; its build numbers.
    fn build(&self, repo: &Path, name: &str, what: &str, cache: &str) -> Result<Build, BoxError> {
        let out = self.cli(&[
            "create",
            "--repo",
            &repo.to_string_lossy(),
            "--prompt",
            what,
            "--name",
            name,
            "--print",
            "--build-cache",
            cache,
        ])?;
        let line = out
            .lines()
            .find(|l| l.starts_with("BENCH build "))
            .ok_or_else(|| format!("no build line from {name}: {out}"))?;
        if field(line, "rc") != Some("0") {
            return Err(format!("the build in {name} failed:\n{out}").into());
        }
        let num = |k: &str| {
            field(line, k)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Ok(Build {
            secs: num("end") - num("start"),
            units: num("units") as u64,
            fresh: num("fresh") as u64,
            run: out
                .lines()
                .find_map(|l| l.strip_prefix("BENCH run "))
                .unwrap_or("")
                .to_owned(),
            extra: field(line, "packages")
                .map(|p| format!("{p} package.json files in node_modules"))
                .unwrap_or_default(),
        })
    }

    /// The session's events (`logs --json`), newest session of that name.
    fn events(&self, name: &str) -> Result<Vec<Value>, BoxError> {
        let list: Value = serde_json::from_str(&self.cli(&["list", "--all", "--json"])?)?;
        let id = list
            .as_array()
            .and_then(|a| a.iter().rev().find(|s| s["name"] == name))
            .and_then(|s| s["id"].as_str())
            .ok_or_else(|| format!("no session {name}"))?
            .to_owned();
        let text = self.cli(&["logs", &id, "--json"])?;
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    /// How many requests to `host` (`a+b`: to either) the proxy's audit log shows for session
    /// `name`.
    fn audited(&self, name: &str, host: &str) -> usize {
        self.cli(&["proxy", "audit", name, "--json"])
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| {
                v.as_array().map(|a| {
                    a.iter()
                        .filter(|e| {
                            e["host"]
                                .as_str()
                                .is_some_and(|h| host.split('+').any(|x| x == h))
                        })
                        .count()
                })
            })
            .unwrap_or(0)
    }
}

fn at(ev: &Value) -> Option<f64> {
    let t = time::OffsetDateTime::parse(
        ev["at"].as_str()?,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    Some(t.unix_timestamp_nanos() as f64 / 1e9)
}

fn message(ev: &Value) -> &str {
    ev["data"]["message"].as_str().unwrap_or("")
}

/// The ceiling of any npm cache on this machine: `npm ci` of the template run directly on the
/// host, first with an empty npm cache, then again in a fresh directory with the cache that
/// run filled (no restore at all). Returns (cold, warm) seconds.
fn npm_on_this_host(tpl: &Path, work: &Path) -> Result<(f64, f64), BoxError> {
    let cache = work.join("host-npm-cache");
    let mut secs = Vec::new();
    for run_name in ["host-npm-cold", "host-npm-warm"] {
        let dir = work.join(run_name);
        std::fs::create_dir_all(&dir)?;
        for f in ["package.json", "package-lock.json"] {
            std::fs::copy(tpl.join(f), dir.join(f))?;
        }
        let t = Instant::now();
        run(
            Command::new("npm")
                .args([
                    "ci",
                    "--no-audit",
                    "--no-fund",
                    "--ignore-scripts",
                    "--loglevel=error",
                ])
                .env("npm_config_cache", &cache)
                .current_dir(&dir),
            &format!("npm ci ({run_name})"),
        )?;
        secs.push(t.elapsed().as_secs_f64());
    }
    Ok((secs[0], secs[1]))
}

/// The time from a session's cache probe to its `<kind>: restored` event, and that event's
/// text.
fn restore_time(b: &Bench, name: &str, kind: &str) -> Result<(f64, String), BoxError> {
    let events = b.events(name)?;
    let probe = events
        .iter()
        .find(|e| message(e).starts_with("probing the sandbox for build caches"))
        .and_then(at)
        .ok_or_else(|| format!("no probe event in {name}"))?;
    let restored = events
        .iter()
        .find(|e| message(e).starts_with(&format!("{kind}: restored ")))
        .ok_or_else(|| format!("{name} restored nothing"))?;
    Ok((
        at(restored).ok_or("no time")? - probe,
        message(restored).to_owned(),
    ))
}

/// Incremental saves, side by side with the whole save in the same run: the project gains a
/// dependency (committed, so its lockfile and cache key change); a session restores the whole
/// entry `whole` by prefix, builds, and saves a layer over it; a later session restores that
/// layer with what it lies on. Compared with the cold session's whole save (`whole_save`
/// seconds) and the warm session's restore of the whole entry (`whole_restore`).
fn layered_save(
    b: &Bench,
    repo: &Path,
    whole: &str,
    whole_save: f64,
    whole_restore: f64,
    i: usize,
) -> Result<String, BoxError> {
    let toml = repo.join("Cargo.toml");
    let text = std::fs::read_to_string(&toml)?;
    std::fs::write(
        &toml,
        text.replace("[dependencies]\n", "[dependencies]\nfastrand = \"2\"\n"),
    )?;
    // Resolves only the new dependency into the lockfile (every other version stays).
    run(
        Command::new("cargo")
            .args(["metadata", "--format-version", "1"])
            .current_dir(repo)
            .stdout(Stdio::null()),
        "cargo metadata",
    )?;
    git(repo, &["commit", "-q", "-am", "a new dependency"])?;
    let next = format!("cargo-next-{i}");
    b.build(repo, &next, "cargo-warm", "cargo")?;
    let t = Instant::now();
    let out: Value = serde_json::from_str(&b.cli(&["cache", "save", &next, "--json"])?)?;
    let layer_secs = t.elapsed().as_secs_f64();
    let saved = &out["caches"][0];
    let detail = saved["detail"].as_str().unwrap_or("");
    if saved["outcome"] != "saved" || !detail.contains(&format!("a layer over {whole}")) {
        return Err(
            format!("the save after the new dependency is no layer over {whole}: {out}").into(),
        );
    }
    let layer_key = saved["key"].as_str().unwrap_or("").to_owned();
    let layer_bytes = saved["bytes"].as_u64().unwrap_or(0);
    let list: Value = serde_json::from_str(&b.cli(&["cache", "list", "--json"])?)?;
    let whole_bytes = list
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["entries"].as_array().into_iter().flatten())
        .find(|e| e["key"] == whole)
        .and_then(|e| e["size"].as_u64())
        .ok_or("the whole entry is not listed")?;
    let chain = format!("cargo-chain-{i}");
    b.build(repo, &chain, "cargo-warm", "cargo")?;
    let (chain_restore, msg) = restore_time(b, &chain, "cargo")?;
    if !msg.starts_with(&format!("cargo: restored {layer_key} ")) {
        return Err(format!("{chain} did not restore the layer {layer_key}: {msg}").into());
    }
    b.cli(&["delete", &chain, "--yes"])?;
    b.cli(&["delete", &next, "--yes"])?;
    let mb = |n: u64| n as f64 / 1e6;
    Ok(format!(
        "  a new dependency: the next session restored {whole} and saved {layer_key} as a \
         layer over it, {:.1} MB in {layer_secs:.1}s, against the whole entry's {:.1} MB in \
         {whole_save:.1}s (the cold session's save): {:.3}x the bytes, {:.2}x the time; a \
         later session restored the layer with its base in {chain_restore:.2}s, against \
         {whole_restore:.2}s for the whole entry alone ({msg})",
        mb(layer_bytes),
        mb(whole_bytes),
        layer_bytes as f64 / whole_bytes.max(1) as f64,
        layer_secs / whole_save.max(0.001),
    ))
}

/// One cold/warm pair; returns (T_cold, T_restore, T_warm).
fn pair(b: &Bench, kind: &str, tpl: &Path, root: &Path, i: usize) -> Result<[f64; 3], BoxError> {
    let tag = format!(
        "{kind}-{i}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let repo = fresh_repo(tpl, root, &tag)?;
    let (cold_name, warm_name) = (format!("{kind}-cold-{i}"), format!("{kind}-warm-{i}"));
    let registry = if kind == "cargo" {
        "index.crates.io+static.crates.io"
    } else {
        "registry.npmjs.org"
    };
    let t = Instant::now();
    let cold = b.build(&repo, &cold_name, &format!("{kind}-cold"), kind)?;
    let cold_session = t.elapsed().as_secs_f64();
    let cold_requests = b.audited(&cold_name, registry);
    // Saved on request, and the cold sprite deleted only after the warm build: on this VM
    // its deletion (tens of thousands of files on the same disk) slows every file creation
    // for minutes, which sprites on their own disks never see. The save is the same as the
    // one `delete` makes.
    let t = Instant::now();
    b.cli(&["cache", "save", &cold_name])?;
    let save_secs = t.elapsed().as_secs_f64();
    let saved = b
        .events(&cold_name)?
        .iter()
        .map(message)
        .find_map(|m| {
            m.strip_prefix(&format!("{kind}: saved "))
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_owned)
        })
        .ok_or("the cold session saved no cache")?;
    let warm = b.build(&repo, &warm_name, &format!("{kind}-warm"), kind)?;
    let warm_requests = b.audited(&warm_name, registry);
    let (restore, restored_msg) = restore_time(b, &warm_name, kind)?;
    let restored_key = restored_msg
        .strip_prefix(&format!("{kind}: restored "))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("");
    if restored_key != saved {
        return Err(format!("restored {restored_key}, but the cold session saved {saved}").into());
    }
    let layered = if kind == "cargo" && i == 0 {
        Some(layered_save(b, &repo, &saved, save_secs, restore, i)?)
    } else {
        None
    };
    b.cli(&["delete", &warm_name, "--yes"])?;
    b.cli(&["delete", &cold_name, "--yes"])?;
    let saving = 1.0 - (restore + warm.secs) / cold.secs;
    println!("pair {} ({kind}):", i + 1);
    println!(
        "  cold: build {:.1}s (session {cold_session:.1}s), {} units, {cold_requests} requests \
         to {registry} through the proxy{}; cache saved (`cache save`) in {save_secs:.1}s as {saved}",
        cold.secs,
        cold.units,
        if cold.extra.is_empty() {
            String::new()
        } else {
            format!(", {}", cold.extra)
        }
    );
    println!("  restore: {restore:.2}s ({restored_msg})");
    let fresh = if warm.units > 0 {
        format!(
            ", {}/{} units fresh ({:.0}%)",
            warm.fresh,
            warm.units,
            100.0 * warm.fresh as f64 / warm.units as f64
        )
    } else {
        String::new()
    };
    println!(
        "  warm: build {:.1}s{fresh}, {warm_requests} requests to {registry}; program: {}",
        warm.secs, warm.run
    );
    println!(
        "  saving 1 - ({restore:.2} + {:.2}) / {:.2} = {:.1}%",
        warm.secs,
        cold.secs,
        saving * 100.0
    );
    if let Some(text) = layered {
        println!("{text}");
    }
    if kind == "cargo" && warm.units > 0 && warm.fresh * 10 < warm.units * 9 {
        return Err("fewer than 90% of the warm build's units were fresh".into());
    }
    Ok([cold.secs, restore, warm.secs])
}

fn main() -> Result<(), BoxError> {
    let full = std::env::args().any(|a| a == "--bench");
    let pairs: usize = std::env::var("CACHE_BENCH_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 3 } else { 1 });
    let only = std::env::var("CACHE_BENCH_ONLY").ok();
    let dir = common::profile_dir()?;
    common::plugin_library(&dir)?;
    let clauderon = common::built(&dir, "clauderon", "clauderon")?;
    let sysroot = run(
        Command::new("rustc").args(["--print", "sysroot"]),
        "rustc --print sysroot",
    )?;
    let emu = common::Emu::start(&dir, &["--language", &format!("rust={}", sysroot.trim())])?;
    let work = std::env::temp_dir().join(format!("cache-build-bench-{}", std::process::id()));
    let home = work.join("home");
    common::bench_home(
        &home,
        &format!(
            "default_backend = \"sprites\"\n[server]\nlisten = \"127.0.0.1:0\"\n\
             [agent]\npreset = \"custom\"\ncommand = [\"sh\", \"-c\", {}, \"agent\"]\n\
             prompt_args = [\"{{prompt}}\"]\nprint_args = []\n\
             [sprites]\napi_url = \"{}\"\n",
            serde_json::to_string(AGENT)?,
            emu.base
        ),
    )?;
    // The credential proxy trusts only the Mozilla roots upstream (DESIGN §10). Behind an
    // intercepting egress proxy (its CA in this machine's bundle, named by `SSL_CERT_FILE`),
    // the registries' hosts get `[upstreams]` overrides to themselves that also trust that
    // bundle; `CACHE_BENCH_CA_FILE` names another file, an empty value turns this off.
    let ca_file = std::env::var("CACHE_BENCH_CA_FILE")
        .or_else(|_| std::env::var("SSL_CERT_FILE"))
        .unwrap_or_default();
    if !ca_file.is_empty() {
        let mut toml = String::new();
        for host in REGISTRY_HOSTS {
            toml.push_str(&format!(
                "[upstreams.\"{host}\"]\naddress = \"{host}:443\"\nca_file = {}\n",
                serde_json::to_string(&ca_file)?
            ));
        }
        std::fs::write(home.join("proxy.toml"), toml)?;
        println!("registry hosts' upstream TLS also trusts {ca_file}");
    }
    let daemon = common::Daemon::start(
        &clauderon,
        &home,
        &[],
        Stdio::from(std::fs::File::create(work.join("daemon.log"))?),
    )?;
    let b = Bench { clauderon, home };
    let result = (|| -> Result<(), BoxError> {
        for (kind, target) in [("cargo", 0.80), ("npm", 0.70)] {
            if only.as_deref().is_some_and(|o| o != kind) {
                continue;
            }
            let tpl = work.join(format!("{kind}-template"));
            println!("{kind}: {}", template(kind, &tpl)?);
            let mut savings = Vec::new();
            let mut phases = [Vec::new(), Vec::new(), Vec::new()];
            for i in 0..pairs {
                let p = pair(&b, kind, &tpl, &work, i)?;
                savings.push(1.0 - (p[1] + p[2]) / p[0]);
                for (v, x) in phases.iter_mut().zip(p) {
                    v.push(x);
                }
            }
            let [cold, restore, warm] = phases.map(median);
            println!(
                "{kind} (median of {pairs} pairs): T_cold {cold:.1}s, T_restore {restore:.2}s, \
                 T_warm {warm:.2}s; saving {:.1}% (target >= {:.0}%)",
                median(savings) * 100.0,
                target * 100.0
            );
            if kind == "npm" {
                let (cold, warm) = npm_on_this_host(&tpl, &work)?;
                println!(
                    "npm ci on this host, no sandbox, no proxy: cold (empty npm cache) \
                     {cold:.1}s, then with that full cache in a fresh directory {warm:.2}s: \
                     a perfect cache restored in no time would save {:.1}% here",
                    (1.0 - warm / cold) * 100.0
                );
            }
        }
        Ok(())
    })();
    drop(daemon);
    drop(emu);
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        eprintln!("kept {} for a look", work.display());
    }
    result
}
