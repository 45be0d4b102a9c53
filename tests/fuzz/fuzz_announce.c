/*
 * fuzz_announce.c: libFuzzer target for the tracker's request handling (`make fuzz`): the query
 * parser (tracker_parse_announce / tracker_parse_scrape over httpd's query helpers) and the
 * announce and scrape logic behind it, on one tracker state that lives across inputs, as a real
 * tracker's does (so swarms grow, fill up to small caps, expire and are reclaimed).
 *
 * The input is split at its first newline: the first part is an announce query, the rest a scrape
 * query. Every answer, failure or not, must be valid bencoding (checked with the strict decoder),
 * and the statistics must stay consistent.
 *
 * The Makefile links fuzz targets with core/ only, so the tracker core is compiled in here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tracker/tracker.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tracker_state_t *state;
static bencode_buf_t out;
static uint64_t now_ms = 1000;

static void check_answer(void)
{
    bencode_doc_t d;
    char why[128];
    bencode_doc_init(&d);
    if (bencode_decode(&d, out.data, out.len, NULL, why, sizeof(why)) != 0)
        abort();
    if (bencode_root(&d)->type != BENCODE_DICT)
        abort();
    bencode_doc_release(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!state) {
        tracker_opts_t o = {.interval_s = 5, .max_peers = 500, .max_swarms = 50, .seed = 1};
        if (tracker_state_new(&o, &state) != 0)
            abort();
        bencode_buf_init(&out);
    }
    const char *q = (const char *)data;
    const char *nl = memchr(q, '\n', size);
    size_t alen = nl ? (size_t)(nl - q) : size;
    /* Alternate the client between loopback (where ip= counts) and elsewhere. */
    struct sockaddr_in from = {.sin_family = AF_INET};
    from.sin_addr.s_addr = htonl(size % 2 ? INADDR_LOOPBACK : 0xc0000201u);
    now_ms += size % 3000;

    tracker_handle_announce(state, q, alen, (const struct sockaddr *)&from, now_ms, &out);
    check_answer();
    if (nl) {
        tracker_handle_scrape(state, nl + 1, size - alen - 1, now_ms, &out);
        check_answer();
    }
    tracker_expire(state, now_ms, 16);
    tracker_stats_t st;
    tracker_get_stats(state, &st);
    if (st.peers > 500 || st.swarms > 50 || st.seeders > st.peers)
        abort();
    return 0;
}
