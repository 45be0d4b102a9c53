#!/usr/bin/env bash
# A task that reads a slice of a big input moves only that slice (issue 3, item 5): the volunteer
# reads its inputs lazily through its own mount, so of a 32 MiB input only the blocks around the
# slice (plus the read-ahead window) cross the network.
# shellcheck disable=SC2016 # job scripts are single-quoted on purpose: they expand in the task
. "$(dirname -- "$0")/lib.sh"

# _slice_case PATH SKIP: a job on A (no slots) whose one task, on volunteer B, hashes the 4 KiB
# block SKIP of a 32 MiB input read at PATH; the hash must be right and B must have fetched about
# the slice only (its block + 8 read ahead + the run script: about 2.3 MiB of the 32 MiB).
_slice_case() {
    local path=$1 skip=$2 a b url src st want got fetched
    start_peer A --port 0 --slots 0
    a=$(mnt A)
    url=$(peer_field "$a" http)
    src=$(src_dir slice)
    head -c $((32 * 1024 * 1024)) /dev/urandom >"$src/big.bin"
    make_job "$src" "dd if=$path bs=4096 skip=$skip count=1 2>/dev/null | sha256sum | cut -c1-64 > out.txt" "tasks = 1"
    want=$(dd if="$src/big.bin" bs=4096 skip="$skip" count=1 2>/dev/null | sha256sum | cut -c1-64)
    start_peer B --port 0 --slots 1 --peer "$url" --uid-base 64520
    b=$(mnt B)
    cp -r -- "$src" "$a/jobs/slice"
    st=$(wait_job "$a" slice 90)
    assert_eq done "$(field state <<<"$st")" "state on A"
    got=$(cat "$a/results/slice/0/out.txt")
    assert_eq "$want" "$got" "the slice's hash, computed on B"
    assert_eq "$(printf '%s\n' exit_code out.txt stderr stdout)" "$(ls -- "$a/results/slice/0")" "result files (no input among them)"
    fetched=$(peer_field "$b" bytes-fetched)
    [ "$fetched" -gt 0 ] && [ "$fetched" -le $((16 * 262144)) ] ||
        fail "B fetched $fetched bytes for a 4 KiB slice of a 32 MiB input read at $path"
}

t_a_task_reading_a_slice_moves_only_that_slice() { _slice_case /job/big.bin 2000; }

# The same slice read relatively, from the task's working directory (the job's files overlaid with
# the task's own): still only the slice moves.
t_a_relative_slice_read_moves_only_that_slice() { _slice_case big.bin 5000; }

run_tests "$@"
