//! `$CLAUDERON_HOME`: where every host file lives, and writing private files atomically.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The environment variable that overrides the home directory (tests always set it).
pub const HOME_ENV: &str = "CLAUDERON_HOME";

/// Errors from locating or preparing the home directory.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// Neither `CLAUDERON_HOME` nor `HOME` is set, so there is nowhere to put state.
    #[error(
        "cannot find the clauderon home: neither {HOME_ENV} nor HOME is set; set {HOME_ENV}=/path/to/dir"
    )]
    NoHome,
    /// A directory could not be created.
    #[error("cannot create directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },
}

/// The clauderon home directory and the paths of every file in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// A home rooted at `root` (nothing is created until [`Home::ensure`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `$CLAUDERON_HOME` if set and non-empty, else `~/.clauderon`.
    pub fn from_env() -> Result<Self, HomeError> {
        Self::from_vars(
            std::env::var_os(HOME_ENV).map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        )
    }

    /// The rule behind [`Home::from_env`], taking the two variables explicitly.
    pub fn from_vars(
        clauderon_home: Option<PathBuf>,
        home: Option<PathBuf>,
    ) -> Result<Self, HomeError> {
        let root = match (clauderon_home, home) {
            (Some(p), _) if !p.as_os_str().is_empty() => p,
            (_, Some(h)) if !h.as_os_str().is_empty() => h.join(".clauderon"),
            _ => return Err(HomeError::NoHome),
        };
        // A relative home would move with the working directory; pin it now.
        Ok(Self::new(std::path::absolute(&root).unwrap_or(root)))
    }

    /// The home directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `config.toml`: host settings, `[plugins]`, `[agent]`, `[server]` and backend tables.
    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// `proxy.toml`: credential rules and `[onepassword.credentials]`.
    pub fn proxy_file(&self) -> PathBuf {
        self.root.join("proxy.toml")
    }
    /// `secrets/`: one secret per file, mode 0600.
    pub fn secrets_dir(&self) -> PathBuf {
        self.root.join("secrets")
    }
    /// `secrets/<name>`.
    pub fn secret_file(&self, name: &str) -> PathBuf {
        self.secrets_dir().join(name)
    }
    /// `db.sqlite`: the session store.
    pub fn db_file(&self) -> PathBuf {
        self.root.join("db.sqlite")
    }
    /// `plugins/`: plugin libraries found by discovery.
    pub fn plugins_dir(&self) -> PathBuf {
        self.root.join("plugins")
    }
    /// `cache/`: the build-cache store.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }
    /// `daemon.json`: where the running daemon listens.
    pub fn daemon_file(&self) -> PathBuf {
        self.root.join("daemon.json")
    }
    /// `api-token`: the bearer token the CLI presents (0600).
    pub fn api_token_file(&self) -> PathBuf {
        self.root.join("api-token")
    }
    /// `installation-id`: this home's id, a label on every sandbox it creates (0600).
    pub fn installation_file(&self) -> PathBuf {
        self.root.join("installation-id")
    }
    /// `logs/`.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// Every named path, in display order (used by `config paths`).
    pub fn paths(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("home", self.root.clone()),
            ("config", self.config_file()),
            ("proxy", self.proxy_file()),
            ("secrets", self.secrets_dir()),
            ("database", self.db_file()),
            ("plugins", self.plugins_dir()),
            ("cache", self.cache_dir()),
            ("daemon", self.daemon_file()),
            ("api_token", self.api_token_file()),
            ("installation_id", self.installation_file()),
            ("logs", self.logs_dir()),
        ]
    }

    /// Creates the home and its directories with mode 0700. Existing directories are left as
    /// they are (the secret resolver checks the secrets directory itself).
    pub fn ensure(&self) -> Result<(), HomeError> {
        for dir in [
            self.root.clone(),
            self.secrets_dir(),
            self.plugins_dir(),
            self.cache_dir(),
            self.logs_dir(),
        ] {
            if dir.is_dir() {
                continue;
            }
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|source| HomeError::CreateDir {
                    path: dir.clone(),
                    source,
                })?;
        }
        Ok(())
    }
}

/// An exclusive `flock` on a file of the home (made 0600 when missing), held until dropped;
/// the kernel releases it when the process dies, however it dies. The descriptor is
/// close-on-exec, so a child does not inherit the lock.
#[derive(Debug)]
pub struct FileLock {
    _file: fs::File,
}

impl FileLock {
    /// Takes the lock on `path` if it is free; `Ok(None)` when another process holds it.
    pub fn try_acquire(path: &Path) -> io::Result<Option<FileLock>> {
        use std::os::fd::AsRawFd as _;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)?;
        // SAFETY: flock on a descriptor we own; LOCK_NB never blocks.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(Some(FileLock { _file: file }));
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(err)
        }
    }
}

/// Writes `bytes` to `path` as a 0600 file, atomically: a temporary file in the same directory
/// is created 0600 (never chmod-ed after the fact), written, synced and renamed over `path`.
/// A reader sees either the old content or the new, never a partial or world-readable file.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), HomeError> {
    let err = |source| HomeError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| err(io::Error::new(io::ErrorKind::InvalidInput, "no file name")))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename is durable only once the directory entry is on disk.
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn from_vars_prefers_clauderon_home() {
        let h = Home::from_vars(Some("/x".into()), Some("/home/u".into())).unwrap();
        assert_eq!(h.root(), Path::new("/x"));
        let h = Home::from_vars(Some("".into()), Some("/home/u".into())).unwrap();
        assert_eq!(h.root(), Path::new("/home/u/.clauderon"));
        assert!(matches!(
            Home::from_vars(None, None),
            Err(HomeError::NoHome)
        ));
        assert_eq!(h.db_file(), Path::new("/home/u/.clauderon/db.sqlite"));
        let rel = Home::from_vars(Some("rel/home".into()), None).unwrap();
        assert!(rel.root().is_absolute() && rel.root().ends_with("rel/home"));
        assert_eq!(
            h.secret_file("github_token"),
            Path::new("/home/u/.clauderon/secrets/github_token")
        );
    }

    #[test]
    fn ensure_creates_private_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::new(tmp.path().join("h"));
        home.ensure().unwrap();
        for d in [
            home.root().to_path_buf(),
            home.secrets_dir(),
            home.logs_dir(),
        ] {
            let mode = fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
        home.ensure().unwrap();
    }

    #[test]
    fn write_private_file_is_0600_and_replaces() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("api-token");
        write_private_file(&p, b"one").unwrap();
        write_private_file(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temporary files left behind.
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn write_private_file_reports_path() {
        let e = write_private_file(Path::new("/nonexistent-dir/x"), b"a").unwrap_err();
        assert!(e.to_string().contains("/nonexistent-dir/x"), "{e}");
    }
}
