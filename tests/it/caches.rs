//! Build caches end to end (DESIGN §16): the real `clauderon` CLI and daemon, the real Sprites
//! plugin, and emulator sprites that have the host's Rust toolchain mounted where the base
//! image keeps its languages (`--language rust=…`). The agent is a small script run with
//! `--print` whose prompt says what to build, so each create returns once the build is done.
//! Caches are tiny (a no-dependency cargo crate, a directory of a few hundred kB, a 1 MB pip
//! blob) so the tests stay fast.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::daemon::TestDaemon;
use crate::support::emulator::Emulator;
use crate::support::git::{git, git_repo};
use crate::support::home::{Run, TempHome, assert_exit};

/// The agent: `$1` (the prompt) names what to do in the workspace.
const AGENT: &str = r#"case "$1" in
cargo)
  if [ -e target/debug/hello ]; then echo "cargo: warm"; else echo "cargo: cold"; fi
  cargo build --offline 2>&1 | tail -n 2
  echo "CARGO_HOME=$CARGO_HOME CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
  ;;
dir)
  if [ -f out/marker ]; then echo "dir: warm $(cat out/marker)"; else
    echo "dir: cold"
    mkdir -p out && head -c 300000 /dev/urandom > out/blob
    od -An -N8 -tx8 /dev/urandom | tr -d ' \n' > out/marker
    echo "dir: wrote $(cat out/marker)"
  fi
  ;;
layer)
  if [ -f out/marker ]; then
    echo "layer: warm $(cat out/marker) $(sha256sum < out/blob | cut -c1-16)"
    if [ -f out/extra ]; then echo "layer: extra $(cat out/extra)"; fi
    if [ -f out/old ]; then echo "layer: old present"; fi
    if [ ! -f out/extra ]; then echo second > out/extra; rm -f out/old; echo "layer: changed"; fi
  else
    mkdir -p out && head -c 300000 /dev/urandom > out/blob && echo first > out/old
    od -An -N8 -tx8 /dev/urandom | tr -d ' \n' > out/marker
    echo "layer: wrote $(cat out/marker) $(sha256sum < out/blob | cut -c1-16)"
  fi
  ;;
pip)
  mkdir -p "$PIP_CACHE_DIR" && head -c 1000000 /dev/urandom > "$PIP_CACHE_DIR/blob"
  echo "pip: wrote $(sha256sum < "$PIP_CACHE_DIR/blob" | cut -c1-64)"
  ;;
pipcheck)
  if [ -f "$PIP_CACHE_DIR/blob" ]; then echo "pip: warm $(sha256sum < "$PIP_CACHE_DIR/blob" | cut -c1-64)"; else echo "pip: cold"; fi
  ;;
esac
"#;

/// How long one create (sprite, clone, restore, agent) may take.
const CREATE_LIMIT: Duration = Duration::from_secs(240);

/// An emulator with the host's Rust mounted, a home whose agent is [`AGENT`], a daemon.
struct Lab {
    emu: Emulator,
    home: TempHome,
    daemon: TestDaemon,
}

fn rust_sysroot() -> String {
    let out = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl Lab {
    fn start() -> Lab {
        Self::start_with("")
    }

    /// `extra`: more config.toml lines (e.g. a `[cache]` table).
    fn start_with(extra: &str) -> Lab {
        let sysroot = format!("rust={}", rust_sysroot());
        let emu = Emulator::start_args(&["--language", &sysroot]);
        let home = TempHome::new();
        home.write_secret("sprites_api_key", emu.token(), 0o600);
        let script = serde_json::to_string(AGENT).unwrap();
        home.write_config(&format!(
            "default_backend = \"sprites\"\n[server]\nlisten = \"127.0.0.1:0\"\n\
             [agent]\npreset = \"custom\"\ncommand = [\"sh\", \"-c\", {script}, \"agent\"]\n\
             prompt_args = [\"{{prompt}}\"]\nprint_args = []\n{extra}\n\
             [sprites]\napi_url = \"{}\"\nhibernate_wait_seconds = 20\n",
            emu.base_url()
        ));
        let daemon = TestDaemon::start(&home);
        Lab { emu, home, daemon }
    }

    /// `clauderon create --print` of session `name` on `repo` running agent action `what`.
    fn create(&self, repo: &Path, name: &str, what: &str, flags: &[&str]) -> Run {
        let mut args = vec![
            "create",
            "--repo",
            repo.to_str().unwrap(),
            "--prompt",
            what,
            "--name",
            name,
            "--print",
        ];
        args.extend_from_slice(flags);
        let run = self.home.run_timeout(&args, CREATE_LIMIT);
        assert_exit(&run, 0);
        run
    }

    fn delete(&self, name: &str) {
        let run = self
            .home
            .run_timeout(&["delete", name, "--yes"], CREATE_LIMIT);
        assert_exit(&run, 0);
    }

    /// The log of the newest session named `name`, deleted or not.
    fn logs(&self, name: &str) -> String {
        let list = self.home.run(&["list", "--all", "--json"]);
        assert_exit(&list, 0);
        let id = list
            .json()
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no session {name}: {}", list.stdout))["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let run = self.home.run(&["logs", &id]);
        assert_exit(&run, 0);
        run.stdout
    }

    fn caches(&self) -> Value {
        let run = self.home.run(&["cache", "list", "--json"]);
        assert_exit(&run, 0);
        run.json()
    }

    async fn cache_sprites(&self) -> Vec<String> {
        self.emu
            .sprites()
            .await
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .filter(|n| n.starts_with("clauderon-cache-"))
            .collect()
    }

    /// The directory holding a cache sprite's entries on the emulator's disk.
    fn store_dir(&self, sprite: &str) -> std::path::PathBuf {
        self.emu
            .data_dir()
            .join("sprites")
            .join(sprite)
            .join("root/home/sprite/clauderon-cache")
    }

    fn dump(&self) -> String {
        format!("daemon log:\n{}", self.daemon.log())
    }
}

/// A repository holding a no-dependency cargo crate `hello` with its lockfile.
fn cargo_repo() -> tempfile::TempDir {
    let repo = git_repo();
    let p = repo.path();
    std::fs::write(
        p.join("Cargo.toml"),
        "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::create_dir(p.join("src")).unwrap();
    std::fs::write(
        p.join("src/main.rs"),
        "fn main() { println!(\"hello\"); }\n",
    )
    .unwrap();
    std::fs::write(
        p.join("Cargo.lock"),
        "# This file is automatically @generated by Cargo.\nversion = 4\n\n[[package]]\nname = \"hello\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    git(p, &["add", "."]);
    git(p, &["commit", "-q", "-m", "crate"]);
    repo
}

/// The one cache of the list (panics naming the list otherwise).
fn only_cache(list: &Value) -> Value {
    let a = list.as_array().unwrap();
    assert_eq!(a.len(), 1, "{list:#}");
    a[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_sessions_cargo_cache_fills_the_next_session_of_the_project() {
    let lab = Lab::start();
    let repo = cargo_repo();

    let run = lab.create(repo.path(), "a", "cargo", &["--build-cache", "cargo"]);
    assert!(run.stdout.contains("cargo: cold"), "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "CARGO_HOME=/home/sprite/.cargo CARGO_TARGET_DIR=/home/sprite/workspace/target"
        ),
        "{}",
        run.stdout
    );
    assert!(
        lab.logs("a").contains("no build cache yet"),
        "{}",
        lab.logs("a")
    );
    lab.delete("a");
    let log = lab.logs("a");
    let saved = log
        .lines()
        .find(|l| l.contains("cargo: saved cargo-"))
        .unwrap_or_else(|| panic!("{log}\n{}", lab.dump()));
    let key = saved
        .split_whitespace()
        .find(|w| w.starts_with("cargo-"))
        .unwrap()
        .to_owned();
    assert!(key.ends_with(&key[key.len() - 16..]), "{key}");

    let cache = only_cache(&lab.caches());
    assert_eq!(cache["types"], serde_json::json!(["cargo"]), "{cache:#}");
    assert_eq!(cache["entries"][0]["key"], key.as_str(), "{cache:#}");
    assert!(cache["size"].as_u64().unwrap() > 1000, "{cache:#}");

    let run = lab.create(repo.path(), "b", "cargo", &["--build-cache", "cargo"]);
    assert!(
        run.stdout.contains("cargo: warm"),
        "{}\n{}",
        run.stdout,
        lab.logs("b")
    );
    let log = lab.logs("b");
    assert!(
        log.contains(&format!("cargo: restored {key} (")),
        "{log}\n{}",
        lab.dump()
    );
    // The transport is named: the emulator serves sprite URLs, so the direct path.
    assert!(
        log.contains("directly between the store and the sandbox"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_last_session_keeps_the_cache_reconcile_ignores_it_and_clear_removes_it() {
    let lab = Lab::start();
    let repo = git_repo();
    lab.create(repo.path(), "r1", "dir", &["--build-cache", "./out"]);
    lab.delete("r1");
    let stores = lab.cache_sprites().await;
    assert_eq!(stores.len(), 1, "{stores:?}\n{}", lab.dump());
    let cache = only_cache(&lab.caches());
    assert_eq!(cache["instance"], stores[0].as_str(), "{cache:#}");
    assert_eq!(cache["types"], serde_json::json!(["./out"]), "{cache:#}");
    assert_ne!(cache["state"], "gone", "{cache:#}");
    let text = lab.home.run(&["cache", "list"]);
    assert_exit(&text, 0);
    assert!(text.stdout.starts_with("KEY "), "{}", text.stdout);

    // The cache sprite carries clauderon=1 but is no session's sandbox: not an orphan.
    let run = lab.home.run(&["reconcile", "--json"]);
    assert_exit(&run, 0);
    assert_eq!(
        run.json()["orphans"],
        serde_json::json!([]),
        "{}",
        run.stdout
    );

    let key = cache["key"].as_str().unwrap();
    let run = lab.home.run(&["cache", "clear", key]);
    assert_exit(&run, 0);
    assert!(
        run.stdout.contains(&format!("{key}: removed")),
        "{}",
        run.stdout
    );
    assert!(lab.cache_sprites().await.is_empty());
    assert_eq!(lab.caches(), serde_json::json!([]));
    let run = lab.home.run(&["cache", "clear", key]);
    assert_exit(&run, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_scoped_cache_is_private_and_survives_delete_and_recreate() {
    let lab = Lab::start();
    let repo = git_repo();
    let scoped = ["--build-cache", "./out", "--cache-scope", "session"];
    let run = lab.create(repo.path(), "s1", "dir", &scoped);
    let marker = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("dir: wrote "))
        .unwrap_or_else(|| panic!("{}", run.stdout))
        .to_owned();
    lab.delete("s1");

    // Another session of the same project, in session scope or project scope, sees nothing.
    let run = lab.create(repo.path(), "s2", "dir", &scoped);
    assert!(run.stdout.contains("dir: cold"), "{}", run.stdout);
    let run = lab.create(repo.path(), "p1", "dir", &["--build-cache", "./out"]);
    assert!(run.stdout.contains("dir: cold"), "{}", run.stdout);

    // The same name again finds its own cache.
    let run = lab.create(repo.path(), "s1", "dir", &scoped);
    assert!(
        run.stdout.contains(&format!("dir: warm {marker}")),
        "{}\n{}",
        run.stdout,
        lab.logs("s1")
    );
    let caches = lab.caches();
    let scoped: Vec<&Value> = caches
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["scope"] == "session")
        .collect();
    assert_eq!(scoped.len(), 1, "{caches:#}");
    assert_eq!(scoped[0]["session"], "s1", "{caches:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_saving_the_same_key_at_once_leave_one_complete_cache() {
    let lab = Lab::start();
    let repo = git_repo();
    std::fs::write(repo.path().join("requirements.txt"), "requests==2.32.3\n").unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "deps"]);
    let mut sums = Vec::new();
    for name in ["w1", "w2"] {
        let run = lab.create(repo.path(), name, "pip", &["--build-cache", "pip"]);
        let sum = run
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("pip: wrote "))
            .unwrap_or_else(|| panic!("{}", run.stdout))
            .to_owned();
        sums.push(sum);
    }
    assert_ne!(sums[0], sums[1]);
    let saves: Vec<std::thread::JoinHandle<Run>> = ["w1", "w2"]
        .into_iter()
        .map(|name| {
            let home = lab.home.path().to_path_buf();
            std::thread::spawn(move || {
                let out =
                    std::process::Command::new(crate::support::artifacts::artifacts().clauderon())
                        .env("CLAUDERON_HOME", home)
                        .args(["cache", "save", name, "--json"])
                        .output()
                        .unwrap();
                out.into()
            })
        })
        .collect();
    let runs: Vec<Run> = saves.into_iter().map(|t| t.join().unwrap()).collect();
    let mut outcomes = Vec::new();
    for run in &runs {
        assert_exit(run, 0);
        outcomes.push(
            run.json()["caches"][0]["outcome"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    outcomes.sort();
    assert_eq!(outcomes, ["exists", "saved"], "{runs:?}");

    let cache = only_cache(&lab.caches());
    assert_eq!(cache["entries"].as_array().unwrap().len(), 1, "{cache:#}");
    let sprite = cache["instance"].as_str().unwrap().to_owned();
    let store = lab.store_dir(&sprite);
    let entries: Vec<_> = std::fs::read_dir(store.join("entries")).unwrap().collect();
    assert_eq!(entries.len(), 1);
    let incoming = std::fs::read_dir(store.join("incoming"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(incoming, 0, "no half-written save is left");

    // A third session gets one of the two blobs, whole.
    let run = lab.create(repo.path(), "w3", "pipcheck", &["--build-cache", "pip"]);
    let got = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("pip: warm "))
        .unwrap_or_else(|| panic!("{}\n{}", run.stdout, lab.logs("w3")))
        .to_owned();
    assert!(sums.contains(&got), "{got} not in {sums:?}");
}

/// A whole entry and a layer over it, in the store of `repo`'s project: session l1 writes
/// `out` cold and is deleted (k0, whole); l2 restores k0, adds a file, deletes one and saves
/// (k1, a layer over k0), and is deleted. Returns (k0, k1, the marker l1 wrote, the store's
/// cache sprite).
fn a_whole_entry_and_a_layer(lab: &Lab, repo: &Path) -> (String, String, String, String) {
    let flags = ["--build-cache", "./out"];
    let run = lab.create(repo, "l1", "layer", &flags);
    let first = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("layer: wrote "))
        .unwrap_or_else(|| panic!("{}", run.stdout))
        .to_owned();
    lab.delete("l1");
    let cache = only_cache(&lab.caches());
    let whole = cache["entries"][0].clone();
    let k0 = whole["key"].as_str().unwrap().to_owned();
    assert!(whole.get("base").is_none(), "{whole:#}");

    // l2 restores k0, adds a file and deletes one; its save holds only that.
    let run = lab.create(repo, "l2", "layer", &flags);
    assert!(
        run.stdout.contains(&format!("layer: warm {first}")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("layer: changed"), "{}", run.stdout);
    let save = lab.home.run(&["cache", "save", "l2", "--json"]);
    assert_exit(&save, 0);
    let outcome = save.json()["caches"][0].clone();
    assert_eq!(outcome["outcome"], "saved", "{outcome:#}");
    assert!(
        outcome["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("a layer over {k0}")),
        "{outcome:#}"
    );
    let cache = only_cache(&lab.caches());
    let top = cache["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] != k0.as_str())
        .unwrap_or_else(|| panic!("{cache:#}"))
        .clone();
    let k1 = top["key"].as_str().unwrap().to_owned();
    assert_eq!(top["base"], k0.as_str(), "{cache:#}");
    // 300 kB of random bytes are in k0 only.
    assert!(
        top["size"].as_u64().unwrap() * 10 < whole["size"].as_u64().unwrap(),
        "{cache:#}"
    );
    let sprite = cache["instance"].as_str().unwrap().to_owned();
    let meta = lab
        .store_dir(&sprite)
        .join("entries")
        .join(&k1)
        .join("meta.json");
    let meta: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(meta["base"], k0.as_str(), "{meta:#}");
    assert_eq!(meta["depth"], 1, "{meta:#}");
    // What bounds the chain: its layers' bytes against its whole archive's.
    assert_eq!(meta["layers_size"], top["size"], "{meta:#}");
    assert_eq!(meta["whole_size"], whole["size"], "{meta:#}");
    lab.delete("l2");
    (k0, k1, first, sprite)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_after_a_restore_is_a_layer_restored_with_what_it_lies_on() {
    let lab = Lab::start();
    let repo = git_repo();
    let (k0, k1, first, _) = a_whole_entry_and_a_layer(&lab, repo.path());

    // l3 gets k1 (the newest): k0's blob and marker, k1's new file, not the deleted one.
    let run = lab.create(repo.path(), "l3", "layer", &["--build-cache", "./out"]);
    assert!(
        run.stdout.contains(&format!("layer: warm {first}")),
        "{}\n{}",
        run.stdout,
        lab.logs("l3")
    );
    assert!(run.stdout.contains("layer: extra second"), "{}", run.stdout);
    assert!(!run.stdout.contains("layer: old present"), "{}", run.stdout);
    let log = lab.logs("l3");
    // Both archives came straight from the cache sprite, the layer over the whole one.
    let restored = log
        .lines()
        .find(|l| l.contains(&format!("./out: restored {k1}")))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        restored.contains("directly between the store and the sandbox"),
        "{log}"
    );
    assert!(
        log.contains(&format!("restored {k1}: ")) && log.contains(", 2 layers"),
        "{log}"
    );

    // The layer's fetch fails after the whole archive came directly: the chain starts again
    // over the relay, and the content is the same.
    lab.emu
        .add_fault(serde_json::json!({"kind": "error", "method": "GET",
            "path": format!("https://*-emul.sprites.app/entries/{k1}"), "status": 500,
            "times": 1}))
        .await;
    let run = lab.create(repo.path(), "l4", "layer", &["--build-cache", "./out"]);
    let log = lab.logs("l4");
    assert!(
        run.stdout.contains(&format!("layer: warm {first}"))
            && run.stdout.contains("layer: extra second")
            && !run.stdout.contains("layer: old present"),
        "{}\n{log}",
        run.stdout
    );
    assert!(log.contains("the direct path is not available"), "{log}");
    let restored = log
        .lines()
        .find(|l| l.contains(&format!("./out: restored {k1}")))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(restored.contains("relayed through this machine"), "{log}");

    // Clearing the whole entry takes the layer on it too.
    let run = lab.home.run(&["cache", "clear", &k0, "--json"]);
    assert_exit(&run, 0);
    let cache = only_cache(&lab.caches());
    assert_eq!(cache["entries"], serde_json::json!([]), "{cache:#}");
}

/// Edits the stored `meta.json` of entry `key` in cache sprite `sprite`; its path.
fn edit_meta(lab: &Lab, sprite: &str, key: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let path = lab
        .store_dir(sprite)
        .join("entries")
        .join(key)
        .join("meta.json");
    let mut meta: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut meta);
    std::fs::write(&path, serde_json::to_vec(&meta).unwrap()).unwrap();
    path
}

/// Session l3 of `repo` with the `./out` cache: its restore is a miss whose log says `why`,
/// and its agent starts cold.
fn cold_start_saying(lab: &Lab, repo: &Path, why: &str) {
    let run = lab.create(repo, "l3", "layer", &["--build-cache", "./out"]);
    let log = lab.logs("l3");
    assert!(log.contains(why), "{why:?} not in:\n{}\n{log}", run.stdout);
    assert!(run.stdout.contains("layer: wrote "), "cold: {}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_whose_base_was_saved_again_is_a_miss_never_a_mix() {
    let lab = Lab::start();
    let repo = git_repo();
    let (k0, k1, _, sprite) = a_whole_entry_and_a_layer(&lab, repo.path());
    // As if k0 had been saved again since k1 was made over it.
    let meta_path = edit_meta(&lab, &sprite, &k1, |m| {
        m["base_sha256"] = Value::from("0".repeat(64));
    });

    cold_start_saying(
        &lab,
        repo.path(),
        &format!("{k0} has been replaced since, so {k1} was removed"),
    );
    let cache = only_cache(&lab.caches());
    let keys: Vec<&str> = cache["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["key"].as_str())
        .collect();
    assert_eq!(keys, [k0.as_str()], "{cache:#}");
    assert!(
        !meta_path.exists(),
        "the layer is gone from the cache sprite"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_whose_base_is_gone_is_a_miss_and_is_removed() {
    let lab = Lab::start();
    let repo = git_repo();
    let (k0, k1, _, sprite) = a_whole_entry_and_a_layer(&lab, repo.path());
    let entries = lab.store_dir(&sprite).join("entries");
    std::fs::remove_dir_all(entries.join(&k0)).unwrap();

    cold_start_saying(
        &lab,
        repo.path(),
        &format!("entry {k1} is a layer over {k0}, which is gone; it was removed"),
    );
    assert!(
        !entries.join(&k1).exists(),
        "the layer is gone from the cache sprite"
    );
    let cache = only_cache(&lab.caches());
    assert!(
        cache["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["key"] != k1.as_str()),
        "{cache:#}"
    );
}

/// The keys `cache list` shows for the project's one cache.
fn listed_keys(lab: &Lab) -> Vec<String> {
    only_cache(&lab.caches())["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["key"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_over_an_unreadable_base_is_a_miss_and_both_leave_the_index() {
    let lab = Lab::start();
    let repo = git_repo();
    let (k0, k1, _, sprite) = a_whole_entry_and_a_layer(&lab, repo.path());
    let entries = lab.store_dir(&sprite).join("entries");
    std::fs::write(entries.join(&k0).join("meta.json"), b"{\"key\": ").unwrap();

    cold_start_saying(
        &lab,
        repo.path(),
        &format!("entry {k0} has an unreadable meta.json"),
    );
    for k in [&k0, &k1] {
        assert!(
            !entries.join(k).exists(),
            "{k} is gone from the cache sprite"
        );
    }
    // The index forgot both (not only the key it asked for): what `cache list` shows is what
    // the store holds, here the entry l3's save (at its delete) wrote afresh.
    lab.delete("l3");
    let keys = listed_keys(&lab);
    assert!(!keys.contains(&k1), "the layer left the index: {keys:?}");
    for k in &keys {
        assert!(
            entries.join(k).join("meta.json").exists(),
            "{k} listed but not stored: {keys:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_chain_that_loops_is_cut_at_its_depth_limit() {
    let lab = Lab::start();
    let repo = git_repo();
    let (k0, k1, _, sprite) = a_whole_entry_and_a_layer(&lab, repo.path());
    // k1 as if it lay on itself: its chain never reaches a whole archive.
    let meta_path = edit_meta(&lab, &sprite, &k1, |m| {
        m["base"] = Value::from(k1.as_str());
        m["base_sha256"] = m["sha256"].clone();
    });

    cold_start_saying(
        &lab,
        repo.path(),
        &format!("entry {k1} lies on more than 4 layers; it was removed"),
    );
    assert!(
        !meta_path.exists(),
        "the layer is gone from the cache sprite"
    );
    assert_eq!(listed_keys(&lab), [k0], "the base stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_over_the_size_cap_is_not_saved_on_either_path() {
    for direct in [true, false] {
        let lab = Lab::start_with(&format!("[cache]\nmax_size = \"64K\"\ndirect = {direct}\n"));
        let repo = git_repo();
        // 1 MB of random bytes in the pip cache.
        let run = lab.create(repo.path(), "big", "pip", &["--build-cache", "pip"]);
        assert!(run.stdout.contains("pip: wrote "), "{}", run.stdout);
        let save = lab.home.run(&["cache", "save", "big", "--json"]);
        let outcome = save.json()["caches"][0].clone();
        assert_eq!(
            outcome["outcome"], "skipped",
            "direct={direct}: {outcome:#}"
        );
        assert!(
            outcome["detail"]
                .as_str()
                .unwrap()
                .contains("larger than the cache's limit of 64.0 KiB"),
            "direct={direct}: {outcome:#}"
        );
        let log = lab.logs("big");
        // The direct path refused it itself; it was not retried through the host.
        assert!(
            !log.contains("the direct path is not available"),
            "direct={direct}: {log}"
        );
        let sprite = lab.cache_sprites().await.pop().unwrap();
        let store = lab.store_dir(&sprite);
        for dir in ["entries", "incoming"] {
            assert_eq!(
                std::fs::read_dir(store.join(dir)).map_or(0, |d| d.count()),
                0,
                "direct={direct}: nothing kept in {dir}"
            );
        }
        assert!(
            only_cache(&lab.caches())["entries"]
                .as_array()
                .is_none_or(|e| e.is_empty()),
            "direct={direct}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_lists_caches_with_their_entries_and_clears_an_entry_then_a_cache() {
    use crate::support::browser::{Browser, js_str};
    let lab = Lab::start();
    let repo = git_repo();
    let (k0, k1, _, sprite) = a_whole_entry_and_a_layer(&lab, repo.path());
    let cache = only_cache(&lab.caches());
    let key = cache["key"].as_str().unwrap().to_owned();
    let browser = Browser::launch().await;
    let page = crate::web::signed_in(&browser, &lab.home, &lab.daemon).await;
    page.viewport(1400, 600).await;
    page.goto(&lab.daemon.url("/caches")).await;
    let ready = Duration::from_secs(15);
    page.wait_for(
        "document.body.dataset.ready === 'caches'",
        "the caches page",
        ready,
    )
    .await;
    let group = format!(".cache-group[data-key={}]", js_str(&key));
    let text = page.text(&group).await;
    for want in [
        key.as_str(),
        k0.as_str(),
        k1.as_str(),
        &format!("(a layer over {k0})"),
        "./out",
        cache["state"].as_str().unwrap(),
    ] {
        assert!(text.contains(want), "{want:?} not in {text:?}");
    }
    page.screenshot(&crate::web::docs("web-caches.png")).await;

    // One entry: the layer, after the confirmation.
    page.click(&format!(".entry[data-key={}] button", js_str(&k1)))
        .await;
    page.wait_text("#dialog-title", &format!("Clear entry {k1}"), ready)
        .await;
    page.click("#dialog-ok").await;
    page.wait_text(
        "#caches-note",
        &format!("Cleared {k1}: removed"),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(listed_keys(&lab), std::slice::from_ref(&k0));
    assert!(
        !page.text(&group).await.contains(&k1),
        "the page was read again"
    );

    // The whole cache, its cache sprite included; the dialog names what goes.
    page.click(&format!("{group} [data-act=clear]")).await;
    page.wait_text("#dialog-body", &sprite, ready).await;
    page.click("#dialog-ok").await;
    page.wait_for(
        "!document.querySelector('#caches-empty').hidden",
        "the empty caches page",
        Duration::from_secs(60),
    )
    .await;
    assert!(
        lab.caches().as_array().unwrap().is_empty(),
        "{:#}",
        lab.caches()
    );
    assert!(
        lab.cache_sprites().await.is_empty(),
        "the cache sprite is gone"
    );
    // A collection on demand: nothing is old enough.
    page.click("#caches-gc").await;
    page.wait_text("#caches-note", "Nothing has gone unused long enough", ready)
        .await;
    crate::web::assert_clean(&page).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tui_lists_caches_and_clears_an_entry_after_asking() {
    use crate::tui::Tmux;
    let lab = Lab::start();
    let repo = git_repo();
    let (k0, k1, _, _) = a_whole_entry_and_a_layer(&lab, repo.path());
    let t = Tmux::start(&lab.home, repo.path(), 160, 40);
    t.start_tui();
    t.keys(&["b"]);
    let screen = t.wait_for(&k1, Duration::from_secs(15));
    assert!(screen.contains("build caches"), "{screen}");
    assert!(screen.contains(&k0), "{screen}");
    assert!(screen.contains(&format!("a layer over {k0}")), "{screen}");
    // Rows: the cache, k0, k1. The layer, asked first.
    t.keys(&["Down", "Down", "x"]);
    t.wait_for("and any layer lying on it", Duration::from_secs(15));
    t.keys(&["y"]);
    t.wait_for(&format!("entry {k1} removed"), Duration::from_secs(60));
    assert_eq!(listed_keys(&lab), std::slice::from_ref(&k0));
    t.wait_until("the list read again", Duration::from_secs(15), |s| {
        !s.contains(&format!("a layer over {k0}"))
    });
    // (Escape and q apart: together a terminal reads them as Alt-q.)
    t.keys(&["Escape"]);
    t.wait_until("the pane closed", Duration::from_secs(15), |s| {
        !s.contains("build caches")
    });
    t.keys(&["q"]);
    t.assert_restored();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_archive_is_a_cold_start_with_a_warning() {
    let lab = Lab::start();
    let repo = git_repo();
    lab.create(repo.path(), "c1", "dir", &["--build-cache", "./out"]);
    lab.delete("c1");
    let cache = only_cache(&lab.caches());
    let key = cache["entries"][0]["key"].as_str().unwrap().to_owned();
    let archive = lab
        .store_dir(cache["instance"].as_str().unwrap())
        .join("entries")
        .join(&key)
        .join("archive.tgz");
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&archive, bytes).unwrap();

    let run = lab.create(repo.path(), "c2", "dir", &["--build-cache", "./out"]);
    assert!(run.stdout.contains("dir: cold"), "{}", run.stdout);
    let log = lab.logs("c2");
    assert!(
        log.contains(&format!("warn: build cache ./out: entry {key} is damaged")),
        "{log}\n{}",
        lab.dump()
    );
    assert!(log.contains("building cold"), "{log}");
    // The damaged entry is gone from the index and from the cache sprite.
    let cache = only_cache(&lab.caches());
    assert_eq!(cache["entries"], serde_json::json!([]), "{cache:#}");
    assert!(!archive.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_a_31_day_idle_cache_and_keeps_a_29_day_one() {
    let mut lab = Lab::start();
    let old = git_repo();
    let young = git_repo();
    // Each repository is its own project (no origin: keyed by its root commit, which the
    // amend makes differ).
    git(
        young.path(),
        &["commit", "-q", "--amend", "-m", "another project"],
    );
    lab.create(old.path(), "g1", "dir", &["--build-cache", "./out"]);
    lab.delete("g1");
    lab.daemon.kill();
    lab.daemon = TestDaemon::start_with(&lab.home, |c| {
        c.env("CLAUDERON_CLOCK_OFFSET", "2days");
    });
    lab.create(young.path(), "g2", "dir", &["--build-cache", "./out"]);
    lab.delete("g2");
    let caches = lab.caches();
    assert_eq!(caches.as_array().unwrap().len(), 2, "{caches:#}");
    let key_of = |repo: &Path| {
        let root = git(repo, &["rev-list", "--max-parents=0", "HEAD"]);
        caches
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["project"].as_str().unwrap().contains(&root[..12]))
            .unwrap_or_else(|| panic!("{root} in {caches:#}"))["key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (old_key, young_key) = (key_of(old.path()), key_of(young.path()));
    assert_eq!(lab.cache_sprites().await.len(), 2);

    // 31 days after the first save (29 after the second): the daemon collects at start.
    lab.daemon.kill();
    lab.daemon = TestDaemon::start_with(&lab.home, |c| {
        c.env("CLAUDERON_CLOCK_OFFSET", "31days");
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let left = loop {
        let list = lab.caches();
        let keys: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["key"].as_str().unwrap().to_owned())
            .collect();
        if !keys.contains(&old_key) || std::time::Instant::now() > deadline {
            break keys;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(left, std::slice::from_ref(&young_key), "{}", lab.dump());
    let sprites = lab.cache_sprites().await;
    assert_eq!(sprites, [format!("clauderon-cache-{young_key}")]);
}

/// Every file under `dir` that contains `needle` (unreadable files are skipped).
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(p),
                Ok(t)
                    if t.is_file()
                        && std::fs::read(&p)
                            .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) =>
                {
                    found.push(p);
                }
                _ => {}
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_and_saves_go_by_the_cache_sprites_url_with_a_capability_else_through_the_host() {
    let lab = Lab::start();
    let repo = git_repo();
    let run = lab.create(repo.path(), "d1", "dir", &["--build-cache", "./out"]);
    let marker = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("dir: wrote "))
        .unwrap()
        .to_owned();
    // The save goes from the session sprite to the cache sprite's URL (made on the way).
    let save = lab.home.run(&["cache", "save", "d1", "--json"]);
    assert_exit(&save, 0);
    let outcome = save.json()["caches"][0].clone();
    assert_eq!(outcome["outcome"], "saved", "{outcome:#}");
    assert_eq!(outcome["transport"], "direct", "{outcome:#}");
    lab.delete("d1");
    let sprite = lab.cache_sprites().await.pop().unwrap();
    let store = lab.store_dir(&sprite);
    assert_eq!(
        std::fs::read_dir(store.join("incoming")).map_or(0, |d| d.count()),
        0,
        "nothing is left half-saved"
    );

    // Fetching the entry from the cache sprite's URL fails once: the restore goes through the
    // host instead.
    lab.emu
        .add_fault(serde_json::json!({"kind": "error", "method": "GET",
            "path": "https://*-emul.sprites.app/entries/*", "status": 500, "times": 1}))
        .await;
    let run = lab.create(repo.path(), "d2", "dir", &["--build-cache", "./out"]);
    assert!(
        run.stdout.contains(&format!("dir: warm {marker}")),
        "{}",
        run.stdout
    );
    let log = lab.logs("d2");
    assert!(log.contains("the direct path is not available"), "{log}");
    assert!(log.contains("relayed through this machine"), "{log}");

    // Then the session sprite fetches the entry from the cache sprite's URL itself.
    let run = lab.create(repo.path(), "d3", "dir", &["--build-cache", "./out"]);
    assert!(
        run.stdout.contains(&format!("dir: warm {marker}")),
        "{}",
        run.stdout
    );
    let log = lab.logs("d3");
    assert!(
        log.contains("directly between the store and the sandbox"),
        "{log}\n{}",
        lab.dump()
    );
    let info: Value = lab
        .emu
        .http_client()
        .get(format!("{}/v1/sprites/{sprite}", lab.emu.base_url()))
        .bearer_auth(lab.emu.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["url_settings"]["auth"], "public", "{info:#}");

    // An upload the URL refuses: the save goes through the host, and what it stored restores.
    lab.emu
        .add_fault(serde_json::json!({"kind": "error", "method": "PUT",
            "path": "https://*-emul.sprites.app/incoming/*", "status": 500, "times": 1}))
        .await;
    let save = lab.home.run(&["cache", "save", "d3", "--json"]);
    assert_exit(&save, 0);
    let outcome = save.json()["caches"][0].clone();
    assert_eq!(outcome["outcome"], "saved", "{outcome:#}");
    assert_eq!(outcome["transport"], "relay", "{outcome:#}");
    assert!(
        lab.logs("d3").contains("the direct path is not available"),
        "{}",
        lab.logs("d3")
    );
    lab.delete("d2");
    lab.delete("d3");
    let run = lab.create(repo.path(), "d4", "dir", &["--build-cache", "./out"]);
    assert!(
        run.stdout.contains(&format!("dir: warm {marker}")),
        "{}",
        run.stdout
    );

    // Every capability was used up; the org's token is nowhere in a session sprite.
    let caps = store.join("caps");
    assert_eq!(std::fs::read_dir(&caps).unwrap().count(), 0);
    let sprites = lab.emu.data_dir().join("sprites");
    for s in std::fs::read_dir(&sprites).unwrap().flatten() {
        let name = s.file_name().to_string_lossy().into_owned();
        if ["d1-", "d2-", "d3-", "d4-"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            let hits = files_containing(&s.path().join("root"), lab.emu.token().as_bytes());
            assert!(hits.is_empty(), "the org token is in {hits:?}");
        }
    }
}
