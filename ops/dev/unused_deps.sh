#!/usr/bin/env bash
# Fails when a crate declares a dependency its code never names (what `cargo machete`
# checks, without installing it): every `[dependencies]` and `[dev-dependencies]` entry of
# every workspace crate must appear as a Rust path (`foo_bar`) in that crate's sources.
set -euo pipefail
cd "$(dirname "$0")/../.."
status=0
for manifest in $(git ls-files '*Cargo.toml' | grep -v '^Cargo.toml$'); do
  dir=$(dirname "$manifest")
  deps=$(awk '/^\[(dev-)?dependencies\]/{f=1;next}/^\[/{f=0}f' "$manifest" | grep -o '^[a-z0-9_-]*' || true)
  for dep in $deps; do
    name=${dep//-/_}
    if ! grep -rqE "\\b${name}\\b" $(for d in src tests fuzz_targets; do [ -d "$dir/$d" ] && echo "$dir/$d"; done); then
      echo "unused dependency: $dep in $manifest" >&2
      status=1
    fi
  done
done
exit $status
