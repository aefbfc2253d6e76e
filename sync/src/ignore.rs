//! Extra ignore patterns (configurable on top of git's own ignores), in a gitignore-style
//! subset: a pattern without `/` matches a name at any depth (`*.log`, `node_modules`), one with
//! a `/` is anchored at the root (`build/out`, `docs/**/*.tmp`); a trailing `/` matches
//! directories only (here: anything under them); `*` and `?` stay inside one component, `**`
//! spans any number. A path is ignored when it or any directory above it matches.

/// A set of compiled patterns.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    list: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    parts: Vec<String>,
    anchored: bool,
    dir_only: bool,
}

impl Patterns {
    /// Compiles `patterns` (empty lines and `#` comments skipped).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Patterns {
        let list = patterns
            .iter()
            .map(|p| p.as_ref().trim())
            .filter(|p| !p.is_empty() && !p.starts_with('#'))
            .map(|p| {
                let dir_only = p.ends_with('/');
                let p = p.trim_end_matches('/');
                let anchored = p.contains('/');
                let p = p.trim_start_matches('/');
                Pattern {
                    parts: p.split('/').map(str::to_owned).collect(),
                    anchored,
                    dir_only,
                }
            })
            .collect();
        Patterns { list }
    }

    /// Whether no pattern is set.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether `path` (relative, `/`-separated) is ignored by a pattern.
    pub fn ignores(&self, path: &str) -> bool {
        if self.list.is_empty() {
            return false;
        }
        let comps: Vec<&str> = path.split('/').collect();
        // The path itself, then each directory above it.
        (1..=comps.len()).any(|n| {
            let is_dir = n < comps.len();
            self.list.iter().any(|p| p.matches(&comps[..n], is_dir))
        })
    }
}

impl Pattern {
    fn matches(&self, comps: &[&str], is_dir: bool) -> bool {
        if self.dir_only && !is_dir {
            return false;
        }
        if self.anchored {
            parts_match(&self.parts, comps)
        } else {
            comps
                .last()
                .is_some_and(|last| self.parts.len() == 1 && glob(&self.parts[0], last))
        }
    }
}

fn parts_match(pat: &[String], comps: &[&str]) -> bool {
    match pat.split_first() {
        None => comps.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=comps.len()).any(|skip| parts_match(rest, &comps[skip..]))
        }
        Some((first, rest)) => match comps.split_first() {
            Some((c, crest)) => glob(first, c) && parts_match(rest, crest),
            None => false,
        },
    }
}

/// `*` and `?` within one name.
fn glob(pat: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pat.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_at_any_depth_and_anchored_paths_at_the_root() {
        let p = Patterns::new(&["*.log", "node_modules/", "build/out", "docs/**/*.tmp"]);
        assert!(p.ignores("a.log"));
        assert!(p.ignores("x/y/a.log"));
        assert!(p.ignores("node_modules/x/index.js"));
        assert!(
            !p.ignores("node_modules"),
            "dir-only pattern, a file of that name stays"
        );
        assert!(p.ignores("build/out/a"));
        assert!(!p.ignores("src/build/out/a"));
        assert!(p.ignores("docs/a/b/c.tmp"));
        assert!(p.ignores("docs/c.tmp"));
        assert!(!p.ignores("src/main.rs"));
        assert!(!Patterns::new::<&str>(&[]).ignores("a"));
    }
}
