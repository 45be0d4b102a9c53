/*
 * fs.c: mounting, the FUSE session on the loop, and an orderly stop.
 *
 * The session fd is non-blocking and watched by uv_poll; each readable event drains the requests
 * that are there (receive_buf then process_buf), so a read parked on a job never blocks the loop.
 * Stopping: kill running tasks (they stay RUNNING in the database and run again after a restart),
 * wait for thread-pool work, unmount, close every handle, then report on_exit.
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

static void finish_stop(fs_t *fs);

/* Verified blocks the fetcher keeps in memory after they are done (16 MiB at 256 KiB a block). */
#define FS_KEEP_BLOCKS 64
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

/*
 * Raises the read-ahead of our mount (see FS_READAHEAD_KB) through /sys/class/bdi/MAJ:MIN. The
 * device number comes from /proc/self/mountinfo (the last mount on our mount point), not from a
 * stat of the mount point: that would be a FUSE request to ourselves, from the thread that has to
 * answer it. Failures are not errors (not root, no sysfs): reads just stay at 128 KiB.
 */
static void raise_readahead(fs_t *fs)
{
    if (!FS_READAHEAD_KB)
        return;
    FILE *mi = fopen("/proc/self/mountinfo", "re");
    if (!mi)
        return;
    char *line = NULL;
    size_t cap = 0;
    unsigned maj = 0, min = 0;
    bool found = false;
    while (getline(&line, &cap, mi) > 0) {
        unsigned a, b;
        char mp[4096];
        if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &a, &b, mp) != 3)
            continue;
        unescape_mountinfo(mp);
        if (strcmp(mp, fs->mountpoint) == 0) {
            maj = a;
            min = b;
            found = true;
        }
    }
    free(line);
    fclose(mi);
    if (!found)
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

/* The fetcher stored a block: /v1/have bitfields that list it are updated. */
static void block_stored(const hash_t *h, void *arg)
{
    fs_t *fs = arg;
    if (fs->serve)
        serve_block_stored(fs->serve, h);
}

/*
 * Loop lag: called once per loop iteration (before the loop blocks in epoll). The iteration's wall
 * time minus the time it spent blocked in epoll (libuv's idle-time metric) is the time the loop
 * could not answer anything: callbacks, FUSE requests, HTTP, timers. Its maximum since start and
 * the count over 5 ms (the goal) are in the `peer` file.
 */
static void on_loop_iteration(uv_prepare_t *p)
{
    fs_t *fs = p->data;
    uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(fs->loop);
    if (fs->lag_last_ns) {
        uint64_t wall = now - fs->lag_last_ns, slept = idle - fs->lag_last_idle_ns;
        uint64_t busy = wall > slept ? wall - slept : 0;
        if (busy > fs->lag_max_ns)
            fs->lag_max_ns = busy;
        if (busy > 5000000)
            fs->lag_over_5ms++;
    }
    fs->lag_last_ns = now;
    fs->lag_last_idle_ns = idle;
}

int fs_new(uv_loop_t *loop, const fs_opts_t *opts, void (*on_exit)(void *arg, int status), void *arg,
           fs_t **out)
{
    fs_t *fs = xcalloc(1, sizeof(*fs));
    int rc = 0;
    fs->loop = loop;
    uv_loop_configure(loop, UV_METRICS_IDLE_TIME); /* for the loop-lag figure (on_loop_iteration) */
    fs->opts = *opts;
    fs->mountpoint = xstrdup(opts->mountpoint);
    fs->data_dir = xstrdup(opts->data_dir);
    fs->self_exe = xstrdup(opts->self_exe);
    fs->opts.mountpoint = fs->mountpoint;
    fs->opts.data_dir = fs->data_dir;
    fs->opts.self_exe = fs->self_exe;
    fs->opts.http_url = opts->http_url ? xstrdup(opts->http_url) : NULL;
    fs->opts.tracker_url = opts->tracker_url ? xstrdup(opts->tracker_url) : NULL;
    fs->opts.pool = opts->pool ? xstrdup(opts->pool) : NULL;
    fs->opts.peers = NULL; /* copied into pool_peers below */
    fs->opts.n_peers = 0;
    fs->on_exit = on_exit;
    fs->exit_arg = arg;
    fs->uid = getuid();
    fs->gid = getgid();
    clock_gettime(CLOCK_REALTIME, &fs->started);
    fs->slot_busy = xcalloc(opts->slots ? opts->slots : 1, sizeof(bool));

    static const char *const subdirs[] = {"", "/staging", "/inputs", "/results", "/work", "/store"};
    for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]) && !rc; i++) {
        char *p = xasprintf("%s%s", fs->data_dir, subdirs[i]);
        rc = files_mkdir_p(p, 0755);
        if (rc)
            log_error("%s: %s", p, strerror(-rc));
        free(p);
    }
    char *work = xasprintf("%s/work", fs->data_dir);
    files_rm_rf(work); /* tasks cut off by a crash run again from scratch */
    mkdir(work, 0755);
    free(work);
    /* Sandbox users must reach the task dirs under data/work (but not list data/). */
    chmod(fs->data_dir, 0711);
    if (rc)
        goto error;
    char *p = xasprintf("%s/store", fs->data_dir);
    rc = store_open(p, &fs->store);
    free(p);
    if (rc) {
        log_error("block store: %s", strerror(-rc));
        goto error;
    }
    serve_new(loop, fs->store, &fs->serve); /* fails only for NULL arguments */
    p = xasprintf("%s/preon.db", fs->data_dir);
    rc = db_open(p, &fs->db);
    free(p);
    if (rc) {
        log_error("database: %s", strerror(-rc));
        goto error;
    }
    /* The local slots are one worker of the pool (FS_SELF); volunteers are the others. */
    fs->coord = coord_new(&(coord_opts_t){.max_attempts = FS_MAX_ATTEMPTS,
                                          .max_leases_per_worker = FS_MAX_LEASES_PER_WORKER,
                                          .max_workers_per_host = FS_MAX_WORKERS_PER_HOST});
    coord_worker_seen(fs->coord, FS_SELF, "local", 0);
    coord_worker_cap(fs->coord, FS_SELF, fs->opts.slots ? fs->opts.slots : 1); /* --slots may pass 64 */
    /* keep: more than a reader's read-ahead window (remote.c), so read-ahead is answered in memory */
    fetch_opts_t fo = {.keep_blocks = FS_KEEP_BLOCKS, .on_stored = block_stored, .stored_arg = fs};
    rc = fetch_new(loop, fs->store, &fo, &fs->fetch);
    if (rc) {
        log_error("fetcher: %s", strerror(-rc));
        goto error;
    }
    for (size_t i = 0; i < opts->n_peers; i++)
        fs__pool_add_peer(fs, opts->peers[i]);
    fs->n_static_peers = fs->n_pool_peers;
    /* preon-limit next to us starts each task without loading our libraries; else `preon limit`. */
    const char *slash = strrchr(fs->self_exe, '/');
    char *lim = xasprintf("%.*s/preon-limit", (int)(slash ? slash - fs->self_exe : 1), slash ? fs->self_exe : "/");
    if (access(lim, X_OK) != 0) {
        free(lim);
        lim = xstrdup(fs->self_exe);
    }
    exec_opts_t eo = {.bwrap = opts->bwrap ? opts->bwrap : "/usr/bin/bwrap", .limiter = lim,
                      .uid_base = opts->uid_base, .gid_base = opts->uid_base,
                      .slots = opts->slots ? opts->slots : 1, /* --slots 0: a peer that runs nothing */
                      .allow_network = opts->allow_network};
    rc = exec_new(loop, &eo, &fs->exec);
    free(lim); /* exec_new keeps a copy */
    if (rc) {
        log_error("executor: %s", strerror(-rc));
        goto error;
    }

    fs->root = fs__node_new(fs, NULL, "", N_ROOT, NULL);
    fs->root->nlookup = 1;
    fs->jobs = fs__node_new(fs, fs->root, "jobs", N_JOBS, NULL);
    fs->results = fs__node_new(fs, fs->root, "results", N_RESULTS, NULL);
    fs->statusdir = fs__node_new(fs, fs->root, "status", N_STATUSDIR, NULL);
    fs->waitdir = fs__node_new(fs, fs->root, "wait", N_WAITDIR, NULL);
    fs->peer = fs__node_new(fs, fs->root, "peer", N_PEER, NULL);
    rc = fs__jobs_restore(fs);
    if (rc)
        goto error;

    clear_dead_mount(fs->mountpoint);
    const char *argv[] = {"preon", "-o", "fsname=preon,subtype=preon,default_permissions", NULL, NULL};
    if (getuid() == 0)
        argv[3] = "-oallow_other";
    struct fuse_args args = FUSE_ARGS_INIT(argv[3] ? 4 : 3, (char **)argv);
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
    fs->lag = xcalloc(1, sizeof(*fs->lag));
    uv_prepare_init(loop, fs->lag);
    fs->lag->data = fs;
    uv_prepare_start(fs->lag, on_loop_iteration);
    fs->poll = xcalloc(1, sizeof(*fs->poll));
    uv_poll_init(loop, fs->poll, fd);
    fs->poll->data = fs;
    uv_poll_start(fs->poll, UV_READABLE, on_fuse_readable);
    fs__api_start(fs);
    fs__vol_start(fs);
    fs__discover_start(fs);
    log_info("mounted %s (data %s, %u slots%s%s)", fs->mountpoint, fs->data_dir, fs->opts.slots,
             fs->opts.http_url ? ", peer API at " : "", fs->opts.http_url ? fs->opts.http_url : "");
    fs__jobs_kick(fs);
    *out = fs;
    return 0;

error:
    fs->stopping = true;
    if (fs->se) {
        if (fs->mounted)
            fuse_session_unmount(fs->se);
        fuse_session_destroy(fs->se);
    }
    if (fs->exec)
        exec_close(fs->exec, NULL, NULL);
    if (fs->fetch)
        fetch_close(fs->fetch, NULL, NULL);
    if (fs->serve)
        serve_close(fs->serve, NULL, NULL);
    for (size_t i = 0; i < fs->n_pool_peers; i++)
        free(fs->pool_peers[i]);
    free(fs->pool_peers);
    free(fs->pool_fail_since);
    fs__jobs_free(fs);
    fs__nodes_free(fs);
    coord_free(fs->coord);
    if (fs->db)
        db_close(fs->db);
    if (fs->store)
        store_close(fs->store);
    free(fs->slot_busy);
    free(fs->mountpoint);
    free(fs->data_dir);
    free(fs->self_exe);
    free((char *)fs->opts.http_url);
    free((char *)fs->opts.tracker_url);
    free((char *)fs->opts.pool);
    free(fs);
    return rc ? rc : -EIO;
}

void fs__handle_free(uv_handle_t *h) { free(h); }

static void serve_closed(void *arg)
{
    fs_t *fs = arg;
    fs->serve = NULL;
    finish_stop(fs);
}

static void fetch_closed(void *arg)
{
    fs_t *fs = arg;
    fs->fetch = NULL;
    serve_close(fs->serve, serve_closed, fs); /* waits for its thread-pool items (they read the store) */
}

static void exec_closed(void *arg)
{
    fs_t *fs = arg;
    fs->exec = NULL;
    fetch_close(fs->fetch, fetch_closed, fs); /* pending reads and discoveries end with -ECANCELED */
}

static void drain_check(uv_timer_t *t);

/* Runs once tasks are reaped; waits (without blocking) for thread-pool work to land. */
static void finish_stop(fs_t *fs)
{
    if (fs->pending_work > 0) {
        uv_timer_t *t = xcalloc(1, sizeof(*t));
        uv_timer_init(fs->loop, t);
        t->data = fs;
        uv_timer_start(t, drain_check, 10, 0);
        return;
    }
    for (job_t *j = fs->joblist; j; j = j->next) {
        if (j->quiet) {
            uv_close((uv_handle_t *)j->quiet, fs__handle_free);
            j->quiet = NULL;
        }
    }
    for (size_t i = 0; i < fs->n_pool_peers; i++)
        free(fs->pool_peers[i]);
    free(fs->pool_peers);
    free(fs->pool_fail_since);
    fs__jobs_free(fs);
    fs__nodes_free(fs);
    coord_free(fs->coord);
    db_close(fs->db);
    store_close(fs->store);
    free(fs->buf.mem);
    free(fs->slot_busy);
    free(fs->mountpoint);
    free(fs->data_dir);
    free(fs->self_exe);
    free((char *)fs->opts.http_url);
    free((char *)fs->opts.tracker_url);
    free((char *)fs->opts.pool);
    void (*cb)(void *, int) = fs->on_exit;
    void *arg = fs->exit_arg;
    free(fs);
    if (cb)
        cb(arg, 0);
}

static void drain_check(uv_timer_t *t)
{
    fs_t *fs = t->data;
    uv_close((uv_handle_t *)t, fs__handle_free);
    finish_stop(fs);
}

void fs_stop(fs_t *fs)
{
    if (fs->stopping)
        return;
    fs->stopping = true;
    log_info("unmounting %s", fs->mountpoint);
    fs__api_stop(fs);
    fs__discover_stop(fs);
    fs__vol_stop(fs);
    if (fs->lag) {
        uv_prepare_stop(fs->lag);
        uv_close((uv_handle_t *)fs->lag, fs__handle_free);
        fs->lag = NULL;
    }
    if (fs->poll) {
        uv_poll_stop(fs->poll);
        uv_close((uv_handle_t *)fs->poll, fs__handle_free);
        fs->poll = NULL;
    }
    /* Parked readers get their answer now rather than a dead connection. */
    for (job_t *j = fs->joblist; j; j = j->next) {
        while (j->waiters) {
            waiter_t *w = j->waiters;
            j->waiters = w->next;
            fuse_reply_err(w->req, EINTR);
            free(w);
        }
    }
    fs__remote_reads_abort(fs);
    if (fs->mounted)
        fuse_session_unmount(fs->se);
    fuse_session_destroy(fs->se);
    fs->se = NULL;
    exec_close(fs->exec, exec_closed, fs);
}
