/**
 * @file internal.h  Shared internals of pool/: the pool handle, running tasks, the block index, and
 * the functions its files call in each other. Only the files of pool/ include it.
 *
 * Files: jobs.c (the registry: a job's life, tasks on our own slots, restore, status texts),
 * results.c (results shared with the pool), api.c (/v1/jobs, manifests, blocks), discover.c (pool
 * peers, /v1/jobs polling, manifests of other peers' jobs), ckpt.c (checkpoints of tasks given
 * back), live.c (running tasks' live output), volunteer.c (the submitter's and the
 * volunteer's sides of the protocol), pool.c (the handle's life, the routes, the wiring), and the
 * leaves: work.c (the thread-pool halves of publishing and collection), db.c (the records),
 * blocks.c (the block index), reply.c, events.c (recent events); the pure parts are coord.c,
 * decline.c, wire.c, bundle.c, liveout.c and status.c (the status JSON and the metrics text, pool/status.h); web.c
 * (the status page, /v1/status and /metrics) gathers what status.c shows.
 */
#ifndef PREON_POOL_INTERNAL_H
#define PREON_POOL_INTERNAL_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "core/key.h"
#include "core/log.h"
#include "core/manifest.h"
#include "core/metrics.h"
#include "exec/exec.h"
#include "pool/coord.h"
#include "pool/decline.h"
#include "pool/db.h"
#include "pool/pool.h"
#include "swarm/announce.h"
#include "swarm/fetch.h"
#include "swarm/serve.h"
#include "swarm/store.h"

typedef pool_job_t job_t;
typedef pool_res_t taskres_t;

#define POOL_MAX_FAIL_LINES 20
#define POOL_MAX_ATTEMPTS 3
#define POOL_LEASE_MS (UINT64_MAX / 4) /* local tasks never expire: the executor's time-out governs */
#define POOL_SELF "self"               /* the coordination core's worker id of this peer's own slots */
#define POOL_MAX_LEASES_PER_WORKER 64  /* leases one volunteer may hold at once (and our own slots) */
#define POOL_MAX_WORKERS_PER_HOST 64   /* volunteers one host may run (a cap on what one peer makes us hold) */
#define POOL_CACHE_TICK_MS 200         /* how often the store's size is checked against --cache */
#define POOL_CACHE_GRACE_MS 5000       /* a block used this recently is never evicted (cache.c) */
#define POOL_CACHE_LOW_PCT 90          /* an eviction goes down to this share of the quota */
#define POOL_CACHE_MIN (256ull << 20)  /* the default quota's floor: 10% of the data filesystem, at least this */
#define POOL_DRAIN_EXTRA_MS 10000        /* pool_drain waits the longest grace and this for the releases */
#define POOL_DRAIN_MAX_MS 60000          /* ... and never longer than this */
#define POOL_MAX_CKPT_FETCHES 16        /* checkpoints fetched at once (ckpt.c) */
#define POOL_CKPT_LEASE_MS (5 * 60000ull) /* a lease while its checkpoint travels (given back, or to start) */
#define POOL_KEEP_BLOCKS 64            /* blocks the fetcher keeps in memory: more than a read-ahead window */
#define POOL_MAX_EVENTS 100            /* recent events the status page lists (events.c) */
#define POOL_ADOPT_WINDOW_MS 60000  /* after its start (or the lease time, if longer), a submitter adopts a
                                      report of any worker (coord_adopt): its leases from before are lost */
#define POOL_MAX_READ_GIVEBACKS 3     /* runs of a task a volunteer gives back for failed reads; the next is reported */
#define POOL_DISK_PAUSE_MS 5000       /* after a write to the data directory failed, no task starts for this long */
#define POOL_EVENT_LEN 256             /* bytes of one, its NUL included (a longer line is cut) */
#define POOL_LIVE_EVERY_MS 2000        /* a volunteer sends a running task's new output this often (live.c) */
#define POOL_LIVE_MAX_SENDING 2        /* ... and at most this many updates at once (all its tasks together) */
#ifndef POOL_MAX_LIVE
#define POOL_MAX_LIVE 4096             /* submitter: tasks on volunteers whose live output is kept at once */
#endif
#ifndef POOL_MAX_LIVE_BYTES
#define POOL_MAX_LIVE_BYTES (256ull * 1024 * 1024) /* ... and their copies' bytes on disk, in all (--max-live) */
#endif

#define POOL_MAX_POOL_PEERS 1024
#define POOL_MAX_PEER_KEYS 4096    /* other peers' public keys remembered (by base URL), least recently used go */
#define POOL_HOST_BUDGET 1000    /* API requests per second per host (bursts of twice that) */
#define POOL_BULK_FACTOR 16      /* block and bitfield requests: this many times the host budget */
#define POOL_KEY_BUDGET 200      /* signed requests per second per key */
#define POOL_BUDGET_ENTRIES 4096 /* hosts (and keys) tracked by each budget */
/* /v1/status and /metrics (web.c) cost the loop far more than other reads (/v1/status up to a few
 * ms at its listing bounds, pool/status.h), and need no signature: on top of the host budget they
 * have budgets of their own, per host and for every host together, so no client (nor many)
 * can keep the loop making them. A page polls once a second. */
#define POOL_STATUS_BUDGET 10     /* status and metrics answers per second per host (bursts of twice that) */
#define POOL_STATUS_ALL_BUDGET 20 /* the same from every host together (bursts of as many) */
#define POOL_MAX_RECORDS_SHOWN 64 /* workers' records the peer file lists */
#define POOL_MAX_QUORUM_LINES 256 /* tasks' votes a job's status lists */
#define POOL_TRUST_RELOAD_MS 2000  /* the trust list is read again this often: a change needs no restart */
/* What other peers can make this peer hold, each a named cap (issue 8, item 7): */
#define POOL_MAX_PEERS_PER_HOST 64 /* pool peers on one host (however learnt: --peer, a greeting, the tracker) */
#ifndef POOL_MAX_REMOTE_JOBS
#define POOL_MAX_REMOTE_JOBS 1000  /* other peers' jobs known at once; past it new ones are not fetched */
#endif
#ifndef POOL_MAX_MIRROR_BYTES
#define POOL_MAX_MIRROR_BYTES (256u * 1024 * 1024) /* result manifests mirrored from other peers, in all */
#endif

typedef struct peer_key peer_key_t; /* trust.c */

/** One recent event (events.c): a line of the log, kept for the status page. */
typedef struct pool_event {
    uint64_t ms; /**< wall clock */
    int level;   /**< enum log_level */
    char text[POOL_EVENT_LEN];
} pool_event_t;
typedef struct cand cand_t;         /* volunteer.c */
typedef struct ckpt ckpt_t;         /* ckpt.c */

typedef struct running {
    pool_t *pool;
    job_t *job;
    uint32_t task;
    unsigned slot;
    void *ckpt;             /**< the checkpoint it started from (pool__ckpt_take), put back when it ends */
    bool remote;            /**< a task of another peer's job, under a lease from it */
    uint64_t read_failures; /**< its job's read_failures when it started: more at its end, it is given back */
    bool given_back;        /**< --when idle: stopped because the owner stayed; its lease is released */
    uint64_t last_renew_ms;
    uint64_t started_ms;    /**< wall clock at its start (the status page's time of a running task) */
    uint64_t lease_ms;      /**< remote: the lease the submitter gave (renewed at a third of it) */
    exec_task_t *et;
    /* run_dir holds the rest (its disk bounded in all: exec/quota.c); scratch: the overlay's work dir */
    char *run_dir, *work_dir, *scratch_dir, *out_path, *err_path;
    uint64_t run;           /**< this run's number here (pool->stage_seq): its files' names, its live output */
    /* remote: its live output, sent to the submitter (live.c) */
    uint64_t live_sent[2];  /**< bytes of stdout, stderr the submitter has taken */
    uint64_t live_last_ms;  /**< when an update was last made */
    bool live_busy;         /**< one is being read or sent */
    bool live_stopped;      /**< the submitter refused one: none more for this run */
    struct running *next;
} running_t;

/*
 * The files of pool/, bottom to top. A file calls only the ones before it in this list; what goes
 * up (a task recorded, a peer dropped...) goes through pool->up, which pool.c fills. Leaves:
 * coord.c, decline.c, wire.c, bundle.c, liveout.c (pure), db.c (records), work.c (thread-pool halves), blocks.c
 * (what each job holds, for swarm/serve.c), reply.c, events.c, auth.c (pure), status.c (pure), trustlist.c. Then
 * jobs.c < trust.c < results.c < api.c < discover.c < ckpt.c < live.c < volunteer.c < web.c < pool.c.
 * tests/integration/test_layers.sh checks it on the objects.
 */

/* Calls from a file to one above it, set by pool.c before anything runs. */
typedef struct pool_up {
    /* jobs.c -> results.c */
    void (*res_recorded)(job_t *j, uint32_t task, bool ok, int exit_code, const char *worker);
    void (*res_free)(job_t *j);
    /* jobs.c, discover.c -> volunteer.c */
    void (*vol_kick)(pool_t *p);
    void (*vol_offer)(pool_t *p, job_t *j, const char *peer);
    void (*vol_task_done)(pool_t *p, job_t *j, uint32_t task, int exit_code, uint64_t elapsed_ms, const char *reason);
    void (*vol_cancel_lease)(void *p, const char *job_id, uint32_t task, const char *worker);
    /* a remote task given back (--when idle), with the id of its checkpoint (ckpt.c) or NULL */
    void (*vol_release)(pool_t *p, job_t *j, uint32_t task, const char *ckpt_id);
    /* jobs.c -> ckpt.c */
    void (*ckpt_given_back)(pool_t *p, running_t *r);
    const char *(*ckpt_take)(pool_t *p, const job_t *j, uint32_t task, void **handle);
    void (*ckpt_put)(pool_t *p, void *handle);
    void (*ckpt_drop)(pool_t *p, const job_t *j, uint32_t task);
    /* results.c -> volunteer.c */
    void (*vol_result_taken)(pool_t *p, job_t *j, uint32_t task);
    /* jobs.c -> volunteer.c: what j's pool peers said of it (pool/decline.h), for its status */
    char *(*vol_why_peers)(pool_t *p, job_t *j, char *buf, size_t cap);
    /* discover.c -> volunteer.c */
    void (*vol_new_peer)(pool_t *p, const char *url);
    void (*vol_peer_dropped)(pool_t *p, const char *url);
} pool_up_t;

struct pool {
    keypair_t *key;       /* this peer's identity (DATA/key) */
    char key_hex[KEY_PUB_HEX_LEN + 1];
    uv_loop_t *loop;
    pool_opts_t opts;
    pool_view_t view;
    pool_up_t up;          /**< calls up the files of pool/ (see below) */
    char *data_dir, *self_exe, *jobs_dir;
    bool started, stopping;
    void (*stopped)(void *);
    void *stopped_arg;
    struct timespec t0;    /**< start time: the epoch of our results lists' order */
    uint64_t stage_seq;    /**< names each remote report's own staging directory and each task run */
    uv_prepare_t *lag;     /**< loop lag: once per iteration, the time it spent busy (not in epoll) */
    uint64_t lag_last_ns, lag_last_idle_ns, lag_max_ns, lag_over_5ms;
    uint64_t lag_last_cpu_ns, lag_cpu_max_ns, lag_cpu_over_5ms; /* the loop thread's own CPU time per iteration */
    uint64_t lag_last_wait_ns, lag_blocked_max_ns, lag_blocked_over_5ms; /* ... and its time blocked in the kernel */
    int lag_sched_fd; /* /proc/thread-self/schedstat of the loop thread, or -1 */
    job_t *joblist;
    store_t *store;
    db_t *db;
    coord_t *coord; /**< tasks, leases, membership: the coordination core */
    exec_t *exec;
    running_t *running;
    bool *slot_busy;
    unsigned nrunning;
    uint64_t cache_quota;     /**< --cache: the store's quota in bytes (cache.c) */
    uv_timer_t *cache_timer;
    bool cache_evicting;      /**< an eviction is under way in the thread pool */
    uint64_t cache_full_said_ms;
    uint64_t mem_used, disk_used; /**< what the running tasks asked for (--memory, --disk bound them) */
    idle_t *idle;             /**< --when idle: the machine's owner and load (exec/idle.h); NULL: always run */
    idle_verdict_t idle_v;    /**< its last verdict: tasks run only on IDLE_RUN */
    uint64_t given_back;      /**< tasks given back because the owner stayed */
    /* writes to the data directory that failed (a full disk: pool__disk_error) */
    uint64_t disk_errors;
    uint64_t disk_error_ms;   /**< wall clock of the last one (0: none) */
    char disk_error[POOL_EVENT_LEN];
    uint64_t disk_pause_until_ms; /**< no task starts or is asked for before (a disk error: POOL_DISK_PAUSE_MS) */
    ckpt_t *ckpts;            /**< checkpoints held here, by (job, task) (ckpt.c) */
    struct ckfetch *ckfetches; /**< checkpoints being fetched (ckpt.c), at most POOL_MAX_CKPT_FETCHES */
    unsigned n_ckfetches;
    uint64_t ckpt_pending_mem, ckpt_pending_disk; /**< what the tasks of ckpt_pending will hold */
    unsigned ckpt_pending;    /**< volunteer: leased tasks whose checkpoint is being fetched (count as running) */
    uint64_t ckpts_saved, ckpts_fetched, ckpts_restored; /**< given back with one, taken from a peer, started from one */
    bool draining;            /**< pool_drain: no task starts; done fires once the tasks are given back */
    void (*drained)(void *);
    void *drained_arg;
    uv_timer_t *drain_timer;
    unsigned ckpt_saving;     /**< checkpoints of tasks given back being collected (ckpt.c) */
    unsigned reports_pending; /**< volunteer: releases and done reports not answered yet (volunteer.c) */
    struct relretry *relretries; /**< volunteer: releases with a checkpoint to ask again (volunteer.c) */
    unsigned ckpts_held;      /**< checkpoints held here now, and their bytes */
    uint64_t ckpts_bytes;
    unsigned pending_work; /**< thread-pool items in flight */
    fetch_t *fetch;           /**< blocks and small GETs from other peers (swarm/fetch.c) */
    char **pool_peers;        /**< base URLs of the pool's other peers */
    size_t n_pool_peers;
    uint64_t *pool_fail_since; /**< by pool peer: when its /v1/jobs started failing (0: answering) */
    size_t n_static_peers;     /**< the first ones, from --peer: never dropped */
    bool peers_dirty, peers_saving; /**< DATA/peers is to be written again (discover.c) */
    uint64_t listing_gen;      /**< counts /v1/jobs answers (discover.c) */
    size_t n_remote_jobs;      /**< other peers' jobs held (at most POOL_MAX_REMOTE_JOBS) */
    uint64_t mirror_bytes;     /**< their result manifests mirrored (at most POOL_MAX_MIRROR_BYTES) */
    bool remote_cap_said, mirror_cap_said, host_cap_said; /**< a cap reached is logged once */
    uv_timer_t *discover;     /**< asks pool peers for their jobs (discover.c) */
    announce_t *announce;     /**< pool membership through the tracker (discover.c) */
    unsigned pending_gets;
    struct disc *manifests;   /**< manifest GETs under way, one per job id (discover.c) */
    unsigned n_manifests;
    struct refused *refused;  /**< manifests refused lately, by (peer, id, sig): not asked again (discover.c) */
    struct outbox *outbox;    /**< volunteer: result manifests waiting for their submitters */
    struct budget *host_api, *host_bulk, *key_signed; /**< request budgets (pool/budget.h) */
    struct budget *host_status, *all_status;          /**< /v1/status and /metrics (web.c) */
    uint64_t budget_said_ms;  /**< when a refusal was last logged */
    char decline_next[HASH_HEX_LEN + 1]; /**< volunteer: the job vol_declines_tick looks at first ("": the head) */
    struct cand *cands;       /**< submitter: results reported, by (job, task, result id) (volunteer.c) */
    uint64_t results_served;  /**< volunteer: result manifests its submitters fetched from here */
    uint64_t results_mirrored; /**< other peers' results taken from their submitters' lists (results.c) */
    uint64_t results_fetched; /**< submitter: results fetched (or taken inline) from volunteers */
    uint64_t votes_without_bytes; /**< submitter: reports that agreed with a result already here */
    uv_timer_t *lease_timer;  /**< submitter: expires leases of vanished volunteers */
    struct live *lives;       /**< submitter: live output of tasks on volunteers (live.c) */
    unsigned n_lives;         /**< ... at most POOL_MAX_LIVE */
    uint64_t live_bytes;      /**< ... their copies' bytes on disk and those being written (at most --max-live) */
    unsigned live_sending;    /**< volunteer: live output updates being read or sent (POOL_LIVE_MAX_SENDING) */
    serve_t *serve;           /**< /v1/block and /v1/have: what each job holds (swarm/serve.c, blocks.c) */
    struct auth_guard *guard; /**< signed requests admitted once (trust.c) */
    uint64_t started_ms;      /**< wall clock at pool_new: signed requests made before it are refused */
    struct bound_key {        /**< (URL, key) proven by a signed request: one per URL and per key (trust.c) */
        char *url;
        key_pub_t key;
    } *bound;
    size_t n_bound, cap_bound;
    key_pub_t *trusted;       /**< the trust list in force (trust.c): whose jobs run here */
    size_t n_trusted;
    bool trust_loaded;        /**< the list was read once */
    bool trust_loading, trust_bad_said;
    uv_timer_t *trust_timer;  /**< reads the list again every POOL_TRUST_RELOAD_MS */
    peer_key_t **peer_keys;   /**< other peers' keys by base URL (trust.c) */
    size_t n_peer_keys, cap_peer_keys;
    uint64_t key_clock;
    pool_event_t *events;     /**< the newest POOL_MAX_EVENTS events, a ring (events.c) */
    uint64_t ev_seq;          /**< events recorded since start: the next goes at ev_seq % POOL_MAX_EVENTS */
    uint64_t tasks_ok, tasks_failed; /**< submitter: tasks of our jobs decided since start (pool__task_finished) */
    uint64_t runs_ok, runs_failed;   /**< tasks run on this peer's slots since start (ours and others') */
    metrics_hist_t dispatch_hist; /**< submitter: hand-out to result in results/, seconds (the jobs' dispatch-ms) */
    metrics_hist_t loop_hist;     /**< the loop's busy time per iteration, seconds (pool.c) */
    char *web_csp;                /**< the status page's Content-Security-Policy (web.c) */
};


/* blocks.c */
/** Registers j's blocks with p->serve: its inputs if published here, else its blocks in the store. */
void pool__blocks_add_job(pool_t *p, job_t *j);
/** Forgets j's registrations (inputs, results); NULL: registers every local job again (a result was replaced). */
void pool__blocks_remove_job(pool_t *p, job_t *j);
/** Registers a hashed result of j (re-hashed when served: it may change). */
void pool__blocks_add_result(pool_t *p, job_t *j, taskres_t *tr);
/**
 * Fetches every block of m's files from peer alone (verified into the store): *missing counts up
 * once per fetch_block accepted, each of which fires cb once, later. Returns how many were refused.
 */
unsigned pool__fetch_blocks(pool_t *p, const manifest_t *m, const char *peer, fetch_cb cb, void *arg,
                            unsigned *missing);
/** Registers every result of j that is here. */
void pool__blocks_add_results(pool_t *p, job_t *j);
/** (jobs.c) j was removed from jobs/ (here, or by its submitter) and is over: frees its inputs (ours:
 *  DATA/inputs/<id>, after a marker that a restart honours) or its blocks in the store that no
 *  other job here holds (another peer's), keeping its results. Once; does nothing otherwise. */
void pool__job_release_inputs(job_t *j);

/* ckpt.c */
/** The task was given back (r's job holds it; r is freed after the call): its checkpoint is collected
 *  in the thread pool, then the task is released (remote: to the submitter, with the checkpoint). */
void pool__ckpt_given_back(pool_t *p, running_t *r);
/** The directory of task's checkpoint held here, or NULL; *handle (NULL if none) keeps the directory
 *  until pool__ckpt_put, even if the checkpoint is dropped or replaced meanwhile. */
const char *pool__ckpt_take(pool_t *p, const job_t *j, uint32_t task, void **handle);
void pool__ckpt_put(pool_t *p, void *handle);
/** Whether id is 64 lower-case hex digits. */
bool pool__ckpt_valid_id(const char *id);
/** Whether task's checkpoint is being fetched here now. */
bool pool__ckpt_fetching(pool_t *p, const job_t *j, uint32_t task);
/** Its id (64 hex), or NULL. */
const char *pool__ckpt_id(pool_t *p, const job_t *j, uint32_t task);
/** Forgets task's checkpoint (UINT32_MAX: every task's of j), its files removed in the thread pool. */
void pool__ckpt_drop(pool_t *p, const job_t *j, uint32_t task);
void pool__ckpt_free_all(pool_t *p);
/** Start-up (blocking: small reads): takes back the checkpoints in DATA/ckpt/ of our own jobs'
 *  undecided tasks, after pool__jobs_restore; removes the rest. */
void pool__ckpt_load(pool_t *p);
/** status: 0 (the checkpoint is held here now: pool__ckpt_take) or -errno (logged). */
typedef void (*pool_ckpt_cb)(pool_t *p, job_t *j, uint32_t task, int status, void *arg);
/**
 * Fetches task's checkpoint id from the peer at base URL peer (/v1/ckpt, signed; then its blocks
 * from that peer, verified) and keeps it here; held checkpoints total at most --cache. 0 and cb fires
 * once, later (also if it is held here already), or -errno (-EINVAL: a job with replicas > 1, a bad
 * id, stopping; -EBUSY: one of that task is being fetched, or POOL_MAX_CKPT_FETCHES are) and it
 * never fires.
 */
int pool__ckpt_fetch(pool_t *p, job_t *j, uint32_t task, const char *peer, const char *id, pool_ckpt_cb cb,
                     void *arg);
/** Answers GET /v1/ckpt/<job_id>/<task> from caller (checked already: a signed request). */
void pool__ckpt_handle(pool_t *p, httpd_req_t *r, const char *job_id, uint32_t task, const key_pub_t *caller);

/* reply.c */
/** A JSON error answer {"error": msg}. */
void pool__api_error(httpd_req_t *r, unsigned status, const char *msg);

/* events.c */
/** Logs a line at level (as log_msg) and keeps it as one of the recent events of the status page
 *  (cut there at POOL_EVENT_LEN bytes). For what happens to jobs, tasks and pool peers. */
void pool__note(pool_t *p, enum log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/**
 * A write to the data directory failed (rc: -ENOSPC, say) for job j (may be NULL); the text says
 * what and why (strerror included). Logged as an error and kept as an event (pool__note), counted,
 * and shown in the peer file (disk-errors, disk-error) and in j's status (disk-error) until a later
 * write of j's succeeds (pool__disk_ok). No task starts here, and none is asked for, during the
 * next POOL_DISK_PAUSE_MS: a full disk is not filled again at once.
 */
void pool__disk_error(pool_t *p, pool_job_t *j, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/** A write for j to the data directory succeeded: its status says no more that one failed. */
void pool__disk_ok(pool_job_t *j);
/** Keeps a recent event without logging it (a line per task that succeeded would crowd the log;
 *  a line logged already by a lower module). */
void pool__event(pool_t *p, enum log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/** Up to max of the recent events, newest first, into out (borrowed: valid until the next
 *  pool__note); returns how many. */
size_t pool__events(const pool_t *p, const pool_event_t **out, size_t max);

/* web.c */
/** Routes the status page (/) and /metrics on the peer's httpd (pool_start); 0 or -errno. */
int pool__web_start(pool_t *p);
void pool__web_stop(pool_t *p);
/** Answers GET /v1/status (path without /v1); false if path is not it. */
bool pool__web_handle(pool_t *p, httpd_req_t *r, const char *path);

/* jobs.c */
/** Removes the trees a and b (taken; b may be NULL) in the thread pool. */
void pool__rm_later(pool_t *p, char *a, char *b);
void pool__jobs_kick(pool_t *p);
/** pool_drain: fires its done once no task runs, no checkpoint is being collected and no report
 *  waits for its answer. Call after each of those ends. */
void pool__drain_check(pool_t *p);
/** Ends a drain without calling its done (pool_stop). */
void pool__drain_end(pool_t *p);
/** --when idle: the idle monitor's verdict changed (suspends, resumes or gives back the tasks here). */
void pool__idle_changed(pool_t *p, idle_verdict_t v, const char *why);
/** Adds another peer's job (takes m's contents), signed by submitter (sig: hex), and tells the view. */
void pool__job_add_remote(pool_t *p, const char *id, manifest_t *m, const char *peer, const char *sig,
                          const key_pub_t *submitter);
/** Its submitter stopped listing remote job j: it leaves jobs/ and results/ here. */
void pool__job_forget_remote(job_t *j);
/** A remote job's state as its submitter reports it changed: tells the view (and unlists it if cancelled). */
void pool__job_changed(job_t *j);
running_t *pool__start_task(pool_t *p, job_t *j, uint32_t task, bool remote);
/** Submitter: task is handed out now (started here, or leased to a volunteer): its dispatch clock. */
void pool__task_dispatched(job_t *j, uint32_t task);
/** Settles the job's state once no task waits or runs (after tasks were lost or failed outside finish). */
void pool__job_check_over(job_t *j);
/**
 * Hands worker's report on a task to the coordination core: true if accepted (the caller keeps the
 * result and then calls pool__task_finished), false if late, a duplicate or outvoted (logged; the
 * caller keeps nothing).
 */
bool pool__task_report(job_t *j, uint32_t task, const char *worker, const char *result_id, bool ok);
/** Bookkeeping of a task the core has decided: the database row, the clocks, the waiters. */
void pool__task_finished(job_t *j, uint32_t task, bool ok, int exit_code, uint64_t elapsed_ms, const char *reason,
                         const char *worker);
/**
 * Whether this peer meets j's requirements (its submitter's key trusted, os, arch, network, the
 * memory and disk it gives): true, or false with why filled, and d (may be NULL) the reason as a
 * volunteer tells the submitter (pool/decline.h). For our own slots and as a volunteer alike.
 */
bool pool__job_fits(pool_t *p, const job_t *j, char *why, size_t whylen, decline_t *d);
void pool__handle_free(uv_handle_t *h);
/** Restores the published jobs and staged copies from the records (pool_new). */
int pool__jobs_restore(pool_t *p);
void pool__jobs_free(pool_t *p);

#define POOL_MAX_HOST 48 /* an address as text (INET6_ADDRSTRLEN and its NUL) */
/** (gate.c) The request's source address as text ("?" if unknown): what per-host budgets count. */
const char *pool__req_host(httpd_req_t *r, char *out, size_t cap);
/**
 * (gate.c) Charges one request of who (a host's address or a key's hex) to budget b: false if
 * within it; true if over it, and then r is answered 429 (with Retry-After) and the refusal logged
 * (at most every 10 s). what: "host" or "key", for the log.
 */
bool pool__over_budget(pool_t *p, httpd_req_t *r, struct budget *b, const char *who, const char *what);
/** (gate.c) Requests refused with 429 since start, by every budget. */
uint64_t pool__refused(const pool_t *p);

/** (jobs.c) Appends the block hashes of m's files to *v (*n used, *cap allocated). */
void pool__manifest_blocks(const manifest_t *m, hash_t **v, size_t *n, size_t *cap);
/** (jobs.c) memcmp order of hash_t, for qsort and bsearch. */
int pool__cmp_hash(const void *a, const void *b);

/** (cache.c) The store's quota: checked every POOL_CACHE_TICK_MS, least recently used blocks out. */
void pool__cache_start(pool_t *p);
void pool__cache_stop(pool_t *p);

/** (discover.c) Adds the pool peers remembered in DATA/peers (start-up: blocking) and greets them. */
void pool__peers_load(pool_t *p);

/** (jobs.c) How many more tasks of j fit here now (free slots, --memory and --disk left), minus
 *  `asking` tasks of `asking_mem` / `asking_disk` bytes already asked for. */
unsigned pool__room(const pool_t *p, const job_t *j, unsigned asking, uint64_t asking_mem, uint64_t asking_disk);

/** (jobs.c) Adds a job's tasks to the coordination core with its replicas and quorum. 0 or -errno. */
int pool__coord_add(pool_t *p, const char *id, const jobdesc_t *d);

/* trust.c */
/**
 * A GET of target (path and query) from the peer at base, signed for that peer's key (asked of it
 * with GET /v1/id first if not known). Like fetch_get: 0 and cb fires once, later; or -errno and it
 * never fires. A 401 answer makes the peer's key be asked for again next time.
 */
int pool__sget(pool_t *p, const char *base, const char *target, size_t max_len, fetch_get_cb cb, void *arg);
/** pool__sget as a POST of body (body_len bytes, at most FETCH_MAX_POST_BODY: copied; NULL: a GET).
 *  The signature covers the method and the target, not the body: name the body in the target. */
int pool__spost(pool_t *p, const char *base, const char *target, const void *body, size_t body_len, size_t max_len,
                fetch_get_cb cb, void *arg);
/** Reads the trust list now (start-up: blocking). */
void pool__trust_load(pool_t *p);
/** Reads it again every POOL_TRUST_RELOAD_MS, in the thread pool. */
void pool__trust_start(pool_t *p);
void pool__trust_stop(pool_t *p);
/**
 * (trustlist.c) Whether the signed job j runs here at now_ms (wall clock): its submitter is
 * trusted, or one of its endorsements in force is by a trusted key (*endorser, may be NULL: that
 * key's hex, borrowed from j).
 */
bool pool__job_trusted(const pool_t *p, const job_t *j, uint64_t now_ms, const char **endorser);
/**
 * A signed request from key named url as its own (source address, peer= port): binds them, in
 * place of any earlier pair of that url or of that key.
 */
void pool__bind_peer_key(pool_t *p, const char *url, const key_pub_t *key);
/** The key proven to speak from url (pool__bind_peer_key), if any: what origin claims are checked against. */
bool pool__bound_key(pool_t *p, const char *url, key_pub_t *out);
/** Where key last spoke from (its cancels and result fetches go there), or NULL. */
const char *pool__bound_url(const pool_t *p, const key_pub_t *key);
/** The key of the peer at base, if known (learnt from its /v1/id: only to sign requests for it). */
bool pool__peer_key(pool_t *p, const char *base, key_pub_t *out);
void pool__forget_peer_key(pool_t *p, const char *base);
void pool__peer_keys_free(pool_t *p);
/**
 * Checks r is a signed request for this peer, made once: 0 with *caller set, or -EACCES with why
 * (unsigned, malformed, bad signature, stale, replayed).
 */
int pool__auth_check(pool_t *p, httpd_req_t *r, key_pub_t *caller, char *why, size_t whylen);

/* results.c */
/** Submitter: a task's result is recorded (its directory complete): hash it for the pool. */
void pool__res_recorded(job_t *j, uint32_t task, bool ok, int exit_code, const char *worker);
/** Answers /v1/results/...; false if path is not one of its requests. */
bool pool__res_handle(pool_t *p, httpd_req_t *r, const char *path);
/** Remote job j as its submitter lists it in /v1/jobs (entry e, decoded): mirror it. */
struct wire_job;
void pool__res_remote_seen(job_t *j, const struct wire_job *e, const char *peer);
void pool__res_free(job_t *j);
/** This peer's start time in ms: the epoch its results lists' order belongs to. */
uint64_t pool__epoch_ms(const pool_t *p);

/* api.c */
/** Answers /v1/jobs, /v1/manifest/, /v1/block/, /v1/have/ (path without /v1); false if not one. */
bool pool__api_handle(pool_t *p, httpd_req_t *r, const char *path);

/* discover.c */
/** Adds a pool peer (a base URL); true if it was new (it is then greeted: pool__vol_new_peer). */
bool pool__add_peer(pool_t *p, const char *url);
/** Whether url is one of the pool peers. */
bool pool__is_pool_peer(const pool_t *p, const char *url);
/**
 * Fetches job id's manifest from peer unless the job is known or its manifest is being fetched;
 * checks SHA-256(bytes) == id, decodes it, checks sig (hex, from the offer or the listing entry) is
 * the signature of the id by the key the manifest names as its submitter (refused and logged
 * otherwise), and adds the job (pool__job_add_remote), then asks for work. origin: peer says it is
 * the submitter (it offered the job, or listed it as its own); believed only if claimant (the
 * offer's signer, or the key peer's /v1/id gave; NULL: not known) is the manifest's submitter key:
 * otherwise the claim is logged and the job is not added.
 */
void pool__get_manifest(pool_t *p, const char *peer, const char *id, bool origin, const char *sig,
                        const key_pub_t *claimant);
/** Whether the peer at url is known to hold j's submitter key (its /v1/id said so). */
bool pool__is_submitter(pool_t *p, const job_t *j, const char *url);
/** Notes that peer lists remote job j; origin: it is the submitter, put it first (leases go there). */
void pool__job_add_peer(job_t *j, const char *peer, bool origin);
void pool__discover_start(pool_t *p);
void pool__discover_stop(pool_t *p);

/* live.c: a running task's live output (docs/usage.md, "Live output"; pool/liveout.h) */
/**
 * Every second (volunteer.c's timer): the remote tasks running here send their new output to their
 * submitters (every POOL_LIVE_EVERY_MS, read in the thread pool); the submitter drops the live
 * output of tasks whose worker no longer holds the lease, or that are decided.
 */
void pool__live_tick(pool_t *p);
/**
 * Answers POST /v1/output/<job>/<task> from worker (signed, checked already: it holds the task's
 * lease on our job j). Deferred: the bytes are checked against sha= and written in the thread pool.
 */
void pool__live_handle(pool_t *p, httpd_req_t *r, job_t *j, uint32_t task, const char *worker);
/** Drops every live output kept (pool_stop; again before the jobs are freed). */
void pool__live_stop(pool_t *p);

/* volunteer.c */
void pool__vol_kick(pool_t *p);
/** Submitter: tells peer (NULL: every pool peer) that job j has waiting tasks, if it has. */
void pool__vol_offer(pool_t *p, job_t *j, const char *peer);
/** Submitter: the summary of why j's pool peers do not run it (pool/decline.h), into buf; returns buf. */
char *pool__vol_why_peers(pool_t *p, job_t *j, char *buf, size_t cap);
/** A new pool peer: offers it the jobs with waiting tasks, or just greets it (so it learns of us). */
void pool__vol_new_peer(pool_t *p, const char *url);
void pool__vol_task_done(pool_t *p, job_t *j, uint32_t task, int exit_code, uint64_t elapsed_ms, const char *reason);
bool pool__vol_handle(pool_t *p, httpd_req_t *r, const char *path);
/** Submitter, a coord_cancel_job callback: tells the volunteer that held the lease to stop the task. */
void pool__vol_cancel_lease(void *p, const char *job_id, uint32_t task, const char *worker);
/** A remote task here was given back (--when idle): its lease is released to the submitter. */
void pool__vol_release(pool_t *p, job_t *j, uint32_t task, const char *ckpt_id);
/** A pool peer is gone (dropped as silent): the leases it held go back to waiting at once. */
void pool__vol_peer_dropped(pool_t *p, const char *url);
/** The submitter has this result (it is in its list): drop the copy kept for it. */
void pool__vol_result_taken(pool_t *p, job_t *j, uint32_t task);
/** Start-up: the results kept for other peers' submitters before the restart (volunteer.c's outbox). */
void pool__vol_outbox_load(pool_t *p);
/** Frees the kept results in memory (their rows stay). */
void pool__vol_outbox_free(pool_t *p);
/** Copies of the kept results' manifests (each NUL-terminated, *lens their lengths), for the cache's
 *  pins; *n of them. Free each and the arrays. */
char **pool__vol_outbox_manifests(pool_t *p, size_t **lens, size_t *n);
void pool__vol_start(pool_t *p);
void pool__vol_stop(pool_t *p);


#endif
