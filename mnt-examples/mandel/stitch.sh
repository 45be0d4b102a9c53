#!/bin/sh
# Puts the strips of the mandel job back together: results/mandel/<i>/tile.pgm, i = 0..N-1 in
# order, into one plain PGM image (default mandel.pgm). Checks that every strip is there and that
# they agree on width and maximum value.
# Usage: stitch.sh RESULTS_DIR [OUT]    e.g. stitch.sh ~/preon/results/mandel mandel.pgm
set -eu
res=${1:?usage: stitch.sh RESULTS_DIR [OUT.pgm]}
out=${2:-mandel.pgm}
[ -d "$res" ] || { echo "stitch: $res is not a directory" >&2; exit 1; }

# The task folders are 0..N-1; a missing one is a task that has not finished (or failed).
n=0
for d in "$res"/*; do
    i=${d##*/}
    case "$i" in '' | *[!0-9]*) continue ;; esac
    [ "$((i + 1))" -le "$n" ] || n=$((i + 1))
done
[ "$n" -gt 0 ] || { echo "stitch: no task folders in $res" >&2; exit 1; }
set --
i=0
while [ "$i" -lt "$n" ]; do
    [ -f "$res/$i/tile.pgm" ] || { echo "stitch: $res/$i/tile.pgm is missing" >&2; exit 1; }
    set -- "$@" "$res/$i/tile.pgm"
    i=$((i + 1))
done

awk -v out="$out.tmp" '
function bad(msg) { print "stitch: " FILENAME ": " msg > "/dev/stderr"; failed = 1; exit 1 }
FNR == 1 {
    if (NR > 1 && got != want) bad_prev = 1
    k = 0; got = 0; files++
}
{
    sub(/#.*/, "")
    nt = split($0, tok, /[ \t\r]+/)
    for (j = 1; j <= nt; j++) {
        t = tok[j]
        if (t == "") continue
        if (k == 0) { if (t != "P2") bad("not a plain PGM (P2) file"); k++; continue }
        if (k == 1) { w = t + 0; k++; continue }
        if (k == 2) { h = t + 0; k++; continue }
        if (k == 3) {
            m = t + 0; k++
            if (files == 1) { width = w; maxval = m }
            else if (w != width || m != maxval) bad("width or maxval differs from the first strip")
            want = w * h; height += h
            continue
        }
        if (t !~ /^[0-9]+$/ || t + 0 > maxval) bad("bad pixel value " t)
        if (++got > want) bad("more pixels than its header says")
        pix[npix++] = t
    }
}
END {
    if (failed) exit 1
    if (got != want || bad_prev) { print "stitch: a strip has fewer pixels than its header says" > "/dev/stderr"; exit 1 }
    printf "P2\n%d %d\n%d\n", width, height, maxval > out
    line = ""
    for (p = 0; p < npix; p++) {
        line = line (p % 16 ? " " : "") pix[p]
        if (p % 16 == 15) { print line > out; line = "" }
    }
    if (line != "") print line > out
    close(out)
    printf "stitch: %d strips, %dx%d\n", files, width, height
}' "$@" || { rm -f -- "$out.tmp"; exit 1; }
mv -- "$out.tmp" "$out"
echo "stitch: wrote $out"
