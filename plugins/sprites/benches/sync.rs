//! The two-way sync end to end: the real `clauderon` daemon with this plugin, a session created
//! with `--sync` against the emulator on loopback (the demo agent in the sprite), each number
//! printed next to a baseline measured in the same run, as a ratio:
//!
//! - edit propagation, both ways: a save in the local worktree until it is in the sprite's
//!   workspace, and a write in the sprite until it is in the worktree (p50/p99; targets p50 ≤
//!   300 ms, p99 ≤ 1 s). Baseline: the same content written by one exec (`cat > file`) through
//!   the Sprites API, timed the same way.
//! - initial sync of 10,000 files / 100 MB (the sync stopped while they are written, then
//!   started): until the sync has agreed on every file. Baseline: `tar c | tar x` of the same
//!   files pushed through one exec stream of the same API (target within 1.5x). Rounds of
//!   both alternate, each a true initial sync of a new tree beside the same base (the last
//!   round's files are removed from both sides first; `SYNC_BENCH_ROUNDS`, 3), and the median ratio is the
//!   result. Each timed phase starts once the daemon and the helper have used no CPU for
//!   200 ms (a sync's last scans must not run into tar's time). Where the trees live is
//!   `TMPDIR`: on an ext4 without a journal (this VM's root) the inode allocator skips
//!   recently deleted inodes one by one, which moves both numbers by 2-5x from one run to the
//!   next; a journaled filesystem gives steady numbers.
//! - idle CPU over 60 s of an unchanged tree (`SYNC_BENCH_IDLE_SECS`): the daemon and the
//!   sprite-side helper with the helper's stream open. Baseline: the same daemon over the same
//!   time with the sync stopped.
//!
//! Both sides are read on the host's disk (the emulator keeps each sprite's files under its
//! data directory), polled every millisecond, so reading adds no API traffic.
//!
//! `cargo build --release -p clauderon -p clauderon-sprites -p sprites-emulator && cargo bench
//! -p clauderon-sprites --bench sync`. `SYNC_BENCH_FILES` / `SYNC_BENCH_FILE_SIZE` change the
//! initial sync's tree, `SYNC_BENCH_POLL_MS` how often it is checked (20), and
//! `SYNC_BENCH_DAEMON_LOG=FILE` keeps the daemon's log (with `CLAUDERON_LOG=info`). Run without `--bench` it is a quick smoke run (small
//! sizes, 2 s idle).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clauderon_sprites::client::{SpritesClient, Token};
use common::{BoxError, TOKEN, git};
use tokio::io::AsyncWriteExt;

const WORKSPACE: &str = "home/sprite/workspace";

/// Sizes of one run.
struct Plan {
    edits: usize,
    files: usize,
    file_size: usize,
    rounds: usize,
    idle: Duration,
}

fn main() -> Result<(), BoxError> {
    let full = std::env::args().any(|a| a == "--bench");
    let plan = if full {
        Plan {
            edits: 100,
            files: 10_000,
            file_size: 10_000,
            rounds: 3,
            idle: Duration::from_secs(
                std::env::var("SYNC_BENCH_IDLE_SECS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(60),
            ),
        }
    } else {
        Plan {
            edits: 5,
            files: 200,
            file_size: 1000,
            rounds: 1,
            idle: Duration::from_secs(2),
        }
    };
    // `SYNC_BENCH_FILES`, `SYNC_BENCH_FILE_SIZE`: another initial sync.
    let plan = Plan {
        files: std::env::var("SYNC_BENCH_FILES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(plan.files),
        file_size: std::env::var("SYNC_BENCH_FILE_SIZE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(plan.file_size),
        rounds: std::env::var("SYNC_BENCH_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(plan.rounds),
        ..plan
    };
    let dir = common::profile_dir()?;
    common::plugin_library(&dir)?;
    let clauderon = common::built(&dir, "clauderon", "clauderon")?;
    let emu = common::Emu::start(&dir, &[])?;
    let tmp = std::env::temp_dir().join(format!("sync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let result = run(&plan, &clauderon, &emu, &tmp);
    drop(emu);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// Runs the CLI with `home`; its stdout, or an error with its output.
fn cli(clauderon: &Path, home: &Path, args: &[&str]) -> Result<String, BoxError> {
    common::run(
        Command::new(clauderon)
            .env("CLAUDERON_HOME", home)
            .env_remove("CLAUDERON_PLUGIN_PATH")
            .env_remove("CLAUDERON_BACKEND")
            .args(args)
            .stdin(Stdio::null()),
        &format!("clauderon {args:?}"),
    )
}

fn sync_state(clauderon: &Path, home: &Path) -> Result<serde_json::Value, BoxError> {
    Ok(serde_json::from_str(&cli(
        clauderon,
        home,
        &["--json", "sync", "sb"],
    )?)?)
}

/// The sync's state straight from the daemon's API (`GET /api/sessions/sb/sync`): polling
/// through the CLI would start a process every few milliseconds, on the same two cores as the
/// sync being timed.
fn sync_state_api(
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    home: &Path,
) -> Result<serde_json::Value, BoxError> {
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("daemon.json"))?)?;
    let addr = info["addr"].as_str().ok_or("daemon.json has no addr")?;
    let token = std::fs::read_to_string(home.join("api-token"))?;
    rt.block_on(async {
        let r = http
            .get(format!("http://{addr}/api/sessions/sb/sync"))
            .bearer_auth(token.trim())
            .send()
            .await?
            .error_for_status()?;
        Ok(r.json().await?)
    })
}

fn run(plan: &Plan, clauderon: &Path, emu: &common::Emu, tmp: &Path) -> Result<(), BoxError> {
    let (base, data) = (&emu.base, emu.data());
    let home = tmp.join("home");
    let agent = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/demo-agent/clauderon-demo-agent")
        .canonicalize()?;
    common::bench_home(
        &home,
        &format!(
            "default_backend = \"sprites\"\n[server]\nlisten = \"127.0.0.1:0\"\n\
             [agent]\npreset = \"custom\"\n\
             command = [\"/home/sprite/.clauderon/bin/clauderon-demo-agent\"]\n\
             prompt_args = [\"{{prompt}}\"]\n\
             files = {{ \".clauderon/bin/clauderon-demo-agent\" = \"{}\" }}\n\
             [sprites]\napi_url = \"{base}\"\n",
            agent.display()
        ),
    )?;
    // The helper's stream stays open through the idle measurement (the worst case).
    let daemon = common::Daemon::start(
        clauderon,
        &home,
        &[("CLAUDERON_SYNC_QUIET_MS", "3600000")],
        match std::env::var_os("SYNC_BENCH_DAEMON_LOG") {
            Some(path) => Stdio::from(std::fs::File::create(path)?),
            None => Stdio::null(),
        },
    )?;
    let daemon_pid = daemon.pid();
    let repo = tmp.join("repo");
    std::fs::create_dir_all(&repo)?;
    git(&repo, &["init", "-q", "-b", "main"])?;
    std::fs::write(repo.join("README.md"), "bench\n")?;
    git(&repo, &["add", "README.md"])?;
    git(&repo, &["commit", "-qm", "first"])?;
    let repo_s = repo.to_str().ok_or("temp path is not UTF-8")?;
    cli(
        clauderon,
        &home,
        &[
            "create",
            "--repo",
            repo_s,
            "--prompt",
            "bench",
            "--name",
            "sb",
            "--sync",
            "--hibernation-timeout",
            "never",
        ],
    )?;
    let wt = home.join("worktrees").join("sb");
    let sprite = std::fs::read_dir(data.join("sprites"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .ok_or("no sprite in the emulator's data")?;
    let remote = data
        .join("sprites")
        .join(&sprite)
        .join("root")
        .join(WORKSPACE);
    wait_for(&remote.join("DEMO_AGENT.md"), None, Duration::from_secs(30))?;

    // Edit propagation.
    let rt = tokio::runtime::Runtime::new()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = SpritesClient::builder()
        .base_url(base)
        .token(Token::new(TOKEN))
        .build()?;
    let up = propagation(plan.edits, &wt, &remote, "up")?;
    let down = propagation(plan.edits, &remote, &wt, "down")?;
    let exec = rt.block_on(exec_writes(&client, &sprite, &remote, plan.edits))?;
    let (e50, e99) = (pct(&exec, 50), pct(&exec, 99));
    for (what, v) in [
        ("local save -> sprite", &up),
        ("sprite write -> local", &down),
    ] {
        let (p50, p99) = (pct(v, 50), pct(v, 99));
        println!(
            "edit propagation, {what} ({} edits): p50 {:.1} ms, p99 {:.1} ms; one exec writing \
             the file p50 {:.1} ms, p99 {:.1} ms; ratio p50 {:.2}x, p99 {:.2}x",
            v.len(),
            ms(p50),
            ms(p99),
            ms(e50),
            ms(e99),
            ratio(p50, e50),
            ratio(p99, e99)
        );
    }

    // Initial sync of many files, against tar through one exec, in alternating rounds (each
    // a new tree beside the same base, the last round's removed from both sides; dirty pages
    // flushed before each timed phase: the host filesystem's state moves both numbers a lot
    // between runs).
    let mut ratios = Vec::new();
    let http = reqwest::Client::new();
    for round in 1..=plan.rounds {
        let name = format!("bulk{round}");
        cli(clauderon, &home, &["sync", "sb", "--stop"])?;
        let bulk = wt.join(&name);
        write_tree(&bulk, plan.files, plan.file_size)?;
        let before = sync_state(clauderon, &home)?["synced"]
            .as_u64()
            .unwrap_or(0);
        flush_disks()?;
        settle(daemon_pid)?;
        // While the sync was stopped the daemon counted the new files as pending, hashing
        // them; a first sync has no hashes yet. A new ctime on every file makes the timed
        // sync hash them all again.
        touch_every_file(&bulk)?;
        let d0 = cpu_ms(daemon_pid)?;
        let e0 = own_cpu_ms(emu.pid())?;
        let t = Instant::now();
        cli(clauderon, &home, &["sync", "sb", "--start"])?;
        loop {
            let st = sync_state_api(&rt, &http, &home)?;
            if st["synced"].as_u64().unwrap_or(0) >= before + plan.files as u64 {
                break;
            }
            if t.elapsed() > Duration::from_secs(900) {
                return Err(format!("the initial sync did not finish: {st}").into());
            }
            std::thread::sleep(Duration::from_millis(
                std::env::var("SYNC_BENCH_POLL_MS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(20),
            ));
        }
        let synced = t.elapsed();
        let daemon_cpu = cpu_ms(daemon_pid)? - d0;
        let emu_cpu = own_cpu_ms(emu.pid())? - e0;
        // A new helper each round (the stop closed the last one's stream): its CPU is this sync's.
        let helper_cpu = helper_pid().map(cpu_ms).transpose()?.unwrap_or(0);
        let remote_files = count_files(&remote.join(&name))?;
        if remote_files != plan.files {
            return Err(format!("{remote_files} of {} files in the sprite", plan.files).into());
        }
        // The sync's aftermath (its next scans, the helper's own stamps) must not run into the
        // baseline's time.
        flush_disks()?;
        settle(daemon_pid)?;
        let e0 = own_cpu_ms(emu.pid())?;
        let tar = rt.block_on(tar_push(&client, &sprite, &wt, &name))?;
        let emu_tar_cpu = own_cpu_ms(emu.pid())? - e0;
        let mb = (plan.files * plan.file_size) as f64 / 1e6;
        println!(
            "initial sync of {} files / {mb:.0} MB, round {round}: {:.2} s (CPU: daemon {} ms, \
             helper {} ms, emulator {} ms); tar c | tar x through one exec {:.2} s (CPU: \
             emulator {} ms); ratio {:.2}x",
            plan.files,
            synced.as_secs_f64(),
            daemon_cpu,
            helper_cpu,
            emu_cpu,
            tar.as_secs_f64(),
            emu_tar_cpu,
            ratio(synced, tar)
        );
        ratios.push(ratio(synced, tar));
        // The next round starts from the same tree: both copies go while the sync is stopped
        // (gone on both sides is agreed, not a deletion to propagate), and one cycle drops
        // them from the ancestor.
        cli(clauderon, &home, &["sync", "sb", "--stop"])?;
        std::fs::remove_dir_all(&bulk)?;
        std::fs::remove_dir_all(remote.join(&name))?;
        std::fs::remove_dir_all(tar_dir(data, &sprite, &name))?;
        cli(clauderon, &home, &["sync", "sb", "--start"])?;
        let t = Instant::now();
        while sync_state_api(&rt, &http, &home)?["synced"]
            .as_u64()
            .unwrap_or(0)
            > before
        {
            if t.elapsed() > Duration::from_secs(60) {
                return Err("the removed round's files stayed in the sync state".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    println!(
        "initial sync: median ratio to tar over {} round(s) {:.2}x",
        ratios.len(),
        common::median(ratios)
    );

    // Idle CPU with the helper's stream open, then the same daemon with the sync stopped.
    cli(clauderon, &home, &["sync", "sb", "--once"])?;
    std::thread::sleep(Duration::from_secs(1));
    let helper = helper_pid().ok_or("no sync helper is running")?;
    let (d0, h0) = (cpu_ms(daemon_pid)?, cpu_ms(helper)?);
    std::thread::sleep(plan.idle);
    let (d1, h1) = (cpu_ms(daemon_pid)?, cpu_ms(helper)?);
    cli(clauderon, &home, &["sync", "sb", "--stop"])?;
    std::thread::sleep(Duration::from_secs(1));
    let b0 = cpu_ms(daemon_pid)?;
    std::thread::sleep(plan.idle);
    let b1 = cpu_ms(daemon_pid)?;
    let secs = plan.idle.as_secs();
    println!(
        "idle CPU over {secs} s, unchanged tree: daemon {} ms, helper {} ms (stream open); \
         the daemon with the sync stopped {} ms; ratio {:.2}x",
        d1 - d0,
        h1 - h0,
        b1 - b0,
        (d1 - d0) as f64 / ((b1 - b0) as f64).max(1.0)
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

/// The `p`th percentile (nearest rank).
fn pct(v: &[Duration], p: usize) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    let i = (s.len() * p).div_ceil(100).saturating_sub(1);
    s.get(i).copied().unwrap_or_default()
}

/// Polls `path` every millisecond until it holds `want` (or, with `None`, exists).
fn wait_for(path: &Path, want: Option<&[u8]>, limit: Duration) -> Result<(), BoxError> {
    let until = Instant::now() + limit;
    loop {
        match (std::fs::read(path), want) {
            (Ok(_), None) => return Ok(()),
            (Ok(b), Some(w)) if b == w => return Ok(()),
            _ => {}
        }
        if Instant::now() > until {
            return Err(format!("{} did not arrive within {limit:?}", path.display()).into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `n` edits written in `from`, each timed until it is in `to`.
fn propagation(n: usize, from: &Path, to: &Path, tag: &str) -> Result<Vec<Duration>, BoxError> {
    let mut v = Vec::with_capacity(n);
    let name = format!("edit-{tag}.txt");
    for i in 0..n {
        let text = format!("{tag} {i} {:?}\n", Instant::now());
        let t = Instant::now();
        std::fs::write(from.join(&name), &text)?;
        wait_for(
            &to.join(&name),
            Some(text.as_bytes()),
            Duration::from_secs(10),
        )?;
        v.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(v)
}

/// The baseline of an edit: one exec that writes the file, timed until it is on disk.
async fn exec_writes(
    client: &SpritesClient,
    sprite: &str,
    remote: &Path,
    n: usize,
) -> Result<Vec<Duration>, BoxError> {
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let text = format!("exec {i} {:?}\n", Instant::now());
        let t = Instant::now();
        let mut child = client
            .sprite(sprite)
            .command("sh")
            .args(["-c", "cat > /home/sprite/workspace/.exec-edit.tmp && mv /home/sprite/workspace/.exec-edit.tmp /home/sprite/workspace/exec-edit.txt"])
            .stdin(true)
            .spawn()
            .await?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        stdin.write_all(text.as_bytes()).await?;
        stdin.shutdown().await?;
        drop(stdin);
        let _ = child.stdout.take();
        let _ = child.stderr.take();
        child.wait().await?;
        wait_for(
            &remote.join("exec-edit.txt"),
            Some(text.as_bytes()),
            Duration::from_secs(10),
        )?;
        v.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(v)
}

/// `files` files of `size` bytes (content that does not compress) in 100 directories.
fn write_tree(dir: &Path, files: usize, size: usize) -> Result<(), BoxError> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..files {
        let d = dir.join(format!("d{:03}", i % 100));
        std::fs::create_dir_all(&d)?;
        let mut b = vec![0u8; size];
        for chunk in b.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        std::fs::write(d.join(format!("f{i:05}.bin")), b)?;
    }
    Ok(())
}

/// Gives every file below `dir` a new ctime (its mode set again), so no hash cached for it is
/// trusted.
fn touch_every_file(dir: &Path) -> Result<(), BoxError> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let meta = e.metadata()?;
        if meta.is_dir() {
            touch_every_file(&e.path())?;
        } else {
            std::fs::set_permissions(e.path(), meta.permissions())?;
        }
    }
    Ok(())
}

/// Writes every dirty page to disk (`sync`), so a timed phase does not pay for the last one's
/// writeback.
/// Waits (at most 10 s) until the daemon and any sync helper used no CPU for 200 ms, so a
/// timed phase starts on a quiet machine.
fn settle(daemon: u32) -> Result<(), BoxError> {
    let busy = || -> Result<u64, BoxError> {
        // A helper that ends meanwhile (a stopped sync's) counts as idle.
        let helper = helper_pid().and_then(|p| cpu_ms(p).ok()).unwrap_or(0);
        Ok(cpu_ms(daemon)? + helper)
    };
    let until = Instant::now() + Duration::from_secs(10);
    let mut last = busy()?;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
        let now = busy()?;
        if now == last {
            return Ok(());
        }
        last = now;
    }
    Ok(())
}

fn flush_disks() -> Result<(), BoxError> {
    let st = Command::new("sync").status()?;
    if !st.success() {
        return Err("sync failed".into());
    }
    Ok(())
}

fn count_files(dir: &Path) -> Result<usize, BoxError> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            n += count_files(&e.path())?;
        } else {
            n += 1;
        }
    }
    Ok(n)
}

/// The baseline of the initial sync: `tar c` of the same files into one exec running `tar x`.
async fn tar_push(
    client: &SpritesClient,
    sprite: &str,
    wt: &Path,
    name: &str,
) -> Result<Duration, BoxError> {
    let t = Instant::now();
    let mut tar = tokio::process::Command::new("tar")
        .arg("c")
        .arg("-C")
        .arg(wt)
        .arg(name)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = tar.stdout.take().ok_or("no tar stdout")?;
    let mut child = client
        .sprite(sprite)
        .command("sh")
        .args([
            "-c",
            &format!(
                "mkdir -p /home/sprite/tarbase-{name} && tar x -C /home/sprite/tarbase-{name}"
            ),
        ])
        .stdin(true)
        .spawn()
        .await?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    tokio::io::copy(&mut out, &mut stdin).await?;
    stdin.shutdown().await?;
    drop(stdin);
    let _ = child.stdout.take();
    let _ = child.stderr.take();
    let code = child.wait().await?;
    tar.wait().await?;
    if code != 0 {
        return Err(format!("tar x in the sprite exited {code}").into());
    }
    Ok(t.elapsed())
}

/// Where [`tar_push`] unpacked round `name` (on the host, in the emulator's data).
fn tar_dir(data: &Path, sprite: &str, name: &str) -> std::path::PathBuf {
    data.join("sprites")
        .join(sprite)
        .join("root")
        .join(format!("home/sprite/tarbase-{name}"))
}

/// The host pid of the sprite-side sync helper (`clauderon-relay sync ...`).
fn helper_pid() -> Option<u32> {
    // The newest one, should an older helper still be ending.
    let mut best: Option<(u64, u32)> = None;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let mut args = cmd.split(|b| *b == 0);
        if args.next().is_some_and(|a| a.ends_with(b"clauderon-relay"))
            && args.next() == Some(b"sync")
        {
            // Field 22 of /proc/PID/stat: when the process started.
            let started = std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|st| {
                    st.rsplit_once(')')
                        .and_then(|(_, r)| r.split_whitespace().nth(19)?.parse().ok())
                })
                .unwrap_or(0);
            if best.is_none_or(|(s, _)| started > s) {
                best = Some((started, pid));
            }
        }
    }
    best.map(|(_, pid)| pid)
}

/// CPU time of `pid` itself, without its waited-for children (the emulator's: the sandboxes
/// it runs are counted apart), in ms.
fn own_cpu_ms(pid: u32) -> Result<u64, BoxError> {
    stat_ms(pid, 11..13)
}

/// CPU time (user + system, and of waited-for children) of `pid`, in ms.
fn cpu_ms(pid: u32) -> Result<u64, BoxError> {
    stat_ms(pid, 11..15)
}

/// The sum of `/proc/PID/stat` time fields `range` (counted from field 3), in milliseconds.
fn stat_ms(pid: u32, range: std::ops::Range<usize>) -> Result<u64, BoxError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("bad /proc stat")?;
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime, stime, cutime, cstime are fields 14-17, i.e. 11-14 here.
    let ticks: u64 = f.get(range).ok_or("short /proc stat")?.iter().sum();
    let hz = 100; // USER_HZ on Linux
    Ok(ticks * 1000 / hz)
}
