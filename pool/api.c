/*
 * api.c: this peer's HTTP API (docs/protocol.md) on the shared httpd: the jobs it knows, their
 * manifests, and blocks by hash. A block is served only from bytes that were verified: the inputs
 * of a job this peer published (hashed at publication) or the block store (verified before stored).
 *
 * The block index maps a block hash to where a published job holds it (job, file, block). It is an
 * open-addressing table rebuilt when a job goes away (rare) and appended to at publication.
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

_Static_assert((int)WIRE_STATE_PUBLISHING == (int)J_PUBLISHING && (int)WIRE_STATE_CANCELLED == (int)J_CANCELLED,
               "wire_state_t numbers the states as job_state_t");

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
        if (e->origin) { /* its submitter: what others mirror (results.c) */
            coord_counts(pool->coord, j->id, &e->counts);
            e->results = j->n_tres;
            e->epoch = pool__epoch_ms(pool);
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

/*
 * A block of a result: read from results/<job>/<task>/ and served only if it still hashes to its
 * name (a retried task may have replaced the directory since it was hashed). Results are small;
 * reading one block into memory costs little.
 */
static void result_block(pool_t *pool, httpd_req_t *r, const block_loc_t *l)
{
    const manifest_file_t *f = &l->res->man.files[l->file];
    uint32_t bs = l->res->man.block_size;
    uint64_t off = (uint64_t)l->block * bs;
    size_t len = (size_t)(f->size - off < bs ? f->size - off : bs);
    char *path = xasprintf("%s/results/%s/%u/%s", pool->data_dir, l->job->id, l->res->task, f->path);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    free(path);
    char *buf = xmalloc(len ? len : 1);
    ssize_t got = fd < 0 ? -1 : pread(fd, buf, len, (off_t)off);
    if (fd >= 0)
        close(fd);
    hash_t h;
    hash_sha256(buf, len, &h);
    if (got != (ssize_t)len || !hash_equal(&h, &l->h)) {
        free(buf);
        log_warn("job %s task %u: %s changed since it was hashed; not served", l->job->name, l->res->task, f->path);
        return pool__api_error(r, 404, "block not held here");
    }
    httpd_reply_header(r, "Cache-Control", "public, max-age=31536000, immutable");
    pool->api_blocks_served++;
    pool->api_bytes_served += len;
    httpd_reply_take(r, 200, "application/octet-stream", buf, len);
}

static void api_block(pool_t *pool, httpd_req_t *r, const char *hex)
{
    hash_t h;
    if (strlen(hex) != HASH_HEX_LEN || hash_from_hex(hex, HASH_HEX_LEN, &h) != 0)
        return pool__api_error(r, 400, "a block is named by 64 hex digits");
    int fd = -1;
    uint64_t off = 0, len = 0;
    const block_loc_t *l = pool__blocks_find(pool, &h);
    if (l && l->res)
        return result_block(pool, r, l);
    if (l) {
        const manifest_file_t *f = &l->job->man.files[l->file];
        char *path = xasprintf("%s/inputs/%s/%s", pool->data_dir, l->job->id, f->path);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        free(path);
        off = (uint64_t)l->block * l->job->man.block_size;
        len = f->size - off < l->job->man.block_size ? f->size - off : l->job->man.block_size;
    } else if (store_open_block(pool->store, &h, &fd) == 0) {
        struct stat st;
        len = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    }
    if (fd < 0)
        return pool__api_error(r, 404, "block not held here");
    httpd_reply_header(r, "Cache-Control", "public, max-age=31536000, immutable");
    pool->api_blocks_served++;
    pool->api_bytes_served += len;
    httpd_reply_fd(r, 200, "application/octet-stream", fd, off, len);
}

/*
 * Which blocks of a job this peer holds: a bitfield over the job's blocks in manifest order (files
 * as listed, then blocks within each), most significant bit first, as BitTorrent's. The submitter
 * holds every input block; other peers what their store holds.
 */
static void api_have(pool_t *pool, httpd_req_t *r, const char *hex)
{
    job_t *j = pool_job_by_id(pool, hex);
    if (!j || j->gone)
        return pool__api_error(r, 404, "no such job");
    size_t n = 0;
    for (size_t f = 0; f < j->man.n_files; f++)
        n += j->man.files[f].n_blocks;
    unsigned char *bits = xcalloc(n / 8 + 1, 1);
    size_t k = 0, held = 0;
    for (size_t f = 0; f < j->man.n_files; f++) {
        for (size_t b = 0; b < j->man.files[f].n_blocks; b++, k++) {
            if (!j->remote || store_has(pool->store, &j->man.files[f].blocks[b])) {
                bits[k / 8] |= (unsigned char)(0x80u >> (k % 8));
                held++;
            }
        }
    }
    char num[24];
    snprintf(num, sizeof(num), "%zu", n);
    httpd_reply_header(r, "Preon-Blocks", num);
    snprintf(num, sizeof(num), "%zu", held);
    httpd_reply_header(r, "Preon-Held", num);
    httpd_reply_take(r, 200, "application/octet-stream", bits, (n + 7) / 8);
}

bool pool__api_handle(pool_t *pool, httpd_req_t *r, const char *path)
{
    if (strcmp(path, "/jobs") == 0)
        return api_jobs(pool, r), true;
    if (strncmp(path, "/manifest/", 10) == 0)
        return api_manifest(pool, r, path + 10), true;
    if (strncmp(path, "/block/", 7) == 0)
        return api_block(pool, r, path + 7), true;
    if (strncmp(path, "/have/", 6) == 0)
        return api_have(pool, r, path + 6), true;
    return false;
}
