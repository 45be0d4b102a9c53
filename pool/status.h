/**
 * @file status.h  What the status page shows (GET /v1/status, JSON) and what GET /metrics exposes
 * (the Prometheus text format), both built from one snapshot in plain structs (docs/usage.md,
 * "Watching a peer"; docs/protocol.md for the JSON).
 *
 * pool/web.c gathers the snapshot from the pool's own counters and records (the coordination
 * core, the fetcher, the server, the store: nothing is counted twice), bounded as the limits below
 * say, and hands it here. Pure: no pool, no loop, no clock, no I/O; so the JSON and the metrics
 * text are tested with plain values (tests/unit/test_status.c). Every string is borrowed from the
 * caller for the duration of the call; strings that are not UTF-8 (job names come from users and
 * peers) are encoded with U+FFFD for each bad byte.
 */
#ifndef PREON_POOL_STATUS_H
#define PREON_POOL_STATUS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/metrics.h"
#include "pool/coord.h"

/* What one answer lists at most (the rest is counted: *_total, and *_truncated is true). */
#ifndef STATUS_MAX_JOBS
#define STATUS_MAX_JOBS 100        /**< jobs listed: the newest */
#endif
#ifndef STATUS_MAX_TASKS
#define STATUS_MAX_TASKS 100       /**< tasks listed per job: those running first, then the failed, then by index */
#endif
#ifndef STATUS_MAX_ALL_TASKS
#define STATUS_MAX_ALL_TASKS 1000  /**< tasks listed in all jobs together (about 80 bytes of JSON each) */
#endif
#ifndef STATUS_MAX_WALK
#define STATUS_MAX_WALK 100000     /**< indices of other peers' jobs looked at for results here, in all */
#endif
#ifndef STATUS_MAX_PEERS
#define STATUS_MAX_PEERS 100       /**< peers listed: the fastest first */
#endif
#define STATUS_JOB_STATES 7        /**< pool_job_state_t's states */

typedef struct status_task {
    uint32_t index;
    task_state_t state;
    uint32_t attempts;
    const char *worker;  /**< the key (hex) that runs it, or whose result was accepted; NULL: not known */
    const char *worker_url; /**< where that worker is reached, or NULL */
    bool here;           /**< run (or running) on this peer's slots */
    int64_t ms;          /**< run time (decided) or time since it was handed out (running); -1: not known */
    bool has_exit;
    int exit_code;
    const char *reason;  /**< why it failed, or NULL */
} status_task_t;

typedef struct status_job {
    const char *name;
    const char *id;        /**< NULL until published */
    const char *state;     /**< pool_job_state_name */
    const char *reason;    /**< why rejected, or its first failure; NULL */
    const char *submitter; /**< the key (hex) that signed it; NULL */
    bool remote;           /**< another peer's job */
    const char *from;      /**< remote: the peer it is fetched from (its submitter first); NULL */
    bool listed;           /**< in jobs/ */
    coord_counts_t counts; /**< ours: the coordination core's; remote: as its submitter last reported */
    uint32_t results;      /**< results here */
    const status_task_t *tasks;
    size_t n_tasks;
    bool tasks_truncated;  /**< the job has tasks not listed */
} status_job_t;

typedef struct status_peer {
    const char *url;
    bool pool;          /**< a pool peer (else a peer blocks were fetched from) */
    double rate_in;     /**< bytes per second received from it over the last seconds */
    uint64_t bytes_in, blocks_in, failures, bad;
    int score;
    bool banned;
    unsigned inflight;
} status_peer_t;

typedef struct status_event {
    uint64_t ms;       /**< wall clock */
    const char *level; /**< "error", "warn", "info" */
    const char *text;
} status_event_t;

typedef struct status_snap {
    uint64_t now_ms, started_ms; /**< wall clock */
    const char *host, *key, *http_url, *pool_name;
    unsigned slots, running_here;
    bool when_idle, idle;
    const char *idle_why; /**< --when idle and not idle: why no task runs; NULL */
    size_t pool_peers;
    const char *job_state_names[STATUS_JOB_STATES];
    uint32_t jobs_by_state[STATUS_JOB_STATES]; /**< every live job known here */
    uint64_t tasks_by_state[TASK_CANCELLED + 1]; /**< the tasks of this peer's own jobs */
    uint64_t tasks_ok, tasks_failed;   /**< tasks of our jobs decided since start */
    uint64_t runs_ok, runs_failed;     /**< tasks run on this peer's slots since start */
    uint32_t leases_given, leases_held; /**< our tasks leased to volunteers; others' tasks leased here */
    uint64_t bytes_in, blocks_in, bytes_out, blocks_out, bad_blocks;
    uint64_t blocks_again;             /**< verified blocks received that the store held already */
    uint64_t blocks_not_stored;        /**< verified blocks the store could not take (a full disk) */
    uint64_t disk_errors;              /**< writes to the data directory that failed (pool__disk_error) */
    double rate_in, rate_out;          /**< bytes per second over the last seconds */
    unsigned fetches_inflight;
    uint64_t store_blocks, cache_bytes, cache_quota, cache_hits, cache_evictions, cache_evicted_bytes;
    uint64_t requests_over_budget;
    /** slow and flooding peers (docs/reliability.md): the httpd's refusals, the fetcher's cut-offs */
    uint64_t conns_refused_per_host, conns_timed_out, requests_too_large, transfers_too_slow;
    uint64_t loop_busy_max_ns, loop_stalls;
    const metrics_hist_t *fetch_latency, *dispatch_latency, *loop_busy; /**< may be NULL (left out) */
    const status_job_t *jobs;
    size_t n_jobs, jobs_total;
    const status_peer_t *peers;
    size_t n_peers, peers_total;
    const status_event_t *events; /**< newest first */
    size_t n_events;
} status_snap_t;

/**
 * Which of a job's ntasks tasks to list, at most cap, into out (ascending, each once): first the
 * indices first[0..nfirst) (its running and failed tasks; those at or over ntasks are dropped, and
 * if there are more than cap, the lowest are kept), then the lowest other indices t for which
 * fill(t, arg) is true (fill NULL: every index), looking no further once fill_max indices passed
 * fill (counted whether listed or not: a job whose matches are all seen is not walked to its end)
 * nor once *walk indices were given to fill (walk NULL: no such bound; else *walk is lowered by
 * the indices given: one budget shared by the jobs of an answer, STATUS_MAX_WALK). Returns how
 * many. first may be reordered. O(nfirst log nfirst + the indices walked).
 */
size_t status_pick_tasks(uint32_t *first, size_t nfirst, uint32_t ntasks, bool (*fill)(uint32_t t, void *arg),
                         void *arg, uint32_t fill_max, uint32_t *walk, uint32_t *out, size_t cap);

/** The JSON of GET /v1/status (compact, xmalloc'd, *len bytes). 0, or -EIO if it cannot be encoded. */
int status_json(const status_snap_t *s, char **out, size_t *len);
/** The text of GET /metrics (xmalloc'd, *len bytes): every family with its HELP and TYPE. */
char *status_metrics(const status_snap_t *s, size_t *len);

#endif
