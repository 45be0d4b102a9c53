#!/usr/bin/env bash
# Runs the integration tests: every tests/integration/test_*.sh (or the files named as arguments),
# each in its own process under a time limit, and prints the plain summary line
# "N passed, N failed" last. Counts are per test function (the PASS/FAIL lines lib.sh prints); a
# file that times out, crashes or reports nothing counts as one more failure. Exits 1 on any failure.
#
# The tests mount real FUSE filesystems and run tasks as other uids, so they need root and
# /dev/fuse. Without them every test is counted as failed, with the reason: CI must never pass by
# skipping.
#
# Environment: PREON (default build/preon), PREON_TEST_FILE_TIMEOUT (seconds per file, default
# 600), PREON_TEST_FILTER (ERE on test function names), PREON_KEEP_TMP=1 (keep the temp dir).
set -uo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
root=$(cd -- "$here/../.." && pwd)
: "${PREON:=$root/build/preon}"
: "${PREON_TEST_FILE_TIMEOUT:=600}"
export PREON

if [ "$#" -gt 0 ]; then
    files=("$@")
else
    files=("$here"/test_*.sh)
fi

passed=0
failed=0

# Test functions a file defines: what we count as failed when it cannot run at all.
count_tests() {
    grep -cE '^t_[A-Za-z0-9_]+ *\(\)' "$1" || true
}

summary() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

# Preconditions: say exactly what is missing and fail everything.
why=""
[ "$(id -u)" -eq 0 ] || why+=" not root (uid $(id -u));"
[ -c /dev/fuse ] || why+=" no /dev/fuse;"
command -v fusermount3 >/dev/null 2>&1 || why+=" no fusermount3 (package fuse3);"
[ -x /usr/bin/bwrap ] || why+=" no /usr/bin/bwrap (package bubblewrap);"
[ -x "$PREON" ] || why+=" no preon binary at $PREON (run make);"
if [ -n "$why" ]; then
    echo "integration tests cannot run:$why"
    echo "(run scripts/install-deps.sh, then the tests as root: sudo make check)"
    for f in "${files[@]}"; do
        n=$(count_tests "$f")
        [ "$n" -gt 0 ] || n=1
        echo "FAIL $(basename "$f") ($n tests not run)"
        failed=$((failed + n))
    done
    summary
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/preon-itest.XXXXXX")
chmod 755 "$tmp"
export PREON_TEST_TMP=$tmp

# Whatever a killed test file left behind: mounts first (lazily, so rm cannot walk into one),
# then the files.
# shellcheck disable=SC2317 # called from the EXIT trap
sweep() {
    local m left
    left=$(awk -v t="$tmp/" 'index($2, t) == 1 { print $2 }' /proc/self/mounts)
    while read -r m; do
        [ -n "$m" ] && { fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; }
    done <<<"$left"
    if [ "${PREON_KEEP_TMP:-0}" != 1 ]; then
        rm -rf --one-file-system -- "$tmp"
    fi
}
trap sweep EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for f in "${files[@]}"; do
    name=$(basename "$f")
    echo "== $name"
    log="$tmp/$name.log"
    # timeout puts the file in its own process group and signals all of it (peers included).
    timeout -k 10 "$PREON_TEST_FILE_TIMEOUT" bash "$f" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    p=$(grep -c '^PASS ' "$log" || true)
    n=$(grep -c '^FAIL ' "$log" || true)
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "FAIL $name (timed out after ${PREON_TEST_FILE_TIMEOUT}s; $(($(count_tests "$f") - p - n)) tests did not finish)"
        n=$((n + 1))
    elif [ "$rc" -ne 0 ] && [ "$n" -eq 0 ]; then
        echo "FAIL $name (exited $rc without a failing test)"
        n=1
    elif [ "$((p + n))" -eq 0 ]; then
        echo "FAIL $name (ran no tests)"
        n=1
    fi
    passed=$((passed + p))
    failed=$((failed + n))
    sweep_mounts=$(awk -v t="$tmp/" 'index($2, t) == 1 { print $2 }' /proc/self/mounts)
    if [ -n "$sweep_mounts" ]; then
        echo "FAIL $name (left mounts behind: $sweep_mounts)"
        failed=$((failed + 1))
        while read -r m; do fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done <<<"$sweep_mounts"
    fi
done

summary
