/*
 * db.c: the peer's records (jobs, manifests, task outcomes, rejected job directories) in SQLite.
 *
 * One connection, used by one thread at a time: the caller's (start-up, tests) until db_writer_start,
 * then only the writer thread's, which commits posted writes in batches (one transaction for all
 * that queued while the previous one committed). WAL with synchronous=NORMAL: a commit is appended
 * to the WAL without an fsync, so it survives kill -9, and a power loss can drop only the last
 * commits, never corrupt the file. Every statement is
 * prepared once in db_open and reused with sqlite3_reset, because db_task_put runs on every task
 * state change. SQLite errors are logged with sqlite3_errmsg and become -EIO; constraint errors
 * that mean something to the caller become -EEXIST (a taken id or name) or -ENOENT (a task of an
 * unknown job). Rows read back are checked against the ranges of the C types they fill, since the
 * file is input like any other.
 *
 * Schema version 3 (PRAGMA user_version), described in docs/formats.md:
 *   jobs(id, name UNIQUE, state, created_ms, manifest, seq)  seq orders jobs oldest first
 *   tasks(job_id -> jobs ON DELETE CASCADE, idx, state, attempts, exit_code, elapsed_ms, reason,
 *         worker)  worker: the key whose result was accepted (version 2; a version 1 file gains it)
 *   rejected(name, reason)
 *   outbox(job_id, idx, manifest, report, head_len, created_ms)  a volunteer's finished results of
 *         other peers' jobs, kept until their submitters have them (version 3; older files gain it)
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "pool/db.h"

#define DB_SCHEMA_VERSION 3
#ifndef DB_BUSY_TIMEOUT_MS
#define DB_BUSY_TIMEOUT_MS 5000 /* only another process on the same file (a second preon) waits */
#endif
#ifndef DB_BATCH_MAX
#define DB_BATCH_MAX 1024 /* writes per transaction of the writer thread */
#endif
#ifndef DB_FULL_RETRY_MS
#define DB_FULL_RETRY_MS 1000 /* a batch the full disk refused is tried again this often */
#endif
#ifndef DB_BATCH_BYTES
#define DB_BATCH_BYTES (4u << 20) /* manifest bytes per transaction (one bigger manifest goes alone) */
#endif

enum {
    ST_JOB_INSERT,
    ST_JOB_SET_STATE,
    ST_JOB_DELETE,
    ST_JOBS_LOAD,
    ST_TASK_PUT,
    ST_TASKS_LOAD,
    ST_REJ_PUT,
    ST_REJ_DELETE,
    ST_REJ_LOAD,
    ST_OUTBOX_PUT,
    ST_OUTBOX_DELETE,
    ST_OUTBOX_LOAD,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_JOB_INSERT] = "INSERT INTO jobs(id, name, state, created_ms, manifest, seq) VALUES "
                      "(?1, ?2, ?3, ?4, ?5, (SELECT coalesce(max(seq), 0) + 1 FROM jobs))",
    [ST_JOB_SET_STATE] = "UPDATE jobs SET state = ?2 WHERE id = ?1",
    [ST_JOB_DELETE] = "DELETE FROM jobs WHERE id = ?1",
    [ST_JOBS_LOAD] = "SELECT id, name, state, created_ms, manifest FROM jobs ORDER BY seq, rowid",
    [ST_TASK_PUT] = "INSERT OR REPLACE INTO tasks(job_id, idx, state, attempts, exit_code, elapsed_ms, "
                    "reason, worker) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_TASKS_LOAD] = "SELECT idx, state, attempts, exit_code, elapsed_ms, reason, worker FROM tasks "
                      "WHERE job_id = ?1 ORDER BY idx",
    [ST_REJ_PUT] = "INSERT OR REPLACE INTO rejected(name, reason) VALUES (?1, ?2)",
    [ST_REJ_DELETE] = "DELETE FROM rejected WHERE name = ?1",
    [ST_REJ_LOAD] = "SELECT name, reason FROM rejected ORDER BY name",
    [ST_OUTBOX_PUT] = "INSERT OR REPLACE INTO outbox(job_id, idx, manifest, report, head_len, created_ms) VALUES "
                      "(?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_OUTBOX_DELETE] = "DELETE FROM outbox WHERE job_id = ?1 AND idx = ?2",
    [ST_OUTBOX_LOAD] = "SELECT job_id, idx, manifest, report, head_len, created_ms FROM outbox ORDER BY created_ms",
};

#define OUTBOX_SQL                                                                                     \
    "CREATE TABLE IF NOT EXISTS outbox("                                                               \
    " job_id TEXT NOT NULL,"                                                                           \
    " idx INTEGER NOT NULL,"                                                                           \
    " manifest BLOB NOT NULL,"                                                                         \
    " report TEXT NOT NULL,"                                                                           \
    " head_len INTEGER NOT NULL,"                                                                      \
    " created_ms INTEGER NOT NULL,"                                                                    \
    " PRIMARY KEY(job_id, idx)) WITHOUT ROWID;"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS jobs("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " state INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " manifest BLOB NOT NULL,"
    " seq INTEGER);"
    "CREATE TABLE IF NOT EXISTS tasks("
    " job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    " idx INTEGER NOT NULL,"
    " state INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL,"
    " exit_code INTEGER NOT NULL,"
    " elapsed_ms INTEGER NOT NULL,"
    " reason TEXT,"
    " worker TEXT,"
    " PRIMARY KEY(job_id, idx)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS rejected("
    " name TEXT PRIMARY KEY,"
    " reason TEXT NOT NULL);"
    OUTBOX_SQL
    "PRAGMA user_version = 3;";

/* From version 1: the key that produced each accepted result. */
static const char upgrade_1_sql[] = "ALTER TABLE tasks ADD COLUMN worker TEXT;";
/* From version 2: the volunteer's outbox. */
static const char upgrade_2_sql[] = OUTBOX_SQL "PRAGMA user_version = 3;";

typedef enum op_kind { OP_JOB_INSERT, OP_JOB_STATE, OP_JOB_DELETE, OP_TASK_PUT, OP_OUTBOX_PUT, OP_OUTBOX_DELETE } op_kind_t;

/* One posted write: the strings and the manifest are its own copies. */
typedef struct dbop {
    struct dbop *next;
    op_kind_t kind;
    char *a, *b;      /* job id; the job's name (insert) or the task's reason (task put) */
    char *c;          /* the task's worker (task put) */
    void *blob;       /* a job's manifest */
    size_t blob_len;
    int64_t v;        /* a job's state or created_ms */
    db_task_t task;   /* job_id and reason point into a and b */
    db_outbox_t out;  /* job_id, report and manifest point into a, b and blob */
    db_done_cb cb;
    void *arg;
    int rc;
} dbop_t;

struct db {
    sqlite3 *sql;
    char *path;
    sqlite3_stmt *st[ST_COUNT];
    /* the writer thread (db_writer_start .. db_writer_stop) and what it shares with the loop */
    bool running;      /* loop thread only: the writer owns the connection */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    dbop_t *todo, **todo_tail; /* posted, not yet taken: mu */
    dbop_t *done, **done_tail; /* finished, callbacks due on the loop: mu */
    bool quit, quitted;        /* mu */
    uv_async_t *async;
    void (*stopped)(void *arg);
    void *stopped_arg;
    db_stats_t stats;          /* mu */
    bool full_logged;          /* writer: the disk is full, said once (until a commit succeeds again) */
};

/* Logs an SQLite failure and maps it to -ENOSPC (the disk is full: SQLITE_FULL) or -EIO. The
 * writer thread logs a full disk once per spell itself (db->full_logged). */
static int fail(db_t *db, const char *what, int rc)
{
    bool full = (rc & 0xff) == SQLITE_FULL;
    if (!full || !db->full_logged)
        log_error("db %s: %s: %s (%d)", db->path, what, db->sql ? sqlite3_errmsg(db->sql) : sqlite3_errstr(rc),
                  rc);
    return full ? -ENOSPC : -EIO;
}

static int exec_sql(db_t *db, const char *sql)
{
    int rc = sqlite3_exec(db->sql, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : fail(db, sql, rc);
}

/* Runs a one-row PRAGMA query and returns its first column as an integer or text. */
static int pragma_query(db_t *db, const char *sql, int64_t *num, char *text, size_t textlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db->sql, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return fail(db, sql, rc);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        int err = fail(db, sql, rc);
        sqlite3_finalize(st);
        return err;
    }
    if (num)
        *num = sqlite3_column_int64(st, 0);
    if (text) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(text, textlen, "%s", t ? (const char *)t : "");
    }
    sqlite3_finalize(st);
    return 0;
}

/* Creates the schema if the file has none, inside one write transaction so two openers agree. */
static int ensure_schema(db_t *db)
{
    int64_t version = 0;
    int rc = exec_sql(db, "BEGIN IMMEDIATE");
    if (rc < 0)
        return rc;
    if ((rc = pragma_query(db, "PRAGMA user_version", &version, NULL, 0)) < 0)
        goto error;
    if (version == 0) {
        if ((rc = exec_sql(db, schema_sql)) < 0)
            goto error;
    } else if (version == 1 || version == 2) {
        if ((version == 1 && (rc = exec_sql(db, upgrade_1_sql)) < 0) || (rc = exec_sql(db, upgrade_2_sql)) < 0)
            goto error;
        log_info("db %s: schema upgraded from version %lld to %d", db->path, (long long)version, DB_SCHEMA_VERSION);
    } else if (version != DB_SCHEMA_VERSION) {
        log_error("db %s: schema version %lld, this preon knows %d", db->path, (long long)version,
                  DB_SCHEMA_VERSION);
        rc = -EPROTO;
        goto error;
    }
    return exec_sql(db, "COMMIT");

error:
    sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int db_open(const char *path, db_t **out)
{
    char mode[16];
    int rc;

    *out = NULL;
    if (!path)
        return -EINVAL;
    db_t *db = xcalloc(1, sizeof(*db));
    db->path = xstrdup(path);
    pthread_mutex_init(&db->mu, NULL);
    pthread_cond_init(&db->cv, NULL);
    db->todo_tail = &db->todo;
    db->done_tail = &db->done;
    rc = sqlite3_open_v2(path, &db->sql, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        rc = fail(db, "open", rc);
        goto error;
    }
    sqlite3_extended_result_codes(db->sql, 1);
    sqlite3_busy_timeout(db->sql, DB_BUSY_TIMEOUT_MS);
    /* The first statement that reads the file: a file that is not a database fails here. */
    if ((rc = pragma_query(db, "PRAGMA journal_mode=WAL", NULL, mode, sizeof(mode))) < 0)
        goto error;
    if (strcmp(mode, "wal") != 0) {
        /* Without WAL the kill -9 promise of db.h would not hold as stated: refuse. */
        log_error("db %s: cannot use WAL (journal mode is %s)", path, mode);
        rc = -EIO;
        goto error;
    }
    if ((rc = exec_sql(db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON")) < 0)
        goto error;
    if ((rc = ensure_schema(db)) < 0)
        goto error;
    for (int i = 0; i < ST_COUNT; i++) {
        int src = sqlite3_prepare_v3(db->sql, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &db->st[i], NULL);
        if (src != SQLITE_OK) {
            rc = fail(db, stmt_sql[i], src);
            goto error;
        }
    }
    *out = db;
    return 0;

error:
    db_close(db);
    return rc;
}

void db_close(db_t *db)
{
    if (!db)
        return;
    if (db->running || db->async) {
        log_error("db %s: closed while its writer runs (a bug): left open", db->path);
        return;
    }
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(db->st[i]);
    if (db->sql) {
        int rc = sqlite3_close(db->sql);
        if (rc != SQLITE_OK)
            log_error("db %s: close: %s", db->path, sqlite3_errstr(rc));
    }
    pthread_mutex_destroy(&db->mu);
    pthread_cond_destroy(&db->cv);
    free(db->path);
    free(db);
}

/*
 * Takes a prepared statement for one call. A statement still stepping means a load callback has
 * called the same load again: refused, since resetting it would cut the outer loop short.
 */
static sqlite3_stmt *stmt(db_t *db, int which)
{
    sqlite3_stmt *st = db->st[which];
    return sqlite3_stmt_busy(st) ? NULL : st;
}

static int bind_text(db_t *db, sqlite3_stmt *st, int i, const char *s)
{
    int rc = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
    if (rc == SQLITE_TOOBIG)
        return -EMSGSIZE;
    return rc == SQLITE_OK ? 0 : fail(db, "bind", rc);
}

static int bind_int(db_t *db, sqlite3_stmt *st, int i, int64_t v)
{
    int rc = sqlite3_bind_int64(st, i, v);
    return rc == SQLITE_OK ? 0 : fail(db, "bind", rc);
}

/* Steps a statement that returns no rows, then resets it. Returns the SQLite code of the step. */
static int step_once(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static void reset(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static int do_job_insert(db_t *db, const db_job_t *job)
{
    if (!job || !job->id || !job->name || (!job->manifest && job->manifest_len > 0))
        return -EINVAL;
    if ((unsigned)job->state > DB_JOB_CANCELLED)
        return -EINVAL;
    sqlite3_stmt *st = stmt(db, ST_JOB_INSERT);
    if (!st)
        return -EBUSY;
    int rc;
    if ((rc = bind_text(db, st, 1, job->id)) < 0 || (rc = bind_text(db, st, 2, job->name)) < 0 ||
        (rc = bind_int(db, st, 3, job->state)) < 0 || (rc = bind_int(db, st, 4, job->created_ms)) < 0)
        goto error;
    /* A NULL pointer would bind SQL NULL, which manifest's NOT NULL refuses: bind an empty blob. */
    int src = job->manifest_len > 0
                  ? sqlite3_bind_blob64(st, 5, job->manifest, job->manifest_len, SQLITE_STATIC)
                  : sqlite3_bind_zeroblob(st, 5, 0);
    if (src == SQLITE_TOOBIG) {
        rc = -EMSGSIZE;
        goto error;
    }
    if (src != SQLITE_OK) {
        rc = fail(db, "bind manifest", src);
        goto error;
    }
    src = step_once(st);
    if (src == SQLITE_DONE)
        return 0;
    if (src == SQLITE_CONSTRAINT_PRIMARYKEY || src == SQLITE_CONSTRAINT_UNIQUE)
        return -EEXIST;
    return fail(db, "insert job", src);

error:
    reset(st);
    return rc;
}

/* Runs a one-row UPDATE or DELETE keyed by a text; -ENOENT if it touched nothing. */
static int change_one(db_t *db, int which, const char *key, const int64_t *value, const char *what)
{
    if (!key)
        return -EINVAL;
    sqlite3_stmt *st = stmt(db, which);
    if (!st)
        return -EBUSY;
    int rc;
    if ((rc = bind_text(db, st, 1, key)) < 0 || (value && (rc = bind_int(db, st, 2, *value)) < 0)) {
        reset(st);
        return rc;
    }
    rc = step_once(st);
    if (rc != SQLITE_DONE)
        return fail(db, what, rc);
    return sqlite3_changes(db->sql) > 0 ? 0 : -ENOENT;
}

static int do_job_set_state(db_t *db, const char *job_id, db_job_state_t state)
{
    if ((unsigned)state > DB_JOB_CANCELLED)
        return -EINVAL;
    int64_t v = state;
    return change_one(db, ST_JOB_SET_STATE, job_id, &v, "set job state");
}

static int do_job_delete(db_t *db, const char *job_id)
{
    /* foreign_keys=ON makes this delete the job's tasks in the same statement. */
    return change_one(db, ST_JOB_DELETE, job_id, NULL, "delete job");
}

/* Reads an integer column that must fit [lo, hi]; a row outside is a corrupt file. */
static int column_range(db_t *db, sqlite3_stmt *st, int col, int64_t lo, int64_t hi, int64_t *out)
{
    /* type first: reading the value could convert it and make the type meaningless */
    bool ok = sqlite3_column_type(st, col) == SQLITE_INTEGER;
    int64_t v = sqlite3_column_int64(st, col);
    if (!ok || v < lo || v > hi) {
        log_error("db %s: bad value in column %s", db->path, sqlite3_column_name(st, col));
        return -EIO;
    }
    *out = v;
    return 0;
}

static int column_str(db_t *db, sqlite3_stmt *st, int col, bool nullable, const char **out)
{
    *out = (const char *)sqlite3_column_text(st, col);
    if (*out || (nullable && sqlite3_column_type(st, col) == SQLITE_NULL))
        return 0;
    log_error("db %s: bad value in column %s", db->path, sqlite3_column_name(st, col));
    return -EIO;
}

/*
 * The loads step a statement while calling cb, which may call the other functions here (a restore
 * loads each job's tasks from inside the jobs callback). SQLite commits the implicit transaction of
 * a write made meanwhile only when the last active statement ends, that is when the load returns.
 * A callback's non-zero return stops the load and is returned.
 */
static int do_jobs_load(db_t *db, int (*cb)(void *arg, const db_job_t *job), void *arg)
{
    sqlite3_stmt *st = stmt(db, ST_JOBS_LOAD);
    if (!st)
        return -EBUSY;
    int rc;
    for (;;) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE) {
            rc = 0;
            break;
        }
        if (src != SQLITE_ROW) {
            rc = fail(db, "load jobs", src);
            break;
        }
        db_job_t j = {0};
        int64_t state;
        if ((rc = column_str(db, st, 0, false, &j.id)) < 0 || (rc = column_str(db, st, 1, false, &j.name)) < 0 ||
            (rc = column_range(db, st, 2, DB_JOB_ACTIVE, DB_JOB_CANCELLED, &state)) < 0 ||
            (rc = column_range(db, st, 3, INT64_MIN, INT64_MAX, &j.created_ms)) < 0)
            break;
        j.state = (db_job_state_t)state;
        /* column_blob is NULL for an empty blob: hand out "" so manifest is never NULL */
        j.manifest = sqlite3_column_blob(st, 4);
        j.manifest_len = (size_t)sqlite3_column_bytes(st, 4);
        if (!j.manifest)
            j.manifest = "";
        if ((rc = cb(arg, &j)) != 0)
            break;
    }
    reset(st);
    return rc;
}

static int do_task_put(db_t *db, const db_task_t *t)
{
    if (!t || !t->job_id)
        return -EINVAL;
    sqlite3_stmt *st = stmt(db, ST_TASK_PUT);
    if (!st)
        return -EBUSY;
    int rc;
    if ((rc = bind_text(db, st, 1, t->job_id)) < 0 || (rc = bind_int(db, st, 2, t->index)) < 0 ||
        (rc = bind_int(db, st, 3, t->state)) < 0 || (rc = bind_int(db, st, 4, t->attempts)) < 0 ||
        (rc = bind_int(db, st, 5, t->exit_code)) < 0 || (rc = bind_int(db, st, 6, t->elapsed_ms)) < 0 ||
        (rc = bind_text(db, st, 7, t->reason)) < 0 || (rc = bind_text(db, st, 8, t->worker)) < 0) {
        reset(st);
        return rc;
    }
    int src = step_once(st);
    if (src == SQLITE_DONE)
        return 0;
    if (src == SQLITE_CONSTRAINT_FOREIGNKEY)
        return -ENOENT; /* no such job */
    return fail(db, "put task", src);
}

static int do_tasks_load(db_t *db, const char *job_id, int (*cb)(void *arg, const db_task_t *task), void *arg)
{
    if (!job_id)
        return -EINVAL;
    sqlite3_stmt *st = stmt(db, ST_TASKS_LOAD);
    if (!st)
        return -EBUSY;
    int rc = bind_text(db, st, 1, job_id);
    while (rc == 0) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = fail(db, "load tasks", src);
            break;
        }
        db_task_t t = {.job_id = job_id};
        int64_t idx, state, attempts, exit_code;
        if ((rc = column_range(db, st, 0, 0, UINT32_MAX, &idx)) < 0 ||
            (rc = column_range(db, st, 1, INT_MIN, INT_MAX, &state)) < 0 ||
            (rc = column_range(db, st, 2, 0, UINT32_MAX, &attempts)) < 0 ||
            (rc = column_range(db, st, 3, INT_MIN, INT_MAX, &exit_code)) < 0 ||
            (rc = column_range(db, st, 4, INT64_MIN, INT64_MAX, &t.elapsed_ms)) < 0 ||
            (rc = column_str(db, st, 5, true, &t.reason)) < 0 || (rc = column_str(db, st, 6, true, &t.worker)) < 0)
            break;
        t.index = (uint32_t)idx;
        t.state = (int)state;
        t.attempts = (uint32_t)attempts;
        t.exit_code = (int)exit_code;
        rc = cb(arg, &t);
    }
    reset(st);
    return rc;
}

static int do_rejected_put(db_t *db, const char *name, const char *reason)
{
    if (!name || !reason)
        return -EINVAL;
    sqlite3_stmt *st = stmt(db, ST_REJ_PUT);
    if (!st)
        return -EBUSY;
    int rc;
    if ((rc = bind_text(db, st, 1, name)) < 0 || (rc = bind_text(db, st, 2, reason)) < 0) {
        reset(st);
        return rc;
    }
    int src = step_once(st);
    return src == SQLITE_DONE ? 0 : fail(db, "put rejected", src);
}

static int do_rejected_delete(db_t *db, const char *name)
{
    return change_one(db, ST_REJ_DELETE, name, NULL, "delete rejected");
}

static int do_rejected_load(db_t *db, int (*cb)(void *arg, const char *name, const char *reason), void *arg)
{
    sqlite3_stmt *st = stmt(db, ST_REJ_LOAD);
    if (!st)
        return -EBUSY;
    int rc;
    for (;;) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE) {
            rc = 0;
            break;
        }
        if (src != SQLITE_ROW) {
            rc = fail(db, "load rejected", src);
            break;
        }
        const char *name, *reason;
        if ((rc = column_str(db, st, 0, false, &name)) < 0 || (rc = column_str(db, st, 1, false, &reason)) < 0)
            break;
        if ((rc = cb(arg, name, reason)) != 0)
            break;
    }
    reset(st);
    return rc;
}

static int do_outbox_put(db_t *db, const db_outbox_t *o)
{
    if (!o || !o->job_id || !o->report || (!o->manifest && o->manifest_len > 0) || o->head_len > strlen(o->report))
        return -EINVAL;
    sqlite3_stmt *st = stmt(db, ST_OUTBOX_PUT);
    if (!st)
        return -EBUSY;
    int rc;
    if ((rc = bind_text(db, st, 1, o->job_id)) < 0 || (rc = bind_int(db, st, 2, o->task)) < 0 ||
        (rc = bind_text(db, st, 4, o->report)) < 0 || (rc = bind_int(db, st, 5, (int64_t)o->head_len)) < 0 ||
        (rc = bind_int(db, st, 6, o->created_ms)) < 0)
        goto error;
    int src = o->manifest_len > 0 ? sqlite3_bind_blob64(st, 3, o->manifest, o->manifest_len, SQLITE_STATIC)
                                  : sqlite3_bind_zeroblob(st, 3, 0);
    if (src != SQLITE_OK) {
        rc = src == SQLITE_TOOBIG ? -EMSGSIZE : fail(db, "bind outbox manifest", src);
        goto error;
    }
    src = step_once(st);
    return src == SQLITE_DONE ? 0 : fail(db, "put outbox", src);

error:
    reset(st);
    return rc;
}

static int do_outbox_delete(db_t *db, const char *job_id, uint32_t task)
{
    if (!job_id)
        return -EINVAL;
    sqlite3_stmt *st = stmt(db, ST_OUTBOX_DELETE);
    if (!st)
        return -EBUSY;
    int rc;
    if ((rc = bind_text(db, st, 1, job_id)) < 0 || (rc = bind_int(db, st, 2, task)) < 0) {
        reset(st);
        return rc;
    }
    rc = step_once(st);
    if (rc != SQLITE_DONE)
        return fail(db, "delete outbox", rc);
    return sqlite3_changes(db->sql) > 0 ? 0 : -ENOENT;
}

static int do_outbox_load(db_t *db, int (*cb)(void *arg, const db_outbox_t *o), void *arg)
{
    sqlite3_stmt *st = stmt(db, ST_OUTBOX_LOAD);
    if (!st)
        return -EBUSY;
    int rc;
    unsigned bad = 0;
    for (;;) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE) {
            rc = 0;
            break;
        }
        if (src != SQLITE_ROW) {
            rc = fail(db, "load outbox", src);
            break;
        }
        db_outbox_t o = {0};
        int64_t idx, head_len;
        /* a bad row is skipped (and deleted below), not the end of the load: the rows after it are
         * results kept as much as the others */
        if (column_str(db, st, 0, false, &o.job_id) < 0 || column_range(db, st, 1, 0, UINT32_MAX, &idx) < 0 ||
            column_str(db, st, 3, false, &o.report) < 0 || column_range(db, st, 4, 0, INT32_MAX, &head_len) < 0 ||
            column_range(db, st, 5, 0, INT64_MAX / 2, &o.created_ms) < 0 || (size_t)head_len > strlen(o.report)) {
            bad++;
            continue;
        }
        o.task = (uint32_t)idx;
        o.head_len = (size_t)head_len;
        o.manifest = sqlite3_column_blob(st, 2);
        o.manifest_len = (size_t)sqlite3_column_bytes(st, 2);
        if (!o.manifest)
            o.manifest = "";
        if ((rc = cb(arg, &o)) != 0)
            break;
    }
    reset(st);
    if (bad) { /* what the checks above refuse, in SQL */
        log_error("db %s: %u kept results (outbox) are unreadable and are dropped", db->path, bad);
        exec_sql(db, "DELETE FROM outbox WHERE job_id IS NULL OR typeof(job_id) != 'text' OR "
                     "typeof(idx) != 'integer' OR idx < 0 OR idx > 4294967295 OR report IS NULL OR "
                     "typeof(report) != 'text' OR typeof(head_len) != 'integer' OR head_len < 0 OR "
                     "head_len > length(report) OR typeof(created_ms) != 'integer' OR created_ms < 0 OR "
                     "created_ms > 4611686018427387903");
    }
    return rc;
}

/* ---- the calls that run here and now (before db_writer_start, or after db_writer_stop) ---- */

/* While the writer thread owns the connection, a direct call would race it: refused. */
static int owned(const db_t *db)
{
    if (!db)
        return -EINVAL;
    if (db->running) {
        log_error("db %s: called directly while its writer thread runs (a bug)", db->path);
        return -EBUSY;
    }
    return 0;
}

int db_job_insert(db_t *db, const db_job_t *job)
{
    int rc = owned(db);
    return rc ? rc : do_job_insert(db, job);
}

int db_job_set_state(db_t *db, const char *job_id, db_job_state_t state)
{
    int rc = owned(db);
    return rc ? rc : do_job_set_state(db, job_id, state);
}

int db_job_delete(db_t *db, const char *job_id)
{
    int rc = owned(db);
    return rc ? rc : do_job_delete(db, job_id);
}

int db_jobs_load(db_t *db, int (*cb)(void *arg, const db_job_t *job), void *arg)
{
    int rc = owned(db);
    return rc ? rc : do_jobs_load(db, cb, arg);
}

int db_task_put(db_t *db, const db_task_t *task)
{
    int rc = owned(db);
    return rc ? rc : do_task_put(db, task);
}

int db_tasks_load(db_t *db, const char *job_id, int (*cb)(void *arg, const db_task_t *task), void *arg)
{
    int rc = owned(db);
    return rc ? rc : do_tasks_load(db, job_id, cb, arg);
}

int db_rejected_put(db_t *db, const char *name, const char *reason)
{
    int rc = owned(db);
    return rc ? rc : do_rejected_put(db, name, reason);
}

int db_rejected_delete(db_t *db, const char *name)
{
    int rc = owned(db);
    return rc ? rc : do_rejected_delete(db, name);
}

int db_rejected_load(db_t *db, int (*cb)(void *arg, const char *name, const char *reason), void *arg)
{
    int rc = owned(db);
    return rc ? rc : do_rejected_load(db, cb, arg);
}

int db_outbox_load(db_t *db, int (*cb)(void *arg, const db_outbox_t *o), void *arg)
{
    int rc = owned(db);
    return rc ? rc : do_outbox_load(db, cb, arg);
}

int db_cap_pages(db_t *db, int64_t extra_pages)
{
    int64_t pages = 0;
    int rc = pragma_query(db, "PRAGMA page_count", &pages, NULL, 0);
    if (rc)
        return rc;
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld",
             (long long)(extra_pages < 0 ? 4294967294ll : pages + extra_pages));
    int64_t got = 0;
    return pragma_query(db, sql, &got, NULL, 0);
}

/* ---- posted writes and the writer thread ---- */

static int run_op(db_t *db, dbop_t *op)
{
    switch (op->kind) {
    case OP_JOB_INSERT: {
        db_job_t j = {.id = op->a, .name = op->b, .state = DB_JOB_ACTIVE, .created_ms = op->v,
                      .manifest = op->blob, .manifest_len = op->blob_len};
        return do_job_insert(db, &j);
    }
    case OP_JOB_STATE:
        return do_job_set_state(db, op->a, (db_job_state_t)op->v);
    case OP_JOB_DELETE:
        return do_job_delete(db, op->a);
    case OP_TASK_PUT:
        return do_task_put(db, &op->task);
    case OP_OUTBOX_PUT:
        return do_outbox_put(db, &op->out);
    case OP_OUTBOX_DELETE:
        return do_outbox_delete(db, op->a, (uint32_t)op->v);
    }
    return -EINVAL;
}

static void op_free(dbop_t *op)
{
    free(op->a);
    free(op->b);
    free(op->c);
    free(op->blob);
    free(op);
}

/*
 * The writer: takes every write posted so far and commits them as one transaction, in the order
 * they were posted. A write that fails alone (a taken name) fails alone: SQLite undoes that
 * statement only. A failed COMMIT fails the whole batch. Then the callbacks go to the loop.
 */
static void *writer_main(void *arg)
{
    db_t *db = arg;
    pthread_mutex_lock(&db->mu);
    for (;;) {
        while (!db->todo && !db->quit)
            pthread_cond_wait(&db->cv, &db->mu);
        if (!db->todo)
            break;
        /* at most DB_BATCH_MAX writes or bytes per transaction: a publish waits for one batch only */
        dbop_t *batch = db->todo, *last = batch;
        size_t count = 1, bytes = batch->blob_len;
        while (last->next && count < DB_BATCH_MAX && bytes + last->next->blob_len <= DB_BATCH_BYTES) {
            last = last->next;
            count++;
            bytes += last->blob_len;
        }
        db->todo = last->next;
        last->next = NULL;
        if (!db->todo)
            db->todo_tail = &db->todo;
        pthread_mutex_unlock(&db->mu);

        uint64_t t0;
        size_t n;
        for (;;) {
            t0 = uv_hrtime();
            n = 0;
            bool txn = sqlite3_exec(db->sql, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
            bool full = false;
            /* In a transaction the first full write ends it (all is rolled back and tried again).
             * Outside one (BEGIN failed) every write runs and says its own rc, as before: one not
             * run must not be reported done with the rc 0 it was made with. */
            for (dbop_t *op = batch; op && !(full && txn); op = op->next, n++)
                if ((op->rc = run_op(db, op)) == -ENOSPC)
                    full = true;
            if (txn && !full) {
                int rc = sqlite3_exec(db->sql, "COMMIT", NULL, NULL, NULL);
                if (rc != SQLITE_OK) {
                    full = fail(db, "commit", rc) == -ENOSPC;
                    sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
                    for (dbop_t *op = batch; op; op = op->next)
                        op->rc = full ? -ENOSPC : -EIO;
                }
            } else if (txn) {
                sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
            }
            if (!full || !txn)
                break; /* (outside a transaction a write may have been kept: never twice) */
            /* The disk is full: nothing of the batch is kept (rolled back). The same writes, in the
             * same order, are tried again every DB_FULL_RETRY_MS until they fit, the ones posted
             * meanwhile waiting behind them (what waits for its record, a publish, waits too): a
             * record is late, never lost or out of order. Only a stop gives up (-ENOSPC). */
            pthread_mutex_lock(&db->mu);
            if (!db->full_logged) {
                log_error("db %s: the disk is full: the records wait, tried again every %d ms until they fit",
                          db->path, DB_FULL_RETRY_MS);
                db->full_logged = true;
            }
            db->stats.full_retries++;
            db->stats.full = true;
            bool quit = db->quit;
            if (!quit) {
                struct timespec until;
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_nsec += (long)(DB_FULL_RETRY_MS % 1000) * 1000000L;
                until.tv_sec += DB_FULL_RETRY_MS / 1000 + until.tv_nsec / 1000000000L;
                until.tv_nsec %= 1000000000L;
                pthread_cond_timedwait(&db->cv, &db->mu, &until);
                quit = db->quit;
            }
            pthread_mutex_unlock(&db->mu);
            if (quit) { /* stopping: given up, the callbacks say -ENOSPC */
                for (dbop_t *op = batch; op; op = op->next)
                    op->rc = -ENOSPC;
                break;
            }
        }
        uint64_t took = uv_hrtime() - t0;

        pthread_mutex_lock(&db->mu);
        if (db->stats.full && batch->rc != -ENOSPC) {
            log_info("db %s: the writes that waited for room are committed", db->path);
            db->stats.full = false;
            db->full_logged = false;
        }
        db->stats.batches++;
        db->stats.writes += n;
        if (took > db->stats.batch_max_ns)
            db->stats.batch_max_ns = took;
        for (dbop_t *op = batch, *next; op; op = next) {
            next = op->next;
            op->next = NULL;
            if (!op->cb) {
                op_free(op);
                continue;
            }
            *db->done_tail = op;
            db->done_tail = &op->next;
        }
        if (db->done)
            uv_async_send(db->async);
    }
    db->quitted = true;
    pthread_mutex_unlock(&db->mu);
    uv_async_send(db->async);
    return NULL;
}

static void async_closed(uv_handle_t *h)
{
    db_t *db = h->data;
    free(h);
    db->async = NULL;
    if (db->stopped)
        db->stopped(db->stopped_arg);
}

/* On the loop: the callbacks of finished writes, then (once the writer quit) the join. */
static void on_async(uv_async_t *a)
{
    db_t *db = a->data;
    pthread_mutex_lock(&db->mu);
    dbop_t *list = db->done;
    db->done = NULL;
    db->done_tail = &db->done;
    bool quitted = db->quitted;
    pthread_mutex_unlock(&db->mu);
    for (dbop_t *op = list, *next; op; op = next) {
        next = op->next;
        op->cb(op->arg, op->rc);
        op_free(op);
    }
    if (quitted && db->running) {
        pthread_join(db->thread, NULL);
        db->running = false;
        uv_close((uv_handle_t *)db->async, async_closed);
    }
}

int db_writer_start(db_t *db, uv_loop_t *loop)
{
    if (!db || !loop || db->running || db->async)
        return -EINVAL;
    db->async = xcalloc(1, sizeof(*db->async));
    db->async->data = db;
    int rc = uv_async_init(loop, db->async, on_async);
    if (rc) {
        free(db->async);
        db->async = NULL;
        return rc;
    }
    db->quit = db->quitted = false;
    db->stopped = NULL;
    rc = -pthread_create(&db->thread, NULL, writer_main, db);
    if (rc) {
        uv_close((uv_handle_t *)db->async, async_closed);
        return rc;
    }
    db->running = true;
    return 0;
}

void db_writer_stop(db_t *db, void (*done)(void *arg), void *arg)
{
    if (!db->running) {
        if (done)
            done(arg);
        return;
    }
    db->stopped = done;
    db->stopped_arg = arg;
    pthread_mutex_lock(&db->mu);
    db->quit = true;
    pthread_cond_signal(&db->cv);
    pthread_mutex_unlock(&db->mu);
}

bool db_writer_running(const db_t *db) { return db && db->running; }

void db_writer_stats(db_t *db, db_stats_t *out)
{
    pthread_mutex_lock(&db->mu);
    *out = db->stats;
    pthread_mutex_unlock(&db->mu);
}

/* Queues op for the writer, or (no writer) runs it now and calls back before returning. */
static void post(db_t *db, dbop_t *op)
{
    if (!db->running) {
        op->rc = run_op(db, op);
        if (op->cb)
            op->cb(op->arg, op->rc);
        op_free(op);
        return;
    }
    pthread_mutex_lock(&db->mu);
    *db->todo_tail = op;
    db->todo_tail = &op->next;
    pthread_cond_signal(&db->cv);
    pthread_mutex_unlock(&db->mu);
}

static dbop_t *op_new(op_kind_t kind, const char *a, const char *b, db_done_cb cb, void *arg)
{
    dbop_t *op = xcalloc(1, sizeof(*op));
    op->kind = kind;
    op->a = a ? xstrdup(a) : NULL;
    op->b = b ? xstrdup(b) : NULL;
    op->cb = cb;
    op->arg = arg;
    return op;
}

void db_post_job_insert(db_t *db, const db_job_t *job, void *manifest, db_done_cb cb, void *arg)
{
    if (!job || !job->id || !job->name || (!manifest && job->manifest_len > 0) || job->state != DB_JOB_ACTIVE) {
        free(manifest);
        if (cb)
            cb(arg, -EINVAL);
        return;
    }
    dbop_t *op = op_new(OP_JOB_INSERT, job->id, job->name, cb, arg);
    op->blob = manifest;
    op->blob_len = job->manifest_len;
    op->v = job->created_ms;
    post(db, op);
}

void db_post_job_state(db_t *db, const char *job_id, db_job_state_t state, db_done_cb cb, void *arg)
{
    dbop_t *op = op_new(OP_JOB_STATE, job_id, NULL, cb, arg);
    op->v = state;
    post(db, op);
}

void db_post_job_delete(db_t *db, const char *job_id, db_done_cb cb, void *arg)
{
    post(db, op_new(OP_JOB_DELETE, job_id, NULL, cb, arg));
}

void db_post_task_put(db_t *db, const db_task_t *t, db_done_cb cb, void *arg)
{
    dbop_t *op = op_new(OP_TASK_PUT, t ? t->job_id : NULL, t ? t->reason : NULL, cb, arg);
    if (t) {
        op->task = *t;
        op->task.job_id = op->a;
        op->task.reason = op->b;
        op->c = t->worker ? xstrdup(t->worker) : NULL;
        op->task.worker = op->c;
    }
    post(db, op);
}

void db_post_outbox_put(db_t *db, const db_outbox_t *o, db_done_cb cb, void *arg)
{
    if (!o || !o->job_id || !o->report || (!o->manifest && o->manifest_len > 0)) {
        if (cb)
            cb(arg, -EINVAL);
        return;
    }
    dbop_t *op = op_new(OP_OUTBOX_PUT, o->job_id, o->report, cb, arg);
    op->out = *o;
    op->out.job_id = op->a;
    op->out.report = op->b;
    op->blob = xmalloc(o->manifest_len + 1);
    memcpy(op->blob, o->manifest, o->manifest_len);
    op->blob_len = o->manifest_len;
    op->out.manifest = op->blob;
    post(db, op);
}

void db_post_outbox_delete(db_t *db, const char *job_id, uint32_t task, db_done_cb cb, void *arg)
{
    dbop_t *op = op_new(OP_OUTBOX_DELETE, job_id, NULL, cb, arg);
    op->v = task;
    post(db, op);
}
