/*
 * fuzz_bencode.c: libFuzzer target for bencode_decode (`make fuzz`).
 *
 * Bencoded bytes come from trackers and peers, so decoding must never crash, leak or read out of
 * bounds, and must fail with -EINVAL or -EMSGSIZE and a reason. The decoder is strict, so every
 * document it accepts is canonical: re-encoding the decoded nodes must give back exactly the
 * input, and every dictionary lookup must find each of its own keys.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/bencode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const bencode_node_t *reencode(const bencode_doc_t *d, const bencode_node_t *n, bencode_buf_t *b)
{
    if (n->type == BENCODE_INT) {
        bencode_put_int(b, n->i);
        return n + 1;
    }
    if (n->type == BENCODE_STR) {
        bencode_put_str(b, n->s, n->len);
        return n + 1;
    }
    if (n->type == BENCODE_LIST)
        bencode_put_list(b);
    else
        bencode_put_dict(b);
    size_t kids = n->type == BENCODE_DICT ? (size_t)n->count * 2 : n->count;
    const bencode_node_t *c = n + 1;
    for (size_t i = 0; i < kids; i++) {
        if (n->type == BENCODE_DICT && i % 2 == 0) {
            /* each key finds its own value */
            const bencode_node_t *v = bencode_dict_get(d, n, c->s, c->len);
            if (v != &d->nodes[c->end])
                abort();
        }
        const bencode_node_t *next = reencode(d, c, b);
        if (next != &d->nodes[c->end])
            abort();
        c = next;
    }
    bencode_put_end(b);
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[256];
    bencode_doc_t d;
    bencode_doc_init(&d);
    bencode_limits_t lim = {.max_depth = 16, .max_nodes = 4096, .max_string = 1 << 16};
    int rc = bencode_decode(&d, (const char *)data, size, &lim, why, sizeof(why));
    if (rc == 0) {
        bencode_buf_t b;
        bencode_buf_init(&b);
        if (reencode(&d, bencode_root(&d), &b) != d.nodes + d.n)
            abort();
        if (b.len != size || memcmp(b.data, data, size) != 0)
            abort();
        bencode_buf_release(&b);
    } else if ((rc != -EINVAL && rc != -EMSGSIZE) || why[0] == '\0' || d.n != 0) {
        abort();
    }
    bencode_doc_release(&d);
    return 0;
}
