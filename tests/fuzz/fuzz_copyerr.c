/*
 * fuzz_copyerr.c: libFuzzer target for a staged job's list of copy errors, jobs/<name>/
 * .preon-copy-errors (fs/internal.h, fs__cerr_parse; `make fuzz`), which a restarted peer reads
 * back from its data directory, where anyone with that directory (or a copy into jobs/) may have
 * changed it.
 *
 * Reading must never crash or leak; every entry it keeps names a path inside the job (relative,
 * no empty, "." or ".." part, no control byte, at most FS_MAX_COPY_ERR_PATH bytes) with a reason;
 * the count past FS_MAX_COPY_ERRORS stays within FS_MAX_COPY_ERR_MORE; and what it keeps, written
 * again as the peer writes it, reads back the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "fs/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct list {
    fs_copy_err_t *e;
    size_t n;
} list_t;

static void add(void *arg, const char *path, const char *why)
{
    list_t *l = arg;
    size_t len = strlen(path);
    if (len == 0 || len > FS_MAX_COPY_ERR_PATH || path[0] == '/' || !why)
        abort();
    for (const char *p = path;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            abort();
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
                abort();
        if (!slash)
            break;
        p = slash + 1;
    }
    l->e = xreallocarray(l->e, l->n + 1, sizeof(*l->e));
    l->e[l->n++] = (fs_copy_err_t){.path = xstrdup(path), .why = xstrdup(why)};
}

static void release(list_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->e[i].path);
        free(l->e[i].why);
    }
    free(l->e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    list_t a = {0}, b = {0};
    size_t more = 0, more2 = 0;
    size_t bad = fs__cerr_parse((const char *)data, size, add, &a, &more);
    if (more > FS_MAX_COPY_ERR_MORE)
        abort();
    if (bad == 0) {
        char *text = fs__cerr_format(a.e, a.n, more);
        if (!text || fs__cerr_parse(text, strlen(text), add, &b, &more2) != 0 || more2 != more || b.n != a.n)
            abort();
        for (size_t i = 0; i < a.n; i++)
            if (strcmp(a.e[i].path, b.e[i].path) != 0 || strcmp(a.e[i].why, b.e[i].why) != 0)
                abort();
        free(text);
    }
    release(&a);
    release(&b);
    return 0;
}
