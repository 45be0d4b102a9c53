/*
 * test_db.c: the SQLite records, on a real file in a mkdtemp directory per test, including a
 * writer killed with SIGKILL in the middle of its work.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "pool/db.h"

typedef struct fixture {
    char dir[64];
    char *path;
    db_t *db;
} fixture_t;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_db.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_true(asprintf(&f->path, "%s/preon.db", f->dir) > 0);
    assert_int_equal(db_open(f->path, &f->db), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    db_close(f->db);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f->path);
    free(f);
    return 0;
}

static void reopen(fixture_t *f)
{
    db_close(f->db);
    f->db = NULL;
    assert_int_equal(db_open(f->path, &f->db), 0);
}

/* Copies of what the load callbacks saw (their pointers die with the call). */
typedef struct seen_job {
    char id[80], name[80];
    int state;
    int64_t created_ms;
    char manifest[64];
    size_t manifest_len;
} seen_job_t;

typedef struct seen_jobs {
    int n, stop_after;
    seen_job_t j[16];
} seen_jobs_t;

static int collect_job(void *arg, const db_job_t *job)
{
    seen_jobs_t *s = arg;
    assert_true(s->n < 16);
    seen_job_t *x = &s->j[s->n++];
    assert_non_null(job->manifest);
    assert_true(job->manifest_len <= sizeof(x->manifest));
    snprintf(x->id, sizeof(x->id), "%s", job->id);
    snprintf(x->name, sizeof(x->name), "%s", job->name);
    x->state = (int)job->state;
    x->created_ms = job->created_ms;
    memcpy(x->manifest, job->manifest, job->manifest_len);
    x->manifest_len = job->manifest_len;
    return s->stop_after && s->n == s->stop_after ? 7 : 0;
}

typedef struct seen_tasks {
    int n;
    db_task_t t[64];
    char reason[64][32];
    bool has_reason[64];
    char worker[64][80];
} seen_tasks_t;

static int collect_task(void *arg, const db_task_t *t)
{
    seen_tasks_t *s = arg;
    assert_true(s->n < 64);
    s->t[s->n] = *t;
    s->t[s->n].job_id = NULL;
    s->t[s->n].reason = NULL;
    s->has_reason[s->n] = t->reason != NULL;
    s->t[s->n].worker = NULL;
    snprintf(s->worker[s->n], sizeof(s->worker[0]), "%s", t->worker ? t->worker : "(none)");
    if (t->reason)
        snprintf(s->reason[s->n], sizeof(s->reason[0]), "%s", t->reason);
    s->n++;
    return 0;
}

static const char manifest_bytes[] = {'{', '"', 'a', '\0', 'b', '"', '}', '\0', '\xff', 'z'};

static db_job_t job(const char *id, const char *name)
{
    return (db_job_t){
        .id = id,
        .name = name,
        .state = DB_JOB_ACTIVE,
        .created_ms = 1700000000123,
        .manifest = manifest_bytes,
        .manifest_len = sizeof(manifest_bytes),
    };
}

static db_task_t task(const char *job_id, uint32_t idx, int state, const char *reason)
{
    return (db_task_t){
        .job_id = job_id,
        .index = idx,
        .state = state,
        .attempts = idx % 4,
        .exit_code = -(int)idx,
        .elapsed_ms = 1000 * (int64_t)idx,
        .reason = reason,
    };
}

static void db_job_insert_load_round_trip(void **state)
{
    fixture_t *f = *state;
    db_job_t j = job("aa01", "render");
    j.state = DB_JOB_FAILED;
    j.created_ms = -5; /* any int64 */
    assert_int_equal(db_job_insert(f->db, &j), 0);

    seen_jobs_t s = {0};
    assert_int_equal(db_jobs_load(f->db, collect_job, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.j[0].id, "aa01");
    assert_string_equal(s.j[0].name, "render");
    assert_int_equal(s.j[0].state, DB_JOB_FAILED);
    assert_int_equal(s.j[0].created_ms, -5);
    /* every byte, past the NULs */
    assert_int_equal(s.j[0].manifest_len, sizeof(manifest_bytes));
    assert_memory_equal(s.j[0].manifest, manifest_bytes, sizeof(manifest_bytes));
}

static void db_job_empty_manifest(void **state)
{
    fixture_t *f = *state;
    db_job_t j = job("e", "empty");
    j.manifest = NULL;
    j.manifest_len = 0;
    assert_int_equal(db_job_insert(f->db, &j), 0);
    seen_jobs_t s = {0};
    assert_int_equal(db_jobs_load(f->db, collect_job, &s), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.j[0].manifest_len, 0);
}

static void db_job_insert_rejects_bad_arguments(void **state)
{
    fixture_t *f = *state;
    db_job_t j = job("a", "a");
    j.state = (db_job_state_t)9;
    assert_int_equal(db_job_insert(f->db, &j), -EINVAL);
    j = job(NULL, "a");
    assert_int_equal(db_job_insert(f->db, &j), -EINVAL);
    j = job("a", NULL);
    assert_int_equal(db_job_insert(f->db, &j), -EINVAL);
    j = job("a", "a");
    j.manifest = NULL;
    assert_int_equal(db_job_insert(f->db, &j), -EINVAL);
    seen_jobs_t s = {0};
    assert_int_equal(db_jobs_load(f->db, collect_job, &s), 0);
    assert_int_equal(s.n, 0);
}

static void db_job_insert_duplicates_are_eexist(void **state)
{
    fixture_t *f = *state;
    db_job_t a = job("id1", "name1"), same_id = job("id1", "name2"), same_name = job("id2", "name1");
    assert_int_equal(db_job_insert(f->db, &a), 0);
    assert_int_equal(db_job_insert(f->db, &same_id), -EEXIST);
    assert_int_equal(db_job_insert(f->db, &same_name), -EEXIST);
    seen_jobs_t s = {0};
    assert_int_equal(db_jobs_load(f->db, collect_job, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.j[0].name, "name1");
    /* the statements are still usable after a failed step */
    db_job_t b = job("id2", "name2");
    assert_int_equal(db_job_insert(f->db, &b), 0);
}

static void db_job_set_state_updates(void **state)
{
    fixture_t *f = *state;
    db_job_t a = job("a", "a"), b = job("b", "b");
    assert_int_equal(db_job_insert(f->db, &a), 0);
    assert_int_equal(db_job_insert(f->db, &b), 0);
    assert_int_equal(db_job_set_state(f->db, "b", DB_JOB_CANCELLED), 0);
    assert_int_equal(db_job_set_state(f->db, "nope", DB_JOB_DONE), -ENOENT);
    assert_int_equal(db_job_set_state(f->db, "a", (db_job_state_t)4), -EINVAL);
    seen_jobs_t s = {0};
    assert_int_equal(db_jobs_load(f->db, collect_job, &s), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.j[0].state, DB_JOB_ACTIVE);
    assert_int_equal(s.j[1].state, DB_JOB_CANCELLED);
}

static void db_job_delete_cascades_tasks(void **state)
{
    fixture_t *f = *state;
    db_job_t a = job("a", "a"), b = job("b", "b");
    assert_int_equal(db_job_insert(f->db, &a), 0);
    assert_int_equal(db_job_insert(f->db, &b), 0);
    for (uint32_t i = 0; i < 5; i++) {
        db_task_t ta = task("a", i, 2, NULL), tb = task("b", i, 3, "boom");
        assert_int_equal(db_task_put(f->db, &ta), 0);
        assert_int_equal(db_task_put(f->db, &tb), 0);
    }
    assert_int_equal(db_job_delete(f->db, "a"), 0);
    assert_int_equal(db_job_delete(f->db, "a"), -ENOENT);

    seen_jobs_t s = {0};
    assert_int_equal(db_jobs_load(f->db, collect_job, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.j[0].id, "b");
    seen_tasks_t ta = {0}, tb = {0};
    assert_int_equal(db_tasks_load(f->db, "a", collect_task, &ta), 0);
    assert_int_equal(ta.n, 0);
    assert_int_equal(db_tasks_load(f->db, "b", collect_task, &tb), 0);
    assert_int_equal(tb.n, 5);

    /* the same id inserted again starts with no tasks */
    assert_int_equal(db_job_insert(f->db, &a), 0);
    assert_int_equal(db_tasks_load(f->db, "a", collect_task, &ta), 0);
    assert_int_equal(ta.n, 0);
}

static void db_task_put_replaces(void **state)
{
    fixture_t *f = *state;
    db_job_t a = job("a", "a");
    assert_int_equal(db_job_insert(f->db, &a), 0);
    /* written out of order: loaded by index */
    for (int i = 4; i >= 0; i--) {
        db_task_t t = task("a", (uint32_t)i, 1, NULL);
        assert_int_equal(db_task_put(f->db, &t), 0);
    }
    db_task_t t = task("a", 2, 3, "exit status 1");
    t.attempts = 3;
    t.exit_code = 1;
    t.elapsed_ms = 4242;
    assert_int_equal(db_task_put(f->db, &t), 0);
    db_task_t big = task("a", UINT32_MAX, 2, NULL);
    big.attempts = UINT32_MAX;
    big.elapsed_ms = INT64_MAX;
    assert_int_equal(db_task_put(f->db, &big), 0);

    seen_tasks_t s = {0};
    assert_int_equal(db_tasks_load(f->db, "a", collect_task, &s), 0);
    assert_int_equal(s.n, 6);
    for (int i = 0; i < 5; i++)
        assert_int_equal(s.t[i].index, (uint32_t)i);
    assert_int_equal(s.t[1].state, 1);
    assert_int_equal(s.t[1].attempts, 1);
    assert_int_equal(s.t[1].exit_code, -1);
    assert_int_equal(s.t[1].elapsed_ms, 1000);
    assert_false(s.has_reason[1]);
    assert_int_equal(s.t[2].state, 3);
    assert_int_equal(s.t[2].attempts, 3);
    assert_int_equal(s.t[2].exit_code, 1);
    assert_int_equal(s.t[2].elapsed_ms, 4242);
    assert_true(s.has_reason[2]);
    assert_string_equal(s.reason[2], "exit status 1");
    assert_int_equal(s.t[5].index, UINT32_MAX);
    assert_int_equal(s.t[5].attempts, UINT32_MAX);
    assert_true(s.t[5].elapsed_ms == INT64_MAX);

    /* a task of a job that does not exist */
    db_task_t orphan = task("nope", 0, 0, NULL);
    assert_int_equal(db_task_put(f->db, &orphan), -ENOENT);
    db_task_t nojob = task(NULL, 0, 0, NULL);
    assert_int_equal(db_task_put(f->db, &nojob), -EINVAL);
}

static void db_jobs_load_oldest_first(void **state)
{
    fixture_t *f = *state;
    const char *ids[] = {"cc", "aa", "bb", "dd"};
    for (int i = 0; i < 4; i++) {
        db_job_t j = job(ids[i], ids[i]);
        assert_int_equal(db_job_insert(f->db, &j), 0);
    }
    /* delete the newest and one in the middle; a new job still goes last */
    assert_int_equal(db_job_delete(f->db, "dd"), 0);
    assert_int_equal(db_job_delete(f->db, "aa"), 0);
    db_job_t e = job("ee", "ee");
    assert_int_equal(db_job_insert(f->db, &e), 0);

    seen_jobs_t s = {0};
    assert_int_equal(db_jobs_load(f->db, collect_job, &s), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.j[0].id, "cc");
    assert_string_equal(s.j[1].id, "bb");
    assert_string_equal(s.j[2].id, "ee");

    /* a non-zero return stops the walk and is returned */
    seen_jobs_t stop = {.stop_after = 2};
    assert_int_equal(db_jobs_load(f->db, collect_job, &stop), 7);
    assert_int_equal(stop.n, 2);
    /* and the statement was reset: a full load works again */
    seen_jobs_t again = {0};
    assert_int_equal(db_jobs_load(f->db, collect_job, &again), 0);
    assert_int_equal(again.n, 3);
}

/* Start-up restore reads each job's tasks from inside the jobs callback. */
typedef struct nested {
    db_t *db;
    int jobs, tasks, inner_rc;
} nested_t;

static int count_task(void *arg, const db_task_t *t)
{
    nested_t *n = arg;
    n->tasks++;
    return 0;
}

static int nested_job(void *arg, const db_job_t *j)
{
    nested_t *n = arg;
    n->jobs++;
    assert_int_equal(db_tasks_load(n->db, j->id, count_task, n), 0);
    n->inner_rc = db_jobs_load(n->db, collect_job, &(seen_jobs_t){0});
    return 0;
}

static void db_loads_nest(void **state)
{
    fixture_t *f = *state;
    db_job_t a = job("a", "a"), b = job("b", "b");
    assert_int_equal(db_job_insert(f->db, &a), 0);
    assert_int_equal(db_job_insert(f->db, &b), 0);
    for (uint32_t i = 0; i < 3; i++) {
        db_task_t t = task(i < 2 ? "a" : "b", i, 0, NULL);
        assert_int_equal(db_task_put(f->db, &t), 0);
    }
    nested_t n = {.db = f->db};
    assert_int_equal(db_jobs_load(f->db, nested_job, &n), 0);
    assert_int_equal(n.jobs, 2);
    assert_int_equal(n.tasks, 3);
    /* the same load from inside itself is refused, not silently cut short */
    assert_int_equal(n.inner_rc, -EBUSY);
}

typedef struct seen_rej {
    int n;
    char name[8][32], reason[8][64];
} seen_rej_t;

static int collect_rej(void *arg, const char *name, const char *reason)
{
    seen_rej_t *s = arg;
    assert_true(s->n < 8);
    snprintf(s->name[s->n], sizeof(s->name[0]), "%s", name);
    snprintf(s->reason[s->n], sizeof(s->reason[0]), "%s", reason);
    s->n++;
    return 0;
}

static void db_rejected_put_delete_load(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(db_rejected_put(f->db, "zeta", "no job.json"), 0);
    assert_int_equal(db_rejected_put(f->db, "alpha", "bad command"), 0);
    assert_int_equal(db_rejected_put(f->db, "zeta", "job.json: tasks must be > 0"), 0);
    assert_int_equal(db_rejected_put(f->db, "x", NULL), -EINVAL);
    seen_rej_t s = {0};
    assert_int_equal(db_rejected_load(f->db, collect_rej, &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.name[0], "alpha");
    assert_string_equal(s.reason[0], "bad command");
    assert_string_equal(s.name[1], "zeta");
    assert_string_equal(s.reason[1], "job.json: tasks must be > 0");

    assert_int_equal(db_rejected_delete(f->db, "alpha"), 0);
    assert_int_equal(db_rejected_delete(f->db, "alpha"), -ENOENT);
    seen_rej_t s2 = {0};
    assert_int_equal(db_rejected_load(f->db, collect_rej, &s2), 0);
    assert_int_equal(s2.n, 1);
    assert_string_equal(s2.name[0], "zeta");
}

static void db_reopen_keeps_everything(void **state)
{
    fixture_t *f = *state;
    db_job_t a = job("a", "first"), b = job("b", "second");
    assert_int_equal(db_job_insert(f->db, &a), 0);
    assert_int_equal(db_job_insert(f->db, &b), 0);
    assert_int_equal(db_job_set_state(f->db, "a", DB_JOB_DONE), 0);
    db_task_t t = task("b", 7, 3, "killed");
    assert_int_equal(db_task_put(f->db, &t), 0);
    assert_int_equal(db_rejected_put(f->db, "broken", "why"), 0);
    reopen(f);

    seen_jobs_t s = {0};
    assert_int_equal(db_jobs_load(f->db, collect_job, &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.j[0].name, "first");
    assert_int_equal(s.j[0].state, DB_JOB_DONE);
    assert_string_equal(s.j[1].name, "second");
    assert_memory_equal(s.j[1].manifest, manifest_bytes, sizeof(manifest_bytes));
    seen_tasks_t ts = {0};
    assert_int_equal(db_tasks_load(f->db, "b", collect_task, &ts), 0);
    assert_int_equal(ts.n, 1);
    assert_int_equal(ts.t[0].index, 7);
    assert_string_equal(ts.reason[0], "killed");
    seen_rej_t r = {0};
    assert_int_equal(db_rejected_load(f->db, collect_rej, &r), 0);
    assert_int_equal(r.n, 1);
    /* foreign keys are on after a reopen too */
    db_task_t orphan = task("zz", 0, 0, NULL);
    assert_int_equal(db_task_put(f->db, &orphan), -ENOENT);
}

static void db_file_is_wal_with_schema_version(void **state)
{
    fixture_t *f = *state;
    sqlite3 *raw;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(f->path, &raw, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(raw, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 3);
    sqlite3_finalize(st);
    sqlite3_close(raw);
}

static void record_rc(void *arg, int rc) { *(int *)arg = rc; }

/* Runs SQL on the file behind the module's back (another version of preon, or damage). */
static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *raw;
    assert_int_equal(sqlite3_open_v2(path, &raw, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
}

static void db_newer_schema_is_refused(void **state)
{
    fixture_t *f = *state;
    db_close(f->db);
    f->db = NULL;
    raw_exec(f->path, "PRAGMA user_version = 4");
    db_t *db = (db_t *)1;
    assert_int_equal(db_open(f->path, &db), -EPROTO);
    assert_null(db);
}

/* A version 1 file (before results kept their worker) gains the column, keeping its rows. */
static void db_version_1_is_upgraded(void **state)
{
    fixture_t *f = *state;
    db_close(f->db);
    f->db = NULL;
    char side[600];
    unlink(f->path);
    snprintf(side, sizeof(side), "%s-wal", f->path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", f->path);
    unlink(side);
    sqlite3 *raw;
    assert_int_equal(sqlite3_open_v2(f->path, &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
    sqlite3_close(raw);
    raw_exec(f->path, "CREATE TABLE jobs(id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, state INTEGER NOT NULL,"
                      " created_ms INTEGER NOT NULL, manifest BLOB NOT NULL, seq INTEGER);"
                      "CREATE TABLE tasks(job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
                      " idx INTEGER NOT NULL, state INTEGER NOT NULL, attempts INTEGER NOT NULL,"
                      " exit_code INTEGER NOT NULL, elapsed_ms INTEGER NOT NULL, reason TEXT,"
                      " PRIMARY KEY(job_id, idx)) WITHOUT ROWID;"
                      "CREATE TABLE rejected(name TEXT PRIMARY KEY, reason TEXT NOT NULL);"
                      "INSERT INTO jobs VALUES('a', 'a', 0, 1, x'7b7d', 1);"
                      "INSERT INTO tasks VALUES('a', 0, 2, 1, 0, 5, NULL);"
                      "PRAGMA user_version = 1;");
    assert_int_equal(db_open(f->path, &f->db), 0);
    seen_tasks_t ts = {0};
    assert_int_equal(db_tasks_load(f->db, "a", collect_task, &ts), 0);
    assert_int_equal(ts.n, 1);
    db_task_t t = {.job_id = "a", .index = 1, .state = 2, .attempts = 1, .worker = "ab12"};
    assert_int_equal(db_task_put(f->db, &t), 0);
    db_close(f->db);
    assert_int_equal(db_open(f->path, &f->db), 0); /* version 3 now: opened as it is */
    seen_tasks_t again = {0};
    assert_int_equal(db_tasks_load(f->db, "a", collect_task, &again), 0);
    assert_int_equal(again.n, 2);
    assert_string_equal(again.worker[0], "(none)"); /* recorded before workers were kept */
    assert_string_equal(again.worker[1], "ab12");
    /* and gained the outbox (version 3) */
    int rc = 1;
    db_post_outbox_put(f->db, &(db_outbox_t){.job_id = "a", .task = 0, .manifest = "{}", .manifest_len = 2,
                                             .report = "r", .head_len = 1, .created_ms = 1},
                       record_rc, &rc);
    assert_int_equal(rc, 0);
}

/* Copies of the kept results a load saw. */
typedef struct seen_outbox {
    int n;
    char job[8][80], report[8][80], manifest[8][16];
    uint32_t task[8];
    size_t head_len[8], manifest_len[8];
    int64_t created_ms[8];
} seen_outbox_t;

static int collect_outbox(void *arg, const db_outbox_t *o)
{
    seen_outbox_t *s = arg;
    assert_true(s->n < 8);
    snprintf(s->job[s->n], sizeof(s->job[0]), "%s", o->job_id);
    snprintf(s->report[s->n], sizeof(s->report[0]), "%s", o->report);
    assert_true(o->manifest_len < sizeof(s->manifest[0]));
    memcpy(s->manifest[s->n], o->manifest, o->manifest_len);
    s->manifest_len[s->n] = o->manifest_len;
    s->task[s->n] = o->task;
    s->head_len[s->n] = o->head_len;
    s->created_ms[s->n] = o->created_ms;
    s->n++;
    return 0;
}

static void put_outbox_now(db_t *db, const db_outbox_t *o, int want)
{
    int rc = 1;
    db_post_outbox_put(db, o, record_rc, &rc); /* no writer: runs now */
    assert_int_equal(rc, want);
}

/* A volunteer's kept results: put (replacing), loaded oldest first after a reopen, deleted. */
static void db_outbox_put_load_delete(void **state)
{
    fixture_t *f = *state;
    put_outbox_now(f->db, &(db_outbox_t){.job_id = "j1", .task = 3, .manifest = "{\"a\":1}", .manifest_len = 7,
                                         .report = "exit=0&rid=ab&b=xyz", .head_len = 13, .created_ms = 20},
                   0);
    put_outbox_now(f->db, &(db_outbox_t){.job_id = "j1", .task = 4, .manifest = "{}", .manifest_len = 2,
                                         .report = "exit=1", .head_len = 6, .created_ms = 10},
                   0);
    /* the same task again replaces it */
    put_outbox_now(f->db, &(db_outbox_t){.job_id = "j1", .task = 3, .manifest = "{\"a\":2}", .manifest_len = 7,
                                         .report = "exit=0&rid=cd", .head_len = 13, .created_ms = 30},
                   0);
    /* a head longer than the report is refused */
    put_outbox_now(f->db, &(db_outbox_t){.job_id = "j2", .task = 0, .manifest = "{}", .manifest_len = 2,
                                         .report = "x", .head_len = 2, .created_ms = 1},
                   -EINVAL);
    reopen(f);
    seen_outbox_t s = {0};
    assert_int_equal(db_outbox_load(f->db, collect_outbox, &s), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.task[0], 4); /* oldest first */
    assert_int_equal(s.created_ms[0], 10);
    assert_int_equal(s.task[1], 3);
    assert_string_equal(s.report[1], "exit=0&rid=cd");
    assert_int_equal(s.head_len[1], 13);
    assert_int_equal(s.manifest_len[1], 7);
    assert_memory_equal(s.manifest[1], "{\"a\":2}", 7);
    int rc = 1;
    db_post_outbox_delete(f->db, "j1", 3, record_rc, &rc);
    assert_int_equal(rc, 0);
    db_post_outbox_delete(f->db, "j1", 3, record_rc, &rc);
    assert_int_equal(rc, -ENOENT);
    seen_outbox_t again = {0};
    assert_int_equal(db_outbox_load(f->db, collect_outbox, &again), 0);
    assert_int_equal(again.n, 1);
    assert_int_equal(again.task[0], 4);
}

/* A version 2 file (before the outbox) gains the table, keeping its rows; a bad row is an error. */
static void db_version_2_is_upgraded(void **state)
{
    fixture_t *f = *state;
    db_close(f->db);
    f->db = NULL;
    raw_exec(f->path, "DROP TABLE outbox; INSERT INTO jobs VALUES('a', 'a', 0, 1, x'7b7d', 1);"
                      "PRAGMA user_version = 2;");
    assert_int_equal(db_open(f->path, &f->db), 0);
    seen_jobs_t js = {0};
    assert_int_equal(db_jobs_load(f->db, collect_job, &js), 0);
    assert_int_equal(js.n, 1);
    put_outbox_now(f->db, &(db_outbox_t){.job_id = "j", .task = 1, .manifest = "{}", .manifest_len = 2,
                                         .report = "r", .head_len = 1, .created_ms = 5},
                   0);
    db_close(f->db);
    f->db = NULL;
    /* bad rows: a head past the report, a negative time, a task number out of range, a task not a number */
    raw_exec(f->path, "INSERT INTO outbox VALUES('k', 2, x'7b7d', 'rr', 3, 6);"
                      "INSERT INTO outbox VALUES('l', 3, x'7b7d', 'rr', 1, -5);"
                      "INSERT INTO outbox VALUES('m', 4294967296, x'7b7d', 'rr', 1, 7);"
                      "INSERT INTO outbox VALUES('n', 'x', x'7b7d', 'rr', 0, 8);"
                      "INSERT INTO outbox VALUES('o', 6, x'7b7d', 'ok', 2, 9);");
    assert_int_equal(db_open(f->path, &f->db), 0);
    seen_outbox_t s = {0};
    assert_int_equal(db_outbox_load(f->db, collect_outbox, &s), 0); /* skipped, the rest loaded */
    assert_int_equal(s.n, 2);
    assert_string_equal(s.job[0], "j");
    assert_string_equal(s.job[1], "o"); /* a good row after the bad ones */
    seen_outbox_t again = {0};
    assert_int_equal(db_outbox_load(f->db, collect_outbox, &again), 0);
    assert_int_equal(again.n, 2); /* the bad rows are gone */
    sqlite3 *raw;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(f->path, &raw, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(raw, "SELECT count(*) FROM outbox", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 2);
    sqlite3_finalize(st);
    sqlite3_close(raw);
}

static void db_bad_rows_are_errors(void **state)
{
    fixture_t *f = *state;
    db_job_t a = job("a", "a");
    assert_int_equal(db_job_insert(f->db, &a), 0);
    db_close(f->db);
    f->db = NULL;
    raw_exec(f->path, "INSERT INTO tasks VALUES('a', -1, 0, 0, 0, 0, NULL, NULL);"
                      "INSERT INTO jobs VALUES('b', 'b', 9, 0, x'00', 99);");
    assert_int_equal(db_open(f->path, &f->db), 0);
    seen_tasks_t ts = {0};
    assert_int_equal(db_tasks_load(f->db, "a", collect_task, &ts), -EIO);
    assert_int_equal(ts.n, 0);
    seen_jobs_t s = {0};
    assert_int_equal(db_jobs_load(f->db, collect_job, &s), -EIO);
    assert_int_equal(s.n, 1); /* "a" came first and was fine */
}

static void db_open_not_a_database(void **state)
{
    fixture_t *f = *state;
    char *path;
    assert_true(asprintf(&path, "%s/garbage.db", f->dir) > 0);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 8192; i++)
        fputc((i * 131) & 0xff, fp);
    fclose(fp);
    db_t *db = (db_t *)1;
    assert_int_equal(db_open(path, &db), -EIO);
    assert_null(db);
    free(path);

    /* a directory, and a path under a missing directory */
    db = (db_t *)1;
    assert_true(db_open(f->dir, &db) < 0);
    assert_null(db);
    assert_true(asprintf(&path, "%s/missing/x.db", f->dir) > 0);
    assert_true(db_open(path, &db) < 0);
    assert_null(db);
    free(path);
}

/*
 * A child writes a job and then tasks, reporting each committed index through a pipe, and is
 * killed with SIGKILL in the middle of that (without db_close). Every task the child reported
 * must be in the file when it is opened again, with the right values.
 */
#define KILL_TASKS 20000
#define KILL_AFTER 500

static void child_write(const char *path, int fd)
{
    db_t *db;
    if (db_open(path, &db) != 0)
        _exit(2);
    db_job_t j = job("killed", "killed");
    if (db_job_insert(db, &j) != 0)
        _exit(3);
    for (uint32_t i = 0; i < KILL_TASKS; i++) {
        db_task_t t = task("killed", i, 2, i % 3 ? NULL : "note");
        if (db_task_put(db, &t) != 0)
            _exit(4);
        if (write(fd, &i, sizeof(i)) != (ssize_t)sizeof(i))
            _exit(5);
    }
    for (;;)
        pause(); /* never closes: the parent kills it */
}

typedef struct walk {
    uint32_t next;
    bool bad;
} walk_t;

static int check_killed_task(void *arg, const db_task_t *t)
{
    walk_t *w = arg;
    db_task_t want = task("killed", w->next, 2, w->next % 3 ? NULL : "note");
    if (t->index != want.index || t->state != want.state || t->attempts != want.attempts ||
        t->exit_code != want.exit_code || t->elapsed_ms != want.elapsed_ms ||
        (t->reason == NULL) != (want.reason == NULL) || (t->reason && strcmp(t->reason, want.reason) != 0))
        w->bad = true;
    w->next++;
    return 0;
}

static void db_survives_sigkill(void **state)
{
    fixture_t *f = *state;
    /* an SQLite connection must not cross fork(): the parent holds none while the child runs */
    db_close(f->db);
    f->db = NULL;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        child_write(f->path, p[1]);
    }
    close(p[1]);
    uint32_t last = 0;
    int acks = 0;
    while (acks < KILL_AFTER) {
        uint32_t v;
        ssize_t n = read(p[0], &v, sizeof(v)); /* 4-byte pipe writes are atomic */
        assert_int_equal(n, sizeof(v));
        assert_int_equal(v, (uint32_t)acks);
        last = v;
        acks++;
    }
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    /* acks the child sent after the ones we waited for are committed too */
    for (;;) {
        uint32_t v;
        if (read(p[0], &v, sizeof(v)) != (ssize_t)sizeof(v))
            break;
        last = v;
    }
    close(p[0]);

    assert_int_equal(db_open(f->path, &f->db), 0);
    seen_jobs_t s = {0};
    assert_int_equal(db_jobs_load(f->db, collect_job, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.j[0].id, "killed");
    assert_memory_equal(s.j[0].manifest, manifest_bytes, sizeof(manifest_bytes));

    /* indexes 0..n-1 with no hole, each with the values written, and n > the last acknowledged */
    walk_t w = {0};
    assert_int_equal(db_tasks_load(f->db, "killed", check_killed_task, &w), 0);
    assert_false(w.bad);
    assert_true(w.next > last);
    assert_true(w.next <= KILL_TASKS);
}


/* ---- the writer thread ---- */

typedef struct calls {
    int n;
    int order[8];
    int rc[8];
    bool stopped;
} calls_t;

typedef struct call {
    calls_t *c;
    int tag;
} call_t;

static void on_done(void *arg, int rc)
{
    call_t *x = arg;
    assert_true(x->c->n < 8);
    x->c->order[x->c->n] = x->tag;
    x->c->rc[x->c->n++] = rc;
}

static void on_stopped(void *arg) { ((calls_t *)arg)->stopped = true; }

static void *manifest_copy(void)
{
    void *p = malloc(sizeof(manifest_bytes));
    assert_non_null(p);
    memcpy(p, manifest_bytes, sizeof(manifest_bytes));
    return p;
}

/* Posts run in order, one batch after another, with their results; direct calls are refused. */
static void db_writer_commits_posts_in_order(void **state)
{
    fixture_t *f = *state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(db_writer_start(f->db, &loop), 0);
    assert_true(db_writer_running(f->db));
    calls_t c = {0};
    call_t a = {&c, 1}, b = {&c, 2}, d = {&c, 3}, e = {&c, 4};
    db_job_t j = job("j1", "one");
    db_post_job_insert(f->db, &j, manifest_copy(), on_done, &a);
    for (uint32_t i = 0; i < 40; i++) {
        db_task_t t = task("j1", i, 2, i % 2 ? "why" : NULL);
        db_post_task_put(f->db, &t, NULL, NULL);
    }
    db_job_t dup = job("j1", "other");
    db_post_job_insert(f->db, &dup, manifest_copy(), on_done, &b); /* the id is taken */
    db_post_job_state(f->db, "j1", DB_JOB_DONE, on_done, &d);
    db_post_job_state(f->db, "nope", DB_JOB_DONE, on_done, &e);
    /* the writer owns the connection: a direct call would race it */
    db_task_t t0 = task("j1", 0, 1, NULL);
    assert_int_equal(db_task_put(f->db, &t0), -EBUSY);
    assert_int_equal(c.n, 0); /* callbacks come on the loop only */
    db_writer_stop(f->db, on_stopped, &c);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_true(c.stopped);
    assert_false(db_writer_running(f->db));
    assert_int_equal(c.n, 4);
    int want_order[] = {1, 2, 3, 4}, want_rc[] = {0, -EEXIST, 0, -ENOENT};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(c.order[i], want_order[i]);
        assert_int_equal(c.rc[i], want_rc[i]);
    }
    db_stats_t st;
    db_writer_stats(f->db, &st);
    assert_int_equal(st.writes, 44);
    assert_true(st.batches >= 1 && st.batches <= 44);
    assert_int_equal(uv_loop_close(&loop), 0);

    reopen(f); /* what the writer committed is on disk */
    seen_jobs_t sj = {0};
    assert_int_equal(db_jobs_load(f->db, collect_job, &sj), 0);
    assert_int_equal(sj.n, 1);
    assert_string_equal(sj.j[0].name, "one");
    assert_int_equal(sj.j[0].state, DB_JOB_DONE);
    assert_memory_equal(sj.j[0].manifest, manifest_bytes, sizeof(manifest_bytes));
    seen_tasks_t ts = {0};
    assert_int_equal(db_tasks_load(f->db, "j1", collect_task, &ts), 0);
    assert_int_equal(ts.n, 40);
    assert_true(ts.has_reason[1] && !ts.has_reason[2]);
    assert_string_equal(ts.reason[1], "why");
}

/* A delete posted after puts removes them all, whatever batches they fell in. */
static void db_writer_delete_after_puts(void **state)
{
    fixture_t *f = *state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(db_writer_start(f->db, &loop), 0);
    calls_t c = {0};
    call_t a = {&c, 1};
    db_job_t j = job("j1", "one");
    db_post_job_insert(f->db, &j, manifest_copy(), NULL, NULL);
    for (uint32_t i = 0; i < 500; i++) {
        db_task_t t = task("j1", i, 2, NULL);
        db_post_task_put(f->db, &t, NULL, NULL);
    }
    db_post_job_delete(f->db, "j1", on_done, &a);
    db_writer_stop(f->db, on_stopped, &c);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_true(c.stopped);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.rc[0], 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    /* stopped: direct calls are allowed again */
    seen_tasks_t ts = {0};
    assert_int_equal(db_tasks_load(f->db, "j1", collect_task, &ts), 0);
    assert_int_equal(ts.n, 0);
    seen_jobs_t sj = {0};
    assert_int_equal(db_jobs_load(f->db, collect_job, &sj), 0);
    assert_int_equal(sj.n, 0);
}

/* Runs the loop until the writer has tried a batch again n times for a full disk (bounded). */
static void wait_full_retries(fixture_t *f, uv_loop_t *loop, uint64_t n)
{
    db_stats_t st = {0};
    for (int i = 0; i < 10000; i++) {
        db_writer_stats(f->db, &st);
        if (st.full_retries >= n)
            break;
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_true(st.full_retries >= n);
    assert_true(st.full);
}

/* A full disk (SQLITE_FULL): the batch is rolled back and tried again, in order, until there is room;
 * what waits for its record is told only then, and nothing is lost or doubled (docs/reliability.md). */
static void db_writer_waits_for_room_on_a_full_disk(void **state)
{
    fixture_t *f = *state;
    db_job_t j = job("j1", "one");
    assert_int_equal(db_job_insert(f->db, &j), 0);
    assert_int_equal(db_cap_pages(f->db, 0), 0); /* not one page more: the disk is full */
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(db_writer_start(f->db, &loop), 0);
    calls_t c = {0};
    call_t a = {&c, 1}, b = {&c, 2};
    char *why = malloc(4000); /* long reasons: the task records need new pages */
    assert_non_null(why);
    memset(why, 'w', 3999);
    why[3999] = '\0';
    for (uint32_t i = 0; i < 40; i++) {
        db_task_t t = task("j1", i, 3, why);
        db_post_task_put(f->db, &t, NULL, NULL);
    }
    free(why);
    db_job_t j2 = job("j2", "two");
    db_post_job_insert(f->db, &j2, manifest_copy(), on_done, &a);
    db_post_job_state(f->db, "j2", DB_JOB_DONE, on_done, &b);
    wait_full_retries(f, &loop, 2);
    assert_int_equal(c.n, 0); /* the publish waits for its record */
    assert_int_equal(db_cap_pages(f->db, -1), 0); /* room again */
    for (int i = 0; i < 10000 && c.n < 2; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(c.n, 2);
    assert_int_equal(c.order[0], 1);
    assert_int_equal(c.rc[0], 0);
    assert_int_equal(c.order[1], 2);
    assert_int_equal(c.rc[1], 0);
    db_stats_t st;
    db_writer_stats(f->db, &st);
    assert_false(st.full);
    db_writer_stop(f->db, on_stopped, &c);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    reopen(f);
    seen_jobs_t sj = {0};
    assert_int_equal(db_jobs_load(f->db, collect_job, &sj), 0);
    assert_int_equal(sj.n, 2);
    assert_int_equal(sj.j[1].state, DB_JOB_DONE);
    seen_tasks_t ts = {0};
    assert_int_equal(db_tasks_load(f->db, "j1", collect_task, &ts), 0);
    assert_int_equal(ts.n, 40);
}

/* Stopping while the disk is full gives up: the writes are told -ENOSPC, and none is half kept. */
static void db_writer_stopped_while_full_gives_up(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(db_cap_pages(f->db, 0), 0);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(db_writer_start(f->db, &loop), 0);
    calls_t c = {0};
    call_t a = {&c, 1};
    size_t big = 256 * 1024;
    char *m = malloc(big);
    assert_non_null(m);
    memset(m, 'm', big);
    db_job_t j2 = job("j2", "two");
    j2.manifest_len = big;
    db_post_job_insert(f->db, &j2, m, on_done, &a);
    wait_full_retries(f, &loop, 1);
    db_writer_stop(f->db, on_stopped, &c);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_true(c.stopped);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.rc[0], -ENOSPC);
    assert_int_equal(uv_loop_close(&loop), 0);
    reopen(f);
    seen_jobs_t sj = {0};
    assert_int_equal(db_jobs_load(f->db, collect_job, &sj), 0);
    assert_int_equal(sj.n, 0);
}

/* Without a writer a post runs at once and calls back before it returns. */
static void db_post_without_writer_runs_now(void **state)
{
    fixture_t *f = *state;
    calls_t c = {0};
    call_t a = {&c, 1}, b = {&c, 2};
    db_job_t j = job("j1", "one");
    db_post_job_insert(f->db, &j, manifest_copy(), on_done, &a);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.rc[0], 0);
    db_job_t bad = job("j2", "two");
    bad.state = DB_JOB_DONE; /* an insert is of an active job */
    db_post_job_insert(f->db, &bad, manifest_copy(), on_done, &b);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.rc[1], -EINVAL);
    db_writer_stop(f->db, on_stopped, &c); /* no writer: done at once */
    assert_true(c.stopped);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(db_job_insert_load_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(db_job_empty_manifest, setup, teardown),
        cmocka_unit_test_setup_teardown(db_job_insert_rejects_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(db_job_insert_duplicates_are_eexist, setup, teardown),
        cmocka_unit_test_setup_teardown(db_job_set_state_updates, setup, teardown),
        cmocka_unit_test_setup_teardown(db_job_delete_cascades_tasks, setup, teardown),
        cmocka_unit_test_setup_teardown(db_task_put_replaces, setup, teardown),
        cmocka_unit_test_setup_teardown(db_jobs_load_oldest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(db_loads_nest, setup, teardown),
        cmocka_unit_test_setup_teardown(db_rejected_put_delete_load, setup, teardown),
        cmocka_unit_test_setup_teardown(db_reopen_keeps_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(db_file_is_wal_with_schema_version, setup, teardown),
        cmocka_unit_test_setup_teardown(db_newer_schema_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(db_version_1_is_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(db_outbox_put_load_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(db_version_2_is_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(db_bad_rows_are_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(db_open_not_a_database, setup, teardown),
        cmocka_unit_test_setup_teardown(db_survives_sigkill, setup, teardown),
        cmocka_unit_test_setup_teardown(db_writer_commits_posts_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(db_writer_delete_after_puts, setup, teardown),
        cmocka_unit_test_setup_teardown(db_post_without_writer_runs_now, setup, teardown),
        cmocka_unit_test_setup_teardown(db_writer_waits_for_room_on_a_full_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(db_writer_stopped_while_full_gives_up, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
