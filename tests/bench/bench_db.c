/*
 * bench_db.c: how long one SQLite commit of the peer's records takes (pool/db.c: WAL,
 * synchronous=NORMAL, one transaction per call), since they still run on the loop thread (issue 8,
 * item 5): db_task_put (every finished task) and db_job_insert (every publish, with its manifest),
 * each timed alone; p50, p99 and max against the loop's 5 ms goal.
 * Usage: bench_db DIR [N]   (DIR: where the database goes, on the disk a data directory would use)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    db_close(db);
    free(t);
    free(man);
    free(path);
    return 0;
}
