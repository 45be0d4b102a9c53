/*
 * trust.c: signed requests on the wire (pool/auth.h holds the rules; docs/security.md the why).
 *
 * Sending: pool__sget signs a GET (pool__spost a POST) for its recipient, whose public key it must know. Keys of other
 * peers are learnt from their GET /v1/id and kept by base URL (at most POOL_MAX_PEER_KEYS, the
 * least recently used one goes); requests for a peer whose key is being asked for wait for the
 * answer. A 401 answer forgets the peer's key (it may have a new one): the next request asks
 * again. Receiving: pool__auth_check verifies the four headers against this peer's own key, the
 * method and the request target as sent, then admits the (key, nonce) pair once (the replay
 * guard), and names the caller.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/files.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "pool/auth.h"
#include "pool/internal.h"
#include "pool/wire.h"

typedef struct sreq {
    pool_t *pool;
    char *base, *target;
    char *body; /* a POST's (pool__spost), or NULL: a GET */
    size_t body_len;
    size_t max_len;
    fetch_get_cb cb;
    void *arg;
    struct sreq *next;
} sreq_t;

struct peer_key {
    char *url;
    key_pub_t key;
    bool known, asking;
    uint64_t used;       /* pool->key_clock when last used: the least recent goes first */
    sreq_t *waiting;     /* requests waiting for the key */
};

static peer_key_t *pk_find(pool_t *pool, const char *url)
{
    for (size_t i = 0; i < pool->n_peer_keys; i++)
        if (!strcmp(pool->peer_keys[i]->url, url))
            return pool->peer_keys[i];
    return NULL;
}

static void pk_free(peer_key_t *k)
{
    free(k->url);
    free(k);
}

static peer_key_t *pk_get(pool_t *pool, const char *url)
{
    peer_key_t *k = pk_find(pool, url);
    if (k) {
        k->used = ++pool->key_clock;
        return k;
    }
    if (pool->n_peer_keys == POOL_MAX_PEER_KEYS) { /* the least recently used one nobody waits on */
        size_t victim = SIZE_MAX;
        for (size_t i = 0; i < pool->n_peer_keys; i++) {
            const peer_key_t *c = pool->peer_keys[i];
            if (!c->asking && (victim == SIZE_MAX || c->used < pool->peer_keys[victim]->used))
                victim = i;
        }
        if (victim == SIZE_MAX)
            return NULL;
        pk_free(pool->peer_keys[victim]);
        pool->peer_keys[victim] = pool->peer_keys[--pool->n_peer_keys];
    }
    if (pool->n_peer_keys == pool->cap_peer_keys) {
        pool->cap_peer_keys = pool->cap_peer_keys ? pool->cap_peer_keys * 2 : 16;
        pool->peer_keys = xreallocarray(pool->peer_keys, pool->cap_peer_keys, sizeof(*pool->peer_keys));
    }
    k = xcalloc(1, sizeof(*k));
    k->url = xstrdup(url);
    k->used = ++pool->key_clock;
    pool->peer_keys[pool->n_peer_keys++] = k;
    return k;
}

/*
 * Which key speaks from a base URL, as proven by a signed request that key made naming that URL
 * (its source address, the port it named in peer=). Unlike the /v1/id cache (which only says whom
 * to sign our requests for: a lie there only spoils the liar's own requests), this is what origin
 * claims are checked against: a peer can bind a URL only to its own key.
 */
void pool__bind_peer_key(pool_t *pool, const char *url, const key_pub_t *key)
{
    size_t k = 0; /* the pair replaces what said otherwise of this url or of this key */
    for (size_t i = 0; i < pool->n_bound; i++) {
        if (!strcmp(pool->bound[i].url, url) || key_pub_equal(&pool->bound[i].key, key))
            free(pool->bound[i].url);
        else
            pool->bound[k++] = pool->bound[i];
    }
    pool->n_bound = k;
    if (pool->n_bound == POOL_MAX_PEER_KEYS) { /* the oldest pair goes */
        free(pool->bound[0].url);
        memmove(&pool->bound[0], &pool->bound[1], (pool->n_bound - 1) * sizeof(pool->bound[0]));
        pool->n_bound--;
    }
    if (pool->n_bound == pool->cap_bound) {
        pool->cap_bound = pool->cap_bound ? 2 * pool->cap_bound : 16;
        pool->bound = xreallocarray(pool->bound, pool->cap_bound, sizeof(pool->bound[0]));
    }
    pool->bound[pool->n_bound].url = xstrdup(url);
    pool->bound[pool->n_bound++].key = *key;
}

bool pool__bound_key(pool_t *pool, const char *url, key_pub_t *out)
{
    for (size_t i = 0; i < pool->n_bound; i++) {
        if (!strcmp(pool->bound[i].url, url)) {
            *out = pool->bound[i].key;
            return true;
        }
    }
    return false;
}

const char *pool__bound_url(const pool_t *pool, const key_pub_t *key)
{
    for (size_t i = 0; i < pool->n_bound; i++)
        if (key_pub_equal(&pool->bound[i].key, key))
            return pool->bound[i].url;
    return NULL;
}

bool pool__peer_key(pool_t *pool, const char *url, key_pub_t *out)
{
    peer_key_t *k = pk_find(pool, url);
    if (!k || !k->known)
        return false;
    *out = k->key;
    return true;
}

void pool__forget_peer_key(pool_t *pool, const char *url)
{
    peer_key_t *k = pk_find(pool, url);
    if (k && !k->asking)
        k->known = false;
}

void pool__peer_keys_free(pool_t *pool)
{
    for (size_t i = 0; i < pool->n_peer_keys; i++) {
        peer_key_t *k = pool->peer_keys[i];
        while (k->waiting) { /* pool_stop cancels the fetcher first, so nobody waits any more */
            sreq_t *s = k->waiting;
            k->waiting = s->next;
            free(s->base);
            free(s->target);
            free(s->body);
            free(s);
        }
        pk_free(k);
    }
    free(pool->peer_keys);
    pool->peer_keys = NULL;
    pool->n_peer_keys = pool->cap_peer_keys = 0;
    for (size_t i = 0; i < pool->n_bound; i++)
        free(pool->bound[i].url);
    free(pool->bound);
    pool->bound = NULL;
    pool->n_bound = pool->cap_bound = 0;
}

/* A signed request's answer: a 401 means the recipient has another key than we think. */
static void on_signed(int status, unsigned code, const char *body, size_t len, void *arg)
{
    sreq_t *s = arg;
    if (status == 0 && code == 401 && body && strstr(body, "bad signature")) { /* not stale, not busy */
        log_info("%s%.60s: refused as unauthenticated (%.*s): its key is asked for again next time", s->base,
                 s->target, (int)(len < 200 ? len : 200), body ? body : "");
        pool__forget_peer_key(s->pool, s->base);
    }
    s->cb(status, code, body, len, s->arg);
    free(s->base);
    free(s->target);
    free(s->body);
    free(s);
}

/* Signs and sends s to a recipient whose key is known. 0, or -errno and s is not used. */
static int send_signed(pool_t *pool, sreq_t *s, const key_pub_t *to)
{
    uint8_t nonce[AUTH_NONCE_LEN];
    if (getrandom(nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce))
        return -EIO;
    auth_headers_t h;
    int rc = auth_sign(pool->key, s->body ? "POST" : "GET", s->target, to, pool_now_ms(), nonce, &h);
    if (rc)
        return rc;
    const char *lines[] = {h.key, h.time, h.nonce, h.sig};
    char *url = xasprintf("%s%s", s->base, s->target);
    rc = s->body ? fetch_post_hdr(pool->fetch, url, lines, 4, s->body, s->body_len, s->max_len, on_signed, s)
                 : fetch_get_hdr(pool->fetch, url, lines, 4, s->max_len, on_signed, s);
    free(url);
    return rc;
}

/* The answer to GET /v1/id: {"key": "<64 hex>"}; then the requests waiting for it go. */
static void on_id(int status, unsigned code, const char *body, size_t len, void *arg)
{
    pool_t *pool = ((sreq_t *)arg)->pool;
    char *url = ((sreq_t *)arg)->base;
    free(arg);
    peer_key_t *k = pk_find(pool, url);
    if (!k) { /* cannot happen: an asking entry is never evicted */
        free(url);
        return;
    }
    k->asking = false;
    char why[96] = "";
    k->known = status == 0 && code == 200 && body && wire_id_decode(body, len, &k->key, why, sizeof(why)) == 0;
    if (!k->known)
        log_info("%s/v1/id: no key (%s): its signed requests are not sent", url,
                 status ? strerror(-status) : code != 200 ? "an HTTP error" : why);
    sreq_t *list = k->waiting;
    k->waiting = NULL;
    key_pub_t to = k->key;
    bool known = k->known;
    while (list) {
        sreq_t *s = list;
        list = s->next;
        s->next = NULL;
        int rc = known && !pool->stopping ? send_signed(pool, s, &to) : -EIO;
        if (rc) { /* its caller was promised one callback */
            s->cb(rc == -ECANCELED || pool->stopping ? -ECANCELED : -EIO, 0, NULL, 0, s->arg);
            free(s->base);
            free(s->target);
            free(s->body);
            free(s);
        }
    }
    free(url);
}

int pool__sget(pool_t *pool, const char *base, const char *target, size_t max_len, fetch_get_cb cb, void *arg)
{
    return pool__spost(pool, base, target, NULL, 0, max_len, cb, arg);
}

int pool__spost(pool_t *pool, const char *base, const char *target, const void *body, size_t body_len,
                size_t max_len, fetch_get_cb cb, void *arg)
{
    if (!pool->fetch || pool->stopping)
        return -ECANCELED;
    if (strlen(target) > AUTH_MAX_TARGET || body_len > FETCH_MAX_POST_BODY)
        return -EINVAL;
    peer_key_t *k = pk_get(pool, base);
    if (!k)
        return -EAGAIN; /* POOL_MAX_PEER_KEYS peers are being asked for their keys */
    sreq_t *s = xcalloc(1, sizeof(*s));
    s->pool = pool;
    s->base = xstrdup(base);
    s->target = xstrdup(target);
    if (body) {
        s->body = xmalloc(body_len ? body_len : 1);
        memcpy(s->body, body, body_len);
        s->body_len = body_len;
    }
    s->max_len = max_len;
    s->cb = cb;
    s->arg = arg;
    if (k->known) {
        int rc = send_signed(pool, s, &k->key);
        if (rc) {
            free(s->base);
            free(s->target);
            free(s->body);
            free(s);
        }
        return rc;
    }
    if (!k->asking) {
        sreq_t *id = xcalloc(1, sizeof(*id)); /* carries the pool and the base URL to on_id */
        id->pool = pool;
        id->base = xstrdup(base);
        char *url = xasprintf("%s/v1/id", base);
        int rc = fetch_get(pool->fetch, url, WIRE_MAX_ID_BODY, on_id, id);
        free(url);
        if (rc) {
            free(id->base);
            free(id);
            free(s->base);
            free(s->target);
            free(s->body);
            free(s);
            return rc;
        }
        k->asking = true;
    }
    sreq_t **pp = &k->waiting;
    while (*pp)
        pp = &(*pp)->next;
    *pp = s;
    return 0;
}

int pool__auth_check(pool_t *pool, httpd_req_t *r, key_pub_t *caller, char *why, size_t whylen)
{
    auth_req_t a;
    int rc = auth_parse(httpd_req_header(r, AUTH_H_KEY), httpd_req_header(r, AUTH_H_TIME),
                        httpd_req_header(r, AUTH_H_NONCE), httpd_req_header(r, AUTH_H_SIG), &a);
    if (rc) {
        snprintf(why, whylen, "%s", rc == -ENOENT ? "an unsigned request (it must carry Preon-Key, Preon-Time, "
                                                    "Preon-Nonce and Preon-Sig: docs/security.md)"
                                                  : "malformed Preon-* headers");
        return -EACCES;
    }
    size_t tlen = 0;
    const char *t = httpd_req_target(r, &tlen);
    char target[AUTH_MAX_TARGET + 1];
    if (tlen == 0 || tlen > AUTH_MAX_TARGET) {
        snprintf(why, whylen, "request target too long to be signed");
        return -EACCES;
    }
    memcpy(target, t, tlen);
    target[tlen] = '\0';
    key_pub_t self;
    key_public(pool->key, &self);
    if (!auth_verify(&a, httpd_req_method(r), target, &self)) {
        snprintf(why, whylen, "bad signature (not this request, or not for this peer's key %.16s...)", pool->key_hex);
        return -EACCES;
    }
    if (!pool->guard) {
        pool->guard = auth_guard_new(0, 0);
        /* nothing signed before this start is taken: the pairs seen before it are not remembered */
        auth_guard_set_floor(pool->guard, pool->started_ms);
    }
    rc = auth_guard_admit(pool->guard, &a.key, a.time_ms, a.nonce, pool_now_ms());
    if (rc) {
        snprintf(why, whylen, "%s", rc == -ETIME      ? "stale: its time is over 30 s from this peer's clock"
                                    : rc == -EALREADY ? "replayed: this nonce was used before"
                                                      : "too many signed requests at once (try again)");
        return -EACCES;
    }
    *caller = a.key;
    return 0;
}

/* ---- whose jobs this peer runs: the trust list (--trust FILE, DATA/trusted/) ---- */

typedef struct trustload {
    uv_work_t work;
    pool_t *pool;
    char *file, *dir;
    key_pub_t *keys;
    size_t n, bad;
    char why[256];
} trustload_t;

/* Reads one list file (at most AUTH_MAX_TRUST_FILE bytes) and parses it into t. */
static void trust_read_file(void *arg, const char *path)
{
    trustload_t *t = arg;
    char *buf;
    size_t got;
    int rc = files_read_small(path, AUTH_MAX_TRUST_FILE, &buf, &got);
    if (rc) {
        if (!t->bad++)
            snprintf(t->why, sizeof(t->why), "%s: %s", path, strerror(-rc));
        return;
    }
    char why[160] = "";
    size_t bad = 0;
    auth_trust_parse(buf, got, &t->keys, &t->n, &bad, why, sizeof(why));
    if (bad && !t->bad)
        snprintf(t->why, sizeof(t->why), "%s: %s", path, why);
    t->bad += bad;
    free(buf);
}

/* Thread pool (or start-up): the keys of --trust FILE and of every file in DATA/trusted/. */
static void trust_work(uv_work_t *w)
{
    trustload_t *t = w->data;
    if (t->file)
        trust_read_file(t, t->file);
    files_each_file(t->dir, trust_read_file, t);
}

static trustload_t *trust_load_new(pool_t *pool)
{
    trustload_t *t = xcalloc(1, sizeof(*t));
    t->work.data = t;
    t->pool = pool;
    t->file = pool->opts.trust_file ? xstrdup(pool->opts.trust_file) : NULL;
    t->dir = xasprintf("%s/trusted", pool->data_dir);
    return t;
}

/* On the loop: the list read is the list in force; a change is logged and volunteering looks again. */
static void trust_apply(pool_t *pool, trustload_t *t)
{
    bool changed = !pool->trust_loaded || t->n != pool->n_trusted ||
                   (t->n && memcmp(t->keys, pool->trusted, t->n * sizeof(*t->keys)) != 0);
    if (t->bad && (changed || !pool->trust_bad_said))
        log_warn("trust list: %zu lines or files skipped (the first: %s)", t->bad, t->why);
    pool->trust_bad_said = t->bad > 0;
    free(pool->trusted);
    pool->trusted = t->keys;
    pool->n_trusted = t->n;
    t->keys = NULL;
    pool->trust_loaded = true;
    if (changed) {
        log_info("trust list: jobs of this peer's own key and of %zu listed keys (and of the keys they endorse) "
                 "are run here", pool->n_trusted);
        for (job_t *j = pool->joblist; j; j = j->next)
            j->unfit_logged = false; /* a refusal is said again once, with its new reason */
        if (pool->started && pool->up.vol_kick)
            pool->up.vol_kick(pool);
    }
}

static void trust_load_free(trustload_t *t)
{
    free(t->file);
    free(t->dir);
    free(t->keys);
    free(t);
}

static void trust_done(uv_work_t *w, int status)
{
    trustload_t *t = w->data;
    pool_t *pool = t->pool;
    pool->pending_work--;
    pool->trust_loading = false;
    if (!pool->stopping && status == 0)
        trust_apply(pool, t);
    trust_load_free(t);
}

static void on_trust_timer(uv_timer_t *timer)
{
    pool_t *pool = timer->data;
    if (pool->stopping || pool->trust_loading)
        return;
    trustload_t *t = trust_load_new(pool);
    pool->trust_loading = true;
    pool->pending_work++;
    uv_queue_work(pool->loop, &t->work, trust_work, trust_done);
}

void pool__trust_load(pool_t *pool)
{
    trustload_t *t = trust_load_new(pool);
    trust_work(&t->work); /* at start-up, before the loop runs */
    trust_apply(pool, t);
    trust_load_free(t);
}

void pool__trust_start(pool_t *pool)
{
    pool->trust_timer = xcalloc(1, sizeof(*pool->trust_timer));
    uv_timer_init(pool->loop, pool->trust_timer);
    pool->trust_timer->data = pool;
    uv_timer_start(pool->trust_timer, on_trust_timer, POOL_TRUST_RELOAD_MS, POOL_TRUST_RELOAD_MS);
}

void pool__trust_stop(pool_t *pool)
{
    if (pool->trust_timer)
        uv_close((uv_handle_t *)pool->trust_timer, pool__handle_free);
    pool->trust_timer = NULL;
}

