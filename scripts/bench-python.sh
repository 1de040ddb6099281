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

if [ "${MMC_BENCH_IN_NETNS:-}" != 1 ]; then
  VENV="$ROOT/.venv"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH"
  echo "== installing maturin, numpy, mooncake-transfer-engine-non-cuda"
  python -m pip install --quiet --disable-pip-version-check "maturin>=1.9.4,<2" numpy mooncake-transfer-engine-non-cuda
  if ! ldconfig -p | grep -q libibverbs.so.1 || ! ldconfig -p | grep -q librdmacm.so.1 || ! ldconfig -p | grep -q libnuma.so.1; then
    echo "== installing libibverbs1 librdmacm1 libnuma1 (Mooncake's shared libraries)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libibverbs1 librdmacm1 libnuma1 >/dev/null
  fi
  echo "== building memcache_rs (release) and mmc"
  (cd crates/mmc-python && maturin develop --release)
  cargo build --release -p mmc-cli
  exec env MMC_BENCH_IN_NETNS=1 unshare --net -- "$0" "$@"
fi

# ---- inside the private network namespace ------------------------------------------
ip link set lo up
ip link add mcbench0 type veth peer name mcbench1
ip addr add 198.18.0.1/24 dev mcbench0
ip link set mcbench0 up
ip link set mcbench1 up

OUT="$ROOT/bench-out/python"
mkdir -p "$OUT"
MMC="$ROOT/target/release/mmc"
PY="$ROOT/.venv/bin/python"
BENCH="$ROOT/crates/mmc-python/bench/bench_vs_mooncake.py"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}

printf '[meta]\nlog_level = "warn"\n[local]\nlog_level = "warn"\n' >"$OUT/mmc.toml"
echo "== MemCache: mmc meta + 2 x mmc local (1GB segments)"
"$MMC" meta --config "$OUT/mmc.toml" --listen 127.0.0.1:5000 --http "" >"$OUT/mmc-meta.log" 2>&1 &
PIDS+=($!)
wait_port 5000
for i in 1 2; do
  "$MMC" local --config "$OUT/mmc.toml" --meta 127.0.0.1:5000 --dram-size 1GB >"$OUT/mmc-local-$i.log" 2>&1 &
  PIDS+=($!)
done

echo "== Mooncake: mooncake_master (HTTP metadata server embedded)"
"$ROOT/.venv/bin/mooncake_master" --rpc_port=50051 --enable_http_metadata_server=true \
  --http_metadata_server_host=127.0.0.1 --http_metadata_server_port=8080 --metrics_port=9003 \
  >"$OUT/mooncake-master.log" 2>&1 &
PIDS+=($!)
wait_port 50051
wait_port 8080
sleep 1

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
