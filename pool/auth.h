/**
 * @file auth.h  Signed requests between peers (docs/security.md): what is signed, how it is
 * checked, and the replay guard. Pure: no clock, no sockets (time comes in as now_ms); the keys
 * are core/key.h's.
 *
 * A request that changes state on another peer carries four headers:
 *   Preon-Key:   the caller's public key (64 hex)
 *   Preon-Time:  the caller's clock, ms since the Unix epoch (decimal)
 *   Preon-Nonce: 16 random bytes (32 hex), never reused
 *   Preon-Sig:   Ed25519 of the caller's key over auth_message() (128 hex)
 * auth_message() covers the method, the request target (path and query, exactly as sent), the
 * recipient's public key (so a request made for one peer is worth nothing to another), the time
 * and the nonce. The recipient accepts it once: the time must be within the window of its own
 * clock, and (key, nonce) must not have been seen while it could still be in the window.
 */
#ifndef PREON_POOL_AUTH_H
#define PREON_POOL_AUTH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/key.h"

/** How far a request's time may be from the recipient's clock (either way). */
#ifndef AUTH_WINDOW_MS
#define AUTH_WINDOW_MS 30000
#endif
/** (key, nonce) pairs remembered at most; past it new requests are refused (-ENOSPC) until some expire. */
#ifndef AUTH_MAX_SEEN
#define AUTH_MAX_SEEN 262144
#endif
#define AUTH_NONCE_LEN 16
#define AUTH_NONCE_HEX_LEN 32
/** Longest request target signed (a /v1/done with its inline result is at most 2048 bytes). */
#define AUTH_MAX_TARGET 4096
/** Bytes auth_message writes at most, with its NUL. */
#define AUTH_MAX_MESSAGE (AUTH_MAX_TARGET + 256)

#define AUTH_H_KEY "Preon-Key"
#define AUTH_H_TIME "Preon-Time"
#define AUTH_H_NONCE "Preon-Nonce"
#define AUTH_H_SIG "Preon-Sig"

/** What a signed request's headers say, parsed. */
typedef struct auth_req {
    key_pub_t key;
    uint64_t time_ms;
    uint8_t nonce[AUTH_NONCE_LEN];
    uint8_t sig[KEY_SIG_LEN];
} auth_req_t;

/**
 * The signed text: "preon-request-1\n" METHOD "\n" TARGET "\n" TO "\n" TIME "\n" NONCE "\n", TO and
 * NONCE in lower-case hex, TIME in decimal. Returns its length, or -EINVAL (a field with a control
 * byte or a newline, a target over AUTH_MAX_TARGET, out too small: give AUTH_MAX_MESSAGE).
 */
int auth_message(char *out, size_t outlen, const char *method, const char *target, const key_pub_t *to,
                 uint64_t time_ms, const uint8_t nonce[AUTH_NONCE_LEN]);

/** The four header lines ("Name: value") for a request from k to `to`, signed now. 0 or -EINVAL. */
typedef struct auth_headers {
    char key[sizeof(AUTH_H_KEY) + 2 + KEY_PUB_HEX_LEN + 1];
    char time[sizeof(AUTH_H_TIME) + 2 + 24];
    char nonce[sizeof(AUTH_H_NONCE) + 2 + AUTH_NONCE_HEX_LEN + 1];
    char sig[sizeof(AUTH_H_SIG) + 2 + KEY_SIG_HEX_LEN + 1];
} auth_headers_t;
int auth_sign(const keypair_t *k, const char *method, const char *target, const key_pub_t *to, uint64_t time_ms,
              const uint8_t nonce[AUTH_NONCE_LEN], auth_headers_t *out);

/**
 * Parses the four header values (any may be NULL: a request without them). 0, -ENOENT (none of
 * them: an unsigned request), -EINVAL (some missing or malformed).
 */
int auth_parse(const char *key, const char *time, const char *nonce, const char *sig, auth_req_t *out);

/** Whether r's signature covers this method, target and recipient. */
bool auth_verify(const auth_req_t *r, const char *method, const char *target, const key_pub_t *to);

/* ---- signed jobs ---- */

/**
 * A job's signature: Ed25519 of "preon-job-1\n" + its id (64 hex; the id is SHA-256 of the
 * manifest, which names the submitter's key), in hex (KEY_SIG_HEX_LEN + 1 bytes).
 */
void auth_job_sign(const keypair_t *k, const char *job_id, char *sig_hex);
/**
 * Whether sig_hex is the signature of job_id by the key named in submitter_hex (the manifest's
 * submitter field). On true, *key (may be NULL) is that key.
 */
bool auth_job_verify(const char *submitter_hex, const char *job_id, const char *sig_hex, key_pub_t *key);

/* ---- signed results ---- */

/**
 * A worker's signature of its result: Ed25519 of "preon-result-1\n" JOB "\n" TASK "\n" RID "\n"
 * EXIT "\n" (RID: the result manifest's id), in hex (KEY_SIG_HEX_LEN + 1 bytes).
 */
void auth_result_sign(const keypair_t *k, const char *job_id, uint32_t task, const char *rid, int exit_code,
                      char *sig_hex); /* job_id and rid: 64 hex each (else what it signs verifies for nothing) */
/** Whether sig_hex is worker's signature of that result. */
bool auth_result_verify(const key_pub_t *worker, const char *job_id, uint32_t task, const char *rid, int exit_code,
                        const char *sig_hex);

/**
 * A submitter's signature of a result it accepted (each entry of its results list): Ed25519 of
 * "preon-accepted-1\n" JOB "\n" TASK "\n" ID "\n" EXIT "\n" OK "\n" WORKER "\n" (ID: the id of the
 * result manifest it serves; OK: 1 or 0; WORKER: the hex key whose result it accepted, or "-").
 */
void auth_accepted_sign(const keypair_t *k, const char *job_id, uint32_t task, const char *id, int exit_code, bool ok,
                        const char *worker, char *sig_hex);
bool auth_accepted_verify(const key_pub_t *submitter, const char *job_id, uint32_t task, const char *id,
                          int exit_code, bool ok, const char *worker, const char *sig_hex);

/* ---- endorsements: a pool authority vouches for a researcher's key ---- */

/** The first word of an endorsement line (what `preon endorse` prints). */
#define AUTH_ENDORSE_WORD "preon-endorsement-1"
/** Longest endorsement line (word, two keys, a time, a signature, spaces). */
#define AUTH_ENDORSE_LINE_MAX (sizeof(AUTH_ENDORSE_WORD) + 2 * KEY_PUB_HEX_LEN + 24 + KEY_SIG_HEX_LEN + 8)

typedef struct auth_endorsement {
    key_pub_t who;     /**< the endorsed key (a researcher's) */
    key_pub_t by;      /**< the endorsing key (the pool's authority) */
    uint64_t until_ms; /**< valid before this wall-clock time (ms since the epoch); 0: no end */
    uint8_t sig[KEY_SIG_LEN]; /**< by's Ed25519 signature of "preon-endorse-1\n" WHO-HEX "\n" UNTIL "\n" */
} auth_endorsement_t;

/** authority endorses who until until_ms (0: no end). */
void auth_endorse(const keypair_t *authority, const key_pub_t *who, uint64_t until_ms, auth_endorsement_t *out);
/** Whether e's signature is by e->by over e->who and e->until_ms. */
bool auth_endorsement_verify(const auth_endorsement_t *e);
/** Whether e is in force at now_ms (its signature is checked apart). */
bool auth_endorsement_current(const auth_endorsement_t *e, uint64_t now_ms);
/** The line form: "preon-endorsement-1 WHO BY UNTIL SIG" (no newline). out holds AUTH_ENDORSE_LINE_MAX. */
void auth_endorsement_format(const auth_endorsement_t *e, char *out, size_t outlen);
/**
 * Parses endorsement lines (the line form, then anything: `preon endorse` writes "  # NOTE"; blank
 * and '#' lines skipped). Each well-formed line is appended to *out (*n of them, xrealloc'd; the
 * caller frees): signatures are NOT checked here. Other lines count in *bad; why names the first.
 */
void auth_endorsement_parse(const char *text, size_t len, auth_endorsement_t **out, size_t *n, size_t *bad,
                            char *why, size_t whylen);

/* ---- trust lists ---- */

/** Bytes of one trust list file read at most. */
#define AUTH_MAX_TRUST_FILE (1u << 20)

/**
 * Parses a trust list: one public key per line (64 hex digits), then optionally white space and a
 * comment; blank lines and lines starting with '#' are skipped. Keys are appended to *keys (*n of
 * them; xrealloc'd, the caller frees). A line that is not a key is skipped and counted in *bad;
 * why names the first (with its line number).
 */
void auth_trust_parse(const char *text, size_t len, key_pub_t **keys, size_t *n, size_t *bad, char *why,
                      size_t whylen);

/* ---- the replay guard ---- */

typedef struct auth_guard auth_guard_t;

/** window_ms, max_seen: 0 for the defaults. Never fails (aborts on OOM). */
auth_guard_t *auth_guard_new(uint64_t window_ms, size_t max_seen);
void auth_guard_free(auth_guard_t *g);
/**
 * Admits a verified request once. 0 (recorded), -ETIME (its time is outside now_ms +- window:
 * a stale request, or a clock too far off), -EALREADY (this key sent this nonce before: a replay),
 * -ENOSPC (max_seen pairs are remembered: refused, never forgotten early).
 * A pair is remembered until now_ms + 2 * window at the time it was recorded, when its own time
 * has left the window whatever it was.
 */
int auth_guard_admit(auth_guard_t *g, const key_pub_t *key, uint64_t time_ms, const uint8_t nonce[AUTH_NONCE_LEN],
                     uint64_t now_ms);
/**
 * Refuses (-ETIME) every request whose time is before floor_ms: set to the time this guard's
 * memory began (the peer's start), so a request made before a restart cannot be replayed after it.
 */
void auth_guard_set_floor(auth_guard_t *g, uint64_t floor_ms);
/** Pairs remembered now. */
size_t auth_guard_size(const auth_guard_t *g);

#endif
