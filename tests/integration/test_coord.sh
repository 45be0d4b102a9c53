#!/usr/bin/env bash
# The coordination rules, end to end over the peer API (issue 8, items 6 and 8): a result reaches
# results/ only once the coordination core accepts its report (two `done` for one task; a `done`
# from the worker whose lease was reassigned); cancelling a job reaches its volunteers at once and
# no result of a cancelled task is stored; a job's os/arch requirements apply to the submitter's
# own slots, and the status says why it waits; a volunteer the pool drops as silent gives its
# leases back at once. Fake volunteers are curl with a ?peer= of their own.
# shellcheck disable=SC2016
. "$(dirname -- "$0")/lib.sh"

b64() { basenc --base64url -w0 | tr -d =; }

# inline_done URL ID TASK PEER TEXT: reports TASK done by PEER with stdout = TEXT (an inline
# result whose block hash matches); prints the HTTP code.
# man_for TEXT: the canonical result manifest of a result whose stdout is TEXT (its sha256 is the
# result's id).
man_for() {
    local h man
    h=$(printf '%s\n' "$1" | sha256sum | cut -c1-64)
    man='{"block_size":262144,"created_ms":1,"dirs":[],"files":[{"blocks":["'$h'"],"mode":420,"path":"stdout","size":'$((${#1} + 1))'}],'
    man+='"job":{"command":"/job/run","disk":1073741824,"memory":1073741824,"network":false,"outputs":[],'
    man+='"processes":64,"replicas":1,"tasks":1,"timeout_ms":3600000},"name":"x.0","v":1}'
    printf '%s' "$man"
}

# inline_done URL ID TASK ME TEXT [KEY]: a signed done of TASK with TEXT as its stdout, inline, from the
# worker ME (a base URL) whose key is KEY (default: ME's test key); prints the HTTP code.
inline_done() {
    local key=${6:-}
    [ -n "$key" ] || key=$(test_key "${4##*:}")
    scurl "$key" "$(inline_done_url "$@")" -o /dev/null -w '%{http_code}'
}

# inline_done_url URL ID TASK ME TEXT [KEY]: the URL of inline_done's request (its result signed).
inline_done_url() {
    local url=$1 id=$2 task=$3 me=$4 text=$5 key=${6:-} man
    [ -n "$key" ] || key=$(test_key "${me##*:}")
    man=$(man_for "$text")
    printf '%s' "$url/v1/done/$id/$task?peer=$me&exit=0&ms=1$(signed_result "$key" "$id" "$task" "$man" 0)&man=$(printf '%s' "$man" | b64)&data=$(printf '%s\n' "$text" | b64)"
}

no_stage_left() { # DATA ID: no report's staging directory is left under results/<id>/
    local left
    left=$(find "$1/results/$2" -maxdepth 1 -name '.*.tmp' 2>/dev/null || true)
    [ -z "$left" ] || fail "staging directories left behind: $left"
}

t_two_done_reports_for_one_task() {
    start_peer A --port 0 --slots 0
    local a url id me="http://127.0.0.1:9" st c1 c2
    a=$(mnt A)
    url=$(peer_field "$a" http)
    id=$(publish_idle "$a" two 1)
    assert_contains "$(scurl "$(test_key 9)" "$url/v1/lease/$id?peer=$me")" '"tasks":[0]' "lease answer"
    # Both at once: each stages on its own; the core accepts one, the other changes nothing.
    local p1 p2
    inline_done "$url" "$id" 0 "$me" first >"$T_CASE/c1" &
    p1=$!
    inline_done "$url" "$id" 0 "$me" second >"$T_CASE/c2" &
    p2=$!
    wait "$p1" "$p2" # by PID: the peer is a child of this shell too
    c1=$(cat "$T_CASE/c1")
    c2=$(cat "$T_CASE/c2")
    st=$(wait_job "$a" two 20)
    assert_eq done "$(field state <<<"$st")" state
    local got
    got=$(cat "$a/results/two/0/stdout")
    case "$got" in first | second) ;; *) fail "results/two/0/stdout is '$got'" ;; esac
    [ "$c1" = 202 ] || [ "$c2" = 202 ] || fail "neither report was taken ($c1, $c2)"
    # A third report, after the task is decided, is refused and does not replace it.
    assert_eq 409 "$(inline_done "$url" "$id" 0 "$me" third)" "a done after the task is decided"
    assert_file_eq "$a/results/two/0/stdout" "$got"
    # What results/ holds is the report the core accepted (the log names its id), never the one
    # that raced in after it: that one was discarded, not renamed over it.
    local accepted
    accepted=$(sed -n "s/.*job two task 0: result \([0-9a-f]\{64\}\) from .*/\1/p" "${PEER_LOG[A]}")
    assert_eq 1 "$(grep -c "job two task 0: result [0-9a-f]* from" "${PEER_LOG[A]}")" "accepted results in A's log"
    assert_eq "$(man_for "$got" | sha256sum | cut -c1-64)" "$accepted" "id of the result in results/ vs the accepted one"
    no_stage_left "$(data_dir A)" "$id"
    assert_file_eq "$a/results/two/0/stdout" "$got"
}

# (A lease of 2 s, not less: W2 must still hold the task when W1 reports. A report from a worker
# with no lease on a task that nobody holds is adopted since the submitter forgets leases on a
# restart: docs/reliability.md, "Submitter killed while the only holder".)
t_a_done_from_the_worker_whose_lease_was_reassigned() {
    start_peer A --port 0 --slots 0 --lease-ms 2000
    local a url id w1="http://127.0.0.1:9" w2="http://127.0.0.1:10" st
    a=$(mnt A)
    url=$(peer_field "$a" http)
    id=$(publish_idle "$a" re 1)
    assert_contains "$(scurl "$(test_key 9)" "$url/v1/lease/$id?peer=$w1")" '"tasks":[0]' "W1's lease"
    # W1 does not renew: its lease expires and the task waits again, then goes to W2.
    wait_status "$a" re waiting 1 10
    # The three requests made while W2 holds its 2 s lease are signed first: signing runs preon
    # twice or three times a request, which alone can take longer than the lease under TSan.
    local -a w1_done w1_renew w2_done
    presign w1_done "$(test_key 9)" "$(inline_done_url "$url" "$id" 0 "$w1" stale)"
    presign w1_renew "$(test_key 9)" "$url/v1/renew/$id/0?peer=$w1"
    presign w2_done "$(test_key 10)" "$(inline_done_url "$url" "$id" 0 "$w2" fresh)"
    assert_contains "$(scurl "$(test_key 10)" "$url/v1/lease/$id?peer=$w2")" '"tasks":[0]' "W2's lease"
    assert_eq 409 "$(curl -sS -o /dev/null -w '%{http_code}' "${w1_done[@]}")" "W1's done after its lease went to W2"
    assert_eq 409 "$(curl -sS -o /dev/null -w '%{http_code}' "${w1_renew[@]}")" "W1's renew"
    assert_eq 202 "$(curl -sS -o /dev/null -w '%{http_code}' "${w2_done[@]}")" "W2's done"
    st=$(wait_job "$a" re 20)
    assert_eq done "$(field state <<<"$st")" state
    assert_file_eq "$a/results/re/0/stdout" fresh
    assert_eq 409 "$(inline_done "$url" "$id" 0 "$w1" stale)" "W1's done once the task is decided"
    assert_file_eq "$a/results/re/0/stdout" fresh
    no_stage_left "$(data_dir A)" "$id"
}

t_cancel_reaches_the_volunteer_at_once() {
    start_peer A --port 0 --slots 0
    local a b url src t0 took
    a=$(mnt A)
    url=$(peer_field "$a" http)
    src=$(src_dir long)
    make_job "$src" 'echo started; sleep 120; echo finished > out.txt'
    start_peer B --port 0 --slots 1 --peer "$url" --uid-base 64540
    b=$(mnt B)
    cp -r -- "$src" "$a/jobs/long"
    wait_status "$a" long running 1 30
    wait_log B "job long: task 0 .*started|sandbox|leased" 20 2>/dev/null || true
    # A shows B's live output (the task printed 'started'), until the job is cancelled
    wait_until 20 'grep -qx started "$a/results/long/0/stdout" 2>/dev/null' "A shows the task's live output"
    t0=$(date +%s%N)
    rm -r -- "$a/jobs/long"
    # at once, not when the next sweep drops A's copy (it was shown for up to a second)
    [ ! -e "$a/results/long/0" ] || fail "A shows the live output of a task of a cancelled job"
    # B stops the task within about a second (pushed; its next renew would say 410 too)
    wait_log B "job long task 0: the submitter cancelled the job: stopping it" 5
    took=$((($(date +%s%N) - t0) / 1000000))
    [ "$took" -le 2000 ] || fail "the volunteer stopped the task ${took} ms after the cancel"
    # nothing of the task is left running under B's slot uid
    local end=$((SECONDS + 10))
    while [ "$SECONDS" -le "$end" ] && pgrep -u 64540 >/dev/null; do sleep 0.05; done
    ! pgrep -u 64540 >/dev/null || fail "a process of B's slot uid still runs"
    assert_eq "" "$(grep -E "job long task 0: result [0-9a-f]* from" "${PEER_LOG[A]}" || true)" "a result stored on A"
    [ ! -e "$a/results/long/0" ] || fail "A stored a result of a cancelled task"
    [ ! -e "$b/results/long/0/out.txt" ] || fail "B has a result of a cancelled task"
    # and the cancelled job leaves B's jobs/ too (it was removed on its submitter)
    end=$((SECONDS + 5))
    while [ "$SECONDS" -le "$end" ] && [ -e "$b/jobs/long" ]; do sleep 0.05; done
    [ ! -e "$b/jobs/long" ] || fail "the cancelled job lingers in B's jobs/: $(ls "$b/jobs"; grep long "${PEER_LOG[B]}")"
}

t_requirements_apply_to_the_submitters_own_slots() {
    start_peer A --slots 2
    local a src st
    a=$(mnt A)
    src=$(src_dir plan9)
    make_job "$src" 'echo ran > out.txt' "os = plan9"
    cp -r -- "$src" "$a/jobs/plan9"
    src=$(src_dir arm)
    make_job "$src" 'echo ran > out.txt' "arch = sparc64"
    cp -r -- "$src" "$a/jobs/sparc"
    src=$(src_dir ok)
    make_job "$src" 'echo ran > out.txt' "os = linux"
    cp -r -- "$src" "$a/jobs/ok"
    st=$(wait_job "$a" ok 30) # a job it can run still runs
    assert_eq done "$(field state <<<"$st")" "state of ok"
    wait_status "$a" plan9 state running 10
    wait_log A "job plan9: this peer's slots do not run it: it wants os plan9" 10
    wait_log A "job sparc: this peer's slots do not run it: it wants arch sparc64" 10
    assert_eq 1 "$(status_field "$a" plan9 waiting)" "plan9 waiting"
    assert_eq 0 "$(status_field "$a" plan9 succeeded)" "plan9 succeeded"
    assert_contains "$(status_field "$a" plan9 why-waiting)" "this peer's slots cannot run it (it wants os plan9 (this is linux))" "why-waiting"
    assert_contains "$(status_field "$a" sparc why-waiting)" "it wants arch sparc64" "why-waiting of sparc"
    [ ! -e "$a/results/plan9/0" ] || fail "an os = plan9 task ran here"
}

t_a_dropped_volunteer_gives_its_leases_back_at_once() {
    # The lease is 60 s; the pool drops a silent peer after 10 s: the task must wait again then.
    start_peer A --port 0 --slots 0 --lease-ms 60000
    local a url src t0
    a=$(mnt A)
    url=$(peer_field "$a" http)
    src=$(src_dir held)
    make_job "$src" 'sleep 120'
    start_peer B --port 0 --slots 1 --peer "$url" --uid-base 64550
    cp -r -- "$src" "$a/jobs/held"
    wait_status "$a" held running 1 30
    assert_contains "$(timeout 5 cat "$a/status/held")" "leased-task: 0 " "status names the holder"
    kill9_peer B
    t0=$SECONDS
    wait_status "$a" held waiting 1 25
    [ $((SECONDS - t0)) -lt 30 ] || fail "the task waited again only after $((SECONDS - t0)) s"
    grep -qE "job held task 0: .* left the pool: the task waits for another peer" "${PEER_LOG[A]}" ||
        fail "A's log does not say the lease went back because B left"
    local end=$((SECONDS + 10))
    while [ "$SECONDS" -le "$end" ] && pgrep -u 64550 >/dev/null; do sleep 0.05; done
}

# A volunteer's result manifest is checked against the job's rules before one block of it is
# fetched (issue 8, item 7): 2 MiB of outputs for a job whose disk is 1 MiB is refused, nothing
# else is asked of that volunteer, and the task waits again at once (not when the lease, lengthened
# for the transfer, runs out minutes later).
t_a_result_over_the_jobs_disk_is_refused_before_any_block() {
    start_peer A --port 0 --slots 0
    local a url id man blocks="" i st
    a=$(mnt A)
    url=$(peer_field "$a" http)
    id=$(publish_idle "$a" bigres 1 "disk = 1M")
    for i in 0 1 2 3 4 5 6 7; do
        blocks+="${blocks:+,}\"$(printf 'block %s' "$i" | sha256sum | cut -c1-64)\""
    done
    man='{"block_size":262144,"created_ms":1,"dirs":[],"files":[{"blocks":['$blocks'],"mode":420,"path":"out.bin","size":2097152}],'
    man+='"job":{"command":"/job/run","disk":1048576,"memory":1073741824,"network":false,"outputs":[],'
    man+='"processes":64,"replicas":1,"tasks":1,"timeout_ms":3600000},"name":"x.0","v":1}'
    local k
    k=$(test_key fake)
    fake_server "$man" "$T_CASE/asked" "$("$PREON" id --key "$k")"
    assert_contains "$(scurl "$k" "$url/v1/lease/$id?peer=$FAKE_URL")" '"tasks":[0]' "lease answer"
    assert_eq 202 "$(scurl "$k" "$url/v1/done/$id/0?peer=$FAKE_URL&exit=0&ms=1$(signed_result "$k" "$id" 0 "$man" 0)" \
        -o /dev/null -w '%{http_code}')" "done"
    wait_log A "job bigres task 0: the result of .* is refused: its outputs are over the job's disk" 10
    wait_status "$a" bigres waiting 1 5
    grep -q "GET /v1/result/$id/0" "$T_CASE/asked" || fail "the submitter never asked for the manifest"
    if grep -q "/v1/block/" "$T_CASE/asked"; then fail "a block was fetched: $(grep /v1/block/ "$T_CASE/asked")"; fi
    [ ! -e "$a/results/bigres/0" ] || fail "a refused result reached results/"
}

run_tests "$@"
