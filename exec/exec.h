/**
 * @file exec.h  Runs tasks in bubblewrap sandboxes, on the loop, fail closed.
 *
 * A sandbox is: posix_spawn -> `preon limit --keeper` (joins the sandbox's cgroup, whose memory and
 * pids limits hold for the whole task (exec/cgroup.c); stays root in a private mount namespace, the
 * keeper) -> bwrap as the slot's unprivileged uid with rlimits nproc, fsize = disk, core = 0,
 * msgqueue = 0 (new namespaces incl. net unless network, --cap-drop ALL, --die-with-parent,
 * read-only /usr etc., job inputs read-only at /job) -> the agent, its pid 1 (exec/keeper.c). Each
 * task is sent to it: the keeper mounts its /task (the job's files with the task directory as a
 * writable overlay on top), /tmp and /dev/shm, the agent runs /bin/sh -c command there and ends every
 * process of it afterwards. A sandbox whose task ended by itself runs the next task of the same job
 * and limits on the same slot (a warm sandbox: no bwrap start) or ends after EXEC_WARM_IDLE_MS.
 * A time-out, a cancel or out of memory ends the whole sandbox (SIGKILL to the keeper, whose death
 * takes the rest). If any step cannot be set up the task is not run: its callback reports the
 * reason. What a task sees and how the limits are enforced: docs/sandbox.md.
 */
#ifndef PREON_EXEC_EXEC_H
#define PREON_EXEC_EXEC_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#ifndef EXEC_DEFAULT_GRACE_MS
#define EXEC_DEFAULT_GRACE_MS 5000 /* from SIGTERM to SIGKILL when a task is stopped with notice */
#endif
#ifndef EXEC_MAX_REASON
#define EXEC_MAX_REASON 512
#endif
#ifndef EXEC_WARM_IDLE_MS
#define EXEC_WARM_IDLE_MS 2000 /* a sandbox with no task waits this long for the next of its job */
#endif

typedef struct exec exec_t;
typedef struct exec_task exec_task_t;

typedef struct exec_opts {
    const char *bwrap;   /**< path of bwrap (default "/usr/bin/bwrap") */
    const char *limiter; /**< argv[0] of the rlimit wrapper: the preon binary itself (it runs `preon limit`) */
    uid_t uid_base;      /**< slot k runs as uid_base + k, gid_base + k (0 means the default, 64000) */
    gid_t gid_base;
    unsigned slots;
    bool allow_network;  /**< volunteer allows jobs that ask for network */
    uint64_t memory_total; /**< memory all tasks may use together (bytes; 0: only each task's own limit) */
    unsigned cpu_permille; /**< share of the machine's CPUs the tasks may use together, x 1000 (0: all) */
    bool suspend;          /**< tasks will be suspended (--when idle): the cgroup freezer is required */
    /** the directory every run's directory (exec_spec_t.run_dir) is made in: exec_new mounts a btrfs
     *  with quotas there (on a sparse image of work_size bytes beside it), so that each run's disk
     *  is bounded in all (docs/sandbox.md); if that cannot be done, every task with a run_dir is
     *  refused with the reason, unless no_disk_quota. NULL: no run directories. */
    const char *work_dir;
    uint64_t work_size;
    bool no_disk_quota; /**< the volunteer's choice: each file bounded by the job's disk, not the total */
} exec_opts_t;

/** One entry of a job's tree, for exec_spec_t.skeleton. */
typedef struct exec_entry {
    const char *path; /**< relative, '/'-separated; parents before children */
    uint64_t size;    /**< files */
    uint32_t mode;    /**< permission bits */
    bool dir;
} exec_entry_t;

typedef struct exec_spec {
    const char *job_dir;  /**< host path bound read-only at /job (the job inside our own mount) */
    /** host path, new for this run (made if missing; its parent must exist; never a directory an
     *  earlier task wrote: root builds the skeleton in it): the upper layer of /task (cwd and HOME), which shows the job's files
     *  with this directory on top. Afterwards it holds what the task created or changed (its
     *  outputs), plus the unchanged inputs' metacopy entries: see exec_is_unchanged_input. */
    const char *task_dir;
    /** optional: host path, new for this run, directly in opts.work_dir, that task_dir, scratch_dir,
     *  stdout_path and stderr_path lie in: made (in the thread pool) with a quota of disk_bytes on all
     *  it holds, where the peer has quotas. The caller removes it once the callback has fired. */
    const char *run_dir;
    /** host path, empty (made if missing), on the same filesystem as task_dir: overlayfs's own work
     *  directory. The caller removes it (and task_dir) once the callback has fired. */
    const char *scratch_dir;
    /** optional: the job's tree (as its manifest lists it). Given, the skeleton of /task's upper
     *  layer (docs/sandbox.md) is made from it in the thread pool; NULL: the limiter walks
     *  job_dir. Borrowed for the call only. */
    const exec_entry_t *skeleton;
    size_t n_skeleton;
    /** optional: a host directory (the peer's own, not the task's) whose files are copied into
     *  /task/checkpoint/ before the task starts, given to the task's uid: the checkpoint it resumes
     *  from (docs/job-format.md, "Checkpoints"). Regular files and directories only; NULL: none.
     *  If the copy fails (logged), the task starts without it: from the beginning. */
    const char *checkpoint_dir;
    const char *command;  /**< run by /bin/sh -c */
    const char *stdout_path; /**< host files the task's stdout/stderr go to (created, truncated) */
    const char *stderr_path;
    const char *job_id;   /**< hex */
    const char *job_name;
    uint32_t task_index, task_count;
    uint64_t timeout_ms, memory_bytes, disk_bytes;
    /** a stop with notice (the time-out, exec_task_stop): SIGTERM, then SIGKILL this long after
     *  (0: EXEC_DEFAULT_GRACE_MS) */
    uint64_t grace_ms;
    uint32_t processes;
    bool network;
    unsigned slot;        /**< 0..slots-1, picks the uid */
} exec_spec_t;

typedef struct exec_result {
    int exit_code;        /**< exit status, or 128 + signal; -1 if it never ran */
    int term_signal;      /**< 0 if it exited */
    bool timed_out;
    bool cancelled;
    bool refused;         /**< the sandbox could not be built: the task never ran */
    /** Refused because this peer's own disk failed under it (-ENOSPC, -EDQUOT, -EROFS, -EIO: the data
     *  directory filled, or the task directories' filesystem failed: exec_work_failed): no fault of
     *  the task's, which runs again once there is room. 0 otherwise. */
    int disk_errno;
    uint64_t elapsed_ms;
    /** The limit that stopped the task: "memory", "processes", "time", "disk", or "" (none did). */
    char limit[12];
    uint64_t memory_peak;   /**< the task's highest memory use in all (its cgroup's), bytes; 0 unknown */
    uint64_t forks_refused; /**< forks its processes limit refused */
    uint64_t disk_used;     /**< what its run directory held at its end (its quota's count), bytes; 0 unknown */
    char reason[EXEC_MAX_REASON]; /**< human-readable, empty on success */
    bool warm;            /**< it ran in a sandbox that had run a task of its job before */
} exec_result_t;

/** Called once per task, never from inside exec_task_spawn. r is valid during the call only. */
typedef void (*exec_done_cb)(exec_task_t *t, const exec_result_t *r, void *arg);

/**
 * 0 or -errno (-EINVAL: no absolute limiter, 0 slots, slot ids that wrap; -ENOTSUP: memory_total or
 * cpu_permille cannot be enforced, logged). Blocking: makes the peer's cgroups (exec/cgroup.c); a
 * machine without the memory or pids controller still gets an exec_t, whose every task is then
 * refused with the reason. The loop is borrowed and must outlive the exec_t. opts is copied. Makes the whole process a child subreaper
 * (PR_SET_CHILD_SUBREAPER), so that each sandbox's pid 1 can be reaped: see docs/sandbox.md.
 */
int exec_new(uv_loop_t *loop, const exec_opts_t *opts, exec_t **out);
/**
 * Blocking: whether this machine can enforce opts' memory_total and cpu_permille, and each task's
 * memory and process limits for the whole task (cgroups: docs/sandbox.md). 0, or -errno with why
 * filled. For a command line to say so before it starts a peer; exec_new checks it again.
 */
int exec_check_cgroups(const exec_opts_t *opts, char *why, size_t whylen);
/**
 * Kills running tasks (their callbacks fire with cancelled), then frees once all are reaped; cb may
 * be NULL. With nothing in flight it frees at once and calls cb before returning. Safe to call from
 * a task's callback. No exec_task_spawn after it (-ECANCELED).
 */
void exec_close(exec_t *e, void (*cb)(void *arg), void *arg);

/**
 * Starts a task. 0 (cb will fire exactly once, later) or -errno (cb will not fire): -EINVAL if e,
 * spec or cb is NULL, -ECANCELED after exec_close. Everything else is still 0 and the callback
 * reports refused with the reason (fail closed): a spec out of range (e.g. memory below 16 MiB), a
 * job asking for network on a peer that does not allow it, a missing directory or bwrap, a spawn
 * that fails, a sandbox bwrap could not build. spec is borrowed for the call only.
 * The callback fires once nothing of the task is left running and /task is no longer written (its
 * processes are reaped and its mounts gone; or, if its sandbox ended, all of the sandbox is reaped).
 * A task on a slot whose sandbox is busy is refused (one task per slot at a time).
 * *out (may be NULL) stays valid until the callback returns.
 */
int exec_task_spawn(exec_t *e, const exec_spec_t *spec, exec_done_cb cb, void *arg, exec_task_t **out);
/**
 * Whether slot's sandbox is idle and warm for job_id: a task of that job (with the same limits)
 * started there now skips the sandbox's start. For the caller's choice of a slot.
 */
bool exec_slot_warm(const exec_t *e, unsigned slot, const char *job_id);
/** The job will run no more tasks here (it is over, or gone): its idle sandboxes end now. */
void exec_forget_job(exec_t *e, const char *job_id);
/** Whether slot has no sandbox at all (a task there starts one without ending another's first). */
bool exec_slot_empty(const exec_t *e, unsigned slot);
/** Why each task's disk cannot be bounded in all here (NULL: it is, or no run directories, or the
 *  volunteer chose not: no_disk_quota). For the peer's status. */
const char *exec_disk_quota_missing(const exec_t *e);
/**
 * Whether the task directories' filesystem (the quota btrfs, exec/quota.c) has failed: a task could
 * not make its directory there (read-only: the btrfs aborted writes its image's disk could not take,
 * the data directory having filled up), or it is being made anew. Every task with a run directory is
 * refused meanwhile. *why (may be NULL) says what, valid until the next call into e.
 */
bool exec_work_failed(const exec_t *e, const char **why);
/**
 * Makes the failed filesystem anew (a fresh sparse image and btrfs, as at the start), in the thread
 * pool: once no task is left (idle sandboxes end first). cb (may be NULL) on the loop with 0, or
 * -errno and why (still failed: the disk may be full still; call again later). 0 (started),
 * -EBUSY (a task is there, or it is under way) or -EINVAL (nothing failed).
 */
int exec_work_renew(exec_t *e, void (*cb)(void *arg, int rc, const char *why), void *arg);
/** Tasks started in a warm sandbox, and sandboxes started, since exec_new; sandboxes there now. */
void exec_counts(const exec_t *e, uint64_t *warm, uint64_t *cold, unsigned *live);
/** The directory of /task whose contents are the task's checkpoint (docs/job-format.md). */
#define EXEC_CHECKPOINT_DIR "checkpoint"

/** The xattr that marks an entry of a task directory as an input the task did not change. */
#define EXEC_METACOPY_XATTR "trusted.overlay.metacopy"
/**
 * After the task: whether the entry name in dirfd (a task directory or one of its subdirectories) is
 * an unchanged input, i.e. not one of the task's outputs. Blocking (one open and one xattr read):
 * for the thread pool. Needs root (trusted xattrs).
 */
bool exec_is_unchanged_input(int dirfd, const char *name);

/** Kills the task's sandbox; its callback then fires with cancelled = true. */
void exec_task_cancel(exec_task_t *t);
/**
 * Stops the task with notice: SIGTERM to its processes, SIGKILL of the whole sandbox after its
 * grace_ms (at once if it has not started); its callback then fires with cancelled = true.
 */
void exec_task_stop(exec_task_t *t);
/**
 * Suspends the task: every process of it is frozen at once (its cgroup's freezer: v1 freezer.state,
 * v2 cgroup.freeze) and its time-out stops counting; one not started yet starts only once resumed.
 * Its time frozen is not part of its elapsed_ms. A cancel or a limit still ends it. 0 (also if it
 * was suspended already) or -errno (-ENOTSUP: no freezer; -EINVAL: over).
 */
int exec_task_suspend(exec_task_t *t);
/** Undoes exec_task_suspend: thawed, the time-out goes on with what was left. 0 or -errno. */
int exec_task_resume(exec_task_t *t);
bool exec_task_suspended(const exec_task_t *t);
/**
 * The cgroup file that counts the CPU time all tasks of e have used (xmalloc'd): v1
 * `.../cpuacct.usage` (ns), v2 `.../cpu.stat` (its usage_usec); NULL if this machine cannot tell.
 * Pure (a path made at exec_new); the reading is the caller's (exec/idle.h: idle_parse_cpu).
 */
char *exec_tasks_cpu_file(const exec_t *e);

/**
 * Pure: the argv (NULL-terminated, xmalloc'd; free with exec_argv_free) of the sandbox that
 * exec_task_spawn starts for spec: limiter "limit" --dir JOB job --keeper 5 <limits> -- bwrap
 * <sandbox> -- /proc/self/fd/7 limit --agent 8. 0 or -EINVAL (the spec is checked in full;
 * *argv_out is then NULL). --nproc is processes + 3: bwrap's monitor and the agent, and one more so
 * that the cgroup refuses first. --share-net appears only if spec->network && opts->allow_network.
 */
int exec_build_argv(const exec_opts_t *opts, const exec_spec_t *spec, char ***argv_out);
/** Pure: the environment (NULL-terminated) the task sees: PREON_TASK, PREON_TASKS, PREON_JOB, ... */
int exec_build_env(const exec_spec_t *spec, char ***env_out);
void exec_argv_free(char **argv);

/**
 * The `preon limit` entry point. argv[0] is "limit" (preon calls exec_limit_main(argc - 1, argv + 1)),
 * then "[--go-fd FD] [--cgroup DIR]... [--dir PATH NAME]... [--uid U --gid G] [--as N] [--nproc N]
 * [--fsize N] [--core N] [--nofile N] [--cpu N] [--msgqueue N] -- prog args...": each option at most
 * once, N plain decimal. Every option is checked before any limit is set; soft and hard limits are
 * both set (clamped to the current hard limit), then prog is execvp'd. Returns only on error: 127,
 * after a message on stderr. With --keeper FD (and --tmpfs-size N) it is a sandbox's keeper and
 * prog is bwrap (exec/keeper.c); "limit --agent FD" is a sandbox's agent.
 */
int exec_limit_main(int argc, char **argv);

#endif
