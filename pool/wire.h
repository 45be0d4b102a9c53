/**
 * @file wire.h  Pure codecs for what peers send each other (docs/protocol.md). Each decoder takes
 * untrusted bytes, checks every count and value against a named limit before keeping anything, and
 * says what was wrong in why; each encoder writes exactly what its decoder accepts. No I/O, no
 * clock, no loop: unit-tested (tests/unit/test_wire.c) and fuzzed (tests/fuzz/fuzz_wire.c).
 * Errors are 0 / a length, or -errno: -EPROTO (not the message), -EMSGSIZE (over a limit).
 *
 * So far: the lease answer and the head of the done report (its inline result is pool/bundle.h).
 * The jobs listing entry and the results list follow (issue 8, item 3).
 */
#ifndef PREON_POOL_WIRE_H
#define PREON_POOL_WIRE_H
#include <stddef.h>
#include <stdint.h>

#ifndef WIRE_MAX_LEASE
#define WIRE_MAX_LEASE 16 /* tasks one lease answer may give */
#endif
/** The head of a volunteer's done report (GET /v1/done/<job>/<task>?peer=...&exit=N&ms=M[&bundle]). */
typedef struct wire_done {
    int exit_code;       /**< -1 (never ran: refused) .. 255 */
    uint64_t elapsed_ms; /**< up to WIRE_MAX_ELAPSED_MS */
} wire_done_t;
#define WIRE_MAX_ELAPSED_MS (366ull * 24 * 3600 * 1000)

/** Writes "&exit=N&ms=M" into buf. Its length, or -EINVAL (out of range), -EMSGSIZE. */
int wire_done_encode(const wire_done_t *d, char *buf, size_t cap);
/**
 * Reads exit= and ms= from a query string (other parameters are ignored). Both are required, plain
 * decimal (exit may be -1). 0, or -EPROTO with why filled.
 */
int wire_done_decode(const char *query, size_t qlen, wire_done_t *out, char *why, size_t whylen);

#ifndef WIRE_MAX_BODY
#define WIRE_MAX_BODY 4096 /* bytes of a lease answer */
#endif
#define WIRE_LEASE_MS_MIN 300
#define WIRE_LEASE_MS_MAX 3600000
#define WIRE_LEASE_MS_DEFAULT 30000

/** The submitter's answer to GET /v1/lease: the tasks leased (distinct), each for lease_ms. */
typedef struct wire_lease {
    uint32_t tasks[WIRE_MAX_LEASE];
    size_t n;
    uint64_t lease_ms;
} wire_lease_t;

/**
 * Writes l as the answer's JSON ({"tasks":[...],"task":first,"lease_ms":n}; "task" is for
 * volunteers that know only single leases) into buf. Returns its length (NUL-terminated), or
 * -EINVAL (no task, more than WIRE_MAX_LEASE) or -EMSGSIZE (cap too small).
 */
int wire_lease_encode(const wire_lease_t *l, char *buf, size_t cap);
/**
 * Reads a lease answer for a job of ntasks tasks. Entries that are not integers below ntasks, or
 * repeat an earlier one, are dropped (and counted in *dropped, which may be NULL); a lease_ms out
 * of [WIRE_LEASE_MS_MIN, WIRE_LEASE_MS_MAX] or missing becomes WIRE_LEASE_MS_DEFAULT. 0 with at
 * least one task in out; -EPROTO (not JSON, no "tasks" array, no usable task), -EMSGSIZE (over
 * WIRE_MAX_BODY, or more than WIRE_MAX_LEASE entries), with why filled.
 */
int wire_lease_decode(const char *body, size_t len, uint32_t ntasks, wire_lease_t *out, size_t *dropped, char *why,
                      size_t whylen);

#endif
