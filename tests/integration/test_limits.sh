#!/usr/bin/env bash
# The sandbox and its limits, seen from inside a task: the time-out kills a task that runs too
# long; the memory limit stops a task that allocates too much (while the same task with room
# succeeds); each abuse of the volunteer's machine (a fork bomb, a memory hog of many processes, a
# full tmpfs, a tree deeper than the fd limit, a task that ignores SIGTERM and leaves children) is
# stopped and recorded, and leaves the machine as it was; what the volunteer gives in all
# (--memory, --cpu) bounds its tasks; a task has no network (not even the host's loopback); it
# cannot write outside its task directory; and it sees the environment the spec promises.
# shellcheck disable=SC2016 # job scripts are single-quoted on purpose: they expand in the task
. "$(dirname -- "$0")/lib.sh"

t_timeout_kills_the_task() {
    start_peer A
    local m src st start elapsed
    m=$(mnt A)
    src=$(src_dir slow)
    make_job "$src" 'sleep 30' "timeout = 1s"
    start=$SECONDS
    cp -r -- "$src" "$m/jobs/slow"
    st=$(wait_job "$m" slow 25)
    elapsed=$((SECONDS - start))
    [ "$elapsed" -lt 20 ] || fail "a 1 s time-out took ${elapsed}s to end the job"
    assert_eq failed "$(field state <<<"$st")" state
    assert_eq 1 "$(field failed <<<"$st")" "failed tasks"
    assert_match "$(grep -E '^(reason|failed-task):' <<<"$st")" 'time' "reason of the failure"
}

t_a_timed_out_task_gets_sigterm_and_a_grace_first() {
    # The convention for long tasks (docs/job-format.md): at the time-out a task gets SIGTERM and
    # EXEC_DEFAULT_GRACE_MS to save its work before the SIGKILL; what it writes then is kept.
    start_peer A
    local m st
    m=$(mnt A)
    # (The handler takes a second: the notice must last, not race the SIGKILL.)
    publish_job "$m" saver 'trap "sleep 1; echo saved > saved.txt; exit 3" TERM; sleep 30 & wait' "timeout = 1s"
    st=$(wait_job "$m" saver 25)
    assert_eq failed "$(field state <<<"$st")" state
    assert_match "$(field stopped-by-limit <<<"$st")" 'time 1' "stopped-by-limit"
    assert_file_eq "$m/results/saver/0/saved.txt" saved
}

t_the_grace_key_sets_the_notice() {
    # `grace` (docs/job-format.md): 1 s cuts a handler that needs 3 s short; 8 s lets one that
    # needs 6 s (past the default 5 s) finish.
    start_peer A
    local m st
    m=$(mnt A)
    publish_job "$m" short 'trap "echo first > first.txt; sleep 3; echo late > late.txt; exit 3" TERM; sleep 30 & wait' \
        "timeout = 1s" "grace = 1s"
    publish_job "$m" long 'trap "sleep 6; echo saved > saved.txt; exit 3" TERM; sleep 30 & wait' \
        "timeout = 1s" "grace = 8s"
    st=$(wait_job "$m" short 25)
    assert_eq failed "$(field state <<<"$st")" "state of short"
    assert_file_eq "$m/results/short/0/first.txt" first
    [ ! -e "$m/results/short/0/late.txt" ] || fail "the task ran past its 1 s grace"
    st=$(wait_job "$m" long 30)
    assert_eq failed "$(field state <<<"$st")" "state of long"
    assert_file_eq "$m/results/long/0/saved.txt" saved
}

t_memory_limit_stops_a_hog() {
    start_peer A
    local m hog roomy st body
    m=$(mnt A)
    # Doubles a string up to 256 MiB: about 400 MB at the peak. POSIX awk (mawk on Debian), since
    # the sandbox has only what the base system has.
    body='awk '\''BEGIN { s = "x"; while (length(s) < 250000000) s = s s; print length(s) }'\'
    hog=$(src_dir hog)
    make_job "$hog" "$body" "memory = 64M"
    roomy=$(src_dir roomy)
    make_job "$roomy" "$body" "memory = 2G"
    cp -r -- "$hog" "$m/jobs/hog"
    cp -r -- "$roomy" "$m/jobs/roomy"

    st=$(wait_job "$m" hog 60)
    assert_eq failed "$(field state <<<"$st")" "state of the 64M job"
    [ "$(cat -- "$m/results/hog/0/exit_code")" != 0 ] || fail "the 64M task exited 0"
    assert_contains "$(field failed-task <<<"$st")" "stopped by the memory limit" "the failure's reason"
    assert_match "$(field stopped-by-limit <<<"$st")" '^memory 1 ' "stopped-by-limit"

    # The control: the same program with room enough succeeds, so the limit is what stopped it.
    st=$(wait_job "$m" roomy 60)
    assert_eq "done" "$(field state <<<"$st")" "state of the 2G job"
    assert_file_eq "$m/results/roomy/0/stdout" 268435456
}

# The cgroup directories of peer PID (one per hierarchy that holds its tasks), one per line.
peer_cgroup_dirs() {
    local pid=$1 line mnt opts ctl path
    while read -r line; do
        # mountinfo: ... mount-point options [optional...] - fstype source super-options
        mnt=$(cut -d' ' -f5 <<<"$line")
        opts=${line##* }
        for ctl in memory pids; do
            if [[ ",$opts," == *",$ctl,"* ]]; then
                path=$(sed -n "s/^[0-9]*:\([^:]*,\)\{0,1\}$ctl\(,[^:]*\)\{0,1\}:\(.*\)$/\3/p" "/proc/$pid/cgroup")
                [ "$path" != / ] || path=
                echo "$mnt$path/preon-$pid"
            fi
        done
    done < <(grep ' - cgroup cgroup ' /proc/self/mountinfo)
    if grep -q '^0::' "/proc/$pid/cgroup" && ! grep -q ' - cgroup cgroup .*memory' /proc/self/mountinfo; then
        path=$(sed -n 's/^0:://p' "/proc/$pid/cgroup")
        mnt=$(grep ' - cgroup2 ' /proc/self/mountinfo | head -n 1 | cut -d' ' -f5)
        [ "$path" != / ] || path=
        echo "$mnt$path/preon-$pid"
    fi
}

# Processes whose real uid is one of the slot uids base..base+n-1.
slot_procs() {
    local base=$1 n=$2
    ps -e -o ruid= | awk -v b="$base" -v n="$n" '$1 >= b && $1 < b + n' | wc -l
}

t_abuse_is_stopped_and_recorded() {
    start_peer A --slots 2
    local m d st pid dir left end
    m=$(mnt A)
    d=$(data_dir A)
    pid=$(peer_pid A)
    [ "$(peer_cgroup_dirs "$pid" | wc -l)" -ge 1 ] || fail "no cgroup of peer $pid found"
    for dir in $(peer_cgroup_dirs "$pid"); do
        [ -d "$dir" ] || fail "the peer's cgroup $dir is missing"
    done
    # Four processes of about 24 MiB each, in 64M: each fits alone, together not. They wait, so
    # only the memory limit can end the task before its time-out.
    make_job "$(src_dir hog)" 'for i in 1 2 3 4; do
    awk '\''BEGIN { s = "x"; while (length(s) < 16000000) s = s s; system("sleep 600") }'\'' &
done
wait' "memory = 64M" "timeout = 120s"
    # Each tmpfs is capped at the memory limit, but both together count against it. A write past
    # the limit fails (ENOMEM) before preon stops the task: `filled` only if both writes succeeded
    # (with `;` the echo sometimes ran before the stop: a flaky test).
    make_job "$(src_dir tmpfill)" 'head -c 60000000 /dev/zero > /tmp/a && head -c 60000000 /dev/zero > /dev/shm/b &&
echo filled' "memory = 64M" "disk = 1G"
    make_job "$(src_dir bomb)" 'b() { b | b & }; b; sleep 1' "processes = 16"
    # A million empty files: each within RLIMIT_FSIZE, all together over disk (the run's quota).
    make_job "$(src_dir files)" 'i=0; while [ $i -lt 1000000 ]; do : > f$i || exit 3; i=$((i + 1)); done; echo all' \
        "disk = 4M"
    make_job "$(src_dir stubborn)" "trap '' TERM; (trap '' TERM; setsid sleep 600 &); nohup sleep 600 >/dev/null 2>&1 &
setsid sh -c \"trap '' TERM; sleep 600\" &
sleep 600" "timeout = 2s"
    # Deeper than the task's 1024 open files: the collector and the clean-up walk it with two fds.
    make_job "$(src_dir deep)" 'i=0; while [ $i -lt 1500 ]; do mkdir d && cd d || exit 9; i=$((i + 1)); done
echo bottom > f; echo made'
    for j in hog tmpfill bomb files stubborn deep; do
        cp -r -- "$T_CASE/src/$j" "$m/jobs/$j"
    done
    st=$(wait_job "$m" hog 120)
    assert_eq failed "$(field state <<<"$st")" "state of hog"
    assert_contains "$(field failed-task <<<"$st")" "stopped by the memory limit" "hog's reason"
    assert_match "$(field stopped-by-limit <<<"$st")" '^memory 1 ' "hog's stopped-by-limit"
    st=$(wait_job "$m" tmpfill 60)
    assert_eq failed "$(field state <<<"$st")" "state of tmpfill"
    assert_contains "$(field failed-task <<<"$st")" "memory limit" "tmpfill's reason"
    [ "$(cat -- "$m/results/tmpfill/0/stdout")" != filled ] || fail "tmpfill filled both tmpfs"
    st=$(wait_job "$m" bomb 60)
    assert_match "$(field stopped-by-limit <<<"$st")" 'forks-refused: [1-9][0-9]*$' "bomb's refused forks"
    st=$(wait_job "$m" files 120)
    assert_eq failed "$(field state <<<"$st")" "state of files"
    assert_contains "$(field failed-task <<<"$st")" "stopped by the disk limit: the task's files in all" "files' reason"
    assert_match "$(field stopped-by-limit <<<"$st")" '^memory 0 time 0 disk 1 ' "files' stopped-by-limit"
    assert_contains "$(cat -- "$m/results/files/0/stderr")" "Disk quota exceeded" "files' stderr"
    st=$(wait_job "$m" stubborn 60)
    assert_eq failed "$(field state <<<"$st")" "state of stubborn"
    assert_contains "$(field failed-task <<<"$st")" "timed out after 2.0 s" "stubborn's reason"
    assert_match "$(field stopped-by-limit <<<"$st")" '^memory 0 time 1 ' "stubborn's stopped-by-limit"
    st=$(wait_job "$m" deep 60)
    assert_eq "done" "$(field state <<<"$st")" "state of deep"
    assert_file_eq "$m/results/deep/0/stdout" made
    # The machine is as it was: no process of a slot uid, no task cgroup, no task directory (once
    # the warm sandboxes, idle, have ended: docs/sandbox.md).
    wait_until 20 '[ "$(peer_field "$m" sandboxes)" = 0 ]' "the idle sandboxes end"
    assert_eq 0 "$(slot_procs 64000 2)" "processes of the slot uids left"
    for dir in $(peer_cgroup_dirs "$pid"); do
        assert_eq "" "$(find "$dir" -mindepth 1 -maxdepth 1 -type d)" "task cgroups left in $dir"
    done
    end=$((SECONDS + 20)) # the task directories are removed in the thread pool, after the result
    while left=$(find "$d/work" -mindepth 1 -maxdepth 1 | head -n 3) && [ -n "$left" ]; do
        [ "$SECONDS" -le "$end" ] || fail "task directories left in $d/work: $left"
        sleep 0.1
    done
    # And the peer carries on.
    make_job "$(src_dir after)" 'echo fine'
    cp -r -- "$T_CASE/src/after" "$m/jobs/after"
    st=$(wait_job "$m" after)
    assert_eq "done" "$(field state <<<"$st")" "state of a job after the abuse"
    stop_peer A
    for dir in $(peer_cgroup_dirs "$pid" 2>/dev/null); do
        [ ! -e "$dir" ] || fail "the peer's cgroup $dir outlived it"
    done
}

# overlaps DIR: pairs of tasks in DIR/<task>/{start,end} that ran at the same time.
overlaps() {
    local n=0 t u s b e
    for t in "$1"/*/; do
        s=$(cat -- "$t/start")
        for u in "$1"/*/; do
            [ "$u" != "$t" ] || continue
            b=$(cat -- "$u/start")
            e=$(cat -- "$u/end")
            [ "$s" -lt "$b" ] || [ "$s" -ge "$e" ] || n=$((n + 1))
        done
    done
    echo "$n"
}

# --memory bounds what the tasks hold together: 96M runs one 64M task at a time, and a task that
# asks for more than all of it never runs here (and the status says why); --cpu is the peer's
# cgroup's CPU quota.
t_what_the_volunteer_gives_bounds_its_tasks() {
    start_peer A --slots 2 --memory 96M --cpu 50
    local m pid st quota ncpu
    m=$(mnt A)
    pid=$(peer_pid A)
    assert_contains "$(cat -- "$m/peer")" "tasks-memory: 0 of 100663296" "peer status"
    assert_contains "$(cat -- "$m/peer")" "tasks-cpu: 50.0%" "peer status"
    ncpu=$(nproc)
    quota=$(cat /sys/fs/cgroup/cpu/"$(sed -n 's/^[0-9]*:\([^:]*,\)\{0,1\}cpu\(,[^:]*\)\{0,1\}:\(.*\)$/\3/p' \
        "/proc/$pid/cgroup" | sed 's,^/$,,')"/preon-"$pid"/cpu.cfs_quota_us 2>/dev/null ||
        cat "$(grep ' - cgroup2 ' /proc/self/mountinfo | head -n 1 | cut -d' ' -f5)$(sed -n 's/^0:://p' \
            "/proc/$pid/cgroup" | sed 's,^/$,,')/preon-$pid/cpu.max" | cut -d' ' -f1)
    assert_eq $((ncpu * 50000)) "$quota" "the CPU quota of the peer's cgroup (per 100 ms)"
    # Each task writes when it started and ended (ns); a task lasts long enough to overlap the next
    # if two ran at once.
    make_job "$(src_dir pair)" 'date +%s%N > start; sleep 0.4; date +%s%N > end' "tasks = 4" "memory = 64M"
    make_job "$(src_dir big)" 'echo never' "memory = 200M"
    cp -r -- "$T_CASE/src/pair" "$m/jobs/pair"
    cp -r -- "$T_CASE/src/big" "$m/jobs/big"
    st=$(wait_job "$m" pair 60)
    assert_eq "done" "$(field state <<<"$st")" "state of pair"
    assert_eq 0 "$(overlaps "$m/results/pair")" "tasks that ran at once within --memory 96M"
    st=$(cat -- "$m/status/big")
    assert_eq 1 "$(field waiting <<<"$st")" "big's waiting tasks"
    assert_contains "$(field why-waiting <<<"$st")" "--memory" "why big waits"
    # The control: without --memory the same job's tasks run two at a time.
    start_peer B --slots 2
    cp -r -- "$T_CASE/src/pair" "$(mnt B)/jobs/pair"
    st=$(wait_job "$(mnt B)" pair 60)
    [ "$(overlaps "$(mnt B)/results/pair")" -gt 0 ] || fail "without --memory, no two tasks ran at once"
}

t_no_network() {
    start_peer A
    local m src st port nc_pid out end
    m=$(mnt A)
    port=$((20000 + RANDOM % 40000))
    nc -lk 127.0.0.1 "$port" </dev/null >/dev/null 2>&1 &
    nc_pid=$!
    on_cleanup "kill $nc_pid; wait $nc_pid"
    # The control: the host can connect (bounded retry until nc listens).
    end=$((SECONDS + 10))
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        [ "$SECONDS" -le "$end" ] || fail "the test's own listener on port $port never came up"
        sleep 0.05
    done
    src=$(src_dir nonet)
    # bash for /dev/tcp; "bash-ok" proves the check itself ran.
    make_job "$src" "bash -c 'echo bash-ok
if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo connected; else echo refused; fi'
if [ -r /proc/net/dev ]; then
    awk -F: 'NR > 2 { gsub(/ /, \"\", \$1); print \"iface \" \$1 }' /proc/net/dev
fi"
    cp -r -- "$src" "$m/jobs/nonet"
    st=$(wait_job "$m" nonet)
    assert_eq "done" "$(field state <<<"$st")" state
    out=$(cat -- "$m/results/nonet/0/stdout")
    assert_contains "$out" bash-ok "task stdout"
    assert_contains "$out" refused "task stdout"
    assert_not_contains "$out" connected "task stdout"
    # If the task can see its interfaces, loopback must be the only one.
    assert_eq "" "$(grep '^iface ' <<<"$out" | grep -vx 'iface lo' || true)" "interfaces other than lo"
}

t_cannot_write_outside_the_task_dir() {
    start_peer A
    local m src st out p
    m=$(mnt A)
    for p in /usr/x /x; do
        [ ! -e "$p" ] || fail "$p exists on the host before the test"
    done
    src=$(src_dir walls)
    make_job "$src" 'for p in /job/x /usr/x /x; do
    if (echo x > "$p") 2>/dev/null; then echo "wrote $p"; else echo "refused $p"; fi
done
echo inside > inside.txt'
    cp -r -- "$src" "$m/jobs/walls"
    st=$(wait_job "$m" walls)
    assert_eq "done" "$(field state <<<"$st")" state
    out=$(cat -- "$m/results/walls/0/stdout")
    assert_eq 3 "$(grep -c '^refused ' <<<"$out" || true)" "refused writes; stdout was: $out"
    assert_not_contains "$out" wrote "task stdout"
    assert_file_eq "$m/results/walls/0/inside.txt" inside
    for p in /usr/x /x "$m/jobs/walls/x"; do
        [ ! -e "$p" ] || fail "the task created $p"
    done
}

t_task_environment() {
    start_peer A
    local m src st id
    m=$(mnt A)
    src=$(src_dir envjob)
    make_job "$src" 'echo "task=$PREON_TASK tasks=$PREON_TASKS job=$PREON_JOB"
echo "id=$PREON_JOB_ID"
echo "cwd=$(pwd)"
echo "path1=${PATH%%:*}"
helper' "tasks = 2"
    printf '#!/bin/sh\necho "helper found on PATH"\n' >"$src/helper"
    chmod 755 "$src/helper"
    cp -r -- "$src" "$m/jobs/envjob"
    st=$(wait_job "$m" envjob)
    assert_eq "done" "$(field state <<<"$st")" state
    id=$(field id <<<"$st")
    assert_match "$id" '^[0-9a-f]{64}$' id
    assert_file_eq "$m/results/envjob/1/stdout" "$(printf '%s\n' \
        "task=1 tasks=2 job=envjob" "id=$id" "cwd=/task" "path1=/job" "helper found on PATH")"
    assert_contains "$(cat -- "$m/results/envjob/0/stdout")" "task=0 tasks=2 job=envjob" "task 0 stdout"
}

run_tests "$@"
