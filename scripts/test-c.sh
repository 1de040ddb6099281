#!/usr/bin/env bash
# Tests the C and C++ APIs (crates/mmc-capi) end to end:
#   1. builds libmemcache (cargo build -p mmc-capi) and the mmc binary;
#   2. compiles tests/c/test_memcache.c and .cpp, and test_original_spelling.cpp
#      (the original MemCache's `ock::mmc` spelling), with gcc/g++ -Wall -Werror
#      against include/ and target/debug/libmemcache.so, and the C test once
#      more against libmemcache.a through the pkg-config file of a staged
#      install (see docs/c-api.md);
#   3. starts a MetaService and two `mmc local` memory providers on free
#      loopback ports (killed by PID on exit);
#   4. runs the C test, the C++ test, the statically linked C test, the
#      original-spelling C++ test (configured by a file in the original's
#      `ock.mmc.<key> = value` format), and the C test under valgrind memcheck
#      (no invalid accesses, no definite leaks).
# Exits non-zero on any failure. Installs valgrind / pkg-config with apt-get
# when missing. Set KEEP_WORK=1 to keep the logs in the work directory.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LIB_DIR=$TARGET_DIR/debug
MMC=$LIB_DIR/mmc
TESTS=$ROOT/crates/mmc-capi/tests/c
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mmc-test-c.XXXXXX")
PIDS=()

log() { printf '\n=== %s\n' "$*"; }

cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ $rc -ne 0 ]]; then
        for f in "$WORK"/*.log; do
            [[ -f $f ]] || continue
            echo "--- tail of $f"
            tail -n 30 "$f"
        done
    fi
    if [[ -n ${KEEP_WORK:-} ]]; then
        echo "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- tools --------------------------------------------------------------------

apt_install() {
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get install -y "$@" || { "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y "$@"; }
}

need() {
    local cmd=$1 pkg=$2
    if ! command -v "$cmd" >/dev/null 2>&1; then
        log "installing $pkg"
        apt_install "$pkg"
    fi
}

need gcc gcc
need g++ g++
need pkg-config pkg-config
need valgrind valgrind

# ---- build ---------------------------------------------------------------------

log "building libmemcache and mmc"
cargo build -p mmc-capi
cargo build -p mmc-cli
for f in "$LIB_DIR/libmemcache.so" "$LIB_DIR/libmemcache.a" "$MMC"; do
    [[ -f $f ]] || { echo "missing build output $f" >&2; exit 1; }
done

log "compiling the C and C++ tests"
CFLAGS=(-Wall -Wextra -Werror -g -O1 -I"$ROOT/include")
gcc -std=c99 -pedantic "${CFLAGS[@]}" "$TESTS/test_memcache.c" \
    -L"$LIB_DIR" -lmemcache -Wl,-rpath,"$LIB_DIR" -o "$WORK/test_memcache_c"
g++ -std=c++17 "${CFLAGS[@]}" "$TESTS/test_memcache.cpp" \
    -L"$LIB_DIR" -lmemcache -Wl,-rpath,"$LIB_DIR" -o "$WORK/test_memcache_cpp"
g++ -std=c++17 "${CFLAGS[@]}" "$TESTS/test_original_spelling.cpp" \
    -L"$LIB_DIR" -lmemcache -Wl,-rpath,"$LIB_DIR" -o "$WORK/test_original_spelling"

# A staged install (the layout of docs/c-api.md), used through pkg-config.
PREFIX=$WORK/prefix
mkdir -p "$PREFIX/lib/pkgconfig" "$PREFIX/include"
cp "$LIB_DIR/libmemcache.so" "$LIB_DIR/libmemcache.a" "$PREFIX/lib/"
cp "$ROOT/include/memcache.h" "$ROOT/include/memcache.hpp" "$PREFIX/include/"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n 1)
sed -e "s|@PREFIX@|$PREFIX|" -e "s|@VERSION@|${VERSION:-0.1.0}|" \
    "$ROOT/crates/mmc-capi/memcache.pc.in" >"$PREFIX/lib/pkgconfig/memcache.pc"
export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
pkg-config --exists --print-errors memcache
# Static link: the archive itself, then the system libraries it needs.
STATIC_LIBS=$(pkg-config --static --libs-only-l memcache | sed 's/-lmemcache//')
# shellcheck disable=SC2046,SC2086
gcc -std=c99 -Wall -Wextra -Werror -g $(pkg-config --cflags memcache) "$TESTS/test_memcache.c" \
    "$(pkg-config --variable=libdir memcache)/libmemcache.a" $STATIC_LIBS -o "$WORK/test_memcache_c_static"
if readelf -d "$WORK/test_memcache_c_static" | grep -q 'libmemcache\.so'; then
    echo "the static test links libmemcache.so" >&2
    exit 1
fi

# ---- cluster -----------------------------------------------------------------

# wait_for FILE REGEX SECONDS PID: waits until FILE has a line matching REGEX.
wait_for() {
    local file=$1 re=$2 secs=$3 pid=$4 i
    for ((i = 0; i < secs * 10; i++)); do
        if grep -Eq "$re" "$file" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "process $pid exited early; see $file" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "timed out waiting for /$re/ in $file" >&2
    return 1
}

log "starting a MetaService and two LocalServices"
export NO_COLOR=1
# Port 0: the OS picks a free port; the log tells which.
"$MMC" meta --listen 127.0.0.1:0 --http "" >"$WORK/meta.log" 2>&1 &
PIDS+=($!)
wait_for "$WORK/meta.log" 'metaservice ready' 30 "${PIDS[-1]}"
META=$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/meta.log" | grep -Eo 'listen=127\.0\.0\.1:[0-9]+' | head -n 1 | cut -d= -f2)
[[ -n $META ]] || { echo "cannot find the MetaService address in $WORK/meta.log" >&2; exit 1; }
for i in 1 2; do
    "$MMC" local --meta "$META" --dram-size 64MB >"$WORK/local$i.log" 2>&1 &
    PIDS+=($!)
    wait_for "$WORK/local$i.log" 'localservice [0-9]+ ready' 30 "${PIDS[-1]}"
done
echo "metaservice $META, pids ${PIDS[*]}"

CONFIG=$WORK/local.toml
cat >"$CONFIG" <<EOF
[local]
meta_addr = "$META"
dram_size = "32MB"
log_level = "warn"
EOF
export MMC_LOCAL_CONFIG_PATH=$CONFIG

# ---- tests -------------------------------------------------------------------

log "C test"
"$WORK/test_memcache_c" "$META" "$CONFIG"

log "C++ test"
"$WORK/test_memcache_cpp" "$META"

log "C++ test, the original's spelling (ock::mmc, CreateObjectStore, Init without Setup)"
OCK_CONFIG=$WORK/mmc-local.conf
cat >"$OCK_CONFIG" <<EOF
## The original MemCache's format
ock.mmc.meta_service_url = tcp://$META
ock.mmc.log_level = warn
ock.mmc.local_service.protocol = device_sdma
ock.mmc.local_service.dram.size = 32MB
ock.mmc.local_service.world_size = 8
EOF
MMC_LOCAL_CONFIG_PATH=$OCK_CONFIG "$WORK/test_original_spelling" 2>"$WORK/original_spelling.log"
for key in device_sdma ock.mmc.local_service.world_size; do
    grep -q "$key" "$WORK/original_spelling.log" || { echo "no warning naming $key" >&2; cat "$WORK/original_spelling.log" >&2; exit 1; }
done

log "C test, statically linked (libmemcache.a via pkg-config)"
"$WORK/test_memcache_c_static" "$META" "$CONFIG" --small

log "C test under valgrind memcheck (libmemcache rebuilt on the system allocator)"
# The shipped library allocates with mimalloc, whose heap memcheck cannot
# see: rebuilt with `system-allocator`, every Rust allocation goes through
# malloc and is checked (test_memcache_c loads it through its rpath).
cargo build -p mmc-capi --features system-allocator
VG_LOG=$WORK/valgrind.log
set +e
valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite --track-fds=no --fair-sched=try \
    --suppressions="$ROOT/crates/mmc-capi/tests/c/valgrind.supp" --log-file="$VG_LOG" \
    "$WORK/test_memcache_c" "$META" "$CONFIG" --small
VG_RC=$?
set -e
grep -E 'ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|still reachable|Invalid (read|write)' "$VG_LOG" || true
if [[ $VG_RC -ne 0 ]]; then
    echo "valgrind run failed (exit $VG_RC); full log:" >&2
    cat "$VG_LOG" >&2
    exit 1
fi

for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "cluster process $pid died during the tests" >&2; exit 1; }
done

log "all C / C++ API tests passed"
