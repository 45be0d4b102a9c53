#!/usr/bin/env bash
# Live output (issue 12, item 5; docs/usage.md, "Live output"): while a task runs,
# results/<job>/<task>/stdout and stderr show what it printed so far, on the peer that runs it and,
# for a task on a volunteer, on its submitter; `tail -f` follows them; the result replaces them
# whole; a retry's output does not mix with its last run's; only the lease's holder may send it.
# shellcheck disable=SC2016 # job scripts are single-quoted on purpose: they expand in the task
. "$(dirname -- "$0")/lib.sh"

# The task prints a line to each stream, then blocks on a FIFO it makes in /task until the test
# writes a line into it (through /proc/PID/root of its process: release_gate), prints that line
# and ends. Its first line names the uid it runs as: which peer's slot ran it.
GATE_RUN='echo "first from $(id -u)"; echo "an error line" >&2; mkfifo go && read -r line <go && rm -f go && echo "$line"'

# gate_fifo UID: the path, from here, of the gate task's FIFO once it exists (bounded wait), the
# task running as UID (slot 0 of a peer started with --uid-base UID).
gate_fifo() {
    local uid=$1 end=$((SECONDS + 30)) pid
    while [ "$SECONDS" -le "$end" ]; do
        for pid in $(pgrep -u "$uid" || true); do
            if [ -p "/proc/$pid/root/task/go" ]; then
                echo "/proc/$pid/root/task/go"
                return 0
            fi
        done
        sleep 0.05
    done
    fail "the gate task never made its FIFO (processes of uid $uid: $(pgrep -a -u "$uid" || true))"
}

# release_gate UID LINE: writes LINE into the gate task's FIFO: it prints it and ends.
release_gate() {
    local fifo
    fifo=$(gate_fifo "$1")
    timeout 10 sh -c 'echo "$2" >"$1"' _ "$fifo" "$2" || fail "could not write to the gate task's FIFO $fifo"
}

# wait_content FILE TEXT SECS: bounded poll until FILE holds TEXT (its content is a state: what
# the task printed so far; no event says it changed).
wait_content() {
    local end=$((SECONDS + $3))
    until grep -qF -- "$2" "$1" 2>/dev/null; do
        [ "$SECONDS" -le "$end" ] || fail "$1 never held '$2' within ${3}s (it holds: $(cat -- "$1" 2>&1 || true))"
        sleep 0.1
    done
}

# follow FILE OUT: `tail -f FILE` in the background, writing to OUT; stopped at cleanup.
follow() {
    tail -n +1 -f -- "$1" >"$2" 2>"$2.err" &
    local pid=$!
    on_cleanup "_kill_pid $pid 2"
    echo "$pid"
}

# unfollow PID NAME: stops a `follow`, then waits (bounded) until peer NAME has let go of the file
# it read (the kernel's release comes after tail is gone: a state, not an event here), so the peer
# can be stopped with nothing open (and checked to exit 0: under ASan, with nothing leaked).
unfollow() {
    _kill_pid "$1" 2
    local p
    p=$(peer_pid "$2")
    wait_until 10 "! ls -l /proc/$p/fd 2>/dev/null | grep -qE 'stdout|stderr'" "peer $2 let go of the followed file"
}

t_local_task_output_is_live_and_the_result_replaces_it() {
    local uid=64950
    start_peer A --slots 1 --uid-base "$uid"
    local m st ino_live ino_final tailpid dfd
    m=$(mnt A)
    publish_job "$m" live "$GATE_RUN"
    gate_fifo "$uid" >/dev/null # the task has printed its lines and waits
    wait_content "$m/results/live/0/stdout" "first from $uid" 10
    assert_file_eq "$m/results/live/0/stderr" "an error line"
    assert_eq "stderr stdout" "$(ls "$m/results/live/0" | tr '\n' ' ' | sed 's/ $//')" "a running task's directory"
    assert_eq running "$(status_field "$m" live state)" "the job's state while its output is shown"
    expect_erofs sh -c 'echo x >"$1"' _ "$m/results/live/0/stdout"
    expect_erofs rm -f "$m/results/live/0/stdout"
    assert_contains "$(ls "$m/results/live")" 0 "results/live while its task runs"
    ino_live=$(stat -c %i "$m/results/live/0")
    exec {dfd}<"$m/results/live/0" # a directory held open (as a shell's cwd would be)
    tailpid=$(follow "$m/results/live/0/stdout" "$T_CASE/tail.out")
    wait_content "$T_CASE/tail.out" "first from $uid" 10 # tail -f shows what came
    release_gate "$uid" "the second line"
    wait_content "$T_CASE/tail.out" "the second line" 10 # ... and what comes, by the same open file
    st=$(wait_job "$m" live)
    assert_eq done "$(field state <<<"$st")" "state"
    # The result replaced the live output whole: a new directory, with every file of the result.
    ino_final=$(stat -c %i "$m/results/live/0")
    [ "$ino_live" != "$ino_final" ] || fail "results/live/0 is still the live output's directory (inode $ino_live)"
    assert_eq "exit_code stderr stdout" "$(ls "$m/results/live/0" | tr '\n' ' ' | sed 's/ $//')" "the result's files"
    assert_file_eq "$m/results/live/0/stdout" "first from $uid"$'\n'"the second line"
    assert_file_eq "$m/results/live/0/stderr" "an error line"
    assert_file_eq "$m/results/live/0/exit_code" 0
    kill -0 "$tailpid" 2>/dev/null || fail "tail -f gave up on the live file once the result came: $(cat "$T_CASE/tail.out.err")"
    assert_eq "" "$(cat "$T_CASE/tail.out.err")" "tail -f's errors"
    assert_file_eq "$T_CASE/tail.out" "first from $uid"$'\n'"the second line"
    # Names looked up in the live directory held open, once the result replaced it: the result's
    # files (the live nodes made there go with the directory when the kernel forgets it).
    assert_file_eq "/proc/$BASHPID/fd/$dfd/stdout" "first from $uid"$'\n'"the second line"
    assert_file_eq "/proc/$BASHPID/fd/$dfd/stderr" "an error line"
    exec {dfd}<&-
    unfollow "$tailpid" A
    stop_peer A
}

t_remote_task_output_is_live_on_the_submitter() {
    local uid=64960
    start_peer A --port 0 --slots 0
    local a b url st tailpid bfd id
    a=$(mnt A)
    url=$(peer_field "$a" http)
    start_peer B --port 0 --slots 1 --peer "$url" --uid-base "$uid"
    b=$(mnt B)
    publish_job "$a" far "$GATE_RUN"
    gate_fifo "$uid" >/dev/null # running on B
    # on the peer that runs it, at once; on its submitter, within a few seconds
    wait_content "$b/results/far/0/stdout" "first from $uid" 10
    exec {bfd}<"$b/results/far/0/stdout" # a reader on the volunteer, holding its live file
    wait_content "$a/results/far/0/stdout" "first from $uid" 10
    wait_content "$a/results/far/0/stderr" "an error line" 10
    assert_eq "stderr stdout" "$(ls "$a/results/far/0" | tr '\n' ' ' | sed 's/ $//')" "the running task on A"
    expect_erofs sh -c 'echo x >"$1"' _ "$a/results/far/0/stdout"
    tailpid=$(follow "$a/results/far/0/stdout" "$T_CASE/tail.out")
    wait_content "$T_CASE/tail.out" "first from $uid" 10
    release_gate "$uid" "the last line"
    # tail -f on the submitter reads on to the end: the copy is completed from the result
    wait_content "$T_CASE/tail.out" "the last line" 20
    st=$(wait_job "$a" far 60)
    assert_eq done "$(field state <<<"$st")" "state on A"
    assert_file_eq "$a/results/far/0/stdout" "first from $uid"$'\n'"the last line"
    assert_file_eq "$a/results/far/0/exit_code" 0
    kill -0 "$tailpid" 2>/dev/null || fail "tail -f gave up: $(cat "$T_CASE/tail.out.err")"
    assert_file_eq "$T_CASE/tail.out" "first from $uid"$'\n'"the last line"
    # the copies are gone from A's data directory once the task is decided (a state: bounded)
    wait_until 10 '[ -z "$(find "$(data_dir A)/live" -type f -print -quit)" ]' "A's live copies removed"
    # On B, the reader reads on to the end, even once B's copy of the result is gone (A has it)
    # and results/far/0 there is A's result, mirrored.
    id=$(status_field "$a" far id)
    wait_until 20 '[ -e "$b/results/far/0/exit_code" ] && [ ! -e "$(data_dir B)/results/$id/0" ]' \
        "B mirrors A's result and drops its own copy"
    assert_eq "$(printf 'first from %s\nthe last line\n' "$uid" | wc -c)" "$(stat -L -c %s "/dev/fd/$bfd")" \
        "the size of B's live file, held open"
    assert_eq "first from $uid"$'\n'"the last line" "$(cat <&"$bfd")" "what B's reader reads"
    exec {bfd}<&-
    assert_file_eq "$b/results/far/0/stdout" "first from $uid"$'\n'"the last line"
    unfollow "$tailpid" A
    wait_until 10 "! ls -l /proc/$(peer_pid B)/fd 2>/dev/null | grep -qE 'stdout|stderr'" "B let go of the file"
    stop_peer B
    stop_peer A
}

t_a_retry_does_not_mix_runs() {
    local ub=64970 uc=64980
    start_peer A --port 0 --slots 0 --lease-ms 1500
    local a url st
    a=$(mnt A)
    url=$(peer_field "$a" http)
    start_peer B --port 0 --slots 1 --peer "$url" --uid-base "$ub"
    publish_job "$a" retry "$GATE_RUN"
    gate_fifo "$ub" >/dev/null
    wait_content "$a/results/retry/0/stdout" "first from $ub" 10
    kill9_peer B # B vanishes mid-task: its lease runs out, the task runs again elsewhere
    start_peer C --port 0 --slots 1 --peer "$url" --uid-base "$uc"
    gate_fifo "$uc" >/dev/null
    wait_content "$a/results/retry/0/stdout" "first from $uc" 20
    assert_not_contains "$(cat "$a/results/retry/0/stdout")" "first from $ub" "C's run's live output"
    release_gate "$uc" "done on C"
    st=$(wait_job "$a" retry 60)
    assert_eq done "$(field state <<<"$st")" "state on A"
    assert_file_eq "$a/results/retry/0/stdout" "first from $uc"$'\n'"done on C"
    stop_peer C
    stop_peer A
}

# spost KEY URL BODYFILE: a POST of BODYFILE to URL signed by KEY's key for the peer at URL's base
# (as a volunteer sends live output); prints "CODE BODY".
spost() {
    local key=$1 url=$2 file=$3 base target to
    base=${url%%/v1/*}
    target=${url#"$base"}
    to=$(curl -sS "$base/v1/id" | sed -n 's/.*"key":"\([0-9a-f]\{64\}\)".*/\1/p')
    [ -n "$to" ] || fail "no key from $base/v1/id"
    local -a h
    mapfile -t h < <("$PREON" sign --key "$key" --to "$to" POST "$target")
    [ "${#h[@]}" = 4 ] || fail "preon sign gave no headers for $target"
    curl -sS -o "$T_CASE/spost.body" -w '%{http_code}' -H "${h[0]}" -H "${h[1]}" -H "${h[2]}" -H "${h[3]}" \
        -H 'Content-Type: application/octet-stream' --data-binary "@$file" "$url"
    printf ' %s\n' "$(cat "$T_CASE/spost.body")"
}

# output_query RUN OUTOFF OUTLEN ERROFF ERRLEN FILE: the query of an update whose body is FILE.
output_query() {
    printf 'run=%s&out=%s&outlen=%s&err=%s&errlen=%s&sha=%s' "$1" "$2" "$3" "$4" "$5" \
        "$(sha256sum <"$6" | cut -c1-64)"
}

t_only_the_lease_holder_sends_output() {
    start_peer A --port 0 --slots 0
    local a url id k other q ans
    a=$(mnt A)
    url=$(peer_field "$a" http)
    publish_job "$a" held 'echo never runs here' "tasks = 2"
    wait_status "$a" held state running
    id=$(status_field "$a" held id)
    k=$(test_key worker)
    other=$(test_key other)
    printf 'hello from the worker\n' >"$T_CASE/b1"
    q=$(output_query 1 0 22 0 0 "$T_CASE/b1")
    # nobody holds task 0's lease yet: refused, nothing shown
    ans=$(spost "$k" "$url/v1/output/$id/0?peer=http://127.0.0.1:9&$q" "$T_CASE/b1")
    assert_eq 409 "${ans%% *}" "an update without the lease"
    [ ! -e "$a/results/held/0" ] || fail "results/held/0 shows output no lease holder sent"
    # the worker key takes task 0's lease (as a volunteer asks for one)
    ans=$(scurl "$k" "$url/v1/lease/$id?peer=http://127.0.0.1:9&n=1")
    assert_contains "$ans" '"tasks":[0]' "the lease answer"
    ans=$(spost "$other" "$url/v1/output/$id/0?peer=http://127.0.0.1:9&$q" "$T_CASE/b1")
    assert_eq 409 "${ans%% *}" "an update from another key than the holder's"
    ans=$(spost "$k" "$url/v1/output/$id/1?peer=http://127.0.0.1:9&$q" "$T_CASE/b1")
    assert_eq 409 "${ans%% *}" "an update of a task the key does not hold"
    # the holder's bad updates change nothing
    ans=$(spost "$k" "$url/v1/output/$id/0?peer=http://127.0.0.1:9&$(output_query 1 0 21 0 0 "$T_CASE/b1")" "$T_CASE/b1")
    assert_eq 400 "${ans%% *}" "a body of another length than the query says"
    printf 'hello from the wurker\n' >"$T_CASE/b2"
    ans=$(spost "$k" "$url/v1/output/$id/0?peer=http://127.0.0.1:9&$(output_query 1 0 22 0 0 "$T_CASE/b1")" "$T_CASE/b2")
    assert_eq 400 "${ans%% *}" "a body that is not the one sha= names"
    ans=$(spost "$k" "$url/v1/output/$id/0?peer=http://127.0.0.1:9&run=1&out=0&outlen=40000&err=0&errlen=0&sha=$(printf '%064d' 0)" "$T_CASE/b1")
    assert_eq 400 "${ans%% *}" "an update over WIRE_MAX_OUTPUT_CHUNK"
    ans=$(scurl "$k" "$url/v1/output/$id/0?peer=http://127.0.0.1:9&$q")
    assert_eq '{"error":"output is sent with POST, the rest with GET"}' "$ans" "a GET of output"
    [ ! -e "$a/results/held/0/stdout" ] || [ ! -s "$a/results/held/0/stdout" ] || fail "a refused update was kept"
    # the holder's update is shown; sent again, it changes nothing
    ans=$(spost "$k" "$url/v1/output/$id/0?peer=http://127.0.0.1:9&$q" "$T_CASE/b1")
    assert_eq 200 "${ans%% *}" "the holder's update"
    ans=$(spost "$k" "$url/v1/output/$id/0?peer=http://127.0.0.1:9&$q" "$T_CASE/b1")
    assert_eq 200 "${ans%% *}" "the same update again"
    assert_file_eq "$a/results/held/0/stdout" "hello from the worker"
    # stdout and stderr in one body, from where each goes on
    printf 'more\nto stderr\n' >"$T_CASE/b3"
    ans=$(spost "$k" "$url/v1/output/$id/0?peer=http://127.0.0.1:9&$(output_query 1 22 5 0 10 "$T_CASE/b3")" "$T_CASE/b3")
    assert_eq 200 "${ans%% *}" "an update of both streams"
    assert_file_eq "$a/results/held/0/stdout" "hello from the worker"$'\n'"more"
    assert_file_eq "$a/results/held/0/stderr" "to stderr"
    # another run of the task by the same worker: a new copy, nothing of the last run's in it
    printf 'run two\n' >"$T_CASE/b4"
    ans=$(spost "$k" "$url/v1/output/$id/0?peer=http://127.0.0.1:9&$(output_query 2 0 8 0 0 "$T_CASE/b4")" "$T_CASE/b4")
    assert_eq 200 "${ans%% *}" "the next run's update"
    assert_file_eq "$a/results/held/0/stdout" "run two"
    [ ! -s "$a/results/held/0/stderr" ] || fail "the last run's stderr shows in the new run's"
    # an update of the earlier run, late: refused, the later run stays shown
    printf 'late\n' >"$T_CASE/b5"
    ans=$(spost "$k" "$url/v1/output/$id/0?peer=http://127.0.0.1:9&$(output_query 1 27 5 0 0 "$T_CASE/b5")" "$T_CASE/b5")
    assert_eq 409 "${ans%% *}" "a late update of an earlier run"
    assert_file_eq "$a/results/held/0/stdout" "run two"
    # a peer stopped leaves its copies (it stops at once); the next start removes them
    stop_peer A
    [ -n "$(find "$(data_dir A)/live" -type f -print -quit)" ] || fail "no copy left in live/ to test the restart with"
    start_peer A --port 0 --slots 0
    [ -z "$(find "$(data_dir A)/live" -type f -print -quit)" ] || fail "copies of the last run of the peer left in live/"
    stop_peer A
}

# The copies of all tasks' output on the submitter are bounded by --max-live (an update that could
# take them past it gets 503 and changes nothing), and they go when the job is cancelled.
t_the_copies_are_bounded_and_go_with_the_job() {
    start_peer A --port 0 --slots 0 --max-live 1000
    local a url id k ans q
    a=$(mnt A)
    url=$(peer_field "$a" http)
    publish_job "$a" capped 'echo never runs here' "tasks = 2"
    wait_status "$a" capped state running
    id=$(status_field "$a" capped id)
    k=$(test_key worker)
    ans=$(scurl "$k" "$url/v1/lease/$id?peer=http://127.0.0.1:9&n=2")
    assert_contains "$ans" '"tasks":[0,1]' "the lease answer"
    head -c 400 /dev/zero | tr '\0' a >"$T_CASE/b400"
    # 400 bytes, counted with the most an update may add (a skip line, the mark): within 1000
    ans=$(spost "$k" "$url/v1/output/$id/0?peer=http://127.0.0.1:9&$(output_query 1 0 400 0 0 "$T_CASE/b400")" "$T_CASE/b400")
    assert_eq 200 "${ans%% *}" "an update within --max-live"
    assert_eq 400 "$(stat -c %s "$a/results/capped/0/stdout")" "the copy's size"
    # another task's, or more of the same: past 1000 bytes in all: refused, nothing kept
    ans=$(spost "$k" "$url/v1/output/$id/1?peer=http://127.0.0.1:9&$(output_query 1 0 400 0 0 "$T_CASE/b400")" "$T_CASE/b400")
    assert_eq 503 "${ans%% *}" "an update of another task past --max-live"
    assert_contains "$ans" "max-live" "the answer says why"
    [ ! -e "$a/results/capped/1/stdout" ] || fail "an update past --max-live was kept"
    q=$(output_query 1 400 400 0 0 "$T_CASE/b400")
    ans=$(spost "$k" "$url/v1/output/$id/0?peer=http://127.0.0.1:9&$q" "$T_CASE/b400")
    assert_eq 503 "${ans%% *}" "more of the same task past --max-live"
    assert_eq 400 "$(stat -c %s "$a/results/capped/0/stdout")" "the copy's size after a refused update"
    [ -n "$(find "$(data_dir A)/live" -name "$id.0.*.stdout" -print -quit)" ] || fail "no copy in A's live/"
    # the job cancelled: the copies go, and no more is taken
    rm -r "$a/jobs/capped"
    wait_status "$a" capped state cancelled
    wait_until 10 '[ -z "$(find "$(data_dir A)/live" -type f -print -quit)" ]' "A's copies removed"
    [ ! -e "$a/results/capped/0/stdout" ] || fail "a cancelled job's task still shows live output"
    ans=$(spost "$k" "$url/v1/output/$id/0?peer=http://127.0.0.1:9&$q" "$T_CASE/b400")
    assert_eq 410 "${ans%% *}" "an update of a cancelled job"
    stop_peer A
}

run_tests "$@"
