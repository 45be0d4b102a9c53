#!/usr/bin/env bash
# Slow and flooding peers (issue 11, item 5; docs/reliability.md): what a flood on a peer costs the
# others. Prints, side by side, without and with tests/bench/flood_storm.sh running against the
# serving peer (slowloris, 300 connections at once from one host, oversized requests), from the
# same run:
#  1. a lazy read's latency: a reader peer B reads the first 4 KiB of 16 blocks of a 64 MiB file
#     seeded by A (each block a fresh fetch from A: far apart, beyond the read-ahead), p50 and p95,
#     then the whole file; A is the peer flooded, B a fresh peer each time;
#  2. tests/bench/bench_dispatch.sh's figures (200 tasks over a submitter and 9 volunteers), with
#     the flood on the submitter.
# Both flooded peers apply the per-host limit to loopback (--host-conns-loopback; the attackers are
# 127.0.0.2 and 127.0.0.3, the real peers 127.0.0.1), the submitter with --host-conns 100: its 9
# volunteers share 127.0.0.1 and hold up to 6 connections each.
# Usage: PREON=build/preon tests/bench/bench_flood.sh   (root: FUSE; a few minutes)
set -euo pipefail
: "${PREON:?set PREON to the preon binary}"
PREON=$(readlink -f -- "$PREON")
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
STORM="$here/flood_storm.sh"
T=$(mktemp -d /var/tmp/preon-flood.XXXXXX)
chmod 755 "$T"
PIDS=() MNTS=() STORM_PID=
cleanup() {
    set +e
    [ -z "$STORM_PID" ] || kill -- -"$STORM_PID" 2>/dev/null
    for m in "${MNTS[@]}"; do fusermount3 -u -z "$m" 2>/dev/null; done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf --one-file-system "$T"
}
trap cleanup EXIT INT TERM

# start NAME ARGS...: mounts a peer at $T/NAME/m and waits for its ready line.
start() {
    local n=$1
    shift
    rm -rf "$T/$n"
    mkdir -p "$T/$n/m" "$T/$n/d"
    mkfifo "$T/$n/ready"
    "$PREON" mount -f --data "$T/$n/d" --port 0 --ready-fd 3 --log "$T/$n/log" "$@" "$T/$n/m" \
        3>"$T/$n/ready" 2>/dev/null &
    PIDS+=($!)
    MNTS+=("$T/$n/m")
    read -r -t 20 _ <"$T/$n/ready"
}
stop() { # stop NAME: unmounts it and waits for its daemon (the last one started)
    fusermount3 -u "$T/$1/m" 2>/dev/null || true
    wait "${PIDS[-1]}" 2>/dev/null || true
    unset 'PIDS[-1]'
}
field() { sed -n "s/^$2: //p" "$1/peer"; }
pct() { sort -n | awk -v p="$1" '{ a[NR] = $1 } END { i = int(NR * p / 100 + 0.5); if (i < 1) i = 1; print a[i] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# ---- 1. a lazy read's latency ----
mkdir -p "$T/src/big"
head -c $((64 * 1024 * 1024)) /dev/urandom >"$T/src/big/input.bin"
printf '#!/bin/sh\ntrue\n' >"$T/src/big/run"
chmod 755 "$T/src/big/run"
start A --slots 0 --host-conns-loopback
UA=$(field "$T/A/m" http)
cp -r "$T/src/big" "$T/A/m/jobs/.big"
mv "$T/A/m/jobs/.big" "$T/A/m/jobs/big"
# bounded: until it is published (with --slots 0 its task waits: A only serves its blocks)
for _ in $(seq 1200); do grep -q '^state: running' "$T/A/m/status/big" 2>/dev/null && break; sleep 0.05; done

# read_round NAME: a fresh reader NAME; sets R to "p50 p95 whole-file-seconds" (ms, ms, s).
read_round() {
    local n=$1 f k t0 t1 whole
    start "$n" --slots 0 --peer "$UA"
    f="$T/$n/m/jobs/big/input.bin"
    for _ in $(seq 400); do [ -e "$f" ] && break; sleep 0.05; done # bounded: until B lists A's job
    for k in $(seq 0 15); do # block 16k: 64 blocks of 4 KiB pages each, 16 blocks apart
        t0=$EPOCHREALTIME
        dd if="$f" of=/dev/null bs=4096 skip=$((k * 16 * 64)) count=1 status=none
        t1=$EPOCHREALTIME
        awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }'
    done >"$T/$n.lat"
    t0=$EPOCHREALTIME
    cat "$f" >/dev/null
    t1=$EPOCHREALTIME
    whole=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    cmp -s "$f" "$T/src/big/input.bin" || echo "WARNING: $n read bytes that differ" >&2
    R="$(pct 50 <"$T/$n.lat") $(pct 95 <"$T/$n.lat") $whole"
    stop "$n"
}

read_round B0
read -r q50 q95 qall <<<"$R"
setsid bash "$STORM" "${UA##*:}" >/dev/null 2>&1 </dev/null &
STORM_PID=$!
# bounded: until the storm is on (A refuses connections from 127.0.0.2)
for _ in $(seq 200); do [ "$(field "$T/A/m" connections-refused-per-host)" -gt 0 ] && break; sleep 0.05; done
read_round B1
read -r f50 f95 fall <<<"$R"
toll=$(grep -E '^(connections-|requests-too-large)' "$T/A/m/peer" | tr '\n' ' ')
kill -- -"$STORM_PID" 2>/dev/null || true
STORM_PID=

printf '%-44s %10s %10s %8s\n' "lazy read from a peer (64 MiB file)" "no flood" "flood" "ratio"
printf '%-44s %10s %10s %8s\n' "first 4 KiB of a block p50 (ms)" "$q50" "$f50" "$(ratio "$f50" "$q50")"
printf '%-44s %10s %10s %8s\n' "first 4 KiB of a block p95 (ms)" "$q95" "$f95" "$(ratio "$f95" "$q95")"
printf '%-44s %10s %10s %8s\n' "whole file (s)" "$qall" "$fall" "$(ratio "$fall" "$qall")"
echo "the flood on A: $toll"
echo

# ---- 2. dispatch ----
BENCH_SUB_ARGS= BENCH_FLOOD= bash "$here/bench_dispatch.sh" >"$T/dispatch.quiet"
BENCH_SUB_ARGS="--host-conns-loopback --host-conns 100" BENCH_FLOOD="bash $STORM" \
    bash "$here/bench_dispatch.sh" >"$T/dispatch.flood"
row() { # row LABEL: the pool column of bench_dispatch's line LABEL
    grep -F -- "$1" "$2" | head -n 1 | awk '{ print $(NF - 2) }'
}
printf '%-44s %10s %10s %8s\n' "bench_dispatch.sh (pool of 9 volunteers)" "no flood" "flood" "ratio"
for label in "publish -> all results (s)" "dispatch -> result p50 (ms)" "dispatch -> result p95 (ms)" \
    "run time in the sandbox p50 (ms)"; do
    a=$(row "$label" "$T/dispatch.quiet") b=$(row "$label" "$T/dispatch.flood")
    printf '%-44s %10s %10s %8s\n' "$label" "$a" "$b" "$(ratio "$b" "$a")"
done
grep -h "tasks succeeded" "$T/dispatch.quiet" "$T/dispatch.flood" | sed 's/^/  /'
grep -h "^flood on the submitter" "$T/dispatch.flood" | sed 's/^/  /'
# the submitter's loop: wall time of its longest iteration, of it the loop thread's own CPU, and the
# time it slept in the kernel (a stall with little CPU is the machine's scheduling, not the flood)
for what in "longest loop stall" "longest loop CPU" "longest blocked"; do
    printf '%-44s %10s %10s\n' "submitter's $what (ms)" \
        "$(grep -F "submitter's $what" "$T/dispatch.quiet" | awk '{ print $(NF - 1) }')" \
        "$(grep -F "submitter's $what" "$T/dispatch.flood" | awk '{ print $(NF - 1) }')"
done
