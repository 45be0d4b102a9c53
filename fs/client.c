/*
 * client.c: `preon wait` and `preon status`, the commands that read a mounted peer's tree
 * (wait/<job>, status/<job>, peer), and the helpers `preon submit` (submit.c) shares with them.
 * They only read files: any script can do the same with cat. What they compute from the texts is
 * in progress.c (pure).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/xalloc.h"
#include "fs/internal.h"


/* Finds --mount DIR (or $PREON_MOUNT) and --json (if json is not NULL) and returns the remaining
 * positional arguments' index. */
static const char *mount_arg(int argc, char **argv, int *first, bool *json)
{
    const char *m = getenv("PREON_MOUNT");
    int i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--mount") && i + 1 < argc)
            m = argv[++i];
        else if (!strncmp(argv[i], "--mount=", 8))
            m = argv[i] + 8;
        else if (json && !strcmp(argv[i], "--json"))
            *json = true;
        else
            break;
    }
    *first = i;
    return m;
}

int fs__client_read(const char *path, char **out)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (!mem) {
        fclose(f);
        return -ENOMEM;
    }
    char chunk[4096];
    size_t n;
    while ((errno = 0, n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, n, mem);
    /* the read's own error (ENOTCONN once the peer is gone, EINTR...), for the message */
    int err = ferror(f) ? (errno ? -errno : -EIO) : 0;
    fclose(f);
    fclose(mem);
    *out = buf;
    return err;
}

static const char usage_wait[] =
    "usage: preon wait [--mount DIR] JOB\n"
    "  blocks until JOB is over (a read of DIR/wait/JOB), prints its status, and exits 0 if every task\n"
    "  succeeded, 1 if the job failed, was cancelled or rejected, 2 if there is no such job.\n"
    "  --mount DIR   the peer's mount (default $PREON_MOUNT)\n";

static const char usage_status[] =
    "usage: preon status [--mount DIR] [--json] [JOB]\n"
    "  without JOB: the peer (DIR/peer) and one line per job; with JOB: its status (DIR/status/JOB),\n"
    "  with why-waiting: when its tasks wait.\n"
    "  --mount DIR   the peer's mount (default $PREON_MOUNT)\n"
    "  --json        the same as JSON: {\"peer\": {...}, \"jobs\": [{...}, ...]}, or JOB's object\n";

int fs_client_wait(int argc, char **argv)
{
    int first;
    const char *m = mount_arg(argc, argv, &first, NULL);
    if (first < argc && !strcmp(argv[first], "--help"))
        return fputs(usage_wait, stdout), 0;
    if (!m || first != argc - 1) {
        fputs(usage_wait, stderr);
        return 2;
    }
    char *path = xasprintf("%s/wait/%s", m, argv[first]), *text = NULL;
    int rc = fs__client_read(path, &text);
    free(path);
    if (rc) {
        if (rc == -ENOENT)
            fprintf(stderr, "preon wait: %s: no such job (ls %s/jobs lists them)\n", argv[first], m);
        else
            fprintf(stderr, "preon wait: %s: %s\n", argv[first], strerror(-rc));
        free(text);
        return 2;
    }
    fputs(text, stdout);
    fs_jstat_t st;
    fs__jstat_parse(text, &st);
    free(text);
    return strcmp(st.state, "done") == 0 ? 0 : 1;
}


/* name for a terminal: a byte below 0x20 or DEL becomes '?' (a name from another peer may hold
 * any of them: no escape sequence reaches the terminal), and *cols its width in columns, counting
 * each UTF-8 character as one (continuation bytes take none). */
char *fs__printable(const char *name, size_t *cols)
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

/* Prints o (taken) as JSON on stdout. 0, or 2 if it cannot be written. */
static int print_json(json_t *o)
{
    int rc = json_dumpf(o, stdout, JSON_INDENT(2)) == 0 && fputc('\n', stdout) != EOF ? 0 : 2;
    json_decref(o);
    return rc;
}

int fs_client_status(int argc, char **argv)
{
    int first;
    bool json = false;
    const char *m = mount_arg(argc, argv, &first, &json);
    if (first < argc && !strcmp(argv[first], "--help"))
        return fputs(usage_status, stdout), 0;
    if (!m || first < argc - 1 || (first < argc && argv[first][0] == '-')) {
        fputs(usage_status, stderr);
        return 2;
    }
    char *text = NULL, *path;
    if (first == argc - 1) {
        path = xasprintf("%s/status/%s", m, argv[first]);
        int rc = fs__client_read(path, &text);
        free(path);
        if (rc) {
            if (rc == -ENOENT)
                fprintf(stderr, "preon status: %s: no such job (preon status alone lists them)\n", argv[first]);
            else
                fprintf(stderr, "preon status: %s: %s\n", argv[first], strerror(-rc));
            free(text);
            return 2;
        }
        if (json) {
            json_t *o = fs__status_json(text);
            free(text);
            return print_json(o);
        }
        fputs(text, stdout);
        free(text);
        return 0;
    }
    path = xasprintf("%s/peer", m);
    int rc = fs__client_read(path, &text);
    free(path);
    if (rc) {
        fprintf(stderr, "preon status: %s: %s (is it a peer's mount? pass --mount DIR or set PREON_MOUNT)\n", m,
                strerror(-rc));
        free(text);
        return 2;
    }
    json_t *all = NULL, *jobs = NULL;
    if (json) {
        all = json_object();
        jobs = json_array();
        json_object_set_new(all, "peer", fs__status_json(text));
        json_object_set_new(all, "jobs", jobs);
    } else {
        fputs(text, stdout);
    }
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
            int crc = fs__client_read(p, &t);
            if (crc == 0 && jobs) {
                json_array_append_new(jobs, fs__status_json(t));
            } else if (crc == 0) {
                fs_jstat_t st;
                fs__jstat_parse(t, &st);
                if (n == cap)
                    rows = xreallocarray(rows, cap = cap ? 2 * cap : 16, sizeof(*rows));
                rows[n].name = fs__printable(ent.name, &rows[n].cols);
                rows[n].line = xasprintf("%-10s %u/%u/%u", st.state[0] ? st.state : "?", st.succeeded, st.failed,
                                         st.tasks);
                width = rows[n].cols > width ? rows[n].cols : width;
                n++;
            }
            free(t);
            free(p);
        }
        if (!jobs)
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
    return all ? print_json(all) : 0;
}
