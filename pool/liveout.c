/*
 * liveout.c: the rules of a running task's live output (pool/liveout.h): which bytes a volunteer
 * sends, and how the submitter keeps the first and the last of them in a bounded file. Pure.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "pool/liveout.h"
#include "pool/wire.h"

void liveout_pick(uint64_t sent, uint64_t size, uint32_t chunk, uint64_t *off, uint32_t *len)
{
    if (size <= sent) {
        *off = size;
        *len = 0;
        return;
    }
    uint64_t n = size - sent;
    *len = n > chunk ? chunk : (uint32_t)n;
    *off = size - *len; /* the newest bytes: what came before them and was not sent is skipped */
}

size_t liveout_mark(const liveout_keep_t *k, char *buf, size_t cap)
{
    int n = snprintf(buf, cap,
                     "\n[preon: live output past its first %" PRIu32 " bytes: only the last %" PRIu32
                     " are shown; the whole output comes with the result]\n",
                     k->head, k->tail);
    return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

int liveout_apply(const liveout_keep_t *k, liveout_file_t *f, const char *window, size_t wlen, uint64_t off,
                  const char *data, size_t len, liveout_write_t *w)
{
    if (!k->head || !k->tail || len > WIRE_MAX_OUTPUT_CHUNK || off > WIRE_MAX_OUTPUT_OFF ||
        len > WIRE_MAX_OUTPUT_OFF - off || (len && !data))
        return -EINVAL;
    *w = (liveout_write_t){.at = f->len, .new_len = f->len};
    if (off + len <= f->next)
        return 0; /* every byte was taken already (an update sent again) */
    if (off < f->next) {
        data += f->next - off;
        len -= (size_t)(f->next - off);
        off = f->next;
    }
    /* What comes: a line for the bytes skipped before it, then the bytes. */
    char skip[LIVEOUT_MAX_SKIP] = "";
    size_t slen = 0;
    if (off > f->next) {
        int n = snprintf(skip, sizeof(skip), "\n[preon: %" PRIu64 " bytes skipped]\n", off - f->next);
        slen = n > 0 ? (size_t)n : 0;
    }
    size_t tlen = slen + len;
    char mark[LIVEOUT_MAX_MARK];
    size_t mlen = liveout_mark(k, mark, sizeof(mark));
    f->next = off + len;
    if (!f->windowed && f->len + tlen <= k->head) { /* within the head: appended */
        char *b = xmalloc(tlen ? tlen : 1);
        memcpy(b, skip, slen);
        if (len)
            memcpy(b + slen, data, len);
        *w = (liveout_write_t){.at = f->len, .buf = b, .len = tlen, .new_len = f->len + tlen};
        f->len += tlen;
        return 0;
    }
    /* The tail: the last k->tail bytes of (what the file's tail holds, or what spills past the
     * head) and what came. */
    size_t fit = f->windowed ? 0 : (size_t)(k->head - f->len); /* of the head still free */
    const char *old = f->windowed ? window : NULL;
    size_t olen = f->windowed && window ? wlen : 0;
    size_t spill = tlen - fit; /* what comes past the head */
    size_t keep = olen + spill < k->tail ? olen + spill : k->tail;
    size_t blen = fit + (f->windowed ? 0 : mlen) + keep;
    char *b = xmalloc(blen ? blen : 1), *p = b;
    /* the head's last bytes, from skip then data */
    for (size_t i = 0; i < fit; i++)
        *p++ = i < slen ? skip[i] : data[i - slen];
    if (!f->windowed) {
        memcpy(p, mark, mlen);
        p += mlen;
    }
    /* the tail: the last `keep` bytes of old + (skip, data)[fit..] */
    size_t from = olen + spill - keep; /* bytes of old + spill dropped at the front */
    for (size_t i = from; i < olen + spill; i++) {
        size_t j = i < olen ? i : fit + (i - olen); /* index into (skip, data) past the head part */
        *p++ = i < olen ? old[i] : j < slen ? skip[j] : data[j - slen];
    }
    uint64_t at = f->windowed ? (uint64_t)k->head + mlen : f->len;
    *w = (liveout_write_t){.at = at, .buf = b, .len = blen, .new_len = at + blen};
    f->len = at + blen;
    f->windowed = true;
    return 0;
}
