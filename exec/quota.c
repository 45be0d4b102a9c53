/*
 * quota.c: a disk limit on everything a task writes, in all (docs/sandbox.md, "Limits": disk).
 *
 * RLIMIT_FSIZE bounds each file a task writes, not how many: a task writing a million small files
 * filled the disk. This kernel has no ext4 or XFS project quotas (no QFMT_V2, no XFS_QUOTA) and no
 * tmpfs quotas, but btrfs qgroups count a subvolume's data and metadata and refuse writes past a
 * limit with EDQUOT (a 2 MiB limit stopped a loop making empty files at file 5518). So the peer's
 * work directory (DATA/work, where every run's directories are) is a btrfs of its own: a sparse
 * image (DATA/work.img, unlinked once the loop device holds it, so a crash leaves no file behind)
 * attached to a free loop device (LOOP_CONFIGURE, autoclear: the device goes with the last
 * unmount) and mounted there with `discard` (space a task frees goes back to the data directory's
 * filesystem). Quotas are enabled (simple quotas where the kernel has them: Linux 6.7; else full
 * qgroups). Each run's directory is a subvolume whose qgroup is limited to the job's `disk`
 * (`max_referenced`): its /task layer, overlayfs's work directory, its stdout and its stderr.
 * Making one costs about 0.1 ms (two ioctls); removing it is an rmdir of the emptied subvolume, and
 * the kernel drops its qgroup once the cleaner has reclaimed it (Linux 6.10).
 *
 * Everything here blocks: exec__quota_open and _close at start and stop, the rest in the thread pool.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/btrfs.h>
#include <linux/loop.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/xalloc.h"
#include "exec/internal.h"

#ifndef BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA
#define BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA 4 /* Linux 6.7; Debian 12's headers predate it */
#endif
#define QUOTA_MIN_IMAGE (256ull << 20) /* btrfs wants about 114 MiB at least */
#define QUOTA_FIRST_SUBVOL_INODE 256ull /* BTRFS_FIRST_FREE_OBJECTID: a subvolume's root directory */

extern char **environ;

static int fail(char *why, size_t whylen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *why, size_t whylen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return rc;
}

/* Whether dir is a mount point (another device than its parent's, or the same bind-mounted). */
static bool is_mount_point(const char *dir)
{
    struct stat a, b;
    char *parent = xasprintf("%s/..", dir);
    bool mp = stat(dir, &a) == 0 && stat(parent, &b) == 0 && (a.st_dev != b.st_dev || a.st_ino == b.st_ino);
    free(parent);
    return mp;
}

/* mkfs.btrfs on the image (ours: made just now, O_EXCL). 0 or -errno with why filled. */
static int make_fs(const char *image, char *why, size_t whylen)
{
    char *argv[] = {"mkfs.btrfs", "-q", "-f", (char *)image, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    /* Where Debian puts it first: a peer started by mount(8) or systemd may have no PATH. */
    int rc = access("/usr/sbin/mkfs.btrfs", X_OK) == 0 ? posix_spawn(&pid, "/usr/sbin/mkfs.btrfs", &fa, NULL, argv, environ)
             : access("/sbin/mkfs.btrfs", X_OK) == 0   ? posix_spawn(&pid, "/sbin/mkfs.btrfs", &fa, NULL, argv, environ)
                                                       : posix_spawnp(&pid, "mkfs.btrfs", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc)
        return fail(why, whylen, -rc, "mkfs.btrfs: %s%s", strerror(rc),
                    rc == ENOENT ? " (Debian package btrfs-progs)" : "");
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return fail(why, whylen, -errno, "waiting for mkfs.btrfs: %s", strerror(errno));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return fail(why, whylen, -EIO, "mkfs.btrfs failed (status %d)", st);
    return 0;
}

/* A free loop device with img behind it, detached by itself at the last unmount. Its fd or -errno. */
static int attach_loop(int img, char *dev, size_t devlen, char *why, size_t whylen)
{
    int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0)
        return fail(why, whylen, -errno, "/dev/loop-control: %s (no loop devices here)", strerror(errno));
    int rc = -EBUSY;
    for (int tries = 0; tries < 16 && rc == -EBUSY; tries++) { /* another process may take it first */
        int n = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (n < 0) {
            rc = fail(why, whylen, -errno, "no free loop device: %s", strerror(errno));
            break;
        }
        snprintf(dev, devlen, "/dev/loop%d", n);
        int fd = open(dev, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            rc = fail(why, whylen, -errno, "%s: %s", dev, strerror(errno));
            break;
        }
        struct loop_config lc;
        memset(&lc, 0, sizeof(lc));
        lc.fd = (unsigned)img;
        lc.info.lo_flags = LO_FLAGS_AUTOCLEAR;
        if (ioctl(fd, LOOP_CONFIGURE, &lc) == 0) {
            close(ctl);
            return fd;
        }
        rc = errno == EBUSY ? -EBUSY : fail(why, whylen, -errno, "%s: LOOP_CONFIGURE: %s", dev, strerror(errno));
        close(fd);
    }
    close(ctl);
    if (rc == -EBUSY)
        fail(why, whylen, rc, "no loop device could be had (all taken meanwhile)");
    return rc;
}

int exec__quota_open(exec_quota_t *q, const char *dir, uint64_t size, char *why, size_t whylen)
{
    memset(q, 0, sizeof(*q));
    int img = -1, loop = -1, dfd = -1, rc = 0;
    char dev[32] = "";
    char *image = xasprintf("%s.img", dir);
    for (int i = 0; i < 8 && is_mount_point(dir); i++) /* a crashed peer's: its tasks are gone */
        umount2(dir, MNT_DETACH);
    if (size < QUOTA_MIN_IMAGE)
        size = QUOTA_MIN_IMAGE;
    unlink(image);
    img = open(image, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (img < 0 || ftruncate(img, (off_t)size) != 0) {
        rc = fail(why, whylen, -errno, "%s: %s", image, strerror(errno));
        goto out;
    }
    if ((rc = make_fs(image, why, whylen)) != 0)
        goto out;
    if ((loop = attach_loop(img, dev, sizeof(dev), why, whylen)) < 0) {
        rc = loop;
        goto out;
    }
    if (mount(dev, dir, "btrfs", MS_NOSUID | MS_NODEV, "discard") != 0) {
        rc = fail(why, whylen, -errno, "mounting a btrfs on %s: %s", dir, strerror(errno));
        goto out;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct btrfs_ioctl_quota_ctl_args qc = {.cmd = BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA};
    if (dfd < 0 || (ioctl(dfd, BTRFS_IOC_QUOTA_CTL, &qc) != 0 &&
                    (qc = (struct btrfs_ioctl_quota_ctl_args){.cmd = BTRFS_QUOTA_CTL_ENABLE},
                     ioctl(dfd, BTRFS_IOC_QUOTA_CTL, &qc) != 0))) {
        rc = fail(why, whylen, -errno, "enabling btrfs quotas on %s: %s", dir, strerror(errno));
        umount2(dir, MNT_DETACH);
        goto out;
    }
    struct btrfs_ioctl_fs_info_args fi;
    memset(&fi, 0, sizeof(fi));
    if (ioctl(dfd, BTRFS_IOC_FS_INFO, &fi) != 0) {
        rc = fail(why, whylen, -errno, "btrfs on %s: FS_INFO: %s", dir, strerror(errno));
        umount2(dir, MNT_DETACH);
        goto out;
    }
    const unsigned char *u = fi.fsid;
    snprintf(q->uuid, sizeof(q->uuid), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
             u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
    fchmod(dfd, 0755); /* sandbox users reach their run directories below it */
    q->dir = xstrdup(dir);
    q->size = size;
    q->on = true;
out:
    if (dfd >= 0)
        close(dfd);
    if (loop >= 0)
        close(loop); /* mounted, the device stays; unmounted, autoclear detaches it */
    if (img >= 0)
        close(img);
    unlink(image); /* the loop device holds the file: nothing to leave behind */
    free(image);
    return rc;
}

void exec__quota_close(exec_quota_t *q)
{
    if (q->on)
        umount2(q->dir, MNT_DETACH);
    free(q->dir);
    memset(q, 0, sizeof(*q));
}

int exec__quota_make(const exec_quota_t *q, const char *path, uint64_t limit, uint64_t *subvol)
{
    *subvol = 0;
    size_t dl = strlen(q->dir);
    const char *name = path + dl + 1;
    if (!q->on || strncmp(path, q->dir, dl) != 0 || path[dl] != '/' || !*name || strchr(name, '/') ||
        strlen(name) >= BTRFS_SUBVOL_NAME_MAX)
        return -EINVAL;
    int dfd = open(q->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    struct btrfs_ioctl_vol_args_v2 va;
    memset(&va, 0, sizeof(va));
    snprintf(va.name, sizeof(va.name), "%s", name);
    int rc = ioctl(dfd, BTRFS_IOC_SUBVOL_CREATE_V2, &va) == 0 ? 0 : -errno;
    close(dfd);
    if (rc)
        return rc;
    int sfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct btrfs_ioctl_ino_lookup_args il;
    memset(&il, 0, sizeof(il));
    il.objectid = QUOTA_FIRST_SUBVOL_INODE;
    if (sfd < 0 || ioctl(sfd, BTRFS_IOC_INO_LOOKUP, &il) != 0) {
        rc = -errno;
    } else {
        struct btrfs_ioctl_qgroup_limit_args la;
        memset(&la, 0, sizeof(la));
        la.qgroupid = il.treeid;
        la.lim.flags = BTRFS_QGROUP_LIMIT_MAX_RFER;
        la.lim.max_rfer = limit;
        rc = ioctl(sfd, BTRFS_IOC_QGROUP_LIMIT, &la) == 0 ? 0 : -errno;
        *subvol = il.treeid;
    }
    if (sfd >= 0)
        close(sfd);
    if (rc) /* never a run directory without its limit */
        rmdir(path);
    return rc;
}

/* One number from /sys/fs/btrfs/<uuid>/qgroups/0_<id>/<file>. */
static int read_qgroup(const exec_quota_t *q, uint64_t subvol, const char *file, uint64_t *out)
{
    char path[160], buf[32];
    snprintf(path, sizeof(path), "/sys/fs/btrfs/%s/qgroups/0_%" PRIu64 "/%s", q->uuid, subvol, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
    int err = errno;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return n < 0 ? -err : -EIO;
    buf[n] = '\0';
    *out = strtoull(buf, NULL, 10);
    return 0;
}

int exec__quota_usage(const exec_quota_t *q, uint64_t subvol, uint64_t *used, uint64_t *max)
{
    if (!q->on || !subvol)
        return -EINVAL;
    int rc = read_qgroup(q, subvol, "referenced", used);
    return rc ? rc : read_qgroup(q, subvol, "max_referenced", max);
}

bool exec__quota_hit(uint64_t used, uint64_t max)
{
    uint64_t margin = max / 50 > (128u << 10) ? max / 50 : (128u << 10);
    return max && used + margin >= max;
}
