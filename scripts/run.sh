#!/usr/bin/env bash
# Runs a Preon peer from a fresh checkout: installs the dependencies, builds, and mounts a peer at
# DIR (default ~/preon) in the foreground with the default settings: an embedded tracker, local
# execution on every CPU. Ctrl-C (or `fusermount3 -u DIR` from another shell) unmounts it.
# Usage: scripts/run.sh [DIR] [preon mount options...]   e.g. scripts/run.sh ~/preon --slots 4
set -euo pipefail

cd "$(dirname -- "${BASH_SOURCE[0]}")/.."
dir=$HOME/preon
if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    dir=$1
    shift
fi

if [ "${SKIP_DEPS:-0}" != 1 ]; then
    scripts/install-deps.sh
fi
make -j"$(nproc)" build/preon build/preon-limit

mkdir -p -- "$dir" 2>/dev/null || true # a dead mount from a crash makes mkdir fail; preon clears it
dir=$(cd -- "$(dirname -- "$dir")" && pwd)/$(basename -- "$dir")
if [ "$(id -u)" -ne 0 ]; then
    echo "note: preon is meant to run as root: tasks run as the sandbox uids 64000 + slot, and" >&2
    echo "      switching to them takes root. As $(id -un), tasks may be refused (docs/usage.md)." >&2
fi

# Tell the user once the mount is really there: preon writes "ready" on fd 3 when it is.
exec "$PWD/build/preon" mount -f --ready-fd 3 "$@" "$dir" 3> >(
    if read -r _; then
        echo "preon: mounted at $dir (Ctrl-C to unmount). In another shell:"
        echo "  export PREON_MOUNT=$dir PATH=$PWD/build:\$PATH"
        echo "  cp -r $PWD/mnt-examples/echo $dir/jobs/ && cat $dir/wait/echo"
    fi
)
