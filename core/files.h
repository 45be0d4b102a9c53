/**
 * @file files.h  Directory helpers shared by the peer (fs/) and `preon get` (swarm/get.c).
 */
#ifndef PREON_CORE_FILES_H
#define PREON_CORE_FILES_H
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/** mkdir -p: path and every missing parent, with mode. 0 or -errno. */
int files_mkdir_p(const char *path, mode_t mode);
/**
 * mv of one file: name in dirfd (not through a symlink) to the path to (AT_FDCWD), which must not
 * exist: a rename, or across filesystems a copy of its bytes and permission bits and then the
 * unlink of name. 0 or -errno (a copy that failed is removed; name stays). Blocking.
 */
int files_move(int dirfd, const char *name, const char *to);
/** rm -rf without following symlinks; a missing path is not an error. 0 or the first -errno.
 * Any depth, two fds at most (files_walk). */
int files_rm_rf(const char *path);

/**
 * Takes an exclusive lock (flock) on the file at path, created if missing (0644), and writes this
 * process's pid into it: 0 with *fd (O_CLOEXEC; keep it open for as long as the lock is wanted; a
 * forked child shares it), -EWOULDBLOCK if another process holds it (*holder: the pid it wrote, or
 * 0), or -errno. The lock goes with the last fd of it: a killed holder leaves none behind.
 */
int files_lock(const char *path, int *fd, long *holder);
/** Reads at most max bytes of the file at path (not through a symlink) into *out (xmalloc'd,
 * NUL-terminated, *len bytes before the NUL). 0 or -errno. Blocking: for the thread pool. */
int files_read_small(const char *path, size_t max, char **out, size_t *len);
/** Calls cb(arg, path) for each regular file directly in dir whose name does not start with '.'.
 * 0, or -errno if dir cannot be read (-ENOENT: there is none). Blocking: for the thread pool. */
int files_each_file(const char *dir, void (*cb)(void *arg, const char *path), void *arg);

/** An entry that is not a directory: name in dirfd, whose path relative to the walk's root is rel
 * ("" for the root). 0 goes on; anything else stops the walk and is returned. */
typedef int (*files_entry_cb)(void *arg, int dirfd, const char *name, const char *rel, const struct stat *st);
/** A directory name in dirfd, after everything under it was walked. 0 goes on. */
typedef int (*files_dir_cb)(void *arg, int dirfd, const char *name);
/** files_walk flags: go on after an error (each callback's, or opening or reading a directory,
 * which is then skipped) and return the first one at the end; FILES_WALK_STOP from a callback still
 * stops the walk. */
#define FILES_WALK_SKIP_ERRORS 1u
/** files_walk flag: a directory too deep to enter (see max_rel) goes to on_entry instead (its st
 * says it is a directory), so the caller can say what it did not walk. */
#define FILES_WALK_DEEP_DIRS 2u
#define FILES_WALK_STOP (-1000000)
/**
 * Walks the tree under the directory fd root (not taken; root itself is not reported) without
 * recursion and with at most two fds of its own, whatever the depth: each directory is read once,
 * then its subdirectories are entered in turn (never through a symlink) and left through "..", so
 * the tree must not be moved while it is walked. A directory whose path relative to root would be
 * longer than max_rel is not entered (nor reported, unless FILES_WALK_DEEP_DIRS). 0 or the first error (a callback's, or -errno):
 * without FILES_WALK_SKIP_ERRORS the walk stops there. Blocking: for the thread pool.
 */
int files_walk(int root, size_t max_rel, unsigned flags, files_entry_cb on_entry, files_dir_cb after_dir,
               void *arg);

#endif
