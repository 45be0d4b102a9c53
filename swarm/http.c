/*
 * http.c: libcurl multi driven by the libuv loop, shared by every outgoing HTTP request of a peer
 * (block transfers, and the plain GETs of small resources: announces, manifests, job lists; and the
 * few small POSTs: a running task's live output, fetch_post_hdr).
 *
 * Wiring (curl's docs/examples/multi-uv.c, without its globals): CURLMOPT_SOCKETFUNCTION starts and
 * stops one uv_poll per socket (sock_t, assigned to the socket with curl_multi_assign), and
 * CURLMOPT_TIMERFUNCTION arms one uv_timer; both events call curl_multi_socket_action and then
 * drain finished transfers with curl_multi_info_read. Every transfer's CURLOPT_PRIVATE points at a
 * swarm__xfer_t (the first member of its context) whose done function takes it from there; after
 * a drain, on_drained lets the owner (the fetcher) refill the slots that were freed.
 *
 * A get (get_t, a POST too) is one kind of transfer: its body grows in memory up to the caller's max_len, and
 * its callback is deferred to a zero-delay uv_timer, so it never runs inside fetch_get, inside a
 * curl callback or inside the close. Gets are capped at FETCH_MAX_GETS at once and take none of the
 * fetcher's block slots.
 *
 * Closing: swarm__http_cancel finishes every get with -ECANCELED; swarm__http_close waits until
 * their callbacks have fired, runs curl_multi_cleanup (curl then asks to forget its remaining
 * sockets), closes every uv handle, and the last close callback frees the client.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "swarm/internal.h"

typedef struct sock {
    uv_poll_t poll;
    swarm__http_t *h;
    curl_socket_t fd;
    struct sock *prev, *next;
} sock_t;

typedef struct get {
    swarm__xfer_t x; /* first: what CURLOPT_PRIVATE points at */
    swarm__http_t *h;
    struct get *prev, *next; /* h->gets while under way; h->done_head once finished */
    CURL *easy;
    fetch_get_cb cb;
    void *arg;
    size_t max_len;
    char *body; /* len bytes and a NUL, cap bytes allocated; grows up to max_len + 1 */
    size_t len, cap;
    bool overflow;
    bool post; /* fetch_post_hdr's (for the log) */
    int status;
    unsigned code;
    struct curl_slist *headers; /* fetch_get_hdr's, owned; curl reads them until the transfer ends */
    char errbuf[CURL_ERROR_SIZE];
} get_t;

struct swarm__http {
    uv_loop_t *loop;
    swarm__http_opts_t o;
    CURLM *multi;
    uv_timer_t timer; /* curl's time-outs */
    uv_timer_t defer; /* fires the callbacks of finished gets */
    sock_t *socks;
    unsigned handles; /* uv handles not yet closed */
    get_t *gets;      /* under way */
    unsigned ngets;
    get_t *done_head, **done_tail; /* finished, callback not yet fired */
    bool cancelled, closing, finishing, dispatching;
    void (*close_cb)(void *arg);
    void *close_arg;
};

static void maybe_finish_close(swarm__http_t *h);

/* ---- transfers ---- */

bool swarm__http_setup(swarm__http_t *h, CURL *e, const char *url, swarm__xfer_t *x,
                       curl_write_callback on_data, void *wdata, char *errbuf)
{
    return curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_PRIVATE, x) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_WRITEDATA, wdata) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http") == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_PROXY, "") == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)h->o.timeout_ms) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)h->o.connect_timeout_ms) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_USERAGENT, "preon") == CURLE_OK;
}

int swarm__http_add(swarm__http_t *h, CURL *e)
{
    return curl_multi_add_handle(h->multi, e) == CURLM_OK ? 0 : -EIO;
}

void swarm__http_remove(swarm__http_t *h, CURL *e) { curl_multi_remove_handle(h->multi, e); }

/* ---- gets ---- */

static void on_defer(uv_timer_t *t);

/* Ends g with status (and code, for 0): it leaves h->gets, and its callback is queued. */
static void get_finish(get_t *g, int status, unsigned code)
{
    swarm__http_t *h = g->h;
    if (g->prev)
        g->prev->next = g->next;
    else
        h->gets = g->next;
    if (g->next)
        g->next->prev = g->prev;
    g->prev = g->next = NULL;
    h->ngets--;
    if (g->easy) {
        curl_multi_remove_handle(h->multi, g->easy);
        curl_easy_cleanup(g->easy);
        g->easy = NULL;
    }
    curl_slist_free_all(g->headers);
    g->headers = NULL;
    g->status = status;
    g->code = status == 0 ? code : 0;
    *h->done_tail = g;
    h->done_tail = &g->next;
    if (!uv_is_active((uv_handle_t *)&h->defer))
        uv_timer_start(&h->defer, on_defer, 0, 0);
}

/* Fires the callbacks of finished gets, in order; a callback may start more gets or close. */
static void on_defer(uv_timer_t *t)
{
    swarm__http_t *h = t->data;
    get_t *g;
    h->dispatching = true;
    while ((g = h->done_head)) {
        h->done_head = g->next;
        if (!h->done_head)
            h->done_tail = &h->done_head;
        if (g->status == 0)
            g->cb(0, g->code, g->body ? g->body : "", g->len, g->arg);
        else
            g->cb(g->status, 0, NULL, 0, g->arg);
        free(g->body);
        free(g);
    }
    h->dispatching = false;
    maybe_finish_close(h);
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
static void get_done(swarm__xfer_t *x, CURLcode res, long code)
{
    get_t *g = (get_t *)x;
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
        log_debug("fetch: %s failed: %s", g->post ? "POST" : "GET", g->errbuf[0] ? g->errbuf : curl_easy_strerror(res));
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

/* An extra header line: printable ASCII (no CR or LF), "Name: value", within the cap. */
static bool header_ok(const char *line)
{
    size_t n = line ? strnlen(line, FETCH_MAX_HEADER + 1) : 0;
    if (n == 0 || n > FETCH_MAX_HEADER || !strchr(line, ':') || line[0] == ':')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)line[i] < ' ' || (unsigned char)line[i] >= 0x7f)
            return false;
    return true;
}

int swarm__http_get(swarm__http_t *h, const char *url, const char *const *headers, size_t nh, const void *body,
                    size_t body_len, size_t max_len, fetch_get_cb cb, void *arg)
{
    if (!h || !url || !cb || max_len > FETCH_MAX_GET_BODY || !get_url_ok(url) || nh > FETCH_MAX_HEADERS ||
        (nh && !headers))
        return -EINVAL;
    for (size_t i = 0; i < nh; i++)
        if (!header_ok(headers[i]))
            return -EINVAL;
    if (h->cancelled)
        return -ECANCELED;
    if (h->ngets >= FETCH_MAX_GETS)
        return -EAGAIN;
    get_t *g = xcalloc(1, sizeof(*g));
    g->x.done = get_done;
    g->h = h;
    g->cb = cb;
    g->arg = arg;
    g->max_len = max_len;
    g->post = body != NULL;
    g->next = h->gets;
    if (h->gets)
        h->gets->prev = g;
    h->gets = g;
    h->ngets++;

    /* as for blocks: no proxy, http only, no redirects; MAXFILESIZE refuses a long Content-Length
     * up front (0 would mean no limit: an empty max_len relies on on_get_body alone) */
    CURL *e = curl_easy_init();
    if (!e) {
        get_finish(g, -EIO, 0);
        return 0;
    }
    bool hdr_ok = true;
    /* A POST: its body as bytes, not a form (curl would name a form's Content-Type), sent at once
     * (no "Expect: 100-continue" round trip for a body over 1 KiB). */
    static const char *const post_hdr[] = {"Content-Type: application/octet-stream", "Expect:"};
    for (size_t i = 0; body && i < 2 && hdr_ok; i++) {
        struct curl_slist *l = curl_slist_append(g->headers, post_hdr[i]);
        hdr_ok = l != NULL;
        if (l)
            g->headers = l;
    }
    for (size_t i = 0; i < nh && hdr_ok; i++) {
        struct curl_slist *l = curl_slist_append(g->headers, headers[i]);
        hdr_ok = l != NULL;
        if (l)
            g->headers = l;
    }
    if (!hdr_ok || !swarm__http_setup(h, e, url, &g->x, on_get_body, g, g->errbuf) ||
        (g->headers && curl_easy_setopt(e, CURLOPT_HTTPHEADER, g->headers) != CURLE_OK) ||
        (body && (curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len) != CURLE_OK ||
                  curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, (const char *)body) != CURLE_OK)) ||
        (max_len > 0 && curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_len) != CURLE_OK) ||
        swarm__http_add(h, e) != 0) {
        curl_easy_cleanup(e);
        get_finish(g, -EIO, 0);
        return 0;
    }
    g->easy = e;
    return 0;
}

void swarm__http_cancel(swarm__http_t *h)
{
    h->cancelled = true;
    while (h->gets)
        get_finish(h->gets, -ECANCELED, 0);
}

/* ---- curl on the loop ---- */

static void drain(swarm__http_t *h)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        /* m is invalid once its handle is removed: copy first */
        CURL *e = m->easy_handle;
        CURLcode res = m->data.result;
        void *priv = NULL;
        long code = 0;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        swarm__xfer_t *x = priv;
        x->done(x, res, code);
    }
    if (h->o.on_drained)
        h->o.on_drained(h->o.arg);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock_t *s = p->data;
    swarm__http_t *h = s->h;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    curl_multi_socket_action(h->multi, s->fd, flags, &running);
    drain(h);
}

/* Every uv handle's close ends here; the last one (libuv runs close callbacks in any order) frees h. */
static void handle_released(swarm__http_t *h)
{
    if (--h->handles > 0)
        return;
    void (*cb)(void *) = h->close_cb;
    void *arg = h->close_arg;
    free(h);
    curl_global_cleanup();
    if (cb)
        cb(arg);
}

static void on_sock_closed(uv_handle_t *hd)
{
    sock_t *s = hd->data;
    swarm__http_t *h = s->h;
    free(s);
    handle_released(h);
}

static void sock_close(sock_t *s)
{
    swarm__http_t *h = s->h;
    if (s->prev)
        s->prev->next = s->next;
    else
        h->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    swarm__http_t *h = userp;
    sock_t *s = socketp;
    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (s)
            sock_close(s);
        return 0;
    }
    if (!s) {
        s = xcalloc(1, sizeof(*s));
        int rc = uv_poll_init_socket(h->loop, &s->poll, fd);
        if (rc < 0) {
            log_error("fetch: cannot watch socket %d: %s", (int)fd, uv_strerror(rc));
            free(s);
            return -1; /* curl fails the transfer (CURLM_ABORTED_BY_CALLBACK) */
        }
        s->poll.data = s;
        s->h = h;
        s->fd = fd;
        s->next = h->socks;
        if (h->socks)
            h->socks->prev = s;
        h->socks = s;
        h->handles++;
        curl_multi_assign(h->multi, fd, s);
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
    swarm__http_t *h = t->data;
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain(h);
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
    swarm__http_t *h = userp;
    (void)m;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- life ---- */

int swarm__http_new(uv_loop_t *loop, const swarm__http_opts_t *o, swarm__http_t **out)
{
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -EIO;
    swarm__http_t *h = xcalloc(1, sizeof(*h));
    h->loop = loop;
    h->o = *o;
    h->done_tail = &h->done_head;
    h->multi = curl_multi_init();
    if (!h->multi ||
        curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->max_host_conns) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)o->max_conns) != CURLM_OK) {
        log_error("fetch: cannot set up curl multi");
        if (h->multi)
            curl_multi_cleanup(h->multi);
        free(h);
        curl_global_cleanup();
        return -EIO;
    }
    uv_timer_init(loop, &h->timer);
    uv_timer_init(loop, &h->defer);
    h->timer.data = h->defer.data = h;
    h->handles = 2;
    *out = h;
    return 0;
}

static void on_timer_closed(uv_handle_t *hd) { handle_released(hd->data); }

static void maybe_finish_close(swarm__http_t *h)
{
    if (!h->closing || h->finishing || h->dispatching || h->done_head)
        return;
    h->finishing = true;
    /* closes the cached connections; curl reports their sockets with CURL_POLL_REMOVE */
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
    while (h->socks)
        sock_close(h->socks);
    uv_close((uv_handle_t *)&h->timer, on_timer_closed);
    uv_close((uv_handle_t *)&h->defer, on_timer_closed);
}

void swarm__http_close(swarm__http_t *h, void (*cb)(void *arg), void *arg)
{
    if (h->closing)
        return;
    swarm__http_cancel(h);
    h->closing = true;
    h->close_cb = cb;
    h->close_arg = arg;
    maybe_finish_close(h);
}
