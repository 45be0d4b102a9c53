/*
 * test_wire.c: the pure wire codecs (pool/wire.h): round trips, and every way an answer from a
 * peer can be wrong.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pool/wire.h"

static int decode(const char *s, uint32_t ntasks, wire_lease_t *l, size_t *dropped, char *why)
{
    return wire_lease_decode(s, strlen(s), ntasks, l, dropped, why, 128);
}

static void lease_round_trip(void **state)
{
    (void)state;
    wire_lease_t l = {.tasks = {3, 0, 7}, .n = 3, .lease_ms = 30000}, back;
    char buf[256], why[128];
    int n = wire_lease_encode(&l, buf, sizeof(buf));
    assert_true(n > 0);
    assert_string_equal(buf, "{\"tasks\":[3,0,7],\"task\":3,\"lease_ms\":30000}");
    size_t dropped = 9;
    assert_int_equal(wire_lease_decode(buf, (size_t)n, 8, &back, &dropped, why, sizeof(why)), 0);
    assert_int_equal(back.n, 3);
    assert_int_equal(back.tasks[0], 3);
    assert_int_equal(back.tasks[2], 7);
    assert_int_equal(back.lease_ms, 30000);
    assert_int_equal(dropped, 0);
    /* a buffer too small, no task, too many tasks */
    assert_int_equal(wire_lease_encode(&l, buf, 10), -EMSGSIZE);
    l.n = 0;
    assert_int_equal(wire_lease_encode(&l, buf, sizeof(buf)), -EINVAL);
    l.n = WIRE_MAX_LEASE + 1;
    assert_int_equal(wire_lease_encode(&l, buf, sizeof(buf)), -EINVAL);
    /* the largest answer fits the decoder's limit */
    wire_lease_t big = {.n = WIRE_MAX_LEASE, .lease_ms = WIRE_LEASE_MS_MAX};
    for (size_t i = 0; i < WIRE_MAX_LEASE; i++)
        big.tasks[i] = 99990 + (uint32_t)i;
    n = wire_lease_encode(&big, buf, sizeof(buf));
    assert_true(n > 0 && n <= WIRE_MAX_BODY);
    assert_int_equal(wire_lease_decode(buf, (size_t)n, 100006, &back, NULL, why, sizeof(why)), 0);
    assert_int_equal(back.n, WIRE_MAX_LEASE);
}

static void lease_bad_entries_are_dropped(void **state)
{
    (void)state;
    wire_lease_t l;
    size_t dropped;
    char why[128];
    assert_int_equal(decode("{\"tasks\":[1,1,\"2\",-1,8,2.5,null,3],\"lease_ms\":1000}", 8, &l, &dropped, why), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.tasks[0], 1);
    assert_int_equal(l.tasks[1], 3);
    assert_int_equal(dropped, 6);
    assert_int_equal(l.lease_ms, 1000);
    /* lease_ms out of range or missing: the default */
    assert_int_equal(decode("{\"tasks\":[0],\"lease_ms\":5}", 1, &l, NULL, why), 0);
    assert_int_equal(l.lease_ms, WIRE_LEASE_MS_DEFAULT);
    assert_int_equal(decode("{\"tasks\":[0],\"lease_ms\":99999999999}", 1, &l, NULL, why), 0);
    assert_int_equal(l.lease_ms, WIRE_LEASE_MS_DEFAULT);
    assert_int_equal(decode("{\"tasks\":[0]}", 1, &l, NULL, why), 0);
    assert_int_equal(l.lease_ms, WIRE_LEASE_MS_DEFAULT);
}

static void lease_bad_answers_are_refused(void **state)
{
    (void)state;
    wire_lease_t l;
    char why[128];
    assert_int_equal(decode("", 8, &l, NULL, why), -EPROTO);
    assert_int_equal(decode("[1,2]", 8, &l, NULL, why), -EPROTO);
    assert_string_equal(why, "lease answer is not a JSON object");
    assert_int_equal(decode("{\"task\":1}", 8, &l, NULL, why), -EPROTO);
    assert_string_equal(why, "lease answer has no \"tasks\" array");
    assert_int_equal(decode("{\"tasks\":[]}", 8, &l, NULL, why), -EPROTO);
    assert_int_equal(decode("{\"tasks\":[9,10]}", 8, &l, NULL, why), -EPROTO);
    assert_string_equal(why, "lease answer has no usable task");
    assert_int_equal(l.n, 0);
    assert_int_equal(decode("{\"tasks\":[0],\"tasks\":[1]}", 8, &l, NULL, why), -EPROTO); /* duplicate key */
    char many[512] = "{\"tasks\":[0";
    for (int i = 1; i <= WIRE_MAX_LEASE; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), ",%d", i);
    strcat(many, "]}");
    assert_int_equal(decode(many, 100, &l, NULL, why), -EMSGSIZE);
    char huge[WIRE_MAX_BODY + 2];
    memset(huge, ' ', sizeof(huge));
    huge[WIRE_MAX_BODY + 1] = '\0';
    assert_int_equal(wire_lease_decode(huge, WIRE_MAX_BODY + 1, 8, &l, NULL, why, sizeof(why)), -EMSGSIZE);
}

static void done_round_trip_and_refusals(void **state)
{
    (void)state;
    char buf[64], why[128];
    wire_done_t d = {.exit_code = 3, .elapsed_ms = 1234}, back;
    int n = wire_done_encode(&d, buf, sizeof(buf));
    assert_string_equal(buf, "&exit=3&ms=1234");
    assert_int_equal(wire_done_decode(buf, (size_t)n, &back, why, sizeof(why)), 0);
    assert_int_equal(back.exit_code, 3);
    assert_int_equal(back.elapsed_ms, 1234);
    const char *q = "peer=http://h:1&ms=7&exit=-1&man=abc";
    assert_int_equal(wire_done_decode(q, strlen(q), &back, why, sizeof(why)), 0);
    assert_int_equal(back.exit_code, -1);
    assert_int_equal(back.elapsed_ms, 7);
    const char *bad[] = {"exit=0", "ms=1", "exit=256&ms=1", "exit=-2&ms=1", "exit=1x&ms=1", "exit=&ms=1",
                         "exit=0&ms=-1", "exit=0&ms=99999999999999999999", "exit=0&ms=9999999999999999999", "exit=+1&ms=1", "xexit=0&ms=1", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(wire_done_decode(bad[i], strlen(bad[i]), &back, why, sizeof(why)), -EPROTO);
    d.exit_code = 300;
    assert_int_equal(wire_done_encode(&d, buf, sizeof(buf)), -EINVAL);
    d.exit_code = 0;
    assert_int_equal(wire_done_encode(&d, buf, 5), -EMSGSIZE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lease_round_trip),
        cmocka_unit_test(lease_bad_entries_are_dropped),
        cmocka_unit_test(lease_bad_answers_are_refused),
        cmocka_unit_test(done_round_trip_and_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
