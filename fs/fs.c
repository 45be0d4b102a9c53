/*
 * fs.c: mounting, the FUSE session on the loop, and an orderly stop.
 *
 * The session fd is non-blocking and watched by uv_poll; each readable event drains the requests
 * that are there (receive_buf then process_buf), so a read parked on a job never blocks the loop.
 * The pool below (pool/pool.h) is made before the mount (it restores the jobs, whose nodes come with
 * them) and started after it. Stopping: parked readers are answered, answers still being written
 * in the thread pool land, the session is unmounted and ended, then the pool stops (running tasks
 * are killed: they stay RUNNING in the database and run again after a restart) and frees
 * everything, and on_exit is reported.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/files.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "fs/internal.h"

/*
 * Read-ahead of the mount, in KiB. The kernel caps a FUSE file's read-ahead at its bdi's
 * read_ahead_kb (128 KiB by default; the init reply can only lower it), so a sequential reader
 * sends 128 KiB requests. As root we raise it through sysfs after mounting: fewer, larger requests
 * (up to max_pages, 1 MiB with libfuse 3) and a longer window. 0 leaves the kernel's default.
 */
#ifndef FS_READAHEAD_KB
#define FS_READAHEAD_KB 1024
#endif

static void clear_dead_mount(const char *mnt)
{
    struct stat st;
    if (stat(mnt, &st) == 0 || errno != ENOTCONN)
        return;
    log_warn("%s: clearing a dead mount left by an earlier crash", mnt);
    if (umount2(mnt, MNT_DETACH) != 0) {
        char *cmd = xasprintf("fusermount3 -u -z '%s'", mnt);
        if (system(cmd) != 0)
            log_error("%s: could not clear the dead mount", mnt);
        free(cmd);
    }
}

/* Undoes the octal escapes of /proc/self/mountinfo (\040 for a blank...) in place. */
static void unescape_mountinfo(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
            s[3] <= '7') {
            *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

bool fs_mounted_live(const char *mnt)
{
    struct stat st;
    if (stat(mnt, &st) != 0)
        return false; /* ENOTCONN: a dead mount, cleared at start; anything else fails later */
    FILE *mi = fopen("/proc/self/mountinfo", "re");
    if (!mi)
        return false;
    char *line = NULL;
    size_t cap = 0;
    bool found = false;
    while (!found && getline(&line, &cap, mi) > 0) {
        char mp[4096];
        if (sscanf(line, "%*u %*u %*u:%*u %*s %4095s", mp) != 1)
            continue;
        unescape_mountinfo(mp);
        found = strcmp(mp, mnt) == 0;
    }
    free(line);
    fclose(mi);
    return found;
}

/* The last mount on mnt in /proc/self/mountinfo (the one on top): its mount ID and device
 * number. 0, or -ENOENT (or -errno: no /proc). */
static int mount_find(const char *mnt, unsigned *id, unsigned *maj, unsigned *min)
{
    FILE *mi = fopen("/proc/self/mountinfo", "re");
    if (!mi)
        return -errno;
    char *line = NULL;
    size_t cap = 0;
    int rc = -ENOENT;
    while (getline(&line, &cap, mi) > 0) {
        unsigned i, a, b;
        char mp[4096];
        if (sscanf(line, "%u %*u %u:%u %*s %4095s", &i, &a, &b, mp) != 4)
            continue;
        unescape_mountinfo(mp);
        if (strcmp(mp, mnt) == 0) {
            *id = i;
            *maj = a;
            *min = b;
            rc = 0;
        }
    }
    free(line);
    fclose(mi);
    return rc;
}

/* Whether a mount of ID id is in /proc/self/mountinfo (true if it cannot be read: no news). */
static bool mount_id_present(unsigned id)
{
    FILE *mi = fopen("/proc/self/mountinfo", "re");
    if (!mi)
        return true;
    char *line = NULL;
    size_t cap = 0;
    bool found = false;
    while (!found && getline(&line, &cap, mi) > 0) {
        unsigned i;
        found = sscanf(line, "%u ", &i) == 1 && i == id;
    }
    free(line);
    fclose(mi);
    return found;
}

/*
 * The kernel ends a FUSE session when the last mount of its filesystem goes, in any mount
 * namespace. A private mount namespace made while we are mounted (unshare -m, a container, another
 * program's sandbox) holds a copy of our mount that an unmount here does not reach, so after
 * `fusermount3 -u` the session would go on, and the peer with it, for as long as that namespace
 * lives (found by tests/integration/test_soak.sh: a unit test of another program on the machine
 * kept a stopped peer running). So the peer also watches its own mount table: /proc/self/mountinfo
 * raises POLLPRI on every change, and once our mount is gone from it the peer stops as for an
 * unmount; the copies left elsewhere become dead mounts (ENOTCONN). Reading the table is a read
 * of the kernel's memory, not of a disk, and comes only when the machine's mounts change.
 */
typedef struct fs_mwatch {
    uv_poll_t poll;
    int fd;
} fs_mwatch_t;

static void mwatch_closed(uv_handle_t *h)
{
    fs_mwatch_t *w = h->data;
    close(w->fd);
    free(w);
}

static void mwatch_stop(fs_t *fs)
{
    if (!fs->mwatch)
        return;
    fs->mwatch->poll.data = fs->mwatch;
    uv_close((uv_handle_t *)&fs->mwatch->poll, mwatch_closed);
    fs->mwatch = NULL;
}

static void on_mounts_changed(uv_poll_t *p, int status, int events)
{
    fs_t *fs = p->data;
    if (status < 0) {
        log_warn("watching /proc/self/mountinfo: %s: an unmount is seen only once the session ends",
                 uv_strerror(status));
        return mwatch_stop(fs);
    }
    if (fs->stopping || fs->draining || fs->mount_gone || !fs->mounted || mount_id_present(fs->mount_id))
        return; /* (a second fs_stop would cut the tasks' notice short) */
    log_info("%s is no longer mounted here (another mount namespace may keep a copy of it): stopping",
             fs->mountpoint);
    fs->mount_gone = true; /* the session lives on: running tasks get their notice (pool_drain) */
    fs_stop(fs);
}

static void mwatch_start(fs_t *fs, uv_loop_t *loop)
{
    int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || !fs->mount_id) {
        log_debug("not watching /proc/self/mountinfo: %s", fd < 0 ? strerror(errno) : "our mount is not in it");
        if (fd >= 0)
            close(fd);
        return;
    }
    fs_mwatch_t *w = xcalloc(1, sizeof(*w));
    w->fd = fd;
    int rc = uv_poll_init(loop, &w->poll, fd);
    if (rc == 0) {
        w->poll.data = fs;
        rc = uv_poll_start(&w->poll, UV_PRIORITIZED, on_mounts_changed);
        if (rc == 0) {
            fs->mwatch = w;
            return;
        }
        w->poll.data = w;
        uv_close((uv_handle_t *)&w->poll, mwatch_closed);
    } else {
        close(fd);
        free(w);
    }
    log_warn("cannot watch /proc/self/mountinfo: %s: an unmount is seen only once the session ends",
             uv_strerror(rc));
}

/*
 * Raises the read-ahead of our mount (see FS_READAHEAD_KB) through /sys/class/bdi/MAJ:MIN. The
 * device number comes from /proc/self/mountinfo (the last mount on our mount point), not from a
 * stat of the mount point: that would be a FUSE request to ourselves, from the thread that has to
 * answer it. Failures are not errors (not root, no sysfs): reads just stay at 128 KiB. The same
 * line gives the mount's ID, which the mount-table watch looks for (mwatch_start).
 */
static void raise_readahead(fs_t *fs)
{
    unsigned id = 0, maj = 0, min = 0;
    if (mount_find(fs->mountpoint, &id, &maj, &min) != 0)
        return;
    fs->mount_id = id;
    if (!FS_READAHEAD_KB)
        return;
    char path[64], val[16];
    snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", maj, min);
    int n = snprintf(val, sizeof(val), "%u", (unsigned)FS_READAHEAD_KB);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, val, (size_t)n) != n)
        log_debug("%s: cannot set the read-ahead to %s KiB: %s", path, val, strerror(errno));
    else
        log_debug("%s: read-ahead %s KiB", path, val);
    if (fd >= 0)
        close(fd);
}

static void on_fuse_readable(uv_poll_t *p, int status, int events)
{
    fs_t *fs = p->data;
    if (status < 0) {
        /* libuv reports POLLERR as UV_EBADF; /dev/fuse raises it once the connection is gone
         * (unmounted from outside, or aborted): not an error. fuse_session_unmount still runs
         * (it sees the POLLERR itself and only frees what the session holds). */
        if (status != UV_EBADF)
            log_error("fuse poll: %s", uv_strerror(status));
        return fs_stop(fs);
    }
    for (int i = 0; i < 64 && !fuse_session_exited(fs->se); i++) {
        int rc = fuse_session_receive_buf(fs->se, &fs->buf);
        if (rc == -EINTR)
            continue;
        if (rc == -EAGAIN)
            return;
        if (rc <= 0) { /* 0 or -ENODEV: unmounted from outside */
            if (rc < 0 && rc != -ENODEV)
                log_error("fuse: %s", strerror(-rc));
            fs->mounted = false;
            return fs_stop(fs);
        }
        fuse_session_process_buf(fs->se, &fs->buf);
    }
}

int fs_new(uv_loop_t *loop, const fs_opts_t *opts, void (*on_exit)(void *arg, int status), void *arg,
           fs_t **out)
{
    fs_t *fs = xcalloc(1, sizeof(*fs));
    int rc = 0;
    fs->loop = loop;
    fs->opts = *opts;
    fs->mountpoint = xstrdup(opts->mountpoint);
    fs->data_dir = xstrdup(opts->pool.data_dir);
    fs->opts.mountpoint = fs->mountpoint;
    fs->opts.pool = (pool_opts_t){0}; /* the pool's: copied by pool_new */
    fs->on_exit = on_exit;
    fs->exit_arg = arg;
    fs->uid = getuid();
    fs->gid = getgid();
    clock_gettime(CLOCK_REALTIME, &fs->started);

    fs->root = fs__node_new(fs, NULL, "", N_ROOT, NULL);
    fs->root->nlookup = 1;
    fs->jobs = fs__node_new(fs, fs->root, "jobs", N_JOBS, NULL);
    fs->results = fs__node_new(fs, fs->root, "results", N_RESULTS, NULL);
    fs->statusdir = fs__node_new(fs, fs->root, "status", N_STATUSDIR, NULL);
    fs->waitdir = fs__node_new(fs, fs->root, "wait", N_WAITDIR, NULL);
    fs->peer = fs__node_new(fs, fs->root, "peer", N_PEER, NULL);
    char *jobs_dir = xasprintf("%s/jobs", fs->mountpoint);
    pool_opts_t po = opts->pool;
    po.data_dir = fs->data_dir;
    po.jobs_dir = jobs_dir; /* tasks read their inputs through the mount */
    po.mountpoint = fs->mountpoint;
    pool_view_t view = fs__view;
    view.arg = fs;
    rc = pool_new(loop, &po, &view, &fs->pool); /* restores the jobs: their nodes come with them */
    free(jobs_dir);
    if (rc)
        goto error;

    clear_dead_mount(fs->mountpoint);
    const char *argv[7] = {"preon", "-o", "fsname=preon,subtype=preon,default_permissions"}; /* NULL-ended */
    int argc = 3;
    if (getuid() == 0)
        argv[argc++] = "-oallow_other";
    if (opts->mount_flags && *opts->mount_flags) { /* -o ro (mount -t fuse.preon -o ro ...) */
        argv[argc++] = "-o";
        argv[argc++] = opts->mount_flags;
    }
    struct fuse_args args = FUSE_ARGS_INIT(argc, (char **)argv);
    fs->se = fuse_session_new(&args, &fs__ops, sizeof(fs__ops), fs);
    fuse_opt_free_args(&args);
    if (!fs->se) {
        rc = -EIO;
        goto error;
    }
    if (fuse_session_mount(fs->se, fs->mountpoint) != 0) {
        log_error("could not mount %s", fs->mountpoint);
        rc = -EIO;
        goto error;
    }
    fs->mounted = true;
    raise_readahead(fs);
    int fd = fuse_session_fd(fs->se);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fs->poll = xcalloc(1, sizeof(*fs->poll));
    uv_poll_init(loop, fs->poll, fd);
    fs->poll->data = fs;
    uv_poll_start(fs->poll, UV_READABLE, on_fuse_readable);
    mwatch_start(fs, loop);
    log_info("mounted %s (data %s, %u slots%s%s)", fs->mountpoint, fs->data_dir, opts->pool.slots,
             opts->pool.http_url ? ", peer API at " : "", opts->pool.http_url ? opts->pool.http_url : "");
    pool_start(fs->pool); /* tasks start now: they read their inputs through the mount */
    *out = fs;
    return 0;

error:
    fs->stopping = true;
    if (fs->se) {
        if (fs->mounted)
            fuse_session_unmount(fs->se);
        fuse_session_destroy(fs->se);
    }
    if (fs->pool) {
        fs__views_free(fs);
        pool_free(fs->pool);
    }
    fs__nodes_free(fs);
    free(fs->mountpoint);
    free(fs->data_dir);
    free(fs);
    return rc ? rc : -EIO;
}

void fs__handle_free(uv_handle_t *h) { free(h); }

/*
 * Our mount left this namespace while copies of it live on in others (the sandboxes' private mount
 * namespaces, made while we were mounted): the session goes on, so libfuse's unmount would unmount
 * the path again and print "failed to unmount: Invalid argument" (to stderr, not through
 * fuse_log) for an unmount the user just did. libfuse skips that when its poll of the session's fd
 * says POLLERR (a connection that is over). So the session's fd becomes the write end of a pipe
 * whose read end is closed (POLLERR): the /dev/fuse descriptor it replaces was the connection's
 * last, and closing it ends the connection, the copies elsewhere becoming dead mounts (ENOTCONN),
 * as they would once the session ended. Called once nothing polls or writes that fd any more.
 */
static void end_connection(fs_t *fs)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        log_debug("pipe: %s", strerror(errno));
        return;
    }
    close(p[0]);
    if (dup3(p[1], fuse_session_fd(fs->se), O_CLOEXEC) < 0)
        log_debug("dup3: %s", strerror(errno));
    close(p[1]);
}

/* The pool has stopped (tasks reaped, thread-pool work landed) and is freed. */
static void pool_stopped(void *arg)
{
    fs_t *fs = arg;
    fs__nodes_free(fs);
    free(fs->buf.mem);
    free(fs->mountpoint);
    free(fs->data_dir);
    void (*cb)(void *, int) = fs->on_exit;
    void *exit_arg = fs->exit_arg;
    free(fs);
    if (cb)
        cb(exit_arg, 0);
}

static void stop_when_quiet(fs_t *fs);
static void stop_now(fs_t *fs);

static void drained(void *arg) { stop_now(arg); }

/* A stop gives the tasks notice first, while the mount still serves their reads: pool_drain; a
 * second stop (another signal, the session gone) cuts that short. */
void fs_stop(fs_t *fs)
{
    if (fs->stopping)
        return;
    if (fs->draining || !fs->mounted || !fs->pool) {
        if (fs->draining)
            return pool_drain(fs->pool, NULL, NULL); /* fires drained */
        return stop_now(fs);
    }
    fs->draining = true;
    pool_drain(fs->pool, drained, fs);
}

static void stop_now(fs_t *fs)
{
    if (fs->stopping)
        return;
    fs->stopping = true;
    log_info("unmounting %s", fs->mountpoint);
    if (fs->poll) {
        uv_poll_stop(fs->poll);
        uv_close((uv_handle_t *)fs->poll, fs__handle_free);
        fs->poll = NULL;
    }
    mwatch_stop(fs);
    /* Parked readers get their answer now rather than a dead connection. */
    fs__views_free(fs);
    fs__remote_reads_abort(fs);
    stop_when_quiet(fs);
}

static void quiet_check(uv_timer_t *t)
{
    fs_t *fs = t->data;
    uv_close((uv_handle_t *)t, fs__handle_free);
    stop_when_quiet(fs);
}

/* The second half of fs_stop, once no read answer is being written in the thread pool (they
 * write to the session): unmounts, ends the session and stops the pool. */
static void stop_when_quiet(fs_t *fs)
{
    if (fs->pending_replies > 0) {
        uv_timer_t *t = xcalloc(1, sizeof(*t));
        uv_timer_init(fs->loop, t);
        t->data = fs;
        uv_timer_start(t, quiet_check, 2, 0);
        return;
    }
    unsigned id, maj, min;
    if (fs->mounted && fs->mount_gone && mount_find(fs->mountpoint, &id, &maj, &min) == 0) {
        /* Our mount left this namespace and another is on its path now: libfuse's unmount (a lazy
         * umount of the path) would take that one. The session ends with its fd (the copies of
         * our mount elsewhere die with it); only libfuse's copy of the path (a few bytes) is not
         * freed. */
        log_warn("%s is another mount now: not unmounting it", fs->mountpoint);
    } else if (fs->mounted) {
        if (fs->mount_gone)
            end_connection(fs);
        fuse_session_unmount(fs->se);
    }
    fuse_session_destroy(fs->se);
    fs->se = NULL;
    pool_stop(fs->pool, pool_stopped, fs);
}
