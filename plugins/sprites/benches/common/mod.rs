//! What the Sprites benches share: the built artifacts of this profile, an emulator child
//! process, and the Sprites plugin loaded through the host's own loader.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use clauderon::plugins::{
    Candidate, DiscoverySource, HostSetup, PluginClient, PluginRegistry, SecretDecl, SecretLookup,
};

/// The token every bench's emulator accepts.
pub const TOKEN: &str = "bench-token";

/// Errors of a bench.
pub type BoxError = Box<dyn std::error::Error>;

struct TokenLookup;

impl SecretLookup for TokenLookup {
    fn lookup(&self, _plugin: &str, _secret: &SecretDecl) -> Result<Option<String>, String> {
        Ok(Some(TOKEN.to_owned()))
    }
}

/// `target/<profile>`.
pub fn profile_dir() -> Result<PathBuf, BoxError> {
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .and_then(Path::parent)
        .ok_or("bench binary is not in target/<profile>/deps")?
        .to_path_buf())
}

/// `target/<profile>/<bin>`, built with cargo if missing.
pub fn built(dir: &Path, package: &str, bin: &str) -> Result<PathBuf, BoxError> {
    let path = dir.join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo.args(["build", "-p", package, "--quiet"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        if !cargo.status()?.success() {
            return Err(format!("building {package} failed").into());
        }
    }
    Ok(path)
}

/// The Sprites plugin library of this profile (it must have been built).
pub fn plugin_library(dir: &Path) -> Result<PathBuf, BoxError> {
    let lib = dir.join(format!(
        "{}clauderon_sprites{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    if !lib.exists() {
        return Err(format!(
            "{} is missing; build it first (cargo build --release -p clauderon-sprites)",
            lib.display()
        )
        .into());
    }
    Ok(lib)
}

/// An emulator child process on a fresh data directory; killed (and its data removed) on drop.
pub struct Emu {
    child: Child,
    data: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Emu {
    /// Starts `target/<profile>/sprites-emulator` with `args` besides listen, data and token.
    pub fn start(dir: &Path, args: &[&str]) -> Result<Emu, BoxError> {
        let emulator = built(dir, "sprites-emulator", "sprites-emulator")?;
        let data = std::env::temp_dir().join(format!(
            "sprites-bench-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        let mut child = Command::new(&emulator)
            .args(["--listen", "127.0.0.1:0", "--token", TOKEN, "--data"])
            .arg(&data)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
        Ok(Emu {
            child,
            data,
            base: format!("http://{}", line.trim()),
        })
    }

    /// The emulator's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The emulator's data directory.
    pub fn data(&self) -> &Path {
        &self.data
    }
}

impl Drop for Emu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// The Sprites plugin at `lib`, loaded through the host's registry, pointed at `base`.
pub fn load_plugin(lib: &Path, base: &str) -> Result<Arc<PluginClient>, BoxError> {
    let mut config = BTreeMap::new();
    config.insert("sprites".to_owned(), serde_json::json!({ "api_url": base }));
    let registry = PluginRegistry::from_candidates(
        vec![Candidate {
            name: "sprites".into(),
            path: lib.to_path_buf(),
            source: DiscoverySource::PluginPath,
        }],
        HostSetup {
            secrets: Arc::new(TokenLookup),
            plugin_config: Arc::new(config),
        },
    );
    Ok(registry.get("sprites").map_err(|e| e.to_string())?)
}

/// Makes `home` a clauderon home for a bench: the emulator's token as the Sprites secret
/// (`secrets/` 0700, the file 0600, as the host requires) and `config` as `config.toml`.
pub fn bench_home(home: &Path, config: &str) -> Result<(), BoxError> {
    use std::os::unix::fs::PermissionsExt as _;
    let secrets = home.join("secrets");
    std::fs::create_dir_all(&secrets)?;
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700))?;
    let key = secrets.join("sprites_api_key");
    std::fs::write(&key, TOKEN)?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    std::fs::write(home.join("config.toml"), config)?;
    Ok(())
}

/// A `clauderon daemon` child on a bench home; killed on drop.
pub struct Daemon {
    child: Child,
}

impl Daemon {
    /// Starts `clauderon daemon` on `home` with `env` and its stderr to `stderr`, and waits
    /// (up to 30 s) until it has written `daemon.json`.
    pub fn start(
        clauderon: &Path,
        home: &Path,
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Result<Daemon, BoxError> {
        let mut cmd = Command::new(clauderon);
        cmd.env("CLAUDERON_HOME", home)
            .env_remove("CLAUDERON_PLUGIN_PATH")
            .arg("daemon")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let daemon = Daemon {
            child: cmd.spawn()?,
        };
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !home.join("daemon.json").exists() {
            if std::time::Instant::now() > until {
                return Err("the daemon did not start".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(daemon)
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to completion; its stdout, or an error naming `what` with its output.
pub fn run(cmd: &mut Command, what: &str) -> Result<String, BoxError> {
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `git -C dir args...` as the bench's identity; its stdout.
pub fn git(dir: &Path, args: &[&str]) -> Result<String, BoxError> {
    run(
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@example.invalid",
            ])
            .args(args),
        &format!("git {args:?}"),
    )
}

/// The median of some durations (in seconds).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
