#!/usr/bin/env bash
# Single-peer benchmarks (issue 2), each printed next to its yardstick from the same run:
#   1. publishing a 1 GiB input: hashing throughput vs OpenSSL's single-core SHA-256 on the same file
#   2. sequential read of it through the mount vs reading the underlying file
#   3. per-task overhead of the sandbox (empty task, median of 100) vs running the same command bare
#   4. writing a file into a job being copied in, through the mount, vs into a plain directory (with
#      the loop-lag figures of the run)
# Usage: PREON=build/preon tests/bench/bench_local.sh [SIZE_MIB]   (default 1024)
set -euo pipefail
: "${PREON:?set PREON to the preon binary}"
PREON=$(readlink -f -- "$PREON")
SIZE_MIB=${1:-1024}
T=$(mktemp -d /var/tmp/preon-bench.XXXXXX)
chmod 755 "$T"
M=$T/mnt D=$T/data PID=
mkdir -p "$M" "$D" "$T/src/big"
cleanup() {
    set +e
    fusermount3 -u -z "$M" 2>/dev/null
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf --one-file-system "$T"
}
trap cleanup EXIT INT TERM

now() { date +%s.%N; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mibs() { awk -v s="$SIZE_MIB" -v t="$1" 'BEGIN { printf "%.0f", s / t }'; }

mkfifo "$T/ready"
"$PREON" mount -f --data "$D" --slots 1 --quiet-ms 200 --ready-fd 3 --log "$T/log" "$M" 3>"$T/ready" &
PID=$!
read -r -t 20 _ <"$T/ready"

echo "== preparing a ${SIZE_MIB} MiB random input"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$T/src/big/input.bin"
printf '#!/bin/sh\ntrue\n' >"$T/src/big/run"
chmod +x "$T/src/big/run"
cat "$T/src/big/input.bin" >/dev/null # warm the page cache for both sides

echo "== 1. publish (hash every block; the staged tree becomes the inputs) vs openssl sha256 of the same file"
t0=$(now); openssl dgst -sha256 "$T/src/big/input.bin" >/dev/null; t1=$(now)
ossl=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
cp -r "$T/src/big" "$M/jobs/.big"   # staged under a dot-name: not published yet
t0=$(now); mv "$M/jobs/.big" "$M/jobs/big"; timeout 300 cat "$M/wait/big" >/dev/null; t1=$(now)
pub=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
printf 'publish:   %s MiB/s (%.2f s)   openssl sha256: %s MiB/s (%.2f s)   ratio %s\n' \
    "$(mibs "$pub")" "$pub" "$(mibs "$ossl")" "$ossl" "$(ratio "$ossl" "$pub")"

echo "== 2. sequential read through the mount vs the underlying file"
dd if="$M/jobs/big/input.bin" of=/dev/null bs=1M 2>/dev/null # first pass fills the caches
t0=$(now); dd if="$M/jobs/big/input.bin" of=/dev/null bs=1M 2>/dev/null; t1=$(now)
mnt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
t0=$(now); dd if="$T/src/big/input.bin" of=/dev/null bs=1M 2>/dev/null; t1=$(now)
raw=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
cmp "$M/jobs/big/input.bin" "$T/src/big/input.bin"
printf 'read via mount: %s MiB/s   direct: %s MiB/s   ratio %s\n' "$(mibs "$mnt")" "$(mibs "$raw")" \
    "$(ratio "$raw" "$mnt")"

echo "== 3. per-task overhead: 100 empty tasks in the sandbox vs 100 bare runs"
mkdir -p "$T/src/empty"
printf 'command = true\ntasks = 100\n' >"$T/src/empty/preon.job"
cp -r "$T/src/empty" "$M/jobs/.empty"
mv "$M/jobs/.empty" "$M/jobs/empty"
st=$(timeout 300 cat "$M/wait/empty")
p50=$(awk -F': ' '$1 == "task-ms-p50" { print $2 }' <<<"$st")
times=()
for _ in $(seq 100); do
    a=$EPOCHREALTIME; /bin/sh -c true; b=$EPOCHREALTIME
    times+=("$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", (b - a) * 1000 }')")
done
bare=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
printf 'sandboxed task p50: %s ms   bare sh -c true p50: %s ms   overhead %.1f ms\n' "$p50" "$bare" \
    "$(awk -v a="$p50" -v b="$bare" 'BEGIN { print a - b }')"

echo "== 4. writing a ${SIZE_MIB} MiB file into a job being copied in, through the mount, vs into a plain directory"
mkdir "$M/jobs/.w" "$T/plain"
t0=$(now); dd if=/dev/zero of="$M/jobs/.w/big" bs=1M count="$SIZE_MIB" conv=fsync 2>/dev/null; t1=$(now)
wmnt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
t0=$(now); dd if=/dev/zero of="$T/plain/big" bs=1M count="$SIZE_MIB" conv=fsync 2>/dev/null; t1=$(now)
wraw=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
printf 'write via mount: %s MiB/s   direct: %s MiB/s   ratio %s\n' "$(mibs "$wmnt")" "$(mibs "$wraw")" \
    "$(ratio "$wraw" "$wmnt")"
# The loop's longest busy iteration over the whole run (the writes, the reads, publishing, tasks).
printf 'loop: busy at most %s ms, %s stalls over 5 ms (since the peer started)\n' \
    "$(sed -n 's/^loop-busy-max-ms: //p' "$M/peer")" "$(sed -n 's/^loop-stalls-over-5ms: //p' "$M/peer")"
