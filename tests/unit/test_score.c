/*
 * test_score.c: the fetcher's peer table and scores (swarm/peers.c), with plain numbers: no
 * sockets, no loop, time passed in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "swarm/internal.h"

static swarm__peer_t *peer(swarm__peers_t *t, const char *url)
{
    size_t n = swarm__peer_url_len(url);
    assert_true(n > 0);
    swarm__peer_t *p = swarm__peers_get(t, url, n);
    assert_non_null(p);
    return p;
}

static void score_url_forms(void **state)
{
    (void)state;
    assert_int_equal(swarm__peer_url_len("http://10.0.0.1:8080"), strlen("http://10.0.0.1:8080"));
    assert_int_equal(swarm__peer_url_len("http://10.0.0.1:8080//"), strlen("http://10.0.0.1:8080"));
    assert_int_equal(swarm__peer_url_len("http://"), 0);
    assert_int_equal(swarm__peer_url_len("https://a:1"), 0);
    assert_int_equal(swarm__peer_url_len("http://a:1/v1"), 0);
    assert_int_equal(swarm__peer_url_len("http://u@a:1"), 0);
    assert_int_equal(swarm__peer_url_len("http://a b:1"), 0);
    assert_int_equal(swarm__peer_url_len(NULL), 0);

    swarm__peers_t t;
    swarm__peers_init(&t);
    swarm__peer_t *a = peer(&t, "http://a:1");
    assert_ptr_equal(peer(&t, "http://a:1/"), a); /* one peer, however it is written */
    assert_null(swarm__peers_find(&t, "http://b:1", 10));
    for (int i = 0; i < 200; i++) { /* the table grows */
        char url[32];
        snprintf(url, sizeof(url), "http://h%d:1", i);
        peer(&t, url);
    }
    assert_ptr_equal(swarm__peers_find(&t, "http://a:1", 10), a);
    assert_int_equal(t.n, 201);
    swarm__peers_release(&t);
}

static void score_moves_by_steps_within_bounds(void **state)
{
    (void)state;
    swarm__peers_t t;
    swarm__peers_init(&t);
    swarm__peer_t *p = peer(&t, "http://a:1");
    assert_int_equal(swarm__peer_score(p, 0), 0);
    swarm__peer_rate(p, FETCH_SCORE_OK, 0);
    swarm__peer_rate(p, FETCH_SCORE_OK, 0);
    assert_int_equal(swarm__peer_score(p, 0), 2 * FETCH_SCORE_OK);
    for (int i = 0; i < 500; i++)
        swarm__peer_rate(p, FETCH_SCORE_OK, 0);
    assert_int_equal(swarm__peer_score(p, 0), FETCH_SCORE_MAX);
    for (int i = 0; i < 50; i++)
        swarm__peer_rate(p, FETCH_SCORE_BAD, 0);
    assert_int_equal(swarm__peer_score(p, 0), FETCH_SCORE_MIN);
    swarm__peers_release(&t);
}

static void score_failing_peer_ranks_down(void **state)
{
    (void)state;
    swarm__peers_t t;
    swarm__peers_init(&t);
    swarm__peer_t *a = peer(&t, "http://a:1"), *b = peer(&t, "http://b:1");
    swarm__peer_rate(b, FETCH_SCORE_FAIL, 1000); /* a time-out */
    assert_true(swarm__peer_better(a, b, 1000));
    assert_false(swarm__peer_better(b, a, 1000));
    assert_false(swarm__peer_avoided(b, 1000));

    /* one bad block: avoided, even when the other peer is busy */
    swarm__peer_t *c = peer(&t, "http://c:1");
    swarm__peer_rate(c, FETCH_SCORE_BAD, 1000);
    assert_true(swarm__peer_avoided(c, 1000));
    a->st.inflight = 3;
    assert_true(swarm__peer_better(a, c, 1000));
    assert_true(swarm__peer_better(b, c, 1000));
    swarm__peers_release(&t);
}

static void score_fast_peer_ranks_up(void **state)
{
    (void)state;
    swarm__peers_t t;
    swarm__peers_init(&t);
    swarm__peer_t *fast = peer(&t, "http://fast:1"), *slow = peer(&t, "http://slow:1");
    /* a fast peer finishes sooner: it has fewer transfers in flight when the next block is picked */
    fast->st.inflight = 1;
    slow->st.inflight = 3;
    assert_true(swarm__peer_better(fast, slow, 0));
    /* and it gains points for each verified block, though positive scores rank alike: the slow one,
     * idle now, is not starved by the fast one's history */
    for (int i = 0; i < 10; i++)
        swarm__peer_rate(fast, FETCH_SCORE_OK, 0);
    assert_int_equal(swarm__peer_score(fast, 0), 10 * FETCH_SCORE_OK);
    fast->st.inflight = slow->st.inflight = 0;
    fast->started = 10;
    assert_true(swarm__peer_better(slow, fast, 0));
    /* a small penalty loses to a clean record at equal load */
    swarm__peer_rate(slow, FETCH_SCORE_FAIL, 0);
    assert_true(swarm__peer_better(fast, slow, 0));
    swarm__peers_release(&t);
}

static void score_recovers_with_time(void **state)
{
    (void)state;
    swarm__peers_t t;
    swarm__peers_init(&t);
    swarm__peer_t *p = peer(&t, "http://a:1"), *q = peer(&t, "http://b:1");
    const uint64_t t0 = 5000, r = FETCH_SCORE_RECOVER_MS;
    swarm__peer_rate(p, FETCH_SCORE_BAD, t0);
    assert_int_equal(swarm__peer_score(p, t0), FETCH_SCORE_BAD);
    assert_int_equal(swarm__peer_score(p, t0 + r - 1), FETCH_SCORE_BAD); /* not a point yet */
    assert_int_equal(swarm__peer_score(p, t0 + r), FETCH_SCORE_BAD + 1);
    assert_true(swarm__peer_avoided(p, t0 + r));
    /* back above the avoid line after (BAD - AVOID + 1) periods */
    uint64_t back = t0 + (uint64_t)(FETCH_SCORE_AVOID - FETCH_SCORE_BAD + 1) * r;
    assert_true(swarm__peer_avoided(p, back - r));
    assert_false(swarm__peer_avoided(p, back));
    /* recovery stops at 0; a clock that goes backwards changes nothing */
    assert_int_equal(swarm__peer_score(p, t0 + 1000 * r), 0);
    assert_int_equal(swarm__peer_score(p, t0 - 1), FETCH_SCORE_BAD);
    /* a new failure counts from the recovered score, and restarts the clock */
    swarm__peer_rate(p, FETCH_SCORE_FAIL, t0 + 10 * r);
    assert_int_equal(swarm__peer_score(p, t0 + 10 * r), FETCH_SCORE_BAD + 10 + FETCH_SCORE_FAIL);
    assert_int_equal(swarm__peer_score(p, t0 + 11 * r), FETCH_SCORE_BAD + 11 + FETCH_SCORE_FAIL);
    /* positive scores do not decay */
    swarm__peer_rate(q, FETCH_SCORE_OK, t0);
    assert_int_equal(swarm__peer_score(q, t0 + 1000 * r), FETCH_SCORE_OK);
    /* ranking follows: the penalised peer is worse now, equal once it has recovered */
    assert_true(swarm__peer_better(q, p, t0 + 11 * r));
    assert_false(swarm__peer_better(q, p, t0 + 1000 * r));
    swarm__peers_release(&t);
}

static void score_ties(void **state)
{
    (void)state;
    swarm__peers_t t;
    swarm__peers_init(&t);
    swarm__peer_t *a = peer(&t, "http://a:1"), *b = peer(&t, "http://b:1");
    /* all equal: neither is better (the caller's order decides) */
    assert_false(swarm__peer_better(a, b, 0));
    assert_false(swarm__peer_better(b, a, 0));
    /* equal but for transfers started so far: round-robin */
    a->started = 1;
    assert_true(swarm__peer_better(b, a, 0));
    b->started = 1;
    assert_false(swarm__peer_better(a, b, 0));
    /* two avoided peers: the rest of the order applies among them */
    swarm__peer_rate(a, FETCH_SCORE_BAD, 0);
    swarm__peer_rate(b, FETCH_SCORE_BAD, 0);
    swarm__peer_rate(b, FETCH_SCORE_BAD, 0);
    assert_true(swarm__peer_better(a, b, 0));
    b->st.inflight = 0;
    a->st.inflight = 1;
    assert_true(swarm__peer_better(b, a, 0));
    swarm__peers_release(&t);
}

/* FETCH_BAN_AFTER bad blocks ban a peer for FETCH_BAN_MS; then it is asked again, and its count
 * starts afresh. */
static void score_bad_peers_are_banned_for_a_while(void **state)
{
    (void)state;
    swarm__peers_t t;
    swarm__peers_init(&t);
    swarm__peer_t *p = peer(&t, "http://10.0.0.1:7650");
    uint64_t now = 1000;
    for (int i = 1; i < FETCH_BAN_AFTER; i++) {
        assert_false(swarm__peer_bad(p, now));
        assert_false(swarm__peer_banned(p, now));
    }
    assert_true(swarm__peer_bad(p, now)); /* the FETCH_BAN_AFTER-th */
    assert_true(swarm__peer_banned(p, now));
    assert_true(swarm__peer_banned(p, now + FETCH_BAN_MS - 1));
    assert_false(swarm__peer_banned(p, now + FETCH_BAN_MS));
    assert_false(swarm__peer_bad(p, now + FETCH_BAN_MS)); /* counted afresh after the ban */
    assert_false(swarm__peer_banned(p, now + FETCH_BAN_MS));
    swarm__peer_t *q = peer(&t, "http://10.0.0.2:7650");
    assert_false(swarm__peer_banned(q, now)); /* one peer's ban is its own */
    swarm__peers_release(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(score_url_forms),
        cmocka_unit_test(score_moves_by_steps_within_bounds),
        cmocka_unit_test(score_failing_peer_ranks_down),
        cmocka_unit_test(score_fast_peer_ranks_up),
        cmocka_unit_test(score_recovers_with_time),
        cmocka_unit_test(score_ties),
        cmocka_unit_test(score_bad_peers_are_banned_for_a_while),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
