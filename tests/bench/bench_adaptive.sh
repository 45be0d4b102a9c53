#!/usr/bin/env bash
# The cost of redundant execution and of adaptive replication (tests/bench/bench_adaptive.c): runs
# per accepted result and wrong results accepted, in a simulated pool with 10% lying workers, on the
# coordination core the peer runs. Usage: PREON=build/preon tests/bench/bench_adaptive.sh [TASKS]
set -euo pipefail
: "${PREON:?set PREON to the preon binary}"
B=$(dirname -- "$(readlink -f -- "$PREON")")/bench_adaptive
[ -x "$B" ] || { echo "bench_adaptive: $B is missing (make bench builds it)" >&2; exit 1; }
for seed in 1 2 3; do
    "$B" "${1:-20000}" 100 10 "$seed"
done
