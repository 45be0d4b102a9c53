/*
 * progress.c: the pure half of the commands that read a mount (client.c, submit.c): a job's status
 * text read into numbers, the progress line of `preon submit --wait` (a bar on a terminal, plain
 * lines elsewhere) with its time-left estimate, and status texts as JSON for `preon status --json`.
 * No I/O and no clock: the callers pass in the text and the time. Tested in tests/unit/test_progress.c.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jobdesc.h"
#include "fs/internal.h"

/* Copies the value of a "key: value" line (up to the newline) into out, control bytes as '?'. */
static void copy_value(const char *v, char *out, size_t cap)
{
    size_t n = 0;
    for (; v[n] && v[n] != '\n' && n + 1 < cap; n++)
        out[n] = (unsigned char)v[n] < 0x20 || v[n] == 0x7f ? '?' : v[n];
    out[n] = '\0';
}

/* The value of the first line "key: ..." in text, or NULL. */
static const char *line_value(const char *text, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = text; p && *p;) {
        if (!strncmp(p, key, kl) && p[kl] == ':' && p[kl + 1] == ' ')
            return p + kl + 2;
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return NULL;
}

static uint64_t num_value(const char *text, const char *key)
{
    const char *v = line_value(text, key);
    if (!v || *v < '0' || *v > '9')
        return 0;
    return strtoull(v, NULL, 10);
}

void fs__jstat_parse(const char *text, fs_jstat_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *v;
    if ((v = line_value(text, "name")))
        copy_value(v, out->name, sizeof(out->name));
    if ((v = line_value(text, "id")))
        copy_value(v, out->id, sizeof(out->id));
    if ((v = line_value(text, "state")))
        copy_value(v, out->state, sizeof(out->state));
    if ((v = line_value(text, "reason")))
        copy_value(v, out->reason, sizeof(out->reason));
    if ((v = line_value(text, "why-waiting")))
        copy_value(v, out->why_waiting, sizeof(out->why_waiting));
    out->tasks = (uint32_t)num_value(text, "tasks");
    out->waiting = (uint32_t)num_value(text, "waiting");
    out->running = (uint32_t)num_value(text, "running");
    out->succeeded = (uint32_t)num_value(text, "succeeded");
    out->failed = (uint32_t)num_value(text, "failed");
    out->cancelled = (uint32_t)num_value(text, "cancelled");
    out->bytes = num_value(text, "bytes-served") + num_value(text, "bytes-fetched");
}

bool fs__jstat_over(const fs_jstat_t *s)
{
    return !strcmp(s->state, "done") || !strcmp(s->state, "failed") || !strcmp(s->state, "cancelled") ||
           !strcmp(s->state, "rejected");
}

char *fs__duration(uint64_t ms, char *buf, size_t cap)
{
    uint64_t s = ms / 1000;
    if (s >= 3600)
        snprintf(buf, cap, "%" PRIu64 ":%02u:%02u", s / 3600, (unsigned)(s / 60 % 60), (unsigned)(s % 60));
    else
        snprintf(buf, cap, "%u:%02u", (unsigned)(s / 60), (unsigned)(s % 60));
    return buf;
}

uint64_t fs__eta_ms(uint64_t elapsed_ms, uint32_t finished, uint32_t total)
{
    if (finished == 0 || finished >= total || elapsed_ms == 0)
        return UINT64_MAX; /* no rate yet, or nothing left */
    /* elapsed / finished per task, for what is left: the rate so far holds (a sweep's tasks are alike) */
    double left = (double)elapsed_ms * (double)(total - finished) / (double)finished;
    return left > 1e15 ? UINT64_MAX : (uint64_t)left;
}

/* Appends to buf, never past cap (NUL-terminated). */
__attribute__((format(printf, 4, 5))) static void add(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    if (*len + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = *len + (size_t)n < cap ? *len + (size_t)n : cap - 1;
}

/* Cuts buf to width columns (a UTF-8 character is one column), with "..." at the end if cut. */
static void cut_columns(char *buf, unsigned width)
{
    unsigned cols = 0;
    size_t i = 0, last3 = 0; /* where the character that leaves room for "..." starts */
    for (; buf[i]; i++) {
        if (((unsigned char)buf[i] & 0xc0) == 0x80)
            continue;
        if (cols + 3 == width)
            last3 = i;
        if (++cols > width) {
            memcpy(buf + last3, "...", 4);
            return;
        }
    }
}

size_t fs__progress_line(const char *name, const fs_jstat_t *s, uint64_t elapsed_ms, unsigned width, char *buf,
                         size_t cap)
{
    size_t len = 0;
    char sz[32], el[32], left[32];
    uint32_t finished = s->succeeded + s->failed + s->cancelled;
    uint64_t eta = fs__eta_ms(elapsed_ms, finished, s->tasks);
    if (cap == 0)
        return 0;
    buf[0] = '\0';
    fs__duration(elapsed_ms, el, sizeof(el));
    jobdesc_format_size(s->bytes, sz, sizeof(sz));
    if (width) { /* the bar, for a terminal */
        enum { BAR = 20 };
        unsigned fill = s->tasks ? (unsigned)((uint64_t)finished * BAR / s->tasks) : 0;
        add(buf, cap, &len, "%s [", name);
        for (unsigned i = 0; i < BAR; i++)
            add(buf, cap, &len, "%c", i < fill ? '#' : '-');
        add(buf, cap, &len, "] %u/%u done", finished, s->tasks);
        if (s->failed)
            add(buf, cap, &len, " (%u failed)", s->failed);
        add(buf, cap, &len, ", %u running, %u waiting, %s moved, %s", s->running, s->waiting, sz, el);
        if (eta != UINT64_MAX)
            add(buf, cap, &len, ", ~%s left", fs__duration(eta, left, sizeof(left)));
        if (s->waiting && !s->running && s->why_waiting[0])
            add(buf, cap, &len, "; waiting: %s", s->why_waiting);
        cut_columns(buf, width);
        return strlen(buf);
    }
    add(buf, cap, &len, "%s: %s: %u/%u done", name, s->state[0] ? s->state : "?", finished, s->tasks);
    if (s->failed)
        add(buf, cap, &len, " (%u failed)", s->failed);
    add(buf, cap, &len, ", %u running, %u waiting; %s moved; %s elapsed", s->running, s->waiting, sz, el);
    if (eta != UINT64_MAX)
        add(buf, cap, &len, ", about %s left", fs__duration(eta, left, sizeof(left)));
    return len;
}

/* ---- JSON ---- */

/* Keys whose value is text even when it is all digits. */
static bool text_key(const char *k)
{
    static const char *const keys[] = {"name", "id", "key", "peer", "command", "reason", "submitter", "mount",
                                       "data", "http", "why-waiting", "not-run-here", "origin"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (!strcmp(k, keys[i]))
            return true;
    return false;
}

/* Keys that may be on several lines: always an array. */
static bool list_key(const char *k)
{
    static const char *const keys[] = {"failed-task", "leased-task", "task-votes", "endorsed-by", "banned-peer",
                                       "worker-record"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (!strcmp(k, keys[i]))
            return true;
    return false;
}

/* v as a JSON value: an integer if it is 1..18 digits and k is not a text key, else a string. */
static json_t *json_value(const char *k, const char *v, size_t n)
{
    bool digits = n > 0 && n <= 18 && !text_key(k);
    for (size_t i = 0; digits && i < n; i++)
        digits = v[i] >= '0' && v[i] <= '9';
    if (digits)
        return json_integer((json_int_t)strtoll(v, NULL, 10));
    json_t *s = json_stringn(v, n);
    return s ? s : json_string("?"); /* not UTF-8: jansson refuses it */
}

json_t *fs__status_json(const char *text)
{
    json_t *o = json_object();
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        const char *colon = memchr(p, ':', n);
        if (colon && colon > p && (size_t)(colon - p) + 1 < n && colon[1] == ' ' && colon - p < 64) {
            char key[64];
            memcpy(key, p, (size_t)(colon - p));
            key[colon - p] = '\0';
            const char *v = colon + 2;
            json_t *val = json_value(key, v, n - (size_t)(v - p));
            json_t *have = json_object_get(o, key);
            if (list_key(key) || have) { /* a key on several lines: every value, in order */
                if (!json_is_array(have)) {
                    json_t *a = json_array();
                    if (have)
                        json_array_append(a, have);
                    json_object_set_new(o, key, a);
                    have = a;
                }
                json_array_append_new(have, val);
            } else {
                json_object_set_new(o, key, val);
            }
        }
        p = nl ? nl + 1 : NULL;
    }
    return o;
}
