/**
 * @file mntopt.h  Mount options ("-o name=value,flag,...") as the long options of a command: how
 * `mount -t fuse.preon`, an /etc/fstab line and `preon mount -o` reach every option of `preon mount`
 * (docs/usage.md, "Mounting with mount(8), /etc/fstab and systemd"). Pure functions: no I/O.
 *
 * An option "name=value" becomes the one argument "--name=value" (so a value that starts with '-'
 * stays a value), a "name" alone "--name", for each name of the command's getopt_long table (an '_'
 * in a name reads as '-': fstab style). A comma or '=' in a value is written inside double quotes
 * (data="/srv/a,b", as libmount quotes) or after a backslash (data=/srv/a\,b, as fuse_opt escapes):
 * it never starts another option. The generic options that mount(8), mount.fuse3 and fstab pass or
 * hold (rw, dev, suid, exec, atime..., defaults, auto, noauto, user, users, nouser, owner, group,
 * _netdev, nofail, x-*, X-*, comment=*) are accepted:
 * "ro" is applied to the FUSE mount (mntopt_t.flags), the others change nothing (a preon mount is
 * always nodev,nosuid, and never noexec: tasks run their job's programs from it). Anything else
 * is an error that says which option.
 */
#ifndef PREON_CORE_MNTOPT_H
#define PREON_CORE_MNTOPT_H
#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#define MNTOPT_MAX_LEN 65536 /**< the longest -o string taken */
#define MNTOPT_MAX_ITEMS 256 /**< options in all -o strings of one command line */

typedef struct mntopt {
    int argc;
    char **argv;     /**< argv[0] kept, every -o expanded; NULL-terminated; owned */
    char flags[8];   /**< FUSE mount flags asked for: "" or "ro" */
} mntopt_t;

/**
 * Copies argv with each "-o OPTS" (or "-oOPTS") expanded into long options from known (a
 * getopt_long table ending in a zero entry); arguments after "--", and the value of a long option
 * that takes one ("--log -ofile"), are copied as they are. 0, or
 * -EINVAL with why filled ("unknown mount option 'bogus'", "mount option 'slots' needs a value");
 * out is then empty. Release out with mntopt_release.
 */
int mntopt_expand(int argc, char **argv, const struct option *known, mntopt_t *out, char *why, size_t whylen);
void mntopt_release(mntopt_t *m);

/** What a mount helper is called with: `SOURCE DIR [-sfnv] [-N NS] [-o OPTS]... [-t TYPE]`
 *  (mount(8), "External helpers"; mount.fuse3 calls the program named by the type the same way). */
typedef struct mntopt_helper {
    const char *dir;             /**< the mount point (borrowed from argv) */
    const char *opts[16];        /**< each -o's string, in order (borrowed) */
    size_t nopts;
    bool fake;                   /**< -f: do everything but mount (mount -f): nothing to do */
} mntopt_helper_t;

/** Parses a helper's argv (argv[0] the program). 0, or -EINVAL with why filled. */
int mntopt_helper_parse(int argc, char **argv, mntopt_helper_t *out, char *why, size_t whylen);

/** Whether argv looks like a mount helper's call of `preon`: argv[0] named mount.fuse.preon or
 *  mount.preon, or (mount.fuse3 runs `preon SOURCE DIR -o OPTS`) argv[1] is not one of commands (a
 *  NULL-terminated list), argv[2] is given and an "-o" follows. */
bool mntopt_is_helper_call(int argc, char **argv, const char *const *commands);

#endif
