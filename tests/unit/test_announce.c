/*
 * test_announce.c: the tracker client. The answer parser is tested as a pure function; the client
 * runs on a real uv loop against the project's own tracker (tracker_start on an httpd on
 * 127.0.0.1, port 0) in this process, plus httpd routes that answer junk or a failure. The test
 * runs the loop until a counter reaches its target, with a uv_timer watchdog instead of sleeps;
 * teardown closes every client, the tracker, the httpd and the fetcher and asserts
 * uv_loop_close() == 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "core/bencode.h"
#include "core/httpd.h"
#include "swarm/announce.h"
#include "swarm/fetch.h"
#include "swarm/store.h"
#include "tracker/tracker.h"

#define WATCHDOG_MS 20000
#define MAX_CLIENTS 4

/* ---- the parser ---- */

static int parse(const char *s, size_t len, announce_reply_t *r)
{
    char why[256];
    return announce_parse_reply(s, len, r, why, sizeof(why));
}

#define PARSE(lit, r) parse(lit, sizeof(lit) - 1, r)

static void announce_parse_compact_and_dict_peers(void **state)
{
    (void)state;
    announce_reply_t *r = malloc(sizeof(*r));
    /* two compact peers, the second with port 0 (skipped) */
    static const char compact[] = "d8:intervali900e5:peers12:\x0a\x00\x00\x01\x1f\x90\x0a\x00\x00\x02\x00\x00" "e";
    assert_int_equal(parse(compact, sizeof(compact) - 1, r), 0);
    assert_int_equal(r->interval_s, 900);
    assert_int_equal(r->npeers, 1);
    assert_memory_equal(r->peers[0].ip, "\x0a\x00\x00\x01", 4);
    assert_int_equal(r->peers[0].port, 8080);
    char url[32];
    announce_peer_url(&r->peers[0], url, sizeof(url));
    assert_string_equal(url, "http://10.0.0.1:8080");

    /* the non-compact form; a host name and an IPv6 address are skipped, not errors */
    assert_int_equal(PARSE("d5:peersld2:ip9:127.0.0.17:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti6881eed2:ip"
                           "11:example.org4:porti1eed2:ip3:::14:porti2eed2:ip7:1.2.3.44:porti65535eeee",
                           r),
                     0);
    assert_int_equal(r->interval_s, 0);
    assert_int_equal(r->npeers, 2);
    assert_int_equal(r->peers[0].port, 6881);
    assert_memory_equal(r->peers[1].ip, "\x01\x02\x03\x04", 4);
    assert_int_equal(r->peers[1].port, 65535);

    /* empty lists, and the external ip */
    assert_int_equal(PARSE("d11:external ip4:\x01\x02\x03\x04" "5:peers0:e", r), 0);
    assert_int_equal(r->npeers, 0);
    assert_true(r->has_external_ip);
    assert_int_equal(PARSE("d5:peerslee", r), 0);
    assert_int_equal(r->npeers, 0);

    /* more peers than ANNOUNCE_MAX_PEERS: the rest are dropped */
    size_t n = ANNOUNCE_MAX_PEERS + 10;
    bencode_buf_t b;
    bencode_buf_init(&b);
    bencode_put_dict(&b);
    bencode_put_cstr(&b, "peers");
    uint8_t *raw = calloc(n, 6);
    for (size_t i = 0; i < n; i++)
        raw[i * 6 + 5] = (uint8_t)(i + 1);
    bencode_put_str(&b, raw, n * 6);
    bencode_put_end(&b);
    assert_int_equal(parse(b.data, b.len, r), 0);
    assert_int_equal(r->npeers, ANNOUNCE_MAX_PEERS);
    free(raw);
    bencode_buf_release(&b);
    free(r);
}

static void announce_parse_rejects_bad_answers(void **state)
{
    (void)state;
    announce_reply_t *r = malloc(sizeof(*r));
    char why[256];
    static const char fail[] = "d14:failure reason12:bad\npasskey!e";
    assert_int_equal(announce_parse_reply(fail, sizeof(fail) - 1, r, why, sizeof(why)), -EPROTO);
    assert_string_equal(why, "bad?passkey!"); /* control characters never reach the log */
    assert_int_equal(PARSE("d14:failure reasoni1ee", r), -EINVAL);
    assert_int_equal(PARSE("<html>hello</html>", r), -EINVAL);
    assert_int_equal(PARSE("", r), -EINVAL);
    assert_int_equal(PARSE("le", r), -EINVAL);                            /* not a dict */
    assert_int_equal(PARSE("d8:intervali5ee", r), -EINVAL);               /* no peers */
    assert_int_equal(PARSE("d5:peers5:abcdee", r), -EINVAL);              /* not a multiple of 6 */
    assert_int_equal(PARSE("d5:peersi3ee", r), -EINVAL);                  /* wrong type */
    assert_int_equal(PARSE("d8:intervali-1e5:peers0:e", r), -EINVAL);    /* negative interval */
    assert_int_equal(PARSE("d8:interval1:x5:peers0:e", r), -EINVAL);     /* wrong type */
    assert_int_equal(PARSE("d5:peersli1eee", r), -EINVAL);               /* entry not a dict */
    assert_int_equal(PARSE("d5:peersld4:porti1eeee", r), -EINVAL);       /* no ip */
    assert_int_equal(PARSE("d5:peersld2:ip7:1.2.3.44:port1:xeee", r), -EINVAL);
    assert_int_equal(PARSE("d5:peersld2:ip7:1.2.3.44:porti70000eeee", r), -EINVAL);
    assert_int_equal(PARSE("d5:peers6:abcdef", r), -EINVAL);              /* truncated */
    assert_int_equal(PARSE("d5:peers0:ex", r), -EINVAL);                  /* trailing bytes */
    assert_int_equal(r->npeers, 0);
    /* deeper than an answer can be */
    assert_true(PARSE("d5:peerslllllllleeeeeeeee", r) < 0);
    free(r);
}

static void announce_pool_hash_matches_tracker(void **state)
{
    (void)state;
    const char *names[] = {"", "default", "a pool with spaces", "\xc3\xa9t\xc3\xa9"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        uint8_t a[ANNOUNCE_HASH_LEN], t[TRACKER_HASH_LEN];
        announce_pool_hash(names[i], a);
        tracker_pool_hash(names[i], t);
        assert_memory_equal(a, t, ANNOUNCE_HASH_LEN);
    }
    uint8_t x[ANNOUNCE_HASH_LEN], y[ANNOUNCE_HASH_LEN];
    announce_pool_hash("x", x);
    announce_pool_hash("y", y);
    assert_memory_not_equal(x, y, ANNOUNCE_HASH_LEN);
}

/* ---- the client on a loop ---- */

typedef struct client client_t;
typedef struct fx fx_t;

struct client {
    fx_t *fx;
    announce_t *a;
    uint16_t port;
    int calls;
    size_t n;                       /* peers in the last callback */
    announce_peer_t last[8];
    bool saw_self;
    bool close_in_cb;
};

struct fx {
    uv_loop_t loop;
    uv_timer_t watchdog;
    bool timed_out;
    char dir[64];
    store_t *store;
    fetch_t *f;
    httpd_t *httpd;
    tracker_t *tracker;
    char base[64];
    client_t c[MAX_CLIENTS];
    int closed; /* close callbacks seen */
    int junk_requests;
    int flaky_requests;
    uint8_t pool[ANNOUNCE_HASH_LEN];
};

static void on_watchdog(uv_timer_t *t) { ((fx_t *)t->data)->timed_out = true; }

static bool run_until(fx_t *fx, int *counter, int target)
{
    while (*counter < target && !fx->timed_out)
        uv_run(&fx->loop, UV_RUN_ONCE);
    return *counter >= target;
}

static void on_junk(httpd_req_t *r, void *arg)
{
    fx_t *fx = arg;
    fx->junk_requests++;
    const char *p = httpd_req_path(r);
    if (!strcmp(p, "/junk/html"))
        httpd_reply(r, 200, "text/html", "<html>no</html>", 15);
    else if (!strcmp(p, "/junk/fail"))
        httpd_reply(r, 200, "text/plain", "d14:failure reason7:go awaye", 28);
    else if (!strcmp(p, "/junk/flaky") && fx->flaky_requests++ > 0) { /* down once, then up */
        static const char ok[] = "d8:intervali3600e5:peers6:\x7f\x00\x00\x01\x1e\x61" "e";
        httpd_reply(r, 200, "text/plain", ok, sizeof(ok) - 1);
    } else if (!strcmp(p, "/junk/odd"))
        httpd_reply(r, 200, "text/plain", "d8:intervali1e5:peers7:abcdefge", 31);
    else
        httpd_reply(r, 500, "text/plain", "oops", 4);
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->watchdog);
    fx->watchdog.data = fx;
    uv_timer_start(&fx->watchdog, on_watchdog, WATCHDOG_MS, 0);
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_announce.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    assert_int_equal(store_open(fx->dir, &fx->store), 0);
    assert_int_equal(fetch_new(&fx->loop, fx->store, &(fetch_opts_t){.timeout_ms = 5000}, &fx->f), 0);
    httpd_opts_t ho = {.addr = "127.0.0.1", .port = 0};
    assert_int_equal(httpd_new(&fx->loop, &ho, &fx->httpd), 0);
    tracker_opts_t to = {.interval_s = 1, .seed = 42};
    assert_int_equal(tracker_start(&fx->loop, fx->httpd, &to, &fx->tracker), 0);
    assert_int_equal(httpd_route(fx->httpd, "/junk", on_junk, fx), 0);
    snprintf(fx->base, sizeof(fx->base), "http://127.0.0.1:%u", (unsigned)httpd_port(fx->httpd));
    announce_pool_hash("test", fx->pool);
    *state = fx;
    return 0;
}

static void on_closed(void *arg) { ((fx_t *)arg)->closed++; }
static void on_handle_closed(uv_handle_t *h) { (void)h; }

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    int want = 0;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (fx->c[i].a) {
            announce_close(fx->c[i].a, on_closed, fx);
            fx->c[i].a = NULL;
            want++;
        }
    }
    assert_true(run_until(fx, &fx->closed, want));
    tracker_close(fx->tracker, on_closed, fx);
    httpd_close(fx->httpd, on_closed, fx);
    fetch_close(fx->f, on_closed, fx);
    assert_true(run_until(fx, &fx->closed, want + 3));
    uv_close((uv_handle_t *)&fx->watchdog, on_handle_closed);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    store_close(fx->store);
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static void on_peers(const announce_peer_t *peers, size_t n, void *arg)
{
    client_t *c = arg;
    c->calls++;
    c->n = n;
    for (size_t i = 0; i < n; i++) {
        if (i < 8)
            c->last[i] = peers[i];
        if (peers[i].port == c->port)
            c->saw_self = true;
    }
    if (c->close_in_cb && c->a) {
        announce_close(c->a, on_closed, c->fx);
        c->a = NULL;
    }
}

static client_t *client_start(fx_t *fx, int i, uint16_t port, const char *path, uint32_t interval_ms)
{
    client_t *c = &fx->c[i];
    c->fx = fx;
    c->port = port;
    char url[128];
    snprintf(url, sizeof(url), "%s%s", fx->base, path);
    announce_opts_t o = {.tracker_url = url, .port = port, .interval_ms = interval_ms};
    assert_int_equal(announce_new(&fx->loop, fx->f, &o, &c->a), 0);
    return c;
}

static bool has_peer(const client_t *c, uint16_t port)
{
    for (size_t i = 0; i < c->n && i < 8; i++)
        if (c->last[i].port == port && !memcmp(c->last[i].ip, "\x7f\x00\x00\x01", 4))
            return true;
    return false;
}

/* Runs the loop until c's callback has fired with (or without) a peer on port. */
static bool run_until_peer(fx_t *fx, client_t *c, uint16_t port, bool present)
{
    while (has_peer(c, port) != present && !fx->timed_out)
        uv_run(&fx->loop, UV_RUN_ONCE);
    return has_peer(c, port) == present;
}

static void announce_two_clients_find_each_other_and_stopped_removes(void **state)
{
    fx_t *fx = *state;
    client_t *a = client_start(fx, 0, 7001, "/announce", 100);
    client_t *b = client_start(fx, 1, 7002, "/announce", 100);
    assert_int_equal(announce_add(a->a, fx->pool, true, on_peers, a), 0);
    assert_int_equal(announce_add(a->a, fx->pool, true, on_peers, a), -EEXIST);
    assert_int_equal(a->calls, 0); /* never from inside the call */
    assert_true(run_until(fx, &a->calls, 1));
    assert_int_equal(announce_add(b->a, fx->pool, false, on_peers, b), 0);
    assert_true(run_until_peer(fx, b, 7001, true));
    assert_true(run_until_peer(fx, a, 7002, true));
    assert_false(a->saw_self);
    assert_false(b->saw_self);
    tracker_stats_t st;
    tracker_get_stats(tracker_get_state(fx->tracker), &st);
    assert_int_equal(st.peers, 2);
    assert_int_equal(st.seeders, 1);

    /* b leaves: its callback stops, the tracker forgets it, a's next answer lacks it */
    int b_calls = b->calls;
    assert_int_equal(announce_remove(b->a, fx->pool), 0);
    assert_int_equal(announce_remove(b->a, fx->pool), -ENOENT);
    assert_true(run_until_peer(fx, a, 7002, false));
    assert_int_equal(a->n, 0);
    tracker_get_stats(tracker_get_state(fx->tracker), &st);
    assert_int_equal(st.peers, 1);
    assert_int_equal(b->calls, b_calls);
}

static void announce_junk_answers_give_no_callback(void **state)
{
    fx_t *fx = *state;
    const char *paths[] = {"/junk/html", "/junk/fail", "/junk/odd", "/junk/500"};
    for (int i = 0; i < 4; i++) {
        client_t *c = client_start(fx, i, (uint16_t)(7100 + i), paths[i], 20);
        assert_int_equal(announce_add(c->a, fx->pool, false, on_peers, c), 0);
    }
    /* each client is answered and retries at its interval: three rounds each at least */
    assert_true(run_until(fx, &fx->junk_requests, 12));
    for (int i = 0; i < 4; i++)
        assert_int_equal(fx->c[i].calls, 0);
}

/* A tracker that fails (restarted, say) is tried again within seconds, not an interval (here an
 * hour) later. */
static void announce_retries_soon_after_a_failure(void **state)
{
    fx_t *fx = *state;
    client_t *c = client_start(fx, 0, 7301, "/junk/flaky", 3600u * 1000);
    assert_int_equal(announce_add(c->a, fx->pool, false, on_peers, c), 0);
    uint64_t t0 = uv_now(&fx->loop);
    assert_true(run_until(fx, &c->calls, 1));
    assert_int_equal(fx->flaky_requests, 2);
    assert_true(has_peer(c, 7777));
    assert_true(uv_now(&fx->loop) - t0 < 5000); /* ANNOUNCE_RETRY_MIN_MS later, not an hour */
}

static void announce_now_and_close_from_a_callback(void **state)
{
    fx_t *fx = *state;
    /* no override: the tracker's interval (1 s) rules, so a second answer within it is announce_now's */
    client_t *a = client_start(fx, 0, 7201, "/announce", 0);
    uint8_t job[ANNOUNCE_HASH_LEN];
    memset(job, 0xab, sizeof(job));
    assert_int_equal(announce_add(a->a, fx->pool, false, on_peers, a), 0);
    assert_int_equal(announce_add(a->a, job, true, on_peers, a), 0);
    assert_true(run_until(fx, &a->calls, 2));
    uint64_t t0 = uv_now(&fx->loop);
    announce_now(a->a);
    assert_true(run_until(fx, &a->calls, 4));
    assert_true(uv_now(&fx->loop) - t0 < 900);
    /* a callback may close its client: no further callback, no crash, the close completes */
    a->close_in_cb = true;
    announce_now(a->a);
    assert_true(run_until(fx, &fx->closed, 1));
    assert_int_equal(a->calls, 5);
    assert_null(a->a);
}

static void announce_new_checks_arguments(void **state)
{
    fx_t *fx = *state;
    announce_t *a = NULL;
    const char *bad[] = {"ftp://h/announce", "http://", "http://h/a b", "http://h/a#b", "udp://h:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(announce_new(&fx->loop, fx->f, &(announce_opts_t){.tracker_url = bad[i], .port = 1}, &a),
                         -EINVAL);
    assert_null(a);
    assert_int_equal(announce_new(&fx->loop, fx->f, &(announce_opts_t){.tracker_url = "http://h/a"}, &a), -EINVAL);
    assert_int_equal(announce_new(&fx->loop, NULL, &(announce_opts_t){.tracker_url = "http://h/a", .port = 1}, &a),
                     -EINVAL);
    client_t *c = client_start(fx, 0, 7301, "/announce", 0);
    assert_int_equal(announce_add(c->a, NULL, false, on_peers, c), -EINVAL);
    assert_int_equal(announce_add(c->a, fx->pool, false, NULL, c), -EINVAL);
    assert_int_equal(announce_remove(c->a, fx->pool), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(announce_parse_compact_and_dict_peers),
        cmocka_unit_test(announce_parse_rejects_bad_answers),
        cmocka_unit_test(announce_pool_hash_matches_tracker),
        cmocka_unit_test_setup_teardown(announce_two_clients_find_each_other_and_stopped_removes, setup, teardown),
        cmocka_unit_test_setup_teardown(announce_junk_answers_give_no_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(announce_retries_soon_after_a_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(announce_now_and_close_from_a_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(announce_new_checks_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
