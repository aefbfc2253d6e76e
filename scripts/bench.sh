#!/usr/bin/env bash
# Runs every benchmark in README's table, one after another (run it on an idle machine: each
# prints its numbers next to a baseline measured in the same run). The output goes to the
# terminal and to target/bench-<date>.log.
#
#   scripts/bench.sh              # all of them
#   scripts/bench.sh proxy sync   # only those named (the names below)
#
# The cache_build bench needs crates.io and registry.npmjs.org; the proxy bench's mitmproxy
# baseline needs mitmdump in target/mitmproxy-venv or on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL=(plugin_load store_list daemon_api emulator_exec client_exec proxy web_list tui_table
    backend_session sync cache_restore cache_build)
WANT=("$@")
[ ${#WANT[@]} -eq 0 ] && WANT=("${ALL[@]}")

mkdir -p target
LOG="target/bench-$(date +%Y-%m-%d).log"
echo "== $(date -Is) on $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$LOG"

# The benches that drive the real binaries use the release builds.
cargo build --release -p clauderon -p clauderon-sprites -p sprites-emulator 2>&1 | tail -1

run() {
    local name=$1
    shift
    echo "== $name: $*" | tee -a "$LOG"
    "$@" 2>&1 | grep -v '^\s*\(Compiling\|Finished\|Running\|Blocking\)' | tee -a "$LOG"
}

for b in "${WANT[@]}"; do
    case "$b" in
    plugin_load | store_list | daemon_api | proxy | tui_table)
        run "$b" cargo bench -q -p clauderon --bench "$b" ;;
    emulator_exec) run "$b" cargo bench -q -p sprites-emulator --bench exec ;;
    client_exec | backend_session | sync | cache_restore | cache_build)
        run "$b" cargo bench -q -p clauderon-sprites --bench "$b" ;;
    web_list)
        CLAUDERON_WEB_BENCH=1 run "$b" cargo test -q -p clauderon-tests --test it -- \
            web::list_page_speed --nocapture ;;
    *) echo "bench.sh: no benchmark named $b (one of: ${ALL[*]})" >&2; exit 2 ;;
    esac
done
echo "== done; the log: $LOG"
