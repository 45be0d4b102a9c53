/*
 * view.c: the jobs of the pool as the tree shows them, on the loop thread.
 *
 * The pool (pool/pool.h) owns every job's record; the view keeps, per job, its nodes (jobs/<name>,
 * results/<name>, status/<name>, wait/<name>), the readers parked on wait/<name>, and while the job
 * is being copied in, the quiet timer: a copy is published (pool_job_publish) once no file of it has
 * been open for --quiet-ms, or at once when it was renamed from a dot-name. The pool's callbacks
 * (fs__view) keep the nodes in step with the records: a job added gets its nodes, a job published
 * gets its read-only tree, an unlisted one leaves jobs/, a forgotten one leaves everything.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/files.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "fs/internal.h"

void fs__reply_slice(fuse_req_t req, const char *text, size_t len, size_t size, off_t off)
{
    if ((size_t)off >= len)
        return (void)fuse_reply_buf(req, NULL, 0);
    size_t n = len - (size_t)off < size ? len - (size_t)off : size;
    fuse_reply_buf(req, text + off, n);
}

static void wait_reply(waiter_t *w, const char *text, size_t len)
{
    if (!w->fh->text) {
        w->fh->text = xmalloc(len + 1);
        memcpy(w->fh->text, text, len);
        w->fh->len = len;
    }
    fs__reply_slice(w->req, w->fh->text, w->fh->len, w->size, w->off);
}

job_t *fs__job_find(fs_t *fs, const char *name) { return pool_job_find(fs->pool, name); }

void fs__job_wake(job_t *j)
{
    jview_t *v = V(j);
    if (!v || !v->waiters)
        return;
    size_t len;
    char *text = pool_job_status_text(j, &len);
    while (v->waiters) {
        waiter_t *w = v->waiters;
        v->waiters = w->next;
        wait_reply(w, text, len);
        free(w);
    }
    free(text);
}

static void on_interrupt(fuse_req_t req, void *data)
{
    waiter_t *target = data;
    jview_t *v = V(target->job);
    for (waiter_t **pp = v ? &v->waiters : NULL; pp && *pp; pp = &(*pp)->next) {
        if (*pp == target) {
            *pp = target->next;
            fuse_reply_err(req, EINTR);
            free(target);
            return;
        }
    }
}

void fs__wait_park(job_t *j, fuse_req_t req, size_t size, off_t off, struct wait_fh *fh)
{
    jview_t *v = V(j);
    if (!v)
        return (void)fuse_reply_err(req, ENOENT);
    waiter_t *w = xcalloc(1, sizeof(*w));
    *w = (waiter_t){.req = req, .size = size, .off = off, .fh = fh, .job = j, .next = v->waiters};
    v->waiters = w;
    fuse_req_interrupt_func(req, on_interrupt, w); /* may call on_interrupt at once */
}

/* ---- what the copy into a staged job reported: it is not published while any error stands ---- */

/*
 * The errors live in the view and in the job's FS_COPY_ERR_FILE, rewritten whenever the list changes
 * (not for an error only counted past FS_MAX_COPY_ERRORS: a copy of 100k symlinks writes it about 65
 * times, not 100k), so that a restart between the failed copy and its quiet period does not publish
 * the job anyway. The file is small (at most FS_MAX_COPY_ERRORS entries) and written rarely; like the
 * other metadata operations on a staged tree (mkdir, unlink, rename in ops.c), it is written from the
 * loop, in the order of the FUSE operations that changed it (docs/architecture.md, "One loop").
 */
static char *cerr_file(const job_t *j)
{
    return xasprintf("%s/staging/%s/%s", V(j)->fs->data_dir, j->name, FS_COPY_ERR_FILE);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes text (NULL: it could not be made) to path: written beside it and renamed over it, never
 * through a name the copy made (a hard link to one of the job's files, say), and never seen
 * half-written after a crash. 0 or -errno. */
static int text_file_put(const char *path, const char *text)
{
    char *tmp = xasprintf("%s.tmp", path);
    int fd = -1, rc = !text ? -EINVAL : 0;
    if (!rc && unlink(tmp) != 0 && errno != ENOENT)
        rc = -errno;
    if (!rc && (fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644)) < 0)
        rc = -errno;
    if (!rc && write_all(fd, text, strlen(text)) != 0)
        rc = -EIO;
    if (fd >= 0 && close(fd) != 0 && !rc)
        rc = -errno;
    if (!rc && rename(tmp, path) != 0)
        rc = -errno;
    if (rc && fd >= 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* The same with doc as JSON (ok: it was built whole). */
static int json_file_put(const char *path, json_t *doc, bool ok)
{
    char *text = doc && ok ? json_dumps(doc, JSON_INDENT(1)) : NULL;
    int rc = text_file_put(path, text);
    free(text);
    return rc;
}

static void cerr_save(job_t *j)
{
    jview_t *v = V(j);
    char *path = cerr_file(j);
    if (v->ncerr == 0 && v->cerr_more == 0) {
        if (unlink(path) != 0 && errno != ENOENT)
            log_warn("job %s: cannot remove %s: %s", j->name, path, strerror(errno));
        free(path);
        return;
    }
    char *text = fs__cerr_format(v->cerr, v->ncerr, v->cerr_more);
    int rc = text_file_put(path, text);
    if (rc)
        log_warn("job %s: cannot write %s: %s: its copy errors would be forgotten by a restart", j->name, path,
                 strerror(-rc));
    free(text);
    free(path);
}

static void cerr_drop(jview_t *v, size_t i)
{
    free(v->cerr[i].path);
    free(v->cerr[i].why);
    memmove(&v->cerr[i], &v->cerr[i + 1], (v->ncerr - i - 1) * sizeof(*v->cerr)); /* in the order they came */
    v->ncerr--;
}

static void cerr_free(jview_t *v)
{
    while (v->ncerr)
        cerr_drop(v, v->ncerr - 1);
    free(v->cerr);
    v->cerr = NULL;
    v->cerr_more = 0;
}

/* Remembers an error at path. true if the list changed (a new entry, or another reason for one
 * already there): it is to be written and said; false if it was only counted past the cap. */
static bool cerr_add(jview_t *v, const char *path, const char *why)
{
    char cut[FS_MAX_COPY_ERR_WHY];
    snprintf(cut, sizeof(cut), "%s", why);
    for (size_t i = 0; i < v->ncerr; i++) {
        if (!strcmp(v->cerr[i].path, path)) { /* the same path failed again: its latest error */
            if (!strcmp(v->cerr[i].why, cut))
                return false;
            free(v->cerr[i].why);
            v->cerr[i].why = xstrdup(cut);
            return true;
        }
    }
    if (v->ncerr == FS_MAX_COPY_ERRORS) {
        if (v->cerr_more < FS_MAX_COPY_ERR_MORE)
            v->cerr_more++;
        return v->cerr_more == 1; /* the file must say that some are only counted: they block till waived */
    }
    if (!v->cerr)
        v->cerr = xcalloc(FS_MAX_COPY_ERRORS, sizeof(*v->cerr));
    v->cerr[v->ncerr++] = (fs_copy_err_t){.path = xstrdup(path), .why = xstrdup(cut)};
    return true;
}

/* Reads a staged job's file in the data directory (FS_COPY_ERR_FILE, FS_WRITING_FILE), which anyone
 * with the data directory may have changed: a regular file (not through a symlink) of at most
 * FS_MAX_COPY_ERR_FILE bytes. 0 with *text (free it) and *len, -ENOENT if there is none, -EINVAL
 * if it cannot be read as such a file. */
static int state_file_read(const char *path, char **text, size_t *len)
{
    struct stat st;
    *text = NULL;
    *len = 0;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? -ENOENT : -EINVAL;
    if (S_ISREG(st.st_mode) && st.st_size <= FS_MAX_COPY_ERR_FILE &&
        files_read_small(path, FS_MAX_COPY_ERR_FILE + 1, text, len) == 0 && *len <= FS_MAX_COPY_ERR_FILE)
        return 0;
    free(*text);
    *text = NULL;
    return -EINVAL;
}

static void cerr_load_one(void *arg, const char *path, const char *why) { cerr_add(arg, path, why); }

/* A staged job restored after a restart: the errors its copy had, from its file, which anyone with
 * the data directory may have changed: a regular file (not through a symlink) of at most
 * FS_MAX_COPY_ERR_FILE bytes, JSON, each entry a confined path and a reason. A file that cannot be
 * read, or an entry that is not one, counts as one more error (path "": only waiving clears it), so
 * the job waits rather than publishes. */
static void cerr_load(job_t *j)
{
    jview_t *v = V(j);
    char *path = cerr_file(j), *text;
    size_t len, bad = 0, more = 0;
    int rc = state_file_read(path, &text, &len);
    if (rc == -ENOENT) {
        free(path);
        return;
    }
    if (rc == 0)
        bad = fs__cerr_parse(text, len, cerr_load_one, v, &more);
    else
        bad = 1;
    free(text);
    if (more)
        v->cerr_more = more;
    if (bad || (v->ncerr == 0 && v->cerr_more == 0)) {
        log_warn("job %s: %s cannot be read, or holds what is not a copy error: the job waits until it is "
                 "removed", j->name, path);
        cerr_add(v, "", "its list of copy errors (" FS_COPY_ERR_FILE ") cannot be read");
    }
    free(path);
}

/* path is at or below dir ("" is above everything). */
static bool path_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return n == 0 || (!strncmp(path, dir, n) && (path[n] == '\0' || path[n] == '/'));
}

void fs__copy_failed(job_t *j, const char *path, const char *why)
{
    jview_t *v = j ? V(j) : NULL;
    if (!v || j->published)
        return;
    size_t more = v->cerr_more;
    if (cerr_add(v, path, why)) {
        if (v->cerr_more > more)
            log_warn("job %s: more than %d copy errors: the rest are only counted", j->name, FS_MAX_COPY_ERRORS);
        else
            log_warn("job %s: %s (not published until fixed)", j->name, why);
        cerr_save(j);
    }
    fs__job_touch(j); /* a publish under way is stale now; once quiet, the job is rejected */
}

bool fs__copy_erred(const job_t *j, const char *path)
{
    const jview_t *v = j ? V(j) : NULL;
    for (size_t i = 0; v && i < v->ncerr; i++)
        if (path_under(v->cerr[i].path, path))
            return true;
    return false;
}

void fs__copy_fixed(job_t *j, const char *path)
{
    jview_t *v = j ? V(j) : NULL;
    if (!v || v->ncerr == 0)
        return;
    size_t before = v->ncerr;
    for (size_t i = v->ncerr; i-- > 0;)
        if (path_under(v->cerr[i].path, path))
            cerr_drop(v, i);
    if (v->ncerr != before)
        cerr_save(j);
}

/* rsync writes each file as ".NAME.XXXXXX" beside it and renames it into place; if the write fails it
 * removes that file. The final name of such a temporary name, or NULL. */
static char *rsync_final_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n < 9 || base[0] != '.' || base[n - 7] != '.')
        return NULL;
    for (size_t i = n - 6; i < n; i++)
        if (!((base[i] >= 'a' && base[i] <= 'z') || (base[i] >= 'A' && base[i] <= 'Z') ||
              (base[i] >= '0' && base[i] <= '9')))
            return NULL;
    return xasprintf("%.*s%.*s", (int)(base - path), path, (int)(n - 8), base + 1);
}

void fs__copy_removed(job_t *j, const char *path)
{
    jview_t *v = j ? V(j) : NULL;
    char *final = v && v->ncerr ? rsync_final_name(path) : NULL;
    if (!final || !fs__copy_erred(j, path)) {
        free(final);
        return fs__copy_fixed(j, path);
    }
    /* A program removed its temporary file after writing it failed: the file it was for is still
     * missing. The error moves to that name; making it (rsync run again, cp) clears it. */
    for (size_t i = 0; i < v->ncerr; i++) {
        if (strcmp(v->cerr[i].path, path) != 0)
            continue;
        free(v->cerr[i].path);
        v->cerr[i].path = xstrdup(final);
    }
    for (size_t i = 0; i < v->ncerr; i++) /* two entries for final now? keep the first */
        for (size_t k = v->ncerr; k-- > i + 1;)
            if (!strcmp(v->cerr[k].path, v->cerr[i].path))
                cerr_drop(v, k);
    cerr_save(j);
    free(final);
}

void fs__copy_moved(job_t *j, const char *path, const char *newpath)
{
    jview_t *v = j ? V(j) : NULL;
    if (!v || v->ncerr == 0)
        return;
    fs__copy_fixed(j, newpath); /* what was there is replaced */
    bool moved = false;
    size_t n = strlen(path);
    for (size_t i = 0; i < v->ncerr; i++) {
        if (!*path || !path_under(v->cerr[i].path, path))
            continue;
        char *np = xasprintf("%s%s", newpath, v->cerr[i].path + n);
        free(v->cerr[i].path);
        v->cerr[i].path = np;
        moved = true;
    }
    if (moved)
        cerr_save(j);
}

void fs__copy_waived(job_t *j)
{
    jview_t *v = j ? V(j) : NULL;
    if (!v || (v->ncerr == 0 && v->cerr_more == 0))
        return;
    log_info("job %s: %zu copy errors waived (%s removed): it is published without what failed", j->name,
             v->ncerr + v->cerr_more, FS_COPY_ERR_FILE);
    cerr_free(v);
}

/* ---- files open for writing in a staged job: a stop or a crash cuts their writers short ---- */

/*
 * A program copying a job in writes its files through the mount; if the peer is killed (or stops)
 * meanwhile, the program's write fails, but the peer that comes back cannot know it: the file on
 * disk is only cut short, and the quiet period would publish it so. So while any file of a staged
 * job is open for writing, FS_WRITING_FILE names it (rewritten when the set of such paths changes:
 * for `cp -r`, once at each file's open and removed at its close; from the loop, like
 * FS_COPY_ERR_FILE). A start that finds it turns each path named into a copy error: the job is
 * rejected with the reason until the file is written again, removed, or the errors waived.
 */
static char *wopen_file(const job_t *j)
{
    return xasprintf("%s/staging/%s/%s", V(j)->fs->data_dir, j->name, FS_WRITING_FILE);
}

static void wopen_save(job_t *j)
{
    jview_t *v = V(j);
    char *path = wopen_file(j);
    if (v->nwopen == 0) {
        if (unlink(path) != 0 && errno != ENOENT)
            log_warn("job %s: cannot remove %s: %s", j->name, path, strerror(errno));
        free(path);
        return;
    }
    json_t *arr = json_array();
    size_t shown = v->nwopen < FS_MAX_COPY_ERRORS ? v->nwopen : FS_MAX_COPY_ERRORS;
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(arr, fs__json_name(v->wopen[i].path));
    json_t *doc = json_pack("{s:o, s:I}", "open", arr, "more", (json_int_t)(v->nwopen - shown));
    int rc = json_file_put(path, doc, json_array_size(arr) == shown);
    if (rc)
        log_warn("job %s: cannot write %s: %s: a crash while it is copied in would go unnoticed", j->name, path,
                 strerror(-rc));
    json_decref(doc);
    free(path);
}

void fs__job_write_started(job_t *j, const char *path)
{
    jview_t *v = j ? V(j) : NULL;
    if (!v || j->published)
        return;
    for (size_t i = 0; i < v->nwopen; i++) {
        if (!strcmp(v->wopen[i].path, path)) {
            v->wopen[i].n++;
            return;
        }
    }
    v->wopen = xrealloc(v->wopen, (v->nwopen + 1) * sizeof(*v->wopen));
    v->wopen[v->nwopen++] = (fs_wopen_t){.path = xstrdup(path), .n = 1};
    wopen_save(j);
}

void fs__job_write_ended(job_t *j, const char *path)
{
    jview_t *v = j ? V(j) : NULL;
    if (!v || v->fs->stopping) /* stopping: a writer still there is cut short, the file stays listed */
        return;
    for (size_t i = 0; i < v->nwopen; i++) {
        if (strcmp(v->wopen[i].path, path) != 0 || --v->wopen[i].n > 0)
            continue;
        free(v->wopen[i].path);
        v->wopen[i] = v->wopen[--v->nwopen];
        if (!j->published && !j->gone)
            wopen_save(j);
        return;
    }
}

static void wopen_free(jview_t *v)
{
    for (size_t i = 0; i < v->nwopen; i++)
        free(v->wopen[i].path);
    free(v->wopen);
    v->wopen = NULL;
    v->nwopen = 0;
}

/* A staged job restored after a restart: the files its FS_WRITING_FILE names were being written when
 * the peer stopped. Each becomes a copy error (kept in FS_COPY_ERR_FILE), and the list goes. A list
 * that cannot be read, or an entry that is no path, is one error that only waiving clears. */
static void wopen_load(job_t *j)
{
    jview_t *v = V(j);
    char *path = wopen_file(j), *text;
    size_t len, bad = 0, n = 0;
    int rc = state_file_read(path, &text, &len);
    if (rc == -ENOENT) {
        free(path);
        return;
    }
    json_t *doc = rc == 0 ? json_loadb(text, len, 0, NULL) : NULL;
    free(text);
    json_t *arr = json_object_get(doc, "open"), *more = json_object_get(doc, "more");
    if (!json_is_array(arr) || !json_is_integer(more) || json_integer_value(more) != 0)
        bad++;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        const char *p = json_string_value(e);
        if (p && fs__cerr_path_ok(p)) {
            char *why = xasprintf("write %s: preon stopped while it was open for writing, so it may be cut short "
                                  "(copy it again)", p);
            cerr_add(v, p, why);
            free(why);
            n++;
        } else {
            bad++;
        }
    }
    if (bad)
        cerr_add(v, "", "preon stopped while files of this job were open for writing (" FS_WRITING_FILE
                        " cannot be read): they may be cut short");
    log_warn("job %s: preon stopped while %zu of its files were open for writing: it is not published until "
             "each is written again (or the copy errors waived)", j->name, n + bad);
    cerr_save(j);
    if (unlink(path) != 0)
        log_warn("job %s: cannot remove %s: %s", j->name, path, strerror(errno));
    json_decref(doc);
    free(path);
}

/* The reason a job whose copy failed is rejected with: its first errors, then how to go on. */
static char *cerr_reason(const job_t *j)
{
    const jview_t *v = V(j);
    size_t shown = v->ncerr < 3 ? v->ncerr : 3, left = v->ncerr - shown + v->cerr_more;
    char *out = xstrdup("its copy into jobs/ reported errors: ");
    for (size_t i = 0; i < shown; i++) {
        char *next = xasprintf("%s%s%s", out, i ? "; " : "", v->cerr[i].why);
        free(out);
        out = next;
    }
    char *more = left ? xasprintf("; and %zu more", left) : xstrdup("");
    char *next = xasprintf("%s%s (listed in jobs/%s/%s; fix or remove each path, or remove that file to publish "
                           "without them)", out, more, j->name, FS_COPY_ERR_FILE);
    free(more);
    free(out);
    return next;
}

/* ---- the quiet period of a job being copied in ---- */

static void on_quiet(uv_timer_t *t)
{
    job_t *j = t->data;
    jview_t *v = V(j);
    if (!v || v->open_files > 0 || !v->dir || j->name[0] == '.')
        return;
    if (j->state == POOL_JOB_STAGING || (j->state == POOL_JOB_REJECTED && v->publish_now)) {
        if (v->ncerr || v->cerr_more) { /* a copy that failed part-way never publishes */
            char *why = cerr_reason(j);
            pool_job_reject(j, why);
            free(why);
        } else {
            pool_job_publish(j);
        }
    }
    v->publish_now = false;
}

static void arm_quiet(fs_t *fs, job_t *j, uint64_t ms)
{
    jview_t *v = V(j);
    if (!v)
        return;
    if (!v->quiet) {
        v->quiet = xcalloc(1, sizeof(*v->quiet));
        uv_timer_init(fs->loop, v->quiet);
        v->quiet->data = j;
    }
    uv_timer_start(v->quiet, on_quiet, ms, 0);
}

void fs__job_touch(job_t *j)
{
    if (!j || j->published || !V(j))
        return;
    pool_job_touch(j);
    if (V(j)->open_files == 0)
        arm_quiet(V(j)->fs, j, V(j)->fs->opts.quiet_ms);
    else if (V(j)->quiet)
        uv_timer_stop(V(j)->quiet);
}

void fs__job_file_opened(job_t *j)
{
    jview_t *v = V(j);
    if (!v)
        return;
    v->open_files++;
    if (v->quiet)
        uv_timer_stop(v->quiet);
}

void fs__job_file_closed(job_t *j)
{
    jview_t *v = V(j);
    if (v && v->open_files > 0 && --v->open_files == 0 && !j->published && !j->gone)
        arm_quiet(V(j)->fs, j, v->publish_now ? 0 : V(j)->fs->opts.quiet_ms);
}

typedef struct staging {
    fs_t *fs;
    pool_stage_cb cb;
    void *arg;
} staging_t;

static void on_staged(void *arg, job_t *j, int status)
{
    staging_t *st = arg;
    st->fs->pending_replies--;
    if (!status && (!V(j) || !V(j)->dir))
        status = -EIO; /* fs_stop came first: job_added gave it no nodes */
    st->cb(st->arg, status ? NULL : j, status);
    free(st);
}

int fs__job_new_staging(fs_t *fs, const char *name, pool_stage_cb cb, void *arg)
{
    staging_t *st = xmalloc(sizeof(*st));
    *st = (staging_t){.fs = fs, .cb = cb, .arg = arg};
    int rc = pool_job_stage(fs->pool, name, on_staged, st); /* fs__view.job_added makes its nodes */
    if (rc) {
        free(st);
        return rc;
    }
    fs->pending_replies++; /* fs_stop keeps the session until cb has replied */
    return 0;
}

void fs__job_renamed(job_t *j, const char *newname)
{
    fs_t *fs = V(j)->fs;
    bool from_dot = j->name[0] == '.';
    pool_job_rename(j, newname); /* a live job of newname goes first (its nodes with it) */
    jview_t *v = V(j);
    fs__node_rename(v->dir, fs->jobs, newname);
    fs__node_rename(v->status, fs->statusdir, newname);
    fs__node_rename(v->wait, fs->waitdir, newname);
    if (from_dot && newname[0] != '.') {
        v->publish_now = true; /* a staged directory moved into place: it is complete */
        if (v->open_files == 0)
            arm_quiet(fs, j, 0);
    } else if (v->open_files == 0) {
        arm_quiet(fs, j, fs->opts.quiet_ms);
    }
}

void fs__job_unlink_dir(job_t *j) { pool_job_unlist(j); }

/* ---- the pool's callbacks ---- */

/* Turns the staging tree's nodes into the published tree (the kernel may hold some of them). */
static node_t *pub_path_node(fs_t *fs, job_t *j, const char *path, node_kind_t kind)
{
    node_t *cur = V(j)->dir;
    char *copy = xstrdup(path), *save = NULL;
    for (char *part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        node_t *k = fs__node_child(cur, part);
        if (!k)
            k = fs__node_new(fs, cur, part, N_PUB_DIR, j);
        k->kind = N_PUB_DIR;
        cur = k;
    }
    free(copy);
    cur->kind = kind;
    return cur;
}

static void prune_stage_nodes(fs_t *fs, node_t *n)
{
    for (size_t i = n->nkids; i-- > 0;) {
        node_t *k = n->kids[i];
        if (k->kind == N_STAGE)
            fs__node_detach(fs, k);
        else
            prune_stage_nodes(fs, k);
    }
}

static void build_published_tree(fs_t *fs, job_t *j)
{
    jview_t *v = V(j);
    if (j->listed) {
        if (!v->dir)
            v->dir = fs__node_new(fs, fs->jobs, j->name, N_PUB_DIR, j);
        v->dir->kind = N_PUB_DIR;
        for (size_t i = 0; i < j->man.n_dirs; i++)
            pub_path_node(fs, j, j->man.dirs[i], N_PUB_DIR);
        for (size_t i = 0; i < j->man.n_files; i++)
            pub_path_node(fs, j, j->man.files[i].path, N_PUB_FILE)->file = (int32_t)i;
        prune_stage_nodes(fs, v->dir);
    }
    /* A remote job's results/ mirrors its submitter's (mirror.c); a local one's is on disk. */
    v->results = fs__node_new(fs, fs->results, j->name, j->remote ? N_RRES_DIR : N_RES, j);
    for (uint32_t t = 0; j->remote && j->tres && t < j->man.desc.tasks; t++)
        if (j->tres[t])
            fs__mirror_add(fs, j, j->tres[t]);
}

static void on_job_added(void *arg, job_t *j)
{
    fs_t *fs = arg;
    if (fs->stopping)
        return; /* the views are freed already (fs_stop): a job arriving now gets none */
    jview_t *v = xcalloc(1, sizeof(*v));
    v->fs = fs;
    j->view = v;
    v->status = fs__node_new(fs, fs->statusdir, j->name, N_STATUS, j);
    v->wait = fs__node_new(fs, fs->waitdir, j->name, N_WAIT, j);
    if (j->published) {
        build_published_tree(fs, j);
        return;
    }
    v->dir = fs__node_new(fs, fs->jobs, j->name, N_STAGE, j);
    cerr_load(j);  /* a copy that failed before a restart */
    wopen_load(j); /* a copy cut short by it */
    arm_quiet(fs, j, fs->opts.quiet_ms);
}

static void on_job_changed(void *arg, job_t *j)
{
    fs_t *fs = arg;
    jview_t *v = V(j);
    if (!v)
        return;
    if (j->published && !v->results)
        build_published_tree(fs, j);
    if (!j->listed && v->dir) {
        fs__node_detach(fs, v->dir);
        v->dir = NULL;
    }
    if (j->state == POOL_JOB_STAGING && !j->published && v->open_files == 0)
        arm_quiet(fs, j, fs->opts.quiet_ms); /* a publish was stale: once quiet again */
    if (pool_job_over(j))
        fs__job_wake(j);
}

static void quiet_closed(uv_handle_t *h) { free(h); }

static void view_free(jview_t *v)
{
    cerr_free(v);
    wopen_free(v);
    if (v->quiet) {
        uv_timer_stop(v->quiet);
        uv_close((uv_handle_t *)v->quiet, quiet_closed);
    }
    free(v);
}

static void on_job_removed(void *arg, job_t *j)
{
    fs_t *fs = arg;
    jview_t *v = V(j);
    if (!v)
        return;
    fs__job_wake(j);
    node_t *nodes[] = {v->dir, v->results, v->status, v->wait};
    for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++)
        if (nodes[i])
            fs__node_detach(fs, nodes[i]);
    j->view = NULL;
    view_free(v);
}

static void on_result_added(void *arg, job_t *j, taskres_t *tr)
{
    if (V(j) && V(j)->results)
        fs__mirror_add(arg, j, tr);
}

const pool_view_t fs__view = {
    .job_added = on_job_added,
    .job_changed = on_job_changed,
    .job_removed = on_job_removed,
    .result_added = on_result_added,
};

static void free_one(void *arg, job_t *j)
{
    jview_t *v = V(j);
    if (!v)
        return;
    while (v->waiters) {
        waiter_t *w = v->waiters;
        v->waiters = w->next;
        fuse_reply_err(w->req, EINTR);
        free(w);
    }
    j->view = NULL;
    view_free(v);
}

void fs__views_free(fs_t *fs) { pool_jobs_foreach(fs->pool, free_one, fs); }
