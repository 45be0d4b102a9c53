/*
 * test_work.c: the rules pool/work.c applies to results: a volunteer's result manifest is checked
 * against the job's outputs and disk before a block of it is fetched (pool__result_fits); and
 * checkpoints (docs/job-format.md): what the collector moves out of /task/checkpoint/, the rules a
 * checkpoint from another peer must meet, and that a checkpoint is never part of a result.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/files.h"
#include "core/manifest.h"
#include "pool/work.h"

#define MIB (1024ull * 1024)

static manifest_file_t files[8];
static char *paths[8];

static manifest_t result(size_t n, const char *const *p, const uint64_t *sizes)
{
    manifest_t m = {0};
    for (size_t i = 0; i < n; i++) {
        paths[i] = (char *)p[i];
        files[i] = (manifest_file_t){.path = paths[i], .size = sizes[i]};
    }
    m.files = files;
    m.n_files = n;
    return m;
}

static void a_result_within_the_rules_fits(void **state)
{
    jobdesc_t d = {.disk_bytes = 10 * MIB};
    const char *p[] = {"stdout", "stderr", "exit_code", "out.txt", "sub/more.bin"};
    uint64_t s[] = {10 * MIB, 1, 2, 4 * MIB, 6 * MIB};
    manifest_t m = result(5, p, s);
    char why[160] = "";
    assert_int_equal(pool__result_fits(&m, &d, why, sizeof(why)), 0);
    manifest_t empty = result(0, p, s);
    assert_int_equal(pool__result_fits(&empty, &d, why, sizeof(why)), 0);
}

static void outputs_over_the_disk_are_refused(void **state)
{
    jobdesc_t d = {.disk_bytes = 10 * MIB};
    const char *p[] = {"a", "b"};
    uint64_t s[] = {6 * MIB, 4 * MIB + 1};
    manifest_t m = result(2, p, s);
    char why[160] = "";
    assert_int_equal(pool__result_fits(&m, &d, why, sizeof(why)), -EFBIG);
    assert_non_null(strstr(why, "disk"));
    uint64_t huge[] = {1, UINT64_MAX}; /* no wrap-around to a small sum */
    m = result(2, p, huge);
    assert_int_equal(pool__result_fits(&m, &d, why, sizeof(why)), -EFBIG);
}

static void stdout_stderr_and_exit_code_have_their_own_bounds(void **state)
{
    jobdesc_t d = {.disk_bytes = 1 * MIB};
    const char *p1[] = {"stdout"};
    uint64_t s1[] = {MIB + 1};
    manifest_t m = result(1, p1, s1);
    char why[160] = "";
    assert_int_equal(pool__result_fits(&m, &d, why, sizeof(why)), -EFBIG);
    assert_non_null(strstr(why, "stdout"));
    const char *p2[] = {"exit_code"};
    uint64_t s2[] = {POOL_MAX_EXIT_CODE_BYTES + 1};
    m = result(1, p2, s2);
    assert_int_equal(pool__result_fits(&m, &d, why, sizeof(why)), -EFBIG);
}

static void files_the_job_does_not_ask_for_are_refused(void **state)
{
    char *outs[] = {"*.csv", "plots/*.png"};
    jobdesc_t d = {.disk_bytes = 10 * MIB, .outputs = outs, .n_outputs = 2};
    const char *ok[] = {"stdout", "data.csv", "plots/a.png"};
    uint64_t s[] = {1, 1, 1};
    manifest_t m = result(3, ok, s);
    char why[160] = "";
    assert_int_equal(pool__result_fits(&m, &d, why, sizeof(why)), 0);
    const char *bad[] = {"data.csv", "plots/deep/a.png"}; /* FNM_PATHNAME: * stops at / */
    m = result(2, bad, s);
    assert_int_equal(pool__result_fits(&m, &d, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "plots/deep/a.png"));
    const char *dot[] = {".hidden.csv"}; /* FNM_PERIOD, as the collector */
    m = result(1, dot, s);
    assert_int_equal(pool__result_fits(&m, &d, why, sizeof(why)), -EINVAL);
}

static void checkpoint_files_are_never_outputs(void **state)
{
    jobdesc_t d = {.disk_bytes = 10 * MIB}; /* no outputs patterns: every other file is one */
    const char *p[] = {"out.txt", "checkpoint/state"};
    uint64_t s[] = {1, 1};
    manifest_t m = result(2, p, s);
    char why[160] = "";
    assert_int_equal(pool__result_fits(&m, &d, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "checkpoint/state"));
    const char *near[] = {"checkpoint", "checkpoints/x"}; /* only what is under checkpoint/ */
    m = result(2, near, s);
    assert_int_equal(pool__result_fits(&m, &d, why, sizeof(why)), 0);
}

static void a_checkpoint_from_a_peer_must_fit_the_disk_and_hold_a_file(void **state)
{
    const char *p[] = {"a", "b"};
    uint64_t s[] = {6 * MIB, 4 * MIB};
    manifest_t m = result(2, p, s);
    char why[160] = "";
    assert_int_equal(pool__ckpt_fits(&m, 10 * MIB, why, sizeof(why)), 0);
    assert_int_equal(pool__ckpt_fits(&m, 10 * MIB - 1, why, sizeof(why)), -EFBIG);
    assert_non_null(strstr(why, "disk"));
    uint64_t huge[] = {1, UINT64_MAX};
    m = result(2, p, huge);
    assert_int_equal(pool__ckpt_fits(&m, 10 * MIB, why, sizeof(why)), -EFBIG);
    m = result(0, p, s);
    assert_int_equal(pool__ckpt_fits(&m, 10 * MIB, why, sizeof(why)), -EINVAL);
}

static void put(const char *dir, const char *rel, const char *text)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    assert_int_equal(files_mkdir_p(p, 0755), 0);
    *slash = '/';
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static bool exists(const char *dir, const char *rel)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    return access(p, F_OK) == 0;
}

/* The collector moves the checkpoint out (and no other file), hashes it, and says when there is
 * none or it is too big; pool__collect_results keeps checkpoint/ out of the result. */
static void the_checkpoint_is_collected_apart_from_the_result(void **state)
{
    char base[] = "/tmp/test_work.XXXXXX";
    assert_non_null(mkdtemp(base));
    char work[256], dest[256], tmp[256], fin[256], out[256], err[256];
    snprintf(work, sizeof(work), "%s/work", base);
    snprintf(dest, sizeof(dest), "%s/ckpt", base);
    snprintf(tmp, sizeof(tmp), "%s/res.tmp", base);
    snprintf(fin, sizeof(fin), "%s/res", base);
    snprintf(out, sizeof(out), "%s/out", base);
    snprintf(err, sizeof(err), "%s/err", base);
    put(work, "result.txt", "42\n");
    put(work, "checkpoint/state", "7 28\n");
    put(work, "checkpoint/deep/more.bin", "xyz");
    manifest_t m;
    manifest_init(&m);
    char why[200] = "";
    assert_int_equal(pool__ckpt_collect(work, dest, 8, &m, why, sizeof(why)), 0);
    assert_int_equal(m.n_files, 2);
    assert_string_equal(m.files[0].path, "deep/more.bin");
    assert_string_equal(m.files[1].path, "state");
    assert_int_equal(m.files[1].size, 5);
    assert_true(exists(dest, "state") && exists(dest, "deep/more.bin"));
    assert_false(exists(work, "checkpoint/state"));
    assert_true(exists(work, "result.txt"));
    manifest_release(&m);
    /* over the job's disk: none, and nothing left in dest */
    put(work, "checkpoint/state", "123456789");
    manifest_init(&m);
    assert_int_equal(pool__ckpt_collect(work, dest, 8, &m, why, sizeof(why)), -EFBIG);
    assert_non_null(strstr(why, "disk"));
    assert_false(exists(dest, ""));
    manifest_release(&m);
    /* no file under checkpoint/ (an empty directory, or none at all): no checkpoint */
    char p[300];
    snprintf(p, sizeof(p), "%s/checkpoint/state", work);
    unlink(p);
    manifest_init(&m);
    assert_int_equal(pool__ckpt_collect(work, dest, 8, &m, why, sizeof(why)), -ENOENT);
    manifest_release(&m);
    /* the result: result.txt, never the checkpoint */
    put(work, "checkpoint/state", "1 1\n");
    put(base, "out", "");
    put(base, "err", "");
    collect_spec_t c = {.work_dir = work, .out_path = out, .err_path = err, .tmp_dir = tmp, .final_dir = fin,
                        .disk_bytes = MIB};
    assert_int_equal(pool__collect_results(&c, why, sizeof(why)), 0);
    assert_true(exists(fin, "result.txt") && exists(fin, "stdout") && exists(fin, "exit_code"));
    assert_false(exists(fin, "checkpoint"));
    files_rm_rf(base);
}

/* Only this peer's disk failing gives a task back (no attempt counted); an error the task causes by
 * what it writes (outputs over the job's disk, say) is its failure: given back, it would fail the
 * same way on every peer, for ever. */
static void only_disk_errors_are_the_peers(void **state)
{
    (void)state;
    assert_true(pool__disk_fault(-ENOSPC) && pool__disk_fault(-EDQUOT) && pool__disk_fault(-EROFS) &&
                pool__disk_fault(-EIO));
    assert_false(pool__disk_fault(0) || pool__disk_fault(-EFBIG) || pool__disk_fault(-EISDIR) ||
                 pool__disk_fault(-EEXIST) || pool__disk_fault(-EINVAL) || pool__disk_fault(-EACCES));
    char base[] = "/tmp/test_work.XXXXXX";
    assert_non_null(mkdtemp(base));
    char work[256], tmp[256], fin[256], out[256], err[256];
    snprintf(work, sizeof(work), "%s/work", base);
    snprintf(tmp, sizeof(tmp), "%s/res.tmp", base);
    snprintf(fin, sizeof(fin), "%s/res", base);
    snprintf(out, sizeof(out), "%s/out", base);
    snprintf(err, sizeof(err), "%s/err", base);
    put(work, "out.txt", "more than the job's disk");
    put(base, "out", "hello\n");
    put(base, "err", "");
    collect_spec_t c = {.work_dir = work, .out_path = out, .err_path = err, .tmp_dir = tmp, .final_dir = fin,
                        .disk_bytes = 8};
    char why[200] = "";
    int rc = pool__collect_results(&c, why, sizeof(why));
    assert_int_equal(rc, -EFBIG);
    assert_false(pool__disk_fault(rc));
    files_rm_rf(base);
}

/* What a task leaves that a result cannot hold is not kept (issue 11, item 7): a name that is not
 * UTF-8 (before, the result was kept here but could not be shared: its manifest failed to encode),
 * a file under a directory too deep for a manifest's path, a reserved name (the real stdout is
 * kept), a symlink (never followed: `ln -s /etc/passwd out`), a FIFO. A name with a newline or
 * dots is a name like any other. */
static void outputs_a_result_cannot_hold_are_not_kept(void **state)
{
    char base[] = "/tmp/test_work.XXXXXX";
    assert_non_null(mkdtemp(base));
    char work[256], tmp[256], fin[256], out[256], err[256];
    snprintf(work, sizeof(work), "%s/work", base);
    snprintf(tmp, sizeof(tmp), "%s/res.tmp", base);
    snprintf(fin, sizeof(fin), "%s/res", base);
    snprintf(out, sizeof(out), "%s/out", base);
    snprintf(err, sizeof(err), "%s/err", base);
    put(work, "good", "1");
    put(work, "a\nb", "2");
    put(work, "..x", "3");
    put(work, "\xff" "bad", "4");
    put(work, "stdout", "not the task's stdout");
    put(base, "out", "the real stdout\n");
    put(base, "err", "");
    char *deep = strdup(work);
    for (int i = 0; i < 5; i++) { /* 5 levels of 250 bytes: over MANIFEST_MAX_PATH from the 5th */
        char part[251];
        memset(part, 'd' + i, 250);
        part[250] = '\0';
        char *next = malloc(strlen(deep) + 252);
        sprintf(next, "%s/%s", deep, part);
        free(deep);
        deep = next;
        assert_int_equal(mkdir(deep, 0755), 0);
    }
    char *f = malloc(strlen(deep) + 8);
    sprintf(f, "%s/f", deep);
    FILE *fp = fopen(f, "w");
    assert_non_null(fp);
    fclose(fp);
    free(f);
    free(deep);
    char p[300];
    snprintf(p, sizeof(p), "%s/lnk", work);
    assert_int_equal(symlink("/etc/passwd", p), 0);
    snprintf(p, sizeof(p), "%s/fifo", work);
    assert_int_equal(mkfifo(p, 0644), 0);
    collect_spec_t c = {.work_dir = work, .out_path = out, .err_path = err, .tmp_dir = tmp, .final_dir = fin,
                        .disk_bytes = MIB, .label = "job t task 0"};
    char why[200] = "";
    assert_int_equal(pool__collect_results(&c, why, sizeof(why)), 0);
    assert_true(exists(fin, "good") && exists(fin, "a\nb") && exists(fin, "..x") && exists(fin, "exit_code"));
    assert_false(exists(fin, "\xff" "bad"));
    assert_false(exists(fin, "lnk") || exists(fin, "fifo"));
    char d1[251];
    memset(d1, 'd', 250);
    d1[250] = '\0';
    assert_false(exists(fin, d1));
    char got[64] = "";
    snprintf(p, sizeof(p), "%s/stdout", fin);
    fp = fopen(p, "r");
    assert_non_null(fp);
    assert_non_null(fgets(got, sizeof(got), fp));
    fclose(fp);
    assert_string_equal(got, "the real stdout\n");
    /* and what is kept makes a manifest (so the result can be shared) */
    manifest_t m;
    manifest_init(&m);
    m.name = strdup("t.0");
    assert_int_equal(pool__hash_tree(NULL, fin, &m, why, sizeof(why)), 0);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(manifest_encode(&m, &text, &len), 0);
    free(text);
    manifest_release(&m);
    files_rm_rf(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_result_within_the_rules_fits),
        cmocka_unit_test(outputs_over_the_disk_are_refused),
        cmocka_unit_test(stdout_stderr_and_exit_code_have_their_own_bounds),
        cmocka_unit_test(files_the_job_does_not_ask_for_are_refused),
        cmocka_unit_test(checkpoint_files_are_never_outputs),
        cmocka_unit_test(a_checkpoint_from_a_peer_must_fit_the_disk_and_hold_a_file),
        cmocka_unit_test(the_checkpoint_is_collected_apart_from_the_result),
        cmocka_unit_test(only_disk_errors_are_the_peers),
        cmocka_unit_test(outputs_a_result_cannot_hold_are_not_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
