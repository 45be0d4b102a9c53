/*
 * fetch.c: the block state machine. Downloads blocks from peers (through the HTTP client of
 * http.c) and lets a block into the store only after its SHA-256 matched. The peers and their
 * scores are peers.c's, the buffers and the keep list buf.c's (swarm/internal.h).
 *
 * A request (req_t, one per hash, found through a small hash table so concurrent requests for a
 * hash share it) goes CHECK (store_has in the thread pool; skipped without a store) -> QUEUED
 * (waiting for a slot, FIFO) -> XFER (one curl transfer to one peer, body capped at the block's
 * length) -> VERIFY (SHA-256 in the thread pool) -> STORE (store_put_hashed in the thread pool;
 * skipped without a store) -> done. A failed attempt goes back to pick the next untried peer.
 * Slots are counted here, not left to curl's CURLMOPT_MAX_HOST_CONNECTIONS queue, because curl's
 * CURLOPT_TIMEOUT_MS also runs while a transfer waits in that queue: a burst of requests would time
 * out without ever having been sent. The curl limit is still set, as a backstop.
 *
 * Waiters that want the bytes (fetch_block_data) are answered at the end of VERIFY, from memory,
 * while STORE goes on; the others (fetch_block: "the block is in the store") after STORE. When
 * nobody waits for the bytes as VERIFY starts (fetch_block, fetch_prefetch), VERIFY stores too:
 * one thread-pool item instead of two. fetch_block_data and fetch_prefetch skip CHECK.
 *
 * Easy handles of finished block transfers are reused (curl allocates its receive buffer per
 * handle, and faulting it in per block costs as much as a fresh block buffer would).
 *
 * Callbacks never run where they could surprise the caller: completions and bad-peer reports are
 * queued as events and fired by one dispatcher on a zero-delay uv_timer ("defer"). So a callback is
 * never inside fetch_block, fetch_close or a curl callback, and it may call either of them.
 * fetch_get is the HTTP client's (http.c), with its own deferred callbacks.
 *
 * Closing: every request is finished with -ECANCELED at once (its transfer removed, its
 * thread-pool item cancelled or, if already running, orphaned and freed when it returns), and every
 * get too; once the events are dispatched and no thread-pool item is out, the HTTP client is closed
 * and the defer timer with it; the last of the two frees the fetcher.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <uv.h>

#include "core/hash.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "swarm/fetch.h"
#include "swarm/internal.h"
#include "swarm/store.h"

#define FETCH_DEFAULT_PER_PEER 4
#define FETCH_DEFAULT_TOTAL 64
#define FETCH_DEFAULT_TIMEOUT_MS 10000
#define FETCH_DEFAULT_CONNECT_MS 3000
#define FETCH_MAX_TIMEOUT_MS (24u * 3600 * 1000)
/* curl's receive buffer per transfer (its default is 16 KiB): fewer, larger recv() and memcpy() */
#define FETCH_RECV_BUFFER (256 * 1024)
#define FETCH_FIRST_BUCKETS 64

#define BLOCK_PATH "/v1/block/"

typedef struct waiter {
    struct waiter *next;
    fetch_cb cb;       /* fetch_block, or */
    fetch_data_cb dcb; /* fetch_block_data */
    void *arg;
} waiter_t;

enum ev_kind { EV_DONE, EV_BAD_PEER, EV_STORED };

typedef struct event {
    struct event *next;
    enum ev_kind kind;
    hash_t h;
    int status;          /* EV_DONE: the result; EV_BAD_PEER: the reason */
    waiter_t *waiters;   /* EV_DONE */
    swarm__buf_t *buf;   /* EV_DONE: the verified bytes for data waiters (held), or NULL */
    uint32_t len;
    swarm__peer_t *peer; /* EV_BAD_PEER; peers live as long as the fetcher */
} event_t;

/* R_IDLE: between two of the others, only inside one call (e.g. just taken off the queue) */
enum req_state { R_IDLE, R_CHECK, R_QUEUED, R_XFER, R_VERIFY, R_STORE };
enum body_state { BODY_UNKNOWN, BODY_KEEP, BODY_DISCARD };

typedef struct candidate {
    swarm__peer_t *peer;
    bool tried;
} candidate_t;

typedef struct req {
    swarm__xfer_t x; /* first: what the transfer's CURLOPT_PRIVATE points at */
    fetch_t *f;
    struct req *hnext;         /* hash table chain */
    struct req *qprev, *qnext; /* wait queue, R_QUEUED only */
    hash_t h;
    uint32_t len;
    uint64_t t0_ns; /* uv_hrtime when requested: its latency, once verified */
    enum req_state state;
    waiter_t *waiters, **wtail;
    candidate_t cand[FETCH_MAX_CANDIDATES];
    size_t ncand;
    int err; /* the most telling failure so far (err_rank), 0 if none */

    /* the current attempt */
    CURL *easy;
    swarm__peer_t *cur;
    swarm__buf_t *buf; /* len bytes, allocated at the first attempt, kept for retries; verified in R_STORE */
    size_t got;        /* body bytes kept (a 200 response) */
    size_t discarded;
    enum body_state body;
    bool overflow;
    char errbuf[CURL_ERROR_SIZE];

    /* the thread-pool item (CHECK, VERIFY or STORE); the worker reads h, len, buf, writes the result */
    uv_work_t work;
    bool in_work;
    bool orphan;   /* finished while in_work: the after-work callback frees it */
    bool combined; /* VERIFY stores too: nobody was waiting for the bytes when it started */
    bool present;
    bool again;    /* the store already held the verified block when it was to be stored */
    int work_rc;
} req_t;

struct fetch {
    uv_loop_t *loop;
    store_t *store;
    fetch_opts_t opts;
    swarm__http_t *http;
    uv_timer_t defer; /* runs the dispatcher */
    unsigned handles; /* the defer timer and the HTTP client, until closed */

    req_t **reqs; /* by hash */
    size_t nreq_buckets, nreqs;
    req_t *qhead, *qtail;

    swarm__bufpool_t *pool;
    swarm__keep_t keep; /* the newest opts.keep_blocks verified blocks */
    CURL **easies;      /* idle easy handles of block transfers, for reuse */
    unsigned neasies;

    swarm__peers_t peers;

    event_t *ev_head, **ev_tail;
    unsigned inflight, verifying, works, queued;
    fetch_stats_t st;
    bool slow_logged;          /* note_too_slow: when it last logged, and what it has counted since */
    uint64_t slow_log_ms, slow_held;

    uint64_t store_err_logged_ms; /* the last "cannot store" logged (uv_now) */
    metrics_rate_t rate;     /* body bytes received, by second */
    metrics_hist_t latency;  /* request to verified bytes, seconds (fetch_latency) */

    bool closing, finishing, dispatching;
    fetch_close_cb close_cb;
    void *close_arg;
};

static void req_next(req_t *r);
static void maybe_finish_close(fetch_t *f);
static void work_start(req_t *r, uv_work_cb work, uv_after_work_cb done);

/* The loop's cached time: what scores are computed at (peers.c is pure). */
static uint64_t now_ms(const fetch_t *f) { return uv_now(f->loop); }

/* ---- requests by hash ---- */

static size_t req_bucket(const fetch_t *f, const hash_t *h)
{
    uint64_t k;
    memcpy(&k, h->b, sizeof(k));
    return (size_t)(k & (f->nreq_buckets - 1));
}

static req_t *req_find(fetch_t *f, const hash_t *h)
{
    for (req_t *r = f->reqs[req_bucket(f, h)]; r; r = r->hnext)
        if (hash_equal(&r->h, h))
            return r;
    return NULL;
}

static void req_insert(fetch_t *f, req_t *r)
{
    if (f->nreqs >= f->nreq_buckets) {
        size_t old = f->nreq_buckets;
        req_t **t = f->reqs;
        f->nreq_buckets = old * 2;
        f->reqs = xcalloc(f->nreq_buckets, sizeof(*f->reqs));
        for (size_t i = 0; i < old; i++) {
            req_t *q;
            while ((q = t[i])) {
                t[i] = q->hnext;
                size_t b = req_bucket(f, &q->h);
                q->hnext = f->reqs[b];
                f->reqs[b] = q;
            }
        }
        free(t);
    }
    size_t b = req_bucket(f, &r->h);
    r->hnext = f->reqs[b];
    f->reqs[b] = r;
    f->nreqs++;
}

static void req_unlink(fetch_t *f, req_t *r)
{
    for (req_t **pp = &f->reqs[req_bucket(f, &r->h)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == r) {
            *pp = r->hnext;
            r->hnext = NULL;
            f->nreqs--;
            return;
        }
    }
}

const uint8_t *fetch_peek(fetch_t *f, const hash_t *h, size_t *len)
{
    swarm__buf_t *b = NULL;
    uint32_t n = 0;
    swarm__kept_t *k = swarm__keep_find(&f->keep, h);
    if (k) {
        b = k->buf;
        n = k->len;
    } else {
        req_t *r = req_find(f, h);
        if (r && r->state == R_STORE) { /* verified, being written */
            b = r->buf;
            n = r->len;
        }
    }
    if (!b)
        return NULL;
    swarm__buf_hold(b);
    *len = n;
    return b->data;
}

/* ---- the wait queue ---- */

/* Someone waits for r's bytes now (a reader, a task), as opposed to a read-ahead. */
static bool req_urgent(const req_t *r) { return r->waiters != NULL; }

/*
 * Appends r to the wait queue; a request someone waits for goes ahead of every read-ahead (after
 * the other urgent ones, in their order), so the blocks needed now are preferred. The walk covers
 * only the urgent requests at the head: few, since each has a reader parked on it.
 */
static void queue_push(fetch_t *f, req_t *r)
{
    r->state = R_QUEUED;
    req_t *after = NULL;
    if (req_urgent(r)) {
        for (req_t *p = f->qhead; p && req_urgent(p); p = p->qnext)
            after = p;
    } else {
        after = f->qtail;
    }
    r->qprev = after;
    r->qnext = after ? after->qnext : f->qhead;
    if (r->qnext)
        r->qnext->qprev = r;
    else
        f->qtail = r;
    if (after)
        after->qnext = r;
    else
        f->qhead = r;
    f->queued++;
}

static void queue_remove(fetch_t *f, req_t *r)
{
    if (r->qprev)
        r->qprev->qnext = r->qnext;
    else
        f->qhead = r->qnext;
    if (r->qnext)
        r->qnext->qprev = r->qprev;
    else
        f->qtail = r->qprev;
    r->qprev = r->qnext = NULL;
    r->state = R_IDLE;
    f->queued--;
}

/* ---- deferred events ---- */

static void on_defer(uv_timer_t *t);

static void ev_push(fetch_t *f, event_t *e)
{
    e->next = NULL;
    *f->ev_tail = e;
    f->ev_tail = &e->next;
    if (!f->finishing && !uv_is_active((uv_handle_t *)&f->defer))
        uv_timer_start(&f->defer, on_defer, 0, 0);
}

/*
 * Fires queued events in order. A callback may call fetch_block (which only queues work) or
 * fetch_close (which finishes every request, queueing more events that this loop then fires);
 * finishing the close waits until the loop is over.
 */
static void on_defer(uv_timer_t *t)
{
    fetch_t *f = t->data;
    event_t *e;
    f->dispatching = true;
    while ((e = f->ev_head)) {
        f->ev_head = e->next;
        if (!f->ev_head)
            f->ev_tail = &f->ev_head;
        if (e->kind == EV_DONE) {
            waiter_t *w;
            const uint8_t *data = e->buf ? e->buf->data : NULL;
            while ((w = e->waiters)) {
                e->waiters = w->next;
                if (w->dcb)
                    w->dcb(&e->h, e->status, data, data ? e->len : 0, w->arg);
                else
                    w->cb(&e->h, e->status, w->arg);
                free(w);
            }
            swarm__buf_release(e->buf);
        } else if (e->kind == EV_STORED) {
            f->opts.on_stored(&e->h, f->opts.stored_arg);
        } else if (f->opts.on_bad_peer) {
            f->opts.on_bad_peer(e->peer->url, &e->h, e->status, f->opts.bad_peer_arg);
        }
        free(e);
    }
    f->dispatching = false;
    maybe_finish_close(f);
}

/* ---- request life ---- */

static void req_free(req_t *r)
{
    swarm__buf_release(r->buf);
    free(r);
}

/* Drops the current transfer, if any, and frees its slot; its easy handle is kept for reuse. */
static void xfer_drop(req_t *r)
{
    fetch_t *f = r->f;
    if (!r->easy)
        return;
    swarm__http_remove(f->http, r->easy);
    if (!f->closing && f->neasies < f->opts.max_total) {
        /*
         * Not curl_easy_reset: curl (7.88) refuses CURLOPT_BUFFERSIZE once a handle has its
         * receive buffer, and a reset would put the size back to 16 KiB for good. Every option
         * is set again at reuse anyway; only the pointers to r must not outlive it.
         */
        curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, NULL);
        curl_easy_setopt(r->easy, CURLOPT_PRIVATE, NULL);
        curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, NULL);
        f->easies[f->neasies++] = r->easy;
    } else {
        curl_easy_cleanup(r->easy);
    }
    r->easy = NULL;
    r->cur->st.inflight--;
    f->inflight--;
}

/* Tells opts.on_stored (if any) that *h is in the store now. */
static void ev_stored(fetch_t *f, const hash_t *h)
{
    if (!f->opts.on_stored)
        return;
    event_t *e = xcalloc(1, sizeof(*e));
    e->kind = EV_STORED;
    e->h = *h;
    ev_push(f, e);
}

/* Fires waiters (a list) with status and, for data waiters, buf's bytes (held by the event). */
static void ev_done(fetch_t *f, const hash_t *h, int status, waiter_t *waiters, swarm__buf_t *buf, uint32_t len)
{
    event_t *e = xcalloc(1, sizeof(*e));
    e->kind = EV_DONE;
    e->h = *h;
    e->status = status;
    e->waiters = waiters;
    if (buf) {
        swarm__buf_hold(buf);
        e->buf = buf;
        e->len = len;
    }
    ev_push(f, e);
}

/* Completes r with status: its waiters move into an event, r leaves every index and is freed. */
static void req_finish(req_t *r, int status)
{
    fetch_t *f = r->f;
    req_unlink(f, r);
    if (r->state == R_QUEUED)
        queue_remove(f, r);
    xfer_drop(r);
    if (r->waiters)
        ev_done(f, &r->h, status, r->waiters, NULL, 0);
    r->waiters = NULL;
    f->st.active--;
    if (r->in_work) {
        /* Only a cancel gets here. A queued item is dropped; a running one finishes first. */
        r->orphan = true;
        uv_cancel((uv_req_t *)&r->work);
    } else {
        req_free(r);
    }
}

/* How much a failure tells the caller: a bad peer beats a time-out beats other errors beats 404. */
static int err_rank(int err)
{
    switch (err) {
    case 0: return 0;
    case -ENOENT: return 1;
    case -EIO: return 2;
    case -ETIMEDOUT: return 3;
    case -EBADMSG: return 4;
    default: return 2;
    }
}

static void req_note_err(req_t *r, int err)
{
    if (err_rank(err) > err_rank(r->err))
        r->err = err;
}

static const char *reason_str(int reason)
{
    switch (reason) {
    case -EBADMSG: return "SHA-256 mismatch";
    case -EMSGSIZE: return "longer than the block";
    case -EPROTO: return "shorter than the block";
    default: return strerror(-reason);
    }
}

/* A block transfer was cut off by the low-speed limit or the time-out: counted, and logged at most
 * once every FETCH_LOG_EVERY_MS (a flood of slow peers must not flood the log too). */
static void note_too_slow(fetch_t *f, const swarm__peer_t *p, const char *hex, const char *why)
{
    uint64_t now = now_ms(f);
    f->st.too_slow++;
    f->slow_held++;
    if (f->slow_logged && now - f->slow_log_ms < FETCH_LOG_EVERY_MS)
        return;
    log_warn("fetch: cut off %llu block transfer(s) too slow, the last from %s (block %s: %s); asking the next "
             "holder (under %u bytes/s for %u s: FETCH_LOW_SPEED_*, or past the fetch time-out)",
             (unsigned long long)f->slow_held, p->url, hex, why[0] ? why : "timed out", f->opts.low_speed_bytes,
             f->opts.low_speed_s);
    f->slow_held = 0;
    f->slow_logged = true;
    f->slow_log_ms = now;
}

/* An attempt of r on p failed with err (for -EBADMSG, reason says how); try the next peer. */
static void attempt_failed(req_t *r, swarm__peer_t *p, int err, int reason)
{
    fetch_t *f = r->f;
    char hex[HASH_HEX_LEN + 1];
    hash_to_hex(&r->h, hex);
    f->st.failures++;
    p->st.failures++;
    if (err == -EBADMSG) {
        f->st.bad++;
        p->st.bad++;
        swarm__peer_rate(p, FETCH_SCORE_BAD, now_ms(f));
        log_warn("fetch: peer %s sent a bad block %s (%s)", p->url, hex, reason_str(reason));
        if (swarm__peer_bad(p, now_ms(f)))
            log_warn("fetch: peer %s is banned for %u s: %d bad blocks (FETCH_BAN_AFTER)", p->url,
                     (unsigned)(FETCH_BAN_MS / 1000), FETCH_BAN_AFTER);
        event_t *e = xcalloc(1, sizeof(*e));
        e->kind = EV_BAD_PEER;
        e->h = r->h;
        e->status = reason;
        e->peer = p;
        ev_push(f, e);
    } else {
        if (err != -ENOENT)
            swarm__peer_rate(p, FETCH_SCORE_FAIL, now_ms(f));
        if (err == -ETIMEDOUT)
            note_too_slow(f, p, hex, r->errbuf);
        log_debug("fetch: block %s from %s: %s%s%s", hex, p->url, strerror(-err),
                  r->errbuf[0] ? ": " : "", r->errbuf);
    }
    req_note_err(r, err);
    req_next(r);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    req_t *r = arg;
    size_t n = size * nmemb; /* size is 1 by contract */
    if (r->body == BODY_UNKNOWN) {
        long code = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
        r->body = code == 200 ? BODY_KEEP : BODY_DISCARD;
    }
    if (r->body == BODY_DISCARD) {
        /* an error page: read a little of it so the connection can be reused, then give up */
        if (n > FETCH_MAX_ERROR_BODY - r->discarded)
            return 0;
        r->discarded += n;
        return n;
    }
    if (n > r->len - r->got) {
        r->overflow = true;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    memcpy(r->buf->data + r->got, ptr, n);
    r->got += n;
    return n;
}

/* Starts r's transfer from p. 0, or -errno if curl could not even start it (p not tried). */
static int xfer_start(req_t *r, swarm__peer_t *p)
{
    fetch_t *f = r->f;
    char url[FETCH_MAX_PEER_URL + sizeof(BLOCK_PATH) + HASH_HEX_LEN];
    char hex[HASH_HEX_LEN + 1];
    hash_to_hex(&r->h, hex);
    snprintf(url, sizeof(url), "%s" BLOCK_PATH "%s", p->url, hex);

    bool reused = f->neasies > 0;
    CURL *e = reused ? f->easies[--f->neasies] : curl_easy_init();
    if (!e)
        return -ENOMEM;
    r->errbuf[0] = '\0';
    /*
     * MAXFILESIZE lets curl refuse a 200 whose Content-Length exceeds the block before any body
     * arrives (0 would mean "no limit", so an empty block relies on on_body alone). on_body caps
     * chunked or lying responses. No proxy: peers are addressed directly, whatever the environment
     * says. Only http: a peer cannot redirect us elsewhere (redirects are not followed anyway).
     */
    if (!swarm__http_setup(f->http, e, url, &r->x, on_body, r, r->errbuf) ||
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->len) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, (long)f->opts.low_speed_bytes) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)f->opts.low_speed_s) != CURLE_OK ||
        (!reused && curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)FETCH_RECV_BUFFER) != CURLE_OK)) {
        curl_easy_cleanup(e);
        return -EINVAL;
    }
    if (!r->buf)
        r->buf = swarm__buf_get(f->pool, r->len);
    r->got = r->discarded = 0;
    r->body = BODY_UNKNOWN;
    r->overflow = false;
    r->easy = e;
    if (swarm__http_add(f->http, e) != 0) {
        r->easy = NULL;
        curl_easy_cleanup(e);
        return -EIO;
    }
    r->cur = p;
    r->state = R_XFER;
    p->st.inflight++;
    p->started++;
    f->inflight++;
    return 0;
}

static candidate_t *pick(req_t *r)
{
    candidate_t *best = NULL;
    uint64_t now = now_ms(r->f);
    for (size_t i = 0; i < r->ncand; i++) {
        candidate_t *c = &r->cand[i];
        if (!c->tried && !swarm__peer_banned(c->peer, now) && (!best || swarm__peer_better(c->peer, best->peer, now)))
            best = c;
    }
    return best;
}

static bool has_slot(const fetch_t *f, const swarm__peer_t *p)
{
    return p->st.inflight < f->opts.max_per_peer && f->inflight + f->verifying < f->opts.max_total;
}

/* Starts r on its best untried peer, queues it if that peer (or the fetcher) is full, or ends it. */
static void req_next(req_t *r)
{
    fetch_t *f = r->f;
    for (;;) {
        candidate_t *c = pick(r);
        if (!c) {
            req_finish(r, r->err ? r->err : -ENOENT);
            return;
        }
        if (!has_slot(f, c->peer)) {
            queue_push(f, r);
            return;
        }
        c->tried = true;
        int rc = xfer_start(r, c->peer);
        if (rc == 0)
            return;
        log_warn("fetch: cannot start a transfer from %s: %s", c->peer->url, strerror(-rc));
        req_note_err(r, -EIO);
    }
}

/* Starts queued requests, in order, while slots allow. */
static void pump(fetch_t *f)
{
    req_t *r = f->qhead;
    while (r && f->inflight + f->verifying < f->opts.max_total) {
        req_t *next = r->qnext;
        candidate_t *c = pick(r);
        if (!c || has_slot(f, c->peer)) {
            queue_remove(f, r);
            req_next(r); /* may queue r again, at the tail: the walk then meets it once more */
        }
        r = next;
    }
}

static void verify_work(uv_work_t *w)
{
    req_t *r = w->data;
    hash_t got;
    hash_sha256(r->buf->data, r->len, &got);
    if (!hash_equal(&got, &r->h)) {
        r->work_rc = -EBADMSG;
    } else if (r->combined) {
        r->again = store_has(r->f->store, &r->h);
        r->work_rc = store_put_hashed(r->f->store, &r->h, r->buf->data, r->len);
    } else {
        r->work_rc = 0;
    }
}

static void store_work(uv_work_t *w)
{
    req_t *r = w->data;
    r->again = store_has(r->f->store, &r->h);
    r->work_rc = store_put_hashed(r->f->store, &r->h, r->buf->data, r->len);
}

/* A verified block went to the store (rc 0) or could not (logged, at most once a second: a full
 * disk fails every block of a read). One the store had already was fetched twice: counted. */
static void stored(fetch_t *f, req_t *r)
{
    if (r->work_rc) {
        f->st.store_errors++;
        f->st.store_error = r->work_rc;
        uint64_t now = now_ms(f);
        if (now - f->store_err_logged_ms >= 1000 || !f->store_err_logged_ms) {
            f->store_err_logged_ms = now;
            log_warn("fetch: cannot store a verified block: %s (%llu blocks not stored so far; the reader had "
                     "them from memory)", strerror(-r->work_rc), (unsigned long long)f->st.store_errors);
        }
        return;
    }
    if (r->again)
        f->st.again++;
    ev_stored(f, &r->h);
}

static void store_done(uv_work_t *w, int status)
{
    req_t *r = w->data;
    fetch_t *f = r->f;
    r->in_work = false;
    f->works--;
    f->verifying--;
    if (r->orphan) {
        req_free(r);
    } else {
        stored(f, r);
        req_finish(r, r->work_rc);
    }
    (void)status; /* UV_ECANCELED only for orphans, handled above */
    pump(f);
    maybe_finish_close(f);
}

/* Moves r's waiters that want the bytes (fetch_block_data) to *out, in order; the others stay. */
static void take_data_waiters(req_t *r, waiter_t **out)
{
    waiter_t *d = NULL, **dtail = &d, **pp = &r->waiters;
    while (*pp) {
        waiter_t *w = *pp;
        if (w->dcb) {
            *pp = w->next;
            w->next = NULL;
            *dtail = w;
            dtail = &w->next;
        } else {
            pp = &w->next;
        }
    }
    r->wtail = pp;
    *out = d;
}

/*
 * r's bytes are the block. Data waiters get them now, from memory; the store write (if any, and
 * not done with the hash already) goes on in the thread pool, still holding r's slot so that slow
 * disks bound memory, and the waiters that asked for the store are answered once it is done.
 */
static void verified(req_t *r)
{
    fetch_t *f = r->f;
    swarm__peer_rate(r->cur, FETCH_SCORE_OK, now_ms(f));
    r->cur->st.blocks++;
    f->st.blocks++;
    metrics_hist_observe(&f->latency, (double)(uv_hrtime() - r->t0_ns) / 1e9);
    swarm__keep_put(&f->keep, &r->h, r->len, r->buf);
    waiter_t *d;
    take_data_waiters(r, &d);
    if (d)
        ev_done(f, &r->h, 0, d, r->buf, r->len);
    if (!f->store || r->combined) {
        f->verifying--;
        if (f->store)
            stored(f, r);
        req_finish(r, r->work_rc);
        return;
    }
    r->state = R_STORE;
    work_start(r, store_work, store_done);
}

static void verify_done(uv_work_t *w, int status)
{
    req_t *r = w->data;
    fetch_t *f = r->f;
    r->in_work = false;
    f->works--;
    if (r->orphan) {
        f->verifying--;
        req_free(r);
    } else if (r->work_rc == -EBADMSG) {
        f->verifying--;
        attempt_failed(r, r->cur, -EBADMSG, -EBADMSG);
    } else {
        verified(r);
    }
    (void)status; /* UV_ECANCELED only for orphans, handled above */
    pump(f);
    maybe_finish_close(f);
}

static void check_work(uv_work_t *w)
{
    req_t *r = w->data;
    r->present = store_has(r->f->store, &r->h);
}

static void check_done(uv_work_t *w, int status)
{
    req_t *r = w->data;
    fetch_t *f = r->f;
    (void)status;
    r->in_work = false;
    f->works--;
    if (r->orphan)
        req_free(r);
    else if (r->present) {
        f->st.present++;
        req_finish(r, 0);
    } else
        req_next(r);
    maybe_finish_close(f);
}

static void work_start(req_t *r, uv_work_cb work, uv_after_work_cb done)
{
    r->work.data = r;
    r->in_work = true;
    r->f->works++;
    /* uv_queue_work fails only for a NULL work callback */
    int rc = uv_queue_work(r->f->loop, &r->work, work, done);
    if (rc < 0) {
        log_error("fetch: uv_queue_work: %s", uv_strerror(rc));
        abort();
    }
}

/*
 * Sorts out how a transfer ended. Returns 0 (a 200 with exactly len bytes: verify them), or the
 * attempt's error; for -EBADMSG, *reason tells how the bytes were wrong. This is the one place a
 * CURLcode becomes an errno.
 */
static int classify(CURLcode res, long code, bool overflow, size_t got, size_t len, int *reason)
{
    *reason = 0;
    if (overflow || (res == CURLE_FILESIZE_EXCEEDED && code == 200)) {
        *reason = -EMSGSIZE;
        return -EBADMSG;
    }
    if (code == 404)
        return -ENOENT;
    if (res == CURLE_OPERATION_TIMEDOUT)
        return -ETIMEDOUT;
    if (res != CURLE_OK || code != 200)
        return -EIO;
    if (got != len) {
        *reason = -EPROTO;
        return -EBADMSG;
    }
    return 0;
}

/* A block transfer ended (http.c's drain calls this through r->x.done). */
static void xfer_done(swarm__xfer_t *x, CURLcode res, long code)
{
    req_t *r = (req_t *)x;
    fetch_t *f = r->f;
    swarm__peer_t *p = r->cur;
    xfer_drop(r);
    f->st.transfers++;
    p->st.transfers++;
    f->st.bytes += r->got;
    p->st.bytes += r->got;
    metrics_rate_add(&f->rate, r->got, now_ms(f));
    metrics_rate_add(&p->rate, r->got, now_ms(f));

    int reason, err = classify(res, code, r->overflow, r->got, r->len, &reason);
    if (err == 0) {
        r->state = R_VERIFY;
        f->verifying++;
        /*
         * Nobody waits for the bytes (fetch_block callers, read-ahead): hash and store in one
         * thread-pool item, a round trip (two thread wake-ups) less. Otherwise the bytes go to
         * the waiters first and the store write follows (STORE).
         */
        r->combined = f->store != NULL;
        for (waiter_t *w = r->waiters; w && r->combined; w = w->next)
            r->combined = !w->dcb;
        work_start(r, verify_work, verify_done);
    } else {
        if (err != -EBADMSG && !r->errbuf[0] && code != 0)
            snprintf(r->errbuf, sizeof(r->errbuf), "HTTP %ld", code);
        attempt_failed(r, p, err, reason);
    }
}

/* After finished transfers were handled: their slots are free. */
static void on_drained(void *arg) { pump(arg); }

/* ---- life ---- */

static void final_free(fetch_t *f)
{
    swarm__peers_release(&f->peers);
    free(f->reqs);
    swarm__keep_release(&f->keep);
    swarm__bufpool_close(f->pool);
    free(f->easies);
    fetch_close_cb cb = f->close_cb;
    void *arg = f->close_arg;
    free(f);
    if (cb)
        cb(arg);
}

/* The defer timer and the HTTP client close in any order; the last one frees f. */
static void part_closed(fetch_t *f)
{
    if (--f->handles == 0)
        final_free(f);
}

static void on_defer_closed(uv_handle_t *h) { part_closed(h->data); }

static void on_http_closed(void *arg)
{
    fetch_t *f = arg;
    f->http = NULL;
    part_closed(f);
}

static void maybe_finish_close(fetch_t *f)
{
    if (!f->closing || f->finishing || f->dispatching || f->ev_head || f->works > 0)
        return;
    f->finishing = true;
    while (f->neasies > 0)
        curl_easy_cleanup(f->easies[--f->neasies]);
    swarm__http_close(f->http, on_http_closed, f);
    uv_close((uv_handle_t *)&f->defer, on_defer_closed);
}

int fetch_new(uv_loop_t *loop, store_t *store, const fetch_opts_t *opts, fetch_t **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!loop)
        return -EINVAL;
    fetch_opts_t o = opts ? *opts : (fetch_opts_t){0};
    if (!o.max_per_peer)
        o.max_per_peer = FETCH_DEFAULT_PER_PEER;
    if (!o.max_total)
        o.max_total = FETCH_DEFAULT_TOTAL;
    if (!o.timeout_ms)
        o.timeout_ms = FETCH_DEFAULT_TIMEOUT_MS;
    if (!o.low_speed_bytes)
        o.low_speed_bytes = FETCH_LOW_SPEED_BYTES;
    if (!o.low_speed_s)
        o.low_speed_s = FETCH_LOW_SPEED_S;
    if (!o.connect_timeout_ms)
        o.connect_timeout_ms =
            o.timeout_ms < FETCH_DEFAULT_CONNECT_MS ? o.timeout_ms : FETCH_DEFAULT_CONNECT_MS;
    if (o.max_per_peer > FETCH_MAX_PARALLEL || o.max_total > FETCH_MAX_PARALLEL ||
        o.timeout_ms > FETCH_MAX_TIMEOUT_MS || o.connect_timeout_ms > o.timeout_ms ||
        o.keep_blocks > FETCH_MAX_KEEP || o.low_speed_s > FETCH_MAX_TIMEOUT_MS / 1000)
        return -EINVAL;

    fetch_t *f = xcalloc(1, sizeof(*f));
    /*
     * MAX_HOST_CONNECTIONS is a backstop (we never start more than max_per_peer block transfers to
     * a peer; fetch_get may add a few more). MAXCONNECTS sizes the cache of idle keep-alive connections.
     */
    swarm__http_opts_t ho = {.timeout_ms = o.timeout_ms, .connect_timeout_ms = o.connect_timeout_ms,
                             .max_host_conns = o.max_per_peer + FETCH_GET_HOST_EXTRA,
                             .max_conns = o.max_total, .on_drained = on_drained, .arg = f};
    int rc = swarm__http_new(loop, &ho, &f->http);
    if (rc) {
        free(f);
        return rc;
    }
    f->loop = loop;
    f->store = store;
    f->opts = o;
    f->ev_tail = &f->ev_head;
    f->nreq_buckets = FETCH_FIRST_BUCKETS;
    f->reqs = xcalloc(f->nreq_buckets, sizeof(*f->reqs));
    swarm__peers_init(&f->peers);
    f->pool = swarm__bufpool_new();
    swarm__keep_init(&f->keep, o.keep_blocks);
    f->easies = xcalloc(o.max_total, sizeof(*f->easies));
    /* from a block in memory on a LAN to a slow peer's time-out */
    static const double lat[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    metrics_hist_init(&f->latency, lat, sizeof(lat) / sizeof(lat[0]));
    uv_timer_init(loop, &f->defer);
    f->defer.data = f;
    f->handles = 2;
    *out = f;
    return 0;
}

void fetch_close(fetch_t *f, fetch_close_cb cb, void *arg)
{
    if (!f || f->closing)
        return;
    f->closing = true;
    f->close_cb = cb;
    f->close_arg = arg;
    for (size_t i = 0; i < f->nreq_buckets; i++) {
        req_t *r;
        while ((r = f->reqs[i]))
            req_finish(r, -ECANCELED);
    }
    swarm__http_cancel(f->http);
    maybe_finish_close(f);
}

int fetch_get(fetch_t *f, const char *url, size_t max_len, fetch_get_cb cb, void *arg)
{
    if (!f)
        return -EINVAL;
    return swarm__http_get(f->http, url, NULL, 0, NULL, 0, max_len, cb, arg);
}

int fetch_get_hdr(fetch_t *f, const char *url, const char *const *headers, size_t n, size_t max_len, fetch_get_cb cb,
                  void *arg)
{
    if (!f)
        return -EINVAL;
    return swarm__http_get(f->http, url, headers, n, NULL, 0, max_len, cb, arg);
}

int fetch_post_hdr(fetch_t *f, const char *url, const char *const *headers, size_t n, const void *body,
                   size_t body_len, size_t max_len, fetch_get_cb cb, void *arg)
{
    if (!f || (!body && body_len) || body_len > FETCH_MAX_POST_BODY)
        return -EINVAL;
    return swarm__http_get(f->http, url, headers, n, body ? body : "", body_len, max_len, cb, arg);
}

static void cand_add(req_t *r, swarm__peer_t *p)
{
    for (size_t i = 0; i < r->ncand; i++)
        if (r->cand[i].peer == p)
            return;
    if (r->ncand < FETCH_MAX_CANDIDATES)
        r->cand[r->ncand++] = (candidate_t){.peer = p};
}

/* fetch_block (cb), fetch_block_data (dcb) or fetch_prefetch (neither: no waiter). */
static int request(fetch_t *f, const hash_t *h, uint32_t len, const char *const *peers, size_t npeers,
                   fetch_cb cb, fetch_data_cb dcb, void *arg, bool prefetch)
{
    if (!f || !h || (!cb && !dcb && !prefetch) || (npeers > 0 && !peers) || (cb && !f->store))
        return -EINVAL;
    if (f->closing)
        return -ECANCELED;
    if (len > STORE_MAX_BLOCK)
        return -EMSGSIZE;
    req_t *r = req_find(f, h);
    swarm__kept_t *k = dcb || prefetch ? swarm__keep_find(&f->keep, h) : NULL;
    if ((r && r->len != len) || (k && k->len != len))
        return -EINVAL;
    size_t valid = 0;
    for (size_t i = 0; i < npeers; i++)
        if (swarm__peer_url_len(peers[i]))
            valid++;
    if (npeers > 0 && valid == 0)
        return -EINVAL;

    /* verified bytes in memory (kept, or being stored): no transfer, no store */
    swarm__buf_t *mem = k ? k->buf : dcb && r && r->state == R_STORE ? r->buf : NULL;
    if (prefetch && (mem || (r && r->state == R_STORE)))
        return 0; /* in memory already */
    if (mem) {
        waiter_t *w = xcalloc(1, sizeof(*w));
        w->dcb = dcb;
        w->arg = arg;
        f->st.requests++;
        f->st.kept++;
        ev_done(f, h, 0, w, mem, len);
        return 0;
    }

    bool joined = r != NULL;
    if (!r) {
        r = xcalloc(1, sizeof(*r));
        r->x.done = xfer_done;
        r->f = f;
        r->h = *h;
        r->len = len;
        r->t0_ns = uv_hrtime();
        r->state = R_CHECK;
        r->wtail = &r->waiters;
        req_insert(f, r);
        f->st.active++;
    }
    for (size_t i = 0; i < npeers; i++) {
        size_t n = swarm__peer_url_len(peers[i]);
        swarm__peer_t *p = n ? swarm__peers_get(&f->peers, peers[i], n) : NULL;
        if (p)
            cand_add(r, p);
    }
    bool was_urgent = req_urgent(r);
    if (!prefetch) {
        waiter_t *w = xcalloc(1, sizeof(*w));
        w->cb = cb;
        w->dcb = dcb;
        w->arg = arg;
        *r->wtail = w;
        r->wtail = &w->next;
    }
    f->st.requests++;

    if (!joined && cb) {
        /* store_has is a path lookup on disk: not on the loop thread */
        work_start(r, check_work, check_done);
    } else if (!joined) {
        r->state = R_IDLE;
        req_next(r); /* may finish r at once (no peer): its callback is deferred all the same */
    } else {
        f->st.joined++;
        candidate_t *c = r->state == R_QUEUED ? pick(r) : NULL;
        if (c && has_slot(f, c->peer)) { /* a new candidate has a free slot */
            queue_remove(f, r);
            req_next(r);
        } else if (r->state == R_QUEUED && !was_urgent && req_urgent(r)) {
            queue_remove(f, r); /* a read-ahead that a reader now waits for: to the front */
            queue_push(f, r);
        }
    }
    return 0;
}

int fetch_block(fetch_t *f, const hash_t *h, uint32_t len, const char *const *peers, size_t npeers,
                fetch_cb cb, void *arg)
{
    return request(f, h, len, peers, npeers, cb, NULL, arg, false);
}

int fetch_block_data(fetch_t *f, const hash_t *h, uint32_t len, const char *const *peers, size_t npeers,
                     fetch_data_cb cb, void *arg)
{
    return request(f, h, len, peers, npeers, NULL, cb, arg, false);
}

int fetch_prefetch(fetch_t *f, const hash_t *h, uint32_t len, const char *const *peers, size_t npeers)
{
    return request(f, h, len, peers, npeers, NULL, NULL, NULL, true);
}

typedef struct banned_walk {
    uint64_t now;
    void (*cb)(const char *peer, uint64_t left_ms, void *arg);
    void *arg;
} banned_walk_t;

static void banned_one(swarm__peer_t *p, void *arg)
{
    banned_walk_t *w = arg;
    if (swarm__peer_banned(p, w->now))
        w->cb(p->url, p->banned_until - w->now, w->arg);
}

void fetch_foreach_banned(fetch_t *f, void (*cb)(const char *peer, uint64_t left_ms, void *arg), void *arg)
{
    banned_walk_t w = {.now = now_ms(f), .cb = cb, .arg = arg};
    swarm__peers_foreach(&f->peers, banned_one, &w);
}

int fetch_peer_score(fetch_t *f, const char *peer)
{
    fetch_peer_stats_t st;
    return fetch_peer_stats(f, peer, &st) == 0 ? st.score : 0;
}

int fetch_peer_stats(fetch_t *f, const char *peer, fetch_peer_stats_t *out)
{
    size_t n = swarm__peer_url_len(peer);
    swarm__peer_t *p = f && n ? swarm__peers_find(&f->peers, peer, n) : NULL;
    if (!p)
        return -ENOENT;
    *out = p->st;
    out->score = swarm__peer_score(p, now_ms(f));
    out->rate = metrics_rate_get(&p->rate, now_ms(f));
    out->banned = swarm__peer_banned(p, now_ms(f));
    return 0;
}

typedef struct foreach_ctx {
    void (*cb)(const char *peer, const fetch_peer_stats_t *st, void *arg);
    void *arg;
    uint64_t now;
} foreach_ctx_t;

static void foreach_one(swarm__peer_t *p, void *arg)
{
    foreach_ctx_t *c = arg;
    fetch_peer_stats_t st = p->st;
    st.score = swarm__peer_score(p, c->now);
    st.rate = metrics_rate_get(&p->rate, c->now);
    st.banned = swarm__peer_banned(p, c->now);
    c->cb(p->url, &st, c->arg);
}

void fetch_peer_foreach(fetch_t *f,
                        void (*cb)(const char *peer, const fetch_peer_stats_t *st, void *arg),
                        void *arg)
{
    foreach_ctx_t c = {.cb = cb, .arg = arg, .now = now_ms(f)};
    swarm__peers_foreach(&f->peers, foreach_one, &c);
}

void fetch_stats(fetch_t *f, fetch_stats_t *out)
{
    *out = f->st;
    out->inflight = f->inflight;
    out->queued = f->queued;
    out->rate = metrics_rate_get(&f->rate, now_ms(f));
}

const metrics_hist_t *fetch_latency(const fetch_t *f) { return &f->latency; }
