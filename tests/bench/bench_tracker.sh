#!/usr/bin/env bash
# Tracker benchmark: Preon's tracker against opentracker (Debian's package), same machine, same
# run, back to back, same wrk script (../shared/bench/announce.lua: compact announces over 1000
# whitelisted info_hashes, a new peer every request). Prints requests/s, p50, p99 and RSS of both
# and the ratio; then a memory check: 100,000 distinct peers (1000 swarms x 100 ports) announced to
# a fresh instance of each, verified by scraping, and the RSS growth.
#
# Goals (../shared/brief/anchors.md): >= 3x opentracker's requests/s, p99 < 2 ms, 100k peers in
# well under 64 MiB. The machine is shared and noisy: compare ratios from the same run.
#
# Usage: PREON=build/preon tests/bench/bench_tracker.sh
# Environment: DURATION (wrk seconds, default 10), ROUNDS (default 1: opentracker then ours),
# ANNOUNCE_LUA (default ../shared/bench/announce.lua beside the repository). Needs root (opentracker
# chroots and drops to nobody), wrk and opentracker (scripts/install-deps.sh installs both).
set -euo pipefail
export LC_ALL=C
: "${PREON:?set PREON to the preon binary}"
PREON=$(readlink -f -- "$PREON")
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
root=$(cd -- "$here/../.." && pwd)
: "${ANNOUNCE_LUA:=$root/../shared/bench/announce.lua}"
: "${DURATION:=10}"
: "${ROUNDS:=1}"
for tool in wrk opentracker curl ss; do
    command -v "$tool" >/dev/null || { echo "bench_tracker: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
[ -r "$ANNOUNCE_LUA" ] || { echo "bench_tracker: no wrk script at $ANNOUNCE_LUA" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "bench_tracker: run as root (opentracker chroots)" >&2; exit 1; }

T=$(mktemp -d /tmp/preon-bench-tracker.XXXXXX)
chmod 755 "$T"
PIDS=()
cleanup() {
    set +e
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    rm -rf "$T"
}
trap cleanup EXIT INT TERM

# stop_pid PID: stops one of our processes and forgets it (so cleanup never signals a reused pid).
stop_pid() {
    local p keep=()
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

hashes() { for i in $(seq 0 999); do printf 'a5a5a5a5a5a5a5a5%024x\n' "$i"; done; }
pct() { sed 's/../%&/g' <<<"$1"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# start_ot NAME: opentracker on a free port with the 1000 hashes whitelisted; sets OT_PID, OT_PORT.
start_ot() {
    local d="$T/$1" try
    mkdir -p "$d"
    chmod 755 "$d"
    hashes >"$d/whitelist.txt"
    chmod 644 "$d/whitelist.txt"
    for try in 1 2 3 4 5; do
        OT_PORT=$((20000 + RANDOM % 30000))
        if ss -Hltn "sport = :$OT_PORT" | grep -q .; then continue; fi
        printf 'listen.tcp 127.0.0.1:%s\naccess.whitelist /whitelist.txt\ntracker.rootdir %s\ntracker.user nobody\n' \
            "$OT_PORT" "$d" >"$d/ot.conf"
        opentracker -f "$d/ot.conf" >"$d/out" 2>&1 </dev/null &
        OT_PID=$!
        PIDS+=("$OT_PID")
        local end=$((SECONDS + 10))
        while [ "$SECONDS" -le "$end" ] && kill -0 "$OT_PID" 2>/dev/null; do
            curl -s -m 2 -o /dev/null "http://127.0.0.1:$OT_PORT/scrape?info_hash=$(pct a5a5a5a5a5a5a5a5000000000000000000000000)" && return 0
            sleep 0.05
        done
    done
    echo "opentracker did not start:" >&2
    cat "$d/out" >&2
    exit 1
}

# start_ours NAME: preon tracker on 127.0.0.1:0; sets P_PID, P_PORT.
start_ours() {
    local fifo="$T/$1.fifo" line
    mkfifo "$fifo"
    "$PREON" tracker --listen 127.0.0.1 --port 0 --ready-fd 3 3>"$fifo" </dev/null >"$T/$1.log" 2>&1 &
    P_PID=$!
    PIDS+=("$P_PID")
    read -r -t 20 line <"$fifo" || { cat "$T/$1.log" >&2; exit 1; }
    P_PORT=${line##*:}
}

# to_ms "1.23ms" | "812.00us" | "1.01s": milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else printf "?" }'
}

# run_wrk THREADS LABEL: one wrk run against a fresh instance of LABEL (opentracker or preon; the
# script adds a new peer every request, so a reused instance would hold millions and, at its cap,
# answer with failures); appends "label rps p50 p99 rss errs" to $T/results.
RUN=0
run_wrk() {
    local threads=$1 label=$2 out port pid
    RUN=$((RUN + 1))
    out="$T/wrk.$RUN.$label"
    if [ "$label" = opentracker ]; then
        start_ot "ot$RUN"
        port=$OT_PORT pid=$OT_PID
    else
        start_ours "ours$RUN"
        port=$P_PORT pid=$P_PID
    fi
    wrk -t"$threads" -c64 -d"${DURATION}s" --latency -s "$ANNOUNCE_LUA" "http://127.0.0.1:$port" >"$out" 2>&1
    local rps p50 p99 errs
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    errs=$(sed -n 's/^LUA-SUMMARY //p' "$out")
    echo "$label $rps $p50 $p99 $(rss_kib "$pid") $errs" >>"$T/results"
    [ -n "$rps" ] || { echo "wrk failed against $label:" >&2; cat "$out" >&2; exit 1; }
    stop_pid "$pid"
}

# report THREADS: runs ROUNDS x (opentracker, preon) with wrk -tTHREADS and prints the table.
report() {
    local threads=$1
    : >"$T/results"
    for _ in $(seq 1 "$ROUNDS"); do
        run_wrk "$threads" opentracker
        run_wrk "$threads" preon
    done
    printf '%-13s %12s %8s %8s %9s  %s\n' "" "requests/s" "p50 ms" "p99 ms" "RSS MiB" "wrk errors (opentracker closes every connection: read errors)"
    while read -r label rps p50 p99 rss errs; do
        printf '%-13s %12.0f %8s %8s %9s  %s\n' "$label" "$rps" "$p50" "$p99" "$(mib "$rss")" "$errs"
    done <"$T/results"
    RATIO=$(awk '$1 == "preon" { p += $2; np++ } $1 == "opentracker" { o += $2; no++ }
        END { printf "%.2f", (p / np) / (o / no) }' "$T/results")
    P99=$(awk '$1 == "preon" { if ($4 > m) m = $4 } END { print m }' "$T/results")
    echo "ratio preon / opentracker requests/s: ${RATIO}x   (goal >= 3x: $(awk -v r="$RATIO" 'BEGIN { print (r >= 3) ? "met" : "NOT met" }'))"
    echo "preon p99: ${P99} ms   (goal < 2 ms: $(awk -v p="$P99" 'BEGIN { print (p < 2) ? "met" : "NOT met" }'))"
}

echo "== tracker: wrk -t2 -c64 -d${DURATION}s --latency -s $(basename "$ANNOUNCE_LUA") (compact announces, 1000 swarms)"
report 2
# On a 2-CPU machine wrk's two threads and the server compete for the CPUs, and the tail latency
# wrk sees is mostly time its own threads or the server spent waiting to be scheduled. With one
# wrk thread each side has a core: the same servers, measured without that contention.
echo "== the same with wrk -t1 (one core for the client, one for the server)"
report 1

# ---- 100k peers ---------------------------------------------------------------------------------
# Every (swarm, port) pair: 1000 swarms x ports 10000..10099 from 127.0.0.1. Each wrk thread walks
# its half of the 100,000 pairs in order, twice (a request lost to a closed connection is sent
# again on the second walk), then stops; the scrapes below count the peers each tracker holds.
cat >"$T/peers100k.lua" <<'EOF'
local threads = {}
function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end
function init(args)
   counter = -1
   answered = 0
   per = 50000
end
function request()
   counter = counter + 1
   local c = tid + 2 * (counter % per)
   local ih = string.format("a5a5a5a5a5a5a5a5%024x", c % 1000)
   local port = 10000 + math.floor(c / 1000)
   local path = "/announce?info_hash=" .. ih:gsub("..", "%%%0") ..
      "&peer_id=" .. string.format("-MEM001-%012d", c) .. "&port=" .. port ..
      "&uploaded=0&downloaded=0&left=1&compact=1&numwant=0"
   return wrk.format("GET", path)
end
function response(status, headers, body)
   answered = answered + 1
   if answered >= 2 * per + 64 then wrk.thread:stop() end
end
EOF

# peers_held PORT: complete + incomplete over the 1000 swarms, by scrapes of 50 hashes.
peers_held() {
    local port=$1 total=0 q i j n
    for i in $(seq 0 50 999); do
        q=""
        for j in $(seq "$i" $((i + 49))); do
            q+="${q:+&}info_hash=$(pct "$(printf 'a5a5a5a5a5a5a5a5%024x' "$j")")"
        done
        n=$(curl -s -m 10 "http://127.0.0.1:$port/scrape?$q" |
            grep -aoE '(8:complete|10:incomplete)i[0-9]+e' | sed -E 's/.*i([0-9]+)e/\1/' | awk '{ s += $1 } END { print s + 0 }')
        total=$((total + n))
    done
    echo "$total"
}

echo "== 100k peers: 1000 swarms x 100 ports, announced once each to a fresh instance"
start_ot mem-ot
start_ours mem-ours
for who in opentracker preon; do
    if [ "$who" = opentracker ]; then port=$OT_PORT pid=$OT_PID; else port=$P_PORT pid=$P_PID; fi
    before=$(rss_kib "$pid")
    # opentracker closes every connection and wrk loses a few requests to that: walk again until
    # every peer is in (at most 4 times).
    for walks in 1 2 3 4; do
        wrk -t2 -c32 -d120s -s "$T/peers100k.lua" "http://127.0.0.1:$port" >"$T/mem.$who" 2>&1
        held=$(peers_held "$port")
        [ "$held" -ge 100000 ] && break
    done
    after=$(rss_kib "$pid")
    printf '%-13s peers held %6d (%d walks)   RSS %6s MiB -> %6s MiB (+%s MiB)\n' "$who" "$held" "$walks" \
        "$(mib "$before")" "$(mib "$after")" "$(mib $((after - before)))"
done
echo "(goal: 100k peers in well under 64 MiB)"
