#!/usr/bin/env bash
# Two peers: a job published on A appears in B's jobs/ (discovered through A's peer API), and its
# files read on B through the mount are fetched block by block from A, verified, and byte-identical.
. "$(dirname -- "$0")/lib.sh"

t_remote_job_is_listed_and_read_lazily() {
    start_peer A --port 0
    local a b url src st
    a=$(mnt A)
    url=$(peer_field "$a" http)
    src=$(src_dir big)
    make_job "$src" 'true'
    head -c 3000000 /dev/urandom >"$src/input.bin"
    mkdir -p "$src/sub"
    echo small >"$src/sub/note.txt"
    cp -r -- "$src" "$a/jobs/big"
    st=$(wait_job "$a" big 30)
    assert_eq done "$(field state <<<"$st")" "state on A"

    start_peer B --port 0 --peer "$url"
    b=$(mnt B)
    wait_listed "$b" big 20
    assert_contains "$(timeout 10 cat -- "$b/status/big")" "origin: remote" "status on B"
    # A slice in the middle first: only its blocks (plus read-ahead) move.
    dd if="$b/jobs/big/input.bin" bs=4096 skip=300 count=2 status=none >"$T_CASE/slice" || fail "slice read on B"
    dd if="$src/input.bin" bs=4096 skip=300 count=2 status=none | cmp - "$T_CASE/slice" || fail "slice differs"
    cmp -- "$src/input.bin" "$b/jobs/big/input.bin" || fail "input.bin differs on B"
    assert_file_eq "$b/jobs/big/sub/note.txt" small
    [ "$(peer_field "$a" blocks-served)" -ge 12 ] || fail "A served fewer blocks than the file has"
    # B refuses to change or cancel a job it did not publish.
    if rm -f -- "$b/jobs/big/run" 2>/dev/null; then fail "B removed a file of A's job"; fi
}

t_same_name_on_both_peers_gets_a_suffix() {
    start_peer A --port 0
    local a b url src
    a=$(mnt A)
    url=$(peer_field "$a" http)
    src=$(src_dir mandel)
    make_job "$src" 'echo A'
    cp -r -- "$src" "$a/jobs/mandel"
    wait_job "$a" mandel 30 >/dev/null
    # B publishes its own mandel before it knows A (then restarts into the pool).
    start_peer B --port 0
    b=$(mnt B)
    make_job "$src" 'echo B'
    cp -r -- "$src" "$b/jobs/mandel"
    wait_job "$b" mandel 30 >/dev/null
    stop_peer B
    start_peer B --port 0 --peer "$url"
    local id
    id=$(status_field "$a" mandel id)
    wait_listed "$b" "mandel@${id:0:8}" 20
    assert_contains "$(cat -- "$b/jobs/mandel@${id:0:8}/run")" "echo A" "A's job on B"
    assert_contains "$(cat -- "$b/jobs/mandel/run")" "echo B" "B's own job keeps its name"
}

t_pool_found_through_the_tracker() {
    # A's embedded tracker is the pool's tracker: B only knows its URL, not A's.
    start_peer A --port 0 --pool lab
    local a b url src
    a=$(mnt A)
    url=$(peer_field "$a" http)
    src=$(src_dir viatracker)
    make_job "$src" 'true'
    head -c 500000 /dev/urandom >"$src/data.bin"
    cp -r -- "$src" "$a/jobs/viatracker"
    wait_job "$a" viatracker 30 >/dev/null
    start_peer B --port 0 --pool lab --tracker "$url/announce"
    b=$(mnt B)
    wait_listed "$b" viatracker 20
    cmp -- "$src/data.bin" "$b/jobs/viatracker/data.bin" || fail "data.bin differs on B"
    [ "$(peer_field "$b" pool-peers)" -ge 1 ] || fail "B has no pool peer"
}

# A submitter that embeds the pool's tracker, killed -9 and restarted on its port while its
# volunteer keeps running, is back in the pool within seconds (issue 11, item 2): it greets the
# pool peers it remembers (DATA/peers) instead of waiting for their next announce (30 min).
t_a_restarted_submitter_rejoins_its_running_volunteer() {
    start_peer A --port 0 --slots 0
    local a ua port st end
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    port=${ua##*:}
    start_peer B --port 0 --slots 1 --tracker "$ua/announce"
    end=$((SECONDS + 20))
    until [ "$(peer_field "$a" pool-peers)" = 1 ]; do # B announced, A learnt it
        [ "$SECONDS" -le "$end" ] || fail "A never learnt of B"
        sleep 0.1
    done
    end=$((SECONDS + 10))
    until grep -q '^http://' "$(data_dir A)/peers" 2>/dev/null; do # remembered (written within a second)
        [ "$SECONDS" -le "$end" ] || fail "A never wrote its pool peers to DATA/peers"
        sleep 0.1
    done
    kill9_peer A
    start_peer A --port "$port" --slots 0
    wait_log A "1 pool peers remembered from .*/peers: greeting them" 5
    end=$((SECONDS + 10))
    until [ "$(peer_field "$a" pool-peers)" = 1 ]; do
        [ "$SECONDS" -le "$end" ] || fail "the restarted A has no pool peer after 10 s"
        sleep 0.1
    done
    # a job B publishes now reaches A, and a job A publishes runs on B
    publish_job "$(mnt B)" fromb 'echo b' "tasks = 1"
    wait_listed "$a" fromb 15
    publish_job "$a" froma 'echo a' "tasks = 1"
    st=$(wait_job "$a" froma 30)
    assert_eq done "$(field state <<<"$st")" "a job of the restarted submitter, run on B"
    assert_file_eq "$a/results/froma/0/stdout" a
}

t_a_vanished_pool_peer_is_dropped() {
    # B joins A's pool through A's tracker, then dies without a word (kill -9): A stops asking it
    # for jobs after 10 s of silence and says so. A peer named with --peer is never dropped.
    start_peer A --port 0 --pool gone
    local a url end n
    a=$(mnt A)
    url=$(peer_field "$a" http)
    start_peer B --port 0 --pool gone --tracker "$url/announce"
    start_peer C --port 0 --pool gone --peer "$url"
    end=$((SECONDS + 20))
    until [ "$(peer_field "$a" pool-peers)" = 2 ] || [ "$SECONDS" -gt "$end" ]; do sleep 0.1; done
    assert_eq 2 "$(peer_field "$a" pool-peers)" "A's pool peers with B and C"
    [ "$(peer_field "$(mnt C)" pool-peers)" -ge 1 ] || fail "C has no pool peer"
    kill9_peer B
    end=$((SECONDS + 30))
    until [ "$(peer_field "$a" pool-peers)" = 1 ] || [ "$SECONDS" -gt "$end" ]; do sleep 0.2; done
    assert_eq 1 "$(peer_field "$a" pool-peers)" "A's pool peers after B vanished"
    grep -q "dropped: no answer" "${PEER_LOG[A]}" || fail "A's log does not say B was dropped"
    n=$(peer_field "$(mnt C)" pool-peers)
    [ "$n" -ge 1 ] || fail "C dropped A, which it was given with --peer"
}

run_tests "$@"
