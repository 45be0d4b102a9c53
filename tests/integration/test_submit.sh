#!/usr/bin/env bash
# preon submit (issue 12, item 1): publishing a directory (staged under a dot-name, then renamed:
# never half-copied), its id, --wait's progress (plain lines in a log, a bar redrawn in place on a
# terminal) and exit status, a copy that fails (nothing published, nothing left), a name taken, a
# rejected job; preon status --json; and why a job waits (item 2): a submitter and volunteers that
# lack memory, do not trust its key, or are busy, summed up in status/<job> and by preon submit.
# shellcheck disable=SC2016 # job scripts are single-quoted on purpose: they expand in the task
. "$(dirname -- "$0")/lib.sh"

# run_rc WANT CMD...: runs CMD (bounded), asserts its exit status; stdout in $OUT, stderr in $ERR.
run_rc() {
    local want=$1 rc=0
    shift
    timeout -k 5 120 "$@" >"$T_CASE/out" 2>"$T_CASE/err" || rc=$?
    OUT=$(cat "$T_CASE/out")
    ERR=$(cat "$T_CASE/err")
    [ "$rc" = "$want" ] || fail "exit $rc, want $want: $*"$'\n'"stdout: $OUT"$'\n'"stderr: $ERR"
}

# Without --wait: the id on stdout (the one status/ shows), the tree as it was, nothing else in jobs/.
t_submit_publishes_and_prints_the_id() {
    start_peer A --slots 2
    local a src st
    a=$(mnt A)
    src=$(src_dir sweep)
    make_job "$src" 'cat data/in.txt > out.txt; echo $PREON_TASK >> out.txt' "tasks = 3"
    mkdir -p "$src/data/deeper"
    echo "input" >"$src/data/in.txt"
    head -c 300000 /dev/urandom >"$src/data/deeper/big.bin"
    run_rc 0 "$PREON" submit --mount "$a" "$src/"
    assert_match "$OUT" '^[0-9a-f]{64}$' "stdout of preon submit"
    assert_eq "$OUT" "$(status_field "$a" sweep id)" "the id printed and the one in status/sweep"
    assert_eq "sweep" "$(ls -A "$a/jobs")" "what jobs/ holds (no staged copy left)"
    cmp -- "$src/data/deeper/big.bin" "$a/jobs/sweep/data/deeper/big.bin" || fail "big.bin differs in the mount"
    [ -x "$a/jobs/sweep/run" ] || fail "run lost its mode"
    st=$(wait_job "$a" sweep 60)
    assert_eq "done" "$(field state <<<"$st")" "state"
    assert_file_eq "$a/results/sweep/2/out.txt" $'input\n2'
    # PREON_MOUNT and --name
    run_rc 0 env PREON_MOUNT="$a" "$PREON" submit --name again "$src"
    assert_eq "$OUT" "$(status_field "$a" again id)" "the id of again"
    assert_eq 0 "$(preon_wait_rc "$a" again)" "preon wait again"
}

# --wait with stderr not a terminal: a line per change, the end said, exit 0; a job with a failing
# task: exit 1 and the reason.
t_submit_wait_writes_lines_and_exits_with_the_job() {
    start_peer A --slots 2
    local a src
    a=$(mnt A)
    src=$(src_dir ok)
    make_job "$src" 'sleep 0.3; echo $PREON_TASK > out.txt' "tasks = 4"
    run_rc 0 "$PREON" submit --mount "$a" --wait "$src"
    assert_match "$OUT" '^[0-9a-f]{64}$' "stdout: the id alone"
    assert_contains "$ERR" "ok: running: " "a progress line"
    assert_match "$ERR" 'ok: running: [0-9]+/4 done, [0-9]+ running, [0-9]+ waiting; [0-9.]+[BKMG] moved; [0-9]+:[0-9]{2} elapsed' "the line's form"
    assert_contains "$ERR" "ok: done: 4 of 4 tasks succeeded in " "the last line"
    assert_not_contains "$ERR" $'\r' "a log's lines (no carriage return)"
    assert_eq "done" "$(status_field "$a" ok state)" "state once preon submit --wait returned"
    src=$(src_dir bad)
    make_job "$src" '[ "$PREON_TASK" = 1 ] && { echo broken >&2; exit 3; }; true' "tasks = 2"
    run_rc 1 "$PREON" submit --mount "$a" --wait "$src"
    assert_contains "$ERR" "bad: failed: 1 of 2 tasks failed: task 1 exit 3" "the reason"
    assert_eq 1 "$(preon_wait_rc "$a" bad)" "preon wait agrees"
}

# On a terminal (script(1) gives it a pseudo-terminal): one line redrawn with \r and cleared.
t_submit_wait_on_a_terminal_redraws_one_line() {
    command -v script >/dev/null || fail "script (bsdutils) is not installed"
    start_peer A --slots 1
    local a src rc=0 out
    a=$(mnt A)
    src=$(src_dir tty)
    make_job "$src" 'sleep 0.5' "tasks = 3"
    timeout -k 5 60 script -qec "$(printf '%q ' "$PREON" submit --mount "$a" --wait "$src")" /dev/null \
        >"$T_CASE/tty" 2>&1 </dev/null || rc=$?
    assert_eq 0 "$rc" "exit of preon submit --wait on a terminal: $(cat -v "$T_CASE/tty")"
    out=$(cat "$T_CASE/tty")
    assert_contains "$out" $'\r\e[Ktty [' "a bar redrawn in place"
    assert_match "$out" 'tty \[#+-*\] [0-9]/3 done' "a bar with a task done"
    assert_contains "$out" "tty: done: 3 of 3 tasks succeeded" "the last line"
    [ "$(grep -o $'\r\e\\[Ktty \\[' <<<"$out" | wc -l)" -ge 2 ] || fail "the bar was drawn once only: $(cat -v <<<"$out")"
}

# A copy that fails part-way (a FIFO deep in the tree, after a subdirectory and a file were copied)
# publishes nothing and leaves nothing in jobs/, without waiting on the FIFO; so does a symlink.
t_a_failed_copy_publishes_nothing() {
    start_peer A --slots 1
    local a src
    a=$(mnt A)
    src=$(src_dir partial)
    make_job "$src" 'true'
    mkdir -p "$src/sub"
    echo data >"$src/sub/a.txt"
    mkfifo "$src/sub/zz.fifo"
    run_rc 1 "$PREON" submit --mount "$a" "$src"
    assert_contains "$ERR" "$src/sub/zz.fifo: not a regular file or a directory" "the reason"
    assert_contains "$ERR" "nothing was published" "stderr"
    [ -z "$OUT" ] || fail "an id was printed: $OUT"
    assert_eq "" "$(ls -A "$a/jobs")" "jobs/ after the failed copy"
    assert_eq "" "$(ls -A "$a/status")" "status/ after the failed copy"
    rm -- "$src/sub/zz.fifo"
    ln -s /etc/passwd "$src/sub/link"
    run_rc 1 "$PREON" submit --mount "$a" "$src"
    assert_contains "$ERR" "$src/sub/link: a symlink" "the reason"
    assert_eq "" "$(ls -A "$a/jobs")" "jobs/ after the refused symlink"
    ! grep -q "published" "${PEER_LOG[A]}" || fail "the peer published something: $(grep published "${PEER_LOG[A]}")"
    rm -- "$src/sub/link"
    run_rc 0 "$PREON" submit --mount "$a" "$src" # the same tree, fixed
}

# Ctrl-C during the copy (a tree of 3000 files, signalled once its staged copy is in jobs/): exit
# 130, the partial copy removed, nothing published. The mount's jobs/ inside SRC is refused.
t_an_interrupted_copy_publishes_nothing() {
    start_peer A --slots 1
    local a src pid rc
    a=$(mnt A)
    src=$(src_dir many)
    make_job "$src" 'true'
    mkdir -p "$src/d"
    (cd "$src/d" && seq 1 3000 | xargs touch)
    "$PREON" submit --mount "$a" "$src" >"$T_CASE/out" 2>"$T_CASE/err" &
    pid=$!
    on_cleanup "kill $pid"
    wait_until 20 'compgen -G "$a/jobs/.many.*" >/dev/null' "the staged copy .many.* appears in jobs/"
    kill -INT "$pid" || fail "preon submit had exited before the signal: $(cat "$T_CASE/err")"
    _wait_pid "$pid" 30 KILL
    rc=$_WAIT_RC
    assert_eq 130 "$rc" "exit of an interrupted preon submit; stderr: $(cat "$T_CASE/err")"
    assert_contains "$(cat "$T_CASE/err")" "interrupted" "stderr"
    assert_contains "$(cat "$T_CASE/err")" "nothing was published" "stderr"
    [ ! -s "$T_CASE/out" ] || fail "an id was printed: $(cat "$T_CASE/out")"
    assert_eq "" "$(ls -A "$a/jobs")" "jobs/ after the interrupted copy"
    ! grep -q "published" "${PEER_LOG[A]}" || fail "the peer published something: $(grep published "${PEER_LOG[A]}")"
    # a SRC that holds the mount (its jobs/ would be copied into itself)
    run_rc 2 "$PREON" submit --mount "$a" "$a/jobs"
    assert_contains "$ERR" "is the mount's jobs/ directory" "stderr for jobs/ itself"
    run_rc 1 "$PREON" submit --mount "$a" --name whole "$a"
    assert_contains "$ERR" "$a/jobs: the mount's jobs/ directory (the copy would copy itself)" "stderr for the mount"
    assert_eq "" "$(ls -A "$a/jobs")" "jobs/ after the refused copies"
}

# --wait and what ends it early: Ctrl-C (exit 130, the job goes on), the job removed (exit 1,
# cancelled), the peer killed (exit 1, the mount gone, said).
t_submit_wait_ends_on_ctrl_c_removal_and_a_dead_peer() {
    start_peer A --slots 1
    local a src pid
    a=$(mnt A)
    src=$(src_dir long)
    make_job "$src" 'sleep 600'
    "$PREON" submit --mount "$a" --wait "$src" >"$T_CASE/out" 2>"$T_CASE/err" &
    pid=$!
    on_cleanup "kill $pid"
    wait_until 20 'grep -q "long: running: 0/1 done, 1 running" "$T_CASE/err"' "preon submit --wait says the task runs"
    kill -INT "$pid"
    _wait_pid "$pid" 10 KILL
    assert_eq 130 "$_WAIT_RC" "exit of preon submit --wait on Ctrl-C; stderr: $(cat "$T_CASE/err")"
    assert_contains "$(cat "$T_CASE/err")" "stopped waiting; the job goes on (preon wait long)" "stderr"
    assert_eq running "$(status_field "$a" long state)" "the job after Ctrl-C"
    # a job removed while preon submit --wait follows it
    src=$(src_dir gone)
    make_job "$src" 'sleep 600'
    "$PREON" submit --mount "$a" --wait --name gone "$src" >"$T_CASE/out2" 2>"$T_CASE/err2" &
    pid=$!
    on_cleanup "kill $pid"
    wait_until 20 '[ -s "$T_CASE/out2" ]' "preon submit printed the id of gone"
    rm -r -- "$a/jobs/gone"
    _wait_pid "$pid" 20 KILL
    assert_eq 1 "$_WAIT_RC" "exit of preon submit --wait of a removed job; stderr: $(cat "$T_CASE/err2")"
    assert_contains "$(cat "$T_CASE/err2")" "gone: cancelled" "stderr"
    # the peer dies while it waits
    src=$(src_dir orphan)
    make_job "$src" 'sleep 600'
    "$PREON" submit --mount "$a" --wait "$src" >"$T_CASE/out3" 2>"$T_CASE/err3" &
    pid=$!
    on_cleanup "kill $pid"
    wait_until 20 '[ -s "$T_CASE/out3" ]' "preon submit printed the id of orphan"
    kill9_peer A
    _wait_pid "$pid" 20 KILL
    assert_eq 1 "$_WAIT_RC" "exit of preon submit --wait when the peer dies; stderr: $(cat "$T_CASE/err3")"
    assert_contains "$(cat "$T_CASE/err3")" "orphan: cannot wait for it: the peer's mount is gone" "stderr"
}

# A name taken in jobs/ is an error (and nothing is copied); a bad description is rejected and
# removed; usage errors exit 2.
t_submit_refuses_a_taken_name_and_says_why_a_job_is_rejected() {
    start_peer A --slots 1
    local a src
    a=$(mnt A)
    src=$(src_dir twice)
    make_job "$src" 'sleep 30'
    run_rc 0 "$PREON" submit --mount "$a" "$src"
    run_rc 1 "$PREON" submit --mount "$a" "$src"
    assert_contains "$ERR" "a job named twice is in $a/jobs already: choose another name (--name NAME)" "stderr"
    assert_eq "twice" "$(ls -A "$a/jobs")" "jobs/ after the refusal"
    rm -r -- "$a/jobs/twice"
    src=$(src_dir typo)
    make_job "$src" 'true' "taks = 3"
    run_rc 1 "$PREON" submit --mount "$a" --wait "$src"
    assert_contains "$ERR" "typo was rejected: preon.job: line 1: unknown key 'taks'" "stderr"
    [ ! -e "$a/jobs/typo" ] || fail "the rejected job is still in jobs/"
    run_rc 2 "$PREON" submit --mount "$a"
    run_rc 2 env -u PREON_MOUNT "$PREON" submit "$src"
    assert_contains "$ERR" "pass --mount DIR or set PREON_MOUNT" "stderr without a mount"
    run_rc 2 "$PREON" submit --mount "$a" --name .hidden "$src"
    assert_contains "$ERR" "starts with a dot" "stderr for a dot-name"
    run_rc 1 "$PREON" submit --mount "$a" "$T_CASE/none"
    run_rc 2 "$PREON" submit --mount "$T_CASE" "$src"
    assert_contains "$ERR" "is not a peer's mount" "stderr for a directory that is not a mount"
    mkdir -p "$T_CASE/fake/jobs" # a jobs/ alone is no mount: nothing may be copied into it
    run_rc 2 "$PREON" submit --mount "$T_CASE/fake" "$src"
    assert_contains "$ERR" "is not a peer's mount" "stderr for a directory with a jobs/ that is not a mount"
    assert_eq "" "$(ls -A "$T_CASE/fake/jobs")" "the fake jobs/"
    # the longest name jobs/ takes (200 bytes, MANIFEST_MAX_NAME), multi-byte characters included;
    # one byte more is a usage error
    local long
    long=$(printf 'é%.0s' $(seq 99))xy
    src=$(src_dir longname)
    make_job "$src" 'true'
    run_rc 0 "$PREON" submit --mount "$a" --name "$long" "$src"
    assert_eq "$OUT" "$(status_field "$a" "$long" id)" "the id of a job with a 200-byte name"
    run_rc 2 "$PREON" submit --mount "$a" --name "${long}z" "$src"
    assert_contains "$ERR" "longer than 200 bytes" "stderr for a 201-byte name"
    run_rc 0 "$PREON" submit --help
    assert_contains "$OUT" "usage: preon submit" "preon submit --help"
}

# preon status --json: the same figures as the text, as numbers, read by jq.
t_status_json_agrees_with_the_text() {
    command -v jq >/dev/null || fail "jq is not installed (scripts/install-deps.sh installs it)"
    start_peer A --slots 2
    local a src
    a=$(mnt A)
    src=$(src_dir js)
    make_job "$src" '[ "$PREON_TASK" != 2 ]' "tasks = 3"
    run_rc 1 "$PREON" submit --mount "$a" --wait "$src"
    run_rc 0 "$PREON" status --mount "$a" --json js
    assert_eq "failed 3 2 1 string" "$(jq -r '"\(.state) \(.tasks) \(.succeeded) \(.failed) \(.id | type)"' <<<"$OUT")" "status --json js"
    assert_eq "$(status_field "$a" js id)" "$(jq -r .id <<<"$OUT")" "the id"
    assert_eq "array 1" "$(jq -r '"\(.["failed-task"] | type) \(.["failed-task"] | length)"' <<<"$OUT")" "failed-task"
    run_rc 0 "$PREON" status --mount "$a" --json
    assert_eq "2 js failed" "$(jq -r '"\(.peer.slots) \(.jobs[0].name) \(.jobs[0].state)"' <<<"$OUT")" "status --json"
    assert_eq "$(peer_field "$a" key)" "$(jq -r .peer.key <<<"$OUT")" "the peer's key"
    run_rc 2 "$PREON" status --mount "$a" --json no_such_job
    assert_contains "$ERR" "no such job" "stderr"
}

# A submitter that runs nothing itself and three volunteers that each say why they do not run its
# job: B gives its tasks 64M in all (the job wants 256M), C trusts only its own key, D's one slot
# is busy with another job's task (one B cannot run: it wants 100M). status/<job>, preon status
# JOB and preon submit --wait sum them up, peer by peer; once D is free the job runs there.
t_why_waiting_says_peer_by_peer() {
    start_peer A --port 0 --slots 0
    local a url src st want pid rc=0
    a=$(mnt A)
    url=$(peer_field "$a" http)
    start_peer B --port 0 --slots 1 --memory 64M --peer "$url" --uid-base 64500
    PEER_TRUST=own start_peer C --port 0 --slots 1 --peer "$url" --uid-base 64510
    start_peer D --port 0 --slots 1 --peer "$url" --uid-base 64520
    publish_job "$a" blocker 'sleep 600' "memory = 100M"
    wait_status "$a" blocker running 1 30
    assert_contains "$(cat "$a/status/blocker")" "leased-task: 0 $(peer_field "$(mnt D)" key)" "D runs the blocker"
    src=$(src_dir big)
    make_job "$src" 'echo ran > out.txt' "memory = 256M"
    "$PREON" submit --mount "$a" --wait "$src" >"$T_CASE/big.out" 2>"$T_CASE/big.err" &
    pid=$!
    on_cleanup "kill $pid"
    want="why-waiting: this peer runs no tasks (--slots 0); 3 pool peers: 1 lacks memory 256M (has 64M), 1 does not trust your key, 1 busy (1 of 1 slots)"
    wait_until 20 '[ -e "$a/status/big" ] && [ "$(grep "^why-waiting:" "$a/status/big")" = "$want" ]' \
        "status/big says: $want (it says: $(grep why-waiting "$a/status/big" 2>/dev/null || true))"
    st=$("$PREON" status --mount "$a" big)
    assert_contains "$st" "$want" "preon status big"
    assert_eq "${want#why-waiting: }" "$("$PREON" status --mount "$a" --json big | jq -r '.["why-waiting"]')" "status --json"
    # D's slot frees: the job runs there, and the reason goes
    rm -r -- "$a/jobs/blocker"
    _wait_pid "$pid" 60 KILL
    rc=$_WAIT_RC
    assert_eq 0 "$rc" "exit of preon submit --wait big; stderr: $(cat "$T_CASE/big.err")"
    assert_contains "$(cat "$T_CASE/big.err")" "big: ${want}" "preon submit --wait said why it waited"
    assert_contains "$(cat "$T_CASE/big.err")" "big: done: 1 of 1 tasks succeeded" "the end"
    # what it moved: its input blocks served to D, its result received from D (both counted by A)
    assert_match "$(cat "$T_CASE/big.err")" 'big: done: 1 of 1 tasks succeeded in [0-9:]+, [1-9][0-9.]*[BKMGT] moved' \
        "the bytes moved (not 0B)"
    st=$(cat "$a/status/big")
    [ "$(field bytes-served <<<"$st")" -gt 0 ] || fail "bytes-served of big: $(field bytes-served <<<"$st")"
    [ "$(field bytes-fetched <<<"$st")" -gt 0 ] || fail "bytes-fetched of big: $(field bytes-fetched <<<"$st")"
    assert_not_contains "$st" "why-waiting" "the status of a job that ran"
    assert_file_eq "$a/results/big/0/out.txt" ran
}

# /v1/decline from fake peers (curl, signed by keys of the test's own): unsigned or malformed is
# refused and changes nothing; a reason is counted for the address it came from, and a second key
# on that address replaces it (it does not add a peer); one key cannot speak for many addresses
# (each new address takes its voice from the last); past 64 addresses on one host nothing is kept;
# a job that is over keeps nothing.
t_decline_from_peers_is_checked_and_bounded() {
    start_peer A --port 0 --slots 0
    local a url id k1 k2 c why i to target line codes
    a=$(mnt A)
    url=$(peer_field "$a" http)
    publish_job "$a" w 'true'
    wait_status "$a" w waiting 1 20
    id=$(status_field "$a" w id)
    k1=$(test_key one)
    k2=$(test_key two)
    # Signed now (within AUTH_WINDOW_MS of their use), sent below by one curl: once a fake address
    # is a pool peer, A drops it POOL_DROP_MS (10 s) after its first poll of it fails, so the steps
    # from the first decline to the last must take less than that, even under ASan.
    to=$(curl -sS "$url/v1/id" | sed -n 's/.*"key":"\([0-9a-f]\{64\}\)".*/\1/p')
    : >"$T_CASE/many.cfg"
    for i in $(seq 100 163); do
        target="/v1/decline/$id?peer=http://127.0.0.1:$i&why=trust"
        {
            printf 'url = "%s%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' "$url" "$target"
            "$PREON" sign --key "$k1" --to "$to" GET "$target" | while IFS= read -r line; do
                printf 'header = "%s"\n' "$line"
            done
            [ "$i" = 163 ] || echo next
        } >>"$T_CASE/many.cfg"
    done
    c=$(curl -sS -o /dev/null -w '%{http_code}' "$url/v1/decline/$id?peer=http://127.0.0.1:9&why=trust")
    assert_eq 401 "$c" "an unsigned decline"
    c=$(scurl "$k1" "$url/v1/decline/$id?peer=http://127.0.0.1:9&why=memory&have=-1" -o /dev/null -w '%{http_code}')
    assert_eq 400 "$c" "a decline with a bad number"
    c=$(scurl "$k1" "$url/v1/decline/$id?peer=http://127.0.0.1:9&why=memory%0Aevil" -o /dev/null -w '%{http_code}')
    assert_eq 400 "$c" "a decline with a reason that is not a name"
    why=$(status_field "$a" w why-waiting)
    assert_not_contains "$why" "lacks" "why-waiting after refused declines"
    c=$(scurl "$k1" "$url/v1/decline/$id?peer=http://127.0.0.1:9&why=trust" -o /dev/null -w '%{http_code}')
    assert_eq 200 "$c" "a decline"
    assert_eq "this peer runs no tasks (--slots 0); 1 pool peer: 1 does not trust your key" \
        "$(status_field "$a" w why-waiting)" "why-waiting"
    c=$(scurl "$k2" "$url/v1/decline/$id?peer=http://127.0.0.1:9&why=memory&have=1048576" -o /dev/null -w '%{http_code}')
    assert_eq 200 "$c" "a decline by another key from the same address"
    assert_match "$(status_field "$a" w why-waiting)" \
        '^this peer runs no tasks \(--slots 0\); 1 pool peer: 1 lacks memory [0-9.]+[KMGT] \(has 1M\)$' \
        "why-waiting once the address speaks with another key"
    # one key, 64 more addresses: the first 63 get in as pool peers (64 on the host in all), each
    # taking k1's voice from the one before; the 65th address is not a pool peer: 409, kept nowhere
    codes=$(curl -sS -K "$T_CASE/many.cfg" | tr '\n' ' ')
    assert_eq "$(printf '200 %.0s' $(seq 63))409 " "$codes" "answers to 64 declines from 64 addresses of one host"
    why=$(status_field "$a" w why-waiting)
    assert_match "$why" '; 64 pool peers: 1 lacks memory [0-9.]+[KMGT] \(has 1M\), 63 have not said why$' \
        "why-waiting: k1 speaks for no address now (the 65th was refused), k2 for its own"
    rm -r -- "$a/jobs/w"
    c=$(scurl "$k2" "$url/v1/decline/$id?peer=http://127.0.0.1:9&why=trust" -o /dev/null -w '%{http_code}')
    assert_eq 409 "$c" "a decline of a cancelled job"
}

run_tests "$@"
