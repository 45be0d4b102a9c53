/*
 * peers.c: the fetcher's peers (a table by base URL) and their scores. Pure: no libuv, no curl,
 * no clock; every rule that depends on time takes now_ms, so tests/unit/test_score.c drives them
 * with plain numbers.
 *
 * A score moves by fixed steps (FETCH_SCORE_OK, _FAIL, _BAD) within [FETCH_SCORE_MIN,
 * FETCH_SCORE_MAX]. A penalty is not for ever: a negative score recovers one point per
 * FETCH_SCORE_RECOVER_MS since it last changed, computed when asked (nothing runs on a timer), so
 * a peer that timed out during a hiccup is tried again a little later, and one that sent a bad
 * block is avoided for minutes.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "swarm/internal.h"

#define PEERS_FIRST_BUCKETS 64

/* FNV-1a: peer URLs come from trackers, but the table is small and the chains are short. */
static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t x = 14695981039346656037u;
    for (size_t i = 0; i < n; i++)
        x = (x ^ (uint8_t)s[i]) * 1099511628211u;
    return x;
}

void swarm__peers_init(swarm__peers_t *t)
{
    t->nbuckets = PEERS_FIRST_BUCKETS;
    t->buckets = xcalloc(t->nbuckets, sizeof(*t->buckets));
    t->n = 0;
}

void swarm__peers_release(swarm__peers_t *t)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        swarm__peer_t *p;
        while ((p = t->buckets[i])) {
            t->buckets[i] = p->next;
            free(p);
        }
    }
    free(t->buckets);
    t->buckets = NULL;
    t->nbuckets = t->n = 0;
}

size_t swarm__peer_url_len(const char *url)
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

swarm__peer_t *swarm__peers_find(const swarm__peers_t *t, const char *url, size_t n)
{
    uint64_t key = fnv1a(url, n);
    for (swarm__peer_t *p = t->buckets[key & (t->nbuckets - 1)]; p; p = p->next)
        if (p->key == key && p->urllen == n && memcmp(p->url, url, n) == 0)
            return p;
    return NULL;
}

static void peers_grow(swarm__peers_t *t)
{
    size_t nb = t->nbuckets * 2;
    swarm__peer_t **b = xcalloc(nb, sizeof(*b));
    for (size_t i = 0; i < t->nbuckets; i++) {
        swarm__peer_t *p;
        while ((p = t->buckets[i])) {
            t->buckets[i] = p->next;
            p->next = b[p->key & (nb - 1)];
            b[p->key & (nb - 1)] = p;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nb;
}

swarm__peer_t *swarm__peers_get(swarm__peers_t *t, const char *url, size_t n)
{
    swarm__peer_t *p = swarm__peers_find(t, url, n);
    if (p)
        return p;
    if (t->n >= FETCH_MAX_PEERS) {
        log_debug("fetch: ignoring peer %.*s: %d peers known already", (int)n, url, FETCH_MAX_PEERS);
        return NULL;
    }
    if (t->n >= t->nbuckets)
        peers_grow(t);
    p = xcalloc(1, sizeof(*p) + n + 1);
    memcpy(p->url, url, n);
    p->urllen = n;
    p->key = fnv1a(url, n);
    p->next = t->buckets[p->key & (t->nbuckets - 1)];
    t->buckets[p->key & (t->nbuckets - 1)] = p;
    t->n++;
    return p;
}

void swarm__peers_foreach(const swarm__peers_t *t, void (*cb)(swarm__peer_t *p, void *arg), void *arg)
{
    for (size_t i = 0; i < t->nbuckets; i++)
        for (swarm__peer_t *p = t->buckets[i]; p; p = p->next)
            cb(p, arg);
}

int swarm__peer_score(const swarm__peer_t *p, uint64_t now_ms)
{
    int s = p->st.score;
    if (s >= 0 || now_ms <= p->score_ms)
        return s;
    uint64_t up = (now_ms - p->score_ms) / FETCH_SCORE_RECOVER_MS;
    return up >= (uint64_t)-s ? 0 : s + (int)up;
}

void swarm__peer_rate(swarm__peer_t *p, int delta, uint64_t now_ms)
{
    int s = swarm__peer_score(p, now_ms) + delta;
    p->st.score = s < FETCH_SCORE_MIN ? FETCH_SCORE_MIN : s > FETCH_SCORE_MAX ? FETCH_SCORE_MAX : s;
    p->score_ms = now_ms;
}

bool swarm__peer_bad(swarm__peer_t *p, uint64_t now_ms)
{
    if (++p->bad_run < FETCH_BAN_AFTER)
        return false;
    p->bad_run = 0;
    p->banned_until = now_ms + FETCH_BAN_MS;
    return true;
}

bool swarm__peer_banned(const swarm__peer_t *p, uint64_t now_ms) { return now_ms < p->banned_until; }

bool swarm__peer_avoided(const swarm__peer_t *p, uint64_t now_ms)
{
    return swarm__peer_score(p, now_ms) <= FETCH_SCORE_AVOID;
}

/*
 * Positive scores count as equal on purpose: preferring the peer with the most successes would
 * pile every request on the first peer that was ever idle, while the in-flight count already
 * favours fast peers (they free their slots sooner). The last rule spreads requests over idle
 * peers round-robin instead of always picking the caller's first.
 */
bool swarm__peer_better(const swarm__peer_t *a, const swarm__peer_t *b, uint64_t now_ms)
{
    int sa = swarm__peer_score(a, now_ms), sb = swarm__peer_score(b, now_ms);
    bool aa = sa <= FETCH_SCORE_AVOID, ab = sb <= FETCH_SCORE_AVOID;
    if (aa != ab)
        return !aa;
    if (a->st.inflight != b->st.inflight)
        return a->st.inflight < b->st.inflight;
    int pa = sa < 0 ? sa : 0, pb = sb < 0 ? sb : 0;
    if (pa != pb)
        return pa > pb;
    return a->started < b->started;
}
