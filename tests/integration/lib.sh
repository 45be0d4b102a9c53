# shellcheck shell=bash
# The integration-test harness, sourced by every tests/integration/test_*.sh.
#
# A test file defines functions named t_* and ends with `run_tests "$@"`. run_tests runs each t_*
# in its own subshell with its own temporary directory and its own cleanup trap, prints
# "PASS t_name" or "FAIL t_name" (followed by that test's output), and exits non-zero if any failed.
# run-all.sh counts those lines.
#
# Rules the helpers keep (docs/testing.md):
#   - No sleeps as synchronisation. A peer is ready when it writes "ready" to --ready-fd (read with
#     a timeout); a job is over when a read of wait/<name> returns (under `timeout`). The only
#     polling is for states there is no event for (a task count in status/), always bounded.
#   - Every peer started is cleaned up on EXIT, INT and TERM: lazy unmount, then kill by PID
#     (TERM, then KILL after a few seconds), never by name.
#   - Temporary directories are 0755: the sandbox runs tasks as unprivileged uids that must be able
#     to reach their task directories under the peer's data directory.
set -euo pipefail
shopt -s inherit_errexit # so a failure inside $(...) fails the test too

: "${PREON:?set PREON to the preon binary (make integration does)}"
PREON=$(readlink -f -- "$PREON")
: "${PREON_READY_TIMEOUT:=20}" # seconds a peer may take to mount
: "${PREON_WAIT_TIMEOUT:=60}"  # default seconds for wait_job
: "${PREON_TEST_TMP:=${TMPDIR:-/tmp}}"


# Per test-function state (each t_* runs in a subshell, so these start empty every time).
declare -A PEER_PID=() PEER_MNT=() PEER_DATA=() PEER_LOG=() PEER_OUT=()
declare -a CLEANUP_CMDS=()
T_CASE=""
T_NAME=""

# --- assertions ----------------------------------------------------------------------------------

fail() {
    echo "FAILED: $*" >&2
    exit 1
}

# assert_eq EXPECTED ACTUAL [what]
assert_eq() {
    if [ "$1" != "$2" ]; then
        fail "${3:-value}: expected '$1', got '$2'"
    fi
}

# assert_file_eq FILE EXPECTED_CONTENT: the file holds exactly that text (a trailing newline in the
# file is ignored, as $(cat) would).
assert_file_eq() {
    [ -f "$1" ] || fail "$1: no such file"
    local got
    got=$(cat -- "$1") || fail "cannot read $1"
    if [ "$got" != "$2" ]; then
        fail "$1: expected '$2', got '$got'"
    fi
}

# assert_contains HAYSTACK NEEDLE [what]: fixed-string match.
assert_contains() {
    case "$1" in
        *"$2"*) ;;
        *) fail "${3:-text} does not contain '$2'; it is:"$'\n'"$1" ;;
    esac
}

assert_not_contains() {
    case "$1" in
        *"$2"*) fail "${3:-text} contains '$2'; it is:"$'\n'"$1" ;;
        *) ;;
    esac
}

# assert_match TEXT ERE [what]: extended regular expression, case-insensitive.
assert_match() {
    if ! grep -qiE -- "$2" <<<"$1"; then
        fail "${3:-text} does not match /$2/; it is:"$'\n'"$1"
    fi
}

# assert_same_tree A B: same names, same contents (diff -r), so nothing missing, extra or changed.
assert_same_tree() {
    local out
    if ! out=$(diff -r -- "$1" "$2" 2>&1); then
        fail "trees differ: $1 vs $2:"$'\n'"$out"
    fi
}

# assert_fails_with TEXT CMD...: CMD must fail and its stderr must contain TEXT.
assert_fails_with() {
    local want=$1 err rc=0
    shift
    err=$("$@" 2>&1 >/dev/null) || rc=$?
    if [ "$rc" -eq 0 ]; then
        fail "expected failure ($want) but it succeeded: $*"
    fi
    assert_contains "$err" "$want" "stderr of: $*"
}

# expect_erofs CMD...: the command fails with "Read-only file system".
expect_erofs() {
    assert_fails_with "Read-only file system" "$@"
}

# --- temp dirs, cleanup --------------------------------------------------------------------------

# Runs CMD (a string, eval'd) at cleanup, before peers are stopped: for helpers a test started,
# such as a listener.
on_cleanup() {
    CLEANUP_CMDS+=("$1")
}

# _kill_pid PID [GRACE]: TERM, wait up to GRACE seconds (default 5), then KILL; reaps it if it is
# our child. Sets _KILL_RC to its exit status (or 0 if it was not ours to reap).
_kill_pid() {
    local pid=$1 grace=${2:-5}
    _KILL_RC=0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || _KILL_RC=$?; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    _wait_pid "$pid" "$grace" KILL
    _KILL_RC=$_WAIT_RC
}

# _wait_pid PID SECS [SIGNAL]: blocks in `wait` until PID (our child) exits; a watchdog sends
# SIGNAL (default KILL) if it has not after SECS. The watchdog is a subshell blocked in the `read`
# builtin, so killing it leaves no stray process behind. Sets _WAIT_RC to the exit status (128+n
# when killed by signal n).
_wait_pid() {
    local pid=$1 secs=$2 sig=${3:-KILL} wd
    (
        trap - EXIT INT TERM
        read -r -t "$secs" _ <>"$_NEVER" || true # no writer: just a timer with no child process
        kill -"$sig" "$pid" 2>/dev/null || true
    ) &
    wd=$!
    _WAIT_RC=0
    wait "$pid" 2>/dev/null || _WAIT_RC=$?
    kill -KILL "$wd" 2>/dev/null || true # KILL: a TERM could reach it before it drops our traps
    wait "$wd" 2>/dev/null || true
}

_is_mounted() {
    # /proc/self/mounts escapes blanks; our paths have none.
    awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts
}

_cleanup() {
    local name cmd
    trap - EXIT INT TERM
    set +e
    for cmd in "${CLEANUP_CMDS[@]}"; do
        eval "$cmd" >/dev/null 2>&1
    done
    CLEANUP_CMDS=()
    for name in "${!PEER_PID[@]}"; do
        # A peer that died under the test (a crash, a sanitizer report) shows why, which the
        # failure the test saw (ENOTCONN on its mount) does not.
        if ! kill -0 "${PEER_PID[$name]}" 2>/dev/null; then
            echo "peer $name had exited before the cleanup" >&2
            show_peer_output "$name"
        fi
        fusermount3 -u -z "${PEER_MNT[$name]}" >/dev/null 2>&1
        _kill_pid "${PEER_PID[$name]}" 5
    done
    PEER_PID=()
    if [ -n "$T_CASE" ] && [ -d "$T_CASE" ]; then
        # Any mount left under the case dir (a peer we did not start, a failed unmount) is
        # detached first; --one-file-system keeps rm out of anything still attached.
        # (Here-strings, not process substitution: bash 5.2 may warn "wait_for: No record of
        # process" when a process substitution is reaped inside a trap.)
        local m left
        left=$(awk -v t="$T_CASE/" 'index($2, t) == 1 { print $2 }' /proc/self/mounts)
        while read -r m; do
            [ -n "$m" ] && umount -l "$m" 2>/dev/null
        done <<<"$left"
        rm -rf --one-file-system -- "$T_CASE"
    fi
}

# --- peers ---------------------------------------------------------------------------------------

# Every peer of a case runs the jobs of every other (a volunteer trusts only its own key unless told
# otherwise, docs/security.md): its key is made before it starts, endorsed by the case's pool
# authority ($(test_key authority)), and the authority's key is in its DATA/trusted/. PEER_TRUST=own
# start_peer ... leaves a peer to the default (its own key only; a test may then configure it).
_peer_trust() {
    local d=$1 auth
    [ "${PEER_TRUST:-authority}" != own ] || return 0
    auth=$(test_key authority)
    [ -e "$d/key" ] || "$PREON" keygen --out "$d/key" >/dev/null 2>&1 || fail "preon keygen --out $d/key failed"
    mkdir -p "$d/trusted" "$d/endorsements"
    "$PREON" id --key "$auth" >"$d/trusted/test-authority" || fail "preon id --key $auth failed"
    "$PREON" endorse --key "$auth" --note "the test pool" "$("$PREON" id --key "$d/key")" \
        >"$d/endorsements/test-authority" || fail "preon endorse failed"
}

# start_peer NAME [preon mount options...]
# Mounts a peer at $T_CASE/NAME/mnt with data in $T_CASE/NAME/data and log in $T_CASE/NAME/log
# (the same dirs again if NAME was started before: that is how a restart is tested; --log is
# always passed, so do not pass another). Returns once
# the peer has written "ready" on --ready-fd; fails the test if it died or timed out first.
# Afterwards: $(mnt NAME), $(peer_pid NAME), ${PEER_LOG[NAME]}.
start_peer() {
    local name=$1
    shift
    local dir="$T_CASE/$name"
    local m="$dir/mnt" d="$dir/data" fifo="$dir/ready.fifo"
    mkdir -p "$dir" "$d"
    # A dead mount left by kill -9 makes mkdir fail (ENOTCONN); the peer itself must clear it.
    mkdir -p "$m" 2>/dev/null || true
    chmod 755 "$dir"
    PEER_MNT[$name]=$m
    PEER_DATA[$name]=$d
    PEER_LOG[$name]=$dir/log
    PEER_OUT[$name]=$dir/out
    rm -f "$fifo"
    mkfifo "$fifo"
    _peer_trust "$d"
    # fd 3 of the peer is the fifo's write end. Opening a fifo blocks until both ends are open, so
    # the background child opens it and we open the read end; if the peer dies before writing, the
    # read sees end-of-file at once instead of waiting for the timeout.
    # PEER_WRAP: a command the peer runs under, e.g. "nsenter --net=/run/netns/X" (it must exec
    # preon itself, so that $! is the peer's PID).
    local wrap=()
    [ -z "${PEER_WRAP:-}" ] || read -ra wrap <<<"$PEER_WRAP"
    "${wrap[@]}" "$PREON" mount -f --data "$d" --ready-fd 3 --log "$dir/log" "$@" "$m" \
        3>"$fifo" </dev/null >>"$dir/out" 2>&1 &
    PEER_PID[$name]=$!
    local rfd line="" rrc=0
    exec {rfd}<"$fifo"
    read -r -t "$PREON_READY_TIMEOUT" -u "$rfd" line || rrc=$?
    exec {rfd}<&-
    rm -f "$fifo"
    if [ "$rrc" -ne 0 ] || [ "$line" != ready ]; then
        local why
        if [ "$rrc" -gt 128 ]; then
            why="no 'ready' within ${PREON_READY_TIMEOUT}s"
        elif [ "$rrc" -ne 0 ]; then
            why="it closed the ready fd without writing 'ready'"
        else
            why="it wrote '$line' instead of 'ready'"
        fi
        if ! kill -0 "${PEER_PID[$name]}" 2>/dev/null; then
            local prc=0
            wait "${PEER_PID[$name]}" 2>/dev/null || prc=$?
            why="$why; it exited with status $prc"
        fi
        show_peer_output "$name"
        fail "peer $name did not become ready: $why"
    fi
    _is_mounted "$m" || fail "peer $name said ready but $m is not a mount point"
}

mnt() {
    [ -n "${PEER_MNT[$1]:-}" ] || fail "no peer named $1"
    echo "${PEER_MNT[$1]}"
}

data_dir() {
    [ -n "${PEER_DATA[$1]:-}" ] || fail "no peer named $1"
    echo "${PEER_DATA[$1]}"
}

peer_pid() {
    [ -n "${PEER_PID[$1]:-}" ] || fail "peer $1 is not running"
    echo "${PEER_PID[$1]}"
}

show_peer_output() {
    local f
    for f in "${PEER_OUT[$1]:-}" "${PEER_LOG[$1]:-}"; do
        if [ -n "$f" ] && [ -s "$f" ]; then
            echo "--- $f (last 40 lines)" >&2
            tail -n 40 "$f" >&2
        fi
    done
}

# _reap_peer NAME SECS WHAT: waits (bounded) for the peer to exit and asserts it exited 0.
_reap_peer() {
    local name=$1 secs=$2 what=$3 pid=${PEER_PID[$1]}
    _wait_pid "$pid" "$secs" KILL
    unset 'PEER_PID[$name]'
    if [ "$_WAIT_RC" -ne 0 ]; then
        show_peer_output "$name"
        if [ "$_WAIT_RC" -eq 137 ]; then
            fail "peer $name did not exit within ${secs}s after $what (killed)"
        fi
        fail "peer $name exited $_WAIT_RC after $what, want 0"
    fi
    if _is_mounted "${PEER_MNT[$name]}"; then
        fail "peer $name exited but ${PEER_MNT[$name]} is still mounted"
    fi
}

# stop_peer NAME: unmount with fusermount3 -u; the daemon must exit 0 within 10 s.
stop_peer() {
    local name=$1 err
    [ -n "${PEER_PID[$name]:-}" ] || fail "peer $name is not running"
    if ! err=$(fusermount3 -u "${PEER_MNT[$name]}" 2>&1); then
        fail "fusermount3 -u ${PEER_MNT[$name]} failed: $err"
    fi
    _reap_peer "$name" 10 "fusermount3 -u"
}

# term_peer NAME: SIGTERM; the daemon must unmount and exit 0 within 10 s.
term_peer() {
    local name=$1
    [ -n "${PEER_PID[$name]:-}" ] || fail "peer $name is not running"
    kill -TERM "${PEER_PID[$name]}"
    _reap_peer "$name" 10 "SIGTERM"
}

# kill9_peer NAME [--keep-mount]: SIGKILL, reap, then lazily unmount the dead mount unless
# --keep-mount (to test that the next start clears it itself).
kill9_peer() {
    local name=$1 keep=${2:-}
    [ -n "${PEER_PID[$name]:-}" ] || fail "peer $name is not running"
    kill -KILL "${PEER_PID[$name]}"
    wait "${PEER_PID[$name]}" 2>/dev/null || true
    unset 'PEER_PID[$name]'
    if [ "$keep" != --keep-mount ]; then
        fusermount3 -u -z "${PEER_MNT[$name]}" >/dev/null 2>&1 || true
    fi
}

# --- jobs ----------------------------------------------------------------------------------------

# make_job DIR SCRIPT-BODY [preon.job line...]: a job directory whose executable `run` is
# "#!/bin/sh" + SCRIPT-BODY; further arguments become the lines of preon.job.
make_job() {
    local dir=$1 body=$2
    shift 2
    mkdir -p "$dir"
    printf '#!/bin/sh\n%s\n' "$body" >"$dir/run"
    chmod 755 "$dir/run"
    if [ "$#" -gt 0 ]; then
        printf '%s\n' "$@" >"$dir/preon.job"
    fi
}

# src_dir NAME: a fresh directory under the case dir for building job sources.
src_dir() {
    local d="$T_CASE/src/$1"
    mkdir -p "$d"
    echo "$d"
}

# wait_job M NAME [SECS]: blocks on a read of M/wait/NAME (under `timeout`) and prints the
# status text it returns. Fails the test on time-out or read error. Use as: st=$(wait_job ...)
# in a plain assignment (not `local st=$(...)`, which would hide the failure).
wait_job() {
    local m=$1 name=$2 secs=${3:-$PREON_WAIT_TIMEOUT} out rc=0
    out=$(timeout -k 5 "$secs" cat -- "$m/wait/$name") || rc=$?
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "--- status/$name at time-out:" >&2
        timeout 5 cat -- "$m/status/$name" >&2 2>/dev/null || true
        fail "job $name not over after ${secs}s"
    elif [ "$rc" -ne 0 ]; then
        fail "reading $m/wait/$name failed (exit $rc)"
    fi
    printf '%s\n' "$out"
}

# field KEY <<<TEXT: the value of the first "KEY: value" line.
field() {
    sed -n "s/^$1: //p" | head -n 1
}

# status_field M NAME KEY: one field of M/status/NAME.
status_field() {
    local text
    text=$(timeout 10 cat -- "$1/status/$2") || fail "cannot read $1/status/$2"
    field "$3" <<<"$text"
}

# wait_status M NAME KEY VALUE [SECS]: polls status/NAME (bounded, 50 ms) until KEY is VALUE.
# For states that have no blocking read (e.g. "running: 2"); job completion uses wait_job.
wait_status() {
    local m=$1 name=$2 key=$3 want=$4 secs=${5:-20} got="" end
    end=$((SECONDS + secs))
    while [ "$SECONDS" -le "$end" ]; do
        got=$(status_field "$m" "$name" "$key" 2>/dev/null || true)
        [ "$got" = "$want" ] && return 0
        sleep 0.05
    done
    echo "--- status/$name:" >&2
    timeout 5 cat -- "$m/status/$name" >&2 2>/dev/null || true
    fail "status/$name never had '$key: $want' within ${secs}s (last: '$got')"
}

# preon_wait M NAME: runs `preon wait` (bounded) and prints its exit code.
preon_wait_rc() {
    local rc=0
    timeout -k 5 "$PREON_WAIT_TIMEOUT" "$PREON" wait --mount "$1" "$2" >/dev/null 2>&1 || rc=$?
    echo "$rc"
}

# peer_field M KEY: one field of the peer file M/peer (e.g. http, blocks-served).
peer_field() {
    local text
    text=$(timeout 10 cat -- "$1/peer") || fail "cannot read $1/peer"
    field "$2" <<<"$text"
}

# wait_until SECS CONDITION WHAT: bounded poll until the bash CONDITION (a string, eval'd) holds: for
# states that no event announces (a file freed in the thread pool, a counter another peer moves).
wait_until() {
    local end=$((SECONDS + $1))
    until eval "$2"; do
        [ "$SECONDS" -le "$end" ] || fail "never within ${1}s: $3"
        sleep 0.1
    done
}

# wait_listed M NAME SECS: bounded poll until a remote job NAME shows in M/jobs (peers discover each
# other's jobs once a second: a state, not an event).
wait_listed() {
    local end=$((SECONDS + $3))
    while [ "$SECONDS" -le "$end" ]; do
        [ -e "$1/jobs/$2/run" ] && return 0
        sleep 0.1
    done
    fail "job $2 never appeared in $1/jobs"
}

# publish_idle M NAME TASKS [preon.job line...]: publishes a job of TASKS `true` tasks (by the
# dot-name + mv idiom), waits until it runs, and prints its id.
# publish_job MNT NAME BODY [preon.job lines...]: copies a job whose run script is BODY into MNT's
# jobs/ (under a dot name, then renamed: published at once) and returns without waiting.
publish_job() {
    local m=$1 name=$2 body=$3 src
    shift 3
    src=$(src_dir "$name")
    make_job "$src" "$body" "$@"
    cp -r -- "$src" "$m/jobs/.$name"
    mv -- "$m/jobs/.$name" "$m/jobs/$name"
}

publish_idle() {
    local m=$1 name=$2 n=$3
    shift 3
    publish_job "$m" "$name" 'true' "tasks = $n" "$@"
    wait_status "$m" "$name" state running
    status_field "$m" "$name" id
}

# --when idle's owner, faked (docs/usage.md, "Only when idle"): a FIFO as a peer's only input
# device (--input-dir), where a byte written is a keystroke.

# fake_input NAME: a directory holding one fake input device (a FIFO), printed.
fake_input() {
    local d="$T_CASE/input.$1"
    mkdir -p "$d"
    mkfifo "$d/event0"
    echo "$d"
}

# owner_stays DIR: the owner types on DIR's device every 0.2 s (the presence under test, not a
# synchronisation) until owner_leaves. Each write waits for the peer to read (a FIFO), bounded.
owner_stays() {
    (
        trap - EXIT INT TERM
        while :; do
            timeout 2 sh -c 'printf x >"$1"' _ "$1/event0"
            sleep 0.2
        done
    ) >/dev/null 2>&1 &
    OWNER_PID=$!
    on_cleanup "kill $OWNER_PID"
}

owner_leaves() {
    kill "$OWNER_PID" 2>/dev/null || true
    wait "$OWNER_PID" 2>/dev/null || true
}

# wait_log NAME ERE SECS: bounded poll until the peer's log has a line matching ERE (a log line is
# a state, not an event we can block on).
wait_log() {
    local end=$((SECONDS + $3))
    while [ "$SECONDS" -le "$end" ]; do
        grep -qE -- "$2" "${PEER_LOG[$1]}" && return 0
        sleep 0.05
    done
    fail "peer $1's log never matched '$2'"
}

# test_key NAME: the path of a key file of this case's own for a fake peer NAME (made once).
test_key() {
    local k="$T_CASE/key.$1"
    [ -e "$k" ] || "$PREON" keygen --out "$k" >/dev/null 2>&1 || fail "preon keygen --out $k failed"
    printf '%s\n' "$k"
}

# scurl KEYFILE URL [curl args...]: curl -sS of URL as a request signed by KEYFILE's key for the
# peer at URL's base (its key from GET /v1/id), as peers sign what changes state (docs/security.md).
scurl() {
    local key=$1 url=$2
    shift 2
    local -a req
    presign req "$key" "$url"
    curl -sS "$@" "${req[@]}"
}

# presign VAR KEY URL: VAR=(curl's arguments for a GET of URL signed by KEY now, to send later
# within the replay window: `curl "${VAR[@]}"`).
presign() {
    local -n _req=$1
    local key=$2 url=$3 base target to
    base=${url%%/v1/*}
    target=${url#"$base"}
    to=$(curl -sS "$base/v1/id" | sed -n 's/.*"key":"\([0-9a-f]\{64\}\)".*/\1/p')
    [ -n "$to" ] || fail "no key from $base/v1/id"
    local -a h
    mapfile -t h < <("$PREON" sign --key "$key" --to "$to" GET "$target")
    [ "${#h[@]}" = 4 ] || fail "preon sign gave no headers for $target"
    _req=(-H "${h[0]}" -H "${h[1]}" -H "${h[2]}" -H "${h[3]}" "$url")
}

# publish_random M NAME MIB: publishes a job NAME (task: true) with a MIB MiB random input.bin on
# the peer mounted at M and waits for it to be done; prints the source directory.
publish_random() {
    local m=$1 name=$2 mib=$3 src st
    src=$(src_dir "$name")
    make_job "$src" 'true'
    head -c $((mib * 1024 * 1024)) /dev/urandom >"$src/input.bin"
    cp -r -- "$src" "$m/jobs/$name"
    st=$(wait_job "$m" "$name" 60)
    assert_eq "done" "$(field state <<<"$st")" "state of $name on its publisher"
    echo "$src"
}

# signed_result KEY JOB_ID TASK MANIFEST EXIT: "&rid=...&rsig=..." for a done report of the result
# whose manifest (canonical JSON) is MANIFEST, signed by KEY's worker (docs/security.md).
signed_result() {
    local rid sig
    rid=$(printf '%s' "$4" | sha256sum | cut -c1-64)
    sig=$("$PREON" sign --key "$1" --result "$2" "$3" "$rid" "$5") || fail "preon sign --result failed"
    printf '&rid=%s&rsig=%s' "$rid" "$sig"
}

# free_port: a loopback port nothing listens on (for a fake peer, or a proxy).
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 30000))
        ss -Hltn "sport = :$port" | grep -q . || break
    done
    printf '%s\n' "$port"
}

# _fake_listening PID PORT WHAT: the fake (PID, stopped at cleanup) listens on PORT; sets FAKE_URL.
_fake_listening() {
    on_cleanup "_kill_pid $1 2"
    local end=$((SECONDS + 10))
    until ss -Hltn "sport = :$2" | grep -q .; do # bounded: until nc listens
        [ "$SECONDS" -le "$end" ] || fail "the fake $3 never listened on $2"
        sleep 0.05
    done
    FAKE_URL="http://127.0.0.1:$2"
}

# fake_server BODY LOG [KEY]: serves BODY (JSON) to every request on a free loopback port, one
# connection at a time (nc -k), appending each request's first line to LOG; sets FAKE_URL. With KEY
# (64 hex), GET /v1/id answers {"key":"KEY"} instead, so peers can sign requests for it. Stopped at
# cleanup.
fake_server() {
    local body=$1 log=$2 key=${3:-} port
    port=$(free_port)
    (
        COPROC_PID=
        trap '[ -z "$COPROC_PID" ] || kill "$COPROC_PID" 2>/dev/null; exit 0' TERM # its nc goes with it
        # One nc that keeps listening (-k): each client reads one answer (Content-Length, Connection:
        # close) and hangs up, and the next is accepted at once: no gap between connections.
        coproc nc -k -l 127.0.0.1 "$port"
        local line out
        while IFS= read -r line <&"${COPROC[0]}"; do
            line=${line%$'\r'}
            case "$line" in "GET "* | "HEAD "*) ;; *) continue ;; esac # headers of the request
            printf '%s\n' "$line" >>"$log"
            out=$body
            if [ -n "$key" ] && [[ $line == "GET /v1/id "* ]]; then out="{\"key\":\"$key\"}"; fi
            printf 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
                "$(LC_ALL=C; printf '%s' "${#out}")" "$out" >&"${COPROC[1]}" 2>/dev/null || true
        done
    ) &
    _fake_listening $! "$port" server
}

# fake_tree DIR LOG: like fake_server, but a fake peer with many answers: GET /a/b?query is
# answered with the file DIR/a/b (200), or 404 if there is none; each request's first line is
# appended to LOG; sets FAKE_URL. A test writes the answers (a /v1/jobs listing, manifests, a results
# list, the key at v1/id as {"key":"..."}) before or while it runs. Stopped at cleanup.
fake_tree() {
    local dir=$1 log=$2 port
    port=$(free_port)
    (
        COPROC_PID=
        trap '[ -z "$COPROC_PID" ] || kill "$COPROC_PID" 2>/dev/null; exit 0' TERM
        coproc nc -k -l 127.0.0.1 "$port"
        local line path file
        while IFS= read -r line <&"${COPROC[0]}"; do
            line=${line%$'\r'}
            case "$line" in "GET "* | "HEAD "*) ;; *) continue ;; esac
            printf '%s\n' "$line" >>"$log"
            path=${line#* }
            path=${path%% *}
            path=${path%%\?*}
            file=$dir$path
            case "$path" in *..*) file= ;; esac # the fake serves its tree only
            if [ -n "$file" ] && [ -f "$file" ]; then
                { printf 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n' \
                    "$(wc -c <"$file")" && cat -- "$file"; } >&"${COPROC[1]}" 2>/dev/null || true
            else
                printf 'HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}' \
                    >&"${COPROC[1]}" 2>/dev/null || true
            fi
        done
    ) &
    _fake_listening $! "$port" peer
}

# sign_hex KEYFILE TEXT: the Ed25519 signature of TEXT's bytes by KEYFILE's key (PEM, as preon
# keygen makes it), in lower-case hex: what a fake peer signs jobs and results with.
sign_hex() {
    local msg="$T_CASE/.sign.$$"
    printf '%s' "$2" >"$msg"
    openssl pkeyutl -sign -inkey "$1" -rawin -in "$msg" | od -An -v -tx1 | tr -d ' \n'
    rm -f -- "$msg"
}

# pct HEX: percent-encodes every byte of a hex string (a BitTorrent info_hash in a query).
pct() { sed 's/../%&/g' <<<"$1"; }

# start_opentracker HASH...: runs opentracker on a free port with the hashes whitelisted; sets
# OTPORT. opentracker chroots to its directory and drops to nobody.
start_opentracker() {
    command -v opentracker >/dev/null || fail "opentracker is not installed (scripts/install-deps.sh installs it)"
    local d="$T_CASE/ot" h try pid
    mkdir -p "$d"
    for h in "$@"; do echo "$h"; done >"$d/whitelist.txt"
    chmod 755 "$d"
    chmod 644 "$d/whitelist.txt"
    for try in 1 2 3 4 5; do
        OTPORT=$((20000 + RANDOM % 30000))
        if ss -Hltn "sport = :$OTPORT" | grep -q .; then continue; fi
        printf 'listen.tcp 127.0.0.1:%s\naccess.whitelist /whitelist.txt\ntracker.rootdir %s\ntracker.user nobody\n' \
            "$OTPORT" "$d" >"$d/ot.conf"
        opentracker -f "$d/ot.conf" >"$d/out" 2>&1 </dev/null &
        pid=$!
        on_cleanup "_kill_pid $pid 5"
        local end=$((SECONDS + 10))
        while [ "$SECONDS" -le "$end" ] && kill -0 "$pid" 2>/dev/null; do
            if curl -s -m 2 -o /dev/null "http://127.0.0.1:$OTPORT/scrape?info_hash=$(pct "$1")"; then
                return 0
            fi
            sleep 0.05
        done
    done
    cat "$d/out" >&2
    fail "opentracker did not start"
}


# keep_artifact FILE: copies FILE (a screenshot, say) to $PREON_ARTIFACTS/<test file>/ (default
# /tmp/preon-artifacts), which outlives the test's temporary directory, and has run_tests print its
# path under the test's PASS or FAIL line.
keep_artifact() {
    local dir="${PREON_ARTIFACTS:-/tmp/preon-artifacts}/$(basename -- "$0" .sh)"
    [ -f "$1" ] || fail "no artifact $1 to keep"
    mkdir -p "$dir"
    cp -- "$1" "$dir/" || fail "cannot copy $1 to $dir"
    echo "$dir/$(basename -- "$1")" >>"$_FILE_TMP/$T_NAME.artifacts"
}

# --- running ----------------------------------------------------------------------------------------

# Runs one test function in the current (sub)shell, with its own case dir and cleanup.
_run_one() {
    local t=$1
    T_NAME=$t
    T_CASE=$(mktemp -d "$_FILE_TMP/$t.XXXXXX")
    chmod 755 "$T_CASE"
    trap _cleanup EXIT
    trap '_cleanup; exit 130' INT
    trap '_cleanup; exit 143' TERM
    set -euo pipefail
    "$t"
}

# run_tests [t_name...]: runs the named t_* functions (default: all defined, in file order; the
# PREON_TEST_FILTER environment variable, an ERE, narrows them), each in a subshell.
run_tests() {
    local tests=() t rc out start failed=0
    if [ "$#" -gt 0 ]; then
        tests=("$@")
    else
        local names
        names=$(declare -F | awk '$3 ~ /^t_/ { print $3 }' | _in_file_order)
        while read -r t; do
            [ -n "$t" ] && tests+=("$t")
        done <<<"$names"
    fi
    if [ -n "${PREON_TEST_FILTER:-}" ]; then
        local keep=()
        for t in "${tests[@]}"; do
            if grep -qE -- "$PREON_TEST_FILTER" <<<"$t"; then keep+=("$t"); fi
        done
        tests=("${keep[@]}")
    fi
    for t in "${tests[@]}"; do
        out="$_FILE_TMP/$t.out"
        start=$SECONDS
        # Not inside `if` or `||`: bash disables `set -e` in the whole subshell there.
        set +e
        (_run_one "$t") >"$out" 2>&1 </dev/null
        rc=$?
        set -e
        if [ "$rc" -eq 0 ]; then
            echo "PASS $t ($((SECONDS - start))s)"
        else
            failed=$((failed + 1))
            echo "FAIL $t ($((SECONDS - start))s, exit $rc)"
            sed 's/^/    | /' "$out"
        fi
        if [ -f "$_FILE_TMP/$t.artifacts" ]; then
            sed 's/^/    artifact: /' "$_FILE_TMP/$t.artifacts"
        fi
    done
    [ "$failed" -eq 0 ]
}

# Orders function names as they are defined in the test file (declare -F sorts them).
_in_file_order() {
    local names
    names=$(cat)
    grep -oE '^t_[A-Za-z0-9_]+ *\(\)' "$0" | tr -d ' ()' | grep -Fx -- "$names" || true
}

_NEVER=""
_FILE_TMP=$(mktemp -d "$PREON_TEST_TMP/preon-it.XXXXXX")
chmod 755 "$_FILE_TMP"
_NEVER="$_FILE_TMP/.never"
mkfifo "$_NEVER"
# The file-level trap removes the file's temp dir; each test's own trap has already stopped its
# peers (and a test killed from outside is cleaned by run-all.sh).
trap 'rm -rf --one-file-system -- "$_FILE_TMP"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
