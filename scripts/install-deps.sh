#!/usr/bin/env bash
# Installs every Debian 12 package Preon needs to build, run and test. Idempotent: when every
# package is already installed (asked of dpkg-query, which is fast and needs no network) it does
# nothing, so scripts/run.sh and scripts/test.sh can call it on every run. Otherwise it runs
# `apt-get update` and installs only what is missing, as root or through sudo.
#
# Why each group is here:
#   build:      compiler, pkg-config, clang + its runtime (libFuzzer and sanitizers for `make fuzz`)
#   libraries:  the -dev packages the Makefile asks pkg-config for, and cmocka for the unit tests
#   run:        fuse3 (fusermount3, /etc/fuse.conf, mount.fuse3), bubblewrap (the task sandbox), mount
#               (mount -t fuse.preon, /etc/fstab, umount), systemd (systemd-analyze verify of the unit
#               that make install puts in place: test_citizen.sh), btrfs-progs (mkfs.btrfs: the
#               peer's work directory is a btrfs with a quota per task, exec/quota.c)
#   tests:      rsync, tar, curl (publishing and HTTP checks), procps (pgrep), iproute2 (ip, ss, tc
#               for multi-peer tests), util-linux (mountpoint, setsid), netcat-openbsd (a loopback
#               listener for the sandbox network test), diffutils (cmp, diff -r), mawk (the POSIX
#               awk of the base system: test jobs and mnt-examples use nothing else inside the
#               sandbox), bash (/dev/tcp in the network test), jq (reads preon status --json;
#               script(1), for preon submit on a terminal, is bsdutils: Essential), gdb (test_soak.sh
#               shows the threads of a peer that does not stop), sqlite3 (the CLI: test_diskfull.sh
#               checks a peer's records with PRAGMA integrity_check), perl (flood.pl: Time::HiRes)
#   tracker:    opentracker (the interop test and the yardstick of the tracker benchmark), wrk
#               (the HTTP load generator of that benchmark)
#   web:        chromium and nodejs (tests/integration/test_web.sh drives the status page in headless
#               Chromium with playwright-core, installed below with npm ci from tests/browser's lock
#               file; never a browser of Playwright's own), prometheus (promtool check metrics)
set -euo pipefail
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)

PKGS=(
    build-essential pkg-config make clang libclang-rt-14-dev
    libfuse3-dev libuv1-dev libcurl4-openssl-dev libmicrohttpd-dev libjansson-dev
    libsqlite3-dev libssl-dev libcmocka-dev
    fuse3 bubblewrap mount systemd btrfs-progs
    rsync curl tar procps iproute2 util-linux netcat-openbsd diffutils coreutils findutils
    grep sed mawk bash ca-certificates jq gdb sqlite3 perl
    opentracker wrk
    nodejs chromium prometheus
)

missing=()
for p in "${PKGS[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$p")
    fi
done

# npm: part of a nodejs package built by Node.js's own packagers (which also conflicts with
# Debian's npm package); Debian's nodejs needs Debian's npm beside it.
if ! command -v npm >/dev/null 2>&1 && ! dpkg-query -W -f='${Provides}' nodejs 2>/dev/null | grep -qw npm; then
    missing+=(npm)
fi

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-deps: all ${#PKGS[@]} packages are installed"
else
    echo "install-deps: installing ${missing[*]}"
    if [ "$(id -u)" -eq 0 ]; then
        as_root=(env DEBIAN_FRONTEND=noninteractive)
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo env DEBIAN_FRONTEND=noninteractive)
    else
        echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
    "${as_root[@]}" apt-get update
    "${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The browser tests' driver: playwright-core at the version tests/browser/package-lock.json pins,
# from the npm registry (npm ci: exactly the lock file), when missing or older than the lock file.
# That version needs Node.js 20 or later (its "engines"); Debian 12's own nodejs is 18, on which
# npm ci only warns and test_web.sh would fail later for no clear reason: say so here and stop.
browser=$root/tests/browser
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
    echo "install-deps: tests/browser (playwright-core, for tests/integration/test_web.sh) needs Node.js 20" \
        "or later; this machine has $(node --version 2>/dev/null || echo 'no node'). Install a nodejs package" \
        "of version 20 or later, then run this again." >&2
    exit 1
fi
if [ ! -f "$browser/node_modules/.package-lock.json" ] ||
    [ "$browser/package-lock.json" -nt "$browser/node_modules/.package-lock.json" ]; then
    echo "install-deps: npm ci in tests/browser"
    (cd "$browser" && npm ci --engine-strict --no-audit --no-fund --loglevel=error)
fi
