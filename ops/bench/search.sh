#!/usr/bin/env bash
# Search at the scale of a company:
#   - a corpus of DOCUMENTS documents (default 100,000) over WORKSPACES workspaces (50), each
#     with a title and 1–20 KB of text (TipTap-style paragraphs) of words drawn as often as
#     they occur in English (the `wordfreq` list, top 30,000 words), appended through the
#     event store; the same text in a plain table for the baseline;
#   - a server indexes it from the log (time to fill the index, its size on disk);
#   - 8 concurrent clients issue a mix of one-word, two-word, phrase and prefix queries for
#     SECONDS through `GET /v1/search` (as a member of every workspace), while a probe
#     appends a new word to a document once a second and times until it is findable;
#   - the same mix as naive ILIKE scans of the plain table (8 clients, a bounded number of
#     queries: each scans every row).
#
#   ops/bench/search.sh [DIR] [DOCUMENTS] [WORKSPACES] [SECONDS]
#
# DIR holds `collab` and `collab-bench` (default target/release). Prints one JSON object.
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR="$(realpath "${1:-target/release}")"
DOCUMENTS="${2:-100000}"; WORKSPACES="${3:-50}"; SECONDS_RUN="${4:-30}"
. ops/bench/lib.sh
bench_setup search 7796

# The word-frequency list (wordfreq 3.1.1 from PyPI, in a virtualenv kept between runs).
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/collab-bench/wordfreq-3.1.1"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import wordfreq' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q wordfreq==3.1.1
fi
"$VENV/bin/python" - "$OUT/words.tsv" <<'PY'
import re, sys
from wordfreq import top_n_list, word_frequency
with open(sys.argv[1], "w") as out:
    for word in top_n_list("en", 30000):
        if re.fullmatch(r"[a-z]+", word):
            out.write(f"{word}\t{word_frequency(word, 'en')}\n")
PY
CORPUS=(--words "$OUT/words.tsv" --documents "$DOCUMENTS" --workspaces "$WORKSPACES")

"$DIR/collab" migrate >/dev/null
"$DIR/collab-bench" search-seed --database-url "$COLLAB_DATABASE_URL" "${CORPUS[@]}" >"$OUT/seed.json"
psql -h 127.0.0.1 -U postgres -d "$DB" -qc "VACUUM ANALYZE" >/dev/null
head="$(sql "SELECT position FROM event_log_head")"
TOKEN="$("$DIR/collab" token mint --user reader)"
started="$(date +%s.%N)"
start_server --search-dir "$OUT/search"
# The index is filled when a search reflects the head.
filled=""
for _ in $(seq 1 36000); do
  position="$(curl -fs "http://127.0.0.1:$PORT/v1/search?q=probe" -H "Authorization: Bearer $TOKEN" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["position"])' 2>/dev/null || echo 0)"
  if [ "$position" -ge "$head" ]; then filled="$(date +%s.%N)"; break; fi
  sleep 0.1
done
index_bytes="$(du -sb "$OUT/search" | cut -f1)"
rss_kib="$(awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status")"
workspace="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["first_workspace"])' "$OUT/seed.json")"
probe="$(curl -fs "http://127.0.0.1:$PORT/v1/workspaces/$workspace/documents" -H "Authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d '{"title":"Freshness probe"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
"$DIR/collab-bench" search-load --url "http://127.0.0.1:$PORT" --token "$TOKEN" --fresh-document "$probe" \
  --seconds "$SECONDS_RUN" "${CORPUS[@]}" >"$OUT/collab.json"
"$DIR/collab-bench" search-load --ilike-database-url "$COLLAB_DATABASE_URL" --max-queries 48 \
  --seconds 600 "${CORPUS[@]}" >"$OUT/ilike.json"
python3 - "$OUT" "$head" "$started" "${filled:-}" "$index_bytes" "$rss_kib" <<'PY'
import json, sys
out, head, started, filled, index_bytes, rss_kib = sys.argv[1:7]
seed = json.load(open(f"{out}/seed.json"))
fill_s = float(filled) - float(started) if filled else None
print(json.dumps({
    "documents": seed["documents"],
    "workspaces": seed["workspaces"],
    "text_mib": round(seed["text_bytes"] / 2**20),
    "events": int(head),
    "index_fill_seconds": round(fill_s, 1) if fill_s else None,
    "index_documents_per_second": round(seed["documents"] / fill_s) if fill_s else None,
    "index_mib": round(int(index_bytes) / 2**20),
    "server_rss_mib": round(int(rss_kib) / 1024),
    "collab": json.load(open(f"{out}/collab.json")),
    "ilike": json.load(open(f"{out}/ilike.json")),
}, indent=2))
PY
