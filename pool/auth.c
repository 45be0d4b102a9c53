/*
 * auth.c: the signed text of a request, its four headers, and the replay guard (pool/auth.h).
 *
 * The guard remembers (key, nonce) pairs in the order they were admitted, in a ring that grows by
 * doubling up to max_seen, with a chained hash table over it. Every pair expires 2 * window after
 * it was admitted (by then its own time, which was within the window then, is out of it), so
 * expiry is in admission order and pruning pops the ring's head. Buckets are chosen by SHA-256 of
 * a random seed and the pair: a caller picks its nonces, and must not be able to pick colliding
 * ones.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/hash.h"
#include "core/xalloc.h"
#include "pool/auth.h"

#define AUTH_VERSION_LINE "preon-request-1"
#define AUTH_MIN_RING 1024

static bool line_ok(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f || n >= max)
            return false;
    return n > 0;
}

int auth_message(char *out, size_t outlen, const char *method, const char *target, const key_pub_t *to,
                 uint64_t time_ms, const uint8_t nonce[AUTH_NONCE_LEN])
{
    if (!out || !method || !target || !to || !nonce || !line_ok(method, 16) || !line_ok(target, AUTH_MAX_TARGET))
        return -EINVAL;
    char to_hex_s[KEY_PUB_HEX_LEN + 1], nonce_hex[AUTH_NONCE_HEX_LEN + 1];
    key_pub_to_hex(to, to_hex_s);
    hash_hex_encode(nonce, AUTH_NONCE_LEN, nonce_hex);
    int n = snprintf(out, outlen, AUTH_VERSION_LINE "\n%s\n%s\n%s\n%" PRIu64 "\n%s\n", method, target, to_hex_s,
                     time_ms, nonce_hex);
    return n < 0 || (size_t)n >= outlen ? -EINVAL : n;
}

int auth_sign(const keypair_t *k, const char *method, const char *target, const key_pub_t *to, uint64_t time_ms,
              const uint8_t nonce[AUTH_NONCE_LEN], auth_headers_t *out)
{
    char msg[AUTH_MAX_MESSAGE];
    int n = auth_message(msg, sizeof(msg), method, target, to, time_ms, nonce);
    if (n < 0)
        return n;
    uint8_t sig[KEY_SIG_LEN];
    key_sign(k, msg, (size_t)n, sig);
    key_pub_t pub;
    key_public(k, &pub);
    char khex[KEY_PUB_HEX_LEN + 1], nhex[AUTH_NONCE_HEX_LEN + 1], shex[KEY_SIG_HEX_LEN + 1];
    key_pub_to_hex(&pub, khex);
    hash_hex_encode(nonce, AUTH_NONCE_LEN, nhex);
    key_sig_to_hex(sig, shex);
    snprintf(out->key, sizeof(out->key), AUTH_H_KEY ": %s", khex);
    snprintf(out->time, sizeof(out->time), AUTH_H_TIME ": %" PRIu64, time_ms);
    snprintf(out->nonce, sizeof(out->nonce), AUTH_H_NONCE ": %s", nhex);
    snprintf(out->sig, sizeof(out->sig), AUTH_H_SIG ": %s", shex);
    return 0;
}

int auth_parse(const char *key, const char *time, const char *nonce, const char *sig, auth_req_t *out)
{
    if (!key && !time && !nonce && !sig)
        return -ENOENT;
    if (!key || !time || !nonce || !sig)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    if (key_pub_from_hex(key, strlen(key), &out->key) != 0 ||
        hash_hex_decode(nonce, strlen(nonce), out->nonce, AUTH_NONCE_LEN) != 0 ||
        key_sig_from_hex(sig, strlen(sig), out->sig) != 0)
        return -EINVAL;
    /* decimal digits only, no sign or spaces, at most 19 of them (no overflow) */
    size_t n = strlen(time);
    if (n == 0 || n > 19)
        return -EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (time[i] < '0' || time[i] > '9')
            return -EINVAL;
        v = v * 10 + (uint64_t)(time[i] - '0');
    }
    out->time_ms = v;
    return 0;
}

bool auth_verify(const auth_req_t *r, const char *method, const char *target, const key_pub_t *to)
{
    char msg[AUTH_MAX_MESSAGE];
    int n = auth_message(msg, sizeof(msg), method, target, to, r->time_ms, r->nonce);
    return n >= 0 && key_verify(&r->key, msg, (size_t)n, r->sig);
}

/* ---- signed jobs ---- */

#define AUTH_JOB_LINE "preon-job-1\n"

void auth_job_sign(const keypair_t *k, const char *job_id, char *sig_hex)
{
    char msg[sizeof(AUTH_JOB_LINE) + 80];
    int n = snprintf(msg, sizeof(msg), AUTH_JOB_LINE "%s", job_id);
    uint8_t sig[KEY_SIG_LEN];
    key_sign(k, msg, (size_t)n, sig);
    key_sig_to_hex(sig, sig_hex);
}

bool auth_job_verify(const char *submitter_hex, const char *job_id, const char *sig_hex, key_pub_t *key)
{
    key_pub_t pub;
    uint8_t sig[KEY_SIG_LEN];
    if (!submitter_hex || !job_id || !sig_hex || strlen(job_id) != 64 ||
        key_pub_from_hex(submitter_hex, strlen(submitter_hex), &pub) != 0 ||
        key_sig_from_hex(sig_hex, strlen(sig_hex), sig) != 0)
        return false;
    char msg[sizeof(AUTH_JOB_LINE) + 80];
    int n = snprintf(msg, sizeof(msg), AUTH_JOB_LINE "%s", job_id);
    if (!key_verify(&pub, msg, (size_t)n, sig))
        return false;
    if (key)
        *key = pub;
    return true;
}

/* ---- signed results ---- */

#define AUTH_RESULT_LINE "preon-result-1\n"
#define AUTH_RESULT_MAX (sizeof(AUTH_RESULT_LINE) + 64 + 12 + 64 + 12 + 4)

static int result_message(char *msg, const char *job_id, uint32_t task, const char *rid, int exit_code)
{
    if (!job_id || !rid || strlen(job_id) != 64 || strlen(rid) != 64)
        return -1;
    return snprintf(msg, AUTH_RESULT_MAX, AUTH_RESULT_LINE "%s\n%" PRIu32 "\n%s\n%d\n", job_id, task, rid, exit_code);
}

void auth_result_sign(const keypair_t *k, const char *job_id, uint32_t task, const char *rid, int exit_code,
                      char *sig_hex)
{
    char msg[AUTH_RESULT_MAX];
    int n = result_message(msg, job_id, task, rid, exit_code);
    uint8_t sig[KEY_SIG_LEN];
    key_sign(k, msg, n < 0 ? 0 : (size_t)n, sig);
    key_sig_to_hex(sig, sig_hex);
}

bool auth_result_verify(const key_pub_t *worker, const char *job_id, uint32_t task, const char *rid, int exit_code,
                        const char *sig_hex)
{
    char msg[AUTH_RESULT_MAX];
    uint8_t sig[KEY_SIG_LEN];
    int n = result_message(msg, job_id, task, rid, exit_code);
    return n > 0 && sig_hex && key_sig_from_hex(sig_hex, strlen(sig_hex), sig) == 0 &&
           key_verify(worker, msg, (size_t)n, sig);
}

#define AUTH_ACCEPTED_LINE "preon-accepted-1\n"
#define AUTH_ACCEPTED_MAX (sizeof(AUTH_ACCEPTED_LINE) + 64 + 12 + 64 + 12 + 4 + 64 + 8)

static int accepted_message(char *msg, const char *job_id, uint32_t task, const char *id, int exit_code, bool ok,
                            const char *worker)
{
    if (!job_id || !id || strlen(job_id) != 64 || strlen(id) != 64 || (worker && strlen(worker) > 64))
        return -1;
    return snprintf(msg, AUTH_ACCEPTED_MAX, AUTH_ACCEPTED_LINE "%s\n%" PRIu32 "\n%s\n%d\n%d\n%s\n", job_id, task, id,
                    exit_code, ok ? 1 : 0, worker && *worker ? worker : "-");
}

void auth_accepted_sign(const keypair_t *k, const char *job_id, uint32_t task, const char *id, int exit_code, bool ok,
                        const char *worker, char *sig_hex)
{
    char msg[AUTH_ACCEPTED_MAX];
    int n = accepted_message(msg, job_id, task, id, exit_code, ok, worker);
    uint8_t sig[KEY_SIG_LEN];
    key_sign(k, msg, n < 0 ? 0 : (size_t)n, sig);
    key_sig_to_hex(sig, sig_hex);
}

bool auth_accepted_verify(const key_pub_t *submitter, const char *job_id, uint32_t task, const char *id,
                          int exit_code, bool ok, const char *worker, const char *sig_hex)
{
    char msg[AUTH_ACCEPTED_MAX];
    uint8_t sig[KEY_SIG_LEN];
    int n = accepted_message(msg, job_id, task, id, exit_code, ok, worker);
    return n > 0 && sig_hex && key_sig_from_hex(sig_hex, strlen(sig_hex), sig) == 0 &&
           key_verify(submitter, msg, (size_t)n, sig);
}

/* ---- endorsements ---- */

#define AUTH_ENDORSE_LINE "preon-endorse-1\n"

static size_t endorse_message(char *msg, size_t cap, const key_pub_t *who, uint64_t until_ms)
{
    char hex[KEY_PUB_HEX_LEN + 1];
    key_pub_to_hex(who, hex);
    int n = snprintf(msg, cap, AUTH_ENDORSE_LINE "%s\n%" PRIu64 "\n", hex, until_ms);
    return (size_t)n;
}

void auth_endorse(const keypair_t *authority, const key_pub_t *who, uint64_t until_ms, auth_endorsement_t *out)
{
    char msg[sizeof(AUTH_ENDORSE_LINE) + KEY_PUB_HEX_LEN + 32];
    memset(out, 0, sizeof(*out));
    out->who = *who;
    key_public(authority, &out->by);
    out->until_ms = until_ms;
    key_sign(authority, msg, endorse_message(msg, sizeof(msg), who, until_ms), out->sig);
}

bool auth_endorsement_verify(const auth_endorsement_t *e)
{
    char msg[sizeof(AUTH_ENDORSE_LINE) + KEY_PUB_HEX_LEN + 32];
    return key_verify(&e->by, msg, endorse_message(msg, sizeof(msg), &e->who, e->until_ms), e->sig);
}

bool auth_endorsement_current(const auth_endorsement_t *e, uint64_t now_ms)
{
    return e->until_ms == 0 || now_ms < e->until_ms;
}

void auth_endorsement_format(const auth_endorsement_t *e, char *out, size_t outlen)
{
    char who[KEY_PUB_HEX_LEN + 1], by[KEY_PUB_HEX_LEN + 1], sig[KEY_SIG_HEX_LEN + 1];
    key_pub_to_hex(&e->who, who);
    key_pub_to_hex(&e->by, by);
    key_sig_to_hex(e->sig, sig);
    snprintf(out, outlen, AUTH_ENDORSE_WORD " %s %s %" PRIu64 " %s", who, by, e->until_ms, sig);
}

/* The next white-space-separated word of text[*i..end): its start and length (0 at the end). */
static size_t next_word(const char *text, size_t *i, size_t end, const char **w)
{
    while (*i < end && (text[*i] == ' ' || text[*i] == '\t' || text[*i] == '\r'))
        (*i)++;
    *w = text + *i;
    size_t a = *i;
    while (*i < end && text[*i] != ' ' && text[*i] != '\t' && text[*i] != '\r')
        (*i)++;
    return *i - a;
}

static bool parse_endorsement_line(const char *text, size_t i, size_t end, auth_endorsement_t *e)
{
    const char *w;
    size_t n = next_word(text, &i, end, &w);
    if (n != strlen(AUTH_ENDORSE_WORD) || memcmp(w, AUTH_ENDORSE_WORD, n) != 0)
        return false;
    n = next_word(text, &i, end, &w);
    if (key_pub_from_hex(w, n, &e->who) != 0)
        return false;
    n = next_word(text, &i, end, &w);
    if (key_pub_from_hex(w, n, &e->by) != 0)
        return false;
    n = next_word(text, &i, end, &w);
    if (n == 0 || n > 19)
        return false;
    e->until_ms = 0;
    for (size_t k = 0; k < n; k++) {
        if (w[k] < '0' || w[k] > '9')
            return false;
        e->until_ms = e->until_ms * 10 + (uint64_t)(w[k] - '0');
    }
    n = next_word(text, &i, end, &w);
    return key_sig_from_hex(w, n, e->sig) == 0;
}

/*
 * Calls one(arg, text, start, end) for each line of text[0..len) that is neither blank nor a '#'
 * comment; a line it refuses (false) counts in *bad, and why names the first (its number, what).
 */
static void each_line(const char *text, size_t len, bool (*one)(void *arg, const char *text, size_t i, size_t end),
                      void *arg, size_t *bad, char *why, size_t whylen, const char *what)
{
    size_t line = 0;
    for (size_t i = 0; i < len;) {
        size_t end = i;
        while (end < len && text[end] != '\n')
            end++;
        line++;
        size_t a = i;
        const char *w;
        size_t wl = next_word(text, &a, end, &w);
        if (wl && w[0] != '#' && !one(arg, text, i, end)) {
            if (*bad == 0 && why && whylen)
                snprintf(why, whylen, "line %zu is not %s", line, what);
            (*bad)++;
        }
        i = end + 1;
    }
}

typedef struct endorse_out {
    auth_endorsement_t **out;
    size_t *n;
} endorse_out_t;

static bool one_endorsement(void *arg, const char *text, size_t i, size_t end)
{
    endorse_out_t *o = arg;
    auth_endorsement_t e;
    if (!parse_endorsement_line(text, i, end, &e))
        return false;
    *o->out = xreallocarray(*o->out, *o->n + 1, sizeof(**o->out));
    (*o->out)[(*o->n)++] = e;
    return true;
}

void auth_endorsement_parse(const char *text, size_t len, auth_endorsement_t **out, size_t *n, size_t *bad,
                            char *why, size_t whylen)
{
    endorse_out_t o = {out, n};
    each_line(text, len, one_endorsement, &o, bad, why, whylen, "an endorsement (as preon endorse prints it)");
}

/* ---- trust lists ---- */

typedef struct keys_out {
    key_pub_t **keys;
    size_t *n;
} keys_out_t;

static bool one_key(void *arg, const char *text, size_t i, size_t end)
{
    keys_out_t *o = arg;
    const char *w;
    size_t wl = next_word(text, &i, end, &w);
    key_pub_t k;
    if (key_pub_from_hex(w, wl, &k) != 0)
        return false;
    *o->keys = xreallocarray(*o->keys, *o->n + 1, sizeof(**o->keys));
    (*o->keys)[(*o->n)++] = k;
    return true;
}

void auth_trust_parse(const char *text, size_t len, key_pub_t **keys, size_t *n, size_t *bad, char *why,
                      size_t whylen)
{
    keys_out_t o = {keys, n};
    each_line(text, len, one_key, &o, bad, why, whylen, "a key (64 hex digits, then a comment)");
}

/* ---- the replay guard ---- */

typedef struct seen {
    uint8_t kn[KEY_PUB_LEN + AUTH_NONCE_LEN];
    uint64_t expire_ms;
    uint32_t chain; /* next ring slot + 1 in the same bucket, 0 = end */
} seen_t;

struct auth_guard {
    uint64_t window_ms;
    uint64_t floor_ms;
    size_t max_seen;
    uint8_t seed[16];
    seen_t *ring;
    size_t cap, head, count; /* ring slots in use: head .. head + count - 1 (mod cap) */
    uint32_t *buckets;       /* ring slot + 1, 0 = empty; 2 * cap of them */
    size_t nbuckets;
};

static size_t bucket_of(const auth_guard_t *g, const uint8_t *kn)
{
    uint8_t buf[sizeof(g->seed) + KEY_PUB_LEN + AUTH_NONCE_LEN];
    memcpy(buf, g->seed, sizeof(g->seed));
    memcpy(buf + sizeof(g->seed), kn, KEY_PUB_LEN + AUTH_NONCE_LEN);
    hash_t h;
    hash_sha256(buf, sizeof(buf), &h);
    uint64_t v;
    memcpy(&v, h.b, sizeof(v));
    return (size_t)(v & (g->nbuckets - 1));
}

static void link_slot(auth_guard_t *g, size_t slot)
{
    size_t b = bucket_of(g, g->ring[slot].kn);
    g->ring[slot].chain = g->buckets[b];
    g->buckets[b] = (uint32_t)(slot + 1);
}

static void rebuild(auth_guard_t *g, size_t cap)
{
    seen_t *ring = xcalloc(cap, sizeof(*ring));
    for (size_t i = 0; i < g->count; i++)
        ring[i] = g->ring[(g->head + i) % g->cap];
    free(g->ring);
    free(g->buckets);
    g->ring = ring;
    g->cap = cap;
    g->head = 0;
    g->nbuckets = 1;
    while (g->nbuckets < cap * 2) /* a power of two: bucket_of masks */
        g->nbuckets *= 2;
    g->buckets = xcalloc(g->nbuckets, sizeof(*g->buckets));
    for (size_t i = 0; i < g->count; i++)
        link_slot(g, i);
}

auth_guard_t *auth_guard_new(uint64_t window_ms, size_t max_seen)
{
    auth_guard_t *g = xcalloc(1, sizeof(*g));
    g->window_ms = window_ms ? window_ms : AUTH_WINDOW_MS;
    g->max_seen = max_seen ? max_seen : AUTH_MAX_SEEN;
    if (getrandom(g->seed, sizeof(g->seed), 0) != (ssize_t)sizeof(g->seed)) {
        struct timespec ts; /* no entropy source: unpredictable enough against bucket grinding */
        clock_gettime(CLOCK_MONOTONIC, &ts);
        memcpy(g->seed, &ts, sizeof(ts) < sizeof(g->seed) ? sizeof(ts) : sizeof(g->seed));
    }
    size_t cap = g->max_seen < AUTH_MIN_RING ? g->max_seen : AUTH_MIN_RING;
    size_t p = 1;
    while (p < cap)
        p *= 2;
    g->cap = 0;
    rebuild(g, p);
    return g;
}

void auth_guard_free(auth_guard_t *g)
{
    if (!g)
        return;
    free(g->ring);
    free(g->buckets);
    free(g);
}

/* Drops the ring's head (the oldest pair) from its bucket chain and the ring. */
static void pop_head(auth_guard_t *g)
{
    size_t slot = g->head;
    uint32_t *pp = &g->buckets[bucket_of(g, g->ring[slot].kn)];
    while (*pp && *pp != slot + 1)
        pp = &g->ring[*pp - 1].chain;
    if (*pp)
        *pp = g->ring[slot].chain;
    g->head = (g->head + 1) % g->cap;
    g->count--;
}

int auth_guard_admit(auth_guard_t *g, const key_pub_t *key, uint64_t time_ms, const uint8_t nonce[AUTH_NONCE_LEN],
                     uint64_t now_ms)
{
    if (time_ms + g->window_ms < now_ms || time_ms > now_ms + g->window_ms || time_ms < g->floor_ms)
        return -ETIME;
    while (g->count && g->ring[g->head].expire_ms <= now_ms)
        pop_head(g);
    uint8_t kn[KEY_PUB_LEN + AUTH_NONCE_LEN];
    memcpy(kn, key->b, KEY_PUB_LEN);
    memcpy(kn + KEY_PUB_LEN, nonce, AUTH_NONCE_LEN);
    for (uint32_t s = g->buckets[bucket_of(g, kn)]; s; s = g->ring[s - 1].chain)
        if (!memcmp(g->ring[s - 1].kn, kn, sizeof(kn)))
            return -EALREADY;
    if (g->count == g->cap) {
        if (g->cap >= g->max_seen)
            return -ENOSPC;
        size_t cap = g->cap * 2 > g->max_seen ? g->max_seen : g->cap * 2;
        rebuild(g, cap);
    }
    size_t slot = (g->head + g->count) % g->cap;
    memcpy(g->ring[slot].kn, kn, sizeof(kn));
    /* in admission order even if the clock went back: never before the newest one's */
    uint64_t exp = now_ms + 2 * g->window_ms;
    if (g->count) {
        uint64_t last = g->ring[(g->head + g->count - 1) % g->cap].expire_ms;
        if (exp < last)
            exp = last;
    }
    g->ring[slot].expire_ms = exp;
    g->count++;
    link_slot(g, slot);
    return 0;
}

size_t auth_guard_size(const auth_guard_t *g) { return g->count; }

void auth_guard_set_floor(auth_guard_t *g, uint64_t floor_ms) { g->floor_ms = floor_ms; }
