/**
 * @file internal.h  Internals shared by the files of swarm/ (never included outside swarm/ and its
 * unit tests). Names are prefixed swarm__; everything else in those files is static.
 *
 * The fetcher (fetch.h) is four files:
 *  - peers.c  the peer table and the scores: pure (no libuv, no curl, time passed in as now_ms);
 *  - buf.c    block buffers (reference counted, a free list for reuse) and the keep list;
 *  - http.c   libcurl multi on the libuv loop: the sockets, curl's timer, the shared easy-handle
 *             options, and the plain GETs of small resources (fetch_get);
 *  - fetch.c  the block state machine on top of the three.
 * Dependencies: fetch.c uses the other three (fetch_get is a one-line wrapper of swarm__http_get);
 * peers.c, buf.c and http.c use only core/ and this header, never one another.
 */
#ifndef PREON_SWARM_INTERNAL_H
#define PREON_SWARM_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <uv.h>

#include "core/hash.h"
#include "core/metrics.h"
#include "swarm/fetch.h"

/* ---- peers.c: the peer table and scores (pure) ------------------------------------------------ */

/** One peer, named by its normalised base URL. Lives as long as its table. */
typedef struct swarm__peer swarm__peer_t;
struct swarm__peer {
    swarm__peer_t *next; /**< hash chain */
    uint64_t key;
    fetch_peer_stats_t st; /**< st.score is the score as of score_ms (see swarm__peer_score) */
    uint64_t score_ms;     /**< when st.score last changed */
    uint64_t started;      /**< transfers started, for spreading ties */
    uint32_t bad_run;      /**< bad blocks since its last ban (or ever) */
    uint64_t banned_until; /**< not asked for anything before this (ms), after FETCH_BAN_AFTER bad blocks */
    metrics_rate_t rate;   /**< body bytes received from it, by second (st.rate is computed from it) */
    size_t urllen;
    char url[]; /**< NUL-terminated */
};

/** Peers by URL; embeddable: swarm__peers_init / swarm__peers_release. */
typedef struct swarm__peers {
    swarm__peer_t **buckets;
    size_t nbuckets, n;
} swarm__peers_t;

void swarm__peers_init(swarm__peers_t *t);
/** Frees every peer (pointers to them die). */
void swarm__peers_release(swarm__peers_t *t);
/**
 * Length of url without trailing slashes if it is "http://host[:port]" (no path, query, user info,
 * space or control character; at most FETCH_MAX_PEER_URL bytes), else 0.
 */
size_t swarm__peer_url_len(const char *url);
/** The peer for url[0..n) (n from swarm__peer_url_len), or NULL if never seen. */
swarm__peer_t *swarm__peers_find(const swarm__peers_t *t, const char *url, size_t n);
/** As find, creating it (score 0) on first sight; NULL once FETCH_MAX_PEERS are known. */
swarm__peer_t *swarm__peers_get(swarm__peers_t *t, const char *url, size_t n);
/** Calls cb for every peer, in no particular order; cb must not add peers. */
void swarm__peers_foreach(const swarm__peers_t *t, void (*cb)(swarm__peer_t *p, void *arg), void *arg);

/**
 * The peer's score at now_ms: a negative score recovers one point per FETCH_SCORE_RECOVER_MS since
 * it last changed (a peer that failed is tried again later, not shunned for ever); a positive one
 * stays. Within [FETCH_SCORE_MIN, FETCH_SCORE_MAX].
 */
int swarm__peer_score(const swarm__peer_t *p, uint64_t now_ms);
/**
 * The peer sent a bad block at now_ms (its score is rated apart): after FETCH_BAN_AFTER of them it
 * is banned until now_ms + FETCH_BAN_MS and its count starts again. True if this one banned it.
 */
bool swarm__peer_bad(swarm__peer_t *p, uint64_t now_ms);
/** Whether the peer is banned at now_ms: it is not asked for blocks at all. */
bool swarm__peer_banned(const swarm__peer_t *p, uint64_t now_ms);
/** Adds delta (one of FETCH_SCORE_OK, _FAIL, _BAD) to the score at now_ms, clamped. */
void swarm__peer_rate(swarm__peer_t *p, int delta, uint64_t now_ms);
/** At or below FETCH_SCORE_AVOID at now_ms: tried only after every other candidate. */
bool swarm__peer_avoided(const swarm__peer_t *p, uint64_t now_ms);
/**
 * Whether a is a strictly better next source than b at now_ms: not avoided, then fewer transfers
 * in flight (a fast peer frees its slots sooner, so it gets more), then the smaller penalty, then
 * fewer transfers started (round-robin over idle peers). Positive scores count as equal. Equal
 * peers: false both ways (the caller's order decides).
 */
bool swarm__peer_better(const swarm__peer_t *a, const swarm__peer_t *b, uint64_t now_ms);

/* ---- buf.c: block buffers and the keep list ---------------------------------------------------- */

typedef struct swarm__bufpool swarm__bufpool_t;

/** The bytes of one block, reference counted on the loop thread (workers only fill or read data). */
typedef struct swarm__buf {
    swarm__bufpool_t *pool;
    struct swarm__buf *next; /**< the pool's free list */
    unsigned refs;
    size_t cap;
    uint8_t data[];
} swarm__buf_t;

/** A pool of released buffers for reuse (at most FETCH_POOL_FREE of them). */
swarm__bufpool_t *swarm__bufpool_new(void);
/** The owner is going: idle buffers are freed now, the pool itself by the last buffer released. */
void swarm__bufpool_close(swarm__bufpool_t *p);
/** A buffer of at least len bytes with one reference: a released one if one is big enough. */
swarm__buf_t *swarm__buf_get(swarm__bufpool_t *p, size_t len);
void swarm__buf_hold(swarm__buf_t *b);
/** Drops a reference (b may be NULL); the last one returns b to its pool (or frees it). */
void swarm__buf_release(swarm__buf_t *b);
/** The buffer whose data is data (a pointer handed out as buf->data). */
swarm__buf_t *swarm__buf_of(const uint8_t *data);

/** The newest verified blocks kept in memory: a ring of n slots, each holding its buffer. */
typedef struct swarm__kept {
    hash_t h;
    uint32_t len;
    swarm__buf_t *buf; /**< NULL: an empty slot */
} swarm__kept_t;
typedef struct swarm__keep {
    swarm__kept_t *slots;
    unsigned n, next; /**< next: the slot overwritten next */
} swarm__keep_t;

/** n may be 0 (nothing is kept). */
void swarm__keep_init(swarm__keep_t *k, unsigned n);
/** Releases every kept buffer. */
void swarm__keep_release(swarm__keep_t *k);
/** The slot holding *h, or NULL. A linear scan: n is a reader's read-ahead window. */
swarm__kept_t *swarm__keep_find(swarm__keep_t *k, const hash_t *h);
/** Keeps b (verified bytes of *h, held once more) in place of the oldest entry; no-op if held. */
void swarm__keep_put(swarm__keep_t *k, const hash_t *h, uint32_t len, swarm__buf_t *b);

/* ---- http.c: curl multi on the loop, and small GETs ------------------------------------------ */

typedef struct swarm__http swarm__http_t;
typedef struct swarm__xfer swarm__xfer_t;

/**
 * A transfer finished (any outcome): res is curl's, code the HTTP status (0: none). Called on the
 * loop, from the drain of finished transfers; the easy handle is still in the multi (the callee
 * removes it with swarm__http_remove).
 */
typedef void (*swarm__xfer_done_fn)(swarm__xfer_t *x, CURLcode res, long code);

/** What every transfer's CURLOPT_PRIVATE points at: the first member of its context. */
struct swarm__xfer {
    swarm__xfer_done_fn done;
};

typedef struct swarm__http_opts {
    unsigned timeout_ms, connect_timeout_ms; /**< every transfer */
    unsigned max_host_conns;                 /**< CURLMOPT_MAX_HOST_CONNECTIONS (a backstop) */
    unsigned max_conns;                      /**< CURLMOPT_MAXCONNECTS: idle keep-alive cache */
    void (*on_drained)(void *arg);           /**< after finished transfers were handed to done */
    void *arg;
} swarm__http_opts_t;

/** A client on loop (curl_global_init is counted). 0 or -EIO. */
int swarm__http_new(uv_loop_t *loop, const swarm__http_opts_t *o, swarm__http_t **out);
/**
 * Finishes every get with -ECANCELED (their callbacks still come, deferred) and refuses new ones.
 * Transfers added with swarm__http_add are the caller's to remove first.
 */
void swarm__http_cancel(swarm__http_t *h);
/**
 * After swarm__http_cancel and once every transfer of the caller is removed: fires the pending get
 * callbacks, cleans up the multi (closing cached connections), closes every uv handle, frees h and
 * then calls cb (never from inside this call).
 */
void swarm__http_close(swarm__http_t *h, void (*cb)(void *arg), void *arg);
/**
 * Sets the options every transfer shares on e: url, x as CURLOPT_PRIVATE, on_data with wdata,
 * errbuf (CURL_ERROR_SIZE bytes), HTTP/1.1, http only, no proxy, no signals, the time-outs.
 * false if curl refused one.
 */
bool swarm__http_setup(swarm__http_t *h, CURL *e, const char *url, swarm__xfer_t *x,
                       curl_write_callback on_data, void *wdata, char *errbuf);
/** Starts e (set up with swarm__http_setup). 0 or -EIO. */
int swarm__http_add(swarm__http_t *h, CURL *e);
/** Stops e (it may be reused or cleaned up after). */
void swarm__http_remove(swarm__http_t *h, CURL *e);
/** fetch_get's contract, on this client; with body (not NULL: body_len bytes, copied) a POST of it. */
int swarm__http_get(swarm__http_t *h, const char *url, const char *const *headers, size_t n, const void *body,
                    size_t body_len, size_t max_len, fetch_get_cb cb, void *arg);

#endif
