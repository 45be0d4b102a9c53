/**
 * @file xalloc.h  Allocation that aborts on out-of-memory (h2o, git), so error paths deal with
 * bad input, not malloc. All return non-NULL; sizes are checked for overflow.
 */
#ifndef PREON_CORE_XALLOC_H
#define PREON_CORE_XALLOC_H
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/** realloc to nmemb * size, aborting on multiplication overflow. */
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/** asprintf that aborts on failure. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
