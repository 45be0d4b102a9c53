#!/usr/bin/env bash
# Parameter sweeps and failures: a 64-task job on 2 slots runs every task once with its own index,
# never more than 2 at a time, and fills results/<job>/<i>/; a failing task keeps its exit code,
# stdout and stderr, fails the job, and `preon wait` tells failure (1) from success (0).
# shellcheck disable=SC2016 # job scripts are single-quoted on purpose: they expand in the task
. "$(dirname -- "$0")/lib.sh"

t_sweep_64_tasks_on_2_slots() {
    start_peer A --slots 2
    local m src st state running max=0 end i
    m=$(mnt A)
    assert_eq 2 "$(field slots <"$m/peer")" "slots in the peer file"
    src=$(src_dir sweep)
    # Each task lasts long enough (0.2 s) that 2 slots are seen busy at once.
    make_job "$src" 'sleep 0.2
echo "task $PREON_TASK of $PREON_TASKS" > out.txt' "tasks = 64"
    cp -r -- "$src" "$m/jobs/sweep"
    # Watch the running count while the sweep runs (a bounded poll: it is a state, not an event).
    end=$((SECONDS + 180))
    while [ "$SECONDS" -le "$end" ]; do
        st=$(cat -- "$m/status/sweep" 2>/dev/null || true)
        state=$(field state <<<"$st")
        running=$(field running <<<"$st")
        if [ -n "$running" ] && [ "$running" -gt "$max" ]; then max=$running; fi
        case "$state" in done | failed | cancelled | rejected) break ;; esac
        sleep 0.05
    done
    st=$(wait_job "$m" sweep 180)
    assert_eq "done" "$(field state <<<"$st")" state
    assert_eq 64 "$(field tasks <<<"$st")" tasks
    assert_eq 64 "$(field succeeded <<<"$st")" succeeded
    assert_eq 0 "$(field failed <<<"$st")" failed
    assert_eq 0 "$(field waiting <<<"$st")" waiting
    assert_eq 0 "$(field running <<<"$st")" running
    assert_eq 2 "$max" "most tasks seen running at once with --slots 2"
    assert_eq "$(seq 0 63)" "$(ls -- "$m/results/sweep" | sort -n)" "task folders"
    for i in $(seq 0 63); do
        assert_file_eq "$m/results/sweep/$i/out.txt" "task $i of 64"
        assert_file_eq "$m/results/sweep/$i/exit_code" 0
    done
}

t_failing_task_fails_the_job() {
    start_peer A
    local m bad good st rc
    m=$(mnt A)
    bad=$(src_dir bad)
    make_job "$bad" 'echo "about to fail"
echo "oops: bad input" >&2
exit 3'
    good=$(src_dir good)
    make_job "$good" 'echo fine'
    cp -r -- "$bad" "$m/jobs/bad"
    cp -r -- "$good" "$m/jobs/good"

    st=$(wait_job "$m" bad)
    assert_eq failed "$(field state <<<"$st")" "state of bad"
    assert_eq 1 "$(field failed <<<"$st")" "failed tasks of bad"
    assert_eq 0 "$(field succeeded <<<"$st")" "succeeded tasks of bad"
    [ -n "$(field reason <<<"$st")" ] || fail "a failed job has no reason line:"$'\n'"$st"
    assert_match "$st" '^failed-task: 0 ' "status of bad"
    assert_file_eq "$m/results/bad/0/exit_code" 3
    assert_file_eq "$m/results/bad/0/stdout" "about to fail"
    assert_contains "$(cat -- "$m/results/bad/0/stderr")" "oops: bad input" "stderr of bad"
    rc=$(preon_wait_rc "$m" bad)
    assert_eq 1 "$rc" "preon wait on a failed job"

    st=$(wait_job "$m" good)
    assert_eq "done" "$(field state <<<"$st")" "state of good"
    rc=$(preon_wait_rc "$m" good)
    assert_eq 0 "$rc" "preon wait on a good job"
}

t_one_failing_task_among_many() {
    start_peer A --slots 2
    local m src st i
    m=$(mnt A)
    src=$(src_dir some)
    make_job "$src" 'echo "task $PREON_TASK" > out.txt
[ "$PREON_TASK" != 2 ] || { echo "task 2 refuses" >&2; exit 7; }' "tasks = 5"
    cp -r -- "$src" "$m/jobs/some"
    st=$(wait_job "$m" some)
    assert_eq failed "$(field state <<<"$st")" state
    assert_eq 4 "$(field succeeded <<<"$st")" succeeded
    assert_eq 1 "$(field failed <<<"$st")" failed
    assert_match "$st" '^failed-task: 2 ' status
    assert_file_eq "$m/results/some/2/exit_code" 7
    assert_contains "$(cat -- "$m/results/some/2/stderr")" "task 2 refuses" "stderr of task 2"
    for i in 0 1 3 4; do
        assert_file_eq "$m/results/some/$i/exit_code" 0
        assert_file_eq "$m/results/some/$i/out.txt" "task $i"
    done
    assert_eq 1 "$(preon_wait_rc "$m" some)" "preon wait"
}

run_tests "$@"
