#!/usr/bin/env bash
# Bad job descriptions: the job is not published; status/<name> says "state: rejected" with a reason
# that names the problem; the log says so too; other jobs in the same mount run as if nothing
# happened (one published before the bad one, one after).
# shellcheck disable=SC2016 # job scripts are single-quoted on purpose: they expand in the task
. "$(dirname -- "$0")/lib.sh"

# check_rejected NAME REGEX [preon.job line...]: publishes a job with that description between two
# good jobs and checks the rejection. REGEX (ERE, case-insensitive) must match the reason.
check_rejected() {
    local name=$1 want=$2
    shift 2
    start_peer A
    local m src st reason
    m=$(mnt A)
    src=$(src_dir before)
    make_job "$src" 'echo before'
    cp -r -- "$src" "$m/jobs/before"

    src=$(src_dir "$name")
    make_job "$src" 'echo "must never run"' "$@"
    cp -r -- "$src" "$m/jobs/$name"
    # wait/ returns for a rejected job too.
    st=$(wait_job "$m" "$name" 30)
    assert_eq rejected "$(field state <<<"$st")" "state of $name"
    reason=$(field reason <<<"$st")
    [ -n "$reason" ] || fail "no reason for the rejection:"$'\n'"$st"
    assert_match "$reason" "$want" "reason"
    [ -z "$(field id <<<"$st")" ] || fail "a rejected job has an id (it was published):"$'\n'"$st"
    [ ! -e "$m/results/$name/0" ] || fail "a task of the rejected job ran"
    assert_eq 1 "$(preon_wait_rc "$m" "$name")" "preon wait on a rejected job"
    # The log names the job and the problem.
    if ! grep -F -- "$name" "${PEER_LOG[A]}" | grep -qiE -- "$want"; then
        show_peer_output A
        fail "the log does not mention $name with /$want/"
    fi

    src=$(src_dir after)
    make_job "$src" 'echo after'
    cp -r -- "$src" "$m/jobs/after"
    st=$(wait_job "$m" before)
    assert_eq "done" "$(field state <<<"$st")" "state of the job published before"
    assert_file_eq "$m/results/before/0/stdout" before
    st=$(wait_job "$m" after)
    assert_eq "done" "$(field state <<<"$st")" "state of the job published after"
    assert_file_eq "$m/results/after/0/stdout" after
}

t_unknown_key() {
    check_rejected bad_key 'taks' "taks = 3"
}

t_bad_number() {
    check_rejected bad_number 'tasks' "tasks = many"
}

t_task_count_out_of_range() {
    check_rejected bad_range 'tasks' "tasks = 0"
}

t_bad_duration() {
    check_rejected bad_timeout 'timeout' "timeout = forever"
}

t_duplicate_key() {
    check_rejected bad_dup 'tasks' "tasks = 2" "tasks = 3"
}

t_output_path_escaping() {
    check_rejected bad_outputs 'outputs.*\.\.|\.\..*outputs' "outputs = ../x"
}

t_oversized_value() {
    local long
    long=$(printf 'x%.0s' $(seq 5000))
    check_rejected bad_long 'command' "command = echo $long"
}

t_oversized_description() {
    # Over the 64 KiB cap on the whole file, made of comment lines that would be harmless alone.
    local lines=() i
    for i in $(seq 1200); do lines+=("# padding line $i ............................................"); done
    check_rejected bad_huge 'larger|too (big|large|long)|bytes' "${lines[@]}" "tasks = 1"
}

t_garbage_line() {
    check_rejected bad_syntax "key = value|expected|line 1" "this is not a description"
}

run_tests "$@"
