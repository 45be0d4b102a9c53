/*
 * test_sched.c: the sans-I/O scheduler, driven with plain numbers for time.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "fs/sched.h"

static int setup(void **state)
{
    *state = sched_new();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    sched_free(*state);
    return 0;
}

static void assert_counts(sched_t *s, const char *job, uint32_t waiting, uint32_t running, uint32_t succeeded,
                          uint32_t failed, uint32_t cancelled)
{
    sched_counts_t c;
    assert_int_equal(sched_counts(s, job, &c), 0);
    assert_int_equal(c.waiting, waiting);
    assert_int_equal(c.running, running);
    assert_int_equal(c.succeeded, succeeded);
    assert_int_equal(c.failed, failed);
    assert_int_equal(c.cancelled, cancelled);
    assert_int_equal(c.total, waiting + running + succeeded + failed + cancelled);
}

static void assert_task(sched_t *s, const char *job, uint32_t task, task_state_t want, uint32_t want_attempts)
{
    task_state_t st;
    uint32_t attempts;
    assert_int_equal(sched_task(s, job, task, &st, &attempts), 0);
    assert_int_equal(st, want);
    assert_int_equal(attempts, want_attempts);
}

/* Takes the next task and checks which one it is. */
static void expect_next(sched_t *s, uint64_t now, uint64_t lease, const char *want_job, uint32_t want_task)
{
    const char *job = NULL;
    uint32_t task = UINT32_MAX;
    assert_true(sched_next(s, now, lease, &job, &task));
    assert_string_equal(job, want_job);
    assert_int_equal(task, want_task);
}

static void sched_add_job_checks(void **state)
{
    sched_t *s = *state;
    assert_int_equal(sched_add_job(s, "a", 0, 3), -EINVAL);
    assert_int_equal(sched_add_job(s, "a", SCHED_MAX_TASKS + 1, 3), -EINVAL);
    assert_int_equal(sched_add_job(s, "a", 1, 0), -EINVAL);
    assert_false(sched_has_job(s, "a"));
    assert_int_equal(sched_add_job(s, "a", 4, 3), 0);
    assert_int_equal(sched_add_job(s, "a", 2, 3), -EEXIST);
    assert_true(sched_has_job(s, "a"));
    assert_false(sched_has_job(s, "b"));
    assert_counts(s, "a", 4, 0, 0, 0, 0);
    assert_task(s, "a", 3, TASK_WAITING, 0);
    assert_false(sched_job_over(s, "a"));
    assert_int_equal(sched_add_job(s, "max", SCHED_MAX_TASKS, 1), 0);
}

static void sched_unknown_job_and_task(void **state)
{
    sched_t *s = *state;
    sched_counts_t c;
    task_state_t st;
    assert_int_equal(sched_counts(s, "x", &c), -ENOENT);
    assert_int_equal(sched_task(s, "x", 0, &st, NULL), -ENOENT);
    assert_int_equal(sched_remove_job(s, "x"), -ENOENT);
    assert_int_equal(sched_cancel_job(s, "x"), -ENOENT);
    assert_int_equal(sched_restore(s, "x", 0, TASK_WAITING, 0), -ENOENT);
    assert_int_equal(sched_renew(s, "x", 0, 0, 10), -ENOENT);
    assert_int_equal(sched_finish(s, "x", 0, true), -ENOENT);
    assert_int_equal(sched_lost(s, "x", 0), -ENOENT);
    assert_false(sched_job_over(s, "x"));

    assert_int_equal(sched_add_job(s, "x", 2, 1), 0);
    assert_int_equal(sched_task(s, "x", 2, &st, NULL), -ENOENT);
    assert_int_equal(sched_restore(s, "x", 2, TASK_WAITING, 0), -ENOENT);
    assert_int_equal(sched_renew(s, "x", 2, 0, 10), -ENOENT);
    assert_int_equal(sched_finish(s, "x", 2, true), -ENOENT);
    assert_int_equal(sched_lost(s, "x", 2), -ENOENT);
}

static void sched_next_lowest_index_first(void **state)
{
    sched_t *s = *state;
    const char *job;
    uint32_t task;
    assert_false(sched_next(s, 0, 10, &job, &task));
    assert_int_equal(sched_add_job(s, "j", 3, 3), 0);
    for (uint32_t i = 0; i < 3; i++) {
        expect_next(s, 100, 10, "j", i);
        assert_task(s, "j", i, TASK_RUNNING, 1);
    }
    assert_false(sched_next(s, 100, 10, &job, &task));
    assert_counts(s, "j", 0, 3, 0, 0, 0);
}

static void sched_fifo_across_jobs(void **state)
{
    sched_t *s = *state;
    assert_int_equal(sched_add_job(s, "first", 2, 3), 0);
    assert_int_equal(sched_add_job(s, "second", 2, 3), 0);
    expect_next(s, 0, 10, "first", 0);
    expect_next(s, 0, 10, "first", 1);
    expect_next(s, 0, 10, "second", 0);
    /* a task of the older job that comes back goes before the newer job's */
    assert_int_equal(sched_lost(s, "first", 0), 0);
    expect_next(s, 0, 10, "first", 0);
    /* a job added later queues behind */
    assert_int_equal(sched_add_job(s, "third", 1, 3), 0);
    expect_next(s, 0, 10, "second", 1);
    expect_next(s, 0, 10, "third", 0);
    /* removing the oldest job keeps the order of the others */
    assert_int_equal(sched_remove_job(s, "first"), 0);
    assert_int_equal(sched_lost(s, "third", 0), 0);
    assert_int_equal(sched_lost(s, "second", 0), 0);
    expect_next(s, 0, 10, "second", 0);
    expect_next(s, 0, 10, "third", 0);
    /* and a job added after the tail was removed is still found */
    assert_int_equal(sched_remove_job(s, "third"), 0);
    assert_int_equal(sched_add_job(s, "fourth", 1, 3), 0);
    expect_next(s, 0, 10, "fourth", 0);
}

static void sched_finish_transitions(void **state)
{
    sched_t *s = *state;
    assert_int_equal(sched_add_job(s, "j", 3, 3), 0);
    /* not running yet */
    assert_int_equal(sched_finish(s, "j", 0, true), -EINVAL);
    assert_int_equal(sched_lost(s, "j", 0), -EINVAL);
    assert_int_equal(sched_renew(s, "j", 0, 0, 10), -EINVAL);
    expect_next(s, 0, 10, "j", 0);
    expect_next(s, 0, 10, "j", 1);
    assert_int_equal(sched_finish(s, "j", 0, true), 0);
    assert_int_equal(sched_finish(s, "j", 1, false), 0);
    assert_task(s, "j", 0, TASK_SUCCEEDED, 1);
    assert_task(s, "j", 1, TASK_FAILED, 1);
    assert_counts(s, "j", 1, 0, 1, 1, 0);
    /* finished tasks are not running any more */
    assert_int_equal(sched_finish(s, "j", 0, true), -EINVAL);
    assert_int_equal(sched_lost(s, "j", 1), -EINVAL);
    assert_int_equal(sched_renew(s, "j", 1, 0, 10), -EINVAL);
    assert_false(sched_job_over(s, "j"));
    expect_next(s, 0, 10, "j", 2);
    assert_false(sched_job_over(s, "j"));
    assert_int_equal(sched_finish(s, "j", 2, true), 0);
    assert_true(sched_job_over(s, "j"));
    assert_int_equal(sched_next_deadline(s), UINT64_MAX);
}

static void sched_lost_retries_then_fails(void **state)
{
    sched_t *s = *state;
    assert_int_equal(sched_add_job(s, "j", 5, 2), 0);
    for (uint32_t i = 0; i < 5; i++)
        expect_next(s, 0, 10, "j", i);
    /* a lost task below the ones handed out is found again */
    assert_int_equal(sched_lost(s, "j", 2), 0);
    assert_task(s, "j", 2, TASK_WAITING, 1);
    assert_counts(s, "j", 1, 4, 0, 0, 0);
    expect_next(s, 0, 10, "j", 2);
    assert_task(s, "j", 2, TASK_RUNNING, 2);
    /* second loss with max_attempts 2: gives up */
    assert_int_equal(sched_lost(s, "j", 2), 0);
    assert_task(s, "j", 2, TASK_FAILED, 2);
    assert_counts(s, "j", 0, 4, 0, 1, 0);
    const char *job;
    uint32_t task;
    assert_false(sched_next(s, 0, 10, &job, &task));
    /* several lost at once come back lowest first */
    assert_int_equal(sched_lost(s, "j", 4), 0);
    assert_int_equal(sched_lost(s, "j", 0), 0);
    assert_int_equal(sched_lost(s, "j", 3), 0);
    expect_next(s, 0, 10, "j", 0);
    expect_next(s, 0, 10, "j", 3);
    expect_next(s, 0, 10, "j", 4);
}

static void sched_release_costs_no_attempt(void **state)
{
    sched_t *s = *state;
    uint32_t t = UINT32_MAX;
    assert_int_equal(sched_add_job(s, "j", 3, 1), 0);
    /* a volunteer leases three tasks at once but can start only the first */
    for (uint32_t i = 0; i < 3; i++) {
        assert_true(sched_next_in(s, "j", 0, 10, &t));
        assert_int_equal(t, i);
    }
    assert_int_equal(sched_release(s, "j", 2), 0);
    assert_int_equal(sched_release(s, "j", 1), 0);
    assert_task(s, "j", 1, TASK_WAITING, 0);
    assert_counts(s, "j", 2, 1, 0, 0, 0);
    assert_int_equal(sched_release(s, "j", 1), -EINVAL); /* not running any more */
    assert_int_equal(sched_release(s, "j", 3), -ENOENT);
    assert_int_equal(sched_release(s, "x", 0), -ENOENT);
    /* max_attempts 1: had the release counted, a loss now would fail the task */
    assert_true(sched_next_in(s, "j", 0, 10, &t));
    assert_int_equal(t, 1);
    assert_task(s, "j", 1, TASK_RUNNING, 1);
    assert_int_equal(sched_finish(s, "j", 1, true), 0);
    assert_true(sched_next_in(s, "j", 0, 10, &t));
    assert_int_equal(t, 2);
    assert_false(sched_next_in(s, "j", 0, 10, &t));
}

static void sched_renew_extends_lease(void **state)
{
    sched_t *s = *state;
    assert_int_equal(sched_add_job(s, "j", 1, 3), 0);
    assert_int_equal(sched_next_deadline(s), UINT64_MAX);
    expect_next(s, 1000, 50, "j", 0);
    assert_int_equal(sched_next_deadline(s), 1050);
    assert_int_equal(sched_renew(s, "j", 0, 1040, 50), 0);
    assert_int_equal(sched_next_deadline(s), 1090);
    assert_int_equal(sched_expire(s, 1089, NULL, NULL), 0);
    assert_task(s, "j", 0, TASK_RUNNING, 1);
    /* a lease that would overflow saturates instead of wrapping into the past */
    assert_int_equal(sched_renew(s, "j", 0, UINT64_MAX - 5, 50), 0);
    assert_int_equal(sched_next_deadline(s), UINT64_MAX);
    assert_int_equal(sched_expire(s, UINT64_MAX - 1, NULL, NULL), 0);
}

typedef struct expired_log {
    int calls;
    char job[16][8];
    uint32_t task[16];
} expired_log_t;

static void on_expired(void *arg, const char *job_id, uint32_t task)
{
    expired_log_t *l = arg;
    assert_true(l->calls < 16);
    snprintf(l->job[l->calls], sizeof(l->job[0]), "%s", job_id);
    l->task[l->calls] = task;
    l->calls++;
}

static void sched_expire_leases(void **state)
{
    sched_t *s = *state;
    expired_log_t l = {0};
    assert_int_equal(sched_add_job(s, "a", 3, 2), 0);
    assert_int_equal(sched_add_job(s, "b", 1, 2), 0);
    expect_next(s, 0, 100, "a", 0);   /* lease ends 100 */
    expect_next(s, 10, 100, "a", 1);  /* 110 */
    expect_next(s, 20, 200, "a", 2);  /* 220 */
    expect_next(s, 30, 100, "b", 0);  /* 130 */
    assert_int_equal(sched_next_deadline(s), 100);

    assert_int_equal(sched_expire(s, 99, on_expired, &l), 0);
    assert_int_equal(l.calls, 0);
    /* a lease that ends exactly now has expired */
    assert_int_equal(sched_expire(s, 130, on_expired, &l), 3);
    assert_int_equal(l.calls, 3);
    for (int i = 0; i < 3; i++) {
        bool known = (strcmp(l.job[i], "a") == 0 && l.task[i] <= 1) ||
                     (strcmp(l.job[i], "b") == 0 && l.task[i] == 0);
        assert_true(known);
    }
    assert_task(s, "a", 0, TASK_WAITING, 1);
    assert_task(s, "a", 1, TASK_WAITING, 1);
    assert_task(s, "a", 2, TASK_RUNNING, 1);
    assert_task(s, "b", 0, TASK_WAITING, 1);
    assert_counts(s, "a", 2, 1, 0, 0, 0);
    assert_int_equal(sched_next_deadline(s), 220);

    /* second expiry of the same task: max_attempts 2 reached, FAILED */
    expect_next(s, 200, 10, "a", 0);
    assert_task(s, "a", 0, TASK_RUNNING, 2);
    l.calls = 0;
    assert_int_equal(sched_expire(s, 210, on_expired, &l), 1);
    assert_int_equal(l.calls, 1);
    assert_string_equal(l.job[0], "a");
    assert_int_equal(l.task[0], 0);
    assert_task(s, "a", 0, TASK_FAILED, 2);
    assert_counts(s, "a", 1, 1, 0, 1, 0);

    /* without a callback it still expires and counts */
    assert_int_equal(sched_expire(s, 1000, NULL, NULL), 1);
    assert_task(s, "a", 2, TASK_WAITING, 1);
    assert_int_equal(sched_next_deadline(s), UINT64_MAX);
}

/* A callback that removes the job it is told about, and the other one too. */
static void remove_jobs_cb(void *arg, const char *job_id, uint32_t task)
{
    sched_t *s = arg;
    (void)task;
    sched_remove_job(s, "a");
    sched_remove_job(s, "b");
    assert_false(sched_has_job(s, "a"));
}

static int remove_calls;
static void count_then_remove_cb(void *arg, const char *job_id, uint32_t task)
{
    remove_calls++;
    remove_jobs_cb(arg, job_id, task);
}

static void sched_expire_callback_may_remove_jobs(void **state)
{
    sched_t *s = *state;
    assert_int_equal(sched_add_job(s, "a", 2, 3), 0);
    assert_int_equal(sched_add_job(s, "b", 2, 3), 0);
    for (int i = 0; i < 4; i++) {
        const char *job;
        uint32_t task;
        assert_true(sched_next(s, 0, 10, &job, &task));
    }
    remove_calls = 0;
    /* four leases expire; the first callback removes both jobs, so no callback names a freed job */
    assert_int_equal(sched_expire(s, 10, count_then_remove_cb, s), 4);
    assert_int_equal(remove_calls, 1);
    assert_false(sched_has_job(s, "a"));
    assert_false(sched_has_job(s, "b"));
    assert_int_equal(sched_next_deadline(s), UINT64_MAX);
    /* the scheduler is still usable */
    assert_int_equal(sched_add_job(s, "a", 1, 3), 0);
    expect_next(s, 0, 10, "a", 0);
}

static void sched_cancel_marks_unfinished(void **state)
{
    sched_t *s = *state;
    assert_int_equal(sched_add_job(s, "j", 5, 3), 0);
    expect_next(s, 0, 10, "j", 0);
    expect_next(s, 0, 10, "j", 1);
    expect_next(s, 0, 10, "j", 2);
    assert_int_equal(sched_finish(s, "j", 0, true), 0);
    assert_int_equal(sched_finish(s, "j", 1, false), 0);
    assert_int_equal(sched_cancel_job(s, "j"), 0);
    assert_task(s, "j", 0, TASK_SUCCEEDED, 1);
    assert_task(s, "j", 1, TASK_FAILED, 1);
    assert_task(s, "j", 2, TASK_CANCELLED, 1);
    assert_task(s, "j", 3, TASK_CANCELLED, 0);
    assert_counts(s, "j", 0, 0, 1, 1, 3);
    assert_true(sched_job_over(s, "j"));
    const char *job;
    uint32_t task;
    assert_false(sched_next(s, 0, 10, &job, &task));
    /* the worker of the cancelled running task reports late: refused */
    assert_int_equal(sched_finish(s, "j", 2, true), -EINVAL);
    assert_int_equal(sched_lost(s, "j", 2), -EINVAL);
    assert_int_equal(sched_next_deadline(s), UINT64_MAX);
    assert_int_equal(sched_expire(s, 1000, NULL, NULL), 0);
    /* cancelling again changes nothing */
    assert_int_equal(sched_cancel_job(s, "j"), 0);
    assert_counts(s, "j", 0, 0, 1, 1, 3);
}

static void sched_restore_states(void **state)
{
    sched_t *s = *state;
    assert_int_equal(sched_add_job(s, "j", 6, 3), 0);
    assert_int_equal(sched_restore(s, "j", 0, TASK_SUCCEEDED, 1), 0);
    assert_int_equal(sched_restore(s, "j", 1, TASK_RUNNING, 2), 0);
    assert_int_equal(sched_restore(s, "j", 2, TASK_FAILED, 3), 0);
    assert_int_equal(sched_restore(s, "j", 3, TASK_CANCELLED, 0), 0);
    assert_int_equal(sched_restore(s, "j", 4, (task_state_t)5, 0), -EINVAL);
    assert_int_equal(sched_restore(s, "j", 4, (task_state_t)-1, 0), -EINVAL);
    assert_int_equal(sched_restore(s, "j", 4, TASK_SUCCEEDED, 1), 0);
    assert_task(s, "j", 0, TASK_SUCCEEDED, 1);
    assert_task(s, "j", 1, TASK_WAITING, 2); /* RUNNING comes back as WAITING */
    assert_task(s, "j", 2, TASK_FAILED, 3);
    assert_task(s, "j", 3, TASK_CANCELLED, 0);
    assert_task(s, "j", 4, TASK_SUCCEEDED, 1);
    assert_counts(s, "j", 2, 0, 2, 1, 1);
    /* only the waiting ones are handed out, and attempts continue from the restored count */
    expect_next(s, 0, 10, "j", 1);
    assert_task(s, "j", 1, TASK_RUNNING, 3);
    expect_next(s, 0, 10, "j", 5);
    const char *job;
    uint32_t task;
    assert_false(sched_next(s, 0, 10, &job, &task));
    /* restoring a task back to WAITING makes it found again */
    assert_int_equal(sched_restore(s, "j", 0, TASK_WAITING, 1), 0);
    expect_next(s, 0, 10, "j", 0);
    /* restoring a RUNNING task drops its lease */
    assert_int_equal(sched_restore(s, "j", 0, TASK_RUNNING, 1), 0);
    assert_counts(s, "j", 1, 2, 1, 1, 1);
    assert_int_equal(sched_lost(s, "j", 1), 0); /* 3 attempts of 3: FAILED */
    assert_task(s, "j", 1, TASK_FAILED, 3);
    assert_int_equal(sched_finish(s, "j", 5, true), 0);
    assert_int_equal(sched_next_deadline(s), UINT64_MAX);
}

static void sched_state_names(void **state)
{
    (void)state;
    assert_string_equal(sched_state_name(TASK_WAITING), "waiting");
    assert_string_equal(sched_state_name(TASK_RUNNING), "running");
    assert_string_equal(sched_state_name(TASK_SUCCEEDED), "succeeded");
    assert_string_equal(sched_state_name(TASK_FAILED), "failed");
    assert_string_equal(sched_state_name(TASK_CANCELLED), "cancelled");
    assert_string_equal(sched_state_name((task_state_t)42), "unknown");
}

/*
 * Random operations against a plain model of the states: after every step the counts sum to the
 * total and agree with a count of sched_task over every task.
 */
static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
    rnd_state ^= rnd_state << 13, rnd_state ^= rnd_state >> 17, rnd_state ^= rnd_state << 5;
    return rnd_state;
}

static void check_consistent(sched_t *s, const char *job, uint32_t n)
{
    sched_counts_t c;
    uint32_t by_state[5] = {0};
    assert_int_equal(sched_counts(s, job, &c), 0);
    assert_int_equal(c.total, n);
    assert_int_equal(c.waiting + c.running + c.succeeded + c.failed + c.cancelled, c.total);
    for (uint32_t t = 0; t < n; t++) {
        task_state_t st;
        assert_int_equal(sched_task(s, job, t, &st, NULL), 0);
        by_state[st]++;
    }
    assert_int_equal(by_state[TASK_WAITING], c.waiting);
    assert_int_equal(by_state[TASK_RUNNING], c.running);
    assert_int_equal(by_state[TASK_SUCCEEDED], c.succeeded);
    assert_int_equal(by_state[TASK_FAILED], c.failed);
    assert_int_equal(by_state[TASK_CANCELLED], c.cancelled);
}

static void sched_counts_always_sum_to_total(void **state)
{
    sched_t *s = *state;
    const uint32_t n = 40;
    assert_int_equal(sched_add_job(s, "r", n, 3), 0);
    uint64_t now = 0;
    for (int step = 0; step < 5000; step++) {
        uint32_t t = rnd() % n;
        const char *job;
        uint32_t task;
        now += rnd() % 5;
        switch (rnd() % 8) {
        case 0:
        case 1:
            sched_next(s, now, 1 + rnd() % 20, &job, &task);
            break;
        case 2:
            sched_finish(s, "r", t, rnd() % 4 != 0);
            break;
        case 3:
            sched_lost(s, "r", t);
            break;
        case 4:
            sched_renew(s, "r", t, now, 10);
            break;
        case 5:
            sched_expire(s, now, NULL, NULL);
            break;
        case 6:
            sched_restore(s, "r", t, (task_state_t)(rnd() % 5), rnd() % 4);
            break;
        case 7:
            if (rnd() % 50 == 0)
                sched_cancel_job(s, "r");
            break;
        }
        check_consistent(s, "r", n);
        uint64_t d = sched_next_deadline(s);
        sched_counts_t c;
        sched_counts(s, "r", &c);
        assert_true((c.running == 0) == (d == UINT64_MAX));
    }
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void sched_drains_a_large_job_quickly(void **state)
{
    sched_t *s = *state;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(sched_add_job(s, "big", SCHED_MAX_TASKS, 3), 0);
    const char *job;
    uint32_t task;
    for (uint32_t i = 0; i < SCHED_MAX_TASKS; i++) {
        assert_true(sched_next(s, i, 1000, &job, &task));
        assert_int_equal(task, i);
        sched_counts_t c;
        assert_int_equal(sched_counts(s, "big", &c), 0);
        assert_int_equal(c.running, 1);
        assert_int_equal(sched_finish(s, job, task, true), 0);
    }
    assert_false(sched_next(s, 0, 1000, &job, &task));
    assert_true(sched_job_over(s, "big"));
    assert_counts(s, "big", 0, 0, SCHED_MAX_TASKS, 0, 0);
    double took = seconds_since(&t0);
    /* O(n^2) would take tens of seconds here; linear takes milliseconds, even under ASan */
    assert_true(took < 0.5);
}

/* Everything handed out, then the leases of every other task expire: still fast and in order. */
static void sched_large_job_with_losses(void **state)
{
    sched_t *s = *state;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const uint32_t n = SCHED_MAX_TASKS;
    assert_int_equal(sched_add_job(s, "big", n, 3), 0);
    const char *job;
    uint32_t task;
    /* odd tasks get a short lease, even a long one */
    for (uint32_t i = 0; i < n; i++) {
        assert_true(sched_next(s, 0, i % 2 ? 10 : 1000, &job, &task));
        assert_int_equal(task, i);
    }
    assert_int_equal(sched_next_deadline(s), 10);
    assert_int_equal(sched_expire(s, 10, NULL, NULL), n / 2);
    assert_counts(s, "big", n / 2, n / 2, 0, 0, 0);
    for (uint32_t i = 1; i < n; i += 2) {
        assert_true(sched_next(s, 20, 1000, &job, &task));
        assert_int_equal(task, i);
        assert_int_equal(sched_finish(s, job, task, true), 0);
    }
    /* the running list of 50000 leases is walked once per expire, not per task */
    assert_int_equal(sched_expire(s, 999, NULL, NULL), 0);
    assert_counts(s, "big", 0, n / 2, n / 2, 0, 0);
    assert_true(seconds_since(&t0) < 0.5);
}

static void next_in_picks_from_one_job_only(void **state)
{
    (void)state;
    sched_t *s = sched_new();
    assert_int_equal(sched_add_job(s, "a", 2, 3), 0);
    assert_int_equal(sched_add_job(s, "b", 1, 3), 0);
    uint32_t t = 99;
    assert_true(sched_next_in(s, "b", 0, 100, &t));
    assert_int_equal(t, 0);
    assert_false(sched_next_in(s, "b", 0, 100, &t)); /* b's only task is running */
    assert_false(sched_next_in(s, "nope", 0, 100, &t));
    assert_true(sched_next_in(s, "a", 0, 100, &t));
    assert_int_equal(t, 0);
    sched_counts_t c;
    assert_int_equal(sched_counts(s, "a", &c), 0);
    assert_int_equal(c.running, 1);
    assert_int_equal(c.waiting, 1);
    assert_int_equal(sched_expire(s, 100, NULL, NULL), 2); /* both leases end at 100 */
    assert_true(sched_next_in(s, "b", 200, 100, &t));
    sched_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(next_in_picks_from_one_job_only),
        cmocka_unit_test_setup_teardown(sched_add_job_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(sched_unknown_job_and_task, setup, teardown),
        cmocka_unit_test_setup_teardown(sched_next_lowest_index_first, setup, teardown),
        cmocka_unit_test_setup_teardown(sched_fifo_across_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(sched_finish_transitions, setup, teardown),
        cmocka_unit_test_setup_teardown(sched_lost_retries_then_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(sched_renew_extends_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(sched_expire_leases, setup, teardown),
        cmocka_unit_test_setup_teardown(sched_expire_callback_may_remove_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(sched_cancel_marks_unfinished, setup, teardown),
        cmocka_unit_test_setup_teardown(sched_restore_states, setup, teardown),
        cmocka_unit_test(sched_state_names),
        cmocka_unit_test_setup_teardown(sched_counts_always_sum_to_total, setup, teardown),
        cmocka_unit_test_setup_teardown(sched_release_costs_no_attempt, setup, teardown),
        cmocka_unit_test_setup_teardown(sched_drains_a_large_job_quickly, setup, teardown),
        cmocka_unit_test_setup_teardown(sched_large_job_with_losses, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
