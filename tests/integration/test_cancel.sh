#!/usr/bin/env bash
# Cancelling with `rm -r jobs/<name>`: running tasks are killed (no sandbox process survives),
# waiting ones never start, the job ends as cancelled, `preon wait` says 1, and results already
# made stay. A removed job that is over frees its inputs on its submitter and its blocks on the
# peers that fetched them, and stays removed after a restart; its results stay.
# shellcheck disable=SC2016 # job scripts are single-quoted on purpose: they expand in the task
. "$(dirname -- "$0")/lib.sh"

# A uid base of our own, so that pgrep -u sees only this test's sandboxes.
UID_BASE=64200

# sandbox_sleeps: how many `sleep` processes run as the sandbox uids (slots 0..2).
sandbox_sleeps() {
    pgrep -c -x -u "$UID_BASE,$((UID_BASE + 1)),$((UID_BASE + 2))" sleep || true
}

# wait_sandbox_sleeps N SECS: bounded poll until exactly N such processes exist.
wait_sandbox_sleeps() {
    local want=$1 end=$((SECONDS + $2)) got
    while :; do
        got=$(sandbox_sleeps)
        [ "$got" = "$want" ] && return 0
        [ "$SECONDS" -le "$end" ] || fail "expected $want sandboxed sleep processes, found $got: $(pgrep -a -u "$UID_BASE,$((UID_BASE + 1)),$((UID_BASE + 2))" || true)"
        sleep 0.05
    done
}

t_rm_r_cancels_running_tasks() {
    start_peer A --slots 2 --uid-base "$UID_BASE"
    local m src st rc
    m=$(mnt A)
    src=$(src_dir x)
    make_job "$src" 'sleep 60' "tasks = 4"
    cp -r -- "$src" "$m/jobs/x"
    wait_status "$m" x running 2 30
    # The check below is only meaningful if we can see the sandboxes' processes at all.
    wait_sandbox_sleeps 2 10

    rm -r -- "$m/jobs/x"
    st=$(wait_job "$m" x 20)
    assert_eq cancelled "$(field state <<<"$st")" state
    assert_eq 0 "$(field running <<<"$st")" running
    assert_eq 0 "$(field succeeded <<<"$st")" succeeded
    [ ! -e "$m/jobs/x" ] || fail "jobs/x still exists after rm -r"
    assert_not_contains "$(ls -A -- "$m/jobs")" x "ls jobs/"
    rc=$(preon_wait_rc "$m" x)
    assert_eq 1 "$rc" "preon wait on a cancelled job"
    # Killing is asynchronous to the status change: allow a few seconds.
    wait_sandbox_sleeps 0 5
}

t_cancel_keeps_finished_results() {
    # 3 slots for 3 tasks: all start at once, whatever order the scheduler picks.
    start_peer A --slots 3 --uid-base "$UID_BASE"
    local m src st
    m=$(mnt A)
    src=$(src_dir y)
    make_job "$src" 'if [ "$PREON_TASK" = 0 ]; then echo first > out.txt; else sleep 60; fi' "tasks = 3"
    cp -r -- "$src" "$m/jobs/y"
    wait_status "$m" y succeeded 1 30
    wait_status "$m" y running 2 30
    wait_sandbox_sleeps 2 10
    rm -r -- "$m/jobs/y"
    st=$(wait_job "$m" y 20)
    assert_eq cancelled "$(field state <<<"$st")" state
    assert_eq 1 "$(field succeeded <<<"$st")" succeeded
    assert_file_eq "$m/results/y/0/out.txt" first
    assert_file_eq "$m/results/y/0/exit_code" 0
    wait_sandbox_sleeps 0 5
    # The killed tasks leave no result folder: only task 0 finished.
    assert_eq 0 "$(ls -A -- "$m/results/y")" "results of the cancelled job"
}

# A directory the kernel still holds after its job was replaced (a shell cd'd into results/X, then
# rm -r jobs/X and mkdir jobs/X): reading it answers ENOENT, never through the freed job (the
# ASan run of this test is what catches a use after free), and the peer goes on.
t_a_directory_held_after_its_job_is_replaced() {
    start_peer A
    local m src st
    m=$(mnt A)
    src=$(src_dir x)
    make_job "$src" 'echo hi'
    cp -r -- "$src" "$m/jobs/x"
    st=$(wait_job "$m" x)
    assert_eq done "$(field state <<<"$st")" state
    exec 9<"$m/results/x" # held: the kernel keeps its node
    rm -r -- "$m/jobs/x"
    mkdir -- "$m/jobs/x" # a job of the same name replaces the finished one
    if ls -- "/proc/$BASHPID/fd/9/" >"$T_CASE/ls" 2>&1; then
        fail "the replaced job's results/ still lists: $(cat "$T_CASE/ls")"
    fi
    exec 9<&-
    peer_field "$m" slots >/dev/null
    rmdir -- "$m/jobs/x"
}

# The defect this shows: `rm -r` of a finished job used to leave all its inputs in the data
# directory (DATA/inputs/<id>) on its submitter, and its blocks in every other peer's store.
t_removed_job_frees_its_inputs_and_blocks() {
    start_peer A --port 0
    local a b url src st id before
    a=$(mnt A)
    url=$(peer_field "$a" http)
    src=$(src_dir big)
    make_job "$src" 'wc -c < input.bin'
    head -c 6000000 /dev/urandom >"$src/input.bin"
    cp -r -- "$src" "$a/jobs/big"
    st=$(wait_job "$a" big 30)
    assert_eq done "$(field state <<<"$st")" "state on A"
    id=$(field id <<<"$st")
    [ -d "$(data_dir A)/inputs/$id" ] || fail "A has no inputs/$id before the removal"
    start_peer B --port 0 --peer "$url"
    b=$(mnt B)
    wait_listed "$b" big 20
    cmp -- "$src/input.bin" "$b/jobs/big/input.bin" || fail "input.bin differs on B"
    before=$(peer_field "$b" block-bytes)
    [ "$before" -ge 6000000 ] || fail "B's store holds $before bytes after reading the input"

    rm -r -- "$a/jobs/big"
    [ ! -e "$a/jobs/big" ] || fail "jobs/big is still on A"
    wait_until 20 "[ ! -e '$(data_dir A)/inputs/$id' ]" "A's inputs/$id is freed"
    assert_file_eq "$a/results/big/0/stdout" 6000000 # its results stay
    assert_eq done "$(status_field "$a" big state)" "state on A after the removal"
    wait_until 20 "[ ! -e '$b/jobs/big' ]" "the job leaves B's jobs/"
    wait_until 20 "[ \"\$(peer_field '$b' block-bytes)\" -lt 1000000 ]" "B's store frees the job's blocks"

    # A restart keeps it removed: not back in jobs/, its results still there.
    stop_peer A
    start_peer A --port 0
    [ ! -e "$a/jobs/big" ] || fail "jobs/big came back on A after a restart"
    [ ! -e "$(data_dir A)/inputs/$id" ] || fail "inputs/$id came back on A"
    assert_file_eq "$a/results/big/0/stdout" 6000000
    # A new job of the same name replaces it, and the marker goes with the old one.
    cp -r -- "$src" "$a/jobs/big"
    st=$(wait_job "$a" big 30)
    assert_eq done "$(field state <<<"$st")" "state of the new job"
    wait_until 20 "[ ! -e '$(data_dir A)/inputs/$id.removed' ]" "the old job's marker goes with it"
}

t_rm_r_results_of_a_removed_job_forgets_it() {
    start_peer A
    local m src st id
    m=$(mnt A)
    src=$(src_dir keep)
    make_job "$src" 'echo "task $PREON_TASK" > out.txt' "tasks = 2"
    cp -r -- "$src" "$m/jobs/keep"
    st=$(wait_job "$m" keep 30)
    id=$(field id <<<"$st")
    # Results of a job still in jobs/ cannot be removed, and stay whole.
    ! rm -r -- "$m/results/keep" 2>/dev/null || fail "rm -r results/keep of a listed job succeeded"
    assert_file_eq "$m/results/keep/1/out.txt" "task 1"
    assert_file_eq "$m/results/keep/0/out.txt" "task 0"
    # Once the job is removed, rm -r of its results forgets it: files, record, status.
    rm -r -- "$m/jobs/keep"
    rm -r -- "$m/results/keep" || fail "rm -r results/keep of a removed job failed"
    [ ! -e "$m/results/keep" ] || fail "results/keep is still there"
    [ ! -e "$m/status/keep" ] || fail "status/keep is still there"
    wait_until 10 "[ ! -e '$(data_dir A)/results/$id' ]" "DATA/results/<id> is freed"
    wait_until 10 "[ ! -e '$(data_dir A)/inputs/$id.removed' ] && [ ! -e '$(data_dir A)/inputs/$id' ]" \
        "its inputs and marker are freed"
    # ... and for good: a restart does not bring it back.
    stop_peer A
    start_peer A
    [ ! -e "$m/results/keep" ] || fail "results/keep came back after a restart"
    [ ! -e "$m/status/keep" ] || fail "status/keep came back after a restart"
}

run_tests "$@"
