#!/usr/bin/env bash
# Reads of a remote job's files across several peers (issue 3): blocks come from every peer that
# holds them, a peer that sends bad bytes is detected and passed over, a dead or silent peer turns
# a read into EIO within a bounded time (and the rest of the mount keeps answering), and a read over
# a link shaped with tc (peer A in its own network namespace) takes at least the time the rate
# implies and still returns the right bytes.
. "$(dirname -- "$0")/lib.sh"

BS=$((256 * 1024)) # MANIFEST_BLOCK_SIZE: the tests reason in blocks

# wait_holders M NAME N SECS: bounded poll until status/NAME says at least N peers hold the job
# ("origin: remote (N peers hold it; ...)"): a peer is added to a job when a discovery round sees
# the job in its /v1/jobs, and there is no event for that.
wait_holders() {
    local m=$1 name=$2 want=$3 end=$((SECONDS + $4)) st="" n=0
    while [ "$SECONDS" -le "$end" ]; do
        st=$(timeout 10 cat -- "$m/status/$name" 2>/dev/null || true)
        n=$(sed -n 's/^origin: remote (\([0-9]*\) peers\{0,1\} hold.*/\1/p' <<<"$st" | head -n 1)
        [ -n "$n" ] && [ "$n" -ge "$want" ] && return 0
        sleep 0.1
    done
    fail "status/$name never said $want peers hold it within $4s; last:"$'\n'"$st"
}

# flip_bytes FILE OFFSET COUNT: inverts COUNT bytes at OFFSET in place (so they surely differ).
flip_bytes() {
    local f=$1 off=$2 n=$3
    dd if="$f" bs=1 skip="$off" count="$n" status=none | perl -0777 -pe '$_ ^= "\xff" x length' |
        dd of="$f" bs=1 seek="$off" count="$n" conv=notrunc status=none
}

t_file_held_by_three_read_on_a_fourth() {
    start_peer A --port 0
    local a b c d ua ub uc src served_b0 served_c0 served_b1 served_c1
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    src=$(publish_random "$a" four 4)

    start_peer B --port 0 --peer "$ua"
    start_peer C --port 0 --peer "$ua"
    b=$(mnt B)
    c=$(mnt C)
    wait_listed "$b" four 20
    wait_listed "$c" four 20
    cmp -- "$src/input.bin" "$b/jobs/four/input.bin" || fail "input.bin differs on B"
    cmp -- "$src/input.bin" "$c/jobs/four/input.bin" || fail "input.bin differs on C"
    # Every block is now in B's and C's stores (each was verified on the way in).
    [ "$(peer_field "$b" blocks)" -ge 16 ] || fail "B holds $(peer_field "$b" blocks) blocks, want >= 16"
    [ "$(peer_field "$c" blocks)" -ge 16 ] || fail "C holds $(peer_field "$c" blocks) blocks, want >= 16"
    served_b0=$(peer_field "$b" blocks-served)
    served_c0=$(peer_field "$c" blocks-served)

    ub=$(peer_field "$b" http)
    uc=$(peer_field "$c" http)
    start_peer D --port 0 --peer "$ua" --peer "$ub" --peer "$uc"
    d=$(mnt D)
    wait_listed "$d" four 20
    wait_holders "$d" four 3 20
    cmp -- "$src/input.bin" "$d/jobs/four/input.bin" || fail "input.bin differs on D"

    served_b1=$(peer_field "$b" blocks-served)
    served_c1=$(peer_field "$c" blocks-served)
    local from_bc=$((served_b1 - served_b0 + served_c1 - served_c0))
    echo "D's read: B served $((served_b1 - served_b0)), C served $((served_c1 - served_c0)) blocks"
    [ "$from_bc" -gt 0 ] || fail "D fetched every block from A: B and C served none (the swarm is not used)"
    stop_peer D; stop_peer C; stop_peer B; stop_peer A # each must exit 0 (and clean under ASan)
}

t_corrupt_peer_is_detected_and_avoided() {
    start_peer A --port 0
    local a b c ua src id file nblocks i
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    src=$(publish_random "$a" bad 4)
    nblocks=16

    start_peer B --port 0 --peer "$ua"
    b=$(mnt B)
    wait_listed "$b" bad 20
    cmp -- "$src/input.bin" "$b/jobs/bad/input.bin" || fail "input.bin differs on B"

    # A serves its published inputs from data/inputs/<id>/: damage the middle of every block of
    # its copy behind its back, so whatever block C asks A for is bad (which block goes to which
    # peer is the fetcher's choice; this way A is caught whichever it picks).
    id=$(status_field "$a" bad id)
    file="$(data_dir A)/inputs/$id/input.bin"
    [ -f "$file" ] || fail "A's copy of the input is not at $file"
    for ((i = 0; i < nblocks; i++)); do
        flip_bytes "$file" $((i * BS + BS / 2)) 64
    done
    if cmp -s -- "$src/input.bin" "$file"; then fail "the corruption did not change A's copy"; fi
    local served_a0 served_b0
    served_a0=$(peer_field "$a" blocks-served)
    served_b0=$(peer_field "$b" blocks-served)

    start_peer C --port 0 --peer "$ua" --peer "$(peer_field "$b" http)"
    c=$(mnt C)
    wait_listed "$c" bad 20
    wait_holders "$c" bad 2 20
    cmp -- "$src/input.bin" "$c/jobs/bad/input.bin" || fail "C read bytes that differ from the original"

    local log bad_lines served_a served_b
    log=$(cat -- "${PEER_LOG[C]}")
    # swarm/fetch.c logs at WARN: "fetch: peer <url> sent a bad block <hex> (SHA-256 mismatch)".
    assert_match "$log" "peer $ua sent a bad block [0-9a-f]{64}" "C's log"
    bad_lines=$(grep -c "peer $ua sent a bad block" <<<"$log" || true)
    served_a=$(($(peer_field "$a" blocks-served) - served_a0))
    served_b=$(($(peer_field "$b" blocks-served) - served_b0))
    echo "C's read: A served $served_a (bad: $bad_lines), B served $served_b"
    # Avoided: after its first bad block A is tried only when no one else is left, so only the
    # transfers already in flight to it when the first one failed can come back bad.
    [ "$bad_lines" -lt $((nblocks / 2)) ] || fail "A sent $bad_lines bad blocks of $nblocks: it was not avoided"
    [ "$served_b" -ge $((nblocks - bad_lines)) ] ||
        fail "B served $served_b blocks; C needed $((nblocks - bad_lines)) good ones from it"
    stop_peer C; stop_peer B; stop_peer A
}

# read_must_fail_soon FILE OFFSET_BLOCKS SECS: a read of one block there must fail with an I/O
# error (not time out) within SECS; prints the elapsed seconds.
read_must_fail_soon() {
    local f=$1 blk=$2 secs=$3 rc=0 err t0
    t0=$EPOCHREALTIME
    err=$(timeout -k 5 "$secs" dd if="$f" of=/dev/null bs=$BS skip="$blk" count=1 status=none 2>&1) || rc=$?
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then fail "reading block $blk of $f hung for ${secs}s (no EIO)"; fi
    [ "$rc" -ne 0 ] || fail "reading block $blk of $f succeeded, but no peer holds it"
    assert_contains "$err" "Input/output error" "the failed read's error"
    awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f\n", b - a }'
}

# mount_answers M NAME: ls and stat of the mount answer within 5 s (nothing waits on the read).
mount_answers() {
    timeout 5 ls -- "$1/jobs" >/dev/null || fail "ls $1/jobs did not answer within 5 s"
    timeout 5 stat -- "$1/jobs/$2/input.bin" >/dev/null || fail "stat of $2/input.bin did not answer within 5 s"
    timeout 5 cat -- "$1/status/$2" >/dev/null || fail "status/$2 did not answer within 5 s"
}

t_unreachable_peer_gives_eio_not_a_hang() {
    start_peer A --port 0
    local a b ua src el
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    src=$(publish_random "$a" gone 4)
    start_peer B --port 0 --peer "$ua"
    b=$(mnt B)
    wait_listed "$b" gone 20
    # Only the first block (and its read-ahead) is fetched while A is alive.
    dd if="$b/jobs/gone/input.bin" bs=4096 count=1 status=none | cmp -n 4096 - "$src/input.bin" ||
        fail "first page differs on B"
    kill9_peer A
    # The last block is far past the read-ahead: not held by B, and its only holder is gone.
    el=$(read_must_fail_soon "$b/jobs/gone/input.bin" 15 60)
    echo "read of a block held only by a dead peer failed after ${el}s"
    mount_answers "$b" gone
    # And a plain cat of the whole file: an error, not a hang and not a short file.
    local rc=0 err
    err=$(timeout -k 5 60 cat -- "$b/jobs/gone/input.bin" 2>&1 >/dev/null) || rc=$?
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then fail "cat of the file hung for 60 s"; fi
    [ "$rc" -ne 0 ] || fail "cat of the file succeeded with its only holder dead"
    assert_contains "$err" "Input/output error" "cat's error"
    assert_match "$(cat -- "${PEER_LOG[B]}")" "block [0-9a-f]{64} could not be fetched" "B's log"
    # What B fetched before A died is still served from its store.
    dd if="$b/jobs/gone/input.bin" bs=4096 count=1 status=none | cmp -n 4096 - "$src/input.bin" ||
        fail "first page differs on B after A died"
    stop_peer B
}

# A peer that accepts connections but never answers (stopped, or a wedged volunteer): the fetch
# time-out, not the kernel, has to end the read, and the mount must keep answering meanwhile.
t_silent_peer_gives_eio_not_a_hang() {
    start_peer A --port 0
    local a b ua src pid_a bg rc=0 el
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    src=$(publish_random "$a" silent 4)
    start_peer B --port 0 --peer "$ua"
    b=$(mnt B)
    wait_listed "$b" silent 20
    pid_a=$(peer_pid A)
    kill -STOP "$pid_a"
    on_cleanup "kill -CONT $pid_a"
    read_must_fail_soon "$b/jobs/silent/input.bin" 15 60 >"$T_CASE/elapsed" 2>"$T_CASE/err" &
    bg=$!
    # While that read is parked (it takes the fetch time-out to fail), the rest of B's mount answers.
    mount_answers "$b" silent
    kill -0 "$bg" 2>/dev/null || fail "the read was over before the mount was asked: $(cat -- "$T_CASE/err")"
    wait "$bg" || rc=$?
    [ "$rc" -eq 0 ] || fail "$(cat -- "$T_CASE/err")"
    el=$(cat -- "$T_CASE/elapsed")
    echo "read of a block held only by a silent peer failed after ${el}s"
    mount_answers "$b" silent
    kill -CONT "$pid_a"
    # A answers again: the same read now succeeds (a failed block is not remembered as lost).
    dd if="$src/input.bin" bs=$BS skip=15 count=1 status=none >"$T_CASE/want"
    dd if="$b/jobs/silent/input.bin" bs=$BS skip=15 count=1 status=none | cmp - "$T_CASE/want" ||
        fail "block 15 differs after A resumed"
    stop_peer B; stop_peer A
}

# Every parked read has an absolute deadline (issue 8, item 7): with --read-deadline-ms 1000, a read
# of a block only a silent (stopped) peer holds fails with EIO after about a second, well before the
# fetcher's own time-outs would end it (the test above: about 20 s), and the log says why.
t_a_parked_read_fails_at_its_deadline() {
    start_peer A --port 0
    local a b ua pid_a el
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    publish_random "$a" late 4 >/dev/null
    start_peer B --port 0 --peer "$ua" --read-deadline-ms 1000
    b=$(mnt B)
    wait_listed "$b" late 20
    pid_a=$(peer_pid A)
    kill -STOP "$pid_a"
    on_cleanup "kill -CONT $pid_a"
    el=$(read_must_fail_soon "$b/jobs/late/input.bin" 15 10)
    awk -v e="$el" 'BEGIN { exit !(e < 5) }' || fail "the read failed after ${el}s, not at its 1 s deadline"
    wait_log B "a read of input.bin waited 1000 ms for its blocks: answered EIO" 5
    mount_answers "$b" late
    kill -CONT "$pid_a"
    stop_peer B; stop_peer A
}

# --- a tc-shaped link: peer A in its own network namespace -----------------------------------------

# start_peer_ns NAME NETNS [preon mount options...]: start_peer, but the peer runs in network
# namespace NETNS (nsenter --net, so its FUSE mount stays visible here: `ip netns exec` would also
# give it a private mount namespace). nsenter without --fork execs preon itself: $! is the peer's PID.
start_peer_ns() {
    local name=$1 ns=$2
    shift 2
    PEER_WRAP="nsenter --net=/run/netns/$ns" start_peer "$name" "$@"
}

# A veth pair: one end (198.18.0.2/30) in a fresh namespace, the other (198.18.0.1/30) here. A /30
# keeps the route narrow: nothing else of 198.18.0.0/24 is claimed, and no packet for it can leave
# through the default route. Sets NS, VETH_OUT, VETH_IN; cleanup removes both.
make_link() {
    local tag=$1
    NS="preon-t$tag"
    VETH_OUT="pt${tag}o"
    VETH_IN="pt${tag}i"
    [ ! -e "/run/netns/$NS" ] || fail "network namespace $NS exists already"
    # Nobody else may hold these addresses or a route for them (another test running at once).
    local held
    held="$(ip -4 addr show to 198.18.0.0/30)$(ip -4 route show 198.18.0.0/30)"
    [ -z "$held" ] || fail "198.18.0.0/30 is in use here already:"$'\n'"$held"
    on_cleanup "ip link del $VETH_OUT"
    on_cleanup "ip netns del $NS"
    ip netns add "$NS"
    ip link add "$VETH_OUT" type veth peer name "$VETH_IN"
    ip link set "$VETH_IN" netns "$NS"
    ip addr add 198.18.0.1/30 dev "$VETH_OUT"
    ip link set "$VETH_OUT" up
    ip -n "$NS" addr add 198.18.0.2/30 dev "$VETH_IN"
    ip -n "$NS" link set "$VETH_IN" up
    ip -n "$NS" link set lo up
    local route
    route=$(ip route get 198.18.0.2)
    assert_contains "$route" "dev $VETH_OUT" "ip route get 198.18.0.2"
}

t_tc_shaped_link() {
    local mib=8 rate_mbit=50
    make_link "$BASHPID"
    # The seeder's side sends: its egress is what the token bucket shapes.
    ip netns exec "$NS" tc qdisc add dev "$VETH_IN" root tbf rate ${rate_mbit}mbit burst 32kbit latency 50ms
    assert_contains "$(ip netns exec "$NS" tc qdisc show dev "$VETH_IN")" "tbf" "qdisc on $VETH_IN"

    start_peer_ns A "$NS" --listen 198.18.0.2 --port 7650
    local a b src t0 el min
    a=$(mnt A)
    assert_eq "http://198.18.0.2:7650" "$(peer_field "$a" http)" "A's URL"
    src=$(publish_random "$a" shaped "$mib")

    start_peer B --listen 198.18.0.1 --port 0 --peer http://198.18.0.2:7650
    b=$(mnt B)
    wait_listed "$b" shaped 20
    t0=$EPOCHREALTIME
    cmp -- "$src/input.bin" "$b/jobs/shaped/input.bin" || fail "input.bin differs on B"
    el=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
    # 8 MiB at 50 Mbit/s is 1.34 s on the wire; allow 30% for the bucket's burst and rounding.
    min=$(awk -v m="$mib" -v r="$rate_mbit" 'BEGIN { printf "%.2f", 0.7 * m * 1048576 * 8 / (r * 1e6) }')
    echo "B read $mib MiB over a ${rate_mbit} Mbit/s link in ${el}s (the rate alone implies >= ${min}s)"
    awk -v e="$el" -v m="$min" 'BEGIN { exit !(e >= m) }' ||
        fail "B read $mib MiB in ${el}s, faster than the ${rate_mbit} Mbit/s shaping allows (${min}s): the link was not used or not shaped"
    [ "$(peer_field "$a" blocks-served)" -ge $((mib * 4)) ] || fail "A served fewer blocks than the file has"
    # The bytes went over the veth, not over some other path.
    local tx
    tx=$(ip netns exec "$NS" cat "/sys/class/net/$VETH_IN/statistics/tx_bytes")
    [ "$tx" -ge $((mib * 1048576)) ] || fail "only $tx bytes left A's end of the link"
    stop_peer B; stop_peer A
}

run_tests "$@"
