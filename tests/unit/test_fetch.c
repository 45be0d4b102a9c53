/*
 * test_fetch.c: the block fetcher against real HTTP peers on loopback.
 *
 * Each peer is a libmicrohttpd daemon inside this process (a thread per connection, port 0 on
 * 127.0.0.1) serving blocks from one table, in a mode: good, 404, 500, corrupt bytes, too long
 * (with a Content-Length, or chunked without one), one byte short, or slow (holds the request
 * until the test ends). A refused peer is a port that was bound and closed. The fetcher runs on a
 * real uv loop; the test runs the loop until a counter reaches its target, with a uv_timer
 * watchdog instead of sleeps; a server thread wakes the loop through a uv_async when a request
 * arrives. Teardown closes the fetcher and asserts uv_loop_close() == 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <microhttpd.h>
#include <uv.h>

#include "core/hash.h"
#include "swarm/fetch.h"
#include "swarm/store.h"

#define NBLOCKS 64
#define EMPTY_BLOCK NBLOCKS /* the table's last entry is a zero-length block */
#define MAX_SERVERS 4
#define MAX_CALLS 128
#define MAX_BAD 16
#define WATCHDOG_MS 20000
#define SLOW_HOLD_S 30

enum mode { M_GOOD, M_404, M_500, M_CORRUPT, M_LONG, M_LONG_CHUNKED, M_SHORT, M_SLOW, M_TRICKLE };

typedef struct block {
    hash_t h;
    uint8_t *data;
    uint32_t len;
} block_t;

typedef struct server {
    struct MHD_Daemon *d;
    char url[64];
    enum mode mode;
    const block_t *blocks;
    size_t nblocks;
    uv_async_t *wake;
    atomic_int requests;
    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t cv;
    bool stopping;
    bool hold; /* M_GOOD: hold requests until released (M_SLOW: until the end) */
    int open, max_open, conns;
} server_t;

typedef struct call {
    atomic_int n; /* times the callback fired */
    int status;
    hash_t h;
} call_t;

typedef struct fx {
    uv_loop_t loop;
    uv_timer_t watchdog;
    uv_timer_t tick; /* see setup */
    uv_async_t wake;
    bool timed_out;
    char dir[64];
    store_t *store;
    fetch_t *f;
    bool fetch_open;
    server_t srv[MAX_SERVERS];
    size_t nsrv;
    block_t blocks[NBLOCKS + 1];

    call_t calls[MAX_CALLS];
    atomic_int ncalls; /* callbacks fired, all calls together */
    atomic_int closed;
    int calls_at_close;
    struct {
        char peer[FETCH_MAX_PEER_URL + 1];
        int reason;
    } bad[MAX_BAD];
    atomic_int nbad;

    /* fetch_close_from_callback */
    int reentry_rc;
} fx_t;

static const int first_call_marker;

/* ---- the test peers ---- */

static const block_t *find_block(const server_t *s, const char *url)
{
    static const char prefix[] = "/v1/block/";
    hash_t h;
    if (strncmp(url, prefix, sizeof(prefix) - 1) != 0)
        return NULL;
    url += sizeof(prefix) - 1;
    if (hash_from_hex(url, strlen(url), &h) < 0)
        return NULL;
    for (size_t i = 0; i < s->nblocks; i++)
        if (hash_equal(&s->blocks[i].h, &h))
            return &s->blocks[i];
    return NULL;
}

/* M_TRICKLE: the block's bytes, one every 100 ms (a thread per connection: it may sleep) until the
 * server stops. */
typedef struct trickle {
    server_t *s;
    const uint8_t *data;
    size_t len;
} trickle_t;

static ssize_t trickle_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    trickle_t *t = cls;
    (void)max;
    struct timespec ts = {.tv_nsec = 100000000};
    nanosleep(&ts, NULL);
    pthread_mutex_lock(&t->s->mu);
    bool stop = t->s->stopping;
    pthread_mutex_unlock(&t->s->mu);
    if (stop || pos >= t->len)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    buf[0] = (char)t->data[pos];
    return 1;
}

static ssize_t chunk_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    size_t *left = cls;
    (void)pos;
    if (*left == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = max < *left ? max : *left;
    memset(buf, 'x', n);
    *left -= n;
    return (ssize_t)n;
}

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r)
{
    MHD_add_response_header(r, "Content-Type", "application/octet-stream");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* A POST's body as it arrives (fetch_post_hdr): answered with what came. */
typedef struct post_body {
    char *p;
    size_t len;
} post_body_t;

static enum MHD_Result serve_post(struct MHD_Connection *c, const char *upload, size_t *upload_size, void **ctx)
{
    post_body_t *pb = *ctx;
    if (*upload_size) {
        pb->p = realloc(pb->p, pb->len + *upload_size);
        memcpy(pb->p + pb->len, upload, *upload_size);
        pb->len += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Preon-Sig");
    char head[160];
    int hn = snprintf(head, sizeof(head), "POST %s %s %zu:", ct ? ct : "-", sig ? sig : "-", pb->len);
    char *out = malloc((size_t)hn + pb->len + 1);
    memcpy(out, head, (size_t)hn);
    if (pb->len)
        memcpy(out + hn, pb->p, pb->len);
    size_t n = (size_t)hn + pb->len;
    free(pb->p);
    free(pb);
    *ctx = (void *)&first_call_marker;
    return queue(c, 201, MHD_create_response_from_buffer(n, out, MHD_RESPMEM_MUST_FREE));
}

static enum MHD_Result serve(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                             const char *version, const char *upload, size_t *upload_size, void **ctx)
{
    server_t *s = cls;
    (void)version;
    if (*ctx == NULL) { /* the two-phase idiom: answering on the first call closes the connection */
        *ctx = strcmp(method, "POST") == 0 ? calloc(1, sizeof(post_body_t)) : (void *)&first_call_marker;
        return MHD_YES;
    }
    if (*ctx != &first_call_marker)
        return serve_post(c, upload, upload_size, ctx);
    atomic_fetch_add(&s->requests, 1);
    uv_async_send(s->wake);

    const block_t *b = find_block(s, url);
    if (s->mode == M_500)
        return queue(c, 500, MHD_create_response_from_buffer(4, "oops", MHD_RESPMEM_PERSISTENT));
    if (!b || s->mode == M_404)
        return queue(c, 404, MHD_create_response_from_buffer(9, "not here\n", MHD_RESPMEM_PERSISTENT));
    switch (s->mode) {
    case M_CORRUPT: {
        uint8_t *copy = malloc(b->len ? b->len : 1);
        memcpy(copy, b->data, b->len);
        copy[b->len / 2] ^= 0x40;
        return queue(c, 200, MHD_create_response_from_buffer(b->len, copy, MHD_RESPMEM_MUST_FREE));
    }
    case M_LONG: {
        uint8_t *copy = calloc(1, b->len + 100);
        memcpy(copy, b->data, b->len);
        return queue(c, 200, MHD_create_response_from_buffer(b->len + 100, copy, MHD_RESPMEM_MUST_FREE));
    }
    case M_LONG_CHUNKED: {
        size_t *left = malloc(sizeof(*left));
        *left = (size_t)b->len + (1u << 20);
        return queue(c, 200, MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, chunk_read, left, free));
    }
    case M_SHORT:
        return queue(c, 200, MHD_create_response_from_buffer(b->len - 1, b->data, MHD_RESPMEM_PERSISTENT));
    case M_TRICKLE: {
        trickle_t *t = malloc(sizeof(*t));
        *t = (trickle_t){.s = s, .data = b->data, .len = b->len};
        return queue(c, 200, MHD_create_response_from_callback(b->len, 1, trickle_read, t, free));
    }
    default: {
        /* M_SLOW, or M_GOOD while held: answer only when released, stopped, or much later */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += SLOW_HOLD_S;
        pthread_mutex_lock(&s->mu);
        while ((s->mode == M_SLOW || s->hold) && !s->stopping &&
               pthread_cond_timedwait(&s->cv, &s->mu, &until) == 0)
            ;
        pthread_mutex_unlock(&s->mu);
        break;
    }
    }
    return queue(c, 200, MHD_create_response_from_buffer(b->len, b->data, MHD_RESPMEM_PERSISTENT));
}

static void on_conn(void *cls, struct MHD_Connection *c, void **sctx, enum MHD_ConnectionNotificationCode toe)
{
    server_t *s = cls;
    (void)c, (void)sctx;
    pthread_mutex_lock(&s->mu);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        s->conns++;
        if (++s->open > s->max_open)
            s->max_open = s->open;
    } else {
        s->open--;
    }
    pthread_mutex_unlock(&s->mu);
}

static server_t *server_start(fx_t *fx, enum mode mode)
{
    assert_true(fx->nsrv < MAX_SERVERS);
    server_t *s = &fx->srv[fx->nsrv++];
    s->mode = mode;
    s->blocks = fx->blocks;
    s->nblocks = NBLOCKS + 1;
    s->wake = &fx->wake;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL,
                            NULL, serve, s, MHD_OPTION_SOCK_ADDR, &sin, MHD_OPTION_NOTIFY_CONNECTION,
                            on_conn, s, MHD_OPTION_END);
    assert_non_null(s->d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    assert_true(info->port > 0);
    snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%u", (unsigned)info->port);
    return s;
}

static void server_hold(server_t *s, bool hold)
{
    pthread_mutex_lock(&s->mu);
    s->hold = hold;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void server_stop(server_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    MHD_stop_daemon(s->d);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

/* A URL nobody listens on: a port that was bound and closed again. */
static void refused_url(char *out, size_t n)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sin);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    close(fd);
    snprintf(out, n, "http://127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
}

/* ---- fixture ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
}

static void on_watchdog(uv_timer_t *t)
{
    fx_t *fx = t->data;
    fx->timed_out = true;
}

static void on_wake(uv_async_t *a) { (void)a; }
static void on_tick(uv_timer_t *t) { (void)t; }

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->watchdog);
    fx->watchdog.data = fx;
    uv_timer_start(&fx->watchdog, on_watchdog, WATCHDOG_MS, 0);
    /*
     * libuv 1.44's UV_RUN_ONCE may block until the next event when a zero-delay timer was started
     * between two runs, as the tests do when they call fetch_block_data outside the loop and the
     * answer comes from memory (a deferred callback: a timer). A 1 ms tick bounds that wait; the
     * tests still wait for the callbacks themselves.
     */
    uv_timer_init(&fx->loop, &fx->tick);
    uv_timer_start(&fx->tick, on_tick, 1, 1);
    assert_int_equal(uv_async_init(&fx->loop, &fx->wake, on_wake), 0);
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_fetch.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    assert_int_equal(store_open(fx->dir, &fx->store), 0);
    for (uint32_t i = 0; i <= NBLOCKS; i++) {
        block_t *b = &fx->blocks[i];
        /* sizes from 4 KiB to about 200 KiB, plus one empty block */
        b->len = i == EMPTY_BLOCK ? 0 : 4096 + i * 3001;
        b->data = malloc(b->len ? b->len : 1);
        fill(b->data, b->len, i + 1);
        hash_sha256(b->data, b->len, &b->h);
    }
    *state = fx;
    return 0;
}

static void on_closed(void *arg)
{
    fx_t *fx = arg;
    fx->calls_at_close = atomic_load(&fx->ncalls);
    atomic_fetch_add(&fx->closed, 1);
}

/* Runs the loop until *counter >= target; false if the watchdog fired first. */
static bool run_until(fx_t *fx, atomic_int *counter, int target)
{
    while (atomic_load(counter) < target && !fx->timed_out)
        uv_run(&fx->loop, UV_RUN_ONCE);
    return atomic_load(counter) >= target;
}

/* Requests that reached the servers, all together. */
static int all_requests(fx_t *fx)
{
    int n = 0;
    for (size_t i = 0; i < fx->nsrv; i++)
        n += atomic_load(&fx->srv[i].requests);
    return n;
}

/* As run_until, for all_requests. */
static bool run_until_requests(fx_t *fx, int target)
{
    while (all_requests(fx) < target && !fx->timed_out)
        uv_run(&fx->loop, UV_RUN_ONCE);
    return all_requests(fx) >= target;
}

static void close_fetch(fx_t *fx)
{
    if (!fx->fetch_open)
        return;
    fx->fetch_open = false;
    fetch_close(fx->f, on_closed, fx);
    assert_true(run_until(fx, &fx->closed, 1));
}

static void on_handle_closed(uv_handle_t *h) { (void)h; }

static int teardown(void **state)
{
    fx_t *fx = *state;
    close_fetch(fx);
    for (size_t i = 0; i < fx->nsrv; i++)
        server_stop(&fx->srv[i]);
    uv_close((uv_handle_t *)&fx->watchdog, on_handle_closed);
    uv_close((uv_handle_t *)&fx->tick, on_handle_closed);
    uv_close((uv_handle_t *)&fx->wake, on_handle_closed);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    store_close(fx->store);
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    for (uint32_t i = 0; i <= NBLOCKS; i++)
        free(fx->blocks[i].data);
    free(fx);
    return 0;
}

static void on_bad_peer(const char *peer, const hash_t *h, int reason, void *arg)
{
    fx_t *fx = arg;
    (void)h;
    int i = atomic_load(&fx->nbad);
    if (i < MAX_BAD) {
        snprintf(fx->bad[i].peer, sizeof(fx->bad[i].peer), "%s", peer);
        fx->bad[i].reason = reason;
    }
    atomic_fetch_add(&fx->nbad, 1);
}

static void start_fetch(fx_t *fx, fetch_opts_t o)
{
    o.on_bad_peer = on_bad_peer;
    o.bad_peer_arg = fx;
    assert_int_equal(fetch_new(&fx->loop, fx->store, &o, &fx->f), 0);
    fx->fetch_open = true;
}

static void on_fetched(const hash_t *h, int status, void *arg)
{
    call_t *c = arg;
    c->status = status;
    c->h = *h;
    atomic_fetch_add(&c->n, 1);
}

/* Every call_t lives in fx->calls; the shared counter is bumped through this wrapper. */
typedef struct {
    fx_t *fx;
    int idx;
} call_ref_t;

static call_ref_t refs[MAX_CALLS];

static void on_fetched_ref(const hash_t *h, int status, void *arg)
{
    call_ref_t *r = arg;
    on_fetched(h, status, &r->fx->calls[r->idx]);
    atomic_fetch_add(&r->fx->ncalls, 1);
}

/* Starts call idx for block b from peers; returns fetch_block's result. */
static int fetch(fx_t *fx, int idx, const block_t *b, const char *const *peers, size_t npeers)
{
    refs[idx] = (call_ref_t){fx, idx};
    return fetch_block(fx->f, &b->h, b->len, peers, npeers, on_fetched_ref, &refs[idx]);
}

static void assert_stored(fx_t *fx, const block_t *b)
{
    assert_true(store_has(fx->store, &b->h));
    uint8_t *buf = malloc(b->len + 1);
    assert_int_equal(store_read(fx->store, &b->h, buf, b->len + 1, 0), (ssize_t)b->len);
    assert_memory_equal(buf, b->data, b->len);
    free(buf);
}

static int server_requests(server_t *s) { return atomic_load(&s->requests); }

/* ---- tests ---- */

static void fetch_good_block_lands_verified(void **state)
{
    fx_t *fx = *state;
    server_t *s = server_start(fx, M_GOOD);
    start_fetch(fx, (fetch_opts_t){0});
    const char *peers[] = {s->url};
    const block_t *b = &fx->blocks[7];
    assert_int_equal(fetch(fx, 0, b, peers, 1), 0);
    assert_int_equal(atomic_load(&fx->calls[0].n), 0); /* never from inside fetch_block */
    assert_true(run_until(fx, &fx->ncalls, 1));
    assert_int_equal(fx->calls[0].status, 0);
    assert_true(hash_equal(&fx->calls[0].h, &b->h));
    assert_stored(fx, b);
    assert_int_equal(server_requests(s), 1);

    fetch_stats_t st;
    fetch_stats(fx->f, &st);
    assert_int_equal(st.requests, 1);
    assert_int_equal(st.transfers, 1);
    assert_int_equal(st.blocks, 1);
    assert_int_equal(st.bytes, b->len);
    assert_int_equal(st.failures, 0);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.inflight, 0);
    fetch_peer_stats_t ps;
    assert_int_equal(fetch_peer_stats(fx->f, s->url, &ps), 0);
    assert_int_equal(ps.score, FETCH_SCORE_OK);
    assert_int_equal(ps.blocks, 1);
    assert_int_equal(ps.bytes, b->len);
    assert_int_equal(ps.inflight, 0);
    /* the status page's figures: a rate (bytes over the last seconds) and one latency sample */
    assert_true(b->len > 0 && st.rate > 0 && ps.rate == st.rate);
    assert_true(st.rate <= (double)b->len / (METRICS_RATE_SLOTS - 1));
    const metrics_hist_t *lat = fetch_latency(fx->f);
    assert_int_equal(lat->total, 1);
    assert_true(lat->sum > 0 && lat->sum < 10);

    /* the zero-length block, and the same peer named with a trailing slash */
    char slash[80];
    snprintf(slash, sizeof(slash), "%s/", s->url);
    const char *peers2[] = {slash};
    assert_int_equal(fetch(fx, 1, &fx->blocks[EMPTY_BLOCK], peers2, 1), 0);
    assert_true(run_until(fx, &fx->ncalls, 2));
    assert_int_equal(fx->calls[1].status, 0);
    assert_stored(fx, &fx->blocks[EMPTY_BLOCK]);
    assert_int_equal(fetch_peer_score(fx->f, s->url), 2 * FETCH_SCORE_OK);
    assert_int_equal(fx->nbad, 0);
}

static void fetch_corrupt_peer_is_penalised_and_next_peer_serves(void **state)
{
    fx_t *fx = *state;
    server_t *bad = server_start(fx, M_CORRUPT);
    server_t *good = server_start(fx, M_GOOD);
    start_fetch(fx, (fetch_opts_t){0});
    /* equal load and score: the caller's order decides, so the corrupt peer goes first */
    const char *peers[] = {bad->url, good->url};
    const block_t *b = &fx->blocks[3];
    assert_int_equal(fetch(fx, 0, b, peers, 2), 0);
    assert_true(run_until(fx, &fx->ncalls, 1));
    assert_int_equal(fx->calls[0].status, 0);
    assert_stored(fx, b);
    assert_int_equal(server_requests(bad), 1);
    assert_int_equal(server_requests(good), 1);
    assert_int_equal(fx->nbad, 1);
    assert_string_equal(fx->bad[0].peer, bad->url);
    assert_int_equal(fx->bad[0].reason, -EBADMSG);
    assert_int_equal(fetch_peer_score(fx->f, bad->url), FETCH_SCORE_BAD);
    assert_int_equal(fetch_peer_score(fx->f, good->url), FETCH_SCORE_OK);
    fetch_peer_stats_t ps;
    assert_int_equal(fetch_peer_stats(fx->f, bad->url, &ps), 0);
    assert_int_equal(ps.bad, 1);
    assert_int_equal(ps.blocks, 0);
    assert_false(ps.banned); /* one bad block: scored down, not banned */
    assert_true(ps.rate > 0); /* bytes received, good or bad */
    assert_int_equal(fetch_latency(fx->f)->total, 1); /* one block verified, after two transfers */

    /* the penalised peer is now avoided: the next block comes straight from the good one */
    assert_int_equal(fetch(fx, 1, &fx->blocks[4], peers, 2), 0);
    assert_true(run_until(fx, &fx->ncalls, 2));
    assert_int_equal(fx->calls[1].status, 0);
    assert_int_equal(server_requests(bad), 1);
    assert_int_equal(server_requests(good), 2);
}

/* A peer that sent FETCH_BAN_AFTER bad blocks is banned: it is not asked again, even as the only
 * candidate (the request ends at once with -ENOENT), and the ban is listed. */
static void ban_cb(const char *peer, uint64_t left_ms, void *arg)
{
    int *n = arg;
    (*n)++;
    assert_true(left_ms > 0 && left_ms <= FETCH_BAN_MS);
    (void)peer;
}

static void fetch_a_peer_with_bad_blocks_is_banned(void **state)
{
    fx_t *fx = *state;
    server_t *bad = server_start(fx, M_CORRUPT);
    start_fetch(fx, (fetch_opts_t){0});
    const char *peers[] = {bad->url};
    for (int i = 0; i < FETCH_BAN_AFTER; i++) {
        assert_int_equal(fetch(fx, i, &fx->blocks[i], peers, 1), 0);
        assert_true(run_until(fx, &fx->ncalls, i + 1));
        assert_int_equal(fx->calls[i].status, -EBADMSG);
    }
    assert_int_equal(server_requests(bad), FETCH_BAN_AFTER);
    int banned = 0;
    fetch_foreach_banned(fx->f, ban_cb, &banned);
    assert_int_equal(banned, 1);
    fetch_peer_stats_t ps;
    assert_int_equal(fetch_peer_stats(fx->f, bad->url, &ps), 0);
    assert_true(ps.banned); /* the status page's "banned", whatever the number of bans */
    assert_int_equal(fetch(fx, FETCH_BAN_AFTER, &fx->blocks[FETCH_BAN_AFTER], peers, 1), 0);
    assert_true(run_until(fx, &fx->ncalls, FETCH_BAN_AFTER + 1));
    assert_int_equal(fx->calls[FETCH_BAN_AFTER].status, -ENOENT);
    assert_int_equal(server_requests(bad), FETCH_BAN_AFTER); /* not asked */
}

static void fetch_fails_when_every_peer_fails(void **state)
{
    fx_t *fx = *state;
    server_t *corrupt = server_start(fx, M_CORRUPT);
    server_t *nf1 = server_start(fx, M_404);
    server_t *nf2 = server_start(fx, M_404);
    server_t *err = server_start(fx, M_500);
    char refused[64];
    refused_url(refused, sizeof(refused));
    start_fetch(fx, (fetch_opts_t){0});

    const char *bad_then_404[] = {corrupt->url, nf1->url};
    const char *only_404[] = {nf1->url, nf2->url};
    const char *only_refused[] = {refused};
    const char *only_500[] = {err->url};
    assert_int_equal(fetch(fx, 0, &fx->blocks[0], bad_then_404, 2), 0);
    assert_int_equal(fetch(fx, 1, &fx->blocks[1], only_404, 2), 0);
    assert_int_equal(fetch(fx, 2, &fx->blocks[2], only_refused, 1), 0);
    assert_int_equal(fetch(fx, 3, &fx->blocks[3], only_500, 1), 0);
    assert_int_equal(fetch(fx, 4, &fx->blocks[4], NULL, 0), 0); /* no peer at all */
    assert_true(run_until(fx, &fx->ncalls, 5));
    assert_int_equal(fx->calls[0].status, -EBADMSG);
    assert_int_equal(fx->calls[1].status, -ENOENT);
    assert_int_equal(fx->calls[2].status, -EIO);
    assert_int_equal(fx->calls[3].status, -EIO);
    assert_int_equal(fx->calls[4].status, -ENOENT);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(atomic_load(&fx->calls[i].n), 1);
        assert_false(store_has(fx->store, &fx->blocks[i].h));
    }
    assert_int_equal(server_requests(nf1), 2);
    assert_int_equal(server_requests(nf2), 1);
    /* 404 costs nothing; a refused connection and a 500 do */
    assert_int_equal(fetch_peer_score(fx->f, nf1->url), 0);
    assert_int_equal(fetch_peer_score(fx->f, refused), FETCH_SCORE_FAIL);
    assert_int_equal(fetch_peer_score(fx->f, err->url), FETCH_SCORE_FAIL);
    assert_int_equal(fetch_peer_score(fx->f, corrupt->url), FETCH_SCORE_BAD);
    fetch_stats_t st;
    fetch_stats(fx->f, &st);
    assert_int_equal(st.blocks, 0);
    assert_int_equal(st.bad, 1);
    assert_int_equal(st.failures, 6);
}

static void fetch_aborts_oversize_and_rejects_short(void **state)
{
    fx_t *fx = *state;
    server_t *lng = server_start(fx, M_LONG);
    server_t *chunked = server_start(fx, M_LONG_CHUNKED);
    server_t *shrt = server_start(fx, M_SHORT);
    start_fetch(fx, (fetch_opts_t){0});
    const char *p0[] = {lng->url}, *p1[] = {chunked->url}, *p2[] = {shrt->url};
    assert_int_equal(fetch(fx, 0, &fx->blocks[10], p0, 1), 0);
    assert_true(run_until(fx, &fx->ncalls, 1));
    assert_int_equal(fetch(fx, 1, &fx->blocks[11], p1, 1), 0);
    assert_true(run_until(fx, &fx->ncalls, 2));
    assert_int_equal(fetch(fx, 2, &fx->blocks[12], p2, 1), 0);
    assert_true(run_until(fx, &fx->ncalls, 3));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fx->calls[i].status, -EBADMSG);
        assert_false(store_has(fx->store, &fx->blocks[10 + i].h));
    }
    assert_int_equal(fx->nbad, 3);
    assert_string_equal(fx->bad[0].peer, lng->url);
    assert_int_equal(fx->bad[0].reason, -EMSGSIZE);
    assert_string_equal(fx->bad[1].peer, chunked->url);
    assert_int_equal(fx->bad[1].reason, -EMSGSIZE);
    assert_string_equal(fx->bad[2].peer, shrt->url);
    assert_int_equal(fx->bad[2].reason, -EPROTO);
    /* the chunked peer offered a whole MiB more; no more than the block's length was kept */
    fetch_peer_stats_t ps;
    assert_int_equal(fetch_peer_stats(fx->f, chunked->url, &ps), 0);
    assert_true(ps.bytes <= fx->blocks[11].len);
    /* the Content-Length one was refused before its body */
    assert_int_equal(fetch_peer_stats(fx->f, lng->url, &ps), 0);
    assert_int_equal(ps.bytes, 0);
}

static void fetch_times_out_and_moves_on(void **state)
{
    fx_t *fx = *state;
    server_t *slow = server_start(fx, M_SLOW);
    server_t *good = server_start(fx, M_GOOD);
    start_fetch(fx, (fetch_opts_t){.timeout_ms = 300});
    const char *both[] = {slow->url, good->url};
    uint64_t t0 = uv_hrtime();
    assert_int_equal(fetch(fx, 0, &fx->blocks[5], both, 2), 0);
    assert_true(run_until(fx, &fx->ncalls, 1));
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(fx->calls[0].status, 0);
    assert_stored(fx, &fx->blocks[5]);
    assert_true(ms >= 290);
    assert_int_equal(server_requests(slow), 1);
    assert_int_equal(server_requests(good), 1);
    assert_int_equal(fetch_peer_score(fx->f, slow->url), FETCH_SCORE_FAIL);

    const char *only_slow[] = {slow->url};
    assert_int_equal(fetch(fx, 1, &fx->blocks[6], only_slow, 1), 0);
    assert_true(run_until(fx, &fx->ncalls, 2));
    assert_int_equal(fx->calls[1].status, -ETIMEDOUT);
    assert_false(store_has(fx->store, &fx->blocks[6].h));
    assert_int_equal(fx->nbad, 0); /* slow is not bad */
}

/* A peer that trickles (10 bytes/s), and one that never answers, within a long time-out: both are
 * cut off by the low-speed limit (here 1 KiB/s for 1 s), counted, and the block comes from the next. */
static void fetch_cuts_off_slow_peers(void **state)
{
    fx_t *fx = *state;
    server_t *trickle = server_start(fx, M_TRICKLE);
    server_t *silent = server_start(fx, M_SLOW);
    server_t *good = server_start(fx, M_GOOD);
    start_fetch(fx, (fetch_opts_t){.timeout_ms = 60000, .low_speed_s = 1});
    const char *peers[] = {trickle->url, silent->url, good->url};
    uint64_t t0 = uv_hrtime();
    assert_int_equal(fetch(fx, 0, &fx->blocks[5], peers, 3), 0);
    assert_true(run_until(fx, &fx->ncalls, 1));
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(fx->calls[0].status, 0);
    assert_stored(fx, &fx->blocks[5]);
    assert_true(ms >= 1900 && ms < 20000); /* two cut off after about a second each */
    assert_int_equal(server_requests(trickle), 1);
    assert_int_equal(server_requests(silent), 1);
    assert_int_equal(server_requests(good), 1);
    fetch_stats_t st;
    fetch_stats(fx->f, &st);
    assert_int_equal(st.too_slow, 2);
    assert_int_equal(fx->nbad, 0); /* slow is not bad */
}

static void fetch_many_blocks_from_three_peers(void **state)
{
    fx_t *fx = *state;
    server_t *s[3];
    for (int i = 0; i < 3; i++) {
        s[i] = server_start(fx, M_GOOD);
        server_hold(s[i], true);
    }
    start_fetch(fx, (fetch_opts_t){.max_per_peer = 4});
    const char *peers[] = {s[0]->url, s[1]->url, s[2]->url};
    for (int i = 0; i < NBLOCKS; i++)
        assert_int_equal(fetch(fx, i, &fx->blocks[i], peers, 3), 0);
    fetch_stats_t st;
    fetch_stats(fx->f, &st);
    assert_int_equal(st.active, NBLOCKS);

    /* while the peers hold their requests: each has exactly max_per_peer, the rest wait */
    assert_true(run_until_requests(fx, 12));
    fetch_stats(fx->f, &st);
    assert_int_equal(st.inflight, 12);
    assert_int_equal(st.queued, NBLOCKS - 12);
    for (int i = 0; i < 3; i++) {
        fetch_peer_stats_t ps;
        assert_int_equal(fetch_peer_stats(fx->f, s[i]->url, &ps), 0);
        assert_int_equal(ps.inflight, 4);
        assert_int_equal(server_requests(s[i]), 4);
    }
    for (int i = 0; i < 3; i++)
        server_hold(s[i], false);

    assert_true(run_until(fx, &fx->ncalls, NBLOCKS));
    for (int i = 0; i < NBLOCKS; i++) {
        assert_int_equal(atomic_load(&fx->calls[i].n), 1);
        assert_int_equal(fx->calls[i].status, 0);
        assert_true(hash_equal(&fx->calls[i].h, &fx->blocks[i].h));
        assert_stored(fx, &fx->blocks[i]);
    }
    /*
     * How the rest spreads depends on how fast each peer answers (a freed slot takes the next
     * request), which on a small machine is up to the thread scheduler: not asserted.
     */
    int total = 0, conns = 0;
    for (int i = 0; i < 3; i++) {
        int n = server_requests(s[i]);
        total += n;
        conns += s[i]->conns;
        print_message("peer %d: %d blocks over %d connections, at most %d at once\n", i, n, s[i]->conns,
                      s[i]->max_open);
        assert_true(n >= 4);
        assert_true(s[i]->max_open <= 4);
        fetch_peer_stats_t ps;
        assert_int_equal(fetch_peer_stats(fx->f, s[i]->url, &ps), 0);
        assert_int_equal(ps.blocks, (uint64_t)n);
        assert_int_equal(ps.inflight, 0);
    }
    assert_int_equal(total, NBLOCKS);
    assert_true(conns < NBLOCKS); /* keep-alive: connections were reused */
    fetch_stats(fx->f, &st);
    assert_int_equal(st.blocks, NBLOCKS);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(store_blocks(fx->store), NBLOCKS);
}

static void fetch_shares_concurrent_requests_for_a_hash(void **state)
{
    fx_t *fx = *state;
    server_t *s = server_start(fx, M_GOOD);
    start_fetch(fx, (fetch_opts_t){0});
    const char *peers[] = {s->url};
    const block_t *b = &fx->blocks[20];
    for (int i = 0; i < 3; i++)
        assert_int_equal(fetch(fx, i, b, peers, 1), 0);
    /* the same hash with another length is a caller bug */
    assert_int_equal(fetch_block(fx->f, &b->h, b->len + 1, peers, 1, on_fetched_ref, &refs[3]), -EINVAL);
    assert_true(run_until(fx, &fx->ncalls, 3));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(atomic_load(&fx->calls[i].n), 1);
        assert_int_equal(fx->calls[i].status, 0);
    }
    assert_int_equal(server_requests(s), 1);
    fetch_stats_t st;
    fetch_stats(fx->f, &st);
    assert_int_equal(st.requests, 3);
    assert_int_equal(st.joined, 2);
    assert_int_equal(st.transfers, 1);
    assert_stored(fx, b);
}

static void fetch_join_adds_peers_to_a_waiting_request(void **state)
{
    fx_t *fx = *state;
    server_t *slow = server_start(fx, M_SLOW);
    server_t *good = server_start(fx, M_GOOD);
    start_fetch(fx, (fetch_opts_t){.max_per_peer = 1});
    const char *p_slow[] = {slow->url}, *p_good[] = {good->url};
    /* block 0 takes the slow peer's only slot; block 1 waits for it */
    assert_int_equal(fetch(fx, 0, &fx->blocks[0], p_slow, 1), 0);
    assert_true(run_until(fx, &slow->requests, 1));
    assert_int_equal(fetch(fx, 1, &fx->blocks[1], p_slow, 1), 0);
    fetch_stats_t st;
    for (;;) { /* block 1 leaves its store check and joins the queue */
        fetch_stats(fx->f, &st);
        if (st.queued == 1 || fx->timed_out)
            break;
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    assert_int_equal(st.queued, 1);
    /* a second caller of block 1 knows a peer with room: the waiting request starts there */
    assert_int_equal(fetch(fx, 2, &fx->blocks[1], p_good, 1), 0);
    assert_true(run_until(fx, &fx->ncalls, 2));
    assert_int_equal(fx->calls[1].status, 0);
    assert_int_equal(fx->calls[2].status, 0);
    assert_int_equal(atomic_load(&fx->calls[0].n), 0); /* still held by the slow peer */
    assert_stored(fx, &fx->blocks[1]);
    assert_int_equal(server_requests(slow), 1);
    assert_int_equal(server_requests(good), 1);
    fetch_stats(fx->f, &st);
    assert_int_equal(st.joined, 1);
    assert_int_equal(st.queued, 0);
}

static void fetch_present_block_completes_without_a_peer(void **state)
{
    fx_t *fx = *state;
    char refused[64];
    refused_url(refused, sizeof(refused));
    start_fetch(fx, (fetch_opts_t){0});
    const block_t *b = &fx->blocks[30];
    assert_int_equal(store_put(fx->store, &b->h, b->data, b->len), 0);
    const char *peers[] = {refused};
    assert_int_equal(fetch(fx, 0, b, peers, 1), 0);
    assert_int_equal(atomic_load(&fx->calls[0].n), 0);
    assert_true(run_until(fx, &fx->ncalls, 1));
    assert_int_equal(fx->calls[0].status, 0);
    fetch_stats_t st;
    fetch_stats(fx->f, &st);
    assert_int_equal(st.present, 1);
    assert_int_equal(st.transfers, 0);
    assert_int_equal(fetch_peer_score(fx->f, refused), 0);
    assert_int_equal(fetch_latency(fx->f)->total, 0); /* no transfer: not a fetch's latency */
}

static void fetch_close_cancels_transfers_in_flight(void **state)
{
    fx_t *fx = *state;
    server_t *slow = server_start(fx, M_SLOW);
    start_fetch(fx, (fetch_opts_t){.max_per_peer = 4});
    const char *peers[] = {slow->url};
    for (int i = 0; i < 8; i++)
        assert_int_equal(fetch(fx, i, &fx->blocks[i], peers, 1), 0);
    /* four requests reach the peer and hang there; four wait for a slot */
    assert_true(run_until(fx, &slow->requests, 4));
    fetch_stats_t st;
    fetch_stats(fx->f, &st);
    assert_int_equal(st.inflight, 4);
    assert_int_equal(st.queued, 4);
    fetch_peer_stats_t ps;
    assert_int_equal(fetch_peer_stats(fx->f, slow->url, &ps), 0);
    assert_int_equal(ps.inflight, 4);

    fx->fetch_open = false;
    fetch_close(fx->f, on_closed, fx);
    assert_int_equal(atomic_load(&fx->ncalls), 0); /* deferred, not from inside fetch_close */
    assert_true(run_until(fx, &fx->closed, 1));
    assert_int_equal(fx->calls_at_close, 8); /* every callback before the close callback */
    for (int i = 0; i < 8; i++) {
        assert_int_equal(atomic_load(&fx->calls[i].n), 1);
        assert_int_equal(fx->calls[i].status, -ECANCELED);
    }
    assert_int_equal(server_requests(slow), 4);
    /* teardown asserts uv_loop_close() == 0 */
}

static void on_fetched_then_close(const hash_t *h, int status, void *arg)
{
    call_ref_t *r = arg;
    fx_t *fx = r->fx;
    on_fetched_ref(h, status, arg);
    if (fx->fetch_open) {
        fx->fetch_open = false;
        fetch_close(fx->f, on_closed, fx);
        /* the fetcher is closing but not gone: new work is refused, synchronously */
        fx->reentry_rc = fetch_block(fx->f, h, 1, NULL, 0, on_fetched_ref, &refs[MAX_CALLS - 1]);
    }
}

static void fetch_close_from_a_callback(void **state)
{
    fx_t *fx = *state;
    server_t *good = server_start(fx, M_GOOD);
    server_t *slow = server_start(fx, M_SLOW);
    start_fetch(fx, (fetch_opts_t){0});
    const char *p_good[] = {good->url}, *p_slow[] = {slow->url};
    refs[0] = (call_ref_t){fx, 0};
    refs[1] = (call_ref_t){fx, 1};
    assert_int_equal(fetch_block(fx->f, &fx->blocks[1].h, fx->blocks[1].len, p_slow, 1,
                                 on_fetched_then_close, &refs[1]), 0);
    assert_int_equal(fetch_block(fx->f, &fx->blocks[0].h, fx->blocks[0].len, p_good, 1,
                                 on_fetched_then_close, &refs[0]), 0);
    assert_true(run_until(fx, &fx->closed, 1));
    assert_int_equal(fx->reentry_rc, -ECANCELED);
    assert_int_equal(fx->calls[0].status, 0);
    assert_int_equal(fx->calls[1].status, -ECANCELED);
    assert_int_equal(atomic_load(&fx->calls[0].n), 1);
    assert_int_equal(atomic_load(&fx->calls[1].n), 1);
    assert_int_equal(fx->calls_at_close, 2);
}

static void fetch_rejects_bad_arguments(void **state)
{
    fx_t *fx = *state;
    fetch_t *f = NULL;
    assert_int_equal(fetch_new(&fx->loop, fx->store, &(fetch_opts_t){.max_per_peer = FETCH_MAX_PARALLEL + 1}, &f),
                     -EINVAL);
    assert_null(f);
    assert_int_equal(fetch_new(&fx->loop, fx->store, &(fetch_opts_t){.timeout_ms = 100, .connect_timeout_ms = 200}, &f),
                     -EINVAL);
    assert_int_equal(fetch_new(NULL, fx->store, NULL, &f), -EINVAL);
    start_fetch(fx, (fetch_opts_t){0});
    const block_t *b = &fx->blocks[0];
    const char *good[] = {"http://127.0.0.1:1"};
    char longurl[FETCH_MAX_PEER_URL + 16];
    memset(longurl, 'a', sizeof(longurl) - 1);
    memcpy(longurl, "http://", 7);
    longurl[sizeof(longurl) - 1] = '\0';
    const char *invalid[] = {"ftp://127.0.0.1:1", "http://", "http:///", "http://a/b", "http://u@h:1",
                             "http://a b", "127.0.0.1:80", longurl, NULL};
    assert_int_equal(fetch_block(fx->f, &b->h, STORE_MAX_BLOCK + 1, good, 1, on_fetched_ref, &refs[0]), -EMSGSIZE);
    assert_int_equal(fetch_block(fx->f, &b->h, b->len, invalid, 9, on_fetched_ref, &refs[0]), -EINVAL);
    assert_int_equal(fetch_block(fx->f, &b->h, b->len, good, 1, NULL, NULL), -EINVAL);
    assert_int_equal(fetch_block(fx->f, NULL, b->len, good, 1, on_fetched_ref, &refs[0]), -EINVAL);
    assert_int_equal(fetch_block(fx->f, &b->h, b->len, NULL, 1, on_fetched_ref, &refs[0]), -EINVAL);
    /* nothing was started, and no invalid name became a peer */
    fetch_stats_t st;
    fetch_stats(fx->f, &st);
    assert_int_equal(st.requests, 0);
    assert_int_equal(st.active, 0);
    fetch_peer_stats_t ps;
    assert_int_equal(fetch_peer_stats(fx->f, "http://a", &ps), -ENOENT);
    assert_int_equal(fetch_peer_score(fx->f, "http://127.0.0.1:1"), 0);
    assert_int_equal(atomic_load(&fx->ncalls), 0);
}

/* ---- fetch_block_data, fetch_peek ---- */

typedef struct dcall {
    fx_t *fx;
    bool hold; /* keep the bytes with fetch_data_hold */
    int n, status;
    uint8_t *copy; /* what was handed over, copied in the callback */
    size_t len;
    const uint8_t *held;
} dcall_t;

static void on_data(const hash_t *h, int status, const uint8_t *data, size_t len, void *arg)
{
    dcall_t *c = arg;
    (void)h;
    c->n++;
    c->status = status;
    if (data) {
        c->copy = malloc(len ? len : 1);
        memcpy(c->copy, data, len);
        c->len = len;
        if (c->hold) {
            fetch_data_hold(data);
            c->held = data;
        }
    }
    atomic_fetch_add(&c->fx->ncalls, 1);
}

/* Runs the loop until no request is left (store writes go on after the data callbacks). */
static void run_until_idle(fx_t *fx)
{
    fetch_stats_t st;
    for (;;) {
        fetch_stats(fx->f, &st);
        if (st.active == 0 || fx->timed_out)
            break;
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    assert_int_equal(st.active, 0);
}

static void fetch_data_hands_over_verified_bytes_and_keeps_them(void **state)
{
    fx_t *fx = *state;
    server_t *s = server_start(fx, M_GOOD);
    start_fetch(fx, (fetch_opts_t){.keep_blocks = 2});
    const char *peers[] = {s->url};
    const block_t *b = &fx->blocks[5];
    dcall_t c[4] = {{.fx = fx}, {.fx = fx}, {.fx = fx}, {.fx = fx}};
    assert_int_equal(fetch_block_data(fx->f, &b->h, b->len, peers, 1, on_data, &c[0]), 0);
    assert_int_equal(c[0].n, 0); /* never from inside the call */
    assert_true(run_until(fx, &fx->ncalls, 1));
    assert_int_equal(c[0].status, 0);
    assert_int_equal(c[0].len, b->len);
    assert_memory_equal(c[0].copy, b->data, b->len);
    run_until_idle(fx);
    assert_stored(fx, b); /* written in the background */

    /* kept in memory: answered without a transfer (still deferred), and seen by fetch_peek */
    assert_int_equal(fetch_block_data(fx->f, &b->h, b->len, peers, 1, on_data, &c[1]), 0);
    assert_int_equal(c[1].n, 0);
    assert_true(run_until(fx, &fx->ncalls, 2));
    assert_int_equal(c[1].status, 0);
    assert_memory_equal(c[1].copy, b->data, b->len);
    assert_int_equal(server_requests(s), 1);
    fetch_stats_t st;
    fetch_stats(fx->f, &st);
    assert_int_equal(st.kept, 1);
    assert_int_equal(st.transfers, 1);
    size_t len = 0;
    const uint8_t *p = fetch_peek(fx->f, &b->h, &len);
    assert_non_null(p);
    assert_int_equal(len, b->len);
    assert_memory_equal(p, b->data, b->len);
    fetch_data_release(p);
    /* a different length for a kept hash is a caller bug */
    assert_int_equal(fetch_block_data(fx->f, &b->h, b->len + 1, peers, 1, on_data, &c[2]), -EINVAL);

    /* the keep list holds the newest two: two more blocks push block 5 out of memory */
    assert_int_equal(fetch_block_data(fx->f, &fx->blocks[6].h, fx->blocks[6].len, peers, 1, on_data, &c[2]), 0);
    assert_int_equal(fetch_block_data(fx->f, &fx->blocks[7].h, fx->blocks[7].len, peers, 1, on_data, &c[3]), 0);
    assert_true(run_until(fx, &fx->ncalls, 4));
    assert_memory_equal(c[3].copy, fx->blocks[7].data, fx->blocks[7].len);
    assert_null(fetch_peek(fx->f, &b->h, &len));
    p = fetch_peek(fx->f, &fx->blocks[6].h, &len);
    assert_non_null(p);
    fetch_data_release(p);
    run_until_idle(fx);
    for (int i = 0; i < 4; i++)
        free(c[i].copy);
}

static void fetch_prefetch_keeps_and_stores(void **state)
{
    fx_t *fx = *state;
    server_t *s = server_start(fx, M_GOOD);
    start_fetch(fx, (fetch_opts_t){.keep_blocks = 4});
    const char *peers[] = {s->url};
    const block_t *b = &fx->blocks[11];
    assert_int_equal(fetch_prefetch(fx->f, &b->h, b->len, peers, 1), 0);
    assert_true(run_until_requests(fx, 1));
    run_until_idle(fx);
    assert_stored(fx, b); /* hashed and stored, nobody called back */
    size_t len = 0;
    const uint8_t *p = fetch_peek(fx->f, &b->h, &len);
    assert_non_null(p);
    assert_int_equal(len, b->len);
    assert_memory_equal(p, b->data, b->len);
    fetch_data_release(p);
    /* held in memory: a second prefetch does nothing, a reader gets the bytes without a transfer */
    assert_int_equal(fetch_prefetch(fx->f, &b->h, b->len, peers, 1), 0);
    dcall_t c = {.fx = fx};
    assert_int_equal(fetch_block_data(fx->f, &b->h, b->len, peers, 1, on_data, &c), 0);
    assert_true(run_until(fx, &fx->ncalls, 1));
    assert_int_equal(c.status, 0);
    assert_memory_equal(c.copy, b->data, b->len);
    assert_int_equal(server_requests(s), 1);
    fetch_stats_t st;
    fetch_stats(fx->f, &st);
    assert_int_equal(st.transfers, 1);
    assert_int_equal(st.active, 0);
    assert_int_equal(atomic_load(&fx->ncalls), 1);
    free(c.copy);
}

/* A block someone waits for is fetched before read-ahead queued earlier; so is a queued
 * read-ahead once a reader comes to wait for it. One slot: transfers go strictly in queue order. */
static void fetch_prefers_blocks_needed_now(void **state)
{
    fx_t *fx = *state;
    server_t *s = server_start(fx, M_GOOD);
    start_fetch(fx, (fetch_opts_t){.keep_blocks = 16, .max_per_peer = 1, .max_total = 1});
    const char *peers[] = {s->url};
    server_hold(s, true);
    dcall_t first = {.fx = fx}, now = {.fx = fx}, joined = {.fx = fx};
    assert_int_equal(fetch_block_data(fx->f, &fx->blocks[0].h, fx->blocks[0].len, peers, 1, on_data, &first), 0);
    assert_true(run_until_requests(fx, 1)); /* block 0 holds the only slot */
    for (int i = 1; i <= 6; i++) /* read-ahead of blocks 1..6 waits in the queue */
        assert_int_equal(fetch_prefetch(fx->f, &fx->blocks[i].h, fx->blocks[i].len, peers, 1), 0);
    /* a reader now needs block 8, and another block 6 (queued last as read-ahead) */
    assert_int_equal(fetch_block_data(fx->f, &fx->blocks[8].h, fx->blocks[8].len, peers, 1, on_data, &now), 0);
    assert_int_equal(fetch_block_data(fx->f, &fx->blocks[6].h, fx->blocks[6].len, peers, 1, on_data, &joined), 0);
    server_hold(s, false);
    assert_true(run_until(fx, &fx->ncalls, 3)); /* blocks 0, 8, 6 */
    assert_int_equal(now.status, 0);
    assert_int_equal(joined.status, 0);
    assert_memory_equal(now.copy, fx->blocks[8].data, fx->blocks[8].len);
    /* when the readers had their blocks, the read-ahead of 1..5 had (almost) not begun */
    size_t held = 0, len;
    for (int i = 1; i <= 5; i++) {
        const uint8_t *p = fetch_peek(fx->f, &fx->blocks[i].h, &len);
        if (p) {
            held++;
            fetch_data_release(p);
        }
    }
    assert_true(held <= 1);
    run_until_idle(fx);
    for (int i = 1; i <= 6; i++)
        assert_stored(fx, &fx->blocks[i]); /* the read-ahead still lands */
    free(first.copy);
    free(now.copy);
    free(joined.copy);
}

static void fetch_data_without_a_store(void **state)
{
    fx_t *fx = *state;
    server_t *bad = server_start(fx, M_CORRUPT);
    server_t *good = server_start(fx, M_GOOD);
    fetch_opts_t o = {.on_bad_peer = on_bad_peer, .bad_peer_arg = fx};
    assert_int_equal(fetch_new(&fx->loop, NULL, &o, &fx->f), 0);
    fx->fetch_open = true;
    const char *peers[] = {bad->url, good->url};
    const block_t *b = &fx->blocks[9];
    /* without a store only the bytes can be asked for */
    assert_int_equal(fetch_block(fx->f, &b->h, b->len, peers, 2, on_fetched_ref, &refs[0]), -EINVAL);
    dcall_t c = {.fx = fx, .hold = true}, e = {.fx = fx};
    assert_int_equal(fetch_block_data(fx->f, &b->h, b->len, peers, 2, on_data, &c), 0);
    assert_int_equal(fetch_block_data(fx->f, &fx->blocks[EMPTY_BLOCK].h, 0, peers + 1, 1, on_data, &e), 0);
    assert_true(run_until(fx, &fx->ncalls, 2));
    /* the corrupt peer went first (caller's order), was caught, and the good one served */
    assert_int_equal(c.status, 0);
    assert_int_equal(c.len, b->len);
    assert_memory_equal(c.copy, b->data, b->len);
    assert_int_equal(atomic_load(&fx->nbad), 1);
    assert_string_equal(fx->bad[0].peer, bad->url);
    assert_int_equal(e.status, 0);
    assert_int_equal(e.len, 0);
    assert_false(store_has(fx->store, &b->h)); /* nothing went to any store */
    /* a held buffer outlives the fetcher (ASan checks the read and the release) */
    close_fetch(fx);
    assert_memory_equal(c.held, b->data, b->len);
    fetch_data_release(c.held);
    free(c.copy);
    free(e.copy);
}

/* A block fetched while the store holds it already is counted (blocks-fetched-again: "no verified
 * block is fetched twice by the same peer", docs/reliability.md); a verified block the store cannot
 * take (a full disk) still reaches its reader from memory, and is counted with the store's error. */
static void fetch_counts_blocks_fetched_again_and_store_errors(void **state)
{
    fx_t *fx = *state;
    server_t *s = server_start(fx, M_GOOD);
    start_fetch(fx, (fetch_opts_t){.keep_blocks = 1});
    const char *peers[] = {s->url};
    dcall_t c[5] = {{.fx = fx}, {.fx = fx}, {.fx = fx}, {.fx = fx}, {.fx = fx}};
    assert_int_equal(fetch_block_data(fx->f, &fx->blocks[5].h, fx->blocks[5].len, peers, 1, on_data, &c[0]), 0);
    assert_true(run_until(fx, &fx->ncalls, 1));
    run_until_idle(fx);
    assert_stored(fx, &fx->blocks[5]);
    fetch_stats_t st;
    fetch_stats(fx->f, &st);
    assert_int_equal(st.blocks, 1);
    assert_int_equal(st.again, 0);
    /* block 6 pushes block 5 out of memory; a reader that skipped the store then fetches 5 again */
    assert_int_equal(fetch_block_data(fx->f, &fx->blocks[6].h, fx->blocks[6].len, peers, 1, on_data, &c[1]), 0);
    assert_true(run_until(fx, &fx->ncalls, 2));
    run_until_idle(fx);
    assert_int_equal(fetch_block_data(fx->f, &fx->blocks[5].h, fx->blocks[5].len, peers, 1, on_data, &c[2]), 0);
    assert_true(run_until(fx, &fx->ncalls, 3));
    run_until_idle(fx);
    assert_int_equal(c[2].status, 0);
    fetch_stats(fx->f, &st);
    assert_int_equal(st.blocks, 3);
    assert_int_equal(st.again, 1);
    assert_int_equal(st.store_errors, 0);
    assert_int_equal(st.store_error, 0);

    /* the store cannot write (its tmp/ is a file now): the reader has the bytes, the block is not kept */
    char tmp[sizeof(fx->dir) + 8];
    snprintf(tmp, sizeof(tmp), "%s/tmp", fx->dir);
    assert_int_equal(rmdir(tmp), 0);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(fetch_block_data(fx->f, &fx->blocks[7].h, fx->blocks[7].len, peers, 1, on_data, &c[3]), 0);
    assert_true(run_until(fx, &fx->ncalls, 4));
    run_until_idle(fx);
    assert_int_equal(c[3].status, 0);
    assert_memory_equal(c[3].copy, fx->blocks[7].data, fx->blocks[7].len);
    assert_false(store_has(fx->store, &fx->blocks[7].h));
    fetch_stats(fx->f, &st);
    assert_int_equal(st.store_errors, 1);
    assert_int_equal(st.store_error, -ENOTDIR);
    assert_int_equal(st.again, 1);
    /* room again: the next block is stored, and the count of errors stays */
    assert_int_equal(unlink(tmp), 0);
    assert_int_equal(mkdir(tmp, 0700), 0);
    assert_int_equal(fetch_block_data(fx->f, &fx->blocks[8].h, fx->blocks[8].len, peers, 1, on_data, &c[4]), 0);
    assert_true(run_until(fx, &fx->ncalls, 5));
    run_until_idle(fx);
    assert_stored(fx, &fx->blocks[8]);
    fetch_stats(fx->f, &st);
    assert_int_equal(st.store_errors, 1);
    for (int i = 0; i < 5; i++)
        free(c[i].copy);
}

/* ---- fetch_get ---- */

typedef struct get_call {
    fx_t *fx;
    int n, status;
    unsigned code;
    uint8_t *body;
    size_t len;
} get_call_t;

static void on_got(int status, unsigned code, const char *body, size_t len, void *arg)
{
    get_call_t *g = arg;
    g->n++;
    g->status = status;
    g->code = code;
    g->len = len;
    free(g->body);
    g->body = NULL;
    if (body) {
        assert_int_equal(body[len], '\0'); /* NUL-terminated for convenience */
        g->body = malloc(len + 1);
        memcpy(g->body, body, len);
    }
    atomic_fetch_add(&g->fx->ncalls, 1);
}

static void block_url(char *out, size_t n, const server_t *s, const block_t *b)
{
    char hex[HASH_HEX_LEN + 1];
    hash_to_hex(&b->h, hex);
    snprintf(out, n, "%s/v1/block/%s", s->url, hex);
}

static void fetch_get_returns_body_and_code(void **state)
{
    fx_t *fx = *state;
    server_t *good = server_start(fx, M_GOOD);
    start_fetch(fx, (fetch_opts_t){0});
    const block_t *b = &fx->blocks[3];
    char url[256], missing[256];
    block_url(url, sizeof(url), good, b);
    snprintf(missing, sizeof(missing), "%s/nothing/here", good->url);
    get_call_t ok = {.fx = fx}, nf = {.fx = fx};
    assert_int_equal(fetch_get(fx->f, url, b->len, on_got, &ok), 0);
    assert_int_equal(fetch_get(fx->f, missing, 1024, on_got, &nf), 0);
    assert_int_equal(ok.n + nf.n, 0); /* never from inside the call */
    assert_true(run_until(fx, &fx->ncalls, 2));
    assert_int_equal(ok.n, 1);
    assert_int_equal(ok.status, 0);
    assert_int_equal(ok.code, 200);
    assert_int_equal(ok.len, b->len);
    assert_memory_equal(ok.body, b->data, b->len);
    assert_int_equal(nf.n, 1);
    assert_int_equal(nf.status, 0); /* an HTTP answer: the caller reads the code */
    assert_int_equal(nf.code, 404);
    assert_int_equal(nf.len, 9);
    assert_memory_equal(nf.body, "not here\n", 9);
    /* a get is not a block: no store entry, no peer statistics */
    assert_false(store_has(fx->store, &b->h));
    fetch_stats_t st;
    fetch_stats(fx->f, &st);
    assert_int_equal(st.transfers, 0);
    free(ok.body);
    free(nf.body);
}

static void fetch_post_sends_its_body(void **state)
{
    fx_t *fx = *state;
    server_t *srv = server_start(fx, M_GOOD);
    start_fetch(fx, (fetch_opts_t){0});
    char url[256], want[256];
    snprintf(url, sizeof(url), "%s/v1/output/x?a=1", srv->url);
    static char body[3000], sent[3000]; /* over 1 KiB: sent without waiting for "100 Continue" */
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (char)(i * 7); /* NUL bytes too */
    memcpy(sent, body, sizeof(body));
    const char *hdr[] = {"Preon-Sig: abc"};
    get_call_t p = {.fx = fx}, e = {.fx = fx};
    assert_int_equal(fetch_post_hdr(fx->f, url, hdr, 1, body, sizeof(body), 8192, on_got, &p), 0);
    memset(body, 'x', sizeof(body)); /* the body is copied: the caller's buffer is its own once the call returns */
    assert_int_equal(fetch_post_hdr(fx->f, url, NULL, 0, NULL, 0, 8192, on_got, &e), 0); /* an empty body */
    assert_true(run_until(fx, &fx->ncalls, 2));
    assert_int_equal(p.status, 0);
    assert_int_equal(p.code, 201);
    int hn = snprintf(want, sizeof(want), "POST application/octet-stream abc %zu:", sizeof(body));
    assert_int_equal(p.len, (size_t)hn + sizeof(body));
    assert_memory_equal(p.body, want, (size_t)hn);
    assert_memory_equal(p.body + hn, sent, sizeof(sent));
    assert_int_equal(e.code, 201);
    assert_int_equal(e.len, strlen("POST application/octet-stream - 0:"));
    assert_memory_equal(e.body, "POST application/octet-stream - 0:", e.len);
    assert_int_equal(fetch_post_hdr(fx->f, url, NULL, 0, body, FETCH_MAX_POST_BODY + 1, 10, on_got, &p), -EINVAL);
    assert_int_equal(fetch_post_hdr(fx->f, url, NULL, 0, NULL, 5, 10, on_got, &p), -EINVAL);
    free(p.body);
    free(e.body);
}

static void fetch_get_cuts_oversize_bodies(void **state)
{
    fx_t *fx = *state;
    server_t *good = server_start(fx, M_GOOD);
    server_t *chunked = server_start(fx, M_LONG_CHUNKED);
    start_fetch(fx, (fetch_opts_t){0});
    const block_t *b = &fx->blocks[10];
    char u1[256], u2[256], u3[256];
    block_url(u1, sizeof(u1), good, b);    /* Content-Length over max_len */
    block_url(u2, sizeof(u2), chunked, b); /* no Content-Length, the body runs on */
    block_url(u3, sizeof(u3), good, &fx->blocks[0]);
    get_call_t g1 = {.fx = fx}, g2 = {.fx = fx}, g3 = {.fx = fx};
    assert_int_equal(fetch_get(fx->f, u1, b->len - 1, on_got, &g1), 0);
    assert_int_equal(fetch_get(fx->f, u2, 100000, on_got, &g2), 0);
    assert_int_equal(fetch_get(fx->f, u3, 0, on_got, &g3), 0); /* max_len 0: only an empty body fits */
    assert_true(run_until(fx, &fx->ncalls, 3));
    assert_int_equal(g1.status, -EMSGSIZE);
    assert_int_equal(g1.code, 0);
    assert_null(g1.body);
    assert_int_equal(g2.status, -EMSGSIZE);
    assert_int_equal(g3.status, -EMSGSIZE);
    assert_int_equal(g1.n + g2.n + g3.n, 3);
}

static void fetch_get_times_out(void **state)
{
    fx_t *fx = *state;
    server_t *slow = server_start(fx, M_SLOW);
    start_fetch(fx, (fetch_opts_t){.timeout_ms = 300});
    char url[256];
    block_url(url, sizeof(url), slow, &fx->blocks[1]);
    get_call_t g = {.fx = fx};
    uint64_t t0 = uv_hrtime();
    assert_int_equal(fetch_get(fx->f, url, 1 << 20, on_got, &g), 0);
    assert_true(run_until(fx, &fx->ncalls, 1));
    assert_true((uv_hrtime() - t0) / 1000000 >= 290);
    assert_int_equal(g.status, -ETIMEDOUT);
    assert_int_equal(g.n, 1);

    /* and a refused connection is -EIO */
    char refused[64], u2[128];
    refused_url(refused, sizeof(refused));
    snprintf(u2, sizeof(u2), "%s/x", refused);
    get_call_t r = {.fx = fx};
    assert_int_equal(fetch_get(fx->f, u2, 10, on_got, &r), 0);
    assert_true(run_until(fx, &fx->ncalls, 2));
    assert_int_equal(r.status, -EIO);
}

static void fetch_get_does_not_wait_for_block_slots(void **state)
{
    fx_t *fx = *state;
    server_t *good = server_start(fx, M_GOOD);
    server_hold(good, true);
    /* the held transfer must outlive a slow machine (make asan beside other work took over the
     * default 10 s, the held block timed out and the second took its slot: a flaky test) */
    start_fetch(fx, (fetch_opts_t){.max_per_peer = 1, .max_total = 1, .timeout_ms = 120000, .low_speed_s = 120});
    const char *peers[] = {good->url};
    /* the one block slot is taken by a held transfer, a second block waits for it */
    assert_int_equal(fetch(fx, 0, &fx->blocks[0], peers, 1), 0);
    assert_int_equal(fetch(fx, 1, &fx->blocks[1], peers, 1), 0);
    assert_true(run_until(fx, &good->requests, 1));
    char url[128];
    snprintf(url, sizeof(url), "%s/v1/jobs", good->url);
    get_call_t g = {.fx = fx};
    assert_int_equal(fetch_get(fx->f, url, 1024, on_got, &g), 0);
    assert_true(run_until(fx, &fx->ncalls, 1));
    assert_int_equal(g.n, 1);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.code, 404);
    assert_int_equal(atomic_load(&fx->calls[0].n), 0); /* the blocks are still waiting */
    fetch_stats_t st;
    fetch_stats(fx->f, &st);
    assert_int_equal(st.inflight, 1);
    assert_int_equal(st.queued, 1);
    server_hold(good, false);
    assert_true(run_until(fx, &fx->ncalls, 3));
    assert_int_equal(fx->calls[0].status, 0);
    assert_int_equal(fx->calls[1].status, 0);
    free(g.body);
}

static void fetch_get_cancelled_by_close_and_checks_arguments(void **state)
{
    fx_t *fx = *state;
    server_t *slow = server_start(fx, M_SLOW);
    start_fetch(fx, (fetch_opts_t){0});
    char url[256];
    block_url(url, sizeof(url), slow, &fx->blocks[2]); /* held by the slow peer */
    get_call_t g = {.fx = fx};
    assert_int_equal(fetch_get(fx->f, url, 10, on_got, &g), 0);
    assert_int_equal(fetch_get(fx->f, "ftp://h/x", 10, on_got, &g), -EINVAL);
    assert_int_equal(fetch_get(fx->f, "http://h/a b", 10, on_got, &g), -EINVAL);
    assert_int_equal(fetch_get(fx->f, "http://", 10, on_got, &g), -EINVAL);
    assert_int_equal(fetch_get(fx->f, url, FETCH_MAX_GET_BODY + 1, on_got, &g), -EINVAL);
    assert_int_equal(fetch_get(fx->f, url, 10, NULL, NULL), -EINVAL);
    assert_int_equal(fetch_get(fx->f, NULL, 10, on_got, &g), -EINVAL);
    assert_true(run_until(fx, &slow->requests, 1));
    fx->fetch_open = false;
    fetch_close(fx->f, on_closed, fx);
    assert_int_equal(g.n, 0);
    assert_true(run_until(fx, &fx->closed, 1));
    assert_int_equal(g.n, 1);
    assert_int_equal(g.status, -ECANCELED);
    assert_int_equal(fx->calls_at_close, 1); /* the get's callback came before the close callback */
}

int main(void)
{
    /* a peer that hangs up mid-response must not kill the test servers' threads */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(fetch_good_block_lands_verified, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_corrupt_peer_is_penalised_and_next_peer_serves, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_a_peer_with_bad_blocks_is_banned, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_fails_when_every_peer_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_aborts_oversize_and_rejects_short, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_times_out_and_moves_on, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_cuts_off_slow_peers, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_many_blocks_from_three_peers, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_shares_concurrent_requests_for_a_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_join_adds_peers_to_a_waiting_request, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_present_block_completes_without_a_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_close_cancels_transfers_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_close_from_a_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_rejects_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_data_hands_over_verified_bytes_and_keeps_them, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_prefetch_keeps_and_stores, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_prefers_blocks_needed_now, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_data_without_a_store, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_counts_blocks_fetched_again_and_store_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_get_returns_body_and_code, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_post_sends_its_body, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_get_cuts_oversize_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_get_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_get_does_not_wait_for_block_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(fetch_get_cancelled_by_close_and_checks_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
