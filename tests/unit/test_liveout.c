/*
 * test_liveout.c: the rules of a running task's live output (pool/liveout.h): which bytes a
 * volunteer sends, and that the submitter's live file keeps the first and the last of a stream,
 * bounded, whatever order, repeats and gaps its updates come in.
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

#include "pool/liveout.h"
#include "pool/wire.h"

/* A live file in memory: what the submitter's thread-pool half does on disk. */
typedef struct mem {
    char *p;
    size_t len;
    liveout_file_t f;
} mem_t;

/* Applies an update as the submitter does: the window read first if the file is windowed. */
static int mem_apply(const liveout_keep_t *k, mem_t *m, uint64_t off, const char *data, size_t len)
{
    char mark[LIVEOUT_MAX_MARK];
    size_t mlen = liveout_mark(k, mark, sizeof(mark));
    const char *win = m->f.windowed ? m->p + k->head + mlen : NULL;
    size_t wlen = m->f.windowed ? m->len - k->head - mlen : 0;
    liveout_write_t w;
    int rc = liveout_apply(k, &m->f, win, wlen, off, data, len, &w);
    if (rc)
        return rc;
    if (w.len) {
        size_t need = (size_t)(w.at + w.len);
        if (need > m->len) {
            m->p = realloc(m->p, need);
            memset(m->p + m->len, 0, need - m->len);
            m->len = need;
        }
        memcpy(m->p + w.at, w.buf, w.len);
        m->len = (size_t)w.new_len;
    }
    free(w.buf);
    assert_int_equal(m->len, m->f.len);
    return 0;
}

static void pick_sends_the_newest_chunk(void **state)
{
    (void)state;
    uint64_t off;
    uint32_t len;
    liveout_pick(0, 0, 100, &off, &len);
    assert_int_equal(len, 0);
    liveout_pick(10, 10, 100, &off, &len); /* nothing new */
    assert_int_equal(len, 0);
    liveout_pick(10, 50, 100, &off, &len); /* all that is new */
    assert_int_equal(off, 10);
    assert_int_equal(len, 40);
    liveout_pick(10, 1000, 100, &off, &len); /* the newest 100: 890 skipped */
    assert_int_equal(off, 900);
    assert_int_equal(len, 100);
    liveout_pick(500, 20, 100, &off, &len); /* the stream shrank (the task truncated it) */
    assert_int_equal(len, 0);
}

static void head_appends_and_repeats_change_nothing(void **state)
{
    (void)state;
    liveout_keep_t k = {.head = 100, .tail = 20};
    mem_t m = {0};
    assert_int_equal(mem_apply(&k, &m, 0, "hello\n", 6), 0);
    assert_int_equal(mem_apply(&k, &m, 6, "world\n", 6), 0);
    assert_int_equal(m.len, 12);
    assert_memory_equal(m.p, "hello\nworld\n", 12);
    /* the same update again, and one overlapping what came: only new bytes are taken */
    assert_int_equal(mem_apply(&k, &m, 6, "world\n", 6), 0);
    assert_int_equal(mem_apply(&k, &m, 0, "hello\nworld\nagain\n", 18), 0);
    assert_int_equal(m.len, 18);
    assert_memory_equal(m.p, "hello\nworld\nagain\n", 18);
    assert_int_equal(m.f.next, 18);
    /* an empty update changes nothing */
    assert_int_equal(mem_apply(&k, &m, 18, NULL, 0), 0);
    assert_int_equal(m.len, 18);
    free(m.p);
}

static void a_gap_is_a_skip_line(void **state)
{
    (void)state;
    liveout_keep_t k = {.head = 1000, .tail = 20};
    mem_t m = {0};
    assert_int_equal(mem_apply(&k, &m, 0, "a\n", 2), 0);
    assert_int_equal(mem_apply(&k, &m, 500, "z\n", 2), 0); /* 498 bytes were not sent */
    const char *want = "a\n\n[preon: 498 bytes skipped]\nz\n";
    assert_int_equal(m.len, strlen(want));
    assert_memory_equal(m.p, want, m.len);
    assert_int_equal(m.f.next, 502);
    free(m.p);
}

/* The stream s (n bytes) sent in updates of step bytes (each sent twice): the file is its first
 * head bytes, the mark, and its last tail bytes. */
static void check_first_and_last(const liveout_keep_t *k, const char *s, size_t n, size_t step)
{
    mem_t m = {0};
    for (size_t off = 0; off < n; off += step) {
        size_t len = n - off < step ? n - off : step;
        assert_int_equal(mem_apply(k, &m, off, s + off, len), 0);
        assert_int_equal(mem_apply(k, &m, off, s + off, len), 0);
    }
    char mark[LIVEOUT_MAX_MARK];
    size_t mlen = liveout_mark(k, mark, sizeof(mark));
    if (n <= k->head) {
        assert_int_equal(m.len, n);
        assert_memory_equal(m.p, s, n);
        assert_false(m.f.windowed);
    } else {
        size_t tail = n - k->head < k->tail ? n - k->head : k->tail;
        assert_true(m.f.windowed);
        assert_int_equal(m.len, k->head + mlen + tail);
        assert_memory_equal(m.p, s, k->head);
        assert_memory_equal(m.p + k->head, mark, mlen);
        assert_memory_equal(m.p + k->head + mlen, s + n - tail, tail);
    }
    assert_true(m.len <= (size_t)k->head + mlen + k->tail); /* bounded, whatever came */
    free(m.p);
}

static void past_the_head_the_last_bytes_are_kept(void **state)
{
    (void)state;
    liveout_keep_t k = {.head = 64, .tail = 16};
    char s[1000];
    for (size_t i = 0; i < sizeof(s); i++)
        s[i] = (char)('a' + i % 26);
    size_t lens[] = {0, 1, 63, 64, 65, 70, 80, 81, 200, 1000};
    size_t steps[] = {1, 7, 16, 64, 65, 300};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        for (size_t j = 0; j < sizeof(steps) / sizeof(steps[0]); j++)
            check_first_and_last(&k, s, lens[i], steps[j]);
    /* the mark says what is kept */
    char mark[LIVEOUT_MAX_MARK];
    liveout_mark(&(liveout_keep_t){.head = LIVEOUT_HEAD, .tail = LIVEOUT_TAIL}, mark, sizeof(mark));
    assert_non_null(strstr(mark, "first 1048576 bytes"));
    assert_non_null(strstr(mark, "last 65536"));
}

/* Updates as a volunteer makes them (liveout_pick: the newest chunk), some lost and sent again:
 * the file stays bounded and ends with the stream's last bytes. */
static void picked_updates_end_with_the_last_bytes(void **state)
{
    (void)state;
    liveout_keep_t k = {.head = 256, .tail = 32};
    size_t n = 5000;
    char *s = malloc(n);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)(i * 31 + 7);
    mem_t m = {0};
    uint64_t sent = 0, size = 0;
    unsigned seed = 1;
    char mark[LIVEOUT_MAX_MARK];
    size_t mlen = liveout_mark(&k, mark, sizeof(mark));
    while (sent < n) {
        seed = seed * 1103515245 + 12345;
        size += (seed >> 16) % 300; /* the task printed this much more */
        if (size > n)
            size = n;
        uint64_t off;
        uint32_t len;
        liveout_pick(sent, size, 100, &off, &len);
        if (!len)
            continue;
        assert_int_equal(mem_apply(&k, &m, off, s + off, len), 0);
        if ((seed >> 8) % 3 == 0) /* the answer was lost: sent again */
            assert_int_equal(mem_apply(&k, &m, off, s + off, len), 0);
        sent = off + len;
        assert_true(m.len <= (size_t)k.head + mlen + k.tail);
    }
    assert_true(m.f.windowed);
    assert_int_equal(m.f.next, n);
    assert_memory_equal(m.p + m.len - k.tail, s + n - k.tail, k.tail); /* the last bytes, whatever was skipped */
    free(m.p);
    free(s);
}

static void bad_updates_are_refused(void **state)
{
    (void)state;
    liveout_keep_t k = {.head = 64, .tail = 16}, zero = {0};
    liveout_file_t f = {.next = 5, .len = 5};
    liveout_write_t w = {.len = 99};
    char big[WIRE_MAX_OUTPUT_CHUNK + 1] = {0};
    assert_int_equal(liveout_apply(&k, &f, NULL, 0, 0, big, sizeof(big), &w), -EINVAL);
    assert_int_equal(liveout_apply(&k, &f, NULL, 0, WIRE_MAX_OUTPUT_OFF, "x", 1, &w), -EINVAL);
    assert_int_equal(liveout_apply(&k, &f, NULL, 0, 10, NULL, 3, &w), -EINVAL);
    assert_int_equal(liveout_apply(&zero, &f, NULL, 0, 10, "x", 1, &w), -EINVAL);
    assert_int_equal(f.next, 5); /* unchanged */
    assert_int_equal(f.len, 5);
    assert_int_equal(w.len, 99);
}

/* What the submitter counts against --max-live (pool/live.c) holds whatever comes: an update of
 * len bytes adds at most LIVEOUT_MAX_GROWTH(len) to a file, which never holds more than
 * LIVEOUT_MAX_FILE (updates in order, sent again, with gaps of any size, of every length). */
static void growth_is_within_what_is_counted(void **state)
{
    (void)state;
    static const liveout_keep_t keeps[] = {{.head = 256, .tail = 32}, {.head = 64, .tail = 1000},
                                           {.head = LIVEOUT_HEAD, .tail = LIVEOUT_TAIL}};
    static char data[WIRE_MAX_OUTPUT_CHUNK];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)('a' + i % 26);
    unsigned seed = 7;
    for (size_t ki = 0; ki < sizeof(keeps) / sizeof(keeps[0]); ki++) {
        const liveout_keep_t *k = &keeps[ki];
        mem_t m = {0};
        uint64_t off = 0;
        for (int step = 0; step < 400; step++) {
            seed = seed * 1103515245 + 12345;
            size_t len = (seed >> 8) % (step % 7 == 0 ? WIRE_MAX_OUTPUT_CHUNK + 1 : 200);
            uint64_t gap = (seed >> 4) % 4 == 0 ? (seed >> 12) % 100000 : 0;
            if ((seed >> 20) % 5 == 0 && off >= 10) /* sent again, from a little before */
                off -= 10;
            else
                off += gap;
            size_t before = m.len;
            assert_int_equal(mem_apply(k, &m, off, data, len), 0);
            assert_true(m.len <= before + LIVEOUT_MAX_GROWTH(len));
            assert_true(m.len <= LIVEOUT_MAX_FILE(k));
            off += len;
        }
        if (k->head < 1000)
            assert_true(m.f.windowed); /* the window's paths were taken too */
        free(m.p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pick_sends_the_newest_chunk),
        cmocka_unit_test(head_appends_and_repeats_change_nothing),
        cmocka_unit_test(a_gap_is_a_skip_line),
        cmocka_unit_test(past_the_head_the_last_bytes_are_kept),
        cmocka_unit_test(picked_updates_end_with_the_last_bytes),
        cmocka_unit_test(bad_updates_are_refused),
        cmocka_unit_test(growth_is_within_what_is_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
