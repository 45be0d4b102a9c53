/*
 * test_store.c: the content-addressed block store against a real directory (one mkdtemp per test).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/hash.h"
#include "swarm/store.h"

typedef struct fixture {
    char dir[64];
    char *root; /* dir/store */
    store_t *s;
} fixture_t;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_store.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_true(asprintf(&f->root, "%s/store", f->dir) > 0);
    /* a nested path also checks that store_open creates parents */
    assert_int_equal(store_open(f->root, &f->s), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    store_close(f->s);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f->root);
    free(f);
    return 0;
}

/* Deterministic bytes that differ per seed. */
static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
}

static char *block_path(fixture_t *f, const hash_t *h)
{
    char hex[HASH_HEX_LEN + 1], *p;
    hash_to_hex(h, hex);
    assert_true(asprintf(&p, "%s/blocks/%.2s/%s", f->root, hex, hex) > 0);
    return p;
}

/* Entries in a directory, not counting . and .. */
static size_t count_dir(const char *path)
{
    size_t n = 0;
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void store_put_get_round_trip(void **state)
{
    fixture_t *f = *state;
    uint8_t data[10000], back[10000];
    hash_t h;
    fill(data, sizeof(data), 1);
    hash_sha256(data, sizeof(data), &h);

    assert_false(store_has(f->s, &h));
    assert_int_equal(store_put(f->s, &h, data, sizeof(data)), 0);
    assert_true(store_has(f->s, &h));
    assert_int_equal(store_read(f->s, &h, back, sizeof(back), 0), sizeof(back));
    assert_memory_equal(data, back, sizeof(data));
    assert_int_equal(store_bytes(f->s), sizeof(data));
    assert_int_equal(store_blocks(f->s), 1);

    /* on disk under blocks/<2 hex>/<64 hex>, and nothing left in tmp/ */
    char *p = block_path(f, &h);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, sizeof(data));
    free(p);
    char *tmp;
    assert_true(asprintf(&tmp, "%s/tmp", f->root) > 0);
    assert_int_equal(count_dir(tmp), 0);
    free(tmp);
}

static void store_put_rejects_hash_mismatch(void **state)
{
    fixture_t *f = *state;
    uint8_t data[4096];
    hash_t h;
    fill(data, sizeof(data), 2);
    hash_sha256(data, sizeof(data), &h);
    data[100] ^= 1; /* one flipped bit */

    assert_int_equal(store_put(f->s, &h, data, sizeof(data)), -EBADMSG);
    assert_false(store_has(f->s, &h));
    assert_int_equal(store_bytes(f->s), 0);
    assert_int_equal(store_blocks(f->s), 0);
    char *blocks;
    assert_true(asprintf(&blocks, "%s/blocks", f->root) > 0);
    assert_int_equal(count_dir(blocks), 0);
    free(blocks);
}

static void store_put_rejects_oversize(void **state)
{
    fixture_t *f = *state;
    size_t len = STORE_MAX_BLOCK + 1;
    uint8_t *data = calloc(1, len);
    assert_non_null(data);
    hash_t h;
    hash_sha256(data, len, &h);
    assert_int_equal(store_put(f->s, &h, data, len), -EMSGSIZE);
    assert_int_equal(store_put_hashed(f->s, &h, data, len), -EMSGSIZE);
    assert_false(store_has(f->s, &h));
    /* exactly the cap is fine */
    hash_sha256(data, len - 1, &h);
    assert_int_equal(store_put(f->s, &h, data, len - 1), 0);
    assert_int_equal(store_bytes(f->s), STORE_MAX_BLOCK);
    free(data);
}

static void store_put_duplicate_is_idempotent(void **state)
{
    fixture_t *f = *state;
    uint8_t data[3000];
    hash_t h;
    fill(data, sizeof(data), 3);
    hash_sha256(data, sizeof(data), &h);
    assert_int_equal(store_put(f->s, &h, data, sizeof(data)), 0);
    assert_int_equal(store_put(f->s, &h, data, sizeof(data)), 0);
    assert_int_equal(store_put_hashed(f->s, &h, data, sizeof(data)), 0);
    assert_int_equal(store_blocks(f->s), 1);
    assert_int_equal(store_bytes(f->s), sizeof(data));
}

static void store_put_hashed_stores(void **state)
{
    fixture_t *f = *state;
    uint8_t data[777], back[777];
    hash_t h;
    fill(data, sizeof(data), 4);
    hash_sha256(data, sizeof(data), &h);
    assert_int_equal(store_put_hashed(f->s, &h, data, sizeof(data)), 0);
    assert_int_equal(store_read(f->s, &h, back, sizeof(back), 0), sizeof(back));
    assert_memory_equal(data, back, sizeof(data));
}

static void store_empty_block(void **state)
{
    fixture_t *f = *state;
    hash_t h;
    uint8_t b;
    hash_sha256(NULL, 0, &h);
    assert_int_equal(store_put(f->s, &h, NULL, 0), 0);
    assert_true(store_has(f->s, &h));
    assert_int_equal(store_blocks(f->s), 1);
    assert_int_equal(store_bytes(f->s), 0);
    assert_int_equal(store_read(f->s, &h, &b, 1, 0), 0);
}

static void store_reopen_keeps_blocks_and_counters(void **state)
{
    fixture_t *f = *state;
    hash_t h[5];
    uint8_t data[5][1000 + 5];
    uint64_t bytes = 0;
    for (int i = 0; i < 5; i++) {
        size_t len = 1000 + (size_t)i;
        fill(data[i], len, 10 + (uint32_t)i);
        hash_sha256(data[i], len, &h[i]);
        assert_int_equal(store_put(f->s, &h[i], data[i], len), 0);
        bytes += len;
    }
    store_close(f->s);
    f->s = NULL;

    /* junk that is not a block must not be counted */
    char *junk;
    assert_true(asprintf(&junk, "%s/blocks/zz", f->root) > 0);
    assert_int_equal(mkdir(junk, 0700), 0);
    free(junk);

    assert_int_equal(store_open(f->root, &f->s), 0);
    assert_int_equal(store_blocks(f->s), 5);
    assert_int_equal(store_bytes(f->s), bytes);
    for (int i = 0; i < 5; i++) {
        uint8_t back[1000 + 5];
        size_t len = 1000 + (size_t)i;
        assert_true(store_has(f->s, &h[i]));
        assert_int_equal(store_read(f->s, &h[i], back, len, 0), len);
        assert_memory_equal(back, data[i], len);
    }
}

static void store_open_removes_tmp_leftovers(void **state)
{
    fixture_t *f = *state;
    store_close(f->s);
    f->s = NULL;
    char *tmp, *file;
    assert_true(asprintf(&tmp, "%s/tmp", f->root) > 0);
    for (int i = 0; i < 3; i++) {
        assert_true(asprintf(&file, "%s/put-left%d", tmp, i) > 0);
        FILE *fp = fopen(file, "w");
        assert_non_null(fp);
        fputs("half a block", fp);
        fclose(fp);
        free(file);
    }
    assert_int_equal(count_dir(tmp), 3);
    assert_int_equal(store_open(f->root, &f->s), 0);
    assert_int_equal(count_dir(tmp), 0);
    assert_int_equal(store_blocks(f->s), 0);
    free(tmp);
}

static void store_remove_block(void **state)
{
    fixture_t *f = *state;
    uint8_t a[500], b[700];
    hash_t ha, hb;
    fill(a, sizeof(a), 20);
    fill(b, sizeof(b), 21);
    hash_sha256(a, sizeof(a), &ha);
    hash_sha256(b, sizeof(b), &hb);
    assert_int_equal(store_put(f->s, &ha, a, sizeof(a)), 0);
    assert_int_equal(store_put(f->s, &hb, b, sizeof(b)), 0);
    assert_int_equal(store_remove(f->s, &ha), 0);
    assert_false(store_has(f->s, &ha));
    assert_true(store_has(f->s, &hb));
    assert_int_equal(store_blocks(f->s), 1);
    assert_int_equal(store_bytes(f->s), sizeof(b));
    assert_int_equal(store_remove(f->s, &ha), -ENOENT);
    assert_int_equal(store_blocks(f->s), 1);
    /* it can be stored again after eviction */
    assert_int_equal(store_put(f->s, &ha, a, sizeof(a)), 0);
    assert_int_equal(store_blocks(f->s), 2);
    assert_int_equal(store_bytes(f->s), sizeof(a) + sizeof(b));
}

static void store_read_short_and_past_end(void **state)
{
    fixture_t *f = *state;
    uint8_t data[1000], back[1000];
    hash_t h, missing;
    fill(data, sizeof(data), 30);
    hash_sha256(data, sizeof(data), &h);
    assert_int_equal(store_put(f->s, &h, data, sizeof(data)), 0);

    /* middle */
    assert_int_equal(store_read(f->s, &h, back, 100, 450), 100);
    assert_memory_equal(back, data + 450, 100);
    /* short at the end */
    assert_int_equal(store_read(f->s, &h, back, 500, 900), 100);
    assert_memory_equal(back, data + 900, 100);
    /* at and past the end */
    assert_int_equal(store_read(f->s, &h, back, 10, 1000), 0);
    assert_int_equal(store_read(f->s, &h, back, 10, 5000), 0);
    assert_int_equal(store_read(f->s, &h, back, 10, UINT64_MAX), -EINVAL);
    /* missing */
    fill(data, sizeof(data), 31);
    hash_sha256(data, sizeof(data), &missing);
    assert_int_equal(store_read(f->s, &missing, back, 10, 0), -ENOENT);
}

static void store_open_block_reads(void **state)
{
    fixture_t *f = *state;
    uint8_t data[2048], back[2048];
    hash_t h, missing;
    fill(data, sizeof(data), 40);
    hash_sha256(data, sizeof(data), &h);
    assert_int_equal(store_put(f->s, &h, data, sizeof(data)), 0);
    int fd = 12345;
    assert_int_equal(store_open_block(f->s, &h, &fd), 0);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, back, sizeof(back), 0), sizeof(back));
    assert_memory_equal(back, data, sizeof(data));
    /* read-only */
    assert_int_equal(write(fd, "x", 1), -1);
    assert_int_equal(errno, EBADF);
    close(fd);

    fill(data, sizeof(data), 41);
    hash_sha256(data, sizeof(data), &missing);
    assert_int_equal(store_open_block(f->s, &missing, &fd), -ENOENT);
    assert_int_equal(fd, -1);
}

static void store_open_fails_on_a_file(void **state)
{
    fixture_t *f = *state;
    char *path;
    store_t *s = (store_t *)1;
    assert_true(asprintf(&path, "%s/plain", f->dir) > 0);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_true(store_open(path, &s) < 0);
    assert_null(s);
    free(path);
}

/* Threads storing the same blocks at once: each stored once, counted once. */
#define CONC_THREADS 8
#define CONC_BLOCKS 64

typedef struct conc {
    store_t *s;
    uint8_t (*data)[512];
    hash_t *h;
    int failures;
} conc_t;

static void *conc_worker(void *arg)
{
    conc_t *c = arg;
    for (int i = 0; i < CONC_BLOCKS; i++)
        if (store_put(c->s, &c->h[i], c->data[i], sizeof(c->data[i])) != 0)
            c->failures++;
    return NULL;
}

static void store_concurrent_puts_count_once(void **state)
{
    fixture_t *f = *state;
    static uint8_t data[CONC_BLOCKS][512];
    static hash_t h[CONC_BLOCKS];
    for (int i = 0; i < CONC_BLOCKS; i++) {
        fill(data[i], sizeof(data[i]), 100 + (uint32_t)i);
        hash_sha256(data[i], sizeof(data[i]), &h[i]);
    }
    pthread_t th[CONC_THREADS];
    conc_t c[CONC_THREADS];
    for (int t = 0; t < CONC_THREADS; t++) {
        c[t] = (conc_t){f->s, data, h, 0};
        assert_int_equal(pthread_create(&th[t], NULL, conc_worker, &c[t]), 0);
    }
    for (int t = 0; t < CONC_THREADS; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        assert_int_equal(c[t].failures, 0);
    }
    assert_int_equal(store_blocks(f->s), CONC_BLOCKS);
    assert_int_equal(store_bytes(f->s), CONC_BLOCKS * 512);
    /* and the counters agree with what is on disk */
    store_close(f->s);
    assert_int_equal(store_open(f->root, &f->s), 0);
    assert_int_equal(store_blocks(f->s), CONC_BLOCKS);
    assert_int_equal(store_bytes(f->s), CONC_BLOCKS * 512);
}

static bool pin_one(void *arg, const hash_t *h) { return hash_equal(arg, h); }

/* Least recently used first, never a pinned block nor one used within the grace period; the index
 * is rebuilt from the files at open (their times give the order). */
static void store_evicts_least_recently_used_first(void **state)
{
    fixture_t *f = *state;
    enum { N = 10, LEN = 1000 };
    hash_t h[N];
    uint8_t buf[LEN];
    for (int i = 0; i < N; i++) {
        fill(buf, LEN, 100 + (uint32_t)i);
        hash_sha256(buf, LEN, &h[i]);
        assert_int_equal(store_put(f->s, &h[i], buf, LEN), 0);
    }
    /* Give block i a last use i seconds after an hour ago, then reopen: the order comes from the files. */
    store_close(f->s);
    struct timespec t0;
    clock_gettime(CLOCK_REALTIME, &t0);
    for (int i = 0; i < N; i++) {
        char *p = block_path(f, &h[i]);
        struct timespec ts[2] = {{.tv_sec = t0.tv_sec - 3600 + i}, {.tv_sec = t0.tv_sec - 3600 + i}};
        assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
        free(p);
    }
    assert_int_equal(store_open(f->root, &f->s), 0);
    assert_int_equal(store_bytes(f->s), N * LEN);
    assert_true(store_has(f->s, &h[0])); /* block 0 is used now: the newest */
    uint64_t freed = 0;
    assert_int_equal(store_evict(f->s, N * LEN, 0, NULL, NULL, &freed), 0); /* at the target already */
    assert_int_equal(store_evict(f->s, 5 * LEN, 0, pin_one, &h[1], &freed), 5);
    assert_int_equal(freed, 5 * LEN);
    assert_int_equal(store_bytes(f->s), 5 * LEN);
    assert_int_equal(store_blocks(f->s), 5);
    for (int i = 0; i < N; i++) { /* 1 is pinned, 0 was used last: 2..6 go */
        char *p = block_path(f, &h[i]);
        bool kept = i <= 1 || i >= 7;
        if ((access(p, F_OK) == 0) != kept)
            fail_msg("block %d: %s", i, kept ? "evicted" : "kept");
        free(p);
    }
    /* A grace period keeps what was used recently (block 0, a moment ago) however far over. */
    assert_int_equal(store_evict(f->s, 0, 60000, pin_one, &h[1], &freed), 3); /* 7, 8, 9 */
    assert_int_equal(store_bytes(f->s), 2 * LEN);
    store_stats_t st;
    store_stats(f->s, &st);
    assert_int_equal(st.evictions, 8);
    assert_int_equal(st.evicted_bytes, 8 * LEN);
    assert_true(store_has(f->s, &h[0]));
    assert_true(store_has(f->s, &h[1]));
    assert_false(store_has(f->s, &h[5]));
    assert_int_equal(store_read(f->s, &h[5], buf, LEN, 0), -ENOENT);
    /* Put back after its eviction, it counts again. */
    fill(buf, LEN, 105);
    assert_int_equal(store_put(f->s, &h[5], buf, LEN), 0);
    assert_true(store_has(f->s, &h[5]));
    assert_int_equal(store_bytes(f->s), 3 * LEN);
    store_close(f->s); /* and the index after a restart is what the files say */
    assert_int_equal(store_open(f->root, &f->s), 0);
    assert_int_equal(store_blocks(f->s), 3);
    assert_true(store_has(f->s, &h[5]));
    assert_false(store_has(f->s, &h[6]));
}

/* The index grows past its first capacity (and sweeps tombstones) without losing a block. */
static void store_index_grows(void **state)
{
    fixture_t *f = *state;
    enum { N = 3000 };
    uint8_t buf[8];
    hash_t *h = calloc(N, sizeof(*h));
    assert_non_null(h);
    for (int i = 0; i < N; i++) {
        memcpy(buf, &i, sizeof(i));
        memset(buf + sizeof(i), 7, sizeof(buf) - sizeof(i));
        hash_sha256(buf, sizeof(buf), &h[i]);
        assert_int_equal(store_put(f->s, &h[i], buf, sizeof(buf)), 0);
        if (i % 3 == 0)
            assert_int_equal(store_remove(f->s, &h[i]), 0);
    }
    for (int i = 0; i < N; i++)
        if (store_has(f->s, &h[i]) != (i % 3 != 0))
            fail_msg("block %d: wrong", i);
    assert_int_equal(store_blocks(f->s), N - N / 3);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(store_put_get_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(store_put_rejects_hash_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(store_put_rejects_oversize, setup, teardown),
        cmocka_unit_test_setup_teardown(store_put_duplicate_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(store_put_hashed_stores, setup, teardown),
        cmocka_unit_test_setup_teardown(store_empty_block, setup, teardown),
        cmocka_unit_test_setup_teardown(store_reopen_keeps_blocks_and_counters, setup, teardown),
        cmocka_unit_test_setup_teardown(store_open_removes_tmp_leftovers, setup, teardown),
        cmocka_unit_test_setup_teardown(store_remove_block, setup, teardown),
        cmocka_unit_test_setup_teardown(store_read_short_and_past_end, setup, teardown),
        cmocka_unit_test_setup_teardown(store_open_block_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(store_open_fails_on_a_file, setup, teardown),
        cmocka_unit_test_setup_teardown(store_concurrent_puts_count_once, setup, teardown),
        cmocka_unit_test_setup_teardown(store_evicts_least_recently_used_first, setup, teardown),
        cmocka_unit_test_setup_teardown(store_index_grows, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
