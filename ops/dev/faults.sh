#!/usr/bin/env bash
# The fault suite in its long form (RELIABILITY.md): every scenario of
# tests/tests/suite/faults.rs, one at a time (they measure recovery and memory: sharing two
# cores with each other would measure the machine), with COLLAB_FAULT_SECS of load each
# (default 30) and the whole NATS cluster down for COLLAB_FAULT_NATS_DOWN_SECS (default 30).
# Prints each scenario's figures as a JSON line and writes them to target/faults.ndjson.
#
#   ops/dev/faults.sh            # after the README's test command has set up once
#   COLLAB_FAULT_SECS=10 ops/dev/faults.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ops/dev/services.sh
npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
cargo build --locked -p collab-ops --bins
export COLLAB_BIN="$PWD/target/debug/collab"
export COLLAB_FAULT_SECS="${COLLAB_FAULT_SECS:-30}"
export COLLAB_FAULT_NATS_DOWN_SECS="${COLLAB_FAULT_NATS_DOWN_SECS:-30}"
log=target/faults.log
cargo nextest run --locked -p collab-tests --run-ignored all --test-threads 1 \
  --no-fail-fast --no-capture -E 'test(/^faults::/)' "$@" 2>&1 | tee "$log" | grep -E '^FAULT |^\s+(PASS|FAIL) ' || true
grep -h '^FAULT ' "$log" | sed 's/^FAULT //' > target/faults.ndjson
if grep -qE '^\s+FAIL ' "$log"; then
  echo "faults: a scenario failed (see $log)" >&2
  exit 1
fi
echo "faults: $(wc -l < target/faults.ndjson) scenarios passed; figures in target/faults.ndjson"
