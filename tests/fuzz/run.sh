#!/usr/bin/env bash
# Runs libFuzzer targets (built by `make fuzz`) one after another, each for a bounded time or a
# number of executions, and says for each what libFuzzer's last line says: executions, seconds,
# coverage (cov: edges, ft: features) and the corpus. `make fuzz`, `make fuzz-ci` and
# scripts/test.sh call it; docs/reliability.md records its long runs.
#
#   tests/fuzz/run.sh [--seconds N | --runs N] [--timeout S] build-fuzz/fuzz_X ...
#
# Each target reads and grows build-fuzz/corpus-<target>, starting from tests/fuzz/seeds/<target>/
# (the seeds are never written to). A crash, a leak, a sanitizer report, a failed property
# (abort) or an input slower than --timeout (default 10 s) fails the target; libFuzzer's report is
# printed and the input kept as build-fuzz/crash-<target>-* (add it to the seeds once fixed). The
# last line is "N passed, N failed"; the exit status is non-zero if any failed. libFuzzer's output
# goes to $FUZZ_LOG_DIR/log-<target>.txt (default build-fuzz/), so a short run beside a long one
# of the same target does not write into the long one's log.
set -euo pipefail

seconds=20
runs=
timeout=10
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --) shift; break ;;
        -*) echo "usage: tests/fuzz/run.sh [--seconds N | --runs N] [--timeout S] TARGET..." >&2; exit 2 ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "tests/fuzz/run.sh: no target given" >&2; exit 2; }

cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
passed=0
failed=0
for bin in "$@"; do
    name=$(basename -- "$bin")
    corpus=build-fuzz/corpus-$name
    seeds=tests/fuzz/seeds/$name
    log=${FUZZ_LOG_DIR:-build-fuzz}/log-$name.txt
    mkdir -p "$corpus" "${FUZZ_LOG_DIR:-build-fuzz}"
    args=(-timeout="$timeout" -artifact_prefix="build-fuzz/crash-$name-" -print_final_stats=1)
    if [ -n "$runs" ]; then
        args+=(-runs="$runs")
    else
        args+=(-max_total_time="$seconds")
    fi
    dirs=("$corpus")
    [ -d "$seeds" ] && dirs+=("$seeds")
    start=$(date +%s)
    rc=0
    "$bin" "${args[@]}" "${dirs[@]}" >"$log" 2>&1 || rc=$?
    secs=$(($(date +%s) - start))
    last=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ "$rc" -eq 0 ] && [ -n "$last" ]; then
        passed=$((passed + 1))
        echo "PASS $name: ${execs:-?} executions in ${secs} s; ${last#*DONE }"
    else
        failed=$((failed + 1))
        tail -n 60 "$log"
        echo "FAIL $name (libFuzzer exited $rc after ${execs:-?} executions in ${secs} s; its input: build-fuzz/crash-$name-*; log: $log)"
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
