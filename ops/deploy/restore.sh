#!/usr/bin/env bash
# Restores a backup made by backup.sh into a new, empty database, then makes everything
# derived from the log anew and checks it (docs/operations.md):
#   1. creates the database if it is missing (it must be empty) and the collab_reader role;
#   2. pg_restore in one transaction; `collab migrate` (a newer binary's migrations);
#   3. `collab audit verify`: every hash chain and the position sequence, before trusting it;
#   4. `collab projections rebuild all`: read models from the log;
#   5. `collab search rebuild` when COLLAB_SEARCH_DIR is a directory;
#   6. `collab relay republish`: the JetStream events stream holds the whole log, in order
#      (add --delete-existing-stream when the stream under COLLAB_SUBJECT_PREFIX holds
#      another log: the relay refuses to extend it);
#   7. unpacks blobs.tar into COLLAB_BLOB_DIR when the backup has one.
#
#   COLLAB_DATABASE_URL=postgres://…/new COLLAB_NATS_URL=… ops/deploy/restore.sh BACKUP_DIR [--delete-existing-stream]
#
# Stop every collab process using the target database and subject prefix first. COLLAB_BIN
# names the binary (default: `collab` on PATH).
set -euo pipefail
dir=${1:?usage: restore.sh BACKUP_DIR [--delete-existing-stream]}
shift
republish_args=()
for arg in "$@"; do
  case "$arg" in
    --delete-existing-stream) republish_args+=(--delete-existing) ;;
    *) echo "restore: unknown argument $arg" >&2; exit 2 ;;
  esac
done
url=${COLLAB_DATABASE_URL:?set COLLAB_DATABASE_URL to the new database}
collab=${COLLAB_BIN:-collab}
[ -f "$dir/collab.dump" ] || { echo "restore: no $dir/collab.dump" >&2; exit 2; }
step() { echo "restore: $*" >&2; }

# 1. The database: created when missing, refused when it holds tables.
base=${url%%\?*}
query=${url#"$base"}
name=${base##*/}
maintenance="${base%/*}/postgres$query"
# Asked of the maintenance database, so that a refused connection (a full server, a wrong
# password) stops here with Postgres's own message instead of passing for "missing".
exists=$(psql "$maintenance" -v ON_ERROR_STOP=1 -Atc "SELECT 1 FROM pg_database WHERE datname = '$name'")
if [ "$exists" != 1 ]; then
  step "creating database $name"
  psql "$maintenance" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE \"$name\"" >/dev/null
fi
tables=$(psql "$url" -Atc "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
if [ "$tables" != 0 ]; then
  echo "restore: database $name already has $tables tables; restore goes into an empty database" >&2
  exit 2
fi
# Roles are the cluster's, not the database's: the read side's role must exist.
psql "$url" -v ON_ERROR_STOP=1 -qc "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'collab_reader') THEN
    CREATE ROLE collab_reader NOLOGIN;
  END IF; END \$\$" >/dev/null

# 2. The dump, all or nothing; then whatever migrations this binary adds.
step "pg_restore $dir/collab.dump"
pg_restore --exit-on-error --single-transaction --no-owner --dbname="$url" "$dir/collab.dump"
"$collab" migrate >/dev/null

# 3. Trust nothing unchecked.
step "verifying hash chains"
"$collab" audit verify

# 4-5. Everything derived, from the log.
step "rebuilding read models"
"$collab" projections rebuild all
if [ -n "${COLLAB_SEARCH_DIR:-}" ] && [ "$COLLAB_SEARCH_DIR" != memory ]; then
  step "rebuilding the search index in $COLLAB_SEARCH_DIR"
  rm -rf "$COLLAB_SEARCH_DIR"
  "$collab" search rebuild --dir "$COLLAB_SEARCH_DIR"
fi

# 6. The stream consumers read.
step "republishing the log to JetStream"
"$collab" relay republish "${republish_args[@]}"

# 7. Files kept on local disk.
if [ -f "$dir/blobs.tar" ]; then
  target=${COLLAB_BLOB_DIR:?the backup has blobs.tar: set COLLAB_BLOB_DIR}
  mkdir -p "$target"
  tar -C "$target" -xf "$dir/blobs.tar"
  step "blobs unpacked into $target"
fi
head=$(psql "$url" -Atc 'SELECT position FROM event_log_head')
expected=$(sed -n 's/^log_head_at_least: //p' "$dir/MANIFEST" 2>/dev/null || true)
if [ -n "$expected" ] && [ "$head" -lt "$expected" ]; then
  echo "restore: the restored log ends at $head, before the $expected the backup held" >&2
  exit 1
fi
echo "restore: done; the log ends at position $head"
