/*
 * exec.c: runs tasks in bubblewrap sandboxes, on the loop, fail closed; a sandbox outlives its task
 * and runs the next task of the same job on the same slot (a warm sandbox: docs/sandbox.md).
 *
 * Two objects. A sandbox (sbox_t) is a keeper process (the limiter started with --keeper: root, in
 * its private mount namespace), bwrap under it and the agent inside (exec/keeper.c), one cgroup
 * that holds them all, and the socket to the keeper. It belongs to a slot (the slot's uid), and to
 * one job with one set of limits: a task of another job, or with other limits, never runs in it.
 * A task (exec_task_t) goes through:
 *
 * PREP, in the thread pool (uv_queue_work: it touches the disk, and the job directory lives inside
 * this process's own FUSE mount: a stat() of it from the loop thread would wait for a reply that
 * only the loop thread can give): its directories, the skeleton of its upper layer, its checkpoint,
 * its stdout and stderr files. A new sandbox has its own PREP beside it: bwrap checked, its cgroup
 * made, the keeper started with posix_spawn (the keeper waits for a byte from the loop, --go-fd,
 * so the loop never waits for a child to be scheduled and a sandbox cancelled meanwhile never
 * starts). Then it waits until its sandbox says it is ready (the agent is up) and is not suspended.
 *
 * RUNNING: the task was sent to its sandbox ('R': exec/msg.h, with the two files); the time-out runs
 * on a uv_timer. It ends with the keeper's 'D' (the command's wait status, once the agent has ended
 * every process of it and the keeper has unmounted its /task, /tmp and /dev/shm) or 'F' (it could
 * not start: refused), or with the end of the whole sandbox (killed: the time-out's grace over, a
 * cancel, out of memory; or broken).
 *
 * ENDING: what the cgroup recorded for the task is read (and the peak reset for the next one) in
 * the thread pool; the sandbox is idle again (so the callback may start the next task in it) and the
 * callback fires. An idle sandbox that gets no task within EXEC_WARM_IDLE_MS is closed. A sandbox
 * that ends takes its task with it: the keeper reaped, bwrap's monitor and its pid 1 reaped (we are
 * the child subreaper: what the keeper leaves comes to us), the cgroup emptied and removed, and only
 * then does its task's callback fire ("nothing of the task is left running, and /task is no longer
 * being written").
 *
 * Fail closed: anything that goes wrong before the command is exec'd inside the sandbox makes the
 * task `refused`, with a reason, and the command never runs: a sandbox that ends before it is ready
 * gives bwrap's or the limiter's last line on its stderr as the reason, an 'F' gives the keeper's or
 * the agent's. The callback never fires inside exec_task_spawn: even an immediate refusal goes
 * through the thread pool's after-work callback.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "core/files.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "exec/exec.h"
#include "exec/internal.h"
#include "exec/msg.h"

/* How much of a sandbox's stderr is read back to explain a sandbox that was not built. */
#define EXEC_STDERR_TAIL 400
/* How soon a kill that arrives while the sandbox is still being built is tried again. */
#define EXEC_KILL_RETRY_MS 2

enum stage { S_PREP, S_RUNNING, S_ENDING, S_DONE };
enum sb_state { SB_PREP, SB_STARTING, SB_READY, SB_DEAD };

typedef struct sbox sbox_t;

struct exec_task {
    exec_t *e;
    exec_task_t *prev, *next;
    exec_done_cb cb;
    void *arg;
    enum stage stage;
    sbox_t *sb;        /* its sandbox; NULL while the slot's last one is still going */
    bool prepped;      /* PREP is over: it runs once its sandbox is ready and it is not suspended */
    bool started;      /* sent to the sandbox */
    uv_work_t work;
    uv_timer_t timer;  /* the time-out, then the grace of a stop with notice */
    int open_handles;
    bool cancelled, timed_out;
    bool suspended;       /* exec_task_suspend: frozen (if it had started); its time-out paused */
    bool terming;         /* SIGTERM sent; its sandbox is killed when the grace is over (term_sandbox) */
    bool term_busy;       /* the SIGTERMs are being sent, in the thread pool */
    bool finish_after_term; /* it ended meanwhile: its end goes on once they are */
    int wait_status;      /* the 'D' */
    char fail[EXEC_MAX_REASON / 2]; /* the 'F' */
    bool got_done, got_fail;
    uint64_t grace_ms;
    uint64_t deadline_ns; /* when the time-out fires (uv_hrtime), while it runs */
    uint64_t left_ns;     /* suspended: what was left of the time-out */
    uint64_t suspended_ns, suspended_at; /* time spent frozen, and since when (not part of elapsed) */
    /* Copies of the spec, read by the pool thread in PREP. */
    char *job_id, *job_dir, *run_dir, *task_dir, *scratch_dir, *stdout_path, *stderr_path, *ckpt_dir, *command;
    uint64_t subvol;     /* run_dir's subvolume (its quota), 0: none */
    uint64_t disk_used, disk_max; /* what it held at the end, and its limit (quota) */
    char **box_argv;   /* a new sandbox's vector, until a sandbox takes it */
    bool network;      /* asks for it, and may have it */
    bool oom_hit;      /* its sandbox ran out of memory while it ran */
    uint32_t task_index;
    bool box_lost;     /* its sandbox ended while its PREP or its SIGTERMs were under way */
    char lost_why[EXEC_MAX_REASON / 2]; /* why, if it had not started */
    exec_entry_t *skel; /* owned copies (paths xstrdup'd), or NULL: the keeper walks the job */
    size_t n_skel;
    char **env;
    unsigned slot;
    uid_t uid;
    gid_t gid;
    uint64_t timeout_ms, memory_bytes, disk_bytes;
    uint32_t processes;
    /* Written by the pool thread; -1 until opened; closed once sent. */
    int out_fd, err_fd;
    uint64_t start_ns;
    exec_cg_stats_t cg_stats;
    exec_result_t res;
};

struct sbox {
    exec_t *e;
    sbox_t *prev, *next;  /* e->boxes */
    enum sb_state state;
    unsigned slot;
    uid_t uid;
    gid_t gid;
    /* What a task must share to run here (sb_fits). */
    char *job_id, *job_dir;
    uint64_t memory, disk;
    uint32_t processes;
    bool network;
    char **argv; /* the keeper's vector (exec_build_argv) */
    exec_task_t *task;      /* running in it, or waiting for it to be ready, or ending */
    bool stats_busy;        /* its task's end is being read from the cgroup (thread pool) */
    bool cg_end_deferred;   /* it died meanwhile: its cgroup goes once that reading is over */
    exec_task_t *successor; /* a task of the slot waiting for this sandbox to be gone */
    bool closing;           /* to end once idle (or now, if idle) */
    bool broken;            /* a task could not start in it: never reused */
    uint64_t tasks;         /* tasks sent to it */
    uv_work_t work;
    uv_timer_t timer;       /* idle, then kill retries */
    int open_handles;
    char why[EXEC_MAX_REASON / 2]; /* PREP could not start it: why */
    /* The keeper: our child (a pidfd watched for its exit), its go pipe and its socket. */
    pid_t pid;
    int proc_fd, go_fd, ctl_fd;
    uv_poll_t proc, ctl;
    bool proc_inited, ctl_inited, go_sent;
    int go_errno;
    atomic_bool stop_asked; /* closed during PREP: set by the loop, read by PREP before the spawn */
    /* bwrap's monitor, the keeper's child: a pidfd from its hello, watched so that it is reaped */
    pid_t monitor_pid;
    int monitor_fd;
    uv_poll_t mon;
    bool mon_inited, monitor_gone, agent_reaping;
    bool hello, keeper_gone;
    int status_fd, err_fd; /* bwrap's --json-status-fd and the sandbox's stderr (memfds) */
    /* The agent, the sandbox's pid 1 (bwrap reports its pid): reaped once the keeper is gone. */
    pid_t child_pid;
    int pidfd;
    uv_poll_t reap;
    bool reap_inited;
    /* Its cgroup, one per sandbox: the limits hold for each task in turn (a task is measured from
     * base, marked after each); v1 signals out of memory on oom_fd. */
    char cg_name[32];
    char *cg_dirs[EXEC_CG_N];
    int n_cg;
    bool cg_made;
    exec_cg_base_t base;
    int oom_fd;
    uv_poll_t oom;
    bool oom_inited, oom_hit;
    bool killed, frozen;
};

struct exec {
    uv_loop_t *loop;
    exec_opts_t opts; /* bwrap and limiter point at our own copies below */
    char *bwrap, *limiter;
    exec_task_t *tasks;
    sbox_t *boxes;
    sbox_t **slot_box; /* per slot: its sandbox, at most one (a slot is a uid) */
    exec_cg_t cg;      /* the peer's cgroups (cgroup.c) */
    exec_quota_t quota; /* the btrfs of run directories (quota.c), if on */
    char quota_why[256]; /* why not, if asked for and not had: every task with a run_dir is refused */
    /* The quota btrfs failed under a task (read-only: its image's disk filled: exec_work_failed);
     * set from the thread pool (prep), read on the loop; cleared once made anew (exec_work_renew). */
    atomic_bool work_failed;
    char work_failed_why[200];  /* written by the prep that set work_failed first (work_failed_claim) */
    atomic_flag work_failed_claim;
    bool renewing;              /* exec_work_renew's work is out: no task starts, the exec is not freed */
    void (*renewed)(void *arg, int rc, const char *why);
    void *renewed_arg;
    uv_work_t renew_work;
    char *work_dir;             /* where the btrfs is mounted, and its image's size: to make it anew */
    uint64_t work_size;
    int renew_rc;
    char renew_why[200];
    uint64_t cg_seq;
    uint64_t warm_starts, cold_starts;
    bool closing;
    void (*close_cb)(void *arg);
    void *close_arg;
};

int exec_new(uv_loop_t *loop, const exec_opts_t *opts, exec_t **out)
{
    if (!loop || !opts || !out)
        return -EINVAL;
    *out = NULL;
    const char *bwrap = opts->bwrap ? opts->bwrap : EXEC_DEFAULT_BWRAP;
    if (!opts->limiter || opts->limiter[0] != '/' || bwrap[0] != '/' || opts->slots == 0)
        return -EINVAL;
    uid_t ub = opts->uid_base ? opts->uid_base : EXEC_DEFAULT_ID_BASE;
    gid_t gb = opts->gid_base ? opts->gid_base : EXEC_DEFAULT_ID_BASE;
    /* Every slot's ids must be real, unprivileged and distinct: no wrap to 0 or to (uid_t)-1. */
    if ((uid_t)(ub + opts->slots) < ub || (gid_t)(gb + opts->slots) < gb ||
        (uid_t)(ub + opts->slots - 1) == (uid_t)-1 || (gid_t)(gb + opts->slots - 1) == (gid_t)-1)
        return -EINVAL;
    /* bwrap's monitor exits without reaping the sandbox's pid 1, and the keeper's death leaves the
     * monitor behind. As a subreaper we inherit them, so we can reap them and know the whole
     * sandbox is gone; otherwise they linger as zombies of init, counted against the slot uid's
     * RLIMIT_NPROC. Process-wide, and harmless to set twice. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        return -errno;
    exec_t *e = xcalloc(1, sizeof(*e));
    char why[256];
    exec_cg_limits_t lim = {.memory_total = opts->memory_total, .cpu_permille = opts->cpu_permille,
                            .ncpu = (unsigned)uv_available_parallelism(), .freeze = opts->suspend};
    int rc = exec__cg_open(&e->cg, &lim, why, sizeof(why));
    if (rc) {
        log_error("exec: %s", why);
        free(e);
        return rc;
    }
    const char *missing = exec__cg_missing(&e->cg);
    if (missing)
        log_warn("exec: every task will be refused: its limits cannot hold for the whole task: %s", missing);
    e->loop = loop;
    e->opts = *opts;
    e->bwrap = xstrdup(bwrap);
    e->limiter = xstrdup(opts->limiter);
    e->opts.bwrap = e->bwrap;
    e->opts.limiter = e->limiter;
    e->opts.uid_base = ub;
    e->opts.gid_base = gb;
    e->slot_box = xcalloc(opts->slots, sizeof(*e->slot_box));
    if (opts->work_dir && !opts->no_disk_quota) {
        char qwhy[200];
        if (exec__quota_open(&e->quota, opts->work_dir, opts->work_size, qwhy, sizeof(qwhy)) != 0) {
            snprintf(e->quota_why, sizeof(e->quota_why), "%s", qwhy);
            log_warn("exec: every task will be refused: its disk cannot be bounded in all: %s (start with "
                     "--no-disk-quota to bound each file only)", qwhy);
        }
    }
    if (e->quota.on) {
        e->work_dir = xstrdup(e->quota.dir);
        e->work_size = e->quota.size;
    }
    e->opts.work_dir = NULL; /* not ours to keep: exec__quota_open copied it */
    *out = e;
    return 0;
}

int exec_check_cgroups(const exec_opts_t *opts, char *why, size_t whylen)
{
    exec_cg_t cg;
    exec_cg_limits_t lim = {.memory_total = opts->memory_total, .cpu_permille = opts->cpu_permille,
                            .ncpu = (unsigned)uv_available_parallelism(), .freeze = opts->suspend};
    int rc = exec__cg_open(&cg, &lim, why, whylen);
    if (rc)
        return rc;
    const char *missing = exec__cg_missing(&cg);
    if (missing) {
        snprintf(why, whylen, "%s", missing);
        rc = -ENOTSUP;
    }
    exec__cg_close(&cg);
    return rc;
}

static void exec_free(exec_t *e)
{
    void (*cb)(void *) = e->close_cb;
    void *arg = e->close_arg;
    exec__cg_close(&e->cg);
    exec__quota_close(&e->quota);
    free(e->work_dir);
    free(e->slot_box);
    free(e->bwrap);
    free(e->limiter);
    free(e);
    if (cb)
        cb(arg);
}

static void maybe_free_exec(exec_t *e)
{
    if (e->closing && !e->tasks && !e->boxes && !e->renewing)
        exec_free(e);
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void refuse(exec_task_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refuse(exec_task_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->res.reason, sizeof(t->res.reason), fmt, ap);
    va_end(ap);
    t->res.refused = true;
    t->res.exit_code = -1;
}

/* A refusal whose cause is this peer's disk (rc -errno), not the task: said in the result. */
static void refuse_disk(exec_task_t *t, int rc)
{
    if (rc == -ENOSPC || rc == -EDQUOT || rc == -EROFS || rc == -EIO)
        t->res.disk_errno = rc;
}

/* ==== sandboxes ==== */

static void sb_kill(sbox_t *sb);
static void sb_dead(sbox_t *sb);
static void sb_idle_or_close(sbox_t *sb);
static void task_start_if_ready(exec_task_t *t);
static void on_task_message(exec_task_t *t, const exec_msg_t *m);
static void task_box_gone(exec_task_t *t);
static void thaw_if_frozen(sbox_t *sb);
static void new_box_for(exec_task_t *t);
static void read_disk(exec_task_t *t);

static void sb_free(sbox_t *sb)
{
    exec_t *e = sb->e;
    if (sb->prev)
        sb->prev->next = sb->next;
    else
        e->boxes = sb->next;
    if (sb->next)
        sb->next->prev = sb->prev;
    if (e->slot_box[sb->slot] == sb)
        e->slot_box[sb->slot] = NULL;
    close_fd(&sb->proc_fd);
    close_fd(&sb->go_fd);
    close_fd(&sb->ctl_fd);
    close_fd(&sb->monitor_fd);
    close_fd(&sb->pidfd);
    close_fd(&sb->status_fd);
    close_fd(&sb->err_fd);
    close_fd(&sb->oom_fd);
    close_fd(&sb->base.peak_fd);
    for (int i = 0; i < sb->n_cg; i++)
        free(sb->cg_dirs[i]);
    free(sb->job_id);
    free(sb->job_dir);
    exec_argv_free(sb->argv);
    exec_task_t *next = sb->successor;
    free(sb);
    if (next && next->stage == S_PREP) /* the slot is free: its own sandbox now */
        new_box_for(next);
    maybe_free_exec(e);
}

static void on_box_handle_closed(uv_handle_t *h)
{
    sbox_t *sb = h->data;
    if (--sb->open_handles == 0)
        sb_free(sb);
}

static void sb_close_handles(sbox_t *sb)
{
    uv_close((uv_handle_t *)&sb->timer, on_box_handle_closed);
    if (sb->proc_inited)
        uv_close((uv_handle_t *)&sb->proc, on_box_handle_closed);
    if (sb->ctl_inited)
        uv_close((uv_handle_t *)&sb->ctl, on_box_handle_closed);
    if (sb->mon_inited)
        uv_close((uv_handle_t *)&sb->mon, on_box_handle_closed);
    if (sb->reap_inited)
        uv_close((uv_handle_t *)&sb->reap, on_box_handle_closed);
    if (sb->oom_inited)
        uv_close((uv_handle_t *)&sb->oom, on_box_handle_closed);
}

/* Whether spec's task may run in sb: the same slot, job and limits. */
static bool sb_fits(const sbox_t *sb, const exec_spec_t *spec, bool network)
{
    return sb->slot == spec->slot && !strcmp(sb->job_id, spec->job_id) && !strcmp(sb->job_dir, spec->job_dir) &&
           sb->memory == spec->memory_bytes && sb->disk == spec->disk_bytes && sb->processes == spec->processes &&
           sb->network == network;
}

/* A sandbox for t, made from t's copies (it takes t's box_argv), not started: the caller queues
 * its PREP. It is the slot's sandbox from now on. */
static sbox_t *sb_new(exec_t *e, exec_task_t *t)
{
    sbox_t *sb = xcalloc(1, sizeof(*sb));
    sb->e = e;
    sb->state = SB_PREP;
    sb->slot = t->slot;
    sb->uid = t->uid;
    sb->gid = t->gid;
    sb->job_id = xstrdup(t->job_id);
    sb->job_dir = xstrdup(t->job_dir);
    sb->memory = t->memory_bytes;
    sb->disk = t->disk_bytes;
    sb->processes = t->processes;
    sb->network = t->network;
    sb->argv = t->box_argv;
    t->box_argv = NULL;
    sb->proc_fd = sb->go_fd = sb->ctl_fd = sb->monitor_fd = sb->pidfd = -1;
    sb->status_fd = sb->err_fd = sb->oom_fd = sb->base.peak_fd = -1;
    sb->work.data = sb;
    sb->timer.data = sb;
    uv_timer_init(e->loop, &sb->timer);
    sb->open_handles = 1;
    snprintf(sb->cg_name, sizeof(sb->cg_name), "t%u-%" PRIu64, t->slot, ++e->cg_seq);
    sb->n_cg = exec__cg_task_dirs(&e->cg, sb->cg_name, sb->cg_dirs);
    sb->task = t;
    t->sb = sb;
    sb->next = e->boxes;
    if (e->boxes)
        e->boxes->prev = sb;
    e->boxes = sb;
    e->slot_box[sb->slot] = sb;
    e->cold_starts++;
    return sb;
}

/* bwrap runs as the slot's uid with no supplementary groups. */
static bool executable_by(const struct stat *st, uid_t uid, gid_t gid)
{
    if (st->st_uid == uid)
        return st->st_mode & S_IXUSR;
    if (st->st_gid == gid)
        return st->st_mode & S_IXGRP;
    return st->st_mode & S_IXOTH;
}

/* fd, or a close-on-exec copy of it above EXEC_CTL_FD (*tmp records it to close later). */
static int high_fd(int fd, int *tmp)
{
    *tmp = -1;
    if (fd > EXEC_CTL_FD)
        return fd;
    *tmp = fcntl(fd, F_DUPFD_CLOEXEC, EXEC_CTL_FD + 1);
    return *tmp;
}

/*
 * End of the sandbox's PREP (thread pool): starts the keeper with posix_spawn (a vfork-style clone:
 * no copy of our page tables, no fork handlers, the exec's error comes back as the return value)
 * and its first option `--go-fd 4`: it waits for a byte on fd 4 before it touches anything (EOF:
 * closed meanwhile, it exits 126). So the loop never waits for a child to be scheduled (uv_spawn
 * blocks until the child has exec'd: on a machine busy with sandboxes, hundreds of milliseconds).
 * The child gets /dev/null, the sandbox's stderr twice, bwrap's status fd, the go pipe and its
 * socket as fds 0-5, default signal handling and an empty signal mask.
 */
static void sb_spawn(sbox_t *sb)
{
    char eb[128];
    if (atomic_load(&sb->stop_asked))
        return;
    int gop[2], sp[2];
    if (pipe2(gop, O_CLOEXEC) != 0) {
        snprintf(sb->why, sizeof(sb->why), "cannot start %s: pipe: %s", sb->argv[0], strerror_r(errno, eb, sizeof(eb)));
        return;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0) {
        snprintf(sb->why, sizeof(sb->why), "cannot start %s: socketpair: %s", sb->argv[0],
                 strerror_r(errno, eb, sizeof(eb)));
        close(gop[0]);
        close(gop[1]);
        return;
    }
    _Static_assert(EXEC_STATUS_FD == 3 && EXEC_GO_FD == 4 && EXEC_CTL_FD == 5, "the child's fds: 0-2, status, go, ctl");
    int src[6] = {-1, sb->err_fd, sb->err_fd, sb->status_fd, gop[0], sp[1]}, tmp[6] = {-1, -1, -1, -1, -1, -1};
    bool ok = true;
    for (int i = 1; i < 6; i++) { /* no dup2 below may overwrite a later one's source */
        src[i] = high_fd(src[i], &tmp[i]);
        ok = ok && src[i] >= 0;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDWR, 0);
    for (int i = 1; i < 6; i++)
        posix_spawn_file_actions_adddup2(&fa, src[i], i); /* the copies are not close-on-exec */
    size_t n = 0;
    while (sb->argv[n])
        n++;
    /* limiter "limit" --go-fd 4 [--cgroup DIR]... <the rest> */
    char **argv = xcalloc(n + 3 + 2 * (size_t)sb->n_cg, sizeof(char *));
    for (size_t i = 0, k = 0; i < n; i++) {
        argv[k++] = sb->argv[i];
        if (i == 1) {
            argv[k++] = "--go-fd";
            argv[k++] = "4";
            for (int g = 0; g < sb->n_cg; g++) {
                argv[k++] = "--cgroup";
                argv[k++] = sb->cg_dirs[g];
            }
        }
    }
    char *env[] = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", NULL}; /* each task's own goes with it */
    pid_t pid = 0;
    int rc = ok ? posix_spawn(&pid, sb->argv[0], &fa, &at, argv, env) : errno;
    free(argv);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    for (int i = 1; i < 6; i++)
        if (tmp[i] >= 0)
            close(tmp[i]);
    close(gop[0]);
    close(sp[1]);
    if (rc) {
        close(gop[1]);
        close(sp[0]);
        snprintf(sb->why, sizeof(sb->why), "cannot start %s as uid %u: %s", sb->argv[0], (unsigned)sb->uid,
                 uv_strerror(-rc));
        return;
    }
    sb->proc_fd = pidfd_open(pid, 0); /* our unreaped child: its pid cannot have been reused */
    if (sb->proc_fd < 0) {
        int err = errno;
        close(gop[1]); /* it exits having done nothing */
        close(sp[0]);
        waitpid(pid, NULL, 0);
        snprintf(sb->why, sizeof(sb->why), "cannot watch %s: pidfd_open: %s", sb->argv[0],
                 strerror_r(err, eb, sizeof(eb)));
        return;
    }
    sb->pid = pid;
    sb->go_fd = gop[1];
    sb->ctl_fd = sp[0];
}

/* The sandbox's PREP, in the thread pool: touches only sb's copies and the disk. */
static void sb_prep_work(uv_work_t *w)
{
    sbox_t *sb = w->data;
    exec_t *e = sb->e;
    struct stat st;
    char eb[128]; /* strerror's buffer is not ours to share with the loop thread */
    if (!sb->argv) {
        snprintf(sb->why, sizeof(sb->why), "internal error building the sandbox");
        return;
    }
    if (stat(e->bwrap, &st) != 0) {
        snprintf(sb->why, sizeof(sb->why), "bwrap %s: %s", e->bwrap, strerror_r(errno, eb, sizeof(eb)));
        return;
    }
    if (!S_ISREG(st.st_mode) || !executable_by(&st, sb->uid, sb->gid)) {
        snprintf(sb->why, sizeof(sb->why), "bwrap %s is not a file that uid %u may run", e->bwrap, (unsigned)sb->uid);
        return;
    }
    errno = 0;
    if (stat(sb->job_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(sb->why, sizeof(sb->why), "job directory %s: %s", sb->job_dir,
                 errno ? strerror_r(errno, eb, sizeof(eb)) : "not a directory");
        return;
    }
    sb->status_fd = memfd_create("preon-bwrap-status", MFD_CLOEXEC);
    sb->err_fd = memfd_create("preon-sandbox-stderr", MFD_CLOEXEC);
    if (sb->status_fd < 0 || sb->err_fd < 0) {
        snprintf(sb->why, sizeof(sb->why), "memfd for the sandbox: %s", strerror_r(errno, eb, sizeof(eb)));
        return;
    }
    /* Its cgroup, last: nothing before it can fail and leave it behind unseen (the sandbox's end
     * removes it, whatever happens after). pids.max counts the keeper, bwrap's monitor and the agent. */
    char why[EXEC_MAX_REASON / 2] = "";
    if (exec__cg_task_make(&e->cg, sb->cg_name, sb->memory, sb->processes + EXEC_PIDS_OVERHEAD, &sb->oom_fd, why,
                           sizeof(why)) != 0) {
        snprintf(sb->why, sizeof(sb->why), "%s", why);
        return;
    }
    sb->cg_made = true;
    exec__cg_task_mark(&e->cg, sb->cg_name, &sb->base);
    sb_spawn(sb); /* a close meanwhile is seen on the loop, which then ends it */
}

/* The last line bwrap, the keeper or the agent wrote to the sandbox's stderr, made printable. */
static void stderr_tail(const sbox_t *sb, char *out, size_t outlen)
{
    char buf[EXEC_STDERR_TAIL + 1];
    out[0] = '\0';
    struct stat st;
    if (sb->err_fd < 0 || fstat(sb->err_fd, &st) != 0 || st.st_size <= 0)
        return;
    off_t from = st.st_size > EXEC_STDERR_TAIL ? st.st_size - EXEC_STDERR_TAIL : 0;
    ssize_t n = pread(sb->err_fd, buf, EXEC_STDERR_TAIL, from);
    if (n <= 0)
        return;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    char *line = strrchr(buf, '\n');
    line = line ? line + 1 : buf;
    for (char *p = line; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            *p = '?';
    size_t len = strlen(line) < outlen - 1 ? strlen(line) : outlen - 1;
    memcpy(out, line, len); /* a long line keeps its start: bwrap names the failing step first */
    out[len] = '\0';
}

/* pid 1 of the sandbox (the agent), once bwrap has reported it on the status fd; 0 before. */
static pid_t status_child_pid(sbox_t *sb)
{
    if (sb->child_pid > 0 || sb->status_fd < 0)
        return sb->child_pid;
    char status[EXEC_MAX_STATUS];
    int code;
    pid_t pid = 0;
    ssize_t n = pread(sb->status_fd, status, sizeof(status), 0);
    if (n > 0)
        (void)exec__parse_status(status, (size_t)n, &code, &pid); /* a half-written object: retry */
    sb->child_pid = pid;
    return pid;
}

/* Thread pool: what the sandbox's cgroup recorded for the task in it; then it is emptied and removed. */
static void sb_cg_end_work(uv_work_t *w)
{
    sbox_t *sb = w->data;
    exec_cg_stats_t st;
    int rc = exec__cg_task_end(&sb->e->cg, sb->cg_name, &sb->base, &st);
    if (sb->task) {
        sb->task->cg_stats = st;
        read_disk(sb->task);
    }
    if (rc)
        log_warn("exec: the cgroup of sandbox %s stays: %s", sb->cg_name, strerror(-rc));
}

static void sb_cg_end_done(uv_work_t *w, int status)
{
    sbox_t *sb = w->data;
    if (status == UV_ECANCELED)
        sb_cg_end_work(w); /* never cancelled by us; but the cgroup must go either way */
    sb->cg_made = false;
    exec_task_t *t = sb->task;
    sb->task = NULL;
    if (t)
        task_box_gone(t);
    sb_close_handles(sb);
}

/* Everything of the sandbox is gone but its cgroup: read it for the task, then remove it (once the
 * task's own reading, if one is under way, is over: they share the cgroup's base). */
static void sb_remove_cgroup(sbox_t *sb)
{
    if (sb->stats_busy) {
        sb->cg_end_deferred = true;
        return;
    }
    if (!sb->cg_made || uv_queue_work(sb->e->loop, &sb->work, sb_cg_end_work, sb_cg_end_done) != 0) {
        if (sb->cg_made)
            sb_cg_end_done(&sb->work, UV_ECANCELED);
        else
            sb_cg_end_done(&sb->work, 0);
    }
}

static void on_reap(uv_poll_t *p, int status, int events)
{
    sbox_t *sb = p->data;
    pid_t got = waitpid(sb->child_pid, NULL, WNOHANG);
    if (got == 0 && status == 0)
        return; /* not yet a zombie */
    if (got < 0 || status < 0)
        log_warn("exec: reaping sandbox pid %d: %s", (int)sb->child_pid,
                 got < 0 ? strerror(errno) : uv_strerror(status));
    uv_poll_stop(p);
    sb_remove_cgroup(sb);
}

/*
 * The keeper and bwrap's monitor are gone. The sandbox's pid 1 (the agent, whose exit kills and
 * reaps everything else in the pid namespace) was either reaped by the monitor or re-parented to
 * us, the subreaper. In that case it is killed (nothing of the sandbox may outlive its monitor; a pid
 * 1 that is our unreaped child cannot have had its pid reused) and reaped before the cgroup goes.
 */
static void reap_agent(sbox_t *sb)
{
    pid_t pid = status_child_pid(sb);
    if (pid <= 0 || waitpid(pid, NULL, WNOHANG) != 0) {
        sb_remove_cgroup(sb); /* no sandbox; or reaped just now; or not our child: the monitor reaped it */
        return;
    }
    sb->pidfd = pidfd_open(pid, 0);
    int rc = sb->pidfd < 0 ? -errno : uv_poll_init(sb->e->loop, &sb->reap, sb->pidfd);
    if (rc) {
        log_warn("exec: cannot watch sandbox pid %d (%s); not waiting for it to go", (int)pid, strerror(-rc));
        sb_remove_cgroup(sb);
        return;
    }
    if (pidfd_send_signal(sb->pidfd, SIGKILL, NULL, 0) != 0)
        log_warn("exec: killing sandbox pid %d: %s", (int)pid, strerror(errno));
    sb->reap.data = sb;
    sb->reap_inited = true;
    sb->open_handles++;
    uv_poll_start(&sb->reap, UV_READABLE, on_reap);
}

static void on_monitor_exit(uv_poll_t *p, int status, int events);

/*
 * The keeper is gone: bwrap's monitor, its child, was either reaped by it or is ours now (we are
 * the subreaper, and a process is re-parented before its parent can be reaped). Ours, it is reaped
 * once it has exited (it dies with the keeper: its parent-death signal); then the agent.
 */
static void sb_after_keeper(sbox_t *sb)
{
    if (!sb->keeper_gone || sb->agent_reaping)
        return;
    if (sb->monitor_fd >= 0 && !sb->monitor_gone) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        if (waitid(P_PIDFD, (id_t)sb->monitor_fd, &si, WEXITED | WNOHANG) == 0 && si.si_pid == 0) {
            uv_poll_start(&sb->mon, UV_READABLE, on_monitor_exit); /* ours and not over yet */
            return;
        }
        sb->monitor_gone = true; /* reaped just now, or by the keeper (ECHILD) */
    }
    if (sb->mon_inited)
        uv_poll_stop(&sb->mon);
    sb->agent_reaping = true; /* once: the monitor's pidfd may still wake us after this */
    reap_agent(sb);
}

/* bwrap's monitor has exited; once its keeper is gone too it is reaped, if it became ours. */
static void on_monitor_exit(uv_poll_t *p, int status, int events)
{
    (void)status, (void)events;
    sbox_t *sb = p->data;
    uv_poll_stop(p);
    sb_after_keeper(sb);
}

/* The keeper's pidfd is readable: it exited (or was killed); reap it. The sandbox is over. */
static void on_keeper_exit(uv_poll_t *p, int status, int events)
{
    sbox_t *sb = p->data;
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    if (waitid(P_PIDFD, (id_t)sb->proc_fd, &si, WEXITED | WNOHANG) != 0) {
        log_warn("exec: waiting for pid %d: %s", (int)sb->pid, strerror(errno));
    } else if (si.si_pid == 0) {
        return; /* not yet */
    }
    uv_poll_stop(p);
    sb->keeper_gone = true;
    sb_dead(sb);
    sb_after_keeper(sb);
}

/* The sandbox is over (its keeper exited): no more words from it; its processes are reaped next. */
static void sb_dead(sbox_t *sb)
{
    sb->state = SB_DEAD;
    uv_timer_stop(&sb->timer);
    if (sb->ctl_inited)
        uv_poll_stop(&sb->ctl);
    if (sb->oom_inited)
        uv_poll_stop(&sb->oom); /* the cgroup's removal signals the eventfd too */
    close_fd(&sb->go_fd);
    thaw_if_frozen(sb); /* its pid 1 is killed and reaped next: it must be able to die */
}

static void on_kill_retry(uv_timer_t *timer) { sb_kill(timer->data); }

/*
 * Ends the sandbox now: SIGKILL to the keeper; bwrap's monitor dies with it (its parent-death
 * signal), and the sandbox's pid 1 with the monitor (--die-with-parent). Never before the keeper
 * has said hello and bwrap has reported its pid 1, though: a monitor killed between its clone()
 * of the sandbox and that report orphans a pid 1 that waits for it for good (before it asks for
 * --die-with-parent), and we would not know its pid. That window lasts a millisecond or two, so
 * the kill is retried on the sandbox's timer until it is past or the keeper exits by itself.
 */
static void sb_kill(sbox_t *sb)
{
    if (!sb || sb->killed || sb->state == SB_DEAD || sb->state == SB_PREP)
        return;
    if (!sb->go_sent) { /* never started: it exits, having done nothing, when its go pipe closes */
        close_fd(&sb->go_fd);
        return;
    }
    thaw_if_frozen(sb); /* frozen, it can neither report its pid nor take a SIGKILL (v1) */
    if (!sb->hello || status_child_pid(sb) <= 0) {
        uv_timer_start(&sb->timer, on_kill_retry, EXEC_KILL_RETRY_MS, 0);
        return;
    }
    sb->killed = true;
    if (pidfd_send_signal(sb->proc_fd, SIGKILL, NULL, 0) != 0 && errno != ESRCH)
        log_warn("exec: killing pid %d: %s", (int)sb->pid, strerror(errno));
}


/* Ends a sandbox that has no task: its keeper, seeing the end of its socket (or of its go pipe, if
 * it never started), ends bwrap and exits; the rest follows its exit. */
static void sb_close(sbox_t *sb)
{
    sb->closing = true;
    if (sb->task || sb->state == SB_DEAD)
        return; /* it ends after its task, or is ending */
    uv_timer_stop(&sb->timer);
    if (sb->state == SB_PREP) {
        atomic_store(&sb->stop_asked, true); /* sb_prep_done takes it from there */
        return;
    }
    thaw_if_frozen(sb);
    close_fd(&sb->go_fd); /* not started yet: it exits 126 */
    if (sb->ctl_fd >= 0)
        shutdown(sb->ctl_fd, SHUT_RDWR); /* the fd stays ours (watched) until the sandbox is freed */
}

static void on_idle_timeout(uv_timer_t *timer) { sb_close(timer->data); }

/* The sandbox has no task now: it waits EXEC_WARM_IDLE_MS for the next of its job, or ends. */
static void sb_idle_or_close(sbox_t *sb)
{
    exec_t *e = sb->e;
    if (sb->task || sb->state == SB_DEAD)
        return;
    if (sb->closing || sb->broken || sb->oom_hit || sb->killed || e->closing) {
        sb_close(sb);
        return;
    }
    uv_timer_start(&sb->timer, on_idle_timeout, EXEC_WARM_IDLE_MS, 0);
}

/* The freezer write: one cgroupfs write, which returns before the freezing completes. */
static int freeze(sbox_t *sb, bool frozen)
{
    int rc = exec__cg_task_freeze(&sb->e->cg, sb->cg_name, frozen);
    if (rc)
        log_warn("exec: cannot %s sandbox %s: %s", frozen ? "suspend" : "resume", sb->cg_name, strerror(-rc));
    return rc;
}

/* The freezer undone, if it holds the sandbox: a frozen process cannot die (v1), not even of SIGKILL. */
static void thaw_if_frozen(sbox_t *sb)
{
    if (sb->frozen && freeze(sb, false) == 0)
        sb->frozen = false;
}

/* v1: the sandbox ran out of memory (its eventfd is readable): the whole sandbox stops, and its task. */
static void on_oom(uv_poll_t *p, int status, int events)
{
    (void)status, (void)events;
    sbox_t *sb = p->data;
    uint64_t n;
    if (read(sb->oom_fd, &n, sizeof(n)) != sizeof(n))
        return; /* spurious */
    uv_poll_stop(p);
    if (sb->state == SB_DEAD || sb->oom_hit)
        return;
    sb->oom_hit = true;
    log_info("exec: task %s is out of memory (memory = %" PRIu64 " bytes): stopping it", sb->cg_name, sb->memory);
    sb_kill(sb);
}

/* An out of memory the eventfd has said and on_oom not read yet (a task whose write failed for
 * want of memory may report its end first). */
static void oom_check_now(sbox_t *sb)
{
    uint64_t n;
    if (!sb->oom_hit && sb->oom_fd >= 0 && read(sb->oom_fd, &n, sizeof(n)) == sizeof(n) && n > 0)
        sb->oom_hit = true;
}

/* A protocol error from the keeper: the sandbox cannot be trusted to say what its task did. */
static void sb_broken(sbox_t *sb, const char *what)
{
    log_warn("exec: sandbox %s: %s; ending it", sb->cg_name, what);
    sb->broken = true;
    sb_kill(sb);
}

/* The keeper's words (exec/msg.h): hello, ready, and each task's end. */
static void on_ctl(uv_poll_t *p, int status, int events)
{
    (void)events;
    sbox_t *sb = p->data;
    for (int round = 0; round < 16 && sb->state != SB_DEAD; round++) {
        char buf[4096];
        int fds[EXEC_MSG_MAX_FDS], nfds = 0;
        ssize_t n = status < 0 ? status : exec__msg_recv(sb->ctl_fd, buf, sizeof(buf), fds, &nfds, 1);
        if (n == -EAGAIN)
            return;
        if (n <= 0) { /* the keeper is going (or we shut the socket): its exit says the rest */
            uv_poll_stop(p);
            return;
        }
        exec_msg_t m;
        int taken = 0;
        if (exec__msg_decode(buf, (size_t)n, &m) != 0) {
            sb_broken(sb, "an unreadable message from its keeper");
        } else if (m.type == 'H' && !sb->hello && m.nf == 1 && nfds == 1) {
            long long pid;
            if (exec__msg_int(m.f[0], 2, INT32_MAX, &pid) != 0 ||
                uv_poll_init(sb->e->loop, &sb->mon, fds[0]) != 0) {
                sb_broken(sb, "a bad hello from its keeper");
            } else {
                sb->hello = true;
                sb->monitor_pid = (pid_t)pid;
                sb->monitor_fd = fds[0];
                taken = 1;
                sb->mon.data = sb;
                sb->mon_inited = true;
                sb->open_handles++;
                uv_poll_start(&sb->mon, UV_READABLE, on_monitor_exit);
            }
        } else if (m.type == 'Y' && sb->hello && sb->state == SB_STARTING && m.nf == 0) {
            sb->state = SB_READY;
            if (sb->task)
                task_start_if_ready(sb->task);
            else
                sb_idle_or_close(sb);
        } else if ((m.type == 'D' || m.type == 'F') && m.nf == 1 && sb->task && sb->task->stage == S_RUNNING) {
            on_task_message(sb->task, &m);
        } else {
            sb_broken(sb, "a message out of turn from its keeper");
        }
        for (int i = taken; i < nfds; i++)
            close(fds[i]);
    }
}

/* Thread pool: the keeper we could not watch sees EOF on its go pipe and exits; reap it here. */
static void unwatched_wait(uv_work_t *w)
{
    sbox_t *sb = w->data;
    siginfo_t si;
    waitid(P_PIDFD, (id_t)sb->proc_fd, &si, WEXITED);
}

static void unwatched_done(uv_work_t *w, int status)
{
    sbox_t *sb = w->data;
    if (status == UV_ECANCELED) { /* never ran: reap it here (it only has to see EOF and exit) */
        siginfo_t si;
        waitid(P_PIDFD, (id_t)sb->proc_fd, &si, WEXITED);
    }
    sb->keeper_gone = sb->monitor_gone = true;
    sb_dead(sb);
    sb_remove_cgroup(sb);
}

/* Back on the loop after the sandbox's PREP: watch the keeper and say go, or report why not. */
static void sb_prep_done(uv_work_t *w, int status)
{
    sbox_t *sb = w->data;
    exec_t *e = sb->e;
    if (sb->pid <= 0) { /* no keeper: nothing to reap; the cgroup, if made, goes */
        if (!sb->why[0])
            snprintf(sb->why, sizeof(sb->why), "%s", status == UV_ECANCELED ? "cancelled" : "not started");
        if (sb->why[0] && strcmp(sb->why, "cancelled") != 0)
            log_info("exec: sandbox refused: %s", sb->why);
        sb->keeper_gone = sb->monitor_gone = true;
        sb_dead(sb);
        sb_remove_cgroup(sb);
        return;
    }
    sb->proc.data = sb;
    int rc = uv_poll_init(e->loop, &sb->proc, sb->proc_fd);
    if (rc) { /* cannot watch it: it must not run unwatched */
        close_fd(&sb->go_fd);
        snprintf(sb->why, sizeof(sb->why), "cannot watch the sandbox: %s", uv_strerror(rc));
        log_info("exec: sandbox refused: %s", sb->why);
        if (uv_queue_work(e->loop, &sb->work, unwatched_wait, unwatched_done) != 0)
            unwatched_done(&sb->work, UV_ECANCELED);
        return;
    }
    sb->proc_inited = true;
    sb->open_handles++;
    uv_poll_start(&sb->proc, UV_READABLE, on_keeper_exit);
    sb->ctl.data = sb;
    if (uv_poll_init(e->loop, &sb->ctl, sb->ctl_fd) == 0) {
        sb->ctl_inited = true;
        sb->open_handles++;
        uv_poll_start(&sb->ctl, UV_READABLE, on_ctl);
    }
    if (sb->oom_fd >= 0 && uv_poll_init(e->loop, &sb->oom, sb->oom_fd) == 0) {
        sb->oom.data = sb;
        sb->oom_inited = true;
        sb->open_handles++;
        uv_poll_start(&sb->oom, UV_READABLE, on_oom);
    }
    sb->state = SB_STARTING;
    if (!sb->ctl_inited || atomic_load(&sb->stop_asked) || e->closing) {
        close_fd(&sb->go_fd); /* it exits 126, having done nothing; its exit ends the sandbox */
        return;
    }
    /* A pipe's first byte never blocks. */
    sb->go_sent = write(sb->go_fd, "g", 1) == 1;
    if (!sb->go_sent)
        sb->go_errno = errno ? errno : EIO; /* it sees EOF and exits */
    close_fd(&sb->go_fd);
}

/* ==== tasks ==== */

static void task_free(exec_task_t *t)
{
    exec_t *e = t->e;
    if (t->prev)
        t->prev->next = t->next;
    else
        e->tasks = t->next;
    if (t->next)
        t->next->prev = t->prev;
    close_fd(&t->out_fd);
    close_fd(&t->err_fd);
    free(t->job_id);
    free(t->job_dir);
    free(t->run_dir);
    free(t->task_dir);
    free(t->scratch_dir);
    free(t->ckpt_dir);
    free(t->command);
    for (size_t i = 0; i < t->n_skel; i++)
        free((char *)t->skel[i].path);
    free(t->skel);
    free(t->stdout_path);
    free(t->stderr_path);
    exec_argv_free(t->box_argv);
    exec_argv_free(t->env);
    free(t);
    maybe_free_exec(e);
}

static void on_task_handle_closed(uv_handle_t *h)
{
    exec_task_t *t = h->data;
    if (--t->open_handles == 0)
        task_free(t);
}

/* Fires the callback (once), then releases the task; it is freed in the close callback. */
static void finish_now(exec_task_t *t)
{
    t->stage = S_DONE;
    close_fd(&t->out_fd);
    close_fd(&t->err_fd);
    t->cb(t, &t->res, t->arg);
    uv_close((uv_handle_t *)&t->timer, on_task_handle_closed);
}

/* The task no longer needs a sandbox (it ends before it ran): its sandbox, if any, waits idle for
 * the next task or ends; a sandbox it waited to see gone forgets it. */
static void detach(exec_task_t *t)
{
    sbox_t *sb = t->sb;
    t->sb = NULL;
    if (sb && sb->task == t) {
        sb->task = NULL;
        if (sb->tasks == 0) /* started for this task alone: no task of the job has run in it */
            sb->closing = true;
        sb_idle_or_close(sb);
    }
    for (sbox_t *o = t->e->boxes; o; o = o->next)
        if (o->successor == t)
            o->successor = NULL;
}

static void signal_reason(exec_result_t *r, int sig)
{
    const char *abbrev = sigabbrev_np(sig);
    snprintf(r->reason, sizeof(r->reason), "killed by signal %d (SIG%s)", sig, abbrev ? abbrev : "?");
}

/* The limit that stopped the task, in its result (docs/sandbox.md, "Limits"). */
static void name_the_limit(exec_task_t *t)
{
    exec_result_t *r = &t->res;
    const exec_cg_stats_t *st = &t->cg_stats;
    r->memory_peak = st->memory_peak;
    r->forks_refused = st->pids_refused;
    r->disk_used = t->disk_used;
    if (r->refused || r->cancelled)
        return;
    bool failed = r->exit_code != 0 || r->term_signal;
    if (t->oom_hit || st->oom_kills) {
        snprintf(r->limit, sizeof(r->limit), "memory");
        snprintf(r->reason, sizeof(r->reason), "stopped by the memory limit: the task in all (its processes, /tmp "
                 "and /dev/shm) reached memory = %.1f MiB", (double)t->memory_bytes / 1048576.0);
        if (r->exit_code == 0)
            r->exit_code = 128 + SIGKILL; /* it was stopped: never a success */
    } else if (r->timed_out) {
        snprintf(r->limit, sizeof(r->limit), "time");
    } else if (r->term_signal == SIGXFSZ) {
        snprintf(r->limit, sizeof(r->limit), "disk");
        snprintf(r->reason, sizeof(r->reason), "stopped by the disk limit: a file reached disk = %.1f MiB",
                 (double)t->disk_bytes / 1048576.0);
    } else if (failed && exec__quota_hit(t->disk_used, t->disk_max)) { /* its writes failed: EDQUOT */
        snprintf(r->limit, sizeof(r->limit), "disk");
        snprintf(r->reason, sizeof(r->reason), "stopped by the disk limit: the task's files in all (/task, stdout and "
                 "stderr) reached disk = %.1f MiB", (double)t->disk_bytes / 1048576.0);
    } else if (st->pids_refused && r->exit_code != 0) {
        snprintf(r->limit, sizeof(r->limit), "processes");
    }
    if (st->pids_refused && r->exit_code != 0) {
        size_t l = strlen(r->reason);
        snprintf(r->reason + l, sizeof(r->reason) - l, "%sthe processes limit (processes = %u) refused %" PRIu64
                 " fork%s", l ? "; " : "", (unsigned)t->processes, st->pids_refused, st->pids_refused == 1 ? "" : "s");
    }
}

/* Its time in the sandbox, less the time it was frozen. */
static void set_elapsed(exec_task_t *t, const sbox_t *sb)
{
    if (t->suspended) { /* it ended while suspended (killed) */
        if (sb && sb->frozen)
            t->suspended_ns += uv_hrtime() - t->suspended_at;
        t->suspended = false;
    }
    uint64_t ran = t->started ? uv_hrtime() - t->start_ns : 0;
    t->res.elapsed_ms = (ran > t->suspended_ns ? ran - t->suspended_ns : 0) / 1000000u;
}

/* Why a task that never ran in sb was refused: sb could not be built or started. */
static void box_refusal(const sbox_t *sb, char *out, size_t outlen)
{
    char tail[EXEC_MAX_REASON / 2] = "";
    if (sb->why[0]) {
        snprintf(out, outlen, "%s", sb->why);
    } else if (sb->go_errno) {
        snprintf(out, outlen, "could not start the sandbox: its go byte: %s", strerror(sb->go_errno));
    } else {
        stderr_tail(sb, tail, sizeof(tail));
        snprintf(out, outlen, "the sandbox could not be built: %s", tail[0] ? tail : "no message");
    }
}

/* The outcome of a task that ended with its own end ('D' or 'F'), or with its sandbox's. */
static void set_outcome(exec_task_t *t, const sbox_t *sb)
{
    exec_result_t *r = &t->res;
    if (r->refused)
        return;
    if (!t->started) { /* the command never ran */
        if (t->cancelled) {
            r->cancelled = true;
            r->exit_code = -1;
            snprintf(r->reason, sizeof(r->reason), "cancelled before it started");
        } else {
            char why[EXEC_MAX_REASON / 2] = "the sandbox could not be built";
            if (sb)
                box_refusal(sb, why, sizeof(why));
            refuse(t, "%s", why);
        }
        return;
    }
    if (t->got_fail) {
        refuse(t, "the sandbox could not be built: %s", t->fail);
        r->cancelled = t->cancelled;
        return;
    }
    if (t->got_done) {
        if (WIFSIGNALED(t->wait_status)) {
            r->term_signal = WTERMSIG(t->wait_status);
            r->exit_code = 128 + r->term_signal;
        } else {
            r->exit_code = WEXITSTATUS(t->wait_status);
        }
    } else { /* its sandbox ended under it */
        r->term_signal = SIGKILL;
        r->exit_code = 128 + SIGKILL;
    }
    if (t->cancelled) {
        r->cancelled = true;
        snprintf(r->reason, sizeof(r->reason), "cancelled");
    } else if (t->timed_out) {
        r->timed_out = true;
        snprintf(r->reason, sizeof(r->reason), "timed out after %.1f s", (double)t->timeout_ms / 1000.0);
    } else if (!t->got_done) {
        char tail[EXEC_MAX_REASON / 2] = "";
        if (sb)
            stderr_tail(sb, tail, sizeof(tail));
        snprintf(r->reason, sizeof(r->reason), "its sandbox ended under it%s%s", tail[0] ? ": " : "", tail);
    } else if (r->exit_code > 128 && r->exit_code < 128 + NSIG) {
        /* /bin/sh reports a command killed by a signal as 128 + signal. */
        r->term_signal = r->exit_code - 128;
        signal_reason(r, r->term_signal);
    } else if (r->term_signal) {
        signal_reason(r, r->term_signal);
    } else if (r->exit_code != 0) {
        snprintf(r->reason, sizeof(r->reason), "exit %d", r->exit_code);
    }
}

/* Its sandbox is gone, all of it, and what its cgroup recorded is in t->cg_stats. */
static void task_box_gone(exec_task_t *t)
{
    sbox_t *sb = t->sb;
    uv_timer_stop(&t->timer);
    if (t->stage == S_DONE)
        return;
    t->sb = NULL;
    t->box_lost = true;
    if (t->stage == S_PREP && !t->prepped) { /* its PREP writes t->res: prep_done ends it */
        box_refusal(sb, t->lost_why, sizeof(t->lost_why));
        return;
    }
    t->oom_hit = t->oom_hit || sb->oom_hit;
    set_elapsed(t, sb);
    set_outcome(t, sb);
    name_the_limit(t);
    if (t->term_busy) { /* term_work reads the task: it ends when that is back */
        t->finish_after_term = true;
        return;
    }
    if (t->res.refused && !t->cancelled)
        log_info("exec: task refused: %s", t->res.reason);
    finish_now(t);
}

/* Thread pool: what the cgroup recorded for the task that just ended, and the mark for the next. */
/* Thread pool: what the task's run directory holds, against its quota. */
static void read_disk(exec_task_t *t)
{
    if (t->subvol && exec__quota_usage(&t->e->quota, t->subvol, &t->disk_used, &t->disk_max) != 0)
        t->disk_used = t->disk_max = 0;
}

static void stats_work(uv_work_t *w)
{
    exec_task_t *t = w->data;
    sbox_t *sb = t->sb;
    read_disk(t);
    exec__cg_task_read(&t->e->cg, sb->cg_name, &sb->base, &t->cg_stats);
    exec__cg_task_mark(&t->e->cg, sb->cg_name, &sb->base);
}

static void stats_done(uv_work_t *w, int status)
{
    exec_task_t *t = w->data;
    sbox_t *sb = t->sb;
    if (status == UV_ECANCELED)
        stats_work(w);
    sb->stats_busy = false;
    t->oom_hit = t->oom_hit || sb->oom_hit;
    set_outcome(t, sb);
    name_the_limit(t);
    if (t->got_fail)
        log_info("exec: task refused: %s", t->res.reason);
    sb->task = NULL;
    t->sb = NULL;
    if (sb->cg_end_deferred) { /* it died meanwhile: it goes now */
        sb->cg_end_deferred = false;
        sb_remove_cgroup(sb);
    } else {
        sb_idle_or_close(sb); /* before the callback, which may start the next task in it */
    }
    finish_now(t);
}

/* The task ended in its sandbox ('D' or 'F'): nothing of it is left running, /task is unmounted. */
static void task_end(exec_task_t *t)
{
    sbox_t *sb = t->sb;
    if (t->term_busy) {
        t->finish_after_term = true;
        return;
    }
    uv_timer_stop(&t->timer);
    t->stage = S_ENDING;
    oom_check_now(sb);
    if (sb->frozen) /* a thaw that failed: the next one tries again */
        thaw_if_frozen(sb);
    set_elapsed(t, sb);
    sb->stats_busy = true;
    if (uv_queue_work(t->e->loop, &t->work, stats_work, stats_done) != 0)
        stats_done(&t->work, UV_ECANCELED);
}

static void on_task_message(exec_task_t *t, const exec_msg_t *m)
{
    long long st;
    if (m->type == 'D') {
        if (exec__msg_int(m->f[0], 0, 0xffff, &st) != 0) {
            sb_broken(t->sb, "a bad wait status from its keeper");
            return;
        }
        t->got_done = true;
        t->wait_status = (int)st;
    } else {
        t->got_fail = true;
        snprintf(t->fail, sizeof(t->fail), "%s", m->f[0]);
        for (char *p = t->fail; *p; p++) /* the keeper made it printable; once more costs nothing */
            if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
                *p = '?';
        t->sb->broken = true; /* what failed here would fail again */
    }
    task_end(t);
}

static void on_timeout(uv_timer_t *timer);

/* Sends the task to its sandbox: its layers, its command and environment, its two files. */
static void send_run(exec_task_t *t)
{
    sbox_t *sb = t->sb;
    exec_t *e = t->e;
    const char *f[EXEC_MSG_MAX_FIELDS];
    int nf = 0;
    f[nf++] = t->task_dir;
    f[nf++] = t->scratch_dir;
    f[nf++] = t->skel ? "0" : "1"; /* no skeleton from the manifest: the keeper walks the job */
    f[nf++] = t->command;
    for (char **v = t->env; *v && nf < EXEC_MSG_MAX_FIELDS; v++)
        f[nf++] = *v;
    char *buf = xmalloc(EXEC_MSG_MAX);
    int len = exec__msg_encode('R', f, nf, buf, EXEC_MSG_MAX);
    int fds[2] = {t->out_fd >= 0 ? t->out_fd : t->err_fd, t->err_fd};
    int rc = len < 0 ? len : exec__msg_send(sb->ctl_fd, buf, (size_t)len, fds, 2, 1);
    free(buf);
    close_fd(&t->out_fd);
    close_fd(&t->err_fd);
    if (rc) { /* the command never ran: refused, and the sandbox is not to be trusted */
        snprintf(sb->why, sizeof(sb->why), "could not hand the task to its sandbox: %s", strerror(-rc));
        sb_broken(sb, "a task could not be handed to it");
        return;
    }
    t->started = true;
    t->stage = S_RUNNING;
    t->res.warm = ++sb->tasks > 1;
    if (t->res.warm)
        e->warm_starts++;
    t->start_ns = uv_hrtime();
    t->deadline_ns = t->start_ns + t->timeout_ms * 1000000u;
    uv_timer_start(&t->timer, on_timeout, t->timeout_ms, 0);
}

/* Runs the task if all is there: its PREP over, its sandbox ready, not suspended or cancelled. */
static void task_start_if_ready(exec_task_t *t)
{
    if (t->stage != S_PREP || !t->prepped || t->suspended || t->cancelled || t->res.refused)
        return;
    sbox_t *sb = t->sb;
    if (!sb || sb->state != SB_READY || sb->task != t)
        return;
    send_run(t);
}

/* The slot's old sandbox is gone: t gets one of its own. */
static void new_box_for(exec_task_t *t)
{
    exec_t *e = t->e;
    sbox_t *sb = sb_new(e, t);
    if (uv_queue_work(e->loop, &sb->work, sb_prep_work, sb_prep_done) != 0)
        sb_prep_done(&sb->work, UV_ECANCELED);
}

/* The checkpoint's copy (restore_checkpoint): each file of the peer's directory under
 * EXEC_CHECKPOINT_DIR of the task's upper layer, which only root has written to so far. */
typedef struct restore {
    int ufd;
    uid_t uid;
    gid_t gid;
} restore_t;

/* Makes each directory of rel (relative to ufd) that is missing, the task's own. */
static int restore_mkdirs(const restore_t *k, const char *rel)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s", rel);
    if (n < 0 || (size_t)n >= sizeof(path))
        return -ENAMETOOLONG;
    for (char *p = path;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        struct stat st;
        if (mkdirat(k->ufd, path, 0700) == 0) {
            if (fchownat(k->ufd, path, k->uid, k->gid, AT_SYMLINK_NOFOLLOW) != 0)
                return -errno;
        } else if (errno != EEXIST || fstatat(k->ufd, path, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
                   !S_ISDIR(st.st_mode)) {
            return errno == EEXIST ? -ENOTDIR : -errno;
        }
        *p = c;
        if (!c)
            return 0;
    }
}

static int restore_entry(void *arg, int dirfd, const char *name, const char *rel, const struct stat *st)
{
    const restore_t *k = arg;
    if (!S_ISREG(st->st_mode))
        return 0; /* the peer made the directory: nothing else is in it */
    char dir[PATH_MAX], to[PATH_MAX];
    int n = snprintf(dir, sizeof(dir), "%s%s%s", EXEC_CHECKPOINT_DIR, *rel ? "/" : "", rel);
    int m = snprintf(to, sizeof(to), "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof(dir) || m < 0 || (size_t)m >= sizeof(to))
        return -ENAMETOOLONG;
    int rc = restore_mkdirs(k, dir);
    if (rc)
        return rc;
    int in = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0)
        return -errno;
    /* An input of that name (a metacopy entry of the skeleton) is replaced: the task's own state. */
    unlinkat(k->ufd, to, 0);
    int out = openat(k->ufd, to, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                     (st->st_mode & 0111) ? 0755 : 0644);
    if (out < 0) {
        rc = -errno;
        close(in);
        return rc;
    }
    char buf[65536];
    for (;;) {
        ssize_t got = read(in, buf, sizeof(buf));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            rc = got < 0 ? -errno : 0;
            break;
        }
        for (ssize_t off = 0; off < got && !rc;) {
            ssize_t put = write(out, buf + off, (size_t)(got - off));
            if (put < 0 && errno != EINTR)
                rc = -errno;
            off += put > 0 ? put : 0;
        }
        if (rc)
            break;
    }
    if (!rc && fchown(out, k->uid, k->gid) != 0)
        rc = -errno;
    close(in);
    if (close(out) != 0 && !rc)
        rc = -EIO;
    return rc;
}

/* Copies the checkpoint dir src into upper/EXEC_CHECKPOINT_DIR (made even if src is empty). */
static int restore_checkpoint(int ufd, const char *src, uid_t uid, gid_t gid)
{
    restore_t k = {.ufd = ufd, .uid = uid, .gid = gid};
    int rc = restore_mkdirs(&k, EXEC_CHECKPOINT_DIR);
    int fd = rc ? -1 : open(src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (!rc && fd < 0)
        rc = -errno;
    if (!rc)
        rc = files_walk(fd, PATH_MAX / 2, 0, restore_entry, NULL, &k);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* The task's PREP, in the thread pool: touches only t's copies and the disk. */
static void prep_work(uv_work_t *w)
{
    exec_task_t *t = w->data;
    struct stat st;
    char eb[128]; /* strerror's buffer is not ours to share with the loop thread */
    if (t->res.refused)
        return;
    if (t->run_dir) { /* its quota holds everything of the run: /task, overlayfs's work dir, stdout, stderr */
        int rc = t->e->quota.on ? exec__quota_make(&t->e->quota, t->run_dir, t->disk_bytes, &t->subvol)
                                : (mkdir(t->run_dir, 0755) == 0 ? 0 : -errno);
        if (rc) {
            refuse(t, "cannot make the task's directory %s%s: %s", t->run_dir,
                   t->e->quota.on ? " with its disk limit" : "", strerror_r(-rc, eb, sizeof(eb)));
            refuse_disk(t, rc);
            /* Read-only or failing: the btrfs aborted a write (its image's disk filled up under it,
             * exec/quota.c): nothing will run on it any more until it is made anew. */
            if (t->e->quota.on && (rc == -EROFS || rc == -EIO) &&
                !atomic_flag_test_and_set(&t->e->work_failed_claim)) {
                snprintf(t->e->work_failed_why, sizeof(t->e->work_failed_why), "%s: %s", t->e->quota.dir,
                         strerror_r(-rc, eb, sizeof(eb)));
                atomic_store(&t->e->work_failed, true);
            }
            return;
        }
    }
    int mrc = 0; /* why a directory is not there: a full disk, say */
    if (mkdir(t->task_dir, 0700) == 0 || errno == EEXIST) { /* made here, off the caller's loop */
        if (mkdir(t->scratch_dir, 0700) != 0 && errno != EEXIST)
            mrc = -errno;
    } else {
        mrc = -errno;
    }
    errno = 0;
    if (lstat(t->task_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        refuse(t, "task directory %s: %s", t->task_dir,
               mrc ? strerror_r(-mrc, eb, sizeof(eb)) : errno ? strerror_r(errno, eb, sizeof(eb)) : "not a directory");
        refuse_disk(t, mrc);
        return;
    }
    errno = 0;
    if (lstat(t->scratch_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        refuse(t, "scratch directory %s: %s", t->scratch_dir,
               mrc ? strerror_r(-mrc, eb, sizeof(eb)) : errno ? strerror_r(errno, eb, sizeof(eb)) : "not a directory");
        refuse_disk(t, mrc);
        return;
    }
    /* The skeleton of /task's upper layer, from the job's manifest (docs/sandbox.md): here rather
     * than by the keeper walking the mount, which would cost round trips through our own loop. */
    if (t->skel) {
        int ufd = open(t->task_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int rc = ufd < 0 ? -errno : 0;
        size_t i = 0;
        for (; !rc && i < t->n_skel; i += rc ? 0 : 1) {
            const exec_entry_t *en = &t->skel[i];
            size_t pl = strlen(en->path);
            if (!pl || en->path[0] == '/' || !strcmp(en->path, "..") || !strncmp(en->path, "../", 3) ||
                strstr(en->path, "/../") || (pl >= 3 && !strcmp(en->path + pl - 3, "/.."))) {
                rc = -EINVAL;
                break;
            }
            rc = exec__mirror_entry(ufd, en->path, en->dir, (mode_t)en->mode, en->size, t->uid, t->gid, true);
        }
        if (ufd >= 0)
            close(ufd);
        if (rc) {
            refuse(t, "preparing the task directory (%s): %s", ufd >= 0 && i < t->n_skel ? t->skel[i].path : ".",
                   strerror_r(-rc, eb, sizeof(eb)));
            refuse_disk(t, rc);
            return;
        }
    }
    if (t->ckpt_dir) {
        int ufd = open(t->task_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int rc = ufd < 0 ? -errno : restore_checkpoint(ufd, t->ckpt_dir, t->uid, t->gid);
        if (ufd >= 0)
            close(ufd);
        if (rc) { /* the task starts from the beginning, never fails for it */
            log_warn("exec: task %u of %s starts without its checkpoint: restoring it from %s: %s", t->task_index,
                     t->job_id, t->ckpt_dir, strerror_r(-rc, eb, sizeof(eb)));
            char *half = xasprintf("%s/%s", t->task_dir, EXEC_CHECKPOINT_DIR);
            files_rm_rf(half);
            free(half);
        }
    }
    /* The task runs unprivileged: /task's upper layer must be its own to write. Given only now,
     * after root has built the skeleton in it, so nothing of the slot's uid is in it meanwhile. */
    if (lchown(t->task_dir, t->uid, t->gid) != 0) {
        refuse(t, "cannot give the task directory to uid %u: %s", (unsigned)t->uid, strerror_r(errno, eb, sizeof(eb)));
        return;
    }
    int flags = O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW;
    t->err_fd = open(t->stderr_path, flags | O_WRONLY, 0600);
    if (t->err_fd < 0) {
        int erc = -errno;
        refuse(t, "stderr file %s: %s", t->stderr_path, strerror_r(-erc, eb, sizeof(eb)));
        refuse_disk(t, erc);
        return;
    }
    if (strcmp(t->stdout_path, t->stderr_path) != 0) {
        t->out_fd = open(t->stdout_path, flags | O_WRONLY, 0600);
        if (t->out_fd < 0) {
            int orc = -errno;
            refuse(t, "stdout file %s: %s", t->stdout_path, strerror_r(-orc, eb, sizeof(eb)));
            refuse_disk(t, orc);
            return;
        }
    }
}

/* Back on the loop: the task runs once its sandbox is ready, or it ends here, with the reason. */
static void prep_done(uv_work_t *w, int status)
{
    exec_task_t *t = w->data;
    if (status == UV_ECANCELED || (t->cancelled && !t->res.refused)) {
        t->res.cancelled = true;
        t->res.exit_code = -1;
        snprintf(t->res.reason, sizeof(t->res.reason), "cancelled before it started");
        detach(t);
        finish_now(t);
        return;
    }
    if (!t->res.refused && t->box_lost)
        refuse(t, "%s", t->lost_why);
    if (t->res.refused) {
        log_info("exec: task refused: %s", t->res.reason);
        detach(t);
        finish_now(t);
        return;
    }
    t->prepped = true;
    task_start_if_ready(t);
}

int exec_task_spawn(exec_t *e, const exec_spec_t *spec, exec_done_cb cb, void *arg, exec_task_t **out)
{
    if (out)
        *out = NULL;
    if (!e || !spec || !cb)
        return -EINVAL;
    if (e->closing)
        return -ECANCELED;
    exec_task_t *t = xcalloc(1, sizeof(*t));
    t->e = e;
    t->cb = cb;
    t->arg = arg;
    t->stage = S_PREP;
    t->out_fd = t->err_fd = -1;
    t->res.exit_code = -1;
    t->work.data = t;
    t->timer.data = t;
    uv_timer_init(e->loop, &t->timer);
    t->open_handles = 1;
    t->next = e->tasks;
    if (e->tasks)
        e->tasks->prev = t;
    e->tasks = t;

    char why[EXEC_MAX_REASON];
    const char *missing = exec__cg_missing(&e->cg);
    sbox_t *old = NULL;
    if (exec__check_spec(&e->opts, spec, why, sizeof(why)) != 0) {
        refuse(t, "%s", why);
    } else if (missing) {
        refuse(t, "this peer cannot hold the task's memory and process limits for the whole task: %s", missing);
    } else if (spec->network && !e->opts.allow_network) {
        refuse(t, "job asks for network; this peer does not allow it");
    } else if (spec->run_dir && (e->renewing || atomic_load(&e->work_failed))) {
        refuse(t, "the task directories' filesystem failed (%s): it is made anew once no task runs here",
               e->renewing ? "being made anew" : e->work_failed_why);
        t->res.disk_errno = -EROFS;
    } else if (spec->run_dir && e->quota_why[0]) {
        refuse(t, "this peer cannot hold the task's disk limit for the whole task: %s (its volunteer can start it "
               "with --no-disk-quota to bound each file only)", e->quota_why);
    } else if ((old = e->slot_box[spec->slot]) != NULL && (old->successor || (old->task && old->task != t))) {
        refuse(t, "slot %u is busy with another task", spec->slot);
    } else {
        t->slot = spec->slot;
        t->job_id = xstrdup(spec->job_id);
        t->job_dir = xstrdup(spec->job_dir);
        t->run_dir = spec->run_dir ? xstrdup(spec->run_dir) : NULL;
        t->task_dir = xstrdup(spec->task_dir);
        t->scratch_dir = xstrdup(spec->scratch_dir);
        t->ckpt_dir = spec->checkpoint_dir ? xstrdup(spec->checkpoint_dir) : NULL;
        t->command = xstrdup(spec->command);
        if (spec->skeleton) {
            t->skel = xcalloc(spec->n_skeleton ? spec->n_skeleton : 1, sizeof(*t->skel));
            for (size_t i = 0; i < spec->n_skeleton; i++) {
                t->skel[i] = spec->skeleton[i];
                t->skel[i].path = xstrdup(spec->skeleton[i].path);
            }
            t->n_skel = spec->n_skeleton;
        }
        t->stdout_path = xstrdup(spec->stdout_path);
        t->stderr_path = xstrdup(spec->stderr_path);
        t->uid = e->opts.uid_base + spec->slot;
        t->gid = e->opts.gid_base + spec->slot;
        t->timeout_ms = spec->timeout_ms;
        t->grace_ms = spec->grace_ms ? spec->grace_ms : EXEC_DEFAULT_GRACE_MS;
        t->memory_bytes = spec->memory_bytes;
        t->disk_bytes = spec->disk_bytes;
        t->processes = spec->processes;
        t->network = spec->network && e->opts.allow_network;
        t->task_index = spec->task_index;
        /* Both were just checked, so they cannot fail. */
        if (exec_build_argv(&e->opts, spec, &t->box_argv) != 0 || exec_build_env(spec, &t->env) != 0)
            refuse(t, "internal error building the sandbox");
    }
    if (!t->res.refused) {
        if (old && !old->task && old->state != SB_DEAD && !old->closing && !old->broken && !old->oom_hit &&
            !old->killed && sb_fits(old, spec, t->network)) {
            old->task = t; /* warm: the slot's sandbox ran a task of this job, and waits for the next */
            t->sb = old;
            uv_timer_stop(&old->timer);
        } else if (old) {
            old->successor = t; /* the slot's sandbox ends first: a slot is one uid */
            sb_close(old);
        } else {
            new_box_for(t);
        }
    }
    /* Even a refusal goes through the pool, so that the callback comes later. */
    uv_queue_work(e->loop, &t->work, prep_work, prep_done);
    if (out)
        *out = t;
    return 0;
}

bool exec_slot_warm(const exec_t *e, unsigned slot, const char *job_id)
{
    if (!e || slot >= e->opts.slots || !job_id)
        return false;
    const sbox_t *sb = e->slot_box[slot];
    return sb && !sb->task && !sb->successor && sb->state != SB_DEAD && !sb->closing && !sb->broken &&
           !sb->oom_hit && !sb->killed && !strcmp(sb->job_id, job_id);
}

const char *exec_disk_quota_missing(const exec_t *e) { return e && e->quota_why[0] ? e->quota_why : NULL; }

bool exec_work_failed(const exec_t *e, const char **why)
{
    if (!e || (!atomic_load(&e->work_failed) && !e->renewing))
        return false;
    if (why)
        *why = e->renewing ? "being made anew" : e->work_failed_why;
    return true;
}

/* Thread pool: the old btrfs goes (lazily: a closing sandbox may still hold it), a new one comes. */
static void renew_work(uv_work_t *w)
{
    exec_t *e = w->data;
    exec__quota_close(&e->quota); /* (nothing, if the last renewal failed: it left nothing mounted) */
    e->renew_why[0] = '\0';
    e->renew_rc = exec__quota_open(&e->quota, e->work_dir, e->work_size, e->renew_why, sizeof(e->renew_why));
}

static void renew_done(uv_work_t *w, int status)
{
    exec_t *e = w->data;
    e->renewing = false;
    int rc = status ? status : e->renew_rc;
    if (!rc) {
        atomic_store(&e->work_failed, false);
        atomic_flag_clear(&e->work_failed_claim);
        log_info("exec: the task directories' filesystem is made anew on %s", e->work_dir);
    } else { /* still failed: the caller tries again later (the disk may be full still) */
        snprintf(e->work_failed_why, sizeof(e->work_failed_why), "%s", e->renew_why[0] ? e->renew_why : strerror(-rc));
        log_warn("exec: the task directories' filesystem could not be made anew: %s", e->work_failed_why);
    }
    void (*cb)(void *, int, const char *) = e->renewed;
    e->renewed = NULL;
    if (cb)
        cb(e->renewed_arg, rc, rc ? e->work_failed_why : NULL);
    maybe_free_exec(e);
}

int exec_work_renew(exec_t *e, void (*cb)(void *arg, int rc, const char *why), void *arg)
{
    if (!e || e->closing || !atomic_load(&e->work_failed) || !e->work_dir)
        return -EINVAL;
    if (e->renewing || e->tasks)
        return -EBUSY;
    for (sbox_t *sb = e->boxes; sb; sb = sb->next) /* idle sandboxes hold directories of the old one */
        if (!sb->task)
            sb_close(sb);
    e->renewing = true;
    e->renewed = cb;
    e->renewed_arg = arg;
    e->renew_work.data = e;
    uv_queue_work(e->loop, &e->renew_work, renew_work, renew_done);
    return 0;
}

void exec_forget_job(exec_t *e, const char *job_id)
{
    for (sbox_t *sb = e ? e->boxes : NULL; sb; sb = sb->next)
        if (!sb->task && !strcmp(sb->job_id, job_id))
            sb_close(sb);
}

bool exec_slot_empty(const exec_t *e, unsigned slot)
{
    return e && slot < e->opts.slots && !e->slot_box[slot];
}

void exec_counts(const exec_t *e, uint64_t *warm, uint64_t *cold, unsigned *live)
{
    *warm = e ? e->warm_starts : 0;
    *cold = e ? e->cold_starts : 0;
    *live = 0;
    for (const sbox_t *sb = e ? e->boxes : NULL; sb; sb = sb->next)
        (*live)++;
}

/*
 * Whether pid is the sandbox's `/bin/sh -c COMMAND` itself (a child of the agent with exactly that
 * command line): it gets no SIGTERM, because its death would end the task at once (the agent ends
 * every process of the task when it does) before the command had its grace; it exits when the
 * command does. A task's own process made to look like it only goes without the notice.
 */
static bool is_wrapper(const char *cmd, pid_t pid, pid_t init)
{
    char path[64], buf[EXEC_MAX_COMMAND + 64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, 512);
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')'); /* "pid (comm) state ppid ..." */
    long ppid = -1;
    if (!rp || sscanf(rp + 1, " %*c %ld", &ppid) != 1 || ppid != (long)init)
        return false;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));
    if (fd >= 0)
        close(fd);
    size_t cl = strlen(cmd);
    static const char pre[] = "/bin/sh\0-c\0";
    return n == (ssize_t)(sizeof(pre) - 1 + cl + 1) && !memcmp(buf, pre, sizeof(pre) - 1) &&
           !memcmp(buf + sizeof(pre) - 1, cmd, cl + 1);
}

/* term_sandbox's work: which processes get SIGTERM, and the signals. Everything it reads is copied
 * here on the loop first. */
typedef struct term {
    uv_work_t req;
    exec_task_t *t;
    const exec_cg_t *cg;
    char cg_name[32];
    char *cmd;
    pid_t keeper, monitor, init;
    int sent;
} term_t;

/* Thread pool. /proc/<pid>/stat of a task's process can block (it waits for a lock that process
 * may hold while it waits on our own mount), so this never runs on the loop. */
static void term_work(uv_work_t *req)
{
    term_t *w = req->data;
    pid_t pids[4096];
    int np = exec__cg_task_pids(w->cg, w->cg_name, pids, 4096);
    for (int i = 0; i < np; i++) {
        if (pids[i] == w->keeper || pids[i] == w->monitor || pids[i] == w->init)
            continue;
        /* The process by a pidfd, then checked to be in the sandbox's cgroup still: a pid that ended
         * and was reused since the listing is never signalled. */
        int pfd = pidfd_open(pids[i], 0);
        if (pfd < 0)
            continue;
        char path[64], cg[1024];
        snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pids[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd < 0 ? -1 : read(fd, cg, sizeof(cg) - 1);
        if (fd >= 0)
            close(fd);
        cg[n > 0 ? n : 0] = '\0';
        char want[48];
        snprintf(want, sizeof(want), "/%s\n", w->cg_name);
        if (strstr(cg, want) && !is_wrapper(w->cmd, pids[i], w->init) && pidfd_send_signal(pfd, SIGTERM, NULL, 0) == 0)
            w->sent++;
        close(pfd);
    }
}

static void term_done(uv_work_t *req, int status)
{
    term_t *w = req->data;
    exec_task_t *t = w->t;
    int sent = status ? 0 : w->sent;
    free(w->cmd);
    free(w);
    t->term_busy = false;
    if (t->finish_after_term) { /* it ended meanwhile */
        t->finish_after_term = false;
        if (t->box_lost) {
            if (t->res.refused && !t->cancelled)
                log_info("exec: task refused: %s", t->res.reason);
            finish_now(t);
        } else {
            task_end(t);
        }
        return;
    }
    if (t->stage != S_RUNNING || !t->sb || t->sb->killed)
        return;
    if (sent <= 0)
        sb_kill(t->sb); /* nothing to give notice to */
}

static void on_grace_over(uv_timer_t *timer)
{
    exec_task_t *t = timer->data;
    if (t->stage == S_RUNNING && t->sb)
        sb_kill(t->sb);
}

/*
 * A stop with notice (docs/job-format.md, "Stopping with notice"): SIGTERM to every process of the
 * task but the sandbox's own (the keeper, bwrap's monitor and the agent, whose deaths would end it
 * at once) and its /bin/sh -c wrapper, so that it can save its work; the sandbox is killed once
 * grace_ms pass, if the task has not ended by then. With nothing to signal, or no grace, at once.
 * Which processes, and the signals, in the thread pool (term_work).
 */
static void term_sandbox(exec_task_t *t)
{
    sbox_t *sb = t->sb;
    if (t->stage != S_RUNNING || !sb || sb->killed || t->terming)
        return;
    if (t->suspended)
        exec_task_resume(t); /* a frozen process takes no signal */
    pid_t init = status_child_pid(sb);
    if (!t->grace_ms || init <= 0) {
        sb_kill(sb);
        return;
    }
    t->terming = true;
    uv_timer_start(&t->timer, on_grace_over, t->grace_ms, 0); /* from now, whatever term_work takes */
    term_t *w = xcalloc(1, sizeof(*w));
    w->req.data = w;
    w->t = t;
    w->cg = &t->e->cg;
    snprintf(w->cg_name, sizeof(w->cg_name), "%s", sb->cg_name);
    w->cmd = xstrdup(t->command);
    w->keeper = sb->pid;
    w->monitor = sb->monitor_pid;
    w->init = init;
    t->term_busy = true;
    if (uv_queue_work(t->e->loop, &w->req, term_work, term_done) != 0) {
        t->term_busy = false;
        free(w->cmd);
        free(w);
        sb_kill(sb);
    }
}

static void on_timeout(uv_timer_t *timer)
{
    exec_task_t *t = timer->data;
    if (t->stage != S_RUNNING || t->cancelled)
        return;
    t->timed_out = true;
    term_sandbox(t);
}

int exec_task_suspend(exec_task_t *t)
{
    if (!t || t->stage == S_DONE)
        return -EINVAL;
    sbox_t *sb = t->sb;
    if (t->suspended || t->cancelled || t->timed_out || t->terming || t->stage == S_ENDING ||
        (sb && (sb->killed || sb->oom_hit || sb->state == SB_DEAD)))
        return 0; /* being stopped, or ending: a freeze would only hold up its end */
    if (t->stage == S_RUNNING) {
        int rc = freeze(sb, true);
        if (rc)
            return rc;
        sb->frozen = true;
        uint64_t now = uv_hrtime();
        t->left_ns = t->deadline_ns > now ? t->deadline_ns - now : 0;
        t->suspended_at = now;
        uv_timer_stop(&t->timer); /* only the time-out runs on it now (the flags above are clear) */
    }
    t->suspended = true; /* not started yet: it starts only once resumed */
    return 0;
}

int exec_task_resume(exec_task_t *t)
{
    if (!t || t->stage == S_DONE)
        return -EINVAL;
    if (!t->suspended)
        return 0;
    sbox_t *sb = t->sb;
    if (t->stage == S_PREP) {
        t->suspended = false;
        task_start_if_ready(t); /* suspended before it started */
        return 0;
    }
    if (sb && sb->frozen) {
        int rc = freeze(sb, false);
        if (rc)
            return rc; /* still frozen: it stays suspended, and a kill tries the thaw again */
        sb->frozen = false;
        t->suspended_ns += uv_hrtime() - t->suspended_at;
        if (t->stage == S_RUNNING && !sb->killed && !t->cancelled && !t->timed_out && !sb->oom_hit) {
            t->deadline_ns = uv_hrtime() + t->left_ns;
            uv_timer_start(&t->timer, on_timeout, (t->left_ns + 999999u) / 1000000u, 0);
        }
    }
    t->suspended = false;
    return 0;
}

bool exec_task_suspended(const exec_task_t *t) { return t && t->suspended; }

char *exec_tasks_cpu_file(const exec_t *e) { return e ? exec__cg_cpu_file(&e->cg) : NULL; }

static void on_cancelled_before_start(uv_timer_t *timer) { finish_now(timer->data); }

static void task_kill(exec_task_t *t)
{
    if (t->stage == S_PREP) {
        if (t->cancelled)
            return;
        t->cancelled = true;
        if (!t->prepped) {
            uv_cancel((uv_req_t *)&t->work); /* fails harmlessly if the work is already running */
            return; /* prep_done ends it */
        }
        t->res.cancelled = true;
        t->res.exit_code = -1;
        snprintf(t->res.reason, sizeof(t->res.reason), "cancelled before it started");
        detach(t);
        /* never from inside the call that cancels (the caller may be walking its tasks) */
        uv_timer_start(&t->timer, on_cancelled_before_start, 0, 0);
    } else if (t->stage == S_RUNNING && !t->timed_out) {
        t->cancelled = true;
        sb_kill(t->sb);
    } else if (t->stage == S_RUNNING) {
        sb_kill(t->sb); /* timed out, in its grace: no more of it */
    }
}

bool exec_is_unchanged_input(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool meta = fgetxattr(fd, EXEC_METACOPY_XATTR, NULL, 0) >= 0;
    close(fd);
    return meta;
}

void exec_task_cancel(exec_task_t *t)
{
    if (t && t->stage != S_DONE)
        task_kill(t);
}

void exec_task_stop(exec_task_t *t)
{
    if (!t || t->stage == S_DONE)
        return;
    if (t->stage != S_RUNNING || t->timed_out || t->cancelled) {
        task_kill(t);
        return;
    }
    t->cancelled = true;
    term_sandbox(t);
}

void exec_close(exec_t *e, void (*cb)(void *arg), void *arg)
{
    if (!e || e->closing)
        return;
    e->closing = true;
    e->close_cb = cb;
    e->close_arg = arg;
    for (exec_task_t *t = e->tasks, *next; t; t = next) {
        next = t->next;
        if (t->stage != S_DONE)
            task_kill(t);
    }
    for (sbox_t *sb = e->boxes; sb; sb = sb->next)
        if (!sb->task)
            sb_close(sb);
    /* Nothing in flight: nothing to wait for, and no handle of ours to defer with. */
    maybe_free_exec(e);
}
