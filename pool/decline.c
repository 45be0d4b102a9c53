/*
 * decline.c: the reasons volunteers give for not running a job, and the summary of them (decline.h).
 *
 * A job's table is an array sorted by pool peer (its base URL: a lookup per pool peer is a binary
 * search, so a status read of a pool of a thousand peers costs a thousand of them, not a million
 * compares), each entry holding the key that said it. It is bounded by DECLINE_MAX_ENTRIES: stale
 * entries go at every put, then the oldest.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jobdesc.h"
#include "core/xalloc.h"
#include "pool/decline.h"

typedef struct entry {
    char *peer; /* owned */
    char worker[DECLINE_MAX_ID + 1];
    decline_t d;
    uint64_t at_ms;
} entry_t;

struct decline_table {
    entry_t *e;
    size_t n, cap;
};

static const char *const names[DECLINE_N] = {
    [DECLINE_MEMORY] = "memory",       [DECLINE_DISK] = "disk",       [DECLINE_TRUST] = "trust",
    [DECLINE_OS] = "os",               [DECLINE_ARCH] = "arch",       [DECLINE_NETWORK] = "network",
    [DECLINE_IDLE] = "idle",           [DECLINE_SLOTS] = "slots",     [DECLINE_MEMORY_FREE] = "memory-free",
    [DECLINE_DISK_FREE] = "disk-free", [DECLINE_STOPPING] = "stopping", [DECLINE_NO_SLOTS] = "no-slots",
    [DECLINE_OTHER] = "other",
};

const char *decline_code_name(decline_code_t code)
{
    return code > 0 && code < DECLINE_N ? names[code] : NULL;
}

decline_code_t decline_code_from(const char *name, size_t n)
{
    if (n == 0 || n > 16)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || name[i] == '-'))
            return 0;
    for (int c = 1; c < DECLINE_N; c++)
        if (strlen(names[c]) == n && memcmp(names[c], name, n) == 0)
            return (decline_code_t)c;
    return DECLINE_OTHER;
}

static bool has_bytes(decline_code_t c)
{
    return c == DECLINE_MEMORY || c == DECLINE_DISK || c == DECLINE_MEMORY_FREE || c == DECLINE_DISK_FREE;
}

int decline_check(const decline_t *d)
{
    if (!d || d->code <= 0 || d->code >= DECLINE_N || d->have > DECLINE_MAX_BYTES)
        return -EINVAL;
    if (d->code == DECLINE_SLOTS && (d->of > DECLINE_MAX_SLOTS || d->used > d->of))
        return -EINVAL;
    return 0;
}

decline_table_t *decline_table_new(void) { return xcalloc(1, sizeof(decline_table_t)); }

void decline_table_free(decline_table_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->e[i].peer);
    free(t->e);
    free(t);
}

/* The index of peer in t, or where it would go (*found false). */
static size_t find(const decline_table_t *t, const char *peer, bool *found)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->e[mid].peer, peer);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static bool fresh(const entry_t *e, uint64_t now_ms)
{
    return now_ms < e->at_ms + DECLINE_STALE_MS; /* at_ms is never later than a now (put refuses it) */
}

static void remove_at(decline_table_t *t, size_t i)
{
    free(t->e[i].peer);
    memmove(&t->e[i], &t->e[i + 1], (t->n - i - 1) * sizeof(entry_t));
    t->n--;
}

int decline_put(decline_table_t *t, const char *peer, const char *worker, const decline_t *d, uint64_t now_ms)
{
    size_t wl = worker ? strlen(worker) : 0, pl = peer ? strlen(peer) : 0;
    if (!t || wl == 0 || wl > DECLINE_MAX_ID || pl == 0 || pl > DECLINE_MAX_PEER || decline_check(d) != 0)
        return -EINVAL;
    bool found;
    size_t i = find(t, peer, &found);
    if (found) { /* whichever key said it before: the peer's voice is now this one's */
        memcpy(t->e[i].worker, worker, wl + 1);
        t->e[i].d = *d;
        t->e[i].at_ms = now_ms;
        return 0;
    }
    size_t k = 0; /* stale ones go */
    for (size_t j = 0; j < t->n; j++) {
        if (fresh(&t->e[j], now_ms) && t->e[j].at_ms <= now_ms)
            t->e[k++] = t->e[j];
        else
            free(t->e[j].peer);
    }
    t->n = k;
    if (t->n >= DECLINE_MAX_ENTRIES) { /* full of fresh ones: the oldest goes */
        size_t old = 0;
        for (size_t j = 1; j < t->n; j++)
            if (t->e[j].at_ms < t->e[old].at_ms)
                old = j;
        remove_at(t, old);
    }
    i = find(t, peer, &found);
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->e = xreallocarray(t->e, t->cap, sizeof(entry_t));
    }
    memmove(&t->e[i + 1], &t->e[i], (t->n - i) * sizeof(entry_t));
    t->n++;
    t->e[i].peer = xstrdup(peer);
    memcpy(t->e[i].worker, worker, wl + 1);
    t->e[i].d = *d;
    t->e[i].at_ms = now_ms;
    return 0;
}

void decline_forget(decline_table_t *t, const char *peer)
{
    bool found;
    size_t i = t && peer ? find(t, peer, &found) : 0;
    if (t && peer && found)
        remove_at(t, i);
}

bool decline_get(const decline_table_t *t, const char *peer, const char *worker, uint64_t now_ms, decline_t *out)
{
    bool found = false;
    size_t i = t && peer && worker ? find(t, peer, &found) : 0;
    if (!found || !fresh(&t->e[i], now_ms) || strcmp(t->e[i].worker, worker) != 0)
        return false;
    *out = t->e[i].d;
    return true;
}

size_t decline_count(const decline_table_t *t) { return t ? t->n : 0; }

/* Keeps the DECLINE_MAX_SHOWN largest numbers, largest first. */
static void keep_have(decline_groups_t *g, decline_code_t c, uint64_t v)
{
    size_t n = g->n_have[c], i = n < DECLINE_MAX_SHOWN ? n : DECLINE_MAX_SHOWN;
    if (i == DECLINE_MAX_SHOWN && v <= g->have[c][DECLINE_MAX_SHOWN - 1]) {
        g->n_have[c]++; /* counted, not shown */
        return;
    }
    if (i == DECLINE_MAX_SHOWN)
        i--; /* the smallest shown goes */
    while (i > 0 && g->have[c][i - 1] < v) {
        g->have[c][i] = g->have[c][i - 1];
        i--;
    }
    g->have[c][i] = v;
    g->n_have[c]++;
}

void decline_group(const decline_table_t *t, const decline_peer_t *peers, size_t npeers, uint64_t now_ms,
                   decline_groups_t *out)
{
    memset(out, 0, sizeof(*out));
    out->peers = npeers;
    for (size_t i = 0; i < npeers; i++) {
        decline_t d;
        if (!peers || !decline_get(t, peers[i].url, peers[i].worker, now_ms, &d)) {
            out->silent++;
            continue;
        }
        out->n[d.code]++;
        if (has_bytes(d.code))
            keep_have(out, d.code, d.have);
        if (d.code == DECLINE_SLOTS) {
            out->used += d.used;
            out->of += d.of;
        }
    }
}

/* Appends to buf (cap bytes, NUL-terminated), cutting at cap. */
__attribute__((format(printf, 4, 5))) static void add(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    if (*len + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = *len + (size_t)n < cap ? *len + (size_t)n : cap - 1;
}

static bool printable(const char *s)
{
    if (!s || !*s || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7e)
            return false;
    return true;
}

/* " (have 16G, 8G, ...)" for a code with numbers. */
static void add_haves(const decline_groups_t *g, decline_code_t c, const char *verb, char *buf, size_t cap,
                      size_t *len)
{
    size_t shown = g->n_have[c] < DECLINE_MAX_SHOWN ? g->n_have[c] : DECLINE_MAX_SHOWN;
    char sz[32];
    add(buf, cap, len, " (%s", verb);
    for (size_t i = 0; i < shown; i++)
        add(buf, cap, len, "%s%s", i ? ", " : verb[0] ? " " : "", jobdesc_format_size(g->have[c][i], sz, sizeof(sz)));
    add(buf, cap, len, "%s)", g->n_have[c] > shown ? ", ..." : "");
}

/* One group: "2 lack memory 64G (have 16G, 8G)". */
static void add_group(const decline_groups_t *g, decline_code_t c, const decline_need_t *need, char *buf,
                      size_t cap, size_t *len)
{
    size_t n = g->n[c];
    bool one = n == 1;
    char sz[32];
    add(buf, cap, len, "%zu ", n);
    switch (c) {
    case DECLINE_MEMORY:
    case DECLINE_DISK: {
        uint64_t want = c == DECLINE_MEMORY ? need->memory : need->disk;
        add(buf, cap, len, "%s %s", one ? "lacks" : "lack", c == DECLINE_MEMORY ? "memory" : "disk");
        if (want)
            add(buf, cap, len, " %s", jobdesc_format_size(want, sz, sizeof(sz)));
        add_haves(g, c, one ? "has" : "have", buf, cap, len);
        break;
    }
    case DECLINE_TRUST: add(buf, cap, len, "%s not trust your key", one ? "does" : "do"); break;
    case DECLINE_OS:
        add(buf, cap, len, "%s not run %s%s", one ? "does" : "do", printable(need->os) ? "os " : "its os",
            printable(need->os) ? need->os : "");
        break;
    case DECLINE_ARCH:
        add(buf, cap, len, "%s not have %s%s", one ? "does" : "do", printable(need->arch) ? "arch " : "its arch",
            printable(need->arch) ? need->arch : "");
        break;
    case DECLINE_NETWORK: add(buf, cap, len, "%s not allow network", one ? "does" : "do"); break;
    case DECLINE_IDLE:
        add(buf, cap, len, "%s in use by %s (--when idle)", one ? "is" : "are", one ? "its owner" : "their owners");
        break;
    case DECLINE_SLOTS: add(buf, cap, len, "busy (%llu of %llu slots)", (unsigned long long)g->used,
                            (unsigned long long)g->of); break;
    case DECLINE_MEMORY_FREE:
    case DECLINE_DISK_FREE:
        add(buf, cap, len, "%s too little %s free", one ? "has" : "have", c == DECLINE_MEMORY_FREE ? "memory" : "disk");
        add_haves(g, c, "", buf, cap, len);
        break;
    case DECLINE_STOPPING: add(buf, cap, len, "%s stopping", one ? "is" : "are"); break;
    case DECLINE_NO_SLOTS: add(buf, cap, len, "run%s no tasks (--slots 0)", one ? "s" : ""); break;
    default: add(buf, cap, len, "%s", one ? "declines for another reason" : "decline for other reasons"); break;
    }
}

char *decline_render(const decline_groups_t *g, const decline_need_t *need, char *buf, size_t cap)
{
    static const decline_need_t none = {0};
    size_t len = 0;
    if (cap == 0)
        return buf;
    buf[0] = '\0';
    need = need ? need : &none;
    if (g->peers == 0) {
        add(buf, cap, &len, "no other peer in the pool");
        return buf;
    }
    add(buf, cap, &len, "%zu pool peer%s: ", g->peers, g->peers == 1 ? "" : "s");
    bool done[DECLINE_N] = {false}, first = true;
    for (;;) { /* the largest group left, the first code among equals */
        int best = 0;
        for (int c = 1; c < DECLINE_N; c++)
            if (!done[c] && g->n[c] && (!best || g->n[c] > g->n[best]))
                best = c;
        if (!best)
            break;
        done[best] = true;
        if (!first)
            add(buf, cap, &len, ", ");
        first = false;
        add_group(g, (decline_code_t)best, need, buf, cap, &len);
    }
    if (g->silent)
        add(buf, cap, &len, "%s%zu %s not said why", first ? "" : ", ", g->silent, g->silent == 1 ? "has" : "have");
    return buf;
}
