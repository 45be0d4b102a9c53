/**
 * @file decline.h  Why a job's tasks wait: the reasons volunteers give its submitter for not asking
 * for them (GET /v1/decline, docs/protocol.md), kept per job, and the summary its status shows:
 * "why-waiting: ...; 4 pool peers: 2 lack memory 64G (have 16G, 8G), 1 does not trust your key,
 * 1 busy (2 of 2 slots)".
 *
 * Sans-I/O, as coord.h: no clock (now_ms comes in), no sockets, no files. A reason is filed under
 * the pool peer that said it (its base URL) with the worker id that signed it (its public key in
 * hex), and counted only while that key is still the one bound to that peer: so a peer can only
 * ever say something about itself, one reason per peer, replaced by its next, and a host that
 * makes many keys still holds one entry per pool peer it has (at most POOL_MAX_PEERS_PER_HOST), so
 * it cannot push the other peers' reasons out. A reason is a code and numbers, never text from the
 * peer: the submitter writes the sentence. A reason is stale after DECLINE_STALE_MS (a volunteer
 * says it again every few seconds while it holds). Tested in tests/unit/test_decline.c.
 *
 * Errors are 0 or -errno: -EINVAL (a bad argument).
 */
#ifndef PREON_POOL_DECLINE_H
#define PREON_POOL_DECLINE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef DECLINE_STALE_MS
#define DECLINE_STALE_MS 15000 /* a reason older than this is not shown (volunteers repeat theirs every 5 s) */
#endif
#ifndef DECLINE_MAX_ENTRIES
#define DECLINE_MAX_ENTRIES 1024 /* reasons one job keeps (POOL_MAX_POOL_PEERS): the oldest goes first */
#endif
#define DECLINE_MAX_ID 64        /* bytes of a worker id (a key in hex) */
#define DECLINE_MAX_PEER 512     /* bytes of a pool peer's base URL (VOL_MAX_URL) */
#define DECLINE_MAX_SHOWN 8      /* numbers listed per reason in the summary ("have 16G, 8G, ...") */
#define DECLINE_MAX_SLOTS 65536  /* slots a peer may say it has (--slots is at most 1024) */
#define DECLINE_MAX_BYTES (1ull << 59) /* memory or disk a peer may say it has (512 PiB; 18 digits) */

/** Why a peer does not ask for a job's tasks. The numbers say which fields are set. */
typedef enum decline_code {
    DECLINE_MEMORY = 1, /**< the job wants more memory than the peer gives its tasks in all: have = that */
    DECLINE_DISK,       /**< ... more disk: have = what it gives (or has free in its data directory) */
    DECLINE_TRUST,      /**< it does not trust the submitter's key */
    DECLINE_OS,         /**< the job wants another os */
    DECLINE_ARCH,       /**< ... another CPU architecture */
    DECLINE_NETWORK,    /**< the job wants the network and the peer runs without --allow-network */
    DECLINE_IDLE,       /**< --when idle, and its owner is using the machine */
    DECLINE_SLOTS,      /**< busy: used of its slots are taken */
    DECLINE_MEMORY_FREE, /**< busy: its running tasks leave have bytes of memory, too few for one task */
    DECLINE_DISK_FREE,  /**< ... have bytes of disk */
    DECLINE_STOPPING,   /**< it is stopping */
    DECLINE_NO_SLOTS,   /**< it runs no tasks at all (--slots 0) */
    DECLINE_OTHER,      /**< a code this peer does not know (from a newer peer) */
    DECLINE_N
} decline_code_t;

typedef struct decline {
    decline_code_t code;
    uint64_t have;     /**< MEMORY, DISK, MEMORY_FREE, DISK_FREE: bytes, at most DECLINE_MAX_BYTES */
    uint32_t used, of; /**< SLOTS: used <= of <= DECLINE_MAX_SLOTS */
} decline_t;

/** The wire name of code ("memory", "trust", ...; "other" for DECLINE_OTHER), NULL if not a code. */
const char *decline_code_name(decline_code_t code);
/** The code named name (n bytes), DECLINE_OTHER for a name not known, 0 for one that is not a
 *  name (empty, over 16 bytes, not [a-z-]). */
decline_code_t decline_code_from(const char *name, size_t n);
/** 0 if d is a reason as the summary takes it (a known code, its numbers in range), else -EINVAL. */
int decline_check(const decline_t *d);

typedef struct decline_table decline_table_t;

decline_table_t *decline_table_new(void);
void decline_table_free(decline_table_t *t);
/**
 * Records the reason of pool peer peer (a base URL) said by worker (the key that signed it), at
 * now_ms, replacing what peer said before (under any key). Stale entries go first; then, if
 * DECLINE_MAX_ENTRIES are held, the oldest one. 0, -EINVAL (peer or worker empty or over
 * DECLINE_MAX_PEER / DECLINE_MAX_ID bytes, d failing decline_check).
 */
int decline_put(decline_table_t *t, const char *peer, const char *worker, const decline_t *d, uint64_t now_ms);
/** Forgets peer's reason (it asked for a task: it no longer declines). */
void decline_forget(decline_table_t *t, const char *peer);
/** peer's reason if worker said it and it is fresh at now_ms (said less than DECLINE_STALE_MS before). */
bool decline_get(const decline_table_t *t, const char *peer, const char *worker, uint64_t now_ms, decline_t *out);
/** Reasons held (fresh or not). */
size_t decline_count(const decline_table_t *t);

/** The pool peers' reasons, grouped: what the summary says. */
typedef struct decline_groups {
    size_t peers;           /**< pool peers counted */
    size_t silent;          /**< those with no fresh reason (or no known key) */
    size_t n[DECLINE_N];    /**< per code */
    uint64_t have[DECLINE_N][DECLINE_MAX_SHOWN]; /**< per code with a number: the largest ones, largest first */
    size_t n_have[DECLINE_N];
    uint64_t used, of;      /**< DECLINE_SLOTS: summed over the peers */
} decline_groups_t;

/** A pool peer as the summary counts it: its base URL, and the key bound to it (NULL if none is). */
typedef struct decline_peer {
    const char *url, *worker;
} decline_peer_t;

/**
 * The rule of who counts: every pool peer counts once, with its own fresh reason if it has one
 * (said by the key bound to it now), else as silent. Reasons of peers that are not pool peers, or
 * said by a key no longer bound to their peer, are not counted (they are kept until stale or
 * replaced). t may be NULL.
 */
void decline_group(const decline_table_t *t, const decline_peer_t *peers, size_t npeers, uint64_t now_ms,
                   decline_groups_t *out);

/** What the job asks for, for the sentence ("lack memory 64G"). Strings borrowed; may be NULL. */
typedef struct decline_need {
    uint64_t memory, disk;
    const char *os, *arch;
} decline_need_t;

/**
 * The sentence: "4 pool peers: 2 lack memory 64G (have 16G, 8G), 1 does not trust your key, 1 busy
 * (2 of 2 slots)": reasons by count, most first (ties in code order), the silent ones last ("1 has
 * not said why"); "no other peer in the pool" for none. os and arch are shown only if they are
 * printable ASCII. Writes at most cap bytes (NUL-terminated, cut if need be); returns buf.
 */
char *decline_render(const decline_groups_t *g, const decline_need_t *need, char *buf, size_t cap);

#endif
