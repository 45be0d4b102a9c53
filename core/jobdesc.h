/**
 * @file jobdesc.h  The job description: the small optional file `preon.job` a researcher puts in a
 * job directory. Untrusted input: every error fills `why` with a one-line reason naming the line.
 *
 * Format (docs/job-format.md): UTF-8 text, at most JOBDESC_MAX_BYTES; one `key = value` per line;
 * `#` starts a comment line; blank lines ignored; each key at most once. Keys:
 *   command   = shell command line run by /bin/sh -c inside the task dir (default: /job/run)
 *   tasks     = 1..JOBDESC_MAX_TASKS (default 1)
 *   outputs   = space-separated glob patterns relative to the task dir (default: every file)
 *   timeout   = duration: 30, 30s, 5m, 2h (default 1h; at most 7d)
 *   memory    = size: 512M, 2G, 1048576 (default 1G; suffixes K M G T, powers of 1024)
 *   disk      = size (default 1G)
 *   processes = 1..4096 (default 64)
 *   replicas  = 1..JOBDESC_MAX_REPLICAS (default 1): distinct workers that run each task; or
 *               `adaptive`: 2, but a task may run once on a worker with a long valid streak
 *   quorum    = 1..replicas (default a majority: replicas / 2 + 1): reports that must agree
 *   max-replicas = replicas..JOBDESC_MAX_MAX_REPLICAS (default 2 * replicas): runs of a task at
 *               most while its reports disagree; then it fails ("no quorum")
 *   os        = e.g. linux (default: any)       arch = e.g. x86_64 (default: any)
 *   network   = yes | no (default no)
 *   grace     = duration, 1s..1h (default 5s): from SIGTERM to SIGKILL when a task is stopped with
 *               notice (its time-out, a volunteer's owner returning: docs/job-format.md)
 */
#ifndef PREON_CORE_JOBDESC_H
#define PREON_CORE_JOBDESC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef JOBDESC_MAX_BYTES
#define JOBDESC_MAX_BYTES (64 * 1024)
#endif
#ifndef JOBDESC_MAX_TASKS
#define JOBDESC_MAX_TASKS 100000
#endif
#ifndef JOBDESC_MAX_REPLICAS
#define JOBDESC_MAX_REPLICAS 16
#endif
#ifndef JOBDESC_MAX_MAX_REPLICAS
#define JOBDESC_MAX_MAX_REPLICAS (2 * JOBDESC_MAX_REPLICAS)
#endif
#ifndef JOBDESC_MAX_OUTPUTS
#define JOBDESC_MAX_OUTPUTS 64
#endif
#ifndef JOBDESC_MAX_VALUE
#define JOBDESC_MAX_VALUE 4096 /* bytes in one value */
#endif
#ifndef JOBDESC_MAX_PROCESSES
#define JOBDESC_MAX_PROCESSES 4096
#endif
#ifndef JOBDESC_MAX_GRACE_MS
#define JOBDESC_MAX_GRACE_MS (3600ull * 1000) /* 1h */
#endif
#ifndef JOBDESC_MAX_TIMEOUT_MS
#define JOBDESC_MAX_TIMEOUT_MS (7ull * 24 * 3600 * 1000) /* 7d */
#endif
#ifndef JOBDESC_MIN_BYTES
#define JOBDESC_MIN_BYTES (1024ull * 1024) /* smallest memory and disk limit: 1M */
#endif
#define JOBDESC_FILE "preon.job"
#define JOBDESC_DEFAULT_COMMAND "/job/run"

typedef struct jobdesc {
    char *command;  /**< never NULL after jobdesc_init */
    uint32_t tasks;
    char **outputs; /**< n_outputs patterns; none means every file the task creates */
    size_t n_outputs;
    uint64_t timeout_ms;
    uint64_t memory_bytes;
    uint64_t disk_bytes;
    uint32_t processes;
    uint32_t replicas;
    uint32_t quorum;       /**< 0: the default (jobdesc_quorum) */
    uint32_t max_replicas; /**< 0: the default (jobdesc_max_replicas) */
    bool adaptive;         /**< replicas = adaptive (replicas is then 2) */
    char *os;   /**< NULL = any */
    char *arch; /**< NULL = any */
    bool network;
    uint64_t grace_ms; /**< 0: the executor's default (5 s) */
} jobdesc_t;

/** Fills the defaults. Pair with jobdesc_release. */
void jobdesc_init(jobdesc_t *d);
void jobdesc_release(jobdesc_t *d);
/**
 * Parses text[0..len) over the defaults already in d (call jobdesc_init first).
 * Returns 0, -EMSGSIZE (too big), or -EINVAL (anything else); on error `why` says what and where
 * (e.g. "line 3: unknown key 'taks'") and d keeps defaults for keys not yet parsed (release it anyway).
 */
int jobdesc_parse(jobdesc_t *d, const char *text, size_t len, char *why, size_t whylen);
/** The quorum in force: d->quorum, or a majority of d->replicas. */
uint32_t jobdesc_quorum(const jobdesc_t *d);
/** The most runs of one task: d->max_replicas, or 2 * d->replicas. */
uint32_t jobdesc_max_replicas(const jobdesc_t *d);
/** Deep copy. */
void jobdesc_copy(jobdesc_t *dst, const jobdesc_t *src);
/** Parse helpers shared with argv parsing: "512M" → bytes, "5m" → ms. 0 or -EINVAL/-ERANGE. */
int jobdesc_parse_size(const char *s, uint64_t *out);
/**
 * bytes as a person reads it, in the units jobdesc_parse_size takes (K, M, G, T: powers of 1024):
 * "64G", "1.5G", "512M", "100B"; exact multiples without a decimal, others with one (rounded to
 * the nearest tenth). Writes at most cap bytes (NUL-terminated); returns buf.
 */
char *jobdesc_format_size(uint64_t bytes, char *buf, size_t cap);
int jobdesc_parse_duration(const char *s, uint64_t *out_ms);
/**
 * Checks every field against the limits jobdesc_parse enforces (manifest_decode uses it for the
 * "job" object, manifest_encode before encoding). 0 or -EINVAL with `why` filled.
 */
int jobdesc_check(const jobdesc_t *d, char *why, size_t whylen);
/** true if s[0..len) is well-formed UTF-8 (no overlong forms, surrogates, or past U+10FFFF). */
bool jobdesc_utf8_valid(const char *s, size_t len);

#endif
