/**
 * @file store.h  The content-addressed block store: one file per verified block.
 *
 * Layout: DIR/blocks/<first 2 hex>/<64 hex>; writes go to DIR/tmp/ and are renamed into place, so a
 * file under its hash name is always complete and was verified before the rename: after kill -9 the
 * store is trusted as it is (nothing re-hashed) and store_open deletes leftovers in DIR/tmp/.
 * Identical blocks are stored once. Functions do blocking file I/O: call them from the thread pool
 * (uv_queue_work) for writes; small reads of hot blocks may run on the loop thread; store_has is an
 * in-memory lookup (the index of use, store.c).
 * Thread-safe: a store_t may be used from several threads at once.
 */
#ifndef PREON_SWARM_STORE_H
#define PREON_SWARM_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/hash.h"

#ifndef STORE_MAX_BLOCK
#define STORE_MAX_BLOCK (4u * 1024 * 1024)
#endif

typedef struct store store_t;

/** Opens (creating if needed) the store under dir. 0 or -errno. */
int store_open(const char *dir, store_t **out);
void store_close(store_t *s);

/**
 * Stores len bytes that must hash to *h. Verifies first: -EBADMSG on mismatch (nothing written),
 * -EMSGSIZE if len > STORE_MAX_BLOCK. Already present: 0 without writing. Else 0 or -errno.
 */
int store_put(store_t *s, const hash_t *h, const void *data, size_t len);
/** As store_put, for a caller that has just computed h from these very bytes (publishing). */
int store_put_hashed(store_t *s, const hash_t *h, const void *data, size_t len);
bool store_has(store_t *s, const hash_t *h);
/** Opens the block read-only (for pread/splice). *fd is the caller's to close. 0, -ENOENT, -errno. */
int store_open_block(store_t *s, const hash_t *h, int *fd);
/** Reads up to len bytes at off of the block. Returns bytes read (short at its end) or -errno. */
ssize_t store_read(store_t *s, const hash_t *h, void *buf, size_t len, uint64_t off);
/** Removes a block (eviction). 0, -ENOENT or -errno. */
int store_remove(store_t *s, const hash_t *h);
/** Whether h must stay (store_evict asks it of each candidate, from the evicting thread). */
typedef bool (*store_pinned_fn)(void *arg, const hash_t *h);
/**
 * Removes the least recently used blocks (put, has, open, read) until the store holds at most
 * target bytes: never one that pinned says must stay, nor one used within the last grace_ms.
 * Returns the blocks removed (*freed: their bytes). Crash safe: each is one unlink. Blocking.
 */
size_t store_evict(store_t *s, uint64_t target, uint64_t grace_ms, store_pinned_fn pinned, void *arg,
                   uint64_t *freed);
typedef struct store_stats {
    uint64_t bytes, blocks;
    uint64_t hits;          /**< blocks opened or read from the store */
    uint64_t evictions, evicted_bytes;
} store_stats_t;
void store_stats(store_t *s, store_stats_t *st);
/** Bytes and blocks held (kept as running counters, recomputed by store_open). */
uint64_t store_bytes(store_t *s);
uint64_t store_blocks(store_t *s);

#endif
