#!/usr/bin/env bash
# Two builds of collab side by side, in one run: the fan-out load (DOCS documents × CLIENTS
# clients, RATE updates/s each, as compare.sh) and the trace ingest, alternating A and B
# round by round so the machine's drift hits both alike. Prints each run's figures and the
# medians with the ratio B/A. Each server gets a fresh database and subject prefix, removed
# afterwards. The load generator is B's for both.
#
#   ops/bench/ab.sh DIR_A DIR_B [trace.json.gz]
#
# DIR_A and DIR_B each hold a `collab` and a `collab-bench` (e.g. target/release of two
# checkouts). Environment: ROUNDS (default 3), SECONDS_PER_RUN (default 10), DOCS (100),
# CLIENTS (10), RATE (5), INGEST_TIMEOUT (120), IDLE (idle sockets over the fan-out's
# documents after it, default 0: none), IDLE_TRACE (idle sockets on the one document the
# trace built, about 180 KiB of state each socket receives when it joins; default 0: none),
# SCENARIOS (default "fanout ingest": either can be left out).
set -euo pipefail
cd "$(dirname "$0")/../.."
A="$(realpath "$1")"; B="$(realpath "$2")"
TRACE="${3:-../shared/traces/automerge-paper.json.gz}"
ROUNDS="${ROUNDS:-3}"; SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
DOCS="${DOCS:-100}"; CLIENTS="${CLIENTS:-10}"; RATE="${RATE:-5}"
SCENARIOS="${SCENARIOS:-fanout ingest}"
ops/dev/services.sh
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
OUT="$(mktemp -d)"
PORT=7792
BENCH="$B/collab-bench"
SERVER_PID=""; DB=""; PREFIX=""
stop() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  SERVER_PID=""
  [ -n "$PREFIX" ] && "$BENCH" cleanup --prefix "$PREFIX" >/dev/null 2>&1 || true
  [ -n "$DB" ] && psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS ${DB} WITH (FORCE)" >/dev/null 2>&1 || true
  DB=""; PREFIX=""
}
trap 'stop; rm -rf "$OUT"' EXIT
one_run() { # label dir round
  local label="$1" dir="$2" round="$3"
  DB="collab_ab_${label,,}_${round}_$$"; PREFIX="ab${label,,}${round}x$$"
  COLLAB_DATABASE_URL="postgres://postgres@127.0.0.1:5432/${DB}" COLLAB_SUBJECT_PREFIX="$PREFIX" \
  COLLAB_JWT_SECRET=bench-secret-0123456789 COLLAB_LOG=warn COLLAB_BLOB_DIR="$OUT/blobs-$label" \
  COLLAB_RATE_LIMIT_USER_PER_SECOND=0 COLLAB_RATE_LIMIT_WORKSPACE_PER_SECOND=0 COLLAB_SOCKET_MESSAGES_PER_SECOND=0 \
    "$dir/collab" serve --listen "127.0.0.1:$PORT" 2>"$OUT/server-$label.log" &
  SERVER_PID=$!
  for _ in $(seq 1 150); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
  local token ws docs="" d
  token="$(COLLAB_JWT_SECRET=bench-secret-0123456789 "$dir/collab" token mint --user bench)"
  api() { curl -fs -H "Authorization: Bearer $token" -H 'content-type: application/json' "$@"; }
  ws="$(api -X POST "http://127.0.0.1:$PORT/v1/workspaces" -d '{"name":"ab"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
  new_doc() { api -X POST "http://127.0.0.1:$PORT/v1/workspaces/$ws/documents" -d "{\"title\":\"$1\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
  for d in $(seq 1 "$DOCS"); do docs="${docs:+$docs,}$(new_doc "f$d")"; done
  local args=(--url "ws://127.0.0.1:$PORT/v1/sync" --query "token=$token")
  record() { python3 -c 'import json,sys; r=json.load(sys.stdin); r["build"]=sys.argv[1]; r["scenario"]=sys.argv[2]; print(json.dumps(r))' "$label" "$1" >>"$OUT/results.jsonl"; }
  if [[ " $SCENARIOS " == *" fanout "* ]]; then
    "$BENCH" "${args[@]}" fanout --docs "$docs" --clients "$CLIENTS" --rate "$RATE" --seconds "$SECONDS_PER_RUN" | record fanout
  fi
  if [ "${IDLE:-0}" -gt 0 ]; then
    "$BENCH" "${args[@]}" idle --docs "$docs" --connections "$IDLE" --server-pid "$SERVER_PID" | record idle
  fi
  if [ -f "$TRACE" ] && { [[ " $SCENARIOS " == *" ingest "* ]] || [ "${IDLE_TRACE:-0}" -gt 0 ]; }; then
    local doc
    doc="$(new_doc trace)"
    "$BENCH" "${args[@]}" ingest --doc "$doc" --trace "$TRACE" --timeout-seconds "${INGEST_TIMEOUT:-120}" | record ingest
    if [ "${IDLE_TRACE:-0}" -gt 0 ]; then
      "$BENCH" "${args[@]}" idle --docs "$doc" --connections "$IDLE_TRACE" --server-pid "$SERVER_PID" | record idle-trace
    fi
  fi
  stop
}
for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round" >&2
  one_run A "$A" "$round"
  one_run B "$B" "$round"
done
python3 - "$OUT/results.jsonl" "$A" "$B" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(build, scenario, get):
    values = [get(r) for r in rows if r["build"] == build and r["scenario"] == scenario and get(r) is not None]
    return statistics.median(values) if values else None, values
print(f"A = {sys.argv[2]}\nB = {sys.argv[3]}\n")
print("| figure | A (median) | B (median) | B/A | A runs | B runs |\n|---|---|---|---|---|---|")
for name, scenario, get in [
    ("fan-out p50 (ms)", "fanout", lambda r: r["latency_ms"]["p50"]),
    ("fan-out p99 (ms)", "fanout", lambda r: r["latency_ms"]["p99"]),
    ("fan-out deliveries lost", "fanout", lambda r: r["deliveries_expected"] - r["deliveries"]),
    ("trace ingest (s)", "ingest", lambda r: r.get("complete_seconds")),
    ("idle sockets: KiB per connection", "idle", lambda r: r.get("kib_per_connection")),
    ("idle sockets: seconds to open", "idle", lambda r: r.get("open_seconds")),
    ("idle sockets: server RSS with all open (MiB)", "idle", lambda r: r["server_rss_kib_open"] / 1024),
    ("idle on the trace's document: KiB per connection", "idle-trace", lambda r: r.get("kib_per_connection")),
    ("idle on the trace's document: server RSS with all open (MiB)", "idle-trace", lambda r: r["server_rss_kib_open"] / 1024),
]:
    (a, av), (b, bv) = med("A", scenario, get), med("B", scenario, get)
    ratio = f"{b / a:.2f}" if a and b else "–"
    fmt = lambda v: "–" if v is None else f"{v:.2f}"
    print(f"| {name} | {fmt(a)} | {fmt(b)} | {ratio} | {', '.join(fmt(v) for v in av)} | {', '.join(fmt(v) for v in bv)} |")
PY
