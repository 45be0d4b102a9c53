/*
 * server.c: the tracker on the loop. Routes /announce and /scrape of a shared httpd_t to the
 * sans-I/O core (tracker.c), answering from one reused buffer, and runs a timer that lets the
 * core reclaim expired peers and empty swarms a slice of its table at a time.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "tracker/tracker.h"

/* Every EXPIRE_PERIOD_MS the core looks at EXPIRE_BUDGET slots of its swarm table: a table of a
 * million slots is walked in about half a minute, at a few microseconds a tick. */
#define EXPIRE_PERIOD_MS 100
#define EXPIRE_BUDGET 4096

struct tracker {
    uv_loop_t *loop;
    httpd_t *httpd;
    tracker_state_t *state;
    bencode_buf_t buf; /* every answer is built here, then copied out by httpd_reply */
    uv_timer_t timer;
    void (*close_cb)(void *arg);
    void *close_arg;
};

static bool method_ok(httpd_req_t *r)
{
    const char *m = httpd_req_method(r);
    if (!strcmp(m, "GET") || !strcmp(m, "HEAD"))
        return true;
    httpd_reply_header(r, "Allow", "GET, HEAD");
    httpd_reply(r, 405, "text/plain", "method not allowed\n", 19);
    return false;
}

static void on_announce(httpd_req_t *r, void *arg)
{
    tracker_t *t = arg;
    if (!method_ok(r))
        return;
    size_t qlen;
    const char *q = httpd_req_query(r, &qlen);
    tracker_handle_announce(t->state, q, qlen, httpd_req_peer(r), uv_now(t->loop), &t->buf);
    httpd_reply(r, 200, "text/plain", t->buf.data, t->buf.len);
}

static void on_scrape(httpd_req_t *r, void *arg)
{
    tracker_t *t = arg;
    if (!method_ok(r))
        return;
    size_t qlen;
    const char *q = httpd_req_query(r, &qlen);
    tracker_handle_scrape(t->state, q, qlen, uv_now(t->loop), &t->buf);
    httpd_reply(r, 200, "text/plain", t->buf.data, t->buf.len);
}

static void on_expire(uv_timer_t *timer)
{
    tracker_t *t = timer->data;
    size_t n = tracker_expire(t->state, uv_now(t->loop), EXPIRE_BUDGET);
    if (n)
        log_debug("tracker: %zu peers expired", n);
}

int tracker_start(uv_loop_t *loop, httpd_t *h, const tracker_opts_t *o, tracker_t **out)
{
    *out = NULL;
    tracker_t *t = xcalloc(1, sizeof(*t));
    int rc = tracker_state_new(o, &t->state);
    if (rc) {
        free(t);
        return rc;
    }
    t->loop = loop;
    t->httpd = h;
    bencode_buf_init(&t->buf);
    if ((rc = httpd_route(h, "/announce", on_announce, t)) == 0 && (rc = httpd_route(h, "/scrape", on_scrape, t)) != 0)
        httpd_unroute(h, "/announce");
    if (rc) {
        tracker_state_free(t->state);
        free(t);
        return rc;
    }
    uv_timer_init(loop, &t->timer);
    t->timer.data = t;
    uv_timer_start(&t->timer, on_expire, EXPIRE_PERIOD_MS, EXPIRE_PERIOD_MS);
    *out = t;
    return 0;
}

tracker_state_t *tracker_get_state(tracker_t *t) { return t->state; }

static void on_timer_closed(uv_handle_t *handle)
{
    tracker_t *t = handle->data;
    void (*cb)(void *) = t->close_cb;
    void *arg = t->close_arg;
    tracker_state_free(t->state);
    bencode_buf_release(&t->buf);
    free(t);
    if (cb)
        cb(arg);
}

void tracker_close(tracker_t *t, void (*cb)(void *arg), void *arg)
{
    if (!t)
        return;
    httpd_unroute(t->httpd, "/announce");
    httpd_unroute(t->httpd, "/scrape");
    t->close_cb = cb;
    t->close_arg = arg;
    uv_close((uv_handle_t *)&t->timer, on_timer_closed);
}
