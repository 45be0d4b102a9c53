/**
 * @file pool.h  The peer's coordination: its job registry and records, scheduling, the submitter's
 * and the volunteer's sides of the protocol, discovery and results sharing (docs/architecture.md).
 *
 * pool/ calls swarm/ (blocks, the tracker), exec/ (the sandbox) and core/; it never sees FUSE. The
 * view above it (fs/) shows its jobs as files: it creates jobs being copied in (pool_job_stage), asks
 * for them to be published, renamed, cancelled or dropped, and reads the records (pool_job_t, whose
 * fields are the pool's to write: read-only outside pool/). The pool tells the view what changed
 * through the table of callbacks it is given (pool_view_t), always from the loop thread. The calls
 * that change a job (rename, unlist, cancel) report the change through those callbacks before they
 * return; everything else (a staged job too: its directory is made first) is reported later, from
 * the loop.
 *
 * Everything runs on the loop given; blocking disk work goes to libuv's thread pool.
 * Errors are 0 or -errno.
 */
#ifndef PREON_POOL_POOL_H
#define PREON_POOL_POOL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "core/hash.h"
#include "core/httpd.h"
#include "core/key.h"
#include "core/manifest.h"
#include "exec/idle.h"
#include "pool/coord.h"
#include "pool/decline.h"

typedef struct pool pool_t;
typedef struct pool_job pool_job_t;

typedef enum pool_job_state {
    POOL_JOB_STAGING,    /**< being copied in: a writable backed directory (the view's) */
    POOL_JOB_PUBLISHING, /**< hashing in the thread pool */
    POOL_JOB_REJECTED,   /**< not published; reason says why; still writable so it can be fixed */
    POOL_JOB_RUNNING,    /**< published, tasks outstanding */
    POOL_JOB_DONE,
    POOL_JOB_FAILED,
    POOL_JOB_CANCELLED,
} pool_job_state_t;

/**
 * A task's result as the pool sees it: the manifest of results/<job>/<task>/ (outputs, stdout,
 * stderr, exit_code). The submitter hashes every result it records and serves the manifest and its
 * blocks; other peers mirror the manifests and read the files lazily (pool_block_read).
 */
typedef struct pool_res {
    uint32_t task;
    bool ok;
    int exit_code;
    char id[HASH_HEX_LEN + 1]; /**< SHA-256 of the canonical manifest bytes */
    manifest_t man;
    char *bytes;               /**< the canonical manifest, as served */
    size_t len;
    char worker[HASH_HEX_LEN + 1]; /**< the key (hex) whose result the submitter accepted ("" if not known) */
    char sig[129];             /**< the submitter's signature of this entry (pool/auth.h auth_accepted_sign) */
} pool_res_t;

struct pool_job {
    /* What the view reads. */
    pool_t *pool;
    char *name;            /**< its name in jobs/ (unique among live jobs) */
    pool_job_state_t state;
    char *reason;          /**< why rejected, or the first failure */
    char id[HASH_HEX_LEN + 1];
    manifest_t man;        /**< valid once published */
    bool published;
    bool remote;           /**< published by another peer of the pool: no inputs/ here */
    bool listed;           /**< in jobs/ (a published job leaves it when cancelled; results stay) */
    uint64_t gen;          /**< staging: bumped on every change (pool_job_touch) */
    pool_res_t **tres;     /**< by task: the hashed (submitter) or mirrored (others) results */
    uint32_t n_tres;
    void *view;            /**< the view's, untouched by the pool */
    /* The pool's own. */
    char **peers;          /**< remote: the peers that list it (base URLs) */
    size_t n_peers;
    char **fail_lines;     /**< "task N: reason", at most POOL_MAX_FAIL_LINES */
    size_t n_fail_lines;
    uint32_t *task_ms;     /**< run times of finished tasks, for the status percentiles */
    size_t n_task_ms, cap_task_ms;
    uint64_t *dispatch_t0; /**< submitter: when each task was handed out (started here or leased), 0: not */
    uint32_t *dispatch_ms; /**< submitter: hand-out to result in results/, of finished tasks */
    uint32_t *elapsed_ms;  /**< by task: the run time of a decided task, UINT32_MAX if not known (NULL: none yet) */
    size_t n_dispatch_ms, cap_dispatch_ms;
    bool origin_seen;      /**< remote: peers[0] has listed it as its own (it is the submitter) */
    bool origin_claim_said; /**< remote: a peer without its submitter's key claimed it: logged once */
    char sig[129];         /**< the submitter's signature of the job id (pool/auth.h: auth_job_*), hex; "" if none */
    bool signed_job;       /**< man.submitter names a key and sig is its signature: only that key acts as submitter */
    key_pub_t submitter;   /**< that key (valid if signed_job) */
    uint64_t listed_gen;   /**< remote: the last /v1/jobs answer (p->listing_gen) that listed it */
    bool unfit_logged;     /**< volunteer: "not volunteering: why" is in the log */
    uint64_t read_failures; /**< reads of its files answered EIO here (pool_job_read_failed) */
    uint8_t *read_givebacks; /**< volunteer: per task, its runs here given back for a failed read (NULL: none) */
    char *disk_error;      /**< the last write for it to the data directory that failed (status: disk-error) */
    char *unfit;           /**< submitter: why this peer's own slots cannot run it (NULL: they can) */
    uint8_t *publishing;   /**< submitter: per task, a volunteer's result is being renamed into results/ */
    bool inputs_gone;      /**< removed from jobs/ and over: its inputs (submitter) or blocks (others) are freed */
    uint32_t stopped_by[4]; /**< tasks run here that a limit stopped: memory, time, disk, processes */
    uint64_t forks_refused; /**< forks the processes limit refused its tasks here */
    bool lease_pending;    /**< volunteer: a lease request to the submitter is under way */
    unsigned lease_asked;  /**< volunteer: tasks that request asks for (slots it holds free for them) */
    uint64_t lease_retry_ms;
    uint32_t *tres_order;  /**< submitter: tasks in the order their results were hashed */
    bool res_fetching;     /**< remote: a /v1/results request is under way */
    uint32_t res_cursor;   /**< remote: entries of the submitter's list looked at so far */
    uint64_t r_epoch;      /**< remote: the submitter's start time that list order belongs to */
    coord_counts_t rcounts; /**< remote: the task counts its submitter last reported */
    uint32_t r_done;       /**< remote: results its submitter reported */
    pool_job_state_t r_state;   /**< remote: the state its submitter reported */
    uint64_t bytes_served; /**< its blocks (inputs, results) other peers asked this peer for (status) */
    uint64_t bytes_fetched; /**< submitter: its results' bytes received from volunteers (status) */
    struct decline_table *declines; /**< submitter: why pool peers do not run it (pool/decline.h), or NULL */
    struct decline decline_sent; /**< volunteer: the reason last told its submitter (code 0: none) */
    uint64_t decline_sent_ms;  /**< ... and when */
    uint64_t decline_checked_ms; /**< volunteer: when it last looked whether it declines (once a second) */
    bool decline_pending;      /**< ... a decline request is under way */
    unsigned refs;         /**< work items and tasks in flight that point at this job */
    bool gone;             /**< forgotten: free when refs drops to 0 */
    bool creating;         /**< pool_job_stage: its directory is being made; not reported to the view yet */
    pool_job_t *next;
};

/**
 * What the pool tells the view, from the loop thread. Each may be NULL.
 * - job_added: a new record (staged by the view, restored at start, or another peer's job).
 * - job_changed: its state, reason, published or listed changed (published: the tree is final;
 *   over: waiters may be answered; back to POOL_JOB_STAGING: a publish was stale, arm the quiet timer).
 * - job_removed: the record is forgotten (replaced, dropped, or no longer listed by its submitter);
 *   the view lets go of it now: the record is freed once nothing in flight points at it.
 * - result_added: another peer's job has a mirrored result (pool_job_t.tres[r->task] == r).
 */
typedef struct pool_view {
    void *arg;
    void (*job_added)(void *arg, pool_job_t *j);
    void (*job_changed)(void *arg, pool_job_t *j);
    void (*job_removed)(void *arg, pool_job_t *j);
    void (*result_added)(void *arg, pool_job_t *j, pool_res_t *r);
} pool_view_t;

typedef struct pool_opts {
    const char *data_dir;    /**< absolute path; created if missing */
    const char *jobs_dir;    /**< where the view shows jobs/ (tasks read their inputs through it) */
    const char *self_exe;    /**< absolute path of the preon binary (the sandbox's rlimit wrapper) */
    const char *bwrap;       /**< NULL = /usr/bin/bwrap */
    unsigned slots;          /**< concurrent tasks (>= 0; 0 runs nothing) */
    uid_t uid_base;          /**< sandbox uids: uid_base + slot */
    bool allow_network;      /**< run jobs that ask for network */
    httpd_t *httpd;          /**< borrowed, may be NULL: the peer API is served under /v1 there */
    const char *http_url;    /**< how others reach this peer's httpd, for the status file */
    const char *const *peers; /**< base URLs of pool peers known from the start (--peer) */
    size_t n_peers;
    const char *tracker_url;  /**< announce URL of the pool's tracker (NULL: no tracker) */
    const char *pool;         /**< the pool's name (NULL = "default") */
    uint16_t http_port;       /**< our httpd's port, announced to the tracker */
    uint64_t lease_ms;        /**< lease given to volunteers; they renew it (0 = 30 s) */
    uint64_t discover_ms;     /**< how often pool peers are asked for their jobs (0 = 1 s) */
    const char *mountpoint;   /**< for the status text only */
    size_t max_remote_jobs;   /**< other peers' jobs held at once (0 = POOL_MAX_REMOTE_JOBS) */
    uint64_t max_mirror_bytes; /**< their result manifests mirrored, in all (0 = POOL_MAX_MIRROR_BYTES) */
    uint64_t max_live_bytes;  /**< --max-live: copies of our tasks' live output sent by volunteers, in all
                                   (0 = POOL_MAX_LIVE_BYTES; pool/live.c) */
    const char *trust_file;   /**< --trust: keys whose jobs run here (with DATA/trusted/; none: only ours) */
    uint32_t host_budget;     /**< API requests per second per host (0 = POOL_HOST_BUDGET); blocks: 16x */
    uint32_t key_budget;      /**< signed requests per second per key (0 = POOL_KEY_BUDGET) */
    uint64_t cache_bytes;     /**< --cache: the block store's quota (0: 10% of the data filesystem, >= 256M) */
    uint64_t memory_total;    /**< --memory: what all tasks here may use together (0: the machine's) */
    uint64_t disk_total;      /**< --disk: the disk all tasks here may ask for together (0: the free space) */
    bool no_disk_quota;       /**< --no-disk-quota: each file of a task bounded by its disk, not the total */
    unsigned cpu_permille;    /**< --cpu: the share of the machine's CPUs tasks may use, x 1000 (0: all) */
    bool when_idle;           /**< --when idle: tasks run only while the machine is idle (exec/idle.h) */
    idle_opts_t idle;         /**< ... judged so (--idle-after, --idle-cpu, --idle-grace, --input-dir) */
} pool_opts_t;

/**
 * Opens the data directory (block store, records; work/ emptied) and restores the published jobs
 * and the staged copies, each reported through view->job_added before it returns. Nothing runs and
 * nothing is served until pool_start. 0 or -errno (logged).
 */
int pool_new(uv_loop_t *loop, const pool_opts_t *opts, const pool_view_t *view, pool_t **out);
/** Serves the peer API, joins the pool (discovery, the tracker) and starts tasks. */
void pool_start(pool_t *p);
/**
 * Stops serving and discovery, kills running tasks (they run again after a restart), waits (without
 * blocking) for thread-pool work to land, then frees everything (view->job_removed is not called)
 * and calls done(arg). p is invalid once done runs.
 */
void pool_stop(pool_t *p, void (*done)(void *arg), void *arg);
/**
 * Before pool_stop, a stop with notice: no task starts any more; every task running here is stopped
 * as when its machine's owner stays (SIGTERM, its job's grace, SIGKILL) and given back with its
 * checkpoint (docs/job-format.md, "Checkpoints"): another peer's task is released to its submitter,
 * which fetches the checkpoint before it answers; a task of our own job keeps its checkpoint in
 * DATA/ckpt/ for the next start. done(arg) fires once all of that is over, or after the longest
 * grace plus POOL_DRAIN_EXTRA_MS (at most POOL_DRAIN_MAX_MS), from the loop. A second call fires
 * the first call's done at once (a second Ctrl-C), and its own done is never called.
 */
void pool_drain(pool_t *p, void (*done)(void *arg), void *arg);
/** Frees a pool that was never started (after pool_new). */
void pool_free(pool_t *p);

/** A live job by its name in jobs/, or one being staged under that name (creating, not reported
 * to the view yet: its view is NULL), or NULL. */
pool_job_t *pool_job_find(pool_t *p, const char *name);
/** A published job (local or remote) by its hex id, or NULL. */
pool_job_t *pool_job_by_id(pool_t *p, const char *id);
/** Calls cb for every live job, oldest first (cb must not add or remove jobs). */
void pool_jobs_foreach(pool_t *p, void (*cb)(void *arg, pool_job_t *j), void *arg);
/**
 * The end of pool_job_stage, from the loop: j the new POOL_JOB_STAGING record (job_added has been called
 * for it) and status 0; or j NULL and status the mkdir's -errno (logged) or -ECANCELED (the pool
 * began stopping, or the record was replaced, meanwhile).
 */
typedef void (*pool_stage_cb)(void *arg, pool_job_t *j, int status);
/**
 * A job directory is being copied in: takes the name at once with a POOL_JOB_STAGING record marked
 * creating (see pool_job_find; a finished job of that name is replaced: job_removed, before this
 * returns), makes data/staging/<name> in the thread pool, then reports the record through
 * job_added and calls cb, from the loop (never from inside this call). 0 (cb will be called
 * once), -EEXIST (a job of that name is live or being staged), -ECANCELED (the pool is stopping),
 * -EINVAL; cb is not called then.
 */
int pool_job_stage(pool_t *p, const char *name, pool_stage_cb cb, void *arg);
/** The staged copy changed: gen is bumped; a rejected job goes back to POOL_JOB_STAGING. */
void pool_job_touch(pool_job_t *j);
/**
 * A staged job is not published, for why (e.g. its copy into jobs/ reported an error): it becomes
 * POOL_JOB_REJECTED with why as its reason (control bytes shown as '?'), logged once per reason. Its
 * staged copy stays; a change to it (pool_job_touch) makes it POOL_JOB_STAGING again. Nothing for a
 * job that is published, being published or gone.
 */
void pool_job_reject(pool_job_t *j, const char *why);
/** Hashes the staged copy in the thread pool; job_changed follows with POOL_JOB_RUNNING, POOL_JOB_REJECTED or
 * (the copy changed meanwhile) POOL_JOB_STAGING. Only for a POOL_JOB_STAGING or POOL_JOB_REJECTED job. */
void pool_job_publish(pool_job_t *j);
/** A staged job was renamed in jobs/ (a live job of newname is replaced: job_removed, before this
 * returns). */
void pool_job_rename(pool_job_t *j, const char *newname);
/** Removed from jobs/: a staged job is forgotten (job_removed), a published one unlisted
 * (job_changed), before this returns. */
void pool_job_unlist(pool_job_t *j);
/** Something in a published job was removed (rm -r): cancels it (job_changed, before this returns). */
void pool_job_cancel(pool_job_t *j, const char *why);
bool pool_job_over(const pool_job_t *j);
/**
 * Forgets a job of ours that was removed from jobs/ and is over: its record, its results and
 * what is left of its inputs (job_removed, before this returns; its files go in the thread pool).
 * 0, or -EBUSY if it is still in jobs/, not over, or another peer's.
 */
int pool_job_forget(pool_job_t *j);
/** Keeps j's record alive while something in flight points at it (a file handle, a parked read). */
void pool_job_ref(pool_job_t *j);
/** Drops a reference: a forgotten job is freed with its last one. */
void pool_job_unref(pool_job_t *j);
const char *pool_job_state_name(pool_job_state_t s);
/** The text of status/<name> (xmalloc'd). */
char *pool_job_status_text(pool_job_t *j, size_t *len);
/** The text of the peer file (xmalloc'd). */
char *pool_peer_status_text(pool_t *p, size_t *len);

/**
 * Verified blocks of another peer's job (its inputs, or the files of its mirrored results), for the
 * view's reads. pool_block_read: cb gets the verified bytes (valid during the call only unless held
 * with pool_block_hold; NULL with status 0 if the block is in the store: pool_block_load it) or
 * status < 0; it fires later, from the loop. Fetched from the peers that list j. 0 or -errno (cb
 * not called).
 */
typedef void (*pool_block_cb)(const hash_t *h, int status, const uint8_t *data, size_t len, void *arg);
int pool_block_read(pool_t *p, pool_job_t *j, const hash_t *h, uint32_t len, pool_block_cb cb, void *arg);
/** Asks for a block ahead of a read (kept in memory once verified, and stored). */
int pool_block_prefetch(pool_t *p, pool_job_t *j, const hash_t *h, uint32_t len);
/** The verified bytes of a block held in memory, held for the caller (pool_block_release), or NULL. */
const uint8_t *pool_block_peek(pool_t *p, const hash_t *h, size_t *len);
void pool_block_hold(const uint8_t *data);
void pool_block_release(const uint8_t *data);
/** Whether the block store holds the block (verified when stored). */
bool pool_block_has(pool_t *p, const hash_t *h);
/** Reads len bytes at off of a stored block. The count read, or -errno. */
ssize_t pool_block_load(pool_t *p, const hash_t *h, void *buf, size_t len, uint64_t off);
/**
 * A read of j's files was answered EIO: a block could not be had (its holders did not answer: the
 * submitter, killed, was the only one). A task of j running here then may have failed for it, not
 * for its own sake: it is given back to its submitter when it ends, never reported (docs/reliability.md).
 */
void pool_job_read_failed(pool_t *p, pool_job_t *j);

/**
 * A task's output while it runs (docs/usage.md, "Live output"): on the peer that runs it, its
 * stdout and stderr files as the task writes them; on the submitter of a task that runs on a
 * volunteer, the copy of what the volunteer sent (pool/liveout.h: bounded).
 */
typedef struct pool_live {
    uint64_t run;         /**< this run's number here: another run of the task (a retry) has another */
    const char *path[2];  /**< its stdout and stderr (borrowed: valid until the loop turns; a file may not
                               exist yet, or be gone into results/ already) */
} pool_live_t;
/** Whether task of j has live output here now: 0 with *out filled, or -ENOENT. */
int pool_task_live(pool_t *p, pool_job_t *j, uint32_t task, pool_live_t *out);
/** Calls cb for every task of j with live output here (each once). */
void pool_live_foreach(pool_t *p, pool_job_t *j, void (*cb)(void *arg, uint32_t task), void *arg);

/** Milliseconds of the wall clock. */
uint64_t pool_now_ms(void);

#endif
