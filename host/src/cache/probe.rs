//! What the host learns from inside a sandbox before it keys caches: the sandbox user's home,
//! where cargo keeps its files, the toolchain (`rustc -vV`, hashed, and the host triple), the
//! hashes of the lockfiles in the workspace, of its Dockerfiles, and a listing hash of each
//! custom directory. One `sh` script through the plugin's `exec`, run in the workspace (so a
//! `rust-toolchain.toml` there picks the toolchain), printing `name=value` lines.

use std::collections::BTreeMap;

/// The probe: `sh -c PROBE clauderon-cache-probe WORKSPACE [DIR...]` (each `DIR` as the user
/// gave it: `./x` in the workspace, `~/x` in the home, or absolute).
pub const SCRIPT: &str = r#"ws=$1
shift
cd "$ws" 2>/dev/null || cd /
printf 'home=%s\n' "$HOME"
printf 'cargo_home=%s\n' "${CARGO_HOME:-}"
printf 'target_dir=%s\n' "${CARGO_TARGET_DIR:-}"
if v=$(rustc -vV 2>/dev/null); then
  printf 'rustc=%s\n' "$(printf '%s\n' "$v" | sha256sum | cut -d ' ' -f 1)"
  printf 'triple=%s\n' "$(printf '%s\n' "$v" | sed -n 's/^host: //p')"
fi
for f in Cargo.lock package-lock.json npm-shrinkwrap.json yarn.lock bun.lock bun.lockb \
  requirements*.txt poetry.lock Pipfile.lock uv.lock pdm.lock; do
  if [ -f "$f" ]; then printf 'file:%s=%s\n' "$f" "$(sha256sum < "$f" | cut -d ' ' -f 1)"; fi
done
d=$(find . -maxdepth 4 \( -name node_modules -o -name target -o -name .git \) -prune -o \
  -type f \( -name Dockerfile -o -name 'Dockerfile.*' -o -name '*.Dockerfile' \) -print \
  2>/dev/null | LC_ALL=C sort)
if [ -n "$d" ]; then
  printf 'docker=%s\n' "$(printf '%s\n' "$d" | while IFS= read -r f; do printf '%s ' "$f"; sha256sum < "$f"; done | sha256sum | cut -d ' ' -f 1)"
fi
i=0
for p in "$@"; do
  case $p in
    /*) ;;
    "~/"*) p="$HOME/${p#??}" ;;
    *) p="$ws/${p#./}" ;;
  esac
  if [ -d "$p" ]; then
    printf 'dir:%s=%s\n' "$i" "$(cd "$p" && find . -printf '%P %s %T@\n' 2>/dev/null | LC_ALL=C sort | sha256sum | cut -d ' ' -f 1)"
  fi
  i=$((i + 1))
done
"#;

/// Lists the processes that keep a build running in the sandbox: a build tool by name, or any
/// process with a file open under one of the paths given (cargo holds `target/.cargo-lock`
/// for a whole build). One line per process (`pid name [file]`); nothing when idle.
pub const BUSY: &str = r#"self=$$
for d in /proc/[0-9]*; do
  pid=${d#/proc/}
  [ "$pid" = "$self" ] && continue
  comm=$(cat "$d/comm" 2>/dev/null) || continue
  case $comm in
    cargo|rustc|npm|npm\ *|yarn|bun|pip|pip3|docker|docker-buildx|buildkitd|sccache)
      printf '%s %s\n' "$pid" "$comm"; continue ;;
  esac
  for fd in "$d"/fd/*; do
    t=$(readlink "$fd" 2>/dev/null) || continue
    for p in "$@"; do
      case $t in "$p"|"$p"/*) printf '%s %s %s\n' "$pid" "$comm" "$t"; continue 3 ;; esac
    done
  done
done
"#;

/// The facts a probe printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `$HOME`.
    pub home: String,
    /// `$CARGO_HOME`, when set.
    pub cargo_home: Option<String>,
    /// `$CARGO_TARGET_DIR`, when set.
    pub target_dir: Option<String>,
    /// The SHA-256 of `rustc -vV`, when rustc runs.
    pub rustc: Option<String>,
    /// rustc's host triple.
    pub triple: Option<String>,
    /// Lockfiles found (name relative to the workspace → SHA-256).
    pub files: BTreeMap<String, String>,
    /// The combined hash of the Dockerfiles, when there are any.
    pub docker: Option<String>,
    /// Listing hashes of the custom directories that exist, by their index in the probe's
    /// arguments.
    pub dirs: BTreeMap<usize, String>,
}

impl Facts {
    /// Reads a probe's output; `None` when it did not say where home is.
    pub fn parse(out: &str) -> Option<Facts> {
        let mut f = Facts::default();
        let some = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_owned());
        for line in out.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k {
                "home" => f.home = v.trim().to_owned(),
                "cargo_home" => f.cargo_home = some(v),
                "target_dir" => f.target_dir = some(v),
                "rustc" => f.rustc = some(v),
                "triple" => f.triple = some(v),
                "docker" => f.docker = some(v),
                _ => {
                    if let Some(name) = k.strip_prefix("file:") {
                        f.files.insert(name.to_owned(), v.trim().to_owned());
                    } else if let Some(i) = k.strip_prefix("dir:").and_then(|i| i.parse().ok()) {
                        f.dirs.insert(i, v.trim().to_owned());
                    }
                }
            }
        }
        f.home.starts_with('/').then_some(f)
    }

    /// The hash of the first of `names` that exists.
    pub fn first_file(&self, names: &[&str]) -> Option<&str> {
        names
            .iter()
            .find_map(|n| self.files.get(*n).map(String::as_str))
    }

    /// One hash over every existing file whose name `pick` accepts (`None`: none exists).
    pub fn files_hash(&self, pick: impl Fn(&str) -> bool) -> Option<String> {
        let lines: Vec<String> = self
            .files
            .iter()
            .filter(|(n, _)| pick(n))
            .map(|(n, h)| format!("{n}={h}\n"))
            .collect();
        (!lines.is_empty()).then(|| super::keys::sha256_hex(lines.concat().as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_output_parses() {
        let out = "home=/home/sprite\ncargo_home=\ntarget_dir=/t\nrustc=abc\ntriple=x86_64-unknown-linux-gnu\n\
                   file:Cargo.lock=111\nfile:requirements-dev.txt=222\nfile:requirements.txt=333\n\
                   docker=444\ndir:1=555\nnoise\n";
        let f = Facts::parse(out).unwrap();
        assert_eq!(f.home, "/home/sprite");
        assert_eq!(f.cargo_home, None);
        assert_eq!(f.target_dir.as_deref(), Some("/t"));
        assert_eq!(
            f.first_file(&["package-lock.json", "Cargo.lock"]),
            Some("111")
        );
        assert_eq!(f.dirs.get(&1).map(String::as_str), Some("555"));
        let pip = f.files_hash(|n| n.starts_with("requirements")).unwrap();
        assert_eq!(pip.len(), 64);
        assert_eq!(f.files_hash(|n| n == "yarn.lock"), None);
        assert_eq!(Facts::parse("cargo_home=/x\n"), None);
    }
}
