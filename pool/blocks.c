/*
 * blocks.c: what each job holds, registered with swarm/serve.c (the index from block hash to its
 * bytes, and the /v1/block and /v1/have answers), with the job as the owner: its inputs
 * (DATA/inputs/<id>/) if it was published here, else its blocks in the store, and its hashed
 * results (DATA/results/<id>/<task>/, re-hashed when served: they may change).
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "pool/internal.h"

void pool__blocks_add_results(pool_t *pool, job_t *j)
{
    for (uint32_t t = 0; j->tres && t < j->man.desc.tasks; t++)
        if (j->tres[t])
            pool__blocks_add_result(pool, j, j->tres[t]);
}

void pool__blocks_add_job(pool_t *pool, job_t *j)
{
    if (!pool->serve || j->inputs_gone) /* removed: only its results are left to serve */
        return;
    char *root = j->remote ? NULL : xasprintf("%s/inputs/%s", pool->data_dir, j->id);
    int rc = serve_add_job(pool->serve, j->id, &j->man, root, j);
    if (rc)
        log_warn("job %s: its blocks are not served: %s", j->name, strerror(-rc));
    free(root);
}

void pool__blocks_add_result(pool_t *pool, job_t *j, taskres_t *tr)
{
    if (!pool->serve)
        return;
    char *root = xasprintf("%s/results/%s/%u", pool->data_dir, j->id, tr->task);
    int rc = serve_add_result(pool->serve, &tr->man, root, j);
    if (rc)
        log_warn("job %s task %u: its result is not served: %s", j->name, tr->task, strerror(-rc));
    free(root);
}

unsigned pool__fetch_blocks(pool_t *pool, const manifest_t *m, const char *peer, fetch_cb cb, void *arg,
                            unsigned *missing)
{
    const char *peers[1] = {peer};
    unsigned refused = 0;
    for (size_t i = 0; i < m->n_files; i++) {
        const manifest_file_t *f = &m->files[i];
        for (size_t b = 0; b < f->n_blocks; b++) {
            uint64_t off = (uint64_t)b * m->block_size;
            uint32_t blen = (uint32_t)(f->size - off < m->block_size ? f->size - off : m->block_size);
            (*missing)++;
            if (fetch_block(pool->fetch, &f->blocks[b], blen, peers, 1, cb, arg) != 0) {
                (*missing)--;
                refused++;
            }
        }
    }
    return refused;
}

void pool__blocks_remove_job(pool_t *pool, job_t *j)
{
    if (!pool->serve)
        return; /* stopping: the registrations went with it */
    if (j) {
        serve_remove(pool->serve, j);
        return;
    }
    /* NULL: a result was replaced; every local job is registered again (rare; one index rebuild) */
    for (job_t *k = pool->joblist; k; k = k->next)
        if (k->published && !k->remote && !k->gone)
            serve_remove(pool->serve, k);
    for (job_t *k = pool->joblist; k; k = k->next) {
        if (!k->published || k->remote || k->gone)
            continue;
        pool__blocks_add_job(pool, k);
        pool__blocks_add_results(pool, k);
    }
}
