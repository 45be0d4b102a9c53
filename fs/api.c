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
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "fs/internal.h"

#define API_PREFIX "/v1"

static size_t loc_slot(const hash_t *h, size_t mask)
{
    uint64_t k;
    memcpy(&k, h->b, sizeof(k)); /* a SHA-256 is uniform: its first bytes are a fine hash */
    return (size_t)k & mask;
}

static void loc_put(fs_t *fs, const hash_t *h, job_t *j, taskres_t *res, uint32_t file, uint32_t block)
{
    size_t mask = fs->loc_cap - 1;
    for (size_t i = loc_slot(h, mask);; i = (i + 1) & mask) {
        if (!fs->locs[i].job) {
            fs->locs[i] = (block_loc_t){.h = *h, .job = j, .res = res, .file = file, .block = block};
            fs->nlocs++;
            return;
        }
        if (hash_equal(&fs->locs[i].h, h))
            return; /* held already (identical blocks across files or jobs) */
    }
}

static void locs_grow(fs_t *fs, size_t need)
{
    if (fs->loc_cap >= 2 * need && fs->loc_cap)
        return;
    size_t cap = fs->loc_cap ? fs->loc_cap : 1024;
    while (cap < 2 * need)
        cap *= 2;
    block_loc_t *old = fs->locs;
    size_t oldcap = fs->loc_cap;
    fs->locs = xcalloc(cap, sizeof(*fs->locs));
    fs->loc_cap = cap;
    fs->nlocs = 0;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].job)
            loc_put(fs, &old[i].h, old[i].job, old[i].res, old[i].file, old[i].block);
    free(old);
}

/* Indexes every block of m (a job's inputs, or with res a result of it). */
static void locs_add(fs_t *fs, job_t *j, taskres_t *res, const manifest_t *m)
{
    size_t n = 0;
    for (size_t f = 0; f < m->n_files; f++)
        n += m->files[f].n_blocks;
    locs_grow(fs, fs->nlocs + n);
    for (size_t f = 0; f < m->n_files; f++)
        for (size_t b = 0; b < m->files[f].n_blocks; b++)
            loc_put(fs, &m->files[f].blocks[b], j, res, (uint32_t)f, (uint32_t)b);
}

void fs__blocks_add_job(fs_t *fs, job_t *j) { locs_add(fs, j, NULL, &j->man); }

void fs__blocks_add_result(fs_t *fs, job_t *j, taskres_t *tr) { locs_add(fs, j, tr, &tr->man); }

void fs__blocks_remove_job(fs_t *fs, job_t *j)
{
    /* Rebuilt from the jobs that stay (rare: a job going away, or a result replaced), since an
     * entry of j may have stood for a block that another job holds too. j may be NULL. */
    if (fs->locs)
        memset(fs->locs, 0, fs->loc_cap * sizeof(*fs->locs));
    fs->nlocs = 0;
    for (job_t *k = fs->joblist; k; k = k->next) {
        if (k == j || !k->published || k->remote || k->gone)
            continue;
        locs_add(fs, k, NULL, &k->man);
        for (uint32_t t = 0; k->tres && t < k->man.desc.tasks; t++)
            if (k->tres[t])
                locs_add(fs, k, k->tres[t], &k->tres[t]->man);
    }
}

static const block_loc_t *loc_find(fs_t *fs, const hash_t *h)
{
    if (!fs->loc_cap)
        return NULL;
    size_t mask = fs->loc_cap - 1;
    for (size_t i = loc_slot(h, mask); fs->locs[i].job; i = (i + 1) & mask)
        if (hash_equal(&fs->locs[i].h, h))
            return &fs->locs[i];
    return NULL;
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

/*
 * A block of a result: read from results/<job>/<task>/ and served only if it still hashes to its
 * name (a retried task may have replaced the directory since it was hashed). Results are small;
 * reading one block into memory costs little.
 */
static void result_block(fs_t *fs, httpd_req_t *r, const block_loc_t *l)
{
    const manifest_file_t *f = &l->res->man.files[l->file];
    uint32_t bs = l->res->man.block_size;
    uint64_t off = (uint64_t)l->block * bs;
    size_t len = (size_t)(f->size - off < bs ? f->size - off : bs);
    char *path = xasprintf("%s/results/%s/%u/%s", fs->data_dir, l->job->id, l->res->task, f->path);
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
        return fs__api_error(r, 404, "block not held here");
    }
    httpd_reply_header(r, "Cache-Control", "public, max-age=31536000, immutable");
    fs->api_blocks_served++;
    fs->api_bytes_served += len;
    httpd_reply_take(r, 200, "application/octet-stream", buf, len);
}

static void api_block(fs_t *fs, httpd_req_t *r, const char *hex)
{
    hash_t h;
    if (strlen(hex) != HASH_HEX_LEN || hash_from_hex(hex, HASH_HEX_LEN, &h) != 0)
        return fs__api_error(r, 400, "a block is named by 64 hex digits");
    int fd = -1;
    uint64_t off = 0, len = 0;
    const block_loc_t *l = loc_find(fs, &h);
    if (l && l->res)
        return result_block(fs, r, l);
    if (l) {
        const manifest_file_t *f = &l->job->man.files[l->file];
        char *path = xasprintf("%s/inputs/%s/%s", fs->data_dir, l->job->id, f->path);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        free(path);
        off = (uint64_t)l->block * l->job->man.block_size;
        len = f->size - off < l->job->man.block_size ? f->size - off : l->job->man.block_size;
    } else if (store_open_block(fs->store, &h, &fd) == 0) {
        struct stat st;
        len = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    }
    if (fd < 0)
        return fs__api_error(r, 404, "block not held here");
    httpd_reply_header(r, "Cache-Control", "public, max-age=31536000, immutable");
    fs->api_blocks_served++;
    fs->api_bytes_served += len;
    httpd_reply_fd(r, 200, "application/octet-stream", fd, off, len);
}

/*
 * Which blocks of a job this peer holds: a bitfield over the job's blocks in manifest order (files
 * as listed, then blocks within each), most significant bit first, as BitTorrent's. The submitter
 * holds every input block; other peers what their store holds.
 */
static void api_have(fs_t *fs, httpd_req_t *r, const char *hex)
{
    job_t *j = fs__job_by_id(fs, hex);
    if (!j || j->gone)
        return fs__api_error(r, 404, "no such job");
    size_t n = 0;
    for (size_t f = 0; f < j->man.n_files; f++)
        n += j->man.files[f].n_blocks;
    unsigned char *bits = xcalloc(n / 8 + 1, 1);
    size_t k = 0, held = 0;
    for (size_t f = 0; f < j->man.n_files; f++) {
        for (size_t b = 0; b < j->man.files[f].n_blocks; b++, k++) {
            if (!j->remote || store_has(fs->store, &j->man.files[f].blocks[b])) {
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
    if (strncmp(path, "/block/", 7) == 0)
        return api_block(fs, r, path + 7);
    if (strncmp(path, "/have/", 6) == 0)
        return api_have(fs, r, path + 6);
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
