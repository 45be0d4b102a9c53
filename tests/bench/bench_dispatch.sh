#!/usr/bin/env bash
# The seed's dispatch experiment: 200 "echo hello" tasks over 10 peers on loopback (a submitter that
# runs nothing itself, --slots 0, and 9 volunteers with 2 slots each, joined through the submitter's
# embedded tracker). Prints the time from publishing (the rename into jobs/) until all 200 results
# are in the submitter's results/, the per-task dispatch-to-done percentiles (from the submitter's
# status file: a task's hand-out, i.e. its lease grant, to its result being in results/), the
# per-task run time in the sandbox, and the same for the 200 tasks run on one peer with 2 slots
# (local execution, the yardstick; there dispatch is the task's start) from the same run, and the
# ratios pool / local.
# Usage: PREON=build/preon tests/bench/bench_dispatch.sh [TASKS] [VOLUNTEERS]
# For bench_flood.sh: BENCH_SUB_ARGS are more options of the submitter, and BENCH_FLOOD a command
# run in the background (its own process group, ended with the run) with the submitter's port as
# its last argument, from the submitter's start to the pool's last result.
set -euo pipefail
: "${PREON:?set PREON to the preon binary}"
PREON=$(readlink -f -- "$PREON")
TASKS=${1:-200}
NVOL=${2:-9}
T=$(mktemp -d /var/tmp/preon-dispatch.XXXXXX)
chmod 755 "$T"
PIDS=() MNTS=()
cleanup() {
    set +e
    for m in "${MNTS[@]}"; do fusermount3 -u -z "$m" 2>/dev/null; done
    [ -z "${FLOOD_PID:-}" ] || kill -- -"$FLOOD_PID" 2>/dev/null
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf --one-file-system "$T"
}
trap cleanup EXIT INT TERM

# start NAME ARGS...: mounts a peer at $T/NAME/m and waits for its ready line.
start() {
    local n=$1
    shift
    mkdir -p "$T/$n/m" "$T/$n/d"
    mkfifo "$T/$n/ready"
    "$PREON" mount -f --data "$T/$n/d" --port 0 --ready-fd 3 --log "$T/$n/log" "$@" "$T/$n/m" \
        3>"$T/$n/ready" 2>/dev/null &
    PIDS+=($!)
    MNTS+=("$T/$n/m")
    read -r -t 20 _ <"$T/$n/ready"
}
now() { date +%s.%N; }

mkdir -p "$T/src/hello"
printf 'command = echo hello\ntasks = %d\n' "$TASKS" >"$T/src/hello/preon.job"

mkdir -p "$T/sub/d"
"$PREON" keygen --out "$T/sub/d/key" >"$T/sub.key.pub" 2>/dev/null # the volunteers trust the submitter
read -ra sub_args <<<"${BENCH_SUB_ARGS:-}"
start sub --slots 0 "${sub_args[@]}"
URL=$(sed -n 's/^http: //p' "$T/sub/m/peer")
FLOOD_PID=
if [ -n "${BENCH_FLOOD:-}" ]; then
    setsid bash -c "$BENCH_FLOOD ${URL##*:}" >/dev/null 2>&1 </dev/null &
    FLOOD_PID=$!
fi
for i in $(seq "$NVOL"); do
    mkdir -p "$T/v$i/d/trusted"
    cp "$T/sub.key.pub" "$T/v$i/d/trusted/sub"
    start "v$i" --slots 2 --uid-base $((64500 + 10 * i)) --tracker "$URL/announce"
done
cp -r "$T/src/hello" "$T/sub/m/jobs/.hello"
t0=$(now)
mv "$T/sub/m/jobs/.hello" "$T/sub/m/jobs/hello"
st=$(timeout 600 cat "$T/sub/m/wait/hello")
t1=$(now)
if [ -n "$FLOOD_PID" ]; then # the flood's toll on the submitter, then the flood ends
    printf 'flood on the submitter: %s\n' "$(grep -E '^(connections-|requests-too-large)' "$T/sub/m/peer" | tr '\n' ' ')"
    kill -- -"$FLOOD_PID" 2>/dev/null || true
    FLOOD_PID=
fi
pool=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
n=$(ls "$T/sub/m/results/hello" | wc -l)
ok=$(sed -n 's/^succeeded: //p' <<<"$st")
sub_peer=$(cat "$T/sub/m/peer")
vol_lag=0 vol_cpu=0 vol_blk=0
for v in $(seq 1 "$NVOL"); do # the worst volunteer's longest loop stall, and its longest CPU
    l=$(sed -n 's/^loop-busy-max-ms: //p' "$T/v$v/m/peer" 2>/dev/null || true)
    vol_lag=$(awk -v a="$vol_lag" -v b="${l:-0}" 'BEGIN { print (b > a ? b : a) }')
    l=$(sed -n 's/^loop-cpu-max-ms: //p' "$T/v$v/m/peer" 2>/dev/null || true)
    vol_cpu=$(awk -v a="$vol_cpu" -v b="${l:-0}" 'BEGIN { print (b > a ? b : a) }')
    l=$(sed -n 's/^loop-blocked-max-ms: //p' "$T/v$v/m/peer" 2>/dev/null || true)
    vol_blk=$(awk -v a="$vol_blk" -v b="${l:-0}" 'BEGIN { print (b > a ? b : a) }')
done

start local --slots 2
cp -r "$T/src/hello" "$T/local/m/jobs/.hello"
t0=$(now)
mv "$T/local/m/jobs/.hello" "$T/local/m/jobs/hello"
lst=$(timeout 600 cat "$T/local/m/wait/hello")
t1=$(now)
local_peer=$(cat "$T/local/m/peer")
local_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')

f() { sed -n "s/^$1: //p" <<<"$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
printf 'pool of %d volunteers: %d/%d tasks succeeded, %d result folders\n' "$NVOL" "$ok" "$TASKS" "$n"
printf '%-34s %12s %12s %8s\n' "" "pool" "local" "ratio"
printf '%-34s %12s %12s %8s\n' "publish -> all results (s)" "$pool" "$local_s" "$(ratio "$pool" "$local_s")"
for k in p50 p95; do
    a=$(f "dispatch-ms-$k" "$st") b=$(f "dispatch-ms-$k" "$lst")
    printf '%-34s %12s %12s %8s\n' "dispatch -> result $k (ms)" "$a" "$b" "$(ratio "$a" "$b")"
done
for k in p50 p95; do
    a=$(f "task-ms-$k" "$st") b=$(f "task-ms-$k" "$lst")
    printf '%-34s %12s %12s %8s\n' "run time in the sandbox $k (ms)" "$a" "$b" "$(ratio "$a" "$b")"
done
# Loop lag (the longest an iteration of the peer's loop was busy, since its start; goal < 5 ms).
printf '%-34s %12s %12s\n' "submitter's longest loop stall (ms)" "$(f loop-busy-max-ms "$sub_peer")" \
    "$(f loop-busy-max-ms "$local_peer")"
printf '%-34s %12s\n' "volunteers' longest loop stall (ms)" "$vol_lag"
printf '%-34s %12s %12s\n' "submitter's stalls over 5 ms" "$(f loop-stalls-over-5ms "$sub_peer")" \
    "$(f loop-stalls-over-5ms "$local_peer")"
# The same counting only the loop thread's own CPU time (without the waits for a CPU behind sandboxes).
printf '%-34s %12s %12s\n' "submitter's longest loop CPU (ms)" "$(f loop-cpu-max-ms "$sub_peer")" \
    "$(f loop-cpu-max-ms "$local_peer")"
printf '%-34s %12s\n' "volunteers' longest loop CPU (ms)" "$vol_cpu"
printf '%-34s %12s %12s\n' "submitter's CPU over 5 ms" "$(f loop-cpu-over-5ms "$sub_peer")" \
    "$(f loop-cpu-over-5ms "$local_peer")"
# ... and the time it slept in the kernel inside an iteration (a blocking call: the thing to avoid).
printf '%-34s %12s %12s\n' "submitter's longest blocked (ms)" "$(f loop-blocked-max-ms "$sub_peer")" \
    "$(f loop-blocked-max-ms "$local_peer")"
printf '%-34s %12s\n' "volunteers' longest blocked (ms)" "$vol_blk"
