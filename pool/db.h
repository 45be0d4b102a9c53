/**
 * @file db.h  The peer's records in SQLite (WAL mode): jobs, their manifests, tasks, rejected jobs.
 *
 * Two ways in:
 *  - direct calls (db_job_insert, the loads, ...): blocking, one transaction each. For start-up (the
 *    restore), tests and tools; refused (-EBUSY) while the writer thread runs.
 *  - posted writes (db_post_*), once db_writer_start ran: the loop thread queues them and goes on;
 *    one writer thread commits everything queued so far as one transaction, in the order posted, and
 *    then calls each write's callback on the loop with its result. A commit costs tens of
 *    microseconds, but one that runs the WAL auto-checkpoint or writes a big manifest takes
 *    milliseconds (tests/bench/bench_db.sh): so none of it runs on the loop. Before the writer
 *    starts, a post runs at once and calls back before it returns.
 * Crash safety: synchronous=NORMAL in WAL mode; every commit is whole or absent after kill -9, and a
 * power loss may lose the last commits, never corrupt. A posted write is durable once its callback
 * runs: callers that must not act before the record exists (a publish moves the job's tree only
 * then; a removed job's files go only once its row has) wait for it; the others (a task's outcome,
 * a job's end) may be lost to a kill -9 in the milliseconds before the commit, which only makes
 * that work run again after the restart.
 * Schema in docs/formats.md. All functions return 0 or -errno (-EIO for an SQLite error, logged).
 */
#ifndef PREON_POOL_DB_H
#define PREON_POOL_DB_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct db db_t;

typedef enum db_job_state {
    DB_JOB_ACTIVE = 0,
    DB_JOB_DONE = 1,      /**< every task succeeded */
    DB_JOB_FAILED = 2,    /**< over, at least one task failed */
    DB_JOB_CANCELLED = 3,
} db_job_state_t;

typedef struct db_job {
    const char *id;       /**< 64 hex */
    const char *name;
    db_job_state_t state;
    int64_t created_ms;
    const char *manifest; /**< canonical bytes */
    size_t manifest_len;
} db_job_t;

typedef struct db_task {
    const char *job_id;
    uint32_t index;
    int state;            /**< task_state_t */
    uint32_t attempts;
    int exit_code;
    int64_t elapsed_ms;
    const char *reason;   /**< may be NULL */
    const char *worker;   /**< the key (hex) whose result was accepted; NULL: none (or recorded before it was kept) */
} db_task_t;

/** Opens or creates path (and its schema). */
int db_open(const char *path, db_t **out);
void db_close(db_t *db);

/** Inserts a job (and nothing else). -EEXIST if the id or the name is taken. */
int db_job_insert(db_t *db, const db_job_t *job);
int db_job_set_state(db_t *db, const char *job_id, db_job_state_t state);
/** Deletes the job and its tasks. 0 or -ENOENT. */
int db_job_delete(db_t *db, const char *job_id);
/** Calls cb for each job, oldest first. Pointers are valid during the call only. Stops if cb != 0. */
int db_jobs_load(db_t *db, int (*cb)(void *arg, const db_job_t *job), void *arg);

/** Inserts or replaces one task's record. */
int db_task_put(db_t *db, const db_task_t *task);
/** Calls cb for each recorded task of the job, by index. */
int db_tasks_load(db_t *db, const char *job_id, int (*cb)(void *arg, const db_task_t *task), void *arg);

/**
 * A volunteer's finished result of another peer's job, kept until its submitter has it (so that a
 * volunteer killed or stopped meanwhile still has it when it and the submitter are back).
 */
typedef struct db_outbox {
    const char *job_id;   /**< 64 hex */
    uint32_t task;
    const char *manifest; /**< the result manifest's canonical bytes */
    size_t manifest_len;
    const char *report;   /**< the done report's query: its head, then the result inline (may be empty) */
    size_t head_len;      /**< the head's length: the report without the inline result */
    int64_t created_ms;   /**< wall clock, ms since the epoch: how long it has been kept */
} db_outbox_t;

/** Calls cb for each kept result, oldest first. Pointers are valid during the call only. */
int db_outbox_load(db_t *db, int (*cb)(void *arg, const db_outbox_t *o), void *arg);

/** A job directory that could not be published, and why (by its name in jobs/). */
int db_rejected_put(db_t *db, const char *name, const char *reason);
int db_rejected_delete(db_t *db, const char *name);
int db_rejected_load(db_t *db, int (*cb)(void *arg, const char *name, const char *reason), void *arg);


/* ---- the writer thread and posted writes (see the top) ---- */

/** A posted write's result, on the loop thread: 0 or what the direct call would have returned. */
typedef void (*db_done_cb)(void *arg, int rc);

typedef struct db_stats {
    uint64_t batches;      /**< transactions the writer committed */
    uint64_t writes;       /**< writes in them */
    uint64_t batch_max_ns; /**< the longest transaction, with its commit (and any checkpoint) */
    uint64_t full_retries; /**< batches tried again because the disk was full (SQLITE_FULL) */
    bool full;             /**< the writes wait for room on the disk now */
} db_stats_t;

/**
 * For tests: caps the file at its pages now plus extra_pages, so that a write past them fails as it
 * would on a full disk (SQLITE_FULL); a negative extra_pages lifts the cap. May be called while the
 * writer runs (SQLite serializes the connection). 0 or -EIO.
 */
int db_cap_pages(db_t *db, int64_t extra_pages);

/** Hands the connection to a new writer thread; callbacks run on loop. 0, -EINVAL, or -errno. */
int db_writer_start(db_t *db, uv_loop_t *loop);
/**
 * Commits what is queued, ends the thread and calls done (may be NULL) on the loop once it has;
 * at once if no writer runs. Posting after this call is a bug. db_close only after done.
 */
void db_writer_stop(db_t *db, void (*done)(void *arg), void *arg);
bool db_writer_running(const db_t *db);
void db_writer_stats(db_t *db, db_stats_t *out);

/* Each copies what it needs before returning; cb may be NULL. */

/** As db_job_insert (job->state must be DB_JOB_ACTIVE); takes manifest (malloc'd, job->manifest_len bytes). */
void db_post_job_insert(db_t *db, const db_job_t *job, void *manifest, db_done_cb cb, void *arg);
void db_post_job_state(db_t *db, const char *job_id, db_job_state_t state, db_done_cb cb, void *arg);
void db_post_job_delete(db_t *db, const char *job_id, db_done_cb cb, void *arg);
void db_post_task_put(db_t *db, const db_task_t *task, db_done_cb cb, void *arg);
/** Inserts or replaces a kept result (copies it all); -EINVAL if head_len passes the report. */
void db_post_outbox_put(db_t *db, const db_outbox_t *o, db_done_cb cb, void *arg);
/** Deletes a kept result: 0 or -ENOENT. */
void db_post_outbox_delete(db_t *db, const char *job_id, uint32_t task, db_done_cb cb, void *arg);

#endif
