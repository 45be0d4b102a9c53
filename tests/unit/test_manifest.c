/*
 * test_manifest.c: unit tests for core/manifest.c.
 *
 * The canonical bytes of a small manifest are pinned as a literal (and its id as a SHA-256 computed
 * independently), so any change to the encoding, which would change every job id, fails here
 * first. Decoder rejections are built from a known-good canonical document changed in one place,
 * so each test fails for the reason it names.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/hash.h"
#include "core/manifest.h"
#include "core/xalloc.h"

#define ABC_HEX "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define JOB_JSON                                                                                                       \
    "\"job\":{\"command\":\"/job/run\",\"disk\":1073741824,\"memory\":1073741824,\"network\":false,"                   \
    "\"outputs\":[\"*.pgm\"],\"processes\":64,\"replicas\":1,\"tasks\":4,\"timeout_ms\":3600000}"
#define SMALL_CANON                                                                                                    \
    "{\"block_size\":262144,\"created_ms\":1700000000000,\"dirs\":[\"data\"],\"files\":["                              \
    "{\"blocks\":[\"" ABC_HEX "\"],\"mode\":420,\"path\":\"data/in.txt\",\"size\":3},"                                 \
    "{\"blocks\":[],\"mode\":493,\"path\":\"run\",\"size\":0}]," JOB_JSON ",\"name\":\"mandel\",\"v\":1}"
/* sha256 of SMALL_CANON, computed with Python's hashlib. */
#define SMALL_ID "5dcb60bfe30b0eafc90708213543992b5a9aae109040753697583add882fd29a"

static char why[512];

static void add_file(manifest_t *m, const char *path, uint64_t size, uint32_t mode)
{
    m->files = xreallocarray(m->files, m->n_files + 1, sizeof(*m->files));
    manifest_file_t *f = &m->files[m->n_files++];
    f->path = xstrdup(path);
    f->size = size;
    f->mode = mode;
    f->n_blocks = (size_t)((size + MANIFEST_BLOCK_SIZE - 1) / MANIFEST_BLOCK_SIZE);
    f->blocks = f->n_blocks ? xcalloc(f->n_blocks, sizeof(hash_t)) : NULL;
    for (size_t i = 0; i < f->n_blocks; i++) {
        char seed[64];
        int n = snprintf(seed, sizeof(seed), "%s#%zu", path, i);
        hash_sha256(seed, (size_t)n, &f->blocks[i]);
    }
}

static void add_dir(manifest_t *m, const char *path)
{
    m->dirs = xreallocarray(m->dirs, m->n_dirs + 1, sizeof(char *));
    m->dirs[m->n_dirs++] = xstrdup(path);
}

/* The manifest SMALL_CANON encodes, built in an order manifest_sort has to fix. */
static void build_small(manifest_t *m)
{
    manifest_init(m);
    m->name = xstrdup("mandel");
    m->created_ms = 1700000000000ull;
    m->desc.tasks = 4;
    m->desc.outputs = xcalloc(1, sizeof(char *));
    m->desc.outputs[0] = xstrdup("*.pgm");
    m->desc.n_outputs = 1;
    add_file(m, "run", 0, 0755);
    add_file(m, "data/in.txt", 3, 0644);
    hash_sha256("abc", 3, &m->files[1].blocks[0]);
    add_dir(m, "data");
    manifest_sort(m);
}

static char *encode_ok(const manifest_t *m, size_t *len)
{
    char *out = NULL;
    assert_int_equal(manifest_encode(m, &out, len), 0);
    assert_non_null(out);
    assert_int_equal(strlen(out), *len);
    return out;
}

static int decode_str(manifest_t *m, const char *s) { return manifest_decode(m, s, strlen(s), why, sizeof(why)); }

static void expect_reject(const char *json, const char *needle)
{
    manifest_t m;
    manifest_init(&m);
    int rc = decode_str(&m, json);
    if (rc != -EINVAL || !strstr(why, needle))
        print_error("input: %.300s\nrc %d why: %s\n", json, rc, why);
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(why, needle));
    manifest_release(&m);
}

/* A copy of s with the first occurrence of from replaced by to (which must be there). */
static char *replace(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    assert_non_null(at);
    return xasprintf("%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
}

static void expect_reject_edit(const char *from, const char *to, const char *needle)
{
    char *j = replace(SMALL_CANON, from, to);
    expect_reject(j, needle);
    free(j);
}

/* A canonical document with the given dirs and files arrays (JSON text) and SMALL's other fields. */
static char *doc(const char *dirs, const char *files)
{
    return xasprintf("{\"block_size\":262144,\"created_ms\":1700000000000,\"dirs\":%s,\"files\":%s," JOB_JSON
                     ",\"name\":\"mandel\",\"v\":1}",
                     dirs, files);
}

static char *file_json(const char *path, long long size, int nblocks)
{
    char *blocks = xstrdup("");
    for (int i = 0; i < nblocks; i++) {
        char *b = xasprintf("%s%s\"" ABC_HEX "\"", blocks, i ? "," : "");
        free(blocks);
        blocks = b;
    }
    char *f = xasprintf("{\"blocks\":[%s],\"mode\":420,\"path\":\"%s\",\"size\":%lld}", blocks, path, size);
    free(blocks);
    return f;
}

static void expect_doc(const char *dirs, const char *files, int want_rc, const char *needle)
{
    char *j = doc(dirs, files);
    manifest_t m;
    manifest_init(&m);
    int rc = decode_str(&m, j);
    if (rc != want_rc || (needle && !strstr(why, needle)))
        print_error("rc %d why: %.300s\ninput: %s\n", rc, why, j);
    assert_int_equal(rc, want_rc);
    if (needle)
        assert_non_null(strstr(why, needle));
    manifest_release(&m);
    free(j);
}

/* ---- encoding ---- */

static void manifest_encode_is_canonical(void **state)
{
    (void)state;
    manifest_t m;
    build_small(&m);
    size_t len;
    char *out = encode_ok(&m, &len);
    assert_string_equal(out, SMALL_CANON);
    /* The same manifest always gives the same bytes. */
    size_t len2;
    char *again = encode_ok(&m, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(out, again, len);
    free(again);

    hash_t id, direct;
    char hex[HASH_HEX_LEN + 1];
    manifest_id(out, len, &id);
    hash_sha256(out, len, &direct);
    assert_true(hash_equal(&id, &direct));
    hash_to_hex(&id, hex);
    assert_string_equal(hex, SMALL_ID);
    free(out);
    manifest_release(&m);
}

static void manifest_round_trip(void **state)
{
    (void)state;
    manifest_t m;
    build_small(&m);
    free(m.desc.command);
    m.desc.command = xstrdup("./mandel --tile \"$PREON_TASK\" > out.pgm \\ \xc3\xa9\t#");
    m.submitter = xstrdup("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    m.endorsements = xcalloc(2, sizeof(*m.endorsements));
    m.n_endorsements = 2;
    m.endorsements[0].by = xasprintf("%064d", 1);
    m.endorsements[0].sig = xasprintf("%0128d", 2);
    m.endorsements[1].by = xasprintf("%064d", 3);
    m.endorsements[1].until_ms = 1800000000000ull;
    m.endorsements[1].sig = xasprintf("%0128d", 4);
    m.desc.os = xstrdup("linux");
    m.desc.arch = xstrdup("x86_64");
    m.desc.network = true;
    m.desc.timeout_ms = 1;
    m.desc.replicas = 16;
    m.desc.quorum = 9;
    m.desc.max_replicas = 20;
    m.desc.grace_ms = 30000;

    add_dir(&m, "data/deep");
    add_dir(&m, "empty dir");
    add_file(&m, "data/deep/big.bin", 3 * (uint64_t)MANIFEST_BLOCK_SIZE + 1, 0600);
    add_file(&m, "data/\xe2\x82\xac.txt", MANIFEST_BLOCK_SIZE, 0);
    manifest_sort(&m);
    size_t len;
    char *out = encode_ok(&m, &len);

    manifest_t d;
    manifest_init(&d);
    assert_int_equal(manifest_decode(&d, out, len, why, sizeof(why)), 0);
    assert_string_equal(why, "");
    assert_int_equal(d.version, 1);
    assert_string_equal(d.name, "mandel");
    assert_int_equal(d.created_ms, 1700000000000ull);
    assert_string_equal(d.submitter, m.submitter);
    assert_int_equal(d.n_endorsements, 2);
    assert_string_equal(d.endorsements[1].by, m.endorsements[1].by);
    assert_string_equal(d.endorsements[1].sig, m.endorsements[1].sig);
    assert_int_equal(d.endorsements[1].until_ms, 1800000000000ull);
    assert_int_equal(d.endorsements[0].until_ms, 0);
    assert_int_equal(d.block_size, MANIFEST_BLOCK_SIZE);
    assert_string_equal(d.desc.command, m.desc.command);
    assert_int_equal(d.desc.tasks, 4);
    assert_int_equal(d.desc.n_outputs, 1);
    assert_string_equal(d.desc.outputs[0], "*.pgm");
    assert_int_equal(d.desc.timeout_ms, 1);
    assert_int_equal(d.desc.memory_bytes, m.desc.memory_bytes);
    assert_int_equal(d.desc.disk_bytes, m.desc.disk_bytes);
    assert_int_equal(d.desc.processes, 64);
    assert_int_equal(d.desc.replicas, 16);
    assert_int_equal(d.desc.quorum, 9);
    assert_int_equal(d.desc.max_replicas, 20);
    assert_int_equal(d.desc.grace_ms, 30000);
    assert_non_null(strstr(out, "\"grace_ms\":30000"));
    assert_false(d.desc.adaptive);
    assert_string_equal(d.desc.os, "linux");
    assert_string_equal(d.desc.arch, "x86_64");
    assert_true(d.desc.network);
    assert_int_equal(d.n_dirs, 3);
    for (size_t i = 0; i < d.n_dirs; i++)
        assert_string_equal(d.dirs[i], m.dirs[i]);
    assert_int_equal(d.n_files, 4);
    for (size_t i = 0; i < d.n_files; i++) {
        assert_string_equal(d.files[i].path, m.files[i].path);
        assert_int_equal(d.files[i].size, m.files[i].size);
        assert_int_equal(d.files[i].mode, m.files[i].mode);
        assert_int_equal(d.files[i].n_blocks, m.files[i].n_blocks);
        for (size_t b = 0; b < d.files[i].n_blocks; b++)
            assert_true(hash_equal(&d.files[i].blocks[b], &m.files[i].blocks[b]));
    }
    size_t len2;
    char *again = encode_ok(&d, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(out, again, len);
    free(again);
    free(out);
    manifest_release(&d);
    manifest_release(&m);
}

static void manifest_encode_big_file_is_fast(void **state)
{
    (void)state;
    manifest_t m;
    manifest_init(&m);
    m.name = xstrdup("big");
    add_file(&m, "data.bin", 1ull << 30, 0644);
    assert_int_equal(m.files[0].n_blocks, 4096);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t len;
    char *out = encode_ok(&m, &len);
    manifest_t d;
    manifest_init(&d);
    assert_int_equal(manifest_decode(&d, out, len, why, sizeof(why)), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    assert_true(ms < 1000); /* typically a few ms; generous for sanitizer builds */
    assert_int_equal(d.files[0].n_blocks, 4096);
    assert_true(hash_equal(&d.files[0].blocks[4095], &m.files[0].blocks[4095]));
    free(out);
    manifest_release(&d);
    manifest_release(&m);
}

static void manifest_encode_refuses_what_no_peer_could_decode(void **state)
{
    (void)state;
    manifest_t m;
    manifest_init(&m);
    m.name = xstrdup("huge");
    /* Enough block hashes (67 bytes each in JSON) to pass MANIFEST_MAX_BYTES; hashes left zero. */
    size_t nb = MANIFEST_MAX_BYTES / 67 + 1;
    m.files = xcalloc(1, sizeof(*m.files));
    m.n_files = 1;
    m.files[0].path = xstrdup("huge.bin");
    m.files[0].size = (uint64_t)nb * MANIFEST_BLOCK_SIZE;
    m.files[0].n_blocks = nb;
    m.files[0].blocks = xcalloc(nb, sizeof(hash_t));
    assert_true(m.files[0].size <= MANIFEST_MAX_FILE_SIZE);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(manifest_encode(&m, &out, &len), -EMSGSIZE);
    assert_null(out);
    manifest_release(&m);
}

static void manifest_encode_rejects_invalid(void **state)
{
    (void)state;
    manifest_t m;
    char *out = NULL;
    size_t len = 0;

    manifest_init(&m); /* no name */
    assert_int_equal(manifest_encode(&m, &out, &len), -EINVAL);
    manifest_release(&m);

    build_small(&m); /* unsorted */
    manifest_file_t tmp = m.files[0];
    m.files[0] = m.files[1];
    m.files[1] = tmp;
    assert_int_equal(manifest_encode(&m, &out, &len), -EINVAL);
    manifest_sort(&m);
    free(encode_ok(&m, &len));
    manifest_release(&m);

    build_small(&m); /* a file whose parent dir is not listed */
    add_file(&m, "nodir/x", 1, 0644);
    manifest_sort(&m);
    assert_int_equal(manifest_encode(&m, &out, &len), -EINVAL);
    manifest_release(&m);

    build_small(&m); /* a path that is not UTF-8 (JSON cannot carry it) */
    add_file(&m, "bad\xff", 1, 0644);
    manifest_sort(&m);
    assert_int_equal(manifest_encode(&m, &out, &len), -EINVAL);
    manifest_release(&m);

    build_small(&m); /* job limits apply */
    m.desc.replicas = 0;
    assert_int_equal(manifest_encode(&m, &out, &len), -EINVAL);
    manifest_release(&m);

    build_small(&m); /* block count must match the size */
    m.files[0].size = MANIFEST_BLOCK_SIZE + 1;
    assert_int_equal(manifest_encode(&m, &out, &len), -EINVAL);
    manifest_release(&m);
    assert_null(out);
}

/* ---- decoding ---- */

static void manifest_decode_accepts_canonical(void **state)
{
    (void)state;
    manifest_t m;
    manifest_init(&m);
    assert_int_equal(decode_str(&m, SMALL_CANON), 0);
    assert_int_equal(m.n_files, 2);
    assert_string_equal(m.files[0].path, "data/in.txt");
    manifest_release(&m);
    /* The document helper makes valid documents (so the rejections below are about one thing). */
    char *f = file_json("data/in.txt", 3, 1);
    char *files = xasprintf("[%s]", f);
    expect_doc("[\"data\"]", files, 0, NULL);
    expect_doc("[]", "[]", 0, NULL);
    free(files);
    free(f);
}

static void manifest_decode_rejects_bad_json(void **state)
{
    (void)state;
    char *j = xstrndup(SMALL_CANON, strlen(SMALL_CANON) - 1);
    expect_reject(j, "not valid JSON");
    free(j);
    expect_reject("", "not valid JSON");
    expect_reject("[]", "manifest: not an object");
    expect_reject("\"x\"", "not valid JSON");
    expect_reject_edit("\"v\":1}", "\"v\":1}x", "not valid JSON");
    expect_reject_edit("\"name\":\"mandel\"", "\"name\":\"man\\u0000del\"", "not valid JSON");
    expect_reject_edit("\"created_ms\":1700000000000", "\"created_ms\":99999999999999999999", "not valid JSON");
}

static void manifest_decode_rejects_duplicate_key(void **state)
{
    (void)state;
    expect_reject_edit("\"v\":1}", "\"v\":1,\"v\":1}", "not valid JSON: duplicate object key");
    expect_reject_edit("\"tasks\":4,", "\"tasks\":4,\"tasks\":4,", "duplicate object key");
}

static void manifest_decode_rejects_unknown_key(void **state)
{
    (void)state;
    expect_reject_edit("\"v\":1}", "\"v\":1,\"zz\":1}", "manifest: unknown key 'zz'");
    expect_reject_edit("\"timeout_ms\":3600000}", "\"timeout_ms\":3600000,\"user\":\"root\"}", "job: unknown key 'user'");
    expect_reject_edit("\"size\":0}", "\"size\":0,\"xattr\":1}", "files[1]: unknown key 'xattr'");
    expect_reject_edit(",\"v\":1}", "}", "manifest: missing 'v'");
    expect_reject_edit("\"network\":false,", "", "job: missing 'network'");
}

static void manifest_decode_rejects_wrong_types_and_ranges(void **state)
{
    (void)state;
    expect_reject_edit("\"v\":1}", "\"v\":2}", "unsupported version 2");
    expect_reject_edit("\"v\":1}", "\"v\":\"1\"}", "manifest.v: not an integer");
    expect_reject_edit("\"created_ms\":1700000000000", "\"created_ms\":1.7e12", "created_ms: not an integer");
    expect_reject_edit("\"created_ms\":1700000000000", "\"created_ms\":-1", "created_ms: -1 out of range");
    expect_reject_edit("\"block_size\":262144", "\"block_size\":4096", "block_size: 4096 is not 262144");
    expect_reject_edit("\"name\":\"mandel\"", "\"name\":\"\"", "name: empty");
    expect_reject_edit("\"name\":\"mandel\"", "\"name\":\"a/b\"", "name: contains '/'");
    expect_reject_edit("\"name\":\"mandel\"", "\"name\":\".hidden\"", "name: starts with '.'");
    /* a name is a line of status/<job>: "x\nstate: done" would forge the lines after it */
    expect_reject_edit("\"name\":\"mandel\"", "\"name\":\"x\\nstate: done\"", "name: has a control character");
    expect_reject_edit("\"name\":\"mandel\"", "\"name\":\"a\\u007fb\"", "name: has a control character");
    expect_reject_edit("\"name\":\"mandel\"", "\"name\":7", "manifest.name: not a string");
    expect_reject_edit("\"name\":\"mandel\",", "\"name\":\"mandel\",\"submitter\":\"ABCD\",", "submitter: not a lower-case hex");
    expect_reject_edit("\"name\":\"mandel\",", "\"name\":\"mandel\",\"submitter\":\"abc\",", "submitter: not a lower-case hex");
    expect_reject_edit("\"block_size\"", "\"endorsements\":[],\"block_size\"", "endorsements: not an array of 1..8");
    expect_reject_edit("\"block_size\"", "\"endorsements\":[{\"by\":\"ab\",\"sig\":\"cd\",\"until_ms\":0}],\"block_size\"",
                       "endorsements: a job without a submitter has none");
    expect_reject_edit("\"block_size\"", "\"endorsements\":[{\"by\":\"ab\",\"until_ms\":0}],\"block_size\"",
                       "endorsement: missing 'sig'");
    expect_reject_edit("\"tasks\":4", "\"tasks\":0", "job: tasks must be 1..100000");
    expect_reject_edit("\"network\":false", "\"adaptive\":false,\"network\":false", "job.adaptive: only true");
    expect_reject_edit("\"network\":false", "\"adaptive\":true,\"network\":false",
                       "adaptive replication runs 2 replicas (got 1)");
    expect_reject_edit("\"network\":false", "\"network\":false,\"quorum\":2", "quorum must be 1..replicas");
    expect_reject_edit("\"tasks\":4", "\"tasks\":100001", "job.tasks: 100001 out of range");
    expect_reject_edit("\"network\":false", "\"grace_ms\":999,\"network\":false", "job.grace_ms must be 1000..");
    expect_reject_edit("\"network\":false", "\"grace_ms\":0,\"network\":false", "job.grace_ms must be 1000..");
    expect_reject_edit("\"network\":false", "\"grace_ms\":3600001,\"network\":false", "job.grace_ms: 3600001 out of range");
    expect_reject_edit("\"replicas\":1", "\"replicas\":17", "job.replicas: 17 out of range");
    expect_reject_edit("\"timeout_ms\":3600000", "\"timeout_ms\":0", "job: timeout must be");
    expect_reject_edit("\"memory\":1073741824", "\"memory\":1000", "job: memory must be at least 1M");
    expect_reject_edit("\"network\":false", "\"network\":0", "job.network: not true or false");
    expect_reject_edit("\"command\":\"/job/run\"", "\"command\":\"\"", "job: command: empty command");
    expect_reject_edit("\"outputs\":[\"*.pgm\"]", "\"outputs\":[\"../x\"]", "job: outputs[0]: output pattern has a '..' part");
    expect_reject_edit("\"outputs\":[\"*.pgm\"]", "\"outputs\":[1]", "job.outputs[]: not a string");
    expect_reject_edit("\"outputs\":[\"*.pgm\"]", "\"outputs\":\"*.pgm\"", "job.outputs: not an array");
    expect_reject_edit("\"mode\":420", "\"mode\":512", "files[0].mode: 512 out of range");
    expect_reject_edit("\"mode\":420", "\"mode\":-420", "files[0].mode: -420 out of range");
    expect_reject_edit("\"dirs\":[\"data\"]", "\"dirs\":{}", "dirs: not an array");
    expect_reject_edit("\"dirs\":[\"data\"]", "\"dirs\":[null]", "dirs[]: not a string");
    expect_reject_edit("{\"blocks\":[],\"mode\":493,\"path\":\"run\",\"size\":0}", "7", "files[1]: not an object");
}

static void manifest_decode_rejects_bad_paths(void **state)
{
    (void)state;
    static const char *const bad[] = {"../x", "/x", "a//b", "data/", ".", "data/./x", "data/..", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *f = file_json(bad[i], 0, 0);
        char *files = xasprintf("[%s]", f);
        expect_doc("[\"data\"]", files, -EINVAL, "files[0]: '");
        expect_doc("[\"data\"]", files, -EINVAL, "is not a valid relative path");
        free(files);
        free(f);
        char *dirs = xasprintf("[\"%s\"]", bad[i]);
        expect_doc(dirs, "[]", -EINVAL, "dirs[0]: ");
        free(dirs);
    }
    /* Longest path allowed (five parts of at most 255 bytes, its directories listed), and one
     * byte more. */
    char p[MANIFEST_MAX_PATH + 2];
    memset(p, 'a', sizeof(p));
    for (size_t i = 200; i <= 803; i += 201)
        p[i] = '/';
    p[MANIFEST_MAX_PATH] = '\0';
    char *dirs = xasprintf("[\"%.200s\",\"%.401s\",\"%.602s\",\"%.803s\"]", p, p, p, p);
    char *f = file_json(p, 0, 0);
    char *files = xasprintf("[%s]", f);
    expect_doc(dirs, files, 0, NULL);
    free(files);
    free(f);
    p[MANIFEST_MAX_PATH] = 'a';
    p[MANIFEST_MAX_PATH + 1] = '\0';
    f = file_json(p, 0, 0);
    files = xasprintf("[%s]", f);
    expect_doc(dirs, files, -EINVAL, "is not a valid relative path");
    free(files);
    free(f);
    free(dirs);
    /* A part over NAME_MAX (255 bytes): no file could have that name. */
    memset(p, 'b', 256);
    p[256] = '\0';
    f = file_json(p, 0, 0);
    files = xasprintf("[%s]", f);
    expect_doc("[]", files, -EINVAL, "is not a valid relative path");
    free(files);
    free(f);
    p[255] = '\0';
    f = file_json(p, 0, 0);
    files = xasprintf("[%s]", f);
    expect_doc("[]", files, 0, NULL);
    free(files);
    free(f);
}

static void manifest_decode_rejects_bad_tree(void **state)
{
    (void)state;
    char *a = file_json("a", 0, 0), *b = file_json("b", 0, 0), *xy = file_json("x/y", 0, 0);
    char *files;
    files = xasprintf("[%s,%s]", b, a);
    expect_doc("[]", files, -EINVAL, "files[1]: 'a' is out of order");
    free(files);
    files = xasprintf("[%s,%s]", a, a);
    expect_doc("[]", files, -EINVAL, "files[1]: 'a' is listed twice");
    free(files);
    expect_doc("[\"b\",\"a\"]", "[]", -EINVAL, "dirs[1]: 'a' is out of order");
    expect_doc("[\"a\",\"a\"]", "[]", -EINVAL, "dirs[1]: 'a' is listed twice");
    files = xasprintf("[%s]", a);
    expect_doc("[\"a\"]", files, -EINVAL, "files[0]: 'a' is also a dir");
    free(files);
    files = xasprintf("[%s]", xy);
    expect_doc("[]", files, -EINVAL, "files[0]: parent of 'x/y' is not in dirs");
    expect_doc("[\"x\"]", files, 0, NULL);
    free(files);
    expect_doc("[\"x/y\"]", "[]", -EINVAL, "dirs[0]: parent of 'x/y' is not in dirs");
    expect_doc("[\"x\",\"x/y\",\"x/y/z\"]", "[]", 0, NULL);
    /* strcmp order: '-' (0x2d) sorts before '/' (0x2f), so "x-1" comes before "x/y". */
    char *x1 = file_json("x-1", 0, 0);
    files = xasprintf("[%s,%s]", x1, xy);
    expect_doc("[\"x\"]", files, 0, NULL);
    free(files);
    free(x1);
    free(a);
    free(b);
    free(xy);
}

static void manifest_decode_rejects_wrong_block_count(void **state)
{
    (void)state;
    static const struct {
        long long size;
        int blocks;
        int ok;
    } cases[] = {
        {0, 0, 1}, {0, 1, 0}, {1, 0, 0}, {1, 1, 1}, {1, 2, 0}, {262144, 1, 1}, {262145, 1, 0}, {262145, 2, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *f = file_json("f", cases[i].size, cases[i].blocks);
        char *files = xasprintf("[%s]", f);
        expect_doc("[]", files, cases[i].ok ? 0 : -EINVAL, cases[i].ok ? NULL : "files[0].blocks: want an array");
        free(files);
        free(f);
    }
    char *f = file_json("f", -1, 0);
    char *files = xasprintf("[%s]", f);
    expect_doc("[]", files, -EINVAL, "files[0].size: -1 out of range");
    free(files);
    free(f);
    f = file_json("f", (long long)MANIFEST_MAX_FILE_SIZE + 1, 0);
    files = xasprintf("[%s]", f);
    expect_doc("[]", files, -EINVAL, "files[0].size:");
    free(files);
    free(f);
    expect_reject_edit(ABC_HEX, "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
                       "files[0].blocks[0]: not 64 lower-case hex digits");
    expect_reject_edit(ABC_HEX, "ba78", "files[0].blocks[0]: not 64");
    expect_reject_edit("\"" ABC_HEX "\"", "7", "files[0].blocks[0]: not 64");
}

static void manifest_decode_rejects_non_canonical(void **state)
{
    (void)state;
    expect_reject_edit("\"v\":1", "\"v\": 1", "not in canonical form (differs at byte");
    expect_reject_edit("{\"block_size\"", " {\"block_size\"", "not in canonical form (differs at byte 0");
    expect_reject_edit("\"v\":1}", "\"v\":1}\n", "not in canonical form");
    expect_reject_edit("\"name\":\"mandel\"", "\"name\":\"m\\u0061ndel\"", "not in canonical form");
    expect_reject_edit("\"v\":1}", "\"v\":1.0}", "manifest.v: not an integer");
    expect_reject_edit("\"v\":1}", "\"v\":01}", "not valid JSON");
    /* Key order: move "v" first. */
    char *j = replace(SMALL_CANON, ",\"v\":1}", "}");
    char *k = replace(j, "{", "{\"v\":1,");
    expect_reject(k, "not in canonical form (differs at byte 2:");
    free(k);
    free(j);
    /* Optional fields are omitted, never null. */
    expect_reject_edit("\"network\":false,", "\"network\":false,\"os\":null,", "job.os: not a string");
}

static void manifest_decode_rejects_oversize(void **state)
{
    (void)state;
    size_t n = (size_t)MANIFEST_MAX_BYTES + 1;
    char *big = xmalloc(n);
    memset(big, ' ', n);
    manifest_t m;
    manifest_init(&m);
    assert_int_equal(manifest_decode(&m, big, n, why, sizeof(why)), -EMSGSIZE);
    assert_non_null(strstr(why, "larger than"));
    manifest_release(&m);
    free(big);
}

static void manifest_decode_failure_leaves_target_untouched(void **state)
{
    (void)state;
    manifest_t m;
    manifest_init(&m);
    assert_int_equal(decode_str(&m, SMALL_CANON), 0);
    char *bad = replace(SMALL_CANON, "\"size\":3", "\"size\":300000");
    assert_int_equal(decode_str(&m, bad), -EINVAL);
    free(bad);
    assert_string_equal(m.name, "mandel");
    assert_int_equal(m.n_files, 2);
    assert_int_equal(m.files[0].size, 3);
    size_t len;
    char *out = encode_ok(&m, &len);
    assert_string_equal(out, SMALL_CANON);
    free(out);
    /* Decoding again over a decoded manifest replaces it without leaking. */
    assert_int_equal(decode_str(&m, SMALL_CANON), 0);
    manifest_release(&m);
}

/* ---- paths and lookup ---- */

static void manifest_check_path_rules(void **state)
{
    (void)state;
    static const char *const ok[] = {"a", "a/b", "a/b/c.txt", "..a", "a..", ".hidden", "a/.b", "with space", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_int_equal(manifest_check_path(ok[i]), 0);
    static const char *const bad[] = {"", "/", "/a", "a/", "a//b", ".", "..", "./a", "a/.", "../a", "a/../b", "\xff", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(manifest_check_path(bad[i]), -EINVAL);
    /* A part of NAME_MAX (255) bytes is a name a file can have; 256 is not (ENAMETOOLONG), and a
     * peer must not be able to hand one over (issue 11, item 7). */
    char p[600];
    memset(p, 'x', 255);
    p[255] = '\0';
    assert_int_equal(manifest_check_path(p), 0);
    memcpy(p + 255, "/y", 3);
    assert_int_equal(manifest_check_path(p), 0);
    memset(p, 'x', 256);
    p[256] = '\0';
    assert_int_equal(manifest_check_path(p), -EINVAL);
    memcpy(p, "a/", 2);
    memset(p + 2, 'z', 256);
    p[258] = '\0';
    assert_int_equal(manifest_check_path(p), -EINVAL);
}

static void manifest_find_binary_searches(void **state)
{
    (void)state;
    manifest_t m;
    manifest_init(&m);
    assert_int_equal(manifest_find(&m, "a"), -1);
    m.name = xstrdup("find");
    static const char *const names[] = {"z", "a", "m/x", "b", "m-", "c"};
    add_dir(&m, "m");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        add_file(&m, names[i], i, 0644);
    manifest_sort(&m);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        ssize_t at = manifest_find(&m, names[i]);
        assert_true(at >= 0);
        assert_string_equal(m.files[at].path, names[i]);
        assert_int_equal(m.files[at].size, i);
    }
    assert_int_equal(manifest_find(&m, "m"), -1); /* a dir, not a file */
    assert_int_equal(manifest_find(&m, ""), -1);
    assert_int_equal(manifest_find(&m, "zz"), -1);
    assert_int_equal(manifest_find(&m, "0"), -1);
    assert_int_equal(manifest_find(&m, NULL), -1);
    size_t len;
    free(encode_ok(&m, &len));
    manifest_release(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(manifest_encode_is_canonical),
        cmocka_unit_test(manifest_round_trip),
        cmocka_unit_test(manifest_encode_big_file_is_fast),
        cmocka_unit_test(manifest_encode_refuses_what_no_peer_could_decode),
        cmocka_unit_test(manifest_encode_rejects_invalid),
        cmocka_unit_test(manifest_decode_accepts_canonical),
        cmocka_unit_test(manifest_decode_rejects_bad_json),
        cmocka_unit_test(manifest_decode_rejects_duplicate_key),
        cmocka_unit_test(manifest_decode_rejects_unknown_key),
        cmocka_unit_test(manifest_decode_rejects_wrong_types_and_ranges),
        cmocka_unit_test(manifest_decode_rejects_bad_paths),
        cmocka_unit_test(manifest_decode_rejects_bad_tree),
        cmocka_unit_test(manifest_decode_rejects_wrong_block_count),
        cmocka_unit_test(manifest_decode_rejects_non_canonical),
        cmocka_unit_test(manifest_decode_rejects_oversize),
        cmocka_unit_test(manifest_decode_failure_leaves_target_untouched),
        cmocka_unit_test(manifest_check_path_rules),
        cmocka_unit_test(manifest_find_binary_searches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
