#!/usr/bin/env bash
# Engine integration tests: runs inference engines' own KV-cache storage code
# (SGLang's HiCache backends, LMCache, vLLM / Mooncake-compatible clients)
# against memcache_rs and a real cluster of `mmc` processes.
#
# Creates the virtualenv .venv-engines once and reuses it (it is skipped when
# .venv-engines/bin/python exists): torch==2.14.1, numpy, maturin, pytest,
# then sglang==0.5.23, lmcache==0.5.6 and vllm==0.34.0 with --no-deps plus the
# light dependencies their storage modules import, pinned in
# crates/mmc-python/engine_tests/requirements.txt. Then builds memcache_rs into
# it (maturin develop --release) and the `mmc` binary, and runs
# `pytest crates/mmc-python/engine_tests`. Everything runs on the CPU.
# Usage: scripts/test-engines.sh [extra pytest arguments]
# Exits non-zero when anything fails; under CI=true a test whose engine module
# cannot be imported fails instead of skipping.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv-engines"
REQS="crates/mmc-python/engine_tests/requirements.txt"
PIP=(python -m pip install --quiet --disable-pip-version-check)

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV (once: torch and the engines are large)"
  python3 -m venv "$VENV"
  (
    export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH"
    "${PIP[@]}" --upgrade pip
    # A large wheel (torch's dependencies are ~400 MB each) sometimes stops
    # mid-download: pip resumes it (--resume-retries), and a whole install
    # that still fails is tried again; wheels already fetched come from
    # pip's cache.
    big() {
      local try
      for try in 1 2 3; do
        "${PIP[@]}" --resume-retries 20 "$@" && return 0
        echo "== pip install $* failed (try $try of 3)" >&2
        sleep 5
      done
      return 1
    }
    big torch==2.14.1 numpy "maturin>=1.9.4,<2" pytest
    big --no-deps sglang==0.5.23 lmcache==0.5.6 vllm==0.34.0
    big -r "$REQS"
  ) || { rm -rf "$VENV"; echo "== could not build $VENV" >&2; exit 1; }
fi
export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:$PATH"

echo "== checking the pinned engine dependencies"
"${PIP[@]}" -r "$REQS"

echo "== building memcache_rs into $VENV"
(cd crates/mmc-python && maturin develop --release)

echo "== building the mmc binary the fixtures run"
cargo build -p mmc-cli
export MMC_BIN="$ROOT/target/debug/mmc"

echo "== pytest crates/mmc-python/engine_tests"
python -m pytest crates/mmc-python/engine_tests -q "$@"
