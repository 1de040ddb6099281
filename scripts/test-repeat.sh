#!/usr/bin/env bash
# Runs the whole test command (scripts/test.sh) N times in a row and stops
# at the first failure: the check that no test is flaky. Each run's output
# goes to $LOGDIR/run-<i>.log; a one-line verdict per run (with its duration)
# goes to stdout and $LOGDIR/summary.txt.
# Usage: scripts/test-repeat.sh [N=20] [LOGDIR=test-repeat-logs]
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
N=${1:-20}
LOGDIR=${2:-$ROOT/test-repeat-logs}
mkdir -p "$LOGDIR"
for i in $(seq 1 "$N"); do
  start=$(date +%s)
  "$ROOT/scripts/test.sh" > "$LOGDIR/run-$i.log" 2>&1
  rc=$?
  line="run $i/$N: $([ $rc = 0 ] && echo passed || echo "FAILED (exit $rc)") in $(( $(date +%s) - start )) s ($(date -u +%H:%M:%S))"
  echo "$line" | tee -a "$LOGDIR/summary.txt"
  if [ $rc != 0 ]; then
    grep -n "FAILED\|panicked\|failed\|Error" "$LOGDIR/run-$i.log" | head -20
    exit $rc
  fi
done
echo "all $N runs passed" | tee -a "$LOGDIR/summary.txt"
