#!/usr/bin/env bash
# Publishing: every way of putting a directory into jobs/ that the spec promises (cp -r, cp -a,
# rsync -a, tar x, mv of a dot-named staging dir) publishes the job exactly once, completely, with
# no dot-file leftovers; a published job reads back identical to its source and is read-only; a
# read of wait/<name> also waits for a job that is still being copied.
# shellcheck disable=SC2016 # job scripts are single-quoted on purpose: they expand in the task
. "$(dirname -- "$0")/lib.sh"

# A one-task job that reports what it sees: its name and index, and its two input files.
make_sample_job() {
    local dir=$1
    make_job "$dir" 'echo "hello $PREON_TASK of $PREON_TASKS from $PREON_JOB"
wc -c < /job/data/input.bin
cat /job/data/notes.txt'
    mkdir -p "$dir/data"
    # Not a multiple of any plausible block size, so a short last block is read back too.
    head -c 300001 /dev/urandom >"$dir/data/input.bin"
    printf 'line one\nline two\n' >"$dir/data/notes.txt"
}

# check_ran_once M NAME SRC: the job is done, ran its one task exactly once with the expected
# output, and its published tree is the source, byte for byte, with nothing extra.
check_ran_once() {
    local m=$1 name=$2 src=$3 st
    st=$(wait_job "$m" "$name")
    assert_eq "done" "$(field state <<<"$st")" "state of $name"
    assert_eq 1 "$(field tasks <<<"$st")" "tasks of $name"
    assert_eq 1 "$(field succeeded <<<"$st")" "succeeded of $name"
    assert_eq 0 "$(field failed <<<"$st")" "failed of $name"
    assert_match "$(field id <<<"$st")" '^[0-9a-f]{64}$' "id of $name"
    assert_eq 0 "$(ls -- "$m/results/$name")" "task folders of $name"
    assert_file_eq "$m/results/$name/0/exit_code" 0
    assert_file_eq "$m/results/$name/0/stdout" \
        "$(printf 'hello 0 of 1 from %s\n300001\nline one\nline two' "$name")"
    assert_eq "$(ls -A -- "$src")" "$(ls -A -- "$m/jobs/$name")" "entries of jobs/$name"
    assert_same_tree "$src" "$m/jobs/$name"
    cmp -- "$src/data/input.bin" "$m/jobs/$name/data/input.bin" || fail "input.bin differs"
    [ -x "$m/jobs/$name/run" ] || fail "jobs/$name/run lost its execute bit"
}

t_publish_cp_r() {
    start_peer A
    local m src
    m=$(mnt A)
    src=$(src_dir j_cpr)
    make_sample_job "$src"
    cp -r -- "$src" "$m/jobs/j_cpr"
    check_ran_once "$m" j_cpr "$src"
}

t_publish_cp_a() {
    start_peer A
    local m src
    m=$(mnt A)
    src=$(src_dir j_cpa)
    make_sample_job "$src"
    cp -a -- "$src" "$m/jobs/j_cpa"
    check_ran_once "$m" j_cpa "$src"
}

t_publish_rsync() {
    start_peer A
    local m src
    m=$(mnt A)
    src=$(src_dir j_rsync)
    make_sample_job "$src"
    # rsync writes each file as a dot-named temporary and renames it: none may be published.
    rsync -a -- "$src/" "$m/jobs/j_rsync/"
    check_ran_once "$m" j_rsync "$src"
    local dots
    dots=$(cd -- "$m/jobs/j_rsync" && find . -name '.*' ! -name .)
    assert_eq "" "$dots" "dot-files in the published job"
}

t_publish_tar() {
    start_peer A
    local m src
    m=$(mnt A)
    src=$(src_dir j_tar)
    make_sample_job "$src"
    tar -C "$(dirname -- "$src")" -cf "$T_CASE/j_tar.tar" j_tar
    tar -xf "$T_CASE/j_tar.tar" -C "$m/jobs/"
    check_ran_once "$m" j_tar "$src"
}

t_publish_mv_staged() {
    # A quiet period far longer than the test: only the rename can publish this job in time.
    start_peer A --quiet-ms 600000
    local m src state
    m=$(mnt A)
    src=$(src_dir j_mv)
    make_sample_job "$src"
    cp -r -- "$src" "$m/jobs/.j_mv.tmp"
    mv -- "$m/jobs/.j_mv.tmp" "$m/jobs/j_mv"
    state=$(status_field "$m" j_mv state)
    [ "$state" != staging ] || fail "a rename from a dot-name must publish at once, state is staging"
    check_ran_once "$m" j_mv "$src"
    [ ! -e "$m/jobs/.j_mv.tmp" ] || fail "the staging name is still there"
}

t_published_job_is_read_only() {
    start_peer A
    local m src j
    m=$(mnt A)
    src=$(src_dir j_ro)
    make_sample_job "$src"
    cp -r -- "$src" "$m/jobs/j_ro"
    check_ran_once "$m" j_ro "$src"
    j=$m/jobs/j_ro
    expect_erofs sh -c 'echo x > "$1"' _ "$j/newfile"
    expect_erofs sh -c 'echo x >> "$1"' _ "$j/run"
    expect_erofs sh -c ': > "$1"' _ "$j/run"
    expect_erofs sh -c 'echo x > "$1"' _ "$j/data/notes.txt"
    expect_erofs mkdir -- "$j/newdir"
    expect_erofs mv -- "$j/run" "$j/run2"
    expect_erofs mv -- "$j/data/notes.txt" "$j/notes.txt"
    [ ! -e "$j/newfile" ] || fail "newfile was created"
    assert_same_tree "$src" "$j"
}

t_wait_covers_a_job_still_being_copied() {
    start_peer A
    local m j fd waiter rc=0
    m=$(mnt A)
    j=$m/jobs/late
    mkdir -- "$j"
    # A file held open keeps the job from being published (the quiet period only starts when
    # every file is closed).
    exec {fd}>"$j/run"
    printf '#!/bin/sh\necho late\n' >&"$fd"
    chmod 755 "$j/run"
    assert_eq staging "$(status_field "$m" late state)" "state while a file is open"
    # The waiter must not inherit our open fd on run, or it would itself keep the job unpublished.
    (
        exec {fd}>&-
        exec timeout -k 5 60 cat -- "$m/wait/late"
    ) >"$T_CASE/waited" 2>&1 &
    waiter=$!
    assert_eq staging "$(status_field "$m" late state)" "state while a file is open"
    kill -0 "$waiter" 2>/dev/null || fail "wait/late returned while the job was still being copied: $(cat "$T_CASE/waited")"
    exec {fd}>&-
    wait "$waiter" || rc=$?
    assert_eq 0 "$rc" "exit of cat wait/late"
    assert_eq "done" "$(field state <"$T_CASE/waited")" "state read from wait/late"
    assert_file_eq "$m/results/late/0/stdout" late
}

t_job_names_with_control_characters_are_refused() {
    start_peer A
    local m
    m=$(mnt A)
    if mkdir -- "$m/jobs/bad"$'\n'"state: done" 2>/dev/null; then
        fail "a job name with a newline was accepted"
    fi
    mkdir -- "$m/jobs/.staged" || fail "a dot-name staging directory was refused"
    if mv -- "$m/jobs/.staged" "$m/jobs/x"$'\t'"y" 2>/dev/null; then
        fail "a rename to a name with a tab was accepted"
    fi
}

# mkdir jobs/<name> is answered once its staging directory is made (in the thread pool): of
# concurrent mkdirs of one name exactly one succeeds, the others get EEXIST, and one job exists.
t_concurrent_mkdir_makes_one_job() {
    start_peer A
    local m i ok=0 exists=0 pids=()
    m=$(mnt A)
    for i in 1 2 3 4 5 6 7 8; do
        (mkdir -- "$m/jobs/same" 2>"$T_CASE/err.$i") &
        pids+=($!)
    done
    for i in 1 2 3 4 5 6 7 8; do
        if wait "${pids[$((i - 1))]}"; then
            ok=$((ok + 1))
        elif grep -q "File exists" "$T_CASE/err.$i"; then
            exists=$((exists + 1))
        else
            fail "mkdir $i: $(cat "$T_CASE/err.$i")"
        fi
    done
    assert_eq 1 "$ok" "mkdirs that succeeded"
    assert_eq 7 "$exists" "mkdirs that got EEXIST"
    assert_eq same "$(ls -- "$m/jobs")" "jobs/"
    assert_eq same "$(ls -- "$m/status")" "status/"
    # an empty job is published (and rejected) once quiet: count it in whichever state it is
    local jobs
    jobs=$(timeout 10 cat -- "$m/peer" | awk -F': ' '/^jobs-/ { n += $2 } END { print n }')
    assert_eq 1 "$jobs" "jobs in the peer file"
    [ -d "$(data_dir A)/staging/same" ] || fail "no staging directory"
}

# A copy that fails part-way never publishes. cp -a of a job holding symlinks (one inside the job,
# one to /etc/passwd, one in a subdirectory) and a FIFO fails on them, and the job is rejected with the reason (which
# path, and why), not published without them; the staged copy stays. Once the user fixes it (the
# files the links point to copied in their place, the FIFO's directory removed), it is published
# and runs, with those files.
t_copy_with_symlinks_is_rejected_until_fixed() {
    start_peer A
    local m src st reason rc=0
    m=$(mnt A)
    src=$(src_dir j_links)
    make_sample_job "$src"
    ln -s notes.txt "$src/data/inside"
    ln -s /etc/passwd "$src/data/outside"
    mkdir "$src/pipes"
    mkfifo "$src/pipes/fifo"
    ln -s ../run "$src/pipes/link"
    cp -a -- "$src" "$m/jobs/j_links" 2>"$T_CASE/cp.err" || rc=$?
    [ "$rc" -ne 0 ] || fail "cp -a of symlinks and a FIFO succeeded"
    grep -q "data/inside" "$T_CASE/cp.err" || fail "cp did not report the symlink: $(cat "$T_CASE/cp.err")"
    st=$(wait_job "$m" j_links 30)
    assert_eq rejected "$(field state <<<"$st")" "state of a job whose copy failed"
    [ -z "$(field id <<<"$st")" ] || fail "a job whose copy failed was published:"$'\n'"$st"
    reason=$(field reason <<<"$st")
    assert_match "$reason" 'symlink data/(inside|outside)' "reason names the symlink"
    assert_match "$reason" 'regular files and directories' "reason says why"
    assert_match "$reason" 'and 1 more' "reason counts the errors past the first three"
    assert_match "$reason" '\.preon-copy-errors' "reason says where they are listed"
    [ ! -e "$m/results/j_links/0" ] || fail "a task of the job whose copy failed ran"
    grep -q "j_links.*symlink data/" "${PEER_LOG[A]}" || fail "the log does not name the symlink"
    # The staged copy is still there, to be fixed in place.
    cmp -- "$src/data/input.bin" "$m/jobs/j_links/data/input.bin" || fail "the staged copy is gone"
    grep -q "data/outside" "$m/jobs/j_links/.preon-copy-errors" || fail "the staged copy does not list its errors"
    # Fixed: the links' files in their place, the FIFO's directory removed. It publishes and runs.
    cp -L -- "$src/data/inside" "$m/jobs/j_links/data/inside"
    cp -L -- "$src/data/outside" "$m/jobs/j_links/data/outside"
    rmdir -- "$m/jobs/j_links/pipes"
    st=$(wait_job "$m" j_links 30)
    assert_eq done "$(field state <<<"$st")" "state once fixed"
    assert_match "$(field id <<<"$st")" '^[0-9a-f]{64}$' "id once fixed"
    cmp -- /etc/passwd "$m/jobs/j_links/data/outside" || fail "data/outside is not the file it pointed to"
    [ ! -L "$m/jobs/j_links/data/inside" ] || fail "a symlink was published"
    [ ! -e "$m/jobs/j_links/.preon-copy-errors" ] || fail "the error list was published"
}

# Hard links within a job copy fine (cp -a keeps them): each name is published as a file.
t_copy_with_hard_links_publishes() {
    start_peer A
    local m src st
    m=$(mnt A)
    src=$(src_dir j_hard)
    make_sample_job "$src"
    ln -- "$src/data/notes.txt" "$src/data/again.txt"
    cp -a -- "$src" "$m/jobs/j_hard" || fail "cp -a of a job with a hard link failed"
    st=$(wait_job "$m" j_hard 30)
    assert_eq done "$(field state <<<"$st")" "state of the job with a hard link"
    cmp -- "$src/data/notes.txt" "$m/jobs/j_hard/data/again.txt" || fail "data/again.txt differs"
}

# The user may publish a job without what failed: removing .preon-copy-errors says so.
t_copy_errors_can_be_waived() {
    start_peer A
    local m src st
    m=$(mnt A)
    src=$(src_dir j_waive)
    make_sample_job "$src"
    ln -s notes.txt "$src/data/inside"
    cp -a -- "$src" "$m/jobs/j_waive" 2>/dev/null && fail "cp -a of a symlink succeeded"
    st=$(wait_job "$m" j_waive 30)
    assert_eq rejected "$(field state <<<"$st")" "state of a job whose copy failed"
    rm -- "$m/jobs/j_waive/.preon-copy-errors"
    st=$(wait_job "$m" j_waive 30)
    assert_eq done "$(field state <<<"$st")" "state once its errors are waived"
    [ ! -e "$m/jobs/j_waive/data/inside" ] || fail "the symlink was published"
}

# A restart does not forget that a staged copy failed: the job is still not published.
t_copy_errors_survive_a_restart() {
    start_peer A --quiet-ms 600000
    local m src st
    m=$(mnt A)
    src=$(src_dir j_restart)
    make_sample_job "$src"
    ln -s notes.txt "$src/data/inside"
    cp -a -- "$src" "$m/jobs/j_restart" 2>/dev/null && fail "cp -a of a symlink succeeded"
    term_peer A
    start_peer A --quiet-ms 100
    m=$(mnt A)
    st=$(wait_job "$m" j_restart 30)
    assert_eq rejected "$(field state <<<"$st")" "state after a restart"
    assert_match "$(field reason <<<"$st")" 'symlink data/inside' "reason after a restart"
}

# After a restart the list of copy errors is read as untrusted input: one that is not a regular
# file (a FIFO, which would block the peer's start), or that names paths outside the job, keeps
# the job waiting with a reason, and removing it (waiving) publishes the job.
t_a_bad_copy_error_list_keeps_the_job_waiting() {
    start_peer A --quiet-ms 600000
    local m src st d
    m=$(mnt A)
    d=$(data_dir A)
    for j in j_fifo j_escape; do
        src=$(src_dir "$j")
        make_sample_job "$src"
        cp -r -- "$src" "$m/jobs/$j"
    done
    term_peer A
    mkfifo "$d/staging/j_fifo/.preon-copy-errors"
    printf '{"errors": [{"path": "../../etc/passwd", "why": "w"}], "more": 0}' >"$d/staging/j_escape/.preon-copy-errors"
    start_peer A --quiet-ms 100
    m=$(mnt A)
    for j in j_fifo j_escape; do
        st=$(wait_job "$m" "$j" 30)
        assert_eq rejected "$(field state <<<"$st")" "state of $j after a restart"
        assert_match "$(field reason <<<"$st")" 'copy errors \(\.preon-copy-errors\) cannot be read' "reason of $j"
    done
    rm -- "$m/jobs/j_fifo/.preon-copy-errors"
    st=$(wait_job "$m" j_fifo 30)
    assert_eq done "$(field state <<<"$st")" "state once the bad list is removed"
}

# rsync writes each file as .NAME.XXXXXX and removes it when the write fails: the error stays, on
# the file it was for (missing), so the job is not published without it; making that file clears it.
t_rsync_out_of_space_is_rejected() {
    local d="$T_CASE/A/data" m src st rc=0
    mkdir -p "$d"
    mount -t tmpfs -o size=8m preon-test "$d" || fail "cannot mount a small tmpfs for the data directory"
    start_peer A
    m=$(mnt A)
    src=$(src_dir j_rsync)
    make_job "$src" 'ls data' 'disk = 1M'
    mkdir "$src/data"
    echo small >"$src/data/small"
    head -c $((16 << 20)) /dev/zero >"$src/data/big"
    rsync -a -- "$src/" "$m/jobs/j_rsync/" 2>"$T_CASE/rsync.err" || rc=$?
    [ "$rc" -ne 0 ] || fail "an rsync larger than the disk succeeded"
    [ ! -e "$m/jobs/j_rsync/data/big" ] || fail "rsync left data/big (the case is meant for its removed temporary file)"
    st=$(wait_job "$m" j_rsync 30)
    assert_eq rejected "$(field state <<<"$st")" "state of a job whose rsync ran out of space"
    assert_match "$(field reason <<<"$st")" 'data/\.big\.[A-Za-z0-9]{6}: No space left on device' "reason"
    # Fixed the way it is done: a smaller file, and rsync again (which also copies what it never
    # reached the first time: a file a program never tried to write leaves no error to see).
    echo replaced >"$src/data/big"
    rsync -a -- "$src/" "$m/jobs/j_rsync/" || fail "the second rsync failed"
    st=$(wait_job "$m" j_rsync 30)
    assert_eq done "$(field state <<<"$st")" "state once rsync made data/big"
    assert_eq "big
small" "$(cat "$m/results/j_rsync/0/stdout")" "the task's listing"
}

# A write that fails (the data directory's disk is full) fails the copy, and the job is rejected
# with the reason, not published with a short file; once the file is removed, it publishes.
t_copy_out_of_space_is_rejected() {
    local d="$T_CASE/A/data" m src st
    mkdir -p "$d"
    mount -t tmpfs -o size=8m preon-test "$d" || fail "cannot mount a small tmpfs for the data directory"
    start_peer A
    m=$(mnt A)
    src=$(src_dir j_full)
    make_job "$src" 'ls data' 'disk = 1M'
    mkdir "$src/data"
    echo small >"$src/data/small"
    head -c $((16 << 20)) /dev/zero >"$src/data/big"
    cp -r -- "$src" "$m/jobs/j_full" 2>"$T_CASE/cp.err" && fail "a copy larger than the disk succeeded"
    st=$(wait_job "$m" j_full 30)
    assert_eq rejected "$(field state <<<"$st")" "state of a job whose copy ran out of space"
    assert_match "$(field reason <<<"$st")" 'write data/big: No space left on device' "reason"
    rm -- "$m/jobs/j_full/data/big"
    st=$(wait_job "$m" j_full 30)
    assert_eq done "$(field state <<<"$st")" "state once the file is removed"
    assert_file_eq "$m/results/j_full/0/stdout" small
}

run_tests "$@"
