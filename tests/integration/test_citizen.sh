#!/usr/bin/env bash
# A FUSE citizen (issue 12, item 6): `make install` lays out the binaries, the man page, the mount
# helper and the systemd unit; `mount -t fuse.preon -o ...` (through libfuse's mount.fuse3, which
# runs `preon` from the PATH) and an /etc/fstab line (through the installed mount.fuse.preon) mount a
# peer that detaches, logs to DATA/preon.log, runs a job, and exits by itself after `umount`; the
# unit passes `systemd-analyze verify`, and preon tells systemd READY=1 and STOPPING=1.
#
# mount(8) looks for helpers in /sbin and runs them with an empty environment (so mount.fuse3's
# /bin/sh finds `preon` on its default PATH, /usr/local/bin among it). Those are the machine's own
# directories: each mount test works in a private mount namespace (held by a sleeping process,
# entered with nsenter) where the installed tree is mounted over them, so nothing outside it sees
# the installed files or the FUSE mount. The daemon is found by the PID it writes in DATA/lock.
# shellcheck disable=SC2016 # job scripts are single-quoted on purpose: they expand in the task
. "$(dirname -- "$0")/lib.sh"

ROOT=$(cd -- "$(dirname -- "$0")/../.." && pwd)

# make_install DESTDIR PREFIX: `make install` of the binary under test (never rebuilt: -o).
make_install() {
    local b
    b=$(dirname -- "$PREON")
    make -s -C "$ROOT" -o "$b/preon" -o "$b/preon-limit" install BUILD="$b" PREFIX="$2" DESTDIR="$1" \
        >"$T_CASE/install.out" 2>&1 || fail "make install failed: $(cat "$T_CASE/install.out")"
}

# ns_start: a private mount namespace, held by a sleeping process (NS_PID) until the cleanup.
ns_start() {
    unshare -m --propagation private sleep 600 </dev/null >/dev/null 2>&1 &
    NS_PID=$!
    disown "$NS_PID" # killed at the cleanup: no "Killed" notice from bash
    on_cleanup "kill -KILL $NS_PID"
    wait_until 5 '[ "$(readlink /proc/$NS_PID/ns/mnt)" != "$(readlink /proc/self/ns/mnt)" ]' "a private mount namespace"
}

ns() {
    nsenter -t "$NS_PID" -m -- "$@"
}

# ns_mounted M: M is a fuse.preon mount in the namespace (/proc/self/mountinfo: field 5 the mount
# point, then the fields after " - ": the type); prints its line.
ns_mounted() {
    ns awk -v m="$1" '$5 == m && / - fuse\.preon / { print; found = 1 } END { exit !found }' /proc/self/mountinfo
}

# daemon_of DATA: the pid of the detached peer (its DATA/lock), killed at the cleanup if still there.
daemon_of() {
    local pid
    pid=$(cat -- "$1/lock" 2>/dev/null || true)
    [[ "$pid" =~ ^[0-9]+$ ]] || fail "no daemon pid in $1/lock: '$pid'"
    on_cleanup "kill -KILL $pid"
    echo "$pid"
}

# runs_a_job M: a job copied in through the namespace is done, with its output.
runs_a_job() {
    local m=$1 src st
    src=$(src_dir citizen)
    make_job "$src" 'echo "citizen $PREON_TASK"'
    ns cp -r -- "$src" "$m/jobs/citizen" || fail "cannot copy a job into $m/jobs"
    st=$(ns timeout -k 5 60 cat -- "$m/wait/citizen") || fail "reading wait/citizen failed"
    assert_eq done "$(field state <<<"$st")" "state of the job"
    assert_eq "citizen 0" "$(ns cat -- "$m/results/citizen/0/stdout")" "the task's output"
}

# umount_ends M PID: umount(8) of the mount; the daemon exits by itself, the mount is gone.
umount_ends() {
    local m=$1 pid=$2 end
    ns umount -- "$m" || fail "umount $m failed"
    end=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null; do
        [ "$SECONDS" -le "$end" ] || fail "the daemon $pid did not exit within 15s of umount"
        sleep 0.05
    done
    ! ns_mounted "$m" >/dev/null || fail "$m still mounted after umount"
}

t_make_install_lays_out_the_tree() {
    local r=$T_CASE/root p=/usr/local rc=0
    make_install "$r" "$p"
    [ -x "$r$p/bin/preon" ] && [ -x "$r$p/bin/preon-limit" ] || fail "preon and preon-limit not in bin/"
    cmp -- "$PREON" "$r$p/bin/preon" || fail "the installed preon is not the one built"
    assert_eq 644 "$(stat -c %a "$r$p/share/man/man1/preon.1")" "mode of the man page"
    grep -q '^\.TH PREON 1' "$r$p/share/man/man1/preon.1" || fail "the man page is not preon.1"
    assert_eq ../bin/preon "$(readlink "$r$p/sbin/mount.fuse.preon")" "the mount helper's link"
    assert_eq "$r$p/bin/preon" "$(readlink -f "$r$p/sbin/mount.fuse.preon")" "where the helper leads"
    local unit=$r$p/lib/systemd/system/preon@.service
    [ -f "$unit" ] || fail "no $unit"
    assert_match "$(grep '^ExecStart=' "$unit")" "^ExecStart=$p/bin/preon mount " "the unit's ExecStart"
    "$r$p/bin/preon" --help >"$T_CASE/help" 2>&1 || fail "the installed preon --help failed"
    assert_contains "$(cat "$T_CASE/help")" "usage: preon" "the installed preon --help"
    # As the helper, called wrongly: its own usage, exit 1 (mount(8)'s "incorrect invocation").
    "$r$p/sbin/mount.fuse.preon" preon >"$T_CASE/helper" 2>&1 || rc=$?
    assert_eq 1 "$rc" "exit of mount.fuse.preon without a mount point"
    assert_contains "$(cat "$T_CASE/helper")" "SOURCE DIR" "mount.fuse.preon's usage"
    # mount(8)'s exit codes: 1 for a bad option or a user who is not root, 32 for a mount that failed.
    rc=0
    "$r$p/sbin/mount.fuse.preon" preon "$T_CASE" -o slots=1,colour=blue >"$T_CASE/helper" 2>&1 || rc=$?
    assert_eq 1 "$rc" "exit of mount.fuse.preon with an unknown option"
    assert_contains "$(cat "$T_CASE/helper")" "unknown mount option 'colour'" "its message"
    rc=0
    "$r$p/sbin/mount.fuse.preon" preon "$T_CASE/nowhere" -o "data=$T_CASE/data" >"$T_CASE/helper" 2>&1 || rc=$?
    assert_eq 32 "$rc" "exit of mount.fuse.preon on a missing mount point"
    assert_contains "$(cat "$T_CASE/helper")" "does not exist" "its message"
    rc=0 # a 'user' fstab line: mount(8) runs the helper as that user
    setpriv --reuid=65534 --regid=65534 --clear-groups -- "$r$p/sbin/mount.fuse.preon" preon "$T_CASE" \
        -o "noexec,nosuid,nodev,data=$T_CASE/data" >"$T_CASE/helper" 2>&1 || rc=$?
    assert_eq 1 "$rc" "exit of mount.fuse.preon run by a user"
    assert_contains "$(cat "$T_CASE/helper")" "a peer runs as root, not as uid 65534" "its message"
    [ ! -e "$T_CASE/data" ] || fail "the refused calls made the data directory"
    make -s -C "$ROOT" uninstall PREFIX="$p" DESTDIR="$r" >/dev/null || fail "make uninstall failed"
    assert_eq "" "$(find "$r" -type f -o -type l)" "files left by make uninstall"
}

t_the_unit_passes_systemd_analyze_verify() {
    local p=$T_CASE/prefix unit out
    make_install "" "$p" # no DESTDIR: the ExecStart binary exists where the unit says
    unit=$p/lib/systemd/system/preon@.service
    ln -s preon@.service "$p/lib/systemd/system/preon@mnt-preon.service"
    for u in "$unit" "$p/lib/systemd/system/preon@mnt-preon.service"; do
        out=$(systemd-analyze verify --man=no "$u" 2>&1) || fail "systemd-analyze verify $u: $out"
        [ -z "$out" ] || fail "systemd-analyze verify $u said: $out"
    done
    # Stopping drains first: SIGTERM to preon alone, for longer than its drain bound (60 s).
    assert_eq "Type=notify" "$(grep '^Type=' "$unit")" "Type"
    assert_eq "KillMode=mixed" "$(grep '^KillMode=' "$unit")" "KillMode"
    assert_eq "KillSignal=SIGTERM" "$(grep '^KillSignal=' "$unit")" "KillSignal"
    local stop
    stop=$(sed -n 's/^TimeoutStopSec=//p' "$unit")
    [ "$stop" -gt 60 ] || fail "TimeoutStopSec=$stop is not above the 60 s drain bound"
    ! grep -q '^ExecStop' "$unit" || fail "the unit unmounts in ExecStop, before the drain"
    grep -q -- '--foreground' "$unit" || fail "the unit's preon does not stay in the foreground"
}

# preon tells systemd it is ready once mounted, and that it is stopping on SIGTERM.
t_preon_notifies_systemd() {
    local sock=$T_CASE/notify nc_pid
    nc -lkUu "$sock" >"$T_CASE/notified" 2>&1 </dev/null &
    nc_pid=$!
    on_cleanup "kill -KILL $nc_pid"
    wait_until 5 '[ -S "$sock" ]' "the notify socket"
    NOTIFY_SOCKET=$sock start_peer A --port 0
    wait_until 5 'grep -q "READY=1" "$T_CASE/notified"' "READY=1 once mounted"
    ! grep -q STOPPING "$T_CASE/notified" || fail "STOPPING before the stop"
    term_peer A
    wait_until 5 'grep -q "STOPPING=1" "$T_CASE/notified"' "STOPPING=1 on SIGTERM"
}

# A detached peer that fails after it forked (here: its --port is taken) says why where it was
# started, and exits with its status: its stderr is let go only once the mount is ready.
t_a_detached_peer_that_cannot_start_says_why() {
    start_peer A --port 0
    local url port rc=0
    url=$(peer_field "$(mnt A)" http)
    port=${url##*:}
    [[ "$port" =~ ^[0-9]+$ ]] || fail "no port in A's http field: '$url'"
    mkdir -p "$T_CASE/B/mnt"
    timeout -k 5 60 "$PREON" mount --data "$T_CASE/B/data" --port "$port" "$T_CASE/B/mnt" \
        >"$T_CASE/out" 2>&1 || rc=$?
    assert_eq 1 "$rc" "exit of a detached preon mount whose port is taken"
    assert_contains "$(cat "$T_CASE/out")" "cannot listen on 127.0.0.1:$port" "its message"
    ! mountpoint -q "$T_CASE/B/mnt" || fail "mounted anyway"
}

# preon mount -o takes the same options: values, a flag with '_', and ro applied to the mount.
t_preon_mount_takes_o() {
    start_peer A -o slots=2,quiet_ms=150,port=0 --log-level info
    assert_eq 2 "$(peer_field "$(mnt A)" slots)" "slots from -o"
    start_peer B -o ro,port=0
    assert_fails_with "Read-only file system" mkdir -- "$(mnt B)/jobs/x"
    local rc=0
    "$PREON" mount -f -o slots=1,colour=blue "$T_CASE/A/mnt" >"$T_CASE/out" 2>&1 || rc=$?
    assert_eq 2 "$rc" "exit of preon mount with an unknown -o option"
    assert_contains "$(cat "$T_CASE/out")" "unknown mount option 'colour'" "the message"
}

# mount -t fuse.preon, with preon installed in /usr/local (libfuse's mount.fuse3 runs it).
t_mount_t_fuse_preon() {
    local r=$T_CASE/root m=$T_CASE/mnt d=$T_CASE/data pid rc=0
    mkdir -p "$m" "$d"
    make_install "$r" /usr/local
    ns_start
    ns mount --bind "$r/usr/local/bin" /usr/local/bin
    # An unknown option: refused with the reason, nothing mounted.
    ns mount -t fuse.preon -o "data=$d,slots=1,colour=blue" preon "$m" >"$T_CASE/bad" 2>&1 || rc=$?
    [ "$rc" -ne 0 ] || fail "mount with an unknown option succeeded"
    assert_contains "$(cat "$T_CASE/bad")" "unknown mount option 'colour'" "mount's message"
    ! ns_mounted "$m" >/dev/null || fail "mounted despite the bad option"
    # The real one: mount returns once the peer is mounted (it has detached).
    ns mount -t fuse.preon -o "data=$d,slots=1,port=0,quiet-ms=200" preon "$m" >"$T_CASE/out" 2>&1 ||
        fail "mount -t fuse.preon failed: $(cat "$T_CASE/out")"
    pid=$(daemon_of "$d")
    assert_match "$(tr '\0' ' ' </proc/"$pid"/cmdline)" "^preon preon $m -o " "the daemon's command line (mount.fuse3's call)"
    local line
    line=$(ns_mounted "$m") || fail "mount returned but $m is not a fuse.preon mount"
    assert_match "$line" ' rw,nosuid,nodev' "mount flags (mount.fuse3's dev,suid ignored)"
    runs_a_job "$m"
    grep -q "mounted $m" "$d/preon.log" || fail "the detached peer did not log to DATA/preon.log"
    grep -q "job citizen done" "$d/preon.log" || fail "DATA/preon.log lacks the job"
    umount_ends "$m" "$pid"
}

# An /etc/fstab line (here a temporary fstab, mount -T), with preon installed in /usr: mount(8)
# runs the installed /sbin/mount.fuse.preon itself. "user" makes mount(8) add noexec, which must
# not reach the mount: the job runs its program from it.
t_fstab_line_mounts_through_the_helper() {
    local r=$T_CASE/root m=$T_CASE/mnt d=$T_CASE/data pid fstab=$T_CASE/fstab
    mkdir -p "$m" "$d" "$T_CASE/ovl"
    make_install "$r" /usr
    ns_start
    ns mount -t overlay overlay -o "lowerdir=$r/usr/sbin:/usr/sbin" /usr/sbin
    ns mount -t overlay overlay -o "lowerdir=$r/usr/bin:/usr/bin" /usr/bin
    printf '# a volunteer\npreon %s fuse.preon data=%s,slots=1,port=0,quiet-ms=200,noauto,_netdev,nofail,x-systemd.automount,user 0 0\n' \
        "$m" "$d" >"$fstab"
    ns mount -T "$fstab" "$m" >"$T_CASE/out" 2>&1 || fail "mount -T $fstab $m failed: $(cat "$T_CASE/out")"
    pid=$(daemon_of "$d")
    ns_mounted "$m" >/dev/null || fail "mount -T returned but $m is not a fuse.preon mount"
    assert_match "$(tr '\0' ' ' </proc/"$pid"/cmdline)" '^/sbin/mount\.fuse\.preon preon .*noexec' "the daemon's command line"
    assert_not_contains "$(ns_mounted "$m")" noexec "the mount's flags"
    runs_a_job "$m"
    umount_ends "$m" "$pid"
}

# fusermount3 -u stops the peer even while a private mount namespace made after it mounted (unshare
# -m, a container, another program's sandbox) holds a copy of its mount, which keeps the kernel's
# session alive: the peer sees its mount leave its own mount table and stops (before, it ran on
# until that namespace ended; found by test_soak.sh, where a unit test of another program on the
# machine held a stopped volunteer for 20 s). The copy left in the namespace is a dead mount, and
# the peer prints nothing about an unmount of its own.
t_an_unmount_stops_the_peer_while_another_namespace_holds_its_mount() {
    start_peer A --port 0 --slots 0
    local m holder
    m=$(mnt A)
    unshare -m --propagation private sleep 600 </dev/null >/dev/null 2>&1 &
    holder=$!
    on_cleanup "kill $holder"
    wait_until 10 "grep -q ' $m ' /proc/$holder/mountinfo" "the namespace holding a copy of $m"
    stop_peer A # fusermount3 -u: exit 0 within 10 s, the mount gone here
    grep -q "is no longer mounted here" "${PEER_LOG[A]}" || fail "the log does not say why the peer stopped"
    # (before: libfuse's own unmount of the path again printed "fuse: failed to unmount PATH:
    # Invalid argument" for the unmount the user had just done; the connection is aborted now)
    ! grep -q "failed to unmount" "${PEER_OUT[A]}" || fail "the peer printed: $(cat -- "${PEER_OUT[A]}")"
    assert_fails_with "Transport endpoint is not connected" nsenter -t "$holder" -m stat -- "$m"
}

run_tests "$@"
