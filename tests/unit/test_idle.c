/*
 * test_idle.c: --when idle (exec/idle.h): the rule with plain numbers (input, other processes' CPU
 * share, the grace period), the /proc/stat parser, the CPU share between two samples; and the
 * monitor itself on a loop, with a FIFO as its input device (under make tsan, also while another
 * thread takes and gives back descriptors, as the thread pool does).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "exec/idle.h"

static const idle_opts_t OPTS = {.after_ms = 60000, .cpu_permille = 250, .grace_ms = 120000};

static void t_input_keeps_it_busy_until_after_ms(void **state)
{
    (void)state;
    uint64_t busy = 0;
    char why[256];
    /* input 10 s ago: in use, suspended */
    assert_int_equal(idle_decide(&OPTS, 100000, 90000, 0, &busy, why, sizeof(why)), IDLE_SUSPEND);
    assert_non_null(strstr(why, "keyboard or mouse input 10 s ago"));
    assert_int_equal(busy, 100000);
    /* 60 s without input: idle, the busy spell forgotten */
    assert_int_equal(idle_decide(&OPTS, 150000, 90000, 0, &busy, why, sizeof(why)), IDLE_RUN);
    assert_string_equal(why, "");
    assert_int_equal(busy, 0);
    /* input now: busy again */
    assert_int_equal(idle_decide(&OPTS, 150000, 150000, -1, &busy, why, sizeof(why)), IDLE_SUSPEND);
}

static void t_busy_past_the_grace_gives_back(void **state)
{
    (void)state;
    uint64_t busy = 0;
    char why[256];
    uint64_t t0 = 1000000;
    assert_int_equal(idle_decide(&OPTS, t0, t0, 0, &busy, why, sizeof(why)), IDLE_SUSPEND);
    /* still in use just before the grace ends: suspended */
    assert_int_equal(idle_decide(&OPTS, t0 + 119999, t0 + 119000, 0, &busy, why, sizeof(why)), IDLE_SUSPEND);
    /* at the grace: given back, and it says so */
    assert_int_equal(idle_decide(&OPTS, t0 + 120000, t0 + 119000, 0, &busy, why, sizeof(why)), IDLE_GIVE_BACK);
    assert_non_null(strstr(why, "tasks given back"));
    /* the owner leaves: after_ms later it runs again */
    assert_int_equal(idle_decide(&OPTS, t0 + 179000, t0 + 119000, 0, &busy, why, sizeof(why)), IDLE_RUN);
}

static void t_other_processes_cpu_counts_only_above_the_bound(void **state)
{
    (void)state;
    uint64_t busy = 0;
    char why[256];
    /* no input for long; others at 24.9 %: idle */
    assert_int_equal(idle_decide(&OPTS, 1000000, 0, 249, &busy, why, sizeof(why)), IDLE_RUN);
    /* at 25 %: busy, and why names it */
    assert_int_equal(idle_decide(&OPTS, 1000000, 0, 250, &busy, why, sizeof(why)), IDLE_SUSPEND);
    assert_non_null(strstr(why, "other processes use 25.0% of its CPUs"));
    /* unknown share: not held against it */
    busy = 0;
    assert_int_equal(idle_decide(&OPTS, 1000000, 0, -1, &busy, why, sizeof(why)), IDLE_RUN);
    /* a bound of 0: the CPU is not looked at */
    idle_opts_t o = OPTS;
    o.cpu_permille = 0;
    assert_int_equal(idle_decide(&o, 1000000, 0, 1000, &busy, why, sizeof(why)), IDLE_RUN);
}

static void t_a_grace_of_zero_gives_back_at_once(void **state)
{
    (void)state;
    idle_opts_t o = OPTS;
    o.grace_ms = 0;
    uint64_t busy = 0;
    char why[256];
    assert_int_equal(idle_decide(&o, 5000, 5000, 0, &busy, why, sizeof(why)), IDLE_GIVE_BACK);
}

static void t_parse_stat(void **state)
{
    (void)state;
    uint64_t busy, total;
    assert_int_equal(idle_parse_stat("cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 1 2 3 4\n", &busy, &total), 0);
    assert_int_equal(busy, 100 + 5 + 50 + 3 + 2); /* steal (1) is the hypervisor's: not busy, not idle */
    assert_int_equal(total, busy + 1000 + 20);
    /* an old kernel's four fields */
    assert_int_equal(idle_parse_stat("cpu 1 2 3 4\n", &busy, &total), 0);
    assert_int_equal(busy, 6);
    assert_int_equal(total, 10);
    assert_int_equal(idle_parse_stat("cpu0 1 2 3 4\n", &busy, &total), -EBADMSG);
    assert_int_equal(idle_parse_stat("cpu 1 2\n", &busy, &total), -EBADMSG);
    assert_int_equal(idle_parse_stat("", &busy, &total), -EBADMSG);
    assert_int_equal(idle_parse_stat(NULL, &busy, &total), -EBADMSG);
    assert_int_equal(idle_parse_stat("cpu 99999999999999999999999 1 1 1\n", &busy, &total), -EBADMSG);
}

static void t_parse_cpu(void **state)
{
    (void)state;
    uint64_t ns;
    assert_int_equal(idle_parse_cpu("123456789\n", false, &ns), 0); /* v1 cpuacct.usage */
    assert_int_equal(ns, 123456789);
    assert_int_equal(idle_parse_cpu("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n", true, &ns), 0);
    assert_int_equal(ns, 1500000);
    assert_int_equal(idle_parse_cpu("nr_periods 0\nusage_usec 7\n", true, &ns), 0);
    assert_int_equal(ns, 7000);
    assert_int_equal(idle_parse_cpu("xusage_usec 7\n", true, &ns), -EBADMSG);
    assert_int_equal(idle_parse_cpu("user_usec 7\n", true, &ns), -EBADMSG);
    assert_int_equal(idle_parse_cpu("12x\n", false, &ns), -EBADMSG);
    assert_int_equal(idle_parse_cpu("", false, &ns), -EBADMSG);
    assert_int_equal(idle_parse_cpu(NULL, false, &ns), -EBADMSG);
    assert_int_equal(idle_parse_cpu("usage_usec 99999999999999999999\n", true, &ns), -EBADMSG);
}

static void t_cpu_busy_needs_half_the_bound_to_be_idle_again(void **state)
{
    (void)state;
    uint64_t busy = 0;
    char why[256];
    /* busy at the bound; frozen tasks take their load away: 20% is not idle again yet (bound 25%) */
    assert_int_equal(idle_decide(&OPTS, 1000000, 0, 300, &busy, why, sizeof(why)), IDLE_SUSPEND);
    assert_int_equal(idle_decide(&OPTS, 1001000, 0, 200, &busy, why, sizeof(why)), IDLE_SUSPEND);
    assert_int_equal(idle_decide(&OPTS, 1002000, 0, 130, &busy, why, sizeof(why)), IDLE_SUSPEND);
    /* under half of it: idle */
    assert_int_equal(idle_decide(&OPTS, 1003000, 0, 124, &busy, why, sizeof(why)), IDLE_RUN);
    /* and from idle, 24.9% stays idle */
    assert_int_equal(idle_decide(&OPTS, 1004000, 0, 249, &busy, why, sizeof(why)), IDLE_RUN);
    /* busy long enough on the CPU alone: given back */
    assert_int_equal(idle_decide(&OPTS, 1005000, 0, 400, &busy, why, sizeof(why)), IDLE_SUSPEND);
    assert_int_equal(idle_decide(&OPTS, 1005000 + 120000, 0, 200, &busy, why, sizeof(why)), IDLE_GIVE_BACK);
}

static void t_other_share_leaves_out_our_tasks_and_ourselves(void **state)
{
    (void)state;
    const uint64_t tick = 10000000; /* 10 ms */
    /* 2 CPUs for 1 s: 200 ticks; 150 busy, of which our tasks 100 ticks and the peer 10 */
    idle_sample_t a = {.busy_ticks = 1000, .total_ticks = 5000, .tasks_ns = 0, .self_ns = 0};
    idle_sample_t b = {.busy_ticks = 1150, .total_ticks = 5200, .tasks_ns = 100 * tick, .self_ns = 10 * tick};
    assert_int_equal(idle_other_permille(&a, &b, tick), 200); /* 40 of 200 ticks */
    /* our tasks took it all: nobody else */
    b.tasks_ns = 200 * tick;
    assert_int_equal(idle_other_permille(&a, &b, tick), 0);
    /* no time passed, or counters went back: unknown */
    assert_int_equal(idle_other_permille(&a, &a, tick), -1);
    b.tasks_ns = 0;
    b.busy_ticks = 900;
    assert_int_equal(idle_other_permille(&a, &b, tick), -1);
}

/* ---- the monitor on a loop, a FIFO for its input device ---- */

typedef struct watch {
    idle_verdict_t last;
    int changes;
    uv_timer_t stop;
    uv_loop_t *loop;
} watch_t;

static void on_verdict(void *arg, idle_verdict_t v, const char *why)
{
    watch_t *w = arg;
    w->last = v;
    w->changes++;
    (void)why;
    uv_stop(w->loop);
}

static void on_stop_timer(uv_timer_t *t) { uv_stop(t->loop); }

/* Runs the loop until the verdict changes or ms pass; returns whether it changed. */
static bool run_until_change(watch_t *w, uint64_t ms)
{
    int before = w->changes;
    uv_timer_start(&w->stop, on_stop_timer, ms, 0);
    uv_run(w->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&w->stop);
    return w->changes != before;
}

static void t_monitor_suspends_on_input_and_runs_after_the_quiet(void **state)
{
    (void)state;
    char dir[] = "/tmp/preon-idle-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char fifo[64];
    snprintf(fifo, sizeof(fifo), "%s/event0", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    watch_t w = {.loop = &loop, .last = IDLE_SUSPEND};
    uv_timer_init(&loop, &w.stop);
    idle_opts_t o = {.input_dir = dir, .after_ms = 300, .cpu_permille = 0, .grace_ms = 60000};
    idle_t *m;
    assert_int_equal(idle_new(&loop, &o, on_verdict, &w, &m), 0);
    /* starting counts as input: not idle at first, idle once after_ms pass */
    assert_int_equal(idle_verdict(m, NULL), IDLE_SUSPEND);
    assert_true(run_until_change(&w, 5000));
    assert_int_equal(w.last, IDLE_RUN);
    assert_int_equal(idle_inputs(m), 1);
    /* input: suspended at once (the writer's open waits for the monitor's reader) */
    int fd = open(fifo, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
    assert_true(run_until_change(&w, 5000));
    assert_int_equal(w.last, IDLE_SUSPEND);
    const char *why;
    assert_int_equal(idle_verdict(m, &why), IDLE_SUSPEND);
    assert_non_null(strstr(why, "keyboard or mouse input"));
    /* the writer's close is no device gone: the FIFO is watched again, and it goes back to idle */
    assert_true(run_until_change(&w, 5000));
    assert_int_equal(w.last, IDLE_RUN);
    assert_int_equal(idle_inputs(m), 1);
    fd = open(fifo, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "y", 1), 1);
    close(fd);
    assert_true(run_until_change(&w, 5000));
    assert_int_equal(w.last, IDLE_SUSPEND);
    idle_close(m);
    uv_close((uv_handle_t *)&w.stop, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    unlink(fifo);
    rmdir(dir);
}

/* Another thread taking the lowest free descriptor numbers over and over, as the thread pool's
 * opendir and dup do (scan_work, a checkpoint's walk), until stop. */
typedef struct churn {
    pthread_t thread;
    atomic_bool stop;
    int base;
} churn_t;

static void *churn_main(void *arg)
{
    churn_t *c = arg;
    while (!atomic_load(&c->stop)) {
        int fd = dup(c->base);
        if (fd >= 0)
            close(fd);
    }
    return NULL;
}

/*
 * The FIFO reopened after each writer's close, then dropped by idle_close, while another thread
 * takes descriptors. An input's descriptor must stay open until its poll handle is closed: uv_close
 * unregisters the descriptor from the loop's epoll, and one closed before that is a number the
 * other thread may hold by then. The checks here hold either way; under make tsan the old order
 * (close, then uv_close) was a race on the descriptor between the loop's epoll_ctl and the other
 * thread's dup.
 */
static void t_monitor_closes_an_input_only_once_its_handle_is(void **state)
{
    (void)state;
    char dir[] = "/tmp/preon-idle-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char fifo[64];
    snprintf(fifo, sizeof(fifo), "%s/event0", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    watch_t w = {.loop = &loop, .last = IDLE_SUSPEND};
    uv_timer_init(&loop, &w.stop);
    idle_opts_t o = {.input_dir = dir, .after_ms = 60000, .cpu_permille = 0, .grace_ms = 60000};
    idle_t *m;
    assert_int_equal(idle_new(&loop, &o, on_verdict, &w, &m), 0);
    run_until_change(&w, 100); /* the first scan opens the FIFO */
    assert_int_equal(idle_inputs(m), 1);
    churn_t c = {.base = open("/dev/null", O_RDONLY | O_CLOEXEC)};
    assert_true(c.base >= 0);
    assert_int_equal(pthread_create(&c.thread, NULL, churn_main, &c), 0);
    for (int i = 0; i < 20; i++) {
        int fd = open(fifo, O_WRONLY); /* waits for the monitor's reader */
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "x", 1), 1);
        close(fd); /* the monitor reads the byte, then EOF: it opens the FIFO afresh */
        run_until_change(&w, 20);
        assert_int_equal(idle_inputs(m), 1);
    }
    idle_close(m);
    uv_close((uv_handle_t *)&w.stop, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    atomic_store(&c.stop, true);
    assert_int_equal(pthread_join(c.thread, NULL), 0);
    close(c.base);
    assert_int_equal(w.last, IDLE_SUSPEND); /* input all along */
    assert_int_equal(uv_loop_close(&loop), 0);
    unlink(fifo);
    rmdir(dir);
}

static void t_monitor_without_devices_runs_on_the_quiet_alone(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    watch_t w = {.loop = &loop, .last = IDLE_SUSPEND};
    uv_timer_init(&loop, &w.stop);
    idle_opts_t o = {.input_dir = "/nonexistent/input", .after_ms = 100, .grace_ms = 60000};
    idle_t *m;
    assert_int_equal(idle_new(&loop, &o, on_verdict, &w, &m), 0);
    assert_true(run_until_change(&w, 5000));
    assert_int_equal(w.last, IDLE_RUN);
    assert_int_equal(idle_inputs(m), 0);
    idle_close(m);
    uv_close((uv_handle_t *)&w.stop, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_input_keeps_it_busy_until_after_ms),
        cmocka_unit_test(t_busy_past_the_grace_gives_back),
        cmocka_unit_test(t_other_processes_cpu_counts_only_above_the_bound),
        cmocka_unit_test(t_a_grace_of_zero_gives_back_at_once),
        cmocka_unit_test(t_parse_stat),
        cmocka_unit_test(t_parse_cpu),
        cmocka_unit_test(t_cpu_busy_needs_half_the_bound_to_be_idle_again),
        cmocka_unit_test(t_other_share_leaves_out_our_tasks_and_ourselves),
        cmocka_unit_test(t_monitor_suspends_on_input_and_runs_after_the_quiet),
        cmocka_unit_test(t_monitor_closes_an_input_only_once_its_handle_is),
        cmocka_unit_test(t_monitor_without_devices_runs_on_the_quiet_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
