#!/usr/bin/env bash
# Builds the web app (api/web, TypeScript + Vite) into api/web/dist, which the collab binary
# serves at / — only when dist is missing or older than the app's sources. Node.js 20+ and
# npm come from ops/dev/node.sh. `ops/dev/serve.sh` and `ops/dev/test.sh` run it.
set -euo pipefail
cd "$(dirname "$0")/../.."
web=api/web
stamp="$web/dist/.built"
# shellcheck source=ops/dev/node.sh
. ops/dev/node.sh
sources=("$web/src" "$web/public" "$web/index.html" "$web/package.json" "$web/package-lock.json"
  "$web/vite.config.ts" "$web/tsconfig.json")
if [ -f "$stamp" ] && [ -z "$(find "${sources[@]}" -newer "$stamp" -print -quit)" ]; then
  exit 0
fi
if [ ! -f "$web/node_modules/.package-lock.json" ] ||
  [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; then
  npm ci --prefix "$web" --no-audit --no-fund --loglevel=error
fi
echo "web: building the web app" >&2
npm run --prefix "$web" --silent build
touch "$stamp"
