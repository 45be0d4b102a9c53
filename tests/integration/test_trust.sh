#!/usr/bin/env bash
# Trust (issue 9): every request that changes state on a peer is signed by its caller's key for
# that peer, once; leases are held by a key, not an address; only a job's submitter cancels it.
. "$(dirname -- "$0")/lib.sh"

# code KEY URL: the HTTP code of a signed GET (and its body in $T_CASE/body).
code() { scurl "$1" "$2" -o "$T_CASE/body" -w '%{http_code}'; }

# Unsigned, half-signed or badly signed requests are refused (401, with the reason), and change nothing.
t_unsigned_and_forged_requests_are_refused() {
    start_peer A --port 0 --slots 0
    local a url id me="http://127.0.0.1:9" c what
    a=$(mnt A)
    url=$(peer_field "$a" http)
    id=$(publish_idle "$a" guarded 2)
    for what in "hello?peer=$me" "offer/$id?peer=$me" "lease/$id?peer=$me" "renew/$id/0?peer=$me" \
        "release/$id/0?peer=$me" "done/$id/0?peer=$me&exit=0&ms=1" "cancel/$id/0?peer=$me"; do
        c=$(curl -sS -o "$T_CASE/body" -w '%{http_code}' "$url/v1/$what")
        assert_eq 401 "$c" "unsigned /v1/$what"
        assert_contains "$(cat "$T_CASE/body")" "unsigned request" "the answer to an unsigned /v1/$what"
    done
    assert_eq 2 "$(status_field "$a" guarded waiting)" "tasks waiting after unsigned lease requests"
    assert_eq 0 "$(peer_field "$a" pool-peers)" "pool peers after unsigned greetings"
    # a key header alone
    c=$(curl -sS -o /dev/null -w '%{http_code}' -H "Preon-Key: $(printf 'a%.0s' {1..64})" "$url/v1/lease/$id?peer=$me")
    assert_eq 401 "$c" "a request with only Preon-Key"
    # signed for another peer's key: worthless here
    local k other to
    k=$(test_key me)
    other=$("$PREON" keygen --out "$T_CASE/other.pem" 2>/dev/null)
    mapfile -t h < <("$PREON" sign --key "$k" --to "$other" GET "/v1/lease/$id?peer=$me")
    c=$(curl -sS -o "$T_CASE/body" -w '%{http_code}' -H "${h[0]}" -H "${h[1]}" -H "${h[2]}" -H "${h[3]}" \
        "$url/v1/lease/$id?peer=$me")
    assert_eq 401 "$c" "a request signed for another peer"
    assert_contains "$(cat "$T_CASE/body")" "bad signature" "why a request for another peer is refused"
    # signed for another target: the signature does not carry over
    to=$(curl -sS "$url/v1/id" | sed -n 's/.*"key":"\([0-9a-f]*\)".*/\1/p')
    mapfile -t h < <("$PREON" sign --key "$k" --to "$to" GET "/v1/lease/$id?peer=$me&n=1")
    c=$(curl -sS -o /dev/null -w '%{http_code}' -H "${h[0]}" -H "${h[1]}" -H "${h[2]}" -H "${h[3]}" \
        "$url/v1/lease/$id?peer=$me&n=2")
    assert_eq 401 "$c" "a signature of another target"
    # a flipped bit in the signature
    mapfile -t h < <("$PREON" sign --key "$k" --to "$to" GET "/v1/hello?peer=$me")
    local sig=${h[3]#Preon-Sig: }
    sig="${sig:0:10}$([ "${sig:10:1}" = 0 ] && echo 1 || echo 0)${sig:11}"
    c=$(curl -sS -o /dev/null -w '%{http_code}' -H "${h[0]}" -H "${h[1]}" -H "${h[2]}" -H "Preon-Sig: $sig" \
        "$url/v1/hello?peer=$me")
    assert_eq 401 "$c" "a tampered signature"
    assert_eq 2 "$(status_field "$a" guarded waiting)" "tasks waiting after forged requests"
    grep -q "refused GET /v1/lease/$id: bad signature" "${PEER_LOG[A]}" || fail "A's log does not name a refused request"
}

# The same signed request twice is refused the second time; a stale one is refused at once.
t_a_replayed_or_stale_request_is_refused() {
    start_peer A --port 0 --slots 0
    local a url id me="http://127.0.0.1:9" k to c now
    a=$(mnt A)
    url=$(peer_field "$a" http)
    id=$(publish_idle "$a" once 3)
    k=$(test_key me)
    to=$(curl -sS "$url/v1/id" | sed -n 's/.*"key":"\([0-9a-f]*\)".*/\1/p')
    mapfile -t h < <("$PREON" sign --key "$k" --to "$to" GET "/v1/lease/$id?peer=$me")
    c=$(curl -sS -o "$T_CASE/body" -w '%{http_code}' -H "${h[0]}" -H "${h[1]}" -H "${h[2]}" -H "${h[3]}" "$url/v1/lease/$id?peer=$me")
    assert_eq 200 "$c" "the first time"
    assert_contains "$(cat "$T_CASE/body")" '"tasks":[0]' "the lease answer"
    c=$(curl -sS -o "$T_CASE/body" -w '%{http_code}' -H "${h[0]}" -H "${h[1]}" -H "${h[2]}" -H "${h[3]}" "$url/v1/lease/$id?peer=$me")
    assert_eq 401 "$c" "the same request replayed"
    assert_contains "$(cat "$T_CASE/body")" "replayed" "why a replay is refused"
    assert_eq 2 "$(status_field "$a" once waiting)" "tasks waiting after the replay (it leased nothing)"
    now=$(($(date +%s%3N) - 120000))
    mapfile -t h < <("$PREON" sign --key "$k" --to "$to" --time "$now" GET "/v1/lease/$id?peer=$me")
    c=$(curl -sS -o "$T_CASE/body" -w '%{http_code}' -H "${h[0]}" -H "${h[1]}" -H "${h[2]}" -H "${h[3]}" "$url/v1/lease/$id?peer=$me")
    assert_eq 401 "$c" "a request made two minutes ago"
    assert_contains "$(cat "$T_CASE/body")" "stale" "why an old request is refused"
}

# A lease belongs to the key that took it: another key cannot renew, release or report it, even
# from the same address and port; the holder can, from another one.
t_a_lease_is_held_by_a_key_not_an_address() {
    start_peer A --port 0 --slots 0
    local a url id me="http://127.0.0.1:9" k1 k2
    a=$(mnt A)
    url=$(peer_field "$a" http)
    id=$(publish_idle "$a" held 1)
    k1=$(test_key one)
    k2=$(test_key two)
    assert_eq 200 "$(code "$k1" "$url/v1/lease/$id?peer=$me")" "K1's lease"
    assert_eq 409 "$(code "$k2" "$url/v1/renew/$id/0?peer=$me")" "a renew by another key from the same address"
    assert_eq 409 "$(code "$k2" "$url/v1/release/$id/0?peer=$me")" "a release by another key"
    assert_eq 409 "$(code "$k2" "$url/v1/done/$id/0?peer=$me&exit=0&ms=1")" "a done by another key"
    assert_eq 1 "$(status_field "$a" held running)" "the task still runs under K1's lease"
    assert_eq 200 "$(code "$k1" "$url/v1/renew/$id/0?peer=http://127.0.0.1:19")" "K1's renew from another port"
    assert_eq 200 "$(code "$k1" "$url/v1/release/$id/0?peer=http://127.0.0.1:19")" "K1's release"
    assert_eq 1 "$(status_field "$a" held waiting)" "waiting again after K1's release"
}

# Only the job's submitter may cancel its tasks on a volunteer: a cancel signed by another key is
# refused (403) and logged, and the task runs on; the submitter's own cancel stops it.
t_a_cancel_from_another_key_changes_nothing() {
    start_peer A --port 0 --slots 0
    local a b url_b id
    a=$(mnt A)
    start_peer B --port 0 --slots 1 --peer "$(peer_field "$a" http)"
    b=$(mnt B)
    url_b=$(peer_field "$b" http)
    publish_job "$a" slow 'sleep 60' "tasks = 1"
    wait_status "$a" slow running 1 20
    id=$(status_field "$a" slow id)
    wait_log B "job slow: leased task 0 from" 20
    assert_eq 403 "$(code "$(test_key mallory)" "$url_b/v1/cancel/$id/0?peer=http://127.0.0.1:9")" \
        "a cancel signed by a key that is not the submitter's"
    wait_log B "a cancel of job ${id:0:16} task 0 from key .* that is not its submitter's: ignored" 5
    if grep -q "task 0: the submitter cancelled the job: stopping it" "${PEER_LOG[B]}"; then
        fail "B stopped the task on a forged cancel"
    fi
    assert_eq 1 "$(status_field "$a" slow running)" "the task still runs"
    rm -r -- "$a/jobs/slow" # the submitter's own cancel reaches B, signed, and stops it
    wait_log B "job slow task 0: the submitter cancelled the job: stopping it" 10
}

# Signed jobs (issue 9, item 2): a job's manifest names its submitter's key, and the submitter's
# signature of the id travels with it. B takes a job only with a signature that verifies, and only
# from the key that made it; another key offering it changes nothing. (A's one task runs on A, so
# A offers it to nobody, and B polls nobody: B knows only what these offers tell it.)
t_a_job_is_taken_only_signed_and_only_from_its_signer() {
    start_peer A --port 0 --slots 1
    local a ua id sig bad b ub mallory
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    publish_job "$a" signed 'sleep 60' "tasks = 1"
    wait_status "$a" signed running 1 20
    id=$(status_field "$a" signed id)
    assert_eq "$("$PREON" id --data "$(data_dir A)")" "$(status_field "$a" signed submitter)" "the job's submitter on A"
    assert_contains "$(curl -sS "$ua/v1/manifest/$id")" "\"submitter\":\"$("$PREON" id --data "$(data_dir A)")\"" \
        "the manifest names A's key"
    sig=$(curl -sS "$ua/v1/jobs" | sed -n 's/.*"sig":"\([0-9a-f]\{128\}\)".*/\1/p')
    [ ${#sig} = 128 ] || fail "A lists no signature for its job: $(curl -sS "$ua/v1/jobs")"
    start_peer B --port 0 --slots 0 --discover-ms 3600000
    b=$(mnt B)
    ub=$(peer_field "$b" http)
    mallory=$(test_key mallory)
    # a signature that does not verify: the manifest is refused
    bad="${sig:0:127}$([ "${sig:127:1}" = 0 ] && echo 1 || echo 0)"
    assert_eq 200 "$(code "$mallory" "$ub/v1/offer/$id?peer=$ua&sig=$bad")" "an offer with a bad signature"
    wait_log B "manifest $id from .* refused: its signature does not verify against its submitter's key" 10
    # the right signature, offered by a key that did not make it: not its submitter
    assert_eq 200 "$(code "$mallory" "$ub/v1/offer/$id?peer=$ua&sig=$sig")" "an offer from another key"
    wait_log B "job $id: .* says it is its submitter, but the job is signed by" 10
    [ ! -e "$b/jobs/signed" ] || fail "B took a job offered by a key that did not sign it"
    # offered by its signer (A's own key), it is taken
    assert_eq 200 "$(code "$(data_dir A)/key" "$ub/v1/offer/$id?peer=$ua&sig=$sig")" "an offer from the signer"
    wait_listed "$b" signed 10
    # and once known, another key offering it (claiming to be its submitter) changes nothing
    assert_eq 403 "$(code "$mallory" "$ub/v1/offer/$id?peer=http://127.0.0.1:9&sig=$sig")" \
        "an offer of a known job from another key"
    wait_log B "job signed: an offer from .* which did not sign it: ignored" 5
}

# Another peer that lists someone else's job as its own, cancelled, changes nothing: only the key
# that signed the job speaks for it, and that peer has proven no such key.
t_a_listing_by_another_peer_changes_nothing() {
    start_peer A --port 0 --slots 1
    local a ua id sig b body
    a=$(mnt A)
    ua=$(peer_field "$a" http)
    publish_job "$a" held 'sleep 60' "tasks = 1"
    wait_status "$a" held running 1 20
    id=$(status_field "$a" held id)
    sig=$(curl -sS "$ua/v1/jobs" | sed -n 's/.*"sig":"\([0-9a-f]\{128\}\)".*/\1/p')
    body='[{"id":"'$id'","name":"held","state":"cancelled","tasks":1,"origin":true,"sig":"'$sig'",'
    body+='"counts":{"total":1,"waiting":0,"running":0,"succeeded":0,"failed":0,"cancelled":1},"results":0,"epoch":1}]'
    fake_server "$body" "$T_CASE/asked"
    start_peer B --port 0 --slots 0 --peer "$ua" --peer "$FAKE_URL"
    b=$(mnt B)
    wait_listed "$b" held 20
    wait_log B "job held: $FAKE_URL lists it as its own, but is not known to hold its submitter's key" 20
    grep -q "GET /v1/jobs" "$T_CASE/asked" || fail "B never asked the fake peer for its jobs"
    [ -e "$b/jobs/held/run" ] || fail "the job left B's jobs/ on another peer's word"
    assert_eq running "$(status_field "$b" held state)" "the job's state on B"
    if grep -q "job held: cancelled by its submitter" "${PEER_LOG[B]}"; then
        fail "B took the fake peer's word that the job was cancelled"
    fi
}

# Whose jobs a volunteer runs (issue 9, item 3): by default its own key's only; a job from another
# key is listed but never run, its status says why and how to trust it, and adding the key to
# DATA/trusted/ takes effect without a restart.
t_a_job_from_an_untrusted_key_runs_once_its_key_is_trusted() {
    start_peer A --port 0 --slots 0
    local a b ka st
    a=$(mnt A)
    ka=$("$PREON" id --data "$(data_dir A)")
    PEER_TRUST=own start_peer B --port 0 --slots 1 --peer "$(peer_field "$a" http)" # nothing configured
    b=$(mnt B)
    [ -z "$(ls -A "$(data_dir B)/trusted")" ] || fail "B has a trust list: the default is not tested"
    publish_job "$a" gated 'echo ran' "tasks = 1"
    wait_listed "$b" gated 20
    wait_log B "job gated: not volunteering: its submitter's key ${ka:0:16}\.\.\. is not trusted here" 10
    assert_contains "$(cat "$b/status/gated")" "not-run-here: its submitter's key ${ka:0:16}... is not trusted here" \
        "B's status of the job"
    assert_contains "$(cat "$b/status/gated")" "$(data_dir B)/trusted/" "where to add the key"
    assert_eq 1 "$(status_field "$a" gated waiting)" "the task waits on A (nobody it may run on)"
    printf '%s A, the submitter\n' "$ka" >"$(data_dir B)/trusted/a.keys" # no restart
    st=$(wait_job "$a" gated 30)
    assert_eq done "$(field state <<<"$st")" "the job once B trusts A's key"
    assert_file_eq "$a/results/gated/0/stdout" ran
    grep -q "trust list: jobs of this peer's own key and of 1 listed keys" "${PEER_LOG[B]}" ||
        fail "B's log does not say the list changed"
}

t_trust_file_option() {
    start_peer A --port 0 --slots 0
    local a ka st
    a=$(mnt A)
    ka=$("$PREON" id --data "$(data_dir A)")
    printf '# nobody yet\n' >"$T_CASE/trust"
    PEER_TRUST=own start_peer B --port 0 --slots 1 --peer "$(peer_field "$a" http)" --trust "$T_CASE/trust"
    publish_job "$a" gated2 'echo ran' "tasks = 1"
    wait_log B "job gated2: not volunteering: its submitter's key .* is not trusted here.* to $T_CASE/trust or" 20
    echo "$ka" >>"$T_CASE/trust"
    st=$(wait_job "$a" gated2 30)
    assert_eq done "$(field state <<<"$st")" "the job once B's --trust file lists A's key"
}

# A pool authority (issue 9, item 3): a volunteer that trusts the authority's key runs the jobs of
# every key it endorsed (preon endorse), and no others: an endorsement by a key it does not trust,
# a forged one, another key's and an expired one count for nothing.
t_a_volunteer_that_trusts_an_authority_runs_the_jobs_it_endorsed() {
    local auth other ka b st line
    auth=$(test_key pool-authority)
    other=$(test_key another-authority)
    mkdir -p "$T_CASE/A/data/endorsements" "$T_CASE/B/data/trusted"
    "$PREON" keygen --out "$T_CASE/A/data/key" >/dev/null 2>&1
    ka=$("$PREON" id --data "$T_CASE/A/data")
    # A holds an endorsement by a key B does not trust, a forged one, one of another key, an expired one
    "$PREON" endorse --key "$other" "$ka" >"$T_CASE/A/data/endorsements/other"
    line=$("$PREON" endorse --key "$auth" "$ka")
    printf '%s\n' "${line%?}$([ "${line: -1}" = 0 ] && echo 1 || echo 0)" >"$T_CASE/A/data/endorsements/forged"
    "$PREON" endorse --key "$auth" "$("$PREON" id --key "$other")" >"$T_CASE/A/data/endorsements/not-mine"
    line=$("$PREON" endorse --key "$auth" "$ka")
    read -r w who by _ sig <<<"$line"
    echo "$w $who $by 1000 $sig" >"$T_CASE/A/data/endorsements/expired" # (its signature covers the time)
    "$PREON" id --key "$auth" >"$T_CASE/B/data/trusted/authority"
    PEER_TRUST=own start_peer A --port 0 --slots 0
    PEER_TRUST=own start_peer B --port 0 --slots 1 --peer "$(peer_field "$(mnt A)" http)"
    b=$(mnt B)
    publish_job "$(mnt A)" before 'echo ran' "tasks = 1"
    wait_listed "$b" before 20
    wait_log B "job before: not volunteering: its submitter's key ${ka:0:16}\.\.\. is not trusted here, nor endorsed by a key trusted here" 10
    assert_contains "$(cat "$b/status/before")" "endorsed-by: $("$PREON" id --key "$other")" \
        "B's status names the endorsement the job carries"
    wait_log A "job before: 3 lines or files of .*/endorsements/ not used" 5
    # the authority endorses A's key: A's jobs from now on carry it, and B runs them
    "$PREON" endorse --key "$auth" --days 30 --note "A, a researcher" "$ka" >"$T_CASE/A/data/endorsements/pool"
    publish_job "$(mnt A)" after 'echo ran' "tasks = 1"
    st=$(wait_job "$(mnt A)" after 30)
    assert_eq done "$(field state <<<"$st")" "A's endorsed job on a volunteer that trusts the authority"
    assert_contains "$(cat "$b/status/after")" "endorsed-by: $("$PREON" id --key "$auth") until" \
        "B's status of the endorsed job"
    assert_eq 1 "$(status_field "$(mnt A)" before waiting)" "the job published before the endorsement still waits"
    # the job endorsed only by the other authority runs once B trusts that authority (no restart)
    "$PREON" id --key "$other" >"$T_CASE/B/data/trusted/other-authority"
    st=$(wait_job "$(mnt A)" before 30)
    assert_eq done "$(field state <<<"$st")" "a job whose endorsing authority B trusts now"
}

# Request budgets (issue 9, item 7): a host that floods the API gets 429 beyond its budget while
# another host is served at once; a key that floods signed requests likewise, while another key
# from the same host is not held back. Bounds follow from the budget and the time the flood took.
t_a_flooding_host_or_key_is_held_to_its_budget() {
    start_peer A --port 0 --slots 0 --host-budget 20
    local url t0 t1 codes ok n429 c
    url=$(peer_field "$(mnt A)" http)
    t0=$(date +%s%N)
    codes=$(for _ in $(seq 300); do printf 'url = "%s"\noutput = "/dev/null"\n' "$url/v1/jobs"; done |
        curl -s -K - -w '%{http_code}\n')
    t1=$(date +%s%N)
    ok=$(grep -c '^200$' <<<"$codes" || true)
    n429=$(grep -c '^429$' <<<"$codes" || true)
    assert_eq 300 "$((ok + n429))" "answers to the flood (200 or 429)"
    [ "$n429" -gt 0 ] || fail "a flood of 300 requests got no 429"
    [ "$ok" -le $((40 + 20 * ((t1 - t0) / 1000000000 + 1))) ] || fail "$ok requests served: more than the budget allows"
    c=$(curl -sS --interface 127.0.0.2 -o /dev/null -w '%{http_code}' "$url/v1/jobs")
    assert_eq 200 "$c" "a request from another host during the flood"
    assert_match "$(cat "$(mnt A)/peer")" "requests-over-budget: [1-9]" "the peer file"
    wait_log A "host 127.0.0.1 is over its request budget" 5

    start_peer B --port 0 --slots 0 --key-budget 3
    local ub k1 k2
    ub=$(peer_field "$(mnt B)" http)
    k1=$(test_key flooder)
    k2=$(test_key neighbour)
    ok=0 n429=0
    t0=$(date +%s%N)
    for _ in $(seq 20); do
        c=$(scurl "$k1" "$ub/v1/hello?peer=http://127.0.0.1:9" -o /dev/null -w '%{http_code}')
        case "$c" in 429) n429=$((n429 + 1)) ;; *) ok=$((ok + 1)) ;; esac
    done
    t1=$(date +%s%N)
    [ "$n429" -gt 0 ] || fail "20 signed requests of one key got no 429"
    [ "$ok" -le $((6 + 3 * ((t1 - t0) / 1000000000 + 1))) ] || fail "$ok signed requests served: over the key's budget"
    c=$(scurl "$k2" "$ub/v1/hello?peer=http://127.0.0.1:9" -o /dev/null -w '%{http_code}')
    [ "$c" != 429 ] || fail "another key from the same host was held back by the first one's budget"
}

run_tests "$@"
