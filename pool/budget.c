/*
 * budget.c: token buckets by key (pool/budget.h). Entries live in an open-addressing table of
 * twice max_entries slots (FNV-1a of the key), so a lookup is O(1); when the table holds
 * max_entries keys, the least recently used one is found by a scan of the 2 * max_entries slots
 * (only when a new key arrives while full: one scan per new key) and replaced.
 * Tokens are kept in thousandths, so a rate below 1000/s refills smoothly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "pool/budget.h"

typedef struct entry {
    char key[BUDGET_MAX_KEY + 1]; /* "" = free */
    uint64_t milli;               /* tokens * 1000 */
    uint64_t at_ms;               /* when milli was last brought up to date */
} entry_t;

struct budget {
    uint64_t rate, burst_milli;
    size_t cap, n, slots;
    entry_t *e;
    uint64_t refused;
};

budget_t *budget_new(uint32_t rate, uint32_t burst, size_t max_entries)
{
    budget_t *b = xcalloc(1, sizeof(*b));
    b->rate = rate ? rate : 1;
    b->burst_milli = (uint64_t)(burst ? burst : 1) * 1000;
    b->cap = max_entries ? max_entries : 1;
    b->slots = 2 * b->cap;
    b->e = xcalloc(b->slots, sizeof(*b->e));
    return b;
}

void budget_free(budget_t *b)
{
    if (!b)
        return;
    free(b->e);
    free(b);
}

static size_t hash(const char *k)
{
    uint64_t h = 1469598103934665603ull;
    for (; *k; k++)
        h = (h ^ (uint8_t)*k) * 1099511628211ull;
    return (size_t)h;
}

/* The slot of key, or of the free slot where it would go. */
static size_t slot_of(const budget_t *b, const char *key)
{
    size_t i = hash(key) % b->slots;
    while (b->e[i].key[0] && strcmp(b->e[i].key, key) != 0)
        i = (i + 1) % b->slots;
    return i;
}

/* Removes slot i, moving later entries of its run back (linear probing deletion). */
static void remove_at(budget_t *b, size_t i)
{
    b->e[i].key[0] = '\0';
    b->n--;
    for (size_t j = (i + 1) % b->slots; b->e[j].key[0]; j = (j + 1) % b->slots) {
        entry_t moved = b->e[j];
        b->e[j].key[0] = '\0';
        b->e[slot_of(b, moved.key)] = moved;
    }
}

static void refill(const budget_t *b, entry_t *e, uint64_t now_ms)
{
    if (now_ms > e->at_ms) {
        uint64_t add = (now_ms - e->at_ms) * b->rate; /* ms * tokens/s = thousandths of a token */
        e->milli = add >= b->burst_milli - e->milli ? b->burst_milli : e->milli + add;
    }
    if (now_ms > e->at_ms)
        e->at_ms = now_ms;
}

bool budget_take(budget_t *b, const char *key, uint64_t now_ms)
{
    char k[BUDGET_MAX_KEY + 1];
    snprintf(k, sizeof(k), "%s", key && *key ? key : "-");
    size_t i = slot_of(b, k);
    if (!b->e[i].key[0]) {
        uint64_t start = b->burst_milli;
        if (b->n == b->cap) { /* full: the entry idle longest goes */
            size_t old = SIZE_MAX;
            for (size_t s = 0; s < b->slots; s++)
                if (b->e[s].key[0] && (old == SIZE_MAX || b->e[s].at_ms < b->e[old].at_ms))
                    old = s;
            entry_t *o = &b->e[old];
            refill(b, o, now_ms);
            if (o->milli < b->burst_milli) /* not idle long enough to be full: its debt stays */
                start = o->milli;
            remove_at(b, old);
            i = slot_of(b, k);
        }
        entry_t *e = &b->e[i];
        memcpy(e->key, k, sizeof(e->key));
        e->milli = start;
        e->at_ms = now_ms;
        b->n++;
    }
    entry_t *e = &b->e[i];
    refill(b, e, now_ms);
    if (e->milli < 1000) {
        b->refused++;
        return false;
    }
    e->milli -= 1000;
    return true;
}

size_t budget_size(const budget_t *b) { return b->n; }

uint64_t budget_refused(const budget_t *b) { return b->refused; }
