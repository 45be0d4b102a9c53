/**
 * @file serve.h  Serving blocks to other peers: the answers to GET /v1/block/<hash> and
 * GET /v1/have/<job id> (docs/protocol.md), from an index of where each block's bytes are.
 *
 * The caller registers what this peer holds, with plain data and an opaque owner pointer that
 * groups registrations (fs/ passes its job; pool/ will pass its own records):
 *  - a job's inputs (serve_add_job with a root): files under root, hashed when they were published
 *    and read-only since, served as they are (sendfile from the file at the block's offset);
 *  - a job known from elsewhere (serve_add_job without a root): its blocks are served from the
 *    block store, and /v1/have says which of them the store holds;
 *  - a task's result (serve_add_result): files under root that may have changed since they were
 *    hashed (a retried task replaces the directory), so each block is read and re-hashed before it
 *    is served, in the thread pool, with the reply deferred (httpd_defer) until then.
 * A block in none of them is served from the store if the store has it. Only verified bytes are
 * ever sent: the store verifies before it stores, inputs were hashed at publication, results are
 * re-hashed.
 *
 * /v1/have of a store-backed job is computed once (store_has for each block, in the thread pool,
 * the first time someone asks), kept, and updated by serve_block_stored; of a job with its inputs
 * here, every bit is set.
 *
 * Loop thread only. Blocking work runs in the thread pool, with the reply deferred (httpd_defer)
 * until it is done: a result block's read and hash, the store look-ups of /have, and the open (and
 * fstat) of an input file or a stored block before it is sent with sendfile.
 */
#ifndef PREON_SWARM_SERVE_H
#define PREON_SWARM_SERVE_H
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/hash.h"
#include "core/httpd.h"
#include "core/manifest.h"
#include "swarm/store.h"

typedef struct serve serve_t;

typedef struct serve_stats {
    uint64_t blocks; /**< blocks answered with 200 */
    uint64_t bytes;  /**< their bytes */
    double rate;     /**< bytes per second answered over the last seconds (core/metrics.h) */
} serve_stats_t;

/**
 * A server of blocks on loop, falling back to store (both borrowed: they must outlive s; store
 * may be NULL: then only registered inputs and results are served). 0 or -EINVAL.
 */
int serve_new(uv_loop_t *loop, store_t *store, serve_t **out);

/**
 * Drops every registration and answers every request still waiting (503); cb (may be NULL) fires
 * once no thread-pool item of s is out (s no longer touches the store then) and s is freed: never
 * from inside this call. Requests whose work is under way are answered 503 when it returns (or,
 * if the httpd closed meanwhile, dropped: see httpd_defer). Call once.
 */
void serve_close(serve_t *s, void (*cb)(void *arg), void *arg);

/**
 * Registers the blocks of job job_id (64 hex, copied) as described by m (read during the call
 * only: what serving needs is copied). root: the directory m's paths are relative to (copied), or
 * NULL for a job whose blocks this peer holds only in the store. owner: any pointer, the key of
 * serve_remove. 0, -EINVAL (NULL argument, bad id), -EMSGSIZE (more blocks than a bitfield
 * index holds).
 */
int serve_add_job(serve_t *s, const char *job_id, const manifest_t *m, const char *root, void *owner);

/**
 * Registers the files of a task's result: m describes root's tree (both as for serve_add_job);
 * each block is re-hashed before it is served. Not listed by /v1/have. 0, -EINVAL, -EMSGSIZE.
 */
int serve_add_result(serve_t *s, const manifest_t *m, const char *root, void *owner);

/**
 * Forgets every registration made with owner (inputs, store-backed job, results alike). A /v1/have
 * waiting for one is answered 404; work under way for one is answered as it returns. The index is
 * rebuilt without them when next used: O(blocks registered), once for a run of removals.
 */
void serve_remove(serve_t *s, void *owner);

/** The store now holds block *h (written by the fetcher): the /v1/have bitfields that list it. */
void serve_block_stored(serve_t *s, const hash_t *h);

/**
 * Answers r if path (relative to the API prefix, e.g. "/block/<hex>" or "/have/<id>") is one of
 * this module's requests, and returns true; false (r untouched) otherwise. The caller has checked
 * the method (GET or HEAD). A block: 200 with its bytes (Cache-Control: immutable), 400 for a name
 * that is not 64 hex digits, 404 if not held. A have: 200 with the bitfield over the job's blocks
 * in manifest order, most significant bit first (headers Preon-Blocks and Preon-Held), 404 for a
 * job not registered. Errors are JSON {"error": "..."}. The answer may come later (deferred).
 */
bool serve_handle(serve_t *s, httpd_req_t *r, const char *path);

/** Totals since serve_new, and the rate now; zeros for a NULL s. */
void serve_stats(const serve_t *s, serve_stats_t *out);

/**
 * tally(owner, bytes, arg) is called on the loop thread for every block request answered from a
 * registration (an input's or a result's block; not the store fallback, which has no owner), with
 * the owner given at registration and the block's length, when the block is looked up: so owner is
 * still registered then (a block whose result file changed meanwhile is counted all the same).
 * owner is whatever pointer the registration gave: a tally must not assume its type when its
 * caller registers owners of several kinds. NULL stops it.
 */
void serve_set_tally(serve_t *s, void (*tally)(void *owner, uint64_t bytes, void *arg), void *arg);

#endif
