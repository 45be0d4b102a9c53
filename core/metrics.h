/**
 * @file metrics.h  Counting for the status page and /metrics (docs/usage.md, "Watching a peer"):
 * fixed-bucket histograms, a byte-rate meter over the last few seconds, and a writer of the
 * Prometheus text exposition format (version 0.0.4).
 *
 * Pure: no clock (time is passed in as now_ms), no I/O, no global state. A histogram or a meter
 * belongs to the module that counts the event (the fetcher its fetch latency, the pool its
 * dispatch latency) and is read where it lives, on the loop thread: there are no locks.
 */
#ifndef PREON_CORE_METRICS_H
#define PREON_CORE_METRICS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Bucket bounds one histogram may have (+Inf comes on top). */
#define METRICS_MAX_BUCKETS 16
/** Seconds a rate meter remembers (one slot each): rates are over the last METRICS_RATE_SLOTS - 1
 *  whole seconds and the current one so far. */
#define METRICS_RATE_SLOTS 8

/** Observations counted in buckets of fixed upper bounds, as Prometheus histograms are. */
typedef struct metrics_hist {
    size_t n;                            /**< bounds in use */
    double bound[METRICS_MAX_BUCKETS];   /**< upper bounds, ascending (the +Inf bucket is implicit) */
    uint64_t count[METRICS_MAX_BUCKETS]; /**< observations in (bound[i-1], bound[i]]: not cumulative */
    uint64_t total;                      /**< every observation, those over the last bound included */
    double sum;
} metrics_hist_t;

/**
 * Empties h and gives it bounds[0..n) (copied). 0, or -EINVAL (n 0 or over METRICS_MAX_BUCKETS,
 * bounds not strictly ascending, or not finite): h is then empty with no bounds.
 */
int metrics_hist_init(metrics_hist_t *h, const double *bounds, size_t n);
/** Counts one observation of v (NaN is ignored; a negative v goes into the first bucket). */
void metrics_hist_observe(metrics_hist_t *h, double v);

/** Bytes counted by the second they arrived in: a zeroed value is an empty meter. */
typedef struct metrics_rate {
    uint64_t sec[METRICS_RATE_SLOTS];   /**< the second (now_ms / 1000) each slot counts */
    uint64_t bytes[METRICS_RATE_SLOTS];
} metrics_rate_t;

/** Counts n bytes at now_ms. A now_ms older than the meter's window is ignored. */
void metrics_rate_add(metrics_rate_t *r, uint64_t n, uint64_t now_ms);
/** Bytes per second at now_ms over the last METRICS_RATE_SLOTS - 1 whole seconds and the current
 *  one so far (0 for a meter that counted nothing in that window). */
double metrics_rate_get(const metrics_rate_t *r, uint64_t now_ms);

/** A text being written (xmalloc'd as it grows). Zeroed is empty; metrics_text_release frees it. */
typedef struct metrics_text {
    char *p;
    size_t len, cap;
} metrics_text_t;

void metrics_text_release(metrics_text_t *t);
/** Takes the text (NUL-terminated, *len bytes; "" if nothing was written): the caller frees it. */
char *metrics_text_take(metrics_text_t *t, size_t *len);
/**
 * A family's "# HELP name help" and "# TYPE name type" lines. type: "counter", "gauge" or
 * "histogram". help is escaped as the format wants (backslash and newline).
 */
void metrics_family(metrics_text_t *t, const char *name, const char *type, const char *help);
/**
 * One sample line: `name{label="value"} v`, or `name v` when label is NULL. The label's value is
 * escaped (backslash, double quote, newline). An integer keeps every digit (uint64_t).
 */
void metrics_sample_u64(metrics_text_t *t, const char *name, const char *label, const char *value, uint64_t v);
void metrics_sample(metrics_text_t *t, const char *name, const char *label, const char *value, double v);
/** The `name_bucket{le="..."}` lines (cumulative, +Inf last), `name_sum` and `name_count` of h. */
void metrics_hist_text(metrics_text_t *t, const char *name, const metrics_hist_t *h);

#endif
