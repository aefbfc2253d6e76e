//! What each `--build-cache` type means inside a sandbox: the paths it keeps, the environment
//! that makes the tools use them, and how its entries are keyed. Every path is absolute and
//! built from what the probe found (`$HOME`, `$CARGO_HOME`, the workspace), so it is the same
//! in every sandbox of a backend and cargo's fingerprints stay valid after a restore.
//!
//! | type | paths | environment | exact key |
//! | --- | --- | --- | --- |
//! | cargo | `$CARGO_HOME/{registry/{index,cache,src},git/{db,checkouts}}`, the target dir | `CARGO_HOME`, `CARGO_TARGET_DIR` | toolchain (`rustc -vV`), host triple, `Cargo.lock` |
//! | npm | `~/.npm/_cacache` | `npm_config_cache` | `package-lock.json` / `npm-shrinkwrap.json` |
//! | yarn | `~/.cache/yarn` | `YARN_CACHE_FOLDER` | `yarn.lock` |
//! | bun | `~/.bun/install/cache` | `BUN_INSTALL_CACHE_DIR` | `bun.lock` / `bun.lockb` |
//! | pip | `~/.cache/pip` | `PIP_CACHE_DIR` | requirements*.txt, poetry/Pipfile/uv/pdm locks |
//! | docker | `~/.cache/clauderon/buildx` (BuildKit's local cache) | `CLAUDERON_BUILDX_CACHE` | the Dockerfiles |
//! | `./dir` | the directory (relative to the workspace) | none | its path, the branch, its listing |

use std::collections::BTreeMap;

use super::keys::{sha256_hex, slug};
use super::probe::Facts;
use crate::session::BuildCache;

/// The resolved paths and environment of one cache in one sandbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Item {
    /// The cache (`cargo`, `./node_modules`, ...).
    pub cache: BuildCache,
    /// Absolute paths inside the sandbox.
    pub paths: Vec<String>,
    /// Environment the agent gets so its tools use the paths.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// An entry's exact key (when one can be named) and its restore prefixes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// The exact key (`None`: only prefixes, e.g. a custom directory not there yet).
    pub exact: Option<String>,
    /// Restore prefixes, most specific first.
    pub prefixes: Vec<String>,
}

/// The entry-key prefix of a cache type (`cargo`, ..., `dir`).
pub fn kind_name(c: &BuildCache) -> &'static str {
    match c {
        BuildCache::Cargo => "cargo",
        BuildCache::Npm => "npm",
        BuildCache::Yarn => "yarn",
        BuildCache::Bun => "bun",
        BuildCache::Pip => "pip",
        BuildCache::Docker => "docker",
        BuildCache::Dir(_) => "dir",
    }
}

/// A custom directory as an absolute path inside the sandbox (`./x`: in the workspace,
/// `~/x`: in the home).
pub fn dir_path(d: &str, workspace: &str, home: &str) -> String {
    let ws = workspace.trim_end_matches('/');
    let joined = if let Some(rest) = d.strip_prefix("~/") {
        format!("{}/{rest}", home.trim_end_matches('/'))
    } else if d.starts_with('/') {
        d.to_owned()
    } else {
        format!("{ws}/{}", d.trim_start_matches("./"))
    };
    let clean: Vec<&str> = joined
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    format!("/{}", clean.join("/"))
}

/// The paths and environment of `cache` in a sandbox whose probe gave `f`.
pub fn item(cache: &BuildCache, f: &Facts, workspace: &str) -> Item {
    let home = f.home.trim_end_matches('/');
    let ws = workspace.trim_end_matches('/');
    let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let (paths, env) = match cache {
        BuildCache::Cargo => {
            let ch = f
                .cargo_home
                .clone()
                .unwrap_or_else(|| format!("{home}/.cargo"));
            let target = f
                .target_dir
                .clone()
                .unwrap_or_else(|| format!("{ws}/target"));
            let paths = [
                "registry/index",
                "registry/cache",
                "registry/src",
                "git/db",
                "git/checkouts",
            ]
            .iter()
            .map(|p| format!("{ch}/{p}"))
            .chain(std::iter::once(target.clone()))
            .collect();
            (
                paths,
                env(&[("CARGO_HOME", &ch), ("CARGO_TARGET_DIR", &target)]),
            )
        }
        BuildCache::Npm => {
            let n = format!("{home}/.npm");
            (
                vec![format!("{n}/_cacache")],
                env(&[("npm_config_cache", &n)]),
            )
        }
        BuildCache::Yarn => {
            let y = format!("{home}/.cache/yarn");
            (vec![y.clone()], env(&[("YARN_CACHE_FOLDER", &y)]))
        }
        BuildCache::Bun => {
            let b = format!("{home}/.bun/install/cache");
            (vec![b.clone()], env(&[("BUN_INSTALL_CACHE_DIR", &b)]))
        }
        BuildCache::Pip => {
            let p = format!("{home}/.cache/pip");
            (vec![p.clone()], env(&[("PIP_CACHE_DIR", &p)]))
        }
        BuildCache::Docker => {
            let d = format!("{home}/.cache/clauderon/buildx");
            (vec![d.clone()], env(&[("CLAUDERON_BUILDX_CACHE", &d)]))
        }
        BuildCache::Dir(d) => (vec![dir_path(d, ws, home)], BTreeMap::new()),
    };
    Item {
        cache: cache.clone(),
        paths,
        env,
    }
}

fn short(h: &str) -> &str {
    &h[..h.len().min(16)]
}

/// The keys of `cache`'s entry given the probe `f`, the base branch `branch` and, for a custom
/// directory, its index among the probe's directories; `Err` says why it cannot be keyed
/// safely (then it is not cached at all: a miss beats a wrong hit).
pub fn keys(
    cache: &BuildCache,
    f: &Facts,
    branch: &str,
    dir_index: usize,
    dir: &str,
) -> Result<Keys, String> {
    let lock = |name: &str, h: Option<&str>| {
        let k = format!("{name}-{}", h.map_or("nolock", short));
        Keys {
            exact: Some(k),
            prefixes: vec![format!("{name}-")],
        }
    };
    Ok(match cache {
        BuildCache::Cargo => {
            let (Some(rustc), Some(triple)) = (&f.rustc, &f.triple) else {
                return Err(
                    "`rustc -vV` does not run in the sandbox, and the cargo cache is keyed by \
                     the toolchain"
                        .into(),
                );
            };
            let base = format!("cargo-{}-{}-", short(rustc), slug(triple, 60));
            Keys {
                exact: Some(format!(
                    "{base}{}",
                    f.first_file(&["Cargo.lock"]).map_or("nolock", short)
                )),
                prefixes: vec![base],
            }
        }
        BuildCache::Npm => lock(
            "npm",
            f.first_file(&["package-lock.json", "npm-shrinkwrap.json"]),
        ),
        BuildCache::Yarn => lock("yarn", f.first_file(&["yarn.lock"])),
        BuildCache::Bun => lock("bun", f.first_file(&["bun.lock", "bun.lockb"])),
        BuildCache::Pip => {
            let h = f.files_hash(|n| {
                (n.starts_with("requirements") && n.ends_with(".txt"))
                    || matches!(n, "poetry.lock" | "Pipfile.lock" | "uv.lock" | "pdm.lock")
            });
            lock("pip", h.as_deref())
        }
        BuildCache::Docker => Keys {
            exact: Some(format!(
                "docker-{}",
                f.docker.as_deref().map_or("none", short)
            )),
            prefixes: vec!["docker-".into()],
        },
        BuildCache::Dir(_) => {
            let ph = &sha256_hex(dir.as_bytes())[..8];
            let branch = slug(branch, 40);
            Keys {
                exact: f
                    .dirs
                    .get(&dir_index)
                    .map(|l| format!("dir-{ph}-{branch}-{}", short(l))),
                prefixes: vec![format!("dir-{ph}-{branch}-"), format!("dir-{ph}-")],
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts::parse(
            "home=/home/u\nrustc=0123456789abcdef0123\ntriple=x86_64-unknown-linux-gnu\n\
             file:Cargo.lock=fedcba9876543210fedc\nfile:package-lock.json=aaaabbbbccccddddeeee\n",
        )
        .unwrap()
    }

    #[test]
    fn cargo_keeps_registry_git_and_target_under_fixed_paths() {
        let i = item(&BuildCache::Cargo, &facts(), "/w/ws/");
        assert_eq!(i.paths[0], "/home/u/.cargo/registry/index");
        assert_eq!(i.paths.last().unwrap(), "/w/ws/target");
        assert_eq!(i.env["CARGO_HOME"], "/home/u/.cargo");
        assert_eq!(i.env["CARGO_TARGET_DIR"], "/w/ws/target");
        let k = keys(&BuildCache::Cargo, &facts(), "main", 0, "").unwrap();
        assert_eq!(
            k.exact.as_deref(),
            Some("cargo-0123456789abcdef-x86_64-unknown-linux-gnu-fedcba9876543210")
        );
        assert_eq!(
            k.prefixes,
            ["cargo-0123456789abcdef-x86_64-unknown-linux-gnu-"]
        );
        let mut no_rust = facts();
        no_rust.rustc = None;
        assert!(keys(&BuildCache::Cargo, &no_rust, "main", 0, "").is_err());
    }

    #[test]
    fn lockfile_types_and_dirs() {
        let f = facts();
        let k = keys(&BuildCache::Npm, &f, "main", 0, "").unwrap();
        assert_eq!(k.exact.as_deref(), Some("npm-aaaabbbbccccdddd"));
        assert_eq!(k.prefixes, ["npm-"]);
        let k = keys(&BuildCache::Yarn, &f, "main", 0, "").unwrap();
        assert_eq!(k.exact.as_deref(), Some("yarn-nolock"));
        let i = item(&BuildCache::Npm, &f, "/w");
        assert_eq!(i.paths, ["/home/u/.npm/_cacache"]);
        assert_eq!(i.env["npm_config_cache"], "/home/u/.npm");
        assert_eq!(dir_path("./a/./b/", "/w/", "/h"), "/w/a/b");
        assert_eq!(dir_path("~/c", "/w", "/h/"), "/h/c");
        assert_eq!(dir_path("/abs/x", "/w", "/h"), "/abs/x");
        let d = BuildCache::Dir("./out".into());
        let k = keys(&d, &f, "feature/x", 0, "/w/out").unwrap();
        assert_eq!(k.exact, None);
        assert_eq!(k.prefixes.len(), 2);
        assert!(k.prefixes[0].ends_with("-feature_x-"), "{:?}", k.prefixes);
        let mut with_dir = f.clone();
        with_dir.dirs.insert(0, "99998888777766665555".into());
        let k = keys(&d, &with_dir, "main", 0, "/w/out").unwrap();
        assert!(k.exact.unwrap().ends_with("-main-9999888877776666"));
    }
}
