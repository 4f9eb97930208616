#!/usr/bin/env bash
# Runs every test (unit, integration against real Postgres and NATS, end-to-end against
# the real `collab` binary), after making sure the services are up.
set -euo pipefail
cd "$(dirname "$0")/../.."
ops/dev/services.sh
# End-to-end tests start this binary.
cargo build --locked -p collab-ops --bin collab
export COLLAB_BIN="$PWD/target/debug/collab"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
