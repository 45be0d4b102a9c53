#!/usr/bin/env bash
# Redundant execution (issue 9, item 5): a job with replicas = N runs each task on N distinct
# workers (keys); their signed result ids are compared and a quorum decides. A worker whose tasks
# see different data (here: the lying volunteer's sandbox runs under other user ids, and the task
# prints whether its uid is below 64000) never gets its result accepted, and is recorded as
# disagreeing; the replicas that agree with a result the submitter already has send only their
# signed id, no bytes (counted: results-served, votes-without-bytes).
# shellcheck disable=SC2016 # job scripts are single-quoted on purpose: they expand in the task
. "$(dirname -- "$0")/lib.sh"

LIE='if [ "$(id -u)" -lt 64000 ]; then echo wrong; else echo right; fi > out.txt; head -c 300000 /dev/zero > pad.bin'

t_a_lying_worker_is_outvoted_and_recorded() {
    start_peer A --port 0 --slots 0
    local a url st t kl k1 k2 served honest
    a=$(mnt A)
    url=$(peer_field "$a" http)
    publish_job "$a" voted "$LIE" "tasks = 4" "replicas = 3" "quorum = 2"
    wait_status "$a" voted state running
    # The liar first, alone: it takes one replica of every task (never two of one) and reports.
    start_peer L --port 0 --slots 4 --peer "$url" --uid-base 63000
    kl=$("$PREON" id --data "$(data_dir L)")
    for t in 0 1 2 3; do
        wait_log A "job voted task $t: result .* from .*: 1 of 1 reports agree, quorum 2: waiting for more" 30
    done
    assert_eq 4 "$(status_field "$a" voted waiting)" "tasks waiting for more replicas"
    [ -z "$(ls -A "$a/results/voted" 2>/dev/null)" ] || fail "a result reached results/ before its quorum"
    # Two honest volunteers: each runs every task once more; two agreeing results decide each task.
    start_peer H1 --port 0 --slots 4 --peer "$url" --uid-base 64500
    start_peer H2 --port 0 --slots 4 --peer "$url" --uid-base 64510
    k1=$("$PREON" id --data "$(data_dir H1)")
    k2=$("$PREON" id --data "$(data_dir H2)")
    st=$(wait_job "$a" voted 90)
    assert_eq done "$(field state <<<"$st")" "the job's state"
    assert_eq 4 "$(field succeeded <<<"$st")" "tasks accepted"
    for t in 0 1 2 3; do
        assert_file_eq "$a/results/voted/$t/out.txt" right
        assert_match "$(cat "$a/status/voted")" "task-votes: $t quorum 2 of 3 \(needs 2\); disagreed: $kl" \
            "task $t's votes in the status"
    done
    assert_contains "$(cat "$a/peer")" "worker-record: $kl valid 0 invalid 4 streak 0" "the liar's record"
    assert_contains "$(cat "$a/peer")" "worker-record: $k1 valid 4 invalid 0 streak 4" "H1's record"
    assert_contains "$(cat "$a/peer")" "worker-record: $k2 valid 4 invalid 0 streak 4" "H2's record"
    grep -q "job voted task 0: worker ${kl:0:16}\.\.\. disagreed with the quorum (2 of 3 agree)" "${PEER_LOG[A]}" ||
        fail "A's log does not name the worker that disagreed"
    # Bytes: each distinct result was fetched once; the second honest replica of each task sent none.
    assert_eq 4 "$(peer_field "$(mnt L)" results-served)" "result manifests the liar served (its 4 wrong ones)"
    honest=$(($(peer_field "$(mnt H1)" results-served) + $(peer_field "$(mnt H2)" results-served)))
    assert_eq 4 "$honest" "result manifests the honest replicas served, together (one per task)"
    assert_eq 8 "$(peer_field "$a" results-fetched)" "results A fetched"
    assert_eq 4 "$(peer_field "$a" votes-without-bytes)" "votes that came without bytes"
    served=$(($(peer_field "$(mnt H1)" bytes-served) + $(peer_field "$(mnt H2)" bytes-served)))
    [ "$served" -lt $((6 * 300000)) ] || fail "the honest replicas served $served bytes: more than one copy per task"
    # The results list names, per task, the key whose result was accepted, and is signed; a restart
    # of the submitter keeps who it was (its database).
    local id list
    id=$(status_field "$a" voted id)
    check_list() {
        list=$(curl -sS "$(peer_field "$a" http)/v1/results/$id")
        assert_eq 4 "$(grep -o '"sig":"[0-9a-f]\{128\}"' <<<"$list" | wc -l)" "signed entries in the results list"
        assert_eq 4 "$(grep -oE "\"worker\":\"($k1|$k2)\"" <<<"$list" | wc -l)" "entries naming an honest worker"
        assert_not_contains "$list" "$kl" "the results list"
    }
    check_list
    # A volunteer's result manifest goes only to its job's submitter: a replica cannot copy another's.
    local uh1
    uh1=$(peer_field "$(mnt H1)" http)
    assert_eq 401 "$(curl -sS -o /dev/null -w '%{http_code}' "$uh1/v1/result/$id/0")" "an unsigned result request"
    assert_eq 403 "$(scurl "$(test_key copier)" "$uh1/v1/result/$id/0" -o /dev/null -w '%{http_code}')" \
        "a result request by a key that is not the job's submitter"
    stop_peer A
    start_peer A --port 0 --slots 0
    wait_status "$a" voted state done
    local end=$((SECONDS + 20))
    until curl -sS "$(peer_field "$a" http)/v1/results/$id" | grep -q '"done":4'; do # results hashed again
        [ "$SECONDS" -le "$end" ] || fail "A lists no 4 results after its restart"
        sleep 0.1
    done
    check_list
}

# Replicas that never agree: more runs up to max-replicas, then the task fails with "no quorum".
t_no_quorum_fails_the_task() {
    start_peer A --port 0 --slots 0
    local a url st
    a=$(mnt A)
    url=$(peer_field "$a" http)
    publish_job "$a" split "$LIE" "tasks = 1" "replicas = 2" "max-replicas = 2"
    wait_status "$a" split state running
    start_peer L --port 0 --slots 1 --peer "$url" --uid-base 63000
    start_peer H --port 0 --slots 1 --peer "$url" --uid-base 64500
    st=$(wait_job "$a" split 60)
    assert_eq failed "$(field state <<<"$st")" "the job's state"
    assert_contains "$(cat "$a/status/split")" "no quorum: 2 runs, at most 1 agree (quorum 2)" "the reason"
    [ ! -e "$a/results/split/0/out.txt" ] || fail "a result without a quorum reached results/"
}

# The submitter's own slots do not vote: a replicated job with no other peer waits, and says why.
t_a_replicated_job_does_not_run_on_its_submitter() {
    start_peer A --port 0 --slots 2
    local a
    a=$(mnt A)
    publish_job "$a" alone 'echo x > out.txt' "replicas = 2"
    wait_status "$a" alone state running
    assert_contains "$(cat "$a/status/alone")" "the submitter's own slots do not vote" "why it waits"
    assert_eq 1 "$(status_field "$a" alone waiting)" "the task waits"
}

# replicas = adaptive: tasks replicate until a volunteer has 10 valid results in a row, then most
# run once on it (BOINC's adaptive replication; the rule itself is tested in test_coord.c).
t_adaptive_replication_runs_proven_workers_once() {
    start_peer A --port 0 --slots 0
    local a url st t singles=0 doubles=0 line
    a=$(mnt A)
    url=$(peer_field "$a" http)
    start_peer H1 --port 0 --slots 2 --peer "$url" --uid-base 64500
    start_peer H2 --port 0 --slots 2 --peer "$url" --uid-base 64510
    publish_job "$a" adapt 'echo "task $PREON_TASK" > out.txt' "tasks = 40" "replicas = adaptive"
    st=$(wait_job "$a" adapt 90)
    assert_eq done "$(field state <<<"$st")" "the job's state"
    assert_eq 40 "$(field succeeded <<<"$st")" "tasks accepted"
    for t in 0 17 39; do assert_file_eq "$a/results/adapt/$t/out.txt" "task $t"; done
    assert_contains "$(cat "$a/status/adapt")" "replicas: 2 (adaptive)" "the status"
    while read -r line; do
        case "$line" in
        *"quorum 1 of 1 (needs 1)"*) singles=$((singles + 1)) ;;
        *"quorum 2 of 2 (needs 2)"*) doubles=$((doubles + 1)) ;;
        esac
    done < <(grep '^task-votes:' "$a/status/adapt")
    [ "$doubles" -ge 10 ] || fail "only $doubles tasks were replicated: no worker had a streak of 10 before"
    [ "$singles" -ge 5 ] || fail "only $singles of 40 tasks ran once: proven workers were not trusted"
    assert_eq 40 "$((singles + doubles))" "tasks with votes"
}

run_tests "$@"
