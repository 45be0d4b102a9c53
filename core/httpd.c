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
 *
 * Slow and flooding clients (docs/reliability.md, "Slow and flooding peers"):
 *  - connections at once per host are counted here (a small hash table of the hosts with open
 *    connections) and the accept-policy callback refuses one over max_host_conns: MHD closes it
 *    before reading a byte. MHD_OPTION_PER_IP_CONNECTION_LIMIT would do the same, but it cannot
 *    exempt loopback (every peer of a test shares 127.0.0.1), group an IPv6 /64, or be counted;
 *  - MHD's own time-out is an idle one: a client that sends a byte every few seconds keeps its
 *    connection for ever (slowloris). So every connection has a phase: REQ (a request is arriving:
 *    since the connection opened, or since its first byte on a kept-alive connection), BUSY (the
 *    request is whole: the handler and the answer; MHD's idle time-out rules) and IDLE (kept alive
 *    between requests). A one-second sweep, running while connections are open, cuts a connection
 *    whose request has been arriving for more than request_timeout_s with shutdown(2): MHD sees the
 *    end of the stream and closes it the ordinary way (it has no call to close a connection). An
 *    IDLE connection's first new byte is seen by the sweep in the kernel's count of bytes received
 *    (TCP_INFO), so a kept-alive connection that sends nothing is left to the idle time-out;
 *  - requests over a size limit are answered by MHD itself (414, 431) or by on_access (413); MHD's
 *    are counted from its log line "Error processing request (HTTP response code is N ...", the
 *    one place it reports them.
 */
#include "core/hash.h"
#include "core/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xalloc.h"

/* A host with open connections: an IPv4 address or an IPv6 /64 (key), and how many. There is an
 * entry only while a connection of its host is open, so at most max_conns of them. */
typedef struct host {
    uint8_t key[8];
    uint8_t len;
    unsigned conns;
    struct host *next;
} host_t;

/* One kind of refusal, logged at most once every HTTPD_LOG_EVERY_MS: held counts those not yet logged. */
typedef struct lognote {
    bool logged;
    uint64_t last_ms, held;
} lognote_t;

typedef struct conn conn_t;

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
    int open_handles;   /* uv handles not yet closed (poll, timer, sweep) */
    httpd_close_cb close_cb;
    void *close_arg;
    uv_timer_t sweep;   /* every second while connections are open: request deadlines */
    unsigned max_host_conns;
    size_t conn_memory;
    bool limit_loopback;
    uint64_t req_timeout_ms;
    host_t *hosts[HTTPD_HOST_BUCKETS];
    conn_t *conns;      /* every open connection */
    httpd_stats_t st;
    lognote_t log_refused, log_slow, log_large;
};

/* Per connection, reused by every request on it (the MHD "socket context"). */
struct conn {
    struct MHD_Connection *c;
    conn_t *prev, *next; /* h->conns */
    host_t *host;        /* NULL: not counted (loopback, exempt) */
    /* see the top of the file: REQ since since_ms; IDLE with rx_mark bytes received so far; CUT:
     * shut down by the sweep, closing */
    enum { PH_REQ, PH_BUSY, PH_IDLE, PH_CUT } phase;
    uint64_t since_ms, rx_mark;
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
};

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

/* ---- slow and flooding clients ---------------------------------------------------------------- */

/* The host a client address counts against (an IPv4 address, an IPv6 /64); false for another family. */
static bool host_key(const struct sockaddr *sa, uint8_t key[8], uint8_t *len, bool *loopback)
{
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        memcpy(key, &s4->sin_addr, 4);
        *len = 4;
        *loopback = key[0] == 127;
        return true;
    }
    if (sa && sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(key, a->s6_addr + 12, 4);
            *len = 4;
            *loopback = key[0] == 127;
        } else {
            memcpy(key, a->s6_addr, 8);
            *len = 8;
            *loopback = IN6_IS_ADDR_LOOPBACK(a);
        }
        return true;
    }
    return false;
}

static host_t **host_slot(httpd_t *h, const uint8_t *key, uint8_t len)
{
    uint32_t x = 2166136261u; /* FNV-1a */
    for (uint8_t i = 0; i < len; i++)
        x = (x ^ key[i]) * 16777619u;
    host_t **pp = &h->hosts[x % HTTPD_HOST_BUCKETS];
    while (*pp && ((*pp)->len != len || memcmp((*pp)->key, key, len) != 0))
        pp = &(*pp)->next;
    return pp;
}

/* The host entry of key: made if create (with no connections), else NULL if it has none open. */
static host_t *host_find(httpd_t *h, const uint8_t *key, uint8_t len, bool create)
{
    host_t **pp = host_slot(h, key, len);
    if (!*pp && create) {
        *pp = xcalloc(1, sizeof(**pp));
        memcpy((*pp)->key, key, len);
        (*pp)->len = len;
    }
    return *pp;
}

/* One connection of e closed: the entry goes with its last one. */
static void host_put(httpd_t *h, host_t *e)
{
    if (--e->conns > 0)
        return;
    host_t **pp = host_slot(h, e->key, e->len);
    *pp = e->next;
    free(e);
}

static void addr_text(const struct sockaddr *sa, char *out, size_t cap)
{
    const void *a = sa->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                                              : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
    if (!inet_ntop(sa->sa_family, a, out, (socklen_t)cap))
        snprintf(out, cap, "?");
}

/* Counts one event of its kind; true when a log line is due (n->held says how many it stands for;
 * the caller zeroes it). */
static bool note_due(httpd_t *h, lognote_t *n)
{
    uint64_t now = uv_now(h->loop);
    n->held++;
    if (n->logged && now - n->last_ms < HTTPD_LOG_EVERY_MS)
        return false;
    n->logged = true;
    n->last_ms = now;
    return true;
}

/* MHD's accept policy: a host over max_host_conns is refused (MHD closes the socket at once). */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *sa, socklen_t salen)
{
    httpd_t *h = cls;
    uint8_t key[8], len;
    bool lo;
    (void)salen;
    if (!host_key(sa, key, &len, &lo) || (lo && !h->limit_loopback))
        return MHD_YES;
    const host_t *e = host_find(h, key, len, false);
    if (!e || e->conns < h->max_host_conns)
        return MHD_YES;
    h->st.refused_per_host++;
    if (note_due(h, &h->log_refused)) {
        char a[INET6_ADDRSTRLEN];
        addr_text(sa, a, sizeof(a));
        log_warn("httpd: refused %llu connection(s) from a host with %u open already, the last from %s%s "
                 "(the limit per host: --host-conns)", (unsigned long long)h->log_refused.held, e->conns, a,
                 len == 8 ? " (its /64)" : "");
        h->log_refused.held = 0;
    }
    return MHD_NO;
}

/* The kernel's struct tcp_info goes on past glibc's, which stops at tcpi_total_retrans: its next
 * fields in the kernel's order (linux/tcp.h cannot be included beside netinet/tcp.h, which
 * microhttpd.h brings in). tcpi_bytes_received is there since Linux 4.1; an older kernel fills
 * less, and says so in the length. */
typedef struct tcp_info_ext {
    struct tcp_info base;
    uint64_t pacing_rate, max_pacing_rate, bytes_acked, bytes_received;
} tcp_info_ext_t;
_Static_assert(sizeof(struct tcp_info) % 8 == 0, "glibc's struct tcp_info ends where the kernel's u64s start");

/* Bytes the kernel has received on cc's socket so far; false if it cannot say. */
static bool conn_rx(const conn_t *cc, uint64_t *out)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(cc->c, MHD_CONNECTION_INFO_CONNECTION_FD);
    tcp_info_ext_t ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    if (!ci || getsockopt(ci->connect_fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 || len < sizeof(ti))
        return false;
    *out = ti.bytes_received;
    return true;
}

/* A request was answered: the connection is kept alive, idle until its next byte. */
static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode toe)
{
    conn_t *cc = *req_cls;
    (void)cls, (void)c, (void)toe;
    if (!cc || cc->phase == PH_CUT)
        return;
    cc->phase = PH_IDLE;
    if (!conn_rx(cc, &cc->rx_mark))
        cc->rx_mark = UINT64_MAX; /* cannot tell: left to the idle time-out */
}

/* Every second while connections are open: cut those whose request is late (see the top). */
static void on_sweep(uv_timer_t *t)
{
    httpd_t *h = t->data;
    uint64_t now = uv_now(h->loop), rx;
    for (conn_t *cc = h->conns; cc; cc = cc->next) {
        if (cc->phase == PH_IDLE && conn_rx(cc, &rx) && rx > cc->rx_mark) {
            cc->phase = PH_REQ;
            cc->since_ms = now;
        }
        if (cc->phase != PH_REQ || now - cc->since_ms < h->req_timeout_ms)
            continue;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(cc->c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci)
            continue;
        cc->phase = PH_CUT;
        shutdown(ci->connect_fd, SHUT_RDWR); /* MHD reads the end of the stream and closes it */
        h->st.timed_out++;
        if (note_due(h, &h->log_slow)) {
            char a[INET6_ADDRSTRLEN];
            addr_text((const struct sockaddr *)&cc->peer, a, sizeof(a));
            log_warn("httpd: cut %llu connection(s) whose request did not arrive whole in %llu s, the last from %s "
                     "(--request-timeout)", (unsigned long long)h->log_slow.held,
                     (unsigned long long)(h->req_timeout_ms / 1000), a);
            h->log_slow.held = 0;
        }
    }
}

/* A request answered 413, 414 or 431 (by on_access, or by MHD itself: see on_mhd_log). */
static void count_too_large(httpd_t *h, unsigned code)
{
    h->st.too_large++;
    if (note_due(h, &h->log_large)) {
        log_warn("httpd: refused %llu request(s) over a size limit, the last with HTTP %u (the request line and "
                 "headers must fit in %zu KiB, a body in %zu KiB)", (unsigned long long)h->log_large.held, code,
                 h->conn_memory / 1024, h->max_body / 1024);
        h->log_large.held = 0;
    }
}

void httpd_stats(const httpd_t *h, httpd_stats_t *out)
{
    *out = h->st;
    out->conns = h->n_conns;
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
            cc->phase = PH_BUSY;
            count_too_large(h, MHD_HTTP_CONTENT_TOO_LARGE);
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

    if (cc->phase != PH_CUT)
        cc->phase = PH_BUSY; /* the request is whole: its deadline is over */
    httpd_req_t r = {.h = h, .c = c, .cc = cc, .method = method, .path = url};
    const char *q = memchr(cc->uri, '?', cc->uri_len);
    r.query = q ? q + 1 : "";
    r.qlen = q ? cc->uri_len - (size_t)(q + 1 - cc->uri) : 0;
    if (cc->too_big) {
        char msg[64];
        snprintf(msg, sizeof(msg), "request body over %zu bytes\n", h->max_body);
        count_too_large(h, MHD_HTTP_CONTENT_TOO_LARGE);
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
    if (cc->phase == PH_IDLE) { /* the sweep had not seen its first byte yet */
        cc->phase = PH_REQ;
        cc->since_ms = uv_now(((httpd_t *)cls)->loop);
    }
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
        cc->c = c;
        cc->phase = PH_REQ;
        cc->since_ms = uv_now(h->loop);
        cc->next = h->conns;
        if (h->conns)
            h->conns->prev = cc;
        h->conns = cc;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        uint8_t key[8], len;
        bool lo;
        if (ci && ci->client_addr) {
            size_t n = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
            memcpy(&cc->peer, ci->client_addr, n);
            if (host_key(ci->client_addr, key, &len, &lo) && (!lo || h->limit_loopback)) {
                cc->host = host_find(h, key, len, true);
                cc->host->conns++;
            }
        }
        *socket_context = cc;
        if (!uv_is_active((uv_handle_t *)&h->sweep) && !uv_is_closing((uv_handle_t *)&h->sweep))
            uv_timer_start(&h->sweep, on_sweep, 1000, 1000);
    } else if (*socket_context) {
        if (h->n_conns-- >= h->max_conns)
            h->run_again = true;
        conn_t *cc = *socket_context;
        if (cc->prev)
            cc->prev->next = cc->next;
        else
            h->conns = cc->next;
        if (cc->next)
            cc->next->prev = cc->prev;
        if (cc->host)
            host_put(h, cc->host);
        if (h->n_conns == 0)
            uv_timer_stop(&h->sweep);
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
    /* Mostly the misdeeds of clients (resets, bad requests): debug, not warnings. Those over a size
     * limit are counted (and logged once a second): MHD answers them itself and says so only here. */
    unsigned code;
    if (sscanf(msg, "Error processing request (HTTP response code is %u", &code) == 1 &&
        (code == MHD_HTTP_CONTENT_TOO_LARGE || code == MHD_HTTP_URI_TOO_LONG ||
         code == MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE))
        count_too_large(cls, code);
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
    uv_close((uv_handle_t *)&h->sweep, on_handle_closed);
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

    if (o->request_timeout_s > HTTPD_MAX_TIMEOUT_S || o->timeout_s > HTTPD_MAX_TIMEOUT_S)
        return -EINVAL;
    httpd_t *h = xcalloc(1, sizeof(*h));
    h->loop = loop;
    h->max_body = o->max_body ? o->max_body : HTTPD_DEFAULT_MAX_BODY;
    h->max_conns = o->max_conns ? o->max_conns : HTTPD_DEFAULT_MAX_CONNS;
    h->max_host_conns = o->max_host_conns ? o->max_host_conns : HTTPD_DEFAULT_MAX_HOST_CONNS;
    h->limit_loopback = o->limit_loopback;
    h->conn_memory = o->conn_memory ? o->conn_memory : HTTPD_DEFAULT_CONN_MEMORY;
    h->req_timeout_ms = 1000ull * (o->request_timeout_s ? o->request_timeout_s : HTTPD_DEFAULT_REQUEST_TIMEOUT_S);
    unsigned flags = MHD_USE_EPOLL | MHD_USE_TURBO | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    errno = 0;
    h->d = MHD_start_daemon(
        flags, o->port, on_accept, h, on_access, h,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, h->max_conns,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(o->timeout_s ? o->timeout_s : HTTPD_DEFAULT_TIMEOUT_S),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, h->conn_memory,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
        MHD_OPTION_NOTIFY_CONNECTION, on_conn, h,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, h,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
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
    uv_timer_init(loop, &h->sweep);
    h->poll.data = h->timer.data = h->sweep.data = h;
    h->open_handles = 3;
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
