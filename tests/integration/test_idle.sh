#!/usr/bin/env bash
# --when idle (docs/usage.md, "Only when idle"): a volunteer runs tasks only while its machine is
# idle. The owner is faked with a FIFO as the peer's only input device (--input-dir): a byte written
# to it is a keystroke. When the owner returns, running tasks are frozen at once (their cgroup's
# freezer) and their time-out stops; when the owner leaves, they go on; when the owner stays past
# --idle-grace, they are given back and run on another peer. `peer` and status/<job> say why no
# task runs.
. "$(dirname -- "$0")/lib.sh"

UID_BASE=64700

# frozen_tasks PID: how many task cgroups of the peer PID are frozen (cgroup v1 freezer or v2).
frozen_tasks() {
    local n=0 f
    for f in /sys/fs/cgroup/freezer/preon-"$1"/*/freezer.state /sys/fs/cgroup/preon-"$1"/*/cgroup.freeze \
        /sys/fs/cgroup/*/preon-"$1"/*/cgroup.freeze; do
        [ -e "$f" ] || continue
        case "$(cat -- "$f" 2>/dev/null)" in FROZEN | 1) n=$((n + 1)) ;; esac
    done
    echo "$n"
}

# start_idle_peer NAME: a one-slot peer that runs tasks only when idle (after 1 s without input,
# never given back within a test); its fake input dir is left in IDLE_IN (not a $(...): start_peer
# must run in this shell).
start_idle_peer() {
    IDLE_IN=$(fake_input "$1")
    start_peer "$1" --slots 1 --uid-base "$UID_BASE" --when idle --idle-after 1s --idle-grace 60s --idle-cpu 0 \
        --input-dir "$IDLE_IN"
}

t_the_owner_returning_suspends_tasks_and_leaving_resumes_them() {
    local in m st
    start_idle_peer A
    in=$IDLE_IN
    m=$(mnt A)
    assert_eq idle "$(peer_field "$m" when)" "peer when:"
    assert_eq 1 "$(peer_field "$m" input-devices)" "input devices watched"
    owner_stays "$in"
    # The owner is at the machine: the job waits, and says why.
    publish_job "$m" slow 'sleep 2; echo ok > out.txt' "tasks = 1" "timeout = 3s"
    wait_status "$m" slow state running
    assert_eq 0 "$(status_field "$m" slow running)" "running while the owner types"
    assert_contains "$(status_field "$m" slow why-waiting)" "only when idle" "why-waiting"
    assert_eq no "$(peer_field "$m" idle)" "peer idle:"
    assert_contains "$(peer_field "$m" not-running-tasks)" "keyboard or mouse input" "peer not-running-tasks:"
    # The owner leaves: a second later the task starts.
    owner_leaves
    wait_status "$m" slow running 1 10
    # The owner returns: the task is frozen at once, and stays so while the owner is there, longer
    # than its whole time-out (3 s; it needs 2): the time-out must not run while it is frozen.
    owner_stays "$in"
    wait_until 5 "[ \"\$(frozen_tasks $(peer_pid A))\" = 1 ]" "the task's cgroup is frozen"
    assert_eq 1 "$(peer_field "$m" tasks-suspended)" "tasks-suspended"
    sleep 4
    assert_eq 1 "$(frozen_tasks "$(peer_pid A)")" "still frozen while the owner stays"
    assert_eq 1 "$(status_field "$m" slow running)" "running (suspended) on A"
    owner_leaves
    st=$(wait_job "$m" slow 30)
    assert_eq done "$(field state <<<"$st")" "state after the owner left"
    assert_file_eq "$m/results/slow/0/out.txt" ok
    assert_eq 0 "$(peer_field "$m" tasks-given-back)" "nothing given back within the grace"
    grep -q "tasks suspended" "${PEER_LOG[A]}" || fail "A's log does not say it suspended the task"
}

t_an_owner_who_stays_gets_the_tasks_moved_to_another_peer() {
    local a b url in st
    start_peer A --port 0 --slots 0
    a=$(mnt A)
    url=$(peer_field "$a" http)
    in=$(fake_input B)
    start_peer B --port 0 --slots 1 --peer "$url" --uid-base "$UID_BASE" --when idle --idle-after 1s \
        --idle-grace 2s --idle-cpu 0 --input-dir "$in"
    b=$(mnt B)
    publish_job "$a" long 'sleep 3; echo ok > out.txt' "tasks = 1"
    wait_status "$a" long running 1 30 # B is idle after a second, and leases it
    wait_log B "leased task 0" 10
    owner_stays "$in"
    # Suspended at once; given back once the owner has stayed 2 s; the task waits at A again.
    wait_until 15 "[ \"\$(peer_field '$b' tasks-given-back)\" = 1 ]" "B gives the task back"
    wait_status "$a" long waiting 1 10
    assert_eq 0 "$(peer_field "$b" running-tasks)" "B runs nothing while its owner is there"
    grep -q "given back" "${PEER_LOG[B]}" || fail "B's log does not say it gave the task back"
    # Another volunteer runs it.
    start_peer C --port 0 --slots 1 --peer "$url" --uid-base $((UID_BASE + 10))
    st=$(wait_job "$a" long 60)
    assert_eq done "$(field state <<<"$st")" "state on A"
    assert_file_eq "$a/results/long/0/out.txt" ok
    grep -q "leased task 0" "${PEER_LOG[C]}" || fail "C did not run the task"
    owner_leaves
}

t_a_peer_killed_while_its_task_is_frozen_leaves_nothing_behind() {
    local in m old
    start_idle_peer A
    in=$IDLE_IN
    m=$(mnt A)
    publish_job "$m" frozen 'sleep 60' "tasks = 1"
    wait_status "$m" frozen running 1 10
    wait_until 10 "pgrep -u $UID_BASE -x sleep >/dev/null" "the task's sleep runs"
    owner_stays "$in"
    old=$(peer_pid A)
    wait_until 5 "[ \"\$(frozen_tasks $old)\" = 1 ]" "the task's cgroup is frozen"
    owner_leaves
    # A frozen process takes no SIGKILL (--die-with-parent's included) until it is thawed: the next
    # peer on this machine thaws and ends what a dead one left.
    kill9_peer A
    start_peer A --slots 0 --uid-base "$UID_BASE"
    wait_until 10 "! pgrep -u $UID_BASE >/dev/null" "the dead peer's frozen task is gone"
    wait_until 10 "! ls -d /sys/fs/cgroup/*/preon-$old >/dev/null 2>&1" "the dead peer's cgroups are removed"
}

t_other_processes_busy_on_the_cpu_keep_tasks_waiting() {
    local in m hog st
    in=$(fake_input A)
    # No keystroke at all: only the CPU rule decides. A hog the test starts takes one of the
    # machine's CPUs (50% of 2, over --idle-cpu 25).
    sh -c 'while :; do :; done' &
    hog=$!
    on_cleanup "kill $hog"
    start_peer A --slots 1 --uid-base "$UID_BASE" --when idle --idle-after 1s --idle-cpu 25 --input-dir "$in"
    m=$(mnt A)
    wait_until 20 "peer_field '$m' not-running-tasks | grep -q 'other processes use'" "A says the CPU is busy"
    publish_job "$m" cpu 'echo ok > out.txt' "tasks = 1"
    wait_status "$m" cpu state running
    assert_eq 0 "$(status_field "$m" cpu running)" "running while another process is busy"
    kill "$hog"
    wait "$hog" 2>/dev/null || true
    st=$(wait_job "$m" cpu 60)
    assert_eq done "$(field state <<<"$st")" "state once the hog is gone"
    assert_file_eq "$m/results/cpu/0/out.txt" ok
}

t_an_input_entry_that_cannot_be_watched_is_skipped() {
    local in m
    in=$(fake_input A)
    echo "not a device" >"$in/event1" # a regular file: poll cannot watch it
    start_peer A --slots 1 --uid-base "$UID_BASE" --when idle --idle-after 1s --idle-cpu 0 --input-dir "$in"
    m=$(mnt A)
    assert_eq 1 "$(peer_field "$m" input-devices)" "input devices watched (the FIFO only)"
    grep -q "event1 cannot be watched" "${PEER_LOG[A]}" || fail "the log does not say event1 is skipped"
    publish_job "$m" skip 'echo ok > out.txt' "tasks = 1"
    assert_eq done "$(field state <<<"$(wait_job "$m" skip 30)")" "a task still runs"
}

t_bad_when_values_are_refused() {
    local d="$T_CASE/m"
    mkdir -p "$d"
    assert_fails_with "bad value for --when: 'sometimes'" "$PREON" mount -f --data "$T_CASE/data" --when sometimes "$d"
    assert_fails_with "bad value for --idle-after: '0'" "$PREON" mount -f --data "$T_CASE/data" --idle-after 0 "$d"
    assert_fails_with "bad value for --idle-cpu: '101'" "$PREON" mount -f --data "$T_CASE/data" --idle-cpu 101 "$d"
}

run_tests "$@"
