/*
 * hash.c: SHA-256 through OpenSSL 3 EVP, and the hex form used in manifests, URLs and file names.
 *
 * OpenSSL 3 looks an algorithm up in its provider tables on every EVP_sha256() use ("implicit
 * fetch"), which costs more than hashing a small block. We fetch the implementation once, under
 * pthread_once because the block store hashes from uv_queue_work threads, and keep it for the life
 * of the process: it is immutable, so sharing it is not shared mutable state. EVP failures can only
 * mean out of memory or a broken OpenSSL install; like xmalloc we abort rather than hand out a
 * digest we did not compute.
 */
#include "core/hash.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hash_ctx {
    EVP_MD_CTX *ctx;
};

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void hash_die(const char *what)
{
    fprintf(stderr, "preon: OpenSSL SHA-256 failed in %s\n", what);
    abort();
}

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!sha256_md)
        hash_die("EVP_MD_fetch");
}

static const EVP_MD *sha256(void)
{
    pthread_once(&sha256_once, sha256_fetch);
    return sha256_md;
}

void hash_sha256(const void *data, size_t len, hash_t *out)
{
    unsigned int n = 0;
    if (!EVP_Digest(data, len, out->b, &n, sha256(), NULL) || n != HASH_LEN)
        hash_die("EVP_Digest");
}

hash_ctx_t *hash_ctx_new(void)
{
    hash_ctx_t *c = malloc(sizeof(*c));
    if (!c)
        hash_die("hash_ctx_new");
    c->ctx = EVP_MD_CTX_new();
    if (!c->ctx || !EVP_DigestInit_ex2(c->ctx, sha256(), NULL))
        hash_die("EVP_DigestInit_ex2");
    return c;
}

void hash_ctx_update(hash_ctx_t *c, const void *data, size_t len)
{
    if (len && !EVP_DigestUpdate(c->ctx, data, len))
        hash_die("EVP_DigestUpdate");
}

void hash_ctx_final(hash_ctx_t *c, hash_t *out)
{
    unsigned int n = 0;
    if (!EVP_DigestFinal_ex(c->ctx, out->b, &n) || n != HASH_LEN)
        hash_die("EVP_DigestFinal_ex");
    if (!EVP_DigestInit_ex2(c->ctx, sha256(), NULL))
        hash_die("EVP_DigestInit_ex2");
}

void hash_ctx_free(hash_ctx_t *c)
{
    if (!c)
        return;
    EVP_MD_CTX_free(c->ctx);
    free(c);
}

void hash_to_base64(const hash_t *h, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, h->b, HASH_LEN); /* 4 * ceil(32 / 3) = 44 characters and a NUL */
}

void hash_hex_encode(const void *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *b = bytes;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 0xf];
    }
    out[2 * n] = '\0';
}

int hash_hex_decode(const char *hex, size_t len, void *out, size_t n)
{
    if (!hex || len != 2 * n)
        return -EINVAL;
    for (size_t i = 0; i < 2 * n; i++)
        if (hash_hex_digit(hex[i]) < 0)
            return -EINVAL; /* out untouched on error */
    uint8_t *b = out;
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(hash_hex_digit(hex[2 * i]) << 4 | hash_hex_digit(hex[2 * i + 1]));
    return 0;
}

void hash_to_hex(const hash_t *h, char *out) { hash_hex_encode(h->b, HASH_LEN, out); }

int hash_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hash_from_hex(const char *hex, size_t len, hash_t *out) { return hash_hex_decode(hex, len, out->b, HASH_LEN); }

bool hash_equal(const hash_t *a, const hash_t *b) { return memcmp(a->b, b->b, HASH_LEN) == 0; }
