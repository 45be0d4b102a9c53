/*
 * results.c: results shared with the whole pool ("every peer's results/ lists their results,
 * readable from any peer, fetched lazily").
 *
 * Submitter: every task result it records (run here, or fetched from a volunteer) is hashed in the
 * thread pool into a result manifest: the files of results/<job>/<task>/ (outputs, stdout, stderr,
 * exit_code) hashed in place, no copy. Its blocks are registered for serving (blocks.c; swarm/serve.c
 * checks their hash again before it serves one, since a retried task may replace a result directory) and the manifest
 * is served at /v1/results/<job>/<task>. /v1/results/<job>?after=K lists the results from the K-th
 * on, in the order they were hashed, each with its exit code, manifest id and manifest text (so a
 * peer mirrors many results in one request); /v1/jobs tells how many there are and the submitter's
 * epoch (its start time: a restarted submitter hashes its results again, in another order).
 *
 * Other peers: when the submitter's /v1/jobs entry reports results this peer has not mirrored, it
 * asks for the list from where it stands; a manifest is accepted only if its SHA-256 is the id
 * listed and it decodes within every limit (checked and decoded in the thread pool). Each accepted
 * result is reported to the view (result_added: read-only results/<name>/<task>/... nodes whose
 * reads fetch, verify and keep blocks exactly like a remote job's inputs: fs/mirror.c, fs/read.c).
 * The job's state and counts follow its submitter's; it is over here (and wait/<name> answers)
 * only once every result the submitter listed has been mirrored.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "pool/auth.h"
#include "pool/internal.h"
#include "pool/wire.h"
#include "pool/work.h"


static void tres_free(taskres_t *tr)
{
    if (!tr)
        return;
    manifest_release(&tr->man);
    free(tr->bytes);
    free(tr);
}

void pool__res_free(job_t *j)
{
    if (j->tres)
        for (uint32_t t = 0; t < j->man.desc.tasks; t++) {
            if (j->remote && j->tres[t])
                j->pool->mirror_bytes -= j->tres[t]->len;
            tres_free(j->tres[t]);
        }
    free(j->tres);
    free(j->tres_order);
    j->tres = NULL;
    j->tres_order = NULL;
    j->n_tres = 0;
}

uint64_t pool__epoch_ms(const pool_t *pool)
{
    return (uint64_t)pool->t0.tv_sec * 1000 + (uint64_t)pool->t0.tv_nsec / 1000000;
}

/* Takes tr (its manifest decoded, bytes and id set) as task tr->task's result. The caller checked
 * tr->task < tasks. Returns the result that it replaced, for the caller to free once nothing points
 * at it, or NULL. */
static taskres_t *tres_put(job_t *j, taskres_t *tr)
{
    if (!j->tres)
        j->tres = xcalloc(j->man.desc.tasks, sizeof(*j->tres));
    taskres_t *old = j->tres[tr->task];
    j->tres[tr->task] = tr;
    if (!old) {
        if (!j->remote) {
            if (!j->tres_order)
                j->tres_order = xcalloc(j->man.desc.tasks, sizeof(*j->tres_order));
            j->tres_order[j->n_tres] = tr->task;
        }
        j->n_tres++;
    }
    return old;
}

/* ---- submitter: hash each recorded result ---- */

typedef struct reswork {
    uv_work_t req;
    pool_t *pool;
    job_t *job;
    taskres_t *tr;
    char *dir;
    int rc;
    char why[256];
} reswork_t;

static void res_work(uv_work_t *req)
{
    reswork_t *w = req->data;
    struct stat st;
    if (lstat(w->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        w->rc = -ENOENT; /* a task refused or lost before it left a result: nothing to share */
        return;
    }
    w->rc = pool__hash_tree(NULL, w->dir, &w->tr->man, w->why, sizeof(w->why));
    if (!w->rc) {
        w->rc = manifest_encode(&w->tr->man, &w->tr->bytes, &w->tr->len);
        if (w->rc)
            snprintf(w->why, sizeof(w->why), "encoding its manifest: %s", strerror(-w->rc));
    }
    if (!w->rc && w->tr->len > WIRE_MAX_RESULT_MANIFEST) {
        w->rc = -EMSGSIZE; /* no results list could carry it */
        snprintf(w->why, sizeof(w->why), "its manifest is %zu bytes (at most %u are shared)", w->tr->len,
                 (unsigned)WIRE_MAX_RESULT_MANIFEST);
    }
    if (!w->rc) {
        hash_t id;
        manifest_id(w->tr->bytes, w->tr->len, &id);
        hash_to_hex(&id, w->tr->id);
        /* the entry every mirroring peer checks: this peer accepted this result, from this worker */
        auth_accepted_sign(w->pool->key, w->job->id, w->tr->task, w->tr->id, w->tr->exit_code < -1 ||
                           w->tr->exit_code > 255 ? -1 : w->tr->exit_code, w->tr->ok, w->tr->worker, w->tr->sig);
    }
}

static void res_done(uv_work_t *req, int status)
{
    reswork_t *w = req->data;
    pool_t *pool = w->pool;
    job_t *j = w->job;
    pool->pending_work--;
    if (!w->rc && !j->gone && !pool->stopping) {
        taskres_t *old = tres_put(j, w->tr);
        if (old) {
            pool__blocks_remove_job(pool, NULL); /* rebuilt without the old result's blocks */
            tres_free(old);
        } else {
            pool__blocks_add_result(pool, j, w->tr);
        }
        w->tr = NULL;
    } else if (w->rc && w->rc != -ENOENT && !j->gone) {
        log_warn("job %s task %u: its result is not shared with the pool: %s", j->name, w->tr->task, w->why);
    }
    tres_free(w->tr);
    free(w->dir);
    free(w);
    pool_job_unref(j);
}

void pool__res_recorded(job_t *j, uint32_t task, bool ok, int exit_code, const char *worker)
{
    pool_t *pool = j->pool;
    if (j->remote || task >= j->man.desc.tasks)
        return;
    reswork_t *w = xcalloc(1, sizeof(*w));
    w->req.data = w;
    w->pool = pool;
    w->job = j;
    w->tr = xcalloc(1, sizeof(*w->tr));
    w->tr->task = task;
    w->tr->ok = ok;
    w->tr->exit_code = exit_code;
    snprintf(w->tr->worker, sizeof(w->tr->worker), "%s", worker && strlen(worker) == HASH_HEX_LEN ? worker : "");
    manifest_init(&w->tr->man);
    w->tr->man.name = xasprintf("%s.%u", j->name[0] == '.' ? "result" : j->name, task);
    w->tr->man.created_ms = pool_now_ms();
    w->dir = xasprintf("%s/results/%s/%u", pool->data_dir, j->id, task);
    pool_job_ref(j);
    pool->pending_work++;
    uv_queue_work(pool->loop, &w->req, res_work, res_done);
}

/* ---- submitter: the API ---- */

static void res_list(pool_t *pool, httpd_req_t *r, job_t *j)
{
    size_t qlen = 0, vlen = 0;
    const char *q = httpd_req_query(r, &qlen);
    char val[24];
    uint64_t after = 0;
    if (httpd_query_get(q, qlen, "after", val, sizeof(val) - 1, &vlen) == 0) {
        val[vlen] = '\0';
        char *end = NULL;
        after = strtoull(val, &end, 10);
        if (vlen == 0 || *end)
            return pool__api_error(r, 400, "after= takes a count");
    }
    if (after > j->n_tres)
        return pool__api_error(r, 400, "after= is past the results listed");
    wire_results_t l = {.state = (wire_state_t)j->state, .epoch = pool__epoch_ms(pool), .after = (uint32_t)after,
                        .done = j->n_tres};
    memcpy(l.job, j->id, sizeof(l.job));
    size_t n = j->n_tres - (size_t)after;
    if (n > WIRE_MAX_RESULTS)
        n = WIRE_MAX_RESULTS;
    l.results = xcalloc(n ? n : 1, sizeof(*l.results));
    for (size_t k = 0; k < n; k++) {
        const taskres_t *tr = j->tres[j->tres_order[after + k]];
        wire_result_t *e = &l.results[l.n++];
        *e = (wire_result_t){.task = tr->task, .ok = tr->ok, .manifest = tr->bytes, .manifest_len = tr->len,
                             .exit_code = tr->exit_code < -1 || tr->exit_code > 255 ? -1 : tr->exit_code};
        memcpy(e->id, tr->id, sizeof(e->id));
        memcpy(e->worker, tr->worker, sizeof(e->worker));
        memcpy(e->sig, tr->sig, sizeof(e->sig));
    }
    char *body = NULL;
    size_t len = 0;
    int rc = wire_results_encode(&l, j->man.desc.tasks, &body, &len, NULL);
    free(l.results);
    if (rc)
        return pool__api_error(r, 500, "cannot encode the results list");
    httpd_reply_take(r, 200, "application/json", body, len);
}

/* /v1/results/<job id>[?after=K] and /v1/results/<job id>/<task>. */
bool pool__res_handle(pool_t *pool, httpd_req_t *r, const char *path)
{
    if (strncmp(path, "/results/", 9) != 0)
        return false;
    const char *rest = path + 9;
    size_t idlen = strcspn(rest, "/");
    char id[HASH_HEX_LEN + 1];
    hash_t h;
    if (idlen != HASH_HEX_LEN || hash_from_hex(rest, HASH_HEX_LEN, &h) != 0)
        return pool__api_error(r, 400, "a job is named by 64 hex digits"), true;
    memcpy(id, rest, HASH_HEX_LEN);
    id[HASH_HEX_LEN] = '\0';
    job_t *j = pool_job_by_id(pool, id);
    if (!j || j->gone)
        return pool__api_error(r, 404, "no such job"), true;
    if (rest[idlen] == '\0') {
        if (j->remote)
            return pool__api_error(r, 404, "not this job's submitter"), true;
        return res_list(pool, r, j), true;
    }
    const char *ts = rest + idlen + 1;
    char *end = NULL;
    unsigned long task = strtoul(ts, &end, 10);
    if (!*ts || *end || task >= j->man.desc.tasks)
        return pool__api_error(r, 400, "no such task"), true;
    const taskres_t *tr = j->tres ? j->tres[task] : NULL;
    if (!tr)
        return pool__api_error(r, 404, "no result of this task here"), true;
    httpd_reply(r, 200, "application/json", tr->bytes, tr->len);
    return true;
}

/* ---- other peers: mirror the submitter's results ---- */

/* Over here once the submitter says so and every result it listed has been looked at. */
static void remote_check_over(job_t *j)
{
    if (pool_job_over(j) ||
        (j->r_state != POOL_JOB_DONE && j->r_state != POOL_JOB_FAILED && j->r_state != POOL_JOB_CANCELLED))
        return;
    if (j->res_cursor < j->r_done)
        return;
    j->state = j->r_state;
    log_info("job %s %s at its submitter: %u results here", j->name, pool_job_state_name(j->state), j->n_tres);
    exec_forget_job(j->pool->exec, j->id); /* no task of it will run here: its warm sandboxes end */
    pool__job_changed(j);
}

static void mirror_add(job_t *j, taskres_t *tr)
{
    pool_t *pool = j->pool;
    taskres_t *old = tres_put(j, tr);
    tres_free(old); /* none: the caller skips tasks it has */
    pool->mirror_bytes += tr->len;
    pool->results_mirrored++;
    if (pool->view.result_added)
        pool->view.result_added(pool->view.arg, j, tr);
}

typedef struct rlist {
    pool_t *pool;
    job_t *job;
    char *peer;
    /* decoded in the thread pool: the list (every entry's id checked against its manifest by the
     * codec) and each entry's manifest */
    uv_work_t work;
    char *body;
    size_t len;
    uint32_t ntasks;
    key_pub_t submitter; /* whose signature every entry must carry */
    char job_id[HASH_HEX_LEN + 1];
    wire_results_t wl;
    size_t dropped;
    taskres_t **trs; /* by entry: decoded, or NULL (why in bad[0] for the first) */
    unsigned nbad;
    int rc;
    char why[256], bad[256];
} rlist_t;

static void list_work(uv_work_t *w)
{
    rlist_t *l = w->data;
    l->rc = wire_results_decode(l->body, l->len, l->ntasks, &l->wl, &l->dropped, l->why, sizeof(l->why));
    if (l->rc)
        return;
    l->trs = xcalloc(l->wl.n ? l->wl.n : 1, sizeof(*l->trs));
    for (size_t i = 0; i < l->wl.n; i++) {
        const wire_result_t *e = &l->wl.results[i];
        if (!auth_accepted_verify(&l->submitter, l->job_id, e->task, e->id, e->exit_code, e->ok, e->worker, e->sig)) {
            if (l->nbad++ == 0) /* the submitter did not accept it: never shown here */
                snprintf(l->bad, sizeof(l->bad), "task %u: its submitter's signature does not verify", e->task);
            continue;
        }
        taskres_t *tr = xcalloc(1, sizeof(*tr));
        manifest_init(&tr->man);
        char w2[200];
        if (manifest_decode(&tr->man, e->manifest, e->manifest_len, w2, sizeof(w2)) != 0) {
            if (l->nbad++ == 0)
                snprintf(l->bad, sizeof(l->bad), "task %u: %s", e->task, w2);
            tres_free(tr);
            continue;
        }
        tr->task = e->task;
        tr->exit_code = e->exit_code;
        tr->ok = e->ok;
        memcpy(tr->id, e->id, HASH_HEX_LEN + 1);
        memcpy(tr->worker, e->worker, sizeof(tr->worker));
        memcpy(tr->sig, e->sig, sizeof(tr->sig));
        tr->bytes = xmalloc(e->manifest_len + 1);
        memcpy(tr->bytes, e->manifest, e->manifest_len);
        tr->bytes[e->manifest_len] = '\0';
        tr->len = e->manifest_len;
        l->trs[i] = tr;
    }
}

/* One decoded entry of a results list: taken (or held already: tr is freed), or refused (the
 * mirror is full). 0 if taken or held, else -ENOSPC. */
static int mirror_entry(job_t *j, taskres_t *tr)
{
    if (j->tres && j->tres[tr->task]) {
        tres_free(tr);
        return 0;
    }
    pool_t *pool = j->pool;
    uint64_t cap = pool->opts.max_mirror_bytes ? pool->opts.max_mirror_bytes : POOL_MAX_MIRROR_BYTES;
    if (pool->mirror_bytes + tr->len > cap) {
        if (!pool->mirror_cap_said)
            log_warn("results of other peers' jobs are no longer mirrored here: %llu bytes of their manifests are "
                     "held (--max-mirror %llu); they stay readable at their submitters",
                     (unsigned long long)pool->mirror_bytes, (unsigned long long)cap);
        pool->mirror_cap_said = true;
        uint32_t task = tr->task;
        tres_free(tr);
        pool->up.vol_result_taken(pool, j, task); /* not mirrored, but the submitter has it */
        return -ENOSPC;
    }
    uint32_t task = tr->task;
    mirror_add(j, tr);
    j->pool->up.vol_result_taken(j->pool, j, task); /* if it ran here, the submitter has it now */
    return 0;
}

static void list_done(uv_work_t *w, int status)
{
    rlist_t *l = w->data;
    pool_t *pool = l->pool;
    job_t *j = l->job;
    pool->pending_work--;
    j->res_fetching = false;
    if (j->gone || pool->stopping) {
        /* nothing is kept */
    } else if (l->rc) {
        log_warn("job %s: the results list from %s is refused: %s", j->name, l->peer, l->why);
    } else if (strcmp(l->wl.job, j->id) != 0 || l->wl.after != j->res_cursor) {
        log_warn("job %s: the results list from %s is not the one asked for and is ignored", j->name, l->peer);
    } else {
        if (l->dropped)
            log_warn("job %s: %zu results from %s are refused (the first: %s)", j->name, l->dropped, l->peer, l->why);
        if (l->nbad)
            log_warn("job %s: %u results from %s do not decode (the first: %s)", j->name, l->nbad, l->peer, l->bad);
        for (size_t i = 0; i < l->wl.n; i++) {
            if (l->trs[i])
                mirror_entry(j, l->trs[i]);
            l->trs[i] = NULL;
        }
        j->res_cursor += (uint32_t)(l->wl.n + l->dropped);
        remote_check_over(j);
    }
    for (size_t i = 0; l->trs && i < l->wl.n; i++)
        tres_free(l->trs[i]);
    free(l->trs);
    wire_results_release(&l->wl);
    free(l->body);
    pool_job_unref(j);
    free(l->peer);
    free(l);
}

static void on_list(int status, unsigned code, const char *body, size_t len, void *arg)
{
    rlist_t *l = arg;
    pool_t *pool = l->pool;
    job_t *j = l->job;
    pool->pending_gets--;
    if (status || code != 200 || j->gone || pool->stopping) {
        if (status || code != 200)
            log_debug("job %s: results list from %s: %s %u", j->name, l->peer, status ? strerror(-status) : "HTTP",
                      code);
        j->res_fetching = false;
        pool_job_unref(j);
        free(l->peer);
        free(l);
        return;
    }
    l->body = xmalloc(len ? len : 1); /* the fetcher's buffer is valid during this call only */
    memcpy(l->body, body, len);
    l->len = len;
    l->ntasks = j->man.desc.tasks;
    l->submitter = j->submitter;
    memcpy(l->job_id, j->id, sizeof(l->job_id));
    l->work.data = l;
    pool->pending_work++;
    uv_queue_work(pool->loop, &l->work, list_work, list_done); /* j->res_fetching stays set meanwhile */
}

void pool__res_remote_seen(job_t *j, const wire_job_t *e, const char *peer)
{
    pool_t *pool = j->pool;
    if (!j->remote || !e->origin)
        return;
    j->rcounts = e->counts;
    j->r_state = (pool_job_state_t)e->state;
    if (j->r_state == POOL_JOB_CANCELLED && j->listed) {
        /* As on its submitter (rm -r jobs/X): the job leaves jobs/, its results stay in results/;
         * a task of it still running here stops (the submitter's push may have been lost). */
        log_info("job %s: cancelled by its submitter: it leaves jobs/ here (its results stay)", j->name);
        for (running_t *r = pool->running; r; r = r->next)
            if (r->job == j && r->et)
                exec_task_cancel(r->et);
        pool_job_unlist(j);
    }
    j->r_done = e->results;
    if (e->epoch != j->r_epoch) { /* a restarted submitter lists its results in another order */
        j->r_epoch = e->epoch;
        j->res_cursor = 0;
    }
    remote_check_over(j);
    if (j->res_fetching || j->res_cursor >= j->r_done || pool->stopping)
        return;
    rlist_t *l = xcalloc(1, sizeof(*l));
    l->pool = pool;
    l->job = j;
    l->peer = xstrdup(peer);
    char *url = xasprintf("%s/v1/results/%s?after=%u", peer, j->id, j->res_cursor);
    int rc = fetch_get(pool->fetch, url, WIRE_MAX_RESULTS_BODY,
                       on_list, l);
    if (rc == 0) {
        pool->pending_gets++;
        j->res_fetching = true;
        pool_job_ref(j);
    } else {
        log_warn("GET %s: %s", url, strerror(-rc));
        free(l->peer);
        free(l);
    }
    free(url);
}
