/*
 * fuzz_announce_reply.c: libFuzzer target for announce_parse_reply, the parser of tracker answers
 * (untrusted input from the network). Checks the parser's promises on every input: it never
 * crashes, keeps at most ANNOUNCE_MAX_PEERS peers, never keeps a port-0 peer, and leaves no peers
 * behind when it fails.
 */
#include <stdint.h>
#include <stdlib.h>

#include "swarm/announce.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static announce_reply_t r;
    char why[256];
    int rc = announce_parse_reply((const char *)data, size, &r, why, sizeof(why));
    if (r.npeers > ANNOUNCE_MAX_PEERS || (rc != 0 && r.npeers != 0))
        abort();
    for (size_t i = 0; i < r.npeers; i++)
        if (r.peers[i].port == 0)
            abort();
    return 0;
}
