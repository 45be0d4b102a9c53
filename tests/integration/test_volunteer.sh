#!/usr/bin/env bash
# Volunteers: a job published on A (which runs nothing itself: --slots 0) runs on B and C, which
# lease its tasks from A, read its inputs lazily through their own mounts, and report back; the
# results appear in A's results/. A volunteer killed mid-task loses its lease and the task runs
# elsewhere.
# shellcheck disable=SC2016 # job scripts are single-quoted on purpose: they expand in the task
. "$(dirname -- "$0")/lib.sh"

t_tasks_run_on_volunteers_and_results_reach_the_submitter() {
    start_peer A --port 0 --slots 0
    local a url src st i
    a=$(mnt A)
    url=$(peer_field "$a" http)
    src=$(src_dir sweep)
    make_job "$src" 'echo "task $PREON_TASK of $PREON_TASKS: $(wc -c < /job/data.bin)" > out.txt; hostname > host.txt' "tasks = 6"
    head -c 1000000 /dev/urandom >"$src/data.bin"
    start_peer B --port 0 --slots 2 --peer "$url" --uid-base 64400
    start_peer C --port 0 --slots 2 --peer "$url" --uid-base 64410
    cp -r -- "$src" "$a/jobs/sweep"
    st=$(wait_job "$a" sweep 90)
    assert_eq done "$(field state <<<"$st")" "state on A"
    assert_eq 6 "$(field succeeded <<<"$st")" succeeded
    for i in 0 1 2 3 4 5; do
        assert_file_eq "$a/results/sweep/$i/out.txt" "task $i of 6: 1000000"
        assert_file_eq "$a/results/sweep/$i/exit_code" 0
    done
    grep -q "leased to" "${PEER_LOG[A]}" || fail "A's log shows no lease"
}

t_killed_volunteer_loses_its_lease() {
    start_peer A --port 0 --slots 0 --lease-ms 1500
    local a url src st
    a=$(mnt A)
    url=$(peer_field "$a" http)
    src=$(src_dir slow)
    make_job "$src" 'sleep 3; echo ok > out.txt' "tasks = 1"
    start_peer B --port 0 --slots 1 --peer "$url" --uid-base 64420
    cp -r -- "$src" "$a/jobs/slow"
    wait_status "$a" slow running 1 30 # B holds the lease and runs it
    kill9_peer B                        # B vanishes mid-task: it stops renewing
    start_peer C --port 0 --slots 1 --peer "$url" --uid-base 64430
    st=$(wait_job "$a" slow 90)
    assert_eq done "$(field state <<<"$st")" "state on A"
    assert_file_eq "$a/results/slow/0/out.txt" ok
    grep -q "lease of .* expired" "${PEER_LOG[A]}" || fail "A's log shows no expired lease"
}

# start_tracker PORT: a stand-alone `preon tracker` on 127.0.0.1 (PORT 0: any), 1 s interval; sets
# TRACKER_PID and TRACKER_PORT; stopped by PID at cleanup.
start_tracker() {
    local fifo=$T_CASE/tracker.fifo line
    rm -f "$fifo"
    mkfifo "$fifo"
    "$PREON" tracker --listen 127.0.0.1 --port "$1" --interval 1 --ready-fd 3 --log "$T_CASE/tracker.log" \
        3>"$fifo" </dev/null >/dev/null 2>&1 &
    TRACKER_PID=$!
    on_cleanup "kill $TRACKER_PID; wait $TRACKER_PID"
    read -r -t 20 line <"$fifo" || fail "the tracker did not start"
    TRACKER_PORT=${line##*:}
}

t_tracker_restart_during_a_job() {
    start_tracker 0
    local t="http://127.0.0.1:$TRACKER_PORT/announce" a src st
    start_peer A --port 0 --slots 0 --tracker "$t" --pool r
    start_peer B --port 0 --slots 1 --tracker "$t" --pool r --uid-base 64440
    a=$(mnt A)
    src=$(src_dir r)
    make_job "$src" 'sleep 1; echo $PREON_TASK > out.txt' "tasks = 4"
    cp -r -- "$src" "$a/jobs/r"
    wait_status "$a" r succeeded 1 60
    kill -KILL "$TRACKER_PID"
    wait "$TRACKER_PID" 2>/dev/null || true
    start_tracker "$TRACKER_PORT" # the same URL: every peer's next announce finds it again
    start_peer C --port 0 --slots 1 --tracker "$t" --pool r --uid-base 64450
    st=$(wait_job "$a" r 90)
    assert_eq done "$(field state <<<"$st")" "state on A"
    assert_eq 4 "$(field succeeded <<<"$st")" succeeded
    assert_file_eq "$a/results/r/3/out.txt" 3
}

t_pool_on_opentracker() {
    # The same pool with Debian's opentracker as its tracker (whitelist mode: the pool's hash).
    local ih a src st
    ih=$(printf 'preon-pool:%s' ot | sha256sum | cut -c1-40)
    start_opentracker "$ih"
    local t="http://127.0.0.1:$OTPORT/announce"
    start_peer A --port 0 --slots 0 --tracker "$t" --pool ot
    start_peer B --port 0 --slots 2 --tracker "$t" --pool ot --uid-base 64460
    a=$(mnt A)
    src=$(src_dir ot)
    make_job "$src" 'echo $PREON_TASK > out.txt' "tasks = 3"
    cp -r -- "$src" "$a/jobs/ot"
    st=$(wait_job "$a" ot 60)
    assert_eq done "$(field state <<<"$st")" "state on A"
    assert_file_eq "$a/results/ot/2/out.txt" 2
    grep -q "leased to" "${PEER_LOG[A]}" || fail "no task was leased to B"
}

run_tests "$@"
