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
VENV="${MMC_ENGINES_VENV:-$ROOT/.venv-engines}"

if [ "${MMC_BENCH_IN_NETNS:-}" != 1 ]; then
  [ -x "$VENV/bin/python" ] || { echo "no engine venv at $VENV (run scripts/test-engines.sh first)" >&2; exit 1; }
  "$VENV/bin/python" -c "import memcache_rs.integrations.sglang, sglang.srt.mem_cache.storage.backend_factory" 2>/dev/null ||
    { echo "$VENV lacks memcache_rs or sglang (run scripts/test-engines.sh first)" >&2; exit 1; }
  if ! ldconfig -p | grep -q libibverbs.so.1 || ! ldconfig -p | grep -q librdmacm.so.1 || ! ldconfig -p | grep -q libnuma.so.1; then
    echo "== installing libibverbs1 librdmacm1 libnuma1 (Mooncake's shared libraries)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libibverbs1 librdmacm1 libnuma1 >/dev/null
  fi
  if [ ! -x "$VENV/bin/mooncake_master" ]; then
    echo "== installing mooncake-transfer-engine-non-cuda into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check mooncake-transfer-engine-non-cuda
  fi
  if [ -z "${MMC_BIN:-}" ] && [ ! -x "$ROOT/target/release/mmc" ]; then
    echo "== building mmc (release)"
    cargo build --release -p mmc-cli
  fi
  exec env MMC_BENCH_IN_NETNS=1 unshare --net -- "$0" "$@"
fi

# ---- inside the private network namespace ------------------------------------------
ip link set lo up
ip link add mcbench0 type veth peer name mcbench1
ip addr add 198.18.0.1/24 dev mcbench0
ip link set mcbench0 up
ip link set mcbench1 up

OUT="$ROOT/bench-out/sglang"
mkdir -p "$OUT"
rm -f "$OUT"/table-*.md "$OUT"/results-*.json "$OUT"/*.log
MMC="${MMC_BIN:-$ROOT/target/release/mmc}"
PY="$VENV/bin/python"
BENCH="$ROOT/crates/mmc-python/bench/bench_sglang_backend.py"
PROVIDER="$ROOT/crates/mmc-python/bench/bench_vs_mooncake.py"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 400); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) vCPU; memory: $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "python: $("$PY" -c 'import sys; print(sys.version.split()[0])'); $("$PY" -m pip list --disable-pip-version-check 2>/dev/null | grep -iE '^(sglang|torch|mooncake-transfer-engine-non-cuda|memcache_rs) ' | awk '{print $1" "$2}' | paste -sd, -)"
  echo "mmc: $MMC ($(git -C "$(dirname "$MMC")/../.." rev-parse --short HEAD 2>/dev/null || echo "commit unknown"))"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/env.txt"
cat "$OUT/env.txt"

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
"$VENV/bin/mooncake_master" --rpc_port=50051 --enable_http_metadata_server=true \
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
