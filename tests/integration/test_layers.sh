#!/usr/bin/env bash
# The layers of docs/architecture.md hold in the built objects (scripts/check-layers.sh): fs/ calls
# only pool/ and core/, pool/ never fs/, and no folder's files call each other in a circle. And the
# checker itself catches a circle and a call that goes the wrong way (objects built here).
. "$(dirname -- "$0")/lib.sh"

repo=$(cd "$(dirname -- "$0")/../.." && pwd)

t_the_layers_hold() {
    local out rc=0
    out=$("$repo/scripts/check-layers.sh" "$(dirname -- "$PREON")" "$repo" 2>&1) || rc=$?
    [ "$rc" = 0 ] || fail "scripts/check-layers.sh: exit $rc"$'\n'"$out"
    assert_contains "$out" "layers: ok" "check-layers"
}

# mkobj DIR/FILE 'C source': compiles the source into $T_CASE/build/DIR/FILE.o (and keeps the .c
# under $T_CASE/src, where the checker looks for the file list).
mkobj() {
    mkdir -p "$T_CASE/src/$(dirname "$1")" "$T_CASE/build/$(dirname "$1")"
    printf '%s\n' "$2" >"$T_CASE/src/$1.c"
    cc -c -o "$T_CASE/build/$1.o" "$T_CASE/src/$1.c" || fail "cc $1.c"
}

t_a_circle_of_files_is_caught() {
    mkobj pool/a 'void pool_b(void); void pool_a(void); void pool_a(void) { pool_b(); }'
    mkobj pool/b 'void pool_a(void); void pool_b(void); void pool_b(void) { pool_a(); }'
    local out rc=0
    out=$("$repo/scripts/check-layers.sh" "$T_CASE/build" "$T_CASE/src" 2>&1) || rc=$?
    [ "$rc" = 1 ] || fail "a circle pool/a.c <-> pool/b.c: exit $rc, want 1"$'\n'"$out"
    assert_contains "$out" "the files of pool/ call each other in a circle" "check-layers"
}

t_a_call_up_the_layers_is_caught() {
    mkobj pool/p 'void fs_view(void); void pool_p(void); void pool_p(void) { fs_view(); }'
    mkobj fs/v 'void fs_view(void); void fs_view(void) {}'
    mkobj fs/w 'void fetch_it(void); void fs_w(void); void fs_w(void) { fetch_it(); }'
    mkobj swarm/f 'void fetch_it(void); void fetch_it(void) {}'
    local out rc=0
    out=$("$repo/scripts/check-layers.sh" "$T_CASE/build" "$T_CASE/src" 2>&1) || rc=$?
    [ "$rc" = 1 ] || fail "pool -> fs and fs -> swarm: exit $rc, want 1"$'\n'"$out"
    assert_contains "$out" "pool/p.c calls fs/v.c (fs_view)" "check-layers"
    assert_contains "$out" "fs/w.c calls swarm/f.c (fetch_it)" "check-layers"
}

run_tests "$@"
