/**
 * @file internal.h  Shared internals of fs/: the node tree, the job record, the fs handle.
 *
 * Nodes: every name the kernel has looked up is a node_t with a never-reused inode number (an index
 * into fs->nodes). Virtual directories (root, jobs/, results/, status/, wait/, published job trees)
 * keep their children in node->kids; "backed" nodes (a job still being copied, results) mirror a
 * real path under the data directory and keep the children the kernel has looked up. A node removed
 * from the tree is detached and freed when the kernel forgets it (nlookup reaches 0).
 */
#ifndef PREON_FS_INTERNAL_H
#define PREON_FS_INTERNAL_H
#include <fuse_lowlevel.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/manifest.h"
#include "exec/exec.h"
#include "fs/db.h"
#include "fs/fs.h"
#include "pool/coord.h"
#include "swarm/announce.h"
#include "swarm/fetch.h"
#include "swarm/serve.h"
#include "swarm/store.h"

typedef struct job job_t;
typedef struct node node_t;

typedef enum node_kind {
    N_ROOT,
    N_JOBS,      /**< jobs/ */
    N_RESULTS,   /**< results/ */
    N_STATUSDIR, /**< status/ */
    N_WAITDIR,   /**< wait/ */
    N_PEER,      /**< the peer status file */
    N_STAGE,     /**< inside a job being copied: backed by data/staging/<name>/..., writable */
    N_PUB_DIR,   /**< a directory of a published job */
    N_PUB_FILE,  /**< a file of a published job: job->man.files[file] */
    N_RES,       /**< inside results/<name>: backed by data/results/<id>/..., read-only */
    N_STATUS,    /**< status/<name> */
    N_WAIT,      /**< wait/<name> */
    N_RRES_DIR,  /**< inside results/<name> of a remote job: a directory of a mirrored result */
    N_RRES_FILE, /**< a file of a mirrored result: res->man.files[file], read lazily (remote.c) */
} node_kind_t;

/**
 * A task's result as the pool sees it: the manifest of results/<job>/<task>/ (outputs, stdout,
 * stderr, exit_code). The submitter hashes every result it records (results.c) and serves the
 * manifest and its blocks; other peers mirror the manifests and read the files lazily.
 */
typedef struct taskres {
    uint32_t task;
    bool ok;
    int exit_code;
    char id[HASH_HEX_LEN + 1]; /**< SHA-256 of the canonical manifest bytes */
    manifest_t man;
    char *bytes;               /**< the canonical manifest, as served */
    size_t len;
} taskres_t;

struct node {
    fuse_ino_t ino;
    uint64_t nlookup;
    node_kind_t kind;
    node_t *parent; /**< NULL for the root and for detached nodes */
    size_t kidpos;  /**< index in parent->kids */
    char *name;
    node_t **kids;
    size_t nkids, capkids;
    node_t **index;   /**< open-addressing hash of kids by name, once a directory is big */
    size_t index_cap; /**< 0 or a power of two, at least twice nkids */
    job_t *job;     /**< the job this node belongs to (not for the fixed top nodes) */
    int32_t file;   /**< N_PUB_FILE: index into job->man.files; N_RRES_FILE: into res->man.files */
    taskres_t *res; /**< N_RRES_*: the result it belongs to (owned by the job) */
    bool detached;
};

typedef enum job_state {
    J_STAGING,    /**< being copied in: a writable backed directory */
    J_PUBLISHING, /**< hashing in the thread pool */
    J_REJECTED,   /**< not published; reason says why; still writable so it can be fixed */
    J_RUNNING,    /**< published, tasks outstanding */
    J_DONE,
    J_FAILED,
    J_CANCELLED,
} job_state_t;

typedef struct waiter {
    fuse_req_t req;
    size_t size;
    off_t off;
    struct wait_fh *fh;
    job_t *job;
    struct waiter *next;
} waiter_t;

struct job {
    fs_t *fs;
    char *name;
    job_state_t state;
    char *reason;          /**< why rejected, or the first failure */
    char id[HASH_HEX_LEN + 1];
    manifest_t man;        /**< valid once published */
    bool published;
    bool remote;           /**< published by another peer of the pool: no inputs/ here */
    char **peers;          /**< remote: the peers that list it (base URLs) */
    size_t n_peers;
    node_t *dir;           /**< jobs/<name>, NULL once removed from jobs/ */
    node_t *results;       /**< results/<name>, once published */
    node_t *status, *wait; /**< status/<name>, wait/<name> */
    /* staging */
    unsigned open_files;   /**< file handles open for writing in the staging tree */
    uint64_t last_change_ms;
    uint64_t gen;          /**< bumped on every change to the staging tree */
    uv_timer_t *quiet;     /**< publishes when it fires with open_files == 0 */
    bool publish_now;      /**< renamed from a dot-name: publish without a quiet period */
    /* running */
    char **fail_lines;     /**< "task N: reason", at most FS_MAX_FAIL_LINES */
    size_t n_fail_lines;
    uint32_t *task_ms;     /**< run times of finished tasks, for the status percentiles */
    size_t n_task_ms, cap_task_ms;
    uint64_t *dispatch_t0; /**< submitter: when each task was handed out (started here or leased), 0: not */
    uint32_t *dispatch_ms; /**< submitter: hand-out to result in results/, of finished tasks */
    size_t n_dispatch_ms, cap_dispatch_ms;
    waiter_t *waiters;
    bool origin_seen;      /**< remote: peers[0] has listed it as its own (it is the submitter) */
    uint64_t listed_gen;   /**< remote: the last /v1/jobs answer (fs->listing_gen) that listed it */
    bool unfit_logged;     /**< volunteer: "not volunteering: why" is in the log */
    char *unfit;           /**< submitter: why this peer's own slots cannot run it (NULL: they can) */
    uint8_t *publishing;   /**< submitter: per task, a volunteer's result is being renamed into results/ */
    bool lease_pending;    /**< volunteer: a lease request to the submitter is under way */
    unsigned lease_asked;  /**< volunteer: tasks that request asks for (slots it holds free for them) */
    uint64_t lease_retry_ms;
    /* results shared with the pool (results.c) */
    taskres_t **tres;      /**< by task: the hashed (submitter) or mirrored (others) results */
    uint32_t n_tres;
    uint32_t *tres_order;  /**< submitter: tasks in the order their results were hashed */
    bool res_fetching;     /**< remote: a /v1/results request is under way */
    uint32_t res_cursor;   /**< remote: entries of the submitter's list looked at so far */
    uint64_t r_epoch;      /**< remote: the submitter's start time that list order belongs to */
    coord_counts_t rcounts; /**< remote: the task counts its submitter last reported */
    uint32_t r_done;       /**< remote: results its submitter reported */
    job_state_t r_state;   /**< remote: the state its submitter reported */
    unsigned refs;         /**< work items and tasks in flight that point at this job */
    bool gone;             /**< forgotten: free when refs drops to 0 */
    job_t *next;
};

#define FS_MAX_FAIL_LINES 20
#define FS_MAX_ATTEMPTS 3
#define FS_LEASE_MS (UINT64_MAX / 4) /* local tasks never expire: the executor's time-out governs */
#define FS_SELF "self"               /* the coordination core's worker id of this peer's own slots */
#define FS_MAX_LEASES_PER_WORKER 64  /* leases one volunteer may hold at once (and our own slots) */
#define FS_MAX_WORKERS_PER_HOST 64   /* volunteers one host may run (a cap on what one peer makes us hold) */

#define FS_API_MAX_JOBS 10000 /* entries in one /v1/jobs answer */
#define FS_MAX_POOL_PEERS 1024

/** How far read-ahead of a remote file has been asked for (remote.c), per recent reader. */
typedef struct fs_ra_mark {
    fuse_ino_t ino; /**< the file's node (inode numbers are never reused); 0: unused */
    size_t next;    /**< first block not asked for yet */
    size_t last;    /**< last block of the previous read */
    size_t window;  /**< blocks read ahead: grows while the reader goes on sequentially */
} fs_ra_mark_t;
#define FS_RA_STREAMS 8

typedef struct running {
    fs_t *fs;
    job_t *job;
    uint32_t task;
    unsigned slot;
    bool remote;            /**< a task of another peer's job, under a lease from it */
    uint64_t last_renew_ms;
    uint64_t lease_ms;      /**< remote: the lease the submitter gave (renewed at a third of it) */
    exec_task_t *et;
    char *work_dir, *scratch_dir, *out_path, *err_path; /* scratch: the overlay's work dir */
    struct running *next;
} running_t;

struct fs {
    uv_loop_t *loop;
    uint64_t stage_seq;    /**< names each remote report's own staging directory */
    uv_prepare_t *lag;     /**< loop lag: once per iteration, the time it spent busy (not in epoll) */
    uint64_t lag_last_ns, lag_last_idle_ns, lag_max_ns, lag_over_5ms;
    fs_opts_t opts;
    char *mountpoint, *data_dir, *self_exe;
    struct fuse_session *se;
    uv_poll_t *poll;
    struct fuse_buf buf;
    bool mounted, stopping;
    void (*on_exit)(void *, int);
    void *exit_arg;
    node_t **nodes; /**< by inode number; NULL where freed */
    size_t nnodes, capnodes;
    node_t *root, *jobs, *results, *statusdir, *waitdir, *peer;
    job_t *joblist;
    store_t *store;
    db_t *db;
    coord_t *coord; /**< tasks, leases, membership: the coordination core */
    exec_t *exec;
    running_t *running;
    bool *slot_busy;
    unsigned nrunning;
    unsigned pending_work; /**< thread-pool items in flight */
    uid_t uid;
    gid_t gid;
    struct timespec started; /**< times of the fixed nodes */
    fetch_t *fetch;           /**< blocks and small GETs from other peers (swarm/fetch.c) */
    char **pool_peers;        /**< base URLs of the pool's other peers */
    size_t n_pool_peers;
    uint64_t *pool_fail_since; /**< by pool peer: when its /v1/jobs started failing (0: answering) */
    size_t n_static_peers;
    uint64_t listing_gen;      /**< counts /v1/jobs answers (remote.c) */     /**< the first ones, from --peer: never dropped */
    uv_timer_t *discover;     /**< asks pool peers for their jobs (remote.c) */
    announce_t *announce;     /**< pool membership through the tracker (remote.c) */
    unsigned pending_gets;
    struct disc *manifests;   /**< manifest GETs under way, one per job id (remote.c) */
    unsigned n_manifests;
    struct rread *rreads;     /**< reads parked on fetches (remote.c) */
    fs_ra_mark_t ra[FS_RA_STREAMS]; /**< read-ahead marks, a ring (remote.c) */
    unsigned ra_next;
    struct outbox *outbox;    /**< volunteer: result manifests waiting for their submitters */
    uv_timer_t *lease_timer;  /**< submitter: expires leases of vanished volunteers */
    serve_t *serve;           /**< /v1/block and /v1/have: what each job holds (swarm/serve.c, api.c) */
};

/* inode.c */
node_t *fs__node_new(fs_t *fs, node_t *parent, const char *name, node_kind_t kind, job_t *job);
node_t *fs__node_get(fs_t *fs, fuse_ino_t ino);
node_t *fs__node_child(node_t *dir, const char *name);
void fs__node_detach(fs_t *fs, node_t *n);
void fs__node_rename(node_t *n, node_t *newparent, const char *newname);
void fs__node_forget(fs_t *fs, node_t *n, uint64_t nlookup);
void fs__nodes_free(fs_t *fs);
/** Real path behind an N_STAGE or N_RES node (xmalloc'd). */
char *fs__node_backing(fs_t *fs, const node_t *n);
/** The path of n relative to its job's root ("" for the root itself; xmalloc'd). */
char *fs__node_relpath(const node_t *n);

/* jobs.c */
job_t *fs__job_find(fs_t *fs, const char *name);
/** A published job (local or remote) by its hex id, or NULL. */
job_t *fs__job_by_id(fs_t *fs, const char *id);
job_t *fs__job_new_staging(fs_t *fs, const char *name);
void fs__job_touch(job_t *j);
void fs__job_file_opened(job_t *j);
void fs__job_file_closed(job_t *j);
void fs__job_renamed(job_t *j, const char *newname);
/** The kernel removed something in a published job (rm -r): cancels it. */
void fs__job_cancel(job_t *j, const char *why);
void fs__job_unlink_dir(job_t *j);
void fs__job_ref(job_t *j);
void fs__job_unref(job_t *j);
bool fs__job_over(const job_t *j);
/** Removes the trees a and b (taken; b may be NULL) in the thread pool. */
void fs__rm_later(fs_t *fs, char *a, char *b);
/** Answers everyone waiting on wait/<name> (the job is over). */
void fs__job_wake(job_t *j);
char *fs__job_status_text(job_t *j, size_t *len);
char *fs__peer_status_text(fs_t *fs, size_t *len);
int fs__jobs_restore(fs_t *fs);
void fs__jobs_kick(fs_t *fs);
void fs__jobs_free(fs_t *fs);
void fs__wait_park(job_t *j, fuse_req_t req, size_t size, off_t off, struct wait_fh *fh);
const char *fs__job_state_name(job_state_t s);
uint64_t fs__now_ms(void);

/* api.c */
int fs__api_start(fs_t *fs);
void fs__api_stop(fs_t *fs);
/** Registers j's blocks with fs->serve: its inputs if published here, else its blocks in the store. */
void fs__blocks_add_job(fs_t *fs, job_t *j);
/** Forgets j's registrations (inputs, results); NULL: registers every local job again (a result was replaced). */
void fs__blocks_remove_job(fs_t *fs, job_t *j);
/** Registers a hashed result of j (re-hashed when served: it may change). */
void fs__blocks_add_result(fs_t *fs, job_t *j, taskres_t *tr);
/** A JSON error answer {"error": msg}. */
void fs__api_error(httpd_req_t *r, unsigned status, const char *msg);

/* results.c */
/** Submitter: a task's result is recorded (its directory complete): hash it for the pool. */
void fs__res_recorded(job_t *j, uint32_t task, bool ok, int exit_code);
/** Answers /v1/results/...; false if path is not one of its requests. */
bool fs__res_handle(fs_t *fs, httpd_req_t *r, const char *path);
/** Remote job j as its submitter lists it in /v1/jobs (entry o, a JSON object): mirror it. */
void fs__res_remote_seen(job_t *j, json_t *o, const char *peer);
void fs__res_free(job_t *j);
/** This peer's start time in ms: the epoch its results lists' order belongs to. */
uint64_t fs__epoch_ms(const fs_t *fs);
/** The manifest file behind an N_PUB_FILE or N_RRES_FILE node, and its block size. */
const manifest_file_t *fs__node_mfile(const node_t *n, uint32_t *block_size);

/* remote.c */
/** Adds a pool peer (a base URL); true if it was new (it is then greeted: fs__vol_new_peer). */
bool fs__pool_add_peer(fs_t *fs, const char *url);
/** Pool peers whose base URL is on host ip (a dotted quad), to bound what one host may add. */
size_t fs__pool_peers_on_host(fs_t *fs, const char *ip);
/**
 * Fetches job id's manifest from peer unless the job is known or its manifest is being fetched;
 * checks SHA-256(bytes) == id, decodes it and adds the job (fs__job_add_remote), then asks for work.
 * origin: peer is the job's submitter (it offered the job), so leases go to it.
 */
void fs__remote_get_manifest(fs_t *fs, const char *peer, const char *id, bool origin);
/** Notes that peer lists remote job j; origin: it is the submitter, put it first (leases go there). */
void fs__job_add_peer(job_t *j, const char *peer, bool origin);
void fs__discover_start(fs_t *fs);
void fs__discover_stop(fs_t *fs);
void fs__remote_read(fuse_req_t req, fs_t *fs, node_t *n, size_t size, off_t off);
/** Answers every parked read with EINTR (before the FUSE session goes away). */
void fs__remote_reads_abort(fs_t *fs);
/* jobs.c, for remote.c: takes m's contents */
void fs__job_add_remote(fs_t *fs, const char *id, manifest_t *m, const char *peer);
/** Its submitter stopped listing remote job j: it leaves jobs/ and results/ here. */
void fs__job_forget_remote(job_t *j);

/* jobs.c, for volunteer.c */
running_t *fs__start_task(fs_t *fs, job_t *j, uint32_t task, bool remote);
/** Submitter: task is handed out now (started here, or leased to a volunteer): its dispatch clock. */
void fs__task_dispatched(job_t *j, uint32_t task);
/** Settles the job's state once no task waits or runs (after tasks were lost or failed outside finish). */
void fs__job_check_over(job_t *j);
/**
 * Hands worker's report on a task to the coordination core: true if accepted (the caller keeps the
 * result and then calls fs__task_finished), false if late, a duplicate or outvoted (logged; the
 * caller keeps nothing).
 */
bool fs__task_report(job_t *j, uint32_t task, const char *worker, const char *result_id, bool ok);
/** Bookkeeping of a task the core has decided: the database row, the clocks, the waiters. */
void fs__task_finished(job_t *j, uint32_t task, bool ok, int exit_code, uint64_t elapsed_ms, const char *reason);

/* volunteer.c */
void fs__vol_kick(fs_t *fs);
void fs__vol_tick(fs_t *fs);
/** Submitter: tells peer (NULL: every pool peer) that job j has waiting tasks, if it has. */
void fs__vol_offer(fs_t *fs, job_t *j, const char *peer);
/** A new pool peer: offers it the jobs with waiting tasks, or just greets it (so it learns of us). */
void fs__vol_new_peer(fs_t *fs, const char *url);
void fs__vol_task_done(fs_t *fs, job_t *j, uint32_t task, int exit_code, uint64_t elapsed_ms, const char *reason);
bool fs__vol_handle(fs_t *fs, httpd_req_t *r, const char *path);
/**
 * Whether this peer meets j's requirements (os, arch, network, the machine's memory, free disk in
 * the data directory): true, or false with why filled. For our own slots and as a volunteer alike.
 */
bool fs__job_fits(fs_t *fs, const job_t *j, char *why, size_t whylen);
/** Submitter, a coord_cancel_job callback: tells the volunteer that held the lease to stop the task. */
void fs__vol_cancel_lease(void *fs, const char *job_id, uint32_t task, const char *worker);
/** A pool peer is gone (dropped as silent): the leases it held go back to waiting at once. */
void fs__vol_peer_dropped(fs_t *fs, const char *url);
/** The submitter has this result (it is in its list): drop the copy kept for it. */
void fs__vol_result_taken(fs_t *fs, job_t *j, uint32_t task);
void fs__vol_start(fs_t *fs);
void fs__vol_stop(fs_t *fs);

/* ops.c */
extern const struct fuse_lowlevel_ops fs__ops;
struct wait_fh {
    char *text; /**< NULL until the job is over */
    size_t len;
};
void fs__wait_reply(waiter_t *w, const char *text, size_t len);

/* fs.c: a uv_close callback for handles allocated alone */
void fs__handle_free(uv_handle_t *h);


#endif
