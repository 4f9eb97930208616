#!/usr/bin/env bash
# collab alone, quicker than ops/bench/compare.sh: builds release binaries, starts
# `collab serve` on a fresh database and subject prefix, runs the load generator's
# scenarios, prints a report (medians of several runs) on stdout, and cleans up: the
# database and the JetStream streams. BENCHMARKS.md is compare.sh's; this leaves it alone.
#
#   ops/bench/run.sh [path/to/trace.json.gz]     (default: ../shared/traces/automerge-paper.json.gz)
#
# Environment: RUNS (fan-out repetitions, default 3), SECONDS_PER_RUN (default 10).
set -euo pipefail
cd "$(dirname "$0")/../.."
ops/dev/services.sh
TRACE="${1:-../shared/traces/automerge-paper.json.gz}"
RUNS="${RUNS:-3}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
cargo build --release --locked -p collab-ops --bins >&2

STAMP="$(date +%s)"
DB="collab_bench_${STAMP}"
PREFIX="bench${STAMP}"
PORT="${PORT:-7790}"
OUT="$(mktemp -d)"
export COLLAB_DATABASE_URL="postgres://postgres@127.0.0.1:5432/${DB}"
export COLLAB_SUBJECT_PREFIX="$PREFIX"
export COLLAB_JWT_SECRET="bench-secret-0123456789"
export COLLAB_LOG=warn
# The benchmark drives the server far past the default per-user and per-socket limits.
export COLLAB_RATE_LIMIT_USER_PER_SECOND=0 COLLAB_RATE_LIMIT_WORKSPACE_PER_SECOND=0 COLLAB_SOCKET_MESSAGES_PER_SECOND=0
export COLLAB_BLOB_DIR="$OUT/blobs"

target/release/collab serve --listen "127.0.0.1:${PORT}" 2>"$OUT/server.log" &
SERVER=$!
cleanup() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS ${DB} WITH (FORCE)" >/dev/null 2>&1 || true
  target/release/collab-bench cleanup --prefix "$PREFIX" >/dev/null || true
  rm -rf "$OUT"
}
trap cleanup EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:${PORT}/readyz" >/dev/null && break; sleep 0.2; done

TOKEN="$(target/release/collab token mint --user bench)"
api() { curl -fs -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' "$@"; }
WS="$(api -X POST "http://127.0.0.1:${PORT}/v1/workspaces" -d '{"name":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
new_doc() { api -X POST "http://127.0.0.1:${PORT}/v1/workspaces/${WS}/documents" -d "{\"title\":\"$1\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
BENCH=(target/release/collab-bench --url "ws://127.0.0.1:${PORT}/v1/sync" --query "token=${TOKEN}")

for run in $(seq 1 "$RUNS"); do
  DOC="$(new_doc "fanout-$run")"
  "${BENCH[@]}" fanout --docs "$DOC" --clients 10 --rate 5 --seconds "$SECONDS_PER_RUN" >>"$OUT/fanout.jsonl"
done
if [ -f "$TRACE" ]; then
  DOC="$(new_doc trace)"
  "${BENCH[@]}" ingest --doc "$DOC" --trace "$TRACE" >"$OUT/ingest.json"
  sleep 6 # the quiet-time snapshot
  "${BENCH[@]}" cold-load --doc "$DOC" --repeat 7 >"$OUT/cold.json"
fi
RSS_KB="$(grep VmHWM "/proc/${SERVER}/status" | awk '{print $2}')"
CPU_TICKS="$(awk '{print $14 + $15}' "/proc/${SERVER}/stat")"

python3 ops/bench/report.py "$OUT" "$TRACE" "$RSS_KB" "$CPU_TICKS" "$(getconf CLK_TCK)" "$RUNS" "$SECONDS_PER_RUN"
cat BENCHMARKS.md
