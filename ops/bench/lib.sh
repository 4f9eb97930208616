# Shared set-up of the single-server bench scripts (tail.sh, history.sh, rebuild.sh), sourced
# once DIR (where `collab` and `collab-bench` are) is set.
#
#   bench_setup NAME PORT   services up; a scratch directory $OUT, a database $DB and a subject
#                           prefix $PREFIX of its own; the server's environment exported; all of
#                           it removed on exit, with the server ($SERVER_PID) and any process
#                           in $EXTRA_PIDS stopped (SERVER_LOG=FILE keeps the server's log)
#   start_server [ARGS...]  `collab serve` on 127.0.0.1:$PORT, waiting for /readyz
#   sql QUERY               one value (or rows) from $DB
#
# And for the scripts that compare collab with its peers (compare.sh, light.sh):
#
#   peers_setup             the peers' npm packages, y-sweet (built once, cached)
#   start_peer SERVER DIR   starts collab (from DIR; `collab:OTHER_DIR` from there), y-sweet,
#                           hocuspocus or y-websocket on
#                           127.0.0.1:$PORT with its files in $OUT: sets SERVER_PID, ARGS (how a
#                           client reaches it: --url, --query, --protocol) and new_doc NAME (a
#                           document's id); collab gets a database $DB and prefix $PREFIX

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

wait_port() { for _ in $(seq 1 150); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.2; done; echo "nothing on port $1" >&2; return 1; }

peers_setup() {
  npm ci --prefix ops/bench/peers --no-audit --no-fund --loglevel=error >&2
  if [[ " $SERVERS " == *" y-sweet "* ]] && ! command -v y-sweet >/dev/null; then
    # y-sweet from the Rust package registry, built once and cached.
    YSWEET_ROOT="${YSWEET_ROOT:-$HOME/.cache/collab-bench/ysweet}"
    [ -x "$YSWEET_ROOT/bin/y-sweet" ] || cargo install y-sweet --version 0.9.1 --locked --root "$YSWEET_ROOT" >&2
    export PATH="$YSWEET_ROOT/bin:$PATH"
  fi
}

start_peer() {
  local server="$1" dir="$2"
  ARGS=()
  case "$server" in
    collab|collab:*)
      # `collab:DIR` runs the collab of another build (a side-by-side A/B).
      [[ "$server" == collab:* ]] && dir="${server#collab:}"
      DB="collab_peer_$(date +%s)_$$"; PREFIX="peer$(date +%s)x$$"
      COLLAB_DATABASE_URL="postgres://postgres@127.0.0.1:5432/${DB}" COLLAB_SUBJECT_PREFIX="$PREFIX" \
      COLLAB_JWT_SECRET=bench-secret-0123456789 COLLAB_LOG=${COLLAB_LOG_LEVEL:-warn} COLLAB_BLOB_DIR="$OUT/blobs" \
      COLLAB_RATE_LIMIT_USER_PER_SECOND=0 COLLAB_RATE_LIMIT_WORKSPACE_PER_SECOND=0 COLLAB_SOCKET_MESSAGES_PER_SECOND=0 \
        "$dir/collab" serve --listen "127.0.0.1:$PORT" 2>"$OUT/collab.log" &
      SERVER_PID=$!
      wait_port "$PORT"
      TOKEN="$(COLLAB_JWT_SECRET=bench-secret-0123456789 "$dir/collab" token mint --user bench)"
      api() { curl -fs -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' "$@"; }
      WS_ID="$(api -X POST "http://127.0.0.1:$PORT/v1/workspaces" -d '{"name":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
      new_doc() { api -X POST "http://127.0.0.1:$PORT/v1/workspaces/$WS_ID/documents" -d "{\"title\":\"$1\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
      ARGS=(--url "ws://127.0.0.1:$PORT/v1/sync" --query "token=$TOKEN")
      ;;
    y-sweet)
      y-sweet serve "$OUT/ysweet-store" --host 127.0.0.1 --port "$PORT" >"$OUT/ysweet.log" 2>&1 &
      SERVER_PID=$!
      wait_port "$PORT"
      new_doc() { local id="doc-$1-$RANDOM$RANDOM"; curl -fs -X POST -H 'content-type: application/json' "http://127.0.0.1:$PORT/doc/new" -d "{\"docId\":\"$id\"}" >/dev/null; echo "$id"; }
      ARGS=(--url "ws://127.0.0.1:$PORT/d/{doc}/ws/{doc}")
      ;;
    hocuspocus)
      PORT="$PORT" node ops/bench/peers/hocuspocus.mjs >"$OUT/hocuspocus.log" 2>&1 &
      SERVER_PID=$!
      wait_port "$PORT"
      new_doc() { echo "doc-$1-$RANDOM$RANDOM"; }
      ARGS=(--url "ws://127.0.0.1:$PORT" --protocol hocuspocus)
      ;;
    y-websocket)
      HOST=127.0.0.1 PORT="$PORT" node ops/bench/peers/node_modules/@y/websocket-server/src/server.js >"$OUT/ywebsocket.log" 2>&1 &
      SERVER_PID=$!
      wait_port "$PORT"
      new_doc() { echo "doc-$1-$RANDOM$RANDOM"; }
      ARGS=(--url "ws://127.0.0.1:$PORT")
      ;;
  esac
}
