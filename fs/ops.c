/*
 * ops.c: the FUSE low-level operations. Each replies exactly once, at the end of the function or,
 * for a read of wait/<name> on a job not yet over, later (parked until the job ends or the reader is
 * interrupted). getattr, lookup and readdir answer from local state and never wait.
 *
 * Staging trees (a job still being copied in) are passed through to real files under
 * data/staging/<name>; every change there restarts the job's quiet period. Published jobs are
 * immutable: their files are read from the verified block store; changes fail with EROFS, and
 * removing anything in one (rm -r) cancels the job.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "fs/internal.h"

_Static_assert(sizeof(fuse_ino_t) >= sizeof(uint64_t), "inode numbers are 64-bit");

#define TIMEOUT_PUB 60.0 /* published trees never change but for removal, which the kernel sees */

typedef struct text_fh {
    char *text;
    size_t len;
} text_fh_t;

typedef struct file_fh {
    int fd;
    job_t *job;
    fuse_ino_t ino; /* its node: a failed write names its path */
    bool counted; /* open for writing in a staging tree: holds the quiet period off */
    char *wpath;  /* counted: its path in the job, listed as being written until the last reference goes */
    unsigned refs; /* the open file (until release) and each read/write/fsync in the thread pool */
} file_fh_t;

/* The last reference: the fd is closed and the job let go (release may come before the thread
 * pool is done with a read or write of this file). */
static void fh_unref(file_fh_t *fh)
{
    if (--fh->refs > 0)
        return;
    if (fh->fd >= 0)
        close(fh->fd);
    if (fh->wpath) /* every write of it has landed: it is whole as far as the writer goes */
        fs__job_write_ended(fh->job, fh->wpath);
    free(fh->wpath);
    pool_job_unref(fh->job);
    free(fh);
}

/*
 * Reads, writes and fsyncs of a file backed in the data directory (a job being copied in, results,
 * this peer's published inputs) run in the thread pool: disk I/O, and for reads the kernel's copy
 * into the page cache, stay off the loop (docs/architecture.md, "One loop"). The answer is sent
 * from the worker (libfuse's replies are thread-safe); the loop does the bookkeeping after.
 */
typedef enum io_kind { IO_READ, IO_WRITE, IO_FSYNC } io_kind_t;
typedef struct io_work {
    uv_work_t w;
    fs_t *fs;
    fuse_req_t req;
    file_fh_t *fh;
    io_kind_t kind;
    char *data; /* IO_WRITE: a copy (the request's buffer is the session's, reused at once) */
    size_t size;
    off_t off;
    int datasync;
    ssize_t done; /* IO_WRITE: bytes written, or -errno */
} io_work_t;

static void io_run(uv_work_t *w)
{
    io_work_t *io = w->data;
    switch (io->kind) {
    case IO_READ: {
        struct fuse_bufvec bv = FUSE_BUFVEC_INIT(io->size);
        bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
        bv.buf[0].fd = io->fh->fd;
        bv.buf[0].pos = io->off;
        fuse_reply_data(io->req, &bv, FUSE_BUF_SPLICE_MOVE);
        break;
    }
    case IO_WRITE: { /* all of it or an error: a short write would leave a hole no error names */
        size_t put = 0;
        int err = 0;
        while (put < io->size && !err) {
            ssize_t n = pwrite(io->fh->fd, io->data + put, io->size - put, io->off + (off_t)put);
            if (n > 0)
                put += (size_t)n;
            else if (n == 0 || errno != EINTR)
                err = n == 0 ? EIO : errno;
        }
        io->done = err ? -err : (ssize_t)put;
        break; /* answered on the loop, once the job is touched */
    }
    case IO_FSYNC:
        io->done = (io->datasync ? fdatasync(io->fh->fd) : fsync(io->fh->fd)) != 0 ? -errno : 0;
        break; /* answered on the loop: a failure is remembered on a staged job first */
    }
}

static void stage_failed(node_t *p, const char *name, const char *what, const char *why);

static void io_done(uv_work_t *w, int status)
{
    io_work_t *io = w->data;
    if (io->kind != IO_READ && io->done < 0) /* a copy that failed part-way is not published */
        stage_failed(fs__node_live(io->fs, io->fh->ino), NULL, io->kind == IO_WRITE ? "write" : "fsync",
                     strerror((int)-io->done));
    if (io->kind == IO_FSYNC)
        fuse_reply_err(io->req, (int)-io->done);
    if (io->kind == IO_WRITE) {
        if (io->done >= 0)
            fs__job_touch(io->fh->job); /* before the answer: the quiet period restarts first */
        if (io->done < 0)
            fuse_reply_err(io->req, (int)-io->done);
        else
            fuse_reply_write(io->req, (size_t)io->done);
    }
    io->fs->pending_replies--; /* fs_stop waits for 0 */
    fh_unref(io->fh);
    free(io->data);
    free(io);
}

static void io_queue(fs_t *fs, fuse_req_t req, file_fh_t *fh, io_kind_t kind, const char *data, size_t size,
                     off_t off, int datasync)
{
    io_work_t *io = xcalloc(1, sizeof(*io));
    *io = (io_work_t){.fs = fs, .req = req, .fh = fh, .kind = kind, .size = size, .off = off, .datasync = datasync};
    if (data) {
        io->data = xmalloc(size ? size : 1);
        memcpy(io->data, data, size);
    }
    io->w.data = io;
    fh->refs++;
    fs->pending_replies++;
    uv_queue_work(fs->loop, &io->w, io_run, io_done);
}

typedef struct dir_ent {
    char *name;
    mode_t type;
} dir_ent_t;

typedef struct dir_fh {
    dir_ent_t *ents;
    size_t n, cap;
} dir_fh_t;

static fs_t *fs_of(fuse_req_t req) { return fuse_req_userdata(req); }

static bool is_dir_kind(node_kind_t k)
{
    return k == N_ROOT || k == N_JOBS || k == N_RESULTS || k == N_STATUSDIR || k == N_WAITDIR ||
           k == N_PUB_DIR || k == N_RRES_DIR || k == N_LIVE_DIR;
}

/* results/<name> of a job: its results (and its running tasks' live output) are named in it. */
static bool is_results_root(const node_t *n)
{
    return n->parent && n->parent->kind == N_RESULTS && n->job && V(n->job) && V(n->job)->results == n;
}

static bool valid_name(const char *name)
{
    size_t len = strlen(name);
    return len > 0 && len <= 255 && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
           !strchr(name, '/');
}

/* The path of name in the staged directory p (NULL: of p itself), relative to its job's root. */
static char *stage_path(const node_t *p, const char *name)
{
    char *rel = fs__node_relpath(p);
    if (!name)
        return rel;
    char *out = *rel ? xasprintf("%s/%s", rel, name) : xstrdup(name);
    free(rel);
    return out;
}

/*
 * A change to a job being copied in failed (what: "create", "write"...; why: the reason): the copy
 * reported an error to its program, so the job must not be published without it (view.c remembers
 * it until the path is fixed or removed). Nothing for a node outside a staged job.
 */
static void stage_failed(node_t *p, const char *name, const char *what, const char *why)
{
    if (!p || p->kind != N_STAGE || !p->job)
        return;
    char *path = stage_path(p, name);
    /* a change refused because the job was being hashed (EBUSY) says so: a copy over it, not a disk error */
    char *msg = xasprintf("%s %s: %s%s", what, path, why,
                          p->job->state == POOL_JOB_PUBLISHING ? " (the job was being published)" : "");
    fs__copy_failed(p->job, path, msg);
    free(msg);
    free(path);
}

/* name in the staged directory p was made anew or removed: its copy errors (and those below) go. */
static void stage_fixed(node_t *p, const char *name)
{
    char *path = stage_path(p, name);
    fs__copy_fixed(p->job, path);
    free(path);
}

/* Fills st for n. 0 or -errno. */
static int node_stat(fs_t *fs, node_t *n, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_uid = fs->uid;
    st->st_gid = fs->gid;
    st->st_blksize = 4096;
    st->st_mtim = st->st_ctim = st->st_atim = fs->started;
    if (n->detached && n->job && n->kind != N_LIVE_DIR && n->kind != N_LIVE_FILE)
        return -ENOENT; /* its job may be gone: only its number is left, until the kernel forgets it */
    if (n->kind == N_LIVE_FILE) { /* held: its job is there, detached or not */
        int rc = fs__live_stat(fs, n, st);
        if (rc)
            return rc;
        st->st_uid = fs->uid;
        st->st_gid = fs->gid;
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
    } else if (n->kind == N_STAGE || n->kind == N_RES) {
        char *path = fs__node_backing(fs, n);
        int rc = lstat(path, st) == 0 ? 0 : -errno;
        free(path);
        if (rc)
            return rc;
        st->st_uid = fs->uid;
        st->st_gid = fs->gid;
        if (n->kind == N_RES)
            st->st_mode &= ~(mode_t)0222;
    } else if (is_dir_kind(n->kind)) {
        st->st_mode = S_IFDIR | (n->kind == N_PUB_DIR || n->kind == N_RRES_DIR || n->kind == N_LIVE_DIR ? 0555 : 0755);
        st->st_nlink = 2;
        if (n->kind == N_PUB_DIR && n->job) {
            st->st_mtim.tv_sec = (time_t)(n->job->man.created_ms / 1000);
            st->st_ctim = st->st_mtim;
        }
    } else if (n->kind == N_PUB_FILE || n->kind == N_RRES_FILE) {
        uint32_t bs;
        const manifest_file_t *f = fs__node_mfile(n, &bs);
        st->st_mode = S_IFREG | (f->mode & 0555) | 0444;
        st->st_nlink = 1;
        st->st_size = (off_t)f->size;
        st->st_blocks = (blkcnt_t)((f->size + 511) / 512);
        st->st_mtim.tv_sec = (time_t)((n->kind == N_RRES_FILE ? n->res->man.created_ms : n->job->man.created_ms) / 1000);
        st->st_ctim = st->st_mtim;
    } else { /* peer, status, wait: generated text */
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
        size_t len = 0;
        char *text = NULL;
        if (n->kind == N_PEER)
            text = pool_peer_status_text(fs->pool, &len);
        else if (n->kind == N_STATUS)
            text = pool_job_status_text(n->job, &len);
        free(text);
        st->st_size = (off_t)len;
    }
    st->st_ino = n->ino;
    return 0;
}

#define TIMEOUT_REMOTE_ROOT 1.0 /* jobs/<name> of a remote job: its submitter may cancel or forget it */

static double timeout_of(const node_t *n)
{
    /* A remote job leaves jobs/ without the kernel seeing it: the kernel re-asks about its root
     * every second (a lookup answered from memory), so a removed one is gone within a second.
     * (fuse_lowlevel_notify_inval_entry from the loop thread could deadlock on a lookup in jobs/.) */
    if (n->kind == N_PUB_DIR && n->job && n->job->remote && V(n->job) && V(n->job)->dir == n)
        return TIMEOUT_REMOTE_ROOT;
    return (n->kind == N_PUB_DIR || n->kind == N_PUB_FILE || n->kind == N_RRES_FILE) ? TIMEOUT_PUB : 0.0;
}

static void reply_entry(fuse_req_t req, fs_t *fs, node_t *n)
{
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    int rc = node_stat(fs, n, &e.attr);
    if (rc)
        return (void)fuse_reply_err(req, -rc);
    e.ino = n->ino;
    e.attr_timeout = e.entry_timeout = timeout_of(n);
    n->nlookup++;
    if (fuse_reply_entry(req, &e) != 0)
        n->nlookup--;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    if (conn->capable & FUSE_CAP_SPLICE_WRITE)
        conn->want |= FUSE_CAP_SPLICE_WRITE;
    conn->max_background = 64;
    conn->congestion_threshold = 48;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fs_t *fs = fs_of(req);
    node_t *p = fs__node_live(fs, parent);
    if (!p)
        return (void)fuse_reply_err(req, ENOENT);
    if (strlen(name) > 255)
        return (void)fuse_reply_err(req, ENAMETOOLONG);
    node_t *n = fs__node_child(p, name);
    if (p->kind == N_STAGE || p->kind == N_RES) {
        if (p->kind == N_RES && p->parent && p->parent->kind == N_RESULTS && name[0] == '.')
            return (void)fuse_reply_err(req, ENOENT); /* a result being assembled */
        char *dir = fs__node_backing(fs, p);
        char *path = xasprintf("%s/%s", dir, name);
        struct stat st;
        int rc = lstat(path, &st) == 0 ? 0 : -errno;
        free(dir);
        free(path);
        /* A live output node (fs__live_dir) gives way to the result: the directory changes whole;
         * a node of a file that went gives way to the live output of a task run again. */
        if (n && (rc ? rc != -ENOENT || n->kind != N_LIVE_DIR : n->kind == N_LIVE_DIR)) {
            fs__node_detach(fs, n);
            n = NULL;
        }
        if (rc) {
            n = rc == -ENOENT && is_results_root(p) ? fs__live_dir(fs, p, p->job, name) : NULL;
            if (!n) /* (fs__live_dir detached a live node left) */
                return (void)fuse_reply_err(req, -rc);
        } else if (!n) {
            n = fs__node_new(fs, p, name, p->kind, p->job);
        }
    } else if (p->kind == N_RRES_DIR && is_results_root(p) && (!n || n->kind == N_LIVE_DIR)) {
        n = fs__live_dir(fs, p, p->job, name); /* no mirrored result: a task running here? */
    } else if (p->kind == N_LIVE_DIR) {
        n = fs__live_file(fs, p, name);
    } else if (!is_dir_kind(p->kind)) {
        return (void)fuse_reply_err(req, ENOTDIR);
    }
    if (!n)
        return (void)fuse_reply_err(req, ENOENT);
    reply_entry(req, fs, n);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    fs_t *fs = fs_of(req);
    node_t *n = fs__node_get(fs, ino);
    if (n && n != fs->root)
        fs__node_forget(fs, n, nlookup);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    fs_t *fs = fs_of(req);
    for (size_t i = 0; i < count; i++) {
        node_t *n = fs__node_get(fs, forgets[i].ino);
        if (n && n != fs->root)
            fs__node_forget(fs, n, forgets[i].nlookup);
    }
    fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fs_t *fs = fs_of(req);
    node_t *n = fs__node_get(fs, ino);
    if (!n)
        return (void)fuse_reply_err(req, ENOENT);
    struct stat st;
    int rc = node_stat(fs, n, &st);
    if (rc)
        return (void)fuse_reply_err(req, -rc);
    fuse_reply_attr(req, &st, timeout_of(n));
}

static int stage_writable(const node_t *n)
{
    if (n->kind == N_STAGE)
        return n->job->state == POOL_JOB_PUBLISHING ? -EBUSY : 0;
    if (n->kind == N_PUB_DIR || n->kind == N_PUB_FILE || n->kind == N_RES || n->kind == N_RRES_DIR ||
        n->kind == N_RRES_FILE || n->kind == N_LIVE_DIR || n->kind == N_LIVE_FILE)
        return -EROFS;
    return -EPERM;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    fs_t *fs = fs_of(req);
    node_t *n = fs__node_live(fs, ino);
    if (!n)
        return (void)fuse_reply_err(req, ENOENT);
    int rc = stage_writable(n);
    if (rc) {
        stage_failed(n, NULL, "set attributes of", strerror(-rc)); /* EBUSY: being published */
        return (void)fuse_reply_err(req, -rc);
    }
    char *path = fs__node_backing(fs, n);
    int fd = fi ? ((file_fh_t *)(uintptr_t)fi->fh)->fd : -1;
    if (!rc && (to_set & FUSE_SET_ATTR_MODE))
        rc = (fd >= 0 ? fchmod(fd, attr->st_mode & 07777) : chmod(path, attr->st_mode & 07777)) ? -errno : 0;
    if (!rc && (to_set & FUSE_SET_ATTR_SIZE))
        rc = (fd >= 0 ? ftruncate(fd, attr->st_size) : truncate(path, attr->st_size)) ? -errno : 0;
    if (!rc && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
        struct timespec tv[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
        if (to_set & FUSE_SET_ATTR_ATIME_NOW)
            tv[0].tv_nsec = UTIME_NOW;
        else if (to_set & FUSE_SET_ATTR_ATIME)
            tv[0] = attr->st_atim;
        if (to_set & FUSE_SET_ATTR_MTIME_NOW)
            tv[1].tv_nsec = UTIME_NOW;
        else if (to_set & FUSE_SET_ATTR_MTIME)
            tv[1] = attr->st_mtim;
        rc = utimensat(AT_FDCWD, path, tv, AT_SYMLINK_NOFOLLOW) ? -errno : 0;
    }
    /* Ownership is not part of a job (the sandbox runs as its own user): chown is accepted and ignored. */
    free(path);
    if (rc) {
        stage_failed(n, NULL, "set attributes of", strerror(-rc));
        return (void)fuse_reply_err(req, -rc);
    }
    fs__job_touch(n->job);
    op_getattr(req, ino, fi);
}

static void dir_add(dir_fh_t *d, const char *name, mode_t type)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 16;
        d->ents = xreallocarray(d->ents, d->cap, sizeof(*d->ents));
    }
    d->ents[d->n].name = xstrdup(name);
    d->ents[d->n].type = type;
    d->n++;
}

static void dir_add_live(void *arg, const char *name) { dir_add(arg, name, S_IFDIR); }

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fs_t *fs = fs_of(req);
    node_t *n = fs__node_live(fs, ino);
    if (!n)
        return (void)fuse_reply_err(req, ENOENT);
    dir_fh_t *d = xcalloc(1, sizeof(*d));
    dir_add(d, ".", S_IFDIR);
    dir_add(d, "..", S_IFDIR);
    if (n->kind == N_STAGE || n->kind == N_RES) {
        char *path = fs__node_backing(fs, n);
        DIR *dp = opendir(path);
        int err = errno;
        free(path);
        if (!dp) {
            for (size_t i = 0; i < d->n; i++)
                free(d->ents[i].name);
            free(d->ents);
            free(d);
            return (void)fuse_reply_err(req, err);
        }
        bool hide_dot = n->kind == N_RES && n->parent && n->parent->kind == N_RESULTS;
        struct dirent *de;
        while ((de = readdir(dp)) != NULL) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || (hide_dot && de->d_name[0] == '.'))
                continue;
            dir_add(d, de->d_name, de->d_type == DT_DIR ? S_IFDIR : S_IFREG);
        }
        closedir(dp);
        if (is_results_root(n))
            fs__live_list(fs, n->job, n, dir_add_live, d);
    } else if (n->kind == N_LIVE_DIR) {
        for (int s = 0; s < 2; s++) { /* the files there are (made by the task's start, or its first update) */
            node_t *k = fs__live_file(fs, n, s ? "stderr" : "stdout");
            struct stat st;
            if (k && fs__live_stat(fs, k, &st) == 0)
                dir_add(d, k->name, S_IFREG);
        }
    } else if (is_dir_kind(n->kind)) {
        if (is_results_root(n))
            fs__live_list(fs, n->job, n, dir_add_live, d);
        for (size_t i = 0; i < n->nkids; i++) {
            node_t *k = n->kids[i];
            if (k->kind == N_LIVE_DIR && is_results_root(n))
                continue; /* listed above if it still runs */
            bool dir = is_dir_kind(k->kind) || (k->kind == N_STAGE && k->parent->kind == N_JOBS) ||
                       (k->kind == N_RES && k->parent->kind == N_RESULTS);
            dir_add(d, k->name, dir ? S_IFDIR : S_IFREG);
        }
    } else {
        free(d->ents[0].name);
        free(d->ents[1].name);
        free(d->ents);
        free(d);
        return (void)fuse_reply_err(req, ENOTDIR);
    }
    fi->fh = (uintptr_t)d;
    fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    dir_fh_t *d = (dir_fh_t *)(uintptr_t)fi->fh;
    if (size > 1 << 20)
        size = 1 << 20;
    char *buf = xmalloc(size);
    size_t pos = 0;
    for (size_t i = (size_t)off; i < d->n; i++) {
        struct stat st = {.st_ino = ino, .st_mode = d->ents[i].type};
        size_t need = fuse_add_direntry(req, buf + pos, size - pos, d->ents[i].name, &st, (off_t)i + 1);
        if (need > size - pos)
            break;
        pos += need;
    }
    fuse_reply_buf(req, buf, pos);
    free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    dir_fh_t *d = (dir_fh_t *)(uintptr_t)fi->fh;
    for (size_t i = 0; i < d->n; i++)
        free(d->ents[i].name);
    free(d->ents);
    free(d);
    fuse_reply_err(req, 0);
}

static bool wants_write(int flags)
{
    return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

static void open_backed(fuse_req_t req, fs_t *fs, node_t *n, struct fuse_file_info *fi, int fd)
{
    file_fh_t *fh = xcalloc(1, sizeof(*fh));
    fh->fd = fd;
    fh->job = n->job;
    fh->ino = n->ino;
    fh->refs = 1;
    pool_job_ref(n->job);
    if (n->kind == N_STAGE && wants_write(fi->flags)) {
        fh->counted = true;
        fs__job_file_opened(n->job);
        fh->wpath = fs__node_relpath(n);
        fs__job_write_started(n->job, fh->wpath);
    }
    fi->fh = (uintptr_t)fh;
    (void)fs;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fs_t *fs = fs_of(req);
    node_t *n = fs__node_live(fs, ino);
    if (!n)
        return (void)fuse_reply_err(req, ENOENT);
    if (is_dir_kind(n->kind))
        return (void)fuse_reply_err(req, EISDIR);
    switch (n->kind) {
    case N_PEER:
    case N_STATUS: {
        if (wants_write(fi->flags))
            return (void)fuse_reply_err(req, EACCES);
        text_fh_t *t = xcalloc(1, sizeof(*t));
        t->text = n->kind == N_PEER ? pool_peer_status_text(fs->pool, &t->len) : pool_job_status_text(n->job, &t->len);
        fi->fh = (uintptr_t)t;
        fi->direct_io = 1;
        break;
    }
    case N_WAIT:
        if (wants_write(fi->flags))
            return (void)fuse_reply_err(req, EACCES);
        fi->fh = (uintptr_t)xcalloc(1, sizeof(struct wait_fh));
        fi->direct_io = 1;
        pool_job_ref(n->job);
        break;
    case N_RRES_FILE:
    case N_PUB_FILE: {
        if (wants_write(fi->flags))
            return (void)fuse_reply_err(req, EROFS);
        if (n->job->remote) { /* no local copy: reads fetch blocks (read.c) */
            file_fh_t *fh = xcalloc(1, sizeof(*fh));
            fh->fd = -1;
            fh->job = n->job;
            fh->refs = 1;
            pool_job_ref(n->job);
            fi->fh = (uintptr_t)fh;
            fi->keep_cache = 1;
            break;
        }
        const char *rel = n->job->man.files[n->file].path;
        char *path = xasprintf("%s/inputs/%s/%s", fs->data_dir, n->job->id, rel);
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        int err = errno;
        free(path);
        if (fd < 0) {
            log_error("job %s: input %s is missing from the data directory: %s", n->job->name, rel, strerror(err));
            return (void)fuse_reply_err(req, EIO);
        }
        open_backed(req, fs, n, fi, fd);
        fi->keep_cache = 1; /* immutable */
        break;
    }
    case N_LIVE_FILE: { /* a running task's output: it grows (direct_io: no cache, the size asked each time) */
        if (wants_write(fi->flags))
            return (void)fuse_reply_err(req, EROFS);
        int fd = fs__live_open(fs, n);
        if (fd < 0)
            return (void)fuse_reply_err(req, -fd);
        open_backed(req, fs, n, fi, fd);
        fi->direct_io = 1;
        break;
    }
    case N_STAGE:
    case N_RES: {
        if (wants_write(fi->flags)) {
            int rc = stage_writable(n);
            if (rc) {
                stage_failed(n, NULL, "open for writing", strerror(-rc)); /* EBUSY: being published */
                return (void)fuse_reply_err(req, -rc);
            }
        }
        char *path = fs__node_backing(fs, n);
        int fd = open(path, (fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY)) | O_CLOEXEC | O_NOFOLLOW);
        int err = errno;
        free(path);
        if (fd < 0)
            return (void)fuse_reply_err(req, err);
        open_backed(req, fs, n, fi, fd);
        if (n->kind == N_STAGE && (fi->flags & O_TRUNC)) {
            stage_fixed(n, NULL); /* copied again from the start */
            fs__job_touch(n->job);
        }
        break;
    }
    default:
        return (void)fuse_reply_err(req, EINVAL);
    }
    fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    fs_t *fs = fs_of(req);
    node_t *n = fs__node_get(fs, ino);
    if (!n)
        return (void)fuse_reply_err(req, ENOENT);
    switch (n->kind) {
    case N_PEER:
    case N_STATUS: {
        text_fh_t *t = (text_fh_t *)(uintptr_t)fi->fh;
        return fs__reply_slice(req, t->text, t->len, size, off);
    }
    case N_WAIT: {
        struct wait_fh *w = (struct wait_fh *)(uintptr_t)fi->fh;
        if (w->text)
            return fs__reply_slice(req, w->text, w->len, size, off);
        if (pool_job_over(n->job)) {
            size_t len;
            char *text = pool_job_status_text(n->job, &len);
            w->text = text;
            w->len = len;
            return fs__reply_slice(req, w->text, w->len, size, off);
        }
        return fs__wait_park(n->job, req, size, off, w);
    }
    case N_RRES_FILE: /* a mirrored result: always fetched */
    case N_PUB_FILE:  /* the job's inputs, hashed when published and read-only since */
        if (((file_fh_t *)(uintptr_t)fi->fh)->fd < 0)
            return fs__remote_read(req, fs, n, size, off);
        /* fall through */
    case N_STAGE:
    case N_RES:
    case N_LIVE_FILE:
        return io_queue(fs, req, (file_fh_t *)(uintptr_t)fi->fh, IO_READ, NULL, size, off, 0);
    default:
        fuse_reply_err(req, EINVAL);
    }
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    fs_t *fs = fs_of(req);
    node_t *n = fs__node_get(fs, ino);
    if (!n)
        return (void)fuse_reply_err(req, ENOENT);
    int rc = stage_writable(n);
    if (rc) {
        stage_failed(fs__node_live(fs, ino), NULL, "write", strerror(-rc)); /* EBUSY: being published */
        return (void)fuse_reply_err(req, -rc);
    }
    io_queue(fs, req, (file_fh_t *)(uintptr_t)fi->fh, IO_WRITE, data, size, off, 0);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fs_t *fs = fs_of(req);
    node_t *n = fs__node_get(fs, ino);
    node_kind_t kind = n ? n->kind : N_ROOT; /* cannot happen: the kernel holds the node */
    if (kind == N_PEER || kind == N_STATUS) {
        text_fh_t *t = (text_fh_t *)(uintptr_t)fi->fh;
        free(t->text);
        free(t);
    } else if (kind == N_WAIT) {
        struct wait_fh *w = (struct wait_fh *)(uintptr_t)fi->fh;
        free(w->text);
        free(w);
        pool_job_unref(n->job);
    } else if (kind == N_STAGE || kind == N_RES || kind == N_PUB_FILE || kind == N_RRES_FILE || kind == N_LIVE_FILE) {
        file_fh_t *fh = (file_fh_t *)(uintptr_t)fi->fh;
        if (kind == N_LIVE_FILE)
            fs__live_closed(n);
        if (fh->counted)
            fs__job_file_closed(fh->job);
        fh_unref(fh); /* closed now, or when the last read or write of it in the thread pool lands */
    }
    fuse_reply_err(req, 0);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { fuse_reply_err(req, 0); }

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    fs_t *fs = fs_of(req);
    node_t *n = fs__node_get(fs, ino);
    if (n && (n->kind == N_STAGE || n->kind == N_RES) && fi && fi->fh)
        return io_queue(fs, req, (file_fh_t *)(uintptr_t)fi->fh, IO_FSYNC, NULL, 0, 0, datasync);
    fuse_reply_err(req, 0);
}

/* Common checks for creating name in parent (what: "create", "mkdir"... for a failure's reason).
 * Returns the parent's backing path or NULL (replied). */
static char *create_prep(fuse_req_t req, fs_t *fs, node_t *p, const char *name, const char *what)
{
    if (!p)
        return fuse_reply_err(req, ENOENT), NULL;
    int rc = !valid_name(name) ? (strlen(name) > 255 ? -ENAMETOOLONG : -EINVAL) : stage_writable(p);
    if (rc) {
        stage_failed(p, name, what, strerror(-rc));
        return fuse_reply_err(req, -rc), NULL;
    }
    return fs__node_backing(fs, p);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    fs_t *fs = fs_of(req);
    node_t *p = fs__node_live(fs, parent);
    if (p && p->kind == N_JOBS)
        return (void)fuse_reply_err(req, EPERM); /* a job is a directory */
    char *dir = create_prep(req, fs, p, name, "create");
    if (!dir)
        return;
    char *path = xasprintf("%s/%s", dir, name);
    free(dir);
    /* Made anew (O_EXCL first) or truncated, the file's errors go; an existing file opened as it is
     * (a create racing a lookup) keeps them: its content is what failed. */
    int flags = (fi->flags | O_CREAT | O_CLOEXEC | O_NOFOLLOW) & ~O_NOCTTY;
    int fd = open(path, flags | O_EXCL, mode & 07777);
    bool made = fd >= 0;
    if (fd < 0 && errno == EEXIST && !(fi->flags & O_EXCL))
        fd = open(path, flags & ~O_CREAT, mode & 07777);
    int err = errno;
    free(path);
    if (fd < 0) {
        if (err != EEXIST) /* O_EXCL: the program asked whether it is there */
            stage_failed(p, name, "create", strerror(err));
        return (void)fuse_reply_err(req, err);
    }
    if (made || (fi->flags & O_TRUNC))
        stage_fixed(p, name);
    node_t *n = fs__node_child(p, name);
    if (!n)
        n = fs__node_new(fs, p, name, N_STAGE, p->job);
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    int rc = node_stat(fs, n, &e.attr);
    if (rc) {
        close(fd);
        return (void)fuse_reply_err(req, -rc);
    }
    e.ino = n->ino;
    open_backed(req, fs, n, fi, fd);
    fs__job_touch(n->job);
    n->nlookup++;
    if (fuse_reply_create(req, &e, fi) != 0) {
        n->nlookup--;
        file_fh_t *fh = (file_fh_t *)(uintptr_t)fi->fh;
        if (fh->counted)
            fs__job_file_closed(fh->job);
        fh_unref(fh);
    }
}

/* The answer to a mkdir in jobs/, once the pool has made the staged job (a failure is logged). */
static void mkdir_staged(void *arg, job_t *j, int status)
{
    fuse_req_t req = arg;
    if (status)
        return (void)fuse_reply_err(req, EIO);
    reply_entry(req, fs_of(req), V(j)->dir);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    fs_t *fs = fs_of(req);
    node_t *p = fs__node_live(fs, parent);
    if (p && p->kind == N_JOBS) {
        for (const char *c = name; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) /* names go into status text, line by line */
                return (void)fuse_reply_err(req, EINVAL);
        if (!valid_name(name) || strlen(name) > MANIFEST_MAX_NAME)
            return (void)fuse_reply_err(req, strlen(name) > MANIFEST_MAX_NAME ? ENAMETOOLONG : EINVAL);
        if (fs__node_child(p, name))
            return (void)fuse_reply_err(req, EEXIST);
        int rc = fs__job_new_staging(fs, name, mkdir_staged, req); /* replies later */
        if (rc)
            fuse_reply_err(req, rc == -EEXIST ? EEXIST : EIO);
        return;
    }
    char *dir = create_prep(req, fs, p, name, "mkdir");
    if (!dir)
        return;
    char *path = xasprintf("%s/%s", dir, name);
    free(dir);
    int rc = mkdir(path, mode & 07777) == 0 ? 0 : -errno;
    free(path);
    if (rc) {
        if (rc != -EEXIST) /* mkdir -p */
            stage_failed(p, name, "mkdir", strerror(-rc));
        return (void)fuse_reply_err(req, -rc);
    }
    stage_fixed(p, name);
    node_t *n = fs__node_child(p, name);
    if (!n)
        n = fs__node_new(fs, p, name, N_STAGE, p->job);
    fs__job_touch(p->job);
    reply_entry(req, fs, n);
}

/* Removes name (node n, if the kernel looked it up) from the staging directory p. */
static void stage_remove(fuse_req_t req, fs_t *fs, node_t *p, node_t *n, const char *name, bool is_dir)
{
    int rc = stage_writable(p);
    if (rc)
        return (void)fuse_reply_err(req, -rc);
    char *dir = fs__node_backing(fs, p);
    char *path = xasprintf("%s/%s", dir, name);
    rc = (is_dir ? rmdir(path) : unlink(path)) == 0 ? 0 : -errno;
    free(dir);
    free(path);
    if (!rc && n)
        fs__node_detach(fs, n);
    if (!rc && !is_dir && V(p->job) && p == V(p->job)->dir && !strcmp(name, FS_COPY_ERR_FILE)) {
        fs__copy_waived(p->job); /* the user publishes the job without what failed */
    } else if (!rc) {
        char *rel = stage_path(p, name);
        if (is_dir)
            fs__copy_fixed(p->job, rel);
        else
            fs__copy_removed(p->job, rel); /* rsync's temporary file: the file it was for is missing */
        free(rel);
    }
    if (!rc)
        fs__job_touch(p->job);
    fuse_reply_err(req, -rc);
}

/*
 * rm -r results/<name> of a job that was removed from jobs/ and is over: each unlink and rmdir
 * removes the file on disk (in the thread pool; the answer is sent from the loop after the node
 * goes), and the rmdir of results/<name> itself forgets the job: its record, what is left of its
 * results and its inputs (pool_job_forget). Results of a job still in jobs/ stay read-only.
 */
typedef struct res_rm {
    uv_work_t w;
    fs_t *fs;
    fuse_req_t req;
    fuse_ino_t parent;
    char *name, *path;
    pool_job_t *job;
    bool dir, forget;
    int rc;
} res_rm_t;

static bool results_removable(const pool_job_t *j)
{
    return j && !j->remote && j->published && !j->listed && pool_job_over(j);
}

static void res_rm_run(uv_work_t *w)
{
    res_rm_t *r = w->data;
    r->rc = (r->dir ? rmdir(r->path) : unlink(r->path)) == 0 ? 0 : -errno;
}

static void res_rm_done(uv_work_t *w, int status)
{
    res_rm_t *r = w->data;
    if (status == UV_ECANCELED)
        r->rc = -ECANCELED;
    node_t *p = r->rc ? NULL : fs__node_live(r->fs, r->parent);
    node_t *n = p ? fs__node_child(p, r->name) : NULL;
    if (n)
        fs__node_detach(r->fs, n);
    if (!r->rc && r->forget && !r->job->gone)
        pool_job_forget(r->job);
    fuse_reply_err(r->req, -r->rc);
    r->fs->pending_replies--;
    pool_job_unref(r->job);
    free(r->name);
    free(r->path);
    free(r);
}

static void results_remove(fuse_req_t req, fs_t *fs, fuse_ino_t parent, node_t *p, pool_job_t *j, const char *name,
                           bool dir)
{
    if (!results_removable(j))
        return (void)fuse_reply_err(req, EROFS); /* docs/usage.md: remove the job from jobs/ first */
    res_rm_t *r = xcalloc(1, sizeof(*r));
    r->w.data = r;
    r->fs = fs;
    r->req = req;
    r->parent = parent;
    r->name = xstrdup(name);
    r->job = j;
    r->dir = dir;
    r->forget = p->kind == N_RESULTS;
    if (r->forget) {
        r->path = xasprintf("%s/results/%s", fs->data_dir, j->id);
    } else {
        char *d = fs__node_backing(fs, p);
        r->path = xasprintf("%s/%s", d, name);
        free(d);
    }
    pool_job_ref(j);
    fs->pending_replies++;
    uv_queue_work(fs->loop, &r->w, res_rm_run, res_rm_done);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fs_t *fs = fs_of(req);
    node_t *p = fs__node_live(fs, parent);
    if (!p)
        return (void)fuse_reply_err(req, ENOENT);
    node_t *n = fs__node_child(p, name);
    if (p->kind == N_PUB_DIR) {
        if (!n)
            return (void)fuse_reply_err(req, ENOENT);
        if (p->job->remote)
            return (void)fuse_reply_err(req, EPERM); /* only its submitter can cancel it */
        if (n->kind != N_PUB_FILE)
            return (void)fuse_reply_err(req, EISDIR);
        pool_job_cancel(p->job, "cancelled: removed from jobs/");
        fs__node_detach(fs, n);
        return (void)fuse_reply_err(req, 0);
    }
    if (p->kind == N_RES)
        return results_remove(req, fs, parent, p, p->job, name, false);
    stage_remove(req, fs, p, n, name, false);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fs_t *fs = fs_of(req);
    node_t *p = fs__node_live(fs, parent);
    if (!p)
        return (void)fuse_reply_err(req, ENOENT);
    node_t *n = fs__node_child(p, name);
    if (p->kind == N_JOBS || p->kind == N_PUB_DIR) {
        if (!n)
            return (void)fuse_reply_err(req, ENOENT);
        if (n->kind == N_PUB_DIR) {
            if (n->job->remote)
                return (void)fuse_reply_err(req, EPERM);
            if (n->nkids > 0)
                return (void)fuse_reply_err(req, ENOTEMPTY);
            pool_job_cancel(n->job, "cancelled: removed from jobs/");
            if (p->kind == N_JOBS)
                fs__job_unlink_dir(n->job);
            else
                fs__node_detach(fs, n);
            return (void)fuse_reply_err(req, 0);
        }
        if (p->kind == N_PUB_DIR)
            return (void)fuse_reply_err(req, ENOTDIR);
        /* a staging job's root */
        if (n->job->state == POOL_JOB_PUBLISHING)
            return (void)fuse_reply_err(req, EBUSY);
        char *path = fs__node_backing(fs, n);
        int rc = rmdir(path) == 0 ? 0 : -errno;
        free(path);
        if (!rc)
            fs__job_unlink_dir(n->job);
        return (void)fuse_reply_err(req, -rc);
    }
    if (p->kind == N_RES)
        return results_remove(req, fs, parent, p, p->job, name, true);
    if (p->kind == N_RESULTS && n && n->kind == N_RES)
        return results_remove(req, fs, parent, p, n->job, name, true);
    stage_remove(req, fs, p, n, name, true);
}

/* A rename within a staged job failed (rsync's rename of its temporary file into place, say): the
 * file at newname is not what the copy meant it to be; the error stands there until it is made. */
static void rename_failed(node_t *p, const char *name, node_t *np, const char *newname, int err)
{
    char *from = stage_path(p, name), *to = stage_path(np, newname);
    char *msg = xasprintf("rename %s -> %s: %s", from, to, strerror(err));
    fs__copy_failed(np->job, to, msg);
    free(msg);
    free(from);
    free(to);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    fs_t *fs = fs_of(req);
    node_t *p = fs__node_live(fs, parent), *np = fs__node_live(fs, newparent);
    if (!p || !np)
        return (void)fuse_reply_err(req, ENOENT);
    if (flags & RENAME_EXCHANGE)
        return (void)fuse_reply_err(req, EINVAL);
    if (!valid_name(newname))
        return (void)fuse_reply_err(req, EINVAL);
    if (p->kind == N_JOBS && np->kind == N_JOBS) { /* renaming a whole job (mv .x.tmp x) */
        node_t *n = fs__node_child(p, name);
        if (!n)
            return (void)fuse_reply_err(req, ENOENT);
        if (strcmp(name, newname) == 0)
            return (void)fuse_reply_err(req, 0);
        if (n->kind != N_STAGE || n->job->state == POOL_JOB_PUBLISHING)
            return (void)fuse_reply_err(req, n->kind == N_STAGE ? EBUSY : EROFS);
        for (const char *c = newname; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                return (void)fuse_reply_err(req, EINVAL);
        if (fs__node_child(np, newname) || strlen(newname) > MANIFEST_MAX_NAME)
            return (void)fuse_reply_err(req, fs__node_child(np, newname) ? EEXIST : ENAMETOOLONG);
        job_t *other = fs__job_find(fs, newname);
        if (other && !pool_job_over(other))
            return (void)fuse_reply_err(req, EEXIST);
        char *from = xasprintf("%s/staging/%s", fs->data_dir, name);
        char *to = xasprintf("%s/staging/%s", fs->data_dir, newname);
        int rc = rename(from, to) == 0 ? 0 : -errno;
        free(from);
        free(to);
        if (!rc)
            fs__job_renamed(n->job, newname);
        return (void)fuse_reply_err(req, -rc);
    }
    if (p->kind != N_STAGE || np->kind != N_STAGE) {
        int rc = stage_writable(p->kind == N_STAGE ? np : p);
        return (void)fuse_reply_err(req, rc ? -rc : EXDEV);
    }
    if (p->job != np->job)
        return (void)fuse_reply_err(req, EXDEV); /* mv falls back to copy + remove */
    int rc = stage_writable(p);
    if (rc) {
        rename_failed(p, name, np, newname, -rc); /* EBUSY: being published */
        return (void)fuse_reply_err(req, -rc);
    }
    char *d1 = fs__node_backing(fs, p), *d2 = fs__node_backing(fs, np);
    char *from = xasprintf("%s/%s", d1, name), *to = xasprintf("%s/%s", d2, newname);
    rc = renameat2(AT_FDCWD, from, AT_FDCWD, to, flags) == 0 ? 0 : -errno;
    free(d1);
    free(d2);
    free(from);
    free(to);
    if (!rc) {
        node_t *victim = fs__node_child(np, newname);
        if (victim)
            fs__node_detach(fs, victim);
        node_t *n = fs__node_child(p, name);
        if (n)
            fs__node_rename(n, np, newname);
        char *rfrom = stage_path(p, name), *rto = stage_path(np, newname);
        fs__copy_moved(p->job, rfrom, rto);
        free(rfrom);
        free(rto);
        fs__job_touch(p->job);
    } else if (rc != -EEXIST) { /* RENAME_NOREPLACE: the program asked whether it is there */
        rename_failed(p, name, np, newname, -rc);
    }
    fuse_reply_err(req, -rc);
}

/* A job holds regular files and directories only (docs/job-format.md): a symlink is refused, and in
 * a job being copied in the refusal is remembered, so the job is not published without it. */
static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    fs_t *fs = fs_of(req);
    node_t *p = fs__node_live(fs, parent);
    if (p && p->kind == N_STAGE) {
        char *path = stage_path(p, name);
        char *msg = xasprintf("symlink %s -> %s: a job holds regular files and directories only (copy the file "
                              "it points to in its place: cp -L)", path, link);
        fs__copy_failed(p->job, path, msg);
        free(path);
        free(msg);
    } else {
        log_warn("symlink %s refused: jobs hold regular files and directories only", name);
    }
    fuse_reply_err(req, EPERM);
}

/* mknod: a regular file is made (as create does); a FIFO, socket or device is refused, as a symlink is. */
static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    fs_t *fs = fs_of(req);
    node_t *p = fs__node_live(fs, parent);
    if (p && p->kind == N_JOBS)
        return (void)fuse_reply_err(req, EPERM); /* a job is a directory */
    if (!S_ISREG(mode)) {
        stage_failed(p, name, "special file", "a job holds regular files and directories only");
        return (void)fuse_reply_err(req, p ? EPERM : ENOENT);
    }
    char *dir = create_prep(req, fs, p, name, "create");
    if (!dir)
        return;
    char *path = xasprintf("%s/%s", dir, name);
    free(dir);
    int rc = mknod(path, S_IFREG | (mode & 07777), 0) == 0 ? 0 : -errno;
    free(path);
    if (rc) {
        if (rc != -EEXIST)
            stage_failed(p, name, "create", strerror(-rc));
        return (void)fuse_reply_err(req, -rc);
    }
    node_t *n = fs__node_child(p, name);
    if (!n)
        n = fs__node_new(fs, p, name, N_STAGE, p->job);
    stage_fixed(p, name);
    fs__job_touch(p->job);
    reply_entry(req, fs, n);
}

/* A hard link within a job being copied in (cp -a keeps them): a real link in its staging tree.
 * Each name is published as a file of its own (their blocks are stored once). */
static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    fs_t *fs = fs_of(req);
    node_t *n = fs__node_live(fs, ino), *np = fs__node_live(fs, newparent);
    if (!n || !np)
        return (void)fuse_reply_err(req, ENOENT);
    if (np->kind == N_STAGE && (n->kind != N_STAGE || n->job != np->job)) {
        stage_failed(np, newname, "hard link", "to a file outside this job");
        return (void)fuse_reply_err(req, EXDEV);
    }
    char *dir = create_prep(req, fs, np, newname, "hard link");
    if (!dir)
        return;
    char *to = xasprintf("%s/%s", dir, newname), *from = fs__node_backing(fs, n);
    free(dir);
    int rc = link(from, to) == 0 ? 0 : -errno;
    free(from);
    free(to);
    if (rc) {
        if (rc != -EEXIST)
            stage_failed(np, newname, "hard link", strerror(-rc));
        return (void)fuse_reply_err(req, -rc);
    }
    node_t *k = fs__node_child(np, newname);
    if (!k)
        k = fs__node_new(fs, np, newname, N_STAGE, np->job);
    stage_fixed(np, newname);
    char *src = stage_path(n, NULL);
    if (fs__copy_erred(np->job, src)) { /* the same inode: what failed in it is in this name too */
        char *why = xasprintf("a hard link to %s, whose copy failed", src);
        stage_failed(np, newname, "link", why);
        free(why);
    }
    free(src);
    fs__job_touch(np->job);
    reply_entry(req, fs, k);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs sv;
    if (statvfs(fs_of(req)->data_dir, &sv) != 0)
        return (void)fuse_reply_err(req, errno);
    fuse_reply_statfs(req, &sv);
}

const struct fuse_lowlevel_ops fs__ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .release = op_release,
    .flush = op_flush,
    .fsync = op_fsync,
    .create = op_create,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .rename = op_rename,
    .symlink = op_symlink,
    .mknod = op_mknod,
    .link = op_link,
    .statfs = op_statfs,
};
