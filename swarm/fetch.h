/**
 * @file fetch.h  The block fetcher: downloads content-addressed blocks from peers over HTTP/1.1
 * (libcurl multi on the libuv loop) and puts them into the block store only after verifying them.
 *
 * Wire: GET <peer>/v1/block/<64 lower-case hex> -> 200 with exactly the block's bytes, or 404.
 * A peer is named by its base URL, "http://IP:PORT" (no trailing path); the same string is the key
 * of its score and statistics.
 *
 * Guarantees:
 *  - no unverified byte leaves the fetcher: a body is received into a private buffer capped at the
 *    expected length, hashed (SHA-256, in the thread pool) and only then handed to fetch_block_data
 *    callers (in memory) and stored (store_put_hashed, in the thread pool too, in the background).
 *    The hash is computed once, by us; the store is told not to repeat it.
 *  - one download per hash at a time: requests for a hash already being fetched share it.
 *  - at most max_per_peer transfers to one peer and max_total transfers (plus blocks being verified)
 *    at once; further requests wait in a FIFO queue inside the fetcher, so curl's transfer time-out
 *    never counts time spent waiting for a slot.
 *  - every callback runs on the loop thread from a deferred dispatcher: never from inside the call
 *    that started the work, and never from inside a curl callback, so a callback may call
 *    fetch_block or fetch_close.
 *  - no global state (except curl_global_init's reference count).
 *
 * Peer choice: among the untried peers of a request, peers whose score is above FETCH_SCORE_AVOID
 * come first, then fewer transfers in flight, then the smaller penalty, then fewer transfers
 * started, then the caller's order (penalties wear off with time: FETCH_SCORE_RECOVER_MS). If that
 * best peer is full, the request waits for a slot rather than going to a worse peer. A failed
 * attempt moves on to the next untried peer; each peer is tried at most once per request.
 * Design notes and the reasons behind them: docs/fetch.md. The code: fetch.c (the state machine),
 * peers.c (scores), buf.c (buffers), http.c (curl on the loop, fetch_get); swarm/internal.h.
 */
#ifndef PREON_SWARM_FETCH_H
#define PREON_SWARM_FETCH_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/hash.h"
#include "core/metrics.h"
#include "swarm/store.h"

/** Longest peer base URL accepted ("http://" + host + ":" + port). */
#ifndef FETCH_MAX_PEER_URL
#define FETCH_MAX_PEER_URL 256
#endif
/** Distinct peers remembered (scores, statistics); peers beyond it are ignored. */
#ifndef FETCH_MAX_PEERS
#define FETCH_MAX_PEERS 4096
#endif
/** Candidate peers kept per request; extra ones given by the caller are ignored. */
#ifndef FETCH_MAX_CANDIDATES
#define FETCH_MAX_CANDIDATES 64
#endif
/** Bytes of a non-200 response body read (and discarded) before the transfer is cut. */
#ifndef FETCH_MAX_ERROR_BODY
#define FETCH_MAX_ERROR_BODY 65536
#endif
/** Longest URL fetch_get accepts. */
#ifndef FETCH_MAX_GET_URL
#define FETCH_MAX_GET_URL 2048
#endif
/** Largest max_len fetch_get accepts (it is for small resources: tracker answers, manifests). */
#ifndef FETCH_MAX_GET_BODY
#define FETCH_MAX_GET_BODY (16u * 1024 * 1024)
#endif
/** Largest request body fetch_post_hdr sends (a live output update: pool/liveout.h). */
#ifndef FETCH_MAX_POST_BODY
#define FETCH_MAX_POST_BODY (64u * 1024)
#endif
/** Longest extra header line of fetch_get_hdr, and how many it takes. */
#define FETCH_MAX_HEADER 512
#define FETCH_MAX_HEADERS 8
/** fetch_get transfers under way at once; more are refused with -EAGAIN. */
#ifndef FETCH_MAX_GETS
#define FETCH_MAX_GETS 256
#endif
/** Connections to one host curl may open for fetch_get on top of max_per_peer (see fetch_get). */
#ifndef FETCH_GET_HOST_EXTRA
#define FETCH_GET_HOST_EXTRA 2
#endif
/** Upper bound on opts.keep_blocks. */
#ifndef FETCH_MAX_KEEP
#define FETCH_MAX_KEEP 256
#endif
/** Released block buffers the fetcher keeps for reuse (they are allocated once, not per block). */
#ifndef FETCH_POOL_FREE
#define FETCH_POOL_FREE 32
#endif
/** Upper bound on opts.max_per_peer and opts.max_total. */
#ifndef FETCH_MAX_PARALLEL
#define FETCH_MAX_PARALLEL 1024
#endif

/* Scores: every peer starts at 0 and stays within [FETCH_SCORE_MIN, FETCH_SCORE_MAX]; a penalty
 * wears off with time (FETCH_SCORE_RECOVER_MS). */
#define FETCH_SCORE_MIN (-1000)
#define FETCH_SCORE_MAX 100
#define FETCH_SCORE_OK 1       /**< added for a verified block */
#define FETCH_SCORE_FAIL (-5)  /**< connect error, time-out, status other than 200/404 */
#define FETCH_SCORE_BAD (-100) /**< sent bytes that are not the block (wrong hash or length) */
#define FETCH_SCORE_AVOID (-50) /**< at or below: tried only after every other candidate */
/** Bad blocks (wrong hash or length) after which a peer is banned, and for how long (ms). */
#ifndef FETCH_BAN_AFTER
#define FETCH_BAN_AFTER 3
#endif
#ifndef FETCH_BAN_MS
#define FETCH_BAN_MS (10u * 60 * 1000)
#endif
/**
 * A block transfer that receives fewer than FETCH_LOW_SPEED_BYTES bytes a second for
 * FETCH_LOW_SPEED_S seconds (a peer that accepts and never answers, or trickles) is cut off, counted
 * (fetch_stats_t.too_slow) and the block asked of its next holder (curl's CURLOPT_LOW_SPEED_LIMIT
 * and _TIME; fetch_opts_t may change both). The whole transfer is bounded by timeout_ms besides.
 */
#ifndef FETCH_LOW_SPEED_BYTES
#define FETCH_LOW_SPEED_BYTES 1024
#endif
#ifndef FETCH_LOW_SPEED_S
#define FETCH_LOW_SPEED_S 5
#endif
/** At most one log line about slow peers in this time (the others are counted in the next). */
#ifndef FETCH_LOG_EVERY_MS
#define FETCH_LOG_EVERY_MS 1000
#endif
/** A negative score recovers one point per this many ms since it last changed (peers.c). */
#ifndef FETCH_SCORE_RECOVER_MS
#define FETCH_SCORE_RECOVER_MS 10000
#endif

typedef struct fetch fetch_t;

/**
 * The result of one fetch_block. status: 0 (the block is in the store, verified), or
 *  -ENOENT    every peer answered 404 (or no usable peer was given),
 *  -EBADMSG   at least one peer sent bytes that were not the block, and none sent the block,
 *  -ETIMEDOUT at least one peer timed out (and none sent a bad block),
 *  -EIO       otherwise (connection refused or reset, unexpected HTTP status, ...),
 *  -ECANCELED fetch_close was called first,
 *  or the store's -errno (e.g. -ENOSPC) if the verified block could not be written.
 * h is valid for the duration of the call only.
 */
typedef void (*fetch_cb)(const hash_t *h, int status, void *arg);

/**
 * A peer sent bytes that are not the block it was asked for. reason: -EBADMSG (SHA-256 differs),
 * -EMSGSIZE (more than the block's length), -EPROTO (a complete response shorter than the block).
 * The peer's score has already been lowered by FETCH_SCORE_BAD. peer and h are valid for the
 * duration of the call only.
 */
typedef void (*fetch_bad_peer_cb)(const char *peer, const hash_t *h, int reason, void *arg);

/**
 * A verified block was written to the store by this fetcher (or found there by a write that had
 * nothing to do): e.g. to keep a /v1/have bitfield current (serve_block_stored). Fired from the
 * dispatcher like every callback. h is valid for the duration of the call only.
 */
typedef void (*fetch_stored_cb)(const hash_t *h, void *arg);

/** Called once, after every callback and every uv handle of the fetcher is done; f is freed. */
typedef void (*fetch_close_cb)(void *arg);

/** Zero fields take the defaults. */
typedef struct fetch_opts {
    unsigned max_per_peer;       /**< transfers to one peer at once (default 4) */
    unsigned max_total;          /**< transfers + blocks being verified at once (default 64);
                                      bounds memory at max_total buffers of a block's length */
    unsigned timeout_ms;         /**< whole transfer, connect included (default 10000) */
    unsigned connect_timeout_ms; /**< TCP connect (default min(3000, timeout_ms)) */
    unsigned low_speed_bytes;    /**< block transfers: bytes a second below which... (FETCH_LOW_SPEED_BYTES) */
    unsigned low_speed_s;        /**< ...for this many seconds, one is cut off (FETCH_LOW_SPEED_S) */
    unsigned keep_blocks;        /**< the newest verified blocks kept in memory after they are done
                                      (default 0: none; at most FETCH_MAX_KEEP), so that
                                      fetch_peek and fetch_block_data answer them without the store */
    fetch_bad_peer_cb on_bad_peer; /**< optional */
    void *bad_peer_arg;
    fetch_stored_cb on_stored;     /**< optional */
    void *stored_arg;
} fetch_opts_t;

/** Totals since fetch_new. */
typedef struct fetch_stats {
    uint64_t requests;  /**< fetch_block calls accepted */
    uint64_t joined;    /**< of those, shared a fetch already under way */
    uint64_t present;   /**< completed from the store without a transfer */
    uint64_t transfers; /**< HTTP transfers finished, any outcome */
    uint64_t bytes;     /**< body bytes received from peers, verified or not */
    uint64_t blocks;    /**< blocks received and verified (then stored, if there is a store) */
    uint64_t again;     /**< of those, blocks the store held already when they were to be stored: fetched
                             twice (a read asks only for blocks it does not find there; 0 unless a
                             block went to the store while its second fetch was under way) */
    uint64_t store_errors; /**< verified blocks the store could not take (a full disk: -ENOSPC) */
    int store_error;    /**< the last of those errors (-errno), 0 if none */
    uint64_t kept;      /**< fetch_block_data calls answered from the blocks kept in memory */
    uint64_t failures;  /**< transfers that did not yield the block (404 included) */
    uint64_t bad;       /**< transfers whose bytes were not the block */
    uint64_t too_slow;  /**< block transfers cut off under the low-speed limit, or past timeout_ms */
    unsigned active;    /**< requests not yet completed */
    unsigned inflight;  /**< transfers under way now */
    unsigned queued;    /**< requests waiting for a free slot */
    double rate;        /**< body bytes received per second over the last seconds (core/metrics.h) */
} fetch_stats_t;

typedef struct fetch_peer_stats {
    int score;
    unsigned inflight;
    uint64_t transfers, bytes, blocks, failures, bad; /**< as in fetch_stats_t, for this peer */
    double rate; /**< as in fetch_stats_t, from this peer (filled by fetch_peer_stats and _foreach) */
    bool banned; /**< banned now (FETCH_BAN_AFTER bad blocks): fetch_foreach_banned lists it */
} fetch_peer_stats_t;

/**
 * Creates a fetcher on loop that stores into store (borrowed: both must outlive the fetcher).
 * store may be NULL: then blocks are never looked up in or written to a store, fetch_block is
 * refused, and fetch_block_data hands every block over in memory (a plain download: `preon get`).
 * opts may be NULL. 0, -EINVAL (an option out of range), or -EIO (curl could not be set up).
 */
int fetch_new(uv_loop_t *loop, store_t *store, const fetch_opts_t *opts, fetch_t **out);

/**
 * Cancels everything: every pending fetch_block callback fires with -ECANCELED (later, from the
 * loop; a block already verified may still fire 0), fetch_block then fails with -ECANCELED, and cb
 * (optional) fires once every uv handle is closed and every thread-pool item has returned, after
 * which f is freed. Call once. May be called from a fetch callback.
 */
void fetch_close(fetch_t *f, fetch_close_cb cb, void *arg);

/**
 * Gets the block *h of len bytes (len <= STORE_MAX_BLOCK, from the manifest) into the store, from
 * one of peers[0..npeers) (base URLs, copied; invalid ones and duplicates skipped). cb fires exactly
 * once, later, from the loop, with 0 or the -errno listed at fetch_cb. A block already in the store
 * completes with 0 without a transfer. A request for a hash already being fetched joins it (its new
 * peers are added to the candidates) and its cb fires with the shared result.
 * Returns 0 (cb will fire), or, and then cb never fires: -EINVAL (NULL argument; every given peer
 * invalid; a join with a different len; a fetcher without a store), -EMSGSIZE (len >
 * STORE_MAX_BLOCK), -ECANCELED (closing).
 */
int fetch_block(fetch_t *f, const hash_t *h, uint32_t len, const char *const *peers, size_t npeers,
                fetch_cb cb, void *arg);

/**
 * The result of one fetch_block_data: status as for fetch_cb, and for status 0 the block's verified
 * bytes when they are in memory: data (len bytes) is valid for the duration of the call only, unless
 * the callee keeps it with fetch_data_hold. data is NULL (and len 0) if the block was found in the
 * store instead (read it there), and whenever status is not 0.
 */
typedef void (*fetch_data_cb)(const hash_t *h, int status, const uint8_t *data, size_t len, void *arg);

/**
 * As fetch_block, for a caller that wants the bytes: cb fires as soon as the block is verified, with
 * the bytes in memory, while the store write (if the fetcher has a store) goes on in the background;
 * a block held in memory (opts.keep_blocks, or verified and still being written) is answered from
 * there without a transfer. It does not look in the store first (the caller does, if it has reason
 * to): only a request that joins a fetch_block still checking the store may complete with status 0
 * and data NULL (the block is in the store). Same arguments, returns and guarantees as fetch_block
 * (never an unverified byte; cb never inside this call). Works without a store.
 */
int fetch_block_data(fetch_t *f, const hash_t *h, uint32_t len, const char *const *peers, size_t npeers,
                     fetch_data_cb cb, void *arg);

/**
 * Fetches block *h for a reader that will want it soon (read-ahead): as fetch_block_data, but
 * nobody is called back. The verified bytes go to the keep list (opts.keep_blocks) and to the
 * store (hashing and storing in one thread-pool item, as nobody waits); a later fetch_block_data or
 * fetch_peek finds them there, or joins the transfer under way. Does not look in the store first.
 * Nothing happens for a block held in memory already. Returns 0 or fetch_block's errors.
 */
int fetch_prefetch(fetch_t *f, const hash_t *h, uint32_t len, const char *const *peers, size_t npeers);

/**
 * The verified bytes of block *h if the fetcher holds them in memory (kept, or being written to
 * the store), held for the caller: release them with fetch_data_release. NULL if not held (the
 * block may still be in the store). *len gets the block's length. Loop thread only.
 */
const uint8_t *fetch_peek(fetch_t *f, const hash_t *h, size_t *len);

/**
 * Keeps data (handed to a fetch_data_cb, or by fetch_peek) valid after the call; every hold needs
 * one fetch_data_release. Block buffers are reference counted on the loop thread: call both from
 * the loop thread only (a worker thread may read the bytes meanwhile). Release may come after
 * fetch_close: the buffer is then freed.
 */
void fetch_data_hold(const uint8_t *data);
void fetch_data_release(const uint8_t *data);

/**
 * The result of one fetch_get. status: 0 for any HTTP answer (http_code says which; body holds its
 * len bytes, whatever the code), -ETIMEDOUT (the fetcher's timeout_ms or connect_timeout_ms ran
 * out), -EMSGSIZE (the body was longer than max_len: the transfer was cut), -EIO (no HTTP answer:
 * refused, reset, bad response...), -ECANCELED (fetch_close). http_code is 0 and body NULL unless
 * status is 0. body (NUL-terminated after len bytes, for convenience; it may hold NULs itself) is
 * valid for the duration of the call only.
 */
typedef void (*fetch_get_cb)(int status, unsigned http_code, const char *body, size_t len, void *arg);

/**
 * A plain HTTP GET of a small resource (a tracker announce, a peer's manifest) through the same
 * curl multi, with the fetcher's time-outs. url is "http://..." (copied; at most FETCH_MAX_GET_URL
 * bytes, no spaces or control characters); redirects are not followed; no proxy. The body is
 * received into memory that grows as it arrives, up to max_len (<= FETCH_MAX_GET_BODY); a longer
 * body (or a Content-Length over it) aborts the transfer with -EMSGSIZE.
 *
 * Slots: a get takes none of the block slots (max_per_peer, max_total), so gets never delay or
 * starve block transfers and blocks never delay a get. Gets are bounded on their own by
 * FETCH_MAX_GETS at once (-EAGAIN past it). curl's per-host connection backstop is raised by
 * FETCH_GET_HOST_EXTRA for them; a get to a peer already holding max_per_peer + that many
 * connections waits in curl's queue, and its time-out runs while it waits.
 *
 * cb fires exactly once, later, from the loop (never inside this call, even for an immediate
 * failure). Returns 0 (cb will fire), or, and then cb never fires: -EINVAL (NULL argument, bad
 * URL, max_len over FETCH_MAX_GET_BODY), -EAGAIN (FETCH_MAX_GETS under way), -ECANCELED (closing).
 */
int fetch_get(fetch_t *f, const char *url, size_t max_len, fetch_get_cb cb, void *arg);
/**
 * fetch_get with extra request headers: headers is NULL or an array of n "Name: value" lines
 * (copied; each at most FETCH_MAX_HEADER bytes, printable ASCII, no CR or LF: -EINVAL otherwise).
 * Signed requests go this way (pool/auth.h).
 */
int fetch_get_hdr(fetch_t *f, const char *url, const char *const *headers, size_t n, size_t max_len, fetch_get_cb cb,
                  void *arg);
/**
 * fetch_get_hdr as a POST of body (body_len bytes, copied; at most FETCH_MAX_POST_BODY, else
 * -EINVAL), sent as application/octet-stream. The same slots, limits and callback.
 */
int fetch_post_hdr(fetch_t *f, const char *url, const char *const *headers, size_t n, const void *body,
                   size_t body_len, size_t max_len, fetch_get_cb cb, void *arg);

/** The peer's score now (see FETCH_SCORE_*, penalties recovered so far included), 0 for a peer never seen. */
int fetch_peer_score(fetch_t *f, const char *peer);
/** Calls cb for each peer banned now (FETCH_BAN_AFTER bad blocks), with the ms its ban has left. */
void fetch_foreach_banned(fetch_t *f, void (*cb)(const char *peer, uint64_t left_ms, void *arg), void *arg);
/** 0, or -ENOENT for a peer never seen. */
int fetch_peer_stats(fetch_t *f, const char *peer, fetch_peer_stats_t *out);
/**
 * Calls cb for every peer seen (for the status file); the pointers are valid during the call.
 * cb must not call fetch_block (a new peer could reshape the table being walked).
 */
void fetch_peer_foreach(fetch_t *f,
                        void (*cb)(const char *peer, const fetch_peer_stats_t *st, void *arg),
                        void *arg);
void fetch_stats(fetch_t *f, fetch_stats_t *out);
/**
 * The time from a block's request to its verified bytes (waiting for a slot, the transfers, the
 * hash: what a reader waits), in seconds, of every block received since fetch_new. Requests
 * answered without a transfer (from the store or from memory) and failed ones are not counted.
 * Valid until fetch_close.
 */
const metrics_hist_t *fetch_latency(const fetch_t *f);

#endif
