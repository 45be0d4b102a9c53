#!/usr/bin/env bash
# Random kills (issue 11, item 1): a pool of a stand-alone tracker, a submitter A (runs nothing
# itself) and three volunteers B, C, D runs rounds of jobs whose inputs (a few KiB to a few MiB) and
# results (a few bytes to a few MiB) vary in size, while kill -9 hits a random process at a random
# moment of a random phase (while A publishes, while a volunteer fetches input blocks, while a task
# runs, right after a report, while A collects result blocks, while a volunteer mirrors A's results
# list, while a peer reads results from another, or the tracker at any time),
# which is then restarted on the same data directory and port. After every round:
#   - every job is over and done (wait/ returns, every task succeeded);
#   - every result on A is, byte for byte, what a local run of the task gives (the test runs the
#     task's script itself, with the same PREON_TASK, as the reference), and so is every result read
#     through a volunteer's mount;
#   - no file ever seen under A's results/ or jobs/ had other bytes than its final ones (a watcher
#     lists both every 0.2 s while the round runs, hashes every file it has not seen at that size and
#     time before; result directories count once they hold exit_code: before that a directory is the
#     task's live output, which grows by design);
#   - no verified block is fetched twice by the same peer: every peer's blocks-fetched-again (the
#     fetcher's count of verified blocks the store held already) stays 0, and each volunteer's life (start to kill, or to the round's end) is checked against its store:
#     the peer file's blocks-fetched in that life <= the blocks that appeared in DATA/store/blocks/
#     since it started (+ its cache evictions); a life a kill ended may be short by the blocks
#     verified but still being written to the store (at most the fetcher's 64 slots), which the next
#     life fetches as new. The submitter, which keeps results out of its store, fetches at most the
#     distinct blocks of every result (+64 a kill);
#   - a plain `cp -r` cut by A's crash is never published cut short (see publish);
#   - every peer stops cleanly at the end (exit 0 within 10 s of its unmount; else its threads are
#     shown).
# SOAK_ROUNDS (default 3: the short variant the suite runs, about two minutes) and SOAK_SEED (default:
# from the clock) drive it; the seed is printed first, and the same seed makes the same choices
# (sizes, victims, phases, delays) again. `make soak ROUNDS=N [SEED=S]` runs N rounds. SOAK_PHASES
# (e.g. "mirror run") narrows the phases the kills are picked from.
# shellcheck disable=SC2016 # job scripts are single-quoted on purpose: they expand in the task
. "$(dirname -- "$0")/lib.sh"

: "${SOAK_ROUNDS:=3}"
: "${SOAK_SEED:=$(($(date +%s%N) % 1000000007))}"
SOAK_JOB_TIMEOUT=${SOAK_JOB_TIMEOUT:-150} # seconds one job may take to be over in a round

# The test's own generator (a 64-bit LCG, Knuth's MMIX constants): bash's $RANDOM is re-seeded in
# subshells, this one lives in the test's shell only. rng N sets R to 0..N-1.
SOAK_STATE=$SOAK_SEED
rng() {
    SOAK_STATE=$(((SOAK_STATE * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff))
    R=$(((SOAK_STATE >> 17) % $1))
}

# Peers: A the submitter, B C D volunteers. Their ports are kept so a restart uses the same one.
declare -A SOAK_PORT=() SOAK_FETCHED=()
SOAK_TRACKER_PID=""
SOAK_KILLS_A=0
SOAK_TRACKER_PORT=0
SOAK_LOG="" # what was killed when, one line each

note() {
    echo "soak: $*"
    printf '%s\n' "$*" >>"$SOAK_LOG"
}

start_tracker() {
    local fifo=$T_CASE/tracker.fifo line
    rm -f "$fifo"
    mkfifo "$fifo"
    "$PREON" tracker --listen 127.0.0.1 --port "$SOAK_TRACKER_PORT" --interval 1 --ready-fd 3 \
        --log "$T_CASE/tracker.log" 3>"$fifo" </dev/null >>"$T_CASE/tracker.out" 2>&1 &
    SOAK_TRACKER_PID=$!
    read -r -t 20 line <"$fifo" || fail "the tracker did not start"
    rm -f "$fifo"
    SOAK_TRACKER_PORT=${line##*:}
}

stop_tracker() {
    [ -n "$SOAK_TRACKER_PID" ] || return 0
    _kill_pid "$SOAK_TRACKER_PID" 5
    SOAK_TRACKER_PID=""
}

# soak_start NAME: starts (or restarts) a peer of the pool on its port.
soak_start() {
    local name=$1 t="http://127.0.0.1:$SOAK_TRACKER_PORT/announce" args=()
    args=(--port "${SOAK_PORT[$name]:-0}" --tracker "$t" --pool soak --lease-ms 3000 --quiet-ms 300)
    case "$name" in
        A) args+=(--slots 0) ;;
        B) args+=(--slots 2 --uid-base 64700) ;;
        C) args+=(--slots 2 --uid-base 64710) ;;
        D) args+=(--slots 2 --uid-base 64720) ;;
    esac
    life_begin "$name"
    start_peer "$name" "${args[@]}"
    if [ -z "${SOAK_PORT[$name]:-}" ]; then
        local url
        url=$(peer_field "$(mnt "$name")" http)
        SOAK_PORT[$name]=${url##*:}
    fi
}

# count_fetched NAME: adds what the peer fetched since its start (or the last call) to its total;
# keeps its cache-evictions of this life in SOAK_EVICTED.
declare -A SOAK_SEEN_FETCHED=() SOAK_EVICTED=()
count_fetched() {
    local text n e again
    text=$(timeout 5 cat -- "$(mnt "$1")/peer" 2>/dev/null) || true
    n=$(field blocks-fetched <<<"$text")
    e=$(field cache-evictions <<<"$text")
    [ -n "$n" ] || return 0
    # and the fetcher's own count: verified blocks it received that the store held already
    again=$(field blocks-fetched-again <<<"$text")
    [ "${again:-0}" -eq 0 ] || fail "round $ROUND: $1 says blocks-fetched-again: $again (a verified block it had, fetched again)"
    SOAK_FETCHED[$1]=$((${SOAK_FETCHED[$1]:-0} + n - ${SOAK_SEEN_FETCHED[$1]:-0}))
    SOAK_SEEN_FETCHED[$1]=$n
    SOAK_EVICTED[$1]=${e:-0}
}

# store_list NAME: the blocks in the peer's store (hashes, sorted), from its data directory.
store_list() {
    { find "$T_CASE/$1/data/store/blocks" -type f -printf '%f\n' 2>/dev/null || true; } | sort
}

# life_begin NAME: what the store holds before the peer starts (again): the blocks it must never
# fetch in the life that begins.
life_begin() {
    store_list "$1" >"$T_CASE/store.$1.start"
}

# life_check NAME killed|alive: a volunteer's blocks fetched in this life are all new to its store
# (verified blocks are stored, and a stored block is never fetched again): blocks-fetched <= the
# blocks that appeared in the store since life_begin (+ its evictions). A killed peer may have lost
# the blocks it had verified but not yet stored (their store write still in the thread pool: at most
# FETCH_DEFAULT_TOTAL, 64, transfers and store writes together); they are fetched again in its next
# life, where they are new. The submitter A keeps its results out of the store: it is bounded by
# the distinct result blocks instead (check_round).
life_check() {
    local name=$1 how=$2 fetched new excess end=$((SECONDS + 10))
    [ "$name" != A ] || return 0
    while :; do
        [ "$how" = killed ] || count_fetched "$name"
        fetched=${SOAK_SEEN_FETCHED[$name]:-0}
        new=$(store_list "$name" | comm -13 "$T_CASE/store.$name.start" - | wc -l)
        excess=$((fetched - new - ${SOAK_EVICTED[$name]:-0}))
        [ "$how" = alive ] && [ "$excess" -gt 0 ] && [ "$SECONDS" -le "$end" ] || break
        sleep 0.2 # (bounded: a block verified a moment ago is being written to the store)
    done
    if [ "$how" = killed ]; then
        [ "$excess" -le 64 ] || fail "round $ROUND: $name fetched $fetched blocks in the life a kill ended, only $new new in its store: $excess fetched again"
        [ "$excess" -le 0 ] || note "round $ROUND: $name had $excess verified blocks not yet stored when killed (fetched again in its next life)"
    else
        [ "$excess" -le 0 ] || fail "round $ROUND: $name fetched $fetched blocks in this life but only $new are new in its store: $excess blocks it had were fetched again"
    fi
}

# crash NAME: kill -9 a peer (or the tracker) and start it again on the same data and port.
crash() {
    local name=$1 why=$2 keep=""
    if [ "$name" = T ]; then
        note "round $ROUND: kill -9 the tracker ($why)"
        kill -KILL "$SOAK_TRACKER_PID" 2>/dev/null || true
        wait "$SOAK_TRACKER_PID" 2>/dev/null || true
        start_tracker
        return 0
    fi
    count_fetched "$name"
    [ "$name" != A ] || SOAK_KILLS_A=$((SOAK_KILLS_A + 1))
    rng 2
    [ "$R" = 0 ] || keep=--keep-mount # half the time the next start must clear the dead mount
    note "round $ROUND: kill -9 $name ($why)${keep:+, its dead mount left}"
    kill9_peer "$name" $keep
    life_check "$name" killed
    SOAK_SEEN_FETCHED[$name]=0
    SOAK_EVICTED[$name]=0
    soak_start "$name"
}

# --- jobs and their reference results -----------------------------------------------------------

# The task: reads its input whole, writes a digest, a slice of the input changed (its size from
# sizes, per task: a few bytes to a few MiB), and one line of stdout; sleeps first so that kills
# find tasks running.
SOAK_TASK='sleep "0.$((PREON_TASK % 4 + 3))"
n=$(sed -n "$((PREON_TASK + 1))p" sizes)
sha256sum data.bin | cut -c1-64 > sum.txt
head -c "$n" data.bin | tr "a-z" "n-za-m" > out.bin
echo "task $PREON_TASK of $PREON_TASKS: $(wc -c < data.bin) bytes in, $(wc -c < out.bin) out"'

# Sizes the generator picks from (bytes): inputs and per-task results.
SOAK_IN_SIZES=(3000 70000 300000 1100000 2600000 4200000)
SOAK_OUT_SIZES=(0 17 5000 200000 700000 2000000)

# make_soak_job NAME: a job of 3 or 4 tasks, its input of a random size (base64 text from the
# seeded generator's bytes, so a repeat with the same seed publishes the same bytes), into
# $T_CASE/src/NAME; its reference results into $T_CASE/ref/NAME/<task>/.
make_soak_job() {
    local name=$1 src ntasks insz i n
    src=$(src_dir "$name")
    make_job "$src" "$SOAK_TASK"
    rng 2
    ntasks=$((R + 3))
    printf 'tasks = %s\n' "$ntasks" >"$src/preon.job"
    rng "${#SOAK_IN_SIZES[@]}"
    insz=${SOAK_IN_SIZES[$R]}
    rng 1000000000
    head -c "$insz" /dev/zero | openssl enc -aes-128-ctr -pass "pass:$SOAK_SEED-$R" -nosalt -pbkdf2 2>/dev/null |
        base64 -w 100 >"$src/data.bin"
    truncate -s "$insz" "$src/data.bin"
    : >"$src/sizes"
    for ((i = 0; i < ntasks; i++)); do
        rng "${#SOAK_OUT_SIZES[@]}"
        echo "${SOAK_OUT_SIZES[$R]}" >>"$src/sizes"
    done
    for ((i = 0; i < ntasks; i++)); do
        n="$T_CASE/ref/$name/$i"
        mkdir -p "$n/run"
        cp -- "$src/data.bin" "$src/sizes" "$src/run" "$n/run/"
        (cd "$n/run" && PREON_TASK=$i PREON_TASKS=$ntasks SOAK_TASK_SLEEP=0 sh -c "$(sed '/^sleep/d' run)" >../stdout 2>../stderr)
        mv "$n/run/sum.txt" "$n/run/out.bin" "$n/"
        rm -rf "$n/run"
    done
    SOAK_NTASKS[$name]=$ntasks
}
declare -A SOAK_NTASKS=()

# blocks FILE: how many 256 KiB blocks the file is cut into.
blocks() {
    local s
    s=$(stat -c %s -- "$1")
    echo $(((s + 262143) / 262144))
}

# publish NAME KILL: the dot-name + mv idiom (nothing half-copied is ever a job), or one time in
# three a plain `cp -r` (published once quiet). With KILL=2, A is killed right after the copy (and
# the rename). With KILL=1, A is killed while cp writes the input:
# the copy fails, A comes back, and then a dot-named copy is removed and copied again; a plain
# copy must not have been published cut short: it is rejected (a file was open for writing at the
# crash) until copied again over itself, or, if cp had finished before the kill, published whole.
publish() {
    local name=$1 kill_it=$2 a src cpid rc=0 plain=0 dest st
    a=$(mnt A)
    src=$T_CASE/src/$name
    rng 3
    [ "$R" = 0 ] && plain=1
    dest=$name
    [ "$plain" = 1 ] || dest=.$name
    if [ "$kill_it" = 1 ]; then
        cp -r -- "$src" "$a/jobs/$dest" 2>/dev/null &
        cpid=$!
        # Event: the input being written (its size in the staging directory grows).
        wait_until 20 '[ "$(stat -c %s -- "$a/jobs/$dest/data.bin" 2>/dev/null || echo 0)" -gt 0 ] || ! kill -0 $cpid 2>/dev/null' \
            "cp of $name starting"
        crash A "while cp -r publishes $name ($([ "$plain" = 1 ] && echo "plain cp, published once quiet" || echo "to a dot-name"))"
        wait "$cpid" 2>/dev/null || rc=$?
        a=$(mnt A)
        if [ "$plain" = 0 ]; then
            [ ! -e "$a/jobs/$name" ] || fail "$name is a job although its copy was cut and never renamed"
            rm -rf -- "$a/jobs/.$name"
            [ ! -e "$a/jobs/.$name" ] || fail "the staging directory .$name could not be removed after the crash"
        else
            # Over (rejected, or done: the copy had finished) or still staged: never published cut short.
            sleep 1 # (a state that must NOT come: the quiet period, 0.3 s, passes meanwhile)
            st=$(timeout 10 cat -- "$a/status/$name") || fail "no status/$name after the crash"
            if [ -n "$(field id <<<"$st")" ]; then
                note "round $ROUND: $name had been copied whole before the kill: published"
                for f in run data.bin sizes preon.job; do
                    cmp -- "$src/$f" "$a/jobs/$name/$f" || fail "round $ROUND: $name was published with $f cut short by the crash"
                done
                return 0
            fi
            note "round $ROUND: $name after the crash: $(field state <<<"$st"): $(field reason <<<"$st")"
            cp -r -- "$src/." "$a/jobs/$name/"
            return 0
        fi
    fi
    cp -r -- "$src" "$a/jobs/$dest"
    [ "$plain" = 1 ] || mv -- "$a/jobs/.$name" "$a/jobs/$name"
    if [ "$kill_it" = 2 ]; then # right after the rename: while A hashes the job to publish it
        crash A "right after mv published $name"
    fi
}

# --- the watcher -------------------------------------------------------------------------------

# watch_start: polls A's jobs/ and results/ every 0.2 s in the background and appends
# "PATH<TAB>SHA256" (path relative to the mount) for each file at a size and time it has not seen.
watch_start() {
    local m out=$T_CASE/watch.$ROUND
    m=$(mnt A)
    : >"$out"
    (
        trap - EXIT INT TERM
        declare -A seen=()
        local line p key d sum
        while :; do
            while IFS=$'\t' read -r p key; do
                [ -n "$p" ] || continue
                case "$p" in
                    jobs/.* | */.*) continue ;; # a staging copy, or a dot-file: not published
                    jobs/*)
                        # A plain cp is seen while it copies (the user's own copy, by design): a
                        # job's files count once it is published (its id shown, before the read).
                        d=${p#jobs/}
                        d=${d%%/*}
                        grep -q '^id: ' "$m/status/$d" 2>/dev/null || continue
                        ;;
                    results/*)
                        d=${p%/*}
                        [ -e "$m/$d/exit_code" ] || continue # live output, growing by design
                        ;;
                esac
                [ -z "${seen[$p$key]:-}" ] || continue
                sum=$(sha256sum <"$m/$p" 2>/dev/null | cut -c1-64) || continue
                [ -n "$sum" ] || continue
                seen[$p$key]=1
                printf '%s\t%s\n' "$p" "$sum" >>"$out"
            done < <(cd "$m" 2>/dev/null && timeout 10 find jobs results -type f -printf '%p\t%s:%T@\n' 2>/dev/null)
            sleep 0.2
        done
    ) >/dev/null 2>&1 &
    WATCH_PID=$!
    on_cleanup "kill $WATCH_PID"
}

watch_stop() {
    kill "$WATCH_PID" 2>/dev/null || true
    wait "$WATCH_PID" 2>/dev/null || true
}

# --- one round -----------------------------------------------------------------------------------

# wait_event PHASE: returns once the round has reached PHASE (a log line or a counter: the states
# these have no blocking read for), bounded; prints the peer to kill.
ROUND_NAMES=()
phase_reached() {
    case "$1" in
        fetch) [ "$(peer_field "$(mnt "$2")" blocks-fetched 2>/dev/null || echo 0)" -gt "${SOAK_SEEN_FETCHED[$2]:-0}" ] ;;
        run) grep -qE "job r${ROUND}j[0-9]+: task .* leased to .*:${SOAK_PORT[$2]}\b" "${PEER_LOG[A]}" 2>/dev/null ;;
        report) grep -qE "job r${ROUND}j[0-9]+ task [0-9]+: result " "${PEER_LOG[A]}" 2>/dev/null ;;
    esac
}

# jobs_over: every job of the round is over on A (a phase may never come: results all inline, say;
# then the kill comes after).
jobs_over() {
    local name st
    for name in "${ROUND_NAMES[@]}"; do
        st=$(timeout 5 cat -- "$(mnt A)/status/$name" 2>/dev/null | sed -n 's/^state: //p')
        case "$st" in done | failed | cancelled) ;; *) return 1 ;; esac
    done
}

round() {
    local njobs name i j victim phase st a kills
    a=$(mnt A)
    ROUND_NAMES=()
    rng 2
    njobs=$((R + 2))
    for ((j = 0; j < njobs; j++)); do
        name=r${ROUND}j$j
        make_soak_job "$name"
        ROUND_NAMES+=("$name")
    done
    watch_start
    # One phase to kill in per round (two in a round out of three), picked now.
    local phases
    read -ra phases <<<"${SOAK_PHASES:-publish fetch run report collect mirror tracker}"
    rng 3
    kills=$((R == 0 ? 1 : 2))
    local plan=()
    for ((i = 0; i < kills; i++)); do
        rng "${#phases[@]}"
        plan+=("${phases[$R]}")
    done
    note "round $ROUND: jobs ${ROUND_NAMES[*]}; kills in: ${plan[*]}"
    local killed_publish=0
    for phase in "${plan[@]}"; do
        [ "$phase" = publish ] && killed_publish=1
    done
    # The publish phase kills A during the first job's copy, or (one time in three) right after its
    # rename, while A hashes it.
    local how=1
    rng 3
    [ "$R" != 0 ] || how=2
    for ((j = 0; j < njobs; j++)); do
        publish "${ROUND_NAMES[$j]}" "$((killed_publish && j == 0 ? how : 0))"
    done
    for phase in "${plan[@]}"; do
        case "$phase" in
            publish) ;; # done above
            fetch)
                rng 3
                victim=$(printf 'B\nC\nD\n' | sed -n "$((R + 1))p")
                # Event: the victim's blocks-fetched moved; or, if A is the victim, any volunteer's.
                rng 2
                if [ "$R" = 0 ]; then
                    wait_until 60 'phase_reached fetch B || phase_reached fetch C || phase_reached fetch D || jobs_over' "a volunteer fetching"
                    crash A "serving input blocks"
                else
                    wait_until 60 "phase_reached fetch $victim || phase_reached report A || jobs_over" "$victim fetching"
                    crash "$victim" "fetching input blocks"
                fi
                ;;
            run)
                rng 3
                victim=$(printf 'B\nC\nD\n' | sed -n "$((R + 1))p")
                wait_until 60 "phase_reached run $victim || phase_reached report A || jobs_over" "a task of round $ROUND leased to $victim"
                # then a task running there (its sandbox started), unless every job is over first
                wait_until 60 "[ \"\$(peer_field \"\$(mnt $victim)\" running-tasks 2>/dev/null || echo 0)\" -gt 0 ] || jobs_over" \
                    "a task of round $ROUND running on $victim"
                rng 3
                sleep "0.$R" # somewhere in the task's 0.3-0.6 s
                crash "$victim" "running a task: running-tasks $(peer_field "$(mnt "$victim")" running-tasks 2>/dev/null || echo '?') just before"
                ;;
            report)
                wait_until 90 "phase_reached report A || jobs_over" "a report on A"
                rng 4
                victim=$(printf 'A\nB\nC\nD\n' | sed -n "$((R + 1))p")
                crash "$victim" "right after a report reached A"
                ;;
            collect)
                # Event: A's blocks-fetched moved (A fetching a result's blocks from a volunteer);
                # then A or a volunteer (maybe the sender) is killed.
                wait_until 90 'phase_reached fetch A || jobs_over' "A fetching result blocks"
                rng 4
                victim=$(printf 'A\nB\nC\nD\n' | sed -n "$((R + 1))p")
                crash "$victim" "while A fetches result blocks"
                ;;
            mirror)
                # Event: the victim's results-mirrored moved (it took results of this round's jobs
                # from A's results list into its own results/, as every pool peer does).
                rng 3
                victim=$(printf 'B\nC\nD\n' | sed -n "$((R + 1))p")
                local base
                base=$(peer_field "$(mnt "$victim")" results-mirrored 2>/dev/null || echo 0)
                wait_until 90 "[ \"\$(peer_field \"\$(mnt $victim)\" results-mirrored 2>/dev/null || echo 0)\" -gt $base ] || jobs_over" \
                    "$victim mirroring results of round $ROUND"
                local now_m
                now_m=$(peer_field "$(mnt "$victim")" results-mirrored 2>/dev/null || echo 0)
                if [ "$now_m" -gt "$base" ]; then
                    crash "$victim" "while it mirrors A's results (results-mirrored $now_m, $base before)"
                else
                    crash "$victim" "in the mirror phase, every job over before it mirrored one"
                fi
                ;;
            tracker)
                rng 10
                sleep "0.$R"
                crash T "at a random moment"
                ;;
        esac
    done
    for name in "${ROUND_NAMES[@]}"; do
        a=$(mnt A)
        st=$(wait_job "$a" "$name" "$SOAK_JOB_TIMEOUT")
        assert_eq done "$(field state <<<"$st")" "round $ROUND: state of $name on A"
        assert_eq "${SOAK_NTASKS[$name]}" "$(field succeeded <<<"$st")" "round $ROUND: tasks of $name succeeded"
    done
    # Mirror: a volunteer reads every result through its mount (lazily, from A) while, one round in
    # two, A or the reader is killed half-way; then everything is read again.
    rng 3
    victim=$(printf 'B\nC\nD\n' | sed -n "$((R + 1))p")
    rng 2
    if [ "$R" = 0 ]; then
        local rpid
        (
            trap - EXIT INT TERM
            cd "$(mnt "$victim")" && find results -type f -exec cat {} + >/dev/null 2>&1
        ) &
        rpid=$!
        rng 2
        local who=$victim
        [ "$R" = 0 ] && who=A
        wait_until 60 "phase_reached fetch $victim || ! kill -0 $rpid 2>/dev/null" "$victim reading results"
        crash "$who" "while $victim reads results from A"
        wait "$rpid" 2>/dev/null || true
    fi
    watch_stop
    check_round "$victim"
}

# check_round READER: the invariants, on A and through READER's mount.
check_round() {
    local reader=$1 a r name i f n p sum want
    a=$(mnt A)
    r=$(mnt "$reader")
    for name in "${ROUND_NAMES[@]}"; do
        wait_listed "$r" "$name" 30
        st=$(wait_job "$r" "$name" 60) # over on the reader once the results are mirrored
        for ((i = 0; i < SOAK_NTASKS[$name]; i++)); do
            for f in stdout sum.txt out.bin; do
                cmp -- "$T_CASE/ref/$name/$i/$f" "$a/results/$name/$i/$f" ||
                    fail "round $ROUND: $name task $i: $f on A differs from the local run"
                cmp -- "$T_CASE/ref/$name/$i/$f" "$r/results/$name/$i/$f" ||
                    fail "round $ROUND: $name task $i: $f read through $reader differs from the local run"
            done
            assert_eq 0 "$(cat -- "$a/results/$name/$i/exit_code")" "round $ROUND: $name task $i exit_code"
            n=$(ls -A -- "$a/results/$name/$i" | sort | tr '\n' ' ')
            assert_eq "exit_code out.bin stderr stdout sum.txt " "$n" "round $ROUND: files of $name task $i on A"
        done
        for f in run data.bin sizes preon.job; do
            cmp -- "$T_CASE/src/$name/$f" "$a/jobs/$name/$f" || fail "round $ROUND: jobs/$name/$f on A differs from its source"
        done
    done
    # Every file the watcher saw has its final bytes.
    local bad=0
    while IFS=$'\t' read -r p sum; do
        want=$(sha256sum <"$a/$p" | cut -c1-64) || fail "round $ROUND: $p was seen but cannot be read now"
        if [ "$sum" != "$want" ]; then
            echo "round $ROUND: $p was seen with other bytes ($sum) than its final ones ($want)" >&2
            bad=$((bad + 1))
        fi
    done <"$T_CASE/watch.$ROUND"
    [ "$bad" = 0 ] || fail "round $ROUND: $bad files seen under results/ or jobs/ with other bytes than their final ones"
    note "round $ROUND: the watcher saw $(wc -l <"$T_CASE/watch.$ROUND") file versions, each its final bytes"
    # Blocks: a volunteer never fetches a block its store has (life_check); A at most the distinct
    # result blocks of every round.
    local rbound=0
    for name in $(ls "$T_CASE/src"); do
        for ((i = 0; i < SOAK_NTASKS[$name]; i++)); do
            for f in out.bin sum.txt stdout stderr; do
                rbound=$((rbound + $(blocks "$T_CASE/ref/$name/$i/$f")))
            done
            rbound=$((rbound + 1)) # exit_code
        done
    done
    for p in B C D; do
        life_check "$p" alive
    done
    count_fetched A
    if [ "${SOAK_FETCHED[A]:-0}" -gt "$((rbound + 64 * SOAK_KILLS_A))" ]; then
        fail "round $ROUND: A fetched ${SOAK_FETCHED[A]} blocks in all, more than the $rbound distinct result blocks there are (+64 for each of its $SOAK_KILLS_A kills)"
    fi
    note "round $ROUND: blocks fetched in all: A ${SOAK_FETCHED[A]:-0} (at most $rbound result blocks + 64 a kill) B ${SOAK_FETCHED[B]:-0} C ${SOAK_FETCHED[C]:-0} D ${SOAK_FETCHED[D]:-0} (each life's new to its store)"
}

# soak_stop NAME: stop_peer, but a peer that has not exited 10 s after its unmount has its threads'
# stacks shown (gdb) before it is killed and the test fails: a stop that hangs is a finding too.
soak_stop() {
    local name=$1 pid err dev
    pid=$(peer_pid "$name")
    dev=$(awk -v m="$(mnt "$name")" '$5 == m { print $3 }' /proc/self/mountinfo)
    # Mounts that name the peer's mount other than its own (an overlay whose lowerdir is in it).
    grep -F -- "$(mnt "$name")" /proc/self/mountinfo | awk -v m="$(mnt "$name")" '$5 != m' >"$T_CASE/mounts.$name" || true
    err=$(fusermount3 -u "$(mnt "$name")" 2>&1) || fail "fusermount3 -u of $name failed: $err"
    local end=$((SECONDS + 10))
    while [ "$SECONDS" -le "$end" ] && [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null || echo Z)" != Z ]; do
        sleep 0.1 # (bounded: a zombie, our child not yet reaped, has exited)
    done
    if [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null || echo Z)" != Z ]; then
        echo "--- $name (pid $pid) still runs 10 s after its unmount; its threads:" >&2
        timeout 60 gdb -batch -p "$pid" -ex "thread apply all bt" -ex "frame function mount_main" \
            -ex "print *ctx.fs" -ex "print *ctx.fs->pool" 2>&1 | grep -E '^(#|Thread|\$)' >&2 || true
        echo "--- mounts naming its mount before the unmount:" >&2
        cat "$T_CASE/mounts.$name" >&2
        echo "--- processes whose mount namespace holds its mount ($dev) or names it:" >&2
        grep -lE -- " $dev |$(mnt "$name")" /proc/[0-9]*/mountinfo 2>/dev/null | while read -r f; do
            f=${f%/mountinfo}
            echo "${f#/proc/}: $(tr '\0' ' ' <"$f/cmdline" 2>/dev/null | cut -c1-200)" >&2
        done
        show_peer_output "$name"
        cp -- "${PEER_LOG[$name]}" "$T_CASE/log.$name" && keep_artifact "$T_CASE/log.$name"
        end=$((SECONDS + 120))
        while [ "$SECONDS" -le "$end" ] && [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null || echo Z)" != Z ]; do
            sleep 0.5 # (bounded: how long it takes after all)
        done
        echo "--- $name: $(tail -n 3 "${PEER_LOG[$name]}")" >&2
        fail "peer $name did not exit within 10 s after fusermount3 -u ($([ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null || echo Z)" = Z ] && echo "it did within $((SECONDS - end + 120)) s" || echo "nor within 2 more minutes"))"
    fi
    _wait_pid "$pid" 5 KILL
    unset 'PEER_PID[$name]'
    [ "$_WAIT_RC" = 0 ] || { show_peer_output "$name"; fail "peer $name exited $_WAIT_RC after fusermount3 -u, want 0"; }
}

t_random_kills() {
    SOAK_LOG=$T_CASE/soak.log
    echo "soak: SOAK_SEED=$SOAK_SEED SOAK_ROUNDS=$SOAK_ROUNDS (repeat with these)"
    : >"$SOAK_LOG"
    on_cleanup stop_tracker
    on_cleanup 'keep_artifact "$SOAK_LOG"' # what was killed when, printed under PASS or FAIL
    start_tracker
    soak_start A
    soak_start B
    soak_start C
    soak_start D
    for ((ROUND = 1; ROUND <= SOAK_ROUNDS; ROUND++)); do
        round
    done
    local p
    for p in B C D A; do
        soak_stop "$p"
    done
    stop_tracker
    echo "soak: $SOAK_ROUNDS rounds held (seed $SOAK_SEED)"
}

run_tests "$@"
