#!/usr/bin/env bash
# Installs the real agent CLIs clauderon is tested with, at the versions README pins, from npm
# into /usr/local (their `claude` and `codex` land on /usr/local/bin): where the emulator's
# sprites see them, as sprites.dev's base image ships them on PATH. Idempotent: a CLI already
# at its pinned version is left alone. Used by .ci/run and, when missing, by the tests.
#
#   scripts/install-agents.sh            # both
#   PREFIX=/opt/x scripts/install-agents.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# The versions clauderon's unattended start was tested with (README, "Real agents").
CLAUDE_CODE_VERSION=2.1.332
CODEX_VERSION=0.171.0
PREFIX=${PREFIX:-/usr/local}

if ! command -v npm >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >/dev/null; }
    fi
fi
command -v npm >/dev/null 2>&1 || { echo "install-agents: npm is needed (apt-get install npm)" >&2; exit 1; }

have() { # have BIN VERSION: the CLI at PREFIX/bin/BIN reports VERSION
    [ -x "$PREFIX/bin/$1" ] && "$PREFIX/bin/$1" --version 2>/dev/null | grep -q "$2"
}

want=()
have claude "$CLAUDE_CODE_VERSION" || want+=("@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION")
have codex "$CODEX_VERSION" || want+=("@openai/codex@$CODEX_VERSION")
if [ ${#want[@]} -gt 0 ]; then
    echo "install-agents: installing ${want[*]} into $PREFIX" >&2
    # Claude Code's package links its native binary in a postinstall step.
    npm install -g --prefix "$PREFIX" --no-fund --no-audit --loglevel=error "${want[@]}" >&2
fi
have claude "$CLAUDE_CODE_VERSION" || { echo "install-agents: $PREFIX/bin/claude is not $CLAUDE_CODE_VERSION after installing" >&2; exit 1; }
have codex "$CODEX_VERSION" || { echo "install-agents: $PREFIX/bin/codex is not $CODEX_VERSION after installing" >&2; exit 1; }
echo "claude $CLAUDE_CODE_VERSION and codex $CODEX_VERSION are in $PREFIX/bin" >&2
