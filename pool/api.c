/*
 * api.c: part of this peer's HTTP API (docs/protocol.md): the jobs it knows (/v1/jobs, through
 * pool/wire.h) and their manifests. Blocks by hash and /v1/have are swarm/serve.c's (what each job
 * holds is registered by blocks.c); pool.c routes every /v1 request.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "pool/internal.h"
#include "pool/wire.h"

_Static_assert((int)WIRE_STATE_PUBLISHING == (int)POOL_JOB_PUBLISHING &&
                   (int)WIRE_STATE_CANCELLED == (int)POOL_JOB_CANCELLED,
               "wire_state_t numbers the states as pool_job_state_t");

/* The jobs this peer knows (published ones), with the counts others mirror for our own. */
static void api_jobs(pool_t *pool, httpd_req_t *r)
{
    size_t cap = 0, n = 0;
    for (job_t *j = pool->joblist; j; j = j->next)
        cap++;
    wire_job_t *es = xcalloc(cap ? cap : 1, sizeof(*es));
    for (job_t *j = pool->joblist; j && n < WIRE_MAX_JOBS; j = j->next) {
        if (!j->published || j->gone)
            continue;
        wire_job_t *e = &es[n];
        memset(e, 0, sizeof(*e));
        memcpy(e->id, j->id, sizeof(e->id));
        snprintf(e->name, sizeof(e->name), "%s", j->name);
        e->state = (wire_state_t)j->state;
        e->tasks = j->man.desc.tasks;
        e->origin = !j->remote;
        if (j->signed_job) /* every holder passes the submitter's signature on with the job */
            snprintf(e->sig, sizeof(e->sig), "%s", j->sig);
        if (e->origin) { /* its submitter: what others mirror (results.c) */
            coord_counts(pool->coord, j->id, &e->counts);
            e->results = j->n_tres;
            e->epoch = pool__epoch_ms(pool);
            e->removed = j->inputs_gone;
        }
        char why[160];
        if (wire_job_check(e, why, sizeof(why)) != 0) {
            log_warn("job %s is left out of /v1/jobs: %s", j->name, why);
            continue;
        }
        n++;
    }
    char *body = NULL;
    size_t len = 0;
    int rc = wire_jobs_encode(es, n, &body, &len, NULL);
    free(es);
    if (rc)
        return pool__api_error(r, 500, "cannot encode the jobs listing");
    httpd_reply_take(r, 200, "application/json", body, len);
}

static void api_manifest(pool_t *pool, httpd_req_t *r, const char *hex)
{
    job_t *j = pool_job_by_id(pool, hex);
    if (!j)
        return pool__api_error(r, 404, "no such job");
    char *bytes = NULL;
    size_t len = 0;
    if (manifest_encode(&j->man, &bytes, &len) != 0)
        return pool__api_error(r, 500, "cannot encode the manifest");
    httpd_reply_header(r, "Cache-Control", "public, max-age=31536000, immutable");
    httpd_reply_take(r, 200, "application/json", bytes, len);
}

bool pool__api_handle(pool_t *pool, httpd_req_t *r, const char *path)
{
    if (strcmp(path, "/id") == 0) { /* who this peer is: the key its signed requests are checked against */
        char body[KEY_PUB_HEX_LEN + 16];
        key_pub_t pub;
        key_public(pool->key, &pub);
        int n = wire_id_encode(&pub, body, sizeof(body));
        httpd_reply(r, 200, "application/json", body, n > 0 ? (size_t)n : 0);
        return true;
    }
    if (strcmp(path, "/jobs") == 0)
        return api_jobs(pool, r), true;
    if (strncmp(path, "/manifest/", 10) == 0)
        return api_manifest(pool, r, path + 10), true;
    return serve_handle(pool->serve, r, path); /* /block/ and /have/ */
}
