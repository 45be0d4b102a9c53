#!/usr/bin/env bash
# The preon command: --help everywhere, usage errors exit 2, `preon status` and `preon wait`
# against a live mount, the peer file, unmounting by SIGTERM and by fusermount3 -u (exit 0, mount
# gone), and daemonizing without -f.
# shellcheck disable=SC2016 # job scripts are single-quoted on purpose: they expand in the task
. "$(dirname -- "$0")/lib.sh"

# expect_rc WANT CMD...: runs CMD (bounded), asserts its exit code, leaves stdout in $OUT and
# stderr in $ERR.
expect_rc() {
    local want=$1 rc=0
    shift
    timeout -k 5 30 "$@" >"$T_CASE/out" 2>"$T_CASE/err" || rc=$?
    OUT=$(cat "$T_CASE/out")
    ERR=$(cat "$T_CASE/err")
    if [ "$rc" != "$want" ]; then
        fail "exit $rc, want $want: $*"$'\n'"stdout: $OUT"$'\n'"stderr: $ERR"
    fi
}

t_help() {
    expect_rc 0 "$PREON" --help
    assert_match "$OUT" 'usage' "preon --help"
    assert_contains "$OUT" mount "preon --help"
    assert_contains "$OUT" wait "preon --help"
    assert_contains "$OUT" status "preon --help"
    expect_rc 0 "$PREON" mount --help
    assert_match "$OUT" 'usage' "preon mount --help"
    local opt
    for opt in --foreground --data --slots --ready-fd --quiet-ms --log --uid-base --when --idle-after --idle-cpu \
        --idle-grace --input-dir; do
        assert_contains "$OUT" "$opt" "preon mount --help"
    done
    expect_rc 0 "$PREON" wait --help
    assert_match "$OUT" 'usage' "preon wait --help"
    expect_rc 0 "$PREON" status --help
    assert_match "$OUT" 'usage' "preon status --help"
    assert_contains "$OUT" --json "preon status --help"
    expect_rc 0 "$PREON" submit --help
    assert_match "$OUT" 'usage' "preon submit --help"
    for opt in --mount --name --wait; do
        assert_contains "$OUT" "$opt" "preon submit --help"
    done
}

# Every option a command's --help lists is in the man page (docs/preon.1, where "-" is written "\-"),
# and so is every command of preon --help.
t_the_man_page_covers_every_option_and_command() {
    local man cmd opt missing=""
    man="$(dirname -- "$0")/../../docs/preon.1"
    [ -r "$man" ] || fail "no $man"
    for cmd in mount tracker get submit status wait; do
        expect_rc 0 "$PREON" "$cmd" --help
        for opt in $(grep -o -- '--[a-z][a-z-]*' <<<"$OUT" | sort -u); do
            [ "$opt" = --help ] && continue
            grep -qF -- "$(sed 's/-/\\-/g' <<<"$opt")" "$man" || missing="$missing $cmd $opt;"
        done
    done
    expect_rc 0 "$PREON" --help
    for cmd in $(sed -n 's/^  \([a-z][a-z]*\) .*/\1/p' <<<"$OUT"); do
        grep -q "^\.B preon $cmd\$" "$man" || missing="$missing command $cmd;"
    done
    [ -z "$missing" ] || fail "not in docs/preon.1:$missing"
}

# Not root: one line that says so and what to do (it said only "Input/output error": issue 12,
# item 8), and nothing is mounted.
t_mount_as_non_root_says_to_run_as_root() {
    local d
    d=$(mktemp -d /tmp/preon-nonroot.XXXXXX) # reachable by nobody, wherever the test tree is
    on_cleanup "rm -rf -- $d"
    mkdir -p "$d/m" "$d/data"
    cp -- "$PREON" "$d/preon"
    chmod -R a+rwX "$d"
    expect_rc 1 setpriv --reuid=65534 --regid=65534 --clear-groups "$d/preon" mount -f --data "$d/data" "$d/m"
    assert_contains "$ERR" "preon mount: run it as root (for example: sudo preon mount" "stderr as non-root"
    ! mountpoint -q "$d/m" || fail "$d/m is mounted"
}

t_usage_errors_exit_2() {
    expect_rc 2 "$PREON" --no-such-option
    [ -n "$ERR" ] || fail "no message on stderr for an unknown option"
    expect_rc 2 "$PREON" no-such-command
    [ -n "$ERR" ] || fail "no message on stderr for an unknown command"
    expect_rc 2 "$PREON" mount --no-such-option "$T_CASE"
    [ -n "$ERR" ] || fail "no message on stderr for an unknown mount option"
    expect_rc 2 "$PREON" mount
    expect_rc 2 "$PREON" mount --slots many "$T_CASE"
    # The message names the option, whichever way its value was given (it once read "--c", the
    # tail of the value, when the value was a separate argument).
    assert_contains "$ERR" "bad value for --slots: 'many'" "stderr of --slots many"
    expect_rc 2 "$PREON" mount --slots=abc "$T_CASE"
    assert_contains "$ERR" "bad value for --slots: 'abc'" "stderr of --slots=abc"
    expect_rc 2 "$PREON" tracker --port x
    assert_contains "$ERR" "bad value for --port: 'x'" "stderr of preon tracker --port x"
    expect_rc 2 env -u PREON_MOUNT "$PREON" wait
    expect_rc 2 "$PREON" status --mount
    [ ! -e "$T_CASE/jobs" ] || fail "a usage error mounted something"
}

t_status_and_wait() {
    start_peer A --slots 3
    local m src rc
    m=$(mnt A)
    assert_eq 3 "$(field slots <"$m/peer")" "slots in the peer file"
    [ -n "$(field peer <"$m/peer")" ] || fail "the peer file has no 'peer:' line: $(cat "$m/peer")"
    src=$(src_dir j1)
    make_job "$src" 'echo one'
    cp -r -- "$src" "$m/jobs/j1"
    src=$(src_dir j2)
    # Takes a moment, so that `preon wait` really has to block.
    make_job "$src" 'sleep 2; echo two'
    cp -r -- "$src" "$m/jobs/j2"

    # preon wait blocks until the job is over: right after it returns, the job is done.
    expect_rc 0 "$PREON" wait --mount "$m" j2
    assert_eq "done" "$(status_field "$m" j2 state)" "state of j2 once preon wait returned"
    expect_rc 0 env PREON_MOUNT="$m" "$PREON" wait j1
    expect_rc 2 "$PREON" wait --mount "$m" no_such_job
    assert_contains "$ERR" "no such job (ls $m/jobs lists them)" "preon wait's message"
    expect_rc 2 "$PREON" status --mount "$m" no_such_job
    assert_contains "$ERR" "no such job (preon status alone lists them)" "preon status's message"
    expect_rc 2 "$PREON" status --mount "$T_CASE"
    assert_contains "$ERR" "is it a peer's mount? pass --mount DIR or set PREON_MOUNT" "preon status on no mount"

    expect_rc 0 "$PREON" status --mount "$m"
    assert_contains "$OUT" j1 "preon status"
    assert_contains "$OUT" j2 "preon status"
    expect_rc 0 "$PREON" status --mount "$m" j1
    assert_contains "$OUT" "name: j1" "preon status j1"
    assert_contains "$OUT" "state: done" "preon status j1"
    expect_rc 0 env PREON_MOUNT="$m" "$PREON" status j2
    assert_contains "$OUT" "state: done" "preon status j2"
}

# A port another program holds: the message says what to do (it said only "Address already in use").
t_a_taken_port_says_what_to_do() {
    start_peer A --port 0
    local port
    port=$(peer_field "$(mnt A)" http | sed 's/.*://')
    mkdir -p "$T_CASE/b/mnt"
    expect_rc 1 "$PREON" mount -f --port "$port" --data "$T_CASE/b/data" "$T_CASE/b/mnt"
    assert_contains "$ERR" "cannot listen on 127.0.0.1:$port" "stderr"
    assert_contains "$ERR" "pass --port N, or --port 0 for any free one" "stderr"
}

# The job table of `preon status` keeps its columns with a name over 24 characters and a UTF-8
# name (it misaligned both: issue 12, item 8).
t_status_aligns_long_and_utf8_names() {
    start_peer A --slots 2
    local m long utf col line c
    m=$(mnt A)
    long=a-job-name-well-over-twenty-four-characters
    utf=résumé-ünï
    publish_job "$m" "$long" 'true'
    publish_job "$m" "$utf" 'true'
    wait_job "$m" "$long" 30 >/dev/null
    wait_job "$m" "$utf" 30 >/dev/null
    expect_rc 0 "$PREON" status --mount "$m"
    # the column (in characters) where STATE starts, on the header and on each job's line
    col=$(sed -n 's/^\(JOB *\)STATE.*/\1/p' <<<"$OUT" | tr -d '\n' | LC_ALL=C.UTF-8 wc -m)
    [ -n "$col" ] || fail "no header in: $OUT"
    for line in "$long" "$utf"; do
        c=$(grep -F -- "$line " <<<"$OUT" | sed 's/done.*//' | tr -d '\n' | LC_ALL=C.UTF-8 wc -m)
        assert_eq "$col" "$c" "the STATE column of $line"$'\n'"$OUT"
    done
}

t_sigterm_unmounts_cleanly() {
    start_peer A
    local m
    m=$(mnt A)
    [ -d "$m/jobs" ] || fail "no jobs/ in the mount"
    term_peer A # asserts exit 0 and that the mount is gone
    [ ! -e "$m/jobs" ] || fail "jobs/ still visible after SIGTERM"
}

t_fusermount_unmounts_cleanly() {
    start_peer A
    local m
    m=$(mnt A)
    stop_peer A # asserts exit 0 and that the mount is gone
    [ ! -e "$m/jobs" ] || fail "jobs/ still visible after fusermount3 -u"
}

# Identity (issue 9): preon keygen / preon id, and the key a mount makes on its first start.
t_keys_keygen_id_and_the_mounts_own() {
    local k="$T_CASE/k.pem" pub
    expect_rc 0 "$PREON" keygen --out "$k"
    pub=$OUT
    assert_match "$pub" '^[0-9a-f]{64}$' "preon keygen prints the public key"
    assert_eq 600 "$(stat -c %a "$k")" "a new key file's mode"
    grep -q 'BEGIN PRIVATE KEY' "$k" || fail "the key file is not PEM: $(head -c 100 "$k")"
    expect_rc 0 "$PREON" id --key "$k"
    assert_eq "$pub" "$OUT" "preon id --key prints the same key"
    expect_rc 1 "$PREON" keygen --out "$k"
    assert_contains "$ERR" "not replaced" "keygen over an existing key"
    expect_rc 0 "$PREON" id --key "$k"
    assert_eq "$pub" "$OUT" "the key was not replaced"
    chmod 644 "$k"
    expect_rc 1 "$PREON" id --key "$k"
    assert_contains "$ERR" "chmod 600" "a key others may read is refused"
    expect_rc 1 "$PREON" id --data "$T_CASE/none"
    assert_contains "$ERR" "preon keygen" "no key yet: what to do"
    expect_rc 2 "$PREON" id --bogus
    # a mount makes its key on first start, keeps it across restarts, and shows it in peer
    start_peer A
    local d key1
    d=$(data_dir A)
    assert_eq 600 "$(stat -c %a "$d/key")" "the peer's key file's mode"
    expect_rc 0 "$PREON" id --data "$d"
    key1=$OUT
    assert_eq "$key1" "$(field key <"$(mnt A)/peer")" "the peer file's key"
    stop_peer A
    start_peer A
    assert_eq "$key1" "$(field key <"$(mnt A)/peer")" "the key after a restart"
}

t_daemonizes_without_f() {
    local m=$T_CASE/d/mnt d=$T_CASE/d/data pid rc=0 end
    mkdir -p "$m" "$d"
    chmod 755 "$T_CASE/d"
    on_cleanup "fusermount3 -u -z '$m'"
    # Without -f the command returns once the mount is ready, leaving the daemon behind.
    timeout -k 5 30 "$PREON" mount --data "$d" --log "$T_CASE/d/log" "$m" \
        </dev/null >"$T_CASE/d/out" 2>&1 || rc=$?
    assert_eq 0 "$rc" "exit of preon mount without -f ($(cat "$T_CASE/d/out"))"
    _is_mounted "$m" || fail "preon mount returned but $m is not mounted"
    [ -d "$m/jobs" ] || fail "no jobs/ in the mount"
    # The daemon is found by its unique mount path, then handled by PID only.
    pid=$(pgrep -f -- "mount.* $m\$" | head -n 1 || true)
    [ -n "$pid" ] || fail "cannot find the daemon serving $m"
    on_cleanup "kill -KILL $pid"
    fusermount3 -u "$m"
    end=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null; do
        [ "$SECONDS" -le "$end" ] || fail "the daemon did not exit within 10s of fusermount3 -u"
        sleep 0.05
    done
    ! _is_mounted "$m" || fail "$m still mounted"
}

# One peer per data directory and per mount point (issue 11, item 2): a second peer on either is
# refused with a clear error before it mounts anything, and the first keeps running, mounted once.
t_a_second_peer_on_a_busy_data_dir_or_mount_point_is_refused() {
    start_peer A --port 0 --slots 0
    local out rc=0 other="$T_CASE/other"
    mkdir -p "$other/mnt" "$other/data"
    out=$(timeout 20 "$PREON" mount -f --data "$(data_dir A)" --port 0 "$other/mnt" 2>&1 </dev/null) || rc=$?
    assert_eq 1 "$rc" "the exit of a peer started on A's data directory"
    assert_contains "$out" "the data directory $(data_dir A) is in use by another peer (pid $(peer_pid A))" "its message"
    ! _is_mounted "$other/mnt" || fail "the refused peer mounted $other/mnt"
    rc=0
    out=$(timeout 20 "$PREON" mount -f --data "$other/data" --port 0 "$(mnt A)" 2>&1 </dev/null) || rc=$?
    assert_eq 1 "$rc" "the exit of a peer started on A's mount point"
    assert_contains "$out" "$(mnt A) is already a mount point" "its message"
    assert_eq 1 "$(awk -v m="$(mnt A)" '$5 == m' /proc/self/mountinfo | wc -l)" "mounts at A's mount point"
    assert_match "$(cat "$(mnt A)/peer")" "key: [0-9a-f]{64}" "A's peer file, after both"
    # the lock goes with its holder: A stopped, a peer on its data directory starts
    stop_peer A
    start_peer A --port 0 --slots 0
}

run_tests "$@"
