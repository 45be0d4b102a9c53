/**
 * @file wire.h  Pure codecs for what peers send each other (docs/protocol.md). Each decoder takes
 * untrusted bytes, checks every count and value against a named limit before keeping anything, and
 * says what was wrong in why; each encoder writes exactly what its decoder accepts. No I/O, no
 * clock, no loop: unit-tested (tests/unit/test_wire.c) and fuzzed (tests/fuzz/fuzz_wire.c).
 * Errors are 0 / a length, or -errno: -EPROTO (not the message), -EMSGSIZE (over a limit).
 *
 * A peer's identity (GET /v1/id), the lease answer, the head of the done report (its inline result
 * is pool/bundle.h), the query of a live output update, the jobs
 * listing (GET /v1/jobs) and the results list (GET /v1/results/<job>?after=K). In a list, an entry
 * that is malformed is dropped and counted, and the rest are kept; only a message that is not the
 * message (not JSON, a bad head, over a limit) is refused whole.
 */
#ifndef PREON_POOL_WIRE_H
#define PREON_POOL_WIRE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/key.h"
#include "pool/coord.h"
#include "pool/decline.h"

/* ---- who a peer is: GET /v1/id -------------------------------------------------------------- */

#define WIRE_MAX_ID_BODY 256 /* bytes of a /v1/id answer */

/** Writes {"key":"<64 lower-case hex>"} into buf. Its length (NUL-terminated), or -EMSGSIZE. */
int wire_id_encode(const key_pub_t *key, char *buf, size_t cap);
/**
 * Reads a /v1/id answer: a JSON object whose "key" is 64 lower-case hex digits (other members are
 * ignored). 0; -EMSGSIZE (over WIRE_MAX_ID_BODY), -EPROTO (not an object, no such key), with why
 * filled.
 */
int wire_id_decode(const char *body, size_t len, key_pub_t *out, char *why, size_t whylen);

/* ---- a peer's base URL, and the pool peers a peer remembers (DATA/peers) ------------------- */

#define WIRE_MAX_PEER_URL 255 /* bytes of a peer's base URL */

/**
 * Whether url[0..len) may be a pool peer's base URL: "http://" and then at least one byte, at most
 * WIRE_MAX_PEER_URL in all, no control byte, blank or DEL (so it is one line of DATA/peers, one
 * word of a log line, and a URL curl takes).
 */
bool wire_peer_url_ok(const char *url, size_t len);
/** DATA/peers' text for urls[0..n) (each wire_peer_url_ok), one per line. xmalloc'd, NUL-terminated. */
char *wire_peers_format(char *const *urls, size_t n);
/**
 * Reads DATA/peers (untrusted: anyone with the data directory may have changed it): calls cb with
 * each line that is a wire_peer_url_ok URL (NUL-terminated, borrowed for the call), in order.
 * Returns how many non-empty lines were not. Pure.
 */
size_t wire_peers_parse(const char *text, size_t len, void (*cb)(void *arg, const char *url), void *arg);

#ifndef WIRE_MAX_LEASE
#define WIRE_MAX_LEASE 16 /* tasks one lease answer may give */
#endif
/**
 * The head of a volunteer's done report
 * (GET /v1/done/<job>/<task>?peer=...&exit=N&ms=M&rid=HEX&rsig=HEX[&bundle]).
 */
typedef struct wire_done {
    int exit_code;       /**< -1 (never ran: refused) .. 255 */
    uint64_t elapsed_ms; /**< up to WIRE_MAX_ELAPSED_MS */
    char rid[65];        /**< the result manifest's id (64 hex): what replicas compare */
    char rsig[129];      /**< the worker's signature of the result (pool/auth.h, auth_result_sign; 128 hex) */
} wire_done_t;
#define WIRE_MAX_ELAPSED_MS (366ull * 24 * 3600 * 1000)

/** Writes "&exit=N&ms=M&rid=..&rsig=.." into buf. Its length, or -EINVAL (out of range, bad hex), -EMSGSIZE. */
int wire_done_encode(const wire_done_t *d, char *buf, size_t cap);
/**
 * Reads exit=, ms=, rid= and rsig= from a query string (other parameters are ignored). All are
 * required: exit and ms plain decimal (exit may be -1), rid 64 and rsig 128 lower-case hex
 * digits. 0, or -EPROTO with why filled.
 */
int wire_done_decode(const char *query, size_t qlen, wire_done_t *out, char *why, size_t whylen);

/**
 * A volunteer's reason for not asking for a job's tasks (GET /v1/decline/<job>?peer=...&why=CODE
 * [&have=BYTES | &used=N&of=M]): writes "&why=...", with the numbers its code has, into buf. Its
 * length, or -EINVAL (d fails decline_check, or is DECLINE_OTHER), -EMSGSIZE.
 */
int wire_decline_encode(const decline_t *d, char *buf, size_t cap);
/**
 * Reads why= (a code name: one not known is DECLINE_OTHER), and have= for the codes with bytes or
 * used= and of= for slots (plain decimal); other parameters are ignored. 0, or -EPROTO with why
 * filled (missing, not a name, a number out of range: decline_check).
 */
int wire_decline_decode(const char *query, size_t qlen, decline_t *out, char *why, size_t whylen);

/* ---- a running task's live output: POST /v1/output/<job>/<task> ----------------------------- */

#ifndef WIRE_MAX_OUTPUT_CHUNK
#define WIRE_MAX_OUTPUT_CHUNK (32u * 1024) /* bytes of one stream (stdout, stderr) one update carries */
#endif
#define WIRE_MAX_OUTPUT_OFF (1ull << 50)  /* where in a stream an update's bytes start, at most */
#define WIRE_MAX_RUN (1ull << 59)         /* a run's number, at most (18 digits) */

/**
 * The query of a volunteer's live output update (docs/usage.md, "Live output"):
 * "&run=N&out=OFF&outlen=N&err=OFF&errlen=N&sha=HEX". The body is outlen bytes of the task's
 * stdout from OFF, then errlen bytes of its stderr from OFF; sha names the body, so the request's
 * signature (which covers the query) covers the body too.
 */
typedef struct wire_output {
    uint64_t run;    /**< the volunteer's number of this run of the task, 1..WIRE_MAX_RUN (another run: another) */
    uint64_t off[2]; /**< where the bytes of stdout [0] and stderr [1] start, 0..WIRE_MAX_OUTPUT_OFF */
    uint32_t len[2]; /**< how many of each the body holds, 0..WIRE_MAX_OUTPUT_CHUNK */
    char sha[65];    /**< SHA-256 of the body, 64 lower-case hex */
} wire_output_t;

/** Writes o's query into buf. Its length, or -EINVAL (a field out of range), -EMSGSIZE. */
int wire_output_encode(const wire_output_t *o, char *buf, size_t cap);
/**
 * Reads run=, out=, outlen=, err=, errlen= (plain decimal, in range) and sha= (64 lower-case hex)
 * from a query string (other parameters are ignored); all are required. 0, or -EPROTO with why
 * filled.
 */
int wire_output_decode(const char *query, size_t qlen, wire_output_t *out, char *why, size_t whylen);

#ifndef WIRE_MAX_BODY
#define WIRE_MAX_BODY 4096 /* bytes of a lease answer */
#endif
#define WIRE_LEASE_MS_MIN 300
#define WIRE_LEASE_MS_MAX 3600000
#define WIRE_LEASE_MS_DEFAULT 30000

/** The submitter's answer to GET /v1/lease: the tasks leased (distinct), each for lease_ms. */
typedef struct wire_lease {
    uint32_t tasks[WIRE_MAX_LEASE];
    /** the id (64 lower-case hex) of the checkpoint tasks[i] starts from (docs/job-format.md,
     *  "Checkpoints"), or "" */
    char ckpt[WIRE_MAX_LEASE][65];
    size_t n;
    uint64_t lease_ms;
} wire_lease_t;

/**
 * Writes l as the answer's JSON ({"tasks":[...],"task":first,"lease_ms":n}; "task" is for
 * volunteers that know only single leases; with "ckpt":{"<task>":"<id>",...} if any task has a
 * checkpoint) into buf. Returns its length (NUL-terminated), or -EINVAL (no task, more than
 * WIRE_MAX_LEASE, a ckpt that is not 64 lower-case hex digits) or -EMSGSIZE (cap too small).
 */
int wire_lease_encode(const wire_lease_t *l, char *buf, size_t cap);
/**
 * Reads a lease answer for a job of ntasks tasks. Entries that are not integers below ntasks, or
 * repeat an earlier one, are dropped (and counted in *dropped, which may be NULL); a lease_ms out
 * of [WIRE_LEASE_MS_MIN, WIRE_LEASE_MS_MAX] or missing becomes WIRE_LEASE_MS_DEFAULT. 0 with at
 * least one task in out; -EPROTO (not JSON, no "tasks" array, no usable task), -EMSGSIZE (over
 * WIRE_MAX_BODY, or more than WIRE_MAX_LEASE entries), with why filled. A "ckpt" entry that does not
 * name a task of the lease by its plain decimal index, or is not 64 lower-case hex digits, is
 * dropped (counted too); the task is then leased without a checkpoint.
 */
int wire_lease_decode(const char *body, size_t len, uint32_t ntasks, wire_lease_t *out, size_t *dropped, char *why,
                      size_t whylen);

/* ---- the jobs listing: GET /v1/jobs ---------------------------------------------------------- */

#ifndef WIRE_MAX_JOBS
#define WIRE_MAX_JOBS 10000 /* entries in one /v1/jobs answer */
#endif
#ifndef WIRE_MAX_JOBS_BODY
#define WIRE_MAX_JOBS_BODY (4u * 1024 * 1024) /* bytes of one /v1/jobs answer */
#endif
/* Bytes of one encoded entry at most (a name of 255 control characters, each written \\u00XX, and
 * every number at its widest); tests/unit/test_wire.c checks the bound. */
#define WIRE_MAX_JOB_ENTRY 2048
#define WIRE_MAX_JOB_NAME 255 /* a directory name (NAME_MAX): a manifest's name plus "@" and 8 hex */
#define WIRE_HEX_LEN 64       /* a job, result or block id: SHA-256 in lowercase hex */
#define WIRE_SIG_HEX_LEN 128  /* an Ed25519 signature in lowercase hex */

/** A job's state as peers tell it, numbered as fs/'s pool_job_state_t (whose 0, staging, is never sent). */
typedef enum wire_state {
    WIRE_STATE_PUBLISHING = 1,
    WIRE_STATE_REJECTED,
    WIRE_STATE_RUNNING,
    WIRE_STATE_DONE,
    WIRE_STATE_FAILED,
    WIRE_STATE_CANCELLED,
} wire_state_t;

/** "publishing" .. "cancelled", or NULL for a value that is not a wire_state_t. */
const char *wire_state_name(wire_state_t s);

/** One entry of a /v1/jobs answer. */
typedef struct wire_job {
    char id[WIRE_HEX_LEN + 1];          /**< 64 lowercase hex */
    char name[WIRE_MAX_JOB_NAME + 1];   /**< 1..255 bytes, not "." or "..", no '/' (UTF-8, no NUL) */
    wire_state_t state;
    uint32_t tasks;                     /**< 1..JOBDESC_MAX_TASKS */
    bool origin;                        /**< the peer that answers is the job's submitter */
    bool removed;                       /**< origin entry: removed from its submitter's jobs/, its inputs gone
                                             (written only when true): others drop it from jobs/ and free its blocks */
    char sig[WIRE_SIG_HEX_LEN + 1];     /**< the submitter's signature of the id (128 lowercase hex), "" if none */
    /* Only in an origin entry (zero otherwise, and not written): */
    coord_counts_t counts;              /**< total == tasks; the five states sum to at most total */
    uint32_t results;                   /**< results listed at /v1/results (at most tasks) */
    uint64_t epoch;                     /**< the submitter's start time in ms (at most INT64_MAX) */
} wire_job_t;

/** 0 if j is an entry the decoder keeps, else -EINVAL with why filled. */
int wire_job_check(const wire_job_t *j, char *why, size_t whylen);
/**
 * Writes jobs[0..n) as the /v1/jobs answer (a JSON array) into *out (xmalloc'd, NUL-terminated,
 * the caller frees; its length in *len). It stops at WIRE_MAX_JOBS entries or before the entry that
 * would take the answer over WIRE_MAX_JOBS_BODY; *taken (may be NULL) says how many went in.
 * 0, or -EINVAL (an entry fails wire_job_check: nothing is written).
 */
int wire_jobs_encode(const wire_job_t *jobs, size_t n, char **out, size_t *len, size_t *taken);
/**
 * Reads a /v1/jobs answer. The entries that pass wire_job_check go to *out (xmalloc'd array of *n,
 * the caller frees; NULL when none); the others are dropped and counted in *dropped (may be NULL),
 * and why names the first of them. *complete (may be NULL) is true only if the answer surely lists
 * every job the peer had: nothing dropped, fewer than WIRE_MAX_JOBS entries, and short enough that
 * the encoder did not stop for size. A receiver forgets a job its peer no longer lists only on a
 * complete answer. 0; -EPROTO (not a JSON array), -EMSGSIZE (over WIRE_MAX_JOBS_BODY or more than
 * WIRE_MAX_JOBS entries), with why filled.
 */
int wire_jobs_decode(const char *body, size_t len, wire_job_t **out, size_t *n, size_t *dropped, bool *complete,
                     char *why, size_t whylen);

/* ---- the results list: GET /v1/results/<job>?after=K ----------------------------------------- */

#ifndef WIRE_MAX_RESULTS
#define WIRE_MAX_RESULTS 4096 /* entries in one results list */
#endif
#ifndef WIRE_MAX_RESULT_MANIFEST
#define WIRE_MAX_RESULT_MANIFEST (1u * 1024 * 1024) /* bytes of one entry's manifest text */
#endif
#ifndef WIRE_MAX_RESULTS_BODY
#define WIRE_MAX_RESULTS_BODY (4u * 1024 * 1024) /* bytes of one results list (one largest entry fits) */
#endif

/** One entry of a results list: a task's result manifest. */
typedef struct wire_result {
    uint32_t task;                      /**< below the job's task count; no task twice in a list */
    int exit_code;                      /**< -1..255 */
    bool ok;                            /**< the task succeeded */
    char id[WIRE_HEX_LEN + 1];          /**< SHA-256 of manifest (the decoder checks it) */
    const char *manifest;               /**< 1..WIRE_MAX_RESULT_MANIFEST bytes of UTF-8, no control byte */
    size_t manifest_len;
    char worker[WIRE_HEX_LEN + 1];      /**< the key whose result was accepted (64 hex), or "" (not known) */
    char sig[WIRE_SIG_HEX_LEN + 1];     /**< the submitter's signature of the entry (required, 128 hex) */
} wire_result_t;

/** A results list: the head and the entries from the after-th result on. */
typedef struct wire_results {
    char job[WIRE_HEX_LEN + 1];
    wire_state_t state;
    uint64_t epoch;        /**< the submitter's start time in ms (at most INT64_MAX) */
    uint32_t after;        /**< the list starts at the submitter's after-th result */
    uint32_t done;         /**< results the submitter has: after + entries <= done <= tasks */
    wire_result_t *results;
    size_t n;
    char *text;            /**< decoded: the manifests' storage (wire_results_release frees it) */
} wire_results_t;

/**
 * Writes r's head and r->results[0..) as a results list for a job of ntasks tasks into *out
 * (xmalloc'd, NUL-terminated, the caller frees; its length in *len): as many entries as fit in
 * WIRE_MAX_RESULTS_BODY, at most WIRE_MAX_RESULTS, and always the first (one entry always fits);
 * *taken (may be NULL) says how many. The manifests are not hashed again: the caller computed each
 * id from the same bytes. 0, or -EINVAL (a head field or an entry out of range, a task twice).
 */
int wire_results_encode(const wire_results_t *r, uint32_t ntasks, char **out, size_t *len, size_t *taken);
/**
 * Reads a results list for a job of ntasks tasks (at most JOBDESC_MAX_TASKS are counted, on both
 * ends) into *out (release it with wire_results_release, also after an error). An entry out of range, a task already in the list, or a manifest that does
 * not hash to its id is dropped and counted in *dropped (may be NULL), why naming the first; the
 * list's next position is out->after + out->n + *dropped. The manifests are not decoded (the
 * caller does, with core/manifest.h). 0; -EPROTO (not a JSON object, a head field missing or out of
 * range, no "results" array), -EMSGSIZE (over WIRE_MAX_RESULTS_BODY or more than WIRE_MAX_RESULTS
 * entries), with why filled.
 */
int wire_results_decode(const char *body, size_t len, uint32_t ntasks, wire_results_t *out, size_t *dropped,
                        char *why, size_t whylen);
/** Frees what wire_results_decode allocated and zeroes r. */
void wire_results_release(wire_results_t *r);

#endif
