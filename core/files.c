/*
 * files.c: the two tree helpers every layer needs: make a directory and its parents, remove a tree.
 * Blocking (a big tree takes long): the peer calls them from its thread pool.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/files.h"
#include "core/xalloc.h"

int files_move(int dirfd, const char *name, const char *to)
{
    if (renameat(dirfd, name, AT_FDCWD, to) == 0)
        return 0;
    if (errno != EXDEV)
        return -errno;
    int in = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), out = -1, rc = 0;
    struct stat st;
    if (in < 0 || fstat(in, &st) != 0)
        rc = -errno;
    else if (!S_ISREG(st.st_mode))
        rc = -EINVAL;
    else if ((out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, st.st_mode & 07777)) < 0)
        rc = -errno;
    for (off_t left = rc ? 0 : st.st_size; !rc && left > 0;) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)(left > (1 << 30) ? (1 << 30) : left), 0);
        if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
            char buf[65536]; /* a filesystem that cannot: plain reads and writes from where it stopped */
            n = read(in, buf, sizeof(buf));
            for (ssize_t off = 0; n > 0 && off < n;) {
                ssize_t w = write(out, buf + off, (size_t)(n - off));
                if (w < 0 && errno != EINTR) {
                    n = -1;
                    break;
                }
                off += w > 0 ? w : 0;
            }
        }
        if (n < 0 && errno != EINTR)
            rc = -errno;
        else if (n == 0)
            rc = -EIO; /* shorter than it said: changed under us */
        else if (n > 0)
            left -= n;
    }
    if (out >= 0) {
        if (!rc && fchmod(out, st.st_mode & 07777) != 0)
            rc = -errno;
        if (close(out) != 0 && !rc)
            rc = -errno;
    }
    if (in >= 0)
        close(in);
    if (rc && out >= 0)
        unlink(to);
    else if (!rc)
        unlinkat(dirfd, name, 0);
    return rc;
}

int files_mkdir_p(const char *path, mode_t mode)
{
    char *p = xstrdup(path);
    int rc = 0;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) != 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        *s = '/';
    }
    if (!rc && mkdir(p, mode) != 0 && errno != EEXIST)
        rc = -errno;
    free(p);
    return rc;
}

/*
 * The walk: no recursion and two directory fds at most, whatever the depth (a task can leave a tree
 * a million levels deep). Each directory is read once: its other entries go to on_entry, the names
 * of its subdirectories to a list kept for its level; then each subdirectory is entered in turn
 * (openat, O_NOFOLLOW) and left through "..". Trees we walk are quiet (the task is over), so ".."
 * leads back to the parent. The names kept are the pending siblings along the path: the heap, not
 * fds or the stack, holds what a deep or wide tree costs.
 */
typedef struct level {
    char **subs;
    size_t n, cap, next;
} level_t;

static void level_free(level_t *l)
{
    for (size_t i = l->next; i < l->n; i++)
        free(l->subs[i]);
    free(l->subs);
    *l = (level_t){0};
}

/* Reads directory fd (not taken): entries that are not directories go to on_entry, directories
 * to l. 0 or the first error (on_entry's, or readdir's); with skip, the errors of single entries
 * are kept in *first and the rest is read on. */
static int scan_level(int fd, const char *rel, level_t *l, files_entry_cb on_entry, void *arg, bool skip, int *first)
{
    *l = (level_t){0};
    int dfd = dup(fd);
    DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return -errno;
    }
    rewinddir(d); /* the dup shares fd's offset, which an earlier walk may have left at the end */
    struct dirent *de;
    int rc = 0;
    errno = 0;
    while (!rc && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        struct stat st;
        if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno != ENOENT)
                rc = -errno;
        } else if (S_ISDIR(st.st_mode)) {
            if (l->n == l->cap) {
                l->cap = l->cap ? l->cap * 2 : 8;
                l->subs = xreallocarray(l->subs, l->cap, sizeof(char *));
            }
            l->subs[l->n++] = xstrdup(de->d_name);
        } else if (on_entry) {
            rc = on_entry(arg, fd, de->d_name, rel, &st);
        }
        if (rc && skip && rc != FILES_WALK_STOP) {
            if (!*first)
                *first = rc;
            rc = 0;
        }
        errno = 0;
    }
    if (!rc && errno)
        rc = -errno;
    closedir(d);
    return rc;
}

int files_walk(int root, size_t max_rel, unsigned flags, files_entry_cb on_entry, files_dir_cb after_dir, void *arg)
{
    bool skip = flags & FILES_WALK_SKIP_ERRORS;
    int first = 0; /* skip: the first error of the walk itself */
    int cur = dup(root);
    if (cur < 0)
        return -errno;
    level_t *lv = xcalloc(1, sizeof(*lv));
    size_t depth = 1, cap = 1;
    char *rel = xstrdup("");
    size_t rlen = 0;
    int rc = scan_level(cur, rel, &lv[0], on_entry, arg, skip, &first);
    while (depth > 0) {
        if (rc && skip && rc != FILES_WALK_STOP) { /* remembered; what could be read is walked on */
            if (!first)
                first = rc;
            rc = 0;
        }
        if (rc)
            break;
        level_t *l = &lv[depth - 1];
        if (l->next < l->n) {
            const char *name = l->subs[l->next];
            size_t nlen = strlen(name);
            if (rlen + 1 + nlen > max_rel) { /* too deep to matter to the caller: not entered */
                struct stat st;
                if ((flags & FILES_WALK_DEEP_DIRS) && on_entry && fstatat(cur, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
                    rc = on_entry(arg, cur, name, rel, &st);
                free(l->subs[l->next++]);
                continue;
            }
            int fd = openat(cur, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0) {
                if (errno != ENOENT)
                    rc = -errno;
                free(l->subs[l->next++]);
                continue;
            }
            close(cur);
            cur = fd;
            rel = xrealloc(rel, rlen + nlen + 2);
            if (rlen)
                rel[rlen++] = '/';
            memcpy(rel + rlen, name, nlen + 1);
            rlen += nlen;
            if (depth == cap) {
                cap *= 2;
                lv = xreallocarray(lv, cap, sizeof(*lv));
            }
            rc = scan_level(cur, rel, &lv[depth++], on_entry, arg, skip, &first);
            continue;
        }
        level_free(l); /* this directory is done: back to its parent */
        if (--depth == 0)
            break;
        int up = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (up < 0) {
            rc = -errno;
            break;
        }
        close(cur);
        cur = up;
        char *slash = strrchr(rel, '/');
        rlen = slash ? (size_t)(slash - rel) : 0;
        rel[rlen] = '\0';
        level_t *p = &lv[depth - 1];
        if (after_dir)
            rc = after_dir(arg, cur, p->subs[p->next]);
        free(p->subs[p->next++]);
    }
    for (size_t i = 0; i < depth; i++)
        level_free(&lv[i]);
    free(lv);
    free(rel);
    close(cur);
    return rc ? rc : first;
}

static int rm_entry(void *arg, int dirfd, const char *name, const char *rel, const struct stat *st)
{
    return unlinkat(dirfd, name, 0) == 0 || errno == ENOENT ? 0 : -errno; /* an error: the rest goes on */
}

static int rm_dir(void *arg, int dirfd, const char *name)
{
    return unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT ? 0 : -errno;
}

int files_rm_rf(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOTDIR || errno == ELOOP)
            return unlink(path) == 0 || errno == ENOENT ? 0 : -errno;
        return errno == ENOENT ? 0 : -errno;
    }
    int rc = files_walk(fd, SIZE_MAX, FILES_WALK_SKIP_ERRORS, rm_entry, rm_dir, NULL); /* as much as it can */
    close(fd);
    if (rmdir(path) != 0 && errno != ENOENT && !rc)
        rc = -errno;
    return rc;
}

int files_read_small(const char *path, size_t max, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    char *buf = xmalloc(max + 1);
    size_t got = 0;
    ssize_t r = 0;
    while (got < max && (r = read(fd, buf + got, max - got)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        got += (size_t)r;
    }
    int err = r < 0 ? -errno : 0;
    close(fd);
    if (err) {
        free(buf);
        return err;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

int files_each_file(const char *dir, void (*cb)(void *arg, const char *path), void *arg)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char *p = xasprintf("%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
            cb(arg, p);
        free(p);
    }
    closedir(d);
    return 0;
}

int files_lock(const char *path, int *fd, long *holder)
{
    *fd = -1;
    if (holder)
        *holder = 0;
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (f < 0)
        return -errno;
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        int err = errno == EWOULDBLOCK ? -EWOULDBLOCK : -errno;
        char b[24] = "";
        ssize_t n = pread(f, b, sizeof(b) - 1, 0);
        if (holder && n > 0) {
            b[n] = '\0';
            *holder = strtol(b, NULL, 10);
        }
        close(f);
        return err;
    }
    char b[24];
    int n = snprintf(b, sizeof(b), "%ld\n", (long)getpid());
    if (ftruncate(f, 0) != 0 || pwrite(f, b, (size_t)n, 0) != n) {
        int err = -errno;
        close(f);
        return err ? err : -EIO;
    }
    *fd = f;
    return 0;
}
