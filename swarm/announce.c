/*
 * announce.c: the BitTorrent tracker client. Each swarm we are in (torrent_t) is announced through
 * the fetcher's fetch_get, on a schedule kept here: one uv_timer for the whole client, re-armed
 * for the earliest due swarm, so a thousand swarms cost one handle. An answer goes through
 * announce_parse_reply (untrusted input: bencode with tight limits, every type and length
 * checked), then our own address is filtered out and the swarm's callback gets the peers.
 *
 * Lifetimes: a request in flight is a call_t that points back at its client and swarm. Removing a
 * swarm or closing the client clears those pointers, so the answer of an abandoned request is
 * dropped when it comes (or ends with -ECANCELED when the fetcher closes): nothing waits for the
 * tracker to close. A swarm whose callback is running when it is removed is freed only after the
 * callback returns; the client itself is freed from its timer's close callback.
 *
 * Our own address: the tracker never returns the asker itself, but it may return us under another
 * swarm entry (announced from another interface, or through NAT). A peer is taken for ourselves
 * when its port is ours and its address is loopback, one of our interfaces' IPv4 addresses, or
 * the "external ip" the tracker saw (BEP 24).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bencode.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "swarm/announce.h"

/* Decoder limits for an answer: a dictionary of a few keys whose "peers" is at most a list of
 * small dictionaries (4 nodes each: ip key/value, port key/value, plus the "peer id" pair). */
#define REPLY_MAX_DEPTH 4
#define REPLY_MAX_NODES (64 + 8 * ANNOUNCE_MAX_PEERS)
#define MAX_LOCAL_ADDRS 64

typedef struct announce announce_t;

typedef struct torrent {
    struct torrent *next;
    uint8_t ih[ANNOUNCE_HASH_LEN];
    bool seeder;
    announce_peers_cb cb;
    void *arg;
    uint64_t due_ms;      /* when to announce next (uv_now clock) */
    uint32_t interval_ms; /* the current interval */
    bool inflight;        /* an announce is under way */
    bool again;           /* announce_now while in flight: go again when it is answered */
    bool started_ok;      /* an answer to "started" came: later announces carry no event */
    bool failing;         /* the last announce failed (logged at warn level once) */
    uint32_t retry_ms;    /* after a failure: the next try comes this soon (doubling, at most the interval) */
    bool in_cb, dead;     /* dead: removed during its own callback; freed when it returns */
} torrent_t;

typedef struct call {
    struct call *prev, *next;
    announce_t *a; /* NULL once the client closed */
    torrent_t *t;  /* NULL for "stopped", or once the swarm was removed */
} call_t;

struct announce {
    uv_loop_t *loop;
    fetch_t *fetch;
    char *url;
    uint8_t peer_id[ANNOUNCE_HASH_LEN];
    uint16_t port;
    uint32_t interval_ms; /* the override, 0 = the tracker's */
    uv_timer_t timer;
    torrent_t *torrents;
    size_t ntorrents;
    call_t *calls;
    uint8_t local[MAX_LOCAL_ADDRS][4];
    size_t nlocal;
    bool closing;
    announce_close_cb close_cb;
    void *close_arg;
};

/* ---- the answer parser (pure) ----------------------------------------------------------------- */

static int parse_peer_dict(const bencode_doc_t *d, const bencode_node_t *e, announce_reply_t *out, char *why,
                           size_t whylen)
{
    if (e->type != BENCODE_DICT) {
        why_printf(why, whylen, "a peer is not a dictionary");
        return -EINVAL;
    }
    const bencode_node_t *ip = bencode_dict_cget(d, e, "ip");
    const bencode_node_t *port = bencode_dict_cget(d, e, "port");
    if (!ip || ip->type != BENCODE_STR || !port || port->type != BENCODE_INT) {
        why_printf(why, whylen, "a peer lacks a string \"ip\" or an integer \"port\"");
        return -EINVAL;
    }
    if (port->i < 0 || port->i > 65535) {
        why_printf(why, whylen, "a peer's port %lld is out of range", (long long)port->i);
        return -EINVAL;
    }
    char buf[INET_ADDRSTRLEN];
    announce_peer_t p;
    /* a host name or an IPv6 address is valid BEP 3 but of no use to us: skip it */
    if (ip->len >= sizeof(buf) || memchr(ip->s, '\0', ip->len))
        return 0;
    memcpy(buf, ip->s, ip->len);
    buf[ip->len] = '\0';
    if (inet_pton(AF_INET, buf, p.ip) != 1 || port->i == 0)
        return 0;
    p.port = (uint16_t)port->i;
    if (out->npeers < ANNOUNCE_MAX_PEERS)
        out->peers[out->npeers++] = p;
    return 0;
}

int announce_parse_reply(const char *body, size_t len, announce_reply_t *out, char *why, size_t whylen)
{
    bencode_doc_t d;
    bencode_doc_init(&d);
    memset(out, 0, sizeof(*out));
    const bencode_limits_t lim = {
        .max_depth = REPLY_MAX_DEPTH, .max_nodes = REPLY_MAX_NODES, .max_string = ANNOUNCE_MAX_BODY};
    int rc = bencode_decode(&d, body, len, &lim, why, whylen);
    if (rc < 0)
        goto error;
    rc = -EINVAL;
    const bencode_node_t *root = bencode_root(&d);
    if (!root || root->type != BENCODE_DICT) {
        why_printf(why, whylen, "the answer is not a dictionary");
        goto error;
    }
    const bencode_node_t *fail = bencode_dict_cget(&d, root, "failure reason");
    if (fail) {
        if (fail->type != BENCODE_STR) {
            why_printf(why, whylen, "\"failure reason\" is not a string");
            goto error;
        }
        /* the reason goes into our log: printable ASCII only, and not too much of it */
        char reason[200];
        size_t n = fail->len < sizeof(reason) - 1 ? fail->len : sizeof(reason) - 1;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)fail->s[i];
            reason[i] = c >= ' ' && c < 0x7f ? (char)c : '?';
        }
        reason[n] = '\0';
        why_printf(why, whylen, "%s", reason);
        rc = -EPROTO;
        goto error;
    }
    const bencode_node_t *iv = bencode_dict_cget(&d, root, "interval");
    if (iv) {
        if (iv->type != BENCODE_INT || iv->i < 0) {
            why_printf(why, whylen, "\"interval\" is not a non-negative integer");
            goto error;
        }
        out->interval_s = iv->i > UINT32_MAX ? UINT32_MAX : (uint32_t)iv->i;
    }
    const bencode_node_t *ext = bencode_dict_cget(&d, root, "external ip");
    if (ext && ext->type == BENCODE_STR && ext->len == 4) {
        memcpy(out->external_ip, ext->s, 4);
        out->has_external_ip = true;
    }
    const bencode_node_t *peers = bencode_dict_cget(&d, root, "peers");
    if (!peers) {
        why_printf(why, whylen, "no \"peers\"");
        goto error;
    }
    if (peers->type == BENCODE_STR) {
        if (peers->len % 6 != 0) {
            why_printf(why, whylen, "compact \"peers\" of %zu bytes is not a multiple of 6", peers->len);
            goto error;
        }
        const uint8_t *p = (const uint8_t *)peers->s;
        for (size_t i = 0; i < peers->len / 6 && out->npeers < ANNOUNCE_MAX_PEERS; i++, p += 6) {
            uint16_t port = (uint16_t)(p[4] << 8 | p[5]);
            if (port == 0)
                continue;
            announce_peer_t *q = &out->peers[out->npeers++];
            memcpy(q->ip, p, 4);
            q->port = port;
        }
    } else if (peers->type == BENCODE_LIST) {
        for (size_t i = 0; i < peers->count; i++) {
            const bencode_node_t *e = bencode_child(&d, peers, i);
            if (!e || parse_peer_dict(&d, e, out, why, whylen) < 0)
                goto error;
        }
    } else {
        why_printf(why, whylen, "\"peers\" is neither a string nor a list");
        goto error;
    }
    bencode_doc_release(&d);
    return 0;

error:
    bencode_doc_release(&d);
    out->npeers = 0;
    return rc;
}

void announce_pool_hash(const char *name, uint8_t out[ANNOUNCE_HASH_LEN])
{
    /* must stay equal to tracker_pool_hash (tests/unit/test_announce.c checks) */
    static const char prefix[] = "preon-pool:";
    hash_ctx_t *c = hash_ctx_new();
    hash_t h;
    hash_ctx_update(c, prefix, sizeof(prefix) - 1);
    hash_ctx_update(c, name, strlen(name));
    hash_ctx_final(c, &h);
    hash_ctx_free(c);
    memcpy(out, h.b, ANNOUNCE_HASH_LEN);
}

void announce_peer_url(const announce_peer_t *p, char *out, size_t outlen)
{
    snprintf(out, outlen, "http://%u.%u.%u.%u:%u", p->ip[0], p->ip[1], p->ip[2], p->ip[3], (unsigned)p->port);
}

/* ---- the client ------------------------------------------------------------------------------- */

static bool is_self(const announce_t *a, const announce_reply_t *r, const announce_peer_t *p)
{
    if (p->port != a->port)
        return false;
    if (p->ip[0] == 127)
        return true;
    if (r->has_external_ip && memcmp(r->external_ip, p->ip, 4) == 0)
        return true;
    for (size_t i = 0; i < a->nlocal; i++)
        if (memcmp(a->local[i], p->ip, 4) == 0)
            return true;
    return false;
}

static void pct_encode(char *dst, const uint8_t *b, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        *dst++ = '%';
        *dst++ = hex[b[i] >> 4];
        *dst++ = hex[b[i] & 15];
    }
    *dst = '\0';
}

static torrent_t *torrent_find(announce_t *a, const uint8_t *ih)
{
    for (torrent_t *t = a->torrents; t; t = t->next)
        if (memcmp(t->ih, ih, ANNOUNCE_HASH_LEN) == 0)
            return t;
    return NULL;
}

static void call_unlink(announce_t *a, call_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        a->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void rearm(announce_t *a);
static void on_reply(int status, unsigned code, const char *body, size_t len, void *arg);

/* Sends one announce for ih; t is NULL for a fire-and-forget "stopped". 0 or fetch_get's -errno. */
static int send_announce(announce_t *a, torrent_t *t, const uint8_t *ih, bool seeder, const char *event)
{
    char ihs[ANNOUNCE_HASH_LEN * 3 + 1], pid[ANNOUNCE_HASH_LEN * 3 + 1];
    pct_encode(ihs, ih, ANNOUNCE_HASH_LEN);
    pct_encode(pid, a->peer_id, ANNOUNCE_HASH_LEN);
    char *url = xasprintf("%s%cinfo_hash=%s&peer_id=%s&port=%u&uploaded=0&downloaded=0&left=%d"
                          "&compact=1&numwant=%d%s%s",
                          a->url, strchr(a->url, '?') ? '&' : '?', ihs, pid, (unsigned)a->port, seeder ? 0 : 1,
                          ANNOUNCE_NUMWANT, event ? "&event=" : "", event ? event : "");
    call_t *c = xcalloc(1, sizeof(*c));
    c->a = a;
    c->t = t;
    int rc = fetch_get(a->fetch, url, ANNOUNCE_MAX_BODY, on_reply, c);
    free(url);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->next = a->calls;
    if (a->calls)
        a->calls->prev = c;
    a->calls = c;
    return 0;
}

static void torrent_announce(announce_t *a, torrent_t *t)
{
    int rc = send_announce(a, t, t->ih, t->seeder, t->started_ok ? NULL : "started");
    if (rc == 0) {
        t->inflight = true;
        return;
    }
    log_warn("announce: cannot send an announce to %s: %s", a->url, strerror(-rc));
    t->due_ms = uv_now(a->loop) + t->interval_ms;
}

static void on_timer(uv_timer_t *h)
{
    announce_t *a = h->data;
    uint64_t now = uv_now(a->loop);
    for (torrent_t *t = a->torrents; t; t = t->next)
        if (!t->inflight && t->due_ms <= now)
            torrent_announce(a, t);
    rearm(a);
}

/* Arms the timer for the earliest swarm due (announces under way re-arm when answered). */
static void rearm(announce_t *a)
{
    if (a->closing)
        return;
    uint64_t now = uv_now(a->loop), due = UINT64_MAX;
    for (torrent_t *t = a->torrents; t; t = t->next)
        if (!t->inflight && t->due_ms < due)
            due = t->due_ms;
    if (due == UINT64_MAX)
        uv_timer_stop(&a->timer);
    else
        uv_timer_start(&a->timer, on_timer, due > now ? due - now : 0, 0);
}

static uint32_t clamp_interval(uint32_t s)
{
    uint64_t ms = (uint64_t)s * 1000;
    if (ms < ANNOUNCE_MIN_INTERVAL_MS)
        return ANNOUNCE_MIN_INTERVAL_MS;
    if (ms > ANNOUNCE_MAX_INTERVAL_MS)
        return ANNOUNCE_MAX_INTERVAL_MS;
    return (uint32_t)ms;
}

static void on_reply(int status, unsigned code, const char *body, size_t len, void *arg)
{
    call_t *c = arg;
    announce_t *a = c->a;
    torrent_t *t = c->t;
    if (a)
        call_unlink(a, c);
    free(c);
    if (!a || !t)
        return; /* abandoned, or a "stopped" nobody waits for */
    t->inflight = false;

    char why[320] = "";
    announce_reply_t *r = xmalloc(sizeof(*r));
    int rc = status;
    if (rc == 0 && code != 200) {
        size_t ul = strlen(a->url);
        bool hint = code == 404 && !(ul >= 9 && !strcmp(a->url + ul - 9, "/announce"));
        snprintf(why, sizeof(why), "HTTP %u%s%.160s%s", code,
                 hint ? " (is it a tracker's announce URL? those usually end in /announce: try --tracker " : "",
                 hint ? a->url : "", hint ? (a->url[ul ? ul - 1 : 0] == '/' ? "announce)" : "/announce)") : "");
        rc = -EIO;
    } else if (rc == 0) {
        rc = announce_parse_reply(body, len, r, why, sizeof(why));
    } else {
        snprintf(why, sizeof(why), "%s", strerror(-rc));
    }
    if (rc == 0) {
        t->started_ok = true;
        if (!a->interval_ms && r->interval_s)
            t->interval_ms = clamp_interval(r->interval_s);
        size_t n = 0;
        for (size_t i = 0; i < r->npeers; i++)
            if (!is_self(a, r, &r->peers[i]))
                r->peers[n++] = r->peers[i];
        t->in_cb = true;
        t->cb(r->peers, n, t->arg);
        t->in_cb = false;
        t->failing = false;
        t->retry_ms = 0;
    } else {
        /* a tracker that went away (restarted, rebooted) is tried again soon, not a full interval later */
        t->retry_ms = t->retry_ms ? t->retry_ms * 2 : ANNOUNCE_RETRY_MIN_MS;
        if (t->retry_ms > t->interval_ms)
            t->retry_ms = t->interval_ms;
        /* a tracker that keeps failing is reported once, then quietly retried */
        log_msg(t->failing ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN, "announce: tracker %s: %s%s; retrying in %u ms",
                a->url, rc == -EPROTO ? "failure: " : "", why, t->retry_ms);
        t->failing = true;
    }
    free(r);
    if (t->dead) {
        free(t);
        return;
    }
    t->due_ms = uv_now(a->loop) + (t->again ? 0 : t->retry_ms ? t->retry_ms : t->interval_ms);
    t->again = false;
    rearm(a);
}

static bool tracker_url_ok(const char *url)
{
    static const char scheme[] = "http://";
    size_t n = strnlen(url, ANNOUNCE_MAX_URL + 1);
    if (n > ANNOUNCE_MAX_URL || n <= sizeof(scheme) - 1 || strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)url[i];
        if (ch <= ' ' || ch >= 0x7f || ch == '#')
            return false;
    }
    return true;
}

static void load_local_addrs(announce_t *a)
{
    uv_interface_address_t *ifs = NULL;
    int count = 0;
    if (uv_interface_addresses(&ifs, &count) != 0)
        return;
    for (int i = 0; i < count && a->nlocal < MAX_LOCAL_ADDRS; i++)
        if (ifs[i].address.address4.sin_family == AF_INET)
            memcpy(a->local[a->nlocal++], &ifs[i].address.address4.sin_addr, 4);
    uv_free_interface_addresses(ifs, count);
}

int announce_new(uv_loop_t *loop, fetch_t *fetch, const announce_opts_t *opts, announce_t **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!loop || !fetch || !opts || !opts->tracker_url || !tracker_url_ok(opts->tracker_url) || !opts->port)
        return -EINVAL;
    announce_t *a = xcalloc(1, sizeof(*a));
    a->loop = loop;
    a->fetch = fetch;
    a->url = xstrdup(opts->tracker_url);
    a->port = opts->port;
    a->interval_ms = opts->interval_ms;
    if (opts->peer_id) {
        memcpy(a->peer_id, opts->peer_id, ANNOUNCE_HASH_LEN);
    } else {
        /* Azureus-style client id, then randomness so two peers on one host differ */
        memcpy(a->peer_id, "-PR0001-", 8);
        int rc = uv_random(NULL, NULL, a->peer_id + 8, ANNOUNCE_HASH_LEN - 8, 0, NULL);
        if (rc < 0) {
            free(a->url);
            free(a);
            return rc;
        }
    }
    load_local_addrs(a);
    uv_timer_init(loop, &a->timer);
    a->timer.data = a;
    *out = a;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    announce_t *a = h->data;
    announce_close_cb cb = a->close_cb;
    void *arg = a->close_arg;
    free(a->url);
    free(a);
    if (cb)
        cb(arg);
}

/* Unlinks t and forgets its requests; frees it unless its callback is running. */
static void torrent_drop(announce_t *a, torrent_t *t)
{
    for (torrent_t **pp = &a->torrents; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    a->ntorrents--;
    for (call_t *c = a->calls; c; c = c->next)
        if (c->t == t)
            c->t = NULL;
    if (t->in_cb)
        t->dead = true;
    else
        free(t);
}

void announce_close(announce_t *a, announce_close_cb cb, void *arg)
{
    if (!a || a->closing)
        return;
    while (a->torrents) {
        torrent_t *t = a->torrents;
        int rc = send_announce(a, NULL, t->ih, t->seeder, "stopped");
        if (rc < 0)
            log_debug("announce: cannot send stopped: %s", strerror(-rc));
        torrent_drop(a, t);
    }
    a->closing = true;
    call_t *c;
    while ((c = a->calls)) {
        call_unlink(a, c);
        c->a = NULL; /* its answer is dropped; on_reply frees it */
        c->t = NULL;
    }
    a->close_cb = cb;
    a->close_arg = arg;
    uv_close((uv_handle_t *)&a->timer, on_timer_closed);
}

int announce_add(announce_t *a, const uint8_t info_hash[ANNOUNCE_HASH_LEN], bool seeder, announce_peers_cb cb,
                 void *arg)
{
    if (!a || !info_hash || !cb)
        return -EINVAL;
    if (a->closing)
        return -ECANCELED;
    if (torrent_find(a, info_hash))
        return -EEXIST;
    if (a->ntorrents >= ANNOUNCE_MAX_SWARMS)
        return -ENOSPC;
    torrent_t *t = xcalloc(1, sizeof(*t));
    memcpy(t->ih, info_hash, ANNOUNCE_HASH_LEN);
    t->seeder = seeder;
    t->cb = cb;
    t->arg = arg;
    t->interval_ms = a->interval_ms ? a->interval_ms : ANNOUNCE_DEFAULT_INTERVAL_MS;
    t->due_ms = uv_now(a->loop);
    t->next = a->torrents;
    a->torrents = t;
    a->ntorrents++;
    rearm(a);
    return 0;
}

int announce_remove(announce_t *a, const uint8_t info_hash[ANNOUNCE_HASH_LEN])
{
    torrent_t *t = a && info_hash ? torrent_find(a, info_hash) : NULL;
    if (!t)
        return -ENOENT;
    int rc = send_announce(a, NULL, t->ih, t->seeder, "stopped");
    if (rc < 0)
        log_warn("announce: cannot send stopped to %s: %s", a->url, strerror(-rc));
    torrent_drop(a, t);
    rearm(a);
    return 0;
}

void announce_now(announce_t *a)
{
    if (!a || a->closing)
        return;
    uint64_t now = uv_now(a->loop);
    for (torrent_t *t = a->torrents; t; t = t->next) {
        if (t->inflight)
            t->again = true;
        else
            t->due_ms = now;
    }
    rearm(a);
}
