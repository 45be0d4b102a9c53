#!/usr/bin/env bash
# `preon get` (swarm/get.c), the plain transfer: a job's file, directory or whole tree from the
# swarm into a local path, every block verified, from all the given peers at once. The bytes must
# match the source; a wrong job id, a peer that sends corrupt blocks, and dead peers must give a
# clear error and exit 1 without leaving a file (or a temporary) behind; good peers next to bad
# or dead ones must carry the transfer.
. "$(dirname -- "$0")/lib.sh"

BS=$((256 * 1024)) # MANIFEST_BLOCK_SIZE

# publish_data M NAME MIB: publishes job NAME on the peer at M (task: true) with a random
# input.bin of MIB MiB plus 1234 bytes (a short last block), sub/a.txt and an empty sub/empty; waits
# until it is done and prints the source directory.
publish_data() {
    local m=$1 name=$2 mib=$3 src st
    src=$(src_dir "$name")
    make_job "$src" 'true'
    head -c $((mib * 1024 * 1024 + 1234)) /dev/urandom >"$src/input.bin"
    mkdir -p "$src/sub"
    echo "hello" >"$src/sub/a.txt"
    : >"$src/sub/empty"
    cp -r -- "$src" "$m/jobs/$name"
    st=$(wait_job "$m" "$name" 60)
    assert_eq "done" "$(field state <<<"$st")" "state of $name on its publisher"
    echo "$src"
}

# no_leftovers DIR: no temporary of preon get (".NAME.preon-get.XXXXXX") is left in DIR.
no_leftovers() {
    local left
    left=$(find "$1" -maxdepth 1 -name '.*.preon-get.*')
    [ -z "$left" ] || fail "temporaries left behind in $1: $left"
}

# get_fails WANT DEST ARGS...: preon get ARGS... must exit 1 with WANT in its stderr, and DEST
# must not exist afterwards.
get_fails() {
    local want=$1 dest=$2 rc=0 err
    shift 2
    err=$(timeout -k 5 120 "$PREON" get "$@" 2>&1 >/dev/null) || rc=$?
    [ "$rc" -eq 1 ] || fail "preon get $* exited $rc, want 1; stderr: $err"
    assert_contains "$err" "$want" "stderr of preon get $*"
    [ ! -e "$dest" ] || fail "$dest exists after a failed preon get"
    echo "$err"
}

# dead_url: the URL of a peer that was started and stopped (its port refuses connections).
dead_url() {
    start_peer Z --port 0
    local u
    u=$(peer_field "$(mnt Z)" http)
    stop_peer Z
    echo "$u"
}

t_get_file_dir_and_tree() {
    start_peer A --port 0
    local a ua src id out
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    src=$(publish_data "$a" data 3)
    id=$(status_field "$a" data id)
    out="$T_CASE/out"
    mkdir -p "$out"

    "$PREON" get --peer "$ua" "$id/input.bin" "$out/in.bin" || fail "preon get of input.bin failed"
    cmp -- "$src/input.bin" "$out/in.bin" || fail "input.bin differs from the source"
    # into an existing directory: DEST/<base name>, with the file's mode (run is executable)
    "$PREON" get --peer "$ua" "$id/run" "$out" || fail "preon get of run failed"
    cmp -- "$src/run" "$out/run" || fail "run differs"
    [ -x "$out/run" ] || fail "run lost its executable bit"
    # a file that exists is replaced, as cp does
    echo "old" >"$out/a.txt"
    "$PREON" get --peer "$ua" "$id/sub/a.txt" "$out/a.txt" || fail "preon get over an existing file failed"
    assert_file_eq "$out/a.txt" "hello"
    # a directory of the job (a trailing slash on the peer is fine), the empty file included
    "$PREON" get --peer "$ua/" "$id/sub/" "$out/sub" || fail "preon get of sub/ failed"
    assert_same_tree "$src/sub" "$out/sub"
    # the whole job, into an existing directory: DEST/<job name>
    mkdir "$out/all"
    "$PREON" get --peer "$ua" "$id" "$out/all" || fail "preon get of the whole job failed"
    assert_same_tree "$src" "$out/all/data"
    # a tree never lands on something that exists; a path outside the job is refused
    assert_fails_with "exists already" "$PREON" get --peer "$ua" "$id" "$out/all"
    get_fails "has no file or directory 'nope'" "$out/nope" --peer "$ua" "$id/nope" "$out/nope" >/dev/null
    no_leftovers "$out"
    no_leftovers "$out/all"
    # bad usage: exit 2
    local rc=0
    "$PREON" get --peer "$ua" "xyz/input.bin" "$out/x" 2>/dev/null || rc=$?
    assert_eq 2 "$rc" "exit status for a malformed job id"
    rc=0
    "$PREON" get "$id" "$out/x" 2>/dev/null || rc=$?
    assert_eq 2 "$rc" "exit status without --peer"
    stop_peer A
}

t_get_uses_every_peer() {
    start_peer A --port 0
    local a b ua ub src id a0 b0 da db
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    src=$(publish_data "$a" many 8)
    id=$(status_field "$a" many id)
    # B reads the file through its mount: its store then holds every block, verified.
    start_peer B --port 0 --peer "$ua"
    b=$(mnt B)
    ub=$(peer_field "$b" http)
    wait_listed "$b" many 20
    cmp -- "$src/input.bin" "$b/jobs/many/input.bin" || fail "input.bin differs on B"
    a0=$(peer_field "$a" blocks-served)
    b0=$(peer_field "$b" blocks-served)
    "$PREON" get --peer "$ua" --peer "$ub" "$id/input.bin" "$T_CASE/got" || fail "preon get from A and B failed"
    cmp -- "$src/input.bin" "$T_CASE/got" || fail "the copy differs from the source"
    da=$(($(peer_field "$a" blocks-served) - a0))
    db=$(($(peer_field "$b" blocks-served) - b0))
    echo "preon get: A served $da blocks, B served $db"
    [ "$da" -gt 0 ] && [ "$db" -gt 0 ] || fail "blocks came from one peer only (A $da, B $db)"
    [ $((da + db)) -ge 33 ] || fail "A and B served $((da + db)) blocks, the file has 33"
    stop_peer B
    stop_peer A
}

t_get_wrong_job_id() {
    start_peer A --port 0
    local a ua src id other err
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    src=$(publish_data "$a" real 1)
    id=$(status_field "$a" real id)
    other=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    mkdir -p "$T_CASE/out"
    err=$(get_fails "no peer gave the manifest of job $other" "$T_CASE/out/x" --peer "$ua" "$other/input.bin" "$T_CASE/out/x")
    assert_contains "$err" "does not have the job" "the reason given for $ua"
    no_leftovers "$T_CASE/out"
    # the right id still works (and the file is there only now)
    "$PREON" get --peer "$ua" "$id/input.bin" "$T_CASE/out/x" || fail "preon get with the right id failed"
    cmp -- "$src/input.bin" "$T_CASE/out/x" || fail "the copy differs from the source"
    stop_peer A
}

t_get_corrupt_peer() {
    start_peer A --port 0
    local a b ua ub src id file i err
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    src=$(publish_data "$a" bad 4)
    id=$(status_field "$a" bad id)
    start_peer B --port 0 --peer "$ua"
    b=$(mnt B)
    ub=$(peer_field "$b" http)
    wait_listed "$b" bad 20
    cmp -- "$src/input.bin" "$b/jobs/bad/input.bin" || fail "input.bin differs on B"
    # Damage every block of A's copy behind its back (A serves its inputs from data/inputs/<id>/;
    # its manifest stays right, so only the blocks are bad).
    file="$(data_dir A)/inputs/$id/input.bin"
    [ -f "$file" ] || fail "A's copy of the input is not at $file"
    for ((i = 0; i < 17; i++)); do
        printf 'XXXXXXXX' | dd of="$file" bs=1 seek=$((i * BS + 100)) conv=notrunc status=none
    done
    cmp -s -- "$src/input.bin" "$file" && fail "the damage did not change A's copy"
    mkdir -p "$T_CASE/out"
    # A alone: nothing good to be had
    err=$(get_fails "corrupt" "$T_CASE/out/x" --peer "$ua" "$id/input.bin" "$T_CASE/out/x")
    assert_match "$err" "peer $ua sent a bad block [0-9a-f]{64}" "preon get's warning"
    no_leftovers "$T_CASE/out"
    # A and B: B's good blocks carry it, A is reported
    err=$("$PREON" get --peer "$ua" --peer "$ub" "$id/input.bin" "$T_CASE/out/x" 2>&1) ||
        fail "preon get from a corrupt and a good peer failed: $err"
    cmp -- "$src/input.bin" "$T_CASE/out/x" || fail "the copy differs from the source"
    assert_match "$err" "peer $ua sent a bad block" "preon get's warning"
    stop_peer B
    stop_peer A
}

t_get_dead_peers() {
    start_peer A --port 0
    local a b ua ub src id dead err
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    src=$(publish_data "$a" gone 2)
    id=$(status_field "$a" gone id)
    # B knows the job (it serves its manifest) but holds none of its blocks.
    start_peer B --port 0 --peer "$ua"
    b=$(mnt B)
    ub=$(peer_field "$b" http)
    wait_listed "$b" gone 20
    dead=$(dead_url)
    mkdir -p "$T_CASE/out"
    err=$(get_fails "no peer gave the manifest" "$T_CASE/out/x" --peer "$dead" "$id/input.bin" "$T_CASE/out/x")
    assert_contains "$err" "$dead" "the reason names the dead peer"
    # a dead peer next to a good one: passed over
    "$PREON" get --peer "$dead" --peer "$ua" "$id/input.bin" "$T_CASE/out/x" || fail "preon get with a dead and a good peer failed"
    cmp -- "$src/input.bin" "$T_CASE/out/x" || fail "the copy differs from the source"
    rm -f "$T_CASE/out/x"
    # the manifest from B, but the only holder of the blocks is dead: an error, no file
    kill9_peer A
    err=$(get_fails "could not be had from any of 2 peers" "$T_CASE/out/x" --peer "$ub" --peer "$ua" "$id/input.bin" "$T_CASE/out/x")
    no_leftovers "$T_CASE/out"
    # and the whole job: no tree left behind either
    get_fails "could not be had" "$T_CASE/out/tree" --peer "$ub" --peer "$ua" "$id" "$T_CASE/out/tree" >/dev/null
    no_leftovers "$T_CASE/out"
    stop_peer B
}

run_tests "$@"
