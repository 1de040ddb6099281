#!/usr/bin/env bash
# The full benchmark comparison in one command: installs what the baselines
# need when missing (Debian redis-server; Mooncake Store's Python client,
# mooncake-transfer-engine-non-cuda, with numpy into .venv, and the shared
# libraries it loads), builds `mmc` and `mmc-bench` (release) and runs `mmc-bench`, which
# measures MemCache beside memcpy, raw TCP, Redis and Mooncake in the same run.
#
# Usage: scripts/bench.sh [mmc-bench options]      e.g. scripts/bench.sh --quick
#
# Writes bench-out/results.json, bench-out/bench-bandwidth.svg,
# bench-out/output.txt (the printed report) and bench-out/logs/ (child
# processes). Needs root (network namespaces for the cross-host workloads and
# for Mooncake, whose master refuses loopback-only hosts); every process and
# namespace the bench creates is removed when it ends.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

if ! command -v redis-server >/dev/null; then
  echo "== installing redis-server (Debian package)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  # The package may start a system instance; the bench runs its own.
  if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
    systemctl stop redis-server || true
  fi
fi

VENV="$ROOT/.venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if ! "$VENV/bin/python" -c "import mooncake.store, numpy" 2>/dev/null || [ ! -x "$VENV/bin/mooncake_master" ]; then
  echo "== installing numpy and mooncake-transfer-engine-non-cuda into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check numpy mooncake-transfer-engine-non-cuda
fi
if ! ldconfig -p | grep -q libibverbs.so.1 || ! ldconfig -p | grep -q librdmacm.so.1 || ! ldconfig -p | grep -q libnuma.so.1; then
  echo "== installing libibverbs1 librdmacm1 libnuma1 (Mooncake's shared libraries)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libibverbs1 librdmacm1 libnuma1 >/dev/null
fi

echo "== building mmc and mmc-bench (release)"
cargo build --release -p mmc-cli -p mmc-bench

OUT="$ROOT/bench-out"
mkdir -p "$OUT"
echo "== mmc-bench $*"
"$ROOT/target/release/mmc-bench" --mooncake-python "$VENV/bin/python" --json "$OUT/results.json" "$@" |
  tee "$OUT/output.txt"
echo "== results in $OUT (results.json, bench-bandwidth.svg, output.txt, logs/)"
