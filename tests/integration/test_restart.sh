#!/usr/bin/env bash
# Crash safety of one peer: after kill -9 and a restart on the same data directory and mount point,
# published jobs, results and status are intact and finished tasks do not run again; a task that
# was running at the kill runs again and finishes; the dead mount a killed peer leaves behind is
# cleared by the next start itself. And a submitter killed while it is the only holder of its job's
# inputs, its volunteer left running: the job resumes once it is back, and what the volunteer
# finished meanwhile is kept there and taken without a second run, even when the volunteer is
# killed too and started again before the submitter is back (its kept results are on its disk).
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

# The submitter A is killed -9 while it is the only holder of its job's inputs (issue 11; docs/
# reliability.md, "Submitter killed while the only holder"), its volunteer B left running, with two
# tasks that have read their input. They end while A is down: B keeps their results and reports
# them again (backing off) until A, back on the same address, has them; the two tasks not started
# yet run once A is back. Every result is right, and no task runs twice on B.
t_submitter_killed_while_the_only_holder() {
    start_peer A --port 0 --slots 0
    local a b ua port src st want i
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    port=${ua##*:}
    start_peer B --port 0 --slots 2 --peer "$ua"
    b=$(mnt B)
    src=$(src_dir j)
    make_job "$src" 'sha256sum input.bin > sum; sleep 3; echo "done $PREON_TASK"' "tasks = 4"
    head -c 3000000 /dev/urandom >"$src/input.bin"
    want=$(sha256sum <"$src/input.bin" | cut -c1-64)
    cp -r -- "$src" "$a/jobs/.j"
    mv -- "$a/jobs/.j" "$a/jobs/j"
    # B's two tasks have read the whole input (3 MB: 12 blocks), A holds it alone
    wait_until 30 '[ "$(peer_field "$b" blocks-fetched)" -ge 12 ] && [ "$(peer_field "$b" running-tasks)" = 2 ]' \
        "B runs two tasks and has fetched their input"
    kill9_peer A
    wait_until 20 '[ "$(grep -cE "job j task [0-9] done here" "${PEER_LOG[B]}")" -ge 2 ]' \
        "B's two tasks end while A is down"
    wait_log B "job j task [0-9]: the submitter did not take the report .*: the result is kept here and reported again" 10
    assert_eq 0 "$(peer_field "$b" running-tasks)" "tasks running on B while A is down"
    start_peer A --port "$port" --slots 0
    st=$(wait_job "$a" j 90)
    assert_eq "done" "$(field state <<<"$st")" "state once A is back"
    assert_eq 4 "$(field succeeded <<<"$st")" "succeeded once A is back"
    assert_eq 0 "$(field failed <<<"$st")" "failed once A is back"
    for i in 0 1 2 3; do
        assert_eq "$want  input.bin" "$(cat -- "$a/results/j/$i/sum")" "task $i's sum of the input"
        assert_eq "done $i" "$(cat -- "$a/results/j/$i/stdout")" "task $i's stdout"
        assert_eq 1 "$(grep -cE "job j task $i done here" "${PEER_LOG[B]}")" "runs of task $i on B"
    done
    # A took the two kept results as they were reported again (adopted, or leased again and
    # answered with the kept result): said in A's or B's log
    grep -qE "job j task [0-9]: a result from .* which held no lease on it here|job j: task [0-9] leased again from .*: its result is here" \
        "${PEER_LOG[A]}" "${PEER_LOG[B]}" || fail "neither log says a kept result was taken after the restart"
    stop_peer B
    stop_peer A
}

# The same, and then the volunteer B is killed -9 too while A is down, and started again before A
# (issue 11: "volunteers keep finished results until the submitter has them"). B's kept results are
# in its database, their files in its data directory and their blocks in its store, never evicted
# while kept: B's cache (--cache 1M) is smaller than task 1's result (2 MB), which stays. Once A is
# back and lists the job again, B reports all three: task 0's inline, task 1's fetched from B's
# store, and task 2's (900 bytes: small enough for a bundle, too long for the report's URL; such a
# kept report was once dropped at the restart as unreadable). Each task ran once.
t_volunteer_killed_too_keeps_its_results() {
    start_peer A --port 0 --slots 0
    local a b ua port ub bport src st want big mid off i
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    port=${ua##*:}
    start_peer B --port 0 --slots 3 --peer "$ua" --cache 1M
    b=$(mnt B)
    ub=$(peer_field "$b" http)
    bport=${ub##*:}
    src=$(src_dir v)
    make_job "$src" 'sha256sum input.bin > sum
[ "$PREON_TASK" = 1 ] && head -c 2000000 input.bin > big
[ "$PREON_TASK" = 2 ] && head -c 900 input.bin > mid
sleep 3; echo "done $PREON_TASK"' "tasks = 3"
    head -c 3000000 /dev/urandom >"$src/input.bin"
    want=$(sha256sum <"$src/input.bin" | cut -c1-64)
    big=$(head -c 2000000 "$src/input.bin" | sha256sum | cut -c1-64)
    mid=$(head -c 900 "$src/input.bin" | sha256sum | cut -c1-64)
    cp -r -- "$src" "$a/jobs/.v"
    mv -- "$a/jobs/.v" "$a/jobs/v"
    wait_until 30 '[ "$(peer_field "$b" blocks-fetched)" -ge 12 ] && [ "$(peer_field "$b" running-tasks)" = 3 ]' \
        "B runs the three tasks and has fetched their input"
    kill9_peer A
    wait_until 20 '[ "$(grep -cE "job v task [0-9] done here" "${PEER_LOG[B]}")" -ge 3 ]' \
        "B's three tasks end while A is down"
    wait_log B "job v task [0-9]: the submitter did not take the report" 10
    # the kept results recorded (B's writer thread commits them off its loop)
    wait_until 10 '[ "$(sqlite3 "${PEER_DATA[B]}/preon.db" "SELECT count(*) FROM outbox" 2>/dev/null)" = 3 ]' \
        "B's database holds its three kept results"
    kill9_peer B
    off=$(stat -c %s -- "${PEER_LOG[B]}")
    start_peer B --port "$bport" --slots 3 --peer "$ua" --cache 1M
    wait_until 10 'tail -c +"$((off + 1))" -- "${PEER_LOG[B]}" | grep -qE "3 results of other peers. jobs kept from before the restart"' \
        "B says it kept three results across its restart"
    # Every block in B's store is past the cache's grace (5 s) by 2 s more (ten of its checks): the
    # input has gone from B's cache, task 1's result has not (kept: pinned), the cache is over quota.
    wait_until 30 '[ -z "$(find "${PEER_DATA[B]}/store" -type f \( -mmin -0.12 -o -amin -0.12 \) | head -n 1)" ]' \
        "every block in B's store unused for 7 s"
    local held
    held=$(peer_field "$b" cache-bytes)
    [ "$held" -ge 2000000 ] || fail "B's cache holds $held bytes: the kept result was evicted"
    [ "$held" -lt 3000000 ] || fail "B's cache holds $held bytes: the input was not evicted (--cache 1M)"
    start_peer A --port "$port" --slots 0
    st=$(wait_job "$a" v 90)
    assert_eq "done" "$(field state <<<"$st")" "state once A is back"
    assert_eq 3 "$(field succeeded <<<"$st")" "succeeded once A is back"
    for i in 0 1 2; do
        assert_eq "$want  input.bin" "$(cat -- "$a/results/v/$i/sum")" "task $i's sum of the input"
        assert_eq "done $i" "$(cat -- "$a/results/v/$i/stdout")" "task $i's stdout"
        assert_eq 1 "$(grep -cE "job v task $i done here" "${PEER_LOG[B]}")" "runs of task $i on B, both lives"
    done
    assert_eq "$big" "$(sha256sum <"$a/results/v/1/big" | cut -c1-64)" "task 1's 2 MB result"
    assert_eq "$mid" "$(sha256sum <"$a/results/v/2/mid" | cut -c1-64)" "task 2's 900-byte result"
    # B drops what it kept once A lists the results: the rows and the files go
    wait_until 20 '[ ! -e "${PEER_DATA[B]}/results/$(field id <<<"$st")/1" ]' "B drops its copy once A has it"
    stop_peer B
    stop_peer A
    assert_eq 0 "$(sqlite3 "${PEER_DATA[B]}/preon.db" "SELECT count(*) FROM outbox")" "kept results in B's database"
}

# The same, killed before the volunteer read anything: B's two tasks read the input while A is down
# and get EIO (--read-deadline-ms 2000). What such a run did proves nothing about the task: B gives
# it back instead of reporting a failure, and once A is back every task runs and succeeds.
t_a_task_that_could_not_read_its_input_is_given_back() {
    start_peer A --port 0 --slots 0
    local a b ua port src st want i
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    port=${ua##*:}
    start_peer B --port 0 --slots 2 --peer "$ua" --read-deadline-ms 2000
    b=$(mnt B)
    src=$(src_dir k)
    make_job "$src" 'sleep 2; sha256sum input.bin > sum; echo "done $PREON_TASK"' "tasks = 2"
    head -c 3000000 /dev/urandom >"$src/input.bin"
    want=$(sha256sum <"$src/input.bin" | cut -c1-64)
    cp -r -- "$src" "$a/jobs/.k"
    mv -- "$a/jobs/.k" "$a/jobs/k"
    wait_until 30 '[ "$(peer_field "$b" running-tasks)" = 2 ]' "B runs both tasks"
    # (one block: the job's run script; none of the input yet)
    [ "$(peer_field "$b" blocks-fetched)" -le 1 ] || fail "B fetched the input before A was killed"
    kill9_peer A
    wait_until 30 '[ "$(grep -cE "job k task [0-9]: a read of its files failed here while it ran .*given back to its submitter, not reported" "${PEER_LOG[B]}")" = 2 ]' \
        "B gives both tasks back"
    assert_eq 0 "$(grep -cE "job k task [0-9] done here" "${PEER_LOG[B]}")" "tasks B reported while A was down"
    start_peer A --port "$port" --slots 0
    st=$(wait_job "$a" k 90)
    assert_eq "done" "$(field state <<<"$st")" "state once A is back"
    assert_eq 2 "$(field succeeded <<<"$st")" "succeeded once A is back"
    assert_eq 0 "$(field failed <<<"$st")" "failed once A is back"
    for i in 0 1; do
        assert_eq "$want  input.bin" "$(cat -- "$a/results/k/$i/sum")" "task $i's sum of the input"
    done
    stop_peer B
    stop_peer A
}

run_tests "$@"
