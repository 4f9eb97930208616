#!/usr/bin/env bash
# Scale-out: the fan-out load (DOCS documents × CLIENTS clients, RATE updates/s each) with
# the clients of every document spread round robin over INSTANCES collab instances, against
# the same load on one instance, alternating round by round in one run; then IDLE idle
# sockets spread over the instances. In both set-ups the relay and projectors run in a
# process of their own, so the instances compared serve sockets and commands only; all
# share one database, one NATS and one subject prefix per round (removed afterwards).
# Prints each run's figures and the medians; CPU is every collab process's, summed
# (Postgres and NATS work on top).
#
#   ops/bench/scaleout.sh [DIR]   (DIR holds `collab` and `collab-bench`; default target/release)
#
# Environment: ROUNDS (3), INSTANCES (3), SECONDS_PER_RUN (10), DOCS (100), CLIENTS (10),
# RATE (5), IDLE (default 30000; 0 skips it; opened by one load-generator process per
# 15,000, each instance taking a third: the hard limit on descriptors must allow that).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR="$(realpath "${1:-target/release}")"
ROUNDS="${ROUNDS:-3}"; INSTANCES="${INSTANCES:-3}"; SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
DOCS="${DOCS:-100}"; CLIENTS="${CLIENTS:-10}"; RATE="${RATE:-5}"; IDLE="${IDLE:-30000}"
ops/dev/services.sh
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
OUT="$(mktemp -d)"
BASE_PORT=7800
BENCH="$DIR/collab-bench"
PIDS=(); DB=""; PREFIX=""
stop() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
  [ -n "$PREFIX" ] && "$BENCH" cleanup --prefix "$PREFIX" >/dev/null 2>&1 || true
  [ -n "$DB" ] && psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS ${DB} WITH (FORCE)" >/dev/null 2>&1 || true
  DB=""; PREFIX=""
}
trap 'stop; rm -rf "$OUT"' EXIT
cpu_seconds() { # pids... -> their CPU seconds, summed
  local total=0 pid
  for pid in "$@"; do
    total="$(awk -v t="$(getconf CLK_TCK)" -v sum="$total" '{print sum + ($14+$15)/t}' "/proc/$pid/stat")"
  done
  echo "$total"
}
start() { # role port
  COLLAB_DATABASE_URL="postgres://postgres@127.0.0.1:5432/${DB}" COLLAB_SUBJECT_PREFIX="$PREFIX" \
  COLLAB_JWT_SECRET=bench-secret-0123456789 COLLAB_LOG=warn COLLAB_BLOB_DIR="$OUT/blobs" \
  COLLAB_SEARCH_DIR="$OUT/search-$2" \
  COLLAB_RATE_LIMIT_USER_PER_SECOND=0 COLLAB_RATE_LIMIT_WORKSPACE_PER_SECOND=0 COLLAB_SOCKET_MESSAGES_PER_SECOND=0 \
    "$DIR/collab" serve --roles "$1" --listen "127.0.0.1:$2" 2>>"$OUT/server.log" &
  PIDS+=($!)
  for _ in $(seq 1 150); do curl -fs "http://127.0.0.1:$2/readyz" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "collab on port $2 is not ready" >&2; tail -5 "$OUT/server.log" >&2; return 1
}
one_run() { # label instances round
  local label="$1" n="$2" round="$3" urls="" i
  DB="collab_scale_${label}_${round}_$$"; PREFIX="sc${label}${round}x$$"
  # Workers first (they migrate the database), then the socket-serving instances.
  start relay,projector,mailer,webhooks,thumbnailer,downloads "$BASE_PORT"
  for i in $(seq 1 "$n"); do
    start api $((BASE_PORT + i))
    urls="${urls:+$urls,}ws://127.0.0.1:$((BASE_PORT + i))/v1/sync"
  done
  local servers=("${PIDS[@]:1}")
  local token ws docs="" d
  token="$(COLLAB_JWT_SECRET=bench-secret-0123456789 "$DIR/collab" token mint --user bench)"
  api() { curl -fs -H "Authorization: Bearer $token" -H 'content-type: application/json' "$@"; }
  ws="$(api -X POST "http://127.0.0.1:$((BASE_PORT + 1))/v1/workspaces" -d '{"name":"scale"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
  for d in $(seq 1 "$DOCS"); do
    docs="${docs:+$docs,}$(api -X POST "http://127.0.0.1:$((BASE_PORT + 1))/v1/workspaces/$ws/documents" -d "{\"title\":\"d$d\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
  done
  local args=(--url "$urls" --query "token=$token")
  local cpu_before cpu_after
  cpu_before="$(cpu_seconds "${PIDS[@]}")"
  "$BENCH" "${args[@]}" fanout --docs "$docs" --clients "$CLIENTS" --rate "$RATE" --seconds "$SECONDS_PER_RUN" >"$OUT/fanout.json"
  cpu_after="$(cpu_seconds "${PIDS[@]}")"
  # Where an edit's time went, per instance: mean seconds waiting for a commit, committing,
  # and applying the committed batch to the rooms (the histograms' sum / count).
  for i in $(seq 1 "$n"); do
    curl -fs "http://127.0.0.1:$((BASE_PORT + i))/metrics" | python3 -c '
import sys, re
sums, counts = {}, {}
for line in sys.stdin:
    m = re.match(r"(collab_edit_(queue|commit|delivery)_seconds)_(sum|count) (\S+)", line)
    if m:
        (sums if m.group(3) == "sum" else counts)[m.group(2)] = float(m.group(4))
print(sys.argv[1], " ".join(f"{k} {1000 * sums[k] / counts[k]:.1f} ms" for k in sums if counts.get(k)), file=sys.stderr)
' "$label instance $i:"
  done
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r.update(build=sys.argv[2], cpu_seconds=float(sys.argv[4])-float(sys.argv[3]), instances=int(sys.argv[5])); print(json.dumps(r))' \
    "$OUT/fanout.json" "$label" "$cpu_before" "$cpu_after" "$n" >>"$OUT/results.jsonl"
  if [ "$IDLE" -gt 0 ] && [ "$label" = many ]; then
    # One load-generator process per 15,000 sockets (a process's descriptors are limited),
    # started together and holding for 30 s, so each measures with all of them open.
    local pids procs p
    pids="$(IFS=,; echo "${servers[*]}")"
    procs=$(( (IDLE + 14999) / 15000 ))
    local loaders=()
    for p in $(seq 1 "$procs"); do
      "$BENCH" "${args[@]}" idle --docs "$docs" --connections $((IDLE / procs)) --server-pid "$pids" --hold-seconds 30 >"$OUT/idle-$p.json" &
      loaders+=($!)
    done
    for p in "${loaders[@]}"; do wait "$p"; done
    cat "$OUT"/idle-*.json | python3 -c 'import json,sys; [print(json.dumps(dict(json.loads(l), build=sys.argv[1]))) for l in sys.stdin if l.strip()]' "$label" >>"$OUT/results.jsonl"
  fi
  stop
}
for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round" >&2
  one_run one 1 "$round"
  # The idle sockets only in the last round (they take the longest).
  IDLE_NOW="$IDLE"; [ "$round" -lt "$ROUNDS" ] && IDLE=0
  one_run many "$INSTANCES" "$round"
  IDLE="$IDLE_NOW"
done
python3 - "$OUT/results.jsonl" "$INSTANCES" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
n = sys.argv[2]
def med(build, scenario, get):
    values = [get(r) for r in rows if r["build"] == build and r["scenario"] == scenario]
    return (statistics.median(values) if values else None), values
fmt = lambda v: "–" if v is None else f"{v:.2f}"
print(f"| figure | 1 instance (median) | {n} instances (median) | {n}/1 | runs (1) | runs ({n}) |\n|---|---|---|---|---|---|")
for name, scenario, get in [
    ("fan-out p50 (ms)", "fanout", lambda r: r["latency_ms"]["p50"]),
    ("fan-out p99 (ms)", "fanout", lambda r: r["latency_ms"]["p99"]),
    ("fan-out deliveries lost", "fanout", lambda r: r["deliveries_expected"] - r["deliveries"]),
    ("collab CPU over the run (s, every process)", "fanout", lambda r: r["cpu_seconds"]),
]:
    (a, av), (b, bv) = med("one", scenario, get), med("many", scenario, get)
    ratio = f"{b / a:.2f}" if a and b else "–"
    print(f"| {name} | {fmt(a)} | {fmt(b)} | {ratio} | {', '.join(map(fmt, av))} | {', '.join(map(fmt, bv))} |")
idle = [r for r in rows if r["scenario"] == "idle"]
if idle:
    requested = sum(r["connections_requested"] for r in idle)
    opened = sum(r["connections_open"] for r in idle)
    alive = sum(r["connections_alive_after_hold"] for r in idle)
    before = min(r["server_rss_kib_before"] for r in idle)
    during = max(r["server_rss_kib_open"] for r in idle)
    print(f"\nIdle sockets over {n} instances ({len(idle)} load-generator processes): {opened} of {requested} open "
          f"in {max(r['open_seconds'] for r in idle):.1f} s, {alive} alive after the hold, "
          f"{(during - before) / max(opened, 1):.1f} KiB per connection (the instances' resident sets summed: "
          f"{before / 1024:.0f} MiB before, {during / 1024:.0f} MiB with all open), "
          f"errors: {[r['errors'] for r in idle]}")
PY
