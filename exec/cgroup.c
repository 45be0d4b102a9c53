/*
 * cgroup.c: whole-task limits. Each task gets a cgroup of its own under the peer's, and everything
 * of the sandbox (bwrap's monitor, its pid 1, every process of the task) lives in it, because the
 * limiter joins it before it execs bwrap. What a cgroup bounds that rlimits cannot: the memory of
 * all the task's processes together, including what it keeps in its tmpfs /tmp and /dev/shm (shmem
 * pages are charged to the cgroup of whoever touched them first); the number of its processes and
 * threads in all; and the peer's share of the CPU (--cpu).
 *
 * Which cgroup version serves a controller is found at run time, per controller: a cgroup v1
 * hierarchy that has it (mounted with it in its options), else the cgroup v2 hierarchy if the peer's
 * own cgroup offers it (cgroup.controllers). A machine may mix both (systemd's "hybrid" layout: this
 * project's test machine has memory, pids and cpu on v1 and only hugetlb on v2).
 *
 * Layout: in each hierarchy, beside the peer's own cgroup (the one /proc/self/cgroup names),
 *   <own>/preon-<pid>/            the peer's: --memory and --cpu bound all its tasks together
 *   <own>/preon-<pid>/<task>/     one per running task: memory, pids
 * v2 allows controllers below a cgroup only if that cgroup holds no processes ("no internal
 * processes"), so there the peer first moves itself into <own>/preon-<pid>.self if it must (and
 * gives up, with the reason, if other processes share its cgroup).
 * A peer that died leaves its preon-<pid> behind; the next peer in the same place removes those
 * whose pid is gone (exec__cg_open).
 *
 * Everything here blocks (it writes cgroupfs files): exec__cg_open and exec__cg_close at start and
 * stop, the task functions in the thread pool. The parsers are pure and unit-tested.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/files.h"
#include "core/xalloc.h"
#include "exec/internal.h"

static const char *const cg_ctl_names[EXEC_CG_N] = {"memory", "pids", "cpu", "freezer", "cpuacct"};

const char *exec__cg_ctl_name(int ctl) { return ctl >= 0 && ctl < EXEC_CG_N ? cg_ctl_names[ctl] : "?"; }

/* Whether the comma-separated list holds word. */
static bool list_has(const char *list, size_t len, const char *word)
{
    size_t wl = strlen(word);
    const char *p = list, *end = list + len;
    while (p < end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        size_t n = c ? (size_t)(c - p) : (size_t)(end - p);
        if (n == wl && !memcmp(p, word, wl))
            return true;
        p += n + 1;
    }
    return false;
}

/* A mountinfo field with its octal escapes (\040 for a space) undone, xmalloc'd. */
static char *unescape(const char *s, size_t n)
{
    char *out = xmalloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 3 < n && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
            s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
            *o++ = (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 3;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

void exec__cg_mounts_free(exec_cg_mounts_t *m)
{
    for (int c = 0; c < EXEC_CG_N; c++) {
        free(m->v1[c]);
        free(m->v1_root[c]);
    }
    free(m->v2);
    free(m->v2_root);
    memset(m, 0, sizeof(*m));
}

/* Up to max space-separated fields of [*p, end) into f/fl; *p is left after the last one taken. */
static int split_fields(const char **p, const char *end, const char **f, size_t *fl, int max)
{
    int n = 0;
    while (n < max && *p < end) {
        while (*p < end && **p == ' ')
            (*p)++;
        const char *s = *p;
        while (*p < end && **p != ' ')
            (*p)++;
        if (*p > s) {
            f[n] = s;
            fl[n++] = (size_t)(*p - s);
        }
    }
    return n;
}

int exec__cg_parse_mounts(const char *text, exec_cg_mounts_t *m)
{
    memset(m, 0, sizeof(*m));
    if (!text)
        return -EINVAL;
    for (const char *line = text; *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        /* id parent maj:min root mountpoint options [optional...] - fstype source superoptions */
        const char *f[6];
        size_t fl[6];
        const char *p = line, *end = line + len;
        int nf = split_fields(&p, end, f, fl, 6);
        const char *sep = NULL;
        for (const char *q = p; q < end; q++)
            if (q[0] == '-' && q[-1] == ' ' && (q + 1 == end || q[1] == ' ')) {
                sep = q;
                break;
            }
        if (nf >= 5 && sep) {
            const char *g[3];
            size_t gl[3];
            p = sep + 1;
            int ng = split_fields(&p, end, g, gl, 3);
            if (ng == 3 && gl[0] == 7 && !memcmp(g[0], "cgroup2", 7) && !m->v2) {
                m->v2 = unescape(f[4], fl[4]);
                m->v2_root = unescape(f[3], fl[3]);
            } else if (ng == 3 && gl[0] == 6 && !memcmp(g[0], "cgroup", 6)) {
                for (int c = 0; c < EXEC_CG_N; c++)
                    if (!m->v1[c] && list_has(g[2], gl[2], cg_ctl_names[c])) {
                        m->v1[c] = unescape(f[4], fl[4]);
                        m->v1_root[c] = unescape(f[3], fl[3]);
                    }
            }
        }
        line = eol ? eol + 1 : line + len;
    }
    return 0;
}

int exec__cg_parse_self(const char *text, const char *ctl, char **path)
{
    *path = NULL;
    if (!text)
        return -EINVAL;
    for (const char *line = text; *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        const char *c1 = memchr(line, ':', len);
        const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(line + len - c1 - 1)) : NULL;
        if (c2 && c2[1] == '/') {
            size_t cl = (size_t)(c2 - c1 - 1);
            bool match = ctl ? list_has(c1 + 1, cl, ctl) : (cl == 0 && c1 - line == 1 && line[0] == '0');
            if (match) {
                *path = xstrndup(c2 + 1, (size_t)(line + len - c2 - 1));
                return 0;
            }
        }
        line = eol ? eol + 1 : line + len;
    }
    return -ENOENT;
}

/* The directory of the cgroup `self` (a path as /proc/self/cgroup gives it) in a hierarchy mounted
 * at mnt whose root is root: NULL if self lies outside what this mount shows. */
static char *cg_dir(const char *mnt, const char *root, const char *self)
{
    size_t rl = strlen(root);
    if (rl == 1 && root[0] == '/')
        rl = 0;
    if (rl && (strncmp(self, root, rl) != 0 || (self[rl] != '/' && self[rl] != '\0')))
        return NULL;
    const char *rest = self + rl;
    if (!strcmp(rest, "/"))
        rest = "";
    return xasprintf("%s%s", mnt, rest);
}

/* ---- small blocking file helpers ---- */

static int write_file(const char *dir, const char *file, const char *text)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    int rc = w == (ssize_t)n ? 0 : w < 0 ? -errno : -EIO;
    close(fd);
    return rc;
}

/* Up to cap - 1 bytes of dir/file, NUL-terminated: length or -errno. */
static ssize_t read_file(const char *dir, const char *file, char *buf, size_t cap)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    char *text;
    size_t got;
    int rc = files_read_small(path, cap - 1, &text, &got);
    if (rc)
        return rc;
    memcpy(buf, text, got + 1);
    free(text);
    return (ssize_t)got;
}

static bool file_exists(const char *dir, const char *file)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    return access(path, F_OK) == 0;
}

int exec__cg_parse_key(const char *text, const char *key, uint64_t *out)
{
    size_t kl = strlen(key);
    for (const char *line = text; line && *line;) {
        if (!strncmp(line, key, kl) && line[kl] == ' ') {
            const char *v = line + kl + 1;
            if (!isdigit((unsigned char)*v))
                return -EBADMSG;
            errno = 0;
            unsigned long long x = strtoull(v, NULL, 10);
            if (errno)
                return -ERANGE;
            *out = x;
            return 0;
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return -ENOENT;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/*
 * Ends every process in dir (a leaf cgroup) and removes it. A process SIGKILLed a moment ago may
 * still be in cgroup.procs, and a cgroup whose last process is still exiting is busy: both are
 * retried for up to EXEC_CG_REMOVE_MS. 0 (gone, or never there) or -errno.
 */
static int remove_leaf(const char *dir, bool v2)
{
    char buf[4096];
    /* A frozen process cannot die: thaw first (a peer killed while its task was suspended). */
    if (file_exists(dir, "freezer.state"))
        (void)write_file(dir, "freezer.state", "THAWED");
    else if (v2 && file_exists(dir, "cgroup.freeze"))
        (void)write_file(dir, "cgroup.freeze", "0");
    for (int i = 0; i < EXEC_CG_REMOVE_MS; i++) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY)
            return -errno;
        if (v2 && file_exists(dir, "cgroup.kill")) {
            (void)write_file(dir, "cgroup.kill", "1");
        } else if (read_file(dir, "cgroup.procs", buf, sizeof(buf)) > 0) {
            for (char *p = buf; *p;) {
                char *e;
                long pid = strtol(p, &e, 10);
                if (e == p)
                    break;
                if (pid > 1)
                    kill((pid_t)pid, SIGKILL);
                p = *e ? e + 1 : e;
            }
        }
        sleep_ms(1);
    }
    return -EBUSY;
}

/* ---- the peer's cgroups ---- */

/* The unique directories of cg (v2 shares one for all its controllers), n of them. */
static int unique_dirs(const exec_cg_t *cg, const char *sub, char *out[EXEC_CG_N])
{
    int n = 0;
    for (int c = 0; c < EXEC_CG_N; c++) {
        if (!cg->dir[c])
            continue;
        bool seen = false;
        for (int k = 0; k < c; k++)
            seen |= cg->dir[k] && !strcmp(cg->dir[k], cg->dir[c]);
        if (!seen)
            out[n++] = sub ? xasprintf("%s/%s", cg->dir[c], sub) : xstrdup(cg->dir[c]);
    }
    return n;
}

/* Ends and removes every task cgroup (t<slot>-<n>) below dir, a peer's cgroup. */
static void sweep_leaves(const char *dir, bool v2)
{
    DIR *sd = opendir(dir);
    struct dirent *se;
    while (sd && (se = readdir(sd)) != NULL) {
        if (se->d_type != DT_DIR || se->d_name[0] == '.')
            continue;
        char *leaf = xasprintf("%s/%s", dir, se->d_name);
        (void)remove_leaf(leaf, v2);
        free(leaf);
    }
    if (sd)
        closedir(sd);
}

/* Removes the leftovers of peers that died in parent: preon-<pid> whose pid is gone. */
static void sweep_dead(const char *parent, bool v2)
{
    DIR *d = opendir(parent);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        if (strncmp(de->d_name, "preon-", 6) != 0)
            continue;
        long pid = strtol(de->d_name + 6, &end, 10);
        if (end == de->d_name + 6 || pid <= 0 || (*end && strcmp(end, ".self") != 0))
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue; /* alive (or not ours to judge) */
        char *dir = xasprintf("%s/%s", parent, de->d_name);
        if (*end) { /* a .self leaf holds a peer itself, maybe one that forked under a new pid: never killed */
            rmdir(dir);
            free(dir);
            continue;
        }
        sweep_leaves(dir, v2);
        (void)remove_leaf(dir, v2);
        free(dir);
    }
    closedir(d);
}

int exec__cg_open(exec_cg_t *cg, const exec_cg_limits_t *lim, char *why, size_t whylen)
{
    memset(cg, 0, sizeof(*cg));
    why[0] = '\0';
    char self[4096], root_name[64], buf[512], *mi = NULL;
    size_t milen;
    snprintf(root_name, sizeof(root_name), "preon-%ld", (long)getpid());
    if (files_read_small("/proc/self/mountinfo", 1 << 20, &mi, &milen) != 0)
        mi = xstrdup("");
    if (read_file("/proc/self", "cgroup", self, sizeof(self)) < 0)
        self[0] = '\0';
    exec_cg_mounts_t m;
    exec__cg_parse_mounts(mi, &m);
    free(mi);
    bool need[EXEC_CG_N] = {true, true, lim->cpu_permille > 0, lim->freeze, false};
    char *v2own = NULL, *v2path = NULL;
    if (m.v2 && exec__cg_parse_self(self, NULL, &v2path) == 0)
        v2own = cg_dir(m.v2, m.v2_root, v2path);
    free(v2path);
    char v2ctl[512] = "";
    if (v2own && read_file(v2own, "cgroup.controllers", v2ctl, sizeof(v2ctl)) < 0)
        v2ctl[0] = '\0';
    char want2[64] = ""; /* the controllers to take from v2: "+memory +pids" */
    /* The freezer first: a dead peer's frozen task dies only once thawed, and only then do its
     * cgroups in the other hierarchies empty (sweep_dead). */
    static const int order[EXEC_CG_N] = {EXEC_CG_FREEZER, EXEC_CG_MEMORY, EXEC_CG_PIDS, EXEC_CG_CPU, EXEC_CG_CPUACCT};
    for (int oi = 0; oi < EXEC_CG_N; oi++) {
        int c = order[oi];
        char *path = NULL, *own = NULL;
        if (m.v1[c] && exec__cg_parse_self(self, cg_ctl_names[c], &path) == 0 &&
            (own = cg_dir(m.v1[c], m.v1_root[c], path)) != NULL) {
            sweep_dead(own, false);
            char *dir = xasprintf("%s/%s", own, root_name);
            int made = mkdir(dir, 0755) == 0 ? 0 : errno;
            if (made == EEXIST) /* a dead peer's that had our pid (reused): its task cgroups would clash */
                sweep_leaves(dir, false);
            if (made && made != EEXIST) {
                snprintf(cg->why[c], sizeof(cg->why[c]), "cannot make %s: %s", dir, strerror(made));
                free(dir);
            } else {
                cg->version[c] = 1;
                cg->dir[c] = dir;
            }
        } else if (v2own && list_has(v2ctl, strcspn(v2ctl, "\n"), cg_ctl_names[c])) {
            cg->version[c] = 2;
            size_t l = strlen(want2);
            snprintf(want2 + l, sizeof(want2) - l, "%s+%s", l ? " " : "", cg_ctl_names[c]);
        } else if (v2own && (c == EXEC_CG_FREEZER || c == EXEC_CG_CPUACCT)) {
            cg->version[c] = 2; /* core files of every v2 cgroup: usable once ours is made below */
        } else {
            snprintf(cg->why[c], sizeof(cg->why[c]), "no cgroup %s controller on this machine (neither a "
                     "cgroup v1 hierarchy nor cgroup v2 at %s offers it)", cg_ctl_names[c], v2own ? v2own : "-");
        }
        free(path);
        free(own);
    }
    for (int c = EXEC_CG_FREEZER; c <= EXEC_CG_CPUACCT && !want2[0]; c++)
        if (cg->version[c] == 2) { /* no v2 cgroup of ours will be made: no core files either */
            cg->version[c] = 0;
            snprintf(cg->why[c], sizeof(cg->why[c]), "no cgroup %s on this machine (no cgroup v1 hierarchy "
                     "has it, and cgroup v2 serves none of this peer's controllers)", cg_ctl_names[c]);
        }
    if (want2[0]) { /* v2: enable the controllers below our own cgroup, then below the peer's */
        sweep_dead(v2own, true);
        int rc = write_file(v2own, "cgroup.subtree_control", want2);
        char *selfdir = NULL;
        if (rc == -EBUSY) { /* our cgroup holds processes: move ourselves into a leaf of our own */
            selfdir = xasprintf("%s/%s.self", v2own, root_name);
            if ((mkdir(selfdir, 0755) == 0 || errno == EEXIST) && write_file(selfdir, "cgroup.procs", "0") == 0)
                rc = write_file(v2own, "cgroup.subtree_control", want2);
            if (rc) {
                (void)write_file(v2own, "cgroup.procs", "0");
                rmdir(selfdir);
            }
        }
        char *dir = xasprintf("%s/%s", v2own, root_name);
        if (!rc && mkdir(dir, 0755) != 0) {
            if (errno == EEXIST) /* a dead peer's that had our pid (reused) */
                sweep_leaves(dir, true);
            else
                rc = -errno;
        }
        if (!rc)
            rc = write_file(dir, "cgroup.subtree_control", want2);
        for (int c = 0; c < EXEC_CG_N; c++) {
            if (cg->version[c] != 2)
                continue;
            if (rc) {
                cg->version[c] = 0;
                snprintf(cg->why[c], sizeof(cg->why[c]), "cgroup v2: cannot enable %s below %s (%s)%s",
                         cg_ctl_names[c], v2own, strerror(-rc), rc == -EBUSY ? ": other processes share this "
                         "peer's cgroup; start it in one of its own (systemd-run --scope, or a unit)" : "");
            } else {
                cg->dir[c] = xstrdup(dir);
            }
        }
        cg->v2_self = selfdir && !rc ? selfdir : NULL;
        if (selfdir && rc)
            free(selfdir);
        if (rc)
            rmdir(dir);
        free(dir);
    }
    free(v2own);
    exec__cg_mounts_free(&m);
    if (cg->version[EXEC_CG_FREEZER] == 2 && !file_exists(cg->dir[EXEC_CG_FREEZER], "cgroup.freeze")) {
        cg->version[EXEC_CG_FREEZER] = 0; /* before kernel 5.2 */
        free(cg->dir[EXEC_CG_FREEZER]);
        cg->dir[EXEC_CG_FREEZER] = NULL;
        snprintf(cg->why[EXEC_CG_FREEZER], sizeof(cg->why[EXEC_CG_FREEZER]), "cgroup v2 here has no "
                 "cgroup.freeze (kernel 5.2 or later has it)");
    }

    int rc = 0;
    for (int c = 0; c < EXEC_CG_N && !rc; c++) {
        if (!need[c] || cg->dir[c])
            continue;
        if (c == EXEC_CG_CPU || c == EXEC_CG_FREEZER || (c == EXEC_CG_MEMORY && lim->memory_total)) {
            snprintf(why, whylen, "%s: %s", c == EXEC_CG_CPU ? "--cpu" : c == EXEC_CG_FREEZER ? "--when idle "
                     "(suspends tasks with the cgroup freezer)" : "--memory", cg->why[c]);
            rc = -ENOTSUP;
        }
    }
    /* What the peer gives in all. */
    if (!rc && lim->memory_total) {
        const char *d = cg->dir[EXEC_CG_MEMORY];
        snprintf(buf, sizeof(buf), "%" PRIu64, lim->memory_total);
        rc = write_file(d, cg->version[EXEC_CG_MEMORY] == 1 ? "memory.limit_in_bytes" : "memory.max", buf);
        if (rc)
            snprintf(why, whylen, "--memory: cannot set it on %s: %s", d, strerror(-rc));
    }
    if (!rc && lim->cpu_permille) {
        const char *d = cg->dir[EXEC_CG_CPU];
        uint64_t quota = (uint64_t)lim->cpu_permille * lim->ncpu * EXEC_CG_CPU_PERIOD_US / 1000u;
        if (quota < 1000)
            quota = 1000; /* the kernel's smallest quota: 1 ms */
        if (cg->version[EXEC_CG_CPU] == 1) {
            snprintf(buf, sizeof(buf), "%u", EXEC_CG_CPU_PERIOD_US);
            rc = write_file(d, "cpu.cfs_period_us", buf);
            snprintf(buf, sizeof(buf), "%" PRIu64, quota);
            if (!rc)
                rc = write_file(d, "cpu.cfs_quota_us", buf);
        } else {
            snprintf(buf, sizeof(buf), "%" PRIu64 " %u", quota, EXEC_CG_CPU_PERIOD_US);
            rc = write_file(d, "cpu.max", buf);
        }
        if (rc)
            snprintf(why, whylen, "--cpu: cannot set it on %s: %s", d, strerror(-rc));
    }
    if (rc)
        exec__cg_close(cg);
    return rc;
}

void exec__cg_close(exec_cg_t *cg)
{
    char *dirs[EXEC_CG_N];
    int n = unique_dirs(cg, NULL, dirs);
    for (int i = 0; i < n; i++) {
        DIR *d = opendir(dirs[i]);
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL) { /* tasks are over by now: only strays */
            if (de->d_type != DT_DIR || de->d_name[0] == '.')
                continue;
            char *leaf = xasprintf("%s/%s", dirs[i], de->d_name);
            (void)remove_leaf(leaf, cg->version[EXEC_CG_MEMORY] == 2);
            free(leaf);
        }
        if (d)
            closedir(d);
        if (rmdir(dirs[i]) != 0 && errno != ENOENT)
            (void)remove_leaf(dirs[i], false);
        free(dirs[i]);
    }
    if (cg->v2_self) {
        char *parent = xstrdup(cg->v2_self);
        char *slash = strrchr(parent, '/');
        if (slash) {
            *slash = '\0';
            (void)write_file(parent, "cgroup.procs", "0"); /* back where we came from */
        }
        rmdir(cg->v2_self);
        free(parent);
        free(cg->v2_self);
    }
    for (int c = 0; c < EXEC_CG_N; c++)
        free(cg->dir[c]);
    memset(cg, 0, sizeof(*cg));
}

const char *exec__cg_missing(const exec_cg_t *cg)
{
    if (!cg->dir[EXEC_CG_MEMORY])
        return cg->why[EXEC_CG_MEMORY];
    if (!cg->dir[EXEC_CG_PIDS])
        return cg->why[EXEC_CG_PIDS];
    return NULL;
}

int exec__cg_task_dirs(const exec_cg_t *cg, const char *name, char *out[EXEC_CG_N])
{
    return unique_dirs(cg, name, out);
}

int exec__cg_task_make(const exec_cg_t *cg, const char *name, uint64_t memory, uint32_t pids, int *oom_fd,
                       char *why, size_t whylen)
{
    char buf[64];
    *oom_fd = -1;
    char *dirs[EXEC_CG_N];
    int n = unique_dirs(cg, name, dirs), rc = 0;
    for (int i = 0; i < n && !rc; i++)
        if (mkdir(dirs[i], 0755) != 0)
            rc = -errno;
    if (rc)
        snprintf(why, whylen, "cannot make the task's cgroup: %s", strerror(-rc));
    char *mem = cg->dir[EXEC_CG_MEMORY] ? xasprintf("%s/%s", cg->dir[EXEC_CG_MEMORY], name) : NULL;
    char *pid = cg->dir[EXEC_CG_PIDS] ? xasprintf("%s/%s", cg->dir[EXEC_CG_PIDS], name) : NULL;
    const char *what = "";
    if (!rc && mem) {
        snprintf(buf, sizeof(buf), "%" PRIu64, memory);
        if (cg->version[EXEC_CG_MEMORY] == 1) {
            what = "memory.limit_in_bytes";
            rc = write_file(mem, what, buf);
            if (!rc && file_exists(mem, "memory.memsw.limit_in_bytes")) /* no swapping out of the limit */
                rc = write_file(mem, what = "memory.memsw.limit_in_bytes", buf);
            /* At the limit the task's processes wait (v1 would kill one of them, and the rest
             * would go on: a shell whose `head` was killed prints its next line) until preon,
             * told by the eventfd below, kills the whole task: out of memory stops it whole. */
            if (!rc)
                rc = write_file(mem, what = "memory.oom_control", "1");
            if (!rc) { /* an eventfd that the kernel signals when the task is out of memory */
                int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                char *ctl = xasprintf("%s/memory.oom_control", mem);
                int cfd = efd < 0 ? -1 : open(ctl, O_RDONLY | O_CLOEXEC);
                free(ctl);
                what = "cgroup.event_control";
                snprintf(buf, sizeof(buf), "%d %d", efd, cfd);
                rc = efd < 0 || cfd < 0 ? -errno : write_file(mem, what, buf);
                if (cfd >= 0)
                    close(cfd);
                if (rc && efd >= 0)
                    close(efd);
                else
                    *oom_fd = efd;
            }
        } else {
            rc = write_file(mem, what = "memory.max", buf);
            if (!rc && file_exists(mem, "memory.swap.max"))
                rc = write_file(mem, what = "memory.swap.max", "0");
            if (!rc) /* out of memory ends the whole task, not one process of it */
                rc = write_file(mem, what = "memory.oom.group", "1");
        }
    }
    if (!rc && pid) {
        snprintf(buf, sizeof(buf), "%" PRIu32, pids);
        rc = write_file(pid, what = "pids.max", buf);
    }
    if (rc && !why[0])
        snprintf(why, whylen, "cannot set the task's limits (%s): %s", what, strerror(-rc));
    if (rc) {
        if (*oom_fd >= 0)
            close(*oom_fd);
        *oom_fd = -1;
        for (int i = 0; i < n; i++)
            rmdir(dirs[i]);
    }
    for (int i = 0; i < n; i++)
        free(dirs[i]);
    free(mem);
    free(pid);
    return rc;
}

/* The counters of a task's cgroup as they are now; the peak as base->peak_fd (v2) or the file says. */
static void read_counters(const exec_cg_t *cg, const char *name, const exec_cg_base_t *base, exec_cg_stats_t *st)
{
    char buf[4096];
    memset(st, 0, sizeof(*st));
    if (cg->dir[EXEC_CG_MEMORY]) {
        char *mem = xasprintf("%s/%s", cg->dir[EXEC_CG_MEMORY], name);
        bool v1 = cg->version[EXEC_CG_MEMORY] == 1;
        if (read_file(mem, v1 ? "memory.oom_control" : "memory.events", buf, sizeof(buf)) > 0)
            (void)exec__cg_parse_key(buf, "oom_kill", &st->oom_kills);
        ssize_t n = -1;
        if (!v1 && base && base->peak_fd >= 0 && (n = pread(base->peak_fd, buf, sizeof(buf) - 1, 0)) > 0)
            buf[n] = '\0';
        if (n > 0 || read_file(mem, v1 ? "memory.max_usage_in_bytes" : "memory.peak", buf, sizeof(buf)) > 0)
            st->memory_peak = strtoull(buf, NULL, 10);
        if (v1 && read_file(mem, "memory.failcnt", buf, sizeof(buf)) > 0)
            st->memory_failcnt = strtoull(buf, NULL, 10);
        free(mem);
    }
    if (cg->dir[EXEC_CG_PIDS]) {
        char *pid = xasprintf("%s/%s", cg->dir[EXEC_CG_PIDS], name);
        if (read_file(pid, "pids.events", buf, sizeof(buf)) > 0)
            (void)exec__cg_parse_key(buf, "max", &st->pids_refused);
        free(pid);
    }
}

static uint64_t since(uint64_t now, uint64_t then) { return now > then ? now - then : 0; }

int exec__cg_task_mark(const exec_cg_t *cg, const char *name, exec_cg_base_t *base)
{
    exec_cg_stats_t now;
    if (base->peak_fd >= 0)
        close(base->peak_fd);
    base->peak_fd = -1;
    read_counters(cg, name, NULL, &now);
    base->oom_kills = now.oom_kills;
    base->memory_failcnt = now.memory_failcnt;
    base->pids_refused = now.pids_refused;
    if (!cg->dir[EXEC_CG_MEMORY])
        return 0;
    char *mem = xasprintf("%s/%s", cg->dir[EXEC_CG_MEMORY], name);
    int rc = 0;
    if (cg->version[EXEC_CG_MEMORY] == 1) {
        rc = write_file(mem, "memory.max_usage_in_bytes", "0"); /* the peak from now on */
    } else { /* v2 (Linux 6.12): a write resets the peak seen through that descriptor */
        char *path = xasprintf("%s/memory.peak", mem);
        int fd = open(path, O_RDWR | O_CLOEXEC);
        free(path);
        if (fd >= 0 && write(fd, "reset\n", 6) == 6)
            base->peak_fd = fd;
        else if (fd >= 0)
            close(fd); /* an older kernel: the sandbox's peak so far is what is reported */
    }
    free(mem);
    return rc;
}

int exec__cg_task_read(const exec_cg_t *cg, const char *name, const exec_cg_base_t *base, exec_cg_stats_t *st)
{
    exec_cg_stats_t now;
    read_counters(cg, name, base, &now);
    *st = now;
    if (base) {
        st->oom_kills = since(now.oom_kills, base->oom_kills);
        st->memory_failcnt = since(now.memory_failcnt, base->memory_failcnt);
        st->pids_refused = since(now.pids_refused, base->pids_refused);
    }
    return 0;
}

int exec__cg_task_end(const exec_cg_t *cg, const char *name, const exec_cg_base_t *base, exec_cg_stats_t *st)
{
    exec__cg_task_read(cg, name, base, st);
    (void)exec__cg_task_freeze(cg, name, false); /* a frozen process cannot die (v1) */
    char *dirs[EXEC_CG_N];
    int n = unique_dirs(cg, name, dirs), rc = 0;
    for (int i = 0; i < n; i++) {
        int r = remove_leaf(dirs[i], cg->version[EXEC_CG_MEMORY] == 2 || cg->version[EXEC_CG_PIDS] == 2);
        if (r && !rc)
            rc = r;
        free(dirs[i]);
    }
    return rc;
}

int exec__cg_task_freeze(const exec_cg_t *cg, const char *name, bool frozen)
{
    if (!cg->dir[EXEC_CG_FREEZER])
        return -ENOTSUP;
    char *dir = xasprintf("%s/%s", cg->dir[EXEC_CG_FREEZER], name);
    int rc = cg->version[EXEC_CG_FREEZER] == 1 ? write_file(dir, "freezer.state", frozen ? "FROZEN" : "THAWED")
                                                : write_file(dir, "cgroup.freeze", frozen ? "1" : "0");
    free(dir);
    return rc;
}

char *exec__cg_cpu_file(const exec_cg_t *cg)
{
    const char *dir = cg->dir[EXEC_CG_CPUACCT];
    if (!dir)
        return NULL;
    return xasprintf("%s/%s", dir, cg->version[EXEC_CG_CPUACCT] == 1 ? "cpuacct.usage" : "cpu.stat");
}

int exec__cg_task_pids(const exec_cg_t *cg, const char *name, pid_t *out, int max)
{
    char buf[65536];
    if (!cg->dir[EXEC_CG_PIDS])
        return -ENOTSUP;
    char *dir = xasprintf("%s/%s", cg->dir[EXEC_CG_PIDS], name);
    ssize_t len = read_file(dir, "cgroup.procs", buf, sizeof(buf));
    free(dir);
    if (len < 0)
        return (int)len;
    int n = 0;
    for (char *p = buf; *p && n < max;) {
        char *e;
        long pid = strtol(p, &e, 10);
        if (e == p)
            break;
        if (pid > 1)
            out[n++] = (pid_t)pid;
        p = *e ? e + 1 : e;
    }
    return n;
}
