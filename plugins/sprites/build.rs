//! Builds the tunnel relay (`plugins/sprites/relay`) as a static, size-optimised executable and
//! hands it to the plugin, which embeds it (`tunnel::embedded`).
//!
//! Why a nested `cargo build` here: the relay runs inside a sprite, whose C library may be older
//! than the host's, so it must be linked statically. `crt-static` is a target feature, so it can
//! only be set for a whole cargo invocation (`RUSTFLAGS`), never for one crate of a workspace
//! build; the same goes for the size settings we want for the relay alone. So this script runs
//! its own `cargo build -p clauderon-relay` with its own target triple, flags and profile into its
//! own target directory (`target/clauderon-relay-static`, shared by every profile and by
//! check/clippy runs, so it is built once and is a no-op afterwards).
//!
//! The target is `<arch>-unknown-linux-musl` when that target's standard library is installed
//! (`rustup target add x86_64-unknown-linux-musl`; about 0.5 MB), else `<arch>-unknown-linux-gnu`
//! with `+crt-static` (static too, about 1.2 MB: glibc's static parts are larger). When neither
//! builds, the plugin embeds nothing, says so in a cargo warning, and finds a relay file at run
//! time instead (DESIGN §10).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Size-focused settings for the relay only (a custom profile defined on the command line),
/// except for the hashing a sync helper does on every byte it writes: at `opt-level = "z"`
/// SHA-256's rounds are not inlined, which costs the helper about a third more CPU per file.
const PROFILE: &str = "relay-static";
const PROFILE_SETTINGS: [&str; 9] = [
    "profile.relay-static.inherits=\"release\"",
    "profile.relay-static.opt-level=\"z\"",
    "profile.relay-static.lto=true",
    "profile.relay-static.codegen-units=1",
    "profile.relay-static.panic=\"abort\"",
    "profile.relay-static.strip=true",
    "profile.relay-static.debug=false",
    "profile.relay-static.incremental=false",
    "profile.relay-static.package.sha2.opt-level=3",
];

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env("OUT_DIR"));
    let relay_dir = manifest_dir.join("relay");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", relay_dir.join("src").display());
    // The relay's `sync` mode is the sync crate's server.
    let sync_dir = manifest_dir.join("../../sync");
    println!("cargo:rerun-if-changed={}", sync_dir.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        sync_dir.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        relay_dir.join("Cargo.toml").display()
    );
    // Installing the musl target rewrites rustup's component list: build again to use it.
    if let Some(components) = sysroot().map(|s| s.join("lib/rustlib/components"))
        && components.is_file()
    {
        println!("cargo:rerun-if-changed={}", components.display());
    }

    let (bytes, note) = match build(&relay_dir, &out_dir) {
        Ok((bin, triple)) => match std::fs::read(&bin) {
            Ok(b) => (b, format!("static {triple} build")),
            Err(e) => (Vec::new(), format!("cannot read {}: {e}", bin.display())),
        },
        Err(why) => (Vec::new(), why),
    };
    if bytes.is_empty() {
        for line in note.lines().take(12) {
            println!("cargo:warning=clauderon-relay: {line}");
        }
        println!(
            "cargo:warning=clauderon-relay: the plugin embeds no relay; tunnels will look for a static \
             `clauderon-relay` file (see DESIGN §10)"
        );
    }
    write_if_changed(&out_dir.join("clauderon-relay"), &bytes);
    write_if_changed(&out_dir.join("clauderon-relay.note"), note.as_bytes());
}

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("cargo sets {key} for build scripts"))
}

/// Rewrites `path` only when its content changes (an unchanged file keeps its mtime, so the
/// crate that embeds it is not recompiled).
fn write_if_changed(path: &Path, data: &[u8]) {
    if std::fs::read(path).is_ok_and(|old| old == data) {
        return;
    }
    std::fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn rustc() -> String {
    std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned())
}

fn sysroot() -> Option<PathBuf> {
    let out = Command::new(rustc())
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Whether the standard library for `triple` is installed.
fn std_installed(triple: &str) -> bool {
    sysroot().is_some_and(|s| s.join("lib/rustlib").join(triple).join("lib").is_dir())
}

/// `target/clauderon-relay-static` beside the profile directories, found from `OUT_DIR`
/// (`<target>/[<triple>/]<profile>/build/<pkg>-<hash>/out`); `OUT_DIR/relay-target` otherwise.
fn nested_target_dir(out_dir: &Path) -> PathBuf {
    let build = out_dir.ancestors().nth(2);
    match build.filter(|b| b.file_name().is_some_and(|n| n == "build")) {
        Some(b) => match b.parent().and_then(Path::parent) {
            Some(target) => target.join("clauderon-relay-static"),
            None => out_dir.join("relay-target"),
        },
        None => out_dir.join("relay-target"),
    }
}

/// Builds the relay statically; the binary's path and the triple, or why it could not.
fn build(relay_dir: &Path, out_dir: &Path) -> Result<(PathBuf, String), String> {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return Err("the relay runs in Linux sprites; not built for this target".into());
    }
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let musl = format!("{arch}-unknown-linux-musl");
    let gnu = format!("{arch}-unknown-linux-gnu");
    let target_dir = nested_target_dir(out_dir);
    let mut failures = Vec::new();
    let mut tries = Vec::new();
    if std_installed(&musl) {
        tries.push((musl.clone(), ""));
    } else {
        failures.push(format!(
            "the {musl} target is not installed (`rustup target add {musl}` gives a ~0.5 MB relay)"
        ));
    }
    tries.push((gnu, "-C\x1ftarget-feature=+crt-static"));
    for (triple, flags) in tries {
        match cargo_build(relay_dir, &target_dir, &triple, flags) {
            Ok(()) => {
                let bin = target_dir
                    .join(&triple)
                    .join(PROFILE)
                    .join("clauderon-relay");
                return Ok((bin, triple));
            }
            Err(e) => failures.push(format!("building for {triple} failed: {e}")),
        }
    }
    Err(failures.join("\n"))
}

fn cargo_build(
    relay_dir: &Path,
    target_dir: &Path,
    triple: &str,
    flags: &str,
) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    // What cargo tells a build script must not reach the nested build: flags and wrappers of
    // the outer build (clippy's driver, the host's RUSTFLAGS), its target and target directory.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let drop = key.starts_with("CARGO_")
            && !matches!(key, "CARGO_HOME" | "CARGO_MAKEFLAGS" | "CARGO_NET_OFFLINE")
            || matches!(
                key,
                "RUSTFLAGS" | "RUSTC_WORKSPACE_WRAPPER" | "OUT_DIR" | "TARGET" | "HOST"
            );
        if drop {
            cmd.env_remove(key);
        }
    }
    cmd.env("CARGO_ENCODED_RUSTFLAGS", flags)
        .arg("build")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(relay_dir.join("Cargo.toml"))
        .args(["-p", "clauderon-relay", "--bin", "clauderon-relay"])
        .args(["--target", triple, "--profile", PROFILE])
        .arg("--target-dir")
        .arg(target_dir);
    for s in PROFILE_SETTINGS {
        cmd.args(["--config", s]);
    }
    let out = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(err
            .lines()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n"))
    }
}
