#!/usr/bin/env bash
# Installs clauderon for daily use: builds a release, then installs
#   - the `clauderon` binary into PREFIX/bin (default ~/.local/bin),
#   - the Sprites plugin into $CLAUDERON_HOME/plugins (default ~/.clauderon/plugins), through
#     `clauderon plugins install`, which verifies it first; the plugin carries its static tunnel
#     relay inside it, so there is no separate relay file to place,
#   - shell completions for bash, zsh and fish under PREFIX/share.
# Every file is written under a temporary name and renamed into place, so a running clauderon
# or daemon is never overwritten in place.
#
# Usage: scripts/install.sh [--prefix DIR] [--from DIR]
#   --prefix DIR  where bin/ and share/ go (default: $PREFIX, else ~/.local)
#   --from DIR    install already-built files from DIR (a cargo target/<profile> directory)
#                 instead of building a release
set -euo pipefail

prefix="${PREFIX:-$HOME/.local}"
from=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) prefix="${1#--prefix=}"; shift ;;
    --from) from="${2:?--from needs a directory}"; shift 2 ;;
    --from=*) from="${1#--from=}"; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
say() { if [ -t 1 ]; then echo "==> $*"; else echo "$*"; fi; }

if [ -z "$from" ]; then
  say "building a release (cargo build --release --locked -p clauderon -p clauderon-sprites)"
  (cd "$root" && cargo build --release --locked -p clauderon -p clauderon-sprites)
  from="$root/target/release"
fi
for f in clauderon libclauderon_sprites.so; do
  if [ ! -f "$from/$f" ]; then
    echo "install.sh: $from/$f is missing; build it first (cargo build --release) or drop --from" >&2
    exit 1
  fi
done

# Writes stdin to $1 through a temporary file renamed into place (mode $2).
place() {
  local dest="$1" mode="$2" tmp
  mkdir -p "$(dirname "$dest")"
  tmp="$(dirname "$dest")/.$(basename "$dest").install-$$"
  cat > "$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$dest"
}

# The release profile keeps debug info (for benchmarks and backtraces); installed copies
# drop it (a tenth of the size) when binutils' strip is there.
staged="$(mktemp -d)"
trap 'rm -rf "$staged"' EXIT
cp "$from/clauderon" "$from/libclauderon_sprites.so" "$staged/"
if command -v strip > /dev/null; then
  strip --strip-debug "$staged/clauderon" "$staged/libclauderon_sprites.so"
fi

bin="$prefix/bin/clauderon"
place "$bin" 0755 < "$staged/clauderon"
say "installed $bin"

"$bin" plugins install "$staged/libclauderon_sprites.so"

"$bin" completions bash | place "$prefix/share/bash-completion/completions/clauderon" 0644
"$bin" completions zsh | place "$prefix/share/zsh/site-functions/_clauderon" 0644
"$bin" completions fish | place "$prefix/share/fish/vendor_completions.d/clauderon.fish" 0644
say "installed completions for bash, zsh and fish under $prefix/share"

case ":$PATH:" in
  *":$prefix/bin:"*) ;;
  *) say "note: $prefix/bin is not on PATH; add it, e.g. export PATH=\"$prefix/bin:\$PATH\"" ;;
esac
say "next: put your Sprites token in place (see README, \"Use with sprites.dev\"), then"
say "      clauderon config credentials && clauderon create --repo PATH --prompt TEXT"
