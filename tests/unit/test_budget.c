/*
 * test_budget.c: request budgets (pool/budget.h) with plain numbers for time: the burst, the
 * refill rate, keys apart from each other, and the bounded table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "pool/budget.h"

/* How many of n requests at now_ms key gets. */
static int takes(budget_t *b, const char *key, int n, uint64_t now_ms)
{
    int got = 0;
    for (int i = 0; i < n; i++)
        got += budget_take(b, key, now_ms);
    return got;
}

static void burst_then_rate(void **state)
{
    (void)state;
    budget_t *b = budget_new(10, 20, 16); /* 10/s, bursts of 20 */
    assert_int_equal(takes(b, "10.0.0.1", 100, 1000), 20);
    assert_int_equal(budget_refused(b), 80);
    assert_int_equal(takes(b, "10.0.0.1", 100, 1099), 0);  /* 99 ms: not one token yet */
    assert_int_equal(takes(b, "10.0.0.1", 100, 1100), 1);  /* 100 ms: one */
    assert_int_equal(takes(b, "10.0.0.1", 100, 2100), 10); /* a second: ten */
    assert_int_equal(takes(b, "10.0.0.1", 100, 60000), 20); /* idle: a full burst, no more */
    /* a slow rate refills in fractions: 1 token per 3 s at 1/3 s... here 1/s */
    budget_t *s = budget_new(1, 1, 4);
    assert_int_equal(takes(s, "k", 5, 0), 1);
    assert_int_equal(takes(s, "k", 5, 999), 0);
    assert_int_equal(takes(s, "k", 5, 1000), 1);
    /* time going backwards takes nothing back and gives nothing */
    assert_int_equal(takes(s, "k", 5, 10), 0);
    budget_free(s);
    budget_free(b);
}

static void keys_are_apart(void **state)
{
    (void)state;
    budget_t *b = budget_new(10, 5, 16);
    assert_int_equal(takes(b, "flooder", 1000, 0), 5);
    assert_int_equal(takes(b, "quiet", 3, 0), 3); /* the flood costs the others nothing */
    assert_int_equal(takes(b, "", 10, 0), 5);      /* an empty key is a key too */
    assert_int_equal(budget_size(b), 3);
    budget_free(b);
}

static void the_table_is_bounded(void **state)
{
    (void)state;
    budget_t *b = budget_new(1, 2, 8);
    char k[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof(k), "host-%d", i);
        assert_true(budget_take(b, k, (uint64_t)i * 10000)); /* each new key idle ones replace */
        assert_true(budget_size(b) <= 8);
    }
    assert_int_equal(budget_size(b), 8);
    /* the most recent keys are still tracked: host-999 spent one of its two tokens */
    assert_int_equal(takes(b, "host-999", 5, 999 * 10000), 1);
    /* a key that replaces a bucket still in debt (not idle long enough) starts in that debt */
    budget_t *d = budget_new(1, 2, 1);
    assert_int_equal(takes(d, "a", 5, 0), 2);
    assert_int_equal(takes(d, "b", 5, 0), 0); /* a's empty bucket: b gets nothing by being new */
    assert_int_equal(takes(d, "c", 5, 5000), 2); /* 5 s later the old one was full again */
    budget_free(d);
    budget_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(burst_then_rate),
        cmocka_unit_test(keys_are_apart),
        cmocka_unit_test(the_table_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
