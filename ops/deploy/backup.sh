#!/usr/bin/env bash
# Backs up a collab deployment: the Postgres database (the event log and everything that
# is not derived from it: sealed personal-data keys, webhook secrets, worker and delivery
# records) as one consistent pg_dump archive, plus the local blob directory when files are
# kept on disk instead of S3. Read models and search indexes are in the dump too, but a
# restore rebuilds them from the log (docs/operations.md).
#
#   COLLAB_DATABASE_URL=postgres://… ops/deploy/backup.sh BACKUP_DIR
#
# Writes BACKUP_DIR/collab.dump (pg_dump's custom format), BACKUP_DIR/blobs.tar when
# COLLAB_BLOB_DIR names a directory and no COLLAB_S3_BUCKET is set, and BACKUP_DIR/MANIFEST
# (log head, event count, sizes). Safe while the server runs: pg_dump reads one snapshot.
set -euo pipefail
out=${1:?usage: backup.sh BACKUP_DIR (COLLAB_DATABASE_URL names the database)}
url=${COLLAB_DATABASE_URL:?set COLLAB_DATABASE_URL to the database to back up}
for tool in pg_dump pg_restore psql; do
  command -v "$tool" >/dev/null || { echo "backup: $tool is missing (Debian: postgresql-client)" >&2; exit 2; }
done
mkdir -p "$out"
if [ -e "$out/collab.dump" ]; then
  echo "backup: $out/collab.dump exists; choose a new directory" >&2
  exit 2
fi
started=$(date +%s)
# The log head before the dump: the dump's snapshot, taken after, holds at least this much
# (the restore checks it).
read -r head events < <(psql "$url" -AtF' ' -c \
  "SELECT (SELECT position FROM event_log_head), (SELECT count(*) FROM events)")
pg_dump --format=custom --compress=6 --file="$out/collab.dump.partial" "$url"
# The archive must be readable before it counts as a backup.
pg_restore --list "$out/collab.dump.partial" >/dev/null
mv "$out/collab.dump.partial" "$out/collab.dump"
blobs=none
if [ -z "${COLLAB_S3_BUCKET:-}" ] && [ -n "${COLLAB_BLOB_DIR:-}" ] && [ -d "$COLLAB_BLOB_DIR" ]; then
  tar -C "$COLLAB_BLOB_DIR" -cf "$out/blobs.tar" .
  blobs=blobs.tar
fi
cat > "$out/MANIFEST" <<MANIFEST
format: collab-backup 1
created_at: $(date -u +%Y-%m-%dT%H:%M:%SZ)
log_head_at_least: $head
events_at_least: $events
dump_bytes: $(stat -c %s "$out/collab.dump")
blobs: $blobs
MANIFEST
echo "backup: $out/collab.dump ($(stat -c %s "$out/collab.dump") bytes, log head ≥ $head) in $(( $(date +%s) - started )) s"
