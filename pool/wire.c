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
