#!/usr/bin/env bash
# Hostile paths and names (issue 11, item 7), from peers and from users: each is refused with a
# clear reason or handled, and nothing is ever written outside its place.
#
# From peers: a fake peer (tests/integration/lib.sh, fake_tree) whose key signs what it serves, as a
# real submitter's would, lists jobs whose names or manifests hold `..`, absolute paths, NUL bytes
# (\u0000 in JSON), a part over NAME_MAX or a path over 1024 bytes, and serves such manifests to
# `preon get`. A volunteer (curl with a key of its own) reports inline results whose manifests
# hold such paths, and a fake submitter's results list holds such result manifests. From users,
# through the mount: names over NAME_MAX, `..` (resolved by the kernel), a hard link from one job
# into another, and a job copied over one being published (100,000 entries in one directory of a
# job: test_hostile_big.sh). (Symlinks and special files in a job: test_publish.sh; a task's
# outputs with odd names: tests/unit/test_work.c; every parser: tests/fuzz/, docs/reliability.md.)
# After each, no file of the attempt exists anywhere under the case's directory but where it
# belongs.
# shellcheck disable=SC2016
. "$(dirname -- "$0")/lib.sh"

sha() { sha256sum | cut -c1-64; }
b64() { basenc --base64url -w0 | tr -d =; }

# no_evil: no file or directory named evil* anywhere under the case's directory (the canary every
# hostile path below is named after), nor at the absolute paths they named.
no_evil() {
    local found
    found=$(find "$T_CASE" -xdev -name 'evil*' 2>/dev/null || true)
    [ -z "$found" ] || fail "a hostile path was written: $found"
    [ ! -e "$T_CASE/abs-evil" ] || fail "an absolute path from a peer was written: $T_CASE/abs-evil"
}

# A manifest like good's (canonical: a text edit that keeps its order), its id, and the job
# signature by KEY: "ID SIG" on one line, the bytes in FILE.
# forge KEY GOOD_MANIFEST FILE SED_EXPR: writes FILE and prints "ID SIG".
forge() {
    local key=$1 good=$2 out=$3 expr=$4 id
    sed -e "$expr" "$good" | tr -d '\n' >"$out"
    id=$(sha <"$out")
    printf '%s %s\n' "$id" "$(sign_hex "$key" "preon-job-1
$id")"
}

# The listing entry of an origin job of 3 tasks with all its results listed.
entry() { # ID SIG NAME
    printf '{"id":"%s","name":"%s","state":"running","tasks":3,"origin":true,"sig":"%s","counts":{"total":3,"waiting":0,"running":0,"succeeded":3,"failed":0,"cancelled":0},"results":3,"epoch":1}' \
        "$1" "$3" "$2"
}

# A real peer publishes "good" (3 tasks, an empty executable run, --slots 0: never run) with KEY as
# its key; its canonical manifest goes to $T_CASE/good.json and GOOD_ID, GOOD_SIG are set; then
# it stops. What a fake peer serves is made from it, so it is canonical and signed as a real
# submitter's.
real_good_job() {
    local key=$1 m src st
    mkdir -p "$T_CASE/G/data"
    cp -- "$key" "$T_CASE/G/data/key"
    PEER_TRUST=own start_peer G --port 0 --slots 0
    m=$(mnt G)
    src=$(src_dir good)
    : >"$src/run"
    chmod 755 "$src/run"
    printf 'tasks = 3\n' >"$src/preon.job"
    cp -r -- "$src" "$m/jobs/.good"
    mv -- "$m/jobs/.good" "$m/jobs/good"
    wait_status "$m" good state running
    GOOD_ID=$(status_field "$m" good id)
    local url
    url=$(peer_field "$m" http)
    curl -sf --max-time 10 -o "$T_CASE/good.json" "$url/v1/manifest/$GOOD_ID" || fail "GET the good manifest"
    GOOD_SIG=$(curl -sf --max-time 10 "$url/v1/jobs" | jq -r --arg id "$GOOD_ID" '.[] | select(.id == $id) | .sig')
    stop_peer G
    # the fake signs as the real peer did (Ed25519 is deterministic): the helper is right
    assert_eq "$GOOD_SIG" "$(sign_hex "$key" "preon-job-1
$GOOD_ID")" "openssl's signature of the job id"
}

# Another peer's listing and manifests: entries whose names are not names are dropped, manifests
# whose paths leave the job (or cannot be made) are refused, each with its reason in the log, and
# only the good job appears in jobs/; nothing is written anywhere.
t_remote_jobs_with_hostile_names_and_paths_are_refused() {
    local key tree m long deep i
    key=$(test_key fake)
    real_good_job "$key"
    tree=$T_CASE/tree
    mkdir -p "$tree/v1/manifest"
    printf '{"key":"%s"}' "$("$PREON" id --key "$key")" >"$tree/v1/id"
    cp -- "$T_CASE/good.json" "$tree/v1/manifest/$GOOD_ID"
    long=$(printf 'x%.0s' $(seq 256))
    deep=$(printf 'd%.0s' $(seq 250))
    deep="$deep/$deep/$deep/$deep/$deep"
    # sed expressions on the good manifest, each with the reason the log must give
    local -a exprs=(
        's|"path":"run"|"path":"../evil"|' 's|"path":"run"|"path":"'"$T_CASE"'/abs-evil"|'
        's|"path":"run"|"path":"run/../../evil"|' 's|"path":"run"|"path":"evil\\u0000x"|'
        's|"path":"run"|"path":"'"$long"'"|' 's|"path":"run"|"path":"'"$deep"'"|'
        's|"dirs":\[\]|"dirs":[".."]|' 's|"name":"good"|"name":"evil/../../x"|' 's|"name":"good"|"name":".."|'
        's|"name":"good"|"name":"evil\\u0000"|'
    )
    local -a why=(
        "files\\[1\\]: '../evil' is not a valid relative path" "files\\[1\\]: '/.*' is not a valid relative path"
        "files\\[1\\]: 'run/../../evil' is not a valid relative path" "\\\\u0000 is not allowed"
        "files\\[1\\]: 'xxxx.*' is not a valid relative path" "files\\[1\\]: 'dddd.*' is not a valid relative path"
        "dirs\\[0\\]: '..' is not a valid relative path" "name: contains '/'" "name: starts with '.'"
        "\\\\u0000 is not allowed"
    )
    local listing id sig
    listing="[$(entry "$GOOD_ID" "$GOOD_SIG" good)"
    local -a ids=()
    for i in "${!exprs[@]}"; do
        read -r id sig < <(forge "$key" "$T_CASE/good.json" "$T_CASE/forged.$i" "${exprs[$i]}")
        cp -- "$T_CASE/forged.$i" "$tree/v1/manifest/$id"
        ids+=("$id")
        listing+=",$(entry "$id" "$sig" "evil$i")"
    done
    # listing entries whose names are not directory names: dropped before anything is fetched
    local h
    for name in '../evil-a' 'evil/b' '..' 'evil\u0000c' "evil$long"; do
        h=$(printf '%s' "$name" | sha)
        listing+=",$(entry "$h" "$(printf '%0128d' 0)" "$name")"
    done
    printf '%s]' "$listing" >"$tree/v1/jobs"
    fake_tree "$tree" "$T_CASE/asked"
    start_peer B --slots 0 --peer "$FAKE_URL"
    m=$(mnt B)
    # the fake proves its key by a signed greeting, as a real submitter does: its listing counts
    scurl "$key" "$(peer_field "$m" http)/v1/hello?peer=$FAKE_URL" >/dev/null
    wait_listed "$m" good 20
    for i in "${!ids[@]}"; do
        wait_log B "manifest ${ids[$i]} from $FAKE_URL refused: .*${why[$i]}" 10
    done
    wait_log B "peer $FAKE_URL: /v1/jobs: 5 entries dropped \\(the first: " 5
    assert_eq good "$(ls -- "$m/jobs")" "B's jobs/"
    # each is refused once, not fetched and logged again at every poll (every second). (Counted from
    # its refusal: a fetch the transport lost before it, "refused: HTTP error", is rightly asked
    # again. A fresh-clone run once saw a manifest fetched twice; its cause was not found.)
    local polls
    local -a fetched=()
    for i in "${!ids[@]}"; do
        fetched[i]=$(grep -c "GET /v1/manifest/${ids[$i]}" "$T_CASE/asked")
        assert_eq 1 "$(grep -cE -- "manifest ${ids[$i]} from .* refused: .*${why[$i]}" "${PEER_LOG[B]}")" \
            "refusals of manifest $i logged"
    done
    # shellcheck disable=SC2034 # read by wait_until's condition
    polls=$(grep -c 'GET /v1/jobs' "$T_CASE/asked")
    wait_until 10 '[ "$(grep -c "GET /v1/jobs" "$T_CASE/asked")" -ge $((polls + 3)) ]' \
        "three more polls of the fake's /v1/jobs"
    for i in "${!ids[@]}"; do
        assert_eq "${fetched[i]}" "$(grep -c "GET /v1/manifest/${ids[$i]}" "$T_CASE/asked")" \
            "fetches of refused manifest $i after its refusal and three polls"
        assert_eq 1 "$(grep -cE -- "manifest ${ids[$i]} from .* refused: .*${why[$i]}" "${PEER_LOG[B]}")" \
            "refusals of manifest $i logged after three polls"
    done
    for name in '../evil-a' 'evil/b'; do
        if grep -q "GET /v1/manifest/$(printf '%s' "$name" | sha)" "$T_CASE/asked"; then
            fail "the manifest of a dropped entry ($name) was asked for"
        fi
    done
    no_evil
}

# From a user, through the mount. A name over NAME_MAX (or a job name over 200 bytes) is refused
# with ENAMETOOLONG, and nothing is made for it in the data directory. `..`, an absolute path and a
# NUL byte cannot be in a POSIX name: the kernel resolves `..` before the mount sees the path, so
# `jobs/..` is the mount's root (EEXIST), a write there or in results/ is refused (EPERM), and
# `jobs/a/../b/x` is b's file; a path cannot carry a NUL at all. A hard link from one job into
# another is refused (EXDEV) and rejects the job it was made in, with the reason. Nothing named
# evil* appears anywhere.
t_user_hostile_names_in_the_mount() {
    start_peer A
    local m d long name st
    m=$(mnt A)
    d=$(data_dir A)
    long=$(printf 'x%.0s' $(seq 256))
    assert_fails_with "File name too long" mkdir -- "$m/jobs/evil$long"
    assert_fails_with "File name too long" mkdir -- "$m/jobs/evil${long:0:197}" # 201 bytes: over a job name's 200
    mkdir -- "$m/jobs/${long:0:200}" || fail "a job name of 200 bytes was refused"
    mkdir -- "$m/jobs/a" "$m/jobs/b"
    assert_fails_with "File name too long" touch -- "$m/jobs/a/evil${long:4}"
    assert_fails_with "File name too long" mkdir -- "$m/jobs/a/evil${long:4}"
    touch -- "$m/jobs/a/${long:1}" || fail "a name of 255 bytes (NAME_MAX) was refused"
    assert_fails_with "File exists" mkdir -- "$m/jobs/.."
    assert_fails_with "Operation not permitted" touch -- "$m/jobs/../evil"
    assert_fails_with "Operation not permitted" mkdir -- "$m/results/evil"
    printf '#!/bin/sh\necho b\n' >"$m/jobs/a/../b/run" # the kernel made it b/run: b's, not outside
    chmod 755 "$m/jobs/b/run"
    [ -f "$d/staging/b/run" ] || fail "jobs/a/../b/run is not b's run"
    [ ! -e "$m/jobs/a/run" ] || fail "jobs/a/../b/run went into a"
    # a hard link from a's staging copy to b's file: refused, and a says why it waits
    assert_fails_with "Invalid cross-device link" ln -- "$m/jobs/b/run" "$m/jobs/a/evil-link"
    printf '#!/bin/sh\necho a\n' >"$m/jobs/a/run"
    chmod 755 "$m/jobs/a/run"
    st=$(wait_job "$m" a 30)
    assert_eq rejected "$(field state <<<"$st")" "state of a job a hard link into another was made in"
    assert_match "$(field reason <<<"$st")" "hard link evil-link: to a file outside this job" "its reason"
    st=$(wait_job "$m" b 30)
    assert_eq "done" "$(field state <<<"$st")" "state of b"
    assert_file_eq "$m/results/b/0/stdout" b
    name=$(find "$d" -xdev -name "*$long*" 2>/dev/null | head -n 1)
    [ -z "$name" ] || fail "a name over NAME_MAX was made: $name"
    no_evil
}

# A job copied over one being published: while its files are hashed (state publishing, made long
# by a 2 GiB sparse file), every change to it is refused with EBUSY (a write, a new file), and a
# rename of another staged copy onto it with EEXIST. Neither copy is published: the first is
# rejected once quiet, with the refused changes as its reason (a copy into it failed: the user
# decides), its staged files still the first copy's, none of the second's. Waived (its
# .preon-copy-errors removed), the first copy is published whole; after that every change is EROFS.
t_a_job_copied_over_one_being_published() {
    start_peer A --slots 0
    local m src other st reason rc=0
    m=$(mnt A)
    src=$(src_dir first)
    make_job "$src" "echo first"
    truncate -s 2G "$src/big"
    other=$(src_dir second)
    make_job "$other" "echo second"
    printf 'second\n' >"$other/extra"
    cp -r --sparse=always -- "$src" "$m/jobs/j"
    wait_status "$m" j state publishing 30
    cp -r -- "$other/." "$m/jobs/j/" 2>"$T_CASE/cp.err" || rc=$?
    [ "$rc" -ne 0 ] || fail "a copy over a job being published succeeded"
    assert_contains "$(cat "$T_CASE/cp.err")" "Device or resource busy" "cp's error"
    mkdir -- "$m/jobs/.second"
    assert_fails_with "File exists" mv -T -- "$m/jobs/.second" "$m/jobs/j"
    rmdir -- "$m/jobs/.second"
    st=$(wait_job "$m" j 120)
    assert_eq rejected "$(field state <<<"$st")" "state of a job a copy was made over while it was published"
    [ -z "$(field id <<<"$st")" ] || fail "a job copied over while published was published:"$'\n'"$st"
    reason=$(field reason <<<"$st")
    assert_match "$reason" "(open for writing|write) run: Device or resource busy \\(the job was being published\\)" \
        "the reason names the refused write"
    assert_match "$reason" "create extra: Device or resource busy \\(the job was being published\\)" \
        "the reason names the refused file"
    cmp -- "$src/run" "$m/jobs/j/run" || fail "the staged run is not the first copy's"
    [ ! -e "$m/jobs/j/extra" ] || fail "a file of the second copy was made"
    rm -- "$m/jobs/j/.preon-copy-errors"
    wait_status "$m" j state running 120
    assert_eq "$(printf 'big\nrun')" "$(ls -- "$m/jobs/j")" "the published job's files"
    cmp -- "$src/run" "$m/jobs/j/run" || fail "the published run is not the first copy's"
    rc=0
    cp -r -- "$other/." "$m/jobs/j/" 2>"$T_CASE/cp.err" || rc=$?
    [ "$rc" -ne 0 ] || fail "a copy over a published job succeeded"
    assert_contains "$(cat "$T_CASE/cp.err")" "Read-only file system" "cp's error once published"
    cmp -- "$src/run" "$m/jobs/j/run" || fail "the published run changed"
    no_evil
}

# `preon get` of a job whose manifest (from the peer it names, hashing to the id asked for) holds
# `..`, an absolute path, a NUL byte or a part over NAME_MAX: refused with the decoder's reason,
# exit 1, nothing made at DEST nor anywhere else. A path given by the user that leaves the job is
# refused before anything is asked.
t_preon_get_of_a_hostile_manifest_writes_nothing() {
    local key tree long id sig i rc err
    key=$(test_key fake)
    real_good_job "$key"
    tree=$T_CASE/tree
    mkdir -p "$tree/v1/manifest" "$T_CASE/dest"
    long=$(printf 'x%.0s' $(seq 256))
    local -a exprs=(
        's|"path":"run"|"path":"../evil"|' 's|"path":"run"|"path":"'"$T_CASE"'/abs-evil"|'
        's|"path":"run"|"path":"run/../../evil"|' 's|"path":"run"|"path":"evil\\u0000x"|'
        's|"path":"run"|"path":"'"$long"'"|' 's|"dirs":\[\]|"dirs":[".."]|'
    )
    local -a why=(
        "'../evil' is not a valid relative path" "'/.*' is not a valid relative path"
        "'run/../../evil' is not a valid relative path" "\\\\u0000 is not allowed"
        "'xxxx.*' is not a valid relative path" "'..' is not a valid relative path"
    )
    fake_tree "$tree" "$T_CASE/asked"
    for i in "${!exprs[@]}"; do
        read -r id sig < <(forge "$key" "$T_CASE/good.json" "$T_CASE/forged.$i" "${exprs[$i]}")
        cp -- "$T_CASE/forged.$i" "$tree/v1/manifest/$id"
        rc=0
        err=$(timeout 30 "$PREON" get --peer "$FAKE_URL" "$id" "$T_CASE/dest/out.$i" 2>&1) || rc=$?
        assert_eq 1 "$rc" "exit of preon get of forged manifest $i"
        assert_match "$err" "$FAKE_URL: sent a bad manifest: .*${why[$i]}" "preon get's reason for manifest $i"
    done
    assert_eq "" "$(ls -A -- "$T_CASE/dest")" "DEST's directory after the refused manifests"
    rc=0
    err=$("$PREON" get --peer "$FAKE_URL" "$GOOD_ID/../evil" "$T_CASE/dest/out" 2>&1) || rc=$?
    [ "$rc" -ne 0 ] || fail "preon get of ID/../evil succeeded"
    assert_contains "$err" "'../evil' is not a path inside a job" "preon get's reason for ID/../evil"
    if grep -q "GET /v1/manifest/$GOOD_ID" "$T_CASE/asked"; then
        fail "preon get asked for a manifest for a path out of the job"
    fi
    no_evil
}

# man_at PATH TEXT: a canonical result manifest of one file at PATH (JSON text, as it goes in the
# manifest) holding TEXT and a newline; what a fake volunteer reports (test_coord.sh's man_for).
man_at() {
    local h man
    h=$(printf '%s\n' "$2" | sha)
    man='{"block_size":262144,"created_ms":1,"dirs":[],"files":[{"blocks":["'$h'"],"mode":420,"path":"'$1'","size":'$((${#2} + 1))'}],'
    man+='"job":{"command":"/job/run","disk":1073741824,"memory":1073741824,"network":false,"outputs":[],'
    man+='"processes":64,"replicas":1,"tasks":1,"timeout_ms":3600000},"name":"x.0","v":1}'
    printf '%s' "$man"
}

# A volunteer (curl with a key of its own, holding the leases of a 6-task job) reports results
# whose manifests name `../evil`, an absolute path, `stdout/../../evil`, a NUL byte or a part over
# NAME_MAX, one task each, inline with bytes that match their blocks: each is refused (400, the
# manifest's fault in the answer), nothing is written and the task waits for another peer; the
# good report of the sixth task is taken.
t_a_volunteer_result_with_hostile_paths_is_refused() {
    start_peer A --port 0 --slots 0
    local a url id me="http://127.0.0.1:9" key long man code i st
    a=$(mnt A)
    url=$(peer_field "$a" http)
    id=$(publish_idle "$a" vol 6)
    key=$(test_key 9)
    for i in 0 1 2 3 4 5; do
        assert_contains "$(scurl "$key" "$url/v1/lease/$id?peer=$me")" "\"tasks\":[$i]" "lease answer $i"
    done
    long=$(printf 'x%.0s' $(seq 256))
    local -a paths=("../evil" "$T_CASE/abs-evil" "stdout/../../evil" 'evil\u0000x' "evil$long")
    for i in "${!paths[@]}"; do
        man=$(man_at "${paths[$i]}" evil)
        code=$(scurl "$key" "$url/v1/done/$id/$i?peer=$me&exit=0&ms=1$(signed_result "$key" "$id" "$i" "$man" 0)&man=$(printf '%s' "$man" | b64)&data=$(printf 'evil\n' | b64)" \
            -o "$T_CASE/answer.$i" -w '%{http_code}')
        assert_eq 400 "$code" "the answer to a result at ${paths[$i]:0:40}"
        assert_match "$(cat "$T_CASE/answer.$i")" '^\{"error":"inline result refused: .*(is not a valid relative path|u0000 is not allowed)' \
            "the answer's reason for ${paths[$i]:0:40}"
        wait_log A "job vol task $i: the inline result from $me is refused: .*\\(the task waits for another peer\\)" 10
    done
    man=$(man_at stdout good)
    code=$(scurl "$key" "$url/v1/done/$id/5?peer=$me&exit=0&ms=1$(signed_result "$key" "$id" 5 "$man" 0)&man=$(printf '%s' "$man" | b64)&data=$(printf 'good\n' | b64)" \
        -o /dev/null -w '%{http_code}')
    assert_eq 202 "$code" "the answer to a good result"
    wait_until 20 '[ -f "$a/results/vol/5/stdout" ]' "the good result in results/"
    assert_file_eq "$a/results/vol/5/stdout" good
    for i in 0 1 2 3 4; do
        [ ! -e "$a/results/vol/$i" ] || fail "the refused result of task $i was kept"
    done
    st=$(timeout 10 cat -- "$a/status/vol")
    assert_eq running "$(field state <<<"$st")" "state after the refused reports"
    no_evil
}

# accepted_entry KEY JOB TASK MANIFEST: one entry of a results list, its result accepted (exit 0)
# and signed by KEY as the job's submitter signs it (pool/auth.h, auth_accepted_sign).
accepted_entry() {
    local rid sig
    rid=$(printf '%s' "$4" | sha)
    sig=$(sign_hex "$1" "preon-accepted-1
$2
$3
$rid
0
1
-
")
    jq -cn --argjson task "$3" --arg id "$rid" --arg man "$4" --arg sig "$sig" \
        '{task: $task, exit: 0, ok: true, id: $id, manifest: $man, sig: $sig}'
}

# The results list of another peer's job (its submitter, a fake peer, signs each entry as a real
# one does) holds result manifests naming `../evil` and a NUL byte beside a good one: the two are
# refused with the reason in the log (once: the list is not asked for again), never shown in
# results/; the good one is, and reads back (its block fetched from the fake and checked). Nothing
# is written anywhere.
t_a_results_list_with_hostile_paths_is_refused() {
    local key tree m h man0 man1 man2
    key=$(test_key fake)
    real_good_job "$key"
    tree=$T_CASE/tree
    mkdir -p "$tree/v1/manifest" "$tree/v1/results" "$tree/v1/block"
    printf '{"key":"%s"}' "$("$PREON" id --key "$key")" >"$tree/v1/id"
    cp -- "$T_CASE/good.json" "$tree/v1/manifest/$GOOD_ID"
    printf '[%s]' "$(entry "$GOOD_ID" "$GOOD_SIG" good)" >"$tree/v1/jobs"
    man0=$(man_at "../evil" evil)
    man1=$(man_at 'evil\u0000' evil)
    man2=$(man_at stdout good)
    h=$(printf 'good\n' | sha)
    printf 'good\n' >"$tree/v1/block/$h"
    jq -cn --arg job "$GOOD_ID" --argjson e0 "$(accepted_entry "$key" "$GOOD_ID" 0 "$man0")" \
        --argjson e1 "$(accepted_entry "$key" "$GOOD_ID" 1 "$man1")" \
        --argjson e2 "$(accepted_entry "$key" "$GOOD_ID" 2 "$man2")" \
        '{job: $job, state: "running", epoch: 1, after: 0, done: 3, results: [$e0, $e1, $e2]}' \
        >"$tree/v1/results/$GOOD_ID"
    fake_tree "$tree" "$T_CASE/asked"
    start_peer B --slots 0 --peer "$FAKE_URL"
    m=$(mnt B)
    scurl "$key" "$(peer_field "$m" http)/v1/hello?peer=$FAKE_URL" >/dev/null
    wait_listed "$m" good 20
    wait_log B "job good: 2 results from $FAKE_URL do not decode \\(the first: task 0: .*'\\.\\./evil' is not a valid relative path" 20
    wait_until 20 '[ -f "$m/results/good/2/stdout" ]' "the good result in B's results/"
    assert_file_eq "$m/results/good/2/stdout" good
    [ ! -e "$m/results/good/0" ] || fail "a result naming ../evil is shown"
    [ ! -e "$m/results/good/1" ] || fail "a result naming a NUL byte is shown"
    # the list is asked for once and its refusals logged once, not again at every poll
    local polls
    # shellcheck disable=SC2034 # read by wait_until's condition
    polls=$(grep -c 'GET /v1/jobs' "$T_CASE/asked")
    wait_until 10 '[ "$(grep -c "GET /v1/jobs" "$T_CASE/asked")" -ge $((polls + 3)) ]' \
        "three more polls of the fake's /v1/jobs"
    assert_eq 1 "$(grep -c "GET /v1/results/$GOOD_ID" "$T_CASE/asked")" "requests of the results list"
    assert_eq 1 "$(grep -c "results from .* do not decode" "${PEER_LOG[B]}")" "refusals logged"
    no_evil
}

run_tests "$@"
