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
#include "fs/fs.h"
#include "pool/pool.h"

typedef pool_job_t job_t;
typedef pool_res_t taskres_t;
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
    N_LIVE_DIR,  /**< results/<name>/<task> of a task running now (live.c): its stdout and stderr so far */
    N_LIVE_FILE, /**< its stdout (file 0) or stderr (file 1), read-only pass-through to the live file */
} node_kind_t;

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
    struct fs_live *live; /**< N_LIVE_*: which run of which task (live.c); these nodes hold their job */
    bool detached;
};

/** What a N_LIVE_DIR or N_LIVE_FILE node shows (live.c). */
typedef struct fs_live {
    uint32_t task;
    uint64_t run;   /**< the run it shows (pool_live_t.run) */
    int fd;         /**< N_LIVE_FILE open: a copy of its readers' fd (its attributes once its files are gone), or -1 */
    unsigned opens; /**< N_LIVE_FILE: handles open on it */
} fs_live_t;

typedef struct waiter {
    fuse_req_t req;
    size_t size;
    off_t off;
    struct wait_fh *fh;
    job_t *job;
    struct waiter *next;
} waiter_t;

/** A change to a job being copied in that the mount refused or that failed: the copy reported an
 *  error, so the job is not published until it is fixed (view.c, docs/usage.md). */
typedef struct fs_wopen {
    char *path;  /**< relative to the job's root */
    unsigned n;  /**< handles open for writing on it */
} fs_wopen_t;

typedef struct fs_copy_err {
    char *path; /**< relative to the job's root: fixing or removing it (or a directory above) clears it */
    char *why;  /**< "symlink data/x -> ../y: ...", "write data/big: No space left on device" */
} fs_copy_err_t;

/** The file in a staged job's directory that lists its copy errors (JSON; a dot-file, so never
 *  published): it keeps them across a restart, and removing it waives them. */
#define FS_COPY_ERR_FILE ".preon-copy-errors"
/** The file in a staged job's directory that lists its files open for writing (JSON, a dot-file):
 *  present only while one is. Found at the next start, it means the peer stopped or was killed while
 *  a program was writing them, so they may be cut short: each becomes a copy error (view.c). */
#define FS_WRITING_FILE ".preon-writing"
#define FS_MAX_COPY_ERRORS 64     /**< errors kept per job; more are only counted */
#define FS_MAX_COPY_ERR_WHY 512   /**< bytes of one error's text */
#define FS_MAX_COPY_ERR_FILE (1u << 20) /**< the largest FS_COPY_ERR_FILE read back */
#define FS_MAX_COPY_ERR_PATH 4096 /**< bytes of a path read back from FS_COPY_ERR_FILE */
#define FS_MAX_COPY_ERR_MORE (1u << 30) /**< errors counted past FS_MAX_COPY_ERRORS */

/** FS_COPY_ERR_FILE's text (JSON) for errs[0..n) and more counted (copyerr.c). xmalloc'd, or NULL. */
char *fs__cerr_format(const fs_copy_err_t *errs, size_t n, size_t more);
/** A JSON string of a file name (bytes): as it is, or with '?' for each byte of a name that is not
 *  UTF-8. NULL only if out of memory. */
json_t *fs__json_name(const char *s);
/** A path an entry of FS_COPY_ERR_FILE may name: relative to the job's root, parts neither empty
 *  nor "." nor "..", no control bytes, at most FS_MAX_COPY_ERR_PATH bytes. */
bool fs__cerr_path_ok(const char *p);
/**
 * Reads FS_COPY_ERR_FILE's text (untrusted: anyone with the data directory may have changed it):
 * calls add for each entry with a path that fs__cerr_path_ok and a reason (borrowed for the call),
 * sets *more (at most FS_MAX_COPY_ERR_MORE). Returns how many entries are bad, counting a text
 * that is not such a list (or over FS_MAX_COPY_ERR_FILE bytes) as one. Pure.
 */
size_t fs__cerr_parse(const char *text, size_t len, void (*add)(void *arg, const char *path, const char *why),
                      void *arg, size_t *more);

/** The view of one job (pool_job_t.view): its nodes, the readers waiting on wait/<name>, and
 * while it is being copied in, the quiet timer that publishes it. */
typedef struct jview {
    fs_t *fs;
    node_t *dir;           /**< jobs/<name>, NULL once removed from jobs/ */
    node_t *results;       /**< results/<name>, once published */
    node_t *status, *wait; /**< status/<name>, wait/<name> */
    waiter_t *waiters;
    unsigned open_files;   /**< file handles open for writing in the staging tree */
    uv_timer_t *quiet;     /**< publishes when it fires with open_files == 0 */
    bool publish_now;      /**< renamed from a dot-name: publish without a quiet period */
    fs_copy_err_t *cerr;   /**< the copy's errors: while there is one, the job is rejected, not published */
    size_t ncerr;
    size_t cerr_more;      /**< errors past FS_MAX_COPY_ERRORS: cleared only by waiving them all */
    struct fs_wopen *wopen; /**< the paths open for writing (as FS_WRITING_FILE lists them) */
    size_t nwopen;
} jview_t;

static inline jview_t *V(const job_t *j) { return (jview_t *)j->view; }

/** How far read-ahead of a remote file has been asked for (remote.c), per recent reader. */
typedef struct fs_ra_mark {
    fuse_ino_t ino; /**< the file's node (inode numbers are never reused); 0: unused */
    size_t next;    /**< first block not asked for yet */
    size_t last;    /**< last block of the previous read */
    size_t window;  /**< blocks read ahead: grows while the reader goes on sequentially */
} fs_ra_mark_t;
#define FS_RA_STREAMS 8

struct fs {
    uv_loop_t *loop;
    fs_opts_t opts;
    char *mountpoint, *data_dir;
    pool_t *pool;           /**< the coordination below the view */
    struct fuse_session *se;
    uv_poll_t *poll;
    struct fs_mwatch *mwatch; /**< POLLPRI on /proc/self/mountinfo: our mount leaving it (fs.c) */
    unsigned mount_id;        /**< our mount's ID in /proc/self/mountinfo (0: not known) */
    bool mount_gone;          /**< our mount left /proc/self/mountinfo (the session may live on) */
    struct fuse_buf buf;
    bool mounted, stopping;
    bool draining; /* fs_stop: the pool gives its tasks notice first (pool_drain) */
    void (*on_exit)(void *, int);
    void *exit_arg;
    node_t **nodes; /**< by inode number; NULL where freed */
    size_t nnodes, capnodes;
    node_t *root, *jobs, *results, *statusdir, *waitdir, *peer;
    uid_t uid;
    gid_t gid;
    struct timespec started; /**< times of the fixed nodes */
    struct rread *rreads;     /**< reads parked on fetches (read.c) */
    uv_timer_t *read_timer;   /**< answers parked reads past their deadline (read.c) */
    unsigned pending_replies; /**< read answers being written in the thread pool (read.c), and
                               *   mkdirs in jobs/ waiting for their staged job (view.c) */
    fs_ra_mark_t ra[FS_RA_STREAMS]; /**< read-ahead marks, a ring (read.c) */
    unsigned ra_next;
};

/* inode.c */
node_t *fs__node_new(fs_t *fs, node_t *parent, const char *name, node_kind_t kind, job_t *job);
node_t *fs__node_get(fs_t *fs, fuse_ino_t ino);
/** As fs__node_get, but NULL for a node removed from the tree that belonged to a job (the job may
 * be freed: an operation that reads n->job takes this one). */
node_t *fs__node_live(fs_t *fs, fuse_ino_t ino);
node_t *fs__node_child(node_t *dir, const char *name);
void fs__node_detach(fs_t *fs, node_t *n);
void fs__node_rename(node_t *n, node_t *newparent, const char *newname);
void fs__node_forget(fs_t *fs, node_t *n, uint64_t nlookup);
void fs__nodes_free(fs_t *fs);
/** Real path behind an N_STAGE or N_RES node (xmalloc'd). */
char *fs__node_backing(fs_t *fs, const node_t *n);
/** The path of n relative to its job's root ("" for the root itself; xmalloc'd). */
char *fs__node_relpath(const node_t *n);
/** The manifest file behind an N_PUB_FILE or N_RRES_FILE node, and its block size. */
const manifest_file_t *fs__node_mfile(const node_t *n, uint32_t *block_size);

/* view.c: the pool's callbacks and what the kernel does to jobs/ */
/** The pool's callbacks (their arg: the fs_t). */
extern const pool_view_t fs__view;
/** The job of name in jobs/ (or being copied in), or NULL. */
job_t *fs__job_find(fs_t *fs, const char *name);
/**
 * A job directory is being made in jobs/ (mkdir): asks the pool for a staged job (its directory is
 * made in the thread pool). cb fires later, from the loop, with the job and its N_STAGE node
 * (V(j)->dir) and status 0, or NULL and -errno (-EIO: the view is stopping). Counted in
 * pending_replies meanwhile, so the session outlives cb's reply. 0, or pool_job_stage's error (cb
 * not called).
 */
int fs__job_new_staging(fs_t *fs, const char *name, pool_stage_cb cb, void *arg);
void fs__job_touch(job_t *j);
void fs__job_file_opened(job_t *j);
void fs__job_file_closed(job_t *j);
/** path (relative to the job's root) of a staged job is opened for writing: listed in the job's
 *  FS_WRITING_FILE until fs__job_write_ended, once the last write to it is done. */
void fs__job_write_started(job_t *j, const char *path);
void fs__job_write_ended(job_t *j, const char *path);
void fs__job_renamed(job_t *j, const char *newname);
void fs__job_unlink_dir(job_t *j);
/** The copy into a staged job reported an error at path (relative to the job's root): remembered
 *  (in the job's FS_COPY_ERR_FILE too) and the job touched; it is rejected with why, not published,
 *  until the error is cleared. */
void fs__copy_failed(job_t *j, const char *path, const char *why);
/** path (relative to the job's root; "" the whole job) was made anew, truncated or removed: errors
 *  at it or below it are cleared. */
void fs__copy_fixed(job_t *j, const char *path);
/** path (a file) was removed: as fs__copy_fixed, but for rsync's temporary file (".NAME.XXXXXX"),
 *  removed by rsync when its write failed, whose errors move to NAME: the file it was for is missing. */
void fs__copy_removed(job_t *j, const char *path);
/** Whether an error stands at path or below it. */
bool fs__copy_erred(const job_t *j, const char *path);
/** path was renamed to newpath within its job: its errors (and those below it) move with it. */
void fs__copy_moved(job_t *j, const char *path, const char *newpath);
/** The user removed FS_COPY_ERR_FILE: every error is waived, the job publishes without them. */
void fs__copy_waived(job_t *j);
/** Answers everyone waiting on wait/<name> (the job is over). */
void fs__job_wake(job_t *j);
void fs__wait_park(job_t *j, fuse_req_t req, size_t size, off_t off, struct wait_fh *fh);
/** Answers a read of [off, off+size) of text (len bytes). */
void fs__reply_slice(fuse_req_t req, const char *text, size_t len, size_t size, off_t off);
/** Answers every parked reader with EINTR and lets go of every job's view (before unmounting). */
void fs__views_free(fs_t *fs);

/* read.c */
void fs__remote_read(fuse_req_t req, fs_t *fs, node_t *n, size_t size, off_t off);
/** Answers every parked read with EINTR (before the FUSE session goes away). */
void fs__remote_reads_abort(fs_t *fs);

/* mirror.c */
/** A mirrored result of a remote job: its nodes under results/<name>/<task>/. */
void fs__mirror_add(fs_t *fs, job_t *j, taskres_t *tr);

/* live.c: a running task's output as nodes (docs/usage.md, "Live output") */
/**
 * The node of name (a task's number) under p, j's node in results/, if that task has live output
 * here: found if it shows this run already, else made (a node of that name left by another run
 * is detached first: two runs never mix). NULL if it has none (a live node left is detached).
 */
node_t *fs__live_dir(fs_t *fs, node_t *p, job_t *j, const char *name);
/** The stdout or stderr node (name) under a N_LIVE_DIR d, found or made; NULL for another name. */
node_t *fs__live_file(fs_t *fs, node_t *d, const char *name);
/**
 * The file behind a N_LIVE_FILE: while its run has live output here, the live file; else (or if
 * that is gone) the result's file (the live file itself, moved there, for a task run here).
 * fs__live_stat: while a reader holds it open, the attributes of the file the readers read (what
 * a read returns, even once that file is gone: a volunteer's copy of the result, a copy of a
 * volunteer's output); otherwise of the file above. 0 or -errno (ENOENT: neither exists, as before
 * the task's files are made). fs__live_open: an fd open for reading, or -errno.
 */
int fs__live_stat(fs_t *fs, const node_t *n, struct stat *st);
int fs__live_open(fs_t *fs, node_t *n);
/** A handle open on a N_LIVE_FILE (fs__live_open) is released. */
void fs__live_closed(node_t *n);
/** Calls add(arg, name) for each of j's tasks with live output here that its results node r
 *  does not list otherwise (no result directory on disk for it, no mirrored result node). */
void fs__live_list(fs_t *fs, job_t *j, const node_t *r, void (*add)(void *arg, const char *name), void *arg);

/* ops.c */
extern const struct fuse_lowlevel_ops fs__ops;
struct wait_fh {
    char *text; /**< NULL until the job is over */
    size_t len;
};

/* client.c: helpers of the client commands (preon wait, status, submit) */
/** Reads the whole file at path into *out (malloc'd, NUL-terminated; set, maybe partial, even on a read
 *  error, not if it cannot be opened: start it NULL and free it). 0 or -errno (the read's own). */
int fs__client_read(const char *path, char **out);
/** name for a terminal (xmalloc'd): control bytes as '?'; *cols its width in columns (UTF-8 aware). */
char *fs__printable(const char *name, size_t *cols);

/* progress.c: the pure half of the client commands (client.c, submit.c) */
/** A job's status file, read: what the client commands show. */
typedef struct fs_jstat {
    char name[256], id[65], state[16];
    uint32_t tasks, waiting, running, succeeded, failed, cancelled;
    uint64_t bytes;          /**< bytes-served + bytes-fetched: what the job moved */
    char reason[512];        /**< its first failure, or why it was rejected ("" if none) */
    char why_waiting[1024];  /**< "" if none */
} fs_jstat_t;
/** Reads the lines of a status text it knows (others are ignored; a missing one is 0 or ""); control
 *  bytes in its values become '?'. */
void fs__jstat_parse(const char *text, fs_jstat_t *out);
/** done, failed, cancelled or rejected: nothing more will happen to it. */
bool fs__jstat_over(const fs_jstat_t *s);
/** "0:07", "12:34", "1:02:03"; returns buf. */
char *fs__duration(uint64_t ms, char *buf, size_t cap);
/** The time left at the rate so far (elapsed for finished of total tasks), UINT64_MAX if not known
 *  (none finished yet) or none left. */
uint64_t fs__eta_ms(uint64_t elapsed_ms, uint32_t finished, uint32_t total);
/**
 * The progress of job name (printable already) after elapsed_ms: with width (a terminal's columns,
 * at least 10) the one-line bar, cut to width columns; with width 0 a plain line for a log. Into buf
 * (cap bytes, NUL-terminated); returns its length.
 */
size_t fs__progress_line(const char *name, const fs_jstat_t *s, uint64_t elapsed_ms, unsigned width, char *buf,
                         size_t cap);
/**
 * A status text ("key: value" lines: status/<job> or peer) as a JSON object: a value of 1..18
 * digits is a number (except in keys that are text: name, id, key, command, reason...), a key that
 * may be on several lines (failed-task, leased-task, task-votes...) or is, is an array of them in
 * order, anything else a string. Never NULL (an empty object for no lines).
 */
json_t *fs__status_json(const char *text);

/* fs.c: a uv_close callback for handles allocated alone */
void fs__handle_free(uv_handle_t *h);


#endif
