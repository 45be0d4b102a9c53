/*
 * test_metrics.c: core/metrics.h with plain numbers: histogram buckets and bad bounds, the rate
 * meter's window (a burst, a quiet spell, a clock going back), and the Prometheus text: HELP and
 * TYPE lines, escaping, cumulative buckets ending in +Inf, integers kept whole.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/metrics.h"

static void hist_counts_into_buckets(void **state)
{
    (void)state;
    metrics_hist_t h;
    const double b[] = {0.01, 0.1, 1};
    assert_int_equal(metrics_hist_init(&h, b, 3), 0);
    metrics_hist_observe(&h, 0.005);
    metrics_hist_observe(&h, 0.01); /* a bound is inclusive */
    metrics_hist_observe(&h, 0.5);
    metrics_hist_observe(&h, 7);    /* over the last bound: +Inf only */
    metrics_hist_observe(&h, -1);   /* first bucket */
    metrics_hist_observe(&h, NAN);  /* ignored */
    assert_int_equal(h.count[0], 3);
    assert_int_equal(h.count[1], 0);
    assert_int_equal(h.count[2], 1);
    assert_int_equal(h.total, 5);
    assert_true(fabs(h.sum - (0.005 + 0.01 + 0.5 + 7 - 1)) < 1e-12);
}

static void hist_refuses_bad_bounds(void **state)
{
    (void)state;
    metrics_hist_t h;
    const double down[] = {1, 0.5}, same[] = {1, 1}, inf[] = {1, INFINITY};
    double many[METRICS_MAX_BUCKETS + 1];
    for (size_t i = 0; i < METRICS_MAX_BUCKETS + 1; i++)
        many[i] = (double)i;
    assert_int_equal(metrics_hist_init(&h, down, 2), -EINVAL);
    assert_int_equal(metrics_hist_init(&h, same, 2), -EINVAL);
    assert_int_equal(metrics_hist_init(&h, inf, 2), -EINVAL);
    assert_int_equal(metrics_hist_init(&h, many, METRICS_MAX_BUCKETS + 1), -EINVAL);
    assert_int_equal(metrics_hist_init(&h, many, 0), -EINVAL);
    assert_int_equal(h.n, 0);
    metrics_hist_observe(&h, 3); /* no bounds: counted in total (+Inf) only */
    assert_int_equal(h.total, 1);
    assert_int_equal(metrics_hist_init(&h, many, METRICS_MAX_BUCKETS), 0);
}

static void rate_over_the_window(void **state)
{
    (void)state;
    metrics_rate_t r = {0};
    assert_true(metrics_rate_get(&r, 0) == 0);
    /* 7 MB over the seconds 100..106, read at 107.000: 7 whole seconds -> 1 MB/s */
    for (uint64_t s = 100; s < 107; s++)
        metrics_rate_add(&r, 1000000, s * 1000 + 500);
    assert_true(fabs(metrics_rate_get(&r, 107000) - 1e6) < 1);
    /* read at 107.500: 7.5 s of window, same bytes */
    assert_true(fabs(metrics_rate_get(&r, 107500) - 7e6 / 7.5) < 1);
    /* one second later the oldest second (100) is out of the window */
    assert_true(fabs(metrics_rate_get(&r, 108000) - 6e6 / 7) < 1);
    /* quiet for longer than the window: 0, without anything added */
    assert_true(metrics_rate_get(&r, 200000) == 0);
    /* a slot reused for a newer second starts again */
    metrics_rate_add(&r, 500, 200000);
    assert_true(fabs(metrics_rate_get(&r, 200000) - 500.0 / 7) < 1e-9);
    /* a time older than the window (a clock that went back) changes nothing */
    metrics_rate_add(&r, 1u << 30, 100000);
    assert_true(fabs(metrics_rate_get(&r, 200000) - 500.0 / 7) < 1e-9);
}

static void text_format(void **state)
{
    (void)state;
    metrics_text_t t = {0};
    metrics_family(&t, "preon_things_total", "counter", "Things.\nA \\ second line");
    metrics_sample_u64(&t, "preon_things_total", "state", "a\"b\\c\nd", UINT64_MAX);
    metrics_sample_u64(&t, "preon_things_total", NULL, NULL, 0);
    metrics_sample(&t, "preon_ratio", NULL, NULL, 0.25);
    metrics_hist_t h;
    const double b[] = {0.005, 0.5};
    metrics_hist_init(&h, b, 2);
    metrics_hist_observe(&h, 0.001);
    metrics_hist_observe(&h, 0.2);
    metrics_hist_observe(&h, 9);
    metrics_family(&t, "preon_wait_seconds", "histogram", "Waits.");
    metrics_hist_text(&t, "preon_wait_seconds", &h);
    size_t len = 0;
    char *s = metrics_text_take(&t, &len);
    assert_int_equal(len, strlen(s));
    const char *want = "# HELP preon_things_total Things.\\nA \\\\ second line\n"
                       "# TYPE preon_things_total counter\n"
                       "preon_things_total{state=\"a\\\"b\\\\c\\nd\"} 18446744073709551615\n"
                       "preon_things_total 0\n"
                       "preon_ratio 0.25\n"
                       "# HELP preon_wait_seconds Waits.\n"
                       "# TYPE preon_wait_seconds histogram\n"
                       "preon_wait_seconds_bucket{le=\"0.005\"} 1\n"
                       "preon_wait_seconds_bucket{le=\"0.5\"} 2\n"
                       "preon_wait_seconds_bucket{le=\"+Inf\"} 3\n"
                       "preon_wait_seconds_sum 9.2010000000000005\n"
                       "preon_wait_seconds_count 3\n";
    assert_string_equal(s, want);
    free(s);
    /* nothing written: an empty string, and the text can be used again */
    s = metrics_text_take(&t, &len);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
    metrics_sample(&t, "x", NULL, NULL, INFINITY);
    assert_string_equal(t.p, "x +Inf\n");
    metrics_text_release(&t);
    assert_null(t.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hist_counts_into_buckets),
        cmocka_unit_test(hist_refuses_bad_bounds),
        cmocka_unit_test(rate_over_the_window),
        cmocka_unit_test(text_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
