/*
 * bench_db.c: how long one SQLite commit of the peer's records takes (pool/db.c: WAL,
 * synchronous=NORMAL, one transaction per call): db_task_put (every finished task) and db_job_insert
 * (every publish, with its manifest), each timed alone as a direct call; then what the loop pays
 * now that the peer posts them to the writer thread (db_post_*: the same writes, timed per post on
 * the calling thread), with the writer's batches. p50, p99 and max against the loop's 5 ms goal.
 * Usage: bench_db DIR [N]   (DIR: where the database goes, on the disk a data directory would use)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "core/xalloc.h"
#include "pool/db.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_d);
    printf("%-44s p50 %7.3f ms   p99 %7.3f ms   max %7.3f ms   (goal for a loop stall: 5 ms)\n", what,
           v[(n - 1) / 2], v[(n - 1) * 99 / 100], v[n - 1]);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_db DIR [N]\n");
        return 2;
    }
    size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 2000;
    if (n < 10)
        n = 10;
    char *path = xasprintf("%s/bench.db", argv[1]);
    db_t *db;
    if (db_open(path, &db) != 0)
        return fprintf(stderr, "bench_db: cannot open %s\n", path), 1;
    double *t = xcalloc(n, sizeof(*t));
    char id[65];
    memset(id, 'a', 64);
    id[64] = '\0';
    size_t mlen = 256 * 1024; /* a manifest of ~1700 files */
    char *man = xmalloc(mlen);
    memset(man, 'x', mlen);
    db_job_t job = {.id = id, .name = "bench", .manifest = man, .manifest_len = mlen, .created_ms = 1};
    if (db_job_insert(db, &job) != 0)
        return fprintf(stderr, "bench_db: insert failed\n"), 1;
    for (size_t i = 0; i < n; i++) {
        db_task_t task = {.job_id = id, .index = (uint32_t)i, .state = 2, .attempts = 1, .exit_code = 0,
                          .elapsed_ms = 12, .reason = NULL};
        double a = now_ms();
        db_task_put(db, &task);
        t[i] = now_ms() - a;
    }
    report("db_task_put (a finished task)", t, n);
    size_t nj = n / 20;
    for (size_t i = 0; i < nj; i++) {
        snprintf(id, sizeof(id), "%064zx", i + 1);
        char name[32];
        snprintf(name, sizeof(name), "job%zu", i);
        job.id = id;
        job.name = name;
        double a = now_ms();
        db_job_insert(db, &job);
        t[i] = now_ms() - a;
    }
    report("db_job_insert (a publish, 256 KiB manifest)", t, nj);

    /* The same through the writer thread, as the peer does it. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    if (db_writer_start(db, &loop) != 0)
        return fprintf(stderr, "bench_db: writer failed\n"), 1;
    double w0 = now_ms();
    for (size_t i = 0; i < n; i++) {
        db_task_t task = {.job_id = id, .index = (uint32_t)i, .state = 3, .attempts = 2, .exit_code = 1,
                          .elapsed_ms = 12, .reason = "bench"};
        double a = now_ms();
        db_post_task_put(db, &task, NULL, NULL);
        t[i] = now_ms() - a;
        if (i % 20 == 0) { /* a publish now and then, as in a real pool */
            snprintf(id, sizeof(id), "%064zx", nj + i + 1);
            char name[32];
            snprintf(name, sizeof(name), "wjob%zu", i);
            db_job_t wj = {.id = id, .name = name, .state = DB_JOB_ACTIVE, .created_ms = 1, .manifest_len = mlen};
            void *copy = xmalloc(mlen);
            memcpy(copy, man, mlen);
            db_post_job_insert(db, &wj, copy, NULL, NULL);
        }
    }
    report("db_post_task_put (on the loop: the post only)", t, n);
    db_writer_stop(db, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    db_stats_t st;
    db_writer_stats(db, &st);
    printf("writer thread: %llu writes in %llu transactions, %.0f ms in all; longest transaction %.3f ms (off the loop)\n",
           (unsigned long long)st.writes, (unsigned long long)st.batches, now_ms() - w0, st.batch_max_ns / 1e6);
    uv_loop_close(&loop);
    db_close(db);
    free(t);
    free(man);
    free(path);
    return 0;
}
