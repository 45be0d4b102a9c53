/*
 * test_work.c: the rules pool/work.c applies to results: a volunteer's result manifest is checked
 * against the job's outputs and disk before a block of it is fetched (pool__result_fits).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_result_within_the_rules_fits),
        cmocka_unit_test(outputs_over_the_disk_are_refused),
        cmocka_unit_test(stdout_stderr_and_exit_code_have_their_own_bounds),
        cmocka_unit_test(files_the_job_does_not_ask_for_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
