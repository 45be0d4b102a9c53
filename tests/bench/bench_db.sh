#!/usr/bin/env bash
# SQLite commit latency of the peer's records (tests/bench/bench_db.c), on the disk a data directory
# would use (/var/tmp) and on tmpfs, against the loop's 5 ms goal: direct calls, then posts to the writer thread.
# Usage: PREON=build/preon tests/bench/bench_db.sh [N]   (the bench_db binary is next to preon: make bench)
set -euo pipefail
: "${PREON:?set PREON to the preon binary}"
B=$(dirname -- "$(readlink -f -- "$PREON")")/bench_db
[ -x "$B" ] || { echo "bench_db: $B is missing (make bench builds it)" >&2; exit 1; }
for base in /var/tmp /tmp; do
    d=$(mktemp -d "$base/preon-bench-db.XXXXXX")
    echo "== $base ($(df --output=fstype "$d" | tail -1))"
    "$B" "$d" "${1:-2000}"
    rm -rf -- "$d"
done
