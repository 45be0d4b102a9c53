/*
 * results.c: results shared with the whole pool ("every peer's results/ lists their results,
 * readable from any peer, fetched lazily").
 *
 * Submitter: every task result it records (run here, or fetched from a volunteer) is hashed in the
 * thread pool into a result manifest: the files of results/<job>/<task>/ (outputs, stdout, stderr,
 * exit_code) hashed in place, no copy. Its blocks join the block index (api.c serves them after a
 * fresh check of their hash, since a retried task may replace a result directory) and the manifest
 * is served at /v1/results/<job>/<task>. /v1/results/<job>?after=K lists the results from the K-th
 * on, in the order they were hashed, each with its exit code, manifest id and manifest text (so a
 * peer mirrors many results in one request); /v1/jobs tells how many there are and the submitter's
 * epoch (its start time: a restarted submitter hashes its results again, in another order).
 *
 * Other peers: when the submitter's /v1/jobs entry reports results this peer has not mirrored, it
 * asks for the list from where it stands; a manifest is accepted only if its SHA-256 is the id
 * listed and it decodes within every limit. Each accepted result appears at once as read-only
 * results/<name>/<task>/... nodes whose reads fetch, verify and keep blocks exactly like a remote
 * job's inputs (remote.c). The job's state and counts follow its submitter's; it is over here (and
 * wait/<name> answers) only once every result the submitter listed has been mirrored.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "pool/internal.h"
#include "pool/work.h"

#define RES_LIST_MAX_BYTES (4u * 1024 * 1024) /* one /v1/results answer (at least one entry) */
#define RES_LIST_REPLY_CAP (RES_LIST_MAX_BYTES + MANIFEST_MAX_BYTES / 4 + 65536)

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
        for (uint32_t t = 0; t < j->man.desc.tasks; t++)
            tres_free(j->tres[t]);
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
    if (!w->rc) {
        hash_t id;
        manifest_id(w->tr->bytes, w->tr->len, &id);
        hash_to_hex(&id, w->tr->id);
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

void pool__res_recorded(job_t *j, uint32_t task, bool ok, int exit_code)
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
    json_t *arr = json_array();
    size_t bytes = 0;
    for (uint64_t k = after; k < j->n_tres && (bytes < RES_LIST_MAX_BYTES || k == after); k++) {
        const taskres_t *tr = j->tres[j->tres_order[k]];
        json_array_append_new(arr, json_pack("{s:I,s:i,s:b,s:s,s:s%}", "task", (json_int_t)tr->task, "exit",
                                             tr->exit_code, "ok", tr->ok, "id", tr->id, "manifest", tr->bytes,
                                             tr->len));
        bytes += tr->len + 160;
    }
    json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:I,s:o}", "job", j->id, "state", pool_job_state_name(j->state),
                          "epoch", (json_int_t)pool__epoch_ms(pool), "after", (json_int_t)after, "done",
                          (json_int_t)j->n_tres, "results", arr);
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    httpd_reply_take(r, 200, "application/json", body, strlen(body));
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

static job_state_t state_from_name(const char *s)
{
    for (int st = J_RUNNING; st <= J_CANCELLED; st++)
        if (s && strcmp(s, pool_job_state_name((job_state_t)st)) == 0)
            return (job_state_t)st;
    return J_RUNNING;
}

/* Over here once the submitter says so and every result it listed has been looked at. */
static void remote_check_over(job_t *j)
{
    if (pool_job_over(j) || (j->r_state != J_DONE && j->r_state != J_FAILED && j->r_state != J_CANCELLED))
        return;
    if (j->res_cursor < j->r_done)
        return;
    j->state = j->r_state;
    log_info("job %s %s at its submitter: %u results here", j->name, pool_job_state_name(j->state), j->n_tres);
    pool__job_changed(j);
}

static void mirror_add(job_t *j, taskres_t *tr)
{
    pool_t *pool = j->pool;
    taskres_t *old = tres_put(j, tr);
    tres_free(old); /* none: the caller skips tasks it has */
    if (pool->view.result_added)
        pool->view.result_added(pool->view.arg, j, tr);
}

typedef struct rlist {
    pool_t *pool;
    job_t *job;
    char *peer;
} rlist_t;

/* One entry of a /v1/results answer: 0 if it was taken (or is held already), else why not. */
static int mirror_entry(job_t *j, json_t *e, char *why, size_t whylen)
{
    json_int_t task = json_integer_value(json_object_get(e, "task"));
    const char *id = json_string_value(json_object_get(e, "id"));
    json_t *mj = json_object_get(e, "manifest");
    const char *text = json_string_value(mj);
    size_t tlen = json_string_length(mj);
    hash_t want, got;
    if (!json_is_integer(json_object_get(e, "task")) || task < 0 || (uint64_t)task >= j->man.desc.tasks)
        return snprintf(why, whylen, "no such task"), -EINVAL;
    if (j->tres && j->tres[task])
        return 0;
    if (!id || strlen(id) != HASH_HEX_LEN || hash_from_hex(id, HASH_HEX_LEN, &want) != 0 || !text)
        return snprintf(why, whylen, "task %lld: no manifest id or text", (long long)task), -EINVAL;
    if (tlen > MANIFEST_MAX_BYTES)
        return snprintf(why, whylen, "task %lld: manifest too large", (long long)task), -EMSGSIZE;
    manifest_id(text, tlen, &got);
    if (!hash_equal(&want, &got))
        return snprintf(why, whylen, "task %lld: its manifest does not hash to its id", (long long)task), -EBADMSG;
    taskres_t *tr = xcalloc(1, sizeof(*tr));
    manifest_init(&tr->man);
    char w[200];
    int rc = manifest_decode(&tr->man, text, tlen, w, sizeof(w));
    if (rc) {
        tres_free(tr);
        return snprintf(why, whylen, "task %lld: %s", (long long)task, w), rc;
    }
    tr->task = (uint32_t)task;
    json_t *x = json_object_get(e, "exit");
    tr->exit_code = json_is_integer(x) ? (int)json_integer_value(x) : -1;
    tr->ok = json_is_true(json_object_get(e, "ok"));
    memcpy(tr->id, id, HASH_HEX_LEN + 1);
    tr->bytes = xmalloc(tlen + 1);
    memcpy(tr->bytes, text, tlen);
    tr->bytes[tlen] = '\0';
    tr->len = tlen;
    mirror_add(j, tr);
    j->pool->up.vol_result_taken(j->pool, j, tr->task); /* if it ran here, the submitter has it now */
    return 0;
}

static void on_list(int status, unsigned code, const char *body, size_t len, void *arg)
{
    rlist_t *l = arg;
    pool_t *pool = l->pool;
    job_t *j = l->job;
    pool->pending_gets--;
    j->res_fetching = false;
    json_t *o = NULL;
    if (status || code != 200) {
        log_debug("job %s: results list from %s: %s %u", j->name, l->peer, status ? strerror(-status) : "HTTP", code);
        goto out;
    }
    if (j->gone || pool->stopping)
        goto out;
    json_error_t err;
    o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
    json_t *arr = json_object_get(o, "results");
    json_t *after = json_object_get(o, "after");
    if (!json_is_array(arr) || !json_is_integer(after) || json_integer_value(after) != (json_int_t)j->res_cursor) {
        log_warn("job %s: the results list from %s is malformed and is ignored", j->name, l->peer);
        goto out;
    }
    size_t i;
    json_t *e;
    unsigned refused = 0;
    json_array_foreach(arr, i, e) {
        char why[256];
        if (mirror_entry(j, e, why, sizeof(why)) != 0 && refused++ < 3)
            log_warn("job %s: a result from %s is refused: %s", j->name, l->peer, why);
        j->res_cursor++;
    }
    remote_check_over(j);
out:
    json_decref(o);
    pool_job_unref(j);
    free(l->peer);
    free(l);
}

void pool__res_remote_seen(job_t *j, json_t *o, const char *peer)
{
    pool_t *pool = j->pool;
    if (!j->remote || !json_is_true(json_object_get(o, "origin")))
        return;
    json_t *c = json_object_get(o, "counts");
    coord_counts_t sc = {0};
    const char *keys[] = {"total", "waiting", "running", "succeeded", "failed", "cancelled"};
    uint32_t *vals[] = {&sc.total, &sc.waiting, &sc.running, &sc.succeeded, &sc.failed, &sc.cancelled};
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        json_int_t v = json_integer_value(json_object_get(c, keys[k]));
        *vals[k] = v < 0 || (uint64_t)v > j->man.desc.tasks ? 0 : (uint32_t)v;
    }
    j->rcounts = sc;
    j->r_state = state_from_name(json_string_value(json_object_get(o, "state")));
    if (j->r_state == J_CANCELLED && j->listed) {
        /* As on its submitter (rm -r jobs/X): the job leaves jobs/, its results stay in results/;
         * a task of it still running here stops (the submitter's push may have been lost). */
        log_info("job %s: cancelled by its submitter: it leaves jobs/ here (its results stay)", j->name);
        for (running_t *r = pool->running; r; r = r->next)
            if (r->job == j && r->et)
                exec_task_cancel(r->et);
        pool_job_unlist(j);
    }
    json_int_t done = json_integer_value(json_object_get(o, "results"));
    j->r_done = done < 0 || (uint64_t)done > j->man.desc.tasks ? j->man.desc.tasks : (uint32_t)done;
    json_int_t ep = json_integer_value(json_object_get(o, "epoch"));
    if ((uint64_t)ep != j->r_epoch) { /* a restarted submitter lists its results in another order */
        j->r_epoch = (uint64_t)ep;
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
    int rc = fetch_get(pool->fetch, url, RES_LIST_REPLY_CAP < FETCH_MAX_GET_BODY ? RES_LIST_REPLY_CAP : FETCH_MAX_GET_BODY,
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
