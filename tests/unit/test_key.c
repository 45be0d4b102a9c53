/*
 * test_key.c: Ed25519 key pairs (core/key.c): RFC 8032's first test vector through a key file
 * written by OpenSSL itself, sign/verify and tampering, the key file's checks, and hex forms.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/key.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_key.XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void unhex(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(sscanf(hex + 2 * i, "%2hhx", &out[i]), 1);
}

/* RFC 8032, 7.1, TEST 1: the empty message. */
static void key_rfc8032_vector(void **state)
{
    (void)state;
    uint8_t secret[32], want_sig[64];
    unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", secret, 32);
    unhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
          want_sig, 64);
    EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, secret, 32);
    assert_non_null(pk);
    char path[128];
    snprintf(path, sizeof(path), "%s/rfc.pem", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    EVP_PKEY_free(pk);
    assert_int_equal(chmod(path, 0600), 0);

    keypair_t *k = NULL;
    char why[256];
    assert_int_equal(key_load(path, &k, why, sizeof(why)), 0);
    key_pub_t pub;
    key_public(k, &pub);
    char hex[KEY_PUB_HEX_LEN + 1];
    key_pub_to_hex(&pub, hex);
    assert_string_equal(hex, "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    uint8_t sig[KEY_SIG_LEN];
    key_sign(k, "", 0, sig);
    assert_memory_equal(sig, want_sig, 64);
    assert_true(key_verify(&pub, "", 0, sig));
    key_free(k);
}

static void key_sign_verify_and_tamper(void **state)
{
    (void)state;
    keypair_t *a, *b;
    assert_int_equal(key_generate(&a), 0);
    assert_int_equal(key_generate(&b), 0);
    key_pub_t pa, pb;
    key_public(a, &pa);
    key_public(b, &pb);
    assert_false(key_pub_equal(&pa, &pb));
    const char msg[] = "GET /v1/lease/abc";
    uint8_t sig[KEY_SIG_LEN];
    key_sign(a, msg, sizeof(msg) - 1, sig);
    assert_true(key_verify(&pa, msg, sizeof(msg) - 1, sig));
    assert_false(key_verify(&pb, msg, sizeof(msg) - 1, sig));      /* another key */
    assert_false(key_verify(&pa, msg, sizeof(msg) - 2, sig));      /* another message */
    sig[10] ^= 1;
    assert_false(key_verify(&pa, msg, sizeof(msg) - 1, sig));      /* a flipped bit */
    key_pub_t bad;
    memset(&bad, 0xff, sizeof(bad));                               /* not a curve point */
    assert_false(key_verify(&bad, msg, sizeof(msg) - 1, sig));
    key_free(a);
    key_free(b);
}

static void key_file_round_trip_and_checks(void **state)
{
    (void)state;
    char path[128], why[256];
    snprintf(path, sizeof(path), "%s/key", dir);
    keypair_t *k = NULL, *k2 = NULL;
    assert_int_equal(key_load(path, &k, why, sizeof(why)), -ENOENT);
    bool created = false;
    assert_int_equal(key_load_or_create(path, &k, &created, why, sizeof(why)), 0);
    assert_true(created);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(key_load_or_create(path, &k2, &created, why, sizeof(why)), 0);
    assert_false(created); /* the same key comes back */
    key_pub_t p1, p2;
    key_public(k, &p1);
    key_public(k2, &p2);
    assert_true(key_pub_equal(&p1, &p2));
    assert_int_equal(key_save(k2, path, why, sizeof(why)), -EEXIST); /* never replaced */
    key_free(k2);
    /* only its owner may read it */
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(key_load(path, &k2, why, sizeof(why)), -EPERM);
    assert_non_null(strstr(why, "chmod 600"));
    assert_int_equal(chmod(path, 0600), 0);
    /* not a key */
    char junk[128];
    snprintf(junk, sizeof(junk), "%s/junk", dir);
    int fd = open(junk, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", 58), 58);
    close(fd);
    assert_int_equal(key_load(junk, &k2, why, sizeof(why)), -EINVAL);
    assert_int_equal(key_load(dir, &k2, why, sizeof(why)), -EPERM); /* a directory */
    /* an RSA key is not an identity */
    EVP_PKEY *rsa = EVP_RSA_gen(1024);
    assert_non_null(rsa);
    FILE *f = fopen(junk, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, rsa, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    EVP_PKEY_free(rsa);
    assert_int_equal(key_load(junk, &k2, why, sizeof(why)), -EINVAL);
    /* an encrypted key is refused, never a password asked for */
    keypair_t *g;
    assert_int_equal(key_generate(&g), 0);
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(ed);
    f = fopen(junk, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, ed, EVP_aes_256_cbc(), (unsigned char *)"secret", 6, NULL, NULL), 1);
    fclose(f);
    EVP_PKEY_free(ed);
    key_free(g);
    assert_int_equal(key_load(junk, &k2, why, sizeof(why)), -EINVAL);
    /* a key file owned by another user is refused */
    assert_int_equal(chown(path, 65534, 65534), 0);
    assert_int_equal(key_load(path, &k2, why, sizeof(why)), -EPERM);
    assert_non_null(strstr(why, "another user"));
    assert_int_equal(chown(path, 0, 0), 0);
    key_free(k);
}

static void key_hex_forms(void **state)
{
    (void)state;
    keypair_t *k;
    assert_int_equal(key_generate(&k), 0);
    key_pub_t p, q;
    key_public(k, &p);
    char hex[KEY_PUB_HEX_LEN + 1];
    key_pub_to_hex(&p, hex);
    assert_int_equal(strlen(hex), 64);
    assert_int_equal(key_pub_from_hex(hex, 64, &q), 0);
    assert_true(key_pub_equal(&p, &q));
    assert_int_equal(key_pub_from_hex(hex, 63, &q), -EINVAL);
    hex[5] = 'g';
    assert_int_equal(key_pub_from_hex(hex, 64, &q), -EINVAL);
    assert_int_equal(key_pub_from_hex(NULL, 0, &q), -EINVAL);
    uint8_t sig[KEY_SIG_LEN], sig2[KEY_SIG_LEN];
    key_sign(k, "x", 1, sig);
    char shex[KEY_SIG_HEX_LEN + 1];
    key_sig_to_hex(sig, shex);
    assert_int_equal(key_sig_from_hex(shex, KEY_SIG_HEX_LEN, sig2), 0);
    assert_memory_equal(sig, sig2, KEY_SIG_LEN);
    assert_int_equal(key_sig_from_hex(shex, KEY_SIG_HEX_LEN - 2, sig2), -EINVAL);
    key_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(key_rfc8032_vector, setup, teardown),
        cmocka_unit_test(key_sign_verify_and_tamper),
        cmocka_unit_test_setup_teardown(key_file_round_trip_and_checks, setup, teardown),
        cmocka_unit_test(key_hex_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
