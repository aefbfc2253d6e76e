//! `cargo bench -p clauderon --bench plugin_load`: the time to discover, open, verify and init
//! the Sprites plugin through the real loader, next to a bare `dlopen` of the same file in the
//! same run. Libraries are never unloaded, so every sample loads a fresh copy of the file from
//! its own directory (copying is not timed). Target: under 5 ms per plugin.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clauderon::plugins::{DiscoveryOptions, HostSetup, PluginRegistry, plugin_file_name};

const SAMPLES: usize = 15;

fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("bench binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// The Sprites plugin built with this bench's profile (built here if missing or stale).
fn sprites_library() -> PathBuf {
    let dir = profile_dir();
    let release = dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "clauderon-sprites"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "building clauderon-sprites failed");
    dir.join(plugin_file_name("sprites"))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let lib = sprites_library();
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut bare = Vec::with_capacity(SAMPLES);
    let mut full = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        // Baseline: dlopen of a fresh copy.
        let dir = scratch.path().join(format!("bare-{i}"));
        std::fs::create_dir(&dir).expect("mkdir");
        let path = dir.join(plugin_file_name("sprites"));
        std::fs::copy(&lib, &path).expect("copy");
        let t = Instant::now();
        // SAFETY: the file is the workspace's own plugin.
        let l = unsafe { libloading::Library::new(&path) }.expect("dlopen");
        bare.push(t.elapsed());
        std::mem::forget(l);

        // clauderon: discover in a plugin directory, open, verify the declaration and layout,
        // init (which starts the plugin's runtime).
        let dir = scratch.path().join(format!("full-{i}"));
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::copy(&lib, dir.join(plugin_file_name("sprites"))).expect("copy");
        let opts = DiscoveryOptions {
            plugin_path: Some(dir.clone().into_os_string()),
            ..DiscoveryOptions::default()
        };
        let t = Instant::now();
        let registry = PluginRegistry::discover(&opts, HostSetup::default());
        let client = registry.get("sprites").expect("load sprites");
        full.push(t.elapsed());
        assert_eq!(client.name(), "sprites");
    }
    let b = median(bare);
    let f = median(full);
    let ratio = f.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!(
        "plugin_load ({SAMPLES} fresh copies of {}, median):",
        lib.display()
    );
    println!(
        "  baseline  bare dlopen                        {:>10.3} ms",
        b.as_secs_f64() * 1e3
    );
    println!(
        "  clauderon discover+open+verify+init          {:>10.3} ms",
        f.as_secs_f64() * 1e3
    );
    println!("  ratio     clauderon / bare dlopen            {ratio:>10.2}x");
    println!(
        "  target    < 5 ms per plugin: {}",
        if f < Duration::from_millis(5) {
            "met"
        } else {
            "NOT met"
        }
    );
}
