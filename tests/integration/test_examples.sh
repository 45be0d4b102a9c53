#!/usr/bin/env bash
# The examples in mnt-examples/ and the README's tour, run against a real mount: echo, the
# Mandelbrot sweep plus stitch.sh (a valid 512x512 image), and the two-stage pipeline.sh.
. "$(dirname -- "$0")/lib.sh"

EXAMPLES=$(cd -- "$(dirname -- "$0")/../../mnt-examples" && pwd)

t_echo() {
    start_peer A
    local m st
    m=$(mnt A)
    cp -r -- "$EXAMPLES/echo" "$m/jobs/"
    st=$(wait_job "$m" echo)
    assert_eq "done" "$(field state <<<"$st")" state
    assert_eq "$(printf '%s\n' exit_code stderr stdout)" "$(ls -- "$m/results/echo/0")" "files of task 0"
    assert_file_eq "$m/results/echo/0/stdout" "hello from task 0"
    assert_eq 0 "$(preon_wait_rc "$m" echo)" "preon wait echo"
    rm -r -- "$m/jobs/echo"
    [ ! -e "$m/jobs/echo" ] || fail "jobs/echo is still there after rm -r"
}

t_mandel_and_stitch() {
    start_peer A
    local m st i header pixels
    m=$(mnt A)
    cp -r -- "$EXAMPLES/mandel" "$m/jobs/"
    st=$(wait_job "$m" mandel 300)
    assert_eq "done" "$(field state <<<"$st")" state
    assert_eq 16 "$(field succeeded <<<"$st")" succeeded
    for i in $(seq 0 15); do
        # outputs = tile.pgm: the tile and the three files every task has, nothing else.
        assert_eq "$(printf '%s\n' exit_code stderr stdout tile.pgm)" "$(ls -- "$m/results/mandel/$i")" "files of task $i"
    done
    "$EXAMPLES/mandel/stitch.sh" "$m/results/mandel" "$T_CASE/mandel.pgm" >"$T_CASE/stitch.out" 2>&1 ||
        fail "stitch.sh failed: $(cat "$T_CASE/stitch.out")"
    header=$(head -n 3 "$T_CASE/mandel.pgm" | tr '\n' ' ')
    assert_eq "P2 512 512 255 " "$header" "image header"
    pixels=$(awk 'NR > 3 { n += NF; for (i = 1; i <= NF; i++) if ($i !~ /^[0-9]+$/ || $i > 255) bad++ }
        END { print n + 0, bad + 0 }' "$T_CASE/mandel.pgm")
    assert_eq "262144 0" "$pixels" "pixel count and bad values"
    # The set is in the picture: some black (inside) and some bright (near the edge) pixels.
    assert_eq "yes yes" "$(awk 'NR > 3 { for (i = 1; i <= NF; i++) { if ($i == 0) z = 1; if ($i > 200) b = 1 } }
        END { print (z ? "yes" : "no"), (b ? "yes" : "no") }' "$T_CASE/mandel.pgm")" "black and bright pixels"
}

t_pipeline() {
    start_peer A
    local m out rc=0
    m=$(mnt A)
    out=$(timeout -k 5 120 sh "$EXAMPLES/pipeline.sh" "$m" 2>&1) || rc=$?
    assert_eq 0 "$rc" "exit of pipeline.sh; output: $out"
    assert_contains "$out" "sum of k*k for k < 8000 = 170634668000 (expected 170634668000)" "pipeline output"
}

run_tests "$@"
