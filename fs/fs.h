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
#include "pool/pool.h"

typedef struct fs fs_t;

typedef struct fs_opts {
    const char *mountpoint;    /**< absolute path of an existing directory */
    uint64_t quiet_ms;         /**< a copied job is published after this long with no file open */
    uint64_t read_deadline_ms; /**< a parked read of another peer's file fails (EIO) after this (0 = 120 s) */
    const char *mount_flags;   /**< FUSE mount flags asked for ("ro"), or NULL */
    pool_opts_t pool;          /**< the pool below the view (pool/pool.h): fs_new sets its jobs_dir and
                                    mountpoint; data_dir is the view's too */
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
/** `preon status [--mount DIR] [--json] [JOB]`: the peer file and a line per job, or one job's
 * status; as JSON with --json. 0, or 2 (usage, no such job, no mount). */
int fs_client_status(int argc, char **argv);
/** `preon submit [--mount DIR] [--name NAME] [--wait] SRC` (fs/submit.c): publishes SRC as a job, prints
 * its id; with --wait follows it until it is over. 0 if published (with --wait: if every task
 * succeeded), 1 if not (the reason on stderr), 2 on a usage error. argv[0] is "submit". */
int fs_client_submit(int argc, char **argv);

/** Unmounts, kills running tasks (they will run again after a restart) and closes; on_exit follows. */
void fs_stop(fs_t *fs);
/**
 * Whether something is mounted at mnt (an absolute, resolved path) and answers: a live mount (a
 * peer running there, or any other filesystem). A dead FUSE mount (ENOTCONN: its peer crashed)
 * is not live: fs_new clears it.
 */
bool fs_mounted_live(const char *mnt);

#endif
