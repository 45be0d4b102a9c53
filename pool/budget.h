/**
 * @file budget.h  Request budgets: token buckets keyed by a string (a host's address, a caller's
 * key), so one flooding peer cannot slow the others (issue 9, item 7). Pure: time comes in as
 * now_ms; no clock, no sockets. A bucket holds up to `burst` tokens and refills at `rate` tokens
 * per second; a request takes one token or is refused. At most max_entries keys are tracked: a new
 * key takes the place of the one idle longest (an idle bucket is full again, so forgetting it loses
 * nothing unless it was idle for less than burst / rate seconds; then the newcomer starts with what
 * that one had left, not with a full burst). Keys are compared whole: an IPv6 host that rotates its
 * addresses within its /64 gets a bucket per address. Tested in tests/unit/test_budget.c.
 */
#ifndef PREON_POOL_BUDGET_H
#define PREON_POOL_BUDGET_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef BUDGET_MAX_KEY
#define BUDGET_MAX_KEY 64 /* bytes of a key kept (longer ones are cut) */
#endif

typedef struct budget budget_t;

/** rate: tokens per second (> 0); burst: at most that many at once (>= 1). Aborts on OOM. */
budget_t *budget_new(uint32_t rate, uint32_t burst, size_t max_entries);
void budget_free(budget_t *b);
/** Takes one token of key's bucket at now_ms: true, or false (over its budget; nothing taken). */
bool budget_take(budget_t *b, const char *key, uint64_t now_ms);
/** Keys tracked now. */
size_t budget_size(const budget_t *b);
/** Requests refused so far. */
uint64_t budget_refused(const budget_t *b);

#endif
