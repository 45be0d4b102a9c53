/*
 * exec.c: runs one task at a time per slot in the bubblewrap sandbox, on the loop, fail closed.
 *
 * A task goes through three stages. PREP runs in the thread pool (uv_queue_work) because it touches
 * the disk, and because the job directory lives inside this process's own FUSE mount: a stat() of
 * it from the loop thread would wait for a reply that only the loop thread can give. It checks that
 * bwrap, the job directory and the task directory are there, gives the task directory to the
 * slot's uid, and opens the stdout/stderr files and a memfd for bwrap's --json-status-fd. Then it
 * starts `preon limit` with posix_spawn (which drops to the slot's uid and execs bwrap), still in
 * the thread pool; the limiter waits for a byte from the loop (--go-fd) before it does anything,
 * so the loop never waits for a child to be scheduled (uv_spawn would, for its exec) and a task
 * cancelled meanwhile never runs. RUNNING watches the child's pidfd with a uv_poll
 * (waitid(P_PIDFD) when it is readable) and a uv_timer for the time-out. DONE fires the callback
 * once, then closes the handles; the task is freed when the last close callback has run (libuv:
 * memory is released only in close_cb).
 *
 * Fail closed: anything that goes wrong before the command is exec'd inside the sandbox makes the
 * task `refused`, with a reason, and the command never runs. The authoritative signal is bwrap's
 * JSON status: it writes {"exit-code": N} only if the sandbox was built and the command exec'd, so
 * an exit without it means bwrap (or the limiter) gave up, and its stderr line is the reason.
 *
 * The callback never fires inside exec_task_spawn: even an immediate refusal goes through the
 * thread pool's after-work callback.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "core/files.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "exec/exec.h"
#include "exec/internal.h"

/* How much of the stderr file is read back to explain a sandbox that was not built. */
#define EXEC_STDERR_TAIL 400
/* How soon a kill that arrives while bwrap is still cloning the sandbox is tried again. */
#define EXEC_KILL_RETRY_MS 2

enum stage { S_PREP, S_RUNNING, S_REAPING, S_DONE };

struct exec_task {
    exec_t *e;
    exec_task_t *prev, *next;
    exec_done_cb cb;
    void *arg;
    enum stage stage;
    uv_work_t work;
    uv_timer_t timer;
    uv_poll_t proc;   /* on proc_fd, a pidfd of the limiter (then bwrap's monitor): its exit */
    bool proc_inited;
    pid_t pid;        /* the limiter's, once PREP started it; 0 before */
    int proc_fd;
    int go_fd;       /* the limiter waits for a byte here before it starts; closed unwritten: it exits */
    bool started;    /* the go byte was sent */
    int go_errno;    /* writing it failed: why (the task is refused, not cancelled) */
    atomic_bool stop_asked; /* cancelled during PREP: set by the loop, read by PREP before the fork */
    uv_poll_t oom;    /* v1: on oom_fd, the kernel's word that the task is out of memory */
    bool oom_inited, oom_hit;
    int oom_fd;
    char cg_name[32];          /* the task's cgroup, below the peer's: "t<slot>-<seq>" */
    char *cg_dirs[EXEC_CG_N];  /* its directories, one per hierarchy; the limiter joins each */
    int n_cg;
    bool cg_made;              /* PREP made it: it is removed before the callback */
    exec_cg_stats_t cg_stats;
    uint64_t memory_bytes, disk_bytes;
    uint32_t processes;
    uv_poll_t reap;   /* on a pidfd of the sandbox's pid 1, once bwrap's monitor is gone */
    bool reap_inited;
    pid_t child_pid;
    int pidfd;
    int open_handles;
    bool cancelled, timed_out, killed;
    bool suspended;       /* exec_task_suspend: frozen (if it had started); its time-out paused */
    bool frozen;          /* the freezer holds it now (the last freezer write was FROZEN) */
    bool terming;         /* SIGTERM sent; SIGKILL when the grace is over (term_sandbox) */
    bool term_busy;       /* the SIGTERMs are being sent, in the thread pool */
    bool finish_after_term; /* the task ended meanwhile: finish once they are */
    uint64_t grace_ms;
    uint64_t deadline_ns; /* when the time-out fires (uv_hrtime), while it runs */
    uint64_t left_ns;     /* suspended: what was left of the time-out */
    uint64_t suspended_ns, suspended_at; /* time spent frozen, and since when (not part of elapsed) */
    /* Copies of the spec, read by the pool thread in PREP. */
    char *bwrap, *job_dir, *task_dir, *scratch_dir, *stdout_path, *stderr_path, *ckpt_dir;
    exec_entry_t *skel; /* owned copies (paths xstrdup'd), or NULL */
    size_t n_skel;
    char **argv, **env;
    uid_t uid;
    gid_t gid;
    uint64_t timeout_ms;
    /* Written by the pool thread; -1 until opened. */
    int out_fd, err_fd, status_fd;
    uint64_t start_ns;
    exec_result_t res;
};

struct exec {
    uv_loop_t *loop;
    exec_opts_t opts; /* bwrap and limiter point at our own copies below */
    char *bwrap, *limiter;
    exec_task_t *tasks;
    exec_cg_t cg;     /* the peer's cgroups (cgroup.c) */
    uint64_t cg_seq;
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
    /* bwrap's monitor exits without reaping the sandbox's pid 1. As a subreaper we inherit it, so
     * we can reap it and know the whole sandbox is gone; otherwise it lingers as a zombie of init,
     * counted against the slot uid's RLIMIT_NPROC. Process-wide, and harmless to set twice. */
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
    free(e->bwrap);
    free(e->limiter);
    free(e);
    if (cb)
        cb(arg);
}

static void thaw_if_frozen(exec_task_t *t);

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void task_free(exec_task_t *t)
{
    exec_t *e = t->e;
    if (t->prev)
        t->prev->next = t->next;
    else
        e->tasks = t->next;
    if (t->next)
        t->next->prev = t->prev;
    close_fd(&t->pidfd);
    close_fd(&t->proc_fd);
    close_fd(&t->go_fd);
    close_fd(&t->oom_fd);
    for (int i = 0; i < t->n_cg; i++)
        free(t->cg_dirs[i]);
    free(t->bwrap);
    free(t->job_dir);
    free(t->task_dir);
    free(t->scratch_dir);
    free(t->ckpt_dir);
    for (size_t i = 0; i < t->n_skel; i++)
        free((char *)t->skel[i].path);
    free(t->skel);
    free(t->stdout_path);
    free(t->stderr_path);
    exec_argv_free(t->argv);
    exec_argv_free(t->env);
    free(t);
    if (e->closing && !e->tasks)
        exec_free(e);
}

static void on_handle_closed(uv_handle_t *h)
{
    exec_task_t *t = h->data;
    if (--t->open_handles == 0)
        task_free(t);
}

/* Fires the callback (once), then releases everything; the task is freed in the close callbacks. */
static void finish_now(exec_task_t *t)
{
    t->stage = S_DONE;
    close_fd(&t->out_fd);
    close_fd(&t->err_fd);
    close_fd(&t->status_fd);
    t->cb(t, &t->res, t->arg);
    uv_close((uv_handle_t *)&t->timer, on_handle_closed);
    if (t->proc_inited)
        uv_close((uv_handle_t *)&t->proc, on_handle_closed);
    if (t->reap_inited)
        uv_close((uv_handle_t *)&t->reap, on_handle_closed);
    if (t->oom_inited)
        uv_close((uv_handle_t *)&t->oom, on_handle_closed);
}

/* Thread pool: what the task's cgroup recorded; then it is emptied and removed. */
static void cg_end_work(uv_work_t *w)
{
    exec_task_t *t = w->data;
    int rc = exec__cg_task_end(&t->e->cg, t->cg_name, &t->cg_stats);
    if (rc)
        log_warn("exec: the cgroup of task %s stays: %s", t->cg_name, strerror(-rc));
}

/* The limit that stopped the task, in its result (docs/sandbox.md, "Limits"). */
static void name_the_limit(exec_task_t *t)
{
    exec_result_t *r = &t->res;
    const exec_cg_stats_t *st = &t->cg_stats;
    r->memory_peak = st->memory_peak;
    r->forks_refused = st->pids_refused;
    if (r->refused || r->cancelled)
        return;
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
    } else if (st->pids_refused && r->exit_code != 0) {
        snprintf(r->limit, sizeof(r->limit), "processes");
    }
    if (st->pids_refused && r->exit_code != 0) {
        size_t l = strlen(r->reason);
        snprintf(r->reason + l, sizeof(r->reason) - l, "%sthe processes limit (processes = %u) refused %" PRIu64
                 " fork%s", l ? "; " : "", (unsigned)t->processes, st->pids_refused, st->pids_refused == 1 ? "" : "s");
    }
}

static void cg_end_done(uv_work_t *w, int status)
{
    exec_task_t *t = w->data;
    if (status == UV_ECANCELED)
        cg_end_work(w); /* never cancelled by us; but the cgroup must go either way */
    t->cg_made = false;
    name_the_limit(t);
    finish_now(t);
}

/* Every end of a task comes here: its cgroup is read and removed in the thread pool first. */
static void finish(exec_task_t *t)
{
    if (t->term_busy) { /* term_work still reads the task: finish when it is back */
        t->finish_after_term = true;
        return;
    }
    if (t->oom_inited)
        uv_poll_stop(&t->oom); /* the cgroup's removal signals the eventfd too */
    if (!t->cg_made || uv_queue_work(t->e->loop, &t->work, cg_end_work, cg_end_done) != 0) {
        if (t->cg_made)
            cg_end_done(&t->work, UV_ECANCELED);
        else
            finish_now(t);
    }
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

/* bwrap runs as the slot's uid with no supplementary groups (uv_spawn calls setgroups(0, NULL)). */
static bool executable_by(const struct stat *st, uid_t uid, gid_t gid)
{
    if (st->st_uid == uid)
        return st->st_mode & S_IXUSR;
    if (st->st_gid == gid)
        return st->st_mode & S_IXGRP;
    return st->st_mode & S_IXOTH;
}

/* fd, or a close-on-exec copy of it at EXEC_GO_FD + 1 or above (*tmp records it to close later). */
static int high_fd(int fd, int *tmp)
{
    *tmp = -1;
    if (fd > EXEC_GO_FD)
        return fd;
    *tmp = fcntl(fd, F_DUPFD_CLOEXEC, EXEC_GO_FD + 1);
    return *tmp;
}

/*
 * End of PREP (thread pool): starts the limiter with posix_spawn (a vfork-style clone: no copy of
 * our page tables, no fork handlers, the exec's error comes back as the return value) and its
 * first option `--go-fd 4`: it waits for prep_done's byte on fd 4 before it touches anything (EOF:
 * cancelled meanwhile, it exits 126). So the loop never waits for a child to be scheduled (uv_spawn
 * blocks until the child has exec'd: on a machine busy with sandboxes, hundreds of milliseconds),
 * and a task cancelled before prep_done still never runs its command. The child gets /dev/null,
 * stdout, stderr, bwrap's status fd and the go pipe as fds 0-4, default signal handling and an
 * empty signal mask.
 */
static void spawn_child(exec_task_t *t)
{
    char eb[128];
    if (atomic_load(&t->stop_asked))
        return; /* cancelled: not started at all (prep_done reports it) */
    int gop[2];
    if (pipe2(gop, O_CLOEXEC) != 0) {
        refuse(t, "cannot start %s: pipe: %s", t->argv[0], strerror_r(errno, eb, sizeof(eb)));
        return;
    }
    _Static_assert(EXEC_STATUS_FD == 3 && EXEC_GO_FD == 4, "the child's fds: 0-2, bwrap's status, go");
    int src[5] = {-1, t->out_fd >= 0 ? t->out_fd : t->err_fd, t->err_fd, t->status_fd, gop[0]}, tmp[5];
    bool ok = true;
    for (int i = 1; i < 5; i++) { /* no dup2 below may overwrite a later one's source */
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
    for (int i = 1; i < 5; i++)
        posix_spawn_file_actions_adddup2(&fa, src[i], i); /* the copies are not close-on-exec */
    size_t n = 0;
    while (t->argv[n])
        n++;
    /* limiter "limit" --go-fd 4 [--cgroup DIR]... <the rest> */
    char **argv = xcalloc(n + 3 + 2 * (size_t)t->n_cg, sizeof(char *));
    for (size_t i = 0, k = 0; i < n; i++) {
        argv[k++] = t->argv[i];
        if (i == 1) {
            argv[k++] = "--go-fd";
            argv[k++] = "4";
            for (int g = 0; g < t->n_cg; g++) {
                argv[k++] = "--cgroup";
                argv[k++] = t->cg_dirs[g];
            }
        }
    }
    pid_t pid = 0;
    int rc = ok ? posix_spawn(&pid, t->argv[0], &fa, &at, argv, t->env) : errno;
    free(argv);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    for (int i = 1; i < 5; i++)
        if (tmp[i] >= 0)
            close(tmp[i]);
    close(gop[0]);
    if (rc) {
        close(gop[1]);
        refuse(t, "cannot start %s as uid %u: %s", t->argv[0], (unsigned)t->uid, uv_strerror(-rc));
        return;
    }
    t->proc_fd = pidfd_open(pid, 0); /* our unreaped child: its pid cannot have been reused */
    if (t->proc_fd < 0) {
        int err = errno;
        close(gop[1]); /* it exits having done nothing */
        waitpid(pid, NULL, 0);
        refuse(t, "cannot watch %s: pidfd_open: %s", t->argv[0], strerror_r(err, eb, sizeof(eb)));
        return;
    }
    t->pid = pid;
    t->go_fd = gop[1];
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

/* PREP, in the thread pool: touches only t's copies and the disk. */
static void prep_work(uv_work_t *w)
{
    exec_task_t *t = w->data;
    struct stat st;
    char eb[128]; /* strerror's buffer is not ours to share with the loop thread */
    if (t->res.refused)
        return;
    if (stat(t->bwrap, &st) != 0) {
        refuse(t, "bwrap %s: %s", t->bwrap, strerror_r(errno, eb, sizeof(eb)));
        return;
    }
    if (!S_ISREG(st.st_mode) || !executable_by(&st, t->uid, t->gid)) {
        refuse(t, "bwrap %s is not a file that uid %u may run", t->bwrap, (unsigned)t->uid);
        return;
    }
    errno = 0;
    if (stat(t->job_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        refuse(t, "job directory %s: %s", t->job_dir,
               errno ? strerror_r(errno, eb, sizeof(eb)) : "not a directory");
        return;
    }
    if (mkdir(t->task_dir, 0700) == 0 || errno == EEXIST) /* made here, off the caller's loop */
        mkdir(t->scratch_dir, 0700);
    errno = 0;
    if (lstat(t->task_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        refuse(t, "task directory %s: %s", t->task_dir,
               errno ? strerror_r(errno, eb, sizeof(eb)) : "not a directory");
        return;
    }
    errno = 0;
    if (lstat(t->scratch_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        refuse(t, "scratch directory %s: %s", t->scratch_dir,
               errno ? strerror_r(errno, eb, sizeof(eb)) : "not a directory");
        return;
    }

    /* The skeleton of /task's upper layer, from the job's manifest (docs/sandbox.md): here rather
     * than by the limiter walking the mount, which would cost round trips through our own loop. */
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
            return;
        }
    }
    if (t->ckpt_dir) {
        int ufd = open(t->task_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int rc = ufd < 0 ? -errno : restore_checkpoint(ufd, t->ckpt_dir, t->uid, t->gid);
        if (ufd >= 0)
            close(ufd);
        if (rc) { /* the task starts from the beginning, never fails for it */
            log_warn("exec: task %s starts without its checkpoint: restoring it from %s: %s", t->cg_name, t->ckpt_dir,
                     strerror_r(-rc, eb, sizeof(eb)));
            char *half = xasprintf("%s/%s", t->task_dir, EXEC_CHECKPOINT_DIR);
            files_rm_rf(half);
            free(half);
        }
    }
    /* The task runs unprivileged: /task's upper layer must be its own to write. Given only now,
     * after root has built the skeleton in it, so nothing of the slot's uid is in it meanwhile. */
    if (lchown(t->task_dir, t->uid, t->gid) != 0) {
        refuse(t, "cannot give the task directory to uid %u: %s", (unsigned)t->uid,
               strerror_r(errno, eb, sizeof(eb)));
        return;
    }
    /* stderr is opened read-write: its last line explains a sandbox that was not built. */
    int flags = O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW;
    t->err_fd = open(t->stderr_path, flags | O_RDWR, 0600);
    if (t->err_fd < 0) {
        refuse(t, "stderr file %s: %s", t->stderr_path, strerror_r(errno, eb, sizeof(eb)));
        return;
    }
    if (strcmp(t->stdout_path, t->stderr_path) != 0) {
        t->out_fd = open(t->stdout_path, flags | O_WRONLY, 0600);
        if (t->out_fd < 0) {
            refuse(t, "stdout file %s: %s", t->stdout_path, strerror_r(errno, eb, sizeof(eb)));
            return;
        }
    }
    t->status_fd = memfd_create("preon-bwrap-status", MFD_CLOEXEC);
    if (t->status_fd < 0) {
        refuse(t, "memfd for the sandbox status: %s", strerror_r(errno, eb, sizeof(eb)));
        return;
    }
    /* The task's cgroup, last: nothing before it can fail and leave it behind unseen (finish
     * removes it, whatever happens after). pids.max counts bwrap's two, as RLIMIT_NPROC does. */
    char why[EXEC_MAX_REASON / 2] = "";
    if (exec__cg_task_make(&t->e->cg, t->cg_name, t->memory_bytes, t->processes + EXEC_NPROC_OVERHEAD,
                           &t->oom_fd, why, sizeof(why)) != 0) {
        refuse(t, "%s", why);
        return;
    }
    t->cg_made = true;
    spawn_child(t); /* a cancellation meanwhile is seen on the loop, which then kills it */
}

/* The last line bwrap or the limiter wrote to stderr, made printable. */
static void stderr_tail(exec_task_t *t, char *out, size_t outlen)
{
    char buf[EXEC_STDERR_TAIL + 1];
    out[0] = '\0';
    struct stat st;
    if (t->err_fd < 0 || fstat(t->err_fd, &st) != 0 || st.st_size <= 0)
        return;
    off_t from = st.st_size > EXEC_STDERR_TAIL ? st.st_size - EXEC_STDERR_TAIL : 0;
    ssize_t n = pread(t->err_fd, buf, EXEC_STDERR_TAIL, from);
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

static void signal_reason(exec_result_t *r, int sig)
{
    const char *abbrev = sigabbrev_np(sig);
    snprintf(r->reason, sizeof(r->reason), "killed by signal %d (SIG%s)", sig, abbrev ? abbrev : "?");
}

static void on_reap(uv_poll_t *p, int status, int events)
{
    exec_task_t *t = p->data;
    pid_t got = waitpid(t->child_pid, NULL, WNOHANG);
    if (got == 0 && status == 0)
        return; /* not yet a zombie */
    if (got < 0 || status < 0)
        log_warn("exec: reaping sandbox pid %d: %s", (int)t->child_pid,
                 got < 0 ? strerror(errno) : uv_strerror(status));
    uv_poll_stop(p);
    finish(t);
}

/*
 * bwrap's monitor has exited. Its pid 1 inside the sandbox (whose exit kills and reaps everything
 * else in the pid namespace) was either reaped by the monitor or re-parented to us, the subreaper.
 * In that case it is killed (nothing of the sandbox may outlive its monitor; a pid 1 that is our
 * unreaped child cannot have had its pid reused) and reaped before the callback fires, so that the
 * callback means "nothing of the task is left running, and /task is no longer being written".
 */
static void reap_then_finish(exec_task_t *t)
{
    if (t->child_pid <= 0 || waitpid(t->child_pid, NULL, WNOHANG) != 0) {
        finish(t); /* no sandbox; or reaped just now; or not our child: the monitor reaped it */
        return;
    }
    t->pidfd = pidfd_open(t->child_pid, 0);
    int rc = t->pidfd < 0 ? -errno : uv_poll_init(t->e->loop, &t->reap, t->pidfd);
    if (rc) {
        log_warn("exec: cannot watch sandbox pid %d (%s); not waiting for it to go", (int)t->child_pid,
                 strerror(-rc));
        finish(t);
        return;
    }
    if (pidfd_send_signal(t->pidfd, SIGKILL, NULL, 0) != 0)
        log_warn("exec: killing sandbox pid %d: %s", (int)t->child_pid, strerror(errno));
    t->stage = S_REAPING;
    t->reap.data = t;
    t->reap_inited = true;
    t->open_handles++;
    uv_poll_start(&t->reap, UV_READABLE, on_reap);
}

static void on_proc_exit(exec_task_t *t, int64_t exit_status, int term_signal)
{
    exec_result_t *r = &t->res;
    uv_timer_stop(&t->timer);
    if (!t->started) { /* cancelled between PREP's spawn and its go, or the go failed: nothing ran */
        if (t->go_errno && !t->cancelled) {
            refuse(t, "could not start the sandbox: its go byte: %s", strerror(t->go_errno));
        } else {
            r->cancelled = true;
            r->exit_code = -1;
            snprintf(r->reason, sizeof(r->reason), "cancelled before it started");
        }
        finish(t);
        return;
    }
    if (t->suspended) { /* it ended while suspended (killed) */
        if (t->frozen)
            t->suspended_ns += uv_hrtime() - t->suspended_at;
        t->suspended = false;
    }
    thaw_if_frozen(t); /* its pid 1 is killed and reaped next: it must be able to die */
    uint64_t ran = uv_hrtime() - t->start_ns;
    r->elapsed_ms = (ran > t->suspended_ns ? ran - t->suspended_ns : 0) / 1000000u; /* not the time it was frozen */
    r->term_signal = term_signal;
    r->exit_code = term_signal ? 128 + term_signal : (int)exit_status;

    char status[EXEC_MAX_STATUS];
    ssize_t n = t->status_fd >= 0 ? pread(t->status_fd, status, sizeof(status), 0) : -1;
    int code = -1;
    int built = n > 0 ? exec__parse_status(status, (size_t)n, &code, &t->child_pid) : -ENOENT;

    if (t->cancelled) {
        r->cancelled = true;
        snprintf(r->reason, sizeof(r->reason), "cancelled");
    } else if (t->timed_out) {
        r->timed_out = true;
        snprintf(r->reason, sizeof(r->reason), "timed out after %.1f s", (double)t->timeout_ms / 1000.0);
    } else if (term_signal) {
        signal_reason(r, term_signal); /* bwrap itself was killed, by someone else */
    } else if (built != 0) {
        char tail[EXEC_MAX_REASON / 2];
        stderr_tail(t, tail, sizeof(tail));
        refuse(t, "the sandbox could not be built: %s", tail[0] ? tail : "no message");
        if (built != -ENOENT)
            log_warn("exec: unreadable bwrap status (%s)", strerror(-built));
    } else if (r->exit_code > 128 && r->exit_code < 128 + NSIG) {
        /* bwrap (like sh) reports a command killed by a signal as 128 + signal. */
        r->term_signal = r->exit_code - 128;
        signal_reason(r, r->term_signal);
    } else if (r->exit_code != 0) {
        snprintf(r->reason, sizeof(r->reason), "exit %d", r->exit_code);
    }
    reap_then_finish(t);
}

/* The limiter's pidfd is readable: it exited (or was killed); reap it. */
static void on_proc_readable(uv_poll_t *p, int status, int events)
{
    exec_task_t *t = p->data;
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    if (waitid(P_PIDFD, (id_t)t->proc_fd, &si, WEXITED | WNOHANG) != 0) {
        log_warn("exec: waiting for pid %d: %s", (int)t->pid, strerror(errno));
        si.si_pid = t->pid;
        si.si_code = CLD_KILLED;
        si.si_status = SIGKILL;
    } else if (si.si_pid == 0) {
        return; /* not yet */
    }
    uv_poll_stop(p);
    bool signalled = si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED;
    on_proc_exit(t, signalled ? 0 : si.si_status, signalled ? si.si_status : 0);
}

/* pid 1 of the sandbox, once bwrap has reported it on the status fd; 0 before. */
static pid_t status_child_pid(exec_task_t *t)
{
    char status[EXEC_MAX_STATUS];
    int code;
    pid_t pid = 0;
    ssize_t n = pread(t->status_fd, status, sizeof(status), 0);
    if (n > 0)
        (void)exec__parse_status(status, (size_t)n, &code, &pid); /* a half-written object: retry */
    return pid;
}

static void kill_sandbox(exec_task_t *t);
static void go(exec_task_t *t);
static void on_timeout(uv_timer_t *timer);

static void on_kill_retry(uv_timer_t *timer) { kill_sandbox(timer->data); }

/*
 * SIGKILL to bwrap's monitor (the limiter exec'd it); --die-with-parent and reap_then_finish take
 * the rest. Never between the monitor's clone() of the sandbox and its report of the sandbox's
 * pid, though: a pid 1 orphaned then is stuck for good (it waits for its parent before asking for
 * --die-with-parent), and we would not know its pid to kill it ourselves. That window lasts a
 * millisecond or two, so the kill is retried on the task's timer until the pid is known or the
 * process exits by itself.
 */
static void kill_sandbox(exec_task_t *t)
{
    if (t->stage != S_RUNNING || t->killed)
        return;
    if (t->suspended) /* frozen, it can neither report its pid nor take a SIGKILL (v1): thaw it first */
        exec_task_resume(t);
    thaw_if_frozen(t); /* a resume whose thaw failed: try again */
    if (status_child_pid(t) <= 0) {
        uv_timer_start(&t->timer, on_kill_retry, EXEC_KILL_RETRY_MS, 0);
        return;
    }
    t->killed = true;
    if (pidfd_send_signal(t->proc_fd, SIGKILL, NULL, 0) != 0 && errno != ESRCH)
        log_warn("exec: killing pid %d: %s", (int)t->pid, strerror(errno));
}

/* The freezer write: one cgroupfs write, which returns before the freezing completes. */
static int freeze(exec_task_t *t, bool frozen)
{
    int rc = exec__cg_task_freeze(&t->e->cg, t->cg_name, frozen);
    if (rc)
        log_warn("exec: cannot %s task %s: %s", frozen ? "suspend" : "resume", t->cg_name, strerror(-rc));
    return rc;
}

/* The freezer undone, if it holds the task: a frozen process cannot die (v1), not even of SIGKILL. */
static void thaw_if_frozen(exec_task_t *t)
{
    if (t->frozen && freeze(t, false) == 0)
        t->frozen = false;
}

int exec_task_suspend(exec_task_t *t)
{
    if (!t || t->stage == S_DONE)
        return -EINVAL;
    if (t->suspended || t->killed || t->cancelled || t->timed_out || t->oom_hit || t->terming)
        return 0; /* being stopped: a freeze would only hold up its end */
    if (t->stage == S_RUNNING && t->started) {
        int rc = freeze(t, true);
        if (rc)
            return rc;
        t->frozen = true;
        uint64_t now = uv_hrtime();
        t->left_ns = t->deadline_ns > now ? t->deadline_ns - now : 0;
        t->suspended_at = now;
        uv_timer_stop(&t->timer); /* only the time-out runs on it now (the flags above are clear) */
    } else if (t->stage != S_PREP && !(t->stage == S_RUNNING && t->go_fd >= 0)) {
        return 0; /* ending (reaped next): nothing to hold */
    }
    t->suspended = true; /* not started yet: it starts only once resumed (prep_done, go) */
    return 0;
}

int exec_task_resume(exec_task_t *t)
{
    if (!t || t->stage == S_DONE)
        return -EINVAL;
    if (!t->suspended)
        return 0;
    if (t->stage == S_RUNNING && !t->started && t->go_fd >= 0) {
        t->suspended = false;
        go(t); /* suspended before it started */
        return 0;
    }
    if (t->frozen) {
        int rc = freeze(t, false);
        if (rc)
            return rc; /* still frozen: it stays suspended, and a kill tries the thaw again */
        t->frozen = false;
        t->suspended_ns += uv_hrtime() - t->suspended_at;
        if (t->stage == S_RUNNING && !t->killed && !t->cancelled && !t->timed_out && !t->oom_hit) {
            t->deadline_ns = uv_hrtime() + t->left_ns;
            uv_timer_start(&t->timer, on_timeout, (t->left_ns + 999999u) / 1000000u, 0);
        }
    }
    t->suspended = false;
    return 0;
}

bool exec_task_suspended(const exec_task_t *t) { return t && t->suspended; }

char *exec_tasks_cpu_file(const exec_t *e) { return e ? exec__cg_cpu_file(&e->cg) : NULL; }

static void on_grace_over(uv_timer_t *timer) { kill_sandbox(timer->data); }

/*
 * Whether pid is the sandbox's `/bin/sh -c COMMAND` itself (a child of bwrap's pid 1 with exactly
 * that command line): it gets no SIGTERM, because its death would end the sandbox at once (bwrap's
 * pid 1 exits with its first child) before the command had its grace; it exits when the command
 * does. A task's own process made to look like it only goes without the notice.
 */
static bool is_wrapper(const exec_task_t *t, pid_t pid, pid_t init)
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
    const char *cmd = NULL;
    for (char **a = t->argv; a && *a; a++)
        cmd = *a; /* the last argument: the command */
    size_t cl = cmd ? strlen(cmd) : 0;
    static const char pre[] = "/bin/sh\0-c\0";
    return cmd && n == (ssize_t)(sizeof(pre) - 1 + cl + 1) && !memcmp(buf, pre, sizeof(pre) - 1) &&
           !memcmp(buf + sizeof(pre) - 1, cmd, cl + 1);
}

/* term_sandbox's work: which processes get SIGTERM, and the signals. */
typedef struct term {
    uv_work_t req;
    exec_task_t *t;
    pid_t init;
    int sent;
} term_t;

/* Thread pool: reads only what never changes while the task runs (its cgroup's name, its argv,
 * its pids). /proc/<pid>/stat of a task's process can block (it waits for a lock that process may
 * hold while it waits on our own mount), so this never runs on the loop. */
static void term_work(uv_work_t *req)
{
    term_t *w = req->data;
    exec_task_t *t = w->t;
    pid_t pids[4096];
    int np = exec__cg_task_pids(&t->e->cg, t->cg_name, pids, 4096);
    for (int i = 0; i < np; i++) {
        if (pids[i] == t->pid || pids[i] == w->init)
            continue;
        /* The process by a pidfd, then checked to be in the task's cgroup still: a pid that ended and
         * was reused since the listing is never signalled. */
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
        snprintf(want, sizeof(want), "/%s\n", t->cg_name);
        if (strstr(cg, want) && !is_wrapper(t, pids[i], w->init) && pidfd_send_signal(pfd, SIGTERM, NULL, 0) == 0)
            w->sent++;
        close(pfd);
    }
}

static void term_done(uv_work_t *req, int status)
{
    term_t *w = req->data;
    exec_task_t *t = w->t;
    int sent = status ? 0 : w->sent;
    free(w);
    t->term_busy = false;
    if (t->finish_after_term) {
        t->finish_after_term = false;
        finish(t);
        return;
    }
    if (t->stage != S_RUNNING || t->killed)
        return;
    if (sent <= 0)
        kill_sandbox(t); /* nothing to give notice to */
}

/*
 * A stop with notice (docs/job-format.md, "Stopping with notice"): SIGTERM to every process of the task but
 * bwrap's own two (its monitor and the sandbox's pid 1, which would take the whole sandbox down at
 * once), so that it can save its work; kill_sandbox once grace_ms pass, if it has not exited by
 * then. With nothing to signal, or no grace, it is killed at once. Which processes, and the
 * signals, in the thread pool (term_work).
 */
static void term_sandbox(exec_task_t *t)
{
    if (t->stage != S_RUNNING || t->killed || t->terming)
        return;
    if (t->suspended)
        exec_task_resume(t); /* a frozen process takes no signal */
    pid_t init = status_child_pid(t);
    if (!t->grace_ms || init <= 0) {
        kill_sandbox(t);
        return;
    }
    t->terming = true;
    uv_timer_start(&t->timer, on_grace_over, t->grace_ms, 0); /* from now, whatever term_work takes */
    term_t *w = xcalloc(1, sizeof(*w));
    w->req.data = w;
    w->t = t;
    w->init = init;
    t->term_busy = true;
    if (uv_queue_work(t->e->loop, &w->req, term_work, term_done) != 0) {
        t->term_busy = false;
        free(w);
        kill_sandbox(t);
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

/* Thread pool: the limiter we could not watch sees EOF on its go pipe and exits; reap it here. */
static void unwatched_wait(uv_work_t *w)
{
    exec_task_t *t = w->data;
    siginfo_t si;
    waitid(P_PIDFD, (id_t)t->proc_fd, &si, WEXITED);
}

static void unwatched_done(uv_work_t *w, int status)
{
    exec_task_t *t = w->data;
    if (status == UV_ECANCELED) { /* never ran: reap it here (it only has to see EOF and exit) */
        siginfo_t si;
        waitid(P_PIDFD, (id_t)t->proc_fd, &si, WEXITED);
    }
    finish(t);
}

/* v1: the task ran out of memory (its eventfd is readable): the whole task stops, not one process. */
static void on_oom(uv_poll_t *p, int status, int events)
{
    (void)status, (void)events;
    exec_task_t *t = p->data;
    uint64_t n;
    if (read(t->oom_fd, &n, sizeof(n)) != sizeof(n))
        return; /* spurious */
    uv_poll_stop(p);
    if (t->stage != S_RUNNING || t->oom_hit)
        return;
    t->oom_hit = true;
    log_info("exec: task %s is out of memory (memory = %" PRIu64 " bytes): stopping it", t->cg_name, t->memory_bytes);
    kill_sandbox(t);
}

/* The limiter waits for its go byte: sends it (unless cancelled meanwhile) and starts the time-out. */
static void go(exec_task_t *t)
{
    if (!t->cancelled) { /* a pipe's first byte never blocks */
        t->start_ns = uv_hrtime();
        t->started = write(t->go_fd, "g", 1) == 1;
        if (!t->started)
            t->go_errno = errno ? errno : EIO; /* it sees EOF and exits: refused with this reason */
        t->deadline_ns = t->start_ns + t->timeout_ms * 1000000u;
        uv_timer_start(&t->timer, on_timeout, t->timeout_ms, 0);
    }
    close_fd(&t->go_fd); /* not started: the child sees EOF and exits */
}

/* Back on the loop: spawn, or report why not. */
static void prep_done(uv_work_t *w, int status)
{
    exec_task_t *t = w->data;
    exec_t *e = t->e;
    if (status == UV_ECANCELED || (t->cancelled && !t->res.refused && t->pid <= 0)) {
        t->res.cancelled = true;
        t->res.exit_code = -1;
        snprintf(t->res.reason, sizeof(t->res.reason), "cancelled before it started");
        finish(t);
        return;
    }
    if (t->res.refused) {
        t->res.cancelled = t->cancelled;
        log_info("exec: task refused: %s", t->res.reason);
        finish(t);
        return;
    }
    t->proc.data = t;
    int rc = uv_poll_init(e->loop, &t->proc, t->proc_fd);
    if (rc) { /* cannot watch it: it must not run unwatched */
        close_fd(&t->go_fd); /* it exits without running anything: reaped in the thread pool */
        refuse(t, "cannot watch the sandbox: %s", uv_strerror(rc));
        log_info("exec: task refused: %s", t->res.reason);
        if (uv_queue_work(e->loop, &t->work, unwatched_wait, unwatched_done) != 0) {
            siginfo_t si;
            waitid(P_PIDFD, (id_t)t->proc_fd, &si, WEXITED); /* no thread pool: here (it is only exiting) */
            finish(t);
        }
        return;
    }
    t->proc_inited = true;
    t->open_handles++;
    if (t->oom_fd >= 0 && uv_poll_init(e->loop, &t->oom, t->oom_fd) == 0) {
        t->oom.data = t;
        t->oom_inited = true;
        t->open_handles++;
        uv_poll_start(&t->oom, UV_READABLE, on_oom);
    }
    t->stage = S_RUNNING;
    uv_poll_start(&t->proc, UV_READABLE, on_proc_readable);
    if (t->suspended && !t->cancelled)
        return; /* suspended before it started: it starts when resumed (go_fd stays open) */
    go(t);
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
    t->out_fd = t->err_fd = t->status_fd = t->pidfd = t->proc_fd = t->go_fd = -1;
    t->res.exit_code = -1;
    t->bwrap = xstrdup(e->bwrap);
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
    t->oom_fd = -1;
    if (exec__check_spec(&e->opts, spec, why, sizeof(why)) != 0) {
        refuse(t, "%s", why);
    } else if (missing) {
        refuse(t, "this peer cannot hold the task's memory and process limits for the whole task: %s", missing);
    } else if (spec->network && !e->opts.allow_network) {
        refuse(t, "job asks for network; this peer does not allow it");
    } else {
        t->job_dir = xstrdup(spec->job_dir);
        t->task_dir = xstrdup(spec->task_dir);
        t->scratch_dir = xstrdup(spec->scratch_dir);
        t->ckpt_dir = spec->checkpoint_dir ? xstrdup(spec->checkpoint_dir) : NULL;
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
        snprintf(t->cg_name, sizeof(t->cg_name), "t%u-%" PRIu64, spec->slot, ++e->cg_seq);
        t->n_cg = exec__cg_task_dirs(&e->cg, t->cg_name, t->cg_dirs);
        /* Both were just checked, so they cannot fail. */
        if (exec_build_argv(&e->opts, spec, &t->argv) != 0 || exec_build_env(spec, &t->env) != 0)
            refuse(t, "internal error building the sandbox");
    }
    /* Even a refusal goes through the pool, so that the callback comes later. */
    uv_queue_work(e->loop, &t->work, prep_work, prep_done);
    if (out)
        *out = t;
    return 0;
}

static void task_kill(exec_task_t *t)
{
    if (t->stage == S_PREP) {
        t->cancelled = true;
        atomic_store(&t->stop_asked, true);
        uv_cancel((uv_req_t *)&t->work); /* fails harmlessly if the work is already running */
    } else if (t->stage == S_RUNNING && !t->started && t->go_fd >= 0) {
        t->cancelled = true; /* suspended before it started: it never will */
        go(t);
    } else if (t->stage == S_RUNNING && !t->timed_out) {
        t->cancelled = true;
        kill_sandbox(t);
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
    if (t->stage != S_RUNNING || !t->started || t->timed_out || t->cancelled) {
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
    for (exec_task_t *t = e->tasks; t; t = t->next)
        if (t->stage != S_DONE)
            task_kill(t);
    /* Nothing in flight: nothing to wait for, and no handle of ours to defer with. */
    if (!e->tasks)
        exec_free(e);
}
