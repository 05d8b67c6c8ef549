#!/usr/bin/env bash
# A bounded schemathesis run against the OpenAPI document of every example service.
#
# Each service is built, started on a free port over a fresh temporary SQLite store, and
# exercised by schemathesis (examples, coverage, fuzzing and stateful phases) for at most
# ST_MAX_TIME seconds. The run fails on any 5xx, any response that its operation does not
# document (status, content type, headers, body schema), and any schema-violating request
# the server accepts.
#
# One check is left out: positive_data_acceptance expects every schema-valid request to
# succeed, but business rules refuse some of them by design (a withdrawal above the
# balance, an If-Match of another version, a filter naming a field the view does not have);
# those answers are documented 4xx, which status_code_conformance checks. .ci/schemathesis.toml
# lets a failing If-Match be a 412 for invalid data, and says why.
#
# Environment: ST_MAX_TIME (seconds per service, default 75), ST_WORKERS (default 1: with more,
# CPython 3.11.7 sometimes fails inside hypothesis with "AST constructor recursion depth
# mismatch", a race in its parser that says nothing about the service),
# ST_SEED (a fixed seed to replay a run), ST_REPORT_DIR (default target/schemathesis).
set -euo pipefail
cd "$(dirname "$0")/.."

max_time="${ST_MAX_TIME:-75}"
workers="${ST_WORKERS:-1}"
report_dir="${ST_REPORT_DIR:-target/schemathesis}"
seed_args=()
if [[ -n "${ST_SEED:-}" ]]; then
    seed_args=(--seed "$ST_SEED")
fi

if ! command -v schemathesis >/dev/null 2>&1; then
    echo "schemathesis is not installed (pip install 'schemathesis>=4,<5')" >&2
    exit 1
fi

cargo build --quiet -p bank -p todolist --bins
target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$report_dir"
failed=()
for service in bank todolist; do
    log="$work/$service.log"
    "$target_dir/debug/$service" --store "sqlite://$work/$service/store.db" \
        --listen 127.0.0.1:0 >"$log" 2>&1 &
    pid=$!
    pids+=("$pid")
    url=""
    for _ in $(seq 1 100); do
        url="$(grep -o 'listening on http://[0-9.:]*' "$log" | head -n 1 | sed 's/listening on //')" || true
        [[ -n "$url" ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z "$url" ]]; then
        echo "$service did not start:" >&2
        cat "$log" >&2
        exit 1
    fi
    echo "== schemathesis: $service at $url (at most ${max_time}s)"
    if ! schemathesis --config-file .ci/schemathesis.toml run "$url/openapi.json" \
        --checks all \
        --exclude-checks positive_data_acceptance \
        --workers "$workers" \
        --max-time "$max_time" \
        --request-timeout 10 \
        --generation-database none \
        --no-color \
        --report junit \
        --report-junit-path "$report_dir/$service.xml" \
        "${seed_args[@]}"; then
        failed+=("$service")
    fi
    if grep -q 'panicked' "$log"; then
        echo "$service logged a panic:" >&2
        grep -n 'panicked' "$log" >&2
        failed+=("$service (panic)")
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
done

if ((${#failed[@]})); then
    echo "schemathesis found problems in: ${failed[*]}" >&2
    exit 1
fi
echo "schemathesis: no failures"
