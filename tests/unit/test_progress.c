/* Unit tests of fs/progress.c: a status text read into numbers, the progress line of `preon submit
 * --wait` (the terminal's bar and the log's line) with its time-left estimate, and status texts as
 * JSON. Plain strings and numbers: no mount, no clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fs/internal.h"

static const char STATUS[] = "name: mandel\n"
                             "id: 5f2c0000000000000000000000000000000000000000000000000000000000e1\n"
                             "state: running\n"
                             "tasks: 16\nwaiting: 10\nrunning: 4\nsucceeded: 1\nfailed: 1\ncancelled: 0\n"
                             "command: /job/run\n"
                             "bytes-served: 1048576\nbytes-fetched: 524288\n"
                             "why-waiting: this peer's slots are busy (4 of 4); no other peer in the pool\n"
                             "reason: task 3 exit 2\n"
                             "failed-task: 3 exit 2\n";

static void progress_parses_a_status(void **state)
{
    (void)state;
    fs_jstat_t s;
    fs__jstat_parse(STATUS, &s);
    assert_string_equal(s.name, "mandel");
    assert_string_equal(s.state, "running");
    assert_int_equal(strlen(s.id), 64);
    assert_int_equal(s.tasks, 16);
    assert_int_equal(s.waiting, 10);
    assert_int_equal(s.running, 4);
    assert_int_equal(s.succeeded, 1);
    assert_int_equal(s.failed, 1);
    assert_int_equal(s.bytes, 1048576 + 524288);
    assert_string_equal(s.reason, "task 3 exit 2");
    assert_string_equal(s.why_waiting, "this peer's slots are busy (4 of 4); no other peer in the pool");
    assert_false(fs__jstat_over(&s));
    /* a key is matched whole, at the start of a line; control bytes never reach a terminal */
    fs__jstat_parse("xstate: done\nstated: done\nreason: a\x1b[2Jb\nstate: failed\ntasks: x\n", &s);
    assert_string_equal(s.state, "failed");
    assert_string_equal(s.reason, "a?[2Jb");
    assert_int_equal(s.tasks, 0);
    assert_true(fs__jstat_over(&s));
    fs__jstat_parse("", &s);
    assert_string_equal(s.state, "");
    assert_false(fs__jstat_over(&s));
}

static void progress_estimates_the_time_left(void **state)
{
    (void)state;
    assert_int_equal(fs__eta_ms(10000, 0, 16), UINT64_MAX); /* no rate yet */
    assert_int_equal(fs__eta_ms(10000, 16, 16), UINT64_MAX); /* nothing left */
    assert_int_equal(fs__eta_ms(10000, 4, 16), 30000);
    assert_int_equal(fs__eta_ms(0, 1, 2), UINT64_MAX);
    char b[32];
    assert_string_equal(fs__duration(0, b, sizeof(b)), "0:00");
    assert_string_equal(fs__duration(7999, b, sizeof(b)), "0:07");
    assert_string_equal(fs__duration(754000, b, sizeof(b)), "12:34");
    assert_string_equal(fs__duration(3723000, b, sizeof(b)), "1:02:03");
}

static void progress_lines_for_a_terminal_and_a_log(void **state)
{
    (void)state;
    fs_jstat_t s;
    char buf[512];
    fs__jstat_parse(STATUS, &s);
    fs__progress_line("mandel", &s, 12000, 200, buf, sizeof(buf));
    assert_string_equal(buf, "mandel [##------------------] 2/16 done (1 failed), 4 running, 10 waiting, 1.5M moved, "
                             "0:12, ~1:24 left");
    fs__progress_line("mandel", &s, 12000, 0, buf, sizeof(buf));
    assert_string_equal(buf, "mandel: running: 2/16 done (1 failed), 4 running, 10 waiting; 1.5M moved; 0:12 "
                             "elapsed, about 1:24 left");
    /* nothing runs: the bar says why */
    s.running = 0;
    fs__progress_line("mandel", &s, 12000, 300, buf, sizeof(buf));
    assert_non_null(strstr(buf, "; waiting: this peer's slots are busy (4 of 4)"));
    /* cut to the terminal's width, in columns (UTF-8 counts one per character) */
    size_t n = fs__progress_line("résumé", &s, 12000, 40, buf, sizeof(buf));
    assert_int_equal(n, strlen(buf));
    size_t cols = 0;
    for (const char *p = buf; *p; p++)
        cols += ((unsigned char)*p & 0xc0) != 0x80;
    assert_int_equal(cols, 40);
    assert_string_equal(buf + strlen(buf) - 3, "...");
    /* a short line is not cut */
    fs_jstat_t z = {.tasks = 1};
    fs__progress_line("j", &z, 0, 200, buf, sizeof(buf));
    assert_string_equal(buf, "j [--------------------] 0/1 done, 0 running, 0 waiting, 0B moved, 0:00");
    /* a small buffer is never overrun */
    fs__progress_line("mandel", &s, 12000, 0, buf, 16);
    assert_int_equal(strlen(buf), 15);
}

static void progress_status_as_json(void **state)
{
    (void)state;
    json_t *o = fs__status_json("name: 123\nid: 0042\ntasks: 16\nstate: done\nfailed-task: 3 exit 2\n"
                                "failed-task: 5 exit 1\nleased-task: 1 KEY\nodd: 1\nodd: two\nno colon here\n"
                                ": empty key\nbig: 12345678901234567890\nneg: -1\ncommand: 7\n");
    assert_true(json_is_string(json_object_get(o, "name")));
    assert_string_equal(json_string_value(json_object_get(o, "name")), "123");
    assert_string_equal(json_string_value(json_object_get(o, "id")), "0042");
    assert_int_equal(json_integer_value(json_object_get(o, "tasks")), 16);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "done");
    json_t *ft = json_object_get(o, "failed-task");
    assert_true(json_is_array(ft));
    assert_int_equal(json_array_size(ft), 2);
    assert_string_equal(json_string_value(json_array_get(ft, 1)), "5 exit 1");
    assert_true(json_is_array(json_object_get(o, "leased-task"))); /* a list even with one line */
    json_t *odd = json_object_get(o, "odd");                      /* repeated: every value, in order */
    assert_int_equal(json_array_size(odd), 2);
    assert_int_equal(json_integer_value(json_array_get(odd, 0)), 1);
    assert_true(json_is_string(json_object_get(o, "big"))); /* over 18 digits: text */
    assert_true(json_is_string(json_object_get(o, "neg")));
    assert_true(json_is_string(json_object_get(o, "command")));
    assert_null(json_object_get(o, ""));
    assert_int_equal(json_object_size(o), 10);
    json_decref(o);
    o = fs__status_json("reason: \xff\xfe\n"); /* not UTF-8: still a string */
    assert_true(json_is_string(json_object_get(o, "reason")));
    json_decref(o);
    o = fs__status_json("");
    assert_int_equal(json_object_size(o), 0);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(progress_parses_a_status),
        cmocka_unit_test(progress_estimates_the_time_left),
        cmocka_unit_test(progress_lines_for_a_terminal_and_a_log),
        cmocka_unit_test(progress_status_as_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
