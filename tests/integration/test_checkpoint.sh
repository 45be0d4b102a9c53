#!/usr/bin/env bash
# Checkpoints (docs/job-format.md, "Stopping with notice, and checkpoints"): a task stopped with
# notice, because its volunteer's owner stayed (--when idle, faked with a FIFO: lib.sh's fake_input)
# or because its peer is stopping (SIGTERM), leaves what it wrote in /task/checkpoint/; that goes
# with the task (fetched and verified by the submitter, then by the next volunteer), and the next
# run, on any peer or after a restart, starts from it. The job is mnt-examples/resume, made short.
. "$(dirname -- "$0")/lib.sh"

UID_BASE=64800
EXAMPLES=$(cd -- "$(dirname -- "$0")/../../mnt-examples" && pwd)

# resumed_at M: the step the accepted run of the resume job started from (0: from the beginning).
resumed_at() {
    local at
    at=$(sed -n 's/^resumed at step //p' "$1/results/resume/0/resumed.txt" 2>/dev/null | tail -n 1)
    echo "${at:-0}"
}

# publish_resume M: publishes mnt-examples/resume (a 30-step sum that keeps a checkpoint), made
# short: 30 steps of 0.2 s.
publish_resume() {
    local src
    src=$(src_dir resume)
    cp -r -- "$EXAMPLES/resume/." "$src/"
    echo "STEPS=30 PAUSE=0.2" >"$src/params"
    cp -r -- "$src" "$1/jobs/.resume"
    mv -- "$1/jobs/.resume" "$1/jobs/resume"
}

# ckpt_step NAME: the step the resume job's task running on peer NAME has saved (0: none yet).
ckpt_step() {
    local f
    for f in "$(data_dir "$1")"/work/*/task/checkpoint/state; do
        [ -e "$f" ] && { cut -d' ' -f1 <"$f"; return; }
    done
    echo 0
}

t_a_given_back_task_resumes_from_its_checkpoint_on_another_peer() {
    local a b c url in st
    start_peer A --port 0 --slots 0
    a=$(mnt A)
    url=$(peer_field "$a" http)
    in=$(fake_input B)
    start_peer B --port 0 --slots 1 --peer "$url" --uid-base "$UID_BASE" --when idle --idle-after 1s \
        --idle-grace 1s --idle-cpu 0 --input-dir "$in"
    b=$(mnt B)
    publish_resume "$a"
    wait_log B "leased task 0" 20
    wait_until 20 "[ \"\$(ckpt_step B)\" -ge 5 ]" "B's task has saved 5 steps"
    owner_stays "$in"
    wait_until 15 "[ \"\$(peer_field '$b' checkpoints-given-back)\" = 1 ]" "B gives the task back with its checkpoint"
    wait_log A "task 0 released by .* with its checkpoint" 15
    assert_eq 1 "$(peer_field "$a" checkpoints-fetched)" "A took the checkpoint from B"
    assert_eq 1 "$(peer_field "$a" checkpoints)" "A holds it"
    wait_until 10 "[ \"\$(peer_field '$b' checkpoints)\" = 0 ]" "B drops its copy once A has it"
    wait_status "$a" resume waiting 1 10
    # C runs it, from the checkpoint: it goes on from where B stopped.
    start_peer C --port 0 --slots 1 --peer "$url" --uid-base $((UID_BASE + 10))
    c=$(mnt C)
    st=$(wait_job "$a" resume 60)
    assert_eq done "$(field state <<<"$st")" "state on A"
    assert_file_eq "$a/results/resume/0/sum.txt" 465
    [ "$(resumed_at "$a")" -ge 5 ] || fail "the run on C did not start from B's checkpoint"
    assert_eq 1 "$(peer_field "$c" checkpoints-fetched)" "C took the checkpoint from A"
    assert_eq 1 "$(peer_field "$c" tasks-resumed)" "C resumed a task"
    [ ! -e "$a/results/resume/0/checkpoint" ] || fail "the checkpoint is in the result"
    # Decided: the submitter drops it, and so does C once its task ended.
    wait_until 10 "[ \"\$(peer_field '$a' checkpoints)\" = 0 ]" "A drops the checkpoint"
    assert_eq 0 "$(peer_field "$c" checkpoints)" "C dropped its copy"
    owner_leaves
}

t_a_task_given_back_to_its_own_peer_resumes_there() {
    local in m st
    in=$(fake_input A)
    start_peer A --slots 1 --uid-base "$UID_BASE" --when idle --idle-after 1s --idle-grace 1s --idle-cpu 0 \
        --input-dir "$in"
    m=$(mnt A)
    publish_resume "$m"
    wait_until 20 "[ \"\$(ckpt_step A)\" -ge 5 ]" "the task has saved 5 steps"
    owner_stays "$in"
    wait_until 15 "[ \"\$(peer_field '$m' checkpoints-given-back)\" = 1 ]" "the task is given back with its checkpoint"
    wait_status "$m" resume waiting 1 10
    assert_eq 1 "$(peer_field "$m" checkpoints)" "the checkpoint is held"
    owner_leaves
    st=$(wait_job "$m" resume 60)
    assert_eq done "$(field state <<<"$st")" "state"
    assert_file_eq "$m/results/resume/0/sum.txt" 465
    [ "$(resumed_at "$m")" -ge 5 ] || fail "the second run did not start from the checkpoint"
    assert_eq 1 "$(peer_field "$m" tasks-resumed)" "tasks-resumed"
    assert_eq 0 "$(peer_field "$m" checkpoints)" "dropped once the task is done"
}


t_a_volunteer_that_is_stopped_gives_its_task_back_with_its_checkpoint() {
    local a c url st
    start_peer A --port 0 --slots 0
    a=$(mnt A)
    url=$(peer_field "$a" http)
    start_peer B --port 0 --slots 1 --peer "$url" --uid-base "$UID_BASE"
    publish_resume "$a"
    wait_log B "leased task 0" 20
    wait_until 20 "[ \"\$(ckpt_step B)\" -ge 5 ]" "B's task has saved 5 steps"
    # SIGTERM: the task gets notice, and B exits only once A has its checkpoint.
    term_peer B
    grep -q "tasks get notice" "${PEER_LOG[B]}" || fail "B's log does not say its task got notice"
    grep -qE "task 0 released by .* with its checkpoint" "${PEER_LOG[A]}" ||
        fail "A did not have the checkpoint when B had stopped"
    wait_status "$a" resume waiting 1 10
    start_peer C --port 0 --slots 1 --peer "$url" --uid-base $((UID_BASE + 10))
    st=$(wait_job "$a" resume 60)
    assert_eq done "$(field state <<<"$st")" "state on A"
    assert_file_eq "$a/results/resume/0/sum.txt" 465
    [ "$(resumed_at "$a")" -ge 5 ] || fail "C's run did not start from B's checkpoint"
}

t_a_peer_stopped_and_started_again_resumes_its_own_task() {
    local m st
    start_peer A --slots 1 --uid-base "$UID_BASE"
    m=$(mnt A)
    publish_resume "$m"
    wait_until 20 "[ \"\$(ckpt_step A)\" -ge 5 ]" "the task has saved 5 steps"
    term_peer A
    ls "$(data_dir A)"/ckpt/*.json >/dev/null 2>&1 || fail "no checkpoint kept in DATA/ckpt after the stop"
    start_peer A --slots 1 --uid-base "$UID_BASE"
    st=$(wait_job "$m" resume 60)
    assert_eq done "$(field state <<<"$st")" "state after the restart"
    assert_file_eq "$m/results/resume/0/sum.txt" 465
    [ "$(resumed_at "$m")" -ge 5 ] || fail "the run after the restart did not start from the checkpoint"
    assert_eq 1 "$(peer_field "$m" tasks-resumed)" "tasks-resumed"
    grep -q "kept from before the restart" "${PEER_LOG[A]}" || fail "the log does not say the checkpoint was kept"
    wait_until 10 "! ls '$(data_dir A)'/ckpt/* >/dev/null 2>&1" "DATA/ckpt is empty once the task is done"
}

run_tests "$@"
