#!/usr/bin/env bash
# flood_storm.sh PORT: every attack of tests/integration/test_flood.sh at once, on and on, against
# the peer on 127.0.0.1:PORT, until killed (bench_flood.sh runs it in its own process group and
# ends the group): slowloris (100 connections from 127.0.0.3, opened again as they are cut), 300
# connections at once from 127.0.0.2 (again every 5 s), and oversized requests (a 30 kB header, a
# 1 MiB body) ten times a second. Loopback addresses only.
set -uo pipefail
port=$1
flood=$(dirname -- "$(readlink -f -- "$0")")/../integration/flood.pl
while :; do perl "$flood" slowloris "$port" 100 60 127.0.0.3 >/dev/null 2>&1; done &
while :; do perl "$flood" conns "$port" 300 5 127.0.0.2 >/dev/null 2>&1; done &
big=$(head -c 30000 /dev/zero | tr '\0' a)
body=$(mktemp)
trap 'rm -f "$body"' EXIT
head -c $((1024 * 1024)) /dev/zero >"$body"
while :; do
    curl -s -o /dev/null -m 5 -H "X-Big: $big" "http://127.0.0.1:$port/v1/id"
    curl -s -o /dev/null -m 5 --data-binary @"$body" "http://127.0.0.1:$port/v1/jobs"
    sleep 0.1
done
