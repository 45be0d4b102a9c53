/*
 * test_coord.c: the coordination core (pool/coord.h), driven with plain numbers for time and plain
 * strings for workers and results: every scheduling, lease, quorum and membership rule, no sockets.
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

#include "pool/coord.h"

#define W1 "http://10.0.0.1:7650"
#define W2 "http://10.0.0.2:7650"
#define W3 "http://10.0.0.3:7650"
#define W4 "http://10.0.0.4:7650"

static coord_t *fresh(void)
{
    coord_t *c = coord_new(&(coord_opts_t){.max_attempts = 3});
    assert_int_equal(coord_worker_seen(c, W1, "10.0.0.1", 0), 0);
    assert_int_equal(coord_worker_seen(c, W2, "10.0.0.2", 0), 0);
    assert_int_equal(coord_worker_seen(c, W3, "10.0.0.3", 0), 0);
    assert_int_equal(coord_worker_seen(c, W4, "10.0.0.4", 0), 0);
    return c;
}

static int setup(void **state)
{
    *state = fresh();
    return 0;
}

static int teardown(void **state)
{
    coord_free(*state);
    return 0;
}

static void assert_counts(coord_t *c, const char *job, uint32_t waiting, uint32_t running, uint32_t succeeded,
                          uint32_t failed, uint32_t cancelled)
{
    coord_counts_t n;
    assert_int_equal(coord_counts(c, job, &n), 0);
    assert_int_equal(n.waiting, waiting);
    assert_int_equal(n.running, running);
    assert_int_equal(n.succeeded, succeeded);
    assert_int_equal(n.failed, failed);
    assert_int_equal(n.cancelled, cancelled);
    assert_int_equal(n.total, waiting + running + succeeded + failed + cancelled);
}

static void assert_task(coord_t *c, const char *job, uint32_t task, task_state_t want, uint32_t want_attempts)
{
    task_state_t st;
    uint32_t attempts;
    assert_int_equal(coord_task(c, job, task, &st, &attempts), 0);
    assert_int_equal(st, want);
    assert_int_equal(attempts, want_attempts);
}

/* Leases the next task for worker w (any job) and checks which one it is. */
static void expect_lease(coord_t *c, const char *w, uint64_t now, uint64_t lease, const char *want_job,
                         uint32_t want_task)
{
    const char *job = NULL;
    uint32_t task = UINT32_MAX;
    assert_int_equal(coord_lease(c, NULL, w, now, lease, &job, &task), 0);
    assert_string_equal(job, want_job);
    assert_int_equal(task, want_task);
}

static coord_verdict_t report(coord_t *c, const char *job, uint32_t task, const char *w, const char *res, bool ok)
{
    coord_verdict_t v = (coord_verdict_t)-1;
    assert_int_equal(coord_report(c, job, task, w, res, ok, &v), 0);
    return v;
}

/* ---- the basics (what the scheduler did before, now per worker) ---- */

static void add_job_checks(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "a", 0, 1), -EINVAL);
    assert_int_equal(coord_add_job(c, "a", COORD_MAX_TASKS + 1, 1), -EINVAL);
    assert_int_equal(coord_add_job(c, "a", 1, 0), -EINVAL);
    assert_int_equal(coord_add_job(c, "a", 1, COORD_MAX_REPLICAS + 1), -EINVAL);
    assert_int_equal(coord_add_job(c, NULL, 1, 1), -EINVAL);
    assert_int_equal(coord_add_job(c, "", 1, 1), -EINVAL);
    assert_int_equal(coord_add_job(c, "a", 3, 1), 0);
    assert_int_equal(coord_add_job(c, "a", 3, 1), -EEXIST);
    assert_true(coord_has_job(c, "a"));
    assert_counts(c, "a", 3, 0, 0, 0, 0);
    assert_int_equal(coord_remove_job(c, "a"), 0);
    assert_false(coord_has_job(c, "a"));
    assert_int_equal(coord_remove_job(c, "a"), -ENOENT);
}

static void unknown_job_task_and_worker(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "a", 2, 1), 0);
    uint32_t t;
    coord_verdict_t v;
    assert_int_equal(coord_lease(c, "a", "http://stranger", 0, 10, NULL, &t), -ENOENT);
    assert_int_equal(coord_lease(c, "nope", W1, 0, 10, NULL, &t), -ENOENT);
    assert_int_equal(coord_renew(c, "a", 5, W1, 0, 10), -ENOENT);
    assert_int_equal(coord_renew(c, "nope", 0, W1, 0, 10), -ENOENT);
    assert_int_equal(coord_renew(c, "a", 0, W1, 0, 10), -EPERM); /* not leased */
    assert_int_equal(coord_release(c, "a", 0, W1), -EPERM);
    assert_int_equal(coord_lost(c, "a", 0, W1), -EPERM);
    assert_int_equal(coord_report(c, "a", 9, W1, "r", true, &v), -ENOENT);
    assert_int_equal(coord_report(c, "a", 0, W1, "", true, &v), -EINVAL);
    assert_int_equal(coord_report(c, "a", 0, W1, "r", true, NULL), -EINVAL);
    assert_int_equal(coord_task(c, "a", 2, NULL, NULL), -ENOENT);
    coord_counts_t n;
    assert_int_equal(coord_counts(c, "nope", &n), -ENOENT);
    assert_false(coord_job_over(c, "nope"));
    assert_null(coord_task_result(c, "a", 0));
}

static void lowest_index_first_and_fifo_across_jobs(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "a", 2, 1), 0);
    assert_int_equal(coord_add_job(c, "b", 2, 1), 0);
    expect_lease(c, W1, 0, 100, "a", 0);
    expect_lease(c, W1, 0, 100, "a", 1);
    expect_lease(c, W2, 0, 100, "b", 0);
    /* a lost task comes back below tasks already handed out */
    assert_int_equal(coord_lost(c, "a", 0, W1), 0);
    expect_lease(c, W3, 0, 100, "a", 0);
    expect_lease(c, W3, 0, 100, "b", 1);
    uint32_t t;
    assert_int_equal(coord_lease(c, NULL, W4, 0, 100, NULL, &t), -EAGAIN);
    assert_int_equal(coord_lease(c, "a", W4, 0, 100, NULL, &t), -EAGAIN);
}

static void report_decides_a_single_replica_task(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "a", 2, 1), 0);
    expect_lease(c, W1, 0, 100, "a", 0);
    expect_lease(c, W2, 0, 100, "a", 1);
    assert_counts(c, "a", 0, 2, 0, 0, 0);
    assert_int_equal(report(c, "a", 0, W1, "res0", true), COORD_ACCEPTED);
    assert_string_equal(coord_task_result(c, "a", 0), "res0");
    assert_task(c, "a", 0, TASK_SUCCEEDED, 1);
    /* a non-zero exit is decided at once: jobs are deterministic */
    assert_int_equal(report(c, "a", 1, W2, "res1", false), COORD_ACCEPTED);
    assert_task(c, "a", 1, TASK_FAILED, 1);
    assert_counts(c, "a", 0, 0, 1, 1, 0);
    assert_true(coord_job_over(c, "a"));
    assert_int_equal(coord_worker_leases(c, W1), 0);
}

/* ---- leases: expiry, duplicates, late reports, release, caps ---- */

static void expiry_then_reassignment_and_the_late_report(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "a", 1, 1), 0);
    expect_lease(c, W1, 0, 100, "a", 0);
    assert_int_equal(coord_next_deadline(c), 100);
    assert_int_equal(coord_expire(c, 99, NULL, NULL), 0);
    assert_int_equal(coord_expire(c, 100, NULL, NULL), 1);
    assert_task(c, "a", 0, TASK_WAITING, 1);
    assert_int_equal(coord_next_deadline(c), UINT64_MAX);
    assert_int_equal(coord_holds(c, "a", 0, W1), -EPERM);
    expect_lease(c, W2, 150, 100, "a", 0);
    /* W1 comes back with its result: the task is W2's now */
    assert_int_equal(report(c, "a", 0, W1, "old", true), COORD_LATE);
    assert_task(c, "a", 0, TASK_RUNNING, 2);
    assert_int_equal(coord_renew(c, "a", 0, W1, 160, 100), -EPERM);
    assert_int_equal(report(c, "a", 0, W2, "new", true), COORD_ACCEPTED);
    /* and once decided, nobody changes it */
    assert_int_equal(report(c, "a", 0, W1, "old", true), COORD_LATE);
    assert_string_equal(coord_task_result(c, "a", 0), "new");
}

static void a_duplicate_report_changes_nothing(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "a", 1, 1), 0);
    expect_lease(c, W1, 0, 100, "a", 0);
    assert_int_equal(report(c, "a", 0, W1, "r1", true), COORD_ACCEPTED);
    assert_int_equal(report(c, "a", 0, W1, "r1", true), COORD_DUPLICATE);
    assert_int_equal(report(c, "a", 0, W1, "other", false), COORD_DUPLICATE);
    assert_string_equal(coord_task_result(c, "a", 0), "r1");
    assert_task(c, "a", 0, TASK_SUCCEEDED, 1);
}

static void renew_extends_only_the_holders_lease(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "a", 1, 1), 0);
    expect_lease(c, W1, 0, 100, "a", 0);
    assert_int_equal(coord_renew(c, "a", 0, W2, 50, 100), -EPERM);
    assert_int_equal(coord_renew(c, "a", 0, W1, 50, 100), 0);
    assert_int_equal(coord_next_deadline(c), 150);
    assert_int_equal(coord_expire(c, 149, NULL, NULL), 0);
    assert_int_equal(coord_holds(c, "a", 0, W1), 0);
    assert_int_equal(coord_expire(c, 150, NULL, NULL), 1);
}

static void release_costs_no_attempt(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "a", 1, 1), 0);
    for (int i = 0; i < 10; i++) { /* far more than max_attempts: releases are free */
        expect_lease(c, W1, 0, 100, "a", 0);
        assert_int_equal(coord_release(c, "a", 0, W2), -EPERM);
        assert_int_equal(coord_release(c, "a", 0, W1), 0);
    }
    assert_task(c, "a", 0, TASK_WAITING, 0);
    assert_int_equal(coord_worker_leases(c, W1), 0);
}

static void lost_retries_then_fails(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "a", 1, 1), 0);
    expect_lease(c, W1, 0, 100, "a", 0);
    assert_int_equal(coord_lost(c, "a", 0, W1), 0);
    expect_lease(c, W2, 0, 100, "a", 0);
    assert_int_equal(coord_expire(c, 100, NULL, NULL), 1);
    expect_lease(c, W3, 200, 100, "a", 0);
    assert_int_equal(coord_lost(c, "a", 0, W3), 0); /* the third loss: given up */
    assert_task(c, "a", 0, TASK_FAILED, 3);
    assert_true(coord_job_over(c, "a"));
    uint32_t t;
    assert_int_equal(coord_lease(c, "a", W4, 300, 100, NULL, &t), -EAGAIN);
}

static void a_hog_is_capped(void **state)
{
    (void)state;
    coord_t *c = coord_new(&(coord_opts_t){.max_leases_per_worker = 3});
    assert_int_equal(coord_worker_seen(c, W1, "10.0.0.1", 0), 0);
    assert_int_equal(coord_worker_seen(c, W2, "10.0.0.2", 0), 0);
    assert_int_equal(coord_add_job(c, "a", 10, 1), 0);
    uint32_t t;
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(coord_lease(c, "a", W1, 0, 100, NULL, &t), 0);
        assert_int_equal(t, i);
    }
    assert_int_equal(coord_lease(c, "a", W1, 0, 100, NULL, &t), -EDQUOT);
    assert_int_equal(coord_worker_leases(c, W1), 3);
    /* others still get work */
    assert_int_equal(coord_lease(c, "a", W2, 0, 100, NULL, &t), 0);
    assert_int_equal(t, 3);
    /* a finished task frees a lease for the hog */
    coord_verdict_t v;
    assert_int_equal(coord_report(c, "a", 0, W1, "r", true, &v), 0);
    assert_int_equal(coord_lease(c, "a", W1, 0, 100, NULL, &t), 0);
    assert_int_equal(t, 4);
    /* a worker with a cap of its own (our slots): 5 here */
    assert_int_equal(coord_worker_cap(c, W2, 5), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(coord_lease(c, "a", W2, 0, 100, NULL, &t), 0);
    assert_int_equal(coord_lease(c, "a", W2, 0, 100, NULL, &t), -EDQUOT);
    assert_int_equal(coord_worker_cap(c, "nobody", 5), -ENOENT);
    coord_free(c);
}

static void on_ended(void *arg, const char *job_id, uint32_t task, const char *worker)
{
    char *log = arg;
    snprintf(log + strlen(log), 512 - strlen(log), "%s/%u@%s;", job_id, task, worker);
}

static void expire_calls_back_with_the_holder(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "a", 3, 1), 0);
    expect_lease(c, W1, 0, 10, "a", 0);
    expect_lease(c, W2, 0, 50, "a", 1);
    expect_lease(c, W3, 0, 10, "a", 2);
    char log[512] = "";
    assert_int_equal(coord_expire(c, 10, on_ended, log), 2);
    assert_true(strstr(log, "a/0@" W1 ";") != NULL);
    assert_true(strstr(log, "a/2@" W3 ";") != NULL);
    assert_null(strstr(log, "a/1@"));
    assert_counts(c, "a", 2, 1, 0, 0, 0);
}

static void remove_in_callback(void *arg, const char *job_id, uint32_t task, const char *worker)
{
    coord_t *c = arg;
    (void)task;
    (void)worker;
    coord_remove_job(c, job_id);
    coord_remove_job(c, "b");
}

static void expire_callback_may_remove_jobs(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "a", 2, 1), 0);
    assert_int_equal(coord_add_job(c, "b", 2, 1), 0);
    expect_lease(c, W1, 0, 10, "a", 0);
    expect_lease(c, W1, 0, 10, "a", 1);
    expect_lease(c, W2, 0, 10, "b", 0);
    assert_int_equal(coord_expire(c, 10, remove_in_callback, c), 3);
    assert_false(coord_has_job(c, "a"));
    assert_false(coord_has_job(c, "b"));
    assert_int_equal(coord_worker_leases(c, W1), 0);
}

/* ---- cancel, restore ---- */

static void cancel_ends_every_lease_and_names_the_holders(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "a", 4, 1), 0);
    expect_lease(c, W1, 0, 100, "a", 0);
    expect_lease(c, W2, 0, 100, "a", 1);
    assert_int_equal(report(c, "a", 1, W2, "r", true), COORD_ACCEPTED);
    expect_lease(c, W3, 0, 100, "a", 2);
    char log[512] = "";
    assert_int_equal(coord_cancel_job(c, "a", on_ended, log), 0);
    assert_string_not_equal(log, "");
    assert_true(strstr(log, "a/0@" W1 ";") != NULL);
    assert_true(strstr(log, "a/2@" W3 ";") != NULL);
    assert_null(strstr(log, W2));
    assert_counts(c, "a", 0, 0, 1, 0, 3);
    assert_true(coord_job_over(c, "a"));
    /* the holders' reports now come too late: no result of a cancelled task is kept */
    assert_int_equal(report(c, "a", 0, W1, "r0", true), COORD_LATE);
    assert_int_equal(coord_worker_leases(c, W1), 0);
    assert_int_equal(coord_next_deadline(c), UINT64_MAX);
    assert_int_equal(coord_cancel_job(c, "nope", NULL, NULL), -ENOENT);
}

static void restore_after_a_restart(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "a", 5, 1), 0);
    assert_int_equal(coord_restore(c, "a", 0, TASK_SUCCEEDED, 1), 0);
    assert_int_equal(coord_restore(c, "a", 1, TASK_FAILED, 1), 0);
    assert_int_equal(coord_restore(c, "a", 2, TASK_RUNNING, 1), 0); /* was running: waits again */
    assert_int_equal(coord_restore(c, "a", 3, TASK_CANCELLED, 0), 0);
    assert_int_equal(coord_restore(c, "a", 4, TASK_RUNNING, 3), 0); /* out of attempts, yet one more */
    assert_int_equal(coord_restore(c, "a", 5, TASK_WAITING, 0), -ENOENT);
    assert_int_equal(coord_restore(c, "a", 0, (task_state_t)7, 0), -EINVAL);
    assert_counts(c, "a", 2, 0, 1, 1, 1);
    assert_task(c, "a", 2, TASK_WAITING, 1);
    expect_lease(c, W1, 0, 100, "a", 2);
    expect_lease(c, W1, 0, 100, "a", 4);
    assert_int_equal(coord_lost(c, "a", 4, W1), 0);
    assert_task(c, "a", 4, TASK_FAILED, 4); /* the one more try was lost too */
    assert_int_equal(report(c, "a", 2, W1, "r", true), COORD_ACCEPTED);
    assert_true(coord_job_over(c, "a"));
}

/* ---- replicas and quorum ---- */

static void replicas_go_to_distinct_workers(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "r", 2, 3), 0);
    uint32_t t;
    /* W1 gets one replica of each task, never two of one */
    assert_int_equal(coord_lease(c, "r", W1, 0, 100, NULL, &t), 0);
    assert_int_equal(t, 0);
    assert_int_equal(coord_lease(c, "r", W1, 0, 100, NULL, &t), 0);
    assert_int_equal(t, 1);
    assert_int_equal(coord_lease(c, "r", W1, 0, 100, NULL, &t), -EAGAIN);
    /* the others fill the remaining replicas */
    for (int k = 0; k < 2; k++) {
        const char *w = k ? W3 : W2;
        assert_int_equal(coord_lease(c, "r", w, 0, 100, NULL, &t), 0);
        assert_int_equal(t, 0);
        assert_int_equal(coord_lease(c, "r", w, 0, 100, NULL, &t), 0);
        assert_int_equal(t, 1);
    }
    assert_int_equal(coord_lease(c, "r", W4, 0, 100, NULL, &t), -EAGAIN);
    const char *h[4];
    assert_int_equal(coord_holders(c, "r", 0, h, 4), 3);
    assert_counts(c, "r", 0, 2, 0, 0, 0);
}

static void quorum_reached_and_the_dissenter_recorded(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "r", 1, 3), 0);
    expect_lease(c, W1, 0, 100, "r", 0);
    expect_lease(c, W2, 0, 100, "r", 0);
    expect_lease(c, W3, 0, 100, "r", 0);
    assert_int_equal(report(c, "r", 0, W1, "good", true), COORD_PENDING);
    assert_task(c, "r", 0, TASK_RUNNING, 3);
    assert_int_equal(report(c, "r", 0, W2, "forged", true), COORD_PENDING);
    assert_int_equal(report(c, "r", 0, W3, "good", true), COORD_ACCEPTED); /* 2 of 3 agree */
    assert_task(c, "r", 0, TASK_SUCCEEDED, 3);
    assert_string_equal(coord_task_result(c, "r", 0), "good");
    const char *d[4];
    assert_int_equal(coord_dissenters(c, "r", 0, d, 4), 1);
    assert_string_equal(d[0], W2);
}

static void quorum_cuts_the_last_replica_short(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "r", 1, 3), 0);
    expect_lease(c, W1, 0, 100, "r", 0);
    expect_lease(c, W2, 0, 100, "r", 0);
    expect_lease(c, W3, 0, 100, "r", 0);
    assert_int_equal(report(c, "r", 0, W1, "x", true), COORD_PENDING);
    assert_int_equal(report(c, "r", 0, W2, "x", true), COORD_ACCEPTED);
    /* the third need not finish: its lease ended, and its report is late */
    assert_int_equal(coord_worker_leases(c, W3), 0);
    assert_int_equal(report(c, "r", 0, W3, "x", true), COORD_LATE);
    assert_int_equal(coord_dissenters(c, "r", 0, NULL, 0), 0);
}

static void a_split_wants_more_replicas_then_gives_up(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "r", 1, 2), 0); /* quorum 2 of 2 */
    expect_lease(c, W1, 0, 100, "r", 0);
    expect_lease(c, W2, 0, 100, "r", 0);
    uint32_t t;
    assert_int_equal(coord_lease(c, "r", W3, 0, 100, NULL, &t), -EAGAIN); /* both replicas out */
    assert_int_equal(report(c, "r", 0, W1, "a", true), COORD_PENDING);
    assert_int_equal(report(c, "r", 0, W2, "b", true), COORD_PENDING); /* a split */
    assert_task(c, "r", 0, TASK_WAITING, 2);
    /* one more replica is wanted, from a third worker */
    assert_int_equal(coord_lease(c, "r", W1, 0, 100, NULL, &t), -EAGAIN);
    expect_lease(c, W3, 0, 100, "r", 0);
    assert_int_equal(report(c, "r", 0, W3, "b", true), COORD_ACCEPTED); /* b has 2 now */
    assert_string_equal(coord_task_result(c, "r", 0), "b");
    const char *d[2];
    assert_int_equal(coord_dissenters(c, "r", 0, d, 2), 1);
    assert_string_equal(d[0], W1);

    /* all different: more replicas, up to max-replicas (default 2 * 2 = 4), then "no quorum" */
    assert_int_equal(coord_add_job(c, "s", 1, 2), 0);
    const char *ws[] = {W1, W2, W3, W4};
    char res[8];
    for (int i = 0; i < 3; i++) {
        expect_lease(c, ws[i], 0, 100, "s", 0);
        snprintf(res, sizeof(res), "r%d", i);
        assert_int_equal(report(c, "s", 0, ws[i], res, true), COORD_PENDING);
    }
    expect_lease(c, W4, 0, 100, "s", 0);
    coord_verdict_t v;
    assert_int_equal(coord_report_preview(c, "s", 0, W4, "r3", true, &v), 0);
    assert_int_equal(v, COORD_OUTVOTED);
    assert_task(c, "s", 0, TASK_RUNNING, 4); /* a preview changes nothing */
    assert_int_equal(report(c, "s", 0, W4, "r3", true), COORD_OUTVOTED);
    assert_task(c, "s", 0, TASK_FAILED, 4);
    assert_null(coord_task_result(c, "s", 0));
    uint32_t n, agree, wanted;
    assert_int_equal(coord_task_votes(c, "s", 0, &n, &agree, &wanted), 0);
    assert_int_equal(n, 4);
    assert_int_equal(agree, 1);
    assert_int_equal(wanted, 4);
    uint32_t t2;
    assert_int_equal(coord_worker_seen(c, "http://w5", "10.0.0.5", 0), 0);
    assert_int_equal(coord_lease(c, "s", "http://w5", 0, 100, NULL, &t2), -EAGAIN); /* no fifth run */
}

/* replicas 3, quorum 3, max-replicas 4: one liar costs one more run; two liars fail the task. */
static void a_quorum_and_bound_set_per_job(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "q", 2, 3), 0);
    assert_int_equal(coord_set_quorum(c, "q", 4, 0), -EINVAL); /* more than the replicas */
    assert_int_equal(coord_set_quorum(c, "q", 3, 2), -EINVAL); /* a bound below the replicas */
    assert_int_equal(coord_set_quorum(c, "nope", 3, 4), -ENOENT);
    assert_int_equal(coord_set_quorum(c, "q", 3, 4), 0);
    assert_int_equal(coord_job_quorum(c, "q"), 3);
    const char *ws[] = {W1, W2, W3, W4};
    for (int i = 0; i < 3; i++)
        expect_lease(c, ws[i], 0, 100, "q", 0);
    assert_int_equal(report(c, "q", 0, W1, "good", true), COORD_PENDING);
    assert_int_equal(report(c, "q", 0, W2, "bad", true), COORD_PENDING);
    coord_verdict_t v;
    assert_int_equal(coord_report_preview(c, "q", 0, W3, "good", true, &v), 0);
    assert_int_equal(v, COORD_PENDING); /* 2 of 3 agree: not a quorum of 3; a fourth run is wanted */
    assert_int_equal(report(c, "q", 0, W3, "good", true), COORD_PENDING);
    expect_lease(c, W4, 0, 100, "q", 0);
    assert_int_equal(coord_report_preview(c, "q", 0, W4, "good", true, &v), 0);
    assert_int_equal(v, COORD_ACCEPTED);
    assert_int_equal(report(c, "q", 0, W4, "good", true), COORD_ACCEPTED);
    uint32_t n, agree;
    assert_int_equal(coord_task_votes(c, "q", 0, &n, &agree, NULL), 0);
    assert_int_equal(n, 4);
    assert_int_equal(agree, 3);
    /* the records: W2 lied once */
    coord_record_t r;
    assert_true(coord_record(c, W2, &r));
    assert_int_equal(r.valid, 0);
    assert_int_equal(r.invalid, 1);
    assert_int_equal(r.streak, 0);
    assert_true(coord_record(c, W1, &r));
    assert_int_equal(r.valid, 1);
    assert_int_equal(r.streak, 1);
    assert_false(coord_record(c, "http://nobody", &r));
    /* task 1: two liars agree with nobody, and the bound of 4 runs ends it */
    for (int i = 0; i < 3; i++)
        expect_lease(c, ws[i], 0, 100, "q", 1);
    assert_int_equal(report(c, "q", 1, W1, "good", true), COORD_PENDING);
    assert_int_equal(report(c, "q", 1, W2, "bad", true), COORD_PENDING);
    assert_int_equal(report(c, "q", 1, W3, "worse", true), COORD_PENDING);
    expect_lease(c, W4, 0, 100, "q", 1);
    assert_int_equal(report(c, "q", 1, W4, "good", true), COORD_OUTVOTED);
    assert_task(c, "q", 1, TASK_FAILED, 4);
    assert_true(coord_record(c, W1, &r));
    assert_int_equal(r.valid, 1); /* no quorum judges nobody */
    const char *who[8];
    coord_record_t recs[8];
    assert_int_equal(coord_records(c, who, recs, 8), 4);
    /* results of a job of one replica prove nothing: no record moves */
    assert_int_equal(coord_add_job(c, "plain", 1, 1), 0);
    expect_lease(c, W1, 0, 100, "plain", 0);
    assert_int_equal(report(c, "plain", 0, W1, "whatever", true), COORD_ACCEPTED);
    assert_true(coord_record(c, W1, &r));
    assert_int_equal(r.valid, 1);
    /* a worker's record outlives its membership */
    assert_int_equal(coord_worker_drop(c, W2, NULL, NULL), 0);
    assert_true(coord_record(c, W2, &r));
    assert_int_equal(r.invalid, 1);
}

/* Gives worker w a streak of n valid results (each agreed with by W4, on a 2-replica job). */
static void build_streak(coord_t *c, const char *w, uint32_t n)
{
    char job[32];
    snprintf(job, sizeof(job), "warmup-%s", w + 7);
    assert_int_equal(coord_add_job(c, job, n, 2), 0);
    for (uint32_t t = 0; t < n; t++) {
        uint32_t got;
        assert_int_equal(coord_lease(c, job, w, 0, 100, NULL, &got), 0);
        assert_int_equal(coord_lease(c, job, W4, 0, 100, NULL, &got), 0);
        assert_int_equal(report(c, job, got, w, "good", true), COORD_PENDING);
        assert_int_equal(report(c, job, got, W4, "good", true), COORD_ACCEPTED);
    }
    assert_int_equal(coord_remove_job(c, job), 0);
}

/* Adaptive replication: no streak, every task wants 2; a streak of 10 or more makes most tasks
 * single runs (1 - 1/streak, less the spot-check share); one invalid result resets the streak. */
static void adaptive_replication(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "one", 1, 1), 0);
    assert_int_equal(coord_set_adaptive(c, "one", true), -EINVAL); /* needs replicas */
    assert_int_equal(coord_set_adaptive(c, "nope", true), -ENOENT);
    assert_int_equal(coord_add_job(c, "a", 2000, 2), 0);
    assert_int_equal(coord_set_adaptive(c, "a", true), 0);
    /* W1 has no record: its task wants a second replica, from W2 */
    expect_lease(c, W1, 0, 100, "one", 0);
    expect_lease(c, W1, 0, 100, "a", 0);
    expect_lease(c, W2, 0, 100, "a", 0);
    assert_int_equal(report(c, "a", 0, W1, "r", true), COORD_PENDING);
    assert_int_equal(report(c, "a", 0, W2, "r", true), COORD_ACCEPTED);
    /* W3 with a streak of 9 is not trusted yet; with 10 it mostly is */
    build_streak(c, W3, 9);
    uint32_t t, t2;
    assert_int_equal(coord_lease(c, "a", W3, 0, 100, NULL, &t), 0);
    assert_int_equal(coord_lease(c, "a", W2, 0, 100, NULL, &t2), 0);
    assert_int_equal(t2, t); /* the same task: it wants two */
    assert_int_equal(report(c, "a", t, W3, "r", true), COORD_PENDING);
    assert_int_equal(report(c, "a", t, W2, "r", true), COORD_ACCEPTED); /* W3: 10 in a row now */
    uint32_t single = 0, runs = 0;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(coord_lease(c, "a", W3, 0, 100, NULL, &t), 0);
        coord_verdict_t v = report(c, "a", t, W3, "r", true);
        runs++;
        if (v == COORD_ACCEPTED) {
            single++;
            continue;
        }
        assert_int_equal(v, COORD_PENDING); /* replicated: W2 confirms it */
        assert_int_equal(coord_lease(c, "a", W2, 0, 100, NULL, &t2), 0);
        assert_int_equal(t2, t);
        assert_int_equal(report(c, "a", t, W2, "r", true), COORD_ACCEPTED);
        runs++;
    }
    /* about (1 - 1/streak) * (1 - spot): 0.9 * 0.9 at a streak of 10, near 0.9 as it grows */
    if (single < 780 || single > 920)
        fail_msg("%u of 1000 tasks ran once (expected about 870)", single);
    coord_record_t r;
    assert_true(coord_record(c, W3, &r));
    assert_int_equal(r.streak, 10 + (1000 - single)); /* single runs were checked by nobody: not counted */
    /* W3 starts lying: single runs pass unseen, until a replicated (spot-checked) task catches it */
    int caught = -1;
    for (int i = 0; i < 200 && caught < 0; i++) {
        assert_int_equal(coord_lease(c, "a", W3, 0, 100, NULL, &t), 0);
        if (report(c, "a", t, W3, "lie", true) == COORD_ACCEPTED)
            continue;
        assert_int_equal(coord_lease(c, "a", W2, 0, 100, NULL, &t2), 0);
        assert_int_equal(report(c, "a", t, W2, "r", true), COORD_PENDING); /* 1 of 2: a split */
        assert_int_equal(coord_lease(c, "a", W1, 0, 100, NULL, &t2), 0);
        assert_int_equal(t2, t);
        assert_int_equal(report(c, "a", t, W1, "r", true), COORD_ACCEPTED);
        caught = i;
    }
    assert_true(caught >= 0);
    assert_true(coord_record(c, W3, &r));
    assert_int_equal(r.streak, 0);
    assert_int_equal(r.invalid, 1);
    /* reset: its next task is replicated again */
    assert_int_equal(coord_lease(c, "a", W3, 0, 100, NULL, &t), 0);
    assert_int_equal(report(c, "a", t, W3, "r", true), COORD_PENDING);
}

static void failures_agree_too(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "r", 1, 3), 0);
    expect_lease(c, W1, 0, 100, "r", 0);
    expect_lease(c, W2, 0, 100, "r", 0);
    assert_int_equal(report(c, "r", 0, W1, "stderr-1", false), COORD_PENDING);
    /* failed runs agree whatever their stderr */
    assert_int_equal(report(c, "r", 0, W2, "stderr-2", false), COORD_ACCEPTED);
    assert_task(c, "r", 0, TASK_FAILED, 2); /* the third replica was never needed */
}

static void a_lost_replica_is_handed_out_again(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "r", 1, 2), 0);
    expect_lease(c, W1, 0, 100, "r", 0);
    expect_lease(c, W2, 0, 10, "r", 0);
    assert_int_equal(report(c, "r", 0, W1, "x", true), COORD_PENDING);
    assert_int_equal(coord_expire(c, 10, NULL, NULL), 1);
    assert_task(c, "r", 0, TASK_WAITING, 2);
    uint32_t t;
    assert_int_equal(coord_lease(c, "r", W1, 20, 100, NULL, &t), -EAGAIN); /* W1 already reported */
    expect_lease(c, W3, 20, 100, "r", 0);
    assert_int_equal(report(c, "r", 0, W3, "x", true), COORD_ACCEPTED);
}

/* ---- membership ---- */

static void per_host_and_pool_caps(void **state)
{
    (void)state;
    coord_t *c = coord_new(&(coord_opts_t){.max_workers_per_host = 2, .max_workers = 3});
    assert_int_equal(coord_worker_seen(c, "http://h:1", "h", 0), 0);
    assert_int_equal(coord_worker_seen(c, "http://h:2", "h", 0), 0);
    assert_int_equal(coord_worker_seen(c, "http://h:3", "h", 0), -EMFILE);
    assert_int_equal(coord_worker_seen(c, "http://h:1", "h", 5), 0); /* a refresh is not a new one */
    assert_int_equal(coord_host_workers(c, "h"), 2);
    assert_int_equal(coord_worker_seen(c, "http://g:1", "g", 0), 0);
    assert_int_equal(coord_worker_seen(c, "http://f:1", "f", 0), -ENOSPC);
    assert_int_equal(coord_worker_seen(c, "", "f", 0), -EINVAL);
    uint64_t seen = 0;
    assert_true(coord_worker_known(c, "http://h:1", &seen));
    assert_int_equal(seen, 5);
    /* a dropped worker frees its place */
    assert_int_equal(coord_worker_drop(c, "http://h:2", NULL, NULL), 0);
    assert_int_equal(coord_worker_seen(c, "http://h:3", "h", 0), 0);
    coord_free(c);
}

static void dropping_a_worker_releases_its_leases(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "a", 3, 1), 0);
    expect_lease(c, W1, 0, 30000, "a", 0);
    expect_lease(c, W1, 0, 30000, "a", 1);
    expect_lease(c, W2, 0, 30000, "a", 2);
    char log[512] = "";
    assert_int_equal(coord_worker_drop(c, W1, on_ended, log), 2);
    assert_true(strstr(log, "a/0@" W1) && strstr(log, "a/1@" W1));
    assert_counts(c, "a", 2, 1, 0, 0, 0);
    assert_false(coord_worker_known(c, W1, NULL));
    /* at once, not after the 30 s lease: the tasks go to someone else */
    expect_lease(c, W3, 1, 30000, "a", 0);
    /* and whatever the dropped worker says later is refused */
    assert_int_equal(report(c, "a", 1, W1, "r", true), COORD_LATE);
    assert_int_equal(coord_worker_drop(c, W1, NULL, NULL), -ENOENT);
}

static void silent_workers_are_dropped(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "a", 2, 1), 0);
    expect_lease(c, W1, 0, 60000, "a", 0);
    expect_lease(c, W2, 0, 60000, "a", 1);
    assert_int_equal(coord_worker_seen(c, W2, "10.0.0.2", 9000), 0);
    assert_int_equal(coord_worker_seen(c, W3, "10.0.0.3", 9000), 0);
    assert_int_equal(coord_worker_seen(c, W4, "10.0.0.4", 9000), 0);
    char log[512] = "";
    /* silent 10 s: W1 (last seen at 0) goes, the rest stay; "keep" is never dropped */
    assert_int_equal(coord_drop_silent(c, 10000, 10000, W4, on_ended, log), 1);
    assert_string_equal(log, "a/0@" W1 ";");
    assert_false(coord_worker_known(c, W1, NULL));
    assert_true(coord_worker_known(c, W2, NULL));
    assert_int_equal(coord_drop_silent(c, 30000, 10000, W4, NULL, NULL), 2);
    assert_true(coord_worker_known(c, W4, NULL));
    assert_counts(c, "a", 2, 0, 0, 0, 0);
}

/* ---- invariants under random input, and scale ---- */

static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return rnd_state >> 8;
}

/* The status page's queries (pool/web.c): leases in all, a job's leased tasks, tasks' details. */
static void status_queries(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "a", 5, 1), 0);
    assert_int_equal(coord_add_job(c, "b", 2, 2), 0);
    uint32_t t, tasks[8];
    assert_int_equal(coord_leases(c), 0);
    assert_int_equal(coord_job_leased(c, "a", tasks, 8), 0);
    assert_int_equal(coord_job_leased(c, "nope", tasks, 8), 0);
    assert_int_equal(coord_lease(c, "a", W1, 0, 100, NULL, &t), 0); /* a0 */
    assert_int_equal(coord_lease(c, "a", W2, 0, 100, NULL, &t), 0); /* a1 */
    assert_int_equal(coord_lease(c, "a", W2, 0, 100, NULL, &t), 0); /* a2 */
    assert_int_equal(coord_lease(c, "b", W1, 0, 100, NULL, &t), 0); /* b0, two replicas */
    assert_int_equal(coord_lease(c, "b", W3, 0, 100, NULL, &t), 0);
    assert_int_equal(coord_leases(c), 5);
    assert_int_equal(report(c, "a", 1, W2, "r", true), COORD_ACCEPTED);
    assert_int_equal(coord_leases(c), 4);
    /* a has a0 and a2 out; max 1 still counts both */
    assert_int_equal(coord_job_leased(c, "a", tasks, 1), 2);
    assert_int_equal(coord_job_leased(c, "a", tasks, 8), 2);
    assert_true((tasks[0] == 0 && tasks[1] == 2) || (tasks[0] == 2 && tasks[1] == 0));
    const uint32_t ask[] = {0, 1, 2, 3};
    coord_task_info_t info[4];
    assert_int_equal(coord_tasks_info(c, "a", ask, 4, info), 0);
    assert_int_equal(info[0].state, TASK_RUNNING);
    assert_string_equal(info[0].holder, W1);
    assert_int_equal(info[1].state, TASK_SUCCEEDED);
    assert_null(info[1].holder);
    assert_int_equal(info[1].attempts, 1);
    assert_string_equal(info[2].holder, W2);
    assert_int_equal(info[3].state, TASK_WAITING);
    assert_null(info[3].holder);
    const uint32_t bad[] = {1, 5};
    assert_int_equal(coord_tasks_info(c, "a", bad, 2, info), -EINVAL);
    assert_int_equal(info[0].state, TASK_SUCCEEDED); /* filled up to the bad one */
    assert_int_equal(coord_tasks_info(c, "nope", ask, 1, info), -ENOENT);
}

static void check_consistent(coord_t *c, const char *job, uint32_t n)
{
    coord_counts_t k;
    uint32_t by_state[5] = {0};
    assert_int_equal(coord_counts(c, job, &k), 0);
    assert_int_equal(k.total, n);
    for (uint32_t t = 0; t < n; t++) {
        task_state_t st;
        assert_int_equal(coord_task(c, job, t, &st, NULL), 0);
        by_state[st]++;
        const char *h[64];
        size_t nh = coord_holders(c, job, t, h, 64);
        assert_true((st == TASK_RUNNING) == (nh > 0));
    }
    /* the status page's queries agree: the leased list is the running tasks, each once */
    uint32_t leased[64];
    size_t nl = coord_job_leased(c, job, leased, 64);
    assert_int_equal(nl, by_state[TASK_RUNNING]);
    coord_task_info_t info[64];
    assert_int_equal(coord_tasks_info(c, job, leased, nl < 64 ? nl : 64, info), 0);
    for (size_t i = 0; i < nl && i < 64; i++) {
        assert_int_equal(info[i].state, TASK_RUNNING);
        assert_non_null(info[i].holder);
        for (size_t k2 = 0; k2 < i; k2++)
            assert_true(leased[k2] != leased[i]);
    }
    assert_int_equal(by_state[TASK_WAITING], k.waiting);
    assert_int_equal(by_state[TASK_RUNNING], k.running);
    assert_int_equal(by_state[TASK_SUCCEEDED], k.succeeded);
    assert_int_equal(by_state[TASK_FAILED], k.failed);
    assert_int_equal(by_state[TASK_CANCELLED], k.cancelled);
}

static void counts_and_leases_stay_consistent(void **state)
{
    coord_t *c = *state;
    const uint32_t n = 40;
    const char *ws[] = {W1, W2, W3, W4};
    assert_int_equal(coord_add_job(c, "r", n, 3), 0);
    uint64_t now = 0;
    for (int step = 0; step < 20000; step++) {
        uint32_t t = rnd() % n;
        const char *w = ws[rnd() % 4];
        uint32_t got;
        coord_verdict_t v;
        char res[8];
        now += rnd() % 5;
        switch (rnd() % 10) {
        case 0: case 1: case 2: coord_lease(c, NULL, w, now, 1 + rnd() % 20, NULL, &got); break;
        case 3: snprintf(res, sizeof(res), "r%u", rnd() % 2); coord_report(c, "r", t, w, res, rnd() % 4 != 0, &v); break;
        case 4: coord_lost(c, "r", t, w); break;
        case 5: coord_renew(c, "r", t, w, now, 10); break;
        case 6: coord_expire(c, now, NULL, NULL); break;
        case 7: coord_restore(c, "r", t, (task_state_t)(rnd() % 5), rnd() % 4); break;
        case 8:
            (rnd() % 2 ? coord_release(c, "r", t, w) : coord_adopt(c, "r", t, w, rnd() % 2, now, 1 + rnd() % 20));
            break;
        case 9:
            if (rnd() % 200 == 0) {
                coord_worker_drop(c, w, NULL, NULL);
                coord_worker_seen(c, w, w, now);
            }
            break;
        }
        check_consistent(c, "r", n);
        coord_counts_t k;
        coord_counts(c, "r", &k);
        uint64_t d = coord_next_deadline(c);
        assert_true((k.running == 0) == (d == UINT64_MAX));
        uint32_t held = 0;
        for (int i = 0; i < 4; i++)
            held += coord_worker_leases(c, ws[i]);
        uint32_t leases = 0;
        for (uint32_t x = 0; x < n; x++) {
            const char *h[64];
            leases += (uint32_t)coord_holders(c, "r", x, h, 64);
        }
        assert_int_equal(held, leases);
        assert_int_equal(coord_leases(c), leases);
    }
}

/* The CPU time this process has used since t0 (a busy machine does not count). */
static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* ThreadSanitizer (make tsan) makes this 5 to 15 times slower; O(n^2) would still take minutes. */
#define DRAIN_MAX_S_NORMAL 1.0
#define DRAIN_MAX_S_TSAN 15.0
#if defined(__SANITIZE_THREAD__)
#define DRAIN_MAX_S DRAIN_MAX_S_TSAN
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DRAIN_MAX_S DRAIN_MAX_S_TSAN
#endif
#endif
#ifndef DRAIN_MAX_S
#define DRAIN_MAX_S DRAIN_MAX_S_NORMAL
#endif

static void drains_a_large_job_quickly(void **state)
{
    (void)state;
    coord_t *c = coord_new(&(coord_opts_t){.max_leases_per_worker = COORD_MAX_TASKS});
    assert_int_equal(coord_worker_seen(c, "self", "local", 0), 0);
    struct timespec t0;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    assert_int_equal(coord_add_job(c, "big", COORD_MAX_TASKS, 1), 0);
    const char *job;
    uint32_t task;
    for (uint32_t i = 0; i < COORD_MAX_TASKS; i++) {
        assert_int_equal(coord_lease(c, NULL, "self", i, 1000, &job, &task), 0);
        assert_int_equal(task, i);
        coord_verdict_t v;
        assert_int_equal(coord_report(c, job, task, "self", "r", true, &v), 0);
        assert_int_equal(v, COORD_ACCEPTED);
    }
    assert_int_equal(coord_lease(c, NULL, "self", 0, 1000, &job, &task), -EAGAIN);
    assert_true(coord_job_over(c, "big"));
    /* expire: all handed out, every other lease short, walked once, in order after */
    assert_int_equal(coord_add_job(c, "big2", COORD_MAX_TASKS, 1), 0);
    for (uint32_t i = 0; i < COORD_MAX_TASKS; i++)
        assert_int_equal(coord_lease(c, "big2", "self", 0, i % 2 ? 10 : 1000, NULL, &task), 0);
    assert_int_equal(coord_expire(c, 10, NULL, NULL), COORD_MAX_TASKS / 2);
    for (uint32_t i = 1; i < COORD_MAX_TASKS; i += 2) {
        assert_int_equal(coord_lease(c, "big2", "self", 20, 1000, NULL, &task), 0);
        assert_int_equal(task, i);
    }
    assert_true(seconds_since(&t0) < DRAIN_MAX_S); /* O(n^2) would take minutes */
    coord_free(c);
}

static void names(void **state)
{
    (void)state;
    assert_string_equal(coord_state_name(TASK_WAITING), "waiting");
    assert_string_equal(coord_state_name(TASK_CANCELLED), "cancelled");
    assert_string_equal(coord_state_name((task_state_t)42), "unknown");
    assert_string_equal(coord_verdict_name(COORD_LATE), "late");
    assert_string_equal(coord_verdict_name(COORD_ACCEPTED), "accepted");
}

/* What fits on a peer: free slots, bounded by what --memory and --disk leave. */
static void room_for_tasks(void **state)
{
    (void)state;
    const uint64_t M = 1ull << 20;
    coord_room_t r = {.slots = 4};
    assert_int_equal(coord_room_for(&r, 512 * M, 1024 * M), 4); /* no totals: the slots alone */
    r.slots_used = 4;
    assert_int_equal(coord_room_for(&r, M, M), 0);
    r.slots_used = 5; /* more in use than slots (--slots lowered): none, not a wrap */
    assert_int_equal(coord_room_for(&r, M, M), 0);
    r = (coord_room_t){.slots = 4, .memory_total = 1024 * M};
    assert_int_equal(coord_room_for(&r, 256 * M, 0), 4);
    assert_int_equal(coord_room_for(&r, 300 * M, 0), 3);
    assert_int_equal(coord_room_for(&r, 2048 * M, 0), 0); /* bigger than all of it: never */
    r.memory_used = 900 * M;
    assert_int_equal(coord_room_for(&r, 100 * M, 0), 1);
    assert_int_equal(coord_room_for(&r, 200 * M, 0), 0);
    r.memory_used = 2000 * M; /* over (a total lowered meanwhile): none */
    assert_int_equal(coord_room_for(&r, M, 0), 0);
    r = (coord_room_t){.slots = 8, .slots_used = 1, .memory_total = 8192 * M, .memory_used = 1024 * M,
                       .disk_total = 10240 * M, .disk_used = 4096 * M};
    assert_int_equal(coord_room_for(&r, 1024 * M, 2048 * M), 3); /* the disk is the bound */
    assert_int_equal(coord_room_for(&r, 4096 * M, M), 1);        /* the memory is */
    assert_int_equal(coord_room_for(&r, M, M), 7);               /* the slots are */
}

/* A submitter that restarted holds no lease; a volunteer that ran a task before comes with its
 * report (docs/reliability.md): it takes the lease if the task still wants a replica of it. */
static void a_report_without_a_lease_is_adopted_while_the_task_waits(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "a", 3, 1), 0);
    assert_int_equal(coord_restore(c, "a", 0, TASK_RUNNING, 1), 0); /* the restart: running waits again */
    assert_task(c, "a", 0, TASK_WAITING, 1);
    assert_int_equal(coord_holds(c, "a", 0, W1), -EPERM);
    assert_int_equal(report(c, "a", 0, W1, "r", true), COORD_LATE); /* as before: no lease, no report */
    assert_int_equal(coord_adopt(c, "a", 0, W1, true, 10, 100), 0);
    assert_task(c, "a", 0, TASK_RUNNING, 2);
    assert_int_equal(coord_holds(c, "a", 0, W1), 0);
    assert_int_equal(coord_adopt(c, "a", 0, W1, true, 20, 100), 0); /* held already: nothing changes */
    assert_task(c, "a", 0, TASK_RUNNING, 2);
    assert_int_equal(coord_worker_leases(c, W1), 1);
    assert_int_equal(coord_next_deadline(c), 110);
    /* held by W1 now: W2 cannot take it, and a lease request does not hand it out */
    assert_int_equal(coord_adopt(c, "a", 0, W2, true, 20, 100), -EAGAIN);
    expect_lease(c, W2, 20, 100, "a", 1);
    assert_int_equal(report(c, "a", 0, W1, "r", true), COORD_ACCEPTED);
    assert_task(c, "a", 0, TASK_SUCCEEDED, 2);
    /* decided: nobody adopts it */
    assert_int_equal(coord_adopt(c, "a", 0, W3, true, 30, 100), -EAGAIN);
    assert_int_equal(coord_adopt(c, "a", 0, W1, true, 30, 100), -EAGAIN);
    /* a lease that expired, on a task nobody took since: its worker's late run counts */
    expect_lease(c, W3, 30, 100, "a", 2);
    assert_int_equal(coord_expire(c, 130, NULL, NULL), 2); /* W2's task 1, W3's task 2 */
    assert_int_equal(coord_adopt(c, "a", 2, W3, false, 140, 100), 0); /* W3's lease ran out */
    assert_int_equal(report(c, "a", 2, W3, "r", true), COORD_ACCEPTED);
    /* unknown worker, job, task; the lease cap */
    assert_int_equal(coord_adopt(c, "a", 1, "http://10.9.9.9:1", true, 150, 100), -ENOENT);
    assert_int_equal(coord_adopt(c, "b", 1, W2, true, 150, 100), -ENOENT);
    assert_int_equal(coord_adopt(c, "a", 3, W2, true, 150, 100), -ENOENT);
    assert_int_equal(coord_worker_cap(c, W4, 1), 0);
    assert_int_equal(coord_add_job(c, "b", 2, 1), 0);
    expect_lease(c, W4, 150, 100, "a", 1);
    assert_int_equal(coord_adopt(c, "b", 1, W4, true, 150, 100), -EDQUOT);
    assert_counts(c, "a", 0, 1, 2, 0, 0);
}

/* Replicas: an adopted run is one more vote, never a second vote of the same worker. */
static void an_adopted_replica_votes_once(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "r", 1, 2), 0);
    expect_lease(c, W1, 0, 100, "r", 0);
    assert_int_equal(report(c, "r", 0, W1, "x", true), COORD_PENDING);
    assert_int_equal(coord_adopt(c, "r", 0, W1, true, 10, 100), -EAGAIN); /* it reported already */
    assert_int_equal(coord_adopt(c, "r", 0, W2, true, 10, 100), 0);
    assert_int_equal(coord_adopt(c, "r", 0, W3, true, 10, 100), -EAGAIN); /* both replicas are taken */
    assert_int_equal(report(c, "r", 0, W2, "x", true), COORD_ACCEPTED);
    assert_task(c, "r", 0, TASK_SUCCEEDED, 2);
}

/* Outside the restart window (any false) a worker adopts only a task whose lease of its ran out
 * last: a key does not pick a task it was never handed, nor one that went to another since. */
static void a_worker_adopts_only_a_task_it_was_handed(void **state)
{
    coord_t *c = *state;
    assert_int_equal(coord_add_job(c, "a", 2, 1), 0);
    assert_int_equal(coord_adopt(c, "a", 1, W2, false, 0, 100), -EPERM); /* never handed it */
    assert_task(c, "a", 1, TASK_WAITING, 0);
    expect_lease(c, W1, 0, 100, "a", 0);
    assert_int_equal(coord_expire(c, 100, NULL, NULL), 1);
    assert_int_equal(coord_adopt(c, "a", 0, W2, false, 110, 100), -EPERM); /* W1's ran out, not W2's */
    assert_int_equal(coord_adopt(c, "a", 0, W2, true, 110, 100), 0);      /* after a restart: any */
    assert_int_equal(coord_release(c, "a", 0, W2), 0);
    assert_int_equal(coord_adopt(c, "a", 0, W1, false, 120, 100), 0);      /* W1's late run counts */
    assert_int_equal(report(c, "a", 0, W1, "r", true), COORD_ACCEPTED);
    assert_int_equal(coord_adopt(c, "a", 1, W1, false, 130, 100), -EPERM); /* its lapse was on task 0 */
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(add_job_checks),
        T(unknown_job_task_and_worker),
        T(lowest_index_first_and_fifo_across_jobs),
        T(report_decides_a_single_replica_task),
        T(expiry_then_reassignment_and_the_late_report),
        T(a_duplicate_report_changes_nothing),
        T(renew_extends_only_the_holders_lease),
        T(release_costs_no_attempt),
        T(lost_retries_then_fails),
        cmocka_unit_test(a_hog_is_capped),
        T(expire_calls_back_with_the_holder),
        T(expire_callback_may_remove_jobs),
        T(cancel_ends_every_lease_and_names_the_holders),
        T(restore_after_a_restart),
        T(a_report_without_a_lease_is_adopted_while_the_task_waits),
        T(an_adopted_replica_votes_once),
        T(a_worker_adopts_only_a_task_it_was_handed),
        T(replicas_go_to_distinct_workers),
        T(quorum_reached_and_the_dissenter_recorded),
        T(quorum_cuts_the_last_replica_short),
        T(a_quorum_and_bound_set_per_job),
        T(adaptive_replication),
        T(a_split_wants_more_replicas_then_gives_up),
        T(failures_agree_too),
        T(a_lost_replica_is_handed_out_again),
        cmocka_unit_test(per_host_and_pool_caps),
        T(dropping_a_worker_releases_its_leases),
        T(silent_workers_are_dropped),
        T(status_queries),
        T(counts_and_leases_stay_consistent),
        cmocka_unit_test(drains_a_large_job_quickly),
        cmocka_unit_test(names),
        cmocka_unit_test(room_for_tasks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
