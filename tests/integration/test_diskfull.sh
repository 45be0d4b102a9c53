#!/usr/bin/env bash
# A peer whose data directory fills up (issue 11, item 3; docs/reliability.md, "Disk full"): each
# peer under test has its data directory on a small tmpfs made by the test (its task directories'
# btrfs is a sparse image in it, exec/quota.c, so they fill with it), and the test fills it while
# the peer receives blocks, collects a task's outputs (its own, a volunteer's, or a result fetched
# from a volunteer) or publishes. Every case checks: a clear error in the log and in the peer's
# status files; no corrupt record (SQLite's integrity_check) or block (every stored block hashed
# again against its name); nothing partial under results/; and the peer carries on by itself once
# space is freed (the filler removed): the stuck work finishes, with the right bytes.
# (Publishing by `cp` into a full disk is test_publish.sh's t_copy_out_of_space_is_rejected and
# t_rsync_out_of_space_is_rejected; here the record of a publish that no longer fits.)
# shellcheck disable=SC2016 # job scripts are single-quoted on purpose: they expand in the task
. "$(dirname -- "$0")/lib.sh"

# small_data NAME MIB: NAME's data directory is a tmpfs of MIB MiB (mounted before start_peer
# makes it; the harness detaches what is mounted under the case at cleanup).
small_data() {
    local d="$T_CASE/$1/data"
    mkdir -p "$d"
    mount -t tmpfs -o "size=${2}m,mode=0711" "preon-full-$1" "$d" || fail "cannot mount a tmpfs on $d"
}

# fill NAME LEAVE_KIB: writes DATA/filler until only LEAVE_KIB KiB are left free (0: the disk full).
fill() {
    local d="${PEER_DATA[$1]}" avail
    avail=$(df -B1 --output=avail -- "$d" | tail -n 1)
    head -c $((avail > $2 * 1024 ? avail - $2 * 1024 : 0)) /dev/zero >>"$d/filler" 2>/dev/null || true
    if [ "$2" = 0 ]; then # what tmpfs still had for the last partial page
        head -c 1048576 /dev/zero >>"$d/filler" 2>/dev/null || true
    fi
    echo "$1: $(df -h --output=avail -- "$d" | tail -n 1 | tr -d ' ') left after the filler"
}

unfill() { rm -f -- "${PEER_DATA[$1]}/filler"; }

# intact NAME: the peer's records pass SQLite's integrity_check, and every block of its store
# hashes to its name (no torn or wrong block under a hash name); store/tmp holds nothing once the
# peer is stopped (a put that failed removed its file).
intact() {
    local d="${PEER_DATA[$1]}" out f n=0 bad=""
    out=$(sqlite3 "$d/preon.db" 'PRAGMA integrity_check' 2>&1) || fail "sqlite3 on $1's preon.db: $out"
    assert_eq ok "$out" "$1's records (integrity_check)"
    for f in "$d"/store/blocks/*/*; do
        [ -f "$f" ] || continue
        n=$((n + 1))
        [ "$(sha256sum <"$f" | cut -c1-64)" = "${f##*/}" ] || bad+=" ${f##*/}"
    done
    [ -z "$bad" ] || fail "$1's store holds blocks whose bytes are not their hash:$bad"
    echo "$1: integrity_check ok, $n stored blocks hash to their names"
}

# no_partial_result M NAME TASK SIZE: results/NAME/TASK is absent, or whole: exit_code, stdout,
# stderr and out.bin of SIZE bytes.
no_partial_result() {
    local r="$1/results/$2/$3"
    [ -e "$r" ] || return 0
    [ -s "$r/exit_code" ] || fail "$r is there without its exit_code: $(ls -la -- "$r")"
    { [ -e "$r/stdout" ] && [ -e "$r/stderr" ]; } || fail "$r is there without stdout or stderr: $(ls -la -- "$r")"
    assert_eq "$4" "$(stat -c %s -- "$r/out.bin")" "size of $r/out.bin"
}

# The job of these cases: task i writes out.bin, MIB MiB that depend only on i (the test makes the
# same bytes itself), after a pause that lets the test fill the disk while it runs.
big_output_job() { # M NAME MIB DISK_MIB PAUSE_S
    publish_job "$1" "$2" "sleep $5; i=0; while [ \$i -lt $(($3 * 1024)) ]; do printf '%1024s' \"task \$PREON_TASK block \$i\"; i=\$((i + 1)); done > out.bin; echo wrote" \
        "tasks = 1" "disk = ${4}M"
}
expected_output() { # MIB TASK FILE
    local i=0
    while [ "$i" -lt $(($1 * 1024)) ]; do printf '%1024s' "task $2 block $i"; i=$((i + 1)); done >"$3"
}

# Receiving blocks: B reads A's 12 MiB input with 3 MiB left on its disk. The read gets every byte
# (verified, from memory); the blocks that do not fit are not stored, and B says so; once there is
# room, what B reads is stored again.
t_full_while_receiving_blocks() {
    start_peer A --port 0 --slots 0
    local a b src st nblocks
    a=$(mnt A)
    src=$(src_dir big)
    make_job "$src" 'true' 'disk = 1M'
    head -c $((12 << 20)) /dev/urandom >"$src/input.bin"
    cp -r -- "$src" "$a/jobs/.big"
    mv -- "$a/jobs/.big" "$a/jobs/big"
    small_data B 40
    start_peer B --port 0 --slots 0 --peer "$(peer_field "$a" http)"
    b=$(mnt B)
    wait_listed "$b" big 20
    fill B 3072
    cmp -- "$src/input.bin" "$b/jobs/big/input.bin" || fail "B read bytes that differ from A's input"
    wait_log B "fetch: cannot store a verified block: No space left on device" 10
    [ "$(peer_field "$b" blocks-not-stored)" -gt 0 ] || fail "B's peer file counts no block it could not store"
    assert_eq "No space left on device" "$(peer_field "$b" block-store-error)" "B's block-store-error"
    nblocks=$(peer_field "$b" blocks)
    echo "B: $nblocks blocks stored, $(peer_field "$b" blocks-not-stored) not, of 48"
    [ "$nblocks" -lt 48 ] || fail "B stored every block of a read that did not fit its disk"
    intact B
    # Room again: B's next reads are stored (a second input of the same size, so that no page
    # cache stands in for the reads), and the first file still reads right.
    unfill B
    head -c $((12 << 20)) /dev/urandom >"$src/input2.bin"
    rm -f -- "$src/input.bin"
    cp -r -- "$src" "$a/jobs/.big2"
    mv -- "$a/jobs/.big2" "$a/jobs/big2"
    wait_listed "$b" big2 20
    cmp -- "$src/input2.bin" "$b/jobs/big2/input2.bin" || fail "B read bytes that differ from A's second input"
    wait_until 10 '[ "$(peer_field "$b" blocks)" -ge $((nblocks + 48)) ]' "B stores the blocks of its reads again"
    assert_eq 0 "$(peer_field "$b" blocks-fetched-again)" "blocks B fetched twice"
    stop_peer B
    intact B
    [ -z "$(ls -A -- "${PEER_DATA[B]}/store/tmp")" ] || fail "B's store/tmp keeps files: $(ls -A -- "${PEER_DATA[B]}/store/tmp")"
    stop_peer A
}

# Collecting outputs here: the disk fills while a task of A's own job runs; its 20 MiB out.bin
# cannot be moved into results/. The task is not failed: A says why, shows no result, and runs it
# again once there is room.
t_full_while_collecting_a_task_here() {
    small_data A 72
    start_peer A --slots 1
    local a st
    a=$(mnt A)
    big_output_job "$a" j 20 24 3
    wait_status "$a" j running 1 20
    fill A 4096
    wait_log A "job j task 0: its result could not be kept here \(collecting out.bin: No space left on device\)" 30
    no_partial_result "$a" j 0 $((20 << 20))
    [ ! -e "$a/results/j/0" ] || fail "results/j/0 appeared for a task whose result could not be kept"
    st=$(timeout 10 cat -- "$a/status/j")
    assert_eq running "$(field state <<<"$st")" "state while the disk is full"
    assert_eq 0 "$(field failed <<<"$st")" "failed tasks while the disk is full"
    assert_match "$(field disk-error <<<"$st")" "collecting out.bin: No space left on device" "status/j disk-error"
    # and why it waits: the job's disk is not free here (said once the pause after the error is over)
    wait_until 15 '[[ "$(status_field "$a" j why-waiting)" == *"bytes of disk"* ]]' "status/j says it waits for disk"
    [ "$(peer_field "$a" disk-errors)" -ge 1 ] || fail "A's peer file counts no disk error"
    assert_match "$(peer_field "$a" disk-error)" "No space left on device" "A's disk-error"
    intact A
    unfill A
    st=$(wait_job "$a" j 60)
    assert_eq "done" "$(field state <<<"$st")" "state once there is room"
    expected_output 20 0 "$T_CASE/want0"
    cmp -- "$T_CASE/want0" "$a/results/j/0/out.bin" || fail "out.bin differs from the task's own bytes"
    assert_eq "" "$(field disk-error <<<"$st")" "status/j disk-error once the result is in"
    # (the task directories' btrfs, if the full disk made it read-only, was made anew by itself)
    assert_eq "" "$(peer_field "$a" task-dirs-error)" "A's task-dirs-error once the job is done"
    if grep -q "BTRFS.*forced readonly\|the task directories' filesystem failed" "${PEER_LOG[A]}"; then
        assert_match "$(cat -- "${PEER_LOG[A]}")" "filesystem, failed under a full disk, is made anew" "A's log"
    fi
    stop_peer A
    intact A
}

# Collecting outputs on a volunteer: B's disk fills while it runs A's task. B gives the task back
# (never a partial result to A), says why, and takes it again once there is room.
t_full_on_a_volunteer_while_collecting() {
    start_peer A --port 0 --slots 0
    local a b st
    a=$(mnt A)
    small_data B 72
    start_peer B --port 0 --slots 1 --peer "$(peer_field "$a" http)"
    b=$(mnt B)
    big_output_job "$a" v 20 24 3
    wait_status "$a" v running 1 20
    fill B 4096
    wait_log B "job v task 0: its result could not be kept here \(collecting out.bin: No space left on device\)" 30
    wait_log A "job v: task 0 released by" 10
    no_partial_result "$a" v 0 $((20 << 20))
    st=$(timeout 10 cat -- "$a/status/v")
    assert_eq 0 "$(field failed <<<"$st")" "failed tasks on A while B's disk is full"
    [ "$(peer_field "$b" disk-errors)" -ge 1 ] || fail "B's peer file counts no disk error"
    assert_match "$(peer_field "$b" disk-error)" "No space left on device|Read-only file system" "B's disk-error"
    intact B
    unfill B
    st=$(wait_job "$a" v 60)
    assert_eq "done" "$(field state <<<"$st")" "state once B has room"
    assert_eq "" "$(peer_field "$b" task-dirs-error)" "B's task-dirs-error once the job is done"
    expected_output 20 0 "$T_CASE/want0"
    cmp -- "$T_CASE/want0" "$a/results/v/0/out.bin" || fail "out.bin differs from the task's own bytes"
    stop_peer B
    intact B
    stop_peer A
    intact A
}

# Collecting a volunteer's result on the submitter: A's disk fills while B runs its task; B's 20 MiB
# result cannot be stored at A. No worker is blamed, B keeps the result and reports it again, and
# A takes it once there is room (without a second run).
t_full_on_the_submitter_taking_a_result() {
    small_data A 72
    start_peer A --port 0 --slots 0
    local a b st
    a=$(mnt A)
    start_peer B --port 0 --slots 1 --peer "$(peer_field "$a" http)"
    b=$(mnt B)
    big_output_job "$a" s 20 24 3
    wait_status "$a" s running 1 20
    fill A 4096
    wait_log A "job s task 0: the result of .* could not be kept here: .*No space left on device" 40
    no_partial_result "$a" s 0 $((20 << 20))
    st=$(timeout 10 cat -- "$a/status/s")
    assert_eq 0 "$(field failed <<<"$st")" "failed tasks while A's disk is full"
    assert_match "$(field disk-error <<<"$st")" "No space left on device" "status/s disk-error"
    intact A
    unfill A
    st=$(wait_job "$a" s 90)
    assert_eq "done" "$(field state <<<"$st")" "state once A has room"
    expected_output 20 0 "$T_CASE/want0"
    cmp -- "$T_CASE/want0" "$a/results/s/0/out.bin" || fail "out.bin differs from the task's own bytes"
    assert_eq 1 "$(grep -c "job s task 0 done here" "${PEER_LOG[B]}")" "runs of task 0 on B (its result was kept, not run again)"
    stop_peer B
    stop_peer A
    intact A
}

# Publishing: the job's files are copied in, then the disk fills to the last byte before the job is
# published: its record (a manifest of 2000 files) does not fit. The job waits in `publishing`,
# the peer says its records wait for room, nothing is lost; once there is room it is published and
# runs.
t_full_while_publishing() {
    small_data A 48
    start_peer A --slots 1
    local a src st i
    a=$(mnt A)
    src=$(src_dir many)
    make_job "$src" 'ls data | wc -l' 'disk = 16M'
    mkdir "$src/data"
    for ((i = 0; i < 2000; i++)); do printf '%s\n' "$i" >"$src/data/file-with-a-long-name-$i.txt"; done
    cp -r -- "$src" "$a/jobs/.many"
    fill A 0
    mv -- "$a/jobs/.many" "$a/jobs/many"
    wait_log A "db .*: the disk is full: the records wait" 20
    st=$(timeout 10 cat -- "$a/status/many")
    assert_eq publishing "$(field state <<<"$st")" "state while its record waits for room"
    assert_match "$(peer_field "$a" db-error)" "the disk is full" "A's db-error"
    unfill A
    st=$(wait_job "$a" many 60)
    assert_eq "done" "$(field state <<<"$st")" "state once there is room"
    assert_eq 2000 "$(cat -- "$a/results/many/0/stdout")" "the task's count of the job's files"
    assert_eq "" "$(peer_field "$a" db-error)" "A's db-error once the records are in"
    # the record is whole: a restart finds the job, done, with its 2000 files
    stop_peer A
    intact A
    start_peer A --slots 1
    st=$(wait_job "$a" many 30)
    assert_eq "done" "$(field state <<<"$st")" "state after a restart"
    assert_eq 2002 "$(find "$a/jobs/many" -type f | wc -l)" "files of the job after a restart"
    stop_peer A
}

run_tests "$@"
