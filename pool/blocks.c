/*
 * blocks.c: the block index: a block hash to where a published job holds it (job, file, block),
 * for serving /v1/block (api.c). An open-addressing table rebuilt when a job goes away (rare) and
 * appended to at publication.
 */
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "pool/internal.h"

static size_t loc_slot(const hash_t *h, size_t mask)
{
    uint64_t k;
    memcpy(&k, h->b, sizeof(k)); /* a SHA-256 is uniform: its first bytes are a fine hash */
    return (size_t)k & mask;
}

static void loc_put(pool_t *pool, const hash_t *h, job_t *j, taskres_t *res, uint32_t file, uint32_t block)
{
    size_t mask = pool->loc_cap - 1;
    for (size_t i = loc_slot(h, mask);; i = (i + 1) & mask) {
        if (!pool->locs[i].job) {
            pool->locs[i] = (block_loc_t){.h = *h, .job = j, .res = res, .file = file, .block = block};
            pool->nlocs++;
            return;
        }
        if (hash_equal(&pool->locs[i].h, h))
            return; /* held already (identical blocks across files or jobs) */
    }
}

static void locs_grow(pool_t *pool, size_t need)
{
    if (pool->loc_cap >= 2 * need && pool->loc_cap)
        return;
    size_t cap = pool->loc_cap ? pool->loc_cap : 1024;
    while (cap < 2 * need)
        cap *= 2;
    block_loc_t *old = pool->locs;
    size_t oldcap = pool->loc_cap;
    pool->locs = xcalloc(cap, sizeof(*pool->locs));
    pool->loc_cap = cap;
    pool->nlocs = 0;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].job)
            loc_put(pool, &old[i].h, old[i].job, old[i].res, old[i].file, old[i].block);
    free(old);
}

/* Indexes every block of m (a job's inputs, or with res a result of it). */
static void locs_add(pool_t *pool, job_t *j, taskres_t *res, const manifest_t *m)
{
    size_t n = 0;
    for (size_t f = 0; f < m->n_files; f++)
        n += m->files[f].n_blocks;
    locs_grow(pool, pool->nlocs + n);
    for (size_t f = 0; f < m->n_files; f++)
        for (size_t b = 0; b < m->files[f].n_blocks; b++)
            loc_put(pool, &m->files[f].blocks[b], j, res, (uint32_t)f, (uint32_t)b);
}

void pool__blocks_add_job(pool_t *pool, job_t *j) { locs_add(pool, j, NULL, &j->man); }

void pool__blocks_add_result(pool_t *pool, job_t *j, taskres_t *tr) { locs_add(pool, j, tr, &tr->man); }

void pool__blocks_remove_job(pool_t *pool, job_t *j)
{
    /* Rebuilt from the jobs that stay (rare: a job going away, or a result replaced), since an
     * entry of j may have stood for a block that another job holds too. j may be NULL. */
    if (pool->locs)
        memset(pool->locs, 0, pool->loc_cap * sizeof(*pool->locs));
    pool->nlocs = 0;
    for (job_t *k = pool->joblist; k; k = k->next) {
        if (k == j || !k->published || k->remote || k->gone)
            continue;
        locs_add(pool, k, NULL, &k->man);
        for (uint32_t t = 0; k->tres && t < k->man.desc.tasks; t++)
            if (k->tres[t])
                locs_add(pool, k, k->tres[t], &k->tres[t]->man);
    }
}

const block_loc_t *pool__blocks_find(pool_t *pool, const hash_t *h)
{
    if (!pool->loc_cap)
        return NULL;
    size_t mask = pool->loc_cap - 1;
    for (size_t i = loc_slot(h, mask); pool->locs[i].job; i = (i + 1) & mask)
        if (hash_equal(&pool->locs[i].h, h))
            return &pool->locs[i];
    return NULL;
}

