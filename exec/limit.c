/*
 * limit.c: `preon limit`, the rlimit wrapper that sits between uv_spawn and bwrap. bwrap 0.8 has no
 * option to set resource limits, and uv_spawn none either, so the spawned process is the preon
 * binary itself (already running as the slot's unprivileged uid), which sets the limits and execs
 * bwrap; the limits are inherited by bwrap and everything in the sandbox.
 *
 * Every option is checked before any limit is set, so a bad vector changes nothing (and the unit
 * tests can feed it bad vectors in-process). Soft and hard limits are both set, so the task cannot
 * raise them back. A limit above the current hard limit is clamped to it: tighter, never looser.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "exec/exec.h"

#define LIMIT_FAIL 127

static const struct {
    const char *opt;
    int resource;
} limit_opts[] = {
    {"--as", RLIMIT_AS},         {"--nproc", RLIMIT_NPROC},   {"--fsize", RLIMIT_FSIZE},
    {"--core", RLIMIT_CORE},     {"--nofile", RLIMIT_NOFILE}, {"--cpu", RLIMIT_CPU},
};
#define N_LIMIT_OPTS (sizeof(limit_opts) / sizeof(limit_opts[0]))

/* Decimal digits only: no sign, no spaces, no suffix, no overflow. */
static int parse_u64(const char *s, unsigned long long *out)
{
    if (!s || !*s || strspn(s, "0123456789") != strlen(s))
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno == ERANGE || v == RLIM_INFINITY)
        return -ERANGE;
    *out = v;
    return 0;
}

int exec_limit_main(int argc, char **argv)
{
    unsigned long long value[N_LIMIT_OPTS];
    bool given[N_LIMIT_OPTS] = {false};
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i += 2) {
        size_t k = 0;
        while (k < N_LIMIT_OPTS && strcmp(argv[i], limit_opts[k].opt) != 0)
            k++;
        if (k == N_LIMIT_OPTS) {
            fprintf(stderr, "preon limit: unknown option '%s'\n", argv[i]);
            return LIMIT_FAIL;
        }
        if (given[k]) {
            fprintf(stderr, "preon limit: %s given twice\n", argv[i]);
            return LIMIT_FAIL;
        }
        if (i + 1 >= argc || parse_u64(argv[i + 1], &value[k]) != 0) {
            fprintf(stderr, "preon limit: %s needs a decimal number\n", argv[i]);
            return LIMIT_FAIL;
        }
        given[k] = true;
    }
    if (i >= argc || i + 1 >= argc) {
        fprintf(stderr, "usage: preon limit [--as N] [--nproc N] [--fsize N] [--core N] [--nofile N] [--cpu N] "
                        "-- program [args...]\n");
        return LIMIT_FAIL;
    }
    for (size_t k = 0; k < N_LIMIT_OPTS; k++) {
        if (!given[k])
            continue;
        struct rlimit rl;
        if (getrlimit(limit_opts[k].resource, &rl) != 0) {
            fprintf(stderr, "preon limit: getrlimit %s: %s\n", limit_opts[k].opt, strerror(errno));
            return LIMIT_FAIL;
        }
        rlim_t v = (rlim_t)value[k];
        if (rl.rlim_max != RLIM_INFINITY && v > rl.rlim_max)
            v = rl.rlim_max;
        rl.rlim_cur = rl.rlim_max = v;
        if (setrlimit(limit_opts[k].resource, &rl) != 0) {
            fprintf(stderr, "preon limit: setrlimit %s %llu: %s\n", limit_opts[k].opt, value[k], strerror(errno));
            return LIMIT_FAIL;
        }
    }
    execvp(argv[i + 1], argv + i + 1);
    fprintf(stderr, "preon limit: cannot run %s: %s\n", argv[i + 1], strerror(errno));
    return LIMIT_FAIL;
}
