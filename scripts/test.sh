#!/usr/bin/env bash
# Runs Preon's tests from a fresh checkout: installs the dependencies (scripts/install-deps.sh),
# builds, then runs what `make check` runs, the unit tests (one cmocka binary per module) and the
# integration tests (tests/integration/run-all.sh), then each libFuzzer target for a few seconds
# (`make fuzz-ci`: each target is one test). Unlike `make check`, it goes on after a failing
# binary, counts every test, and prints one combined summary as its LAST line:
#
#     N passed, N failed
#
# and exits non-zero if anything failed (a unit binary that does not build or crashes counts as a
# failure too). Usage: scripts/test.sh [unit|integration|fuzz|all]   (default all)
# Environment: SKIP_DEPS=1 skips install-deps; JOBS=N for make -j; the PREON_TEST_* variables of
# tests/integration/run-all.sh pass through.
set -euo pipefail

cd "$(dirname -- "${BASH_SOURCE[0]}")/.."
what=${1:-all}
case "$what" in
    unit | integration | fuzz | all) ;;
    *)
        echo "usage: scripts/test.sh [unit|integration|fuzz|all]" >&2
        exit 2
        ;;
esac

passed=0
failed=0
log_dir=$(mktemp -d "${TMPDIR:-/tmp}/preon-test.XXXXXX")
trap 'rm -rf -- "$log_dir"' EXIT

summary() {
    echo
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

if [ "${SKIP_DEPS:-0}" != 1 ]; then
    scripts/install-deps.sh
fi

jobs=${JOBS:-$(nproc)}
echo "== build"
if ! make -j"$jobs" build/preon build/preon-limit; then
    echo "FAIL build (make build/preon build/preon-limit)"
    failed=$((failed + 1))
    summary
fi

# run_unit SRC: builds and runs one cmocka binary; adds its counts. cmocka prints
# "[==========] N test(s) run." and "[  PASSED  ] N test(s)." (the latter on stderr).
run_unit() {
    local src=$1 name bin log rc=0 total ok
    name=$(basename "$src" .c)
    bin=build/tests/$name
    log=$log_dir/$name.log
    echo "== $name"
    if ! make -j"$jobs" "$bin" >"$log" 2>&1; then
        cat "$log"
        echo "FAIL $name (does not build)"
        failed=$((failed + 1))
        return 0
    fi
    timeout -k 10 "${PREON_UNIT_TIMEOUT:-300}" "$bin" >"$log" 2>&1 || rc=$?
    cat "$log"
    total=$(sed -n 's/^\[==========\] \([0-9]*\) test(s) run\./\1/p' "$log" | awk '{ s += $1 } END { print s + 0 }')
    ok=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' "$log" | awk '{ s += $1 } END { print s + 0 }')
    if ! grep -q '^\[==========\] [0-9]* test(s) run\.' "$log"; then
        # Crashed or hung before the summary: count what it had passed, plus one failure.
        ok=$(grep -c '^\[       OK \]' "$log" || true)
        echo "FAIL $name (exit $rc before cmocka's summary)"
        passed=$((passed + ok))
        failed=$((failed + 1))
        return 0
    fi
    passed=$((passed + ok))
    failed=$((failed + total - ok))
    if [ "$rc" -ne 0 ] && [ "$total" -eq "$ok" ]; then
        echo "FAIL $name (exit $rc although every test passed)"
        failed=$((failed + 1))
    fi
}

if [ "$what" = unit ] || [ "$what" = all ]; then
    for src in tests/unit/test_*.c; do
        [ -e "$src" ] || continue
        run_unit "$src"
    done
fi

if [ "$what" = integration ] || [ "$what" = all ]; then
    echo "== integration"
    log=$log_dir/integration.log
    rc=0
    PREON=$PWD/build/preon tests/integration/run-all.sh 2>&1 | tee "$log" || rc=$?
    line=$(tail -n 1 "$log")
    if [[ "$line" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        passed=$((passed + BASH_REMATCH[1]))
        failed=$((failed + BASH_REMATCH[2]))
        if [ "$rc" -ne 0 ] && [ "${BASH_REMATCH[2]}" -eq 0 ]; then
            failed=$((failed + 1))
        fi
    else
        echo "FAIL integration (run-all.sh exited $rc without a summary)"
        failed=$((failed + 1))
    fi
fi

# Each fuzz target runs briefly (FUZZ_CI_SECONDS, default 2) from its seeds: a target that does
# not build counts as one failure, and tests/fuzz/run.sh's "N passed, N failed" is added.
if [ "$what" = fuzz ] || [ "$what" = all ]; then
    echo "== fuzz"
    log=$log_dir/fuzz.log
    rc=0
    make -j"$jobs" fuzz-ci 2>&1 | grep -v '^clang ' | tee "$log" || rc=$?
    line=$(tail -n 1 "$log")
    if [[ "$line" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        passed=$((passed + BASH_REMATCH[1]))
        failed=$((failed + BASH_REMATCH[2]))
        if [ "$rc" -ne 0 ] && [ "${BASH_REMATCH[2]}" -eq 0 ]; then
            failed=$((failed + 1))
        fi
    else
        echo "FAIL fuzz (make fuzz-ci exited $rc without a summary)"
        failed=$((failed + 1))
    fi
fi

summary
