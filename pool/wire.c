/*
 * wire.c: the pure codecs of pool/wire.h. JSON through jansson; every limit checked before a value
 * is kept.
 *
 * The list decoders (jobs, results) load with JSON_ALLOW_NUL so that a "\u0000" in one entry drops
 * that entry instead of failing the whole answer; every string kept is checked for NUL here. Each
 * entry is read into its struct with type and range checks, then passed through the same check the
 * encoder applies, so what a decoder keeps is exactly what its encoder writes. The list encoders
 * dump each entry on its own (jansson escapes the strings) to know its exact length, so the answer
 * stays within its byte limit without estimates.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/hash.h"
#include "core/jobdesc.h"
#include "core/manifest.h"
#include "core/xalloc.h"
#include "pool/wire.h"

_Static_assert(WIRE_HEX_LEN == HASH_HEX_LEN, "ids on the wire are SHA-256 hex");
/* A manifest without control bytes escapes to at most twice its length ('"' and '\\'), so one
 * largest entry (plus the head) always fits in a results list. */
_Static_assert(2 * (uint64_t)WIRE_MAX_RESULT_MANIFEST + 1024 <= WIRE_MAX_RESULTS_BODY,
               "one largest result entry must fit in a results list");
_Static_assert(WIRE_MAX_JOB_ENTRY + 2 <= WIRE_MAX_JOBS_BODY, "one jobs entry must fit in an answer");

static int fail(char *why, size_t whylen, int rc, const char *msg)
{
    if (why && whylen)
        snprintf(why, whylen, "%s", msg);
    return rc;
}

static bool lower_hex(const char *s, size_t len);

bool wire_peer_url_ok(const char *url, size_t len)
{
    if (len <= 7 || len > WIRE_MAX_PEER_URL || strncmp(url, "http://", 7) != 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
            return false;
    return true;
}

char *wire_peers_format(char *const *urls, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(urls[i]) + 1;
    char *text = xmalloc(len);
    size_t off = 0;
    for (size_t i = 0; i < n; i++)
        off += (size_t)sprintf(text + off, "%s\n", urls[i]);
    text[off] = '\0';
    return text;
}

size_t wire_peers_parse(const char *text, size_t len, void (*cb)(void *arg, const char *url), void *arg)
{
    size_t bad = 0;
    char line[WIRE_MAX_PEER_URL + 1];
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        if (n > 0 && wire_peer_url_ok(text + pos, n)) {
            memcpy(line, text + pos, n);
            line[n] = '\0';
            cb(arg, line);
        } else if (n > 0) {
            bad++;
        }
        pos += n + 1;
    }
    return bad;
}

int wire_id_encode(const key_pub_t *key, char *buf, size_t cap)
{
    char hex[KEY_PUB_HEX_LEN + 1];
    key_pub_to_hex(key, hex);
    int n = snprintf(buf, cap, "{\"key\":\"%s\"}", hex);
    return n < 0 || (size_t)n >= cap ? -EMSGSIZE : n;
}

int wire_id_decode(const char *body, size_t len, key_pub_t *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    if (len > WIRE_MAX_ID_BODY)
        return fail(why, whylen, -EMSGSIZE, "/v1/id answer over its size limit");
    json_error_t err;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
    json_t *k = json_object_get(o, "key");
    const char *hex = json_string_value(k);
    int rc = 0;
    if (!json_is_object(o))
        rc = fail(why, whylen, -EPROTO, "/v1/id answer is not a JSON object");
    else if (!hex || json_string_length(k) != KEY_PUB_HEX_LEN || !lower_hex(hex, KEY_PUB_HEX_LEN) ||
             key_pub_from_hex(hex, KEY_PUB_HEX_LEN, out) != 0)
        rc = fail(why, whylen, -EPROTO, "/v1/id answer has no \"key\" of 64 lower-case hex digits");
    json_decref(o);
    return rc;
}

int wire_lease_encode(const wire_lease_t *l, char *buf, size_t cap)
{
    if (!l || l->n == 0 || l->n > WIRE_MAX_LEASE || !buf)
        return -EINVAL;
    bool any = false;
    for (size_t i = 0; i < l->n; i++) {
        if (l->ckpt[i][0] && (strlen(l->ckpt[i]) != HASH_HEX_LEN || !lower_hex(l->ckpt[i], HASH_HEX_LEN)))
            return -EINVAL;
        any |= l->ckpt[i][0] != '\0';
    }
    size_t off = 0;
    int w = snprintf(buf, cap, "{\"tasks\":[");
    for (size_t i = 0; w >= 0 && (size_t)w < cap - off && i < l->n; i++) {
        off += (size_t)w;
        w = snprintf(buf + off, cap - off, "%s%" PRIu32, i ? "," : "", l->tasks[i]);
    }
    if (w >= 0 && (size_t)w < cap - off) {
        off += (size_t)w;
        w = snprintf(buf + off, cap - off, "],\"task\":%" PRIu32 ",\"lease_ms\":%" PRIu64 "%s", l->tasks[0],
                     l->lease_ms, any ? ",\"ckpt\":{" : "}");
    }
    for (size_t i = 0, k = 0; any && w >= 0 && (size_t)w < cap - off && i <= l->n; i++) {
        off += (size_t)w;
        if (i == l->n)
            w = snprintf(buf + off, cap - off, "}}");
        else if (l->ckpt[i][0])
            w = snprintf(buf + off, cap - off, "%s\"%" PRIu32 "\":\"%s\"", k++ ? "," : "", l->tasks[i], l->ckpt[i]);
        else
            w = 0;
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
    json_t *ck = json_object_get(o, "ckpt");
    const char *key;
    json_t *val;
    if (ck && !json_is_object(ck))
        drop++;
    json_object_foreach(json_is_object(ck) ? ck : NULL, key, val) {
        const char *idv = json_string_value(val);
        size_t i = out->n; /* the task it names, by its canonical decimal form */
        for (size_t k = 0; k < out->n && i == out->n; k++) {
            char dec[12];
            snprintf(dec, sizeof(dec), "%" PRIu32, out->tasks[k]);
            if (!strcmp(dec, key))
                i = k;
        }
        if (i < out->n && idv && strlen(idv) == HASH_HEX_LEN && lower_hex(idv, HASH_HEX_LEN))
            memcpy(out->ckpt[i], idv, HASH_HEX_LEN + 1);
        else
            drop++;
    }
    json_decref(o);
    if (dropped)
        *dropped = drop;
    if (rc)
        out->n = 0;
    return rc;
}

static bool lower_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Exactly want lower-case hex digits. */
static bool hex_of(const char *s, size_t n, size_t want) { return n == want && lower_hex(s, n); }

int wire_done_encode(const wire_done_t *d, char *buf, size_t cap)
{
    if (!d || !buf || d->exit_code < -1 || d->exit_code > 255 || d->elapsed_ms > WIRE_MAX_ELAPSED_MS ||
        !hex_of(d->rid, strlen(d->rid), 64) || !hex_of(d->rsig, strlen(d->rsig), 128))
        return -EINVAL;
    int n = snprintf(buf, cap, "&exit=%d&ms=%" PRIu64 "&rid=%s&rsig=%s", d->exit_code, d->elapsed_ms, d->rid,
                     d->rsig);
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
    size_t rl = 0, sl = 0;
    const char *rid = query_value(query, qlen, "rid", &rl);
    const char *rsig = query_value(query, qlen, "rsig", &sl);
    if (!rid || !hex_of(rid, rl, 64))
        return fail(why, whylen, -EPROTO, "done report: rid= is not a result id (64 hex digits)");
    if (!rsig || !hex_of(rsig, sl, 128))
        return fail(why, whylen, -EPROTO, "done report: rsig= is not a signature (128 hex digits)");
    out->exit_code = (int)ev;
    out->elapsed_ms = (uint64_t)mv;
    memcpy(out->rid, rid, 64);
    out->rid[64] = '\0';
    memcpy(out->rsig, rsig, 128);
    out->rsig[128] = '\0';
    return 0;
}

int wire_decline_encode(const decline_t *d, char *buf, size_t cap)
{
    if (!d || !buf || decline_check(d) != 0 || d->code == DECLINE_OTHER)
        return -EINVAL;
    int n;
    const char *name = decline_code_name(d->code);
    if (d->code == DECLINE_SLOTS)
        n = snprintf(buf, cap, "&why=%s&used=%u&of=%u", name, d->used, d->of);
    else if (d->code == DECLINE_MEMORY || d->code == DECLINE_DISK || d->code == DECLINE_MEMORY_FREE ||
             d->code == DECLINE_DISK_FREE)
        n = snprintf(buf, cap, "&why=%s&have=%" PRIu64, name, d->have);
    else
        n = snprintf(buf, cap, "&why=%s", name);
    return n < 0 || (size_t)n >= cap ? -EMSGSIZE : n;
}

/* The number at key, 0..max: 0, or -EPROTO (missing, not plain decimal, over max). */
static int query_num(const char *q, size_t qlen, const char *key, uint64_t max, uint64_t *out)
{
    size_t n = 0;
    const char *v = query_value(q, qlen, key, &n);
    int64_t x;
    if (!v || parse_dec(v, n, false, &x) != 0 || (uint64_t)x > max)
        return -EPROTO;
    *out = (uint64_t)x;
    return 0;
}

int wire_decline_decode(const char *query, size_t qlen, decline_t *out, char *why, size_t whylen)
{
    size_t wl = 0;
    const char *w = query ? query_value(query, qlen, "why", &wl) : NULL;
    decline_t d = {.code = w ? decline_code_from(w, wl) : 0};
    if (!d.code)
        return fail(why, whylen, -EPROTO, "decline without why= (a reason's name)");
    uint64_t used = 0, of = 0;
    if (d.code == DECLINE_SLOTS) {
        if (query_num(query, qlen, "used", DECLINE_MAX_SLOTS, &used) != 0 ||
            query_num(query, qlen, "of", DECLINE_MAX_SLOTS, &of) != 0 || used > of)
            return fail(why, whylen, -EPROTO, "decline: used= and of= are not slots (used <= of)");
        d.used = (uint32_t)used;
        d.of = (uint32_t)of;
    } else if (d.code == DECLINE_MEMORY || d.code == DECLINE_DISK || d.code == DECLINE_MEMORY_FREE ||
               d.code == DECLINE_DISK_FREE) {
        if (query_num(query, qlen, "have", DECLINE_MAX_BYTES, &d.have) != 0)
            return fail(why, whylen, -EPROTO, "decline: have= is not a size in bytes");
    }
    *out = d;
    return 0;
}

int wire_output_encode(const wire_output_t *o, char *buf, size_t cap)
{
    if (!o || !buf || o->run == 0 || o->run > WIRE_MAX_RUN || !hex_of(o->sha, strnlen(o->sha, sizeof(o->sha)), 64))
        return -EINVAL;
    for (int i = 0; i < 2; i++)
        if (o->off[i] > WIRE_MAX_OUTPUT_OFF || o->len[i] > WIRE_MAX_OUTPUT_CHUNK)
            return -EINVAL;
    int n = snprintf(buf, cap, "&run=%" PRIu64 "&out=%" PRIu64 "&outlen=%" PRIu32 "&err=%" PRIu64 "&errlen=%" PRIu32
                     "&sha=%s", o->run, o->off[0], o->len[0], o->off[1], o->len[1], o->sha);
    return n < 0 || (size_t)n >= cap ? -EMSGSIZE : n;
}

int wire_output_decode(const char *query, size_t qlen, wire_output_t *out, char *why, size_t whylen)
{
    wire_output_t o = {0};
    uint64_t len[2];
    if (!query || query_num(query, qlen, "run", WIRE_MAX_RUN, &o.run) != 0 || o.run == 0)
        return fail(why, whylen, -EPROTO, "output update: run= is not a run's number");
    if (query_num(query, qlen, "out", WIRE_MAX_OUTPUT_OFF, &o.off[0]) != 0 ||
        query_num(query, qlen, "err", WIRE_MAX_OUTPUT_OFF, &o.off[1]) != 0)
        return fail(why, whylen, -EPROTO, "output update: out= and err= are not offsets");
    if (query_num(query, qlen, "outlen", WIRE_MAX_OUTPUT_CHUNK, &len[0]) != 0 ||
        query_num(query, qlen, "errlen", WIRE_MAX_OUTPUT_CHUNK, &len[1]) != 0)
        return fail(why, whylen, -EPROTO, "output update: outlen= and errlen= are not lengths (at most "
                                          "WIRE_MAX_OUTPUT_CHUNK each)");
    size_t sl = 0;
    const char *sha = query_value(query, qlen, "sha", &sl);
    if (!sha || !hex_of(sha, sl, 64))
        return fail(why, whylen, -EPROTO, "output update: sha= is not a SHA-256 (64 hex digits)");
    o.len[0] = (uint32_t)len[0];
    o.len[1] = (uint32_t)len[1];
    memcpy(o.sha, sha, 64);
    *out = o;
    return 0;
}

/* ---- shared by the list codecs ---- */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf_t;

static void buf_add(buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* A formatted why, prefixed with the entry's index. */
static void entry_why(char *why, size_t whylen, const char *what, size_t i, const char *msg)
{
    if (why && whylen)
        snprintf(why, whylen, "%s %zu: %s", what, i, msg);
}

static bool is_hex_id(const char *s, size_t len) { return len == WIRE_HEX_LEN && lower_hex(s, len); }

/* The string at key: its bytes and length, or NULL (missing, not a string). */
static const char *get_str(json_t *o, const char *key, size_t *len)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return NULL;
    *len = json_string_length(v);
    return json_string_value(v);
}

/* The integer at key within [lo, hi]: 0, or -1 (missing, not an integer, out of range). */
static int get_int(json_t *o, const char *key, json_int_t lo, json_int_t hi, json_int_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return -1;
    *out = json_integer_value(v);
    return 0;
}

/* A hex id at key into out (WIRE_HEX_LEN + 1 bytes): 0 or -1. */
static int get_id(json_t *o, const char *key, char *out)
{
    size_t n = 0;
    const char *s = get_str(o, key, &n);
    if (!s || !is_hex_id(s, n))
        return -1;
    memcpy(out, s, WIRE_HEX_LEN + 1);
    return 0;
}

static wire_state_t state_from_name(const char *s)
{
    for (int st = WIRE_STATE_PUBLISHING; s && st <= WIRE_STATE_CANCELLED; st++)
        if (strcmp(s, wire_state_name((wire_state_t)st)) == 0)
            return (wire_state_t)st;
    return 0;
}

const char *wire_state_name(wire_state_t s)
{
    static const char *const names[] = {NULL, "publishing", "rejected", "running", "done", "failed", "cancelled"};
    return (int)s >= WIRE_STATE_PUBLISHING && s <= WIRE_STATE_CANCELLED ? names[s] : NULL;
}

/* ---- the jobs listing ---- */

int wire_job_check(const wire_job_t *j, char *why, size_t whylen)
{
    size_t nl = strnlen(j->name, sizeof(j->name));
    if (strnlen(j->id, sizeof(j->id)) != WIRE_HEX_LEN || !is_hex_id(j->id, WIRE_HEX_LEN))
        return fail(why, whylen, -EINVAL, "id is not 64 lowercase hex digits");
    if (nl == 0 || nl > WIRE_MAX_JOB_NAME)
        return fail(why, whylen, -EINVAL, "name is empty or too long");
    if (strcmp(j->name, ".") == 0 || strcmp(j->name, "..") == 0 || memchr(j->name, '/', nl))
        return fail(why, whylen, -EINVAL, "name is \".\", \"..\" or has a '/'");
    if (!jobdesc_utf8_valid(j->name, nl))
        return fail(why, whylen, -EINVAL, "name is not UTF-8");
    if (!wire_state_name(j->state))
        return fail(why, whylen, -EINVAL, "state is not a published job's state");
    if (j->tasks < 1 || j->tasks > JOBDESC_MAX_TASKS)
        return fail(why, whylen, -EINVAL, "tasks is not 1..JOBDESC_MAX_TASKS");
    size_t sl = strnlen(j->sig, sizeof(j->sig));
    if (sl != 0 && (sl != WIRE_SIG_HEX_LEN || !lower_hex(j->sig, sl)))
        return fail(why, whylen, -EINVAL, "sig is not 128 lowercase hex digits");
    if (!j->origin)
        return 0;
    const coord_counts_t *c = &j->counts;
    uint64_t sum = (uint64_t)c->waiting + c->running + c->succeeded + c->failed + c->cancelled;
    if (c->total != j->tasks || sum > c->total)
        return fail(why, whylen, -EINVAL, "counts do not add up to the job's tasks");
    if (j->results > j->tasks)
        return fail(why, whylen, -EINVAL, "more results than tasks");
    if (j->epoch > INT64_MAX)
        return fail(why, whylen, -EINVAL, "epoch out of range");
    return 0;
}

/* One entry as compact JSON (json_dumps: the caller frees). */
static char *job_dump(const wire_job_t *j)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:b}", "id", j->id, "name", j->name, "state", wire_state_name(j->state),
                          "tasks", (json_int_t)j->tasks, "origin", j->origin);
    if (o && j->sig[0])
        json_object_set_new(o, "sig", json_string(j->sig));
    if (o && j->origin) {
        const coord_counts_t *c = &j->counts;
        json_object_set_new(o, "counts",
                            json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "total", (json_int_t)c->total, "waiting",
                                      (json_int_t)c->waiting, "running", (json_int_t)c->running, "succeeded",
                                      (json_int_t)c->succeeded, "failed", (json_int_t)c->failed, "cancelled",
                                      (json_int_t)c->cancelled));
        json_object_set_new(o, "results", json_integer((json_int_t)j->results));
        json_object_set_new(o, "epoch", json_integer((json_int_t)j->epoch));
        if (j->removed)
            json_object_set_new(o, "removed", json_true());
    }
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

int wire_jobs_encode(const wire_job_t *jobs, size_t n, char **out, size_t *len, size_t *taken)
{
    *out = NULL;
    *len = 0;
    if (taken)
        *taken = 0;
    if (n > WIRE_MAX_JOBS)
        n = WIRE_MAX_JOBS;
    if (n && !jobs)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (wire_job_check(&jobs[i], NULL, 0) != 0)
            return -EINVAL;
    buf_t b = {0};
    buf_add(&b, "[", 1);
    size_t k = 0;
    for (; k < n; k++) {
        char *e = job_dump(&jobs[k]);
        if (!e) { /* checked above: only if jansson runs out of memory */
            free(b.p);
            return -EINVAL;
        }
        size_t el = strlen(e);
        if (b.len + (k ? 1 : 0) + el + 1 > WIRE_MAX_JOBS_BODY) {
            free(e);
            break;
        }
        if (k)
            buf_add(&b, ",", 1);
        buf_add(&b, e, el);
        free(e);
    }
    buf_add(&b, "]", 1);
    *out = b.p;
    *len = b.len;
    if (taken)
        *taken = k;
    return 0;
}

/* Reads one entry into j (zeroed first): 0, or -1 with why filled. */
static int job_read(json_t *o, wire_job_t *j, char *why, size_t whylen)
{
    memset(j, 0, sizeof(*j));
    size_t nl = 0, sl = 0;
    const char *name = get_str(o, "name", &nl);
    const char *st = get_str(o, "state", &sl);
    json_int_t v;
    if (!json_is_object(o))
        return fail(why, whylen, -1, "not an object");
    if (get_id(o, "id", j->id) != 0)
        return fail(why, whylen, -1, "id is not 64 lowercase hex digits");
    if (!name || nl == 0 || nl > WIRE_MAX_JOB_NAME || strlen(name) != nl)
        return fail(why, whylen, -1, "name is missing, empty, too long or has a NUL");
    memcpy(j->name, name, nl + 1);
    if (!st || strlen(st) != sl || !(j->state = state_from_name(st)))
        return fail(why, whylen, -1, "state is not a published job's state");
    if (get_int(o, "tasks", 1, JOBDESC_MAX_TASKS, &v) != 0)
        return fail(why, whylen, -1, "tasks is not 1..JOBDESC_MAX_TASKS");
    j->tasks = (uint32_t)v;
    json_t *sg = json_object_get(o, "sig");
    if (sg) {
        size_t gl = 0;
        const char *sig = get_str(o, "sig", &gl);
        if (!sig || gl != WIRE_SIG_HEX_LEN || strlen(sig) != gl)
            return fail(why, whylen, -1, "sig is not 128 lowercase hex digits");
        memcpy(j->sig, sig, gl + 1);
    }
    json_t *og = json_object_get(o, "origin");
    if (!json_is_boolean(og))
        return fail(why, whylen, -1, "origin is not true or false");
    j->origin = json_is_true(og);
    if (j->origin) {
        json_t *c = json_object_get(o, "counts");
        const char *keys[] = {"total", "waiting", "running", "succeeded", "failed", "cancelled"};
        uint32_t *vals[] = {&j->counts.total,     &j->counts.waiting, &j->counts.running,
                            &j->counts.succeeded, &j->counts.failed,  &j->counts.cancelled};
        if (!json_is_object(c))
            return fail(why, whylen, -1, "an origin entry without counts");
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            if (get_int(c, keys[k], 0, JOBDESC_MAX_TASKS, &v) != 0)
                return fail(why, whylen, -1, "a count is missing or out of range");
            *vals[k] = (uint32_t)v;
        }
        if (get_int(o, "results", 0, JOBDESC_MAX_TASKS, &v) != 0)
            return fail(why, whylen, -1, "results is missing or out of range");
        j->results = (uint32_t)v;
        if (get_int(o, "epoch", 0, INT64_MAX, &v) != 0)
            return fail(why, whylen, -1, "epoch is missing or out of range");
        j->epoch = (uint64_t)v;
        json_t *rm = json_object_get(o, "removed"); /* optional: absent is false */
        if (rm && !json_is_boolean(rm))
            return fail(why, whylen, -1, "removed is not true or false");
        j->removed = json_is_true(rm);
    }
    return wire_job_check(j, why, whylen) == 0 ? 0 : -1;
}

int wire_jobs_decode(const char *body, size_t len, wire_job_t **out, size_t *n, size_t *dropped, bool *complete,
                     char *why, size_t whylen)
{
    *out = NULL;
    *n = 0;
    if (dropped)
        *dropped = 0;
    if (complete)
        *complete = false;
    if (len > WIRE_MAX_JOBS_BODY)
        return fail(why, whylen, -EMSGSIZE, "jobs answer over its size limit");
    json_error_t err;
    json_t *arr = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return fail(why, whylen, -EPROTO, "jobs answer is not a JSON array");
    }
    size_t total = json_array_size(arr);
    if (total > WIRE_MAX_JOBS) {
        json_decref(arr);
        return fail(why, whylen, -EMSGSIZE, "jobs answer has more entries than WIRE_MAX_JOBS");
    }
    wire_job_t *jobs = total ? xmalloc(total * sizeof(*jobs)) : NULL;
    size_t k = 0, drop = 0;
    char ewhy[128];
    for (size_t i = 0; i < total; i++) {
        if (job_read(json_array_get(arr, i), &jobs[k], ewhy, sizeof(ewhy)) == 0) {
            k++;
        } else if (drop++ == 0) {
            entry_why(why, whylen, "jobs entry", i, ewhy);
        }
    }
    json_decref(arr);
    if (k == 0) {
        free(jobs);
        jobs = NULL;
    }
    *out = jobs;
    *n = k;
    if (dropped)
        *dropped = drop;
    /* The encoder stops for size only before an entry that would not fit, so an answer shorter
     * than the limit by a largest entry was not cut. */
    if (complete)
        *complete = drop == 0 && total < WIRE_MAX_JOBS && len + WIRE_MAX_JOB_ENTRY + 1 <= WIRE_MAX_JOBS_BODY;
    return 0;
}

/* ---- the results list ---- */

static bool text_ok(const char *s, size_t n)
{
    if (n == 0 || n > WIRE_MAX_RESULT_MANIFEST)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20)
            return false;
    return jobdesc_utf8_valid(s, n);
}

/* The checks an entry passes on both ends, bar its hash and repeats. */
static const char *result_check(const wire_result_t *e, uint32_t ntasks)
{
    if (e->task >= ntasks)
        return "no such task";
    if (e->exit_code < -1 || e->exit_code > 255)
        return "exit is not -1..255";
    if (strnlen(e->id, sizeof(e->id)) != WIRE_HEX_LEN || !is_hex_id(e->id, WIRE_HEX_LEN))
        return "id is not 64 lowercase hex digits";
    if (!e->manifest || !text_ok(e->manifest, e->manifest_len))
        return "manifest is empty, too large, or not text";
    size_t wl = strnlen(e->worker, sizeof(e->worker));
    if (wl != 0 && (wl != WIRE_HEX_LEN || !lower_hex(e->worker, wl)))
        return "worker is not 64 lowercase hex digits";
    if (strnlen(e->sig, sizeof(e->sig)) != WIRE_SIG_HEX_LEN || !lower_hex(e->sig, WIRE_SIG_HEX_LEN))
        return "sig is not 128 lowercase hex digits";
    return NULL;
}

static bool bit_test_set(uint8_t *bits, uint32_t i)
{
    bool was = bits[i / 8] & (1u << (i % 8));
    bits[i / 8] |= (uint8_t)(1u << (i % 8));
    return was;
}

int wire_results_encode(const wire_results_t *r, uint32_t ntasks, char **out, size_t *len, size_t *taken)
{
    *out = NULL;
    *len = 0;
    if (taken)
        *taken = 0;
    if (ntasks > JOBDESC_MAX_TASKS) /* as the decoder does */
        ntasks = JOBDESC_MAX_TASKS;
    if (!r || strnlen(r->job, sizeof(r->job)) != WIRE_HEX_LEN || !is_hex_id(r->job, WIRE_HEX_LEN) ||
        !wire_state_name(r->state) || r->epoch > INT64_MAX || r->done > ntasks ||
        r->after > r->done || r->n > r->done - r->after || (r->n && !r->results))
        return -EINVAL;
    size_t n = r->n < WIRE_MAX_RESULTS ? r->n : WIRE_MAX_RESULTS;
    uint8_t *seen = xcalloc(ntasks / 8 + 1, 1);
    for (size_t i = 0; i < n; i++) {
        if (result_check(&r->results[i], ntasks) || bit_test_set(seen, r->results[i].task)) {
            free(seen);
            return -EINVAL;
        }
    }
    free(seen);
    const char *sn = wire_state_name(r->state);
    char head[256];
    int hl = snprintf(head, sizeof(head),
                      "{\"job\":\"%s\",\"state\":\"%s\",\"epoch\":%" PRIu64 ",\"after\":%" PRIu32 ",\"done\":%" PRIu32
                      ",\"results\":[",
                      r->job, sn ? sn : "", r->epoch, r->after, r->done);
    buf_t b = {0};
    buf_add(&b, head, (size_t)hl);
    size_t k = 0;
    for (; k < n; k++) {
        const wire_result_t *e = &r->results[k];
        json_t *o = json_pack("{s:I,s:i,s:b,s:s,s:s%,s:s}", "task", (json_int_t)e->task, "exit", e->exit_code, "ok",
                              e->ok, "id", e->id, "manifest", e->manifest, e->manifest_len, "sig", e->sig);
        if (o && e->worker[0])
            json_object_set_new(o, "worker", json_string(e->worker));
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!s) { /* checked above: only if jansson runs out of memory */
            free(b.p);
            return -EINVAL;
        }
        size_t el = strlen(s);
        if (k && b.len + 1 + el + 2 > WIRE_MAX_RESULTS_BODY) {
            free(s);
            break;
        }
        if (k)
            buf_add(&b, ",", 1);
        buf_add(&b, s, el);
        free(s);
    }
    buf_add(&b, "]}", 2);
    *out = b.p;
    *len = b.len;
    if (taken)
        *taken = k;
    return 0;
}

/* Reads one entry into e, its manifest copied to text (room bytes): NULL, or why not. */
static const char *result_read(json_t *o, uint32_t ntasks, wire_result_t *e, char *text, size_t room)
{
    memset(e, 0, sizeof(*e));
    json_int_t v;
    size_t ml = 0;
    if (!json_is_object(o))
        return "not an object";
    if (get_int(o, "task", 0, (json_int_t)ntasks - 1, &v) != 0)
        return "no such task";
    e->task = (uint32_t)v;
    if (get_int(o, "exit", -1, 255, &v) != 0)
        return "exit is not -1..255";
    e->exit_code = (int)v;
    json_t *ok = json_object_get(o, "ok");
    if (!json_is_boolean(ok))
        return "ok is not true or false";
    e->ok = json_is_true(ok);
    if (get_id(o, "id", e->id) != 0)
        return "id is not 64 lowercase hex digits";
    size_t wl = 0, sl = 0;
    const char *w = get_str(o, "worker", &wl), *sg = get_str(o, "sig", &sl);
    if ((!w && json_object_get(o, "worker")) || (w && (wl != WIRE_HEX_LEN || !lower_hex(w, wl))))
        return "worker is not 64 lowercase hex digits";
    if (!sg || sl != WIRE_SIG_HEX_LEN || !lower_hex(sg, sl))
        return "sig is missing or not 128 lowercase hex digits";
    if (w)
        memcpy(e->worker, w, WIRE_HEX_LEN + 1);
    memcpy(e->sig, sg, WIRE_SIG_HEX_LEN);
    e->sig[WIRE_SIG_HEX_LEN] = '\0';
    const char *m = get_str(o, "manifest", &ml);
    if (!m || !text_ok(m, ml) || ml >= room) /* text_ok also refuses a NUL; room always suffices */
        return "manifest is missing, empty, too large, or not text";
    hash_t want, got;
    hash_from_hex(e->id, WIRE_HEX_LEN, &want);
    manifest_id(m, ml, &got);
    if (!hash_equal(&want, &got))
        return "its manifest does not hash to its id";
    memcpy(text, m, ml);
    text[ml] = '\0';
    e->manifest = text;
    e->manifest_len = ml;
    return result_check(e, ntasks);
}

int wire_results_decode(const char *body, size_t len, uint32_t ntasks, wire_results_t *out, size_t *dropped,
                        char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    if (dropped)
        *dropped = 0;
    if (len > WIRE_MAX_RESULTS_BODY)
        return fail(why, whylen, -EMSGSIZE, "results list over its size limit");
    if (ntasks > JOBDESC_MAX_TASKS)
        ntasks = JOBDESC_MAX_TASKS;
    json_error_t err;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    json_t *arr = json_object_get(o, "results");
    size_t sl = 0;
    const char *st = get_str(o, "state", &sl);
    json_int_t epoch, after, done;
    int rc = 0;
    if (!json_is_object(o))
        rc = fail(why, whylen, -EPROTO, "results list is not a JSON object");
    else if (get_id(o, "job", out->job) != 0)
        rc = fail(why, whylen, -EPROTO, "results list: job is not 64 lowercase hex digits");
    else if (!st || strlen(st) != sl || !(out->state = state_from_name(st)))
        rc = fail(why, whylen, -EPROTO, "results list: state is not a published job's state");
    else if (get_int(o, "epoch", 0, INT64_MAX, &epoch) != 0)
        rc = fail(why, whylen, -EPROTO, "results list: epoch is missing or out of range");
    else if (get_int(o, "done", 0, ntasks, &done) != 0)
        rc = fail(why, whylen, -EPROTO, "results list: done is not 0..tasks");
    else if (get_int(o, "after", 0, done, &after) != 0)
        rc = fail(why, whylen, -EPROTO, "results list: after is not 0..done");
    else if (!json_is_array(arr))
        rc = fail(why, whylen, -EPROTO, "results list has no \"results\" array");
    else if (json_array_size(arr) > WIRE_MAX_RESULTS)
        rc = fail(why, whylen, -EMSGSIZE, "results list has more entries than WIRE_MAX_RESULTS");
    else if (json_array_size(arr) > (size_t)(done - after))
        rc = fail(why, whylen, -EPROTO, "results list has more entries than results after its start");
    if (rc) {
        json_decref(o);
        memset(out, 0, sizeof(*out));
        return rc;
    }
    out->epoch = (uint64_t)epoch;
    out->after = (uint32_t)after;
    out->done = (uint32_t)done;
    size_t total = json_array_size(arr), k = 0, drop = 0;
    /* A string's decoded bytes are fewer than its encoded ones with the quotes: the body's length
     * holds every manifest and its NUL. */
    out->text = xmalloc(len + 1);
    out->results = total ? xcalloc(total, sizeof(*out->results)) : NULL;
    uint8_t *seen = xcalloc(ntasks / 8 + 1, 1);
    size_t off = 0;
    for (size_t i = 0; i < total; i++) {
        wire_result_t *e = &out->results[k];
        const char *bad = result_read(json_array_get(arr, i), ntasks, e, out->text + off, len + 1 - off);
        if (!bad && bit_test_set(seen, e->task))
            bad = "its task is already in the list";
        if (!bad) {
            off += e->manifest_len + 1;
            k++;
        } else if (drop++ == 0) {
            entry_why(why, whylen, "results entry", i, bad);
        }
    }
    free(seen);
    json_decref(o);
    out->n = k;
    if (dropped)
        *dropped = drop;
    return 0;
}

void wire_results_release(wire_results_t *r)
{
    if (!r)
        return;
    free(r->results);
    free(r->text);
    memset(r, 0, sizeof(*r));
}
