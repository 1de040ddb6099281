#!/usr/bin/env bash
# Sets up and runs a single-node cluster on embedded defaults: installs the
# one system package the build needs when it is missing (protobuf-compiler:
# etcd-client compiles etcd's protobuf definitions; Debian/Ubuntu, as root or
# with sudo), then `cargo run --release -p mmc-cli -- up` (MetaService on
# 127.0.0.1:5000, HTTP and the status page on 127.0.0.1:8000, a 1 GiB
# memory-provider LocalService). Extra arguments go to `mmc up`
# (e.g. scripts/up.sh --dram-size 4GB). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v protoc >/dev/null; then
  echo "== installing protobuf-compiler (apt-get)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq protobuf-compiler
fi
exec cargo run --release -p mmc-cli -- up "$@"
