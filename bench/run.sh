#!/usr/bin/env bash
# Builds the release binaries once and runs the benchmark:
#   bench/run.sh [all|mem|sqlite|postgres|http|subscriptions|nats|fsync] [flags]
# The JSON line is also written to target/bench-last.json.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
shift || true
if [[ "$what" == all || "$what" == http ]] && ! command -v wrk >/dev/null; then
    echo "wrk is missing: the HTTP figures will not run (Debian: apt-get install -y wrk)" >&2
fi
# bench/ is its own workspace; both builds share the product's target/ so that
# target/release/factum-bench finds target/release/bank beside it.
cargo build --release -p bank
CARGO_TARGET_DIR="$PWD/target" cargo build --release --manifest-path bench/Cargo.toml
exec target/release/factum-bench "$what" --json-out target/bench-last.json "$@"
