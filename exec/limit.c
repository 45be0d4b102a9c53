/*
 * limit.c: `preon limit`, the wrapper that sits between uv_spawn and bwrap. bwrap 0.8 has no
 * option to set resource limits, and uv_spawn none either, so the spawned process is the preon
 * binary itself, which (1) makes the job and task directories reachable for the sandbox user
 * (`--dir PATH NAME`, at most twice): their paths may lie under a directory that user cannot traverse
 * (/root, a 0700 mktemp dir), and bwrap resolves its bind sources with realpath() as that user, so the
 * wrapper, still root, opens each PATH, enters a private mount namespace, mounts a fresh tmpfs on
 * EXEC_STAGE_DIR there and bind-mounts each directory (through its fd) at EXEC_STAGE_DIR/NAME, which
 * bwrap then binds into the sandbox; nothing of this is visible outside the wrapper's namespace;
 * (2) drops to the slot's unprivileged user (`--gid`, `--uid`: setgroups(0), setgid, setuid);
 * (3) sets the limits and execs bwrap; the limits are inherited by bwrap and everything in it.
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
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec/exec.h"
#include "exec/internal.h"

#define LIMIT_FAIL 127

static const struct {
    const char *opt;
    int resource;
} limit_opts[] = {
    {"--as", RLIMIT_AS},         {"--nproc", RLIMIT_NPROC},   {"--fsize", RLIMIT_FSIZE},
    {"--core", RLIMIT_CORE},     {"--nofile", RLIMIT_NOFILE}, {"--cpu", RLIMIT_CPU},
};
#define N_LIMIT_OPTS (sizeof(limit_opts) / sizeof(limit_opts[0]))

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

int exec_limit_main(int argc, char **argv)
{
    unsigned long long value[N_LIMIT_OPTS];
    bool given[N_LIMIT_OPTS] = {false};
    int i = 1;
    unsigned long long uid = 0, gid = 0;
    bool have_uid = false, have_gid = false;
    int ndirs = 0;
    const char *dir_path[2], *dir_name[2];
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
        if (!strcmp(argv[i], "--dir")) {
            if (ndirs == 2 || i + 2 >= argc || argv[i + 1][0] != '/' || !argv[i + 2][0] ||
                strchr(argv[i + 2], '/') || argv[i + 2][0] == '.') {
                fprintf(stderr, "preon limit: --dir needs an absolute PATH and a plain NAME, at most twice\n");
                return LIMIT_FAIL;
            }
            dir_path[ndirs] = argv[i + 1];
            dir_name[ndirs++] = argv[i + 2];
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
        if (given[k]) {
            fprintf(stderr, "preon limit: %s given twice\n", argv[i]);
            return LIMIT_FAIL;
        }
        if (i + 1 >= argc || parse_u64(argv[i + 1], &value[k]) != 0) {
            fprintf(stderr, "preon limit: %s needs a decimal number\n", argv[i]);
            return LIMIT_FAIL;
        }
        given[k] = true;
    }
    if (i >= argc || i + 1 >= argc) {
        fprintf(stderr, "usage: preon limit [--as N] [--nproc N] [--fsize N] [--core N] [--nofile N] [--cpu N] "
                        "-- program [args...]\n");
        return LIMIT_FAIL;
    }
    if (have_uid != have_gid) {
        fprintf(stderr, "preon limit: --uid and --gid go together\n");
        return LIMIT_FAIL;
    }
    if (ndirs > 0 && stage_dirs(ndirs, dir_path, dir_name) != 0)
        return LIMIT_FAIL;
    if (have_uid && (setgroups(0, NULL) != 0 || setgid((gid_t)gid) != 0 || setuid((uid_t)uid) != 0 ||
                     getuid() != (uid_t)uid || geteuid() != (uid_t)uid)) {
        fprintf(stderr, "preon limit: cannot become uid %llu: %s (the sandbox needs a root daemon)\n", uid,
                strerror(errno));
        return LIMIT_FAIL;
    }
    for (size_t k = 0; k < N_LIMIT_OPTS; k++) {
        if (!given[k])
            continue;
        struct rlimit rl;
        if (getrlimit(limit_opts[k].resource, &rl) != 0) {
            fprintf(stderr, "preon limit: getrlimit %s: %s\n", limit_opts[k].opt, strerror(errno));
            return LIMIT_FAIL;
        }
        rlim_t v = (rlim_t)value[k];
        if (rl.rlim_max != RLIM_INFINITY && v > rl.rlim_max)
            v = rl.rlim_max;
        rl.rlim_cur = rl.rlim_max = v;
        if (setrlimit(limit_opts[k].resource, &rl) != 0) {
            fprintf(stderr, "preon limit: setrlimit %s %llu: %s\n", limit_opts[k].opt, value[k], strerror(errno));
            return LIMIT_FAIL;
        }
    }
    execvp(argv[i + 1], argv + i + 1);
    fprintf(stderr, "preon limit: cannot run %s: %s\n", argv[i + 1], strerror(errno));
    return LIMIT_FAIL;
}
