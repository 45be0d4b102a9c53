/*
 * fetch.c: downloads blocks from peers with libcurl multi driven by the libuv loop, and lets a
 * block into the store only after its SHA-256 matched.
 *
 * Wiring (curl's docs/examples/multi-uv.c, without its globals): CURLMOPT_SOCKETFUNCTION starts and
 * stops one uv_poll per socket (sock_t, assigned to the socket with curl_multi_assign), and
 * CURLMOPT_TIMERFUNCTION arms one uv_timer; both events call curl_multi_socket_action and then
 * drain finished transfers with curl_multi_info_read. The easy handle's CURLOPT_PRIVATE is the
 * request it serves.
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
 * Block buffers (bbuf_t) are reference counted on the loop thread: the request holds one, and so
 * do an event that hands the bytes to callers, the keep list (the newest opts.keep_blocks verified
 * blocks, so that a reader's read-ahead is answered from memory) and callers (fetch_data_hold). A
 * released buffer goes back to a small free list (bpool_t) instead of to malloc: a fresh 256 KiB
 * allocation per block is a fresh mmap, and faulting its pages in cost more than copying into them.
 * The pool outlives the fetcher if callers still hold buffers. Easy handles of finished block
 * transfers are reused for the same reason (curl allocates its receive buffer per handle).
 *
 * Callbacks never run where they could surprise the caller: completions and bad-peer reports are
 * queued as events and fired by one dispatcher on a zero-delay uv_timer ("defer"). So a callback is
 * never inside fetch_block, fetch_close or a curl callback, and it may call either of them.
 *
 * fetch_get (a plain GET of a small resource: tracker announces, manifests) shares the multi, the
 * wiring and the dispatcher, but not the block slots: a get_t is its own kind of transfer (the
 * CURLOPT_PRIVATE of both kinds starts with an xfer_tag_t saying which), started at once, counted
 * only against FETCH_MAX_GETS, so announces can neither starve nor be starved by block transfers.
 *
 * Closing: every request and get is finished with -ECANCELED at once (its transfer removed, its thread-pool
 * item cancelled or, if already running, orphaned and freed when it returns); once the events are
 * dispatched and no thread-pool item is out, curl_multi_cleanup runs (curl then asks to forget its
 * remaining sockets), every uv handle is closed, and the last close callback frees the fetcher.
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

typedef struct fetch_peer fetch_peer_t;
struct fetch_peer {
    fetch_peer_t *next; /* hash chain */
    uint64_t key;
    fetch_peer_stats_t st;
    uint64_t started; /* transfers started, for spreading ties */
    size_t urllen;
    char url[]; /* normalised base URL, NUL-terminated */
};

typedef struct waiter {
    struct waiter *next;
    fetch_cb cb;       /* fetch_block, or */
    fetch_data_cb dcb; /* fetch_block_data */
    void *arg;
} waiter_t;

typedef struct bpool bpool_t;

/* The bytes of one block, reference counted (loop thread only; workers only read or fill data). */
typedef struct bbuf {
    bpool_t *pool;
    struct bbuf *next; /* the pool's free list */
    unsigned refs;
    size_t cap;
    uint8_t data[];
} bbuf_t;

/* Released buffers for reuse. out: buffers handed out and not yet released; closed: the fetcher is
 * gone, so the last released buffer frees the pool. */
struct bpool {
    bbuf_t *free;
    unsigned nfree, out;
    bool closed;
};

/* A verified block kept in memory after its request is done (fetch_t.kept). */
typedef struct kept {
    hash_t h;
    uint32_t len;
    bbuf_t *buf; /* NULL: an empty slot */
} kept_t;

enum ev_kind { EV_DONE, EV_BAD_PEER, EV_GET };

/* The first member of both kinds of transfer context (req_t, get_t): what CURLOPT_PRIVATE is. */
enum xfer_kind { X_BLOCK = 0, X_GET };
typedef struct xfer_tag {
    enum xfer_kind kind;
} xfer_tag_t;

typedef struct get {
    xfer_tag_t tag; /* first: X_GET */
    fetch_t *f;
    struct get *prev, *next; /* f->gets */
    CURL *easy;
    fetch_get_cb cb;
    void *arg;
    size_t max_len;
    char *body; /* len bytes and a NUL, cap bytes allocated; grows up to max_len + 1 */
    size_t len, cap;
    bool overflow;
    int status;
    unsigned code;
    char errbuf[CURL_ERROR_SIZE];
} get_t;

typedef struct event {
    struct event *next;
    enum ev_kind kind;
    hash_t h;
    int status;         /* EV_DONE: the result; EV_BAD_PEER: the reason */
    waiter_t *waiters;  /* EV_DONE */
    bbuf_t *buf;        /* EV_DONE: the verified bytes for data waiters (held), or NULL */
    uint32_t len;
    fetch_peer_t *peer; /* EV_BAD_PEER; peers live as long as the fetcher */
    get_t *get;         /* EV_GET: finished, owned by the event */
} event_t;

/* R_IDLE: between two of the others, only inside one call (e.g. just taken off the queue) */
enum req_state { R_IDLE, R_CHECK, R_QUEUED, R_XFER, R_VERIFY, R_STORE };
enum body_state { BODY_UNKNOWN, BODY_KEEP, BODY_DISCARD };

typedef struct candidate {
    fetch_peer_t *peer;
    bool tried;
} candidate_t;

typedef struct req {
    xfer_tag_t tag; /* first: X_BLOCK */
    fetch_t *f;
    struct req *hnext;         /* hash table chain */
    struct req *qprev, *qnext; /* wait queue, R_QUEUED only */
    hash_t h;
    uint32_t len;
    enum req_state state;
    waiter_t *waiters, **wtail;
    candidate_t cand[FETCH_MAX_CANDIDATES];
    size_t ncand;
    int err; /* the most telling failure so far (err_rank), 0 if none */

    /* the current attempt */
    CURL *easy;
    fetch_peer_t *cur;
    bbuf_t *buf;  /* len bytes, allocated at the first attempt, kept for retries; verified in R_STORE */
    size_t got;   /* body bytes kept (a 200 response) */
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
    int work_rc;
} req_t;

typedef struct sock {
    uv_poll_t poll;
    fetch_t *f;
    curl_socket_t fd;
    struct sock *prev, *next;
} sock_t;

struct fetch {
    uv_loop_t *loop;
    store_t *store;
    fetch_opts_t opts;
    CURLM *multi;
    uv_timer_t timer; /* curl's time-outs */
    uv_timer_t defer; /* runs the dispatcher */
    sock_t *socks;
    unsigned handles; /* uv handles not yet closed */

    req_t **reqs; /* by hash */
    size_t nreq_buckets, nreqs;
    req_t *qhead, *qtail;

    get_t *gets; /* fetch_get transfers under way */
    unsigned ngets;

    bpool_t *pool;
    kept_t *kept; /* opts.keep_blocks slots, a ring: kept_next is overwritten next */
    unsigned kept_next;
    CURL **easies; /* idle easy handles of block transfers, for reuse */
    unsigned neasies;

    fetch_peer_t **peers; /* by URL */
    size_t npeer_buckets, npeers;

    event_t *ev_head, **ev_tail;
    unsigned inflight, verifying, works, queued;
    fetch_stats_t st;

    bool closing, finishing, dispatching;
    fetch_close_cb close_cb;
    void *close_arg;
};

static void req_next(req_t *r);
static void maybe_finish_close(fetch_t *f);
static void work_start(req_t *r, uv_work_cb work, uv_after_work_cb done);

/* ---- peers ---- */

/* FNV-1a: peer URLs come from trackers, but the table is small and the chains are short. */
static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t x = 14695981039346656037u;
    for (size_t i = 0; i < n; i++)
        x = (x ^ (uint8_t)s[i]) * 1099511628211u;
    return x;
}

/* Length of url without trailing slashes if it is "http://host[:port]", else 0. */
static size_t peer_url_len(const char *url)
{
    static const char scheme[] = "http://";
    const size_t slen = sizeof(scheme) - 1;
    if (!url || strncmp(url, scheme, slen) != 0)
        return 0;
    size_t n = strnlen(url, FETCH_MAX_PEER_URL + 1);
    if (n > FETCH_MAX_PEER_URL)
        return 0;
    while (n > slen && url[n - 1] == '/')
        n--;
    if (n == slen)
        return 0;
    for (size_t i = slen; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        /* no path, query, fragment or user info: the peer API lives at fixed paths */
        if (c <= ' ' || c >= 0x7f || c == '/' || c == '?' || c == '#' || c == '@' || c == '%')
            return 0;
    }
    return n;
}

static fetch_peer_t *peer_find(fetch_t *f, const char *url, size_t n)
{
    uint64_t key = fnv1a(url, n);
    for (fetch_peer_t *p = f->peers[key & (f->npeer_buckets - 1)]; p; p = p->next)
        if (p->key == key && p->urllen == n && memcmp(p->url, url, n) == 0)
            return p;
    return NULL;
}

static void peer_grow(fetch_t *f)
{
    size_t nb = f->npeer_buckets * 2;
    fetch_peer_t **t = xcalloc(nb, sizeof(*t));
    for (size_t i = 0; i < f->npeer_buckets; i++) {
        fetch_peer_t *p;
        while ((p = f->peers[i])) {
            f->peers[i] = p->next;
            p->next = t[p->key & (nb - 1)];
            t[p->key & (nb - 1)] = p;
        }
    }
    free(f->peers);
    f->peers = t;
    f->npeer_buckets = nb;
}

/* The peer for url (n from peer_url_len), created on first sight; NULL once FETCH_MAX_PEERS are known. */
static fetch_peer_t *peer_get(fetch_t *f, const char *url, size_t n)
{
    fetch_peer_t *p = peer_find(f, url, n);
    if (p)
        return p;
    if (f->npeers >= FETCH_MAX_PEERS) {
        log_debug("fetch: ignoring peer %.*s: %d peers known already", (int)n, url, FETCH_MAX_PEERS);
        return NULL;
    }
    if (f->npeers >= f->npeer_buckets)
        peer_grow(f);
    p = xcalloc(1, sizeof(*p) + n + 1);
    memcpy(p->url, url, n);
    p->urllen = n;
    p->key = fnv1a(url, n);
    p->next = f->peers[p->key & (f->npeer_buckets - 1)];
    f->peers[p->key & (f->npeer_buckets - 1)] = p;
    f->npeers++;
    return p;
}

static void peer_score(fetch_peer_t *p, int delta)
{
    int s = p->st.score + delta;
    p->st.score = s < FETCH_SCORE_MIN ? FETCH_SCORE_MIN : s > FETCH_SCORE_MAX ? FETCH_SCORE_MAX : s;
}

static bool peer_avoided(const fetch_peer_t *p) { return p->st.score <= FETCH_SCORE_AVOID; }

/*
 * Strictly better: not avoided, then fewer transfers in flight, then the smaller penalty, then
 * fewer transfers started so far. Positive scores count as equal on purpose: preferring the peer
 * with the most successes would pile every request on the first peer that was ever idle, while the
 * in-flight count already favours fast peers (they free their slots sooner). The last rule spreads
 * requests over idle peers round-robin instead of always picking the caller's first.
 */
static bool peer_better(const fetch_peer_t *a, const fetch_peer_t *b)
{
    if (peer_avoided(a) != peer_avoided(b))
        return !peer_avoided(a);
    if (a->st.inflight != b->st.inflight)
        return a->st.inflight < b->st.inflight;
    int pa = a->st.score < 0 ? a->st.score : 0, pb = b->st.score < 0 ? b->st.score : 0;
    if (pa != pb)
        return pa > pb;
    return a->started < b->started;
}

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

/* ---- block buffers ---- */

static bbuf_t *buf_of(const uint8_t *data)
{
    return (bbuf_t *)(uintptr_t)(data - offsetof(bbuf_t, data));
}

/* A buffer of at least len bytes with one reference: a released one if one is big enough. */
static bbuf_t *buf_get(fetch_t *f, size_t len)
{
    bpool_t *p = f->pool;
    bbuf_t *b, **pp;
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

static void buf_release(bbuf_t *b)
{
    if (!b || --b->refs > 0)
        return;
    bpool_t *p = b->pool;
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

/* The fetcher is going: free what is idle; the last buffer released by a caller frees the pool. */
static void pool_close(bpool_t *p)
{
    bbuf_t *b;
    p->closed = true;
    while ((b = p->free)) {
        p->free = b->next;
        free(b);
    }
    p->nfree = 0;
    if (p->out == 0)
        free(p);
}

void fetch_data_hold(const uint8_t *data) { buf_of(data)->refs++; }

void fetch_data_release(const uint8_t *data)
{
    if (data)
        buf_release(buf_of(data));
}

/* ---- verified blocks kept in memory ---- */

/* A linear scan: keep_blocks is small (a reader's read-ahead window), and so is the cost. */
static kept_t *kept_find(fetch_t *f, const hash_t *h)
{
    for (unsigned i = 0; i < f->opts.keep_blocks; i++)
        if (f->kept[i].buf && hash_equal(&f->kept[i].h, h))
            return &f->kept[i];
    return NULL;
}

/* Keeps b (verified bytes of *h) in the ring, dropping the oldest entry. */
static void kept_put(fetch_t *f, const hash_t *h, uint32_t len, bbuf_t *b)
{
    if (!f->opts.keep_blocks || kept_find(f, h))
        return;
    kept_t *k = &f->kept[f->kept_next];
    f->kept_next = (f->kept_next + 1) % f->opts.keep_blocks;
    buf_release(k->buf);
    b->refs++;
    *k = (kept_t){.h = *h, .len = len, .buf = b};
}

const uint8_t *fetch_peek(fetch_t *f, const hash_t *h, size_t *len)
{
    bbuf_t *b = NULL;
    uint32_t n = 0;
    kept_t *k = kept_find(f, h);
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
    b->refs++;
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
            buf_release(e->buf);
        } else if (e->kind == EV_GET) {
            get_t *g = e->get;
            if (g->status == 0)
                g->cb(0, g->code, g->body ? g->body : "", g->len, g->arg);
            else
                g->cb(g->status, 0, NULL, 0, g->arg);
            free(g->body);
            free(g);
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
    buf_release(r->buf);
    free(r);
}

/* Drops the current transfer, if any, and frees its slot; its easy handle is kept for reuse. */
static void xfer_drop(req_t *r)
{
    fetch_t *f = r->f;
    if (!r->easy)
        return;
    curl_multi_remove_handle(f->multi, r->easy);
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

/* Fires waiters (a list) with status and, for data waiters, buf's bytes (held by the event). */
static void ev_done(fetch_t *f, const hash_t *h, int status, waiter_t *waiters, bbuf_t *buf, uint32_t len)
{
    event_t *e = xcalloc(1, sizeof(*e));
    e->kind = EV_DONE;
    e->h = *h;
    e->status = status;
    e->waiters = waiters;
    if (buf) {
        buf->refs++;
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

/* An attempt of r on p failed with err (for -EBADMSG, reason says how); try the next peer. */
static void attempt_failed(req_t *r, fetch_peer_t *p, int err, int reason)
{
    fetch_t *f = r->f;
    char hex[HASH_HEX_LEN + 1];
    hash_to_hex(&r->h, hex);
    f->st.failures++;
    p->st.failures++;
    if (err == -EBADMSG) {
        f->st.bad++;
        p->st.bad++;
        peer_score(p, FETCH_SCORE_BAD);
        log_warn("fetch: peer %s sent a bad block %s (%s)", p->url, hex, reason_str(reason));
        event_t *e = xcalloc(1, sizeof(*e));
        e->kind = EV_BAD_PEER;
        e->h = r->h;
        e->status = reason;
        e->peer = p;
        ev_push(f, e);
    } else {
        if (err != -ENOENT)
            peer_score(p, FETCH_SCORE_FAIL);
        log_debug("fetch: block %s from %s: %s%s%s", hex, p->url, strerror(-err),
                  r->errbuf[0] ? ": " : "", r->errbuf);
    }
    req_note_err(r, err);
    req_next(r);
}

/* The options every transfer shares: HTTP/1.1 to a peer's address, no proxy, no signals, bounded time. */
static bool easy_setup(fetch_t *f, CURL *e, const char *url, void *priv, curl_write_callback on_data, char *errbuf)
{
    return curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_PRIVATE, priv) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_WRITEDATA, priv) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http") == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_PROXY, "") == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)f->opts.timeout_ms) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)f->opts.connect_timeout_ms) == CURLE_OK;
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
static int xfer_start(req_t *r, fetch_peer_t *p)
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
    if (!easy_setup(f, e, url, r, on_body, r->errbuf) ||
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->len) != CURLE_OK ||
        (!reused && curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)FETCH_RECV_BUFFER) != CURLE_OK) ||
        curl_easy_setopt(e, CURLOPT_USERAGENT, "preon") != CURLE_OK) {
        curl_easy_cleanup(e);
        return -EINVAL;
    }
    if (!r->buf)
        r->buf = buf_get(f, r->len);
    r->got = r->discarded = 0;
    r->body = BODY_UNKNOWN;
    r->overflow = false;
    r->easy = e;
    if (curl_multi_add_handle(f->multi, e) != CURLM_OK) {
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
    for (size_t i = 0; i < r->ncand; i++) {
        candidate_t *c = &r->cand[i];
        if (!c->tried && (!best || peer_better(c->peer, best->peer)))
            best = c;
    }
    return best;
}

static bool has_slot(const fetch_t *f, const fetch_peer_t *p)
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
    if (!hash_equal(&got, &r->h))
        r->work_rc = -EBADMSG;
    else
        r->work_rc = r->combined ? store_put_hashed(r->f->store, &r->h, r->buf->data, r->len) : 0;
}

static void store_work(uv_work_t *w)
{
    req_t *r = w->data;
    r->work_rc = store_put_hashed(r->f->store, &r->h, r->buf->data, r->len);
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
        if (r->work_rc)
            log_warn("fetch: cannot store a verified block: %s", strerror(-r->work_rc));
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
    peer_score(r->cur, FETCH_SCORE_OK);
    r->cur->st.blocks++;
    f->st.blocks++;
    kept_put(f, &r->h, r->len, r->buf);
    waiter_t *d;
    take_data_waiters(r, &d);
    if (d)
        ev_done(f, &r->h, 0, d, r->buf, r->len);
    if (!f->store || r->combined) {
        f->verifying--;
        if (r->work_rc)
            log_warn("fetch: cannot store a verified block: %s", strerror(-r->work_rc));
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

/* ---- fetch_get ---- */

/* Ends g with status (and code, for 0): it leaves f->gets and becomes an event. */
static void get_finish(get_t *g, int status, unsigned code)
{
    fetch_t *f = g->f;
    if (g->prev)
        g->prev->next = g->next;
    else
        f->gets = g->next;
    if (g->next)
        g->next->prev = g->prev;
    g->prev = g->next = NULL;
    f->ngets--;
    if (g->easy) {
        curl_multi_remove_handle(f->multi, g->easy);
        curl_easy_cleanup(g->easy);
        g->easy = NULL;
    }
    g->status = status;
    g->code = status == 0 ? code : 0;
    event_t *e = xcalloc(1, sizeof(*e));
    e->kind = EV_GET;
    e->get = g;
    ev_push(f, e);
}

static size_t on_get_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    get_t *g = arg;
    size_t n = size * nmemb; /* size is 1 by contract */
    if (n > g->max_len - g->len) {
        g->overflow = true;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (g->len + n + 1 > g->cap) {
        /* grow by doubling, but never past what max_len allows */
        size_t cap = g->cap ? g->cap : 4096;
        while (cap < g->len + n + 1)
            cap *= 2;
        if (cap > g->max_len + 1)
            cap = g->max_len + 1;
        g->body = xrealloc(g->body, cap);
        g->cap = cap;
    }
    memcpy(g->body + g->len, ptr, n);
    g->len += n;
    g->body[g->len] = '\0';
    return n;
}

/* The one place a get's CURLcode becomes an errno. */
static void get_done(get_t *g, CURLcode res, long code)
{
    int status;
    if (g->overflow || res == CURLE_FILESIZE_EXCEEDED)
        status = -EMSGSIZE;
    else if (res == CURLE_OPERATION_TIMEDOUT)
        status = -ETIMEDOUT;
    else if (res != CURLE_OK || code <= 0)
        status = -EIO;
    else
        status = 0;
    if (status == -EIO)
        log_debug("fetch: GET failed: %s", g->errbuf[0] ? g->errbuf : curl_easy_strerror(res));
    get_finish(g, status, (unsigned)code);
}

/* A URL fetch_get takes: "http://", then printable ASCII without spaces, within the cap. */
static bool get_url_ok(const char *url)
{
    static const char scheme[] = "http://";
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        return false;
    size_t n = strnlen(url, FETCH_MAX_GET_URL + 1);
    if (n > FETCH_MAX_GET_URL || n == sizeof(scheme) - 1)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= ' ' || (unsigned char)url[i] >= 0x7f)
            return false;
    return true;
}

int fetch_get(fetch_t *f, const char *url, size_t max_len, fetch_get_cb cb, void *arg)
{
    if (!f || !url || !cb || max_len > FETCH_MAX_GET_BODY || !get_url_ok(url))
        return -EINVAL;
    if (f->closing)
        return -ECANCELED;
    if (f->ngets >= FETCH_MAX_GETS)
        return -EAGAIN;
    get_t *g = xcalloc(1, sizeof(*g));
    g->tag.kind = X_GET;
    g->f = f;
    g->cb = cb;
    g->arg = arg;
    g->max_len = max_len;
    g->next = f->gets;
    if (f->gets)
        f->gets->prev = g;
    f->gets = g;
    f->ngets++;

    /* as for blocks: no proxy, http only, no redirects; MAXFILESIZE refuses a long Content-Length
     * up front (0 would mean no limit: an empty max_len relies on on_get_body alone) */
    CURL *e = curl_easy_init();
    if (!e) {
        get_finish(g, -EIO, 0);
        return 0;
    }
    if (!easy_setup(f, e, url, g, on_get_body, g->errbuf) ||
        (max_len > 0 && curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_len) != CURLE_OK) ||
        curl_easy_setopt(e, CURLOPT_USERAGENT, "preon") != CURLE_OK ||
        curl_multi_add_handle(f->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        get_finish(g, -EIO, 0);
        return 0;
    }
    g->easy = e;
    return 0;
}

static void xfer_done(fetch_t *f, CURL *e, CURLcode res)
{
    void *priv = NULL;
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    if (((xfer_tag_t *)priv)->kind == X_GET) {
        get_done(priv, res, code);
        return;
    }
    req_t *r = priv;
    fetch_peer_t *p = r->cur;
    xfer_drop(r);
    f->st.transfers++;
    p->st.transfers++;
    f->st.bytes += r->got;
    p->st.bytes += r->got;

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

/* ---- curl on the loop ---- */

static void drain(fetch_t *f)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(f->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        /* m is invalid once its handle is removed: copy first */
        CURL *e = m->easy_handle;
        CURLcode res = m->data.result;
        xfer_done(f, e, res);
    }
    pump(f);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_t *s = h->data;
    fetch_t *f = s->f;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    curl_multi_socket_action(f->multi, s->fd, flags, &running);
    drain(f);
}

static void final_free(fetch_t *f);

/* Every uv handle's close ends here; the last one (libuv runs close callbacks in any order) frees f. */
static void handle_released(fetch_t *f)
{
    if (--f->handles == 0)
        final_free(f);
}

static void on_sock_closed(uv_handle_t *h)
{
    sock_t *s = h->data;
    fetch_t *f = s->f;
    free(s);
    handle_released(f);
}

static void sock_close(sock_t *s)
{
    fetch_t *f = s->f;
    if (s->prev)
        s->prev->next = s->next;
    else
        f->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    fetch_t *f = userp;
    sock_t *s = socketp;
    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (s)
            sock_close(s);
        return 0;
    }
    if (!s) {
        s = xcalloc(1, sizeof(*s));
        int rc = uv_poll_init_socket(f->loop, &s->poll, fd);
        if (rc < 0) {
            log_error("fetch: cannot watch socket %d: %s", (int)fd, uv_strerror(rc));
            free(s);
            return -1; /* curl fails the transfer (CURLM_ABORTED_BY_CALLBACK) */
        }
        s->poll.data = s;
        s->f = f;
        s->fd = fd;
        s->next = f->socks;
        if (f->socks)
            f->socks->prev = s;
        f->socks = s;
        f->handles++;
        curl_multi_assign(f->multi, fd, s);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

static void on_timeout(uv_timer_t *t)
{
    fetch_t *f = t->data;
    int running;
    curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain(f);
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
    fetch_t *f = userp;
    (void)m;
    if (timeout_ms < 0)
        uv_timer_stop(&f->timer);
    else
        uv_timer_start(&f->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- life ---- */

static void final_free(fetch_t *f)
{
    for (size_t i = 0; i < f->npeer_buckets; i++) {
        fetch_peer_t *p;
        while ((p = f->peers[i])) {
            f->peers[i] = p->next;
            free(p);
        }
    }
    free(f->peers);
    free(f->reqs);
    for (unsigned i = 0; i < f->opts.keep_blocks; i++)
        buf_release(f->kept[i].buf);
    free(f->kept);
    pool_close(f->pool);
    free(f->easies);
    fetch_close_cb cb = f->close_cb;
    void *arg = f->close_arg;
    free(f);
    curl_global_cleanup();
    if (cb)
        cb(arg);
}

static void on_timer_closed(uv_handle_t *h) { handle_released(h->data); }

static void maybe_finish_close(fetch_t *f)
{
    if (!f->closing || f->finishing || f->dispatching || f->ev_head || f->works > 0)
        return;
    f->finishing = true;
    while (f->neasies > 0)
        curl_easy_cleanup(f->easies[--f->neasies]);
    /* closes the cached connections; curl reports their sockets with CURL_POLL_REMOVE */
    curl_multi_cleanup(f->multi);
    f->multi = NULL;
    while (f->socks)
        sock_close(f->socks);
    uv_close((uv_handle_t *)&f->timer, on_timer_closed);
    uv_close((uv_handle_t *)&f->defer, on_timer_closed);
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
    if (!o.connect_timeout_ms)
        o.connect_timeout_ms =
            o.timeout_ms < FETCH_DEFAULT_CONNECT_MS ? o.timeout_ms : FETCH_DEFAULT_CONNECT_MS;
    if (o.max_per_peer > FETCH_MAX_PARALLEL || o.max_total > FETCH_MAX_PARALLEL ||
        o.timeout_ms > FETCH_MAX_TIMEOUT_MS || o.connect_timeout_ms > o.timeout_ms ||
        o.keep_blocks > FETCH_MAX_KEEP)
        return -EINVAL;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -EIO;
    fetch_t *f = xcalloc(1, sizeof(*f));
    f->loop = loop;
    f->store = store;
    f->opts = o;
    f->ev_tail = &f->ev_head;
    f->nreq_buckets = f->npeer_buckets = FETCH_FIRST_BUCKETS;
    f->reqs = xcalloc(f->nreq_buckets, sizeof(*f->reqs));
    f->peers = xcalloc(f->npeer_buckets, sizeof(*f->peers));
    f->multi = curl_multi_init();
    /*
     * MAX_HOST_CONNECTIONS is a backstop (we never start more than max_per_peer block transfers to
     * a peer; fetch_get may add a few more). MAXCONNECTS sizes the cache of idle keep-alive connections.
     */
    if (!f->multi ||
        curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
        curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f) != CURLM_OK ||
        curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
        curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f) != CURLM_OK ||
        curl_multi_setopt(f->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                          (long)(o.max_per_peer + FETCH_GET_HOST_EXTRA)) != CURLM_OK ||
        curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, (long)o.max_total) != CURLM_OK) {
        log_error("fetch: cannot set up curl multi");
        if (f->multi)
            curl_multi_cleanup(f->multi);
        free(f->reqs);
        free(f->peers);
        free(f);
        curl_global_cleanup();
        return -EIO;
    }
    f->pool = xcalloc(1, sizeof(*f->pool));
    f->kept = o.keep_blocks ? xcalloc(o.keep_blocks, sizeof(*f->kept)) : NULL;
    f->easies = xcalloc(o.max_total, sizeof(*f->easies));
    uv_timer_init(loop, &f->timer);
    uv_timer_init(loop, &f->defer);
    f->timer.data = f->defer.data = f;
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
    while (f->gets)
        get_finish(f->gets, -ECANCELED, 0);
    maybe_finish_close(f);
}

static void cand_add(req_t *r, fetch_peer_t *p)
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
    kept_t *k = dcb || prefetch ? kept_find(f, h) : NULL;
    if ((r && r->len != len) || (k && k->len != len))
        return -EINVAL;
    size_t valid = 0;
    for (size_t i = 0; i < npeers; i++)
        if (peer_url_len(peers[i]))
            valid++;
    if (npeers > 0 && valid == 0)
        return -EINVAL;

    /* verified bytes in memory (kept, or being stored): no transfer, no store */
    bbuf_t *mem = k ? k->buf : dcb && r && r->state == R_STORE ? r->buf : NULL;
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
        r->f = f;
        r->h = *h;
        r->len = len;
        r->state = R_CHECK;
        r->wtail = &r->waiters;
        req_insert(f, r);
        f->st.active++;
    }
    for (size_t i = 0; i < npeers; i++) {
        size_t n = peer_url_len(peers[i]);
        fetch_peer_t *p = n ? peer_get(f, peers[i], n) : NULL;
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

int fetch_peer_score(fetch_t *f, const char *peer)
{
    fetch_peer_stats_t st;
    return fetch_peer_stats(f, peer, &st) == 0 ? st.score : 0;
}

int fetch_peer_stats(fetch_t *f, const char *peer, fetch_peer_stats_t *out)
{
    size_t n = peer_url_len(peer);
    fetch_peer_t *p = f && n ? peer_find(f, peer, n) : NULL;
    if (!p)
        return -ENOENT;
    *out = p->st;
    return 0;
}

void fetch_peer_foreach(fetch_t *f,
                        void (*cb)(const char *peer, const fetch_peer_stats_t *st, void *arg),
                        void *arg)
{
    for (size_t i = 0; i < f->npeer_buckets; i++)
        for (fetch_peer_t *p = f->peers[i]; p; p = p->next)
            cb(p->url, &p->st, arg);
}

void fetch_stats(fetch_t *f, fetch_stats_t *out)
{
    *out = f->st;
    out->inflight = f->inflight;
    out->queued = f->queued;
}
