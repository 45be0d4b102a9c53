/*
 * key.c: Ed25519 key pairs, signatures and their text forms, through OpenSSL's EVP interface
 * (EVP_PKEY_ED25519: "pure" Ed25519, the message signed whole, no digest given).
 *
 * A key file is read whole (at most KEY_MAX_FILE bytes) and parsed from memory, so the checks on
 * the file (regular, not readable by group or others) are made on the descriptor that is read.
 * A new file is written under a temporary name, synced, and linked into place: link() fails if
 * the name exists, so two peers starting at once on one data directory never replace each other's
 * key, and a crash leaves either no key file or a whole one.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/key.h"
#include "core/log.h"
#include "core/xalloc.h"

struct keypair {
    EVP_PKEY *pkey;
    key_pub_t pub;
};

static void set_why(char *why, size_t whylen, const char *fmt, const char *a, const char *b)
{
    if (why && whylen)
        snprintf(why, whylen, fmt, a, b);
}

/* The last OpenSSL error, for a log line. */
static const char *ossl_err(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (!e)
        return "unknown error";
    ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

static int wrap(EVP_PKEY *pkey, keypair_t **out)
{
    size_t n = KEY_PUB_LEN;
    keypair_t *k = xcalloc(1, sizeof(*k));
    k->pkey = pkey;
    if (EVP_PKEY_get_raw_public_key(pkey, k->pub.b, &n) != 1 || n != KEY_PUB_LEN) {
        EVP_PKEY_free(pkey);
        free(k);
        return -EINVAL;
    }
    *out = k;
    return 0;
}

int key_generate(keypair_t **out)
{
    *out = NULL;
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &pkey) != 1) {
        char eb[256];
        log_error("key: generating an Ed25519 key: %s", ossl_err(eb, sizeof(eb)));
        EVP_PKEY_CTX_free(ctx);
        return -EIO;
    }
    EVP_PKEY_CTX_free(ctx);
    return wrap(pkey, out) ? -EIO : 0;
}

/* An encrypted key file is refused, never a password asked for on the terminal. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

int key_load(const char *path, keypair_t **out, char *why, size_t whylen)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        set_why(why, whylen, "%s: %s", path, strerror(err));
        return -err;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        set_why(why, whylen, "%s: %s", path, "not a regular file");
        return -EPERM;
    }
    if (st.st_uid != geteuid()) {
        close(fd);
        set_why(why, whylen, "%s: %s", path, "owned by another user");
        return -EPERM;
    }
    if (st.st_mode & 077) {
        close(fd);
        set_why(why, whylen, "%s: %s", path, "group or others may read it (chmod 600 it)");
        return -EPERM;
    }
    char buf[KEY_MAX_FILE];
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, sizeof(buf) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            close(fd);
            set_why(why, whylen, "%s: %s", path, strerror(err));
            return -err;
        }
        if (n == 0 || (got += (size_t)n) == sizeof(buf))
            break;
    }
    close(fd);
    if (got == sizeof(buf)) {
        set_why(why, whylen, "%s: %s", path, "too big for a key file");
        return -EINVAL;
    }
    BIO *bio = BIO_new_mem_buf(buf, (int)got);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL) : NULL;
    BIO_free(bio);
    OPENSSL_cleanse(buf, sizeof(buf));
    ERR_clear_error();
    if (!pkey || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(pkey);
        set_why(why, whylen, "%s: %s", path, "not an Ed25519 private key in PEM (preon keygen makes one)");
        return -EINVAL;
    }
    if (wrap(pkey, out)) {
        set_why(why, whylen, "%s: %s", path, "unreadable key");
        return -EINVAL;
    }
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int key_save(const keypair_t *k, const char *path, char *why, size_t whylen)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL) != 1) {
        BIO_free(bio);
        set_why(why, whylen, "%s: %s", path, "cannot encode the key");
        return -EIO;
    }
    char *pem = NULL;
    long len = BIO_get_mem_data(bio, &pem);
    char *tmp = xasprintf("%s.tmp.XXXXXX", path);
    int rc = 0;
    int fd = mkostemp(tmp, O_CLOEXEC); /* 0600, a new name */
    if (fd < 0)
        rc = -errno;
    if (!rc)
        rc = write_all(fd, pem, (size_t)len);
    if (!rc && fsync(fd) != 0)
        rc = -errno;
    if (fd >= 0 && close(fd) != 0 && !rc)
        rc = -errno;
    if (!rc && link(tmp, path) != 0) /* never replaces an existing key */
        rc = -errno;
    if (fd >= 0)
        unlink(tmp);
    BIO_free(bio); /* the PEM text lived in the BIO */
    if (!rc) {
        char *dir = xstrdup(path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *(slash == dir ? slash + 1 : slash) = '\0';
        int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd); /* the new name survives a power loss */
            close(dfd);
        }
        free(dir);
    } else {
        set_why(why, whylen, "%s: %s", path, strerror(-rc));
    }
    free(tmp);
    return rc;
}

int key_load_or_create(const char *path, keypair_t **out, bool *created, char *why, size_t whylen)
{
    *created = false;
    int rc = key_load(path, out, why, whylen);
    if (rc != -ENOENT)
        return rc;
    keypair_t *k;
    if ((rc = key_generate(&k)) != 0) {
        set_why(why, whylen, "%s: %s", path, "cannot generate a key");
        return rc;
    }
    rc = key_save(k, path, why, whylen);
    key_free(k);
    if (rc == -EEXIST) /* made meanwhile by another start: use that one */
        return key_load(path, out, why, whylen);
    if (rc)
        return rc;
    *created = true;
    return key_load(path, out, why, whylen); /* what is on disk is what we use */
}

void key_free(keypair_t *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

void key_public(const keypair_t *k, key_pub_t *out) { *out = k->pub; }

void key_sign(const keypair_t *k, const void *msg, size_t len, uint8_t sig[KEY_SIG_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t siglen = KEY_SIG_LEN;
    if (!ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1 ||
        EVP_DigestSign(ctx, sig, &siglen, msg, len) != 1 || siglen != KEY_SIG_LEN) {
        char eb[256];
        log_error("key: signing: %s", ossl_err(eb, sizeof(eb)));
        abort(); /* a valid key always signs: this is memory exhaustion or a broken library */
    }
    EVP_MD_CTX_free(ctx);
}

bool key_verify(const key_pub_t *pub, const void *msg, size_t len, const uint8_t sig[KEY_SIG_LEN])
{
    EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub->b, KEY_PUB_LEN);
    EVP_MD_CTX *ctx = pkey ? EVP_MD_CTX_new() : NULL;
    bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
              EVP_DigestVerify(ctx, sig, KEY_SIG_LEN, msg, len) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return ok;
}

void key_pub_to_hex(const key_pub_t *pub, char *out) { hash_hex_encode(pub->b, KEY_PUB_LEN, out); }

int key_pub_from_hex(const char *hex, size_t len, key_pub_t *out)
{
    return hash_hex_decode(hex, len, out->b, KEY_PUB_LEN);
}

bool key_pub_equal(const key_pub_t *a, const key_pub_t *b) { return memcmp(a->b, b->b, KEY_PUB_LEN) == 0; }

void key_sig_to_hex(const uint8_t sig[KEY_SIG_LEN], char *out) { hash_hex_encode(sig, KEY_SIG_LEN, out); }

int key_sig_from_hex(const char *hex, size_t len, uint8_t sig[KEY_SIG_LEN])
{
    return hash_hex_decode(hex, len, sig, KEY_SIG_LEN);
}
