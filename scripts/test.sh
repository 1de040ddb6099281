#!/usr/bin/env bash
# Installs everything the tests need, then runs the whole test suite:
# spelling (typos), formatting, lint and dependency (cargo deny) checks, Rust
# unit/property/integration tests (real MetaService and LocalService
# processes on loopback), the Python package's pytest suite, the engine
# integration tests (SGLang / LMCache / vLLM storage code against
# memcache_rs) and the C/C++ API tests (including valgrind).
# Usage: scripts/test.sh        (CI runs exactly this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

echo "== typos (spelling, _typos.toml)"
TYPOS=.venv/bin/typos
[ -x "$TYPOS" ] || TYPOS=typos
"$TYPOS"
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
# Advisories are not checked here: `cargo deny check advisories` downloads the
# RustSec advisory database from GitHub, which the CI machine cannot reach.
# Where github.com is reachable, run `cargo deny check advisories` by hand
# (CONTRIBUTING.md).
echo "== cargo deny (licenses, bans, sources; deny.toml)"
cargo deny check licenses bans sources
echo "== cargo test"
cargo test --workspace
if [ -x scripts/test-python.sh ]; then
  echo "== python tests"
  scripts/test-python.sh
fi
if [ -x scripts/test-engines.sh ]; then
  echo "== engine integration tests (SGLang, LMCache, vLLM storage code)"
  scripts/test-engines.sh
fi
if [ -x scripts/test-c.sh ]; then
  echo "== C / C++ tests"
  scripts/test-c.sh
fi
echo "== all tests passed"
