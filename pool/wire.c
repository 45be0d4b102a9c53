/*
 * wire.c: the pure codecs of pool/wire.h. JSON through jansson; every limit checked before a value
 * is kept.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "pool/wire.h"

static int fail(char *why, size_t whylen, int rc, const char *msg)
{
    if (why && whylen)
        snprintf(why, whylen, "%s", msg);
    return rc;
}

int wire_lease_encode(const wire_lease_t *l, char *buf, size_t cap)
{
    if (!l || l->n == 0 || l->n > WIRE_MAX_LEASE || !buf)
        return -EINVAL;
    size_t off = 0;
    int w = snprintf(buf, cap, "{\"tasks\":[");
    for (size_t i = 0; w >= 0 && (size_t)w < cap - off && i < l->n; i++) {
        off += (size_t)w;
        w = snprintf(buf + off, cap - off, "%s%" PRIu32, i ? "," : "", l->tasks[i]);
    }
    if (w >= 0 && (size_t)w < cap - off) {
        off += (size_t)w;
        w = snprintf(buf + off, cap - off, "],\"task\":%" PRIu32 ",\"lease_ms\":%" PRIu64 "}", l->tasks[0],
                     l->lease_ms);
    }
    if (w < 0 || (size_t)w >= cap - off)
        return -EMSGSIZE;
    return (int)(off + (size_t)w);
}

int wire_lease_decode(const char *body, size_t len, uint32_t ntasks, wire_lease_t *out, size_t *dropped, char *why,
                      size_t whylen)
{
    size_t drop = 0;
    if (dropped)
        *dropped = 0;
    memset(out, 0, sizeof(*out));
    if (len > WIRE_MAX_BODY)
        return fail(why, whylen, -EMSGSIZE, "lease answer over its size limit");
    json_error_t err;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(o)) {
        json_decref(o);
        return fail(why, whylen, -EPROTO, "lease answer is not a JSON object");
    }
    json_t *arr = json_object_get(o, "tasks");
    int rc = 0;
    if (!json_is_array(arr)) {
        rc = fail(why, whylen, -EPROTO, "lease answer has no \"tasks\" array");
    } else if (json_array_size(arr) > WIRE_MAX_LEASE) {
        rc = fail(why, whylen, -EMSGSIZE, "lease answer has more tasks than a lease may give");
    } else {
        for (size_t i = 0; i < json_array_size(arr); i++) {
            json_t *e = json_array_get(arr, i);
            json_int_t t = json_is_integer(e) ? json_integer_value(e) : -1;
            bool ok = t >= 0 && (uint64_t)t < ntasks;
            for (size_t k = 0; ok && k < out->n; k++)
                ok = out->tasks[k] != (uint32_t)t;
            if (ok)
                out->tasks[out->n++] = (uint32_t)t;
            else
                drop++;
        }
        if (out->n == 0)
            rc = fail(why, whylen, -EPROTO, "lease answer has no usable task");
    }
    json_t *lm = json_object_get(o, "lease_ms");
    json_int_t v = json_is_integer(lm) ? json_integer_value(lm) : 0;
    out->lease_ms = v >= WIRE_LEASE_MS_MIN && v <= WIRE_LEASE_MS_MAX ? (uint64_t)v : WIRE_LEASE_MS_DEFAULT;
    json_decref(o);
    if (dropped)
        *dropped = drop;
    if (rc)
        out->n = 0;
    return rc;
}

int wire_done_encode(const wire_done_t *d, char *buf, size_t cap)
{
    if (!d || !buf || d->exit_code < -1 || d->exit_code > 255 || d->elapsed_ms > WIRE_MAX_ELAPSED_MS)
        return -EINVAL;
    int n = snprintf(buf, cap, "&exit=%d&ms=%" PRIu64, d->exit_code, d->elapsed_ms);
    return n < 0 || (size_t)n >= cap ? -EMSGSIZE : n;
}

/* The value of key in a query string (a=1&b=2): its start and length, or NULL. */
static const char *query_value(const char *q, size_t qlen, const char *key, size_t *vlen)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < qlen;) {
        size_t end = i;
        while (end < qlen && q[end] != '&')
            end++;
        if (end - i > klen && memcmp(q + i, key, klen) == 0 && q[i + klen] == '=') {
            *vlen = end - i - klen - 1;
            return q + i + klen + 1;
        }
        i = end + 1;
    }
    return NULL;
}

/* Plain decimal (an optional leading '-' if allow_neg), at most 18 digits (no overflow). */
static int parse_dec(const char *s, size_t n, bool allow_neg, int64_t *out)
{
    bool neg = allow_neg && n > 0 && s[0] == '-';
    size_t i = neg ? 1 : 0;
    if (n == i || n - i > 18)
        return -EPROTO;
    int64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EPROTO;
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return 0;
}

int wire_done_decode(const char *query, size_t qlen, wire_done_t *out, char *why, size_t whylen)
{
    size_t el = 0, ml = 0;
    const char *e = query ? query_value(query, qlen, "exit", &el) : NULL;
    const char *m = query ? query_value(query, qlen, "ms", &ml) : NULL;
    int64_t ev, mv;
    if (!e || !m)
        return fail(why, whylen, -EPROTO, "done report without exit= and ms=");
    if (parse_dec(e, el, true, &ev) != 0 || ev < -1 || ev > 255)
        return fail(why, whylen, -EPROTO, "done report: exit= is not -1..255");
    if (parse_dec(m, ml, false, &mv) != 0 || (uint64_t)mv > WIRE_MAX_ELAPSED_MS)
        return fail(why, whylen, -EPROTO, "done report: ms= is not a duration in ms");
    out->exit_code = (int)ev;
    out->elapsed_ms = (uint64_t)mv;
    return 0;
}
