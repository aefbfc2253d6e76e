//! Cache keys, as GitHub Actions' cache has them: a project key from the repository, a store
//! key per project and scope (what names the backend's store), and per entry an exact key
//! plus ordered restore prefixes (the newest entry matching the first prefix that matches
//! anything wins). Entries are immutable: a key always names the same content.

use sha2::{Digest, Sha256};

use crate::session::{CacheScope, SessionName};

/// The hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `origin` in one form whatever way it is written: scheme, credentials, a trailing `/` and
/// `.git` dropped, the host lowercased, scp-like `git@host:path` read as `host/path`; so
/// `git@github.com:A/b.git` and `https://GitHub.com/A/b` are one project.
pub fn normalize_origin(origin: &str) -> String {
    let t = origin.trim();
    let (rest, scheme) = match t.split_once("://") {
        Some((s, r)) => (r, Some(s.to_ascii_lowercase())),
        None => (t, None),
    };
    if scheme.as_deref() == Some("file") || (scheme.is_none() && rest.starts_with('/')) {
        let p = rest.trim_end_matches('/');
        return format!("file:{}", p.strip_suffix(".git").unwrap_or(p));
    }
    // Credentials go: `user:token@host/...`.
    let rest = match (scheme.is_some(), rest.split_once('/')) {
        (true, Some((auth, path))) => {
            let host = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
            format!("{host}/{path}")
        }
        (true, None) => rest.rsplit_once('@').map_or(rest, |(_, h)| h).to_owned(),
        // scp-like: `[user@]host:path`.
        (false, _) => {
            let no_user = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            match no_user.split_once(':') {
                Some((h, p)) => format!("{h}/{}", p.trim_start_matches('/')),
                None => no_user.to_owned(),
            }
        }
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest.as_str(), ""));
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    format!("{}/{path}", host.to_ascii_lowercase())
}

/// What identifies a project: its origin URL, else its root commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// 16 hex digits of the SHA-256 of the identity.
    pub key: String,
    /// The identity as a person reads it (`github.com/a/b`, `root commit 1a2b3c4d5e6f`).
    pub display: String,
}

impl Project {
    /// The project of a repository with origin `origin` (empty: none) and root commit `root`.
    pub fn of(origin: &str, root: Option<&str>) -> Option<Project> {
        let ident = if !origin.trim().is_empty() {
            normalize_origin(origin)
        } else {
            format!("root:{}", root.filter(|r| !r.is_empty())?)
        };
        let display = match ident.strip_prefix("root:") {
            Some(r) => format!("root commit {}", &r[..r.len().min(12)]),
            None => ident.clone(),
        };
        Some(Project {
            key: sha256_hex(ident.as_bytes())[..16].to_owned(),
            display,
        })
    }
}

/// The store key of a project's caches in `scope` (`session` scope: private to the session
/// named `session`, surviving its delete and re-create): `p-<16 hex>` or `s-<16 hex>`.
pub fn store_key(project_key: &str, scope: CacheScope, session: &SessionName) -> String {
    match scope {
        CacheScope::Project => format!("p-{project_key}"),
        CacheScope::Session => format!(
            "s-{}",
            &sha256_hex(format!("{project_key}/{}", session.as_str()).as_bytes())[..16]
        ),
    }
}

/// `s` reduced to key characters (`[A-Za-z0-9._-]`, others become `_`), at most `max`.
pub fn slug(s: &str, max: usize) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect();
    if out.is_empty() || out.starts_with('.') {
        format!("_{out}")
    } else {
        out
    }
}

/// Which entry a restore takes: the exact key if the store has it, else the newest entry
/// starting with the first prefix that matches any (`entries`: `(key, created_ms)`).
pub fn choose<'a>(
    exact: Option<&str>,
    prefixes: &[String],
    entries: &'a [(String, i64)],
) -> Option<&'a str> {
    if let Some(e) = exact
        && let Some((k, _)) = entries.iter().find(|(k, _)| k == e)
    {
        return Some(k);
    }
    for p in prefixes {
        let newest = entries
            .iter()
            .filter(|(k, _)| k.starts_with(p.as_str()))
            .max_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        if let Some((k, _)) = newest {
            return Some(k);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_normalise_to_one_project() {
        let same = [
            "git@github.com:Acme/Widget.git",
            "https://github.com/Acme/Widget",
            "https://user:tok@GitHub.com/Acme/Widget.git/",
            "ssh://git@github.com/Acme/Widget.git",
        ];
        for o in same {
            assert_eq!(normalize_origin(o), "github.com/Acme/Widget", "{o}");
        }
        assert_eq!(normalize_origin("/srv/git/x.git"), "file:/srv/git/x");
        assert_eq!(normalize_origin("file:///srv/git/x.git"), "file:/srv/git/x");
        let a = Project::of(same[0], None).unwrap();
        let b = Project::of(same[1], Some("abc")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.key.len(), 16);
        let r = Project::of("", Some("0123456789abcdef0123")).unwrap();
        assert_eq!(r.display, "root commit 0123456789ab");
        assert_ne!(r.key, a.key);
        assert_eq!(Project::of(" ", None), None);
    }

    #[test]
    fn store_keys_differ_by_scope_and_session() {
        let a = SessionName::new("alpha").unwrap();
        let b = SessionName::new("beta").unwrap();
        let p = store_key("0123456789abcdef", CacheScope::Project, &a);
        assert_eq!(p, "p-0123456789abcdef");
        assert_eq!(p, store_key("0123456789abcdef", CacheScope::Project, &b));
        let sa = store_key("0123456789abcdef", CacheScope::Session, &a);
        assert!(sa.starts_with("s-") && sa.len() == 18, "{sa}");
        assert_ne!(sa, store_key("0123456789abcdef", CacheScope::Session, &b));
        assert_eq!(sa, store_key("0123456789abcdef", CacheScope::Session, &a));
    }

    #[test]
    fn the_exact_key_wins_then_the_newest_prefix_match() {
        let entries = vec![
            ("cargo-t1-x-aaaa".to_owned(), 10),
            ("cargo-t1-x-bbbb".to_owned(), 20),
            ("cargo-t2-x-cccc".to_owned(), 30),
        ];
        let p = vec!["cargo-t1-x-".to_owned()];
        assert_eq!(
            choose(Some("cargo-t1-x-aaaa"), &p, &entries),
            Some("cargo-t1-x-aaaa")
        );
        assert_eq!(
            choose(Some("cargo-t1-x-zzzz"), &p, &entries),
            Some("cargo-t1-x-bbbb")
        );
        // Another toolchain never matches.
        assert_eq!(choose(None, &["cargo-t3-x-".to_owned()], &entries), None);
        assert_eq!(slug("feature/x y", 40), "feature_x_y");
        assert_eq!(slug(".hidden", 40), "_.hidden");
        assert_eq!(slug("", 40), "_");
    }
}
