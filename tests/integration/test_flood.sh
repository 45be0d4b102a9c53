#!/usr/bin/env bash
# Slow and flooding peers (issue 11, item 5; docs/reliability.md, "Slow and flooding peers"): each
# attack is cut off by its named limit and counted in the `peer` file, its log lines come at most
# once a second, and while it runs a real peer keeps serving: a lazy read through another peer's
# mount, whose blocks come from the attacked peer, returns the right bytes.
#
# The attackers are tests/integration/flood.pl (perl: in every Debian system): slowloris, a flood of
# connections from one host, and a proxy in front of a real peer that never answers, or trickles at
# 1 byte/s, the block requests it is given. Oversized requests are sent with curl.
. "$(dirname -- "$0")/lib.sh"

FLOOD=$(dirname -- "$(readlink -f -- "$0")")/flood.pl

# port_of URL: the port of http://HOST:PORT.
port_of() { echo "${1##*:}"; }

# counter M KEY: a number from M's peer file.
counter() {
    local v
    v=$(peer_field "$1" "$2")
    [ -n "$v" ] || fail "no '$2:' line in $1/peer"
    echo "$v"
}

# read_ok M NAME SRC WHAT: a lazy read of NAME/input.bin through M returns SRC's bytes (60 s at most).
read_ok() {
    timeout 60 cmp -- "$3/input.bin" "$1/jobs/$2/input.bin" || fail "the read through $1 failed $4"
}

# log_lines_at_most_once_a_second FILE PATTERN SECS: FILE has at most SECS + 1 lines matching
# PATTERN (a flood gets one line a second, not one per event).
log_lines_at_most_once_a_second() {
    local n
    n=$(grep -c -- "$2" "$1" || true)
    [ "$n" -ge 1 ] || fail "no log line '$2' in $1"
    [ "$n" -le $(($3 + 1)) ] || fail "$n log lines '$2' in ${3}s: more than one a second"
}

# Slowloris: connections that send a header byte a second never finish a request; each is cut at
# the request time-out (--request-timeout 3), however steadily it sends, and counted.
t_slowloris_is_cut_by_the_request_timeout() {
    start_peer A --port 0 --request-timeout 3
    local a d ua src out bg t0 el
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    src=$(publish_random "$a" slow 4)
    start_peer D --port 0 --peer "$ua"
    d=$(mnt D)
    wait_listed "$d" slow 20
    out="$T_CASE/slowloris"
    t0=$SECONDS
    perl "$FLOOD" slowloris "$(port_of "$ua")" 40 30 >"$out" 2>&1 &
    bg=$!
    on_cleanup "kill $bg 2>/dev/null || true"
    wait_until 10 '[ "$(counter "$a" connections-open)" -ge 40 ]' "A holds the 40 slow connections"
    # while they are held, D's lazy read of A's job (every block from A) is served
    read_ok "$d" slow "$src" "while 40 slowloris connections were open on A"
    kill -0 "$bg" 2>/dev/null || fail "the attack was over before the read: $(cat -- "$out")"
    wait "$bg" || fail "the slowloris attacker failed: $(cat -- "$out")"
    el=$((SECONDS - t0))
    echo "A under slowloris: $(cat -- "$out")"
    assert_match "$(cat -- "$out")" "^cut 40 of 40" "the attacker's count"
    local last
    last=$(sed -n 's/.*the last after \([0-9]*\)\..*/\1/p' "$out")
    [ "$last" -ge 2 ] && [ "$last" -le 8 ] || fail "the slow connections were cut after ${last}s, not about 3 s"
    [ "$(counter "$a" connections-timed-out)" -ge 40 ] || fail "connections-timed-out: $(counter "$a" connections-timed-out)"
    log_lines_at_most_once_a_second "${PEER_LOG[A]}" "whose request did not arrive whole" "$el"
    stop_peer D; stop_peer A
}

# 300 connections at once from one host (127.0.0.2: every loopback address is this machine) to a
# peer that applies --host-conns 50 to loopback: all but 50 are refused at once; the real peers,
# on 127.0.0.1, are another host and are served.
t_connection_flood_from_one_host_is_refused() {
    start_peer A --port 0 --host-conns 50 --host-conns-loopback --request-timeout 20
    local a d ua src out bg t0 el
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    src=$(publish_random "$a" many 4)
    start_peer D --port 0 --peer "$ua"
    d=$(mnt D)
    wait_listed "$d" many 20
    out="$T_CASE/conns"
    t0=$SECONDS
    perl "$FLOOD" conns "$(port_of "$ua")" 300 15 127.0.0.2 >"$out" 2>&1 &
    bg=$!
    on_cleanup "kill $bg 2>/dev/null || true"
    wait_until 15 '[ "$(counter "$a" connections-refused-per-host)" -ge 250 ]' "A refuses 250 connections"
    read_ok "$d" many "$src" "while 50 connections from 127.0.0.2 were held on A and 250 refused"
    kill -0 "$bg" 2>/dev/null || fail "the attack was over before the read: $(cat -- "$out")"
    wait "$bg" || fail "the attacker failed: $(cat -- "$out")"
    el=$((SECONDS - t0))
    echo "A under a connection flood: $(cat -- "$out")"
    assert_match "$(cat -- "$out")" "^refused 250 of 300" "the attacker's count"
    assert_eq 250 "$(counter "$a" connections-refused-per-host)" "connections-refused-per-host"
    assert_eq 250 "$(curl -s "$ua/v1/status" | jq -r .cut_off.connections_refused_per_host)" "A's /v1/status cut_off"
    log_lines_at_most_once_a_second "${PEER_LOG[A]}" "from a host with 50 open already" "$el"
    stop_peer D; stop_peer A
}

# Without --host-conns-loopback, loopback is exempt (every peer of a test shares 127.0.0.1): the
# same 300 connections are all accepted.
t_loopback_is_exempt_by_default() {
    start_peer A --port 0 --host-conns 50
    local a ua out
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    out="$T_CASE/conns"
    perl "$FLOOD" conns "$(port_of "$ua")" 300 3 127.0.0.2 >"$out" 2>&1
    echo "A with loopback exempt: $(cat -- "$out")"
    assert_match "$(cat -- "$out")" "^refused 0 of 300" "the attacker's count"
    assert_eq 0 "$(counter "$a" connections-refused-per-host)" "connections-refused-per-host"
    stop_peer A
}

# A header, a URL and a body over their limits: 431, 414 and 413, each counted; the peer serves on.
t_oversized_requests_are_refused_and_counted() {
    start_peer A --port 0
    local a d ua src big code
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    src=$(publish_random "$a" large 4)
    start_peer D --port 0 --peer "$ua"
    d=$(mnt D)
    wait_listed "$d" large 20
    big=$(head -c 30000 /dev/zero | tr '\0' a)
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $big" "$ua/v1/id")
    assert_eq 431 "$code" "a 30 kB header"
    code=$(curl -s -o /dev/null -w '%{http_code}' "$ua/v1/id?x=$big")
    [ "$code" = 414 ] || [ "$code" = 431 ] || fail "a 30 kB URL got $code, not 414 (or 431)"
    head -c $((1024 * 1024)) /dev/zero >"$T_CASE/body"
    code=$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$T_CASE/body" "$ua/v1/jobs")
    assert_eq 413 "$code" "a 1 MiB body"
    assert_eq 3 "$(counter "$a" requests-too-large)" "requests-too-large"
    assert_contains "$(curl -s "$ua/metrics")" "preon_requests_too_large_total 3" "A's /metrics"
    assert_eq 3 "$(curl -s "$ua/v1/status" | jq -r .cut_off.requests_too_large)" "A's /v1/status cut_off"
    read_ok "$d" large "$src" "after the oversized requests"
    stop_peer D; stop_peer A
}

# start_proxy UPSTREAM_URL MODE: flood.pl's proxy in front of a real peer (silent or trickle for
# block requests); sets PROXY_URL.
start_proxy() {
    local port pid
    port=$(free_port)
    perl "$FLOOD" proxy "$port" "$(port_of "$1")" "$2" >"$T_CASE/proxy.out" 2>&1 &
    pid=$!
    on_cleanup "_kill_pid $pid 2"
    wait_until 10 'grep -qs listening "$T_CASE/proxy.out"' "the proxy listens"
    PROXY_URL="http://127.0.0.1:$port"
}

# holder_case MODE NAME: A publishes, B holds every block and is reached only through the proxy
# (MODE), D knows A and the proxy: D's read completes from A, every block transfer the proxy got
# being cut off by the low-speed limit (FETCH_LOW_SPEED_*: 1 KiB/s for 5 s) and counted.
holder_case() {
    local mode=$1 name=$2 a b d ua src slow
    start_peer A --port 0
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    src=$(publish_random "$a" "$name" 4)
    start_peer B --port 0 --peer "$ua"
    b=$(mnt B)
    wait_listed "$b" "$name" 20
    read_ok "$b" "$name" "$src" "on B (B now holds every block)"
    start_proxy "$(peer_field "$b" http)" "$mode"
    start_peer D --port 0 --peer "$PROXY_URL" --peer "$ua"
    d=$(mnt D)
    wait_listed "$d" "$name" 20
    wait_until 20 '[ "$(sed -n "s/^origin: remote (\([0-9]*\) peers\{0,1\} hold.*/\1/p" "$d/status/$name")" -ge 2 ]' \
        "D counts A and the proxy as holders"
    local t0=$EPOCHREALTIME
    read_ok "$d" "$name" "$src" "with a $mode holder"
    echo "D's read with a $mode holder: $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
    slow=$(counter "$d" transfers-too-slow)
    echo "$slow transfers cut off"
    [ "$slow" -ge 1 ] || fail "no transfer was cut off: the $mode proxy was never asked (transfers-too-slow 0)"
    log_lines_at_most_once_a_second "${PEER_LOG[D]}" "block transfer(s) too slow" 60
    stop_peer D; stop_peer B; stop_peer A
}

t_silent_holder_is_cut_off_and_the_read_completes() { holder_case silent quiet; }
t_trickling_holder_is_cut_off_and_the_read_completes() { holder_case trickle drip; }

# The tracker (preon tracker) serves through the same server: its flood is refused the same way.
t_tracker_refuses_a_connection_flood() {
    local fifo="$T_CASE/ready" line port pid out="$T_CASE/conns"
    mkfifo "$fifo"
    "$PREON" tracker --listen 127.0.0.1 --port 0 --host-conns 20 --host-conns-loopback --ready-fd 3 \
        --log "$T_CASE/tracker.log" 3>"$fifo" </dev/null >"$T_CASE/tracker.out" 2>&1 &
    pid=$!
    on_cleanup "_kill_pid $pid 5"
    read -r -t 10 line <"$fifo" || fail "the tracker did not start: $(cat -- "$T_CASE/tracker.out")"
    port=${line##*:}
    perl "$FLOOD" conns "$port" 100 3 127.0.0.2 >"$out" 2>&1
    echo "the tracker under a connection flood: $(cat -- "$out")"
    assert_match "$(cat -- "$out")" "^refused 80 of 100" "the attacker's count"
    curl -sf -o /dev/null "http://127.0.0.1:$port/scrape" || [ "$(curl -s -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:$port/scrape")" != 000 ] || fail "the tracker does not answer after the flood"
    assert_contains "$(cat -- "$T_CASE/tracker.log")" "from a host with 20 open already" "the tracker's log"
    _kill_pid "$pid" 5
    assert_eq 0 "$_KILL_RC" "the tracker's exit status"
}

run_tests "$@"
