#!/usr/bin/env bash
# Builds the memcache_rs Python package (crates/mmc-python) into the
# virtualenv .venv and runs its pytest suite against a real cluster of `mmc`
# processes that the fixtures start on loopback ports.
# Usage: scripts/test-python.sh [extra pytest arguments]
# Needs only python3 (with venv and pip), cargo, and the PyPI / crates.io
# registries; exits non-zero when anything fails. The status-page browser test
# also needs Playwright (PyPI) and Chromium (Debian package `chromium`, at
# /usr/bin/chromium): both are installed here when missing, Chromium with
# apt-get when running as root (Playwright's own browser download is not used).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  python3 -m venv "$VENV"
fi
export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:$PATH"

echo "== installing maturin, pytest, numpy, playwright"
python -m pip install --quiet --disable-pip-version-check --upgrade pip
python -m pip install --quiet --disable-pip-version-check "maturin>=1.9.4,<2" pytest numpy playwright

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing chromium (apt-get) for the status page test"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; } \
      || echo "== chromium could not be installed; test_status_page fails under CI=true, skips otherwise"
  else
    echo "== /usr/bin/chromium missing (install the chromium package); test_status_page fails under CI=true, skips otherwise"
  fi
fi

echo "== building memcache_rs into $VENV"
(cd crates/mmc-python && maturin develop --release)

echo "== building the mmc binary the fixtures run"
cargo build -p mmc-cli
export MMC_BIN="$ROOT/target/debug/mmc"

echo "== pytest crates/mmc-python/tests"
python -m pytest crates/mmc-python/tests -q "$@"
