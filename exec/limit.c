/*
 * limit.c: the parts of `preon limit`, the wrapper that sits between the peer and bwrap (the entry
 * point, exec_limit_main, and the keeper that uses these parts are in keeper.c). bwrap 0.8 has no
 * option to set resource limits, and posix_spawn none either, so the spawned process is the limiter,
 * which
 * (0) with `--go-fd N` first: waits for one byte on fd N, the peer's word that the sandbox is still
 * wanted (the peer starts the wrapper from its thread pool, then says go from its loop); EOF means
 * it was cancelled meanwhile: exit 126, having done nothing;
 * (0b) with `--cgroup DIR` (once per cgroup hierarchy, at most EXEC_CG_N times), joins the cgroup
 * DIR (writes 0 to DIR/cgroup.procs), before anything else: bwrap and everything it starts are then
 * inside it, and the whole-task limits set on it (exec/cgroup.c) hold for all of them;
 * (1) makes the job directory reachable for the sandbox user (`--dir PATH NAME`, at most twice):
 * its path may lie under a directory that user cannot traverse (/root, a 0700 mktemp dir), and
 * bwrap resolves its bind sources with realpath() as that user, so the wrapper, still root, opens
 * each PATH, enters a private mount namespace, mounts a fresh tmpfs on EXEC_STAGE_DIR there and
 * bind-mounts each directory (through its fd) at EXEC_STAGE_DIR/NAME, which bwrap then binds into
 * the sandbox; nothing of this is visible outside the wrapper's namespace;
 * (2) for each task, mounts its working directory at EXEC_STAGE_ROOT (exec__limit_mount_task, called
 * by the keeper): an overlayfs whose lower layer is the staged job directory and whose upper layer
 * is the task directory (what the task creates or changes lands there and nowhere else). So a task
 * starts where its files are (`cat input.txt`, `./tool`), reads them lazily through the lower layer,
 * and may write over an input's name without touching the published input. Before mounting, the
 * upper layer gets a skeleton of the job's tree owned by the slot user (unless preon made it, from
 * the job's manifest, in its thread pool: no walk through the mount): every directory (so the task
 * can create files in it) and, for every regular file, a "metacopy" entry (an empty sparse file of
 * the input's size carrying the trusted.overlay.metacopy xattr): overlayfs takes the file's metadata
 * from it (owner: the slot user, mode + owner-write) and its data from the lower layer, until the
 * task writes to it, which copies the data up. Without it the inputs would be root's and read-only
 * to the task. The collector (pool/work.c) skips entries that still carry the xattr: they are
 * unchanged inputs, not outputs;
 * (3) drops to the slot's unprivileged user (`--gid`, `--uid`: setgroups(0), setgid, setuid);
 * (4) sets the limits (the keeper does (3) and (4) in the child it starts bwrap from); the limits
 * are inherited by bwrap and everything in it.
 *
 * Every option is checked before any limit is set, so a bad vector changes nothing (and the unit
 * tests can feed it bad vectors in-process). Soft and hard limits are both set, so the task cannot
 * raise them back. A limit above the current hard limit is clamped to it: tighter, never looser.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <sys/mount.h>
#include <dirent.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "exec/exec.h"
#include "exec/internal.h"

#define LIMIT_FAIL EXEC_LIMIT_FAIL
#define LIMIT_NOT_STARTED EXEC_LIMIT_NOT_STARTED

static const struct {
    const char *opt;
    int resource;
} limit_opts[] = {
    {"--as", RLIMIT_AS},         {"--nproc", RLIMIT_NPROC},   {"--fsize", RLIMIT_FSIZE},
    {"--core", RLIMIT_CORE},     {"--nofile", RLIMIT_NOFILE}, {"--cpu", RLIMIT_CPU},
    {"--msgqueue", RLIMIT_MSGQUEUE},
};
#define N_LIMIT_OPTS (sizeof(limit_opts) / sizeof(limit_opts[0]))
_Static_assert(N_LIMIT_OPTS == EXEC_LIMIT_NOPTS, "exec_limits_t has a slot per option");

/* Decimal digits only: no sign, no spaces, no suffix, no overflow. */
static int parse_u64(const char *s, unsigned long long *out)
{
    if (!s || !*s || strspn(s, "0123456789") != strlen(s))
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno == ERANGE || v == RLIM_INFINITY)
        return -ERANGE;
    *out = v;
    return 0;
}

/* Step (1) above. Each directory is opened before the tmpfs may hide its path. */
static int stage_dirs(int n, const char *const *path, const char *const *name)
{
    int fd[2] = {-1, -1};
    if (mkdir(EXEC_STAGE_DIR, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "preon limit: %s: %s\n", EXEC_STAGE_DIR, strerror(errno));
        return -1;
    }
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        fprintf(stderr, "preon limit: cannot prepare a private mount namespace: %s (the sandbox needs a root daemon)\n",
                strerror(errno));
        return -1;
    }
    /* Opened inside the new namespace: a bind source must be a mount of the caller's namespace. */
    for (int d = 0; d < n; d++) {
        fd[d] = open(path[d], O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd[d] < 0) {
            fprintf(stderr, "preon limit: %s: %s\n", path[d], strerror(errno));
            return -1;
        }
    }
    if (mount("preon", EXEC_STAGE_DIR, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k") != 0) {
        fprintf(stderr, "preon limit: tmpfs on %s: %s\n", EXEC_STAGE_DIR, strerror(errno));
        return -1;
    }
    for (int d = 0; d < n; d++) {
        char dst[256], src[64];
        snprintf(dst, sizeof(dst), "%s/%s", EXEC_STAGE_DIR, name[d]);
        snprintf(src, sizeof(src), "/proc/self/fd/%d", fd[d]);
        if (mkdir(dst, 0755) != 0 || mount(src, dst, NULL, MS_BIND | MS_REC, NULL) != 0) {
            fprintf(stderr, "preon limit: binding %s: %s\n", path[d], strerror(errno));
            return -1;
        }
        close(fd[d]);
    }
    return 0;
}

/* A queue of relative directory paths for the skeleton walk: breadth first, one directory fd open
 * at a time (however deep the job's tree is). */
typedef struct dirq {
    char **v;
    size_t head, n, cap;
} dirq_t;

static int dirq_push(dirq_t *q, const char *rel)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 32;
        char **v = realloc(q->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        q->v = v;
        q->cap = cap;
    }
    if (!(q->v[q->n] = strdup(rel)))
        return -ENOMEM;
    q->n++;
    return 0;
}

static void dirq_free(dirq_t *q)
{
    for (size_t i = q->head; i < q->n; i++)
        free(q->v[i]);
    free(q->v);
}

int exec__mirror_entry(int upper_fd, const char *rel, bool dir, mode_t mode, uint64_t size, uid_t uid, gid_t gid,
                       bool chown_it)
{
    if (dir) {
        if (mkdirat(upper_fd, rel, 0700) != 0)
            return errno == EEXIST ? 0 : -errno;
        if ((chown_it && fchownat(upper_fd, rel, uid, gid, AT_SYMLINK_NOFOLLOW) != 0) ||
            fchmodat(upper_fd, rel, (mode & 0777) | 0700, 0) != 0)
            return -errno;
        return 0;
    }
    int fd = openat(upper_fd, rel, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno == EEXIST ? 0 : -errno;
    int rc = 0;
    if (size > (uint64_t)INT64_MAX || ftruncate(fd, (off_t)size) != 0 ||
        fsetxattr(fd, EXEC_METACOPY_XATTR, "", 0, 0) != 0 || (chown_it && fchown(fd, uid, gid) != 0) ||
        fchmod(fd, (mode & 0777) | 0600) != 0)
        rc = size > (uint64_t)INT64_MAX ? -EFBIG : -errno;
    close(fd);
    return rc;
}


/* Walks the staged job directory and mirrors it into upper (step 2). 0, or -1 with why filled. */
static int build_skeleton(int upper_fd, uid_t uid, gid_t gid, bool chown_it, char *why, size_t whylen)
{
    dirq_t q = {0};
    size_t entries = 0;
    int rc = dirq_push(&q, "");
    char lower[PATH_MAX], what[PATH_MAX + 64] = "";
    while (!rc && q.head < q.n) {
        char *rel = q.v[q.head++];
        int n = snprintf(lower, sizeof(lower), "%s%s%s", EXEC_STAGE_JOB, *rel ? "/" : "", rel);
        int ld = -1, ud = -1;
        DIR *d = NULL;
        if (n < 0 || (size_t)n >= sizeof(lower)) {
            rc = -ENAMETOOLONG;
        } else if ((ld = open(lower, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
                   (ud = *rel ? openat(upper_fd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                              : dup(upper_fd)) < 0 ||
                   !(d = fdopendir(ld))) {
            rc = -errno;
        } else {
            ld = -1; /* the DIR owns it */
        }
        struct dirent *de;
        while (!rc && d && (de = readdir(d)) != NULL) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            if (++entries > EXEC_MAX_SKELETON) {
                rc = -EMSGSIZE;
                break;
            }
            struct stat st;
            if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                rc = -errno;
            } else if (S_ISDIR(st.st_mode)) {
                char sub[PATH_MAX];
                n = snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
                if (n < 0 || (size_t)n >= sizeof(sub))
                    rc = -ENAMETOOLONG;
                else if ((rc = exec__mirror_entry(ud, de->d_name, true, st.st_mode, 0, uid, gid, chown_it)) == 0)
                    rc = dirq_push(&q, sub);
            } else if (S_ISREG(st.st_mode)) {
                rc = exec__mirror_entry(ud, de->d_name, false, st.st_mode, (uint64_t)st.st_size, uid, gid, chown_it);
            } /* nothing else is published; anything else shows through read-only as it is */
            if (rc)
                snprintf(what, sizeof(what), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
        }
        if (rc && !what[0])
            snprintf(what, sizeof(what), "%s", *rel ? rel : ".");
        if (d)
            closedir(d);
        if (ld >= 0)
            close(ld);
        if (ud >= 0)
            close(ud);
        free(rel);
        q.v[q.head - 1] = NULL;
    }
    dirq_free(&q);
    if (rc) {
        snprintf(why, whylen, "preparing the task directory (%s): %s", what,
                 rc == -EMSGSIZE ? "the job has too many files" : strerror(-rc));
        return -1;
    }
    return 0;
}

int exec__limit_mount_task(const char *upper, const char *work, uid_t uid, gid_t gid, bool chown_it, bool walk,
                           char *why, size_t whylen)
{
    int ufd = open(upper, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int wfd = ufd < 0 ? -1 : open(work, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int rc = -1;
    char opts[256];
    if (ufd < 0 || wfd < 0) {
        snprintf(why, whylen, "%s: %s", ufd < 0 ? upper : work, strerror(errno));
        goto out;
    }
    if (walk && build_skeleton(ufd, uid, gid, chown_it, why, whylen) != 0)
        goto out;
    /* The upper and work layers by fd: no path of the host (which may hold ',' or ':') is parsed. */
    snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=/proc/self/fd/%d,workdir=/proc/self/fd/%d,"
             "metacopy=on,redirect_dir=on", EXEC_STAGE_JOB, ufd, wfd);
    if (mount("preon-task", EXEC_STAGE_ROOT, "overlay", MS_NOSUID | MS_NODEV, opts) != 0) {
        snprintf(why, whylen, "cannot mount the task's overlay (overlayfs with metacopy): %s", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (ufd >= 0)
        close(ufd);
    if (wfd >= 0)
        close(wfd);
    return rc;
}

/* --cgroup DIR: this process (and so everything it execs and starts) joins the cgroup DIR. */
static int join_cgroup(const char *dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >= (int)sizeof(path)) {
        fprintf(stderr, "preon limit: --cgroup %s: path too long\n", dir);
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : write(fd, "0", 1);
    int err = errno;
    if (fd >= 0)
        close(fd);
    if (n != 1) {
        fprintf(stderr, "preon limit: cannot join the task's cgroup %s: %s\n", dir, strerror(err));
        return -1;
    }
    return 0;
}

/* --go-fd N: the peer's word that the task is still wanted (one byte), or EOF (cancelled: 126). */
static int wait_go(const char *num)
{
    unsigned long long fd;
    if (parse_u64(num, &fd) != 0 || fd > INT_MAX) {
        fprintf(stderr, "preon limit: --go-fd needs a file descriptor\n");
        return LIMIT_FAIL;
    }
    char go;
    ssize_t n;
    do
        n = read((int)fd, &go, 1);
    while (n < 0 && errno == EINTR);
    close((int)fd);
    return n == 1 ? 0 : LIMIT_NOT_STARTED;
}

int exec__limit_drop(const exec_limits_t *l)
{
    if (l->have_uid && (setgroups(0, NULL) != 0 || setgid(l->gid) != 0 || setuid(l->uid) != 0 ||
                        getuid() != l->uid || geteuid() != l->uid)) {
        fprintf(stderr, "preon limit: cannot become uid %u: %s (the sandbox needs a root daemon)\n", (unsigned)l->uid,
                strerror(errno));
        return -1;
    }
    for (size_t k = 0; k < N_LIMIT_OPTS; k++) {
        if (!l->given[k])
            continue;
        struct rlimit rl;
        if (getrlimit(limit_opts[k].resource, &rl) != 0) {
            fprintf(stderr, "preon limit: getrlimit %s: %s\n", limit_opts[k].opt, strerror(errno));
            return -1;
        }
        rlim_t v = (rlim_t)l->value[k];
        if (rl.rlim_max != RLIM_INFINITY && v > rl.rlim_max)
            v = rl.rlim_max;
        rl.rlim_cur = rl.rlim_max = v;
        if (setrlimit(limit_opts[k].resource, &rl) != 0) {
            fprintf(stderr, "preon limit: setrlimit %s %llu: %s\n", limit_opts[k].opt, l->value[k], strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* A descriptor number argument: decimal, 0..INT_MAX. */
static int parse_fd(const char *s, int *fd)
{
    unsigned long long v;
    if (parse_u64(s, &v) != 0 || v > INT_MAX)
        return -1;
    *fd = (int)v;
    return 0;
}

int exec__limit_parse(int argc, char **argv, exec_limit_args_t *a)
{
    memset(a, 0, sizeof(*a));
    a->keeper_fd = -1;
    if (argc > 2 && !strcmp(argv[1], "--go-fd")) { /* first, before anything is touched */
        int rc = wait_go(argv[2]);
        if (rc)
            return rc;
        argv[2] = argv[0];
        argv += 2;
        argc -= 2;
    }
    exec_limits_t *lim = &a->limits;
    int i = 1;
    unsigned long long uid = 0, gid = 0;
    bool have_uid = false, have_gid = false;
    for (; i < argc && strcmp(argv[i], "--") != 0; i += 2) {
        if (!strcmp(argv[i], "--uid") || !strcmp(argv[i], "--gid")) {
            bool is_uid = argv[i][2] == 'u';
            if ((is_uid ? have_uid : have_gid) || i + 1 >= argc ||
                parse_u64(argv[i + 1], is_uid ? &uid : &gid) != 0 || (is_uid ? uid : gid) == 0 ||
                (is_uid ? uid : gid) >= 0xffffffffull) {
                fprintf(stderr, "preon limit: %s needs one non-zero id\n", argv[i]);
                return LIMIT_FAIL;
            }
            *(is_uid ? &have_uid : &have_gid) = true;
            continue;
        }
        if (!strcmp(argv[i], "--keeper")) {
            if (a->keeper_fd >= 0 || i + 1 >= argc || parse_fd(argv[i + 1], &a->keeper_fd) != 0 || a->keeper_fd < 3) {
                fprintf(stderr, "preon limit: --keeper needs a socket's descriptor (3 or above), once\n");
                return LIMIT_FAIL;
            }
            continue;
        }
        if (!strcmp(argv[i], "--tmpfs-size")) {
            if (a->tmpfs_size || i + 1 >= argc || parse_u64(argv[i + 1], &a->tmpfs_size) != 0 || a->tmpfs_size == 0) {
                fprintf(stderr, "preon limit: --tmpfs-size needs a size in bytes, once\n");
                return LIMIT_FAIL;
            }
            continue;
        }
        if (!strcmp(argv[i], "--cgroup")) {
            if (a->ncg == EXEC_CG_N || i + 1 >= argc || argv[i + 1][0] != '/') {
                fprintf(stderr, "preon limit: --cgroup needs an absolute DIR, at most %d times\n", EXEC_CG_N);
                return LIMIT_FAIL;
            }
            a->cgroups[a->ncg++] = argv[i + 1];
            continue;
        }
        if (!strcmp(argv[i], "--dir")) {
            if (a->ndirs == 2 || i + 2 >= argc || argv[i + 1][0] != '/' || !argv[i + 2][0] ||
                strchr(argv[i + 2], '/') || argv[i + 2][0] == '.') {
                fprintf(stderr, "preon limit: --dir needs an absolute PATH and a plain NAME, at most twice\n");
                return LIMIT_FAIL;
            }
            a->dir_path[a->ndirs] = argv[i + 1];
            a->dir_name[a->ndirs++] = argv[i + 2];
            i++;
            continue;
        }
        size_t k = 0;
        while (k < N_LIMIT_OPTS && strcmp(argv[i], limit_opts[k].opt) != 0)
            k++;
        if (k == N_LIMIT_OPTS) {
            fprintf(stderr, "preon limit: unknown option '%s'\n", argv[i]);
            return LIMIT_FAIL;
        }
        if (lim->given[k]) {
            fprintf(stderr, "preon limit: %s given twice\n", argv[i]);
            return LIMIT_FAIL;
        }
        if (i + 1 >= argc || parse_u64(argv[i + 1], &lim->value[k]) != 0) {
            fprintf(stderr, "preon limit: %s needs a decimal number\n", argv[i]);
            return LIMIT_FAIL;
        }
        lim->given[k] = true;
    }
    if (i >= argc || i + 1 >= argc) {
        fprintf(stderr, "usage: preon limit [--go-fd FD] [--as N] [--nproc N] [--fsize N] [--core N] [--nofile N] "
                        "[--cpu N] [--msgqueue N] -- program [args...]\n");
        return LIMIT_FAIL;
    }
    if (have_uid != have_gid) {
        fprintf(stderr, "preon limit: --uid and --gid go together\n");
        return LIMIT_FAIL;
    }
    lim->have_uid = have_uid;
    lim->uid = (uid_t)uid;
    lim->gid = (gid_t)gid;
    bool have_job = false;
    for (int d = 0; d < a->ndirs; d++)
        have_job |= !strcmp(a->dir_name[d], "job");
    if (a->keeper_fd >= 0 && (!have_job || !have_uid || !a->tmpfs_size)) {
        fprintf(stderr, "preon limit: --keeper needs --dir PATH job, --uid, --gid and --tmpfs-size\n");
        return LIMIT_FAIL;
    }
    a->prog = argv + i + 1;
    return 0;
}

int exec__limit_enter(const exec_limit_args_t *a)
{
    for (int g = 0; g < a->ncg; g++) /* first: whatever happens next happens inside the task's limits */
        if (join_cgroup(a->cgroups[g]) != 0)
            return LIMIT_FAIL;
    if (a->ndirs > 0 && stage_dirs(a->ndirs, a->dir_path, a->dir_name) != 0)
        return LIMIT_FAIL;
    return 0;
}

int exec__limit_fd_arg(const char *s, int *fd) { return parse_fd(s, fd); }
