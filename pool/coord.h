/**
 * @file coord.h  The coordination core: tasks, leases held by workers, replicas and quorum, and
 * pool membership. Sans-I/O: no clock, no sockets, no files, no libuv, curl, JSON or SQLite. Time
 * comes in as now_ms, workers are opaque ids (a peer's URL today, a public key once jobs and
 * results are signed), results are opaque ids (the hex id of a result manifest). So every rule is
 * a function of (state, input, now_ms), tested with plain numbers (tests/unit/test_coord.c).
 *
 * A task's life: WAITING -> RUNNING (one lease per replica, each held by a distinct worker, each
 * ending at now + lease_ms unless renewed) -> SUCCEEDED | FAILED, or CANCELLED with its job.
 * A lease ends in one of four ways:
 *  - a report (coord_report): the worker ran the task and names its result; the reports of a task
 *    are compared by result id and a quorum (default a majority of the job's replicas) decides it. With
 *    replicas = 1 the first report decides. A report that exited non-zero counts as the result
 *    "failed": a quorum of those makes the task FAILED (jobs are deterministic). When every wanted
 *    replica has reported and no result has a quorum (a split), one more replica is wanted, up to
 *    max_replicas (coord_set_quorum: default 2 * replicas); past that the task FAILED ("no
 *    quorum", verdict OUTVOTED). Workers whose result lost are recorded (coord_dissenters), and,
 *    for jobs of 2 or more replicas, every worker's valid and invalid reports counted (coord_record);
 *  - a release (coord_release): leased but never started; costs no attempt;
 *  - a loss (coord_lost, coord_expire, coord_worker_drop): the worker vanished, stopped renewing or
 *    sent something unusable. The task waits again; after max_attempts losses it is FAILED;
 *  - a cancellation of the job (coord_cancel_job): the holders are reported so they can be told.
 * A report from a worker that holds no lease on the task (its lease expired and the task went to
 * someone else, or the task is decided) is LATE and changes nothing; a second report from the same
 * worker is a DUPLICATE and changes nothing: so a late or repeated `done` never replaces an
 * accepted result.
 *
 * Jobs are served first-added-first, lowest task index first. Workers must be known
 * (coord_worker_seen) before they lease; each holds at most max_leases_per_worker leases at once,
 * and at most max_workers_per_host workers share one host (caps on what one peer can make us hold).
 *
 * Errors are 0 or -errno: -EINVAL (bad argument), -ENOENT (no such job, task or worker), -EPERM
 * (the worker holds no lease on that task), -EDQUOT (the worker is at its lease cap), -EMFILE (its
 * host is at its worker cap), -ENOSPC (the pool is at its worker cap), -EEXIST.
 * Borrowed strings returned (job ids, worker ids, result ids) stay valid until the job is removed
 * or the worker forgotten, whichever the string belongs to.
 */
#ifndef PREON_POOL_COORD_H
#define PREON_POOL_COORD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef COORD_MAX_TASKS
#define COORD_MAX_TASKS 100000
#endif
#ifndef COORD_MAX_REPLICAS
#define COORD_MAX_REPLICAS 16
#endif
#ifndef COORD_MAX_RUNS
#define COORD_MAX_RUNS (2 * COORD_MAX_REPLICAS) /* runs of one task while its reports disagree */
#endif
#ifndef COORD_ADAPTIVE_STREAK
#define COORD_ADAPTIVE_STREAK 10 /* adaptive: valid results in a row before a worker's may stand alone */
#endif
#ifndef COORD_ADAPTIVE_SPOT
#define COORD_ADAPTIVE_SPOT 0.1 /* adaptive: share of tasks replicated whoever takes them (spot checks) */
#endif
#ifndef COORD_MAX_RECORDS_PER_WORKER
#define COORD_MAX_RECORDS_PER_WORKER 4 /* records kept: this many times max_workers (the oldest go) */
#endif
#ifndef COORD_MAX_ID
#define COORD_MAX_ID 512 /* bytes of a job, worker, host or result id */
#endif

typedef enum task_state {
    TASK_WAITING = 0,
    TASK_RUNNING = 1,
    TASK_SUCCEEDED = 2,
    TASK_FAILED = 3,
    TASK_CANCELLED = 4,
} task_state_t;

typedef enum coord_verdict {
    COORD_ACCEPTED = 0, /**< this report decided the task: keep its result (SUCCEEDED or FAILED) */
    COORD_PENDING,      /**< recorded; other replicas must report before the task is decided */
    COORD_DUPLICATE,    /**< this worker reported this task before: nothing changed */
    COORD_LATE,         /**< the worker holds no lease on it (expired, reassigned, decided): refused */
    COORD_OUTVOTED,     /**< the task is decided, and not with this result: keep nothing */
} coord_verdict_t;

typedef struct coord_counts {
    uint32_t total, waiting, running, succeeded, failed, cancelled;
} coord_counts_t;

/** A worker's results as quorums judged them (kept after it leaves; BOINC's consecutive valid). */
typedef struct coord_record {
    uint32_t valid;   /**< reports that agreed with the accepted result */
    uint32_t invalid; /**< reports that disagreed with it */
    uint32_t streak;  /**< valid ones since its last invalid one */
} coord_record_t;

typedef struct coord_opts {
    uint32_t max_attempts;          /**< losses before a task FAILED (default 3) */
    uint32_t max_leases_per_worker; /**< default 64 */
    uint32_t max_workers_per_host;  /**< default 64 */
    uint32_t max_workers;           /**< default 4096 */
    uint64_t seed;                  /**< adaptive replication's draws (0: a fixed seed, for tests) */
} coord_opts_t;

typedef struct coord coord_t;

/** opts may be NULL (defaults); zero fields take their default. Never fails (aborts on OOM). */
coord_t *coord_new(const coord_opts_t *opts);
void coord_free(coord_t *c);

/* ---- jobs ---- */

/** Adds a job of ntasks WAITING tasks, each wanting `replicas` distinct workers. 0, -EEXIST, -EINVAL. */
int coord_add_job(coord_t *c, const char *job_id, uint32_t ntasks, uint32_t replicas);
/**
 * The job's quorum (reports that must agree; 0: a majority of its replicas) and the most runs of
 * one task while its reports disagree (0: 2 * replicas; at most COORD_MAX_RUNS). 0, -ENOENT, -EINVAL.
 */
int coord_set_quorum(coord_t *c, const char *job_id, uint32_t quorum, uint32_t max_replicas);
/**
 * Adaptive replication for the job (it needs replicas >= 2): each task's first hand-out, to a
 * worker whose record shows a streak of at least COORD_ADAPTIVE_STREAK valid results, makes it a
 * single run with probability 1 - 1/streak (unless it is drawn as one of the COORD_ADAPTIVE_SPOT
 * share replicated anyway); that report alone decides it. Every other task wants the job's
 * replicas and quorum. A result that disagrees with a quorum resets its worker's streak to 0; a
 * single run moves no record (nobody checked it), so a streak grows only by checked results.
 * 0, -ENOENT, -EINVAL.
 */
int coord_set_adaptive(coord_t *c, const char *job_id, bool adaptive);
/** Forgets a job (its leases end without callbacks). 0 or -ENOENT. Safe inside coord callbacks. */
int coord_remove_job(coord_t *c, const char *job_id);

/** What a peer gives its tasks in all, and what its running (and asked-for) tasks hold. */
typedef struct coord_room {
    unsigned slots, slots_used;
    uint64_t memory_total, memory_used; /* bytes; memory_total 0: no bound */
    uint64_t disk_total, disk_used;     /* bytes; disk_total 0: no bound */
} coord_room_t;
/**
 * Pure: how many more tasks that each ask for memory and disk bytes fit in r now: the free slots,
 * bounded by the memory and the disk left (a task asking more than the whole total never fits).
 */
unsigned coord_room_for(const coord_room_t *r, uint64_t memory, uint64_t disk);
bool coord_has_job(const coord_t *c, const char *job_id);
/**
 * Marks every unfinished task CANCELLED. cb (may be NULL) is called once per lease that ends, with
 * the worker that held it (to tell it to stop), after the state is final. 0 or -ENOENT.
 */
int coord_cancel_job(coord_t *c, const char *job_id,
                     void (*cb)(void *arg, const char *job_id, uint32_t task, const char *worker), void *arg);
/**
 * Restores a task's state and attempts (from the database at start-up). RUNNING comes back as
 * WAITING (whoever ran it is gone), with attempts counted as losses. 0, -ENOENT, -EINVAL.
 */
int coord_restore(coord_t *c, const char *job_id, uint32_t task, task_state_t state, uint32_t attempts);

/* ---- membership ---- */

/**
 * A worker is in the pool, seen at now_ms, on host (an address: what the per-host cap counts).
 * Adds it or refreshes it. 0, -EINVAL, -EMFILE (host full), -ENOSPC (pool full).
 */
int coord_worker_seen(coord_t *c, const char *worker, const char *host, uint64_t now_ms);
/** Whether the worker is known, and when it was last seen. */
bool coord_worker_known(const coord_t *c, const char *worker, uint64_t *last_seen_ms);
/**
 * Drops a worker: every lease it holds is lost (as coord_lost), cb (may be NULL) is called per
 * lease, after the state is final. The worker is forgotten. Returns the leases lost, or -ENOENT.
 */
int coord_worker_drop(coord_t *c, const char *worker,
                      void (*cb)(void *arg, const char *job_id, uint32_t task, const char *worker), void *arg);
/** Drops every worker last seen before now_ms - silent_ms, except `keep` (may be NULL). Returns how many. */
size_t coord_drop_silent(coord_t *c, uint64_t now_ms, uint64_t silent_ms, const char *keep,
                         void (*cb)(void *arg, const char *job_id, uint32_t task, const char *worker), void *arg);
/** Sets one worker's own lease cap (our own slots: their count). 0 or -ENOENT. */
int coord_worker_cap(coord_t *c, const char *worker, uint32_t cap);
/** Leases the worker holds now (0 if unknown). */
uint32_t coord_worker_leases(const coord_t *c, const char *worker);
/** Workers known on host. */
uint32_t coord_host_workers(const coord_t *c, const char *host);

/* ---- leases ---- */

/**
 * Hands the worker one task that wants a replica it does not already hold or have reported:
 * within job_id, or (job_id NULL) from the oldest job that has one. The task is RUNNING under a
 * lease until now_ms + lease_ms. 0 with *task (and *job_out, borrowed, if not NULL) set;
 * -EAGAIN if nothing waits for this worker; -EDQUOT at its lease cap; -ENOENT unknown worker or job.
 */
int coord_lease(coord_t *c, const char *job_id, const char *worker, uint64_t now_ms, uint64_t lease_ms,
                const char **job_out, uint32_t *task);
/**
 * The worker comes with a run of a task it holds no lease on: its submitter restarted since it
 * handed the task out (leases are not kept across a restart: the caller passes any, for a while
 * after its start), or its lease on the task ran out (coord_expire; the last worker so, only). If
 * the task still wants a replica the worker is not part of, the worker takes a lease on it now
 * (until now_ms + lease_ms; an attempt, as coord_lease counts), so that its report counts as any
 * other. 0 (also if it holds one already); -EPERM if !any and its lease on the task was not the
 * last to run out (a worker does not pick a task it was not handed); -EAGAIN if the task wants no
 * replica of it (decided, held by others, or it reported it already); -EDQUOT at its lease cap;
 * -ENOENT unknown worker, job or task.
 */
int coord_adopt(coord_t *c, const char *job_id, uint32_t task, const char *worker, bool any, uint64_t now_ms,
                uint64_t lease_ms);
/** Extends the worker's lease on the task to now_ms + lease_ms. 0, -ENOENT, -EPERM. */
int coord_renew(coord_t *c, const char *job_id, uint32_t task, const char *worker, uint64_t now_ms,
                uint64_t lease_ms);
/** 0 if the worker holds a lease on the task now, else -ENOENT or -EPERM. */
int coord_holds(const coord_t *c, const char *job_id, uint32_t task, const char *worker);
/** Leased but never started: the lease ends and no attempt is counted. 0, -ENOENT, -EPERM. */
int coord_release(coord_t *c, const char *job_id, uint32_t task, const char *worker);
/** The worker's lease is lost (not the task's fault): see the top. 0, -ENOENT, -EPERM. */
int coord_lost(coord_t *c, const char *job_id, uint32_t task, const char *worker);
/**
 * The worker ran the task: result_id names its result (any non-empty id; ids are compared as
 * strings), ok = exited 0. *verdict says what to do with it (see coord_verdict_t). Returns 0 (with
 * *verdict set), -ENOENT or -EINVAL. After ACCEPTED the task is SUCCEEDED or FAILED.
 */
int coord_report(coord_t *c, const char *job_id, uint32_t task, const char *worker, const char *result_id,
                 bool ok, coord_verdict_t *verdict);
/** What coord_report would answer now, changing nothing. Same returns. */
int coord_report_preview(const coord_t *c, const char *job_id, uint32_t task, const char *worker,
                         const char *result_id, bool ok, coord_verdict_t *verdict);
/**
 * Ends every lease that ended at or before now_ms (as coord_lost); cb (may be NULL) per lease,
 * after every state is final. A callback may call back in, even remove jobs. Returns how many.
 */
size_t coord_expire(coord_t *c, uint64_t now_ms,
                    void (*cb)(void *arg, const char *job_id, uint32_t task, const char *worker), void *arg);
/** The earliest end of any lease, or UINT64_MAX. */
uint64_t coord_next_deadline(const coord_t *c);

/* ---- queries ---- */

int coord_counts(const coord_t *c, const char *job_id, coord_counts_t *out);
/** State and attempts (hand-outs) of one task. 0 or -ENOENT. */
int coord_task(const coord_t *c, const char *job_id, uint32_t task, task_state_t *state, uint32_t *attempts);
/** The result id that decided the task (borrowed), or NULL if it is not decided by a report. */
const char *coord_task_result(const coord_t *c, const char *job_id, uint32_t task);
/** Up to max workers whose reports on a decided task lost the vote; returns how many there are. */
size_t coord_dissenters(const coord_t *c, const char *job_id, uint32_t task, const char **workers, size_t max);
/** True once no task of the job is WAITING or RUNNING (an unknown job is not over). */
bool coord_job_over(const coord_t *c, const char *job_id);
/**
 * The task's reports so far, how many agree with the result that decided it (or, undecided, the
 * largest group that agrees), and how many runs it wants now (may be NULL). 0 or -ENOENT.
 */
int coord_task_votes(const coord_t *c, const char *job_id, uint32_t task, uint32_t *reports, uint32_t *agree,
                     uint32_t *wanted);
/** The task's quorum: the job's, or 1 for an adaptive single run (0: no such task). */
uint32_t coord_task_quorum(const coord_t *c, const char *job_id, uint32_t task);
/** The job's quorum (0: no such job). */
uint32_t coord_job_quorum(const coord_t *c, const char *job_id);
/** The worker's record (false: none yet). */
bool coord_record(const coord_t *c, const char *worker, coord_record_t *out);
/** Up to max workers' records, in the order first judged; returns how many there are. */
size_t coord_records(const coord_t *c, const char **workers, coord_record_t *records, size_t max);
/** Workers holding a lease on the task now: up to max of them into workers; returns how many. */
size_t coord_holders(const coord_t *c, const char *job_id, uint32_t task, const char **workers, size_t max);
/** Leases out now, of every job and worker: O(workers). */
uint32_t coord_leases(const coord_t *c);
/**
 * The job's tasks that have leases out now: up to max of their indices into tasks (in no set
 * order); returns how many there are (0 for an unknown job). O(leased tasks of the job).
 */
size_t coord_job_leased(const coord_t *c, const char *job_id, uint32_t *tasks, size_t max);

/** One task as the status page shows it. */
typedef struct coord_task_info {
    task_state_t state;
    uint32_t attempts;
    const char *holder; /**< a worker holding a lease on it now (the first), or NULL (borrowed) */
} coord_task_info_t;
/**
 * out[i] for tasks[i], i < n, with one look-up of the job (what the status page lists costs
 * O(n), not O(n * jobs)). 0, -ENOENT (no such job), -EINVAL (a task out of range: out is
 * filled up to it).
 */
int coord_tasks_info(const coord_t *c, const char *job_id, const uint32_t *tasks, size_t n, coord_task_info_t *out);
const char *coord_state_name(task_state_t st); /**< "waiting", "running", ... */
const char *coord_verdict_name(coord_verdict_t v); /**< "accepted", "pending", ... */

#endif
