/*
 * bencode.c: the bencoding codec (BEP 3). The encoder appends to a bencode_buf_t; the decoder
 * checks the whole grammar strictly (no leading zeros, no -0, sorted unique dictionary keys, no
 * trailing bytes), because its input comes from other machines, and a decoder that accepts two
 * spellings of one value invites disagreements between peers about what was said.
 *
 * The decoder recurses once per nesting level, bounded by max_depth, and appends nodes to one
 * array whose growth is bounded by max_nodes and, before that, by the input length (every value
 * takes at least two bytes, so there are never more than len / 2 + 1 nodes).
 */
#include "core/bencode.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

/* ---- encoder ---------------------------------------------------------------------------------- */

void bencode_buf_init(bencode_buf_t *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
}

void bencode_buf_release(bencode_buf_t *b)
{
    free(b->data);
    bencode_buf_init(b);
}

void bencode_buf_reset(bencode_buf_t *b) { b->len = 0; }

char *bencode_put_space(bencode_buf_t *b, size_t n)
{
    if (n > SIZE_MAX - b->len)
        abort(); /* cannot happen short of a corrupted buffer */
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    char *p = b->data + b->len;
    b->len += n;
    return p;
}

char *bencode_buf_detach(bencode_buf_t *b, size_t *len)
{
    char *p = b->len ? b->data : NULL;
    *len = b->len;
    if (!p)
        free(b->data);
    bencode_buf_init(b);
    return p;
}

/* Writes the decimal form of v (at most 20 characters) ending at end; returns where it starts. */
static char *fmt_u64(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

void bencode_put_int(bencode_buf_t *b, int64_t v)
{
    char tmp[24], *end = tmp + sizeof(tmp);
    /* Negate in uint64 so INT64_MIN does not overflow. */
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char *p = fmt_u64(end, mag);
    if (v < 0)
        *--p = '-';
    size_t n = (size_t)(end - p);
    char *dst = bencode_put_space(b, n + 2);
    dst[0] = 'i';
    memcpy(dst + 1, p, n);
    dst[n + 1] = 'e';
}

void bencode_put_str(bencode_buf_t *b, const void *s, size_t len)
{
    char tmp[24], *end = tmp + sizeof(tmp);
    char *p = fmt_u64(end, len);
    size_t n = (size_t)(end - p);
    char *dst = bencode_put_space(b, n + 1 + len);
    memcpy(dst, p, n);
    dst[n] = ':';
    if (len)
        memcpy(dst + n + 1, s, len);
}

void bencode_put_cstr(bencode_buf_t *b, const char *s) { bencode_put_str(b, s, strlen(s)); }

void bencode_put_list(bencode_buf_t *b) { *bencode_put_space(b, 1) = 'l'; }
void bencode_put_dict(bencode_buf_t *b) { *bencode_put_space(b, 1) = 'd'; }
void bencode_put_end(bencode_buf_t *b) { *bencode_put_space(b, 1) = 'e'; }

/* ---- decoder ---------------------------------------------------------------------------------- */

typedef struct dec {
    bencode_doc_t *d;
    const char *buf;
    size_t len, pos;
    unsigned max_depth;
    size_t max_nodes, max_string;
    char *why;
    size_t whylen;
} dec_t;

__attribute__((format(printf, 3, 4))) static int fail(dec_t *x, int err, const char *fmt, ...)
{
    if (x->why && x->whylen) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(x->why, x->whylen, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < x->whylen)
            snprintf(x->why + n, x->whylen - (size_t)n, " at byte %zu", x->pos);
    }
    return err;
}

void bencode_doc_init(bencode_doc_t *d)
{
    d->nodes = NULL;
    d->n = d->cap = 0;
}

void bencode_doc_release(bencode_doc_t *d)
{
    free(d->nodes);
    bencode_doc_init(d);
}

static int new_node(dec_t *x, bencode_type_t type, size_t *idx)
{
    bencode_doc_t *d = x->d;
    if (d->n >= x->max_nodes)
        return fail(x, -EMSGSIZE, "more than %zu values", x->max_nodes);
    if (d->n == d->cap) {
        /* Every value takes at least 2 bytes ("0:", "le"), which bounds the count by the input. */
        size_t bound = x->len / 2 + 1, cap = d->cap ? d->cap * 2 : 16;
        if (cap > bound)
            cap = bound;
        if (cap > x->max_nodes)
            cap = x->max_nodes;
        if (cap <= d->n)
            cap = d->n + 1;
        d->nodes = xreallocarray(d->nodes, cap, sizeof(*d->nodes));
        d->cap = cap;
    }
    bencode_node_t *n = &d->nodes[d->n];
    memset(n, 0, sizeof(*n));
    n->type = type;
    *idx = d->n++;
    return 0;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Parses digits up to (not including) the terminator term; no leading zero unless the number is
 * exactly 0. Fails on overflow of max. */
static int parse_digits(dec_t *x, char term, uint64_t max, uint64_t *out, const char *what)
{
    size_t start = x->pos;
    uint64_t v = 0;
    while (x->pos < x->len && is_digit(x->buf[x->pos])) {
        unsigned dgt = (unsigned)(x->buf[x->pos] - '0');
        if (v > (max - dgt) / 10)
            return fail(x, -EINVAL, "%s out of range", what);
        v = v * 10 + dgt;
        x->pos++;
    }
    if (x->pos == start)
        return fail(x, -EINVAL, "%s: digit expected", what);
    if (x->buf[start] == '0' && x->pos - start > 1)
        return fail(x, -EINVAL, "%s has a leading zero", what);
    if (x->pos >= x->len)
        return fail(x, -EINVAL, "%s: input ends before '%c'", what, term);
    if (x->buf[x->pos] != term)
        return fail(x, -EINVAL, "%s: '%c' expected", what, term);
    x->pos++;
    *out = v;
    return 0;
}

static int parse_int(dec_t *x, size_t idx)
{
    x->pos++; /* 'i' */
    bool neg = x->pos < x->len && x->buf[x->pos] == '-';
    if (neg)
        x->pos++;
    uint64_t mag;
    size_t at = x->pos;
    int rc = parse_digits(x, 'e', neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &mag, "integer");
    if (rc)
        return rc;
    if (neg && mag == 0) {
        x->pos = at;
        return fail(x, -EINVAL, "integer is -0");
    }
    x->d->nodes[idx].i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 0;
}

static int parse_str(dec_t *x, size_t idx)
{
    uint64_t n;
    int rc = parse_digits(x, ':', UINT64_MAX, &n, "string length");
    if (rc)
        return rc;
    if (n > x->max_string)
        return fail(x, -EMSGSIZE, "string of %" PRIu64 " bytes (limit %zu)", n, x->max_string);
    if (n > x->len - x->pos)
        return fail(x, -EINVAL, "string of %" PRIu64 " bytes runs past the end", n);
    x->d->nodes[idx].s = x->buf + x->pos;
    x->d->nodes[idx].len = (size_t)n;
    x->pos += (size_t)n;
    return 0;
}

/* Byte order of keys: memcmp on the common prefix, then the shorter first. */
static int key_cmp(const bencode_node_t *a, const bencode_node_t *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->s, b->s, n) : 0;
    if (c)
        return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

static int parse_value(dec_t *x, unsigned depth);

static int parse_container(dec_t *x, size_t idx, bool dict, unsigned depth)
{
    if (depth >= x->max_depth)
        return fail(x, -EMSGSIZE, "nested deeper than %u", x->max_depth);
    x->pos++; /* 'l' or 'd' */
    uint32_t count = 0;
    size_t prev_key = SIZE_MAX;
    for (;;) {
        if (x->pos >= x->len)
            return fail(x, -EINVAL, "input ends inside a %s", dict ? "dictionary" : "list");
        if (x->buf[x->pos] == 'e') {
            x->pos++;
            break;
        }
        if (dict) {
            if (!is_digit(x->buf[x->pos]))
                return fail(x, -EINVAL, "dictionary key is not a byte string");
            size_t k;
            int rc = new_node(x, BENCODE_STR, &k);
            if (rc == 0)
                rc = parse_str(x, k);
            if (rc)
                return rc;
            x->d->nodes[k].end = (uint32_t)x->d->n;
            if (prev_key != SIZE_MAX) {
                int c = key_cmp(&x->d->nodes[prev_key], &x->d->nodes[k]);
                if (c >= 0)
                    return fail(x, -EINVAL, c == 0 ? "duplicate dictionary key" : "dictionary keys not sorted");
            }
            prev_key = k;
        }
        int rc = parse_value(x, depth + 1);
        if (rc)
            return rc;
        count++;
    }
    x->d->nodes[idx].count = count;
    return 0;
}

static int parse_value(dec_t *x, unsigned depth)
{
    if (x->pos >= x->len)
        return fail(x, -EINVAL, "value expected, input ends");
    char c = x->buf[x->pos];
    bencode_type_t t;
    if (c == 'i')
        t = BENCODE_INT;
    else if (c == 'l')
        t = BENCODE_LIST;
    else if (c == 'd')
        t = BENCODE_DICT;
    else if (is_digit(c))
        t = BENCODE_STR;
    else
        return fail(x, -EINVAL, "unexpected byte 0x%02x", (unsigned char)c);
    size_t idx;
    int rc = new_node(x, t, &idx);
    if (rc)
        return rc;
    switch (t) {
    case BENCODE_INT: rc = parse_int(x, idx); break;
    case BENCODE_STR: rc = parse_str(x, idx); break;
    case BENCODE_LIST: rc = parse_container(x, idx, false, depth); break;
    case BENCODE_DICT: rc = parse_container(x, idx, true, depth); break;
    }
    if (rc)
        return rc;
    x->d->nodes[idx].end = (uint32_t)x->d->n;
    return 0;
}

int bencode_decode(bencode_doc_t *d, const char *buf, size_t len, const bencode_limits_t *lim,
                   char *why, size_t whylen)
{
    dec_t x = {
        .d = d, .buf = buf, .len = len, .pos = 0,
        .max_depth = lim && lim->max_depth ? lim->max_depth : BENCODE_MAX_DEPTH,
        .max_nodes = lim && lim->max_nodes ? lim->max_nodes : BENCODE_MAX_NODES,
        .max_string = lim && lim->max_string ? lim->max_string : BENCODE_MAX_STRING,
        .why = why, .whylen = whylen,
    };
    if (why && whylen)
        why[0] = '\0';
    /* Node indexes are uint32_t. */
    if (x.max_nodes > UINT32_MAX - 1)
        x.max_nodes = UINT32_MAX - 1;
    d->n = 0;
    int rc;
    if (len == 0)
        rc = fail(&x, -EINVAL, "empty input");
    else if ((rc = parse_value(&x, 0)) == 0 && x.pos != len)
        rc = fail(&x, -EINVAL, "%zu bytes after the value", len - x.pos);
    if (rc)
        bencode_doc_release(d);
    return rc;
}

const bencode_node_t *bencode_root(const bencode_doc_t *d) { return d->n ? &d->nodes[0] : NULL; }

const bencode_node_t *bencode_child(const bencode_doc_t *d, const bencode_node_t *parent, size_t i)
{
    if (!parent || (parent->type != BENCODE_LIST && parent->type != BENCODE_DICT))
        return NULL;
    size_t n = parent->type == BENCODE_DICT ? (size_t)parent->count * 2 : parent->count;
    if (i >= n)
        return NULL;
    const bencode_node_t *c = parent + 1;
    while (i--)
        c = &d->nodes[c->end];
    return c;
}

const bencode_node_t *bencode_dict_get(const bencode_doc_t *d, const bencode_node_t *dict,
                                       const void *key, size_t keylen)
{
    if (!dict || dict->type != BENCODE_DICT)
        return NULL;
    const bencode_node_t *k = dict + 1;
    for (uint32_t i = 0; i < dict->count; i++) {
        const bencode_node_t *v = &d->nodes[k->end];
        if (k->len == keylen && (keylen == 0 || memcmp(k->s, key, keylen) == 0))
            return v;
        k = &d->nodes[v->end];
    }
    return NULL;
}

const bencode_node_t *bencode_dict_cget(const bencode_doc_t *d, const bencode_node_t *dict,
                                        const char *key)
{
    return bencode_dict_get(d, dict, key, strlen(key));
}

bool bencode_str_eq(const bencode_node_t *node, const char *s)
{
    size_t n = strlen(s);
    return node && node->type == BENCODE_STR && node->len == n && (n == 0 || memcmp(node->s, s, n) == 0);
}
