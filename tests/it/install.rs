//! `scripts/install.sh` and `clauderon plugins install`: a clauderon installed into a temporary
//! prefix and home runs a Sprites session against the emulator with only the installed files.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use crate::support::artifacts::{artifacts, workspace_root};
use crate::support::emulator::Emulator;
use crate::support::git::git_repo;
use crate::support::home::{Run, TempHome, assert_exit};

/// Runs the install script into `prefix` from the already-built artifacts (a release build
/// would take minutes), with `home` as `CLAUDERON_HOME` and a PATH without the prefix.
fn install(home: &TempHome, prefix: &Path) -> Run {
    Command::new("bash")
        .arg(workspace_root().join("scripts/install.sh"))
        .arg("--prefix")
        .arg(prefix)
        .arg("--from")
        .arg(&artifacts().dir)
        .env("CLAUDERON_HOME", home.path())
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env_remove("CLAUDERON_PLUGIN_PATH")
        .output()
        .unwrap()
        .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installed_clauderon_runs_a_session_with_only_the_installed_files() {
    let emu = Emulator::start();
    let home = TempHome::new();
    home.write_secret("sprites_api_key", emu.token(), 0o600);
    home.write_config(&format!(
        "default_backend = \"sprites\"\n[server]\nlisten = \"127.0.0.1:0\"\n{}[sprites]\napi_url = \"{}\"\n",
        crate::support::demo_agent_toml(),
        emu.base_url()
    ));
    let prefix = tempfile::tempdir().unwrap();
    let run = install(&home, prefix.path());
    assert_exit(&run, 0);
    assert!(
        run.stdout.contains("installed plugin `sprites`") && run.stdout.contains("is not on PATH"),
        "{}",
        run.stdout
    );
    let bin = prefix.path().join("bin/clauderon");
    let plugin = home.path().join("plugins/libclauderon_sprites.so");
    assert!(plugin.is_file());
    // Nothing but the binary sits beside it: the plugin can only come from the home.
    let beside: Vec<_> = std::fs::read_dir(prefix.path().join("bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["clauderon"]);
    for (file, marker) in [
        ("share/bash-completion/completions/clauderon", "complete"),
        ("share/zsh/site-functions/_clauderon", "#compdef clauderon"),
        (
            "share/fish/vendor_completions.d/clauderon.fish",
            "complete -c clauderon",
        ),
    ] {
        let text = std::fs::read_to_string(prefix.path().join(file)).unwrap();
        assert!(text.contains(marker), "{file}: {text:.200}");
    }
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(
            prefix
                .path()
                .join("share/bash-completion/completions/clauderon"),
        )
        .status()
        .unwrap();
    assert!(syntax.success());

    let run_installed =
        |args: &[&str]| -> Run { home.clauderon_at(&bin).args(args).output().unwrap().into() };
    let list = run_installed(&["plugins", "list", "--json"]).json();
    let sprites = crate::support::row_named(&list, "sprites");
    assert_eq!(sprites["status"], "loaded", "{list:#}");
    assert_eq!(sprites["source"], "home", "{list:#}");
    assert_eq!(sprites["path"], plugin.to_str().unwrap());

    let repo = git_repo();
    let run = run_installed(&[
        "create",
        "--repo",
        repo.path().to_str().unwrap(),
        "--prompt",
        "from an installed clauderon",
        "--print",
    ]);
    assert_exit(&run, 0);
    assert!(
        run.stdout
            .contains("demo-agent: prompt: from an installed clauderon")
            && run.stdout.contains("demo-agent: done"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    // The daemon the installed CLI started is the installed binary.
    let status = run_installed(&["daemon", "status", "--json"]).json();
    let pid = status["pid"].as_u64().unwrap();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe, bin);
    assert_exit(&run_installed(&["daemon", "stop"]), 0);

    // Installing again over the running files is safe and says the plugin is current.
    let run = install(&home, prefix.path());
    assert_exit(&run, 0);
    assert!(
        run.stdout.contains("is already installed"),
        "{}",
        run.stdout
    );
}
