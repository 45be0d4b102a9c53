#!/usr/bin/env bash
# A task runs where its files are (issue 7, item 2): its working directory shows the job's files, so
# `run` reading input.txt, `./tool` from a subdirectory and `awk -f analyze.awk data.csv` work
# unchanged; the published files stay read-only and intact; the task's outputs are the files it
# creates or changes there (a file written over an input's name included), filtered by `outputs =`.
# (The slice case, a relative read of a big remote input moving only its blocks, is in
# test_slice.sh.)
# shellcheck disable=SC2016 # job scripts are single-quoted on purpose: they expand in the task
. "$(dirname -- "$0")/lib.sh"

# The new user's first try, from the issue: run does `cat input.txt > out.txt`.
t_run_reads_its_input_relatively() {
    start_peer A
    local m src st
    m=$(mnt A)
    src=$(src_dir first)
    make_job "$src" 'cat input.txt > out.txt'
    echo "some input" >"$src/input.txt"
    cp -r -- "$src" "$m/jobs/first"
    st=$(wait_job "$m" first)
    assert_eq done "$(field state <<<"$st")" state
    assert_file_eq "$m/results/first/0/out.txt" "some input"
    # Only what the task made: the inputs are not copied into the result.
    assert_eq "$(printf '%s\n' exit_code out.txt stderr stdout)" "$(ls -- "$m/results/first/0")" "result files"
}

# ./tool from a subdirectory, a subdirectory of inputs read and written, an interpreter given a
# script and a data file by relative name (the "python3 analyze.py data.csv" case, with awk, which
# every sandbox has), and the working directory being /task.
t_tool_subdirectories_and_interpreters() {
    start_peer A
    local m src st
    m=$(mnt A)
    src=$(src_dir tools)
    mkdir -p "$src/bin" "$src/data/more"
    printf '#!/bin/sh\necho "tool says $1"\n' >"$src/bin/tool"
    chmod 755 "$src/bin/tool"
    printf 'a,1\nb,2\nc,3\n' >"$src/data/data.csv"
    printf 'x\n' >"$src/data/more/deep.txt"
    printf 'BEGIN { FS = "," } { s += $2 } END { print "sum", s }\n' >"$src/analyze.awk"
    make_job "$src" 'set -e
pwd > where.txt
./bin/tool $PREON_TASK > tool.txt
awk -f analyze.awk data/data.csv > sum.txt
cd data/more && cat deep.txt ../data.csv > joined.txt' "tasks = 2"
    cp -r -- "$src" "$m/jobs/tools"
    st=$(wait_job "$m" tools)
    assert_eq done "$(field state <<<"$st")" state
    local i
    for i in 0 1; do
        assert_file_eq "$m/results/tools/$i/where.txt" "/task"
        assert_file_eq "$m/results/tools/$i/tool.txt" "tool says $i"
        assert_file_eq "$m/results/tools/$i/sum.txt" "sum 6"
        assert_file_eq "$m/results/tools/$i/data/more/joined.txt" "$(printf 'x\na,1\nb,2\nc,3')"
        assert_eq "$(printf '%s\n' data exit_code stderr stdout sum.txt tool.txt where.txt)" \
            "$(ls -- "$m/results/tools/$i")" "result files of task $i"
        [ ! -e "$m/results/tools/$i/data/data.csv" ] || fail "an unchanged input became a result"
    done
}

# docs/job-format.md's example shape: `command = ./prog ARGS` with the program in the job.
t_command_runs_a_program_of_the_job() {
    start_peer A
    local m src st
    m=$(mnt A)
    src=$(src_dir prog)
    printf '#!/bin/sh\necho "tile $1 of $2" > "tile-$1.txt"\n' >"$src/prog"
    chmod 755 "$src/prog"
    printf 'command = ./prog $PREON_TASK $PREON_TASKS\ntasks = 3\noutputs = tile-*.txt\n' >"$src/preon.job"
    cp -r -- "$src" "$m/jobs/prog"
    st=$(wait_job "$m" prog)
    assert_eq done "$(field state <<<"$st")" state
    assert_file_eq "$m/results/prog/2/tile-2.txt" "tile 2 of 3"
    assert_eq "$(printf '%s\n' exit_code stderr stdout tile-1.txt)" "$(ls -- "$m/results/prog/1")" "files of task 1"
}

# A file written over an input's name is an output; the published input (in the mount, and for the
# job's other tasks) is unchanged. A deleted input is not an output, and is still there for others.
t_output_over_an_input_name() {
    start_peer A
    local m src st i
    m=$(mnt A)
    src=$(src_dir over)
    echo original >"$src/input.txt"
    echo keep >"$src/other.txt"
    make_job "$src" 'set -e
cat input.txt > seen.txt
echo "changed by $PREON_TASK" > input.txt
echo "appended" >> other.txt
rm -f run' "tasks = 3" "outputs = *.txt"
    cp -r -- "$src" "$m/jobs/over"
    st=$(wait_job "$m" over)
    assert_eq done "$(field state <<<"$st")" state
    for i in 0 1 2; do
        assert_file_eq "$m/results/over/$i/seen.txt" "original"
        assert_file_eq "$m/results/over/$i/input.txt" "changed by $i"
        assert_file_eq "$m/results/over/$i/other.txt" "$(printf 'keep\nappended')"
        assert_eq "$(printf '%s\n' exit_code input.txt other.txt seen.txt stderr stdout)" \
            "$(ls -- "$m/results/over/$i")" "result files of task $i"
    done
    assert_file_eq "$m/jobs/over/input.txt" "original"
    assert_file_eq "$m/jobs/over/other.txt" "keep"
    [ -x "$m/jobs/over/run" ] || fail "the job's run is gone from the mount"
    expect_erofs sh -c "echo x > '$m/jobs/over/input.txt'"
}

# `outputs =` still filters: of the files the task makes, only the matching ones are kept.
t_outputs_patterns_apply_to_the_task_files() {
    start_peer A
    local m src st
    m=$(mnt A)
    src=$(src_dir pat)
    echo in >"$src/in.dat"
    make_job "$src" 'echo a > a.out; echo b > b.log; mkdir -p sub; echo c > sub/c.out; cat in.dat > in.dat.out' \
        "outputs = *.out sub/*.out"
    cp -r -- "$src" "$m/jobs/pat"
    st=$(wait_job "$m" pat)
    assert_eq done "$(field state <<<"$st")" state
    assert_eq "$(printf '%s\n' a.out exit_code in.dat.out stderr stdout sub)" "$(ls -- "$m/results/pat/0")" "result files"
    assert_file_eq "$m/results/pat/0/sub/c.out" "c"
}

# On a volunteer too: the job's files are remote there, read lazily through its own mount.
t_volunteer_runs_in_the_job_files() {
    start_peer A --port 0 --slots 0
    local a url src st
    a=$(mnt A)
    url=$(peer_field "$a" http)
    src=$(src_dir vol)
    mkdir -p "$src/lib"
    printf 'remote input\n' >"$src/lib/input.txt"
    make_job "$src" 'cat lib/input.txt > out.txt; echo more >> lib/input.txt'
    start_peer B --port 0 --slots 1 --peer "$url" --uid-base 64520
    cp -r -- "$src" "$a/jobs/vol"
    st=$(wait_job "$a" vol 90)
    assert_eq done "$(field state <<<"$st")" "state on A"
    assert_file_eq "$a/results/vol/0/out.txt" "remote input"
    assert_file_eq "$a/results/vol/0/lib/input.txt" "$(printf 'remote input\nmore')"
    assert_file_eq "$(mnt B)/jobs/vol/lib/input.txt" "remote input"
}

# A task that leaves a tree deeper (1200 levels) than the peer has fds (256 here): the task still
# succeeds, its outputs near the top are kept, the deep part is no output (no path of a result can
# be that long), and its directory is removed whole afterwards (the walks hold two fds whatever the
# depth: issue 8, item 7; a walk with an fd per level fails here with EMFILE and leaves it behind).
t_a_deep_tree_is_collected_and_removed() {
    ulimit -n 256 # the peer started below inherits it
    start_peer A
    local m src st d
    m=$(mnt A)
    d=$(data_dir A)
    src=$(src_dir deep)
    make_job "$src" 'set -e
echo top > top.txt
i=0
while [ $i -lt 1200 ]; do mkdir d && cd -P d; i=$((i + 1)); done
echo bottom > bottom.txt'
    cp -r -- "$src" "$m/jobs/deep"
    st=$(wait_job "$m" deep 120)
    [ "$(field state <<<"$st")" = done ] || fail "$st"$'\n'"$(cat "$m/results/deep/0/stderr" 2>&1)"
    assert_eq done "$(field state <<<"$st")" state
    assert_file_eq "$m/results/deep/0/top.txt" "top"
    [ -z "$(find "$d/results" -name bottom.txt)" ] || fail "a 1200-level-deep file became an output"
    # removed before the result was recorded (in the collection's thread-pool item)
    assert_eq "" "$(ls -A -- "$d/work")" "what is left in the data directory's work/"
}

run_tests "$@"
