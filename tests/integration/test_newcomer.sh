#!/usr/bin/env bash
# A newcomer's first minutes (issue 7, item 1): the README's run command, exactly as written, with a
# fresh HOME (no ~/.local/share, no ~/preon), then the README's two-minute tour, extracted from
# README.md and run as a shell script; a mount point that does not exist gets an error that says
# what to do; and every program these use comes from a package scripts/install-deps.sh installs, so
# a missing install step cannot hide behind what the development machine happened to have.
# shellcheck disable=SC2016
. "$(dirname -- "$0")/lib.sh"

ROOT=$(cd -- "$(dirname -- "$0")/../.." && pwd)

# _code_block HEADING: the first ```sh block after the markdown heading line HEADING in README.md.
_code_block() {
    awk -v h="$1" '$0 == h { s = 1; next } s == 1 && /^```/ { s = 2; next } s == 2 && /^```/ { exit }
        s == 2 { print }' "$ROOT/README.md"
}

t_readme_run_command_with_a_fresh_home() {
    local home="$T_CASE/home" fifo="$T_CASE/run.fifo" log="$T_CASE/run.log" line="" got=0 rfd pid
    mkdir -m 700 "$home"
    # The README's command, as written ("scripts/run.sh [DIR]": no DIR, so ~/preon), with nothing
    # skipped: install-deps runs too.
    local cmd
    cmd=$(_code_block "## Run it" | sed -n 's/^\(scripts\/run\.sh\) \[DIR\].*/\1/p')
    assert_eq "scripts/run.sh" "$cmd" "the README's run command"
    mkfifo "$fifo"
    (cd "$ROOT" && exec env -u SKIP_DEPS -u XDG_DATA_HOME HOME="$home" "$cmd") >"$fifo" 2>&1 </dev/null &
    pid=$!
    PEER_PID[readme]=$pid
    PEER_MNT[readme]=$home/preon
    PEER_OUT[readme]=$log
    exec {rfd}<"$fifo"
    # It installs (or finds) the packages, builds, mounts, then says so. Bounded: a build from
    # scratch takes a minute or two on two cores.
    local end=$((SECONDS + 400))
    while [ "$SECONDS" -le "$end" ] && read -r -t 400 -u "$rfd" line; do
        printf '%s\n' "$line" >>"$log"
        case "$line" in "preon: mounted at $home/preon "*) got=1; break ;; esac
    done
    # Drain the rest (the peer's log goes to the same pipe) so the peer never blocks on it.
    cat <&"$rfd" >>"$log" &
    on_cleanup "kill $! 2>/dev/null"
    exec {rfd}<&-
    [ "$got" = 1 ] || { cat "$log" >&2; fail "scripts/run.sh never said it had mounted $home/preon"; }
    _is_mounted "$home/preon" || fail "$home/preon is not a mount point"
    # The default data directory and its parents were created, 0700 (XDG), the data dir itself 0711.
    assert_eq "700 700 711" "$(stat -c %a "$home/.local" "$home/.local/share" "$home/.local/share/preon" | tr '\n' ' ' | sed 's/ $//')" \
        "modes of ~/.local ~/.local/share ~/.local/share/preon"
    [ -f "$home/.local/share/preon/preon.db" ] || fail "no preon.db in the default data directory"

    # The tour, as the README has it, run in a shell "in the repository" (a directory whose build/
    # and mnt-examples/ are the repository's, so mandel.pgm lands there and not in the checkout).
    local tour="$T_CASE/tour.sh" here="$T_CASE/repo" out rc=0
    mkdir "$here"
    ln -s "$ROOT/build" "$here/build"
    ln -s "$ROOT/mnt-examples" "$here/mnt-examples"
    { echo 'set -eu'; _code_block "## A two-minute tour"; } >"$tour"
    grep -q 'cat ~/preon/wait/echo' "$tour" || fail "the tour in README.md has changed shape: $(cat "$tour")"
    out=$(cd "$here" && env -u PREON_MOUNT HOME="$home" timeout -k 5 300 bash "$tour" 2>&1) || rc=$?
    assert_eq 0 "$rc" "exit of the README's tour; its output: $out"
    assert_contains "$out" "hello from task 0" "tour output"
    assert_contains "$out" $'\nok\n' "tour output (preon wait echo && echo ok)"
    assert_eq "P2 512 512 255 " "$(head -n 3 "$here/mandel.pgm" | tr '\n' ' ')" "header of the stitched mandel.pgm"
    assert_contains "$out" "sum of k*k for k < 8000 = 170634668000 (expected 170634668000)" "pipeline.sh"
    [ ! -e "$home/preon/jobs/mandel" ] || fail "rm -r ~/preon/jobs/mandel left the job"

    # Ctrl-C unmounts it, and it exits 0.
    kill -INT "$pid"
    _reap_peer readme 20 "Ctrl-C (SIGINT)"
}

t_a_missing_mount_point_says_what_to_do() {
    local err rc=0
    err=$("$PREON" mount -f --data "$T_CASE/data" "$T_CASE/nope/preon" 2>&1 </dev/null) || rc=$?
    assert_eq 1 "$rc" "exit status"
    assert_contains "$err" "the mount point $T_CASE/nope/preon does not exist: create it first (mkdir -p -- $T_CASE/nope/preon)"
    [ ! -e "$T_CASE/data" ] || fail "a failed mount created its data directory"
}

t_a_missing_data_directory_is_created_with_its_parents() {
    local home="$T_CASE/h"
    mkdir -m 700 "$home"
    start_peer A --data "$home/deep/er/data"
    [ -f "$home/deep/er/data/preon.db" ] || fail "no preon.db in the new data directory"
    assert_eq "700 700" "$(stat -c %a "$home/deep" "$home/deep/er" | tr '\n' ' ' | sed 's/ $//')" "modes of the parents"
    stop_peer A
}

# Every program the README's commands, the tour, the examples and the tests run must come from a
# package install-deps.sh installs, or from an Essential package (on every Debian system).
t_every_program_used_comes_from_install_deps() {
    local pkgs prog path pkg missing=""
    pkgs=$(sed -n '/^PKGS=(/,/^)/p' "$ROOT/scripts/install-deps.sh" | tr ' ()' '\n\n\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -vx PKGS)
    [ "$(wc -l <<<"$pkgs")" -gt 10 ] || fail "could not read the package list of install-deps.sh: $pkgs"
    # With what they depend on (what `apt-get install` of the list brings in: gcc-12 for
    # build-essential, pkgconf-bin for pkg-config, ...).
    # shellcheck disable=SC2086
    pkgs=$(apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances $pkgs 2>/dev/null | sed -n 's/^\([a-z0-9][a-z0-9.+-]*\)$/\1/p' | sort -u)
    # Each program's file, then the packages of all of them in two dpkg -S calls (as they are, and
    # without /usr for packages that ship them in /bin: the merged /usr), not two a program (20 s).
    local -a progs=() paths=()
    local -A owner=()
    for prog in bash sh cc make pkg-config clang awk sed grep cut tr sort head tail cat cp mv rm ln ls \
        mkdir mktemp chmod stat find xargs diff cmp tar rsync curl timeout setsid mountpoint \
        fusermount3 bwrap mkfs.btrfs ip ss tc nsenter nc pgrep sha256sum dd wc seq od perl opentracker wrk setpriv jq script sqlite3 df \
        openssl gdb base64 basenc truncate comm \
        node chromium promtool mount umount unshare systemd-analyze install realpath; do
        path=$(command -v "$prog" 2>/dev/null) || { missing+=" $prog(not installed)"; continue; }
        progs+=("$prog")
        paths+=("$(readlink -f -- "$path")")
    done
    local line file
    # "pkg[:arch][, pkg2]: /path": the first package named, as `dpkg -S | cut -d: -f1` gave
    while IFS= read -r line; do
        file=${line#*: }
        [ -n "${owner[$file]:-}" ] || owner[$file]=${line%%:*}
    done < <(dpkg -S "${paths[@]}" 2>/dev/null || true; dpkg -S "${paths[@]/#\/usr/}" 2>/dev/null || true)
    local i
    for i in "${!progs[@]}"; do
        prog=${progs[$i]}
        path=${paths[$i]}
        pkg=${owner[$path]:-${owner[${path/#\/usr/}]:-}}
        [ -n "$pkg" ] || { missing+=" $prog($path: no package)"; continue; }
        if grep -qx -- "$pkg" <<<"$pkgs"; then continue; fi
        if [ "$(dpkg-query -W -f='${Essential}' "$pkg" 2>/dev/null)" = yes ]; then continue; fi
        missing+=" $prog($pkg)"
    done
    [ -z "$missing" ] || fail "programs not installed by scripts/install-deps.sh:$missing"
}

run_tests "$@"
