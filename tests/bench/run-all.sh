#!/usr/bin/env bash
# Runs every benchmark; each prints our figure next to its yardstick's from the same run.
set -euo pipefail
cd "$(dirname "$0")"
for b in bench_*.sh; do
    echo "#### $b"
    bash "$b"
done
