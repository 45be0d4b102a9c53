/**
 * @file hash.h  SHA-256 through OpenSSL EVP (SHA-NI where the CPU has it), and hex forms.
 */
#ifndef PREON_CORE_HASH_H
#define PREON_CORE_HASH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HASH_LEN 32
#define HASH_HEX_LEN 64

typedef struct hash {
    uint8_t b[HASH_LEN];
} hash_t;

/** One-shot SHA-256 of len bytes. */
void hash_sha256(const void *data, size_t len, hash_t *out);

/** Incremental SHA-256. hash_ctx_new never fails (aborts on OOM). */
typedef struct hash_ctx hash_ctx_t;
hash_ctx_t *hash_ctx_new(void);
void hash_ctx_update(hash_ctx_t *c, const void *data, size_t len);
/** Writes the digest and resets the context for reuse. */
void hash_ctx_final(hash_ctx_t *c, hash_t *out);
void hash_ctx_free(hash_ctx_t *c);

/** Lower-case hex, NUL-terminated: out must hold HASH_HEX_LEN + 1 bytes. */
void hash_to_hex(const hash_t *h, char *out);
/** Parses exactly HASH_HEX_LEN hex digits (either case) of hex[0..len). 0 or -EINVAL. */
int hash_from_hex(const char *hex, size_t len, hash_t *out);
bool hash_equal(const hash_t *a, const hash_t *b);
/** Base64 (RFC 4648, with padding) of the digest, NUL-terminated: out holds HASH_B64_LEN + 1 bytes
 *  (the form of a Content-Security-Policy 'sha256-...' source). */
#define HASH_B64_LEN 44
void hash_to_base64(const hash_t *h, char *out);
/** Lower-case hex of n bytes, NUL-terminated: out holds 2 * n + 1 bytes. */
void hash_hex_encode(const void *bytes, size_t n, char *out);
/** Exactly 2 * n hex digits (either case) of hex[0..len) into n bytes. 0 or -EINVAL (out untouched). */
int hash_hex_decode(const char *hex, size_t len, void *out, size_t n);
/** The value of one hex digit (either case), or -1. */
int hash_hex_digit(char c);

#endif
