/*
 * test_auth.c: signed requests (pool/auth.c): the signed text, the headers' round trip, what a
 * signature does not cover, malformed headers, and the replay guard with plain numbers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pool/auth.h"

static const uint8_t nonce1[AUTH_NONCE_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

/* The value of a "Name: value" header line. */
static const char *val(const char *line) { return strchr(line, ':') + 2; }

static void auth_message_is_exact(void **state)
{
    (void)state;
    key_pub_t to;
    memset(to.b, 0xab, sizeof(to.b));
    char m[AUTH_MAX_MESSAGE];
    int n = auth_message(m, sizeof(m), "GET", "/v1/lease/ff?peer=http://x:1&n=2", &to, 1700000000123, nonce1);
    const char *want = "preon-request-1\nGET\n/v1/lease/ff?peer=http://x:1&n=2\n"
                       "abababababababababababababababababababababababababababababababab\n1700000000123\n"
                       "0102030405060708090a0b0c0d0e0f10\n";
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(m, want);
    /* a newline or control byte in a field could forge another field: refused */
    assert_int_equal(auth_message(m, sizeof(m), "GET", "/v1/x\nGET", &to, 1, nonce1), -EINVAL);
    assert_int_equal(auth_message(m, sizeof(m), "G\tT", "/v1/x", &to, 1, nonce1), -EINVAL);
    assert_int_equal(auth_message(m, sizeof(m), "GET", "", &to, 1, nonce1), -EINVAL);
    assert_int_equal(auth_message(m, 10, "GET", "/v1/x", &to, 1, nonce1), -EINVAL);
}

static void auth_sign_parse_verify(void **state)
{
    (void)state;
    keypair_t *a, *b;
    assert_int_equal(key_generate(&a), 0);
    assert_int_equal(key_generate(&b), 0);
    key_pub_t pa, pb;
    key_public(a, &pa);
    key_public(b, &pb);
    auth_headers_t h;
    assert_int_equal(auth_sign(a, "GET", "/v1/renew/aa/3?peer=http://v:2", &pb, 5000, nonce1, &h), 0);
    assert_int_equal(strncmp(h.key, "Preon-Key: ", 11), 0);
    auth_req_t r;
    assert_int_equal(auth_parse(val(h.key), val(h.time), val(h.nonce), val(h.sig), &r), 0);
    assert_true(key_pub_equal(&r.key, &pa));
    assert_int_equal(r.time_ms, 5000);
    assert_memory_equal(r.nonce, nonce1, AUTH_NONCE_LEN);
    assert_true(auth_verify(&r, "GET", "/v1/renew/aa/3?peer=http://v:2", &pb));
    /* what it does not cover is refused: another target, method, recipient, time, nonce, signer */
    assert_false(auth_verify(&r, "GET", "/v1/renew/aa/4?peer=http://v:2", &pb));
    assert_false(auth_verify(&r, "PUT", "/v1/renew/aa/3?peer=http://v:2", &pb));
    assert_false(auth_verify(&r, "GET", "/v1/renew/aa/3?peer=http://v:2", &pa));
    auth_req_t t = r;
    t.time_ms++;
    assert_false(auth_verify(&t, "GET", "/v1/renew/aa/3?peer=http://v:2", &pb));
    t = r;
    t.nonce[0] ^= 1;
    assert_false(auth_verify(&t, "GET", "/v1/renew/aa/3?peer=http://v:2", &pb));
    t = r;
    t.key = pb; /* b claims a's signature */
    assert_false(auth_verify(&t, "GET", "/v1/renew/aa/3?peer=http://v:2", &pb));
    key_free(a);
    key_free(b);
}

static void auth_parse_refuses_bad_headers(void **state)
{
    (void)state;
    char k[65], s[129];
    memset(k, 'a', 64);
    k[64] = '\0';
    memset(s, 'b', 128);
    s[128] = '\0';
    const char *n = "0102030405060708090a0b0c0d0e0f10";
    auth_req_t r;
    assert_int_equal(auth_parse(NULL, NULL, NULL, NULL, &r), -ENOENT);
    assert_int_equal(auth_parse(k, "1", n, s, &r), 0);
    assert_int_equal(auth_parse(k, "1", n, NULL, &r), -EINVAL);
    assert_int_equal(auth_parse(NULL, "1", n, s, &r), -EINVAL);
    assert_int_equal(auth_parse(k, "", n, s, &r), -EINVAL);
    assert_int_equal(auth_parse(k, "-1", n, s, &r), -EINVAL);
    assert_int_equal(auth_parse(k, " 1", n, s, &r), -EINVAL);
    assert_int_equal(auth_parse(k, "12345678901234567890", n, s, &r), -EINVAL); /* 20 digits */
    assert_int_equal(auth_parse(k, "1", "0102", s, &r), -EINVAL);
    assert_int_equal(auth_parse(k + 1, "1", n, s, &r), -EINVAL);
    k[3] = 'z';
    assert_int_equal(auth_parse(k, "1", n, s, &r), -EINVAL);
}

static void key_n(key_pub_t *k, int n)
{
    memset(k->b, 0, sizeof(k->b));
    k->b[0] = (uint8_t)n;
}

static void nonce_n(uint8_t *nc, uint32_t n)
{
    memset(nc, 0, AUTH_NONCE_LEN);
    memcpy(nc, &n, sizeof(n));
}

static void auth_guard_refuses_replays_and_stale(void **state)
{
    (void)state;
    auth_guard_t *g = auth_guard_new(1000, 0);
    key_pub_t a, b;
    key_n(&a, 1);
    key_n(&b, 2);
    assert_int_equal(auth_guard_admit(g, &a, 10000, nonce1, 10000), 0);
    assert_int_equal(auth_guard_admit(g, &a, 10000, nonce1, 10500), -EALREADY); /* replayed */
    assert_int_equal(auth_guard_admit(g, &b, 10000, nonce1, 10500), 0);         /* another key */
    uint8_t n2[AUTH_NONCE_LEN];
    nonce_n(n2, 2);
    assert_int_equal(auth_guard_admit(g, &a, 10000, n2, 10500), 0);             /* another nonce */
    /* the window, both ways */
    assert_int_equal(auth_guard_admit(g, &a, 8999, n2, 10000), -ETIME);
    assert_int_equal(auth_guard_admit(g, &a, 11001, n2, 10000), -ETIME);
    uint8_t n3[AUTH_NONCE_LEN];
    nonce_n(n3, 3);
    assert_int_equal(auth_guard_admit(g, &a, 11000, n3, 10000), 0);             /* at its edge */
    /* a pair is kept while its request could still be in the window, then forgotten */
    assert_int_equal(auth_guard_admit(g, &a, 11000, n3, 11999), -EALREADY);
    assert_int_equal(auth_guard_size(g), 4);
    uint8_t n4[AUTH_NONCE_LEN];
    nonce_n(n4, 4);
    assert_int_equal(auth_guard_admit(g, &a, 12100, n4, 12100), 0); /* pops the first (expired at 12000) */
    assert_int_equal(auth_guard_size(g), 4);
    uint8_t n5[AUTH_NONCE_LEN];
    nonce_n(n5, 5);
    assert_int_equal(auth_guard_admit(g, &a, 12600, n5, 12600), 0); /* the rest expired at 12500 */
    assert_int_equal(auth_guard_size(g), 2);
    assert_int_equal(auth_guard_admit(g, &a, 10000, nonce1, 12100), -ETIME); /* and its replay is stale anyway */
    auth_guard_free(g);
}

/* Nothing signed before the guard's memory began (the peer's start) is taken: a request from
 * before a restart cannot be replayed after it. */
static void auth_guard_refuses_what_predates_its_floor(void **state)
{
    (void)state;
    auth_guard_t *g = auth_guard_new(30000, 0);
    auth_guard_set_floor(g, 100000);
    key_pub_t a;
    key_n(&a, 1);
    uint8_t n[AUTH_NONCE_LEN];
    nonce_n(n, 1);
    assert_int_equal(auth_guard_admit(g, &a, 99999, n, 100010), -ETIME); /* within the window, before the start */
    assert_int_equal(auth_guard_admit(g, &a, 100000, n, 100010), 0);
    auth_guard_free(g);
}

static void auth_guard_is_bounded(void **state)
{
    (void)state;
    auth_guard_t *g = auth_guard_new(1000, 4);
    key_pub_t a;
    key_n(&a, 1);
    uint8_t n[AUTH_NONCE_LEN];
    for (uint32_t i = 0; i < 4; i++) {
        nonce_n(n, i);
        assert_int_equal(auth_guard_admit(g, &a, 100, n, 100), 0);
    }
    nonce_n(n, 99);
    assert_int_equal(auth_guard_admit(g, &a, 100, n, 100), -ENOSPC); /* full: refused, nothing forgotten */
    nonce_n(n, 0);
    assert_int_equal(auth_guard_admit(g, &a, 100, n, 1000), -EALREADY);
    nonce_n(n, 99);
    assert_int_equal(auth_guard_admit(g, &a, 2100, n, 2100), 0); /* once the others expire */
    auth_guard_free(g);
}

static void auth_guard_grows_and_remembers_all(void **state)
{
    (void)state;
    auth_guard_t *g = auth_guard_new(100000, 5000);
    key_pub_t a;
    key_n(&a, 7);
    uint8_t n[AUTH_NONCE_LEN];
    for (uint32_t i = 0; i < 5000; i++) {
        nonce_n(n, i);
        assert_int_equal(auth_guard_admit(g, &a, 1000, n, 1000 + i), 0);
    }
    for (uint32_t i = 0; i < 5000; i += 7) {
        nonce_n(n, i);
        assert_int_equal(auth_guard_admit(g, &a, 1000, n, 6000), -EALREADY);
    }
    nonce_n(n, 5000);
    assert_int_equal(auth_guard_admit(g, &a, 1000, n, 6000), -ENOSPC);
    assert_int_equal(auth_guard_size(g), 5000);
    auth_guard_free(g);
}

static void auth_trust_lists_parse(void **state)
{
    (void)state;
    char a[65], b[65];
    memset(a, 'a', 64);
    a[64] = '\0';
    memset(b, 'B', 64); /* either case */
    b[64] = '\0';
    char text[512];
    snprintf(text, sizeof(text), "# the pool's researchers\n\n%s alice@lab\n  %s\tbob\r\nnot-a-key here\n%.63s\n", a, b, a);
    key_pub_t *keys = NULL;
    size_t n = 0, bad = 0;
    char why[128] = "";
    auth_trust_parse(text, strlen(text), &keys, &n, &bad, why, sizeof(why));
    assert_int_equal(n, 2);
    assert_int_equal(bad, 2);
    assert_string_equal(why, "line 5 is not a key (64 hex digits, then a comment)");
    assert_int_equal(keys[0].b[0], 0xaa);
    assert_int_equal(keys[1].b[31], 0xbb);
    /* a file without a final newline, and an empty one */
    auth_trust_parse(a, 64, &keys, &n, &bad, why, sizeof(why));
    assert_int_equal(n, 3);
    auth_trust_parse("", 0, &keys, &n, &bad, why, sizeof(why));
    assert_int_equal(n, 3);
    free(keys);
}

/* An authority's endorsement verifies over exactly (who, until); its line form parses back. */
static void auth_endorsements(void **state)
{
    (void)state;
    keypair_t *auth, *res;
    assert_int_equal(key_generate(&auth), 0);
    assert_int_equal(key_generate(&res), 0);
    key_pub_t who, other;
    key_public(res, &who);
    key_public(auth, &other);
    auth_endorsement_t e, f;
    auth_endorse(auth, &who, 5000, &e);
    assert_true(key_pub_equal(&e.by, &other));
    assert_true(auth_endorsement_verify(&e));
    assert_true(auth_endorsement_current(&e, 4999));
    assert_false(auth_endorsement_current(&e, 5000));
    f = e;
    f.until_ms = 0; /* stretched: no longer what was signed */
    assert_false(auth_endorsement_verify(&f));
    f = e;
    f.who = other; /* moved to another key */
    assert_false(auth_endorsement_verify(&f));
    f = e;
    f.sig[7] ^= 1;
    assert_false(auth_endorsement_verify(&f));
    f = e;
    f.by = who; /* claimed by another authority */
    assert_false(auth_endorsement_verify(&f));
    auth_endorsement_t z;
    auth_endorse(auth, &who, 0, &z);
    assert_true(auth_endorsement_current(&z, UINT64_MAX));

    char line[AUTH_ENDORSE_LINE_MAX], text[1024];
    auth_endorsement_format(&e, line, sizeof(line));
    assert_int_equal(strncmp(line, "preon-endorsement-1 ", 20), 0);
    snprintf(text, sizeof(text), "# from the pool\n%s  # dr who\n\npreon-endorsement-1 %.64s\n%s", line, line + 20,
             line);
    auth_endorsement_t *es = NULL;
    size_t n = 0, bad = 0;
    char why[128] = "";
    auth_endorsement_parse(text, strlen(text), &es, &n, &bad, why, sizeof(why));
    assert_int_equal(n, 2);
    assert_int_equal(bad, 1);
    assert_string_equal(why, "line 4 is not an endorsement (as preon endorse prints it)");
    assert_memory_equal(&es[0], &e, sizeof(e));
    assert_true(auth_endorsement_verify(&es[1]));
    free(es);
    key_free(auth);
    key_free(res);
}

/* A worker's result and a submitter's acceptance are signed over every field: change one, and
 * the signature no longer verifies. */
static void auth_results_signed(void **state)
{
    (void)state;
    keypair_t *w, *o;
    assert_int_equal(key_generate(&w), 0);
    assert_int_equal(key_generate(&o), 0);
    key_pub_t wk, ok;
    key_public(w, &wk);
    key_public(o, &ok);
    char job[65], rid[65], other[65], sig[KEY_SIG_HEX_LEN + 1], whex[KEY_PUB_HEX_LEN + 1];
    memset(job, 'a', 64);
    job[64] = '\0';
    memset(rid, 'b', 64);
    rid[64] = '\0';
    memcpy(other, rid, 65);
    other[0] = 'c';
    key_pub_to_hex(&wk, whex);
    auth_result_sign(w, job, 3, rid, 0, sig);
    assert_true(auth_result_verify(&wk, job, 3, rid, 0, sig));
    assert_false(auth_result_verify(&ok, job, 3, rid, 0, sig)); /* another key */
    assert_false(auth_result_verify(&wk, job, 4, rid, 0, sig)); /* another task */
    assert_false(auth_result_verify(&wk, job, 3, other, 0, sig)); /* another result */
    assert_false(auth_result_verify(&wk, job, 3, rid, 1, sig)); /* another exit code */
    assert_false(auth_result_verify(&wk, other, 3, rid, 0, sig)); /* another job */
    assert_false(auth_result_verify(&wk, job, 3, rid, 0, "00"));
    auth_accepted_sign(o, job, 3, rid, 0, true, whex, sig);
    assert_true(auth_accepted_verify(&ok, job, 3, rid, 0, true, whex, sig));
    assert_false(auth_accepted_verify(&wk, job, 3, rid, 0, true, whex, sig));  /* not the submitter */
    assert_false(auth_accepted_verify(&ok, job, 3, rid, 0, false, whex, sig)); /* ok flipped */
    assert_false(auth_accepted_verify(&ok, job, 3, rid, 0, true, NULL, sig));  /* the worker dropped */
    assert_false(auth_accepted_verify(&ok, job, 3, other, 0, true, whex, sig));
    assert_false(auth_accepted_verify(&ok, job, 2, rid, 0, true, whex, sig));
    auth_accepted_sign(o, job, 3, rid, -1, false, NULL, sig); /* no worker known (recorded before) */
    assert_true(auth_accepted_verify(&ok, job, 3, rid, -1, false, "", sig));
    key_free(w);
    key_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(auth_message_is_exact),
        cmocka_unit_test(auth_sign_parse_verify),
        cmocka_unit_test(auth_parse_refuses_bad_headers),
        cmocka_unit_test(auth_guard_refuses_replays_and_stale),
        cmocka_unit_test(auth_guard_refuses_what_predates_its_floor),
        cmocka_unit_test(auth_guard_is_bounded),
        cmocka_unit_test(auth_trust_lists_parse),
        cmocka_unit_test(auth_guard_grows_and_remembers_all),
        cmocka_unit_test(auth_endorsements),
        cmocka_unit_test(auth_results_signed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
