#!/usr/bin/env bash
# `preon tracker`: the BitTorrent HTTP tracker on its own, driven with curl as a BitTorrent client
# would. Announces (compact and not), scrapes, bad requests answered with a bencoded failure reason,
# keep-alive, expiry after 2 x --interval, a clean exit on SIGTERM, --help and usage errors; and
# interop: the same announces sent to opentracker (Debian's package, whitelist mode) and to ours
# give the same counts, the same peers and byte-identical scrapes.
#
# The tracker listens on 127.0.0.1 port 0 and writes "listening on 127.0.0.1:PORT" to --ready-fd,
# which start_tracker reads (no polling). opentracker cannot take port 0, so its port is a free one
# picked at random and it is polled (bounded) until it answers.
. "$(dirname -- "$0")/lib.sh"
export LC_ALL=C

# A 20-byte info_hash as hex with zero bytes in it (they must survive the URL encoding).
IH=a5a5a5a5a5a5a5a5000000000000000000000007
IH2=a5a5a5a5a5a5a5a5000000000000000000000008

# pct HEX: percent-encodes every byte of a hex string.
# start_tracker [options...]: starts `preon tracker` on 127.0.0.1:0; sets TPORT and TPID.
start_tracker() {
    local fifo="$T_CASE/tracker.fifo" rfd line="" rc=0
    rm -f "$fifo"
    mkfifo "$fifo"
    "$PREON" tracker --listen 127.0.0.1 --port 0 --ready-fd 3 "$@" 3>"$fifo" </dev/null >>"$T_CASE/tracker.out" 2>&1 &
    TPID=$!
    on_cleanup "_kill_pid $TPID 5"
    exec {rfd}<"$fifo"
    read -r -t "$PREON_READY_TIMEOUT" -u "$rfd" line || rc=$?
    exec {rfd}<&-
    rm -f "$fifo"
    case "$line" in
        "listening on 127.0.0.1:"*) TPORT=${line##*:} ;;
        *)
            cat "$T_CASE/tracker.out" >&2 || true
            fail "tracker did not start (read rc $rc, line '$line')"
            ;;
    esac
    [ "$TPORT" -gt 0 ] || fail "bad port in '$line'"
}

# get URL OUTFILE: GET (bounded); prints the HTTP status.
get() {
    curl -s -m 10 -o "$2" -w '%{http_code}' "$1" || echo "curl-failed"
}

# announce PORT PEERPORT [extra query]: into $T_CASE/ans; fails unless HTTP 200.
announce() {
    local code
    code=$(get "http://127.0.0.1:$1/announce?info_hash=$(pct $IH)&peer_id=-PR0001-00000000$2&port=$2${3:-}" "$T_CASE/ans")
    assert_eq 200 "$code" "HTTP status of an announce"
}

# bint FILE KEY: the integer after the (unique) bencoded KEY in FILE, or "" if absent.
bint() {
    { grep -aoE "${#2}:$2i-?[0-9]+e" "$1" || true; } | sed -nE '1s/.*i(-?[0-9]+)e$/\1/p'
}

# peers FILE: the compact peer list as sorted "a.b.c.d:port" lines.
peers() {
    local f=$1 hit off len
    hit=$(grep -aobE '5:peers[0-9]+:' "$f" | sed -n 1p) || fail "no compact peers in $(cat -v "$f")"
    off=${hit%%:*}
    hit=${hit#*:}
    len=${hit#5:peers}
    len=${len%:}
    dd if="$f" bs=1 skip=$((off + ${#hit})) count="$len" 2>/dev/null | od -An -v -tu1 | tr -s ' \n' '\n\n' |
        awk 'NF { n++; b[n % 6] = $1; if (n % 6 == 0) printf "%d.%d.%d.%d:%d\n", b[1], b[2], b[3], b[4], b[5] * 256 + b[0] }' | sort
}

expect_file() { # FILE printf-FORMAT: FILE holds exactly those bytes
    printf "$2" >"$T_CASE/want"
    if ! cmp -s "$1" "$T_CASE/want"; then
        fail "got '$(cat -v "$1")', want '$(cat -v "$T_CASE/want")'"
    fi
}

t_help_and_usage_errors() {
    local out rc
    out=$("$PREON" tracker --help) || fail "preon tracker --help failed"
    for opt in --port --listen --interval --ready-fd --max-peers; do
        assert_contains "$out" "$opt" "preon tracker --help"
    done
    assert_contains "$("$PREON" --help)" tracker "preon --help"
    for args in "--bogus" "--port 70000" "--port x" "--interval 0" "--interval 86401" "extra" "--max-peers 0"; do
        rc=0
        # shellcheck disable=SC2086 # split on purpose
        "$PREON" tracker $args >/dev/null 2>"$T_CASE/err" || rc=$?
        assert_eq 2 "$rc" "exit status of preon tracker $args"
        [ -s "$T_CASE/err" ] || fail "no message for preon tracker $args"
    done
    rc=0
    "$PREON" tracker --listen 999.1.1.1 --port 0 >/dev/null 2>&1 || rc=$?
    assert_eq 1 "$rc" "exit status for an address that cannot be bound"
}

t_announce_and_scrape_compact() {
    start_tracker
    announce "$TPORT" 6881 "&left=100&event=started&compact=1"
    expect_file "$T_CASE/ans" 'd8:completei0e10:downloadedi0e10:incompletei1e8:intervali1800e12:min intervali900e5:peers0:e'
    announce "$TPORT" 6882 "&left=0"
    expect_file "$T_CASE/ans" 'd8:completei1e10:downloadedi0e10:incompletei1e8:intervali1800e12:min intervali900e5:peers6:\177\0\0\001\032\341e'
    announce "$TPORT" 6881 "&left=0&event=completed"
    assert_eq 2 "$(bint "$T_CASE/ans" complete)" "seeders after completion"
    assert_eq 1 "$(bint "$T_CASE/ans" downloaded)" "downloads after completion"
    assert_eq 200 "$(get "http://127.0.0.1:$TPORT/scrape?info_hash=$(pct $IH2)&info_hash=$(pct $IH)" "$T_CASE/s")"
    expect_file "$T_CASE/s" 'd5:filesd20:\245\245\245\245\245\245\245\245\0\0\0\0\0\0\0\0\0\0\0\007d8:completei2e10:downloadedi1e10:incompletei0eeee'
    announce "$TPORT" 6882 "&event=stopped"
    expect_file "$T_CASE/ans" 'd8:completei1e10:downloadedi1e10:incompletei0e8:intervali1800e12:min intervali900e5:peers0:e'
}

t_non_compact_peer_lists() {
    start_tracker --interval 60
    announce "$TPORT" 6881
    announce "$TPORT" 6882 "&compact=0"
    expect_file "$T_CASE/ans" 'd8:completei0e10:downloadedi0e10:incompletei2e8:intervali60e12:min intervali30e5:peersld2:ip9:127.0.0.17:peer id20:-PR0001-0000000068814:porti6881eeee'
    announce "$TPORT" 6882 "&compact=0&no_peer_id=1"
    expect_file "$T_CASE/ans" 'd8:completei0e10:downloadedi0e10:incompletei2e8:intervali60e12:min intervali30e5:peersld2:ip9:127.0.0.14:porti6881eeee'
}

t_bad_requests() {
    start_tracker
    assert_eq 200 "$(get "http://127.0.0.1:$TPORT/announce?port=1" "$T_CASE/r")"
    expect_file "$T_CASE/r" 'd14:failure reason17:missing info_hashe'
    assert_eq 200 "$(get "http://127.0.0.1:$TPORT/announce?info_hash=abc&peer_id=-PR0001-000000000001&port=1" "$T_CASE/r")"
    expect_file "$T_CASE/r" 'd14:failure reason36:invalid info_hash (3 bytes, want 20)e'
    assert_eq 200 "$(get "http://127.0.0.1:$TPORT/announce?info_hash=$(pct $IH)&peer_id=-PR0001-000000000001&port=99999" "$T_CASE/r")"
    expect_file "$T_CASE/r" 'd14:failure reason12:invalid porte'
    assert_eq 200 "$(get "http://127.0.0.1:$TPORT/scrape" "$T_CASE/r")"
    assert_contains "$(cat "$T_CASE/r")" "failure reason" "a full scrape"
    assert_eq 404 "$(get "http://127.0.0.1:$TPORT/nope" "$T_CASE/r")"
    local code
    code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -X POST -d x=1 "http://127.0.0.1:$TPORT/announce")
    assert_eq 405 "$code" "POST /announce"
    # A request line far over the connection's memory is refused and the tracker goes on.
    code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$TPORT/announce?$(head -c 40000 /dev/zero | tr '\0' q)") || true
    case "$code" in 4??) ;; *) fail "a 40 kB request line got '$code'" ;; esac
    announce "$TPORT" 6881
    kill -0 "$TPID" || fail "the tracker died"
}

t_keep_alive() {
    start_tracker
    local u="http://127.0.0.1:$TPORT/announce?info_hash=$(pct $IH)&peer_id=-PR0001-000000006881&port=6881"
    local n
    n=$(curl -s -m 10 -o /dev/null -o /dev/null -o /dev/null -w '%{num_connects} ' "$u" "$u" "http://127.0.0.1:$TPORT/x")
    assert_eq "1 0 0 " "$n" "connections opened for three requests"
}

t_peers_expire_after_two_intervals() {
    start_tracker --interval 1
    local t0 t1 s
    t0=$(date +%s%N)
    announce "$TPORT" 6881
    s="http://127.0.0.1:$TPORT/scrape?info_hash=$(pct $IH)"
    get "$s" "$T_CASE/s" >/dev/null
    assert_eq 1 "$(bint "$T_CASE/s" incomplete)" "peers right after the announce"
    # No event says "expired": poll (bounded) until the peer is gone from the scrape.
    local end=$((SECONDS + 10)) n=1
    while [ "$SECONDS" -le "$end" ]; do
        get "$s" "$T_CASE/s" >/dev/null
        n=$(bint "$T_CASE/s" incomplete)
        [ "${n:-0}" = 0 ] && break
        sleep 0.1
    done
    t1=$(date +%s%N)
    [ "${n:-0}" = 0 ] || fail "peer still there after 10 s with --interval 1: $(cat -v "$T_CASE/s")"
    local ms=$(((t1 - t0) / 1000000))
    [ "$ms" -ge 2000 ] || fail "peer expired after $ms ms, before 2 x interval"
    # The swarm, now empty, is reclaimed by the expiry timer (within a second or so): the
    # scrape leaves it out.
    end=$((SECONDS + 5))
    while [ "$SECONDS" -le "$end" ]; do
        get "$s" "$T_CASE/s" >/dev/null
        [ "$(cat "$T_CASE/s")" = 'd5:filesdee' ] && return 0
        sleep 0.1
    done
    fail "the empty swarm is still listed: $(cat -v "$T_CASE/s")"
}

t_sigterm_exits_0() {
    start_tracker
    announce "$TPORT" 6881
    kill -TERM "$TPID"
    _wait_pid "$TPID" 10 KILL
    assert_eq 0 "$_WAIT_RC" "exit status after SIGTERM"
    grep -q "listening on 127.0.0.1:$TPORT" "$T_CASE/tracker.out" || fail "no 'listening on' line in the log"
    # The port is free again.
    if curl -s -m 5 -o /dev/null "http://127.0.0.1:$TPORT/x"; then fail "port $TPORT still answers"; fi
}

t_opentracker_interop() {
    start_tracker
    start_opentracker "$IH" "$IH2"
    # The same announces to both. opentracker lists the asking peer among the peers; Preon's
    # tracker never does, so the asker is removed from opentracker's list before comparing.
    # Intervals differ on purpose (opentracker randomizes them), so they are not compared.
    local steps=(
        "6881|&left=100&event=started"
        "6882|&left=0&event=started"
        "6883|&left=50"
        "6881|&left=0&event=completed"
        "6884|&left=7&numwant=50"
        "6882|&event=stopped"
        "6883|"
        "6885|&left=0&event=completed"
    )
    local step port extra key ours theirs
    for step in "${steps[@]}"; do
        port=${step%%|*}
        extra=${step#*|}
        announce "$TPORT" "$port" "$extra"
        cp "$T_CASE/ans" "$T_CASE/ours"
        announce "$OTPORT" "$port" "$extra"
        cp "$T_CASE/ans" "$T_CASE/theirs"
        for key in complete incomplete; do
            assert_eq "$(bint "$T_CASE/theirs" $key)" "$(bint "$T_CASE/ours" $key)" "$key after announce $step"
        done
        if [ -n "$(bint "$T_CASE/theirs" downloaded)" ]; then
            assert_eq "$(bint "$T_CASE/theirs" downloaded)" "$(bint "$T_CASE/ours" downloaded)" "downloaded after $step"
        fi
        ours=$(peers "$T_CASE/ours")
        theirs=$(peers "$T_CASE/theirs" | grep -vx "127.0.0.1:$port" || true)
        assert_eq "$theirs" "$ours" "peers after announce $step"
    done
    # Scrapes are byte for byte the same (the second hash is whitelisted but has no peers: both
    # leave it out).
    local q="info_hash=$(pct $IH2)&info_hash=$(pct $IH)"
    assert_eq 200 "$(get "http://127.0.0.1:$TPORT/scrape?$q" "$T_CASE/s1")"
    assert_eq 200 "$(get "http://127.0.0.1:$OTPORT/scrape?$q" "$T_CASE/s2")"
    cmp -s "$T_CASE/s1" "$T_CASE/s2" || fail "scrapes differ: ours '$(cat -v "$T_CASE/s1")', opentracker '$(cat -v "$T_CASE/s2")'"
    assert_contains "$(cat "$T_CASE/s1")" "8:completei2e10:downloadedi2e10:incompletei2e" "the scrape"
}

run_tests "$@"
