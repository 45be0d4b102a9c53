#!/usr/bin/env bash
# Runs Preon's tests from a fresh checkout: installs the dependencies (scripts/install-deps.sh),
# builds, then runs what `make check` runs, the unit tests (one cmocka binary per module) and the
# integration tests (tests/integration/run-all.sh), then each libFuzzer target for a few seconds
# (`make fuzz-ci`: each target is one test), then the thread checks (tsan, below). Unlike `make
# check`, it goes on after a failing binary, counts every test, and prints one combined summary
# as its LAST line:
#
#     N passed, N failed
#
# and exits non-zero if anything failed (a unit binary that does not build or crashes counts as a
# failure too). Usage: scripts/test.sh [unit|integration|fuzz|tsan|all]   (default all)
#
# tsan: the thread checks. preon and the unit binaries built with clang -fsanitize=thread in
# build-tsan/ (preon-limit, which runs inside each sandbox, built without it: see docs/testing.md),
# then the unit binaries and integration files named below run against them. Each ThreadSanitizer
# report (TSAN_OPTIONS log_path, one file per process) is printed and counted as one more failure
# of the binary or file that made it. `all` (CI) runs the tsan part too. By default it is the short
# one (every unit binary but test_exec, whose minute is its real sandboxes, and test_swarm.sh:
# about three minutes with the build); `make tsan` runs every unit binary and integration file.
# Environment: SKIP_DEPS=1 skips install-deps; JOBS=N for make -j; PREON_TSAN_UNIT and
# PREON_TSAN_ITESTS (names: test_store test_fetch, test_swarm.sh test_get.sh; or `all`); TSAN_CC
# (default clang; `make clean` or rm -r build-tsan before switching); the PREON_TEST_* variables
# of tests/integration/run-all.sh pass through.
set -euo pipefail

cd "$(dirname -- "${BASH_SOURCE[0]}")/.."
what=${1:-all}
case "$what" in
    unit | integration | fuzz | tsan | all) ;;
    *)
        echo "usage: scripts/test.sh [unit|integration|fuzz|tsan|all]" >&2
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
if [ "$what" != tsan ]; then
    echo "== build"
    if ! make -j"$jobs" build/preon build/preon-limit; then
        echo "FAIL build (make build/preon build/preon-limit)"
        failed=$((failed + 1))
        summary
    fi
fi

# The build the unit binaries come from: build/, or build-tsan/ (then MAKE_VARS are its flags).
unit_build=build
make_vars=()
run_prefix=() # what the tests run under (setarch -R for TSan on some kernels)

# run_unit SRC: builds and runs one cmocka binary of $unit_build; adds its counts. cmocka prints
# "[==========] N test(s) run." and "[  PASSED  ] N test(s)." (the latter on stderr).
run_unit() {
    local src=$1 name bin log rc=0 total ok
    name=$(basename "$src" .c)
    bin=$unit_build/tests/$name
    log=$log_dir/$name.log
    echo "== $name"
    if ! make -j"$jobs" "${make_vars[@]}" "$bin" >"$log" 2>&1; then
        cat "$log"
        echo "FAIL $name (does not build)"
        failed=$((failed + 1))
        return 0
    fi
    timeout -k 10 "${PREON_UNIT_TIMEOUT:-300}" "${run_prefix[@]}" "$bin" >"$log" 2>&1 || rc=$?
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

# add_counts WHAT RC LOG: adds LOG's last line, "N passed, N failed", to the counts (one more
# failure if WHAT exited RC non-zero with none counted, or its last line is not that).
add_counts() {
    local line
    line=$(tail -n 1 "$3")
    if [[ "$line" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        passed=$((passed + BASH_REMATCH[1]))
        failed=$((failed + BASH_REMATCH[2]))
        if [ "$2" -ne 0 ] && [ "${BASH_REMATCH[2]}" -eq 0 ]; then
            failed=$((failed + 1))
        fi
    else
        echo "FAIL $1 (exited $2 without a summary)"
        failed=$((failed + 1))
    fi
}

# run_integration PREON [FILES...]: tests/integration/run-all.sh against PREON; adds its counts.
run_integration() {
    local preon=$1 log=$log_dir/integration.log rc=0
    shift
    PREON=$preon "${run_prefix[@]}" tests/integration/run-all.sh "$@" 2>&1 | tee "$log" || rc=$?
    add_counts integration "$rc" "$log"
}

if [ "$what" = integration ] || [ "$what" = all ]; then
    echo "== integration"
    run_integration "$PWD/build/preon"
fi

# Each fuzz target runs briefly (FUZZ_CI_SECONDS, default 2) from its seeds: a target that does
# not build counts as one failure, and tests/fuzz/run.sh's "N passed, N failed" is added.
if [ "$what" = fuzz ] || [ "$what" = all ]; then
    echo "== fuzz"
    log=$log_dir/fuzz.log
    rc=0
    make -j"$jobs" fuzz-ci 2>&1 | grep -v '^clang ' | tee "$log" || rc=$?
    add_counts "make fuzz-ci" "$rc" "$log"
fi

# tsan_reports WHAT: prints the ThreadSanitizer reports written since the last call and counts one
# failure for WHAT if there were any.
tsan_reports() {
    local f n=0
    for f in "$tsan_log"/report.*; do
        [ -e "$f" ] || continue
        cat "$f"
        mv -- "$f" "$tsan_log/seen.${f##*.}.$RANDOM"
        n=$((n + 1))
    done
    if [ "$n" -gt 0 ]; then
        echo "FAIL $1 (ThreadSanitizer: $n report(s), above)"
        failed=$((failed + 1))
    fi
}

# The short lists CI runs. test_swarm.sh (about a minute under TSan): three peers, the submitter's
# and the volunteers' loops and thread pools, FUSE reads of remote blocks, a restart, the tracker.
tsan_unit_skip=" test_exec "
tsan_itests="test_swarm.sh"

if [ "$what" = tsan ] || [ "$what" = all ]; then
    echo "== tsan build"
    tsan_t0=$SECONDS
    # preon-limit runs inside every sandbox, under the task's memory limit: a TSan runtime there
    # (hundreds of MiB of shadow mappings, its own threads) would not fit 16 MiB, would count in
    # the task's peak memory, and the limiter is single-threaded. It is built as usual, apart.
    # clang by default; TSAN_CC=gcc (libtsan) prints in full a race on a descriptor that clang 14's
    # runtime only dies on ("CHECK failed: sanitizer_common.h:494"): see docs/testing.md.
    make_vars=(CC="${TSAN_CC:-clang}" BUILD=build-tsan
        "CFLAGS=-O1 -g -fsanitize=thread -fno-omit-frame-pointer" "LDFLAGS=-fsanitize=thread")
    if ! make -j"$jobs" BUILD=build-tsan/plain build-tsan/plain/preon-limit ||
        ! make -j"$jobs" "${make_vars[@]}" build-tsan/preon ||
        ! cp build-tsan/plain/preon-limit build-tsan/preon-limit; then
        echo "FAIL tsan build"
        failed=$((failed + 1))
        summary
    fi
    # On kernels with more mmap randomness than this TSan expects, every instrumented binary stops
    # with "FATAL: ThreadSanitizer: unexpected memory mapping"; without address randomisation it
    # runs (the personality is inherited: run-all.sh's peers and their commands too).
    if ! out=$(build-tsan/preon --version 2>&1) && grep -q "unexpected memory mapping" <<<"$out"; then
        echo "tsan: this kernel's address layout does not suit TSan: running under setarch -R"
        run_prefix=(setarch "$(uname -m)" -R)
    fi
    tsan_log=$log_dir/tsan
    mkdir -p "$tsan_log"
    # halt_on_error: a process stops at its first report (a peer then fails its test at once).
    export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 log_path=$tsan_log/report \
suppressions=$PWD/tests/tsan.supp ${TSAN_OPTIONS:-}"
    export PREON_TEST_LIMITER=$PWD/build-tsan/preon-limit # test_exec's, as above
    unit_build=build-tsan
    for src in tests/unit/test_*.c; do
        [ -e "$src" ] || continue
        name=$(basename "$src" .c)
        if [ -n "${PREON_TSAN_UNIT:-}" ]; then
            [ "$PREON_TSAN_UNIT" = all ] || [[ " $PREON_TSAN_UNIT " == *" $name "* ]] || continue
        elif [[ "$tsan_unit_skip" == *" $name "* ]]; then
            echo "== $name: not under TSan here (PREON_TSAN_UNIT=all, make tsan)"
            continue
        fi
        run_unit "$src"
        tsan_reports "tsan $name"
    done
    if [ "${PREON_TSAN_ITESTS:-}" = all ]; then
        files=(tests/integration/test_*.sh)
    else
        files=()
        for f in ${PREON_TSAN_ITESTS:-$tsan_itests}; do
            files+=("tests/integration/$f")
        done
    fi
    # One file at a time, so that each report is counted against the file whose peers made it.
    for f in "${files[@]}"; do
        echo "== tsan $(basename "$f")"
        run_integration "$PWD/build-tsan/preon" "$f"
        tsan_reports "tsan $(basename "$f")"
    done
    echo "== tsan took $((SECONDS - tsan_t0)) s"
fi

summary
