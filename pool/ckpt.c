/*
 * ckpt.c: a task's checkpoint travels with it when it is given back (docs/job-format.md,
 * "Checkpoints").
 *
 * A task stopped with notice because the volunteer's owner stayed (--when idle) leaves what it
 * wrote under /task/checkpoint/. In the thread pool those files are moved out of its directory into
 * DATA/ckpt/<job>.<task>.<n>/ and hashed into a checkpoint manifest (no copy into the store: its
 * blocks are served from that directory, re-hashed before each is sent, like a result's); the
 * manifest is served at /v1/ckpt/<job>/<task>. Then the task goes back: a remote one with
 * /v1/release/<job>/<task>?ckpt=<id> to its submitter, a local one to the core's waiting tasks.
 *
 * The submitter, told of a checkpoint, fetches its manifest from that volunteer (the SHA-256 must
 * be the id it was told; decoded and held against the job's disk in the thread pool), then every
 * block of it (verified by the fetcher), writes the files into its own DATA/ckpt/ directory, and
 * only then puts the task back to waiting: so the next run, anywhere, starts from it. Its lease
 * answer names the checkpoint of each task it hands out (wire.h), and a volunteer given one fetches
 * it from the submitter the same way before the task starts (without a slot of its own meanwhile:
 * a checkpoint being fetched counts as a task running, for pool__room). A task starts with a copy
 * of the checkpoint in /task/checkpoint/ (exec_spec_t.checkpoint_dir); it is never an output.
 *
 * While it travels the task's lease is extended to POOL_CKPT_LEASE_MS (the submitter does it on
 * the release, and on a lease that names a checkpoint). A volunteer drops its copy once the
 * submitter says it holds it (the release is asked again until 200: volunteer.c); a run that
 * starts from one holds its directory until it ends (pool__ckpt_take/put), whatever replaces it.
 * At most POOL_MAX_CKPT_FETCHES fetches at once, one per task; held checkpoints total at most
 * --cache.
 *
 * Who may fetch one: of a job of another peer, only its submitter; of our own job, only the key
 * that holds the task's lease. Jobs with replicas > 1 carry no checkpoint: one replica's state must
 * not seed another's run, or a liar could steer the honest replicas that vote against it.
 *
 * A checkpoint is dropped when its task is decided (the submitter), ends here other than given back
 * (a volunteer), or its job goes. Each sits in DATA/ckpt/ as its files and its manifest beside
 * them (<dir>.json, written durably once the files are): at start, pool__ckpt_load takes back
 * those of our own jobs' undecided tasks, so a task given back when this peer stopped (pool_drain:
 * the same give-back, for every task) starts from it after the restart; the rest are removed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/files.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "pool/internal.h"
#include "pool/work.h"

struct ckpt {
    char job[HASH_HEX_LEN + 1];
    uint32_t task;
    char id[HASH_HEX_LEN + 1];
    char *bytes; /* the canonical manifest */
    size_t len;
    manifest_t man;
    char *dir; /* DATA/ckpt/<job>.<task>.<n>: its files */
    uint64_t size;
    unsigned users;  /* tasks starting from it (pool__ckpt_take): its directory stays until they end */
    bool dropped;    /* no longer the task's checkpoint; freed once it has no user */
    struct ckpt *next;
};

static ckpt_t *find(pool_t *pool, const char *job, uint32_t task)
{
    for (ckpt_t *c = pool->ckpts; c; c = c->next)
        if (!c->dropped && c->task == task && !strcmp(c->job, job))
            return c;
    return NULL;
}

static void unlink_free(pool_t *pool, ckpt_t *c)
{
    if (!c->dropped) {
        c->dropped = true;
        pool->ckpts_held--;
        pool->ckpts_bytes -= c->size;
        if (pool->serve)
            serve_remove(pool->serve, c);
    }
    if (c->users && !pool->stopping)
        return; /* a task's PREP may be copying from it: pool__ckpt_put frees it */
    for (ckpt_t **pp = &pool->ckpts; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    if (!pool->stopping) /* when stopping, they stay: the next start takes them again, or removes them */
        pool__rm_later(pool, xasprintf("%s.json", c->dir), c->dir);
    else
        free(c->dir);
    manifest_release(&c->man);
    free(c->bytes);
    free(c);
}

void pool__ckpt_drop(pool_t *pool, const job_t *j, uint32_t task)
{
    for (ckpt_t *c = pool->ckpts, *next; c; c = next) {
        next = c->next;
        if (!strcmp(c->job, j->id) && (task == UINT32_MAX || c->task == task))
            unlink_free(pool, c);
    }
}

void pool__ckpt_free_all(pool_t *pool)
{
    while (pool->ckpts)
        unlink_free(pool, pool->ckpts);
}

/* Takes man, bytes and dir as task's checkpoint of job (in place of any earlier one) and serves it. */
static ckpt_t *install(pool_t *pool, const char *job, uint32_t task, manifest_t *man, char *bytes, size_t len,
                       char *dir)
{
    ckpt_t *old = find(pool, job, task);
    if (old)
        unlink_free(pool, old);
    ckpt_t *c = xcalloc(1, sizeof(*c));
    memcpy(c->job, job, sizeof(c->job));
    c->task = task;
    hash_t id;
    manifest_id(bytes, len, &id);
    hash_to_hex(&id, c->id);
    c->man = *man;
    manifest_init(man);
    c->bytes = bytes;
    c->len = len;
    c->dir = dir;
    for (size_t i = 0; i < c->man.n_files; i++)
        c->size += c->man.files[i].size;
    c->next = pool->ckpts;
    pool->ckpts = c;
    pool->ckpts_held++;
    pool->ckpts_bytes += c->size;
    int rc = pool->serve ? serve_add_result(pool->serve, &c->man, c->dir, c) : 0;
    if (rc)
        log_warn("a checkpoint is not served: %s", strerror(-rc));
    return c;
}

const char *pool__ckpt_take(pool_t *pool, const job_t *j, uint32_t task, void **handle)
{
    ckpt_t *c = find(pool, j->id, task);
    *handle = c;
    if (!c)
        return NULL;
    c->users++;
    return c->dir;
}

void pool__ckpt_put(pool_t *pool, void *handle)
{
    ckpt_t *c = handle;
    if (c && --c->users == 0 && c->dropped)
        unlink_free(pool, c);
}

const char *pool__ckpt_id(pool_t *pool, const job_t *j, uint32_t task)
{
    ckpt_t *c = find(pool, j->id, task);
    return c ? c->id : NULL;
}

static char *new_dir(pool_t *pool, const job_t *j, uint32_t task)
{
    /* n: this start's sequence after the start time, so a later one sorts after any earlier one */
    return xasprintf("%s/ckpt/%s.%u.%" PRIu64 "%06" PRIu64, pool->data_dir, j->id, task, pool__epoch_ms(pool),
                     ++pool->stage_seq % 1000000);
}

static int fsync_at(int dirfd, const char *name, int flags)
{
    int fd = openat(dirfd, name, flags | O_RDONLY | O_NOFOLLOW | O_CLOEXEC), rc = 0;
    if (fd < 0 || fsync(fd) != 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    return rc;
}

static int fsync_file(void *arg, int dirfd, const char *name, const char *rel, const struct stat *st)
{
    (void)arg;
    (void)rel;
    return S_ISREG(st->st_mode) ? fsync_at(dirfd, name, 0) : 0;
}

static int fsync_dir(void *arg, int dirfd, const char *name)
{
    (void)arg;
    return fsync_at(dirfd, name, O_DIRECTORY);
}

/* Thread pool: dir's manifest beside it (dir.json), durable, once the files are (each file and
 * directory fsync'd first): what a restart takes the checkpoint back from. */
static int write_manifest(const char *dir, const char *bytes, size_t len)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int frc = dfd < 0 ? -errno : files_walk(dfd, PATH_MAX, 0, fsync_file, fsync_dir, NULL);
    if (!frc && fsync(dfd) != 0)
        frc = -errno;
    if (dfd >= 0)
        close(dfd);
    if (frc)
        return frc;
    char *tmp = xasprintf("%s.json.tmp", dir), *fin = xasprintf("%s.json", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644), rc = 0;
    if (fd < 0 || write(fd, bytes, len) != (ssize_t)len || fsync(fd) != 0)
        rc = errno ? -errno : -EIO;
    if (fd >= 0 && close(fd) != 0 && !rc)
        rc = -EIO;
    if (!rc && rename(tmp, fin) != 0)
        rc = -errno;
    if (!rc) { /* and the rename itself */
        char *parent = xstrdup(fin);
        *strrchr(parent, '/') = '\0';
        rc = fsync_at(AT_FDCWD, parent, O_DIRECTORY);
        free(parent);
    }
    if (rc)
        unlink(tmp);
    free(tmp);
    free(fin);
    return rc;
}

/* ---- a task given back: its checkpoint collected, then the task released ---- */

typedef struct cksave {
    uv_work_t req;
    pool_t *pool;
    job_t *job;
    uint32_t task;
    bool remote;
    char *run_dir, *work_dir, *dir;
    manifest_t man;
    char *bytes;
    size_t len;
    int rc;
    char why[256];
} cksave_t;

static void save_work(uv_work_t *req)
{
    cksave_t *s = req->data;
    s->rc = pool__ckpt_collect(s->work_dir, s->dir, s->job->man.desc.disk_bytes, &s->man, s->why, sizeof(s->why));
    if (!s->rc && manifest_encode(&s->man, &s->bytes, &s->len) != 0) {
        s->rc = -EINVAL;
        snprintf(s->why, sizeof(s->why), "its manifest cannot be encoded");
        files_rm_rf(s->dir);
    }
    if (!s->rc && (s->rc = write_manifest(s->dir, s->bytes, s->len)) != 0) {
        snprintf(s->why, sizeof(s->why), "writing its manifest: %s", strerror(-s->rc));
        files_rm_rf(s->dir);
    }
    files_rm_rf(s->run_dir);
}

static void give_back(pool_t *pool, job_t *j, uint32_t task, bool remote, const char *ckpt_id)
{
    if (pool->stopping || j->gone)
        return;
    if (remote)
        pool->up.vol_release(pool, j, task, ckpt_id);
    else
        (void)coord_release(pool->coord, j->id, task, POOL_SELF); /* waits again, for a volunteer */
}

static void save_done(uv_work_t *req, int status)
{
    cksave_t *s = req->data;
    pool_t *pool = s->pool;
    job_t *j = s->job;
    pool->pending_work--;
    const char *id = NULL;
    uint64_t size = 0;
    for (size_t i = 0; !s->rc && i < s->man.n_files; i++)
        size += s->man.files[i].size;
    if (!s->rc && pool->cache_quota && pool->ckpts_bytes + size > pool->cache_quota) {
        snprintf(s->why, sizeof(s->why), "the checkpoints held here would be over %llu bytes (--cache)",
                 (unsigned long long)pool->cache_quota);
        s->rc = -ENOSPC;
    }
    if (!s->rc && !status && !pool->stopping && !j->gone) {
        ckpt_t *c = install(pool, j->id, s->task, &s->man, s->bytes, s->len, s->dir);
        s->bytes = NULL;
        s->dir = NULL;
        id = c->id;
        pool->ckpts_saved++;
        log_info("job %s task %u: its checkpoint (%zu file%s, %" PRIu64 " bytes, %.16s...) goes with it", j->name,
                 s->task, c->man.n_files, c->man.n_files == 1 ? "" : "s", c->size, c->id);
    } else if (s->rc && s->rc != -ENOENT) {
        log_warn("job %s task %u: no checkpoint goes with it: %s", j->name, s->task, s->why);
    }
    give_back(pool, j, s->task, s->remote, id);
    manifest_release(&s->man);
    free(s->bytes);
    if (s->dir && !pool->stopping) /* not taken: over --cache, or the job went meanwhile */
        pool__rm_later(pool, xasprintf("%s.json", s->dir), s->dir);
    else
        free(s->dir);
    free(s->run_dir);
    free(s->work_dir);
    pool_job_unref(j);
    free(s);
    pool->ckpt_saving--;
    pool__drain_check(pool);
}

void pool__ckpt_given_back(pool_t *pool, running_t *r)
{
    job_t *j = r->job;
    if (pool->stopping || j->gone || j->man.desc.replicas > 1) { /* no checkpoint: see the top */
        if (!pool->stopping) {
            pool__rm_later(pool, xstrdup(r->run_dir), NULL);
        }
        give_back(pool, j, r->task, r->remote, NULL);
        return;
    }
    cksave_t *s = xcalloc(1, sizeof(*s));
    s->req.data = s;
    s->pool = pool;
    s->job = j;
    s->task = r->task;
    s->remote = r->remote;
    s->run_dir = xstrdup(r->run_dir);
    s->work_dir = xstrdup(r->work_dir);
    s->dir = new_dir(pool, j, r->task);
    manifest_init(&s->man);
    s->man.name = xasprintf("checkpoint.%u", r->task);
    s->man.created_ms = j->man.created_ms;
    pool_job_ref(j);
    pool->ckpt_saving++;
    pool->pending_work++;
    uv_queue_work(pool->loop, &s->req, save_work, save_done);
}

/* ---- a checkpoint fetched from another peer ---- */

typedef struct ckfetch {
    uv_work_t req;
    pool_t *pool;
    job_t *job;
    uint32_t task;
    char id[HASH_HEX_LEN + 1];
    char *peer;
    char *body; /* the manifest as fetched */
    size_t len;
    manifest_t man;
    char *dir;
    unsigned missing;
    int status;
    char why[256];
    pool_ckpt_cb cb;
    void *arg;
    struct ckfetch *next; /* pool->ckfetches */
} ckfetch_t;

bool pool__ckpt_valid_id(const char *id)
{
    size_t n = strlen(id);
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    return n == HASH_HEX_LEN;
}

bool pool__ckpt_fetching(pool_t *pool, const job_t *j, uint32_t task)
{
    for (ckfetch_t *f = pool->ckfetches; f; f = f->next)
        if (f->job == j && f->task == task)
            return true;
    return false;
}

static void fetch_end(ckfetch_t *f, int status, const char *why)
{
    pool_t *pool = f->pool;
    job_t *j = f->job;
    for (ckfetch_t **pp = &pool->ckfetches; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            pool->n_ckfetches--;
            break;
        }
    if (status && !pool->stopping && !j->gone)
        log_warn("job %s task %u: the checkpoint %.16s... from %s is not taken: %s", j->name, f->task, f->id, f->peer,
                 why);
    if (!status && (pool->stopping || j->gone))
        status = -ECANCELED;
    if (!status) {
        install(pool, j->id, f->task, &f->man, f->body, f->len, f->dir);
        f->body = NULL;
        f->dir = NULL;
        pool->ckpts_fetched++;
        log_info("job %s task %u: took its checkpoint %.16s... from %s", j->name, f->task, f->id, f->peer);
    }
    if (f->dir)
        pool__rm_later(pool, xasprintf("%s.json", f->dir), f->dir);
    f->cb(pool, j, f->task, status, f->arg);
    manifest_release(&f->man);
    free(f->body);
    free(f->peer);
    pool_job_unref(j);
    free(f);
}

static void write_work(uv_work_t *req)
{
    ckfetch_t *f = req->data;
    f->status = pool__files_write(f->pool->store, &f->man, NULL, f->dir, true, f->why, sizeof(f->why));
    if (!f->status && (f->status = write_manifest(f->dir, f->body, f->len)) != 0)
        snprintf(f->why, sizeof(f->why), "writing its manifest: %s", strerror(-f->status));
}

static void write_done(uv_work_t *req, int status)
{
    ckfetch_t *f = req->data;
    f->pool->pending_work--;
    fetch_end(f, f->status ? f->status : status, f->why);
}

static void block_done(const hash_t *h, int status, void *arg)
{
    (void)h;
    ckfetch_t *f = arg;
    if (status && !f->status) {
        f->status = status;
        snprintf(f->why, sizeof(f->why), "fetching its blocks: %s", strerror(-status));
    }
    if (--f->missing > 0)
        return;
    if (f->status || f->pool->stopping || f->job->gone)
        return fetch_end(f, f->status ? f->status : -ECANCELED, f->status ? f->why : "the job went");
    f->dir = new_dir(f->pool, f->job, f->task);
    f->pool->pending_work++;
    uv_queue_work(f->pool->loop, &f->req, write_work, write_done);
}

/* Thread pool: the manifest is the one named, within every limit and the job's disk. */
static void decode_work(uv_work_t *req)
{
    ckfetch_t *f = req->data;
    hash_t want, got;
    manifest_id(f->body, f->len, &got);
    if (hash_from_hex(f->id, HASH_HEX_LEN, &want) != 0 || !hash_equal(&want, &got)) {
        f->status = -EBADMSG;
        snprintf(f->why, sizeof(f->why), "its manifest is not the checkpoint named");
    } else if ((f->status = manifest_decode(&f->man, f->body, f->len, f->why, sizeof(f->why))) == 0) {
        f->status = pool__ckpt_fits(&f->man, f->job->man.desc.disk_bytes, f->why, sizeof(f->why));
    }
}

static void decode_done(uv_work_t *req, int status)
{
    ckfetch_t *f = req->data;
    f->pool->pending_work--;
    if (f->status || status || f->pool->stopping || f->job->gone)
        return fetch_end(f, f->status ? f->status : -ECANCELED, f->status ? f->why : "the job went");
    uint64_t size = 0;
    for (size_t i = 0; i < f->man.n_files; i++)
        size += f->man.files[i].size; /* at most the job's disk: pool__ckpt_fits */
    uint64_t cap = f->pool->cache_quota;
    if (cap && f->pool->ckpts_bytes + size > cap) {
        snprintf(f->why, sizeof(f->why), "the checkpoints held here would be over %llu bytes (--cache)",
                 (unsigned long long)cap);
        return fetch_end(f, -ENOSPC, f->why);
    }
    f->missing = 1;
    if (pool__fetch_blocks(f->pool, &f->man, f->peer, block_done, f, &f->missing)) {
        f->status = -EIO;
        snprintf(f->why, sizeof(f->why), "the fetcher refused a block");
    }
    block_done(NULL, 0, f);
}

static void on_manifest(int status, unsigned code, const char *body, size_t len, void *arg)
{
    ckfetch_t *f = arg;
    if (status || code != 200) {
        char why[96];
        snprintf(why, sizeof(why), "GET /v1/ckpt: %s %u", status ? strerror(-status) : "HTTP", code);
        return fetch_end(f, status ? status : -EIO, why);
    }
    if (f->pool->stopping || f->job->gone)
        return fetch_end(f, -ECANCELED, "the job went");
    f->body = xmalloc(len ? len : 1); /* the fetcher's buffer is valid during this call only */
    memcpy(f->body, body, len);
    f->len = len;
    f->pool->pending_work++;
    uv_queue_work(f->pool->loop, &f->req, decode_work, decode_done);
}

static void nothing_work(uv_work_t *req) { (void)req; }

static void held_done(uv_work_t *req, int status)
{
    ckfetch_t *f = req->data;
    f->pool->pending_work--;
    (void)status;
    f->cb(f->pool, f->job, f->task, f->pool->stopping || f->job->gone ? -ECANCELED : 0, f->arg);
    free(f->peer);
    pool_job_unref(f->job);
    free(f);
}

int pool__ckpt_fetch(pool_t *pool, job_t *j, uint32_t task, const char *peer, const char *id, pool_ckpt_cb cb,
                     void *arg)
{
    if (!pool__ckpt_valid_id(id) || j->man.desc.replicas > 1 || pool->stopping)
        return -EINVAL;
    if (pool__ckpt_fetching(pool, j, task) || pool->n_ckfetches >= POOL_MAX_CKPT_FETCHES)
        return -EBUSY;
    ckpt_t *have = find(pool, j->id, task);
    ckfetch_t *f = xcalloc(1, sizeof(*f));
    f->req.data = f;
    f->pool = pool;
    f->job = j;
    f->task = task;
    f->cb = cb;
    f->arg = arg;
    pool_job_ref(j);
    if (have && !strcmp(have->id, id)) { /* this peer's own (it gave the task back, and has it again) */
        pool->pending_work++;
        uv_queue_work(pool->loop, &f->req, nothing_work, held_done); /* cb never fires from inside the call */
        return 0;
    }
    memcpy(f->id, id, sizeof(f->id));
    f->peer = xstrdup(peer);
    manifest_init(&f->man);
    f->next = pool->ckfetches;
    pool->ckfetches = f;
    pool->n_ckfetches++;
    char target[160];
    snprintf(target, sizeof(target), "/v1/ckpt/%s/%u", j->id, task);
    int rc = pool__sget(pool, peer, target, FETCH_MAX_GET_BODY, on_manifest, f);
    if (rc) {
        pool->ckfetches = f->next;
        pool->n_ckfetches--;
        pool_job_unref(j);
        manifest_release(&f->man);
        free(f->peer);
        free(f);
    }
    return rc;
}

/* ---- after a restart ---- */

/* One DATA/ckpt/<job>.<task>.<n>.json: taken back if its job is ours and the task is not decided,
 * in place of one with a smaller n. False: it goes. */
static bool load_one(pool_t *pool, const char *name)
{
    char id[HASH_HEX_LEN + 1], tail[8];
    unsigned task = 0;
    unsigned long long n = 0;
    int used = 0;
    if (sscanf(name, "%64[0-9a-f].%u.%llu%n", id, &task, &n, &used) != 3 || strlen(id) != HASH_HEX_LEN ||
        sscanf(name + used, "%7s", tail) != 1 || strcmp(tail, ".json") != 0)
        return false;
    job_t *j = pool_job_by_id(pool, id);
    task_state_t st;
    if (!j || j->remote || j->gone || task >= j->man.desc.tasks || j->man.desc.replicas > 1 ||
        coord_task(pool->coord, j->id, task, &st, NULL) != 0 || (st != TASK_WAITING && st != TASK_RUNNING))
        return false;
    char *json = xasprintf("%s/ckpt/%s", pool->data_dir, name);
    char *dir = xstrndup(json, strlen(json) - 5);
    char *bytes = NULL, why[200];
    size_t len = 0;
    manifest_t m;
    manifest_init(&m);
    struct stat sb;
    bool ok = files_read_small(json, FETCH_MAX_GET_BODY, &bytes, &len) == 0 &&
              manifest_decode(&m, bytes, len, why, sizeof(why)) == 0 && lstat(dir, &sb) == 0 && S_ISDIR(sb.st_mode) &&
              pool__ckpt_fits(&m, j->man.desc.disk_bytes, why, sizeof(why)) == 0;
    for (size_t i = 0; ok && i < m.n_files; i++) { /* a file cut short (a crash) is no checkpoint */
        char *p = xasprintf("%s/%s", dir, m.files[i].path);
        ok = lstat(p, &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size == m.files[i].size;
        free(p);
    }
    ckpt_t *old = find(pool, j->id, task);
    if (ok && old && strcmp(old->dir, dir) > 0)
        ok = false; /* a later one of the same task is held */
    if (ok) {
        install(pool, j->id, task, &m, bytes, len, dir);
        log_info("job %s task %u: its checkpoint is kept from before the restart", j->name, task);
    } else {
        free(bytes);
        free(dir);
    }
    manifest_release(&m);
    free(json);
    return ok;
}

void pool__ckpt_load(pool_t *pool)
{
    char *root = xasprintf("%s/ckpt", pool->data_dir);
    DIR *d = opendir(root);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && strlen(e->d_name) > 5 && !strcmp(e->d_name + strlen(e->d_name) - 5, ".json"))
            load_one(pool, e->d_name);
    if (d)
        rewinddir(d);
    while (d && (e = readdir(d)) != NULL) { /* what is not held goes */
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *p = xasprintf("%s/%s", root, e->d_name);
        size_t pl = strlen(p);
        bool held = false;
        for (ckpt_t *c = pool->ckpts; c && !held; c = c->next)
            held = !strcmp(c->dir, p) || (pl == strlen(c->dir) + 5 && !strncmp(p, c->dir, pl - 5) &&
                                          !strcmp(p + pl - 5, ".json"));
        if (!held)
            files_rm_rf(p);
        free(p);
    }
    if (d)
        closedir(d);
    free(root);
}

/* ---- GET /v1/ckpt/<job>/<task> ---- */

void pool__ckpt_handle(pool_t *pool, httpd_req_t *r, const char *job_id, uint32_t task, const key_pub_t *caller)
{
    job_t *j = pool_job_by_id(pool, job_id);
    char worker[KEY_PUB_HEX_LEN + 1];
    key_pub_to_hex(caller, worker);
    bool may = j && (j->remote ? j->signed_job && key_pub_equal(&j->submitter, caller)
                               : coord_holds(pool->coord, j->id, task, worker) == 0);
    if (!may)
        return pool__api_error(r, 403, "a checkpoint goes only to its job's submitter or its task's lease holder");
    ckpt_t *c = find(pool, j->id, task);
    if (!c)
        return pool__api_error(r, 404, "no checkpoint of that task here");
    httpd_reply(r, 200, "application/json", c->bytes, c->len);
}
