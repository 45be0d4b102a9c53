/**
 * @file key.h  Ed25519 identities (OpenSSL EVP): a peer is its public key.
 *
 * A key pair lives in a PEM file (PKCS#8, "-----BEGIN PRIVATE KEY-----", readable by `openssl
 * pkey`), mode 0600: a key file that others may read is refused, as ssh does. A public key's text
 * form is 64 lower-case hex digits (the 32 raw bytes); signatures are 64 bytes (128 hex digits).
 * Signing and verifying are pure computations on the caller's thread (about 50 us each).
 * Errors are 0 or -errno, with a reason in why where the function takes one.
 */
#ifndef PREON_CORE_KEY_H
#define PREON_CORE_KEY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEY_PUB_LEN 32
#define KEY_PUB_HEX_LEN 64
#define KEY_SIG_LEN 64
#define KEY_SIG_HEX_LEN 128
/** Largest key file read (a PEM Ed25519 key is 119 bytes). */
#define KEY_MAX_FILE 4096

typedef struct key_pub {
    uint8_t b[KEY_PUB_LEN];
} key_pub_t;

typedef struct keypair keypair_t;

/** A new random key pair. 0 or -EIO (OpenSSL failed; logged). */
int key_generate(keypair_t **out);
/**
 * Reads a key pair from path. -ENOENT (no file), -EPERM (group or others may read it, or it is
 * not a regular file), -EINVAL (not an Ed25519 private key in PEM), -errno.
 */
int key_load(const char *path, keypair_t **out, char *why, size_t whylen);
/** Writes the key pair to a new file path (0600, written then renamed in place; never replaces one). -EEXIST. */
int key_save(const keypair_t *k, const char *path, char *why, size_t whylen);
/** key_load, or, if there is no file, key_generate then key_save (*created says which). */
int key_load_or_create(const char *path, keypair_t **out, bool *created, char *why, size_t whylen);
void key_free(keypair_t *k);

void key_public(const keypair_t *k, key_pub_t *out);
/** Signs len bytes. Never fails for a valid key (aborts if OpenSSL cannot). */
void key_sign(const keypair_t *k, const void *msg, size_t len, uint8_t sig[KEY_SIG_LEN]);
/** Whether sig is pub's signature of msg. */
bool key_verify(const key_pub_t *pub, const void *msg, size_t len, const uint8_t sig[KEY_SIG_LEN]);

/** Lower-case hex, NUL-terminated: out holds KEY_PUB_HEX_LEN + 1 bytes. */
void key_pub_to_hex(const key_pub_t *pub, char *out);
/** Exactly KEY_PUB_HEX_LEN hex digits of hex[0..len). 0 or -EINVAL. */
int key_pub_from_hex(const char *hex, size_t len, key_pub_t *out);
bool key_pub_equal(const key_pub_t *a, const key_pub_t *b);
/** Lower-case hex of a signature: out holds KEY_SIG_HEX_LEN + 1 bytes. */
void key_sig_to_hex(const uint8_t sig[KEY_SIG_LEN], char *out);
/** Exactly KEY_SIG_HEX_LEN hex digits. 0 or -EINVAL. */
int key_sig_from_hex(const char *hex, size_t len, uint8_t sig[KEY_SIG_LEN]);

#endif
