#!/usr/bin/env bash
# Runs the fuzz targets under fuzz/ (docs/fuzzing.md), one at a time, each
# on one core, then minimizes its corpus back into fuzz/corpus/<target>.
# Installs cargo-fuzz (and the nightly toolchain it needs) when missing.
#
# Usage: scripts/fuzz.sh [target|all] [seconds per target]
#   scripts/fuzz.sh                      every target, 300 s each
#   scripts/fuzz.sh http_request 600     one target for 10 minutes
# Crashes land in fuzz/artifacts/<target>/ (not committed): fix the bug,
# then copy the input into fuzz/corpus/<target>/ as a regression input so
# `cargo test` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(control_frame transfer_header http_request ring_frames config)
target=${1:-all}
seconds=${2:-300}

if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# Longest input tried per target: the HTTP parser refuses heads over
# 8 KiB, so its inputs must be able to get past that.
max_len() {
  case $1 in
    http_request) echo 12000 ;;
    control_frame) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

run() {
  local t=$1 corpus=fuzz/corpus/$1 scratch status=0
  scratch=$(mktemp -d)
  echo "== fuzzing $t for ${seconds}s"
  mkdir -p "$corpus"
  # New inputs go to a scratch corpus; the committed one is only read.
  (cd fuzz && cargo +nightly fuzz run "$t" "$scratch" "../$corpus" -- \
    -workers=1 -jobs=1 -max_total_time="$seconds" -max_len="$(max_len "$t")" \
    -rss_limit_mb=4096 -print_final_stats=1) || status=$?
  # With -jobs, libFuzzer logs to fuzz/fuzz-<job>.log.
  tail -n 25 fuzz/fuzz-0.log
  if [ "${status:-0}" != 0 ]; then
    echo "== $t failed (status $status): see fuzz/fuzz-0.log and fuzz/artifacts/$t/" >&2
    exit "$status"
  fi
  echo "== minimizing $t's corpus"
  # Named inputs (seed-*, regression-*) stay as they are, whatever their
  # coverage; cmin reduces the rest plus the new inputs to the smallest
  # set that covers the same edges. (cargo fuzz cmin puts extra libFuzzer
  # arguments before its own directories, so the new inputs are copied in
  # first rather than passed as a second directory.)
  local keep
  keep=$(mktemp -d)
  find "$corpus" -maxdepth 1 -type f \( -name 'regression-*' -o -name 'seed-*' \) -exec mv {} "$keep/" \;
  # Named inputs take part (under their own names) so that what they cover
  # is not kept twice; their hash-named copies are dropped below.
  cp -n "$scratch"/* "$keep"/* "$corpus/" 2>/dev/null || true
  # -use_counters=0: keep inputs for new edges, not for new hit counts.
  (cd fuzz && cargo +nightly fuzz cmin "$t" "../$corpus" -- -max_len="$(max_len "$t")" -use_counters=0) >/dev/null 2>&1
  for f in "$keep"/*; do
    [ -e "$f" ] || continue
    # cmin names files by their SHA-1: drop its copy of a named input.
    rm -f "$corpus/$(sha1sum "$f" | cut -d' ' -f1)"
    mv "$f" "$corpus/"
  done
  rm -rf "$scratch" "$keep"
  echo "== $t: $(find "$corpus" -type f | wc -l) files, $(du -sh "$corpus" | cut -f1)"
}

if [ "$target" = all ]; then
  for t in "${TARGETS[@]}"; do run "$t"; done
else
  run "$target"
fi
