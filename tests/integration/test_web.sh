#!/usr/bin/env bash
# Watching a peer (issue 12, items 3 and 4; docs/usage.md, "Watching a peer"): the status page at /
# in headless Chromium (a job seen going from running to done in the same open page, a job named
# with HTML shown as text, screenshots kept), /v1/status as JSON (bounded, unsigned, within the
# request budget) and /metrics in the Prometheus text format (`promtool check metrics`, counters
# and histograms that move with the work done).
# shellcheck disable=SC2016 # job scripts are single-quoted on purpose: they expand in the task
. "$(dirname -- "$0")/lib.sh"

ROOT=$(cd -- "$(dirname -- "$0")/../.." && pwd)
BROWSER_DIR=$ROOT/tests/browser
# A uid base of our own: the test finds its gate task's process by its uid (pgrep -u).
UID_BASE=64900
# A job name that is HTML (the mount takes any name without '/'): the page must show it as text.
HOSTILE='<img src=x onerror=alert(1)> & <b>bold'

# The task of a gate job makes a FIFO in its task directory and blocks reading it; the test
# releases it (release_gate) by writing a line into that FIFO through /proc/PID/root of the
# task's process, which sees the sandbox's /task.
GATE_RUN='mkfifo go && read -r line <go && rm -f go && echo "$line" >out.txt'

# gate_fifo [UID]: the path, from here, of the gate task's FIFO once it exists (bounded wait); the
# task runs as UID (default $UID_BASE: slot 0 of a peer started with --uid-base $UID_BASE).
gate_fifo() {
    local uid=${1:-$UID_BASE} end=$((SECONDS + 20)) pid
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

# release_gate LINE [UID]: writes LINE into the gate task's FIFO: its task ends.
release_gate() {
    local fifo
    fifo=$(gate_fifo "${2:-}")
    timeout 10 sh -c 'echo "$2" >"$1"' _ "$fifo" "$1" || fail "could not write to the gate task's FIFO $fifo"
}

# json EXPR < JSON: evaluates a JavaScript expression over the parsed JSON (as `d`) and prints it.
json() {
    node -e 'let s = ""; process.stdin.on("data", c => s += c).on("end", () => {
        const d = JSON.parse(s); const v = eval(process.argv[1]);
        console.log(typeof v === "string" ? v : JSON.stringify(v)); })' "$1"
}

# metric M NAME{LABELS}: the value of one sample of M's /metrics.
metric() {
    curl -sS "$1/metrics" | awk -v n="$2" '$1 == n { print $2; found = 1 } END { exit !found }' ||
        fail "no sample $2 in $1/metrics"
}

need_browser() {
    command -v node >/dev/null || fail "node is not installed (scripts/install-deps.sh installs nodejs)"
    [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] ||
        fail "node $(node --version) is older than playwright-core needs (20; scripts/install-deps.sh says so)"
    [ -x /usr/bin/chromium ] || fail "/usr/bin/chromium is missing (scripts/install-deps.sh installs chromium)"
    [ -f "$BROWSER_DIR/node_modules/playwright-core/package.json" ] ||
        fail "playwright-core is not installed in $BROWSER_DIR (scripts/install-deps.sh runs npm ci there)"
}

t_status_page_in_a_browser() {
    need_browser
    start_peer A --slots 1 --uid-base "$UID_BASE"
    local m url st shots line="" out="$T_CASE/browser.out" pid rfd
    m=$(mnt A)
    url=$(peer_field "$m" http)
    publish_job "$m" "$HOSTILE" 'echo fine'
    st=$(wait_job "$m" "$HOSTILE")
    assert_eq "done" "$(field state <<<"$st")" "state of the job named with HTML"
    publish_job "$m" gate "$GATE_RUN"
    wait_status "$m" gate state running
    gate_fifo >/dev/null # its task waits now
    shots="$T_CASE/shots"
    mkdir -p "$shots"
    # The driver prints "running", "done", then "ok" (or "fail: why"); the test releases the task
    # between the first two, while the page stays open.
    mkfifo "$T_CASE/browser.fifo"
    (cd "$BROWSER_DIR" && exec node status_page.mjs "$url" gate "$HOSTILE" "$shots") >"$T_CASE/browser.fifo" 2>"$out" &
    pid=$!
    on_cleanup "_kill_pid $pid 5"
    exec {rfd}<"$T_CASE/browser.fifo"
    read -r -t 60 -u "$rfd" line || true
    [ "$line" = running ] || { cat "$out" >&2; fail "the page never showed gate as running (driver said: '$line')"; }
    assert_eq running "$(status_field "$m" gate state)" "state in status/ while the page showed it running"
    release_gate released
    read -r -t 60 -u "$rfd" line || true
    [ "$line" = "done" ] || { cat "$out" >&2; fail "the open page never showed gate as done (driver said: '$line')"; }
    read -r -t 60 -u "$rfd" line || true
    exec {rfd}<&-
    [ "$line" = ok ] || { cat "$out" >&2; fail "the page's checks: $line"; }
    _wait_pid "$pid" 10 KILL
    assert_eq 0 "$_WAIT_RC" "the driver's exit status"
    st=$(wait_job "$m" gate)
    assert_eq "done" "$(field state <<<"$st")" "gate's state"
    assert_file_eq "$m/results/gate/0/out.txt" released
    # The PNGs are real images; kept past the test (their paths are printed under its PASS line).
    local f
    for f in status-page.png status-page-phone.png; do
        [ "$(od -An -tx1 -N8 "$shots/$f" | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$f is not a PNG"
        keep_artifact "$shots/$f"
    done
}

t_status_json() {
    start_peer A --slots 2 --host-budget 20
    local m url body st id key code
    m=$(mnt A)
    url=$(peer_field "$m" http)
    key=$(peer_field "$m" key)
    publish_job "$m" "$HOSTILE" 'test "$PREON_TASK" != 2 || { echo "no good" >&2; exit 3; }' "tasks = 3"
    st=$(wait_job "$m" "$HOSTILE")
    assert_eq failed "$(field state <<<"$st")" state
    id=$(field id <<<"$st")
    # unsigned GET, JSON, not cached
    local hdr="$T_CASE/hdr"
    body=$(curl -sS -D "$hdr" "$url/v1/status")
    assert_match "$(cat "$hdr")" '^HTTP/1.1 200' status
    assert_match "$(cat "$hdr")" '^content-type: application/json' "content type"
    assert_match "$(cat "$hdr")" '^cache-control: no-store' "cache control"
    assert_eq "$key" "$(json 'd.peer.key' <<<"$body")" "peer key"
    assert_eq "$HOSTILE" "$(json 'd.jobs[0].name' <<<"$body")" "the name, as the same text"
    assert_eq "$id" "$(json 'd.jobs[0].id' <<<"$body")" "job id"
    assert_eq failed "$(json 'd.jobs[0].state' <<<"$body")" "job state"
    assert_eq '{"total":3,"waiting":0,"running":0,"succeeded":2,"failed":1,"cancelled":0}' \
        "$(json 'd.jobs[0].counts' <<<"$body")" counts
    assert_eq 1 "$(json 'd.jobs[0].progress' <<<"$body")" progress
    # each task: state, worker (this peer: its key), time, exit, and the failed one's reason
    assert_eq 'succeeded,succeeded,failed' "$(json 'd.jobs[0].tasks.map(t => t.state).join()' <<<"$body")" "task states"
    assert_eq "true" "$(json "d.jobs[0].tasks.every(t => t.worker === '$key' && t.here && t.ms >= 0)" <<<"$body")" \
        "every task's worker and time"
    assert_eq 3 "$(json 'd.jobs[0].tasks[2].exit' <<<"$body")" "exit of task 2"
    assert_match "$(json 'd.jobs[0].tasks[2].reason' <<<"$body")" 'exit 3' "reason of task 2"
    assert_eq '{"waiting":0,"running":0,"succeeded":2,"failed":1,"cancelled":0}' "$(json 'd.pool.tasks' <<<"$body")" \
        "tasks by state"
    # the recent events, newest first: the job's end, its failed task, its publication
    assert_match "$(json 'd.events.map(e => e.text).join("\n")' <<<"$body")" 'published as' events
    assert_eq "job $HOSTILE failed: 2 succeeded, 1 failed" "$(json 'd.events[0].text' <<<"$body")" "newest event"
    assert_eq warn "$(json 'd.events.find(e => e.text.includes("task 2 failed")).level' <<<"$body")" "failed task event"

    # bounded: 300 waiting tasks on a peer that runs nothing list STATUS_MAX_TASKS of them
    start_peer B --slots 0
    local mb urlb
    mb=$(mnt B)
    urlb=$(peer_field "$mb" http)
    publish_job "$mb" big 'true' "tasks = 300"
    wait_status "$mb" big state running
    body=$(curl -sS "$urlb/v1/status")
    assert_eq 300 "$(json 'd.jobs[0].counts.waiting' <<<"$body")" "waiting"
    assert_eq 100 "$(json 'd.jobs[0].tasks.length' <<<"$body")" "tasks listed"
    assert_eq true "$(json 'd.jobs[0].tasks_truncated' <<<"$body")" "tasks_truncated"
    assert_eq 100 "$(json 'd.limits.tasks_per_job' <<<"$body")" "the limit, said"

    # the page: HTML with a CSP that forbids loads from elsewhere; other paths 404; GET only
    body=$(curl -sS -D "$hdr" "$url/")
    assert_match "$(cat "$hdr")" '^content-type: text/html' "page content type"
    assert_match "$(cat "$hdr")" "^content-security-policy: default-src 'none'; script-src 'sha256-[A-Za-z0-9+/=]+'; style-src 'sha256-" CSP
    assert_match "$(cat "$hdr")" "connect-src 'self'" CSP
    assert_match "$(cat "$hdr")" '^x-content-type-options: nosniff' nosniff
    # the page served is pool/status.html byte for byte (the build's sed turned it into a C string)
    curl -sS "$url/" | cmp -s - "$ROOT/pool/status.html" || fail "GET / is not pool/status.html byte for byte"
    assert_contains "$body" 'fetch("/v1/status"' "the page's polling"
    assert_not_contains "$body" 'innerHTML' "the page"
    assert_not_contains "$body" 'http://' "the page (nothing from elsewhere)"
    assert_not_contains "$body" 'https://' "the page (nothing from elsewhere)"
    code=$(curl -s -o /dev/null -w '%{http_code}' "$url/favicon.ico")
    assert_eq 404 "$code" "an unknown path"
    # an announce sent to the peer's base URL (--tracker without /announce) is not the page: 404,
    # so the announcing peer can say what to try (test_peerapi.sh)
    code=$(curl -s -o /dev/null -w '%{http_code}' "$url/?info_hash=x")
    assert_eq 404 "$code" "/ with a query"
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url/")
    assert_eq 405 "$code" "POST /"
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url/metrics")
    assert_eq 405 "$code" "POST /metrics"
    # reads of the page and of /metrics are charged to the host's budget (--host-budget 20: bursts of 40)
    local n429 urls=()
    for _ in $(seq 1 100); do urls+=(-o /dev/null "$url/" -o /dev/null "$url/metrics"); done
    n429=$(curl -s -w '%{http_code}\n' "${urls[@]}" | grep -c '^429$' || true)
    [ "$n429" -gt 0 ] || fail "200 GETs of / and /metrics on one connection were never refused with 429 (--host-budget 20)"
    [ "$(peer_field "$m" requests-over-budget)" -ge "$n429" ] || fail "requests-over-budget below $n429"
}

# /v1/status and /metrics cost the loop far more than other reads: budgets of their own on top of
# the host's (POOL_STATUS_BUDGET per host, bursts of 20; POOL_STATUS_ALL_BUDGET for every host
# together, bursts of 20), so hosts that each stay within theirs still cannot keep the loop making
# them. The page itself (a static asset) is not charged to them.
t_status_budget() {
    start_peer A --slots 0
    local m url n urls=()
    m=$(mnt A)
    url=$(peer_field "$m" http)
    # one host: 15 answers (within every budget)
    for _ in $(seq 1 15); do urls+=(-o /dev/null "$url/v1/status"); done
    n=$(curl -s -w '%{http_code}\n' "${urls[@]}" | grep -c '^200$' || true)
    assert_eq 15 "$n" "GETs of /v1/status from 127.0.0.1 answered"
    # another host (127.0.0.2, within its own budget of 20): the budget of every host together is
    # spent: 429, and the log says which budget
    urls=()
    for _ in $(seq 1 20); do urls+=(-o /dev/null "$url/v1/status"); done
    n=$(curl -s --interface 127.0.0.2 -w '%{http_code}\n' "${urls[@]}" | grep -c '^429$' || true)
    [ "$n" -gt 0 ] || fail "20 quick GETs of /v1/status from a second host were never refused (every host's budget)"
    wait_log A 'every host together is over its request budget \(/v1/status\)' 5
    [ "$(peer_field "$m" requests-over-budget)" -ge "$n" ] || fail "requests-over-budget below $n"
    # the page is not charged to them: 60 quick GETs of / all answered
    urls=()
    for _ in $(seq 1 60); do urls+=(-o /dev/null "$url/"); done
    n=$(curl -s -w '%{http_code}\n' "${urls[@]}" | grep -c '^200$' || true)
    assert_eq 60 "$n" "GETs of / answered"
}

# A volunteer runs the submitter's task: the submitter's page names it (key and address) and counts
# a lease given, the volunteer's a lease held; both go when the task is done.
t_leases_on_the_page() {
    start_peer A --port 0 --slots 0
    local m url b urlb keyb body st
    m=$(mnt A)
    url=$(peer_field "$m" http)
    start_peer B --port 0 --slots 1 --peer "$url" --uid-base $((UID_BASE + 10))
    b=$(mnt B)
    urlb=$(peer_field "$b" http)
    keyb=$(peer_field "$b" key)
    publish_job "$m" held "$GATE_RUN"
    wait_status "$m" held running 1 30
    gate_fifo $((UID_BASE + 10)) >/dev/null
    body=$(curl -sS "$url/v1/status")
    assert_eq running "$(json 'd.jobs[0].tasks[0].state' <<<"$body")" "the task's state on A"
    assert_eq "$keyb" "$(json 'd.jobs[0].tasks[0].worker' <<<"$body")" "its worker on A"
    assert_eq "$urlb" "$(json 'd.jobs[0].tasks[0].worker_url' <<<"$body")" "where A reaches it"
    assert_eq false "$(json 'd.jobs[0].tasks[0].here' <<<"$body")" "run here"
    assert_eq 1 "$(json 'd.pool.leases_given' <<<"$body")" "A's leases given"
    assert_eq 1 "$(metric "$url" preon_leases_given)" "A's preon_leases_given"
    assert_eq 1 "$(metric "$urlb" preon_leases_held)" "B's preon_leases_held"
    body=$(curl -sS "$urlb/v1/status")
    assert_eq remote "$(json 'd.jobs[0].origin' <<<"$body")" "the job on B"
    assert_eq "running $keyb true" "$(json '[d.jobs[0].tasks[0].state, d.jobs[0].tasks[0].worker, d.jobs[0].tasks[0].here].join(" ")' <<<"$body")" \
        "the task on B"
    release_gate fine $((UID_BASE + 10))
    st=$(wait_job "$m" held)
    assert_eq "done" "$(field state <<<"$st")" "held's state"
    assert_eq 0 "$(metric "$url" preon_leases_given)" "A's leases given, after"
    assert_eq 1 "$(metric "$url" preon_task_dispatch_duration_seconds_count)" "A's dispatch latency samples"
    assert_eq 1 "$(metric "$urlb" 'preon_task_runs_total{result="succeeded"}')" "B's runs"
    body=$(curl -sS "$url/v1/status")
    assert_eq "succeeded $keyb" "$(json '[d.jobs[0].tasks[0].state, d.jobs[0].tasks[0].worker].join(" ")' <<<"$body")" \
        "the task on A, after"
    assert_match "$(json 'd.events.map(e => e.text).join("\n")' <<<"$body")" "job held: task 0 leased to" "A's events"
}

t_metrics() {
    command -v promtool >/dev/null || fail "promtool is missing (scripts/install-deps.sh installs prometheus)"
    start_peer A --slots 2
    local m url out st before
    m=$(mnt A)
    url=$(peer_field "$m" http)
    out=$(curl -sS "$url/metrics" | promtool check metrics 2>&1) || fail "promtool check metrics (no job yet): $out"
    assert_eq "" "$out" "promtool's findings"
    before=$(metric "$url" 'preon_tasks_decided_total{result="succeeded"}')
    assert_eq 0 "$before" "tasks succeeded before any job"
    # a job of 5 tasks, one failing, with a 2 MiB input (8 blocks of 256 KiB) for another peer to read
    local src
    src=$(src_dir sweep)
    make_job "$src" 'test "$PREON_TASK" != 4' "tasks = 5"
    head -c $((2 * 1024 * 1024)) /dev/urandom >"$src/data.bin"
    cp -r -- "$src" "$m/jobs/.sweep"
    mv -- "$m/jobs/.sweep" "$m/jobs/sweep"
    st=$(wait_job "$m" sweep)
    assert_eq failed "$(field state <<<"$st")" state
    assert_eq 4 "$(metric "$url" 'preon_tasks_decided_total{result="succeeded"}')" "tasks decided, succeeded"
    assert_eq 1 "$(metric "$url" 'preon_tasks_decided_total{result="failed"}')" "tasks decided, failed"
    assert_eq 4 "$(metric "$url" 'preon_task_runs_total{result="succeeded"}')" "runs here, succeeded"
    assert_eq 4 "$(metric "$url" 'preon_tasks{state="succeeded"}')" "tasks succeeded"
    assert_eq 1 "$(metric "$url" 'preon_jobs{state="failed"}')" "jobs failed"
    assert_eq 5 "$(metric "$url" preon_task_dispatch_duration_seconds_count)" "dispatch latency samples"
    assert_eq 5 "$(metric "$url" 'preon_task_dispatch_duration_seconds_bucket{le="+Inf"}')" "dispatch +Inf bucket"
    [ "$(metric "$url" preon_loop_busy_seconds_count)" -gt 0 ] || fail "no loop iteration counted"
    # a second peer reads the input: its bytes and blocks in, A's out, a fetch latency per block
    start_peer B --port 0 --peer "$url"
    local mb urlb
    mb=$(mnt B)
    urlb=$(peer_field "$mb" http)
    wait_listed "$mb" sweep 20
    cmp -- "$src/data.bin" "$mb/jobs/sweep/data.bin" || fail "B read other bytes than A's input"
    assert_eq $((2 * 1024 * 1024)) "$(metric "$urlb" preon_received_bytes_total)" "B's bytes in"
    assert_eq 8 "$(metric "$urlb" preon_received_blocks_total)" "B's blocks in"
    assert_eq 8 "$(metric "$urlb" preon_block_fetch_duration_seconds_count)" "B's fetch latency samples"
    [ "$(metric "$url" preon_sent_bytes_total)" -ge $((2 * 1024 * 1024)) ] || fail "A's bytes out"
    assert_eq 0 "$(metric "$urlb" preon_bad_blocks_total)" "bad blocks"
    assert_eq 1 "$(metric "$urlb" preon_pool_peers)" "B's pool peers"
    # B's page lists A with a rate (bytes over the last seconds)
    local body
    body=$(curl -sS "$urlb/v1/status")
    assert_eq "$url" "$(json 'd.peers[0].url' <<<"$body")" "B's peer"
    assert_eq true "$(json 'd.peers[0].rate_in > 0 && d.peers[0].bytes_in === 2097152' <<<"$body")" "B's rate from A"
    for u in "$url" "$urlb"; do
        out=$(curl -sS "$u/metrics" | promtool check metrics 2>&1) || fail "promtool check metrics ($u): $out"
        assert_eq "" "$out" "promtool's findings ($u)"
    done
}

run_tests "$@"
