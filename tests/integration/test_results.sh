#!/usr/bin/env bash
# Results on every peer (issue 3, "every peer's results/ lists their results, readable from any
# peer, fetched lazily"): a job published on A runs on A, B and C; D, which runs nothing, shows the
# job's state and counts as A reports them, wakes wait/ when A's job is over and every result is
# mirrored, lists results/<job>/<task>/ and reads each file lazily, verified, byte for byte as A has it.
# shellcheck disable=SC2016 # job scripts are single-quoted on purpose: they expand in the task
. "$(dirname -- "$0")/lib.sh"

t_results_are_readable_on_every_peer() {
    start_peer A --port 0 --slots 1
    local a b c d url src st i
    a=$(mnt A)
    url=$(peer_field "$a" http)
    start_peer B --port 0 --slots 1 --peer "$url" --uid-base 64500
    start_peer C --port 0 --slots 1 --peer "$url" --uid-base 64510
    start_peer D --port 0 --slots 0 --peer "$url"
    b=$(mnt B)
    c=$(mnt C)
    d=$(mnt D)
    src=$(src_dir res)
    # big.bin: 600000 bytes (three blocks) that differ per task; task 5 fails with exit 3.
    make_job "$src" 'sleep 0.3; echo "task $PREON_TASK"; head -c 600000 /job/data.bin | tr "\000" "$PREON_TASK" > big.bin
[ "$PREON_TASK" = 5 ] && { echo "five fails" >&2; exit 3; }
echo ok > out.txt' "tasks = 6"
    head -c 700000 /dev/urandom >"$src/data.bin"
    cp -r -- "$src" "$a/jobs/res"
    st=$(wait_job "$a" res 90)
    assert_eq failed "$(field state <<<"$st")" "state on A"
    wait_listed "$d" res 20
    st=$(wait_job "$d" res 60) # over on D only once A's results are all mirrored there
    assert_eq failed "$(field state <<<"$st")" "state on D"
    assert_eq 5 "$(field succeeded <<<"$st")" "succeeded on D"
    assert_eq 1 "$(field failed <<<"$st")" "failed on D"
    assert_eq 6 "$(field results-here <<<"$st")" "results mirrored on D"
    assert_eq "0 1 2 3 4 5" "$(ls "$d/results/res" | sort -n | tr '\n' ' ' | sed 's/ $//')" "results/res on D"
    for i in 0 1 2 3 4 5; do
        for f in stdout stderr exit_code big.bin; do
            cmp -- "$a/results/res/$i/$f" "$d/results/res/$i/$f" || fail "task $i: $f differs on D"
        done
    done
    assert_file_eq "$d/results/res/5/exit_code" 3
    assert_file_eq "$d/results/res/5/stderr" "five fails"
    assert_file_eq "$d/results/res/2/out.txt" ok
    [ "$(peer_field "$d" blocks-fetched)" -gt 0 ] || fail "D fetched no blocks"
    # Once B mirrors the results, the copies it kept of those it ran are gone (A has them).
    st=$(wait_job "$b" res 60)
    grep -q "done here" "${PEER_LOG[B]}" || fail "B ran none of the tasks"
    local id left end=$((SECONDS + 10))
    id=$(status_field "$a" res id)
    while :; do # removed in B's thread pool once mirrored: bounded poll
        left=$(ls -A "$(data_dir B)/results/$id" 2>/dev/null | grep -v '^\.' || true)
        [ -z "$left" ] || [ "$SECONDS" -gt "$end" ] && break
        sleep 0.05
    done
    assert_eq "" "$left" "results B still keeps after A has them"
    # A volunteer sees the same results as everyone (not its own work area).
    cmp -- "$a/results/res/4/big.bin" "$b/results/res/4/big.bin" || fail "big.bin differs on B"
    cmp -- "$a/results/res/1/stdout" "$c/results/res/1/stdout" || fail "stdout differs on C"
    # Mirrored results are read-only.
    expect_erofs touch "$d/results/res/0/new"
    expect_erofs rm -f "$d/results/res/0/out.txt"
}

t_a_tampered_result_is_not_served() {
    # A result file changed on the submitter's disk after it was hashed is never handed out:
    # the block is refused at A (its hash no longer matches) and the read on D fails with EIO.
    start_peer A --port 0 --slots 1
    local a d url src st dd
    a=$(mnt A)
    url=$(peer_field "$a" http)
    start_peer D --port 0 --slots 0 --peer "$url"
    d=$(mnt D)
    src=$(src_dir tam)
    make_job "$src" 'echo original' "tasks = 1"
    cp -r -- "$src" "$a/jobs/tam"
    st=$(wait_job "$a" tam 60)
    assert_eq done "$(field state <<<"$st")" "state on A"
    wait_listed "$d" tam 20
    st=$(wait_job "$d" tam 60)
    dd=$(data_dir A)
    printf 'tampered\n' >"$(ls -d "$dd"/results/*/0)/stdout"
    assert_fails_with "Input/output error" cat -- "$d/results/tam/0/stdout"
    grep -q "changed since it was hashed" "${PEER_LOG[A]}" || fail "A's log does not say why"
}

t_a_job_its_submitter_replaces_is_replaced_everywhere() {
    # A cancels job x (rm -r) and publishes a new x: A forgets the old one, and so does D, whose
    # jobs/x and results/x become the new job's (not x@<hash> beside a stale x).
    start_peer A --port 0 --slots 1
    local a d url src st old new
    a=$(mnt A)
    url=$(peer_field "$a" http)
    start_peer D --port 0 --slots 0 --peer "$url"
    d=$(mnt D)
    src=$(src_dir x)
    make_job "$src" 'echo first'
    cp -r -- "$src" "$a/jobs/x"
    st=$(wait_job "$a" x 60)
    old=$(field id <<<"$st")
    wait_listed "$d" x 20
    st=$(wait_job "$d" x 60)
    assert_eq "$old" "$(field id <<<"$st")" "D's x"
    rm -r -- "$a/jobs/x"
    make_job "$src" 'echo second'
    cp -r -- "$src" "$a/jobs/x"
    st=$(wait_job "$a" x 60)
    new=$(field id <<<"$st")
    [ "$new" != "$old" ] || fail "the new x has the old id"
    local end=$((SECONDS + 20))
    until [ "$(status_field "$d" x id 2>/dev/null)" = "$new" ] || [ "$SECONDS" -gt "$end" ]; do sleep 0.1; done
    assert_eq "$new" "$(status_field "$d" x id)" "D's x after A replaced it"
    st=$(wait_job "$d" x 60)
    assert_file_eq "$d/results/x/0/stdout" second
    assert_eq "" "$(ls "$d/jobs" | grep '^x@' || true)" "a stale x@ beside x on D"
    grep -q "no longer lists it" "${PEER_LOG[D]}" || fail "D's log does not say why the old x went"
}

# What a peer mirrors of other peers' results is capped (--max-mirror, POOL_MAX_MIRROR_BYTES by
# default; issue 8, item 7): past it results are not mirrored (logged once) and stay readable at
# their submitter; the job itself is still shown.
t_mirrored_results_are_capped() {
    start_peer A --port 0 --slots 2
    local a d st
    a=$(mnt A)
    start_peer D --port 0 --slots 0 --peer "$(peer_field "$a" http)" --max-mirror 1
    d=$(mnt D)
    local src
    src=$(src_dir capped)
    make_job "$src" 'echo "task $PREON_TASK"' "tasks = 3"
    cp -r -- "$src" "$a/jobs/capped"
    st=$(wait_job "$a" capped 60)
    assert_eq done "$(field state <<<"$st")" "state on A"
    wait_listed "$d" capped 20
    wait_log D "results of other peers' jobs are no longer mirrored here: 0 bytes .* \(--max-mirror 1\)" 20
    assert_eq 0 "$(status_field "$d" capped results-here)" "results mirrored on D"
    [ -z "$(ls "$d/results/capped" 2>/dev/null)" ] || fail "D mirrored results past its cap: $(ls "$d/results/capped")"
    assert_file_eq "$a/results/capped/2/stdout" "task 2"
}

run_tests "$@"
