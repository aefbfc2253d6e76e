//! The installation id: a random id made once per home (`$CLAUDERON_HOME/installation-id`) and
//! put on every sandbox the home's daemon creates, so that several homes sharing one provider
//! account (a laptop and a desktop, a team's org) each act only on their own sandboxes.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::home::{Home, HomeError, write_private_file};

/// Errors from reading or making the installation id.
#[derive(Debug, thiserror::Error)]
pub enum InstallationError {
    /// The file exists and cannot be read.
    #[error("cannot read the installation id {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// The file holds something else than an id.
    #[error(
        "{path} does not hold an installation id (32 lowercase hex digits); restore it from a \
         backup, or remove it to make a new one (sandboxes labelled with the old id then count as \
         another installation's and `clauderon reconcile` leaves them alone)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be made.
    #[error(transparent)]
    Home(#[from] HomeError),
}

/// This home's installation id (32 lowercase hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstallationId(String);

impl InstallationId {
    /// The home's id, made (0600, atomically) the first time it is asked for. Two processes
    /// making it at once agree: the file is published with a hard link, which fails when one
    /// already exists, and the loser reads the winner's.
    pub fn load_or_create(home: &Home) -> Result<InstallationId, InstallationError> {
        let path = home.installation_file();
        if let Some(id) = Self::read(&path)? {
            return Ok(id);
        }
        let fresh = uuid::Uuid::new_v4().simple().to_string();
        let tmp = path.with_file_name(format!(".installation-id.{fresh}"));
        write_private_file(&tmp, format!("{fresh}\n").as_bytes())?;
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(InstallationId(fresh)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Self::read(&path)?.ok_or_else(|| InstallationError::Corrupt { path: path.clone() })
            }
            Err(source) => Err(HomeError::Write { path, source }.into()),
        }
    }

    /// The id in `path`, `None` when there is no such file.
    fn read(path: &Path) -> Result<Option<InstallationId>, InstallationError> {
        match fs::read_to_string(path) {
            Ok(text) => {
                Self::parse(text.trim())
                    .map(Some)
                    .ok_or_else(|| InstallationError::Corrupt {
                        path: path.to_path_buf(),
                    })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(InstallationError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// An id from its text form (32 lowercase hex digits).
    pub fn parse(text: &str) -> Option<InstallationId> {
        (text.len() == 32
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| InstallationId(text.to_owned()))
    }

    /// The id as text (the value of the `clauderon.installation` label).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstallationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let a = InstallationId::load_or_create(&home).unwrap();
        let b = InstallationId::load_or_create(&home).unwrap();
        assert_eq!(a, b);
        assert!(InstallationId::parse(a.as_str()).is_some());
        let meta = fs::metadata(home.installation_file()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let stray: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(stray.is_empty(), "no temporary file is left behind");
    }

    #[test]
    fn threads_racing_to_make_it_agree() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let ids: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| InstallationId::load_or_create(&home).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    }

    #[test]
    fn a_corrupt_file_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        fs::write(home.installation_file(), "not an id\n").unwrap();
        let e = InstallationId::load_or_create(&home)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("installation-id") && e.contains("remove it"),
            "{e}"
        );
        assert_eq!(
            fs::read_to_string(home.installation_file()).unwrap(),
            "not an id\n",
            "the file is kept"
        );
    }
}
