/**
 * @file internal.h  What exec/'s files share: the named limits on a task spec, the spec check used
 * by both the pure builders (sandbox.c) and the runner (exec.c), and the reader of bwrap's
 * --json-status-fd output. Not for use outside exec/ (tests excepted).
 */
#ifndef PREON_EXEC_INTERNAL_H
#define PREON_EXEC_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "exec/exec.h"

/* The task's memory cgroup also holds bwrap and /bin/sh, which need a few MiB of their own. */
#ifndef EXEC_MIN_MEMORY
#define EXEC_MIN_MEMORY (16ull << 20)
#endif
/* RLIMIT_NPROC counts every process (and thread) of the slot uid, and the sandbox itself has two:
 * bwrap's monitor outside it and the agent, its pid 1. They are added to the job's `processes`, so
 * that `processes = 1` means the command alone. The cgroup holds one more: the keeper (root). */
#define EXEC_NPROC_OVERHEAD 2u
#define EXEC_PIDS_OVERHEAD 3u
#ifndef EXEC_MAX_PROCESSES
#define EXEC_MAX_PROCESSES 4194304u /* the kernel's pid_max ceiling */
#endif
#ifndef EXEC_MAX_TIMEOUT_MS
#define EXEC_MAX_TIMEOUT_MS (30ull * 86400000) /* job files allow 7 d; this keeps ns arithmetic far from wrapping */
#endif
#ifndef EXEC_MAX_COMMAND
#define EXEC_MAX_COMMAND (64 * 1024) /* well under the kernel's 128 KiB per argv string */
#endif
#ifndef EXEC_MAX_PATH
#define EXEC_MAX_PATH 4095
#endif
#ifndef EXEC_MAX_JOB_NAME
#define EXEC_MAX_JOB_NAME 255
#endif
#ifndef EXEC_MAX_JOB_ID
#define EXEC_MAX_JOB_ID 128 /* hex digits */
#endif
#define EXEC_NOFILE 1024
/* The fd bwrap writes its JSON status to: the child's stdio[3]. */
#define EXEC_STATUS_FD 3
#define EXEC_GO_FD 4 /* the limiter waits for a byte on it before it starts (--go-fd) */
#define EXEC_CTL_FD 5 /* the keeper's socket to preon (--keeper 5) */
#define EXEC_AGENT_EXE_FD 7 /* in bwrap and the agent: the limiter's binary, run as /proc/self/fd/7 */
#define EXEC_AGENT_FD 8     /* the agent's socket to its keeper (--agent 8) */
/* Where the limiter, in its private mount namespace, puts the job and task directories for bwrap
 * (an empty directory the limiter creates; its tmpfs is seen by the limiter and bwrap only; see
 * limit.c). Not /tmp: a tmpfs there would hide a bwrap or inputs that live under /tmp. */
#define EXEC_STAGE_DIR "/run/preon-sandbox"
#define EXEC_STAGE_JOB EXEC_STAGE_DIR "/job"
/* The task's working directory: the overlay of the job (lower) and the task directory (upper). */
#define EXEC_STAGE_ROOT EXEC_STAGE_DIR "/root"
/* A task's /tmp and /dev/shm: a fresh tmpfs each, mounted by the keeper for each task. */
#define EXEC_STAGE_TMP EXEC_STAGE_DIR "/tmp"
#define EXEC_STAGE_SHM EXEC_STAGE_DIR "/shm"
/* Entries of a job's tree the limiter mirrors into a task's upper layer, at most. */
#ifndef EXEC_MAX_SKELETON
#define EXEC_MAX_SKELETON (1u << 20)
#endif
#ifndef EXEC_MAX_STATUS
#define EXEC_MAX_STATUS 8192 /* bytes of bwrap status read back; its two objects take ~300 */
#endif
#define EXEC_DEFAULT_BWRAP "/usr/bin/bwrap"
#define EXEC_DEFAULT_ID_BASE 64000

/**
 * Checks everything exec_build_argv, exec_build_env and exec_task_spawn rely on: absolute paths, a
 * command, a hex job id, task index below count, limits in range (memory at least EXEC_MIN_MEMORY),
 * slot below opts->slots, an absolute limiter. 0 or -EINVAL with why filled (a reason for the user).
 * Does not look at the network flag: that is policy, decided by exec_task_spawn.
 */
int exec__check_spec(const exec_opts_t *opts, const exec_spec_t *spec, char *why, size_t whylen);

/**
 * One entry of a task's skeleton (limit.c step 2): a directory (made if missing, then owned by
 * uid/gid if chown_it, mode | 0700), or a metacopy file of size bytes (mode | 0600), at rel (a
 * relative path; its parent must exist) under upper_fd. An entry already there is left as it is.
 * 0 or -errno. Blocking; runs as root (trusted xattr).
 */
int exec__mirror_entry(int upper_fd, const char *rel, bool dir, mode_t mode, uint64_t size, uid_t uid, gid_t gid,
                       bool chown_it);

/**
 * Reads what bwrap wrote to its --json-status-fd: a sequence of JSON objects, the first with
 * "child-pid" (written before the sandbox is set up), and, only if the sandbox was built and the
 * command exec'd, a last one with "exit-code". *child_pid gets the pid of the sandbox's pid 1 (0 if
 * absent). 0 with *exit_code set if the exit-code object is there; -ENOENT if not (the sandbox was
 * never built); -EBADMSG if the text is not such a sequence; -EMSGSIZE over EXEC_MAX_STATUS.
 */
int exec__parse_status(const char *buf, size_t len, int *exit_code, pid_t *child_pid);


/* ---- cgroup.c: whole-task limits (docs/sandbox.md) ---- */
/* memory, pids: every task (fail closed); cpu: --cpu; freezer: --when idle (suspends tasks); cpuacct:
 * what the tasks take of the CPU, so that --when idle can tell the load of other processes. In v2,
 * freezing (cgroup.freeze) and CPU use (cpu.stat) come with every cgroup, no controller needed. */
enum { EXEC_CG_MEMORY, EXEC_CG_PIDS, EXEC_CG_CPU, EXEC_CG_FREEZER, EXEC_CG_CPUACCT, EXEC_CG_N };
#define EXEC_CG_CPU_PERIOD_US 100000u
#ifndef EXEC_CG_REMOVE_MS
#define EXEC_CG_REMOVE_MS 2000 /* how long a task's cgroup may take to empty before it is given up */
#endif

/** Where each controller's hierarchy is mounted (parsed from /proc/self/mountinfo). */
typedef struct exec_cg_mounts {
    char *v1[EXEC_CG_N], *v1_root[EXEC_CG_N]; /* a cgroup v1 mount with that controller, and its root */
    char *v2, *v2_root;                       /* the cgroup2 mount */
} exec_cg_mounts_t;

/** The peer's cgroups: per controller, its directory (NULL: not available, why says why). */
typedef struct exec_cg {
    int version[EXEC_CG_N]; /* 0, 1 or 2 */
    char *dir[EXEC_CG_N];
    char why[EXEC_CG_N][200];
    char *v2_self; /* v2: the leaf the peer moved itself into, or NULL */
} exec_cg_t;

/** What the peer gives its tasks in all. */
typedef struct exec_cg_limits {
    uint64_t memory_total; /* bytes, 0: no bound beyond each task's own */
    unsigned cpu_permille; /* share of the machine's CPUs x 1000, 0: no bound */
    unsigned ncpu;         /* the machine's CPUs (for cpu_permille) */
    bool freeze;           /* tasks will be suspended: the freezer is needed */
} exec_cg_limits_t;

/** What a task's cgroup recorded. */
typedef struct exec_cg_stats {
    uint64_t oom_kills;      /* processes the kernel killed at the memory limit */
    uint64_t memory_failcnt; /* v1: times the usage hit the limit */
    uint64_t memory_peak;    /* bytes, 0 if unknown */
    uint64_t pids_refused;   /* forks refused at the processes limit */
} exec_cg_stats_t;

const char *exec__cg_ctl_name(int ctl);
/** Pure: the cgroup mounts in a mountinfo text (first of each). 0 or -EINVAL. Free with _mounts_free. */
int exec__cg_parse_mounts(const char *mountinfo, exec_cg_mounts_t *m);
void exec__cg_mounts_free(exec_cg_mounts_t *m);
/** Pure: the path of the cgroup that a /proc/PID/cgroup text gives for ctl (NULL: the v2 line
 *  "0::"). 0 with *path xmalloc'd, or -ENOENT. */
int exec__cg_parse_self(const char *text, const char *ctl, char **path);
/** Pure: the number after "key " at the start of a line of a cgroup key-value file. 0, -ENOENT, -EBADMSG. */
int exec__cg_parse_key(const char *text, const char *key, uint64_t *out);
/**
 * Blocking (start-up): finds each controller, makes the peer's cgroups (removing those of dead
 * peers) and sets lim. 0 (a controller the tasks need may still be missing: exec__cg_missing), or
 * -ENOTSUP / -errno when lim cannot be enforced, with why filled (nothing left behind).
 */
int exec__cg_open(exec_cg_t *cg, const exec_cg_limits_t *lim, char *why, size_t whylen);
/** Blocking: removes the peer's cgroups (and any task's left). */
void exec__cg_close(exec_cg_t *cg);
/** Why a task cannot have its whole-task limits here (no memory or pids controller), or NULL. */
const char *exec__cg_missing(const exec_cg_t *cg);
/** The task's cgroup directories (one per hierarchy it uses), xmalloc'd: their number. */
int exec__cg_task_dirs(const exec_cg_t *cg, const char *name, char *out[EXEC_CG_N]);
/**
 * Blocking (thread pool): makes the task's cgroup and sets its memory and process limits. v1: *oom_fd
 * gets an eventfd the kernel signals when the task runs out of memory (-1 on v2, where the whole
 * cgroup is killed instead). 0, or -errno with why filled and nothing left.
 */
int exec__cg_task_make(const exec_cg_t *cg, const char *name, uint64_t memory, uint32_t pids, int *oom_fd,
                       char *why, size_t whylen);
/** Where a task's counters started in a cgroup that has run tasks before (a warm sandbox's). */
typedef struct exec_cg_base {
    uint64_t oom_kills, memory_failcnt, pids_refused;
    int peak_fd; /* v2: memory.peak, reset through this descriptor (Linux 6.12); -1 */
} exec_cg_base_t;
/**
 * Blocking (thread pool): the counters of the cgroup now, into base, and its memory peak reset (v1
 * memory.max_usage_in_bytes; v2 a memory.peak descriptor kept in base, closed by the next mark or
 * by the caller): what a task starting now is measured from. 0 or -errno (the peak not reset).
 */
int exec__cg_task_mark(const exec_cg_t *cg, const char *name, exec_cg_base_t *base);
/** Blocking (thread pool): what the cgroup recorded since base (NULL: since it was made). */
int exec__cg_task_read(const exec_cg_t *cg, const char *name, const exec_cg_base_t *base, exec_cg_stats_t *st);
/** Blocking (thread pool): exec__cg_task_read, then kills anything left in the cgroup and removes it. */
int exec__cg_task_end(const exec_cg_t *cg, const char *name, const exec_cg_base_t *base, exec_cg_stats_t *st);
/* Freezes (or thaws) the task's cgroup: 0 or -errno (-ENOTSUP: no freezer). One cgroupfs write,
 * which the kernel does not make wait for the freezing to complete. */
int exec__cg_task_freeze(const exec_cg_t *cg, const char *name, bool frozen);
/* The file that holds the CPU time all the peer's tasks have used (xmalloc'd), NULL if none. */
char *exec__cg_cpu_file(const exec_cg_t *cg);
/* The processes in the task's cgroup (its pids hierarchy), at most max: how many, or -errno. One
 * cgroupfs read. */
int exec__cg_task_pids(const exec_cg_t *cg, const char *name, pid_t *out, int max);

/* ---- quota.c: the disk limit of a task in all (a btrfs of the peer's, a subvolume per run) ---- */

typedef struct exec_quota {
    char *dir;      /* the mount point: the peer's work directory */
    char uuid[40];  /* the filesystem's, for /sys/fs/btrfs/<uuid>/qgroups */
    uint64_t size;  /* of its image */
    bool on;
} exec_quota_t;
/**
 * Blocking (start-up): a btrfs with quotas mounted on dir (a crashed peer's is unmounted first), on a
 * sparse image of size bytes (256 MiB at least) beside it. 0, or -errno with why filled (nothing
 * left mounted). Needs root, loop devices, btrfs and mkfs.btrfs (btrfs-progs).
 */
int exec__quota_open(exec_quota_t *q, const char *dir, uint64_t size, char *why, size_t whylen);
/** Blocking: unmounts it (lazily: its image goes with the last user). */
void exec__quota_close(exec_quota_t *q);
/**
 * Blocking (thread pool): path, directly in q's dir and new, made a subvolume whose qgroup may hold
 * limit bytes at most (its data and metadata: writes past it fail with EDQUOT). *subvol gets its id.
 * 0 or -errno (nothing made).
 */
int exec__quota_make(const exec_quota_t *q, const char *path, uint64_t limit, uint64_t *subvol);
/** Blocking (thread pool): what the subvolume holds now, and its limit (bytes). 0 or -errno. */
int exec__quota_usage(const exec_quota_t *q, uint64_t subvol, uint64_t *used, uint64_t *max);
/** Pure: whether used is at max (within what a refused write can leave unused: 2%, 128 KiB at least). */
bool exec__quota_hit(uint64_t used, uint64_t max);

/* ---- limit.c and keeper.c: the wrapper, a sandbox's keeper and its agent (libc only) ---- */

#define EXEC_LIMIT_NOPTS 7 /* --as --nproc --fsize --core --nofile --cpu --msgqueue */
/** The slot's uid and the rlimits the wrapper sets (limit.c's table gives the order). */
typedef struct exec_limits {
    bool have_uid;
    uid_t uid;
    gid_t gid;
    unsigned long long value[EXEC_LIMIT_NOPTS];
    bool given[EXEC_LIMIT_NOPTS];
} exec_limits_t;
/** Steps (3) and (4) of limit.c: drops to l's uid, then sets l's limits. 0, or -1 after a message. */
int exec__limit_drop(const exec_limits_t *l);
/**
 * Mounts a task's working directory at EXEC_STAGE_ROOT (in the namespace stage_dirs made): the
 * overlay of the staged job (lower), upper and work; with walk, upper first gets its skeleton from
 * the staged job. 0, or -1 with why filled. Blocking; root.
 */
int exec__limit_mount_task(const char *upper, const char *work, uid_t uid, gid_t gid, bool chown_it, bool walk,
                           char *why, size_t whylen);

#define EXEC_LIMIT_FAIL 127       /* the limiter's exit status when it cannot do what it was asked */
#define EXEC_LIMIT_NOT_STARTED 126 /* --go-fd closed without a word: cancelled before it started */
/** The limiter's vector, parsed (exec__limit_parse; pointers into its argv). */
typedef struct exec_limit_args {
    exec_limits_t limits;
    int keeper_fd;                /* --keeper, or -1 */
    unsigned long long tmpfs_size; /* --tmpfs-size */
    int ncg, ndirs;
    const char *cgroups[EXEC_CG_N];
    const char *dir_path[2], *dir_name[2];
    char **prog;                  /* after "--" */
} exec_limit_args_t;
/**
 * The limiter's options, every one checked before anything is done, after the wait for --go-fd's
 * word (if first). 0, EXEC_LIMIT_NOT_STARTED, or EXEC_LIMIT_FAIL after a message on stderr.
 */
int exec__limit_parse(int argc, char **argv, exec_limit_args_t *a);
/** Steps (0b) and (1) of limit.c: joins the cgroups, stages the directories. 0 or EXEC_LIMIT_FAIL. */
int exec__limit_enter(const exec_limit_args_t *a);
/** A descriptor number argument: decimal, 0..INT_MAX. 0 or -1. */
int exec__limit_fd_arg(const char *s, int *fd);

typedef struct exec_keeper_args {
    int ctl;                       /* the socket to preon */
    unsigned long long tmpfs_size; /* of each task's /tmp and /dev/shm */
    exec_limits_t limits;          /* for bwrap and all it starts */
    char **argv;                   /* bwrap's vector, NULL-terminated */
} exec_keeper_args_t;
/**
 * The keeper (keeper.c), in the private namespace with the job staged: starts bwrap, then mounts
 * each task's /task, /tmp and /dev/shm and hands the task to the agent, until preon closes its
 * socket. Returns the limiter's exit status.
 */
int exec__keeper_main(const exec_keeper_args_t *a);
/** The agent (keeper.c), pid 1 of a sandbox: runs each task it is sent, then ends all it left. */
int exec__agent_main(int sock);

#endif
