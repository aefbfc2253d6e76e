//! The real agent CLIs (Claude Code and Codex from npm, at the versions `scripts/install-agents.sh`
//! pins) installed where the emulator's sprites see them: `/usr/local/bin`, as sprites.dev's base
//! image ships them on PATH. `.ci/run` installs them; a test run without them installs them once.

use std::sync::OnceLock;

/// Makes sure `claude` and `codex` are installed (once per test run); panics with the
/// script's output when they cannot be.
pub fn ensure_installed() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let r = DONE.get_or_init(|| {
        let script = super::artifacts::workspace_root().join("scripts/install-agents.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed ({}):\n{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = r {
        panic!("the real agent CLIs are not installed: {e}");
    }
}
