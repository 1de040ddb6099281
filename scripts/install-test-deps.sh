#!/usr/bin/env bash
# Installs what the test suite needs: the system packages (Debian/Ubuntu, as
# root or with sudo), the rustfmt and clippy components, `typos` (into the
# repository's .venv) and `cargo-deny` (cargo install). Safe to run
# repeatedly: only what is missing is installed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

need=()
command -v valgrind >/dev/null || need+=(valgrind)
command -v gcc >/dev/null || need+=(gcc)
command -v g++ >/dev/null || need+=(g++)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v ip >/dev/null || need+=(iproute2)
# etcd-client's build compiles etcd's protobuf definitions; the HA tests
# (crates/mmc-cli/tests/ha.rs) start a real etcd.
command -v protoc >/dev/null || need+=(protobuf-compiler)
command -v etcd >/dev/null || need+=(etcd-server)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)

if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}"
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt || true

# Spelling check (scripts/test.sh runs .venv/bin/typos): PyPI's `typos`
# package ships the typos-cli binary. Falls back to crates.io when PyPI
# cannot be reached (the binary then lands in ~/.cargo/bin).
if [ ! -x "$ROOT/.venv/bin/typos" ] && ! command -v typos >/dev/null; then
  [ -x "$ROOT/.venv/bin/python" ] || python3 -m venv "$ROOT/.venv"
  "$ROOT/.venv/bin/python" -m pip install --quiet --disable-pip-version-check "typos==1.52.2" \
    || cargo install typos-cli --version '~1.52' --locked
fi
# Dependency licenses, bans and sources (deny.toml); a release build of
# cargo-deny from crates.io, several minutes the first time.
command -v cargo-deny >/dev/null || cargo install cargo-deny --version 0.20.2 --locked
