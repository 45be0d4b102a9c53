/*
 * buf.c: the fetcher's block buffers and the keep list.
 *
 * A buffer is reference counted on the loop thread: the request that fills it holds one, and so do
 * an event handing the bytes to callbacks, the keep list, and callers (fetch_data_hold). Worker
 * threads only fill or read the bytes. A released buffer goes back to a small free list instead of
 * to free(): a fresh 256 KiB allocation per block is a fresh mmap, and faulting its pages in cost
 * more than copying into them. The pool outlives its fetcher while callers still hold buffers:
 * the last release after swarm__bufpool_close frees it.
 *
 * The keep list is a ring of the newest verified blocks, so that a reader's read-ahead is answered
 * from memory and the store is only written, never read back.
 */
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "swarm/internal.h"

/* out: buffers handed out and not yet released; closed: the owner is gone, so the last released
 * buffer frees the pool. */
struct swarm__bufpool {
    swarm__buf_t *free;
    unsigned nfree, out;
    bool closed;
};

swarm__bufpool_t *swarm__bufpool_new(void) { return xcalloc(1, sizeof(swarm__bufpool_t)); }

void swarm__bufpool_close(swarm__bufpool_t *p)
{
    swarm__buf_t *b;
    p->closed = true;
    while ((b = p->free)) {
        p->free = b->next;
        free(b);
    }
    p->nfree = 0;
    if (p->out == 0)
        free(p);
}

swarm__buf_t *swarm__buf_of(const uint8_t *data)
{
    return (swarm__buf_t *)(uintptr_t)(data - offsetof(swarm__buf_t, data));
}

swarm__buf_t *swarm__buf_get(swarm__bufpool_t *p, size_t len)
{
    swarm__buf_t *b, **pp;
    for (pp = &p->free; (b = *pp); pp = &b->next) {
        if (b->cap >= len) {
            *pp = b->next;
            p->nfree--;
            break;
        }
    }
    if (!b) {
        size_t cap = len ? len : 1;
        b = xmalloc(sizeof(*b) + cap);
        b->pool = p;
        b->cap = cap;
    }
    b->next = NULL;
    b->refs = 1;
    p->out++;
    return b;
}

void swarm__buf_hold(swarm__buf_t *b) { b->refs++; }

void swarm__buf_release(swarm__buf_t *b)
{
    if (!b || --b->refs > 0)
        return;
    swarm__bufpool_t *p = b->pool;
    p->out--;
    if (!p->closed && p->nfree < FETCH_POOL_FREE) {
        b->next = p->free;
        p->free = b;
        p->nfree++;
        return;
    }
    free(b);
    if (p->closed && p->out == 0)
        free(p);
}

void fetch_data_hold(const uint8_t *data) { swarm__buf_hold(swarm__buf_of(data)); }

void fetch_data_release(const uint8_t *data)
{
    if (data)
        swarm__buf_release(swarm__buf_of(data));
}

/* ---- the keep list ---- */

void swarm__keep_init(swarm__keep_t *k, unsigned n)
{
    k->slots = n ? xcalloc(n, sizeof(*k->slots)) : NULL;
    k->n = n;
    k->next = 0;
}

void swarm__keep_release(swarm__keep_t *k)
{
    for (unsigned i = 0; i < k->n; i++)
        swarm__buf_release(k->slots[i].buf);
    free(k->slots);
    k->slots = NULL;
    k->n = k->next = 0;
}

swarm__kept_t *swarm__keep_find(swarm__keep_t *k, const hash_t *h)
{
    for (unsigned i = 0; i < k->n; i++)
        if (k->slots[i].buf && hash_equal(&k->slots[i].h, h))
            return &k->slots[i];
    return NULL;
}

void swarm__keep_put(swarm__keep_t *k, const hash_t *h, uint32_t len, swarm__buf_t *b)
{
    if (!k->n || swarm__keep_find(k, h))
        return;
    swarm__kept_t *s = &k->slots[k->next];
    k->next = (k->next + 1) % k->n;
    swarm__buf_release(s->buf);
    swarm__buf_hold(b);
    *s = (swarm__kept_t){.h = *h, .len = len, .buf = b};
}
