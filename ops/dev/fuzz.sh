#!/usr/bin/env bash
# Runs every fuzz target (tests/fuzz, cargo-fuzz on libFuzzer) for a bounded time each, on
# the committed corpus, which grows with what it finds. Usage: ops/dev/fuzz.sh [SECONDS]
# (default 60 per target; CI runs a short pass). Stable Rust: no sanitizer, so what it
# finds are panics, aborts, timeouts and excess memory, which is what a server must not do
# on hostile input. A crash leaves its input under tests/fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz@0.13.2
fi
targets=(sync_frame update envelope command_values)
cargo fuzz build --fuzz-dir tests/fuzz --sanitizer none
for target in "${targets[@]}"; do
  mkdir -p "tests/fuzz/corpus/$target"
  echo "fuzz: $target for ${seconds}s" >&2
  cargo fuzz run --fuzz-dir tests/fuzz --sanitizer none "$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=1024 -malloc_limit_mb=256 -timeout=10 -print_final_stats=1
done
