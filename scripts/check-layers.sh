#!/usr/bin/env bash
# Checks the layering of docs/architecture.md on the built objects (nm), so a call that goes the
# wrong way fails the tests instead of waiting for a reviewer:
#   - between folders, only these calls: fs -> pool -> swarm, exec; everything -> core;
#     tracker -> swarm; (preon.c and the tests are above everything);
#   - inside a folder, no circle of files (a file's calls into another file of its folder, taken
#     as edges, sort topologically; tsort names the loop if there is one).
# Usage: scripts/check-layers.sh [BUILD_DIR] [SOURCE_DIR]   (defaults: build, the repository)
# Prints what is wrong and exits 1, or prints "layers: ok" and exits 0.
set -euo pipefail
build=${1:-build}
src=${2:-$(cd "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)}
declare -A allowed=(
    [core]="core"
    [swarm]="swarm core"
    [exec]="exec core"
    [tracker]="tracker swarm core"
    [pool]="pool swarm exec core"
    [fs]="fs pool core"
)
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT
bad=0
# defs: "symbol folder file" for every global symbol an object defines.
for dir in "${!allowed[@]}"; do
    for c in "$src/$dir"/*.c; do
        [ -e "$c" ] || continue
        f=$(basename "$c" .c)
        o="$build/$dir/$f.o"
        if [ ! -f "$o" ]; then
            echo "check-layers: $o is missing (build first)" >&2
            exit 2
        fi
        nm --defined-only -g "$o" | awk -v d="$dir" -v f="$f" 'NF == 3 { print $3, d, f }' >>"$tmp/defs"
        nm -u "$o" | awk -v d="$dir" -v f="$f" '{ print $NF, d, f }' >>"$tmp/uses"
    done
done
sort -k1,1 "$tmp/defs" >"$tmp/defs.s"
sort -k1,1 "$tmp/uses" >"$tmp/uses.s"
# "user_dir user_file def_dir def_file symbol" for every reference resolved inside our objects.
join -j 1 "$tmp/uses.s" "$tmp/defs.s" | awk '{ print $2, $3, $4, $5, $1 }' | sort -u >"$tmp/edges"
while read -r ud uf dd df sym; do
    if [ "$ud" != "$dd" ] && [[ " ${allowed[$ud]} " != *" $dd "* ]]; then
        echo "layers: $ud/$uf.c calls $dd/$df.c ($sym): $ud/ may call only ${allowed[$ud]}"
        bad=1
    fi
done <"$tmp/edges"
for dir in "${!allowed[@]}"; do
    awk -v d="$dir" '$1 == d && $3 == d && $2 != $4 { print $2, $4 }' "$tmp/edges" | sort -u >"$tmp/in_$dir"
    if ! tsort "$tmp/in_$dir" >/dev/null 2>"$tmp/loop"; then
        echo "layers: the files of $dir/ call each other in a circle:"
        sed 's/^tsort: /  /' "$tmp/loop"
        while read -r a b; do echo "    $dir/$a.c -> $dir/$b.c"; done <"$tmp/in_$dir"
        bad=1
    fi
done
if [ "$bad" = 0 ]; then
    echo "layers: ok"
fi
exit "$bad"
