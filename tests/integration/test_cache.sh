#!/usr/bin/env bash
# The block cache's quota (--cache): a peer that reads other peers' jobs one after another keeps its
# store under the quota by evicting the least recently used blocks, and every read stays correct,
# including a read of a job whose blocks were evicted (they are fetched again). `peer` shows the
# cache's size, quota, hits and evictions.
. "$(dirname -- "$0")/lib.sh"

QUOTA=$((8 * 1024 * 1024))

t_quota_holds_while_jobs_are_read_one_after_another() {
    start_peer A --port 0
    local a b url j st fetched
    a=$(mnt A)
    url=$(peer_field "$a" http)
    for j in c1 c2 c3; do # three jobs of 6 MB each: any two are over the quota
        make_job "$(src_dir "$j")" 'true'
        head -c 6000000 /dev/urandom >"$T_CASE/src/$j/input.bin"
        cp -r -- "$T_CASE/src/$j" "$a/jobs/$j"
        st=$(wait_job "$a" "$j" 30)
        assert_eq done "$(field state <<<"$st")" "state of $j on A"
    done
    start_peer B --port 0 --peer "$url" --cache 8M
    b=$(mnt B)
    assert_eq "$QUOTA" "$(peer_field "$b" cache-quota)" "B's cache-quota"
    for j in c1 c2 c3; do
        wait_listed "$b" "$j" 20
        cmp -- "$T_CASE/src/$j/input.bin" "$b/jobs/$j/input.bin" || fail "$j/input.bin differs on B"
        # What was read more than the grace period ago goes; the store ends under the quota.
        wait_until 30 "[ \"\$(peer_field '$b' cache-bytes)\" -le $QUOTA ]" "B's cache back under its quota after $j"
    done
    [ "$(peer_field "$b" cache-evictions)" -gt 0 ] || fail "B evicted nothing"
    [ "$(peer_field "$b" cache-hits)" -ge 0 ] || fail "no cache-hits line"
    # c1's blocks went first (the least recently used): reading it again fetches them again, right.
    fetched=$(peer_field "$b" bytes-fetched)
    sync
    echo 1 >/proc/sys/vm/drop_caches # the kernel's page cache would answer the read without the peer
    cmp -- "$T_CASE/src/c1/input.bin" "$b/jobs/c1/input.bin" || fail "c1/input.bin differs on B after eviction"
    [ "$(peer_field "$b" bytes-fetched)" -gt "$fetched" ] || fail "c1 was read again without fetching"
    wait_until 30 "[ \"\$(peer_field '$b' cache-bytes)\" -le $QUOTA ]" "B's cache back under its quota after c1 again"
    # And the quota survives a restart: the store is what its files say.
    stop_peer B
    start_peer B --port 0 --peer "$url" --cache 8M
    [ "$(peer_field "$b" cache-bytes)" -le "$QUOTA" ] || fail "B's cache over its quota after a restart"
    wait_listed "$b" c3 20
    cmp -- "$T_CASE/src/c3/input.bin" "$b/jobs/c3/input.bin" || fail "c3/input.bin differs on B after a restart"
}

run_tests "$@"
