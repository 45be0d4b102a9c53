/*
 * test_serve.c: swarm/serve.c behind a real httpd on 127.0.0.1 port 0, asked by a fetcher's
 * fetch_get on the same uv loop (no threads). Each test runs the loop until its requests are
 * answered, with a uv_timer watchdog; teardown closes everything and asserts uv_loop_close() == 0.
 * Inputs, results and the store live in a mkdtemp directory; manifests are built by hand with a
 * small block size.
 */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include <cmocka.h>
#include <uv.h>

#include "core/hash.h"
#include "core/httpd.h"
#include "core/manifest.h"
#include "core/xalloc.h"
#include "swarm/fetch.h"
#include "swarm/serve.h"
#include "swarm/store.h"

#define BS 1024u     /* block size of the test manifests */
#define FILE_LEN 2500 /* three blocks: 1024, 1024, 452 */
#define WATCHDOG_MS 10000
#define MAX_ANS 16

typedef struct answer {
    int status;
    unsigned code;
    char *body;
    size_t len;
} answer_t;

typedef struct fx {
    uv_loop_t loop;
    uv_timer_t watchdog;
    char dir[64];
    store_t *store;
    httpd_t *h;
    serve_t *s;
    fetch_t *f;
    char base[64];
    answer_t ans[MAX_ANS];
    int nans, want;
    bool close_after; /* the route handler closes serve and httpd after the next request */
    bool close_serve_only; /* ... or serve only: its answer is then sent (503) */
    bool serve_closed;
    /* a manifest of one file, "f.bin", FILE_LEN bytes, in dir/in and dir/res */
    manifest_file_t mf;
    manifest_t m;
    uint8_t data[FILE_LEN];
} fx_t;

static void on_serve_closed(void *arg) { ((fx_t *)arg)->serve_closed = true; }

static void on_route(httpd_req_t *r, void *arg)
{
    fx_t *fx = arg;
    const char *path = httpd_req_path(r) + 3; /* after "/v1" */
    if (!serve_handle(fx->s, r, path))
        httpd_reply(r, 404, NULL, "", 0);
    if (fx->close_after) {
        fx->close_after = false;
        serve_close(fx->s, on_serve_closed, fx);
        fx->s = NULL;
        if (!fx->close_serve_only) {
            httpd_close(fx->h, NULL, NULL);
            fx->h = NULL;
        }
    }
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    fail_msg("watchdog: the loop did not finish");
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static int setup(void **state)
{
    fx_t *fx = xcalloc(1, sizeof(*fx));
    strcpy(fx->dir, "/tmp/test_serve.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    char *p = xasprintf("%s/store", fx->dir);
    assert_int_equal(store_open(p, &fx->store), 0);
    free(p);
    httpd_opts_t ho = {.addr = "127.0.0.1"};
    assert_int_equal(httpd_new(&fx->loop, &ho, &fx->h), 0);
    assert_int_equal(httpd_route(fx->h, "/v1", on_route, fx), 0);
    snprintf(fx->base, sizeof(fx->base), "http://127.0.0.1:%u/v1", httpd_port(fx->h));
    assert_int_equal(serve_new(&fx->loop, fx->store, &fx->s), 0);
    assert_int_equal(fetch_new(&fx->loop, NULL, NULL, &fx->f), 0);

    uint32_t x = 12345; /* no period that a block could line up with */
    for (size_t i = 0; i < FILE_LEN; i++) {
        x = x * 1103515245u + 12345u;
        fx->data[i] = (uint8_t)(x >> 16);
    }
    fx->mf.path = "f.bin";
    fx->mf.size = FILE_LEN;
    fx->mf.n_blocks = 3;
    fx->mf.blocks = xcalloc(3, sizeof(hash_t));
    for (size_t b = 0; b < 3; b++) {
        size_t len = b < 2 ? BS : FILE_LEN - 2 * BS;
        hash_sha256(fx->data + b * BS, len, &fx->mf.blocks[b]);
    }
    fx->m.block_size = BS;
    fx->m.files = &fx->mf;
    fx->m.n_files = 1;
    for (int i = 0; i < 2; i++) {
        p = xasprintf("%s/%s", fx->dir, i ? "res" : "in");
        assert_int_equal(mkdir(p, 0755), 0);
        char *f = xasprintf("%s/f.bin", p);
        write_file(f, fx->data, FILE_LEN);
        free(f);
        free(p);
    }
    uv_timer_init(&fx->loop, &fx->watchdog);
    uv_timer_start(&fx->watchdog, on_watchdog, WATCHDOG_MS, 0);
    uv_unref((uv_handle_t *)&fx->watchdog);
    *state = fx;
    return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    if (fx->s)
        serve_close(fx->s, NULL, NULL);
    if (fx->h)
        httpd_close(fx->h, NULL, NULL);
    fetch_close(fx->f, NULL, NULL);
    uv_close((uv_handle_t *)&fx->watchdog, NULL);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    store_close(fx->store);
    nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    for (int i = 0; i < MAX_ANS; i++)
        free(fx->ans[i].body);
    free(fx->mf.blocks);
    free(fx);
    return 0;
}

static void on_answer(int status, unsigned code, const char *body, size_t len, void *arg)
{
    answer_t *a = arg;
    a->status = status;
    a->code = code;
    if (body) {
        a->body = xmalloc(len + 1);
        memcpy(a->body, body, len);
        a->body[len] = '\0';
        a->len = len;
    }
}

/* GETs base + path and runs the loop until it is answered; the answer. */
static answer_t *get(fx_t *fx, const char *path)
{
    assert_true(fx->nans < MAX_ANS);
    answer_t *a = &fx->ans[fx->nans++];
    a->status = 1; /* not yet */
    char *url = xasprintf("%s%s", fx->base, path);
    assert_int_equal(fetch_get(fx->f, url, 1 << 20, on_answer, a), 0);
    free(url);
    while (a->status == 1)
        uv_run(&fx->loop, UV_RUN_ONCE);
    return a;
}

static answer_t *get_block(fx_t *fx, const hash_t *h)
{
    char path[16 + HASH_HEX_LEN];
    char hex[HASH_HEX_LEN + 1];
    hash_to_hex(h, hex);
    snprintf(path, sizeof(path), "/block/%s", hex);
    return get(fx, path);
}

static const char JOB[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
static const char JOB2[] = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

static void serve_inputs_results_and_the_store(void **state)
{
    fx_t *fx = *state;
    int owner;
    char *in = xasprintf("%s/in", fx->dir), *res = xasprintf("%s/res", fx->dir);

    /* nothing registered, nothing stored */
    answer_t *a = get_block(fx, &fx->mf.blocks[0]);
    assert_int_equal(a->code, 404);
    assert_non_null(strstr(a->body, "\"error\""));
    assert_int_equal(get(fx, "/block/xyz")->code, 400);

    /* a job's inputs: every block, the last one short */
    assert_int_equal(serve_add_job(fx->s, JOB, &fx->m, in, &owner), 0);
    for (int b = 0; b < 3; b++) {
        a = get_block(fx, &fx->mf.blocks[b]);
        assert_int_equal(a->code, 200);
        assert_int_equal(a->len, b < 2 ? BS : FILE_LEN - 2 * BS);
        assert_memory_equal(a->body, fx->data + b * BS, a->len);
    }
    serve_remove(fx->s, &owner);
    assert_int_equal(get_block(fx, &fx->mf.blocks[1])->code, 404);

    /* a result: read and re-hashed in the thread pool, answered later */
    assert_int_equal(serve_add_result(fx->s, &fx->m, res, &owner), 0);
    a = get_block(fx, &fx->mf.blocks[1]);
    assert_int_equal(a->code, 200);
    assert_memory_equal(a->body, fx->data + BS, BS);
    /* ... and not served once the file changed under it */
    char *f = xasprintf("%s/f.bin", res);
    uint8_t changed[FILE_LEN];
    memcpy(changed, fx->data, FILE_LEN);
    changed[BS + 5] ^= 1;
    write_file(f, changed, FILE_LEN);
    free(f);
    assert_int_equal(get_block(fx, &fx->mf.blocks[1])->code, 404);
    assert_int_equal(get_block(fx, &fx->mf.blocks[0])->code, 200); /* the other blocks still match */

    /* the store: anything it holds */
    uint8_t other[100];
    memset(other, 'x', sizeof(other));
    hash_t oh;
    hash_sha256(other, sizeof(other), &oh);
    assert_int_equal(store_put(fx->store, &oh, other, sizeof(other)), 0);
    a = get_block(fx, &oh);
    assert_int_equal(a->code, 200);
    assert_memory_equal(a->body, other, sizeof(other));

    serve_stats_t st;
    serve_stats(fx->s, &st);
    assert_int_equal(st.blocks, 3 + 1 + 1 + 1);
    assert_int_equal(st.bytes, FILE_LEN + BS + BS + sizeof(other));
    assert_true(st.rate > 0 && st.rate <= (double)st.bytes / (METRICS_RATE_SLOTS - 1)); /* over the last seconds */
    free(in);
    free(res);
}

static void serve_have_bitfields(void **state)
{
    fx_t *fx = *state;
    int local, remote;
    char *in = xasprintf("%s/in", fx->dir);
    assert_int_equal(get(fx, "/have/" "0000")->code, 404);
    assert_int_equal(serve_add_job(fx->s, JOB, &fx->m, in, &local), 0);
    answer_t *a = get(fx, "/have/00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    assert_int_equal(a->code, 200);
    assert_int_equal(a->len, 1);
    assert_int_equal((uint8_t)a->body[0], 0xe0); /* three blocks, all held */

    /* a job known from elsewhere: what the store holds, computed once, then kept up to date */
    assert_int_equal(store_put(fx->store, &fx->mf.blocks[1], fx->data + BS, BS), 0);
    assert_int_equal(serve_add_job(fx->s, JOB2, &fx->m, NULL, &remote), 0);
    char path[80];
    snprintf(path, sizeof(path), "/have/%s", JOB2);
    a = get(fx, path);
    assert_int_equal(a->code, 200);
    assert_int_equal((uint8_t)a->body[0], 0x40);
    assert_int_equal(store_put(fx->store, &fx->mf.blocks[2], fx->data + 2 * BS, FILE_LEN - 2 * BS), 0);
    assert_int_equal((uint8_t)get(fx, path)->body[0], 0x40); /* cached: the store is not asked again */
    serve_block_stored(fx->s, &fx->mf.blocks[2]);
    serve_block_stored(fx->s, &fx->mf.blocks[2]); /* twice changes nothing */
    assert_int_equal((uint8_t)get(fx, path)->body[0], 0x60);

    /* gone with its owner */
    serve_remove(fx->s, &remote);
    assert_int_equal(get(fx, path)->code, 404);
    serve_block_stored(fx->s, &fx->mf.blocks[0]); /* nobody listens: no harm */
    free(in);
}

static void serve_close_while_a_result_is_hashed(void **state)
{
    fx_t *fx = *state;
    int owner;
    char *res = xasprintf("%s/res", fx->dir);
    assert_int_equal(serve_add_result(fx->s, &fx->m, res, &owner), 0);
    /* the handler defers the answer to the thread pool, then serve and httpd are closed at once:
     * the item returns to a closed server, its request is freed unanswered */
    fx->close_after = true;
    answer_t *a = get_block(fx, &fx->mf.blocks[0]);
    assert_int_not_equal(a->status, 0); /* no HTTP answer */
    assert_null(fx->s);
    free(res);
}

static void serve_inputs_gone_fall_back_to_the_store(void **state)
{
    fx_t *fx = *state;
    int owner;
    char *gone = xasprintf("%s/nowhere", fx->dir); /* the inputs' files cannot be opened */
    assert_int_equal(serve_add_job(fx->s, JOB, &fx->m, gone, &owner), 0);
    assert_int_equal(get_block(fx, &fx->mf.blocks[0])->code, 404);
    assert_int_equal(store_put(fx->store, &fx->mf.blocks[2], fx->data + 2 * BS, FILE_LEN - 2 * BS), 0);
    answer_t *a = get_block(fx, &fx->mf.blocks[2]);
    assert_int_equal(a->code, 200);
    assert_int_equal(a->len, FILE_LEN - 2 * BS);
    assert_memory_equal(a->body, fx->data + 2 * BS, a->len);
    serve_stats_t st;
    serve_stats(fx->s, &st);
    assert_int_equal(st.blocks, 1);
    assert_int_equal(st.bytes, FILE_LEN - 2 * BS);
    free(gone);
}

/* How many of this process's fds are open on a path ending in suffix. */
static int fds_on(const char *suffix)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        char target[4096];
        ssize_t len = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        size_t sl = strlen(suffix);
        n += (size_t)len >= sl && strcmp(target + len - sl, suffix) == 0;
    }
    closedir(d);
    return n;
}

static void serve_close_while_a_block_is_opened(void **state)
{
    fx_t *fx = *state;
    int owner;
    char *in = xasprintf("%s/in", fx->dir);
    assert_int_equal(serve_add_job(fx->s, JOB, &fx->m, in, &owner), 0);
    /* the input's open runs in the thread pool; serve closes meanwhile (the httpd stays): the
     * answer is 503 and the fd opened for it is closed, not leaked */
    fx->close_serve_only = true;
    fx->close_after = true;
    answer_t *a = get_block(fx, &fx->mf.blocks[0]);
    assert_int_equal(a->status, 0);
    assert_int_equal(a->code, 503);
    assert_null(fx->s);
    while (!fx->serve_closed)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(fds_on("/in/f.bin"), 0);

    /* the same with the httpd closed too: no answer, no fd left */
    assert_int_equal(serve_new(&fx->loop, fx->store, &fx->s), 0);
    assert_int_equal(serve_add_job(fx->s, JOB, &fx->m, in, &owner), 0);
    fx->close_serve_only = false;
    fx->close_after = true;
    fx->serve_closed = false;
    a = get_block(fx, &fx->mf.blocks[1]);
    assert_int_not_equal(a->status, 0);
    while (!fx->serve_closed)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(fds_on("/in/f.bin"), 0);
    free(in);
}

static void serve_checks_arguments(void **state)
{
    fx_t *fx = *state;
    int owner;
    assert_int_equal(serve_add_job(fx->s, "nothex", &fx->m, NULL, &owner), -EINVAL);
    assert_int_equal(serve_add_job(fx->s, JOB, NULL, NULL, &owner), -EINVAL);
    assert_int_equal(serve_add_result(fx->s, &fx->m, NULL, &owner), -EINVAL);
    assert_int_equal(serve_new(NULL, NULL, &(serve_t *){NULL}), -EINVAL);
    serve_remove(fx->s, &owner); /* nothing registered: nothing happens */
    /* an empty file has no blocks and no block array (stdout of a quiet task) */
    manifest_file_t empty = {.path = "empty", .size = 0};
    manifest_t m = {.block_size = BS, .files = &empty, .n_files = 1};
    assert_int_equal(serve_add_result(fx->s, &m, fx->dir, &owner), 0);
    answer_t *a = get(fx, "/have/00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    assert_int_equal(a->code, 404); /* a result is not a job */
    assert_int_equal(serve_add_job(fx->s, JOB, &m, NULL, &owner), 0);
    a = get(fx, "/have/00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    assert_int_equal(a->code, 200);
    assert_int_equal(a->len, 0);
    serve_remove(fx->s, &owner);
}

typedef struct tally {
    void *owner;
    uint64_t bytes;
    unsigned calls;
} tally_t;

static void on_tally(void *owner, uint64_t bytes, void *arg)
{
    tally_t *t = arg;
    t->owner = owner;
    t->bytes += bytes;
    t->calls++;
}

/* The tally counts each block served from a registration, for its owner, and none from the store. */
static void serve_tally_counts_blocks_by_owner(void **state)
{
    fx_t *fx = *state;
    int owner;
    tally_t t = {0};
    char *in = xasprintf("%s/in", fx->dir), *res = xasprintf("%s/res", fx->dir);
    serve_set_tally(fx->s, on_tally, &t);
    assert_int_equal(serve_add_job(fx->s, JOB, &fx->m, in, &owner), 0);
    for (int b = 0; b < 3; b++)
        assert_int_equal(get_block(fx, &fx->mf.blocks[b])->code, 200);
    assert_ptr_equal(t.owner, &owner);
    assert_int_equal(t.calls, 3);
    assert_int_equal(t.bytes, FILE_LEN);
    serve_remove(fx->s, &owner);
    assert_int_equal(serve_add_result(fx->s, &fx->m, res, &owner), 0);
    assert_int_equal(get_block(fx, &fx->mf.blocks[2])->code, 200);
    assert_int_equal(t.bytes, FILE_LEN + (FILE_LEN - 2 * BS));
    serve_remove(fx->s, &owner);
    uint8_t other[100];
    memset(other, 'y', sizeof(other));
    hash_t oh;
    hash_sha256(other, sizeof(other), &oh);
    assert_int_equal(store_put(fx->store, &oh, other, sizeof(other)), 0);
    assert_int_equal(get_block(fx, &oh)->code, 200);
    assert_int_equal(t.calls, 4); /* the store's block has no owner */
    serve_set_tally(fx->s, NULL, NULL);
    free(in);
    free(res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(serve_inputs_results_and_the_store, setup, teardown),
        cmocka_unit_test_setup_teardown(serve_have_bitfields, setup, teardown),
        cmocka_unit_test_setup_teardown(serve_close_while_a_result_is_hashed, setup, teardown),
        cmocka_unit_test_setup_teardown(serve_close_while_a_block_is_opened, setup, teardown),
        cmocka_unit_test_setup_teardown(serve_inputs_gone_fall_back_to_the_store, setup, teardown),
        cmocka_unit_test_setup_teardown(serve_checks_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(serve_tally_counts_blocks_by_owner, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
