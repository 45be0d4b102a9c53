/* Unit tests of pool/decline.c: the reasons volunteers give for not running a job, which peers
 * count, how they are grouped, and the sentence status/<job> shows. Plain numbers, no clock. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pool/decline.h"

#define GIB (1ull << 30)

static const decline_t MEM16 = {.code = DECLINE_MEMORY, .have = 16 * GIB};
static const decline_t MEM8 = {.code = DECLINE_MEMORY, .have = 8 * GIB};
static const decline_t TRUST = {.code = DECLINE_TRUST};
static const decline_t BUSY = {.code = DECLINE_SLOTS, .used = 2, .of = 2};

/* A pool peer whose URL and key are both id (for short). */
#define P(id) ((decline_peer_t){.url = (id), .worker = (id)})

static int put(decline_table_t *t, const char *id, const decline_t *d, uint64_t now)
{
    return decline_put(t, id, id, d, now);
}

static char *summary(decline_table_t *t, const decline_peer_t *peers, size_t n, uint64_t now, const decline_need_t *need,
                     char *buf, size_t cap)
{
    decline_groups_t g;
    decline_group(t, peers, n, now, &g);
    return decline_render(&g, need, buf, cap);
}

/* The issue's own example, word for word. */
static void decline_summary_of_the_issue(void **state)
{
    (void)state;
    decline_table_t *t = decline_table_new();
    assert_int_equal(put(t, "a", &MEM16, 1000), 0);
    assert_int_equal(put(t, "b", &TRUST, 1000), 0);
    assert_int_equal(put(t, "c", &MEM8, 1000), 0);
    assert_int_equal(put(t, "d", &BUSY, 1000), 0);
    const decline_peer_t peers[] = {P("a"), P("b"), P("c"), P("d")};
    decline_need_t need = {.memory = 64 * GIB};
    char buf[256];
    assert_string_equal(
        summary(t, peers, 4, 2000, &need, buf, sizeof(buf)),
        "4 pool peers: 2 lack memory 64G (have 16G, 8G), 1 does not trust your key, 1 busy (2 of 2 slots)");
    decline_table_free(t);
}

/* Only pool peers count, each once, with its own reason; the others are silent. */
static void decline_only_pool_peers_count(void **state)
{
    (void)state;
    decline_table_t *t = decline_table_new();
    put(t, "a", &TRUST, 0);
    put(t, "stranger", &TRUST, 0); /* not a pool peer: not counted */
    decline_put(t, "c", "kc", &TRUST, 0);
    /* .worker NULL: a peer whose key is not known; "c": bound to another key than the one that said it */
    const decline_peer_t peers[] = {P("a"), {.url = "c", .worker = NULL}, P("b")};
    char buf[256];
    decline_groups_t g;
    decline_group(t, peers, 3, 10, &g);
    assert_int_equal(g.peers, 3);
    assert_int_equal(g.silent, 2);
    assert_int_equal(g.n[DECLINE_TRUST], 1);
    assert_string_equal(decline_render(&g, NULL, buf, sizeof(buf)),
                        "3 pool peers: 1 does not trust your key, 2 have not said why");
    assert_string_equal(summary(t, NULL, 0, 10, NULL, buf, sizeof(buf)), "no other peer in the pool");
    assert_string_equal(summary(NULL, peers + 1, 1, 10, NULL, buf, sizeof(buf)), "1 pool peer: 1 has not said why");
    const decline_peer_t rebound[] = {{.url = "c", .worker = "other"}, {.url = "c", .worker = "kc"}};
    assert_string_equal(summary(t, rebound, 1, 10, NULL, buf, sizeof(buf)), "1 pool peer: 1 has not said why");
    assert_string_equal(summary(t, rebound + 1, 1, 10, NULL, buf, sizeof(buf)),
                        "1 pool peer: 1 does not trust your key");
    decline_table_free(t);
}

/* A peer has one reason, whichever key said it: a host that makes many keys for one address holds
 * one entry, and the last key speaks for that address (as long as it is the one bound to it). */
static void decline_one_entry_per_peer(void **state)
{
    (void)state;
    decline_table_t *t = decline_table_new();
    char key[32];
    for (unsigned i = 0; i < 3 * DECLINE_MAX_ENTRIES; i++) {
        snprintf(key, sizeof(key), "k%u", i);
        assert_int_equal(decline_put(t, "http://10.0.0.1:1", key, i % 2 ? &TRUST : &BUSY, 100), 0);
    }
    put(t, "http://10.0.0.2:1", &MEM16, 100);
    assert_int_equal(decline_count(t), 2);
    decline_t d;
    assert_true(decline_get(t, "http://10.0.0.1:1", key, 100, &d));
    assert_int_equal(d.code, DECLINE_TRUST);
    assert_false(decline_get(t, "http://10.0.0.1:1", "k0", 100, &d)); /* an earlier key: not its voice now */
    assert_true(decline_get(t, "http://10.0.0.2:1", "http://10.0.0.2:1", 100, &d));
    decline_table_free(t);
}

/* A peer's next reason replaces its last; a lease ask forgets it; a reason goes stale. */
static void decline_replace_forget_and_expire(void **state)
{
    (void)state;
    decline_table_t *t = decline_table_new();
    decline_t d;
    put(t, "a", &TRUST, 0);
    put(t, "a", &BUSY, 100);
    assert_int_equal(decline_count(t), 1);
    assert_true(decline_get(t, "a", "a", 100, &d));
    assert_int_equal(d.code, DECLINE_SLOTS);
    assert_true(decline_get(t, "a", "a", 100 + DECLINE_STALE_MS - 1, &d));
    assert_false(decline_get(t, "a", "a", 100 + DECLINE_STALE_MS, &d)); /* stale */
    const decline_peer_t peers[] = {P("a")};
    char buf[128];
    assert_string_equal(summary(t, peers, 1, 100 + DECLINE_STALE_MS, NULL, buf, sizeof(buf)),
                        "1 pool peer: 1 has not said why");
    /* a put drops the stale ones */
    put(t, "b", &TRUST, 100 + DECLINE_STALE_MS);
    assert_int_equal(decline_count(t), 1);
    decline_forget(t, "b");
    assert_int_equal(decline_count(t), 0);
    assert_false(decline_get(t, "b", "b", 0, &d));
    decline_forget(t, "nobody");
    decline_table_free(t);
}

/* Bad reasons and ids are refused, and change nothing. */
static void decline_put_checks_its_input(void **state)
{
    (void)state;
    decline_table_t *t = decline_table_new();
    char id[DECLINE_MAX_ID + 2], url[DECLINE_MAX_PEER + 2];
    memset(id, 'f', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    memset(url, 'u', sizeof(url) - 1);
    url[sizeof(url) - 1] = '\0';
    decline_t bad_slots = {.code = DECLINE_SLOTS, .used = 3, .of = 2};
    decline_t huge_slots = {.code = DECLINE_SLOTS, .used = 1, .of = DECLINE_MAX_SLOTS + 1};
    decline_t no_code = {.code = 0};
    decline_t past = {.code = DECLINE_N};
    decline_t big = {.code = DECLINE_MEMORY, .have = DECLINE_MAX_BYTES + 1};
    assert_int_equal(decline_put(t, "a", id, &TRUST, 0), -EINVAL);
    assert_int_equal(decline_put(t, url, "a", &TRUST, 0), -EINVAL);
    assert_int_equal(decline_put(t, "a", "", &TRUST, 0), -EINVAL);
    assert_int_equal(decline_put(t, "", "a", &TRUST, 0), -EINVAL);
    assert_int_equal(decline_put(t, "a", NULL, &TRUST, 0), -EINVAL);
    assert_int_equal(decline_put(t, NULL, "a", &TRUST, 0), -EINVAL);
    assert_int_equal(put(t, "a", &bad_slots, 0), -EINVAL);
    assert_int_equal(put(t, "a", &huge_slots, 0), -EINVAL);
    assert_int_equal(put(t, "a", &no_code, 0), -EINVAL);
    assert_int_equal(put(t, "a", &past, 0), -EINVAL);
    assert_int_equal(put(t, "a", &big, 0), -EINVAL);
    assert_int_equal(put(t, "a", NULL, 0), -EINVAL);
    assert_int_equal(decline_count(t), 0);
    id[DECLINE_MAX_ID] = '\0';
    url[DECLINE_MAX_PEER] = '\0';
    assert_int_equal(decline_put(t, url, id, &TRUST, 0), 0);
    decline_table_free(t);
}

/* At DECLINE_MAX_ENTRIES fresh reasons, the oldest goes for a new one. */
static void decline_table_is_bounded(void **state)
{
    (void)state;
    decline_table_t *t = decline_table_new();
    char id[32];
    for (unsigned i = 0; i < DECLINE_MAX_ENTRIES + 10; i++) {
        snprintf(id, sizeof(id), "w%05u", i);
        assert_int_equal(put(t, id, &TRUST, i), 0);
    }
    assert_int_equal(decline_count(t), DECLINE_MAX_ENTRIES);
    decline_t d;
    assert_false(decline_get(t, "w00000", "w00000", DECLINE_MAX_ENTRIES + 10, &d)); /* the oldest went */
    assert_false(decline_get(t, "w00009", "w00009", DECLINE_MAX_ENTRIES + 10, &d));
    assert_true(decline_get(t, "w00010", "w00010", DECLINE_MAX_ENTRIES + 10, &d));
    snprintf(id, sizeof(id), "w%05u", DECLINE_MAX_ENTRIES + 9);
    assert_true(decline_get(t, id, id, DECLINE_MAX_ENTRIES + 10, &d));
    /* stale ones go first, at the next put */
    put(t, "new", &TRUST, DECLINE_MAX_ENTRIES + 9 + DECLINE_STALE_MS);
    assert_int_equal(decline_count(t), 1);
    decline_table_free(t);
}

/* Numbers: largest first, at most DECLINE_MAX_SHOWN, then "..."; slots summed; each wording. */
static void decline_render_every_reason(void **state)
{
    (void)state;
    decline_table_t *t = decline_table_new();
    char id[16], buf[1024];
    decline_peer_t peers[40];
    size_t n = 0;
    for (unsigned i = 0; i < 10; i++) { /* ten lack disk: 1G .. 10G */
        snprintf(id, sizeof(id), "d%u", i);
        decline_t d = {.code = DECLINE_DISK, .have = (i + 1) * GIB};
        put(t, id, &d, 0);
        peers[n].url = peers[n].worker = strdup(id);
        n++;
    }
    const decline_t others[] = {
        {.code = DECLINE_OS}, {.code = DECLINE_ARCH}, {.code = DECLINE_NETWORK}, {.code = DECLINE_IDLE},
        {.code = DECLINE_IDLE}, {.code = DECLINE_SLOTS, .used = 4, .of = 4},
        {.code = DECLINE_SLOTS, .used = 1, .of = 2},
        {.code = DECLINE_MEMORY_FREE, .have = GIB / 2}, {.code = DECLINE_DISK_FREE, .have = 0},
        {.code = DECLINE_STOPPING}, {.code = DECLINE_OTHER}, {.code = DECLINE_OTHER}, {.code = DECLINE_NO_SLOTS},
    };
    for (unsigned i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        snprintf(id, sizeof(id), "o%u", i);
        put(t, id, &others[i], 0);
        peers[n].url = peers[n].worker = strdup(id);
        n++;
    }
    decline_need_t need = {.disk = 20 * GIB, .os = "plan9", .arch = "sparc64"};
    assert_string_equal(summary(t, peers, n, 1, &need, buf, sizeof(buf)),
                        "23 pool peers: 10 lack disk 20G (have 10G, 9G, 8G, 7G, 6G, 5G, 4G, 3G, ...), "
                        "2 are in use by their owners (--when idle), 2 busy (5 of 6 slots), "
                        "2 decline for other reasons, 1 does not run os plan9, 1 does not have arch sparc64, "
                        "1 does not allow network, 1 has too little memory free (512M), "
                        "1 has too little disk free (0B), 1 is stopping, 1 runs no tasks (--slots 0)");
    /* a job's os or arch that is not plain ASCII is not repeated */
    need.os = "pl\x1b[2Jan9";
    need.arch = NULL;
    summary(t, peers, n, 1, &need, buf, sizeof(buf));
    assert_non_null(strstr(buf, "1 does not run its os,"));
    assert_non_null(strstr(buf, "1 does not have its arch,"));
    /* cut at cap, NUL-terminated */
    summary(t, peers, n, 1, &need, buf, 20);
    assert_int_equal(strlen(buf), 19);
    for (size_t i = 0; i < n; i++)
        free((char *)peers[i].url);
    decline_table_free(t);
}

static void decline_codes_and_names(void **state)
{
    (void)state;
    for (int c = 1; c < DECLINE_N; c++) {
        const char *name = decline_code_name((decline_code_t)c);
        assert_non_null(name);
        assert_int_equal(decline_code_from(name, strlen(name)), c);
    }
    assert_null(decline_code_name(0));
    assert_null(decline_code_name(DECLINE_N));
    assert_int_equal(decline_code_from("quantum", 7), DECLINE_OTHER); /* a newer peer's */
    assert_int_equal(decline_code_from("", 0), 0);
    assert_int_equal(decline_code_from("Memory", 6), 0);
    assert_int_equal(decline_code_from("a b", 3), 0);
    assert_int_equal(decline_code_from("abcdefghijklmnopq", 17), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decline_summary_of_the_issue),   cmocka_unit_test(decline_only_pool_peers_count),
        cmocka_unit_test(decline_replace_forget_and_expire), cmocka_unit_test(decline_put_checks_its_input),
        cmocka_unit_test(decline_table_is_bounded),        cmocka_unit_test(decline_render_every_reason),
        cmocka_unit_test(decline_codes_and_names),         cmocka_unit_test(decline_one_entry_per_peer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
