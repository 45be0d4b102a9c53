/*
 * bundle.c: small results inline in the /v1/done request (see bundle.h for the wire and the limits).
 *
 * The volunteer sends the result's manifest together with the bytes, so the submitter checks the
 * bytes against the same block hashes it would have fetched them by: a bundle is accepted only if
 * its manifest decodes (every limit checked), every file lies within one block, the sizes add up to
 * the bytes received, and each file's bytes hash to its block. Base64url is used (not percent-encoding)
 * because it costs 4/3 and needs no escaping in a query string.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/httpd.h"
#include "core/xalloc.h"
#include "pool/bundle.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t bundle_b64_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

void bundle_b64_encode(const void *in, size_t n, char *out)
{
    const unsigned char *p = in;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        size_t chars = n - i >= 3 ? 4 : n - i + 1;
        for (size_t k = 0; k < chars; k++)
            out[o++] = b64[(v >> (18 - 6 * k)) & 63];
    }
    out[o] = '\0';
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int bundle_b64_decode(const char *in, size_t n, void *out, size_t cap, size_t *outlen)
{
    unsigned char *o = out;
    size_t len = 0;
    if (n % 4 == 1)
        return -EINVAL; /* no byte count encodes to that */
    if (n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > cap)
        return -EMSGSIZE;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value(in[i]);
        if (v < 0)
            return -EINVAL;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[len++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return -EINVAL; /* left-over bits must be zero: one byte string has one encoding */
    *outlen = len;
    return 0;
}

bool bundle_fits(const manifest_t *m)
{
    uint64_t total = 0;
    for (size_t i = 0; i < m->n_files; i++) {
        if (m->files[i].size > m->block_size)
            return false;
        total += m->files[i].size;
    }
    return total <= BUNDLE_MAX_DATA;
}

int bundle_query(const char *man, size_t manlen, const char *data, size_t len, char **out)
{
    if (manlen > BUNDLE_MAX_MANIFEST || len > BUNDLE_MAX_DATA)
        return -EMSGSIZE;
    size_t ml = bundle_b64_len(manlen), dl = bundle_b64_len(len);
    char *q = xmalloc(ml + dl + sizeof("&man=&data="));
    memcpy(q, "&man=", 5);
    bundle_b64_encode(man, manlen, q + 5);
    memcpy(q + 5 + ml, "&data=", 6);
    bundle_b64_encode(data, len, q + 11 + ml);
    *out = q;
    return 0;
}

/* Decodes the query parameter key (base64url) into out (cap bytes). */
static int param(const char *query, size_t qlen, const char *key, char *out, size_t cap, size_t *outlen,
                 char *why, size_t whylen)
{
    char enc[(BUNDLE_MAX_MANIFEST + 2) / 3 * 4 + 8];
    size_t elen = 0;
    int rc = httpd_query_get(query, qlen, key, enc, sizeof(enc), &elen);
    if (rc == -ENOENT)
        return rc;
    if (!rc)
        rc = bundle_b64_decode(enc, elen, out, cap, outlen);
    if (rc)
        snprintf(why, whylen, "inline %s: %s", key, rc == -EMSGSIZE ? "too long" : "not base64url");
    return rc;
}

int bundle_parse(const char *query, size_t qlen, manifest_t *m, char **data, size_t *len, char *why,
                 size_t whylen)
{
    char man[BUNDLE_MAX_MANIFEST];
    char *buf = xmalloc(BUNDLE_MAX_DATA + 1);
    size_t manlen = 0, dlen = 0;
    int rc = param(query, qlen, "man", man, sizeof(man), &manlen, why, whylen);
    if (rc)
        goto error;
    rc = param(query, qlen, "data", buf, BUNDLE_MAX_DATA, &dlen, why, whylen);
    if (rc == -ENOENT)
        snprintf(why, whylen, "inline result: man without data");
    if (rc)
        goto error;
    char mwhy[200] = "";
    if (manifest_decode(m, man, manlen, mwhy, sizeof(mwhy)) != 0) {
        snprintf(why, whylen, "inline manifest: %s", mwhy[0] ? mwhy : "undecodable");
        rc = -EINVAL;
        goto error;
    }
    if (!bundle_fits(m)) {
        snprintf(why, whylen, "inline result: a file spans blocks or the contents exceed %u bytes",
                 (unsigned)BUNDLE_MAX_DATA);
        rc = -EMSGSIZE;
        goto error;
    }
    size_t off = 0;
    for (size_t i = 0; i < m->n_files; i++) {
        const manifest_file_t *f = &m->files[i];
        if (f->size > dlen - off) {
            snprintf(why, whylen, "inline result: %zu bytes of contents, the manifest says more", dlen);
            rc = -EBADMSG;
            goto error;
        }
        hash_t h;
        hash_sha256(buf + off, (size_t)f->size, &h);
        if (f->n_blocks != (f->size ? 1u : 0u) || (f->size && !hash_equal(&h, &f->blocks[0]))) {
            snprintf(why, whylen, "inline result: %s does not match its block hash", f->path);
            rc = -EBADMSG;
            goto error;
        }
        off += (size_t)f->size;
    }
    if (off != dlen) {
        snprintf(why, whylen, "inline result: %zu bytes of contents, the manifest says %zu", dlen, off);
        rc = -EBADMSG;
        goto error;
    }
    *data = buf;
    *len = dlen;
    return 0;
error:
    free(buf);
    return rc;
}
