/*
 * httpd.c: libmicrohttpd driven by the libuv loop (external epoll mode), and a small router.
 *
 * MHD runs with MHD_USE_EPOLL and no thread of its own. Its epoll fd is level-readable whenever a
 * listening or connection socket has an event, so a uv_poll on it tells us when to call MHD_run();
 * after each run a uv_timer is re-armed from MHD_get_timeout(), which covers idle time-outs and
 * the case where MHD still holds work (it then asks for a zero time-out).
 *
 * Two libmicrohttpd behaviours shape the access handler (both measured on this machine):
 *  - a response queued on the FIRST call of the access handler makes MHD close the connection
 *    after it (it cannot know the request has no body yet), which throws keep-alive away; so the
 *    first call only marks the request as seen and the response is queued on the second;
 *  - MHD must be told the application ignores SIGPIPE (MHD_OPTION_SIGPIPE_HANDLED_BY_APP), or in
 *    external mode it never uses sendfile.
 *
 * The raw request URI (with its undecoded query, which the tracker needs byte for byte: an
 * info_hash is 20 binary bytes, %00 included) is copied in the URI-log callback into a buffer
 * that belongs to the connection and is reused by every request on it, so a keep-alive
 * connection allocates nothing per request on our side.
 */
#include "core/hash.h"
#include "core/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xalloc.h"

typedef struct route {
    char *prefix;
    size_t len;
    httpd_handler_fn fn;
    void *arg;
} route_t;

struct httpd {
    uv_loop_t *loop;
    struct MHD_Daemon *d;
    uv_poll_t poll;
    uv_timer_t timer;
    route_t routes[HTTPD_MAX_ROUTES];
    size_t n_routes;
    size_t max_body;
    unsigned n_conns, max_conns;
    bool run_again;     /* a connection closed while at the limit: see pump() */
    uint16_t port;
    bool in_run;        /* inside MHD_run: closing must wait until it returns */
    bool close_pending; /* httpd_close was called from inside MHD_run */
    httpd_req_t *deferred; /* requests answered later (httpd_defer), their connections suspended */
    int open_handles;   /* uv handles not yet closed (poll, timer) */
    httpd_close_cb close_cb;
    void *close_arg;
};

/* Per connection, reused by every request on it (the MHD "socket context"). */
typedef struct conn {
    char *uri; /* the raw request URI of the current request, NUL-terminated */
    size_t uri_len, uri_cap;
    char *body;
    size_t body_len, body_cap;
    bool seen;     /* the access handler has had its first call for this request */
    /* DEFER_WAIT: its request was deferred and not answered (the connection is suspended), or its
     * answer could not be queued; DEFER_ANSWERED: the answer is queued */
    enum { DEFER_NONE, DEFER_WAIT, DEFER_ANSWERED } deferred;
    bool too_big;  /* the body went over max_body: answer 413 */
    struct sockaddr_storage peer;
} conn_t;

struct httpd_req {
    httpd_t *h; /* NULL: a deferred request whose server closed first */
    struct MHD_Connection *c;
    conn_t *cc;
    const char *method, *path, *query;
    size_t qlen;
    bool replied;
    httpd_req_t *later;        /* the handler's view: the request was deferred to this copy */
    bool is_deferred;          /* a copy made by httpd_defer, freed by its reply */
    httpd_req_t *dprev, *dnext; /* h->deferred */
    unsigned n_hdrs;
    char *hdr_name[HTTPD_MAX_REPLY_HEADERS];
    char *hdr_value[HTTPD_MAX_REPLY_HEADERS];
};

/* ---- query strings ---------------------------------------------------------------------------- */

void httpd_query_iter_init(httpd_query_iter_t *it, const char *query, size_t len)
{
    it->p = query;
    it->end = query + len;
}

bool httpd_query_next(httpd_query_iter_t *it, const char **key, size_t *klen, const char **val, size_t *vlen)
{
    while (it->p < it->end) {
        const char *start = it->p;
        const char *amp = memchr(start, '&', (size_t)(it->end - start));
        const char *stop = amp ? amp : it->end;
        it->p = amp ? amp + 1 : it->end;
        if (stop == start)
            continue; /* "a&&b" */
        const char *eq = memchr(start, '=', (size_t)(stop - start));
        *key = start;
        *klen = (size_t)((eq ? eq : stop) - start);
        *val = eq ? eq + 1 : stop;
        *vlen = (size_t)(stop - *val);
        return true;
    }
    return false;
}

int httpd_unescape(const char *s, size_t len, char *out, size_t cap, size_t *outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int hi, lo;
            if (len - i < 3 || (hi = hash_hex_digit(s[i + 1])) < 0 || (lo = hash_hex_digit(s[i + 2])) < 0)
                return -EINVAL;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (o == cap)
            return -EMSGSIZE;
        out[o++] = c;
    }
    *outlen = o;
    return 0;
}

int httpd_query_get(const char *query, size_t len, const char *key, char *out, size_t cap, size_t *outlen)
{
    httpd_query_iter_t it;
    const char *k, *v;
    size_t kl, vl, want = strlen(key);
    char kbuf[64];
    httpd_query_iter_init(&it, query, len);
    while (httpd_query_next(&it, &k, &kl, &v, &vl)) {
        size_t dl;
        /* Keys may be escaped too ("info%5Fhash"); one too long to be ours cannot match. */
        if (httpd_unescape(k, kl, kbuf, sizeof(kbuf), &dl) != 0 || dl != want || memcmp(kbuf, key, want) != 0)
            continue;
        return httpd_unescape(v, vl, out, cap, outlen);
    }
    return -ENOENT;
}

/* ---- the request view ------------------------------------------------------------------------- */

const char *httpd_req_method(const httpd_req_t *r) { return r->method; }
const char *httpd_req_path(const httpd_req_t *r) { return r->path; }

const char *httpd_req_query(const httpd_req_t *r, size_t *len)
{
    *len = r->qlen;
    return r->query;
}

const char *httpd_req_target(const httpd_req_t *r, size_t *len)
{
    *len = r->cc->uri_len;
    return r->cc->uri;
}

const char *httpd_req_header(const httpd_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, name);
}

const struct sockaddr *httpd_req_peer(const httpd_req_t *r) { return (const struct sockaddr *)&r->cc->peer; }

const void *httpd_req_body(const httpd_req_t *r, size_t *len)
{
    *len = r->cc->body_len;
    return r->cc->body_len ? r->cc->body : NULL;
}

static bool has_crlf(const char *s) { return strpbrk(s, "\r\n") != NULL; }

int httpd_reply_header(httpd_req_t *r, const char *name, const char *value)
{
    if (r->replied)
        return -EALREADY;
    if (!*name || has_crlf(name) || strchr(name, ':') || has_crlf(value))
        return -EINVAL;
    if (r->n_hdrs == HTTPD_MAX_REPLY_HEADERS)
        return -ENOSPC;
    r->hdr_name[r->n_hdrs] = xstrdup(name);
    r->hdr_value[r->n_hdrs] = xstrdup(value);
    r->n_hdrs++;
    return 0;
}

static void free_reply_headers(httpd_req_t *r)
{
    for (unsigned i = 0; i < r->n_hdrs; i++) {
        free(r->hdr_name[i]);
        free(r->hdr_value[i]);
    }
    r->n_hdrs = 0;
}

static void on_timer(uv_timer_t *t);

/* A deferred request is answered (or could not be): the connection goes back to MHD, r is freed. */
static void deferred_done(httpd_req_t *r)
{
    httpd_t *h = r->h;
    if (r->dprev)
        r->dprev->dnext = r->dnext;
    else
        h->deferred = r->dnext;
    if (r->dnext)
        r->dnext->dprev = r->dprev;
    MHD_resume_connection(r->c);
    /* In external mode MHD must run after a resume for the connection to be processed: once
     * more after this run if we are inside one, else at once from the loop. */
    if (h->in_run)
        h->run_again = true;
    else
        uv_timer_start(&h->timer, on_timer, 0, 0);
    free(r);
}

/* A deferred request whose server closed first: nothing can be sent; r is freed. */
static bool orphaned(httpd_req_t *r)
{
    if (!r->is_deferred || r->h)
        return false;
    free_reply_headers(r);
    free(r);
    return true;
}

/* Adds the headers and queues resp (which it always destroys). A deferred r is freed. */
static int queue(httpd_req_t *r, unsigned status, const char *ctype, struct MHD_Response *resp)
{
    r->replied = true;
    int rc = 0;
    if (!resp)
        rc = -EIO;
    if (rc == 0 && ctype && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES)
        rc = -EIO;
    for (unsigned i = 0; i < r->n_hdrs && rc == 0; i++)
        if (MHD_add_response_header(resp, r->hdr_name[i], r->hdr_value[i]) != MHD_YES)
            rc = -EINVAL; /* e.g. a header MHD manages itself */
    free_reply_headers(r);
    /* a suspended connection may be given its response at any time: it goes out once resumed */
    if (rc == 0 && MHD_queue_response(r->c, status, resp) != MHD_YES)
        rc = -EIO;
    if (resp)
        MHD_destroy_response(resp);
    if (r->is_deferred) {
        if (rc == 0)
            r->cc->deferred = DEFER_ANSWERED;
        deferred_done(r); /* with no response queued, on_access closes the connection */
    }
    return rc;
}

int httpd_reply(httpd_req_t *r, unsigned status, const char *ctype, const void *body, size_t len)
{
    if (orphaned(r))
        return -ECANCELED;
    if (r->replied)
        return -EALREADY;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    return queue(r, status, ctype, resp);
}

int httpd_reply_take(httpd_req_t *r, unsigned status, const char *ctype, void *body, size_t len)
{
    if (orphaned(r)) {
        free(body);
        return -ECANCELED;
    }
    if (r->replied) {
        free(body);
        return -EALREADY;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(len, body, free);
    if (!resp)
        free(body);
    return queue(r, status, ctype, resp);
}

int httpd_reply_fd(httpd_req_t *r, unsigned status, const char *ctype, int fd, uint64_t off, uint64_t len)
{
    if (orphaned(r)) {
        close(fd);
        return -ECANCELED;
    }
    if (r->replied) {
        close(fd);
        return -EALREADY;
    }
    struct MHD_Response *resp = MHD_create_response_from_fd_at_offset64(len, fd, off);
    if (!resp)
        close(fd);
    return queue(r, status, ctype, resp);
}

httpd_req_t *httpd_defer(httpd_req_t *r)
{
    if (!r || r->replied || r->is_deferred || !r->h)
        return NULL;
    httpd_t *h = r->h;
    httpd_req_t *d = xmalloc(sizeof(*d));
    *d = *r; /* the reply headers added so far move to d */
    d->is_deferred = true;
    d->later = NULL;
    d->dprev = NULL;
    d->dnext = h->deferred;
    if (h->deferred)
        h->deferred->dprev = d;
    h->deferred = d;
    r->n_hdrs = 0;
    r->replied = true; /* the handler's view is done with: answers go to d */
    r->later = d;
    r->cc->deferred = DEFER_WAIT;
    MHD_suspend_connection(r->c);
    return d;
}

/* ---- the server ------------------------------------------------------------------------------- */

/* Whether path falls under a route's prefix: equal, or followed by '/', or the prefix ends in '/'. */
static bool route_matches(const route_t *rt, const char *path)
{
    if (strncmp(path, rt->prefix, rt->len) != 0)
        return false;
    char next = path[rt->len];
    return next == '\0' || next == '/' || rt->prefix[rt->len - 1] == '/';
}

static const route_t *find_route(const httpd_t *h, const char *path)
{
    const route_t *best = NULL;
    for (size_t i = 0; i < h->n_routes; i++)
        if (route_matches(&h->routes[i], path) && (!best || h->routes[i].len > best->len))
            best = &h->routes[i];
    return best;
}

static void reply_text(httpd_req_t *r, unsigned status, const char *text)
{
    httpd_reply(r, status, "text/plain", text, strlen(text));
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **req_cls)
{
    httpd_t *h = cls;
    conn_t *cc = *req_cls; /* set by on_uri for every request */
    if (!cc)
        return MHD_NO;
    if (cc->deferred == DEFER_ANSWERED)
        return MHD_YES; /* resumed with its answer queued: nothing more to do */
    if (cc->deferred == DEFER_WAIT)
        return MHD_NO; /* resumed without a response: its reply failed; close the connection */
    if (!cc->seen) {
        cc->seen = true;
        /* A body announced over max_body is refused now, before a byte of it is read (answering on
         * the first call makes MHD close the connection after the answer, which is what a client
         * that sent a length it may not send gets); one that grows past it without a length
         * (chunked) is counted below. */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        char *end = NULL;
        errno = 0;
        unsigned long long n = cl ? strtoull(cl, &end, 10) : 0;
        if (cl && (errno || end == cl || n > h->max_body)) {
            httpd_req_t r = {.h = h, .c = c, .cc = cc, .method = method, .path = url, .query = ""};
            char msg[64];
            snprintf(msg, sizeof(msg), "request body over %zu bytes\n", h->max_body);
            reply_text(&r, MHD_HTTP_CONTENT_TOO_LARGE, msg);
            return MHD_YES;
        }
        return MHD_YES; /* the two-phase idiom: answer on the next call (see the top of the file) */
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (cc->too_big || n > h->max_body - cc->body_len) {
            cc->too_big = true; /* discard the rest; 413 once it has all arrived */
            return MHD_YES;
        }
        if (cc->body_len + n > cc->body_cap) {
            size_t cap = cc->body_cap ? cc->body_cap : 1024;
            while (cap < cc->body_len + n)
                cap *= 2;
            if (cap > h->max_body)
                cap = h->max_body;
            cc->body = xrealloc(cc->body, cap);
            cc->body_cap = cap;
        }
        memcpy(cc->body + cc->body_len, upload_data, n);
        cc->body_len += n;
        return MHD_YES;
    }

    httpd_req_t r = {.h = h, .c = c, .cc = cc, .method = method, .path = url};
    const char *q = memchr(cc->uri, '?', cc->uri_len);
    r.query = q ? q + 1 : "";
    r.qlen = q ? cc->uri_len - (size_t)(q + 1 - cc->uri) : 0;
    if (cc->too_big) {
        char msg[64];
        snprintf(msg, sizeof(msg), "request body over %zu bytes\n", h->max_body);
        reply_text(&r, MHD_HTTP_CONTENT_TOO_LARGE, msg);
        return MHD_YES;
    }
    const route_t *rt = find_route(h, url);
    if (!rt) {
        reply_text(&r, MHD_HTTP_NOT_FOUND, "not found\n");
    } else {
        rt->fn(&r, rt->arg);
        if (!r.replied && !r.later) {
            log_error("httpd: handler for %s did not reply to %s %s", rt->prefix, method, url);
            free_reply_headers(&r);
            reply_text(&r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error\n");
        }
    }
    free_reply_headers(&r);
    return MHD_YES;
}

/* The URI-log callback runs once per request, before its headers are parsed: it is where a
 * request starts, so it resets the connection's per-request state. Its return value becomes the
 * access handler's *req_cls. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_t *cc = ci ? ci->socket_context : NULL;
    if (!cc)
        return NULL;
    size_t n = strlen(uri); /* bounded by the connection's memory limit */
    if (n + 1 > cc->uri_cap) {
        cc->uri_cap = n + 1 < 256 ? 256 : n + 1;
        free(cc->uri);
        cc->uri = xmalloc(cc->uri_cap);
    }
    memcpy(cc->uri, uri, n + 1);
    cc->uri_len = n;
    cc->seen = false;
    cc->deferred = DEFER_NONE;
    cc->too_big = false;
    cc->body_len = 0;
    if (cc->body_cap > 4096) { /* a large body's buffer is not kept for the connection's life */
        free(cc->body);
        cc->body = NULL;
        cc->body_cap = 0;
    }
    return cc;
}

static void on_conn(void *cls, struct MHD_Connection *c, void **socket_context,
                    enum MHD_ConnectionNotificationCode toe)
{
    httpd_t *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        h->n_conns++;
        conn_t *cc = xcalloc(1, sizeof(*cc));
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
            size_t n = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
            memcpy(&cc->peer, ci->client_addr, n);
        }
        *socket_context = cc;
    } else if (*socket_context) {
        if (h->n_conns-- >= h->max_conns)
            h->run_again = true;
        conn_t *cc = *socket_context;
        free(cc->uri);
        free(cc->body);
        free(cc);
        *socket_context = NULL;
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    /* Mostly the misdeeds of clients (resets, bad requests): debug, not warnings. */
    log_debug("httpd: %s", msg);
}

static void on_handle_closed(uv_handle_t *handle)
{
    httpd_t *h = handle->data;
    if (--h->open_handles > 0)
        return;
    httpd_close_cb cb = h->close_cb;
    void *arg = h->close_arg;
    for (size_t i = 0; i < h->n_routes; i++)
        free(h->routes[i].prefix);
    free(h);
    if (cb)
        cb(arg);
}

static void do_close(httpd_t *h)
{
    /* MHD must not be stopped with suspended connections: resume them (they are closed with the
     * rest) and cut their requests loose; a later reply on one frees it and returns -ECANCELED. */
    httpd_req_t *d;
    while ((d = h->deferred)) {
        h->deferred = d->dnext;
        MHD_resume_connection(d->c);
        d->h = NULL;
        d->c = NULL;
        d->cc = NULL;
        d->dprev = d->dnext = NULL;
    }
    /* Close the poll handle while MHD's epoll fd is still open (uv_close unregisters it), then
     * stop MHD, which closes the fd and every connection. */
    uv_close((uv_handle_t *)&h->poll, on_handle_closed);
    uv_close((uv_handle_t *)&h->timer, on_handle_closed);
    MHD_stop_daemon(h->d);
    h->d = NULL;
}


static void pump(httpd_t *h)
{
    h->in_run = true;
    MHD_run(h->d);
    /* At the connection limit MHD takes its listening socket out of its epoll set, and puts it
     * back only at the start of a later MHD_run; if no other event comes, clients waiting in the
     * backlog would wait forever. So a run that freed a slot at the limit is followed by one more. */
    while (h->run_again && !h->close_pending) {
        h->run_again = false;
        MHD_run(h->d);
    }
    h->in_run = false;
    if (h->close_pending) {
        do_close(h);
        return;
    }
    MHD_UNSIGNED_LONG_LONG ms;
    if (MHD_get_timeout(h->d, &ms) == MHD_YES)
        uv_timer_start(&h->timer, on_timer, ms, 0);
    else
        uv_timer_stop(&h->timer);
}

static void on_timer(uv_timer_t *t) { pump(t->data); }

static void on_poll(uv_poll_t *p, int status, int events)
{
    if (status < 0)
        log_warn("httpd: poll: %s", uv_strerror(status));
    pump(p->data);
}

static int parse_addr(const char *addr, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        return 0;
    }
    if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        return 0;
    }
    return -EINVAL;
}

int httpd_new(uv_loop_t *loop, const httpd_opts_t *o, httpd_t **out)
{
    struct sockaddr_storage ss;
    *out = NULL;
    if (parse_addr(o->addr ? o->addr : "0.0.0.0", o->port, &ss) != 0)
        return -EINVAL;
    /* MHD is told the application handles SIGPIPE (that is what lets it use sendfile); a write to
     * a socket the client closed must then not kill the process. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);

    httpd_t *h = xcalloc(1, sizeof(*h));
    h->loop = loop;
    h->max_body = o->max_body ? o->max_body : HTTPD_DEFAULT_MAX_BODY;
    h->max_conns = o->max_conns ? o->max_conns : HTTPD_DEFAULT_MAX_CONNS;
    unsigned flags = MHD_USE_EPOLL | MHD_USE_TURBO | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    errno = 0;
    h->d = MHD_start_daemon(
        flags, o->port, NULL, NULL, on_access, h,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, h->max_conns,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(o->timeout_s ? o->timeout_s : HTTPD_DEFAULT_TIMEOUT_S),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(o->conn_memory ? o->conn_memory : HTTPD_DEFAULT_CONN_MEMORY),
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
        MHD_OPTION_NOTIFY_CONNECTION, on_conn, h,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, h,
        MHD_OPTION_SIGPIPE_HANDLED_BY_APP, (int)1,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
        MHD_OPTION_END);
    if (!h->d) {
        int err = errno ? -errno : -EIO;
        free(h);
        return err;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *pi = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    int rc = -EIO;
    if (!di || !pi || (rc = uv_poll_init(loop, &h->poll, di->epoll_fd)) != 0) {
        MHD_stop_daemon(h->d);
        free(h);
        return rc;
    }
    h->port = pi->port;
    uv_timer_init(loop, &h->timer);
    h->poll.data = h->timer.data = h;
    h->open_handles = 2;
    uv_poll_start(&h->poll, UV_READABLE, on_poll);
    *out = h;
    return 0;
}

uint16_t httpd_port(const httpd_t *h) { return h->port; }

int httpd_route(httpd_t *h, const char *prefix, httpd_handler_fn fn, void *arg)
{
    if (!prefix || prefix[0] != '/' || !fn)
        return -EINVAL;
    for (size_t i = 0; i < h->n_routes; i++)
        if (!strcmp(h->routes[i].prefix, prefix))
            return -EEXIST;
    if (h->n_routes == HTTPD_MAX_ROUTES)
        return -ENOSPC;
    route_t *rt = &h->routes[h->n_routes++];
    rt->prefix = xstrdup(prefix);
    rt->len = strlen(prefix);
    rt->fn = fn;
    rt->arg = arg;
    return 0;
}

int httpd_unroute(httpd_t *h, const char *prefix)
{
    for (size_t i = 0; i < h->n_routes; i++) {
        if (strcmp(h->routes[i].prefix, prefix) != 0)
            continue;
        free(h->routes[i].prefix);
        h->routes[i] = h->routes[--h->n_routes];
        return 0;
    }
    return -ENOENT;
}

void httpd_close(httpd_t *h, httpd_close_cb cb, void *arg)
{
    if (!h || h->close_pending || !h->d)
        return;
    h->close_cb = cb;
    h->close_arg = arg;
    if (h->in_run)
        h->close_pending = true;
    else
        do_close(h);
}
