#!/usr/bin/env bash
# The sandbox and its limits, seen from inside a task: the time-out kills a task that runs too
# long; the memory limit stops a task that allocates too much (while the same task with room
# succeeds); a task has no network (not even the host's loopback); it cannot write outside its task
# directory; and it sees the environment the spec promises.
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

    # The control: the same program with room enough succeeds, so the limit is what stopped it.
    st=$(wait_job "$m" roomy 60)
    assert_eq "done" "$(field state <<<"$st")" "state of the 2G job"
    assert_file_eq "$m/results/roomy/0/stdout" 268435456
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
