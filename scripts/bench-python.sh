#!/usr/bin/env bash
# Python benchmark: memcache_rs against Mooncake Store's Python client
# (mooncake-transfer-engine-non-cuda from PyPI, its mooncake_master, TCP
# protocol), the same workload in one run, for two layouts (memory in the
# client process / in other processes of the host). Prints the tables and
# writes them to bench-out/python/.
#
# Usage: scripts/bench-python.sh [--scale 0.2] [other bench_vs_mooncake.py options]
#
# Everything runs inside a private network namespace (unshare -n, as root):
# Mooncake's transfer engine refuses to start without a non-loopback
# interface, so the namespace gets a veth pair with 198.18.0.1/24 that exists
# only inside it. All traffic stays in the namespace; every process started
# here is stopped by its PID on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
# shellcheck source=lib/bench-netns.sh
. "$ROOT/scripts/lib/bench-netns.sh"

if [ "${MMC_BENCH_IN_NETNS:-}" != 1 ]; then
  VENV="$ROOT/.venv"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH"
  echo "== installing maturin, numpy, mooncake-transfer-engine-non-cuda"
  python -m pip install --quiet --disable-pip-version-check "maturin>=1.9.4,<2" numpy mooncake-transfer-engine-non-cuda
  bench_mooncake_libs
  echo "== building memcache_rs (release) and mmc"
  (cd crates/mmc-python && maturin develop --release)
  cargo build --release -p mmc-cli
  exec env MMC_BENCH_IN_NETNS=1 unshare --net -- "$0" "$@"
fi

# ---- inside the private network namespace ------------------------------------------
bench_netns_up

OUT="$ROOT/bench-out/python"
mkdir -p "$OUT"
MMC="$ROOT/target/release/mmc"
PY="$ROOT/.venv/bin/python"
BENCH="$ROOT/crates/mmc-python/bench/bench_vs_mooncake.py"


bench_start_clusters "$MMC" "$ROOT/.venv/bin/mooncake_master" "$OUT"

run_bench() {
  echo "== bench, layout $1"
  "$PY" "$BENCH" --layout "$1" --mmc-meta 127.0.0.1:5000 \
    --mooncake-master 127.0.0.1:50051 --mooncake-metadata http://127.0.0.1:8080/metadata \
    --json "$OUT/results-$1.json" "${@:2}" >"$OUT/table-$1.md" 2>"$OUT/bench-$1.log"
  cat "$OUT/table-$1.md"
  echo
}

# Layout local: the benchmarking client holds the only Mooncake segment (and
# MemCache places replicas in the writer's own segment first).
run_bench local "$@"

# Layout remote: the memory is in other processes (the 2 mmc local daemons;
# a Mooncake provider process), the benchmarking clients contribute none.
echo "== Mooncake: a memory provider process (2GB segment)"
"$PY" "$BENCH" --mooncake-provider --segment $((2 << 30)) \
  --mooncake-master 127.0.0.1:50051 --mooncake-metadata http://127.0.0.1:8080/metadata \
  >"$OUT/mooncake-provider.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 200); do grep -q "provider ready" "$OUT/mooncake-provider.log" && break; sleep 0.1; done
grep -q "provider ready" "$OUT/mooncake-provider.log" || { echo "mooncake provider did not start" >&2; exit 1; }
sleep 1
run_bench remote "$@"
echo "== tables and logs in $OUT"
