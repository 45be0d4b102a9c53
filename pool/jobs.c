/*
 * jobs.c: the life of a job on this peer, on the loop thread.
 *
 * staging (a directory being copied into jobs/) -> quiet period -> publishing (hashing in the thread
 * pool) -> running (tasks handed to the sandbox, slots permitting) -> done | failed; or rejected (a
 * bad description: stays writable so it can be fixed in place), or cancelled (rm -r jobs/<name>).
 * Every state change that must survive a crash is written to the database before it is shown.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "core/files.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "pool/auth.h"
#include "pool/internal.h"
#include "pool/work.h"

uint64_t pool_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *pool_job_state_name(pool_job_state_t s)
{
    static const char *const names[] = {"staging", "publishing", "rejected", "running", "done", "failed",
                                        "cancelled"};
    return names[s];
}

job_t *pool_job_by_id(pool_t *pool, const char *id)
{
    for (job_t *j = pool->joblist; j; j = j->next)
        if (j->published && !j->gone && strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

job_t *pool_job_find(pool_t *pool, const char *name)
{
    for (job_t *j = pool->joblist; j; j = j->next)
        if (!j->gone && strcmp(j->name, name) == 0)
            return j;
    return NULL;
}

bool pool_job_over(const job_t *j)
{
    return j->state == POOL_JOB_DONE || j->state == POOL_JOB_FAILED || j->state == POOL_JOB_CANCELLED ||
           j->state == POOL_JOB_REJECTED;
}

void pool__handle_free(uv_handle_t *h) { free(h); }

void pool_job_ref(job_t *j) { j->refs++; }

static void job_free(job_t *j)
{
    pool_t *pool = j->pool;
    for (job_t **pp = &pool->joblist; *pp; pp = &(*pp)->next) {
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    }
    for (size_t i = 0; i < j->n_fail_lines; i++)
        free(j->fail_lines[i]);
    free(j->fail_lines);
    free(j->task_ms);
    free(j->dispatch_t0);
    free(j->dispatch_ms);
    free(j->elapsed_ms);
    for (size_t i = 0; i < j->n_peers; i++)
        free(j->peers[i]);
    free(j->peers);
    if (j->remote && j->published)
        pool->n_remote_jobs--;
    if (pool->up.res_free)
        pool->up.res_free(j);
    if (pool->up.ckpt_drop)
        pool->up.ckpt_drop(pool, j, UINT32_MAX);
    manifest_release(&j->man);
    free(j->reason);
    free(j->unfit);
    free(j->disk_error);
    free(j->read_givebacks);
    decline_table_free(j->declines);
    free(j->publishing);
    free(j->name);
    free(j);
}

void pool_job_unref(job_t *j)
{
    if (--j->refs == 0 && j->gone)
        job_free(j);
}

static void view_added(job_t *j)
{
    if (j->pool->view.job_added)
        j->pool->view.job_added(j->pool->view.arg, j);
}

static void view_changed(job_t *j)
{
    if (j->pool->view.job_changed)
        j->pool->view.job_changed(j->pool->view.arg, j);
}

void pool__job_changed(job_t *j) { view_changed(j); }

/* Removing a tree can take long (a job of 100k files): the thread pool does it. The names are never
 * reused (a job id is new on every publish), so nothing waits for them to go. b may be NULL. */
typedef struct rmwork {
    uv_work_t req;
    pool_t *pool;
    char *a, *b;
} rmwork_t;

static void rm_work(uv_work_t *req)
{
    rmwork_t *w = req->data;
    files_rm_rf(w->a);
    if (w->b)
        files_rm_rf(w->b);
}

static void rm_done(uv_work_t *req, int status)
{
    rmwork_t *w = req->data;
    w->pool->pending_work--;
    free(w->a);
    free(w->b);
    free(w);
}

static rmwork_t *rm_new(pool_t *pool, char *a, char *b)
{
    rmwork_t *w = xcalloc(1, sizeof(*w));
    w->req.data = w;
    w->pool = pool;
    w->a = a;
    w->b = b;
    return w;
}

void pool__rm_later(pool_t *pool, char *a, char *b)
{
    rmwork_t *w = rm_new(pool, a, b);
    pool->pending_work++;
    uv_queue_work(pool->loop, &w->req, rm_work, rm_done);
}

/* A removed job's row is gone (or could not go: its files stay, and it comes back on restart). */
static void row_deleted(void *arg, int rc)
{
    rmwork_t *w = arg;
    if (rc && rc != -ENOENT) {
        log_error("forgetting a job: its record could not be deleted (%s); its files are kept", strerror(-rc));
        rm_done(&w->req, 0);
        return;
    }
    uv_queue_work(w->pool->loop, &w->req, rm_work, rm_done); /* pending_work counted by the caller */
}

/* ---- a removed job's inputs ---- */

typedef struct relwork {
    uv_work_t req;
    pool_t *pool;
    char *name;
    char *marker, *dir; /* ours: written first, then the inputs go */
    hash_t *h;          /* another peer's: its blocks ... */
    size_t n;
    hash_t *keep;       /* ... but those another job here holds */
    size_t nkeep;
    size_t removed;
    int rc;
} relwork_t;

int pool__cmp_hash(const void *a, const void *b) { return memcmp(a, b, sizeof(hash_t)); }

static void rel_work(uv_work_t *req)
{
    relwork_t *w = req->data;
    if (w->marker) {
        /* The marker first: a restart that finds it knows the job was removed, even if the
         * removal of its inputs was cut short (it then finishes it). */
        int fd = open(w->marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0 || fsync(fd) != 0) {
            w->rc = -errno;
        } else {
            w->rc = files_rm_rf(w->dir);
        }
        if (fd >= 0)
            close(fd);
        return;
    }
    if (w->nkeep) /* qsort(NULL, 0, ...) is undefined */
        qsort(w->keep, w->nkeep, sizeof(hash_t), pool__cmp_hash);
    for (size_t i = 0; i < w->n; i++) {
        if (w->nkeep && bsearch(&w->h[i], w->keep, w->nkeep, sizeof(hash_t), pool__cmp_hash))
            continue;
        if (store_remove(w->pool->store, &w->h[i]) == 0)
            w->removed++;
    }
}

static void rel_done(uv_work_t *req, int status)
{
    relwork_t *w = req->data;
    w->pool->pending_work--;
    if (w->marker && w->rc)
        log_warn("job %s: its inputs could not all be freed: %s", w->name, strerror(-w->rc));
    else if (w->marker)
        log_info("job %s: removed and over: its inputs are freed (its results stay)", w->name);
    else
        log_info("job %s: removed by its submitter: %zu of its blocks freed here", w->name, w->removed);
    free(w->name);
    free(w->marker);
    free(w->dir);
    free(w->h);
    free(w->keep);
    free(w);
}

void pool__manifest_blocks(const manifest_t *m, hash_t **v, size_t *n, size_t *cap)
{
    for (size_t i = 0; i < m->n_files; i++) {
        const manifest_file_t *f = &m->files[i];
        if (!f->n_blocks) /* an empty file (a result's empty stderr): no blocks, and blocks may be NULL */
            continue;
        if (*n + f->n_blocks > *cap) {
            *cap = (*n + f->n_blocks) * 2;
            *v = xreallocarray(*v, *cap, sizeof(hash_t));
        }
        memcpy(*v + *n, f->blocks, f->n_blocks * sizeof(hash_t));
        *n += f->n_blocks;
    }
}

void pool__job_release_inputs(job_t *j)
{
    pool_t *pool = j->pool;
    if (!j->published || j->listed || j->gone || j->inputs_gone || !pool_job_over(j) || pool->stopping)
        return;
    j->inputs_gone = true;
    /* Nothing more of its inputs is served from here; its results still are. */
    pool__blocks_remove_job(pool, j);
    pool__blocks_add_results(pool, j);
    relwork_t *w = xcalloc(1, sizeof(*w));
    w->req.data = w;
    w->pool = pool;
    w->name = xstrdup(j->name);
    if (!j->remote) {
        w->marker = xasprintf("%s/inputs/%s.removed", pool->data_dir, j->id);
        w->dir = xasprintf("%s/inputs/%s", pool->data_dir, j->id);
    } else {
        size_t cap = 0, kcap = 0;
        pool__manifest_blocks(&j->man, &w->h, &w->n, &cap);
        for (job_t *k = pool->joblist; k; k = k->next) /* blocks another job here still holds stay */
            if (k != j && k->remote && k->published && !k->gone && !k->inputs_gone)
                pool__manifest_blocks(&k->man, &w->keep, &w->nkeep, &kcap);
    }
    pool->pending_work++;
    uv_queue_work(pool->loop, &w->req, rel_work, rel_done);
}

/* Forgets a job entirely: its nodes, records and results. */
static void job_forget(job_t *j)
{
    pool_t *pool = j->pool;
    if (j->gone)
        return;
    exec_forget_job(pool->exec, j->id);
    if (pool->view.job_removed)
        pool->view.job_removed(pool->view.arg, j);
    j->view = NULL;
    j->listed = false;
    if (j->published) {
        pool__blocks_remove_job(pool, j);
        coord_remove_job(pool->coord, j->id);
        /* its files go once its row has: a restart never finds a job without its inputs */
        rmwork_t *w = rm_new(pool, xasprintf("%s/results/%s", pool->data_dir, j->id),
                             xasprintf("%s/inputs/%s%s", pool->data_dir, j->id, j->inputs_gone ? ".removed" : ""));
        pool->pending_work++;
        db_post_job_delete(pool->db, j->id, row_deleted, w);
    }
    j->gone = true;
    if (j->refs == 0)
        job_free(j);
}

int pool_job_forget(job_t *j)
{
    if (j->gone || j->remote || !j->published || j->listed || !pool_job_over(j))
        return -EBUSY;
    log_info("job %s: its results were removed: the job is forgotten", j->name);
    job_forget(j);
    return 0;
}

static job_t *job_alloc(pool_t *pool, const char *name, pool_job_state_t state)
{
    job_t *old = pool_job_find(pool, name);
    if (old)
        job_forget(old); /* a finished job of the same name is replaced by the new one */
    job_t *j = xcalloc(1, sizeof(*j));
    j->pool = pool;
    j->name = xstrdup(name);
    j->state = state;
    manifest_init(&j->man);
    job_t **pp = &pool->joblist;
    while (*pp)
        pp = &(*pp)->next;
    *pp = j;
    return j;
}

/* A staged job's directory is made in the thread pool (a mkdir waits for the disk's journal). Its
 * record exists from the start, marked creating, so the name is taken at once: pool_job_find finds
 * it, and a rename onto the name, a second stage of it or another peer's job of that name is
 * refused or named otherwise as for any live job. The view hears of it only once it is made. */
typedef struct stagework {
    uv_work_t req;
    job_t *job; /* held (refs) */
    char *path;
    int rc;
    pool_stage_cb cb;
    void *arg;
} stagework_t;

static void stage_work(uv_work_t *req)
{
    stagework_t *w = req->data;
    w->rc = mkdir(w->path, 0755) == 0 || errno == EEXIST ? 0 : -errno;
}

static void stage_done(uv_work_t *req, int status)
{
    stagework_t *w = req->data;
    job_t *j = w->job;
    pool_t *pool = j->pool;
    pool->pending_work--;
    j->creating = false;
    int rc = status ? status : w->rc; /* status: items are never cancelled */
    if (rc)
        log_error("creating the staging directory of %s: %s", j->name, strerror(-rc));
    else if (pool->stopping || j->gone)
        rc = -ECANCELED;
    if (rc) {
        j->gone = true; /* never reported: nothing to tell the view */
    } else {
        j->listed = true;
        view_added(j);
    }
    w->cb(w->arg, rc ? NULL : j, rc);
    pool_job_unref(j);
    free(w->path);
    free(w);
}

int pool_job_stage(pool_t *pool, const char *name, pool_stage_cb cb, void *arg)
{
    if (!pool || !name || !cb)
        return -EINVAL;
    if (pool->stopping)
        return -ECANCELED;
    job_t *old = pool_job_find(pool, name);
    if (old && !pool_job_over(old))
        return -EEXIST; /* live, or being staged already */
    stagework_t *w = xcalloc(1, sizeof(*w));
    w->req.data = w;
    w->job = job_alloc(pool, name, POOL_JOB_STAGING);
    w->job->creating = true;
    pool_job_ref(w->job);
    w->path = xasprintf("%s/staging/%s", pool->data_dir, name);
    w->cb = cb;
    w->arg = arg;
    pool->pending_work++;
    uv_queue_work(pool->loop, &w->req, stage_work, stage_done);
    return 0;
}

static void set_reason(job_t *j, const char *why)
{
    free(j->reason);
    j->reason = why ? xstrdup(why) : NULL;
}

void pool__job_forget_remote(job_t *j)
{
    log_info("job %s (%s): its submitter %s no longer lists it; it is removed here", j->name, j->id, j->peers[0]);
    for (running_t *r = j->pool->running; r; r = r->next) /* tasks it was running for it stop */
        if (r->job == j && r->et)
            exec_task_cancel(r->et);
    j->state = POOL_JOB_CANCELLED;
    set_reason(j, "removed: its submitter no longer lists it");
    job_forget(j);
}

/* ---- publishing ---- */

/* The job's tasks into the coordination core: each run by `replicas` distinct workers, decided by its quorum. */
int pool__coord_add(pool_t *pool, const char *id, const jobdesc_t *d)
{
    int rc = coord_add_job(pool->coord, id, d->tasks, d->replicas);
    if (!rc && ((rc = coord_set_quorum(pool->coord, id, jobdesc_quorum(d), jobdesc_max_replicas(d))) != 0 ||
                (rc = coord_set_adaptive(pool->coord, id, d->adaptive)) != 0))
        coord_remove_job(pool->coord, id);
    return rc;
}

typedef struct pubwork {
    uv_work_t req;
    job_t *job;
    uint64_t gen;
    char *root;
    manifest_t man;
    char *bytes;  /* the manifest, encoded */
    size_t len;
    char id[HASH_HEX_LEN + 1];
    char sig[KEY_SIG_HEX_LEN + 1]; /* this peer's signature of the id */
    int rc;
    char why[512];
    size_t endorse_bad; /* lines or files of DATA/endorsements/ not used */
    char endorse_why[320];
} pubwork_t;

typedef struct endorse_load {
    pubwork_t *pw;
    key_pub_t self;
    uint64_t now_ms;
} endorse_load_t;

static int cmp_endorsement(const void *a, const void *b)
{
    return strcmp(((const manifest_endorsement_t *)a)->by, ((const manifest_endorsement_t *)b)->by);
}

/* One file of DATA/endorsements/: the endorsements of our own key that verify and are in force. */
static void endorse_read_file(void *arg, const char *path)
{
    endorse_load_t *el = arg;
    manifest_t *m = &el->pw->man;
    char *buf, why[160] = "";
    size_t len, n = 0, bad = 0;
    auth_endorsement_t *es = NULL;
    int rc = files_read_small(path, AUTH_MAX_TRUST_FILE, &buf, &len);
    if (rc) {
        if (!el->pw->endorse_bad++)
            snprintf(el->pw->endorse_why, sizeof(el->pw->endorse_why), "%s: %s", path, strerror(-rc));
        return;
    }
    auth_endorsement_parse(buf, len, &es, &n, &bad, why, sizeof(why));
    free(buf);
    for (size_t i = 0; i < n; i++) {
        const char *skip = NULL;
        if (!key_pub_equal(&es[i].who, &el->self))
            skip = "it endorses another key than this peer's";
        else if (!auth_endorsement_verify(&es[i]))
            skip = "its signature does not verify";
        else if (!auth_endorsement_current(&es[i], el->now_ms))
            skip = "it has expired";
        char by[KEY_PUB_HEX_LEN + 1];
        key_pub_to_hex(&es[i].by, by);
        size_t k = 0;
        while (!skip && k < m->n_endorsements && strcmp(m->endorsements[k].by, by) != 0)
            k++;
        if (!skip && k < m->n_endorsements) { /* the same authority twice: keep the one lasting longest */
            manifest_endorsement_t *o = &m->endorsements[k];
            if (o->until_ms && (!es[i].until_ms || es[i].until_ms > o->until_ms)) {
                o->until_ms = es[i].until_ms;
                key_sig_to_hex(es[i].sig, o->sig);
            }
            continue;
        }
        if (!skip && m->n_endorsements == MANIFEST_MAX_ENDORSEMENTS)
            skip = "more endorsements than a job carries";
        if (skip) {
            if (!bad++)
                snprintf(why, sizeof(why), "the endorsement by %.16s... is not used: %s", by, skip);
            continue;
        }
        m->endorsements = xreallocarray(m->endorsements, m->n_endorsements + 1, sizeof(*m->endorsements));
        manifest_endorsement_t *e = &m->endorsements[m->n_endorsements++];
        e->by = xstrdup(by);
        e->until_ms = es[i].until_ms;
        e->sig = xmalloc(KEY_SIG_HEX_LEN + 1);
        key_sig_to_hex(es[i].sig, e->sig);
    }
    free(es);
    if (bad && !el->pw->endorse_bad)
        snprintf(el->pw->endorse_why, sizeof(el->pw->endorse_why), "%s: %s", path, why);
    el->pw->endorse_bad += bad;
}

static void publish_work(uv_work_t *req)
{
    pubwork_t *pw = req->data;
    pw->rc = pool__publish_scan(pw->root, &pw->man, pw->why, sizeof(pw->why));
    if (pw->rc)
        return;
    endorse_load_t el = {.pw = pw, .now_ms = pool_now_ms()};
    key_public(pw->job->pool->key, &el.self);
    char *dir = xasprintf("%s/endorsements", pw->job->pool->data_dir);
    files_each_file(dir, endorse_read_file, &el);
    free(dir);
    if (pw->man.n_endorsements > 1)
        qsort(pw->man.endorsements, pw->man.n_endorsements, sizeof(*pw->man.endorsements), cmp_endorsement);
    int rc = manifest_encode(&pw->man, &pw->bytes, &pw->len);
    if (rc) {
        pw->rc = rc;
        snprintf(pw->why, sizeof(pw->why), "internal error while publishing: %s", strerror(-rc));
        return;
    }
    hash_t id;
    manifest_id(pw->bytes, pw->len, &id);
    hash_to_hex(&id, pw->id);
    auth_job_sign(pw->job->pool->key, pw->id, pw->sig); /* the key is only read: safe off the loop */
}

void pool__job_add_remote(pool_t *pool, const char *id, manifest_t *m, const char *peer, const char *sig,
                          const key_pub_t *submitter)
{
    char *name = pool_job_find(pool, m->name) ? xasprintf("%s@%.8s", m->name, id) : xstrdup(m->name);
    if (pool_job_find(pool, name)) {
        free(name);
        return;
    }
    char *res = xasprintf("%s/results/%s", pool->data_dir, id);
    files_mkdir_p(res, 0755);
    free(res);
    job_t *j = job_alloc(pool, name, POOL_JOB_RUNNING);
    free(name);
    manifest_release(&j->man);
    j->man = *m;
    manifest_init(m);
    memcpy(j->id, id, HASH_HEX_LEN + 1);
    j->published = true;
    j->remote = true;
    snprintf(j->sig, sizeof(j->sig), "%s", sig);
    j->signed_job = true;
    j->submitter = *submitter;
    j->peers = xcalloc(1, sizeof(char *));
    j->peers[j->n_peers++] = xstrdup(peer);
    j->listed = true;
    pool->n_remote_jobs++;
    pool__blocks_add_job(pool, j); /* served from the store once fetched (and its /v1/have) */
    view_added(j);
    pool__note(pool, LOG_LEVEL_INFO, "job %s (%s) from %s: %zu files, %u tasks", j->name, j->id, peer,
               j->man.n_files, j->man.desc.tasks);
}

static void job_check_over(job_t *j);
static void fail_line(job_t *j, uint32_t task, const char *reason);

static void pubwork_free(pubwork_t *pw)
{
    job_t *j = pw->job;
    manifest_release(&pw->man);
    free(pw->root);
    free(pw->bytes);
    free(pw);
    pool_job_unref(j);
}

/* Whether the job changed (or went) while it was hashed or recorded: then it is not published now. */
static bool publish_stale(const pubwork_t *pw)
{
    const job_t *j = pw->job;
    return j->gone || j->pool->stopping || pw->gen != j->gen || !j->listed;
}

static void publish_unstale(job_t *j)
{
    if (!j->gone && j->state == POOL_JOB_PUBLISHING) {
        j->state = POOL_JOB_STAGING; /* the view publishes it again once quiet */
        view_changed(j);
    }
}

/* The job's row is committed (rc 0) or was refused: its tree becomes its inputs, its tasks start. */
static void publish_recorded(void *arg, int rc)
{
    pubwork_t *pw = arg;
    job_t *j = pw->job;
    pool_t *pool = j->pool;
    pool->pending_work--;
    if (publish_stale(pw)) {
        if (!rc)
            db_post_job_delete(pool->db, pw->id, NULL, NULL);
        publish_unstale(j);
        return pubwork_free(pw);
    }
    if (!rc) {
        /* The hashed tree itself becomes the job's inputs: nothing is copied. */
        char *in = xasprintf("%s/inputs/%s", pool->data_dir, pw->id);
        char *res = xasprintf("%s/results/%s", pool->data_dir, pw->id);
        rc = rename(pw->root, in) == 0 ? files_mkdir_p(res, 0755) : -errno;
        free(in);
        free(res);
        if (rc)
            db_post_job_delete(pool->db, pw->id, NULL, NULL);
    }
    if (!rc)
        rc = pool__coord_add(pool, pw->id, &pw->man.desc);
    if (rc) {
        j->state = POOL_JOB_REJECTED;
        set_reason(j, "internal error while publishing (see the log)");
        log_error("job %s: publishing failed: %s", j->name, strerror(-rc));
        view_changed(j);
        return pubwork_free(pw);
    }
    memcpy(j->id, pw->id, sizeof(j->id));
    memcpy(j->sig, pw->sig, sizeof(j->sig));
    j->signed_job = true;
    key_public(pool->key, &j->submitter);
    manifest_release(&j->man);
    j->man = pw->man;
    manifest_init(&pw->man);
    j->published = true;
    j->state = POOL_JOB_RUNNING;
    set_reason(j, NULL);
    pool__blocks_add_job(pool, j);
    view_changed(j);
    pool__note(pool, LOG_LEVEL_INFO, "job %s published as %s: %zu files, %u tasks", j->name, j->id, j->man.n_files,
               j->man.desc.tasks);
    pool__jobs_kick(pool);
    pool->up.vol_offer(pool, j, NULL); /* what local slots left, other peers get at once */
    pubwork_free(pw);
}

/* Hashed: the job's row (with its manifest) goes to the writer thread; the rest waits for it. */
static void publish_done(uv_work_t *req, int status)
{
    pubwork_t *pw = req->data;
    job_t *j = pw->job;
    pool_t *pool = j->pool;
    pool->pending_work--;
    if (publish_stale(pw) || status != 0) {
        publish_unstale(j);
        return pubwork_free(pw);
    }
    if (pw->endorse_bad)
        log_warn("job %s: %zu lines or files of %s/endorsements/ not used (the first: %s)", j->name, pw->endorse_bad,
                 pool->data_dir, pw->endorse_why);
    if (pw->rc) {
        j->state = POOL_JOB_REJECTED;
        set_reason(j, pw->why);
        pool__note(pool, LOG_LEVEL_ERROR, "job %s not published: %s", j->name, pw->why);
        view_changed(j);
        return pubwork_free(pw);
    }
    db_job_t row = {.id = pw->id, .name = j->name, .state = DB_JOB_ACTIVE, .created_ms = (int64_t)pw->man.created_ms,
                    .manifest_len = pw->len};
    void *bytes = pw->bytes;
    pw->bytes = NULL;
    pool->pending_work++;
    db_post_job_insert(pool->db, &row, bytes, publish_recorded, pw);
}

void pool_job_publish(job_t *j)
{
    pool_t *pool = j->pool;
    if (j->gone || (j->state != POOL_JOB_STAGING && j->state != POOL_JOB_REJECTED))
        return;
    pubwork_t *pw = xcalloc(1, sizeof(*pw));
    pw->req.data = pw;
    pw->job = j;
    pw->gen = j->gen;
    pw->root = xasprintf("%s/staging/%s", pool->data_dir, j->name);
    manifest_init(&pw->man);
    pw->man.name = xstrdup(j->name);
    pw->man.created_ms = pool_now_ms();
    pw->man.submitter = xstrdup(pool->key_hex); /* the job names its submitter; its id covers it */
    j->state = POOL_JOB_PUBLISHING;
    pool_job_ref(j);
    pool->pending_work++;
    uv_queue_work(pool->loop, &pw->req, publish_work, publish_done);
}

void pool_job_touch(job_t *j)
{
    if (!j || j->published)
        return;
    j->gen++;
    if (j->state == POOL_JOB_REJECTED) { /* being fixed: try again once quiet */
        j->state = POOL_JOB_STAGING;
        set_reason(j, NULL);
    }
}

void pool_job_reject(job_t *j, const char *why)
{
    if (j->gone || j->published || (j->state != POOL_JOB_STAGING && j->state != POOL_JOB_REJECTED))
        return;
    char *clean = xstrdup(why); /* one line of the status text */
    for (char *c = clean; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    bool again = j->state == POOL_JOB_REJECTED && j->reason && !strcmp(j->reason, clean);
    j->state = POOL_JOB_REJECTED;
    free(j->reason);
    j->reason = clean;
    if (!again)
        pool__note(j->pool, LOG_LEVEL_ERROR, "job %s not published: %s", j->name, clean);
    view_changed(j);
}

void pool_job_rename(job_t *j, const char *newname)
{
    job_t *old = pool_job_find(j->pool, newname);
    if (old && old != j)
        job_forget(old);
    free(j->name);
    j->name = xstrdup(newname);
    pool_job_touch(j);
}

void pool_job_unlist(job_t *j)
{
    if (!j->published) {
        job_forget(j);
        return;
    }
    j->listed = false;
    view_changed(j);
    pool__job_release_inputs(j); /* if it is over; else once it is */
}

/* ---- running tasks ---- */

static void fail_line(job_t *j, uint32_t task, const char *reason)
{
    char *line = xasprintf("%u %s", task, reason);
    if (!j->reason)
        j->reason = xasprintf("task %s", line);
    if (j->n_fail_lines < POOL_MAX_FAIL_LINES) {
        j->fail_lines = xreallocarray(j->fail_lines, j->n_fail_lines + 1, sizeof(char *));
        j->fail_lines[j->n_fail_lines++] = line;
    } else {
        free(line);
    }
}

void pool__job_check_over(job_t *j) { job_check_over(j); }

static void job_check_over(job_t *j)
{
    pool_t *pool = j->pool;
    if (!j->published || j->state != POOL_JOB_RUNNING || !coord_job_over(pool->coord, j->id))
        return;
    coord_counts_t c;
    coord_counts(pool->coord, j->id, &c);
    j->state = c.succeeded == c.total ? POOL_JOB_DONE : POOL_JOB_FAILED;
    decline_table_free(j->declines); /* nothing waits any more: why not is no question */
    j->declines = NULL;
    db_post_job_state(pool->db, j->id, j->state == POOL_JOB_DONE ? DB_JOB_DONE : DB_JOB_FAILED, NULL, NULL);
    pool__note(pool, LOG_LEVEL_INFO, "job %s %s: %u succeeded, %u failed", j->name, pool_job_state_name(j->state),
               c.succeeded, c.failed);
    view_changed(j);
    exec_forget_job(pool->exec, j->id); /* no task of it will run here: its warm sandboxes end */
    pool__job_release_inputs(j); /* removed from jobs/ while it ran */
}

typedef struct taskwork {
    uv_work_t req;
    running_t *r;
    exec_result_t res;
    collect_spec_t spec;
    char *tmp_dir, *final_dir, *label;
    int rc;
    char why[256];
} taskwork_t;

static void running_free(running_t *r)
{
    pool_t *pool = r->pool;
    for (running_t **pp = &pool->running; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    pool->slot_busy[r->slot] = false;
    pool->nrunning--;
    pool->mem_used -= r->job->man.desc.memory_bytes;
    pool->disk_used -= r->job->man.desc.disk_bytes;
    if (pool->up.ckpt_put)
        pool->up.ckpt_put(pool, r->ckpt);
    free(r->run_dir);
    free(r->work_dir);
    free(r->scratch_dir);
    free(r->out_path);
    free(r->err_path);
    pool_job_unref(r->job);
    free(r);
    pool__drain_check(pool);
}

bool pool__task_report(job_t *j, uint32_t task, const char *worker, const char *result_id, bool ok)
{
    coord_verdict_t v = COORD_LATE;
    int rc = coord_report(j->pool->coord, j->id, task, worker, result_id, ok, &v);
    if (rc || v != COORD_ACCEPTED) {
        log_info("job %s task %u: the report of %s is %s: its result is not kept", j->name, task, worker,
                 rc ? strerror(-rc) : coord_verdict_name(v));
        return false;
    }
    return true;
}

/* The run time of a decided task, for the status page (UINT32_MAX: not known). */
static void set_elapsed(job_t *j, uint32_t task, uint64_t ms)
{
    if (task >= j->man.desc.tasks)
        return;
    if (!j->elapsed_ms) {
        j->elapsed_ms = xreallocarray(NULL, j->man.desc.tasks, sizeof(uint32_t));
        memset(j->elapsed_ms, 0xff, j->man.desc.tasks * sizeof(uint32_t));
    }
    j->elapsed_ms[task] = ms >= UINT32_MAX ? UINT32_MAX - 1 : (uint32_t)ms;
}

void pool__task_finished(job_t *j, uint32_t task, bool ok, int exit_code, uint64_t elapsed_ms, const char *reason,
                         const char *worker)
{
    pool_t *pool = j->pool;
    task_state_t st;
    uint32_t attempts = 0;
    coord_task(pool->coord, j->id, task, &st, &attempts);
    db_task_t row = {.job_id = j->id, .index = task, .state = st, .attempts = attempts, .exit_code = exit_code,
                     .elapsed_ms = (int64_t)elapsed_ms, .reason = ok ? NULL : reason, .worker = worker};
    db_post_task_put(pool->db, &row, NULL, NULL);
    if (j->n_task_ms == j->cap_task_ms) {
        j->cap_task_ms = j->cap_task_ms ? j->cap_task_ms * 2 : 64;
        j->task_ms = xreallocarray(j->task_ms, j->cap_task_ms, sizeof(uint32_t));
    }
    j->task_ms[j->n_task_ms++] = elapsed_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)elapsed_ms;
    set_elapsed(j, task, elapsed_ms);
    if (ok)
        pool->tasks_ok++;
    else
        pool->tasks_failed++;
    if (j->dispatch_t0 && j->dispatch_t0[task]) {
        /* pool_now_ms is the wall clock: one set back since the hand-out must not make a time of
         * 2^64 ms (it went into the histogram's +Inf bucket and its _sum for good) */
        uint64_t now = pool_now_ms(), d = now > j->dispatch_t0[task] ? now - j->dispatch_t0[task] : 0;
        j->dispatch_t0[task] = 0;
        metrics_hist_observe(&pool->dispatch_hist, (double)d / 1000.0);
        if (j->n_dispatch_ms == j->cap_dispatch_ms) {
            j->cap_dispatch_ms = j->cap_dispatch_ms ? j->cap_dispatch_ms * 2 : 64;
            j->dispatch_ms = xreallocarray(j->dispatch_ms, j->cap_dispatch_ms, sizeof(uint32_t));
        }
        j->dispatch_ms[j->n_dispatch_ms++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
    }
    pool->up.res_recorded(j, task, ok, exit_code, worker);
    pool->up.ckpt_drop(pool, j, task); /* decided: no run of it will resume */
    bool here = worker && !strcmp(worker, pool->key_hex);
    if (!ok) {
        fail_line(j, task, reason ? reason : "failed");
        pool__note(pool, LOG_LEVEL_WARN, "job %s task %u failed (%s%.16s%s): %s", j->name, task,
                   here ? "here" : "key ", here ? "" : worker ? worker : "?", here ? "" : "...",
                   reason ? reason : "failed");
    } else {
        pool__event(pool, LOG_LEVEL_INFO, "job %s task %u succeeded (%s%.16s%s, %llu ms)", j->name, task,
                   here ? "here" : "key ", here ? "" : worker ? worker : "?", here ? "" : "...",
                   (unsigned long long)elapsed_ms);
    }
    job_check_over(j);
}

/*
 * This peer's disk, not the task, stopped r (its result could not be written, or its directories not
 * made: the data directory is full): said (log, status: pool__disk_error), and the task given back
 * with no attempt counted: it runs again, here once there is room (pool__job_fits asks for the
 * job's disk free), or on a volunteer.
 */
static void give_back_for_disk(pool_t *pool, running_t *r, int rc, const char *what, const char *why)
{
    job_t *j = r->job;
    pool__disk_error(pool, j, rc, "job %s task %u: %s (%s): it runs again", j->name, r->task, what, why);
    if (r->remote) {
        pool->up.vol_release(pool, j, r->task, NULL);
    } else if (coord_release(pool->coord, j->id, r->task, POOL_SELF) == 0) {
        if (j->dispatch_t0)
            j->dispatch_t0[r->task] = 0;
        pool->up.vol_offer(pool, j, NULL);
    }
}

static void collect_work(uv_work_t *req)
{
    taskwork_t *tw = req->data;
    tw->rc = pool__collect_results(&tw->spec, tw->why, sizeof(tw->why));
}

static void collect_done(uv_work_t *req, int status)
{
    taskwork_t *tw = req->data;
    running_t *r = tw->r;
    job_t *j = r->job;
    pool_t *pool = r->pool;
    pool->pending_work--;
    if (!j->gone && j->published && !pool->stopping && pool__disk_fault(tw->rc)) {
        /* This peer could not keep the result (its disk is full, say): not the task's failure. */
        give_back_for_disk(pool, r, tw->rc, "its result could not be kept here", tw->why);
    } else if (!j->gone && j->published && !pool->stopping) {
        const exec_result_t *res = &tw->res;
        if (!tw->rc)
            pool__disk_ok(j);
        static const char *const lim[4] = {"memory", "time", "disk", "processes"};
        for (int k = 0; k < 4; k++)
            j->stopped_by[k] += !strcmp(res->limit, lim[k]);
        j->forks_refused += res->forks_refused;
        bool ok = res->exit_code == 0 && !res->timed_out && !res->refused && !res->cancelled && tw->rc == 0;
        if (!res->cancelled)
            *(ok ? &pool->runs_ok : &pool->runs_failed) += 1;
        char reason[EXEC_MAX_REASON + 300];
        if (tw->rc)
            snprintf(reason, sizeof(reason), "%s", tw->why);
        else
            snprintf(reason, sizeof(reason), "%s", res->reason[0] ? res->reason : (ok ? "" : "failed"));
        if (r->remote)
            pool->up.vol_task_done(pool, j, r->task, res->exit_code, res->elapsed_ms, ok ? NULL : reason);
        else if (!res->cancelled && pool__task_report(j, r->task, POOL_SELF, "local", ok))
            pool__task_finished(j, r->task, ok, res->exit_code, res->elapsed_ms, reason, pool->key_hex);
        /* cancelled: the core already says so */
        job_check_over(j);
    }
    free(tw->tmp_dir);
    free(tw->final_dir);
    free(tw->label);
    free(tw);
    running_free(r);
    if (!pool->stopping)
        pool__jobs_kick(pool);
}

static void on_task_done(exec_task_t *t, const exec_result_t *res, void *arg)
{
    running_t *r = arg;
    pool_t *pool = r->pool;
    job_t *j = r->job;
    r->et = NULL;
    if (r->given_back && !pool->stopping && !j->gone) { /* the owner stayed, or a drain: it runs elsewhere */
        pool->up.ckpt_given_back(pool, r); /* with its checkpoint, collected first (ckpt.c) */
        running_free(r);
        return;
    }
    if (!pool->stopping && (r->remote || j->gone || res->cancelled)) /* the submitter's is dropped once decided */
        pool->up.ckpt_drop(pool, j, r->task);
    if (!pool->stopping && !j->gone && !res->cancelled && r->remote && j->read_failures != r->read_failures) {
        /* A read of its inputs failed here while it ran (their holders did not answer: its submitter
         * may have been the only one, and down): what it did proves nothing about the task. Given back,
         * not reported: it runs again, here or elsewhere, once the inputs can be read. A release counts
         * no attempt, so this is bounded: after POOL_MAX_READ_GIVEBACKS such runs of the task here,
         * the next is reported as it ended (its reads fail here for good: a failure, counted). */
        if (!j->read_givebacks)
            j->read_givebacks = xcalloc(j->man.desc.tasks, sizeof(*j->read_givebacks));
        if (j->read_givebacks[r->task] < POOL_MAX_READ_GIVEBACKS) {
            j->read_givebacks[r->task]++;
            pool__note(pool, LOG_LEVEL_WARN, "job %s task %u: a read of its files failed here while it ran (exit %d): "
                       "given back to its submitter, not reported (%u of %u such runs here)", j->name, r->task,
                       res->exit_code, j->read_givebacks[r->task], POOL_MAX_READ_GIVEBACKS);
            pool->up.vol_release(pool, j, r->task, NULL);
            pool__rm_later(pool, xstrdup(r->run_dir), NULL);
            running_free(r);
            return;
        }
        pool__note(pool, LOG_LEVEL_WARN, "job %s task %u: a read of its files failed here while it ran, as in its "
                   "last %u runs here: reported as it ended (exit %d)", j->name, r->task, POOL_MAX_READ_GIVEBACKS,
                   res->exit_code);
    }
    if (!pool->stopping && !j->gone && !res->cancelled && res->refused && res->disk_errno) {
        give_back_for_disk(pool, r, res->disk_errno, "it could not start here", res->reason);
        pool__rm_later(pool, xstrdup(r->run_dir), NULL);
        running_free(r);
        return; /* no kick: nothing starts here during the pause that pool__disk_error began */
    }
    /* Stopping: not recorded, so it runs again after a restart. Cancelled: nothing to keep. */
    if (pool->stopping || j->gone || res->cancelled) {
        if (!pool->stopping) { /* in the thread pool; when stopping, the next start clears work/ */
            pool__rm_later(pool, xstrdup(r->run_dir), NULL);
        }
        running_free(r);
        return;
    }
    taskwork_t *tw = xcalloc(1, sizeof(*tw));
    tw->req.data = tw;
    tw->r = r;
    tw->res = *res;
    tw->tmp_dir = xasprintf("%s/results/%s/.%u.tmp", pool->data_dir, j->id, r->task);
    tw->final_dir = xasprintf("%s/results/%s/%u", pool->data_dir, j->id, r->task);
    tw->spec = (collect_spec_t){.work_dir = r->work_dir, .scratch_dir = r->scratch_dir, .run_dir = r->run_dir,
                                .out_path = r->out_path, .err_path = r->err_path,
                                .tmp_dir = tw->tmp_dir, .final_dir = tw->final_dir,
                                .outputs = j->man.desc.outputs, .n_outputs = j->man.desc.n_outputs,
                                .disk_bytes = j->man.desc.disk_bytes, .exit_code = res->exit_code,
                                .label = tw->label = xasprintf("job %s task %u", j->name, r->task)};
    pool->pending_work++;
    uv_queue_work(pool->loop, &tw->req, collect_work, collect_done);
}

void pool__task_dispatched(job_t *j, uint32_t task)
{
    if (!j->dispatch_t0)
        j->dispatch_t0 = xcalloc(j->man.desc.tasks, sizeof(uint64_t));
    j->dispatch_t0[task] = pool_now_ms();
}

/* A free slot for a task of j: one whose sandbox is warm for j (its start costs no sandbox), else
 * one with no sandbox (another job's warm one stays), else the first free one. */
static unsigned pick_slot(const pool_t *pool, const job_t *j)
{
    unsigned first = pool->opts.slots, empty = pool->opts.slots;
    for (unsigned s = 0; s < pool->opts.slots; s++) {
        if (pool->slot_busy[s])
            continue;
        if (exec_slot_warm(pool->exec, s, j->id))
            return s;
        if (empty == pool->opts.slots && exec_slot_empty(pool->exec, s))
            empty = s;
        if (first == pool->opts.slots)
            first = s;
    }
    return empty < pool->opts.slots ? empty : first;
}

running_t *pool__start_task(pool_t *pool, job_t *j, uint32_t task, bool remote)
{
    unsigned slot = pick_slot(pool, j);
    running_t *r = xcalloc(1, sizeof(*r));
    r->pool = pool;
    r->job = j;
    r->task = task;
    r->slot = slot;
    r->remote = remote;
    r->read_failures = j->read_failures;
    r->last_renew_ms = r->started_ms = pool_now_ms();
    /* Every run gets directories of its own (never a previous run's, which its task could have
     * filled with symlinks: root builds the skeleton in it). */
    uint64_t run = ++pool->stage_seq;
    r->run = run;
    r->run_dir = xasprintf("%s/work/%s.%u.%" PRIu64, pool->data_dir, j->id, task, run);
    r->work_dir = xasprintf("%s/task", r->run_dir);
    r->scratch_dir = xasprintf("%s/ovl", r->run_dir);
    r->out_path = xasprintf("%s/stdout", r->run_dir);
    r->err_path = xasprintf("%s/stderr", r->run_dir);
    pool_job_ref(j);
    if (!remote)
        pool__task_dispatched(j, task);
    pool->slot_busy[slot] = true;
    pool->nrunning++;
    pool->mem_used += j->man.desc.memory_bytes;
    pool->disk_used += j->man.desc.disk_bytes;
    r->next = pool->running;
    pool->running = r;
    /* The task's directories are made by the executor, in the thread pool (work/ is emptied at
     * start-up, and a task's directories are removed after each run). */
    char *job_dir = xasprintf("%s/%s", pool->jobs_dir, j->name);
    /* The job's tree, for the skeleton of the task's upper layer: dirs first (sorted, so parents
     * before children), then files. */
    size_t nskel = j->man.n_dirs + j->man.n_files;
    exec_entry_t *skel = xcalloc(nskel ? nskel : 1, sizeof(*skel));
    for (size_t i = 0; i < j->man.n_dirs; i++)
        skel[i] = (exec_entry_t){.path = j->man.dirs[i], .mode = 0755, .dir = true};
    for (size_t i = 0; i < j->man.n_files; i++)
        skel[j->man.n_dirs + i] = (exec_entry_t){.path = j->man.files[i].path, .size = j->man.files[i].size,
                                                 .mode = j->man.files[i].mode};
    exec_spec_t spec = {.skeleton = skel, .n_skeleton = nskel,
                        .job_dir = job_dir, .run_dir = r->run_dir, .task_dir = r->work_dir,
                        .scratch_dir = r->scratch_dir, .command = j->man.desc.command,
                        .stdout_path = r->out_path, .stderr_path = r->err_path, .job_id = j->id,
                        .job_name = j->name, .task_index = task, .task_count = j->man.desc.tasks,
                        .timeout_ms = j->man.desc.timeout_ms, .memory_bytes = j->man.desc.memory_bytes,
                        .disk_bytes = j->man.desc.disk_bytes, .processes = j->man.desc.processes,
                        .network = j->man.desc.network, .grace_ms = j->man.desc.grace_ms, .slot = slot};
    spec.checkpoint_dir = pool->up.ckpt_take(pool, j, task, &r->ckpt); /* one it was given back with (ckpt.c) */
    if (spec.checkpoint_dir) {
        pool->ckpts_restored++;
        log_info("job %s task %u: starts from its checkpoint", j->name, task);
    }
    int rc = exec_task_spawn(pool->exec, &spec, on_task_done, r, &r->et);
    free(job_dir);
    free(skel);
    if (rc) {
        exec_result_t res = {.exit_code = -1, .refused = true};
        snprintf(res.reason, sizeof(res.reason), "could not start the sandbox: %s", strerror(-rc));
        on_task_done(NULL, &res, r); /* r lives on until its collection is done */
    }
    return r;
}

unsigned pool__room(const pool_t *p, const job_t *j, unsigned asking, uint64_t asking_mem, uint64_t asking_disk)
{
    if (p->idle_v != IDLE_RUN || p->draining)
        return 0; /* --when idle: the owner is at the machine; or the peer is stopping */
    coord_room_t r = {.slots = p->opts.slots, .slots_used = p->nrunning + p->ckpt_pending + asking,
                      .memory_total = p->opts.memory_total, .memory_used = p->mem_used + p->ckpt_pending_mem + asking_mem,
                      .disk_total = p->opts.disk_total, .disk_used = p->disk_used + p->ckpt_pending_disk + asking_disk};
    return coord_room_for(&r, j->man.desc.memory_bytes, j->man.desc.disk_bytes);
}

bool pool__job_fits(pool_t *pool, const job_t *j, char *why, size_t whylen, decline_t *d)
{
    struct utsname u;
    const jobdesc_t *dj = &j->man.desc;
    decline_t dd = {0};
    why[0] = '\0';
    if (j->remote && !pool__job_trusted(pool, j, pool_now_ms(), NULL)) {
        snprintf(why, whylen, "its submitter's key %.16s... is not trusted here%s (to run it, add the key (status: "
                 "submitter:)%s to %s%s%s/trusted/)", j->man.submitter ? j->man.submitter : "?",
                 j->man.n_endorsements ? ", nor endorsed by a key trusted here" : "",
                 j->man.n_endorsements ? " or its endorser's (status: endorsed-by:)" : "",
                 pool->opts.trust_file ? pool->opts.trust_file : "", pool->opts.trust_file ? " or " : "",
                 pool->data_dir);
        if (d)
            *d = (decline_t){.code = DECLINE_TRUST};
        return false;
    }
    if (uname(&u) != 0) {
        snprintf(why, whylen, "uname: %s", strerror(errno));
        dd.code = DECLINE_OTHER;
    } else if (dj->os && strcasecmp(dj->os, "linux") != 0) {
        snprintf(why, whylen, "it wants os %s (this is linux)", dj->os);
        dd.code = DECLINE_OS;
    } else if (dj->arch && strcmp(dj->arch, u.machine) != 0) {
        snprintf(why, whylen, "it wants arch %s (this is %s)", dj->arch, u.machine);
        dd.code = DECLINE_ARCH;
    } else if (dj->network && !pool->opts.allow_network) {
        snprintf(why, whylen, "it wants the network (this peer runs without --allow-network)");
        dd.code = DECLINE_NETWORK;
    }
    if (!why[0]) {
        /* The machine's memory, as HTCondor's Memory: what is free moves with every page cached. */
        long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
        uint64_t mem = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : UINT64_MAX;
        struct statvfs sv;
        uint64_t disk = statvfs(pool->data_dir, &sv) == 0 ? (uint64_t)sv.f_bavail * sv.f_frsize : UINT64_MAX;
        if (pool->opts.memory_total && pool->opts.memory_total < dj->memory_bytes) {
            snprintf(why, whylen, "it wants %llu bytes of memory (this peer gives its tasks %llu in all: --memory)",
                     (unsigned long long)dj->memory_bytes, (unsigned long long)pool->opts.memory_total);
            dd = (decline_t){.code = DECLINE_MEMORY, .have = pool->opts.memory_total};
        } else if (mem < dj->memory_bytes) {
            snprintf(why, whylen, "it wants %llu bytes of memory (this machine has %llu)",
                     (unsigned long long)dj->memory_bytes, (unsigned long long)mem);
            dd = (decline_t){.code = DECLINE_MEMORY, .have = mem};
        } else if (pool->opts.disk_total && pool->opts.disk_total < dj->disk_bytes) {
            snprintf(why, whylen, "it wants %llu bytes of disk (this peer gives its tasks %llu in all: --disk)",
                     (unsigned long long)dj->disk_bytes, (unsigned long long)pool->opts.disk_total);
            dd = (decline_t){.code = DECLINE_DISK, .have = pool->opts.disk_total};
        } else if (disk < dj->disk_bytes) {
            snprintf(why, whylen, "it wants %llu bytes of disk (%llu free in the data directory)",
                     (unsigned long long)dj->disk_bytes, (unsigned long long)disk);
            dd = (decline_t){.code = DECLINE_DISK, .have = disk};
        }
    }
    if (dd.have > DECLINE_MAX_BYTES)
        dd.have = DECLINE_MAX_BYTES;
    if (d)
        *d = dd;
    return !why[0];
}

/* Whether this peer meets j's requirements; if not, says why in the log once per job. */
/* Whether our own slots may run j; keeps j->unfit (the status says it) and logs a change. */
static bool fits_here(pool_t *pool, job_t *j)
{
    char why[512];
    if (j->man.desc.replicas > 1)
        snprintf(why, sizeof(why), "its tasks run on %u other peers each and their results are compared; the "
                 "submitter's own slots do not vote", j->man.desc.replicas);
    else if (pool__job_fits(pool, j, why, sizeof(why), NULL)) {
        free(j->unfit);
        j->unfit = NULL;
        return true;
    }
    if (!j->unfit || strcmp(j->unfit, why) != 0) {
        log_info("job %s: this peer's slots do not run it: %s", j->name, why);
        free(j->unfit);
        j->unfit = xstrdup(why);
    }
    return false;
}

/* exec_work_renew is over: tasks start again, or the disk is full still (tried again after the pause). */
static void on_work_renewed(void *arg, int rc, const char *why)
{
    pool_t *pool = arg;
    if (pool->stopping)
        return;
    if (rc) /* the disk is full still, say: tried again after the pause */
        pool__disk_error(pool, NULL, rc, "the task directories' filesystem could not be made anew: %s", why);
    else {
        pool__note(pool, LOG_LEVEL_INFO, "the task directories' filesystem, failed under a full disk, is made anew: "
                   "tasks start here again");
        pool__jobs_kick(pool);
    }
}

/* Hands our free slots the waiting tasks of our own jobs, oldest job first, if this peer meets
 * their requirements (they apply to every slot, ours too); then volunteers for other peers' jobs. */
void pool__jobs_kick(pool_t *pool)
{
    uint32_t task;
    if (pool_now_ms() < pool->disk_pause_until_ms)
        return; /* a write to the data directory failed a moment ago: the next tick kicks again */
    const char *wwhy;
    if (exec_work_failed(pool->exec, &wwhy)) {
        /* its btrfs went read-only under a full disk (exec/exec.h): no task starts, nor is one asked
         * for, until it is made anew, once the tasks still there have ended (the next tick tries) */
        int rc = exec_work_renew(pool->exec, on_work_renewed, pool);
        if (rc == 0)
            pool__note(pool, LOG_LEVEL_WARN, "the task directories' filesystem failed (%s): making it anew", wwhy);
        return;
    }
    for (job_t *j = pool->joblist; j && !pool->stopping && pool->nrunning < pool->opts.slots; j = j->next) {
        if (!j->published || j->gone || j->remote || !coord_has_job(pool->coord, j->id))
            continue;
        coord_counts_t c;
        if (coord_counts(pool->coord, j->id, &c) != 0 || c.waiting == 0 || !fits_here(pool, j))
            continue;
        while (!pool->stopping && pool__room(pool, j, 0, 0, 0) > 0 &&
               coord_lease(pool->coord, j->id, POOL_SELF, pool_now_ms(), POOL_LEASE_MS, NULL, &task) == 0) {
            if (!j->listed) {
                coord_verdict_t v;
                coord_report(pool->coord, j->id, task, POOL_SELF, "no-job-dir", false, &v);
                continue;
            }
            pool__start_task(pool, j, task, false);
        }
    }
    pool->up.vol_kick(pool); /* slots left: ask other peers' jobs for work */
}

void pool_job_cancel(job_t *j, const char *why)
{
    pool_t *pool = j->pool;
    if (!j->published || pool_job_over(j))
        return;
    coord_cancel_job(pool->coord, j->id, pool->up.vol_cancel_lease, pool); /* volunteers are told to stop */
    for (running_t *r = pool->running; r; r = r->next)
        if (r->job == j && r->et)
            exec_task_cancel(r->et);
    j->state = POOL_JOB_CANCELLED;
    decline_table_free(j->declines);
    j->declines = NULL;
    set_reason(j, why);
    db_post_job_state(pool->db, j->id, DB_JOB_CANCELLED, NULL, NULL);
    pool__note(pool, LOG_LEVEL_INFO, "job %s %s", j->name, why);
    view_changed(j);
    pool__job_release_inputs(j);
}

void pool__drain_end(pool_t *pool)
{
    pool->drained = NULL;
    if (pool->drain_timer) {
        uv_timer_stop(pool->drain_timer);
        uv_close((uv_handle_t *)pool->drain_timer, pool__handle_free);
        pool->drain_timer = NULL;
    }
}

static void drain_fire(pool_t *pool)
{
    void (*done)(void *) = pool->drained;
    pool__drain_end(pool);
    if (done)
        done(pool->drained_arg);
}

static void on_drained(uv_timer_t *t) { drain_fire(t->data); }

void pool__drain_check(pool_t *pool)
{
    /* From the loop, not from inside the caller: done goes on to stop the pool. */
    if (!pool->draining || !pool->drained || !pool->drain_timer || pool->nrunning || pool->ckpt_saving ||
        pool->reports_pending || pool->ckpt_pending)
        return;
    for (job_t *j = pool->joblist; j; j = j->next)
        if (j->lease_pending)
            return; /* its tasks come, and go back at once (no room while draining) */
    uv_timer_start(pool->drain_timer, on_drained, 0, 0);
}

static void on_drain_timeout(uv_timer_t *t)
{
    pool_t *pool = t->data;
    log_warn("stopping: %u tasks, %u checkpoints being collected, %u being fetched to start and %u reports still "
             "under way: they are cut short", pool->nrunning, pool->ckpt_saving, pool->ckpt_pending, pool->reports_pending);
    drain_fire(pool);
}

void pool_drain(pool_t *pool, void (*done)(void *arg), void *arg)
{
    if (pool->draining) { /* asked again: stop now */
        if (pool->drained)
            log_info("stopping at once");
        drain_fire(pool);
        return;
    }
    pool->draining = true;
    pool->drained = done;
    pool->drained_arg = arg;
    uint64_t grace = 0;
    unsigned n = 0;
    for (running_t *r = pool->running; r; r = r->next) {
        uint64_t g = r->job->man.desc.grace_ms ? r->job->man.desc.grace_ms : EXEC_DEFAULT_GRACE_MS;
        grace = g > grace ? g : grace;
        if (!r->et || r->given_back)
            continue;
        r->given_back = true; /* its checkpoint goes with it (ckpt.c) */
        exec_task_stop(r->et);
        n++;
    }
    if (n)
        log_info("stopping: %u tasks get notice (SIGTERM, then their grace) and are given back", n);
    uint64_t wait = grace + POOL_DRAIN_EXTRA_MS;
    pool->drain_timer = xcalloc(1, sizeof(*pool->drain_timer));
    uv_timer_init(pool->loop, pool->drain_timer);
    pool->drain_timer->data = pool;
    uv_timer_start(pool->drain_timer, on_drain_timeout, wait < POOL_DRAIN_MAX_MS ? wait : POOL_DRAIN_MAX_MS, 0);
    pool__drain_check(pool);
}

/* --when idle: the owner came back (suspend every task here), stayed (give them back), or left. */
void pool__idle_changed(pool_t *pool, idle_verdict_t v, const char *why)
{
    pool->idle_v = v;
    unsigned n = 0;
    for (running_t *r = pool->running; r; r = r->next) {
        if (!r->et || r->given_back)
            continue;
        if (v == IDLE_RUN)
            n += exec_task_suspended(r->et) && exec_task_resume(r->et) == 0;
        else if (v == IDLE_SUSPEND)
            n += exec_task_suspend(r->et) == 0;
        else {
            r->given_back = true;
            pool__note(pool, LOG_LEVEL_INFO, "job %s task %u: given back (%s)", r->job->name, r->task,
                       r->remote ? "its lease is released to the submitter" : "it waits for another peer");
            exec_task_stop(r->et); /* SIGTERM, then SIGKILL after the grace */
            pool->given_back++;
            n++;
        }
    }
    if (v == IDLE_RUN)
        pool__note(pool, LOG_LEVEL_INFO, "idle: the machine is idle: tasks run here (%u resumed)", n);
    else if (v == IDLE_SUSPEND)
        pool__note(pool, LOG_LEVEL_INFO, "idle: %s: %u tasks suspended, no new ones start", why, n);
    else
        pool__note(pool, LOG_LEVEL_INFO, "idle: %s (%u)", why, n);
    if (v == IDLE_RUN && !pool->stopping)
        pool__jobs_kick(pool);
}

/* ---- status text ---- */

typedef struct sb {
    char *p;
    size_t len, cap;
} sb_t;

__attribute__((format(printf, 2, 3))) static void sb_printf(sb_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        b->cap = (b->len + (size_t)n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* "<what>-p50: N" lines (p50, p95, max) of n samples, none if n is 0. */
static void percentiles(sb_t *b, const char *what, const uint32_t *samples, size_t n)
{
    if (n == 0)
        return;
    uint32_t *v = xreallocarray(NULL, n, sizeof(uint32_t));
    memcpy(v, samples, n * sizeof(uint32_t));
    qsort(v, n, sizeof(uint32_t), cmp_u32);
    sb_printf(b, "%s-p50: %u\n%s-p95: %u\n%s-max: %u\n", what, v[(n - 1) / 2], what, v[(n - 1) * 95 / 100], what,
              v[n - 1]);
    free(v);
}

char *pool_job_status_text(job_t *j, size_t *len)
{
    pool_t *pool = j->pool;
    sb_t b = {0};
    sb_printf(&b, "name: %s\n", j->name);
    if (j->published)
        sb_printf(&b, "id: %s\n", j->id);
    if (j->published && j->man.submitter)
        sb_printf(&b, "submitter: %s%s\n", j->man.submitter, j->signed_job ? "" : " (signature not checked)");
    for (size_t i = 0; j->published && i < j->man.n_endorsements; i++) {
        const manifest_endorsement_t *e = &j->man.endorsements[i];
        if (e->until_ms)
            sb_printf(&b, "endorsed-by: %s until %" PRIu64 "%s\n", e->by, e->until_ms,
                      pool_now_ms() >= e->until_ms ? " (expired)" : "");
        else
            sb_printf(&b, "endorsed-by: %s\n", e->by);
    }
    sb_printf(&b, "state: %s\n", pool_job_state_name(j->state));
    if (j->published) {
        coord_counts_t c = {0};
        if (j->remote)
            c = j->rcounts; /* as its submitter last reported them */
        else
            coord_counts(pool->coord, j->id, &c);
        sb_printf(&b, "tasks: %u\nwaiting: %u\nrunning: %u\nsucceeded: %u\nfailed: %u\ncancelled: %u\n", c.total,
                  c.waiting, c.running, c.succeeded, c.failed, c.cancelled);
        sb_printf(&b, "command: %s\n", j->man.desc.command);
        if (!j->remote)
            sb_printf(&b, "bytes-served: %llu\nbytes-fetched: %llu\n", (unsigned long long)j->bytes_served,
                      (unsigned long long)j->bytes_fetched);
        if (j->remote) {
            sb_printf(&b, "origin: remote (%zu peers hold it; first %s)\nresults-here: %u\n", j->n_peers,
                      j->peers[0], j->n_tres);
            char why[512];
            if (!pool__job_fits(pool, j, why, sizeof(why), NULL))
                sb_printf(&b, "not-run-here: %s\n", why);
        } else if (c.waiting > 0 && j->state == POOL_JOB_RUNNING) {
            /* Why nobody runs its waiting tasks: this peer's own slots, then its pool peers, each
             * by what it said (volunteer.c, pool/decline.h). */
            char self[600] = "", peers[1024] = "";
            if (j->unfit) {
                snprintf(self, sizeof(self), "this peer's slots cannot run it (%s)", j->unfit);
            } else if (pool->idle_v != IDLE_RUN) {
                const char *why = "its idle monitor did not start (see the log)";
                if (pool->idle)
                    idle_verdict(pool->idle, &why);
                snprintf(self, sizeof(self), "this peer runs tasks only when idle (--when idle), and %s", why);
            } else if (pool->opts.slots == 0) {
                snprintf(self, sizeof(self), "this peer runs no tasks (--slots 0)");
            } else if (pool->nrunning + pool->ckpt_pending >= pool->opts.slots) {
                snprintf(self, sizeof(self), "this peer's slots are busy (%u of %u)",
                         pool->nrunning + pool->ckpt_pending, pool->opts.slots);
            } else if (pool__room(pool, j, 0, 0, 0) == 0) {
                snprintf(self, sizeof(self), "this peer's running tasks leave too little memory or disk for one");
            }
            if (pool->up.vol_why_peers)
                pool->up.vol_why_peers(pool, j, peers, sizeof(peers));
            if (self[0] || peers[0])
                sb_printf(&b, "why-waiting: %s%s%s\n", self, self[0] && peers[0] ? "; " : "", peers);
        }
        if (!j->remote && c.running > 0) {
            for (uint32_t t = 0; t < j->man.desc.tasks; t++) { /* one line per task a volunteer holds */
                const char *h[COORD_MAX_REPLICAS];
                size_t nh = coord_holders(pool->coord, j->id, t, h, COORD_MAX_REPLICAS);
                for (size_t i = 0; i < nh && i < COORD_MAX_REPLICAS; i++)
                    if (strcmp(h[i], POOL_SELF) != 0)
                        sb_printf(&b, "leased-task: %u %s\n", t, h[i]);
            }
        }
        if (!j->remote && j->man.desc.replicas > 1) {
            uint32_t q = coord_job_quorum(pool->coord, j->id), shown = 0;
            sb_printf(&b, "replicas: %u%s\nquorum: %u\nmax-replicas: %u\n", j->man.desc.replicas,
                      j->man.desc.adaptive ? " (adaptive)" : "", q, jobdesc_max_replicas(&j->man.desc));
            for (uint32_t t = 0; t < j->man.desc.tasks && shown < POOL_MAX_QUORUM_LINES; t++) {
                uint32_t n = 0, agree = 0;
                if (coord_task_votes(pool->coord, j->id, t, &n, &agree, NULL) != 0 || n == 0)
                    continue;
                shown++;
                sb_printf(&b, "task-votes: %u quorum %u of %u (needs %u)", t, agree, n,
                          coord_task_quorum(pool->coord, j->id, t));
                const char *d[COORD_MAX_RUNS];
                size_t nd = coord_dissenters(pool->coord, j->id, t, d, COORD_MAX_RUNS);
                for (size_t i = 0; i < nd && i < COORD_MAX_RUNS; i++)
                    sb_printf(&b, "%s%s", i ? " " : "; disagreed: ", d[i]);
                sb_printf(&b, "\n");
            }
        }
        if (j->stopped_by[0] || j->stopped_by[1] || j->stopped_by[2] || j->stopped_by[3] || j->forks_refused)
            sb_printf(&b, "stopped-by-limit: memory %u time %u disk %u processes %u; forks-refused: %llu\n",
                      j->stopped_by[0], j->stopped_by[1], j->stopped_by[2], j->stopped_by[3],
                      (unsigned long long)j->forks_refused);
        percentiles(&b, "task-ms", j->task_ms, j->n_task_ms);
        percentiles(&b, "dispatch-ms", j->dispatch_ms, j->n_dispatch_ms);
    }
    if (j->reason)
        sb_printf(&b, "reason: %s\n", j->reason);
    for (size_t i = 0; i < j->n_fail_lines; i++)
        sb_printf(&b, "failed-task: %s\n", j->fail_lines[i]);
    if (j->disk_error) /* a task's result could not be written here: it runs again once there is room */
        sb_printf(&b, "disk-error: %s\n", j->disk_error);
    *len = b.len;
    return b.p ? b.p : xstrdup("");
}

typedef struct banned_text {
    sb_t *b;
    unsigned n;
} banned_text_t;

static void banned_line(const char *peer, uint64_t left_ms, void *arg)
{
    banned_text_t *t = arg;
    t->n++;
    sb_printf(t->b, "banned-peer: %s (%llu s left: %d bad blocks)\n", peer, (unsigned long long)(left_ms / 1000),
              FETCH_BAN_AFTER);
}

char *pool_peer_status_text(pool_t *pool, size_t *len)
{
    sb_t b = {0};
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    unsigned counts[POOL_JOB_CANCELLED + 1] = {0};
    for (job_t *j = pool->joblist; j; j = j->next)
        if (!j->gone)
            counts[j->state]++;
    sb_printf(&b, "peer: %s\nkey: %s\nmount: %s\ndata: %s\nslots: %u\nrunning-tasks: %u\n", host, pool->key_hex,
              pool->opts.mountpoint ? pool->opts.mountpoint : "",
              pool->data_dir, pool->opts.slots, pool->nrunning);
    /* What the volunteer gives (--memory, --disk, --cpu; docs/usage.md), and what its running tasks
     * hold of it: "all" where it gives what the machine has. */
    char mt[24] = "all", dt[24] = "all", ct[24] = "all";
    if (pool->opts.memory_total)
        snprintf(mt, sizeof(mt), "%llu", (unsigned long long)pool->opts.memory_total);
    if (pool->opts.disk_total)
        snprintf(dt, sizeof(dt), "%llu", (unsigned long long)pool->opts.disk_total);
    if (pool->opts.cpu_permille)
        snprintf(ct, sizeof(ct), "%u.%u%%", pool->opts.cpu_permille / 10, pool->opts.cpu_permille % 10);
    sb_printf(&b, "tasks-memory: %llu of %s\ntasks-disk: %llu of %s\ntasks-cpu: %s\n",
              (unsigned long long)pool->mem_used, mt, (unsigned long long)pool->disk_used, dt, ct);
    if (pool->idle) { /* --when idle: whether tasks run now, and why not */
        const char *why;
        idle_verdict_t v = idle_verdict(pool->idle, &why);
        unsigned susp = 0;
        for (running_t *r = pool->running; r; r = r->next)
            susp += r->et && exec_task_suspended(r->et);
        sb_printf(&b, "when: idle\nidle: %s\n", v == IDLE_RUN ? "yes" : "no");
        if (v != IDLE_RUN)
            sb_printf(&b, "not-running-tasks: %s\n", why);
        sb_printf(&b, "tasks-suspended: %u\ntasks-given-back: %llu\ninput-devices: %u\n", susp,
                  (unsigned long long)pool->given_back, idle_inputs(pool->idle));
    }
    sb_printf(&b, "checkpoints: %u\ncheckpoint-bytes: %llu\ncheckpoints-given-back: %llu\ncheckpoints-fetched: %llu\n"
              "tasks-resumed: %llu\n", pool->ckpts_held, (unsigned long long)pool->ckpts_bytes,
              (unsigned long long)pool->ckpts_saved, (unsigned long long)pool->ckpts_fetched,
              (unsigned long long)pool->ckpts_restored);
    uint64_t warm, cold;
    unsigned live;
    exec_counts(pool->exec, &warm, &cold, &live);
    sb_printf(&b, "sandboxes: %u\nsandboxes-started: %llu\ntasks-in-warm-sandboxes: %llu\n", live,
              (unsigned long long)cold, (unsigned long long)warm);
    const char *qmiss = exec_disk_quota_missing(pool->exec);
    { /* the data directory: what is free there, and the writes to it that failed (a full disk) */
        struct statvfs dsv;
        if (statvfs(pool->data_dir, &dsv) == 0)
            sb_printf(&b, "data-free: %llu\n", (unsigned long long)dsv.f_bavail * dsv.f_frsize);
        sb_printf(&b, "disk-errors: %llu\n", (unsigned long long)pool->disk_errors);
        const char *wwhy;
        if (exec_work_failed(pool->exec, &wwhy)) /* no task starts here until it is made anew */
            sb_printf(&b, "task-dirs-error: %s\n", wwhy);
        if (pool->disk_errors) {
            uint64_t now = pool_now_ms();
            sb_printf(&b, "disk-error: %s (%llu s ago)\n", pool->disk_error,
                      (unsigned long long)(now > pool->disk_error_ms ? (now - pool->disk_error_ms) / 1000 : 0));
        }
    }
    sb_printf(&b, "disk-quota: %s%s\n", pool->opts.no_disk_quota ? "per file only (--no-disk-quota)"
                                        : qmiss ? "none, every task is refused: " : "each task's files in all",
              qmiss && !pool->opts.no_disk_quota ? qmiss : "");
    for (int s = POOL_JOB_STAGING; s <= POOL_JOB_CANCELLED; s++)
        sb_printf(&b, "jobs-%s: %u\n", pool_job_state_name((pool_job_state_t)s), counts[s]);
    sb_printf(&b, "pool-peers: %zu\n", pool->n_pool_peers);
    sb_printf(&b, "blocks: %llu\nblock-bytes: %llu\n", (unsigned long long)store_blocks(pool->store),
              (unsigned long long)store_bytes(pool->store));
    store_stats_t cst;
    store_stats(pool->store, &cst);
    sb_printf(&b, "cache-bytes: %llu\ncache-quota: %llu\ncache-hits: %llu\ncache-evictions: %llu\n"
              "cache-evicted-bytes: %llu\n", (unsigned long long)cst.bytes, (unsigned long long)pool->cache_quota,
              (unsigned long long)cst.hits, (unsigned long long)cst.evictions,
              (unsigned long long)cst.evicted_bytes);
    if (pool->opts.http_url) {
        serve_stats_t sst;
        serve_stats(pool->serve, &sst);
        sb_printf(&b, "http: %s\nblocks-served: %llu\nbytes-served: %llu\n", pool->opts.http_url,
                  (unsigned long long)sst.blocks, (unsigned long long)sst.bytes);
    }
    if (pool->fetch) {
        banned_text_t bt = {.b = &b};
        fetch_foreach_banned(pool->fetch, banned_line, &bt);
        sb_printf(&b, "banned-peers: %u\n", bt.n);
        fetch_stats_t fst;
        fetch_stats(pool->fetch, &fst);
        sb_printf(&b, "blocks-fetched: %llu\nblocks-fetched-again: %llu\nbytes-fetched: %llu\nbad-blocks-received: %llu\n"
                  "fetches-in-flight: %u\n", (unsigned long long)fst.blocks, (unsigned long long)fst.again,
                  (unsigned long long)fst.bytes, (unsigned long long)fst.bad, fst.inflight);
        sb_printf(&b, "blocks-not-stored: %llu\n", (unsigned long long)fst.store_errors);
        if (fst.store_error) /* a full disk: the blocks read were answered, but not kept */
            sb_printf(&b, "block-store-error: %s\n", strerror(-fst.store_error));
        sb_printf(&b, "transfers-too-slow: %llu\n", (unsigned long long)fst.too_slow);
    }
    sb_printf(&b, "requests-over-budget: %llu\n", (unsigned long long)pool__refused(pool));
    if (pool->opts.httpd) { /* slow and flooding clients (docs/reliability.md) */
        httpd_stats_t hs;
        httpd_stats(pool->opts.httpd, &hs);
        sb_printf(&b, "connections-open: %u\nconnections-refused-per-host: %llu\nconnections-timed-out: %llu\n"
                  "requests-too-large: %llu\n", hs.conns, (unsigned long long)hs.refused_per_host,
                  (unsigned long long)hs.timed_out, (unsigned long long)hs.too_large);
    }
    sb_printf(&b, "results-served: %llu\nresults-fetched: %llu\nresults-mirrored: %llu\nvotes-without-bytes: %llu\n",
              (unsigned long long)pool->results_served, (unsigned long long)pool->results_fetched,
              (unsigned long long)pool->results_mirrored, (unsigned long long)pool->votes_without_bytes);
    { /* the workers' records as quorums judged them (the first POOL_MAX_RECORDS_SHOWN) */
        const char *who[POOL_MAX_RECORDS_SHOWN];
        coord_record_t rec[POOL_MAX_RECORDS_SHOWN];
        size_t n = coord_records(pool->coord, who, rec, POOL_MAX_RECORDS_SHOWN);
        sb_printf(&b, "workers-judged: %zu\n", n);
        for (size_t i = 0; i < n && i < POOL_MAX_RECORDS_SHOWN; i++)
            sb_printf(&b, "worker-record: %s valid %u invalid %u streak %u\n", who[i], rec[i].valid, rec[i].invalid,
                      rec[i].streak);
    }
    sb_printf(&b, "loop-busy-max-ms: %.1f\nloop-stalls-over-5ms: %llu\n", (double)pool->lag_max_ns / 1e6,
              (unsigned long long)pool->lag_over_5ms);
    sb_printf(&b, "loop-cpu-max-ms: %.1f\nloop-cpu-over-5ms: %llu\n", (double)pool->lag_cpu_max_ns / 1e6,
              (unsigned long long)pool->lag_cpu_over_5ms);
    if (pool->lag_sched_fd >= 0)
        sb_printf(&b, "loop-blocked-max-ms: %.1f\nloop-blocked-over-5ms: %llu\n",
                  (double)pool->lag_blocked_max_ns / 1e6,
                  (unsigned long long)pool->lag_blocked_over_5ms);
    if (pool->db && db_writer_running(pool->db)) {
        db_stats_t ds;
        db_writer_stats(pool->db, &ds);
        sb_printf(&b, "db-commits: %llu\ndb-writes: %llu\ndb-commit-max-ms: %.1f\n", (unsigned long long)ds.batches,
                  (unsigned long long)ds.writes, (double)ds.batch_max_ns / 1e6);
        sb_printf(&b, "db-full-retries: %llu\n", (unsigned long long)ds.full_retries);
        if (ds.full) /* the records wait for room: a publish waits for its own */
            sb_printf(&b, "db-error: the disk is full: records wait for room (tried again every second)\n");
    }
    *len = b.len;
    return b.p;
}

/* ---- restart ---- */

static int restore_task(void *arg, const db_task_t *t)
{
    job_t *j = arg;
    if (coord_restore(j->pool->coord, j->id, t->index, (task_state_t)t->state, t->attempts) != 0)
        return 0;
    if (t->state == TASK_FAILED)
        fail_line(j, t->index, t->reason ? t->reason : "failed");
    if ((t->state == TASK_SUCCEEDED || t->state == TASK_FAILED) && t->elapsed_ms >= 0)
        set_elapsed(j, t->index, (uint64_t)t->elapsed_ms);
    if (t->state == TASK_SUCCEEDED || t->state == TASK_FAILED)
        j->pool->up.res_recorded(j, t->index, t->state == TASK_SUCCEEDED, t->exit_code, t->worker);
    return 0;
}

static int restore_job(void *arg, const db_job_t *row)
{
    pool_t *pool = arg;
    char why[256];
    hash_t id;
    if (strlen(row->id) != HASH_HEX_LEN || hash_from_hex(row->id, HASH_HEX_LEN, &id) != 0 ||
        manifest_check_path(row->name) != 0 || strchr(row->name, '/')) {
        log_error("a job row in the database has a bad id or name and is skipped");
        return 0;
    }
    job_t *j = job_alloc(pool, row->name, POOL_JOB_RUNNING);
    int rc = manifest_decode(&j->man, row->manifest, row->manifest_len, why, sizeof(why));
    if (rc == 0)
        rc = pool__coord_add(pool, row->id, &j->man.desc);
    if (rc) {
        log_error("job %s (%s) in the database is unreadable and is dropped: %s", row->name, row->id,
                  rc == -EEXIST ? "duplicate" : why);
        job_forget(j);
        return 0;
    }
    memcpy(j->id, row->id, HASH_HEX_LEN);
    /* ours: signed again (Ed25519 is deterministic) */
    if (j->man.submitter && !strcmp(j->man.submitter, pool->key_hex)) {
        auth_job_sign(pool->key, j->id, j->sig);
        j->signed_job = true;
        key_public(pool->key, &j->submitter);
    } else {
        log_warn("job %s (%s) was published %s: other peers do not take it (publish it again to share it)",
                 row->name, row->id,
                 j->man.submitter ? "under another key than DATA/key" : "unsigned, by an older preon");
    }
    j->published = true;
    j->listed = row->state != DB_JOB_CANCELLED;
    char *marker = xasprintf("%s/inputs/%s.removed", pool->data_dir, j->id);
    if (access(marker, F_OK) == 0) { /* removed from jobs/ and over: its inputs were freed (or are now) */
        j->listed = false;
        j->inputs_gone = true;
        pool__rm_later(pool, xasprintf("%s/inputs/%s", pool->data_dir, j->id), NULL);
    }
    free(marker);
    if (j->listed)
        pool__blocks_add_job(pool, j);
    db_tasks_load(pool->db, j->id, restore_task, j);
    if (row->state == DB_JOB_CANCELLED) {
        coord_cancel_job(pool->coord, j->id, NULL, NULL);
        j->state = POOL_JOB_CANCELLED;
        set_reason(j, "cancelled: removed from jobs/");
    } else {
        job_check_over(j);
    }
    view_added(j);
    return 0;
}

int pool__jobs_restore(pool_t *pool)
{
    int rc = db_jobs_load(pool->db, restore_job, pool);
    if (rc)
        return rc;
    char *dir = xasprintf("%s/staging", pool->data_dir);
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            job_t *j = pool_job_find(pool, de->d_name);
            if (j && j->published && j->listed) {
                /* Committed just before a crash, before its tree was moved to inputs/: move it now
                 * (it was not writable while it was being hashed). Otherwise it is a stale copy. */
                char *p = xasprintf("%s/%s", dir, de->d_name);
                char *in = xasprintf("%s/inputs/%s", pool->data_dir, j->id);
                struct stat st;
                if (stat(in, &st) != 0 && rename(p, in) == 0)
                    log_warn("job %s: moved its inputs into place after a crash", j->name);
                else
                    files_rm_rf(p);
                free(p);
                free(in);
                continue;
            }
            job_t *nj = job_alloc(pool, de->d_name, POOL_JOB_STAGING);
            nj->listed = true;
            view_added(nj);
        }
        closedir(d);
    }
    free(dir);
    return 0; /* tasks start once the mount is up (fs_new kicks): they read their inputs through it */
}

void pool__jobs_free(pool_t *pool)
{
    while (pool->joblist) {
        job_t *j = pool->joblist;
        j->refs = 0;
        job_free(j);
    }
}
