#!/usr/bin/env bash
# Runs the whole test suite (README's test command) after installing what the tests drive, so a
# fresh machine needs nothing else: the C toolchain, git, curl and script(1) the sandbox tests
# use, headless Chromium for the web UI tests, tmux for the TUI tests, the real agent CLIs (Claude Code, Codex) at their
# pinned versions, and the musl target for the Sprites plugin's small static relay.
# Arguments are passed to `cargo test` (e.g. `scripts/test.sh -p clauderon-tests -- web::`).
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
    if need apt-get; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
    else
        echo "test.sh: install $* (no apt-get here)" >&2
    fi
}
need git || apt_install git
need cc || apt_install gcc
# The tunnel and proxy-wiring tests run curl inside sandboxes; the terminal tests need script(1).
need curl || apt_install curl ca-certificates
need script || apt_install bsdutils || apt_install util-linux
# The web UI tests drive headless Chromium over the DevTools protocol.
need chromium || apt_install chromium
# The TUI tests drive `clauderon tui` inside tmux (send-keys, capture-pane).
need tmux || apt_install tmux
# The real agent CLIs at the pinned versions, where the emulator's sprites see them
# (/usr/local/bin); the real-agent tests drive them.
need npm || apt_install nodejs npm
bash scripts/install-agents.sh
# The Sprites plugin embeds a static tunnel relay; with musl it is ~0.5 MB (the test wants <= 1 MiB),
# without it the build falls back to a larger static glibc one (plugins/sprites/build.rs).
rustup target list --installed 2>/dev/null | grep -q '^x86_64-unknown-linux-musl$' \
    || rustup target add x86_64-unknown-linux-musl

# `TEST_DEPS_ONLY=1`: only the installs (.ci/run does them before it builds anything).
[ "${TEST_DEPS_ONLY:-0}" = 1 ] && exit 0
exec cargo test --workspace "$@"
