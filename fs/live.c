/*
 * live.c: the output of a task running now, as nodes (docs/usage.md, "Live output").
 *
 * While a task runs, results/<name>/<task>/ shows its stdout and stderr so far: on the peer that
 * runs it, its own files in DATA/work/; on the submitter of a task that runs on a volunteer, the
 * copy of what the volunteer sent (pool_task_live says which, and which run). They are N_LIVE_DIR
 * and N_LIVE_FILE nodes, read-only pass-through like results (reads in the thread pool), opened
 * with direct_io and never cached (entry and attribute time-outs 0), so `tail -f` and `cat` see
 * them grow. The result on disk (or a mirrored one) always wins: once results/<id>/<task>/ exists,
 * the next lookup of results/<name>/<task> detaches the live node and answers with the result's,
 * a new inode, so the directory changes whole. A node shows one run: a retry gets new nodes.
 * A reader holding a live file open goes on reading the file it opened: for a task run here that
 * file is the result's stdout itself (moved into results/), so it reads on to the end of the
 * output; for a task on a volunteer it is the copy, removed once the task is decided, so it reads
 * what had come and then meets its end. The attributes of a live file whose run is over are the
 * result's file's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/xalloc.h"
#include "fs/internal.h"

static const char *const stream_name[2] = {"stdout", "stderr"};

/* A task's number as results/ names it: plain decimal, below the job's task count. */
static bool task_of(const job_t *j, const char *name, uint32_t *task)
{
    char *end = NULL;
    if (name[0] < '0' || name[0] > '9' || (name[0] == '0' && name[1]) || strlen(name) > 10)
        return false;
    unsigned long v = strtoul(name, &end, 10);
    if (*end || v >= j->man.desc.tasks)
        return false;
    *task = (uint32_t)v;
    return true;
}

node_t *fs__live_dir(fs_t *fs, node_t *p, job_t *j, const char *name)
{
    node_t *n = fs__node_child(p, name);
    uint32_t task;
    pool_live_t lv;
    bool live = !j->gone && j->published && task_of(j, name, &task) && pool_task_live(fs->pool, j, task, &lv) == 0;
    if (n && n->kind == N_LIVE_DIR && live && n->live->run == lv.run)
        return n;
    if (n && n->kind == N_LIVE_DIR)
        fs__node_detach(fs, n); /* another run's: its nodes go, the new run gets new ones */
    else if (n)
        return NULL; /* a result's node: not ours to change */
    if (!live)
        return NULL;
    n = fs__node_new(fs, p, name, N_LIVE_DIR, j);
    n->live = xmalloc(sizeof(*n->live));
    *n->live = (fs_live_t){.task = task, .run = lv.run, .fd = -1};
    pool_job_ref(j);
    return n;
}

node_t *fs__live_file(fs_t *fs, node_t *d, const char *name)
{
    int s = !strcmp(name, "stdout") ? 0 : !strcmp(name, "stderr") ? 1 : -1;
    if (s < 0)
        return NULL;
    node_t *n = fs__node_child(d, name);
    if (n)
        return n;
    n = fs__node_new(fs, d, name, N_LIVE_FILE, d->job);
    n->live = xmalloc(sizeof(*n->live));
    *n->live = (fs_live_t){.task = d->live->task, .run = d->live->run, .fd = -1};
    n->file = s;
    pool_job_ref(d->job);
    return n;
}

/* The live file of n's run if it still has live output here (borrowed), else NULL. */
static const char *live_path(fs_t *fs, const node_t *n)
{
    pool_live_t lv;
    if (n->job->gone || pool_task_live(fs->pool, n->job, n->live->task, &lv) != 0 || lv.run != n->live->run)
        return NULL;
    return lv.path[n->file];
}

static char *result_path(fs_t *fs, const node_t *n)
{
    return xasprintf("%s/results/%s/%u/%s", fs->data_dir, n->job->id, n->live->task, stream_name[n->file]);
}

int fs__live_stat(fs_t *fs, const node_t *n, struct stat *st)
{
    if (n->live->fd >= 0 && fstat(n->live->fd, st) == 0)
        return 0; /* what its readers read (a local disk's fstat: no path walked) */
    const char *lp = live_path(fs, n);
    if (lp && lstat(lp, st) == 0)
        return S_ISREG(st->st_mode) ? 0 : -ENOENT;
    char *rp = result_path(fs, n); /* its run is over, or its file went into the result meanwhile */
    int rc = lstat(rp, st) == 0 ? (S_ISREG(st->st_mode) ? 0 : -ENOENT) : -errno;
    free(rp);
    return rc;
}

int fs__live_open(fs_t *fs, node_t *n)
{
    const char *lp = live_path(fs, n);
    int fd = lp ? open(lp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
    if (fd < 0) {
        char *rp = result_path(fs, n);
        fd = open(rp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        int err = errno;
        free(rp);
        if (fd < 0)
            return -err;
    }
    if (n->live->fd < 0) /* the first reader's file gives the attributes while any reader holds it */
        n->live->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    n->live->opens++;
    return fd;
}

void fs__live_closed(node_t *n)
{
    if (n->live->opens > 0 && --n->live->opens == 0 && n->live->fd >= 0) {
        close(n->live->fd);
        n->live->fd = -1;
    }
}

typedef struct listing {
    fs_t *fs;
    job_t *j;
    const node_t *r;
    void (*add)(void *arg, const char *name);
    void *arg;
} listing_t;

static void list_one(void *arg, uint32_t task)
{
    listing_t *l = arg;
    char name[16];
    snprintf(name, sizeof(name), "%u", task);
    if (l->r->kind == N_RES) { /* a result on disk is listed already */
        char *p = xasprintf("%s/results/%s/%s", l->fs->data_dir, l->j->id, name);
        struct stat st;
        bool there = lstat(p, &st) == 0;
        free(p);
        if (there)
            return;
    } else {
        const node_t *k = fs__node_child((node_t *)l->r, name);
        if (k && k->kind != N_LIVE_DIR)
            return; /* a mirrored result */
    }
    l->add(l->arg, name);
}

void fs__live_list(fs_t *fs, job_t *j, const node_t *r, void (*add)(void *arg, const char *name), void *arg)
{
    if (j->gone || !j->published)
        return;
    listing_t l = {.fs = fs, .j = j, .r = r, .add = add, .arg = arg};
    pool_live_foreach(fs->pool, j, list_one, &l);
}
