#!/usr/bin/env bash
# Runs every test (unit, integration against real Postgres and NATS, end-to-end against
# the real `collab` binary), after making sure the services are up.
set -euo pipefail
cd "$(dirname "$0")/../.."
ops/dev/services.sh
# Node.js 20+ (the web app's build and the end-to-end tests), then the web app the binary
# serves. (node.sh also brings apt_install, from ops/dev/apt.sh.)
# shellcheck source=ops/dev/node.sh
. ops/dev/node.sh
ops/dev/web.sh
# End-to-end tests drive stock Yjs clients (npm yjs + y-websocket) under Node, and the web
# app in Debian's Chromium (playwright-core).
npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
if ! command -v chromium >/dev/null 2>&1; then
  echo "test: installing Chromium" >&2
  apt_install chromium
fi
# The contract test runs schemathesis (PyPI) against the binary: one virtualenv, kept.
SCHEMATHESIS_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/collab/schemathesis-4.32.5"
if [ ! -x "$SCHEMATHESIS_VENV/bin/schemathesis" ]; then
  if ! python3 -m venv "$SCHEMATHESIS_VENV" 2>/dev/null; then
    echo "test: installing python3-venv" >&2
    apt_install python3-venv
    python3 -m venv "$SCHEMATHESIS_VENV"
  fi
  "$SCHEMATHESIS_VENV/bin/pip" install -q schemathesis==4.32.5
fi
export SCHEMATHESIS_BIN="$SCHEMATHESIS_VENV/bin/schemathesis"
# End-to-end tests start this binary (and run the JetStream consumer example).
cargo build --locked -p collab-ops --bins --examples
export COLLAB_BIN="$PWD/target/debug/collab"
if command -v cargo-nextest >/dev/null 2>&1; then
  # Settings in .config/nextest.toml; CI gets the `ci` profile.
  profile=default
  if [ "${CI:-}" = true ]; then profile=ci; fi
  cargo nextest run --workspace --locked --no-fail-fast --profile "$profile" "$@"
  # nextest does not run documentation examples.
  if [ $# -eq 0 ]; then cargo test --workspace --locked --doc; fi
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
