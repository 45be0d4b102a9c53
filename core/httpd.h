/**
 * @file httpd.h  One HTTP/1.1 server on the libuv loop, shared by the tracker and the peer API.
 *
 * libmicrohttpd runs in external-epoll mode with no thread of its own: its epoll fd is watched by
 * a uv_poll, MHD_run() is called when it is readable, and a uv_timer is re-armed from
 * MHD_get_timeout() (connection time-outs, and the "call again now" MHD asks for when a
 * connection still has buffered data). Connections are kept alive (HTTP/1.1).
 *
 * Handlers are registered by path prefix. A handler runs on the loop thread and must answer
 * before it returns, exactly once, with one of the httpd_reply* functions (a handler that does not
 * answer gets a 500 sent for it and an error logged), or hand the request over to httpd_defer and
 * answer later (after blocking work done in the thread pool, say). The request view it receives
 * is valid for the duration of the call only.
 *
 * Bounds (all overridable in httpd_opts_t): connections at once, connections at once from one host
 * (more are closed as soon as they are accepted; loopback is exempt unless asked), idle time-out
 * per connection, time for a request to arrive whole (a slow client is cut off however steadily it
 * trickles), memory per connection (which bounds the request line and headers: a longer request
 * gets 431 or 414 from libmicrohttpd), request body size (a larger body gets 413 and the connection
 * is closed; one whose Content-Length says so gets it before a byte of it is read). Each refusal is
 * counted (httpd_stats) and logged at most once a second (HTTPD_LOG_EVERY_MS) for each kind.
 *
 * Errors are 0 or -errno.
 */
#ifndef PREON_CORE_HTTPD_H
#define PREON_CORE_HTTPD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#ifndef HTTPD_DEFAULT_MAX_CONNS
#define HTTPD_DEFAULT_MAX_CONNS 1024
#endif
#ifndef HTTPD_DEFAULT_TIMEOUT_S
#define HTTPD_DEFAULT_TIMEOUT_S 60
#endif
/** Memory libmicrohttpd may use per connection: request line, headers and its buffers. */
#ifndef HTTPD_DEFAULT_CONN_MEMORY
#define HTTPD_DEFAULT_CONN_MEMORY (16 * 1024)
#endif
#ifndef HTTPD_DEFAULT_MAX_BODY
#define HTTPD_DEFAULT_MAX_BODY (64 * 1024)
#endif
/** Connections at once from one host: an IPv4 address, or an IPv6 /64 (one host often has a whole
 * /64). Loopback clients are exempt unless httpd_opts_t.limit_loopback. */
#ifndef HTTPD_DEFAULT_MAX_HOST_CONNS
#define HTTPD_DEFAULT_MAX_HOST_CONNS 64
#endif
/** Time a request has to arrive whole (request line, headers and body), from the connection's
 * start or, on a kept-alive connection, from its first byte (seen within a second). */
#ifndef HTTPD_DEFAULT_REQUEST_TIMEOUT_S
#define HTTPD_DEFAULT_REQUEST_TIMEOUT_S 20
#endif
/** Most request_timeout_s / timeout_s may be (a day). */
#define HTTPD_MAX_TIMEOUT_S 86400
/** At most one log line per kind of refusal in this time (the others are counted in the next). */
#ifndef HTTPD_LOG_EVERY_MS
#define HTTPD_LOG_EVERY_MS 1000
#endif
/** Hash buckets of the per-host connection counts. */
#ifndef HTTPD_HOST_BUCKETS
#define HTTPD_HOST_BUCKETS 256
#endif
#ifndef HTTPD_MAX_ROUTES
#define HTTPD_MAX_ROUTES 16
#endif
/** Extra response headers a handler may add to one reply. */
#ifndef HTTPD_MAX_REPLY_HEADERS
#define HTTPD_MAX_REPLY_HEADERS 8
#endif

typedef struct httpd httpd_t;
typedef struct httpd_req httpd_req_t;

typedef struct httpd_opts {
    const char *addr;    /**< IPv4 or IPv6 literal to listen on; NULL = "0.0.0.0" */
    uint16_t port;       /**< 0 = an ephemeral port (httpd_port says which) */
    unsigned max_conns;  /**< 0 = HTTPD_DEFAULT_MAX_CONNS */
    unsigned timeout_s;  /**< idle connection time-out; 0 = HTTPD_DEFAULT_TIMEOUT_S */
    size_t conn_memory;  /**< 0 = HTTPD_DEFAULT_CONN_MEMORY */
    size_t max_body;     /**< 0 = HTTPD_DEFAULT_MAX_BODY */
    unsigned max_host_conns;    /**< 0 = HTTPD_DEFAULT_MAX_HOST_CONNS */
    bool limit_loopback;        /**< apply max_host_conns to loopback clients too (default: exempt) */
    unsigned request_timeout_s; /**< 0 = HTTPD_DEFAULT_REQUEST_TIMEOUT_S */
} httpd_opts_t;

/** Totals since httpd_new. */
typedef struct httpd_stats {
    unsigned conns;            /**< connections open now */
    uint64_t refused_per_host; /**< connections closed at once: their host had max_host_conns open */
    uint64_t timed_out;        /**< connections closed: a request did not arrive whole in request_timeout_s */
    uint64_t too_large;        /**< requests answered 413, 414 or 431 (body, URI or headers over their limit) */
} httpd_stats_t;

/** Called on the loop thread for a request whose path matches the route. */
typedef void (*httpd_handler_fn)(httpd_req_t *req, void *arg);
typedef void (*httpd_close_cb)(void *arg);

/**
 * Starts listening. -EINVAL for a bad address or option, -EADDRINUSE (or another -errno) if the
 * socket cannot be bound. *out is the caller's until httpd_close.
 */
int httpd_new(uv_loop_t *loop, const httpd_opts_t *opts, httpd_t **out);
/** The port actually bound (useful with port 0). */
uint16_t httpd_port(const httpd_t *h);
/** The server's counters (what a peer's `peer` file shows). */
void httpd_stats(const httpd_t *h, httpd_stats_t *out);
/**
 * Routes requests whose path is `prefix`, or starts with `prefix` followed by '/' (or prefix
 * itself ends with '/'), to fn. The longest matching prefix wins; no match gets 404. prefix is
 * copied. -EINVAL (prefix not starting with '/'), -EEXIST, -ENOSPC (HTTPD_MAX_ROUTES).
 */
int httpd_route(httpd_t *h, const char *prefix, httpd_handler_fn fn, void *arg);
/** Removes the route registered under exactly this prefix. 0 or -ENOENT. */
int httpd_unroute(httpd_t *h, const char *prefix);
/**
 * Stops listening, drops every connection and frees h; cb (may be NULL) runs from the loop once
 * the handles are closed, never from inside this call. May be called from a handler (it then
 * takes effect after the current request).
 */
void httpd_close(httpd_t *h, httpd_close_cb cb, void *arg);

/* ---- the request view: valid during the handler call only ---------------------------------- */

const char *httpd_req_method(const httpd_req_t *r);
/** The path, percent-decoded by libmicrohttpd, without the query. */
const char *httpd_req_path(const httpd_req_t *r);
/** The raw query string after '?', not decoded and not NUL-terminated ("" and 0 if none). */
const char *httpd_req_query(const httpd_req_t *r, size_t *len);
/** The request target exactly as sent (path and query, not decoded, not NUL-terminated). */
const char *httpd_req_target(const httpd_req_t *r, size_t *len);
/** A request header (case-insensitive name), or NULL. */
const char *httpd_req_header(const httpd_req_t *r, const char *name);
/** The client's address (struct sockaddr_in or sockaddr_in6). */
const struct sockaddr *httpd_req_peer(const httpd_req_t *r);
/** The request body (at most max_body bytes), or NULL and 0 if there was none. */
const void *httpd_req_body(const httpd_req_t *r, size_t *len);

/** Adds a response header to the reply about to be made (copied). -ENOSPC past
 * HTTPD_MAX_REPLY_HEADERS, -EINVAL for a name or value with CR or LF, -EALREADY after a reply. */
int httpd_reply_header(httpd_req_t *r, const char *name, const char *value);
/** Replies with a copy of body. ctype may be NULL (no Content-Type). -EALREADY if already
 * replied, -EIO if libmicrohttpd refused (the connection is then closed), -ECANCELED for a
 * deferred request whose server closed first (see httpd_defer). */
int httpd_reply(httpd_req_t *r, unsigned status, const char *ctype, const void *body, size_t len);
/** As httpd_reply, taking a malloc'ed body that is freed once sent (also on error). */
int httpd_reply_take(httpd_req_t *r, unsigned status, const char *ctype, void *body, size_t len);
/** Replies with len bytes of fd from off (sendfile where possible). Takes fd (closed once sent,
 * also on error). */
int httpd_reply_fd(httpd_req_t *r, unsigned status, const char *ctype, int fd, uint64_t off, uint64_t len);

/**
 * Defers the answer: called in a handler, returns a request that outlives the call, to be answered
 * later (on the loop thread) with exactly one httpd_reply* on it, which frees it. Reply headers
 * added before move to it. Meanwhile the connection is suspended (libmicrohttpd's
 * MHD_suspend_connection): nothing else is read from it, it does not time out, and a client that
 * goes away is noticed only when the answer is sent (which then fails quietly inside the server).
 * It still counts against max_conns. Its view (method, path, query, headers, peer) stays valid
 * until the reply or httpd_close, whichever comes first. If httpd_close comes first, the
 * connection is dropped, and the reply on it frees it and returns -ECANCELED (sending nothing):
 * the owner must still reply once, from any loop callback, even after the server is freed.
 * NULL if r was answered or deferred already. The handler's r then counts as answered.
 */
httpd_req_t *httpd_defer(httpd_req_t *r);

/* ---- query strings (pure functions, no server needed) --------------------------------------- */

/** Iterates over the key=value pairs of a raw query string, split on '&' ('=' optional). */
typedef struct httpd_query_iter {
    const char *p, *end;
} httpd_query_iter_t;

void httpd_query_iter_init(httpd_query_iter_t *it, const char *query, size_t len);
/** The next pair, raw (still percent-encoded); empty pairs ("a&&b") are skipped. false at the end. */
bool httpd_query_next(httpd_query_iter_t *it, const char **key, size_t *klen, const char **val, size_t *vlen);
/**
 * Percent-decodes s[0..len) into out (binary-safe: %00 gives a NUL byte). '+' stays '+' (as
 * opentracker and BitTorrent clients treat it; they escape a real '+' as %2B). 0, -EINVAL for a
 * '%' not followed by two hex digits, -EMSGSIZE if the result would exceed cap.
 */
int httpd_unescape(const char *s, size_t len, char *out, size_t cap, size_t *outlen);
/** The first value of key in query, decoded into out as httpd_unescape does. 0, -ENOENT,
 * -EINVAL, -EMSGSIZE. */
int httpd_query_get(const char *query, size_t len, const char *key, char *out, size_t cap, size_t *outlen);

#endif
