#!/usr/bin/env bash
# A bounded run of every cargo-fuzz target (fuzz/): FUZZ_SECONDS each (default 25), starting
# from the committed seeds (fuzz/seeds/TARGET) and the corpus of earlier runs
# (fuzz/corpus/TARGET, not committed). A crash fails the run; its input is left in
# fuzz/artifacts/TARGET for `cargo fuzz run -s none TARGET fuzz/artifacts/TARGET/crash-...`.
#
# `-s none`: AddressSanitizer needs a nightly compiler, and the code under test is safe Rust,
# so panics (failed assertions included) are what the targets look for; `-a` keeps debug
# assertions and overflow checks on in the optimized build.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-25}"
targets=(money view_query command_body)

(cd fuzz && cargo fmt -- --check)
cargo fuzz build -s none -a
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    echo "== cargo fuzz: $target (${seconds}s)"
    log="$(mktemp)"
    if ! cargo fuzz run -s none -a "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "cargo fuzz: $target found a failing input" >&2
        exit 1
    fi
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)' "$log" || true
    rm -f "$log"
done
echo "cargo fuzz: no failures"
