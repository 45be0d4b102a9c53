/*
 * cache.c: the block store's quota (--cache SIZE). The store (swarm/store.c) holds the blocks of
 * other peers' jobs that this peer fetched: what its reads, its tasks and the swarm used. It is a
 * cache: a block that goes can be fetched again from the pool. Every POOL_CACHE_TICK_MS the loop
 * compares the store's size with the quota; over it, the thread pool removes the least recently
 * used blocks (CernVM-FS's policy) down to POOL_CACHE_LOW_PCT of the quota, except
 *   - blocks of a job with a task running here (the task reads its inputs lazily), and
 *   - blocks used within the last POOL_CACHE_GRACE_MS (a reader that found a block a moment ago
 *     still reads it; one that has it open reads it whatever happens to its name), and
 *   - blocks of the results this peer ran for other peers and keeps until their submitters have
 *     them (volunteer.c's outbox: the only copy; their manifests are decoded on the thread pool).
 * A submitter's own inputs and results are not in the store (DATA/inputs, DATA/results): they are
 * never evicted while their job exists. Each eviction is one unlink of a complete file, so a crash
 * at any point leaves a store that store_open trusts as it is.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "pool/internal.h"

typedef struct evwork {
    uv_work_t req;
    pool_t *pool;
    hash_t *pin;
    size_t npin, cap;
    char **kept;      /* the kept results' manifests (pool__vol_outbox_manifests) */
    size_t *kept_len;
    size_t nkept;
    uint64_t target, freed;
    size_t removed;
} evwork_t;

static bool is_pinned(void *arg, const hash_t *h)
{
    evwork_t *w = arg;
    return w->npin && bsearch(h, w->pin, w->npin, sizeof(hash_t), pool__cmp_hash);
}

static void ev_work(uv_work_t *req)
{
    evwork_t *w = req->data;
    for (size_t i = 0; i < w->nkept; i++) {
        manifest_t m;
        char why[128];
        manifest_init(&m);
        if (manifest_decode(&m, w->kept[i], w->kept_len[i], why, sizeof(why)) == 0)
            pool__manifest_blocks(&m, &w->pin, &w->npin, &w->cap);
        manifest_release(&m);
    }
    if (w->npin)
        qsort(w->pin, w->npin, sizeof(hash_t), pool__cmp_hash);
    w->removed = store_evict(w->pool->store, w->target, POOL_CACHE_GRACE_MS, is_pinned, w, &w->freed);
}

static void ev_done(uv_work_t *req, int status)
{
    evwork_t *w = req->data;
    pool_t *pool = w->pool;
    (void)status;
    pool->pending_work--;
    pool->cache_evicting = false;
    uint64_t now = pool_now_ms();
    if (w->removed) {
        log_debug("cache: evicted %zu blocks (%llu bytes); %llu of %llu bytes held", w->removed,
                  (unsigned long long)w->freed, (unsigned long long)store_bytes(pool->store),
                  (unsigned long long)pool->cache_quota);
    } else if (store_bytes(pool->store) > pool->cache_quota && now >= pool->cache_full_said_ms + 60000) {
        pool->cache_full_said_ms = now; /* said once a minute at most */
        log_warn("cache: %llu bytes held, over the quota of %llu (--cache), and nothing can go now: the rest is "
                 "in use by running tasks, kept for their submitters (results run here) or was read in the last %d s", (unsigned long long)store_bytes(pool->store),
                 (unsigned long long)pool->cache_quota, POOL_CACHE_GRACE_MS / 1000);
    }
    free(w->pin);
    for (size_t i = 0; i < w->nkept; i++)
        free(w->kept[i]);
    free(w->kept);
    free(w->kept_len);
    free(w);
}

static void on_tick(uv_timer_t *t)
{
    pool_t *pool = t->data;
    if (pool->stopping || pool->cache_evicting || store_bytes(pool->store) <= pool->cache_quota)
        return;
    evwork_t *w = xcalloc(1, sizeof(*w));
    w->req.data = w;
    w->pool = pool;
    w->target = pool->cache_quota / 100 * POOL_CACHE_LOW_PCT;
    for (running_t *r = pool->running; r; r = r->next) { /* each job once */
        bool seen = false;
        for (running_t *q = pool->running; q != r && !seen; q = q->next)
            seen = q->job == r->job;
        if (!seen && r->job->remote)
            pool__manifest_blocks(&r->job->man, &w->pin, &w->npin, &w->cap);
    }
    w->kept = pool__vol_outbox_manifests(pool, &w->kept_len, &w->nkept);
    pool->cache_evicting = true;
    pool->pending_work++;
    uv_queue_work(pool->loop, &w->req, ev_work, ev_done);
}

void pool__cache_start(pool_t *pool)
{
    pool->cache_timer = xcalloc(1, sizeof(*pool->cache_timer));
    uv_timer_init(pool->loop, pool->cache_timer);
    pool->cache_timer->data = pool;
    uv_timer_start(pool->cache_timer, on_tick, POOL_CACHE_TICK_MS, POOL_CACHE_TICK_MS);
}

void pool__cache_stop(pool_t *pool)
{
    if (!pool->cache_timer)
        return;
    uv_timer_stop(pool->cache_timer);
    uv_close((uv_handle_t *)pool->cache_timer, pool__handle_free);
    pool->cache_timer = NULL;
}
