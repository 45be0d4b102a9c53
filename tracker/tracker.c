/*
 * tracker.c: the tracker's sans-I/O core. Swarms and peers live in memory; every request is a
 * function of (state, query, client address, now_ms) that writes its bencoded answer into a
 * caller-owned buffer, so the server reuses one buffer and the hot path allocates nothing once the
 * tables have grown.
 *
 * Layout, chosen for memory (the goal is 100k peers in well under 64 MiB; here they take about
 * 5 MiB):
 *  - swarms: an open-addressing table (linear probing, backward-shift deletion, load <= 1/2) of
 *    pointers keyed by info_hash, hashed with a per-tracker random key so a client cannot choose
 *    colliding hashes on purpose;
 *  - peers of a swarm: one compact array of 32-byte records (address and port in their compact
 *    wire form, flags, last-seen second, peer_id), removed by swapping in the last one; swarms of
 *    more than SMALL_SWARM peers also get an index (open addressing over uint32 slots) from
 *    address to position, so an announce is O(1) however large the swarm.
 *
 * Expiry: a peer is dropped once it has not announced for 2 x interval. Each swarm remembers a
 * lower bound of its peers' last-seen times, and is swept whenever a request touches it and that
 * bound says someone may have expired, so answers never count or return a dead peer;
 * tracker_expire walks the table a slice at a time to reclaim swarms nobody asks about.
 *
 * Peer sampling: when a swarm has more peers than numwant, the answer is numwant consecutive
 * peers from a random start (skipping the asker), as opentracker does: one random number per
 * request, and removal by swapping keeps the order mixed.
 */
#include "tracker/tracker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/xalloc.h"

/* Swarms up to this many peers have no index: a linear scan of 8 records is as fast as hashing. */
#define SMALL_SWARM 8
#define PEER_SEEDER 0x01    /* left == 0 at its last announce */
#define PEER_COMPLETED 0x02 /* its "completed" event has been counted */

typedef struct peer {
    uint8_t addr[6]; /* IPv4 and port, network byte order (the compact form) */
    uint8_t flags;
    uint8_t pad;
    uint32_t last_s; /* now_ms / 1000 of its last announce */
    uint8_t id[TRACKER_HASH_LEN];
} peer_t;

typedef struct swarm {
    uint8_t ih[TRACKER_HASH_LEN];
    uint32_t n, cap;    /* peers */
    uint32_t seeders;
    uint32_t downloaded; /* "completed" events seen */
    uint32_t oldest_s;   /* <= every peer's last_s */
    uint32_t idx_mask;   /* index slots - 1, or 0 without an index */
    peer_t *peers;
    uint32_t *idx;       /* peer position + 1; 0 = empty slot */
} swarm_t;

struct tracker_state {
    swarm_t **tab; /* swarm table, tab_mask + 1 slots */
    size_t tab_mask, n_swarms, n_peers, n_seeders, bytes;
    size_t cursor; /* where tracker_expire continues */
    uint32_t interval_s, min_interval_s, ttl_s, numwant_default, numwant_max;
    size_t max_peers, max_swarms;
    uint64_t rng;    /* xorshift64* state */
    uint64_t key[3]; /* hash keys */
};

/* ---- hashing and randomness ------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t rng_next(tracker_state_t *t)
{
    uint64_t x = t->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t->rng = x;
    return x * 0x2545f4914f6cdd1dULL;
}

static size_t ih_hash(const tracker_state_t *t, const uint8_t *ih)
{
    uint64_t a, b;
    uint32_t c;
    memcpy(&a, ih, 8);
    memcpy(&b, ih + 8, 8);
    memcpy(&c, ih + 16, 4);
    return (size_t)(mix64(a ^ t->key[0]) ^ mix64(b ^ t->key[1] ^ ((uint64_t)c << 17)));
}

static uint32_t addr_hash(const tracker_state_t *t, const uint8_t *addr)
{
    uint64_t v = 0;
    memcpy(&v, addr, 6);
    return (uint32_t)mix64(v ^ t->key[2]);
}

/* ---- the swarm table -------------------------------------------------------------------------- */

static size_t swarm_slot(const tracker_state_t *t, const uint8_t *ih)
{
    size_t i = ih_hash(t, ih) & t->tab_mask;
    while (t->tab[i] && memcmp(t->tab[i]->ih, ih, TRACKER_HASH_LEN) != 0)
        i = (i + 1) & t->tab_mask;
    return i;
}

static swarm_t *swarm_find(const tracker_state_t *t, const uint8_t *ih) { return t->tab[swarm_slot(t, ih)]; }

static void tab_resize(tracker_state_t *t, size_t slots)
{
    swarm_t **old = t->tab;
    size_t old_slots = old ? t->tab_mask + 1 : 0;
    t->tab = xcalloc(slots, sizeof(*t->tab));
    t->tab_mask = slots - 1;
    for (size_t i = 0; old && i < old_slots; i++)
        if (old[i])
            t->tab[swarm_slot(t, old[i]->ih)] = old[i];
    free(old);
    t->bytes = t->bytes - old_slots * sizeof(*t->tab) + slots * sizeof(*t->tab);
    t->cursor = 0;
}

static swarm_t *swarm_create(tracker_state_t *t, const uint8_t *ih)
{
    if ((t->n_swarms + 1) * 2 > t->tab_mask + 1)
        tab_resize(t, (t->tab_mask + 1) * 2);
    swarm_t *s = xcalloc(1, sizeof(*s));
    memcpy(s->ih, ih, TRACKER_HASH_LEN);
    t->tab[swarm_slot(t, ih)] = s;
    t->n_swarms++;
    t->bytes += sizeof(*s);
    return s;
}

static void swarm_free(tracker_state_t *t, swarm_t *s)
{
    t->bytes -= sizeof(*s) + (size_t)s->cap * sizeof(peer_t) + (s->idx ? ((size_t)s->idx_mask + 1) * sizeof(uint32_t) : 0);
    free(s->peers);
    free(s->idx);
    free(s);
}

/* Deletes the (empty) swarm in slot i, shifting the rest of its probe run back. */
static void swarm_delete_slot(tracker_state_t *t, size_t i)
{
    swarm_free(t, t->tab[i]);
    t->n_swarms--;
    size_t hole = i, mask = t->tab_mask;
    for (size_t j = (hole + 1) & mask; t->tab[j]; j = (j + 1) & mask) {
        size_t home = ih_hash(t, t->tab[j]->ih) & mask;
        /* Move j into the hole unless its home lies cyclically in (hole, j]. */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            t->tab[hole] = t->tab[j];
            hole = j;
        }
    }
    t->tab[hole] = NULL;
}

/* ---- peers of a swarm ------------------------------------------------------------------------- */

static void idx_put(const tracker_state_t *t, swarm_t *s, uint32_t pos)
{
    uint32_t i = addr_hash(t, s->peers[pos].addr) & s->idx_mask;
    while (s->idx[i])
        i = (i + 1) & s->idx_mask;
    s->idx[i] = pos + 1;
}

static void idx_rebuild(tracker_state_t *t, swarm_t *s)
{
    size_t old = s->idx ? (size_t)s->idx_mask + 1 : 0;
    free(s->idx);
    s->idx = NULL;
    s->idx_mask = 0;
    if (s->cap > SMALL_SWARM) {
        uint32_t slots = 16;
        while (slots < s->cap * 2)
            slots *= 2;
        s->idx = xcalloc(slots, sizeof(uint32_t));
        s->idx_mask = slots - 1;
        for (uint32_t p = 0; p < s->n; p++)
            idx_put(t, s, p);
    }
    t->bytes = t->bytes - old * sizeof(uint32_t) + (s->idx ? ((size_t)s->idx_mask + 1) * sizeof(uint32_t) : 0);
}

/* The slot of the index that holds position pos. */
static uint32_t idx_slot_of(const tracker_state_t *t, const swarm_t *s, uint32_t pos)
{
    uint32_t i = addr_hash(t, s->peers[pos].addr) & s->idx_mask;
    while (s->idx[i] != pos + 1)
        i = (i + 1) & s->idx_mask;
    return i;
}

static void idx_del(const tracker_state_t *t, swarm_t *s, uint32_t pos)
{
    uint32_t mask = s->idx_mask, hole = idx_slot_of(t, s, pos);
    for (uint32_t j = (hole + 1) & mask; s->idx[j]; j = (j + 1) & mask) {
        uint32_t home = addr_hash(t, s->peers[s->idx[j] - 1].addr) & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            s->idx[hole] = s->idx[j];
            hole = j;
        }
    }
    s->idx[hole] = 0;
}

/* Position of the peer with this address, or -1. */
static int64_t peer_find(const tracker_state_t *t, const swarm_t *s, const uint8_t *addr)
{
    if (!s->idx) {
        for (uint32_t p = 0; p < s->n; p++)
            if (memcmp(s->peers[p].addr, addr, 6) == 0)
                return p;
        return -1;
    }
    for (uint32_t i = addr_hash(t, addr) & s->idx_mask; s->idx[i]; i = (i + 1) & s->idx_mask)
        if (memcmp(s->peers[s->idx[i] - 1].addr, addr, 6) == 0)
            return s->idx[i] - 1;
    return -1;
}

static void swarm_set_cap(tracker_state_t *t, swarm_t *s, uint32_t cap)
{
    t->bytes = t->bytes - (size_t)s->cap * sizeof(peer_t) + (size_t)cap * sizeof(peer_t);
    s->peers = xreallocarray(s->peers, cap, sizeof(peer_t));
    s->cap = cap;
    idx_rebuild(t, s);
}

static uint32_t peer_add(tracker_state_t *t, swarm_t *s, const uint8_t *addr, uint32_t now_s)
{
    if (s->n == s->cap)
        swarm_set_cap(t, s, s->cap ? s->cap * 2 : 2);
    uint32_t pos = s->n++;
    peer_t *p = &s->peers[pos];
    memset(p, 0, sizeof(*p));
    memcpy(p->addr, addr, 6);
    p->last_s = now_s;
    if (s->idx)
        idx_put(t, s, pos);
    if (pos == 0 || now_s < s->oldest_s)
        s->oldest_s = now_s;
    t->n_peers++;
    return pos;
}

static void peer_remove(tracker_state_t *t, swarm_t *s, uint32_t pos)
{
    uint32_t last = s->n - 1;
    if (s->peers[pos].flags & PEER_SEEDER) {
        s->seeders--;
        t->n_seeders--;
    }
    if (s->idx) {
        idx_del(t, s, pos);
        if (pos != last)
            s->idx[idx_slot_of(t, s, last)] = pos + 1;
    }
    if (pos != last)
        s->peers[pos] = s->peers[last];
    s->n--;
    t->n_peers--;
}

static uint32_t age(uint32_t now_s, uint32_t then_s) { return now_s > then_s ? now_s - then_s : 0; }

/* Drops the swarm's expired peers if its oldest may have expired; returns how many. Shrinks the
 * arrays when they are mostly empty. */
static size_t swarm_sweep(tracker_state_t *t, swarm_t *s, uint32_t now_s)
{
    if (s->n == 0 || age(now_s, s->oldest_s) <= t->ttl_s)
        return 0;
    size_t dropped = 0;
    uint32_t oldest = now_s;
    for (uint32_t p = 0; p < s->n;) {
        if (age(now_s, s->peers[p].last_s) > t->ttl_s) {
            peer_remove(t, s, p); /* the last peer moves into p: look at p again */
            dropped++;
            continue;
        }
        if (s->peers[p].last_s < oldest)
            oldest = s->peers[p].last_s;
        p++;
    }
    s->oldest_s = oldest;
    if (s->cap > 2 && s->n < s->cap / 4)
        swarm_set_cap(t, s, s->n < 2 ? 2 : s->cap / 2);
    return dropped;
}

/* ---- answers ---------------------------------------------------------------------------------- */

void tracker_failure(bencode_buf_t *out, const char *reason)
{
    bencode_buf_reset(out);
    bencode_put_dict(out);
    bencode_put_cstr(out, "failure reason");
    bencode_put_cstr(out, reason);
    bencode_put_end(out);
}

static void put_key(bencode_buf_t *b, const char *k) { bencode_put_cstr(b, k); }

static void put_peer_dict(bencode_buf_t *out, const peer_t *p, bool with_id)
{
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, p->addr, ip, sizeof(ip));
    bencode_put_dict(out);
    put_key(out, "ip");
    bencode_put_cstr(out, ip);
    if (with_id) {
        put_key(out, "peer id");
        bencode_put_str(out, p->id, TRACKER_HASH_LEN);
    }
    put_key(out, "port");
    bencode_put_int(out, (int64_t)p->addr[4] << 8 | p->addr[5]);
    bencode_put_end(out);
}

/* The answer to an announce: s may be NULL (a stopped peer of an unknown swarm), self is the
 * asker's position in s or -1. Keys in byte order. */
static void put_announce_answer(tracker_state_t *t, const swarm_t *s, int64_t self, const tracker_announce_t *a,
                                bencode_buf_t *out)
{
    uint32_t n = s ? s->n : 0, seeders = s ? s->seeders : 0;
    bencode_buf_reset(out);
    bencode_put_dict(out);
    put_key(out, "complete");
    bencode_put_int(out, seeders);
    put_key(out, "downloaded");
    bencode_put_int(out, s ? s->downloaded : 0);
    put_key(out, "incomplete");
    bencode_put_int(out, n - seeders);
    put_key(out, "interval");
    bencode_put_int(out, t->interval_s);
    put_key(out, "min interval");
    bencode_put_int(out, t->min_interval_s);
    put_key(out, "peers");

    uint32_t others = n - (self >= 0 ? 1 : 0);
    uint32_t want = a->event == TRACKER_EVENT_STOPPED ? 0
                    : a->numwant < 0                  ? t->numwant_default
                                                      : (uint32_t)a->numwant;
    if (want > t->numwant_max)
        want = t->numwant_max;
    uint32_t k = want < others ? want : others;
    uint32_t start = k && k < others ? (uint32_t)(rng_next(t) % n) : 0;
    if (a->compact) {
        char len[16];
        int ln = snprintf(len, sizeof(len), "%" PRIu32 ":", k * 6);
        memcpy(bencode_put_space(out, (size_t)ln), len, (size_t)ln);
        char *dst = k ? bencode_put_space(out, (size_t)k * 6) : NULL;
        for (uint32_t i = 0, p = start; i < k; p = p + 1 == n ? 0 : p + 1) {
            if ((int64_t)p == self)
                continue;
            memcpy(dst + (size_t)i * 6, s->peers[p].addr, 6);
            i++;
        }
    } else {
        bencode_put_list(out);
        for (uint32_t i = 0, p = start; i < k; p = p + 1 == n ? 0 : p + 1) {
            if ((int64_t)p == self)
                continue;
            put_peer_dict(out, &s->peers[p], !a->no_peer_id);
            i++;
        }
        bencode_put_end(out);
    }
    bencode_put_end(out);
}

int tracker_announce(tracker_state_t *t, const tracker_announce_t *a, uint64_t now_ms, bencode_buf_t *out)
{
    uint32_t now_s = (uint32_t)(now_ms / 1000);
    swarm_t *s = swarm_find(t, a->info_hash);
    if (s)
        swarm_sweep(t, s, now_s);

    if (a->event == TRACKER_EVENT_STOPPED) {
        int64_t pos = s ? peer_find(t, s, a->addr) : -1;
        if (pos >= 0)
            peer_remove(t, s, (uint32_t)pos);
        put_announce_answer(t, s, -1, a, out);
        return 0;
    }
    int64_t pos = s ? peer_find(t, s, a->addr) : -1;
    if (pos < 0 && t->n_peers >= t->max_peers) {
        tracker_failure(out, "tracker is full (too many peers)");
        return -ENOSPC;
    }
    if (!s) {
        if (t->n_swarms >= t->max_swarms) {
            tracker_failure(out, "tracker is full (too many swarms)");
            return -ENOSPC;
        }
        s = swarm_create(t, a->info_hash);
    }
    if (pos < 0)
        pos = peer_add(t, s, a->addr, now_s);
    peer_t *p = &s->peers[pos];
    memcpy(p->id, a->peer_id, TRACKER_HASH_LEN);
    p->last_s = now_s;
    bool seeder = a->left_known && a->left == 0;
    if (seeder != !!(p->flags & PEER_SEEDER)) {
        p->flags ^= PEER_SEEDER;
        s->seeders += seeder ? 1 : (uint32_t)-1;
        t->n_seeders += seeder ? 1 : (size_t)-1;
    }
    if (a->event == TRACKER_EVENT_COMPLETED && !(p->flags & PEER_COMPLETED)) {
        p->flags |= PEER_COMPLETED;
        s->downloaded++;
    }
    put_announce_answer(t, s, pos, a, out);
    return 0;
}

void tracker_scrape(tracker_state_t *t, const uint8_t (*hashes)[TRACKER_HASH_LEN], size_t n, uint64_t now_ms,
                    bencode_buf_t *out)
{
    uint32_t now_s = (uint32_t)(now_ms / 1000);
    bencode_buf_reset(out);
    bencode_put_dict(out);
    put_key(out, "files");
    bencode_put_dict(out);
    for (size_t i = 0; i < n; i++) {
        swarm_t *s = swarm_find(t, hashes[i]);
        if (!s)
            continue;
        swarm_sweep(t, s, now_s);
        bencode_put_str(out, hashes[i], TRACKER_HASH_LEN);
        bencode_put_dict(out);
        put_key(out, "complete");
        bencode_put_int(out, s->seeders);
        put_key(out, "downloaded");
        bencode_put_int(out, s->downloaded);
        put_key(out, "incomplete");
        bencode_put_int(out, s->n - s->seeders);
        bencode_put_end(out);
    }
    bencode_put_end(out);
    bencode_put_end(out);
}

/* ---- parsing ---------------------------------------------------------------------------------- */

/* Decimal digits only, no sign, within max. */
static int parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (max - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
    }
    return false;
}

/* The IPv4 address of sa (also from an IPv4-mapped IPv6 address). */
static bool ipv4_of(const struct sockaddr *sa, uint8_t out[4])
{
    if (sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            memcpy(out, a6->s6_addr + 12, 4);
            return true;
        }
    }
    return false;
}

enum { K_INFO_HASH, K_PEER_ID, K_PORT, K_UPLOADED, K_DOWNLOADED, K_LEFT, K_EVENT, K_NUMWANT, K_COMPACT,
       K_NO_PEER_ID, K_IP, K_COUNT };
static const char *const announce_keys[K_COUNT] = {
    "info_hash", "peer_id", "port", "uploaded", "downloaded", "left", "event", "numwant", "compact",
    "no_peer_id", "ip",
};

static int bad(char *why, size_t whylen, const char *msg)
{
    snprintf(why, whylen, "%s", msg);
    return -EINVAL;
}

int tracker_parse_announce(const char *query, size_t len, const struct sockaddr *from, tracker_announce_t *a,
                           char *why, size_t whylen)
{
    memset(a, 0, sizeof(*a));
    a->numwant = -1;
    a->compact = true;
    unsigned seen = 0;
    bool have_ip = false;
    httpd_query_iter_t it;
    const char *k, *v;
    size_t kl, vl;
    httpd_query_iter_init(&it, query, len);
    while (httpd_query_next(&it, &k, &kl, &v, &vl)) {
        char key[16], val[64];
        size_t dkl, dvl;
        if (httpd_unescape(k, kl, key, sizeof(key), &dkl) != 0)
            continue; /* not one of ours */
        int which = -1;
        for (int i = 0; i < K_COUNT; i++)
            if (strlen(announce_keys[i]) == dkl && memcmp(announce_keys[i], key, dkl) == 0)
                which = i;
        if (which < 0 || (seen & (1u << which)))
            continue; /* unknown (key, trackerid, supportcrypto...) or repeated: the first counts */
        seen |= 1u << which;
        int rc = httpd_unescape(v, vl, val, sizeof(val), &dvl);
        if (rc != 0) {
            snprintf(why, whylen, "invalid %s", announce_keys[which]);
            return -EINVAL;
        }
        uint64_t num;
        switch (which) {
        case K_INFO_HASH:
        case K_PEER_ID:
            if (dvl != TRACKER_HASH_LEN) {
                snprintf(why, whylen, "invalid %s (%zu bytes, want 20)", announce_keys[which], dvl);
                return -EINVAL;
            }
            memcpy(which == K_INFO_HASH ? a->info_hash : a->peer_id, val, TRACKER_HASH_LEN);
            break;
        case K_PORT:
            if (parse_u64(val, dvl, 65535, &num) != 0 || num == 0)
                return bad(why, whylen, "invalid port");
            a->addr[4] = (uint8_t)(num >> 8);
            a->addr[5] = (uint8_t)num;
            break;
        case K_UPLOADED:
        case K_DOWNLOADED:
        case K_LEFT:
            if (parse_u64(val, dvl, UINT64_MAX, &num) != 0) {
                snprintf(why, whylen, "invalid %s", announce_keys[which]);
                return -EINVAL;
            }
            if (which == K_UPLOADED)
                a->uploaded = num;
            else if (which == K_DOWNLOADED)
                a->downloaded = num;
            else {
                a->left = num;
                a->left_known = true;
            }
            break;
        case K_EVENT:
            /* Unknown events ("paused" of BEP 21...) are plain announces, as in most trackers. */
            if (dvl == 7 && !memcmp(val, "started", 7))
                a->event = TRACKER_EVENT_STARTED;
            else if (dvl == 7 && !memcmp(val, "stopped", 7))
                a->event = TRACKER_EVENT_STOPPED;
            else if (dvl == 9 && !memcmp(val, "completed", 9))
                a->event = TRACKER_EVENT_COMPLETED;
            break;
        case K_NUMWANT:
            /* Clients send -1 for "the default". */
            if (dvl > 0 && val[0] == '-') {
                if (parse_u64(val + 1, dvl - 1, UINT64_MAX, &num) != 0)
                    return bad(why, whylen, "invalid numwant");
                a->numwant = -1;
            } else {
                if (parse_u64(val, dvl, UINT64_MAX, &num) != 0)
                    return bad(why, whylen, "invalid numwant");
                a->numwant = num > INT32_MAX ? INT32_MAX : (int32_t)num;
            }
            break;
        case K_COMPACT:
            a->compact = !(dvl == 1 && val[0] == '0');
            break;
        case K_NO_PEER_ID:
            a->no_peer_id = !(dvl == 1 && val[0] == '0');
            break;
        case K_IP:
            if (from && is_loopback(from)) {
                char ip[INET_ADDRSTRLEN];
                if (dvl >= sizeof(ip))
                    return bad(why, whylen, "invalid ip");
                memcpy(ip, val, dvl);
                ip[dvl] = '\0';
                if (inet_pton(AF_INET, ip, a->addr) != 1)
                    return bad(why, whylen, "invalid ip (an IPv4 address is expected)");
                have_ip = true;
            }
            break;
        }
    }
    if (!(seen & (1u << K_INFO_HASH)))
        return bad(why, whylen, "missing info_hash");
    if (!(seen & (1u << K_PEER_ID)))
        return bad(why, whylen, "missing peer_id");
    if (!(seen & (1u << K_PORT)))
        return bad(why, whylen, "missing port");
    if (!have_ip && (!from || !ipv4_of(from, a->addr)))
        return bad(why, whylen, "only IPv4 peers are supported");
    return 0;
}

static int cmp_hash(const void *x, const void *y) { return memcmp(x, y, TRACKER_HASH_LEN); }

int tracker_parse_scrape(const char *query, size_t len, uint8_t (*hashes)[TRACKER_HASH_LEN], size_t *n,
                         char *why, size_t whylen)
{
    httpd_query_iter_t it;
    const char *k, *v;
    size_t kl, vl, count = 0;
    *n = 0;
    httpd_query_iter_init(&it, query, len);
    while (httpd_query_next(&it, &k, &kl, &v, &vl)) {
        char key[16], val[TRACKER_HASH_LEN];
        size_t dkl, dvl;
        if (httpd_unescape(k, kl, key, sizeof(key), &dkl) != 0 || dkl != 9 || memcmp(key, "info_hash", 9) != 0)
            continue;
        if (httpd_unescape(v, vl, val, sizeof(val), &dvl) != 0 || dvl != TRACKER_HASH_LEN)
            return bad(why, whylen, "invalid info_hash (want 20 bytes)");
        if (count == TRACKER_MAX_SCRAPE) {
            snprintf(why, whylen, "too many info_hash (at most %d a scrape)", TRACKER_MAX_SCRAPE);
            return -EINVAL;
        }
        memcpy(hashes[count++], val, TRACKER_HASH_LEN);
    }
    if (count == 0)
        return bad(why, whylen, "missing info_hash (a full scrape is not served)");
    qsort(hashes, count, TRACKER_HASH_LEN, cmp_hash);
    size_t u = 1;
    for (size_t i = 1; i < count; i++)
        if (memcmp(hashes[i], hashes[u - 1], TRACKER_HASH_LEN) != 0)
            memmove(hashes[u++], hashes[i], TRACKER_HASH_LEN);
    *n = u;
    return 0;
}

void tracker_handle_announce(tracker_state_t *t, const char *query, size_t len, const struct sockaddr *from,
                             uint64_t now_ms, bencode_buf_t *out)
{
    tracker_announce_t a;
    char why[128];
    if (tracker_parse_announce(query, len, from, &a, why, sizeof(why)) != 0)
        tracker_failure(out, why);
    else
        tracker_announce(t, &a, now_ms, out);
}

void tracker_handle_scrape(tracker_state_t *t, const char *query, size_t len, uint64_t now_ms, bencode_buf_t *out)
{
    uint8_t hashes[TRACKER_MAX_SCRAPE][TRACKER_HASH_LEN];
    size_t n;
    char why[128];
    if (tracker_parse_scrape(query, len, hashes, &n, why, sizeof(why)) != 0)
        tracker_failure(out, why);
    else
        tracker_scrape(t, (const uint8_t(*)[TRACKER_HASH_LEN])hashes, n, now_ms, out);
}

/* ---- state ------------------------------------------------------------------------------------ */

int tracker_state_new(const tracker_opts_t *o, tracker_state_t **out)
{
    *out = NULL;
    uint32_t interval = o->interval_s ? o->interval_s : TRACKER_DEFAULT_INTERVAL_S;
    if (interval > 86400 || o->min_interval_s > interval)
        return -EINVAL;
    tracker_state_t *t = xcalloc(1, sizeof(*t));
    t->interval_s = interval;
    t->min_interval_s = o->min_interval_s ? o->min_interval_s : (interval / 2 ? interval / 2 : 1);
    t->ttl_s = 2 * interval;
    t->numwant_default = o->numwant_default ? o->numwant_default : TRACKER_DEFAULT_NUMWANT;
    t->numwant_max = o->numwant_max ? o->numwant_max : TRACKER_MAX_NUMWANT;
    if (t->numwant_default > t->numwant_max)
        t->numwant_default = t->numwant_max;
    t->max_peers = o->max_peers ? o->max_peers : TRACKER_DEFAULT_MAX_PEERS;
    t->max_swarms = o->max_swarms ? o->max_swarms : TRACKER_DEFAULT_MAX_SWARMS;
    uint64_t seed = o->seed;
    if (!seed && getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
        seed = (uint64_t)(uintptr_t)t ^ 0x9e3779b97f4a7c15ULL;
    t->rng = mix64(seed) | 1;
    for (int i = 0; i < 3; i++)
        t->key[i] = rng_next(t);
    tab_resize(t, 1024);
    *out = t;
    return 0;
}

void tracker_state_free(tracker_state_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i <= t->tab_mask; i++)
        if (t->tab[i])
            swarm_free(t, t->tab[i]);
    free(t->tab);
    free(t);
}

size_t tracker_expire(tracker_state_t *t, uint64_t now_ms, size_t budget)
{
    uint32_t now_s = (uint32_t)(now_ms / 1000);
    size_t dropped = 0, slots = t->tab_mask + 1;
    if (budget > slots)
        budget = slots;
    while (budget) {
        size_t i = t->cursor;
        swarm_t *s = t->tab[i];
        if (s) {
            dropped += swarm_sweep(t, s, now_s);
            if (s->n == 0) {
                /* Backward shift may move a later swarm into slot i: look at i again (this ends:
                 * every deletion leaves one swarm fewer). */
                swarm_delete_slot(t, i);
                continue;
            }
        }
        t->cursor = (i + 1) & t->tab_mask;
        budget--;
    }
    return dropped;
}

void tracker_get_stats(const tracker_state_t *t, tracker_stats_t *st)
{
    st->swarms = t->n_swarms;
    st->peers = t->n_peers;
    st->seeders = t->n_seeders;
    st->bytes = t->bytes + sizeof(*t);
}

void tracker_pool_hash(const char *name, uint8_t out[TRACKER_HASH_LEN])
{
    static const char prefix[] = "preon-pool:";
    size_t pl = sizeof(prefix) - 1, nl = strlen(name);
    char *buf = xmalloc(pl + nl);
    memcpy(buf, prefix, pl);
    memcpy(buf + pl, name, nl);
    hash_t h;
    hash_sha256(buf, pl + nl, &h);
    free(buf);
    memcpy(out, h.b, TRACKER_HASH_LEN);
}

void tracker_job_hash(const hash_t *job_id, uint8_t out[TRACKER_HASH_LEN]) { memcpy(out, job_id->b, TRACKER_HASH_LEN); }
