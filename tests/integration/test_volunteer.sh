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

# wait_peer_field M KEY VALUE [SECS]: bounded poll (50 ms) of M/peer until KEY is VALUE (a peer
# learning of another has no event a test could block on).
wait_peer_field() {
    local end=$((SECONDS + ${4:-20})) got=""
    while [ "$SECONDS" -le "$end" ]; do
        got=$(peer_field "$1" "$2")
        [ "$got" = "$3" ] && return 0
        sleep 0.05
    done
    fail "$1/peer never had '$2: $3' (last: '$got')"
}

t_an_offer_recruits_a_volunteer_without_waiting_for_the_poll() {
    # Both peers poll for jobs only every 10 minutes: the job can reach B in time only by A's offer.
    start_peer A --port 0 --slots 0 --discover-ms 600000
    local a url src st
    a=$(mnt A)
    url=$(peer_field "$a" http)
    start_peer B --port 0 --slots 2 --peer "$url" --discover-ms 600000 --uid-base 64470
    wait_peer_field "$a" pool-peers 1 # B greeted A (/v1/hello): A knows whom to offer jobs to
    src=$(src_dir off)
    make_job "$src" 'echo "t$PREON_TASK" > out.txt' "tasks = 3"
    cp -r -- "$src" "$a/jobs/.off"
    mv -- "$a/jobs/.off" "$a/jobs/off"
    st=$(wait_job "$a" off 30)
    assert_eq done "$(field state <<<"$st")" "state on A"
    assert_eq 3 "$(field succeeded <<<"$st")" succeeded
    assert_file_eq "$a/results/off/2/out.txt" t2
    assert_match "$st" '^dispatch-ms-p50: [0-9]+$' "A's status"
    # the results came inline in B's reports: A fetched no block at all
    assert_eq 0 "$(peer_field "$a" blocks-fetched)" "blocks A fetched"
    grep -q "with the result inline" "${PEER_LOG[B]}" || fail "B sent no result inline"
    grep -q "leased task 0,1 from" "${PEER_LOG[B]}" || fail "B's two free slots did not lease two tasks at once"
}

# publish_idle A NAME TASKS: publishes a job of TASKS tasks on A (which runs nothing itself) and
# prints its id once it runs.

t_one_lease_request_gets_several_tasks_and_unused_ones_go_back() {
    start_peer A --port 0 --slots 0
    local a url id me="http://127.0.0.1:9" out k
    k=$(test_key me)
    a=$(mnt A)
    url=$(peer_field "$a" http)
    id=$(publish_idle "$a" multi 5)
    out=$(scurl "$k" "$url/v1/lease/$id?peer=$me&n=3")
    assert_contains "$out" '"tasks":[0,1,2]' "lease answer"
    assert_eq 3 "$(status_field "$a" multi running)" running
    # task 1 could not be started: given back, it waits again and costs no attempt
    assert_eq 200 "$(scurl "$k" "$url/v1/release/$id/1?peer=$me" -o /dev/null -w '%{http_code}')" release
    assert_eq 409 "$(scurl "$k" "$url/v1/release/$id/1?peer=$me" -o /dev/null -w '%{http_code}')" "second release"
    assert_eq 409 "$(scurl "$(test_key other)" "$url/v1/release/$id/0?peer=http://127.0.0.1:10" -o /dev/null -w '%{http_code}')" \
        "release by a peer that holds no lease"
    assert_eq 3 "$(status_field "$a" multi waiting)" waiting
    out=$(scurl "$k" "$url/v1/lease/$id?peer=$me&n=100") # capped: the three that wait
    assert_contains "$out" '"tasks":[1,3,4]' "second lease answer"
    assert_eq 204 "$(scurl "$k" "$url/v1/lease/$id?peer=$me&n=2" -o /dev/null -w '%{http_code}')" "nothing left"
}

t_an_inline_result_is_checked_against_its_hashes() {
    start_peer A --port 0 --slots 0
    local a url id me="http://127.0.0.1:9" man h m good bad st k
    k=$(test_key me)
    a=$(mnt A)
    url=$(peer_field "$a" http)
    id=$(publish_idle "$a" inl 1)
    h=$(printf 'hello\n' | sha256sum | cut -c1-64)
    man='{"block_size":262144,"created_ms":1,"dirs":[],"files":[{"blocks":["'$h'"],"mode":420,"path":"stdout","size":6}],'
    man+='"job":{"command":"/job/run","disk":1073741824,"memory":1073741824,"network":false,"outputs":[],'
    man+='"processes":64,"replicas":1,"tasks":1,"timeout_ms":3600000},"name":"inl.0","v":1}'
    b64() { basenc --base64url -w0 | tr -d =; }
    m=$(printf '%s' "$man" | b64)
    good=$(printf 'hello\n' | b64)
    bad=$(printf 'HELLO\n' | b64)
    assert_contains "$(scurl "$k" "$url/v1/lease/$id?peer=$me")" '"tasks":[0]' "lease answer"
    local rs
    rs=$(signed_result "$k" "$id" 0 "$man" 0)
    assert_eq 400 "$(scurl "$k" "$url/v1/done/$id/0?peer=$me&exit=0&ms=1$rs&man=$m&data=$bad" -o /dev/null -w '%{http_code}')" \
        "done with bytes that do not match"
    [ ! -e "$a/results/inl/0" ] || fail "a refused result reached results/"
    grep -q "inline result from .* is refused: inline result: stdout does not match its block hash" "${PEER_LOG[A]}" ||
        fail "A's log does not say why the result was refused"
    assert_eq 1 "$(status_field "$a" inl waiting)" "waiting after the refusal"
    # the same task, leased again and reported with the right bytes, is done in one request
    assert_contains "$(scurl "$k" "$url/v1/lease/$id?peer=$me")" '"tasks":[0]' "second lease answer"
    assert_eq 202 "$(scurl "$k" "$url/v1/done/$id/0?peer=$me&exit=0&ms=1$rs&man=$m&data=$good" -o /dev/null -w '%{http_code}')" \
        "done with the right bytes"
    st=$(wait_job "$a" inl 20)
    assert_eq done "$(field state <<<"$st")" "state on A"
    assert_file_eq "$a/results/inl/0/stdout" hello
    assert_eq 0 "$(peer_field "$a" blocks-fetched)" "blocks A fetched"
}


t_tasks_go_only_to_peers_that_meet_their_requirements() {
    # B has a free slot but not 1000 TiB of disk, nor a sparc64 CPU: it takes neither job, says
    # why, and the tasks stay waiting on A (which runs nothing itself).
    start_peer A --port 0 --slots 0
    local a url src1 src2
    a=$(mnt A)
    url=$(peer_field "$a" http)
    src1=$(src_dir big)
    make_job "$src1" 'echo no' "disk = 1000T"
    src2=$(src_dir sparc)
    make_job "$src2" 'echo no' "arch = sparc64"
    cp -r -- "$src1" "$a/jobs/big"
    cp -r -- "$src2" "$a/jobs/sparc"
    start_peer B --port 0 --slots 1 --peer "$url" --uid-base 64470
    wait_listed "$(mnt B)" big 20
    wait_listed "$(mnt B)" sparc 20
    wait_log B "job big: not volunteering: it wants [0-9]+ bytes of disk" 20
    wait_log B "job sparc: not volunteering: it wants arch sparc64" 20
    assert_eq 1 "$(status_field "$a" big waiting)" "big waiting on A"
    assert_eq 1 "$(status_field "$a" sparc waiting)" "sparc waiting on A"
    ! grep -q "leased to" "${PEER_LOG[A]}" || fail "A leased a task to a peer that cannot run it"
}

run_tests "$@"
