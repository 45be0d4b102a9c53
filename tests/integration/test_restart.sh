#!/usr/bin/env bash
# Crash safety of one peer: after kill -9 and a restart on the same data directory and mount point,
# published jobs, results and status are intact and finished tasks do not run again; a task that
# was running at the kill runs again and finishes; the dead mount a killed peer leaves behind is
# cleared by the next start itself.
# shellcheck disable=SC2016 # job scripts are single-quoted on purpose: they expand in the task
. "$(dirname -- "$0")/lib.sh"

UID_BASE=64300

# A 3-task job whose outputs carry a random token, so a re-run would show as a changed result.
make_token_job() {
    make_job "$1" 'od -An -N8 -tx8 /dev/urandom > token.txt
echo "task $PREON_TASK" > out.txt' "tasks = 3"
}

# run_kill_restart KILL9-ARGS...: runs a job to done, kill -9s the peer, restarts it and checks.
run_kill_restart() {
    start_peer A
    local m src st id
    m=$(mnt A)
    src=$(src_dir j)
    make_token_job "$src"
    cp -r -- "$src" "$m/jobs/j"
    st=$(wait_job "$m" j)
    assert_eq "done" "$(field state <<<"$st")" "state before the crash"
    id=$(field id <<<"$st")
    cp -r -- "$m/results/j" "$T_CASE/results-before"

    kill9_peer A "$@"
    if [ "${1:-}" = --keep-mount ]; then
        # What a crash leaves: a mount whose daemon is gone.
        assert_fails_with "Transport endpoint is not connected" stat -- "$m"
    fi
    start_peer A
    assert_eq 1 "$(awk -v m="$m" '$2 == m' /proc/self/mounts | wc -l)" "mounts at $m after restart"

    st=$(wait_job "$m" j 30)
    assert_eq "done" "$(field state <<<"$st")" "state after the restart"
    assert_eq "$id" "$(field id <<<"$st")" "job id after the restart"
    assert_eq 3 "$(field succeeded <<<"$st")" "succeeded after the restart"
    assert_same_tree "$src" "$m/jobs/j"
    assert_same_tree "$T_CASE/results-before" "$m/results/j"
    assert_contains "$(cat -- "$m/status/j")" "state: done" "status/j"
    assert_contains "$("$PREON" status --mount "$m")" j "preon status"
}

t_restart_after_kill9_keeps_everything() {
    run_kill_restart
}

t_restart_clears_the_dead_mount() {
    run_kill_restart --keep-mount
}

t_unfinished_task_runs_again_after_restart() {
    start_peer A --slots 2 --uid-base "$UID_BASE"
    local m src st end
    m=$(mnt A)
    src=$(src_dir k)
    # Task 0 ends at once; task 1 takes 4 s, long enough to be killed half-way.
    make_job "$src" 'if [ "$PREON_TASK" = 1 ]; then sleep 4; fi
od -An -N8 -tx8 /dev/urandom > token.txt' "tasks = 2"
    cp -r -- "$src" "$m/jobs/k"
    wait_status "$m" k succeeded 1 30
    wait_status "$m" k running 1 30
    cp -r -- "$m/results/k/0" "$T_CASE/task0-before"

    kill9_peer A
    # The sandbox dies with its peer (bubblewrap --die-with-parent); allow it a moment.
    end=$((SECONDS + 5))
    while pgrep -u "$UID_BASE,$((UID_BASE + 1))" >/dev/null; do
        [ "$SECONDS" -le "$end" ] || fail "sandbox processes outlived their peer: $(pgrep -a -u "$UID_BASE,$((UID_BASE + 1))")"
        sleep 0.05
    done

    start_peer A --slots 2 --uid-base "$UID_BASE"
    st=$(wait_job "$m" k 60)
    assert_eq "done" "$(field state <<<"$st")" "state after the restart"
    assert_eq 2 "$(field succeeded <<<"$st")" succeeded
    assert_file_eq "$m/results/k/1/exit_code" 0
    [ -s "$m/results/k/1/token.txt" ] || fail "task 1 has no token.txt after the restart"
    # Task 0 finished before the crash: it must not have run again.
    assert_same_tree "$T_CASE/task0-before" "$m/results/k/0"
}

# A copy cut short by a crash never publishes (issue 11, found by test_soak.sh: before, the peer that
# came back published the job with its file cut at the crash once the quiet period passed). A program
# writes data.bin through the mount and holds it open; A is killed; the restarted A rejects the job,
# naming the file; written again whole, the job publishes with the whole file and runs.
t_a_copy_cut_by_a_crash_is_not_published() {
    start_peer A --slots 1 --uid-base "$UID_BASE" --quiet-ms 300
    local m src st reason wfd
    m=$(mnt A)
    src=$(src_dir cut)
    make_job "$src" 'wc -c < data.bin'
    head -c 3000000 /dev/urandom >"$src/data.bin"
    mkdir -- "$m/jobs/cut"
    cp -- "$src/run" "$m/jobs/cut/run"
    exec {wfd}>"$m/jobs/cut/data.bin"
    head -c 1000000 "$src/data.bin" >&"$wfd" # a third written, the file still open: the crash comes
    grep -q data.bin "$(data_dir A)/staging/cut/.preon-writing" || fail "the file being written is not listed"
    kill9_peer A
    exec {wfd}>&-
    start_peer A --slots 1 --uid-base "$UID_BASE" --quiet-ms 300
    st=$(wait_job "$m" cut 30)
    assert_eq rejected "$(field state <<<"$st")" "state of a job whose copy a crash cut short"
    [ -z "$(field id <<<"$st")" ] || fail "a job cut short by a crash was published:"$'\n'"$st"
    reason=$(field reason <<<"$st")
    assert_match "$reason" 'write data.bin: preon stopped while it was open for writing' "reason names the file"
    grep -q "cut: preon stopped while 1 of its files were open for writing" "${PEER_LOG[A]}" ||
        fail "the log does not say why the job waits"
    [ ! -e "$(data_dir A)/staging/cut/.preon-writing" ] || fail "the list of files being written was left"
    # Written again whole: published and run.
    cp -- "$src/data.bin" "$m/jobs/cut/data.bin"
    st=$(wait_job "$m" cut 30)
    assert_eq done "$(field state <<<"$st")" "state once written again"
    cmp -- "$src/data.bin" "$m/jobs/cut/data.bin" || fail "the published data.bin is not the whole file"
    assert_file_eq "$m/results/cut/0/stdout" 3000000
    [ ! -e "$m/jobs/cut/.preon-writing" ] || fail "the list of files being written was published"
}

run_tests "$@"
