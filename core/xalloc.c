/*
 * xalloc.c: allocation that never returns NULL.
 *
 * Running out of memory is fatal in Preon (as in h2o and git): every allocation size that comes
 * from untrusted input is capped before it reaches these functions, so the only way to fail here is
 * a real OOM, and no caller has a sensible way to recover from that. Aborting keeps the error paths
 * of the rest of the code about bad input. The OOM message is written with write(2), not log_msg,
 * because logging may itself need memory.
 */
#include "core/xalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void xalloc_die(const char *what)
{
    static const char prefix[] = "preon: out of memory in ";
    ssize_t r = write(STDERR_FILENO, prefix, sizeof(prefix) - 1);
    r = write(STDERR_FILENO, what, strlen(what));
    r = write(STDERR_FILENO, "\n", 1);
    (void)r;
    abort();
}

/* A zero-byte request still returns a unique, freeable pointer, so callers never see NULL. */
void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        xalloc_die("xmalloc");
    return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
    if (nmemb == 0 || size == 0)
        nmemb = size = 1;
    void *p = calloc(nmemb, size); /* calloc checks nmemb * size for overflow itself */
    if (!p)
        xalloc_die("xcalloc");
    return p;
}

/* realloc(p, 0) may free p and return NULL; ask for one byte instead so the result is always live. */
void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        xalloc_die("xrealloc");
    return q;
}

void *xreallocarray(void *p, size_t nmemb, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n))
        xalloc_die("xreallocarray (size overflow)");
    return xrealloc(p, n);
}

char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        xalloc_die("xstrdup");
    return p;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (!p)
        xalloc_die("xstrndup");
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    char *p = NULL;
    va_list ap;
    va_start(ap, fmt);
    int r = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (r < 0)
        xalloc_die("xasprintf");
    return p;
}
