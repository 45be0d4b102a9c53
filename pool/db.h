/**
 * @file db.h  The peer's records in SQLite (WAL mode): jobs, their manifests, tasks, rejected jobs.
 *
 * Survives kill -9 at any instant: every call is one transaction. synchronous=NORMAL in WAL mode:
 * a process crash loses nothing; a power loss may lose the last commits, never corrupts.
 * Calls are blocking and run on the loop thread: usually tens of microseconds (no fsync per commit in
 * WAL/NORMAL), but a commit that runs the WAL auto-checkpoint, or writes a big manifest, takes
 * milliseconds (tests/bench/bench_db.sh; docs/performance.md): moving them off the loop is open.
 * Schema in docs/formats.md. All functions return 0 or -errno (-EIO for an SQLite error, logged).
 */
#ifndef PREON_POOL_DB_H
#define PREON_POOL_DB_H
#include <stddef.h>
#include <stdint.h>

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

/** A job directory that could not be published, and why (by its name in jobs/). */
int db_rejected_put(db_t *db, const char *name, const char *reason);
int db_rejected_delete(db_t *db, const char *name);
int db_rejected_load(db_t *db, int (*cb)(void *arg, const char *name, const char *reason), void *arg);

#endif
