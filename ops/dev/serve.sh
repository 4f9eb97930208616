#!/usr/bin/env bash
# Runs the collab server on http://127.0.0.1:7700 against local Postgres and NATS
# (started, or installed on a bare Debian machine, when missing). Extra arguments go to
# `collab serve`; every setting can also come from COLLAB_* variables (see README).
set -euo pipefail
cd "$(dirname "$0")/../.."
ops/dev/services.sh
# The web app at http://127.0.0.1:7700/ (built when missing or older than its sources).
ops/dev/web.sh
# Development secret; set your own for anything else.
export COLLAB_JWT_SECRET="${COLLAB_JWT_SECRET:-dev-only-secret-change-me}"
export COLLAB_LOG_FORMAT="${COLLAB_LOG_FORMAT:-pretty}"
# The same development build as the test command (ops/dev/test.sh): one compilation serves
# both. Benchmarks use the release profile (ops/bench/).
cargo build --locked -p collab-ops --bins
# Development sign-in (any name) unless COLLAB_DEV_LOGIN=false; it needs the secret above
# and a loopback address, which these defaults are.
export COLLAB_DEV_LOGIN="${COLLAB_DEV_LOGIN:-true}"
exec target/debug/collab serve "$@"
