/*
 * test_bencode.c: unit tests for core/bencode.c.
 *
 * The encoder's bytes are pinned as literals (BEP 3's own examples among them). The decoder is
 * shown every rule of the grammar broken once, each by a document that is valid but for that one
 * thing, and must say why; limits are checked on both sides of the boundary. A seeded random
 * generator then builds nested documents, encodes them, and checks that decoding and walking the
 * nodes gives back the same values and that re-encoding the nodes reproduces the bytes.
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

#include "core/bencode.h"
#include "core/xalloc.h"

static char why[256];

static void assert_buf(const bencode_buf_t *b, const char *want, size_t n)
{
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
}
#define ASSERT_BUF(b, lit) assert_buf((b), (lit), sizeof(lit) - 1)

static int decode(bencode_doc_t *d, const char *s, size_t n, const bencode_limits_t *lim)
{
    return bencode_decode(d, s, n, lim, why, sizeof(why));
}
#define DECODE(d, lit) decode((d), (lit), sizeof(lit) - 1, NULL)

/* Re-encodes the subtree at node (the inverse of decoding). Returns the node after it. */
static const bencode_node_t *reencode(const bencode_doc_t *d, const bencode_node_t *n, bencode_buf_t *b)
{
    switch (n->type) {
    case BENCODE_INT: bencode_put_int(b, n->i); return n + 1;
    case BENCODE_STR: bencode_put_str(b, n->s, n->len); return n + 1;
    case BENCODE_LIST:
    case BENCODE_DICT: {
        if (n->type == BENCODE_LIST)
            bencode_put_list(b);
        else
            bencode_put_dict(b);
        size_t kids = n->type == BENCODE_DICT ? (size_t)n->count * 2 : n->count;
        const bencode_node_t *c = n + 1;
        for (size_t i = 0; i < kids; i++) {
            const bencode_node_t *next = reencode(d, c, b);
            assert_ptr_equal(next, &d->nodes[c->end]); /* end indexes agree with the walk */
            c = next;
        }
        bencode_put_end(b);
        return c;
    }
    }
    fail();
    return NULL;
}

/* ---- encoder ---------------------------------------------------------------------------------- */

static void bencode_encodes_bep3_examples(void **state)
{
    (void)state;
    bencode_buf_t b;
    bencode_buf_init(&b);
    bencode_put_cstr(&b, "spam");
    ASSERT_BUF(&b, "4:spam");
    bencode_buf_reset(&b);
    bencode_put_int(&b, 3);
    ASSERT_BUF(&b, "i3e");
    bencode_buf_reset(&b);
    bencode_put_int(&b, -3);
    ASSERT_BUF(&b, "i-3e");
    bencode_buf_reset(&b);
    bencode_put_int(&b, 0);
    ASSERT_BUF(&b, "i0e");
    bencode_buf_reset(&b);
    bencode_put_list(&b);
    bencode_put_cstr(&b, "spam");
    bencode_put_cstr(&b, "eggs");
    bencode_put_end(&b);
    ASSERT_BUF(&b, "l4:spam4:eggse");
    bencode_buf_reset(&b);
    bencode_put_dict(&b);
    bencode_put_cstr(&b, "cow");
    bencode_put_cstr(&b, "moo");
    bencode_put_cstr(&b, "spam");
    bencode_put_cstr(&b, "eggs");
    bencode_put_end(&b);
    ASSERT_BUF(&b, "d3:cow3:moo4:spam4:eggse");
    bencode_buf_reset(&b);
    bencode_put_str(&b, "", 0);
    bencode_put_list(&b);
    bencode_put_end(&b);
    bencode_put_dict(&b);
    bencode_put_end(&b);
    ASSERT_BUF(&b, "0:lede");
    bencode_buf_release(&b);
}

static void bencode_encodes_int64_extremes_and_binary(void **state)
{
    (void)state;
    bencode_buf_t b;
    bencode_buf_init(&b);
    bencode_put_int(&b, INT64_MAX);
    bencode_put_int(&b, INT64_MIN);
    bencode_put_str(&b, "a\0b", 3);
    ASSERT_BUF(&b, "i9223372036854775807ei-9223372036854775808e3:a\0b");
    size_t len;
    char *p = bencode_buf_detach(&b, &len);
    assert_non_null(p);
    assert_int_equal(len, 48);
    assert_int_equal(b.len, 0);
    assert_null(b.data);
    free(p);
    assert_null(bencode_buf_detach(&b, &len));
    assert_int_equal(len, 0);
}

static void bencode_buf_grows_and_reset_keeps_memory(void **state)
{
    (void)state;
    bencode_buf_t b;
    bencode_buf_init(&b);
    char big[5000];
    memset(big, 'x', sizeof(big));
    bencode_put_str(&b, big, sizeof(big));
    assert_int_equal(b.len, 5 + sizeof(big));
    assert_memory_equal(b.data, "5000:", 5);
    assert_memory_equal(b.data + 5, big, sizeof(big));
    char *data = b.data;
    size_t cap = b.cap;
    bencode_buf_reset(&b);
    bencode_put_int(&b, 7);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    ASSERT_BUF(&b, "i7e");
    char *sp = bencode_put_space(&b, 3);
    memcpy(sp, "abc", 3);
    ASSERT_BUF(&b, "i7eabc");
    bencode_buf_release(&b);
    assert_null(b.data);
}

/* ---- decoder: accepted documents -------------------------------------------------------------- */

static void bencode_decode_walks_nested_document(void **state)
{
    (void)state;
    static const char doc[] = "d3:agei-42e4:listli1e0:lee3:sub3:x\0y4:zeroi0ee";
    bencode_doc_t d;
    bencode_doc_init(&d);
    assert_int_equal(DECODE(&d, doc), 0);
    const bencode_node_t *root = bencode_root(&d);
    assert_non_null(root);
    assert_int_equal(root->type, BENCODE_DICT);
    assert_int_equal(root->count, 4);
    assert_int_equal(root->end, d.n);

    const bencode_node_t *age = bencode_dict_cget(&d, root, "age");
    assert_non_null(age);
    assert_int_equal(age->type, BENCODE_INT);
    assert_int_equal(age->i, -42);

    const bencode_node_t *list = bencode_dict_cget(&d, root, "list");
    assert_non_null(list);
    assert_int_equal(list->type, BENCODE_LIST);
    assert_int_equal(list->count, 3);
    assert_int_equal(bencode_child(&d, list, 0)->i, 1);
    assert_int_equal(bencode_child(&d, list, 1)->len, 0);
    assert_int_equal(bencode_child(&d, list, 2)->type, BENCODE_LIST);
    assert_int_equal(bencode_child(&d, list, 2)->count, 0);
    assert_null(bencode_child(&d, list, 3));

    const bencode_node_t *sub = bencode_dict_cget(&d, root, "sub");
    assert_non_null(sub);
    assert_int_equal(sub->type, BENCODE_STR);
    assert_int_equal(sub->len, 3);
    assert_memory_equal(sub->s, "x\0y", 3);
    assert_ptr_equal(sub->s, memchr(doc, 'x', sizeof(doc))); /* borrowed from the input, not copied */

    assert_int_equal(bencode_dict_cget(&d, root, "zero")->i, 0);
    assert_null(bencode_dict_cget(&d, root, "missing"));
    assert_null(bencode_dict_cget(&d, list, "age")); /* not a dictionary */
    assert_true(bencode_str_eq(bencode_child(&d, root, 0), "age"));
    assert_false(bencode_str_eq(bencode_child(&d, root, 1), "age"));
    assert_false(bencode_str_eq(age, "age"));
    bencode_doc_release(&d);
}

static void bencode_decode_accepts_edge_values(void **state)
{
    (void)state;
    bencode_doc_t d;
    bencode_doc_init(&d);
    assert_int_equal(DECODE(&d, "i0e"), 0);
    assert_int_equal(d.nodes[0].i, 0);
    assert_int_equal(DECODE(&d, "i9223372036854775807e"), 0);
    assert_int_equal(d.nodes[0].i, INT64_MAX);
    assert_int_equal(DECODE(&d, "i-9223372036854775808e"), 0);
    assert_int_equal(d.nodes[0].i, INT64_MIN);
    assert_int_equal(DECODE(&d, "0:"), 0);
    assert_int_equal(d.nodes[0].len, 0);
    assert_int_equal(DECODE(&d, "de"), 0);
    assert_int_equal(d.nodes[0].count, 0);
    /* Keys compare as bytes: "a" < "ab" < "b", and 0x80 sorts after ASCII. */
    assert_int_equal(DECODE(&d, "d1:ai1e2:abi2e1:bi3e1:\x80i4ee"), 0);
    assert_int_equal(d.nodes[0].count, 4);
    /* Decoding again replaces the previous document. */
    assert_int_equal(DECODE(&d, "le"), 0);
    assert_int_equal(d.n, 1);
    bencode_doc_release(&d);
}

/* ---- decoder: every rule broken once ---------------------------------------------------------- */

static void expect_reject(const char *doc, size_t n, int err, const char *why_part)
{
    bencode_doc_t d;
    bencode_doc_init(&d);
    int rc = decode(&d, doc, n, NULL);
    if (rc != err || !strstr(why, why_part)) {
        print_error("document '%.*s': rc %d (want %d), why '%s' (want '%s')\n", (int)n, doc, rc, err, why,
                    why_part);
        fail();
    }
    assert_int_equal(d.n, 0);
    assert_null(bencode_root(&d));
    bencode_doc_release(&d);
}
#define REJECT(lit, err, part) expect_reject((lit), sizeof(lit) - 1, (err), (part))

static void bencode_decode_rejects_bad_integers(void **state)
{
    (void)state;
    REJECT("i03e", -EINVAL, "leading zero");
    REJECT("i-0e", -EINVAL, "-0");
    REJECT("i00e", -EINVAL, "leading zero");
    REJECT("ie", -EINVAL, "digit expected");
    REJECT("i-e", -EINVAL, "digit expected");
    REJECT("i+1e", -EINVAL, "digit expected");
    REJECT("i1", -EINVAL, "input ends");
    REJECT("i1x", -EINVAL, "'e' expected");
    REJECT("i 1e", -EINVAL, "digit expected");
    REJECT("i9223372036854775808e", -EINVAL, "out of range");
    REJECT("i-9223372036854775809e", -EINVAL, "out of range");
    REJECT("i99999999999999999999999e", -EINVAL, "out of range");
}

static void bencode_decode_rejects_bad_strings(void **state)
{
    (void)state;
    REJECT("3:ab", -EINVAL, "runs past the end");
    REJECT("03:abc", -EINVAL, "leading zero");
    REJECT("3abc", -EINVAL, "':' expected");
    REJECT("3", -EINVAL, "input ends");
    REJECT("18446744073709551616:x", -EINVAL, "out of range");
    REJECT("18446744073709551615:x", -EMSGSIZE, "limit");
    REJECT("-1:x", -EINVAL, "unexpected byte");
}

static void bencode_decode_rejects_bad_structure(void **state)
{
    (void)state;
    REJECT("", -EINVAL, "empty input");
    REJECT("x", -EINVAL, "unexpected byte 0x78 at byte 0");
    REJECT("i1ei2e", -EINVAL, "3 bytes after the value");
    REJECT("l", -EINVAL, "inside a list");
    REJECT("li1e", -EINVAL, "inside a list");
    REJECT("d", -EINVAL, "inside a dictionary");
    REJECT("d1:a", -EINVAL, "value expected");
    REJECT("d1:ai1e", -EINVAL, "inside a dictionary");
    REJECT("di1e1:ae", -EINVAL, "key is not a byte string");
    REJECT("dle1:ae", -EINVAL, "key is not a byte string");
    REJECT("d1:bi1e1:ai2ee", -EINVAL, "not sorted");
    REJECT("d2:abi1e1:ai2ee", -EINVAL, "not sorted");
    REJECT("d1:ai1e1:ai2ee", -EINVAL, "duplicate dictionary key");
    REJECT("e", -EINVAL, "unexpected byte");
    REJECT("le1", -EINVAL, "1 bytes after");
    REJECT("\0", -EINVAL, "unexpected byte 0x00");
}

static void bencode_decode_enforces_limits(void **state)
{
    (void)state;
    bencode_doc_t d;
    bencode_doc_init(&d);
    /* Depth: 3 nested lists pass a limit of 3, 4 do not. */
    bencode_limits_t lim = {.max_depth = 3};
    assert_int_equal(decode(&d, "llleee", 6, &lim), 0);
    assert_int_equal(decode(&d, "lllleeee", 8, &lim), -EMSGSIZE);
    assert_non_null(strstr(why, "nested deeper than 3"));
    /* The default depth holds against a deep document (no stack overflow). */
    size_t deep = 100000;
    char *buf = xmalloc(2 * deep);
    memset(buf, 'l', deep);
    memset(buf + deep, 'e', deep);
    assert_int_equal(decode(&d, buf, 2 * deep, NULL), -EMSGSIZE);
    memset(buf, 'l', BENCODE_MAX_DEPTH);
    memset(buf + BENCODE_MAX_DEPTH, 'e', BENCODE_MAX_DEPTH);
    assert_int_equal(decode(&d, buf, 2 * BENCODE_MAX_DEPTH, NULL), 0);
    assert_int_equal(d.n, BENCODE_MAX_DEPTH);
    free(buf);

    /* Nodes: a list of 3 items is 4 nodes. */
    lim = (bencode_limits_t){.max_nodes = 4};
    assert_int_equal(decode(&d, "li1ei2ei3ee", 11, &lim), 0);
    assert_int_equal(decode(&d, "li1ei2ei3ei4ee", 14, &lim), -EMSGSIZE);
    assert_non_null(strstr(why, "more than 4 values"));

    /* Strings: checked against the limit before the input length, so a huge claimed length is a
     * size error, not an attempt to read it. */
    lim = (bencode_limits_t){.max_string = 5};
    assert_int_equal(decode(&d, "5:abcde", 7, &lim), 0);
    assert_int_equal(decode(&d, "6:abcdef", 8, &lim), -EMSGSIZE);
    assert_int_equal(decode(&d, "999999999:", 10, &lim), -EMSGSIZE);
    bencode_doc_release(&d);
}

/* ---- random round trips ----------------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Writes a random value; dictionary keys are generated in increasing order. */
static void gen(bencode_buf_t *b, int depth)
{
    unsigned kind = depth >= 4 ? (unsigned)(rnd() % 2) : (unsigned)(rnd() % 4);
    switch (kind) {
    case 0: {
        int64_t v;
        switch (rnd() % 4) {
        case 0: v = 0; break;
        case 1: v = INT64_MIN; break;
        case 2: v = INT64_MAX; break;
        default: v = (int64_t)rnd(); break;
        }
        bencode_put_int(b, v);
        break;
    }
    case 1: {
        char s[40];
        size_t n = rnd() % sizeof(s);
        for (size_t i = 0; i < n; i++)
            s[i] = (char)rnd();
        bencode_put_str(b, s, n);
        break;
    }
    case 2: {
        bencode_put_list(b);
        for (unsigned n = (unsigned)(rnd() % 5); n; n--)
            gen(b, depth + 1);
        bencode_put_end(b);
        break;
    }
    default: {
        bencode_put_dict(b);
        unsigned n = (unsigned)(rnd() % 5);
        for (unsigned i = 0; i < n; i++) {
            char key[8];
            snprintf(key, sizeof(key), "k%02u%c", i, (char)('a' + rnd() % 26));
            bencode_put_cstr(b, key);
            gen(b, depth + 1);
        }
        bencode_put_end(b);
        break;
    }
    }
}

static void bencode_random_documents_round_trip(void **state)
{
    (void)state;
    bencode_buf_t in, out;
    bencode_doc_t d;
    bencode_buf_init(&in);
    bencode_buf_init(&out);
    bencode_doc_init(&d);
    for (int iter = 0; iter < 3000; iter++) {
        bencode_buf_reset(&in);
        bencode_buf_reset(&out);
        gen(&in, 0);
        if (decode(&d, in.data, in.len, NULL) != 0) {
            print_error("iteration %d: %s\n", iter, why);
            fail();
        }
        const bencode_node_t *after = reencode(&d, bencode_root(&d), &out);
        assert_ptr_equal(after, d.nodes + d.n);
        assert_int_equal(out.len, in.len);
        assert_memory_equal(out.data, in.data, in.len);
        /* Any truncation of a valid document is invalid, and never crashes. */
        size_t cut = (size_t)(rnd() % in.len);
        assert_int_equal(decode(&d, in.data, cut, NULL), -EINVAL);
    }
    bencode_doc_release(&d);
    bencode_buf_release(&in);
    bencode_buf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bencode_encodes_bep3_examples),
        cmocka_unit_test(bencode_encodes_int64_extremes_and_binary),
        cmocka_unit_test(bencode_buf_grows_and_reset_keeps_memory),
        cmocka_unit_test(bencode_decode_walks_nested_document),
        cmocka_unit_test(bencode_decode_accepts_edge_values),
        cmocka_unit_test(bencode_decode_rejects_bad_integers),
        cmocka_unit_test(bencode_decode_rejects_bad_strings),
        cmocka_unit_test(bencode_decode_rejects_bad_structure),
        cmocka_unit_test(bencode_decode_enforces_limits),
        cmocka_unit_test(bencode_random_documents_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
