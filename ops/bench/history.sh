#!/usr/bin/env bash
# Document history under a real editing trace: `automerge-paper` (259,778 edits) ingested
# keystroke by keystroke over one socket, then
#   - how far the `history` read model (it folds every keystroke) is behind when the
#     ingest ends, and how long it takes to catch up (the audit read model beside it);
#   - the storage of the history snapshots it kept;
#   - the document at 200 random versions (`content?at_version=`), p50/p90/p99.
#
#   ops/bench/history.sh [DIR] [trace.json.gz]
#
# DIR holds `collab` and `collab-bench` (default target/release). Prints one JSON object.
# COLLAB_HISTORY_SNAPSHOT_EVERY (default 500) sets K; SERVER_LOG=FILE keeps the server's log
# (with COLLAB_LOG=collab_projections::history=debug it times every point).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR="$(realpath "${1:-target/release}")"
TRACE="${2:-../shared/traces/automerge-paper.json.gz}"
. ops/bench/lib.sh
bench_setup hist 7794
start_server
token="$("$DIR/collab" token mint --user bench)"
api() { curl -fs -H "Authorization: Bearer $token" -H 'content-type: application/json' "$@"; }
ws="$(api -X POST "http://127.0.0.1:$PORT/v1/workspaces" -d '{"name":"history"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
doc="$(api -X POST "http://127.0.0.1:$PORT/v1/workspaces/$ws/documents" -d '{"title":"trace"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
"$DIR/collab-bench" --url "ws://127.0.0.1:$PORT/v1/sync" --query "token=$token" \
  ingest --doc "$doc" --trace "$TRACE" --timeout-seconds 300 >"$OUT/ingest.json"
ended="$(date +%s.%N)"
last="$(sql "SELECT max(position) FROM events WHERE stream_id = 'content-$doc'")"
behind_at_end="$(sql "SELECT $last - position FROM projector_checkpoints WHERE name = 'history'")"
history_done=""; audit_done=""
for _ in $(seq 1 12000); do
  if [ -z "$history_done" ] && [ "$(sql "SELECT position >= $last FROM projector_checkpoints WHERE name = 'history'")" = t ]; then history_done="$(date +%s.%N)"; fi
  if [ -z "$audit_done" ] && [ "$(sql "SELECT position >= $last FROM projector_checkpoints WHERE name = 'audit'")" = t ]; then audit_done="$(date +%s.%N)"; fi
  [ -n "$history_done" ] && [ -n "$audit_done" ] && break
  sleep 0.05
done
# JetStream keeps handing the projectors the messages they already folded from the log;
# measure points once that is over, not beside it.
for _ in $(seq 1 2400); do
  pending="$(curl -fs "http://127.0.0.1:$PORT/metrics" | awk '/^collab_projector_pending_messages\{/ { sum += $2 } END { print sum + 0 }')"
  [ "$pending" = 0 ] && break
  sleep 0.05
done
storage="$(sql "SELECT count(*) || ' ' || coalesce(sum(pg_column_size(state)), 0) || ' ' || coalesce(sum(length(state)), 0) || ' ' || pg_total_relation_size('rm_history_snapshots') FROM rm_history_snapshots")"
# After a 260k-row burst Postgres vacuums and checkpoints; let that finish (a database
# at rest), then three rounds of 200 points with different seeds.
psql -h 127.0.0.1 -U postgres -d "$DB" -qc "CHECKPOINT" >/dev/null
for _ in $(seq 1 1200); do
  [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")" = 0 ] && break
  sleep 0.1
done
for seed in 13 14 15; do
  "$DIR/collab-bench" points --http "http://127.0.0.1:$PORT" --doc "$doc" --token "$token" --count 200 --seed "$seed"
done | python3 -c 'import json,sys; print(json.dumps([json.loads(l) for l in sys.stdin]))' >"$OUT/points.json"
python3 - "$OUT" "$ended" "${history_done:-}" "${audit_done:-}" "$storage" "$last" "${behind_at_end:-}" <<'PY'
import json, sys
out, ended, history_done, audit_done, storage, last, behind = sys.argv[1:8]
ingest = json.load(open(f"{out}/ingest.json"))
rounds = json.load(open(f"{out}/points.json"))
points = rounds[0]
count, stored, raw, total = (int(x) for x in storage.split())
edits = points.get("head_version") or 0
mib = lambda b: round(b / 1048576, 2)
print(json.dumps({
    "trace_edits": edits,
    "ingest_seconds": ingest.get("complete_seconds"),
    "history_positions_behind_at_ingest_end": int(behind) if behind else None,
    "history_caught_up_after_ingest_s": round(float(history_done) - float(ended), 2) if history_done else None,
    "audit_caught_up_after_ingest_s": round(float(audit_done) - float(ended), 2) if audit_done else None,
    "history_snapshots": count,
    "snapshot_state_mib_uncompressed": mib(raw),
    "snapshot_state_mib_stored": mib(stored),
    "snapshot_table_mib": mib(total),
    "stored_mib_per_100k_edits": round(mib(stored) * 100000 / edits, 2) if edits else None,
    "points": rounds,
}, indent=2))
PY
