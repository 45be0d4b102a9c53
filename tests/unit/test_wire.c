/*
 * test_wire.c: the pure wire codecs (pool/wire.h): round trips, and every way an answer from a
 * peer can be wrong.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/hash.h"
#include "core/manifest.h"
#include "core/xalloc.h"
#include "pool/wire.h"

static int decode(const char *s, uint32_t ntasks, wire_lease_t *l, size_t *dropped, char *why)
{
    return wire_lease_decode(s, strlen(s), ntasks, l, dropped, why, 128);
}

/* GET /v1/id: a key round-trips; anything but an object with "key" of 64 lower-case hex digits is
 * refused (the parser before was a strstr of "key":" and took it from any text holding it). */
static void id_round_trip_and_refusals(void **state)
{
    (void)state;
    key_pub_t k, back;
    for (size_t i = 0; i < sizeof(k.b); i++)
        k.b[i] = (uint8_t)(i * 7 + 3);
    char buf[WIRE_MAX_ID_BODY], why[128];
    int n = wire_id_encode(&k, buf, sizeof(buf));
    assert_int_equal(n, 74);
    assert_int_equal(wire_id_decode(buf, (size_t)n, &back, why, sizeof(why)), 0);
    assert_true(key_pub_equal(&k, &back));
    assert_int_equal(wire_id_encode(&k, buf, 74), -EMSGSIZE); /* no room for the NUL */
    const char *hex = buf + 8; /* {"key":"<hex>"} */
    char t[512];
    snprintf(t, sizeof(t), "{\"other\":1, \"key\" : \"%.64s\"}", hex); /* other members, white space */
    assert_int_equal(wire_id_decode(t, strlen(t), &back, why, sizeof(why)), 0);
    assert_true(key_pub_equal(&k, &back));
    static const char *const bad[] = {
        "", "null", "[]", "\"key\"", "{}", "{\"key\":1}", "{\"key\":null}", "{\"key\":\"00\"}",
        "{\"note\":\"\\\"key\\\":\\\"%.64s\\\"\"}", /* the old parser took a key from inside a string */
        "{\"key\":\"%.64sff\"}", "{\"key\":\"%.63s\"}", "{\"key\":\"%.64s\",\"key\":\"%.64s\"}",
        "{\"key\":\"%.63s\\u0000\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(t, sizeof(t), bad[i], hex, hex);
        why[0] = '\0';
        assert_int_equal(wire_id_decode(t, strlen(t), &back, why, sizeof(why)), -EPROTO);
        assert_true(why[0] != '\0');
    }
    snprintf(t, sizeof(t), "{\"key\":\"%.64s\"}", hex);
    for (char *c = t + 8; *c != '"'; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 'a' + 'A');
    assert_int_equal(wire_id_decode(t, strlen(t), &back, why, sizeof(why)), -EPROTO); /* upper-case */
    memset(t, ' ', sizeof(t));
    snprintf(t + WIRE_MAX_ID_BODY - 70, 80, "{\"key\":\"%.64s\"}", hex);
    assert_int_equal(wire_id_decode(t, strlen(t), &back, why, sizeof(why)), -EMSGSIZE);
}

typedef struct urls {
    char u[8][WIRE_MAX_PEER_URL + 1];
    size_t n;
} urls_t;

static void keep_url(void *arg, const char *url)
{
    urls_t *l = arg;
    assert_true(l->n < 8);
    snprintf(l->u[l->n++], sizeof(l->u[0]), "%s", url);
}

/* DATA/peers: each line a base URL; a line that is not one (control bytes, blanks, not http://,
 * too long) is refused and counted, the rest kept; the text written reads back the same. */
static void peers_file_lines(void **state)
{
    (void)state;
    static const char text[] = "http://127.0.0.1:7650\n\nhttp://a b:1\nftp://x:1\nhttp://\x1b[31m:1\nhttp://c:2\r\n"
                               "http://\nhttp://ok.example:7651/\nhttp://x\x00y:1\nhttp://last:9";
    urls_t l = {0};
    assert_int_equal(wire_peers_parse(text, sizeof(text) - 1, keep_url, &l), 6);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.u[0], "http://127.0.0.1:7650");
    assert_string_equal(l.u[1], "http://ok.example:7651/");
    assert_string_equal(l.u[2], "http://last:9");
    char *urls[3] = {l.u[0], l.u[1], l.u[2]};
    char *out = wire_peers_format(urls, 3);
    assert_string_equal(out, "http://127.0.0.1:7650\nhttp://ok.example:7651/\nhttp://last:9\n");
    urls_t back = {0};
    assert_int_equal(wire_peers_parse(out, strlen(out), keep_url, &back), 0);
    assert_int_equal(back.n, 3);
    free(out);
    char u[WIRE_MAX_PEER_URL + 2];
    memset(u, 'a', sizeof(u));
    memcpy(u, "http://", 7);
    assert_true(wire_peer_url_ok(u, WIRE_MAX_PEER_URL));
    assert_false(wire_peer_url_ok(u, WIRE_MAX_PEER_URL + 1));
    assert_false(wire_peer_url_ok("http://", 7));
}

static void lease_round_trip(void **state)
{
    (void)state;
    wire_lease_t l = {.tasks = {3, 0, 7}, .n = 3, .lease_ms = 30000}, back;
    char buf[256], why[128];
    int n = wire_lease_encode(&l, buf, sizeof(buf));
    assert_true(n > 0);
    assert_string_equal(buf, "{\"tasks\":[3,0,7],\"task\":3,\"lease_ms\":30000}");
    size_t dropped = 9;
    assert_int_equal(wire_lease_decode(buf, (size_t)n, 8, &back, &dropped, why, sizeof(why)), 0);
    assert_int_equal(back.n, 3);
    assert_int_equal(back.tasks[0], 3);
    assert_int_equal(back.tasks[2], 7);
    assert_int_equal(back.lease_ms, 30000);
    assert_int_equal(dropped, 0);
    /* a buffer too small, no task, too many tasks */
    assert_int_equal(wire_lease_encode(&l, buf, 10), -EMSGSIZE);
    l.n = 0;
    assert_int_equal(wire_lease_encode(&l, buf, sizeof(buf)), -EINVAL);
    l.n = WIRE_MAX_LEASE + 1;
    assert_int_equal(wire_lease_encode(&l, buf, sizeof(buf)), -EINVAL);
    /* the largest answer fits the decoder's limit */
    wire_lease_t big = {.n = WIRE_MAX_LEASE, .lease_ms = WIRE_LEASE_MS_MAX};
    for (size_t i = 0; i < WIRE_MAX_LEASE; i++)
        big.tasks[i] = 99990 + (uint32_t)i;
    n = wire_lease_encode(&big, buf, sizeof(buf));
    assert_true(n > 0 && n <= WIRE_MAX_BODY);
    assert_int_equal(wire_lease_decode(buf, (size_t)n, 100006, &back, NULL, why, sizeof(why)), 0);
    assert_int_equal(back.n, WIRE_MAX_LEASE);
}

static void lease_bad_entries_are_dropped(void **state)
{
    (void)state;
    wire_lease_t l;
    size_t dropped;
    char why[128];
    assert_int_equal(decode("{\"tasks\":[1,1,\"2\",-1,8,2.5,null,3],\"lease_ms\":1000}", 8, &l, &dropped, why), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.tasks[0], 1);
    assert_int_equal(l.tasks[1], 3);
    assert_int_equal(dropped, 6);
    assert_int_equal(l.lease_ms, 1000);
    /* lease_ms out of range or missing: the default */
    assert_int_equal(decode("{\"tasks\":[0],\"lease_ms\":5}", 1, &l, NULL, why), 0);
    assert_int_equal(l.lease_ms, WIRE_LEASE_MS_DEFAULT);
    assert_int_equal(decode("{\"tasks\":[0],\"lease_ms\":99999999999}", 1, &l, NULL, why), 0);
    assert_int_equal(l.lease_ms, WIRE_LEASE_MS_DEFAULT);
    assert_int_equal(decode("{\"tasks\":[0]}", 1, &l, NULL, why), 0);
    assert_int_equal(l.lease_ms, WIRE_LEASE_MS_DEFAULT);
}

static void lease_checkpoints_round_trip_and_bad_ones_are_dropped(void **state)
{
    (void)state;
    const char *id = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    wire_lease_t l = {.tasks = {3, 0, 7}, .n = 3, .lease_ms = 30000}, back;
    memcpy(l.ckpt[0], id, 65);
    memcpy(l.ckpt[2], id, 65);
    char buf[WIRE_MAX_BODY], why[128];
    size_t dropped = 9;
    int n = wire_lease_encode(&l, buf, sizeof(buf));
    assert_true(n > 0);
    assert_non_null(strstr(buf, ",\"ckpt\":{\"3\":\"0011"));
    assert_non_null(strstr(buf, "\",\"7\":\"0011"));
    assert_int_equal(wire_lease_decode(buf, (size_t)n, 8, &back, &dropped, why, sizeof(why)), 0);
    assert_int_equal(dropped, 0);
    assert_int_equal(back.n, 3);
    assert_string_equal(back.ckpt[0], id);
    assert_string_equal(back.ckpt[1], "");
    assert_string_equal(back.ckpt[2], id);
    /* cut short anywhere in the ckpt part: -EMSGSIZE, never a truncated answer */
    for (int cap = 1; cap <= n; cap++)
        assert_int_equal(wire_lease_encode(&l, buf, (size_t)cap), -EMSGSIZE);
    l.ckpt[1][0] = 'X'; /* not hex: refused */
    assert_int_equal(wire_lease_encode(&l, buf, sizeof(buf)), -EINVAL);
    /* a task not leased, a non-canonical index, an id that is not 64 lower-case hex digits: dropped */
    char in[1024];
    snprintf(in, sizeof(in), "{\"tasks\":[1,2],\"ckpt\":{\"5\":\"%s\",\"01\":\"%s\",\"2\":\"%.63s\","
             "\"1\":7}}", id, id, id);
    assert_int_equal(decode(in, 8, &back, &dropped, why), 0);
    assert_int_equal(dropped, 4);
    assert_string_equal(back.ckpt[0], "");
    assert_string_equal(back.ckpt[1], "");
    assert_int_equal(decode("{\"tasks\":[1],\"ckpt\":[1]}", 8, &back, &dropped, why), 0);
    assert_int_equal(dropped, 1);
    snprintf(in, sizeof(in), "{\"tasks\":[1,2],\"ckpt\":{\"2\":\"%s\"}}", id);
    assert_int_equal(decode(in, 8, &back, &dropped, why), 0);
    assert_int_equal(dropped, 0);
    assert_string_equal(back.ckpt[1], id);
}

static void lease_bad_answers_are_refused(void **state)
{
    (void)state;
    wire_lease_t l;
    char why[128];
    assert_int_equal(decode("", 8, &l, NULL, why), -EPROTO);
    assert_int_equal(decode("[1,2]", 8, &l, NULL, why), -EPROTO);
    assert_string_equal(why, "lease answer is not a JSON object");
    assert_int_equal(decode("{\"task\":1}", 8, &l, NULL, why), -EPROTO);
    assert_string_equal(why, "lease answer has no \"tasks\" array");
    assert_int_equal(decode("{\"tasks\":[]}", 8, &l, NULL, why), -EPROTO);
    assert_int_equal(decode("{\"tasks\":[9,10]}", 8, &l, NULL, why), -EPROTO);
    assert_string_equal(why, "lease answer has no usable task");
    assert_int_equal(l.n, 0);
    assert_int_equal(decode("{\"tasks\":[0],\"tasks\":[1]}", 8, &l, NULL, why), -EPROTO); /* duplicate key */
    char many[512] = "{\"tasks\":[0";
    for (int i = 1; i <= WIRE_MAX_LEASE; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), ",%d", i);
    strcat(many, "]}");
    assert_int_equal(decode(many, 100, &l, NULL, why), -EMSGSIZE);
    char huge[WIRE_MAX_BODY + 2];
    memset(huge, ' ', sizeof(huge));
    huge[WIRE_MAX_BODY + 1] = '\0';
    assert_int_equal(wire_lease_decode(huge, WIRE_MAX_BODY + 1, 8, &l, NULL, why, sizeof(why)), -EMSGSIZE);
}

static void done_round_trip_and_refusals(void **state)
{
    (void)state;
    char buf[320], why[128], q[400];
    wire_done_t d = {.exit_code = 3, .elapsed_ms = 1234}, back;
    memset(d.rid, 'a', 64);
    memset(d.rsig, '0', 128);
    int n = wire_done_encode(&d, buf, sizeof(buf));
    assert_int_equal(strncmp(buf, "&exit=3&ms=1234&rid=aaaa", 24), 0);
    assert_int_equal(n, (int)strlen("&exit=3&ms=1234&rid=&rsig=") + 64 + 128);
    assert_int_equal(wire_done_decode(buf, (size_t)n, &back, why, sizeof(why)), 0);
    assert_int_equal(back.exit_code, 3);
    assert_int_equal(back.elapsed_ms, 1234);
    assert_string_equal(back.rid, d.rid);
    assert_string_equal(back.rsig, d.rsig);
    snprintf(q, sizeof(q), "peer=http://h:1&ms=7&exit=-1&man=abc&rsig=%s&rid=%s", d.rsig, d.rid);
    assert_int_equal(wire_done_decode(q, strlen(q), &back, why, sizeof(why)), 0);
    assert_int_equal(back.exit_code, -1);
    assert_int_equal(back.elapsed_ms, 7);
    const char *bad[] = {"exit=0", "ms=1", "exit=256&ms=1", "exit=-2&ms=1", "exit=1x&ms=1", "exit=&ms=1",
                         "exit=0&ms=-1", "exit=0&ms=99999999999999999999", "exit=0&ms=9999999999999999999",
                         "exit=+1&ms=1", "xexit=0&ms=1", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(q, sizeof(q), "%s&rid=%s&rsig=%s", bad[i], d.rid, d.rsig);
        assert_int_equal(wire_done_decode(q, strlen(q), &back, why, sizeof(why)), -EPROTO);
    }
    /* the result id and its signature are required, and only as lower-case hex of their length */
    const char *q2 = "exit=0&ms=1";
    assert_int_equal(wire_done_decode(q2, strlen(q2), &back, why, sizeof(why)), -EPROTO);
    assert_string_equal(why, "done report: rid= is not a result id (64 hex digits)");
    snprintf(q, sizeof(q), "exit=0&ms=1&rid=%s", d.rid);
    assert_int_equal(wire_done_decode(q, strlen(q), &back, why, sizeof(why)), -EPROTO);
    snprintf(q, sizeof(q), "exit=0&ms=1&rid=%.63s&rsig=%s", d.rid, d.rsig);
    assert_int_equal(wire_done_decode(q, strlen(q), &back, why, sizeof(why)), -EPROTO);
    snprintf(q, sizeof(q), "exit=0&ms=1&rid=%.63sA&rsig=%s", d.rid, d.rsig);
    assert_int_equal(wire_done_decode(q, strlen(q), &back, why, sizeof(why)), -EPROTO);
    snprintf(q, sizeof(q), "exit=0&ms=1&rid=%s&rsig=%s0", d.rid, d.rsig);
    assert_int_equal(wire_done_decode(q, strlen(q), &back, why, sizeof(why)), -EPROTO);
    d.exit_code = 300;
    assert_int_equal(wire_done_encode(&d, buf, sizeof(buf)), -EINVAL);
    d.exit_code = 0;
    assert_int_equal(wire_done_encode(&d, buf, 5), -EMSGSIZE);
    d.rid[3] = 'X';
    assert_int_equal(wire_done_encode(&d, buf, sizeof(buf)), -EINVAL);
}

/* ---- the jobs listing ---- */

static const char ID_A[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char ID_B[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static wire_job_t job_origin(void)
{
    wire_job_t j;
    memset(&j, 0, sizeof(j));
    memcpy(j.id, ID_A, sizeof(j.id));
    strcpy(j.name, "render");
    j.state = WIRE_STATE_RUNNING;
    j.tasks = 10;
    j.origin = true;
    j.counts = (coord_counts_t){.total = 10, .waiting = 4, .running = 2, .succeeded = 3, .failed = 1};
    j.results = 4;
    j.epoch = 1700000000123ull;
    return j;
}

static void assert_job_equal(const wire_job_t *a, const wire_job_t *b)
{
    assert_string_equal(a->id, b->id);
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->state, b->state);
    assert_int_equal(a->tasks, b->tasks);
    assert_int_equal(a->origin, b->origin);
    assert_memory_equal(&a->counts, &b->counts, sizeof(a->counts));
    assert_int_equal(a->results, b->results);
    assert_int_equal(a->epoch, b->epoch);
    assert_int_equal(a->removed, b->removed);
    assert_string_equal(a->sig, b->sig);
}

static int jobs_decode(const char *s, wire_job_t **out, size_t *n, size_t *dropped, bool *complete, char *why)
{
    return wire_jobs_decode(s, strlen(s), out, n, dropped, complete, why, 128);
}

/* A sig must be 128 lowercase hex digits: any other is an entry dropped, alone. */
static void jobs_bad_sig_is_dropped(void **state)
{
    (void)state;
    char sig[WIRE_SIG_HEX_LEN + 1];
    memset(sig, 'a', WIRE_SIG_HEX_LEN);
    sig[WIRE_SIG_HEX_LEN] = '\0';
    const char *bad[] = {"\"abc\"", "\"ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB\"",
                         "42", "null"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[1024];
        snprintf(body, sizeof(body),
                 "[{\"id\":\"%s\",\"name\":\"a\",\"state\":\"running\",\"tasks\":1,\"origin\":false,\"sig\":%s},"
                 "{\"id\":\"%s\",\"name\":\"b\",\"state\":\"running\",\"tasks\":1,\"origin\":false,\"sig\":\"%s\"}]",
                 ID_A, bad[i], ID_B, sig);
        wire_job_t *out = NULL;
        size_t n = 0, dropped = 0;
        bool complete = true;
        char why[128];
        assert_int_equal(wire_jobs_decode(body, strlen(body), &out, &n, &dropped, &complete, why, sizeof(why)), 0);
        assert_int_equal(n, 1);
        assert_int_equal(dropped, 1);
        assert_string_equal(out[0].id, ID_B);
        assert_string_equal(out[0].sig, sig);
        assert_false(complete);
        free(out);
    }
}

static void jobs_round_trip(void **state)
{
    (void)state;
    wire_job_t in[2] = {job_origin(), job_origin()};
    memcpy(in[1].id, ID_B, sizeof(in[1].id));
    strcpy(in[1].name, "ünïcode name@01234567");
    in[1].state = WIRE_STATE_CANCELLED;
    in[1].origin = false;
    in[1].counts = (coord_counts_t){0};
    in[1].results = 0;
    in[1].epoch = 0;
    memset(in[1].sig, 'e', WIRE_SIG_HEX_LEN); /* a signature travels with the entry, any entry */
    char *body = NULL;
    size_t len = 0, taken = 0, n = 9, dropped = 9;
    bool complete = false;
    char why[128];
    assert_int_equal(wire_jobs_encode(in, 1, &body, &len, &taken), 0);
    assert_int_equal(taken, 1);
    assert_string_equal(body, "[{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"name\":\"render\","
                              "\"state\":\"running\",\"tasks\":10,\"origin\":true,\"counts\":{\"total\":10,\"waiting\":4,"
                              "\"running\":2,\"succeeded\":3,\"failed\":1,\"cancelled\":0},\"results\":4,"
                              "\"epoch\":1700000000123}]");
    assert_int_equal(len, strlen(body));
    free(body);
    in[0].removed = true; /* written only when true, only in an origin entry */
    assert_int_equal(wire_jobs_encode(in, 1, &body, &len, &taken), 0);
    assert_non_null(strstr(body, ",\"epoch\":1700000000123,\"removed\":true}]"));
    free(body);
    assert_int_equal(wire_jobs_encode(in, 2, &body, &len, &taken), 0);
    assert_int_equal(taken, 2);
    wire_job_t *out = NULL;
    assert_int_equal(wire_jobs_decode(body, len, &out, &n, &dropped, &complete, why, sizeof(why)), 0);
    assert_int_equal(n, 2);
    assert_int_equal(dropped, 0);
    assert_true(complete);
    assert_job_equal(&out[0], &in[0]);
    assert_job_equal(&out[1], &in[1]);
    free(out);
    free(body);
    /* an empty listing */
    assert_int_equal(wire_jobs_encode(NULL, 0, &body, &len, NULL), 0);
    assert_string_equal(body, "[]");
    assert_int_equal(wire_jobs_decode(body, len, &out, &n, &dropped, &complete, why, sizeof(why)), 0);
    assert_int_equal(n, 0);
    assert_null(out);
    assert_true(complete);
    free(body);
    /* a non-origin entry's counts are neither written nor read */
    assert_int_equal(jobs_decode("[{\"id\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
                                 "\"name\":\"x\",\"state\":\"done\",\"tasks\":3,\"origin\":false,\"counts\":7,"
                                 "\"extra\":[1]}]",
                                 &out, &n, &dropped, &complete, why),
                     0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].counts.total, 0);
    free(out);
}

static void jobs_bad_entries_are_dropped(void **state)
{
    (void)state;
    char good[512];
    snprintf(good, sizeof(good),
             "{\"id\":\"%s\",\"name\":\"ok\",\"state\":\"running\",\"tasks\":4,\"origin\":true,\"counts\":{\"total\":4,"
             "\"waiting\":1,\"running\":1,\"succeeded\":1,\"failed\":1,\"cancelled\":0},\"results\":2,\"epoch\":5}",
             ID_A);
    char longname[300];
    memset(longname, 'n', 256);
    longname[256] = '\0';
#define HEAD "\"id\":\"" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" "\""
#define NONO ",\"state\":\"running\",\"tasks\":4,\"origin\":false"
#define ORIG ",\"name\":\"o\",\"state\":\"running\",\"tasks\":4,\"origin\":true"
#define CNT(t, w, r, s, f, c) ",\"counts\":{\"total\":" #t ",\"waiting\":" #w ",\"running\":" #r ",\"succeeded\":" #s \
                              ",\"failed\":" #f ",\"cancelled\":" #c "}"
    char nametoo[512];
    snprintf(nametoo, sizeof(nametoo), "{" HEAD ",\"name\":\"%s\"" NONO "}", longname);
    const char *bad[] = {
        "7",
        "[]",
        "{\"name\":\"a\"" NONO "}",
        "{\"id\":\"abc\",\"name\":\"a\"" NONO "}",
        "{\"id\":\"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\",\"name\":\"a\"" NONO "}",
        "{\"id\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg\",\"name\":\"a\"" NONO "}",
        "{\"id\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\\u0000\",\"name\":\"a\"" NONO "}",
        "{\"id\":7,\"name\":\"a\"" NONO "}",
        "{" HEAD NONO "}",
        "{" HEAD ",\"name\":\"\"" NONO "}",
        "{" HEAD ",\"name\":\".\"" NONO "}",
        "{" HEAD ",\"name\":\"..\"" NONO "}",
        "{" HEAD ",\"name\":\"a/b\"" NONO "}",
        "{" HEAD ",\"name\":\"a\\u0000b\"" NONO "}",
        "{" HEAD ",\"name\":3" NONO "}",
        nametoo,
        "{" HEAD ",\"name\":\"a\",\"state\":\"staging\",\"tasks\":4,\"origin\":false}",
        "{" HEAD ",\"name\":\"a\",\"state\":\"sleeping\",\"tasks\":4,\"origin\":false}",
        "{" HEAD ",\"name\":\"a\",\"state\":\"running\\u0000\",\"tasks\":4,\"origin\":false}",
        "{" HEAD ",\"name\":\"a\",\"state\":1,\"tasks\":4,\"origin\":false}",
        "{" HEAD ",\"name\":\"a\",\"tasks\":4,\"origin\":false}",
        "{" HEAD ",\"name\":\"a\",\"state\":\"running\",\"tasks\":0,\"origin\":false}",
        "{" HEAD ",\"name\":\"a\",\"state\":\"running\",\"tasks\":100001,\"origin\":false}",
        "{" HEAD ",\"name\":\"a\",\"state\":\"running\",\"tasks\":\"4\",\"origin\":false}",
        "{" HEAD ",\"name\":\"a\",\"state\":\"running\",\"tasks\":4.0,\"origin\":false}",
        "{" HEAD ",\"name\":\"a\",\"state\":\"running\",\"tasks\":4}",
        "{" HEAD ",\"name\":\"a\",\"state\":\"running\",\"tasks\":4,\"origin\":1}",
        "{" HEAD ORIG ",\"results\":0,\"epoch\":1}",
        "{" HEAD ORIG ",\"counts\":[],\"results\":0,\"epoch\":1}",
        "{" HEAD ORIG ",\"counts\":{\"total\":4},\"results\":0,\"epoch\":1}",
        "{" HEAD ORIG CNT(4, -1, 0, 0, 0, 0) ",\"results\":0,\"epoch\":1}",
        "{" HEAD ORIG CNT(5, 0, 0, 0, 0, 0) ",\"results\":0,\"epoch\":1}",
        "{" HEAD ORIG CNT(3, 0, 0, 0, 0, 0) ",\"results\":0,\"epoch\":1}",
        "{" HEAD ORIG CNT(4, 1, 1, 1, 1, 1) ",\"results\":0,\"epoch\":1}",
        "{" HEAD ORIG CNT(4, 0, 0, 0, 0, 100001) ",\"results\":0,\"epoch\":1}",
        "{" HEAD ORIG CNT(4, 0, 0, 0, 0, 0) ",\"epoch\":1}",
        "{" HEAD ORIG CNT(4, 0, 0, 0, 0, 0) ",\"results\":5,\"epoch\":1}",
        "{" HEAD ORIG CNT(4, 0, 0, 0, 0, 0) ",\"results\":-1,\"epoch\":1}",
        "{" HEAD ORIG CNT(4, 0, 0, 0, 0, 0) ",\"results\":0}",
        "{" HEAD ORIG CNT(4, 0, 0, 0, 0, 0) ",\"results\":0,\"epoch\":-1}",
        "{" HEAD ORIG CNT(4, 0, 0, 0, 0, 0) ",\"results\":0,\"epoch\":\"1\"}",
        "{" HEAD ORIG CNT(4, 0, 0, 0, 0, 0) ",\"results\":0,\"epoch\":1,\"removed\":1}",
        "{" HEAD ORIG CNT(4, 0, 0, 0, 0, 0) ",\"results\":0,\"epoch\":1,\"removed\":\"yes\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[2048], why[128] = "";
        snprintf(body, sizeof(body), "[%s,%s,%s]", good, bad[i], good);
        wire_job_t *out = NULL;
        size_t n = 0, dropped = 0;
        bool complete = true;
        if (jobs_decode(body, &out, &n, &dropped, &complete, why) != 0 || n != 2 || dropped != 1 || complete)
            fail_msg("bad entry %zu (%s) was not dropped alone", i, bad[i]);
        assert_true(strncmp(why, "jobs entry 1: ", 14) == 0);
        assert_string_equal(out[0].name, "ok");
        assert_string_equal(out[1].name, "ok");
        free(out);
    }
    /* the checks of the codec accept what is on the edge */
    const char *edge[] = {
        "{" HEAD ",\"name\":\".hidden\"" NONO "}",
        "{" HEAD ",\"name\":\"tab\\tname\"" NONO "}",
        "{" HEAD ",\"name\":\"a\",\"state\":\"publishing\",\"tasks\":100000,\"origin\":false}",
        "{" HEAD ORIG CNT(4, 0, 0, 0, 0, 4) ",\"results\":4,\"epoch\":9223372036854775807}",
        "{" HEAD ORIG CNT(4, 0, 0, 0, 0, 0) ",\"results\":0,\"epoch\":0}",
    };
    for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++) {
        char body[1024], why[128] = "";
        snprintf(body, sizeof(body), "[%s]", edge[i]);
        wire_job_t *out = NULL;
        size_t n = 0, dropped = 0;
        if (jobs_decode(body, &out, &n, &dropped, NULL, why) != 0 || n != 1)
            fail_msg("edge entry %zu (%s) was dropped: %s", i, edge[i], why);
        free(out);
    }
#undef HEAD
#undef NONO
#undef ORIG
#undef CNT
}

static void jobs_bad_answers_are_refused(void **state)
{
    (void)state;
    wire_job_t *out = (wire_job_t *)1;
    size_t n = 9;
    char why[128];
    assert_int_equal(jobs_decode("", &out, &n, NULL, NULL, why), -EPROTO);
    assert_null(out);
    assert_int_equal(jobs_decode("{\"id\":1}", &out, &n, NULL, NULL, why), -EPROTO);
    assert_string_equal(why, "jobs answer is not a JSON array");
    assert_int_equal(jobs_decode("[{\"a\":1,\"a\":2}]", &out, &n, NULL, NULL, why), -EPROTO); /* repeated key */
    assert_int_equal(jobs_decode("[1,", &out, &n, NULL, NULL, why), -EPROTO);
    /* more entries than WIRE_MAX_JOBS */
    size_t cap = 2 * (WIRE_MAX_JOBS + 1) + 2;
    char *many = malloc(cap);
    size_t off = 0;
    many[off++] = '[';
    for (size_t i = 0; i <= WIRE_MAX_JOBS; i++) {
        many[off++] = '0';
        many[off++] = ',';
    }
    many[off - 1] = ']';
    assert_int_equal(wire_jobs_decode(many, off, &out, &n, NULL, NULL, why, sizeof(why)), -EMSGSIZE);
    /* exactly WIRE_MAX_JOBS: decoded (all dropped), but not complete */
    many[off - 3] = ']';
    size_t dropped = 0;
    bool complete = true;
    assert_int_equal(wire_jobs_decode(many, off - 2, &out, &n, &dropped, &complete, why, sizeof(why)), 0);
    assert_int_equal(n, 0);
    assert_int_equal(dropped, WIRE_MAX_JOBS);
    assert_false(complete);
    assert_string_equal(why, "jobs entry 0: not an object");
    free(many);
    /* over the byte limit */
    char *huge = malloc(WIRE_MAX_JOBS_BODY + 1);
    memset(huge, ' ', WIRE_MAX_JOBS_BODY + 1);
    huge[0] = '[';
    huge[WIRE_MAX_JOBS_BODY] = ']';
    assert_int_equal(wire_jobs_decode(huge, WIRE_MAX_JOBS_BODY + 1, &out, &n, NULL, NULL, why, sizeof(why)), -EMSGSIZE);
    /* at the limit it is read, but near the limit it is not complete */
    assert_int_equal(wire_jobs_decode(huge + 1, WIRE_MAX_JOBS_BODY, &out, &n, NULL, &complete, why, sizeof(why)),
                     -EPROTO);
    huge[WIRE_MAX_JOBS_BODY - 1] = ']';
    assert_int_equal(wire_jobs_decode(huge, WIRE_MAX_JOBS_BODY, &out, &n, NULL, &complete, why, sizeof(why)), 0);
    assert_false(complete);
    free(huge);
}

static void jobs_encoder_limits(void **state)
{
    (void)state;
    char *body = NULL;
    size_t len = 0, taken = 0;
    wire_job_t j = job_origin();
    /* every field the check refuses */
    wire_job_t bad[16];
    for (size_t i = 0; i < 16; i++)
        bad[i] = j;
    bad[0].id[3] = 'A';
    bad[1].id[63] = '\0';
    bad[2].name[0] = '\0';
    strcpy(bad[3].name, "..");
    strcpy(bad[4].name, "a/b");
    strcpy(bad[5].name, "\xff\xfe");
    bad[6].state = 0;
    bad[7].state = WIRE_STATE_CANCELLED + 1;
    bad[8].tasks = 0;
    bad[9].tasks = JOBDESC_MAX_TASKS + 1;
    bad[10].counts.total = 9;
    bad[11].counts.cancelled = 1;
    bad[12].results = 11;
    bad[13].epoch = (uint64_t)INT64_MAX + 1;
    memset(bad[14].name, 'x', sizeof(bad[14].name)); /* no NUL */
    bad[15] = j;
    for (size_t i = 0; i < 15; i++) {
        char why[128] = "";
        assert_int_equal(wire_job_check(&bad[i], why, sizeof(why)), -EINVAL);
        assert_true(why[0] != '\0');
        wire_job_t two[2] = {j, bad[i]};
        body = (char *)1;
        if (wire_jobs_encode(two, 2, &body, &len, &taken) != -EINVAL || body != NULL || taken != 0)
            fail_msg("bad job %zu was encoded", i);
    }
    /* a non-origin entry's counts are not checked (they are not written) */
    bad[15].origin = false;
    bad[15].counts.total = 99;
    assert_int_equal(wire_job_check(&bad[15], NULL, 0), 0);
    /* the widest entry is within WIRE_MAX_JOB_ENTRY */
    wire_job_t w = j;
    memset(w.name, '\x01', WIRE_MAX_JOB_NAME);
    w.name[WIRE_MAX_JOB_NAME] = '\0';
    w.state = WIRE_STATE_PUBLISHING;
    w.tasks = JOBDESC_MAX_TASKS;
    w.counts = (coord_counts_t){JOBDESC_MAX_TASKS, JOBDESC_MAX_TASKS, 0, 0, 0, 0};
    w.results = JOBDESC_MAX_TASKS;
    w.epoch = INT64_MAX;
    memset(w.sig, 'f', WIRE_SIG_HEX_LEN);
    assert_int_equal(wire_jobs_encode(&w, 1, &body, &len, &taken), 0);
    assert_true(len - 2 <= WIRE_MAX_JOB_ENTRY);
    assert_true(len - 2 > WIRE_MAX_JOB_ENTRY - 300); /* and the bound is not loose */
    free(body);
    /* more entries than fit in WIRE_MAX_JOBS_BODY: the encoder stops, the answer is not complete */
    wire_job_t *many = malloc((WIRE_MAX_JOBS + 5) * sizeof(*many));
    for (size_t i = 0; i < WIRE_MAX_JOBS + 5; i++)
        many[i] = w;
    assert_int_equal(wire_jobs_encode(many, WIRE_MAX_JOBS + 5, &body, &len, &taken), 0);
    assert_true(taken > 0 && taken < WIRE_MAX_JOBS);
    assert_true(len <= WIRE_MAX_JOBS_BODY && len + WIRE_MAX_JOB_ENTRY > WIRE_MAX_JOBS_BODY);
    wire_job_t *out = NULL;
    size_t n = 0, dropped = 0;
    bool complete = true;
    char why[128];
    assert_int_equal(wire_jobs_decode(body, len, &out, &n, &dropped, &complete, why, sizeof(why)), 0);
    assert_int_equal(n, taken);
    assert_false(complete);
    free(out);
    free(body);
    /* more than WIRE_MAX_JOBS small entries: WIRE_MAX_JOBS go in, not complete */
    for (size_t i = 0; i < WIRE_MAX_JOBS + 5; i++)
        many[i] = j;
    assert_int_equal(wire_jobs_encode(many, WIRE_MAX_JOBS + 5, &body, &len, &taken), 0);
    assert_int_equal(taken, WIRE_MAX_JOBS);
    assert_int_equal(wire_jobs_decode(body, len, &out, &n, &dropped, &complete, why, sizeof(why)), 0);
    assert_int_equal(n, WIRE_MAX_JOBS);
    assert_false(complete);
    free(out);
    free(body);
    free(many);
}

/* ---- the results list ---- */

typedef struct rfix {
    char text[3][64];
    wire_result_t e[3];
    wire_results_t r;
} rfix_t;

static void set_id(wire_result_t *e)
{
    hash_t h;
    manifest_id(e->manifest, e->manifest_len, &h);
    hash_to_hex(&h, e->id);
    memset(e->sig, 'c', WIRE_SIG_HEX_LEN); /* well-formed: the codec checks its form, not what it signs */
    e->sig[WIRE_SIG_HEX_LEN] = '\0';
}

static void rfix_init(rfix_t *f)
{
    memset(f, 0, sizeof(*f));
    for (int i = 0; i < 3; i++) {
        snprintf(f->text[i], sizeof(f->text[i]), "{\"files\":[],\"name\":\"r.%d\",\"q\":\"\\\"\"}", i);
        f->e[i].task = (uint32_t)(7 - i);
        f->e[i].exit_code = i - 1;
        f->e[i].ok = i == 1;
        f->e[i].manifest = f->text[i];
        f->e[i].manifest_len = strlen(f->text[i]);
        set_id(&f->e[i]);
    }
    memset(f->e[1].worker, 'e', WIRE_HEX_LEN); /* one entry names its worker, the others do not */
    memcpy(f->r.job, ID_B, sizeof(f->r.job));
    f->r.state = WIRE_STATE_RUNNING;
    f->r.epoch = 1700000000123ull;
    f->r.after = 2;
    f->r.done = 5;
    f->r.results = f->e;
    f->r.n = 3;
}

static void assert_results_equal(const wire_results_t *a, const wire_results_t *b)
{
    assert_string_equal(a->job, b->job);
    assert_int_equal(a->state, b->state);
    assert_int_equal(a->epoch, b->epoch);
    assert_int_equal(a->after, b->after);
    assert_int_equal(a->done, b->done);
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_int_equal(a->results[i].task, b->results[i].task);
        assert_int_equal(a->results[i].exit_code, b->results[i].exit_code);
        assert_int_equal(a->results[i].ok, b->results[i].ok);
        assert_string_equal(a->results[i].id, b->results[i].id);
        assert_string_equal(a->results[i].worker, b->results[i].worker);
        assert_string_equal(a->results[i].sig, b->results[i].sig);
        assert_int_equal(a->results[i].manifest_len, b->results[i].manifest_len);
        assert_memory_equal(a->results[i].manifest, b->results[i].manifest, a->results[i].manifest_len);
    }
}

static void results_round_trip(void **state)
{
    (void)state;
    rfix_t f;
    rfix_init(&f);
    char *body = NULL, why[128];
    size_t len = 0, taken = 0, dropped = 9;
    assert_int_equal(wire_results_encode(&f.r, 8, &body, &len, &taken), 0);
    assert_int_equal(taken, 3);
    assert_true(strncmp(body, "{\"job\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
                              "\"state\":\"running\",\"epoch\":1700000000123,\"after\":2,\"done\":5,\"results\":[{\"task\":7,"
                              "\"exit\":-1,\"ok\":false,\"id\":\"",
                        140) == 0);
    wire_results_t back;
    assert_int_equal(wire_results_decode(body, len, 8, &back, &dropped, why, sizeof(why)), 0);
    assert_int_equal(dropped, 0);
    assert_results_equal(&back, &f.r);
    assert_int_equal(back.results[2].manifest[back.results[2].manifest_len], '\0');
    wire_results_release(&back);
    assert_null(back.results);
    free(body);
    /* no entries (after == done) */
    f.r.n = 0;
    f.r.after = 5;
    assert_int_equal(wire_results_encode(&f.r, 8, &body, &len, &taken), 0);
    assert_int_equal(taken, 0);
    assert_int_equal(wire_results_decode(body, len, 8, &back, &dropped, why, sizeof(why)), 0);
    assert_results_equal(&back, &f.r);
    wire_results_release(&back);
    free(body);
}

static void results_bad_entries_are_dropped(void **state)
{
    (void)state;
    rfix_t f;
    rfix_init(&f);
    const char *m = "{plain manifest text}"; /* needs no escaping in the bodies below */
    wire_result_t me = {.manifest = m, .manifest_len = strlen(m)};
    set_id(&me);
    const char *id = me.id;
    /* a manifest one byte over WIRE_MAX_RESULT_MANIFEST, with its right id */
    size_t over = WIRE_MAX_RESULT_MANIFEST + 1;
    char *overm = malloc(over + 1);
    memset(overm, 'a', over);
    overm[over] = '\0';
    wire_result_t oe = {.manifest = overm, .manifest_len = over};
    set_id(&oe);
    char *bad[32];
    size_t nb = 0;
#define E(...) bad[nb++] = xasprintf(__VA_ARGS__)
    E("7");
    E("{\"exit\":0,\"ok\":true,\"id\":\"%s\",\"manifest\":\"%s\"}", id, "x");
    E("{\"task\":-1,\"exit\":0,\"ok\":true,\"id\":\"%s\",\"manifest\":\"%s\"}", id, m);
    E("{\"task\":8,\"exit\":0,\"ok\":true,\"id\":\"%s\",\"manifest\":\"%s\"}", id, m);
    E("{\"task\":\"1\",\"exit\":0,\"ok\":true,\"id\":\"%s\",\"manifest\":\"%s\"}", id, m);
    E("{\"task\":1,\"ok\":true,\"id\":\"%s\",\"manifest\":\"%s\"}", id, m);
    E("{\"task\":1,\"exit\":-2,\"ok\":true,\"id\":\"%s\",\"manifest\":\"%s\"}", id, m);
    E("{\"task\":1,\"exit\":256,\"ok\":true,\"id\":\"%s\",\"manifest\":\"%s\"}", id, m);
    E("{\"task\":1,\"exit\":null,\"ok\":true,\"id\":\"%s\",\"manifest\":\"%s\"}", id, m);
    E("{\"task\":1,\"exit\":0,\"id\":\"%s\",\"manifest\":\"%s\"}", id, m);
    E("{\"task\":1,\"exit\":0,\"ok\":1,\"id\":\"%s\",\"manifest\":\"%s\"}", id, m);
    E("{\"task\":1,\"exit\":0,\"ok\":true,\"manifest\":\"%s\"}", m);
    E("{\"task\":1,\"exit\":0,\"ok\":true,\"id\":\"%.63s\",\"manifest\":\"%s\"}", id, m);
    E("{\"task\":1,\"exit\":0,\"ok\":true,\"id\":\"%.63sG\",\"manifest\":\"%s\"}", id, m);
    E("{\"task\":1,\"exit\":0,\"ok\":true,\"id\":\"%s\"}", id);
    E("{\"task\":1,\"exit\":0,\"ok\":true,\"id\":\"%s\",\"manifest\":\"\"}", id);
    E("{\"task\":1,\"exit\":0,\"ok\":true,\"id\":\"%s\",\"manifest\":7}", id);
    E("{\"task\":1,\"exit\":0,\"ok\":true,\"id\":\"%s\",\"manifest\":\"%s\\u0000\"}", id, m);
    E("{\"task\":1,\"exit\":0,\"ok\":true,\"id\":\"%s\",\"manifest\":\"%s\\n\"}", id, m);
    E("{\"task\":1,\"exit\":0,\"ok\":true,\"id\":\"%s\",\"manifest\":\"%s \"}", id, m); /* not its hash */
    E("{\"task\":1,\"exit\":0,\"ok\":true,\"id\":\"%s\",\"manifest\":\"%s\"}", oe.id, overm);
    E("{\"task\":7,\"exit\":0,\"ok\":true,\"id\":\"%s\",\"manifest\":\"%s\"}", id, m); /* task 7 came first */
    /* the submitter's signature (and the worker, if named) must be well-formed */
    E("{\"task\":1,\"exit\":0,\"ok\":true,\"id\":\"%s\",\"manifest\":\"%s\",\"nosig\":1}", id, m);
    E("{\"task\":1,\"exit\":0,\"ok\":true,\"id\":\"%s\",\"manifest\":\"%s\",\"sig\":\"abc\"}", id, m);
    E("{\"task\":1,\"exit\":0,\"ok\":true,\"id\":\"%s\",\"manifest\":\"%s\",\"worker\":\"xyz\"}", id, m);
    E("{\"task\":1,\"exit\":0,\"ok\":true,\"id\":\"%s\",\"manifest\":\"%s\",\"worker\":7}", id, m);
#undef E
    /* every entry above but the last four carries a good signature, so it is refused for its own fault */
    for (size_t i = 0; i + 4 < nb; i++) {
        if (bad[i][0] != '{')
            continue;
        char *withsig = xasprintf("{\"sig\":\"%0128d\",%s", 0, bad[i] + 1);
        free(bad[i]);
        bad[i] = withsig;
    }
    for (size_t i = nb - 2; i < nb; i++) { /* the worker ones: with a good signature too */
        char *withsig = xasprintf("{\"sig\":\"%0128d\",%s", 0, bad[i] + 1);
        free(bad[i]);
        bad[i] = withsig;
    }
    free(overm);
    for (size_t i = 0; i < nb; i++) {
        /* the three fixture entries (tasks 7, 6, 5) around the bad one */
        char *body = NULL, why[128] = "";
        size_t len = 0, dropped = 0;
        f.r.n = 3;
        f.r.done = 7;
        assert_int_equal(wire_results_encode(&f.r, 8, &body, &len, NULL), 0);
        char *pos = strstr(body, "},{") + 2; /* after the first entry */
        char *withbad = xasprintf("%.*s%s,%s", (int)(pos - body), body, bad[i], pos);
        wire_results_t back;
        int rc = wire_results_decode(withbad, strlen(withbad), 8, &back, &dropped, why, sizeof(why));
        if (rc != 0 || back.n != 3 || dropped != 1)
            fail_msg("bad result entry %zu was not dropped alone (rc %d, n %zu, dropped %zu): %.200s", i, rc,
                     back.n, dropped, bad[i]);
        assert_true(strncmp(why, "results entry 1: ", 17) == 0);
        assert_results_equal(&back, &f.r); /* the three good ones, in order */
        wire_results_release(&back);
        free(withbad);
        free(body);
        free(bad[i]);
    }
}

static void results_bad_heads_are_refused(void **state)
{
    (void)state;
#define J "\"job\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\""
    const char *bad[] = {
        "",
        "[]",
        "{" J ",\"state\":\"running\",\"epoch\":1,\"after\":0,\"done\":0,\"results\":[],\"after\":0}",
        "{\"state\":\"running\",\"epoch\":1,\"after\":0,\"done\":0,\"results\":[]}",
        "{\"job\":\"0123\",\"state\":\"running\",\"epoch\":1,\"after\":0,\"done\":0,\"results\":[]}",
        "{" J ",\"state\":\"staging\",\"epoch\":1,\"after\":0,\"done\":0,\"results\":[]}",
        "{" J ",\"state\":\"Running\",\"epoch\":1,\"after\":0,\"done\":0,\"results\":[]}",
        "{" J ",\"epoch\":1,\"after\":0,\"done\":0,\"results\":[]}",
        "{" J ",\"state\":\"running\",\"after\":0,\"done\":0,\"results\":[]}",
        "{" J ",\"state\":\"running\",\"epoch\":-1,\"after\":0,\"done\":0,\"results\":[]}",
        "{" J ",\"state\":\"running\",\"epoch\":1,\"done\":0,\"results\":[]}",
        "{" J ",\"state\":\"running\",\"epoch\":1,\"after\":2,\"done\":1,\"results\":[]}",
        "{" J ",\"state\":\"running\",\"epoch\":1,\"after\":0,\"results\":[]}",
        "{" J ",\"state\":\"running\",\"epoch\":1,\"after\":0,\"done\":9,\"results\":[]}", /* ntasks 8 */
        "{" J ",\"state\":\"running\",\"epoch\":1,\"after\":0,\"done\":0}",
        "{" J ",\"state\":\"running\",\"epoch\":1,\"after\":0,\"done\":0,\"results\":{}}",
        "{" J ",\"state\":\"running\",\"epoch\":1,\"after\":3,\"done\":4,\"results\":[1,2]}",
    };
#undef J
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        wire_results_t r;
        char why[128] = "";
        if (wire_results_decode(bad[i], strlen(bad[i]), 8, &r, NULL, why, sizeof(why)) != -EPROTO || r.n ||
            r.results || r.text || !why[0])
            fail_msg("bad results head %zu was not refused: %s", i, bad[i]);
        wire_results_release(&r);
    }
    /* more entries than WIRE_MAX_RESULTS; over the byte limit */
    char *many = xasprintf("{\"job\":\"%s\",\"state\":\"done\",\"epoch\":1,\"after\":0,\"done\":%d,\"results\":[", ID_A,
                           WIRE_MAX_RESULTS + 1);
    size_t ml = strlen(many);
    many = realloc(many, ml + 2 * (WIRE_MAX_RESULTS + 1) + 2);
    for (size_t i = 0; i <= WIRE_MAX_RESULTS; i++) {
        many[ml++] = '0';
        many[ml++] = ',';
    }
    many[ml - 1] = ']';
    many[ml++] = '}';
    wire_results_t r;
    char why[128];
    assert_int_equal(wire_results_decode(many, ml, 100000, &r, NULL, why, sizeof(why)), -EMSGSIZE);
    assert_string_equal(why, "results list has more entries than WIRE_MAX_RESULTS");
    free(many);
    char *huge = malloc(WIRE_MAX_RESULTS_BODY + 1);
    memset(huge, ' ', WIRE_MAX_RESULTS_BODY + 1);
    assert_int_equal(wire_results_decode(huge, WIRE_MAX_RESULTS_BODY + 1, 8, &r, NULL, why, sizeof(why)), -EMSGSIZE);
    free(huge);
}

static void results_encoder_limits(void **state)
{
    (void)state;
    rfix_t f;
    char *body = NULL;
    size_t len = 0, taken = 0;
    /* every head field and entry field the encoder refuses */
    for (int i = 0; i < 17; i++) {
        rfix_init(&f);
        uint32_t ntasks = 8;
        switch (i) {
        case 0: f.r.job[0] = 'X'; break;
        case 1: f.r.job[10] = '\0'; break;
        case 2: f.r.state = 0; break;
        case 3: f.r.epoch = (uint64_t)INT64_MAX + 1; break;
        case 4: f.r.after = 6; break;
        case 5: ntasks = 4; break; /* done 5 */
        case 6: f.r.after = 3; break; /* 3 entries after 3 of 5 */
        case 7: f.e[1].task = 8; break;
        case 8: f.e[2].task = 7; break; /* twice */
        case 9: f.e[0].exit_code = 256; break;
        case 10: f.e[0].exit_code = -2; break;
        case 11: f.e[0].id[5] = 'g'; break;
        case 12: f.e[0].manifest_len = 0; break;
        case 13: f.e[0].manifest = NULL; break;
        case 14: f.text[0][3] = '\n'; break;
        case 15: f.text[0][3] = '\xff'; break;
        case 16: f.r.results = NULL; break;
        }
        body = (char *)1;
        if (wire_results_encode(&f.r, ntasks, &body, &len, &taken) != -EINVAL || body || taken)
            fail_msg("bad results input %d was encoded", i);
    }
    assert_int_equal(wire_results_encode(NULL, 8, &body, &len, &taken), -EINVAL);
    /* entries past WIRE_MAX_RESULTS_BODY stay out; the first always goes in */
    size_t ml = WIRE_MAX_RESULT_MANIFEST;
    char *text[5];
    wire_result_t e[5];
    for (int i = 0; i < 5; i++) {
        text[i] = malloc(ml + 1);
        memset(text[i], i == 0 ? '"' : 'a' + i, ml); /* the first escapes to twice its size */
        text[i][ml] = '\0';
        e[i] = (wire_result_t){.task = (uint32_t)i, .exit_code = 0, .ok = true, .manifest = text[i], .manifest_len = ml};
        set_id(&e[i]);
    }
    rfix_init(&f);
    f.r.after = 0;
    f.r.done = 5;
    f.r.results = e + 1;
    f.r.n = 4;
    assert_int_equal(wire_results_encode(&f.r, 8, &body, &len, &taken), 0);
    assert_int_equal(taken, 3); /* 3 MiB and a little fit in 4 MiB, 4 do not */
    assert_true(len <= WIRE_MAX_RESULTS_BODY);
    wire_results_t back;
    size_t dropped = 9;
    char why[128];
    assert_int_equal(wire_results_decode(body, len, 8, &back, &dropped, why, sizeof(why)), 0);
    assert_int_equal(back.n, 3);
    assert_int_equal(dropped, 0);
    assert_memory_equal(back.results[2].manifest, text[3], ml);
    wire_results_release(&back);
    free(body);
    f.r.results = e;
    f.r.n = 5;
    assert_int_equal(wire_results_encode(&f.r, 8, &body, &len, &taken), 0);
    assert_int_equal(taken, 2); /* 2 MiB escaped and 1 MiB fit, a third does not */
    assert_true(len > 3 * ml && len <= WIRE_MAX_RESULTS_BODY);
    assert_int_equal(wire_results_decode(body, len, 8, &back, &dropped, why, sizeof(why)), 0);
    assert_int_equal(back.n, 2);
    assert_memory_equal(back.results[0].manifest, text[0], ml);
    wire_results_release(&back);
    free(body);
    for (int i = 0; i < 5; i++)
        free(text[i]);
    /* at most WIRE_MAX_RESULTS entries */
    size_t nm = WIRE_MAX_RESULTS + 3;
    wire_result_t *me = calloc(nm, sizeof(*me));
    for (size_t i = 0; i < nm; i++) {
        me[i] = f.e[0];
        me[i].task = (uint32_t)i;
    }
    f.r.results = me;
    f.r.n = nm;
    f.r.after = 0;
    f.r.done = (uint32_t)nm;
    assert_int_equal(wire_results_encode(&f.r, (uint32_t)nm, &body, &len, &taken), 0);
    assert_int_equal(taken, WIRE_MAX_RESULTS);
    assert_int_equal(wire_results_decode(body, len, (uint32_t)nm, &back, &dropped, why, sizeof(why)), 0);
    assert_int_equal(back.n, WIRE_MAX_RESULTS);
    wire_results_release(&back);
    free(body);
    free(me);
}

static void decline_round_trip_and_refusals(void **state)
{
    (void)state;
    char buf[128], why[128];
    const decline_t ds[] = {
        {.code = DECLINE_MEMORY, .have = 16ull << 30}, {.code = DECLINE_DISK_FREE, .have = 0},
        {.code = DECLINE_SLOTS, .used = 2, .of = 2}, {.code = DECLINE_TRUST}, {.code = DECLINE_STOPPING},
    };
    for (size_t i = 0; i < sizeof(ds) / sizeof(ds[0]); i++) {
        decline_t back = {0};
        int n = wire_decline_encode(&ds[i], buf, sizeof(buf));
        assert_true(n > 0);
        assert_int_equal(wire_decline_decode(buf, (size_t)n, &back, why, sizeof(why)), 0);
        assert_int_equal(back.code, ds[i].code);
        assert_int_equal(back.have, ds[i].have);
        assert_int_equal(back.used, ds[i].used);
        assert_int_equal(back.of, ds[i].of);
    }
    assert_int_equal(wire_decline_encode(&ds[0], buf, sizeof(buf)), (int)strlen("&why=memory&have=17179869184"));
    assert_string_equal(buf, "&why=memory&have=17179869184");
    decline_t d;
    const char *q = "peer=http://h:1&why=slots&of=4&used=3";
    assert_int_equal(wire_decline_decode(q, strlen(q), &d, why, sizeof(why)), 0);
    assert_int_equal(d.used, 3);
    q = "why=quantum&have=1"; /* a newer peer's reason: kept as "another reason", its numbers not */
    assert_int_equal(wire_decline_decode(q, strlen(q), &d, why, sizeof(why)), 0);
    assert_int_equal(d.code, DECLINE_OTHER);
    assert_int_equal(d.have, 0);
    assert_int_equal(wire_decline_encode(&d, buf, sizeof(buf)), -EINVAL); /* we never send one */
    const char *bad[] = {"", "why=", "why=Memory&have=1", "why=memory", "why=memory&have=-1",
                         "why=memory&have=576460752303423489", "why=memory&have=1x", "why=slots&used=3&of=2",
                         "why=slots&used=1", "why=slots&used=1&of=65537", "why=a%20b", "whyx=trust"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(wire_decline_decode(bad[i], strlen(bad[i]), &d, why, sizeof(why)), -EPROTO);
    decline_t over = {.code = DECLINE_SLOTS, .used = 3, .of = 2};
    assert_int_equal(wire_decline_encode(&over, buf, sizeof(buf)), -EINVAL);
    assert_int_equal(wire_decline_encode(&ds[0], buf, 10), -EMSGSIZE);
}

static void output_round_trip_and_refusals(void **state)
{
    (void)state;
    wire_output_t o = {.run = 7, .off = {0, 123456789}, .len = {WIRE_MAX_OUTPUT_CHUNK, 0}}, back;
    memset(o.sha, 'a', 64);
    char buf[256], why[128];
    int n = wire_output_encode(&o, buf, sizeof(buf));
    assert_true(n > 0);
    assert_string_equal(buf, "&run=7&out=0&outlen=32768&err=123456789&errlen=0&sha="
                             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    /* the receiver's query starts with peer=... */
    char q[400];
    snprintf(q, sizeof(q), "peer=http://1.2.3.4:5%s", buf);
    assert_int_equal(wire_output_decode(q, strlen(q), &back, why, sizeof(why)), 0);
    assert_int_equal(back.run, 7);
    assert_int_equal(back.off[0], 0);
    assert_int_equal(back.off[1], 123456789);
    assert_int_equal(back.len[0], WIRE_MAX_OUTPUT_CHUNK);
    assert_int_equal(back.len[1], 0);
    assert_string_equal(back.sha, o.sha);
    /* every field is required and checked */
    const char *sha = "&sha=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const char *bad[] = {"run=0&out=0&outlen=0&err=0&errlen=0", "run=1&out=0&outlen=0&err=0",
                         "run=1&out=-1&outlen=0&err=0&errlen=0", "run=1&out=0&outlen=32769&err=0&errlen=0",
                         "run=1&out=0&outlen=0&err=1125899906842625&errlen=0",
                         "run=576460752303423489&out=0&outlen=0&err=0&errlen=0",
                         "run=1&out=0x1&outlen=0&err=0&errlen=0", "run=1&out=0&outlen=1&err=0&errlen=1 "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(q, sizeof(q), "%s%s", bad[i], sha);
        assert_int_equal(wire_output_decode(q, strlen(q), &back, why, sizeof(why)), -EPROTO);
    }
    const char *badsha[] = {"run=1&out=0&outlen=0&err=0&errlen=0",
                            "run=1&out=0&outlen=0&err=0&errlen=0&sha=ABCDEF0123456789abcdef0123456789abcdef0123456789a"
                            "bcdef0123456789",
                            "run=1&out=0&outlen=0&err=0&errlen=0&sha=0123"};
    for (size_t i = 0; i < sizeof(badsha) / sizeof(badsha[0]); i++)
        assert_int_equal(wire_output_decode(badsha[i], strlen(badsha[i]), &back, why, sizeof(why)), -EPROTO);
    snprintf(q, sizeof(q), "run=1&out=1125899906842624&outlen=32768&err=0&errlen=0%s", sha); /* at the caps */
    assert_int_equal(wire_output_decode(q, strlen(q), &back, why, sizeof(why)), 0);
    wire_output_t e = o;
    e.run = 0;
    assert_int_equal(wire_output_encode(&e, buf, sizeof(buf)), -EINVAL);
    e = o;
    e.len[1] = WIRE_MAX_OUTPUT_CHUNK + 1;
    assert_int_equal(wire_output_encode(&e, buf, sizeof(buf)), -EINVAL);
    e = o;
    e.sha[3] = 'G';
    assert_int_equal(wire_output_encode(&e, buf, sizeof(buf)), -EINVAL);
    assert_int_equal(wire_output_encode(&o, buf, 20), -EMSGSIZE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(id_round_trip_and_refusals),
        cmocka_unit_test(peers_file_lines),
        cmocka_unit_test(lease_round_trip),
        cmocka_unit_test(lease_bad_entries_are_dropped),
        cmocka_unit_test(lease_bad_answers_are_refused),
        cmocka_unit_test(lease_checkpoints_round_trip_and_bad_ones_are_dropped),
        cmocka_unit_test(done_round_trip_and_refusals),
        cmocka_unit_test(decline_round_trip_and_refusals),
        cmocka_unit_test(output_round_trip_and_refusals),
        cmocka_unit_test(jobs_round_trip),
        cmocka_unit_test(jobs_bad_sig_is_dropped),
        cmocka_unit_test(jobs_bad_entries_are_dropped),
        cmocka_unit_test(jobs_bad_answers_are_refused),
        cmocka_unit_test(jobs_encoder_limits),
        cmocka_unit_test(results_round_trip),
        cmocka_unit_test(results_bad_entries_are_dropped),
        cmocka_unit_test(results_bad_heads_are_refused),
        cmocka_unit_test(results_encoder_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
