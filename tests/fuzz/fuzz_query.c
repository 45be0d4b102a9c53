/*
 * fuzz_query.c: libFuzzer target for the query-string helpers every peer API handler reads its
 * parameters with (core/httpd.h: httpd_query_next, httpd_unescape, httpd_query_get) and the hex
 * decoders of ids, keys and signatures in a request's path or query (core/hash.h; `make fuzz`).
 *
 * The first byte of the input is the output buffer's size, the rest is the query. Checked against
 * an independent reading of the same rules: the pairs cover the query exactly (split on '&', empty
 * pairs skipped, the first '=' splits), percent-decoding gives what a plain decoder gives (or fails
 * exactly when it does: a bad escape, a cap too small), escaping it again and decoding gives it
 * back, httpd_query_get finds the first pair whose decoded key matches, and a hex decoder accepts
 * exactly its length of hex digits and re-encodes to the lower-case input.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/httpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The reference: decoded length, or -1 for a bad escape. */
static long ref_unescape(const char *s, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        if (len - i < 3)
            return -1;
        int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
        if (hi < 0 || lo < 0)
            return -1;
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    return (long)o;
}

/* Checks httpd_unescape of s[0..len) against the reference with an output of cap bytes; returns
 * the decoded length or -1. */
static long check_unescape(const char *s, size_t len, size_t cap, char *out, char *ref)
{
    long want = ref_unescape(s, len, ref);
    size_t got = 0;
    int rc = httpd_unescape(s, len, out, cap, &got);
    if (want < 0) {
        /* a bad escape fails; with a small cap, running out of room may be found first */
        if (rc != -EINVAL && rc != -EMSGSIZE)
            abort();
        return -1;
    }
    if ((size_t)want > cap) {
        if (rc != -EMSGSIZE)
            abort();
        return -1;
    }
    if (rc != 0 || got != (size_t)want || memcmp(out, ref, got) != 0)
        abort();
    return want;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t cap = data[0];
    const char *q = (const char *)data + 1;
    size_t len = size - 1;
    char *out = malloc(len + 1), *ref = malloc(len + 1), *esc = malloc(3 * len + 1), *back = malloc(len + 1);
    if (!out || !ref || !esc || !back)
        abort();

    /* The pairs, in order, cover the query: each is a non-empty segment between '&'s. */
    httpd_query_iter_t it;
    httpd_query_iter_init(&it, q, len);
    const char *k, *v, *pos = q;
    size_t kl, vl, npairs = 0;
    const char *first_key = NULL;
    size_t first_kl = 0;
    while (httpd_query_next(&it, &k, &kl, &v, &vl)) {
        while (pos < k && *pos == '&') /* the empty segments skipped, then this one */
            pos++;
        if (k != pos || v < k + kl || v + vl > q + len || memchr(k, '&', kl) || memchr(v, '&', vl) ||
            memchr(k, '=', kl))
            abort();
        bool has_eq = v != k + kl;
        if ((has_eq && (v != k + kl + 1 || k[kl] != '=')) || (!has_eq && vl != 0) || kl + vl + has_eq == 0)
            abort(); /* "=" alone is a pair (empty key and value); an empty segment is not */
        pos = v + vl;
        if (pos < q + len && *pos != '&')
            abort();
        if (!first_key) {
            first_key = k;
            first_kl = kl;
        }
        npairs++;
        if (npairs > len)
            abort();
        /* Each value decodes as the reference says; escaped again, it decodes back. */
        long n = check_unescape(v, vl, cap, out, ref);
        if (n >= 0) {
            static const char hexd[] = "0123456789ABCDEF";
            size_t e = 0;
            for (long i = 0; i < n; i++) {
                unsigned char c = (unsigned char)out[i];
                esc[e++] = '%';
                esc[e++] = hexd[c >> 4];
                esc[e++] = hexd[c & 15];
            }
            size_t bl = 0;
            if (httpd_unescape(esc, e, back, len + 1, &bl) != 0 || bl != (size_t)n || memcmp(back, out, bl) != 0)
                abort();
        }
    }
    while (pos < q + len && *pos == '&')
        pos++;
    if (pos != q + len)
        abort();

    /* httpd_query_get of the first pair's decoded key (if it is one a handler could ask for: at
     * most 63 bytes, no NUL) gives the first pair with that decoded key. */
    if (first_key) {
        char key[64];
        size_t dl = 0;
        if (httpd_unescape(first_key, first_kl, key, sizeof(key) - 1, &dl) == 0 && !memchr(key, '\0', dl)) {
            key[dl] = '\0';
            size_t gl = 0;
            int rc = httpd_query_get(q, len, key, out, cap, &gl);
            httpd_query_iter_init(&it, q, len);
            while (httpd_query_next(&it, &k, &kl, &v, &vl)) {
                char kb[64];
                size_t l2;
                if (httpd_unescape(k, kl, kb, sizeof(kb), &l2) == 0 && l2 == dl && memcmp(kb, key, dl) == 0)
                    break;
            }
            long want = ref_unescape(v, vl, ref);
            if (want >= 0 && (size_t)want <= cap) {
                if (rc != 0 || gl != (size_t)want || memcmp(out, ref, gl) != 0)
                    abort();
            } else if (rc != -EINVAL && rc != -EMSGSIZE) {
                abort();
            }
        }
    }

    /* Hex: a decoder of n bytes takes exactly 2n hex digits, and gives them back lower-case. */
    static const size_t widths[] = {20, 32, 64};
    for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
        uint8_t bytes[64];
        char hex[129];
        size_t n = widths[w];
        if (hash_hex_decode(q, len, bytes, n) != 0)
            continue;
        if (len != 2 * n)
            abort();
        hash_hex_encode(bytes, n, hex);
        for (size_t i = 0; i < len; i++) {
            char c = q[i] >= 'A' && q[i] <= 'F' ? (char)(q[i] - 'A' + 'a') : q[i];
            if (hex[i] != c)
                abort();
        }
    }
    free(out);
    free(ref);
    free(esc);
    free(back);
    return 0;
}
