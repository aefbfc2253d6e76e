#!/bin/sh
# clauderon quick start: build everything, start the local Sprites emulator, and run one session
# with the demo agent (examples/demo-agent) on a sample repository, all in a temporary
# CLAUDERON_HOME. The emulator and the daemon are stopped at exit (QUICKSTART_KEEP=1 keeps them
# and the home so the printed next commands work).
set -eu
cd "$(dirname "$0")/.."
root=$PWD
echo "==> building (cargo build --workspace)"
cargo build --workspace --quiet
bin="$root/target/debug"

work=$(mktemp -d "${TMPDIR:-/tmp}/clauderon-quickstart.XXXXXX")
token="quickstart-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
export CLAUDERON_HOME="$work/home"
export SPRITES_API_KEY="$token"
mkdir -p "$CLAUDERON_HOME"
emu_pid=""

cleanup() {
  status=$?
  if [ "${QUICKSTART_KEEP:-0}" = 1 ]; then
    echo "==> kept running: emulator pid $emu_pid, home $CLAUDERON_HOME"
    exit "$status"
  fi
  "$bin/clauderon" daemon stop >/dev/null 2>&1 || true
  if [ -n "$emu_pid" ]; then
    kill "$emu_pid" 2>/dev/null || true
    wait "$emu_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "==> starting the Sprites emulator"
"$bin/sprites-emulator" --listen 127.0.0.1:0 --data "$work/emulator" --token "$token" \
  --idle-to-warm 10s --warm-to-cold 20s >"$work/emulator.addr" 2>"$work/emulator.log" &
emu_pid=$!
# The emulator prints its bound address as its first line: wait for it (at most 30 s).
i=0
until [ -s "$work/emulator.addr" ]; do
  i=$((i + 1))
  if [ "$i" -gt 300 ] || ! kill -0 "$emu_pid" 2>/dev/null; then
    echo "the emulator did not start; its log:" >&2
    cat "$work/emulator.log" >&2
    exit 1
  fi
  sleep 0.1
done
addr=$(head -n 1 "$work/emulator.addr")
echo "    listening on http://$addr"

cat >"$CLAUDERON_HOME/config.toml" <<TOML
default_backend = "sprites"

[server]
listen = "127.0.0.1:0"

[agent]
preset = "custom"
command = ["/home/sprite/.clauderon/bin/clauderon-demo-agent"]
prompt_args = ["{prompt}"]
model_args = ["--model", "{model}"]
plan_args = ["--plan"]
print_args = ["--print"]
resume_args = ["--resume", "{resume}"]
# The host installs the demo agent into each sprite before it starts.
files = { ".clauderon/bin/clauderon-demo-agent" = "$root/examples/demo-agent/clauderon-demo-agent" }

[sprites]
api_url = "http://$addr"
TOML

echo "==> making a sample repository"
repo="$work/sample"
mkdir -p "$repo"
git -C "$repo" init -q -b main
printf '# sample\n' >"$repo/README.md"
git -C "$repo" add README.md
git -C "$repo" -c user.name=quickstart -c user.email=quickstart@example.invalid commit -q -m "first commit"

echo "==> clauderon create --backend sprites --print"
"$bin/clauderon" create --backend sprites --repo "$repo" --name quickstart \
  --prompt "add a greeting" --print

cat <<NEXT

==> done. Next, with the same environment (run with QUICKSTART_KEEP=1 to keep it):
    export CLAUDERON_HOME=$CLAUDERON_HOME SPRITES_API_KEY=<the emulator token>
    $bin/clauderon create --repo $repo --prompt "hello" --name demo
    $bin/clauderon attach demo            # Ctrl-] detaches, the agent keeps running
    $bin/clauderon hibernate demo && $bin/clauderon status demo
    $bin/clauderon wake demo
    $bin/clauderon checkpoint create demo "before" && $bin/clauderon checkpoint list demo
    $bin/clauderon delete demo --yes
NEXT
if [ "${QUICKSTART_KEEP:-0}" = 1 ]; then
  echo "    export SPRITES_API_KEY=$token"
fi
