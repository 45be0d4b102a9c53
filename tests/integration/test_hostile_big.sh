#!/usr/bin/env bash
# Hostile input from a user (issue 11, item 7), the one case too slow to share test_hostile.sh's
# time budget under make asan: 100,000 entries in one directory of a job copied into jobs/.
. "$(dirname -- "$0")/lib.sh"

# 100,000 entries in one directory of a job copied into jobs/ (with its run: 100,001 files, one
# more than a manifest holds): the copy goes through in bounded time (timeout 400 s; about a
# minute, a few under make asan), the directory lists whole through the mount, and the job is
# rejected once quiet and its files counted, with the limit and what to do as its reason; the
# peer's memory stays bounded (its peak under 256 MiB, about 45 MiB here; under 1 GiB with
# AddressSanitizer, about 540 MiB); nothing is published.
t_a_job_of_100000_entries_in_one_directory() {
    start_peer A --slots 0
    local m src st hwm
    m=$(mnt A)
    src=$(src_dir big)
    make_job "$src" "echo hi"
    mkdir -- "$src/data"
    (cd "$src/data" && seq -f 'f%06g' 1 100000 | xargs touch --)
    timeout 400 cp -r -- "$src" "$m/jobs/big" || fail "cp -r of 100,000 files into jobs/ failed or took over 400 s"
    assert_eq 100000 "$(timeout 60 ls -- "$m/jobs/big/data" | wc -l)" "entries listed in jobs/big/data"
    st=$(wait_job "$m" big 400)
    assert_eq rejected "$(field state <<<"$st")" "state of a job of 100,001 files"
    assert_match "$(field reason <<<"$st")" "^more than 100000 files, the most a job holds \\(pack small files" "its reason"
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$(peer_pid A)/status")
    local cap=$((256 * 1024))
    # (not `ldd | grep -q`: under pipefail, grep leaving early can fail ldd with SIGPIPE, and the
    # ASan cap was not taken under make asan)
    if [[ "$(ldd "$PREON")" == *libasan* ]]; then
        cap=$((1024 * 1024)) # AddressSanitizer's quarantine and shadow: 540 MiB under make asan
    fi
    [ "$hwm" -lt "$cap" ] || fail "the peer's memory peaked at $hwm KiB for a job of 100,000 files (cap $cap)"
    assert_eq "" "$(ls -A -- "$(data_dir A)/inputs" 2>/dev/null)" "inputs/ (nothing published)"
}

run_tests "$@"
