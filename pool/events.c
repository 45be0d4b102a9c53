/*
 * events.c: the peer's recent events for the status page (pool/web.c): the newest POOL_MAX_EVENTS
 * lines of the log that tell what happened to jobs, tasks and pool peers (a job published or
 * over, a task decided, a lease given or lost, a peer joining or dropped, a bad block). The files
 * of pool/ log such a line with pool__note instead of log_msg: the same text goes to both, so the
 * page and the log never disagree. A ring of fixed entries, written on the loop thread only.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "pool/internal.h"

void pool__note(pool_t *p, enum log_level level, const char *fmt, ...)
{
    char text[POOL_EVENT_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap); /* a longer line is cut: the log has the same cut */
    va_end(ap);
    log_msg(level, "%s", text);
    if (!p->events)
        p->events = xcalloc(POOL_MAX_EVENTS, sizeof(*p->events));
    pool_event_t *e = &p->events[p->ev_seq % POOL_MAX_EVENTS];
    struct timespec ts; /* the wall clock (pool_now_ms is jobs.c's, above this leaf) */
    clock_gettime(CLOCK_REALTIME, &ts);
    e->ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    e->level = level;
    memcpy(e->text, text, sizeof(text));
    p->ev_seq++;
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
