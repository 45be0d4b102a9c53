/*
 * api.c: this peer's HTTP API (docs/protocol.md) on the shared httpd: the jobs it knows, their
 * manifests, and blocks by hash. A block is served only from bytes that were verified: the inputs
 * of a job this peer published (hashed at publication) or the block store (verified before stored).
 *
 * The block index maps a block hash to where a published job holds it (job, file, block). It is an
 * open-addressing table rebuilt when a job goes away (rare) and appended to at publication.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "fs/internal.h"

#define API_PREFIX "/v1"

/*
 * The block index and the /v1/block and /v1/have answers are swarm/serve.c's; these wrappers
 * register what a job holds, with the job as the owner: its inputs (DATA/inputs/<id>/) if it was
 * published here, else its blocks in the store, and its hashed results (DATA/results/<id>/<task>/).
 */
static void blocks_add_results(fs_t *fs, job_t *j)
{
    for (uint32_t t = 0; j->tres && t < j->man.desc.tasks; t++)
        if (j->tres[t])
            fs__blocks_add_result(fs, j, j->tres[t]);
}

void fs__blocks_add_job(fs_t *fs, job_t *j)
{
    if (!fs->serve)
        return;
    char *root = j->remote ? NULL : xasprintf("%s/inputs/%s", fs->data_dir, j->id);
    int rc = serve_add_job(fs->serve, j->id, &j->man, root, j);
    if (rc)
        log_warn("job %s: its blocks are not served: %s", j->name, strerror(-rc));
    free(root);
}

void fs__blocks_add_result(fs_t *fs, job_t *j, taskres_t *tr)
{
    if (!fs->serve)
        return;
    char *root = xasprintf("%s/results/%s/%u", fs->data_dir, j->id, tr->task);
    int rc = serve_add_result(fs->serve, &tr->man, root, j);
    if (rc)
        log_warn("job %s task %u: its result is not served: %s", j->name, tr->task, strerror(-rc));
    free(root);
}

void fs__blocks_remove_job(fs_t *fs, job_t *j)
{
    if (!fs->serve)
        return; /* stopping: the registrations went with it */
    if (j) {
        serve_remove(fs->serve, j);
        return;
    }
    /* NULL: a result was replaced; every local job is registered again (rare; one index rebuild) */
    for (job_t *k = fs->joblist; k; k = k->next)
        if (k->published && !k->remote && !k->gone)
            serve_remove(fs->serve, k);
    for (job_t *k = fs->joblist; k; k = k->next) {
        if (!k->published || k->remote || k->gone)
            continue;
        fs__blocks_add_job(fs, k);
        blocks_add_results(fs, k);
    }
}

void fs__api_error(httpd_req_t *r, unsigned status, const char *msg)
{
    json_t *o = json_pack("{s:s}", "error", msg);
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    httpd_reply_take(r, status, "application/json", body, strlen(body));
}

static void api_jobs(fs_t *fs, httpd_req_t *r)
{
    json_t *arr = json_array();
    size_t n = 0;
    for (job_t *j = fs->joblist; j && n < FS_API_MAX_JOBS; j = j->next) {
        if (!j->published || j->gone)
            continue;
        json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:b}", "id", j->id, "name", j->name, "state",
                              fs__job_state_name(j->state), "tasks", (json_int_t)j->man.desc.tasks, "origin",
                              !j->remote);
        if (!j->remote) { /* its submitter: what others mirror (results.c) */
            coord_counts_t c = {0};
            coord_counts(fs->coord, j->id, &c);
            json_object_set_new(o, "counts",
                                json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "total", (json_int_t)c.total, "waiting",
                                          (json_int_t)c.waiting, "running", (json_int_t)c.running, "succeeded",
                                          (json_int_t)c.succeeded, "failed", (json_int_t)c.failed, "cancelled",
                                          (json_int_t)c.cancelled));
            json_object_set_new(o, "results", json_integer(j->n_tres));
            json_object_set_new(o, "epoch", json_integer((json_int_t)fs__epoch_ms(fs)));
        }
        json_array_append_new(arr, o);
        n++;
    }
    char *body = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    httpd_reply_take(r, 200, "application/json", body, strlen(body));
}

static void api_manifest(fs_t *fs, httpd_req_t *r, const char *hex)
{
    job_t *j = fs__job_by_id(fs, hex);
    if (!j)
        return fs__api_error(r, 404, "no such job");
    char *bytes = NULL;
    size_t len = 0;
    if (manifest_encode(&j->man, &bytes, &len) != 0)
        return fs__api_error(r, 500, "cannot encode the manifest");
    httpd_reply_header(r, "Cache-Control", "public, max-age=31536000, immutable");
    httpd_reply_take(r, 200, "application/json", bytes, len);
}

static void api_handler(httpd_req_t *r, void *arg)
{
    fs_t *fs = arg;
    const char *method = httpd_req_method(r);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return fs__api_error(r, 405, "only GET is served");
    const char *path = httpd_req_path(r) + strlen(API_PREFIX);
    if (strcmp(path, "/jobs") == 0)
        return api_jobs(fs, r);
    if (strncmp(path, "/manifest/", 10) == 0)
        return api_manifest(fs, r, path + 10);
    if (serve_handle(fs->serve, r, path)) /* /block/ and /have/ */
        return;
    if (fs__vol_handle(fs, r, path) || fs__res_handle(fs, r, path))
        return;
    fs__api_error(r, 404, "unknown request (see docs/protocol.md)");
}

int fs__api_start(fs_t *fs)
{
    if (!fs->opts.httpd)
        return 0;
    int rc = httpd_route(fs->opts.httpd, API_PREFIX, api_handler, fs);
    if (rc)
        log_error("peer API: %s", strerror(-rc));
    return rc;
}

void fs__api_stop(fs_t *fs)
{
    if (fs->opts.httpd)
        httpd_unroute(fs->opts.httpd, API_PREFIX);
}
