/*
 * preon-limit.c: the sandbox's rlimit wrapper as a binary of its own (`preon limit` without the
 * rest of preon). Every task starts through it, and the full preon binary links some 39 shared
 * libraries (FUSE, libuv, curl, microhttpd, SQLite, OpenSSL...) whose loading cost about 4 ms of
 * CPU per task; this one needs only libc (about 1 ms). The mount uses it when it sits next to the
 * preon binary, and `preon limit` otherwise. Same arguments: `preon-limit limit <limits> -- bwrap ...`.
 */
#include <stdio.h>
#include <string.h>

#include "exec/exec.h"

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "limit") != 0) {
        fprintf(stderr, "usage: preon-limit limit ... (the sandbox's wrapper: see preon(1))\n");
        return 2;
    }
    return exec_limit_main(argc - 1, argv + 1);
}
