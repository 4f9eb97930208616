#!/usr/bin/env bash
# Side by side: the same load-generator scenarios against collab and the servers a user
# would pick instead — y-sweet (Rust), Hocuspocus (Node) and the reference y-websocket
# server (Node) — each started on loopback, one after another, in the same run. Writes
# BENCHMARKS.md (medians of RUNS runs, ratios against the best peer). For collab alone:
# projection lag under the fan-out load, and a durability check after its scenarios.
#
#   ops/bench/compare.sh [trace.json.gz]   (default ../shared/traces/automerge-paper.json.gz)
#
# Environment: RUNS (fan-out runs, default 5), SECONDS_PER_RUN (default 10), DOCS (default 100),
# CLIENTS (default 10), RATE (updates/s per client, default 5), SERVERS (default all:
# "collab y-sweet hocuspocus y-websocket"), APPEND (1: also the append benchmark),
# APPEND_EVENTS (default 100000), IDLE (idle sockets, default 10000; 0 skips it), LIGHT (1:
# also the light load with stock clients, ops/bench/light.sh, the default),
# INGEST_TIMEOUT (seconds a server gets to ingest the trace, default 120).
set -euo pipefail
cd "$(dirname "$0")/../.."
ops/dev/services.sh
# Thousands of sockets: every server (and the load generator) needs file descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
TRACE="${1:-../shared/traces/automerge-paper.json.gz}"
RUNS="${RUNS:-5}"; SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
DOCS="${DOCS:-100}"; CLIENTS="${CLIENTS:-10}"; RATE="${RATE:-5}"
SERVERS="${SERVERS:-collab y-sweet hocuspocus y-websocket}"
OUT="$(mktemp -d)"
PORT=7791

cargo build --release --locked -p collab-ops --bins >&2
. ops/bench/lib.sh
peers_setup
BENCH=target/release/collab-bench
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  SERVER_PID=""
}
cleanup() {
  stop_server
  [ -n "${PREFIX:-}" ] && "$BENCH" cleanup --prefix "$PREFIX" >/dev/null 2>&1 || true
  [ -n "${DB:-}" ] && psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS ${DB} WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$OUT"
}
trap cleanup EXIT
# Runs one measuring command (printing a JSON line) and records the line for $SERVER. A
# scenario that fails is recorded as failed (the report lists it) and the comparison goes on.
measure() {
  local scenario="$1" out
  shift
  if out="$("$@" 2>"$OUT/error.log")"; then
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["server"]=sys.argv[2]; print(json.dumps(r))' "$out" "$SERVER" >>"$OUT/results.jsonl"
  else
    echo "$SERVER: $scenario failed" >&2; tail -3 "$OUT/error.log" >&2
    python3 -c 'import json,sys; print(json.dumps({"scenario": "failed", "server": sys.argv[1], "failed": sys.argv[2], "error": sys.argv[3]}))' \
      "$SERVER" "$scenario" "$(grep -m1 -A1 panicked "$OUT/error.log" | tail -1)" >>"$OUT/results.jsonl"
  fi
}
resources() { # pid -> "rss_kb cpu_seconds"
  echo "$(grep VmHWM "/proc/$1/status" | awk '{print $2}') $(awk -v t="$(getconf CLK_TCK)" '{print ($14+$15)/t}' "/proc/$1/stat")"
}

for SERVER in $SERVERS; do
  echo "== $SERVER" >&2
  start_peer "$SERVER" target/release
  for run in $(seq 1 "$RUNS"); do
    DOC_LIST=""
    for d in $(seq 1 "$DOCS"); do DOC_LIST="${DOC_LIST:+$DOC_LIST,}$(new_doc "f$run-$d")"; done
    measure fanout "$BENCH" "${ARGS[@]}" fanout --docs "$DOC_LIST" --clients "$CLIENTS" --rate "$RATE" --seconds "$SECONDS_PER_RUN"
  done
  if [ "$SERVER" = collab ]; then
    # Commands under the fan-out load, in a run of its own (the peers get no such extra
    # load, so its latencies are not in the fan-out table): a document renamed ten times a
    # second while the edits flow; the projectors' lag is read from /metrics.
    curl -fs "http://127.0.0.1:$PORT/metrics" >"$OUT/metrics-before"
    RENAMED="${DOC_LIST%%,*}"
    ( i=0; while :; do i=$((i + 1))
        api -X PATCH "http://127.0.0.1:$PORT/v1/documents/$RENAMED" -d "{\"title\":\"renamed $i\"}" >/dev/null || true
        sleep 0.1; done ) &
    RENAMER=$!
    "$BENCH" "${ARGS[@]}" fanout --docs "$DOC_LIST" --clients "$CLIENTS" --rate "$RATE" --seconds "$SECONDS_PER_RUN" >"$OUT/lag-run.json" || echo '{"scenario":"failed"}' >"$OUT/lag-run.json"
    kill "$RENAMER"; wait "$RENAMER" 2>/dev/null || true
    curl -fs "http://127.0.0.1:$PORT/metrics" >"$OUT/metrics-after"
    measure projection-lag python3 ops/bench/projection_lag.py "$OUT/metrics-before" "$OUT/metrics-after"
  fi
  if [ -f "$TRACE" ]; then
    DOC="$(new_doc trace)"
    measure ingest "$BENCH" "${ARGS[@]}" ingest --doc "$DOC" --trace "$TRACE" --timeout-seconds "${INGEST_TIMEOUT:-120}"
    sleep 6
    measure cold-load "$BENCH" "${ARGS[@]}" cold-load --doc "$DOC" --repeat 7
  fi
  if [ "${IDLE:-10000}" -gt 0 ]; then
    measure idle "$BENCH" "${ARGS[@]}" idle --docs "$DOC_LIST" --connections "${IDLE:-10000}" --server-pid "$SERVER_PID"
  fi
  if [ "$SERVER" = collab ]; then
    # Every edit this run sent must be in Postgres, and the whole log on JetStream, in order.
    # (the projection-lag run's edits count too: they are in the log as well)
    SENT="$(python3 -c 'import json,sys; rows=[json.loads(l) for f in sys.argv[1:] for l in open(f) if l.strip()]; print(sum(r.get("updates_sent", r.get("updates", 0)) for r in rows if r.get("server", "collab") == "collab" and r["scenario"] in ("fanout", "ingest")))' "$OUT/results.jsonl" "$OUT/lag-run.json")"
    measure durability "$BENCH" durability --database-url "postgres://postgres@127.0.0.1:5432/${DB}" --prefix "$PREFIX" --edits-sent "$SENT"
  fi
  read -r RSS CPU <<<"$(resources "$SERVER_PID")"
  echo "{\"scenario\":\"resources\",\"server\":\"$SERVER\",\"peak_rss_kb\":$RSS,\"cpu_seconds\":$CPU}" >>"$OUT/results.jsonl"
  stop_server
done

if [ "${APPEND:-1}" = 1 ]; then
  echo "== append" >&2
  SERVER=collab measure append "$BENCH" append --events "${APPEND_EVENTS:-100000}"
fi

# The light load with stock clients has a script of its own (it writes ops/bench/LIGHT.md,
# which the report includes).
if [ "${LIGHT:-1}" = 1 ]; then SERVERS="$SERVERS" ops/bench/light.sh target/release >&2; fi

python3 ops/bench/compare_report.py "$OUT/results.jsonl" "$TRACE" "$RUNS" "$SECONDS_PER_RUN" "$DOCS" "$CLIENTS" "$RATE" >BENCHMARKS.md
cat BENCHMARKS.md
