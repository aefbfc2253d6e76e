//! Session names: short, human, unique among live sessions, safe in URLs, hostnames and shells.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// The longest accepted name (it must fit in a DNS label with a suffix added by a backend).
pub const MAX_NAME_LEN: usize = 40;

/// A validated session name: 1 to 40 of `a-z`, `0-9` and `-`, starting with a letter or digit
/// and not ending with `-`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct SessionName(String);

/// Why a string is not a valid session name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionNameError {
    /// The name is empty.
    #[error("session name is empty; give a name such as `my-fix` (a-z, 0-9, -)")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`].
    #[error("session name is {0} characters long; at most {MAX_NAME_LEN} are allowed")]
    TooLong(usize),
    /// The name holds a character outside `a-z0-9-`.
    #[error(
        "session name `{name}` contains {ch:?}; use only lowercase letters a-z, digits 0-9 and `-`"
    )]
    BadChar {
        /// The offending name.
        name: String,
        /// The first bad character.
        ch: char,
    },
    /// The name starts or ends with `-`.
    #[error("session name `{0}` must start with a letter or digit and not end with `-`")]
    BadEdge(String),
}

impl SessionName {
    /// Validates `s` as a session name.
    pub fn new(s: &str) -> Result<Self, SessionNameError> {
        if s.is_empty() {
            return Err(SessionNameError::Empty);
        }
        let len = s.chars().count();
        if len > MAX_NAME_LEN {
            return Err(SessionNameError::TooLong(len));
        }
        if let Some(ch) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(SessionNameError::BadChar {
                name: s.to_string(),
                ch,
            });
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(SessionNameError::BadEdge(s.to_string()));
        }
        Ok(Self(s.to_string()))
    }

    /// A name derived from a repository path or URL: its last component without `.git`,
    /// lowercased, with every other character turned into `-` (`My_Repo.git` → `my-repo`).
    /// Falls back to `session` when nothing usable is left.
    pub fn from_repo(repo: &str) -> Self {
        let trimmed = repo.trim_end_matches(['/', '\\']);
        let last = Path::new(trimmed)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        // URLs such as git@github.com:me/repo.git: take what follows the last ':' or '/'.
        let last = last.rsplit([':', '/']).next().unwrap_or_default();
        let last = last.strip_suffix(".git").unwrap_or(last);
        Self::sanitize(last)
    }

    /// Turns any string into a valid name, as [`SessionName::from_repo`] does for a component.
    pub fn sanitize(raw: &str) -> Self {
        let mut out = String::new();
        for c in raw.chars() {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                out.push(c);
            } else if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
        }
        out.truncate(MAX_NAME_LEN);
        let out = out.trim_matches('-');
        if out.is_empty() {
            Self("session".to_string())
        } else {
            Self(out.to_string())
        }
    }

    /// This name with `-n` appended (shortened to fit), used to make a derived name unique.
    pub fn with_suffix(&self, n: u32) -> Self {
        let suffix = format!("-{n}");
        let mut base = self.0.clone();
        base.truncate(MAX_NAME_LEN - suffix.len());
        let base = base.trim_end_matches('-');
        Self(format!("{base}{suffix}"))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SessionName {
    type Err = SessionNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for SessionName {
    type Error = SessionNameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<SessionName> for String {
    fn from(n: SessionName) -> Self {
        n.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates() {
        assert_eq!(SessionName::new("fix-1").unwrap().as_str(), "fix-1");
        assert_eq!(SessionName::new(""), Err(SessionNameError::Empty));
        assert!(matches!(
            SessionName::new("Fix"),
            Err(SessionNameError::BadChar { ch: 'F', .. })
        ));
        assert!(matches!(
            SessionName::new("a b"),
            Err(SessionNameError::BadChar { ch: ' ', .. })
        ));
        assert!(matches!(
            SessionName::new("-a"),
            Err(SessionNameError::BadEdge(_))
        ));
        assert!(matches!(
            SessionName::new("a-"),
            Err(SessionNameError::BadEdge(_))
        ));
        assert_eq!(
            SessionName::new(&"a".repeat(41)),
            Err(SessionNameError::TooLong(41))
        );
        let msg = SessionName::new("a/b").unwrap_err().to_string();
        assert!(msg.contains("lowercase letters"), "{msg}");
    }

    #[test]
    fn derives_from_repo() {
        for (repo, want) in [
            ("/home/me/My_Repo.git", "my-repo"),
            ("/home/me/clauderon/", "clauderon"),
            ("git@github.com:me/Some.Thing.git", "some-thing"),
            ("https://github.com/me/x--y", "x-y"),
            ("/", "session"),
            ("...", "session"),
        ] {
            assert_eq!(SessionName::from_repo(repo).as_str(), want, "{repo}");
        }
        let long = SessionName::from_repo(&"b".repeat(100));
        assert_eq!(long.as_str().len(), MAX_NAME_LEN);
        let s = long.with_suffix(12);
        assert_eq!(s.as_str().len(), MAX_NAME_LEN);
        assert!(s.as_str().ends_with("-12"));
        assert!(SessionName::new(s.as_str()).is_ok());
    }
}
