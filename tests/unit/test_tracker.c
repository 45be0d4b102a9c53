/*
 * test_tracker.c: unit tests for tracker/tracker.c (the sans-I/O core) and tracker/server.c.
 *
 * The core is driven directly with query strings, client addresses and a clock the test owns;
 * every answer is decoded with the strict bencode decoder, so a malformed answer (keys out of
 * order, a wrong length) fails here. A randomized test plays thousands of announces, stops,
 * completions and clock jumps against a plain reference model and compares every scrape and
 * every peer list with it, which exercises the peer index and its deletions. The server test runs
 * a real loop with an httpd on 127.0.0.1 port 0 and asks it over HTTP with libcurl from a second
 * thread (which only records what it got; the checks run on the test thread afterwards).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <uv.h>

#include "core/bencode.h"
#include "core/httpd.h"
#include "core/xalloc.h"
#include "tracker/tracker.h"

static char why[256];

/* ---- helpers ---------------------------------------------------------------------------------- */

static struct sockaddr_in addr4(const char *ip)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(40000)};
    assert_int_equal(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
    return sa;
}
#define SA(x) ((const struct sockaddr *)&(x))

static void ih_of(unsigned n, uint8_t ih[TRACKER_HASH_LEN])
{
    memset(ih, 0xa5, 8);
    memset(ih + 8, 0, 12);
    ih[16] = (uint8_t)(n >> 24);
    ih[17] = (uint8_t)(n >> 16);
    ih[18] = (uint8_t)(n >> 8);
    ih[19] = (uint8_t)n;
}

/* Percent-encodes every byte (as some clients do) into out. */
static void pct(char *out, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 3 * i, "%%%02x", b[i]);
}

/* An announce query for swarm n and port; extra is appended ("&left=0..."). */
static char *query(unsigned n, unsigned port, const char *extra)
{
    uint8_t ih[TRACKER_HASH_LEN];
    char enc[3 * TRACKER_HASH_LEN + 1];
    ih_of(n, ih);
    pct(enc, ih, sizeof(ih));
    return xasprintf("info_hash=%s&peer_id=-PR0001-%012u&port=%u%s", enc, port, port, extra ? extra : "");
}

typedef struct answer {
    bencode_doc_t doc;
    const bencode_node_t *root;
    char *bytes; /* a copy of the answer the doc points into */
} answer_t;

static void answer_free(answer_t *a)
{
    bencode_doc_release(&a->doc);
    free(a->bytes);
    a->bytes = NULL;
}

/* Decodes out strictly (the test fails if the tracker wrote bad bencoding). */
static void answer_of(const bencode_buf_t *out, answer_t *a)
{
    a->bytes = xmalloc(out->len + 1);
    memcpy(a->bytes, out->data, out->len);
    bencode_doc_init(&a->doc);
    if (bencode_decode(&a->doc, a->bytes, out->len, NULL, why, sizeof(why)) != 0) {
        print_error("bad bencoding from the tracker: %s: '%.*s'\n", why, (int)out->len, out->data);
        fail();
    }
    a->root = bencode_root(&a->doc);
    assert_int_equal(a->root->type, BENCODE_DICT);
}

static int64_t ans_int(const answer_t *a, const char *key)
{
    const bencode_node_t *n = bencode_dict_cget(&a->doc, a->root, key);
    if (!n || n->type != BENCODE_INT) {
        print_error("answer has no integer '%s'\n", key);
        fail();
    }
    return n->i;
}

static const char *ans_failure(const answer_t *a)
{
    static char buf[256];
    const bencode_node_t *n = bencode_dict_cget(&a->doc, a->root, "failure reason");
    if (!n)
        return NULL;
    snprintf(buf, sizeof(buf), "%.*s", (int)n->len, n->s);
    return buf;
}

/* The compact peer list as n entries of 6 bytes. */
static const uint8_t *ans_peers(const answer_t *a, size_t *n)
{
    const bencode_node_t *p = bencode_dict_cget(&a->doc, a->root, "peers");
    assert_non_null(p);
    assert_int_equal(p->type, BENCODE_STR);
    assert_int_equal(p->len % 6, 0);
    *n = p->len / 6;
    return (const uint8_t *)p->s;
}

static tracker_state_t *new_state(uint32_t interval, size_t max_peers, size_t max_swarms)
{
    tracker_opts_t o = {.interval_s = interval, .max_peers = max_peers, .max_swarms = max_swarms, .seed = 42};
    tracker_state_t *t;
    assert_int_equal(tracker_state_new(&o, &t), 0);
    return t;
}

/* Announces for swarm n from `from` and decodes the answer into a. */
static void do_announce(tracker_state_t *t, unsigned n, unsigned port, const char *extra,
                        const struct sockaddr *from, uint64_t now_ms, bencode_buf_t *out, answer_t *a)
{
    char *q = query(n, port, extra);
    tracker_handle_announce(t, q, strlen(q), from, now_ms, out);
    free(q);
    answer_of(out, a);
}

static void do_scrape(tracker_state_t *t, const char *q, uint64_t now_ms, bencode_buf_t *out, answer_t *a)
{
    tracker_handle_scrape(t, q, strlen(q), now_ms, out);
    answer_of(out, a);
}

/* The counts of swarm n in a scrape answer; false if it is not listed. */
static bool scrape_counts(const answer_t *a, unsigned n, int64_t *complete, int64_t *incomplete, int64_t *downloaded)
{
    uint8_t ih[TRACKER_HASH_LEN];
    ih_of(n, ih);
    const bencode_node_t *files = bencode_dict_cget(&a->doc, a->root, "files");
    assert_non_null(files);
    const bencode_node_t *f = bencode_dict_get(&a->doc, files, ih, sizeof(ih));
    if (!f)
        return false;
    *complete = bencode_dict_cget(&a->doc, f, "complete")->i;
    *incomplete = bencode_dict_cget(&a->doc, f, "incomplete")->i;
    *downloaded = bencode_dict_cget(&a->doc, f, "downloaded")->i;
    return true;
}

static char *scrape_query(const unsigned *swarms, size_t n)
{
    char *q = xstrdup("");
    for (size_t i = 0; i < n; i++) {
        uint8_t ih[TRACKER_HASH_LEN];
        char enc[3 * TRACKER_HASH_LEN + 1];
        ih_of(swarms[i], ih);
        pct(enc, ih, sizeof(ih));
        char *next = xasprintf("%s%sinfo_hash=%s", q, i ? "&" : "", enc);
        free(q);
        q = next;
    }
    return q;
}

/* ---- parsing ---------------------------------------------------------------------------------- */

static void tracker_parse_announce_reads_every_field(void **state)
{
    (void)state;
    struct sockaddr_in from = addr4("192.0.2.7");
    tracker_announce_t a;
    /* Binary info_hash with %00 and an unescaped byte, escaped key, unknown keys, '+' literal. */
    const char q[] = "info%5Fhash=%00%01%02%03%04%05%06%07%08%09%0a%0b%0c%0d%0e%0f%10%11%12A"
                     "&peer_id=-qB4250-abcdefghij%2B%2b&port=51413&uploaded=123&downloaded=456"
                     "&left=18446744073709551615&event=completed&numwant=80&compact=0&no_peer_id=1"
                     "&key=x&supportcrypto=1&&ip=10.1.2.3";
    assert_int_equal(tracker_parse_announce(q, strlen(q), SA(from), &a, why, sizeof(why)), 0);
    for (int i = 0; i < 19; i++)
        assert_int_equal(a.info_hash[i], i);
    assert_int_equal(a.info_hash[19], 'A');
    assert_memory_equal(a.peer_id, "-qB4250-abcdefghij++", 20);
    static const uint8_t want_addr[6] = {192, 0, 2, 7, 51413 >> 8, 51413 & 0xff};
    assert_memory_equal(a.addr, want_addr, 6); /* ip= ignored: the client is not on loopback */
    assert_int_equal(a.uploaded, 123);
    assert_int_equal(a.downloaded, 456);
    assert_true(a.left_known);
    assert_true(a.left == UINT64_MAX);
    assert_int_equal(a.event, TRACKER_EVENT_COMPLETED);
    assert_int_equal(a.numwant, 80);
    assert_false(a.compact);
    assert_true(a.no_peer_id);

    /* Defaults: compact, numwant -1 (the tracker's), left unknown, no event; the first of
     * repeated parameters counts; "paused" and other events are plain announces. */
    char *q2 = query(1, 6881, "&port=7000&event=paused&numwant=-1");
    assert_int_equal(tracker_parse_announce(q2, strlen(q2), SA(from), &a, why, sizeof(why)), 0);
    free(q2);
    assert_true(a.compact);
    assert_int_equal(a.numwant, -1);
    assert_false(a.left_known);
    assert_int_equal(a.event, TRACKER_EVENT_NONE);
    assert_int_equal(a.addr[4] << 8 | a.addr[5], 6881);
    static const char *events[] = {"started", "stopped", "completed", ""};
    static const tracker_event_t want_ev[] = {TRACKER_EVENT_STARTED, TRACKER_EVENT_STOPPED, TRACKER_EVENT_COMPLETED,
                                              TRACKER_EVENT_NONE};
    for (int i = 0; i < 4; i++) {
        char ex[32];
        snprintf(ex, sizeof(ex), "&event=%s", events[i]);
        char *qe = query(1, 6881, ex);
        assert_int_equal(tracker_parse_announce(qe, strlen(qe), SA(from), &a, why, sizeof(why)), 0);
        assert_int_equal(a.event, want_ev[i]);
        free(qe);
    }
}

static void tracker_parse_announce_rejects_bad_fields(void **state)
{
    (void)state;
    static const struct {
        const char *extra_or_query; /* a leading '!' means a whole query, else appended to a good one */
        const char *why;
    } cases[] = {
        {"!peer_id=-PR0001-000000000001&port=1", "missing info_hash"},
        {"!info_hash=aaaaaaaaaaaaaaaaaaaa&port=1", "missing peer_id"},
        {"!info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb", "missing port"},
        {"!info_hash=aaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=1", "invalid info_hash (19 bytes"},
        {"!info_hash=aaaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=1", "invalid info_hash (21 bytes"},
        {"!info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=b&port=1", "invalid peer_id"},
        {"!info_hash=%zzaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=1", "invalid info_hash"},
        {"!info_hash=aaaaaaaaaaaaaaaaaaa%4&peer_id=bbbbbbbbbbbbbbbbbbbb&port=1", "invalid info_hash"},
        {"!info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=0", "invalid port"},
        {"!info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=65536", "invalid port"},
        {"!info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=-1", "invalid port"},
        {"!info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=80x", "invalid port"},
        {"!info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=", "invalid port"},
        {"&left=-1", "invalid left"},
        {"&left=18446744073709551616", "invalid left"},
        {"&uploaded=1.5", "invalid uploaded"},
        {"&downloaded=+1", "invalid downloaded"},
        {"&numwant=many", "invalid numwant"},
        {"&numwant=-", "invalid numwant"},
        {"!", "missing info_hash"},
    };
    struct sockaddr_in from = addr4("192.0.2.7");
    tracker_announce_t a;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *q = cases[i].extra_or_query[0] == '!' ? xstrdup(cases[i].extra_or_query + 1)
                                                    : query(1, 6881, cases[i].extra_or_query);
        why[0] = '\0';
        int rc = tracker_parse_announce(q, strlen(q), SA(from), &a, why, sizeof(why));
        if (rc != -EINVAL || strncmp(why, cases[i].why, strlen(cases[i].why)) != 0) {
            print_error("query '%s': rc %d, why '%s' (want '%s')\n", q, rc, why, cases[i].why);
            fail();
        }
        free(q);
    }
    /* A huge number of peers asked for is capped, not refused. */
    char *q = query(1, 6881, "&numwant=99999999999");
    assert_int_equal(tracker_parse_announce(q, strlen(q), SA(from), &a, why, sizeof(why)), 0);
    assert_int_equal(a.numwant, INT32_MAX);
    free(q);
}

static void tracker_parse_announce_ip_param_only_from_loopback(void **state)
{
    (void)state;
    tracker_announce_t a;
    struct sockaddr_in lo = addr4("127.0.0.1"), lan = addr4("10.0.0.9");
    char *q = query(1, 6881, "&ip=198.18.0.5");
    assert_int_equal(tracker_parse_announce(q, strlen(q), SA(lo), &a, why, sizeof(why)), 0);
    static const uint8_t want_lo[4] = {198, 18, 0, 5}, want_lan[4] = {10, 0, 0, 9};
    assert_memory_equal(a.addr, want_lo, 4);
    assert_int_equal(tracker_parse_announce(q, strlen(q), SA(lan), &a, why, sizeof(why)), 0);
    assert_memory_equal(a.addr, want_lan, 4); /* ignored from anywhere else */
    free(q);
    q = query(1, 6881, "&ip=example.org");
    assert_int_equal(tracker_parse_announce(q, strlen(q), SA(lo), &a, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "invalid ip"));
    assert_int_equal(tracker_parse_announce(q, strlen(q), SA(lan), &a, why, sizeof(why)), 0);
    free(q);

    /* IPv6: an IPv4-mapped client is its IPv4 address; a real IPv6 one is refused (compact peer
     * lists are IPv4) unless it is ::1 naming an IPv4 address. */
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::ffff:192.0.2.1", &s6.sin6_addr);
    q = query(1, 6881, NULL);
    assert_int_equal(tracker_parse_announce(q, strlen(q), SA(s6), &a, why, sizeof(why)), 0);
    static const uint8_t want_mapped[4] = {192, 0, 2, 1};
    assert_memory_equal(a.addr, want_mapped, 4);
    inet_pton(AF_INET6, "2001:db8::1", &s6.sin6_addr);
    assert_int_equal(tracker_parse_announce(q, strlen(q), SA(s6), &a, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "IPv4"));
    free(q);
    inet_pton(AF_INET6, "::1", &s6.sin6_addr);
    q = query(1, 6881, "&ip=10.9.8.7");
    assert_int_equal(tracker_parse_announce(q, strlen(q), SA(s6), &a, why, sizeof(why)), 0);
    free(q);
}

static void tracker_parse_scrape_sorts_and_limits(void **state)
{
    (void)state;
    uint8_t hashes[TRACKER_MAX_SCRAPE][TRACKER_HASH_LEN];
    size_t n;
    unsigned sw[] = {9, 3, 9, 1, 3};
    char *q = scrape_query(sw, 5);
    char *q2 = xasprintf("%s&peer_id=x&info%%5fhash=%s", q, "aaaaaaaaaaaaaaaaaaaa");
    assert_int_equal(tracker_parse_scrape(q2, strlen(q2), hashes, &n, why, sizeof(why)), 0);
    free(q);
    free(q2);
    assert_int_equal(n, 4);
    uint8_t ih[TRACKER_HASH_LEN];
    assert_memory_equal(hashes[0], "aaaaaaaaaaaaaaaaaaaa", 20); /* 0x61 sorts before 0xa5 */
    ih_of(1, ih);
    assert_memory_equal(hashes[1], ih, 20);
    ih_of(3, ih);
    assert_memory_equal(hashes[2], ih, 20);
    ih_of(9, ih);
    assert_memory_equal(hashes[3], ih, 20);

    assert_int_equal(tracker_parse_scrape("", 0, hashes, &n, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "full scrape"));
    assert_int_equal(tracker_parse_scrape("info_hash=abc", 13, hashes, &n, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "invalid info_hash"));
    unsigned many[TRACKER_MAX_SCRAPE + 1];
    for (unsigned i = 0; i <= TRACKER_MAX_SCRAPE; i++)
        many[i] = i;
    q = scrape_query(many, TRACKER_MAX_SCRAPE);
    assert_int_equal(tracker_parse_scrape(q, strlen(q), hashes, &n, why, sizeof(why)), 0);
    assert_int_equal(n, TRACKER_MAX_SCRAPE);
    free(q);
    q = scrape_query(many, TRACKER_MAX_SCRAPE + 1);
    assert_int_equal(tracker_parse_scrape(q, strlen(q), hashes, &n, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "too many"));
    free(q);
}

/* ---- announces -------------------------------------------------------------------------------- */

static void tracker_announce_answers_compact_lists(void **state)
{
    (void)state;
    tracker_state_t *t = new_state(1800, 0, 0);
    bencode_buf_t out;
    bencode_buf_init(&out);
    answer_t a;
    struct sockaddr_in p1 = addr4("192.0.2.1"), p2 = addr4("192.0.2.2");

    do_announce(t, 7, 6881, "&left=100&event=started", SA(p1), 1000, &out, &a);
    assert_int_equal(ans_int(&a, "complete"), 0);
    assert_int_equal(ans_int(&a, "incomplete"), 1);
    assert_int_equal(ans_int(&a, "downloaded"), 0);
    assert_int_equal(ans_int(&a, "interval"), 1800);
    assert_int_equal(ans_int(&a, "min interval"), 900);
    size_t n;
    ans_peers(&a, &n);
    assert_int_equal(n, 0); /* never the asker itself */
    answer_free(&a);
    /* The exact bytes, keys in order. */
    static const char first[] = "d8:completei0e10:downloadedi0e10:incompletei1e8:intervali1800e"
                                "12:min intervali900e5:peers0:e";
    assert_int_equal(out.len, sizeof(first) - 1);
    assert_memory_equal(out.data, first, out.len);

    do_announce(t, 7, 6882, "&left=0", SA(p2), 2000, &out, &a);
    assert_int_equal(ans_int(&a, "complete"), 1);
    assert_int_equal(ans_int(&a, "incomplete"), 1);
    const uint8_t *peers = ans_peers(&a, &n);
    assert_int_equal(n, 1);
    static const uint8_t want1[6] = {192, 0, 2, 1, 0x1a, 0xe1}; /* 6881 big-endian */
    assert_memory_equal(peers, want1, 6);
    answer_free(&a);

    /* The first peer again (same address and port): updated, not added twice. */
    do_announce(t, 7, 6881, "&left=50", SA(p1), 3000, &out, &a);
    assert_int_equal(ans_int(&a, "complete") + ans_int(&a, "incomplete"), 2);
    peers = ans_peers(&a, &n);
    assert_int_equal(n, 1);
    static const uint8_t want2[6] = {192, 0, 2, 2, 0x1a, 0xe2};
    assert_memory_equal(peers, want2, 6);
    answer_free(&a);

    /* Same address, other swarm: a separate peer there. */
    do_announce(t, 8, 6881, NULL, SA(p1), 3000, &out, &a);
    assert_int_equal(ans_int(&a, "incomplete"), 1);
    answer_free(&a);
    tracker_stats_t st;
    tracker_get_stats(t, &st);
    assert_int_equal(st.swarms, 2);
    assert_int_equal(st.peers, 3);
    assert_int_equal(st.seeders, 1);
    bencode_buf_release(&out);
    tracker_state_free(t);
}

static void tracker_announce_answers_non_compact_lists(void **state)
{
    (void)state;
    tracker_state_t *t = new_state(60, 0, 0);
    bencode_buf_t out;
    bencode_buf_init(&out);
    answer_t a;
    struct sockaddr_in p1 = addr4("192.0.2.1"), p2 = addr4("192.0.2.2");
    do_announce(t, 1, 6881, NULL, SA(p1), 0, &out, &a);
    answer_free(&a);
    do_announce(t, 1, 6882, "&compact=0", SA(p2), 0, &out, &a);
    const bencode_node_t *list = bencode_dict_cget(&a.doc, a.root, "peers");
    assert_int_equal(list->type, BENCODE_LIST);
    assert_int_equal(list->count, 1);
    const bencode_node_t *peer = bencode_child(&a.doc, list, 0);
    assert_true(bencode_str_eq(bencode_dict_cget(&a.doc, peer, "ip"), "192.0.2.1"));
    assert_int_equal(bencode_dict_cget(&a.doc, peer, "port")->i, 6881);
    assert_true(bencode_str_eq(bencode_dict_cget(&a.doc, peer, "peer id"), "-PR0001-000000006881"));
    answer_free(&a);
    static const char want[] = "d8:completei0e10:downloadedi0e10:incompletei2e8:intervali60e"
                               "12:min intervali30e5:peersld2:ip9:192.0.2.14:porti6881eeee";
    do_announce(t, 1, 6882, "&compact=0&no_peer_id=1", SA(p2), 0, &out, &a);
    answer_free(&a);
    assert_int_equal(out.len, sizeof(want) - 1);
    assert_memory_equal(out.data, want, out.len);
    bencode_buf_release(&out);
    tracker_state_free(t);
}

static void tracker_announce_numwant_limits_and_never_self(void **state)
{
    (void)state;
    tracker_state_t *t = new_state(1800, 0, 0);
    bencode_buf_t out;
    bencode_buf_init(&out);
    answer_t a;
    struct sockaddr_in lo = addr4("127.0.0.1");
    /* 300 peers: 10.0.<i/250>.<i%250>:7000 (loopback clients may name their address). */
    for (unsigned i = 0; i < 300; i++) {
        char ex[48];
        snprintf(ex, sizeof(ex), "&ip=10.0.%u.%u", i / 250, i % 250);
        char *q = query(1, 7000, ex);
        tracker_handle_announce(t, q, strlen(q), SA(lo), 0, &out);
        free(q);
    }
    static const struct {
        const char *extra;
        size_t want;
    } cases[] = {{"&ip=10.0.0.0", 50}, {"&ip=10.0.0.0&numwant=-1", 50}, {"&ip=10.0.0.0&numwant=7", 7},
                 {"&ip=10.0.0.0&numwant=0", 0}, {"&ip=10.0.0.0&numwant=1000", 200}, {"&ip=10.0.0.0&numwant=299", 200}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (int rep = 0; rep < 20; rep++) {
            do_announce(t, 1, 7000, cases[c].extra, SA(lo), 0, &out, &a);
            size_t n;
            const uint8_t *p = ans_peers(&a, &n);
            assert_int_equal(n, cases[c].want);
            static const uint8_t self[6] = {10, 0, 0, 0, 7000 >> 8, 7000 & 0xff};
            bool seen[300] = {false};
            for (size_t i = 0; i < n; i++) {
                assert_memory_not_equal(p + 6 * i, self, 6);
                unsigned idx = p[6 * i + 2] * 250u + p[6 * i + 3];
                assert_true(idx < 300);
                assert_false(seen[idx]); /* no peer twice in one answer */
                seen[idx] = true;
            }
            assert_int_equal(ans_int(&a, "incomplete"), 300);
            answer_free(&a);
        }
    }
    bencode_buf_release(&out);
    tracker_state_free(t);
}

static void tracker_announce_sampling_reaches_every_peer(void **state)
{
    (void)state;
    tracker_state_t *t = new_state(1800, 0, 0);
    bencode_buf_t out;
    bencode_buf_init(&out);
    answer_t a;
    struct sockaddr_in from = addr4("192.0.2.1");
    for (unsigned port = 1; port <= 1000; port++) {
        char *q = query(1, port, NULL);
        tracker_handle_announce(t, q, strlen(q), SA(from), 0, &out);
        free(q);
    }
    /* 1000 peers, 50 a time from a random start: after 400 answers to one asker every other peer
     * has been offered (a given peer is missed with probability 0.95^400, about 1e-9). */
    bool seen[1001] = {false};
    size_t distinct = 0;
    for (int rep = 0; rep < 400; rep++) {
        do_announce(t, 1, 1, NULL, SA(from), 0, &out, &a);
        size_t n;
        const uint8_t *p = ans_peers(&a, &n);
        assert_int_equal(n, 50);
        for (size_t i = 0; i < n; i++) {
            unsigned port = p[6 * i + 4] << 8 | p[6 * i + 5];
            assert_true(port >= 2 && port <= 1000);
            if (!seen[port]) {
                seen[port] = true;
                distinct++;
            }
        }
        answer_free(&a);
    }
    assert_int_equal(distinct, 999);
    bencode_buf_release(&out);
    tracker_state_free(t);
}

static void tracker_announce_stopped_and_completed(void **state)
{
    (void)state;
    tracker_state_t *t = new_state(1800, 0, 0);
    bencode_buf_t out;
    bencode_buf_init(&out);
    answer_t a;
    struct sockaddr_in p1 = addr4("192.0.2.1"), p2 = addr4("192.0.2.2");
    do_announce(t, 1, 6881, "&left=10&event=started", SA(p1), 0, &out, &a);
    answer_free(&a);
    do_announce(t, 1, 6882, "&left=10", SA(p2), 0, &out, &a);
    answer_free(&a);
    /* p1 completes: it is a seeder now and the swarm counts one download, once. */
    for (int i = 0; i < 3; i++) {
        do_announce(t, 1, 6881, "&left=0&event=completed", SA(p1), 0, &out, &a);
        assert_int_equal(ans_int(&a, "complete"), 1);
        assert_int_equal(ans_int(&a, "incomplete"), 1);
        assert_int_equal(ans_int(&a, "downloaded"), 1);
        answer_free(&a);
    }
    /* A seeder that announces left > 0 again is a leecher again. */
    do_announce(t, 1, 6881, "&left=5", SA(p1), 0, &out, &a);
    assert_int_equal(ans_int(&a, "complete"), 0);
    assert_int_equal(ans_int(&a, "incomplete"), 2);
    answer_free(&a);
    /* Stopped: removed, no peers in the answer, counts without it. */
    do_announce(t, 1, 6881, "&event=stopped", SA(p1), 0, &out, &a);
    size_t n;
    ans_peers(&a, &n);
    assert_int_equal(n, 0);
    assert_int_equal(ans_int(&a, "incomplete"), 1);
    answer_free(&a);
    do_announce(t, 1, 6882, NULL, SA(p2), 0, &out, &a);
    ans_peers(&a, &n);
    assert_int_equal(n, 0);
    answer_free(&a);
    /* Stopping twice, or in a swarm that does not exist, is harmless and creates nothing. */
    do_announce(t, 1, 6881, "&event=stopped", SA(p1), 0, &out, &a);
    answer_free(&a);
    do_announce(t, 99, 6881, "&event=stopped", SA(p1), 0, &out, &a);
    assert_int_equal(ans_int(&a, "incomplete"), 0);
    answer_free(&a);
    tracker_stats_t st;
    tracker_get_stats(t, &st);
    assert_int_equal(st.swarms, 1);
    assert_int_equal(st.peers, 1);
    assert_int_equal(st.seeders, 0);
    bencode_buf_release(&out);
    tracker_state_free(t);
}

static void tracker_peers_expire_after_two_intervals(void **state)
{
    (void)state;
    tracker_state_t *t = new_state(10, 0, 0); /* ttl 20 s */
    bencode_buf_t out;
    bencode_buf_init(&out);
    answer_t a;
    struct sockaddr_in p1 = addr4("192.0.2.1"), p2 = addr4("192.0.2.2");
    do_announce(t, 1, 6881, "&left=0", SA(p1), 100000, &out, &a);
    answer_free(&a);
    do_announce(t, 1, 6882, NULL, SA(p2), 110000, &out, &a);
    answer_free(&a);
    unsigned sw[] = {1};
    char *sq = scrape_query(sw, 1);
    int64_t c, i, d;
    /* At exactly 2 x interval since its announce p1 is still there; a second later it is gone. */
    do_scrape(t, sq, 120999, &out, &a);
    assert_true(scrape_counts(&a, 1, &c, &i, &d));
    assert_int_equal(c, 1);
    assert_int_equal(i, 1);
    answer_free(&a);
    do_scrape(t, sq, 121000, &out, &a);
    assert_true(scrape_counts(&a, 1, &c, &i, &d));
    assert_int_equal(c, 0);
    assert_int_equal(i, 1);
    answer_free(&a);
    /* p2 announces at 125 s and does not see p1. */
    do_announce(t, 1, 6882, NULL, SA(p2), 125000, &out, &a);
    size_t n;
    ans_peers(&a, &n);
    assert_int_equal(n, 0);
    answer_free(&a);
    tracker_stats_t st;
    tracker_get_stats(t, &st);
    assert_int_equal(st.peers, 1);
    assert_int_equal(st.seeders, 0);
    /* tracker_expire drops p2 once it is stale and then the empty swarm. */
    assert_int_equal(tracker_expire(t, 145000, SIZE_MAX), 0);
    tracker_get_stats(t, &st);
    assert_int_equal(st.swarms, 1);
    assert_int_equal(tracker_expire(t, 146000, SIZE_MAX), 1);
    tracker_get_stats(t, &st);
    assert_int_equal(st.swarms, 0);
    assert_int_equal(st.peers, 0);
    do_scrape(t, sq, 146000, &out, &a);
    assert_false(scrape_counts(&a, 1, &c, &i, &d));
    answer_free(&a);
    free(sq);
    bencode_buf_release(&out);
    tracker_state_free(t);
}

static void tracker_scrape_lists_known_swarms_in_order(void **state)
{
    (void)state;
    tracker_state_t *t = new_state(1800, 0, 0);
    bencode_buf_t out;
    bencode_buf_init(&out);
    answer_t a;
    struct sockaddr_in p = addr4("192.0.2.1");
    do_announce(t, 5, 1, "&left=0&event=completed", SA(p), 0, &out, &a);
    answer_free(&a);
    do_announce(t, 2, 1, NULL, SA(p), 0, &out, &a);
    answer_free(&a);
    do_announce(t, 2, 2, NULL, SA(p), 0, &out, &a);
    answer_free(&a);
    unsigned sw[] = {5, 3, 2, 5};
    char *sq = scrape_query(sw, 4);
    do_scrape(t, sq, 0, &out, &a); /* the decoder checks the keys are sorted and unique */
    free(sq);
    int64_t c, i, d;
    assert_true(scrape_counts(&a, 5, &c, &i, &d));
    assert_int_equal(c, 1);
    assert_int_equal(i, 0);
    assert_int_equal(d, 1);
    assert_true(scrape_counts(&a, 2, &c, &i, &d));
    assert_int_equal(c, 0);
    assert_int_equal(i, 2);
    assert_int_equal(d, 0);
    assert_false(scrape_counts(&a, 3, &c, &i, &d)); /* unknown: left out, as opentracker does */
    answer_free(&a);
    do_scrape(t, "", 0, &out, &a);
    assert_non_null(ans_failure(&a));
    answer_free(&a);
    bencode_buf_release(&out);
    tracker_state_free(t);
}

static void tracker_bad_requests_get_failure_reason(void **state)
{
    (void)state;
    tracker_state_t *t = new_state(1800, 0, 0);
    bencode_buf_t out;
    bencode_buf_init(&out);
    struct sockaddr_in p = addr4("192.0.2.1");
    tracker_handle_announce(t, "info_hash=abc", 13, SA(p), 0, &out);
    static const char want[] = "d14:failure reason36:invalid info_hash (3 bytes, want 20)e";
    assert_int_equal(out.len, sizeof(want) - 1);
    assert_memory_equal(out.data, want, out.len);
    tracker_stats_t st;
    tracker_get_stats(t, &st);
    assert_int_equal(st.swarms, 0);
    bencode_buf_release(&out);
    tracker_state_free(t);
}

static void tracker_limits_peers_and_swarms(void **state)
{
    (void)state;
    tracker_state_t *t = new_state(1800, 4, 2);
    bencode_buf_t out;
    bencode_buf_init(&out);
    answer_t a;
    struct sockaddr_in p = addr4("192.0.2.1");
    tracker_announce_t ann;
    char *q;
    do_announce(t, 1, 1, NULL, SA(p), 0, &out, &a);
    answer_free(&a);
    do_announce(t, 1, 2, NULL, SA(p), 0, &out, &a);
    answer_free(&a);
    do_announce(t, 2, 1, NULL, SA(p), 0, &out, &a);
    answer_free(&a);
    /* A third swarm: full. */
    q = query(3, 1, NULL);
    assert_int_equal(tracker_parse_announce(q, strlen(q), SA(p), &ann, why, sizeof(why)), 0);
    assert_int_equal(tracker_announce(t, &ann, 0, &out), -ENOSPC);
    free(q);
    answer_of(&out, &a);
    assert_non_null(strstr(ans_failure(&a), "too many swarms"));
    answer_free(&a);
    /* The fourth peer fits; a fifth does not, in a known swarm or a new one (which is then not
     * created either); a known peer may still announce. */
    do_announce(t, 2, 2, NULL, SA(p), 0, &out, &a);
    assert_null(ans_failure(&a));
    answer_free(&a);
    for (unsigned sw = 2; sw <= 3; sw++) {
        q = query(sw, 3, NULL);
        assert_int_equal(tracker_parse_announce(q, strlen(q), SA(p), &ann, why, sizeof(why)), 0);
        assert_int_equal(tracker_announce(t, &ann, 0, &out), -ENOSPC);
        free(q);
        answer_of(&out, &a);
        assert_non_null(strstr(ans_failure(&a), "too many peers"));
        answer_free(&a);
    }
    tracker_stats_t st;
    tracker_get_stats(t, &st);
    assert_int_equal(st.swarms, 2);
    assert_int_equal(st.peers, 4);
    do_announce(t, 1, 2, NULL, SA(p), 0, &out, &a);
    assert_null(ans_failure(&a));
    answer_free(&a);
    /* Once one stops there is room again. */
    do_announce(t, 1, 2, "&event=stopped", SA(p), 0, &out, &a);
    answer_free(&a);
    do_announce(t, 2, 3, NULL, SA(p), 0, &out, &a);
    assert_null(ans_failure(&a));
    answer_free(&a);
    bencode_buf_release(&out);
    tracker_state_free(t);
}

static void tracker_holds_100k_peers_in_little_memory(void **state)
{
    (void)state;
    tracker_state_t *t = new_state(1800, 0, 0);
    tracker_stats_t st0, st;
    tracker_get_stats(t, &st0);
    tracker_announce_t a;
    memset(&a, 0, sizeof(a));
    a.numwant = 50;
    a.compact = true;
    bencode_buf_t out;
    bencode_buf_init(&out);
    /* Two layouts: 100k peers over 1000 swarms (the benchmark's), then 100k in one swarm. */
    for (unsigned i = 0; i < 100000; i++) {
        ih_of(i % 1000, a.info_hash);
        a.addr[0] = 10;
        a.addr[1] = (uint8_t)(i >> 16);
        a.addr[2] = (uint8_t)(i >> 8);
        a.addr[3] = (uint8_t)i;
        a.addr[4] = 0x1a;
        a.addr[5] = 0xe1;
        assert_int_equal(tracker_announce(t, &a, 0, &out), 0);
    }
    tracker_get_stats(t, &st);
    assert_int_equal(st.peers, 100000);
    assert_int_equal(st.swarms, 1000);
    print_message("      100k peers in 1000 swarms: %zu bytes (%.1f per peer)\n", st.bytes,
                  (double)(st.bytes - st0.bytes) / 100000);
    assert_true(st.bytes < 8u * 1024 * 1024);
    for (unsigned i = 0; i < 100000; i++) {
        ih_of(5000, a.info_hash);
        a.addr[1] = (uint8_t)(i >> 16);
        a.addr[2] = (uint8_t)(i >> 8);
        a.addr[3] = (uint8_t)i;
        assert_int_equal(tracker_announce(t, &a, 0, &out), 0);
    }
    tracker_get_stats(t, &st);
    assert_int_equal(st.peers, 200000);
    assert_true(st.bytes < 16u * 1024 * 1024);
    /* Everything expires; the memory goes back to the empty tables. */
    assert_int_equal(tracker_expire(t, 3601000, SIZE_MAX), 200000);
    tracker_get_stats(t, &st);
    assert_int_equal(st.peers, 0);
    assert_int_equal(st.swarms, 0);
    assert_true(st.bytes <= st0.bytes + 64 * 1024); /* the swarm table grew and stays */
    bencode_buf_release(&out);
    tracker_state_free(t);
}

/* ---- randomized comparison with a reference model --------------------------------------------- */

#define M_SWARMS 5
#define M_IPS 3
#define M_PORTS 40
typedef struct mpeer {
    bool present, seeder, completed;
    uint32_t last_s;
} mpeer_t;
typedef struct mswarm {
    bool exists;
    int64_t downloaded;
    mpeer_t p[M_IPS][M_PORTS];
} mswarm_t;

static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static bool m_live(const mpeer_t *p, uint32_t now_s, uint32_t ttl)
{
    return p->present && (now_s <= p->last_s || now_s - p->last_s <= ttl);
}

static void tracker_random_operations_match_model(void **state)
{
    (void)state;
    const uint32_t interval = 10, ttl = 20;
    tracker_state_t *t = new_state(interval, 0, 0);
    static mswarm_t m[M_SWARMS];
    memset(m, 0, sizeof(m));
    bencode_buf_t out;
    bencode_buf_init(&out);
    answer_t a;
    struct sockaddr_in lo = addr4("127.0.0.1");
    uint64_t now_ms = 5000;
    unsigned all[M_SWARMS] = {0, 1, 2, 3, 4};
    char *sq = scrape_query(all, M_SWARMS);
    for (int op = 0; op < 20000; op++) {
        now_ms += rnd() % 1500;
        uint32_t now_s = (uint32_t)(now_ms / 1000);
        unsigned s = (unsigned)(rnd() % M_SWARMS), ip = (unsigned)(rnd() % M_IPS),
                 port = 1 + (unsigned)(rnd() % M_PORTS);
        unsigned r = (unsigned)(rnd() % 100);
        if (r < 2) {
            /* A full expiry pass: drops stale peers and swarms left empty. */
            tracker_expire(t, now_ms, SIZE_MAX);
            size_t live = 0, swarms = 0;
            for (unsigned k = 0; k < M_SWARMS; k++) {
                size_t n = 0;
                for (unsigned x = 0; x < M_IPS; x++)
                    for (unsigned y = 0; y < M_PORTS; y++) {
                        if (!m_live(&m[k].p[x][y], now_s, ttl))
                            m[k].p[x][y].present = false;
                        n += m[k].p[x][y].present;
                    }
                if (m[k].exists && n == 0) {
                    m[k].exists = false;
                    m[k].downloaded = 0;
                }
                live += n;
                swarms += m[k].exists;
            }
            tracker_stats_t st;
            tracker_get_stats(t, &st);
            assert_int_equal(st.peers, live);
            assert_int_equal(st.swarms, swarms);
            continue;
        }
        const char *ev = r < 15 ? "&event=stopped" : r < 25 ? "&event=completed" : r < 35 ? "&event=started" : "";
        bool left0 = rnd() % 3 == 0, has_left = rnd() % 4 != 0;
        char ex[96];
        snprintf(ex, sizeof(ex), "&ip=10.0.0.%u%s%s&numwant=200", ip, ev,
                 has_left ? (left0 ? "&left=0" : "&left=77") : "");
        do_announce(t, s, port, ex, SA(lo), now_ms, &out, &a);
        assert_null(ans_failure(&a));

        /* Model: expired peers are gone; then apply the announce. */
        mswarm_t *ms = &m[s];
        for (unsigned x = 0; x < M_IPS; x++)
            for (unsigned y = 0; y < M_PORTS; y++)
                if (!m_live(&ms->p[x][y], now_s, ttl))
                    ms->p[x][y].present = false;
        mpeer_t *me = &ms->p[ip][port - 1];
        if (r < 15) {
            me->present = false;
        } else {
            ms->exists = true;
            if (!me->present)
                *me = (mpeer_t){.present = true};
            me->last_s = now_s;
            me->seeder = has_left && left0;
            if (r >= 15 && r < 25 && !me->completed) {
                me->completed = true;
                ms->downloaded++;
            }
        }
        /* The answer lists exactly the other live peers (numwant 200 exceeds any swarm here). */
        size_t n, want = 0, seeders = 0, leechers = 0;
        const uint8_t *p = ans_peers(&a, &n);
        for (unsigned x = 0; x < M_IPS; x++)
            for (unsigned y = 0; y < M_PORTS; y++)
                if (ms->p[x][y].present) {
                    seeders += ms->p[x][y].seeder;
                    leechers += !ms->p[x][y].seeder;
                    want += ms->p[x][y].present && !(x == ip && y == port - 1) && r >= 15;
                }
        assert_int_equal(n, want);
        for (size_t i = 0; i < n; i++) {
            unsigned x = p[6 * i + 3], y = (unsigned)(p[6 * i + 4] << 8 | p[6 * i + 5]) - 1;
            assert_true(x < M_IPS && y < M_PORTS);
            assert_true(ms->p[x][y].present);
            assert_false(x == ip && y == port - 1);
        }
        assert_int_equal(ans_int(&a, "complete"), seeders);
        assert_int_equal(ans_int(&a, "incomplete"), leechers);
        answer_free(&a);

        if (op % 50 == 0) {
            do_scrape(t, sq, now_ms, &out, &a);
            for (unsigned k = 0; k < M_SWARMS; k++) {
                int64_t c, i, d, mc = 0, mi = 0;
                for (unsigned x = 0; x < M_IPS; x++)
                    for (unsigned y = 0; y < M_PORTS; y++)
                        if (m_live(&m[k].p[x][y], now_s, ttl)) {
                            mc += m[k].p[x][y].seeder;
                            mi += !m[k].p[x][y].seeder;
                        }
                bool listed = scrape_counts(&a, k, &c, &i, &d);
                assert_int_equal(listed, m[k].exists);
                if (listed) {
                    assert_int_equal(c, mc);
                    assert_int_equal(i, mi);
                    assert_int_equal(d, m[k].downloaded);
                }
            }
            answer_free(&a);
        }
    }
    free(sq);
    bencode_buf_release(&out);
    tracker_state_free(t);
}

static void tracker_expire_works_in_slices(void **state)
{
    (void)state;
    tracker_state_t *t = new_state(10, 0, 0);
    bencode_buf_t out;
    bencode_buf_init(&out);
    struct sockaddr_in p = addr4("192.0.2.1");
    for (unsigned s = 0; s < 3000; s++) {
        char *q = query(s, 1 + s % 7, NULL);
        tracker_handle_announce(t, q, strlen(q), SA(p), 0, &out);
        free(q);
    }
    tracker_stats_t st;
    tracker_get_stats(t, &st);
    assert_int_equal(st.swarms, 3000);
    /* Nothing is stale yet: a whole pass drops nothing. */
    assert_int_equal(tracker_expire(t, 20000, SIZE_MAX), 0);
    /* Later, passes of 100 slots drop everything within one walk of the table (8192 slots),
     * while the counts stay consistent at every step. */
    size_t dropped = 0, calls = 0, before = 3000;
    while (calls < 8192 / 100 + 1) {
        dropped += tracker_expire(t, 21000, 100);
        calls++;
        tracker_get_stats(t, &st);
        assert_int_equal(st.peers, 3000 - dropped);
        assert_true(st.swarms <= before);
        before = st.swarms;
    }
    assert_int_equal(dropped, 3000);
    assert_int_equal(st.swarms, 0);
    bencode_buf_release(&out);
    tracker_state_free(t);
}

/* ---- misc ------------------------------------------------------------------------------------- */

static void tracker_pool_and_job_hashes(void **state)
{
    (void)state;
    uint8_t h[TRACKER_HASH_LEN];
    hash_t hh;
    char hex[HASH_HEX_LEN + 1];
    /* printf 'preon-pool:default' | sha256sum | cut -c1-40 */
    tracker_pool_hash("default", h);
    memset(&hh, 0, sizeof(hh));
    memcpy(hh.b, h, sizeof(h));
    hash_to_hex(&hh, hex);
    assert_memory_equal(hex, "1aa3a2984bb87ce0a09f81956a924d8d3b9930f8", 40);
    tracker_pool_hash("", h);
    memcpy(hh.b, h, sizeof(h));
    hash_to_hex(&hh, hex);
    assert_memory_equal(hex, "670c7ba2abff82b31e4c10814491aa45d25a5a7e", 40);
    hash_t id;
    for (int i = 0; i < HASH_LEN; i++)
        id.b[i] = (uint8_t)i;
    tracker_job_hash(&id, h);
    assert_memory_equal(h, id.b, TRACKER_HASH_LEN);
}

static void tracker_state_new_checks_options(void **state)
{
    (void)state;
    tracker_state_t *t;
    tracker_opts_t o = {.interval_s = 86401};
    assert_int_equal(tracker_state_new(&o, &t), -EINVAL);
    assert_null(t);
    o = (tracker_opts_t){.interval_s = 10, .min_interval_s = 11};
    assert_int_equal(tracker_state_new(&o, &t), -EINVAL);
    o = (tracker_opts_t){.interval_s = 1};
    assert_int_equal(tracker_state_new(&o, &t), 0);
    bencode_buf_t out;
    bencode_buf_init(&out);
    answer_t a;
    struct sockaddr_in p = addr4("192.0.2.1");
    do_announce(t, 1, 1, NULL, SA(p), 0, &out, &a);
    assert_int_equal(ans_int(&a, "interval"), 1);
    assert_int_equal(ans_int(&a, "min interval"), 1);
    answer_free(&a);
    bencode_buf_release(&out);
    tracker_state_free(t);
    tracker_state_free(NULL);
}

/* ---- the server over HTTP --------------------------------------------------------------------- */

typedef struct http_resp {
    long status;
    char *body;
    size_t len;
} http_resp_t;

typedef struct srv_fx {
    uv_loop_t loop;
    httpd_t *httpd;
    tracker_t *tracker;
    uv_async_t done;
    uint16_t port;
    http_resp_t r[6];
    bool closed;
} srv_fx_t;

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    http_resp_t *r = arg;
    r->body = xrealloc(r->body, r->len + sz * n + 1);
    memcpy(r->body + r->len, p, sz * n);
    r->len += sz * n;
    r->body[r->len] = '\0';
    return sz * n;
}

static void http_do(CURL *c, const char *url, const char *post, http_resp_t *r)
{
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (post)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    else
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    r->status = curl_easy_perform(c) == CURLE_OK ? 0 : -1;
    if (r->status == 0)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
}

static void srv_client(void *arg)
{
    srv_fx_t *fx = arg;
    CURL *c = curl_easy_init();
    char *q1 = query(1, 6881, "&left=5&event=started"), *q2 = query(1, 6882, "&left=0");
    unsigned sw[] = {1};
    char *sq = scrape_query(sw, 1);
    char *u[6];
    u[0] = xasprintf("http://127.0.0.1:%u/announce?%s", fx->port, q1);
    u[1] = xasprintf("http://127.0.0.1:%u/announce?%s", fx->port, q2);
    u[2] = xasprintf("http://127.0.0.1:%u/scrape?%s", fx->port, sq);
    u[3] = xasprintf("http://127.0.0.1:%u/announce?%s", fx->port, q1);
    u[4] = xasprintf("http://127.0.0.1:%u/announce", fx->port);
    u[5] = xasprintf("http://127.0.0.1:%u/scrape/x", fx->port);
    for (int i = 0; i < 6; i++) {
        http_do(c, u[i], i == 3 ? "x=1" : NULL, &fx->r[i]);
        free(u[i]);
    }
    free(q1);
    free(q2);
    free(sq);
    curl_easy_cleanup(c);
    uv_async_send(&fx->done);
}

static void srv_on_httpd_closed(void *arg) { ((srv_fx_t *)arg)->closed = true; }

static void srv_on_tracker_closed(void *arg)
{
    srv_fx_t *fx = arg;
    httpd_close(fx->httpd, srv_on_httpd_closed, fx);
}

static void srv_on_done(uv_async_t *as)
{
    srv_fx_t *fx = as->data;
    uv_close((uv_handle_t *)as, NULL);
    tracker_close(fx->tracker, srv_on_tracker_closed, fx);
}

static void tracker_server_answers_over_http(void **state)
{
    (void)state;
    srv_fx_t *fx = xcalloc(1, sizeof(*fx));
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    httpd_opts_t ho = {.addr = "127.0.0.1"};
    assert_int_equal(httpd_new(&fx->loop, &ho, &fx->httpd), 0);
    fx->port = httpd_port(fx->httpd);
    tracker_opts_t to = {.interval_s = 60};
    assert_int_equal(tracker_start(&fx->loop, fx->httpd, &to, &fx->tracker), 0);
    tracker_t *second;
    assert_int_equal(tracker_start(&fx->loop, fx->httpd, &to, &second), -EEXIST); /* routes taken */
    uv_async_init(&fx->loop, &fx->done, srv_on_done);
    fx->done.data = fx;
    uv_thread_t th;
    assert_int_equal(uv_thread_create(&th, srv_client, fx), 0);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    uv_thread_join(&th);
    assert_true(fx->closed);
    assert_int_equal(uv_loop_close(&fx->loop), 0);

    for (int i = 0; i < 6; i++)
        assert_true(fx->r[i].status > 0);
    bencode_buf_t b = {.data = fx->r[0].body, .len = fx->r[0].len};
    answer_t a;
    assert_int_equal(fx->r[0].status, 200);
    answer_of(&b, &a);
    assert_int_equal(ans_int(&a, "incomplete"), 1);
    assert_int_equal(ans_int(&a, "interval"), 60);
    answer_free(&a);
    assert_int_equal(fx->r[1].status, 200);
    b = (bencode_buf_t){.data = fx->r[1].body, .len = fx->r[1].len};
    answer_of(&b, &a);
    size_t n;
    const uint8_t *p = ans_peers(&a, &n);
    assert_int_equal(n, 1);
    static const uint8_t want[6] = {127, 0, 0, 1, 0x1a, 0xe1}; /* the address the tracker saw */
    assert_memory_equal(p, want, 6);
    answer_free(&a);
    assert_int_equal(fx->r[2].status, 200);
    b = (bencode_buf_t){.data = fx->r[2].body, .len = fx->r[2].len};
    answer_of(&b, &a);
    int64_t c, i, d;
    assert_true(scrape_counts(&a, 1, &c, &i, &d));
    assert_int_equal(c, 1);
    assert_int_equal(i, 1);
    answer_free(&a);
    assert_int_equal(fx->r[3].status, 405); /* POST */
    assert_int_equal(fx->r[4].status, 200);
    assert_non_null(strstr(fx->r[4].body, "failure reason"));
    assert_non_null(strstr(fx->r[4].body, "missing info_hash"));
    assert_int_equal(fx->r[5].status, 200); /* /scrape/x is under /scrape: a failure answer */
    assert_non_null(strstr(fx->r[5].body, "failure reason"));
    for (int k = 0; k < 6; k++)
        free(fx->r[k].body);
    free(fx);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tracker_parse_announce_reads_every_field),
        cmocka_unit_test(tracker_parse_announce_rejects_bad_fields),
        cmocka_unit_test(tracker_parse_announce_ip_param_only_from_loopback),
        cmocka_unit_test(tracker_parse_scrape_sorts_and_limits),
        cmocka_unit_test(tracker_announce_answers_compact_lists),
        cmocka_unit_test(tracker_announce_answers_non_compact_lists),
        cmocka_unit_test(tracker_announce_numwant_limits_and_never_self),
        cmocka_unit_test(tracker_announce_sampling_reaches_every_peer),
        cmocka_unit_test(tracker_announce_stopped_and_completed),
        cmocka_unit_test(tracker_peers_expire_after_two_intervals),
        cmocka_unit_test(tracker_scrape_lists_known_swarms_in_order),
        cmocka_unit_test(tracker_bad_requests_get_failure_reason),
        cmocka_unit_test(tracker_limits_peers_and_swarms),
        cmocka_unit_test(tracker_holds_100k_peers_in_little_memory),
        cmocka_unit_test(tracker_random_operations_match_model),
        cmocka_unit_test(tracker_expire_works_in_slices),
        cmocka_unit_test(tracker_pool_and_job_hashes),
        cmocka_unit_test(tracker_state_new_checks_options),
        cmocka_unit_test(tracker_server_answers_over_http),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
