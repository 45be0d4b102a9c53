/*
 * work.c: the blocking halves of publishing a job and of collecting a task's results. Both run in
 * the libuv thread pool and report a reason a user can act on ("symlinks are not supported: data/x").
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/files.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "exec/exec.h"
#include "pool/internal.h"
#include "pool/work.h"

/* ---- publishing ---- */

typedef struct scan {
    manifest_t *m;
    store_t *st; /* also put every block into this store (results a volunteer serves) */
    size_t capfiles, capdirs;
    char *why;
    size_t whylen;
} scan_t;

/* Hashes blocks [lo, hi) of a file with pread; several run at once on a big file. */
typedef struct hash_range {
    int fd;
    uint64_t size;
    uint32_t block_size;
    size_t lo, hi;
    hash_t *out;
    store_t *st;
    int rc;
    pthread_t thread;
} hash_range_t;

static void *hash_range(void *arg)
{
    hash_range_t *r = arg;
    char *buf = xmalloc(r->block_size);
    for (size_t i = r->lo; i < r->hi && !r->rc; i++) {
        uint64_t off = (uint64_t)i * r->block_size;
        size_t want = off + r->block_size <= r->size ? r->block_size : (size_t)(r->size - off);
        size_t got = 0;
        while (got < want) {
            ssize_t n = pread(r->fd, buf + got, want - got, (off_t)(off + got));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                r->rc = n < 0 ? -errno : -ESTALE;
                break;
            }
            got += (size_t)n;
        }
        if (!r->rc)
            hash_sha256(buf, want, &r->out[i]);
        if (!r->rc && r->st)
            r->rc = store_put_hashed(r->st, &r->out[i], buf, want);
    }
    free(buf);
    return NULL;
}

#define HASH_THREADS 2        /* the machines we target have two cores */
#define HASH_SPLIT_BLOCKS 16  /* below this a second thread costs more than it saves */

static int hash_file(scan_t *s, int dirfd, const char *name, const char *rel, const struct stat *st)
{
    manifest_t *m = s->m;
    if (m->n_files >= MANIFEST_MAX_FILES) {
        snprintf(s->why, s->whylen, "more than %d files, the most a job holds (pack small files into an archive, or "
                 "split the job)", MANIFEST_MAX_FILES);
        return -EMSGSIZE;
    }
    if ((uint64_t)st->st_size > MANIFEST_MAX_FILE_SIZE) {
        snprintf(s->why, s->whylen, "%s: larger than %llu bytes", rel, (unsigned long long)MANIFEST_MAX_FILE_SIZE);
        return -EMSGSIZE;
    }
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(s->why, s->whylen, "%s: %s", rel, strerror(errno));
        return -errno;
    }
    uint64_t size = (uint64_t)st->st_size;
    size_t nb = (size_t)((size + m->block_size - 1) / m->block_size);
    manifest_file_t f = {.path = xstrdup(rel), .size = size, .mode = st->st_mode & 0777, .n_blocks = nb};
    f.blocks = nb ? xcalloc(nb, sizeof(hash_t)) : NULL;
    hash_range_t r[HASH_THREADS];
    size_t nr = nb >= HASH_SPLIT_BLOCKS ? HASH_THREADS : 1;
    for (size_t k = 0; k < nr; k++)
        r[k] = (hash_range_t){.fd = fd, .size = size, .block_size = m->block_size, .lo = nb * k / nr,
                              .hi = nb * (k + 1) / nr, .out = f.blocks, .st = s->st};
    bool threaded[HASH_THREADS] = {false};
    for (size_t k = 1; k < nr; k++)
        threaded[k] = pthread_create(&r[k].thread, NULL, hash_range, &r[k]) == 0;
    hash_range(&r[0]);
    int rc = r[0].rc;
    for (size_t k = 1; k < nr; k++) {
        if (threaded[k])
            pthread_join(r[k].thread, NULL);
        else
            hash_range(&r[k]);
        if (!rc)
            rc = r[k].rc;
    }
    close(fd);
    if (rc) {
        snprintf(s->why, s->whylen, "%s: %s", rel, rc == -ESTALE ? "changed size while publishing" : strerror(-rc));
        free(f.path);
        free(f.blocks);
        return rc;
    }
    if (m->n_files == s->capfiles) {
        s->capfiles = s->capfiles ? s->capfiles * 2 : 16;
        m->files = xreallocarray(m->files, s->capfiles, sizeof(*m->files));
    }
    m->files[m->n_files++] = f;
    return 0;
}

static int scan_dir(scan_t *s, int fd0, const char *rel)
{
    DIR *d = fdopendir(fd0);
    if (!d) {
        close(fd0);
        snprintf(s->why, s->whylen, "%s: %s", *rel ? rel : ".", strerror(errno));
        return -errno;
    }
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') /* ".", "..", and dot-files (rsync's temporaries) */
            continue;
        char *sub = *rel ? xasprintf("%s/%s", rel, de->d_name) : xstrdup(de->d_name);
        struct stat st;
        if (strlen(sub) > MANIFEST_MAX_PATH) {
            snprintf(s->why, s->whylen, "path longer than %d bytes: %.60s...", MANIFEST_MAX_PATH, sub);
            rc = -ENAMETOOLONG;
        } else if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            rc = -errno;
            snprintf(s->why, s->whylen, "%s: %s", sub, strerror(errno));
        } else if (S_ISLNK(st.st_mode)) {
            snprintf(s->why, s->whylen, "symlinks are not supported in a job: %s", sub);
            rc = -EINVAL;
        } else if (S_ISDIR(st.st_mode)) {
            if (s->m->n_dirs >= MANIFEST_MAX_FILES) {
                snprintf(s->why, s->whylen, "more than %d directories, the most a job holds (pack them into an archive)",
                         MANIFEST_MAX_FILES);
                rc = -EMSGSIZE;
            } else {
                if (s->m->n_dirs == s->capdirs) {
                    s->capdirs = s->capdirs ? s->capdirs * 2 : 16;
                    s->m->dirs = xreallocarray(s->m->dirs, s->capdirs, sizeof(char *));
                }
                s->m->dirs[s->m->n_dirs++] = xstrdup(sub);
                int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0) {
                    rc = -errno;
                    snprintf(s->why, s->whylen, "%s: %s", sub, strerror(errno));
                } else {
                    rc = scan_dir(s, fd, sub);
                }
            }
        } else if (S_ISREG(st.st_mode)) {
            rc = hash_file(s, dirfd(d), de->d_name, sub, &st);
        } else {
            snprintf(s->why, s->whylen, "not a regular file or directory: %s", sub);
            rc = -EINVAL;
        }
        free(sub);
    }
    closedir(d);
    return rc;
}

static int read_small(const char *path, size_t max, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char *buf = xmalloc(max + 1);
    size_t got = 0;
    ssize_t r;
    while ((r = read(fd, buf + got, max + 1 - got)) > 0) {
        got += (size_t)r;
        if (got > max)
            break;
    }
    int err = r < 0 ? -errno : 0;
    close(fd);
    if (err || got > max) {
        free(buf);
        return err ? err : -EMSGSIZE;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

int pool__publish_scan(const char *root, manifest_t *m, char *why, size_t whylen)
{
    why[0] = '\0';
    char *descpath = xasprintf("%s/%s", root, JOBDESC_FILE);
    char *text = NULL;
    size_t len = 0;
    int rc = read_small(descpath, JOBDESC_MAX_BYTES, &text, &len);
    free(descpath);
    if (rc == -EMSGSIZE) {
        snprintf(why, whylen, "%s: larger than %d bytes", JOBDESC_FILE, JOBDESC_MAX_BYTES);
        return rc;
    }
    if (rc == 0) {
        char w[256];
        rc = jobdesc_parse(&m->desc, text, len, w, sizeof(w));
        free(text);
        if (rc) {
            snprintf(why, whylen, "%s: %s", JOBDESC_FILE, w);
            return rc;
        }
    } else if (rc != -ENOENT) {
        snprintf(why, whylen, "%s: %s", JOBDESC_FILE, strerror(-rc));
        return rc;
    }
    if (strcmp(m->desc.command, JOBDESC_DEFAULT_COMMAND) == 0) {
        char *run = xasprintf("%s/run", root);
        struct stat sb;
        bool ok = lstat(run, &sb) == 0 && S_ISREG(sb.st_mode) && (sb.st_mode & 0111);
        free(run);
        if (!ok) {
            snprintf(why, whylen, "no command: add an executable file 'run' or a %s with 'command = ...'",
                     JOBDESC_FILE);
            return -EINVAL;
        }
    }
    return pool__hash_tree(NULL, root, m, why, whylen);
}

int pool__hash_tree(store_t *st, const char *root, manifest_t *m, char *why, size_t whylen)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whylen, "%s", strerror(errno));
        return -errno;
    }
    scan_t s = {.m = m, .st = st, .why = why, .whylen = whylen};
    int rc = scan_dir(&s, fd, "");
    if (rc)
        return rc;
    manifest_sort(m);
    return 0;
}

/* ---- results ---- */

typedef struct collect {
    const collect_spec_t *c;
    int stop; /* the error that fails the task (outputs over the disk, a move that failed) */
    uint64_t total;
    char *why;
    size_t whylen;
    size_t unkept;          /* outputs not kept: their path cannot be in a result */
    char first[96];         /* the first of them, printable */
    const char *first_why;
} collect_t;

static bool wanted(const collect_spec_t *c, const char *rel)
{
    if (c->n_outputs == 0)
        return true;
    for (size_t i = 0; i < c->n_outputs; i++)
        if (fnmatch(c->outputs[i], rel, FNM_PATHNAME | FNM_PERIOD) == 0)
            return true;
    return false;
}

static bool reserved(const char *rel)
{
    return !strcmp(rel, "stdout") || !strcmp(rel, "stderr") || !strcmp(rel, "exit_code");
}

/* Under /task/checkpoint/: the task's checkpoint, never one of its outputs. */
static bool in_checkpoint(const char *rel)
{
    size_t n = strlen(EXEC_CHECKPOINT_DIR);
    return !strncmp(rel, EXEC_CHECKPOINT_DIR, n) && rel[n] == '/';
}

int pool__result_fits(const manifest_t *res, const jobdesc_t *d, char *why, size_t whylen)
{
    uint64_t outputs = 0;
    collect_spec_t c = {.outputs = d->outputs, .n_outputs = d->n_outputs};
    for (size_t i = 0; i < res->n_files; i++) {
        const manifest_file_t *f = &res->files[i];
        if (!strcmp(f->path, "exit_code")) {
            if (f->size > POOL_MAX_EXIT_CODE_BYTES)
                return snprintf(why, whylen, "its exit_code file is %llu bytes", (unsigned long long)f->size),
                       -EFBIG;
        } else if (!strcmp(f->path, "stdout") || !strcmp(f->path, "stderr")) {
            if (f->size > d->disk_bytes) /* each is one file under the task's RLIMIT_FSIZE */
                return snprintf(why, whylen, "its %s is %llu bytes, over the job's disk of %llu", f->path,
                                (unsigned long long)f->size, (unsigned long long)d->disk_bytes),
                       -EFBIG;
        } else if (!wanted(&c, f->path) || in_checkpoint(f->path)) {
            return snprintf(why, whylen, "%s is not an output the job asks for", f->path), -EINVAL;
        } else if (f->size > d->disk_bytes - outputs) { /* no wrap-around: outputs <= disk here */
            return snprintf(why, whylen, "its outputs are over the job's disk of %llu bytes",
                            (unsigned long long)d->disk_bytes),
                   -EFBIG;
        } else {
            outputs += f->size;
        }
    }
    return 0;
}

#define PATH_MAX_WORDS "1024" /* MANIFEST_MAX_PATH, for a message */
_Static_assert(MANIFEST_MAX_PATH == 1024, "PATH_MAX_WORDS says MANIFEST_MAX_PATH");

/* An output the result cannot hold: counted, and the first one named (as printable text: a name is
 * any bytes but '/' and NUL, a log line is one line). */
static void not_kept(collect_t *k, const char *sub, const char *why)
{
    if (k->unkept++ > 0)
        return;
    bool utf8 = jobdesc_utf8_valid(sub, strlen(sub));
    size_t n = 0;
    for (const char *c = sub; *c && n + 4 < sizeof(k->first); c++)
        k->first[n++] = (unsigned char)*c < 0x20 || *c == 0x7f || (!utf8 && (unsigned char)*c >= 0x80) ? '?' : *c;
    if (sub[n])
        memcpy(k->first + n, "...", 3), n += 3;
    k->first[n] = '\0';
    k->first_why = why;
}

/* One entry of the task's directory (files_walk): a regular file the task created or changed and
 * the job wants is moved into the result; the rest stays (and goes with the task directory). */
static int collect_entry(void *arg, int dirfd, const char *name, const char *rel, const struct stat *st)
{
    collect_t *k = arg;
    if (S_ISDIR(st->st_mode)) { /* too deep to walk (FILES_WALK_DEEP_DIRS): nothing in it can be an output */
        char *sub = *rel ? xasprintf("%s/%s/...", rel, name) : xasprintf("%s/...", name);
        not_kept(k, sub, "is under a directory too deep to walk: its path is over " PATH_MAX_WORDS " bytes");
        free(sub);
        return 0;
    }
    if (!S_ISREG(st->st_mode))
        return 0;
    char *sub = *rel ? xasprintf("%s/%s", rel, name) : xstrdup(name);
    int rc = 0;
    if (wanted(k->c, sub) && !in_checkpoint(sub) && !exec_is_unchanged_input(dirfd, name)) {
        if (strlen(sub) > MANIFEST_MAX_PATH) {
            not_kept(k, sub, "has a path over " PATH_MAX_WORDS " bytes");
        } else if (manifest_check_path(sub) != 0) {
            not_kept(k, sub, "has a name that is not UTF-8");
        } else if (reserved(sub)) {
            not_kept(k, sub, "has a reserved name");
        } else if ((k->total += (uint64_t)st->st_size) > k->c->disk_bytes) {
            snprintf(k->why, k->whylen, "outputs exceed the disk limit of %llu bytes",
                     (unsigned long long)k->c->disk_bytes);
            rc = -EFBIG;
        } else {
            char *to = xasprintf("%s/%s", k->c->tmp_dir, sub);
            char *slash = strrchr(to, '/');
            *slash = '\0';
            rc = files_mkdir_p(to, 0755);
            *slash = '/';
            if (!rc) /* a rename; a copy from a run directory on the peer's quota btrfs (exec/quota.c) */
                rc = files_move(dirfd, name, to);
            if (!rc)
                chmod(to, (st->st_mode & 0755) | 0444);
            else if (!k->why[0])
                snprintf(k->why, k->whylen, "collecting %s: %s", sub, strerror(-rc));
            free(to);
        }
    }
    free(sub);
    if (rc) { /* the task fails with why; the walk stops */
        k->stop = rc;
        return FILES_WALK_STOP;
    }
    return 0;
}

bool pool__disk_fault(int rc) { return rc == -ENOSPC || rc == -EDQUOT || rc == -EROFS || rc == -EIO; }

int pool__collect_results(const collect_spec_t *c, char *why, size_t whylen)
{
    why[0] = '\0';
    files_rm_rf(c->tmp_dir);
    int rc = files_mkdir_p(c->tmp_dir, 0755);
    if (rc) {
        snprintf(why, whylen, "creating %s: %s", c->tmp_dir, strerror(-rc));
        return rc;
    }
    collect_t k = {.c = c, .why = why, .whylen = whylen};
    int fd = open(c->work_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) { /* any depth, two fds; deeper than a manifest path can be is no output */
        /* an unreadable subdirectory is skipped, as any file the task could not leave readable */
        int wrc = files_walk(fd, MANIFEST_MAX_PATH, FILES_WALK_SKIP_ERRORS | FILES_WALK_DEEP_DIRS, collect_entry, NULL,
                             &k);
        close(fd);
        if (k.unkept)
            log_warn("%s: %zu output%s not kept, a result cannot hold %s (the first, '%s', %s)",
                     c->label ? c->label : "a task", k.unkept, k.unkept == 1 ? "" : "s", k.unkept == 1 ? "it" : "them",
                     k.first, k.first_why);
        if (k.stop) {
            rc = k.stop;
        } else if (wrc) {
            log_warn("collecting the outputs: %s (what could be read is kept)", strerror(-wrc));
        }
    }
    for (int i = 0; i < 2; i++) { /* a stream the task never had (no file) is no error */
        const char *name = i ? "stderr" : "stdout";
        char *p = xasprintf("%s/%s", c->tmp_dir, name);
        int mrc = files_move(AT_FDCWD, i ? c->err_path : c->out_path, p);
        if (mrc && mrc != -ENOENT && !rc) {
            rc = mrc;
            snprintf(why, whylen, "collecting %s: %s", name, strerror(-mrc));
        }
        chmod(p, 0444);
        free(p);
    }
    char *p = xasprintf("%s/exit_code", c->tmp_dir);
    FILE *f = fopen(p, "we");
    free(p);
    /* checked: on a full disk the file is there, and empty (it was the exit code of a result) */
    int frc = !f ? -errno : fprintf(f, "%d\n", c->exit_code) < 0 ? -errno : 0;
    if (f && fclose(f) != 0 && !frc)
        frc = -errno;
    if (frc && !rc) {
        rc = frc;
        snprintf(why, whylen, "writing exit_code: %s", strerror(-frc));
    }
    if (pool__disk_fault(rc)) {
        /* This peer could not write the result (its disk is full, say): no part of it is shown, and
         * the caller gives the task back (not its fault). Anything else (over the job's disk, an
         * output named "stdout/x" that leaves no room for stdout) is the task's doing: what it left
         * is its failed result, as before (given back, it would fail the same way forever). */
        files_rm_rf(c->tmp_dir);
    } else {
        files_rm_rf(c->final_dir);
        if (rename(c->tmp_dir, c->final_dir) != 0 && !rc) {
            rc = -errno;
            snprintf(why, whylen, "publishing the result: %s", strerror(errno));
            files_rm_rf(c->tmp_dir);
        }
    }
    files_rm_rf(c->work_dir);
    if (c->scratch_dir)
        files_rm_rf(c->scratch_dir);
    if (c->run_dir) /* and what is left of the run (a subvolume: removed by rmdir once empty) */
        files_rm_rf(c->run_dir);
    return rc;
}

/* ---- checkpoints ---- */

typedef struct ckcollect {
    const char *dest;
    uint64_t total, max;
    int stop;
} ckcollect_t;

/* One entry under the task's checkpoint/: a file the task wrote is moved to dest (the rest stays). */
static int ckpt_entry(void *arg, int dirfd, const char *name, const char *rel, const struct stat *st)
{
    ckcollect_t *k = arg;
    if (!S_ISREG(st->st_mode) || exec_is_unchanged_input(dirfd, name))
        return 0;
    if ((k->total += (uint64_t)st->st_size) > k->max)
        return k->stop = -EFBIG, FILES_WALK_STOP;
    char *to = xasprintf("%s/%s%s%s", k->dest, rel, *rel ? "/" : "", name);
    char *slash = strrchr(to, '/');
    *slash = '\0';
    int rc = files_mkdir_p(to, 0755);
    *slash = '/';
    if (!rc)
        rc = files_move(dirfd, name, to);
    if (!rc)
        chmod(to, st->st_mode & 0111 ? 0755 : 0644); /* no umask of this host in its id */
    free(to);
    return rc ? (k->stop = rc, FILES_WALK_STOP) : 0;
}

int pool__ckpt_collect(const char *work_dir, const char *dest, uint64_t max_bytes, manifest_t *m, char *why,
                       size_t whylen)
{
    why[0] = '\0';
    files_rm_rf(dest);
    char *src = xasprintf("%s/%s", work_dir, EXEC_CHECKPOINT_DIR);
    int fd = open(src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    free(src);
    if (fd < 0)
        return -ENOENT;
    int rc = files_mkdir_p(dest, 0755);
    ckcollect_t k = {.dest = dest, .max = max_bytes};
    if (!rc) {
        int wrc = files_walk(fd, MANIFEST_MAX_PATH - sizeof(EXEC_CHECKPOINT_DIR), FILES_WALK_SKIP_ERRORS, ckpt_entry,
                             NULL, &k);
        rc = k.stop ? k.stop : 0;
        if (!rc && wrc)
            log_warn("collecting a checkpoint: %s (what could be read is kept)", strerror(-wrc));
    }
    close(fd);
    if (rc == -EFBIG)
        snprintf(why, whylen, "the checkpoint is over the job's disk of %llu bytes", (unsigned long long)max_bytes);
    else if (rc)
        snprintf(why, whylen, "collecting the checkpoint: %s", strerror(-rc));
    else
        rc = pool__hash_tree(NULL, dest, m, why, whylen);
    if (!rc && m->n_files == 0)
        rc = -ENOENT; /* nothing written there: no checkpoint */
    if (rc)
        files_rm_rf(dest);
    return rc;
}

int pool__ckpt_fits(const manifest_t *m, uint64_t max_bytes, char *why, size_t whylen)
{
    uint64_t total = 0;
    for (size_t i = 0; i < m->n_files; i++) {
        if (m->files[i].size > max_bytes - total) /* total <= max_bytes here: no wrap-around */
            return snprintf(why, whylen, "the checkpoint is over the job's disk of %llu bytes",
                            (unsigned long long)max_bytes), -EFBIG;
        total += m->files[i].size;
    }
    if (m->n_files == 0)
        return snprintf(why, whylen, "the checkpoint has no file"), -EINVAL;
    return 0;
}

int pool__files_write(store_t *st, const manifest_t *m, const char *data, const char *dir, bool modes, char *why,
                      size_t whylen)
{
    files_rm_rf(dir);
    int rc = files_mkdir_p(dir, 0755);
    for (size_t i = 0; !rc && i < m->n_dirs; i++) {
        char *d = xasprintf("%s/%s", dir, m->dirs[i]);
        rc = files_mkdir_p(d, 0755);
        free(d);
    }
    char *buf = data ? NULL : xmalloc(m->block_size);
    size_t off = 0;
    for (size_t i = 0; !rc && i < m->n_files; i++) {
        const manifest_file_t *f = &m->files[i];
        char *p = xasprintf("%s/%s", dir, f->path);
        FILE *out = fopen(p, "we");
        if (!out) {
            rc = -errno;
            free(p);
            break;
        }
        if (data) { /* inline: the bytes were checked against the manifest's hashes (bundle_parse) */
            if (fwrite(data + off, 1, (size_t)f->size, out) != (size_t)f->size)
                rc = -EIO;
            off += (size_t)f->size;
        }
        for (size_t b = 0; !data && !rc && b < f->n_blocks; b++) {
            ssize_t got = store_read(st, &f->blocks[b], buf, m->block_size, 0);
            if (got < 0 || fwrite(buf, 1, (size_t)got, out) != (size_t)got)
                rc = got < 0 ? (int)got : -EIO;
        }
        if (fclose(out) != 0 && !rc)
            rc = -EIO;
        if (!rc && modes && (f->mode & 0111))
            chmod(p, 0755);
        free(p);
    }
    free(buf);
    if (rc)
        snprintf(why, whylen, "writing %s: %s", dir, strerror(-rc));
    return rc;
}
