/*
 * client.c: `preon wait` and `preon status`, the commands that read a mounted peer's tree
 * (wait/<job>, status/<job>, peer). They only read files: any script can do the same with cat.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/xalloc.h"
#include "fs/fs.h"

/* Finds --mount DIR (or $PREON_MOUNT) and returns the remaining positional arguments' index. */
static const char *mount_arg(int argc, char **argv, int *first)
{
    const char *m = getenv("PREON_MOUNT");
    int i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--mount") && i + 1 < argc)
            m = argv[++i];
        else if (!strncmp(argv[i], "--mount=", 8))
            m = argv[i] + 8;
        else
            break;
    }
    *first = i;
    return m;
}

static int cat_file(const char *path, char **out)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, n, mem);
    int err = ferror(f) ? -EIO : 0;
    fclose(f);
    fclose(mem);
    *out = buf;
    return err;
}

int fs_client_wait(int argc, char **argv)
{
    int first;
    const char *m = mount_arg(argc, argv, &first);
    if (first < argc && !strcmp(argv[first], "--help"))
        return fputs("usage: preon wait [--mount DIR] JOB\n", stdout), 0;
    if (!m || first != argc - 1) {
        fputs("usage: preon wait [--mount DIR] JOB   (or set PREON_MOUNT)\n", stderr);
        return 2;
    }
    char *path = xasprintf("%s/wait/%s", m, argv[first]), *text = NULL;
    int rc = cat_file(path, &text);
    free(path);
    if (rc) {
        fprintf(stderr, "preon wait: %s: %s\n", argv[first], rc == -ENOENT ? "no such job" : strerror(-rc));
        free(text);
        return 2;
    }
    fputs(text, stdout);
    int status = strstr(text, "\nstate: done\n") ? 0 : 1;
    free(text);
    return status;
}


/* name for a terminal: a byte below 0x20 or DEL becomes '?' (a name from another peer may hold
 * any of them: no escape sequence reaches the terminal), and *cols its width in columns, counting
 * each UTF-8 character as one (continuation bytes take none). */
static char *client_printable(const char *name, size_t *cols)
{
    char *out = xstrdup(name);
    size_t c = 0;
    for (unsigned char *p = (unsigned char *)out; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
        c += (*p & 0xc0) != 0x80;
    }
    *cols = c;
    return out;
}

int fs_client_status(int argc, char **argv)
{
    int first;
    const char *m = mount_arg(argc, argv, &first);
    if (first < argc && !strcmp(argv[first], "--help"))
        return fputs("usage: preon status [--mount DIR] [JOB]\n", stdout), 0;
    if (!m || first < argc - 1) {
        fputs("usage: preon status [--mount DIR] [JOB]   (or set PREON_MOUNT)\n", stderr);
        return 2;
    }
    char *text = NULL, *path;
    if (first == argc - 1) {
        path = xasprintf("%s/status/%s", m, argv[first]);
        int rc = cat_file(path, &text);
        free(path);
        if (rc) {
            fprintf(stderr, "preon status: %s: %s\n", argv[first], strerror(-rc));
            free(text);
            return 2;
        }
        fputs(text, stdout);
        free(text);
        return 0;
    }
    path = xasprintf("%s/peer", m);
    int rc = cat_file(path, &text);
    free(path);
    if (rc) {
        fprintf(stderr, "preon status: %s: %s\n", m, strerror(-rc));
        free(text);
        return 2;
    }
    fputs(text, stdout);
    free(text);
    char *dir = xasprintf("%s/status", m);
    uv_fs_t req;
    uv_dirent_t ent;
    if (uv_fs_scandir(NULL, &req, dir, 0, NULL) >= 0) {
        /* Every job's line first, so the name column fits the longest name. */
        size_t n = 0, cap = 0, width = 3; /* "JOB" */
        struct row {
            char *name, *line;
            size_t cols;
        } *rows = NULL;
        while (uv_fs_scandir_next(&req, &ent) != UV_EOF) {
            char *p = xasprintf("%s/%s", dir, ent.name), *t = NULL;
            if (cat_file(p, &t) == 0) {
                char state[32] = "?";
                unsigned tot = 0, ok = 0, bad = 0;
                char *s;
                if ((s = strstr(t, "state: ")))
                    sscanf(s, "state: %31s", state);
                if ((s = strstr(t, "\ntasks: ")))
                    sscanf(s, "\ntasks: %u", &tot);
                if ((s = strstr(t, "\nsucceeded: ")))
                    sscanf(s, "\nsucceeded: %u", &ok);
                if ((s = strstr(t, "\nfailed: ")))
                    sscanf(s, "\nfailed: %u", &bad);
                if (n == cap)
                    rows = xreallocarray(rows, cap = cap ? 2 * cap : 16, sizeof(*rows));
                rows[n].name = client_printable(ent.name, &rows[n].cols);
                rows[n].line = xasprintf("%-10s %u/%u/%u", state, ok, bad, tot);
                width = rows[n].cols > width ? rows[n].cols : width;
                n++;
            }
            free(t);
            free(p);
        }
        printf("%-*s %-10s %s\n", (int)width, "JOB", "STATE", "TASKS (ok/failed/total)");
        for (size_t i = 0; i < n; i++) {
            printf("%s%*s %s\n", rows[i].name, (int)(width - rows[i].cols), "", rows[i].line);
            free(rows[i].name);
            free(rows[i].line);
        }
        free(rows);
    }
    uv_fs_req_cleanup(&req);
    free(dir);
    return 0;
}

