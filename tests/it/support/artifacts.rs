//! Locating (and, once per test binary, building) the workspace's binaries and plugin libraries.
//!
//! `cargo test --workspace` already builds most of them; the one `cargo build --workspace` here
//! makes sure cdylibs and binaries of every member exist (cargo releases its build lock before
//! it runs test binaries, so building from a test is safe) and is a no-op when they are current.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Paths of the built workspace artifacts for the profile this test binary was built with.
#[derive(Debug)]
pub struct Artifacts {
    /// `target/<profile>`: where cargo places binaries and cdylibs.
    pub dir: PathBuf,
}

impl Artifacts {
    /// The `clauderon` binary.
    pub fn clauderon(&self) -> PathBuf {
        self.dir.join(exe("clauderon"))
    }

    /// The `sprites-emulator` binary.
    pub fn emulator(&self) -> PathBuf {
        self.dir.join(exe("sprites-emulator"))
    }

    /// The static `clauderon-relay` the Sprites plugin carries (its tunnel's in-sandbox relay),
    /// written to a file once per test binary. (`cargo build` also leaves a dynamically linked
    /// `clauderon-relay` in this directory: that one is never uploaded.)
    pub fn relay(&self) -> PathBuf {
        static RELAY: OnceLock<PathBuf> = OnceLock::new();
        RELAY
            .get_or_init(|| {
                use std::os::unix::fs::PermissionsExt;
                let bytes = clauderon_sprites::tunnel::embedded::relay().unwrap_or_else(|| {
                    panic!(
                        "the plugin was built without a static relay: {}",
                        clauderon_sprites::tunnel::embedded::build_note()
                    )
                });
                let dir = self.dir.join("it-static-relay");
                std::fs::create_dir_all(&dir).expect("relay dir");
                let path = dir.join(exe("clauderon-relay"));
                if std::fs::read(&path).is_ok_and(|old| old == bytes) {
                    return path;
                }
                // Written aside and renamed: a relay still running from the old file is fine.
                let tmp = dir.join(format!(".clauderon-relay.{}", std::process::id()));
                std::fs::write(&tmp, bytes).expect("write the static relay");
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
                    .expect("chmod the static relay");
                std::fs::rename(&tmp, &path).expect("move the static relay into place");
                path
            })
            .clone()
    }

    /// A cdylib built from the workspace crate whose library is named `lib_name`
    /// (for example `clauderon_sprites`).
    pub fn cdylib(&self, lib_name: &str) -> PathBuf {
        self.dir.join(dylib_file_name(lib_name))
    }
}

/// A fixture plugin library built from `tests/fixtures/` (library name `lib`).
pub fn fixture(lib: &str) -> PathBuf {
    let p = artifacts().cdylib(lib);
    assert!(p.exists(), "fixture {} was not built", p.display());
    p
}

/// The platform's file name for a cdylib called `lib_name`.
pub fn dylib_file_name(lib_name: &str) -> String {
    format!(
        "{}{lib_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

fn exe(name: &str) -> String {
    format!("{name}{}", std::env::consts::EXE_SUFFIX)
}

/// Builds the workspace once per test binary and returns where its artifacts are.
pub fn artifacts() -> &'static Artifacts {
    static ARTIFACTS: OnceLock<Artifacts> = OnceLock::new();
    ARTIFACTS.get_or_init(|| {
        let dir = profile_dir();
        let release = dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut cmd = Command::new(cargo);
        without_test_env(&mut cmd)
            .current_dir(workspace_root())
            .args(["build", "--workspace", "--quiet"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build for test artifacts");
        assert!(status.success(), "cargo build --workspace failed: {status}");
        Artifacts { dir }
    })
}

/// Removes the variables cargo sets for this test process (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`,
/// ...) from a nested cargo command. Build scripts such as ring's ask to be re-run when those
/// change, and a top-level `cargo build` has them unset: inheriting them would make every test
/// run rebuild ring and everything above it, and the next plain build rebuild it again.
pub fn without_test_env(cmd: &mut Command) -> &mut Command {
    const PREFIXES: [&str; 4] = [
        "CARGO_MANIFEST_",
        "CARGO_PKG_",
        "CARGO_BIN_",
        "CARGO_TARGET_TMPDIR",
    ];
    const EXACT: [&str; 4] = [
        "CARGO_CRATE_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "OUT_DIR",
        "CARGO_RUSTC_CURRENT_DIR",
    ];
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if EXACT.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p)) {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
}

/// `target/<profile>`, found from this test executable's path (`target/<profile>/deps/it-*`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}
