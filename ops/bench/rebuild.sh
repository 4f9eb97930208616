#!/usr/bin/env bash
# Read models from scratch: a log of workspace and document events (no content) is
# seeded through the event store, then
#   - `collab projections rebuild all` is timed (every read model emptied and folded again
#     from position 0 in one transaction each, side by side from one read of the log), and
#     the same read models rebuilt one at a time (`collab projections rebuild NAME` each);
#   - the floor: Postgres alone writing the rebuilt audit trail's and history's rows (the two
#     read models with a row per event) into empty copies of their tables, indexes included
#     (one `INSERT … SELECT` each, no client, no fold);
#   - the same read models catch up from nothing in a running server that starts far behind
#     (`collab serve --roles relay,projector`, checkpoints at 0): time until every read model
#     has reached the head.
#
#   ops/bench/rebuild.sh [DIR] [WORKSPACES] [DOCUMENTS_PER_WORKSPACE] [RENAMES]
#
# DIR holds `collab` and `collab-bench` (default target/release). Defaults: 1000 workspaces ×
# 100 documents × 20 renames: 2.3 million events. Prints one JSON object.
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR="$(realpath "${1:-target/release}")"
WORKSPACES="${2:-1000}"; DOCUMENTS="${3:-100}"; RENAMES="${4:-20}"
. ops/bench/lib.sh
bench_setup rebuild 7795
"$DIR/collab" migrate >/dev/null
"$DIR/collab-bench" seed --database-url "$COLLAB_DATABASE_URL" --workspaces "$WORKSPACES" \
  --documents "$DOCUMENTS" --renames "$RENAMES" >"$OUT/seed.json"
psql -h 127.0.0.1 -U postgres -d "$DB" -qc "VACUUM ANALYZE events" >/dev/null
head="$(sql "SELECT position FROM event_log_head")"
started="$(date +%s.%N)"
"$DIR/collab" projections rebuild all >"$OUT/rebuild.txt"
rebuilt="$(date +%s.%N)"
# The floor: Postgres alone writing the rows of the two read models with a row per event
# into empty copies of their tables (indexes included), one INSERT … SELECT each.
floor() {
  sql "CREATE TABLE floor_$1 (LIKE $1 INCLUDING ALL)" >/dev/null
  local t0; t0="$(date +%s.%N)"
  sql "INSERT INTO floor_$1 SELECT * FROM $1" >/dev/null
  python3 -c "print(round($(date +%s.%N) - $t0, 2))"
  sql "DROP TABLE floor_$1" >/dev/null
}
audit_floor="$(floor rm_audit_entries)"; history_floor="$(floor rm_history_entries)"
# The same read models one at a time (each reading the log itself), for comparison.
one_by_one=0
for model in $(sed -n 's/^\([a-z_-]*\): rebuilt to position.*/\1/p' "$OUT/rebuild.txt"); do
  t0="$(date +%s.%N)"
  "$DIR/collab" projections rebuild "$model" >>"$OUT/one-by-one.txt"
  one_by_one="$(python3 -c "print($one_by_one + $(date +%s.%N) - $t0)")"
done
# A projector far behind: every read model back to position 0, tables emptied, then a
# server with the relay and the projectors only.
for table in $(sql "SELECT tablename FROM pg_tables WHERE tablename LIKE 'rm\_%'"); do sql "DELETE FROM $table" >/dev/null; done
sql "UPDATE projector_checkpoints SET position = 0" >/dev/null
started_catch_up="$(date +%s.%N)"
"$DIR/collab" serve --listen "127.0.0.1:$PORT" --roles relay,projector 2>"$OUT/server.log" &
SERVER_PID=$!
caught_up=""
# Caught up: every read model's lag (events of its categories after its checkpoint) is 0.
for _ in $(seq 1 6000); do
  status="$("$DIR/collab" projections status 2>/dev/null | grep '(read model)' || true)"
  if [ -n "$status" ] && ! grep -vq ', lag 0$' <<<"$status"; then
    caught_up="$(date +%s.%N)"; break
  fi
  sleep 0.1
done
python3 - "$OUT" "$head" "$started" "$rebuilt" "$started_catch_up" "${caught_up:-}" "$one_by_one" \
  "$audit_floor" "$history_floor" <<'PY'
import json, sys
out, head, started, rebuilt, catch_start, caught, one_by_one, audit_floor, history_floor = sys.argv[1:10]
head = int(head)
seed = json.load(open(f"{out}/seed.json"))
models = [l.strip() for l in open(f"{out}/rebuild.txt") if l.strip()]
rebuild_s = float(rebuilt) - float(started)
catch_s = float(caught) - float(catch_start) if caught else None
print(json.dumps({
    "events": head,
    "seed_events_per_second": round(seed["events_per_second"]),
    "rebuild_all_seconds": round(rebuild_s, 1),
    "rebuild_events_per_second": round(head / rebuild_s),
    "rebuild_per_model": models,
    "audit_rows_floor_seconds": float(audit_floor),
    "history_rows_floor_seconds": float(history_floor),
    "one_at_a_time_seconds": round(float(one_by_one), 1),
    "one_at_a_time_events_per_second": round(head / float(one_by_one)),
    "one_at_a_time_per_model": [l.strip() for l in open(f"{out}/one-by-one.txt") if l.strip()],
    "catch_up_from_zero_seconds": round(catch_s, 1) if catch_s else None,
    "catch_up_events_per_second": round(head / catch_s) if catch_s else None,
}, indent=2))
PY
