/*
 * fuzz_mntopt.c: libFuzzer target for mount options (core/mntopt.h; `make fuzz`): what a user, an
 * /etc/fstab line or mount(8) hands `preon mount` as "-o name=value,flag,...", and a mount
 * helper's argv.
 *
 * The input is an argv (argv[0] "preon", then the input's lines). Expanding must never crash or
 * leak; an error says why and leaves nothing; what it accepts is read by getopt_long with the
 * command's own option table without an error, each "-o" item becoming exactly one argument (a
 * value never turns into another option, whatever quotes, commas, backslashes or dashes it holds),
 * and, for an "-o" string without quotes or backslashes, each value is the text after its item's
 * first '='. The helper's parser and the helper-call test must not crash, and what they keep
 * points into argv.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mntopt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* preon mount's table (preon.c), in part: flags and options with values. */
static const struct option known[] = {
    {"foreground", no_argument, NULL, 'f'}, {"data", required_argument, NULL, 'd'},
    {"slots", required_argument, NULL, 's'}, {"allow-network", no_argument, NULL, 'n'},
    {"log", required_argument, NULL, 'l'}, {"peer", required_argument, NULL, 'p'},
    {"tracker", required_argument, NULL, 'T'}, {"max-live", required_argument, NULL, 'V'},
    {"no-disk-quota", no_argument, NULL, 'Z'}, {"when", required_argument, NULL, 'W'},
    {0}};

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "preon";
    for (char *p = buf; argc < MAX_ARGS;) {
        char *nl = strchr(p, '\n');
        argv[argc++] = p;
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    argv[argc] = NULL;

    char why[256] = "";
    mntopt_t m;
    int rc = mntopt_expand(argc, argv, known, &m, why, sizeof(why));
    if (rc != 0) {
        if (rc != -EINVAL || !why[0] || m.argc != 0 || m.argv != NULL)
            abort();
    } else {
        if (m.argc < 1 || m.argv[m.argc] != NULL || strcmp(m.argv[0], "preon") != 0 ||
            (m.flags[0] && strcmp(m.flags, "ro") != 0))
            abort();
        /* One -o string without quotes or backslashes and nothing else: its items, plainly split. */
        bool plain = argc == 3 && !strcmp(argv[1], "-o") && !strpbrk(argv[2], "\"\\");
        /* When argv holds only -o strings, getopt_long reads every argument of the expansion
         * without an error: each option takes exactly one argv element. (Other arguments are
         * copied as they are: getopt_long may well refuse them.) */
        bool only_o = true;
        for (int i = 1; i < argc && only_o; i++) {
            if (!strcmp(argv[i], "-o") && i + 1 < argc)
                i++;
            else
                only_o = !strncmp(argv[i], "-o", 2) && argv[i][2];
        }
        char **copy = malloc(sizeof(char *) * (size_t)(m.argc + 1));
        if (!copy)
            abort();
        memcpy(copy, m.argv, sizeof(char *) * (size_t)(m.argc + 1));
        opterr = 0;
        optind = 0;
        int c, li;
        while (only_o && (li = -1, c = getopt_long(m.argc, copy, "+fh", known, &li)) != -1) {
            if (c == '?' || c == ':')
                abort();
            if (plain && li >= 0 && known[li].has_arg == required_argument) {
                /* "name=value" (name with '_' for '-') is an item of argv[2]: value follows its first '=' */
                const char *val = optarg;
                size_t vl = strlen(val), nl = strlen(known[li].name);
                bool found = false;
                for (const char *item = argv[2]; item && !found;) {
                    const char *comma = strchr(item, ',');
                    size_t il = comma ? (size_t)(comma - item) : strlen(item);
                    const char *eq = memchr(item, '=', il);
                    if (eq && (size_t)(eq - item) == nl && il - nl - 1 == vl && !memcmp(eq + 1, val, vl)) {
                        found = true;
                        for (size_t k = 0; k < nl; k++)
                            if (item[k] != known[li].name[k] && !(item[k] == '_' && known[li].name[k] == '-'))
                                found = false;
                    }
                    item = comma ? comma + 1 : NULL;
                }
                if (!found)
                    abort();
            }
        }
        free(copy);
        mntopt_release(&m);
    }

    mntopt_helper_t h;
    why[0] = '\0';
    rc = mntopt_helper_parse(argc, argv, &h, why, sizeof(why));
    if (rc != 0) {
        if (rc != -EINVAL || !why[0])
            abort();
    } else {
        bool in = false;
        for (int i = 0; i < argc; i++)
            in |= h.dir == argv[i];
        if (!in || h.nopts > sizeof(h.opts) / sizeof(h.opts[0]))
            abort();
        for (size_t k = 0; k < h.nopts; k++) {
            bool inside = false;
            for (int i = 0; i < argc; i++)
                inside |= h.opts[k] >= argv[i] && h.opts[k] <= argv[i] + strlen(argv[i]);
            if (!inside)
                abort();
        }
    }
    static const char *const commands[] = {"mount", "tracker", "submit", "status", "wait", NULL};
    (void)mntopt_is_helper_call(argc, argv, commands);
    free(buf);
    return 0;
}
