#!/bin/sh
# A two-stage pipeline driven only by file operations on a Preon mount.
#   stage 1: 8 tasks, task i sums k*k for k in [1000*i, 1000*i + 1000) into part.txt
#   stage 2: 1 task adds the 8 partial sums (stage 1's results, copied in as its inputs)
# Each stage is published with the dot-name + mv idiom (published at once, never half-copied) and
# waited for with a blocking read of wait/<name>, which returns the job's status when it is over.
# Prints the answer and checks it against the closed form; exits 1 if a stage fails.
# Usage: pipeline.sh [MOUNT]    (default $PREON_MOUNT, else ~/preon)
set -eu
m=${1:-${PREON_MOUNT:-$HOME/preon}}
[ -d "$m/jobs" ] || { echo "pipeline: $m is not a Preon mount (no jobs/)" >&2; exit 1; }

tag=$(date +%Y%m%d-%H%M%S)-$$
s1=squares-$tag
s2=total-$tag
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# publish DIR NAME: copy under a dot-name (never published), then rename: published at once.
publish() {
    cp -r "$1" "$m/jobs/.$2.tmp"
    mv "$m/jobs/.$2.tmp" "$m/jobs/$2"
}

# wait_ok NAME: blocks until the job is over; fails unless every task succeeded.
wait_ok() {
    status=$(cat "$m/wait/$1")
    state=$(printf '%s\n' "$status" | sed -n 's/^state: //p')
    if [ "$state" != "done" ]; then
        echo "pipeline: job $1 is $state:" >&2
        printf '%s\n' "$status" >&2
        exit 1
    fi
}

# Stage 1.
mkdir "$work/$s1"
cat >"$work/$s1/run" <<'RUN'
#!/bin/sh
awk -v i="$PREON_TASK" 'BEGIN { s = 0; for (k = 1000 * i; k < 1000 * i + 1000; k++) s += k * k; printf "%.0f\n", s }' > part.txt
RUN
chmod +x "$work/$s1/run"
printf 'tasks = 8\noutputs = part.txt\n' >"$work/$s1/preon.job"
publish "$work/$s1" "$s1"
echo "pipeline: stage 1 published as $s1, waiting"
wait_ok "$s1"

# Stage 2: stage 1's results are its inputs.
mkdir -p "$work/$s2/parts"
for d in "$m/results/$s1"/*; do
    cp "$d/part.txt" "$work/$s2/parts/${d##*/}.txt"
done
cat >"$work/$s2/run" <<'RUN'
#!/bin/sh
awk '{ s += $1 } END { printf "%.0f\n", s }' parts/*.txt > total.txt
RUN
chmod +x "$work/$s2/run"
publish "$work/$s2" "$s2"
echo "pipeline: stage 2 published as $s2, waiting"
wait_ok "$s2"

total=$(cat "$m/results/$s2/0/total.txt")
# sum of k^2 for k = 0..n-1 is (n-1)n(2n-1)/6; n = 8000.
expect=$(awk 'BEGIN { n = 8000; printf "%.0f\n", (n - 1) * n * (2 * n - 1) / 6 }')
echo "sum of k*k for k < 8000 = $total (expected $expect)"
echo "results: $m/results/$s1/ and $m/results/$s2/"
[ "$total" = "$expect" ]
