#!/usr/bin/env bash
# The load a team of ten makes, with the clients users run: LIGHT_DOCS documents × LIGHT_CLIENTS
# stock clients under Node (yjs + y-websocket; Hocuspocus's own provider for Hocuspocus), each
# typing one character every LIGHT_INTERVAL ms for LIGHT_SECONDS s (ops/bench/peers/light.mjs),
# against collab and each peer, the servers alternating round by round (ROUNDS rounds), each
# round on fresh documents. Per run: the keystroke → peer latency, and the CPU the run cost
# the server — for collab also Postgres's and nats-server's (the whole system). Beside them,
# the floor: a one-row durable INSERT on the same Postgres (pgbench, one client). Writes
# ops/bench/LIGHT.md (which BENCHMARKS.md includes) and prints it.
#
# Each round also replays TRACE with a stock client (ops/bench/peers/ingest.mjs: one update per
# trace transaction, as an editor sends them) against every server that speaks the y-websocket
# protocol, and times how long the client takes to make the updates, to hand them to the
# server, and until a second stock client holds the final text. And it holds IDLE idle
# sockets on every server (`collab-bench idle`: opened 200 at a time over 100 documents, each
# synced, held 5 s, pinged) and reads what they cost the server's resident memory.
#
#   ops/bench/light.sh [DIR]   (DIR holds `collab`; default target/release, built if missing)
#
# Environment: SERVERS (default "collab y-sweet hocuspocus y-websocket"), ROUNDS (3),
# LIGHT_DOCS (10), LIGHT_CLIENTS (5), LIGHT_INTERVAL (200), LIGHT_SECONDS (20), TRACE
# (../shared/traces/automerge-paper.json.gz; a missing file skips the ingest),
# INGEST_TIMEOUT (120), IDLE (10000; 0 skips the idle sockets).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR="${1:-target/release}"
SERVERS="${SERVERS:-collab y-sweet hocuspocus y-websocket}"
ROUNDS="${ROUNDS:-3}"
DOCS="${LIGHT_DOCS:-10}"; CLIENTS="${LIGHT_CLIENTS:-5}"
INTERVAL="${LIGHT_INTERVAL:-200}"; SECONDS_PER_RUN="${LIGHT_SECONDS:-20}"
TRACE="${TRACE:-../shared/traces/automerge-paper.json.gz}"
IDLE="${IDLE:-10000}"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ops/dev/services.sh
{ [ -x "$DIR/collab" ] && [ -x "$DIR/collab-bench" ]; } || cargo build --release --locked -p collab-ops --bins >&2
. ops/bench/lib.sh
peers_setup
OUT="$(mktemp -d)"
PORT=7793
SERVER_PID=""; DB=""; PREFIX=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  SERVER_PID=""
}
stop() {
  stop_server
  [ -n "$DB" ] && psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS ${DB} WITH (FORCE)" >/dev/null 2>&1 || true
  DB=""; PREFIX=""
}
trap 'stop; rm -rf "$OUT"' EXIT

# CPU seconds (user + system) of the processes named $1 (pgrep -x), summed.
cpu_of() {
  local total=0 pid
  for pid in $(pgrep -x "$1" || true); do
    total="$(awk -v t="$(getconf CLK_TCK)" -v sum="$total" '{print sum + ($14+$15)/t}' "/proc/$pid/stat" 2>/dev/null || echo "$total")"
  done
  echo "$total"
}
# Transactions committed or rolled back in collab's database ($DB) since it was created (its
# migrations and the documents' creation included), once no session is left on it (empty
# for a peer).
xacts() {
  [ -n "$DB" ] || return 0
  for _ in $(seq 1 100); do
    [ "$(psql -h 127.0.0.1 -U postgres -Atc "SELECT count(*) FROM pg_stat_activity WHERE datname = '${DB}'")" = 0 ] && break
    sleep 0.1
  done
  psql -h 127.0.0.1 -U postgres -Atc "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '${DB}'"
}
cpu_pid() { awk -v t="$(getconf CLK_TCK)" '{print ($14+$15)/t}' "/proc/$1/stat"; }
# Postgres's CPU seconds: its live processes' and, through the postmaster's count of its
# reaped children, those of backends that have exited (a closed connection's work counts).
postgres_cpu() {
  local postmaster
  postmaster="$(pgrep -o -x postgres || true)"
  [ -n "$postmaster" ] || { echo 0; return; }
  awk -v t="$(getconf CLK_TCK)" -v live="$(cpu_of postgres)" '{print live + ($16+$17)/t}' "/proc/$postmaster/stat"
}

# The floor: one-row durable commits, one client, synchronous_commit on.
FLOOR_DB="collab_floor_$$"
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE ${FLOOR_DB}" >/dev/null
psql -h 127.0.0.1 -U postgres -d "$FLOOR_DB" -qc "CREATE TABLE floor (id bigserial PRIMARY KEY, v int)" >/dev/null
echo 'INSERT INTO floor (v) VALUES (1);' >"$OUT/floor.sql"
FLOOR="$(pgbench -h 127.0.0.1 -U postgres -n -c 1 -T 10 -f "$OUT/floor.sql" "$FLOOR_DB" 2>/dev/null | awk -F'= ' '/latency average/ {print $2}' | awk '{print $1}')"
# ...and at the light load's own pace (one commit per keystroke, spaced as the keystrokes
# are): its latency, and the CPU each commit costs Postgres (the floor under collab's
# Postgres share per keystroke).
RATE=$(( DOCS * CLIENTS * 1000 / INTERVAL ))
pg_before="$(postgres_cpu)"
paced="$(pgbench -h 127.0.0.1 -U postgres -n -c 1 -R "$RATE" -T "$SECONDS_PER_RUN" -f "$OUT/floor.sql" "$FLOOR_DB" 2>/dev/null)"
# pgbench counts a throttled transaction's latency from its scheduled start: less its lag.
PACED_MS="$(awk '/latency average/ {latency = $4} /schedule lag: avg/ {lag = $6} END {printf "%.3f", latency - lag}' <<<"$paced")"
PACED_CPU_US="$(awk -v before="$pg_before" -v after="$(postgres_cpu)" -F': ' '/transactions actually processed/ {printf "%.0f", (after - before) * 1e6 / $2}' <<<"$paced")"
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE ${FLOOR_DB}" >/dev/null

: >"$OUT/results.jsonl"; : >"$OUT/ingest.jsonl"; : >"$OUT/idle.jsonl"
for round in $(seq 1 "$ROUNDS"); do
  for SERVER in $SERVERS; do
    echo "== light: $SERVER, round $round" >&2
    start_peer "$SERVER" "$DIR"
    DOC_LIST=""
    for d in $(seq 1 "$DOCS"); do DOC_LIST="${DOC_LIST:+$DOC_LIST,}$(new_doc "light$round-$d")"; done
    server_before="$(cpu_pid "$SERVER_PID")"
    pg_before="$(postgres_cpu)"; nats_before="$(cpu_of nats-server)"
    if out="$(node ops/bench/peers/light.mjs "${ARGS[@]}" --docs "$DOC_LIST" --clients "$CLIENTS" --interval "$INTERVAL" --seconds "$SECONDS_PER_RUN" 2>"$OUT/error.log")"; then
      cpus=("$(cpu_pid "$SERVER_PID")" "$(postgres_cpu)" "$(cpu_of nats-server)")
      # Postgres counts a backend's transactions when it flushes its statistics (at the
      # latest when it exits): stop the server first, then read them.
      stop_server
      python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r.update(server=sys.argv[2], round=int(sys.argv[3]), server_cpu=float(sys.argv[5])-float(sys.argv[4]), postgres_cpu=float(sys.argv[7])-float(sys.argv[6]), nats_cpu=float(sys.argv[9])-float(sys.argv[8]), pg_transactions=int(sys.argv[10]) if sys.argv[10] else None); print(json.dumps(r))' \
        "$out" "$SERVER" "$round" "$server_before" "${cpus[0]}" "$pg_before" "${cpus[1]}" "$nats_before" "${cpus[2]}" "$(xacts)" >>"$OUT/results.jsonl"
    else
      echo "$SERVER: light run failed" >&2; tail -3 "$OUT/error.log" >&2
    fi
    stop
    # The trace through a stock client (Hocuspocus speaks its own protocol: left out).
    if [ -f "$TRACE" ] && [ "$SERVER" != hocuspocus ]; then
      echo "== ingest: $SERVER, round $round" >&2
      start_peer "$SERVER" "$DIR"
      if out="$(node ops/bench/peers/ingest.mjs "${ARGS[@]}" --doc "$(new_doc "ingest$round")" --trace "$TRACE" --timeout "${INGEST_TIMEOUT:-120}" 2>"$OUT/error.log")"; then
        python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r.update(server=sys.argv[2], round=int(sys.argv[3])); print(json.dumps(r))' "$out" "$SERVER" "$round" >>"$OUT/ingest.jsonl"
      else
        echo "$SERVER: ingest failed or timed out: $out" >&2; tail -3 "$OUT/error.log" >&2
      fi
      stop
    fi
    if [ "$IDLE" -gt 0 ]; then
      echo "== idle: $SERVER, round $round" >&2
      start_peer "$SERVER" "$DIR"
      DOC_LIST=""
      for d in $(seq 1 100); do DOC_LIST="${DOC_LIST:+$DOC_LIST,}$(new_doc "idle$round-$d")"; done
      if out="$("$DIR/collab-bench" "${ARGS[@]}" idle --docs "$DOC_LIST" --connections "$IDLE" --server-pid "$SERVER_PID" 2>"$OUT/error.log")"; then
        python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r.update(server=sys.argv[2], round=int(sys.argv[3])); print(json.dumps(r))' "$out" "$SERVER" "$round" >>"$OUT/idle.jsonl"
      else
        echo "$SERVER: idle sockets failed" >&2; tail -3 "$OUT/error.log" >&2
      fi
      stop
    fi
  done
done

python3 - "$OUT/results.jsonl" "$FLOOR $RATE $PACED_MS $PACED_CPU_US" "$DOCS" "$CLIENTS" "$INTERVAL" "$SECONDS_PER_RUN" "$ROUNDS" "$OUT/ingest.jsonl" "$TRACE" "$OUT/idle.jsonl" "$IDLE" >ops/bench/LIGHT.md <<'EOF'
import json, os, statistics, sys
path, floors, docs, clients, interval, seconds, rounds, ingest_path, trace, idle_path, idle_count = sys.argv[1:12]
floor, rate, paced_ms, paced_cpu_us = floors.split()
rows = [json.loads(l) for l in open(path) if l.strip()]
def by_server(results):
    """Each server (in the order of its first run) with its runs."""
    return [(s, [r for r in results if r["server"] == s]) for s in dict.fromkeys(r["server"] for r in results)]
servers = [s for s, _ in by_server(rows)]
def med(server, key):
    values = [r[key] for r in rows if r["server"] == server and r.get(key) is not None]
    return statistics.median(values) if values else None
print(f"## Light load with stock clients: {docs} documents × {clients} clients, a keystroke every {interval} ms each, {seconds} s\n")
print("`ops/bench/light.sh` (the servers alternating round by round, fresh documents each round;"
      f" medians of {rounds} rounds): stock `yjs` + `y-websocket` clients under Node (Hocuspocus's own"
      " provider for Hocuspocus) type one character at a time; every peer's receipt of every keystroke"
      " is timed in the clients' one process. CPU: what the run cost the server's process; for collab,"
      " whole system adds Postgres's and nats-server's processes. Per delivery: whole-system CPU"
      " divided by the keystrokes delivered to peers. Postgres transactions: all of collab's"
      " database's (its creation and the documents' included) divided by the keystrokes typed.\n")
print("| server | p50 | p99 | delivered / expected | server CPU | Postgres CPU | nats-server CPU | whole-system CPU | CPU per delivery | Postgres transactions per keystroke | runs p50 / p99 (ms) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for s in servers:
    mine = [r for r in rows if r["server"] == s]
    ours = s.startswith("collab")
    whole = [r["server_cpu"] + (r["postgres_cpu"] + r["nats_cpu"] if ours else 0) for r in mine]
    delivered = sum(r["delivered"] for r in mine); expected = sum(r["expected"] for r in mine)
    per = statistics.median(w / max(1, r["delivered"]) for w, r in zip(whole, mine)) * 1e6
    runs = ", ".join(f"{r['p50_ms']:.2f}/{r['p99_ms']:.2f}" for r in mine)
    side = (f"{med(s, 'postgres_cpu'):.2f} s", f"{med(s, 'nats_cpu'):.2f} s") if ours else ("—", "—")
    xacts = [r["pg_transactions"] / max(1, r["sent"]) for r in mine if r.get("pg_transactions") is not None]
    per_keystroke = f"{statistics.median(xacts):.1f}" if ours and xacts else "—"
    print(f"| {s} | {med(s, 'p50_ms'):.2f} ms | {med(s, 'p99_ms'):.2f} ms | {delivered:,} / {expected:,} | {med(s, 'server_cpu'):.2f} s"
          f" | {side[0]} | {side[1]} | {statistics.median(whole):.2f} s | {per:.0f} µs | {per_keystroke} | {runs} |")
print()
print(f"The floor on the same Postgres: a one-row durable INSERT (`pgbench`, one client,"
      f" `synchronous_commit` on, 10 s) takes {floor} ms on average; at this load's own pace"
      f" ({rate} commits/s, one client, `pgbench -R`, {seconds} s) it takes {paced_ms} ms once sent and costs"
      f" Postgres {paced_cpu_us} µs of CPU per commit. Peers' figures are in-memory"
      " work only (Hocuspocus and the y-websocket server keep documents in memory as started here;"
      " y-sweet writes to its store every 10 s); collab commits every keystroke before any peer sees it.")
ingest = [json.loads(l) for l in open(ingest_path) if l.strip()]
if ingest:
    print(f"\n### Trace ingest with a stock client: `{os.path.basename(trace)}`\n")
    print("`ops/bench/peers/ingest.mjs`, in the same rounds: a stock `yjs` + `y-websocket` client replays the trace,"
          " one update per trace transaction sent as its own message (as an editor sends them), yielding to"
          " its event loop every 64 transactions; a second stock client watches the document. Produced: the"
          " writer has made every update (the client's own pace, the floor). Handed over: nothing is left in"
          " the writer's socket buffer. Complete: the watcher holds exactly the final text. Medians; ratio"
          " of handed over to produced.\n")
    print("| server | updates | produced | handed over | handed / produced | complete | runs: handed over / complete (s) |")
    print("|---|---|---|---|---|---|---|")
    for s, mine in by_server(ingest):
        m = lambda k: statistics.median(r[k] for r in mine if r.get(k) is not None)
        done = [r for r in mine if r.get("complete_s") is not None]
        complete = f"{statistics.median(r['complete_s'] for r in done):.2f} s" if done else "not done"
        if done and len(done) < len(mine):
            complete += f" ({len(mine) - len(done)} of {len(mine)} runs not done)"
        runs = ", ".join(f"{r['handed_s']:.2f}/{r['complete_s']:.2f}" if r.get("complete_s") is not None else f"{r['handed_s']:.2f}/—" for r in mine)
        print(f"| {s} | {mine[0]['updates']:,} | {m('produced_s'):.2f} s | {m('handed_s'):.2f} s | {statistics.median(r['handed_s'] / r['produced_s'] for r in mine):.2f} | {complete} | {runs} |")
idle = [json.loads(l) for l in open(idle_path) if l.strip()]
if idle:
    print(f"\n### Idle sockets: {int(idle_count):,} per server, in the same rounds\n")
    print("`collab-bench idle`: sockets opened 200 at a time over 100 documents, each synced (the server's"
          " first message received), held idle for 5 s, then pinged. Memory per connection: the server's"
          " resident-set growth divided by the open sockets (for collab, its process only: Postgres and"
          " nats-server hold nothing per socket). Medians.\n")
    print("| server | open | alive after hold | memory per connection | resident set with all open | runs: KiB per connection |")
    print("|---|---|---|---|---|---|")
    for s, mine in by_server(idle):
        per = [r["kib_per_connection"] for r in mine if r.get("kib_per_connection") is not None]
        print(f"| {s} | {statistics.median(r['connections_open'] for r in mine):,.0f} | {statistics.median(r['connections_alive_after_hold'] for r in mine):,.0f}"
              f" | {statistics.median(per):.2f} KiB | {statistics.median(r['server_rss_kib_open'] for r in mine) / 1024:.0f} MiB | {', '.join(f'{v:.2f}' for v in per)} |")
EOF
cat ops/bench/LIGHT.md
