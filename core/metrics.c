/*
 * metrics.c: histograms, rate meters and the Prometheus text format (core/metrics.h).
 *
 * A rate meter is a ring of one-second slots, each tagged with the second it counts: adding to a
 * slot tagged with an older second starts it again, and reading sums the slots whose second is in
 * the window. No timer runs: a meter nobody adds to reads 0 once its slots are out of the window.
 *
 * Numbers in the text: integers as integers (a counter of bytes keeps every digit), other values
 * with %.17g (every double read back exactly); bucket bounds with %g as people write them.
 */
#include "core/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

int metrics_hist_init(metrics_hist_t *h, const double *bounds, size_t n)
{
    memset(h, 0, sizeof(*h));
    if (!bounds || n == 0 || n > METRICS_MAX_BUCKETS)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
            return -EINVAL;
    memcpy(h->bound, bounds, n * sizeof(bounds[0]));
    h->n = n;
    return 0;
}

void metrics_hist_observe(metrics_hist_t *h, double v)
{
    if (isnan(v))
        return;
    for (size_t i = 0; i < h->n; i++) {
        if (v <= h->bound[i]) {
            h->count[i]++;
            break;
        }
    }
    h->total++;
    h->sum += v;
}

void metrics_rate_add(metrics_rate_t *r, uint64_t n, uint64_t now_ms)
{
    uint64_t s = now_ms / 1000;
    size_t i = s % METRICS_RATE_SLOTS;
    if (r->sec[i] == s) {
        r->bytes[i] += n;
    } else if (r->sec[i] < s) { /* the slot counted an older second: it counts this one now */
        r->sec[i] = s;
        r->bytes[i] = n;
    } /* else: a time older than the window (a clock that went back) */
}

double metrics_rate_get(const metrics_rate_t *r, uint64_t now_ms)
{
    uint64_t s = now_ms / 1000, sum = 0;
    for (size_t i = 0; i < METRICS_RATE_SLOTS; i++)
        if (r->sec[i] <= s && s - r->sec[i] <= METRICS_RATE_SLOTS - 1)
            sum += r->bytes[i];
    double secs = (double)(METRICS_RATE_SLOTS - 1) + (double)(now_ms % 1000) / 1000.0;
    return (double)sum / secs;
}

/* ---- text ---- */

static void grow(metrics_text_t *t, size_t more)
{
    if (t->len + more + 1 <= t->cap)
        return;
    size_t cap = t->cap ? t->cap : 1024;
    while (cap < t->len + more + 1)
        cap *= 2;
    t->p = xrealloc(t->p, cap);
    t->cap = cap;
}

__attribute__((format(printf, 2, 3))) static void put(metrics_text_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    grow(t, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

static void putc_(metrics_text_t *t, char c)
{
    grow(t, 1);
    t->p[t->len++] = c;
    t->p[t->len] = '\0';
}

/* Escapes s as the format wants: in HELP, backslash and newline; in label values also '"'. */
static void put_escaped(metrics_text_t *t, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            put(t, "\\\\");
        else if (*s == '\n')
            put(t, "\\n");
        else if (quote && *s == '"')
            put(t, "\\\"");
        else
            putc_(t, *s);
    }
}

void metrics_text_release(metrics_text_t *t)
{
    free(t->p);
    *t = (metrics_text_t){0};
}

char *metrics_text_take(metrics_text_t *t, size_t *len)
{
    char *p = t->p ? t->p : xstrdup("");
    if (len)
        *len = t->len;
    *t = (metrics_text_t){0};
    return p;
}

void metrics_family(metrics_text_t *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s ", name);
    put_escaped(t, help, false);
    put(t, "\n# TYPE %s %s\n", name, type);
}

static void sample_head(metrics_text_t *t, const char *name, const char *label, const char *value)
{
    put(t, "%s", name);
    if (label) {
        put(t, "{%s=\"", label);
        put_escaped(t, value ? value : "", true);
        put(t, "\"}");
    }
}

void metrics_sample_u64(metrics_text_t *t, const char *name, const char *label, const char *value, uint64_t v)
{
    sample_head(t, name, label, value);
    put(t, " %llu\n", (unsigned long long)v);
}

void metrics_sample(metrics_text_t *t, const char *name, const char *label, const char *value, double v)
{
    sample_head(t, name, label, value);
    if (isnan(v))
        put(t, " NaN\n");
    else if (isinf(v))
        put(t, v > 0 ? " +Inf\n" : " -Inf\n");
    else
        put(t, " %.17g\n", v);
}

void metrics_hist_text(metrics_text_t *t, const char *name, const metrics_hist_t *h)
{
    uint64_t cum = 0;
    for (size_t i = 0; i < h->n; i++) {
        cum += h->count[i];
        put(t, "%s_bucket{le=\"%g\"} %llu\n", name, h->bound[i], (unsigned long long)cum);
    }
    put(t, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->total);
    put(t, "%s_sum %.17g\n", name, h->sum);
    put(t, "%s_count %llu\n", name, (unsigned long long)h->total);
}
