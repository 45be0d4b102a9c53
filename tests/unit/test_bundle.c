/*
 * test_bundle.c: small results inline in /v1/done (fs/bundle.c): the base64url codec, and that a
 * bundle is accepted only when its bytes match the block hashes of the manifest that came with it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/hash.h"
#include "core/manifest.h"
#include "core/xalloc.h"
#include "pool/bundle.h"

static void b64_round_trips_every_length(void **state)
{
    unsigned char in[64], back[64];
    char enc[128];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (unsigned char)(i * 37 + 251);
    for (size_t n = 0; n <= sizeof(in); n++) {
        bundle_b64_encode(in, n, enc);
        assert_int_equal(strlen(enc), bundle_b64_len(n));
        assert_null(strpbrk(enc, "+/=%&"));
        size_t got = 999;
        assert_int_equal(bundle_b64_decode(enc, strlen(enc), back, sizeof(back), &got), 0);
        assert_int_equal(got, n);
        assert_memory_equal(back, in, n);
    }
    bundle_b64_encode("hello\n", 6, enc);
    assert_string_equal(enc, "aGVsbG8K");
}

static void b64_refuses_bad_input(void **state)
{
    char out[16];
    size_t len;
    assert_int_equal(bundle_b64_decode("aGVs+G8K", 8, out, sizeof(out), &len), -EINVAL);
    assert_int_equal(bundle_b64_decode("aGVsbG8K=", 9, out, sizeof(out), &len), -EINVAL);
    assert_int_equal(bundle_b64_decode("aGVsb", 5, out, sizeof(out), &len), -EINVAL); /* 5 chars: no length */
    assert_int_equal(bundle_b64_decode("aB", 2, out, sizeof(out), &len), -EINVAL);    /* stray low bits */
    assert_int_equal(bundle_b64_decode("aGVsbG8K", 8, out, 5, &len), -EMSGSIZE);
}

/* A result manifest of files named a, b, c... with the given contents (NULL: the file is empty). */
static void make_manifest(manifest_t *m, const char *const *contents, size_t n)
{
    manifest_init(m);
    m->name = xstrdup("job.3");
    m->created_ms = 1700000000000ull;
    m->files = xcalloc(n, sizeof(*m->files));
    m->n_files = n;
    for (size_t i = 0; i < n; i++) {
        manifest_file_t *f = &m->files[i];
        char path[2] = {(char)('a' + i), 0};
        f->path = xstrdup(path);
        f->mode = 0644;
        f->size = contents[i] ? strlen(contents[i]) : 0;
        if (f->size) {
            f->blocks = xcalloc(1, sizeof(hash_t));
            f->n_blocks = 1;
            hash_sha256(contents[i], (size_t)f->size, &f->blocks[0]);
        }
    }
}

/* The query of a bundle with manifest m and the given data bytes. */
static char *query_of(const manifest_t *m, const char *data)
{
    char *man, *q;
    size_t manlen;
    assert_int_equal(manifest_encode(m, &man, &manlen), 0);
    assert_int_equal(bundle_query(man, manlen, data, strlen(data), &q), 0);
    free(man);
    char *full = xasprintf("peer=http://127.0.0.1:1&exit=0%s", q);
    free(q);
    return full;
}

static int parse(const char *q, char **data, size_t *len, char *why)
{
    manifest_t m;
    manifest_init(&m);
    int rc = bundle_parse(q, strlen(q), &m, data, len, why, 256);
    manifest_release(&m);
    return rc;
}

static void bundle_round_trips(void **state)
{
    const char *contents[] = {"0\n", NULL, "hello\n"};
    manifest_t m, back;
    make_manifest(&m, contents, 3);
    assert_true(bundle_fits(&m));
    char *q = query_of(&m, "0\nhello\n"), *data = NULL, why[256] = "";
    size_t len = 0;
    manifest_init(&back);
    assert_int_equal(bundle_parse(q, strlen(q), &back, &data, &len, why, sizeof(why)), 0);
    assert_int_equal(len, 8);
    assert_memory_equal(data, "0\nhello\n", 8);
    assert_int_equal(back.n_files, 3);
    assert_string_equal(back.files[2].path, "c");
    free(data);
    free(q);
    manifest_release(&back);
    manifest_release(&m);
}

static void bundle_refuses_bytes_that_do_not_match(void **state)
{
    const char *contents[] = {"0\n", "hello\n"};
    manifest_t m;
    make_manifest(&m, contents, 2);
    char *data = NULL, why[256] = "";
    size_t len = 0;
    char *q = query_of(&m, "0\nHELLO\n"); /* same length, other bytes */
    assert_int_equal(parse(q, &data, &len, why), -EBADMSG);
    assert_non_null(strstr(why, "b does not match its block hash"));
    assert_null(data);
    free(q);
    q = query_of(&m, "0\nhello"); /* one byte short */
    assert_int_equal(parse(q, &data, &len, why), -EBADMSG);
    free(q);
    q = query_of(&m, "0\nhello\nX"); /* one byte too many */
    assert_int_equal(parse(q, &data, &len, why), -EBADMSG);
    free(q);
    manifest_release(&m);
}

static void bundle_refuses_bad_queries(void **state)
{
    char *data = NULL, why[256] = "";
    size_t len = 0;
    assert_int_equal(parse("peer=http://127.0.0.1:1&exit=0", &data, &len, why), -ENOENT);
    assert_int_equal(parse("man=e30&data=", &data, &len, why), -EINVAL); /* "{}" is no manifest */
    assert_int_equal(parse("man=***&data=", &data, &len, why), -EINVAL);
    const char *contents[] = {"x"};
    manifest_t m;
    make_manifest(&m, contents, 1);
    char *q = query_of(&m, "x");
    *strstr(q, "&data=") = '\0';
    assert_int_equal(parse(q, &data, &len, why), -ENOENT);
    assert_non_null(strstr(why, "man without data"));
    free(q);
    /* a manifest whose file spans two blocks never travels inline, even if it claims to */
    m.files[0].size = (uint64_t)m.block_size + 1;
    m.files[0].blocks = xreallocarray(m.files[0].blocks, 2, sizeof(hash_t));
    m.files[0].blocks[1] = m.files[0].blocks[0];
    m.files[0].n_blocks = 2;
    assert_false(bundle_fits(&m));
    char *man;
    size_t manlen;
    assert_int_equal(manifest_encode(&m, &man, &manlen), 0);
    assert_int_equal(bundle_query(man, manlen, "x", 1, &q), 0);
    assert_int_equal(parse(q, &data, &len, why), -EMSGSIZE);
    free(q);
    free(man);
    manifest_release(&m);
    /* caps on the sender's side */
    char big[BUNDLE_MAX_DATA + 1];
    memset(big, 'a', sizeof(big));
    assert_int_equal(bundle_query("{}", 2, big, sizeof(big), &q), -EMSGSIZE);
    assert_int_equal(bundle_query(big, BUNDLE_MAX_MANIFEST + 1, "", 0, &q), -EMSGSIZE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(b64_round_trips_every_length),
        cmocka_unit_test(b64_refuses_bad_input),
        cmocka_unit_test(bundle_round_trips),
        cmocka_unit_test(bundle_refuses_bytes_that_do_not_match),
        cmocka_unit_test(bundle_refuses_bad_queries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
