#!/usr/bin/env bash
# Lazy-read A/B (issue 8, item 5): one seeder publishes a random file; a fresh reader peer B reads it
# whole through its mount (cat > /dev/null), ROUNDS times for each of two preon binaries in turn,
# against the same seeder, and prints each read's time and B's loop-lag figures (the peer file's
# loop-busy-max-ms and loop-stalls-over-5ms; the goal is under 5 ms). Made to tell a change's
# effect on the read path from the machine's noise, which moves bench_transfer.sh's lazy cat by
# +-30% between runs: the reads here alternate, so both binaries see the same machine.
#
# Usage: tests/bench/bench_read_ab.sh SEEDER_PREON PREON_X PREON_Y [SIZE_MIB] [ROUNDS]
#        (defaults 1024 MiB, 3 rounds; the first read of a run is cold and usually slower)
#        With no arguments (as run by `make bench`): $PREON for all three, 256 MiB, 2 rounds: the
#        machine's noise floor for the read path.
# Needs root (FUSE, tmpfs). Everything lives on one tmpfs and is torn down on exit.
set -euo pipefail
if [ "$#" -eq 0 ] && [ -n "${PREON:-}" ]; then
    set -- "$PREON" "$PREON" "$PREON" 256 2
fi
[ "$#" -ge 3 ] || { sed -n '2,14p' "$0" >&2; exit 2; }
SEED=$(readlink -f -- "$1") X=$(readlink -f -- "$2") Y=$(readlink -f -- "$3")
SIZE_MIB=${4:-1024} ROUNDS=${5:-3}
T=$(mktemp -d /tmp/preon-bench-ab.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for m in "$T/a/m" "$T/b/m"; do mountpoint -q "$m" 2>/dev/null && fusermount3 -u "$m" 2>/dev/null || true; done
    umount "$T" 2>/dev/null || true
    rmdir "$T" 2>/dev/null || true
}
trap cleanup EXIT
mount -t tmpfs -o size=$((SIZE_MIB * 3 + 512))m tmpfs "$T"
mkdir -p "$T/a/m" "$T/a/d" "$T/b/m" "$T/src/big"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$T/src/big/input.bin"
printf '#!/bin/sh\ntrue\n' >"$T/src/big/run"
chmod 755 "$T/src/big/run"
field() { sed -n "s/^$2: //p" "$1/peer"; }
"$SEED" mount -f --data "$T/a/d" --port 0 --slots 0 --log "$T/a/log" "$T/a/m" 2>/dev/null &
PIDS+=($!)
for _ in $(seq 200); do [ -n "$(field "$T/a/m" http 2>/dev/null)" ] && break; sleep 0.05; done
UA=$(field "$T/a/m" http)
cp -r "$T/src/big" "$T/a/m/jobs/.big"
mv "$T/a/m/jobs/.big" "$T/a/m/jobs/big"
for _ in $(seq 1200); do grep -q '^state: running' "$T/a/m/status/big" 2>/dev/null && break; sleep 0.05; done
printf '%-40s %8s %8s %14s %10s %14s %14s\n' binary seconds MiB/s "loop max (ms)" "stalls>5ms" "own CPU max" "blocked max"
for _ in $(seq "$ROUNDS"); do
    for B in "$X" "$Y"; do
        rm -rf "$T/b/d"
        mkdir -p "$T/b/d"
        "$B" mount -f --data "$T/b/d" --port 0 --slots 0 --peer "$UA" --log "$T/b/log" "$T/b/m" 2>/dev/null &
        pb=$!
        PIDS+=("$pb")
        for _ in $(seq 400); do [ -e "$T/b/m/jobs/big/input.bin" ] && break; sleep 0.05; done
        t0=$EPOCHREALTIME
        cat "$T/b/m/jobs/big/input.bin" >/dev/null
        t1=$EPOCHREALTIME
        awk -v b="$B" -v a="$t0" -v c="$t1" -v s="$SIZE_MIB" -v m="$(field "$T/b/m" loop-busy-max-ms)" \
            -v n="$(field "$T/b/m" loop-stalls-over-5ms)" -v u="$(field "$T/b/m" loop-cpu-max-ms)" \
            -v k="$(field "$T/b/m" loop-blocked-max-ms)" \
            'BEGIN { printf "%-40s %8.2f %8.0f %14s %10s %14s %14s\n", b, c - a, s / (c - a), m, n, u, k }'
        kill "$pb"
        wait "$pb" 2>/dev/null || true
    done
done
