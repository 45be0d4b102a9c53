#!/usr/bin/env bash
# preon submit (issue 12, item 1) and why a job waits (item 2).
# shellcheck disable=SC2016 # job scripts are single-quoted on purpose: they expand in the task
. "$(dirname -- "$0")/lib.sh"

# A submitter that runs nothing itself and three volunteers that each say why they do not run its
# job: B gives its tasks 64M in all (the job wants 256M), C trusts only its own key, D's one slot
# is busy with another job's task (one B cannot run: it wants 100M). status/<job> sums them up,
# peer by peer, and stops saying it once a volunteer can run the job.
t_why_waiting_says_peer_by_peer() {
    start_peer A --port 0 --slots 0
    local a url st want
    a=$(mnt A)
    url=$(peer_field "$a" http)
    start_peer B --port 0 --slots 1 --memory 64M --peer "$url" --uid-base 64500
    PEER_TRUST=own start_peer C --port 0 --slots 1 --peer "$url" --uid-base 64510
    start_peer D --port 0 --slots 1 --peer "$url" --uid-base 64520
    publish_job "$a" blocker 'sleep 600' "memory = 100M"
    wait_status "$a" blocker running 1 30
    assert_contains "$(cat "$a/status/blocker")" "leased-task: 0 $(peer_field "$(mnt D)" key)" "D runs the blocker"
    publish_job "$a" big 'echo ran > out.txt' "memory = 256M"
    want="why-waiting: this peer runs no tasks (--slots 0); 3 pool peers: 1 lacks memory 256M (has 64M), 1 does not trust your key, 1 busy (1 of 1 slots)"
    wait_until 20 '[ "$(grep "^why-waiting:" "$a/status/big")" = "$want" ]' "status/big says: $want (it says: $(grep why-waiting "$a/status/big" || true))"
    # preon status JOB says the same
    st=$("$PREON" status --mount "$a" big)
    assert_contains "$st" "$want" "preon status big"
    # D's slot frees: the job runs there and the reason goes
    rm -r -- "$a/jobs/blocker"
    st=$(wait_job "$a" big 60)
    assert_eq done "$(field state <<<"$st")" "state of big"
    assert_not_contains "$st" "why-waiting" "the status of a job that ran"
}

run_tests "$@"
