/**
 * @file fs.h  The peer's FUSE filesystem: jobs/, results/, status/, wait/ and peer, on one libuv loop.
 *
 * fs_new mounts the filesystem (FUSE low-level API; the session fd is watched by uv_poll), opens the
 * peer's data directory (block store, SQLite records), restores published jobs and their tasks, and
 * from then on publishes job directories copied into jobs/, runs their tasks in the sandbox and
 * fills results/. Everything happens on the loop given; blocking disk work goes to the thread pool.
 * The tree and its semantics are in docs/usage.md; the design in docs/architecture.md.
 */
#ifndef PREON_FS_FS_H
#define PREON_FS_FS_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "core/httpd.h"

typedef struct fs fs_t;

typedef struct fs_opts {
    const char *mountpoint;  /**< absolute path of an existing directory */
    const char *data_dir;    /**< absolute path; created if missing */
    const char *self_exe;    /**< absolute path of the preon binary (the sandbox's rlimit wrapper) */
    const char *bwrap;       /**< NULL = /usr/bin/bwrap */
    unsigned slots;          /**< concurrent tasks (>= 0; 0 runs nothing) */
    uint64_t quiet_ms;       /**< a copied job is published after this long with no file open */
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
    uint64_t read_deadline_ms; /**< a parked read of another peer's file fails (EIO) after this (0 = 120 s) */
    uint64_t discover_ms;     /**< how often pool peers are asked for their jobs (0 = 1 s); offers
                                   (docs/protocol.md) make a new job known at once, this is the fallback */
} fs_opts_t;

/**
 * Mounts and starts. 0 or -errno (a message has been logged). On success the filesystem is live
 * once the loop runs. on_exit is called once, from the loop, when the filesystem has been unmounted
 * (by fs_stop or from outside) and everything is closed; the fs_t is freed before it is called.
 */
int fs_new(uv_loop_t *loop, const fs_opts_t *opts, void (*on_exit)(void *arg, int status), void *arg,
           fs_t **out);
/** `preon wait [--mount DIR] JOB`: blocks on DIR/wait/JOB; 0 if the job is done, 1 if it failed,
 * was cancelled or rejected, 2 on a usage error or an unknown job. argv[0] is "wait". */
int fs_client_wait(int argc, char **argv);
/** `preon status [--mount DIR] [JOB]`: the peer file and a line per job, or one job's status. */
int fs_client_status(int argc, char **argv);

/** Unmounts, kills running tasks (they will run again after a restart) and closes; on_exit follows. */
void fs_stop(fs_t *fs);

#endif
