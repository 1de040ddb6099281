#!/usr/bin/env bash
# Small operations as an engine makes them, in two process shapes measured
# in the same run (see crates/mmc-bench/src/small_ops.rs): a client in the
# MetaService's process (the baseline) beside a Rust, a C and a Python client
# each in a process of its own, with the MetaService (`mmc meta`) and the
# memory provider (`mmc local`) in processes of their own. Builds what it
# needs (release `mmc`, `mmc-bench`, `libmemcache.so`, and `memcache_rs` into
# .venv with maturin); every process it starts is stopped by PID.
#
# Usage: scripts/bench-small-ops.sh [mmc-bench small-ops options]
# Writes bench-out/small-ops.md (the table) and bench-out/small-ops.json.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "maturin>=1.9.4,<2"
echo "== building mmc, mmc-bench, libmemcache (release) and memcache_rs (release, into $VENV)"
cargo build --release -p mmc-cli -p mmc-bench -p mmc-capi
(cd crates/mmc-python && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" maturin develop --release --quiet)
OUT="$ROOT/bench-out"
mkdir -p "$OUT"
"$ROOT/target/release/mmc-bench" small-ops --python "$VENV/bin/python" --json "$OUT/small-ops.json" "$@" |
  tee "$OUT/small-ops.md"
