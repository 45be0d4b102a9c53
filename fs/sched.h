/**
 * @file sched.h  Sans-I/O task scheduling: which task runs next, leases, retries, counts.
 *
 * Pure logic of (state, input, now_ms): no clock, no I/O, no callbacks into other modules, so it is
 * tested without sockets or timers. Jobs are keyed by their hex id; tasks by index 0..n-1.
 * Task life: WAITING -> RUNNING (under a lease that ends at now + lease_ms) -> SUCCEEDED | FAILED.
 * A running task whose lease expires, or that is "lost" (its worker vanished, the peer restarted),
 * goes back to WAITING and counts an attempt; after max_attempts it is FAILED ("gave up after N
 * attempts"). A task that ran and exited non-zero is FAILED at once (jobs are deterministic).
 * Cancelling a job marks every unfinished task CANCELLED. Jobs are served first-published-first.
 */
#ifndef PREON_FS_SCHED_H
#define PREON_FS_SCHED_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef SCHED_MAX_TASKS
#define SCHED_MAX_TASKS 100000
#endif

typedef enum task_state {
    TASK_WAITING = 0,
    TASK_RUNNING = 1,
    TASK_SUCCEEDED = 2,
    TASK_FAILED = 3,
    TASK_CANCELLED = 4,
} task_state_t;

typedef struct sched_counts {
    uint32_t total, waiting, running, succeeded, failed, cancelled;
} sched_counts_t;

typedef struct sched sched_t;

sched_t *sched_new(void);
void sched_free(sched_t *s);

/** Adds a job with ntasks WAITING tasks. 0, -EEXIST, -EINVAL (ntasks 0 or > SCHED_MAX_TASKS). */
int sched_add_job(sched_t *s, const char *job_id, uint32_t ntasks, uint32_t max_attempts);
/** Forgets a job. 0 or -ENOENT. */
int sched_remove_job(sched_t *s, const char *job_id);
bool sched_has_job(const sched_t *s, const char *job_id);
/** Marks every WAITING or RUNNING task CANCELLED. 0 or -ENOENT. */
int sched_cancel_job(sched_t *s, const char *job_id);

/**
 * Restores a task's state (from the database at start-up). RUNNING is restored as WAITING (the
 * process that ran it is gone). 0, -ENOENT, -EINVAL.
 */
int sched_restore(sched_t *s, const char *job_id, uint32_t task, task_state_t state, uint32_t attempts);

/**
 * Picks the next WAITING task (oldest job first, lowest index first), marks it RUNNING with a lease
 * until now_ms + lease_ms, and returns true with *job_id (borrowed, valid while the job exists) and
 * *task set. false if nothing waits.
 */
bool sched_next(sched_t *s, uint64_t now_ms, uint64_t lease_ms, const char **job_id, uint32_t *task);
/** As sched_next, within one job only (a volunteer asking that job's submitter for work). */
bool sched_next_in(sched_t *s, const char *job_id, uint64_t now_ms, uint64_t lease_ms, uint32_t *task);
/** Extends a RUNNING task's lease to now_ms + lease_ms. 0, -ENOENT, -EINVAL (not running). */
int sched_renew(sched_t *s, const char *job_id, uint32_t task, uint64_t now_ms, uint64_t lease_ms);
/** A RUNNING task finished: ok -> SUCCEEDED, else FAILED. 0, -ENOENT, -EINVAL (not running). */
int sched_finish(sched_t *s, const char *job_id, uint32_t task, bool ok);
/**
 * A RUNNING task handed out but never started (a volunteer leased more than it could run): back to
 * WAITING, and the hand-out does not count as an attempt. 0, -ENOENT, -EINVAL (not running).
 */
int sched_release(sched_t *s, const char *job_id, uint32_t task);
/** A RUNNING task was lost (not its own fault): back to WAITING, or FAILED after max_attempts. */
int sched_lost(sched_t *s, const char *job_id, uint32_t task);
/**
 * Expires leases that ended at or before now_ms (as sched_lost). Calls cb for each expired task
 * (may be NULL). Returns how many expired.
 */
size_t sched_expire(sched_t *s, uint64_t now_ms, void (*cb)(void *arg, const char *job_id, uint32_t task),
                    void *arg);
/** The earliest lease end of any RUNNING task, or UINT64_MAX. */
uint64_t sched_next_deadline(const sched_t *s);

int sched_counts(const sched_t *s, const char *job_id, sched_counts_t *out);
/** State and attempts of one task. 0 or -ENOENT. */
int sched_task(const sched_t *s, const char *job_id, uint32_t task, task_state_t *state, uint32_t *attempts);
/** True once no task of the job is WAITING or RUNNING. */
bool sched_job_over(const sched_t *s, const char *job_id);
const char *sched_state_name(task_state_t st); /**< "waiting", "running", ... */

#endif
