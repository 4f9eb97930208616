# Shared set-up of the single-server bench scripts (tail.sh, history.sh, rebuild.sh), sourced
# once DIR (where `collab` and `collab-bench` are) is set.
#
#   bench_setup NAME PORT   services up; a scratch directory $OUT, a database $DB and a subject
#                           prefix $PREFIX of its own; the server's environment exported; all of
#                           it removed on exit, with the server ($SERVER_PID) and any process
#                           in $EXTRA_PIDS stopped (SERVER_LOG=FILE keeps the server's log)
#   start_server [ARGS...]  `collab serve` on 127.0.0.1:$PORT, waiting for /readyz
#   sql QUERY               one value (or rows) from $DB

bench_setup() {
  PORT="$2"
  ops/dev/services.sh
  OUT="$(mktemp -d)"
  DB="collab_${1}_$$"; PREFIX="${1}x$$"
  SERVER_PID=""; EXTRA_PIDS=""
  trap bench_cleanup EXIT
  export COLLAB_DATABASE_URL="postgres://postgres@127.0.0.1:5432/${DB}" COLLAB_SUBJECT_PREFIX="$PREFIX" \
    COLLAB_JWT_SECRET=bench-secret-0123456789 COLLAB_LOG="${COLLAB_LOG:-warn}" COLLAB_BLOB_DIR="$OUT/blobs" \
    COLLAB_RATE_LIMIT_USER_PER_SECOND=0 COLLAB_RATE_LIMIT_WORKSPACE_PER_SECOND=0 COLLAB_SOCKET_MESSAGES_PER_SECOND=0
}

bench_cleanup() {
  for pid in $EXTRA_PIDS; do kill "$pid" 2>/dev/null || true; done
  [ -n "$SERVER_PID" ] && { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
  "$DIR/collab-bench" cleanup --prefix "$PREFIX" >/dev/null 2>&1 || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS ${DB} WITH (FORCE)" >/dev/null 2>&1 || true
  if [ -n "${SERVER_LOG:-}" ]; then cp "$OUT/server.log" "$SERVER_LOG" 2>/dev/null || true; fi
  rm -rf "$OUT"
}

start_server() {
  "$DIR/collab" serve --listen "127.0.0.1:$PORT" "$@" 2>"$OUT/server.log" &
  SERVER_PID=$!
  for _ in $(seq 1 150); do
    curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "collab did not become ready on port $PORT (see its log)" >&2
  return 1
}

sql() { psql -h 127.0.0.1 -U postgres -d "$DB" -Atc "$1"; }
