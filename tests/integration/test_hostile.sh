#!/usr/bin/env bash
# Hostile paths and names (issue 11, item 7), from peers and from users: each is refused with a
# clear reason or handled, and nothing is ever written outside its place.
#
# From peers: a fake peer (tests/integration/lib.sh, fake_tree) whose key signs what it serves, as a
# real submitter's would, lists jobs whose names or manifests hold `..`, absolute paths, NUL bytes
# (\u0000 in JSON), a part over NAME_MAX or a path over 1024 bytes; serves results lists whose
# result manifests hold the same; `preon get` is pointed at it; a fake volunteer (curl with a key of
# its own) reports results whose manifests hold them. From users: a name over NAME_MAX or with a
# newline, 100,000 entries in one directory of a job, symlinks and hard links in a job, a job
# copied over one being published, and tasks whose outputs have odd names or are symlinks out.
# After each, no file of the attempt exists anywhere under the case's directory but where it
# belongs.
# shellcheck disable=SC2016
. "$(dirname -- "$0")/lib.sh"

b64() { basenc --base64url -w0 | tr -d =; }
sha() { sha256sum | cut -c1-64; }

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
    local listing="[$(entry "$GOOD_ID" "$GOOD_SIG" good)" id sig
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
    # each is refused once, not fetched and logged again at every poll (every second)
    local polls
    polls=$(grep -c 'GET /v1/jobs' "$T_CASE/asked")
    wait_until 10 '[ "$(grep -c "GET /v1/jobs" "$T_CASE/asked")" -ge $((polls + 3)) ]' \
        "three more polls of the fake's /v1/jobs"
    for i in "${!ids[@]}"; do
        assert_eq 1 "$(grep -c "GET /v1/manifest/${ids[$i]}" "$T_CASE/asked")" "fetches of refused manifest $i"
        assert_eq 1 "$(grep -c "manifest ${ids[$i]} from .* refused" "${PEER_LOG[B]}")" "refusals of manifest $i logged"
    done
    for name in '../evil-a' 'evil/b'; do
        if grep -q "GET /v1/manifest/$(printf '%s' "$name" | sha)" "$T_CASE/asked"; then
            fail "the manifest of a dropped entry ($name) was asked for"
        fi
    done
    no_evil
}

run_tests "$@"
