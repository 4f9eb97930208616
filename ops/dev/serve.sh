#!/usr/bin/env bash
# Runs the collab server on http://127.0.0.1:7700 against local Postgres and NATS
# (started, or installed on a bare Debian machine, when missing). Extra arguments go to
# `collab serve`; every setting can also come from COLLAB_* variables (see README).
set -euo pipefail
cd "$(dirname "$0")/../.."
ops/dev/services.sh
# Development secret; set your own for anything else.
export COLLAB_JWT_SECRET="${COLLAB_JWT_SECRET:-dev-only-secret-change-me}"
export COLLAB_LOG_FORMAT="${COLLAB_LOG_FORMAT:-pretty}"
# The same development build as the test command (ops/dev/test.sh): one compilation serves
# both. Benchmarks use the release profile (ops/bench/).
cargo build --locked -p collab-ops --bins
exec target/debug/collab serve "$@"
