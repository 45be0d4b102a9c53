/*
 * events.c: the peer's recent events for the status page (pool/web.c): the newest POOL_MAX_EVENTS
 * lines of the log that tell what happened to jobs, tasks and pool peers (a job published or
 * over, a task decided, a lease given or lost, a peer joining or dropped, a bad block). The files
 * of pool/ log such a line with pool__note instead of log_msg: the same text goes to both, so the
 * page and the log never disagree. What would crowd the log (a line per task that succeeded) or is
 * logged already below (a bad block, by the fetcher) is kept with pool__event alone. A ring of
 * fixed entries, written on the loop thread only.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "pool/internal.h"

static void keep(pool_t *p, enum log_level level, const char *text)
{
    if (!p->events)
        p->events = xcalloc(POOL_MAX_EVENTS, sizeof(*p->events));
    pool_event_t *e = &p->events[p->ev_seq % POOL_MAX_EVENTS];
    struct timespec ts; /* the wall clock (pool_now_ms is jobs.c's, above this leaf) */
    clock_gettime(CLOCK_REALTIME, &ts);
    e->ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    e->level = level;
    snprintf(e->text, sizeof(e->text), "%s", text);
    p->ev_seq++;
}

void pool__note(pool_t *p, enum log_level level, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *text = xmalloc(n > 0 ? (size_t)n + 1 : 1);
    text[0] = '\0';
    if (n > 0)
        vsnprintf(text, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    log_msg(level, "%s", text); /* the whole line (log.c cuts what is over its own limit) */
    keep(p, level, text);       /* cut at POOL_EVENT_LEN */
    free(text);
}

void pool__event(pool_t *p, enum log_level level, const char *fmt, ...)
{
    char text[POOL_EVENT_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    keep(p, level, text);
}

size_t pool__events(const pool_t *p, const pool_event_t **out, size_t max)
{
    size_t n = p->ev_seq < POOL_MAX_EVENTS ? (size_t)p->ev_seq : POOL_MAX_EVENTS;
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++) /* newest first */
        out[i] = &p->events[(p->ev_seq - 1 - i) % POOL_MAX_EVENTS];
    return n;
}

void pool__disk_error(pool_t *p, pool_job_t *j, int rc, const char *fmt, ...)
{
    char what[POOL_EVENT_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    bool full = rc == -ENOSPC || rc == -EDQUOT;
    pool__note(p, LOG_LEVEL_ERROR, "%s%s", what,
               full ? " (the data directory's disk is full: this peer goes on by itself once there is room)" : "");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    p->disk_errors++;
    p->disk_error_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    snprintf(p->disk_error, sizeof(p->disk_error), "%s", what);
    p->disk_pause_until_ms = p->disk_error_ms + POOL_DISK_PAUSE_MS;
    if (j) {
        free(j->disk_error);
        j->disk_error = xstrdup(p->disk_error);
    }
}

void pool__disk_ok(pool_job_t *j)
{
    free(j->disk_error);
    j->disk_error = NULL;
}
