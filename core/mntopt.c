/*
 * mntopt.c: mount options as long options (core/mntopt.h). `mount -t fuse.preon -o a=b,c preon DIR`
 * ends up as `preon mount --a b --c DIR`, through mount(8) and either our helper (mount.fuse.preon,
 * a link to preon) or libfuse's generic mount.fuse3, which runs `preon SOURCE DIR -o OPTS` through
 * /bin/sh. Both pass the generic options they do not consume themselves (mount.fuse3 adds "dev,suid"
 * to every call; mount(8) passes "rw", "_netdev", "user"...): those are accepted here, so that an
 * fstab line works as it does for sshfs, while a misspelt preon option is an error, not ignored.
 */
#include "core/mntopt.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xalloc.h"

/* Generic options: accepted, and (but for ro, a FUSE mount flag) changing nothing here. noexec too:
 * tasks run their job's programs from the mount (a noexec mount fails them all with exit 126), and
 * mount(8) adds it to every "user" line. */
static const char *const generic[] = {
    "defaults", "rw", "auto", "noauto", "user", "nouser", "users", "owner", "group", "_netdev", "nofail", "dev",
    "nodev", "suid", "nosuid", "exec", "noexec", "atime", "noatime", "relatime", "norelatime", "strictatime",
    "nostrictatime", "lazytime", "nolazytime", "diratime", "nodiratime", "sync", "async", "dirsync", "silent",
    "loud", "iversion", "noiversion", "mand", "nomand", NULL};

typedef struct out {
    char **v;
    size_t n, cap;
    size_t items;
    bool ro;
} out_t;

static void push(out_t *o, const char *s)
{
    if (o->n + 2 > o->cap) {
        o->cap = o->cap ? o->cap * 2 : 16;
        o->v = xreallocarray(o->v, o->cap, sizeof(char *));
    }
    o->v[o->n++] = xstrdup(s);
    o->v[o->n] = NULL;
}

static const struct option *find_known(const struct option *known, const char *name)
{
    for (const struct option *k = known; k->name; k++)
        if (!strcmp(k->name, name))
            return k;
    return NULL;
}

/* One item of an -o list, its quotes and escapes already undone: name (an '_' read as '-') and, if
 * eq, its value. 0 or -EINVAL (why filled). */
static int one(out_t *o, const char *name_in, const char *value, const struct option *known, char *why,
               size_t whylen)
{
    if (!value) {
        for (size_t i = 0; generic[i]; i++)
            if (!strcmp(name_in, generic[i]))
                return 0;
        if (!strcmp(name_in, "ro")) {
            o->ro = true;
            return 0;
        }
    }
    /* fstab's, libmount's and systemd's own (x-systemd.automount, X-mount.mkdir, comment=...): not for
     * the filesystem */
    if (!strncmp(name_in, "x-", 2) || !strncmp(name_in, "X-", 2) || !strcmp(name_in, "comment"))
        return 0;
    size_t nlen = strlen(name_in);
    char name[64];
    if (nlen == 0 || nlen >= sizeof(name)) {
        why_printf(why, whylen, "unknown mount option '%.*s'", (int)(nlen < 64 ? nlen : 64), name_in);
        return -EINVAL;
    }
    for (size_t i = 0; i <= nlen; i++)
        name[i] = name_in[i] == '_' ? '-' : name_in[i];
    const struct option *k = find_known(known, name);
    if (!k) {
        why_printf(why, whylen, "unknown mount option '%s' (the options of preon mount --help, as name=value)", name);
        return -EINVAL;
    }
    if (k->has_arg == required_argument && !value) {
        why_printf(why, whylen, "mount option '%s' needs a value (%s=...)", name, name);
        return -EINVAL;
    }
    if (k->has_arg == no_argument && value) {
        why_printf(why, whylen, "mount option '%s' takes no value", name);
        return -EINVAL;
    }
    if (++o->items > MNTOPT_MAX_ITEMS) {
        why_printf(why, whylen, "more than %d mount options", MNTOPT_MAX_ITEMS);
        return -EINVAL;
    }
    /* One argument, "--name=value": getopt_long takes everything after the '=' as the value, so a
     * value that starts with '-', is "--" or is empty stays the value of this option. */
    char *flag = value ? xasprintf("--%s=%s", name, value) : xasprintf("--%s", name);
    push(o, flag);
    free(flag);
    return 0;
}

/*
 * Splits an -o list at its commas, as libmount and libfuse read one: a comma inside double quotes
 * (name="a,b", libmount's quoting) or after a backslash (a\,b, fuse_opt's escape) is part of the
 * value, and the quotes and backslashes are removed. So a value can hold a comma or an '=' without
 * becoming another option. The name ends at the first '=' outside quotes and escapes.
 */
static int list(out_t *o, const char *opts, const struct option *known, char *why, size_t whylen)
{
    size_t len = strlen(opts);
    if (len > MNTOPT_MAX_LEN) {
        why_printf(why, whylen, "mount options longer than %d bytes", MNTOPT_MAX_LEN);
        return -EINVAL;
    }
    char *item = xmalloc(len + 1);
    size_t n = 0, eq = SIZE_MAX;
    bool quoted = false;
    int rc = 0;
    for (size_t i = 0; i <= len && !rc; i++) {
        char c = opts[i];
        if (c == '\\' && i + 1 < len) {
            item[n++] = opts[++i];
        } else if (c == '\\') {
            why_printf(why, whylen, "mount options end in a lone '\\'");
            rc = -EINVAL;
        } else if (c == '"') {
            quoted = !quoted;
        } else if (c == '=' && !quoted && eq == SIZE_MAX) {
            eq = n;
            item[n++] = '\0';
        } else if ((c == ',' && !quoted) || c == '\0') {
            if (c == '\0' && quoted) {
                why_printf(why, whylen, "a double quote is not closed in the mount options");
                rc = -EINVAL;
                break;
            }
            item[n] = '\0';
            if (n > 0 || eq != SIZE_MAX) /* an empty item (",,") is nothing */
                rc = one(o, item, eq == SIZE_MAX ? NULL : item + eq + 1, known, why, whylen);
            n = 0;
            eq = SIZE_MAX;
        } else {
            item[n++] = c;
        }
    }
    free(item);
    return rc;
}

/* The entry of known that the long option arg ("--name" or "--name=value") names, as getopt_long
 * reads it: the exact name, or a prefix of only one. NULL if none. */
static const struct option *long_option(const struct option *known, const char *arg)
{
    const char *name = arg + 2;
    size_t nlen = strcspn(name, "=");
    const struct option *found = NULL;
    for (const struct option *k = known; k->name; k++) {
        if (strncmp(k->name, name, nlen) != 0)
            continue;
        if (strlen(k->name) == nlen)
            return k;
        if (found)
            return NULL; /* ambiguous: getopt_long says so */
        found = k;
    }
    return found;
}

int mntopt_expand(int argc, char **argv, const struct option *known, mntopt_t *out, char *why, size_t whylen)
{
    out_t o = {0};
    int rc = 0;
    memset(out, 0, sizeof(*out));
    push(&o, argc > 0 ? argv[0] : "");
    for (int i = 1; i < argc && !rc; i++) {
        if (!strcmp(argv[i], "--")) {
            for (; i < argc; i++)
                push(&o, argv[i]);
            break;
        }
        const struct option *k = !strncmp(argv[i], "--", 2) ? long_option(known, argv[i]) : NULL;
        if (k && k->has_arg == required_argument && !strchr(argv[i], '=') && i + 1 < argc) {
            push(&o, argv[i]); /* "--log -ofile": the value of --log, never an -o list */
            push(&o, argv[++i]);
        } else if (!strcmp(argv[i], "-o")) {
            if (i + 1 >= argc) {
                why_printf(why, whylen, "-o needs a list of options (-o name=value,...)");
                rc = -EINVAL;
            } else {
                rc = list(&o, argv[++i], known, why, whylen);
            }
        } else if (!strncmp(argv[i], "-o", 2)) {
            rc = list(&o, argv[i] + 2, known, why, whylen);
        } else {
            push(&o, argv[i]);
        }
    }
    if (rc) {
        for (size_t i = 0; i < o.n; i++)
            free(o.v[i]);
        free(o.v);
        return rc;
    }
    out->argv = o.v;
    out->argc = (int)o.n;
    snprintf(out->flags, sizeof(out->flags), "%s", o.ro ? "ro" : "");
    return 0;
}

void mntopt_release(mntopt_t *m)
{
    for (int i = 0; m->argv && i < m->argc; i++)
        free(m->argv[i]);
    free(m->argv);
    memset(m, 0, sizeof(*m));
}

int mntopt_helper_parse(int argc, char **argv, mntopt_helper_t *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    if (argc < 3 || !argv[2][0]) {
        why_printf(why, whylen, "usage: %s SOURCE DIR [-o OPTIONS] (as mount(8) calls it)", argc ? argv[0] : "preon");
        return -EINVAL;
    }
    out->dir = argv[2];
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-o") || !strcmp(a, "-t") || !strcmp(a, "-N")) {
            if (i + 1 >= argc) {
                why_printf(why, whylen, "%s needs a value", a);
                return -EINVAL;
            }
            const char *v = argv[++i];
            if (a[1] == 'N') {
                why_printf(why, whylen, "-N (mounting in another namespace) is not supported");
                return -EINVAL;
            }
            if (a[1] == 't')
                continue; /* fuse.preon: how we got here */
            if (out->nopts == sizeof(out->opts) / sizeof(out->opts[0])) {
                why_printf(why, whylen, "too many -o");
                return -EINVAL;
            }
            out->opts[out->nopts++] = v;
        } else if (a[0] == '-' && a[1] && strspn(a + 1, "sfnv") == strlen(a + 1)) {
            if (strchr(a, 'f'))
                out->fake = true; /* -s sloppy, -n no mtab, -v verbose: nothing to do for us */
        } else {
            why_printf(why, whylen, "unexpected argument '%s' (as mount(8) calls it: SOURCE DIR [-o OPTIONS])", a);
            return -EINVAL;
        }
    }
    return 0;
}

bool mntopt_is_helper_call(int argc, char **argv, const char *const *commands)
{
    if (argc < 1)
        return false;
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (!strcmp(base, "mount.fuse.preon") || !strcmp(base, "mount.preon"))
        return true;
    if (argc < 4 || argv[1][0] == '-' || !argv[1][0])
        return false;
    for (size_t i = 0; commands[i]; i++)
        if (!strcmp(argv[1], commands[i]))
            return false;
    for (int i = 3; i < argc; i++)
        if (!strncmp(argv[i], "-o", 2))
            return true;
    return false;
}
