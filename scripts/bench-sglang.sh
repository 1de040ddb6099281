#!/usr/bin/env bash
# SGLang HiCache's backend loop (batch_exists + batch_get_v1, and batch_set_v1, of
# 128 pages) over MemCache's native backend (memcache_rs.integrations.sglang.MemCacheStore)
# and over SGLang's own Mooncake backend on the real Mooncake client, in one run, for
# two layouts (memory in the benchmarking process / in other processes of the host).
# Prints the tables and writes them to bench-out/sglang/ (table-*.md, results-*.json,
# logs).
#
# Usage: scripts/bench-sglang.sh [bench_sglang_backend.py options, e.g. --layers 32 --get-iters 50]
#        LAYOUTS="remote" scripts/bench-sglang.sh      # one layout only
#        MMC_BIN=/path/to/mmc scripts/bench-sglang.sh  # an mmc built elsewhere (no cargo build)
#
# Needs the engine virtualenv (.venv-engines: torch, sglang, memcache_rs; see
# scripts/test-engines.sh); installs mooncake-transfer-engine-non-cuda into it and the
# apt libraries Mooncake needs, builds `mmc` (release) when target/release/mmc is missing.
#
# Everything runs inside a private network namespace (unshare -n, as root), as in
# scripts/bench-python.sh: Mooncake's transfer engine refuses to start without a
# non-loopback interface, so the namespace gets a veth pair with 198.18.0.1/24 that
# exists only inside it. Every process started here is stopped by its PID on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
# shellcheck source=lib/bench-netns.sh
. "$ROOT/scripts/lib/bench-netns.sh"
VENV="${MMC_ENGINES_VENV:-$ROOT/.venv-engines}"

if [ "${MMC_BENCH_IN_NETNS:-}" != 1 ]; then
  [ -x "$VENV/bin/python" ] || { echo "no engine venv at $VENV (run scripts/test-engines.sh first)" >&2; exit 1; }
  "$VENV/bin/python" -c "import memcache_rs.integrations.sglang, sglang.srt.mem_cache.storage.backend_factory" 2>/dev/null ||
    { echo "$VENV lacks memcache_rs or sglang (run scripts/test-engines.sh first)" >&2; exit 1; }
  bench_mooncake_libs
  if [ ! -x "$VENV/bin/mooncake_master" ]; then
    echo "== installing mooncake-transfer-engine-non-cuda into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check mooncake-transfer-engine-non-cuda
  fi
  if [ -z "${MMC_BIN:-}" ]; then
    # Always (a no-op when up to date): a stale mmc may speak an older protocol.
    echo "== building mmc (release)"
    cargo build --release -p mmc-cli
  fi
  exec env MMC_BENCH_IN_NETNS=1 unshare --net -- "$0" "$@"
fi

# ---- inside the private network namespace ------------------------------------------
bench_netns_up

OUT="$ROOT/bench-out/sglang"
mkdir -p "$OUT"
rm -f "$OUT"/table-*.md "$OUT"/results-*.json "$OUT"/*.log
MMC="${MMC_BIN:-$ROOT/target/release/mmc}"
PY="$VENV/bin/python"
BENCH="$ROOT/crates/mmc-python/bench/bench_sglang_backend.py"
PROVIDER="$ROOT/crates/mmc-python/bench/bench_vs_mooncake.py"


{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) vCPU; memory: $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "python: $("$PY" -c 'import sys; print(sys.version.split()[0])'); $("$PY" -m pip list --disable-pip-version-check 2>/dev/null | grep -iE '^(sglang|torch|mooncake-transfer-engine-non-cuda|memcache_rs) ' | awk '{print $1" "$2}' | paste -sd, -)"
  echo "mmc: $MMC ($(git -C "$(dirname "$MMC")/../.." rev-parse --short HEAD 2>/dev/null || echo "commit unknown"))"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/env.txt"
cat "$OUT/env.txt"

bench_start_clusters "$MMC" "$VENV/bin/mooncake_master" "$OUT"

run_bench() {
  echo "== bench, layout $1"
  "$PY" "$BENCH" --layout "$1" --mmc-meta 127.0.0.1:5000 \
    --mooncake-master 127.0.0.1:50051 --mooncake-metadata http://127.0.0.1:8080/metadata \
    --json "$OUT/results-$1.json" "${@:2}" >"$OUT/table-$1.md" 2>"$OUT/bench-$1.log" ||
    { echo "bench failed, layout $1; last lines of $OUT/bench-$1.log:" >&2; tail -20 "$OUT/bench-$1.log" >&2; exit 1; }
  cat "$OUT/table-$1.md"
  echo
}

LAYOUTS="${LAYOUTS:-local remote}"
# Layout local: the benchmarking process holds the only Mooncake segment (and MemCache
# places a writer's objects in its own segment first).
case " $LAYOUTS " in *" local "*) run_bench local "$@" ;; esac

# Layout remote: the memory is in other processes (the 2 mmc local daemons; a Mooncake
# provider process); the benchmarking process contributes none.
case " $LAYOUTS " in *" remote "*)
  echo "== Mooncake: a memory provider process (2GB segment)"
  "$PY" "$PROVIDER" --mooncake-provider --segment $((2 << 30)) \
    --mooncake-master 127.0.0.1:50051 --mooncake-metadata http://127.0.0.1:8080/metadata \
    >"$OUT/mooncake-provider.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 300); do grep -q "provider ready" "$OUT/mooncake-provider.log" && break; sleep 0.1; done
  grep -q "provider ready" "$OUT/mooncake-provider.log" || { echo "mooncake provider did not start" >&2; exit 1; }
  sleep 1
  run_bench remote "$@"
  ;;
esac
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/env.txt"
echo "== tables and logs in $OUT"
