#!/usr/bin/env bash
# Consumers under load: a live tail (SSE) subscribed to a workspace while a trace is ingested
# into it keystroke by keystroke, and the audit read model folding every keystroke.
#
#   ops/bench/tail.sh [DIR] [trace.json.gz]
#
# DIR holds `collab` and `collab-bench` (default target/release). Prints one JSON object:
# the ingest's completion time, the events the tail received against the log (each content
# position of the workspace exactly once, in order?), how long after the ingest finished the
# tail had the last one, how long after it the relay had published everything to JetStream
# (projectors are driven by JetStream deliveries) and the audit read model had folded it.
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR="$(realpath "${1:-target/release}")"
TRACE="${2:-../shared/traces/automerge-paper.json.gz}"
. ops/bench/lib.sh
bench_setup tail 7793
start_server
token="$("$DIR/collab" token mint --user bench)"
api() { curl -fs -H "Authorization: Bearer $token" -H 'content-type: application/json' "$@"; }
ws="$(api -X POST "http://127.0.0.1:$PORT/v1/workspaces" -d '{"name":"tail"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
doc="$(api -X POST "http://127.0.0.1:$PORT/v1/workspaces/$ws/documents" -d '{"title":"trace"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
curl -sN -H "Authorization: Bearer $token" "http://127.0.0.1:$PORT/v1/workspaces/$ws/events/live?category=content" >"$OUT/tail.sse" &
EXTRA_PIDS="$!"
sleep 1
"$DIR/collab-bench" --url "ws://127.0.0.1:$PORT/v1/sync" --query "token=$token" \
  ingest --doc "$doc" --trace "$TRACE" --timeout-seconds 300 >"$OUT/ingest.json"
ended="$(date +%s.%N)"
last="$(sql "SELECT max(position) FROM events WHERE workspace_id = '$ws' AND stream_category = 'content'")"
tail_done=""; audit_done=""; relay_done=""
for _ in $(seq 1 6000); do
  if [ -z "$tail_done" ] && grep -q "^id: $last\$" "$OUT/tail.sse"; then tail_done="$(date +%s.%N)"; fi
  if [ -z "$audit_done" ] && [ "$(sql "SELECT position >= $last FROM projector_checkpoints WHERE name = 'audit'")" = t ]; then audit_done="$(date +%s.%N)"; fi
  if [ -z "$relay_done" ] && [ "$(sql "SELECT coalesce(max(position), 0) >= $last FROM relay_checkpoints")" = t ]; then relay_done="$(date +%s.%N)"; fi
  [ -n "$tail_done" ] && [ -n "$audit_done" ] && [ -n "$relay_done" ] && break
  sleep 0.05
done
sql "SELECT position FROM events WHERE workspace_id = '$ws' AND stream_category = 'content' ORDER BY position" >"$OUT/expected.txt"
entries="$(sql "SELECT count(*) || ' entries for ' || coalesce(sum(edits), 0) || ' edits' FROM rm_audit_entries WHERE event_type = 'DocumentEdited'")"
python3 - "$OUT" "$ended" "${tail_done:-}" "${audit_done:-}" "$entries" "${relay_done:-}" <<'PY'
import json, sys
out, ended, tail_done, audit_done, entries, relay_done = sys.argv[1:7]
ingest = json.load(open(f"{out}/ingest.json"))
expected = [int(l) for l in open(f"{out}/expected.txt") if l.strip()]
got = [int(l[4:]) for l in open(f"{out}/tail.sse") if l.startswith("id: ")]
lagged = sum(1 for l in open(f"{out}/tail.sse") if l.startswith("event: lagged"))
print(json.dumps({
    "trace_edits": len(expected),
    "ingest_seconds": ingest.get("complete_seconds"),
    "tail_received": len(got),
    "tail_exactly_once_in_order": got == expected,
    "tail_lagged": lagged,
    "tail_caught_up_after_ingest_s": round(float(tail_done) - float(ended), 2) if tail_done else None,
    "relay_published_all_after_ingest_s": round(float(relay_done) - float(ended), 2) if relay_done else None,
    "audit_caught_up_after_ingest_s": round(float(audit_done) - float(ended), 2) if audit_done else None,
    "audit_entries": entries,
}, indent=2))
PY
